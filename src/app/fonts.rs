//! The fonts: egui's defaults, with two changes made by tools/make_fonts.py (licences in
//! assets/fonts):
//! - Ubuntu Light, egui's proportional font, gains the combining hat and tilde (from DejaVu
//!   Sans) that the formulas write: x̂, ε̂, β̃, μ̃. egui shapes a letter and its combining marks
//!   with the letter's font, so the marks must be in the font that draws the letter; without
//!   them β̃_t was drawn as β_t.
//! - Noto Sans CJK SC, cut to the characters difflab shows, is the last fallback of both
//!   families, for the Chinese lessons: a glyph the default fonts have is still drawn by them.

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

/// Noto Sans CJK SC, cut to the characters difflab shows (SIL OFL 1.1).
pub const CJK_FONT: &[u8] = include_bytes!("../../assets/fonts/NotoSansSC-difflab.otf");

/// Ubuntu Light derivative difflab: egui's Ubuntu Light with the combining hat and tilde.
pub const UI_FONT: &[u8] = include_bytes!("../../assets/fonts/Ubuntu-Light-difflab.ttf");

/// The name egui's default definitions give Ubuntu Light.
const UBUNTU: &str = "Ubuntu-Light";

/// The name the CJK font is registered under.
const CJK: &str = "noto-sans-sc-difflab";

/// egui's default fonts with difflab's two changes.
pub fn font_definitions() -> FontDefinitions {
    let mut fonts = FontDefinitions::default();
    fonts
        .font_data
        .insert(UBUNTU.to_owned(), Arc::new(FontData::from_static(UI_FONT)));
    fonts
        .font_data
        .insert(CJK.to_owned(), Arc::new(FontData::from_static(CJK_FONT)));
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts
            .families
            .entry(family)
            .or_default()
            .push(CJK.to_owned());
    }
    fonts
}

/// Installs [`font_definitions`].
pub fn install_fonts(ctx: &egui::Context) {
    ctx.set_fonts(font_definitions());
}
