//! The sampling panel: DDPM or DDIM from noise to an image, streamed step by step, then a
//! scrubber over the whole trajectory with x_t, x̂0, ε̂ and DDIM's three update terms.

use egui::{RichText, Ui};

use super::model_picker::model_ui;
use super::widgets::{gif_ui, picture, picture_row_ui, rule, sampler_fields_ui, stale_note_ui};
use super::{AppAction, Ctx, GifSource, Panel, PngSource};
use crate::app::jobs::sampler::{GifFrame, RunSpec, SamplerChoice, SamplerSettings, TrajFrame};
use crate::app::settings::{Settings, Tab};
use crate::app::shown::{Shown, TextureSink};

/// Formula tooltips of the reverse process.
pub mod formula {
    /// x̂0.
    pub const X0: &str = "x0_pred = (x_t − √(1−ᾱ_t)·ε_pred)/√ᾱ_t, the model's guess of the clean image (clipped to [−1, 1])";
    /// ε̂.
    pub const EPS: &str = "ε_pred = (x_t − √ᾱ_t·x0_pred)/√(1−ᾱ_t), the noise the model sees in x_t (shown in its own range)";
    /// DDIM.
    pub const DDIM: &str = "x_{t−1} = √ᾱ_prev·x0_pred + √(1−ᾱ_prev−σ_t²)·ε_pred + σ_t·z,  σ_t = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev)   (Song et al. eq. 12)";
    /// Classifier-free guidance (the model controls' own constant).
    pub use crate::app::panels::model_picker::CFG;
    /// DDPM.
    pub const DDPM: &str = "x_{t−1} = μ~_t(x_t, x0_pred) + σ_t·z,  σ_t² = β~_t (fixed_small) or β_t (fixed_large)   (Ho et al. Algorithm 2)";
    /// The solvers after DDIM, by kind: the update each model call feeds.
    pub fn solver(kind: crate::diffusion::solvers::SolverKind) -> &'static str {
        use crate::diffusion::solvers::SolverKind as K;
        match kind {
            K::Euler => {
                "σ = √((1−ᾱ)/ᾱ):  x ← x + (σ_next − σ)·(x − x0_pred)/σ   (Euler on the probability-flow ODE; Karras et al. 2022)"
            }
            K::EulerAncestral => {
                "Euler down to σ_down, then + σ_up·z back up to σ_next   (Euler ancestral; σ_up² + σ_down² = σ_next²)"
            }
            K::Heun => {
                "predictor: Euler's step; corrector (the next call): the step again with the mean of both slopes   (Heun; 2 model calls a step)"
            }
            K::DpmSolverPlusPlus | K::SdeDpmSolverPlusPlus => {
                "λ = log(α/σ), h = λ_next − λ:  x ← (σ_next/σ)·x − α_next·(e^{−h} − 1)·D, D from the last one or two x0_pred   (DPM-Solver++ 2M; Lu et al. 2022)"
            }
            K::DpmSolver => {
                "λ = log(α/σ), h = λ_next − λ:  x ← (α_next/α)·x − σ_next·(e^{h} − 1)·ε, from the last one or two ε_pred   (DPM-Solver; Lu et al. 2022)"
            }
            K::UniPc => {
                "DPM-Solver++'s predictor, then a corrector that reuses this call's x0_pred on the previous step   (UniPC bh2; Zhao et al. 2023)"
            }
            K::FlowEuler => {
                "x_σ = (1 − σ)·x_0 + σ·ε, v = ε − x_0:  x ← x + (σ_next − σ)·v   (flow matching's Euler; Lipman et al. 2023)"
            }
        }
    }
}

/// Named starting points.
pub const PRESETS: [(&str, SamplerSettings); 4] = [
    (
        "DDPM 1000 steps",
        SamplerSettings {
            sampler: SamplerChoice::DdpmFixedSmall,
            steps: 1000,
            eta: 0.0,
            spacing: crate::diffusion::TimestepSpacing::Leading,
            order: 2,
            karras: false,
        },
    ),
    (
        "DDIM 50 η=0",
        SamplerSettings {
            sampler: SamplerChoice::Ddim,
            steps: 50,
            eta: 0.0,
            spacing: crate::diffusion::TimestepSpacing::Leading,
            order: 2,
            karras: false,
        },
    ),
    (
        "DDIM 10 η=1",
        SamplerSettings {
            sampler: SamplerChoice::Ddim,
            steps: 10,
            eta: 1.0,
            spacing: crate::diffusion::TimestepSpacing::Leading,
            order: 2,
            karras: false,
        },
    ),
    (
        "DPM++ 2M Karras 10",
        SamplerSettings {
            sampler: SamplerChoice::Solver(
                crate::diffusion::solvers::SolverKind::DpmSolverPlusPlus,
            ),
            steps: 10,
            eta: 0.0,
            spacing: crate::diffusion::TimestepSpacing::Leading,
            order: 2,
            karras: true,
        },
    ),
];

/// The panel's state.
#[derive(Default)]
pub struct SamplingPanel {
    /// The id of the run being shown.
    pub run_id: u64,
    /// Whether a run is streaming.
    pub running: bool,
    /// Steps done and N.
    pub progress: (usize, usize),
    /// Wall time of the last step.
    pub step_ms: Option<f64>,
    /// Wall time of the last finished run.
    pub total_ms: Option<f64>,
    /// The recorded frames: x at each step's input, then the final x_0 (N + 1 when done).
    pub trajectory: Vec<TrajFrame>,
    /// The frame shown.
    pub scrub: usize,
    /// Whether the scrubber follows the newest frame.
    pub follow: bool,
    /// "cancelled at step k of N", etc.
    pub status: Option<String>,
    /// What the run being shown was asked to do (the settings may have moved on since).
    pub run_spec: Option<RunSpec>,
    views: [Shown; 3],
    terms: [Shown; 4],
    guided: [Shown; 2],
    shown: Option<(u64, usize)>,
    last_upload: Option<web_time::Instant>,
    seed_text: Option<String>,
}

/// While a run streams, the live view is refreshed at most this often, so the UI thread leaves
/// the CPU to the sampler (2 cores are common in classrooms).
pub const LIVE_REFRESH_MS: u128 = 100;

impl SamplingPanel {
    /// The run for the current settings.
    pub fn spec(&self, settings: &Settings, id: u64) -> RunSpec {
        RunSpec {
            id,
            schedule: settings.schedule,
            sampler: settings.sampling.sampler,
            model: settings.sampling.model,
            seed: settings.sampling.seed,
            batch: settings.sampling.batch,
            guidance: settings.sampling.guidance,
        }
    }

    /// A run started.
    pub fn started(&mut self, spec: &RunSpec) {
        self.run_id = spec.id;
        self.run_spec = Some(spec.clone());
        self.running = true;
        self.progress = (0, spec.sampler.steps);
        self.trajectory.clear();
        self.scrub = 0;
        self.follow = true;
        self.status = None;
        self.shown = None;
    }

    /// A streamed step arrived.
    pub fn on_step(&mut self, id: u64, index: usize, total: usize, frame: TrajFrame, step_ms: f64) {
        if id != self.run_id {
            return;
        }
        self.trajectory.push(frame);
        self.progress = (index + 1, total);
        self.step_ms = Some(step_ms);
        if self.follow {
            self.scrub = self.trajectory.len() - 1;
        }
    }

    /// The run finished.
    pub fn on_done(&mut self, id: u64, last: TrajFrame, total_ms: f64) {
        if id != self.run_id {
            return;
        }
        self.trajectory.push(last);
        self.running = false;
        self.total_ms = Some(total_ms);
        if self.follow {
            self.scrub = self.trajectory.len() - 1;
        }
    }

    /// The run was cancelled.
    pub fn on_cancelled(&mut self, id: u64) {
        if id == self.run_id && self.running {
            self.running = false;
            self.status = Some(format!(
                "Cancelled at step {} of {}",
                self.progress.0, self.progress.1
            ));
        }
    }

    /// Uploads the scrubbed frame's pictures when it changed.
    pub fn sync_textures(&mut self, sink: &mut dyn TextureSink) {
        let Some(frame) = self.trajectory.get(self.scrub) else {
            return;
        };
        if self.shown == Some((self.run_id, self.scrub)) {
            return;
        }
        if self.running
            && self.follow
            && self
                .last_upload
                .is_some_and(|t| t.elapsed().as_millis() < LIVE_REFRESH_MS)
        {
            return;
        }
        self.last_upload = Some(web_time::Instant::now());
        self.shown = Some((self.run_id, self.scrub));
        self.views[0].replace(picture(&frame.x()), "sample x_t", sink);
        self.views[1].replace(picture(&frame.x0()), "sample x0", sink);
        match frame.eps() {
            Some(e) => self.views[2].replace(picture(&e), "sample eps", sink),
            None => self.views[2].free(sink),
        }
        for (i, shown) in self.terms.iter_mut().enumerate() {
            match frame.term(i) {
                Some(t) => shown.replace(picture(&t), "ddim term", sink),
                None => shown.free(sink),
            }
        }
        for (i, shown) in self.guided.iter_mut().enumerate() {
            match frame.guidance_part(i) {
                Some(t) => shown.replace(picture(&t), "guidance part", sink),
                None => shown.free(sink),
            }
        }
    }

    /// The frames' x_t (for GIF export; images are made on the worker).
    pub fn gif_frames(&self) -> Vec<GifFrame> {
        self.trajectory
            .iter()
            .cloned()
            .map(GifFrame::Step)
            .collect()
    }
}

impl Panel for SamplingPanel {
    fn tab(&self) -> Tab {
        Tab::Sampling
    }

    /// The controls: the model, the sampler, Run and Cancel, the GIF settings.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        ui.heading("Model");
        model_ui(ui, settings, &mut ctx.actions);
        ui.separator();
        ui.heading("Sampler");
        sampler_fields_ui(
            ui,
            "",
            &mut settings.sampling.sampler,
            settings.schedule.num_train_timesteps,
            true,
        );
        ui.horizontal(|ui| {
            let l = ui.label("Seed");
            let text = self
                .seed_text
                .get_or_insert_with(|| settings.sampling.seed.to_string());
            let r = ui
                .add(egui::TextEdit::singleline(text).desired_width(90.0))
                .labelled_by(l.id);
            if r.changed()
                && let Ok(s) = text.trim().parse::<u64>()
            {
                settings.sampling.seed = s;
            }
            if !r.has_focus() && text.trim().parse::<u64>().ok() != Some(settings.sampling.seed) {
                *text = settings.sampling.seed.to_string();
            }
        });
        ui.add(egui::Slider::new(&mut settings.sampling.batch, 1..=64).text("Batch size"));
        ui.separator();
        ui.label("Presets");
        ui.horizontal_wrapped(|ui| {
            for (name, preset) in PRESETS {
                if ui.button(name).clicked() {
                    settings.sampling.sampler = preset;
                    settings.sampling.sampler.steps =
                        preset.steps.min(settings.schedule.num_train_timesteps);
                }
            }
        });
        ui.separator();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!self.running, egui::Button::new("Run"))
                .clicked()
            {
                ctx.actions.push(AppAction::RunSampling);
            }
            if ui
                .add_enabled(self.running, egui::Button::new("Cancel"))
                .clicked()
            {
                ctx.actions.push(AppAction::CancelSampler);
            }
        });
        gif_ui(ui, &mut settings.gif);
    }

    /// Progress, the scrubber and the pictures.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &*ctx.settings;
        let (done, total) = self.progress;
        if total > 0 {
            let text = match (self.running, self.step_ms, self.total_ms) {
                (true, Some(ms), _) => format!("step {done} of {total} · {ms:.1} ms/step"),
                (true, None, _) => format!("step {done} of {total}"),
                (false, _, Some(ms)) if self.status.is_none() => {
                    format!(
                        "{total} steps in {:.2} s ({:.1} ms/step)",
                        ms / 1e3,
                        ms / total.max(1) as f64
                    )
                }
                _ => self.status.clone().unwrap_or_default(),
            };
            ui.add(egui::ProgressBar::new(done as f32 / total as f32).text(text));
        } else {
            ui.label("Press Run to sample from noise. Frames stream in as they are computed.");
        }
        if self.trajectory.is_empty() {
            exports_ui(ui, ctx, false);
            return;
        }
        if let Some(run) = &self.run_spec
            && !run.same_samples(&self.spec(settings, run.id))
        {
            // A changed control: the pictures are still the last run's.
            stale_note_ui(ui, &format!("the last run ({})", run.describe()), "Run");
        }
        let last = self.trajectory.len() - 1;
        ui.horizontal(|ui| {
            ui.spacing_mut().slider_width = (ui.available_width() - 260.0).max(200.0);
            if ui
                .add(egui::Slider::new(&mut self.scrub, 0..=last).text("Step"))
                .on_hover_text("Frame k is x at the input of step k; the last frame is x_0")
                .changed()
            {
                self.follow = self.scrub == last;
            }
            let solver = self.run_spec.as_ref().and_then(|r| r.sampler.solver_spec());
            let t = match (self.trajectory[self.scrub].t, solver) {
                (Some(t), Some(spec)) => {
                    format!("t = {t} · {}", call_stage(spec.kind, self.scrub, last))
                }
                (Some(t), None) => format!("t = {t}"),
                (None, _) => "x_0 (done)".into(),
            };
            ui.label(RichText::new(t).strong());
        });
        let side = ((ui.available_width() - 40.0) / 3.0).clamp(96.0, 300.0);
        let pictures = [
            ("x_t", "The current sample", &self.views[0]),
            ("predicted x_0 (x0_pred)", formula::X0, &self.views[1]),
            ("predicted noise (ε_pred)", formula::EPS, &self.views[2]),
        ];
        // The last frame, x_0, comes after the last model call: it has no ε to show (an empty
        // third picture looked like a failure).
        let shown = if self.trajectory[self.scrub].has_eps {
            &pictures[..]
        } else {
            &pictures[..2]
        };
        picture_row_ui(ui, shown, side, &[]);
        if self.trajectory[self.scrub].has_guidance {
            rule(ui);
            // The run's label and w, not the controls' (they may have moved since).
            let guidance = self
                .run_spec
                .as_ref()
                .map_or(settings.sampling.guidance, |r| r.guidance);
            ui.label(format!(
                "Classifier-free guidance at this step ({})",
                guidance.describe()
            ))
            .on_hover_text(formula::CFG);
            let side = ((ui.available_width() - 120.0) / 4.0).clamp(64.0, 220.0);
            picture_row_ui(
                ui,
                &[
                    (
                        "ε_uncond (no label)",
                        "The unconditional prediction",
                        &self.guided[0],
                    ),
                    (
                        "ε_cond (with the digit)",
                        "The conditional prediction",
                        &self.guided[1],
                    ),
                    ("ε_guided", formula::CFG, &self.views[2]),
                    ("guided x0_pred", formula::X0, &self.views[1]),
                ],
                side,
                &[],
            );
        }
        if self.trajectory[self.scrub].has_terms {
            rule(ui);
            ui.label("DDIM's update, term by term")
                .on_hover_text(formula::DDIM);
            let side = ((ui.available_width() - 120.0) / 4.0).clamp(64.0, 220.0);
            picture_row_ui(
                ui,
                &[
                    (
                        "√ᾱ_prev·x0_pred",
                        "The predicted x_0, scaled to the next noise level",
                        &self.terms[0],
                    ),
                    (
                        "√(1−ᾱ_prev−σ_t²)·ε_pred",
                        "The direction pointing to x_t",
                        &self.terms[1],
                    ),
                    ("σ_t·z", "Fresh noise (zero when η = 0)", &self.terms[2]),
                    ("x_{t−1}", "The sum: the next sample", &self.terms[3]),
                ],
                side,
                &["+", "+", "="],
            );
        } else if let SamplerChoice::Solver(kind) = settings.sampling.sampler.sampler {
            ui.label(RichText::new(formula::solver(kind)).weak());
        } else if settings.sampling.sampler.sampler != SamplerChoice::Ddim {
            ui.label(RichText::new(formula::DDPM).weak());
        }
        exports_ui(ui, ctx, true);
    }
}

/// The export buttons, there before the first run too (off) and under an id of their own, so
/// that they stay the same widgets whatever the run shows above them (egui draws a frame twice
/// when a button is new: see [`rule`]).
fn exports_ui(ui: &mut Ui, ctx: &mut Ctx<'_>, enabled: bool) {
    ui.push_id("exports", |ui| {
        ui.horizontal(|ui| {
            if ui
                .add_enabled(enabled, egui::Button::new("Export image (PNG)…"))
                .clicked()
            {
                ctx.actions.push(AppAction::ExportPng(PngSource::Sample));
            }
            if ui
                .add_enabled(enabled, egui::Button::new("Export trajectory (GIF)…"))
                .clicked()
            {
                ctx.actions
                    .push(AppAction::ExportGif(GifSource::Trajectory));
            }
        });
    });
}

/// What model call `k` of a solver's run (of `calls` in all) is, for the scrubber's label:
/// Heun's even calls are predictors (an Euler step), its odd ones correctors (the slope at the
/// predicted point, averaged with the first), and its last call a plain Euler step to σ = 0.
pub fn call_stage(kind: crate::diffusion::solvers::SolverKind, k: usize, calls: usize) -> String {
    use crate::diffusion::solvers::SolverKind;
    let n = format!("model call {} of {calls}", k + 1);
    match kind {
        SolverKind::Heun if k + 1 == calls => format!("{n}: the last step, Euler's"),
        SolverKind::Heun if k.is_multiple_of(2) => format!("{n}: Heun's predictor"),
        SolverKind::Heun => format!("{n}: Heun's corrector"),
        _ => n,
    }
}
