//! Message headers: the W3C trace context and the attempt counter, read and written through
//! AMQP field tables.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector};

/// Header carrying the 1-based delivery attempt of a message, counted across delayed retries.
pub const ATTEMPT_HEADER: &str = "x-attempt";

/// Writes trace context into a field table.
#[derive(Debug)]
pub struct FieldTableInjector<'a>(pub &'a mut FieldTable);

impl Injector for FieldTableInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
    }
}

/// Reads trace context from a field table.
#[derive(Debug)]
pub struct FieldTableExtractor<'a>(pub &'a FieldTable);

impl Extractor for FieldTableExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key) {
            Some(AMQPValue::LongString(value)) => std::str::from_utf8(value.as_bytes()).ok(),
            Some(AMQPValue::ShortString(value)) => Some(value.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|key| key.as_str()).collect()
    }
}

/// Header carrying the routing key a message was first published with; a delayed retry comes
/// back through the default exchange with the queue's name as its key.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-original-routing-key";

/// The original routing key of a retried message.
pub fn original_routing_key(headers: Option<&FieldTable>) -> Option<String> {
    match headers?.inner().get(ORIGINAL_ROUTING_KEY_HEADER)? {
        AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

/// The attempt number in `headers`, 1 when absent or malformed.
pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    let value = headers.and_then(|table| table.inner().get(ATTEMPT_HEADER));
    let number = match value {
        Some(AMQPValue::LongUInt(number)) => i64::from(*number),
        Some(AMQPValue::LongInt(number)) => i64::from(*number),
        Some(AMQPValue::LongLongInt(number)) => *number,
        Some(AMQPValue::ShortShortUInt(number)) => i64::from(*number),
        Some(AMQPValue::ShortUInt(number)) => i64::from(*number),
        _ => 1,
    };
    u32::try_from(number).ok().filter(|attempt| *attempt >= 1).unwrap_or(1)
}

/// Sets the attempt number.
pub fn set_attempt(headers: &mut FieldTable, attempt: u32) {
    headers.insert(ShortString::from(ATTEMPT_HEADER), AMQPValue::LongUInt(attempt));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_defaults_to_one() {
        assert_eq!(attempt(None), 1);
        let mut table = FieldTable::default();
        assert_eq!(attempt(Some(&table)), 1);
        set_attempt(&mut table, 3);
        assert_eq!(attempt(Some(&table)), 3);
        table.insert(ShortString::from(ATTEMPT_HEADER), AMQPValue::LongInt(-2));
        assert_eq!(attempt(Some(&table)), 1);
    }

    #[test]
    fn trace_headers_round_trip() {
        let mut table = FieldTable::default();
        FieldTableInjector(&mut table).set("traceparent", "00-abc-def-01".to_owned());
        assert_eq!(FieldTableExtractor(&table).get("traceparent"), Some("00-abc-def-01"));
    }
}
