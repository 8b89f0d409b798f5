//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::tensor::Device;
use difflab::device::{DeviceChoice, select_device};

/// A tiny U-Net (8×8 images, 8 and 16 channels, 4 groups): fast enough for any test that only
/// needs a net of the real kind.
pub fn tiny_unet() -> difflab::model::UNetConfig {
    difflab::model::UNetConfig::new()
        .with_image_size(8)
        .with_base_channels(8)
        .with_channel_mult(vec![1, 2])
        .with_groups(4)
}

/// burn's flex backend.
pub fn flex() -> Device {
    Device::flex()
}

/// The wgpu device (lavapipe in CI). Tests of the wgpu path fail when there is no adapter,
/// unless DIFFLAB_SKIP_WGPU=1 is set (then they return `None` and say so).
pub fn wgpu() -> Option<Device> {
    match select_device(DeviceChoice::Wgpu) {
        Ok(d) => Some(d.device),
        Err(e) if std::env::var_os("DIFFLAB_SKIP_WGPU").is_some() => {
            eprintln!("skipping the wgpu half of this test: {e}");
            None
        }
        Err(e) => panic!("{e} (set DIFFLAB_SKIP_WGPU=1 to skip the wgpu tests)"),
    }
}

/// Both devices: flex always, wgpu unless skipped.
pub fn devices() -> Vec<(&'static str, Device)> {
    let mut v = vec![("flex", flex())];
    if let Some(d) = wgpu() {
        v.push(("wgpu", d));
    }
    v
}

/// The largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
pub mod app;

/// The DDIM sampler the U-Net tests use: 10 trailing steps, η = 0, clipped to [−1, 1].
#[allow(dead_code)]
pub fn ddim10(prediction: difflab::diffusion::PredictionType) -> difflab::diffusion::Scheduler {
    use difflab::diffusion::{
        SamplerKind, ScheduleConfig, Scheduler, SchedulerConfig, TimestepSpacing,
    };
    Scheduler::new(SchedulerConfig {
        use_clipped_model_output: false,
        schedule: ScheduleConfig::default(),
        prediction_type: prediction,
        clip_sample: Some(1.0),
        spacing: TimestepSpacing::Trailing,
        steps_offset: 0,
        num_inference_steps: 10,
        sampler: SamplerKind::Ddim {
            eta: 0.0,
            set_alpha_to_one: true,
        },
    })
    .expect("scheduler")
}
