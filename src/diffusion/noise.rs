//! Seeded Gaussian noise that is the same on every backend, and interpolation between noises.
//!
//! The RNG is documented so anyone can reproduce it: ChaCha8 (`rand_chacha::ChaCha8Rng`) seeded
//! with `seed_from_u64(seed)` and switched to stream `stream` with `set_stream`. Each pair of
//! 64-bit outputs gives two uniforms u = (x >> 11)·2⁻⁵³, and Box–Muller turns them into two
//! normals: r = √(−2 ln(1 − u₁)), z₀ = r·cos(2πu₂), z₁ = r·sin(2πu₂), computed in f64 and rounded
//! to f32. Noise is drawn on the CPU and uploaded, so seed 7 is the same image on flex and wgpu.
//!
//! Stream 0 holds x_T; stream k + 1 holds the variance noise z of sampling step k, so two
//! samplers that share a seed share their per-step noise, whatever their step count. In a batch,
//! item i uses seed + i.

use burn::tensor::{Device, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::tensor_util::tensor4;

/// `n` standard normal numbers from (seed, stream).
pub fn gaussian(seed: u64, stream: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut out = Vec::with_capacity(n + 1);
    let unit = |x: u64| (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    while out.len() < n {
        let u1 = unit(rng.next_u64());
        let u2 = unit(rng.next_u64());
        let r = (-2.0 * (1.0 - u1).ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        out.push((r * c) as f32);
        out.push((r * s) as f32);
    }
    out.truncate(n);
    out
}

/// Noise for a batch [B, C, H, W]: item i is drawn from seed `seed + i` (wrapping), so a sample
/// does not depend on how a run is split into batches, and seed 7 alone gives item 0 of seed 7.
fn batch_noise(seed: u64, stream: u64, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let per_item: usize = shape[1..].iter().product();
    let values: Vec<f32> = (0..shape[0] as u64)
        .flat_map(|i| gaussian(seed.wrapping_add(i), stream, per_item))
        .collect();
    tensor4(values, shape, device)
}

/// The initial noise x_T ~ N(0, I) (stream 0).
pub fn initial_noise(seed: u64, shape: [usize; 4], device: &Device) -> Tensor<4> {
    batch_noise(seed, 0, shape, device)
}

/// The variance noise z of sampling step `step_index` (0-based; stream `step_index + 1`).
pub fn step_noise(seed: u64, step_index: usize, shape: [usize; 4], device: &Device) -> Tensor<4> {
    batch_noise(seed, step_index as u64 + 1, shape, device)
}

/// The first stream of the forward Markov chain's noise: z_t of step t is stream
/// `CHAIN_STREAM_BASE + t`, far from the sampling streams (at most T + 1 ≤ 100 001).
pub const CHAIN_STREAM_BASE: u64 = 1 << 32;

/// The noise z_t of the forward chain's step t (x_t = √(1−β_t)·x_{t−1} + √β_t·z_t).
pub fn chain_noise(seed: u64, t: usize, shape: [usize; 4], device: &Device) -> Tensor<4> {
    batch_noise(seed, CHAIN_STREAM_BASE + t as u64, shape, device)
}

/// The Euclidean norm ‖a‖.
pub fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt()
}

/// Linear interpolation (1 − α)·a + α·b. For two independent Gaussian noises the norm dips
/// towards the middle (by √2 at α = ½), which a diffusion model has never seen.
pub fn lerp(a: &[f32], b: &[f32], alpha: f64) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((1.0 - alpha) * f64::from(*x) + alpha * f64::from(*y)) as f32)
        .collect()
}

/// Spherical interpolation (Shoemake 1985):
/// sin((1 − α)θ)/sin θ · a + sin(αθ)/sin θ · b, with cos θ = a·b / (‖a‖‖b‖).
/// Keeps the norm of two equal-norm noises; falls back to lerp when a ∥ b.
pub fn slerp(a: &[f32], b: &[f32], alpha: f64) -> Vec<f32> {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return lerp(a, b, alpha);
    }
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let cos = (dot / (na * nb)).clamp(-1.0, 1.0);
    let theta = cos.acos();
    if theta.sin().abs() < 1e-6 {
        return lerp(a, b, alpha);
    }
    let wa = ((1.0 - alpha) * theta).sin() / theta.sin();
    let wb = (alpha * theta).sin() / theta.sin();
    a.iter()
        .zip(b)
        .map(|(x, y)| (wa * f64::from(*x) + wb * f64::from(*y)) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments_and_determinism() {
        let a = gaussian(7, 0, 100_000);
        let b = gaussian(7, 0, 100_000);
        assert_eq!(a, b);
        let mean: f64 = a.iter().map(|x| f64::from(*x)).sum::<f64>() / a.len() as f64;
        let var: f64 = a
            .iter()
            .map(|x| (f64::from(*x) - mean).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        assert_ne!(gaussian(7, 1, 10), gaussian(7, 0, 10));
        assert_ne!(gaussian(8, 0, 10), gaussian(7, 0, 10));
    }

    #[test]
    fn slerp_endpoints() {
        let a = gaussian(1, 0, 64);
        let b = gaussian(2, 0, 64);
        let s0 = slerp(&a, &b, 0.0);
        let s1 = slerp(&a, &b, 1.0);
        for i in 0..64 {
            assert!((s0[i] - a[i]).abs() < 1e-5);
            assert!((s1[i] - b[i]).abs() < 1e-5);
        }
    }
}
