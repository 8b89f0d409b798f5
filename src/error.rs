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

/// `text` kept to its first `keep` characters, with "…" after them when it was longer (error
/// lines, and names on buttons).
pub fn ellipsized(text: &str, keep: usize) -> String {
    let mut short: String = text.chars().take(keep).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Result alias of the compute core.
pub type Result<T, E = DiffError> = std::result::Result<T, E>;

thread_local! {
    /// Set while [`catch_dependency_panic`] runs a call on this thread.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside [`catch_dependency_panic`]: a panic hook should then stay quiet
/// and let the panic unwind to it (the binary's hook checks this before it reports a panic and
/// exits).
pub fn in_guarded_call() -> bool {
    GUARDED.with(std::cell::Cell::get)
}

/// Runs a dependency's call that may panic on damaged input (burn's optimiser loader expects
/// every record tensor to carry a parameter id) and turns a panic into `Invalid(what)`.
pub fn catch_dependency_panic<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    GUARDED.with(|g| g.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    r.unwrap_or_else(|_| Err(DiffError::invalid(what.to_string())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(
            super::ellipsized("MNIST U-Net (trained)", 23),
            "MNIST U-Net (trained)"
        );
        assert_eq!(
            super::ellipsized("U-Net: runs/cats/model.safetensors", 11),
            "U-Net: runs…"
        );
        assert_eq!(super::ellipsized("αβγδε", 3), "αβγ…");
    }
}
