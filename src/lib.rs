//! difflab (Diffusion Lab): see how diffusion models work, and compare the ways a model is
//! sampled.
//!
//! The compute core ([`diffusion`], [`model`], [`data`]) has no UI code; the CLI ([`cli`]) and
//! the app call into it.

pub mod cli;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod error;
pub mod model;
pub mod tensor_util;

pub use error::{DiffError, Result};
