#!/usr/bin/env bash
# The test command of dcs-csi: installs what the tests need (idempotently, so a
# second run is fast), then runs every check and test:
#   1. Debian packages: fuse3 (FUSE mounts), postgresql (pg_dump round trips)
#   2. moto[server] from PyPI: the S3 server the tests start on 127.0.0.1
#   3. cargo fmt --check, cargo clippy -D warnings
#   4. scripts/check-manifests.sh: helm lint/template, kubernetes-validate, drift
#   5. Garage 2.5.0 (scripts/garage.sh install: a cargo build of about 13 min on
#      2 cores the first time, cached in ~/.cache/dcs-csi-tools afterwards), for
#      the Garage tier (driver/tests/garage.rs); GARAGE_BIN is exported
#   6. cargo test --workspace: unit, property, gRPC, FUSE, fault and pg_dump tests
# Ends with a "N passed, N failed" line for the Rust tests; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MOTO_VERSION=5.2.1
APT_PACKAGES=(fuse3 postgresql postgresql-contrib procps psmisc)
STEPS=()
FAIL=0
step() { # step NAME CMD...
  local name=$1; shift
  local t0=$SECONDS
  echo "::: $name"
  if "$@"; then STEPS+=("ok    $name ($((SECONDS - t0)) s)")
  else STEPS+=("FAIL  $name ($((SECONDS - t0)) s)"); FAIL=1; fi
}

install_debs() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_moto() {
  if ! python3 -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    python3 -m pip install --quiet "moto[server]==$MOTO_VERSION" || return 1
  fi
  command -v pyenv >/dev/null && pyenv rehash
  local bin
  bin=$(command -v moto_server || python3 -c 'import sys,os; print(os.path.join(os.path.dirname(sys.executable), "moto_server"))')
  [ -x "$bin" ] || { echo "moto_server not found"; return 1; }
  export MOTO_SERVER=$bin
}

install_garage() {
  "$ROOT/scripts/garage.sh" install || return 1
  export GARAGE_BIN="${GARAGE_BIN:-${DCS_CSI_TOOLS:-$HOME/.cache/dcs-csi-tools}/bin/garage}"
  [ -x "$GARAGE_BIN" ] || { echo "garage not found at $GARAGE_BIN"; return 1; }
}

cargo_tests() {
  local log; log=$(mktemp)
  cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
       END { printf "%d passed, %d failed\n", p, f > "/dev/stderr" }' "$log" 2>"$log.sum"
  RUST_SUMMARY=$(cat "$log.sum")
  rm -f "$log" "$log.sum"
  return "$rc"
}

step "install Debian packages (${APT_PACKAGES[*]})" install_debs
step "install moto[server]==$MOTO_VERSION" install_moto
[ -e /dev/fuse ] || echo "warning: /dev/fuse is missing; FUSE tests will fail"
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings
step "Kubernetes manifests (helm lint/template, kubernetes-validate, drift)" "$ROOT/scripts/check-manifests.sh"
step "install Garage (scripts/garage.sh install)" install_garage
RUST_SUMMARY="no Rust test ran"
step "cargo test --workspace" cargo_tests

echo
echo "==================== summary ===================="
printf '%s\n' "${STEPS[@]}"
echo "================================================="
echo "$RUST_SUMMARY"
exit $FAIL
