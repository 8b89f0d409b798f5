//! The 2-D playground through egui_kittest: choose a dataset, train and see the loss fall,
//! sample with DDPM and DDIM, scrub, and look at the field.

mod common;

use std::time::{Duration, Instant};

use difflab::app::{DiffLabApp, Tab, ToyModel, ToyView};
use difflab::data::toy2d::{Toy2d, energy_distance};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use common::app::settle;

#[test]
fn choose_train_sample_and_scrub() {
    let mut h: Harness<'static, DiffLabApp> = common::app::cpu_harness();
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
    while h.state().playground.step < 1500 && started.elapsed() < Duration::from_secs(60) {
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

    // The field of the exact model at t = 300.
    h.state_mut().settings.toy.model = ToyModel::Exact;
    h.get_by_label("Field").click();
    h.step();
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(300.0);
    settle(&mut h, 30);
    for _ in 0..20 {
        h.step();
        if h.state().playground.field.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    settle(&mut h, 30);
    let (t, arrows) = h.state().playground.field.as_ref().expect("field");
    assert_eq!(*t, 299);
    assert_eq!(arrows.len(), 21 * 21);
    assert!(
        arrows
            .iter()
            .all(|(_, e)| e[0].is_finite() && e[1].is_finite())
    );
}
