//! The sampler's interpolations: both blends of two seeds' noises, decoded with deterministic
//! DDIM, a step per poll.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Tensor;
use image::RgbImage;

use super::SamplerJob;
use crate::app::jobs::sampler::{
    InterpSpec, LabelPick, SamplerChoice, SamplerEvent, SamplerSettings,
};
use crate::app::jobs::stepped;
use crate::data::image_io::{ValueRange, batch_to_rgb};
use crate::diffusion::interpolation::{Blend, alphas, blended_noises, decode_start};
use crate::diffusion::noise::norm;
use crate::diffusion::{Scheduler, TimestepSpacing};
use crate::error::{DiffError, Result};
use crate::model::{Denoiser, Guided};
use crate::tensor_util::read_vec;

impl SamplerJob {
    pub(super) async fn interpolate(
        &mut self,
        spec: &InterpSpec,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        if spec.frames < 2 {
            return Err(DiffError::invalid(
                "an interpolation needs at least 2 frames",
            ));
        }
        let mut workers = None;
        let model: Arc<dyn Denoiser> = match spec.guidance.label {
            LabelPick::Digit(d) if spec.model.takes_digits() => {
                let unet = self.unet(spec.model.weights)?;
                Arc::new(Guided::new(
                    unet,
                    vec![usize::from(d)],
                    f64::from(spec.guidance.scale),
                )?)
            }
            _ => {
                workers = self.model_workers(spec.model);
                self.model(spec.model, spec.schedule)?
            }
        };
        let pieces = self.pieces(workers.as_deref());
        let sampler = SamplerSettings {
            sampler: SamplerChoice::Ddim,
            steps: spec.steps,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            ..SamplerSettings::default()
        };
        let scheduler =
            Scheduler::new(sampler.scheduler_config(spec.schedule, model.prediction_type()))?;
        let shape = model.sample_shape();
        let d: usize = shape.iter().product();
        let alphas = alphas(spec.frames)?;
        let decode = async |noises: &[Vec<f32>]| -> Result<Option<Vec<Arc<RgbImage>>>> {
            let n = noises.len();
            let x_t = decode_start(model.as_ref(), &scheduler, noises, &self.device)?;
            // η = 0 adds no noise, so the noise is never asked for.
            let zeros = |_, shape| Tensor::zeros(shape, &self.device);
            let Some(x0) = stepped::sample_loop(
                model.as_ref(),
                &scheduler,
                x_t,
                zeros,
                pieces,
                cancel,
                async |_| {},
            )
            .await?
            else {
                return Ok(None);
            };
            let images = batch_to_rgb(
                &read_vec(x0).await?,
                [n, shape[0], shape[1], shape[2]],
                ValueRange::Unit,
            )?;
            Ok(Some(images.into_iter().map(Arc::new).collect()))
        };
        let s_noise = blended_noises(spec.seed_a, spec.seed_b, d, &alphas, Blend::Slerp);
        let l_noise = blended_noises(spec.seed_a, spec.seed_b, d, &alphas, Blend::Lerp);
        let (Some(slerp_img), Some(lerp_img)) = (decode(&s_noise).await?, decode(&l_noise).await?)
        else {
            send(SamplerEvent::Cancelled(spec.id));
            return Ok(());
        };
        send(SamplerEvent::Interpolated {
            id: spec.id,
            alphas,
            slerp: slerp_img,
            lerp: lerp_img,
            slerp_norms: s_noise.iter().map(|v| norm(v)).collect(),
            lerp_norms: l_noise.iter().map(|v| norm(v)).collect(),
        });
        Ok(())
    }
}
