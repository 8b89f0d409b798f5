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

/// Every `crate::…`, `super::…` and `self::…` path in `code`, brace groups expanded one level
/// (`use super::{a::X, b}` gives `super::a::X` and `super::b`), as segments.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"]
        .iter()
        .flat_map(|p| code.match_indices(p).map(|(i, _)| i))
    {
        if start > 0 && (is_ident(bytes[start - 1] as char) || bytes[start - 1] == b':') {
            continue; // `foo::self::`, `xcrate::`: not a path's start
        }
        // The chain of segments: ident(::ident)*, stopping at anything else.
        let rest = &code[start..];
        let mut segs = Vec::new();
        let mut i = 0;
        loop {
            let len = rest[i..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(rest.len() - i);
            if len == 0 {
                break;
            }
            segs.push(rest[i..i + len].to_string());
            i += len;
            if !rest[i..].starts_with("::") {
                break;
            }
            i += 2;
        }
        if rest[i..].starts_with('{') {
            let inner = &rest[i + 1..rest[i..].find('}').map_or(rest.len(), |e| i + e)];
            for item in inner.split([',', '{']) {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident(c) || c == ':')
                    .collect();
                let mut full = segs.clone();
                full.extend(item.split("::").filter(|s| !s.is_empty()).map(String::from));
                out.push(full);
            }
        } else {
            out.push(segs);
        }
    }
    out
}

/// The module a path in `from` points into: the longest prefix of it that is a module.
fn resolve(from: &[String], path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
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
    while !modules.contains(&base) {
        base.pop();
    }
    base
}

/// Who imports whom among sibling modules: an import from `a::b::c` into `a::d` is an edge
/// `a::b` → `a::d`. Imports between a module and its own descendants are Rust's usual
/// parent–child pattern and are left out. Test modules (after a file's `#[cfg(test)]`) are left
/// out too: their `super` is the file itself.
fn sibling_imports() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files: Vec<PathBuf> = rust_files(&src(""))
        .into_iter()
        .filter(|p| !p.ends_with("main.rs"))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|p| module_of(p)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        for path in paths_in(&code) {
            let to = resolve(&from, &path, &modules);
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
    assert!(edge("app", "diffusion") && edge("cli", "model") && edge("app::lessons", "app::panel"));
    assert!(!edge("diffusion", "app"), "the core imports the app");
    assert_eq!(
        find_circle(&graph),
        None,
        "modules that import each other in a circle"
    );
    // And it would see one: settings importing the lessons panel (as it did) closes a circle.
    let mut with_circle = graph.clone();
    with_circle
        .entry(vec!["app".into(), "settings".into()])
        .or_default()
        .insert(vec!["app".into(), "lessons".into()]);
    assert!(find_circle(&with_circle).is_some());
}
