//! Helpers for driving the app in tests and benches.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use difflab::app::{AppOptions, DiffLabApp};
use difflab::device::DeviceChoice;
use egui_kittest::Harness;

/// The app with fresh settings, computing on flex, in a headless 1280×900 harness.
pub fn cpu_harness() -> Harness<'static, DiffLabApp> {
    cpu_harness_with(cpu_options())
}

/// The same, started with `options` (`difflab gui --weights`, say).
pub fn cpu_harness_with(options: AppOptions) -> Harness<'static, DiffLabApp> {
    Harness::builder()
        .with_size([1280.0, 900.0])
        .with_max_steps(u64::MAX)
        .build_eframe(move |cc| DiffLabApp::new(cc, options.clone()).expect("the app starts"))
}

/// Fresh settings, computing on flex.
pub fn cpu_options() -> AppOptions {
    AppOptions {
        device: Some(DeviceChoice::Cpu),
        fresh: true,
        state_file: None,
        gpu_refused: None,
        weights: None,
        on_frames: false,
        page_draws_in_software: None,
    }
}

/// The app with default settings, computing on flex.
pub fn cpu_app(cc: &eframe::CreationContext<'_>) -> DiffLabApp {
    DiffLabApp::new(cc, cpu_options()).expect("the app starts")
}

/// Steps the UI until the worker has nothing queued or running and its last events are in.
/// Panics after `max_s` seconds.
pub fn settle(h: &mut Harness<'_, DiffLabApp>, max_s: u64) {
    let until = std::time::Instant::now() + Duration::from_secs(max_s);
    while std::time::Instant::now() < until {
        h.step();
        if !h.state().is_busy() {
            h.step();
            h.step();
            if !h.state().is_busy() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the worker did not finish within {max_s} s");
}

/// A file dropped on the window.
#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
