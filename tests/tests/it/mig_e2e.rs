//! `check-runtime` and `report` on a node whose MIG manager labels say a
//! MIG change failed or is in progress: the real binary against the local
//! test cluster, with the labels the GPU Operator's MIG manager writes set
//! on a KWOK GPU node (and removed afterwards).

use cluster_harness::Cluster;
use serde_json::Value;

use super::check_runtime_e2e::{find, gpu, healthy_operator, json_findings};

const NODE: &str = "gpu-h200-0";

struct Labels<'a> {
    c: &'a Cluster,
    keys: Vec<&'static str>,
}

impl Drop for Labels<'_> {
    fn drop(&mut self) {
        for k in &self.keys {
            self.c.label_node(NODE, k, None);
        }
    }
}

fn set<'a>(c: &'a Cluster, labels: &[(&'static str, &str)]) -> Labels<'a> {
    for (k, v) in labels {
        c.label_node(NODE, k, Some(v));
    }
    Labels {
        c,
        keys: labels.iter().map(|(k, _)| *k).collect(),
    }
}

#[test]
fn a_failed_and_a_pending_mig_change_are_reported_with_their_fix() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    healthy_operator(c);
    let out = {
        let _l = set(
            c,
            &[
                ("nvidia.com/mig.capable", "true"),
                ("nvidia.com/mig.strategy", "mixed"),
                ("nvidia.com/mig.config", "all-1g.18gb"),
                ("nvidia.com/mig.config.state", "failed"),
            ],
        );
        gpu(c, &["check-runtime", "--node", NODE, "-o", "json"])
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = json_findings(&out);
    let m = find(&f, "mig-state", Some(NODE), "fail").unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        m["message"].as_str().unwrap().contains("all-1g.18gb"),
        "{m}"
    );
    assert!(
        m["fix"].as_str().unwrap().contains("nvidia-mig-manager"),
        "{m}"
    );

    // In progress, the device plugin paused: a warning; report names it.
    let (check, report) = {
        let _l = set(
            c,
            &[
                ("nvidia.com/mig.capable", "true"),
                ("nvidia.com/mig.strategy", "mixed"),
                ("nvidia.com/mig.config", "all-1g.18gb"),
                ("nvidia.com/mig.config.state", "pending"),
            ],
        );
        (
            gpu(c, &["check-runtime", "--node", NODE, "-o", "json"]),
            gpu(c, &["report", "nodes", "-o", "json"]),
        )
    };
    let f = json_findings(&check);
    // The stand-in cluster runs no MIG manager: the change cannot finish.
    let m = find(&f, "mig-state", Some(NODE), "fail").unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .contains("no MIG manager pod"),
        "{m}"
    );
    let v: Value = serde_json::from_slice(&report.stdout).unwrap();
    let row = v["nodes"]["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == NODE))
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(row["mig"]["state"], "pending", "{row}");
    assert!(
        row["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .starts_with("MIG change to all-1g.18gb in progress")),
        "{row}"
    );
}
