//! The sampler's job: runs, comparisons, interpolations and GIF exports on the
//! "difflab-sampler" thread, streaming each step back as [`SamplerEvent`]s that carry the
//! request's id.

use super::guided_views::RecordingGuided;

mod edit;
mod interpolate;
mod memory;
mod quality;
mod warm_up;
mod workers;

use super::sampler::{
    GifFrame, GuidanceSettings, LabelPick, ModelSpec, RunSpec, SamplerCommand, SamplerEvent,
    TrajFrame, final_frame, frame_of,
};
use super::stepped;
use super::thread::{Drive, Job, WorkerThread};
use crate::app::unet_file::{SHIPPED, WeightsId};
use crate::data::gif::save_gif;
use crate::data::mnist::{Mnist, SIDE};
use crate::diffusion::{NoiseSchedule, ScheduleConfig, Scheduler};
use crate::error::{DiffError, Result};
use crate::model::{ConditionalDenoiser, Denoiser, ExactDenoiser, Guided, UNetDenoiser};
use crate::tensor_util::reads_synchronously;
use burn::tensor::Device;
use image::RgbImage;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use web_time::Instant;

/// The sampling panels' worker thread.
pub type SamplerWorker = WorkerThread<SamplerJob>;

/// Starts "difflab-sampler" on `device`.
pub fn spawn_sampler_worker(
    device: Device,
    ctx: egui::Context,
    drive: Drive,
) -> Result<SamplerWorker> {
    WorkerThread::start(
        "difflab-sampler",
        SamplerJob {
            // On the frame loop a U-Net step runs a few images at a time (see stepped.rs); on
            // a GPU in the page a step is queued whole, and the page waits for its read-back.
            piece: (matches!(drive, Drive::Frames(_)) && reads_synchronously(&device))
                .then_some(FRAME_PIECE),
            device,
            mnist: None,
            models: HashMap::new(),
            unets: HashMap::new(),
            judge: None,
        },
        ctx,
        drive,
    )
}

pub use super::pieces::FRAME_PIECE;

/// The sampler thread's state: the device and the built models.
pub struct SamplerJob {
    device: Device,
    /// Images per piece of a step on the frame loop (`None` on a thread: whole steps).
    piece: Option<usize>,
    mnist: Option<Arc<Mnist>>,
    models: HashMap<(ModelSpec, ScheduleKey), Arc<dyn Denoiser>>,
    /// The U-Nets built so far, by weights (a class-conditional one is given ∅ by plain runs, a
    /// digit by guided runs), each built once whatever the schedule.
    unets: HashMap<WeightsId, Arc<UNetDenoiser>>,
    /// The `eval` judge and its reading of the held-out digits, trained once when first asked.
    judge: Option<Arc<(crate::eval::Judge, crate::eval::RealDigits)>>,
}

/// What a run samples with.
struct RunModel {
    model: Arc<dyn Denoiser>,
    guided: Option<Arc<RecordingGuided>>,
    scheduler: Scheduler,
    batch: usize,
    cols: usize,
}

/// A hashable form of a schedule config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ScheduleKey(u8, usize, u64, u64);

impl From<ScheduleConfig> for ScheduleKey {
    fn from(c: ScheduleConfig) -> Self {
        ScheduleKey(
            c.kind as u8,
            c.num_train_timesteps,
            c.beta_start.to_bits(),
            c.beta_end.to_bits(),
        )
    }
}

impl Job for SamplerJob {
    type Command = SamplerCommand;
    type Event = SamplerEvent;

    fn supersedable(cmd: &SamplerCommand) -> bool {
        !matches!(cmd, SamplerCommand::ExportGif { .. })
    }

    fn cancels_running(cmd: &SamplerCommand) -> bool {
        // Exporting a GIF while a run streams must not stop the run.
        !matches!(cmd, SamplerCommand::ExportGif { .. })
    }

    async fn handle(
        &mut self,
        cmd: SamplerCommand,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) {
        let id = match &cmd {
            SamplerCommand::Run(spec) => Some(spec.id),
            SamplerCommand::Compare { id, .. } => Some(*id),
            SamplerCommand::Interpolate(spec) => Some(spec.id),
            SamplerCommand::Edit(spec) => Some(spec.id),
            SamplerCommand::Quality(spec) => Some(spec.id),
            SamplerCommand::ExportGif { .. } | SamplerCommand::WarmUp { .. } => None,
        };
        let result = match cmd {
            SamplerCommand::Run(spec) => self.run(&spec, cancel, send).await,
            SamplerCommand::Compare { id, runs } => self.compare(id, &runs, cancel, send).await,
            SamplerCommand::Interpolate(spec) => self.interpolate(&spec, cancel, send).await,
            SamplerCommand::Edit(spec) => self.edit(&spec, cancel, send).await,
            SamplerCommand::Quality(spec) => self.quality(&spec, cancel, send).await,
            SamplerCommand::WarmUp { model, schedule } => {
                self.warm_up(model, schedule, cancel).await
            }
            SamplerCommand::ExportGif {
                frames,
                delay_ms,
                scale,
                path,
            } => {
                let frames: Vec<RgbImage> = frames.iter().map(GifFrame::image).collect();
                let n = frames.len();
                save_gif(&frames, delay_ms, scale, &path, |i| {
                    send(SamplerEvent::Progress(i + 1, n));
                })
                .map(|()| {
                    send(SamplerEvent::Saved(format!(
                        "wrote {} ({n} frames)",
                        path.display()
                    )));
                })
            }
        };
        if let Err(e) = result {
            send(SamplerEvent::Failed {
                id,
                message: e.to_string(),
            });
        }
    }
}

impl SamplerJob {
    fn model(&mut self, spec: ModelSpec, schedule: ScheduleConfig) -> Result<Arc<dyn Denoiser>> {
        let key = (spec, ScheduleKey::from(schedule));
        if let Some(m) = self.models.get(&key) {
            return Ok(m.clone());
        }
        if spec.unet {
            return Ok(self.unet(spec.weights)? as Arc<dyn Denoiser>);
        }
        let mnist = if let Some(m) = &self.mnist {
            m.clone()
        } else {
            let m = Arc::new(Mnist::embedded()?);
            self.mnist = Some(m.clone());
            m
        };
        let count = spec.count.clamp(1, mnist.len());
        let sched = Arc::new(NoiseSchedule::new(schedule)?);
        let model: Arc<dyn Denoiser> = Arc::new(ExactDenoiser::new(
            &mnist.images(count),
            [1, SIDE, SIDE],
            sched,
            &self.device,
        )?);
        self.models.retain(|k, _| k.1 == key.1); // keep one schedule's models
        self.models.insert(key, model.clone());
        Ok(model)
    }

    /// The U-Net with these weights (built once; the shipped net and the last file opened are
    /// kept).
    fn unet(&mut self, weights: WeightsId) -> Result<Arc<UNetDenoiser>> {
        if let Some(m) = self.unets.get(&weights) {
            return Ok(m.clone());
        }
        let (model, config) = crate::app::unet_file::get(weights)?.build(&self.device)?;
        let m = Arc::new(UNetDenoiser { model, config });
        self.unets.retain(|k, _| *k == SHIPPED);
        self.unets.insert(weights, m.clone());
        Ok(m)
    }

    /// The run's model (guided when it asks for a label), its scheduler, the batch actually
    /// sampled and the grid's columns.
    fn scheduler(&mut self, spec: &RunSpec) -> Result<RunModel> {
        // The row-per-digit layout only where labels apply (a U-Net that takes digits).
        let guidance = if spec.model.takes_digits() {
            spec.guidance
        } else {
            GuidanceSettings {
                label: LabelPick::Any,
                ..spec.guidance
            }
        };
        let (batch, cols) = guidance.layout(spec.batch);
        let schedule = Arc::new(NoiseSchedule::new(spec.schedule)?);
        let labels = guidance.labels(batch);
        let (model, guided) = match labels {
            Some(labels) => {
                let unet = self.unet(spec.model.weights)?;
                crate::model::guidance::check_labels(unet.num_classes(), &labels)?;
                let g = Arc::new(RecordingGuided::new(
                    Guided::new(unet, labels, f64::from(spec.guidance.scale))?,
                    schedule.clone(),
                ));
                (g.clone() as Arc<dyn Denoiser>, Some(g))
            }
            None => (self.model(spec.model, spec.schedule)?, None),
        };
        let prediction = match model.prediction_type() {
            // A solver's run takes only the schedule from this scheduler; a flow model has no
            // DDPM/DDIM scheduler of its own (its solver checks the pairing).
            crate::diffusion::PredictionType::Flow if spec.sampler.solver_spec().is_some() => {
                crate::diffusion::PredictionType::Epsilon
            }
            p => p,
        };
        let mut config = spec.sampler.scheduler_config(spec.schedule, prediction);
        // Guided runs re-derive ε̂ from the clipped x̂0 (see `use_clipped_model_output`).
        config.use_clipped_model_output = guided.is_some();
        Ok(RunModel {
            model,
            guided,
            scheduler: Scheduler::with_schedule(config, schedule)?,
            batch,
            cols,
        })
    }

    /// Runs `spec`, calling `on_frame` with each step's frame, then returns x_0's frame.
    pub(in crate::app) async fn run_frames(
        &mut self,
        spec: &RunSpec,
        cancel: &AtomicBool,
        mut on_frame: impl FnMut(usize, usize, TrajFrame, f64),
    ) -> Result<Option<TrajFrame>> {
        if spec.batch == 0 || spec.batch > 64 {
            return Err(DiffError::invalid(
                "the batch size must be between 1 and 64",
            ));
        }
        let RunModel {
            model,
            guided,
            scheduler,
            batch,
            cols,
        } = self.scheduler(spec)?;
        let solver = match spec.sampler.solver_spec() {
            Some(s) => {
                Some(s.build(&spec.schedule, model.prediction_type(), spec.sampler.steps)?)
            }
            None => None,
        };
        let total = solver
            .as_ref()
            .map_or(scheduler.timesteps().len(), |s| s.call_timesteps().len());
        let mut error = None;
        let mut last = Instant::now();
        let on_step = async |step: &crate::diffusion::StepFrame| match frame_of(
            step,
            cols,
            guided.as_ref().and_then(|g| g.take()),
        )
        .await
        {
            Ok(f) => {
                let ms = last.elapsed().as_secs_f64() * 1e3;
                last = Instant::now();
                on_frame(step.index, total, f, ms);
            }
            Err(e) => error = Some(e),
        };
        // An unguided U-Net's calls go partly to the page's model workers when it has them.
        let workers = guided
            .is_none()
            .then(|| self.model_workers(spec.model))
            .flatten();
        let pieces = self.pieces(workers.as_deref());
        let x0 = match solver {
            // A solver after DDIM: one frame per model call (the scrubber moves over NFE).
            Some(solver) => {
                stepped::solve_seeded(
                    model.as_ref(),
                    solver,
                    scheduler.schedule(),
                    spec.seed,
                    batch,
                    pieces,
                    cancel,
                    &self.device,
                    on_step,
                )
                .await?
            }
            None => {
                stepped::sample_seeded(
                    model.as_ref(),
                    &scheduler,
                    spec.seed,
                    batch,
                    pieces,
                    cancel,
                    &self.device,
                    on_step,
                )
                .await?
            }
        };
        if let Some(e) = error {
            return Err(e);
        }
        match x0 {
            Some(x) => Ok(Some(final_frame(&x, cols).await?)),
            None => Ok(None),
        }
    }

    async fn run(
        &mut self,
        spec: &RunSpec,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        // Build (or find) the model first: like the CLI's "sampled in", the run's time is the
        // sampling alone.
        self.model(spec.model, spec.schedule)?;
        // The run keeps every step's pictures for scrubbing: clamp a batch that would not fit.
        let fitted = self.fit_memory(spec)?;
        if let Some((_, message)) = &fitted {
            send(SamplerEvent::Notice(message.clone()));
        }
        let spec = fitted.as_ref().map_or(spec, |(s, _)| s);
        let started = Instant::now();
        let id = spec.id;
        let last = self
            .run_frames(spec, cancel, |index, total, frame, step_ms| {
                send(SamplerEvent::Step {
                    id,
                    index,
                    total,
                    frame,
                    step_ms,
                });
            })
            .await?;
        match last {
            Some(last) => send(SamplerEvent::Done {
                id,
                last,
                total_ms: started.elapsed().as_secs_f64() * 1e3,
            }),
            None => send(SamplerEvent::Cancelled(id)),
        }
        Ok(())
    }

    async fn compare(
        &mut self,
        id: u64,
        runs: &[RunSpec],
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        Self::check_compare_memory(runs)?;
        for (index, spec) in runs.iter().enumerate() {
            let started = Instant::now();
            let mut frames = Vec::with_capacity(spec.sampler.steps + 1);
            let last = self
                .run_frames(spec, cancel, |step, total, f, _| {
                    frames.push(f);
                    send(SamplerEvent::CompareStep {
                        id,
                        index,
                        done: step + 1,
                        total,
                    });
                })
                .await?;
            let Some(last) = last else {
                send(SamplerEvent::Cancelled(id));
                return Ok(());
            };
            frames.push(last);
            send(SamplerEvent::CompareRun {
                id,
                index,
                frames,
                total_ms: started.elapsed().as_secs_f64() * 1e3,
            });
            send(SamplerEvent::Progress(index + 1, runs.len()));
        }
        Ok(())
    }
}
