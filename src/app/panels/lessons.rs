//! Lessons: a guided course through the panels, in English and Simplified Chinese. Each lesson
//! is data (lessons/file.rs); its markdown is rendered by egui_commonmark. A "Show me" link sets a
//! panel up and switches to it through [`AppAction::Setup`], the same typed action path as the
//! rest of the app; a formula's function link opens a popup with that function's doc line. The
//! open lesson can also stay beside the other panels, so a student reads while trying.

use egui::{RichText, Ui};
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};

use super::{AppAction, Ctx, Panel};
use crate::app::lessons::code_refs::{CodeRef, lookup};
use crate::app::lessons::file::{LESSONS, Lesson, bundled_lessons};
use crate::app::settings::{Lang, Tab};

/// The UI's zoom in presenter mode.
pub const PRESENTER_ZOOM: f32 = 1.75;

/// The panel's own words, per language (the other panels stay English for now).
#[derive(Clone, Copy, Debug)]
pub struct Words {
    /// The heading.
    pub lessons: &'static str,
    /// The buttons that move between lessons.
    pub previous: &'static str,
    /// The next lesson.
    pub next: &'static str,
    /// The question's heading.
    pub try_it: &'static str,
    /// Shows the answer.
    pub reveal: &'static str,
    /// Sets the panel up to check the answer.
    pub show_me: &'static str,
    /// The presenter-mode toggle.
    pub presenter: &'static str,
    /// Its tooltip.
    pub presenter_tip: &'static str,
    /// The side-panel toggle.
    pub beside: &'static str,
    /// Its tooltip.
    pub beside_tip: &'static str,
    /// A lesson that could not be read, in the list.
    pub damaged: &'static str,
    /// The same, as the page.
    pub unreadable: &'static str,
    /// The popup's line before a function's location.
    pub computed_in: &'static str,
    /// Closes the side panel.
    pub close: &'static str,
}

impl Words {
    /// The words of a language.
    pub fn of(lang: Lang) -> &'static Words {
        match lang {
            Lang::En => &WORDS_EN,
            Lang::Zh => &WORDS_ZH,
        }
    }
}

const WORDS_EN: Words = Words {
    lessons: "Lessons",
    previous: "Previous",
    next: "Next",
    try_it: "Try it",
    reveal: "Reveal the answer",
    show_me: "Show me",
    presenter: "Presenter mode (F5)",
    presenter_tip: "Everything 1.75× larger for a class; PageUp/PageDown or the arrow keys move \
                    between lessons; F11 is full screen",
    beside: "Keep beside the panels",
    beside_tip: "Show the open lesson in a side panel while another panel is open, so you can \
                 read and try at once",
    damaged: "(damaged)",
    unreadable: "This lesson could not be read:",
    computed_in: "Computed in",
    close: "Close",
};

const WORDS_ZH: Words = Words {
    lessons: "课程",
    previous: "上一课",
    next: "下一课",
    try_it: "动手试试",
    reveal: "显示答案",
    show_me: "演示",
    presenter: "讲课模式（F5）",
    presenter_tip: "界面整体放大 1.75 倍，适合课堂；PageUp/PageDown 或方向键翻到上一课、下一课；\
                    F11 全屏",
    beside: "在其他面板旁保持打开",
    beside_tip: "打开其他面板时，把当前这一课显示在侧栏里，边读边试",
    damaged: "（已损坏）",
    unreadable: "无法读取这一课：",
    computed_in: "计算它的代码位于",
    close: "关闭",
};

/// A markdown cache that knows the lessons' links (their "Show me"s and formula links), so that
/// they render as buttons the panel answers.
pub fn lesson_markdown_cache<'a>(lessons: impl IntoIterator<Item = &'a Lesson>) -> CommonMarkCache {
    let mut cache = CommonMarkCache::default();
    for lesson in lessons {
        for name in lesson.header.show.keys() {
            cache.add_link_hook(format!("#{name}"));
        }
        for name in function_links(&lesson.body) {
            cache.add_link_hook(format!("#fn:{name}"));
        }
    }
    cache
}

/// Renders a lesson's markdown as the panel does (a test reads back what it drew).
pub fn show_lesson_markdown(ui: &mut Ui, cache: &mut CommonMarkCache, body: &str) {
    CommonMarkViewer::new().show(ui, cache, body);
}

/// The lessons panel.
pub struct LessonsPanel {
    lang: Lang,
    lessons: Vec<Result<Lesson, String>>,
    cache: CommonMarkCache,
    /// Whether the current lesson's answer is shown.
    pub revealed: bool,
    /// The function whose popup is open (a clicked formula link).
    pub code_ref: Option<CodeRef>,
}

impl Default for LessonsPanel {
    fn default() -> Self {
        Self::new(Lang::En)
    }
}

impl LessonsPanel {
    /// The lessons in a language.
    pub fn new(lang: Lang) -> Self {
        Self::from_lessons(lang, bundled_lessons(lang))
    }

    /// A panel showing the given lessons (a test shows a damaged one this way).
    pub fn from_lessons(lang: Lang, lessons: Vec<Result<Lesson, String>>) -> Self {
        let cache = lesson_markdown_cache(lessons.iter().flatten());
        Self {
            lang,
            lessons,
            cache,
            revealed: false,
            code_ref: None,
        }
    }

    /// The language the lessons are loaded in.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Loads the lessons in `lang` if they are in another.
    pub fn ensure_lang(&mut self, lang: Lang) {
        if lang != self.lang {
            let revealed = self.revealed;
            *self = Self::new(lang);
            self.revealed = revealed;
        }
    }

    /// How many lessons there are.
    pub fn len(&self) -> usize {
        self.lessons.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lessons.is_empty()
    }

    /// "8. Sampling with DDPM": numbered as the course numbers it (the file's prefix).
    fn title(&self, i: usize) -> String {
        let number = LESSONS
            .get(i)
            .and_then(|(file, _, _)| file.split('-').next()?.parse::<usize>().ok())
            .unwrap_or(i + 1);
        match &self.lessons[i] {
            Ok(l) => format!("{number}. {}", l.header.title),
            Err(_) => format!("{number}. {}", Words::of(self.lang).damaged),
        }
    }

    /// Moves to lesson `to` (clamped), hiding the answer.
    fn go(&mut self, current: &mut usize, to: usize) {
        let to = to.min(self.lessons.len().saturating_sub(1));
        if *current != to {
            *current = to;
            self.revealed = false;
        }
    }

    fn prev_next_ui(&mut self, ui: &mut Ui, current: &mut usize) {
        let words = Words::of(self.lang);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(*current > 0, egui::Button::new(words.previous))
                .clicked()
            {
                self.go(current, current.saturating_sub(1));
            }
            if ui
                .add_enabled(
                    *current + 1 < self.lessons.len(),
                    egui::Button::new(words.next),
                )
                .clicked()
            {
                self.go(current, *current + 1);
            }
        });
    }

    /// The open lesson beside another panel (drawn by the app in a right-hand side panel).
    pub fn beside_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let words = Words::of(self.lang);
        ui.horizontal(|ui| {
            ui.label(RichText::new(words.lessons).strong());
            if ui.small_button(words.close).clicked() {
                ctx.settings.lessons.beside = false;
            }
        });
        let mut current = ctx.settings.lessons.current;
        self.prev_next_ui(ui, &mut current);
        ctx.settings.lessons.current = current;
        ui.separator();
        self.lesson_ui(ui, ctx, 16.0);
    }

    /// The current lesson: title, text, Try it; then what its links ask for.
    fn lesson_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>, title_size: f32) {
        let i = ctx
            .settings
            .lessons
            .current
            .min(self.lessons.len().saturating_sub(1));
        let words = Words::of(self.lang);
        // Borrowed, not cloned: this runs every frame.
        let Self {
            lessons,
            cache,
            revealed,
            code_ref,
            ..
        } = self;
        let lesson = match lessons.get(i) {
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                ui.label(RichText::new(format!("{} {e}", words.unreadable)).strong());
                return;
            }
            None => return,
        };
        egui::ScrollArea::vertical()
            .id_salt("lesson")
            .show(ui, |ui| {
                // A readable line length, never wider than the panel (presenter mode zooms).
                ui.set_max_width(ui.available_width().min(760.0));
                ui.heading(RichText::new(&lesson.header.title).size(title_size));
                show_lesson_markdown(ui, cache, &lesson.body);
                ui.separator();
                ui.label(RichText::new(words.try_it).strong());
                ui.label(&lesson.header.try_it.question);
                if *revealed {
                    ui.label(RichText::new(&lesson.header.try_it.answer).italics());
                    if let Some(name) = &lesson.header.try_it.show
                        && let Some(setup) = lesson.header.show.get(name)
                        && ui.button(words.show_me).clicked()
                    {
                        ctx.actions.push(AppAction::Setup(setup.clone()));
                    }
                } else if ui.button(words.reveal).clicked() {
                    *revealed = true;
                }
            });
        // A clicked link in the text flips its hook: a "Show me" sets a panel up, a function
        // link opens its popup.
        // (One pass over the hooks that were clicked; nothing is allocated on a quiet frame.)
        for (hook, _) in cache.link_hooks().iter().filter(|(_, clicked)| **clicked) {
            if let Some(name) = hook.strip_prefix("#fn:") {
                *code_ref = lookup(name);
            } else if let Some(setup) = hook
                .strip_prefix('#')
                .and_then(|name| lesson.header.show.get(name))
            {
                ctx.actions.push(AppAction::Setup(setup.clone()));
            }
        }
        code_ref_popup_ui(ui, code_ref, words);
    }
}

/// The popup of a formula's function: its name, file and line, and its doc comment.
fn code_ref_popup_ui(ui: &Ui, code_ref: &mut Option<CodeRef>, words: &Words) {
    let Some(r) = code_ref.as_ref() else { return };
    let mut open = true;
    // Next to the link that opened it (egui keeps it on screen).
    let at = ui
        .ctx()
        .input(|i| i.pointer.interact_pos())
        .unwrap_or_else(|| ui.max_rect().center());
    egui::Window::new(RichText::new(&r.name).monospace())
        .default_pos(at + egui::vec2(0.0, 16.0))
        .pivot(egui::Align2::CENTER_TOP)
        .collapsible(false)
        .resizable(false)
        .open(&mut open)
        .show(ui.ctx(), |ui| {
            ui.horizontal(|ui| {
                ui.label(words.computed_in);
                ui.label(RichText::new(r.location()).monospace());
            });
            ui.separator();
            ui.label(&r.doc);
        });
    if !open {
        *code_ref = None;
    }
}

/// The names of a body's function links, `[…](#fn:name)`.
pub fn function_links(body: &str) -> impl Iterator<Item = &str> {
    body.split("](#fn:")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
}

impl Panel for LessonsPanel {
    fn tab(&self) -> Tab {
        Tab::Lessons
    }

    fn controls_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        let words = Words::of(self.lang);
        ui.heading(words.lessons);
        let mut lang = ctx.settings.lessons.lang();
        egui::ComboBox::from_label("Language / 语言")
            .selected_text(lang.name())
            .show_ui(ui, |ui| {
                for l in Lang::ALL {
                    ui.selectable_value(&mut lang, l, l.name());
                }
            });
        if lang != ctx.settings.lessons.lang() {
            ctx.settings.lessons.language = Some(lang);
        }
        ui.separator();
        let mut current = ctx.settings.lessons.current;
        for i in 0..self.lessons.len() {
            if ui.selectable_label(current == i, self.title(i)).clicked() {
                self.go(&mut current, i);
            }
        }
        ui.separator();
        self.prev_next_ui(ui, &mut current);
        ctx.settings.lessons.current = current;
        ui.separator();
        let settings = &mut ctx.settings.lessons;
        ui.toggle_value(&mut settings.presenter, words.presenter)
            .on_hover_text(words.presenter_tip);
        ui.checkbox(&mut settings.beside, words.beside)
            .on_hover_text(words.beside_tip);
    }

    fn main_ui(&mut self, ui: &mut Ui, ctx: &mut Ctx<'_>) {
        self.lesson_ui(ui, ctx, 26.0);
    }
}
