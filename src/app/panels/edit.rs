//! The edit panel: a sketch pad (28×28, drawn with the mouse) whose drawing the model edits.
//! SDEdit noises it to t₀ and denoises it (a strip at t₀ = 200, 400, 600, 800 shows faithfulness
//! giving way to realism); inpainting fills the masked part, the mask outlined in every frame;
//! DDIM inversion runs the ODE backwards to the drawing's noise and decodes it again, with the
//! error against the steps and a blend of two digits' inverted noises.

use std::sync::Arc;

use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, Ui, Vec2};

pub use super::edit_results::{Inpainting, Inversion, Pictures, SdeditRow};
use super::{AppAction, Ctx, Panel};
use crate::app::jobs::sampler::{EditJob, EditPart, EditSpec, ModelSpec};
use crate::app::settings::{EditMode, EditSettings, PAD_PIXELS, PAD_SIDE, PadTool, Settings, Tab};
use crate::app::shown::TextureSink;
use crate::data::mnist::Mnist;

/// The t₀ of SDEdit's strip, at T = 1000 (scaled to the schedule's T).
pub const SDEDIT_STRIP: [usize; 4] = [200, 400, 600, 800];
/// The step counts of the reconstruction error plot (the DDIM paper's Table 2 has 10, 20, 50,
/// 100 and 1000).
pub const INVERSION_STEPS: [usize; 5] = [10, 20, 50, 100, 1000];
/// The DDIM paper's Table 2 (CIFAR-10): reconstruction error at 10, 20, 50, 100, 1000 steps.
pub const DDIM_PAPER_ERRORS: [f64; 5] = [0.014, 0.0065, 0.0023, 0.0009, 0.0001];
/// Frames of "Edit the noise".
pub const NOISE_FRAMES: usize = 8;

/// The panel's state (the results are in-flight work, not settings).
#[derive(Default)]
pub struct EditPanel {
    /// The edit shown or running.
    pub id: u64,
    /// Whether one is running.
    pub running: bool,
    /// Model calls made, of how many.
    pub progress: (usize, usize),
    /// What the running edit computes.
    pub job: Option<EditJob>,
    /// SDEdit's rows: the slider's t₀, then the strip.
    pub sdedit: Vec<SdeditRow>,
    /// The inpainting.
    pub inpaint: Option<Inpainting>,
    /// The inpainting frame shown.
    pub scrub: usize,
    /// The inversion.
    pub inversion: Option<Inversion>,
    /// The reconstruction error against the steps.
    pub curve: Vec<(usize, f64)>,
    /// "Edit the noise": α and the decoded frames.
    pub noise_edit: Option<(Vec<f64>, Pictures)>,
    /// The mask the running inpainting was asked with.
    asked_mask: Vec<u8>,
    /// The last pad position of a drag.
    last_drag: Option<(f32, f32)>,
    mnist: Option<Arc<Mnist>>,
}

impl EditPanel {
    /// The request for `job` with the settings.
    pub fn spec(settings: &Settings, model: ModelSpec, id: u64, job: EditJob) -> EditSpec {
        let e = &settings.edit;
        EditSpec {
            id,
            job,
            schedule: settings.schedule,
            model,
            input: Arc::new(e.input()),
            mask: Arc::new(e.mask_values()),
            sampler: e.sampler,
            guidance: e.guidance,
            seed: e.seed,
            samples: e.samples,
            resample: e.resample,
            jump: e.jump,
        }
    }

    /// SDEdit's t₀: the slider's, then the strip's (scaled to T).
    pub fn sdedit_t0s(settings: &Settings) -> Vec<usize> {
        let t_max = settings.num_timesteps();
        std::iter::once(settings.edit.t0)
            .chain(
                SDEDIT_STRIP
                    .iter()
                    .map(|t| (t * t_max / 1000).clamp(1, t_max - 1)),
            )
            .collect()
    }

    /// An edit was sent: the results of its kind are cleared.
    pub fn started(&mut self, spec: &EditSpec) {
        self.id = spec.id;
        self.running = true;
        self.progress = (0, 0);
        match &spec.job {
            EditJob::Sdedit(_) => self.sdedit.clear(),
            EditJob::Inpaint => {
                self.asked_mask = spec.mask.iter().map(|&m| u8::from(m > 0.5)).collect();
            }
            EditJob::Invert(_) => {}
            EditJob::InvertCurve(_) => self.curve.clear(),
            EditJob::NoiseEdit { .. } => self.noise_edit = None,
        }
        self.job = Some(spec.job.clone());
    }

    /// Progress of the edit.
    pub fn on_progress(&mut self, id: u64, done: usize, total: usize) {
        if id == self.id {
            self.progress = (done, total);
        }
    }

    /// A part of the edit's result.
    pub fn on_part(&mut self, id: u64, part: EditPart) {
        if id != self.id {
            return;
        }
        match part {
            EditPart::SdeditRow {
                t0,
                start_t,
                start,
                results,
                values,
            } => self.sdedit.push(SdeditRow {
                t0,
                start_t,
                start: Pictures::new(vec![start]),
                results: Pictures::new(results),
                values,
            }),
            EditPart::Inpaint {
                labels,
                frames,
                values,
            } => {
                self.scrub = frames.len().saturating_sub(1);
                self.inpaint = Some(Inpainting {
                    labels,
                    frames,
                    values,
                    mask: std::mem::take(&mut self.asked_mask),
                    shown: Pictures::default(),
                    shown_frame: None,
                });
            }
            EditPart::Invert {
                steps,
                noise,
                noise_image,
                reconstruction,
                rmse,
            } => {
                self.inversion = Some(Inversion {
                    steps,
                    noise,
                    pictures: Pictures::new(vec![noise_image, reconstruction]),
                    rmse,
                });
            }
            EditPart::CurvePoint(steps, rmse) => self.curve.push((steps, rmse)),
            EditPart::NoiseEdit { alphas, frames } => {
                self.noise_edit = Some((alphas, Pictures::new(frames)));
            }
            EditPart::Done => {
                self.running = false;
                self.job = None;
            }
        }
    }

    /// The edit was cancelled or failed.
    pub fn stopped(&mut self, id: u64) {
        if id == self.id {
            self.running = false;
            self.job = None;
        }
    }

    /// Uploads what arrived.
    pub fn sync_textures(&mut self, sink: &mut dyn TextureSink) {
        for row in &mut self.sdedit {
            row.start.sync("sdedit", sink);
            row.results.sync("sdedit", sink);
        }
        if let Some(ip) = &mut self.inpaint {
            let k = self.scrub.min(ip.frames.len().saturating_sub(1));
            if ip.shown_frame != Some(k) {
                ip.shown_frame = Some(k);
                ip.shown.images = ip.frames[k].clone();
                ip.shown.uploaded = false;
            }
            ip.shown.sync("inpaint", sink);
        }
        if let Some(inv) = &mut self.inversion {
            inv.pictures.sync("inversion", sink);
        }
        if let Some((_, p)) = &mut self.noise_edit {
            p.sync("noise edit", sink);
        }
    }

    fn mnist(&mut self) -> Option<Arc<Mnist>> {
        if self.mnist.is_none() {
            self.mnist = Mnist::embedded().ok().map(Arc::new);
        }
        self.mnist.clone()
    }

    /// The first MNIST digit of class k, put on the pad.
    pub fn start_from_digit(&mut self, settings: &mut EditSettings) {
        if let Some(m) = self.mnist() {
            settings.start_from_digit(&m);
        }
    }

    /// MNIST digits `a` and `b` (784 values each in [−1, 1]).
    pub fn digits(&mut self, (a, b): (usize, usize)) -> Option<[Vec<f32>; 2]> {
        let m = self.mnist()?;
        let n = m.len();
        Some([m.image(a.min(n - 1)), m.image(b.min(n - 1))])
    }

    /// The pad: drawn on with the mouse; the mask tinted red when it matters.
    fn pad_ui(&mut self, ui: &mut Ui, e: &mut EditSettings, side: f32) {
        let (rect, response) = ui.allocate_exact_size(Vec2::splat(side), Sense::click_and_drag());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Sketch pad"));
        let cell = side / PAD_SIDE as f32;
        let to_pad = |p: Pos2| ((p.x - rect.left()) / cell, (p.y - rect.top()) / cell);
        // While the button is held on the pad: a line from the last position (or from where
        // the press began: egui reports a drag only once the pointer has moved a little).
        if response.is_pointer_button_down_on()
            && let Some(p) = response.interact_pointer_pos()
        {
            let here = to_pad(p);
            let from = self
                .last_drag
                .or_else(|| ui.input(|i| i.pointer.press_origin()).map(to_pad));
            match from {
                Some(a) => e.stroke(a, here),
                None => e.paint(here.0, here.1),
            }
            self.last_drag = Some(here);
        } else {
            self.last_drag = None;
        }
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::BLACK);
        let show_mask =
            e.mode == EditMode::Inpaint || matches!(e.tool, PadTool::Mask | PadTool::Unmask);
        for i in 0..PAD_PIXELS {
            let (row, col) = (i / PAD_SIDE, i % PAD_SIDE);
            let r = Rect::from_min_size(
                rect.min + Vec2::new(col as f32 * cell, row as f32 * cell),
                Vec2::splat(cell),
            );
            let v = e.pad[i];
            if v > 0 {
                painter.rect_filled(r, 0.0, Color32::from_gray(v));
            }
            if show_mask && e.mask[i] > 0 {
                painter.rect_filled(r, 0.0, Color32::from_rgba_unmultiplied(220, 40, 40, 90));
            }
        }
        if show_mask {
            mask_outline(&painter, rect, &e.mask);
        }
        painter.rect_stroke(
            rect,
            0.0,
            Stroke::new(1.0, Color32::GRAY),
            egui::StrokeKind::Outside,
        );
    }

    fn pad_controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let e = &mut ctx.settings.edit;
        ui.heading("Drawing tools");
        ui.horizontal_wrapped(|ui| {
            for tool in PadTool::ALL {
                ui.selectable_value(&mut e.tool, tool, tool.label());
            }
        });
        ui.add(egui::Slider::new(&mut e.brush, 0.5..=4.0).text("Brush"));
        ui.horizontal(|ui| {
            if ui.button("Clear").clicked() {
                e.pad.fill(0);
            }
            if ui.button("Clear mask").clicked() {
                e.mask.fill(0);
            }
        });
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut e.digit).range(0..=9));
            if ui.button("Start from MNIST digit").clicked() {
                self.start_from_digit(e);
            }
        });
        if ui
            .button("Start from my PNG…")
            .on_hover_text(
                "Any picture: fitted into 28×28, dark ink on a light page turned white on black",
            )
            .clicked()
        {
            ctx.act(AppAction::OpenPadImage);
        }
    }
}

/// Red lines along the mask's edges (between a masked pixel and an unmasked one or the border),
/// over a picture of the pad in `rect`.
pub fn mask_outline(painter: &egui::Painter, rect: Rect, mask: &[u8]) {
    let cell = rect.width() / PAD_SIDE as f32;
    let stroke = Stroke::new(2.0, Color32::from_rgb(240, 60, 60));
    let masked = |r: isize, c: isize| {
        (0..PAD_SIDE as isize).contains(&r)
            && (0..PAD_SIDE as isize).contains(&c)
            && mask[r as usize * PAD_SIDE + c as usize] > 0
    };
    let at = |r: usize, c: usize| rect.min + Vec2::new(c as f32 * cell, r as f32 * cell);
    for r in 0..PAD_SIDE {
        for c in 0..PAD_SIDE {
            if !masked(r as isize, c as isize) {
                continue;
            }
            let (ri, ci) = (r as isize, c as isize);
            if !masked(ri - 1, ci) {
                painter.line_segment([at(r, c), at(r, c + 1)], stroke);
            }
            if !masked(ri + 1, ci) {
                painter.line_segment([at(r + 1, c), at(r + 1, c + 1)], stroke);
            }
            if !masked(ri, ci - 1) {
                painter.line_segment([at(r, c), at(r + 1, c)], stroke);
            }
            if !masked(ri, ci + 1) {
                painter.line_segment([at(r, c + 1), at(r + 1, c + 1)], stroke);
            }
        }
    }
}

impl Panel for EditPanel {
    fn tab(&self) -> Tab {
        Tab::Edit
    }

    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        self.pad_controls_ui(ui, ctx);
        ui.separator();
        let t_max = ctx.settings.num_timesteps();
        let takes_digits = ctx.settings.sampling.model.takes_digits();
        let e = &mut ctx.settings.edit;
        ui.heading("Edit");
        ui.horizontal_wrapped(|ui| {
            for mode in EditMode::ALL {
                ui.selectable_value(&mut e.mode, mode, mode.label());
            }
        });
        let mut act = None;
        match e.mode {
            EditMode::Sdedit => {
                ui.add(egui::Slider::new(&mut e.t0, 1..=t_max - 1).text("t₀"))
                    .on_hover_text("How far the drawing is noised: x_t₀ = √ᾱ·x_0 + √(1−ᾱ)·ε");
                super::widgets::edit_sampler_ui(ui, e, t_max);
                super::widgets::edit_guidance_ui(ui, e, takes_digits);
            }
            EditMode::Inpaint => {
                super::widgets::edit_sampler_ui(ui, e, t_max);
                ui.add(egui::Slider::new(&mut e.resample, 1..=10).text("Resampling U"))
                    .on_hover_text("RePaint: each block of steps is run U times, going back up with fresh noise between");
                let steps = e.sampler.steps.max(1);
                e.jump = e.jump.clamp(1, steps);
                ui.add(egui::Slider::new(&mut e.jump, 1..=steps.min(50)).text("Jump length"));
                super::widgets::edit_guidance_ui(ui, e, takes_digits);
            }
            EditMode::Invert => {
                ui.add(
                    egui::Slider::new(&mut e.invert_steps, 1..=t_max)
                        .logarithmic(true)
                        .text("Inversion steps"),
                );
            }
        }
        if e.mode != EditMode::Invert {
            ui.add(egui::DragValue::new(&mut e.seed).prefix("Seed "));
            ui.add(egui::Slider::new(&mut e.samples, 1..=8).text("Results"))
                .on_hover_text("One result per seed: seed, seed + 1, …");
        }
        ui.add_space(6.0);
        ui.add_enabled_ui(!self.running, |ui| match e.mode {
            EditMode::Sdedit => {
                if ui.button("Run SDEdit").clicked() {
                    act = Some(EditJob::Sdedit(Vec::new()));
                }
            }
            EditMode::Inpaint => {
                if ui.button("Inpaint").clicked() {
                    act = Some(EditJob::Inpaint);
                }
            }
            EditMode::Invert => {
                if ui.button("Invert").clicked() {
                    act = Some(EditJob::Invert(e.invert_steps));
                }
                if ui
                    .button("Error against steps")
                    .on_hover_text("Invert and decode at 10, 20, 50, 100 and 1000 steps")
                    .clicked()
                {
                    act = Some(EditJob::InvertCurve(INVERSION_STEPS.to_vec()));
                }
                ui.separator();
                ui.label("Edit the noise: two MNIST digits, by index");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::DragValue::new(&mut e.noise_digits.0)
                            .range(0..=9999)
                            .prefix("A "),
                    );
                    ui.add(
                        egui::DragValue::new(&mut e.noise_digits.1)
                            .range(0..=9999)
                            .prefix("B "),
                    );
                });
                if ui.button("Blend their noises").clicked() {
                    act = Some(EditJob::NoiseEdit {
                        digits: Arc::new([Vec::new(), Vec::new()]),
                        steps: e.invert_steps,
                        frames: NOISE_FRAMES,
                    });
                }
            }
        });
        if self.running {
            let (done, total) = self.progress;
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("{done}/{total} model calls")),
            );
            if ui.button("Cancel").clicked() {
                ctx.act(AppAction::CancelSampler);
            }
        }
        if let Some(job) = act {
            ctx.act(AppAction::Edit(job));
        }
    }

    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let side = (ui.available_height() - 40.0)
            .clamp(168.0, 336.0)
            .min(ui.available_width() * 0.4);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label(RichText::new("Your drawing").strong())
                    .on_hover_text(
                        "Draw with the mouse (the left column picks pen, eraser or mask)",
                    );
                self.pad_ui(ui, &mut ctx.settings.edit, side);
                if ctx.settings.edit.pad.iter().all(|&p| p == 0) {
                    ui.label("Draw a digit here, or start from an MNIST digit.");
                }
            });
            ui.separator();
            ui.vertical(|ui| {
                egui::ScrollArea::vertical().show(ui, |ui| match ctx.settings.edit.mode {
                    EditMode::Sdedit => self.sdedit_ui(ui),
                    EditMode::Inpaint => self.inpaint_ui(ui),
                    EditMode::Invert => self.invert_ui(ui),
                });
            });
        });
    }
}
