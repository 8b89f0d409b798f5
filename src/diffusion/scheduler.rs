//! The reverse process: DDPM (Ho et al. 2020, Algorithm 2) and DDIM (Song et al. 2020, eq. 12),
//! with the `set_timesteps` / `step` semantics of diffusers' `DDPMScheduler` and
//! `DDIMScheduler`.
//!
//! A step takes the model output at (x_t, t) and returns x_{t_prev}, the predicted x̂0 and the
//! predicted ε̂. The variance noise z is passed in, so a run is reproducible.

use std::sync::Arc;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::schedule::{NoiseSchedule, ScheduleConfig};
use super::timesteps::{TimestepSpacing, timesteps};
use crate::error::{DiffError, Result};

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PredictionType {
    /// The noise ε (Ho et al. 2020).
    Epsilon,
    /// The clean sample x_0 directly.
    Sample,
    /// v = √ᾱ·ε − √(1−ᾱ)·x_0 (Salimans & Ho 2022).
    VPrediction,
    /// Flow matching's velocity v = ε − x_0 on x_σ = (1 − σ)·x_0 + σ·ε, the model called at
    /// t = σ·T (see [`crate::diffusion::flow_matching`]); sampled by the flow Euler solver only.
    Flow,
}

impl PredictionType {
    /// Parses this crate's and diffusers' names.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "epsilon" => Ok(Self::Epsilon),
            "sample" => Ok(Self::Sample),
            "v_prediction" | "v-prediction" | "v" => Ok(Self::VPrediction),
            "flow" | "flow_prediction" => Ok(Self::Flow),
            other => Err(DiffError::invalid(format!(
                "unknown prediction type '{other}'"
            ))),
        }
    }

    /// The name [`parse`](Self::parse) reads back (diffusers' spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::Epsilon => "epsilon",
            Self::Sample => "sample",
            Self::VPrediction => "v_prediction",
            Self::Flow => "flow_prediction",
        }
    }
}

/// DDPM's choice of the reverse variance σ_t².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VarianceType {
    /// σ_t² = β̃_t, the posterior variance (the lower bound of Ho et al. §3.2).
    FixedSmall,
    /// σ_t² = β_t (the upper bound).
    FixedLarge,
}

impl VarianceType {
    /// Parses this crate's and diffusers' names.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "fixed_small" | "fixed-small" => Ok(Self::FixedSmall),
            "fixed_large" | "fixed-large" => Ok(Self::FixedLarge),
            other => Err(DiffError::invalid(format!(
                "unsupported variance type '{other}' (expected fixed_small or fixed_large)"
            ))),
        }
    }
}

/// Which sampler.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum SamplerKind {
    /// Ancestral sampling (Ho et al. Algorithm 2).
    Ddpm {
        /// σ_t² = β̃_t or β_t.
        variance: VarianceType,
    },
    /// DDIM (Song et al. eq. 12); η = 0 is deterministic, η = 1 matches DDPM's variance.
    Ddim {
        /// η ∈ [0, 1].
        eta: f64,
        /// Use ᾱ = 1 for the step after the last timestep (else ᾱ_0).
        set_alpha_to_one: bool,
    },
}

/// Options shared by both samplers (diffusers' scheduler config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// The noise schedule.
    pub schedule: ScheduleConfig,
    /// What the model predicts.
    pub prediction_type: PredictionType,
    /// Clamp x̂0 to [−r, r] when `Some(r)`.
    pub clip_sample: Option<f64>,
    /// DDIM: re-derive ε̂ from the clipped x̂0 (diffusers' `use_clipped_model_output`, GLIDE's
    /// choice). Off by default, as in diffusers; guided runs turn it on, since an extrapolated
    /// ε̃ whose x̂0 was clipped would otherwise push its excess into the direction term.
    #[serde(default)]
    pub use_clipped_model_output: bool,
    /// How the N steps are spread over T.
    pub spacing: TimestepSpacing,
    /// Added to every timestep (leading spacing only, as in diffusers).
    pub steps_offset: usize,
    /// N, the number of sampling steps.
    pub num_inference_steps: usize,
    /// DDPM or DDIM.
    pub sampler: SamplerKind,
}

impl SchedulerConfig {
    /// DDIM with N steps and η on trailing timesteps (no offset, ᾱ_prev = 1 at the end, x̂0
    /// clipped to [−1, 1]): what the CLI's headless samplers and benchmarks use.
    pub fn ddim(
        schedule: ScheduleConfig,
        prediction_type: PredictionType,
        num_inference_steps: usize,
        eta: f64,
    ) -> Self {
        Self {
            use_clipped_model_output: false,
            schedule,
            prediction_type,
            clip_sample: Some(1.0),
            spacing: TimestepSpacing::Trailing,
            steps_offset: 0,
            num_inference_steps,
            sampler: SamplerKind::Ddim {
                eta,
                set_alpha_to_one: true,
            },
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            use_clipped_model_output: false,
            schedule: ScheduleConfig::default(),
            prediction_type: PredictionType::Epsilon,
            clip_sample: Some(1.0),
            spacing: TimestepSpacing::Leading,
            steps_offset: 0,
            num_inference_steps: 50,
            sampler: SamplerKind::Ddim {
                eta: 0.0,
                set_alpha_to_one: true,
            },
        }
    }
}

/// The three terms of DDIM's update (Song et al. eq. 12), whose sum is x_{t−1}.
pub struct DdimTerms {
    /// √ᾱ_prev · x̂0, "predicted x_0" scaled back.
    pub x0_term: Tensor<4>,
    /// √(1 − ᾱ_prev − σ_t²) · ε̂, the "direction pointing to x_t".
    pub direction_term: Tensor<4>,
    /// σ_t · z, the random noise (zero when η = 0).
    pub noise_term: Tensor<4>,
}

/// What one step returns.
pub struct StepOutput {
    /// x_{t_prev}.
    pub prev_sample: Tensor<4>,
    /// x̂0, after clipping.
    pub pred_original_sample: Tensor<4>,
    /// ε̂, before clipping (as diffusers uses it).
    pub pred_epsilon: Tensor<4>,
    /// DDIM's three terms; `None` for DDPM.
    pub ddim_terms: Option<DdimTerms>,
}

/// A DDPM or DDIM scheduler with its timesteps set.
#[derive(Clone, Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    schedule: Arc<NoiseSchedule>,
    timesteps: Vec<usize>,
}

impl Scheduler {
    /// Builds the schedule, checks every option and sets the timesteps.
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        let schedule = Arc::new(NoiseSchedule::new(config.schedule)?);
        Self::with_schedule(config, schedule)
    }

    /// Like [`Scheduler::new`], reusing a schedule that matches `config.schedule`.
    pub fn with_schedule(config: SchedulerConfig, schedule: Arc<NoiseSchedule>) -> Result<Self> {
        if schedule.config != config.schedule {
            return Err(DiffError::invalid(
                "the schedule does not match the scheduler config",
            ));
        }
        if config.prediction_type == PredictionType::Flow {
            return Err(DiffError::invalid(
                "this is a flow-matching model: it samples with flow matching's Euler \
                 (--sampler flow-euler)",
            ));
        }
        if let SamplerKind::Ddim { eta, .. } = config.sampler
            && !(0.0..=1.0).contains(&eta)
        {
            return Err(DiffError::invalid(format!(
                "eta = {eta} is out of range: η must be in [0, 1]"
            )));
        }
        if let Some(r) = config.clip_sample
            && !(r.is_finite() && r > 0.0)
        {
            return Err(DiffError::invalid(format!(
                "clip range {r} must be a positive number"
            )));
        }
        let timesteps = timesteps(
            config.spacing,
            schedule.num_timesteps(),
            config.num_inference_steps,
            config.steps_offset,
        )?;
        Ok(Self {
            config,
            schedule,
            timesteps,
        })
    }

    /// The config.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The noise schedule.
    pub fn schedule(&self) -> &Arc<NoiseSchedule> {
        &self.schedule
    }

    /// The timesteps visited, descending.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The timestep after `t`, or `None` past the end (ᾱ = 1 or ᾱ_0 there).
    ///
    /// DDPM takes the next entry of its list. DDIM uses t − ⌊T/N⌋ as diffusers does, except for
    /// linspace spacing, where that rule skips or repeats timesteps (diffusers issues #11347,
    /// #12633), so the list itself is used there too.
    pub fn previous_timestep(&self, t: usize) -> Result<Option<usize>> {
        let from_list = || -> Result<Option<usize>> {
            let i = self.timesteps.iter().position(|x| *x == t).ok_or_else(|| {
                DiffError::invalid(format!("timestep {t} is not one of this sampler's steps"))
            })?;
            Ok(self.timesteps.get(i + 1).copied())
        };
        match self.config.sampler {
            SamplerKind::Ddpm { .. } => from_list(),
            SamplerKind::Ddim { .. } if self.config.spacing == TimestepSpacing::Linspace => {
                from_list()
            }
            SamplerKind::Ddim { .. } => {
                self.schedule.check_t(t)?;
                let ratio = self.schedule.num_timesteps() / self.config.num_inference_steps;
                Ok(t.checked_sub(ratio))
            }
        }
    }

    /// Whether the step at `t` adds variance noise (and so needs `noise`).
    pub fn needs_noise(&self, t: usize) -> bool {
        match self.config.sampler {
            SamplerKind::Ddpm { .. } => t > 0,
            SamplerKind::Ddim { eta, .. } => eta > 0.0,
        }
    }

    /// x̂0 and ε̂ from the model output (before clipping x̂0).
    fn predict_x0_and_eps(
        &self,
        model_output: Tensor<4>,
        sample: Tensor<4>,
        alpha_prod_t: f64,
    ) -> (Tensor<4>, Tensor<4>) {
        predict_x0_and_eps(
            self.config.prediction_type,
            model_output,
            sample,
            alpha_prod_t,
        )
    }

    /// One reverse step from `sample` = x_t, given the model output at t.
    pub fn step(
        &self,
        model_output: Tensor<4>,
        t: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<StepOutput> {
        self.schedule.check_t(t)?;
        if model_output.dims() != sample.dims() {
            return Err(DiffError::invalid(format!(
                "model output shape {:?} differs from the sample's {:?}",
                model_output.dims(),
                sample.dims()
            )));
        }
        let noise = match (self.needs_noise(t), noise) {
            (true, None) => {
                return Err(DiffError::invalid(format!(
                    "the step at t = {t} adds noise, but no variance noise was given"
                )));
            }
            (_, n) => n,
        };
        match self.config.sampler {
            SamplerKind::Ddpm { variance } => {
                self.ddpm_step(model_output, t, sample, noise, variance)
            }
            SamplerKind::Ddim {
                eta,
                set_alpha_to_one,
            } => self.ddim_step(model_output, t, sample, noise, eta, set_alpha_to_one),
        }
    }

    fn clip(&self, x0: Tensor<4>) -> Tensor<4> {
        match self.config.clip_sample {
            Some(r) => x0.clamp(-r as f32, r as f32),
            None => x0,
        }
    }

    /// DDPM (Ho et al. Algorithm 2, in its x̂0 form, eq. 7).
    fn ddpm_step(
        &self,
        model_output: Tensor<4>,
        t: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
        variance_type: VarianceType,
    ) -> Result<StepOutput> {
        let prev_t = self.previous_timestep(t)?;
        // 1. ᾱ_t, ᾱ_prev, and the effective one-step α' = ᾱ_t / ᾱ_prev, β' = 1 − α'.
        let alpha_prod_t = self.schedule.alphas_cumprod[t];
        let alpha_prod_t_prev = prev_t.map_or(1.0, |p| self.schedule.alphas_cumprod[p]);
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        let current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
        let current_beta_t = 1.0 - current_alpha_t;
        // 2. x̂0 from the model output (eq. 15 for ε), then clip.
        let (x0, eps) = self.predict_x0_and_eps(model_output, sample.clone(), alpha_prod_t);
        let x0 = self.clip(x0);
        // 3. μ̃_t = √ᾱ_prev·β'/(1−ᾱ_t)·x̂0 + √α'·(1−ᾱ_prev)/(1−ᾱ_t)·x_t  (eq. 7).
        let x0_coeff = alpha_prod_t_prev.sqrt() * current_beta_t / beta_prod_t;
        let xt_coeff = current_alpha_t.sqrt() * beta_prod_t_prev / beta_prod_t;
        let mut prev = x0.clone().mul_scalar(x0_coeff as f32) + sample.mul_scalar(xt_coeff as f32);
        // 4. + σ_t·z for t > 0, σ_t² = β̃_t (fixed_small, ≥ 1e-20) or β' (fixed_large).
        if t > 0 {
            let variance = match variance_type {
                VarianceType::FixedSmall => {
                    (beta_prod_t_prev / beta_prod_t * current_beta_t).max(1e-20)
                }
                VarianceType::FixedLarge => current_beta_t,
            };
            if let Some(z) = noise {
                prev = prev + z.mul_scalar(variance.sqrt() as f32);
            }
        }
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
            pred_epsilon: eps,
            ddim_terms: None,
        })
    }

    /// DDIM (Song et al. eq. 12):
    /// x_{t−1} = √ᾱ_prev·x̂0 + √(1−ᾱ_prev−σ_t²)·ε̂ + σ_t·z,
    /// σ_t = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev)  (eq. 16).
    fn ddim_step(
        &self,
        model_output: Tensor<4>,
        t: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
        eta: f64,
        set_alpha_to_one: bool,
    ) -> Result<StepOutput> {
        let prev_t = self.previous_timestep(t)?;
        let final_alpha_cumprod = if set_alpha_to_one {
            1.0
        } else {
            self.schedule.alphas_cumprod[0]
        };
        let alpha_prod_t = self.schedule.alphas_cumprod[t];
        let alpha_prod_t_prev =
            prev_t.map_or(final_alpha_cumprod, |p| self.schedule.alphas_cumprod[p]);
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        // x̂0 and ε̂; ε̂ is recomputed after clipping only when asked (diffusers' default: not):
        // ε̂ = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t), eq. 9 solved for ε.
        let (x0, eps) = self.predict_x0_and_eps(model_output, sample.clone(), alpha_prod_t);
        let x0 = self.clip(x0);
        let eps = if self.config.use_clipped_model_output && self.config.clip_sample.is_some() {
            (sample - x0.clone().mul_scalar(alpha_prod_t.sqrt() as f32))
                .div_scalar(beta_prod_t.sqrt() as f32)
        } else {
            eps
        };
        // σ_t² = (1−ᾱ_prev)/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ_prev)  (eq. 16), σ_t = η·σ.
        let variance = beta_prod_t_prev / beta_prod_t * (1.0 - alpha_prod_t / alpha_prod_t_prev);
        let std_dev_t = eta * variance.sqrt();
        let x0_term = x0.clone().mul_scalar(alpha_prod_t_prev.sqrt() as f32);
        let dir_coeff = (1.0 - alpha_prod_t_prev - std_dev_t * std_dev_t)
            .max(0.0)
            .sqrt();
        let direction_term = eps.clone().mul_scalar(dir_coeff as f32);
        let noise_term = match noise {
            Some(z) if eta > 0.0 => z.mul_scalar(std_dev_t as f32),
            _ => x0.zeros_like(),
        };
        let prev = x0_term.clone() + direction_term.clone() + noise_term.clone();
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
            pred_epsilon: eps,
            ddim_terms: Some(DdimTerms {
                x0_term,
                direction_term,
                noise_term,
            }),
        })
    }
}

/// x̂0 and ε̂ from a model output at ᾱ_t:
/// - ε: x̂0 = (x_t − √(1−ᾱ)·ε̂)/√ᾱ  (Ho et al. eq. 15);
/// - x_0: ε̂ = (x_t − √ᾱ·x̂0)/√(1−ᾱ);
/// - v: x̂0 = √ᾱ·x_t − √(1−ᾱ)·v, ε̂ = √ᾱ·v + √(1−ᾱ)·x_t.
pub fn predict_x0_and_eps(
    prediction: PredictionType,
    model_output: Tensor<4>,
    sample: Tensor<4>,
    alpha_prod_t: f64,
) -> (Tensor<4>, Tensor<4>) {
    let sa = alpha_prod_t.sqrt();
    let sb = (1.0 - alpha_prod_t).sqrt();
    match prediction {
        PredictionType::Epsilon => {
            let x0 = (sample - model_output.clone().mul_scalar(sb as f32)).div_scalar(sa as f32);
            (x0, model_output)
        }
        PredictionType::Sample => {
            let eps = (sample - model_output.clone().mul_scalar(sa as f32)).div_scalar(sb as f32);
            (model_output, eps)
        }
        PredictionType::VPrediction => {
            let x0 =
                sample.clone().mul_scalar(sa as f32) - model_output.clone().mul_scalar(sb as f32);
            let eps = model_output.mul_scalar(sa as f32) + sample.mul_scalar(sb as f32);
            (x0, eps)
        }
        // A flow model's x̂0 and ε̂ need its σ, not ᾱ: [`super::flow_matching::flow_x0_and_eps`]
        // (the solver's run reads them so). Schedulers refuse flow models; this reading, the
        // velocity's own, is only a fallback.
        PredictionType::Flow => (sample - model_output.clone(), model_output),
    }
}
