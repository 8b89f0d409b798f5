//! The 2-D playground's colours and plot range, shared by its views and its exports.

use egui::Color32;

/// DDPM's colour (plots and exports).
pub const DDPM_RGB: [u8; 3] = [220, 80, 60];
/// DDIM's colour.
pub const DDIM_RGB: [u8; 3] = [60, 110, 230];
/// The learned field's colour.
pub const LEARNED_RGB: [u8; 3] = [200, 120, 40];
/// The exact (true) field's colour.
pub const EXACT_RGB: [u8; 3] = [170, 80, 200];
/// The N(0, I) contours' colour.
pub const CONTOUR_RGB: [u8; 3] = [120, 160, 120];
/// The data's colour.
pub const DATA_RGB: [u8; 3] = [150, 150, 150];
/// The plots cover [−PLOT_RANGE, PLOT_RANGE]².
pub const PLOT_RANGE: f32 = 3.0;
/// Exported plots are this many pixels square.
pub const EXPORT_PX: u32 = 360;

/// An RGB triple as egui's colour.
pub fn c32(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}
