//! The interpolation panel: the noises of two seeds blended by slerp and by lerp, each decoded
//! with deterministic DDIM, with ‖x_T‖ along the way. Lerp's norm dips in the middle (a noise
//! the model never saw); slerp's stays flat.

use std::sync::Arc;

use egui::{RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};
use image::RgbImage;

use super::widgets::{framed_image_ui, gif_ui, picture, stale_note_ui};
use super::{AppAction, Ctx, GifSource, Panel, PngSource};
use crate::app::jobs::sampler::{GuidanceSettings, InterpSpec, LabelPick, ModelSpec};
use crate::app::settings::{Settings, Tab};
use crate::app::shown::{Shown, TextureSink};
use crate::data::image_io::grid;

/// A decoded interpolation.
pub struct Interpolation {
    /// α of each frame.
    pub alphas: Vec<f64>,
    /// Slerp frames.
    pub slerp: Vec<Arc<RgbImage>>,
    /// Lerp frames.
    pub lerp: Vec<Arc<RgbImage>>,
    /// ‖x_T‖ along slerp.
    pub slerp_norms: Vec<f64>,
    /// ‖x_T‖ along lerp.
    pub lerp_norms: Vec<f64>,
}

/// The panel's state.
#[derive(Default)]
pub struct InterpolatePanel {
    /// The request shown.
    pub id: u64,
    /// Whether it is decoding.
    pub running: bool,
    /// The result.
    pub result: Option<Interpolation>,
    /// What the decoding being shown was asked for (the settings may have moved on).
    pub shown_spec: Option<InterpSpec>,
    /// What the decoding in progress was asked for.
    pub requested: Option<InterpSpec>,
    /// Whether α moves by itself.
    pub animate: bool,
    rows: [Vec<Shown>; 2],
    uploaded: Option<u64>,
}

impl InterpolatePanel {
    /// The request for the settings.
    pub fn spec(settings: &Settings, model: ModelSpec, id: u64) -> InterpSpec {
        InterpSpec {
            id,
            schedule: settings.schedule,
            model,
            seed_a: settings.interp.seed_a,
            seed_b: settings.interp.seed_b,
            frames: settings.interp.frames,
            steps: settings.interp.steps,
            guidance: settings.sampling.guidance,
        }
    }

    /// The decoded frames arrived.
    pub fn on_result(&mut self, id: u64, result: Interpolation) {
        if id == self.id {
            self.result = Some(result);
            self.shown_spec = self.requested.take();
            self.running = false;
        }
    }

    /// Uploads the rows once per result.
    pub fn sync_textures(&mut self, sink: &mut dyn TextureSink) {
        let Some(r) = &self.result else { return };
        if self.uploaded == Some(self.id) {
            return;
        }
        self.uploaded = Some(self.id);
        for (row, images) in self.rows.iter_mut().zip([&r.slerp, &r.lerp]) {
            for s in row.iter_mut() {
                s.free(sink);
            }
            row.clear();
            for img in images {
                let mut s = Shown::default();
                s.replace(picture(img), "interp", sink);
                row.push(s);
            }
        }
    }

    /// Both rows (slerp above lerp) as one image.
    pub fn rows_image(&self) -> Option<RgbImage> {
        let r = self.result.as_ref()?;
        let all: Vec<RgbImage> = r
            .slerp
            .iter()
            .chain(&r.lerp)
            .map(|i| (**i).clone())
            .collect();
        Some(grid(&all, r.alphas.len(), 2, 2))
    }

    /// Moves α when animating; true while it does.
    pub fn advance(&self, settings: &mut Settings, dt: f64) -> bool {
        if !self.animate || self.result.is_none() {
            return false;
        }
        let a = settings.interp.alpha + dt * 0.4;
        settings.interp.alpha = if a > 1.0 { 0.0 } else { a };
        true
    }
}

/// What decodes the noises, as the sampler's worker picks it: the U-Net guided towards one
/// digit, or without a label (one row per digit has no single label to interpolate with), or
/// the exact denoiser.
pub fn decoder_label(model: ModelSpec, guidance: GuidanceSettings) -> String {
    match guidance.label {
        LabelPick::Digit(d) if model.takes_digits() => {
            format!("{}, digit {d} at w = {}", model.label(), guidance.scale)
        }
        _ if model.unet => format!("{}, no digit", model.label()),
        _ => model.label(),
    }
}

impl Panel for InterpolatePanel {
    fn tab(&self) -> Tab {
        Tab::Interpolate
    }

    /// Controls: the seeds, frames and steps, Decode, the GIF settings.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        let i = &mut settings.interp;
        ui.heading("Seeds");
        ui.add(egui::DragValue::new(&mut i.seed_a).prefix("Seed A "));
        ui.add(egui::DragValue::new(&mut i.seed_b).prefix("Seed B "));
        ui.add(egui::Slider::new(&mut i.frames, 2..=16).text("Frames"));
        let t_max = settings.schedule.num_train_timesteps;
        ui.add(
            egui::Slider::new(&mut i.steps, 1..=t_max)
                .logarithmic(true)
                .text("DDIM steps"),
        );
        ui.checkbox(&mut self.animate, "Animate α");
        ui.label(format!(
            "Decoded by {} (set on the sampling panel)",
            decoder_label(settings.sampling.model, settings.sampling.guidance)
        ));
        if ui
            .add_enabled(!self.running, egui::Button::new("Decode"))
            .clicked()
        {
            ctx.actions.push(AppAction::Decode);
        }
        gif_ui(ui, &mut settings.gif);
    }

    /// The rows and the norms.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        ui.spacing_mut().slider_width = (ui.available_width() - 200.0).max(200.0);
        ui.add(egui::Slider::new(&mut settings.interp.alpha, 0.0..=1.0).text("α"))
            .on_hover_text("x_T(α): slerp = sin((1−α)θ)/sin θ·x_A + sin(αθ)/sin θ·x_B; lerp = (1−α)·x_A + α·x_B");
        let Some(r) = &self.result else {
            ui.label(if self.running {
                "Decoding…"
            } else {
                "Press Decode."
            });
            return;
        };
        if let Some(spec) = &self.shown_spec
            && !spec.same_frames(&Self::spec(settings, settings.sampling.model, spec.id))
        {
            stale_note_ui(
                ui,
                &format!(
                    "the last decoding (seeds {} and {}, {} frames, DDIM {} steps)",
                    spec.seed_a, spec.seed_b, spec.frames, spec.steps
                ),
                "Decode",
            );
        }
        let n = r.alphas.len();
        let pick = ((n - 1) as f64 * settings.interp.alpha).round() as usize;
        let side = (ui.available_width() / n as f32 - 10.0).clamp(24.0, 96.0);
        for (name, row, norms) in [
            ("slerp", &self.rows[0], &r.slerp_norms),
            ("lerp", &self.rows[1], &r.lerp_norms),
        ] {
            ui.label(RichText::new(format!("{name}  (|x_T| at α: {:.1})", norms[pick])).strong());
            ui.horizontal(|ui| {
                for (k, s) in row.iter().enumerate() {
                    framed_image_ui(ui, s, side, k == pick);
                }
            });
        }
        ui.label("Noise norm |x_T| along α");
        let line = |v: &[f64]| -> PlotPoints<'static> {
            r.alphas.iter().zip(v).map(|(a, n)| [*a, *n]).collect()
        };
        let alpha = settings.interp.alpha;
        Plot::new("interp norms")
            .height(180.0)
            .legend(Legend::default())
            .x_axis_label("α")
            .show(ui, |p| {
                p.line(Line::new("slerp", line(&r.slerp_norms)));
                p.line(Line::new("lerp", line(&r.lerp_norms)));
                p.vline(VLine::new("α", alpha));
            });
        ui.horizontal(|ui| {
            if ui.button("Export rows (PNG)…").clicked() {
                ctx.actions
                    .push(AppAction::ExportPng(PngSource::Interpolation));
            }
            if ui.button("Export slerp row (GIF)…").clicked() {
                ctx.actions
                    .push(AppAction::ExportGif(GifSource::Interpolation));
            }
        });
    }
}
