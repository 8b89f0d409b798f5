//! Each panel on its own, without the rest of the app: drawn into a bare kittest harness with
//! its settings, clicked by label, and judged by the actions it asks for.

use difflab::app::{
    AppAction, CompareKind, ComparePanel, Ctx, ForwardPanel, GifSource, InterpolatePanel, Panel,
    PlaygroundPanel, SamplingPanel, SchedulePanel, Settings, Tab, ToyAction,
};
use difflab::diffusion::NoiseSchedule;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// A panel, the settings it edits, and every action it asked for so far.
struct Alone<P> {
    panel: P,
    settings: Settings,
    actions: Vec<AppAction>,
}

fn alone<P: Panel + 'static>(panel: P) -> Harness<'static, Alone<P>> {
    let mut h = Harness::builder()
        .with_size([1200.0, 900.0])
        // The app's fonts, as the app installs them: egui's own lack glyphs difflab draws.
        .with_context_setup(difflab::app::install_fonts)
        .build_ui_state(
            |ui, s: &mut Alone<P>| {
                let schedule = NoiseSchedule::new(s.settings.schedule).ok();
                let mut ctx = Ctx::new(&mut s.settings, schedule.as_ref());
                let panel = &mut s.panel;
                ui.horizontal_top(|ui| {
                    ui.vertical(|ui| {
                        ui.set_width(260.0);
                        panel.controls_ui(ui, &mut ctx);
                    });
                    ui.vertical(|ui| panel.main_ui(ui, &mut ctx));
                });
                s.actions.extend(ctx.actions);
            },
            Alone {
                panel,
                settings: Settings::default(),
                actions: Vec::new(),
            },
        );
    h.run();
    h
}

/// Clicks `label` and returns the actions that click asked for.
fn click<P: Panel>(h: &mut Harness<'_, Alone<P>>, label: &str) -> Vec<AppAction> {
    h.state_mut().actions.clear();
    h.get_by_label(label).click();
    h.run();
    std::mem::take(&mut h.state_mut().actions)
}

#[test]
fn the_forward_panel_asks_for_an_image_and_the_filmstrip() {
    let mut h = alone(ForwardPanel::default());
    assert_eq!(h.state().panel.tab(), Tab::Forward);
    assert_eq!(click(&mut h, "Open image…"), vec![AppAction::OpenImage]);
    assert_eq!(
        click(&mut h, "Export filmstrip (PNG)…"),
        vec![AppAction::ExportFilmstrip]
    );
}

#[test]
fn the_schedule_panel_edits_its_settings_and_asks_for_the_csv() {
    let settings = Settings::default();
    let mut h = alone(SchedulePanel::new(&settings));
    assert_eq!(
        click(&mut h, "Export curves (CSV)…"),
        vec![AppAction::ExportScheduleCsv]
    );
}

#[test]
fn the_sampling_panel_asks_to_run_and_to_export() {
    let mut h = alone(SamplingPanel::default());
    assert_eq!(click(&mut h, "Run"), vec![AppAction::RunSampling]);
    // Nothing sampled yet: the export buttons are there but off (they keep their place, and
    // egui's style lookup, from before the first run), Cancel disabled.
    assert!(h.query_by_label("Export trajectory (GIF)…").is_some());
    assert!(
        click(&mut h, "Export trajectory (GIF)…").is_empty(),
        "Export is disabled before a run"
    );
    assert!(click(&mut h, "Export image (PNG)…").is_empty());
    assert!(
        click(&mut h, "Cancel").is_empty(),
        "Cancel is disabled when idle"
    );
    // A preset is the panel's own business: it changes the settings and asks for nothing.
    assert!(click(&mut h, "DDPM 1000 steps").is_empty());
    assert_eq!(h.state().settings.sampling.sampler.steps, 1000);
}

#[test]
fn the_compare_panel_asks_for_each_kind_of_comparison() {
    let mut h = alone(ComparePanel::default());
    assert_eq!(
        click(&mut h, "Run A and B"),
        vec![AppAction::Compare(CompareKind::Pair)]
    );
    assert_eq!(
        click(&mut h, "Steps vs quality grid"),
        vec![AppAction::Compare(CompareKind::Grid)]
    );
    assert_eq!(
        click(&mut h, "η sweep"),
        vec![AppAction::Compare(CompareKind::Sweep)]
    );
}

#[test]
fn the_interpolate_panel_asks_to_decode() {
    let mut h = alone(InterpolatePanel::default());
    assert_eq!(click(&mut h, "Decode"), vec![AppAction::Decode]);
    assert!(
        !h.state()
            .actions
            .contains(&AppAction::ExportGif(GifSource::Interpolation)),
        "nothing to export before a decode"
    );
}

#[test]
fn the_playground_asks_its_worker_through_actions() {
    let mut h = alone(PlaygroundPanel::default());
    assert_eq!(
        click(&mut h, "Train"),
        vec![AppAction::Toy(ToyAction::Train(false))]
    );
    assert_eq!(
        click(&mut h, "Reset"),
        vec![AppAction::Toy(ToyAction::Train(true))]
    );
    assert_eq!(
        click(&mut h, "Sample DDPM and DDIM"),
        vec![AppAction::Toy(ToyAction::Sample)]
    );
}

/// The Schedule panel's markers can show a solver's model calls: picked by label, with Karras σ.
#[test]
fn schedule_markers_show_a_solvers_model_calls() {
    let mut h = crate::common::app::cpu_harness();
    crate::common::app::settle(&mut h, 30);
    h.get_by_label("Schedule").click();
    h.run();
    h.get_by_role_and_label(egui::accesskit::Role::ComboBox, "Markers of")
        .click();
    h.run();
    h.get_by_label("heun").click();
    h.run();
    h.step();
    assert_eq!(
        h.state().settings.schedule_view.solver,
        Some(difflab::diffusion::solvers::SolverKind::Heun)
    );
    h.get_by_label("Karras σ").click();
    h.run();
    assert!(h.state().settings.schedule_view.karras);
    // The spacing applies to DDPM/DDIM only: not offered for a solver.
    assert!(h.query_by_label("Spacing").is_none());
}
