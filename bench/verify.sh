#!/usr/bin/env bash
# Benchmark of `kubectl gpu verify` over many simulated GPU nodes (not a test).
#
#   bench/verify.sh                      # 500 scale nodes, cluster "bench", torn down at the end
#   NODES=100 BENCH_KEEP=1 bench/verify.sh
#
# Starts (or reuses) `RKE2GPU_CLUSTER=bench tests/e2e/cluster up --nodes N --pods-per-node 0`,
# builds kubectl-gpu (debug, like the tests), then times, through kubectl's plugin lookup:
#   single  kubectl gpu verify --node gpu-h200-0          (one pod; the baseline)
#   all     kubectl gpu verify                            (every GPU node, default --parallel)
#   all/64  kubectl gpu verify --parallel 64
# and prints wall time, the ratio to the single run, and API requests.
#
# Requests are counted on the client: with RUST_LOG=kube_client=debug, kube-rs logs one
# `requesting` line per HTTP request it sends (list pages, watches, logs, SSARs, deletes:
# everything, snapshot and preflight included). `per-node` is the binary's own per-node
# counter (the `api_requests` field: create, list+watch, log, events, delete). The apiserver's
# metrics would also count kwok's and the controllers' requests, so they are not used.
#
# Environment: RKE2GPU_CLUSTER (default bench), NODES (500), RUNS (3: the median is shown),
# BENCH_KEEP=1 (leave the cluster running), KUBECTL_GPU_PROFILE (debug|release, default debug).
set -euo pipefail

cd "$(dirname "$0")/.."
export RKE2GPU_CLUSTER="${RKE2GPU_CLUSTER:-bench}"
NODES="${NODES:-500}"
RUNS="${RUNS:-3}"
PROFILE="${KUBECTL_GPU_PROFILE:-debug}"

if [[ "$PROFILE" == release ]]; then
  cargo build -q -p kubectl-gpu --release
else
  cargo build -q -p kubectl-gpu
fi

teardown() {
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
    echo "[bench] tearing down cluster $RKE2GPU_CLUSTER" >&2
    tests/e2e/cluster down >&2 || true
  fi
}
trap teardown EXIT

t0=$(date +%s.%N)
tests/e2e/cluster up --nodes "$NODES" --pods-per-node 0 >/dev/null
eval "$(tests/e2e/cluster env)"
echo "[bench] cluster up in $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
export PATH="$PWD/target/$PROFILE:$PATH"

gpu_nodes=$(kubectl get nodes -l nvidia.com/gpu.present=true -o name | wc -l)
echo "[bench] $gpu_nodes GPU nodes ($NODES scale + the named ones)" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"; teardown' EXIT

# run NAME ARGS...: RUNS runs; prints "name wall_s requests per_node_sum nodes passed exit" (median by wall).
run() {
  local name=$1
  shift
  local i
  for ((i = 0; i < RUNS; i++)); do
    local s e rc=0
    s=$(date +%s.%N)
    RUST_LOG=warn,kube_client=debug NO_COLOR=1 kubectl gpu verify -o json "$@" \
      >"$work/$name.$i.json" 2>"$work/$name.$i.log" || rc=$?
    e=$(date +%s.%N)
    local wall req
    wall=$(echo "$e - $s" | bc)
    req=$(grep -c ' requesting$' "$work/$name.$i.log" || true)
    python3 - "$work/$name.$i.json" "$name" "$wall" "$req" "$rc" <<'EOF'
import json, sys
path, name, wall, req, rc = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{name} {wall} {req} 0 0 0 {rc}")
    sys.exit(0)
nodes = r.get("nodes", [])
per = sum(n.get("api_requests", 0) for n in nodes)
passed = sum(1 for n in nodes if n.get("result") == "pass")
print(f"{name} {wall} {req} {per} {len(nodes)} {passed} {rc}")
EOF
    # let the namespace controller finish before the next run
    for _ in $(seq 120); do
      [[ -z "$(kubectl get ns -l app.kubernetes.io/managed-by=kubectl-gpu -o name)" ]] && break
      sleep 1
    done
  done | sort -k2 -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2)'
}

echo "[bench] single node ($RUNS runs)" >&2
single=$(run single --node gpu-h200-0)
echo "[bench] all nodes, default --parallel ($RUNS runs)" >&2
all16=$(run all-default)
echo "[bench] all nodes, --parallel 64 ($RUNS runs)" >&2
all64=$(run all-p64 --parallel 64)

python3 - "$single" "$all16" "$all64" <<'EOF'
import sys
rows = [l.split() for l in sys.argv[1:]]
base = float(rows[0][1])
print(f"{'run':<12} {'nodes':>5} {'passed':>6} {'wall s':>7} {'x single':>8} {'HTTP req':>8} {'req/node':>8} {'per-node':>8} {'exit':>4}")
for name, wall, req, per, nodes, passed, rc in rows:
    n = max(int(nodes), 1)
    print(f"{name:<12} {nodes:>5} {passed:>6} {float(wall):>7.2f} {float(wall)/base:>8.1f} {req:>8} "
          f"{int(req)/n:>8.2f} {int(per)/n:>8.2f} {rc:>4}")
EOF
echo "[bench] raw logs and JSON in $work (removed at exit; BENCH_KEEP=1 keeps the cluster only)" >&2
