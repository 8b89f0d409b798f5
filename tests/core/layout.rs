//! The shape issue 14 asked for, kept: no file of the app over 500 lines, a core (diffusion,
//! model, data, train) that names neither egui nor clap, a CLI that does not import the app, and
//! module imports that form no circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn src(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir)
}

#[test]
fn no_file_of_the_app_is_over_500_lines() {
    let files = rust_files(&src("app"));
    assert!(files.len() > 20, "the app's files were found");
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 500).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// Issue 37: src/app grouped by role. The panels, the jobs (what runs off the UI thread, or
/// on the page's frame loop), the settings and the lessons each have a folder; the files left at
/// the top are the shell (the window, the page's entry, files, fonts, the menus and the events
/// that tie the groups together).
#[test]
fn the_app_is_grouped_by_role() {
    let app = src("app");
    for group in ["panels", "jobs", "settings", "lessons"] {
        assert!(
            app.join(group).join("mod.rs").is_file(),
            "src/app/{group}/mod.rs"
        );
    }
    let mut top: Vec<String> = std::fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert!(top.len() <= 15, "the shell grew: group these {top:?}");
    for panel in [
        "forward",
        "schedule",
        "sampling",
        "compare",
        "interpolate",
        "playground",
        "edit",
        "lessons",
    ] {
        assert!(
            app.join("panels").join(format!("{panel}.rs")).is_file(),
            "panels/{panel}.rs"
        );
    }
    for job in ["sampler_job", "toy_job", "worker", "thread", "stepped"] {
        assert!(
            app.join("jobs").join(format!("{job}.rs")).is_file(),
            "jobs/{job}.rs"
        );
    }
}

#[test]
fn the_core_names_neither_egui_nor_clap_and_the_cli_not_the_app() {
    let mut offenders = Vec::new();
    for dir in ["diffusion", "model", "data", "train"] {
        for p in rust_files(&src(dir)) {
            let text = std::fs::read_to_string(&p).unwrap();
            for word in ["egui", "clap", "crate::app", "crate::cli"] {
                if text.contains(word) {
                    offenders.push(format!("{} names {word}", p.display()));
                }
            }
        }
    }
    for p in rust_files(&src("cli")) {
        if std::fs::read_to_string(&p).unwrap().contains("crate::app") {
            offenders.push(format!("{} imports the app", p.display()));
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// The library's module path of a source file: src/a/b.rs and src/a/b/mod.rs are `a::b`,
/// src/lib.rs the root.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src("")).unwrap().with_extension("");
    let mut path: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if path.last().is_some_and(|l| l == "mod" || l == "lib") {
        path.pop();
    }
    path
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A source file without its `//` comments and without its `#[cfg(test)] mod …` blocks (their
/// `super` is the file itself). String literals are kept: none holds a `crate::` path today, and
/// one would only add an edge.
fn code_of(text: &str) -> String {
    let mut code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    while let Some(at) = code.find("#[cfg(test)]") {
        let after = &code[at + "#[cfg(test)]".len()..];
        let end = if after.trim_start().starts_with("mod ") {
            // To the module's closing brace.
            let open = at + "#[cfg(test)]".len() + after.find('{').unwrap_or(after.len());
            (open + group(&code[open..]).len() + 2).min(code.len())
        } else {
            at + "#[cfg(test)]".len() // a test-only item: keep it, drop the attribute
        };
        code.replace_range(at..end, "");
    }
    code
}

/// The segments of the path at the start of `s` (ident(::ident)*), the rest of `s` after them
/// and after a trailing `::`.
fn segments(s: &str) -> (Vec<String>, &str) {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        segs.push(rest[..len].to_string());
        rest = &rest[len..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    (segs, rest)
}

/// The text of the brace group that `s` opens (without the braces), matched by depth.
fn group(s: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[1..i];
                }
            }
            _ => {}
        }
    }
    &s[1.min(s.len())..]
}

/// The items of a brace group, split at its top-level commas.
fn items(group: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&group[start..]);
    out
}

/// The paths a `use` tree starting at `s` names, with the name each is known by (`as` honoured),
/// brace groups expanded at every depth: `a::{b::X, c::{Y, Z as W}}` gives a::b::X (X),
/// a::c::Y (Y) and a::c::Z (W).
fn use_tree(prefix: &[String], s: &str, out: &mut Vec<(Vec<String>, String)>) {
    let (segs, rest) = segments(s.trim_start());
    let mut full = prefix.to_vec();
    full.extend(segs);
    // A group follows `::` directly (`a::{`); `Foo {` is a struct literal, not a group.
    if rest.starts_with('{') {
        for item in items(group(rest)) {
            use_tree(&full, item, out);
        }
    } else if let Some(last) = full.last().cloned() {
        let name = rest
            .trim_start()
            .strip_prefix("as ")
            .map_or(last, |r| segments(r.trim_start()).0.concat());
        out.push((full, name));
    }
}

/// Every `crate::…`, `super::…` and `self::…` path in `code`, as segments.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"]
        .iter()
        .flat_map(|p| code.match_indices(p).map(|(i, _)| i))
    {
        if start > 0 && (is_ident(bytes[start - 1] as char) || bytes[start - 1] == b':') {
            continue; // `foo::self::`, `xcrate::`: not a path's start
        }
        let mut tree = Vec::new();
        use_tree(&[], &code[start..], &mut tree);
        out.extend(tree.into_iter().map(|(p, _)| p));
    }
    out
}

/// `path`, written in module `from`, from the crate's root.
fn absolute(from: &[String], path: &[String]) -> Vec<String> {
    let (mut base, mut segs) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (from.to_vec(), &path[1..]),
        _ => (from.to_vec(), path),
    };
    while segs.first().is_some_and(|s| s == "super") {
        base.pop();
        segs = &segs[1..];
    }
    base.extend(segs.iter().cloned());
    base
}

type Reexports = BTreeMap<(Vec<String>, String), Vec<String>>;

/// The module an absolute path points into: its longest prefix that is a module, followed
/// through that module's `pub use` re-exports (`crate::app::LessonsPanel` is in app::lessons).
fn target(path: &[String], modules: &BTreeSet<Vec<String>>, reexports: &Reexports) -> Vec<String> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        let mut m = path.clone();
        while !modules.contains(&m) {
            m.pop();
        }
        match path
            .get(m.len())
            .and_then(|name| reexports.get(&(m.clone(), name.clone())))
        {
            Some(source) => {
                let mut next = source.clone();
                next.extend(path[m.len() + 1..].iter().cloned());
                path = next;
            }
            None => return m,
        }
    }
    path
}

/// Who imports whom among sibling modules: an import from `a::b::c` into `a::d` is an edge
/// `a::b` → `a::d`, also when it goes through `a`'s re-exports (`use super::X` where a.rs has
/// `pub use d::X`). Imports between a module and its own descendants are Rust's usual
/// parent–child pattern and are left out.
fn sibling_imports() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files: Vec<PathBuf> = rust_files(&src(""))
        .into_iter()
        .filter(|p| !p.ends_with("main.rs"))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|p| module_of(p)).collect();
    let code: Vec<(Vec<String>, String)> = files
        .iter()
        .map(|f| (module_of(f), code_of(&std::fs::read_to_string(f).unwrap())))
        .collect();
    let mut reexports = Reexports::new();
    for (from, code) in &code {
        for (at, _) in code
            .match_indices("pub use ")
            .chain(code.match_indices("pub(crate) use "))
        {
            let tree_start = at + code[at..].find("use ").unwrap() + 4;
            let mut tree = Vec::new();
            use_tree(&[], &code[tree_start..], &mut tree);
            for (path, name) in tree {
                reexports.insert((from.clone(), name), absolute(from, &path));
            }
        }
    }
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (from, code) in &code {
        for path in paths_in(code) {
            let to = target(&absolute(from, &path), &modules, &reexports);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                graph
                    .entry(from[..=common].to_vec())
                    .or_default()
                    .insert(to[..=common].to_vec());
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one, as the modules along it.
fn find_circle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        done: &mut BTreeSet<Vec<String>>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
            circle.push(node.join("::"));
            return Some(circle);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_module_imports_form_no_circles() {
    let graph = sibling_imports();
    let edge = |a: &str, b: &str| {
        let key = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
        graph.get(&key(a)).is_some_and(|to| to.contains(&key(b)))
    };
    // The reader sees what is there: these imports exist today.
    assert!(
        edge("app", "diffusion") && edge("cli", "model") && edge("app::panels", "app::lessons")
    );
    // Seen through the parent's re-exports too: events.rs names `super::Interpolation`, which
    // app/mod.rs re-exports from panels/interpolate.rs.
    assert!(edge("app::events", "app::panels"));
    // The app's groups (issue 37): panels ask jobs for work and read settings and lessons; jobs,
    // settings and lessons never reach back into a panel.
    assert!(edge("app::panels", "app::jobs") && edge("app::panels", "app::settings"));
    for group in ["app::jobs", "app::settings", "app::lessons"] {
        assert!(!edge(group, "app::panels"), "{group} imports a panel");
    }
    assert!(!edge("diffusion", "app"), "the core imports the app");
    assert_eq!(
        find_circle(&graph),
        None,
        "modules that import each other in a circle"
    );
    // And it would see one: settings importing the lessons (as they once imported the lessons
    // panel) closes a circle, lessons being made of settings.
    let mut with_circle = graph.clone();
    with_circle
        .entry(vec!["app".into(), "settings".into()])
        .or_default()
        .insert(vec!["app".into(), "lessons".into()]);
    assert!(find_circle(&with_circle).is_some());
}
