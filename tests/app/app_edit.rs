//! The edit panel through egui_kittest: a stroke dragged on the sketch pad, SDEdit's strip, a
//! painted mask and inpainting, DDIM inversion, the pad in a session file, a picture opened on
//! the pad.

use difflab::app::{
    DiffLabApp, EditMode, PAD_PIXELS, PAD_SIDE, PadTool, Settings, Tab, fit_to_pad, load_session,
};
use egui::Pos2;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::settle;

fn harness() -> Harness<'static, DiffLabApp> {
    let mut h = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("Edit").click();
    h.step();
    // Short runs: 10 DDIM steps, two seeds.
    let e = &mut h.state_mut().settings.edit;
    e.sampler.steps = 10;
    e.samples = 2;
    h.run_steps(2);
    h
}

/// The pad pixel (col, row)'s centre on the screen.
fn at(h: &Harness<'_, DiffLabApp>, col: f32, row: f32) -> Pos2 {
    let r = h.get_by_label("Sketch pad").rect();
    let cell = r.width() / PAD_SIDE as f32;
    Pos2::new(r.left() + (col + 0.5) * cell, r.top() + (row + 0.5) * cell)
}

/// Drags the mouse over the pad through these pixels.
fn drag(h: &mut Harness<'_, DiffLabApp>, path: &[(f32, f32)]) {
    let pts: Vec<Pos2> = path.iter().map(|&(c, r)| at(h, c, r)).collect();
    h.hover_at(pts[0]);
    h.step();
    h.drag_at(pts[0]);
    h.step();
    for p in &pts[1..] {
        h.hover_at(*p);
        h.step();
    }
    h.drop_at(*pts.last().unwrap());
    h.step();
}

fn rms(a: &[f32], b: &[f32]) -> f64 {
    (a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64)
        .sqrt()
}

#[test]
fn a_stroke_dragged_on_the_pad_is_drawn_and_sdedit_fills_its_strip() {
    let mut h = harness();
    assert_eq!(h.state().settings.tab, Tab::Edit);
    assert!(h.state().settings.edit.pad.iter().all(|&p| p == 0));
    // A "7": across the top, then down to the left.
    drag(
        &mut h,
        &[
            (6.0, 6.0),
            (14.0, 6.0),
            (21.0, 6.0),
            (17.0, 14.0),
            (12.0, 22.0),
        ],
    );
    let pad = h.state().settings.edit.pad.clone();
    let ink = |c: usize, r: usize| pad[r * PAD_SIDE + c];
    // On the stroke: full ink; far from it: none.
    assert_eq!(ink(10, 6), 255, "the top bar");
    assert_eq!(ink(19, 10), 255, "the downstroke");
    assert_eq!(ink(3, 25), 0, "a corner");
    let inked = pad.iter().filter(|&&p| p > 127).count();
    assert!((40..200).contains(&inked), "{inked} pixels inked");

    h.get_by_label("Run SDEdit").click();
    settle(&mut h, 120);
    let app = h.state();
    assert!(!app.edit.running);
    let t0s: Vec<usize> = app.edit.sdedit.iter().map(|r| r.t0).collect();
    assert_eq!(
        t0s,
        [500, 200, 400, 600, 800],
        "the slider's t₀, then the strip"
    );
    let input = app.settings.edit.input();
    let mut distances = Vec::new();
    for row in &app.edit.sdedit {
        assert_eq!(row.values.len(), 2 * PAD_PIXELS, "two seeds");
        assert!(
            row.values
                .iter()
                .all(|v| v.is_finite() && (-1.0..=1.0).contains(v))
        );
        assert_eq!(row.results.images.len(), 2);
        // The grid's start: the largest of the 10 trailing DDIM steps at or below t₀.
        let start = row.start_t.expect("noised");
        assert!(
            start <= row.t0 && row.t0 - start < 100,
            "t₀ {} from {start}",
            row.t0
        );
        distances.push(rms(&row.values[..PAD_PIXELS], &input));
    }
    // Faithfulness gives way: the strip's results drift from the drawing as t₀ grows.
    assert!(
        distances[1] < distances[4],
        "t₀ = 200 is nearer the drawing than t₀ = 800: {distances:?}"
    );
    assert!(
        distances[1] < 0.5,
        "t₀ = 200 keeps the drawing: {distances:?}"
    );
    // Shown: the rows' pictures.
    h.step();
    h.get_by_label("The strip: t₀ = 200, 400, 600, 800, from the same noise");
}

#[test]
fn a_painted_mask_is_inpainted_and_the_unmasked_pixels_are_the_drawings() {
    let mut h = harness();
    // Start from a real 7, mask nothing, then paint a mask over a band across the middle.
    h.get_by_label("Start from MNIST digit").click();
    h.step();
    h.get_by_label("Clear mask").click();
    h.step();
    assert!(h.state().settings.edit.mask.iter().all(|&m| m == 0));
    h.get_by_label("Inpainting").click();
    h.step();
    h.get_by_label("Mask").click();
    h.step();
    assert_eq!(h.state().settings.edit.tool, PadTool::Mask);
    h.state_mut().settings.edit.brush = 3.0;
    drag(&mut h, &[(2.0, 14.0), (14.0, 14.0), (25.0, 14.0)]);
    let mask = h.state().settings.edit.mask.clone();
    let masked: usize = mask.iter().map(|&m| usize::from(m)).sum();
    assert!((100..300).contains(&masked), "{masked} pixels masked");
    assert_eq!(mask[14 * PAD_SIDE + 14], 1);
    assert_eq!(mask[2 * PAD_SIDE + 14], 0);

    h.get_by_label("Inpaint").click();
    settle(&mut h, 120);
    let app = h.state();
    let ip = app.edit.inpaint.as_ref().expect("inpainted");
    assert_eq!(ip.frames.len(), 11, "x_T and 10 steps");
    assert_eq!(ip.mask, mask);
    let input = app.settings.edit.input();
    for s in 0..2 {
        let out = &ip.values[s * PAD_PIXELS..(s + 1) * PAD_PIXELS];
        for i in 0..PAD_PIXELS {
            if mask[i] == 0 {
                assert!(
                    (out[i] - input[i]).abs() < 1e-5,
                    "seed {s}, pixel {i}: {} against {}",
                    out[i],
                    input[i]
                );
            }
        }
        // Inside the mask the model drew: not noise (in range).
        assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
    // The last frame is shown first; scrubbed to x_T, the frame's label follows.
    assert_eq!(h.state().edit.scrub, 10);
    h.step();
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Frame")
        .set_value_accesskit(0.0);
    h.run_steps(2);
    assert_eq!(h.state().edit.scrub, 0);
    h.get_by_label("x_T (t = 999)");
}

#[test]
fn ddim_inversion_reconstructs_the_drawing_from_a_noise_narrower_than_n01() {
    let mut h = harness();
    h.get_by_label("Start from MNIST digit").click();
    h.step();
    h.get_by_label("DDIM inversion").click();
    h.step();
    h.state_mut().settings.edit.invert_steps = 20;
    h.step();
    h.get_by_label("Invert").click();
    settle(&mut h, 120);
    let app = h.state();
    let inv = app.edit.inversion.as_ref().expect("inverted");
    assert_eq!(inv.steps, 20);
    assert!(inv.rmse < 0.15, "RMSE {}", inv.rmse);
    // x_T: mean near 0, but narrower than N(0, 1) (std 0.37 measured at 20 steps; a sample's
    // noise has std 1): inversion finds *a* noise that decodes to the digit, not a typical one.
    let n = inv.noise.len() as f64;
    let mean = inv.noise.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    let sd = (inv
        .noise
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(mean.abs() < 0.2 && (0.2..0.8).contains(&sd), "{mean} {sd}");
    h.step();
    h.get_by_label("decoded back");
}

#[test]
fn the_drawing_and_its_mask_are_saved_in_a_session_file() {
    let mut h = harness();
    drag(&mut h, &[(5.0, 5.0), (20.0, 20.0)]);
    let before = h.state().settings.edit.clone();
    assert!(before.pad.iter().any(|&p| p > 0));
    let dir = std::env::temp_dir().join(format!("difflab-edit-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pad.json");
    h.state_mut().save_session(&path).unwrap();
    let loaded: Settings = load_session(&path).unwrap();
    assert_eq!(loaded.edit, before);
    // Cleared, then opened again: the drawing is back.
    h.get_by_label("Clear").click();
    h.step();
    assert!(h.state().settings.edit.pad.iter().all(|&p| p == 0));
    let ctx = h.ctx.clone();
    h.state_mut().open_session(&path, &ctx).unwrap();
    assert_eq!(h.state().settings.edit.pad, before.pad);
    assert_eq!(h.state().settings.edit.mode, EditMode::Sdedit);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_picture_opened_on_the_edit_panel_goes_to_the_pad_and_a_bad_one_changes_nothing() {
    let mut h = harness();
    let dir = std::env::temp_dir().join(format!("difflab-edit-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Black ink on a white page, 100×50: a bar in the middle.
    let mut img = image::GrayImage::from_pixel(100, 50, image::Luma([255]));
    for x in 20..80 {
        for y in 20..30 {
            img.put_pixel(x, y, image::Luma([0]));
        }
    }
    let png = dir.join("bar.png");
    img.save(&png).unwrap();
    h.state_mut().open_image(png.clone());
    h.step();
    let pad = h.state().settings.edit.pad.clone();
    // Inverted (white on black) and fitted: 20 px wide, centred.
    assert_eq!(pad[14 * PAD_SIDE + 14], 255, "the bar's middle is ink");
    assert_eq!(pad[2 * PAD_SIDE + 2], 0, "the page is black");
    assert_eq!(
        h.state().settings.forward.source,
        Settings::default().forward.source
    );
    // A file that is not a picture: the banner says so, the pad is as it was.
    let bad = dir.join("not.png");
    std::fs::write(&bad, b"not a png").unwrap();
    h.state_mut().open_image(bad);
    h.step();
    assert!(h.state().banner.is_some());
    assert_eq!(h.state().settings.edit.pad, pad);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fitting_a_picture_to_the_pad_inverts_a_light_page_and_centres_it() {
    // 28×28 already: taken as it is (white on black stays).
    let mut grey = vec![0.0f32; PAD_PIXELS];
    grey[0] = 1.0;
    let v = fit_to_pad(&grey, 28, 28);
    assert_eq!(v[0], 1.0);
    assert_eq!(v[1], -1.0);
    // A white 10×10 page with one black pixel: inverted, scaled to 20×20 and centred at 4..24.
    let mut page = vec![1.0f32; 100];
    page[0] = 0.0;
    let v = fit_to_pad(&page, 10, 10);
    assert_eq!(
        v[4 * PAD_SIDE + 4],
        1.0,
        "the black pixel, now ink, at the box's corner"
    );
    assert_eq!(v[4 * PAD_SIDE + 6], -1.0);
    assert_eq!(v[0], -1.0, "outside the 20×20 box");
    // Empty or mismatched: a blank pad.
    assert!(fit_to_pad(&[], 0, 0).iter().all(|&x| x == -1.0));
}
