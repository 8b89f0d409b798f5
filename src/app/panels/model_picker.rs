//! The model controls of the sampling panel (whose model the compare and interpolate panels
//! use too): the model menu, **Open weights…**, a line on what the model is, the digit picker
//! and the guidance slider, and the schedule warning.

use egui::{RichText, Ui};

use super::AppAction;
use crate::app::jobs::sampler::{LabelPick, ModelSpec};
use crate::app::settings::Settings;
use crate::app::unet_file::SHIPPED;

/// Classifier-free guidance.
pub const CFG: &str = "ε_guided = ε_uncond + w·(ε_cond − ε_uncond): w = 0 is the unconditional model (no label), w = 1 the conditional one, w > 1 pushes further towards the digit   (Ho & Salimans 2022, classifier-free guidance)";

/// Why the digit and guidance controls are off for `model` (`None`: they are on).
pub fn no_guidance_reason(model: ModelSpec) -> Option<String> {
    if !model.unet {
        return Some(
            "Only the U-Net takes a digit (it is class-conditional): the exact denoiser knows no \
             labels."
                .into(),
        );
    }
    match model.unet_file() {
        Ok(f) => f.no_digits_reason(),
        Err(e) => Some(e.to_string()),
    }
}

/// A note when `schedule` is not the one the chosen U-Net was trained on.
pub fn schedule_note(
    model: ModelSpec,
    schedule: &crate::diffusion::ScheduleConfig,
) -> Option<String> {
    if !model.unet {
        return None;
    }
    model.unet_file().ok()?.schedule_note(schedule)
}

/// The digit picker and the guidance slider (disabled, with the reason, for a model without
/// labels).
pub fn guidance_ui(ui: &mut Ui, settings: &mut Settings) {
    let off = no_guidance_reason(settings.sampling.model);
    let enabled = off.is_none();
    let off = off.unwrap_or_default();
    let g = &mut settings.sampling.guidance;
    ui.add_enabled_ui(enabled, |ui| {
        egui::ComboBox::from_label("Digit")
            .selected_text(g.label.label())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut g.label, LabelPick::Any, LabelPick::Any.label());
                for d in 0..10u8 {
                    let l = LabelPick::Digit(d);
                    ui.selectable_value(&mut g.label, l, l.label());
                }
                let l = LabelPick::PerRow;
                ui.selectable_value(&mut g.label, l, l.label());
            })
            .response
            .on_hover_text("The digit the U-Net is asked to draw (classifier-free guidance)")
            .on_disabled_hover_text(&off);
        ui.add_enabled(
            g.label != LabelPick::Any,
            egui::Slider::new(&mut g.scale, 0.0..=crate::app::jobs::sampler::MAX_GUIDANCE)
                .text("Guidance w"),
        )
        .on_hover_text(CFG)
        .on_disabled_hover_text(if enabled {
            "Pick a digit first: without a label the model samples unconditionally (ε_uncond)"
        } else {
            &off
        });
    });
}

/// The model choices offered.
pub const MODEL_SIZES: [usize; 3] = [100, 1000, 10_000];

/// The model menu (the shipped U-Net, an opened file, the exact denoisers), Open weights…, what
/// the model is, the digit and w, and the schedule warning.
pub fn model_ui(ui: &mut Ui, settings: &mut Settings, actions: &mut Vec<AppAction>) {
    let m = &mut settings.sampling.model;
    let opened = settings.unet_weights.as_ref().map(|o| o.id);
    // A long file name is cut short (…) so the menu keeps its label on one line; the line
    // under it names the model in full.
    egui::ComboBox::from_label("Model")
        .selected_text(crate::error::ellipsized(&m.label(), 23))
        .show_ui(ui, |ui| {
            let shipped = ModelSpec {
                unet: true,
                weights: SHIPPED,
                ..*m
            };
            ui.selectable_value(m, shipped, shipped.label());
            let flow = ModelSpec {
                unet: true,
                weights: crate::app::unet_file::SHIPPED_FLOW,
                ..*m
            };
            ui.selectable_value(m, flow, flow.label());
            if let Some(id) = opened {
                let file = ModelSpec {
                    unet: true,
                    weights: id,
                    ..*m
                };
                ui.selectable_value(m, file, file.label());
            }
            for n in MODEL_SIZES {
                let exact = ModelSpec::exact(n);
                ui.selectable_value(m, exact, exact.label());
            }
        })
        .response
        .on_hover_text(
            "The shipped U-Net learned from 10,000 digits, so it makes new ones. The exact denoiser \
                 is the optimal denoiser of the first N digits: it memorises, so its samples \
                 are training digits.",
        );
    if ui
        .button("Open weights…")
        .on_hover_text(
            "Sample with a U-Net you trained (difflab train) or averaged (difflab average): \
                 its .safetensors file (MNIST digits, or your own pictures up to 128×128). \
                 Dropping the file on the window opens it too.",
        )
        .clicked()
    {
        actions.push(AppAction::OpenWeights);
    }
    // A flow-matching model samples with flow matching's Euler only, and only it does.
    settings.sampling.sampler.sampler = settings
        .sampling
        .model
        .sampler_for(settings.sampling.sampler.sampler);
    // What the chosen model is, one line (always drawn, so the widgets below keep their ids).
    let model = settings.sampling.model;
    let what = match model.unet_file() {
        _ if !model.unet => format!(
            "the optimal denoiser of the first {} digits: its samples are training digits",
            model.count
        ),
        Ok(f) if model.weights == SHIPPED => f.summary(),
        Ok(f) => format!("{}: {}", f.name, f.summary()),
        Err(e) => e.to_string(),
    };
    ui.label(RichText::new(what).small());
    guidance_ui(ui, settings);
    if let Some(note) = schedule_note(settings.sampling.model, &settings.schedule) {
        ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {note}"));
    }
}

/// A side's model: the sampling panel's, or one of the shipped nets (the diffusion U-Net, the
/// flow-matching U-Net); its sampler follows (flow matching's Euler for the flow net).
pub fn compare_model_ui(ui: &mut Ui, side: &str, settings: &mut Settings, i: usize) {
    use crate::app::unet_file::SHIPPED_FLOW;
    let net = |weights| ModelSpec {
        unet: true,
        weights,
        ..ModelSpec::default()
    };
    let label = |m: Option<ModelSpec>| match m {
        None => "as on Sampling".to_string(),
        Some(m) => m.label(),
    };
    let current = settings.compare_models[i];
    egui::ComboBox::from_label(format!("{side} model"))
        .selected_text(crate::error::ellipsized(&label(current), 18))
        .show_ui(ui, |ui| {
            for m in [None, Some(net(SHIPPED)), Some(net(SHIPPED_FLOW))] {
                ui.selectable_value(&mut settings.compare_models[i], m, label(m));
            }
        });
    let model = settings.compare_models[i].unwrap_or(settings.sampling.model);
    let s = &mut settings.compare[i];
    s.sampler = model.sampler_for(s.sampler);
}
