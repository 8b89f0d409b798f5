//! Widgets several panels share.

use egui::{RichText, Ui};

use image::RgbImage;

use crate::app::jobs::sampler::{LabelPick, MAX_GUIDANCE, SamplerChoice, SamplerSettings};
use crate::app::jobs::worker::Picture;
use crate::app::settings::{EditSettings, GifSettings};
use crate::app::shown::Shown;

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

/// One row of labelled pictures.
pub fn picture_row_ui(ui: &mut Ui, items: &[(&str, &str, &Shown)], side: f32, sep: &[&str]) {
    ui.horizontal_top(|ui| {
        for (i, (title, tip, shown)) in items.iter().enumerate() {
            shown.labelled_ui(ui, title, tip, side);
            if let Some(s) = sep.get(i) {
                ui.vertical(|ui| {
                    ui.add_space(side / 2.0);
                    ui.label(RichText::new(*s).heading());
                });
            }
        }
    });
}

/// The line above pictures that an earlier job made with other settings than the controls now
/// show (a lesson's set-up, a moved control): `shown` names that job, `button` what remakes it.
pub fn stale_note_ui(ui: &mut Ui, shown: &str, button: &str) {
    ui.label(
        RichText::new(format!(
            "Shown: {shown}. The settings have changed since: press {button} to see theirs."
        ))
        .color(ui.visuals().warn_fg_color),
    );
}

/// An RGB image as a picture.
pub fn picture(img: &RgbImage) -> Picture {
    Picture::Cpu(egui::ColorImage::from_rgb(
        [img.width() as usize, img.height() as usize],
        img.as_raw(),
    ))
}

/// Sampler, steps, η and spacing fields. `id` distinguishes several on one panel ("A ", "B ").
/// Where `solvers` is false (the playground's toy sampler) only DDPM and DDIM are offered.
pub fn sampler_fields_ui(
    ui: &mut Ui,
    id: &str,
    s: &mut SamplerSettings,
    t_max: usize,
    solvers: bool,
) {
    if !solvers && s.solver_spec().is_some() {
        s.sampler = SamplerChoice::Ddim;
    }
    egui::ComboBox::from_label(format!("{id}Sampler"))
        .selected_text(s.sampler.label())
        // All ten at once, no scrolling.
        .height(400.0)
        .show_ui(ui, |ui| {
            for c in SamplerChoice::ALL {
                if solvers || !matches!(c, SamplerChoice::Solver(_)) {
                    ui.selectable_value(&mut s.sampler, c, c.label());
                }
            }
        });
    s.steps = s.steps.clamp(1, t_max);
    ui.add(
        egui::Slider::new(&mut s.steps, 1..=t_max)
            .logarithmic(true)
            .text(format!("{id}Steps")),
    )
    .on_hover_text("N, the number of denoising steps (1 to T)");
    if solvers {
        ui.label(format!("{id}NFE: {}", s.nfe())).on_hover_text(
            "Model evaluations (NFE), what a run costs: one a step, but two a step (less one) \
             for Heun",
        );
    }
    let solver = s.solver_spec();
    if let Some(spec) = solver {
        if spec.kind.default_order().is_some() {
            ui.add(egui::Slider::new(&mut s.order, 1..=3).text(format!("{id}Order")))
                .on_hover_text("How many past model outputs a multistep step uses (2: \"2M\")");
        }
        if spec.kind == crate::diffusion::solvers::SolverKind::FlowEuler {
            // Flow matching's σ run uniformly from 1 to 0: no Karras spacing.
            s.karras = false;
        } else {
            ui.checkbox(&mut s.karras, format!("{id}Karras σ"))
                .on_hover_text("Karras et al.'s spacing (ρ = 7): the steps crowd at small σ");
        }
        return;
    }
    ui.add_enabled(
        s.sampler == SamplerChoice::Ddim,
        egui::Slider::new(&mut s.eta, 0.0..=1.0).text(format!("{id}η")),
    )
    .on_hover_text("DDIM's η: 0 is deterministic, 1 has DDPM's variance");
    egui::ComboBox::from_label(format!("{id}Spacing"))
        .selected_text(s.spacing.name())
        .show_ui(ui, |ui| {
            for sp in crate::diffusion::TimestepSpacing::ALL {
                ui.selectable_value(&mut s.spacing, sp, sp.name());
            }
        });
}

/// A picture in a frame, outlined in amber when `highlighted` (the frame the timeline or α is
/// on); returns the picture's response (clickable).
pub fn framed_image_ui(ui: &mut Ui, shown: &Shown, side: f32, highlighted: bool) -> egui::Response {
    let stroke = if highlighted {
        egui::Stroke::new(3.0, egui::Color32::from_rgb(250, 200, 40))
    } else {
        egui::Stroke::NONE
    };
    egui::Frame::new()
        .stroke(stroke)
        .inner_margin(2.0)
        .show(ui, |ui| shown.image_ui(ui, side))
        .inner
}

/// A "working" indicator for the status bar that moves once per `tick` (the pace at which a
/// run repaints the window). egui's spinner asks for a repaint every frame: the whole window
/// redrawn as fast as it can be, which on a software renderer took more of the CPU than the run
/// it was showing, and made a guided DDIM-50 run in the app take twice as long as in the CLI.
pub fn busy_ui(ui: &mut Ui, tick: std::time::Duration) {
    let ticks = (ui.input(|i| i.time) / tick.as_secs_f64()) as usize;
    let dots = ["·  ", "·· ", "···", " ··"][ticks % 4];
    ui.label(
        RichText::new(format!("working {dots}"))
            .small()
            .family(egui::FontFamily::Monospace),
    )
    .on_hover_text("A job is running");
    // Two ticks: a run that streams repaints at the pace already (every tick), and the dots
    // move with each of its frames; asking for a frame a tick after each frame as well drew
    // about twice as many (in a page drawing in software, each one about 30 ms of a core).
    ui.ctx().request_repaint_after(2 * tick);
}

/// A line between parts, as `ui.separator()` draws it, but not a widget: egui styles a
/// separator from its state in the previous pass and asks for another frame when it is new
/// (`egui/src/theme/mod.rs`), so a separator that comes and goes with a job (the status line's,
/// a run's picture rows) drew each frame that showed it twice.
pub fn rule(ui: &mut Ui) {
    let stroke = ui.visuals().widgets.noninteractive.bg_stroke;
    let spacing = 6.0;
    if ui.layout().main_dir().is_horizontal() {
        let (rect, _) = ui.allocate_exact_size(
            egui::vec2(
                spacing,
                ui.available_height().min(ui.spacing().interact_size.y),
            ),
            egui::Sense::hover(),
        );
        ui.painter().vline(rect.center().x, rect.y_range(), stroke);
    } else {
        let (rect, _) = ui.allocate_exact_size(
            egui::vec2(ui.available_width(), spacing),
            egui::Sense::hover(),
        );
        ui.painter().hline(rect.x_range(), rect.center().y, stroke);
    }
}

/// A number as a blackboard writes it, to `significant` digits: plainly between 0.001 and
/// 10,000 (`1.101`, `0.0240`), else as a power of ten (`4.04 × 10⁻⁵`), never Rust's `4.04e-5`.
pub fn number_text(x: f64, significant: usize) -> String {
    let significant = significant.max(1);
    if x == 0.0 || !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x.is_infinite() {
            if x > 0.0 { "∞" } else { "−∞" }.into()
        } else {
            "0".into()
        };
    }
    let minus = if x < 0.0 { "−" } else { "" };
    // Round first, so that 9.9996 at 4 digits becomes 10.00 and is placed by its new exponent.
    let rounded: f64 = format!("{:.*e}", significant - 1, x.abs())
        .parse()
        .unwrap_or(x.abs());
    let exponent = rounded.log10().floor() as i32;
    if (-3..4).contains(&exponent) {
        let decimals = (significant as i32 - 1 - exponent).max(0) as usize;
        return format!("{minus}{rounded:.decimals$}");
    }
    let mantissa = rounded / 10f64.powi(exponent);
    // A string, not chars, so that the glyph test (tests/app/lessons.rs) reads them.
    const SUPERSCRIPT: &str = "⁰¹²³⁴⁵⁶⁷⁸⁹";
    let mut power: String = if exponent < 0 {
        "⁻".into()
    } else {
        String::new()
    };
    power.extend(
        exponent
            .unsigned_abs()
            .to_string()
            .bytes()
            .filter_map(|d| SUPERSCRIPT.chars().nth(usize::from(d - b'0'))),
    );
    format!("{minus}{mantissa:.*} × 10{power}", significant - 1)
}

/// Counts of `values` in `bins` equal bins over `range` (values outside it are left out).
pub fn histogram_counts(values: &[f32], bins: usize, range: (f32, f32)) -> Vec<f32> {
    let (lo, hi) = range;
    let width = (hi - lo) / bins as f32;
    let mut counts = vec![0.0f32; bins];
    for &v in values {
        if v.is_finite() && v >= lo && v < hi {
            let b = (((v - lo) / width) as usize).min(bins - 1);
            counts[b] += 1.0;
        }
    }
    counts
}

/// A histogram (`counts` in equal bins over `range`) as a density, over the N(0, 1) density.
pub fn normal_histogram_ui(ui: &mut Ui, id: &str, name: &str, counts: &[f32], range: (f32, f32)) {
    use egui::Color32;
    use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints};
    let total: f32 = counts.iter().sum();
    let (lo, hi) = range;
    let width = f64::from((hi - lo) / counts.len().max(1) as f32);
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let density = if total > 0.0 {
                f64::from(*c) / (f64::from(total) * width)
            } else {
                0.0
            };
            Bar::new(f64::from(lo) + (i as f64 + 0.5) * width, density).width(width)
        })
        .collect();
    let normal: PlotPoints = (0..=200)
        .map(|i| {
            let x = f64::from(lo) + f64::from(i) * f64::from(hi - lo) / 200.0;
            [x, (-0.5 * x * x).exp() / (std::f64::consts::TAU).sqrt()]
        })
        .collect();
    Plot::new(id)
        .height(180.0)
        .width(ui.available_width().min(640.0))
        .allow_scroll(false)
        .allow_drag(false)
        .show(ui, |p| {
            p.bar_chart(BarChart::new(name, bars).color(Color32::from_rgb(90, 140, 220)));
            p.line(Line::new("N(0, 1)", normal).color(Color32::from_rgb(230, 120, 40)));
        });
}

/// The edits' sampler: DDIM (η = 0, trailing timesteps) or DDPM, and its steps (what the core's
/// `edit_scheduler` takes; η and the spacing are not the edits' to choose).
pub fn edit_sampler_ui(ui: &mut Ui, e: &mut EditSettings, t_max: usize) {
    use crate::app::jobs::sampler::SamplerChoice;
    ui.horizontal(|ui| {
        ui.selectable_value(&mut e.sampler.sampler, SamplerChoice::Ddim, "DDIM")
            .on_hover_text("Deterministic DDIM (η = 0) on trailing timesteps");
        ui.selectable_value(
            &mut e.sampler.sampler,
            SamplerChoice::DdpmFixedSmall,
            "DDPM",
        )
        .on_hover_text("Ancestral sampling, σ² = β̃");
    });
    ui.add(
        egui::Slider::new(&mut e.sampler.steps, 1..=t_max)
            .logarithmic(true)
            .text("Steps"),
    );
}

/// The digit guided towards and w.
pub fn edit_guidance_ui(ui: &mut Ui, e: &mut EditSettings, takes_digits: bool) {
    ui.add_enabled_ui(takes_digits, |ui| {
        egui::ComboBox::from_label("Guide towards")
            .height(400.0)
            .selected_text(match e.guidance.label {
                LabelPick::Digit(d) => format!("digit {d}"),
                _ => "no digit".into(),
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut e.guidance.label, LabelPick::Any, "no digit");
                for d in 0..=9 {
                    ui.selectable_value(
                        &mut e.guidance.label,
                        LabelPick::Digit(d),
                        format!("digit {d}"),
                    );
                }
            });
        ui.add_enabled(
            matches!(e.guidance.label, LabelPick::Digit(_)),
            egui::Slider::new(&mut e.guidance.scale, 0.0..=MAX_GUIDANCE).text("w"),
        )
        .on_hover_text("Classifier-free guidance: ε̃ = ε_∅ + w·(ε_c − ε_∅)");
    })
    .response
    .on_disabled_hover_text(
        "Guidance needs the class-conditional U-Net (the sampling panel's model)",
    );
}

#[cfg(test)]
mod tests {
    use super::number_text;

    #[test]
    fn numbers_read_as_a_blackboard_writes_them() {
        let cases = [
            (1.101_234, 4, "1.101"),
            (4.036e-5, 3, "4.04 × 10⁻⁵"),
            (0.024, 3, "0.0240"),
            (0.001, 2, "0.0010"),
            (0.000_999_9, 2, "0.0010"),
            (0.000_123_4, 2, "1.2 × 10⁻⁴"),
            (9_999.6, 4, "1.000 × 10⁴"),
            (1_234.6, 4, "1235"),
            (2.5e12, 2, "2.5 × 10¹²"),
            (-3.2e-7, 2, "−3.2 × 10⁻⁷"),
            (9.9996, 4, "10.00"),
            (0.0, 3, "0"),
            (f64::INFINITY, 3, "∞"),
            (f64::NAN, 3, "NaN"),
        ];
        for (x, digits, want) in cases {
            assert_eq!(number_text(x, digits), want, "{x} to {digits} digits");
        }
    }
}
