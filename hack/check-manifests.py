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
}
# weft-controller's ports (Sources/weft-controller: --push-port, --metrics-port).
PORTS = {"grpc-push": 15012, "http-monitoring": 15014}


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
    return "\n".join(problems) or None


if __name__ == "__main__":
    problem = main()
    if problem:
        print(problem)
        sys.exit(1)
