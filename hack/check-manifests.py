#!/usr/bin/env python3
"""Renders manifests/ with `kubectl kustomize` (as `kubectl apply -k manifests/` does) and checks what the
install needs: every object, the controller's ports on the Deployment and the Service, least-privilege RBAC (no
wildcards), and a PodDisruptionBudget that selects the controller's pods. Exits non-zero naming the problem."""
import subprocess
import sys

import yaml

EXPECTED_KINDS = {
    "CustomResourceDefinition": 4, "Namespace": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
    "Role": 1, "RoleBinding": 1, "ConfigMap": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1,
    "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1,
}
# weft-controller's ports (Sources/weft-controller: --push-port, --metrics-port).
PORTS = {"grpc-push": 15012, "http-monitoring": 15014, "https-webhook": 15017}
# The namespaces whose pods never reach the injector (Sources/WeftCompiler/Injection/Injector.swift).
NEVER_INJECTED = {"kube-system", "weft-system"}
WEFT_KINDS = {"virtualservices", "destinationpolicies", "meshtlspolicies", "authorizationpolicies"}


def main():
    try:
        rendered = subprocess.run(
            ["kubectl", "kustomize", "manifests/"], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "kubectl is not installed (these machines come with it)"
    except subprocess.CalledProcessError as error:
        return f"kubectl kustomize manifests/ failed: {error.stderr.strip()}"
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    problems = []
    kinds = {}
    for o in objects:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    for kind, count in EXPECTED_KINDS.items():
        if kinds.get(kind, 0) < count:
            problems.append(f"{count} {kind} expected, {kinds.get(kind, 0)} rendered")
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)

    for role in by_kind.get("ClusterRole", []) + by_kind.get("Role", []):
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                if "*" in rule.get(field, []):
                    problems.append(f"{role['kind']} {role['metadata']['name']}: a wildcard in {field}")

    deployment = (by_kind.get("Deployment") or [None])[0]
    service = (by_kind.get("Service") or [None])[0]
    if deployment and service:
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        container_ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        service_ports = {p["name"]: p["targetPort"] for p in service["spec"].get("ports", [])}
        for name, port in PORTS.items():
            if container_ports.get(name) != port:
                problems.append(f"the controller container does not expose {name} on {port}")
            if service_ports.get(name) != port:
                problems.append(f"the Service does not route {name} to {port}")
        labels = pod["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
            problems.append("the Service's selector does not select the controller's pods")
        if pod["spec"].get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append("the controller's pod must run as non-root")
        if deployment["spec"].get("replicas", 1) < 2:
            problems.append("the controller runs one replica; the install asks for two")
        for pdb in by_kind.get("PodDisruptionBudget", []):
            if any(labels.get(k) != v for k, v in pdb["spec"]["selector"]["matchLabels"].items()):
                problems.append("the PodDisruptionBudget does not select the controller's pods")
    if service:
        problems += check_webhooks(by_kind, service)
    return "\n".join(problems) or None


def expressions(selector):
    return {(e["key"], e["operator"]): set(e.get("values", [])) for e in (selector or {}).get("matchExpressions", [])}


def check_webhooks(by_kind, service):
    """Both configurations: clientConfig reaches a Service port that routes to the webhook port, the paths,
    sideEffects None, a 10 s timeout, v1 reviews, empty caBundle (the controller fills it)."""
    problems = []
    ns = service["metadata"].get("namespace")
    by_port = {p["port"]: p["targetPort"] for p in service["spec"].get("ports", [])}
    expected = {"MutatingWebhookConfiguration": ("weft-injector", "/inject"),
                "ValidatingWebhookConfiguration": ("weft-validator", "/validate")}
    for kind, (name, path) in expected.items():
        for config in by_kind.get(kind, []):
            if config["metadata"]["name"] != name:
                problems.append(f"{kind} is named {config['metadata']['name']}, the controller patches {name}")
            for hook in config.get("webhooks", []):
                where = f"{kind} {name} webhook {hook.get('name')}"
                ref = hook.get("clientConfig", {}).get("service", {})
                if ref.get("name") != service["metadata"]["name"] or ref.get("namespace") != ns:
                    problems.append(f"{where}: clientConfig.service is not the controller's Service")
                if by_port.get(ref.get("port", 443)) != PORTS["https-webhook"]:
                    problems.append(f"{where}: Service port {ref.get('port', 443)} does not route to 15017")
                if ref.get("path") != path:
                    problems.append(f"{where}: path {ref.get('path')}, expected {path}")
                if hook.get("clientConfig", {}).get("caBundle", "") != "":
                    problems.append(f"{where}: caBundle must be empty (the controller fills it)")
                if hook.get("sideEffects") != "None":
                    problems.append(f"{where}: sideEffects must be None")
                if hook.get("timeoutSeconds") != 10:
                    problems.append(f"{where}: timeoutSeconds must be 10")
                if hook.get("admissionReviewVersions") != ["v1"]:
                    problems.append(f"{where}: admissionReviewVersions must be [v1]")
                if hook.get("failurePolicy") not in ("Fail", "Ignore"):
                    problems.append(f"{where}: failurePolicy must be Fail or Ignore")
                rules = hook.get("rules", [])
                if kind == "MutatingWebhookConfiguration":
                    if hook.get("reinvocationPolicy") != "IfNeeded":
                        problems.append(f"{where}: reinvocationPolicy must be IfNeeded")
                    if rules != [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                  "resources": ["pods"], "scope": "Namespaced"}]:
                        problems.append(f"{where}: rules must be pods CREATE only")
                    excluded = expressions(hook.get("namespaceSelector")).get(
                        ("kubernetes.io/metadata.name", "NotIn"), set())
                    if not NEVER_INJECTED <= excluded:
                        problems.append(f"{where}: namespaceSelector must exclude {sorted(NEVER_INJECTED)}")
                    if not hook.get("namespaceSelector") and not hook.get("objectSelector"):
                        problems.append(f"{where}: no selector: every pod would reach the webhook")
                else:
                    kinds = {r for rule in rules for r in rule.get("resources", [])
                             if "weft.dev" in rule.get("apiGroups", [])
                             and set(rule.get("operations", [])) == {"CREATE", "UPDATE"}}
                    if kinds != WEFT_KINDS:
                        problems.append(f"{where}: rules must cover CREATE/UPDATE of {sorted(WEFT_KINDS)}")
            hooks = {h.get("name"): h for h in config.get("webhooks", [])}
            if kind == "MutatingWebhookConfiguration":
                # Opted-in namespaces, and pods labelled in any other: the two must not overlap.
                by_ns = hooks.get("namespace.inject.weft.dev", {})
                by_pod = hooks.get("object.inject.weft.dev", {})
                if expressions(by_ns.get("namespaceSelector")).get(("weft.dev/inject", "In")) != {"enabled"}:
                    problems.append("weft-injector: namespace.inject.weft.dev must select weft.dev/inject In [enabled]")
                if expressions(by_pod.get("objectSelector")).get(("weft.dev/inject", "In")) != {"true", "enabled"}:
                    problems.append("weft-injector: object.inject.weft.dev must select pods labelled weft.dev/inject "
                                    "In [true, enabled]")
                if expressions(by_pod.get("namespaceSelector")).get(("weft.dev/inject", "NotIn")) != {"enabled"}:
                    problems.append("weft-injector: object.inject.weft.dev must skip opted-in namespaces")
    webhook_rules = [r for role in by_kind.get("ClusterRole", []) for r in role.get("rules", [])
                     if "admissionregistration.k8s.io" in r.get("apiGroups", [])]
    granted = {(res, name) for r in webhook_rules for res in r.get("resources", []) for name in r.get("resourceNames", [])}
    for res, name in (("mutatingwebhookconfigurations", "weft-injector"),
                      ("validatingwebhookconfigurations", "weft-validator")):
        if (res, name) not in granted:
            problems.append(f"the ClusterRole does not let the controller patch {res}/{name}")
    for r in webhook_rules:
        if not r.get("resourceNames"):
            problems.append("webhook configuration RBAC must be limited by resourceNames")
        if not set(r.get("verbs", [])) <= {"get", "watch", "patch"}:
            problems.append(f"webhook configuration RBAC grants {sorted(r['verbs'])}: get, watch, patch only")
    return problems


if __name__ == "__main__":
    problem = main()
    if problem:
        print(problem)
        sys.exit(1)
