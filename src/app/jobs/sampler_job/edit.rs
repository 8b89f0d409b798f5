//! The sampler's edits of the sketch pad's drawing (SDEdit, inpainting, DDIM inversion, the
//! error against the steps, editing the noise): the core's steppable runs
//! (src/diffusion/editing.rs), a model call per poll, each part sent as it is ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;
use image::RgbImage;

use super::SamplerJob;
use crate::app::jobs::sampler::{
    EditJob, EditPart, EditSpec, LabelPick, SamplerChoice, SamplerEvent,
};
use crate::app::jobs::thread::yield_now;
use crate::data::image_io::{ValueRange, batch_to_rgb};
use crate::diffusion::editing::{
    InpaintRun, InvertRun, RepaintMove, SdeditRun, ddim_decode_step, edit_scheduler,
    inversion_scheduler, rmse_of,
};
use crate::diffusion::interpolation::alphas;
use crate::diffusion::noise::slerp;
use crate::diffusion::{NoiseSchedule, Scheduler};
use crate::error::{DiffError, Result};
use crate::model::{Denoiser, Guided};
use crate::tensor_util::{read_vec, tensor4};

/// Counts the model calls of an edit and reports them.
struct Calls<'a> {
    id: u64,
    done: usize,
    total: usize,
    send: &'a dyn Fn(SamplerEvent),
    cancel: &'a AtomicBool,
}

impl Calls<'_> {
    /// One call made: reports it and gives the page back; false when cancelled.
    async fn made(&mut self) -> bool {
        self.done += 1;
        (self.send)(SamplerEvent::EditProgress {
            id: self.id,
            done: self.done,
            total: self.total,
        });
        yield_now().await;
        !self.cancel.load(Ordering::Relaxed)
    }
}

async fn images(x: &Tensor<4>, range: ValueRange) -> Result<Vec<Arc<RgbImage>>> {
    let values = read_vec(x.clone()).await?;
    Ok(batch_to_rgb(&values, x.dims(), range)?
        .into_iter()
        .map(Arc::new)
        .collect())
}

impl SamplerJob {
    pub(super) async fn edit(
        &mut self,
        spec: &EditSpec,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        let id = spec.id;
        let part = |part| send(SamplerEvent::Edit { id, part });
        let schedule = Arc::new(NoiseSchedule::new(spec.schedule)?);
        // The model without a label (inversion is of the unguided ODE), and the one the
        // sampling edits use: guided towards a digit when one is asked of a model that takes
        // digits.
        let plain = self.model(spec.model, spec.schedule)?;
        let guided: Option<Arc<dyn Denoiser>> = match spec.guidance.label {
            LabelPick::Digit(d) if spec.model.takes_digits() => {
                let unet = self.unet(spec.model.weights)?;
                Some(Arc::new(Guided::new(
                    unet,
                    vec![usize::from(d)],
                    f64::from(spec.guidance.scale),
                )?))
            }
            _ => None,
        };
        let model = guided.clone().unwrap_or_else(|| plain.clone());
        let [c, h, w] = plain.sample_shape();
        if spec.input.len() != c * h * w {
            return Err(DiffError::invalid(format!(
                "the sketch pad is 28×28 grey, and this model works on {c}×{h}×{w}: \
                 pick the shipped U-Net or the exact denoiser"
            )));
        }
        let n = spec.samples.clamp(1, 8);
        let batch = |v: &[f32], n: usize| {
            let values: Vec<f32> = (0..n).flat_map(|_| v.iter().copied()).collect();
            tensor4(values, [n, c, h, w], &self.device)
        };
        let sampler = || {
            edit_scheduler(
                &schedule,
                model.prediction_type(),
                spec.sampler.steps,
                spec.sampler.sampler != SamplerChoice::Ddim,
                guided.is_some(),
            )
        };
        let mut calls = Calls {
            id,
            done: 0,
            total: 0,
            send,
            cancel,
        };
        let cancelled = || {
            send(SamplerEvent::Cancelled(id));
            Ok(())
        };
        match &spec.job {
            EditJob::Sdedit(t0s) => {
                let scheduler = sampler()?;
                let starts: Vec<usize> = t0s
                    .iter()
                    .map(|&t0| {
                        crate::diffusion::editing::sdedit_start(&scheduler, t0)
                            .map_or(0, |s| scheduler.timesteps().len() - s)
                    })
                    .collect();
                calls.total = starts.iter().sum();
                for &t0 in t0s {
                    let mut run = SdeditRun::new(
                        model.as_ref(),
                        &scheduler,
                        batch(&spec.input, n),
                        t0,
                        spec.seed,
                    )?;
                    let start = images(&run.current().clone().narrow(0, 0, 1), ValueRange::Unit)
                        .await?
                        .remove(0);
                    let start_t = run.start_t();
                    while let Some(step) = run.next_step() {
                        step?;
                        if !calls.made().await {
                            return cancelled();
                        }
                    }
                    let x = run.into_current();
                    part(EditPart::SdeditRow {
                        t0,
                        start_t,
                        start,
                        results: images(&x, ValueRange::Unit).await?,
                        values: read_vec(x).await?,
                    });
                }
            }
            EditJob::Inpaint => {
                let scheduler = sampler()?;
                let mask = tensor4(spec.mask.to_vec(), [1, c, h, w], &self.device);
                let mut run = InpaintRun::new(
                    model.as_ref(),
                    &scheduler,
                    batch(&spec.input, n),
                    mask,
                    spec.seed,
                    spec.resample,
                    spec.jump,
                )?;
                calls.total = run.total();
                let ts = scheduler.timesteps().to_vec();
                let mut labels = vec![format!("x_T (t = {})", ts.first().copied().unwrap_or(0))];
                let mut frames = vec![images(run.current(), ValueRange::Unit).await?];
                while let Some(m) = run.next_move() {
                    labels.push(match m? {
                        RepaintMove::Down { step, pass } => {
                            let to = scheduler
                                .previous_timestep(ts[step])?
                                .filter(|_| step + 1 < ts.len())
                                .map_or("x_0".to_string(), |t| format!("t = {t}"));
                            if pass == 0 {
                                format!("{to}, down from {}", ts[step])
                            } else {
                                format!("{to}, down from {} (pass {})", ts[step], pass + 1)
                            }
                        }
                        RepaintMove::Up { step, .. } => {
                            format!("t = {}, back up (resampling)", ts[step])
                        }
                    });
                    frames.push(images(run.current(), ValueRange::Unit).await?);
                    if !calls.made().await {
                        return cancelled();
                    }
                }
                part(EditPart::Inpaint {
                    labels,
                    frames,
                    values: read_vec(run.into_current()).await?,
                });
            }
            EditJob::Invert(steps) => {
                calls.total = 2 * steps;
                let x0 = batch(&spec.input, 1);
                let Some((noise, back)) = self
                    .invert_decode(plain.as_ref(), &schedule, x0, *steps, &mut calls)
                    .await?
                else {
                    return cancelled();
                };
                part(EditPart::Invert {
                    steps: *steps,
                    // x_0 is `spec.input` uploaded: its values need no read back.
                    rmse: rmse_of(&spec.input, &read_vec(back.clone()).await?)?,
                    noise_image: images(&noise, ValueRange::Normalise).await?.remove(0),
                    reconstruction: images(&back, ValueRange::Unit).await?.remove(0),
                    noise: read_vec(noise).await?,
                });
            }
            EditJob::InvertCurve(list) => {
                calls.total = list.iter().map(|s| 2 * s).sum();
                let x0 = batch(&spec.input, 1);
                for &steps in list {
                    let Some((_, back)) = self
                        .invert_decode(plain.as_ref(), &schedule, x0.clone(), steps, &mut calls)
                        .await?
                    else {
                        return cancelled();
                    };
                    let back = read_vec(back).await?;
                    part(EditPart::CurvePoint(steps, rmse_of(&spec.input, &back)?));
                }
            }
            EditJob::NoiseEdit {
                digits,
                steps,
                frames,
            } => {
                calls.total = 2 * steps;
                let alphas = alphas(*frames)?;
                let both: Vec<f32> = digits.iter().flatten().copied().collect();
                let x0 = tensor4(both, [2, c, h, w], &self.device);
                let scheduler = inversion_scheduler(plain.as_ref(), &schedule, *steps)?;
                let mut run = InvertRun::new(plain.as_ref(), &scheduler, x0)?;
                while let Some(step) = run.next_step() {
                    step?;
                    if !calls.made().await {
                        return cancelled();
                    }
                }
                let noises = read_vec(run.into_current()).await?;
                let d = c * h * w;
                let (a, b) = (&noises[..d], &noises[d..]);
                let blended: Vec<f32> = alphas.iter().flat_map(|&t| slerp(a, b, t)).collect();
                let mut x = tensor4(blended, [alphas.len(), c, h, w], &self.device);
                for &t in scheduler.timesteps() {
                    x = ddim_decode_step(plain.as_ref(), &scheduler, x, t)?;
                    if !calls.made().await {
                        return cancelled();
                    }
                }
                part(EditPart::NoiseEdit {
                    alphas,
                    frames: images(&x, ValueRange::Unit).await?,
                });
            }
        }
        part(EditPart::Done);
        Ok(())
    }

    /// DDIM inversion of x0 with `steps` steps, then its decoding: (x_T, the reconstruction),
    /// or `None` when cancelled.
    async fn invert_decode(
        &self,
        model: &dyn Denoiser,
        schedule: &Arc<NoiseSchedule>,
        x0: Tensor<4>,
        steps: usize,
        calls: &mut Calls<'_>,
    ) -> Result<Option<(Tensor<4>, Tensor<4>)>> {
        let scheduler: Scheduler = inversion_scheduler(model, schedule, steps)?;
        let mut run = InvertRun::new(model, &scheduler, x0)?;
        while let Some(step) = run.next_step() {
            step?;
            if !calls.made().await {
                return Ok(None);
            }
        }
        let noise = run.into_current();
        let mut x = noise.clone();
        for &t in scheduler.timesteps() {
            x = ddim_decode_step(model, &scheduler, x, t)?;
            if !calls.made().await {
                return Ok(None);
            }
        }
        Ok(Some((noise, x)))
    }
}
