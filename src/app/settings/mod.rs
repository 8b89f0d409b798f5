//! Everything the app remembers between runs, in one serde struct (eframe persistence).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::unet_file::SHIPPED;

use self::sampler::{
    GuidanceSettings, LabelPick, MAX_GUIDANCE, ModelSpec, SamplerChoice, SamplerSettings,
};
use crate::data::toy2d::Toy2d;
use crate::device::DeviceChoice;
use crate::diffusion::{BetaSchedule, ScheduleConfig, TimestepSpacing};

mod edit;
mod lesson;
pub(super) mod sampler;
pub(super) mod session;
mod store;
mod v1;
pub use edit::{EditMode, EditSettings, PAD_PIXELS, PAD_SIDE, PadTool, fit_to_pad};
pub use lesson::{Lang, LessonSettings};
pub use store::{default_state_file, restore_from_storage, restore_settings};
pub use v1::SettingsV1;

/// Which model the playground samples with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ToyModel {
    /// The trained MLP.
    Mlp,
    /// The exact denoiser of the training points: the "perfect model".
    Exact,
}

/// The panels.
/// The format of [`Settings`] this build writes (in the app's persisted state and in session
/// files). A newer one is refused rather than misread.
pub const SETTINGS_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    /// The forward process q(x_t | x_0).
    Forward,
    /// The schedule curves.
    Schedule,
    /// Reverse sampling, step by step.
    Sampling,
    /// Samplers side by side.
    Compare,
    /// Interpolation between two seeds.
    Interpolate,
    /// The 2-D playground.
    Playground,
    /// The guided course.
    Lessons,
    /// Editing a drawing: SDEdit, inpainting, DDIM inversion.
    Edit,
}

/// Where the forward panel's x_0 comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageSource {
    /// The bundled photo (`assets/images/chelsea.png`).
    Photo,
    /// A bundled MNIST digit, by index.
    Mnist(usize),
    /// The user's own PNG or JPEG.
    File(PathBuf),
}

/// The persisted settings, one group per panel (version 2). In-flight work never lives here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The format of this struct ([`SETTINGS_VERSION`]); a version-1 file (one flat struct) is
    /// read through [`SettingsV1`].
    pub version: u32,
    /// Which panel is open.
    pub tab: Tab,
    /// Dark or light theme.
    pub dark_mode: bool,
    /// Where the tensors live.
    pub device: DeviceChoice,
    /// The noise schedule every panel uses.
    pub schedule: ScheduleConfig,
    /// The timeline position, in the paper's numbering: 0 is x_0, T is fully noised (shared by
    /// the forward panel and the playground).
    pub t: usize,
    /// The forward panel.
    pub forward: ForwardSettings,
    /// The schedule panel's overlay and markers.
    pub schedule_view: ScheduleViewSettings,
    /// The sampling panel (its model, seed and batch are also what compare and interpolate use).
    pub sampling: SamplingSettings,
    /// The compare panel's two samplers.
    pub compare: [SamplerSettings; 2],
    /// The compare panel's own model for A and B (`None`: the sampling panel's), so that the
    /// diffusion net and the flow-matching net compare side by side.
    pub compare_models: [Option<ModelSpec>; 2],
    /// The interpolation panel.
    pub interp: InterpSettings,
    /// GIF export.
    pub gif: GifSettings,
    /// The 2-D playground.
    pub toy: ToySettings,
    /// The lessons (which one is open).
    pub lessons: LessonSettings,
    /// The edit panel: the sketch pad's drawing and mask, and the edits' settings.
    pub edit: EditSettings,
    /// A U-Net weights file opened beside the shipped one (read again at start and when a
    /// session opens).
    pub unet_weights: Option<OpenedWeights>,
}

/// A U-Net weights file the student opened: where, and the hash of its bytes when opened (a
/// file changed since is a different model, and the app says so).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenedWeights {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its [`WeightsId`](crate::app::unet_file::WeightsId) when opened.
    pub id: crate::app::unet_file::WeightsId,
}

/// The forward panel's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForwardSettings {
    /// Seed of ε (and of the step-by-step chain's noise).
    pub seed: u64,
    /// Frames in the filmstrip.
    pub filmstrip_frames: usize,
    /// The longest side an image is scaled down to.
    pub working_size: u32,
    /// The image.
    pub source: ImageSource,
    /// Timeline playback speed, in timesteps per second.
    pub play_speed: f32,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        Self {
            seed: 7,
            filmstrip_frames: 8,
            working_size: 256,
            source: ImageSource::Photo,
            play_speed: 200.0,
        }
    }
}

/// The schedule panel's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleViewSettings {
    /// Whether a second schedule is overlaid on the curves.
    pub compare_enabled: bool,
    /// The overlaid schedule.
    pub compare_schedule: ScheduleConfig,
    /// Sampler steps N, for the markers on the curves.
    pub sampler_steps: usize,
    /// Timestep spacing, for the same markers.
    pub spacing: TimestepSpacing,
    /// A solver after DDIM whose model calls the markers show instead (`None`: DDPM/DDIM on
    /// `spacing`).
    #[serde(default)]
    pub solver: Option<crate::diffusion::solvers::SolverKind>,
    /// Karras σ for that solver.
    #[serde(default)]
    pub karras: bool,
}

impl Default for ScheduleViewSettings {
    fn default() -> Self {
        Self {
            compare_enabled: false,
            compare_schedule: ScheduleConfig::new(BetaSchedule::Cosine, 1000),
            sampler_steps: 20,
            spacing: TimestepSpacing::Leading,
            solver: None,
            karras: false,
        }
    }
}

/// The sampling panel's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingSettings {
    /// The sampler.
    pub sampler: SamplerSettings,
    /// The model the sampling panels use.
    pub model: ModelSpec,
    /// Seed of x_T and the per-step noise.
    pub seed: u64,
    /// Samples per run (1 to 64, shown as a grid).
    pub batch: usize,
    /// The digit and guidance scale of class-conditional sampling.
    pub guidance: GuidanceSettings,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        Self {
            sampler: SamplerSettings::default(),
            model: ModelSpec::default(),
            seed: 0,
            batch: 16,
            guidance: GuidanceSettings::default(),
        }
    }
}

/// The interpolation panel's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterpSettings {
    /// Seed of x_T at α = 0.
    pub seed_a: u64,
    /// Seed of x_T at α = 1.
    pub seed_b: u64,
    /// Frames, both ends included.
    pub frames: usize,
    /// DDIM steps.
    pub steps: usize,
    /// The highlighted α.
    pub alpha: f64,
}

impl Default for InterpSettings {
    fn default() -> Self {
        Self {
            seed_a: 1,
            seed_b: 2,
            frames: 9,
            steps: 50,
            alpha: 0.5,
        }
    }
}

/// GIF export settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GifSettings {
    /// At most this many frames (evenly picked from the sequence).
    pub max_frames: usize,
    /// Delay per frame.
    pub delay_ms: u32,
    /// Upscale factor.
    pub scale: u32,
}

impl Default for GifSettings {
    fn default() -> Self {
        Self {
            max_frames: 50,
            delay_ms: 80,
            scale: 4,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            version: SETTINGS_VERSION,
            tab: Tab::Forward,
            dark_mode: true,
            device: DeviceChoice::Auto,
            schedule: ScheduleConfig::default(),
            t: 250,
            forward: ForwardSettings::default(),
            schedule_view: ScheduleViewSettings::default(),
            sampling: SamplingSettings::default(),
            compare: [
                SamplerSettings {
                    sampler: SamplerChoice::DdpmFixedSmall,
                    steps: 100,
                    ..SamplerSettings::default()
                },
                SamplerSettings::default(),
            ],
            compare_models: [None, None],
            interp: InterpSettings::default(),
            gif: GifSettings::default(),
            toy: ToySettings::default(),
            lessons: LessonSettings::default(),
            edit: EditSettings::default(),
            unet_weights: None,
        }
    }
}

impl Settings {
    /// T of the current schedule.
    pub fn num_timesteps(&self) -> usize {
        self.schedule.num_train_timesteps
    }

    /// Clamps values a stale or hand-edited file might have out of range.
    pub fn sanitised(mut self) -> Self {
        // Weights other than the shipped ones only while that file is the one opened.
        let model = &mut self.sampling.model;
        if model.weights != SHIPPED
            && model.weights != super::unet_file::SHIPPED_FLOW
            && self.unet_weights.as_ref().map(|o| o.id) != Some(model.weights)
        {
            model.weights = SHIPPED;
        }
        if self.schedule.validate().is_err() {
            self.schedule = ScheduleConfig::default();
        }
        if self.schedule_view.compare_schedule.validate().is_err() {
            self.schedule_view.compare_schedule = ScheduleConfig::new(BetaSchedule::Cosine, 1000);
        }
        self.t = self.t.min(self.num_timesteps());
        self.forward.filmstrip_frames = self.forward.filmstrip_frames.clamp(2, 16);
        self.forward.working_size = self.forward.working_size.clamp(16, 1024);
        self.forward.play_speed = self.forward.play_speed.clamp(1.0, 2000.0);
        self.schedule_view.sampler_steps = self
            .schedule_view
            .sampler_steps
            .clamp(1, self.num_timesteps());
        let t_max = self.num_timesteps();
        for s in std::iter::once(&mut self.sampling.sampler).chain(self.compare.iter_mut()) {
            s.steps = s.steps.clamp(1, t_max);
            s.eta = if s.eta.is_finite() {
                s.eta.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        self.sampling.batch = self.sampling.batch.clamp(1, 64);
        self.sampling.guidance.scale = if self.sampling.guidance.scale.is_finite() {
            self.sampling.guidance.scale.clamp(0.0, MAX_GUIDANCE)
        } else {
            GuidanceSettings::default().scale
        };
        if let LabelPick::Digit(d) = self.sampling.guidance.label
            && d > 9
        {
            self.sampling.guidance.label = LabelPick::Any;
        }
        self.sampling.model.count = self.sampling.model.count.clamp(1, 10_000);
        self.interp.frames = self.interp.frames.clamp(2, 32);
        self.interp.steps = self.interp.steps.clamp(1, t_max);
        self.interp.alpha = self.interp.alpha.clamp(0.0, 1.0);
        self.gif.max_frames = self.gif.max_frames.clamp(2, 1001);
        self.gif.delay_ms = self.gif.delay_ms.clamp(10, 5000);
        self.gif.scale = self.gif.scale.clamp(1, 16);
        self.toy.size = self.toy.size.clamp(1, 20_000);
        self.toy.samples = self.toy.samples.clamp(1, 10_000);
        self.toy.sampler.steps = self.toy.sampler.steps.clamp(1, t_max);
        self.toy.drawn.truncate(20_000);
        self.toy.flow_steps = self.toy.flow_steps.clamp(100, 50_000);
        self.edit.sanitise(t_max);
        let opened = self.unet_weights.as_ref().map(|o| o.id);
        for m in self.compare_models.iter_mut().flatten() {
            if m.weights != SHIPPED
                && m.weights != super::unet_file::SHIPPED_FLOW
                && opened != Some(m.weights)
            {
                m.weights = SHIPPED;
            }
        }
        self
    }
}

/// How the field's arrows are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    /// −ε̂ (points towards the data), at a fixed scale.
    Eps,
    /// The score −ε̂/√(1−ᾱ_t), scaled so the longest arrows fit a grid cell.
    Score,
}

/// What the plot shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToyView {
    /// q(x_t | x_0) of the data at the timeline's t.
    Forward,
    /// Sampled trajectories.
    Reverse,
    /// The ε̂ field at t.
    Field,
    /// Diffusion, flow matching and reflow side by side.
    Flow,
}

/// The playground's persisted settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToySettings {
    /// The distribution (`None`: the points you drew).
    pub dataset: Option<Toy2d>,
    /// Training points.
    pub size: usize,
    /// Seed of the data, training and sampling.
    pub seed: u64,
    /// Points to sample.
    pub samples: usize,
    /// Steps, η, spacing.
    pub sampler: SamplerSettings,
    /// MLP or exact.
    pub model: ToyModel,
    /// The view.
    pub view: ToyView,
    /// Particles whose paths are drawn.
    pub paths: usize,
    /// Points drawn by hand.
    pub drawn: Vec<[f32; 2]>,
    /// DDPM and DDIM in two plots (else overlaid in one).
    pub side_by_side: bool,
    /// Show the exact denoiser's (true) field beside the MLP's.
    pub exact_field: bool,
    /// −ε̂ or the score.
    pub field_kind: FieldKind,
    /// Training steps of each model in the flow-matching view.
    pub flow_steps: usize,
}

impl Default for ToySettings {
    fn default() -> Self {
        Self {
            dataset: Some(Toy2d::SwissRoll),
            size: 5000,
            seed: 0,
            samples: 2000,
            sampler: SamplerSettings::default(),
            model: ToyModel::Mlp,
            view: ToyView::Forward,
            paths: 20,
            drawn: Vec::new(),
            side_by_side: true,
            exact_field: true,
            field_kind: FieldKind::Eps,
            flow_steps: 1500,
        }
    }
}
