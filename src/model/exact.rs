//! The optimal ("memorising") denoiser of a finite image set.
//!
//! If the data distribution is the empirical one over images x_1 … x_N, the posterior mean of
//! x_0 given x_t is exact (Karras et al. 2022, appendix B.3):
//!
//!   x̂0(x_t) = Σ_i w_i·x_i,  w = softmax_i(−‖x_t − √ᾱ_t·x_i‖² / (2(1−ᾱ_t))).
//!
//! It needs no training and reproduces training images perfectly, which makes the sampling
//! trajectories easy to read. The logits are computed on the device with one matmul per chunk of
//! the set, and an online softmax (running max and sum, as in flash attention) keeps memory
//! bounded by the chunk size, so 10,000 MNIST digits are fine.

use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use super::Denoiser;
use crate::diffusion::schedule::NoiseSchedule;
use crate::diffusion::scheduler::PredictionType;
use crate::error::{DiffError, Result};
use crate::tensor_util::tensor2;

/// Rows of the image set per matmul.
pub const DEFAULT_CHUNK: usize = 2048;

/// The optimal denoiser over a fixed image set. It predicts x_0 ([`PredictionType::Sample`]).
pub struct ExactDenoiser {
    schedule: Arc<NoiseSchedule>,
    shape: [usize; 3],
    /// Chunks of the set: images [n, D] and their squared norms [1, n].
    chunks: Vec<(Tensor<2>, Tensor<2>)>,
    count: usize,
}

impl ExactDenoiser {
    /// Uploads `images` (each C·H·W values, row-major) to `device`.
    pub fn new(
        images: &[Vec<f32>],
        shape: [usize; 3],
        schedule: Arc<NoiseSchedule>,
        device: &Device,
    ) -> Result<Self> {
        Self::with_chunk(images, shape, schedule, device, DEFAULT_CHUNK)
    }

    /// Like [`ExactDenoiser::new`] with a chosen chunk size.
    pub fn with_chunk(
        images: &[Vec<f32>],
        shape: [usize; 3],
        schedule: Arc<NoiseSchedule>,
        device: &Device,
        chunk: usize,
    ) -> Result<Self> {
        let d: usize = shape.iter().product();
        if images.is_empty() {
            return Err(DiffError::invalid(
                "the exact denoiser needs at least one image",
            ));
        }
        if let Some(i) = images.iter().position(|im| im.len() != d) {
            return Err(DiffError::invalid(format!(
                "image {i} has {} values, expected {d} for shape {shape:?}",
                images[i].len()
            )));
        }
        let chunk = chunk.max(1);
        let chunks = images
            .chunks(chunk)
            .map(|part| {
                let n = part.len();
                let flat: Vec<f32> = part.iter().flatten().copied().collect();
                let norms: Vec<f32> = part
                    .iter()
                    .map(|im| im.iter().map(|x| x * x).sum::<f32>())
                    .collect();
                (
                    tensor2(flat, [n, d], device),
                    tensor2(norms, [1, n], device),
                )
            })
            .collect();
        Ok(Self {
            schedule,
            shape,
            chunks,
            count: images.len(),
        })
    }

    /// How many images the set holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set is empty (never: construction refuses it).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// x̂0(x_t) = Σ_i softmax_i(−‖x_t − √ᾱ_t·x_i‖² / (2(1−ᾱ_t)))·x_i, per batch item.
    ///
    /// Expanding the square, the ‖x_t‖² term is the same for every i and drops out of the
    /// softmax, leaving logits_i = (√ᾱ·⟨x_t, x_i⟩ − ᾱ/2·‖x_i‖²) / (1−ᾱ).
    pub fn predict_x0(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let [b, c, h, w] = x_t.dims();
        if [c, h, w] != self.shape {
            return Err(DiffError::invalid(format!(
                "input shape {:?} differs from the image set's {:?}",
                [c, h, w],
                self.shape
            )));
        }
        if timesteps.len() != b {
            return Err(DiffError::invalid(format!(
                "{} timesteps for a batch of {b}",
                timesteps.len()
            )));
        }
        timesteps
            .iter()
            .try_for_each(|t| self.schedule.check_t(*t))?;
        let device = x_t.device();
        let d = c * h * w;
        let x = x_t.reshape([b, d]);
        let column = |f: &dyn Fn(f64) -> f64| -> Tensor<2> {
            let v: Vec<f32> = timesteps
                .iter()
                .map(|t| f(self.schedule.alphas_cumprod[*t]) as f32)
                .collect();
            tensor2(v, [b, 1], &device)
        };
        let dot_scale = column(&|a| a.sqrt() / (1.0 - a));
        let norm_scale = column(&|a| a / (2.0 * (1.0 - a)));

        let mut running_max: Option<Tensor<2>> = None;
        let mut running_sum = Tensor::<2>::zeros([b, 1], &device);
        let mut acc = Tensor::<2>::zeros([b, d], &device);
        for (images, norms) in &self.chunks {
            // logits [B, n] = a·(x · x_iᵀ) − c·‖x_i‖².
            let logits = x.clone().matmul(images.clone().transpose()) * dot_scale.clone()
                - norms.clone() * norm_scale.clone();
            let chunk_max = logits.clone().max_dim(1);
            let new_max = match &running_max {
                Some(m) => m.clone().max_pair(chunk_max),
                None => chunk_max,
            };
            let weights = (logits - new_max.clone()).exp();
            if let Some(m) = &running_max {
                let rescale = (m.clone() - new_max.clone()).exp();
                running_sum = running_sum * rescale.clone();
                acc = acc * rescale;
            }
            running_sum = running_sum + weights.clone().sum_dim(1);
            acc = acc + weights.matmul(images.clone());
            running_max = Some(new_max);
        }
        Ok((acc / running_sum).reshape([b, c, h, w]))
    }
}

impl Denoiser for ExactDenoiser {
    fn items_independent(&self) -> bool {
        true
    }

    fn prediction_type(&self) -> PredictionType {
        PredictionType::Sample
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        self.predict_x0(x_t, timesteps)
    }

    fn name(&self) -> String {
        format!("exact denoiser over {} images", self.count)
    }
}
