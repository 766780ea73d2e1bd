//! `cargo xtask modules`: no module of a library crate uses another that
//! uses it back, directly or through others.
//!
//! A module's references are the paths it names: `crate::a::b`, the groups
//! of `use crate::{...}`, `super::…`, and a root re-export (`crate::Name`,
//! where `lib.rs` has `pub use a::Name`) counted as its module. Two
//! references make an edge between the sibling modules they part at
//! (`a::x` naming `a::y::z` is an edge `a::x → a::y`); a strongly connected
//! set of more than one module is a loop. Tests (`#[cfg(test)]` onwards)
//! and comments are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::util::root;

use crate::ci::LIBRARIES;

type Module = Vec<String>;

pub(crate) fn check() -> Result<String, String> {
    let mut loops = Vec::new();
    let mut modules = 0;
    for krate in LIBRARIES {
        let src = root().join("crates").join(krate).join("src");
        let edges = edges(&src)?;
        modules += edges.len();
        for component in strongly_connected(&edges) {
            let names: Vec<String> = component.iter().map(|m| m.join("::")).collect();
            loops.push(format!("{krate}: {}", names.join(" ↔ ")));
        }
    }
    if loops.is_empty() {
        Ok(format!("{modules} modules, no loop"))
    } else {
        Err(format!("module loops:\n  {}", loops.join("\n  ")))
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module a file holds: `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is not a comment.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// `a::b::C` after a prefix: the lowercase segments (modules).
fn segments(mut text: &str) -> Module {
    let mut out = Vec::new();
    loop {
        let name = ident(text);
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            return out;
        }
        out.push(name.to_owned());
        match text[name.len()..].strip_prefix("::") {
            Some(rest) => text = rest,
            None => return out,
        }
    }
}

/// What `lib.rs` re-exports at the root, by name: its module.
fn root_exports(src: &Path) -> Result<BTreeMap<String, String>, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).map_err(|e| e.to_string())?;
    let mut names = BTreeMap::new();
    for statement in code(&lib).split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = ident(path);
        if module.is_empty() || module == "crate" {
            continue;
        }
        for name in path[module.len()..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|n| !n.is_empty())
        {
            names.insert(name.to_owned(), module.to_owned());
        }
    }
    Ok(names)
}

fn edges(src: &Path) -> Result<BTreeMap<Module, BTreeSet<Module>>, String> {
    let exports = root_exports(src)?;
    let mut all = Vec::new();
    files(src, &mut all)?;
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for file in all {
        let module = module_of(src, &file);
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let code = code(&text);
        let mut refs: Vec<Module> = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::C, Name}`
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let item = item.trim();
                    let path = segments(item);
                    if !path.is_empty() && path[0] != "self" {
                        refs.push(path);
                    } else if let Some(module) = exports.get(ident(item)) {
                        refs.push(vec![module.clone()]);
                    }
                }
            } else {
                let path = segments(rest);
                if !path.is_empty() {
                    refs.push(path);
                } else if let Some(module) = exports.get(ident(rest)) {
                    refs.push(vec![module.clone()]);
                }
            }
        }
        for (at, _) in code.match_indices("super::") {
            let path = segments(&code[at + "super::".len()..]);
            // From a module's own file, `super` is its parent.
            let mut full: Module = module[..module.len().saturating_sub(1)].to_vec();
            full.extend(path);
            refs.push(full);
        }
        for target in refs {
            // The edge between the siblings where the two paths part.
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if shared < module.len() && shared < target.len() {
                edges
                    .entry(module[..=shared].to_vec())
                    .or_default()
                    .insert(target[..=shared].to_vec());
            }
        }
        edges.entry(module).or_default();
    }
    Ok(edges)
}

/// Tarjan's strongly connected components with more than one module.
fn strongly_connected(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        if let Some(targets) = edges.get(v) {
            for w in targets {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: BTreeSet<&Module> = edges
        .iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to))
        .collect();
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

#[cfg(test)]
mod tests {
    use super::{edges, strongly_connected};

    fn write(dir: &std::path::Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A loop through three modules (one by a root re-export, one in a
    /// `use crate::{...}` group) is found; a one-way use and a URL in a
    /// string are not loops.
    #[test]
    fn loops_are_found_and_one_way_uses_are_not() {
        let dir = std::env::temp_dir().join(format!("xtask-modules-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(
            &dir,
            "lib.rs",
            "mod a; mod b; mod c; mod d;\npub use c::Thing;\n",
        );
        write(&dir, "a.rs", "use crate::b::B;\n");
        write(&dir, "b/mod.rs", "mod inner;\nuse crate::{Thing, d};\n");
        write(
            &dir,
            "b/inner.rs",
            "use super::super::a::A; // crate::d in a comment\n",
        );
        write(
            &dir,
            "c.rs",
            "const URL: &str = \"https://x\"; use crate::a::A;\n",
        );
        write(
            &dir,
            "d.rs",
            "pub struct D;\n#[cfg(test)]\nmod tests { use crate::a::A; }\n",
        );
        let found = strongly_connected(&edges(&dir).unwrap());
        let names: Vec<Vec<String>> = found
            .iter()
            .map(|component| component.iter().map(|m| m.join("::")).collect())
            .collect();
        assert_eq!(names, [["a", "b", "c"]]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
