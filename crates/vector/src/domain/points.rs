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

    /// Whether `slot` holds the current point of its id: staged slots of a write in progress and
    /// freed slots are not. Searches admit only current slots, so a write becomes visible whole
    /// when [`PointTable::publish`] switches its ids over.
    pub fn is_current(&self, slot: SlotId) -> bool {
        self.entry(slot).is_some_and(|entry| self.slots_by_id.get(&entry.id) == Some(&slot))
    }

    /// Every live (current) point with its slot, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (SlotId, &PointEntry)> {
        self.entries.iter().enumerate().filter_map(|(position, entry)| {
            let slot = SlotId::try_from(position).ok()?;
            let entry = entry.as_ref()?;
            (self.slots_by_id.get(&entry.id) == Some(&slot)).then_some((slot, entry))
        })
    }

    /// Stores `entry` in a free or new slot without making it current: its id keeps pointing at
    /// its previous slot (if any) until [`PointTable::publish`]. `None` when the slot space is
    /// exhausted.
    pub fn stage(&mut self, entry: PointEntry) -> Option<SlotId> {
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
        *self.entries.get_mut(position)? = Some(entry);
        Some(slot)
    }

    /// Makes staged `slot` the current one of its id; returns the id's former slot, which is
    /// freed (the caller removes it from the engine).
    pub fn publish(&mut self, slot: SlotId) -> Option<SlotId> {
        let id = self.entry(slot)?.id.clone();
        let previous = self.slots_by_id.insert(id, slot)?;
        debug_assert_ne!(previous, slot, "a staged slot is never already current");
        self.release(previous);
        Some(previous)
    }

    /// Drops staged `slot` (a write that failed) and frees it.
    pub fn discard(&mut self, slot: SlotId) {
        debug_assert!(!self.is_current(slot), "only staged slots are discarded");
        self.release(slot);
    }

    /// Removes `id`; returns its former slot, which becomes free for reuse.
    pub fn remove(&mut self, id: &PointId) -> Option<SlotId> {
        let slot = self.slots_by_id.remove(id)?;
        self.release(slot);
        Some(slot)
    }

    fn release(&mut self, slot: SlotId) {
        let Ok(position) = usize::try_from(slot) else { return };
        if let Some(entry) = self.entries.get_mut(position).and_then(Option::take) {
            self.heap_bytes =
                self.heap_bytes.saturating_sub(entry_heap_bytes(&entry) + entry.id.heap_bytes());
            self.free_slots.push(slot);
        }
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

    fn put(table: &mut PointTable, entry: PointEntry) -> SlotId {
        let slot = table.stage(entry).unwrap();
        table.publish(slot);
        slot
    }

    #[test]
    fn slots_are_dense_and_reused() {
        let mut table = PointTable::default();
        assert_eq!(put(&mut table, entry(PointId::Num(1), None)), 0);
        assert_eq!(put(&mut table, entry(PointId::Str("1".into()), None)), 1);
        assert_eq!(put(&mut table, entry(PointId::Num(2), None)), 2);
        assert_eq!(table.len(), 3);
        assert_eq!(table.remove(&PointId::Str("1".into())), Some(1));
        assert_eq!(table.remove(&PointId::Str("1".into())), None);
        assert_eq!(put(&mut table, entry(PointId::Num(9), None)), 1);
        assert_eq!(table.entry(1).map(|found| found.id.clone()), Some(PointId::Num(9)));
        assert_eq!(table.iter().map(|(slot, _)| slot).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_replacement_is_staged_beside_the_current_point_until_published() {
        let mut table = PointTable::default();
        assert_eq!(put(&mut table, entry(PointId::Num(1), None)), 0);
        let staged = table.stage(entry(PointId::Num(1), Some(json!({"a": 1})))).unwrap();
        assert_eq!(staged, 1);
        assert!(table.is_current(0));
        assert!(!table.is_current(staged));
        assert_eq!(table.iter().map(|(slot, _)| slot).collect::<Vec<_>>(), [0]);
        assert_eq!(table.len(), 1);
        assert_eq!(table.publish(staged), Some(0));
        assert!(!table.is_current(0));
        assert!(table.is_current(staged));
        assert_eq!(table.slot_of(&PointId::Num(1)), Some(staged));
        let discarded = table.stage(entry(PointId::Num(1), None)).unwrap();
        assert_eq!(discarded, 0, "the replaced slot was freed");
        table.discard(discarded);
        assert_eq!(table.slot_of(&PointId::Num(1)), Some(staged));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn memory_estimate_follows_payloads() {
        let mut table = PointTable::default();
        put(&mut table, entry(PointId::Num(1), None));
        let small = table.memory_bytes();
        put(&mut table, entry(PointId::Num(1), Some(json!({"text": "x".repeat(10_000)}))));
        let large = table.memory_bytes();
        assert!(large >= small + 10_000, "{small} -> {large}");
        table.remove(&PointId::Num(1));
        assert!(table.memory_bytes() < large - 10_000);
    }
}
