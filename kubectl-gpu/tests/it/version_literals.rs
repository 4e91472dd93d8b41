//! Versioned knowledge lives only in `matrix.rs`: this test fails when a
//! version literal (an RKE2/K3s release, a Kubernetes, containerd, NVIDIA
//! Container Toolkit or GPU Operator chart version) appears in the non-test
//! code of either crate outside the matrix.
//!
//! Non-test code: every line of `kubectl-gpu/src` and `helm-rke2gpu/src`
//! before a file's `#[cfg(test)]`, comments excluded (a comment may say
//! where a behaviour started; a string or a number the code acts on may not).

use std::path::{Path, PathBuf};

use regex::Regex;

/// Files allowed to hold versions: the matrix itself (and its tables).
const ALLOWED: &[&str] = &[
    "kubectl-gpu/src/matrix.rs",
    "kubectl-gpu/src/matrix/containerd_pins.rs",
];

/// What a version literal looks like, with the kind it is.
fn patterns() -> Vec<(&'static str, Regex)> {
    let p = |s: &str| Regex::new(s).expect("valid regex");
    vec![
        // v1.33.10+rke2r1, v1.32.13+k3s1, 1.33.10+rke2r1
        ("RKE2/K3s release", p(r"\bv?1\.\d{2}\.\d+\+(rke2r|k3s)\d+")),
        // v1.31.6 (a Kubernetes / RKE2 line release)
        ("Kubernetes release", p(r"\bv1\.[1-3]\d\.\d+\b")),
        // 2.0.2-k3s2, 1.7.23, 2.3.4 (containerd releases)
        (
            "containerd version",
            p(r"\b(1\.[5-7]|2\.\d)\.\d+(-k3s\d+)?\b"),
        ),
        // 1.17.4 (NVIDIA Container Toolkit releases)
        ("toolkit version", p(r"\bv?1\.(1[0-9]|2[0-9])\.\d+\b")),
        // v25.10.0, 24.9.2 (GPU Operator chart versions)
        ("chart version", p(r"\bv?2[2-9]\.\d{1,2}\.\d+\b")),
        // Triple::new(25, 10, 0) / t(2, 0, 0)
        (
            "version triple",
            p(r"\b(Triple::new|Triple::from|t)\(\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\)"),
        ),
    ]
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A line of `--help` examples or a "a version like X" hint: a literal that
/// shows a format, not knowledge the code acts on.
fn is_example(line: &str) -> bool {
    // Inside a multi-line help string: the line starts with the command (a
    // string that starts with `"--flag` is a message, not an example).
    let t = line.trim_start();
    ["kubectl gpu ", "kubectl-gpu ", "helm rke2gpu ", "--"]
        .iter()
        .any(|p| t.starts_with(p))
        || Regex::new(r"\b(like|e\.g\.) v?\d")
            .expect("valid regex")
            .is_match(line)
}

/// The non-test, non-comment lines of a source file, numbered from 1.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") || is_example(line) {
            continue;
        }
        // A trailing comment is a comment too.
        let code = match line.find(" // ") {
            Some(at) if !line[..at].contains('"') || line[..at].matches('"').count() % 2 == 0 => {
                &line[..at]
            }
            _ => line,
        };
        lines.push((i + 1, code));
    }
    lines
}

/// Files that are test modules: `#[cfg(test)]` followed by `mod name;`
/// makes `name.rs` (or `name/mod.rs`) beside the declaring module test code.
fn test_module_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for w in lines.windows(2) {
            let Some(name) = w[1].strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            if w[0] != "#[cfg(test)]" {
                continue;
            }
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = if matches!(stem, "mod" | "lib" | "main") {
                f.parent().map(Path::to_path_buf)
            } else {
                f.parent().map(|p| p.join(stem))
            };
            if let Some(dir) = dir {
                out.push(dir.join(format!("{name}.rs")));
                out.push(dir.join(name).join("mod.rs"));
            }
        }
    }
    out
}

fn findings(root: &Path) -> Vec<String> {
    let pats = patterns();
    let mut files = Vec::new();
    for dir in ["kubectl-gpu/src", "helm-rke2gpu/src"] {
        rs_files(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(
        files.len() > 20,
        "expected the crates' sources under {}",
        root.display()
    );
    let test_files = test_module_files(&files);
    let mut found = Vec::new();
    for f in files {
        if test_files.contains(&f) {
            continue;
        }
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if ALLOWED.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in code_lines(&text) {
            for (kind, re) in &pats {
                if let Some(m) = re.find(line) {
                    found.push(format!(
                        "{rel}:{n}: {kind} `{}`: {}",
                        m.as_str(),
                        line.trim()
                    ));
                    break; // one finding per line
                }
            }
        }
    }
    found
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn no_version_literal_outside_the_matrix() {
    let found = findings(&repo_root());
    assert!(
        found.is_empty(),
        "version literals outside kubectl-gpu/src/matrix.rs (move them into a matrix row with its source, \
         and render messages from the row):\n{}",
        found.join("\n")
    );
}

/// The scanner itself catches each kind, and passes comments and tests.
#[test]
fn the_scanner_sees_each_kind_and_skips_comments_and_tests() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("kubectl-gpu/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(dir.path().join("helm-rke2gpu/src")).unwrap();
    for i in 0..21 {
        std::fs::write(src.join(format!("f{i}.rs")), "fn f() {}\n").unwrap();
    }
    std::fs::write(
        src.join("bad.rs"),
        concat!(
            "// since v1.31.6+rke2r1 (a comment: fine)\n",
            "const A: &str = \"upgrade to v1.33.10+rke2r1\";\n",
            "const B: &str = \"containerd 2.0.2-k3s2\";\n",
            "let c = Triple::new(25, 10, 0);\n",
            "let d = \"chart v25.3.4\"; // chart v26.7.0 in a comment\n",
            "let e = \"toolkit 1.17.4\";\n",
            "let f = \"image nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04 busybox:1.37 driver 580.159.04\";\n",
            "  kubectl gpu patch-containerd --rke2-version v1.33.10+rke2r1   # a --help example\n",
            "#[cfg(test)]\n",
            "mod tests { const X: &str = \"v1.33.10+rke2r1\"; }\n",
        ),
    )
    .unwrap();
    // A test module in a file of its own (`#[cfg(test)] mod cases;`).
    std::fs::write(src.join("f0.rs"), "#[cfg(test)]\nmod cases;\n").unwrap();
    std::fs::create_dir_all(src.join("f0")).unwrap();
    std::fs::write(
        src.join("f0/cases.rs"),
        "const Y: &str = \"v1.33.10+rke2r1\";\n",
    )
    .unwrap();
    let found = findings(dir.path());
    let kinds: Vec<&str> = found
        .iter()
        .map(|f| f.split(": ").nth(1).unwrap_or(""))
        .collect();
    let joined = found.join("\n");
    assert!(joined.contains("bad.rs:2: RKE2/K3s release"), "{joined}");
    assert!(
        joined.contains("bad.rs:3: containerd version `2.0.2-k3s2`"),
        "{joined}"
    );
    assert!(joined.contains("bad.rs:4: version triple"), "{joined}");
    assert!(
        joined.contains("bad.rs:5: chart version `v25.3.4`"),
        "{joined}"
    );
    assert!(
        joined.contains("bad.rs:6: toolkit version `1.17.4`"),
        "{joined}"
    );
    assert!(!joined.contains("v26.7.0"), "comment counted: {joined}");
    assert!(!joined.contains("bad.rs:1:"), "comment counted: {joined}");
    assert!(!joined.contains("bad.rs:7:"), "image tag counted: {joined}");
    assert!(
        !joined.contains("bad.rs:8:"),
        "help example counted: {joined}"
    );
    assert!(
        !joined.contains("bad.rs:10:"),
        "test code counted: {joined}"
    );
    assert!(
        !joined.contains("cases.rs"),
        "test module file counted: {joined}"
    );
    assert!(!kinds.is_empty());
}
