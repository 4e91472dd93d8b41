//! The library's error type: every variant names the object it concerns and
//! what the user can do next. Binaries wrap it with `anyhow` and map it to
//! exit codes in one place.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Other(String),
    /// A verify pod cannot be built from these inputs.
    #[error("invalid verify pod input: {field}: {reason}")]
    InvalidVerifySpec { field: &'static str, reason: String },
}
