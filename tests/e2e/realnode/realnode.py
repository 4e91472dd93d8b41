"""Real nodes for the test cluster (the host side; `node` is the node's PID 1).

A real node is a real kubelet, containerd and runc in RKE2's layout, registered with the test
apiserver beside the KWOK nodes. `tests/e2e/cluster` calls:

  supported()                    -> (bool, reason): can this machine run one?
  prepare(ctx, spec, index)      -> the node's files, PKI and the init's NODE.json
  start(ctx, specs)              -> start every node's init, wait until the nodes are Ready
  cleanup(st)                    -> after the processes are gone: cgroups, veths (normally nothing)
  leftovers(st)                  -> what a `down` left behind (empty when clean)

ctx is a small object with the cluster's state (st), binaries (b), a Kube client and the
cluster's start_process / wait_for / openssl helpers. See tests/e2e/README.md, "Real nodes".
"""
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_INIT = os.path.join(HERE, "node")
SPECS = os.path.join(HERE, "nodes.json")
# The node's init runs on the machine's Python (inside the node /usr is the machine's).
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DATA_DIR = "/var/lib/rancher/rke2"
SOCKET = "/run/k3s/containerd/containerd.sock"
LB_PORT = 6444  # RKE2's agent load balancer for the apiserver
KUBELET_PORT = 10250
HEALTHZ_PORT = 10248
SERVICE_PATH = f"{DATA_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NET_POOL = ipaddress.ip_network("100.64.0.0/10")  # shared address space: one /30 per node link


def specs(path=SPECS):
    with open(path) as f:
        return json.load(f)["nodes"]


def supported():
    """Whether this machine can run real nodes, and why not."""
    if os.geteuid() != 0:
        return False, "not root"
    for tool in ("unshare", "ip", "mount", "pivot_root", "openssl"):
        if not shutil.which(tool):
            return False, f"{tool} not found (tests/e2e/build-bins --install-deps)"
    if not os.path.exists(PYTHON):
        return False, f"{PYTHON} missing (the node's init runs on the machine's Python)"
    try:
        fs = open("/proc/filesystems").read()
    except OSError:
        fs = ""
    if "overlay" not in fs:
        return False, "no overlayfs in /proc/filesystems"
    if not os.path.isdir("/sys/fs/cgroup/memory") and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return False, "no cgroup hierarchy at /sys/fs/cgroup"
    probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"unshare --net --mount --pid: {probe.stderr.strip()}"
    return True, ""


def short_hash(*parts, n=8):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def used_networks():
    nets = []
    for args in (["-4", "-o", "addr"], ["-4", "route"]):
        out = subprocess.run(["ip", *args], capture_output=True, text=True).stdout
        for tok in out.split():
            try:
                if "/" in tok and tok[0].isdigit():
                    nets.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
    return nets


def allocate_link(cluster, node):
    """A /30 for the node link (host side .1, node .2) that no address or route here overlaps."""
    used = used_networks()
    n30 = NET_POOL.num_addresses // 4
    start = int(short_hash(cluster, node, n=8), 16) % n30
    for k in range(4096):
        net = ipaddress.ip_network((int(NET_POOL.network_address) + ((start + k) % n30) * 4, 30))
        if not any(net.overlaps(u) for u in used):
            hosts = list(net.hosts())
            return {"host_ip": str(hosts[0]), "node_ip": str(hosts[1]), "prefix": 30, "network": str(net)}
    raise RuntimeError("no free /30 in 100.64.0.0/10 for a real node link")


def link(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def pki(ctx, d, name, node_ip):
    """The RKE2 agent's certs (k3s pkg/agent/config): client-kubelet (CN=system:node:<name>,
    O=system:nodes), serving-kubelet (SAN: name, node IP), the CAs."""
    ca = os.path.join(ctx.st["dir"], "pki")
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def leaf(base, subj, ext):
        write(os.path.join(d, f"{base}.ext"), ext)
        ctx.openssl("req", *ec, "-subj", subj, "-keyout", f"{base}.key", "-out", f"{base}.csr", cwd=d)
        ctx.openssl("x509", "-req", "-in", f"{base}.csr", "-CA", os.path.join(ca, "ca.crt"), "-CAkey",
                    os.path.join(ca, "ca.key"), "-CAcreateserial", "-CAserial", os.path.join(d, "ca.srl"),
                    "-days", "3650", "-sha256", "-out", f"{base}.crt", "-extfile", f"{base}.ext", cwd=d)
        for f in (f"{base}.ext", f"{base}.csr"):
            os.unlink(os.path.join(d, f))
        os.chmod(os.path.join(d, f"{base}.key"), 0o600)

    leaf("client-kubelet", f"/O=system:nodes/CN=system:node:{name}",
         "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
         "extendedKeyUsage=clientAuth\n")
    leaf("serving-kubelet", f"/CN={name}",
         "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
         f"extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{name},DNS:localhost,IP:{node_ip},IP:127.0.0.1\n")
    os.unlink(os.path.join(d, "ca.srl"))
    for f in ("server-ca.crt", "client-ca.crt"):
        shutil.copyfile(os.path.join(ca, "ca.crt"), os.path.join(d, f))


def kubelet_config(ctx, spec, net, cgroup_root):
    agent = f"{DATA_DIR}/agent"
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net["node_ip"],
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": HEALTHZ_PORT,
        # As RKE2: x509 client certs from the cluster CA, webhook token authn and authz.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True, "cacheTTL": "2m0s"},
                           "x509": {"clientCAFile": f"{agent}/client-ca.crt"}},
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "5m0s",
                                                         "cacheUnauthorizedTTL": "30s"}},
        "tlsCertFile": f"{agent}/serving-kubelet.crt",
        "tlsPrivateKeyFile": f"{agent}/serving-kubelet.key",
        "clusterDomain": "cluster.local",
        "clusterDNS": ["10.43.0.10"],
        "resolvConf": "/etc/resolv.conf",
        "containerRuntimeEndpoint": f"unix://{SOCKET}",
        "staticPodPath": f"{agent}/pod-manifests",
        "providerID": f"rke2://{spec['name']}",
        # This machine: cgroup v1 (hybrid) without systemd as init.
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        # Shared test machine: no evictions, no image GC of the imported images.
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                         "imagefs.available": "1%", "imagefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "volumePluginDir": "/var/lib/kubelet/volumeplugins",
        "serializeImagePulls": False,
        "maxPods": 110,
        "podPidsLimit": 4096,
    }
    return json.dumps(cfg, indent=1) + "\n"


def kubeconfig(agent):
    return f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority: {agent}/server-ca.crt
    server: https://127.0.0.1:{LB_PORT}
  name: local
contexts:
- context:
    cluster: local
    namespace: default
    user: user
  name: Default
current-context: Default
kind: Config
preferences: {{}}
users:
- name: user
  user:
    client-certificate: {agent}/client-kubelet.crt
    client-key: {agent}/client-kubelet.key
"""


def cni_conflist(pod_cidr, portmap=True):
    """bridge + host-local (+ portmap, which needs iptables on DEL: the GPU host has none)."""
    plugins = [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]}}]
    if portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
    return json.dumps({"cniVersion": "1.0.0", "name": "rke2gpu-bridge", "plugins": plugins}, indent=1) + "\n"


def nvidia_runtime_config(mode, what):
    """/etc/nvidia-container-runtime/config.toml. auto on a CPU node (no driver: it forwards to runc);
    cdi on the GPU host (no libnvidia-container: the spec from `nvidia-ctk cdi generate` injects the
    driver)."""
    return f"""# /etc/nvidia-container-runtime/config.toml (tests/e2e/realnode: {what})
[nvidia-container-runtime]
debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "{mode}"
runtimes = ["runc"]
"""


def generate_cdi_spec(ctk, driver_root, hook, out):
    """The CDI spec the GPU Operator's toolkit writes (`nvidia-ctk cdi generate`; its default names
    devices by index and UUID, and the device plugin passes UUIDs). hook: nvidia-cdi-hook's path in
    the node."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    argv = [ctk, "cdi", "generate", f"--driver-root={driver_root}", "--dev-root=/", f"--nvidia-cdi-hook-path={hook}",
            "--ldconfig-path=/sbin/ldconfig", f"--output={out}"]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stderr


def prepare(ctx, spec, index):
    st, b = ctx.st, ctx.b
    name = spec["name"]
    base = os.path.join(st["dir"], "real", name)
    root = os.path.join(st["dir"], "nodes", name)
    harness = os.path.join(base, "harness")
    for d in (base, harness, os.path.join(base, "work")):
        os.makedirs(d, exist_ok=True)
    for d in ("usr", "etc", "var/lib", "var/log", "var/tmp", "opt/cni/bin", "run", "tmp", "proc", "sys", "dev",
              "root", "home", "mnt", "srv"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for l, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                      ("var/run", "/run"), ("var/lock", "/run/lock")):
        os.symlink(target, os.path.join(root, l))
    net = allocate_link(st["name"], name)
    h = short_hash(st["name"], st["dir"], name, n=8)
    net.update({"host_if": f"rg{h}h", "node_if": f"rg{h}n"})
    cgroup_root = f"/rke2gpu-{st['name']}-{name}"
    agent = f"{DATA_DIR}/agent"
    R = lambda p: os.path.join(root, p.lstrip("/"))  # noqa: E731 - a path in the node tree

    # RKE2's binaries: <data-dir>/data/<release>/bin, <data-dir>/bin -> it.
    ctd_dir = b[spec["containerd"]]
    release = kubelet_version(b).replace("+", "-")
    bindir = f"{DATA_DIR}/data/{release}/bin"
    for src in (os.path.join(ctd_dir, "containerd"), os.path.join(ctd_dir, "containerd-shim-runc-v2"),
                os.path.join(ctd_dir, "ctr"), os.path.join(b["runc"], "runc"), os.path.join(b["kubelet"], "kubelet"),
                os.path.join(b["crictl"], "crictl") if "crictl" in b else None):
        if src:  # the GPU host goes without crictl (what travels there is limited)
            link(os.path.realpath(src), R(f"{bindir}/{os.path.basename(src)}"))
    os.symlink(f"data/{release}/bin", R(f"{DATA_DIR}/bin"))
    for p in ("bridge", "host-local", "loopback", "portmap"):
        link(os.path.join(b["cni-plugins"], p), R(f"/opt/cni/bin/{p}"))
    # systemctl and systemd-run: render-config, which hands the call to the init (the node's systemd).
    render = os.path.join(b["render-config"], "render-config")
    for stub in ("systemctl", "systemd-run"):
        link(render, R(f"/usr/bin/{stub}"))
    link(render, os.path.join(harness, "render-config"))
    gpu = spec.get("gpu")
    if spec.get("toolkit"):
        # Where the GPU Operator's toolkit installs the runtime (RKE2 searches there first), unless
        # the spec names another dir (the GPU host's: one RKE2 does not search, so that
        # patch-containerd has something to do).
        tdir = spec.get("toolkitDir", "/usr/local/nvidia/toolkit")
        for t in ("nvidia-container-runtime", "nvidia-ctk", "nvidia-cdi-hook"):
            link(os.path.join(b["nvidia-toolkit"], t), R(f"{tdir}/{t}"))
        write(R("/etc/nvidia-container-runtime/config.toml"),
              nvidia_runtime_config("cdi", "the GPU host, CDI mode") if gpu else
              nvidia_runtime_config("auto", "a CPU node, no driver"))
    binds = []
    if gpu:
        # The host's driver (a read-only mount of its own on the GPU host: the /usr overlay does not
        # show it) and its CDI spec, generated on the host as the toolkit's daemonset would.
        # RKE2GPU_DRIVER_ROOT and RKE2GPU_CDI_SPEC stand in for both on a machine without a GPU
        # (tests/gpu/cluster/local-check: a fake driver dir and a hand-written spec).
        driver_root = spec.get("driverRoot", "/usr/local/nvidia")
        binds.append({"src": os.environ.get("RKE2GPU_DRIVER_ROOT") or driver_root, "dst": driver_root, "ro": True})
        if os.environ.get("RKE2GPU_CDI_SPEC"):
            os.makedirs(R("/etc/cdi"), exist_ok=True)
            shutil.copyfile(os.environ["RKE2GPU_CDI_SPEC"], R("/etc/cdi/nvidia.yaml"))
        else:
            generate_cdi_spec(os.path.join(b["nvidia-toolkit"], "nvidia-ctk"), driver_root,
                              f"{spec.get('toolkitDir', '/usr/local/nvidia/toolkit')}/nvidia-cdi-hook",
                              R("/etc/cdi/nvidia.yaml"))
    # RKE2's air-gap image dir: imported into containerd at every start.
    for tar in ("busybox.tar", "pause.tar", "verify.tar"):
        link(os.path.join(b["node-images"], tar), R(f"{agent}/images/rke2gpu-{tar}"))
    extra = os.path.expandvars(spec.get("extraImagesDir", ""))
    if extra and os.path.isdir(extra):  # the GPU host's own images (device plugin, vectorAdd)
        for tar in sorted(os.listdir(extra)):
            if tar.endswith(".tar"):
                link(os.path.join(extra, tar), R(f"{agent}/images/extra-{tar}"))

    write(R("/etc/hostname"), name + "\n")
    write(R("/etc/hosts"), f"127.0.0.1\tlocalhost\n{net['node_ip']}\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    write(R("/etc/machine-id"), short_hash(st["dir"], name, n=32) + "\n", 0o444)
    write(R("/etc/rancher/rke2/config.yaml"),
          f"# written by tests/e2e/cluster for the real test node {name}\n"
          f"server: https://127.0.0.1:9345\ntoken: rke2gpu-test\nnode-name: {name}\nnode-ip: {net['node_ip']}\n",
          0o600)
    write(R("/etc/cni/net.d/10-rke2gpu-bridge.conflist"), cni_conflist(spec["podCIDR"], spec.get("portmap", True)))
    write(R(f"{agent}/etc/crictl.yaml"), f"runtime-endpoint: unix://{SOCKET}\n")
    write(R(f"{agent}/kubelet.kubeconfig"), kubeconfig(agent), 0o600)
    write(R(f"{agent}/etc/kubelet.conf.d/00-rke2-defaults.conf"), kubelet_config(ctx, spec, net, cgroup_root))
    os.makedirs(R(f"{agent}/pod-manifests"), exist_ok=True)
    os.makedirs(R(f"{agent}/etc/containerd"), exist_ok=True)
    os.makedirs(R("/var/lib/kubelet"), exist_ok=True)
    pki(ctx, R(agent), name, net["node_ip"])

    profile = dict(spec["profile"], node=name, version=kubelet_version(b),
                   containerd=os.path.basename(ctd_dir).split("-", 2)[2])
    if not can_lower_oom_score_adj():
        profile["runningInUserNS"] = True
    write(os.path.join(harness, "profile.json"), json.dumps(profile, indent=1) + "\n")
    labels = ",".join(f"{k}={v}" for k, v in sorted(spec.get("kubelet_labels", {}).items()))
    kubelet_argv = [f"{DATA_DIR}/bin/kubelet", f"--config-dir={agent}/etc/kubelet.conf.d",
                    f"--kubeconfig={agent}/kubelet.kubeconfig", f"--hostname-override={name}",
                    f"--node-ip={net['node_ip']}", "--v=2"] + ([f"--node-labels={labels}"] if labels else [])
    cfg = {
        "name": name, "root": root, "work": os.path.join(base, "work"), "harness": harness,
        "service": profile["service"], "apiserver_port": st["ports"]["apiserver"], "lb_port": LB_PORT,
        "net": net, "cgroup_root": cgroup_root, "path": SERVICE_PATH, "images_dir": f"{agent}/images",
        "binds": binds,
        "containerd": {
            "argv": [f"{DATA_DIR}/bin/containerd", "-c", f"{agent}/etc/containerd/config.toml", "-a", SOCKET,
                     "--state", "/run/k3s/containerd", "--root", f"{agent}/containerd"],
            "log": f"{agent}/containerd/containerd.log", "socket": SOCKET,
            "ctr": [f"{DATA_DIR}/bin/ctr", "--address", SOCKET]},
        "kubelet": {"argv": kubelet_argv, "log": f"{agent}/logs/kubelet.log", "healthz_port": HEALTHZ_PORT},
    }
    path = os.path.join(base, "node.json")
    write(path, json.dumps(cfg, indent=1) + "\n")
    return {"name": name, "root": root, "dir": base, "harness": harness, "config": path, "cgroup_root": cgroup_root,
            "host_if": net["host_if"], "node_ip": net["node_ip"], "host_ip": net["host_ip"],
            "containerd": spec["containerd"], "profile": profile}


def can_lower_oom_score_adj():
    """Whether this machine lets root lower oom_score_adj (CAP_SYS_RESOURCE). The CRI gives every
    pod sandbox -998; without the capability runc fails with `can't get final child's PID from
    pipe: EOF` unless containerd clamps it (restrict_oom_score_adj, which k3s renders when it runs
    in a user namespace)."""
    p = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"], capture_output=True)
    return p.returncode == 0


def kubelet_version(b):
    """v1.37.2+rke2r1, from the kubelet target's dir name (kubelet-<version>, kube-multicall-<version>)."""
    m = re.search(r"-(v\d+\.\d+\.\d+\S*)$", os.path.basename(os.path.realpath(b["kubelet"])))
    if not m:
        raise RuntimeError(f"no version in the kubelet dir name {b['kubelet']}")
    return m.group(1)


def init_pid(unshare_pid):
    """The node's PID 1 as the machine sees it: the child unshare --fork started."""
    try:
        with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except (OSError, ValueError):
        return None


def ns_inode(pid, ns):
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def node_object_patch(spec, rn):
    """What RKE2's agent (annotations) and its cloud controller (instance-type labels) add."""
    ann = {"rke2.io/hostname": rn["name"], "rke2.io/internal-ip": rn["node_ip"],
           "rke2.io/node-args": json.dumps(["agent"]), "rke2.io/node-env": "{}",
           "alpha.kubernetes.io/provided-node-ip": rn["node_ip"]}
    ann.update(spec.get("annotations", {}))
    labels = {"node.kubernetes.io/instance-type": "rke2", "beta.kubernetes.io/instance-type": "rke2"}
    labels.update(spec.get("labels", {}))
    return {"metadata": {"labels": labels, "annotations": ann}}


def start(ctx, which):
    st = ctx.st
    st.setdefault("real_nodes", [])
    todo = []
    for i, spec in enumerate(which):
        rn = prepare(ctx, spec, i)
        st["real_nodes"].append(rn)
        ctx.save_state(st)
        p = ctx.start_process(st, f"real-{spec['name']}",
                              ["unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--propagation", "private",
                               PYTHON, NODE_INIT, rn["config"]])
        todo.append((spec, rn, p))
    for spec, rn, p in todo:
        pid = ctx.wait_for(f"{rn['name']}: init started", lambda: init_pid(p["pid"]), 10, p)
        rn["init_pid"] = pid
        rn["pidns"] = ns_inode(pid, "pid")
        rn["mntns"] = ns_inode(pid, "mnt")
        ctx.wait_for(f"{rn['name']}: network namespace", lambda: ns_inode(pid, "net") != ns_inode(os.getpid(), "net"),
                     20, p)
        rn["netns"] = ns_inode(pid, "net")
        ctx.save_state(st)
    for spec, rn, p in todo:
        def registered():
            n = ctx.kube.get(f"/api/v1/nodes/{rn['name']}")
            return n and ctx.node_ready(n)
        try:
            ctx.wait_for(f"real node {rn['name']} Ready", registered, 180, p, interval=0.5)
        except Exception:
            kl = os.path.join(rn["root"], "var/lib/rancher/rke2/agent/logs/kubelet.log")
            ctd = os.path.join(rn["root"], "var/lib/rancher/rke2/agent/containerd/containerd.log")
            raise ctx.error(f"real node {rn['name']} did not become Ready; init log {p['log']}:\n{ctx.tail(p['log'])}\n"
                            f"kubelet log {kl}:\n{ctx.tail(kl)}\ncontainerd log {ctd}:\n{ctx.tail(ctd)}")
        s, body = ctx.kube.req("PATCH", f"/api/v1/nodes/{rn['name']}", node_object_patch(spec, rn),
                               ctype="application/merge-patch+json", ok=(200,))
        if s != 200:
            raise ctx.error(f"PATCH node {rn['name']}: {s} {body}")
    ctx.save_state(st)


def cgroup_dirs(cgroup_root):
    out = []
    base = "/sys/fs/cgroup"
    if not os.path.isdir(base):
        return out
    if os.path.exists(os.path.join(base, "cgroup.controllers")):  # cgroup v2 (the GPU host)
        top = os.path.join(base, cgroup_root.lstrip("/"))
        for r, _dirs, _files in os.walk(top):
            out.append(r)
        return sorted(set(out), key=lambda p: -p.count("/"))
    for h in os.listdir(base):
        top = os.path.join(base, h, cgroup_root.lstrip("/"))
        if os.path.isdir(top) and not os.path.islink(os.path.join(base, h)):
            for r, _dirs, _files in os.walk(top):
                out.append(r)
    return sorted(set(out), key=lambda p: -p.count("/"))


def link_exists(ifname):
    return os.path.exists(f"/sys/class/net/{ifname}")


def cleanup(st):
    """After the node processes are gone (normally the init already removed its cgroups and the
    kernel its veth): remove what is left."""
    for rn in st.get("real_nodes", []):
        for d in cgroup_dirs(rn["cgroup_root"]):
            for _ in range(30):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        if link_exists(rn["host_if"]):
            subprocess.run(["ip", "link", "del", rn["host_if"]], capture_output=True)


def leftovers(st):
    """What the real nodes of `st` left behind on this machine: processes in their namespaces,
    mounts under the run dir, cgroups, veths, files. Empty when clean."""
    out = []
    nodes = st.get("real_nodes", [])
    want = {}
    for rn in nodes:
        for ns in ("pidns", "netns", "mntns"):
            if rn.get(ns):
                want[(ns[:3], rn[ns])] = rn["name"]
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        for ns in ("pid", "net", "mnt"):
            ino = ns_inode(p, ns)
            if ino and (ns, ino) in want:
                try:
                    cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    cmd = "?"
                out.append(f"process {p} ({cmd.strip()[:80]}) in the {ns} namespace of {want[(ns, ino)]}")
                break
    run_dir = st.get("dir", "")
    try:
        for line in open("/proc/self/mountinfo"):
            if run_dir and run_dir in line:
                out.append(f"mount: {line.strip()}")
    except OSError:
        pass
    for rn in nodes:
        for d in cgroup_dirs(rn["cgroup_root"]):
            out.append(f"cgroup {d}")
        if link_exists(rn["host_if"]):
            out.append(f"network link {rn['host_if']}")
    if run_dir and os.path.exists(run_dir):
        out.append(f"run dir {run_dir}")
    return out
