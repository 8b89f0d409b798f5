//! `difflab interpolate`: decode blends of two seeds' noises with deterministic DDIM.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Args;

use super::sample_cmd::{
    DEFAULT_GUIDANCE, DataOpts, GifOpts, ModelChoice, SamplerChoice, check_model_flags,
    load_images, load_unet,
};
use super::{ScheduleOpts, check_outputs, device_for};
use crate::data::image_io::{ValueRange, batch_to_rgb, grid, save_png};
use crate::device::DeviceChoice;
use crate::diffusion::interpolation::{Blend, alphas, blended_noises, decode_noises};
use crate::diffusion::noise::norm;
use crate::diffusion::solvers::{SolverSpec, solve};
use crate::diffusion::{NoiseSchedule, SamplerKind, Scheduler, SchedulerConfig, TimestepSpacing};
use crate::error::{DiffError, Result};
use crate::model::{ConditionalDenoiser, Denoiser, ExactDenoiser, Guided};
use crate::tensor_util::to_vec;

/// Arguments of `difflab interpolate`.
#[derive(Debug, Args)]
pub struct InterpolateArgs {
    /// The seed of x_T at α = 0.
    #[arg(long)]
    seed_a: u64,
    /// The seed of x_T at α = 1.
    #[arg(long)]
    seed_b: u64,
    /// Frames, both ends included (at least 2).
    #[arg(long, default_value_t = 9)]
    frames: usize,
    /// slerp or lerp (the PNG shows both rows when not given; the GIF uses slerp).
    #[arg(long, value_enum)]
    blend: Option<Blend>,
    /// The deterministic sampler that decodes: ddim (η = 0), or a solver after DDIM without
    /// noise (dpm-solver++, dpm-solver, euler, heun, unipc).
    #[arg(long, value_enum, default_value_t = SamplerChoice::Ddim)]
    sampler: SamplerChoice,
    /// The order of a multistep solver (1 to 3; default 2).
    #[arg(long)]
    order: Option<usize>,
    /// Karras σ for a solver after DDIM.
    #[arg(long)]
    karras: bool,
    /// Sampling steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// How the steps spread over T.
    #[arg(long, value_enum, default_value_t = TimestepSpacing::Leading)]
    spacing: TimestepSpacing,
    /// The denoiser that decodes: the exact one over --data, or the U-Net (the app's
    /// interpolation panel decodes with the shipped U-Net).
    #[arg(long, value_enum, default_value_t = ModelChoice::Exact)]
    model: ModelChoice,
    /// U-Net weights (SafeTensors from `difflab train`); default: the shipped MNIST model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Class-conditional U-Nets: decode every frame as this digit, guided.
    #[arg(long)]
    label: Option<usize>,
    /// The guidance scale w ≥ 0 with --label (default 2).
    #[arg(long, requires = "label", allow_negative_numbers = true)]
    guidance: Option<f64>,
    #[command(flatten)]
    data: DataOpts,
    #[command(flatten)]
    schedule: ScheduleOpts,
    /// Write the row(s) as one PNG.
    #[arg(short, long, required_unless_present = "gif")]
    output: Option<PathBuf>,
    /// Write the frames as an animated GIF.
    #[arg(long)]
    gif: Option<PathBuf>,
    #[command(flatten)]
    gif_opts: GifOpts,
    /// The long flags typed on the command line (filled in by [`super::Cli::parse_from`]): the
    /// exact denoiser's data flags are refused with --model unet rather than ignored.
    #[arg(skip)]
    pub(super) typed: std::collections::BTreeSet<String>,
    /// Upscale PNG cells by this factor.
    #[arg(long, default_value_t = 2)]
    scale: u32,
}

pub(super) fn interpolate(a: InterpolateArgs, device: DeviceChoice) -> Result<()> {
    let alphas = alphas(a.frames)?;
    super::sample_cmd::check_scale(a.scale)?;
    // A decoder with noise would not give the plain samples at α = 0 and 1.
    let solver = match (a.sampler, a.sampler.solver()) {
        (SamplerChoice::Ddim, _) => None,
        (_, Some(kind)) if !kind.is_stochastic() => Some(SolverSpec {
            kind,
            order: a.order,
            karras: a.karras,
        }),
        _ => {
            return Err(DiffError::invalid(
                "interpolation decodes with a deterministic sampler: ddim, dpm-solver++, \
                 dpm-solver, euler, heun or unipc",
            ));
        }
    };
    match &solver {
        Some(spec) => spec.validate()?,
        None if a.karras || a.order.is_some() => {
            return Err(DiffError::invalid(
                "--karras and --order apply to the solvers after DDIM, not to ddim",
            ));
        }
        None => {}
    }
    check_model_flags(
        a.model,
        a.weights.is_some(),
        a.label.is_some(),
        a.guidance,
        &a.typed,
    )?;
    let mut inputs: Vec<&std::path::Path> = a.data.folder().into_iter().collect();
    inputs.extend(super::given(&[&a.weights]));
    check_outputs(&super::given(&[&a.output, &a.gif]), &inputs)?;
    if a.gif.is_some() {
        a.gif_opts.validate()?;
    }
    let schedule = Arc::new(NoiseSchedule::new(a.schedule.config())?);
    let device = device_for(device)?;
    let model: Box<dyn Denoiser> = match a.model {
        ModelChoice::Exact => {
            let (images, shape) = load_images(&a.data)?;
            Box::new(ExactDenoiser::new(
                &images,
                shape,
                schedule.clone(),
                &device.device,
            )?)
        }
        ModelChoice::Unet => {
            let unet = load_unet(a.weights.as_deref(), &a.schedule.config(), &device.device)?;
            match a.label {
                None => Box::new(unet),
                Some(k) => {
                    crate::model::guidance::check_labels(unet.num_classes(), &[k])?;
                    Box::new(Guided::new(
                        Arc::new(unet),
                        vec![k; a.frames],
                        a.guidance.unwrap_or(DEFAULT_GUIDANCE),
                    )?)
                }
            }
        }
    };
    let config = SchedulerConfig {
        // Guided runs re-derive ε̂ from the clipped x̂0, as sampling does.
        use_clipped_model_output: a.label.is_some(),
        schedule: a.schedule.config(),
        prediction_type: model.prediction_type(),
        clip_sample: Some(1.0),
        spacing: a.spacing,
        steps_offset: 0,
        num_inference_steps: a.steps,
        sampler: SamplerKind::Ddim {
            eta: 0.0,
            set_alpha_to_one: true,
        },
    };
    let scheduler = Scheduler::with_schedule(config, schedule)?;
    let shape = model.sample_shape();
    let d: usize = shape.iter().product();
    let blends = match a.blend {
        Some(b) => vec![b],
        None => vec![Blend::Slerp, Blend::Lerp],
    };
    if a.output.is_some() {
        let n = blends.len() * a.frames;
        crate::data::image_io::grid_size(n, a.frames, (shape[2], shape[1]), 2, a.scale)?;
    }
    let cancel = AtomicBool::new(false);
    let mut rows = Vec::new();
    for blend in &blends {
        let noises = blended_noises(a.seed_a, a.seed_b, d, &alphas, *blend);
        let norms: Vec<String> = noises.iter().map(|n| format!("{:.1}", norm(n))).collect();
        eprintln!("{blend:?} ‖x_T‖ at α = 0…1: {}", norms.join(" "));
        let [c, h, w] = model.sample_shape();
        let x0 = match &solver {
            Some(spec) => {
                let mut s = spec.build(&a.schedule.config(), model.prediction_type(), a.steps)?;
                let x_t = crate::tensor_util::tensor4(
                    noises.concat(),
                    [noises.len(), c, h, w],
                    &device.device,
                );
                // Deterministic: no call asks for noise.
                let none = |_: usize, shape: [usize; 4]| {
                    burn::tensor::Tensor::<4>::zeros(shape, &device.device)
                };
                solve(model.as_ref(), s.as_mut(), x_t, none, |_, _| {})?
            }
            None => decode_noises(model.as_ref(), &scheduler, &noises, &cancel, &device.device)?
                .ok_or_else(|| DiffError::invalid("cancelled"))?,
        };
        rows.push(batch_to_rgb(
            &to_vec(x0)?,
            [a.frames, c, h, w],
            ValueRange::Unit,
        )?);
    }
    if let Some(path) = &a.output {
        let all: Vec<_> = rows.iter().flatten().cloned().collect();
        save_png(&grid(&all, a.frames, 2, a.scale), path)?;
        eprintln!(
            "wrote {} ({} row(s) of {} frames)",
            path.display(),
            rows.len(),
            a.frames
        );
    }
    if let Some(path) = &a.gif {
        a.gif_opts.write(&rows[0], path)?;
    }
    Ok(())
}
