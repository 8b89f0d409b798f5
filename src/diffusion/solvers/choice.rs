//! The solvers by the names a user picks them by (`difflab sample --sampler euler`), built on
//! difflab's schedule and model, and the loop that runs one.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Solver, from_diffusers};
use crate::diffusion::{BetaSchedule, Denoiser, PredictionType, ScheduleConfig, StepFrame};
use crate::error::{DiffError, Result};

/// A solver after DDIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SolverKind {
    /// DPM-Solver++ (Lu et al. 2022b), multistep, data prediction: "DPM++ 2M" at order 2.
    DpmSolverPlusPlus,
    /// DPM-Solver (Lu et al. 2022a), multistep, noise prediction.
    DpmSolver,
    /// SDE-DPM-Solver++: DPM-Solver++ with noise added at every step.
    SdeDpmSolverPlusPlus,
    /// Euler's method on the probability-flow ODE in σ (Karras et al. 2022).
    Euler,
    /// Euler ancestral: an Euler step to σ_down, then noise up to σ_next.
    EulerAncestral,
    /// Heun's method: Euler's step corrected by the slope at its end (two calls a step).
    Heun,
    /// UniPC (Zhao et al. 2023), bh2, multistep predictor–corrector.
    UniPc,
    /// Flow matching's Euler (`FlowMatchEulerDiscreteScheduler`): for flow-matching models.
    FlowEuler,
}

impl SolverKind {
    /// Every solver, in the order the CLI lists them.
    pub const ALL: [SolverKind; 8] = [
        SolverKind::DpmSolverPlusPlus,
        SolverKind::DpmSolver,
        SolverKind::SdeDpmSolverPlusPlus,
        SolverKind::Euler,
        SolverKind::EulerAncestral,
        SolverKind::Heun,
        SolverKind::UniPc,
        SolverKind::FlowEuler,
    ];

    /// The CLI's name.
    pub fn cli_name(self) -> &'static str {
        match self {
            SolverKind::DpmSolverPlusPlus => "dpm-solver++",
            SolverKind::DpmSolver => "dpm-solver",
            SolverKind::SdeDpmSolverPlusPlus => "sde-dpm-solver++",
            SolverKind::Euler => "euler",
            SolverKind::EulerAncestral => "euler-a",
            SolverKind::Heun => "heun",
            SolverKind::UniPc => "unipc",
            SolverKind::FlowEuler => "flow-euler",
        }
    }

    /// Whether `--order` applies (the multistep solvers), and its default: 2 ("2M").
    pub fn default_order(self) -> Option<usize> {
        match self {
            SolverKind::DpmSolverPlusPlus
            | SolverKind::DpmSolver
            | SolverKind::SdeDpmSolverPlusPlus
            | SolverKind::UniPc => Some(2),
            _ => None,
        }
    }

    /// Whether a run adds noise as it goes (then it needs a seed per call).
    pub fn is_stochastic(self) -> bool {
        matches!(
            self,
            SolverKind::EulerAncestral | SolverKind::SdeDpmSolverPlusPlus
        )
    }
}

/// A solver as asked for: which, its order (multistep solvers), Karras σ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SolverSpec {
    /// Which solver.
    pub kind: SolverKind,
    /// The order of a multistep solver (1 to 3; `None`: its default, 2).
    pub order: Option<usize>,
    /// Karras et al.'s σ spacing (ρ = 7) instead of the timesteps' own.
    pub karras: bool,
}

impl SolverSpec {
    /// Checks the combination: `--order` only for the multistep solvers, 1 to 3.
    pub fn validate(&self) -> Result<()> {
        match (self.order, self.kind.default_order()) {
            (Some(_), None) => Err(DiffError::invalid(format!(
                "--order applies to dpm-solver++, dpm-solver, sde-dpm-solver++ and unipc, not {}",
                self.kind.cli_name()
            ))),
            (Some(k), Some(_)) if !(1..=3).contains(&k) => Err(DiffError::invalid(format!(
                "--order {k}: the multistep solvers have orders 1 to 3"
            ))),
            _ => Ok(()),
        }
    }

    /// The diffusers scheduler and constructor arguments this spec means.
    pub fn diffusers_config(
        &self,
        schedule: &ScheduleConfig,
        prediction: PredictionType,
    ) -> (&'static str, serde_json::Value) {
        let beta_schedule = match schedule.kind {
            BetaSchedule::Linear => "linear",
            BetaSchedule::ScaledLinear => "scaled_linear",
            BetaSchedule::Cosine => "squaredcos_cap_v2",
            BetaSchedule::Sigmoid => "sigmoid",
        };
        let prediction_type = match prediction {
            PredictionType::Epsilon => "epsilon",
            PredictionType::Sample => "sample",
            PredictionType::VPrediction => "v_prediction",
            PredictionType::Flow => "flow_prediction",
        };
        let mut config = json!({
            "num_train_timesteps": schedule.num_train_timesteps,
            "beta_start": schedule.beta_start,
            "beta_end": schedule.beta_end,
            "beta_schedule": beta_schedule,
            "prediction_type": prediction_type,
        });
        if self.karras {
            config["use_karras_sigmas"] = json!(true);
        }
        let order = self.order.or(self.kind.default_order());
        let scheduler = match self.kind {
            SolverKind::DpmSolverPlusPlus
            | SolverKind::DpmSolver
            | SolverKind::SdeDpmSolverPlusPlus => {
                config["solver_order"] = json!(order);
                config["algorithm_type"] = json!(match self.kind {
                    SolverKind::DpmSolver => "dpmsolver",
                    SolverKind::SdeDpmSolverPlusPlus => "sde-dpmsolver++",
                    _ => "dpmsolver++",
                });
                if self.kind == SolverKind::DpmSolver {
                    // diffusers refuses DPM-Solver (not ++) with a final σ of 0.
                    config["final_sigmas_type"] = json!("sigma_min");
                }
                "dpmsolver_multistep"
            }
            SolverKind::UniPc => {
                config["solver_order"] = json!(order);
                "unipc_multistep"
            }
            SolverKind::Euler => "euler",
            SolverKind::EulerAncestral => "euler_ancestral",
            SolverKind::Heun => "heun",
            SolverKind::FlowEuler => {
                // The straight path needs no β: only T (and no time shift for 28×28 digits).
                config = json!({
                    "num_train_timesteps": schedule.num_train_timesteps,
                    "shift": 1.0,
                });
                "flow_match_euler"
            }
        };
        (scheduler, config)
    }

    /// The solver with its timesteps set for `steps` steps.
    pub fn build(
        &self,
        schedule: &ScheduleConfig,
        prediction: PredictionType,
        steps: usize,
    ) -> Result<Box<dyn Solver>> {
        self.validate()?;
        match (
            self.kind == SolverKind::FlowEuler,
            prediction == PredictionType::Flow,
        ) {
            (true, false) => {
                return Err(DiffError::invalid(format!(
                    "flow-euler samples flow-matching models (trained with --objective flow); \
                     this model predicts {}: pick ddim, dpm-solver++, euler, heun or unipc",
                    prediction.name()
                )));
            }
            (false, true) => {
                return Err(DiffError::invalid(format!(
                    "this is a flow-matching model: it samples with flow-euler, not {}",
                    self.kind.cli_name()
                )));
            }
            _ => {}
        }
        if self.kind == SolverKind::FlowEuler && self.karras {
            return Err(DiffError::invalid(
                "--karras applies to the σ-based solvers, not flow-euler",
            ));
        }
        if steps == 0 {
            return Err(DiffError::invalid(
                "the number of sampling steps must be at least 1",
            ));
        }
        let (scheduler, config) = self.diffusers_config(schedule, prediction);
        from_diffusers(scheduler, &config, steps)
    }

    /// "DPM-Solver++ 2M Karras", "Euler a", "Heun": the names front ends use.
    pub fn label(&self) -> String {
        let order = self.order.or(self.kind.default_order()).unwrap_or(1);
        let base = match self.kind {
            SolverKind::DpmSolverPlusPlus => format!("DPM-Solver++ {order}M"),
            SolverKind::DpmSolver => format!("DPM-Solver {order}M"),
            SolverKind::SdeDpmSolverPlusPlus => format!("DPM-Solver++ {order}M SDE"),
            SolverKind::Euler => "Euler".into(),
            SolverKind::EulerAncestral => "Euler a".into(),
            SolverKind::Heun => "Heun".into(),
            SolverKind::UniPc => format!("UniPC {order}M (bh2)"),
            SolverKind::FlowEuler => "Flow Euler".into(),
        };
        if self.karras {
            format!("{base} Karras")
        } else {
            base
        }
    }
}

/// Runs `solver` from `x_t` (N(0, I) noise; it is scaled by the solver's initial σ here):
/// one model call per entry of [`Solver::call_timesteps`], `noise(call, shape)` for the calls
/// that add noise, `on_call(call, &x)` after each. difflab's models take integer timesteps, so
/// a fractional t (the Euler family's) is rounded to the nearest one for the model; the
/// solver's own arithmetic uses the exact t and σ. Returns x_0.
pub fn solve(
    denoiser: &dyn Denoiser,
    solver: &mut dyn Solver,
    x_t: Tensor<4>,
    mut noise: impl FnMut(usize, [usize; 4]) -> Tensor<4>,
    mut on_call: impl FnMut(usize, &Tensor<4>),
) -> Result<Tensor<4>> {
    crate::diffusion::denoiser::check_input_shape(denoiser, &x_t, "x_T")?;
    let [b, c, h, w] = x_t.dims();
    let mut x = x_t.mul_scalar(solver.init_noise_sigma() as f32);
    for (k, t) in solver.call_timesteps().into_iter().enumerate() {
        let t_model = t.round().max(0.0) as usize;
        let out = denoiser.forward(solver.scale_model_input(x.clone(), k), &vec![t_model; b])?;
        let z = solver.needs_noise(k).then(|| noise(k, [b, c, h, w]));
        x = solver.step(out, k, x, z)?.prev_sample;
        on_call(k, &x);
    }
    Ok(x)
}

/// A solver's run in progress, one model call per [`SolverRun::next_step`], each returned as a
/// [`StepFrame`] in the DDPM picture the panels show: x_t is the model's input (√ᾱ·x_0 +
/// √(1−ᾱ)·ε, whatever space the solver works in), x̂0 and ε̂ are read from the model's output at
/// that t, and `prev_sample` is the solver's new x brought back to that picture (the Euler
/// family works in x·√(σ²+1)).
pub struct SolverRun<'a, N> {
    denoiser: &'a dyn Denoiser,
    solver: Box<dyn Solver>,
    alphas_cumprod: Vec<f64>,
    calls: Vec<f64>,
    sigmas: Vec<f64>,
    x: Tensor<4>,
    index: usize,
    noise: N,
}

impl<'a, N> SolverRun<'a, N>
where
    N: FnMut(usize, [usize; 4]) -> Tensor<4>,
{
    /// Starts from `x_t` ~ N(0, I) (scaled by the solver's initial σ here).
    pub fn new(
        denoiser: &'a dyn Denoiser,
        solver: Box<dyn Solver>,
        schedule: &crate::diffusion::NoiseSchedule,
        x_t: Tensor<4>,
        noise: N,
    ) -> Result<Self> {
        crate::diffusion::denoiser::check_input_shape(denoiser, &x_t, "x_T")?;
        let x = x_t.mul_scalar(solver.init_noise_sigma() as f32);
        Ok(Self {
            denoiser,
            calls: solver.call_timesteps(),
            sigmas: solver.sigmas(),
            solver,
            alphas_cumprod: schedule.alphas_cumprod.clone(),
            x,
            index: 0,
            noise,
        })
    }

    /// Model evaluations in all (the NFE).
    pub fn total(&self) -> usize {
        self.calls.len()
    }

    /// x as the solver holds it now (x_0 at the end).
    pub fn current(&self) -> &Tensor<4> {
        &self.x
    }

    /// The factor that brings the solver's x at call `k` to the DDPM picture: 1/√(σ_k²+1) for
    /// the σ-space solvers (their initial σ is above 1), 1 otherwise.
    fn to_picture(&self, k: usize) -> f64 {
        if self.solver.init_noise_sigma() > 1.0 {
            self.sigmas
                .get(k)
                .map_or(1.0, |s| 1.0 / (s * s + 1.0).sqrt())
        } else {
            1.0
        }
    }

    /// The next model call and its step; `None` when the run is over.
    pub fn next_step(&mut self) -> Option<Result<StepFrame>> {
        let (input, t) = self.next_input()?;
        let b = input.dims()[0];
        Some(
            self.denoiser
                .forward(input, &vec![t; b])
                .and_then(|out| self.step_with(out)),
        )
    }

    /// The next call's model input (the solver's x scaled for the model) and the integer t the
    /// model is given; `None` when the run is over. With [`SolverRun::step_with`], a caller can
    /// run the model itself, in pieces of the batch (the page does, to keep frames short).
    pub fn next_input(&self) -> Option<(Tensor<4>, usize)> {
        let t = *self.calls.get(self.index)?;
        let t_model = (t.round().max(0.0) as usize).min(self.alphas_cumprod.len() - 1);
        Some((
            self.solver.scale_model_input(self.x.clone(), self.index),
            t_model,
        ))
    }

    /// The next call's step, given the model's output at [`SolverRun::next_input`].
    pub fn step_with(&mut self, out: Tensor<4>) -> Result<StepFrame> {
        let (input, t_model) = self
            .next_input()
            .ok_or_else(|| DiffError::invalid("the solver's run is over"))?;
        let k = self.index;
        self.index += 1;
        let shape = self.x.dims();
        let z = self.solver.needs_noise(k).then(|| (self.noise)(k, shape));
        let prediction = self.denoiser.prediction_type();
        let (pred_x0, pred_eps) = match (prediction, self.sigmas.get(k)) {
            // A flow model's x̂0 and ε̂ are read with its σ, not ᾱ.
            (PredictionType::Flow, Some(&sigma)) => {
                crate::diffusion::flow_matching::flow_x0_and_eps(out.clone(), input.clone(), sigma)
            }
            _ => crate::diffusion::scheduler::predict_x0_and_eps(
                prediction,
                out.clone(),
                input.clone(),
                self.alphas_cumprod[t_model],
            ),
        };
        let next = self.solver.step(out, k, self.x.clone(), z)?.prev_sample;
        self.x = next;
        let prev_t = self.calls.get(k + 1).map(|t| t.round().max(0.0) as usize);
        Ok(StepFrame {
            index: k,
            t: t_model,
            prev_t,
            x_t: input,
            prev_sample: self.x.clone().mul_scalar(self.to_picture(k + 1) as f32),
            pred_x0,
            pred_eps,
            ddim_terms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_combinations_are_refused() {
        let spec = |kind, order, karras| SolverSpec {
            kind,
            order,
            karras,
        };
        assert!(spec(SolverKind::Euler, Some(2), false).validate().is_err());
        assert!(
            spec(SolverKind::DpmSolverPlusPlus, Some(4), false)
                .validate()
                .is_err()
        );
        assert!(spec(SolverKind::UniPc, Some(3), true).validate().is_ok());
        assert_eq!(
            spec(SolverKind::DpmSolverPlusPlus, None, true).label(),
            "DPM-Solver++ 2M Karras"
        );
    }
}
