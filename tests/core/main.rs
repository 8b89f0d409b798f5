//! Integration tests of the compute core and the CLI: diffusers golden vectors, the exact denoiser, determinism, the command line, burn regressions and the 2-D playground core.
//!
//! One test binary per group (not one per file): each binary links burn, wgpu and eframe, so
//! fewer binaries build faster and take far less disk.

// Tests and benchmarks: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod average;
mod burn_regressions;
mod cli;
mod determinism;
mod docs_links;
mod editing;
mod eval;
mod exact;
mod flow;
mod golden;
mod golden_solvers;
mod guidance;
mod hardening;
mod kernels;
mod layout;
mod toy2d;
mod unet;
