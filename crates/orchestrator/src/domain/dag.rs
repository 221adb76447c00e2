//! Checks that workflow steps form a DAG: unique non-empty ids, dependencies that exist, no cycle.
//! Errors name the steps involved, so a client (or a planner's author) can fix the graph.

use std::collections::HashMap;

use super::validation::ValidationError;

/// One step as the graph sees it.
#[derive(Debug, Clone, Copy)]
pub struct DagNode<'a> {
    /// The step id.
    pub id: &'a str,
    /// The ids it waits for.
    pub depends_on: &'a [String],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unvisited,
    OnPath,
    Done,
}

/// Checks the graph; the first problem found, in submission order, is reported.
pub fn check(nodes: &[DagNode<'_>]) -> Result<(), ValidationError> {
    if nodes.is_empty() {
        return Err(ValidationError::new("steps", "must hold at least one step"));
    }
    let mut positions: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (position, node) in nodes.iter().enumerate() {
        if node.id.trim().is_empty() {
            return Err(ValidationError::new(format!("steps[{position}].step_id"), "must not be empty"));
        }
        if positions.insert(node.id, position).is_some() {
            return Err(ValidationError::new("steps", format!("step id `{}` is used twice", node.id)));
        }
    }
    let mut edges: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut targets = Vec::with_capacity(node.depends_on.len());
        for dependency in node.depends_on {
            let Some(&target) = positions.get(dependency.as_str()) else {
                return Err(ValidationError::new(
                    "steps",
                    format!("step `{}` depends on unknown step `{dependency}`", node.id),
                ));
            };
            targets.push(target);
        }
        edges.push(targets);
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&position| nodes[position].id).collect();
        return Err(ValidationError::new("steps", format!("cycle in depends_on: {}", names.join(" → "))));
    }
    Ok(())
}

/// A cycle as positions, first position repeated at the end, found by depth-first search.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut marks = vec![Mark::Unvisited; edges.len()];
    for root in 0..edges.len() {
        if marks[root] != Mark::Unvisited {
            continue;
        }
        // An explicit stack of (node, next edge to follow); the stack is the current path.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnPath;
        while let Some(&mut (node, ref mut next_edge)) = stack.last_mut() {
            let Some(&target) = edges[node].get(*next_edge) else {
                marks[node] = Mark::Done;
                stack.pop();
                continue;
            };
            *next_edge += 1;
            match marks[target] {
                Mark::Done => {}
                Mark::Unvisited => {
                    marks[target] = Mark::OnPath;
                    stack.push((target, 0));
                }
                Mark::OnPath => {
                    let start = stack.iter().position(|&(on_path, _)| on_path == target).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[start..].iter().map(|&(on_path, _)| on_path).collect();
                    cycle.push(target);
                    return Some(cycle);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn graph(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(id, deps)| ((*id).to_owned(), deps.iter().map(|dep| (*dep).to_owned()).collect()))
            .collect()
    }

    fn check_graph(graph: &[(String, Vec<String>)]) -> Result<(), String> {
        let nodes: Vec<DagNode<'_>> =
            graph.iter().map(|(id, deps)| DagNode { id, depends_on: deps }).collect();
        check(&nodes).map_err(|error| error.to_string())
    }

    #[test]
    fn a_diamond_is_a_dag() {
        let diamond = graph(&[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        assert_eq!(check_graph(&diamond), Ok(()));
    }

    #[test]
    fn errors_name_the_steps() {
        let cycle = graph(&[("a", &[]), ("b", &["a", "c"]), ("c", &["b"])]);
        assert_eq!(check_graph(&cycle), Err("steps: cycle in depends_on: b → c → b".to_owned()));
        let own = graph(&[("a", &["a"])]);
        assert_eq!(check_graph(&own), Err("steps: cycle in depends_on: a → a".to_owned()));
        let unknown = graph(&[("a", &[]), ("b", &["x"])]);
        assert_eq!(check_graph(&unknown), Err("steps: step `b` depends on unknown step `x`".to_owned()));
        let duplicate = graph(&[("a", &[]), ("a", &[])]);
        assert_eq!(check_graph(&duplicate), Err("steps: step id `a` is used twice".to_owned()));
        let blank = graph(&[("a", &[]), (" ", &[])]);
        assert_eq!(check_graph(&blank), Err("steps[1].step_id: must not be empty".to_owned()));
        assert_eq!(check_graph(&[]), Err("steps: must hold at least one step".to_owned()));
    }

    proptest! {
        // Edges only to earlier steps can never close a cycle; one edge from the first step of a
        // path back to its last always does.
        #[test]
        fn back_edges_and_only_back_edges_make_cycles(
            size in 2usize..30,
            raw_edges in proptest::collection::vec((0usize..30, 0usize..30), 0..80),
        ) {
            let mut deps: Vec<Vec<String>> = vec![Vec::new(); size];
            for (from, to) in raw_edges {
                let (from, to) = (from % size, to % size);
                if to < from && !deps[from].contains(&format!("s{to}")) {
                    deps[from].push(format!("s{to}"));
                }
            }
            let acyclic: Vec<(String, Vec<String>)> =
                deps.iter().enumerate().map(|(index, deps)| (format!("s{index}"), deps.clone())).collect();
            prop_assert_eq!(check_graph(&acyclic), Ok(()));

            // A chain s1 → s0 plus s0 → s(size-1) → ... closes a cycle once s(size-1) reaches s0.
            let mut cyclic = acyclic.clone();
            for (index, (_, deps)) in cyclic.iter_mut().enumerate().skip(1) {
                deps.push(format!("s{}", index - 1));
            }
            cyclic[0].1.push(format!("s{}", size - 1));
            let error = check_graph(&cyclic).unwrap_err();
            prop_assert!(error.starts_with("steps: cycle in depends_on: "), "{}", error);
        }
    }
}
