//! Euler and Euler ancestral in σ = √((1−ᾱ)/ᾱ), with the semantics of diffusers'
//! `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler`.
//!
//! With x = x_t/√ᾱ_t the forward process is x = x_0 + σ·ε, and sampling integrates the
//! probability-flow ODE dx/dσ = (x − D(x; σ))/σ (Karras et al. 2022, eq. 3 with s(t) = 1,
//! σ(t) = t), where D(x; σ) = x̂0 is the model's denoised estimate. The model was trained on
//! x_t = x/√(σ²+1), so that is what it is fed ([`Solver::scale_model_input`]).
//!
//! - **Euler** (Karras et al. Algorithm 2, lines 7–8, with no churn and no second-order
//!   correction): d = (x − x̂0)/σ_i, x ← x + (σ_{i+1} − σ_i)·d.
//! - **Euler ancestral**: the step to σ_{i+1} is split into a deterministic Euler step down to
//!   σ_down and fresh noise of standard deviation σ_up, σ_down² + σ_up² = σ_{i+1}²
//!   ([`ancestral_split`]).
//!
//! The σ of a run ([`sigma_plan`], shared with [`super::heun`]) are diffusers' `set_timesteps`:
//! N timesteps spread over [0, T−1] (`linspace`, the default here, or `leading` / `trailing`),
//! σ interpolated linearly at those (fractional) t, or Karras σ (ρ = 7) / log-uniform σ between
//! the end points with t = [`sigma_to_t`] of each, then a final σ = 0 appended. Like diffusers,
//! every σ and t is a float32 value, and the step's arithmetic is float32.

use burn::tensor::Tensor;
use serde_json::Value;

use super::sigmas::{karras_sigmas, linspace, schedule_of, sigma_to_t};
use super::{Solver, SolverStep, check_known_keys, prediction_of};
use crate::diffusion::{NoiseSchedule, PredictionType, TimestepSpacing, timesteps};
use crate::error::{DiffError, Result};

/// How the N σ of a run are placed between σ_max and σ_min.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigmaSpacing {
    /// σ(t) of the training schedule, interpolated at the spaced timesteps (diffusers' default).
    Interpolated,
    /// Karras et al. 2022, eq. 5 (ρ = 7): denser near σ_min (`use_karras_sigmas`).
    Karras,
    /// Uniform in log σ (`use_exponential_sigmas`).
    Exponential,
}

impl SigmaSpacing {
    /// " Karras", " Exponential" or nothing: what front ends append to a solver's name.
    pub fn suffix(self) -> &'static str {
        match self {
            SigmaSpacing::Interpolated => "",
            SigmaSpacing::Karras => " Karras",
            SigmaSpacing::Exponential => " Exponential",
        }
    }
}

/// diffusers' `set_timesteps` options for the σ-based solvers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SigmaOptions {
    /// How N timesteps are spread over [0, T−1] (diffusers' `timestep_spacing`).
    pub timestep_spacing: TimestepSpacing,
    /// Added to every timestep, `leading` spacing only (diffusers' `steps_offset`).
    pub steps_offset: usize,
    /// Interpolated, Karras or exponential σ.
    pub sigma_spacing: SigmaSpacing,
    /// The σ_min of Karras / exponential σ (default: the last interpolated σ).
    pub sigma_min: Option<f64>,
    /// The σ_max of Karras / exponential σ (default: the first interpolated σ).
    pub sigma_max: Option<f64>,
    /// End at σ_0 of the training schedule instead of 0 (`final_sigmas_type = "sigma_min"`).
    pub final_sigma_min: bool,
}

impl Default for SigmaOptions {
    /// diffusers' defaults: linspace timesteps, interpolated σ, a final σ of 0.
    fn default() -> Self {
        Self {
            timestep_spacing: TimestepSpacing::Linspace,
            steps_offset: 0,
            sigma_spacing: SigmaSpacing::Interpolated,
            sigma_min: None,
            sigma_max: None,
            final_sigma_min: false,
        }
    }
}

/// The timesteps and σ of a run, before Heun doubles them.
#[derive(Clone, Debug, PartialEq)]
pub struct SigmaPlan {
    /// t of each of the N steps (fractional for Karras and exponential σ).
    pub timesteps: Vec<f64>,
    /// σ of each step, then the final σ: N + 1 values.
    pub sigmas: Vec<f64>,
    /// What x_T ~ N(0, I) is multiplied by: σ_max, or √(σ_max² + 1) for leading spacing.
    pub init_noise_sigma: f64,
}

/// The `beta_schedule`s the σ-based solvers take: diffusers' Euler and Heun schedulers know the
/// first three; "sigmoid" (diffusers' `DDPMScheduler` has it) is difflab's addition, so that
/// every difflab schedule can be sampled with them.
pub(super) const BETA_SCHEDULES: &[&str] =
    &["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"];

/// Rounds to float32, as diffusers stores its σ and t.
pub(super) fn f32r(x: f64) -> f64 {
    f64::from(x as f32)
}

/// σ_t = √((1−ᾱ_t)/ᾱ_t) for every training t, computed in float32 from the float32 ᾱ_t (as
/// torch does), so that σ is diffusers' to the bit. (Its log σ comes from numpy's float32 log,
/// which can differ from a correctly rounded one in the last bit: a Karras t may then be one
/// float32 step away, at most 6.1e-5 below T = 1024.)
fn float32_training_sigmas(alphas_cumprod: &[f64]) -> Vec<f64> {
    alphas_cumprod
        .iter()
        .map(|&a| {
            let a = a as f32;
            f64::from(((1.0 - a) / a).sqrt())
        })
        .collect()
}

/// σ at a fractional t: [`super::sigmas::interp_sigma`] with numpy's own rounding
/// (`np.interp`: slope·(t − j) + σ_j), so that the float32 σ are those diffusers computes on
/// a CPU.
fn np_interp(t: f64, sigmas: &[f64]) -> f64 {
    let last = sigmas.len() - 1;
    let j = (t.max(0.0).floor() as usize).min(last);
    if j == last || t <= 0.0 {
        return if t <= 0.0 { sigmas[0] } else { sigmas[last] };
    }
    let x = t - j as f64;
    if x == 0.0 {
        return sigmas[j];
    }
    (sigmas[j + 1] - sigmas[j]) * x + sigmas[j]
}

/// diffusers' `set_timesteps` for `EulerDiscreteScheduler` (and the other σ-based schedulers):
/// N spaced timesteps, σ at each, then the final σ.
pub fn sigma_plan(schedule: &NoiseSchedule, n: usize, options: &SigmaOptions) -> Result<SigmaPlan> {
    if n == 0 {
        return Err(DiffError::invalid(
            "the number of sampling steps must be at least 1",
        ));
    }
    let t_train = schedule.num_timesteps();
    let ts: Vec<f64> = match options.timestep_spacing {
        // np.linspace(0, T−1, N, dtype=float32)[::-1]: fractional t, both ends included.
        TimestepSpacing::Linspace => linspace(0.0, (t_train - 1) as f64, n)
            .into_iter()
            .rev()
            .map(f32r)
            .collect(),
        spacing => timesteps(spacing, t_train, n, options.steps_offset)?
            .into_iter()
            .map(|t| t as f64)
            .collect(),
    };
    let train = float32_training_sigmas(&schedule.alphas_cumprod);
    let mut sigmas: Vec<f64> = ts.iter().map(|&t| np_interp(t, &train)).collect();
    let ts = if options.sigma_spacing == SigmaSpacing::Interpolated {
        ts
    } else {
        let lo = options.sigma_min.unwrap_or(sigmas[n - 1]);
        let hi = options.sigma_max.unwrap_or(sigmas[0]);
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return Err(DiffError::invalid(format!(
                "σ_min = {lo} and σ_max = {hi} must satisfy 0 < σ_min ≤ σ_max"
            )));
        }
        sigmas = match options.sigma_spacing {
            SigmaSpacing::Karras => karras_sigmas(lo, hi, n, 7.0),
            _ => linspace(hi.ln(), lo.ln(), n)
                .into_iter()
                .map(f64::exp)
                .collect(),
        };
        // np.log of the float32 σ is float32 (and so diffusers' t).
        let log_sigmas: Vec<f64> = train.iter().map(|&s| f64::from((s as f32).ln())).collect();
        sigmas
            .iter()
            .map(|&s| f32r(sigma_to_t(s, &log_sigmas)))
            .collect()
    };
    sigmas.push(if options.final_sigma_min {
        train[0]
    } else {
        0.0
    });
    let sigmas: Vec<f64> = sigmas.into_iter().map(f32r).collect();
    let init_noise_sigma = init_noise_sigma(&sigmas, options.timestep_spacing);
    Ok(SigmaPlan {
        timesteps: ts,
        sigmas,
        init_noise_sigma,
    })
}

/// diffusers' `init_noise_sigma`: σ_max for linspace and trailing spacing, √(σ_max² + 1) for
/// leading (float32).
pub(super) fn init_noise_sigma(sigmas: &[f64], spacing: TimestepSpacing) -> f64 {
    let max = sigmas.iter().copied().fold(0.0, f64::max) as f32;
    match spacing {
        TimestepSpacing::Leading => f64::from((max * max + 1.0).sqrt()),
        _ => f64::from(max),
    }
}

/// The model's input at σ: x/√(σ²+1) = x_t, the noisy sample on the training scale.
pub(super) fn scale_input(sample: Tensor<4>, sigma: f64) -> Tensor<4> {
    let s = sigma as f32;
    sample.div_scalar((s * s + 1.0).sqrt())
}

/// D(x; σ) = x̂0 from the model output at σ (x = x_0 + σ·ε, model input x_t = x/√(σ²+1)):
/// - ε: x̂0 = x − σ·ε̂;
/// - v = √ᾱ·ε − √(1−ᾱ)·x_0 (Salimans & Ho 2022), √ᾱ = 1/√(σ²+1):
///   x̂0 = x/(σ²+1) − σ/√(σ²+1)·v̂;
/// - x_0: x̂0 is the output.
pub(super) fn denoised(
    prediction: PredictionType,
    model_output: Tensor<4>,
    sample: Tensor<4>,
    sigma: f64,
) -> Tensor<4> {
    let s = sigma as f32;
    match prediction {
        PredictionType::Epsilon => sample - model_output.mul_scalar(s),
        PredictionType::VPrediction => {
            model_output.mul_scalar(-s / (s * s + 1.0).sqrt()) + sample.div_scalar(s * s + 1.0)
        }
        // (Flow: never; `prediction_of` refuses it.)
        PredictionType::Sample | PredictionType::Flow => model_output,
    }
}

/// The ODE's derivative dx/dσ = (x − D(x; σ))/σ (Karras et al. 2022, Algorithm 2, line 7).
pub(super) fn derivative(sample: Tensor<4>, denoised: Tensor<4>, sigma: f64) -> Tensor<4> {
    (sample - denoised).div_scalar(sigma as f32)
}

/// One Euler step x + Δσ·d (Algorithm 2, line 8), Δσ = σ_to − σ_from in float32.
pub(super) fn euler_update(
    sample: Tensor<4>,
    d: Tensor<4>,
    sigma_from: f64,
    sigma_to: f64,
) -> Tensor<4> {
    let dt = sigma_to as f32 - sigma_from as f32;
    sample + d.mul_scalar(dt)
}

/// (σ_up, σ_down) of an ancestral step from σ_from to σ_to:
/// σ_up = √(σ_to²·(σ_from² − σ_to²)/σ_from²), σ_down = √(σ_to² − σ_up²).
///
/// σ_up² is the variance of x_{σ_to} given x_{σ_from} and x_0 (DDPM's posterior, Ho et al.
/// eq. 7, in σ space); the mean is reached by an Euler step to σ_down (k-diffusion's
/// `get_ancestral_step` with η = 1).
pub fn ancestral_split(sigma_from: f64, sigma_to: f64) -> (f64, f64) {
    let (from, to) = (sigma_from as f32, sigma_to as f32);
    let up = (to * to * (from * from - to * to) / (from * from))
        .max(0.0)
        .sqrt();
    let down = (to * to - up * up).max(0.0).sqrt();
    (f64::from(up), f64::from(down))
}

/// Euler or Euler ancestral with its σ set.
pub struct Euler {
    prediction: PredictionType,
    ancestral: bool,
    sigma_spacing: SigmaSpacing,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    init_noise_sigma: f64,
}

impl Euler {
    /// N steps on `schedule` with diffusers' defaults (linspace timesteps, a final σ of 0),
    /// Karras σ when `karras`, the ancestral (stochastic) variant when `ancestral`.
    pub fn new(
        schedule: &NoiseSchedule,
        prediction: PredictionType,
        n: usize,
        karras: bool,
        ancestral: bool,
    ) -> Result<Self> {
        let options = SigmaOptions {
            sigma_spacing: if karras {
                SigmaSpacing::Karras
            } else {
                SigmaSpacing::Interpolated
            },
            ..SigmaOptions::default()
        };
        Self::with_options(schedule, prediction, n, &options, ancestral)
    }

    /// N steps on `schedule` with every `set_timesteps` option spelled out.
    pub fn with_options(
        schedule: &NoiseSchedule,
        prediction: PredictionType,
        n: usize,
        options: &SigmaOptions,
        ancestral: bool,
    ) -> Result<Self> {
        let plan = sigma_plan(schedule, n, options)?;
        Ok(Self {
            prediction,
            ancestral,
            sigma_spacing: options.sigma_spacing,
            timesteps: plan.timesteps,
            sigmas: plan.sigmas,
            init_noise_sigma: plan.init_noise_sigma,
        })
    }

    /// `EulerDiscreteScheduler(**config)` (`EulerAncestralDiscreteScheduler` when `ancestral`)
    /// after `set_timesteps(num_inference_steps)`.
    pub fn from_diffusers(
        config: &Value,
        num_inference_steps: usize,
        ancestral: bool,
    ) -> Result<Self> {
        if ancestral {
            Self::ancestral_from_diffusers(config, num_inference_steps)
        } else {
            Self::euler_from_diffusers(config, num_inference_steps)
        }
    }

    fn euler_from_diffusers(config: &Value, n: usize) -> Result<Self> {
        const NAME: &str = "EulerDiscreteScheduler";
        check_known_keys(
            NAME,
            config,
            &[
                "num_train_timesteps",
                "beta_start",
                "beta_end",
                "beta_schedule",
                "trained_betas",
                "prediction_type",
                "interpolation_type",
                "use_karras_sigmas",
                "use_exponential_sigmas",
                "use_beta_sigmas",
                "sigma_min",
                "sigma_max",
                "timestep_spacing",
                "timestep_type",
                "steps_offset",
                "rescale_betas_zero_snr",
                "final_sigmas_type",
            ],
        )?;
        let c = Config::new(NAME, config);
        let schedule = c.schedule(1e-4, 0.02, BETA_SCHEDULES)?;
        let prediction = prediction_of(config)?;
        c.only_default("rescale_betas_zero_snr", &Value::Bool(false))?;
        c.only_default("interpolation_type", &Value::from("linear"))?;
        let final_sigma_min = match c.text("final_sigmas_type", "zero")? {
            "zero" => false,
            "sigma_min" => true,
            other => return Err(c.bad_value("final_sigmas_type", other)),
        };
        let continuous = match c.text("timestep_type", "discrete")? {
            "discrete" => false,
            "continuous" => true,
            other => return Err(c.bad_value("timestep_type", other)),
        };
        let options = SigmaOptions {
            timestep_spacing: c.spacing()?,
            steps_offset: c.count("steps_offset", 0)?,
            sigma_spacing: c.sigma_spacing()?,
            sigma_min: c.number("sigma_min")?,
            sigma_max: c.number("sigma_max")?,
            final_sigma_min,
        };
        let mut euler = Self::with_options(&schedule, prediction, n, &options, false)?;
        // diffusers' continuous v-prediction models (EDM-style) take t = ¼·ln σ.
        if continuous && prediction == PredictionType::VPrediction {
            euler.timesteps = euler.sigmas[..n]
                .iter()
                .map(|&s| f64::from(0.25 * (s as f32).ln()))
                .collect();
        }
        Ok(euler)
    }

    fn ancestral_from_diffusers(config: &Value, n: usize) -> Result<Self> {
        const NAME: &str = "EulerAncestralDiscreteScheduler";
        check_known_keys(
            NAME,
            config,
            &[
                "num_train_timesteps",
                "beta_start",
                "beta_end",
                "beta_schedule",
                "trained_betas",
                "prediction_type",
                "timestep_spacing",
                "steps_offset",
                "rescale_betas_zero_snr",
                // difflab's additions ("Euler a Karras"), with EulerDiscreteScheduler's meaning.
                "use_karras_sigmas",
                "use_exponential_sigmas",
                "use_beta_sigmas",
            ],
        )?;
        let c = Config::new(NAME, config);
        let schedule = c.schedule(1e-4, 0.02, BETA_SCHEDULES)?;
        // diffusers raises NotImplementedError for "sample"; difflab takes x̂0 = the output, as
        // EulerDiscreteScheduler does.
        let prediction = prediction_of(config)?;
        c.only_default("rescale_betas_zero_snr", &Value::Bool(false))?;
        let options = SigmaOptions {
            timestep_spacing: c.spacing()?,
            steps_offset: c.count("steps_offset", 0)?,
            sigma_spacing: c.sigma_spacing()?,
            ..SigmaOptions::default()
        };
        Self::with_options(&schedule, prediction, n, &options, true)
    }

    fn check_call(&self, call: usize) -> Result<()> {
        if call + 1 < self.sigmas.len() {
            Ok(())
        } else {
            Err(DiffError::invalid(format!(
                "call {call} is past the last of {} steps",
                self.sigmas.len() - 1
            )))
        }
    }
}

impl Solver for Euler {
    fn name(&self) -> String {
        let a = if self.ancestral { " a" } else { "" };
        format!("Euler{a}{}", self.sigma_spacing.suffix())
    }

    fn timesteps(&self) -> Vec<f64> {
        self.timesteps.clone()
    }

    fn sigmas(&self) -> Vec<f64> {
        self.sigmas.clone()
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: Tensor<4>, call: usize) -> Tensor<4> {
        match self.sigmas.get(call) {
            Some(&sigma) => scale_input(sample, sigma),
            None => sample,
        }
    }

    fn needs_noise(&self, call: usize) -> bool {
        self.ancestral
            && call + 1 < self.sigmas.len()
            && ancestral_split(self.sigmas[call], self.sigmas[call + 1]).0 > 0.0
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        call: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<SolverStep> {
        self.check_call(call)?;
        let (sigma, next) = (self.sigmas[call], self.sigmas[call + 1]);
        let x0 = denoised(self.prediction, model_output, sample.clone(), sigma);
        let d = derivative(sample.clone(), x0.clone(), sigma);
        let prev_sample = if self.ancestral {
            let (up, down) = ancestral_split(sigma, next);
            let mean = euler_update(sample, d, sigma, down);
            match noise {
                Some(z) => mean + z.mul_scalar(up as f32),
                None if up <= 0.0 => mean,
                None => {
                    return Err(DiffError::invalid(format!(
                        "Euler ancestral: call {call} adds noise and none was given"
                    )));
                }
            }
        } else {
            euler_update(sample, d, sigma, next)
        };
        Ok(SolverStep {
            prev_sample,
            pred_original_sample: Some(x0),
        })
    }
}

/// A diffusers config read strictly: each value must have the type diffusers expects; absent
/// or null takes the default.
pub(super) struct Config<'a> {
    scheduler: &'static str,
    config: &'a Value,
}

impl<'a> Config<'a> {
    pub(super) fn new(scheduler: &'static str, config: &'a Value) -> Self {
        Self { scheduler, config }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, expected: &str) -> DiffError {
        DiffError::invalid(format!(
            "{}: '{key}' must be {expected}, not {}",
            self.scheduler, self.config[key]
        ))
    }

    /// The error for a value of `key` that difflab does not implement.
    pub(super) fn bad_value(&self, key: &str, value: &str) -> DiffError {
        DiffError::invalid(format!(
            "{}: difflab does not implement {key} = {value}",
            self.scheduler
        ))
    }

    pub(super) fn flag(&self, key: &str, default: bool) -> Result<bool> {
        self.get(key).map_or(Ok(default), |v| {
            v.as_bool()
                .ok_or_else(|| self.wrong_type(key, "true or false"))
        })
    }

    pub(super) fn number(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.wrong_type(key, "a number")))
            .transpose()
    }

    pub(super) fn count(&self, key: &str, default: usize) -> Result<usize> {
        self.get(key).map_or(Ok(default), |v| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| self.wrong_type(key, "a whole number ≥ 0"))
        })
    }

    pub(super) fn text(&self, key: &str, default: &'a str) -> Result<&'a str> {
        self.get(key).map_or(Ok(default), |v| {
            v.as_str().ok_or_else(|| self.wrong_type(key, "a string"))
        })
    }

    /// Accepts `key` only at its default `value` (absent or null counts as the default).
    pub(super) fn only_default(&self, key: &str, value: &Value) -> Result<()> {
        match self.get(key) {
            None => Ok(()),
            Some(v) if v == value => Ok(()),
            Some(v) => Err(self.bad_value(key, &v.to_string())),
        }
    }

    /// The training schedule, with this scheduler's default β range and beta schedules.
    pub(super) fn schedule(
        &self,
        beta_start: f64,
        beta_end: f64,
        beta_schedules: &[&str],
    ) -> Result<NoiseSchedule> {
        self.only_default("trained_betas", &Value::Null)?;
        let kind = self.text("beta_schedule", "linear")?;
        if !beta_schedules.contains(&kind) {
            return Err(self.bad_value("beta_schedule", kind));
        }
        let t = self.count("num_train_timesteps", 1000)?;
        if t < 2 {
            return Err(DiffError::invalid(format!(
                "{}: num_train_timesteps must be at least 2",
                self.scheduler
            )));
        }
        let beta_start = self.number("beta_start")?.unwrap_or(beta_start);
        let beta_end = self.number("beta_end")?.unwrap_or(beta_end);
        schedule_of(&serde_json::json!({
            "num_train_timesteps": t,
            "beta_start": beta_start,
            "beta_end": beta_end,
            "beta_schedule": kind,
        }))
    }

    /// `timestep_spacing` (default "linspace").
    pub(super) fn spacing(&self) -> Result<TimestepSpacing> {
        match self.text("timestep_spacing", "linspace")? {
            "linspace" => Ok(TimestepSpacing::Linspace),
            "leading" => Ok(TimestepSpacing::Leading),
            "trailing" => Ok(TimestepSpacing::Trailing),
            other => Err(self.bad_value("timestep_spacing", other)),
        }
    }

    /// `use_karras_sigmas` / `use_exponential_sigmas` (at most one); `use_beta_sigmas` must be
    /// off.
    pub(super) fn sigma_spacing(&self) -> Result<SigmaSpacing> {
        self.only_default("use_beta_sigmas", &Value::Bool(false))?;
        match (
            self.flag("use_karras_sigmas", false)?,
            self.flag("use_exponential_sigmas", false)?,
        ) {
            (false, false) => Ok(SigmaSpacing::Interpolated),
            (true, false) => Ok(SigmaSpacing::Karras),
            (false, true) => Ok(SigmaSpacing::Exponential),
            (true, true) => Err(DiffError::invalid(format!(
                "{}: only one of use_karras_sigmas and use_exponential_sigmas can be used",
                self.scheduler
            ))),
        }
    }
}

/// diffusers' own runs (`tests/golden/solver_loops.json`), shared by the σ-family tests.
#[cfg(test)]
pub(super) mod golden {
    use burn::tensor::Device;
    use serde_json::Value;

    use super::super::Solver;
    use crate::error::Result;
    use crate::tensor_util::{tensor4, to_vec};

    const TOL: f64 = 1e-4;

    fn f64s(v: &Value) -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    }

    fn compare(what: &str, ours: &[f64], theirs: &[f64]) -> std::result::Result<f64, String> {
        if ours.len() != theirs.len() {
            return Err(format!(
                "{what}: {} values, diffusers has {}",
                ours.len(),
                theirs.len()
            ));
        }
        let mut worst = 0.0f64;
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            let e = (a - b).abs();
            if e.is_nan() || e > TOL {
                return Err(format!("{what}[{i}]: ours {a}, diffusers {b}"));
            }
            worst = worst.max(e);
        }
        Ok(worst)
    }

    /// One run with the model out(x, t) = x·t/(t+1); the largest difference, or the first
    /// mismatch.
    fn run(case: &Value, solver: &mut dyn Solver) -> std::result::Result<f64, String> {
        let device = Device::flex();
        let shape = [1, 1, 4, 4];
        let upload =
            |v: &Value| tensor4(f64s(v).iter().map(|x| *x as f32).collect(), shape, &device);
        let mut worst = compare("timesteps", &solver.timesteps(), &f64s(&case["timesteps"]))?;
        worst = worst.max(compare("sigmas", &solver.sigmas(), &f64s(&case["sigmas"]))?);
        let calls = solver.call_timesteps();
        worst = worst.max(compare(
            "model_calls_t",
            &calls,
            &f64s(&case["model_calls_t"]),
        )?);
        worst = worst.max(compare(
            "init_noise_sigma",
            &[solver.init_noise_sigma()],
            &[case["init_noise_sigma"].as_f64().unwrap_or(f64::NAN)],
        )?);
        let mut x = upload(&case["x_T"]);
        for (k, &t) in calls.iter().enumerate() {
            let input = solver.scale_model_input(x.clone(), k);
            let out = input.mul_scalar(t as f32).div_scalar(t as f32 + 1.0);
            let noise = solver
                .needs_noise(k)
                .then(|| upload(&case["noise_per_step"][k]));
            x = solver
                .step(out, k, x, noise)
                .map_err(|e| format!("call {k}: {e}"))?
                .prev_sample;
            let ours: Vec<f64> = to_vec(x.clone())
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(f64::from)
                .collect();
            let theirs = f64s(&case["samples_per_call"][k]);
            worst = worst.max(compare(&format!("call {k} sample"), &ours, &theirs)?);
        }
        let ours: Vec<f64> = to_vec(x)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(f64::from)
            .collect();
        worst = worst.max(compare(
            "final_sample",
            &ours,
            &f64s(&case["final_sample"]),
        )?);
        Ok(worst)
    }

    /// Runs every case of `scheduler` through `make(config, N)`; panics listing the failures.
    pub(in crate::diffusion::solvers) fn check(
        scheduler: &str,
        make: impl Fn(&Value, usize) -> Result<Box<dyn Solver>>,
    ) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/solver_loops.json"
        );
        let text = std::fs::read_to_string(path).expect("solver_loops.json");
        let all: Value = serde_json::from_str(&text).expect("JSON");
        let mut failures = Vec::new();
        let mut count = 0;
        for case in all["cases"].as_array().expect("cases") {
            if case["scheduler"] != scheduler {
                continue;
            }
            count += 1;
            let n = case["num_inference_steps"].as_u64().expect("N") as usize;
            let label = format!("{scheduler} {} N={n}", case["config"]);
            let result = make(&case["config"], n)
                .map_err(|e| e.to_string())
                .and_then(|mut s| run(case, s.as_mut()));
            match result {
                Ok(worst) => eprintln!("ok   {label}: largest difference {worst:.2e}"),
                Err(e) => {
                    eprintln!("FAIL {label}: {e}");
                    failures.push(format!("{label}: {e}"));
                }
            }
        }
        assert!(count > 0, "no {scheduler} cases");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// `ours` and diffusers' `theirs` agree within 1e-4 (and have the same length).
    pub(in crate::diffusion::solvers) fn assert_close(what: &str, ours: &[f64], theirs: &[f64]) {
        if let Err(e) = compare(what, ours, theirs) {
            panic!("{e}: ours {ours:?}, diffusers {theirs:?}");
        }
    }

    /// Asserts that `result` is an error whose message names `needle`.
    pub(in crate::diffusion::solvers) fn assert_refused<T>(result: Result<T>, needle: &str) {
        match result {
            Ok(_) => panic!("accepted; expected an error naming {needle}"),
            Err(e) => assert!(e.to_string().contains(needle), "{needle}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use serde_json::json;

    use super::golden::{assert_close, assert_refused};
    use super::*;

    #[test]
    fn euler_and_euler_ancestral_match_diffusers() {
        golden::check("euler", |c, n| {
            Ok(Box::new(Euler::from_diffusers(c, n, false)?))
        });
        golden::check("euler_ancestral", |c, n| {
            Ok(Box::new(Euler::from_diffusers(c, n, true)?))
        });
    }

    /// Reference values: diffusers 0.42.1 (torch 2.15, CPU), `set_timesteps(N)`.
    #[test]
    fn other_options_match_diffusers() {
        let leading = json!({
            "timestep_spacing": "leading", "steps_offset": 1,
            "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        });
        let e = Euler::from_diffusers(&leading, 5, false).unwrap();
        assert_close(
            "timesteps",
            &e.timesteps(),
            &[801.0, 601.0, 401.0, 201.0, 1.0],
        );
        assert_close(
            "sigmas",
            &e.sigmas(),
            &[
                5.134_433_3,
                2.292_854_8,
                1.168_216_5,
                0.574_050_7,
                0.041_314_48,
                0.0,
            ],
        );
        assert_close("init_noise_sigma", &[e.init_noise_sigma()], &[5.230_908_9]);
        let exponential = json!({"use_exponential_sigmas": true, "final_sigmas_type": "sigma_min"});
        let e = Euler::from_diffusers(&exponential, 4, false).unwrap();
        assert_close(
            "timesteps",
            &e.timesteps(),
            &[999.0, 602.769_53, 72.802_17, 0.0],
        );
        assert_close(
            "sigmas",
            &e.sigmas(),
            &[
                157.407_27,
                6.281_101,
                0.250_637_9,
                0.010_001_33,
                0.010_001_33,
            ],
        );
        assert_eq!(e.name(), "Euler Exponential");
    }

    #[test]
    fn plain_constructor_matches_the_config() {
        let schedule = schedule_of(&json!({})).unwrap();
        for (karras, ancestral) in [(false, false), (true, false), (false, true), (true, true)] {
            let plain =
                Euler::new(&schedule, PredictionType::Epsilon, 12, karras, ancestral).unwrap();
            let config = json!({"use_karras_sigmas": karras});
            let diffusers = Euler::from_diffusers(&config, 12, ancestral).unwrap();
            assert_eq!(plain.timesteps(), diffusers.timesteps());
            assert_eq!(plain.sigmas(), diffusers.sigmas());
            assert_eq!(plain.name(), diffusers.name());
        }
        let a = Euler::new(&schedule, PredictionType::Epsilon, 12, true, true).unwrap();
        assert_eq!(a.name(), "Euler a Karras");
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        let euler = |c: Value| Euler::from_diffusers(&c, 10, false);
        let ancestral = |c: Value| Euler::from_diffusers(&c, 10, true);
        assert_refused(
            euler(json!({"rescale_betas_zero_snr": true})),
            "rescale_betas_zero_snr",
        );
        assert_refused(
            ancestral(json!({"rescale_betas_zero_snr": true})),
            "rescale_betas_zero_snr",
        );
        assert_refused(
            euler(json!({"interpolation_type": "log_linear"})),
            "interpolation_type",
        );
        assert_refused(euler(json!({"use_beta_sigmas": true})), "use_beta_sigmas");
        assert_refused(euler(json!({"trained_betas": [0.1, 0.2]})), "trained_betas");
        assert_refused(euler(json!({"beta_schedule": "exp"})), "beta_schedule");
        assert_refused(
            euler(json!({"timestep_spacing": "middle"})),
            "timestep_spacing",
        );
        assert_refused(euler(json!({"timestep_type": "edm"})), "timestep_type");
        assert_refused(
            euler(json!({"final_sigmas_type": "one"})),
            "final_sigmas_type",
        );
        assert_refused(
            euler(json!({"use_karras_sigmas": "yes"})),
            "use_karras_sigmas",
        );
        assert_refused(euler(json!({"prediction_type": "flow"})), "prediction_type");
        assert_refused(euler(json!({"clip_sample": true})), "clip_sample");
        assert_refused(
            ancestral(json!({"final_sigmas_type": "zero"})),
            "final_sigmas_type",
        );
        assert_refused(
            euler(json!({"use_karras_sigmas": true, "use_exponential_sigmas": true})),
            "only one",
        );
        assert_refused(Euler::from_diffusers(&json!({}), 0, false), "at least 1");
    }

    #[test]
    fn ancestral_steps_take_noise_except_the_last() {
        let schedule = schedule_of(&json!({})).unwrap();
        let mut a = Euler::new(&schedule, PredictionType::Epsilon, 4, false, true).unwrap();
        assert_eq!(
            (0..4).map(|k| a.needs_noise(k)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        let device = Device::flex();
        let x = Tensor::<4>::ones([1, 1, 2, 2], &device);
        assert_refused(a.step(x.clone(), 0, x.clone(), None), "noise");
        assert!(a.step(x.clone(), 3, x.clone(), None).is_ok());
        assert_refused(a.step(x.clone(), 4, x, None), "past the last");
        let (up, down) = ancestral_split(2.0, 1.0);
        assert!((up * up + down * down - 1.0).abs() < 1e-6 && (up - 0.75f64.sqrt()).abs() < 1e-6);
    }
}
