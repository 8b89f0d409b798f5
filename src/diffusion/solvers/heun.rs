//! Heun's second-order method in σ (Karras et al. 2022, Algorithm 1, the deterministic
//! sampler), with the semantics of diffusers' `HeunDiscreteScheduler`.
//!
//! A step from σ_i to σ_{i+1} calls the model twice:
//! - the predictor (Algorithm 1, lines 4–5): d_i = (x_i − D(x_i; σ_i))/σ_i, an Euler step to
//!   x̃ = x_i + (σ_{i+1} − σ_i)·d_i;
//! - the corrector (lines 7–8): d′ = (x̃ − D(x̃; σ_{i+1}))/σ_{i+1}, then
//!   x_{i+1} = x_i + (σ_{i+1} − σ_i)·(d_i + d′)/2, the trapezoidal rule.
//!
//! The last step, to σ = 0, is the predictor alone (line 6: there is no d′ at σ = 0), so N
//! steps cost 2N − 1 model calls. diffusers lists every σ and t once per call: its timesteps
//! are t_0, t_1, t_1, …, t_{N−1}, t_{N−1} (2N − 1 entries) and its σ are σ_0, σ_1, σ_1, …,
//! σ_{N−1}, σ_{N−1}, 0 (2N entries). Call k is a predictor when k is even, a corrector when odd;
//! the solver keeps x_i and d_i between the two.

use burn::tensor::Tensor;
use serde_json::Value;

use super::euler::{
    BETA_SCHEDULES, Config, SigmaOptions, SigmaSpacing, denoised, derivative, euler_update,
    scale_input, sigma_plan,
};
use super::{Solver, SolverStep, check_known_keys, prediction_of};
use crate::diffusion::{NoiseSchedule, PredictionType};
use crate::error::{DiffError, Result};

/// What the predictor leaves for the corrector.
struct Predictor {
    /// The predictor's call.
    call: usize,
    /// x_i, where the step started.
    sample: Tensor<4>,
    /// d_i = (x_i − x̂0)/σ_i.
    derivative: Tensor<4>,
}

/// Heun's method with its σ set.
pub struct Heun {
    prediction: PredictionType,
    clip_sample: Option<f64>,
    sigma_spacing: SigmaSpacing,
    /// One t per model call (2N − 1).
    timesteps: Vec<f64>,
    /// σ_0, then each later σ twice, then the final σ (2N).
    sigmas: Vec<f64>,
    init_noise_sigma: f64,
    predictor: Option<Predictor>,
}

/// diffusers' doubling: the first entry once, every later one twice.
fn doubled(values: &[f64], keep_last_once: bool) -> Vec<f64> {
    let n = values.len();
    let mut out = Vec::with_capacity(2 * n);
    for (i, &v) in values.iter().enumerate() {
        let once = i == 0 || (keep_last_once && i + 1 == n);
        out.push(v);
        if !once {
            out.push(v);
        }
    }
    out
}

impl Heun {
    /// N steps (2N − 1 model calls) on `schedule` with diffusers' defaults (linspace timesteps,
    /// a final σ of 0), Karras σ when `karras`.
    pub fn new(
        schedule: &NoiseSchedule,
        prediction: PredictionType,
        n: usize,
        karras: bool,
    ) -> Result<Self> {
        let options = SigmaOptions {
            sigma_spacing: if karras {
                SigmaSpacing::Karras
            } else {
                SigmaSpacing::Interpolated
            },
            ..SigmaOptions::default()
        };
        Self::with_options(schedule, prediction, n, &options, None)
    }

    /// N steps with every option spelled out; x̂0 is clamped to [−r, r] when `clip_sample` is
    /// `Some(r)`.
    pub fn with_options(
        schedule: &NoiseSchedule,
        prediction: PredictionType,
        n: usize,
        options: &SigmaOptions,
        clip_sample: Option<f64>,
    ) -> Result<Self> {
        let plan = sigma_plan(schedule, n, options)?;
        Ok(Self {
            prediction,
            clip_sample,
            sigma_spacing: options.sigma_spacing,
            timesteps: doubled(&plan.timesteps, false),
            sigmas: doubled(&plan.sigmas, true),
            init_noise_sigma: plan.init_noise_sigma,
            predictor: None,
        })
    }

    /// `HeunDiscreteScheduler(**config)` after `set_timesteps(num_inference_steps)` (its β
    /// defaults are 0.00085 and 0.012, unlike Euler's).
    pub fn from_diffusers(config: &Value, num_inference_steps: usize) -> Result<Self> {
        const NAME: &str = "HeunDiscreteScheduler";
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
                "use_karras_sigmas",
                "use_exponential_sigmas",
                "use_beta_sigmas",
                "clip_sample",
                "clip_sample_range",
                "timestep_spacing",
                "steps_offset",
            ],
        )?;
        let c = Config::new(NAME, config);
        let schedule = c.schedule(0.000_85, 0.012, BETA_SCHEDULES)?;
        let prediction = prediction_of(config)?;
        let clip_sample = if c.flag("clip_sample", false)? {
            Some(c.number("clip_sample_range")?.unwrap_or(1.0))
        } else {
            None
        };
        let options = SigmaOptions {
            timestep_spacing: c.spacing()?,
            steps_offset: c.count("steps_offset", 0)?,
            sigma_spacing: c.sigma_spacing()?,
            ..SigmaOptions::default()
        };
        Self::with_options(
            &schedule,
            prediction,
            num_inference_steps,
            &options,
            clip_sample,
        )
    }

    /// x̂0 at σ, clamped when `clip_sample` is set; also the unclamped x̂0.
    fn denoise(
        &self,
        model_output: Tensor<4>,
        sample: Tensor<4>,
        sigma: f64,
    ) -> (Tensor<4>, Tensor<4>) {
        let x0 = denoised(self.prediction, model_output, sample, sigma);
        let used = match self.clip_sample {
            Some(r) => x0.clone().clamp(-r as f32, r as f32),
            None => x0.clone(),
        };
        (used, x0)
    }
}

impl Solver for Heun {
    fn name(&self) -> String {
        format!("Heun{}", self.sigma_spacing.suffix())
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

    /// The predictor's input is scaled at σ_i, the corrector's at σ_{i+1}.
    fn scale_model_input(&self, sample: Tensor<4>, call: usize) -> Tensor<4> {
        match self.sigmas.get(call) {
            Some(&sigma) => scale_input(sample, sigma),
            None => sample,
        }
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        call: usize,
        sample: Tensor<4>,
        _noise: Option<Tensor<4>>,
    ) -> Result<SolverStep> {
        if call >= self.timesteps.len() {
            return Err(DiffError::invalid(format!(
                "call {call} is past the last of {} model calls",
                self.timesteps.len()
            )));
        }
        if call.is_multiple_of(2) {
            // Predictor: from σ_i = sigmas[call] to σ_{i+1} = sigmas[call + 1].
            let (sigma, next) = (self.sigmas[call], self.sigmas[call + 1]);
            let (x0, seen) = self.denoise(model_output, sample.clone(), sigma);
            let d = derivative(sample.clone(), x0, sigma);
            let prev_sample = euler_update(sample.clone(), d.clone(), sigma, next);
            self.predictor = Some(Predictor {
                call,
                sample,
                derivative: d,
            });
            return Ok(SolverStep {
                prev_sample,
                pred_original_sample: Some(seen),
            });
        }
        // Corrector: the model was called at x̃ and σ_{i+1} = sigmas[call].
        let Some(p) = self.predictor.take().filter(|p| p.call + 1 == call) else {
            return Err(DiffError::invalid(format!(
                "Heun: call {call} (a corrector) must follow call {}",
                call - 1
            )));
        };
        let (sigma, next) = (self.sigmas[call - 1], self.sigmas[call]);
        let (x0, seen) = self.denoise(model_output, sample.clone(), next);
        let d_next = derivative(sample, x0, next);
        let d = (p.derivative + d_next).div_scalar(2.0);
        Ok(SolverStep {
            prev_sample: euler_update(p.sample, d, sigma, next),
            pred_original_sample: Some(seen),
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use serde_json::json;

    use super::super::euler::golden::{self, assert_close, assert_refused};
    use super::super::sigmas::schedule_of;
    use super::*;

    #[test]
    fn heun_matches_diffusers() {
        golden::check("heun", |c, n| Ok(Box::new(Heun::from_diffusers(c, n)?)));
    }

    /// Reference values: diffusers 0.42.1 (torch 2.15, CPU), `HeunDiscreteScheduler(
    /// timestep_spacing="trailing")` (its own β defaults), `set_timesteps(3)`.
    #[test]
    fn other_options_match_diffusers() {
        let h = Heun::from_diffusers(&json!({"timestep_spacing": "trailing"}), 3).unwrap();
        assert_close(
            "timesteps",
            &h.timesteps(),
            &[999.0, 666.0, 666.0, 332.0, 332.0],
        );
        assert_close(
            "sigmas",
            &h.sigmas(),
            &[25.146_116, 4.495_611, 4.495_611, 1.209_594, 1.209_594, 0.0],
        );
        assert_close("init_noise_sigma", &[h.init_noise_sigma()], &[25.146_116]);
    }

    #[test]
    fn plain_constructor_matches_the_config() {
        let config = json!({"beta_start": 0.00085, "beta_end": 0.012});
        let schedule = schedule_of(&config).unwrap();
        for karras in [false, true] {
            let plain = Heun::new(&schedule, PredictionType::Epsilon, 9, karras).unwrap();
            let diffusers = Heun::from_diffusers(&json!({"use_karras_sigmas": karras}), 9).unwrap();
            assert_eq!(plain.timesteps(), diffusers.timesteps());
            assert_eq!(plain.sigmas(), diffusers.sigmas());
            assert_eq!(plain.call_timesteps().len(), 17);
        }
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        let heun = |c: Value| Heun::from_diffusers(&c, 10);
        assert_refused(
            heun(json!({"rescale_betas_zero_snr": true})),
            "rescale_betas_zero_snr",
        );
        assert_refused(heun(json!({"beta_schedule": "exp"})), "beta_schedule");
        assert_refused(heun(json!({"use_beta_sigmas": true})), "use_beta_sigmas");
        assert_refused(
            heun(json!({"final_sigmas_type": "zero"})),
            "final_sigmas_type",
        );
        assert_refused(heun(json!({"clip_sample": 1})), "clip_sample");
    }

    #[test]
    fn a_corrector_needs_its_predictor() {
        let schedule = schedule_of(&json!({})).unwrap();
        let mut h = Heun::new(&schedule, PredictionType::Epsilon, 3, false).unwrap();
        let x = Tensor::<4>::ones([1, 1, 2, 2], &Device::flex());
        assert_refused(h.step(x.clone(), 1, x.clone(), None), "must follow call 0");
        assert!(h.step(x.clone(), 0, x.clone(), None).is_ok());
        assert_refused(h.step(x.clone(), 3, x.clone(), None), "must follow call 2");
        assert!(h.step(x.clone(), 0, x.clone(), None).is_ok());
        assert!(h.step(x.clone(), 1, x.clone(), None).is_ok());
        assert_refused(h.step(x.clone(), 5, x, None), "past the last");
    }

    #[test]
    fn doubling_is_diffusers() {
        assert_eq!(doubled(&[3.0, 2.0, 1.0], false), [3.0, 2.0, 2.0, 1.0, 1.0]);
        assert_eq!(
            doubled(&[3.0, 2.0, 1.0, 0.0], true),
            [3.0, 2.0, 2.0, 1.0, 1.0, 0.0]
        );
    }
}
