//! Widgets several panels share.

use egui::Ui;

use super::settings::GifSettings;

/// The GIF export settings (frames, delay, scale), under a heading.
pub fn gif_ui(ui: &mut Ui, g: &mut GifSettings) {
    ui.separator();
    ui.heading("GIF export");
    ui.add(egui::Slider::new(&mut g.max_frames, 2..=200).text("Frames"));
    ui.add(
        egui::Slider::new(&mut g.delay_ms, 10..=1000)
            .text("Delay")
            .suffix(" ms"),
    );
    ui.add(egui::Slider::new(&mut g.scale, 1..=8).text("Scale"));
}
