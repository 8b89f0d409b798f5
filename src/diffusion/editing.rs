//! Editing real images with a trained denoiser: SDEdit (Meng et al. 2021), inpainting with
//! RePaint (Lugmayr et al. 2022) and DDIM inversion (Song et al. 2020, §4.3; Dhariwal & Nichol
//! 2021, appendix F).
//!
//! Every run is seeded and reuses [`super::noise`]'s streams where it can, so that an edit at its
//! extreme setting *is* the plain sample of the same seed: x_T from stream 0 and the variance
//! noise of the sampler's step k from stream k + 1. The noise an edit adds beyond that (the
//! known pixels' re-noising, RePaint's extra passes and jumps) comes from streams of its own,
//! far above the sampling and chain streams (see [`KNOWN_STREAM_BASE`]).

use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use super::denoiser::Denoiser;
use super::forward::q_sample;
use super::noise::{gaussian, initial_noise, step_noise};
use super::sampling::all_finite;
use super::schedule::NoiseSchedule;
use super::scheduler::{Scheduler, SchedulerConfig, predict_x0_and_eps};
use crate::error::{DiffError, Result};
use crate::tensor_util::{tensor4, to_vec};

/// Stream of the noise ε that re-noises the known pixels after step k in pass u of RePaint:
/// `KNOWN_STREAM_BASE + u·2²⁰ + k` (k < T ≤ 100 000 < 2²⁰).
pub const KNOWN_STREAM_BASE: u64 = 2 << 32;
/// Stream of the variance noise of step k in RePaint's pass u ≥ 1 (pass 0 uses
/// [`step_noise`]'s stream k + 1, as plain sampling): `REPASS_STREAM_BASE + u·2²⁰ + k`.
pub const REPASS_STREAM_BASE: u64 = 3 << 32;
/// Stream of the forward noise of RePaint's u-th jump back over step k:
/// `JUMP_STREAM_BASE + u·2²⁰ + k`.
pub const JUMP_STREAM_BASE: u64 = 4 << 32;
/// The most passes per step RePaint may take (keeps the streams apart).
pub const MAX_RESAMPLE: usize = 1000;

fn pass_stream(base: u64, pass: usize, step: usize) -> u64 {
    base + ((pass as u64) << 20) + step as u64
}

/// Seeded noise of `stream` for a batch (item i from seed + i), as [`super::noise`] draws it.
fn stream_noise(seed: u64, stream: u64, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let per_item: usize = shape[1..].iter().product();
    let values: Vec<f32> = (0..shape[0] as u64)
        .flat_map(|i| gaussian(seed.wrapping_add(i), stream, per_item))
        .collect();
    tensor4(values, shape, device)
}

/// The checks [`super::SampleRun::new`] makes: the image's shape and the prediction type.
fn check_inputs(denoiser: &dyn Denoiser, scheduler: &Scheduler, x: &Tensor<4>) -> Result<()> {
    super::denoiser::check_input_shape(denoiser, x, "the image")?;
    super::denoiser::check_prediction(denoiser, scheduler.config().prediction_type)
}

/// The model output at (x_t, t), refused when not finite.
fn model_output(denoiser: &dyn Denoiser, x_t: &Tensor<4>, t: usize) -> Result<Tensor<4>> {
    let out = denoiser.forward(x_t.clone(), &vec![t; x_t.dims()[0]])?;
    if !all_finite(&out)? {
        return Err(DiffError::NonFinite(format!(
            "the model produced non-finite values at t = {t}"
        )));
    }
    Ok(out)
}

/// One reverse step of the sampler at grid index `k` (timestep t_k), with the variance noise
/// `noise(shape)` when the step adds noise. Exactly what [`super::SampleRun`] computes.
fn reverse_step(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: Tensor<4>,
    t: usize,
    noise: impl FnOnce([usize; 4]) -> Tensor<4>,
) -> Result<Tensor<4>> {
    let out = model_output(denoiser, &x_t, t)?;
    let z = scheduler.needs_noise(t).then(|| noise(x_t.dims()));
    Ok(scheduler.step(out, t, x_t, z)?.prev_sample)
}

/// The sampler of SDEdit and inpainting: DDIM (η = 0, trailing timesteps, x̂0 clipped) or DDPM
/// (σ² = β̃), `steps` of them. A guided model's ε̂ is re-derived from the clipped x̂0, as the
/// sampling panel's guided runs do (`use_clipped_model_output`).
pub fn edit_scheduler(
    schedule: &Arc<NoiseSchedule>,
    prediction: super::PredictionType,
    steps: usize,
    ddpm: bool,
    guided: bool,
) -> Result<Scheduler> {
    let mut config = SchedulerConfig::ddim(schedule.config, prediction, steps, 0.0);
    if ddpm {
        config.sampler = super::SamplerKind::Ddpm {
            variance: super::VarianceType::FixedSmall,
        };
    }
    config.use_clipped_model_output = guided;
    Scheduler::with_schedule(config, schedule.clone())
}

// ---------------------------------------------------------------------------------------------
// SDEdit
// ---------------------------------------------------------------------------------------------

/// Where SDEdit starts: the grid index of the largest sampler timestep ≤ t0 (`None` when t0 is
/// below the whole grid, or 0).
pub fn sdedit_start(scheduler: &Scheduler, t0: usize) -> Option<usize> {
    if t0 == 0 {
        return None;
    }
    scheduler.timesteps().iter().position(|&t| t <= t0)
}

/// SDEdit (Meng et al. 2021, Algorithm 1): perturb the guide x0 to an intermediate time,
/// x_{t0} = √ᾱ_{t0}·x0 + √(1−ᾱ_{t0})·ε  (eq. 4 of Ho et al., "perturb"), then run the reverse
/// process from there down to x_0 ("denoise").
///
/// - t0 is rounded down to the sampler's grid: x is noised to t_s, the largest of the
///   scheduler's timesteps ≤ t0, and the steps t_s, t_{s+1}, … are taken (diffusers' img2img
///   does the same). t0 = 0 (or below the grid) returns x0 unchanged.
/// - ε is `initial_noise(seed)` (stream 0) and step k of the grid uses `step_noise(seed, k)`,
///   the noises plain sampling ([`super::sample_seeded`]) uses at the same timesteps. At the
///   top of the grid SDEdit therefore differs from the plain sample of `seed` only in its
///   start: √ᾱ_{t_0}·x0 + √(1−ᾱ_{t_0})·ε instead of ε. With the linear schedule
///   √ᾱ_999 ≈ 0.0064 and 1 − √(1−ᾱ_999) ≈ 2·10⁻⁵, so the two starts differ by at most
///   ≈ 0.0064 per pixel (|x0| ≤ 1); they cannot coincide bit for bit since √ᾱ_T ≠ 0.
pub fn sdedit(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x0: Tensor<4>,
    t0: usize,
    seed: u64,
) -> Result<Tensor<4>> {
    let mut run = SdeditRun::new(denoiser, scheduler, x0, t0, seed)?;
    run.finish()?;
    Ok(run.into_current())
}

/// [`sdedit`] a step at a time (the app shows each step and gives the page back between
/// them): the perturbed start x_{t_s} first, then one reverse step per [`Self::next_step`].
pub struct SdeditRun<'a> {
    denoiser: &'a dyn Denoiser,
    scheduler: &'a Scheduler,
    seed: u64,
    x: Tensor<4>,
    /// The next grid step.
    k: usize,
    /// Where it started (`None`: t0 below the grid, x0 is returned as it is).
    start: Option<usize>,
}

impl<'a> SdeditRun<'a> {
    /// Checks the inputs and perturbs x0 to t_s (the grid's largest timestep ≤ t0).
    pub fn new(
        denoiser: &'a dyn Denoiser,
        scheduler: &'a Scheduler,
        x0: Tensor<4>,
        t0: usize,
        seed: u64,
    ) -> Result<Self> {
        check_inputs(denoiser, scheduler, &x0)?;
        scheduler.schedule().check_t(t0)?;
        let ts = scheduler.timesteps();
        let start = sdedit_start(scheduler, t0);
        let x = match start {
            Some(s) => {
                let shape = x0.dims();
                let device = x0.device();
                // Perturb: x_{t_s} = q_sample(x0, t_s, ε).
                let eps = initial_noise(seed, shape, &device);
                q_sample(scheduler.schedule(), x0, &vec![ts[s]; shape[0]], eps)?
            }
            None => x0,
        };
        Ok(Self {
            denoiser,
            scheduler,
            seed,
            x,
            k: start.unwrap_or(ts.len()),
            start,
        })
    }

    /// The timestep the input was noised to (`None`: none, x0 is kept).
    pub fn start_t(&self) -> Option<usize> {
        self.start.map(|s| self.scheduler.timesteps()[s])
    }

    /// The reverse steps this run takes in all.
    pub fn total(&self) -> usize {
        self.start
            .map_or(0, |s| self.scheduler.timesteps().len() - s)
    }

    /// Denoise: the reverse step at t_k with plain sampling's noise of step k; the timestep it
    /// stepped from, or `None` when x_0 is reached.
    pub fn next_step(&mut self) -> Option<Result<usize>> {
        let &t = self.scheduler.timesteps().get(self.k)?;
        let (k, seed) = (self.k, self.seed);
        let device = self.x.device();
        let x = self.x.clone();
        let stepped = reverse_step(self.denoiser, self.scheduler, x, t, |s| {
            step_noise(seed, k, s, &device)
        });
        self.k += 1;
        Some(stepped.map(|x| {
            self.x = x;
            t
        }))
    }

    /// Every step left.
    pub fn finish(&mut self) -> Result<()> {
        while let Some(r) = self.next_step() {
            r?;
        }
        Ok(())
    }

    /// The sample now (x_0 once the steps are done).
    pub fn current(&self) -> &Tensor<4> {
        &self.x
    }

    /// The sample, given up.
    pub fn into_current(self) -> Tensor<4> {
        self.x
    }
}

// ---------------------------------------------------------------------------------------------
// Inpainting (RePaint)
// ---------------------------------------------------------------------------------------------

/// The blend of RePaint's eq. 8: x_{t−1} = m ⊙ x^unknown_{t−1} + (1 − m) ⊙ x^known_{t−1}, with
/// m = 1 where the model fills in and 0 where the input is known.
pub fn blend(mask: &Tensor<4>, unknown: Tensor<4>, known: Tensor<4>) -> Tensor<4> {
    mask.clone() * unknown + (mask.ones_like() - mask.clone()) * known
}

/// x_t given x_s for s < t on the grid: q(x_t | x_s) = N(√(ᾱ_t/ᾱ_s)·x_s, (1 − ᾱ_t/ᾱ_s)·I)
/// (Ho et al. eq. 2 composed over s+1 … t; RePaint's "going back", eq. 9). `s = None` is x_0
/// (ᾱ = 1). For s = t − 1 it is [`super::q_step`].
pub fn q_jump(
    schedule: &NoiseSchedule,
    x_s: Tensor<4>,
    s: Option<usize>,
    t: usize,
    z: Tensor<4>,
) -> Result<Tensor<4>> {
    schedule.check_t(t)?;
    let alpha_s = match s {
        Some(s) => {
            schedule.check_t(s)?;
            schedule.alphas_cumprod[s]
        }
        None => 1.0,
    };
    let ratio = schedule.alphas_cumprod[t] / alpha_s;
    Ok(x_s.mul_scalar(ratio.sqrt() as f32) + z.mul_scalar((1.0 - ratio).max(0.0).sqrt() as f32))
}

/// One move of RePaint's time schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepaintMove {
    /// Take grid step k (t_k → t_{k+1}), pass `pass` (0 the first time).
    Down {
        /// The grid step.
        step: usize,
        /// How many times this step was taken before.
        pass: usize,
    },
    /// Go back over grid step k (t_{k+1} → t_k) with q, the `jump`-th time (0-based).
    Up {
        /// The grid step gone back over.
        step: usize,
        /// How many times this step was gone back over before.
        jump: usize,
    },
}

/// RePaint's schedule of moves over a grid of `n` steps (Lugmayr et al. §4.2, Algorithm 1 and
/// the "jump" schedule of their code): go down; after every `jump` steps, at grid positions that
/// are multiples of `jump`, go back up `jump` steps with q and redo them, until that block has
/// been taken `resample` times. The last step (the one that gives x_0) is not resampled, as in
/// Algorithm 1 (t > 1). `resample = 1` is the plain reverse process; `jump = 1` repeats each
/// step U times with one step of forward noise between repeats.
pub fn repaint_schedule(n: usize, resample: usize, jump: usize) -> Result<Vec<RepaintMove>> {
    if resample == 0 || resample > MAX_RESAMPLE {
        return Err(DiffError::invalid(format!(
            "RePaint's resampling U = {resample} must be between 1 and {MAX_RESAMPLE}"
        )));
    }
    if jump == 0 || jump > n.max(1) {
        return Err(DiffError::invalid(format!(
            "RePaint's jump length {jump} must be between 1 and the number of steps ({n})"
        )));
    }
    let mut moves = Vec::new();
    let mut passes = vec![0usize; n];
    let mut jumps = vec![0usize; n];
    let mut returns = vec![0usize; n + 1];
    let mut p = 0;
    while p < n {
        moves.push(RepaintMove::Down {
            step: p,
            pass: passes[p],
        });
        passes[p] += 1;
        p += 1;
        if p < n && p >= jump && p.is_multiple_of(jump) && returns[p] + 1 < resample {
            returns[p] += 1;
            for k in (p - jump..p).rev() {
                moves.push(RepaintMove::Up {
                    step: k,
                    jump: jumps[k],
                });
                jumps[k] += 1;
            }
            p -= jump;
        }
    }
    Ok(moves)
}

/// Inpainting with RePaint (Lugmayr et al. 2022). `mask` is [B or 1, 1 or C, H, W] with 1
/// where the model fills in and 0 where `x_known` is kept (values in between blend).
///
/// Start from x_T = `initial_noise(seed)`. At every reverse step (Algorithm 1):
/// - x^unknown_{t−1} = the scheduler's step from x_t (DDPM or DDIM), pass 0 with plain
///   sampling's `step_noise(seed, k)`, later passes with streams of their own;
/// - x^known_{t−1} = q_sample(x_known, t−1, ε) (eq. 8's first line), t−1 being the scheduler's
///   next timestep, and x_known itself after the last step, so the known pixels come out
///   exactly;
/// - x_{t−1} = [`blend`] (eq. 8).
///
/// Resampling: each block of `jump` steps is taken `resample` (U) times; between passes the
/// sample goes back up `jump` steps with [`q_jump`] (eq. 9), see [`repaint_schedule`]. With
/// U = 1 and a full mask this is the plain sample of `seed` bit for bit; with an empty mask it
/// returns `x_known`.
pub fn inpaint(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_known: Tensor<4>,
    mask: Tensor<4>,
    seed: u64,
    resample: usize,
    jump: usize,
) -> Result<Tensor<4>> {
    let mut run = InpaintRun::new(denoiser, scheduler, x_known, mask, seed, resample, jump)?;
    while let Some(r) = run.next_move() {
        r?;
    }
    Ok(run.into_current())
}

/// [`inpaint`] a move at a time: one reverse step (with its blend) or one jump back per
/// [`Self::next_move`].
pub struct InpaintRun<'a> {
    denoiser: &'a dyn Denoiser,
    scheduler: &'a Scheduler,
    x_known: Tensor<4>,
    mask: Tensor<4>,
    seed: u64,
    moves: Vec<RepaintMove>,
    done: usize,
    x: Tensor<4>,
}

impl<'a> InpaintRun<'a> {
    /// Checks the inputs and lays out RePaint's moves; x starts at x_T = `initial_noise(seed)`.
    pub fn new(
        denoiser: &'a dyn Denoiser,
        scheduler: &'a Scheduler,
        x_known: Tensor<4>,
        mask: Tensor<4>,
        seed: u64,
        resample: usize,
        jump: usize,
    ) -> Result<Self> {
        check_inputs(denoiser, scheduler, &x_known)?;
        let shape = x_known.dims();
        let [mb, mc, mh, mw] = mask.dims();
        if (mb != 1 && mb != shape[0])
            || (mc != 1 && mc != shape[1])
            || [mh, mw] != [shape[2], shape[3]]
        {
            return Err(DiffError::invalid(format!(
                "the mask has shape {:?}, which does not fit the image's {shape:?}",
                mask.dims()
            )));
        }
        let mask = mask.expand(shape);
        let moves = repaint_schedule(scheduler.timesteps().len(), resample, jump)?;
        let x = initial_noise(seed, shape, &x_known.device());
        Ok(Self {
            denoiser,
            scheduler,
            x_known,
            mask,
            seed,
            moves,
            done: 0,
            x,
        })
    }

    /// The moves in all (the grid's steps, more with resampling).
    pub fn total(&self) -> usize {
        self.moves.len()
    }

    /// The next move; the move made, or `None` when x_0 is reached.
    pub fn next_move(&mut self) -> Option<Result<RepaintMove>> {
        let m = *self.moves.get(self.done)?;
        self.done += 1;
        Some(self.make(m).map(|x| {
            self.x = x;
            m
        }))
    }

    fn make(&self, m: RepaintMove) -> Result<Tensor<4>> {
        let (scheduler, seed) = (self.scheduler, self.seed);
        let shape = self.x_known.dims();
        let device = self.x_known.device();
        let ts = scheduler.timesteps();
        match m {
            RepaintMove::Down { step: k, pass } => {
                let t = ts[k];
                let unknown = reverse_step(self.denoiser, scheduler, self.x.clone(), t, |s| {
                    if pass == 0 {
                        step_noise(seed, k, s, &device)
                    } else {
                        stream_noise(seed, pass_stream(REPASS_STREAM_BASE, pass, k), s, &device)
                    }
                })?;
                // After the last step the sample is x_0 (DDIM's trailing grid may end at
                // t = 0 rather than past it): the known pixels are the input itself.
                let last = k + 1 == ts.len();
                let known = match scheduler.previous_timestep(t)?.filter(|_| !last) {
                    Some(prev) => {
                        let eps = stream_noise(
                            seed,
                            pass_stream(KNOWN_STREAM_BASE, pass, k),
                            shape,
                            &device,
                        );
                        q_sample(
                            scheduler.schedule(),
                            self.x_known.clone(),
                            &vec![prev; shape[0]],
                            eps,
                        )?
                    }
                    None => self.x_known.clone(),
                };
                Ok(blend(&self.mask, unknown, known))
            }
            RepaintMove::Up { step: k, jump: u } => {
                let t = ts[k];
                let from = scheduler.previous_timestep(t)?;
                let z = stream_noise(seed, pass_stream(JUMP_STREAM_BASE, u, k), shape, &device);
                q_jump(scheduler.schedule(), self.x.clone(), from, t, z)
            }
        }
    }

    /// The sample now.
    pub fn current(&self) -> &Tensor<4> {
        &self.x
    }

    /// The sample, given up.
    pub fn into_current(self) -> Tensor<4> {
        self.x
    }
}

// ---------------------------------------------------------------------------------------------
// DDIM inversion
// ---------------------------------------------------------------------------------------------

/// The deterministic DDIM sampler (η = 0) of `steps` trailing timesteps (so the first is T − 1),
/// ᾱ = 1 after the last, and no clipping of x̂0: clipping is not invertible, and inversion does
/// not clip either.
pub fn inversion_scheduler(
    denoiser: &dyn Denoiser,
    schedule: &Arc<NoiseSchedule>,
    steps: usize,
) -> Result<Scheduler> {
    let mut config = SchedulerConfig::ddim(schedule.config, denoiser.prediction_type(), steps, 0.0);
    config.clip_sample = None;
    Scheduler::with_schedule(config, schedule.clone())
}

/// The levels the decoder visits, from the clean image up: (the timestep whose ᾱ a sample
/// there has, or `None` for x_0 with ᾱ = 1), in ascending order, ending at t_0 = T − 1.
fn inversion_levels(scheduler: &Scheduler) -> Result<Vec<Option<usize>>> {
    let ts = scheduler.timesteps();
    let mut levels = Vec::with_capacity(ts.len() + 1);
    for &t in ts.iter().rev() {
        levels.push(scheduler.previous_timestep(t)?);
    }
    levels.push(ts.first().copied());
    Ok(levels)
}

/// One DDIM step with η = 0 from level a (x at ᾱ_a, model called at timestep `t_model`) to
/// level b, either way (Song et al. eq. 12 with σ = 0; run upwards it is eq. 13's Euler step):
/// x_b = √ᾱ_b·x̂0(x_a, t_a) + √(1−ᾱ_b)·ε̂(x_a, t_a).
fn ddim_deterministic_step(
    denoiser: &dyn Denoiser,
    x_a: Tensor<4>,
    t_model: usize,
    alpha_a: f64,
    alpha_b: f64,
) -> Result<Tensor<4>> {
    let out = model_output(denoiser, &x_a, t_model)?;
    let (x0, eps) = predict_x0_and_eps(denoiser.prediction_type(), out, x_a, alpha_a);
    Ok(x0.mul_scalar(alpha_b.sqrt() as f32) + eps.mul_scalar((1.0 - alpha_b).sqrt() as f32))
}

/// DDIM inversion: the deterministic DDIM sampler (η = 0) run forwards, from x0 up to x_T, on
/// the timesteps [`ddim_decode`] takes (trailing spacing, `steps` of them, the top at T − 1):
///
///   x_{t_{i+1}} = √ᾱ_{i+1}·x̂0(x_{t_i}, t_i) + √(1−ᾱ_{i+1})·ε̂(x_{t_i}, t_i),
///
/// the Euler step of the probability-flow ODE (Song et al. eq. 13) in the other direction.
/// The model is called at the sample's own level, except at the start: x0 has ᾱ = 1, where an
/// x_0-predicting model's ε̂ is undefined, so it is treated as x at t = 0 (ᾱ_0 ≈ 0.9999) for its
/// model call. The approximation ε̂(x_{t_i}) ≈ ε̂(x_{t_{i+1}}) is what makes decoding inexact;
/// its error falls as the steps grow.
pub fn ddim_invert(
    denoiser: &dyn Denoiser,
    schedule: &Arc<NoiseSchedule>,
    x0: Tensor<4>,
    steps: usize,
) -> Result<Tensor<4>> {
    let scheduler = inversion_scheduler(denoiser, schedule, steps)?;
    let mut run = InvertRun::new(denoiser, &scheduler, x0)?;
    while let Some(r) = run.next_step() {
        r?;
    }
    Ok(run.into_current())
}

/// [`ddim_invert`] a step at a time, on a scheduler from [`inversion_scheduler`].
pub struct InvertRun<'a> {
    denoiser: &'a dyn Denoiser,
    schedule: Arc<NoiseSchedule>,
    levels: Vec<Option<usize>>,
    done: usize,
    x: Tensor<4>,
}

impl<'a> InvertRun<'a> {
    /// Checks the input; x starts at x0.
    pub fn new(denoiser: &'a dyn Denoiser, scheduler: &Scheduler, x0: Tensor<4>) -> Result<Self> {
        check_inputs(denoiser, scheduler, &x0)?;
        Ok(Self {
            denoiser,
            schedule: scheduler.schedule().clone(),
            levels: inversion_levels(scheduler)?,
            done: 0,
            x: x0,
        })
    }

    /// The steps in all.
    pub fn total(&self) -> usize {
        self.levels.len() - 1
    }

    /// One step up; the timestep reached, or `None` at the top.
    pub fn next_step(&mut self) -> Option<Result<usize>> {
        let (from, to) = (
            *self.levels.get(self.done)?,
            *self.levels.get(self.done + 1)?,
        );
        self.done += 1;
        let t_model = from.unwrap_or(0);
        let Some(to) = to else {
            return Some(Err(DiffError::invalid("inversion reached ᾱ = 1 above x_0")));
        };
        let a = &self.schedule.alphas_cumprod;
        Some(
            ddim_deterministic_step(self.denoiser, self.x.clone(), t_model, a[t_model], a[to]).map(
                |x| {
                    self.x = x;
                    to
                },
            ),
        )
    }

    /// The sample now (x_T once the steps are done).
    pub fn current(&self) -> &Tensor<4> {
        &self.x
    }

    /// The sample, given up.
    pub fn into_current(self) -> Tensor<4> {
        self.x
    }
}

/// Decodes x_T with the deterministic DDIM sampler of [`inversion_scheduler`] (η = 0, `steps`
/// trailing timesteps, no clipping): the inverse of [`ddim_invert`] up to its approximation.
pub fn ddim_decode(
    denoiser: &dyn Denoiser,
    schedule: &Arc<NoiseSchedule>,
    x_t: Tensor<4>,
    steps: usize,
) -> Result<Tensor<4>> {
    let scheduler = inversion_scheduler(denoiser, schedule, steps)?;
    check_inputs(denoiser, &scheduler, &x_t)?;
    let mut x = x_t;
    for &t in scheduler.timesteps() {
        x = ddim_decode_step(denoiser, &scheduler, x, t)?;
    }
    Ok(x)
}

/// One step of [`ddim_decode`] at t, on its scheduler.
pub fn ddim_decode_step(
    denoiser: &dyn Denoiser,
    scheduler: &Scheduler,
    x_t: Tensor<4>,
    t: usize,
) -> Result<Tensor<4>> {
    let device = x_t.device();
    // η = 0: the step adds no noise, so the noise closure is never called.
    reverse_step(denoiser, scheduler, x_t, t, |s| Tensor::zeros(s, &device))
}

/// The root-mean-square difference √(mean((a − b)²)), over every value.
pub fn rmse(a: &Tensor<4>, b: &Tensor<4>) -> Result<f64> {
    rmse_of(&to_vec(a.clone())?, &to_vec(b.clone())?)
}

/// [`rmse`] of two images already read back (the app reads them asynchronously).
pub fn rmse_of(a: &[f32], b: &[f32]) -> Result<f64> {
    if a.len() != b.len() || a.is_empty() {
        return Err(DiffError::invalid(format!(
            "cannot compare {} values with {}",
            a.len(),
            b.len()
        )));
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    Ok((sum / a.len() as f64).sqrt())
}
