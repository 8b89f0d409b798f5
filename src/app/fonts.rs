//! The fonts, all bundled from assets/fonts and made by tools/make_fonts.py (licences there):
//! egui's default families (Ubuntu Light proportional, Hack monospace falling back to Ubuntu
//! Light), built here rather than taken from egui's `default_fonts` feature, which is off: that
//! bundled a second Ubuntu Light and all of Hack into the browser build. The changes:
//! - Ubuntu Light, egui's proportional font, gains the combining hat and tilde (from DejaVu
//!   Sans) that the formulas write: x̂, ε̂, β̃, μ̃. egui shapes a letter and its combining marks
//!   with the letter's font, so the marks must be in the font that draws the letter; without
//!   them β̃_t was drawn as β_t.
//! - Noto Sans CJK SC, cut to the characters difflab shows, is the last fallback of both
//!   families, for the Chinese lessons: a glyph the default fonts have is still drawn by them.
//! - Hack is cut to Latin, Greek, punctuation, arrows, mathematical operators, box drawing and
//!   the characters difflab shows.

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

/// Noto Sans CJK SC, cut to the characters difflab shows (SIL OFL 1.1).
pub const CJK_FONT: &[u8] = include_bytes!("../../assets/fonts/NotoSansSC-difflab.otf");

/// Ubuntu Light derivative difflab: egui's Ubuntu Light with the combining hat and tilde.
pub const UI_FONT: &[u8] = include_bytes!("../../assets/fonts/Ubuntu-Light-difflab.ttf");

/// Hack, egui's monospace font, cut as tools/make_fonts.py says (MIT and Bitstream Vera).
pub const MONO_FONT: &[u8] = include_bytes!("../../assets/fonts/Hack-difflab.ttf");

/// The name egui's default definitions give Ubuntu Light.
const UBUNTU: &str = "Ubuntu-Light";

/// The name egui's default definitions give Hack.
const HACK: &str = "Hack";

/// The name the CJK font is registered under.
const CJK: &str = "noto-sans-sc-difflab";

/// egui's default families with difflab's fonts: Proportional is Ubuntu Light then the CJK
/// font; Monospace is Hack, then Ubuntu Light (for √ and the like, as egui's defaults), then the
/// CJK font.
pub fn font_definitions() -> FontDefinitions {
    let mut fonts = FontDefinitions::empty();
    for (name, bytes) in [(UBUNTU, UI_FONT), (HACK, MONO_FONT), (CJK, CJK_FONT)] {
        fonts
            .font_data
            .insert(name.to_owned(), Arc::new(FontData::from_static(bytes)));
    }
    let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    fonts
        .families
        .insert(FontFamily::Proportional, names(&[UBUNTU, CJK]));
    fonts
        .families
        .insert(FontFamily::Monospace, names(&[HACK, UBUNTU, CJK]));
    fonts
}

/// Installs [`font_definitions`].
pub fn install_fonts(ctx: &egui::Context) {
    ctx.set_fonts(font_definitions());
}
