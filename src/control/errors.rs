//! Why an action was refused or failed; each says what to do.

use crate::store::{ResolveError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no workflow named `{0}` in the workflows folder; `cxflow validate` lists them")]
    NoSuchWorkflow(String),
    #[error("there is no run {0}; `cxflow runs` lists them")]
    NoSuchRun(i64),
    /// Bad parameters, an unknown step, a workflow that does not validate, missing secrets, ...
    #[error("{0}")]
    Invalid(String),
    /// The run (or a delivery of it) is still going in some process.
    #[error("{0}")]
    StillRunning(String),
    #[error("{0}")]
    NotRunning(String),
    /// The actor's role does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchRun(id) => ControlError::NoSuchRun(id),
            e @ StoreError::StillRunning { .. } => ControlError::StillRunning(e.to_string()),
            other => ControlError::Other(other.into()),
        }
    }
}

impl From<ResolveError> for ControlError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Store(s) => s.into(),
            other => ControlError::Invalid(other.to_string()),
        }
    }
}

impl From<crate::cli::CliError> for ControlError {
    fn from(e: crate::cli::CliError) -> Self {
        match e {
            crate::cli::CliError::Invalid(m) => ControlError::Invalid(m),
            crate::cli::CliError::Other(e) => ControlError::Other(e),
        }
    }
}
