//! `noop`: the payload back as the output, at once and without any call — the pipeline's cost
//! alone, for the benchmark.

use serde_json::{Value, json};

/// The result of a noop task.
pub(crate) fn run(payload: &Value) -> Value {
    json!({"output": payload})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_comes_back_unchanged() {
        let payload = json!({"n": 1, "nested": [true, null]});
        assert_eq!(run(&payload), json!({"output": {"n": 1, "nested": [true, null]}}));
    }
}
