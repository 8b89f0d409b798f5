//! `difflab toy`: train the 2-D MLP on a toy distribution, sample it, and plot, headlessly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sample_cmd::{GifOpts, SamplerChoice};
use super::{check_outputs, device_for};
use crate::data::image_io::save_png;
use crate::data::toy2d::{Toy2d, energy_distance, scatter};
use crate::device::DeviceChoice;
use crate::diffusion::{
    NoiseSchedule, PredictionType, ScheduleConfig, Scheduler, SchedulerConfig, TimestepSpacing,
    sample_seeded,
};
use crate::error::{DiffError, Result};
use crate::model::toy_mlp::ToyMlpConfig;
use crate::train::toy::{ToyTrainConfig, ToyTrainer, points_of};

/// Arguments of `difflab toy`.
#[derive(Debug, Args)]
pub struct ToyArgs {
    /// The distribution.
    #[arg(long, value_enum, default_value_t = Toy2d::SwissRoll)]
    data: Toy2d,
    /// Training points.
    #[arg(long, default_value_t = 10_000)]
    data_size: usize,
    /// Training steps (DDPM Algorithm 1, AdamW).
    #[arg(long, default_value_t = 3000)]
    train_steps: usize,
    /// Points per training step.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// ddpm or ddim.
    #[arg(long, value_enum, default_value_t = SamplerChoice::Ddim)]
    sampler: SamplerChoice,
    /// Sampling steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// DDIM's η in [0, 1].
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    eta: f64,
    /// How the steps spread over T.
    #[arg(long, value_enum, default_value_t = TimestepSpacing::Trailing)]
    spacing: TimestepSpacing,
    /// Points to sample (up to 10,000).
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Seed of the data, the training and the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The plot: data (grey) and samples (blue).
    #[arg(short, long, required_unless_present = "gif")]
    output: Option<PathBuf>,
    /// The reverse process as an animated GIF.
    #[arg(long)]
    gif: Option<PathBuf>,
    #[command(flatten)]
    gif_opts: GifOpts,
}

const PLOT_SIZE: u32 = 400;
/// A million steps take minutes; more is a typo, run with no way to stop it but Ctrl-C.
const MAX_TOY_TRAIN_STEPS: usize = 1_000_000;
const PLOT_RANGE: f32 = 3.0;

pub(super) fn toy(a: ToyArgs, device: DeviceChoice) -> Result<()> {
    if a.samples == 0 || a.samples > 10_000 {
        return Err(DiffError::invalid("--samples must be between 1 and 10,000"));
    }
    if a.train_steps == 0 {
        return Err(DiffError::invalid(
            "--train-steps must be at least 1 (an untrained MLP samples noise)",
        ));
    }
    if a.train_steps > MAX_TOY_TRAIN_STEPS {
        return Err(DiffError::invalid(format!(
            "--train-steps must be at most {MAX_TOY_TRAIN_STEPS} (the default 3000 learns a toy set)"
        )));
    }
    a.sampler.ddpm_or_ddim("toy")?;
    super::sample_cmd::check_eta(a.sampler, a.eta)?;
    check_outputs(&super::given(&[&a.output, &a.gif]), &[])?;
    if a.gif.is_some() {
        a.gif_opts.validate()?;
    }
    let config = ScheduleConfig::default();
    let scheduler = Scheduler::new(SchedulerConfig {
        use_clipped_model_output: false,
        schedule: config,
        prediction_type: PredictionType::Epsilon,
        clip_sample: None,
        spacing: a.spacing,
        steps_offset: 0,
        num_inference_steps: a.steps,
        sampler: a.sampler.kind(a.eta),
    })?;
    let data = a.data.sample(a.data_size, a.seed)?;
    let device = device_for(device)?;
    let mut trainer = ToyTrainer::new(
        data.clone(),
        Arc::new(NoiseSchedule::new(config)?),
        &ToyMlpConfig::new().with_hidden(a.hidden),
        ToyTrainConfig {
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
            ..ToyTrainConfig::default()
        },
        &device.device,
    )?;
    let bar = ProgressBar::new(a.train_steps as u64).with_style(
        ProgressStyle::with_template("{bar:40} step {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    for i in 0..a.train_steps {
        trainer.train_step()?;
        if i % 50 == 0 {
            bar.set_message(format!("loss {:.4}", trainer.recent_loss(50)));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "trained {} steps in {secs:.1} s ({:.0} steps/s), loss {:.4}",
        a.train_steps,
        a.train_steps as f64 / secs.max(1e-9),
        trainer.recent_loss(100)
    );
    let model = trainer.model()?;
    let cancel = AtomicBool::new(false);
    let mut frames = Vec::new();
    let x0 = sample_seeded(
        &model,
        &scheduler,
        a.seed.wrapping_add(1),
        a.samples,
        &cancel,
        &device.device,
        |f| {
            if a.gif.is_some()
                && let Ok(p) = points_of(f.x_t.clone())
            {
                frames.push(scatter(
                    &[
                        (&data[..data.len().min(2000)], [210, 210, 210]),
                        (&p, [40, 90, 220]),
                    ],
                    PLOT_SIZE,
                    PLOT_RANGE,
                ));
            }
        },
    )?
    .ok_or_else(|| DiffError::invalid("cancelled"))?;
    let samples = points_of(x0)?;
    let fresh = a.data.sample(1000, a.seed.wrapping_add(12345))?;
    eprintln!(
        "energy distance to fresh {} data: {:.4} (two real draws: {:.4})",
        a.data.name(),
        energy_distance(&samples, &fresh, 1000),
        energy_distance(
            &a.data.sample(1000, a.seed.wrapping_add(777))?,
            &fresh,
            1000
        )
    );
    let plot = scatter(
        &[
            (&data[..data.len().min(2000)], [210, 210, 210]),
            (&samples, [40, 90, 220]),
        ],
        PLOT_SIZE,
        PLOT_RANGE,
    );
    if let Some(path) = &a.output {
        save_png(&plot, path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.gif {
        frames.push(plot);
        a.gif_opts.write(&frames, path)?;
    }
    Ok(())
}
