//! What every panel is to the app: a [`Panel`] draws itself and says what it wants done as
//! [`AppAction`]s; the shell (`DiffLabApp::apply`) carries the actions out in one place, so no
//! panel reaches into another or into the workers.

use egui::Ui;

use super::lesson_file::Setup;
use super::settings::{Settings, Tab};
use super::toy_job::ToyModel;
use crate::diffusion::NoiseSchedule;

/// Which picture a PNG export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PngSource {
    /// The sampling panel's x_t at the scrubbed step.
    Sample,
    /// The compare panel's rows.
    Compare,
    /// The interpolation rows.
    Interpolation,
    /// The playground's current view.
    Playground,
}

/// Which frames a GIF export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GifSource {
    /// The sampling run's trajectory.
    Trajectory,
    /// The slerp row of the interpolation.
    Interpolation,
    /// The playground's sampled paths.
    Playground,
}

/// Everything a panel can ask of the app.
#[derive(Clone, Debug, PartialEq)]
pub enum AppAction {
    /// Start a sampling run with the current settings (cancels an older sampling run).
    RunSampling,
    /// Start a comparison of this kind.
    Compare(CompareKind),
    /// Decode the interpolation for the current settings.
    Decode,
    /// Stop the sampler's job in progress (a run, a comparison or a decode).
    CancelSampler,
    /// A playground action (train, pause, sample, field).
    Toy(ToyAction),
    /// Ask where, then write a PNG of this picture.
    ExportPng(PngSource),
    /// Ask where, then write a GIF of these frames.
    ExportGif(GifSource),
    /// Ask for an image file for the forward panel.
    OpenImage,
    /// Ask where, then write the schedule's curves as CSV.
    ExportScheduleCsv,
    /// Ask where, then write the forward panel's filmstrip.
    ExportFilmstrip,
    /// Show another panel.
    SwitchTab(Tab),
    /// A lesson's "Show me": set a panel up and switch to it.
    Setup(Setup),
}

/// What a panel gets while it draws: the persisted settings, the current schedule, and the list
/// its actions go to.
pub struct Ctx<'a> {
    /// The persisted settings (each panel edits its own part).
    pub settings: &'a mut Settings,
    /// The schedule the settings describe (None while it is invalid).
    pub schedule: Option<&'a NoiseSchedule>,
    /// The actions asked for this frame, in order.
    pub actions: Vec<AppAction>,
}

impl<'a> Ctx<'a> {
    /// A context with no actions yet.
    pub fn new(settings: &'a mut Settings, schedule: Option<&'a NoiseSchedule>) -> Self {
        Self {
            settings,
            schedule,
            actions: Vec::new(),
        }
    }

    /// Asks the app to do `action` after this frame's drawing.
    pub fn act(&mut self, action: AppAction) {
        self.actions.push(action);
    }
}

/// A panel of the app: its controls on the left and its main view.
pub trait Panel {
    /// The tab that shows it.
    fn tab(&self) -> Tab;
    /// The controls in the left column.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>);
    /// The main view.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>);
}

/// Step counts of the "steps vs quality" grid.
pub const GRID_STEPS: [usize; 6] = [5, 10, 20, 50, 100, 1000];
/// η values of the sweep.
pub const SWEEP_ETAS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
/// Guidance scales of the guidance sweep.
pub const GUIDANCE_SWEEP: [f32; 5] = [0.0, 1.0, 2.0, 4.0, 8.0];

/// What a comparison was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CompareKind {
    /// A against B, every frame kept.
    Pair,
    /// DDPM and DDIM at each of [`GRID_STEPS`].
    Grid,
    /// DDIM at each of [`SWEEP_ETAS`], plus η = 0 again.
    Sweep,
    /// The sampling panel's sampler at each guidance scale of [`GUIDANCE_SWEEP`].
    Guidance,
}

impl CompareKind {
    /// The compare panel's button that runs it.
    pub fn button(self) -> &'static str {
        match self {
            Self::Pair => "Run A and B",
            Self::Grid => "Steps vs quality grid",
            Self::Sweep => "η sweep",
            Self::Guidance => "Guidance sweep",
        }
    }

    /// Cells per row of the grid view.
    pub fn columns(self) -> usize {
        match self {
            CompareKind::Pair | CompareKind::Grid => 2,
            CompareKind::Sweep => 6,
            CompareKind::Guidance => GUIDANCE_SWEEP.len(),
        }
    }
}

/// What the panel asks of its worker this frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToyAction {
    /// Start or resume training (reset: start over).
    Train(bool),
    /// Pause.
    Pause,
    /// Sample.
    Sample,
    /// Compute the fields of these models at t.
    Field(usize, Vec<ToyModel>),
}
