//! The lessons: every bundled lesson parses, bad lesson files fail with the file and the line,
//! and every "Show me" link, clicked in the app by its text, sets its panel up.

use difflab::app::{DiffLabApp, LESSONS_EN, Setup, Tab, bundled_lessons, parse_lesson};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::common::app::settle;

#[test]
fn every_bundled_lesson_parses_and_links_only_to_its_own_show_mes() {
    assert!(LESSONS_EN.len() >= 4);
    for lesson in bundled_lessons() {
        let lesson = lesson.unwrap();
        assert!(!lesson.header.title.is_empty());
        assert!(!lesson.header.show.is_empty(), "{}", lesson.file);
        assert!(
            lesson.header.try_it.show.is_some(),
            "{}: a Try it to check",
            lesson.file
        );
        // Prose only: a generated table (lesson 7's) does not count.
        let words: usize = lesson
            .body
            .lines()
            .filter(|l| !l.starts_with('|'))
            .map(|l| l.split_whitespace().count())
            .sum();
        assert!(words <= 300, "{}: {words} words", lesson.file);
    }
}

#[test]
fn a_bad_lesson_file_names_the_file_and_the_line() {
    let good = LESSONS_EN[1].1;
    let e = parse_lesson("x.md", "no header\n").unwrap_err();
    assert!(e.starts_with("x.md:1:"), "{e}");
    let e = parse_lesson("x.md", "---ron\n(title: \"a\"\n").unwrap_err();
    assert!(e.contains("no closing"), "{e}");
    // An unknown set-up field (a typo) is an error on its line.
    let typo = good.replacen("t: Some(1),", "tt: Some(1),", 1);
    assert_ne!(typo, good);
    let e = parse_lesson("typo.md", &typo).unwrap_err();
    let line = typo
        .lines()
        .position(|l| l.contains("tt: Some(1)"))
        .unwrap()
        + 1;
    assert!(
        e.starts_with(&format!("typo.md:{line}:")),
        "{e} (line {line})"
    );
    // A link to a Show me the header does not define.
    let dangling = good.replacen("(#t50)", "(#t60)", 1);
    let e = parse_lesson("dangling.md", &dangling).unwrap_err();
    let line = dangling.lines().position(|l| l.contains("(#t60)")).unwrap() + 1;
    assert!(
        e.starts_with(&format!("dangling.md:{line}:")) && e.contains("#t60"),
        "{e}"
    );
}

/// `[text](#name)` links of a lesson body.
fn links(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut s = body;
    while let Some(open) = s.find('[') {
        let rest = &s[open + 1..];
        let Some(close) = rest.find("](#") else { break };
        let text = rest[..close].to_string();
        let after = &rest[close + 3..];
        let name = after.split(')').next().unwrap_or_default().to_string();
        s = &after[name.len()..];
        out.push((text, name));
    }
    out
}

fn lessons_harness() -> Harness<'static, DiffLabApp> {
    let mut h = crate::common::app::cpu_harness();
    settle(&mut h, 30);
    h.get_by_label("Lessons").click();
    h.run_steps(3);
    h
}

#[test]
fn every_show_me_link_sets_its_panel_up() {
    let mut h = lessons_harness();
    assert_eq!(h.state().settings.tab, Tab::Lessons);
    for (i, lesson) in bundled_lessons().into_iter().enumerate() {
        let lesson = lesson.unwrap();
        for (text, name) in links(&lesson.body) {
            // Back to this lesson, then click the link by its text.
            h.state_mut().settings.tab = Tab::Lessons;
            h.state_mut().settings.lessons.current = i;
            h.run_steps(3);
            let before = h.state().settings.clone();
            h.get_by_label(&text).click();
            h.run_steps(3);
            let setup: &Setup = &lesson.header.show[&name];
            let mut want = before.clone();
            setup.apply(&mut want);
            let got = &h.state().settings;
            assert_eq!(got.tab, want.tab, "{}: {text}", lesson.file);
            assert_eq!(got.t, want.t, "{}: {text}", lesson.file);
            assert_eq!(got.schedule, want.schedule, "{}: {text}", lesson.file);
            assert_eq!(got.forward, want.forward, "{}: {text}", lesson.file);
            assert_eq!(
                got.schedule_view, want.schedule_view,
                "{}: {text}",
                lesson.file
            );
            assert_eq!(got.sampling, want.sampling, "{}: {text}", lesson.file);
            assert_eq!(got.toy.view, want.toy.view, "{}: {text}", lesson.file);
            assert_eq!(got.toy.dataset, want.toy.dataset, "{}: {text}", lesson.file);
            assert_eq!(
                got.toy.field_kind, want.toy.field_kind,
                "{}: {text}",
                lesson.file
            );
            assert_eq!(got.interp, want.interp, "{}: {text}", lesson.file);
        }
        // The answer too is drawn (a glyph the fonts lack would fail here, as in the text).
        h.state_mut().settings.tab = Tab::Lessons;
        h.state_mut().settings.lessons.current = i;
        h.state_mut().lessons.revealed = false;
        h.run_steps(3);
        h.get_by_label("Reveal the answer").click();
        h.run_steps(3);
        assert!(h.state().lessons.revealed, "{}", lesson.file);
    }
}

#[test]
fn try_it_reveals_the_answer_then_shows_it() {
    let mut h = lessons_harness();
    h.state_mut().settings.lessons.current = 2;
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("cosine schedule, is x_t still recognisable")
            .is_some()
    );
    assert!(
        h.query_by_label_contains("ᾱ_500 ≈ 0.49").is_none(),
        "hidden until revealed"
    );
    h.get_by_label("Reveal the answer").click();
    h.run_steps(3);
    assert!(h.query_by_label_contains("ᾱ_500 ≈ 0.49").is_some());
    h.get_by_label("Show me").click();
    h.run_steps(3);
    let s = &h.state().settings;
    assert_eq!(s.tab, Tab::Forward);
    assert_eq!(s.t, 500);
    assert_eq!(s.schedule.kind, difflab::diffusion::BetaSchedule::Cosine);
    // Next and Previous move between lessons, and the lesson is remembered in the settings.
    h.state_mut().settings.tab = Tab::Lessons;
    h.run_steps(3);
    h.get_by_label("Next").click();
    h.run_steps(3);
    assert_eq!(h.state().settings.lessons.current, 3);
}

/// Lesson 7's table is the shipped model's, read from its weights: its rows add up to the
/// model's parameter count, and it names the parts by resolution.
#[test]
fn the_network_lesson_shows_the_shipped_models_layer_table() {
    use burn::module::Module;
    let (model, config) = difflab::model::unet::shipped(&burn::tensor::Device::flex()).unwrap();
    let rows = model.layer_table(config.image_size);
    let sum: usize = rows.iter().map(|r| r.params).sum();
    assert_eq!(sum, model.num_params());
    assert!(
        rows.iter()
            .any(|r| r.name == "middle, self-attention" && r.side == 7)
    );
    assert!(
        rows.iter()
            .any(|r| r.name.starts_with("down 1") && r.side == 28)
    );
    let lesson = bundled_lessons()
        .into_iter()
        .flatten()
        .find(|l| l.file == "07-network.md")
        .unwrap();
    assert!(!lesson.body.contains("{{unet_table}}"));
    assert!(
        lesson.body.contains(&format!("**{}**", model.num_params())),
        "the total is in the table"
    );
}

/// Presenter mode: F5 toggles it (the whole UI at 1.75×), PageDown/PageUp and the arrow keys
/// move between lessons, and the choice is part of the persisted settings.
#[test]
fn presenter_mode_zooms_and_the_keys_turn_the_pages() {
    let mut h = lessons_harness();
    h.state_mut().settings.lessons.current = 0;
    h.run_steps(3);
    h.key_press(egui::Key::F5);
    h.run_steps(3);
    assert!(h.state().settings.lessons.presenter);
    assert!((h.ctx.zoom_factor() - difflab::app::PRESENTER_ZOOM).abs() < 1e-6);
    h.key_press(egui::Key::PageDown);
    h.run_steps(2);
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(h.state().settings.lessons.current, 2);
    h.key_press(egui::Key::PageUp);
    h.run_steps(2);
    assert_eq!(h.state().settings.lessons.current, 1);
    // PageUp at the first lesson stays there.
    h.key_press(egui::Key::PageUp);
    h.key_press(egui::Key::PageUp);
    h.run_steps(2);
    assert_eq!(h.state().settings.lessons.current, 0);
    h.key_press(egui::Key::F5);
    h.run_steps(3);
    assert!(!h.state().settings.lessons.presenter);
    assert!((h.ctx.zoom_factor() - 1.0).abs() < 1e-6);
    // The toggle in the panel does the same.
    h.get_by_label("Presenter mode (F5)").click();
    h.run_steps(3);
    assert!(h.state().settings.lessons.presenter);
}
