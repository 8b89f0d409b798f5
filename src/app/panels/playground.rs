//! The 2-D playground: a whole distribution as a point cloud. Train an MLP live, watch the
//! forward process dissolve the cloud into N(0, I), sample with DDPM and DDIM from the same
//! starting points and follow particle paths, and see the learned ε̂ field.

use std::sync::Arc;

use egui::{RichText, Ui};
use egui_plot::{Arrows, Legend, Line, Plot, PlotPoints, PlotUi, Points};

use super::ToyAction;
use super::widgets::gif_ui;
use super::widgets::sampler_fields_ui;
use super::{AppAction, Ctx, GifSource, Panel, PngSource};
use crate::app::jobs::toy_job::ToyCommand;
use crate::app::settings::ToyModel;
use crate::app::settings::{FieldKind, Settings, Tab, ToySettings, ToyView};
use crate::data::toy2d::Toy2d;

/// Point clouds, one per kept step.
pub type Frames = Vec<Vec<[f32; 2]>>;
pub use crate::app::jobs::toy_job::Arrow;

pub use super::toy_style::{
    CONTOUR_RGB, DATA_RGB, DDIM_RGB, DDPM_RGB, EXACT_RGB, EXPORT_PX, LEARNED_RGB, PLOT_RANGE, c32,
};

/// A computed field.
#[derive(Clone, Debug)]
pub struct ToyField {
    /// Its timestep (0-based).
    pub t: usize,
    /// Which model.
    pub model: ToyModel,
    /// The MLP's training step when computed.
    pub step: usize,
    /// (grid point, ε̂).
    pub arrows: Vec<Arrow>,
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
    /// The last fields, one per model.
    pub fields: Vec<ToyField>,
    /// Sampling wall time.
    pub sample_ms: Option<f64>,
    field_asked: Option<(usize, Vec<ToyModel>, usize)>,
    /// The flow-matching view.
    pub flow: super::playground_flow::FlowView,
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
        self.fields.clear();
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
                then_train: self.training,
            }),
            ToyAction::Flow => (!self.data.is_empty()).then(|| ToyCommand::Flow {
                data: self.data.clone(),
                seed: s.seed,
                schedule,
                train_steps: s.flow_steps,
                n: s.samples,
                paths: s.paths,
                then_train: self.training,
            }),
            ToyAction::Field(t, models) => (!self.data.is_empty()).then(|| ToyCommand::Field {
                t: *t,
                grid: 21,
                models: models.clone(),
                data: self.data.clone(),
                schedule,
                then_train: self.training,
            }),
        }
    }

    /// The models whose fields the Field view shows.
    fn wanted_fields(s: &ToySettings) -> Vec<ToyModel> {
        if s.model == ToyModel::Mlp && s.exact_field {
            vec![ToyModel::Mlp, ToyModel::Exact]
        } else {
            vec![s.model]
        }
    }

    /// A field request, when the shown fields are missing or stale (another t, or the MLP
    /// trained on by 250 steps or more).
    fn field_request(&mut self, s: &ToySettings, t: usize) -> Option<ToyAction> {
        let wanted = Self::wanted_fields(s);
        let stale = self.fields.len() != wanted.len()
            || wanted.iter().any(|m| {
                let Some(f) = self.fields.iter().find(|f| f.model == *m) else {
                    return true;
                };
                let behind = self.step.saturating_sub(f.step);
                f.t != t || (*m == ToyModel::Mlp && behind > 0 && (!self.training || behind >= 250))
            });
        let key = (t, wanted.clone(), self.step / 250);
        if !stale || self.field_asked.as_ref() == Some(&key) {
            return None;
        }
        self.field_asked = Some(key);
        Some(ToyAction::Field(t, wanted))
    }

    /// The running mean of the last 50 losses.
    pub fn recent_loss(&self) -> f32 {
        let k = self.losses.len().clamp(1, 50);
        self.losses.iter().rev().take(k).sum::<f32>() / k as f32
    }
}

impl Panel for PlaygroundPanel {
    fn tab(&self) -> Tab {
        Tab::Playground
    }

    /// Controls: data, model, training, sampling, the GIF settings.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
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
            .map(|(i, l)| [i as f64, f64::from(*l)])
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
        sampler_fields_ui(ui, "Toy ", &mut s.sampler, t_max, false);
        ui.add(
            egui::Slider::new(&mut s.samples, 10..=10_000)
                .logarithmic(true)
                .text("Samples"),
        );
        ui.add(egui::Slider::new(&mut s.paths, 0..=100).text("Paths"));
        if ui.button("Sample DDPM and DDIM").clicked() {
            action = Some(ToyAction::Sample);
        }
        ui.separator();
        if let Some(a) = self.flow.controls_ui(ui, s) {
            action = Some(a);
        }
        ui.separator();
        ui.heading("View");
        ui.checkbox(&mut s.side_by_side, "DDPM and DDIM side by side");
        ui.checkbox(&mut s.exact_field, "Exact field beside the MLP's");
        ui.horizontal(|ui| {
            ui.label("Arrows");
            ui.selectable_value(&mut s.field_kind, FieldKind::Eps, "-ε_pred");
            ui.selectable_value(&mut s.field_kind, FieldKind::Score, "score");
        });
        gif_ui(ui, &mut settings.gif);
        if let Some(a) = action {
            ctx.actions.push(AppAction::Toy(a));
        }
    }

    /// The plot; asks for a field when the view needs one, and for exports.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        let schedule = ctx.schedule;
        let mut action = None;
        ui.horizontal(|ui| {
            let v = &mut settings.toy.view;
            ui.selectable_value(v, ToyView::Forward, "Forward");
            ui.selectable_value(v, ToyView::Reverse, "Reverse");
            ui.selectable_value(v, ToyView::Field, "Field");
            ui.selectable_value(v, ToyView::Flow, "Flow matching");
            ui.separator();
            if ui.button("Export PNG…").clicked() {
                ctx.actions
                    .push(AppAction::ExportPng(PngSource::Playground));
            }
            if ui
                .add_enabled(self.trajectory.is_some(), egui::Button::new("Export GIF…"))
                .on_disabled_hover_text("Sample first: the GIF shows the reverse process.")
                .clicked()
            {
                ctx.actions
                    .push(AppAction::ExportGif(GifSource::Playground));
            }
            if let Some(ms) = self.sample_ms {
                ui.label(
                    RichText::new(format!("sampled DDPM and DDIM in {:.2} s", ms / 1e3)).small(),
                );
            }
        });
        let t_max = settings.schedule.num_train_timesteps;
        if settings.toy.view == ToyView::Flow {
            self.flow.ui(ui, &self.data);
            return;
        }
        match settings.toy.view {
            ToyView::Flow => {}
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
        let s = &settings.toy;
        let drawing = s.dataset.is_none();
        let data = self.data.clone();
        let cloud = |pts: &[[f32; 2]]| -> PlotPoints<'static> {
            pts.iter()
                .map(|q| [f64::from(q[0]), f64::from(q[1])])
                .collect()
        };
        let contours = |p: &mut PlotUi<'_>| {
            // N(0, I) contours at 1σ and 2σ.
            for r in [1.0, 2.0] {
                let circle: PlotPoints = (0..=100)
                    .map(|i| {
                        let a = f64::from(i) / 100.0 * std::f64::consts::TAU;
                        [r * a.cos(), r * a.sin()]
                    })
                    .collect();
                p.line(Line::new("N(0, I) 1σ, 2σ", circle).color(c32(CONTOUR_RGB)));
            }
        };
        let data_points = |p: &mut PlotUi<'_>| {
            p.points(
                Points::new("data", cloud(&data))
                    .radius(1.0)
                    .color(c32(DATA_RGB)),
            );
        };
        let plot = |id: &str| {
            // A fixed [−3, 3]² view (as the exports), so scrubbing doesn't rescale the axes and
            // the two samplers' plots compare at a glance.
            let r = f64::from(PLOT_RANGE);
            Plot::new(id.to_owned())
                .data_aspect(1.0)
                .default_x_bounds(-r, r)
                .default_y_bounds(-r, r)
                .legend(Legend::default())
                .allow_drag(!drawing)
                .link_axis(egui::Id::unique("toy axes"), [true, true])
                .link_cursor(egui::Id::unique("toy axes"), [true, true])
        };
        let mut canvas = None;
        match s.view {
            ToyView::Forward => {
                let shown = self.forward_cloud(s.seed, schedule, paper_t);
                canvas = Some(plot("toy plot").show(ui, |p| {
                    contours(p);
                    p.points(
                        Points::new(format!("x_t (t = {paper_t})"), cloud(&shown))
                            .radius(1.5)
                            .color(c32(DDIM_RGB)),
                    );
                }));
            }
            ToyView::Reverse => {
                let f = self.frame;
                let sampler_plot =
                    |p: &mut PlotUi<'_>, name: &str, frames: &Frames, rgb: [u8; 3]| {
                        let f = f.min(frames.len() - 1);
                        p.points(
                            Points::new(name.to_owned(), cloud(&frames[f]))
                                .radius(1.5)
                                .color(c32(rgb)),
                        );
                        for k in 0..s.paths.min(frames[0].len()) {
                            let path: PlotPoints = frames[..=f]
                                .iter()
                                .map(|fr| [f64::from(fr[k][0]), f64::from(fr[k][1])])
                                .collect();
                            p.line(Line::new(format!("{name} paths"), path).color(c32(rgb)));
                        }
                    };
                match &self.trajectory {
                    Some((_, a, b)) if s.side_by_side => {
                        ui.columns(2, |cols| {
                            cols[0].label(RichText::new("DDPM").color(c32(DDPM_RGB)));
                            plot("toy ddpm").show(&mut cols[0], |p| {
                                contours(p);
                                data_points(p);
                                sampler_plot(p, "DDPM", a, DDPM_RGB);
                            });
                            cols[1].label(RichText::new("DDIM").color(c32(DDIM_RGB)));
                            plot("toy ddim").show(&mut cols[1], |p| {
                                contours(p);
                                data_points(p);
                                sampler_plot(p, "DDIM", b, DDIM_RGB);
                            });
                        });
                    }
                    traj => {
                        canvas = Some(plot("toy plot").show(ui, |p| {
                            contours(p);
                            data_points(p);
                            if let Some((_, a, b)) = traj {
                                sampler_plot(p, "DDPM", a, DDPM_RGB);
                                sampler_plot(p, "DDIM", b, DDIM_RGB);
                            }
                        }));
                    }
                }
            }
            ToyView::Flow => {}
            ToyView::Field => {
                let shown: Vec<(String, [u8; 3], Vec<Arrow>)> = self
                    .fields
                    .iter()
                    .map(|f| {
                        let (name, rgb) = match (f.model, self.fields.len()) {
                            (ToyModel::Exact, n) if n > 1 => ("exact (true)", EXACT_RGB),
                            (ToyModel::Exact, _) => ("exact", LEARNED_RGB),
                            (ToyModel::Mlp, _) => ("MLP (learned)", LEARNED_RGB),
                        };
                        let what = match s.field_kind {
                            FieldKind::Eps => "-ε_pred",
                            FieldKind::Score => "score",
                        };
                        (
                            format!("{what}: {name}"),
                            rgb,
                            self.arrow_tips(f, s.field_kind),
                        )
                    })
                    .collect();
                canvas = Some(plot("toy plot").show(ui, |p| {
                    contours(p);
                    data_points(p);
                    for (name, rgb, arrows) in shown {
                        let origins: PlotPoints = arrows
                            .iter()
                            .map(|(q, _)| [f64::from(q[0]), f64::from(q[1])])
                            .collect();
                        let tips: PlotPoints = arrows
                            .iter()
                            .map(|(_, e)| [f64::from(e[0]), f64::from(e[1])])
                            .collect();
                        p.arrows(Arrows::new(name, origins, tips).color(c32(rgb)));
                    }
                }));
            }
        }
        if drawing && let Some(response) = canvas {
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
            action = self.field_request(&settings.toy, t);
        }
        if let Some(a) = action {
            ctx.actions.push(AppAction::Toy(a));
        }
    }
}
