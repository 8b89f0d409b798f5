//! Quality against model evaluations (NFE): each solver at each NFE from the same x_T, the final
//! samples judged by the `eval` judge (trained once, a batch per poll, on the first request).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;
use web_time::Instant;

use super::SamplerJob;
use crate::app::jobs::sampler::{
    GuidanceSettings, LabelPick, QualityPoint, QualitySpec, QualityUpdate, RunSpec, SamplerChoice,
    SamplerEvent, SamplerSettings,
};
use crate::app::jobs::thread::yield_now;
use crate::data::image_io::{ValueRange, batch_to_rgb, grid};
use crate::data::mnist::Mnist;
use crate::error::Result;
use crate::eval::{JudgeTraining, RealDigits, judge_against};

/// The judge's training passes (as `difflab eval`'s default).
const JUDGE_EPOCHS: usize = 5;
/// Samples shown per point.
const SHOWN: usize = 8;

/// The steps that spend at most `nfe` model evaluations with `s` (at least one step).
pub fn steps_for_nfe(s: &SamplerSettings, nfe: usize) -> usize {
    let mut t = *s;
    let mut steps = 1;
    for n in 1..=nfe.max(1) {
        t.steps = n;
        if t.nfe() <= nfe {
            steps = n;
        }
    }
    steps
}

impl SamplerJob {
    pub(super) async fn quality(
        &mut self,
        spec: &QualitySpec,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        let id = spec.id;
        let update = |update| send(SamplerEvent::Quality { id, update });
        let flex = crate::device::ComputeDevice::flex().device;
        if self.judge.is_none() {
            let mnist = Mnist::embedded()?;
            let mut training = JudgeTraining::new(&mnist, JUDGE_EPOCHS, 0, &flex)?;
            while training.step() {
                if training.done % 8 == 0 {
                    update(QualityUpdate::Judge(training.done, training.total));
                }
                yield_now().await;
                if cancel.load(Ordering::Relaxed) {
                    send(SamplerEvent::Cancelled(id));
                    return Ok(());
                }
            }
            let judge = training.finish()?;
            let real = RealDigits::new(&judge, &flex)?;
            self.judge = Some(Arc::new((judge, real)));
        }
        let Some(judged) = self.judge.clone() else {
            return Ok(());
        };
        let total = spec.solvers.len() * spec.nfes.len();
        let mut done = 0;
        for (solver, (s, model)) in spec.solvers.iter().enumerate() {
            for &nfe in &spec.nfes {
                update(QualityUpdate::Runs(done, total));
                let sampler = SamplerSettings {
                    steps: steps_for_nfe(s, nfe),
                    ..*s
                };
                let run = RunSpec {
                    id,
                    schedule: spec.schedule,
                    sampler,
                    model: *model,
                    seed: spec.seed,
                    batch: spec.batch,
                    guidance: GuidanceSettings {
                        label: LabelPick::Any,
                        scale: 0.0,
                    },
                };
                let started = Instant::now();
                let Some(last) = self.run_frames(&run, cancel, |_, _, _, _| {}).await? else {
                    send(SamplerEvent::Cancelled(id));
                    return Ok(());
                };
                let wall_ms = started.elapsed().as_secs_f64() * 1e3;
                let values = last.x_values();
                let report = judge_against(&judged.0, &judged.1, values, &flex)?;
                let shape = last.shape;
                let per = shape[1] * shape[2] * shape[3];
                let shown = shape[0].min(SHOWN);
                let images: Vec<RgbImage> = batch_to_rgb(
                    &values[..shown * per],
                    [shown, shape[1], shape[2], shape[3]],
                    ValueRange::Unit,
                )?;
                update(QualityUpdate::Point(QualityPoint {
                    solver,
                    label: match sampler.solver_spec() {
                        Some(spec) if model.is_flow() => format!("{} (flow net)", spec.label()),
                        Some(spec) => spec.label(),
                        None if sampler.sampler == SamplerChoice::Ddim => "DDIM".into(),
                        None => sampler.sampler.label().to_string(),
                    },
                    nfe,
                    steps: sampler.steps,
                    wall_ms,
                    confidence: report.mean_confidence,
                    frechet_ratio: report.frechet / report.frechet_real.max(1e-12),
                    samples: Arc::new(grid(&images, shown, 1, 1)),
                }));
                done += 1;
                yield_now().await;
            }
        }
        update(QualityUpdate::Runs(done, total));
        update(QualityUpdate::Done);
        Ok(())
    }
}
