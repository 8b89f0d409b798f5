//! The edit panel's result views: SDEdit's rows and strip, an inpainting's frames with the mask
//! outlined, an inversion's noise, histogram, error against the steps and blended noises.

use egui::{RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::edit::{DDIM_PAPER_ERRORS, EditPanel, INVERSION_STEPS, mask_outline};
use super::widgets::{framed_image_ui, histogram_counts, normal_histogram_ui};

impl EditPanel {
    pub(in crate::app) fn sdedit_ui(&mut self, ui: &mut Ui) {
        if self.sdedit.is_empty() {
            ui.label(if self.running {
                "Running SDEdit…"
            } else {
                "Press Run SDEdit."
            });
            return;
        }
        ui.label(
            "Each row: the drawing noised to t₀ (x_t₀), then the reverse process from there, one \
             result per seed. Small t₀ keeps the drawing; large t₀ keeps only its rough shape.",
        );
        for (i, row) in self.sdedit.iter().enumerate() {
            if i == 1 {
                ui.separator();
                ui.label(
                    RichText::new("The strip: t₀ = 200, 400, 600, 800, from the same noise")
                        .strong(),
                );
            }
            ui.horizontal(|ui| {
                let from = row
                    .start_t
                    .map_or("input kept".to_string(), |t| format!("from t = {t}"));
                ui.label(RichText::new(format!("t₀ = {}\n({from})", row.t0)).monospace())
                    .on_hover_text("SDEdit starts at the sampler's largest timestep ≤ t₀");
                row.start.row_ui(ui, 64.0);
                row.results.row_ui(ui, 64.0);
            });
        }
    }

    pub(in crate::app) fn inpaint_ui(&mut self, ui: &mut Ui) {
        let Some(ip) = &self.inpaint else {
            ui.label(if self.running {
                "Inpainting…"
            } else {
                "Paint a mask (red: the model fills it in), then press Inpaint."
            });
            return;
        };
        let last = ip.frames.len().saturating_sub(1);
        ui.spacing_mut().slider_width = (ui.available_width() - 120.0).clamp(100.0, 500.0);
        ui.add(egui::Slider::new(&mut self.scrub, 0..=last).text("Frame"));
        let k = self.scrub.min(last);
        ui.label(&ip.labels[k]);
        ui.horizontal_wrapped(|ui| {
            for r in ip.shown.row_ui(ui, 112.0) {
                // The image inside the frame: 2 px of margin.
                mask_outline(ui.painter(), r.rect, &ip.mask);
            }
        });
        ui.label(
            "Outside the red outline every frame is the drawing noised to that step (q(x_t | x_0) \
             in closed form); inside, the model's step. The last frame keeps the drawing's \
             pixels exactly.",
        );
    }

    pub(in crate::app) fn invert_ui(&mut self, ui: &mut Ui) {
        match &self.inversion {
            None => {
                ui.label(if self.running {
                    "Inverting…"
                } else {
                    "Press Invert."
                });
            }
            Some(inv) => {
                ui.label(RichText::new(format!("DDIM inversion, {} steps", inv.steps)).strong());
                ui.horizontal(|ui| {
                    ui.vertical(|ui| {
                        ui.label("x_T (its own range)");
                        if let Some(s) = inv.pictures.shown.first() {
                            framed_image_ui(ui, s, 112.0, false);
                        }
                    });
                    ui.vertical(|ui| {
                        ui.label("decoded back");
                        if let Some(s) = inv.pictures.shown.get(1) {
                            framed_image_ui(ui, s, 112.0, false);
                        }
                    });
                    let mean = inv.noise.iter().map(|v| f64::from(*v)).sum::<f64>()
                        / inv.noise.len() as f64;
                    let var = inv
                        .noise
                        .iter()
                        .map(|v| (f64::from(*v) - mean).powi(2))
                        .sum::<f64>()
                        / inv.noise.len() as f64;
                    ui.label(format!(
                        "reconstruction RMSE {:.4}\nx_T: mean {mean:.2}, std {:.2}\n(N(0, 1): mean 0, std 1)",
                        inv.rmse,
                        var.sqrt()
                    ));
                });
                ui.label(
                    "A sampled x_T is white noise, N(0, 1). The inverted one is a noise that \
                     decodes to the drawing, not a typical one: narrower, and often with the \
                     drawing's outline still in it.",
                );
                normal_histogram_ui(
                    ui,
                    "inversion histogram",
                    "x_T pixels",
                    &histogram_counts(&inv.noise, 32, (-4.0, 4.0)),
                    (-4.0, 4.0),
                );
            }
        }
        ui.separator();
        ui.label(RichText::new("Reconstruction error against the steps").strong());
        if self.curve.is_empty() {
            ui.label("Press Error against steps (10 to 1000 steps: the longest takes a while).");
        } else {
            let points: PlotPoints = self
                .curve
                .iter()
                .map(|&(s, e)| [(s as f64).log10(), e])
                .collect();
            let paper: PlotPoints = INVERSION_STEPS
                .iter()
                .zip(DDIM_PAPER_ERRORS)
                .map(|(&s, e)| [(s as f64).log10(), e])
                .collect();
            Plot::new("inversion error")
                .height(180.0)
                .width(ui.available_width().min(640.0))
                .legend(Legend::default())
                .x_axis_label("steps (log10)")
                .y_axis_label("RMSE")
                .allow_scroll(false)
                .show(ui, |p| {
                    p.line(Line::new("this drawing", points));
                    p.points(Points::new("DDIM paper, CIFAR-10 (Table 2)", paper).radius(3.0));
                });
            let table: Vec<String> = self
                .curve
                .iter()
                .map(|(s, e)| format!("{s}: {e:.4}"))
                .collect();
            ui.label(format!("RMSE by steps: {}", table.join(", ")));
        }
        ui.separator();
        ui.label(
            RichText::new("Edit the noise: slerp between two digits' inverted noises").strong(),
        );
        match &self.noise_edit {
            Some((alphas, p)) => {
                ui.horizontal_wrapped(|ui| {
                    for (a, r) in alphas.iter().zip(p.row_ui(ui, 64.0)) {
                        r.on_hover_text(format!("α = {a:.2}"));
                    }
                });
            }
            None => {
                ui.label(
                    "Press Blend their noises: both digits are inverted, their noises blended \
                          by slerp, each blend decoded.",
                );
            }
        }
    }
}
