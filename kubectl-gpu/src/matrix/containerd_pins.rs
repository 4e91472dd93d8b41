//! Which containerd each RKE2 and K3s release ships: the releases where a
//! line's containerd changes (a release not listed ships the containerd of
//! the nearest listed release before it on its line). Part of the matrix.
//!
//! RKE2: read at every final tag of rancher/rke2 v1.28.1+rke2r1 to
//! v1.36.3+rke2r1 (mirror HEAD 2026-08-21), `Dockerfile` `FROM
//! rancher/hardened-containerd:vX-k3sN-build...`; the `replace` in go.mod is
//! the Go library RKE2 links, not the containerd it runs (they differ at 19
//! tags, e.g. v1.36.3+rke2r1 ships 2.3.3 while go.mod has 2.3.2). Cross-
//! checked against the rke2-docs release-note tables (125 of 126 agree;
//! v1.29.0+rke2r1: docs say 1.7.11-k3s1, the Dockerfile 1.7.11-k3s2).
//!
//! K3s: the Containerd column of the k3s-io/docs release notes
//! (`docs/release-notes/v1.XX.X.md`) and the GitHub release pages; those
//! tables list announced releases only, and a few patches are missing
//! (1.28.12–15, 1.32.12–13, 1.33.8–13, 1.34.3–8 and 1.34.10, 1.35.7,
//! 1.36.3): a release after the last listed one on its line is answered
//! with that one's containerd, and `newest_listed` says how far the table
//! reaches.

use super::ContainerdPin;

#[allow(clippy::too_many_arguments)] // one table row: release and containerd triples
const fn pin(
    major: u64,
    minor: u64,
    patch: u64,
    release: u64,
    c_major: u64,
    c_minor: u64,
    c_patch: u64,
    full: &'static str,
) -> ContainerdPin {
    ContainerdPin {
        first: super::lr(major, minor, patch, release),
        containerd: crate::version::Triple::new(c_major, c_minor, c_patch),
        full,
    }
}

/// RKE2: the first release of each line with each containerd (source: rancher/rke2 `Dockerfile` at the tag).
pub const RKE2_CONTAINERD: &[ContainerdPin] = &[
    pin(1, 28, 1, 1, 1, 7, 3, "1.7.3-k3s1"),
    pin(1, 28, 3, 1, 1, 7, 7, "1.7.7-k3s1"),
    pin(1, 28, 5, 1, 1, 7, 11, "1.7.11-k3s2"),
    pin(1, 28, 11, 1, 1, 7, 17, "1.7.17-k3s1"),
    pin(1, 28, 13, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 28, 14, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 28, 15, 1, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 29, 0, 1, 1, 7, 11, "1.7.11-k3s2"),
    pin(1, 29, 6, 1, 1, 7, 17, "1.7.17-k3s1"),
    pin(1, 29, 8, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 29, 9, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 29, 10, 1, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 29, 11, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 29, 15, 1, 1, 7, 26, "1.7.26-k3s1"),
    pin(1, 30, 0, 1, 1, 7, 11, "1.7.11-k3s2"),
    pin(1, 30, 2, 1, 1, 7, 17, "1.7.17-k3s1"),
    pin(1, 30, 4, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 30, 5, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 30, 6, 1, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 30, 7, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 30, 11, 1, 1, 7, 26, "1.7.26-k3s1"),
    pin(1, 30, 13, 1, 1, 7, 27, "1.7.27-k3s1"),
    pin(1, 31, 0, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 31, 1, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 31, 1, 2, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 31, 3, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 31, 6, 1, 2, 0, 2, "2.0.2-k3s2"),
    pin(1, 31, 7, 1, 2, 0, 4, "2.0.4-k3s2"),
    pin(1, 31, 9, 1, 2, 0, 5, "2.0.5-k3s1"),
    pin(1, 31, 11, 1, 2, 0, 5, "2.0.5-k3s2"),
    pin(1, 31, 13, 1, 2, 1, 4, "2.1.4-k3s2"),
    pin(1, 31, 14, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 32, 0, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 32, 2, 1, 2, 0, 2, "2.0.2-k3s2"),
    pin(1, 32, 3, 1, 2, 0, 4, "2.0.4-k3s2"),
    pin(1, 32, 5, 1, 2, 0, 5, "2.0.5-k3s1"),
    pin(1, 32, 7, 1, 2, 0, 5, "2.0.5-k3s2"),
    pin(1, 32, 9, 1, 2, 1, 4, "2.1.4-k3s2"),
    pin(1, 32, 10, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 32, 13, 2, 2, 2, 2, "2.2.2-k3s1"),
    pin(1, 33, 0, 1, 2, 0, 4, "2.0.4-k3s2"),
    pin(1, 33, 1, 1, 2, 0, 5, "2.0.5-k3s1"),
    pin(1, 33, 3, 1, 2, 0, 5, "2.0.5-k3s2"),
    pin(1, 33, 5, 1, 2, 1, 4, "2.1.4-k3s2"),
    pin(1, 33, 6, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 33, 10, 1, 2, 2, 2, "2.2.2-k3s1"),
    pin(1, 33, 11, 1, 2, 2, 3, "2.2.3-k3s1"),
    pin(1, 33, 13, 1, 2, 2, 5, "2.2.5-k3s1"),
    pin(1, 33, 13, 2, 2, 2, 6, "2.2.6-k3s1"),
    pin(1, 34, 1, 1, 2, 1, 4, "2.1.4-k3s2"),
    pin(1, 34, 2, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 34, 6, 1, 2, 2, 2, "2.2.2-k3s1"),
    pin(1, 34, 7, 1, 2, 2, 3, "2.2.3-k3s1"),
    pin(1, 34, 9, 1, 2, 2, 5, "2.2.5-k3s2"),
    pin(1, 34, 10, 1, 2, 2, 6, "2.2.6-k3s1"),
    pin(1, 35, 0, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 35, 3, 1, 2, 2, 2, "2.2.2-k3s1"),
    pin(1, 35, 4, 1, 2, 2, 3, "2.2.3-k3s1"),
    pin(1, 35, 6, 1, 2, 2, 5, "2.2.5-k3s2"),
    pin(1, 35, 7, 1, 2, 2, 6, "2.2.6-k3s1"),
    pin(1, 36, 0, 1, 2, 2, 3, "2.2.3-k3s1"),
    pin(1, 36, 2, 1, 2, 3, 2, "2.3.2-k3s2"),
    pin(1, 36, 3, 1, 2, 3, 3, "2.3.3-k3s1"),
];

/// K3s: the first release of each line with each containerd (source: k3s-io/docs release notes).
pub const K3S_CONTAINERD: &[ContainerdPin] = &[
    pin(1, 28, 1, 1, 1, 7, 3, "1.7.3-k3s2"),
    pin(1, 28, 2, 1, 1, 7, 6, "1.7.6-k3s1"),
    pin(1, 28, 3, 1, 1, 7, 7, "1.7.7-k3s1"),
    pin(1, 28, 5, 1, 1, 7, 11, "1.7.11-k3s2"),
    pin(1, 28, 9, 1, 1, 7, 15, "1.7.15-k3s1"),
    pin(1, 28, 11, 1, 1, 7, 17, "1.7.17-k3s1.28"),
    pin(1, 29, 0, 1, 1, 7, 11, "1.7.11-k3s2"),
    pin(1, 29, 4, 1, 1, 7, 15, "1.7.15-k3s1"),
    pin(1, 29, 6, 1, 1, 7, 17, "1.7.17-k3s1"),
    pin(1, 29, 8, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 29, 9, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 29, 10, 1, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 29, 11, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 29, 15, 1, 1, 7, 26, "1.7.26-k3s1"),
    pin(1, 30, 0, 1, 1, 7, 15, "1.7.15-k3s1"),
    pin(1, 30, 2, 1, 1, 7, 17, "1.7.17-k3s1"),
    pin(1, 30, 4, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 30, 5, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 30, 6, 1, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 30, 7, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 30, 11, 1, 1, 7, 26, "1.7.26-k3s1"),
    pin(1, 30, 13, 1, 1, 7, 27, "1.7.27-k3s1"),
    pin(1, 31, 0, 1, 1, 7, 20, "1.7.20-k3s1"),
    pin(1, 31, 1, 1, 1, 7, 21, "1.7.21-k3s2"),
    pin(1, 31, 2, 1, 1, 7, 22, "1.7.22-k3s1"),
    pin(1, 31, 3, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 31, 6, 1, 2, 0, 2, "2.0.2-k3s2"),
    pin(1, 31, 7, 1, 2, 0, 4, "2.0.4-k3s2"),
    pin(1, 31, 9, 1, 2, 0, 5, "2.0.5-k3s1.32"),
    pin(1, 31, 11, 1, 2, 0, 5, "2.0.5-k3s2.32"),
    pin(1, 31, 13, 1, 2, 1, 4, "2.1.4-k3s1.32"),
    pin(1, 31, 14, 1, 2, 1, 5, "2.1.5-k3s1.32"),
    pin(1, 32, 0, 1, 1, 7, 23, "1.7.23-k3s2"),
    pin(1, 32, 2, 1, 2, 0, 2, "2.0.2-k3s2"),
    pin(1, 32, 3, 1, 2, 0, 4, "2.0.4-k3s2"),
    pin(1, 32, 5, 1, 2, 0, 5, "2.0.5-k3s1.32"),
    pin(1, 32, 7, 1, 2, 0, 5, "2.0.5-k3s2.32"),
    pin(1, 32, 9, 1, 2, 1, 4, "2.1.4-k3s1.32"),
    pin(1, 32, 10, 1, 2, 1, 5, "2.1.5-k3s1.32"),
    pin(1, 33, 0, 1, 2, 0, 4, "2.0.4-k3s4"),
    pin(1, 33, 1, 1, 2, 0, 5, "2.0.5-k3s1"),
    pin(1, 33, 3, 1, 2, 0, 5, "2.0.5-k3s2"),
    pin(1, 33, 5, 1, 2, 1, 4, "2.1.4-k3s1"),
    pin(1, 33, 6, 1, 2, 1, 5, "2.1.5-k3s1.33"),
    pin(1, 34, 1, 1, 2, 1, 4, "2.1.4-k3s2"),
    pin(1, 34, 2, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 34, 9, 1, 2, 2, 5, "2.2.5-k3s2"),
    pin(1, 35, 0, 1, 2, 1, 5, "2.1.5-k3s1"),
    pin(1, 35, 3, 1, 2, 2, 2, "2.2.2-k3s1"),
    pin(1, 35, 4, 1, 2, 2, 3, "2.2.3-k3s1"),
    pin(1, 35, 6, 1, 2, 2, 5, "2.2.5-k3s2"),
    pin(1, 36, 0, 1, 2, 2, 3, "2.2.3-k3s1"),
    pin(1, 36, 2, 1, 2, 3, 2, "2.3.2-k3s2"),
    pin(1, 37, 0, 1, 2, 3, 4, "2.3.4-k3s1"),
];

/// The newest release each table read, per line (later ones: not known).
pub const RKE2_NEWEST_READ: &[super::LineRelease] = &[
    super::lr(1, 28, 15, 1),
    super::lr(1, 29, 15, 1),
    super::lr(1, 30, 14, 4),
    super::lr(1, 31, 14, 2),
    super::lr(1, 32, 13, 2),
    super::lr(1, 33, 13, 2),
    super::lr(1, 34, 10, 1),
    super::lr(1, 35, 7, 1),
    super::lr(1, 36, 3, 1),
];

pub const K3S_NEWEST_READ: &[super::LineRelease] = &[
    super::lr(1, 28, 11, 2),
    super::lr(1, 29, 15, 1),
    super::lr(1, 30, 14, 2),
    super::lr(1, 31, 14, 1),
    super::lr(1, 32, 11, 3),
    super::lr(1, 33, 7, 1),
    super::lr(1, 34, 9, 1),
    super::lr(1, 35, 6, 1),
    super::lr(1, 36, 2, 1),
    super::lr(1, 37, 1, 1),
];
