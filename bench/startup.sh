#!/usr/bin/env bash
# Benchmark (not a timed test) of the release binary's start-up: `kubectl-gpu --help` (and
# `version`) against floors that do nothing or little, run interleaved (one of each per round,
# so load from other sessions hits all alike), median and p90 of each, the ratio to the floor,
# and the binary's size.
#
#   bench/startup.sh [--runs 200] [--bin target/release/kubectl-gpu]...
#
# --bin repeats: several builds (e.g. before and after a profile change) are measured in the
# same rounds, so their times compare directly.
# Floors: /bin/true (fork + exec alone) and, when found, `kubectl version --client` (a Go
# binary of the same kind of job: parse flags, print, exit). Timing is fork+exec+wait from
# Python's perf_counter, stdout to /dev/null.
# Environment: KUBECTL (default: `kubectl` on PATH, else the test cache's).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=200
BINS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --bin) BINS+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#BINS[@]} -gt 0 ] || BINS=(target/release/kubectl-gpu)
for b in "${BINS[@]}"; do
  [ -x "$b" ] || { echo "no $b: cargo build --release -p kubectl-gpu" >&2; exit 2; }
done
KUBECTL=${KUBECTL:-$(command -v kubectl || ls -d "${RKE2GPU_TEST_CACHE:-$HOME/.cache/rke2gpu-test}"/bin/kubernetes-v*/kubectl 2>/dev/null | sort -V | tail -1 || true)}

echo "# bench/startup.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS rounds, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for b in "${BINS[@]}"; do
  echo "# $b: $(stat -c %s "$b") bytes, $(file -b "$b" | grep -o 'not stripped\|stripped'), $(file -b "$b" | grep -o 'statically linked\|static-pie linked\|dynamically linked')"
done
python3 - "$RUNS" "${KUBECTL:-}" "${BINS[@]}" <<'EOF'
import os, subprocess, sys, time
runs, kubectl, binaries = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
cmds = [("true (floor)", ["/bin/true"])]
if kubectl:
    cmds.append(("kubectl version --client", [kubectl, "version", "--client"]))
for b in binaries:
    label = b if len(binaries) > 1 else "kubectl-gpu"
    cmds += [(f"{label} --help", [b, "--help"]), (f"{label} version", [b, "version"])]
times = {n: [] for n, _ in cmds}
null = open(os.devnull, "w")
for _ in range(3):  # warm the page cache
    for _, c in cmds:
        subprocess.run(c, stdout=null, stderr=null)
for _ in range(runs):
    for n, c in cmds:
        t = time.perf_counter()
        subprocess.run(c, stdout=null, stderr=null, check=True)
        times[n].append(time.perf_counter() - t)
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]
floor = q(times["true (floor)"], 0.5)
w = max(len(n) for n, _ in cmds)
print(f"{'command':{w}} {'median ms':>10} {'p90 ms':>8} {'x true':>7}")
for n, _ in cmds:
    m = q(times[n], 0.5)
    print(f"{n:{w}} {m * 1e3:10.2f} {q(times[n], 0.9) * 1e3:8.2f} {m / floor:7.1f}")
EOF
