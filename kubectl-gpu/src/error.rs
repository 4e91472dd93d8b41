//! The library's error type: every variant names the object it concerns and
//! what the user can do next. Binaries wrap it with `anyhow` and map it to
//! exit codes in one place.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Other(String),

    // ---- host access (`host`) ----
    /// A host path handed to a [`crate::host::Host`] is not absolute or tries
    /// to leave the host root.
    #[error("invalid host path {path:?}: {reason}")]
    HostPath { path: String, reason: String },

    /// An I/O operation on a host file failed.
    #[error("cannot {op} {path}: {source}")]
    HostIo {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A command could not be run on the host.
    #[error("cannot run `{command}` on the host: {reason}")]
    HostCommand { command: String, reason: String },

    // ---- containerd configuration (`containerd`) ----
    /// A TOML file (containerd config, drop-in, or the TOML part of a
    /// template) does not parse.
    #[error(
        "{path}: invalid TOML at line {line}, column {column}: {message}; fix the file (or restore its backup) and run again"
    )]
    TomlParse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// A containerd config parses but is not usable (e.g. a non-integer
    /// `version`, or a runtime entry that is not a table).
    #[error("{path}: {reason}")]
    InvalidContainerdConfig { path: String, reason: String },

    /// A user template contains Go template actions we cannot safely place
    /// TOML tables into.
    #[error(
        "{path}: cannot add the runtime to this Go template: {reason}; rewrite it as `{{{{ template \"base\" . }}}}` followed by plain TOML tables, or add the runtime tables by hand"
    )]
    UnsupportedTemplate { path: String, reason: String },

    /// The config's schema version cannot be loaded by the node's containerd.
    #[error(
        "{path}: config schema version {version} does not match containerd {containerd}: {hint}"
    )]
    SchemaMismatch {
        path: String,
        version: i64,
        containerd: String,
        hint: String,
    },

    /// A user template is a static copy of a rendered config (no `{{`): it
    /// freezes RKE2's defaults (registries, pause image, cgroup driver, schema).
    #[error(
        "{path} is a static copy of a rendered config.toml (it has no `{{{{` template actions), which freezes RKE2's defaults (registry config, pause image, cgroup driver, config schema); run again with --replace-static-template to replace it by a `{{{{ template \"base\" . }}}}` template (its old content is kept as a backup), or delete it and restart RKE2"
    )]
    StaticTemplate { path: String },

    /// A default runtime was asked for but no nvidia runtime binary exists.
    #[error(
        "cannot make {runtime} the default runtime in {path}: no nvidia runtime binary exists on the node (looked for {looked_for}); RKE2 would not start (`default runtime {runtime} was not found`). Install the GPU Operator toolkit or the nvidia-container-toolkit package first, restart RKE2, then run again"
    )]
    NoRuntimeBinary {
        path: String,
        runtime: String,
        looked_for: String,
    },

    /// A patch method was forced (or is the only candidate) but the node
    /// cannot support it.
    #[error("method {method} cannot be used for {path}: {reason}")]
    MethodUnsupported {
        method: String,
        path: String,
        reason: String,
    },

    /// The requested runtime conflicts with what the node already renders or
    /// configures.
    #[error("{path}: {reason}")]
    RuntimeConflict { path: String, reason: String },

    /// A drop-in declares a higher config version than the root config.
    #[error(
        "{path}: drop-in config version {dropin} higher than root config version {root}; set `version = {root}` in the drop-in"
    )]
    DropInVersionTooHigh {
        path: String,
        dropin: i64,
        root: i64,
    },

    /// An RKE2 config file (`config.yaml`, `config.yaml.d/*.yaml`) does not parse.
    #[error("{path}: invalid RKE2 config YAML: {reason}")]
    Rke2Config { path: String, reason: String },

    /// An option value is invalid.
    #[error("invalid {option}: {reason}")]
    InvalidOption { option: String, reason: String },
}
