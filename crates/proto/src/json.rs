//! Conversions between JSON (`serde_json::Value`) and the protobuf `google.protobuf.Value` /
//! `Struct` that carry free-form payloads in the contracts (task payloads and results, vector
//! payloads). Lossless except that protobuf numbers are `f64`: integers beyond 2^53 lose precision,
//! as they would in JavaScript.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// JSON → protobuf.
pub fn to_proto_value(json: &serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(*flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Kind::StringValue(text.clone()),
        serde_json::Value::Array(items) => {
            Kind::ListValue(ListValue { values: items.iter().map(to_proto_value).collect() })
        }
        serde_json::Value::Object(map) => Kind::StructValue(to_proto_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// JSON object → protobuf `Struct`.
pub fn to_proto_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct { fields: map.iter().map(|(key, value)| (key.clone(), to_proto_value(value))).collect() }
}

/// protobuf → JSON. Whole numbers that fit come back as JSON integers.
pub fn from_proto_value(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(flag)) => serde_json::Value::Bool(*flag),
        Some(Kind::NumberValue(number)) => number_to_json(*number),
        Some(Kind::StringValue(text)) => serde_json::Value::String(text.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(from_proto_value).collect())
        }
        Some(Kind::StructValue(fields)) => serde_json::Value::Object(from_proto_struct(fields)),
    }
}

/// protobuf `Struct` → JSON object.
pub fn from_proto_struct(fields: &Struct) -> serde_json::Map<String, serde_json::Value> {
    fields.fields.iter().map(|(key, value)| (key.clone(), from_proto_value(value))).collect()
}

fn number_to_json(number: f64) -> serde_json::Value {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    if number.fract() == 0.0 && number.abs() <= MAX_EXACT {
        // Exact: the value is whole and within f64's integer range.
        return serde_json::Value::from(number as i64);
    }
    serde_json::Number::from_f64(number).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let json = serde_json::json!({
            "prompt": "say \"hi\"\nthen stop", "n": 3, "ratio": 0.25, "ok": true, "none": null,
            "list": [1, "two", {"three": [3.5]}]
        });
        assert_eq!(from_proto_value(&to_proto_value(&json)), json);
    }
}
