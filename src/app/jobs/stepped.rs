//! The core's sampling loops, one step per poll: the same [`SampleRun`] steps as
//! [`crate::diffusion::sample_loop`], with a step boundary ([`yield_now`]) after each, so a job
//! on the frame loop gives the page back between U-Net steps. With `piece`, a model whose items
//! are independent runs a step's batch that many images at a time, with a step boundary after
//! each piece: a U-Net step of 16 digits takes a page's CPU well over a frame.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Device, Tensor};

use super::pieces::{Pieces, forward_in_pieces, offer};
use super::thread::yield_now;
use crate::diffusion::noise::{initial_noise, step_noise};
use crate::diffusion::{Denoiser, SampleRun, Scheduler, StepFrame};
use crate::error::Result;

/// [`crate::diffusion::sample_loop`], stepped: x_0, or `None` when `cancel` was set.
pub async fn sample_loop<N>(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: Tensor<4>,
    noise: N,
    piece: Option<Pieces<'_>>,
    cancel: &AtomicBool,
    on_step: impl AsyncFnMut(&StepFrame),
) -> Result<Option<Tensor<4>>>
where
    N: FnMut(usize, [usize; 4]) -> Tensor<4>,
{
    let run = SampleRun::new(denoiser, scheduler, x_t, noise)?;
    drive(denoiser, run, piece, cancel, on_step).await
}

/// Images per piece of a U-Net step now, from `base` per thread: one for each thread the CPU
/// kernels run on (the page's main thread and its kernel workers, which come up after the app:
/// difflab-kernels' `helpers`), so that a piece takes about as long with workers as without.
pub fn piece_now(base: usize) -> usize {
    base * (1 + difflab_kernels::helpers::ready_helpers())
}

/// [`crate::diffusion::sample_seeded`], stepped: the same noises, so the same samples.
#[allow(clippy::too_many_arguments)]
pub async fn sample_seeded(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    seed: u64,
    batch: usize,
    piece: Option<Pieces<'_>>,
    cancel: &AtomicBool,
    device: &Device,
    on_step: impl AsyncFnMut(&StepFrame),
) -> Result<Option<Tensor<4>>> {
    let [c, h, w] = denoiser.sample_shape();
    let x_t = initial_noise(seed, [batch, c, h, w], device);
    sample_loop(
        denoiser,
        scheduler,
        x_t,
        |k, shape| step_noise(seed, k, shape, device),
        piece,
        cancel,
        on_step,
    )
    .await
}

/// A solver after DDIM, stepped: one model call per poll (with `piece`, a model whose items
/// are independent runs a call's batch that many images at a time, a poll each), from the same
/// noises as [`sample_seeded`] (x_T from `seed`, call k's noise from `seed` and k). x_0, or
/// `None` when `cancel` was set.
#[allow(clippy::too_many_arguments)]
pub async fn solve_seeded(
    denoiser: &dyn Denoiser,
    solver: Box<dyn crate::diffusion::solvers::Solver>,
    schedule: &crate::diffusion::NoiseSchedule,
    seed: u64,
    batch: usize,
    piece: Option<Pieces<'_>>,
    cancel: &AtomicBool,
    device: &Device,
    on_step: impl AsyncFnMut(&StepFrame),
) -> Result<Option<Tensor<4>>> {
    let [c, h, w] = denoiser.sample_shape();
    let x_t = initial_noise(seed, [batch, c, h, w], device);
    let run =
        crate::diffusion::solvers::SolverRun::new(denoiser, solver, schedule, x_t, |k, shape| {
            step_noise(seed, k, shape, device)
        })?;
    drive(denoiser, run, piece, cancel, on_step).await
}

/// A run that takes one model call at a time: DDPM/DDIM's [`SampleRun`] and a solver's
/// [`SolverRun`](crate::diffusion::solvers::SolverRun), driven by the same loop ([`drive`]).
trait StepRun {
    fn next_input(&self) -> Option<(Tensor<4>, usize)>;
    fn next_step(&mut self) -> Option<Result<StepFrame>>;
    fn step_with(&mut self, out: Tensor<4>) -> Result<StepFrame>;
    fn current(&self) -> &Tensor<4>;
}

impl<N: FnMut(usize, [usize; 4]) -> Tensor<4>> StepRun for SampleRun<'_, N> {
    fn next_input(&self) -> Option<(Tensor<4>, usize)> {
        SampleRun::next_input(self)
    }
    fn next_step(&mut self) -> Option<Result<StepFrame>> {
        SampleRun::next_step(self)
    }
    fn step_with(&mut self, out: Tensor<4>) -> Result<StepFrame> {
        SampleRun::step_with(self, out)
    }
    fn current(&self) -> &Tensor<4> {
        SampleRun::current(self)
    }
}

impl<N: FnMut(usize, [usize; 4]) -> Tensor<4>> StepRun
    for crate::diffusion::solvers::SolverRun<'_, N>
{
    fn next_input(&self) -> Option<(Tensor<4>, usize)> {
        Self::next_input(self)
    }
    fn next_step(&mut self) -> Option<Result<StepFrame>> {
        Self::next_step(self)
    }
    fn step_with(&mut self, out: Tensor<4>) -> Result<StepFrame> {
        Self::step_with(self, out)
    }
    fn current(&self) -> &Tensor<4> {
        Self::current(self)
    }
}

/// Runs `run` to its end, a model call per poll; with `piece`, a model whose items are
/// independent runs a call's batch that many images at a time, a poll each. x_0, or `None`
/// when `cancel` was set.
async fn drive(
    denoiser: &dyn Denoiser,
    mut run: impl StepRun,
    piece: Option<Pieces<'_>>,
    cancel: &AtomicBool,
    mut on_step: impl AsyncFnMut(&StepFrame),
) -> Result<Option<Tensor<4>>> {
    let piece = piece.filter(|_| denoiser.items_independent());
    // With model workers the calls' pieces go to them, not to this thread's kernel helpers.
    let _paused = piece
        .and_then(|p| p.workers)
        .map(|_| difflab_kernels::helpers::pause());
    // The next call's offer, made as soon as its input is known.
    let mut offered = None;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let Some((x, t)) = run.next_input() else {
            return Ok(Some(run.current().clone()));
        };
        let b = x.dims()[0];
        match piece.filter(|p| p.images < b) {
            None => match run.next_step() {
                Some(frame) => on_step(&frame?).await,
                None => return Ok(Some(run.current().clone())),
            },
            Some(p) => {
                let made = match offered.take() {
                    Some(o) => Some(o),
                    None => offer(p, &x, t).await?,
                };
                let Some(out) = forward_in_pieces(denoiser, x, t, p.images, made, cancel).await?
                else {
                    return Ok(None);
                };
                // The step's update, then (a poll later) its frames for the UI: together they
                // were the slowest poll of a page's run. The workers start on the next call
                // before the frames are made.
                let frame = run.step_with(out)?;
                if let Some((x, t)) = run.next_input() {
                    offered = offer(p, &x, t).await?;
                }
                yield_now().await;
                on_step(&frame).await;
            }
        }
        yield_now().await;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::diffusion::scheduler::{PredictionType, SamplerKind, SchedulerConfig};
    use crate::diffusion::{NoiseSchedule, ScheduleConfig, TimestepSpacing, sample_seeded};
    use crate::model::ExactDenoiser;
    use crate::tensor_util::to_vec;

    /// Polls `f` to the end with a no-op waker; its output and how many polls it took.
    fn drive<T>(f: impl Future<Output = T>) -> (T, usize) {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        for polls in 1.. {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return (v, polls);
            }
        }
        unreachable!()
    }

    /// An exact denoiser on `images` 4 × 4 images (pixel i of image k: (i·(k + 2)) mod `m`,
    /// scaled to [−1, 1)) and DDIM with η = 1 over `steps` steps: a run with noise in every step.
    pub(in crate::app::jobs) fn exact_and_ddim(
        images: usize,
        m: usize,
        steps: usize,
    ) -> (ExactDenoiser, Scheduler) {
        let images: Vec<Vec<f32>> = (0..images)
            .map(|k| {
                (0..16)
                    .map(|i| ((i * (k + 2)) % m) as f32 / (m as f32 / 2.0) - 1.0)
                    .collect()
            })
            .collect();
        let scheduler = Scheduler::new(SchedulerConfig {
            prediction_type: PredictionType::Sample,
            num_inference_steps: steps,
            spacing: TimestepSpacing::Leading,
            sampler: SamplerKind::Ddim {
                eta: 1.0,
                set_alpha_to_one: true,
            },
            ..SchedulerConfig::default()
        })
        .unwrap();
        let schedule = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
        let model = ExactDenoiser::new(&images, [1, 4, 4], schedule, &Device::flex()).unwrap();
        (model, scheduler)
    }

    #[test]
    fn pieces_of_a_batch_give_the_same_samples_one_piece_per_poll() {
        let device = Device::flex();
        let (model, scheduler) = exact_and_ddim(3, 7, 6);
        let cancel = AtomicBool::new(false);
        let core = sample_seeded(&model, &scheduler, 9, 5, &cancel, &device, |_| {}).unwrap();
        let whole = drive(sample_seeded_stepped(
            &model, &scheduler, None, &cancel, &device,
        ));
        let pieces = drive(sample_seeded_stepped(
            &model,
            &scheduler,
            Some(2.into()),
            &cancel,
            &device,
        ));
        let values = |x: Option<Tensor<4>>| to_vec(x.unwrap()).unwrap();
        let core = values(core);
        assert_eq!(values(whole.0.unwrap()), core);
        assert_eq!(values(pieces.0.unwrap()), core);
        // Whole steps: one poll each, and the last; pieces of 2, 2 and 1, then the step's
        // update: five polls a step.
        assert_eq!(whole.1, 6 + 1);
        assert_eq!(pieces.1, 6 * 5 + 1);
    }

    /// A solver's calls in pieces give the same samples as whole calls and as the core's
    /// `SolverRun`, with a poll per piece; Euler ancestral, so the per-call noise is checked too.
    #[test]
    fn a_solver_in_pieces_gives_the_same_samples() {
        use crate::diffusion::solvers::{SolverKind, SolverSpec};
        let device = Device::flex();
        let images: Vec<Vec<f32>> = (0..3)
            .map(|k| {
                (0..16)
                    .map(|i| ((i * (k + 3)) % 5) as f32 / 2.5 - 1.0)
                    .collect()
            })
            .collect();
        let schedule = Arc::new(NoiseSchedule::new(ScheduleConfig::default()).unwrap());
        let model = ExactDenoiser::new(&images, [1, 4, 4], schedule.clone(), &device).unwrap();
        let spec = SolverSpec {
            kind: SolverKind::EulerAncestral,
            order: None,
            karras: false,
        };
        let solver = || {
            spec.build(&ScheduleConfig::default(), PredictionType::Sample, 5)
                .unwrap()
        };
        let cancel = AtomicBool::new(false);
        let run = |piece| {
            drive(solve_seeded(
                &model,
                solver(),
                &schedule,
                4,
                5,
                piece,
                &cancel,
                &device,
                async |_| {},
            ))
        };
        let (whole, whole_polls) = run(None);
        let (pieces, piece_polls) = run(Some(2.into()));
        let values = |x: crate::Result<Option<Tensor<4>>>| to_vec(x.unwrap().unwrap()).unwrap();
        let mut core = crate::diffusion::solvers::SolverRun::new(
            &model,
            solver(),
            &schedule,
            initial_noise(4, [5, 1, 4, 4], &device),
            |k, shape| step_noise(4, k, shape, &device),
        )
        .unwrap();
        while let Some(frame) = core.next_step() {
            frame.unwrap();
        }
        let core = to_vec(core.current().clone()).unwrap();
        assert!(core.iter().all(|v| v.is_finite()));
        assert_eq!(values(whole), core);
        assert_eq!(values(pieces), core);
        // Five calls: one poll each and the last; pieces of 2, 2 and 1, then the update: five
        // polls a call.
        assert_eq!(whole_polls, 5 + 1);
        assert_eq!(piece_polls, 5 * 5 + 1);
    }

    fn sample_seeded_stepped<'a>(
        model: &'a ExactDenoiser,
        scheduler: &'a Scheduler,
        piece: Option<Pieces<'a>>,
        cancel: &'a AtomicBool,
        device: &'a Device,
    ) -> impl Future<Output = Result<Option<Tensor<4>>>> + 'a {
        super::sample_seeded(model, scheduler, 9, 5, piece, cancel, device, async |_| {})
    }
}
