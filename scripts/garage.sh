#!/usr/bin/env bash
# Garage helper for the decentralized-backend test tier.
#
#   scripts/garage.sh install             build Garage 2.5.0 into ~/.cache/dcs-csi-tools (once)
#   scripts/garage.sh start DIR           3-node cluster on 127.0.0.1, replication factor 3,
#                                         zones dc1/dc2/dc3, a key allowed to create buckets;
#                                         writes DIR/env (source it with `set -a; . DIR/env`)
#   scripts/garage.sh stop-node DIR N [--kill]   stop node N (1..3); --kill sends SIGKILL
#   scripts/garage.sh start-node DIR N    restart node N and wait until it is back
#   scripts/garage.sh status DIR          `garage status` as seen by the first running node
#   scripts/garage.sh stop DIR            stop all nodes (DIR is kept)
#
# Environment: GARAGE_BASE_PORT (default 39100; node N uses BASE+10N (S3), +1 (RPC),
# +3 (admin)), GARAGE_KEY_ID / GARAGE_KEY_SECRET (the imported key), GARAGE_CAPACITY
# (per node, default 10GB), GARAGE_BIN, DCS_CSI_TOOLS (install root), CARGO_TARGET_DIR
# (for install). DIR/nodeN/garage.log has each node's log, DIR/setup.log the setup output.
set -euo pipefail

GARAGE_VERSION="2.5.0"
TOOLS_ROOT="${DCS_CSI_TOOLS:-$HOME/.cache/dcs-csi-tools}"
GARAGE_BIN="${GARAGE_BIN:-$TOOLS_ROOT/bin/garage}"
BASE_PORT="${GARAGE_BASE_PORT:-39100}"
# Garage key ids are "GK" + 24 hex digits, secrets 64 hex digits. Test-only values.
KEY_ID="${GARAGE_KEY_ID:-GK5d3c5c51a1b2c3d4e5f60718}"
KEY_SECRET="${GARAGE_KEY_SECRET:-7a3f0c9e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5a}"
NODES=(1 2 3)
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

die() { echo "garage.sh: $*" >&2; exit 1; }
log() { echo "garage.sh: $*" >&2; }

cmd_install() {
    if [ -x "$GARAGE_BIN" ] && "$GARAGE_BIN" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
        echo "garage $GARAGE_VERSION already installed at $GARAGE_BIN"
        return 0
    fi
    command -v cargo >/dev/null || die "cargo not found"
    echo "installing garage $GARAGE_VERSION into $TOOLS_ROOT (about 13 min on 2 cores)"
    local start=$SECONDS
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/target-garage}" \
        cargo install "garage@$GARAGE_VERSION" --locked \
        --no-default-features --features bundled-libs,sqlite \
        --root "$TOOLS_ROOT"
    echo "garage installed in $((SECONDS - start)) s"
    "$GARAGE_BIN" --version
}

need_bin() {
    [ -x "$GARAGE_BIN" ] || die "$GARAGE_BIN missing: run scripts/garage.sh install"
}

s3_port() { echo $((BASE_PORT + 10 * $1)); }
rpc_port() { echo $((BASE_PORT + 10 * $1 + 1)); }
admin_port() { echo $((BASE_PORT + 10 * $1 + 3)); }

node_dir() { echo "$DIR/node$1"; }
cfg() { echo "$DIR/node$1/garage.toml"; }
pidfile() { echo "$DIR/node$1/garage.pid"; }

# Runs a setup command, its output going to DIR/setup.log.
logged() {
    "$@" >>"$DIR/setup.log" 2>&1 || { tail -20 "$DIR/setup.log" >&2; die "failed: $*"; }
}

# garage CLI against node N (the CLI talks RPC to the node of that config file).
g() {
    local n=$1
    shift
    "$GARAGE_BIN" -c "$(cfg "$n")" "$@"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_running() {
    local pf
    pf=$(pidfile "$1")
    [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null
}

load_dir() {
    [ -n "${1:-}" ] || die "missing DIR"
    mkdir -p "$1"
    DIR=$(cd "$1" && pwd)
    # A cluster remembers its ports: reuse them if DIR was started before.
    if [ -f "$DIR/ports" ]; then
        BASE_PORT=$(cat "$DIR/ports")
    fi
}

write_config() {
    local n=$1 secret=$2 admin_token=$3
    mkdir -p "$(node_dir "$n")/meta" "$(node_dir "$n")/data"
    cat >"$(cfg "$n")" <<EOF
metadata_dir = "$(node_dir "$n")/meta"
data_dir = "$(node_dir "$n")/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false

replication_factor = 3
consistency_mode = "consistent"

rpc_bind_addr = "127.0.0.1:$(rpc_port "$n")"
rpc_public_addr = "127.0.0.1:$(rpc_port "$n")"
rpc_secret = "$secret"
bootstrap_peers = []

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$(s3_port "$n")"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$(admin_port "$n")"
admin_token = "$admin_token"
EOF
    chmod 600 "$(cfg "$n")"
}

start_daemon() {
    local n=$1
    node_running "$n" && { log "node $n already running (pid $(cat "$(pidfile "$n")"))"; return 0; }
    for p in $(s3_port "$n") $(rpc_port "$n") $(admin_port "$n"); do
        port_in_use "$p" && die "port $p is in use (set GARAGE_BASE_PORT)"
    done
    # setsid: the node must not die with the caller's process group.
    setsid "$GARAGE_BIN" -c "$(cfg "$n")" server >>"$(node_dir "$n")/garage.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$n")"
}

wait_rpc() {
    local n=$1
    for _ in $(seq 1 100); do
        g "$n" status >/dev/null 2>&1 && return 0
        node_running "$n" || die "node $n exited; see $(node_dir "$n")/garage.log"
        sleep 0.2
    done
    die "node $n does not answer RPC; see $(node_dir "$n")/garage.log"
}

# A signed ListBuckets through node N's S3 endpoint answers 200.
s3_ok() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        --aws-sigv4 "aws:amz:garage:s3" --user "$KEY_ID:$KEY_SECRET" \
        -H "x-amz-content-sha256: $EMPTY_SHA256" \
        "http://127.0.0.1:$(s3_port "$1")/") || return 1
    [ "$code" = 200 ]
}

wait_s3() {
    local n=$1
    for _ in $(seq 1 150); do
        s3_ok "$n" && return 0
        sleep 0.2
    done
    die "node $n S3 endpoint does not answer a signed ListBuckets"
}

write_env() {
    {
        echo "S3_ENDPOINT=http://127.0.0.1:$(s3_port 1)"
        echo "AWS_ACCESS_KEY_ID=$KEY_ID"
        echo "AWS_SECRET_ACCESS_KEY=$KEY_SECRET"
        echo "AWS_REGION=garage"
        echo "AWS_DEFAULT_REGION=garage"
        echo "GARAGE_BIN=$GARAGE_BIN"
        echo "GARAGE_DIR=$DIR"
        echo "GARAGE_S3_PORTS=$(s3_port 1),$(s3_port 2),$(s3_port 3)"
        for n in "${NODES[@]}"; do
            echo "GARAGE_S3_ENDPOINT_$n=http://127.0.0.1:$(s3_port "$n")"
            echo "GARAGE_PIDFILE_$n=$(pidfile "$n")"
            echo "GARAGE_CONFIG_$n=$(cfg "$n")"
        done
    } >"$DIR/env"
}

cmd_start() {
    need_bin
    load_dir "${1:-}"
    local fresh=1
    [ -f "$(cfg 1)" ] && fresh=0
    if [ $fresh = 1 ]; then
        echo "$BASE_PORT" >"$DIR/ports"
        local secret admin_token
        secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
        admin_token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
        for n in "${NODES[@]}"; do write_config "$n" "$secret" "$admin_token"; done
    fi
    for n in "${NODES[@]}"; do start_daemon "$n"; done
    for n in "${NODES[@]}"; do wait_rpc "$n"; done

    local ids=()
    for n in "${NODES[@]}"; do
        ids+=("$(g "$n" node id -q 2>/dev/null | tail -1)")
    done
    # Connect explicitly (also on a restart of the whole cluster), and record the
    # peers in every config so that restarted nodes find each other by themselves.
    for n in 2 3; do
        logged g 1 node connect "${ids[$((n - 1))]}"
    done
    local peers
    peers=$(printf '"%s", ' "${ids[@]}")
    for n in "${NODES[@]}"; do
        sed -i "s|^bootstrap_peers = .*|bootstrap_peers = [${peers%, }]|" "$(cfg "$n")"
    done
    if [ $fresh = 1 ]; then
        for n in "${NODES[@]}"; do
            logged g 1 layout assign "${ids[$((n - 1))]%@*}" -z "dc$n" -c "${GARAGE_CAPACITY:-10GB}" -t "node$n"
        done
        logged g 1 layout apply --version 1
        logged g 1 key import --yes -n dcs-csi-test "$KEY_ID" "$KEY_SECRET"
        logged g 1 key allow --create-bucket "$KEY_ID"
    fi
    for n in "${NODES[@]}"; do wait_s3 "$n"; done
    write_env
    echo "garage cluster up in $DIR (S3 http://127.0.0.1:$(s3_port 1), $(s3_port 2), $(s3_port 3)); env: $DIR/env"
}

stop_daemon() {
    local n=$1 sig=${2:-TERM}
    node_running "$n" || { rm -f "$(pidfile "$n")"; return 0; }
    local pid
    pid=$(cat "$(pidfile "$n")")
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$(pidfile "$n")"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
    rm -f "$(pidfile "$n")"
}

check_n() {
    case "${1:-}" in 1 | 2 | 3) ;; *) die "node number must be 1, 2 or 3" ;; esac
}

cmd_stop_node() {
    load_dir "${1:-}"
    check_n "${2:-}"
    local sig=TERM
    [ "${3:-}" = "--kill" ] && sig=KILL
    stop_daemon "$2" "$sig"
    echo "node $2 stopped"
}

cmd_start_node() {
    need_bin
    load_dir "${1:-}"
    check_n "${2:-}"
    [ -f "$(cfg "$2")" ] || die "no cluster in $DIR: run start first"
    start_daemon "$2"
    wait_rpc "$2"
    wait_s3 "$2"
    echo "node $2 started"
}

cmd_status() {
    need_bin
    load_dir "${1:-}"
    for n in "${NODES[@]}"; do
        if node_running "$n"; then
            g "$n" status
            return
        fi
    done
    die "no node running in $DIR"
}

cmd_stop() {
    load_dir "${1:-}"
    for n in "${NODES[@]}"; do stop_daemon "$n"; done
    echo "garage cluster in $DIR stopped"
}

cmd=${1:-}
shift || true
case "$cmd" in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    stop-node) cmd_stop_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    status) cmd_status "$@" ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
esac
