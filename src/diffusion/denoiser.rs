//! The denoiser: what the samplers call. It lives with the diffusion maths (the reverse process
//! is defined in terms of it); the models in src/model implement it, so the layers import one way
//! only (model → diffusion).

use burn::tensor::Tensor;

use super::scheduler::PredictionType;
use crate::error::Result;

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

    /// Whether each item's output depends on that item alone, so that a batch may be run in
    /// pieces with the same result (the page does, to keep each frame short). A model that keeps
    /// per-batch state or takes one label per item says no (the default).
    fn items_independent(&self) -> bool {
        false
    }
}

/// The checks every run makes before its first model call: `x` ([B, C, H, W], called `what` in
/// the message) has the model's image shape.
pub fn check_input_shape(denoiser: &dyn Denoiser, x: &Tensor<4>, what: &str) -> Result<()> {
    let [_, c, h, w] = x.dims();
    if [c, h, w] != denoiser.sample_shape() {
        return Err(crate::error::DiffError::invalid(format!(
            "{what} has shape {:?} but the model works on {:?}",
            [c, h, w],
            denoiser.sample_shape()
        )));
    }
    Ok(())
}

/// A scheduler configured for another prediction type than the model's is refused.
pub fn check_prediction(denoiser: &dyn Denoiser, scheduler_expects: PredictionType) -> Result<()> {
    if scheduler_expects != denoiser.prediction_type() {
        return Err(crate::error::DiffError::invalid(format!(
            "the scheduler expects {:?} but the model predicts {:?}",
            scheduler_expects,
            denoiser.prediction_type()
        )));
    }
    Ok(())
}
