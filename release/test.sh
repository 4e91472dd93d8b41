#!/usr/bin/env bash
# release/test.sh: tests the release artefacts with the real tools.
#
#   release/test.sh [--no-build]
#
# Builds the release (release/build; --no-build packages the binaries already
# in target/<triple>/release) into a temp dir twice and checks:
#   - the archives are byte-identical across the two runs (inputs touched in
#     between), gzip/tar headers are the fixed ones, contents and modes;
#   - each binary is at most 15 MB and the release profile's output is stripped;
#   - the krew manifest passes krew's own validation, installs with
#     `kubectl krew install --manifest --archive` into a temp KREW_ROOT, runs
#     through kubectl's plugin lookup, completes through kubectl_complete-gpu,
#     and uninstalls; the same through a custom index (a local git repo, the
#     archives served over http://127.0.0.1);
#   - the Helm plugin tarball installs offline in Helm 3 and Helm 4 (temp
#     HELM_* dirs), `helm rke2gpu version` runs, `helm __complete rke2gpu`
#     offers the subcommands; Helm 4 with --verify=false and, when gpg is
#     present, with a throwaway key and the .prov that release/build --sign
#     writes (and refuses the unsigned tarball without --verify=false).
#
# Tools: kubectl, kubectl-krew, helm 3, helm 4 from
# ${RKE2GPU_TEST_CACHE:-$HOME/.cache/rke2gpu-test}/bin/<name>-<version>/ (the
# newest of each), else KUBECTL/KREW/HELM3/HELM4 env or PATH; a missing tool
# skips its tests with the reason. validate-krew-manifest is optional.
# RELEASE_TARGETS overrides the targets (default: release/build's default).
# Last line: "N passed, M failed, K skipped"; exit 1 if anything failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_flag=""
[ "${1:-}" = "--no-build" ] && build_flag="--no-build"

pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok    $1"; }
bad() { fail=$((fail + 1)); echo "FAIL  $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/      | /' | tail -25; return 0; }
skipped() { skip=$((skip + 1)); echo "skip  $1: $2"; }
# check NAME CMD...: runs CMD, ok when it exits 0; output shown on failure.
check() {
  local name=$1; shift
  local o
  if o=$("$@" 2>&1); then ok "$name"; else bad "$name" "$o"; fi
}
finish() {
  echo "$pass passed, $fail failed, $skip skipped"
  [ "$fail" -eq 0 ]
  exit $?
}

work=$(mktemp -d "${TMPDIR:-/tmp}/rke2gpu-release-test.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

cache=${RKE2GPU_TEST_CACHE:-$HOME/.cache/rke2gpu-test}/bin
# newest DIR/NAME-<version>/FILE, else env, else PATH
tool() {
  local prefix=$1 file=$2 envv=$3 filter=${4:-}
  if [ -n "${!envv:-}" ]; then echo "${!envv}"; return; fi
  local d
  d=$(ls -d "$cache/$prefix"-v* 2>/dev/null | grep -E "${filter:-.}" | sort -V | tail -1)
  if [ -n "$d" ] && [ -x "$d/$file" ]; then echo "$d/$file"; return; fi
  command -v "$file" 2>/dev/null || true
}
KUBECTL_BIN=$(tool kubernetes kubectl KUBECTL)
KREW_BIN=$(tool krew kubectl-krew KREW)
HELM3_BIN=$(tool helm helm HELM3 '/helm-v3\.')
HELM4_BIN=$(tool helm helm HELM4 '/helm-v4\.')
VKM_BIN=$(tool validate-krew-manifest validate-krew-manifest VALIDATE_KREW_MANIFEST)
echo "tools: kubectl=${KUBECTL_BIN:-none} krew=${KREW_BIN:-none} helm3=${HELM3_BIN:-none} helm4=${HELM4_BIN:-none} validate-krew-manifest=${VKM_BIN:-none}"

case "$(uname -m)" in
  x86_64) host_arch=amd64 host_target=x86_64-unknown-linux-musl ;;
  aarch64|arm64) host_arch=arm64 host_target=aarch64-unknown-linux-musl ;;
  *) host_arch=$(uname -m) host_target="" ;;
esac
targets=${RELEASE_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
# Each release binary at most 15 MB (project issue 13: 26.9 MB unstripped, without LTO).
max_binary_bytes=15000000

# A local HTTP server for the "download" tests (base URL of the manifest).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

start_server() {
  [ -n "$server_pid" ] && return 0
  # Helm 3 decides "HTTP archive" from a HEAD request's Content-Type
  # (application/gzip, x-gzip, x-tgz, x-gtar), not from the URL; Python's
  # default for .tgz (application/x-tar) makes Helm 3 fall back to git and
  # fail with "Cannot detect VCS".
  (cd "$d1" && exec python3 -c '
import http.server, sys
h = http.server.SimpleHTTPRequestHandler
h.extensions_map.update({".tgz": "application/gzip", ".gz": "application/gzip"})
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), h).serve_forever()' "$port" >/dev/null 2>&1) &
  server_pid=$!
  for _ in $(seq 1 30); do
    python3 -c "import urllib.request; urllib.request.urlopen('$base/SHA256SUMS')" 2>/dev/null && return 0
    sleep 0.3
  done
}

# --- build twice ---------------------------------------------------------
d1=$work/d1 d2=$work/d2
if o=$(release/build $build_flag --targets "$targets" --out "$d1" --base-url "$base" 2>&1); then
  ok "release/build ${build_flag:-(with cargo build)} for: $targets"
else
  bad "release/build" "$o"; finish
fi
for t in $targets; do touch "target/$t/release/kubectl-gpu" "target/$t/release/helm-rke2gpu"; done
touch LICENSE helm-rke2gpu/plugin.yaml
if o=$(SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) release/build --no-build --targets "$targets" --out "$d2" --base-url "$base" 2>&1); then
  if o2=$(diff "$d1/SHA256SUMS" "$d2/SHA256SUMS" 2>&1) && cmp -s "$d1/krew/plugins/gpu.yaml" "$d2/krew/plugins/gpu.yaml"; then
    ok "two builds give identical archives (SHA256SUMS: $(wc -l < "$d1/SHA256SUMS") files)"
  else bad "two builds give identical archives" "$o2"; fi
else bad "second release/build --no-build" "$o"; fi
check "SHA256SUMS verifies" sh -c "cd '$d1' && sha256sum --quiet -c SHA256SUMS"

# --- archive format ------------------------------------------------------
host_os=linux
ka="$d1/kubectl-gpu_v${version}_${host_os}_${host_arch}.tar.gz"
ha="$d1/rke2gpu-${version}-${host_os}-${host_arch}.tgz"
for a in "$d1"/*.tar.gz "$d1"/*.tgz; do
  n=$(basename "$a")
  hdr=$(od -An -tx1 -N10 "$a" | tr -d ' \n')
  # magic 1f8b, deflate 08, flags 00 (no name), mtime 00000000, xfl 02 (best), OS ff
  if [ "$hdr" = "1f8b08000000000002ff" ]; then ok "$n: gzip header (no name, mtime 0, OS 255)"
  else bad "$n: gzip header" "$hdr"; fi
  listing=$(tar -tvzf "$a" --numeric-owner 2>&1)
  want_mtime=$(date -u -d "@$(git log -1 --format=%ct)" '+%Y-%m-%d %H:%M')
  if echo "$listing" | awk '{print $2}' | grep -qvx '0/0'; then bad "$n: owners 0/0" "$listing"
  elif echo "$listing" | grep -qv "$want_mtime"; then bad "$n: mtimes = SOURCE_DATE_EPOCH ($want_mtime)" "$listing"
  else ok "$n: owners 0/0, mtimes SOURCE_DATE_EPOCH"; fi
done
for t in $targets; do
  case "$t" in
    x86_64-*linux*) a=amd64 m="x86-64" ;; aarch64-*linux*) a=arm64 m="ARM aarch64" ;; *) continue ;;
  esac
  f=$(tar -xzOf "$d1/kubectl-gpu_v${version}_linux_${a}.tar.gz" kubectl-gpu | file -)
  if echo "$f" | grep -q "$m" && echo "$f" | grep -Eq "statically linked|static-pie"; then ok "linux/$a kubectl-gpu is a static $m ELF"
  else bad "linux/$a kubectl-gpu is a static $m ELF" "$f"; fi
  # Size budget of the binary users download, and the release profile's own output stripped
  # (Cargo.toml [profile.release]; release/build strips again, so the archive alone would not
  # show a profile that lost `strip`).
  for b in kubectl-gpu helm-rke2gpu; do
    case $b in
      kubectl-gpu) sz=$(tar -xzOf "$d1/kubectl-gpu_v${version}_linux_${a}.tar.gz" kubectl-gpu | wc -c) ;;
      *) sz=$(tar -xzOf "$d1/rke2gpu-${version}-linux-${a}.tgz" rke2gpu/bin/helm-rke2gpu | wc -c) ;;
    esac
    if [ "$sz" -gt 0 ] && [ "$sz" -le "$max_binary_bytes" ]; then ok "linux/$a $b is $sz bytes (budget $max_binary_bytes)"
    else bad "linux/$a $b is $sz bytes (budget $max_binary_bytes)" "Cargo.toml [profile.release]: strip, lto, codegen-units"; fi
    pf=$(file -b "target/$t/release/$b")
    if echo "$pf" | grep -q ", stripped"; then ok "target/$t/release/$b is stripped by the release profile"
    else bad "target/$t/release/$b is stripped by the release profile" "$pf"; fi
  done
done
want_k=$'-rw-r--r-- LICENSE\n-rwxr-xr-x kubectl-gpu\n-rwxr-xr-x kubectl_complete-gpu'
got_k=$(tar -tvzf "$ka" | awk '{print $1, $6}')
[ "$got_k" = "$want_k" ] && ok "kubectl archive entries and modes" || bad "kubectl archive entries and modes" "$got_k"
want_h=$'drwxr-xr-x rke2gpu/\n-rw-r--r-- rke2gpu/LICENSE\ndrwxr-xr-x rke2gpu/bin/\n-rwxr-xr-x rke2gpu/bin/helm-rke2gpu\n-rw-r--r-- rke2gpu/completion.yaml\n-rw-r--r-- rke2gpu/plugin.yaml'
got_h=$(tar -tvzf "$ha" | awk '{print $1, $6}')
[ "$got_h" = "$want_h" ] && ok "helm archive entries and modes" || bad "helm archive entries and modes" "$got_h"

# --- krew manifest -------------------------------------------------------
m="$d1/krew/plugins/gpu.yaml"
check "krew manifest: static rules (name, v-semver, shortDescription <= 50, sha256, selectors, bin)" python3 - "$m" "$version" "$targets" <<'EOF'
import re, sys, hashlib, os, yaml
path, version, targets = sys.argv[1], sys.argv[2], sys.argv[3].split()
m = yaml.safe_load(open(path))
errs = []
def need(c, msg):
    if not c: errs.append(msg)
need(m["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2", "apiVersion")
need(m["kind"] == "Plugin", "kind")
need(m["metadata"]["name"] == os.path.basename(path)[:-5], "name == file name")
need(re.fullmatch(r"[\w-]+", m["metadata"]["name"]), "name chars")
s = m["spec"]
need(s["version"] == "v" + version, "version v-prefixed")
need(re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?", s["version"]), "semver")
need(s["homepage"].startswith("https://"), "homepage")
sd = s["shortDescription"]
need(sd and "\n" not in sd and len(sd) <= 50, f"shortDescription ({len(sd)} chars)")
need(all(len(l) <= 80 for l in s["description"].splitlines()), "description wrapped at 80")
need("kubectl_complete-gpu" in s.get("caveats", ""), "caveats: completion helper")
seen = set()
for p in s["platforms"]:
    ml = p["selector"]["matchLabels"]
    need(set(ml) <= {"os", "arch"}, "selector keys")
    key = (ml["os"], ml["arch"])
    need(key not in seen, f"overlapping platform {key}"); seen.add(key)
    need(re.fullmatch(r"[a-f0-9]{64}", p["sha256"]), "sha256 format")
    f = os.path.join(os.path.dirname(path), "..", "..", p["uri"].rsplit("/", 1)[1])
    need(hashlib.sha256(open(f, "rb").read()).hexdigest() == p["sha256"], f"sha256 of {f}")
    need(p["bin"] == "./kubectl-gpu", "bin")
    need("files" not in p, "files omitted (default */.)")
need(len(seen) == len(targets), "one platform per target")
if errs:
    print("\n".join(errs)); sys.exit(1)
EOF

if [ -n "$VKM_BIN" ]; then
  check "validate-krew-manifest -skip-install (krew's own validator)" "$VKM_BIN" -manifest "$m" -skip-install
else skipped "validate-krew-manifest" "not built (go install sigs.k8s.io/krew/cmd/validate-krew-manifest@v0.4.3)"; fi

# --- krew install --------------------------------------------------------
if [ -z "$KUBECTL_BIN" ] || [ -z "$KREW_BIN" ]; then
  skipped "krew tests" "kubectl or kubectl-krew not found"
elif [ -z "$host_target" ] || ! echo " $targets " | grep -q " $host_target "; then
  skipped "krew tests" "no archive for this host ($(uname -m))"
else
  kbin=$work/kbin; mkdir -p "$kbin"
  ln -s "$KUBECTL_BIN" "$kbin/kubectl"; ln -s "$KREW_BIN" "$kbin/kubectl-krew"
  export KREW_NO_UPGRADE_CHECK=1
  kr=$work/krew-root
  kenv=(env KREW_ROOT="$kr" PATH="$kr/bin:$kbin:/usr/bin:/bin" HOME="$work/home" KUBECONFIG=/dev/null)
  mkdir -p "$work/home"
  check "kubectl krew install --manifest --archive (temp KREW_ROOT)" "${kenv[@]}" kubectl krew install --manifest="$m" --archive="$ka"
  if o=$("${kenv[@]}" kubectl gpu version -o json 2>&1) && echo "$o" | python3 -c '
import json,sys; v=json.load(sys.stdin); sys.exit(0 if v["version"] and v["gitCommit"] not in ("","unknown") and v["buildDate"] else 1)'; then
    ok "kubectl gpu version -o json through kubectl's plugin lookup"
  else bad "kubectl gpu version -o json through kubectl's plugin lookup" "$o"; fi
  check "kubectl gpu version (text)" sh -c "$(printf '%q ' "${kenv[@]}") kubectl gpu version | grep -q 'kubectl-gpu $version (commit '"
  check "kubectl plugin list finds kubectl-gpu" sh -c "$(printf '%q ' "${kenv[@]}") kubectl plugin list 2>&1 | grep -q 'krew-root/bin/kubectl-gpu'"
  check "LICENSE extracted at install" sh -c "ls '$kr'/store/gpu/v$version/LICENSE"
  # kubectl >= 1.26: kubectl_complete-gpu
  "${kenv[@]}" kubectl gpu completion kubectl > "$kr/bin/kubectl_complete-gpu" && chmod +x "$kr/bin/kubectl_complete-gpu"
  o=$("${kenv[@]}" kubectl __complete gpu "" 2>/dev/null)
  if echo "$o" | grep -q '^check-runtime' && echo "$o" | grep -q '^version' && echo "$o" | tail -1 | grep -qx ':4'; then
    ok "kubectl __complete gpu '' via kubectl_complete-gpu lists subcommands"
  else bad "kubectl __complete gpu '' via kubectl_complete-gpu" "$o"; fi
  o=$("${kenv[@]}" kubectl __complete gpu check-runtime -o "" 2>/dev/null)
  if echo "$o" | grep -q '^json' && echo "$o" | grep -q '^yaml'; then ok "kubectl __complete gpu check-runtime -o '' lists formats"
  else bad "kubectl __complete gpu check-runtime -o ''" "$o"; fi
  cmp -s "$kr/bin/kubectl_complete-gpu" release/kubectl_complete-gpu && ok "completion kubectl == shipped kubectl_complete-gpu" \
    || bad "completion kubectl == shipped kubectl_complete-gpu" "$(diff "$kr/bin/kubectl_complete-gpu" release/kubectl_complete-gpu)"
  for sh in bash zsh fish powershell; do
    if o=$("${kenv[@]}" kubectl gpu completion $sh 2>&1) && [ -n "$o" ]; then ok "kubectl gpu completion $sh"; else bad "kubectl gpu completion $sh" "$o"; fi
  done
  if command -v bash >/dev/null; then
    check "bash completion script parses" bash -n <("${kenv[@]}" kubectl gpu completion bash)
  fi
  # krew uninstall refuses to run without a cloned index; an empty git repo
  # stands in for the default index (no network here).
  git init -q "$kr/index/default"
  check "kubectl krew uninstall gpu" "${kenv[@]}" kubectl krew uninstall gpu
  if [ -e "$kr/bin/kubectl-gpu" ] || [ -e "$kr/store/gpu" ]; then bad "uninstall removed bin/kubectl-gpu and store/gpu" "$(ls -la "$kr/bin" "$kr/store")"
  else ok "uninstall removed bin/kubectl-gpu and store/gpu"; fi

  # Custom index: a git repo with plugins/ at its root, archives over HTTP.
  start_server
  idx=$work/index
  mkdir -p "$idx" && cp -r "$d1/krew/plugins" "$idx/"
  git -C "$idx" init -q && git -C "$idx" add plugins \
    && git -C "$idx" -c user.name=t -c user.email=t@t commit -qm index
  kr2=$work/krew-root2
  kenv2=(env KREW_ROOT="$kr2" PATH="$kr2/bin:$kbin:/usr/bin:/bin" HOME="$work/home" KUBECONFIG=/dev/null)
  check "kubectl krew index add rke2gpu <git repo>" "${kenv2[@]}" kubectl krew index add rke2gpu "file://$idx"
  check "kubectl krew install rke2gpu/gpu (download + sha256 check over HTTP)" "${kenv2[@]}" kubectl krew install rke2gpu/gpu
  check "kubectl gpu version after index install" "${kenv2[@]}" kubectl gpu version
  check "kubectl krew uninstall gpu (index install)" "${kenv2[@]}" kubectl krew uninstall gpu
  if [ -n "$VKM_BIN" ]; then
    # krew's full validator: installs every platform (KREW_OS/KREW_ARCH) by URI.
    check "validate-krew-manifest (installs each platform)" env PATH="$kbin:/usr/bin:/bin" HOME="$work/home" "$VKM_BIN" -manifest "$m"
  fi
fi

# --- helm ----------------------------------------------------------------
# Note: Helm 4 installs a local tarball into $HELM_DATA_HOME/plugins whatever
# HELM_PLUGINS says, so HELM_PLUGINS is set to exactly that here.
helm_env() { # DIR -> henv array
  mkdir -p "$1"/{data/plugins,config,cache}
  henv=(env HELM_PLUGINS="$1/data/plugins" HELM_DATA_HOME="$1/data" HELM_CONFIG_HOME="$1/config" HELM_CACHE_HOME="$1/cache" HOME="$work/home" KUBECONFIG=/dev/null)
}
# After an install: the plugin loads, runs, completes, uninstalls.
helm_installed() { # LABEL HELM
  local l=$1 helm=$2 o
  check "$l: plugin list shows rke2gpu $version" sh -c "$(printf '%q ' "${henv[@]}") '$helm' plugin list | grep -E '^rke2gpu[[:space:]]+$version'"
  if o=$("${henv[@]}" "$helm" rke2gpu version 2>&1) && echo "$o" | grep -q "helm-rke2gpu $version (commit "; then
    ok "$l: helm rke2gpu version -> $o"
  else bad "$l: helm rke2gpu version" "$o"; fi
  o=$("${henv[@]}" "$helm" __complete rke2gpu "" 2>/dev/null)
  if echo "$o" | grep -q '^values' && echo "$o" | grep -q '^install' && echo "$o" | grep -q '^version'; then
    ok "$l: helm __complete rke2gpu '' (completion.yaml)"
  else bad "$l: helm __complete rke2gpu ''" "$o"; fi
  o=$("${henv[@]}" "$helm" __complete rke2gpu completion "" 2>/dev/null)
  if echo "$o" | grep -q '^zsh'; then ok "$l: helm __complete rke2gpu completion ''"; else bad "$l: helm __complete rke2gpu completion ''" "$o"; fi
  check "$l: helm rke2gpu completion bash" sh -c "$(printf '%q ' "${henv[@]}") '$helm' rke2gpu completion bash | grep -q helm-rke2gpu"
  check "$l: plugin uninstall rke2gpu" "${henv[@]}" "$helm" plugin uninstall rke2gpu
  if "${henv[@]}" "$helm" plugin list 2>/dev/null | grep -q '^rke2gpu'; then bad "$l: gone after uninstall" ""; else ok "$l: gone after uninstall"; fi
}

start_server
if [ ! -f "$ha" ]; then skipped "helm tests" "no helm archive for this host"
else
  # completion.yaml lists exactly the binary's subcommands
  tar -xzOf "$ha" rke2gpu/bin/helm-rke2gpu > "$work/helm-rke2gpu" && chmod +x "$work/helm-rke2gpu"
  want=$("$work/helm-rke2gpu" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR>1 && $1 != "help" && NF {print $1}' | sort)
  got=$(python3 -c 'import yaml,sys; print("\n".join(sorted(c["name"] for c in yaml.safe_load(open(sys.argv[1]))["commands"])))' helm-rke2gpu/completion.yaml)
  if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "helm-rke2gpu/completion.yaml lists the binary's subcommands"
  else bad "helm-rke2gpu/completion.yaml lists the binary's subcommands" "binary: $(echo $want) / completion.yaml: $(echo $got)"; fi

  if [ -n "$HELM3_BIN" ]; then
    helm_env "$work/helm3a"
    if o=$("${henv[@]}" "$HELM3_BIN" plugin install "$ha" 2>&1); then
      ok "helm 3: plugin install <local tgz>"; helm_installed "helm 3 (local tgz)" "$HELM3_BIN"
    elif echo "$o" | grep -q "expected plugin to be a folder"; then
      ok "helm 3: local tarballs are not installable (\"$o\"): use a directory or a URL"
    else bad "helm 3: plugin install <local tgz>" "$o"; fi
    # offline: extract, install the directory (Helm 3 symlinks it)
    helm_env "$work/helm3b"
    x=$work/helm3-src; mkdir -p "$x" && tar -xzf "$ha" -C "$x"
    check "helm 3: plugin install <extracted rke2gpu dir>" "${henv[@]}" "$HELM3_BIN" plugin install "$x/rke2gpu"
    helm_installed "helm 3 (dir)" "$HELM3_BIN"
    # unpack straight into the plugins directory Helm 3 reports
    helm_env "$work/helm3c"
    check "helm 3: tar -xzf <tgz> -C \"\$(helm env HELM_PLUGINS)\"" sh -c "tar -xzf '$ha' -C \"\$($(printf '%q ' "${henv[@]}") '$HELM3_BIN' env HELM_PLUGINS)\""
    helm_installed "helm 3 (unpacked into HELM_PLUGINS)" "$HELM3_BIN"
    # Known limitation: Helm 3's HTTP installer wants plugin.yaml at the
    # archive root, Helm 4's local installer wants it under rke2gpu/; the
    # archive follows Helm 4. This check notices if Helm 3 changes.
    helm_env "$work/helm3d"
    if o=$("${henv[@]}" "$HELM3_BIN" plugin install "$base/$(basename "$ha")" 2>&1); then
      ok "helm 3: plugin install <http tgz> works"; "${henv[@]}" "$HELM3_BIN" plugin uninstall rke2gpu >/dev/null 2>&1
    elif echo "$o" | grep -q "plugin metadata (plugin.yaml) missing"; then
      ok "helm 3: plugin install <http tgz> unsupported, as documented (\"$o\")"
    else bad "helm 3: plugin install <http tgz>" "$o"; fi
  else skipped "helm 3 tests" "helm v3 not found"; fi

  if [ -n "$HELM4_BIN" ]; then
    helm_env "$work/helm4a"
    check "helm 4: plugin install <local tgz> --verify=false" "${henv[@]}" "$HELM4_BIN" plugin install "$ha" --verify=false
    helm_installed "helm 4 (local tgz, --verify=false)" "$HELM4_BIN"
    helm_env "$work/helm4b"
    if o=$("${henv[@]}" "$HELM4_BIN" plugin install "$ha" 2>&1); then
      bad "helm 4: unsigned tarball refused without --verify=false" "$o"
    else ok "helm 4: unsigned tarball refused without --verify=false ($(echo "$o" | tail -1))"; fi
    helm_env "$work/helm4c"
    check "helm 4: plugin install $base/$(basename "$ha") --verify=false" "${henv[@]}" "$HELM4_BIN" plugin install "$base/$(basename "$ha")" --verify=false
    helm_installed "helm 4 (http, --verify=false)" "$HELM4_BIN"
    if command -v gpg >/dev/null; then
      export GNUPGHOME=$work/gnupg; mkdir -p -m 700 "$GNUPGHOME"
      if gpg --batch --quiet --passphrase '' --quick-gen-key 'rke2gpu release test <test@rke2gpu.invalid>' rsa2048 sign never >/dev/null 2>&1; then
        gpg --batch --export > "$work/pubring.gpg"
        d3=$work/d3
        if o=$(release/build --no-build --targets "$targets" --out "$d3" --base-url "$base" --sign test@rke2gpu.invalid 2>&1); then
          sa="$d3/$(basename "$ha")"
          if cmp -s "$sa" "$ha"; then ok "signing leaves the archive bytes unchanged"; else bad "signing leaves the archive bytes unchanged" ""; fi
          helm_env "$work/helm4d"
          check "helm 4: plugin verify <tgz> (.prov, test keyring)" "${henv[@]}" "$HELM4_BIN" plugin verify "$sa" --keyring "$work/pubring.gpg"
          check "helm 4: plugin install <tgz> verified (.prov + --keyring)" "${henv[@]}" "$HELM4_BIN" plugin install "$sa" --keyring "$work/pubring.gpg"
          helm_installed "helm 4 (signed)" "$HELM4_BIN"
          # same name and .prov, one byte more
          mkdir -p "$work/tampered" && cp "$sa" "$sa.prov" "$work/tampered/"
          printf 'x' >> "$work/tampered/$(basename "$sa")"
          helm_env "$work/helm4e"
          if o=$("${henv[@]}" "$HELM4_BIN" plugin install "$work/tampered/$(basename "$sa")" --keyring "$work/pubring.gpg" 2>&1); then
            bad "helm 4: a modified signed tarball is refused" "$o"
          else ok "helm 4: a modified signed tarball is refused ($(echo "$o" | tail -1))"; fi
        else bad "release/build --sign" "$o"; fi
      else skipped "helm 4 signed install" "gpg could not create a test key"; fi
    else skipped "helm 4 signed install" "gpg not found"; fi
  else skipped "helm 4 tests" "helm v4 not found"; fi
fi

finish
