//! The one error type of the compute core.
//!
//! Every variant carries a message a user can act on. The CLI maps [`DiffError::Backend`] to exit
//! code 1 and everything else (bad input, unreadable files) to exit code 2.

use std::path::PathBuf;

/// Errors of the compute core.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A parameter the user gave is out of range or inconsistent.
    #[error("{0}")]
    InvalidInput(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file in question.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A model or a file produced NaN or ±Inf where numbers were expected.
    #[error("{0}")]
    NonFinite(String),
    /// The tensor backend failed (device lost, out of memory, ...).
    #[error("compute backend error: {0}")]
    Backend(String),
}

impl DiffError {
    /// Shorthand for [`DiffError::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// Shorthand for [`DiffError::File`].
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Result alias of the compute core.
pub type Result<T, E = DiffError> = std::result::Result<T, E>;
