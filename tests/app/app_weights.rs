//! Sampling with a U-Net weights file the student opened ("Open weights…", a dropped file,
//! `difflab gui --weights`): the panels sample with it, bad files change nothing, sessions
//! reopen it and say when it changed or is gone.

use difflab::app::unet_file::{self, SHIPPED};
use difflab::app::{AppOptions, DiffLabApp, LabelPick, Setup, ShowRun};
use difflab::model::UNetConfig;
use difflab::model::unet::SHIPPED_WEIGHTS;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

use crate::common::app::{Dropped, settle};

fn harness() -> Harness<'static, DiffLabApp> {
    let mut h = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("Sampling").click();
    h.step();
    // DDIM 10 steps, 4 digits: a run takes a moment.
    h.get_by_label("DDIM 10 η=1").click();
    h.get_by_role_and_label(Role::Slider, "η")
        .set_value_accesskit(0.0);
    h.get_by_role_and_label(Role::Slider, "Batch size")
        .set_value_accesskit(4.0);
    h.step();
    h
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("difflab-weights-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A small unconditional U-Net for `side`×`side` grey images, seeded.
fn write_small_unet(path: &std::path::Path, side: usize, seed: u64) {
    write_small_unet_channels(path, side, 1, seed);
}

/// The same with `channels` channels.
fn write_small_unet_channels(path: &std::path::Path, side: usize, channels: usize, seed: u64) {
    let config = UNetConfig::new()
        .with_image_size(side)
        .with_in_channels(channels)
        .with_base_channels(8)
        .with_channel_mult(vec![1, 2])
        .with_groups(4);
    let net = config
        .init_seeded(&burn::tensor::Device::flex(), seed)
        .expect("net");
    net.save_safetensors(&config, path).expect("save");
}

/// Runs the sampling panel and returns the last frame's grid.
fn run(h: &mut Harness<'static, DiffLabApp>) -> image::RgbImage {
    h.get_by_label("Run").click();
    settle(h, 60);
    assert!(h.state().banner.is_none(), "{:?}", h.state().banner);
    h.state().sampling.trajectory.last().expect("frames").x()
}

#[test]
fn an_opened_weights_file_is_what_the_panels_sample_with() {
    let mut h = harness();
    let shipped = run(&mut h);
    let dir = temp_dir("open");

    // The shipped weights under another name: a different file, the very same samples.
    let copy = dir.join("copy.safetensors");
    std::fs::write(&copy, SHIPPED_WEIGHTS).expect("write");
    h.state_mut().open_weights(copy.clone());
    h.step();
    let model = h.state().settings.sampling.model;
    assert!(model.unet && model.weights != SHIPPED);
    let opened = h.state().settings.unet_weights.clone().expect("opened");
    assert_eq!((opened.path, opened.id), (copy.clone(), model.weights));
    let notice = h.state().notice.clone().unwrap_or_default();
    assert!(notice.contains("copy.safetensors"), "{notice}");
    let combo = h.get_by_role_and_label(Role::ComboBox, "Model");
    let folder = dir.file_name().unwrap().to_string_lossy().to_string();
    // The menu shows the name cut to 24 characters; the line under it names it in full.
    let shown = combo.accesskit_node().value().unwrap_or_default();
    let full = format!("U-Net: {folder}/copy.safetensors");
    assert_eq!(shown.chars().count(), 24, "{shown}");
    assert!(shown.ends_with('…') && full.starts_with(shown.trim_end_matches('…')));
    let file = unet_file::get(model.weights).expect("open");
    assert!(
        file.summary()
            .starts_with("28×28 grey, 10 classes, base 16 channels, predicts v")
    );
    h.get_by_label(&format!("{folder}/copy.safetensors: {}", file.summary()));
    assert!(
        run(&mut h) == shipped,
        "the same weights make the same digits"
    );

    // Another net: other samples, and no digit picker (it is unconditional).
    h.state_mut().settings.sampling.guidance.label = LabelPick::Digit(3);
    let mine = dir.join("mine.safetensors");
    write_small_unet(&mine, 28, 7);
    h.state_mut().open_weights(mine);
    h.step();
    h.step();
    let other = run(&mut h);
    assert_eq!(other.dimensions(), shipped.dimensions());
    assert!(other != shipped, "other weights, other samples");
    assert!(h.get_by_label("Digit").accesskit_node().is_disabled());
    h.get_by_label(&format!(
        "{folder}/mine.safetensors: 28×28 grey, unconditional, base 8 channels, predicts ε"
    ));
    // The run went unconditional (the picked digit does not apply), so it ran unguided.
    assert!(!h.state().sampling.trajectory[0].has_guidance);

    // Back to the shipped weights through the menu, by label.
    h.get_by_role_and_label(Role::ComboBox, "Model").click();
    h.run();
    h.get_by_label("MNIST U-Net (trained)").click();
    h.run();
    assert_eq!(h.state().settings.sampling.model.weights, SHIPPED);
    assert!(!h.get_by_label("Digit").accesskit_node().is_disabled());
    // The file stays on offer.
    h.get_by_role_and_label(Role::ComboBox, "Model").click();
    h.run();
    h.get_by_label(&format!("U-Net: {folder}/mine.safetensors"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_weights_file_changes_nothing_and_says_why() {
    let mut h = harness();
    let dir = temp_dir("bad");
    let two_channels = dir.join("two.safetensors");
    write_small_unet_channels(&two_channels, 8, 2, 1);
    let too_big = dir.join("big.safetensors");
    write_small_unet(&too_big, 256, 1);
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &SHIPPED_WEIGHTS[..SHIPPED_WEIGHTS.len() / 2]).expect("write");
    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "my notes, not weights").expect("write");
    let before = h.state().settings.clone();
    for (path, why) in [
        (
            two_channels,
            "the app shows grey or colour images up to 128×128, and this U-Net makes 8×8 images \
             with 2 channels",
        ),
        (too_big, "this U-Net makes 256×256 images with 1 channel ("),
        (cut, "truncated"),
        (text, "not SafeTensors"),
        (dir.join("missing.safetensors"), "missing.safetensors"),
        (dir.clone(), "not a file"),
    ] {
        h.state_mut().banner = None;
        h.state_mut().open_weights(path.clone());
        h.step();
        let banner = h.state().banner.clone().expect("a banner");
        assert!(banner.contains(why), "{}: {banner}", path.display());
        assert_eq!(banner.lines().count(), 1, "{banner}");
        assert_eq!(h.state().settings, before);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_reopens_its_weights_and_says_when_they_changed_or_are_gone() {
    let mut h = harness();
    let dir = temp_dir("session");
    let mine = dir.join("mine.safetensors");
    write_small_unet(&mine, 28, 3);
    h.state_mut().open_weights(mine.clone());
    let id = h.state().settings.sampling.model.weights;
    let session = dir.join("class.json");
    h.state_mut().save_session(&session).expect("save");

    let mut h2 = harness();
    let ctx = h2.ctx.clone();
    h2.state_mut().open_session(&session, &ctx).expect("open");
    h2.step();
    assert_eq!(h2.state().settings.sampling.model.weights, id);
    assert!(h2.state().banner.is_none(), "{:?}", h2.state().banner);

    // Retrained in place: sampled as it is now, and the banner says so.
    write_small_unet(&mine, 28, 4);
    h2.state_mut().open_session(&session, &ctx).expect("open");
    h2.step();
    let now = unet_file::open(&mine).expect("open").id;
    assert_ne!(now, id);
    assert_eq!(h2.state().settings.sampling.model.weights, now);
    let banner = h2.state_mut().banner.take().unwrap_or_default();
    assert!(
        banner.contains("has changed since it was opened"),
        "{banner}"
    );

    // Gone: the shipped weights, and the banner says why.
    std::fs::remove_file(&mine).expect("remove");
    h2.state_mut().open_session(&session, &ctx).expect("open");
    h2.step();
    assert_eq!(h2.state().settings.sampling.model.weights, SHIPPED);
    assert_eq!(h2.state().settings.unet_weights, None);
    let banner = h2.state().banner.clone().unwrap_or_default();
    assert!(
        banner.contains("mine.safetensors") && banner.ends_with("sampling with the shipped U-Net"),
        "{banner}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lesson_that_asks_for_a_digit_or_runs_uses_the_shipped_weights() {
    let mut h = harness();
    let dir = temp_dir("lesson");
    let mine = dir.join("mine.safetensors");
    write_small_unet(&mine, 28, 11);
    for setup in [
        Setup {
            digit: Some(LabelPick::Digit(7)),
            ..Setup::default()
        },
        Setup {
            run: Some(ShowRun::Sampling),
            ..Setup::default()
        },
    ] {
        h.state_mut().open_weights(mine.clone());
        assert_ne!(h.state().settings.sampling.model.weights, SHIPPED);
        setup.apply(&mut h.state_mut().settings);
        assert_eq!(h.state().settings.sampling.model.weights, SHIPPED);
        // The opened file is still on offer.
        assert!(h.state().settings.unet_weights.is_some());
    }
    // A set-up that neither asks for a digit nor runs leaves the choice alone.
    h.state_mut().open_weights(mine);
    Setup {
        t: Some(10),
        ..Setup::default()
    }
    .apply(&mut h.state_mut().settings);
    assert_ne!(h.state().settings.sampling.model.weights, SHIPPED);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The app as `difflab gui --weights FILE` starts it.
fn harness_with_weights(path: std::path::PathBuf) -> Harness<'static, DiffLabApp> {
    crate::common::app::cpu_harness_with(AppOptions {
        weights: Some(path),
        ..crate::common::app::cpu_options()
    })
}

#[test]
fn gui_weights_samples_with_the_file_from_the_start() {
    let dir = temp_dir("start");
    let mine = dir.join("mine.safetensors");
    write_small_unet(&mine, 28, 13);
    let mut h = harness_with_weights(mine.clone());
    h.step();
    let id = h.state().settings.sampling.model.weights;
    assert_eq!(id, unet_file::open(&mine).expect("open").id);
    assert!(h.state().banner.is_none(), "{:?}", h.state().banner);
    // Gone between the command line's check and the window: the banner says so, and the
    // shipped weights are used.
    let gone = dir.join("gone.safetensors");
    let mut h = harness_with_weights(gone);
    h.step();
    assert_eq!(h.state().settings.sampling.model.weights, SHIPPED);
    let banner = h.state().banner.clone().unwrap_or_default();
    assert!(banner.contains("gone.safetensors"), "{banner}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dropped_weights_file_is_opened_as_a_model_not_an_image() {
    let mut h = harness();
    // The U-Net shipped before conditioning: a real unconditional MNIST net.
    let path = std::path::PathBuf::from("tests/fixtures/mnist-unet-unconditional-v1.safetensors");
    let image_before = h.state().settings.forward.source.clone();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(path.clone())));
    h.step();
    h.step();
    assert!(h.state().banner.is_none(), "{:?}", h.state().banner);
    assert_eq!(h.state().settings.forward.source, image_before);
    let id = unet_file::open(&path).expect("open").id;
    assert_eq!(h.state().settings.sampling.model.weights, id);
    // Remembered by its absolute path (the settings outlive the directory the app started in).
    let kept = h
        .state()
        .settings
        .unet_weights
        .clone()
        .expect("opened")
        .path;
    assert!(
        kept.is_absolute() && kept.ends_with(&path),
        "{}",
        kept.display()
    );
    assert!(h.get_by_label("Digit").accesskit_node().is_disabled());
    let digits = run(&mut h);
    assert_eq!(digits.dimensions(), (59, 59));
}

#[test]
fn a_net_of_colour_pictures_samples_compares_and_interpolates_at_its_size() {
    // What `difflab train --data FOLDER --size 16` makes: 16×16 colour images, no labels.
    let mut h = harness();
    let dir = temp_dir("colour");
    let path = dir.join("pictures.safetensors");
    write_small_unet_channels(&path, 16, 3, 5);
    h.state_mut().open_weights(path);
    h.step();
    let folder = dir.file_name().unwrap().to_string_lossy().to_string();
    h.get_by_label(&format!(
        "{folder}/pictures.safetensors: 16×16 colour, unconditional, base 8 channels, predicts ε"
    ));
    let grid = run(&mut h);
    // 4 pictures of 16×16 in a 2×2 grid with 1 px gaps, in colour (the channels differ).
    assert_eq!(grid.dimensions(), (35, 35));
    assert!(grid.pixels().any(|p| p[0] != p[1] || p[1] != p[2]));
    let frame = h.state().sampling.trajectory.last().expect("frames");
    assert_eq!(frame.shape, [4, 3, 16, 16]);

    h.get_by_label("Compare").click();
    h.step();
    h.get_by_label("Run A and B").click();
    settle(&mut h, 60);
    assert!(h.state().banner.is_none(), "{:?}", h.state().banner);
    let compared = h.state().compare.export_image().expect("compared");
    assert!(compared.width() > 35);

    h.get_by_label("Interpolate").click();
    h.step();
    h.get_by_label("Decode").click();
    settle(&mut h, 60);
    assert!(h.state().banner.is_none(), "{:?}", h.state().banner);
    let r = h.state().interpolate.result.as_ref().expect("decoded");
    assert_eq!(r.slerp[0].dimensions(), (16, 16));
    // Slerp keeps |x_T| about √D, D = 3·16·16.
    let d = (3.0f64 * 256.0).sqrt();
    assert!(
        r.slerp_norms.iter().all(|v| (v / d - 1.0).abs() < 0.15),
        "{:?}",
        r.slerp_norms
    );
    let _ = std::fs::remove_dir_all(&dir);
}
