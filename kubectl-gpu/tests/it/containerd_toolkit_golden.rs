//! The NVIDIA container toolkit's own golden cases (tests/fixtures/upstream/
//! toolkit-golden/, from NVIDIA/nvidia-container-toolkit v1.20.0; each case's
//! `.json` and `.source` name the Go test it comes from): every TOML file
//! parses, the version rule matches the case's `config_version`, and the
//! toolkit's expected drop-ins read back with the runtime it was asked to add.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rke2gpu::containerd::{ContainerdConfig, effective_config};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/upstream/toolkit-golden")
}

fn read(name: &str) -> Option<String> {
    std::fs::read_to_string(dir().join(name)).ok()
}

fn cases() -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let case = name.strip_suffix(".json")?.to_owned();
            let v: serde_json::Value = serde_json::from_str(&read(&name)?).unwrap();
            Some((case, v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_golden_toml_parses() {
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") {
            let text = read(&name).unwrap();
            ContainerdConfig::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n > 80, "only {n} files");
}

#[test]
fn version_detection_matches_the_cases() {
    let mut checked = 0;
    for (case, v) in cases() {
        let Some(input) = read(&format!("{case}.input.toml")) else {
            continue;
        };
        let want = v["config_version"].as_i64().unwrap();
        let got = ContainerdConfig::parse(&case, &input).unwrap().version();
        if v["use_legacy_config"].as_bool() == Some(true) && input.trim().is_empty() {
            // The toolkit forces v1 here through WithUseLegacyConfig(true);
            // by the file alone an empty config is version 2.
            assert_eq!((want, got), (1, 2), "{case}");
        } else {
            assert_eq!(got, want, "{case}");
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
}

/// The toolkit's expected drop-in (merged over its expected top-level
/// config) has the runtime it was asked for, with runtime_type runc.v2 and
/// BinaryName `<runtime_dir>/nvidia-container-runtime` (installer cases), and
/// default_runtime_name when set_as_default.
#[test]
fn expected_drop_ins_have_the_requested_runtime() {
    let mut checked = 0;
    for (case, v) in cases() {
        if !case.starts_with("installer-lifecycle-v2")
            && !case.starts_with("installer-lifecycle-v3")
        {
            continue;
        }
        let Some(drop) = read(&format!("{case}.expected-dropin.toml")) else {
            continue;
        };
        let top = read(&format!("{case}.expected.toml")).unwrap_or_default();
        let name = v["runtime_name"].as_str().unwrap();
        let rdir = v["runtime_dir"].as_str().unwrap();
        let eff = effective_config(
            &case,
            &top,
            &BTreeMap::from([("99-nvidia.toml".to_string(), drop.clone())]),
        )
        .unwrap();
        assert_eq!(
            eff.version(),
            v["config_version"].as_i64().unwrap(),
            "{case}"
        );
        let rt = eff
            .runtime(name)
            .unwrap_or_else(|| panic!("{case}: no {name}"));
        assert_eq!(
            rt.runtime_type.as_deref(),
            Some("io.containerd.runc.v2"),
            "{case}"
        );
        assert_eq!(
            rt.binary_name,
            Some(format!("{rdir}/nvidia-container-runtime")),
            "{case}"
        );
        for (suffix, bin) in [("-cdi", ".cdi"), ("-legacy", ".legacy")] {
            let r = eff.runtime(&format!("{name}{suffix}")).unwrap();
            assert_eq!(
                r.binary_name,
                Some(format!("{rdir}/nvidia-container-runtime{bin}"))
            );
        }
        if v["set_as_default"].as_bool() == Some(true) {
            assert_eq!(eff.default_runtime_name().as_deref(), Some(name), "{case}");
        }
        // Options inheritance: the toolkit copies runc's SystemdCgroup.
        if let Some(s) = eff.runtime("runc").and_then(|r| r.systemd_cgroup) {
            assert_eq!(rt.systemd_cgroup, Some(s), "{case}");
        }
        // The top-level file imports the drop-in dir.
        if !top.is_empty() {
            let c = ContainerdConfig::parse(&case, &top).unwrap();
            assert!(c.imports().iter().any(|i| i.ends_with("/*.toml")), "{case}");
        }
        checked += 1;
    }
    assert!(checked >= 8, "{checked}");
}

/// v1 cases: the CRI plugin is `plugins.cri` (nvidia-container-toolkit pkg/config/engine/containerd config_v1.go).
#[test]
fn v1_cases_use_plugins_cri() {
    let text = read("installer-lifecycle-v1-existing-config-with-default-runtime-name-and-options-inheritance.expected.toml").unwrap();
    let c = ContainerdConfig::parse("v1", &text).unwrap();
    assert_eq!(c.version(), 1);
    assert_eq!(c.cri_plugin(), "cri");
    let rt = c.runtime("nvidia").unwrap();
    // "options inheritance": the toolkit copies runtime_type and options from
    // runc (the input's only runtime; its v1 runtime_type is kept, since the
    // toolkit only fills runtime_type when empty, nvidia-container-toolkit pkg/config/engine/containerd).
    let input = read("installer-lifecycle-v1-existing-config-with-default-runtime-name-and-options-inheritance.input.toml").unwrap();
    let inp = ContainerdConfig::parse("v1-input", &input).unwrap();
    let src_rt = inp.runtime("runc").unwrap();
    assert_eq!(rt.runtime_type, src_rt.runtime_type);
    assert_eq!(rt.systemd_cgroup, src_rt.systemd_cgroup);
    assert_eq!(c.default_runtime_name().as_deref(), Some("nvidia"));
    assert!(rt.binary_name.is_some());
}
