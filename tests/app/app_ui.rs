//! The app, driven through egui_kittest by label, on the CPU path (burn's flex, egui
//! `ColorImage`s). The worker thread runs for real; the tests wait for its events.

use std::collections::HashMap;
use std::sync::Arc;

use difflab::app::{
    AppOptions, DiffLabApp, SETTINGS_VERSION, Settings, SettingsV1, Tab, coefficients,
};
use difflab::device::DeviceChoice;
use difflab::diffusion::{BetaSchedule, NoiseSchedule, ScheduleConfig};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::{Dropped, cpu_app, settle};

fn harness() -> Harness<'static, DiffLabApp> {
    let mut h = Harness::builder()
        .with_size([1280.0, 860.0])
        .build_eframe(|cc| cpu_app(cc));
    settle(&mut h, 15);
    h
}

#[test]
fn starts_on_the_bundled_photo_with_every_view_filled() {
    let h = harness();
    let app = h.state();
    assert_eq!(app.settings.t, Settings::default().t);
    assert!(app.forward.x0.is_set(), "x_0 is shown");
    assert!(app.forward.one_shot.is_set(), "one-shot x_t is shown");
    assert!(app.forward.chain.is_set(), "step-by-step x_t is shown");
    assert_eq!(
        app.forward.x0.size,
        [256, 170],
        "the cat at its working size"
    );
    assert_eq!(
        app.forward.strip.len(),
        Settings::default().forward.filmstrip_frames
    );
    let total: f32 = app.forward.histogram.iter().sum();
    // Nearly all of the 3·256·170 values of x_t fall inside [−4, 4].
    assert!(
        total > 0.99 * (3 * 256 * 170) as f32,
        "histogram counts {total}"
    );
    assert!(!app.forward.one_shot.is_gpu());
    assert!(app.compute_label.starts_with("flex"));
    h.get_by_label_contains("Computing on flex");
}

#[test]
fn moving_the_t_slider_updates_state_and_coefficients() {
    let mut h = harness();
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(500.0);
    settle(&mut h, 15);
    let app = h.state();
    assert_eq!(app.settings.t, 500);
    assert_eq!(app.forward.shown_t, Some(500));
    assert_eq!(app.forward.chain_t, Some(500));

    let schedule = NoiseSchedule::new(ScheduleConfig::default()).expect("schedule");
    let (s, n, _) = coefficients(&schedule, 500);
    // ᾱ at paper t = 500 is diffusers' alphas_cumprod[499].
    assert!((s - schedule.alphas_cumprod[499].sqrt()).abs() < 1e-12);
    assert!((s * s + n * n - 1.0).abs() < 1e-9);
    h.get_by_label(&format!("√ᾱ_t = {s:.4}"));
    h.get_by_label(&format!("√(1−ᾱ_t) = {n:.4}"));
    // At t = 500 of the linear schedule the histogram is wide: most mass is inside ±2, not ±1.
    let hist = &app.forward.histogram;
    let total: f32 = hist.iter().sum();
    let inside_1: f32 = hist[24..40].iter().sum();
    assert!(inside_1 / total < 0.8, "x_t is noisy: {}", inside_1 / total);
}

#[test]
fn keyboard_steps_and_jumps_the_timeline() {
    let mut h = harness();
    h.key_press(egui::Key::End);
    h.step();
    assert_eq!(h.state().settings.t, 1000);
    h.key_press(egui::Key::Home);
    h.step();
    assert_eq!(h.state().settings.t, 0);
    h.key_press(egui::Key::ArrowRight);
    h.step();
    h.key_press(egui::Key::ArrowRight);
    h.step();
    assert_eq!(h.state().settings.t, 2);
    h.key_press(egui::Key::ArrowLeft);
    h.step();
    assert_eq!(h.state().settings.t, 1);
    h.key_press(egui::Key::Space);
    h.step();
    assert!(h.state().forward.playing);
    h.get_by_label("Pause").click();
    h.step();
    assert!(!h.state().forward.playing);
    settle(&mut h, 15);
}

#[test]
fn changing_the_schedule_updates_the_forward_panel() {
    let mut h = harness();
    h.get_by_label("Schedule").click();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Schedule);
    h.get_by_label("β schedule").click();
    h.run_steps(2);
    h.get_by_label("cosine").click();
    h.step();
    assert_eq!(h.state().settings.schedule.kind, BetaSchedule::Cosine);

    h.get_by_label("Forward process").click();
    h.step();
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(600.0);
    settle(&mut h, 15);
    let cosine =
        NoiseSchedule::new(ScheduleConfig::new(BetaSchedule::Cosine, 1000)).expect("cosine");
    let (s, _, _) = coefficients(&cosine, 600);
    h.get_by_label(&format!("√ᾱ_t = {s:.4}"));
    assert_eq!(h.state().forward.shown_t, Some(600));
}

#[test]
fn an_invalid_t_is_refused_with_a_message() {
    let mut h = harness();
    h.get_by_label("Schedule").click();
    h.step();
    h.get_by_label("T").set_text_value_accesskit("0");
    h.step();
    h.step();
    h.get_by_label_contains("T must");
    assert_eq!(
        h.state().settings.schedule.num_train_timesteps,
        1000,
        "T unchanged"
    );

    h.get_by_label("T").set_text_value_accesskit("abc");
    h.step();
    h.step();
    h.get_by_label_contains("whole number");

    h.get_by_label("β end").set_text_value_accesskit("1.5");
    h.get_by_label("T").set_text_value_accesskit("500");
    h.step();
    h.step();
    h.get_by_label_contains("β must satisfy 0 < β < 1");
    assert_eq!(
        h.state().settings.schedule.num_train_timesteps,
        1000,
        "refused as a whole"
    );

    h.get_by_label("β end").set_text_value_accesskit("0.02");
    h.step();
    h.step();
    assert_eq!(h.state().settings.schedule.num_train_timesteps, 500);
    assert!(h.state().settings.t <= 500);
    settle(&mut h, 15);
}

#[test]
fn a_corrupt_dropped_image_shows_a_banner_and_the_app_keeps_running() {
    let mut h = harness();
    let dir = std::env::temp_dir().join(format!("difflab-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("corrupt.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not an image").expect("write");
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(bad.clone())));
    h.step();
    h.step();
    let banner = h.state().banner.clone().expect("a banner");
    assert!(
        banner.contains("corrupt.png") && banner.contains("not a readable image"),
        "{banner}"
    );
    h.get_by_label_contains("not a readable image");

    // Still usable: back to the photo, move t, and the views update.
    h.get_by_label("Photo (cat)").click();
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(100.0);
    settle(&mut h, 15);
    assert_eq!(h.state().forward.shown_t, Some(100));
    h.get_by_label("Dismiss").click();
    h.step();
    assert!(h.state().banner.is_none());

    // A good PNG of the user's own loads in colour.
    let good = dir.join("good.png");
    image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 128])
    })
    .save(&good)
    .expect("save");
    h.input_mut().dropped_files.push(Arc::new(Dropped(good)));
    settle(&mut h, 15);
    assert_eq!(h.state().forward.x0.size, [40, 30]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mnist_digit_by_index_and_new_noise() {
    let mut h = harness();
    h.get_by_label("MNIST digit").click();
    settle(&mut h, 15);
    assert_eq!(h.state().forward.x0.size, [28, 28]);
    let seed = h.state().settings.forward.seed;
    h.get_by_label("New noise").click();
    settle(&mut h, 15);
    assert_eq!(h.state().settings.forward.seed, seed + 1);
    h.get_by_label("Seed").set_text_value_accesskit("1234");
    settle(&mut h, 15);
    assert_eq!(h.state().settings.forward.seed, 1234);
}

/// eframe storage in memory.
#[derive(Default)]
struct MemStorage(HashMap<String, String>);

impl eframe::Storage for MemStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// The app started on `state_file` (the persisted state), computing on flex.
fn harness_on_state(state_file: std::path::PathBuf) -> Harness<'static, DiffLabApp> {
    Harness::builder()
        .with_size([1280.0, 860.0])
        .build_eframe(move |cc| {
            DiffLabApp::new(
                cc,
                AppOptions {
                    device: Some(DeviceChoice::Cpu),
                    fresh: false,
                    state_file: Some(state_file.clone()),
                    gpu_refused: None,
                    weights: None,
                    on_frames: false,
                    page_draws_in_software: None,
                },
            )
            .expect("app")
        })
}

/// A fresh folder under the target's temporary directory.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("difflab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn settings_persist_and_reset_to_defaults() {
    let mut h = harness();
    h.get_by_role_and_label(Role::Slider, "t")
        .set_value_accesskit(321.0);
    h.get_by_label("Light theme").click();
    settle(&mut h, 15);
    let mut storage = MemStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    // Written as eframe's file storage writes app.ron: a RON map of strings.
    let dir = temp_dir("persist");
    let file = dir.join("app.ron");
    std::fs::write(&file, ron::to_string(&storage.0).unwrap()).unwrap();

    let mut h2 = harness_on_state(file);
    settle(&mut h2, 15);
    assert_eq!(h2.state().settings.t, 321);
    assert!(!h2.state().settings.dark_mode);
    assert_eq!(h2.state().forward.shown_t, Some(321));

    h2.get_by_label("Reset to defaults").click();
    settle(&mut h2, 15);
    assert_eq!(
        h2.state().settings,
        Settings {
            device: DeviceChoice::Cpu,
            ..Settings::default()
        }
    );
}

#[test]
fn a_damaged_or_newer_state_file_starts_on_defaults_keeps_a_copy_and_says_so() {
    let good = Settings {
        t: 123,
        ..Settings::default()
    };
    let settings_ron = ron::to_string(&good).unwrap();
    let newer = settings_ron.replacen(&format!("version:{SETTINGS_VERSION}"), "version:99", 1);
    assert_ne!(newer, settings_ron, "the version is in the stored settings");
    let state_of = |settings: &str| {
        let mut map = HashMap::new();
        map.insert(eframe::APP_KEY.to_string(), settings.to_string());
        ron::to_string(&map).unwrap()
    };
    let cases = [
        (
            "damaged",
            b"{\"app\": \"(t: 12, \x00\xff".to_vec(),
            "damaged",
        ),
        (
            "newer",
            state_of(&newer).into_bytes(),
            "newer difflab (settings format 99",
        ),
    ];
    for (name, bytes, why) in cases {
        let dir = temp_dir(name);
        let file = dir.join("app.ron");
        std::fs::write(&file, &bytes).unwrap();
        let mut h = harness_on_state(file.clone());
        settle(&mut h, 15);
        let banner = h.state().banner.clone().unwrap_or_default();
        assert!(
            banner.contains("could not be used") && banner.contains(why),
            "{name}: {banner}"
        );
        assert!(banner.contains("started on the defaults"), "{banner}");
        // Shown in the window, not only in state.
        assert!(
            h.query_by_label_contains("could not be used").is_some(),
            "{name}"
        );
        assert_eq!(h.state().settings.t, Settings::default().t, "{name}");
        let copies: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("app.ron.bad-"))
            .collect();
        assert_eq!(copies.len(), 1, "{name}: one copy beside the file");
        assert_eq!(std::fs::read(copies[0].path()).unwrap(), bytes, "{name}");
        assert!(
            banner.contains(&copies[0].path().display().to_string()),
            "{banner}"
        );
    }

    // A good file restores its settings and says nothing.
    let dir = temp_dir("good");
    let file = dir.join("app.ron");
    std::fs::write(&file, state_of(&settings_ron)).unwrap();
    let mut h = harness_on_state(file);
    settle(&mut h, 15);
    assert_eq!(h.state().settings.t, 123);
    assert_eq!(h.state().banner, None);
    // A version-1 file (one flat struct, before the version was recorded) is regrouped.
    let old = ron::to_string(&SettingsV1 {
        t: 123,
        sample_seed: 4242,
        batch: 9,
        ..SettingsV1::default()
    })
    .unwrap();
    assert!(!old.contains("version"));
    let dir = temp_dir("unversioned");
    let file = dir.join("app.ron");
    std::fs::write(&file, state_of(&old)).unwrap();
    let mut h = harness_on_state(file);
    settle(&mut h, 15);
    assert_eq!(h.state().settings.t, 123);
    assert_eq!(h.state().settings.sampling.seed, 4242);
    assert_eq!(h.state().settings.sampling.batch, 9);
    assert_eq!(h.state().settings.version, SETTINGS_VERSION);
    assert_eq!(h.state().banner, None);
}

#[test]
fn in_a_narrow_window_the_buttons_leave_every_tab_in_reach() {
    // A 1024-pixel projector: the session buttons would cover the last tabs on one row.
    for (width, rows) in [(1024.0, 2), (1280.0, 1)] {
        let mut h = Harness::builder()
            .with_size([width, 700.0])
            .build_eframe(|cc| cpu_app(cc));
        settle(&mut h, 15);
        const TABS: [&str; 8] = [
            "Forward process",
            "Schedule",
            "Sampling",
            "Compare",
            "Interpolate",
            "2-D playground",
            "Edit",
            "Lessons",
        ];
        const BUTTONS: [&str; 5] = [
            "Help",
            "Light theme",
            "Reset to defaults",
            "Save session…",
            "Open session…",
        ];
        for button in BUTTONS {
            let b = h.get_by_label(button).rect();
            assert!(
                b.left() >= 0.0 && b.right() <= width,
                "{width} px: {button} at {b:?}"
            );
            for tab in TABS {
                let r = h.get_by_label(tab).rect();
                assert!(
                    !r.intersects(b) && r.right() <= width,
                    "{width} px: the tab {tab} at {r:?}, the button {button} at {b:?}"
                );
            }
        }
        let button = h.get_by_label("Light theme").rect();
        let lessons = h.get_by_label("Lessons").rect();
        let same_row = (button.center().y - lessons.center().y).abs() < 4.0;
        assert_eq!(same_row, rows == 1, "{width} px: {rows} row(s)");
        // The second row sits right under the first.
        assert!(button.top() < lessons.bottom() + 30.0, "{button:?}");
        // A button works from either row.
        assert!(h.state().settings.dark_mode);
        h.get_by_label("Light theme").click();
        settle(&mut h, 5);
        assert!(
            !h.state().settings.dark_mode,
            "{width} px: the theme button"
        );
        h.get_by_label("Dark theme").click();
        settle(&mut h, 5);
        h.get_by_label("Lessons").click();
        settle(&mut h, 5);
        assert_eq!(h.state().settings.tab, Tab::Lessons);
        // Presenter mode (the UI at 1.75×, no buttons): the tabs wrap onto a second row
        // rather than running past the edge. (From the Schedule tab: the lessons panel has a
        // heading "Lessons" too.)
        h.get_by_label("Schedule").click();
        h.state_mut().settings.lessons.presenter = true;
        settle(&mut h, 5);
        let screen = h.ctx.content_rect();
        assert!(h.ctx.zoom_factor() > 1.5);
        let first = h.get_by_label("Forward process").rect();
        for tab in ["2-D playground", "Edit", "Lessons"] {
            let r = h.get_by_label(tab).rect();
            assert!(
                r.right() <= screen.right(),
                "{width} px, presenter: the tab {tab} at {r:?} in {screen:?}"
            );
        }
        // Eight tabs at 1.75× take about 1,350 pixels: both widths wrap, and every tab stays
        // on the screen (checked above).
        let wrapped = h.get_by_label("Lessons").rect().top() > first.bottom();
        assert_eq!(wrapped, width < 1350.0, "{width} px, presenter: wrapped");
        h.get_by_label("Lessons").click();
        settle(&mut h, 5);
        assert_eq!(h.state().settings.tab, Tab::Lessons);
    }
}
