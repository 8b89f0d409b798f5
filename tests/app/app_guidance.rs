//! Classifier-free guidance in the app, through egui_kittest by label: the digit picker and the
//! guidance slider, the ε_∅ / ε_c / ε̃ views of a guided run, the guidance sweep, and the
//! controls switched off for a model without labels.

use difflab::app::{
    DiffLabApp, GuidanceSettings, LabelPick, ModelSpec, RunSpec, SamplerChoice, SamplerSettings,
};
use difflab::diffusion::ScheduleConfig;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

use crate::common::app::settle;

fn harness() -> Harness<'static, DiffLabApp> {
    let mut h = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("Sampling").click();
    h.step();
    h
}

/// Pearson's correlation of two equal-length series.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn pick_digit_3_at_w_4_and_run_shows_the_guidance_views() {
    let mut h = harness();
    h.get_by_role_and_label(Role::Slider, "Steps")
        .set_value_accesskit(10.0);
    h.get_by_role_and_label(Role::Slider, "Batch size")
        .set_value_accesskit(4.0);
    h.step();
    // The digit picker: open it and click "digit 3".
    h.get_by_role_and_label(Role::ComboBox, "Digit").click();
    h.run();
    h.get_by_label("digit 3").click();
    h.run();
    assert_eq!(
        h.state().settings.sampling.guidance.label,
        LabelPick::Digit(3)
    );
    h.get_by_role_and_label(Role::Slider, "Guidance w")
        .set_value_accesskit(4.0);
    h.step();
    assert_eq!(h.state().settings.sampling.guidance.scale, 4.0);
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    let app = h.state();
    assert!(!app.sampling.running);
    assert_eq!(app.sampling.trajectory.len(), 11, "N + 1 frames");
    assert!(app.sampling.trajectory[..10].iter().all(|f| f.has_guidance));
    // The grid fills: 4 digits in a 2×2 grid (1 px lines), bright strokes on a dark ground.
    assert_eq!(app.sampling.trajectory[10].x().dimensions(), (59, 59));
    let last = app.sampling.trajectory[10].x0_values();
    let white = last.iter().filter(|v| **v > 0.5).count() as f64 / last.len() as f64;
    assert!(white > 0.03 && white < 0.5, "digit strokes: {white}");
    // Scrubbed to step 4: ε_∅, ε_c, ε̃ and the guided x̂0 side by side.
    h.get_by_role_and_label(Role::Slider, "Step")
        .set_value_accesskit(4.0);
    h.step();
    h.step();
    assert_eq!(h.state().sampling.scrub, 4);
    h.get_by_label("ε_uncond (no label)");
    h.get_by_label("ε_cond (with the digit)");
    h.get_by_label("ε_guided");
    h.get_by_label("guided x0_pred");
    // The views show noise whatever the net predicts (the shipped one predicts v): at the first
    // step x_t is almost pure noise, so ε̂ ≈ x_t for both labels.
    let first = &h.state().sampling.trajectory[0];
    for i in 0..2 {
        let eps = first.guidance_values(i).unwrap();
        let r = correlation(eps, first.x_values());
        assert!(r > 0.95, "ε view {i} against x_t: r = {r}");
    }
    let f = &h.state().sampling.trajectory[4];
    let (u, c) = (f.guidance_part(0).unwrap(), f.guidance_part(1).unwrap());
    assert_ne!(u.as_raw(), c.as_raw(), "the label changes the prediction");
    // w moved after the run: the pictures are still those of w = 4, and the panel says so.
    let changed = "The settings have changed since";
    assert!(h.query_by_label_contains(changed).is_none());
    h.get_by_role_and_label(Role::Slider, "Guidance w")
        .set_value_accesskit(6.0);
    h.step();
    h.step();
    assert!(h.query_by_label_contains(changed).is_some());
    assert!(
        h.query_by_label_contains("Classifier-free guidance at this step (w = 4, digit 3)")
            .is_some()
    );
    h.get_by_role_and_label(Role::Slider, "Guidance w")
        .set_value_accesskit(4.0);
    h.step();
    h.step();
    assert!(h.query_by_label_contains(changed).is_none());
}

#[test]
fn a_run_counts_as_changed_only_by_settings_its_samples_depend_on() {
    let run = RunSpec {
        id: 1,
        schedule: ScheduleConfig::default(),
        sampler: SamplerSettings::default(),
        model: ModelSpec::default(),
        seed: 0,
        batch: 16,
        guidance: GuidanceSettings::default(),
    };
    let with = |f: &dyn Fn(&mut RunSpec)| {
        let mut r = run.clone();
        r.id = 2;
        f(&mut r);
        r
    };
    assert!(run.same_samples(&with(&|_| {})), "the id is not a setting");
    // No label: w does nothing; with one it does.
    assert!(run.same_samples(&with(&|r| r.guidance.scale = 5.0)));
    assert!(!run.same_samples(&with(&|r| r.guidance.label = LabelPick::Digit(7))));
    let seven = with(&|r| r.guidance.label = LabelPick::Digit(7));
    assert!(!seven.same_samples(&with(&|r| {
        r.guidance.label = LabelPick::Digit(7);
        r.guidance.scale = 5.0;
    })));
    // η matters to DDIM only.
    assert!(!run.same_samples(&with(&|r| r.sampler.eta = 0.5)));
    let ddpm = with(&|r| r.sampler.sampler = SamplerChoice::DdpmFixedSmall);
    assert!(ddpm.same_samples(&with(&|r| {
        r.sampler.sampler = SamplerChoice::DdpmFixedSmall;
        r.sampler.eta = 0.5;
    })));
    // The exact denoiser has no labels, and its size matters; the U-Net ignores that size.
    let exact = with(&|r| r.model = ModelSpec::exact(100));
    assert!(exact.same_samples(&with(&|r| {
        r.model = ModelSpec::exact(100);
        r.guidance.label = LabelPick::Digit(3);
    })));
    assert!(!exact.same_samples(&with(&|r| r.model = ModelSpec::exact(1000))));
    assert!(run.same_samples(&with(&|r| r.model.count = 10)));
    // Seed, batch and steps always matter.
    assert!(!run.same_samples(&with(&|r| r.seed = 1)));
    assert!(!run.same_samples(&with(&|r| r.batch = 4)));
    assert!(!run.same_samples(&with(&|r| r.sampler.steps = 20)));
    assert_eq!(
        seven.describe(),
        "DDIM 50 steps η=0, seed 0, w = 2, digit 7"
    );
    assert_eq!(run.describe(), "DDIM 50 steps η=0, seed 0");
}

#[test]
fn one_row_per_digit_makes_ten_rows() {
    let mut h = harness();
    {
        let s = &mut h.state_mut().settings;
        s.sampling.sampler.steps = 4;
        s.sampling.batch = 10;
        s.sampling.guidance.label = LabelPick::PerRow;
        s.sampling.guidance.scale = 2.0;
    }
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    let app = h.state();
    assert_eq!(app.sampling.trajectory.len(), 5);
    // 10 rows of one digit (1 px lines): 28 + 2 px wide, 10·28 + 11 px high.
    assert_eq!(app.sampling.trajectory[4].x().dimensions(), (30, 291));
}

#[test]
fn the_guidance_sweep_runs_five_scales_from_one_x_t() {
    let mut h = harness();
    {
        let s = &mut h.state_mut().settings;
        s.sampling.sampler.steps = 5;
        s.sampling.batch = 2;
        s.sampling.guidance.label = LabelPick::Digit(7);
    }
    h.get_by_label("Compare").click();
    h.step();
    h.get_by_label("Guidance sweep").click();
    settle(&mut h, 60);
    let app = h.state();
    let done: Vec<_> = app.compare.results.iter().flatten().collect();
    assert_eq!(done.len(), 5);
    let labels: Vec<&str> = done.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "w = 0, digit 7",
            "w = 1, digit 7",
            "w = 2, digit 7",
            "w = 4, digit 7",
            "w = 8, digit 7"
        ]
    );
    assert!(done.iter().all(|r| r.total_ms > 0.0));
    // Different scales, different digits (same x_T).
    let x0 = |i: usize| done[i].frames.last().unwrap().x0_values().to_vec();
    assert_ne!(x0(0), x0(4));
}

#[test]
fn the_exact_denoiser_has_no_digit_picker() {
    let mut h = harness();
    h.state_mut().settings.sampling.model = ModelSpec::exact(100);
    h.step();
    h.step();
    assert!(h.get_by_label("Digit").accesskit_node().is_disabled());
    assert!(
        h.get_by_role_and_label(Role::Slider, "Guidance w")
            .accesskit_node()
            .is_disabled()
    );
}

#[test]
fn sampling_on_another_schedule_than_the_training_one_shows_a_warning() {
    let mut h = harness();
    assert!(
        h.query_by_label_contains("was trained on the schedule")
            .is_none()
    );
    h.state_mut().settings.schedule.kind = difflab::diffusion::BetaSchedule::Cosine;
    h.step();
    h.step();
    h.get_by_label_contains("Warning: this model was trained on the schedule linear");
}

#[test]
fn the_interpolation_panel_names_the_digit_and_w_it_decodes_with() {
    let mut h = harness();
    h.get_by_role_and_label(Role::ComboBox, "Digit").click();
    h.run();
    h.get_by_label("digit 3").click();
    h.run();
    h.get_by_role_and_label(Role::Slider, "Guidance w")
        .set_value_accesskit(4.0);
    h.step();
    h.get_by_label("Interpolate").click();
    h.run();
    h.get_by_label(
        "Decoded by MNIST U-Net (trained), digit 3 at w = 4 (set on the sampling panel)",
    );
    // One row per digit has no single label: the noises are decoded without one.
    h.state_mut().settings.sampling.guidance.label = LabelPick::PerRow;
    h.run();
    h.get_by_label("Decoded by MNIST U-Net (trained), no digit (set on the sampling panel)");
}
