//! The solvers after DDIM, each with Hugging Face diffusers' semantics (its scheduler's
//! `set_timesteps`, `scale_model_input` and `step`), checked against diffusers' own runs
//! (`tests/golden/solver_loops.json`):
//!
//! - [`euler`]: Euler and Euler ancestral in σ = √((1−ᾱ)/ᾱ) (Karras et al. 2022, Algorithm 2
//!   with no churn; `EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`);
//! - [`heun`]: Heun's second-order method, two model calls a step (`HeunDiscreteScheduler`);
//! - [`flow`]: flow matching's Euler, x_σ = (1−σ)·x_0 + σ·ε, v = ε − x_0
//!   (`FlowMatchEulerDiscreteScheduler`, with `shift`);
//! - [`dpm`]: DPM-Solver and DPM-Solver++ orders 1–3, and SDE-DPM-Solver++
//!   (`DPMSolverMultistepScheduler`; Lu et al. 2022a, 2022b);
//! - [`unipc`]: UniPC with the bh2 variant, orders 1–3 (`UniPCMultistepScheduler`; Zhao et
//!   al. 2023).
//!
//! Karras σ (ρ = 7) is an option of every σ-based solver ([`sigmas::karras_sigmas`]).
//!
//! **Counting.** What a user pays for is model evaluations (NFE), not steps: a run calls the
//! model once per entry of [`Solver::call_timesteps`] (Heun: twice a step, less one).

use burn::tensor::Tensor;
use serde_json::Value;

use super::PredictionType;
use crate::error::{DiffError, Result};

pub mod choice;
pub mod dpm;
pub mod euler;
pub mod flow;
pub mod heun;
pub mod sigmas;
pub mod unipc;

pub use choice::{SolverKind, SolverRun, SolverSpec, solve};

/// One call's result.
pub struct SolverStep {
    /// x after this call's step.
    pub prev_sample: Tensor<4>,
    /// x̂0 as the step saw it (before any clipping), where the method forms it.
    pub pred_original_sample: Option<Tensor<4>>,
}

/// A solver with its timesteps set (diffusers' `set_timesteps` done by its constructor).
///
/// The loop: x = x_T · [`Solver::init_noise_sigma`]; for each call k,
/// `out = model(scale_model_input(x, k), call_timesteps()[k])`, then
/// `x = step(out, k, x, noise_k).prev_sample` (`noise_k` only where [`Solver::needs_noise`]).
pub trait Solver: Send {
    /// "DPM-Solver++ 2M Karras", "Euler", "Heun", … (as front ends name them).
    fn name(&self) -> String;
    /// diffusers' `timesteps` after `set_timesteps` (floats for the Euler family).
    fn timesteps(&self) -> Vec<f64>;
    /// diffusers' `sigmas` after `set_timesteps` (σ-based solvers; empty otherwise).
    fn sigmas(&self) -> Vec<f64>;
    /// The t of every model call, in order: its length is the NFE.
    /// (diffusers lists one timestep per call, Heun's twice, so by default these are
    /// [`Solver::timesteps`].)
    fn call_timesteps(&self) -> Vec<f64> {
        self.timesteps()
    }
    /// What x_T ~ N(0, I) is multiplied by before the first call (1 unless the solver works in
    /// σ-scaled x).
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }
    /// The model's input at call `call` (x/√(σ²+1) for the Euler family; x itself otherwise).
    fn scale_model_input(&self, sample: Tensor<4>, _call: usize) -> Tensor<4> {
        sample
    }
    /// Whether call `call`'s step adds noise (ancestral and SDE solvers; none by default).
    fn needs_noise(&self, _call: usize) -> bool {
        false
    }
    /// Call `call`'s step from `sample`, given the model output; multistep solvers keep their
    /// history between calls, so calls must come in order (0, 1, 2, …).
    fn step(
        &mut self,
        model_output: Tensor<4>,
        call: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<SolverStep>;
}

/// A solver made from a diffusers scheduler's class name (`euler`, `euler_ancestral`,
/// `heun`, `flow_match_euler`, `dpmsolver_multistep`, `unipc_multistep`), its constructor
/// arguments as JSON (absent ones take diffusers' defaults) and N. An argument or a value
/// difflab does not implement is an error naming it, never ignored.
pub fn from_diffusers(
    scheduler: &str,
    config: &Value,
    num_inference_steps: usize,
) -> Result<Box<dyn Solver>> {
    match scheduler {
        "euler" => Ok(Box::new(euler::Euler::from_diffusers(
            config,
            num_inference_steps,
            false,
        )?)),
        "euler_ancestral" => Ok(Box::new(euler::Euler::from_diffusers(
            config,
            num_inference_steps,
            true,
        )?)),
        "heun" => Ok(Box::new(heun::Heun::from_diffusers(
            config,
            num_inference_steps,
        )?)),
        "flow_match_euler" => Ok(Box::new(flow::FlowMatchEuler::from_diffusers(
            config,
            num_inference_steps,
        )?)),
        "dpmsolver_multistep" => Ok(Box::new(dpm::DpmSolver::from_diffusers(
            config,
            num_inference_steps,
        )?)),
        "unipc_multistep" => Ok(Box::new(unipc::UniPc::from_diffusers(
            config,
            num_inference_steps,
        )?)),
        other => Err(DiffError::invalid(format!(
            "difflab has no solver for the diffusers scheduler '{other}'"
        ))),
    }
}

/// Fails on a key of `config` that is not in `known` (a diffusers option difflab does not
/// implement must not be silently ignored).
pub fn check_known_keys(scheduler: &str, config: &Value, known: &[&str]) -> Result<()> {
    let Some(map) = config.as_object() else {
        return Err(DiffError::invalid(format!(
            "{scheduler}: the config is not a JSON object"
        )));
    };
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            return Err(DiffError::invalid(format!(
                "{scheduler}: difflab does not implement the option '{key}'"
            )));
        }
    }
    Ok(())
}

/// diffusers' `prediction_type` names.
pub fn prediction_of(config: &Value) -> Result<PredictionType> {
    match config.get("prediction_type").and_then(Value::as_str) {
        None | Some("epsilon") => Ok(PredictionType::Epsilon),
        Some("v_prediction") => Ok(PredictionType::VPrediction),
        Some("sample") => Ok(PredictionType::Sample),
        Some(other) => Err(DiffError::invalid(format!(
            "unknown prediction_type '{other}'"
        ))),
    }
}
