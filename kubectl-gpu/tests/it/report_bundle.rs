//! The support bundle: layout, manifest, reproducibility, redaction, and
//! proof that no Secret data ends up in the archive.

use crate::support::report as common;

use base64::Engine as _;
use flate2::read::GzDecoder;
use k8s_openapi::api::core::v1::Pod;
use rke2gpu::check_runtime::{self, host, operand_texts};
use rke2gpu::cli::OutputFormat;
use rke2gpu::matrix::NodePaths;
use rke2gpu::node::probe::ProbeResult;
use rke2gpu::report::GpuReport;
use rke2gpu::report::bundle::{self, Collected};
use rke2gpu::version::Distribution;
use std::collections::BTreeMap;
use std::io::Read as _;

fn collected() -> Collected {
    let pods: Vec<Pod> = common::pod_values()
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let mut probe = ProbeResult::default();
    probe.files.insert(
        "/etc/rancher/rke2/config.yaml".into(),
        Some(format!(
            "token: {}\nwrite-kubeconfig-mode: \"0600\"\n",
            common::SECRET_MARKER
        )),
    );
    probe.files.insert(
        "/var/lib/rancher/rke2/agent/etc/containerd/config.toml".into(),
        Some(format!(
            "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry.configs.'r'.auth]\n  password = \"{}\"\n",
            common::SECRET_MARKER
        )),
    );
    probe
        .files
        .insert("/proc/driver/nvidia/version".into(), None);
    Collected {
        gpu_pods: Some(Ok(pods)),
        events: BTreeMap::from([("events/gpu-operator.yaml".to_string(), Ok(vec![]))]),
        logs: BTreeMap::from([
            (
                "logs/gpu-operator/nvidia-container-toolkit-daemonset-gpu-a100-legacy-0/main.log"
                    .to_string(),
                Ok((
                    "time=... level=error msg=\"containerd config dump: not found\"\n".to_string(),
                    false,
                )),
            ),
            (
                "logs/gpu-operator/x/main.previous.log".to_string(),
                Err("previous terminated container not found (400)".to_string()),
            ),
        ]),
        check_runtime: Some(check_runtime::evaluate_all(&common::snapshot(), None, None)),
        node_files: BTreeMap::from([("gpu-h200-0".to_string(), Ok(probe))]),
    }
}

fn build() -> (Vec<u8>, bundle::BundleSummary) {
    let snap = common::snapshot();
    let report = GpuReport::build(&snap, Some(&common::pods_read()), None, common::now());
    let b = bundle::assemble(&snap, &report, &collected());
    let mut out = Vec::new();
    let summary = b.write(&report, &mut out, 1_700_000_000).unwrap();
    (out, summary)
}

fn entries(archive: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut t = tar::Archive::new(GzDecoder::new(archive));
    t.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let header = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, header, data)
        })
        .collect()
}

#[test]
fn layout_manifest_and_fixed_metadata() {
    let (archive, summary) = build();
    let es = entries(&archive);
    assert_eq!(es[0].0, "manifest.json");
    let rest: Vec<&String> = es[1..].iter().map(|e| &e.0).collect();
    let mut sorted = rest.clone();
    sorted.sort();
    assert_eq!(rest, sorted, "entries are sorted");
    for (_, h, _) in &es {
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&es[0].2).unwrap();
    let listed: Vec<&str> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed, rest.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    for (e, m) in es[1..].iter().zip(manifest["entries"].as_array().unwrap()) {
        assert_eq!(m["bytes"].as_u64().unwrap() as usize, e.2.len(), "{}", e.0);
    }
    for want in [
        "report.json",
        "check-runtime.json",
        "nodes/gpu-h200-0.yaml",
        "nodes/gpu-mig-0.yaml",
        "pods/ml/train-a.yaml",
        "operator/gpu-operator/daemonsets/nvidia-container-toolkit-daemonset.yaml",
        "operator/gpu-operator/deployments/gpu-operator.yaml",
        "operator/clusterpolicy/cluster-policy.yaml",
        "operator/helm/gpu-operator.values.yaml",
        "operator/helm/gpu-operator.release.json",
        "events/gpu-operator.yaml",
        "node-files/gpu-h200-0/etc/rancher/rke2/config.yaml",
        "node-files/gpu-h200-0/_probe.json",
    ] {
        assert!(rest.iter().any(|p| *p == want), "{want} missing: {rest:?}");
    }
    assert!(
        !rest.iter().any(|p| p.starts_with("nodes/worker-0")),
        "non-GPU nodes left out"
    );
    assert!(
        manifest["not_collected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n
                .as_str()
                .unwrap()
                .contains("previous terminated container not found"))
    );
    assert_eq!(summary.entries, es.len());
    assert_eq!(
        summary.uncompressed_bytes,
        es.iter().map(|e| e.2.len() as u64).sum::<u64>()
    );
    assert_eq!(summary.compressed_bytes, archive.len() as u64);
    // Managed fields are dropped.
    let node = String::from_utf8(
        es.iter()
            .find(|e| e.0 == "nodes/gpu-h200-0.yaml")
            .unwrap()
            .2
            .clone(),
    )
    .unwrap();
    assert!(!node.contains("managedFields"));
    assert!(node.contains("nvidia.com/gpu"));
}

#[test]
fn same_inputs_same_bytes() {
    assert_eq!(build().0, build().0);
}

#[test]
fn no_secret_data_in_the_archive() {
    let (archive, _) = build();
    let mut all = Vec::new();
    GzDecoder::new(archive.as_slice())
        .read_to_end(&mut all)
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    let b64 = base64::engine::general_purpose::STANDARD;
    for marker in [common::SECRET_MARKER, common::TOKEN_MARKER] {
        assert!(!text.contains(marker), "{marker} leaked");
        assert!(
            !text.contains(&b64.encode(marker)),
            "{marker} leaked as base64"
        );
    }
    // Neither Secret object (the Helm release nor the Opaque one) is in it,
    // nor the release blob.
    let helm = common::helm_secret();
    let blob = String::from_utf8_lossy(&helm.data.as_ref().unwrap()["release"].0).to_string();
    assert!(!text.contains(&blob[..64]));
    assert!(!text.contains("sh.helm.release.v1"));
    assert!(!text.contains("kind: Secret"));
    assert!(!text.contains("ngc-api"));
    // Redacted, not dropped: the structure is kept for support.
    let es = entries(&archive);
    let values = String::from_utf8(
        es.iter()
            .find(|e| e.0 == "operator/helm/gpu-operator.values.yaml")
            .unwrap()
            .2
            .clone(),
    )
    .unwrap();
    assert!(values.contains("<redacted>"));
    assert!(values.contains("/run/k3s/containerd/containerd.sock"));
    assert!(
        values.contains("nvidia.com/gpu"),
        "toleration keys are not secrets"
    );
    let cfg = String::from_utf8(
        es.iter()
            .find(|e| e.0.ends_with("rke2/config.yaml"))
            .unwrap()
            .2
            .clone(),
    )
    .unwrap();
    assert!(cfg.contains("write-kubeconfig-mode"));
    assert!(cfg.contains("token: \"<redacted>\""));
}

/// `check-runtime.json` in the bundle is `check-runtime -o json` on the same
/// snapshot (and the same `--deep` read): one [`check_runtime::CheckReport`],
/// serialised once. Fails if the bundle's copy drifts from the command's.
#[test]
fn bundle_check_runtime_is_the_check_runtime_report() {
    let snap = common::snapshot();
    let mut probe = ProbeResult::default();
    probe.files.insert(
        "/var/lib/rancher/rke2/agent/etc/containerd/config.toml".into(),
        Some("version = 3\n".into()),
    );
    probe
        .files
        .insert("/proc/driver/nvidia/version".into(), None);
    let deep = host::DeepRead {
        image: "registry.local/busybox:1.37".into(),
        nodes: BTreeMap::from([
            (
                "gpu-h200-0".to_string(),
                Ok((NodePaths::new(Distribution::Rke2, None), probe)),
            ),
            (
                "gpu-mig-0".to_string(),
                Err("pod did not start".to_string()),
            ),
        ]),
    };
    // What the failing toolkit pod says (rancher/rke2#3385's log line, from
    // tests/fixtures/real-world/operator/operand-failure-texts.yaml).
    let operands = operand_texts::OperandTexts {
        namespace: "gpu-operator".into(),
        pods: vec![operand_texts::PodTexts {
            target: operand_texts::Target {
                namespace: "gpu-operator".into(),
                pod: "nvidia-container-toolkit-daemonset-abcde".into(),
                app: "nvidia-container-toolkit-daemonset".into(),
                node: Some("gpu-h200-0".into()),
                container: "nvidia-container-toolkit-ctr".into(),
                init: false,
                why: "waiting: CrashLoopBackOff".into(),
                restarts: 6,
                has_run: true,
                states: vec![],
            },
            log: operand_texts::LogText::Lines {
                previous: false,
                lines: vec![r#"nvidia-container-toolkit-ctr time="2022-09-26T15:50:01Z" level=fatal msg="Error: unable to load config: (6, 21): unexpected token type in inline table: keys cannot contain { character""#.into()],
                cut: false,
            },
            events: vec![],
        }],
        ..operand_texts::OperandTexts::default()
    };
    // What `kubectl gpu check-runtime --deep -o json` prints (no --node).
    let command = check_runtime::evaluate(&snap, &[], Some(&deep), Some(&operands)).unwrap();
    let printed: serde_json::Value = serde_json::from_str(
        &check_runtime::table::render(&command, OutputFormat::Json, false).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, serde_json::to_value(&command).unwrap());
    assert!(
        command
            .findings
            .iter()
            .any(|f| f.id == "generated-config" && f.node.as_deref() == Some("gpu-h200-0")),
        "host rules ran"
    );
    assert!(
        command
            .findings
            .iter()
            .any(|f| f.id == "node-agent" && f.node.as_deref() == Some("gpu-mig-0")),
        "unreadable node reported"
    );

    // What the bundle computes and writes.
    let mut c = collected();
    c.check_runtime = Some(check_runtime::evaluate_all(
        &snap,
        Some(&deep),
        Some(&operands),
    ));
    let report = GpuReport::build(&snap, Some(&common::pods_read()), None, common::now());
    let b = bundle::assemble(&snap, &report, &c);
    let mut out = Vec::new();
    b.write(&report, &mut out, 0).unwrap();
    let es = entries(&out);
    let entry = &es.iter().find(|e| e.0 == "check-runtime.json").unwrap().2;
    let in_bundle: serde_json::Value = serde_json::from_slice(entry).unwrap();
    assert_eq!(in_bundle, serde_json::to_value(&command).unwrap());
    assert_eq!(in_bundle, printed);
    assert!(
        in_bundle["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["cause"] == "toolkit-config-template"),
        "the bundle has the operand-texts finding"
    );
}
