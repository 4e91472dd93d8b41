//! Logging on stderr: our own warnings, or debug logs when Helm runs with
//! `--debug` (`HELM_DEBUG`).

/// Installs the tracing subscriber.
pub fn init() {
    let debug = std::env::var("HELM_DEBUG")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"))
        .unwrap_or(false);
    let filter = if debug {
        "helm_rke2gpu=debug,rke2gpu=debug"
    } else {
        // Our own warnings only: kube's connection errors are reported by us.
        "helm_rke2gpu=warn,rke2gpu=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
