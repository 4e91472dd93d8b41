//! `rke2gpu-archiver`: writes a `.tar.gz` whose bytes depend only on the
//! listed files' contents, destinations and modes, and on `--mtime`:
//!
//! - entries sorted by archive path; every parent directory gets its own
//!   entry (mode 0755) before its children;
//! - ustar headers, owner 0/0 `root`/`root`, mtime `--mtime` (default
//!   `$SOURCE_DATE_EPOCH`, else 0), the mode given per file (never the
//!   source file's), no extended or PAX headers;
//! - gzip header with mtime 0, no file name, OS byte 255 ("unknown"),
//!   compression level 9 (flate2 `=1.1.11` on miniz_oxide; pinned in
//!   Cargo.toml because another deflate implementation or version may emit
//!   different, equally valid, bytes).
//!
//! Usage:
//!   rke2gpu-archiver --out FILE.tar.gz [--mtime EPOCH] [--prefix DIR] SRC=DEST[:MODE]...
//!
//! `DEST` is the path inside the archive (below `--prefix` when given);
//! `MODE` is octal (default 644). Example:
//!   rke2gpu-archiver --out kubectl-gpu.tar.gz \
//!     target/x86_64-unknown-linux-musl/release/kubectl-gpu=kubectl-gpu:755 LICENSE=LICENSE

use flate2::{Compression, GzBuilder};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: rke2gpu-archiver --out FILE.tar.gz [--mtime EPOCH] [--prefix DIR] SRC=DEST[:MODE]...";

#[derive(Debug)]
enum Item {
    Dir,
    File { src: PathBuf, mode: u32 },
}

struct Opts {
    out: PathBuf,
    mtime: u64,
    items: BTreeMap<String, Item>,
}

fn clean_dest(prefix: &str, dest: &str) -> Result<String, String> {
    let joined = if prefix.is_empty() {
        dest.to_string()
    } else {
        format!("{}/{}", prefix.trim_end_matches('/'), dest)
    };
    let parts: Vec<&str> = joined
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "..") || joined.starts_with('/') {
        return Err(format!(
            "bad archive path {joined:?}: must be relative, without `..`"
        ));
    }
    Ok(parts.join("/"))
}

fn parse(args: Vec<String>) -> Result<Opts, String> {
    let mut out = None;
    let mut mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .map_err(|e| format!("SOURCE_DATE_EPOCH={s:?}: {e}"))
        })
        .transpose()?
        .unwrap_or(0);
    let mut prefix = String::new();
    let mut specs = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" | "-o" => out = Some(PathBuf::from(it.next().ok_or("--out needs a value")?)),
            "--mtime" => {
                let v = it.next().ok_or("--mtime needs a value")?;
                mtime = v.parse().map_err(|e| format!("--mtime {v:?}: {e}"))?;
            }
            "--prefix" => prefix = it.next().ok_or("--prefix needs a value")?,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}")),
            _ => specs.push(a),
        }
    }
    let out = out.ok_or_else(|| format!("--out is required\n{USAGE}"))?;
    if specs.is_empty() {
        return Err(format!("no files given\n{USAGE}"));
    }
    let mut items = BTreeMap::new();
    for spec in specs {
        let (src, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected SRC=DEST[:MODE]"))?;
        let (dest, mode) = match rest.rsplit_once(':') {
            Some((d, m)) => (
                d,
                u32::from_str_radix(m, 8).map_err(|e| format!("{spec:?}: mode {m:?}: {e}"))?,
            ),
            None => (rest, 0o644),
        };
        if mode > 0o7777 {
            return Err(format!("{spec:?}: mode {mode:o} out of range"));
        }
        let dest = clean_dest(&prefix, dest)?;
        // Parent directories, each once.
        let mut acc = String::new();
        let comps: Vec<&str> = dest.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            if let Some(Item::File { .. }) = items.get(&acc) {
                return Err(format!("{acc:?} is both a file and a directory"));
            }
            items.insert(acc.clone(), Item::Dir);
        }
        let item = Item::File {
            src: PathBuf::from(src),
            mode,
        };
        if items.insert(dest.clone(), item).is_some() {
            return Err(format!("{dest:?} given twice (or is also a directory)"));
        }
    }
    Ok(Opts { out, mtime, items })
}

fn header(
    kind: tar::EntryType,
    path: &str,
    size: u64,
    mode: u32,
    mtime: u64,
) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_mtime(mtime);
    h.set_cksum();
    Ok(h)
}

fn write(opts: &Opts) -> Result<(), String> {
    let tmp = opts.out.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(BufWriter::new(file), Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    // BTreeMap order: a directory ("a") sorts before its children ("a/b"),
    // since a string sorts before every string it is a prefix of.
    for (path, item) in &opts.items {
        let r = match item {
            Item::Dir => {
                let h = header(
                    tar::EntryType::Directory,
                    &format!("{path}/"),
                    0,
                    0o755,
                    opts.mtime,
                )
                .map_err(|e| format!("{path}: {e}"))?;
                tar.append(&h, std::io::empty())
            }
            Item::File { src, mode } => {
                let data = std::fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
                let h = header(
                    tar::EntryType::Regular,
                    path,
                    data.len() as u64,
                    *mode,
                    opts.mtime,
                )
                .map_err(|e| format!("{path}: {e}"))?;
                tar.append(&h, data.as_slice())
            }
        };
        r.map_err(|e| format!("writing {path}: {e}"))?;
    }
    let gz = tar
        .into_inner()
        .map_err(|e| format!("finishing tar: {e}"))?;
    let mut buf = gz.finish().map_err(|e| format!("finishing gzip: {e}"))?;
    buf.flush()
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    drop(buf);
    std::fs::rename(&tmp, &opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rke2gpu-archiver: {e}");
            return ExitCode::from(2);
        }
    };
    match write(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rke2gpu-archiver: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Opts, String> {
        parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parents_get_entries_and_sort_first() {
        let o = opts(&[
            "--out",
            "x.tgz",
            "--prefix",
            "rke2gpu",
            "b=bin/helm-rke2gpu:755",
            "p=plugin.yaml",
        ])
        .unwrap();
        let keys: Vec<_> = o.items.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "rke2gpu",
                "rke2gpu/bin",
                "rke2gpu/bin/helm-rke2gpu",
                "rke2gpu/plugin.yaml"
            ]
        );
    }

    #[test]
    fn rejects_escaping_paths_and_duplicates() {
        assert!(opts(&["--out", "x", "a=../x"]).is_err());
        assert!(opts(&["--out", "x", "a=/x"]).is_err());
        assert!(opts(&["--out", "x", "a=x", "b=x"]).is_err());
        assert!(opts(&["--out", "x", "a=x", "b=x/y"]).is_err());
        assert!(opts(&["--out", "x", "a=x:999"]).is_err());
    }

    #[test]
    fn same_input_same_bytes_regardless_of_source_mtime() {
        let dir =
            std::env::temp_dir().join(format!("rke2gpu-archiver-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("bin");
        std::fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
        let run = |name: &str| {
            let out = dir.join(name);
            let o = opts(&[
                "--out",
                out.to_str().unwrap(),
                "--mtime",
                "1700000000",
                &format!("{}=kubectl-gpu:755", src.display()),
            ])
            .unwrap();
            write(&o).unwrap();
            std::fs::read(out).unwrap()
        };
        let a = run("a.tar.gz");
        // A different source mtime must not matter.
        let f = File::options().append(true).open(&src).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(12345))
            .unwrap();
        drop(f);
        let b = run("b.tar.gz");
        assert_eq!(a, b);
        // gzip header: magic, CM=8, FLG=0 (no name), MTIME=0, OS=255.
        assert_eq!(&a[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
        assert_eq!(a[9], 255);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
        let e: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    h.username().unwrap().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            e,
            [(
                "kubectl-gpu".to_string(),
                0o755,
                0,
                1_700_000_000,
                Some("root".to_string())
            )]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
