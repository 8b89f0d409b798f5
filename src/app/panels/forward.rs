//! The forward-process panel: x_0 dissolving into noise along a timeline, one-shot against
//! step by step, a filmstrip and a pixel histogram.

use std::sync::Arc;

use egui::{RichText, Ui};

use super::widgets::{self, framed_image_ui};
use super::{AppAction, Ctx, Panel};
use crate::app::files::load_rgb;
use crate::app::jobs::worker::{ForwardFrame, ForwardRequest, HIST_RANGE, Picture};
use crate::app::settings::{ImageSource, Settings, Tab};
use crate::app::shown::{Shown, TextureSink};
use crate::data::image_io::{ImageArray, decode_rgb};
use crate::data::mnist::{Mnist, SIDE};
use crate::diffusion::NoiseSchedule;
use crate::error::Result;

const PHOTO: &[u8] = include_bytes!("../../../assets/images/chelsea.png");

/// Formula tooltips, shared with the schedule panel.
pub mod formula {
    /// x_t.
    pub const X_T: &str = "x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε,  ε ~ N(0, I)   (Ho et al. 2020, eq. 4)";
    /// The chain.
    pub const CHAIN: &str = "x_t = √(1−β_t)·x_{t−1} + √β_t·z_t, one step at a time (Ho et al. eq. 2). It agrees with \
         the one-shot x_t in distribution, not pixel for pixel (different noise).";
    /// √ᾱ_t.
    pub const SQRT_ABAR: &str = "√ᾱ_t, the signal scale: ᾱ_t = ∏_{s≤t} (1−β_s)";
    /// √(1−ᾱ_t).
    pub const SQRT_ONE_MINUS: &str = "√(1−ᾱ_t), the noise scale";
    /// SNR.
    pub const SNR: &str = "SNR_t = ᾱ_t / (1−ᾱ_t), the signal-to-noise ratio";
    /// β_t.
    pub const BETA: &str =
        "β_t, the variance added at step t: q(x_t|x_{t−1}) = N(√(1−β_t)·x_{t−1}, β_t·I)";
    /// β̃_t.
    pub const POSTERIOR: &str = "β~_t (the paper's β with a tilde) = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t, the variance of q(x_{t−1}|x_t, x_0) (eq. 7)";
    /// log SNR.
    pub const LOG_SNR: &str = "log SNR_t = log(ᾱ_t / (1−ᾱ_t))";
    /// ᾱ_t.
    pub const ABAR: &str = "ᾱ_t = ∏_{s≤t} (1−β_s), the fraction of signal variance left";
}

/// The images the panel can noise.
pub struct ImageLibrary {
    mnist: Option<Arc<Mnist>>,
    next_id: u64,
}

impl Default for ImageLibrary {
    fn default() -> Self {
        Self {
            mnist: Mnist::embedded().ok().map(Arc::new),
            next_id: 1,
        }
    }
}

impl ImageLibrary {
    /// Digits available.
    pub fn mnist_len(&self) -> usize {
        self.mnist.as_ref().map_or(0, |m| m.len())
    }

    /// Loads a source at the working size.
    pub fn load(
        &mut self,
        source: &ImageSource,
        working_size: u32,
    ) -> Result<(u64, Arc<ImageArray>)> {
        let img = match source {
            ImageSource::Photo => decode_rgb(PHOTO, "the bundled photo", working_size)?,
            ImageSource::Mnist(i) => {
                let mnist = self.mnist.as_ref().ok_or_else(|| {
                    crate::DiffError::invalid("the bundled MNIST digits could not be read")
                })?;
                let i = (*i).min(mnist.len().saturating_sub(1));
                ImageArray {
                    data: mnist.image(i),
                    channels: 1,
                    height: SIDE,
                    width: SIDE,
                }
            }
            ImageSource::File(path) => load_rgb(path, working_size)?,
        };
        self.next_id += 1;
        Ok((self.next_id, Arc::new(img)))
    }
}

/// The panel's state (nothing here is persisted; the settings are).
#[derive(Default)]
pub struct ForwardPanel {
    library: ImageLibrary,
    /// The loaded x_0.
    pub image: Option<(u64, Arc<ImageArray>)>,
    /// What `image` was loaded from, at which working size.
    loaded_from: Option<(ImageSource, u32)>,
    /// x_0 as shown.
    pub x0: Shown,
    /// One-shot x_t as shown, and its t.
    pub one_shot: Shown,
    /// The chain's x_t as shown.
    pub chain: Shown,
    /// The filmstrip.
    pub strip: Vec<(usize, Shown)>,
    /// The last histogram of x_t.
    pub histogram: Vec<f32>,
    /// The t the last one-shot frame was computed for.
    pub shown_t: Option<usize>,
    /// The t of the last chain frame.
    pub chain_t: Option<usize>,
    /// Wall time of the last update and of the last chain walk.
    pub update_ms: Option<f64>,
    /// Wall time of the last chain walk.
    pub chain_ms: Option<f64>,
    /// The last request sent.
    pub last_request: Option<ForwardRequestKey>,
    /// Whether the timeline is playing.
    pub playing: bool,
    play_accum: f64,
    seed_text: Option<String>,
}

/// What a request depends on (to send only when something changed).
#[derive(Clone, PartialEq)]
pub struct ForwardRequestKey {
    image_id: u64,
    schedule: crate::diffusion::ScheduleConfig,
    t: usize,
    seed: u64,
    filmstrip: Vec<usize>,
}

impl ForwardRequestKey {
    fn of(req: &ForwardRequest) -> Self {
        Self {
            image_id: req.image_id,
            schedule: req.schedule,
            t: req.t,
            seed: req.seed,
            filmstrip: req.filmstrip.clone(),
        }
    }
}

/// Filmstrip timesteps: K frames evenly spread over 0..=T.
pub fn filmstrip_timesteps(t_max: usize, frames: usize) -> Vec<usize> {
    let k = frames.max(2);
    (0..k)
        .map(|i| ((i as f64) * t_max as f64 / (k - 1) as f64).round() as usize)
        .collect()
}

/// √ᾱ_t, √(1−ᾱ_t) and SNR_t at paper-numbered t (t = 0 is x_0: 1, 0, ∞).
pub fn coefficients(schedule: &NoiseSchedule, t: usize) -> (f64, f64, f64) {
    if t == 0 {
        return (1.0, 0.0, f64::INFINITY);
    }
    let i = (t - 1).min(schedule.num_timesteps() - 1);
    (
        schedule.sqrt_alphas_cumprod[i],
        schedule.sqrt_one_minus_alphas_cumprod[i],
        schedule.snr(i),
    )
}

impl ForwardPanel {
    /// (Re)loads x_0 if the source or working size changed. Errors go to the banner.
    pub fn ensure_image(&mut self, settings: &Settings) -> Result<()> {
        let want = (
            settings.forward.source.clone(),
            settings.forward.working_size,
        );
        if self.loaded_from.as_ref() == Some(&want) && self.image.is_some() {
            return Ok(());
        }
        // Remember the attempt either way, so a bad file is reported once, not every frame.
        self.loaded_from = Some(want);
        let loaded = self
            .library
            .load(&settings.forward.source, settings.forward.working_size)?;
        self.image = Some(loaded);
        Ok(())
    }

    /// The request for the current settings.
    pub fn current_request(&self, settings: &Settings) -> Option<ForwardRequest> {
        let (image_id, image) = self.image.clone()?;
        Some(ForwardRequest {
            image_id,
            image,
            schedule: settings.schedule,
            t: settings.t,
            seed: settings.forward.seed,
            filmstrip: filmstrip_timesteps(
                settings.num_timesteps(),
                settings.forward.filmstrip_frames,
            ),
        })
    }

    /// The request for the current settings, if it differs from the last one sent.
    pub fn request(&self, settings: &Settings) -> Option<ForwardRequest> {
        self.current_request(settings)
            .filter(|req| self.last_request.as_ref() != Some(&ForwardRequestKey::of(req)))
    }

    /// Marks a request as sent.
    pub fn sent(&mut self, req: &ForwardRequest) {
        self.last_request = Some(ForwardRequestKey::of(req));
    }

    /// Takes a one-shot frame from the worker.
    pub fn on_frame(&mut self, frame: ForwardFrame, sink: &mut dyn TextureSink) {
        self.x0.replace(frame.x0, "x0", sink);
        self.one_shot.replace(frame.x_t, "x_t", sink);
        self.histogram = frame.histogram;
        self.shown_t = Some(frame.t);
        self.update_ms = Some(frame.update_ms);
    }

    /// Takes the chain's x_t.
    pub fn on_chain(&mut self, t: usize, picture: Picture, ms: f64, sink: &mut dyn TextureSink) {
        self.chain.replace(picture, "chain", sink);
        self.chain_t = Some(t);
        self.chain_ms = Some(ms);
    }

    /// Takes a new filmstrip.
    pub fn on_strip(&mut self, strip: Vec<(usize, Picture)>, sink: &mut dyn TextureSink) {
        for (_, mut old) in self.strip.drain(..) {
            old.free(sink);
        }
        for (t, p) in strip {
            let mut s = Shown::default();
            s.replace(p, &format!("strip {t}"), sink);
            self.strip.push((t, s));
        }
    }

    /// Advances playback by `dt` seconds. Returns true while playing.
    pub fn advance(&mut self, settings: &mut Settings, dt: f64) -> bool {
        if !self.playing {
            return false;
        }
        self.play_accum += dt * f64::from(settings.forward.play_speed);
        let steps = self.play_accum.floor();
        self.play_accum -= steps;
        let t_max = settings.num_timesteps();
        settings.t = (settings.t + steps as usize).min(t_max);
        if settings.t >= t_max {
            self.playing = false;
        }
        true
    }

    /// Play or pause; playing from the end restarts at 0.
    pub fn toggle_play(&mut self, settings: &mut Settings) {
        self.playing = !self.playing;
        if self.playing && settings.t >= settings.num_timesteps() {
            settings.t = 0;
        }
    }

    fn histogram_ui(&self, ui: &mut Ui) {
        ui.label("Pixel histogram of x_t, over the N(0, 1) density")
            .on_hover_text("As t grows, x_t's pixels approach N(0, 1): the prior the reverse process starts from.");
        super::widgets::normal_histogram_ui(
            ui,
            "histogram",
            "x_t pixels",
            &self.histogram,
            HIST_RANGE,
        );
    }

    fn strip_ui(&self, ui: &mut Ui, settings: &mut Settings) {
        ui.label("Filmstrip: x_t at evenly spaced t, all from the same ε (click to jump)");
        let n = self.strip.len().max(1) as f32;
        // Each frame also takes its highlight margin and the item spacing.
        let side = (ui.available_width() / n - 16.0).clamp(24.0, 150.0);
        // The frame nearest the current t is highlighted.
        let nearest = self
            .strip
            .iter()
            .enumerate()
            .min_by_key(|(_, (t, _))| t.abs_diff(settings.t))
            .map(|(i, _)| i);
        ui.horizontal_wrapped(|ui| {
            for (i, (t, shown)) in self.strip.iter().enumerate() {
                ui.vertical(|ui| {
                    if framed_image_ui(ui, shown, side, Some(i) == nearest).clicked() {
                        settings.t = *t;
                    }
                    ui.label(RichText::new(format!("t={t}")).small());
                });
            }
        });
    }
}

impl Panel for ForwardPanel {
    fn tab(&self) -> Tab {
        Tab::Forward
    }

    /// The controls on the left.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        ui.heading("Image");
        let mut kind = match settings.forward.source {
            ImageSource::Photo => 0,
            ImageSource::Mnist(_) => 1,
            ImageSource::File(_) => 2,
        };
        let before = kind;
        ui.radio_value(&mut kind, 0, "Photo (cat)");
        ui.radio_value(&mut kind, 1, "MNIST digit");
        if let ImageSource::File(p) = &settings.forward.source {
            ui.radio_value(&mut kind, 2, "Your image")
                .on_hover_text(p.display().to_string());
        }
        if kind != before {
            settings.forward.source = match kind {
                0 => ImageSource::Photo,
                _ => ImageSource::Mnist(0),
            };
        }
        if let ImageSource::Mnist(i) = &mut settings.forward.source {
            let max = self.library.mnist_len().saturating_sub(1);
            ui.add(egui::Slider::new(i, 0..=max).text("Digit index"));
        }
        if ui
            .button("Open image…")
            .on_hover_text("A PNG or JPEG of your own (or drop one on the window)")
            .clicked()
        {
            ctx.actions.push(AppAction::OpenImage);
        }
        ui.add(
            egui::Slider::new(&mut settings.forward.working_size, 16..=512)
                .text("Working size")
                .suffix(" px"),
        )
        .on_hover_text("Larger images are scaled down so the longest side is at most this");

        ui.separator();
        ui.heading("Noise");
        ui.horizontal(|ui| {
            let label = ui.label("Seed");
            let text = self
                .seed_text
                .get_or_insert_with(|| settings.forward.seed.to_string());
            let r = ui
                .add(egui::TextEdit::singleline(text).desired_width(90.0))
                .labelled_by(label.id);
            if r.changed()
                && let Ok(s) = text.trim().parse::<u64>()
            {
                settings.forward.seed = s;
            }
            if !r.has_focus() && text.trim().parse::<u64>().ok() != Some(settings.forward.seed) {
                *text = settings.forward.seed.to_string();
            }
        });
        if ui
            .button("New noise")
            .on_hover_text("Draw a new ε (the next seed)")
            .clicked()
        {
            settings.forward.seed = settings.forward.seed.wrapping_add(1);
            self.seed_text = Some(settings.forward.seed.to_string());
        }
        ui.add(
            egui::Slider::new(&mut settings.forward.filmstrip_frames, 2..=16)
                .text("Filmstrip frames"),
        );

        ui.separator();
        ui.heading("Playback");
        ui.horizontal(|ui| {
            let label = if self.playing { "Pause" } else { "Play" };
            if ui.button(label).on_hover_text("Space").clicked() {
                self.toggle_play(settings);
            }
        });
        ui.add(
            egui::Slider::new(&mut settings.forward.play_speed, 10.0..=1000.0)
                .logarithmic(true)
                .text("Speed")
                .suffix(" t/s"),
        );
        ui.separator();
        if ui.button("Export filmstrip (PNG)…").clicked() {
            ctx.actions.push(AppAction::ExportFilmstrip);
        }
    }

    /// The timeline, images, histogram and filmstrip.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        let schedule = ctx.schedule;
        let t_max = settings.num_timesteps();
        ui.horizontal(|ui| {
            ui.spacing_mut().slider_width = (ui.available_width() - 120.0).max(200.0);
            ui.add(egui::Slider::new(&mut settings.t, 0..=t_max).text("t"))
                .on_hover_text(format!(
                    "{}\nt = 0 is x_0; t = T is (almost) pure noise. ←/→ step, Home/End jump.",
                    formula::X_T
                ));
        });
        if let Some(schedule) = schedule {
            let (s, n, snr) = coefficients(schedule, settings.t);
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("√ᾱ_t = {s:.4}")))
                    .on_hover_text(formula::SQRT_ABAR);
                ui.separator();
                ui.label(RichText::new(format!("√(1−ᾱ_t) = {n:.4}")))
                    .on_hover_text(formula::SQRT_ONE_MINUS);
                ui.separator();
                let snr_text = widgets::number_text(snr, 4);
                ui.label(RichText::new(format!("SNR_t = {snr_text}")))
                    .on_hover_text(formula::SNR);
            });
        }
        ui.separator();

        let side = ((ui.available_width() - 40.0) / 3.0).clamp(96.0, 320.0);
        ui.horizontal_top(|ui| {
            self.x0.labelled_ui(ui, "x_0", "The clean image", side);
            self.one_shot.labelled_ui(
                ui,
                &format!("x_t, one shot (t = {})", self.shown_t.unwrap_or(settings.t)),
                formula::X_T,
                side,
            );
            let chain_title = match self.chain_t {
                Some(t) if t == settings.t => format!("x_t, step by step (t = {t})"),
                Some(t) => format!("x_t, step by step (walking… {t})"),
                None => "x_t, step by step".into(),
            };
            self.chain
                .labelled_ui(ui, &chain_title, formula::CHAIN, side);
        });

        ui.separator();
        self.strip_ui(ui, settings);
        ui.separator();
        self.histogram_ui(ui);
    }
}
