//! The README and the guide under docs/ (issue 38): every relative link and image they hold
//! points at a file or folder that exists, every `#anchor` at a heading of its page (GitHub's
//! slugs), and the README stays short enough to read in two minutes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 200;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every .md file under docs/, recursively, sorted.
fn doc_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// Whether a line opens or closes a fenced code block: the fence's character and length.
fn fence(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    let c = t.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = t.chars().take_while(|&x| x == c).count();
    (n >= 3).then_some((c, n))
}

/// The lines of a Markdown text outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (open, fence(line)) {
            (None, Some(f)) => open = Some(f),
            // A closing fence: the same character, at least as long, nothing after it.
            (Some((c, n)), Some((c2, n2)))
                if c == c2 && n2 >= n && line.trim().chars().all(|x| x == c) =>
            {
                open = None;
            }
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// A line with its inline code spans (`x`, ``x``) removed: a link inside one is not a link.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            let n = chars[i..].iter().take_while(|&&c| c == '`').count();
            // The span closes at the next run of exactly n backticks.
            let mut j = i + n;
            let mut close = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let m = chars[j..].iter().take_while(|&&c| c == '`').count();
                    if m == n {
                        close = Some(j + m);
                        break;
                    }
                    j += m;
                } else {
                    j += 1;
                }
            }
            if let Some(end) = close {
                out.push_str(" code ");
                i = end;
            } else {
                // An unmatched run is literal backticks.
                out.extend(&chars[i..i + n]);
                i += n;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The targets of a line's inline links and images, `[text](target)` / `![alt](target)`
/// (a title after the target is dropped, `<target>` unwrapped), and of a reference
/// definition `[id]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[')
        && let Some(close) = rest.find("]:").filter(|&k| !rest[..k].contains([']', '(']))
        && let Some(t) = rest[close + 2..].split_whitespace().next()
    {
        out.push(t.trim_matches(|c| c == '<' || c == '>').to_string());
    }
    let mut search = line.as_str();
    while let Some(at) = search.find("](") {
        let after = &search[at + 2..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = k;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let inner = after[..end].trim();
        let target = if let Some(r) = inner.strip_prefix('<') {
            r.split('>').next().unwrap_or("")
        } else {
            inner.split_whitespace().next().unwrap_or("")
        };
        out.push(target.to_string());
        search = &after[end.min(after.len())..];
    }
    out
}

/// GitHub's anchor for a heading's text: the rendered text (code ticks, emphasis and link
/// targets dropped) lower-cased, every character but letters, digits, marks, `_`, `-` and
/// spaces dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    // Keep a link's text, drop its target.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(at) = rest.find("](") {
        text.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        rest = after.find(')').map_or("", |k| &after[k + 1..]);
    }
    text.push_str(rest);
    text.trim()
        .chars()
        .filter(|&c| c != '`' && c != '*')
        .flat_map(char::to_lowercase)
        .filter(|&c| {
            c.is_alphanumeric()
                || c == '_'
                || c == '-'
                || c == ' '
                || ('\u{0300}'..='\u{036f}').contains(&c)
        })
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's ATX headings, with GitHub's `-1`, `-2` for repeats.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (_, line) in prose_lines(text) {
        let t = line.trim_start();
        let hashes = t.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let rest = &t[hashes..];
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let base = slug(rest.trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every broken link of one Markdown text that lives at `file` (a path under `root`), as
/// `file:line: target`.
fn broken_links(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let name = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let folder = file.parent().unwrap_or(root);
    let mut out = Vec::new();
    for (line_no, line) in prose_lines(text) {
        for target in link_targets(line) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (path_part, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(percent_decode(a))),
                None => (target.as_str(), None),
            };
            let ok = if target.is_empty() {
                false
            } else if path_part.is_empty() {
                anchor.is_some_and(|a| anchors(text).contains(&a))
            } else {
                let decoded = percent_decode(path_part);
                let resolved = match decoded.strip_prefix('/') {
                    Some(from_root) => root.join(from_root),
                    None => folder.join(&decoded),
                };
                resolved.exists()
                    && match anchor {
                        Some(a) if resolved.extension().is_some_and(|e| e == "md") => {
                            let linked = std::fs::read_to_string(&resolved).unwrap_or_default();
                            anchors(&linked).contains(&a)
                        }
                        _ => true,
                    }
            };
            if !ok {
                out.push(format!("{name}:{line_no}: {target}"));
            }
        }
    }
    out
}

#[test]
fn every_link_of_the_readme_and_the_guide_resolves() {
    let files = doc_files();
    assert!(
        files.len() > 10,
        "the README and the guide were found: {files:?}"
    );
    let mut broken = Vec::new();
    let mut links = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        links += prose_lines(&text)
            .iter()
            .map(|(_, l)| link_targets(l).len())
            .sum::<usize>();
        broken.extend(broken_links(root(), file, &text));
    }
    assert!(links > 50, "the links were found ({links})");
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_readme_is_at_most_200_lines() {
    let n = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        n <= README_MAX_LINES,
        "README.md has {n} lines (at most {README_MAX_LINES}): move the detail into docs/guide/"
    );
}

/// The checker itself: a text with planted breaks of every kind, as if it were the README.
#[test]
fn the_link_checker_catches_planted_breaks() {
    let text = "# Top heading\n\
        ## `difflab sample`: DDPM and DDIM\n\
        [fine](docs/guide/README.md) ![fine](docs/forward-panel.png) [folder](docs/guide)\n\
        [gone](docs/no-such-page.md) and ![gone](docs/img/no-such.png)\n\
        [web](https://example.com/x) [mail](mailto:a@b.c)\n\
        [here](#top-heading) [here too](#difflab-sample-ddpm-and-ddim) [not here](#nowhere)\n\
        [into a page](docs/guide/README.md#no-such-heading)\n\
        `[in code](nope.md)` and ``[`in code`](#nope)``\n\
        ```text\n\
        [in a fence](nope.md)\n\
        ```\n\
        [after the fence](still-nope.md \"a title\")\n";
    let file = root().join("README.md");
    let found = broken_links(root(), &file, text);
    assert_eq!(
        found,
        [
            "README.md:4: docs/no-such-page.md",
            "README.md:4: docs/img/no-such.png",
            "README.md:6: #nowhere",
            "README.md:7: docs/guide/README.md#no-such-heading",
            "README.md:12: still-nope.md",
        ],
    );
    assert_eq!(slug("Data and licences"), "data-and-licences");
    assert_eq!(
        slug("`difflab bench`: throughput, against eager PyTorch"),
        "difflab-bench-throughput-against-eager-pytorch"
    );
    assert_eq!(
        slug("Today (2026-12-05, 2-core AVX-512 EPYC VM)"),
        "today-2026-12-05-2-core-avx-512-epyc-vm"
    );
    assert_eq!(anchors("# A\n## A\n```\n# B\n```\n"), ["a", "a-1"]);
}
