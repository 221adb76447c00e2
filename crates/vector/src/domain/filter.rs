//! Payload filters: `must` / `should` / `must_not` lists of conditions (`match`, `in`, `range` or
//! a nested filter) over dotted key paths into a point's JSON payload. A request's filter is
//! checked and compiled once (paths split, bounds checked) and then evaluated per point, inside
//! the engine's search and for delete-by-filter.
//!
//! Path semantics: `a.b` reads field `b` of the object in field `a`. A list met on the way is
//! searched element by element, and a list at the end matches `match`/`in` when the list itself
//! or any element equals the value, and `range` when any element is a number within the bounds.
//! A point without the field matches no condition (so `must_not` keeps it). Numbers compare by
//! value (`7` equals `7.0`), because payloads travel as protobuf doubles.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Deepest nesting of filters accepted; deeper ones are refused rather than risking the stack.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Longest key path.
pub const MAX_KEY_BYTES: usize = 256;

/// A compiled filter. Serializable so a delete-by-filter can be logged and replayed as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Every one must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must: Vec<Condition>,
    /// At least one must hold, when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub should: Vec<Condition>,
    /// None may hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not: Vec<Condition>,
}

/// One condition of a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The field equals `value`.
    Match {
        /// Where in the payload.
        key: KeyPath,
        /// The JSON value.
        value: Value,
    },
    /// The field equals one of `values`.
    In {
        /// Where in the payload.
        key: KeyPath,
        /// The candidates.
        values: Vec<Value>,
    },
    /// The field is a number within the bounds.
    Range {
        /// Where in the payload.
        key: KeyPath,
        /// The bounds, at least one set.
        bounds: RangeBounds,
    },
    /// A sub-filter.
    Nested(Filter),
}

/// Numeric bounds; `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RangeBounds {
    /// Greater than.
    pub gt: Option<f64>,
    /// Greater than or equal.
    pub gte: Option<f64>,
    /// Less than.
    pub lt: Option<f64>,
    /// Less than or equal.
    pub lte: Option<f64>,
}

impl RangeBounds {
    /// Checks that at least one bound is set and every bound is finite; the error says why.
    pub fn check(&self) -> Result<(), String> {
        let bounds = [self.gt, self.gte, self.lt, self.lte];
        if bounds.iter().all(Option::is_none) {
            return Err("needs at least one of `gt`, `gte`, `lt` and `lte`".to_owned());
        }
        if bounds.iter().flatten().any(|bound| !bound.is_finite()) {
            return Err("bounds must be finite numbers".to_owned());
        }
        Ok(())
    }

    fn contains(&self, number: f64) -> bool {
        self.gt.is_none_or(|bound| number > bound)
            && self.gte.is_none_or(|bound| number >= bound)
            && self.lt.is_none_or(|bound| number < bound)
            && self.lte.is_none_or(|bound| number <= bound)
    }
}

/// A dotted path into a payload, split once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyPath {
    text: String,
    segments: Vec<String>,
}

impl KeyPath {
    /// Parses `a.b.c`; empty segments (`a..b`, `.a`) and over-long paths are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_KEY_BYTES {
            return Err(format!("must be 1 to {MAX_KEY_BYTES} bytes"));
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err("a dotted path has no empty parts".to_owned());
        }
        Ok(Self { text: text.to_owned(), segments })
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for KeyPath {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<KeyPath> for String {
    fn from(path: KeyPath) -> Self {
        path.text
    }
}

impl Filter {
    /// Whether a point with `payload` matches.
    pub fn matches(&self, payload: Option<&Map<String, Value>>) -> bool {
        if !self.must.iter().all(|condition| condition.holds(payload)) {
            return false;
        }
        if !self.should.is_empty() && !self.should.iter().any(|condition| condition.holds(payload)) {
            return false;
        }
        !self.must_not.iter().any(|condition| condition.holds(payload))
    }

    /// Whether the filter has no conditions at all (it matches every point).
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Whether this filter or one nested in it at any depth holds no condition (and so matches
    /// every point, which a delete refuses).
    pub fn has_empty_part(&self) -> bool {
        if self.is_empty() {
            return true;
        }
        for condition in self.must.iter().chain(&self.should).chain(&self.must_not) {
            if let Condition::Nested(nested) = condition
                && nested.has_empty_part()
            {
                return true;
            }
        }
        false
    }

    /// How deeply filters nest inside this one (1 for a filter without nested filters).
    pub fn depth(&self) -> usize {
        let nested =
            self.must.iter().chain(&self.should).chain(&self.must_not).map(|condition| match condition {
                Condition::Nested(filter) => filter.depth(),
                _ => 0,
            });
        1 + nested.max().unwrap_or(0)
    }
}

impl Condition {
    fn holds(&self, payload: Option<&Map<String, Value>>) -> bool {
        match self {
            Self::Nested(filter) => filter.matches(payload),
            Self::Match { key, value } => {
                any_value_at(payload, &key.segments, &mut |candidate| json_equal(candidate, value))
            }
            Self::In { key, values } => any_value_at(payload, &key.segments, &mut |candidate| {
                values.iter().any(|value| json_equal(candidate, value))
            }),
            Self::Range { key, bounds } => any_value_at(payload, &key.segments, &mut |candidate| {
                candidate.as_f64().is_some_and(|number| bounds.contains(number))
            }),
        }
    }
}

/// Calls `test` on every value the path reaches (see the module docs for lists) until one passes.
fn any_value_at(
    payload: Option<&Map<String, Value>>,
    segments: &[String],
    test: &mut dyn FnMut(&Value) -> bool,
) -> bool {
    let Some(payload) = payload else { return false };
    let Some((first, rest)) = segments.split_first() else { return false };
    payload.get(first).is_some_and(|value| any_in_value(value, rest, test))
}

fn any_in_value(value: &Value, segments: &[String], test: &mut dyn FnMut(&Value) -> bool) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        if test(value) {
            return true;
        }
        return match value {
            Value::Array(items) => items.iter().any(&mut *test),
            _ => false,
        };
    };
    match value {
        Value::Object(fields) => fields.get(first).is_some_and(|inner| any_in_value(inner, rest, test)),
        Value::Array(items) => items.iter().any(|item| any_in_value(item, segments, test)),
        _ => false,
    }
}

/// Numbers by value: exactly when both are integers (an f64 cannot tell 2^53 from 2^53 + 1),
/// as f64 otherwise.
fn numbers_equal(left: &serde_json::Number, right: &serde_json::Number) -> bool {
    if let (Some(left), Some(right)) = (left.as_i64(), right.as_i64()) {
        return left == right;
    }
    if let (Some(left), Some(right)) = (left.as_u64(), right.as_u64()) {
        return left == right;
    }
    let is_integer = |number: &serde_json::Number| number.is_i64() || number.is_u64();
    if is_integer(left) && is_integer(right) {
        // One is negative, the other above i64::MAX.
        return false;
    }
    left.as_f64() == right.as_f64()
}

/// JSON equality with numbers compared by value.
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => numbers_equal(left, right),
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(left, right)| json_equal(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(name, value)| right.get(name).is_some_and(|other| json_equal(value, other)))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;

    use super::*;

    fn key(text: &str) -> KeyPath {
        KeyPath::parse(text).unwrap()
    }

    fn payload(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn integers_compare_exactly_and_mixed_numbers_as_floats() {
        let big = json!(9_007_199_254_740_993_u64);
        assert!(!json_equal(&big, &json!(9_007_199_254_740_992_u64)), "2^53 + 1 is not 2^53");
        assert!(json_equal(&big, &json!(9_007_199_254_740_993_u64)));
        assert!(!json_equal(&json!(-1), &json!(u64::MAX)));
        assert!(json_equal(&json!(3), &json!(3.0)));
        assert!(!json_equal(&json!(3), &json!(3.5)));
    }

    #[test]
    fn empty_parts_are_found_at_any_depth() {
        let leaf = Condition::Match { key: KeyPath::parse("a").unwrap(), value: json!(1) };
        let nested_empty = Filter {
            must: vec![leaf.clone()],
            should: vec![Condition::Nested(Filter {
                must_not: vec![Condition::Nested(Filter::default())],
                ..Filter::default()
            })],
            ..Filter::default()
        };
        assert!(nested_empty.has_empty_part());
        assert!(Filter::default().has_empty_part());
        let whole = Filter {
            must: vec![Condition::Nested(Filter { must: vec![leaf], ..Filter::default() })],
            ..Filter::default()
        };
        assert!(!whole.has_empty_part());
    }

    #[test]
    fn conditions_over_dotted_paths_and_lists() {
        let doc = payload(json!({
            "lang": "en", "year": 2004, "score": 0.5, "draft": false,
            "author": {"name": "ada", "tags": ["x", "y"]},
            "refs": [{"id": 1}, {"id": 2}],
        }));
        let holds =
            |condition: Condition| Filter { must: vec![condition], ..Filter::default() }.matches(Some(&doc));
        assert!(holds(Condition::Match { key: key("lang"), value: json!("en") }));
        assert!(!holds(Condition::Match { key: key("lang"), value: json!("de") }));
        assert!(holds(Condition::Match { key: key("year"), value: json!(2004.0) }));
        assert!(holds(Condition::Match { key: key("author.name"), value: json!("ada") }));
        assert!(holds(Condition::Match { key: key("author.tags"), value: json!("y") }));
        assert!(holds(Condition::Match { key: key("author.tags"), value: json!(["x", "y"]) }));
        assert!(holds(Condition::Match { key: key("refs.id"), value: json!(2) }));
        assert!(!holds(Condition::Match { key: key("missing"), value: json!(null) }));
        assert!(holds(Condition::In { key: key("lang"), values: vec![json!("de"), json!("en")] }));
        assert!(!holds(Condition::In { key: key("lang"), values: vec![] }));
        let range = |gte: Option<f64>, lt: Option<f64>| RangeBounds { gte, lt, ..RangeBounds::default() };
        assert!(holds(Condition::Range { key: key("year"), bounds: range(Some(2000.0), Some(2010.0)) }));
        assert!(!holds(Condition::Range { key: key("year"), bounds: range(Some(2005.0), None) }));
        assert!(!holds(Condition::Range { key: key("lang"), bounds: range(Some(0.0), None) }));
        assert!(holds(Condition::Range {
            key: key("score"),
            bounds: RangeBounds { gt: Some(0.25), lte: Some(0.5), ..RangeBounds::default() }
        }));
    }

    #[test]
    fn must_should_must_not_and_nesting() {
        let en = payload(json!({"lang": "en", "year": 2001}));
        let de = payload(json!({"lang": "de", "year": 2001}));
        let lang = |text: &str| Condition::Match { key: key("lang"), value: json!(text) };
        let not_de = Filter { must_not: vec![lang("de")], ..Filter::default() };
        assert!(not_de.matches(Some(&en)));
        assert!(!not_de.matches(Some(&de)));
        assert!(not_de.matches(None), "a point without payload has no `lang`");
        let either = Filter {
            should: vec![
                Condition::Nested(Filter { must: vec![lang("en")], ..Filter::default() }),
                lang("fr"),
            ],
            ..Filter::default()
        };
        assert!(either.matches(Some(&en)));
        assert!(!either.matches(Some(&de)));
        assert!(Filter::default().matches(None));
        assert_eq!(either.depth(), 2);
    }

    #[test]
    fn bad_paths_and_bounds_are_refused() {
        assert!(KeyPath::parse("").is_err());
        assert!(KeyPath::parse("a..b").is_err());
        assert!(KeyPath::parse(".a").is_err());
        assert!(KeyPath::parse(&"a".repeat(257)).is_err());
        assert!(RangeBounds::default().check().is_err());
        assert!(RangeBounds { gt: Some(f64::NAN), ..RangeBounds::default() }.check().is_err());
        assert!(RangeBounds { lt: Some(1.0), ..RangeBounds::default() }.check().is_ok());
    }

    #[test]
    fn filters_round_trip_through_json() {
        let filter = Filter {
            must: vec![Condition::Range {
                key: key("a.b"),
                bounds: RangeBounds { gte: Some(1.0), ..RangeBounds::default() },
            }],
            should: vec![Condition::In { key: key("c"), values: vec![json!(1), json!("x")] }],
            must_not: vec![Condition::Nested(Filter {
                must: vec![Condition::Match { key: key("d"), value: json!({"e": [1]}) }],
                ..Filter::default()
            })],
        };
        let text = serde_json::to_string(&filter).unwrap();
        assert_eq!(serde_json::from_str::<Filter>(&text).unwrap(), filter);
    }
}
