//! The shell carries out what the panels ask for ([`AppAction`]), in one place.

use std::path::PathBuf;
use std::sync::Arc;

use super::jobs::sampler::ModelSpec;
use super::jobs::sampler::{GifFrame, SamplerCommand, TrajFrame};
use super::jobs::worker::Command;
use super::panels::{AppAction, GifSource, PngSource};
use super::settings::OpenedWeights;
use super::{DiffLabApp, ImageSource};
use super::{files, unet_file};
use crate::diffusion::NoiseSchedule;

impl DiffLabApp {
    /// Carries out what a panel asked for: the one place the app acts on the panels' behalf.
    pub fn apply(&mut self, action: AppAction, schedule: Option<&NoiseSchedule>) {
        match action {
            AppAction::RunSampling => self.start_run(),
            AppAction::Compare(kind) => self.start_compare(kind),
            AppAction::Decode => self.start_interpolation(),
            AppAction::Edit(job) => self.start_edit(job),
            AppAction::Quality => self.start_quality(),
            AppAction::OpenPadImage => {
                if let Some(path) = self.dialog(files::pick_file("Images", &["png", "jpg", "jpeg"]))
                {
                    self.open_pad_image(&path);
                }
            }
            AppAction::CancelSampler => self.cancel_sampling(),
            AppAction::Toy(a) => self.toy_action(a),
            AppAction::SwitchTab(tab) => self.settings.tab = tab,
            AppAction::Setup(setup) => {
                setup.apply(&mut self.settings);
                self.schedule.reset(&self.settings);
                self.forward.playing = false;
                if let Some(run) = setup.run {
                    self.apply(run.into(), schedule);
                }
            }
            AppAction::OpenImage => {
                if let Some(path) = self.dialog(files::pick_file("Images", &["png", "jpg", "jpeg"]))
                {
                    self.open_image(path);
                }
            }
            AppAction::OpenWeights => {
                if let Some(path) = self.dialog(files::pick_file("U-Net weights", &["safetensors"]))
                {
                    self.open_weights(path);
                }
            }
            AppAction::ExportScheduleCsv => self.export_csv(schedule),
            AppAction::ExportFilmstrip => {
                if let Some(req) = self.forward.current_request(&self.settings)
                    && let Some(path) = self.dialog(files::save_file("filmstrip.png"))
                {
                    self.send(Command::ExportFilmstrip(req, path));
                }
            }
            AppAction::ExportPng(source) => {
                let (img, name) = match source {
                    PngSource::Sample => (
                        self.sampling
                            .trajectory
                            .get(self.sampling.scrub)
                            .map(TrajFrame::x),
                        "sample.png",
                    ),
                    PngSource::Compare => (self.compare.export_image(), "compare.png"),
                    PngSource::Interpolation => {
                        (self.interpolate.rows_image(), "interpolation.png")
                    }
                    PngSource::Playground => (
                        self.playground
                            .export_image(&self.settings.toy, schedule, self.settings.t),
                        "playground.png",
                    ),
                };
                match img {
                    Some(img) => self.save_png_dialog(&img, name),
                    None => self.banner = Some("nothing to export yet in this view".into()),
                }
            }
            AppAction::ExportGif(source) => {
                let (frames, name): (Vec<GifFrame>, _) = match source {
                    GifSource::Trajectory => (self.sampling.gif_frames(), "trajectory.gif"),
                    GifSource::Interpolation => (
                        self.interpolate
                            .result
                            .iter()
                            .flat_map(|r| r.slerp.iter().cloned())
                            .map(GifFrame::Image)
                            .collect(),
                        "interpolation.gif",
                    ),
                    GifSource::Playground => (
                        self.playground
                            .gif_frames(self.settings.toy.paths, self.settings.gif.max_frames)
                            .into_iter()
                            .map(|img| GifFrame::Image(Arc::new(img)))
                            .collect(),
                        "playground.gif",
                    ),
                };
                if frames.is_empty() {
                    self.banner = Some("nothing to export yet in this view".into());
                } else if let Some(path) = self.dialog(files::save_file(name)) {
                    self.export_gif(frames, path);
                }
            }
        }
    }

    /// A dialog's answer; where there are none (the browser), the banner says what to do.
    pub(super) fn dialog(
        &mut self,
        answer: Result<Option<PathBuf>, &'static str>,
    ) -> Option<PathBuf> {
        answer.unwrap_or_else(|why| {
            self.banner = Some(why.to_string());
            None
        })
    }

    /// Writes frames as a GIF with the GIF settings (at most `max_frames`, evenly picked).
    pub fn export_gif(&mut self, frames: Vec<GifFrame>, path: PathBuf) {
        let g = self.settings.gif;
        let picked = crate::data::gif::pick_evenly(&frames, g.max_frames);
        self.export_progress = Some((0, picked.len()));
        self.send_sampler(SamplerCommand::ExportGif {
            frames: picked,
            delay_ms: g.delay_ms,
            scale: g.scale,
            path,
        });
    }

    /// Asks where, then writes `img` as a PNG (atomically).
    pub(super) fn save_png_dialog(&mut self, img: &image::RgbImage, name: &str) {
        if let Some(path) = self.dialog(files::save_file(name)) {
            match crate::data::image_io::save_png(img, &path) {
                Ok(()) => self.notice = Some(format!("wrote {}", path.display())),
                Err(e) => self.banner = Some(e.to_string()),
            }
        }
    }

    pub(super) fn export_csv(&mut self, schedule: Option<&NoiseSchedule>) {
        let Some(schedule) = schedule else { return };
        let name = format!("schedule-{}.csv", schedule.config.kind.name());
        let Some(path) = self.dialog(files::save_file(&name)) else {
            return;
        };
        match crate::data::image_io::write_atomic(&path, schedule.to_csv().as_bytes()) {
            Ok(()) => self.notice = Some(format!("wrote {}", path.display())),
            Err(e) => self.banner = Some(e.to_string()),
        }
    }

    /// Opens an image file as the forward panel's source (the dialog and a drop both end here).
    pub fn open_image(&mut self, path: PathBuf) {
        // On the edit panel a picture goes to the sketch pad.
        if self.settings.tab == super::Tab::Edit {
            self.open_pad_image(&path);
            return;
        }
        self.settings.forward.source = ImageSource::File(path);
    }

    /// Puts a picture on the sketch pad: grey, fitted into 28×28 and centred, dark ink on a
    /// light page turned white on black (as MNIST's digits are). A bad file changes nothing
    /// and the banner says why.
    pub fn open_pad_image(&mut self, path: &std::path::Path) {
        match files::load_rgb(path, 512) {
            Ok(img) => {
                let n = img.width * img.height;
                let c = img.channels.max(1);
                let grey: Vec<f32> = (0..n)
                    .map(|i| (0..c).map(|k| img.data[k * n + i]).sum::<f32>() / c as f32)
                    .map(|v| f32::midpoint(v, 1.0))
                    .collect();
                let values = super::fit_to_pad(&grey, img.width, img.height);
                self.settings.edit.set_pad(&values);
                self.notice = Some(format!("put {} on the sketch pad", path.display()));
            }
            Err(e) => self.banner = Some(e.to_string()),
        }
    }

    /// Opens a U-Net weights file and samples with it (the dialog, a drop and `difflab gui
    /// --weights` end here); a bad file changes nothing and the banner says why. Whether it
    /// opened.
    pub fn open_weights(&mut self, path: PathBuf) -> bool {
        // Kept as an absolute path: the settings outlive the directory the app started in.
        let path = std::path::absolute(&path).unwrap_or(path);
        match unet_file::open(&path) {
            Ok(f) => {
                self.settings.unet_weights = Some(OpenedWeights { path, id: f.id });
                self.settings.sampling.model = ModelSpec {
                    unet: true,
                    weights: f.id,
                    ..self.settings.sampling.model
                };
                // A flow-matching file samples with flow matching's Euler (and only it does).
                let s = &mut self.settings.sampling.sampler;
                s.sampler = self.settings.sampling.model.sampler_for(s.sampler);
                self.notice = Some(format!("sampling with {}: {}", f.name, f.summary()));
                true
            }
            Err(e) => {
                self.banner = Some(e.to_string());
                false
            }
        }
    }

    /// Shows `message` in the banner, after what it already says (a start can have two things
    /// to say: the GPU's refusal and a weights file gone).
    fn add_banner(&mut self, message: String) {
        self.banner = Some(match self.banner.take() {
            Some(before) => format!("{before} · {message}"),
            None => message,
        });
    }

    /// Reads the opened weights file again (at start, when a session opens): a file gone or
    /// broken falls back to the shipped weights, and a file changed on disk is used as it is
    /// now; the banner says which.
    pub(super) fn reopen_weights(&mut self) {
        let Some(opened) = self.settings.unet_weights.clone() else {
            return;
        };
        let chosen = self.settings.sampling.model;
        match unet_file::open(&opened.path) {
            Ok(f) if f.id == opened.id => {}
            Ok(f) => {
                self.add_banner(format!(
                    "{} has changed since it was opened: the model menu now has its new weights",
                    opened.path.display()
                ));
                if chosen.weights == opened.id {
                    self.settings.sampling.model.weights = f.id;
                }
                self.settings.unet_weights = Some(OpenedWeights { id: f.id, ..opened });
            }
            Err(e) => {
                let what_now = if chosen.unet && chosen.weights == opened.id {
                    "sampling with the shipped U-Net"
                } else {
                    "it is no longer in the model menu"
                };
                self.add_banner(format!("{e}; {what_now}"));
                self.settings.unet_weights = None;
                self.settings.sampling.model.weights = unet_file::SHIPPED;
            }
        }
    }
}

impl DiffLabApp {
    /// Starts an edit of the sketch pad's drawing (SDEdit's t₀ and the digits of "Edit the
    /// noise" are filled in here, a lesson's inversion takes the panel's steps).
    pub fn start_edit(&mut self, job: super::EditJob) {
        let job = match job {
            super::EditJob::Sdedit(_) => {
                super::EditJob::Sdedit(super::EditPanel::sdedit_t0s(&self.settings))
            }
            super::EditJob::Invert(_) => super::EditJob::Invert(self.settings.edit.invert_steps),
            super::EditJob::NoiseEdit { steps, frames, .. } => {
                let Some(digits) = self.edit.digits(self.settings.edit.noise_digits) else {
                    self.banner = Some("the MNIST digits could not be read".into());
                    return;
                };
                super::EditJob::NoiseEdit {
                    digits: std::sync::Arc::new(digits),
                    steps,
                    frames,
                }
            }
            job => job,
        };
        let id = self.new_id();
        let spec = super::EditPanel::spec(&self.settings, self.settings.sampling.model, id, job);
        self.edit.started(&spec);
        self.send_sampler(SamplerCommand::Edit(spec));
    }

    /// Starts a quality-against-NFE comparison (the compare panel's button).
    pub fn start_quality(&mut self) {
        let id = self.new_id();
        let spec = self.compare.quality.spec(&self.settings, id);
        self.compare.quality.started(id);
        self.compare.show_quality = true;
        self.send_sampler(SamplerCommand::Quality(spec));
    }
}
