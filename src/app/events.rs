//! Events from the workers, routed by job id to the panel that asked; the keyboard and dropped
//! files.

use egui::Key;

use super::jobs::sampler::SamplerEvent;
use super::jobs::toy_job::ToyEvent;
use super::jobs::worker::Event;
use super::{DiffLabApp, Interpolation, Tab, ToyField, ToyView, shown};

impl DiffLabApp {
    pub(super) fn handle_events(&mut self, ctx: &egui::Context) {
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
                SamplerEvent::Edit { id, part } => self.edit.on_part(id, part),
                SamplerEvent::Quality { id, update } => self.compare.quality.on_update(id, update),
                SamplerEvent::EditProgress { id, done, total } => {
                    self.edit.on_progress(id, done, total);
                }
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
                    self.edit.stopped(id);
                    self.compare.quality.stopped(id);
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
                        Some(id)
                            if id == self.compare.quality.id && self.compare.quality.running =>
                        {
                            self.compare.quality.stopped(id);
                            "Compare (quality against NFE)"
                        }
                        Some(id) if id == self.edit.id && self.edit.running => {
                            self.edit.stopped(id);
                            "Edit"
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
                        .map(|(model, arrows)| ToyField {
                            t,
                            model,
                            step,
                            arrows,
                        })
                        .collect();
                }
                ToyEvent::FlowProgress { phase, done, total } => {
                    self.playground.flow.progress = Some((phase, done, total));
                }
                ToyEvent::Flow(result) => {
                    self.playground.flow.running = false;
                    self.playground.flow.grid_frame = result.grid[0].len().saturating_sub(1);
                    self.playground.flow.result = Some(result);
                }
                ToyEvent::Failed(msg) => {
                    self.playground.flow.running = false;
                    self.playground.training = false;
                    self.banner = Some(msg);
                }
            }
        }
        self.sampling.sync_textures(&mut sink);
        self.compare.sync_textures(&mut sink);
        self.interpolate.sync_textures(&mut sink);
        self.edit.sync_textures(&mut sink);
        self.compare.quality.sync_textures(&mut sink);
    }

    pub(super) fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let t_max = self.settings.num_timesteps();
        // Presenter mode (F5) and full screen (F11), anywhere.
        let (f1, f5, f11) = ctx.input(|i| {
            (
                i.key_pressed(Key::F1),
                i.key_pressed(Key::F5),
                i.key_pressed(Key::F11),
            )
        });
        // The user guide (F1), anywhere.
        if f1 {
            self.help.open = Some(super::help::HelpPage::Guide(0));
        }
        if f5 {
            self.settings.lessons.presenter = !self.settings.lessons.presenter;
        }
        if f11 {
            let full = ctx.input(|i| i.viewport().fullscreen.unwrap_or(false));
            ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(!full));
        }
        if self.settings.tab == Tab::Lessons {
            // In the lessons, PageUp/PageDown and ←/→ move between lessons.
            let last = self.lessons.len().saturating_sub(1);
            let step = ctx.input(|i| {
                if i.key_pressed(Key::PageDown) || i.key_pressed(Key::ArrowRight) {
                    1
                } else if i.key_pressed(Key::PageUp) || i.key_pressed(Key::ArrowLeft) {
                    -1
                } else {
                    0
                }
            });
            let current = &mut self.settings.lessons.current;
            let moved = match step {
                1 if *current < last => Some(*current + 1),
                -1 if *current > 0 => Some(*current - 1),
                _ => None,
            };
            if let Some(n) = moved {
                *current = n;
                self.lessons.revealed = false;
            }
            return;
        }
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

    pub(super) fn dropped_files(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        // The browser reads a dropped file's bytes asynchronously; they come back through
        // `web::frame` to `open_dropped`.
        #[cfg(target_arch = "wasm32")]
        if let Some(file) = dropped.first() {
            super::web::read_dropped(file.clone());
            return;
        }
        if let Some(path) = dropped.first().map(|f| f.path().to_path_buf()) {
            self.open_dropped(path, ctx);
        }
    }

    /// Opens a dropped file: weights as the model, a session's settings, anything else as the
    /// forward panel's image.
    pub(super) fn open_dropped(&mut self, path: std::path::PathBuf, ctx: &egui::Context) {
        let is = |ext: &str| {
            path.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(ext))
        };
        if is("safetensors") {
            self.open_weights(path);
        } else if is("json") {
            match self.open_session(&path, ctx) {
                Ok(()) => self.notice = Some(format!("opened {}", path.display())),
                Err(e) => self.banner = Some(e.to_string()),
            }
        } else {
            self.open_image(path);
        }
    }
}
