//! Where each formula of the lessons is computed. A lesson links a formula to its function
//! (``[`q_sample`](#fn:q_sample)``); clicking it opens a popup with the function's file, line and
//! doc comment. Both are read from difflab's own sources, compiled into the binary, so the popup
//! cannot drift from the code: a renamed function fails the lessons' test.

/// The source files a lesson may point into, by their path in the repository.
const SOURCES: [(&str, &str); 14] = [
    (
        "src/diffusion/forward.rs",
        include_str!("../../diffusion/forward.rs"),
    ),
    (
        "src/diffusion/schedule.rs",
        include_str!("../../diffusion/schedule.rs"),
    ),
    (
        "src/diffusion/scheduler.rs",
        include_str!("../../diffusion/scheduler.rs"),
    ),
    (
        "src/diffusion/noise.rs",
        include_str!("../../diffusion/noise.rs"),
    ),
    (
        "src/diffusion/interpolation.rs",
        include_str!("../../diffusion/interpolation.rs"),
    ),
    (
        "src/diffusion/editing.rs",
        include_str!("../../diffusion/editing.rs"),
    ),
    (
        "src/diffusion/flow_matching.rs",
        include_str!("../../diffusion/flow_matching.rs"),
    ),
    ("src/model/mod.rs", include_str!("../../model/mod.rs")),
    ("src/model/unet.rs", include_str!("../../model/unet.rs")),
    (
        "src/model/guidance.rs",
        include_str!("../../model/guidance.rs"),
    ),
    ("src/train/unet.rs", include_str!("../../train/unet.rs")),
    ("src/train/toy.rs", include_str!("../../train/toy.rs")),
    ("src/eval.rs", include_str!("../../eval.rs")),
    (
        "src/app/jobs/toy_job.rs",
        include_str!("../jobs/toy_job.rs"),
    ),
];

/// A documented item of difflab's sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRef {
    /// The name a lesson links to: `q_sample`, or `Scheduler::step` for a method.
    pub name: String,
    /// Its file, from the repository root.
    pub file: &'static str,
    /// Its line (1-based).
    pub line: usize,
    /// Its doc comment, without the `///`.
    pub doc: String,
}

impl CodeRef {
    /// `src/diffusion/forward.rs:23`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Finds a public function, type or field by name (`Type::method` looks in `impl Type` blocks);
/// `None` when there is none or it has no doc comment.
pub fn lookup(name: &str) -> Option<CodeRef> {
    let (owner, item) = match name.split_once("::") {
        Some((owner, item)) => (Some(owner), item),
        None => (None, name),
    };
    if item.is_empty() || !item.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    for (file, text) in SOURCES {
        let lines: Vec<&str> = text.lines().collect();
        let from = match owner {
            Some(owner) => match lines.iter().position(|l| is_impl_of(l, owner)) {
                Some(i) => i,
                None => continue,
            },
            None => 0,
        };
        let Some(at) = (from..lines.len()).find(|&i| declares(lines[i], item, owner.is_some()))
        else {
            continue;
        };
        let doc = doc_above(&lines, at);
        if doc.is_empty() {
            return None;
        }
        return Some(CodeRef {
            name: name.to_string(),
            file,
            line: at + 1,
            doc,
        });
    }
    None
}

/// `impl Owner {`, `impl<B> Owner<B> {`, `impl Trait for Owner {`.
fn is_impl_of(line: &str, owner: &str) -> bool {
    line.starts_with("impl")
        && line
            .split(|c: char| c.is_whitespace() || c == '<' || c == '{')
            .any(|word| word == owner)
}

/// Whether `line` declares the public `item`: a function (a method when `method`), or at the
/// top level a struct, enum, or a struct's field.
fn declares(line: &str, item: &str, method: bool) -> bool {
    let t = line.trim_start();
    let named = |prefix: &str| {
        t.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(item))
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| matches!(c, '(' | '<' | ' ' | '{' | ':'))
    };
    if method {
        return named("pub fn ");
    }
    let top = !line.starts_with(char::is_whitespace);
    (top && (named("pub fn ") || named("pub struct ") || named("pub enum ")))
        || (!top && t.starts_with("pub ") && named("pub ") && t.contains(':'))
}

/// The `///` lines right above line `at` (attributes between are skipped), joined.
fn doc_above(lines: &[&str], at: usize) -> String {
    let mut doc = Vec::new();
    for line in lines[..at].iter().rev() {
        let t = line.trim_start();
        if t.starts_with("#[") {
            continue;
        }
        match t.strip_prefix("///") {
            Some(text) => doc.push(text.strip_prefix(' ').unwrap_or(text)),
            None => break,
        }
    }
    doc.reverse();
    doc.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_functions_methods_types_and_fields_with_their_docs() {
        let r = lookup("q_sample").expect("q_sample");
        assert_eq!(r.file, "src/diffusion/forward.rs");
        assert!(r.doc.contains("x_t = √ᾱ_t·x_0"), "{}", r.doc);
        let src = SOURCES[0].1.lines().nth(r.line - 1).unwrap_or_default();
        assert!(src.starts_with("pub fn q_sample("), "{src}");
        // A method is looked up in its type's impl block, not in another type's.
        let step = lookup("Scheduler::step").expect("Scheduler::step");
        assert_eq!(step.file, "src/diffusion/scheduler.rs");
        let src = SOURCES[2].1.lines().nth(step.line - 1).unwrap_or_default();
        assert!(src.trim_start().starts_with("pub fn step("), "{src}");
        // The public function, not the private method of the same name.
        let p = lookup("predict_x0_and_eps").expect("predict_x0_and_eps");
        let src = SOURCES[2].1.lines().nth(p.line - 1).unwrap_or_default();
        assert!(src.starts_with("pub fn predict_x0_and_eps("), "{src}");
        assert!(lookup("alphas_cumprod").is_some());
        assert!(lookup("BetaSchedule").is_some());
        assert_eq!(lookup("no_such_function"), None);
        assert_eq!(lookup("Scheduler::no_such_method"), None);
        assert_eq!(lookup("q_sample(x)"), None);
    }
}
