#!/usr/bin/env bash
# House-rule checks: the module layering of ARCHITECTURE.md, no unstructured tasks or crash operators in
# Sources/, and swift-format lint. Exits non-zero on the first rule broken, saying where.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
status=0

fail() { echo "check: $*"; status=1; }

# 1. Layering: the pure layer imports no I/O package; the data plane never imports the Kubernetes model.
pure="KubeModel WeftAPI ProxyConfig WeftCompiler WeftIdentity ProxyCore"
forbidden_in_pure='^(public |internal |package |@preconcurrency )*import +(NIO[A-Za-z]*|AsyncHTTPClient|Yams|Logging|Metrics|GRPC[A-Za-z]*|ServiceLifecycle|KubeClient|WeftController|WeftProxy|WeftManifests)\b'
for module in $pure; do
  [ -d "Sources/$module" ] || continue
  hits=$(grep -rnE "$forbidden_in_pure" "Sources/$module" || true)
  [ -n "$hits" ] && fail "the pure module $module imports an I/O module:
$hits"
done
# Module dependencies point downward only.
declare -A allowed=(
  [KubeModel]="Foundation"
  [WeftAPI]="Foundation KubeModel"
  [ProxyConfig]="Foundation"
  [WeftCompiler]="Foundation KubeModel WeftAPI ProxyConfig"
  [ProxyCore]="ProxyConfig"
)
for module in "${!allowed[@]}"; do
  [ -d "Sources/$module" ] || continue
  for imported in $(grep -rhoE '^(public |internal |package )?import +[A-Za-z_]+' "Sources/$module" | awk '{print $NF}' | sort -u); do
    case " ${allowed[$module]} Swift Dispatch Synchronization _Concurrency " in
      *" $imported "*) ;;
      *) fail "$module may not import $imported (allowed: ${allowed[$module]})" ;;
    esac
  done
done
for module in WeftProxy ProxyCore; do
  [ -d "Sources/$module" ] || continue
  hits=$(grep -rnE '^(public |internal )?import +(KubeModel|WeftAPI|WeftCompiler|KubeClient)\b' "Sources/$module" || true)
  [ -n "$hits" ] && fail "the data plane ($module) imports the Kubernetes model:
$hits"
done

# 2. Structured concurrency and no crash operators in Sources/.
hits=$(grep -rnE '(^|[^A-Za-z_.])Task(\.detached)? *\{|Task\.detached' Sources || true)
[ -n "$hits" ] && fail "unstructured Task in Sources/ (use a Service or a task group):
$hits"
hits=$(grep -rnE 'try!|as! |fatalError\(|nonisolated\(unsafe\)' Sources || true)
[ -n "$hits" ] && fail "try!, as!, fatalError or nonisolated(unsafe) in Sources/:
$hits"

# 3. Formatting.
if swift format --version >/dev/null 2>&1; then
  out=$(swift format lint --strict -r Sources Tests Package.swift 2>&1)
  if [ -n "$out" ]; then
    echo "$out" | head -40
    fail "swift format lint found $(echo "$out" | wc -l) problems (fix: swift format -i -r Sources Tests Package.swift)"
  fi
else
  echo "check: swift format is not available; skipping lint"
fi

[ $status -eq 0 ] && echo "check: ok"
exit $status
