//! Reverse sampling, comparisons and interpolation: a [`Job`] on its own worker thread
//! ("difflab-sampler"), so a long run never blocks the forward panel. Each step streams back
//! as CPU images (grids of the batch), which the panels keep as the trajectory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::thread::{Job, WorkerThread};
use crate::data::gif::save_gif;
use crate::data::image_io::{ValueRange, batch_to_rgb, grid, grid_cols};
use crate::data::mnist::{Mnist, SIDE};
use crate::diffusion::interpolation::{Blend, alphas, blended_noises, decode_noises};
use crate::diffusion::noise::norm;
use crate::diffusion::{
    NoiseSchedule, PredictionType, SamplerKind, ScheduleConfig, Scheduler, SchedulerConfig,
    StepFrame, TimestepSpacing, VarianceType, sample_seeded,
};
use crate::error::{DiffError, Result};
use crate::model::{ConditionalDenoiser, Denoiser, ExactDenoiser, Guided, UNetDenoiser};
use crate::tensor_util::to_vec;

/// Which sampler, as the panels offer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SamplerChoice {
    /// DDPM with σ² = β̃_t.
    DdpmFixedSmall,
    /// DDPM with σ² = β_t.
    DdpmFixedLarge,
    /// DDIM with η.
    Ddim,
}

impl SamplerChoice {
    /// Every choice, in display order.
    pub const ALL: [SamplerChoice; 3] = [Self::DdpmFixedSmall, Self::DdpmFixedLarge, Self::Ddim];

    /// The label shown.
    pub fn label(self) -> &'static str {
        match self {
            Self::DdpmFixedSmall => "DDPM (fixed_small)",
            Self::DdpmFixedLarge => "DDPM (fixed_large)",
            Self::Ddim => "DDIM",
        }
    }
}

/// One sampler configuration (persisted, saved in session files).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerSettings {
    /// DDPM or DDIM.
    pub sampler: SamplerChoice,
    /// N.
    pub steps: usize,
    /// DDIM's η.
    pub eta: f64,
    /// How the N steps spread over T.
    pub spacing: TimestepSpacing,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            sampler: SamplerChoice::Ddim,
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
        }
    }
}

impl SamplerSettings {
    /// The core scheduler config for a model that predicts `prediction`.
    pub fn scheduler_config(
        &self,
        schedule: ScheduleConfig,
        prediction: PredictionType,
    ) -> SchedulerConfig {
        SchedulerConfig {
            schedule,
            prediction_type: prediction,
            clip_sample: Some(1.0),
            spacing: self.spacing,
            steps_offset: 0,
            num_inference_steps: self.steps,
            sampler: match self.sampler {
                SamplerChoice::DdpmFixedSmall => SamplerKind::Ddpm {
                    variance: VarianceType::FixedSmall,
                },
                SamplerChoice::DdpmFixedLarge => SamplerKind::Ddpm {
                    variance: VarianceType::FixedLarge,
                },
                SamplerChoice::Ddim => SamplerKind::Ddim {
                    eta: self.eta,
                    set_alpha_to_one: true,
                },
            },
        }
    }

    /// A short description, e.g. "DDIM 50 steps η=0".
    pub fn describe(&self) -> String {
        match self.sampler {
            SamplerChoice::Ddim => format!("DDIM {} steps η={}", self.steps, self.eta),
            s => format!("{} {} steps", s.label(), self.steps),
        }
    }
}

/// The model: the shipped MNIST U-Net, or the exact denoiser over the first `count` digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSpec {
    /// Digits in the exact denoiser's set.
    pub count: usize,
    /// The trained U-Net instead of the exact denoiser.
    pub unet: bool,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            count: 1000,
            unet: true,
        }
    }
}

impl ModelSpec {
    /// The menu's name for it.
    pub fn label(&self) -> String {
        if self.unet {
            "MNIST U-Net (trained)".into()
        } else {
            format!("Exact denoiser, {} digits", self.count)
        }
    }
}

/// Which digit a class-conditional model is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelPick {
    /// No label (∅): the unconditional model.
    Any,
    /// This digit for every sample.
    Digit(u8),
    /// One row per digit, 0 to 9.
    PerRow,
}

impl LabelPick {
    /// The menu's name for it.
    pub fn label(self) -> String {
        match self {
            LabelPick::Any => "any digit (no label)".into(),
            LabelPick::Digit(d) => format!("digit {d}"),
            LabelPick::PerRow => "one row per digit".into(),
        }
    }
}

/// Classifier-free guidance of a run: the label and w.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuidanceSettings {
    /// The label.
    pub label: LabelPick,
    /// w ≥ 0: ε̃ = ε_∅ + w·(ε_c − ε_∅).
    pub scale: f32,
}

impl Default for GuidanceSettings {
    fn default() -> Self {
        Self {
            label: LabelPick::Any,
            scale: 1.0,
        }
    }
}

/// The largest guidance scale the app offers.
pub const MAX_GUIDANCE: f32 = 10.0;

impl GuidanceSettings {
    /// The batch actually sampled for `batch` requested and the grid's columns: one row per
    /// digit makes 10 rows of ⌈batch/10⌉ (at most 6, so at most 60 images).
    pub fn layout(&self, batch: usize) -> (usize, usize) {
        match self.label {
            LabelPick::PerRow => {
                let per_row = batch.div_ceil(10).clamp(1, 6);
                (10 * per_row, per_row)
            }
            _ => (batch, grid_cols(batch)),
        }
    }

    /// The labels of a batch of `n` (`None` for ∅).
    pub fn labels(&self, n: usize) -> Option<Vec<usize>> {
        match self.label {
            LabelPick::Any => None,
            LabelPick::Digit(d) => Some(vec![usize::from(d); n]),
            LabelPick::PerRow => {
                let (_, per_row) = self.layout(n);
                Some((0..n).map(|i| (i / per_row).min(9)).collect())
            }
        }
    }

    /// "w = 2, digit 3" (empty without a label).
    pub fn describe(&self) -> String {
        match self.label {
            LabelPick::Any => String::new(),
            l => format!("w = {}, {}", self.scale, l.label()),
        }
    }
}

/// One recorded step: the state x at that step's input with its predictions, or the final x_0.
/// Values are kept as read back (one read per step); images are made when shown.
#[derive(Clone)]
pub struct TrajFrame {
    /// Timestep of x (`None` for the final x_0).
    pub t: Option<usize>,
    /// [B, C, H, W] of each stored tensor.
    pub shape: [usize; 4],
    /// Whether ε̂ is stored (not for the final x_0).
    pub has_eps: bool,
    /// Whether DDIM's three terms and their sum are stored.
    pub has_terms: bool,
    /// Whether a guided run's ε_∅ and ε_c are stored (ε̂ is then the guided ε̃).
    pub has_guidance: bool,
    /// Columns of the grid the batch is shown as.
    pub cols: usize,
    /// x, x̂0, then ε̂, the four DDIM tensors and ε_∅, ε_c when present, each B·C·H·W values.
    values: Arc<Vec<f32>>,
}

impl TrajFrame {
    fn part(&self, k: usize) -> &[f32] {
        let n: usize = self.shape.iter().product();
        &self.values[k * n..(k + 1) * n]
    }

    fn image(&self, k: usize, range: ValueRange) -> RgbImage {
        let images = batch_to_rgb(self.part(k), self.shape, range).unwrap_or_default();
        grid(&images, self.cols.max(1), 1, 1)
    }

    /// A guided run's ε_∅ (i = 0) and ε_c (i = 1), each image in its own range.
    pub fn guidance_part(&self, i: usize) -> Option<RgbImage> {
        let at = 3 + if self.has_terms { 4 } else { 0 };
        (self.has_guidance && i < 2).then(|| self.image(at + i, ValueRange::Normalise))
    }

    /// x_t (a grid of the batch).
    pub fn x(&self) -> RgbImage {
        self.image(0, ValueRange::Unit)
    }

    /// The predicted x̂0.
    pub fn x0(&self) -> RgbImage {
        self.image(1, ValueRange::Unit)
    }

    /// The predicted ε̂, each image scaled to its own range.
    pub fn eps(&self) -> Option<RgbImage> {
        self.has_eps.then(|| self.image(2, ValueRange::Normalise))
    }

    /// DDIM's √ᾱ_prev·x̂0, direction and σ_t·z terms (i = 0, 1, 2) and their sum x_{t−1} (i = 3).
    pub fn term(&self, i: usize) -> Option<RgbImage> {
        (self.has_terms && i < 4).then(|| self.image(3 + i, ValueRange::Unit))
    }

    /// The values of x̂0 (for distances between runs).
    pub fn x0_values(&self) -> &[f32] {
        self.part(1)
    }
}

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The run's id.
    pub id: u64,
    /// The schedule.
    pub schedule: ScheduleConfig,
    /// The sampler.
    pub sampler: SamplerSettings,
    /// The model.
    pub model: ModelSpec,
    /// Seed of x_T and the per-step noise.
    pub seed: u64,
    /// Samples in the batch.
    pub batch: usize,
    /// Label and guidance scale (class-conditional U-Nets).
    pub guidance: GuidanceSettings,
}

/// Commands.
pub enum SamplerCommand {
    /// One run, streamed step by step.
    Run(RunSpec),
    /// Several runs from the same x_T and noise streams (`RunSpec`s share seed and batch), each
    /// reported when done.
    Compare {
        /// Its id.
        id: u64,
        /// The runs.
        runs: Vec<RunSpec>,
    },
    /// Two seeds' noises blended, decoded with deterministic DDIM.
    Interpolate(InterpSpec),
    /// Write a GIF.
    ExportGif {
        /// Frames.
        frames: Vec<GifFrame>,
        /// Per frame.
        delay_ms: u32,
        /// Upscale.
        scale: u32,
        /// Where.
        path: PathBuf,
    },
}

/// An interpolation between the noises of two seeds.
#[derive(Clone, Debug)]
pub struct InterpSpec {
    /// Its id.
    pub id: u64,
    /// The schedule.
    pub schedule: ScheduleConfig,
    /// The model.
    pub model: ModelSpec,
    /// Seed A (α = 0).
    pub seed_a: u64,
    /// Seed B (α = 1).
    pub seed_b: u64,
    /// Frames, including both ends (≥ 2).
    pub frames: usize,
    /// DDIM steps.
    pub steps: usize,
    /// Label and guidance scale (a single digit only; otherwise unconditional).
    pub guidance: GuidanceSettings,
}

/// A GIF frame: a ready image, or a trajectory frame's x_t (made on the worker).
#[derive(Clone)]
pub enum GifFrame {
    /// An image.
    Image(Arc<RgbImage>),
    /// x_t of a recorded step.
    Step(TrajFrame),
}

impl GifFrame {
    fn image(&self) -> RgbImage {
        match self {
            GifFrame::Image(i) => (**i).clone(),
            GifFrame::Step(f) => f.x(),
        }
    }
}

/// Events.
pub enum SamplerEvent {
    /// Something the user should know that stopped nothing (a batch clamped to fit memory).
    Notice(String),
    /// A step of a streamed run.
    Step {
        /// The run.
        id: u64,
        /// 0-based step.
        index: usize,
        /// N.
        total: usize,
        /// The frame (x at the step's input and its predictions).
        frame: TrajFrame,
        /// Wall time of this step.
        step_ms: f64,
    },
    /// A streamed run finished: its final x_0 frame.
    Done {
        /// The run.
        id: u64,
        /// x_0.
        last: TrajFrame,
        /// Wall time of the run.
        total_ms: f64,
    },
    /// One run of a comparison finished.
    CompareRun {
        /// The comparison.
        id: u64,
        /// Which run.
        index: usize,
        /// Its N + 1 frames.
        frames: Vec<TrajFrame>,
        /// Wall time.
        total_ms: f64,
    },
    /// An interpolation is ready.
    Interpolated {
        /// Its id.
        id: u64,
        /// α of each frame.
        alphas: Vec<f64>,
        /// Decoded slerp frames (one image each).
        slerp: Vec<Arc<RgbImage>>,
        /// Decoded lerp frames.
        lerp: Vec<Arc<RgbImage>>,
        /// ‖x_T‖ along slerp.
        slerp_norms: Vec<f64>,
        /// ‖x_T‖ along lerp.
        lerp_norms: Vec<f64>,
    },
    /// A step of one run of a comparison.
    CompareStep {
        /// The comparison.
        id: u64,
        /// Which run.
        index: usize,
        /// Steps done in that run.
        done: usize,
        /// Its N.
        total: usize,
    },
    /// Progress of a long command (done, total).
    Progress(usize, usize),
    /// The command was cancelled.
    Cancelled(u64),
    /// A file was written.
    Saved(String),
    /// A command failed: the run, comparison or interpolation with this id (`None`: an export).
    Failed {
        /// The failed command's id.
        id: Option<u64>,
        /// What went wrong.
        message: String,
    },
}

/// The sampling panels' worker thread.
pub type SamplerWorker = WorkerThread<SamplerJob>;

/// Starts "difflab-sampler" on `device`.
pub fn spawn_sampler_worker(device: Device, ctx: egui::Context) -> Result<SamplerWorker> {
    WorkerThread::spawn(
        "difflab-sampler",
        SamplerJob {
            device,
            mnist: None,
            models: HashMap::new(),
            unet: None,
        },
        ctx,
    )
}

/// The sampler thread's state: the device and the built models.
pub struct SamplerJob {
    device: Device,
    mnist: Option<Arc<Mnist>>,
    models: HashMap<(ModelSpec, ScheduleKey), Arc<dyn Denoiser>>,
    /// The shipped class-conditional U-Net, for guided runs.
    unet: Option<Arc<UNetDenoiser>>,
}

/// What a run samples with.
struct RunModel {
    model: Arc<dyn Denoiser>,
    guided: Option<Arc<RecordingGuided>>,
    scheduler: Scheduler,
    batch: usize,
    cols: usize,
}

/// A hashable form of a schedule config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ScheduleKey(u8, usize, u64, u64);

impl From<ScheduleConfig> for ScheduleKey {
    fn from(c: ScheduleConfig) -> Self {
        ScheduleKey(
            c.kind as u8,
            c.num_train_timesteps,
            c.beta_start.to_bits(),
            c.beta_end.to_bits(),
        )
    }
}

impl Job for SamplerJob {
    type Command = SamplerCommand;
    type Event = SamplerEvent;

    fn supersedable(cmd: &SamplerCommand) -> bool {
        !matches!(cmd, SamplerCommand::ExportGif { .. })
    }

    fn cancels_running(cmd: &SamplerCommand) -> bool {
        // Exporting a GIF while a run streams must not stop the run.
        !matches!(cmd, SamplerCommand::ExportGif { .. })
    }

    fn handle(&mut self, cmd: SamplerCommand, cancel: &AtomicBool, send: &dyn Fn(SamplerEvent)) {
        let id = match &cmd {
            SamplerCommand::Run(spec) => Some(spec.id),
            SamplerCommand::Compare { id, .. } => Some(*id),
            SamplerCommand::Interpolate(spec) => Some(spec.id),
            SamplerCommand::ExportGif { .. } => None,
        };
        let result = match cmd {
            SamplerCommand::Run(spec) => self.run(&spec, cancel, send),
            SamplerCommand::Compare { id, runs } => self.compare(id, &runs, cancel, send),
            SamplerCommand::Interpolate(spec) => self.interpolate(&spec, cancel, send),
            SamplerCommand::ExportGif {
                frames,
                delay_ms,
                scale,
                path,
            } => {
                let frames: Vec<RgbImage> = frames.iter().map(GifFrame::image).collect();
                let n = frames.len();
                save_gif(&frames, delay_ms, scale, &path, |i| {
                    send(SamplerEvent::Progress(i + 1, n));
                })
                .map(|()| {
                    send(SamplerEvent::Saved(format!(
                        "wrote {} ({n} frames)",
                        path.display()
                    )));
                })
            }
        };
        if let Err(e) = result {
            send(SamplerEvent::Failed {
                id,
                message: e.to_string(),
            });
        }
    }
}

/// Everything a step shows, read back in one go; `guided` is a guided run's (ε_∅, ε_c).
fn frame_of(
    step: &StepFrame,
    cols: usize,
    guided: Option<(Tensor<4>, Tensor<4>)>,
) -> Result<TrajFrame> {
    let mut parts = vec![
        step.x_t.clone(),
        step.pred_x0.clone(),
        step.pred_eps.clone(),
    ];
    if let Some(d) = &step.ddim_terms {
        parts.extend([
            d.x0_term.clone(),
            d.direction_term.clone(),
            d.noise_term.clone(),
            step.prev_sample.clone(),
        ]);
    }
    let has_guidance = guided.is_some();
    if let Some((u, c)) = guided {
        parts.extend([u, c]);
    }
    Ok(TrajFrame {
        t: Some(step.t),
        shape: step.x_t.dims(),
        has_eps: true,
        has_terms: step.ddim_terms.is_some(),
        has_guidance,
        cols,
        values: Arc::new(to_vec(Tensor::cat(parts, 0))?),
    })
}

fn final_frame(x0: &Tensor<4>, cols: usize) -> Result<TrajFrame> {
    Ok(TrajFrame {
        t: None,
        shape: x0.dims(),
        has_eps: false,
        has_terms: false,
        has_guidance: false,
        cols,
        values: Arc::new(to_vec(Tensor::cat(vec![x0.clone(), x0.clone()], 0))?),
    })
}

/// A guided U-Net that keeps its last step's ε_∅ and ε_c for the views (it always runs the one
/// 2B pass, even at w = 0 or 1, so that both are there to show).
struct RecordingGuided {
    inner: Guided<UNetDenoiser>,
    last: Mutex<Option<(Tensor<4>, Tensor<4>)>>,
}

impl RecordingGuided {
    fn take(&self) -> Option<(Tensor<4>, Tensor<4>)> {
        self.last.lock().ok().and_then(|mut l| l.take())
    }
}

impl Denoiser for RecordingGuided {
    fn prediction_type(&self) -> PredictionType {
        self.inner.prediction_type()
    }

    fn sample_shape(&self) -> [usize; 3] {
        self.inner.sample_shape()
    }

    fn forward(&self, x_t: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        let p = self.inner.parts(x_t, timesteps)?;
        if let Ok(mut l) = self.last.lock() {
            *l = Some((p.uncond, p.cond));
        }
        Ok(p.guided)
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}

impl SamplerJob {
    fn model(&mut self, spec: ModelSpec, schedule: ScheduleConfig) -> Result<Arc<dyn Denoiser>> {
        let key = (spec, ScheduleKey::from(schedule));
        if let Some(m) = self.models.get(&key) {
            return Ok(m.clone());
        }
        if spec.unet {
            let (model, config) = crate::model::unet::shipped(&self.device)?;
            let m: Arc<dyn Denoiser> = Arc::new(UNetDenoiser { model, config });
            self.models.insert(key, m.clone());
            return Ok(m);
        }
        let mnist = if let Some(m) = &self.mnist {
            m.clone()
        } else {
            let m = Arc::new(Mnist::embedded()?);
            self.mnist = Some(m.clone());
            m
        };
        let count = spec.count.clamp(1, mnist.len());
        let sched = Arc::new(NoiseSchedule::new(schedule)?);
        let model: Arc<dyn Denoiser> = Arc::new(ExactDenoiser::new(
            &mnist.images(count),
            [1, SIDE, SIDE],
            sched,
            &self.device,
        )?);
        self.models.retain(|k, _| k.1 == key.1); // keep one schedule's models
        self.models.insert(key, model.clone());
        Ok(model)
    }

    /// The shipped class-conditional U-Net, for guided runs (built once).
    fn unet(&mut self) -> Result<Arc<UNetDenoiser>> {
        if let Some(m) = &self.unet {
            return Ok(m.clone());
        }
        let (model, config) = crate::model::unet::shipped_digits(&self.device)?;
        let m = Arc::new(UNetDenoiser { model, config });
        self.unet = Some(m.clone());
        Ok(m)
    }

    /// The run's model (guided when it asks for a label), its scheduler, the batch actually
    /// sampled and the grid's columns.
    fn scheduler(&mut self, spec: &RunSpec) -> Result<RunModel> {
        // The row-per-digit layout only where labels apply (the U-Net).
        let guidance = if spec.model.unet {
            spec.guidance
        } else {
            GuidanceSettings {
                label: LabelPick::Any,
                ..spec.guidance
            }
        };
        let (batch, cols) = guidance.layout(spec.batch);
        let labels = guidance.labels(batch);
        let (model, guided) = match labels {
            Some(labels) => {
                let unet = self.unet()?;
                crate::model::guidance::check_labels(unet.num_classes(), &labels)?;
                let g = Arc::new(RecordingGuided {
                    inner: Guided::new(unet, labels, f64::from(spec.guidance.scale))?,
                    last: Mutex::new(None),
                });
                (g.clone() as Arc<dyn Denoiser>, Some(g))
            }
            None => (self.model(spec.model, spec.schedule)?, None),
        };
        let config = spec
            .sampler
            .scheduler_config(spec.schedule, model.prediction_type());
        Ok(RunModel {
            model,
            guided,
            scheduler: Scheduler::new(config)?,
            batch,
            cols,
        })
    }

    /// `spec` with its batch clamped to what fits in memory, and the message saying so; `None`
    /// when it fits (or the available memory is unknown). The estimate
    /// ([`MemoryEstimate`](crate::model::memory::MemoryEstimate)) adds the pictures a run keeps:
    /// up to ten grids per step (x_t, x̂0, ε, DDIM's terms, guidance's ε_∅ and ε_c) of 3 bytes a
    /// pixel.
    fn fit_memory(&mut self, spec: &RunSpec) -> Result<Option<(RunSpec, String)>> {
        use crate::model::memory::{MemoryEstimate, Workload, available_memory_bytes, human_bytes};
        let Some(available) = available_memory_bytes() else {
            return Ok(None);
        };
        let unet = self.unet()?;
        let mut estimate = MemoryEstimate::new(
            &unet.config,
            burn::module::Module::num_params(&unet.model),
            Workload::Sample {
                guided: spec.guidance.label != LabelPick::Any,
                kept_images: 0,
            },
        );
        if !spec.model.unet {
            // The exact denoiser: its set is already in memory; the pictures remain.
            estimate.per_image_bytes = 0.0;
        }
        let side = unet.config.image_size as f64;
        estimate.per_image_bytes += (spec.sampler.steps + 1) as f64 * 10.0 * 3.0 * side * side;
        let need = estimate.bytes(spec.batch);
        if need <= available {
            return Ok(None);
        }
        let fits = estimate.largest_batch(available);
        if fits == 0 {
            return Err(DiffError::invalid(format!(
                "this run needs about {} of memory and only {} is available: use fewer steps",
                human_bytes(estimate.bytes(1)),
                human_bytes(available)
            )));
        }
        let message = format!(
            "Batch {} would need about {} of memory ({} available): sampling {fits} images instead.",
            spec.batch,
            human_bytes(need),
            human_bytes(available)
        );
        Ok(Some((
            RunSpec {
                batch: fits,
                ..spec.clone()
            },
            message,
        )))
    }

    /// Runs `spec`, calling `on_frame` with each step's frame, then returns x_0's frame.
    fn run_frames(
        &mut self,
        spec: &RunSpec,
        cancel: &AtomicBool,
        mut on_frame: impl FnMut(usize, usize, TrajFrame, f64),
    ) -> Result<Option<TrajFrame>> {
        if spec.batch == 0 || spec.batch > 64 {
            return Err(DiffError::invalid(
                "the batch size must be between 1 and 64",
            ));
        }
        let RunModel {
            model,
            guided,
            scheduler,
            batch,
            cols,
        } = self.scheduler(spec)?;
        let total = scheduler.timesteps().len();
        let mut error = None;
        let mut last = Instant::now();
        let x0 = sample_seeded(
            model.as_ref(),
            &scheduler,
            spec.seed,
            batch,
            cancel,
            &self.device,
            |step| match frame_of(step, cols, guided.as_ref().and_then(|g| g.take())) {
                Ok(f) => {
                    let ms = last.elapsed().as_secs_f64() * 1e3;
                    last = Instant::now();
                    on_frame(step.index, total, f, ms);
                }
                Err(e) => error = Some(e),
            },
        )?;
        if let Some(e) = error {
            return Err(e);
        }
        x0.map(|x| final_frame(&x, cols)).transpose()
    }

    fn run(
        &mut self,
        spec: &RunSpec,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        // Build (or find) the model first: like the CLI's "sampled in", the run's time is the
        // sampling alone.
        self.model(spec.model, spec.schedule)?;
        // The run keeps every step's pictures for scrubbing: clamp a batch that would not fit.
        let fitted = self.fit_memory(spec)?;
        if let Some((_, message)) = &fitted {
            send(SamplerEvent::Notice(message.clone()));
        }
        let spec = fitted.as_ref().map_or(spec, |(s, _)| s);
        let started = Instant::now();
        let id = spec.id;
        let last = self.run_frames(spec, cancel, |index, total, frame, step_ms| {
            send(SamplerEvent::Step {
                id,
                index,
                total,
                frame,
                step_ms,
            });
        })?;
        match last {
            Some(last) => send(SamplerEvent::Done {
                id,
                last,
                total_ms: started.elapsed().as_secs_f64() * 1e3,
            }),
            None => send(SamplerEvent::Cancelled(id)),
        }
        Ok(())
    }

    fn compare(
        &mut self,
        id: u64,
        runs: &[RunSpec],
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        for (index, spec) in runs.iter().enumerate() {
            let started = Instant::now();
            let mut frames = Vec::with_capacity(spec.sampler.steps + 1);
            let last = self.run_frames(spec, cancel, |step, total, f, _| {
                frames.push(f);
                send(SamplerEvent::CompareStep {
                    id,
                    index,
                    done: step + 1,
                    total,
                });
            })?;
            let Some(last) = last else {
                send(SamplerEvent::Cancelled(id));
                return Ok(());
            };
            frames.push(last);
            send(SamplerEvent::CompareRun {
                id,
                index,
                frames,
                total_ms: started.elapsed().as_secs_f64() * 1e3,
            });
            send(SamplerEvent::Progress(index + 1, runs.len()));
        }
        Ok(())
    }

    fn interpolate(
        &mut self,
        spec: &InterpSpec,
        cancel: &AtomicBool,
        send: &dyn Fn(SamplerEvent),
    ) -> Result<()> {
        if spec.frames < 2 {
            return Err(DiffError::invalid(
                "an interpolation needs at least 2 frames",
            ));
        }
        let model: Arc<dyn Denoiser> = match spec.guidance.label {
            LabelPick::Digit(d) if spec.model.unet => {
                let unet = self.unet()?;
                Arc::new(Guided::new(
                    unet,
                    vec![usize::from(d)],
                    f64::from(spec.guidance.scale),
                )?)
            }
            _ => self.model(spec.model, spec.schedule)?,
        };
        let sampler = SamplerSettings {
            sampler: SamplerChoice::Ddim,
            steps: spec.steps,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
        };
        let scheduler =
            Scheduler::new(sampler.scheduler_config(spec.schedule, model.prediction_type()))?;
        let shape = model.sample_shape();
        let d: usize = shape.iter().product();
        let alphas = alphas(spec.frames)?;
        let decode = |noises: &[Vec<f32>]| -> Result<Option<Vec<Arc<RgbImage>>>> {
            let n = noises.len();
            let Some(x0) = decode_noises(model.as_ref(), &scheduler, noises, cancel, &self.device)?
            else {
                return Ok(None);
            };
            let images = batch_to_rgb(
                &to_vec(x0)?,
                [n, shape[0], shape[1], shape[2]],
                ValueRange::Unit,
            )?;
            Ok(Some(images.into_iter().map(Arc::new).collect()))
        };
        let s_noise = blended_noises(spec.seed_a, spec.seed_b, d, &alphas, Blend::Slerp);
        let l_noise = blended_noises(spec.seed_a, spec.seed_b, d, &alphas, Blend::Lerp);
        let (Some(slerp_img), Some(lerp_img)) = (decode(&s_noise)?, decode(&l_noise)?) else {
            send(SamplerEvent::Cancelled(spec.id));
            return Ok(());
        };
        send(SamplerEvent::Interpolated {
            id: spec.id,
            alphas,
            slerp: slerp_img,
            lerp: lerp_img,
            slerp_norms: s_noise.iter().map(|v| norm(v)).collect(),
            lerp_norms: l_noise.iter().map(|v| norm(v)).collect(),
        });
        Ok(())
    }
}
