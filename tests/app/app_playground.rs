//! The 2-D playground through egui_kittest: choose a dataset, train and see the loss fall,
//! sample with DDPM and DDIM, scrub, and look at the field.

use std::time::{Duration, Instant};

use difflab::app::{DiffLabApp, EXPORT_PX, Tab, ToyModel, ToyView};
use difflab::data::toy2d::{Toy2d, energy_distance};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::settle;

#[test]
fn choose_train_sample_and_scrub() {
    let mut h: Harness<'static, DiffLabApp> = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("2-D playground").click();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Playground);
    h.get_by_label("Dataset").click();
    h.run_steps(2);
    h.get_by_label("two moons").click();
    h.step();
    assert_eq!(h.state().settings.toy.dataset, Some(Toy2d::TwoMoons));
    assert_eq!(h.state().playground.data.len(), 5000);

    // Train for a few seconds of wall time; the loss falls and the speed is reported.
    h.get_by_label("Train").click();
    let started = Instant::now();
    while h.state().playground.step < 1500 && started.elapsed() < Duration::from_mins(1) {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = &h.state().playground;
    assert!(p.training && p.step >= 1500, "trained {} steps", p.step);
    let first: f32 = p.losses[..25].iter().sum::<f32>() / 25.0;
    assert!(
        p.recent_loss() < 0.8 * first,
        "loss falls: {first} → {}",
        p.recent_loss()
    );
    assert!(p.steps_per_s > 20.0, "{} steps/s", p.steps_per_s);
    h.get_by_label("Pause").click();
    settle(&mut h, 30);
    assert!(!h.state().playground.training);

    // Sample DDPM and DDIM from the same starting points.
    h.get_by_role_and_label(Role::Slider, "Samples")
        .set_value_accesskit(1000.0);
    h.step();
    h.get_by_label("Sample DDPM and DDIM").click();
    settle(&mut h, 60);
    let app = h.state();
    assert_eq!(app.settings.toy.view, ToyView::Reverse);
    let (ts, ddpm, ddim) = app.playground.trajectory.as_ref().expect("sampled");
    assert_eq!(ddpm.len(), ts.len());
    assert_eq!(ddpm[0], ddim[0], "the same x_T");
    assert_eq!(ddpm[0].len(), 1000);
    let fresh = Toy2d::TwoMoons.sample(1000, 42).expect("fresh");
    let e = energy_distance(ddim.last().expect("x0"), &fresh, 1000);
    assert!(
        e < 0.1,
        "DDIM samples look like two moons: energy distance {e}"
    );
    // Scrub to the middle.
    h.get_by_role_and_label(Role::Slider, "Frame")
        .set_value_accesskit(10.0);
    h.step();
    assert_eq!(h.state().playground.frame, 10);

    // Side by side (the default) or overlaid.
    assert!(h.state().settings.toy.side_by_side);
    h.get_by_label("DDPM and DDIM side by side").click();
    h.step();
    assert!(!h.state().settings.toy.side_by_side);

    // Export: the reverse view as DDPM | DDIM images, and the trajectory as GIF frames.
    let app = h.state();
    let png = app
        .playground
        .export_image(&app.settings.toy, None, app.settings.t)
        .expect("an image of the reverse view");
    assert_eq!(png.dimensions(), (2 * EXPORT_PX + 8, EXPORT_PX));
    let red = png.pixels().filter(|p| p.0 == [220, 80, 60]).count();
    let blue = png.pixels().filter(|p| p.0 == [60, 110, 230]).count();
    assert!(red > 500 && blue > 500, "DDPM red {red}, DDIM blue {blue}");
    let frames = app.playground.gif_frames(5, 12);
    assert_eq!(frames.len(), 12);
    assert_ne!(frames[0], frames[11], "the frames move");

    // The field at t = 300: the MLP's next to the exact denoiser's, while training goes on.
    h.get_by_label("Resume").click();
    h.get_by_label("Field").click();
    h.step();
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(300.0);
    let started = Instant::now();
    while h.state().playground.fields.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let step_then = h.state().playground.step;
    while h.state().playground.step < step_then + 50 && started.elapsed() < Duration::from_mins(1) {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = &h.state().playground;
    assert!(
        p.training && p.step >= step_then + 50,
        "training went on after the field"
    );
    assert_eq!(p.fields.len(), 2);
    let learned = p
        .fields
        .iter()
        .find(|f| f.model == ToyModel::Mlp)
        .expect("MLP field");
    let exact = p
        .fields
        .iter()
        .find(|f| f.model == ToyModel::Exact)
        .expect("exact field");
    for f in [learned, exact] {
        assert_eq!(f.t, 299);
        assert_eq!(f.arrows.len(), 21 * 21);
        assert!(
            f.arrows
                .iter()
                .all(|(_, e)| e[0].is_finite() && e[1].is_finite())
        );
    }
    // The trained MLP has learned roughly the true field: the mean cosine between the two ε
    // over the grid points where the true one is not tiny.
    let cos: Vec<f32> = learned
        .arrows
        .iter()
        .zip(&exact.arrows)
        .filter(|(_, (_, e))| e[0].hypot(e[1]) > 0.1)
        .map(|((_, a), (_, e))| {
            (a[0] * e[0] + a[1] * e[1]) / (a[0].hypot(a[1]) * e[0].hypot(e[1])).max(1e-6)
        })
        .collect();
    let mean_cos = cos.iter().sum::<f32>() / cos.len().max(1) as f32;
    assert!(
        mean_cos > 0.5,
        "learned and true fields agree: mean cosine {mean_cos}"
    );
    let img = p
        .export_image(&h.state().settings.toy, None, 300)
        .expect("field image");
    let orange = img.pixels().filter(|q| q.0 == [200, 120, 40]).count();
    let green = img.pixels().filter(|q| q.0 == [170, 80, 200]).count();
    assert!(
        orange > 200 && green > 200,
        "learned {orange}, exact {green} arrow pixels"
    );
    h.get_by_label("Pause").click();
    settle(&mut h, 30);

    // The exact model alone.
    h.state_mut().settings.toy.model = ToyModel::Exact;
    h.step();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30)
        && !(h.state().playground.fields.len() == 1
            && h.state().playground.fields[0].model == ToyModel::Exact)
    {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.state().playground.fields.len(), 1);
}

#[test]
fn the_field_view_reads_every_prediction_type_as_epsilon() {
    use difflab::app::epsilon_field;
    use difflab::diffusion::PredictionType;
    use difflab::tensor_util::tensor4;
    let device = burn::tensor::Device::flex();
    // Two points; a true ε and x_0, and x_t made from them at ᾱ = 0.36 (√ᾱ = 0.6, √(1−ᾱ) = 0.8).
    let (eps, x0) = ([0.5f32, -1.0, 2.0, 0.25], [1.0f32, 0.5, -0.5, 0.0]);
    let xt: Vec<f32> = (0..4).map(|i| 0.6 * x0[i] + 0.8 * eps[i]).collect();
    let v: Vec<f32> = (0..4).map(|i| 0.6 * eps[i] - 0.8 * x0[i]).collect();
    let t = |v: &[f32]| tensor4(v.to_vec(), [2, 2, 1, 1], &device);
    for (prediction, out) in [
        (PredictionType::Epsilon, eps.to_vec()),
        (PredictionType::Sample, x0.to_vec()),
        (PredictionType::VPrediction, v),
    ] {
        let field = epsilon_field(prediction, t(&out), t(&xt), 0.36).expect("field");
        let flat: Vec<f32> = field.iter().flatten().copied().collect();
        let d = flat
            .iter()
            .zip(&eps)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "{prediction:?}: the field is ε within {d}");
    }
}

/// The flow-matching view: diffusion, flow matching and reflow trained on the same swiss roll,
/// sampled from the same noise. Reflow's paths are the straightest and its one-step samples the
/// nearest the data; the grid starts where it was laid out, in noise space. (13 s here.)
#[test]
fn flow_matching_and_reflow_straighten_the_paths() {
    let mut h: Harness<'static, DiffLabApp> = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("2-D playground").click();
    h.step();
    {
        let s = &mut h.state_mut().settings.toy;
        s.flow_steps = 1500;
        s.samples = 1000;
    }
    h.step();
    h.get_by_label("Train and compare flow matching").click();
    h.step();
    assert_eq!(h.state().settings.toy.view, ToyView::Flow);
    assert!(h.state().playground.flow.running);
    let until = Instant::now() + Duration::from_mins(5);
    while h.state().playground.flow.running {
        assert!(Instant::now() < until, "the comparison did not finish");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = h.state().playground.flow.result.clone().expect("a result");
    let data = h.state().playground.data.clone();
    let [diffusion, flow, reflow] = r.straightness.map(|s| s.expect("paths"));
    println!("straightness: diffusion {diffusion:.3}, flow {flow:.3}, reflow {reflow:.3}");
    // Reflow straightens: its paths are the straightest. (Flow matching's own paths first
    // shrink towards the data's mean and then turn, as DDIM's do: 2.27 against DDIM's 1.52 at
    // 1500 steps here.)
    assert!(reflow < flow && reflow < diffusion, "{:?}", r.straightness);
    assert!(
        reflow < 1.05,
        "reflow's paths are nearly straight: {reflow}"
    );
    // One Euler step: reflow lands nearer the data than flow matching and diffusion.
    let one: Vec<f64> = (0..3)
        .map(|m| energy_distance(&r.samples[m][0], &data, 1000))
        .collect();
    println!("energy distance to the data at 1 step: {one:?}");
    assert!(one[2] < one[1] && one[2] < one[0], "{one:?}");
    // 20 steps: every model lands near the data.
    let twenty: Vec<f64> = (0..3)
        .map(|m| energy_distance(&r.samples[m][3], &data, 1000))
        .collect();
    println!("energy distance to the data at 20 steps: {twenty:?}");
    assert!(twenty.iter().all(|d| *d < one[0]), "{twenty:?}");
    // The grid: 2·13 lines of 41 points, every state of a 20-step run, starting as laid out.
    assert_eq!(r.grid[1].len(), 21);
    assert_eq!(r.grid[1][0].len(), 2 * 13 * 41);
    assert_eq!(r.grid[1][0][0], [-2.4, -2.4]);
    assert_eq!(r.samples[0].len(), 4);
    assert_eq!(r.paths[2].len(), 21);
    h.step();
    h.get_by_label("A grid carried from noise to data");
}
