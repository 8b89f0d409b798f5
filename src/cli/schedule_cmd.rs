//! `difflab schedule` and `difflab timesteps`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

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
}

#[derive(Serialize)]
struct ScheduleJson<'a> {
    schedule: &'static str,
    num_train_timesteps: usize,
    beta_start: f64,
    beta_end: f64,
    betas: &'a [f64],
    alphas_cumprod: &'a [f64],
    sqrt_alphas_cumprod: &'a [f64],
    sqrt_one_minus_alphas_cumprod: &'a [f64],
    posterior_variance: &'a [f64],
    log_snr: &'a [f64],
}

/// The curves as JSON.
pub fn schedule_json(s: &NoiseSchedule) -> Result<String> {
    let j = ScheduleJson {
        schedule: s.config.kind.name(),
        num_train_timesteps: s.num_timesteps(),
        beta_start: s.config.beta_start,
        beta_end: s.config.beta_end,
        betas: &s.betas,
        alphas_cumprod: &s.alphas_cumprod,
        sqrt_alphas_cumprod: &s.sqrt_alphas_cumprod,
        sqrt_one_minus_alphas_cumprod: &s.sqrt_one_minus_alphas_cumprod,
        posterior_variance: &s.posterior_variance,
        log_snr: &s.log_snr,
    };
    serde_json::to_string_pretty(&j).map_err(|e| DiffError::invalid(e.to_string()))
}

/// The curves as CSV, one row per timestep.
pub fn schedule_csv(s: &NoiseSchedule) -> String {
    let mut out = String::from(
        "t,beta,alpha_cumprod,sqrt_alpha_cumprod,sqrt_one_minus_alpha_cumprod,posterior_variance,log_snr\n",
    );
    for t in 0..s.num_timesteps() {
        out.push_str(&format!(
            "{t},{},{},{},{},{},{}\n",
            // β and ᾱ are f32 values (as in diffusers): print them as such.
            s.betas[t] as f32,
            s.alphas_cumprod[t] as f32,
            s.sqrt_alphas_cumprod[t],
            s.sqrt_one_minus_alphas_cumprod[t],
            s.posterior_variance[t],
            s.log_snr[t]
        ));
    }
    out
}

pub(super) fn schedule(a: ScheduleArgs) -> Result<()> {
    let s = NoiseSchedule::new(a.schedule.config())?;
    let text = match a.format {
        Format::Json => schedule_json(&s)? + "\n",
        Format::Csv => schedule_csv(&s),
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
    let ts = timesteps(a.spacing, a.num_timesteps, a.steps, a.steps_offset)?;
    let json = serde_json::to_string(&ts).map_err(|e| DiffError::invalid(e.to_string()))?;
    super::print_stdout(&(json + "\n"))
}
