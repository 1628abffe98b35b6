#!/usr/bin/env bash
# End-to-end run of the examples on a real cluster (kind, or any cluster your
# kubectl points at with KIND_CLUSTER="" and an image registry you push to).
#
#   NOT RUN IN THIS PROJECT'S CI, AND NOT COUNTED AS TESTED: there is no
#   Kubernetes cluster (nor Docker daemon) there. CI checks the manifests
#   offline (scripts/check-manifests.sh) and replays the examples against the
#   driver in a Rust test; only this script exercises real kubelet, FUSE and
#   sidecar behaviour. Run it yourself before a release.
#
# Needs: docker, kind, kubectl, helm, aws (CLI), a reachable S3 store.
#   DCS_ENDPOINT=https://gateway.storjshare.io DCS_ACCESS_KEY_ID=… \
#   DCS_SECRET_ACCESS_KEY=… tests/e2e/kind.sh
# Optional: DCS_REGION (us-east-1), KIND_CLUSTER (dcs-csi-e2e; "" = use the
# current kubectl context and skip `kind load`, then set IMAGE to an image the
# cluster can pull), IMAGE (dcs-csi:e2e), KEEP_CLUSTER=1 (don't delete it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
: "${DCS_ENDPOINT:?set DCS_ENDPOINT (S3 endpoint URL reachable from the cluster)}"
: "${DCS_ACCESS_KEY_ID:?set DCS_ACCESS_KEY_ID}"
: "${DCS_SECRET_ACCESS_KEY:?set DCS_SECRET_ACCESS_KEY}"
REGION="${DCS_REGION:-us-east-1}"
CLUSTER="${KIND_CLUSTER-dcs-csi-e2e}"
IMAGE="${IMAGE:-dcs-csi:e2e}"
NS=dcs-csi
step() { printf '\n=== %s\n' "$*"; }

cleanup() {
  step "cleanup"
  kubectl delete -f "$ROOT/examples/restore-job.yaml" -f "$ROOT/examples/backup-cronjob.yaml" \
    -f "$ROOT/examples/postgres.yaml" --ignore-not-found --wait=false || true
  kubectl delete job pg-backup-e2e --ignore-not-found || true
  # reclaimPolicy Delete: this removes the bucket; wait for the PV to go.
  kubectl delete -f "$ROOT/examples/pvc.yaml" --ignore-not-found || true
  [ -n "${PV:-}" ] && kubectl wait --for=delete "pv/$PV" --timeout=180s || true
  helm uninstall dcs-csi -n "$NS" || true
  kubectl delete -f "$ROOT/examples/storageclass.yaml" --ignore-not-found || true
  if [ -n "$CLUSTER" ] && [ -z "${KEEP_CLUSTER:-}" ]; then kind delete cluster --name "$CLUSTER"; fi
}
trap cleanup EXIT

step "build the image $IMAGE"
docker build -t "$IMAGE" "$ROOT"

if [ -n "$CLUSTER" ]; then
  step "kind cluster $CLUSTER"
  kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
  kind load docker-image "$IMAGE" --name "$CLUSTER"
fi

step "install the chart (the chart creates the Secret dcs-csi-store)"
helm upgrade --install dcs-csi "$ROOT/charts/dcs-csi" -n "$NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=IfNotPresent \
  --set store.endpoint="$DCS_ENDPOINT" --set store.region="$REGION" \
  --set store.accessKeyID="$DCS_ACCESS_KEY_ID" --set store.secretAccessKey="$DCS_SECRET_ACCESS_KEY" \
  --wait --timeout 5m
kubectl -n "$NS" get pods -o wide

step "apply the examples (StorageClass, PVC, Postgres, CronJob)"
# examples/secret.yaml is not applied: the chart created the same Secret.
kubectl apply -f "$ROOT/examples/storageclass.yaml"
kubectl apply -f "$ROOT/examples/pvc.yaml"
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/pg-backups --timeout=180s
PV="$(kubectl get pvc pg-backups -o jsonpath='{.spec.volumeName}')"
HANDLE="$(kubectl get pv "$PV" -o jsonpath='{.spec.csi.volumeHandle}')"
echo "PVC bound to $PV, volume handle $HANDLE"
kubectl apply -f "$ROOT/examples/postgres.yaml"
kubectl rollout status deploy/postgres --timeout=300s
kubectl exec deploy/postgres -- psql -U postgres -d app -c \
  "CREATE TABLE IF NOT EXISTS e2e(id int PRIMARY KEY, v text);
   INSERT INTO e2e SELECT g, md5(g::text) FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING;"
kubectl apply -f "$ROOT/examples/backup-cronjob.yaml"

step "run one backup now and wait for it"
kubectl create job --from=cronjob/pg-backup pg-backup-e2e
if ! kubectl wait --for=condition=complete job/pg-backup-e2e --timeout=600s; then
  kubectl describe job/pg-backup-e2e; kubectl get events --sort-by=.lastTimestamp | tail -30
  kubectl logs job/pg-backup-e2e || true; exit 1
fi
kubectl logs job/pg-backup-e2e

step "the dump is an object in the bucket"
export AWS_ACCESS_KEY_ID="$DCS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$DCS_SECRET_ACCESS_KEY" AWS_DEFAULT_REGION="$REGION"
LISTING="$(aws s3 ls --endpoint-url "$DCS_ENDPOINT" "s3://$HANDLE/")"
echo "$LISTING"
echo "$LISTING" | grep -Eq '[0-9]{8}T[0-9]{6}Z\.dump$' || { echo "FAIL: no dump in s3://$HANDLE/"; exit 1; }

step "restore it and compare"
kubectl apply -f "$ROOT/examples/restore-job.yaml"
kubectl wait --for=condition=complete job/pg-restore --timeout=600s || { kubectl logs job/pg-restore; exit 1; }
sum() { kubectl exec deploy/postgres -- psql -U postgres -d "$1" -tAc \
  "SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM e2e"; }
[ "$(sum app)" = "$(sum app_restored)" ] || { echo "FAIL: restored data differs"; exit 1; }

step "delete the PVC: reclaimPolicy Delete removes the bucket"
kubectl delete -f "$ROOT/examples/restore-job.yaml" -f "$ROOT/examples/backup-cronjob.yaml" --wait=true
kubectl delete job pg-backup-e2e --wait=true
kubectl delete -f "$ROOT/examples/pvc.yaml" --wait=true
kubectl wait --for=delete "pv/$PV" --timeout=180s
if aws s3 ls --endpoint-url "$DCS_ENDPOINT" "s3://${HANDLE%%/*}/" >/dev/null 2>&1; then
  echo "FAIL: bucket ${HANDLE%%/*} still exists after the PVC was deleted"; exit 1
fi

echo; echo "E2E PASSED"
