//! `kubectl gpu version`: the plugin's version, git commit and build date.
//! Needs no cluster. `-o json|yaml` for scripts (`-o table|wide` print one
//! line). The commit comes from `GIT_COMMIT` at build time (`release/build`
//! sets it), the date from `SOURCE_DATE_EPOCH` (see build.rs).

use anyhow::Result;
use rke2gpu::build_info::BuildInfo;
use rke2gpu::cli::OutputOpts;

pub fn info() -> BuildInfo {
    BuildInfo::new(
        "kubectl-gpu",
        env!("CARGO_PKG_VERSION"),
        option_env!("GIT_COMMIT"),
        env!("BUILD_DATE"),
    )
}

pub fn run(out: &OutputOpts) -> Result<u8> {
    print!("{}", info().render(out.output)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_this_crate() {
        let i = super::info();
        assert_eq!(
            (i.name, i.version),
            ("kubectl-gpu", env!("CARGO_PKG_VERSION"))
        );
    }
}
