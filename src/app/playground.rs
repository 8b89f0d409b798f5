//! The 2-D playground: a whole distribution as a point cloud. Train an MLP live, watch the
//! forward process dissolve the cloud into N(0, I), sample with DDPM and DDIM from the same
//! starting points and follow particle paths, and see the learned ε̂ field.

use std::sync::Arc;

use egui::{Color32, RichText, Ui};
use egui_plot::{Arrows, Legend, Line, Plot, PlotPoints, Points};
use serde::{Deserialize, Serialize};

use super::sampler::SamplerSettings;
use super::sampling::sampler_fields_ui;
use super::settings::Settings;
use super::toy_job::{ToyCommand, ToyModel};
use crate::data::toy2d::Toy2d;
use crate::diffusion::NoiseSchedule;
use crate::diffusion::noise::gaussian;

/// Point clouds, one per kept step.
pub type Frames = Vec<Vec<[f32; 2]>>;
/// A grid point and ε̂ there.
pub type Arrow = ([f32; 2], [f32; 2]);

/// What the plot shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToyView {
    /// q(x_t | x_0) of the data at the timeline's t.
    Forward,
    /// Sampled trajectories.
    Reverse,
    /// The ε̂ field at t.
    Field,
}

/// The playground's persisted settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToySettings {
    /// The distribution (`None`: the points you drew).
    pub dataset: Option<Toy2d>,
    /// Training points.
    pub size: usize,
    /// Seed of the data, training and sampling.
    pub seed: u64,
    /// Points to sample.
    pub samples: usize,
    /// Steps, η, spacing.
    pub sampler: SamplerSettings,
    /// MLP or exact.
    pub model: ToyModel,
    /// The view.
    pub view: ToyView,
    /// Particles whose paths are drawn.
    pub paths: usize,
    /// Points drawn by hand.
    pub drawn: Vec<[f32; 2]>,
}

impl Default for ToySettings {
    fn default() -> Self {
        Self {
            dataset: Some(Toy2d::SwissRoll),
            size: 5000,
            seed: 0,
            samples: 2000,
            sampler: SamplerSettings::default(),
            model: ToyModel::Mlp,
            view: ToyView::Forward,
            paths: 20,
            drawn: Vec::new(),
        }
    }
}

/// The playground's state.
#[derive(Default)]
pub struct PlaygroundPanel {
    /// The training points.
    pub data: Arc<Vec<[f32; 2]>>,
    data_key: Option<(Option<Toy2d>, usize, u64, usize)>,
    /// Losses so far.
    pub losses: Vec<f32>,
    /// Training steps so far.
    pub step: usize,
    /// Recent speed.
    pub steps_per_s: f64,
    /// Whether training runs.
    pub training: bool,
    /// Sampled frames: timesteps, DDPM, DDIM.
    pub trajectory: Option<(Vec<Option<usize>>, Frames, Frames)>,
    /// The frame shown.
    pub frame: usize,
    /// The last field.
    pub field: Option<(usize, Vec<Arrow>)>,
    /// Sampling wall time.
    pub sample_ms: Option<f64>,
    field_asked: Option<usize>,
}

/// What the panel asks of its worker this frame.
pub enum ToyAction {
    /// Start or resume training (reset: start over).
    Train(bool),
    /// Pause.
    Pause,
    /// Sample.
    Sample,
    /// Compute the field at t.
    Field(usize),
}

impl PlaygroundPanel {
    /// Regenerates the data when its settings changed; returns true if it did.
    pub fn ensure_data(&mut self, s: &ToySettings) -> bool {
        let key = (s.dataset, s.size, s.seed, s.drawn.len());
        if self.data_key == Some(key) {
            return false;
        }
        self.data_key = Some(key);
        self.data = Arc::new(match s.dataset {
            Some(d) => d.sample(s.size.max(1), s.seed).unwrap_or_default(),
            None => s.drawn.clone(),
        });
        self.trajectory = None;
        self.field = None;
        self.field_asked = None;
        true
    }

    /// The command for an action.
    pub fn command(&self, action: &ToyAction, settings: &Settings) -> Option<ToyCommand> {
        let s = &settings.toy;
        let schedule = settings.schedule;
        match action {
            ToyAction::Train(reset) => (!self.data.is_empty()).then(|| ToyCommand::Train {
                data: self.data.clone(),
                reset: *reset,
                seed: s.seed,
                schedule,
            }),
            ToyAction::Pause => None,
            ToyAction::Sample => (!self.data.is_empty()).then(|| ToyCommand::Sample {
                n: s.samples,
                sampler: s.sampler,
                seed: s.seed.wrapping_add(1),
                model: s.model,
                data: self.data.clone(),
                schedule,
            }),
            ToyAction::Field(t) => (!self.data.is_empty()).then(|| ToyCommand::Field {
                t: *t,
                grid: 21,
                model: s.model,
                data: self.data.clone(),
                schedule,
            }),
        }
    }

    /// Controls; returns the action asked for.
    pub fn controls_ui(&mut self, ui: &mut Ui, settings: &mut Settings) -> Option<ToyAction> {
        let mut action = None;
        let t_max = settings.schedule.num_train_timesteps;
        let s = &mut settings.toy;
        ui.heading("Data");
        egui::ComboBox::from_label("Dataset")
            .selected_text(s.dataset.map_or("draw your own", |d| d.name()))
            .show_ui(ui, |ui| {
                for d in Toy2d::ALL {
                    ui.selectable_value(&mut s.dataset, Some(d), d.name());
                }
                ui.selectable_value(&mut s.dataset, None, "draw your own");
            });
        if s.dataset.is_some() {
            ui.add(
                egui::Slider::new(&mut s.size, 100..=20_000)
                    .logarithmic(true)
                    .text("Points"),
            );
        } else {
            ui.label(format!(
                "{} points: click or drag on the plot",
                s.drawn.len()
            ));
            if ui.button("Clear points").clicked() {
                s.drawn.clear();
            }
        }
        ui.add(egui::DragValue::new(&mut s.seed).prefix("Seed "));
        ui.separator();
        ui.heading("Training");
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    !self.training,
                    egui::Button::new(if self.step == 0 { "Train" } else { "Resume" }),
                )
                .clicked()
            {
                action = Some(ToyAction::Train(false));
            }
            if ui
                .add_enabled(self.training, egui::Button::new("Pause"))
                .clicked()
            {
                action = Some(ToyAction::Pause);
            }
            if ui.button("Reset").clicked() {
                action = Some(ToyAction::Train(true));
            }
        });
        if self.losses.is_empty() {
            ui.label("not trained yet");
        } else {
            ui.label(format!(
                "step {} · {:.0} steps/s · loss {:.4}",
                self.step,
                self.steps_per_s,
                self.recent_loss()
            ));
        }
        let pts: PlotPoints = self
            .losses
            .iter()
            .enumerate()
            .map(|(i, l)| [i as f64, *l as f64])
            .collect();
        Plot::new("toy loss")
            .height(120.0)
            .allow_drag(false)
            .allow_scroll(false)
            .show(ui, |p| p.line(Line::new("loss", pts)));
        ui.separator();
        ui.heading("Sampling");
        egui::ComboBox::from_label("Toy model")
            .selected_text(match s.model {
                ToyModel::Mlp => "MLP (trained)",
                ToyModel::Exact => "Exact (perfect model)",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.model, ToyModel::Mlp, "MLP (trained)");
                ui.selectable_value(&mut s.model, ToyModel::Exact, "Exact (perfect model)");
            });
        sampler_fields_ui(ui, "Toy ", &mut s.sampler, t_max);
        ui.add(
            egui::Slider::new(&mut s.samples, 10..=10_000)
                .logarithmic(true)
                .text("Samples"),
        );
        ui.add(egui::Slider::new(&mut s.paths, 0..=100).text("Paths"));
        if ui.button("Sample DDPM and DDIM").clicked() {
            action = Some(ToyAction::Sample);
        }
        action
    }

    /// The running mean of the last 50 losses.
    pub fn recent_loss(&self) -> f32 {
        let k = self.losses.len().clamp(1, 50);
        self.losses.iter().rev().take(k).sum::<f32>() / k as f32
    }

    /// The plot. Returns a field request when the view needs one.
    pub fn main_ui(
        &mut self,
        ui: &mut Ui,
        settings: &mut Settings,
        schedule: Option<&NoiseSchedule>,
    ) -> Option<ToyAction> {
        let mut action = None;
        ui.horizontal(|ui| {
            let v = &mut settings.toy.view;
            ui.selectable_value(v, ToyView::Forward, "Forward");
            ui.selectable_value(v, ToyView::Reverse, "Reverse");
            ui.selectable_value(v, ToyView::Field, "Field");
        });
        let t_max = settings.schedule.num_train_timesteps;
        match settings.toy.view {
            ToyView::Forward | ToyView::Field => {
                ui.spacing_mut().slider_width = (ui.available_width() - 120.0).max(200.0);
                ui.add(egui::Slider::new(&mut settings.t, 0..=t_max).text("t"));
            }
            ToyView::Reverse => {
                if let Some((ts, ..)) = &self.trajectory {
                    let last = ts.len() - 1;
                    self.frame = self.frame.min(last);
                    ui.spacing_mut().slider_width = (ui.available_width() - 200.0).max(200.0);
                    ui.add(egui::Slider::new(&mut self.frame, 0..=last).text("Frame"));
                    ui.label(match ts[self.frame] {
                        Some(t) => format!("t = {t}"),
                        None => "x_0".into(),
                    });
                } else {
                    ui.label("Press \"Sample DDPM and DDIM\".");
                }
            }
        }
        let paper_t = settings.t;
        let drawing = settings.toy.dataset.is_none();
        let data = self.data.clone();
        let response = Plot::new("toy plot")
            .data_aspect(1.0)
            .legend(Legend::default())
            .allow_drag(!drawing)
            .show(ui, |p| {
                let grey = Color32::from_gray(150);
                let cloud = |pts: &[[f32; 2]]| -> PlotPoints<'static> {
                    pts.iter().map(|q| [q[0] as f64, q[1] as f64]).collect()
                };
                // N(0, I) contours at 1σ and 2σ.
                for r in [1.0, 2.0] {
                    let circle: PlotPoints = (0..=100)
                        .map(|i| {
                            let a = i as f64 / 100.0 * std::f64::consts::TAU;
                            [r * a.cos(), r * a.sin()]
                        })
                        .collect();
                    p.line(
                        Line::new("N(0, I) 1σ, 2σ", circle).color(Color32::from_rgb(120, 160, 120)),
                    );
                }
                match settings.toy.view {
                    ToyView::Forward => {
                        let shown: Vec<[f32; 2]> = match schedule {
                            Some(s) if paper_t > 0 => {
                                let i = (paper_t - 1).min(s.num_timesteps() - 1);
                                let (a, b) = (
                                    s.sqrt_alphas_cumprod[i] as f32,
                                    s.sqrt_one_minus_alphas_cumprod[i] as f32,
                                );
                                let z = gaussian(settings.toy.seed ^ 0xf0, 0, 2 * data.len());
                                data.iter()
                                    .enumerate()
                                    .map(|(k, q)| {
                                        [a * q[0] + b * z[2 * k], a * q[1] + b * z[2 * k + 1]]
                                    })
                                    .collect()
                            }
                            _ => data.to_vec(),
                        };
                        p.points(
                            Points::new(format!("x_t (t = {paper_t})"), cloud(&shown))
                                .radius(1.5)
                                .color(Color32::from_rgb(60, 110, 230)),
                        );
                    }
                    ToyView::Reverse => {
                        p.points(Points::new("data", cloud(&data)).radius(1.0).color(grey));
                        if let Some((_, a, b)) = &self.trajectory {
                            let f = self.frame.min(a.len() - 1);
                            p.points(
                                Points::new("DDPM", cloud(&a[f]))
                                    .radius(1.5)
                                    .color(Color32::from_rgb(220, 80, 60)),
                            );
                            p.points(
                                Points::new("DDIM", cloud(&b[f]))
                                    .radius(1.5)
                                    .color(Color32::from_rgb(60, 110, 230)),
                            );
                            for k in 0..settings.toy.paths.min(a[0].len()) {
                                let path = |frames: &Vec<Vec<[f32; 2]>>| -> PlotPoints<'static> {
                                    frames[..=f]
                                        .iter()
                                        .map(|fr| [fr[k][0] as f64, fr[k][1] as f64])
                                        .collect()
                                };
                                p.line(
                                    Line::new("DDPM paths", path(a))
                                        .color(Color32::from_rgb(220, 80, 60)),
                                );
                                p.line(
                                    Line::new("DDIM paths", path(b))
                                        .color(Color32::from_rgb(60, 110, 230)),
                                );
                            }
                        }
                    }
                    ToyView::Field => {
                        p.points(Points::new("data", cloud(&data)).radius(1.0).color(grey));
                        if let Some((_, arrows)) = &self.field {
                            // Arrows along the score direction −ε̂, scaled for display.
                            let origins: PlotPoints = arrows
                                .iter()
                                .map(|(q, _)| [q[0] as f64, q[1] as f64])
                                .collect();
                            let tips: PlotPoints = arrows
                                .iter()
                                .map(|(q, e)| {
                                    [(q[0] - 0.12 * e[0]) as f64, (q[1] - 0.12 * e[1]) as f64]
                                })
                                .collect();
                            p.arrows(
                                Arrows::new("−ε_pred (score direction)", origins, tips)
                                    .color(Color32::from_rgb(200, 120, 40)),
                            );
                        }
                    }
                }
            });
        if drawing {
            let r = &response.response;
            if (r.clicked() || r.dragged())
                && let Some(pos) = r.interact_pointer_pos()
            {
                let v = response.transform.value_from_position(pos);
                let last = settings.toy.drawn.last().copied();
                let new = [v.x as f32, v.y as f32];
                if last.is_none_or(|l| (l[0] - new[0]).hypot(l[1] - new[1]) > 0.03) {
                    settings.toy.drawn.push(new);
                }
            }
        }
        if settings.toy.view == ToyView::Field && paper_t > 0 {
            let t = (paper_t - 1).min(t_max - 1);
            if self.field.as_ref().is_none_or(|(ft, _)| *ft != t) && self.field_asked != Some(t) {
                self.field_asked = Some(t);
                action = Some(ToyAction::Field(t));
            }
        }
        if let Some(ms) = self.sample_ms {
            ui.label(RichText::new(format!("sampled DDPM and DDIM in {:.2} s", ms / 1e3)).small());
        }
        action
    }
}
