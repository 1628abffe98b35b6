#!/usr/bin/env bash
# Benchmark of the dcs-csi mount against one local S3 server, in one run:
#   1. raw S3 multipart PUT / parallel ranged GET of SIZE MiB without FUSE
#      (driver/examples/bench_raw.rs, 8 MiB parts, 8 in flight);
#   2. ../shared/bench/bench.sh W1-W4 on our mount (W3 starts a throwaway
#      PostgreSQL loaded with `pgbench -i -s 20`);
#   3. a table (summarize.py) plus W1/W2 as a ratio of the raw speeds.
# Server: Garage (single node) when a `garage` binary is found (GARAGE_BIN,
# PATH, ~/.cache/dcs-csi-tools/bin), else moto (much slower; ratios still mean
# something). Needs root, fuse3, curl, python3; PostgreSQL for W3.
#
#   4. the same workloads on the peers (--peers s3fs,rclone: Debian's s3fs and
#      rclone, mounted as ../shared/bench/README.md says) on the same server.
#
# Usage: bench/run.sh [--size-mb 1024] [--reps 3] [--workloads W1,W2,W3,W4] [--server garage|moto] [--peers s3fs,rclone]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SIZE_MB=1024; REPS=3; WLS=W1,W2,W3,W4; SERVER=""; PEERS=""
while [ $# -gt 0 ]; do
  case "$1" in --size-mb) SIZE_MB=$2; shift 2;; --reps) REPS=$2; shift 2;;
    --workloads) WLS=$2; shift 2;; --server) SERVER=$2; shift 2;; --peers) PEERS=$2; shift 2;;
    *) sed -n 2,17p "$0"; exit 2;; esac
done
TMP=$(mktemp -d /tmp/dcs-bench.XXXXXX); chmod 755 "$TMP"; MNT=$TMP/mnt; mkdir -p "$MNT" "$TMP/cache"
PIDS=()
cleanup() {
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  [ -n "${PGBIN:-}" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate stop >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

echo "== building (release)"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p dcs-csi --bin dcs-csi --example bench_raw)
BIN=$TARGET/release/dcs-csi; RAW=$TARGET/release/examples/bench_raw

GARAGE=${GARAGE_BIN:-$(command -v garage || ls "$HOME/.cache/dcs-csi-tools/bin/garage" 2>/dev/null || true)}
[ -n "$SERVER" ] || { [ -n "$GARAGE" ] && SERVER=garage || SERVER=moto; }
S3PORT=$(free_port); export S3_ENDPOINT=http://127.0.0.1:$S3PORT S3_BUCKET=dcs-bench AWS_REGION=us-east-1
if [ "$SERVER" = garage ]; then
  RPC=$(free_port); ADM=$(free_port); G="$GARAGE -c $TMP/garage.toml"
  cat > "$TMP/garage.toml" <<TOML
metadata_dir = "$TMP/garage/meta"
data_dir = "$TMP/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$S3PORT"
root_domain = ".s3.localhost"
[admin]
api_bind_addr = "127.0.0.1:$ADM"
TOML
  $G server > "$TMP/garage.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do $G status >/dev/null 2>&1 && break; sleep 0.2; done
  NODE=$($G node id -q | cut -d@ -f1)
  $G layout assign -z dc1 -c 10G "$NODE" >/dev/null
  $G layout apply --version 1 >/dev/null
  export AWS_ACCESS_KEY_ID=GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export AWS_SECRET_ACCESS_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  $G key import --yes -n bench "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
  $G bucket create "$S3_BUCKET" >/dev/null
  $G bucket allow --read --write --owner "$S3_BUCKET" --key bench >/dev/null
else
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
  moto_server -H 127.0.0.1 -p "$S3PORT" > "$TMP/moto.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do curl -s -o /dev/null "$S3_ENDPOINT" && break; sleep 0.2; done
  curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "$S3_ENDPOINT/$S3_BUCKET" >/dev/null
fi
echo "== server: $SERVER at $S3_ENDPOINT"

echo "== raw S3, ${SIZE_MB} MiB"
"$RAW" "$S3_ENDPOINT" "$S3_BUCKET" "$SIZE_MB" | tee "$TMP/raw.txt"

if [[ ",$WLS," == *",W3,"* ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  mkdir -p "$TMP/pg"; chown postgres: "$TMP/pg"; PGPORT=$(free_port)
  runuser -u postgres -- "$PGBIN/initdb" -A trust -U postgres -D "$TMP/pg/data" >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w \
    -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1" start >/dev/null
  export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PATH=$PGBIN:$PATH
  createdb bench && pgbench -i -q -s 20 bench >/dev/null 2>&1
fi

MOUNT="AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY exec $BIN mount --bucket $S3_BUCKET --endpoint $S3_ENDPOINT --cache-dir $TMP/cache $MNT"
echo "== bench.sh $WLS on dcs-csi"
bash "$SHARED/bench.sh" --name dcs-csi --mnt "$MNT" --mount "$MOUNT" --umount "fusermount3 -u $MNT" \
  --workloads "$WLS" --reps "$REPS" --size-mb "$SIZE_MB" --out "$TMP/results.txt" | tee "$TMP/bench.out" | grep -E '^(RESULT|SUMMARY)' || true

for peer in ${PEERS//,/ }; do
  command -v "$peer" >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$peer" >/dev/null; }
  case $peer in
    s3fs)
      printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$TMP/s3fs.passwd"; chmod 600 "$TMP/s3fs.passwd"
      PM="s3fs $S3_BUCKET $MNT -o passwd_file=$TMP/s3fs.passwd -o use_path_request_style -o url=$S3_ENDPOINT -o endpoint=us-east-1 -o allow_other -o mp_umask=000";;
    rclone)
      cat > "$TMP/rclone.conf" <<CONF
[remote]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $S3_ENDPOINT
region = us-east-1
force_path_style = true
CONF
      # Debian's rclone refuses to start with AWS_CA_BUNDLE set.
      PM="exec env -u AWS_CA_BUNDLE rclone mount remote:$S3_BUCKET $MNT --config $TMP/rclone.conf --allow-other --vfs-cache-mode=writes --cache-dir $TMP/rclone-cache";;
    *) echo "unknown peer $peer"; continue;;
  esac
  echo "== bench.sh $WLS on $peer"
  bash "$SHARED/bench.sh" --name "$peer" --mnt "$MNT" --mount "$PM" --umount "fusermount3 -u $MNT" \
    --workloads "$WLS" --reps "$REPS" --size-mb "$SIZE_MB" --out "$TMP/results.txt" | grep -E '^SUMMARY' || true
done

echo "== table"
python3 "$SHARED/summarize.py" "$TMP/results.txt"
PUT=$(sed -n 's/.*op=put .*mbps=\([0-9.]*\).*/\1/p' "$TMP/raw.txt"); GET=$(sed -n 's/.*op=get .*mbps=\([0-9.]*\).*/\1/p' "$TMP/raw.txt")
for wl in W1-write-durable W2-read-cold; do
  med=$(sed -n "s/^SUMMARY peer=dcs-csi wl=$wl .*median=\([0-9.]*\).*/\1/p" "$TMP/bench.out" | tail -1)
  [ -n "$med" ] || continue
  raw=$([ "$wl" = W2-read-cold ] && echo "$GET" || echo "$PUT")
  awk -v m="$med" -v s="$SIZE_MB" -v r="$raw" -v w="$wl" \
    'BEGIN{v=s*1.048576/m; printf "RATIO %s: %.1f MB/s = %.0f%% of raw %.1f MB/s\n", w, v, 100*v/r, r}'
done
echo "(results kept in $TMP)"
trap - EXIT; cleanup
