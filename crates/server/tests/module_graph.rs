//! The server's modules import each other in one direction only: this test reads
//! every file of `src/`, resolves what it names of the crate (`crate::…`, `super::…`,
//! `self::…`) to the module that defines it, and fails on any cycle, between files
//! or between the top-level modules (folders) that hold them. `app` composes and is
//! imported by nothing; a cycle means two modules know each other and one of them
//! should not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every module of the library (`src/main.rs` is the binary, outside the graph).
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let mut module: Module = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue,
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            out.insert(module, path);
        }
    }
    out
}

/// The paths a file names, as segments after `crate`, `super` or `self`, resolved
/// against the file's own module. Comments are skipped; `{a, b::c}` groups expand.
fn named_paths(source: &str, module: &Module) -> Vec<Module> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(root) {
            let before = rest[..at].chars().last();
            rest = &rest[at + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `my_crate::`
            }
            let base: Module = match root {
                "crate::" => Vec::new(),
                "self::" => module.clone(),
                // `super` of module a::b (`a/b.rs` or `a/b/mod.rs`) is `a`.
                _ => {
                    let mut parent = module.clone();
                    parent.pop();
                    parent
                }
            };
            for tail in expand(rest) {
                let mut path = base.clone();
                path.extend(tail);
                out.push(path);
            }
        }
    }
    out
}

/// The segment lists at the start of `text`: `a::b::C` → [[a, b, C]];
/// `a::{b, c::D}` → [[a, b], [a, c, D]]; `{x, y}` → [[x], [y]].
fn expand(text: &str) -> Vec<Module> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        rest = &rest[ident.len()..];
        segments.push(ident);
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => return vec![segments],
        }
    }
    let Some(group) = rest.strip_prefix('{') else {
        return vec![segments];
    };
    let mut depth = 1;
    let end = group
        .char_indices()
        .find(|(_, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            depth == 0
        })
        .map_or(group.len(), |(i, _)| i);
    let mut out = Vec::new();
    let mut item_depth = 0;
    let mut start = 0;
    let inner = &group[..end];
    for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
        match c {
            '{' => item_depth += 1,
            '}' => item_depth -= 1,
            ',' if item_depth == 0 => {
                for tail in expand(inner[start..i].trim()) {
                    let mut path = segments.clone();
                    path.extend(tail);
                    out.push(path);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// The longest known module that `path` starts with.
fn resolve(path: &Module, known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains_key(prefix))
}

fn import_graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(src);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, path) in &known {
        let source = std::fs::read_to_string(path).expect("read a source file");
        let edges = graph.entry(module.clone()).or_default();
        for named in named_paths(&source, module) {
            if let Some(target) = resolve(&named, &known)
                && target != *module
                && !target.is_empty()
            {
                edges.insert(target);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<N: Ord + Clone>(
        node: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        marks: &mut BTreeMap<N, Mark>,
        path: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn show(cycle: &[Module]) -> String {
    cycle
        .iter()
        .map(|m| format!("crate::{}", m.join("::")))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[test]
fn no_two_files_of_the_server_import_each_other_even_through_others() {
    let graph = import_graph(&src());
    assert!(
        graph.len() > 30,
        "the graph was read ({} modules)",
        graph.len()
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import cycle between files: {}", show(&cycle));
    }
}

#[test]
fn the_top_level_modules_import_each_other_in_one_direction() {
    let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, targets) in import_graph(&src()) {
        let Some(first) = module.first() else {
            continue;
        };
        let edges = top.entry(vec![first.clone()]).or_default();
        for target in targets {
            if let Some(target_first) = target.first()
                && target_first != first
            {
                edges.insert(vec![target_first.clone()]);
            }
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        panic!("an import cycle between modules: {}", show(&cycle));
    }
    let into_app: Vec<_> = top
        .iter()
        .filter(|(_, targets)| targets.contains(&vec!["app".to_owned()]))
        .map(|(module, _)| module.join("::"))
        .collect();
    assert!(
        into_app.is_empty(),
        "app composes; nothing imports it: {into_app:?}"
    );
}

#[test]
fn the_check_sees_a_cycle_when_there_is_one() {
    // The checker itself, on a graph with a cycle and on one without.
    let edges = |pairs: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in pairs {
            graph
                .entry((*from).into())
                .or_default()
                .insert((*to).into());
            graph.entry((*to).into()).or_default();
        }
        graph
    };
    let cyclic = edges(&[("gateway", "events"), ("events", "hub"), ("hub", "gateway")]);
    assert_eq!(
        find_cycle(&cyclic).map(|c| c.len()),
        Some(4),
        "gateway -> events -> hub -> gateway"
    );
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    // And the path reader: grouped imports, `super`, and names that only end in
    // `crate`.
    let module = vec!["log".to_owned(), "sqlite".to_owned()];
    let named = named_paths(
        "use crate::{hub::{Hub, encode}, store};\nuse super::Position;\nlet x = my_crate::y;",
        &module,
    );
    let named: BTreeSet<String> = named.iter().map(|m| m.join("::")).collect();
    assert_eq!(
        named,
        BTreeSet::from([
            "hub::Hub".to_owned(),
            "hub::encode".to_owned(),
            "store".to_owned(),
            "log::Position".to_owned(),
        ])
    );
}
