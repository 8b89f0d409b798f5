//! `difflab sample`: DDPM or DDIM sampling with a chosen denoiser.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Tensor;
use clap::{Args, ValueEnum};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

use super::{ScheduleOpts, check_outputs, device_for};
use crate::data::image_io::{
    ValueRange, batch_to_rgb, chw_to_rgb, grid, grid_cols, grid_size, load_folder, save_png,
};
use crate::data::mnist::{Mnist, SIDE};
use crate::device::{ComputeDevice, DeviceChoice};
use crate::diffusion::solvers::{SolverSpec, solve};
use crate::diffusion::{
    NoiseSchedule, SamplerKind, Scheduler, SchedulerConfig, TimestepSpacing, VarianceType,
    initial_noise, sample_loop, step_noise,
};
use crate::error::{DiffError, Result};
use crate::model::memory::{MemoryEstimate, Workload, check_fits};
use crate::model::{Denoiser, ExactDenoiser};
use crate::tensor_util::to_vec;

/// Which model denoises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    /// The exact (memorising) denoiser over the --data image set.
    Exact,
    /// The trained U-Net: the shipped MNIST model, or --weights.
    Unet,
}

/// Which sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerChoice {
    /// Ancestral sampling (Ho et al. 2020).
    Ddpm,
    /// DDIM (Song et al. 2020).
    Ddim,
    /// DPM-Solver++ multistep (Lu et al. 2022b); --order 2 is "DPM++ 2M".
    #[value(name = "dpm-solver++")]
    DpmSolverPlusPlus,
    /// DPM-Solver multistep (Lu et al. 2022a).
    #[value(name = "dpm-solver")]
    DpmSolver,
    /// SDE-DPM-Solver++: noise added at every step.
    #[value(name = "sde-dpm-solver++")]
    SdeDpmSolverPlusPlus,
    /// Euler's method on the probability-flow ODE in σ (Karras et al. 2022).
    Euler,
    /// Euler ancestral.
    #[value(name = "euler-a")]
    EulerAncestral,
    /// Heun's method (two model calls a step).
    Heun,
    /// UniPC, bh2 (Zhao et al. 2023).
    Unipc,
    /// Flow matching's Euler, for flow-matching models (`train --objective flow`).
    #[value(name = "flow-euler")]
    FlowEuler,
}

impl SamplerChoice {
    /// The solver after DDIM this choice names (`None` for DDPM and DDIM).
    pub fn solver(self) -> Option<crate::diffusion::solvers::SolverKind> {
        use crate::diffusion::solvers::SolverKind;
        Some(match self {
            SamplerChoice::Ddpm | SamplerChoice::Ddim => return None,
            SamplerChoice::DpmSolverPlusPlus => SolverKind::DpmSolverPlusPlus,
            SamplerChoice::DpmSolver => SolverKind::DpmSolver,
            SamplerChoice::SdeDpmSolverPlusPlus => SolverKind::SdeDpmSolverPlusPlus,
            SamplerChoice::Euler => SolverKind::Euler,
            SamplerChoice::EulerAncestral => SolverKind::EulerAncestral,
            SamplerChoice::Heun => SolverKind::Heun,
            SamplerChoice::Unipc => SolverKind::UniPc,
            SamplerChoice::FlowEuler => SolverKind::FlowEuler,
        })
    }

    /// DDPM or DDIM; a solver after DDIM is refused with one line naming `command`.
    pub fn ddpm_or_ddim(self, command: &str) -> Result<Self> {
        match self.solver() {
            None => Ok(self),
            Some(k) => Err(DiffError::invalid(format!(
                "--sampler {}: `difflab {command}` runs ddpm or ddim (the solvers after DDIM are \
                 in `difflab sample` and `difflab timesteps`)",
                k.cli_name()
            ))),
        }
    }

    /// The scheduler for this choice: DDPM (fixed_small) or DDIM with η.
    pub fn kind(self, eta: f64) -> crate::diffusion::SamplerKind {
        use crate::diffusion::{SamplerKind, VarianceType};
        match self {
            SamplerChoice::Ddpm => SamplerKind::Ddpm {
                variance: VarianceType::FixedSmall,
            },
            // The solvers after DDIM have no SamplerKind: callers route them first
            // (`solver()`, `ddpm_or_ddim`); DDIM stands in.
            _ => SamplerKind::Ddim {
                eta,
                set_alpha_to_one: true,
            },
        }
    }
}

/// An image set: the bundled MNIST digits or a folder of images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChoice {
    /// The 10,000 bundled digits.
    Mnist,
    /// Every image in a folder.
    Folder(PathBuf),
}

impl std::str::FromStr for DataChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.is_empty() {
            return Err("give mnist or a folder of images".into());
        }
        Ok(if s == "mnist" {
            DataChoice::Mnist
        } else {
            DataChoice::Folder(PathBuf::from(s))
        })
    }
}

/// The exact denoiser's image set.
#[derive(Debug, Args)]
pub struct DataOpts {
    /// The exact denoiser's image set: `mnist` or a folder of images.
    #[arg(long, default_value = "mnist")]
    data: DataChoice,
    /// Use only the first N images of the set.
    #[arg(long)]
    data_count: Option<usize>,
    /// Side length images from a folder are resized to.
    #[arg(long, default_value_t = 32)]
    size: u32,
    /// Load folder images in grayscale instead of colour.
    #[arg(long)]
    gray: bool,
}

impl DataOpts {
    /// "MNIST" or the folder, for messages.
    pub(super) fn describe(&self) -> String {
        match &self.data {
            DataChoice::Mnist => "the bundled MNIST digits".into(),
            DataChoice::Folder(d) => d.display().to_string(),
        }
    }
}

impl DataOpts {
    /// The data folder, when the images come from one (an input no output may overwrite).
    pub(super) fn folder(&self) -> Option<&Path> {
        match &self.data {
            DataChoice::Folder(dir) => Some(dir),
            DataChoice::Mnist => None,
        }
    }
}

/// Arguments of `difflab sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The denoiser.
    #[arg(long, value_enum, default_value_t = ModelChoice::Exact)]
    model: ModelChoice,
    /// U-Net weights (SafeTensors from `difflab train`); default: the shipped MNIST model.
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    data: DataOpts,
    /// The long flags typed on the command line: an option that does not apply to what was
    /// asked (`--variance` with DDIM) is refused rather than silently ignored. Filled in by
    /// [`super::Cli::parse_from`].
    #[arg(skip)]
    pub(super) typed: std::collections::BTreeSet<String>,
    /// ddpm or ddim.
    #[arg(long, value_enum, default_value_t = SamplerChoice::Ddim)]
    sampler: SamplerChoice,
    /// The order of a multistep solver (dpm-solver++, dpm-solver, sde-dpm-solver++, unipc):
    /// 1 to 3, default 2 ("2M").
    #[arg(long)]
    order: Option<usize>,
    /// Karras et al.'s σ spacing (ρ = 7) for the solvers after DDIM.
    #[arg(long)]
    karras: bool,
    /// DDPM's variance: fixed-small (β̃_t) or fixed-large (β_t).
    #[arg(long, value_enum, default_value_t = VarianceType::FixedSmall)]
    variance: VarianceType,
    /// N, the number of sampling steps (1 … T).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// DDIM's η in [0, 1]: 0 is deterministic, 1 matches DDPM's variance.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    eta: f64,
    /// How the steps are spread over T.
    #[arg(long, value_enum, default_value_t = TimestepSpacing::Leading)]
    spacing: TimestepSpacing,
    /// Added to every timestep (leading spacing only).
    #[arg(long, default_value_t = 0)]
    steps_offset: usize,
    /// Clamp x̂0 to [−R, R] (0 turns clipping off).
    #[arg(long, default_value_t = 1.0)]
    clip_sample: f64,
    #[command(flatten)]
    schedule: ScheduleOpts,
    /// Seed: sample i starts from seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many samples.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Write all samples as one grid PNG.
    #[arg(short, long, required_unless_present_any = ["out_dir", "tensor"])]
    output: Option<PathBuf>,
    /// Class-conditional U-Nets: the digit to draw (0–9), or `all` for one row of --count per
    /// digit. Without it, a conditional model samples unconditionally.
    #[arg(long)]
    label: Option<LabelArg>,
    /// Classifier-free guidance scale w ≥ 0 with --label: ε̃ = ε_∅ + w·(ε_c − ε_∅) (0 is the
    /// unconditional model, 1 the conditional one, more pushes harder towards the label;
    /// default 2).
    #[arg(long, requires = "label", allow_negative_numbers = true)]
    guidance: Option<f64>,
    /// Write one PNG per sample (sample-0000.png, ...) at native resolution.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also write the samples as one f32 tensor [count, C, H, W] in [−1, 1], before they are
    /// rounded to pixels (SafeTensors, the tensor "samples"): to compare runs bit for bit.
    #[arg(long)]
    tensor: Option<PathBuf>,
    /// Also write x_t (top row) and x̂0 (bottom row) of the first sample along the way.
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Upscale grid cells by this factor.
    #[arg(long, default_value_t = 2)]
    scale: u32,
    /// Also write the first sample's x_t at every step as an animated GIF.
    #[arg(long)]
    gif: Option<PathBuf>,
    #[command(flatten)]
    gif_opts: GifOpts,
}

/// `--label`: one class, or every class in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelArg {
    /// One class for every sample.
    One(usize),
    /// One row of samples per class.
    All,
}

impl std::str::FromStr for LabelArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "all" {
            return Ok(LabelArg::All);
        }
        s.parse()
            .map(LabelArg::One)
            .map_err(|_| format!("'{s}' is not a label: give a class number (0–9) or `all`"))
    }
}

/// The default guidance scale with --label.
pub const DEFAULT_GUIDANCE: f64 = 2.0;

/// The model and, with --label, the labels of all samples and w.
enum SampleModel {
    Plain(Box<dyn Denoiser>),
    Guided {
        unet: Arc<crate::model::UNetDenoiser>,
        labels: Vec<usize>,
        scale: f64,
    },
}

impl SampleModel {
    fn denoiser(&self) -> &dyn Denoiser {
        match self {
            SampleModel::Plain(m) => m.as_ref(),
            SampleModel::Guided { unet, .. } => unet.as_ref(),
        }
    }

    /// Runs `f` with the denoiser for samples first..first + n.
    fn with_batch<R>(
        &self,
        first: usize,
        n: usize,
        f: impl FnOnce(&dyn Denoiser) -> Result<R>,
    ) -> Result<R> {
        match self {
            SampleModel::Plain(m) => f(m.as_ref()),
            SampleModel::Guided {
                unet,
                labels,
                scale,
            } => {
                let g = crate::model::Guided::new(
                    unet.clone(),
                    labels[first..first + n].to_vec(),
                    *scale,
                )?;
                f(&g)
            }
        }
    }
}

/// GIF options shared by `sample` and `interpolate`.
#[derive(Debug, Clone, Args)]
pub struct GifOpts {
    /// At most this many GIF frames (picked evenly, first and last kept).
    #[arg(long, default_value_t = 50)]
    pub gif_frames: usize,
    /// Delay of each GIF frame, in milliseconds.
    #[arg(long, default_value_t = 80)]
    pub gif_delay_ms: u32,
    /// Upscale GIF frames by this factor (1 to 16).
    #[arg(long, default_value_t = 4)]
    pub gif_scale: u32,
}

impl GifOpts {
    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        if self.gif_frames < 2 {
            return Err(DiffError::invalid("--gif-frames must be at least 2"));
        }
        if !(1..=16).contains(&self.gif_scale) {
            return Err(DiffError::invalid("--gif-scale must be between 1 and 16"));
        }
        Ok(())
    }

    /// Writes `frames`, at most `gif_frames` of them picked evenly.
    pub fn write(&self, frames: &[RgbImage], path: &Path) -> Result<()> {
        let picked = crate::data::gif::pick_evenly(frames, self.gif_frames);
        crate::data::gif::save_gif(&picked, self.gif_delay_ms, self.gif_scale, path, |_| {})?;
        eprintln!("wrote {} ({} frames)", path.display(), picked.len());
        Ok(())
    }
}

/// Frames of the first sample kept for `--trajectory`.
const TRAJECTORY_FRAMES: usize = 10;

/// The class labels of the image set: the MNIST digits' (as many as `load_images` returns);
/// `None` for a folder.
pub(super) fn load_labels(a: &DataOpts) -> Result<Option<Vec<usize>>> {
    match &a.data {
        DataChoice::Mnist => {
            let m = Mnist::embedded()?;
            Ok(Some(m.class_labels(a.data_count.unwrap_or(usize::MAX))))
        }
        DataChoice::Folder(_) => Ok(None),
    }
}

/// Loads the image set (bad images in a folder are skipped with a warning).
pub(super) fn load_images(a: &DataOpts) -> Result<(Vec<Vec<f32>>, [usize; 3])> {
    let limit = a.data_count.unwrap_or(usize::MAX);
    if limit == 0 {
        return Err(DiffError::invalid("--data-count must be at least 1"));
    }
    match &a.data {
        DataChoice::Mnist => {
            let m = Mnist::embedded()?;
            Ok((m.images(limit), [1, SIDE, SIDE]))
        }
        DataChoice::Folder(dir) => {
            if a.size == 0 || a.size > 512 {
                return Err(DiffError::invalid("--size must be between 1 and 512"));
            }
            let channels = if a.gray { 1 } else { 3 };
            let (images, skipped) = load_folder(dir, a.size, channels)?;
            for s in &skipped {
                eprintln!("warning: skipped {s}");
            }
            let shape = images[0].shape();
            Ok((
                images.into_iter().take(limit).map(|i| i.data).collect(),
                shape,
            ))
        }
    }
}

fn scheduler_config(
    a: &SampleArgs,
    prediction: crate::diffusion::PredictionType,
) -> SchedulerConfig {
    SchedulerConfig {
        // Guided runs re-derive ε̂ from the clipped x̂0: an extrapolated ε̃ whose x̂0 was
        // clipped would otherwise carry its excess into DDIM's direction term.
        use_clipped_model_output: a.label.is_some(),
        schedule: a.schedule.config(),
        prediction_type: prediction,
        clip_sample: (a.clip_sample > 0.0).then_some(a.clip_sample),
        spacing: a.spacing,
        steps_offset: a.steps_offset,
        num_inference_steps: a.steps,
        sampler: match a.sampler {
            SamplerChoice::Ddpm => SamplerKind::Ddpm {
                variance: a.variance,
            },
            _ => SamplerKind::Ddim {
                eta: a.eta,
                set_alpha_to_one: true,
            },
        },
    }
}

/// The most images one `sample` makes.
const MAX_COUNT: usize = 100_000;

/// `--scale`, the upscaling of a written picture's cells: 1 to 16, as `--gif-scale`.
pub(super) fn check_scale(scale: u32) -> Result<()> {
    if (1..=16).contains(&scale) {
        Ok(())
    } else {
        Err(DiffError::invalid("--scale must be between 1 and 16"))
    }
}

/// `--eta`: DDIM's η in [0, 1]; DDPM has none.
pub(super) fn check_eta(sampler: SamplerChoice, eta: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&eta) {
        return Err(DiffError::invalid(format!(
            "--eta {eta} is out of range: η must be in [0, 1]"
        )));
    }
    if sampler == SamplerChoice::Ddpm && eta != 0.0 {
        return Err(DiffError::invalid("--eta applies to DDIM only"));
    }
    Ok(())
}

fn validate(a: &SampleArgs) -> Result<()> {
    if a.count == 0 || a.count > MAX_COUNT {
        return Err(DiffError::invalid(format!(
            "--count must be between 1 and {MAX_COUNT}"
        )));
    }
    check_scale(a.scale)?;
    if a.batch == 0 {
        return Err(DiffError::invalid("--batch must be at least 1"));
    }
    check_eta(a.sampler, a.eta)?;
    // Options that would be silently ignored.
    let typed = |flag: &str| a.typed.contains(flag);
    match a.sampler.solver() {
        Some(kind) => {
            solver_spec(a, kind).validate()?;
            for flag in [
                "--eta",
                "--variance",
                "--spacing",
                "--steps-offset",
                "--clip-sample",
            ] {
                if typed(flag) {
                    return Err(DiffError::invalid(format!(
                        "{flag} applies to ddpm and ddim, not to --sampler {}",
                        kind.cli_name()
                    )));
                }
            }
            if a.trajectory.is_some() || a.gif.is_some() {
                return Err(DiffError::invalid(format!(
                    "--trajectory and --gif are written by ddpm and ddim only for now, not by \
                     --sampler {}",
                    kind.cli_name()
                )));
            }
        }
        None => {
            if a.karras || a.order.is_some() {
                return Err(DiffError::invalid(format!(
                    "--karras and --order apply to the solvers after DDIM, not to --sampler {}",
                    if a.sampler == SamplerChoice::Ddpm {
                        "ddpm"
                    } else {
                        "ddim"
                    }
                )));
            }
        }
    }
    if typed("--variance") && a.sampler != SamplerChoice::Ddpm {
        return Err(DiffError::invalid(
            "--variance applies to DDPM only (DDIM's noise is set by --eta)",
        ));
    }
    if typed("--steps-offset") && a.spacing != TimestepSpacing::Leading {
        return Err(DiffError::invalid(
            "--steps-offset applies to leading spacing only",
        ));
    }
    check_model_flags(
        a.model,
        a.weights.is_some(),
        a.label.is_some(),
        a.guidance,
        &a.typed,
    )?;
    if !a.clip_sample.is_finite() || a.clip_sample < 0.0 {
        return Err(DiffError::invalid(
            "--clip-sample must be ≥ 0 (0 turns clipping off)",
        ));
    }
    let outputs = super::given(&[&a.output, &a.trajectory, &a.gif, &a.tensor]);
    let mut inputs = super::given(&[&a.weights]);
    inputs.extend(a.data.folder());
    check_outputs(&outputs, &inputs)?;
    if let Some(dir) = a.out_dir.as_ref().filter(|d| d.exists() && !d.is_dir()) {
        return Err(DiffError::file(dir, "is a file, not a folder (--out-dir)"));
    }
    if a.gif.is_some() {
        a.gif_opts.validate()?;
    }
    Ok(())
}

/// Refuses what does not go with the chosen model, shared by `sample` and `interpolate`: the
/// exact denoiser's data flags with the U-Net (`typed` holds the flags typed), --weights or
/// --label with the exact denoiser, and a bad guidance scale.
pub(super) fn check_model_flags(
    model: ModelChoice,
    weights: bool,
    label: bool,
    guidance: Option<f64>,
    typed: &std::collections::BTreeSet<String>,
) -> Result<()> {
    if model == ModelChoice::Unet
        && let Some(flag) = ["--data", "--data-count", "--size", "--gray"]
            .into_iter()
            .find(|f| typed.contains(*f))
    {
        return Err(DiffError::invalid(format!(
            "{flag} chooses the exact denoiser's images; --model unet does not read them"
        )));
    }
    if let Some(w) = guidance {
        crate::model::guidance::check_scale(w)?;
    }
    if model != ModelChoice::Unet {
        if label {
            return Err(DiffError::invalid(
                "--label needs a class-conditional U-Net (--model unet)",
            ));
        }
        if weights {
            return Err(DiffError::invalid("--weights goes with --model unet"));
        }
    }
    Ok(())
}

/// The U-Net of `--weights` (the shipped one without), with a warning on stderr when it was
/// trained on another schedule than `schedule`.
pub(super) fn load_unet(
    weights: Option<&std::path::Path>,
    schedule: &crate::diffusion::ScheduleConfig,
    device: &burn::tensor::Device,
) -> Result<crate::model::UNetDenoiser> {
    let (bytes, what) = match weights {
        Some(p) => (
            std::fs::read(p).map_err(|e| DiffError::file(p, e))?,
            p.display().to_string(),
        ),
        None => (
            crate::model::unet::SHIPPED_WEIGHTS.to_vec(),
            "the shipped U-Net".to_string(),
        ),
    };
    let (model, config) = crate::model::unet::load_safetensors(&bytes, &what, device)?;
    if let Some(r) = crate::model::unet::read_training_record(&bytes, &what)?
        && let Some(m) = r.schedule_mismatch(schedule)
    {
        eprintln!("warning: {m}");
    }
    Ok(crate::model::UNetDenoiser { model, config })
}

pub(super) fn sample(a: SampleArgs, device: DeviceChoice) -> Result<()> {
    validate(&a)?;
    let schedule = Arc::new(NoiseSchedule::new(a.schedule.config())?);
    let device = device_for(device)?;
    let mut count = a.count;
    let (model, shape) = match a.model {
        ModelChoice::Exact => {
            let (images, shape) = load_images(&a.data)?;
            let m = ExactDenoiser::new(&images, shape, schedule.clone(), &device.device)?;
            (SampleModel::Plain(Box::new(m)), shape)
        }
        ModelChoice::Unet => {
            let m = load_unet(a.weights.as_deref(), &a.schedule.config(), &device.device)?;
            let shape = m.sample_shape();
            // Refuse a batch that cannot fit before any work starts (one line, exit 2).
            let fits = |guided: bool, count: usize| {
                let estimate = MemoryEstimate::new(
                    &m.config,
                    m.model.num_params(),
                    Workload::Sample {
                        guided,
                        kept_images: count,
                    },
                );
                check_fits(&estimate, "sampling", a.batch.min(count))
            };
            match a.label {
                None => {
                    fits(false, count)?;
                    (SampleModel::Plain(Box::new(m)), shape)
                }
                Some(label) => {
                    let classes = crate::model::ConditionalDenoiser::num_classes(&m);
                    let labels: Vec<usize> = match label {
                        LabelArg::One(k) => vec![k; count],
                        LabelArg::All => {
                            let k = classes.unwrap_or(0);
                            count = a.count * k;
                            (0..count).map(|i| i / a.count).collect()
                        }
                    };
                    crate::model::guidance::check_labels(classes, &labels)?;
                    let scale = a.guidance.unwrap_or(DEFAULT_GUIDANCE);
                    fits(scale != 0.0 && scale != 1.0, count)?;
                    (
                        SampleModel::Guided {
                            unet: Arc::new(m),
                            labels,
                            scale,
                        },
                        shape,
                    )
                }
            }
        }
    };
    // DDPM and DDIM's scheduler (the solvers after DDIM build their own; a flow model has no
    // DDPM or DDIM).
    let scheduler = match a.sampler.solver() {
        None => Some(Scheduler::with_schedule(
            scheduler_config(&a, model.denoiser().prediction_type()),
            schedule.clone(),
        )?),
        Some(kind) => {
            // Refused here, before anything is printed or written (a flow model with a σ
            // solver, flow-euler with a diffusion model).
            solver_spec(&a, kind).build(
                &a.schedule.config(),
                model.denoiser().prediction_type(),
                a.steps,
            )?;
            None
        }
    };
    // --label all: one row per class.
    let cols = match a.label {
        Some(LabelArg::All) => a.count,
        _ => grid_cols(count),
    };
    if a.output.is_some() {
        grid_size(count, cols, (shape[2], shape[1]), 2, a.scale)?;
    }
    // --out-dir's files, once their number is known, checked as every other output (a file of
    // the data folder, a read-only one, -o's own path).
    if let Some(dir) = a.out_dir.as_ref().filter(|d| d.is_dir()) {
        let files: Vec<PathBuf> = (0..count).map(|i| sample_file(dir, i)).collect();
        let mut outputs = super::given(&[&a.output, &a.trajectory, &a.gif, &a.tensor]);
        outputs.extend(files.iter().map(PathBuf::as_path));
        let mut inputs = super::given(&[&a.weights]);
        inputs.extend(a.data.folder());
        check_outputs(&outputs, &inputs)?;
    }
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).map_err(|e| DiffError::file(dir, e))?;
    }
    let guidance = match &model {
        SampleModel::Guided { scale, .. } => format!(", guidance w = {scale}"),
        SampleModel::Plain(_) => String::new(),
    };
    match &scheduler {
        Some(s) => eprintln!(
            "model: {}{guidance}; sampler: {:?}, {} steps, spacing {}",
            model.denoiser().name(),
            s.config().sampler,
            a.steps,
            a.spacing
        ),
        None => eprintln!("model: {}{guidance}", model.denoiser().name()),
    }
    let started = Instant::now();
    if let Some(kind) = a.sampler.solver() {
        let spec = solver_spec(&a, kind);
        let samples = run_solver_batches(&a, count, &model, &spec, &device, shape)?;
        eprintln!(
            "sampled {count} images in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        return write_outputs(&a, &samples, count, cols, shape, Vec::new());
    }
    let Some(scheduler) = scheduler else {
        return Err(DiffError::invalid("no scheduler for this sampler"));
    };
    let (samples, trajectory, every_step) =
        run_batches(&a, count, &model, &scheduler, &device, shape)?;
    eprintln!(
        "sampled {count} images in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    write_outputs(&a, &samples, count, cols, shape, trajectory)?;
    if let Some(path) = &a.gif {
        a.gif_opts.write(&every_step, path)?;
    }
    Ok(())
}

type Trajectory = Vec<(RgbImage, RgbImage)>;

fn solver_spec(a: &SampleArgs, kind: crate::diffusion::solvers::SolverKind) -> SolverSpec {
    SolverSpec {
        kind,
        order: a.order,
        karras: a.karras,
    }
}

/// The batches of a solver after DDIM: sample i from seed + i as DDPM and DDIM do, the noise
/// of call k (ancestral and SDE solvers) from the batch's seed and k.
fn run_solver_batches(
    a: &SampleArgs,
    count: usize,
    model: &SampleModel,
    spec: &SolverSpec,
    device: &ComputeDevice,
    shape: [usize; 3],
) -> Result<Vec<f32>> {
    let prediction = model.denoiser().prediction_type();
    let probe = spec.build(&a.schedule.config(), prediction, a.steps)?;
    let nfe = probe.call_timesteps().len();
    eprintln!(
        "solver: {}, {} steps, {nfe} model evaluations (NFE) per image",
        spec.label(),
        a.steps
    );
    let batches = count.div_ceil(a.batch);
    let bar = ProgressBar::new((nfe * batches) as u64).with_style(
        ProgressStyle::with_template("{bar:40} call {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut samples = Vec::with_capacity(count * shape.iter().product::<usize>());
    for batch in 0..batches {
        let first = batch * a.batch;
        let n = a.batch.min(count - first);
        let seed = a.seed.wrapping_add(first as u64);
        let [c, h, w] = shape;
        let x_t = initial_noise(seed, [n, c, h, w], &device.device);
        let mut solver = spec.build(&a.schedule.config(), prediction, a.steps)?;
        let x0 = model.with_batch(first, n, |model| {
            solve(
                model,
                solver.as_mut(),
                x_t,
                |k, shape| step_noise(seed, k, shape, &device.device),
                |_, _| bar.inc(1),
            )
        })?;
        samples.extend(to_vec(x0)?);
    }
    bar.finish_and_clear();
    Ok(samples)
}

fn run_batches(
    a: &SampleArgs,
    count: usize,
    model: &SampleModel,
    scheduler: &Scheduler,
    device: &ComputeDevice,
    shape: [usize; 3],
) -> Result<(Vec<f32>, Trajectory, Vec<RgbImage>)> {
    let total_steps = scheduler.timesteps().len();
    let batches = count.div_ceil(a.batch);
    let bar = ProgressBar::new((total_steps * batches) as u64).with_style(
        ProgressStyle::with_template("{bar:40} step {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let keep_every = total_steps.div_ceil(TRAJECTORY_FRAMES).max(1);
    let cancel = AtomicBool::new(false);
    let mut samples = Vec::with_capacity(count * shape.iter().product::<usize>());
    let mut trajectory: Trajectory = Vec::new();
    // For --gif: the first sample's x_t before every step, then x_0.
    let mut every_step: Vec<RgbImage> = Vec::new();
    for batch in 0..batches {
        let first = batch * a.batch;
        let n = a.batch.min(count - first);
        let seed = a.seed.wrapping_add(first as u64);
        let [c, h, w] = shape;
        let x_t = initial_noise(seed, [n, c, h, w], &device.device);
        let mut step_error = None;
        let x0 = model
            .with_batch(first, n, |model| {
                sample_loop(
                    model,
                    scheduler,
                    x_t,
                    |k, shape| step_noise(seed, k, shape, &device.device),
                    &cancel,
                    |frame| {
                        bar.inc(1);
                        let last = frame.index + 1 == total_steps;
                        if batch == 0 && a.gif.is_some() {
                            let first = |t: &Tensor<4>| -> Result<RgbImage> {
                                chw_to_rgb(
                                    &to_vec(t.clone().narrow(0, 0, 1))?,
                                    shape,
                                    ValueRange::Unit,
                                )
                            };
                            match first(&frame.x_t) {
                                Ok(x) => every_step.push(x),
                                Err(e) => step_error = Some(e),
                            }
                            if last {
                                match first(&frame.prev_sample) {
                                    Ok(x) => every_step.push(x),
                                    Err(e) => step_error = Some(e),
                                }
                            }
                        }
                        if batch == 0
                            && a.trajectory.is_some()
                            && (frame.index % keep_every == 0 || last)
                        {
                            let first_item = |t: &Tensor<4>| -> Result<RgbImage> {
                                let v = to_vec(t.clone().narrow(0, 0, 1))?;
                                chw_to_rgb(&v, shape, ValueRange::Unit)
                            };
                            match (first_item(&frame.x_t), first_item(&frame.pred_x0)) {
                                (Ok(x), Ok(p)) => trajectory.push((x, p)),
                                (Err(e), _) | (_, Err(e)) => step_error = Some(e),
                            }
                            if last {
                                match first_item(&frame.prev_sample) {
                                    Ok(x) => trajectory.push((x.clone(), x)),
                                    Err(e) => step_error = Some(e),
                                }
                            }
                        }
                    },
                )
            })?
            .ok_or_else(|| DiffError::invalid("sampling was cancelled"))?;
        if let Some(e) = step_error {
            return Err(e);
        }
        samples.extend(to_vec(x0)?);
    }
    bar.finish_and_clear();
    Ok((samples, trajectory, every_step))
}

/// Sample `i`'s file in `--out-dir`.
fn sample_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("sample-{i:04}.png"))
}

fn write_outputs(
    a: &SampleArgs,
    samples: &[f32],
    count: usize,
    cols: usize,
    shape: [usize; 3],
    trajectory: Trajectory,
) -> Result<()> {
    let [c, h, w] = shape;
    let images = batch_to_rgb(samples, [count, c, h, w], ValueRange::Unit)?;
    if let Some(path) = &a.output {
        save_png(&grid(&images, cols, 2, a.scale), path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &a.out_dir {
        for (i, img) in images.iter().enumerate() {
            save_png(img, &sample_file(dir, i))?;
        }
        eprintln!("wrote {} PNGs to {}", images.len(), dir.display());
    }
    if let Some(path) = &a.tensor {
        let bytes =
            crate::data::tensor_file::f32_safetensors("samples", &[count, c, h, w], samples)?;
        crate::data::image_io::write_atomic(path, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.trajectory {
        write_trajectory(path, trajectory, a.scale)?;
    }
    Ok(())
}

fn write_trajectory(path: &Path, frames: Trajectory, scale: u32) -> Result<()> {
    let cols = frames.len();
    if let Some((first, _)) = frames.first() {
        let cell = (first.width() as usize, first.height() as usize);
        grid_size(2 * cols, cols, cell, 2, scale)?;
    }
    let (top, bottom): (Vec<RgbImage>, Vec<RgbImage>) = frames.into_iter().unzip();
    let all: Vec<RgbImage> = top.into_iter().chain(bottom).collect();
    save_png(&grid(&all, cols, 2, scale), path)?;
    eprintln!(
        "wrote {} (top: x_t, bottom: predicted x̂0, {cols} frames)",
        path.display()
    );
    Ok(())
}
