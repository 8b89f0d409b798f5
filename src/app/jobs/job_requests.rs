//! The sampler thread's edit and quality requests (`SamplerCommand::Edit`,
//! `SamplerCommand::Quality`) and what comes back of them.

use std::sync::Arc;

use image::RgbImage;

use crate::app::settings::sampler::{GuidanceSettings, ModelSpec, SamplerSettings};
use crate::diffusion::ScheduleConfig;

/// Quality against NFE: each solver at each NFE from the same x_T (the sampling panel's seed),
/// the final samples judged by the `eval` judge.
#[derive(Clone, Debug, PartialEq)]
pub struct QualitySpec {
    /// Its id.
    pub id: u64,
    /// The schedule.
    pub schedule: ScheduleConfig,

    /// Seed of x_T.
    pub seed: u64,
    /// Samples per run.
    pub batch: usize,
    /// The solvers and the model each samples (asked for no digit: the judge compares with all
    /// ten), their steps set per NFE.
    pub solvers: Vec<(SamplerSettings, ModelSpec)>,
    /// The model evaluations to spend.
    pub nfes: Vec<usize>,
}

/// One judged run of a quality-against-NFE comparison.
#[derive(Clone, Debug)]
pub struct QualityPoint {
    /// Which solver of the spec.
    pub solver: usize,
    /// Its name ("DPM-Solver++ 2M").
    pub label: String,
    /// The NFE asked for.
    pub nfe: usize,
    /// The steps that spend it (Heun: two calls a step, less one).
    pub steps: usize,
    /// Wall time of the sampling.
    pub wall_ms: f64,
    /// The judge's mean confidence.
    pub confidence: f64,
    /// Fréchet distance to real digits over the real digits' own (1 is as good as real).
    pub frechet_ratio: f64,
    /// The first samples, in a row.
    pub samples: Arc<RgbImage>,
}

/// What a quality comparison reports.
pub enum QualityUpdate {
    /// The judge trains first: batches done, of how many.
    Judge(usize, usize),
    /// A run is under way: runs done, of how many.
    Runs(usize, usize),
    /// A run judged.
    Point(QualityPoint),
    /// All done.
    Done,
}

/// What an edit computes.
#[derive(Clone, Debug, PartialEq)]
pub enum EditJob {
    /// SDEdit from each of these t₀, in order (the slider's first, then the strip's).
    Sdedit(Vec<usize>),
    /// RePaint inpainting of the masked part.
    Inpaint,
    /// DDIM inversion with this many steps, and the decoding back.
    Invert(usize),
    /// The reconstruction error of inversion + decoding at each of these step counts.
    InvertCurve(Vec<usize>),
    /// "Edit the noise": two digits inverted (`steps`), their noises blended by slerp in
    /// `frames` frames, each decoded.
    NoiseEdit {
        /// The two digits, 784 values each in [−1, 1].
        digits: Arc<[Vec<f32>; 2]>,
        /// DDIM steps of the inversion and decoding.
        steps: usize,
        /// Frames, both ends included.
        frames: usize,
    },
}

/// An edit of the sketch pad's drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct EditSpec {
    /// Its id.
    pub id: u64,
    /// What to compute.
    pub job: EditJob,
    /// The schedule.
    pub schedule: ScheduleConfig,
    /// The model (the sampling panel's).
    pub model: ModelSpec,
    /// The drawing, [1, 28, 28] values in [−1, 1].
    pub input: Arc<Vec<f32>>,
    /// The mask (1: the model fills in), as the drawing.
    pub mask: Arc<Vec<f32>>,
    /// DDPM or DDIM, and the steps (SDEdit, inpainting).
    pub sampler: SamplerSettings,
    /// The digit guided towards (SDEdit, inpainting).
    pub guidance: GuidanceSettings,
    /// Seed of result 0 (result k: seed + k).
    pub seed: u64,
    /// Results per edit.
    pub samples: usize,
    /// RePaint's U.
    pub resample: usize,
    /// RePaint's jump length.
    pub jump: usize,
}

/// A part of an edit's result, sent as it is ready.
pub enum EditPart {
    /// SDEdit from one t₀: the noised input at t_s (the first result's) and the results.
    SdeditRow {
        /// The t₀ asked for.
        t0: usize,
        /// The grid timestep it started from (`None`: t₀ below the grid, the input kept).
        start_t: Option<usize>,
        /// x_{t_s}, the first seed's.
        start: Arc<RgbImage>,
        /// The results, one per seed.
        results: Vec<Arc<RgbImage>>,
        /// Their values, [samples, 784].
        values: Vec<f32>,
    },
    /// Inpainting: x after every move (x_T first), one image per seed each, and the result.
    Inpaint {
        /// Each frame's label ("t = 980 ↓", "t = 940 ↑ (jump)").
        labels: Vec<String>,
        /// Each frame's images, one per seed.
        frames: Vec<Vec<Arc<RgbImage>>>,
        /// The result's values, [samples, 784].
        values: Vec<f32>,
    },
    /// DDIM inversion.
    Invert {
        /// The steps.
        steps: usize,
        /// x_T's values (784).
        noise: Vec<f32>,
        /// x_T as an image (its own range).
        noise_image: Arc<RgbImage>,
        /// The decoding of x_T.
        reconstruction: Arc<RgbImage>,
        /// RMSE between the drawing and its reconstruction (pixels in [−1, 1]).
        rmse: f64,
    },
    /// One point of the reconstruction error against the steps.
    CurvePoint(usize, f64),
    /// "Edit the noise": the decoded frames, and α of each.
    NoiseEdit {
        /// α of each frame.
        alphas: Vec<f64>,
        /// The decoded frames.
        frames: Vec<Arc<RgbImage>>,
    },
    /// The edit is done.
    Done,
}
