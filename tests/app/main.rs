//! Integration tests of the app through egui_kittest, and of the shared wgpu path (shader against CPU, the app on wgpu, snapshots).
//!
//! One test binary per group (not one per file): each binary links burn, wgpu and eframe, so
//! fewer binaries build faster and take far less disk.

// Tests and benchmarks: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod app_edit;
mod app_guidance;
mod app_help;
mod app_jobs;
mod app_playground;
mod app_sampling;
mod app_ui;
mod app_weights;
mod frame_loop;
mod gpu_path;
mod lesson_markdown;
mod lessons;
mod panels;
