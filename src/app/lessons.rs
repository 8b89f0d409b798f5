//! Lessons: a guided course through the panels. Each lesson is data (assets/lessons/<lang>/, a
//! RON header with its "Show me" set-ups and its "Try it" question, then markdown rendered by
//! egui_commonmark). A "Show me" link in the text sets a panel up and switches to it through
//! [`AppAction::Setup`], the same typed action path as the rest of the app.

use std::collections::BTreeMap;

use egui::{RichText, Ui};
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};
use serde::{Deserialize, Serialize};

use super::panel::{AppAction, Ctx, Panel};
use super::sampler::{LabelPick, SamplerChoice};
use super::settings::{FieldKind, ImageSource, Settings, Tab, ToyView};
use crate::data::toy2d::Toy2d;
use crate::diffusion::{BetaSchedule, ScheduleConfig};

/// The bundled lessons, in order: (file name, English text).
pub const LESSONS_EN: [(&str, &str); 13] = [
    (
        "01-what.md",
        include_str!("../../assets/lessons/en/01-what.md"),
    ),
    (
        "02-forward-step.md",
        include_str!("../../assets/lessons/en/02-forward-step.md"),
    ),
    (
        "03-jump-to-t.md",
        include_str!("../../assets/lessons/en/03-jump-to-t.md"),
    ),
    (
        "04-schedules.md",
        include_str!("../../assets/lessons/en/04-schedules.md"),
    ),
    (
        "05-posterior.md",
        include_str!("../../assets/lessons/en/05-posterior.md"),
    ),
    (
        "06-training.md",
        include_str!("../../assets/lessons/en/06-training.md"),
    ),
    (
        "07-network.md",
        include_str!("../../assets/lessons/en/07-network.md"),
    ),
    (
        "08-ddpm.md",
        include_str!("../../assets/lessons/en/08-ddpm.md"),
    ),
    (
        "09-ddim.md",
        include_str!("../../assets/lessons/en/09-ddim.md"),
    ),
    (
        "10-interpolation.md",
        include_str!("../../assets/lessons/en/10-interpolation.md"),
    ),
    (
        "11-score.md",
        include_str!("../../assets/lessons/en/11-score.md"),
    ),
    (
        "12-judging.md",
        include_str!("../../assets/lessons/en/12-judging.md"),
    ),
    (
        "13-guidance.md",
        include_str!("../../assets/lessons/en/13-guidance.md"),
    ),
];

/// How a "Show me" sets the app up: the panel to open and the settings to change (the rest stay
/// as they are). Unknown fields are an error, so a typo in a lesson fails its test.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Setup {
    /// The panel to open.
    pub tab: Option<Tab>,
    /// The timeline's t (the paper's numbering, 0 to T).
    pub t: Option<usize>,
    /// The noise schedule.
    pub schedule: Option<BetaSchedule>,
    /// The forward panel's image.
    pub source: Option<ImageSource>,
    /// The forward panel's noise seed.
    pub seed: Option<u64>,
    /// Overlay a second schedule on the schedule panel's curves.
    pub overlay: Option<BetaSchedule>,
    /// The sampling panel's sampler.
    pub sampler: Option<SamplerChoice>,
    /// Its steps N.
    pub steps: Option<usize>,
    /// DDIM's η.
    pub eta: Option<f64>,
    /// The playground's view.
    pub toy_view: Option<ToyView>,
    /// The playground's data set.
    pub toy_data: Option<Toy2d>,
    /// The playground's arrows: −ε̂ or the score.
    pub field_kind: Option<FieldKind>,
    /// The digit asked of the class-conditional U-Net (or any, or one row per digit).
    pub digit: Option<LabelPick>,
    /// The guidance scale w.
    pub guidance: Option<f32>,
    /// The interpolation's two seeds.
    pub seeds: Option<(u64, u64)>,
}

impl Setup {
    /// Applies the set-up to the settings (then clamped as any loaded settings are).
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(tab) = self.tab {
            settings.tab = tab;
        }
        if let Some(kind) = self.schedule {
            settings.schedule = ScheduleConfig::new(kind, settings.schedule.num_train_timesteps);
        }
        if let Some(t) = self.t {
            settings.t = t;
        }
        if let Some(source) = &self.source {
            settings.forward.source = source.clone();
        }
        if let Some(seed) = self.seed {
            settings.forward.seed = seed;
        }
        if let Some(kind) = self.overlay {
            settings.schedule_view.compare_enabled = true;
            settings.schedule_view.compare_schedule =
                ScheduleConfig::new(kind, settings.schedule.num_train_timesteps);
        }
        if let Some(sampler) = self.sampler {
            settings.sampling.sampler.sampler = sampler;
        }
        if let Some(steps) = self.steps {
            settings.sampling.sampler.steps = steps;
        }
        if let Some(eta) = self.eta {
            settings.sampling.sampler.eta = eta;
        }
        if let Some(view) = self.toy_view {
            settings.toy.view = view;
        }
        if let Some(data) = self.toy_data {
            settings.toy.dataset = Some(data);
        }
        if let Some(kind) = self.field_kind {
            settings.toy.field_kind = kind;
        }
        if let Some(digit) = self.digit {
            settings.sampling.guidance.label = digit;
            // Digits come from the trained U-Net.
            settings.sampling.model.unet = true;
        }
        if let Some(w) = self.guidance {
            settings.sampling.guidance.scale = w;
        }
        if let Some((a, b)) = self.seeds {
            settings.interp.seed_a = a;
            settings.interp.seed_b = b;
        }
        *settings = std::mem::take(settings).sanitised();
    }
}

/// A lesson's "Try it": a question to answer before revealing, and what to look at.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryIt {
    /// The question.
    pub question: String,
    /// The answer, shown on Reveal.
    pub answer: String,
    /// A "Show me" of the header that lets the student check.
    #[serde(default)]
    pub show: Option<String>,
}

/// A lesson's typed header.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonHeader {
    /// The title.
    pub title: String,
    /// The "Show me" set-ups, by the name the text links to (`[Show me …](#name)`).
    #[serde(default)]
    pub show: BTreeMap<String, Setup>,
    /// The question.
    pub try_it: TryIt,
}

/// A parsed lesson.
#[derive(Clone, Debug, PartialEq)]
pub struct Lesson {
    /// Its file, for messages.
    pub file: String,
    /// The header.
    pub header: LessonHeader,
    /// The markdown after the header.
    pub body: String,
}

/// Parses a lesson file: a header between `---ron` and `---` lines, then markdown. Every
/// `(#name)` link in the text must name a "Show me" of the header, and the "Try it" one too.
/// Errors name the file and the line.
pub fn parse_lesson(file: &str, text: &str) -> Result<Lesson, String> {
    let rest = text
        .strip_prefix("---ron\n")
        .ok_or_else(|| format!("{file}:1: a lesson starts with a `---ron` header line"))?;
    let end = rest
        .find("\n---\n")
        .ok_or_else(|| format!("{file}: the header has no closing `---` line"))?;
    let header: LessonHeader = ron::from_str(&rest[..end]).map_err(|e| {
        // RON counts lines from the header's first line, which is the file's second.
        let line = e.span.start.line + 1;
        format!("{file}:{line}: bad header: {}", e.code)
    })?;
    let body = rest[end + 5..].to_string();
    let body_line = text[..text.len() - body.len()].lines().count();
    for (i, line) in body.lines().enumerate() {
        let mut s = line;
        while let Some(at) = s.find("](#") {
            let tail = &s[at + 3..];
            let name = tail.split(')').next().unwrap_or_default();
            if !header.show.contains_key(name) {
                return Err(format!(
                    "{file}:{}: the link `#{name}` names no \"Show me\" of the header",
                    body_line + i + 1
                ));
            }
            s = tail;
        }
    }
    if let Some(name) = &header.try_it.show
        && !header.show.contains_key(name)
    {
        return Err(format!(
            "{file}: try_it shows `{name}`, which the header does not define"
        ));
    }
    Ok(Lesson {
        file: file.to_string(),
        header,
        body,
    })
}

/// The bundled English lessons, parsed; a bad one becomes a lesson that says what is wrong.
/// `{{unet_table}}` in a lesson becomes the shipped U-Net's layer table.
pub fn bundled_lessons() -> Vec<Result<Lesson, String>> {
    let mut table = None;
    LESSONS_EN
        .iter()
        .map(|(file, text)| {
            let mut lesson = parse_lesson(file, text)?;
            if lesson.body.contains("{{unet_table}}") {
                let t = table.get_or_insert_with(unet_table_markdown);
                lesson.body = lesson.body.replace("{{unet_table}}", t);
            }
            Ok(lesson)
        })
        .collect()
}

/// The shipped U-Net's layer table as markdown, with the total.
pub fn unet_table_markdown() -> String {
    use burn::module::Module;
    let device = burn::tensor::Device::flex();
    match crate::model::unet::shipped(&device) {
        Ok((model, config)) => {
            let mut s =
                String::from("| part | channels | at | parameters |\n| --- | --- | --- | --- |\n");
            for r in model.layer_table(config.image_size) {
                let at = if r.side == 0 {
                    String::new()
                } else {
                    format!("{0}×{0}", r.side)
                };
                s.push_str(&format!(
                    "| {} | {} | {at} | {} |\n",
                    r.name, r.channels, r.params
                ));
            }
            s.push_str(&format!("| **total** | | | **{}** |\n", model.num_params()));
            s
        }
        Err(e) => format!("(the table could not be made: {e})"),
    }
}

/// The lessons panel's persisted settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LessonSettings {
    /// The lesson open (0-based).
    pub current: usize,
    /// Presenter mode: the whole UI at 1.75×, for a class (F5).
    pub presenter: bool,
}

/// The UI's zoom in presenter mode.
pub const PRESENTER_ZOOM: f32 = 1.75;

/// The lessons panel.
pub struct LessonsPanel {
    lessons: Vec<Result<Lesson, String>>,
    cache: CommonMarkCache,
    /// Whether the current lesson's answer is shown.
    pub revealed: bool,
}

impl Default for LessonsPanel {
    fn default() -> Self {
        let lessons = bundled_lessons();
        let mut cache = CommonMarkCache::default();
        for lesson in lessons.iter().flatten() {
            for name in lesson.header.show.keys() {
                cache.add_link_hook(format!("#{name}"));
            }
        }
        Self {
            lessons,
            cache,
            revealed: false,
        }
    }
}

impl LessonsPanel {
    /// How many lessons there are.
    pub fn len(&self) -> usize {
        self.lessons.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lessons.is_empty()
    }

    /// "8. Sampling with DDPM": numbered as the course numbers it (the file's prefix), so the
    /// references between lessons hold while some are still to be written.
    fn title(&self, i: usize) -> String {
        let number = LESSONS_EN
            .get(i)
            .and_then(|(file, _)| file.split('-').next()?.parse::<usize>().ok())
            .unwrap_or(i + 1);
        match &self.lessons[i] {
            Ok(l) => format!("{number}. {}", l.header.title),
            Err(_) => format!("{number}. (damaged)"),
        }
    }
}

impl Panel for LessonsPanel {
    fn tab(&self) -> Tab {
        Tab::Lessons
    }

    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        ui.heading("Lessons");
        let current = &mut ctx.settings.lessons.current;
        for i in 0..self.lessons.len() {
            if ui.selectable_label(*current == i, self.title(i)).clicked() && *current != i {
                *current = i;
                self.revealed = false;
            }
        }
        ui.separator();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(*current > 0, egui::Button::new("Previous"))
                .clicked()
            {
                *current -= 1;
                self.revealed = false;
            }
            if ui
                .add_enabled(*current + 1 < self.lessons.len(), egui::Button::new("Next"))
                .clicked()
            {
                *current += 1;
                self.revealed = false;
            }
        });
        ui.separator();
        let mut presenter = ctx.settings.lessons.presenter;
        if ui
            .toggle_value(&mut presenter, "Presenter mode (F5)")
            .on_hover_text(
                "Everything 1.75× larger for a class; PageUp/PageDown or the arrow keys move \
                 between lessons; F11 is full screen",
            )
            .changed()
        {
            ctx.settings.lessons.presenter = presenter;
        }
    }

    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let i = ctx
            .settings
            .lessons
            .current
            .min(self.lessons.len().saturating_sub(1));
        // Borrowed, not cloned: this runs every frame.
        let Self {
            lessons,
            cache,
            revealed,
        } = self;
        let lesson = match lessons.get(i) {
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                ui.label(RichText::new(format!("This lesson could not be read: {e}")).strong());
                return;
            }
            None => return,
        };
        egui::ScrollArea::vertical().show(ui, |ui| {
            // A readable line length, never wider than the panel (presenter mode zooms).
            ui.set_max_width(ui.available_width().min(760.0));
            ui.heading(RichText::new(&lesson.header.title).size(26.0));
            CommonMarkViewer::new().show(ui, cache, &lesson.body);
            ui.separator();
            ui.label(RichText::new("Try it").strong());
            ui.label(&lesson.header.try_it.question);
            if *revealed {
                ui.label(RichText::new(&lesson.header.try_it.answer).italics());
                if let Some(name) = &lesson.header.try_it.show
                    && let Some(setup) = lesson.header.show.get(name)
                    && ui.button("Show me").clicked()
                {
                    ctx.actions.push(AppAction::Setup(setup.clone()));
                }
            } else if ui.button("Reveal the answer").clicked() {
                *revealed = true;
            }
        });
        // A clicked "Show me" link in the text flips its hook.
        for (name, setup) in &lesson.header.show {
            let hook = format!("#{name}");
            if cache.get_link_hook(&hook) == Some(true) {
                ctx.actions.push(AppAction::Setup(setup.clone()));
            }
        }
    }
}
