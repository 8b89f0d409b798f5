//! The app while a 1000-step DDPM run streams (batch 16, flex): the UI's frame times, and the
//! sampler's throughput in the app against the CLI doing the same run, measured in this one
//! process. Headless (egui_kittest, no renderer). The model is the exact denoiser over 1000
//! MNIST digits, or with `-- unet` the shipped U-Net.
//!
//! Targets: p99 frame time below 33 ms; the app no more than 10% slower than the CLI; with the
//! U-Net, the whole run in at most 20 s.
//! Run: `cargo bench --profile dev --bench sampling_ui [-- unet]`
//!
//! `-- ddim20` is the browser test's run instead (DDIM-20 of 16 digits with the shipped U-Net,
//! seed 0) in the desktop app, the native side of docs/web.md's page/app ratio: the app's own
//! wall time for it, and the CLI's.

// Tests and benchmarks: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use difflab::app::{DiffLabApp, ModelSpec, SamplerChoice, SamplerSettings, Tab};
use difflab::diffusion::TimestepSpacing;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

#[path = "../tests/common/app.rs"]
mod app_helpers;
use app_helpers::settle;

const RUNS: usize = 5;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One app run: (frame times in ms, the run's wall time in ms).
fn app_run(unet: bool, ddim20: bool) -> (Vec<f64>, f64) {
    let mut h: Harness<'static, DiffLabApp> = app_helpers::cpu_harness();
    settle(&mut h, 120);
    {
        let s = &mut h.state_mut().settings;
        s.tab = Tab::Sampling;
        s.sampling.sampler = SamplerSettings {
            sampler: SamplerChoice::DdpmFixedSmall,
            steps: 1000,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            ..SamplerSettings::default()
        };
        s.sampling.model = ModelSpec {
            unet,
            ..ModelSpec::exact(1000)
        };
        s.sampling.batch = 16;
        s.sampling.seed = 0;
        if ddim20 {
            s.sampling.sampler = SamplerSettings {
                sampler: SamplerChoice::Ddim,
                steps: 20,
                eta: 0.0,
                ..SamplerSettings::default()
            };
        }
    }
    h.step();
    h.get_by_label("Run").click();
    let mut frames = Vec::new();
    loop {
        let started = Instant::now();
        h.step();
        frames.push(started.elapsed().as_secs_f64() * 1e3);
        if !h.state().sampling.running && h.state().sampling.total_ms.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(16));
    }
    assert_eq!(
        h.state().sampling.trajectory.len(),
        if ddim20 { 21 } else { 1001 }
    );
    (frames, h.state().sampling.total_ms.unwrap_or(f64::NAN))
}

/// The same run through the CLI: its own report of the sampling time, in ms.
fn cli_run(dir: &std::path::Path, unet: bool, ddim20: bool) -> f64 {
    let model: &[&str] = if unet {
        &["--model", "unet"]
    } else {
        &["--data-count", "1000"]
    };
    let out = Command::new(env!("CARGO_BIN_EXE_difflab"))
        .args([
            "--device",
            "cpu",
            "sample",
            "--sampler",
            if ddim20 { "ddim" } else { "ddpm" },
            "--steps",
            if ddim20 { "20" } else { "1000" },
            "--count",
            "16",
            "--batch",
            "16",
            "--seed",
            "0",
        ])
        .args(model)
        .arg("-o")
        .arg(dir.join("cli.png"))
        .output()
        .expect("difflab");
    let err = String::from_utf8_lossy(&out.stderr);
    let secs: f64 = err
        .lines()
        .find_map(|l| l.strip_prefix("sampled 16 images in "))
        .and_then(|r| r.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("unexpected CLI output: {err}"));
    secs * 1e3
}

fn main() {
    // As the app binary does.
    difflab::platform::keep_freed_memory();
    let ddim20 = std::env::args().any(|a| a == "ddim20");
    let unet = ddim20 || std::env::args().any(|a| a == "unet");
    let dir = std::env::temp_dir().join(format!("difflab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut frames = Vec::new();
    let mut app_ms = Vec::new();
    let mut cli_ms = Vec::new();
    for _ in 0..RUNS {
        let (f, total) = app_run(unet, ddim20);
        frames.extend(f);
        app_ms.push(total);
        cli_ms.push(cli_run(&dir, unet, ddim20));
    }
    let n = frames.len();
    let (f50, f99) = (percentile(&mut frames, 0.5), percentile(&mut frames, 0.99));
    let (a, c) = (percentile(&mut app_ms, 0.5), percentile(&mut cli_ms, 0.5));
    let model = if unet {
        "the shipped U-Net"
    } else {
        "exact denoiser over 1000 digits"
    };
    let run = if ddim20 {
        "DDIM 20 steps"
    } else {
        "DDPM 1000 steps"
    };
    let steps = if ddim20 { 20.0 } else { 1000.0 };
    println!("{run}, batch 16, {model}, flex; median of {RUNS} runs");
    println!(
        "UI frame time while streaming: median {f50:.2} ms, p99 {f99:.2} ms over {n} frames (target p99 < 33 ms: {})",
        if f99 < 33.0 { "met" } else { "MISSED" }
    );
    println!(
        "sampler: app {:.2} s ({:.2} ms/step), CLI {:.2} s ({:.2} ms/step): app/CLI = {:.3} (target ≤ 1.10: {})",
        a / 1e3,
        a / steps,
        c / 1e3,
        c / steps,
        a / c,
        if a / c <= 1.10 { "met" } else { "MISSED" }
    );
    if unet {
        println!(
            "the app's run: {:.2} s (target ≤ 20 s: {})",
            a / 1e3,
            if a <= 20e3 { "met" } else { "MISSED" }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
