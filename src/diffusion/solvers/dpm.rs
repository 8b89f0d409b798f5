//! DPM-Solver (Lu et al. 2022a, "DPM-Solver: a fast ODE solver for diffusion probabilistic
//! model sampling in around 10 steps") and DPM-Solver++ (Lu et al. 2022b, "DPM-Solver++: fast
//! solver for guided sampling of diffusion probabilistic models"), multistep, orders 1–3, and
//! SDE-DPM-Solver++: diffusers' `DPMSolverMultistepScheduler`, step for step.
//!
//! **Notation.** diffusers keeps one σ = √((1−ᾱ)/ᾱ) per step (plus a final one). The VP pair
//! is α_t = 1/√(σ²+1), σ_t = σ·α_t (so α_t² + σ_t² = 1; `_sigma_to_alpha_sigma_t`), and the
//! half log-SNR is λ_t = log α_t − log σ_t. Step k goes from s = σ[k] to t = σ[k+1], over
//! h = λ_t − λ_s > 0. The multistep methods reuse the converted model outputs of the last
//! steps, m0 (at s0 = s), m1 (at s1 = σ[k−1]) and m2 (at s2 = σ[k−2]), with
//! h_0 = λ_s0 − λ_s1, h_1 = λ_s1 − λ_s2 and r0 = h_0/h, r1 = h_1/h.
//!
//! - DPM-Solver++ integrates the data prediction x̂0 (`convert_model_output` turns ε̂, x̂0 or
//!   v̂ into x̂0), DPM-Solver integrates the noise prediction ε̂.
//! - The order rises 1, 2, 3 as history accumulates (`lower_order_nums`); with
//!   `lower_order_final` and fewer than 15 steps the last two steps drop to orders 1 and 2,
//!   and a final σ of 0 always makes the last step first order.
//! - SDE-DPM-Solver++ adds σ_t·√(1−e^{−2h})·z each step; z is passed in, never drawn here.
//!
//! The coefficients are computed in f64 from diffusers' f32 σ and applied as f32 scalars.

use burn::tensor::Tensor;
use serde_json::Value;

use super::sigmas::{karras_sigmas, sigma_to_t};
use super::{Solver, SolverStep, check_known_keys, prediction_of};
use crate::diffusion::schedule::linspace;
use crate::diffusion::{BetaSchedule, NoiseSchedule, PredictionType, TimestepSpacing};
use crate::error::{DiffError, Result};

const SCHEDULER: &str = "dpmsolver_multistep";

/// Which DPM-Solver (diffusers' `algorithm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DpmAlgorithm {
    /// DPM-Solver (Lu et al. 2022a): the exponential integrator on the noise prediction ε̂
    /// (diffusers' "dpmsolver"). Needs a final σ > 0 (σ_min).
    DpmSolver,
    /// DPM-Solver++ (Lu et al. 2022b): the exponential integrator on the data prediction x̂0
    /// ("dpmsolver++", the default).
    DpmSolverPlusPlus,
    /// SDE-DPM-Solver++: the same exponential integrator on x̂0 applied to the reverse SDE,
    /// fresh Gaussian noise every step ("sde-dpmsolver++").
    SdeDpmSolverPlusPlus,
}

impl DpmAlgorithm {
    /// Every algorithm.
    pub const ALL: [DpmAlgorithm; 3] = [
        DpmAlgorithm::DpmSolver,
        DpmAlgorithm::DpmSolverPlusPlus,
        DpmAlgorithm::SdeDpmSolverPlusPlus,
    ];

    /// diffusers' name.
    pub fn name(self) -> &'static str {
        match self {
            DpmAlgorithm::DpmSolver => "dpmsolver",
            DpmAlgorithm::DpmSolverPlusPlus => "dpmsolver++",
            DpmAlgorithm::SdeDpmSolverPlusPlus => "sde-dpmsolver++",
        }
    }

    /// Parses diffusers' names (`sde-dpmsolver`, deprecated there, is not implemented).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "dpmsolver" => Ok(DpmAlgorithm::DpmSolver),
            "dpmsolver++" => Ok(DpmAlgorithm::DpmSolverPlusPlus),
            "sde-dpmsolver++" => Ok(DpmAlgorithm::SdeDpmSolverPlusPlus),
            other => Err(DiffError::invalid(format!(
                "{SCHEDULER}: difflab does not implement algorithm_type '{other}' (expected \
                 dpmsolver, dpmsolver++ or sde-dpmsolver++)"
            ))),
        }
    }

    /// Whether the method integrates x̂0 (the ++ variants) rather than ε̂.
    fn integrates_x0(self) -> bool {
        !matches!(self, DpmAlgorithm::DpmSolver)
    }

    /// Whether each step adds noise.
    pub fn is_stochastic(self) -> bool {
        matches!(self, DpmAlgorithm::SdeDpmSolverPlusPlus)
    }
}

/// How the second-order update weighs D1 (diffusers' `solver_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DpmSolverType {
    /// ½·(e^{−h}−1)-type weights (the default; Lu et al. 2022b, Algorithm 2).
    Midpoint,
    /// The weights of the Heun-like second-order rule ((e^{−h}−1)/h + 1).
    Heun,
}

/// Where the last step ends (diffusers' `final_sigmas_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FinalSigma {
    /// σ = 0: the last step returns a clean sample (the default).
    Zero,
    /// σ = σ_min, the training σ of t = 0 (what DPM-Solver, not ++, needs).
    SigmaMin,
}

impl FinalSigma {
    /// Parses diffusers' names.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "zero" => Ok(FinalSigma::Zero),
            "sigma_min" => Ok(FinalSigma::SigmaMin),
            other => Err(DiffError::invalid(format!(
                "final_sigmas_type must be zero or sigma_min, not '{other}'"
            ))),
        }
    }
}

/// Every option of the DPM-Solver family that difflab implements, with diffusers' defaults
/// from [`DpmOptions::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpmOptions {
    /// DPM-Solver, DPM-Solver++ or SDE-DPM-Solver++.
    pub algorithm: DpmAlgorithm,
    /// The multistep order, 1–3 (`solver_order`).
    pub order: usize,
    /// Midpoint or Heun weights for order 2 (`solver_type`).
    pub solver_type: DpmSolverType,
    /// What the model predicts.
    pub prediction: PredictionType,
    /// Orders 1 and 2 for the last two steps when N < 15 (`lower_order_final`, default on).
    pub lower_order_final: bool,
    /// First order for the last step whatever N (`euler_at_final`, default off).
    pub euler_at_final: bool,
    /// Karras σ, ρ = 7 (`use_karras_sigmas`).
    pub karras: bool,
    /// The σ the last step goes to (`final_sigmas_type`).
    pub final_sigma: FinalSigma,
    /// How N steps are spread over the training timesteps (`timestep_spacing`).
    pub spacing: TimestepSpacing,
    /// Added to leading timesteps (`steps_offset`).
    pub steps_offset: usize,
    /// Timesteps whose λ is below this are not used (`lambda_min_clipped`, default −∞).
    pub lambda_min_clipped: f64,
}

impl DpmOptions {
    /// diffusers' defaults for `algorithm` and `order`: midpoint, lower order at the end,
    /// linspace timesteps, final σ = 0 (σ_min for DPM-Solver, which cannot end at 0).
    pub fn new(algorithm: DpmAlgorithm, order: usize, prediction: PredictionType) -> Self {
        Self {
            algorithm,
            order,
            solver_type: DpmSolverType::Midpoint,
            prediction,
            lower_order_final: true,
            euler_at_final: false,
            karras: false,
            final_sigma: if algorithm.integrates_x0() {
                FinalSigma::Zero
            } else {
                FinalSigma::SigmaMin
            },
            spacing: TimestepSpacing::Linspace,
            steps_offset: 0,
            lambda_min_clipped: f64::NEG_INFINITY,
        }
    }
}

/// α_t, σ_t and λ_t = log α_t − log σ_t at one of diffusers' σ (`_sigma_to_alpha_sigma_t`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Vp {
    /// α_t = 1/√(σ²+1).
    pub alpha: f64,
    /// σ_t = σ·α_t.
    pub sigma: f64,
    /// λ_t = log α_t − log σ_t (+∞ at σ = 0).
    pub lambda: f64,
}

impl Vp {
    /// The VP pair of σ = σ_t/α_t.
    pub fn from_sigma(s: f64) -> Self {
        let alpha = 1.0 / (s * s + 1.0).sqrt();
        let sigma = s * alpha;
        Self {
            alpha,
            sigma,
            lambda: alpha.ln() - sigma.ln(),
        }
    }
}

/// The training σ_t = √((1−ᾱ_t)/ᾱ_t) in f32 arithmetic, as diffusers computes them from its
/// f32 ᾱ, and their f32 logs (numpy's `np.log` on that array).
pub(super) fn f32_training_sigmas(schedule: &NoiseSchedule) -> (Vec<f64>, Vec<f64>) {
    let sigmas: Vec<f32> = schedule
        .alphas_cumprod
        .iter()
        .map(|&a| {
            let a = a as f32;
            ((1.0 - a) / a).sqrt()
        })
        .collect();
    let logs = sigmas.iter().map(|s| f64::from(s.ln())).collect();
    (sigmas.into_iter().map(f64::from).collect(), logs)
}

/// The integer timesteps of the multistep schedulers' `set_timesteps` (as f64), descending:
/// - linspace: round(linspace(0, L−1, N+1)) reversed, its last entry (0) dropped;
/// - leading: k·⌊L/(N+1)⌋ for k = N … 1, plus `steps_offset`;
/// - trailing: round(arange(L, 0, −T/N)) − 1,
///
/// where L is the last usable timestep + 1 (T unless λ is clipped). Rounding is numpy's, half
/// to even, and the grids are numpy's (`linspace`: start + i·step; `arange`: start + i·Δ).
pub(super) fn spaced_timesteps(
    spacing: TimestepSpacing,
    num_train_timesteps: usize,
    last_timestep: usize,
    n: usize,
    steps_offset: usize,
) -> Result<Vec<f64>> {
    let ts: Vec<f64> = match spacing {
        TimestepSpacing::Linspace => {
            let mut v: Vec<f64> = linspace(0.0, last_timestep as f64 - 1.0, n + 1)
                .into_iter()
                .map(f64::round_ties_even)
                .collect();
            v.reverse();
            v.pop();
            v
        }
        TimestepSpacing::Leading => {
            let ratio = last_timestep / (n + 1);
            (1..=n)
                .rev()
                .map(|k| (k * ratio + steps_offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => {
            let step = -(num_train_timesteps as f64 / n as f64);
            let start = last_timestep as f64;
            let len = ((0.0 - start) / step).ceil().max(0.0) as usize;
            let delta = (start + step) - start;
            (0..len)
                .map(|i| (start + i as f64 * delta).round_ties_even() - 1.0)
                .collect()
        }
    };
    if let Some(bad) = ts
        .iter()
        .find(|&&t| t < 0.0 || t >= num_train_timesteps as f64)
    {
        return Err(DiffError::invalid(format!(
            "{spacing} spacing with N = {n} gives timestep {bad}, outside 0 … T − 1 = {}",
            num_train_timesteps - 1
        )));
    }
    Ok(ts)
}

/// σ at integer timesteps (`np.interp(timesteps, arange(T), sigmas)`, exact at integers).
pub(super) fn sigmas_at(timesteps: &[f64], training: &[f64]) -> Vec<f64> {
    timesteps.iter().map(|&t| training[t as usize]).collect()
}

/// Karras σ from σ_max down to σ_min (ρ = 7) and the timestep of each
/// (`_sigma_to_t`, rounded when `round`, else truncated by diffusers' int64 cast).
pub(super) fn karras_grid(
    sigma_min: f64,
    sigma_max: f64,
    n: usize,
    log_sigmas: &[f64],
    round: bool,
) -> (Vec<f64>, Vec<f64>) {
    let sigmas = karras_sigmas(sigma_min, sigma_max, n, 7.0);
    let ts = sigmas
        .iter()
        .map(|&s| {
            let t = sigma_to_t(s, log_sigmas);
            if round {
                t.round_ties_even()
            } else {
                t.trunc()
            }
        })
        .collect();
    (ts, sigmas)
}

/// Rounds to f32 (diffusers stores σ as `float32`).
pub(super) fn f32_round(x: f64) -> f64 {
    f64::from(x as f32)
}

/// Fails when N is 0 or above T.
pub(super) fn check_steps(scheduler: &str, n: usize, num_train_timesteps: usize) -> Result<()> {
    if n == 0 || n > num_train_timesteps {
        return Err(DiffError::invalid(format!(
            "{scheduler}: the number of steps must be 1 … T = {num_train_timesteps}, not {n}"
        )));
    }
    Ok(())
}

/// Fails when two of the steps' σ are equal (duplicate timesteps: h = 0 would divide by 0).
pub(super) fn check_distinct(scheduler: &str, sigmas: &[f64]) -> Result<()> {
    if let Some(&[before, after]) = sigmas.windows(2).find(|w| w[1] >= w[0]) {
        return Err(DiffError::invalid(format!(
            "{scheduler}: the steps' σ do not decrease ({before} then {after}): too many steps \
             for this timestep spacing"
        )));
    }
    Ok(())
}

/// Fails when the first timestep repeats: diffusers' `index_for_timestep` then starts the run
/// at index 1 and runs off the end of its σ (a cosine Karras grid truncated to int64 does
/// this).
pub(super) fn check_first_timestep(scheduler: &str, timesteps: &[f64]) -> Result<()> {
    if timesteps.len() > 1 && timesteps[1] == timesteps[0] {
        return Err(DiffError::invalid(format!(
            "{scheduler}: the first timesteps repeat ({} twice): diffusers cannot run this \
             grid; use fewer steps or no Karras σ",
            timesteps[0]
        )));
    }
    Ok(())
}

// ---- diffusers config parsing, shared with UniPC --------------------------------------------

/// A boolean option (absent or null: `default`).
pub(super) fn opt_bool(scheduler: &str, config: &Value, key: &str, default: bool) -> Result<bool> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(DiffError::invalid(format!(
            "{scheduler}: {key} must be true or false, not {v}"
        ))),
    }
}

/// A non-negative integer option (absent or null: `default`).
pub(super) fn opt_usize(
    scheduler: &str,
    config: &Value,
    key: &str,
    default: usize,
) -> Result<usize> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            DiffError::invalid(format!(
                "{scheduler}: {key} must be a non-negative integer, not {v}"
            ))
        }),
    }
}

/// A string option (absent or null: `default`).
pub(super) fn opt_str<'a>(
    scheduler: &str,
    config: &'a Value,
    key: &str,
    default: &'a str,
) -> Result<&'a str> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(DiffError::invalid(format!(
            "{scheduler}: {key} must be a string, not {v}"
        ))),
    }
}

/// A number option (absent or null: `None`).
pub(super) fn opt_f64(scheduler: &str, config: &Value, key: &str) -> Result<Option<f64>> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            DiffError::invalid(format!("{scheduler}: {key} must be a number, not {v}"))
        }),
    }
}

/// An option difflab accepts only at diffusers' default (`null` for an absent default).
pub(super) fn require_default(
    scheduler: &str,
    config: &Value,
    key: &str,
    default: &Value,
) -> Result<()> {
    let Some(v) = config.get(key) else {
        return Ok(());
    };
    let same = match default {
        Value::Number(d) => v.as_f64() == d.as_f64(),
        Value::Bool(false) => matches!(v, Value::Bool(false) | Value::Null),
        d => v == d,
    };
    if same {
        Ok(())
    } else {
        Err(DiffError::invalid(format!(
            "{scheduler}: difflab does not implement {key} = {v} (only the default {default})"
        )))
    }
}

/// The training schedule of a diffusers config, with diffusers' names only
/// (`linear`, `scaled_linear`, `squaredcos_cap_v2`) and typed values.
pub(super) fn schedule_from(scheduler: &str, config: &Value) -> Result<NoiseSchedule> {
    let kind = opt_str(scheduler, config, "beta_schedule", "linear")?;
    if !matches!(kind, "linear" | "scaled_linear" | "squaredcos_cap_v2") {
        return Err(DiffError::invalid(format!(
            "{scheduler}: beta_schedule '{kind}' is not one of diffusers' linear, scaled_linear, \
             squaredcos_cap_v2"
        )));
    }
    opt_usize(scheduler, config, "num_train_timesteps", 1000)?;
    opt_f64(scheduler, config, "beta_start")?;
    opt_f64(scheduler, config, "beta_end")?;
    require_default(scheduler, config, "trained_betas", &Value::Null)?;
    require_default(
        scheduler,
        config,
        "rescale_betas_zero_snr",
        &Value::Bool(false),
    )?;
    super::sigmas::schedule_of(config)
}

/// `timestep_spacing` and `steps_offset`.
pub(super) fn spacing_from(scheduler: &str, config: &Value) -> Result<(TimestepSpacing, usize)> {
    let spacing =
        TimestepSpacing::parse(opt_str(scheduler, config, "timestep_spacing", "linspace")?)
            .map_err(|e| DiffError::invalid(format!("{scheduler}: {e}")))?;
    Ok((spacing, opt_usize(scheduler, config, "steps_offset", 0)?))
}

/// The options every diffusers scheduler here accepts only at their defaults (thresholding,
/// the other σ grids, flow matching, dynamic shifting).
pub(super) fn require_defaults(scheduler: &str, config: &Value) -> Result<()> {
    let f = Value::Bool(false);
    for key in [
        "thresholding",
        "use_exponential_sigmas",
        "use_beta_sigmas",
        "use_flow_sigmas",
        "use_dynamic_shifting",
    ] {
        require_default(scheduler, config, key, &f)?;
    }
    require_default(
        scheduler,
        config,
        "dynamic_thresholding_ratio",
        &Value::from(0.995),
    )?;
    require_default(scheduler, config, "sample_max_value", &Value::from(1.0))?;
    require_default(scheduler, config, "flow_shift", &Value::from(1.0))?;
    require_default(
        scheduler,
        config,
        "time_shift_type",
        &Value::from("exponential"),
    )
}

// ---- the update rules --------------------------------------------------------------------

/// One update's coefficients: x_t = `x`·x_s + Σ_j `d[j]`·D_j + `noise`·z.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Coefficients {
    x: f64,
    d: [f64; 3],
    noise: f64,
}

/// First order (DPM-Solver-1 = DDIM), from s to t over h:
/// - ++:  x_t = (σ_t/σ_s)·x_s − α_t·(e^{−h} − 1)·x̂0  (DPM-Solver++1, Lu et al. 2022b);
/// - DPM-Solver: x_t = (α_t/α_s)·x_s − σ_t·(e^{h} − 1)·ε̂  (DPM-Solver-1, Lu et al. 2022a);
/// - SDE++: x_t = (σ_t/σ_s)·e^{−h}·x_s + α_t·(1 − e^{−2h})·x̂0 + σ_t·√(1 − e^{−2h})·z.
fn first_order(algorithm: DpmAlgorithm, s: Vp, t: Vp, h: f64) -> Coefficients {
    match algorithm {
        DpmAlgorithm::DpmSolverPlusPlus => Coefficients {
            x: t.sigma / s.sigma,
            d: [-t.alpha * (-h).exp_m1(), 0.0, 0.0],
            noise: 0.0,
        },
        DpmAlgorithm::DpmSolver => Coefficients {
            x: t.alpha / s.alpha,
            d: [-t.sigma * h.exp_m1(), 0.0, 0.0],
            noise: 0.0,
        },
        DpmAlgorithm::SdeDpmSolverPlusPlus => Coefficients {
            x: t.sigma / s.sigma * (-h).exp(),
            d: [-t.alpha * (-2.0 * h).exp_m1(), 0.0, 0.0],
            noise: sde_noise(t, h),
        },
    }
}

/// SDE-DPM-Solver++'s noise scale σ_t·√(1 − e^{−2h}).
fn sde_noise(t: Vp, h: f64) -> f64 {
    t.sigma * (-(-2.0 * h).exp_m1()).sqrt()
}

/// Second order multistep (DPM-Solver++(2M), Lu et al. 2022b, Algorithm 2), on
/// D0 = m0 and D1 = (m0 − m1)/r0:
/// - ++ midpoint: x_t = (σ_t/σ_s0)·x − α_t(e^{−h}−1)·D0 − ½·α_t(e^{−h}−1)·D1;
/// - ++ Heun: the D1 weight is α_t·((e^{−h}−1)/h + 1);
/// - DPM-Solver: x_t = (α_t/α_s0)·x − σ_t(e^{h}−1)·D0 − ½·σ_t(e^{h}−1)·D1
///   (Heun: −σ_t·((e^{h}−1)/h − 1)·D1);
/// - SDE++: x_t = (σ_t/σ_s0)e^{−h}·x + α_t(1−e^{−2h})·D0 + ½·α_t(1−e^{−2h})·D1 + noise
///   (Heun: α_t·((1−e^{−2h})/(−2h) + 1)·D1).
fn second_order(
    algorithm: DpmAlgorithm,
    solver_type: DpmSolverType,
    s0: Vp,
    t: Vp,
    h: f64,
) -> Coefficients {
    let heun = solver_type == DpmSolverType::Heun;
    match algorithm {
        DpmAlgorithm::DpmSolverPlusPlus => {
            let em1 = (-h).exp_m1();
            let d1 = if heun {
                t.alpha * (em1 / h + 1.0)
            } else {
                -0.5 * t.alpha * em1
            };
            Coefficients {
                x: t.sigma / s0.sigma,
                d: [-t.alpha * em1, d1, 0.0],
                noise: 0.0,
            }
        }
        DpmAlgorithm::DpmSolver => {
            let em1 = h.exp_m1();
            let d1 = if heun {
                -t.sigma * (em1 / h - 1.0)
            } else {
                -0.5 * t.sigma * em1
            };
            Coefficients {
                x: t.alpha / s0.alpha,
                d: [-t.sigma * em1, d1, 0.0],
                noise: 0.0,
            }
        }
        DpmAlgorithm::SdeDpmSolverPlusPlus => {
            let one_m = -(-2.0 * h).exp_m1();
            let d1 = if heun {
                t.alpha * (one_m / (-2.0 * h) + 1.0)
            } else {
                0.5 * t.alpha * one_m
            };
            Coefficients {
                x: t.sigma / s0.sigma * (-h).exp(),
                d: [t.alpha * one_m, d1, 0.0],
                noise: sde_noise(t, h),
            }
        }
    }
}

/// Third order multistep (DPM-Solver++(3M), as in Lu et al.'s reference code and diffusers'
/// `multistep_dpm_solver_third_order_update`), on D0 = m0,
/// D1 = D1_0 + r0/(r0+r1)·(D1_0 − D1_1) and D2 = (D1_0 − D1_1)/(r0+r1), where
/// D1_0 = (m0 − m1)/r0 and D1_1 = (m1 − m2)/r1:
/// - ++: x_t = (σ_t/σ_s0)·x − α_t(e^{−h}−1)·D0 + α_t((e^{−h}−1)/h + 1)·D1
///   − α_t((e^{−h}−1+h)/h² − ½)·D2;
/// - DPM-Solver: x_t = (α_t/α_s0)·x − σ_t(e^{h}−1)·D0 − σ_t((e^{h}−1)/h − 1)·D1
///   − σ_t((e^{h}−1−h)/h² − ½)·D2;
/// - SDE++: x_t = (σ_t/σ_s0)e^{−h}·x + α_t(1−e^{−2h})·D0 + α_t((1−e^{−2h})/(−2h) + 1)·D1
///   + α_t((1−e^{−2h}−2h)/(2h)² − ½)·D2 + noise.
fn third_order(algorithm: DpmAlgorithm, s0: Vp, t: Vp, h: f64) -> Coefficients {
    match algorithm {
        DpmAlgorithm::DpmSolverPlusPlus => {
            let em1 = (-h).exp_m1();
            Coefficients {
                x: t.sigma / s0.sigma,
                d: [
                    -t.alpha * em1,
                    t.alpha * (em1 / h + 1.0),
                    -t.alpha * ((em1 + h) / (h * h) - 0.5),
                ],
                noise: 0.0,
            }
        }
        DpmAlgorithm::DpmSolver => {
            let em1 = h.exp_m1();
            Coefficients {
                x: t.alpha / s0.alpha,
                d: [
                    -t.sigma * em1,
                    -t.sigma * (em1 / h - 1.0),
                    -t.sigma * ((em1 - h) / (h * h) - 0.5),
                ],
                noise: 0.0,
            }
        }
        DpmAlgorithm::SdeDpmSolverPlusPlus => {
            let one_m = -(-2.0 * h).exp_m1();
            Coefficients {
                x: t.sigma / s0.sigma * (-h).exp(),
                d: [
                    t.alpha * one_m,
                    t.alpha * (one_m / (-2.0 * h) + 1.0),
                    t.alpha * ((one_m - 2.0 * h) / (4.0 * h * h) - 0.5),
                ],
                noise: sde_noise(t, h),
            }
        }
    }
}

/// x_t = c.x·x + Σ c.d[j]·D_j (+ c.noise·z), skipping zero weights.
fn combine(c: Coefficients, x: Tensor<4>, d: &[Tensor<4>], z: Option<Tensor<4>>) -> Tensor<4> {
    let mut out = x.mul_scalar(c.x as f32);
    for (dj, &w) in d.iter().zip(&c.d) {
        if w != 0.0 {
            out = out + dj.clone().mul_scalar(w as f32);
        }
    }
    match z {
        Some(z) if c.noise != 0.0 => out + z.mul_scalar(c.noise as f32),
        _ => out,
    }
}

// ---- the solver ---------------------------------------------------------------------------

/// DPM-Solver / DPM-Solver++ / SDE-DPM-Solver++ multistep with its timesteps set, and the
/// history of converted model outputs it carries between calls.
pub struct DpmSolver {
    options: DpmOptions,
    timesteps: Vec<f64>,
    /// σ of every step plus the final one (f32 values, as diffusers stores them).
    sigmas: Vec<f64>,
    /// The converted outputs (x̂0 or ε̂) of the last `order` calls, oldest first.
    model_outputs: Vec<Tensor<4>>,
    /// How many calls the history has seen, up to the order (diffusers' `lower_order_nums`).
    lower_order_nums: usize,
    /// The next call's index (diffusers' `step_index`).
    step_index: usize,
}

impl DpmSolver {
    /// diffusers' defaults for `algorithm` and `order` on `schedule` (midpoint, linspace
    /// timesteps, lower order at the end, final σ = 0, or σ_min for DPM-Solver), N steps.
    pub fn new(
        schedule: &NoiseSchedule,
        prediction: PredictionType,
        n: usize,
        order: usize,
        algorithm: DpmAlgorithm,
        karras: bool,
    ) -> Result<Self> {
        let mut options = DpmOptions::new(algorithm, order, prediction);
        options.karras = karras;
        Self::with_options(schedule, options, n)
    }

    /// Every option spelled out; diffusers' `__init__` checks and `set_timesteps(n)`.
    pub fn with_options(schedule: &NoiseSchedule, options: DpmOptions, n: usize) -> Result<Self> {
        if !(1..=3).contains(&options.order) {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: solver_order must be 1, 2 or 3, not {}",
                options.order
            )));
        }
        if !options.algorithm.integrates_x0() && options.final_sigma == FinalSigma::Zero {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: final_sigmas_type zero is not supported for algorithm_type \
                 dpmsolver (its last step would be σ_t·(e^h − 1) = 0·∞); use sigma_min"
            )));
        }
        if options.lambda_min_clipped.is_nan() {
            return Err(DiffError::invalid(format!(
                "{SCHEDULER}: lambda_min_clipped is NaN"
            )));
        }
        let t_train = schedule.num_timesteps();
        let (train_sigmas, log_sigmas) = f32_training_sigmas(schedule);
        // λ clipping: L = T − #{t : λ_t < lambda_min_clipped} (searchsorted on the flipped λ).
        let clipped = schedule
            .alphas_cumprod
            .iter()
            .filter(|&&a| {
                let a = f64::from(a as f32);
                a.sqrt().ln() - (1.0 - a).sqrt().ln() < options.lambda_min_clipped
            })
            .count();
        let last_timestep = t_train - clipped;
        check_steps(SCHEDULER, n, last_timestep)?;
        let (timesteps, mut sigmas) = if options.karras {
            // σ_max = σ_{T−1}, σ_min = σ_0; t rounded except for the cosine schedule.
            let round = schedule.config.kind != BetaSchedule::Cosine;
            karras_grid(
                train_sigmas[0],
                train_sigmas[t_train - 1],
                n,
                &log_sigmas,
                round,
            )
        } else {
            let ts = spaced_timesteps(
                options.spacing,
                t_train,
                last_timestep,
                n,
                options.steps_offset,
            )?;
            let s = sigmas_at(&ts, &train_sigmas);
            (ts, s)
        };
        check_distinct(SCHEDULER, &sigmas)?;
        check_first_timestep(SCHEDULER, &timesteps)?;
        sigmas.push(match options.final_sigma {
            FinalSigma::Zero => 0.0,
            FinalSigma::SigmaMin => train_sigmas[0],
        });
        let sigmas = sigmas.into_iter().map(f32_round).collect();
        Ok(Self {
            options,
            timesteps,
            sigmas,
            model_outputs: Vec::new(),
            lower_order_nums: 0,
            step_index: 0,
        })
    }

    /// From `DPMSolverMultistepScheduler`'s constructor arguments (absent ones take diffusers'
    /// defaults) and `set_timesteps(num_inference_steps)`. An option difflab does not
    /// implement is an error.
    pub fn from_diffusers(config: &Value, num_inference_steps: usize) -> Result<Self> {
        check_known_keys(
            SCHEDULER,
            config,
            &[
                "num_train_timesteps",
                "beta_start",
                "beta_end",
                "beta_schedule",
                "trained_betas",
                "solver_order",
                "prediction_type",
                "thresholding",
                "dynamic_thresholding_ratio",
                "sample_max_value",
                "algorithm_type",
                "solver_type",
                "lower_order_final",
                "euler_at_final",
                "use_karras_sigmas",
                "use_exponential_sigmas",
                "use_beta_sigmas",
                "use_lu_lambdas",
                "use_flow_sigmas",
                "flow_shift",
                "final_sigmas_type",
                "lambda_min_clipped",
                "variance_type",
                "timestep_spacing",
                "steps_offset",
                "rescale_betas_zero_snr",
                "use_dynamic_shifting",
                "time_shift_type",
            ],
        )?;
        let c = SCHEDULER;
        require_defaults(c, config)?;
        require_default(c, config, "use_lu_lambdas", &Value::Bool(false))?;
        require_default(c, config, "variance_type", &Value::Null)?;
        let schedule = schedule_from(c, config)?;
        // diffusers maps "deis" to dpmsolver++ and the other families' solver types to
        // midpoint (so a DEIS or UniPC config can be reused).
        let algorithm = match opt_str(c, config, "algorithm_type", "dpmsolver++")? {
            "deis" => DpmAlgorithm::DpmSolverPlusPlus,
            other => DpmAlgorithm::parse(other)?,
        };
        let solver_type = match opt_str(c, config, "solver_type", "midpoint")? {
            "midpoint" | "logrho" | "bh1" | "bh2" => DpmSolverType::Midpoint,
            "heun" => DpmSolverType::Heun,
            other => {
                return Err(DiffError::invalid(format!(
                    "{c}: solver_type '{other}' is not midpoint or heun"
                )));
            }
        };
        let (spacing, steps_offset) = spacing_from(c, config)?;
        let options = DpmOptions {
            algorithm,
            order: opt_usize(c, config, "solver_order", 2)?,
            solver_type,
            prediction: prediction_of(config)?,
            lower_order_final: opt_bool(c, config, "lower_order_final", true)?,
            euler_at_final: opt_bool(c, config, "euler_at_final", false)?,
            karras: opt_bool(c, config, "use_karras_sigmas", false)?,
            final_sigma: FinalSigma::parse(opt_str(c, config, "final_sigmas_type", "zero")?)?,
            spacing,
            steps_offset,
            lambda_min_clipped: opt_f64(c, config, "lambda_min_clipped")?
                .unwrap_or(f64::NEG_INFINITY),
        };
        Self::with_options(&schedule, options, num_inference_steps)
    }

    /// The options.
    pub fn options(&self) -> &DpmOptions {
        &self.options
    }

    /// The order call `k`'s update uses: 1 while warming up (`lower_order_nums`), and lowered
    /// at the end (diffusers' `lower_order_final` / `lower_order_second`).
    fn order_at(&self, k: usize) -> usize {
        let o = &self.options;
        let n = self.timesteps.len();
        let few = o.lower_order_final && n < 15;
        let final_first =
            k == n - 1 && (o.euler_at_final || few || o.final_sigma == FinalSigma::Zero);
        let second_to_last = k + 2 == n && few;
        if o.order == 1 || self.lower_order_nums < 1 || final_first {
            1
        } else if o.order == 2 || self.lower_order_nums < 2 || second_to_last {
            2
        } else {
            3
        }
    }

    /// `convert_model_output`: x̂0 for the ++ variants, ε̂ for DPM-Solver, at σ[k]:
    /// x̂0 = (x − σ_t·ε̂)/α_t (ε), = out (sample), = α_t·x − σ_t·v̂ (v);
    /// ε̂ = out (ε), = (x − α_t·x̂0)/σ_t (sample), = α_t·v̂ + σ_t·x (v).
    fn convert(&self, out: Tensor<4>, x: Tensor<4>, s: Vp) -> Tensor<4> {
        let (a, sg) = (s.alpha, s.sigma);
        if self.options.algorithm.integrates_x0() {
            match self.options.prediction {
                PredictionType::Epsilon => (x - out.mul_scalar(sg as f32)).div_scalar(a as f32),
                // (Flow: never; `prediction_of` refuses it.)
                PredictionType::Sample | PredictionType::Flow => out,
                PredictionType::VPrediction => x.mul_scalar(a as f32) - out.mul_scalar(sg as f32),
            }
        } else {
            match self.options.prediction {
                PredictionType::Epsilon | PredictionType::Flow => out,
                PredictionType::Sample => (x - out.mul_scalar(a as f32)).div_scalar(sg as f32),
                PredictionType::VPrediction => out.mul_scalar(a as f32) + x.mul_scalar(sg as f32),
            }
        }
    }

    /// The update of call `k` of order `order` from `x`, with the history already holding
    /// this call's converted output last.
    fn update(&self, k: usize, order: usize, x: Tensor<4>, z: Option<Tensor<4>>) -> Tensor<4> {
        let vp = |i: usize| Vp::from_sigma(self.sigmas[i]);
        let (s0, t) = (vp(k), vp(k + 1));
        let h = t.lambda - s0.lambda;
        if h == 0.0 {
            // σ_t = σ_s (a Karras grid ending at σ_min): no time passes; diffusers' Heun and
            // third-order weights would be 0/0 here.
            return x;
        }
        let m = &self.model_outputs;
        let m0 = m[m.len() - 1].clone();
        let alg = self.options.algorithm;
        match order {
            1 => combine(first_order(alg, s0, t, h), x, &[m0], z),
            2 => {
                let s1 = vp(k - 1);
                let r0 = (s0.lambda - s1.lambda) / h;
                let m1 = m[m.len() - 2].clone();
                let d1 = (m0.clone() - m1).mul_scalar((1.0 / r0) as f32);
                let c = second_order(alg, self.options.solver_type, s0, t, h);
                combine(c, x, &[m0, d1], z)
            }
            _ => {
                let (s1, s2) = (vp(k - 1), vp(k - 2));
                let r0 = (s0.lambda - s1.lambda) / h;
                let r1 = (s1.lambda - s2.lambda) / h;
                let m1 = m[m.len() - 2].clone();
                let m2 = m[m.len() - 3].clone();
                let d1_0 = (m0.clone() - m1.clone()).mul_scalar((1.0 / r0) as f32);
                let d1_1 = (m1 - m2).mul_scalar((1.0 / r1) as f32);
                let diff = d1_0.clone() - d1_1;
                let d1 = d1_0 + diff.clone().mul_scalar((r0 / (r0 + r1)) as f32);
                let d2 = diff.mul_scalar((1.0 / (r0 + r1)) as f32);
                combine(third_order(alg, s0, t, h), x, &[m0, d1, d2], z)
            }
        }
    }
}

impl Solver for DpmSolver {
    fn name(&self) -> String {
        let o = &self.options;
        let family = if o.algorithm.integrates_x0() {
            "DPM-Solver++"
        } else {
            "DPM-Solver"
        };
        let mut name = format!("{family} {}M", o.order);
        if o.algorithm.is_stochastic() {
            name.push_str(" SDE");
        }
        if o.solver_type == DpmSolverType::Heun && o.order > 1 {
            name.push_str(" Heun");
        }
        if o.karras {
            name.push_str(" Karras");
        }
        name
    }

    fn timesteps(&self) -> Vec<f64> {
        self.timesteps.clone()
    }

    fn sigmas(&self) -> Vec<f64> {
        self.sigmas.clone()
    }

    fn needs_noise(&self, _call: usize) -> bool {
        self.options.algorithm.is_stochastic()
    }

    /// diffusers' `step`. Call 0 starts a fresh run (the history is cleared); later calls must
    /// follow in order.
    fn step(
        &mut self,
        model_output: Tensor<4>,
        call: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<SolverStep> {
        if call == 0 {
            self.model_outputs.clear();
            self.lower_order_nums = 0;
            self.step_index = 0;
        }
        check_call(SCHEDULER, call, self.step_index, self.timesteps.len())?;
        check_shapes(&model_output, &sample, noise.as_ref())?;
        let noise = if self.options.algorithm.is_stochastic() {
            Some(noise.ok_or_else(|| {
                DiffError::invalid(format!(
                    "{SCHEDULER}: call {call} of sde-dpmsolver++ adds noise, but none was given"
                ))
            })?)
        } else {
            None
        };
        let k = call;
        let order = self.order_at(k);
        let s = Vp::from_sigma(self.sigmas[k]);
        let converted = self.convert(model_output, sample.clone(), s);
        if self.model_outputs.len() == self.options.order {
            self.model_outputs.remove(0);
        }
        self.model_outputs.push(converted.clone());
        let prev_sample = self.update(k, order, sample.clone(), noise);
        self.lower_order_nums = (self.lower_order_nums + 1).min(self.options.order);
        self.step_index += 1;
        let x0 = if self.options.algorithm.integrates_x0() {
            converted
        } else {
            (sample - converted.mul_scalar(s.sigma as f32)).div_scalar(s.alpha as f32)
        };
        Ok(SolverStep {
            prev_sample,
            pred_original_sample: Some(x0),
        })
    }
}

/// Fails unless `call` is the expected next call and within the N steps.
pub(super) fn check_call(scheduler: &str, call: usize, expected: usize, n: usize) -> Result<()> {
    if call >= n {
        return Err(DiffError::invalid(format!(
            "{scheduler}: call {call} is past the last of its {n} calls"
        )));
    }
    if call != expected {
        return Err(DiffError::invalid(format!(
            "{scheduler}: calls must come in order (0, 1, 2, …): got {call}, expected {expected}"
        )));
    }
    Ok(())
}

/// Fails when the model output or the noise is not shaped like the sample.
pub(super) fn check_shapes(
    model_output: &Tensor<4>,
    sample: &Tensor<4>,
    noise: Option<&Tensor<4>>,
) -> Result<()> {
    let want = sample.dims();
    for (what, got) in [
        ("model output", Some(model_output.dims())),
        ("noise", noise.map(Tensor::dims)),
    ] {
        if let Some(got) = got
            && got != want
        {
            return Err(DiffError::invalid(format!(
                "the {what} has shape {got:?}, the sample {want:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use burn::tensor::Device;
    use serde_json::{Value, json};

    use super::*;
    use crate::diffusion::solvers::from_diffusers;
    use crate::tensor_util::{tensor4, to_vec};

    const TOL: f64 = 1e-4;

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|x| x.as_f64().expect("a number"))
            .collect()
    }

    /// The largest |a − b|, or ∞ when the lengths differ.
    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        if a.len() != b.len() {
            return f64::INFINITY;
        }
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// Runs a whole loop with the model out(x, t) = x·t/(t+1); returns the sample after
    /// every call.
    pub(in crate::diffusion::solvers) fn run_loop(
        solver: &mut dyn Solver,
        x_t: &[f64],
        noise: Option<&[Vec<f64>]>,
    ) -> Vec<Vec<f64>> {
        let device = Device::flex();
        let shape = [1, 1, 4, 4];
        let up = |v: &[f64]| tensor4(v.iter().map(|x| *x as f32).collect(), shape, &device);
        let mut x = up(x_t);
        let mut samples = Vec::new();
        for (k, t) in solver.call_timesteps().into_iter().enumerate() {
            let input = solver.scale_model_input(x.clone(), k);
            let out = input.mul_scalar((t / (t + 1.0)) as f32);
            let z = if solver.needs_noise(k) {
                Some(up(&noise.expect("noise for a stochastic solver")[k]))
            } else {
                None
            };
            x = solver.step(out, k, x, z).expect("a step").prev_sample;
            let v = to_vec(x.clone()).expect("readback");
            samples.push(v.into_iter().map(f64::from).collect());
        }
        samples
    }

    /// Checks every case of `scheduler` in tests/golden/solver_loops.json (diffusers 0.42.1):
    /// timesteps, σ, the sample after every call and the final sample, within 1e-4.
    pub(in crate::diffusion::solvers) fn check_golden(scheduler: &str, expected_cases: usize) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/solver_loops.json"
        );
        let text = std::fs::read_to_string(path).expect("the golden file");
        let golden: Value = serde_json::from_str(&text).expect("golden JSON");
        let mut seen = 0;
        let mut failures = Vec::new();
        for (i, case) in golden["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .enumerate()
        {
            if case["scheduler"] != scheduler {
                continue;
            }
            seen += 1;
            let n = case["num_inference_steps"].as_u64().expect("N") as usize;
            let mut solver = from_diffusers(scheduler, &case["config"], n).expect("a solver");
            let what = format!("case {i} ({})", case["config"]);
            let init = case["init_noise_sigma"].as_f64().expect("init_noise_sigma");
            assert!((solver.init_noise_sigma() - init).abs() < TOL, "{what}");
            let mut check = |name: &str, ours: &[f64], theirs: &[f64]| {
                let d = max_diff(ours, theirs);
                if d >= TOL {
                    failures.push(format!("{what}: {name} differs by {d:e}"));
                }
            };
            check(
                "timesteps",
                &solver.timesteps(),
                &floats(&case["timesteps"]),
            );
            check(
                "model_calls_t",
                &solver.call_timesteps(),
                &floats(&case["model_calls_t"]),
            );
            check("sigmas", &solver.sigmas(), &floats(&case["sigmas"]));
            let noise: Option<Vec<Vec<f64>>> = case
                .get("noise_per_step")
                .map(|v| v.as_array().expect("noise").iter().map(floats).collect());
            let samples = run_loop(solver.as_mut(), &floats(&case["x_T"]), noise.as_deref());
            let expected = case["samples_per_call"].as_array().expect("samples");
            if samples.len() == expected.len() {
                for (k, (ours, theirs)) in samples.iter().zip(expected).enumerate() {
                    check(&format!("call {k}"), ours, &floats(theirs));
                }
            } else {
                check(
                    "number of calls",
                    &[samples.len() as f64],
                    &[expected.len() as f64],
                );
            }
            let last = samples.last().cloned().unwrap_or_default();
            check("final_sample", &last, &floats(&case["final_sample"]));
        }
        assert_eq!(seen, expected_cases, "number of {scheduler} cases");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn matches_diffusers_golden_loops() {
        check_golden(SCHEDULER, 8);
    }

    /// x_T and per-call noise for the oracle cases below: x_T[i] = sin(1.3·i + 0.5),
    /// z_k[i] = cos(0.7·i + k).
    pub(in crate::diffusion::solvers) fn oracle_inputs(n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
        let x: Vec<f64> = (0..16).map(|i| (1.3 * f64::from(i) + 0.5).sin()).collect();
        let z = (0..n)
            .map(|k| {
                (0..16)
                    .map(|i| (0.7 * f64::from(i) + k as f64).cos())
                    .collect()
            })
            .collect();
        (x, z)
    }

    /// Runs one oracle case and compares the first values of its final sample.
    pub(in crate::diffusion::solvers) fn check_oracle(
        scheduler: &str,
        config: &Value,
        n: usize,
        expected: &[f64],
    ) {
        let mut solver = from_diffusers(scheduler, config, n).expect("a solver");
        let (x, z) = oracle_inputs(n);
        let samples = run_loop(solver.as_mut(), &x, Some(&z));
        let last = samples.last().expect("a call");
        let d = max_diff(&last[..expected.len()], expected);
        assert!(
            d < TOL,
            "{config}, N = {n}: the final sample differs by {d:e}"
        );
    }

    /// Paths the golden file does not cover, against diffusers' own
    /// `DPMSolverMultistepScheduler` code (diffusers main of 2026, run with torch 2.15 on the
    /// inputs of [`oracle_inputs`]): the first 4 values of the final sample.
    #[test]
    fn matches_diffusers_on_other_options() {
        let cases = [
            (
                json!({"solver_type": "heun"}),
                10,
                [0.233_458_34, 0.474_219_23, 0.020_247_882, -0.463_386_65],
            ),
            (
                json!({"solver_order": 3, "algorithm_type": "dpmsolver",
                    "final_sigmas_type": "sigma_min"}),
                12,
                [0.237_702_7, 0.482_840_78, 0.020_616_006, -0.471_811_53],
            ),
            (
                json!({"solver_order": 3, "algorithm_type": "sde-dpmsolver++"}),
                20,
                [-0.239_377_56, -0.140_511_13, 0.022_641_037, 0.175_067_89],
            ),
            (
                json!({"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}),
                8,
                [0.101_276_41, 0.361_252_7, 0.449_200_54, 0.325_791_45],
            ),
            (
                json!({"prediction_type": "sample", "solver_order": 3}),
                25,
                [0.906_378_75, 1.841_108_9, 0.078_610_383, -1.799_053_4],
            ),
            (
                json!({"algorithm_type": "dpmsolver", "prediction_type": "v_prediction",
                    "final_sigmas_type": "sigma_min", "solver_type": "heun"}),
                10,
                [0.087_438_852, 0.177_612_84, 0.007_583_587, -0.173_555_64],
            ),
            (
                json!({"timestep_spacing": "trailing"}),
                7,
                [0.214_043_83, 0.434_783_01, 0.018_564_055, -0.424_851_21],
            ),
            (
                json!({"timestep_spacing": "leading", "steps_offset": 1, "solver_order": 3}),
                9,
                [0.233_860_84, 0.475_036_92, 0.020_282_79, -0.464_185_66],
            ),
            (
                json!({"beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1}),
                10,
                [0.243_726_85, 0.495_077_16, 0.021_138_487, -0.483_768_08],
            ),
            (
                json!({"euler_at_final": true, "solver_order": 3}),
                20,
                [0.240_672_19, 0.488_872_77, 0.020_873_55, -0.477_705_39],
            ),
            (
                json!({"lower_order_final": false, "solver_order": 3}),
                10,
                [0.235_081_87, 0.477_517_16, 0.020_388_693, -0.466_609_24],
            ),
            (
                json!({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                    "use_karras_sigmas": true, "solver_order": 3,
                    "final_sigmas_type": "sigma_min"}),
                10,
                [0.259_800_94, 0.527_728_5, 0.022_532_586, -0.515_673_7],
            ),
            (
                json!({"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min",
                    "lower_order_final": false}),
                10,
                [0.279_512_08, 0.567_767_32, 0.024_242_131, -0.554_797_83],
            ),
        ];
        for (config, n, want) in cases {
            check_oracle(SCHEDULER, &config, n, &want);
        }
    }

    /// Where diffusers breaks, difflab refuses or takes the limit: a cosine Karras grid
    /// truncates its first timesteps to the same 998 (diffusers' step index then starts at 1
    /// and runs off the end), and a Karras grid that ends at σ_min has h = 0 in its last step
    /// (diffusers' third-order weights are 0/0 there; no time passes, so x is kept).
    #[test]
    fn refuses_or_takes_the_limit_where_diffusers_breaks() {
        let cosine = json!({"beta_schedule": "squaredcos_cap_v2", "use_karras_sigmas": true});
        assert!(DpmSolver::from_diffusers(&cosine, 10).is_err());
        let config = json!({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
            "beta_end": 0.012, "use_karras_sigmas": true, "solver_order": 3,
            "final_sigmas_type": "sigma_min"});
        let mut solver = from_diffusers(SCHEDULER, &config, 20).expect("a solver");
        let (x, z) = oracle_inputs(20);
        let samples = run_loop(solver.as_mut(), &x, Some(&z));
        assert!(samples.iter().flatten().all(|v| v.is_finite()));
        assert_eq!(samples[18], samples[19]);
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        for config in [
            json!({"solver_order": 4}),
            json!({"solver_order": 0}),
            json!({"algorithm_type": "sde-dpmsolver"}),
            json!({"algorithm_type": "dpmsolver"}),
            json!({"thresholding": true}),
            json!({"use_lu_lambdas": true}),
            json!({"variance_type": "learned_range"}),
            json!({"prediction_type": "flow_prediction"}),
            json!({"beta_schedule": "sigmoid"}),
            json!({"trained_betas": [0.1, 0.2]}),
            json!({"some_future_option": 1}),
            json!({"use_karras_sigmas": "yes"}),
        ] {
            assert!(DpmSolver::from_diffusers(&config, 10).is_err(), "{config}");
        }
        assert!(DpmSolver::from_diffusers(&json!({}), 0).is_err());
        // Defaults spelled out are fine.
        let full = json!({"thresholding": false, "trained_betas": null, "variance_type": null,
            "sample_max_value": 1.0, "use_lu_lambdas": false, "flow_shift": 1,
            "time_shift_type": "exponential", "algorithm_type": "deis", "solver_type": "bh2"});
        assert!(DpmSolver::from_diffusers(&full, 10).is_ok());
    }

    #[test]
    fn plain_constructor_matches_the_config() {
        let schedule = super::super::sigmas::schedule_of(&json!({})).expect("schedule");
        for (alg, name) in [
            (DpmAlgorithm::DpmSolverPlusPlus, "dpmsolver++"),
            (DpmAlgorithm::DpmSolver, "dpmsolver"),
        ] {
            let a = DpmSolver::new(&schedule, PredictionType::Epsilon, 10, 3, alg, true)
                .expect("solver");
            let config = json!({"algorithm_type": name, "solver_order": 3,
                "use_karras_sigmas": true,
                "final_sigmas_type":
                    if alg == DpmAlgorithm::DpmSolver { "sigma_min" } else { "zero" }});
            let b = DpmSolver::from_diffusers(&config, 10).expect("solver");
            assert_eq!(a.timesteps, b.timesteps);
            assert_eq!(a.sigmas, b.sigmas);
            assert_eq!(a.options, b.options);
        }
        assert!(
            DpmSolver::new(
                &schedule,
                PredictionType::Epsilon,
                10,
                4,
                DpmAlgorithm::DpmSolverPlusPlus,
                false
            )
            .is_err()
        );
        let s = DpmSolver::new(
            &schedule,
            PredictionType::Epsilon,
            20,
            2,
            DpmAlgorithm::SdeDpmSolverPlusPlus,
            true,
        )
        .expect("solver");
        assert_eq!(s.name(), "DPM-Solver++ 2M SDE Karras");
        assert!(s.needs_noise(0));
    }

    #[test]
    fn calls_must_come_in_order_and_call_zero_restarts() {
        let mut s = DpmSolver::from_diffusers(&json!({}), 5).expect("solver");
        let device = Device::flex();
        let x = tensor4(vec![0.5; 16], [1, 1, 4, 4], &device);
        assert!(s.step(x.clone(), 1, x.clone(), None).is_err());
        let first = to_vec(
            s.step(x.clone(), 0, x.clone(), None)
                .expect("step")
                .prev_sample,
        )
        .expect("readback");
        s.step(x.clone(), 1, x.clone(), None).expect("step");
        assert!(s.step(x.clone(), 3, x.clone(), None).is_err());
        let again = to_vec(
            s.step(x.clone(), 0, x.clone(), None)
                .expect("step")
                .prev_sample,
        )
        .expect("readback");
        assert_eq!(first, again);
        let sde = json!({"algorithm_type": "sde-dpmsolver++"});
        let mut s = DpmSolver::from_diffusers(&sde, 5).expect("solver");
        assert!(s.step(x.clone(), 0, x, None).is_err());
    }
}
