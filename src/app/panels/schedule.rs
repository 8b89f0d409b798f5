//! The schedule panel: β_t, ᾱ_t, √ᾱ_t, √(1−ᾱ_t), log SNR and β̃_t for any schedule, with a second
//! schedule overlaid, the current t, and the timesteps a sampler would visit.

use std::sync::Arc;

use egui::{Color32, RichText, Ui};
use egui_plot::{Corner, Legend, Line, LineStyle, Plot, PlotPoints, Points, VLine};

use super::forward::formula;
use super::widgets;
use super::{AppAction, Ctx, Panel};
use crate::app::settings::{Settings, Tab};
use crate::diffusion::solvers::{SolverKind, SolverSpec};
use crate::diffusion::{BetaSchedule, NoiseSchedule, ScheduleConfig, TimestepSpacing, timesteps};
use crate::error::Result;

/// √ᾱ_T above this (ᾱ_T above 0.0025) draws the terminal-SNR warning.
pub const TERMINAL_SQRT_ABAR_WARN: f64 = 0.05;

/// Text fields for one schedule, parsed and validated as the user types.
#[derive(Clone, Debug)]
pub struct ScheduleDraft {
    /// T as typed.
    pub t_text: String,
    /// β_start as typed.
    pub beta_start_text: String,
    /// β_end as typed.
    pub beta_end_text: String,
    /// Why the typed values are refused, if they are.
    pub error: Option<String>,
}

impl ScheduleDraft {
    fn from_config(c: &ScheduleConfig) -> Self {
        Self {
            t_text: c.num_train_timesteps.to_string(),
            beta_start_text: c.beta_start.to_string(),
            beta_end_text: c.beta_end.to_string(),
            error: None,
        }
    }

    /// Parses the fields into a config of kind `kind`, with a message for each problem.
    pub fn parse(&self, kind: BetaSchedule) -> std::result::Result<ScheduleConfig, String> {
        let t =
            self.t_text.trim().parse::<usize>().map_err(|_| {
                format!("T must be a whole number ≥ 1, not '{}'", self.t_text.trim())
            })?;
        let num = |s: &str, what: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("{what} must be a number, not '{}'", s.trim()))
        };
        let config = ScheduleConfig {
            kind,
            num_train_timesteps: t,
            beta_start: num(&self.beta_start_text, "β start")?,
            beta_end: num(&self.beta_end_text, "β end")?,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// The panel's state.
pub struct SchedulePanel {
    /// Fields of the main schedule.
    pub draft: ScheduleDraft,
    /// Fields of the overlaid schedule.
    pub compare_draft: ScheduleDraft,
    cache: Option<Arc<NoiseSchedule>>,
    compare_cache: Option<Arc<NoiseSchedule>>,
}

impl SchedulePanel {
    /// Fields filled from the settings.
    pub fn new(settings: &Settings) -> Self {
        Self {
            draft: ScheduleDraft::from_config(&settings.schedule),
            compare_draft: ScheduleDraft::from_config(&settings.schedule_view.compare_schedule),
            cache: None,
            compare_cache: None,
        }
    }

    /// The current schedule, built once per config.
    pub fn schedule(&mut self, config: ScheduleConfig) -> Result<Arc<NoiseSchedule>> {
        cached(&mut self.cache, config)
    }

    /// Refills the fields (after "reset to defaults").
    pub fn reset(&mut self, settings: &Settings) {
        *self = Self::new(settings);
    }
}

/// A plotted quantity: title, formula tooltip, value at index i, whether it carries the sampler
/// markers.
type Curve = (
    &'static str,
    &'static str,
    fn(&NoiseSchedule, usize) -> f64,
    bool,
);

fn cached(
    slot: &mut Option<Arc<NoiseSchedule>>,
    config: ScheduleConfig,
) -> Result<Arc<NoiseSchedule>> {
    if let Some(s) = slot
        && s.config == config
    {
        return Ok(s.clone());
    }
    let s = Arc::new(NoiseSchedule::new(config)?);
    *slot = Some(s.clone());
    Ok(s)
}

/// One curve over the paper's t = 1..T (index i is t = i + 1).
fn curve(s: &NoiseSchedule, f: fn(&NoiseSchedule, usize) -> f64) -> PlotPoints<'static> {
    (0..s.num_timesteps())
        .map(|i| [(i + 1) as f64, f(s, i)])
        .collect()
}

/// The kind, T and β fields of one schedule. Returns a new valid config when the user changed
/// one; shows the reason when the typed values are refused.
fn schedule_fields_ui(
    ui: &mut Ui,
    id: &str,
    draft: &mut ScheduleDraft,
    current: ScheduleConfig,
) -> Option<ScheduleConfig> {
    let mut kind = current.kind;
    let prefix = if id == "compare" { "Overlay " } else { "" };
    egui::ComboBox::from_label(format!("{prefix}β schedule"))
        .selected_text(kind.name())
        .show_ui(ui, |ui| {
            for k in BetaSchedule::ALL {
                ui.selectable_value(&mut kind, k, k.name());
            }
        })
        .response
        .on_hover_text("linear (Ho et al.), scaled-linear (Stable Diffusion), cosine (Nichol & Dhariwal), sigmoid");
    let mut changed = kind != current.kind;
    egui::Grid::new((id, "fields"))
        .num_columns(2)
        .show(ui, |ui| {
            for (label, text, tip) in [
                (
                    "T",
                    &mut draft.t_text,
                    "T, the number of diffusion steps (1 to 100000)",
                ),
                (
                    "β start",
                    &mut draft.beta_start_text,
                    "β_1 (ignored by cosine)",
                ),
                (
                    "β end",
                    &mut draft.beta_end_text,
                    "β_T (ignored by cosine); 0 < β < 1",
                ),
            ] {
                let l = ui.label(format!("{prefix}{label}")).on_hover_text(tip);
                changed |= ui
                    .add(egui::TextEdit::singleline(text).desired_width(80.0))
                    .labelled_by(l.id)
                    .changed();
                ui.end_row();
            }
        });
    if !changed {
        if let Some(e) = &draft.error {
            ui.colored_label(Color32::RED, e);
        }
        return None;
    }
    match draft.parse(kind) {
        Ok(c) => {
            draft.error = None;
            Some(c)
        }
        Err(e) => {
            ui.colored_label(Color32::RED, &e);
            draft.error = Some(e);
            // The kind alone can still change while a field is being edited.
            None
        }
    }
}

impl Panel for SchedulePanel {
    fn tab(&self) -> Tab {
        Tab::Schedule
    }

    /// The controls: schedule kind, T, β range, overlay, sampler markers, export.
    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &mut *ctx.settings;
        ui.heading("Schedule");
        if let Some(c) = schedule_fields_ui(ui, "schedule", &mut self.draft, settings.schedule) {
            settings.schedule = c;
            settings.t = settings.t.min(c.num_train_timesteps);
            settings.schedule_view.sampler_steps = settings
                .schedule_view
                .sampler_steps
                .min(c.num_train_timesteps);
        }
        ui.separator();
        ui.checkbox(
            &mut settings.schedule_view.compare_enabled,
            "Overlay a second schedule",
        );
        if settings.schedule_view.compare_enabled
            && let Some(c) = schedule_fields_ui(
                ui,
                "compare",
                &mut self.compare_draft,
                settings.schedule_view.compare_schedule,
            )
        {
            settings.schedule_view.compare_schedule = c;
        }
        ui.separator();
        ui.heading("Sampler timesteps");
        let t_max = settings.num_timesteps();
        ui.add(
            egui::Slider::new(&mut settings.schedule_view.sampler_steps, 1..=t_max)
                .logarithmic(true)
                .text("Steps N"),
        )
        .on_hover_text("The markers show the timesteps a sampler with N steps visits");
        let view = &mut settings.schedule_view;
        let label = |k: Option<SolverKind>| k.map_or("DDPM / DDIM", SolverKind::cli_name);
        egui::ComboBox::from_label("Markers of")
            .selected_text(label(view.solver))
            .height(400.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut view.solver, None, label(None));
                for k in SolverKind::ALL {
                    ui.selectable_value(&mut view.solver, Some(k), label(Some(k)));
                }
            })
            .response
            .on_hover_text("The sampler whose model calls the markers show");
        if view.solver.is_some() {
            ui.checkbox(&mut view.karras, "Karras σ")
                .on_hover_text("Karras et al.'s σ spacing: the calls crowd at small σ (low t)");
        } else {
            egui::ComboBox::from_label("Spacing")
                .selected_text(view.spacing.name())
                .show_ui(ui, |ui| {
                    for s in TimestepSpacing::ALL {
                        ui.selectable_value(&mut view.spacing, s, s.name());
                    }
                });
        }
        ui.separator();
        if ui.button("Export curves (CSV)…").clicked() {
            ctx.actions.push(AppAction::ExportScheduleCsv);
        }
    }

    /// The curves.
    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let settings = &*ctx.settings;
        let schedule = match self.schedule(settings.schedule) {
            Ok(s) => s,
            Err(e) => {
                ui.colored_label(Color32::RED, e.to_string());
                return;
            }
        };
        let compare = if settings.schedule_view.compare_enabled {
            cached(
                &mut self.compare_cache,
                settings.schedule_view.compare_schedule,
            )
            .ok()
        } else {
            None
        };

        let terminal = schedule.terminal_alpha_cumprod();
        if terminal.sqrt() > TERMINAL_SQRT_ABAR_WARN {
            ui.colored_label(
                Color32::from_rgb(230, 160, 40),
                format!(
                    "Warning: terminal SNR too high: ᾱ_T = {terminal:.4} (√ᾱ_T = {:.3}). x_T still holds \
                     signal, so sampling from pure noise starts off the training distribution \
                     (Lin et al. 2024).",
                    terminal.sqrt()
                ),
            );
        } else {
            ui.label(
                RichText::new(format!(
                    "ᾱ_T = {}: x_T is almost pure noise.",
                    widgets::number_text(terminal, 3)
                ))
                .weak(),
            );
        }

        let visits = marker_timesteps(settings);
        let link = ui.scope_id().with("schedule-x");
        // Three rows, each a title line, the plot and the spacing around them: the plots share
        // what is left, so the bottom row's axis stays on screen.
        let row_extra =
            ui.text_style_height(&egui::TextStyle::Body) + 2.0 * ui.spacing().item_spacing.y;
        let height = ((ui.available_height() - 3.0 * row_extra - 8.0) / 3.0).max(120.0);
        let t = settings.t as f64;
        let primary = Color32::from_rgb(70, 130, 230);
        let second = Color32::from_rgb(230, 110, 60);

        ui.columns(2, |cols| {
            let curves: [Curve; 6] = [
                ("β_t", formula::BETA, |s, i| s.betas[i], false),
                ("ᾱ_t", formula::ABAR, |s, i| s.alphas_cumprod[i], true),
                (
                    "√ᾱ_t",
                    formula::SQRT_ABAR,
                    |s, i| s.sqrt_alphas_cumprod[i],
                    false,
                ),
                (
                    "√(1−ᾱ_t)",
                    formula::SQRT_ONE_MINUS,
                    |s, i| s.sqrt_one_minus_alphas_cumprod[i],
                    false,
                ),
                ("log SNR_t", formula::LOG_SNR, |s, i| s.log_snr[i], false),
                (
                    "β~_t (posterior) and β_t",
                    formula::POSTERIOR,
                    |s, i| s.posterior_variance[i],
                    false,
                ),
            ];
            for (k, (name, tip, f, markers)) in curves.into_iter().enumerate() {
                let ui = &mut cols[k % 2];
                ui.label(RichText::new(name).strong()).on_hover_text(tip);
                // The legend goes in a corner the curve leaves empty: bottom right for a rising
                // curve (β_t ends at the top right), top right for a falling one.
                let last = schedule.betas.len().saturating_sub(1);
                let corner = if f(&schedule, last) > f(&schedule, 0) {
                    Corner::RightBottom
                } else {
                    Corner::RightTop
                };
                Plot::new(("curve", k))
                    .height(height)
                    .link_axis(link, [true, false])
                    .link_cursor(link, [true, false])
                    .legend(Legend::default().position(corner))
                    .x_axis_label("t")
                    .show(ui, |p| {
                        p.line(
                            Line::new(settings.schedule.kind.name(), curve(&schedule, f))
                                .color(primary),
                        );
                        if name.starts_with("β~") {
                            p.line(
                                Line::new("β_t", curve(&schedule, |s, i| s.betas[i]))
                                    .color(Color32::GRAY)
                                    .style(LineStyle::dashed_dense()),
                            );
                        }
                        if let Some(c) = &compare {
                            p.line(
                                Line::new(
                                    format!("{} (overlay)", c.config.kind.name()),
                                    curve(c, f),
                                )
                                .color(second)
                                .style(LineStyle::dashed_loose()),
                            );
                        }
                        if markers && !visits.is_empty() {
                            let pts: PlotPoints = visits
                                .iter()
                                .map(|&(x, v)| [x + 1.0, f(&schedule, v)])
                                .collect();
                            let what = if settings.schedule_view.solver.is_some() {
                                "model calls"
                            } else {
                                "steps"
                            };
                            p.points(
                                Points::new(format!("{} {what}", visits.len()), pts).radius(3.0),
                            );
                        }
                        p.vline(VLine::new("t", t).color(Color32::from_rgb(250, 200, 40)));
                    });
            }
        });
    }
}

/// Where the markers go: the t (fractional for the Euler family) of each step of DDPM/DDIM on
/// the chosen spacing, or of each model call of the chosen solver, with the integer t whose
/// curve value is shown.
pub fn marker_timesteps(settings: &Settings) -> Vec<(f64, usize)> {
    let view = &settings.schedule_view;
    let t_max = settings.num_timesteps().saturating_sub(1);
    match view.solver {
        None => timesteps(
            view.spacing,
            settings.num_timesteps(),
            view.sampler_steps,
            0,
        )
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t as f64, t))
        .collect(),
        Some(kind) => SolverSpec {
            kind,
            order: None,
            karras: view.karras,
        }
        .build(
            &settings.schedule,
            crate::diffusion::PredictionType::Epsilon,
            view.sampler_steps,
        )
        .map(|s| {
            s.call_timesteps()
                .into_iter()
                .map(|t| (t, (t.round().max(0.0) as usize).min(t_max)))
                .collect()
        })
        .unwrap_or_default(),
    }
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    /// DDIM's markers are its N timesteps; Heun's are its 2N − 1 model calls; Karras σ moves
    /// the calls towards small t.
    #[test]
    fn markers_follow_the_sampler_and_karras() {
        let mut settings = Settings::default();
        settings.schedule_view.sampler_steps = 10;
        settings.schedule_view.spacing = TimestepSpacing::Trailing;
        let ddim = marker_timesteps(&settings);
        assert_eq!(ddim.first(), Some(&(999.0, 999)));
        assert_eq!(ddim.len(), 10);
        settings.schedule_view.solver = Some(SolverKind::Heun);
        assert_eq!(marker_timesteps(&settings).len(), 19);
        settings.schedule_view.solver = Some(SolverKind::DpmSolverPlusPlus);
        let plain = marker_timesteps(&settings);
        settings.schedule_view.karras = true;
        let karras = marker_timesteps(&settings);
        assert_eq!(plain.len(), 10);
        assert_eq!(karras.len(), 10);
        let below = |m: &[(f64, usize)]| m.iter().filter(|(t, _)| *t < 200.0).count();
        assert!(
            below(&karras) > below(&plain),
            "{karras:?} against {plain:?}"
        );
    }
}
