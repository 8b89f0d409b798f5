//! The compare panel: two samplers from the same x_T (and, where both are stochastic, the same
//! per-step noise), scrubbed in lock step on a normalised axis, with the distance between their
//! x̂0; a "steps vs quality" grid; and an η sweep.

use std::sync::Arc;

use egui::{RichText, Ui};
use egui_plot::{Line, Plot, PlotPoints, VLine};
use image::RgbImage;

use super::widgets::{picture, picture_row_ui, sampler_fields_ui, stale_note_ui};
use super::{AppAction, CompareKind, Ctx, Panel, PngSource};
use crate::app::jobs::sampler::{LabelPick, RunSpec, TrajFrame};
use crate::app::settings::{Settings, Tab};
use crate::app::shown::{Shown, TextureSink};
use crate::data::image_io::grid;

/// One finished run of a comparison.
pub struct CompareResult {
    /// Its frames (all for a pair, the last only otherwise).
    pub frames: Vec<TrajFrame>,
    /// Wall time.
    pub total_ms: f64,
    /// What it was.
    pub label: String,
}

/// The panel's state.
#[derive(Default)]
pub struct ComparePanel {
    /// The comparison being shown.
    pub id: u64,
    /// What it is.
    pub kind: Option<CompareKind>,
    /// Whether it is running.
    pub running: bool,
    /// Runs done, of how many.
    pub progress: (usize, usize),
    /// The run in progress: (which, steps done, its N).
    pub step_progress: Option<(usize, usize, usize)>,
    /// Finished runs, in order.
    pub results: Vec<Option<CompareResult>>,
    labels: Vec<String>,
    /// What the comparison being shown was asked to run (the settings may have moved on).
    specs: Vec<RunSpec>,
    /// The lock-step position, 0 (x_T) to 1 (x_0).
    pub position: f64,
    pair_views: [Shown; 4],
    cells: Vec<Shown>,
    shown: Option<(u64, i64, usize)>,
    /// Quality against NFE.
    pub quality: super::quality::QualityView,
    /// Whether the main view shows quality against NFE (else the runs).
    pub show_quality: bool,
}

impl ComparePanel {
    /// The runs of a comparison of `kind` (see [`compare_runs`]).
    pub fn runs(&self, kind: CompareKind, settings: &Settings, id: u64) -> Vec<RunSpec> {
        crate::app::jobs::compare_kind::compare_runs(kind, settings, id)
    }

    /// Whether the comparison shown ran `runs` (ids and unused settings aside).
    pub fn same_runs(&self, runs: &[RunSpec]) -> bool {
        self.specs.len() == runs.len()
            && self.specs.iter().zip(runs).all(|(a, b)| a.same_samples(b))
    }

    /// A comparison started.
    pub fn started(&mut self, id: u64, kind: CompareKind, runs: &[RunSpec]) {
        self.id = id;
        self.kind = Some(kind);
        self.running = true;
        self.progress = (0, runs.len());
        self.step_progress = None;
        self.results = (0..runs.len()).map(|_| None).collect();
        self.specs = runs.to_vec();
        self.labels = runs
            .iter()
            .map(|r| match kind {
                // The digit too: the picker may have moved on since the sweep ran.
                CompareKind::Guidance => r.guidance.describe(),
                _ => r.sampler.describe(),
            })
            .collect();
        self.shown = None;
    }

    /// A step of one of its runs.
    pub fn on_step(&mut self, id: u64, index: usize, done: usize, total: usize) {
        if id == self.id && self.running {
            self.step_progress = Some((index, done, total));
        }
    }

    /// One run finished.
    pub fn on_run(&mut self, id: u64, index: usize, mut frames: Vec<TrajFrame>, total_ms: f64) {
        if id != self.id || index >= self.results.len() {
            return;
        }
        if self.kind != Some(CompareKind::Pair) {
            frames = frames.split_off(frames.len().saturating_sub(1));
        }
        let label = self.labels.get(index).cloned().unwrap_or_default();
        self.results[index] = Some(CompareResult {
            frames,
            total_ms,
            label,
        });
        self.progress.0 = self.results.iter().filter(|r| r.is_some()).count();
        if self.progress.0 == self.results.len() {
            self.running = false;
        }
        self.shown = None;
    }

    /// Stopped early.
    pub fn on_cancelled(&mut self, id: u64) {
        if id == self.id {
            self.running = false;
        }
    }

    /// The frame of `frames` nearest the normalised position p (0 = x_T, 1 = x_0).
    pub fn frame_at(frames: &[TrajFrame], p: f64) -> usize {
        ((frames.len().saturating_sub(1)) as f64 * p).round() as usize
    }

    /// ‖x̂0_A − x̂0_B‖ / √D over the normalised axis, at A's frames.
    pub fn distances(&self) -> Vec<[f64; 2]> {
        let (Some(Some(a)), Some(Some(b))) = (self.results.first(), self.results.get(1)) else {
            return Vec::new();
        };
        let n = a.frames.len().max(2) - 1;
        (0..a.frames.len())
            .map(|i| {
                let p = i as f64 / n as f64;
                let fa = a.frames[i].x0_values();
                let fb = b.frames[Self::frame_at(&b.frames, p)].x0_values();
                let d: f64 = fa
                    .iter()
                    .zip(fb.iter())
                    .map(|(x, y)| f64::from(x - y).powi(2))
                    .sum::<f64>();
                [p, (d / fa.len().max(1) as f64).sqrt()]
            })
            .collect()
    }

    /// Whether the sweep's two η = 0 runs agree bit for bit (`None` until both are in).
    pub fn eta_zero_deterministic(&self) -> Option<bool> {
        if self.kind != Some(CompareKind::Sweep) {
            return None;
        }
        let first = self.results.first()?.as_ref()?;
        let again = self.results.last()?.as_ref()?;
        Some(first.frames.last()?.x0_values() == again.frames.last()?.x0_values())
    }

    /// Uploads what is shown when it changed.
    pub fn sync_textures(&mut self, sink: &mut dyn TextureSink) {
        let key = (
            self.id,
            (self.position * 1e6) as i64,
            self.results.iter().flatten().count(),
        );
        if self.shown == Some(key) {
            return;
        }
        self.shown = Some(key);
        match self.kind {
            Some(CompareKind::Pair) => {
                for (k, r) in self.results.iter().enumerate().take(2) {
                    if let Some(r) = r {
                        let f = &r.frames[Self::frame_at(&r.frames, self.position)];
                        self.pair_views[2 * k].replace(picture(&f.x()), "cmp x", sink);
                        self.pair_views[2 * k + 1].replace(picture(&f.x0()), "cmp x0", sink);
                    }
                }
            }
            Some(_) => {
                let images: Vec<Option<Arc<RgbImage>>> = self
                    .results
                    .iter()
                    .map(|r| {
                        r.as_ref()
                            .and_then(|r| r.frames.last())
                            .map(|f| Arc::new(f.x()))
                    })
                    .collect();
                self.cells.resize_with(images.len(), Shown::default);
                for (cell, img) in self.cells.iter_mut().zip(images) {
                    if let Some(img) = img {
                        cell.replace(picture(&img), "cmp cell", sink);
                    }
                }
            }
            None => {}
        }
    }

    /// What is shown, as one image: A's and B's x_t and x̂0 at the current position, or the
    /// grid's final samples.
    pub fn export_image(&self) -> Option<RgbImage> {
        let done: Vec<&CompareResult> = self.results.iter().flatten().collect();
        match self.kind? {
            CompareKind::Pair => {
                let mut images = Vec::new();
                for r in &done {
                    let f = &r.frames[Self::frame_at(&r.frames, self.position)];
                    images.extend([f.x(), f.x0()]);
                }
                (!images.is_empty()).then(|| grid(&images, images.len(), 4, 2))
            }
            kind => {
                let images: Vec<RgbImage> = done
                    .iter()
                    .filter_map(|r| r.frames.last().map(crate::app::jobs::sampler::TrajFrame::x))
                    .collect();
                (!images.is_empty()).then(|| grid(&images, kind.columns(), 4, 2))
            }
        }
    }

    fn pair_ui(&mut self, ui: &mut Ui) {
        ui.spacing_mut().slider_width = (ui.available_width() - 200.0).max(200.0);
        ui.add(egui::Slider::new(&mut self.position, 0.0..=1.0).text("Progress"))
            .on_hover_text("0 is x_T, 1 is x_0; each run shows its step nearest this fraction");
        let side = ((ui.available_width() - 60.0) / 4.0).clamp(80.0, 260.0);
        let name = |k: usize| {
            self.results.get(k).and_then(|r| r.as_ref()).map_or_else(
                || "running…".into(),
                |r| format!("{} ({:.2} s)", r.label, r.total_ms / 1e3),
            )
        };
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("A: {}", name(0))).strong());
            ui.add_space(side * 2.0 - 100.0);
            ui.label(RichText::new(format!("B: {}", name(1))).strong());
        });
        picture_row_ui(
            ui,
            &[
                ("A: x_t", "A's sample", &self.pair_views[0]),
                (
                    "A: x0_pred",
                    super::sampling::formula::X0,
                    &self.pair_views[1],
                ),
                ("B: x_t", "B's sample", &self.pair_views[2]),
                (
                    "B: x0_pred",
                    super::sampling::formula::X0,
                    &self.pair_views[3],
                ),
            ],
            side,
            &[],
        );
        let d = self.distances();
        if !d.is_empty() {
            ui.label("RMS distance between A's and B's x0_pred (same x_T)");
            let p = self.position;
            Plot::new("compare distance")
                .height(180.0)
                .x_axis_label("progress (0 = x_T, 1 = x_0)")
                .show(ui, |plot| {
                    plot.line(Line::new("|x0_pred_A − x0_pred_B|", PlotPoints::from(d)));
                    plot.vline(VLine::new("position", p));
                });
        }
    }

    fn grid_ui(&mut self, ui: &mut Ui, kind: CompareKind) {
        let cols = kind.columns();
        if let Some(det) = self.eta_zero_deterministic() {
            ui.label(if det {
                "η = 0 is deterministic: the first and the repeated η = 0 runs agree bit for bit."
            } else {
                "The two η = 0 runs differ (they should not)."
            });
        }
        let side = ((ui.available_width() - 40.0) / cols as f32 - 12.0).clamp(64.0, 220.0);
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("cmp grid")
                .spacing([12.0, 8.0])
                .show(ui, |ui| {
                    for (i, cell) in self.cells.iter().enumerate() {
                        ui.vertical(|ui| {
                            let label = self.results[i].as_ref().map_or_else(
                                || format!("{} …", self.labels[i]),
                                |r| format!("{} · {:.2} s", r.label, r.total_ms / 1e3),
                            );
                            ui.label(RichText::new(label).small());
                            // A tall grid (the guidance sweep's row per digit) may grow
                            // downwards instead of shrinking to the column's width.
                            cell.image_in_ui(ui, egui::vec2(side, 3.0 * side));
                        });
                        if (i + 1) % cols == 0 {
                            ui.end_row();
                        }
                    }
                });
        });
    }
}

impl Panel for ComparePanel {
    fn tab(&self) -> Tab {
        Tab::Compare
    }

    /// Controls: A and B, the comparisons to start, Cancel.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        let t_max = settings.schedule.num_train_timesteps;
        for (i, side) in ["A", "B"].into_iter().enumerate() {
            if i == 1 {
                ui.separator();
            }
            ui.heading(side);
            super::model_picker::compare_model_ui(ui, side, settings, i);
            sampler_fields_ui(
                ui,
                &format!("{side} "),
                &mut settings.compare[i],
                t_max,
                true,
            );
        }
        ui.separator();
        ui.label(format!(
            "Seed {} and batch {} (from the sampling panel)",
            settings.sampling.seed, settings.sampling.batch
        ));
        let mut start = None;
        if ui
            .add_enabled(!self.running, egui::Button::new(CompareKind::Pair.button()))
            .clicked()
        {
            start = Some(CompareKind::Pair);
        }
        if ui
            .add_enabled(!self.running, egui::Button::new(CompareKind::Grid.button()))
            .on_hover_text("DDPM and DDIM (η = 0) at 5, 10, 20, 50, 100 and 1000 steps, same seed")
            .clicked()
        {
            start = Some(CompareKind::Grid);
        }
        if ui
            .add_enabled(
                !self.running,
                egui::Button::new(CompareKind::Sweep.button()),
            )
            .on_hover_text(
                "DDIM with η = 0, 0.25, 0.5, 0.75, 1 (the sampling panel's steps), same seed",
            )
            .clicked()
        {
            start = Some(CompareKind::Sweep);
        }
        let off = super::model_picker::no_guidance_reason(settings.sampling.model);
        let conditional = off.is_none();
        let label = match settings.sampling.guidance.label {
            LabelPick::Any => LabelPick::PerRow,
            l => l,
        };
        if ui
            .add_enabled(
                !self.running && conditional,
                egui::Button::new(CompareKind::Guidance.button()),
            )
            .on_hover_text(format!(
                "The sampling panel's sampler at guidance w = 0, 1, 2, 4 and 8 for {}, same x_T. {}",
                label.label(),
                super::sampling::formula::CFG
            ))
            .on_disabled_hover_text(off.unwrap_or_else(|| "A comparison is running.".into()))
            .clicked()
        {
            start = Some(CompareKind::Guidance);
        }
        ui.separator();
        if self
            .quality
            .controls_ui(ui, &mut self.show_quality, self.running)
        {
            ctx.act(AppAction::Quality);
        }
        if ui
            .add_enabled(
                self.running || self.quality.running,
                egui::Button::new("Cancel"),
            )
            .clicked()
        {
            ctx.actions.push(AppAction::CancelSampler);
        }
        if let Some(kind) = start {
            self.show_quality = false;
            ctx.actions.push(AppAction::Compare(kind));
        }
    }

    /// The comparison. Sets `export_png` when asked to export.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        if self.show_quality {
            self.quality.ui(ui);
            return;
        }
        if self.results.iter().any(std::option::Option::is_some)
            && ui.button("Export (PNG)…").clicked()
        {
            ctx.act(AppAction::ExportPng(PngSource::Compare));
        }
        let (done, total) = self.progress;
        if total > 0 && self.running {
            // Within a run too: a 1000-step DDPM run takes a while.
            let (fraction, text) = match self.step_progress {
                Some((run, step, steps)) if steps > 0 => (
                    (done as f32 + step as f32 / steps as f32) / total as f32,
                    format!("run {} of {total} · step {step} of {steps}", run + 1),
                ),
                _ => (done as f32 / total as f32, format!("run {done} of {total}")),
            };
            ui.add(egui::ProgressBar::new(fraction).text(text));
        }
        if let Some(kind) = self.kind
            && !self.same_runs(&self.runs(kind, ctx.settings, 0))
        {
            stale_note_ui(ui, "the last comparison", kind.button());
        }
        match self.kind {
            None => {
                ui.label("Run A and B from the same x_T, then scrub both in lock step.");
            }
            Some(CompareKind::Pair) => self.pair_ui(ui),
            Some(kind) => self.grid_ui(ui, kind),
        }
    }
}
