//! What the sampling, compare and interpolation panels ask of the sampler thread
//! (`sampler_job.rs`) and what comes back: the requests (each with an id) and the events, and
//! the frames (every step of a run read back once as CPU values, which the panels keep as the
//! trajectory). The settings the requests are made of are in `settings/sampler.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::Tensor;
use image::RgbImage;

pub use super::job_requests::{
    EditJob, EditPart, EditSpec, QualityPoint, QualitySpec, QualityUpdate,
};
pub use crate::app::settings::sampler::{
    GuidanceSettings, LabelPick, MAX_GUIDANCE, ModelSpec, SamplerChoice, SamplerSettings,
};
use crate::data::image_io::{ValueRange, batch_to_rgb, grid};
use crate::diffusion::{ScheduleConfig, StepFrame};
use crate::error::{DiffError, Result};
use crate::tensor_util::{read_vec, reads_synchronously};

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

    /// The values of a guided run's ε_∅ (i = 0) and ε_c (i = 1).
    pub fn guidance_values(&self, i: usize) -> Option<&[f32]> {
        let at = 3 + if self.has_terms { 4 } else { 0 };
        (self.has_guidance && i < 2).then(|| self.part(at + i))
    }

    /// The values of x_t.
    pub fn x_values(&self) -> &[f32] {
        self.part(0)
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
#[derive(Clone, Debug, PartialEq)]
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

impl RunSpec {
    /// The spec without what its samples do not depend on: the id, η for DDPM, w and the label
    /// for a model that takes no digit (the exact denoiser, an unconditional U-Net), w without a
    /// label, the exact denoiser's size for the U-Net and the U-Net's weights for the exact
    /// denoiser.
    fn essential(&self) -> RunSpec {
        let mut s = self.clone();
        s.id = 0;
        if s.sampler.sampler != SamplerChoice::Ddim {
            s.sampler.eta = 0.0;
        }
        if s.model.unet {
            s.model.count = 0;
        } else {
            s.model.weights = crate::app::unet_file::SHIPPED;
        }
        if !s.model.takes_digits() || s.guidance.label == LabelPick::Any {
            s.guidance = GuidanceSettings {
                label: LabelPick::Any,
                scale: 0.0,
            };
        }
        s
    }

    /// Whether this run makes the samples `other` would (ids and unused settings aside): when
    /// not, the panel says that what it shows came from other settings.
    pub fn same_samples(&self, other: &RunSpec) -> bool {
        self.essential() == other.essential()
    }

    /// "DDIM 50 steps η=0, seed 0, w = 2, digit 7", as the panel names a run.
    pub fn describe(&self) -> String {
        let mut s = format!("{}, seed {}", self.sampler.describe(), self.seed);
        let guidance = self.essential().guidance.describe();
        if !guidance.is_empty() {
            s.push_str(&format!(", {guidance}"));
        }
        s
    }
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
    /// An edit of the sketch pad's drawing.
    Edit(EditSpec),
    /// Quality against model evaluations: solvers × NFE from one x_T, each judged.
    Quality(QualitySpec),
    /// The model built and run on a few pieces of noise, nothing sent back: the page asks for
    /// it when it opens, so a student's first run is not the one that finds the model's
    /// buffers and gets WebAssembly's optimised code (the first run's slowest slice was 50 ms
    /// against 14 ms afterwards; docs/web.md).
    WarmUp {
        /// The model the sampling panel will run.
        model: ModelSpec,
        /// Its schedule.
        schedule: ScheduleConfig,
    },
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
#[derive(Clone, Debug, PartialEq)]
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

impl InterpSpec {
    /// Whether this decoding makes the frames `other` would: the id aside, the exact
    /// denoiser's size only for it, w and the label only for the U-Net with one digit (what
    /// the worker guides with).
    pub fn same_frames(&self, other: &InterpSpec) -> bool {
        let essential = |s: &InterpSpec| {
            let mut s = s.clone();
            s.id = 0;
            if s.model.unet {
                s.model.count = 0;
            }
            if !(s.model.takes_digits() && matches!(s.guidance.label, LabelPick::Digit(_))) {
                s.guidance = GuidanceSettings {
                    label: LabelPick::Any,
                    scale: 0.0,
                };
            }
            s
        };
        essential(self) == essential(other)
    }
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
    pub fn image(&self) -> RgbImage {
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
    /// A part of an edit's result.
    Edit {
        /// The edit.
        id: u64,
        /// The part.
        part: EditPart,
    },
    /// A quality comparison's progress and points.
    Quality {
        /// Its id.
        id: u64,
        /// What happened.
        update: QualityUpdate,
    },
    /// An edit's progress: model calls made, of how many.
    EditProgress {
        /// The edit.
        id: u64,
        /// Done.
        done: usize,
        /// Of.
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

/// Everything a step shows, read back in one go; `guided` is a guided run's (ε_∅, ε_c).
/// Where the step's device does not read synchronously (a GPU in the browser), the core could
/// not check the model's output for non-finite values: this read does.
pub(in crate::app) async fn frame_of(
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
    let checked_here = !reads_synchronously(&step.x_t.device());
    let values = read_vec(Tensor::cat(parts, 0)).await?;
    if checked_here && values.iter().any(|v| !v.is_finite()) {
        return Err(DiffError::NonFinite(format!(
            "the model produced non-finite values at step {} (t = {})",
            step.index + 1,
            step.t
        )));
    }
    Ok(TrajFrame {
        t: Some(step.t),
        shape: step.x_t.dims(),
        has_eps: true,
        has_terms: step.ddim_terms.is_some(),
        has_guidance,
        cols,
        values: Arc::new(values),
    })
}

/// x_0 as the last frame (shown as both x_t and x̂0).
pub(in crate::app) async fn final_frame(x0: &Tensor<4>, cols: usize) -> Result<TrajFrame> {
    Ok(TrajFrame {
        t: None,
        shape: x0.dims(),
        has_eps: false,
        has_terms: false,
        has_guidance: false,
        cols,
        values: Arc::new(read_vec(Tensor::cat(vec![x0.clone(), x0.clone()], 0)).await?),
    })
}

impl crate::app::DiffLabApp {
    /// Warms the sampling panel's model up in the background (`SamplerCommand::WarmUp`): the
    /// page does this when it opens (after its workers are up). A run asked for meanwhile stops
    /// it; while a job runs it is not sent (it would stop a run asked for before it).
    pub fn warm_up(&mut self) {
        if self.is_busy() {
            return;
        }
        let spec = self.sampling.spec(&self.settings, 0);
        self.send_sampler(SamplerCommand::WarmUp {
            model: spec.model,
            schedule: spec.schedule,
        });
    }
}
