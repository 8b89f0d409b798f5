//! `difflab train`: train the U-Net on MNIST or a folder of images, with a progress bar,
//! `loss.csv`, sample grids, atomic checkpoints (every K steps and on Ctrl-C) and `--resume`.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::device_for;
use super::sample_cmd::{DataOpts, load_images, load_labels};
use super::values::{UNetPrediction, cli_name};
use crate::data::image_io::{ValueRange, batch_to_rgb, grid, save_png};
use crate::device::DeviceChoice;
use crate::diffusion::{Scheduler, SchedulerConfig, sample_seeded};
use crate::error::{DiffError, Result};
use crate::model::memory::{MemoryEstimate, Workload, check_fits};
use crate::model::unet::{TrainingRecord, UNet, UNetConfig, UNetDenoiser};
use crate::train::unet::{ImageSet, InitFrom, LossKind, TrainConfig, UNetTrainer, append_csv};

/// Arguments of `difflab train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataOpts,
    /// Where the run goes: loss.csv, checkpoint.bin, model.safetensors (EMA weights),
    /// samples/step-*.png.
    #[arg(long)]
    out: PathBuf,
    /// Continue from OUT/checkpoint.bin (same data; --steps may extend the run).
    #[arg(long)]
    resume: bool,
    /// Total training steps.
    #[arg(long, default_value_t = 20_000)]
    steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Peak learning rate (AdamW; linear warm-up, then cosine decay) [default: 0.002]. With
    /// --resume: continue with a cosine decay from this rate (after a diverged run, a lower one).
    #[arg(long)]
    lr: Option<f64>,
    /// Warm-up steps.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Gradient-norm clipping.
    #[arg(long, default_value_t = 1.0)]
    clip_norm: f32,
    /// EMA decay of the weights that sample.
    #[arg(long, default_value_t = 0.999)]
    ema_decay: f64,
    /// The loss: l2, l1 or huber.
    #[arg(long, value_enum, default_value_t = LossKind::L2)]
    loss: LossKind,
    /// Weight each image's loss by min(SNR, γ)/SNR (Min-SNR-γ, Hang et al. 2023; 5 is the
    /// paper's choice): the low-noise steps no longer dominate. Unset: unweighted.
    #[arg(long, allow_negative_numbers = true)]
    min_snr_gamma: Option<f64>,
    /// What the network predicts: epsilon or v (diffusion), or flow (as --objective flow).
    #[arg(long, value_enum, default_value_t = UNetPrediction::Epsilon)]
    prediction: UNetPrediction,
    /// diffusion (x_t = √ᾱ·x_0 + √(1−ᾱ)·ε, predict --prediction) or flow (flow matching:
    /// x_σ = (1 − σ)·x_0 + σ·ε, predict v = ε − x_0; sampled by --sampler flow-euler).
    #[arg(long, value_parser = ["diffusion", "flow"], default_value = "diffusion")]
    objective: String,
    /// Channels at the first level.
    #[arg(long, default_value_t = 32)]
    base_channels: usize,
    /// Channel multipliers per level, comma-separated.
    #[arg(long, default_value = "1,2,2", value_delimiter = ',')]
    channel_mult: Vec<usize>,
    /// Residual blocks per level.
    #[arg(long, default_value_t = 1)]
    blocks: usize,
    /// GroupNorm groups: must divide every level's channels (--base-channels 12 needs 4, 6
    /// or 12).
    #[arg(long, default_value_t = 8)]
    groups: usize,
    /// No self-attention at the lowest resolution.
    #[arg(long)]
    no_attention: bool,
    /// A 3×3 conv after each upsampling (as in DDPM; slower).
    #[arg(long)]
    up_conv: bool,
    /// Train a class-conditional net on the data's labels (10 for MNIST), for classifier-free
    /// guidance.
    #[arg(long)]
    classes: Option<usize>,
    /// With --classes: the probability that an image's label is dropped to "no label" (∅).
    #[arg(long, default_value_t = 0.1)]
    label_dropout: f64,
    /// With --classes: draw every digit equally often (a class, then one of its images), not
    /// in the data's proportions.
    #[arg(long)]
    balance_classes: bool,
    /// Start from these weights (same shape; an unconditional file may start a --classes run; a
    /// file with half the --base-channels is widened to them, computing what it did).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a checkpoint every K steps.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Write a sample grid (DDIM, 50 steps, EMA weights) every K steps and at the end (0: never).
    #[arg(long, default_value_t = 2000)]
    sample_every: usize,
    /// The long flags typed on the command line (`--batch`), not left at their defaults: what
    /// a resumed run names when it ignores them. Filled in by [`super::Cli::parse_from`].
    #[arg(skip)]
    pub(super) typed: BTreeSet<String>,
}

/// Set by Ctrl-C.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(super) fn train(a: TrainArgs, device: DeviceChoice) -> Result<()> {
    if a.checkpoint_every == 0 {
        return Err(DiffError::invalid("--checkpoint-every must be at least 1"));
    }
    // The options are checked before anything is written, so a refused run leaves no folder.
    let config = TrainConfig {
        steps: a.steps,
        batch: a.batch,
        lr: a.lr.unwrap_or(DEFAULT_LR),
        warmup: a.warmup,
        clip_norm: a.clip_norm,
        ema_decay: a.ema_decay,
        loss: a.loss,
        seed: a.seed,
        label_dropout: a.label_dropout,
        min_snr_gamma: a.min_snr_gamma,
        balance_classes: a.balance_classes,
        ..TrainConfig::default()
    };
    config.validate()?;
    if a.classes.is_none() && !a.resume && a.typed.contains("--label-dropout") {
        return Err(DiffError::invalid(
            "--label-dropout needs --classes: an unconditional net has no labels to drop",
        ));
    }
    if a.classes.is_none() && !a.resume && a.balance_classes {
        return Err(DiffError::invalid(
            "--balance-classes needs --classes: an unconditional net does not read the labels",
        ));
    }
    let checkpoint = a.out.join("checkpoint.bin");
    let weights = a.out.join("model.safetensors");
    if a.out.exists() && !a.out.is_dir() {
        return Err(DiffError::file(&a.out, "is a file, not a folder (--out)"));
    }
    if a.resume && !checkpoint.exists() {
        return Err(DiffError::file(
            &checkpoint,
            "does not exist: there is no run to resume (leave out --resume to start one)",
        ));
    }
    if a.resume && !checkpoint.is_file() {
        return Err(DiffError::file(&checkpoint, "is not a checkpoint file"));
    }
    if !a.resume && checkpoint.exists() {
        return Err(DiffError::invalid(format!(
            "{} exists: pass --resume to continue it, or choose another --out",
            checkpoint.display()
        )));
    }
    if !a.resume && weights.exists() {
        return Err(DiffError::invalid(format!(
            "{} exists (a trained model): choose another --out, so that it is not replaced",
            weights.display()
        )));
    }
    let (images, shape) = load_images(&a.data)?;
    let mut data = ImageSet::new(&images, shape)?;
    if a.classes.is_some() {
        let labels = load_labels(&a.data)?.ok_or_else(|| {
            DiffError::invalid("--classes needs labelled data: a folder of images has no labels")
        })?;
        data = data.with_labels(labels)?;
    } else if a.resume {
        // A conditional checkpoint needs the labels; an unconditional one ignores them.
        if let Some(labels) = load_labels(&a.data)? {
            data = data.with_labels(labels)?;
        }
    }
    let unet = UNetConfig::new()
        .with_in_channels(shape[0])
        .with_image_size(shape[1])
        .with_base_channels(a.base_channels)
        .with_channel_mult(a.channel_mult.clone())
        .with_blocks_per_level(a.blocks)
        .with_groups(a.groups)
        .with_attention(!a.no_attention)
        .with_up_conv(a.up_conv)
        .with_prediction(prediction_of_args(&a)?)
        .with_num_classes(a.classes);
    if !a.resume {
        if shape[1] != shape[2] {
            return Err(DiffError::invalid("the U-Net trains on square images"));
        }
        unet.validate()?;
    }
    let device = device_for(device)?;
    let loss_csv = a.out.join("loss.csv");
    let mut trainer = if a.resume {
        let mut t = UNetTrainer::resume(&checkpoint, data, Some(a.steps), &device.device)?;
        if let Some(lr) = a.lr {
            t.set_lr(lr)?;
            eprintln!("continuing with learning rate {lr} (cosine decay to the end)");
        }
        keep_csv_rows(&loss_csv, t.step)?;
        eprintln!("resumed at step {} from {}", t.step, checkpoint.display());
        for note in ignored_on_resume(&a, &t) {
            eprintln!("difflab: {note}");
        }
        t
    } else {
        let mut t = UNetTrainer::new(data, unet, config, &device.device)?;
        if let Some(p) = &a.init_from {
            let bytes = std::fs::read(p).map_err(|e| DiffError::file(p, e))?;
            match t.init_from(&bytes, &p.display().to_string())? {
                InitFrom::Same => eprintln!("starting from the weights in {}", p.display()),
                InitFrom::Reparametrised { from, to } => eprintln!(
                    "starting from the weights in {}, which predict {}: this run trains them \
                     to predict {}",
                    p.display(),
                    from.name(),
                    to.name()
                ),
                InitFrom::Widened { from, to } => eprintln!(
                    "starting from the weights in {}, widened from {from} to {to} base channels \
                     (each channel doubled: step 0 computes what they did)",
                    p.display()
                ),
            }
        }
        t
    };
    // A batch that cannot fit is refused before the first step (one line, exit 2).
    let params = burn::module::Module::num_params(&trainer.raw()?);
    let estimate = MemoryEstimate::new(
        &trainer.unet,
        params,
        Workload::Train {
            data_images: images.len(),
        },
    );
    check_fits(&estimate, "training", trainer.config.batch)?;
    // The run's folder is made only now, once nothing can refuse it any more.
    if !a.out.is_dir() {
        std::fs::create_dir_all(&a.out).map_err(|e| DiffError::file(&a.out, e))?;
    }
    let samples_dir = a.out.join("samples");
    std::fs::create_dir_all(&samples_dir).map_err(|e| DiffError::file(&samples_dir, e))?;
    if !a.resume {
        // A new run's losses start a new file (one left by a run stopped before its first
        // checkpoint, which cannot be resumed).
        let _ = std::fs::remove_file(&loss_csv);
    }
    // Ctrl-C: finish the step, write a checkpoint, stop.
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    eprintln!(
        "training a {params}-parameter U-Net on {} ({} images) for {} steps, batch {}, on {}",
        a.data.describe(),
        images.len(),
        trainer.config.steps,
        trainer.config.batch,
        device.label
    );
    let total = trainer.config.steps;
    // indicatif draws nothing when stderr is not a terminal (a log file, a background job):
    // then plain progress lines go out every LOG_EVERY instead.
    let log_lines = !std::io::stderr().is_terminal();
    let mut last_log = Instant::now();
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} · {msg} · {per_sec} · eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.step as u64);
    let started = Instant::now();
    let first = trainer.step;
    let mut pending = Vec::new();
    // The running mean of the last 100 losses (the progress line and the weights file's
    // `final_loss`) picks up a resumed run's logged losses, so it does not depend on where the
    // run was interrupted.
    let mut recent: Vec<f32> = last_losses(&loss_csv, 100);
    while trainer.step < total {
        let k = trainer.step;
        let loss = match trainer.train_step() {
            Ok(l) => l,
            Err(DiffError::NonFinite(m)) => {
                bar.abandon();
                let kept = if checkpoint.exists() {
                    format!(
                        "the last good checkpoint is kept in {}; continue it with a lower \
                         learning rate: difflab train --out {} --resume --lr {:.1e}",
                        checkpoint.display(),
                        a.out.display(),
                        trainer.config.lr / 4.0
                    )
                } else {
                    format!(
                        "no checkpoint was written yet; start again with a lower --lr (say {:.1e})",
                        trainer.config.lr / 4.0
                    )
                };
                return Err(DiffError::NonFinite(format!("{m}; {kept}")));
            }
            Err(e) => return Err(e),
        };
        pending.push(format!("{k},{loss},{}", trainer.config.lr_at(k)));
        recent.push(loss);
        if recent.len() > 100 {
            recent.remove(0);
        }
        bar.set_message(format!("loss {:.4}", mean(&recent)));
        bar.inc(1);
        let done = trainer.step;
        if log_lines && (last_log.elapsed() >= LOG_EVERY || done == total) {
            last_log = Instant::now();
            let rate = (done - first) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let eta_s = (total - done) as f64 / rate.max(1e-9);
            eprintln!(
                "{}",
                progress_line(
                    done,
                    total,
                    mean(&recent),
                    trainer.config.lr_at(k),
                    rate,
                    eta_s
                )
            );
        }
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        if done % a.checkpoint_every == 0 || done == total || interrupted {
            if !trainer.weights_finite() {
                return Err(DiffError::NonFinite(format!(
                    "the weights became non-finite by step {done} (a gradient overflowed); the \
                     last good checkpoint is kept in {}: continue it with a lower learning rate, \
                     difflab train --out {} --resume --lr {:.1e}",
                    checkpoint.display(),
                    a.out.display(),
                    trainer.config.lr / 4.0
                )));
            }
            append_csv(&loss_csv, "step,loss,lr", &pending)?;
            pending.clear();
            trainer.save_checkpoint(&checkpoint)?;
            let ema = trainer.ema();
            let record = training_record(&trainer, mean(&recent));
            ema.save_trained(&trainer.unet, &record, &a.out.join("model.safetensors"))?;
        }
        if a.sample_every > 0 && (done % a.sample_every == 0 || done == total) {
            let path = samples_dir.join(format!("step-{done:06}.png"));
            sample_grid(
                &trainer.ema(),
                &trainer.unet,
                &trainer.config,
                &path,
                &device.device,
            )?;
        }
        if interrupted {
            bar.abandon();
            eprintln!(
                "interrupted at step {done}: checkpoint written to {}; continue with --resume",
                checkpoint.display()
            );
            std::process::exit(130);
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "trained steps {first}..{total} in {:.1} min ({:.2} steps/s); EMA weights in {}",
        secs / 60.0,
        (total - first) as f64 / secs.max(1e-9),
        a.out.join("model.safetensors").display()
    );
    Ok(())
}

/// The peak learning rate of a new run.
const DEFAULT_LR: f64 = 2e-3;

/// How often progress lines go out when stderr is not a terminal.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}

/// One plain progress line: step, loss, learning rate, steps/s and ETA.
pub fn progress_line(
    done: usize,
    total: usize,
    loss: f32,
    lr: f64,
    rate: f64,
    eta_s: f64,
) -> String {
    let eta = eta_s.max(0.0).round() as u64;
    format!(
        "step {done}/{total} loss {loss:.5} lr {lr:.2e} {rate:.2} steps/s eta {}h{:02}m{:02}s",
        eta / 3600,
        eta / 60 % 60,
        eta % 60
    )
}

/// The options a resumed run ignores (it keeps its checkpoint's; only `--steps` and `--lr`
/// act) that were typed with a value other than the checkpoint's: one line each, so that
/// `--resume --batch 256` is never silently a run at the old batch. A flag typed at exactly
/// its default counts too (`--ema-decay 0.999` against a checkpoint's 0.9998).
fn ignored_on_resume(a: &TrainArgs, t: &UNetTrainer) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    let mults = |m: &[usize]| {
        m.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let (c, u) = (&t.config, &t.unet);
    // (flag, what was given, what the checkpoint keeps), each as shown.
    let row = |flag: &'static str, given: &dyn Display, kept: &dyn Display| {
        (flag, given.to_string(), kept.to_string())
    };
    let gamma = |g: Option<f64>| opt(g.map(|g| g.to_string()));
    let classes = |n: Option<usize>| opt(n.map(|n| n.to_string()));
    let rows = [
        row("--batch", &a.batch, &c.batch),
        row("--warmup", &a.warmup, &c.warmup),
        row("--clip-norm", &a.clip_norm, &c.clip_norm),
        row("--ema-decay", &a.ema_decay, &c.ema_decay),
        row("--loss", &cli_name(&a.loss), &cli_name(&c.loss)),
        row(
            "--min-snr-gamma",
            &gamma(a.min_snr_gamma),
            &gamma(c.min_snr_gamma),
        ),
        row("--seed", &a.seed, &c.seed),
        row("--label-dropout", &a.label_dropout, &c.label_dropout),
        row("--balance-classes", &a.balance_classes, &c.balance_classes),
        row(
            "--prediction",
            &cli_name(&a.prediction),
            &cli_name(&u.prediction),
        ),
        row("--base-channels", &a.base_channels, &u.base_channels),
        row(
            "--channel-mult",
            &mults(&a.channel_mult),
            &mults(&u.channel_mult),
        ),
        row("--blocks", &a.blocks, &u.blocks_per_level),
        row("--groups", &a.groups, &u.groups),
        row("--no-attention", &a.no_attention, &!u.attention),
        row("--up-conv", &a.up_conv, &u.up_conv),
        row("--classes", &classes(a.classes), &classes(u.num_classes)),
    ];
    let mut notes: Vec<String> = rows
        .into_iter()
        .filter(|(flag, given, kept)| a.typed.contains(*flag) && given != kept)
        .map(|(flag, given, kept)| {
            // A switch is shown bare (`--up-conv`), a value with its flag (`--batch 8`).
            let given = if given == "true" {
                String::new()
            } else {
                format!(" {given}")
            };
            format!(
                "{flag}{given} is ignored: a resumed run keeps its checkpoint's value ({kept}) \
                 (only --steps and --lr change on --resume; start a new run with --init-from \
                 to change the rest)"
            )
        })
        .collect();
    if let Some(p) = &a.init_from {
        notes.push(format!(
            "--init-from {} is ignored: a resumed run continues from its checkpoint",
            p.display()
        ));
    }
    notes
}

/// What goes into the weights file's metadata about this run.
fn training_record(t: &UNetTrainer, final_loss: f32) -> TrainingRecord {
    TrainingRecord {
        schedule: t.config.schedule,
        prediction: t.unet.prediction,
        num_classes: t.unet.num_classes,
        label_dropout: if t.unet.num_classes.is_some() {
            t.config.label_dropout
        } else {
            0.0
        },
        ema_decay: t.config.ema_decay,
        steps_trained: t.config.steps_before + t.step,
        batch: t.config.batch,
        lr: t.config.lr,
        final_loss: final_loss.is_finite().then_some(final_loss),
        min_snr_gamma: t.config.min_snr_gamma,
        balance_classes: t.config.balance_classes,
        averaged_from: Vec::new(),
    }
}

/// 16 samples (DDIM, 50 steps, η = 0, seed 0) of `model` as a 4×4 grid.
pub fn sample_grid(
    model: &UNet,
    unet: &UNetConfig,
    config: &TrainConfig,
    path: &Path,
    device: &burn::tensor::Device,
) -> Result<()> {
    let denoiser = UNetDenoiser {
        model: model.clone(),
        config: unet.clone(),
    };
    // A class-conditional net shows digits 0–9, 0–5 with guidance w = 2.
    let guided = match unet.num_classes {
        Some(n) => Some(crate::model::Guided::new(
            std::sync::Arc::new(UNetDenoiser {
                model: model.clone(),
                config: unet.clone(),
            }),
            (0..16).map(|i| i % n).collect(),
            2.0,
        )?),
        None => None,
    };
    let denoiser: &dyn crate::model::Denoiser = match &guided {
        Some(g) => g,
        None => &denoiser,
    };
    let x = if unet.prediction == crate::diffusion::PredictionType::Flow {
        // A flow model's preview: 50 flow Euler steps from the same noise.
        let spec = crate::diffusion::solvers::SolverSpec {
            kind: crate::diffusion::solvers::SolverKind::FlowEuler,
            order: None,
            karras: false,
        };
        let mut solver = spec.build(&config.schedule, unet.prediction, 50)?;
        let [c, h, w] = denoiser.sample_shape();
        let x_t = crate::diffusion::noise::initial_noise(0, [16, c, h, w], device);
        crate::diffusion::solvers::solve(
            denoiser,
            solver.as_mut(),
            x_t,
            |_, s| burn::tensor::Tensor::zeros(s, device),
            |_, _| {},
        )?
    } else {
        let scheduler = Scheduler::new(SchedulerConfig::ddim(
            config.schedule,
            unet.prediction,
            50,
            0.0,
        ))?;
        let cancel = AtomicBool::new(false);
        sample_seeded(denoiser, &scheduler, 0, 16, &cancel, device, |_| {})?
            .ok_or_else(|| DiffError::Backend("cancelled".into()))?
    };
    let dims = x.dims();
    let v = crate::tensor_util::to_vec(x)?;
    let imgs = batch_to_rgb(&v, dims, ValueRange::Unit)?;
    save_png(&grid(&imgs, 4, 2, 2), path)
}

/// The loss column of the last `n` rows of loss.csv (empty when there is none).
fn last_losses(path: &Path, n: usize) -> Vec<f32> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let losses: Vec<f32> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .collect();
    losses[losses.len().saturating_sub(n)..].to_vec()
}

/// Keeps the header and the first `rows` data rows of a CSV (atomically), so a resumed run's
/// losses continue where its checkpoint was written.
fn keep_csv_rows(path: &Path, rows: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text.lines().take(rows + 1).collect();
    let mut s = kept.join("\n");
    s.push('\n');
    crate::data::image_io::write_atomic(path, s.as_bytes())
}

/// What the net predicts: --prediction, or flow's velocity with --objective flow (which takes
/// no other --prediction and no Min-SNR weighting, defined by ᾱ).
fn prediction_of_args(a: &TrainArgs) -> Result<crate::diffusion::PredictionType> {
    use crate::diffusion::PredictionType;
    let asked: PredictionType = a.prediction.into();
    let flow = a.objective == "flow" || asked == PredictionType::Flow;
    if !flow {
        return Ok(asked);
    }
    if !matches!(a.prediction, UNetPrediction::Epsilon | UNetPrediction::Flow) {
        return Err(DiffError::invalid(
            "--objective flow predicts the velocity ε − x_0: it takes no --prediction v",
        ));
    }
    if a.min_snr_gamma.is_some() {
        return Err(DiffError::invalid(
            "--min-snr-gamma weighs diffusion's timesteps by SNR; flow matching has no ᾱ",
        ));
    }
    Ok(PredictionType::Flow)
}
