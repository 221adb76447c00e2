//! The workflow a planner returns, checked before anyone runs it: steps with unique ids, a type
//! among the kinds agents run, an object payload, dependencies on steps that exist, and no cycle.
//! Representation slips of small models are normalized (numeric ids become strings, a missing
//! payload or `depends_on` becomes empty); anything else is an error naming the step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value};

use super::payload::kind_of;
use crate::profiles::AgentKind;

/// Most steps a plan may have.
pub(crate) const MAX_STEPS: usize = 50;
/// Longest step id.
const MAX_STEP_ID_CHARS: usize = 64;
/// The name of a plan that gave none.
const DEFAULT_NAME: &str = "plan";

/// The step types a plan may use: every kind but noop, which answers nothing real and which an
/// ordinary worker does not run (a noop step would wait for an agent forever).
pub(crate) fn step_types() -> Vec<&'static str> {
    AgentKind::ALL.into_iter().filter(|kind| *kind != AgentKind::Noop).map(AgentKind::as_str).collect()
}

/// A checked plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PlannedWorkflow {
    /// Its name.
    pub(crate) name: String,
    /// Its steps, in the order given.
    pub(crate) steps: Vec<PlannedStep>,
}

/// A checked step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PlannedStep {
    /// Unique in the plan.
    pub(crate) id: String,
    /// The kind of agent that runs it.
    #[serde(rename = "type")]
    pub(crate) step_type: String,
    /// The step's input.
    pub(crate) payload: Value,
    /// Steps that must succeed first.
    pub(crate) depends_on: Vec<String>,
}

/// A step id: a string, or a whole number a model wrote without quotes.
fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(number) => number.as_u64().map(|number| number.to_string()),
        _ => None,
    }
}

fn read_step(index: usize, value: &Value) -> Result<PlannedStep, String> {
    let label = format!("steps[{index}]");
    let Value::Object(fields) = value else {
        return Err(format!("{label} is {}, not an object", kind_of(value)));
    };
    let id = fields.get("id").and_then(id_of).unwrap_or_default();
    if id.is_empty() || id.chars().count() > MAX_STEP_ID_CHARS {
        return Err(format!("{label}.id must be a string of 1 to {MAX_STEP_ID_CHARS} characters"));
    }
    let step_type = match fields.get("type") {
        Some(Value::String(step_type)) if step_types().contains(&step_type.trim()) => {
            step_type.trim().to_owned()
        }
        Some(Value::String(step_type)) => {
            return Err(format!(
                "step `{id}` has the unknown type `{step_type}`; the types are {}",
                step_types().join(", ")
            ));
        }
        _ => return Err(format!("step `{id}` has no type")),
    };
    let payload = match fields.get("payload") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(payload)) => Value::Object(payload.clone()),
        Some(other) => {
            return Err(format!("step `{id}` has a payload that is {}, not an object", kind_of(other)));
        }
    };
    let depends_on = match fields.get("depends_on") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut dependencies = Vec::with_capacity(items.len());
            for item in items {
                let dependency = id_of(item)
                    .ok_or_else(|| format!("step `{id}` has a dependency that is not a step id"))?;
                if !dependencies.contains(&dependency) {
                    dependencies.push(dependency);
                }
            }
            dependencies
        }
        Some(other) => {
            return Err(format!("step `{id}` has depends_on that is {}, not an array", kind_of(other)));
        }
    };
    Ok(PlannedStep { id, step_type, payload, depends_on })
}

/// Checks a plan the model gave.
pub(crate) fn validate(value: &Value) -> Result<PlannedWorkflow, String> {
    let Value::Object(fields) = value else {
        return Err(format!("the plan is {}, not an object with `steps`", kind_of(value)));
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => DEFAULT_NAME.to_owned(),
    };
    let Some(Value::Array(items)) = fields.get("steps") else {
        return Err("the plan has no `steps` array".to_owned());
    };
    if items.is_empty() || items.len() > MAX_STEPS {
        return Err(format!("the plan must have 1 to {MAX_STEPS} steps, not {}", items.len()));
    }
    let mut steps = Vec::with_capacity(items.len());
    let mut ids = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let step = read_step(index, item)?;
        if !ids.insert(step.id.clone()) {
            return Err(format!("the step id `{}` is used twice", step.id));
        }
        steps.push(step);
    }
    for step in &steps {
        for dependency in &step.depends_on {
            if dependency == &step.id {
                return Err(format!("step `{}` depends on itself", step.id));
            }
            if !ids.contains(dependency) {
                return Err(format!("step `{}` depends on the unknown step `{dependency}`", step.id));
            }
        }
    }
    check_acyclic(&steps)?;
    Ok(PlannedWorkflow { name, steps })
}

/// Kahn's algorithm: steps whose dependencies can all be satisfied are removed one by one; what
/// remains lies on or behind a cycle.
fn check_acyclic(steps: &[PlannedStep]) -> Result<(), String> {
    let mut waiting_on: BTreeMap<&str, usize> =
        steps.iter().map(|step| (step.id.as_str(), step.depends_on.len())).collect();
    let mut ready: VecDeque<&str> =
        steps.iter().filter(|step| step.depends_on.is_empty()).map(|step| step.id.as_str()).collect();
    let mut done = 0;
    while let Some(finished) = ready.pop_front() {
        done += 1;
        for step in steps {
            if step.depends_on.iter().any(|dependency| dependency == finished)
                && let Some(count) = waiting_on.get_mut(step.id.as_str())
            {
                *count -= 1;
                if *count == 0 {
                    ready.push_back(step.id.as_str());
                }
            }
        }
    }
    if done == steps.len() {
        return Ok(());
    }
    let stuck: Vec<String> = steps
        .iter()
        .filter(|step| waiting_on.get(step.id.as_str()).is_some_and(|count| *count > 0))
        .map(|step| format!("`{}`", step.id))
        .collect();
    Err(format!("the steps {} form a cycle (or wait on one)", stuck.join(", ")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn step(id: &str, depends_on: &[&str]) -> Value {
        json!({"id": id, "type": "coder", "payload": {"spec": id}, "depends_on": depends_on})
    }

    #[test]
    fn a_diamond_is_valid() {
        let plan = json!({"name": "diamond", "steps": [
            step("a", &[]), step("b", &["a"]), step("c", &["a"]), step("d", &["b", "c"])
        ]});
        let workflow = validate(&plan).unwrap();
        assert_eq!(workflow.name, "diamond");
        assert_eq!(workflow.steps[3].depends_on, ["b", "c"]);
        assert_eq!(serde_json::to_value(&workflow).unwrap(), plan);
    }

    #[test]
    fn slips_are_normalized() {
        let plan = json!({"steps": [
            {"id": 1, "type": "summarizer"},
            {"id": "2", "type": "reviewer", "payload": null, "depends_on": [1, 1]}
        ]});
        let workflow = validate(&plan).unwrap();
        assert_eq!(workflow.name, "plan");
        assert_eq!(workflow.steps[0].id, "1");
        assert_eq!(workflow.steps[0].payload, json!({}));
        assert_eq!(workflow.steps[1].depends_on, ["1"]);
    }

    #[test]
    fn each_broken_rule_is_named() {
        let cases = [
            (json!([]), "the plan is an array, not an object with `steps`"),
            (json!({"steps": []}), "the plan must have 1 to 50 steps, not 0"),
            (json!({"steps": [step("a", &[]), step("a", &[])]}), "the step id `a` is used twice"),
            (json!({"steps": [step("a", &["z"])]}), "step `a` depends on the unknown step `z`"),
            (json!({"steps": [step("a", &["a"])]}), "step `a` depends on itself"),
            (
                json!({"steps": [{"id": "a", "type": "noop"}]}),
                "step `a` has the unknown type `noop`; the types are coder, reviewer, summarizer, shell, planner, memory-chat",
            ),
            (
                json!({"steps": [{"id": "a", "type": "coder", "payload": "x"}]}),
                "step `a` has a payload that is a string, not an object",
            ),
            (json!({"steps": [{"type": "coder"}]}), "steps[0].id must be a string of 1 to 64 characters"),
            (
                json!({"steps": [step("a", &[]), step("b", &["c"]), step("c", &["b"]), step("d", &["c"])]}),
                "the steps `b`, `c`, `d` form a cycle (or wait on one)",
            ),
        ];
        for (plan, expected) in cases {
            assert_eq!(validate(&plan).unwrap_err(), expected, "{plan}");
        }
    }

    /// Random DAGs whose edges point from earlier to later steps.
    fn forward_edges() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (2_usize..12).prop_flat_map(|count| {
            let edges = proptest::collection::vec((0..count, 0..count), 1..20)
                .prop_map(|pairs| pairs.into_iter().filter(|(from, to)| from < to).collect::<Vec<_>>());
            (Just(count), edges)
        })
    }

    fn plan_of(count: usize, edges: &[(usize, usize)]) -> Value {
        let steps: Vec<Value> = (0..count)
            .map(|index| {
                let depends_on: Vec<String> =
                    edges.iter().filter(|(_, to)| *to == index).map(|(from, _)| format!("s{from}")).collect();
                json!({"id": format!("s{index}"), "type": "shell", "depends_on": depends_on})
            })
            .collect();
        json!({"name": "random", "steps": steps})
    }

    proptest! {
        #[test]
        fn forward_graphs_pass_and_a_back_edge_fails((count, edges) in forward_edges()) {
            prop_assert!(validate(&plan_of(count, &edges)).is_ok());
            if let Some((from, to)) = edges.first().copied() {
                let mut with_back_edge = edges.clone();
                with_back_edge.push((to, from));
                let error = validate(&plan_of(count, &with_back_edge)).unwrap_err();
                prop_assert!(error.contains("form a cycle"), "{}", error);
            }
        }
    }
}
