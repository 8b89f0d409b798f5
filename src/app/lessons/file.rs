//! Lessons as data: one file per lesson and language under assets/lessons/<lang>/, a RON
//! header (its "Show me" set-ups and its "Try it" question) then markdown. Parsing and checking
//! live here; the panel that draws them is lessons.rs.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::code_refs::lookup;
use crate::app::jobs::compare_kind::CompareKind;
use crate::app::jobs::sampler::{LabelPick, SamplerChoice};
use crate::app::settings::{EditMode, FieldKind, ImageSource, Lang, Settings, Tab, ToyView};
use crate::data::toy2d::Toy2d;
use crate::diffusion::{BetaSchedule, ScheduleConfig};
use crate::model::unet::LayerRow;

/// The bundled lessons, in course order: (file name, English text, Simplified Chinese text).
pub const LESSONS: [(&str, &str, &str); 16] = [
    (
        "01-what.md",
        include_str!("../../../assets/lessons/en/01-what.md"),
        include_str!("../../../assets/lessons/zh/01-what.md"),
    ),
    (
        "02-forward-step.md",
        include_str!("../../../assets/lessons/en/02-forward-step.md"),
        include_str!("../../../assets/lessons/zh/02-forward-step.md"),
    ),
    (
        "03-jump-to-t.md",
        include_str!("../../../assets/lessons/en/03-jump-to-t.md"),
        include_str!("../../../assets/lessons/zh/03-jump-to-t.md"),
    ),
    (
        "04-schedules.md",
        include_str!("../../../assets/lessons/en/04-schedules.md"),
        include_str!("../../../assets/lessons/zh/04-schedules.md"),
    ),
    (
        "05-posterior.md",
        include_str!("../../../assets/lessons/en/05-posterior.md"),
        include_str!("../../../assets/lessons/zh/05-posterior.md"),
    ),
    (
        "06-training.md",
        include_str!("../../../assets/lessons/en/06-training.md"),
        include_str!("../../../assets/lessons/zh/06-training.md"),
    ),
    (
        "07-network.md",
        include_str!("../../../assets/lessons/en/07-network.md"),
        include_str!("../../../assets/lessons/zh/07-network.md"),
    ),
    (
        "08-ddpm.md",
        include_str!("../../../assets/lessons/en/08-ddpm.md"),
        include_str!("../../../assets/lessons/zh/08-ddpm.md"),
    ),
    (
        "09-ddim.md",
        include_str!("../../../assets/lessons/en/09-ddim.md"),
        include_str!("../../../assets/lessons/zh/09-ddim.md"),
    ),
    (
        "10-interpolation.md",
        include_str!("../../../assets/lessons/en/10-interpolation.md"),
        include_str!("../../../assets/lessons/zh/10-interpolation.md"),
    ),
    (
        "11-score.md",
        include_str!("../../../assets/lessons/en/11-score.md"),
        include_str!("../../../assets/lessons/zh/11-score.md"),
    ),
    (
        "12-judging.md",
        include_str!("../../../assets/lessons/en/12-judging.md"),
        include_str!("../../../assets/lessons/zh/12-judging.md"),
    ),
    (
        "13-guidance.md",
        include_str!("../../../assets/lessons/en/13-guidance.md"),
        include_str!("../../../assets/lessons/zh/13-guidance.md"),
    ),
    (
        "14-editing.md",
        include_str!("../../../assets/lessons/en/14-editing.md"),
        include_str!("../../../assets/lessons/zh/14-editing.md"),
    ),
    (
        "15-solvers.md",
        include_str!("../../../assets/lessons/en/15-solvers.md"),
        include_str!("../../../assets/lessons/zh/15-solvers.md"),
    ),
    (
        "16-flow-matching.md",
        include_str!("../../../assets/lessons/en/16-flow-matching.md"),
        include_str!("../../../assets/lessons/zh/16-flow-matching.md"),
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
    /// The noise schedule, at T = 1000. Every set-up that samples the U-Net (sampling, compare,
    /// interpolation) names it, or an earlier lesson's cosine or sigmoid would carry over into
    /// the model's samples (a test checks each lesson).
    pub schedule: Option<BetaSchedule>,
    /// The forward panel's image.
    pub source: Option<ImageSource>,
    /// The forward panel's noise seed.
    pub seed: Option<u64>,
    /// Overlay a second schedule on the schedule panel's curves.
    pub overlay: Option<BetaSchedule>,
    /// The sampling panel's sampler.
    pub sampler: Option<SamplerChoice>,
    /// A multistep solver's order (the sampling panel's).
    pub order: Option<usize>,
    /// Karras σ for the sampling panel's solver.
    pub karras: Option<bool>,
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
    /// The edit panel's mode.
    pub edit: Option<EditMode>,
    /// Put the first MNIST digit of this class on the sketch pad.
    pub pad_digit: Option<u8>,
    /// SDEdit's t₀.
    pub t0: Option<usize>,
    /// The digit the edits guide towards, and w (the edit panel's).
    pub edit_guidance: Option<(LabelPick, f32)>,
    /// Start the panel's computation as well, so that "Show me" shows what the set-up makes
    /// (and not the pictures of an earlier run, made with other settings).
    pub run: Option<ShowRun>,
}

/// What a "Show me" starts once its panel is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShowRun {
    /// A sampling run (the sampling panel's Run).
    Sampling,
    /// A comparison of this kind (the compare panel's buttons).
    Compare(CompareKind),
    /// The interpolation (the interpolate panel's Decode).
    Interpolation,
    /// An edit of the pad's drawing (the edit panel's Run SDEdit, Inpaint or Invert).
    Edit(EditMode),
    /// The compare panel's quality against NFE.
    Quality,
    /// The playground's flow-matching comparison.
    Flow,
}

impl Setup {
    /// Applies the set-up to the settings (then clamped as any loaded settings are).
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(tab) = self.tab {
            settings.tab = tab;
        }
        if let Some(kind) = self.schedule {
            // The kind at the lessons' T = 1000 and β range (a T the student changed would
            // move every t the lessons name, and the shipped U-Net was trained on T = 1000).
            settings.schedule =
                ScheduleConfig::new(kind, ScheduleConfig::default().num_train_timesteps);
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
        if let Some(order) = self.order {
            settings.sampling.sampler.order = order;
        }
        if let Some(karras) = self.karras {
            settings.sampling.sampler.karras = karras;
        }
        if let Some(eta) = self.eta {
            settings.sampling.sampler.eta = eta;
        }
        if let Some(view) = self.toy_view {
            settings.toy.view = view;
        }
        if self.run == Some(ShowRun::Flow) {
            settings.toy.view = ToyView::Flow;
        }
        if let Some(data) = self.toy_data {
            settings.toy.dataset = Some(data);
        }
        if let Some(kind) = self.field_kind {
            settings.toy.field_kind = kind;
        }
        if let Some(digit) = self.digit {
            settings.sampling.guidance.label = digit;
            // Digits come from the shipped U-Net (the one the lessons describe).
            settings.sampling.model.unet = true;
            settings.sampling.model.weights = crate::app::unet_file::SHIPPED;
        }
        if let Some(w) = self.guidance {
            settings.sampling.guidance.scale = w;
        }
        if self.run.is_some() {
            // What a lesson runs is what it describes: the shipped U-Net, not a file opened.
            settings.sampling.model.weights = crate::app::unet_file::SHIPPED;
        }
        if let Some(mode) = self.edit {
            settings.edit.mode = mode;
        }
        if let Some(k) = self.pad_digit
            && let Ok(m) = crate::data::mnist::Mnist::embedded()
        {
            settings.edit.digit = k;
            settings.edit.start_from_digit(&m);
        }
        if let Some(t0) = self.t0 {
            settings.edit.t0 = t0;
        }
        if let Some((label, w)) = self.edit_guidance {
            settings.edit.guidance.label = label;
            settings.edit.guidance.scale = w;
            settings.sampling.model.unet = true;
            settings.sampling.model.weights = crate::app::unet_file::SHIPPED;
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
/// `(#name)` link in the text must name a "Show me" of the header (the "Try it" one too), and
/// every `(#fn:name)` link a documented function or type of difflab (its popup).
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
            if let Some(item) = name.strip_prefix("fn:") {
                if lookup(item).is_none() {
                    return Err(format!(
                        "{file}:{}: the link `#{name}` names no documented item of difflab's \
                         sources (see src/app/lessons/code_refs.rs)",
                        body_line + i + 1
                    ));
                }
            } else if !header.show.contains_key(name) {
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

/// The bundled lessons in a language, parsed; a bad one becomes a lesson that says what is
/// wrong. `{{unet_table}}` in a lesson becomes the shipped U-Net's layer table.
pub fn bundled_lessons(lang: Lang) -> Vec<Result<Lesson, String>> {
    LESSONS
        .iter()
        .map(|(file, en, zh)| {
            let (text, path) = match lang {
                Lang::En => (en, format!("en/{file}")),
                Lang::Zh => (zh, format!("zh/{file}")),
            };
            let mut lesson = parse_lesson(&path, text)?;
            if lesson.body.contains("{{unet_table}}") {
                lesson.body = lesson
                    .body
                    .replace("{{unet_table}}", &unet_table_markdown(lang));
            }
            Ok(lesson)
        })
        .collect()
}

/// The shipped U-Net's layer table and parameter count, read from its weights once per run
/// (the app reloads the lessons when the language changes; the weights stay the same).
fn shipped_layer_table() -> &'static Result<(Vec<LayerRow>, usize), String> {
    static TABLE: OnceLock<Result<(Vec<LayerRow>, usize), String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        use burn::module::Module;
        crate::model::unet::shipped(&burn::tensor::Device::flex())
            .map(|(model, config)| (model.layer_table(config.image_size), model.num_params()))
            .map_err(|e| e.to_string())
    })
}

/// The shipped U-Net's layer table as markdown, with the total.
pub fn unet_table_markdown(lang: Lang) -> String {
    let (head, total, failed) = match lang {
        Lang::En => (
            "| part | channels | at | parameters |",
            "total",
            "the table could not be made",
        ),
        Lang::Zh => (
            "| 部分 | 通道 | 分辨率 | 参数量 |",
            "合计",
            "无法生成这张表",
        ),
    };
    match shipped_layer_table() {
        Ok((rows, num_params)) => {
            let mut s = format!("{head}\n| --- | --- | --- | --- |\n");
            for r in rows {
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
            s.push_str(&format!("| **{total}** | | | **{num_params}** |\n"));
            s
        }
        Err(e) => format!("({failed}: {e})"),
    }
}
