#!/usr/bin/env bash
# End-to-end scenario for `kubectl gpu patch-containerd` on the local test
# cluster (tests/e2e/cluster; KWOK nodes whose node-agent exec runs in a
# sandbox where /host is the node's fixture tree and `systemctl` is a stub
# that records its calls in /host/var/log/systemctl-calls.log and re-renders
# config.toml from the real k3s templates on `restart`).
#
#   gpu-h200-0         RKE2 v1.33.10, containerd 2.2.2, v3 config with imports  -> drop-in
#   gpu-a100-legacy-0  RKE2 v1.30.14, containerd 1.7.27, v2 config, no imports  -> default-runtime / template
#
# Steps: dry run shows a diff and changes nothing; --apply writes the
# expected file in the node tree, records a detached `systemctl restart` of
# the node's unit, and confirms the re-rendered config; a second run is a
# no-op; --rollback --apply restores every file byte for byte; bad input is
# refused with exit 1 and changes nothing; no node-agent pod remains.
# The nodes' trees are left as they were found (the restart log grows).
#
# Usage: tests/e2e/scenarios/patch-containerd.sh
#   Needs KUBECONFIG and RKE2GPU_NODE_TREES from `tests/e2e/cluster env`
#   (evaluated automatically when unset; $RKE2GPU_CLUSTER_SCRIPT names
#   another checkout's cluster script), kubectl on PATH, and
#   kubectl-gpu ($KUBECTL_GPU, default target/debug/kubectl-gpu).
set -u
cd "$(dirname "$0")/../../.."
CLUSTER=${RKE2GPU_CLUSTER_SCRIPT:-tests/e2e/cluster}
if [ -z "${KUBECONFIG:-}" ] || [ -z "${RKE2GPU_NODE_TREES:-}" ]; then
  if [ -x "$CLUSTER" ]; then eval "$("$CLUSTER" env)"; fi
fi
: "${KUBECONFIG:?run tests/e2e/cluster up and eval \"\$(tests/e2e/cluster env)\"}"
: "${RKE2GPU_NODE_TREES:?run tests/e2e/cluster up and eval \"\$(tests/e2e/cluster env)\"}"
BIN=${KUBECTL_GPU:-target/debug/kubectl-gpu}
[ -x "$BIN" ] || cargo build -q -p kubectl-gpu || exit 2
KC=${KUBECTL:-kubectl}

for n in gpu-h200-0 gpu-a100-legacy-0 worker-0; do
  [ -f "$RKE2GPU_NODE_TREES/$n/var/lib/rancher/rke2/agent/etc/containerd/config.toml" ] || {
    echo "no live node tree $RKE2GPU_NODE_TREES/$n: is the cluster up (\`$CLUSTER status\`)?" >&2; exit 2; }
done
$KC get node gpu-h200-0 >/dev/null || { echo "cannot reach the cluster with KUBECONFIG=$KUBECONFIG" >&2; exit 2; }

pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

CTD=var/lib/rancher/rke2/agent/etc/containerd
H=$RKE2GPU_NODE_TREES/gpu-h200-0
A=$RKE2GPU_NODE_TREES/gpu-a100-legacy-0
W=$RKE2GPU_NODE_TREES/worker-0
tree_sum() { (cd "$1" && find etc var/lib -type f ! -name '*.bak-kubectl-gpu-*' -print0 | sort -z | xargs -0 sha256sum); }
calls() { cat "$1/var/log/systemctl-calls.log" 2>/dev/null | wc -l; }
new_calls() { tail -n +"$(( $2 + 1 ))" "$1/var/log/systemctl-calls.log" 2>/dev/null; }
pg() { "$BIN" patch-containerd "$@"; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

h_before=$(tree_sum "$H"); a_before=$(tree_sum "$A")
h_calls=$(calls "$H"); a_calls=$(calls "$A")

# 1. Dry run: diff, nothing written, no restart.
pg --node gpu-h200-0 --set-as-default > "$T/dry.txt"; rc=$?
check "dry run exits 0" "[ $rc = 0 ]"
check "dry run shows the drop-in diff" "grep -q '^+++ b/$CTD/config-v3.toml.d/99-nvidia.toml' '$T/dry.txt' && grep -q '^+  default_runtime_name = \"nvidia\"' '$T/dry.txt'"
check "dry run says method drop-in" "grep -q 'method drop-in' '$T/dry.txt'"
check "dry run changes no file" "[ \"\$(tree_sum '$H')\" = \"\$h_before\" ]"
check "dry run restarts nothing" "[ \$(calls '$H') = $h_calls ]"

# 2. --apply on the v3 node: drop-in, detached restart of rke2-agent, confirmed.
pg --node gpu-h200-0 --set-as-default --apply -o json > "$T/h.json"; rc=$?
check "v3 --apply exits 0" "[ $rc = 0 ]"
check "v3 --apply is confirmed (drop-in)" "jq -e '.nodes[0] | .outcome == \"confirmed\" and .method == \"drop-in\" and .confirmed == true' '$T/h.json' >/dev/null"
check "v3 drop-in written in the node tree" "grep -q 'default_runtime_name = \"nvidia\"' '$H/$CTD/config-v3.toml.d/99-nvidia.toml'"
check "v3 restart of rke2-agent recorded" "new_calls '$H' $h_calls | grep -qx 'systemctl --no-block restart rke2-agent'"
h_calls2=$(calls "$H")
pg --node gpu-h200-0 --set-as-default --apply -o json > "$T/h2.json"; rc=$?
check "v3 second run exits 0 and is a no-op" "[ $rc = 0 ] && jq -e '.nodes[0] | .outcome == \"unchanged\" and (.files | length) == 0' '$T/h2.json' >/dev/null"
check "v3 second run restarts nothing" "[ \$(calls '$H') = $h_calls2 ]"

# 3. --apply on the v2 node: default-runtime (99-gpu.yaml), re-rendered config has default_runtime_name.
pg --node gpu-a100-legacy-0 --set-as-default --apply -o json > "$T/a.json"; rc=$?
check "v2 --set-as-default exits 0, method default-runtime, confirmed" "[ $rc = 0 ] && jq -e '.nodes[0] | .outcome == \"confirmed\" and .method == \"default-runtime\"' '$T/a.json' >/dev/null"
check "v2 99-gpu.yaml written" "grep -q '^default-runtime: \"nvidia\"' '$A/etc/rancher/rke2/config.yaml.d/99-gpu.yaml'"
check "v2 config.toml re-rendered with default_runtime_name" "grep -q 'default_runtime_name = \"nvidia\"' '$A/$CTD/config.toml'"
# ... and a runtime RKE2 does not detect itself: base template.
pg --node gpu-a100-legacy-0 --runtime-name nvidia-custom --apply -o json > "$T/a2.json"; rc=$?
check "v2 custom runtime exits 0, method template, confirmed" "[ $rc = 0 ] && jq -e '.nodes[0] | .outcome == \"confirmed\" and .method == \"template\"' '$T/a2.json' >/dev/null"
check "v2 template written" "head -1 '$A/$CTD/config.toml.tmpl' | grep -q 'template \"base\"'"
check "v2 config.toml re-rendered with the custom runtime" "grep -q 'runtimes.\"nvidia-custom\".options' '$A/$CTD/config.toml'"
check "v2 restarts of rke2-agent recorded" "[ \$(new_calls '$A' $a_calls | grep -cx 'systemctl --no-block restart rke2-agent') = 2 ]"
a_calls2=$(calls "$A")
pg --node gpu-a100-legacy-0 --runtime-name nvidia-custom --apply > "$T/a3.txt"; rc=$?
check "v2 second run is a no-op" "[ $rc = 0 ] && grep -q 'Nothing to do' '$T/a3.txt' && [ \$(calls '$A') = $a_calls2 ]"

# 4. Bad input: refused with exit 1, nothing changed.
pg --node gpu-a100-legacy-0 --set-as-default --method drop-in > "$T/bad1.txt" 2>&1; rc=$?
check "--method drop-in on a node without imports: exit 1 with the reason" "[ $rc = 1 ] && grep -q 'method drop-in cannot be used' '$T/bad1.txt'"
cp -p "$W/$CTD/config.toml" "$T/worker.toml"
printf 'version = 3\n[plugins\n' > "$W/$CTD/config.toml"
w_before=$(tree_sum "$W")
pg --node worker-0 --apply > "$T/bad2.txt" 2>&1; rc=$?
check "unparseable config.toml: exit 1, line named, nothing written" "[ $rc = 1 ] && grep -q 'invalid TOML at line 2' '$T/bad2.txt' && [ \"\$(tree_sum '$W')\" = \"\$w_before\" ]"
cp -p "$T/worker.toml" "$W/$CTD/config.toml"
pg --node no-such-node > "$T/bad3.txt" 2>&1; rc=$?
check "unknown node: exit 2" "[ $rc = 2 ] && grep -q 'does not exist' '$T/bad3.txt'"

# 5. Rollback restores everything byte for byte.
pg --node gpu-h200-0 --node gpu-a100-legacy-0 --rollback > "$T/rb-dry.txt"; rc=$?
check "rollback dry run lists the removals" "[ $rc = 0 ] && grep -q 'remove /$CTD/config-v3.toml.d/99-nvidia.toml' '$T/rb-dry.txt'"
pg --node gpu-h200-0 --node gpu-a100-legacy-0 --rollback --apply -o json > "$T/rb.json"; rc=$?
check "rollback --apply exits 0 on both nodes" "[ $rc = 0 ] && jq -e '[.nodes[].outcome] == [\"rolled-back\", \"rolled-back\"]' '$T/rb.json' >/dev/null"
check "v3 tree byte-identical after rollback" "[ \"\$(tree_sum '$H')\" = \"\$h_before\" ]"
check "v2 tree byte-identical after rollback (config.toml re-rendered as before)" "[ \"\$(tree_sum '$A')\" = \"\$a_before\" ]"
pg --node gpu-h200-0 --node gpu-a100-legacy-0 --rollback --apply > "$T/rb2.txt"; rc=$?
check "second rollback is a no-op" "[ $rc = 0 ] && grep -q 'Nothing to do' '$T/rb2.txt'"

# 6. Offline mode, no cluster.
KUBECONFIG=/nonexistent pg --config-file "$H/$CTD/config.toml" --rke2-version v1.33.10+rke2r1 --containerd-version 2.2.2 --set-as-default --out-dir "$T/out" > "$T/off.txt"; rc=$?
check "offline --out-dir exits 0 and lists the written files" "[ $rc = 0 ] && grep -q 'config-v3.toml.d/99-nvidia.toml' '$T/off.txt' && [ -f '$T/out/$CTD/config-v3.toml.d/99-nvidia.toml' ] && [ -f '$T/out/rendered/effective-config.toml' ]"

# 7. No node-agent pod remains.
left=$($KC get pods -A -l app.kubernetes.io/managed-by=kubectl-gpu,app.kubernetes.io/component=node-agent -o name 2>/dev/null | wc -l)
check "no node-agent pod remains" "[ $left = 0 ]"

echo "patch-containerd scenario: $pass passed, $fail failed"
[ "$fail" = 0 ]
