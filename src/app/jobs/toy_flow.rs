//! The playground's flow-matching comparison (a child of `toy_job`): the MLP trained on
//! diffusion's objective and on flow matching's, side by side on the same data and seed, then
//! reflow; each sampled with 1, 2, 5 and 20 Euler steps from the same noise, the straightness of
//! their 20-step paths, and a grid of points carried by each from noise to data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;
use web_time::Instant;

use super::{Frames, ToyEvent, ToyJob};
use crate::app::jobs::stepped;
use crate::app::jobs::thread::yield_now;
use crate::diffusion::flow_matching::{flow_euler, path_straightness};
use crate::diffusion::noise::{gaussian, initial_noise};
use crate::diffusion::{
    NoiseSchedule, PredictionType, ScheduleConfig, Scheduler, SchedulerConfig, TimestepSpacing,
};
use crate::error::Result;
use crate::model::Denoiser;
use crate::model::toy_mlp::ToyMlpConfig;
use crate::tensor_util::tensor4;
use crate::train::toy::{ToyObjective, ToyTrainConfig, ToyTrainer, points_of};

/// The Euler step counts each model samples with.
pub const FLOW_STEPS: [usize; 4] = [1, 2, 5, 20];
/// The three models, in the order of [`ToyFlow`]'s arrays.
pub const FLOW_MODELS: [&str; 3] = ["diffusion (DDIM)", "flow matching", "reflow"];
/// Grid lines each way, and points along each line, of the deformed grid.
pub const GRID_LINES: usize = 13;
/// Points along each grid line.
pub const GRID_POINTS: usize = 41;
/// The (noise, sample) pairs reflow trains on, at most.
const REFLOW_PAIRS: usize = 4000;
/// Euler steps that make reflow's pairs.
const PAIR_STEPS: usize = 50;

/// What the comparison found.
#[derive(Clone, Debug)]
pub struct ToyFlow {
    /// Training steps of each model (reflow: as many again on the pairs).
    pub train_steps: usize,
    /// Each model's last losses (mean of the last 100 steps).
    pub losses: [f32; 3],
    /// Per model, per entry of [`FLOW_STEPS`]: the samples from the same noise.
    pub samples: [Vec<Vec<[f32; 2]>>; 3],
    /// Per model: every state of the 20-step run, frame by frame, of the first particles.
    pub paths: [Frames; 3],
    /// Per model: mean path length over the distance between its ends (20 steps, all points).
    pub straightness: [Option<f64>; 3],
    /// Per model: the grid's points at every state of a 20-step run (lines across, then down).
    pub grid: [Frames; 3],
    /// Wall time.
    pub ms: f64,
}

/// The noise-space grid: [`GRID_LINES`] horizontal then as many vertical lines over [−2.4, 2.4]²,
/// [`GRID_POINTS`] points each.
pub fn grid_points() -> Vec<[f32; 2]> {
    let r = 2.4f32;
    let at = |i: usize, n: usize| -r + 2.0 * r * i as f32 / (n - 1) as f32;
    let mut pts = Vec::with_capacity(2 * GRID_LINES * GRID_POINTS);
    for l in 0..GRID_LINES {
        for p in 0..GRID_POINTS {
            pts.push([at(p, GRID_POINTS), at(l, GRID_LINES)]);
        }
    }
    for l in 0..GRID_LINES {
        for p in 0..GRID_POINTS {
            pts.push([at(l, GRID_LINES), at(p, GRID_POINTS)]);
        }
    }
    pts
}

fn to_tensor(points: &[[f32; 2]], device: &burn::tensor::Device) -> Tensor<4> {
    let flat: Vec<f32> = points.iter().flat_map(|p| [p[0], p[1]]).collect();
    tensor4(flat, [points.len(), 2, 1, 1], device)
}

impl ToyJob {
    /// The comparison; `None` when cancelled.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn flow(
        &mut self,
        data: &Arc<Vec<[f32; 2]>>,
        seed: u64,
        schedule: ScheduleConfig,
        train_steps: usize,
        n: usize,
        paths: usize,
        cancel: &AtomicBool,
        send: &dyn Fn(ToyEvent),
    ) -> Result<()> {
        let started = Instant::now();
        let sched = Arc::new(NoiseSchedule::new(schedule)?);
        let t_max = sched.num_timesteps();
        let trainer = |objective| {
            ToyTrainer::new(
                (**data).clone(),
                sched.clone(),
                &ToyMlpConfig::new(),
                ToyTrainConfig {
                    objective,
                    seed,
                    ..Default::default()
                },
                &self.device,
            )
        };
        let mut diffusion = trainer(ToyObjective::Epsilon)?;
        let mut flow = trainer(ToyObjective::Flow)?;
        let total = 3 * train_steps;
        let progress = |phase: &'static str, done: usize| {
            send(ToyEvent::FlowProgress { phase, done, total });
        };
        // Both objectives, a step of each in turn, the same data and seed.
        for k in 0..train_steps {
            diffusion.train_step()?;
            flow.train_step()?;
            if k % 50 == 0 {
                progress("training diffusion and flow matching", 2 * k);
            }
            yield_now().await;
            if cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        let flow_model = flow.model()?;
        // Reflow: the flow model's own (noise, sample) pairs, then training on them.
        progress("sampling reflow's pairs", 2 * train_steps);
        let pairs_n = data.len().clamp(1, REFLOW_PAIRS);
        let z: Vec<f32> = gaussian(seed ^ 0xf10, 7, 2 * pairs_n);
        let z = tensor4(z, [pairs_n, 2, 1, 1], &self.device);
        let states = flow_euler(&flow_model, z.clone(), PAIR_STEPS, t_max)?;
        let ends = points_of(states[PAIR_STEPS].clone())?;
        let starts = points_of(z)?;
        flow.reflow_on(starts.into_iter().zip(ends).collect())?;
        for k in 0..train_steps {
            flow.train_step()?;
            if k % 50 == 0 {
                progress("reflow", 2 * train_steps + k);
            }
            yield_now().await;
            if cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        let reflow_model = flow.model()?;
        let diffusion_model = diffusion.model()?;
        progress("sampling", total);

        // DDIM (η = 0) on trailing timesteps: its first step starts at t = T − 1, pure noise.
        let ddim = |steps| -> Result<Scheduler> {
            let mut config = SchedulerConfig::ddim(schedule, PredictionType::Epsilon, steps, 0.0);
            config.spacing = TimestepSpacing::Trailing;
            config.clip_sample = None;
            Scheduler::with_schedule(config, sched.clone())
        };
        let run = async |model: usize, x: Tensor<4>, steps: usize| -> Result<Option<Frames>> {
            if model == 0 {
                let scheduler = ddim(steps)?;
                let mut frames = vec![points_of(x.clone())?];
                let mut err = None;
                let zeros = |_, shape| Tensor::zeros(shape, &self.device);
                let out = stepped::sample_loop(
                    &diffusion_model as &dyn Denoiser,
                    &scheduler,
                    x,
                    zeros,
                    None,
                    cancel,
                    async |f| match points_of(f.prev_sample.clone()) {
                        Ok(p) => frames.push(p),
                        Err(e) => err = Some(e),
                    },
                )
                .await?;
                if let Some(e) = err {
                    return Err(e);
                }
                Ok(out.map(|_| frames))
            } else {
                let m = if model == 1 {
                    &flow_model
                } else {
                    &reflow_model
                };
                let states = flow_euler(m, x, steps, t_max)?;
                yield_now().await;
                Ok(Some(
                    states
                        .into_iter()
                        .map(points_of)
                        .collect::<Result<Frames>>()?,
                ))
            }
        };
        let z = initial_noise(seed.wrapping_add(1), [n.max(1), 2, 1, 1], &self.device);
        let grid = to_tensor(&grid_points(), &self.device);
        let mut samples: [Vec<Vec<[f32; 2]>>; 3] = Default::default();
        let mut kept_paths: [Frames; 3] = Default::default();
        let mut straightness = [None; 3];
        let mut grids: [Frames; 3] = Default::default();
        for model in 0..3 {
            for &steps in &FLOW_STEPS {
                let Some(frames) = run(model, z.clone(), steps).await? else {
                    return Ok(());
                };
                if steps == 20 {
                    straightness[model] = path_straightness(&frames);
                    kept_paths[model] = frames
                        .iter()
                        .map(|f| f[..paths.min(f.len())].to_vec())
                        .collect();
                }
                samples[model].push(frames.last().cloned().unwrap_or_default());
            }
            let Some(g) = run(model, grid.clone(), 20).await? else {
                return Ok(());
            };
            grids[model] = g;
        }
        send(ToyEvent::Flow(Box::new(ToyFlow {
            train_steps,
            losses: [
                diffusion.recent_loss(100),
                // The flow model's own loss before reflow took over its trainer.
                recent_before(&flow.losses, train_steps),
                flow.recent_loss(100),
            ],
            samples,
            paths: kept_paths,
            straightness,
            grid: grids,
            ms: started.elapsed().as_secs_f64() * 1e3,
        })));
        Ok(())
    }
}

/// The mean of the 100 losses before step `at`.
fn recent_before(losses: &[f32], at: usize) -> f32 {
    let end = at.min(losses.len());
    let start = end.saturating_sub(100);
    let k = (end - start).max(1);
    losses[start..end].iter().sum::<f32>() / k as f32
}
