//! The operator namespace's Pod Security label: RKE2 `profile: cis`
//! enforces PSA `restricted`, so the namespace must be labelled privileged
//! before install.

use super::{Ctx, Out};
use crate::matrix::{self, PSA_CIS_SOURCE};

/// Whether the namespace needs `pod-security.kubernetes.io/enforce=privileged`,
/// with the hint that says so.
pub(super) fn needs_privileged(ctx: &Ctx<'_>, out: &mut Out<'_>) -> bool {
    let needs = ctx.cluster.cis_profile;
    if needs {
        out.hints.push(format!(
            "RKE2 profile: cis enforces PSA restricted: the operator namespace needs the label {}={} before install (`helm rke2gpu install` sets it; source: {PSA_CIS_SOURCE})",
            crate::labels::PSA_ENFORCE,
            matrix::PSA_PRIVILEGED
        ));
    }
    needs
}
