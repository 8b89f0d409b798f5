//! The sampling, compare and interpolation panels through egui_kittest, by label, on flex with
//! the exact denoiser over MNIST digits; session files; GIF export.

use difflab::app::{CompareKind, DiffLabApp, SamplerChoice, Settings, Tab, load_session};
use difflab::device::DeviceChoice;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::settle;

fn harness() -> Harness<'static, DiffLabApp> {
    let mut h = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("Sampling").click();
    h.step();
    h
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("difflab-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn a_ddim_run_set_by_label_records_n_plus_one_frames_with_its_terms() {
    let mut h = harness();
    assert_eq!(h.state().settings.tab, Tab::Sampling);
    h.get_by_role_and_label(Role::Slider, "Steps")
        .set_value_accesskit(12.0);
    h.get_by_role_and_label(Role::Slider, "η")
        .set_value_accesskit(0.5);
    h.get_by_role_and_label(Role::Slider, "Batch size")
        .set_value_accesskit(4.0);
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    let app = h.state();
    assert_eq!(app.settings.sampling.sampler.steps, 12);
    assert_eq!(app.settings.sampling.sampler.eta, 0.5);
    assert!(!app.sampling.running);
    assert_eq!(app.sampling.trajectory.len(), 13, "N + 1 frames");
    assert_eq!(app.sampling.progress, (12, 12));
    // Every step but the final x_0 carries DDIM's three terms and their sum.
    assert!(
        app.sampling.trajectory[..12]
            .iter()
            .all(|f| f.has_terms && f.has_eps)
    );
    assert!(app.sampling.trajectory[12].t.is_none());
    // 4 digits of 28×28 in a 2×2 grid with 1 px gaps.
    assert_eq!(app.sampling.trajectory[0].x().dimensions(), (59, 59));
    // The exact denoiser lands on training digits: x̂0 at the end is in [−1, 1] and not grey.
    let last = app.sampling.trajectory[12].x0_values();
    assert!(last.iter().all(|v| (-1.0..=1.0).contains(v)));
    let white = last.iter().filter(|v| **v > 0.5).count() as f64 / last.len() as f64;
    assert!(white > 0.05 && white < 0.5, "digit strokes: {white}");
    // At x_0 (no model call after it) there is no ε picture, only x_t and x̂0.
    h.step();
    assert!(h.query_by_label("predicted noise (ε_pred)").is_none());
    h.get_by_label("predicted x_0 (x0_pred)");

    // Scrub back to step 3: the picture follows, the terms row is there.
    h.get_by_role_and_label(Role::Slider, "Step")
        .set_value_accesskit(3.0);
    h.step();
    h.step();
    assert_eq!(h.state().sampling.scrub, 3);
    h.get_by_label("predicted noise (ε_pred)");
    h.get_by_label("√ᾱ_prev·x0_pred");
    h.get_by_label("x_{t−1}");
}

#[test]
fn cancelling_a_long_ddpm_run_halfway_keeps_the_ui_usable() {
    let mut h = harness();
    h.get_by_label("DDPM 1000 steps").click();
    h.step();
    assert_eq!(
        h.state().settings.sampling.sampler.sampler,
        SamplerChoice::DdpmFixedSmall
    );
    assert_eq!(h.state().settings.sampling.sampler.steps, 1000);
    h.get_by_label("Run").click();
    // Wait for some steps to stream in, then cancel.
    for _ in 0..2000 {
        h.step();
        if h.state().sampling.trajectory.len() >= 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(h.state().sampling.running);
    h.get_by_label("Cancel").click();
    settle(&mut h, 30);
    let app = h.state();
    assert!(!app.sampling.running);
    let n = app.sampling.trajectory.len();
    assert!((20..1001).contains(&n), "stopped early: {n} frames");
    assert!(
        app.sampling
            .status
            .as_deref()
            .unwrap_or("")
            .starts_with("Cancelled at step")
    );
    // Still usable: a short run completes.
    h.get_by_label("DDIM 10 η=1").click();
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    assert_eq!(h.state().sampling.trajectory.len(), 11);
}

#[test]
fn compare_runs_share_x_t_and_the_eta_sweep_is_deterministic_at_zero() {
    let mut h = harness();
    h.get_by_label("Compare").click();
    h.step();
    h.get_by_role_and_label(Role::Slider, "A Steps")
        .set_value_accesskit(20.0);
    h.get_by_role_and_label(Role::Slider, "B Steps")
        .set_value_accesskit(10.0);
    h.step();
    h.get_by_label("Run A and B").click();
    settle(&mut h, 60);
    let app = h.state();
    assert_eq!(app.compare.kind, Some(CompareKind::Pair));
    let a = app.compare.results[0].as_ref().expect("A");
    let b = app.compare.results[1].as_ref().expect("B");
    assert_eq!(a.frames.len(), 21);
    assert_eq!(b.frames.len(), 11);
    assert_eq!(
        a.frames[0].x(),
        b.frames[0].x(),
        "both start from the same x_T"
    );
    // The PNG export: A's and B's x_t and x̂0 side by side (4×4 grids of 28 px digits, 117 px,
    // scaled 2×, 4 px apart).
    let png = app.compare.export_image().expect("export");
    assert_eq!(png.dimensions(), (4 * 234 + 5 * 4, 234 + 2 * 4));
    let d = app.compare.distances();
    assert_eq!(d.len(), 21);
    assert!(
        d.iter()
            .all(|[p, v]| (0.0..=1.0).contains(p) && v.is_finite())
    );
    h.get_by_role_and_label(Role::Slider, "Progress")
        .set_value_accesskit(0.5);
    h.step();

    h.get_by_label("η sweep").click();
    settle(&mut h, 120);
    let app = h.state();
    assert_eq!(app.compare.results.len(), 6);
    assert_eq!(app.compare.eta_zero_deterministic(), Some(true));
    h.get_by_label_contains("η = 0 is deterministic");
    // A new seed on the sampling panel: the sweep shown is the old seed's, and the panel says so;
    // B's η is not part of the sweep, so moving it changes nothing.
    let stale = "Shown: the last comparison. The settings have changed since: press η sweep";
    assert!(h.query_by_label_contains(stale).is_none());
    h.get_by_role_and_label(Role::Slider, "B η")
        .set_value_accesskit(0.5);
    h.step();
    h.step();
    assert!(h.query_by_label_contains(stale).is_none());
    h.state_mut().settings.sampling.seed = 5;
    h.step();
    h.step();
    h.get_by_label_contains(stale);
}

#[test]
fn interpolation_ends_equal_the_plain_samples_of_seeds_a_and_b() {
    let mut h = harness();
    // Plain DDIM η = 0 samples of seeds 1 and 2, one image each.
    let mut plain = Vec::new();
    for seed in [1u64, 2] {
        h.get_by_label("DDIM 50 η=0").click();
        h.get_by_role_and_label(Role::Slider, "Batch size")
            .set_value_accesskit(1.0);
        h.get_by_label("Seed")
            .set_text_value_accesskit(&seed.to_string());
        h.step();
        h.get_by_label("Run").click();
        settle(&mut h, 60);
        let last = h.state().sampling.trajectory.last().expect("frames").x();
        // The panel's grid has a 1 px border around the one digit.
        plain.push(image::imageops::crop_imm(&last, 1, 1, 28, 28).to_image());
    }
    h.get_by_label("Interpolate").click();
    h.step();
    h.get_by_label("Decode").click();
    settle(&mut h, 60);
    let app = h.state();
    assert_eq!(app.settings.interp.seed_a, 1);
    assert_eq!(app.settings.interp.seed_b, 2);
    let r = app.interpolate.result.as_ref().expect("decoded");
    let n = r.alphas.len();
    assert_eq!(n, app.settings.interp.frames);
    assert!(*r.slerp[0] == plain[0], "α = 0 is seed A's sample");
    assert!(*r.slerp[n - 1] == plain[1], "α = 1 is seed B's sample");
    assert!(*r.lerp[0] == plain[0] && *r.lerp[n - 1] == plain[1]);
    assert!(plain[0] != plain[1], "the two seeds give different digits");
    let rows = app.interpolate.rows_image().expect("rows");
    // Two rows of n digits, scaled 2×, 2 px apart.
    assert_eq!(
        rows.dimensions(),
        (n as u32 * 56 + (n as u32 + 1) * 2, 2 * 56 + 3 * 2)
    );
    // Slerp keeps ‖x_T‖ about √D; lerp dips by about √2 in the middle.
    let d = 784f64.sqrt();
    assert!(
        r.slerp_norms.iter().all(|v| (v / d - 1.0).abs() < 0.1),
        "{:?}",
        r.slerp_norms
    );
    let mid = r.lerp_norms[n / 2] / r.lerp_norms[0];
    assert!((mid - 0.5f64.sqrt()).abs() < 0.1, "lerp dips: {mid}");
    // Another seed B: the rows are still seeds 1 and 2, and the panel says so until Decode.
    let stale = "Shown: the last decoding (seeds 1 and 2, 9 frames, DDIM 50 steps)";
    assert!(h.query_by_label_contains(stale).is_none());
    h.state_mut().settings.interp.seed_b = 3;
    h.step();
    h.step();
    h.get_by_label_contains(stale);
    h.get_by_label("Decode").click();
    settle(&mut h, 60);
    assert!(
        h.query_by_label_contains("Shown: the last decoding")
            .is_none()
    );
}

#[test]
fn a_saved_session_reopens_to_the_same_state_and_bad_files_change_nothing() {
    let mut h = harness();
    h.get_by_label("DDIM 10 η=1").click();
    h.get_by_role_and_label(Role::Slider, "Batch size")
        .set_value_accesskit(9.0);
    h.get_by_label("Seed").set_text_value_accesskit("4242");
    h.step();
    h.step();
    let dir = temp_dir("session");
    let path = dir.join("lesson.json");
    h.state_mut().save_session(&path).expect("save");
    let saved = h.state().settings.clone();
    assert_eq!(saved.sampling.seed, 4242);
    assert_eq!(saved.sampling.batch, 9);

    let mut h2 = harness();
    let ctx = h2.ctx.clone();
    h2.state_mut().open_session(&path, &ctx).expect("open");
    h2.step();
    assert_eq!(
        h2.state().settings,
        Settings {
            device: DeviceChoice::Cpu,
            ..saved.clone()
        }
    );

    // A session from the future and a corrupt one: clear errors, nothing changes.
    let before = h2.state().settings.clone();
    let future = dir.join("future.json");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &future,
        text.replace(
            &format!("\"version\": {}", difflab::app::SESSION_VERSION),
            "\"version\": 99",
        ),
    )
    .expect("write");
    let e = h2
        .state_mut()
        .open_session(&future, &ctx)
        .expect_err("refused");
    assert!(e.to_string().contains("newer difflab"), "{e}");
    let corrupt = dir.join("corrupt.json");
    std::fs::write(
        &corrupt,
        "{\"app\": \"difflab\", \"version\": 1, \"settings\": {\"t\": \"x\"",
    )
    .expect("write");
    let e = h2
        .state_mut()
        .open_session(&corrupt, &ctx)
        .expect_err("refused");
    assert!(
        e.to_string().contains("not a difflab session") || e.to_string().contains("corrupt"),
        "{e}"
    );
    assert_eq!(h2.state().settings, before);
    assert!(load_session(&dir.join("missing.json")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_exported_trajectory_gif_decodes_to_the_expected_frames() {
    let mut h = harness();
    h.get_by_role_and_label(Role::Slider, "Steps")
        .set_value_accesskit(8.0);
    h.get_by_role_and_label(Role::Slider, "Batch size")
        .set_value_accesskit(1.0);
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    let dir = temp_dir("gif");
    let path = dir.join("trajectory.gif");
    h.state_mut().settings.gif.scale = 3;
    let frames = h.state().sampling.gif_frames();
    assert_eq!(frames.len(), 9);
    h.state_mut().export_gif(frames, path.clone());
    settle(&mut h, 60);
    assert!(
        h.state()
            .notice
            .as_deref()
            .unwrap_or("")
            .contains("9 frames")
    );
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&path).expect("gif"),
    ))
    .expect("decoder");
    use image::AnimationDecoder;
    let decoded: Vec<image::Frame> = decoder.into_frames().collect_frames().expect("frames");
    assert_eq!(decoded.len(), 9);
    // One 28×28 digit with its 1 px border, scaled 3×.
    assert_eq!(decoded[0].buffer().dimensions(), (30 * 3, 30 * 3));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under a memory limit the app clamps a run's batch and says so. The limit comes from
/// `DIFFLAB_MEMORY_LIMIT_MB`, so the check runs in a child process of this test binary, where
/// the variable is set for it alone.
#[test]
fn a_batch_over_the_memory_limit_is_clamped_and_the_app_says_so() {
    if std::env::var_os("DIFFLAB_MEMORY_LIMIT_MB").is_some() {
        // The child. 64 images of DDIM-50 with every step's frames kept need about 149 MB
        // (src/model/memory.rs plus nine f32 tensors a step); 60 MB fits 14.
        let mut h = harness();
        h.get_by_role_and_label(Role::Slider, "Steps")
            .set_value_accesskit(50.0);
        h.get_by_role_and_label(Role::Slider, "Batch size")
            .set_value_accesskit(64.0);
        h.step();
        h.get_by_label("Run").click();
        settle(&mut h, 60);
        let notice = h.state().notice.clone().unwrap_or_default();
        assert!(
            notice.starts_with("Batch 64 would need about")
                && notice.contains("(60 MB available): sampling 14 images instead"),
            "{notice}"
        );
        assert!(
            h.query_by_label_contains("sampling 14 images instead")
                .is_some()
        );
        let app = h.state();
        assert_eq!(
            app.settings.sampling.batch, 64,
            "the setting itself is kept"
        );
        assert_eq!(app.sampling.trajectory.len(), 51);
        // 14 digits of 28×28 in a 4-column grid of 4 rows: 1 px gaps and border (64 would make
        // 233×233).
        assert_eq!(app.sampling.trajectory[0].x().dimensions(), (117, 117));
        return;
    }
    run_as_child_under_60_mb(
        "app_sampling::a_batch_over_the_memory_limit_is_clamped_and_the_app_says_so",
    );
}

/// Runs the test `name` of this binary in a child process with `DIFFLAB_MEMORY_LIMIT_MB=60`
/// (the variable is process-wide, so it must not be set for the other tests) and checks that
/// it passed.
fn run_as_child_under_60_mb(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env("DIFFLAB_MEMORY_LIMIT_MB", "60")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// A session file written by difflab's format 1 (one flat settings struct, committed as
/// tests/fixtures/session-v1.json) opens with every setting in its panel's group.
#[test]
fn a_version_1_session_file_opens_migrated() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/session-v1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"version\": 1") && text.contains("\"sample_seed\": 4242"));
    let s = load_session(&path).unwrap();
    assert_eq!(s.version, difflab::app::SETTINGS_VERSION);
    assert_eq!(s.tab, Tab::Compare);
    assert!(!s.dark_mode);
    assert_eq!(s.schedule.kind, difflab::diffusion::BetaSchedule::Cosine);
    assert_eq!(s.t, 321);
    assert_eq!(s.forward.seed, 77);
    assert_eq!(s.forward.source, difflab::app::ImageSource::Mnist(5));
    assert_eq!(s.forward.filmstrip_frames, 6);
    assert!(s.schedule_view.compare_enabled);
    assert_eq!(s.schedule_view.sampler_steps, 30);
    assert_eq!(s.sampling.sampler.sampler, SamplerChoice::Ddim);
    assert_eq!(s.sampling.sampler.steps, 10);
    assert_eq!(s.sampling.sampler.eta, 1.0);
    assert_eq!(s.sampling.seed, 4242);
    assert_eq!(s.sampling.batch, 9);
    assert_eq!(s.sampling.guidance.label, difflab::app::LabelPick::Digit(3));
    assert_eq!(s.sampling.guidance.scale, 2.5);
    assert_eq!(s.compare[0].steps, 50);
    assert_eq!(s.interp.seed_a, 11);
    assert_eq!(s.gif.delay_ms, 120);
    assert_eq!(s.toy.dataset, Some(difflab::data::toy2d::Toy2d::TwoMoons));
    assert_eq!(s.toy.samples, 1500);

    // Opened in the app, and saved again, it is a version-2 file that reads back the same.
    let mut h = harness();
    let ctx = h.ctx.clone();
    h.state_mut().open_session(&path, &ctx).unwrap();
    h.step();
    assert_eq!(h.state().settings.sampling.seed, 4242);
    let dir = temp_dir("migrated");
    let again = dir.join("again.json");
    h.state_mut().save_session(&again).unwrap();
    let text = std::fs::read_to_string(&again).unwrap();
    assert!(text.contains(&format!("\"version\": {}", difflab::app::SESSION_VERSION)));
    let back = load_session(&again).unwrap();
    assert_eq!(back.sampling, s.sampling);
    assert_eq!(back.forward, s.forward);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A comparison keeps every step of every run: one that would not fit in memory is refused
/// before it starts, with a banner that names the job and says why (child process, as above).
#[test]
fn a_comparison_over_the_memory_limit_is_refused_and_the_app_says_why() {
    if std::env::var_os("DIFFLAB_MEMORY_LIMIT_MB").is_some() {
        // The grid's DDPM-1000 and DDIM-1000 runs of 64 digits keep about 3.6 GB of frames.
        let mut h = harness();
        h.get_by_role_and_label(Role::Slider, "Batch size")
            .set_value_accesskit(64.0);
        h.step();
        h.get_by_label("Compare").click();
        h.step();
        h.get_by_label("Steps vs quality grid").click();
        settle(&mut h, 60);
        let banner = h.state().banner.clone().unwrap_or_default();
        assert!(
            banner.starts_with("Compare: this comparison keeps every step of its 12 runs")
                && banner.contains("and only 60 MB is available: use a smaller batch"),
            "{banner}"
        );
        assert!(!h.state().compare.running);
        return;
    }
    run_as_child_under_60_mb(
        "app_sampling::a_comparison_over_the_memory_limit_is_refused_and_the_app_says_why",
    );
}

/// A solver after DDIM picked by label: Heun with 6 steps makes 11 model calls, so 11 frames
/// and x_0, the NFE beside the steps; the exact denoiser lands on digits; DPM-Solver++ 2M
/// Karras (a preset) makes one frame per call.
#[test]
fn a_solver_picked_by_label_records_one_frame_per_model_call() {
    let mut h = harness();
    h.get_by_role_and_label(Role::ComboBox, "Sampler").click();
    h.run();
    h.get_by_label("Heun").click();
    h.run();
    assert_eq!(
        h.state().settings.sampling.sampler.sampler,
        SamplerChoice::Solver(difflab::diffusion::solvers::SolverKind::Heun)
    );
    h.get_by_role_and_label(Role::Slider, "Steps")
        .set_value_accesskit(6.0);
    h.get_by_role_and_label(Role::Slider, "Batch size")
        .set_value_accesskit(4.0);
    h.step();
    h.get_by_label("NFE: 11");
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    let app = h.state();
    assert!(!app.sampling.running);
    assert_eq!(app.sampling.trajectory.len(), 12, "11 calls and x_0");
    assert_eq!(app.sampling.progress, (11, 11));
    assert!(
        app.sampling.trajectory[..11]
            .iter()
            .all(|f| f.has_eps && !f.has_terms)
    );
    let last = app.sampling.trajectory[11].x0_values();
    let white = last.iter().filter(|v| **v > 0.5).count() as f64 / last.len() as f64;
    assert!(white > 0.05 && white < 0.5, "digit strokes: {white}");
    // Heun's predictor and corrector, named as such while scrubbing.
    h.get_by_role_and_label(Role::Slider, "Step")
        .set_value_accesskit(1.0);
    h.step();
    h.step();
    h.get_by_label_contains("model call 2 of 11: Heun's corrector");
    h.get_by_role_and_label(Role::Slider, "Step")
        .set_value_accesskit(2.0);
    h.step();
    h.step();
    h.get_by_label_contains("model call 3 of 11: Heun's predictor");

    h.get_by_label("DPM++ 2M Karras 10").click();
    h.step();
    h.step();
    h.get_by_label("Run").click();
    settle(&mut h, 60);
    let app = h.state();
    assert!(app.settings.sampling.sampler.karras);
    assert_eq!(app.sampling.trajectory.len(), 11, "10 calls and x_0");
}

#[test]
fn quality_against_nfe_judges_every_solver_at_every_nfe_from_one_x_t() {
    use difflab::app::{QUALITY_NFES, quality_solvers};
    let mut h = harness();
    h.get_by_label("Compare").click();
    h.step();
    h.get_by_role_and_label(Role::Slider, "Samples per run")
        .set_value_accesskit(8.0);
    h.step();
    h.get_by_role_and_label(Role::Button, "Quality against NFE")
        .click();
    settle(&mut h, 300);
    let q = &h.state().compare.quality;
    assert!(!q.running);
    let n = QUALITY_NFES.len() * quality_solvers(h.state().settings.sampling.model).len();
    assert_eq!(q.points.len(), n, "every solver at every NFE");
    let labels: Vec<&str> = q
        .points
        .iter()
        .step_by(4)
        .map(|p| p.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "DDIM",
            "DPM-Solver++ 2M",
            "Euler",
            "Heun",
            "UniPC 2M (bh2)",
            "Flow Euler (flow net)"
        ]
    );
    for p in &q.points {
        // Heun spends two calls a step, less one: 5 NFE is 3 steps, 50 is 25.
        let want = if p.label == "Heun" {
            p.nfe.div_ceil(2)
        } else {
            p.nfe
        };
        assert_eq!(p.steps, want, "{} at {} NFE", p.label, p.nfe);
        assert!((0.1..=1.0).contains(&p.confidence), "{p:?}");
        assert!(
            p.frechet_ratio.is_finite() && p.frechet_ratio > 0.0,
            "{p:?}"
        );
        assert!(p.wall_ms > 0.0);
        assert_eq!(
            p.samples.dimensions(),
            (8 * 29 + 1, 30),
            "8 samples in a row"
        );
    }
    // 50 model evaluations judge better than 5 for DDIM (same x_T, fewer steps blur).
    let ddim: Vec<f64> = q.points[..4].iter().map(|p| p.frechet_ratio).collect();
    assert!(
        ddim[3] < ddim[0],
        "DDIM's Fréchet ratio falls from 5 to 50 NFE: {ddim:?}"
    );
    h.step();
    assert!(h.state().compare.show_quality);
    h.get_by_label("Fréchet ratio (1 is as close as real digits)");
}

/// Compare's per-side model: DDIM 10 on the diffusion net against flow matching's Euler 10 on
/// the flow net, from the same x_T; picking the flow net sets B's sampler by itself.
#[test]
fn compare_puts_the_diffusion_net_beside_the_flow_net() {
    use difflab::diffusion::solvers::SolverKind;
    let mut h = harness();
    h.get_by_label("Compare").click();
    h.step();
    h.state_mut().settings.sampling.batch = 4;
    h.get_by_label("B model").click();
    h.run_steps(2);
    h.get_by_label("MNIST flow-matching U-Net").click();
    h.run_steps(2);
    let s = &h.state().settings;
    assert_eq!(
        s.compare[1].sampler,
        SamplerChoice::Solver(SolverKind::FlowEuler)
    );
    {
        let c = &mut h.state_mut().settings.compare;
        c[0].sampler = SamplerChoice::Ddim;
        c[0].steps = 10;
        c[1].steps = 10;
    }
    h.step();
    h.get_by_label("Run A and B").click();
    settle(&mut h, 120);
    let app = h.state();
    assert!(app.banner.is_none(), "{:?}", app.banner);
    let results: Vec<_> = app.compare.results.iter().flatten().collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].frames.len(), 11, "DDIM 10: 10 calls and x_0");
    assert_eq!(
        results[1].frames.len(),
        11,
        "Flow Euler 10: 10 calls and x_0"
    );
    assert!(
        results[1].label.contains("Flow Euler"),
        "{}",
        results[1].label
    );
    // Both end in [−1, 1] with ink and background: digits, not noise.
    for r in results {
        let x0 = r.frames.last().unwrap().x0_values();
        let white = x0.iter().filter(|v| **v > 0.5).count() as f64 / x0.len() as f64;
        assert!(white > 0.03 && white < 0.5, "{}: {white}", r.label);
    }
}
