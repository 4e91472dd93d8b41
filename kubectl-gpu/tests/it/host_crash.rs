//! Crash test for `Host::write_atomic` on `LocalRoot`: a child process (this
//! test binary, re-executed in writer mode) rewrites a big file in a loop and
//! is SIGKILLed at random moments. Afterwards the target holds exactly one
//! complete version (old or new), never a mix or a truncated file.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rke2gpu::node::{Host, LocalRoot};

const ENV_ROOT: &str = "RKE2GPU_CRASH_CHILD_ROOT";
const TARGET: &str = "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl";

/// Version `k` of the file: a header naming `k`, then a size and byte
/// pattern that depend on `k`, so a mix or a cut is detectable.
fn payload(k: u64) -> Vec<u8> {
    let size = 2_000_000 + (k % 7) as usize * 500_000;
    let mut v = format!("version {k}\n").into_bytes();
    let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v.extend_from_slice(format!("\nend {k}\n").as_bytes());
    v
}

fn version_of(content: &[u8]) -> Option<u64> {
    let line = content.split(|b| *b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .strip_prefix("version ")?
        .parse()
        .ok()
}

/// Writer mode: only active when re-executed by `write_atomic_survives_sigkill`.
#[test]
fn crash_child_writer() {
    let Ok(root) = std::env::var(ENV_ROOT) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let host = LocalRoot::new(root);
        let cur = host.read(TARGET).await.unwrap().unwrap();
        let mut k = version_of(&cur).unwrap();
        loop {
            k += 1;
            host.write_atomic(TARGET, &payload(k), 0o600).await.unwrap();
        }
    });
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "current_thread")]
async fn write_atomic_survives_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let host = LocalRoot::new(tmp.path());
    host.write_atomic(TARGET, &payload(0), 0o600).await.unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut last = 0;
    let mut advanced = 0;
    let started = Instant::now();
    for round in 0..12 {
        let mut child = Command::new(&exe)
            .args([
                "host_crash::crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_ROOT, tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = 20 + rng.next() % 400;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        let content = host.read(TARGET).await.unwrap().expect("target must exist");
        let k = version_of(&content).unwrap_or_else(|| panic!("round {round}: no header"));
        assert!(
            content == payload(k),
            "round {round}: target is not exactly version {k} ({} bytes)",
            content.len()
        );
        assert!(k >= last, "round {round}: went back from {last} to {k}");
        if k > last {
            advanced += 1;
        }
        last = k;
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    assert!(
        advanced > 0,
        "the writer never completed a write; the test proved nothing"
    );
    // Killed writes may leave temp files, but never under the target's name.
    let dir = "/var/lib/rancher/rke2/agent/etc/containerd";
    let names = host.list_dir(dir).await.unwrap().unwrap();
    for n in &names {
        assert!(
            n == "config-v3.toml.tmpl" || n.starts_with(".config-v3.toml.tmpl.kubectl-gpu-tmp-"),
            "unexpected {n}"
        );
    }
    println!(
        "final version {last}, {advanced} rounds advanced, leftovers {}",
        names.len() - 1
    );
}
