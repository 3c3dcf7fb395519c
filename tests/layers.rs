//! The layout's promise, checked on the source: no two modules import each other (directly
//! or round a loop), and no module uses a layer listed after its own in `src/lib.rs`'s
//! Layout (primitives below, wiring above). Reads `src/` as text: production code only
//! (everything before a file's `#[cfg(test)]`), comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest layer first, as `src/lib.rs` lists them; modules on one rank
/// stand beside each other.
const LAYERS: [(&str, u8); 12] = [
    ("core", 0),
    ("asr", 1),
    ("emotion", 2),
    ("call", 3),
    ("contact", 4),
    ("report", 5),
    ("server", 6),
    ("config", 7),
    ("replay", 7),
    ("client", 7),
    ("train", 7),
    ("cli", 8),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/core/rtp/leg.rs` → `core::rtp::leg`; `src/server/mod.rs` → `server`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The longest known module that `path` (`a::b::Item`) starts with.
fn resolve<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .find_map(|n| modules.get(&segs[..n].join("::")))
}

/// Paths named in `code` after `prefix` (`crate::a::b`, each item of `use crate::{a, b::c}`),
/// with `base` put in front (`super::x` in `a::b` names `a::x`).
fn paths_after(code: &str, prefix: &str, base: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        // `super::` inside a longer word (`self_super::`) is not the keyword.
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                out.push(format!("{base}{name}"));
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(format!("{base}{}", name.trim_end_matches(':')));
    }
    out
}

/// Module paths that the code of module `m` names: through `crate::` and `super::`.
fn crate_paths(code: &str, m: &str) -> Vec<String> {
    let parent = m
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| format!("{p}::"));
    let mut out = paths_after(code, "crate::", "");
    out.extend(paths_after(code, "super::", &parent));
    out
}

fn production_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&src, f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        if m == "lib" || m == "main" {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(f).unwrap());
        let mut to = BTreeSet::new();
        for p in crate_paths(&code, &m) {
            if let Some(r) = resolve(&modules, &p) {
                // A module naming itself or an ancestor (`super::N_CLASSES` from inside
                // emotion/) is not counted: a directory's mod.rs holds what its files share.
                if *r != m && !m.starts_with(&format!("{r}::")) {
                    to.insert(r.clone());
                }
            }
        }
        edges.insert(m, to);
    }
    edges
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = graph();
    assert!(edges.len() > 40, "read {} modules", edges.len());
    // Depth-first search for a back edge; reports the loop it finds.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == m) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m) {
            return None;
        }
        stack.push(m);
        for n in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_layer_uses_one_above_it() {
    let rank: BTreeMap<&str, u8> = LAYERS.into_iter().collect();
    let edges = graph();
    let mut upward = Vec::new();
    for (m, to) in &edges {
        let r = *rank.get(top(m)).unwrap_or_else(|| {
            panic!("{m}: a top-level module that lib.rs's Layout does not list")
        });
        for t in to {
            if rank[top(t)] > r {
                upward.push(format!("{m} -> {t}"));
            }
        }
    }
    assert!(upward.is_empty(), "arrows up the layers: {upward:?}");
}

#[test]
fn the_checker_sees_imports() {
    let code = "use crate::{HOP, core::dsp::DspPlan};\nuse super::legs::Calls;\nlet x = crate::call::Ended;";
    let paths = crate_paths(code, "server::grpc");
    assert_eq!(
        paths,
        [
            "HOP",
            "core::dsp::DspPlan",
            "call::Ended",
            "server::legs::Calls"
        ]
    );
    let edges = graph();
    assert!(edges["call"].contains("core::dsp"), "{:?}", edges["call"]);
    assert!(edges["server::grpc"].contains("server::status"));
}
