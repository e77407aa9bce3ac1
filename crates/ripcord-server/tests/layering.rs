//! The server's modules form layers: no import cycle between the crate's
//! modules (a folder counts as one), the HTTP layer at the top with nothing
//! below it importing it, and no route module importing another or the
//! router (what they share lives in `http::app`, `http::extract`,
//! `http::paging`, `http::authorize` and `http::act`).
//!
//! The graph is read from the sources: every `crate::…`, `super::…` and
//! `child::…` path of a module file (in `use` trees and in code), resolved
//! to the longest module it names, and every `mod child;` it declares.
//! Unit tests (from `#[cfg(test)]` on) are left out: they may reach
//! anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules under `http` that hold no routes: what the route modules share.
const SHARED_HTTP: &[&str] = &[
    "http::app",
    "http::extract",
    "http::paging",
    "http::authorize",
    "http::act",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_import_cycle_between_the_modules() {
    let graph = graph();
    let top = top_level(&graph);
    let edges = show(&top);
    let cycles: Vec<BTreeSet<String>> = components(&top)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles {cycles:?}\nedges:\n{edges}"
    );
}

#[test]
fn http_is_the_top_layer_and_routes_do_not_import_each_other() {
    let graph = graph();
    let edges = show(&graph);
    assert!(
        graph
            .get("http")
            .is_some_and(|t| t.contains("http::incidents")),
        "the parser found too little:\n{edges}"
    );
    let in_http = |m: &str| m == "http" || m.starts_with("http::");
    let routes = |m: &str| m.starts_with("http::") && !SHARED_HTTP.contains(&m);
    // A route module may be a folder (`http::ui`); its parts are one module.
    let route_of = |m: &str| m.split("::").take(2).collect::<Vec<_>>().join("::");
    for (from, tos) in &graph {
        for to in tos {
            assert!(
                !(routes(from) && routes(to) && route_of(from) != route_of(to)),
                "route module {from} imports route module {to}\nedges:\n{edges}"
            );
            assert!(
                !(from != "crate" && to == "http"),
                "{from} imports the router (http), which is above it\nedges:\n{edges}"
            );
            assert!(
                !(from != "crate" && !in_http(from) && in_http(to)),
                "{from} imports {to}, above it\nedges:\n{edges}"
            );
        }
    }
}

/// The graph between the crate's top modules: `auth::tokens` counts as
/// `auth`; edges inside one folder are dropped.
fn top_level(graph: &Graph) -> Graph {
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
    let mut out = Graph::new();
    for (from, tos) in graph {
        let entry = out.entry(top(from)).or_default();
        entry.extend(tos.iter().map(|t| top(t)).filter(|t| *t != top(from)));
    }
    out
}

fn show(graph: &Graph) -> String {
    let mut out = String::new();
    for (from, tos) in graph {
        for to in tos {
            out.push_str(&format!("  {from} -> {to}\n"));
        }
    }
    out
}

/// Every module's file, by module path (`crate` for `lib.rs`).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the source dir")
        .map(|e| e.expect("an entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let join = |name: &str| match prefix {
            "" => name.to_string(),
            p => format!("{p}::{name}"),
        };
        if path.is_dir() {
            modules(&path, &join(&stem), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = match (prefix, stem.as_str()) {
                ("", "lib") => "crate".to_string(),
                (p, "mod") => p.to_string(),
                _ => join(&stem),
            };
            out.insert(name, std::fs::read_to_string(&path).expect("a source file"));
        }
    }
}

fn graph() -> Graph {
    let mut files = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut files,
    );
    let known: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, text) in &files {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let tos = graph.entry(module.clone()).or_default();
        for path in paths(&code, "crate") {
            tos.insert(resolve(&known, &path));
        }
        let parent = module.rsplit_once("::").map_or("crate", |(p, _)| p);
        for path in paths(&code, "super") {
            let full = match parent {
                "crate" => path,
                p => format!("{p}::{path}"),
            };
            tos.insert(resolve(&known, &full));
        }
        for child in children(&code) {
            let base = match module.as_str() {
                "crate" => child.clone(),
                m => format!("{m}::{child}"),
            };
            tos.insert(base.clone());
            for path in paths(&code, &child) {
                tos.insert(resolve(&known, &format!("{base}::{path}")));
            }
        }
        tos.remove(module);
    }
    graph
}

/// The modules `code` declares (`mod x;`, `pub mod x;`): a module reaches
/// its children by their names alone.
fn children(code: &str) -> Vec<String> {
    code.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub ").unwrap_or(l).strip_prefix("mod "))
        .filter_map(|rest| rest.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

/// The longest known module that `path` starts with.
fn resolve(known: &BTreeSet<String>, path: &str) -> String {
    let mut best = "crate".to_string();
    let parts: Vec<&str> = path.split("::").collect();
    for n in 1..=parts.len() {
        let prefix = parts[..n].join("::");
        if known.contains(&prefix) {
            best = prefix;
        }
    }
    best
}

/// Every path that follows `root::` in `code`, with use trees expanded
/// (`crate::{a::{b, c}, d}` gives `a::b`, `a::c`, `d`).
fn paths(code: &str, root: &str) -> Vec<String> {
    let needle = format!("{root}::");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find(&needle) {
        let start = at + found;
        at = start + needle.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &code[at..];
        tree(&mut rest, String::new(), &mut out);
    }
    out
}

/// Reads one use tree from the start of `rest`, pushing its paths.
fn tree(rest: &mut &str, prefix: String, out: &mut Vec<String>) {
    *rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('{') {
        *rest = inner;
        loop {
            *rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                *rest = after;
                return;
            }
            if let Some(after) = rest.strip_prefix(',') {
                *rest = after;
                continue;
            }
            let before = rest.len();
            tree(rest, prefix.clone(), out);
            if rest.len() == before {
                return;
            }
        }
    }
    let len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let ident = &rest[..len];
    *rest = &rest[len..];
    let path = match (prefix.as_str(), ident) {
        (p, "self") | (p, "*") | (p, "") => p.to_string(),
        ("", i) => i.to_string(),
        (p, i) => format!("{p}::{i}"),
    };
    if let Some(after) = rest.strip_prefix("::") {
        *rest = after;
        if let Some(after) = rest.strip_prefix('*') {
            *rest = after;
            out.push(path);
            return;
        }
        tree(rest, path, out);
    } else if !path.is_empty() {
        out.push(path);
    }
}

/// The strongly connected components (Tarjan).
fn components(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        w.on_stack.insert(v);
        let graph = w.graph;
        for to in graph.get(v).into_iter().flatten() {
            let to = to.as_str();
            if !w.index.contains_key(to) {
                visit(w, to);
                let low = w.low[v].min(w.low[to]);
                w.low.insert(v, low);
            } else if w.on_stack.contains(to) {
                let low = w.low[v].min(w.index[to]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = BTreeSet::new();
            while let Some(top) = w.stack.pop() {
                w.on_stack.remove(top);
                component.insert(top.to_string());
                if top == v {
                    break;
                }
            }
            w.out.push(component);
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.out
}
