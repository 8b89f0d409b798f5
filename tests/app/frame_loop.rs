//! The browser's way of running the jobs, natively: with `on_frames` the jobs run on the frame
//! loop, a budget of steps per frame (src/app/jobs/thread.rs), as they do in the page. The same
//! commands give the same pictures as on the worker threads; and the page's scripting
//! (src/app/remote.rs), which the browser test drives, does what the buttons do.

use difflab::app::{AppOptions, DiffLabApp, Tab};
use egui_kittest::Harness;

use crate::common::app::{cpu_harness_with, cpu_options, settle};

fn harness(on_frames: bool) -> Harness<'static, DiffLabApp> {
    cpu_harness_with(AppOptions {
        on_frames,
        ..cpu_options()
    })
}

/// A settled app on the Sampling tab, set to DDIM-10 of 6 digits from seed 3 (not run).
fn ddim10_of_6(on_frames: bool) -> Harness<'static, DiffLabApp> {
    let mut h = harness(on_frames);
    settle(&mut h, 60);
    let app = h.state_mut();
    assert_eq!(app.jobs_on_frames(), on_frames);
    app.remote(r#"{"Tab": "Sampling"}"#).unwrap();
    app.remote(r#"{"Sampling": {"sampler": "Ddim", "steps": 10, "seed": 3, "batch": 6}}"#)
        .unwrap();
    h
}

/// Frames until the jobs are done (at most `max`).
fn frames_until_idle(h: &mut Harness<'static, DiffLabApp>, max: usize) -> usize {
    for n in 1..=max {
        h.step();
        if !h.state().is_busy() {
            h.step();
            return n;
        }
    }
    panic!("still busy after {max} frames");
}

#[test]
fn a_run_on_the_frame_loop_draws_the_same_digits_as_on_the_worker_thread() {
    let sample = |on_frames: bool| {
        let mut h = ddim10_of_6(on_frames);
        h.state_mut().remote(r#""Run""#).unwrap();
        let frames = frames_until_idle(&mut h, 100_000);
        let report = h.state().report();
        assert_eq!(report.sampling.done, 10);
        assert_eq!(report.sampling.shape, Some([6, 1, 28, 28]));
        // The frames that computed were counted (the page reports their compute time).
        assert_eq!(report.pump_ms[3] > 0.0, on_frames);
        (report.sampling.x0, frames)
    };
    let (threaded, _) = sample(false);
    let (framed, frames) = sample(true);
    assert_eq!(threaded.len(), 6 * 28 * 28);
    assert!(threaded.iter().all(|v| v.is_finite()));
    // Bit for bit: the same job code, the same noises; on the frame loop each step's six
    // digits ran as pieces of 2 (FRAME_PIECE), on the thread as one batch.
    assert_eq!(framed, threaded);
    // Ten U-Net steps do not fit one frame's 12 ms budget: the run was spread over frames.
    assert!(frames >= 3, "{frames} frames");
}

/// The page warms the sampling panel's model up when it opens (`DiffLabApp::warm_up`): on the
/// frame loop that runs to its end, sends nothing the panel shows, and the run after it draws
/// the same digits as a run without it.
#[test]
fn a_warm_up_runs_on_the_frame_loop_and_leaves_the_next_run_unchanged() {
    let sample = |warm: bool| {
        let mut h = ddim10_of_6(true);
        if warm {
            h.state_mut().warm_up();
            assert!(h.state().is_busy(), "the warm-up was not queued");
            frames_until_idle(&mut h, 100_000);
            let report = h.state().report();
            assert_eq!((report.sampling.total, report.banner), (0, None));
        }
        h.state_mut().remote(r#""Run""#).unwrap();
        frames_until_idle(&mut h, 100_000);
        h.state().report().sampling.x0
    };
    let cold = sample(false);
    assert_eq!(cold.len(), 6 * 28 * 28);
    assert_eq!(sample(true), cold);
}

/// The page asks for the warm-up once its workers are up, which can be after a student pressed
/// Run: then it is not sent, and the run goes on to its end.
#[test]
fn a_warm_up_asked_for_during_a_run_leaves_the_run_alone() {
    let mut h = ddim10_of_6(true);
    h.state_mut().remote(r#""Run""#).unwrap();
    h.step();
    assert!(h.state().report().sampling.running);
    h.state_mut().warm_up();
    frames_until_idle(&mut h, 100_000);
    let report = h.state().report();
    assert_eq!(report.sampling.done, 10, "{:?}", report.sampling.total_ms);
    assert!(report.sampling.total_ms.is_some(), "the run was stopped");
    assert_eq!(report.sampling.x0.len(), 6 * 28 * 28);
}

#[test]
fn a_lessons_show_me_decodes_its_interpolation_on_the_frame_loop() {
    let mut h = harness(true);
    settle(&mut h, 60);
    // Lesson 10 (interpolation), its "Show me" named in its header.
    h.state_mut()
        .remote(r#"{"ShowMe": {"lesson": 9, "name": "interp"}}"#)
        .unwrap();
    assert_eq!(h.state().settings.tab, Tab::Interpolate);
    frames_until_idle(&mut h, 100_000);
    let report = h.state().report();
    assert!(!report.interpolating);
    assert!(report.interpolation_frames > 1, "{report:?}");
    assert_eq!(report.banner, None);
}

#[test]
fn the_playground_trains_on_the_frame_loop_until_paused() {
    let mut h = harness(true);
    settle(&mut h, 60);
    h.state_mut().apply(
        difflab::app::AppAction::Toy(difflab::app::ToyAction::Train(true)),
        None,
    );
    for _ in 0..40 {
        h.step();
    }
    let step = h.state().playground.step;
    assert!(step >= 25, "trained {step} steps in 40 frames");
    h.state_mut().apply(
        difflab::app::AppAction::Toy(difflab::app::ToyAction::Pause),
        None,
    );
    // The batch of 25 steps in progress ends first (its steps are polled within the frames'
    // budget, so how many frames that takes depends on the machine).
    frames_until_idle(&mut h, 400);
    let paused_at = h.state().playground.step;
    for _ in 0..20 {
        h.step();
    }
    assert_eq!(h.state().playground.step, paused_at);
    assert!(!h.state().is_busy());
}

#[test]
fn a_bad_script_command_is_refused_with_what_was_wrong() {
    let mut h = harness(true);
    let app = h.state_mut();
    let e = app.remote(r#"{"Tab": "Nowhere"}"#).unwrap_err();
    assert!(
        e.starts_with("bad command: unknown variant `Nowhere`"),
        "{e}"
    );
    let e = app
        .remote(r#"{"ShowMe": {"lesson": 99, "name": "x"}}"#)
        .unwrap_err();
    assert_eq!(e, "no lesson 99 (there are 16)");
    let e = app
        .remote(r#"{"ShowMe": {"lesson": 0, "name": "nope"}}"#)
        .unwrap_err();
    assert!(e.ends_with("has no \"Show me\" named nope"), "{e}");
    let e = app.remote(r#"{"Lesson": 16}"#).unwrap_err();
    assert_eq!(e, "no lesson 16 (there are 16)");
    assert_eq!(app.settings.tab, Tab::Forward);
    app.remote(r#"{"Lesson": 12}"#).unwrap();
    assert_eq!(app.settings.tab, Tab::Lessons);
    assert_eq!(app.report().lesson, 12);
}

/// A session file dropped on the window (the page's only way to open one) opens as the
/// session; a damaged one changes nothing and says why.
#[test]
fn a_dropped_session_file_opens_the_session() {
    let dir = std::env::temp_dir().join(format!("difflab-drop-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("class.json");
    let mut h = harness(false);
    h.state_mut().settings.sampling.seed = 4242;
    h.state_mut().settings.tab = Tab::Sampling;
    h.state_mut().save_session(&path).expect("save");

    let mut h = harness(false);
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(crate::common::app::Dropped(
            path.clone(),
        )));
    h.step();
    h.step();
    assert_eq!(h.state().banner, None);
    assert_eq!(h.state().settings.sampling.seed, 4242);
    assert_eq!(h.state().settings.tab, Tab::Sampling);

    let bad = dir.join("broken.json");
    std::fs::write(&bad, "{ not json").unwrap();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(crate::common::app::Dropped(bad)));
    h.step();
    h.step();
    let banner = h.state().banner.clone().unwrap_or_default();
    assert!(banner.contains("not a difflab session file"), "{banner}");
    assert_eq!(h.state().settings.sampling.seed, 4242);
    let _ = std::fs::remove_dir_all(&dir);
}
