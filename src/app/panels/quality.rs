//! The compare panel's "quality against NFE" view: DDIM and the solvers after it at 5, 10, 20
//! and 50 model evaluations from the same x_T, each run's samples judged by the `eval` judge
//! (its mean confidence, and the Fréchet distance of its features to real digits over the real
//! digits' own), with wall times; one line per solver against NFE. A background job.

use egui::{RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::widgets::picture;
use crate::app::jobs::sampler::{
    ModelSpec, QualityPoint, QualitySpec, QualityUpdate, SamplerChoice, SamplerSettings,
};
use crate::app::settings::Settings;
use crate::app::shown::{Shown, TextureSink};
use crate::diffusion::solvers::SolverKind;

/// The model evaluations each solver spends.
pub const QUALITY_NFES: [usize; 4] = [5, 10, 20, 50];

/// The runs compared: DDIM, DPM-Solver++ 2M, Euler, Heun and UniPC (2M), none with Karras σ,
/// on `model` (or the shipped diffusion net when `model` is a flow-matching one), and flow
/// matching's Euler on the shipped flow-matching net (or on `model` when it is one).
pub fn quality_solvers(model: ModelSpec) -> Vec<(SamplerSettings, ModelSpec)> {
    let solver = |kind| SamplerSettings {
        sampler: SamplerChoice::Solver(kind),
        ..SamplerSettings::default()
    };
    let net = |weights| ModelSpec {
        unet: true,
        weights,
        ..ModelSpec::default()
    };
    let (diffusion, flow) = if model.is_flow() {
        (net(crate::app::unet_file::SHIPPED), model)
    } else {
        (model, net(crate::app::unet_file::SHIPPED_FLOW))
    };
    let mut runs: Vec<(SamplerSettings, ModelSpec)> = [
        SamplerSettings::default(),
        solver(SolverKind::DpmSolverPlusPlus),
        solver(SolverKind::Euler),
        solver(SolverKind::Heun),
        solver(SolverKind::UniPc),
    ]
    .into_iter()
    .map(|s| (s, diffusion))
    .collect();
    runs.push((solver(SolverKind::FlowEuler), flow));
    runs
}

/// The view's state (in-flight work, not settings).
#[derive(Default)]
pub struct QualityView {
    /// The comparison shown.
    pub id: u64,
    /// Whether it runs.
    pub running: bool,
    /// The judge's training: batches done, of how many.
    pub judge_progress: Option<(usize, usize)>,
    /// Runs done, of how many.
    pub runs: (usize, usize),
    /// The judged runs so far.
    pub points: Vec<QualityPoint>,
    /// Samples per run.
    pub batch: usize,
    shown: Vec<Shown>,
}

impl QualityView {
    /// The request for the settings: the sampling panel's model and seed.
    pub fn spec(&self, settings: &Settings, id: u64) -> QualitySpec {
        QualitySpec {
            id,
            schedule: settings.schedule,
            seed: settings.sampling.seed,
            batch: self.batch_or_default(),
            solvers: quality_solvers(settings.sampling.model),
            nfes: QUALITY_NFES.to_vec(),
        }
    }

    /// Samples per run (64 unless set).
    pub fn batch_or_default(&self) -> usize {
        if self.batch == 0 {
            64
        } else {
            self.batch.clamp(8, 256)
        }
    }

    /// A comparison was sent.
    pub fn started(&mut self, id: u64) {
        self.id = id;
        self.running = true;
        self.points.clear();
        self.judge_progress = None;
        self.runs = (0, QUALITY_NFES.len() * 6);
    }

    /// What the job reports.
    pub fn on_update(&mut self, id: u64, update: QualityUpdate) {
        if id != self.id {
            return;
        }
        match update {
            QualityUpdate::Judge(done, total) => self.judge_progress = Some((done, total)),
            QualityUpdate::Runs(done, total) => {
                self.judge_progress = None;
                self.runs = (done, total);
            }
            QualityUpdate::Point(p) => self.points.push(p),
            QualityUpdate::Done => self.running = false,
        }
    }

    /// Cancelled or failed.
    pub fn stopped(&mut self, id: u64) {
        if id == self.id {
            self.running = false;
        }
    }

    /// Uploads the new points' samples.
    pub fn sync_textures(&mut self, sink: &mut dyn TextureSink) {
        while self.shown.len() < self.points.len() {
            let mut s = Shown::default();
            s.replace(
                picture(&self.points[self.shown.len()].samples),
                "quality",
                sink,
            );
            self.shown.push(s);
        }
        if self.points.is_empty() && !self.shown.is_empty() {
            for s in &mut self.shown {
                s.free(sink);
            }
            self.shown.clear();
        }
    }

    /// The controls: samples per run, the button (true when pressed), runs or quality shown.
    pub fn controls_ui(&mut self, ui: &mut Ui, show_quality: &mut bool, busy: bool) -> bool {
        ui.heading("Quality against NFE");
        let mut b = self.batch_or_default();
        ui.add(
            egui::Slider::new(&mut b, 8..=256)
                .logarithmic(true)
                .text("Samples per run"),
        )
        .on_hover_text("More samples: a steadier Fréchet ratio, a longer wait");
        self.batch = b;
        let pressed = ui
            .add_enabled(
                !busy && !self.running,
                egui::Button::new("Quality against NFE"),
            )
            .on_hover_text(
                "DDIM, DPM-Solver++ 2M, Euler, Heun and UniPC on the diffusion net, and flow \
                 matching's Euler on the flow-matching net, at 5, 10, 20 and 50 model \
                 evaluations from the same x_T, each run's samples judged (a background job)",
            )
            .clicked();
        ui.horizontal(|ui| {
            ui.selectable_value(show_quality, false, "Show runs");
            ui.selectable_value(show_quality, true, "Show quality");
        });
        pressed
    }

    /// The plots and the table.
    pub fn ui(&self, ui: &mut Ui) {
        if self.running {
            if let Some((done, total)) = self.judge_progress {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .text(format!("training the judge: batch {done} of {total}")),
                );
            } else {
                let (done, total) = self.runs;
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .text(format!("run {} of {total}", (done + 1).min(total))),
                );
            }
        }
        if self.points.is_empty() {
            ui.label(if self.running {
                "The judge trains once (a few seconds), then each solver runs at 5, 10, 20 and 50 \
                 model evaluations from the same x_T."
            } else {
                "Press Quality against NFE: DDIM, DPM-Solver++ 2M, Euler, Heun and UniPC on the \
                 diffusion net, flow matching's Euler on the flow-matching net, at 5, \
                 10, 20 and 50 model evaluations, each judged."
            });
            return;
        }
        let labels: Vec<String> = {
            let mut l: Vec<(usize, String)> = self
                .points
                .iter()
                .map(|p| (p.solver, p.label.clone()))
                .collect();
            l.dedup();
            l.into_iter().map(|(_, s)| s).collect()
        };
        let line = |f: &dyn Fn(&QualityPoint) -> f64, label: &str| -> PlotPoints<'static> {
            self.points
                .iter()
                .filter(|p| p.label == label)
                .map(|p| [(p.nfe as f64).log10(), f(p)])
                .collect()
        };
        let width = ((ui.available_width() - 16.0) / 2.0).max(200.0);
        ui.horizontal(|ui| {
            for (title, id, f) in [
                (
                    "Judge's mean confidence (higher is better)",
                    "quality confidence",
                    &(|p: &QualityPoint| p.confidence) as &dyn Fn(&QualityPoint) -> f64,
                ),
                (
                    "Fréchet ratio (1 is as close as real digits)",
                    "quality frechet",
                    &|p: &QualityPoint| p.frechet_ratio,
                ),
            ] {
                ui.vertical(|ui| {
                    ui.label(RichText::new(title).strong());
                    Plot::new(id)
                        .width(width)
                        .height(200.0)
                        .legend(Legend::default())
                        .x_axis_label("NFE (log10)")
                        .allow_scroll(false)
                        .show(ui, |p| {
                            for l in &labels {
                                p.line(Line::new(l.clone(), line(f, l)));
                                p.points(Points::new(l.clone(), line(f, l)).radius(3.0));
                            }
                        });
                });
            }
        });
        ui.label(
            "From the same x_T (the sampling panel's seed), no digit asked for. NFE: model \
             evaluations, what a run costs (Heun spends two a step, less one).",
        );
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("quality table")
                .striped(true)
                .show(ui, |ui| {
                    ui.label(RichText::new("solver").strong());
                    ui.label(RichText::new("NFE (steps)").strong());
                    ui.label(RichText::new("samples").strong());
                    ui.label(RichText::new("confidence · Fréchet ratio · wall").strong());
                    ui.end_row();
                    for (p, s) in self.points.iter().zip(&self.shown) {
                        ui.label(&p.label);
                        ui.label(format!("{} ({})", p.nfe, p.steps));
                        s.image_in_ui(ui, egui::vec2(8.0 * 30.0, 30.0));
                        ui.label(format!(
                            "{:.3} · {:.2} · {:.0} ms",
                            p.confidence, p.frechet_ratio, p.wall_ms
                        ));
                        ui.end_row();
                    }
                });
        });
    }
}
