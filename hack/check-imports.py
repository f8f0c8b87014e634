#!/usr/bin/env python3
"""Build hygiene: every target of Package.swift declares the modules it imports, and nothing it does not import;
and the sidecar's modules import FoundationEssentials, never the whole of Foundation (ICU, CoreFoundation: about
6 MiB of resident memory in a dynamic build), except as the fallback of `#if canImport(FoundationEssentials)`.

Reads `swift package dump-package` (the manifest as SwiftPM resolves it) and the import lines of each target's
sources; prints one line per mismatch and exits 1 when there is any."""
import json
import os
import re
import subprocess
import sys

SYSTEM = {"Foundation", "FoundationEssentials", "FoundationNetworking", "Dispatch", "Synchronization", "Testing",
          "XCTest", "Glibc", "Darwin", "Musl", "_Concurrency", "Swift", "os", "RegexBuilder"}
IMPORT = re.compile(r"^\s*(?:@[A-Za-z_]+(?:\([^)]*\))?\s+)*(?:public |internal |package |private |fileprivate )?"
                    r"import\s+(?:(?:struct|class|enum|protocol|func|var|typealias)\s+)?([A-Za-z_][A-Za-z0-9_]*)")

# weft-proxy and every module it links from this package.
SIDECAR = {"weft-proxy", "WeftProxy", "ProxyConfig", "ProxyCore", "WeftIdentity", "WeftHTTP", "WeftPush"}

manifest = json.loads(subprocess.run(["swift", "package", "dump-package"], check=True, capture_output=True,
                                     text=True).stdout)
problems = []
for target in manifest["targets"]:
    name = target["name"]
    kind = target["type"]
    path = target.get("path") or os.path.join("Tests" if kind == "test" else "Sources", name)
    declared = set()
    for dependency in target.get("dependencies", []):
        for key in ("byName", "target", "product"):
            if key in dependency:
                declared.add(dependency[key][0])
    imported = set()
    for folder, _, files in os.walk(path):
        for file in files:
            if not file.endswith(".swift"):
                continue
            branch = None  # inside `#if canImport(FoundationEssentials)`: "if", then "else"
            with open(os.path.join(folder, file), encoding="utf-8") as source:
                for number, line in enumerate(source, 1):
                    stripped = line.strip()
                    if stripped == "#if canImport(FoundationEssentials)":
                        branch = "if"
                    elif stripped == "#else" and branch == "if":
                        branch = "else"
                    elif stripped == "#endif":
                        branch = None
                    match = IMPORT.match(line)
                    if match:
                        imported.add(match.group(1))
                        if name in SIDECAR and match.group(1) == "Foundation" and branch != "else":
                            where = os.path.join(folder, file)
                            problems.append(f"{where}:{number}: the sidecar imports FoundationEssentials, not "
                                            "Foundation (#if canImport(FoundationEssentials) ... #else ... #endif)")
    imported -= SYSTEM | {name}
    for module in sorted(imported - declared):
        problems.append(f"{name} imports {module} but does not declare it in Package.swift")
    for module in sorted(declared - imported):
        problems.append(f"{name} declares {module} in Package.swift but never imports it")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
