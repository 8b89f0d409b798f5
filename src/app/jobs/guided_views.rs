//! The guided U-Net of the sampling panel's guided runs, recording the ε_∅ and ε_c views of
//! each step.

use std::sync::{Arc, Mutex};

use burn::tensor::Tensor;

use crate::diffusion::scheduler::predict_x0_and_eps;
use crate::diffusion::{NoiseSchedule, PredictionType};
use crate::error::{DiffError, Result};
use crate::model::{Denoiser, Guided, UNetDenoiser};

/// A guided U-Net that keeps its last step's ε_∅ and ε_c for the views (it always runs the one
/// 2B pass, even at w = 0 or 1, so that both are there to show). A net that predicts v (or x_0)
/// has its two outputs turned into the ε̂ they imply at ᾱ_t, so the views show noise whatever
/// the net's target.
pub(in crate::app) struct RecordingGuided {
    inner: Guided<UNetDenoiser>,
    schedule: Arc<NoiseSchedule>,
    last: Mutex<Option<(Tensor<4>, Tensor<4>)>>,
}

impl RecordingGuided {
    /// `inner`, keeping each step's views (ε̂ at `schedule`'s ᾱ_t).
    pub(in crate::app) fn new(inner: Guided<UNetDenoiser>, schedule: Arc<NoiseSchedule>) -> Self {
        Self {
            inner,
            schedule,
            last: Mutex::new(None),
        }
    }

    /// The last step's ε_∅ and ε_c (taken: a second call gives `None` until the next step).
    pub(in crate::app) fn take(&self) -> Option<(Tensor<4>, Tensor<4>)> {
        self.last.lock().ok().and_then(|mut l| l.take())
    }
}

impl Denoiser for RecordingGuided {
    fn prediction_type(&self) -> PredictionType {
        self.inner.prediction_type()
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.inner.sample_shape()
    }

    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let p = self.inner.parts(x_t.clone(), timesteps)?;
        let prediction = self.inner.prediction_type();
        let views = match (prediction, timesteps.first()) {
            (PredictionType::Epsilon, _) | (_, None) => (p.uncond, p.cond),
            // A sampling step's batch shares one t.
            (_, Some(&t)) => {
                let alpha_bar = *self.schedule.alphas_cumprod.get(t).ok_or_else(|| {
                    DiffError::invalid(format!("timestep {t} is past the schedule's end"))
                })?;
                let eps = |out| predict_x0_and_eps(prediction, out, x_t.clone(), alpha_bar).1;
                (eps(p.uncond), eps(p.cond))
            }
        };
        if let Ok(mut l) = self.last.lock() {
            *l = Some(views);
        }
        Ok(p.guided)
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}
