//! `difflab eval`: judges a U-Net's digits with a classifier trained on the labelled digits:
//! mean confidence, class histogram and entropy, and a Fréchet distance of classifier features
//! against held-out real digits (next to the real-against-real distance).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sample_cmd::SamplerChoice;
use super::{check_outputs, device_for, print_stdout};
use crate::data::image_io::{ValueRange, batch_to_rgb, grid, grid_cols, save_png};
use crate::data::mnist::Mnist;
use crate::device::DeviceChoice;
use crate::diffusion::solvers::{SolverSpec, solve};
use crate::diffusion::{
    ScheduleConfig, Scheduler, SchedulerConfig, TimestepSpacing, sample_seeded,
};
use crate::error::{DiffError, Result};
use crate::eval::{judge, train_judge};
use crate::model::{ConditionalDenoiser, Denoiser, Guided, UNetDenoiser};
use crate::tensor_util::to_vec;

/// Arguments of `difflab eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// U-Net weights (SafeTensors); default: the shipped MNIST model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// ddpm, ddim or a solver after DDIM (dpm-solver++, euler, heun, unipc, …).
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
    /// DDIM's η in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    eta: f64,
    /// How the steps are spread over T. Trailing (the default here, starting at t = T) is what
    /// the README's figures use; the app and `difflab sample` start on leading.
    #[arg(long, value_enum, default_value_t = TimestepSpacing::Trailing)]
    spacing: TimestepSpacing,
    /// Samples to judge.
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seed of the samples (and the classifier).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classifier training passes over the 8,000 training digits.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Also write the first 100 samples as a grid.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Also write the 100 samples the judge is least sure of as a grid, least sure first, row
    /// by row (what the confidence figure is made of; their readings go to stdout).
    #[arg(long)]
    worst_grid: Option<PathBuf>,
    /// Class-conditional models: the guidance scales at which to measure how often the judge
    /// reads the requested digit (sample i asks for digit i mod 10).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,4")]
    guidance: Vec<f64>,
}

pub(super) fn eval(a: EvalArgs, device: DeviceChoice) -> Result<()> {
    if a.count < 2 || a.count > 100_000 {
        return Err(DiffError::invalid("--count must be between 2 and 100,000"));
    }
    if a.batch == 0 {
        return Err(DiffError::invalid("--batch must be at least 1"));
    }
    // (Each pass takes a few seconds; a count past this is a typo, and one near usize::MAX
    // overflowed the judge's step count.)
    if a.epochs == 0 || a.epochs > 1000 {
        return Err(DiffError::invalid("--epochs must be between 1 and 1,000"));
    }
    let solver = a.sampler.solver().map(|kind| SolverSpec {
        kind,
        order: a.order,
        karras: a.karras,
    });
    match &solver {
        Some(spec) => spec.validate()?,
        None if a.karras || a.order.is_some() => {
            return Err(DiffError::invalid(
                "--karras and --order apply to the solvers after DDIM, not to ddpm or ddim",
            ));
        }
        None => {}
    }
    super::sample_cmd::check_eta(a.sampler, a.eta)?;
    check_outputs(
        &super::given(&[&a.grid, &a.worst_grid]),
        &super::given(&[&a.weights]),
    )?;
    let device = device_for(device)?;
    let (model, config) = match &a.weights {
        Some(p) => crate::model::unet::load_file(p, &device.device)?,
        None => crate::model::unet::shipped(&device.device)?,
    };
    for &w in &a.guidance {
        crate::model::guidance::check_scale(w)?;
    }
    // Guided passes run 2B images; every sample is kept for the judge.
    let estimate = crate::model::memory::MemoryEstimate::new(
        &config,
        burn::module::Module::num_params(&model),
        crate::model::memory::Workload::Sample {
            guided: a.guidance.iter().any(|&w| w != 0.0 && w != 1.0),
            kept_images: a.count,
        },
    );
    crate::model::memory::check_fits(&estimate, "sampling", a.batch.min(a.count))?;
    let model = std::sync::Arc::new(UNetDenoiser { model, config });
    let [c, h, w] = model.sample_shape();
    if [c, h, w] != [1, 28, 28] {
        return Err(DiffError::invalid(format!(
            "the digit judge takes 1×28×28 samples; this model makes {c}×{h}×{w}"
        )));
    }
    // DDPM and DDIM's scheduler (a solver after DDIM builds its own; a flow model has none).
    let ddpm_ddim = SchedulerConfig {
        sampler: a.sampler.kind(a.eta),
        spacing: a.spacing,
        ..SchedulerConfig::ddim(
            ScheduleConfig::default(),
            model.prediction_type(),
            a.steps,
            a.eta,
        )
    };
    let scheduler = match solver {
        None => Some(Scheduler::new(ddpm_ddim)?),
        Some(_) => None,
    };
    let started = Instant::now();
    let mnist = Mnist::embedded()?;
    let j = train_judge(
        &mnist,
        a.epochs,
        a.seed,
        &crate::device::ComputeDevice::flex().device,
    )?;
    eprintln!(
        "judge: a CNN classifier, {:.1}% accurate on {} held-out digits ({:.1} s)",
        100.0 * j.accuracy,
        crate::eval::HELD_OUT,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let bar = ProgressBar::new(a.count as u64).with_style(
        ProgressStyle::with_template("{bar:40} sample {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Guided runs re-derive ε̂ from the clipped x̂0 (see `use_clipped_model_output`).
    let guided_scheduler = match solver {
        None => Some(Scheduler::new(SchedulerConfig {
            use_clipped_model_output: true,
            ..ddpm_ddim
        })?),
        Some(_) => None,
    };
    let run = |guidance: Option<f64>| -> Result<Vec<f32>> {
        let cancel = AtomicBool::new(false);
        let mut samples = Vec::with_capacity(a.count * 784);
        let mut b0 = 0;
        bar.set_position(0);
        while b0 < a.count {
            let n = (a.count - b0).min(a.batch);
            let guided = match (guidance, model.num_classes()) {
                (Some(w), Some(k)) => Some(Guided::new(
                    model.clone(),
                    (b0..b0 + n).map(|i| i % k).collect(),
                    w,
                )?),
                _ => None,
            };
            let denoiser: &dyn Denoiser = match &guided {
                Some(g) => g,
                None => model.as_ref(),
            };
            // Each batch its own seed, so --count and --batch don't change which samples come
            // out.
            let seed = a.seed.wrapping_add(b0 as u64);
            if let Some(spec) = &solver {
                let mut s =
                    spec.build(&ScheduleConfig::default(), model.prediction_type(), a.steps)?;
                let x_t = crate::diffusion::initial_noise(seed, [n, c, h, w], &device.device);
                let x = solve(
                    denoiser,
                    s.as_mut(),
                    x_t,
                    |k, shape| crate::diffusion::step_noise(seed, k, shape, &device.device),
                    |_, _| {},
                )?;
                samples.extend(to_vec(x)?);
                b0 += n;
                bar.set_position(b0 as u64);
                continue;
            }
            let chosen = if guided.is_some() {
                guided_scheduler.as_ref()
            } else {
                scheduler.as_ref()
            };
            let chosen =
                chosen.ok_or_else(|| DiffError::invalid("no scheduler for this sampler"))?;
            let x = sample_seeded(
                denoiser,
                chosen,
                a.seed.wrapping_add(b0 as u64),
                n,
                &cancel,
                &device.device,
                |_| {},
            )?
            .ok_or_else(|| DiffError::Backend("cancelled".into()))?;
            samples.extend(to_vec(x)?);
            b0 += n;
            bar.set_position(b0 as u64);
        }
        Ok(samples)
    };
    let samples = run(None)?;
    let secs = started.elapsed().as_secs_f64();
    // A conditional model: how often the judge reads the requested digit, per guidance scale.
    let mut guided_lines = String::new();
    if let Some(k) = model.num_classes() {
        let labels: Vec<usize> = (0..a.count).map(|i| i % k).collect();
        for &w in &a.guidance {
            let started = Instant::now();
            let s = run(Some(w))?;
            let acc = crate::eval::accuracy_per_label(
                &j,
                &s,
                &labels,
                &crate::device::ComputeDevice::flex().device,
            )?;
            let per: Vec<f64> = acc.iter().flatten().copied().collect();
            let mean = per.iter().sum::<f64>() / per.len().max(1) as f64;
            let worst = per.iter().copied().fold(f64::INFINITY, f64::min);
            let cells: Vec<String> = acc
                .iter()
                .enumerate()
                .filter_map(|(d, a)| a.map(|a| format!("{d}: {:.0}%", 100.0 * a)))
                .collect();
            guided_lines += &format!(
                "guidance w = {w:<4} the requested digit in {:.1}% (worst digit {:.1}%; {:.1} s)  {}\n",
                100.0 * mean,
                100.0 * worst,
                started.elapsed().as_secs_f64(),
                cells.join("  ")
            );
        }
    }
    bar.finish_and_clear();
    let r = judge(&j, &samples, &crate::device::ComputeDevice::flex().device)?;
    if let Some(p) = &a.grid {
        let k = a.count.min(100);
        let imgs = batch_to_rgb(&samples[..k * 784], [k, 1, 28, 28], ValueRange::Unit)?;
        save_png(&grid(&imgs, grid_cols(k), 2, 2), p)?;
    }
    let mut worst_line = String::new();
    if let Some(p) = &a.worst_grid {
        let worst = r.least_confident(100);
        let pixels: Vec<f32> = worst
            .iter()
            .flat_map(|&i| samples[i * 784..(i + 1) * 784].iter().copied())
            .collect();
        let imgs = batch_to_rgb(&pixels, [worst.len(), 1, 28, 28], ValueRange::Unit)?;
        save_png(&grid(&imgs, grid_cols(worst.len()), 2, 2), p)?;
        let cells: Vec<String> = worst
            .iter()
            .take(10)
            .map(|&i| format!("{} ({:.2})", r.readings[i].0, r.readings[i].1))
            .collect();
        worst_line = format!(
            "least sure (read as, confidence) {}, …; grid in {}\n",
            cells.join("  "),
            p.display()
        );
    }
    let sampler = match a.sampler {
        _ if solver.is_some() => {
            let spec = solver.as_ref().map(SolverSpec::label).unwrap_or_default();
            let nfe = solver
                .as_ref()
                .and_then(|s| {
                    s.build(&ScheduleConfig::default(), model.prediction_type(), a.steps)
                        .ok()
                })
                .map_or(0, |s| s.call_timesteps().len());
            format!("{spec}, {} steps, {nfe} model evaluations (NFE)", a.steps)
        }
        SamplerChoice::Ddpm => format!("DDPM, {} steps, {} spacing", a.steps, a.spacing),
        _ => format!(
            "DDIM, {} steps, η = {}, {} spacing",
            a.steps, a.eta, a.spacing
        ),
    };
    let hist: Vec<String> = r
        .histogram
        .iter()
        .enumerate()
        .map(|(k, f)| format!("{k}: {:.1}%", 100.0 * f))
        .collect();
    let by_class: Vec<String> = r
        .confidence_by_class()
        .iter()
        .zip(&r.real_by_class)
        .enumerate()
        .map(|(k, (s, real))| format!("{k}: {} ({})", two_places(*s), two_places(*real)))
        .collect();
    let out = format!(
        "{} samples ({sampler}; {}) in {secs:.1} s\n\
         mean classifier confidence  {:.3} (real digits: {:.3})\n\
         scrawls (top class < {:.1})   {:.1}%\n\
         class histogram             {}\n\
         histogram entropy           {:.3} bits (uniform: {:.3}); smallest class {:.1}%\n\
         confidence by digit read    {} (real digits in brackets)\n\
         Fréchet distance            {:.3} (real against real: {:.3}; ratio {:.2})\n",
        r.n,
        model.name(),
        r.mean_confidence,
        r.real_confidence,
        crate::eval::SCRAWL_BELOW,
        100.0 * r.scrawls,
        hist.join("  "),
        r.entropy_bits,
        10f64.log2(),
        100.0 * r.histogram.iter().copied().fold(f64::INFINITY, f64::min),
        by_class.join("  "),
        r.frechet,
        r.frechet_real,
        r.frechet / r.frechet_real.max(1e-12),
    );
    print_stdout(&(out + &worst_line + &guided_lines))
}

/// A value to two decimals, or a dash where there is none.
fn two_places(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.2}"))
}
