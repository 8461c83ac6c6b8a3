//! The house's shape, checked: no module of `src/` depends on itself through others (a cycle), and
//! dependencies between the layers run one way — `api/` → `domain/` → `db/`, with `wechat/`
//! speaking the protocols only (it keeps access tokens behind its own `TokenStore` interface,
//! which `db/` implements).
//!
//! A module is a file (`a/b.rs` is `a::b`, `a/mod.rs` is `a`); it depends on another when its code
//! (outside comments, strings and `#[cfg(test)]`) names a path into it: a `use` (grouped ones
//! expanded) or an inline `crate::…`, `super::…`, `self::…` path. Naming an enclosing module's
//! items (`super::DomainError` from `domain::points`) is not a dependency on a sibling.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

/// Production code of a source file: cut at `#[cfg(test)]`, without comments or string contents.
fn code_of(src: &str) -> String {
    let src = src.find("#[cfg(test)]").map_or(src, |k| &src[..k]);
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'"') && b.get(i + 1) != Some(&b'\\') {
            // '"' would open a string.
            i += 3;
        } else {
            let c = src[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, self}}` is `a::b`, `a::c::d`, `a::c`.
fn use_paths(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_owned()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut current, mut depth) = (Vec::new(), String::new(), 0usize);
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let mut out = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        for path in use_paths(part) {
            out.push(if path == "self" { prefix.to_owned() } else { format!("{prefix}::{path}") });
        }
    }
    out
}

/// The module a path names, from module `from`: the longest known prefix.
fn resolve(modules: &BTreeSet<String>, from: &str, path: &str) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = from.split("::").collect();
    match segments.first().copied() {
        Some("crate") => {
            base.clear();
            segments.remove(0);
        }
        Some("super") => {
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
        }
        Some("self") => {
            segments.remove(0);
        }
        _ => return None,
    }
    (0..=segments.len()).rev().map(|n| [&base[..], &segments[..n]].concat().join("::")).find(|m| modules.contains(m))
}

/// Every module of `src/` (but the binary's `main.rs`) and the modules each depends on.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src/") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut code = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        let name = parts.join("::");
        if name == "lib" || name == "main" {
            continue;
        }
        code.insert(name, code_of(&std::fs::read_to_string(&file).unwrap()));
    }
    let modules: BTreeSet<String> = code.keys().cloned().collect();
    let uses = Regex::new(r"\buse\s+([^;]+);").unwrap();
    let inline = Regex::new(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+").unwrap();
    let mut out = BTreeMap::new();
    for (module, text) in &code {
        let mut paths: Vec<String> = uses.captures_iter(text).flat_map(|c| use_paths(&c[1])).collect();
        paths.extend(inline.find_iter(text).map(|m| m.as_str().to_owned()));
        let deps: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| resolve(&modules, module, p))
            .filter(|t| t != module && !module.starts_with(&format!("{t}::")))
            .collect();
        out.insert(module.clone(), deps);
    }
    out
}

/// The groups of modules that depend on each other in a circle (strongly connected components
/// of more than one module), by Tarjan's algorithm.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = dependencies();
    assert!(graph.len() > 100, "{} modules read", graph.len());
    assert!(
        graph["domain::money::redpackets"].contains("domain::money::grabs"),
        "the reader must see grouped and inline uses"
    );
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|group| {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|m| graph[m].iter().filter(|t| group.contains(t)).map(move |t| format!("{m} → {t}")))
                .collect();
            format!("  {}: {}", group.join(", "), edges.join("; "))
        })
        .collect();
    assert!(found.is_empty(), "modules that depend on each other in a circle:\n{}", described.join("\n"));
}

#[test]
fn dependencies_between_the_layers_run_one_way() {
    // (from, to): the modules under `from` must not reach into those under `to`. The API's
    // surfaces share views through `api::views`, never through each other.
    let forbidden = [
        ("api::mp", "api::admin"),
        ("api::merchant", "api::admin"),
        ("api::admin", "api::mp"),
        ("api::admin", "api::merchant"),
        ("api::mp", "api::merchant"),
        ("api::merchant", "api::mp"),
        ("api::views", "api::admin"),
        ("api::views", "api::mp"),
        ("api::views", "api::merchant"),
        ("db", "domain"),
        ("db", "api"),
        ("db", "workers"),
        ("domain", "api"),
        ("domain", "workers"),
        ("wechat", "db"),
        ("wechat", "domain"),
        ("wechat", "api"),
        ("wechat", "workers"),
        ("wechat", "config"),
    ];
    // `wechat::pay::clients` builds the Pay clients from the settings: the one bridge from the
    // configuration into the protocol layer.
    let bridges = [("wechat::pay::clients", "config")];
    let under = |m: &str, prefix: &str| m == prefix || m.strip_prefix(prefix).is_some_and(|r| r.starts_with("::"));
    let mut wrong = Vec::new();
    for (from, deps) in dependencies() {
        for to in deps {
            if forbidden.iter().any(|(a, b)| under(&from, a) && under(&to, b))
                && !bridges.iter().any(|(a, b)| *a == from && under(&to, b))
            {
                wrong.push(format!("  {from} → {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "dependencies against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_every_kind_of_path() {
    assert_eq!(
        use_paths("super::{audit, points::{self, Kind}, DomainError}"),
        ["super::audit", "super::points", "super::points::Kind", "super::DomainError"]
    );
    let modules: BTreeSet<String> = ["domain", "domain::points", "domain::audit", "db", "db::loyalty::points"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(resolve(&modules, "domain::audit", "super::points::Kind").as_deref(), Some("domain::points"));
    assert_eq!(
        resolve(&modules, "domain::audit", "crate::db::loyalty::points::x").as_deref(),
        Some("db::loyalty::points")
    );
    assert_eq!(resolve(&modules, "domain::audit", "super::DomainError").as_deref(), Some("domain"));
    assert_eq!(resolve(&modules, "domain::audit", "serde::Serialize"), None);
    let code = code_of(
        "use a::b; // use crate::x;\nlet s = \"crate::y\"; /* super::z */ let c = '\"';\n#[cfg(test)]\nuse crate::t;",
    );
    assert!(!code.contains("crate::x") && !code.contains("crate::y") && !code.contains("super::z"));
    assert!(!code.contains("crate::t"), "test code is not counted");
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("d".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(cycles(&graph), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
}
