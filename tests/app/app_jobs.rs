//! Jobs on the sampler thread: an export does not cancel a streaming run, and compare runs report
//! progress within each run.

use difflab::app::{DiffLabApp, ModelSpec, SamplerChoice};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::settle;

fn harness(steps: usize) -> Harness<'static, DiffLabApp> {
    let mut h = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("Sampling").click();
    h.step();
    let s = &mut h.state_mut().settings;
    s.sampling.model = ModelSpec::exact(100);
    s.sampling.sampler.sampler = SamplerChoice::DdpmFixedSmall;
    s.sampling.sampler.steps = steps;
    s.sampling.batch = 2;
    s.compare[0].sampler = SamplerChoice::DdpmFixedSmall;
    s.compare[0].steps = steps;
    s.compare[1].steps = 10;
    h.step();
    h
}

#[test]
fn exporting_a_gif_while_a_run_streams_does_not_cancel_the_run() {
    let mut h = harness(300);
    h.get_by_label("Run").click();
    // Wait for a few frames of the run, then export them while it goes on.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while h.state().sampling.trajectory.len() < 5 && std::time::Instant::now() < until {
        h.step();
    }
    assert!(h.state().sampling.running, "the run is still streaming");
    let dir = std::env::temp_dir().join(format!("difflab-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gif = dir.join("partial.gif");
    let frames = h.state().sampling.gif_frames();
    h.state_mut().export_gif(frames, gif.clone());
    settle(&mut h, 60);
    let app = h.state();
    assert_eq!(
        app.sampling.trajectory.len(),
        301,
        "the run finished: N + 1 frames"
    );
    assert!(
        app.sampling.status.is_none(),
        "not cancelled: {:?}",
        app.sampling.status
    );
    assert!(gif.exists(), "the GIF was written too");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_runs_report_progress_within_a_run() {
    let mut h = harness(300);
    h.get_by_label("Compare").click();
    h.step();
    h.get_by_label("Run A and B").click();
    let mut seen_mid_run = false;
    let until = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while std::time::Instant::now() < until {
        h.step();
        let c = &h.state().compare;
        if let Some((0, done, 300)) = c.step_progress {
            seen_mid_run |= done > 0 && done < 300;
        }
        if !c.running && c.results.iter().all(std::option::Option::is_some) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        seen_mid_run,
        "a step of run A between 1 and 299 was reported"
    );
    assert!(
        h.state()
            .compare
            .results
            .iter()
            .all(std::option::Option::is_some)
    );
}

#[test]
fn a_failure_names_the_job_that_failed_and_stops_only_it() {
    let mut h = harness(20);
    // A label the worker refuses (the UI offers 0–9; a hand-edited state could hold 12).
    {
        let s = &mut h.state_mut().settings;
        s.sampling.model.unet = true;
        s.sampling.guidance.label = difflab::app::LabelPick::Digit(12);
    }
    h.get_by_label("Run").click();
    settle(&mut h, 30);
    let app = h.state();
    let banner = app.banner.clone().unwrap_or_default();
    assert!(banner.starts_with("Sampling: "), "{banner}");
    assert!(banner.contains("label"), "{banner}");
    assert!(!app.sampling.running);
    assert!(
        app.sampling
            .status
            .as_deref()
            .unwrap_or("")
            .contains("label")
    );
    // An export that fails is named as one, and the sampling panel is left alone.
    {
        let s = &mut h.state_mut().settings;
        s.sampling.model.unet = false;
        s.sampling.guidance.label = difflab::app::LabelPick::Any;
    }
    h.get_by_label("Run").click();
    settle(&mut h, 30);
    assert_eq!(h.state().sampling.trajectory.len(), 21);
    let frames = h.state().sampling.gif_frames();
    h.state_mut()
        .export_gif(frames, std::path::PathBuf::from("/nonexistent-dir/x.gif"));
    settle(&mut h, 30);
    let app = h.state();
    let banner = app.banner.clone().unwrap_or_default();
    assert!(banner.starts_with("Export: "), "{banner}");
    assert_eq!(app.sampling.trajectory.len(), 21, "the run's frames stay");
    assert!(app.sampling.status.is_none());
}

#[test]
fn the_status_bar_says_working_while_a_run_streams_and_not_after() {
    let mut h = harness(300);
    assert!(
        h.query_by_label_contains("working").is_none(),
        "idle: no busy indicator"
    );
    h.get_by_label("Run").click();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while h.state().sampling.trajectory.len() < 3 && std::time::Instant::now() < until {
        h.step();
    }
    assert!(h.state().sampling.running, "the run is still streaming");
    h.step();
    assert!(
        h.query_by_label_contains("working").is_some(),
        "the status bar shows the busy indicator"
    );
    settle(&mut h, 60);
    h.step();
    assert!(
        h.query_by_label_contains("working").is_none(),
        "gone once the run is done"
    );
}
