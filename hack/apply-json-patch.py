#!/usr/bin/env python3
"""Applies an RFC 6902 JSON Patch with the independent `jsonpatch` implementation (PyPI), for the injector's
golden tests: apply-json-patch.py DOCUMENT.json PATCH.json prints the patched document (JSON, sorted keys).
Exit 3 when jsonpatch is missing (python3 -m pip install jsonpatch), 1 when the patch does not apply."""
import json
import sys

try:
    import jsonpatch
except ImportError:
    print("jsonpatch is missing: python3 -m pip install jsonpatch", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as handle:
        document = json.load(handle)
    with open(sys.argv[2], encoding="utf-8") as handle:
        patch = jsonpatch.JsonPatch(json.load(handle))
    try:
        result = patch.apply(document)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        print(f"the patch does not apply: {error}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
