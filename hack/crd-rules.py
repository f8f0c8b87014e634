#!/usr/bin/env python3
"""Evaluates the CRDs' validation rules offline against example resources.

    python3 hack/crd-rules.py CRDS_DIR EXAMPLES.yaml [MANIFEST.yaml ...]

For every example resource it walks the CRD's openAPIV3Schema alongside the object, as the API server does, and
evaluates with cel-python (`import celpy`):
  - every `x-kubernetes-validations` rule, with `self` the value at the rule's place (each array element, each map
    value) and no `oldSelf` (a create), and
  - every string `pattern` (RE2, through google-re2, which cel-python installs).
It does not check the other OpenAPI constraints (types, enums, min/max, lengths, required, list types).

An examples file holds YAML documents `{case: NAME, crd: [REFUSAL...], swift: [PATH...], object: RESOURCE}`, where
`crd` lists the refusals expected (`<field path>: <rule message>`, or `<field path>: does not match the schema
pattern`) and `swift` the field paths WeftAPI's validation reports; both empty means valid. Any other file is a
plain manifest: its weft.dev resources are examples expected valid (its other documents are skipped).

It prints JSON: {"rules": [...every rule in the CRDs, with an id...], "examples": [...each with its object, the
expectations, the refusals found, the rule evaluations (rule id -> "true", "false" or "error" per evaluation) and evaluation errors...]}.
CRDRuleTests (Tests/WeftAPITests) runs it and compares with the Swift validation. Exit status 3: cel-python or
PyYAML is missing.
"""

import json
import os
import sys

try:
    import celpy
    from celpy import celtypes
    import yaml
except ImportError as error:
    print(
        f"crd-rules: {error.name} is not installed ({error}): run `python3 -m pip install cel-python PyYAML`",
        file=sys.stderr,
    )
    sys.exit(3)

try:
    import re2 as regex  # the API server's patterns are Go RE2
except ImportError:  # cel-python depends on google-re2, so this is only a fallback
    import re as regex


# MARK: - Kubernetes CEL extensions that cel-python lacks
#
# Rules may use only standard CEL plus the functions registered here. A rule calling anything else fails to
# evaluate, and the error names the function: register an equivalent here, or write the rule in standard CEL.


def cel_sum(values):
    """`<list>.sum()` from the Kubernetes lists library: the sum of a list of numbers (0 for an empty list)."""
    total = celtypes.IntType(0)
    for value in values:
        total = total + value
    return total


KUBERNETES_FUNCTIONS = {"sum": cel_sum}


# MARK: - Schemas


def member(path, name):
    return f"{path}.{name}" if path else name


class Rules:
    """Every rule of every CRD, by id (`<crd file> <schema path> #<index>`), compiled once."""

    def __init__(self):
        self.rules = []
        self.programs = {}
        self.environment = celpy.Environment()

    def collect(self, file_name, schema, path=""):
        for index, rule in enumerate(schema.get("x-kubernetes-validations", [])):
            rule_id = f"{file_name} {path or '(root)'} #{index}"
            rule["_id"] = rule_id
            self.rules.append({"id": rule_id, "rule": rule["rule"], "message": rule.get("message", "")})
        for name, child in schema.get("properties", {}).items():
            self.collect(file_name, child, member(path, name))
        if isinstance(schema.get("items"), dict):
            self.collect(file_name, schema["items"], path + "[]")
        if isinstance(schema.get("additionalProperties"), dict):
            self.collect(file_name, schema["additionalProperties"], path + "{}")

    def program(self, text):
        if text not in self.programs:
            ast = self.environment.compile(text)
            self.programs[text] = self.environment.program(ast, functions=KUBERNETES_FUNCTIONS)
        return self.programs[text]


def load_crds(directory, rules):
    """kind -> openAPIV3Schema of its (only) version."""
    schemas = {}
    for file_name in sorted(os.listdir(directory)):
        if not file_name.endswith(".yaml") or file_name == "kustomization.yaml":
            continue
        with open(os.path.join(directory, file_name)) as file:
            crd = yaml.safe_load(file)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        rules.collect(file_name, schema)
        schemas[crd["spec"]["names"]["kind"]] = schema
    return schemas


# MARK: - Evaluation


def normalise(schema, value):
    """The value as the API server hands it to CEL: integers in `number` fields become doubles."""
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "array" and isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [normalise(schema["items"], item) for item in value]
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        values = schema.get("additionalProperties")
        return {
            key: normalise(properties[key], item)
            if key in properties
            else normalise(values, item)
            if isinstance(values, dict)
            else item
            for key, item in value.items()
        }
    return value


def describe_error(error):
    text = " ".join(str(argument) for argument in getattr(error, "args", [error]))
    return f"{type(error).__name__}: {text}"[:500]


class Walk:
    def __init__(self, rules):
        self.rules = rules
        self.refusals = []
        self.errors = []
        self.evaluations = {}

    def visit(self, schema, value, path):
        if value is None:
            return
        pattern = schema.get("pattern")
        if pattern is not None and isinstance(value, str) and regex.search(pattern, value) is None:
            self.refusals.append(f"{path}: does not match the schema pattern")
        for rule in schema.get("x-kubernetes-validations", []):
            self.evaluate(rule, value, path)
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            values = schema.get("additionalProperties")
            for key in sorted(value):
                if key in properties:
                    self.visit(properties[key], value[key], member(path, key))
                elif isinstance(values, dict):
                    self.visit(values, value[key], member(path, key))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                self.visit(schema["items"], item, f"{path}[{index}]")

    def evaluate(self, rule, value, path):
        results = self.evaluations.setdefault(rule["_id"], [])
        try:
            result = self.rules.program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as error:  # a compile or evaluation error: the API server would refuse with an error
            result = error
        if isinstance(result, celtypes.BoolType):
            results.append("true" if result else "false")
            if not result:
                self.refusals.append(f"{path or '(root)'}: {rule.get('message', rule['rule'])}")
        else:
            results.append("error")
            detail = describe_error(result) if isinstance(result, Exception) else f"not a bool: {result!r}"
            self.errors.append(f"{path or '(root)'}: {rule['rule']}: {detail}")


def load_examples(paths):
    examples = []
    for path in paths:
        with open(path) as file:
            documents = [document for document in yaml.safe_load_all(file) if document]
        for index, document in enumerate(documents):
            if "case" in document:
                examples.append(
                    {
                        "name": document["case"],
                        "object": document["object"],
                        "crd": document.get("crd", []),
                        "swift": document.get("swift", []),
                    }
                )
            elif str(document.get("apiVersion", "")).startswith("weft.dev/"):
                metadata = document.get("metadata", {})
                name = f"{os.path.basename(path)}: {metadata.get('namespace', '')}/{document.get('kind')}/{metadata.get('name')}"
                examples.append({"name": name, "object": document, "crd": [], "swift": []})
    return examples


def main(arguments):
    if len(arguments) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    rules = Rules()
    schemas = load_crds(arguments[0], rules)
    results = []
    for example in load_examples(arguments[1:]):
        kind = example["object"].get("kind")
        walk = Walk(rules)
        if kind in schemas:
            schema = schemas[kind]
            walk.visit(schema, normalise(schema, example["object"]), "")
        else:
            walk.errors.append(f"no CRD for kind {kind!r}")
        results.append(
            dict(
                example,
                kind=kind,
                refusals=sorted(walk.refusals),
                errors=walk.errors,
                evaluations=walk.evaluations,
            )
        )
    json.dump({"rules": rules.rules, "examples": results}, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
