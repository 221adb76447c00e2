//! The point table: which caller id lives in which engine slot, with its payload (and, for cosine
//! collections, the vector as given, since the engine keeps only the normalized one). Slots are
//! dense and freed slots are reused, so the engine's arrays stay compact.

use std::collections::HashMap;
use std::mem::size_of;

use serde_json::{Map, Value};
use sutazai_vector_index::SlotId;

use super::point_id::PointId;

/// Bookkeeping bytes per hash-map entry beyond key and value (control bytes, load factor).
const HASH_ENTRY_OVERHEAD_BYTES: usize = 16;

/// A point to store, as a write carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPoint {
    /// The caller's id.
    pub id: PointId,
    /// Exactly the collection's dimension of finite components.
    pub vector: Vec<f32>,
    /// The JSON payload, if any.
    pub payload: Option<Map<String, Value>>,
}

/// One stored point, minus its vector (which the engine holds).
#[derive(Debug, Clone)]
pub struct PointEntry {
    /// The caller's id.
    pub id: PointId,
    /// The JSON payload, if one was given.
    pub payload: Option<Map<String, Value>>,
    /// The vector exactly as given, kept only where the engine's copy differs (cosine).
    pub original: Option<Box<[f32]>>,
}

/// Ids, slots and payloads of one collection.
#[derive(Debug, Default)]
pub struct PointTable {
    slots_by_id: HashMap<PointId, SlotId>,
    entries: Vec<Option<PointEntry>>,
    free_slots: Vec<SlotId>,
    /// Estimated heap bytes of ids, payloads and kept vectors.
    heap_bytes: usize,
}

impl PointTable {
    /// Live points.
    pub fn len(&self) -> usize {
        self.slots_by_id.len()
    }

    /// Whether no point is stored.
    pub fn is_empty(&self) -> bool {
        self.slots_by_id.is_empty()
    }

    /// The slot of `id`.
    pub fn slot_of(&self, id: &PointId) -> Option<SlotId> {
        self.slots_by_id.get(id).copied()
    }

    /// The point in `slot`.
    pub fn entry(&self, slot: SlotId) -> Option<&PointEntry> {
        self.entries.get(usize::try_from(slot).ok()?)?.as_ref()
    }

    /// Every live point with its slot, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (SlotId, &PointEntry)> {
        self.entries.iter().enumerate().filter_map(|(position, entry)| {
            let slot = SlotId::try_from(position).ok()?;
            Some((slot, entry.as_ref()?))
        })
    }

    /// Stores `entry` under its id: in the id's current slot when it exists (returned with
    /// `false`), else in a free or new slot (returned with `true`). `None` when the slot space is
    /// exhausted.
    pub fn put(&mut self, entry: PointEntry) -> Option<(SlotId, bool)> {
        if let Some(slot) = self.slot_of(&entry.id) {
            let position = usize::try_from(slot).ok()?;
            let added = entry_heap_bytes(&entry);
            if let Some(previous) = self.entries.get_mut(position).and_then(Option::take) {
                self.heap_bytes = self.heap_bytes.saturating_sub(entry_heap_bytes(&previous));
            }
            self.heap_bytes += added;
            *self.entries.get_mut(position)? = Some(entry);
            return Some((slot, false));
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            // The engine reserves SlotId::MAX.
            None => SlotId::try_from(self.entries.len()).ok().filter(|slot| *slot < SlotId::MAX)?,
        };
        let position = usize::try_from(slot).ok()?;
        if position == self.entries.len() {
            self.entries.push(None);
        }
        self.heap_bytes += entry_heap_bytes(&entry) + entry.id.heap_bytes();
        self.slots_by_id.insert(entry.id.clone(), slot);
        *self.entries.get_mut(position)? = Some(entry);
        Some((slot, true))
    }

    /// Removes `id`; returns its former slot, which becomes free for reuse.
    pub fn remove(&mut self, id: &PointId) -> Option<SlotId> {
        let slot = self.slots_by_id.remove(id)?;
        let position = usize::try_from(slot).ok()?;
        if let Some(entry) = self.entries.get_mut(position).and_then(Option::take) {
            self.heap_bytes =
                self.heap_bytes.saturating_sub(entry_heap_bytes(&entry) + entry.id.heap_bytes());
        }
        self.free_slots.push(slot);
        Some(slot)
    }

    /// Estimated memory of the table itself: slot array, id map and the heap data of ids,
    /// payloads and kept vectors.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Option<PointEntry>>()
            + self.slots_by_id.capacity()
                * (size_of::<PointId>() + size_of::<SlotId>() + HASH_ENTRY_OVERHEAD_BYTES)
            + self.free_slots.capacity() * size_of::<SlotId>()
            + self.heap_bytes
    }
}

/// Heap bytes of an entry's payload and kept vector (the id is counted once, by the caller).
fn entry_heap_bytes(entry: &PointEntry) -> usize {
    let payload = entry.payload.as_ref().map_or(0, map_heap_bytes);
    let original = entry.original.as_ref().map_or(0, |vector| vector.len() * size_of::<f32>());
    payload + original
}

fn map_heap_bytes(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(name, value)| {
            name.len()
                + size_of::<String>()
                + size_of::<Value>()
                + HASH_ENTRY_OVERHEAD_BYTES
                + value_heap_bytes(value)
        })
        .sum()
}

/// Heap bytes of a JSON value beyond the `Value` itself: an estimate, not an allocator count.
fn value_heap_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(text) => text.len(),
        Value::Array(items) => items.iter().map(|item| size_of::<Value>() + value_heap_bytes(item)).sum(),
        Value::Object(map) => map_heap_bytes(map),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use serde_json::json;

    use super::*;

    fn entry(id: PointId, payload: Option<Value>) -> PointEntry {
        let payload = payload.map(|value| match value {
            Value::Object(map) => map,
            _ => Map::new(),
        });
        PointEntry { id, payload, original: None }
    }

    #[test]
    fn slots_are_dense_and_reused() {
        let mut table = PointTable::default();
        assert_eq!(table.put(entry(PointId::Num(1), None)), Some((0, true)));
        assert_eq!(table.put(entry(PointId::Str("1".into()), None)), Some((1, true)));
        assert_eq!(table.put(entry(PointId::Num(2), None)), Some((2, true)));
        assert_eq!(table.put(entry(PointId::Num(1), Some(json!({"a": 1})))), Some((0, false)));
        assert_eq!(table.len(), 3);
        assert_eq!(table.remove(&PointId::Str("1".into())), Some(1));
        assert_eq!(table.remove(&PointId::Str("1".into())), None);
        assert_eq!(table.put(entry(PointId::Num(9), None)), Some((1, true)));
        assert_eq!(table.entry(1).map(|found| found.id.clone()), Some(PointId::Num(9)));
        assert_eq!(table.iter().map(|(slot, _)| slot).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn memory_estimate_follows_payloads() {
        let mut table = PointTable::default();
        table.put(entry(PointId::Num(1), None));
        let small = table.memory_bytes();
        table.put(entry(PointId::Num(1), Some(json!({"text": "x".repeat(10_000)}))));
        let large = table.memory_bytes();
        assert!(large >= small + 10_000, "{small} -> {large}");
        table.remove(&PointId::Num(1));
        assert!(table.memory_bytes() < large - 10_000);
    }
}
