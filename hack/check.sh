#!/usr/bin/env bash
# House-rule checks: the module layering of ARCHITECTURE.md, no unstructured tasks or crash operators in
# Sources/, and swift-format lint. Exits non-zero on the first rule broken, saying where.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
status=0

fail() { echo "check: $*"; status=1; }

# 1. Layering: the pure layer imports no I/O package; the data plane never imports the Kubernetes model.
pure="KubeModel WeftAPI ProxyConfig WeftCompiler ProxyCore WeftIdentity"
forbidden_in_pure='^(public |internal |package |@preconcurrency )*import +(NIO[A-Za-z]*|AsyncHTTPClient|Yams|Logging|Metrics|GRPC[A-Za-z]*|ServiceLifecycle|KubeClient|WeftController|WeftProxy|WeftManifests)\b'
for module in $pure; do
  [ -d "Sources/$module" ] || fail "hack/check.sh names the module $module, which does not exist"
  hits=$(grep -rnE "$forbidden_in_pure" "Sources/$module" || true)
  [ -n "$hits" ] && fail "the pure module $module imports an I/O module:
$hits"
done
# Module dependencies point downward only.
declare -A allowed=(
  [KubeModel]="Foundation"
  [WeftAPI]="Foundation KubeModel"
  [ProxyConfig]="Foundation FoundationEssentials"
  [WeftCompiler]="Foundation KubeModel WeftAPI ProxyConfig"
  [ProxyCore]="ProxyConfig"
  [WeftIdentity]="Foundation FoundationEssentials X509 Crypto SwiftASN1"
)
for module in "${!allowed[@]}"; do
  [ -d "Sources/$module" ] || fail "hack/check.sh names the module $module, which does not exist"
  while read -r imported; do
    case " ${allowed[$module]} Swift Dispatch Synchronization _Concurrency " in
      *" $imported "*) ;;
      *) fail "$module may not import $imported (allowed: ${allowed[$module]})" ;;
    esac
  done < <(grep -rhoE '^(public |internal |package )?import +[A-Za-z_][A-Za-z0-9_]*' "Sources/$module" | awk '{print $NF}' | sort -u)
done
for module in WeftProxy ProxyCore; do
  [ -d "Sources/$module" ] || fail "hack/check.sh names the module $module, which does not exist"
  hits=$(grep -rnE '^(public |internal )?import +(KubeModel|WeftAPI|WeftCompiler|KubeClient)\b' "Sources/$module" || true)
  [ -n "$hits" ] && fail "the data plane ($module) imports the Kubernetes model:
$hits"
done

# Build hygiene: each target declares exactly the modules it imports.
out=$(python3 hack/check-imports.py 2>&1) || fail "Package.swift and the imports disagree:
$out"

# The install renders (kubectl kustomize, as `kubectl apply -k manifests/`) with every object and port it needs.
out=$(python3 hack/check-manifests.py 2>&1) || fail "manifests/:
$out"

# 2. Structured concurrency and no crash operators in Sources/.
# The one exception is marked `awaited-before-return` on its line (CancellationSafeServing: NIO traps when an
# accept loop is cancelled, so that loop runs in a task cancellation does not reach, always awaited).
hits=$(grep -rnE '(^|[^A-Za-z_.])Task(\.detached)? *\{|Task\.detached' Sources | grep -v 'awaited-before-return' || true)
[ -n "$hits" ] && fail "unstructured Task in Sources/ (use a Service or a task group):
$hits"
hits=$(grep -rnE 'try!|as! |fatalError\(|nonisolated\(unsafe\)' Sources || true)
[ -n "$hits" ] && fail "try!, as!, fatalError or nonisolated(unsafe) in Sources/:
$hits"

# 3. Shell scripts: shellcheck on .ci/run and every script in hack/, then the install step as a new machine
# runs it (every tool missing, apt-get/sudo/pip stubbed), so a broken install line fails here, not on the
# first machine that lacks a tool.
if command -v shellcheck >/dev/null 2>&1; then
  scripts=(.ci/run)
  for script in hack/*; do
    [ -f "$script" ] || continue
    head -n 1 "$script" | grep -qE '^#!.*(ba)?sh' && scripts+=("$script")
  done
  out=$(shellcheck -S style "${scripts[@]}" 2>&1) || fail "shellcheck:
$out"
else
  fail "shellcheck is not installed (bash hack/install-test-tools installs it)"
fi
out=$(bash hack/test-install-tools 2>&1) || fail "the install step fails on a machine without the tools:
$out"

# 4. Formatting.
if swift format --version >/dev/null 2>&1; then
  out=$(swift format lint --strict -r Sources Tests Fuzz Package.swift 2>&1)
  if [ -n "$out" ]; then
    echo "$out" | head -40
    fail "swift format lint found $(echo "$out" | wc -l) problems (fix: swift format -i -r Sources Tests Fuzz Package.swift)"
  fi
else
  echo "check: swift format is not available; skipping lint"
fi

[ $status -eq 0 ] && echo "check: ok"
exit $status
