//! Interpolating between two seeds' noises, and decoding the blends deterministically.
//!
//! Two independent Gaussian noises in D dimensions both have norm ≈ √D and are nearly
//! orthogonal, so their straight-line blend (lerp) has norm ≈ √D·√((1−α)² + α²), about √D/√2 at
//! α = ½: a noise the model has never seen. Slerp follows the sphere and keeps the norm.

use std::sync::atomic::AtomicBool;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::denoiser::Denoiser;
use super::noise::{gaussian, lerp, slerp};
use super::sampling::sample_loop;
use super::scheduler::{SamplerKind, Scheduler};
use crate::error::{DiffError, Result};
use crate::tensor_util::tensor4;

/// How two noises are blended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Blend {
    /// Spherical: keeps the norm.
    Slerp,
    /// Straight line: the norm dips in the middle.
    Lerp,
}

/// The most frames an interpolation decodes (each one a DDIM run of its own).
pub const MAX_FRAMES: usize = 256;

/// α_i = i/(n−1) for i = 0..n (both ends included).
pub fn alphas(frames: usize) -> Result<Vec<f64>> {
    if !(2..=MAX_FRAMES).contains(&frames) {
        return Err(DiffError::invalid(format!(
            "an interpolation has between 2 and {MAX_FRAMES} frames, not {frames}"
        )));
    }
    Ok((0..frames)
        .map(|i| i as f64 / (frames - 1) as f64)
        .collect())
}

/// The blended x_T of seeds A and B (stream 0 of each, D values) at every α.
pub fn blended_noises(
    seed_a: u64,
    seed_b: u64,
    d: usize,
    alphas: &[f64],
    blend: Blend,
) -> Vec<Vec<f32>> {
    let (a, b) = (gaussian(seed_a, 0, d), gaussian(seed_b, 0, d));
    alphas
        .iter()
        .map(|&t| match blend {
            Blend::Slerp => slerp(&a, &b, t),
            Blend::Lerp => lerp(&a, &b, t),
        })
        .collect()
}

/// Decodes each noise with `scheduler`, which must be deterministic (DDIM with η = 0), so that
/// α = 0 and α = 1 give exactly the plain samples of seeds A and B. Returns x_0 [n, C, H, W], or
/// `None` if cancelled.
pub fn decode_noises(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    noises: &[Vec<f32>],
    cancel: &AtomicBool,
    device: &Device,
) -> Result<Option<Tensor<4>>> {
    let x_t = decode_start(denoiser, scheduler, noises, device)?;
    sample_loop(
        denoiser,
        scheduler,
        x_t,
        // η = 0 adds no noise, so this is never called.
        |_, shape| Tensor::zeros(shape, device),
        cancel,
        |_| {},
    )
}

/// The x_T batch that [`decode_noises`] decodes, after checking that `scheduler` is
/// deterministic (a stepped decode starts here).
pub fn decode_start(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    noises: &[Vec<f32>],
    device: &Device,
) -> Result<Tensor<4>> {
    match scheduler.config().sampler {
        SamplerKind::Ddim { eta: 0.0, .. } => {}
        _ => {
            return Err(DiffError::invalid(
                "interpolations decode with deterministic DDIM (η = 0)",
            ));
        }
    }
    let [c, h, w] = denoiser.sample_shape();
    let values: Vec<f32> = noises.iter().flatten().copied().collect();
    Ok(tensor4(values, [noises.len(), c, h, w], device))
}
