//! The layers hold: every `crate::` path in `src/` points to the same
//! layer or one below it, and the modules of the tree form no cycle.
//! (As rust-analyzer's tidy tests do for its conventions: a rule the
//! build checks is a rule that stays true.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom; `rules` and `platforms` share a rank and
/// must not use each other.
const LAYERS: &[(&str, u8)] = &[
    ("commands", 5),
    ("runtime", 4),
    ("application", 3),
    ("storage", 2),
    ("rules", 1),
    ("platforms", 1),
    ("domain", 0),
];

fn rank(top: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == top).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b/mod.rs` → `["a", "b"]`; `src/a/c.rs` → `["a", "c"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments (doc links name other modules
/// without depending on them).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module (two levels deep) each module refers to through `crate::`.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let me = module_of(&src, &file);
        if me.len() == 1 && (me[0] == "lib" || me[0] == "main") {
            continue;
        }
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for (i, _) in text.match_indices("crate::") {
            let path: Vec<&str> = text[i + 7..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .take(2)
                .collect();
            // A path into a module's items (`crate::domain::Platform`)
            // depends on the module itself.
            let target: Vec<&str> = path
                .iter()
                .take_while(|s| s.chars().next().is_some_and(|c| c.is_lowercase()))
                .copied()
                .collect();
            if target.is_empty() {
                continue;
            }
            let from = me.iter().take(2).cloned().collect::<Vec<_>>().join("::");
            let to = target.join("::");
            if from != to
                && !from.starts_with(&format!("{to}::"))
                && !to.starts_with(&format!("{from}::"))
            {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    edges
}

#[test]
fn no_module_reaches_up_a_layer() {
    let mut wrong = Vec::new();
    for (from, tos) in edges() {
        let top = from.split("::").next().unwrap();
        let Some(mine) = rank(top) else {
            wrong.push(format!("{from} is in no layer: add its folder to LAYERS"));
            continue;
        };
        for to in tos {
            let theirs = to.split("::").next().unwrap();
            match rank(theirs) {
                Some(r) if r < mine || theirs == top => {}
                _ => wrong.push(format!("{from} uses {to}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows must point down:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn modules_form_no_cycle() {
    let edges = edges();
    let reaches = |from: &str, goal: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                // Depending on `a` includes its submodules `a::b`.
                let hit = next == goal || goal.starts_with(&format!("{next}::"));
                if hit {
                    return true;
                }
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                    for sub in edges.keys().filter(|k| k.starts_with(&format!("{next}::"))) {
                        if seen.insert(sub.clone()) {
                            stack.push(sub.clone());
                        }
                    }
                }
            }
        }
        false
    };
    let mut cycles = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if reaches(to, from) {
                cycles.push(format!("{from} -> {to} -> … -> {from}"));
            }
        }
    }
    assert!(cycles.is_empty(), "cycles:\n{}", cycles.join("\n"));
}
