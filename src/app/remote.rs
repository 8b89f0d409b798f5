//! The app driven by script: commands as JSON in, a report as JSON out. The browser test
//! (tools/web/test.mjs) drives the page this way, through the same [`AppAction`]s the buttons
//! and lesson links send (kittest clicks the buttons themselves natively). Compiled on every
//! target, so native tests check it too; only the page exposes it (src/app/web.rs).

use serde::{Deserialize, Serialize};

use super::panels::AppAction;
use super::settings::{Lang, Tab};
use super::{DiffLabApp, LESSONS, bundled_lessons};

/// A scripted command.
#[derive(Debug, Deserialize)]
pub enum Remote {
    /// Show a tab.
    Tab(Tab),
    /// Set the sampling panel's sampler, steps, seed and batch.
    Sampling {
        /// "Ddim", "DdpmFixedSmall", … as in the settings.
        sampler: super::SamplerChoice,
        /// N.
        steps: usize,
        /// Seed of x_T.
        seed: u64,
        /// Samples.
        batch: usize,
    },
    /// Press Run on the sampling panel.
    Run,
    /// Cancel the sampler's work.
    Cancel,
    /// Open a lesson (0-based) on the Lessons tab.
    Lesson(usize),
    /// Follow a lesson's "Show me" link (0-based lesson, the link's name).
    ShowMe {
        /// The lesson.
        lesson: usize,
        /// The "Show me" name in its header.
        name: String,
    },
}

/// What a script reads back.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The tab shown.
    pub tab: Tab,
    /// Whether a job has work queued or running.
    pub busy: bool,
    /// Whether the jobs run on the frame loop (the browser's way).
    pub on_frames: bool,
    /// Where the work runs (the status line).
    pub compute: String,
    /// The error banner.
    pub banner: Option<String>,
    /// The last notice.
    pub notice: Option<String>,
    /// The forward panel's shown t (`None` before its first picture).
    pub forward_t: Option<usize>,
    /// The forward panel's image (the photo, a digit, or a file by name).
    pub forward_source: String,
    /// The lesson open.
    pub lesson: usize,
    /// The sampling panel.
    pub sampling: SamplingReport,
    /// The interpolation panel: whether it decodes, and the frames decoded.
    pub interpolating: bool,
    /// Frames of the last interpolation.
    pub interpolation_frames: usize,
    /// The edit panel.
    pub edit: EditReport,
    /// On the frame loop: the jobs' compute per frame since the last Run, in ms (median, p99,
    /// max, frames, and the sum), apart from drawing the frame.
    pub pump_ms: [f32; 5],
    /// Why egui drew the page's frames, each cause with its count (the page fills this in).
    pub repaint_causes: Vec<String>,
    /// The page only: what the browser's WebGPU gave (the device's label, or why none).
    pub webgpu: String,
    /// The page only: the browser's WebGL renderer, as it names it.
    pub webgl: String,
    /// The page only: frames drawn so far.
    pub frames: u64,
    /// How often a run repaints the window ("Hardware": ten a second; "Software": two).
    pub repaint_pace: String,
    /// The page's Web Workers ready to share the CPU kernels (0 on the desktop).
    pub cpu_helpers: usize,
    /// The page's model workers ready to take pieces of a U-Net's calls (0 on the desktop).
    pub model_workers: usize,
}

/// The sampling panel's run.
#[derive(Debug, Serialize)]
pub struct SamplingReport {
    /// The run's id.
    pub run_id: u64,
    /// Whether it streams.
    pub running: bool,
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// Wall time of the finished run.
    pub total_ms: Option<f64>,
    /// The run's shape [B, C, H, W] and its final x_0 values, when it finished.
    pub shape: Option<[usize; 4]>,
    /// x_0, B·C·H·W values in [−1, 1] (empty until it finished).
    pub x0: Vec<f32>,
}

/// The edit panel's state.
#[derive(Debug, Serialize)]
pub struct EditReport {
    /// The edit's id.
    pub id: u64,
    /// Whether it runs.
    pub running: bool,
    /// Model calls made, of how many.
    pub progress: (usize, usize),
    /// SDEdit's rows so far, by t₀.
    pub sdedit_t0s: Vec<usize>,
    /// The first SDEdit row's results, [samples, 784] values in [−1, 1].
    pub sdedit_first: Vec<f32>,
    /// Frames of the last inpainting.
    pub inpaint_frames: usize,
    /// The last inversion's RMSE.
    pub inversion_rmse: Option<f64>,
    /// Whether the sketch pad has ink.
    pub pad_inked: bool,
}

impl DiffLabApp {
    /// Carries out a scripted command (JSON: see [`Remote`]).
    pub fn remote(&mut self, json: &str) -> Result<(), String> {
        let cmd: Remote = serde_json::from_str(json).map_err(|e| format!("bad command: {e}"))?;
        match cmd {
            Remote::Tab(tab) => self.settings.tab = tab,
            Remote::Sampling {
                sampler,
                steps,
                seed,
                batch,
            } => {
                let s = &mut self.settings.sampling;
                s.sampler.sampler = sampler;
                s.sampler.steps = steps;
                s.seed = seed;
                s.batch = batch;
            }
            Remote::Run => self.apply(AppAction::RunSampling, None),
            Remote::Lesson(n) => {
                if n >= LESSONS.len() {
                    return Err(format!("no lesson {n} (there are {})", LESSONS.len()));
                }
                self.settings.tab = Tab::Lessons;
                self.settings.lessons.current = n;
            }
            Remote::Cancel => self.apply(AppAction::CancelSampler, None),
            Remote::ShowMe { lesson, name } => {
                let lang: Lang = self.settings.lessons.lang();
                let lessons = bundled_lessons(lang);
                let Some(Ok(l)) = lessons.get(lesson) else {
                    return Err(format!("no lesson {lesson} (there are {})", LESSONS.len()));
                };
                let setup = l
                    .header
                    .show
                    .get(&name)
                    .ok_or_else(|| format!("{} has no \"Show me\" named {name}", l.file))?
                    .clone();
                self.settings.tab = Tab::Lessons;
                self.settings.lessons.current = lesson;
                self.apply(AppAction::Setup(setup), None);
            }
        }
        Ok(())
    }

    /// The app's state for a script.
    pub fn report(&self) -> Report {
        let s = &self.sampling;
        let finished = s.trajectory.last().filter(|f| f.t.is_none() && !s.running);
        Report {
            tab: self.settings.tab,
            busy: self.is_busy(),
            on_frames: self.jobs_on_frames(),
            compute: self.compute_label.clone(),
            banner: self.banner.clone(),
            notice: self.notice.clone(),
            forward_t: self.forward.shown_t,
            forward_source: format!("{:?}", self.settings.forward.source),
            lesson: self.settings.lessons.current,
            sampling: SamplingReport {
                run_id: s.run_id,
                running: s.running,
                done: s.progress.0,
                total: s.progress.1,
                total_ms: s.total_ms,
                shape: finished.map(|f| f.shape),
                x0: finished.map(|f| f.x_values().to_vec()).unwrap_or_default(),
            },
            pump_ms: {
                let mut v = self.pump_ms.clone();
                v.sort_by(f32::total_cmp);
                let q = |p: f64| {
                    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0.0)
                };
                [
                    q(0.5),
                    q(0.99),
                    v.last().copied().unwrap_or(0.0),
                    v.len() as f32,
                    v.iter().sum(),
                ]
            },
            repaint_causes: Vec::new(),
            webgpu: String::new(),
            webgl: String::new(),
            frames: 0,
            repaint_pace: format!("{:?}", self.pace),
            cpu_helpers: difflab_kernels::helpers::ready_helpers(),
            model_workers: 0,
            edit: EditReport {
                id: self.edit.id,
                running: self.edit.running,
                progress: self.edit.progress,
                sdedit_t0s: self.edit.sdedit.iter().map(|r| r.t0).collect(),
                sdedit_first: self
                    .edit
                    .sdedit
                    .first()
                    .map(|r| r.values.clone())
                    .unwrap_or_default(),
                inpaint_frames: self.edit.inpaint.as_ref().map_or(0, |i| i.frames.len()),
                inversion_rmse: self.edit.inversion.as_ref().map(|i| i.rmse),
                pad_inked: self.settings.edit.pad.iter().any(|&p| p > 0),
            },
            interpolating: self.interpolate.running,
            interpolation_frames: self
                .interpolate
                .result
                .as_ref()
                .map_or(0, |r| r.slerp.len()),
        }
    }
}
