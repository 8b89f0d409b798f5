//! Denoisers: anything that maps (x_t, t) to a model output a scheduler understands.

pub mod classifier;
pub mod exact;
pub mod guidance;
pub mod memory;
pub mod toy_mlp;
pub mod unet;

use burn::tensor::{Device, Tensor};

pub use crate::diffusion::Denoiser;
pub use exact::ExactDenoiser;
pub use guidance::{ConditionalDenoiser, Guided, GuidedParts, guide};
pub use unet::{UNet, UNetConfig, UNetDenoiser};

/// Held while a model draws its initial weights from burn's random generator, which is one for
/// the whole process (flex's is a global behind a lock of its own): without it two models set
/// up at once (two tests, or the app's jobs) take each other's draws, and a seed no longer
/// gives the same weights.
static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `init` with burn's random generator to itself, seeded with `seed` first when given:
/// the same seed then gives the same initial weights whatever else the process does.
pub fn init_with_rng<T>(device: &Device, seed: Option<u64>, init: impl FnOnce() -> T) -> T {
    let _held = RNG_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(seed) = seed {
        device.seed(seed);
    }
    init()
}

/// Sinusoidal embeddings of the timesteps (Vaswani et al. 2017, as in DDPM), [B, dim]: sines
/// then cosines of t·10000^(−k/(dim/2)).
pub fn sinusoidal_embedding(timesteps: &[usize], dim: usize, device: &Device) -> Tensor<2> {
    let half = dim / 2;
    let mut v = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        for k in 0..half {
            let freq = (-(10_000f64.ln()) * k as f64 / half as f64).exp();
            v.push((t as f64 * freq).sin() as f32);
        }
        for k in 0..half {
            let freq = (-(10_000f64.ln()) * k as f64 / half as f64).exp();
            v.push((t as f64 * freq).cos() as f32);
        }
        v.extend(std::iter::repeat_n(0.0, dim - 2 * half));
    }
    crate::tensor_util::tensor2(v, [timesteps.len(), dim], device)
}
