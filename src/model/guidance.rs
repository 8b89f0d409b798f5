//! Classifier-free guidance (Ho & Salimans 2022), in diffusers' convention:
//! ε̃ = ε_∅ + w·(ε_c − ε_∅), so w = 0 is the unconditional model, w = 1 the conditional one and
//! w > 1 pushes the sample further towards its label. Computed as (1 − w)·ε_∅ + w·ε_c (the same
//! value), which gives ε_∅ and ε_c exactly at w = 0 and w = 1.
//!
//! The conditional and unconditional outputs come from one forward pass over a batch of 2B
//! (the images with their labels, then the same images with ∅), not two passes.

use std::sync::Arc;

use burn::tensor::Tensor;

use super::Denoiser;
use crate::diffusion::scheduler::PredictionType;
use crate::error::{DiffError, Result};

/// A denoiser that can be told a class label per image.
pub trait ConditionalDenoiser: Denoiser {
    /// The number of classes; `None` for an unconditional model.
    fn num_classes(&self) -> Option<usize>;

    /// The model output at (x_t, t) for one label per image; label `num_classes` is ∅.
    fn forward_labels(
        &self,
        x_t: Tensor<4>,
        timesteps: &[usize],
        labels: &[usize],
    ) -> Result<Tensor<4>>;
}

/// ε̃ = (1 − w)·ε_∅ + w·ε_c (= ε_∅ + w·(ε_c − ε_∅)).
pub fn guide(uncond: Tensor<4>, cond: Tensor<4>, w: f64) -> Tensor<4> {
    if w == 0.0 {
        return uncond;
    }
    if w == 1.0 {
        return cond;
    }
    uncond * (1.0 - w) + cond * w
}

/// The three model outputs of one guided step.
#[derive(Clone, Debug)]
pub struct GuidedParts {
    /// ε_∅: the output with no label.
    pub uncond: Tensor<4>,
    /// ε_c: the output with each image's label.
    pub cond: Tensor<4>,
    /// ε̃: the guided output the sampler uses.
    pub guided: Tensor<4>,
}

/// Checks a guidance scale: finite and ≥ 0.
pub fn check_scale(w: f64) -> Result<()> {
    if !w.is_finite() || w < 0.0 {
        return Err(DiffError::invalid(format!(
            "the guidance scale w must be a finite number ≥ 0, not {w}"
        )));
    }
    Ok(())
}

/// Checks labels against a model's classes.
pub fn check_labels(num_classes: Option<usize>, labels: &[usize]) -> Result<()> {
    let Some(n) = num_classes else {
        return Err(DiffError::invalid(
            "this model is unconditional (trained without labels): it takes no label",
        ));
    };
    if let Some(bad) = labels.iter().find(|&&l| l >= n) {
        return Err(DiffError::invalid(format!(
            "label {bad} is out of range: this model knows labels 0 to {}",
            n - 1
        )));
    }
    Ok(())
}

/// ε_∅, ε_c and ε̃ for x_t (B images) with `labels` (B of them, or one for all), in one forward
/// pass over 2B images.
pub fn guided_parts(
    model: &dyn ConditionalDenoiser,
    x_t: Tensor<4>,
    timesteps: &[usize],
    labels: &[usize],
    w: f64,
) -> Result<GuidedParts> {
    let null = model
        .num_classes()
        .ok_or_else(|| DiffError::invalid("guidance needs a class-conditional model"))?;
    let b = x_t.dims()[0];
    let labels = expand_labels(labels, b)?;
    let mut all_labels = labels;
    all_labels.extend(std::iter::repeat_n(null, b));
    let mut all_t = timesteps.to_vec();
    all_t.extend_from_slice(timesteps);
    let out = model.forward_labels(Tensor::cat(vec![x_t.clone(), x_t], 0), &all_t, &all_labels)?;
    let cond = out.clone().narrow(0, 0, b);
    let uncond = out.narrow(0, b, b);
    Ok(GuidedParts {
        guided: guide(uncond.clone(), cond.clone(), w),
        uncond,
        cond,
    })
}

/// `labels` for a batch of `b`: as given when there are b, repeated when there is one.
fn expand_labels(labels: &[usize], b: usize) -> Result<Vec<usize>> {
    match labels.len() {
        1 => Ok(vec![labels[0]; b]),
        n if n == b => Ok(labels.to_vec()),
        n => Err(DiffError::invalid(format!(
            "{n} labels for a batch of {b} images"
        ))),
    }
}

/// A conditional denoiser steered towards `labels` with guidance scale w: a [`Denoiser`] that
/// any sampler can drive. At w = 0 it runs the unconditional model only, at w = 1 the
/// conditional one only (one pass of B each); otherwise one pass of 2B.
#[derive(Clone)]
pub struct Guided<M: ConditionalDenoiser> {
    /// The model.
    pub model: Arc<M>,
    /// One label per image of the batch, or one for all.
    pub labels: Vec<usize>,
    /// w.
    pub scale: f64,
}

impl<M: ConditionalDenoiser> Guided<M> {
    /// Checks the labels and the scale against the model.
    pub fn new(model: Arc<M>, labels: Vec<usize>, scale: f64) -> Result<Self> {
        check_scale(scale)?;
        if labels.is_empty() {
            return Err(DiffError::invalid("guidance needs at least one label"));
        }
        check_labels(model.num_classes(), &labels)?;
        Ok(Self {
            model,
            labels,
            scale,
        })
    }

    /// ε_∅, ε_c and ε̃ at (x_t, t) (one pass of 2B).
    pub fn parts(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<GuidedParts> {
        guided_parts(
            self.model.as_ref(),
            x_t,
            timesteps,
            &self.labels,
            self.scale,
        )
    }
}

impl<M: ConditionalDenoiser> Denoiser for Guided<M> {
    fn prediction_type(&self) -> PredictionType {
        self.model.prediction_type()
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.model.sample_shape()
    }

    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let b = x_t.dims()[0];
        if self.scale == 0.0 {
            return self.model.forward(x_t, timesteps);
        }
        if self.scale == 1.0 {
            let labels = expand_labels(&self.labels, b)?;
            return self.model.forward_labels(x_t, timesteps, &labels);
        }
        Ok(self.parts(x_t, timesteps)?.guided)
    }

    fn name(&self) -> String {
        let labels = if self.labels.iter().all(|&l| l == self.labels[0]) {
            format!("label {}", self.labels[0])
        } else {
            format!("{} labels", self.labels.len())
        };
        format!(
            "{}, {labels}, guidance w = {}",
            self.model.name(),
            self.scale
        )
    }
}
