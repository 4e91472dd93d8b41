//! The CRD step of `helm rke2gpu install|upgrade`: the chart's CRDs
//! against the cluster's, shown (with what the ClusterPolicy schemas
//! prune and the values diffs), asked for, and server-side applied before
//! Helm runs.

use super::*;

// ---------------------------------------------------------------------------
// Upgrade: values diff, unknown user keys, the chart's CRDs first
// ---------------------------------------------------------------------------

/// What the upgrade steps read.
pub(super) struct Upgrade<'a> {
    pub(super) env: &'a HelmEnv,
    pub(super) split: &'a Split,
    pub(super) release: &'a str,
    pub(super) namespace: &'a str,
    pub(super) read: &'a ReadChart,
    pub(super) computed: &'a ComputedValues,
    pub(super) user: &'a UserValues,
}

impl Upgrade<'_> {
    /// Everything `upgrade` shows and applies before `helm upgrade`.
    pub(super) async fn before_helm(
        &self,
        kube: &Kube,
        notice: &mut dyn FnMut(Notice),
        ask: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<()> {
        let version = &self.read.chart.meta.version;
        let deployed = self.deployed_release(kube, notice).await;
        let reuse = upgrade::reuses_values(&self.split.helm);
        let user_tree = self.user.merged();
        let supplied = upgrade::new_supplied(
            deployed.as_ref().map(|r| &r.config),
            reuse,
            &self.computed.tree(),
            &user_tree,
        );

        // 3. the values diff, deployed → new
        if let Some(rel) = &deployed {
            let changes = upgrade::values_diff(&rel.config, &supplied);
            if changes.is_empty() {
                notice(Notice::Info(format!(
                    "values supplied to helm: unchanged from revision {} (chart {})",
                    rel.revision, rel.chart_version
                )));
            } else {
                let mut text = format!(
                    "values supplied to helm, revision {} (chart {}) → chart {version}:",
                    rel.revision, rel.chart_version
                );
                for c in &changes {
                    text.push_str("\n  ");
                    text.push_str(&c.line());
                }
                notice(Notice::Info(text));
            }
        }

        // 4. user keys the target chart does not know
        for key in upgrade::unknown_overrides(&self.read.chart.values, &user_tree) {
            let origin = self
                .user
                .get(&key)
                .map(|u| u.origin)
                .unwrap_or_else(|| "your values".into());
            notice(Notice::Warning(format!(
                "{origin} sets `{key}`, which chart {version}'s values.yaml does not have: the chart ignores it (renamed or removed?)"
            )));
        }
        if reuse && let Some(rel) = &deployed {
            for key in upgrade::unknown_overrides(&self.read.chart.values, &rel.config) {
                notice(Notice::Warning(format!(
                    "the stored values of revision {} (reused) set `{key}`, which chart {version}'s values.yaml does not have: the chart ignores it (renamed or removed?)",
                    rel.revision
                )));
            }
        }

        if self.split.skip_crds {
            notice(Notice::Warning(skip_crds_warning(version)));
            return Ok(());
        }
        self.crd_step(kube, &supplied, false, notice, ask).await
    }

    /// The CRD step: the chart's CRDs against the cluster's, what they
    /// prune, then apply (or ask, or only show). `existing_only` (install):
    /// only CRDs already in the cluster, which `helm install` leaves as they
    /// are (Helm 3) or applies without forcing (Helm 4); new ones are Helm's.
    pub(super) async fn crd_step(
        &self,
        kube: &Kube,
        supplied: &Value,
        existing_only: bool,
        notice: &mut dyn FnMut(Notice),
        ask: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<()> {
        let version = &self.read.chart.meta.version;
        let verb = if existing_only { "install" } else { "upgrade" };
        let action = upgrade::crd_action(
            self.split.skip_crds,
            self.split.dry_run,
            self.split.yes,
            ask.is_some(),
        );
        if action == CrdAction::Skip {
            return Ok(());
        }
        let targets = self.target_crds()?;
        let mut plans = Vec::new();
        let mut current = Vec::new();
        for crd in &targets {
            let cur = read_crd(kube, &crd.name).await?;
            plans.push(crds::compare(cur.as_ref(), crd));
            current.push(cur);
        }
        if targets.is_empty() {
            if !existing_only {
                notice(Notice::Note(format!("chart {version} has no CRDs")));
            }
            return Ok(());
        }
        if existing_only
            && plans
                .iter()
                .all(|p| !p.changes() || p.change == CrdChange::New)
        {
            return Ok(());
        }
        let mut text = if existing_only {
            format!(
                "CRDs of chart {version} against the ones already in the cluster (helm install would keep those; applied first):"
            )
        } else {
            format!("CRDs of chart {version} (Helm does not upgrade them; applied first):")
        };
        for p in &plans {
            text.push_str("\n  ");
            text.push_str(&p.summary());
        }
        notice(Notice::Info(text));
        self.show_pruning(kube, &targets, &current, supplied, notice)
            .await?;

        let changed: Vec<(&Crd, &CrdPlan)> = targets
            .iter()
            .zip(&plans)
            .filter(|(_, p)| p.changes() && !(existing_only && p.change == CrdChange::New))
            .collect();
        if changed.is_empty() {
            notice(Notice::Info("CRDs unchanged: nothing to apply".into()));
            return Ok(());
        }
        let names = changed
            .iter()
            .map(|(c, _)| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match action {
            CrdAction::Skip => return Ok(()),
            CrdAction::ShowOnly => {
                notice(Notice::Note(format!("--dry-run: not applying {names}")));
                return Ok(());
            }
            CrdAction::Ask => {
                let q = format!(
                    "Apply {names} (server-side, field manager {FIELD_MANAGER}) before helm {verb}? [y/N] "
                );
                let yes = ask.is_some_and(|f| f(&q));
                if !yes {
                    return Err(Error::CrdStepDeclined {
                        verb,
                        chart: version.clone(),
                        crds: names,
                    });
                }
            }
            CrdAction::Apply { unattended: true } => {
                notice(Notice::Note(upgrade::unattended_note()));
            }
            CrdAction::Apply { unattended: false } => {}
        }
        for (crd, plan) in changed {
            apply_crd(kube, crd, version).await?;
            if plan.change == CrdChange::New {
                wait_established(kube, &crd.name, notice).await;
            }
            notice(Notice::Info(format!(
                "applied CRD {} (server-side, field manager {FIELD_MANAGER})",
                crd.name
            )));
        }
        Ok(())
    }

    /// The deployed release being upgraded; `None` (with a warning when it
    /// could not be read) when there is none.
    async fn deployed_release(
        &self,
        kube: &Kube,
        notice: &mut dyn FnMut(Notice),
    ) -> Option<release::HelmRelease> {
        let api: Api<Secret> = Api::namespaced(kube.client.clone(), self.namespace);
        let lp = ListParams::default().labels(&format!(
            "{},name={}",
            release::RELEASE_LABEL_SELECTOR,
            self.release
        ));
        let list = match api.list(&lp).await {
            Ok(l) => l,
            Err(e) => {
                notice(Notice::Warning(format!(
                    "cannot read release {} in namespace {} ({}): no values diff",
                    self.release,
                    self.namespace,
                    Error::from_kube(e, "list release Secrets", &kube.server)
                )));
                return None;
            }
        };
        let secret = release::latest_release(&list.items)?;
        match release::decode_secret(secret) {
            Ok(r) => Some(r),
            Err(e) => {
                notice(Notice::Warning(format!("{e}: no values diff")));
                None
            }
        }
    }

    /// The target chart's CRDs: its `crds/` (archive or directory) or
    /// `helm show crds` of exactly the version the values were computed for.
    fn target_crds(&self) -> Result<Vec<Crd>> {
        let read_err = |e: Error| Error::CrdRead {
            origin: self.read.chart.origin.clone(),
            reason: e.to_string(),
        };
        let text = match &self.read.source {
            ChartSource::Archive(p) => chart::read_chart_archive_crds_file(p).map_err(read_err)?,
            ChartSource::Directory(p) => chart::read_chart_dir_crds(p).map_err(read_err)?,
            ChartSource::Remote(r) => helm_capture(
                &self.env.bin,
                &chart::helm_show_args(
                    ShowWhat::Crds,
                    r,
                    Some(&self.read.chart.meta.version),
                    &self.split.chart_locating(),
                ),
            )
            .map_err(read_err)?,
        };
        crds::parse_crds(&self.read.chart.origin, &text)
    }

    /// What the chart's ClusterPolicy CRD changes for the stored
    /// ClusterPolicies and for the spec the new values render.
    async fn show_pruning(
        &self,
        kube: &Kube,
        targets: &[Crd],
        current: &[Option<Value>],
        supplied: &Value,
        notice: &mut dyn FnMut(Notice),
    ) -> Result<()> {
        let Some(i) = targets.iter().position(|c| c.name == CLUSTER_POLICY_CRD) else {
            return Ok(());
        };
        let Some(new_schema) = crds::storage_schema(&targets[i].object) else {
            return Ok(());
        };
        let Some(cur_schema) = current[i].as_ref().and_then(crds::storage_schema) else {
            return Ok(());
        };
        // The values the chart renders from: its defaults, then the supplied values.
        let mut rendered = self.read.chart.values.clone();
        crate::helm::values::merge_into(&mut rendered, supplied);
        let d = crds::prune_diff(
            Some(cur_schema),
            new_schema,
            &crds::values_as_spec(&rendered),
        );
        if !d.kept_by_new.is_empty() {
            notice(Notice::Info(format!(
                "ClusterPolicy fields the new values render that the cluster's CRD prunes and chart {}'s keeps: {}",
                self.read.chart.meta.version,
                d.kept_by_new.join(", ")
            )));
        }
        if !d.pruned_by_new.is_empty() {
            notice(Notice::Warning(format!(
                "ClusterPolicy fields the new values render that chart {}'s CRD prunes: {}",
                self.read.chart.meta.version,
                d.pruned_by_new.join(", ")
            )));
        }
        let api: Api<DynamicObject> = Api::all_with(
            kube.client.clone(),
            &crate::snapshot::cluster_policy_resource(),
        );
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::from_kube(e, "list clusterpolicies.nvidia.com", &kube.server))?;
        for cp in &list.items {
            let name = cp.metadata.name.clone().unwrap_or_default();
            let obj = serde_json::to_value(cp)
                .map_err(|e| Error::Other(format!("ClusterPolicy {name} as JSON: {e}")))?;
            let d = crds::prune_diff(Some(cur_schema), new_schema, &obj);
            if !d.pruned_by_new.is_empty() {
                notice(Notice::Warning(format!(
                    "ClusterPolicy {name}: fields chart {}'s CRD no longer has (pruned once it is applied): {}",
                    self.read.chart.meta.version,
                    d.pruned_by_new.join(", ")
                )));
            }
        }
        Ok(())
    }
}

pub(super) fn skip_crds_warning(version: &str) -> String {
    format!(
        "--skip-crds: not applying the CRDs of chart {version}; Helm does not upgrade them, so the API server prunes the fields only the new CRDs have"
    )
}

/// The cluster's CRD of that name as JSON, `None` when there is none.
async fn read_crd(kube: &Kube, name: &str) -> Result<Option<Value>> {
    let api: Api<CustomResourceDefinition> = Api::all(kube.client.clone());
    let crd = api
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(e, &format!("get CRD {name}"), &kube.server))?;
    crd.map(|c| {
        serde_json::to_value(&c).map_err(|e| Error::Other(format!("CRD {name} as JSON: {e}")))
    })
    .transpose()
}

/// Server-side applies one of the chart's CRDs as [`FIELD_MANAGER`], forcing
/// ownership of the fields Helm or `kubectl apply` set before.
async fn apply_crd(kube: &Kube, crd: &Crd, chart_version: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(kube.client.clone());
    api.patch(
        &crd.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd.object),
    )
    .await
    .map_err(|e| Error::CrdApply {
        crd: crd.name.clone(),
        chart: chart_version.to_string(),
        manager: FIELD_MANAGER,
        server: kube.server.clone(),
        message: e.to_string(),
    })?;
    Ok(())
}

/// Waits (up to 30 s) until a newly created CRD is Established, so the
/// chart's custom resources are accepted; a warning when it is not.
async fn wait_established(kube: &Kube, name: &str, notice: &mut dyn FnMut(Notice)) {
    let api: Api<CustomResourceDefinition> = Api::all(kube.client.clone());
    for _ in 0..60 {
        if let Ok(Some(c)) = api.get_opt(name).await
            && c.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    notice(Notice::Warning(format!(
        "CRD {name} is not Established after 30s: helm upgrade may fail to create its resources"
    )));
}
