#!/usr/bin/env bash
# Benchmark (not a timed test) of `kubectl gpu report -o json` against the raw
# fetch (`kubectl get nodes,pods -A -o json`) and kubectl-view-allocations
# (`-r gpu`), on a simulated cluster: wall time and peak RSS of each, measured
# with /usr/bin/time -v, side by side in one run, with ratios.
#
# Usage:
#   bench/report.sh [--nodes 5000] [--pods-per-node 10] [--runs 3] [--no-up]
#
#   --nodes/--pods-per-node   scale objects to add (`tests/e2e/cluster up --nodes N
#                             --pods-per-node M`, which reuses a running cluster);
#                             5000 x 10 = 5,000 GPU nodes and 50,000 GPU pods.
#   --no-up                   measure whatever cluster KUBECONFIG points at.
#   --runs N                  runs per command; the median is reported.
#
# Environment: CLUSTER_SCRIPT (default: tests/e2e/cluster of this checkout), BENCH_CACHE (default ~/.cache/rke2gpu-bench,
# kubectl-view-allocations is `cargo install`ed there from crates.io),
# KUBECTL_GPU (default: target/release/kubectl-gpu, built if missing).
set -euo pipefail

NODES=5000
PPN=10
RUNS=3
UP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=$2; shift 2 ;;
    --pods-per-node) PPN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-up) UP=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BENCH_CACHE:-$HOME/.cache/rke2gpu-bench}
mkdir -p "$CACHE"

if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (Debian package 'time')" >&2
  { apt-get update -qq && apt-get install -y -qq time; } >&2 || { echo "need /usr/bin/time" >&2; exit 2; }
fi

KVA=$CACHE/view-allocations/bin/kubectl-view-allocations
if [ ! -x "$KVA" ]; then
  cargo install --locked kubectl-view-allocations --root "$CACHE/view-allocations" >&2 \
    || cargo install kubectl-view-allocations --root "$CACHE/view-allocations" >&2
fi

KGPU=${KUBECTL_GPU:-$ROOT/target/release/kubectl-gpu}
if [ ! -x "$KGPU" ]; then
  (cd "$ROOT" && cargo build --release -p kubectl-gpu >&2)
fi

CLUSTER_SCRIPT=${CLUSTER_SCRIPT:-$ROOT/tests/e2e/cluster}
if [ "$UP" = 1 ]; then
  "$CLUSTER_SCRIPT" up --nodes "$NODES" --pods-per-node "$PPN" >&2
fi
if [ -z "${KUBECONFIG:-}" ]; then
  eval "$("$CLUSTER_SCRIPT" env)"
fi
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

nodes=$(kubectl get nodes --no-headers 2>/dev/null | wc -l)
pods=$(kubectl get pods -A --no-headers 2>/dev/null | wc -l)
echo "cluster: $nodes nodes, $pods pods; $RUNS run(s) each, median shown" >&2

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# measure NAME CMD... -> "wall_s rss_kib" (median over RUNS by wall time)
measure() {
  local name=$1; shift
  local i
  for i in $(seq "$RUNS"); do
    /usr/bin/time -v -o "$OUT/$name.$i.time" "$@" > "$OUT/$name.$i.out" 2> "$OUT/$name.$i.err" || {
      echo "$name failed (run $i): $(tail -3 "$OUT/$name.$i.err")" >&2; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(k=1;k<=n;k++) s=s*60+a[k]; print s}' "$OUT/$name.$i.time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.$i.time")
    echo "$wall $rss"
  done | sort -n | awk -v m=$(( (RUNS + 1) / 2 )) 'NR==m'
}

read -r g_wall g_rss < <(measure gpu "$KGPU" report -o json)
read -r k_wall k_rss < <(measure raw kubectl get nodes,pods -A -o json)
read -r v_wall v_rss < <(measure kva "$KVA" -r gpu)

g_bytes=$(wc -c < "$OUT/gpu.1.out")
k_bytes=$(wc -c < "$OUT/raw.1.out")
gpu_nodes=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["nodes"]["nodes"]), d["nodes"]["totals"]["gpu"]["allocated"])' "$OUT/gpu.1.out" 2>/dev/null || echo "? ?")

printf '\n%-46s %10s %12s %12s\n' "command" "wall s" "peak RSS MiB" "stdout bytes"
printf '%-46s %10.2f %12.1f %12s\n' "kubectl gpu report -o json" "$g_wall" "$(echo "$g_rss/1024" | bc -l)" "$g_bytes"
printf '%-46s %10.2f %12.1f %12s\n' "kubectl get nodes,pods -A -o json" "$k_wall" "$(echo "$k_rss/1024" | bc -l)" "$k_bytes"
printf '%-46s %10.2f %12.1f %12s\n' "kubectl-view-allocations -r gpu" "$v_wall" "$(echo "$v_rss/1024" | bc -l)" "-"
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}x' if b else 'n/a')" "$1" "$2"; }
echo
echo "report: GPU nodes and allocated nvidia.com/gpu: $gpu_nodes"
echo "ratio kubectl-gpu / raw fetch:         wall $(ratio "$g_wall" "$k_wall"), peak RSS $(ratio "$g_rss" "$k_rss")"
echo "ratio kubectl-gpu / view-allocations:  wall $(ratio "$g_wall" "$v_wall"), peak RSS $(ratio "$g_rss" "$v_rss")"
