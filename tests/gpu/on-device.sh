#!/usr/bin/env bash
# Runs ON the GPU host, from the repo root, with the folder staged by tests/gpu/build carried:
#
#   bash .gpu-run/on-device.sh          # writes its logs to $OUT (the device tool's folder)
#
# 1. unpack containerd/runc/toolkit/crictl; 2. nvidia-ctk cdi generate for the host driver;
# 3. containerd with the RKE2 v3 config + the drop-in planned by rke2gpu (the nvidia runtime,
#    BinaryName = the built nvidia-container-runtime in CDI mode); 4. import the two images;
# 5. through the CRI (crictl): a host-network pod sandbox + the verify container under the
#    `nvidia` handler, then the same under `runc`, then runc with the driver dir mounted but no devices.
# Env: GPU_DRIVER_ROOT (default /usr/local/nvidia); GPU_CDI_SPEC=file to skip `cdi generate`
# (tests/gpu/local-check uses a fake driver); OUT (default /tmp/gpu-out).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T=/tmp/gpu
OUT=${OUT:-/tmp/gpu-out}
DRIVER_ROOT=${GPU_DRIVER_ROOT:-/usr/local/nvidia}
mkdir -p "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
set -x
step() { set +x; printf '\n===== %s =====\n' "$*"; set -x; }

step host
date -u +%FT%TZ
uname -a
grep PRETTY_NAME /etc/os-release
hostname
ls -la "$DRIVER_ROOT" "$DRIVER_ROOT/bin" 2>&1 | head -40
ls "$DRIVER_ROOT/lib64" 2>&1 | head -80
ls -la /dev/nvidia* 2>&1
"$DRIVER_ROOT/bin/nvidia-smi" -L 2>&1
"$DRIVER_ROOT/bin/nvidia-smi" --query-gpu=index,name,uuid,driver_version,memory.total,compute_cap,pci.bus_id --format=csv,noheader > /tmp/host-query.csv 2>&1
cat /tmp/host-query.csv
cat /proc/self/oom_score_adj /proc/sys/kernel/osrelease
mount | grep -E ' / | /tmp |nvidia' | head
ldconfig -p | grep -E 'nvidia-ml|libcuda\.' | head
cat /proc/self/cgroup
ls /etc/cdi /var/run/cdi 2>&1

step unpack
rm -rf "$T"
mkdir -p "$T/bin" "$T/log" "$T/cdi" "$T/pods"
mv /tmp/host-query.csv "$T/log/host-query.csv"
for f in "$HERE"/bin/*.xz; do
  b=$(basename "$f" .xz)
  xz -dc "$f" > "$T/bin/$b" && chmod 0755 "$T/bin/$b"
done
export PATH="$T/bin:$PATH"
cat "$HERE/bin/VERSIONS" "$HERE/images/VERSIONS"
containerd --version
runc --version
nvidia-ctk --version
nvidia-container-runtime --version
crictl --version
ldd "$T/bin/nvidia-container-runtime" "$T/bin/runc" 2>&1

step cdi
if [ -n "${GPU_CDI_SPEC:-}" ]; then
  cp "$GPU_CDI_SPEC" "$T/cdi/nvidia.yaml"
else
  nvidia-ctk --debug cdi generate --driver-root="$DRIVER_ROOT" --dev-root=/ \
    --nvidia-cdi-hook-path="$T/bin/nvidia-cdi-hook" --ldconfig-path=/sbin/ldconfig \
    --output="$T/cdi/nvidia.yaml"
  rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$T/cdi/nvidia.yaml" ]; then
    step "cdi generate failed (rc=$rc): retry with the driver's lib64 as search path"
    nvidia-ctk --debug cdi generate --driver-root="$DRIVER_ROOT" --dev-root=/ \
      --library-search-path="$DRIVER_ROOT/lib64" \
      --nvidia-cdi-hook-path="$T/bin/nvidia-cdi-hook" --ldconfig-path=/sbin/ldconfig \
      --output="$T/cdi/nvidia.yaml"
  fi
fi
if [ ! -s "$T/cdi/nvidia.yaml" ]; then
  step "FALLBACK: nvidia-ctk cdi generate failed twice; a hand-written CDI spec"
  cat > "$T/cdi/nvidia.yaml" <<EOF
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0}]
- name: all
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0}]
containerEdits:
  deviceNodes: [{path: /dev/nvidiactl}, {path: /dev/nvidia-uvm}, {path: /dev/nvidia-uvm-tools}]
  env: [LD_LIBRARY_PATH=/usr/local/nvidia/lib64]
  mounts:
  - {hostPath: $DRIVER_ROOT, containerPath: /usr/local/nvidia, options: [ro, nosuid, nodev, bind]}
  - {hostPath: $DRIVER_ROOT/bin/nvidia-smi, containerPath: /usr/bin/nvidia-smi, options: [ro, nosuid, nodev, bind]}
EOF
fi
cp "$T/cdi/nvidia.yaml" "$OUT/cdi-nvidia.yaml"
nvidia-ctk cdi list --spec-dir "$T/cdi"

step "toolkit config (CDI mode)"
mkdir -p "$T/etc/nvidia-container-runtime"
cat > "$T/etc/nvidia-container-runtime/config.toml" <<EOF
[nvidia-container-runtime]
debug = "$T/log/nvidia-container-runtime.log"
log-level = "debug"
mode = "cdi"
runtimes = ["$T/bin/runc"]

[nvidia-container-runtime.modes.cdi]
default-kind = "nvidia.com/gpu"
spec-dirs = ["$T/cdi"]

[nvidia-ctk]
path = "$T/bin/nvidia-ctk"
EOF
cat "$T/etc/nvidia-container-runtime/config.toml"
export NVIDIA_CTK_CONFIG_FILE_PATH="$T/etc/nvidia-container-runtime/config.toml"

step "containerd config: RKE2 v3 generated config + the planned drop-in"
CD=$T/rke2/agent/etc/containerd
mkdir -p "$CD"
cp "$HERE/stage/config.toml" "$CD/config.toml"
cp -r "$HERE/stage/files/tmp/gpu/." "$T/"
cat "$HERE/stage/plan.txt"
find "$T/rke2" -type f
# Host tweak, not from the plan: the CRI gives every sandbox oom_score_adj -998; where this host
# refuses to lower oom_score_adj (a sandboxed dev machine does), tell containerd to clamp it.
cat /proc/self/oom_score_adj
if ! sh -c 'echo -998 > /proc/self/oom_score_adj' 2>/dev/null; then
  printf 'version = 3\n\n[plugins.%s]\n  restrict_oom_score_adj = true\n' "'io.containerd.cri.v1.runtime'" \
    > "$CD/config-v3.toml.d/50-host-oom.toml"
  cat "$CD/config-v3.toml.d/50-host-oom.toml"
fi
SOCK=$T/run/k3s/containerd/containerd.sock
containerd --config "$CD/config.toml" config dump > "$T/log/containerd-config-dump.toml" 2>&1
grep -n -A6 "runtimes.nvidia\]\|runtimes.'nvidia'\]\|runtimes.nvidia.options\]" "$T/log/containerd-config-dump.toml"

step "start containerd"
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$SOCK" "$SOCK" > "$T/bin/crictl.yaml"
export CRI_CONFIG_FILE=$T/bin/crictl.yaml
start_containerd() {
  containerd --config "$CD/config.toml" --log-level debug >> "$T/log/containerd.log" 2>&1 &
  CPID=$!
  for i in $(seq 1 60); do crictl version >/dev/null 2>&1 && break; sleep 0.5; done
  crictl version
  crictl info > "$T/log/crictl-info$1.json" 2>&1
  grep -n -A12 '"nvidia"' "$T/log/crictl-info$1.json" | head -40
  grep -n '"defaultRuntimeName"' "$T/log/crictl-info$1.json"
}
start_containerd ""

step "import images"
ctr -a "$SOCK" -n k8s.io images import "$HERE/images/pause.tar"
ctr -a "$SOCK" -n k8s.io images import "$HERE/images/verify.tar"
crictl images

SCRIPT=$(cat "$HERE/stage/verify.sh")
# case name, runtime handler, extra container config (JSON members)
run_case() {
  local name=$1 handler=$2 extra=$3 d="$T/pods/$1"
  step "pod $name: runtime handler $handler"
  mkdir -p "$d/logs"
  python3 - "$d" "$name" "$SCRIPT" "$extra" <<'PY'
import json, sys, uuid
d, name, script, extra = sys.argv[1:]
pod = {"metadata": {"name": f"gpu-verify-{name}", "namespace": "default", "uid": str(uuid.uuid4()), "attempt": 0},
       "log_directory": f"{d}/logs",
       "linux": {"security_context": {"namespace_options": {"network": 2}}}}
ctr = {"metadata": {"name": "verify"}, "image": {"image": "docker.io/rke2gpu/verify-smi:local"},
       "command": ["sh", "-c", script], "log_path": "verify.log",
       "envs": [{"key": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                {"key": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"}]}
for k, v in json.loads("{" + extra + "}").items():
    if k == "envs":
        ctr["envs"] += v
    else:
        ctr[k] = v
json.dump(pod, open(f"{d}/pod.json", "w"), indent=1)
json.dump(ctr, open(f"{d}/container.json", "w"), indent=1)
PY
  cat "$d/pod.json" "$d/container.json"
  local pod cid state=""
  pod=$(crictl runp --runtime "$handler" "$d/pod.json") || { echo "RESULT $name: runp failed"; return; }
  cid=$(crictl create "$pod" "$d/container.json" "$d/pod.json") || { echo "RESULT $name: create failed"; crictl inspectp "$pod" > "$d/inspectp.json"; return; }
  crictl start "$cid" || echo "RESULT $name: start failed"
  for i in $(seq 1 120); do
    state=$(crictl inspect -o go-template --template '{{.status.state}}' "$cid" 2>/dev/null)
    [ "$state" = CONTAINER_EXITED ] && break
    sleep 0.5
  done
  crictl inspect "$cid" > "$d/inspect.json" 2>&1
  crictl inspectp "$pod" > "$d/inspectp.json" 2>&1
  crictl logs "$cid" > "$OUT/$name.log" 2>&1
  cat "$OUT/$name.log"
  echo "RESULT $name: state=$state exitCode=$(crictl inspect -o go-template --template '{{.status.exitCode}}' "$cid")"
  crictl stopp "$pod" && crictl rmp "$pod"
}

run_case nvidia-runtime nvidia ''
if ! grep -q '^RESULT nvidia-runtime: state=CONTAINER_EXITED exitCode=0$' "$OUT/device.log"; then
  step "RETRY: the nvidia case failed; the CDI spec again without hooks, libraries by LD_LIBRARY_PATH"
  mv "$T/cdi/nvidia.yaml" "$T/log/nvidia-with-hooks.yaml"
  nvidia-ctk cdi generate --driver-root="$DRIVER_ROOT" --dev-root=/ --disable-hook=all \
    --output="$T/cdi/nvidia.yaml"
  run_case nvidia-runtime-nohooks nvidia \
    '"envs": [{"key": "LD_LIBRARY_PATH", "value": "/lib64:/usr/lib64:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu"}]'
fi
run_case runc runc ''
run_case runc-driver-mounted runc "\"mounts\": [{\"container_path\": \"$DRIVER_ROOT\", \"host_path\": \"$DRIVER_ROOT\", \"readonly\": true}],
  \"envs\": [{\"key\": \"PATH\", \"value\": \"$DRIVER_ROOT/bin:/usr/sbin:/usr/bin:/sbin:/bin\"}, {\"key\": \"LD_LIBRARY_PATH\", \"value\": \"$DRIVER_ROOT/lib64\"}]"

CLI_DROPIN=$HERE/stage/cli/tmp/gpu/rke2/agent/etc/containerd/config-v3.toml.d/99-nvidia.toml
if [ -f "$CLI_DROPIN" ]; then
  step "restart containerd with the drop-in of kubectl-gpu patch-containerd --set-as-default (offline mode)"
  cat "$HERE/stage/cli-plan.txt"
  kill "$CPID"; wait "$CPID"
  cp "$CLI_DROPIN" "$CD/config-v3.toml.d/99-nvidia.toml"
  cat "$CD/config-v3.toml.d/99-nvidia.toml"
  start_containerd "-cli"
  # No runtime handler: containerd's default runtime, which the drop-in made `nvidia`.
  run_case cli-default-runtime "" ''
fi

step "runtime debug log (nvidia-container-runtime)"
tail -n 60 "$T/log/nvidia-container-runtime.log"

step stop
kill "$CPID"; wait "$CPID"
date -u +%FT%TZ
tar -C "$T" -czf "$OUT/extras.tar.gz" log pods cdi etc rke2/agent/etc
ls -la "$OUT"
