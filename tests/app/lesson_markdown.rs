//! Every lesson's text as the app draws it, in both languages: rendered through egui_commonmark
//! as the Lessons panel renders it, read back from the labels it drew, and checked for markdown
//! syntax that did not render (`**`, `__`, an emphasis pair of `*` or `_`, backticks, `](#`, a
//! `#` heading mark). CommonMark lets `**` close only when it is not preceded by punctuation or
//! is followed by a space or punctuation, so `**线性插值（lerp）**走直线` shows its asterisks:
//! fullwidth brackets and stops are punctuation.

use difflab::app::{
    LESSONS, Lang, Lesson, bundled_lessons, install_fonts, lesson_markdown_cache,
    show_lesson_markdown,
};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

/// What markdown syntax is left in a piece of drawn text, if any.
fn markdown_left(text: &str) -> Option<&'static str> {
    if text.contains("**") {
        return Some("`**`");
    }
    if text.contains("__") {
        return Some("`__`");
    }
    if text.contains('`') {
        return Some("a backtick");
    }
    if text.contains("](") {
        return Some("a link's `](`");
    }
    if text.lines().any(|l| l.trim_start().starts_with('#')) {
        return Some("a `#` heading mark");
    }
    // A `*` or `_` run that CommonMark would open emphasis with, and a later one it would close
    // it with: an emphasis pair that stayed text. (Between letters, as in x_t or β̃_t, `_` can
    // do neither.)
    let chars: Vec<char> = text.chars().collect();
    for mark in ['*', '_'] {
        let mut opened = false;
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != mark {
                i += 1;
                continue;
            }
            let end = (i..chars.len())
                .find(|&j| chars[j] != mark)
                .unwrap_or(chars.len());
            let prev = i.checked_sub(1).map(|k| chars[k]);
            let next = chars.get(end).copied();
            let (open, close) = flanking(mark, prev, next);
            if opened && close {
                return Some(if mark == '*' {
                    "a `*` emphasis pair"
                } else {
                    "a `_` emphasis pair"
                });
            }
            opened |= open;
            i = end;
        }
    }
    None
}

/// Whether a delimiter run of `mark` between `prev` and `next` can open and can close
/// emphasis (CommonMark's flanking rules; the start and end of the text count as whitespace).
fn flanking(mark: char, prev: Option<char>, next: Option<char>) -> (bool, bool) {
    let space = |c: Option<char>| c.is_none_or(char::is_whitespace);
    // Unicode punctuation and symbols: neither a letter, a digit, a space nor a combining mark.
    let punct = |c: Option<char>| {
        c.is_some_and(|c| {
            !c.is_alphanumeric()
                && !c.is_whitespace()
                && !matches!(c, '\u{300}'..='\u{36f}' | '\u{1dc0}'..='\u{1dff}' | '\u{20d0}'..='\u{20ff}')
        })
    };
    let left = !space(next) && (!punct(next) || space(prev) || punct(prev));
    let right = !space(prev) && (!punct(prev) || space(next) || punct(next));
    if mark == '_' {
        (
            left && (!right || punct(prev)),
            right && (!left || punct(next)),
        )
    } else {
        (left, right)
    }
}

/// The texts a piece of markdown draws as the Lessons panel draws it, in order: the labels'
/// text, and links' and buttons' labels.
fn drawn_texts(lesson: &Lesson, markdown: &str) -> Vec<String> {
    let mut cache = lesson_markdown_cache([lesson]);
    let markdown = markdown.to_string();
    // The app's fonts (Chinese too) first: they take effect from the next frame.
    let mut fonts_installed = false;
    let mut h = Harness::builder()
        .with_size([760.0, 4000.0])
        .build_ui(move |ui| {
            if fonts_installed {
                show_lesson_markdown(ui, &mut cache, &markdown);
            } else {
                install_fonts(ui.ctx());
                fonts_installed = true;
                ui.ctx().request_repaint();
            }
        });
    h.run();
    h.query_all_by(|_| true)
        .filter_map(|n| {
            let n = n.accesskit_node();
            match n.role() {
                egui::accesskit::Role::Label => n.value(),
                egui::accesskit::Role::Link | egui::accesskit::Role::Button => n.label(),
                _ => None,
            }
        })
        .collect()
}

/// A lesson's markdown blocks (split at blank lines) with the 1-based line of the file each
/// starts on; `None` for a block that is not in the file (the generated layer table).
fn blocks<'a>(raw: &str, body: &'a str) -> Vec<(Option<usize>, &'a str)> {
    let raw_lines: Vec<&str> = raw.lines().collect();
    let body_start = raw
        .find("\n---\n")
        .map_or(0, |at| raw[..at + 5].lines().count());
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let end = rest.find("\n\n").map_or(rest.len(), |i| i + 1);
        let block = &rest[..end];
        rest = rest[end..].trim_start_matches('\n');
        if block.trim().is_empty() {
            continue;
        }
        let first = block.lines().next().unwrap_or_default();
        let line = raw_lines
            .iter()
            .skip(body_start)
            .position(|l| *l == first)
            .map(|i| body_start + i + 1);
        out.push((line, block));
    }
    out
}

/// Every place in a lesson where drawn text still holds markdown: `file:line: what in “text”`.
/// egui_commonmark draws a paragraph as one label per piece of text, and markdown that did not
/// render comes out in pieces of its own (`**` as two labels `*`), so a block's labels are
/// checked joined, as they read on screen.
fn unrendered(lesson: &Lesson, raw: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (line, block) in blocks(raw, &lesson.body) {
        let labels = drawn_texts(lesson, block);
        // The first label at which the text read so far holds markdown.
        let Some((k, what)) = (1..=labels.len())
            .find_map(|n| markdown_left(&labels[..n].concat()).map(|what| (n - 1, what)))
        else {
            continue;
        };
        // The source line: the one holding the nearest piece of words after it (or before).
        let words = |l: &&String| l.chars().any(char::is_alphanumeric);
        let key = labels[k..]
            .iter()
            .find(words)
            .or_else(|| labels[..k].iter().rev().find(words))
            .map_or("", |l| l.trim());
        let at = block.lines().position(|l| l.contains(key)).unwrap_or(0);
        let place = line.map_or("(generated table)".to_string(), |l| (l + at).to_string());
        let text = labels[k.saturating_sub(2)..(k + 3).min(labels.len())].concat();
        found.push(format!("{}:{place}: {what} in “{text}”", lesson.file));
    }
    // The title and the Try it are plain labels: markdown there would show as typed.
    let header = &lesson.header;
    for text in [
        &header.title,
        &header.try_it.question,
        &header.try_it.answer,
    ] {
        if let Some(what) = markdown_left(text) {
            found.push(format!("{}: header: {what} in “{text}”", lesson.file));
        }
    }
    found
}

fn lesson_problems(lang: Lang) -> Vec<String> {
    let mut found = Vec::new();
    for (lesson, (_, en, zh)) in bundled_lessons(lang).into_iter().zip(LESSONS) {
        let lesson = lesson.unwrap();
        let raw = match lang {
            Lang::En => en,
            Lang::Zh => zh,
        };
        found.extend(unrendered(&lesson, raw));
    }
    found
}

#[test]
fn every_english_lesson_renders_without_markdown_left_in_its_text() {
    let found = lesson_problems(Lang::En);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_chinese_lesson_renders_without_markdown_left_in_its_text() {
    let found = lesson_problems(Lang::Zh);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The check finds planted cases, English and Chinese, with the file and the line; rendered
/// emphasis, code and links pass.
#[test]
fn the_check_catches_markdown_that_did_not_render() {
    let raw = "---ron\n(title: \"t\", show: {\"a\": (tab: Some(Forward))}, try_it: (question: \
               \"q\", answer: \"a\", show: Some(\"a\")))\n---\n\
               Fine **bold**, *emphasis*, `code`, [a link](#a), x_t and β_t.\n\n\
               The **noise (β)**grows.\n\n\
               一个分布的**得分（score）**是梯度。\n\n\
               A `tick.\n";
    let lesson = difflab::app::parse_lesson("planted.md", raw).unwrap();
    let found = unrendered(&lesson, raw);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("planted.md:6: `**`"), "{}", found[0]);
    assert!(found[1].starts_with("planted.md:8: `**`"), "{}", found[1]);
    assert!(
        found[2].starts_with("planted.md:10: a backtick"),
        "{}",
        found[2]
    );

    // The pieces the checker knows, one by one.
    assert_eq!(markdown_left("x_t and ε_θ, 3*4"), None);
    assert_eq!(
        markdown_left("the *word* here"),
        Some("a `*` emphasis pair")
    );
    assert_eq!(
        markdown_left("the _word_ here"),
        Some("a `_` emphasis pair")
    );
    assert_eq!(markdown_left("__init__"), Some("`__`"));
    assert_eq!(markdown_left("see [this](#a)"), Some("a link's `](`"));
    assert_eq!(markdown_left("# Heading"), Some("a `#` heading mark"));
}
