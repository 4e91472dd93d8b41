#!/usr/bin/env python3
"""Write a one-layer OCI image archive (oci-layout + index.json + blobs) from a rootfs dir,
for `ctr -n k8s.io images import`. No registry, no tools beyond the standard library.

    mkimage.py ROOTFS NAME OUT.tar --entrypoint '["/pause"]' [--cmd '[...]'] [--env K=V ...]
"""
import argparse, gzip, hashlib, io, json, os, tarfile

MTIME = 1700000000  # fixed, so the archive is reproducible

# glibc's runtime libraries as an Ubuntu image has them. The driver's libraries that a runtime
# injects (libcuda.so.1, libnvidia-ml.so.1) link libdl, libpthread and librt, which a program's own
# `ldd` list does not name on glibc >= 2.34: without them cudart cannot load libcuda.so.1 and
# reports "CUDA driver version is insufficient for CUDA runtime version".
GLIBC_LIBS = ["libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libresolv.so.2",
              "ld-linux-x86-64.so.2"]
GLIBC_DIR = "/lib/x86_64-linux-gnu"


def glibc_libs(root):
    """Copy GLIBC_LIBS from this host into ROOT/lib/x86_64-linux-gnu, with /lib64's loader link."""
    import shutil
    libdir = os.path.join(root, GLIBC_DIR.lstrip("/"))
    os.makedirs(libdir, exist_ok=True)
    for lib in GLIBC_LIBS:
        shutil.copy2(os.path.realpath(os.path.join(GLIBC_DIR, lib)), os.path.join(libdir, lib))
    os.makedirs(os.path.join(root, "lib64"), exist_ok=True)
    link = os.path.join(root, "lib64", "ld-linux-x86-64.so.2")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", link)


def blob(tar, data, media):
    d = hashlib.sha256(data).hexdigest()
    ti = tarfile.TarInfo(f"blobs/sha256/{d}")
    ti.size, ti.mtime, ti.mode = len(data), MTIME, 0o644
    tar.addfile(ti, io.BytesIO(data))
    return {"mediaType": media, "digest": f"sha256:{d}", "size": len(data)}


def layer_bytes(rootfs):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                p = os.path.join(dirpath, name)
                arc = os.path.relpath(p, rootfs)
                ti = t.gettarinfo(p, arcname=arc)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                ti.mtime = MTIME
                if ti.isreg():
                    with open(p, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti)
    diff = raw.getvalue()
    gz = gzip.compress(diff, 9, mtime=0)
    return diff, gz


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rootfs")
    ap.add_argument("name")
    ap.add_argument("out")
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default="null")
    ap.add_argument("--env", action="append", default=[])
    a = ap.parse_args()
    diff, gz = layer_bytes(a.rootfs)
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(diff).hexdigest()]},
        "history": [{"created_by": "tests/gpu/mkimage.py"}],
    }
    with tarfile.open(a.out, "w") as tar:
        lay = blob(tar, gz, "application/vnd.oci.image.layer.v1.tar+gzip")
        conf = blob(tar, json.dumps(cfg, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
        man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": conf, "layers": [lay]}
        mdesc = blob(tar, json.dumps(man, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        mdesc["annotations"] = {"io.containerd.image.name": a.name,
                                "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[-1]}
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [mdesc]}
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index, sort_keys=True).encode())):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), MTIME, 0o644
            tar.addfile(ti, io.BytesIO(data))
    print(f"{a.out}: {a.name} layer {lay['digest']} ({len(gz)} bytes)")


if __name__ == "__main__":
    main()
