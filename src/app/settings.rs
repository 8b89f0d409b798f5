//! Everything the app remembers between runs, in one serde struct (eframe persistence).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::device::DeviceChoice;
use crate::diffusion::{BetaSchedule, ScheduleConfig, TimestepSpacing};

/// The panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    /// The forward process q(x_t | x_0).
    Forward,
    /// The schedule curves.
    Schedule,
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

/// The persisted settings. In-flight work never lives here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Which panel is open.
    pub tab: Tab,
    /// Dark or light theme.
    pub dark_mode: bool,
    /// Where the tensors live.
    pub device: DeviceChoice,
    /// The noise schedule every panel uses.
    pub schedule: ScheduleConfig,
    /// Whether a second schedule is overlaid on the curves.
    pub compare_enabled: bool,
    /// The overlaid schedule.
    pub compare_schedule: ScheduleConfig,
    /// The timeline position, in the paper's numbering: 0 is x_0, T is fully noised.
    pub t: usize,
    /// Seed of ε (and of the step-by-step chain's noise).
    pub seed: u64,
    /// Frames in the filmstrip.
    pub filmstrip_frames: usize,
    /// The longest side an image is scaled down to.
    pub working_size: u32,
    /// The forward panel's image.
    pub source: ImageSource,
    /// Timeline playback speed, in timesteps per second.
    pub play_speed: f32,
    /// Sampler steps N, for the markers on the schedule curves.
    pub sampler_steps: usize,
    /// Timestep spacing, for the same markers.
    pub spacing: TimestepSpacing,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tab: Tab::Forward,
            dark_mode: true,
            device: DeviceChoice::Auto,
            schedule: ScheduleConfig::default(),
            compare_enabled: false,
            compare_schedule: ScheduleConfig::new(BetaSchedule::Cosine, 1000),
            t: 250,
            seed: 7,
            filmstrip_frames: 8,
            working_size: 256,
            source: ImageSource::Photo,
            play_speed: 200.0,
            sampler_steps: 20,
            spacing: TimestepSpacing::Leading,
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
        if self.schedule.validate().is_err() {
            self.schedule = ScheduleConfig::default();
        }
        if self.compare_schedule.validate().is_err() {
            self.compare_schedule = ScheduleConfig::new(BetaSchedule::Cosine, 1000);
        }
        self.t = self.t.min(self.num_timesteps());
        self.filmstrip_frames = self.filmstrip_frames.clamp(2, 16);
        self.working_size = self.working_size.clamp(16, 1024);
        self.play_speed = self.play_speed.clamp(1.0, 2000.0);
        self.sampler_steps = self.sampler_steps.clamp(1, self.num_timesteps());
        self
    }
}
