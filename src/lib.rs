//! difflab (Diffusion Lab): see how diffusion models work, and compare the ways a model is
//! sampled.
//!
//! The compute core ([`diffusion`], [`model`], [`data`]) has no UI code; the CLI ([`cli`]) and
//! the app ([`app`]) call into it. [`gpu`] turns tensors into textures on the GPU.

pub mod app;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod error;
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod gpu;
pub mod model;
pub mod platform;
pub mod tensor_util;
pub mod train;

pub use error::{DiffError, Result};
