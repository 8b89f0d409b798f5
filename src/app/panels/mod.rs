//! What every panel is to the app: a [`Panel`] draws itself and says what it wants done as
//! [`AppAction`]s; the shell (`DiffLabApp::apply`) carries the actions out in one place, so no
//! panel reaches into another or into the workers.

pub(super) mod compare;
pub(super) mod edit;
pub(super) mod edit_results;
pub(super) mod edit_views;
pub(super) mod forward;
pub(super) mod interpolate;
pub(super) mod lessons;
pub(super) mod model_picker;
pub(super) mod playground;
pub(super) mod playground_flow;
pub(super) mod playground_view;
pub(super) mod quality;
pub(super) mod sampling;
pub(super) mod schedule;
pub(super) mod toy_style;
pub(super) mod widgets;

use egui::Ui;

pub use super::jobs::compare_kind::{CompareKind, GRID_STEPS, GUIDANCE_SWEEP, SWEEP_ETAS};
use super::lessons::file::{Setup, ShowRun};
use super::settings::ToyModel;
use super::settings::{Settings, Tab};
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
    /// Ask for a U-Net weights file to sample with.
    OpenWeights,
    /// Ask where, then write the schedule's curves as CSV.
    ExportScheduleCsv,
    /// Ask where, then write the forward panel's filmstrip.
    ExportFilmstrip,
    /// Show another panel.
    SwitchTab(Tab),
    /// A lesson's "Show me": set a panel up and switch to it.
    Setup(Setup),
    /// Start an edit of the sketch pad's drawing (the panel's lists are filled in by the app).
    Edit(super::jobs::sampler::EditJob),
    /// Ask for an image file for the sketch pad.
    OpenPadImage,
    /// Start the compare panel's quality-against-NFE comparison.
    Quality,
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
    /// Train diffusion, flow matching and reflow, and compare them.
    Flow,
}

impl From<ShowRun> for AppAction {
    /// The action that starts what a lesson's set-up runs.
    fn from(run: ShowRun) -> Self {
        match run {
            ShowRun::Sampling => AppAction::RunSampling,
            ShowRun::Compare(kind) => AppAction::Compare(kind),
            ShowRun::Interpolation => AppAction::Decode,
            ShowRun::Quality => AppAction::Quality,
            ShowRun::Flow => AppAction::Toy(ToyAction::Flow),
            ShowRun::Edit(mode) => AppAction::Edit(match mode {
                super::settings::EditMode::Sdedit => {
                    super::jobs::sampler::EditJob::Sdedit(Vec::new())
                }
                super::settings::EditMode::Inpaint => super::jobs::sampler::EditJob::Inpaint,
                // The steps are the panel's (set by the lesson).
                super::settings::EditMode::Invert => super::jobs::sampler::EditJob::Invert(0),
            }),
        }
    }
}
