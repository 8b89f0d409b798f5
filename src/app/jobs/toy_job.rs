//! The 2-D playground's compute: training the MLP live, sampling point clouds with DDPM and
//! DDIM from the same starting points, and the ε̂ field on a grid. A [`Job`] on its own thread
//! ("difflab-toy"), so training never blocks the other panels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use web_time::Instant;

use burn::tensor::{Device, Tensor};

use super::sampler::{SamplerChoice, SamplerSettings};
use super::stepped;
use super::thread::{Drive, Job, WorkerThread, yield_now};
use crate::app::settings::ToyModel;
use crate::diffusion::{NoiseSchedule, PredictionType, ScheduleConfig, Scheduler, StepFrame};
use crate::error::{DiffError, Result};
use crate::model::toy_mlp::{ToyMlp, ToyMlpConfig};
use crate::model::{Denoiser, ExactDenoiser};
use crate::tensor_util::{tensor4, to_vec};
use crate::train::toy::{ToyTrainConfig, ToyTrainer, points_of};

#[path = "toy_flow.rs"]
mod flow;
pub use flow::{FLOW_MODELS, FLOW_STEPS, GRID_LINES, GRID_POINTS, ToyFlow};

/// Point clouds, one per kept step.
type Frames = Vec<Vec<[f32; 2]>>;
/// A grid point and ε̂ there.
pub type Arrow = ([f32; 2], [f32; 2]);

/// Frames kept per sampled trajectory.
pub const MAX_FRAMES: usize = 200;

/// Commands.
pub enum ToyCommand {
    /// Train until paused (any newer command pauses). `reset` starts a fresh model on `data`.
    Train {
        /// The training points.
        data: Arc<Vec<[f32; 2]>>,
        /// Start over.
        reset: bool,
        /// Seed.
        seed: u64,
        /// The schedule.
        schedule: ScheduleConfig,
    },
    /// Sample `n` points with DDPM and with `ddim` from the same x_T.
    Sample {
        /// Points.
        n: usize,
        /// Steps, η and spacing (the DDIM run uses η; the DDPM run fixed_small).
        sampler: SamplerSettings,
        /// Seed of x_T and the noise.
        seed: u64,
        /// MLP or exact.
        model: ToyModel,
        /// The training points (for the exact model).
        data: Arc<Vec<[f32; 2]>>,
        /// The schedule.
        schedule: ScheduleConfig,
        /// Go on training afterwards (training was running when this was asked for).
        then_train: bool,
    },
    /// ε̂ on a grid over [−3, 3]² at timestep t (0-based), for each model asked for.
    Field {
        /// Timestep.
        t: usize,
        /// Points per side.
        grid: usize,
        /// The models (an untrained MLP is left out when the exact model is also asked for).
        models: Vec<ToyModel>,
        /// The training points (for the exact model).
        data: Arc<Vec<[f32; 2]>>,
        /// The schedule.
        schedule: ScheduleConfig,
        /// Go on training afterwards.
        then_train: bool,
    },
    /// Diffusion, flow matching and reflow side by side (see `toy_flow.rs`).
    Flow {
        /// The training points.
        data: Arc<Vec<[f32; 2]>>,
        /// Seed of the training and the sampling noise.
        seed: u64,
        /// The schedule (diffusion's; flow matching uses its T).
        schedule: ScheduleConfig,
        /// Training steps of each model.
        train_steps: usize,
        /// Points sampled.
        n: usize,
        /// Paths kept.
        paths: usize,
        /// Go on training afterwards.
        then_train: bool,
    },
}

/// Events.
pub enum ToyEvent {
    /// Training progressed.
    Trained {
        /// New losses since the last event.
        losses: Vec<f32>,
        /// Steps so far.
        step: usize,
        /// Recent speed.
        steps_per_s: f64,
    },
    /// Sampled trajectories (each frame all points), DDPM then DDIM.
    Sampled {
        /// Timestep of each kept frame (`None` for the final x_0).
        t: Vec<Option<usize>>,
        /// DDPM's frames.
        ddpm: Vec<Vec<[f32; 2]>>,
        /// DDIM's frames.
        ddim: Vec<Vec<[f32; 2]>>,
        /// Wall time.
        ms: f64,
    },
    /// The fields: grid points and ε̂ there, per model.
    Field {
        /// Its t.
        t: usize,
        /// The MLP's training step when it was computed.
        step: usize,
        /// (model, [(point, ε̂)]).
        fields: Vec<(ToyModel, Vec<Arrow>)>,
    },
    /// The flow comparison's progress: what it does, steps done, of how many.
    FlowProgress {
        /// What it does now.
        phase: &'static str,
        /// Done.
        done: usize,
        /// Of.
        total: usize,
    },
    /// The flow comparison's result.
    Flow(Box<ToyFlow>),
    /// Something failed.
    Failed(String),
}

/// The playground's thread.
pub type ToyWorker = WorkerThread<ToyJob>;

/// Starts "difflab-toy".
pub fn spawn_toy_worker(device: Device, ctx: egui::Context, drive: Drive) -> Result<ToyWorker> {
    WorkerThread::start(
        "difflab-toy",
        ToyJob {
            device,
            trainer: None,
        },
        ctx,
        drive,
    )
}

/// The playground's state on its thread.
pub struct ToyJob {
    device: Device,
    trainer: Option<ToyTrainer>,
}

impl Job for ToyJob {
    type Command = ToyCommand;
    type Event = ToyEvent;

    fn supersedable(_: &ToyCommand) -> bool {
        true
    }

    async fn handle(&mut self, cmd: ToyCommand, cancel: &AtomicBool, send: &dyn Fn(ToyEvent)) {
        let r = match cmd {
            ToyCommand::Train {
                data,
                reset,
                seed,
                schedule,
            } => self.train(data, reset, seed, schedule, cancel, send).await,
            ToyCommand::Sample {
                n,
                sampler,
                seed,
                model,
                data,
                schedule,
                then_train,
            } => match self
                .sample(n, sampler, seed, model, &data, schedule, cancel, send)
                .await
            {
                Ok(()) => self.train_on(then_train, cancel, send).await,
                Err(e) => Err(e),
            },
            ToyCommand::Field {
                t,
                grid,
                models,
                data,
                schedule,
                then_train,
            } => match self.field(t, grid, &models, &data, schedule, send) {
                Ok(()) => self.train_on(then_train, cancel, send).await,
                Err(e) => Err(e),
            },
            ToyCommand::Flow {
                data,
                seed,
                schedule,
                train_steps,
                n,
                paths,
                then_train,
            } => match Box::pin(self.flow(
                &data,
                seed,
                schedule,
                train_steps,
                n,
                paths,
                cancel,
                send,
            ))
            .await
            {
                Ok(()) => self.train_on(then_train, cancel, send).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = r {
            send(ToyEvent::Failed(e.to_string()));
        }
    }
}

impl ToyJob {
    async fn train(
        &mut self,
        data: Arc<Vec<[f32; 2]>>,
        reset: bool,
        seed: u64,
        schedule: ScheduleConfig,
        cancel: &AtomicBool,
        send: &dyn Fn(ToyEvent),
    ) -> Result<()> {
        if reset || self.trainer.is_none() {
            self.trainer = Some(ToyTrainer::new(
                (*data).clone(),
                Arc::new(NoiseSchedule::new(schedule)?),
                &ToyMlpConfig::new(),
                ToyTrainConfig {
                    seed,
                    ..Default::default()
                },
                &self.device,
            )?);
        }
        self.train_on(true, cancel, send).await
    }

    /// Trains the current model until cancelled (when `go` and there is one).
    /// A step boundary after every training step: the frame loop can stop between any two.
    async fn train_on(
        &mut self,
        go: bool,
        cancel: &AtomicBool,
        send: &dyn Fn(ToyEvent),
    ) -> Result<()> {
        let Some(trainer) = self.trainer.as_mut().filter(|_| go) else {
            return Ok(());
        };
        while !cancel.load(Ordering::Relaxed) {
            let started = Instant::now();
            let mut losses = Vec::with_capacity(25);
            for _ in 0..25 {
                losses.push(trainer.train_step()?);
                yield_now().await;
            }
            send(ToyEvent::Trained {
                losses,
                step: trainer.step,
                steps_per_s: 25.0 / started.elapsed().as_secs_f64().max(1e-9),
            });
        }
        Ok(())
    }

    fn model(
        &self,
        model: ToyModel,
        data: &[[f32; 2]],
        schedule: ScheduleConfig,
    ) -> Result<Box<dyn Denoiser>> {
        Ok(match model {
            ToyModel::Mlp => {
                let m: ToyMlp = self
                    .trainer
                    .as_ref()
                    .ok_or_else(|| {
                        DiffError::invalid("train the model first (or pick the exact model)")
                    })?
                    .model()?;
                Box::new(m)
            }
            ToyModel::Exact => {
                let points: Vec<Vec<f32>> = data.iter().map(|p| p.to_vec()).collect();
                Box::new(ExactDenoiser::new(
                    &points,
                    [2, 1, 1],
                    Arc::new(NoiseSchedule::new(schedule)?),
                    &self.device,
                )?)
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn sample(
        &mut self,
        n: usize,
        sampler: SamplerSettings,
        seed: u64,
        model: ToyModel,
        data: &[[f32; 2]],
        schedule: ScheduleConfig,
        cancel: &AtomicBool,
        send: &dyn Fn(ToyEvent),
    ) -> Result<()> {
        if n == 0 || n > 10_000 {
            return Err(DiffError::invalid("sample between 1 and 10,000 points"));
        }
        let started = Instant::now();
        let m = self.model(model, data, schedule)?;
        let keep_every = sampler.steps.div_ceil(MAX_FRAMES).max(1);
        let run = async |s: SamplerSettings| -> Result<Option<(Vec<Option<usize>>, Frames)>> {
            let prediction: PredictionType = m.prediction_type();
            let mut config = s.scheduler_config(schedule, prediction);
            // Points are not images: no clipping of x̂0 to [−1, 1].
            config.clip_sample = None;
            let scheduler = Scheduler::new(config)?;
            let mut ts = Vec::new();
            let mut frames = Vec::new();
            let mut err = None;
            let total = scheduler.timesteps().len();
            let on_step = async |f: &StepFrame| {
                if f.index.is_multiple_of(keep_every) || f.index + 1 == total {
                    match points_of(f.x_t.clone()) {
                        Ok(p) => {
                            ts.push(Some(f.t));
                            frames.push(p);
                        }
                        Err(e) => err = Some(e),
                    }
                }
            };
            let x0 = stepped::sample_seeded(
                m.as_ref(),
                &scheduler,
                seed,
                n,
                None,
                cancel,
                &self.device,
                on_step,
            )
            .await?;
            if let Some(e) = err {
                return Err(e);
            }
            let Some(x0) = x0 else { return Ok(None) };
            ts.push(None);
            frames.push(points_of(x0)?);
            Ok(Some((ts, frames)))
        };
        let ddpm = SamplerSettings {
            sampler: SamplerChoice::DdpmFixedSmall,
            ..sampler
        };
        let ddim = SamplerSettings {
            sampler: SamplerChoice::Ddim,
            ..sampler
        };
        let (Some((t, a)), Some((_, b))) = (run(ddpm).await?, run(ddim).await?) else {
            return Ok(());
        };
        send(ToyEvent::Sampled {
            t,
            ddpm: a,
            ddim: b,
            ms: started.elapsed().as_secs_f64() * 1e3,
        });
        Ok(())
    }

    fn field(
        &mut self,
        t: usize,
        grid: usize,
        models: &[ToyModel],
        data: &[[f32; 2]],
        schedule: ScheduleConfig,
        send: &dyn Fn(ToyEvent),
    ) -> Result<()> {
        let sched = NoiseSchedule::new(schedule)?;
        sched.check_t(t)?;
        let g = grid.clamp(2, 64);
        let pts: Vec<[f32; 2]> = (0..g * g)
            .map(|i| {
                let (ix, iy) = (i % g, i / g);
                [
                    -3.0 + 6.0 * ix as f32 / (g - 1) as f32,
                    -3.0 + 6.0 * iy as f32 / (g - 1) as f32,
                ]
            })
            .collect();
        let flat: Vec<f32> = pts.iter().flat_map(|p| [p[0], p[1]]).collect();
        let x = tensor4(flat, [g * g, 2, 1, 1], &self.device);
        let alpha_prod = sched.alphas_cumprod[t];
        let mut fields = Vec::new();
        for &model in models {
            if model == ToyModel::Mlp && self.trainer.is_none() && models.len() > 1 {
                continue;
            }
            let m = self.model(model, data, schedule)?;
            let out = m.forward(x.clone(), &vec![t; g * g])?;
            let eps = epsilon_field(m.prediction_type(), out, x.clone(), alpha_prod)?;
            let arrows = pts.iter().zip(eps).map(|(p, e)| (*p, e)).collect();
            fields.push((model, arrows));
        }
        let step = self.trainer.as_ref().map_or(0, |tr| tr.step);
        send(ToyEvent::Field { t, step, fields });
        Ok(())
    }
}

/// The ε̂ field from a model's output at points x_t (`[N, 2, 1, 1]`) and ᾱ_t, whatever the model
/// predicts: ε as is, x_0 through ε̂ = (x_t − √ᾱ·x̂0)/√(1−ᾱ), v through ε̂ = √ᾱ·v + √(1−ᾱ)·x_t
/// (the scheduler's own conversion).
pub fn epsilon_field(
    prediction: PredictionType,
    output: Tensor<4>,
    x_t: Tensor<4>,
    alpha_prod: f64,
) -> Result<Vec<[f32; 2]>> {
    let (_, eps) =
        crate::diffusion::scheduler::predict_x0_and_eps(prediction, output, x_t, alpha_prod);
    Ok(to_vec(eps)?.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
}
