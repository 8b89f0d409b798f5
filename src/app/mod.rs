//! The desktop app (eframe/egui). One file per panel; the compute runs on a worker thread.
//!
//! The GPU path: eframe creates the wgpu device with the adapter's own features and limits
//! ([`crate::gpu::burn_friendly_device_descriptor`]), burn computes on that same device, and a
//! compute shader writes tensors into textures that egui draws, with no copy through the CPU.
//! On a CPU-type adapter (lavapipe) or with no adapter, burn computes on flex and the app shows
//! egui `ColorImage`s.

mod compare;
mod forward;
mod interpolate;
mod panel;
mod playground;
mod sampler;
mod sampling;
mod schedule;
mod session;
mod settings;
mod shown;
mod thread;
mod toy_job;
mod widgets;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui_wgpu::{self, RenderState};
use egui::{Color32, Key, RichText, Ui};

pub use compare::{CompareKind, ComparePanel, GRID_STEPS, GUIDANCE_SWEEP, SWEEP_ETAS};
pub use forward::{ForwardPanel, coefficients, filmstrip_timesteps, formula};
pub use interpolate::{InterpolatePanel, Interpolation};
pub use panel::{AppAction, Ctx, GifSource, Panel, PngSource};
pub use playground::{
    EXPORT_PX, FieldKind, PlaygroundPanel, ToyAction, ToyField, ToySettings, ToyView,
};
pub use sampler::{
    GifFrame, GuidanceSettings, LabelPick, MAX_GUIDANCE, ModelSpec, RunSpec, SamplerChoice,
    SamplerCommand, SamplerEvent, SamplerSettings, TrajFrame,
};
pub use sampling::{PRESETS, SamplingPanel};
pub use schedule::{ScheduleDraft, SchedulePanel, TERMINAL_SQRT_ABAR_WARN};
pub use session::{SESSION_VERSION, Session, load_session, save_session};
pub use settings::{
    GifSettings, ImageSource, InterpSettings, SETTINGS_VERSION, Settings, Tab, restore_settings,
};
pub use shown::Shown;
pub use thread::{Job, WorkerThread};
pub use toy_job::{ToyCommand, ToyEvent, ToyModel, epsilon_field};
pub use worker::{
    Command, Compute, Display, Event, Picture, Worker, color_image, spawn_forward_worker,
};

use crate::device::{ComputeDevice, DeviceChoice, select_device};
use crate::diffusion::NoiseSchedule;
use crate::gpu::{TensorToTexture, burn_friendly_device_descriptor, share_with_burn};

/// The window title.
pub const TITLE: &str = "difflab: Diffusion Lab";

/// How the app was started.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Overrides the saved device choice (`--device`).
    pub device: Option<DeviceChoice>,
    /// Ignore saved settings.
    pub fresh: bool,
    /// Where the persisted state lives (`None`: where eframe keeps it for this app). Tests
    /// point it at a file of their own.
    pub state_file: Option<PathBuf>,
}

impl AppOptions {
    /// The state file: the one given, or eframe's for this app id.
    pub fn state_file(&self) -> Option<PathBuf> {
        self.state_file
            .clone()
            .or_else(|| settings::default_state_file(TITLE))
    }
}

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
    /// GIF export progress (frames written, of how many).
    pub export_progress: Option<(usize, usize)>,
    worker: Worker,
    sampler: sampler::SamplerWorker,
    toy: toy_job::ToyWorker,
    next_id: u64,
    render: Option<RenderState>,
    /// Where the work runs, for the status line.
    pub compute_label: String,
    /// Whether pictures are written on the GPU.
    pub gpu_display: bool,
    /// The error banner (a bad file, a failed command); the app keeps running.
    pub banner: Option<String>,
    /// The last "saved …" message.
    pub notice: Option<String>,
    pending: Option<Command>,
}

/// Chooses where to compute, given eframe's wgpu state (if any).
fn choose_compute(choice: DeviceChoice, render: Option<&RenderState>) -> (Compute, Option<String>) {
    let flex = |note: Option<String>| {
        (
            Compute {
                device: ComputeDevice::flex().device,
                display: Display::Cpu,
                label: "flex (CPU) · display: egui ColorImage".into(),
            },
            note,
        )
    };
    if choice == DeviceChoice::Cpu {
        return flex(None);
    }
    let Some(rs) = render else {
        // No wgpu renderer: a separate wgpu device would need a CPU copy to display anyway.
        return match (choice, select_device(choice)) {
            (DeviceChoice::Wgpu, Ok(dev)) => (
                Compute {
                    device: dev.device,
                    display: Display::Cpu,
                    label: format!("{} · display: egui ColorImage", dev.label),
                },
                None,
            ),
            (_, Err(e)) => flex(Some(e.to_string())),
            _ => flex(None),
        };
    };
    let info = rs.adapter.get_info();
    let is_gpu = !matches!(info.device_type, egui_wgpu::wgpu::DeviceType::Cpu);
    if choice == DeviceChoice::Auto && !is_gpu {
        return flex(None);
    }
    match share_with_burn(&rs.instance, &rs.adapter, &rs.device, &rs.queue) {
        Ok(device) => (
            Compute {
                device,
                display: Display::Gpu(TensorToTexture::new(&rs.device, &rs.queue)),
                label: format!(
                    "wgpu: {} ({:?}), shared with egui · display: GPU texture",
                    info.name, info.device_type
                ),
            },
            None,
        ),
        Err(e) => flex(Some(format!("{e}; computing on flex instead"))),
    }
}

impl DiffLabApp {
    /// Restores the settings and starts the worker.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> crate::Result<Self> {
        // The app reads its state file itself (eframe would silently start over on a damaged
        // one): a bad file is kept beside itself and reported once, below.
        let (mut settings, recovered) = if options.fresh {
            (Settings::default(), None)
        } else {
            settings::restore_settings(options.state_file().as_deref())
        };
        if let Some(d) = options.device {
            settings.device = d;
        }
        let render = cc.wgpu_render_state.clone();
        let (compute, note) = choose_compute(settings.device, render.as_ref());
        let gpu_display = matches!(compute.display, Display::Gpu(_));
        let compute_label = compute.label.clone();
        let sampler = sampler::spawn_sampler_worker(compute.device.clone(), cc.egui_ctx.clone())?;
        let toy = toy_job::spawn_toy_worker(compute.device.clone(), cc.egui_ctx.clone())?;
        let worker = spawn_forward_worker(compute, cc.egui_ctx.clone())?;
        apply_theme(&cc.egui_ctx, settings.dark_mode);
        Ok(Self {
            schedule: SchedulePanel::new(&settings),
            settings,
            forward: ForwardPanel::default(),
            sampling: SamplingPanel::default(),
            compare: ComparePanel::default(),
            interpolate: InterpolatePanel::default(),
            playground: PlaygroundPanel::default(),
            export_progress: None,
            worker,
            sampler,
            toy,
            next_id: 1,
            render,
            compute_label,
            gpu_display,
            banner: recovered.or(note),
            notice: None,
            pending: None,
        })
    }

    /// Whether the worker has queued or running work (tests wait on this).
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
            || self.sampler.is_busy()
            || (self.toy.is_busy() && !self.playground.training)
            || self.pending.is_some()
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Starts a sampling run with the current settings (the Run button).
    pub fn start_run(&mut self) {
        let id = self.new_id();
        let spec = self.sampling.spec(&self.settings, id);
        self.sampling.started(id, spec.sampler.steps);
        self.send_sampler(SamplerCommand::Run(spec));
    }

    /// Starts a comparison.
    pub fn start_compare(&mut self, kind: CompareKind) {
        let id = self.new_id();
        let runs = self.compare.runs(kind, &self.settings, id);
        self.compare.started(id, kind, &runs);
        self.send_sampler(SamplerCommand::Compare { id, runs });
    }

    /// Decodes the interpolation for the current settings.
    pub fn start_interpolation(&mut self) {
        let id = self.new_id();
        self.interpolate.id = id;
        self.interpolate.running = true;
        let spec = InterpolatePanel::spec(&self.settings, self.settings.model, id);
        self.send_sampler(SamplerCommand::Interpolate(spec));
    }

    /// Carries out a playground action.
    pub fn toy_action(&mut self, action: ToyAction) {
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

    /// Writes frames as a GIF with the GIF settings (at most `max_frames`, evenly picked).
    pub fn export_gif(&mut self, frames: Vec<sampler::GifFrame>, path: PathBuf) {
        let g = self.settings.gif;
        let picked = crate::data::gif::pick_evenly(&frames, g.max_frames);
        self.export_progress = Some((0, picked.len()));
        self.send_sampler(SamplerCommand::ExportGif {
            frames: picked,
            delay_ms: g.delay_ms,
            scale: g.scale,
            path,
        });
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
        Ok(())
    }

    /// Asks where, then writes `img` as a PNG (atomically).
    fn save_png_dialog(&mut self, img: &image::RgbImage, name: &str) {
        if let Some(path) = rfd::FileDialog::new().set_file_name(name).save_file() {
            match crate::data::image_io::save_png(img, &path) {
                Ok(()) => self.notice = Some(format!("wrote {}", path.display())),
                Err(e) => self.banner = Some(e.to_string()),
            }
        }
    }

    fn send_sampler(&mut self, cmd: SamplerCommand) {
        if self.sampler.send(cmd).is_err() {
            self.banner = Some("the sampler is busy; try again".into());
        }
    }

    /// Opens an image file as the forward panel's source (the dialog and a drop both end here).
    pub fn open_image(&mut self, path: PathBuf) {
        self.settings.source = ImageSource::File(path);
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

    /// Carries out what a panel asked for: the one place the app acts on the panels' behalf.
    pub fn apply(&mut self, action: AppAction, schedule: Option<&NoiseSchedule>) {
        match action {
            AppAction::RunSampling => self.start_run(),
            AppAction::Compare(kind) => self.start_compare(kind),
            AppAction::Decode => self.start_interpolation(),
            AppAction::CancelSampler => self.cancel_sampling(),
            AppAction::Toy(a) => self.toy_action(a),
            AppAction::SwitchTab(tab) => self.settings.tab = tab,
            AppAction::OpenImage => {
                if let Some(path) = rfd::FileDialog::new()
                    .add_filter("Images", &["png", "jpg", "jpeg"])
                    .pick_file()
                {
                    self.open_image(path);
                }
            }
            AppAction::ExportScheduleCsv => self.export_csv(schedule),
            AppAction::ExportFilmstrip => {
                if let Some(req) = self.forward.current_request(&self.settings)
                    && let Some(path) = rfd::FileDialog::new()
                        .set_file_name("filmstrip.png")
                        .save_file()
                {
                    self.send(Command::ExportFilmstrip(req, path));
                }
            }
            AppAction::ExportPng(source) => {
                let (img, name) = match source {
                    PngSource::Sample => (
                        self.sampling
                            .trajectory
                            .get(self.sampling.scrub)
                            .map(sampler::TrajFrame::x),
                        "sample.png",
                    ),
                    PngSource::Compare => (self.compare.export_image(), "compare.png"),
                    PngSource::Interpolation => {
                        (self.interpolate.rows_image(), "interpolation.png")
                    }
                    PngSource::Playground => (
                        self.playground
                            .export_image(&self.settings.toy, schedule, self.settings.t),
                        "playground.png",
                    ),
                };
                match img {
                    Some(img) => self.save_png_dialog(&img, name),
                    None => self.banner = Some("nothing to export yet in this view".into()),
                }
            }
            AppAction::ExportGif(source) => {
                let (frames, name): (Vec<sampler::GifFrame>, _) = match source {
                    GifSource::Trajectory => (self.sampling.gif_frames(), "trajectory.gif"),
                    GifSource::Interpolation => (
                        self.interpolate
                            .result
                            .iter()
                            .flat_map(|r| r.slerp.iter().cloned())
                            .map(sampler::GifFrame::Image)
                            .collect(),
                        "interpolation.gif",
                    ),
                    GifSource::Playground => (
                        self.playground
                            .gif_frames(self.settings.toy.paths, self.settings.gif.max_frames)
                            .into_iter()
                            .map(|img| sampler::GifFrame::Image(Arc::new(img)))
                            .collect(),
                        "playground.gif",
                    ),
                };
                if frames.is_empty() {
                    self.banner = Some("nothing to export yet in this view".into());
                } else if let Some(path) = rfd::FileDialog::new().set_file_name(name).save_file() {
                    self.export_gif(frames, path);
                }
            }
        }
    }

    fn send(&mut self, cmd: Command) {
        if let Err(cmd) = self.worker.send(cmd) {
            self.pending = Some(cmd);
        }
    }

    fn handle_events(&mut self, ctx: &egui::Context) {
        let events = self.worker.poll();
        let mut sink = shown::AppSink {
            ctx,
            render: self.render.as_ref(),
        };
        for e in events {
            match e {
                Event::Forward(frame) => self.forward.on_frame(frame, &mut sink),
                Event::Chain {
                    t,
                    picture,
                    update_ms,
                } => self.forward.on_chain(t, picture, update_ms, &mut sink),
                Event::Filmstrip(strip) => self.forward.on_strip(strip, &mut sink),
                Event::Saved(msg) => self.notice = Some(msg),
                Event::Failed(msg) => self.banner = Some(msg),
            }
        }
        for e in self.sampler.poll() {
            match e {
                SamplerEvent::Step {
                    id,
                    index,
                    total,
                    frame,
                    step_ms,
                } => self.sampling.on_step(id, index, total, frame, step_ms),
                SamplerEvent::Done { id, last, total_ms } => {
                    self.sampling.on_done(id, last, total_ms);
                }
                SamplerEvent::CompareRun {
                    id,
                    index,
                    frames,
                    total_ms,
                } => self.compare.on_run(id, index, frames, total_ms),
                SamplerEvent::CompareStep {
                    id,
                    index,
                    done,
                    total,
                } => self.compare.on_step(id, index, done, total),
                SamplerEvent::Interpolated {
                    id,
                    alphas,
                    slerp,
                    lerp,
                    slerp_norms,
                    lerp_norms,
                } => self.interpolate.on_result(
                    id,
                    Interpolation {
                        alphas,
                        slerp,
                        lerp,
                        slerp_norms,
                        lerp_norms,
                    },
                ),
                SamplerEvent::Progress(done, total) => {
                    if self.export_progress.is_some() {
                        self.export_progress = Some((done, total));
                    }
                }
                SamplerEvent::Cancelled(id) => {
                    self.sampling.on_cancelled(id);
                    self.compare.on_cancelled(id);
                    if id == self.interpolate.id {
                        self.interpolate.running = false;
                    }
                }
                SamplerEvent::Notice(msg) => self.notice = Some(msg),
                SamplerEvent::Saved(msg) => {
                    self.export_progress = None;
                    self.notice = Some(msg);
                }
                SamplerEvent::Failed { id, message } => {
                    // Only the job that failed stops; the banner says which it was.
                    let place = match id {
                        Some(id) if id == self.sampling.run_id && self.sampling.running => {
                            self.sampling.running = false;
                            self.sampling.status = Some(format!("Stopped: {message}"));
                            "Sampling"
                        }
                        Some(id) if id == self.compare.id && self.compare.running => {
                            self.compare.running = false;
                            "Compare"
                        }
                        Some(id) if id == self.interpolate.id && self.interpolate.running => {
                            self.interpolate.running = false;
                            "Interpolate"
                        }
                        Some(_) => "An earlier run",
                        None => {
                            self.export_progress = None;
                            "Export"
                        }
                    };
                    self.banner = Some(format!("{place}: {message}"));
                }
            }
        }
        for e in self.toy.poll() {
            match e {
                ToyEvent::Trained {
                    losses,
                    step,
                    steps_per_s,
                } => {
                    self.playground.losses.extend(losses);
                    self.playground.step = step;
                    self.playground.steps_per_s = steps_per_s;
                }
                ToyEvent::Sampled { t, ddpm, ddim, ms } => {
                    self.playground.frame = t.len() - 1;
                    self.playground.trajectory = Some((t, ddpm, ddim));
                    self.playground.sample_ms = Some(ms);
                    self.settings.toy.view = ToyView::Reverse;
                }
                ToyEvent::Field { t, step, fields } => {
                    self.playground.fields = fields
                        .into_iter()
                        .map(|(model, arrows)| playground::ToyField {
                            t,
                            model,
                            step,
                            arrows,
                        })
                        .collect();
                }
                ToyEvent::Failed(msg) => {
                    self.playground.training = false;
                    self.banner = Some(msg);
                }
            }
        }
        self.sampling.sync_textures(&mut sink);
        self.compare.sync_textures(&mut sink);
        self.interpolate.sync_textures(&mut sink);
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let t_max = self.settings.num_timesteps();
        ctx.input(|i| {
            if i.key_pressed(Key::Space) {
                self.forward.toggle_play(&mut self.settings);
            }
            if i.key_pressed(Key::ArrowRight) {
                self.settings.t = (self.settings.t + 1).min(t_max);
            }
            if i.key_pressed(Key::ArrowLeft) {
                self.settings.t = self.settings.t.saturating_sub(1);
            }
            if i.key_pressed(Key::Home) {
                self.settings.t = 0;
            }
            if i.key_pressed(Key::End) {
                self.settings.t = t_max;
            }
        });
    }

    fn dropped_files(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        if let Some(path) = dropped.first().map(|f| f.path().to_path_buf()) {
            self.open_image(path);
        }
    }

    fn top_bar_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading("difflab");
            ui.separator();
            ui.selectable_value(&mut self.settings.tab, Tab::Forward, "Forward process");
            ui.selectable_value(&mut self.settings.tab, Tab::Schedule, "Schedule");
            ui.selectable_value(&mut self.settings.tab, Tab::Sampling, "Sampling");
            ui.selectable_value(&mut self.settings.tab, Tab::Compare, "Compare");
            ui.selectable_value(&mut self.settings.tab, Tab::Interpolate, "Interpolate");
            ui.selectable_value(&mut self.settings.tab, Tab::Playground, "2-D playground");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Open session…").clicked()
                    && let Some(path) = rfd::FileDialog::new()
                        .add_filter("difflab session", &["json"])
                        .pick_file()
                {
                    let ctx = ui.ctx().clone();
                    match self.open_session(&path, &ctx) {
                        Ok(()) => self.notice = Some(format!("opened {}", path.display())),
                        Err(e) => self.banner = Some(e.to_string()),
                    }
                }
                if ui.button("Save session…").clicked()
                    && let Some(path) = rfd::FileDialog::new()
                        .set_file_name("session.json")
                        .save_file()
                {
                    match self.save_session(&path) {
                        Ok(()) => self.notice = Some(format!("wrote {}", path.display())),
                        Err(e) => self.banner = Some(e.to_string()),
                    }
                }
                if ui.button("Reset to defaults").clicked() {
                    let ctx = ui.ctx().clone();
                    self.reset_to_defaults(&ctx);
                }
                let theme = if self.settings.dark_mode {
                    "Light theme"
                } else {
                    "Dark theme"
                };
                if ui.button(theme).on_hover_text("Switch the theme").clicked() {
                    self.settings.dark_mode = !self.settings.dark_mode;
                    apply_theme(ui.ctx(), self.settings.dark_mode);
                }
            });
        });
        if let Some(msg) = self.banner.clone() {
            egui::Frame::new()
                .fill(Color32::from_rgb(120, 30, 30))
                .inner_margin(6.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(format!("Error: {msg}")).color(Color32::WHITE));
                        if ui.button("Dismiss").clicked() {
                            self.banner = None;
                        }
                    });
                });
        }
    }

    fn status_ui(&self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Computing on {}", self.compute_label)).small());
            if let Some(ms) = self.forward.update_ms {
                ui.separator();
                ui.label(RichText::new(format!("update {ms:.1} ms")).small());
            }
            if let Some(ms) = self.forward.chain_ms {
                ui.separator();
                ui.label(RichText::new(format!("chain walk {ms:.1} ms")).small());
            }
            if self.is_busy() {
                ui.separator();
                ui.spinner();
            }
            if let Some((done, total)) = self.export_progress {
                ui.separator();
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .desired_width(160.0)
                        .text(format!("GIF {done}/{total}")),
                );
            }
            if let Some(n) = &self.notice {
                ui.separator();
                ui.label(RichText::new(n).small());
            }
        });
    }

    fn export_csv(&mut self, schedule: Option<&NoiseSchedule>) {
        let Some(schedule) = schedule else { return };
        let Some(path) = rfd::FileDialog::new()
            .set_file_name(format!("schedule-{}.csv", schedule.config.kind.name()))
            .save_file()
        else {
            return;
        };
        match crate::data::image_io::write_atomic(&path, schedule.to_csv().as_bytes()) {
            Ok(()) => self.notice = Some(format!("wrote {}", path.display())),
            Err(e) => self.banner = Some(e.to_string()),
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
        self.handle_events(ctx);
        self.dropped_files(ctx);
        self.keyboard(ctx);
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

        egui::Panel::top("top").show(ui, |ui| self.top_bar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        // The current panel draws itself; what it asks for comes back as actions.
        let mut ctx = Ctx::new(&mut self.settings, schedule.as_deref());
        let panel: &mut dyn Panel = match ctx.settings.tab {
            Tab::Forward => &mut self.forward,
            Tab::Schedule => &mut self.schedule,
            Tab::Sampling => &mut self.sampling,
            Tab::Compare => &mut self.compare,
            Tab::Interpolate => &mut self.interpolate,
            Tab::Playground => &mut self.playground,
        };
        egui::Panel::left("controls")
            .resizable(false)
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| panel.controls_ui(ui, &mut ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| panel.main_ui(ui, &mut ctx));
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

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

/// How eframe (or a test harness) creates its wgpu device: with the adapter's own features
/// and limits, so burn can share it. `prefer_cpu` picks a CPU-type adapter (lavapipe) first, as
/// tests do so that they render the same everywhere.
pub fn wgpu_setup(prefer_cpu: bool) -> egui_wgpu::WgpuSetup {
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(burn_friendly_device_descriptor);
    if prefer_cpu {
        setup.native_adapter_selector = Some(Arc::new(|adapters, _surface| {
            adapters
                .iter()
                .min_by_key(|a| {
                    let info = a.get_info();
                    let kind = match info.device_type {
                        egui_wgpu::wgpu::DeviceType::Cpu => 0,
                        _ => 1,
                    };
                    let api = match info.backend {
                        egui_wgpu::wgpu::Backend::Vulkan => 0,
                        _ => 1,
                    };
                    (kind, api)
                })
                .cloned()
                .ok_or_else(|| "no wgpu adapter found".to_owned())
        }));
    }
    egui_wgpu::WgpuSetup::CreateNew(setup)
}

/// eframe's options: the wgpu renderer, with a device burn can share.
pub fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(TITLE)
            .with_inner_size([1280.0, 860.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: wgpu_setup(false),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Opens the window.
pub fn run(options: AppOptions) -> crate::Result<()> {
    let mut native = native_options();
    native.persistence_path = options.state_file();
    eframe::run_native(
        TITLE,
        native,
        Box::new(move |cc| Ok(Box::new(DiffLabApp::new(cc, options)?))),
    )
    .map_err(|e| crate::DiffError::Backend(format!("cannot open the window: {e}")))
}
