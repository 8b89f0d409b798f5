//! Denoisers: anything that maps (x_t, t) to a model output a scheduler understands.

pub mod exact;
pub mod toy_mlp;

use burn::tensor::Tensor;

use crate::diffusion::scheduler::PredictionType;
use crate::error::Result;

pub use exact::ExactDenoiser;

/// A denoising model: a batch x_t [B, C, H, W] and one timestep per item in, the model output
/// (of [`Denoiser::prediction_type`]) out, with the same shape.
pub trait Denoiser: Send + Sync {
    /// What [`Denoiser::forward`] returns: ε, x_0 or v.
    fn prediction_type(&self) -> PredictionType;

    /// The image shape [C, H, W] this model works on.
    fn sample_shape(&self) -> [usize; 3];

    /// The model output at (x_t, t).
    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>>;

    /// A short human-readable name.
    fn name(&self) -> String;
}
