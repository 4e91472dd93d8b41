//! GPU sharing (`--time-slicing N`, `--mps N`): the device plugin config
//! that shares each GPU among N pods, as the chart's `devicePlugin.config`
//! values (`create`, `name`, `default`, `data`: the chart creates the
//! ConfigMap). By default every GPU node uses it (`default`); with
//! `--sharing-per-node` only nodes labelled
//! `nvidia.com/device-plugin.config=<key>` do. `--rename-shared` sets
//! `renameByDefault` (pods request `nvidia.com/gpu.shared`),
//! `--fail-requests-greater-than-one` refuses pods asking for more than one
//! share. Facts and sources: [`matrix::SHARING_SOURCE`].

use super::{Ctx, Out, refuse};
use crate::Result;
use crate::matrix;
use serde_json::{Value, json};

/// The ConfigMap the chart creates for the config.
pub const CONFIG_MAP: &str = "rke2gpu-device-plugin-config";
/// The config's key in it (and the value of the node label that selects it).
pub const CONFIG_KEY: &str = "rke2gpu-shared";

/// The device plugin config file for the options (its `version: v1` schema).
pub fn config_file(mps: bool, replicas: u32, rename: bool, fail_greater_than_one: bool) -> String {
    let section = if mps { "mps" } else { "timeSlicing" };
    let mut s = format!("version: v1\nsharing:\n  {section}:\n");
    if rename {
        s.push_str("    renameByDefault: true\n");
    }
    if fail_greater_than_one {
        s.push_str("    failRequestsGreaterThanOne: true\n");
    }
    s.push_str(&format!(
        "    resources:\n    - name: nvidia.com/gpu\n      replicas: {replicas}\n"
    ));
    s
}

pub(super) fn sharing(ctx: &Ctx<'_>, out: &mut Out<'_>) -> Result<()> {
    let o = ctx.opts;
    let (mps, replicas) = match (o.time_slicing, o.mps) {
        (None, None) => {
            for (flag, on) in [
                ("--rename-shared", o.rename_shared),
                (
                    "--fail-requests-greater-than-one",
                    o.fail_requests_greater_than_one,
                ),
                ("--sharing-per-node", o.sharing_per_node),
            ] {
                if on {
                    return Err(refuse(format!(
                        "{flag} shapes GPU sharing: add --time-slicing N or --mps N"
                    )));
                }
            }
            return Ok(());
        }
        (Some(_), Some(_)) => {
            return Err(refuse(
                "--time-slicing and --mps are exclusive: the device plugin uses only one sharing section".into(),
            ));
        }
        (Some(n), None) => (false, n),
        (None, Some(n)) => (true, n),
    };
    let how = if mps { "--mps" } else { "--time-slicing" };
    if replicas < matrix::SHARING_MIN_REPLICAS {
        return Err(refuse(format!(
            "{how} {replicas}: the device plugin needs at least {} replicas per GPU (`number of replicas must be >= 2`)",
            matrix::SHARING_MIN_REPLICAS
        )));
    }
    if mps && ctx.version < matrix::MPS_SINCE_CHART {
        return Err(refuse(format!(
            "--mps: {} predates MPS sharing in the device plugin (from chart v{})",
            ctx.chart_desc,
            matrix::MPS_SINCE_CHART
        )));
    }
    if mps
        && let Some(v) = ctx
            .effective("mig.strategy")
            .filter(|v| v.value.as_str() == Some("mixed"))
    {
        return Err(refuse(format!(
            "--mps with mig.strategy=mixed (from {}): the device plugin refuses MPS under the mixed MIG strategy (`--mig-strategy=mixed is not supported with MPS`); use --time-slicing, or the single strategy",
            v.origin
        )));
    }
    let fail_gt1 = o.fail_requests_greater_than_one;
    if mps && !fail_gt1 && ctx.version < matrix::MPS_FAIL_REQUESTS_OPTIONAL_SINCE_CHART {
        out.hints.push(format!(
            "--mps: the device plugin of {} refuses pods requesting more than one share whatever the config says (failRequestsGreaterThanOne is forced for MPS before chart v{})",
            ctx.chart_desc,
            matrix::MPS_FAIL_REQUESTS_OPTIONAL_SINCE_CHART
        ));
    }
    let file = config_file(mps, replicas, o.rename_shared, fail_gt1);
    let resource = if o.rename_shared {
        "nvidia.com/gpu.shared"
    } else {
        "nvidia.com/gpu"
    };
    let what = format!(
        "{how} {replicas}: each GPU shared by {replicas} pods ({} GPUs x {replicas} = the {resource} a node advertises){}",
        if mps { "MPS" } else { "time-sliced" },
        if fail_gt1 {
            ", a pod asking for more than one share is refused"
        } else {
            ""
        }
    );
    let src = matrix::SHARING_SOURCE;
    out.set(
        "devicePlugin.config.create",
        Value::Bool(true),
        format!("{what}: the chart creates the ConfigMap"),
        src,
    );
    out.set(
        "devicePlugin.config.name",
        json!(CONFIG_MAP),
        format!("{what}: the device plugin's config ConfigMap"),
        src,
    );
    out.set(
        "devicePlugin.config.data",
        json!({ CONFIG_KEY: file }),
        format!(
            "{what}: the device plugin config ({})",
            if mps {
                "sharing.mps"
            } else {
                "sharing.timeSlicing"
            }
        ),
        src,
    );
    if o.sharing_per_node {
        out.after_install.push(format!(
            "--sharing-per-node: share a node's GPUs with: kubectl label node NODE nvidia.com/device-plugin.config={CONFIG_KEY} --overwrite"
        ));
    } else {
        out.set(
            "devicePlugin.config.default",
            json!(CONFIG_KEY),
            format!("{what}: every GPU node uses it (a node label nvidia.com/device-plugin.config=<key> selects another)"),
            src,
        );
    }
    out.after_install.push(format!(
        "after editing the sharing ConfigMap {CONFIG_MAP}, restart the device plugin (the operator does not watch it): kubectl -n NAMESPACE rollout restart daemonset/nvidia-device-plugin-daemonset; kubectl gpu check-runtime shows gpu-sharing per node"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{chart_at, get, one};
    use super::super::*;
    use serde_json::json;

    fn opts() -> ValuesOptions {
        ValuesOptions::default()
    }

    fn compute(version: &str, o: ValuesOptions, user: &UserValues) -> Result<ComputedValues> {
        compute_values_with(
            &one("v1.33.10+rke2r1", "2.2.2-k3s1"),
            &chart_at(version),
            &o,
            user,
        )
    }

    #[test]
    fn time_slicing_writes_the_config_and_makes_it_the_default() {
        let c = compute(
            "v25.10.1",
            ValuesOptions {
                time_slicing: Some(4),
                ..opts()
            },
            &UserValues::default(),
        )
        .unwrap();
        assert_eq!(get(&c, "devicePlugin.config.create"), Some(&json!(true)));
        assert_eq!(
            get(&c, "devicePlugin.config.name"),
            Some(&json!(super::CONFIG_MAP))
        );
        assert_eq!(
            get(&c, "devicePlugin.config.default"),
            Some(&json!(super::CONFIG_KEY))
        );
        let data = get(&c, "devicePlugin.config.data").unwrap();
        let file = data[super::CONFIG_KEY].as_str().unwrap();
        // The device plugin's own schema: parse it back.
        let cfg: serde_json::Value = serde_saphyr::from_str(file).unwrap();
        assert_eq!(cfg["version"], "v1");
        let r = &cfg["sharing"]["timeSlicing"]["resources"][0];
        assert_eq!(r["name"], "nvidia.com/gpu");
        assert_eq!(r["replicas"], 4);
        assert!(cfg["sharing"].get("mps").is_none());
        // The YAML file carries each value with its reason.
        let yaml = c.to_yaml();
        assert!(yaml.contains("# why: --time-slicing 4"), "{yaml}");
    }

    #[test]
    fn mps_rename_fail_and_per_node() {
        let c = compute(
            "v26.7.0",
            ValuesOptions {
                mps: Some(8),
                rename_shared: true,
                fail_requests_greater_than_one: true,
                sharing_per_node: true,
                ..opts()
            },
            &UserValues::default(),
        )
        .unwrap();
        let file = get(&c, "devicePlugin.config.data").unwrap()[super::CONFIG_KEY]
            .as_str()
            .unwrap()
            .to_string();
        let cfg: serde_json::Value = serde_saphyr::from_str(&file).unwrap();
        let m = &cfg["sharing"]["mps"];
        assert_eq!(m["renameByDefault"], true);
        assert_eq!(m["failRequestsGreaterThanOne"], true);
        assert_eq!(m["resources"][0]["replicas"], 8);
        assert!(get(&c, "devicePlugin.config.default").is_none(), "per node");
        assert!(
            c.after_install
                .iter()
                .any(|a| a.contains("nvidia.com/device-plugin.config=rke2gpu-shared"))
        );
    }

    #[test]
    fn refusals() {
        let e = |o: ValuesOptions, user: &UserValues| {
            compute("v26.7.0", o, user).unwrap_err().to_string()
        };
        let none = UserValues::default();
        assert!(
            e(
                ValuesOptions {
                    time_slicing: Some(1),
                    ..opts()
                },
                &none
            )
            .contains("at least 2")
        );
        assert!(
            e(
                ValuesOptions {
                    time_slicing: Some(2),
                    mps: Some(2),
                    ..opts()
                },
                &none
            )
            .contains("exclusive")
        );
        assert!(
            e(
                ValuesOptions {
                    rename_shared: true,
                    ..opts()
                },
                &none
            )
            .contains("--time-slicing N")
        );
        let mixed = UserValues::from_helm_args(
            &["--set".to_string(), "mig.strategy=mixed".to_string()],
            &|_| Err("no files".to_string()),
        )
        .values;
        assert!(
            e(
                ValuesOptions {
                    mps: Some(4),
                    ..opts()
                },
                &mixed
            )
            .contains("mixed MIG strategy")
        );
        // Time-slicing under mixed MIG is fine.
        assert!(
            compute(
                "v26.7.0",
                ValuesOptions {
                    time_slicing: Some(4),
                    ..opts()
                },
                &mixed
            )
            .is_ok()
        );
        // Before MPS existed in the device plugin.
        let old = compute_values_with(
            &one("v1.28.15+rke2r1", "1.7.23-k3s2"),
            &chart_at("v23.9.2"),
            &ValuesOptions {
                mps: Some(4),
                ..opts()
            },
            &none,
        );
        assert!(old.unwrap_err().to_string().contains("predates MPS"));
    }

    #[test]
    fn mps_before_v26_7_says_requests_above_one_are_refused_anyway() {
        let c = compute(
            "v25.10.1",
            ValuesOptions {
                mps: Some(4),
                ..opts()
            },
            &UserValues::default(),
        )
        .unwrap();
        assert!(
            c.hints.iter().any(|h| h.contains("forced for MPS")),
            "{:?}",
            c.hints
        );
    }
}
