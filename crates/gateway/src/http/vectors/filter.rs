//! Filters (API.md "Filters"): the JSON `must` / `should` / `must_not` form read into the vector
//! contract's `Filter`, with every shape error naming its place inside the filter.

use serde_json::Value;
use sutazai_kit::http::ApiError;
use sutazai_proto::json::to_proto_value;
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::condition::Condition as ConditionKind;

/// Filter keys are dotted payload paths; anything longer is a mistake, not a path.
const MAX_FILTER_KEY_BYTES: usize = 256;
/// Nested filters become nested protobuf messages (two per level), and prost refuses to decode
/// more than 100 levels, so the gateway stops well before the service would fail to read it.
const MAX_FILTER_DEPTH: usize = 16;

/// Reads a JSON filter (API.md "Filters") into the contract's `Filter`; any shape error is a 422
/// naming `filter`, with the place inside it in the detail.
pub(super) fn parse_filter(json: &Value) -> Result<pb::Filter, ApiError> {
    filter_at(json, "", 0).map_err(|detail| ApiError::validation("filter", detail))
}

/// `parent.child`, or just `child` at the top of the filter.
fn join(at: &str, child: &str) -> String {
    if at.is_empty() { child.to_owned() } else { format!("{at}.{child}") }
}

/// An error at `at` inside the filter; at the top, the detail's `filter:` prefix already says where.
fn fail(at: &str, message: &str) -> String {
    if at.is_empty() { message.to_owned() } else { format!("{at}: {message}") }
}

fn filter_at(json: &Value, at: &str, depth: usize) -> Result<pb::Filter, String> {
    if depth > MAX_FILTER_DEPTH {
        return Err(fail(at, &format!("nested more than {MAX_FILTER_DEPTH} levels deep")));
    }
    let Value::Object(clauses) = json else {
        return Err(fail(at, "must be an object of `must`, `should` and `must_not` lists"));
    };
    let mut filter = pb::Filter::default();
    for (clause, conditions) in clauses {
        let target = match clause.as_str() {
            "must" => &mut filter.must,
            "should" => &mut filter.should,
            "must_not" => &mut filter.must_not,
            other => {
                return Err(fail(
                    at,
                    &format!("unknown clause `{other}` (expected must, should or must_not)"),
                ));
            }
        };
        let clause_at = join(at, clause);
        let Value::Array(items) = conditions else {
            return Err(format!("{clause_at}: must be a list of conditions"));
        };
        for (index, item) in items.iter().enumerate() {
            target.push(condition_at(item, &format!("{clause_at}[{index}]"), depth)?);
        }
    }
    Ok(filter)
}

fn condition_at(json: &Value, at: &str, depth: usize) -> Result<pb::Condition, String> {
    let Value::Object(fields) = json else {
        return Err(format!("{at}: must be an object"));
    };
    if fields.is_empty() {
        return Err(format!(
            "{at}: must be a condition (`key` with `match`, `in` or `range`) or a nested filter"
        ));
    }
    // Without a key, the object is a nested filter (for or-of-ands and similar logic).
    let Some(key) = fields.get("key") else {
        let nested = filter_at(json, at, depth + 1)?;
        return Ok(pb::Condition { key: String::new(), condition: Some(ConditionKind::Filter(nested)) });
    };
    let Value::String(key) = key else {
        return Err(format!("{at}.key: must be a string"));
    };
    if key.is_empty() || key.len() > MAX_FILTER_KEY_BYTES {
        return Err(format!("{at}.key: must be 1 to {MAX_FILTER_KEY_BYTES} bytes"));
    }
    let mut condition = None;
    for (name, value) in fields {
        let parsed = match name.as_str() {
            "key" => continue,
            "match" => ConditionKind::Match(to_proto_value(value)),
            "in" => {
                let Value::Array(values) = value else {
                    return Err(format!("{at}.in: must be a list of values"));
                };
                ConditionKind::In(pb::ValueList { values: values.iter().map(to_proto_value).collect() })
            }
            "range" => ConditionKind::Range(range_at(value, &format!("{at}.range"))?),
            other => {
                return Err(format!("{at}: unknown field `{other}` (expected key with match, in or range)"));
            }
        };
        if condition.replace(parsed).is_some() {
            return Err(format!("{at}: needs exactly one of `match`, `in` and `range`"));
        }
    }
    let Some(condition) = condition else {
        return Err(format!("{at}: needs one of `match`, `in` and `range`"));
    };
    Ok(pb::Condition { key: key.clone(), condition: Some(condition) })
}

fn range_at(json: &Value, at: &str) -> Result<pb::Range, String> {
    let Value::Object(bounds) = json else {
        return Err(format!("{at}: must be an object of `gt`, `gte`, `lt` and `lte`"));
    };
    let mut range = pb::Range::default();
    for (name, value) in bounds {
        let Some(bound) = value.as_f64().filter(|bound| bound.is_finite()) else {
            return Err(format!("{at}.{name}: must be a number"));
        };
        let slot = match name.as_str() {
            "gt" => &mut range.gt,
            "gte" => &mut range.gte,
            "lt" => &mut range.lt,
            "lte" => &mut range.lte,
            other => return Err(format!("{at}: unknown bound `{other}` (expected gt, gte, lt or lte)")),
        };
        *slot = Some(bound);
    }
    if bounds.is_empty() {
        return Err(format!("{at}: needs at least one of `gt`, `gte`, `lt` and `lte`"));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sutazai_types::ServiceErrorCode;

    use super::*;

    #[test]
    fn filter_with_every_condition() {
        let filter = parse_filter(&json!({
            "must": [
                {"key": "lang", "match": "en"},
                {"key": "author.id", "in": [1, 2]},
                {"key": "year", "range": {"gte": 2000, "lt": 2010}},
            ],
            "should": [{"must": [{"key": "a", "match": true}]}],
            "must_not": [{"key": "draft", "match": true}],
        }))
        .unwrap();
        assert_eq!(filter.must.len(), 3);
        assert_eq!(filter.must[0].key, "lang");
        assert!(
            matches!(filter.must[1].condition, Some(ConditionKind::In(ref list)) if list.values.len() == 2)
        );
        assert_eq!(
            filter.must[2].condition,
            Some(ConditionKind::Range(pb::Range {
                gt: None,
                gte: Some(2000.0),
                lt: Some(2010.0),
                lte: None
            }))
        );
        assert!(
            matches!(filter.should[0].condition, Some(ConditionKind::Filter(ref nested)) if nested.must.len() == 1)
        );
        assert_eq!(filter.must_not.len(), 1);
    }

    #[test]
    fn bad_filters_name_the_place() {
        let cases = [
            (json!([1]), "filter: must be an object"),
            (json!({"may": []}), "filter: unknown clause `may`"),
            (json!({"must": {}}), "filter: must: must be a list"),
            (json!({"must": [{"key": "a"}]}), "filter: must[0]: needs one of"),
            (json!({"must": [{"key": "a", "match": 1, "in": [1]}]}), "filter: must[0]: needs exactly one"),
            (json!({"must": [{"key": "a", "range": {}}]}), "filter: must[0].range: needs at least one"),
            (
                json!({"must": [{"key": "a", "range": {"gt": "x"}}]}),
                "filter: must[0].range.gt: must be a number",
            ),
            (json!({"should": [{"key": 3, "match": 1}]}), "filter: should[0].key: must be a string"),
            (json!({"must": [{}]}), "filter: must[0]: must be a condition"),
        ];
        for (json, expected) in cases {
            let error = parse_filter(&json).unwrap_err();
            assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
            assert!(
                error.detail().starts_with(expected),
                "{} does not start with {expected}",
                error.detail()
            );
        }
    }

    #[test]
    fn deep_filters_are_refused() {
        let mut filter = json!({"must": [{"key": "a", "match": 1}]});
        for _ in 0..=MAX_FILTER_DEPTH {
            filter = json!({"must": [filter]});
        }
        assert!(parse_filter(&filter).unwrap_err().detail().contains("nested more than"));
    }
}
