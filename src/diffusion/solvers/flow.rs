//! Flow matching's Euler sampler (Lipman et al. 2023; rectified flow, Liu et al. 2023), with the
//! semantics of diffusers' `FlowMatchEulerDiscreteScheduler`.
//!
//! The forward process is the straight line x_σ = (1−σ)·x_0 + σ·ε, σ ∈ [0, 1], and the model
//! predicts its velocity v = dx_σ/dσ = ε − x_0. Sampling integrates that ODE from σ = 1 (pure
//! noise) to σ = 0 with Euler steps x ← x + (σ_next − σ)·v ([`flow_step`]); the model takes x
//! itself (no input scaling) and t = σ·T.
//!
//! The σ of a run ([`flow_sigmas`]) are N values uniform in t from σ_max·T down to σ_min·T,
//! where σ_max and σ_min are the first and last of the T training σ, and then the time shift
//! σ′ = s·σ/(1 + (s−1)·σ) (Esser et al. 2024, §5.3.2: s > 1 spends more steps at high noise,
//! which high-resolution images need). Note that diffusers shifts the training σ too, so for
//! s ≠ 1 the last σ is the shift of an already shifted 1/T. A final σ = 0 is appended.

use burn::tensor::Tensor;
use serde_json::Value;

use super::euler::{Config, SigmaSpacing};
use super::sigmas::{karras_sigmas, linspace};
use super::{Solver, SolverStep, check_known_keys};
use crate::error::{DiffError, Result};

/// The options of `FlowMatchEulerDiscreteScheduler` that difflab implements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowOptions {
    /// The time shift s (1 = none).
    pub shift: f64,
    /// Stretch the shifted σ so that the last one is this value (LTX-Video's `shift_terminal`;
    /// `None` or 0 = no stretch).
    pub shift_terminal: Option<f64>,
    /// Interpolated (uniform in t), Karras or exponential σ between the shifted end points.
    pub sigma_spacing: SigmaSpacing,
    /// σ ← 1 − σ, ending at σ = 1 (`invert_sigmas`, for models trained the other way round).
    pub invert_sigmas: bool,
    /// Re-noise to σ_next from x̂0 with fresh noise instead of the Euler step
    /// (`stochastic_sampling`).
    pub stochastic: bool,
}

impl FlowOptions {
    /// The deterministic sampler with shift s and nothing else.
    pub fn with_shift(shift: f64) -> Self {
        Self {
            shift,
            shift_terminal: None,
            sigma_spacing: SigmaSpacing::Interpolated,
            invert_sigmas: false,
            stochastic: false,
        }
    }
}

/// Flow matching's Euler with its σ set.
pub struct FlowMatchEuler {
    options: FlowOptions,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
}

/// The time shift σ′ = s·σ/(1 + (s−1)·σ): it keeps 0 and 1 and, for s > 1, raises every σ in
/// between.
pub fn shift_sigma(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// [`shift_sigma`] in float32, as diffusers' constructor computes its training σ.
fn shift_sigma_f32(sigma: f32, shift: f64) -> f32 {
    shift as f32 * sigma / (1.0 + (shift - 1.0) as f32 * sigma)
}

/// Stretches σ so that its last value becomes `terminal`: 1 − σ is scaled by
/// (1 − terminal)/(1 − σ_last) (diffusers' `stretch_shift_to_terminal`).
fn stretch_to_terminal(sigmas: &[f64], terminal: f64) -> Vec<f64> {
    let last = sigmas.last().copied().unwrap_or(0.0);
    let scale = (1.0 - last) / (1.0 - terminal);
    sigmas.iter().map(|s| 1.0 - (1.0 - s) / scale).collect()
}

/// diffusers' `set_timesteps`: (timesteps, σ with the final value appended), both float32.
pub fn flow_sigmas(
    num_train_timesteps: usize,
    n: usize,
    options: &FlowOptions,
) -> Result<(Vec<f64>, Vec<f64>)> {
    if n == 0 || num_train_timesteps == 0 {
        return Err(DiffError::invalid(
            "the number of sampling steps and of training timesteps must be at least 1",
        ));
    }
    if !(options.shift.is_finite() && options.shift > 0.0) {
        return Err(DiffError::invalid(format!(
            "the shift must be a positive number, not {}",
            options.shift
        )));
    }
    let t = num_train_timesteps as f64;
    // The constructor's training σ: shift(t/T) for t = T … 1, in float32.
    let sigma_max = f64::from(shift_sigma_f32(1.0, options.shift));
    let sigma_min = f64::from(shift_sigma_f32(
        1.0 / num_train_timesteps as f32,
        options.shift,
    ));
    let mut sigmas: Vec<f64> = linspace(sigma_max * t, sigma_min * t, n)
        .into_iter()
        .map(|ts| shift_sigma(ts / t, options.shift))
        .collect();
    if let Some(terminal) = options.shift_terminal.filter(|&x| x != 0.0) {
        sigmas = stretch_to_terminal(&sigmas, terminal);
    }
    let (hi, lo) = (sigmas[0], sigmas[n - 1]);
    sigmas = match options.sigma_spacing {
        SigmaSpacing::Interpolated => sigmas,
        SigmaSpacing::Karras => karras_sigmas(lo, hi, n, 7.0),
        SigmaSpacing::Exponential => linspace(hi.ln(), lo.ln(), n)
            .into_iter()
            .map(f64::exp)
            .collect(),
    };
    let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
    let last = if options.invert_sigmas {
        sigmas = sigmas.into_iter().map(|s| 1.0 - s).collect();
        1.0
    } else {
        0.0
    };
    let timesteps = sigmas
        .iter()
        .map(|&s| f64::from(s * num_train_timesteps as f32))
        .collect();
    let sigmas = sigmas
        .into_iter()
        .map(f64::from)
        .chain(std::iter::once(last))
        .collect();
    Ok((timesteps, sigmas))
}

/// The Euler step along the velocity: x + (σ_next − σ)·v (Δσ in float32).
pub fn flow_step(sample: Tensor<4>, velocity: Tensor<4>, sigma: f64, sigma_next: f64) -> Tensor<4> {
    let dt = sigma_next as f32 - sigma as f32;
    sample + velocity.mul_scalar(dt)
}

/// x̂0 = x − σ·v, since x_σ − σ·(ε − x_0) = x_0.
pub fn flow_denoised(sample: Tensor<4>, velocity: Tensor<4>, sigma: f64) -> Tensor<4> {
    sample - velocity.mul_scalar(sigma as f32)
}

/// The stochastic step: back to the line at σ_next from x̂0 with fresh noise z,
/// (1 − σ_next)·x̂0 + σ_next·z.
pub fn flow_renoise(denoised: Tensor<4>, noise: Tensor<4>, sigma_next: f64) -> Tensor<4> {
    let s = sigma_next as f32;
    denoised.mul_scalar(1.0 - s) + noise.mul_scalar(s)
}

impl FlowMatchEuler {
    /// N Euler steps for a model trained with T timesteps, with time shift s (1 = none).
    pub fn new(num_train_timesteps: usize, n: usize, shift: f64) -> Result<Self> {
        Self::with_options(num_train_timesteps, n, &FlowOptions::with_shift(shift))
    }

    /// N steps with every option spelled out.
    pub fn with_options(
        num_train_timesteps: usize,
        n: usize,
        options: &FlowOptions,
    ) -> Result<Self> {
        let (timesteps, sigmas) = flow_sigmas(num_train_timesteps, n, options)?;
        Ok(Self {
            options: *options,
            timesteps,
            sigmas,
        })
    }

    /// `FlowMatchEulerDiscreteScheduler(**config)` after `set_timesteps(num_inference_steps)`.
    pub fn from_diffusers(config: &Value, num_inference_steps: usize) -> Result<Self> {
        const NAME: &str = "FlowMatchEulerDiscreteScheduler";
        check_known_keys(
            NAME,
            config,
            &[
                "num_train_timesteps",
                "shift",
                "use_dynamic_shifting",
                "base_shift",
                "max_shift",
                "base_image_seq_len",
                "max_image_seq_len",
                "invert_sigmas",
                "shift_terminal",
                "use_karras_sigmas",
                "use_exponential_sigmas",
                "use_beta_sigmas",
                "time_shift_type",
                "stochastic_sampling",
            ],
        )?;
        let c = Config::new(NAME, config);
        // Dynamic shifting takes its shift from the image size at sampling time (`mu`), which
        // a config cannot give; base_shift … max_image_seq_len only feed it.
        c.only_default("use_dynamic_shifting", &Value::Bool(false))?;
        c.number("base_shift")?;
        c.number("max_shift")?;
        c.count("base_image_seq_len", 256)?;
        c.count("max_image_seq_len", 4096)?;
        match c.text("time_shift_type", "exponential")? {
            "exponential" | "linear" => {}
            other => return Err(c.bad_value("time_shift_type", other)),
        }
        let options = FlowOptions {
            shift: c.number("shift")?.unwrap_or(1.0),
            shift_terminal: c.number("shift_terminal")?,
            sigma_spacing: c.sigma_spacing()?,
            invert_sigmas: c.flag("invert_sigmas", false)?,
            stochastic: c.flag("stochastic_sampling", false)?,
        };
        Self::with_options(
            c.count("num_train_timesteps", 1000)?,
            num_inference_steps,
            &options,
        )
    }
}

impl Solver for FlowMatchEuler {
    fn name(&self) -> String {
        format!("Flow Match Euler{}", self.options.sigma_spacing.suffix())
    }

    fn timesteps(&self) -> Vec<f64> {
        self.timesteps.clone()
    }

    fn sigmas(&self) -> Vec<f64> {
        self.sigmas.clone()
    }

    /// x_1 = ε: the noise is used as it is.
    fn needs_noise(&self, call: usize) -> bool {
        self.options.stochastic && self.sigmas.get(call + 1).is_some_and(|&s| s > 0.0)
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        call: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<SolverStep> {
        if call + 1 >= self.sigmas.len() {
            return Err(DiffError::invalid(format!(
                "call {call} is past the last of {} steps",
                self.sigmas.len() - 1
            )));
        }
        let (sigma, next) = (self.sigmas[call], self.sigmas[call + 1]);
        let x0 = flow_denoised(sample.clone(), model_output.clone(), sigma);
        let prev_sample = if self.options.stochastic {
            let noise = match noise {
                Some(z) => z,
                None if next <= 0.0 => x0.zeros_like(),
                None => {
                    return Err(DiffError::invalid(format!(
                        "stochastic flow matching: call {call} adds noise and none was given"
                    )));
                }
            };
            flow_renoise(x0.clone(), noise, next)
        } else {
            flow_step(sample, model_output, sigma, next)
        };
        Ok(SolverStep {
            prev_sample,
            pred_original_sample: Some(x0),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::euler::golden::{self, assert_close, assert_refused};
    use super::*;

    #[test]
    fn flow_match_euler_matches_diffusers() {
        golden::check("flow_match_euler", |c, n| {
            Ok(Box::new(FlowMatchEuler::from_diffusers(c, n)?))
        });
    }

    /// Reference values: diffusers 0.42.1 (torch 2.15, CPU), `set_timesteps(N)`.
    #[test]
    fn other_options_match_diffusers() {
        let f = FlowMatchEuler::from_diffusers(&json!({"shift": 3.0, "shift_terminal": 0.1}), 4)
            .unwrap();
        assert_close(
            "timesteps",
            &f.timesteps(),
            &[1000.0, 870.769_2, 638.709_66, 100.0],
        );
        assert_close(
            "sigmas",
            &f.sigmas(),
            &[1.0, 0.870_769_2, 0.638_709_66, 0.1, 0.0],
        );
        let f = FlowMatchEuler::from_diffusers(&json!({"shift": 3.0, "invert_sigmas": true}), 3)
            .unwrap();
        assert_close("timesteps", &f.timesteps(), &[0.0, 248.878_9, 991.071_4]);
        assert_close("sigmas", &f.sigmas(), &[0.0, 0.248_878_9, 0.991_071_4, 1.0]);
    }

    #[test]
    fn plain_constructor_matches_the_config() {
        let plain = FlowMatchEuler::new(1000, 10, 3.0).unwrap();
        let diffusers = FlowMatchEuler::from_diffusers(&json!({"shift": 3.0}), 10).unwrap();
        assert_eq!(plain.timesteps(), diffusers.timesteps());
        assert_eq!(plain.sigmas(), diffusers.sigmas());
        assert!(!plain.needs_noise(0));
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        let flow = |c: Value| FlowMatchEuler::from_diffusers(&c, 10);
        assert_refused(
            flow(json!({"use_dynamic_shifting": true})),
            "use_dynamic_shifting",
        );
        assert_refused(flow(json!({"use_beta_sigmas": true})), "use_beta_sigmas");
        assert_refused(flow(json!({"time_shift_type": "cubic"})), "time_shift_type");
        assert_refused(flow(json!({"beta_schedule": "linear"})), "beta_schedule");
        assert_refused(flow(json!({"shift": 0.0})), "shift");
        assert_refused(flow(json!({"shift": "3"})), "shift");
    }

    #[test]
    fn the_shift_keeps_the_ends_and_raises_the_middle() {
        assert!((shift_sigma(0.0, 3.0)).abs() < 1e-15);
        assert!((shift_sigma(1.0, 3.0) - 1.0).abs() < 1e-15);
        assert!((shift_sigma(0.5, 3.0) - 0.75).abs() < 1e-15);
        assert!((shift_sigma(0.5, 1.0) - 0.5).abs() < 1e-15);
    }
}
