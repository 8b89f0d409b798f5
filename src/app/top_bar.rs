//! The bar at the top of the window: the tabs, the session and theme buttons (on a row of their
//! own when the window is too narrow for both), and the error banner under them.

use egui::{Color32, RichText, Ui};

use super::settings::Tab;
use super::{DiffLabApp, apply_theme, files};

/// The session buttons' labels, right to left, before the theme button.
const OPEN: &str = "Open session…";
const SAVE: &str = "Save session…";
const RESET: &str = "Reset to defaults";
const HELP: &str = "Help";

impl DiffLabApp {
    fn theme_label(&self) -> &'static str {
        if self.settings.dark_mode {
            "Light theme"
        } else {
            "Dark theme"
        }
    }

    /// The width the session buttons take in one row.
    fn session_buttons_width(&self, ui: &Ui) -> f32 {
        let font = egui::TextStyle::Button.resolve(ui.style());
        let labels = [HELP, OPEN, SAVE, RESET, self.theme_label()];
        let pad = 2.0 * ui.spacing().button_padding.x + ui.spacing().item_spacing.x;
        labels
            .iter()
            .map(|l| {
                ui.painter()
                    .layout_no_wrap((*l).to_string(), font.clone(), Color32::WHITE)
                    .size()
                    .x
                    + pad
            })
            .sum()
    }

    /// Help, open and save a session, reset, switch the theme (right to left).
    fn session_buttons_ui(&mut self, ui: &mut Ui) {
        ui.menu_button(HELP, |ui| self.help.menu_ui(ui));
        if ui.button(OPEN).clicked()
            && let Some(path) = self.dialog(files::pick_file("difflab session", &["json"]))
        {
            let ctx = ui.ctx().clone();
            match self.open_session(&path, &ctx) {
                Ok(()) => self.notice = Some(format!("opened {}", path.display())),
                Err(e) => self.banner = Some(e.to_string()),
            }
        }
        if ui.button(SAVE).clicked()
            && let Some(path) = self.dialog(files::save_file("session.json"))
        {
            match self.save_session(&path) {
                Ok(()) => self.notice = Some(format!("wrote {}", path.display())),
                Err(e) => self.banner = Some(e.to_string()),
            }
        }
        if ui.button(RESET).clicked() {
            let ctx = ui.ctx().clone();
            self.reset_to_defaults(&ctx);
        }
        if ui
            .button(self.theme_label())
            .on_hover_text("Switch the theme")
            .clicked()
        {
            self.settings.dark_mode = !self.settings.dark_mode;
            apply_theme(ui.ctx(), self.settings.dark_mode);
        }
    }

    /// The bar at the top: the tabs, the session buttons and the error banner.
    pub(super) fn top_bar_ui(&mut self, ui: &mut Ui) {
        // Presenter mode keeps the bar to the tabs: at 1.75× the buttons would cover them.
        let buttons = !self.settings.lessons.presenter;
        let mut second_row = false;
        // Wrapped: in presenter mode on a narrow screen the tabs take two rows rather than
        // losing the last ones past the edge.
        ui.horizontal_wrapped(|ui| {
            ui.heading("difflab");
            ui.separator();
            ui.selectable_value(&mut self.settings.tab, Tab::Forward, "Forward process");
            ui.selectable_value(&mut self.settings.tab, Tab::Schedule, "Schedule");
            ui.selectable_value(&mut self.settings.tab, Tab::Sampling, "Sampling");
            ui.selectable_value(&mut self.settings.tab, Tab::Compare, "Compare");
            ui.selectable_value(&mut self.settings.tab, Tab::Interpolate, "Interpolate");
            ui.selectable_value(&mut self.settings.tab, Tab::Playground, "2-D playground");
            ui.selectable_value(&mut self.settings.tab, Tab::Edit, "Edit");
            ui.selectable_value(&mut self.settings.tab, Tab::Lessons, "Lessons");
            // In a narrow window (a 1024-pixel projector) the buttons go on a row of their own
            // rather than over the last tabs.
            if buttons && ui.available_size_before_wrap().x >= self.session_buttons_width(ui) {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    self.session_buttons_ui(ui);
                });
            } else {
                second_row = buttons;
            }
        });
        if second_row {
            // One row's height, so the buttons sit right under the tabs.
            let size = egui::vec2(ui.available_width(), ui.spacing().interact_size.y);
            ui.allocate_ui_with_layout(
                size,
                egui::Layout::right_to_left(egui::Align::Center),
                |ui| self.session_buttons_ui(ui),
            );
        }
        if let Some(msg) = self.banner.clone() {
            egui::Frame::new()
                .fill(Color32::from_rgb(120, 30, 30))
                .inner_margin(6.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(format!("Error: {msg}")).color(Color32::WHITE));
                        if ui.button("Dismiss").clicked() {
                            self.banner = None;
                        }
                    });
                });
        }
    }
}

impl DiffLabApp {
    /// The status line: where the work runs, the forward panel's timings, busy, GIF progress,
    /// the last notice.
    pub(super) fn status_ui(&self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Computing on {}", self.compute_label)).small());
            // The page's Web Workers that share the CPU kernels or take pieces of the model's
            // calls (none on the desktop, where rayon's threads do).
            let helpers = super::web_workers();
            if helpers > 0 && self.on_flex {
                let s = if helpers == 1 { "" } else { "s" };
                ui.label(RichText::new(format!("+ {helpers} Web Worker{s}")).small());
            }
            if let Some(ms) = self.forward.update_ms {
                super::panels::widgets::rule(ui);
                ui.label(RichText::new(format!("update {ms:.1} ms")).small());
            }
            if let Some(ms) = self.forward.chain_ms {
                super::panels::widgets::rule(ui);
                ui.label(RichText::new(format!("chain walk {ms:.1} ms")).small());
            }
            if self.is_busy() {
                super::panels::widgets::rule(ui);
                super::panels::widgets::busy_ui(ui, self.pace.every());
            }
            if let Some((done, total)) = self.export_progress {
                super::panels::widgets::rule(ui);
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .desired_width(160.0)
                        .text(format!("GIF {done}/{total}")),
                );
            }
            if let Some(n) = &self.notice {
                super::panels::widgets::rule(ui);
                ui.label(RichText::new(n).small());
            }
        });
    }
}
