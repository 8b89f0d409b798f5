//! `difflab schedule` and `difflab timesteps`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::ScheduleOpts;
use crate::data::image_io::write_atomic;
use crate::diffusion::{NoiseSchedule, TimestepSpacing, timesteps};
use crate::error::{DiffError, Result};

/// Output format of `difflab schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object with an array per curve.
    Json,
    /// One row per timestep.
    Csv,
}

/// Arguments of `difflab schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    schedule: ScheduleOpts,
    /// json or csv.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Arguments of `difflab timesteps`.
#[derive(Debug, Args)]
pub struct TimestepsArgs {
    /// leading, trailing or linspace.
    #[arg(long, value_enum, default_value_t = TimestepSpacing::Leading)]
    spacing: TimestepSpacing,
    /// T, the number of training timesteps.
    #[arg(long = "timesteps", default_value_t = 1000)]
    num_timesteps: usize,
    /// N, the number of sampling steps.
    #[arg(long)]
    steps: usize,
    /// Added to every timestep (leading spacing only, as in diffusers).
    #[arg(long, default_value_t = 0)]
    steps_offset: usize,
    /// A solver after DDIM: print the t and σ of each of its model calls instead, as JSON
    /// (`{"solver", "nfe", "calls": [{"t", "sigma"}]}`, on the linear schedule of T steps).
    #[arg(long, value_enum)]
    sampler: Option<super::SamplerChoice>,
    /// The order of a multistep solver (1 to 3; default 2).
    #[arg(long, requires = "sampler")]
    order: Option<usize>,
    /// Karras σ for the solver.
    #[arg(long, requires = "sampler")]
    karras: bool,
}

pub(super) fn schedule(a: ScheduleArgs) -> Result<()> {
    if let Some(path) = &a.output {
        super::check_output(path)?;
    }
    let s = NoiseSchedule::new(a.schedule.config())?;
    let text = match a.format {
        Format::Json => s.to_json()? + "\n",
        Format::Csv => s.to_csv(),
    };
    match a.output {
        Some(path) => write_atomic(&path, text.as_bytes()),
        None => super::print_stdout(&text),
    }
}

pub(super) fn timesteps_cmd(a: TimestepsArgs) -> Result<()> {
    if a.num_timesteps == 0 {
        return Err(DiffError::invalid(
            "the number of timesteps T must be at least 1",
        ));
    }
    if let Some(kind) = a.sampler.and_then(super::SamplerChoice::solver) {
        return solver_timesteps(&a, kind);
    }
    if a.karras || a.order.is_some() {
        return Err(DiffError::invalid(
            "--karras and --order apply to the solvers after DDIM, not to ddpm or ddim",
        ));
    }
    let ts = timesteps(a.spacing, a.num_timesteps, a.steps, a.steps_offset)?;
    let json = serde_json::to_string(&ts).map_err(|e| DiffError::invalid(e.to_string()))?;
    super::print_stdout(&(json + "\n"))
}

/// Which t (and σ) a solver after DDIM calls the model at: one entry per model evaluation.
fn solver_timesteps(a: &TimestepsArgs, kind: crate::diffusion::solvers::SolverKind) -> Result<()> {
    use crate::diffusion::solvers::SolverSpec;
    let spec = SolverSpec {
        kind,
        order: a.order,
        karras: a.karras,
    };
    let schedule = crate::diffusion::ScheduleConfig {
        num_train_timesteps: a.num_timesteps,
        ..crate::diffusion::ScheduleConfig::default()
    };
    // The calls do not depend on the model, only on its kind: flow Euler's are a flow model's.
    let prediction = if spec.kind == crate::diffusion::solvers::SolverKind::FlowEuler {
        crate::diffusion::PredictionType::Flow
    } else {
        crate::diffusion::PredictionType::Epsilon
    };
    let solver = spec.build(&schedule, prediction, a.steps)?;
    let sched = NoiseSchedule::new(schedule)?;
    let sigma_of = |t: f64| {
        let sig = crate::diffusion::solvers::sigmas::training_sigmas(&sched.alphas_cumprod);
        crate::diffusion::solvers::sigmas::interp_sigma(t, &sig)
    };
    // The solver's own σ where it has one per call (Karras σ are not the training σ at the
    // rounded t), else the training σ at t.
    let own = solver.sigmas();
    let call_t = solver.call_timesteps();
    let per_call = own.len() == call_t.len() + 1;
    let calls: Vec<serde_json::Value> = call_t
        .into_iter()
        .enumerate()
        .map(|(k, t)| {
            let sigma = if per_call { own[k] } else { sigma_of(t) };
            serde_json::json!({"t": t, "sigma": sigma})
        })
        .collect();
    let out = serde_json::json!({"solver": spec.label(), "nfe": calls.len(), "calls": calls});
    super::print_stdout(&(out.to_string() + "\n"))
}
