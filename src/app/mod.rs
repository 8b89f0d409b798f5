//! The app (eframe/egui), on the desktop and in the page. Grouped by role: `panels` (one file
//! per panel), `jobs` (the compute: a worker thread on the desktop, the frame loop in the page),
//! `settings` and `lessons`; the shell (this file, actions, events, window, web, files) ties
//! them together.
//!
//! The GPU path: eframe creates the wgpu device with the adapter's own features and limits
//! ([`crate::gpu::burn_friendly_device_descriptor`]), burn computes on that same device, and a
//! compute shader writes tensors into textures that egui draws, with no copy through the CPU.
//! On a CPU-type adapter (lavapipe) or with no adapter, burn computes on flex and the app shows
//! egui `ColorImage`s.

mod actions;
mod events;
mod files;
mod fonts;
pub mod help;
mod jobs;
mod lessons;
mod panels;
mod remote;
mod render;
mod settings;
mod shown;
mod top_bar;
pub mod unet_file;
#[cfg(target_arch = "wasm32")]
pub mod web;

/// The page's Web Workers: the kernel helpers and the model workers (none on the desktop).
fn web_workers() -> usize {
    #[cfg(target_arch = "wasm32")]
    return difflab_kernels::helpers::registered_helpers() + jobs::web_models::ready();
    #[cfg(not(target_arch = "wasm32"))]
    0
}
mod window;

use egui::Ui;

pub use fonts::{CJK_FONT, UI_FONT, font_definitions, install_fonts};
pub use jobs::sampler::{
    EditJob, EditPart, EditSpec, GifFrame, GuidanceSettings, LabelPick, MAX_GUIDANCE, ModelSpec,
    QualityPoint, QualitySpec, QualityUpdate, RunSpec, SamplerChoice, SamplerCommand, SamplerEvent,
    SamplerSettings, TrajFrame,
};
pub use jobs::thread::{Drive, Job, RepaintPace, WorkerThread, yield_now};
pub use jobs::toy_job::{ToyCommand, ToyEvent, epsilon_field};
pub use jobs::worker::{
    Command, Compute, Display, Event, Picture, Worker, color_image, spawn_forward_worker,
};
pub use lessons::code_refs::{CodeRef, lookup as lookup_code_ref};
pub use lessons::file::{
    LESSONS, Lesson, LessonHeader, Setup, ShowRun, TryIt, bundled_lessons, parse_lesson,
    unet_table_markdown,
};
pub use panels::compare::ComparePanel;
pub use panels::edit::{DDIM_PAPER_ERRORS, EditPanel, INVERSION_STEPS, SDEDIT_STRIP, mask_outline};
pub use panels::forward::{ForwardPanel, coefficients, filmstrip_timesteps, formula};
pub use panels::interpolate::{InterpolatePanel, Interpolation};
pub use panels::lessons::{
    LessonsPanel, PRESENTER_ZOOM, Words, function_links, lesson_markdown_cache,
    show_lesson_markdown,
};
pub use panels::playground::{EXPORT_PX, PlaygroundPanel, ToyField};
pub use panels::quality::{QUALITY_NFES, QualityView, quality_solvers};
pub use panels::sampling::{PRESETS, SamplingPanel};
pub use panels::schedule::{ScheduleDraft, SchedulePanel, TERMINAL_SQRT_ABAR_WARN};
pub use panels::{
    AppAction, CompareKind, Ctx, GRID_STEPS, GUIDANCE_SWEEP, GifSource, Panel, PngSource,
    SWEEP_ETAS, ToyAction,
};
pub use remote::{Remote, Report, SamplingReport};
use render::RenderState;
pub use settings::ToyModel;
pub use settings::session::{SESSION_VERSION, Session, load_session, save_session};
pub use settings::{
    EditMode, EditSettings, FieldKind, ForwardSettings, GifSettings, ImageSource, InterpSettings,
    Lang, LessonSettings, PAD_PIXELS, PAD_SIDE, PadTool, SETTINGS_VERSION, SamplingSettings,
    ScheduleViewSettings, Settings, SettingsV1, Tab, ToySettings, ToyView, fit_to_pad,
    restore_settings,
};
pub use shown::Shown;
pub use window::AppOptions;
#[cfg(not(target_arch = "wasm32"))]
pub use window::wgpu_setup;
#[cfg(not(target_arch = "wasm32"))]
pub use window::{native_options, run};

/// How long the jobs may compute in one frame when they run on the frame loop (the browser):
/// a 60 Hz frame is 16.7 ms, and egui needs the rest to draw.
pub const FRAME_BUDGET: std::time::Duration = std::time::Duration::from_millis(12);

/// The window title.
pub const TITLE: &str = "difflab: Diffusion Lab";

/// The name of the folder the settings are kept in (eframe's storage folder for this app id).
/// Before 2026-12-06 the title was used, whose colon Windows does not allow in a folder name
/// (the settings were never saved there); [`AppOptions::legacy_state_file`] still reads the
/// old Linux and macOS folder once.
pub const APP_ID: &str = "difflab";

/// The app.
pub struct DiffLabApp {
    /// Persisted settings.
    pub settings: Settings,
    /// The forward-process panel.
    pub forward: ForwardPanel,
    /// The schedule panel.
    pub schedule: SchedulePanel,
    /// The sampling panel.
    pub sampling: SamplingPanel,
    /// The compare panel.
    pub compare: ComparePanel,
    /// The interpolation panel.
    pub interpolate: InterpolatePanel,
    /// The 2-D playground.
    pub playground: PlaygroundPanel,
    /// The edit panel (the sketch pad).
    pub edit: EditPanel,
    /// The lessons.
    pub lessons: LessonsPanel,
    /// GIF export progress (frames written, of how many).
    pub export_progress: Option<(usize, usize)>,
    worker: Worker,
    sampler: jobs::sampler_job::SamplerWorker,
    toy: jobs::toy_job::ToyWorker,
    next_id: u64,
    render: Option<RenderState>,
    /// How often a run repaints the window (slower on a software renderer).
    pace: RepaintPace,
    /// Where the work runs, for the status line.
    pub compute_label: String,
    /// Whether it runs on flex (difflab's CPU kernels).
    pub on_flex: bool,
    /// Whether pictures are written on the GPU.
    pub gpu_display: bool,
    /// The error banner (a bad file, a failed command); the app keeps running.
    pub banner: Option<String>,
    /// The last "saved …" message.
    pub notice: Option<String>,
    pending: Option<Command>,
    /// On the frame loop: how long the jobs computed in each frame since the last Run (ms).
    pub pump_ms: Vec<f32>,
    /// The Help menu's window.
    pub help: help::HelpWindow,
}

impl DiffLabApp {
    /// Restores the settings and starts the worker.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> crate::Result<Self> {
        // The app reads its state file itself (eframe would silently start over on a damaged
        // one): a bad file is kept beside itself and reported once, below.
        let (mut settings, recovered) = match (options.fresh, options.state_file(), cc.storage) {
            (false, Some(file), _) => {
                // A first start under the new folder reads the old one's settings.
                let from = match options.legacy_state_file() {
                    Some(old) if !file.exists() && old.exists() => old,
                    _ => file,
                };
                settings::restore_settings(Some(&from))
            }
            // The browser: eframe's storage (the page's local storage).
            (false, None, Some(storage)) => settings::restore_from_storage(storage),
            // Fresh, or nowhere to read from.
            _ => (Settings::default(), None),
        };
        if let Some(d) = options.device {
            settings.device = d;
        }
        let render = render::render_state(cc);
        let (compute, note) = match &options.gpu_refused {
            Some(why) => (
                window::flex_compute(),
                Some(format!(
                    "The GPU refused the device difflab shares with its renderer ({why}); \
                     computing on the CPU."
                )),
            ),
            None => window::choose_compute(settings.device, render.as_ref()),
        };
        let gpu_display = matches!(compute.display, Display::Gpu(_));
        let compute_label = compute.label.clone();
        let on_flex = difflab_kernels::kernels_apply(&compute.device);
        let pace = window::repaint_pace(render.as_ref(), options.page_draws_in_software);
        // The browser has one thread: there the jobs run on the frame loop (`pump_jobs`), a
        // repaint being a frame of drawing alone, paced as the renderer asks. Native tests of
        // this path pump every frame.
        let drive = if options.on_frames || cfg!(target_arch = "wasm32") {
            Drive::Frames(cfg!(target_arch = "wasm32").then_some(pace))
        } else {
            Drive::Thread(pace)
        };
        let sampler = jobs::sampler_job::spawn_sampler_worker(
            compute.device.clone(),
            cc.egui_ctx.clone(),
            drive,
        )?;
        let small = window::for_small_jobs(compute);
        let toy =
            jobs::toy_job::spawn_toy_worker(small.device.clone(), cc.egui_ctx.clone(), drive)?;
        let worker = spawn_forward_worker(small, cc.egui_ctx.clone(), drive)?;
        apply_theme(&cc.egui_ctx, settings.dark_mode);
        window::pace_style(&cc.egui_ctx, pace);
        install_fonts(&cc.egui_ctx);
        let lessons = LessonsPanel::new(settings.lessons.lang());
        let mut app = Self {
            schedule: SchedulePanel::new(&settings),
            settings,
            forward: ForwardPanel::default(),
            sampling: SamplingPanel::default(),
            compare: ComparePanel::default(),
            interpolate: InterpolatePanel::default(),
            playground: PlaygroundPanel::default(),
            edit: EditPanel::default(),
            lessons,
            export_progress: None,
            worker,
            sampler,
            toy,
            next_id: 1,
            render,
            pace,
            compute_label,
            on_flex,
            gpu_display,
            banner: recovered.or(note),
            notice: None,
            pending: None,
            pump_ms: Vec::new(),
            help: help::HelpWindow::new(options.state_file()),
        };
        // `--weights` first; if it cannot be opened (changed since `main` checked it), the
        // saved file is read again as at any start.
        let opened = options.weights.is_some_and(|path| app.open_weights(path));
        if !opened {
            app.reopen_weights();
        }
        Ok(app)
    }

    /// How often a run repaints the window: slower when a software renderer draws it.
    pub fn repaint_pace(&self) -> RepaintPace {
        self.pace
    }

    /// Whether the worker has queued or running work (tests wait on this).
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
            || self.sampler.is_busy()
            || (self.toy.is_busy() && !self.playground.training)
            || self.pending.is_some()
    }

    /// Whether the jobs run on the frame loop (the browser's way) rather than on threads.
    pub fn jobs_on_frames(&self) -> bool {
        self.worker.on_frame_loop()
    }

    /// On the frame loop: this frame's steps of the jobs, until [`FRAME_BUDGET`] is spent (each
    /// job with work takes at least one step). Returns whether any has more to do.
    pub fn pump_jobs(&mut self) -> bool {
        if !self.jobs_on_frames() {
            return false;
        }
        let started = web_time::Instant::now();
        let left = || FRAME_BUDGET.saturating_sub(started.elapsed());
        let mut more = self.sampler.pump(left());
        more |= self.worker.pump(left());
        more |= self.toy.pump(left());
        if more && !self.sampler.waits_on_browser() && self.pump_ms.len() < 100_000 {
            self.pump_ms.push(started.elapsed().as_secs_f32() * 1e3);
        }
        more
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Starts a sampling run with the current settings (the Run button).
    pub fn start_run(&mut self) {
        self.pump_ms.clear();
        let id = self.new_id();
        let spec = self.sampling.spec(&self.settings, id);
        self.sampling.started(&spec);
        self.send_sampler(SamplerCommand::Run(spec));
    }

    /// Starts a comparison.
    pub fn start_compare(&mut self, kind: CompareKind) {
        let id = self.new_id();
        let runs = self.compare.runs(kind, &self.settings, id);
        self.compare.show_quality = false;
        self.compare.started(id, kind, &runs);
        self.send_sampler(SamplerCommand::Compare { id, runs });
    }

    /// Decodes the interpolation for the current settings.
    pub fn start_interpolation(&mut self) {
        let id = self.new_id();
        self.interpolate.id = id;
        self.interpolate.running = true;
        let spec = InterpolatePanel::spec(&self.settings, self.settings.sampling.model, id);
        self.interpolate.requested = Some(spec.clone());
        self.send_sampler(SamplerCommand::Interpolate(spec));
    }

    /// Carries out a playground action.
    pub fn toy_action(&mut self, action: ToyAction) {
        // Any newer command stops the flow comparison (the playground runs one at a time).
        self.playground.flow.running = action == ToyAction::Flow;
        if action == ToyAction::Flow {
            self.playground.flow.progress = None;
        }
        match action {
            ToyAction::Pause => {
                self.toy.cancel();
                self.playground.training = false;
            }
            action => {
                // Sampling and fields go on training afterwards when it was running.
                let training = matches!(action, ToyAction::Train(_)) || self.playground.training;
                if let ToyAction::Train(true) = action {
                    self.playground.losses.clear();
                    self.playground.step = 0;
                }
                if let Some(cmd) = self.playground.command(&action, &self.settings) {
                    // A new command pauses training; training resumes only when asked.
                    if self.toy.send(cmd).is_err() {
                        self.banner = Some("the playground is busy; try again".into());
                    } else {
                        self.playground.training = training;
                    }
                }
            }
        }
    }

    /// Stops the sampler's work in progress.
    pub fn cancel_sampling(&mut self) {
        self.sampler.cancel();
    }

    /// Saves every setting to a session file.
    pub fn save_session(&mut self, path: &std::path::Path) -> crate::Result<()> {
        save_session(&self.settings, path)
    }

    /// Opens a session file; a bad one leaves everything as it was and shows why.
    pub fn open_session(
        &mut self,
        path: &std::path::Path,
        ctx: &egui::Context,
    ) -> crate::Result<()> {
        let settings = load_session(path)?;
        let device = self.settings.device;
        self.settings = Settings { device, ..settings };
        self.schedule.reset(&self.settings);
        apply_theme(ctx, self.settings.dark_mode);
        self.reopen_weights();
        Ok(())
    }

    fn send_sampler(&mut self, cmd: SamplerCommand) {
        if self.sampler.send(cmd).is_err() {
            self.banner = Some("the sampler is busy; try again".into());
        }
    }

    /// Back to the defaults (keeps the device).
    pub fn reset_to_defaults(&mut self, ctx: &egui::Context) {
        let device = self.settings.device;
        self.settings = Settings {
            device,
            ..Settings::default()
        };
        self.schedule.reset(&self.settings);
        self.forward.playing = false;
        apply_theme(ctx, self.settings.dark_mode);
    }

    fn send(&mut self, cmd: Command) {
        if let Err(cmd) = self.worker.send(cmd) {
            self.pending = Some(cmd);
        }
    }
}

/// GIF export settings.
fn apply_theme(ctx: &egui::Context, dark: bool) {
    ctx.set_theme(if dark {
        egui::Theme::Dark
    } else {
        egui::Theme::Light
    });
}

impl eframe::App for DiffLabApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        #[cfg(target_arch = "wasm32")]
        web::frame(self, ctx);
        // In the page the jobs run between frames (`web::drive_jobs`), so a frame that draws
        // does not also compute; native tests of the web's path drive them from here.
        #[cfg(not(target_arch = "wasm32"))]
        if self.pump_jobs() {
            ctx.request_repaint();
        }
        self.handle_events(ctx);
        self.dropped_files(ctx);
        self.keyboard(ctx);
        // Presenter mode: the whole UI larger (F5 or the lessons panel's toggle).
        let zoom = if self.settings.lessons.presenter {
            panels::lessons::PRESENTER_ZOOM
        } else {
            1.0
        };
        if (ctx.zoom_factor() - zoom).abs() > f32::EPSILON {
            ctx.set_zoom_factor(zoom);
        }
        let dt = f64::from(ctx.input(|i| i.stable_dt));
        if self.forward.advance(&mut self.settings, dt.min(0.1))
            | (self.settings.tab == Tab::Interpolate
                && self.interpolate.advance(&mut self.settings, dt.min(0.1)))
        {
            ctx.request_repaint();
        }
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        if let Err(e) = self.forward.ensure_image(&self.settings) {
            self.banner = Some(e.to_string());
        }
        let schedule = self.schedule.schedule(self.settings.schedule).ok();
        if self.playground.ensure_data(&self.settings.toy) && self.playground.training {
            // New data: pause; the model trains on it after Reset.
            self.apply(AppAction::Toy(ToyAction::Pause), schedule.as_deref());
        }

        self.lessons.ensure_lang(self.settings.lessons.lang());

        egui::Panel::top("top").show(ui, |ui| self.top_bar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        // The current panel draws itself; what it asks for comes back as actions.
        let mut ctx = Ctx::new(&mut self.settings, schedule.as_deref());
        // The open lesson can stay beside the other panels.
        if ctx.settings.lessons.beside && ctx.settings.tab != Tab::Lessons {
            egui::Panel::right("lesson_beside")
                .resizable(true)
                .default_size(360.0)
                .show(ui, |ui| self.lessons.beside_ui(ui, &mut ctx));
        }
        let panel: &mut dyn Panel = match ctx.settings.tab {
            Tab::Forward => &mut self.forward,
            Tab::Schedule => &mut self.schedule,
            Tab::Sampling => &mut self.sampling,
            Tab::Compare => &mut self.compare,
            Tab::Interpolate => &mut self.interpolate,
            Tab::Playground => &mut self.playground,
            Tab::Lessons => &mut self.lessons,
            Tab::Edit => &mut self.edit,
        };
        egui::Panel::left("controls")
            .resizable(false)
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| panel.controls_ui(ui, &mut ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| panel.main_ui(ui, &mut ctx));
        self.help.window_ui(ui.ctx());
        let actions = std::mem::take(&mut ctx.actions);
        for action in actions {
            self.apply(action, schedule.as_deref());
        }

        // Ask the worker for what the settings now show.
        if let Some(cmd) = self.pending.take() {
            self.send(cmd);
        } else if let Some(req) = self.forward.request(&self.settings) {
            self.forward.sent(&req);
            self.send(Command::Forward(req));
        }
    }

    /// For the page's job loop (`web::drive_jobs`, through eframe's `WebRunner::app_mut`).
    #[cfg(target_arch = "wasm32")]
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}
