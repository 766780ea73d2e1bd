//! Start order: a topological sort that names what is wrong.

use std::collections::HashMap;

use pattern_error::{Error, Kind};

/// Orders components so that each comes after its dependencies; ties keep
/// the order components were added in.
///
/// Fails with [`Kind::InvalidInput`] on a duplicate name, an unknown
/// dependency (naming both components) or a cycle (naming its members in
/// order).
pub(crate) fn start_order(nodes: &[(String, Vec<String>)]) -> Result<Vec<usize>, Error> {
    let mut index = HashMap::new();
    for (i, (name, _)) in nodes.iter().enumerate() {
        if index.insert(name.as_str(), i).is_some() {
            return Err(Error::new(
                Kind::InvalidInput,
                format!("two components are named {name:?}"),
            ));
        }
    }
    let mut unknown = Vec::new();
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
    for (name, wants) in nodes {
        let mut mine = Vec::new();
        for want in wants {
            match index.get(want.as_str()) {
                Some(&j) => mine.push(j),
                None => unknown.push(format!("{name:?} depends on {want:?}")),
            }
        }
        deps.push(mine);
    }
    if !unknown.is_empty() {
        return Err(Error::new(
            Kind::InvalidInput,
            format!(
                "unknown dependency: {} (no component has that name)",
                unknown.join(", ")
            ),
        ));
    }

    // Depth-first, in insertion order, so the result is stable.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    let mut path = Vec::new();
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let from = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(i);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        for &d in &deps[i] {
            visit(d, deps, marks, path, order)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }
    for i in 0..nodes.len() {
        if let Err(cycle) = visit(i, &deps, &mut marks, &mut path, &mut order) {
            let names: Vec<&str> = cycle.iter().map(|&c| nodes[c].0.as_str()).collect();
            return Err(Error::new(
                Kind::InvalidInput,
                format!("dependency cycle: {}", names.join(" -> ")),
            ));
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first_and_ties_keep_insertion_order() {
        let n = nodes(&[
            ("http", &["db", "cache"]),
            ("cache", &["db"]),
            ("db", &[]),
            ("metrics", &[]),
        ]);
        let order: Vec<&str> = start_order(&n)
            .unwrap()
            .iter()
            .map(|&i| n[i].0.as_str())
            .collect();
        assert_eq!(order, ["db", "cache", "http", "metrics"]);
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_named() {
        let n = nodes(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        let err = start_order(&n).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
        let n = nodes(&[("api", &["db"])]);
        let err = start_order(&n).unwrap_err();
        assert!(
            err.to_string().contains("\"api\" depends on \"db\""),
            "{err}"
        );
        let n = nodes(&[("x", &[]), ("x", &[])]);
        assert!(
            start_order(&n)
                .unwrap_err()
                .to_string()
                .contains("two components")
        );
    }
}
