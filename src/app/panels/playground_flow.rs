//! The playground's "Flow matching" view: diffusion (its PF-ODE sampled by DDIM), flow
//! matching and reflow trained on the same points, each sampled with 1, 2, 5 and 20 Euler steps
//! from the same noise; their 20-step paths side by side with how straight they are; and a grid
//! of points carried from noise to data by each.

use egui::{RichText, Ui};
use egui_plot::{Line, Plot, PlotPoints, Points};

use super::ToyAction;
use super::toy_style::{DATA_RGB, DDIM_RGB, DDPM_RGB, LEARNED_RGB, PLOT_RANGE, c32};
use crate::app::jobs::toy_job::{FLOW_MODELS, FLOW_STEPS, GRID_LINES, GRID_POINTS, ToyFlow};
use crate::app::settings::{ToySettings, ToyView};

/// Each model's colour: diffusion, flow matching, reflow.
const RGB: [[u8; 3]; 3] = [DDIM_RGB, DDPM_RGB, LEARNED_RGB];

/// The flow view's state (in-flight work, not settings).
#[derive(Default)]
pub struct FlowView {
    /// Whether the comparison runs.
    pub running: bool,
    /// What it does, steps done, of how many.
    pub progress: Option<(&'static str, usize, usize)>,
    /// The last result.
    pub result: Option<Box<ToyFlow>>,
    /// The deformed grid's state shown (0: noise, 20: data).
    pub grid_frame: usize,
}

fn cloud(pts: &[[f32; 2]]) -> PlotPoints<'static> {
    pts.iter()
        .map(|q| [f64::from(q[0]), f64::from(q[1])])
        .collect()
}

fn square(id: String, side: f32) -> Plot<'static> {
    let r = f64::from(PLOT_RANGE);
    Plot::new(id)
        .data_aspect(1.0)
        .width(side)
        .height(side)
        .default_x_bounds(-r, r)
        .default_y_bounds(-r, r)
        .show_axes(false)
        .allow_drag(false)
        .allow_scroll(false)
}

impl FlowView {
    /// The controls: training steps and the button; the action asked for.
    pub fn controls_ui(&self, ui: &mut Ui, s: &mut ToySettings) -> Option<ToyAction> {
        ui.heading("Flow matching");
        ui.add(
            egui::Slider::new(&mut s.flow_steps, 100..=20_000)
                .logarithmic(true)
                .text("Training steps"),
        )
        .on_hover_text("Each model's: diffusion, flow matching, and reflow as many again");
        let clicked = ui
            .add_enabled(
                !self.running,
                egui::Button::new("Train and compare flow matching"),
            )
            .on_hover_text(
                "Diffusion, flow matching and reflow on these points, then sampled with 1, 2, 5 \
                 and 20 steps",
            )
            .clicked();
        clicked.then(|| {
            s.view = ToyView::Flow;
            ToyAction::Flow
        })
    }

    /// The view: progress, then the samples, the paths and the grid.
    pub fn ui(&mut self, ui: &mut Ui, data: &[[f32; 2]]) {
        if let Some((phase, done, total)) = self.progress.filter(|_| self.running) {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("{phase}: {done} of {total} steps")),
            );
        }
        let Some(r) = &self.result else {
            ui.label(
                "Press \"Train and compare flow matching\": the MLP learns diffusion's objective \
                 (predict ε) and flow matching's (predict v = ε − x_0 on the straight line \
                 x_σ = (1 − σ)·x_0 + σ·ε) on the same points, then reflow retrains the flow \
                 model on its own (noise, sample) pairs.",
            );
            return;
        };
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.label(
                RichText::new("Samples from the same noise with 1, 2, 5 and 20 steps").strong(),
            );
            let side = ((ui.available_width() - 150.0) / 4.0 - 8.0).clamp(80.0, 220.0);
            ui.horizontal(|ui| {
                ui.add_sized([120.0, 16.0], egui::Label::new(""));
                for steps in FLOW_STEPS {
                    ui.add_sized(
                        [side, 16.0],
                        egui::Label::new(format!("{steps} step{}", if steps == 1 { "" } else { "s" })),
                    );
                }
            });
            for (m, name) in FLOW_MODELS.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.add_sized([120.0, side], egui::Label::new(RichText::new(*name).color(c32(RGB[m]))));
                    for (k, pts) in r.samples[m].iter().enumerate() {
                        square(format!("flow sample {m} {k}"), side).show(ui, |p| {
                            p.points(Points::new("data", cloud(data)).radius(0.8).color(c32(DATA_RGB)));
                            p.points(Points::new(*name, cloud(pts)).radius(1.2).color(c32(RGB[m])));
                        });
                    }
                });
            }
            ui.label(
                "One step: DDIM divides by √ᾱ at pure noise and scatters; flow matching's Euler \
                 step puts every point on the data's mean (v at σ = 1 is ε − E[x_0]); reflow's \
                 paths are nearly straight, so one step already lands on the data.",
            );
            ui.separator();
            ui.label(RichText::new("20-step paths, noise to data").strong());
            let side = ((ui.available_width() - 24.0) / 3.0).clamp(120.0, 320.0);
            ui.horizontal(|ui| {
                for (m, name) in FLOW_MODELS.iter().enumerate() {
                    ui.vertical(|ui| {
                        let s = r.straightness[m]
                            .map_or("—".to_string(), |s| format!("{s:.3}"));
                        ui.label(RichText::new(format!("{name}: length / distance {s}")).color(c32(RGB[m])))
                            .on_hover_text("The paths' total length over the total straight distance between their ends (1 is straight)");
                        square(format!("flow paths {m}"), side).show(ui, |p| {
                            p.points(Points::new("data", cloud(data)).radius(0.8).color(c32(DATA_RGB)));
                            let frames = &r.paths[m];
                            let n = frames.first().map_or(0, Vec::len);
                            for k in 0..n {
                                let path: PlotPoints =
                                    frames.iter().map(|f| [f64::from(f[k][0]), f64::from(f[k][1])]).collect();
                                p.line(Line::new(format!("{name} paths"), path).color(c32(RGB[m])));
                            }
                        });
                    });
                }
            });
            ui.separator();
            ui.label(RichText::new("A grid carried from noise to data").strong());
            let last = r.grid[0].len().saturating_sub(1);
            self.grid_frame = self.grid_frame.min(last);
            ui.add(egui::Slider::new(&mut self.grid_frame, 0..=last).text("Step"))
                .on_hover_text("0: the grid in noise space; 20: where each model carries it");
            ui.horizontal(|ui| {
                for (m, name) in FLOW_MODELS.iter().enumerate() {
                    ui.vertical(|ui| {
                        ui.label(RichText::new(*name).color(c32(RGB[m])));
                        square(format!("flow grid {m}"), side).show(ui, |p| {
                            let Some(pts) = r.grid[m].get(self.grid_frame) else { return };
                            let line = |idx: &mut dyn Iterator<Item = usize>| -> PlotPoints<'static> {
                                idx.map(|i| [f64::from(pts[i][0]), f64::from(pts[i][1])]).collect()
                            };
                            for l in 0..2 * GRID_LINES {
                                let start = l * GRID_POINTS;
                                p.line(Line::new(format!("{name} grid"), line(&mut (start..start + GRID_POINTS))).color(c32(RGB[m])));
                            }
                        });
                    });
                }
            });
            ui.label(format!(
                "Each model trained {} steps (reflow {} more on its pairs), same points and seed; \
                 last losses {:.3}, {:.3}, {:.3}; {:.1} s in all.",
                r.train_steps,
                r.train_steps,
                r.losses[0],
                r.losses[1],
                r.losses[2],
                r.ms / 1e3
            ));
        });
    }
}
