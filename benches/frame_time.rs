//! Frame time of the app while scrubbing: t moves through 200 values on a 512×512 colour image,
//! one value per frame, as fast as the UI runs, while the worker computes. Headless (egui_kittest,
//! no renderer), on the CPU path (flex), as on a machine without a GPU.
//!
//! Prints the median and p99 of the frame time (one UI pass) and of the update latency (from
//! the frame that set t to the frame that shows x_t at that t; values the worker skipped because
//! a newer t was already asked for are counted separately). Target: p99 frame time < 33 ms.
//!
//! `--gpu`: the window as on a machine with a GPU instead: egui_kittest's wgpu renderer on the
//! best adapter (not lavapipe when there is a real GPU), the app on the device it shares with
//! burn (DeviceChoice::Auto, as `difflab gui` picks), and each frame also drawn by wgpu and read
//! back (`Harness::render`); the draw is timed separately. The read-back of the 1280×900 frame
//! is included in the draw time, so it is an upper bound of what presenting it costs.
//!
//! Run: `cargo bench --bench frame_time` or `cargo bench --bench frame_time -- --gpu`

// Tests and benchmarks: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use difflab::app::{AppOptions, DiffLabApp, wgpu_setup};
use difflab::device::DeviceChoice;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

#[path = "../tests/common/app.rs"]
mod app_helpers;
use app_helpers::{Dropped, settle};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The median and the 99th percentile.
fn median_p99(v: &mut [f64]) -> (f64, f64) {
    (percentile(v, 0.5), percentile(v, 0.99))
}

fn main() {
    // As the app binary does.
    difflab::platform::keep_freed_memory();
    // A 512×512 colour test image (gradients and rings).
    let dir = std::env::temp_dir().join(format!("difflab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rings.png");
    image::RgbImage::from_fn(512, 512, |x, y| {
        let (dx, dy) = (x as f32 - 256.0, y as f32 - 256.0);
        let r = (dx * dx + dy * dy).sqrt();
        image::Rgb([
            (x / 2) as u8,
            (y / 2) as u8,
            if (r as u32 / 24).is_multiple_of(2) {
                230
            } else {
                30
            },
        ])
    })
    .save(&path)
    .expect("write test image");

    let gpu = std::env::args().any(|a| a == "--gpu");
    let mut h = if gpu {
        Harness::builder()
            .with_size([1280.0, 900.0])
            .with_max_steps(u64::MAX)
            .wgpu_setup(wgpu_setup(false))
            .build_eframe(|cc| {
                DiffLabApp::new(
                    cc,
                    AppOptions {
                        device: Some(DeviceChoice::Auto),
                        fresh: true,
                        state_file: None,
                        gpu_refused: None,
                        weights: None,
                        on_frames: false,
                        page_draws_in_software: None,
                    },
                )
                .expect("the app starts")
            })
    } else {
        app_helpers::cpu_harness()
    };
    h.state_mut().settings.forward.working_size = 512;
    h.input_mut().dropped_files.push(Arc::new(Dropped(path)));
    settle(&mut h, 120);
    assert_eq!(
        h.state().forward.x0.size,
        [512, 512],
        "the 512×512 image is loaded"
    );
    println!("device: {}", h.state().compute_label);

    let mut frame_ms = Vec::new();
    let mut draw_ms = Vec::new();
    // One frame: the UI pass, and with --gpu the wgpu draw of it (timed apart).
    let mut frame = |h: &mut Harness<'_, DiffLabApp>, frame_ms: &mut Vec<f64>| {
        let started = Instant::now();
        h.step();
        frame_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if gpu {
            let started = Instant::now();
            h.render().expect("render the frame");
            draw_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
    };
    let mut latency_ms = Vec::new();
    let mut asked: HashMap<usize, Instant> = HashMap::new();
    let mut last_shown = h.state().forward.shown_t;
    let values: Vec<usize> = (0..200).map(|i| 1 + i * 5).collect();
    let mut note =
        |h: &Harness<'_, DiffLabApp>, asked: &HashMap<usize, Instant>, last: &mut Option<usize>| {
            let shown = h.state().forward.shown_t;
            if shown != *last {
                if let Some(t) = shown
                    && let Some(at) = asked.get(&t)
                {
                    latency_ms.push(at.elapsed().as_secs_f64() * 1e3);
                }
                *last = shown;
            }
        };
    for &t in &values {
        h.get_by_role_and_label(Role::Slider, "t")
            .set_value_accesskit(t as f64);
        asked.insert(t, Instant::now());
        frame(&mut h, &mut frame_ms);
        note(&h, &asked, &mut last_shown);
        // About 60 frames per second of scrubbing.
        std::thread::sleep(Duration::from_millis(16));
    }
    // Let the last updates arrive; keep timing frames while the worker finishes.
    while h.state().is_busy() {
        frame(&mut h, &mut frame_ms);
        note(&h, &asked, &mut last_shown);
        std::thread::sleep(Duration::from_millis(16));
    }
    h.step();
    note(&h, &asked, &mut last_shown);

    let shown = latency_ms.len();
    if gpu {
        let (d50, d99) = median_p99(&mut draw_ms);
        println!(
            "wgpu draw + read-back of each frame: median {d50:7.2} ms   p99 {d99:7.2} ms over {} frames",
            draw_ms.len()
        );
    }
    let (f50, f99) = median_p99(&mut frame_ms);
    let (l50, l99) = median_p99(&mut latency_ms);
    println!(
        "scrubbed {} values of t on a 512×512 colour image",
        values.len()
    );
    println!(
        "frame time:     median {f50:7.2} ms   p99 {f99:7.2} ms   (target p99 < 33 ms: {})",
        if f99 < 33.0 { "met" } else { "MISSED" }
    );
    println!(
        "update latency: median {l50:7.2} ms   p99 {l99:7.2} ms   ({shown} updates shown, {} skipped for a newer t)",
        values.len() - shown
    );
    let _ = std::fs::remove_dir_all(&dir);
}
