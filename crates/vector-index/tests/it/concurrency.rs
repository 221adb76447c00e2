//! Property test: threads interleaving upserts, removes, searches (and compactions) never see a
//! removed slot and never miss an exact match.
//!
//! Each thread owns a disjoint set of slots, so it knows their state exactly while others race on
//! theirs: a slot it removed must not come back from any search, and a query equal to a vector it
//! stored must come back at rank 1 with distance 0 (or behind other slots holding the same vector,
//! all at distance 0).

use std::collections::HashMap;

use proptest::prelude::*;
use sutazai_vector_index::{Index, IndexConfig, IndexOptions, Metric, SearchParams, SlotId};

use crate::common::Rng;

const THREADS: usize = 3;
const SLOTS_PER_THREAD: u32 = 24;
const DIMENSION: usize = 8;
/// Points loaded before the threads start, in slots no thread owns, so graphs have some depth.
const BACKGROUND: u32 = 400;
const BACKGROUND_FIRST_SLOT: u32 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    Upsert { slot: u32, seed: u64 },
    Remove { slot: u32 },
    SearchOwn { slot: u32 },
    SearchRandom { seed: u64 },
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS_PER_THREAD;
    prop_oneof![
        5 => (slot.clone(), any::<u64>()).prop_map(|(slot, seed)| Op::Upsert { slot, seed }),
        2 => slot.clone().prop_map(|slot| Op::Remove { slot }),
        4 => slot.prop_map(|slot| Op::SearchOwn { slot }),
        2 => any::<u64>().prop_map(|seed| Op::SearchRandom { seed }),
        1 => Just(Op::Compact),
    ]
}

/// Flat; IVF with one probe (exact matches live in the query's own list); HNSW with defaults; and
/// HNSW with short link lists (constant pruning) but a wide search. A narrow search (ef 16) on a
/// weak graph misses a stored vector now and then even single-threaded, which is the
/// approximation HNSW makes, not a consistency bug, so it is not what this property checks.
fn config() -> impl Strategy<Value = IndexConfig> {
    prop_oneof![
        Just(IndexConfig::Flat),
        Just(IndexConfig::Ivf { nlist: 8, nprobe: 1 }),
        Just(IndexConfig::Hnsw { m: 0, ef_construction: 0, ef_search: 0 }),
        Just(IndexConfig::Hnsw { m: 6, ef_construction: 40, ef_search: 128 }),
    ]
}

/// A vector from `seed`; one seed in eight gives the same shared vector, so exact ties between
/// slots of different threads happen.
fn vector(seed: u64) -> Vec<f32> {
    if seed.is_multiple_of(8) {
        return vec![0.5; DIMENSION];
    }
    let mut rng = Rng::new(seed);
    (0..DIMENSION).map(|_| rng.gaussian()).collect()
}

fn own_slot(thread: usize, slot: u32) -> SlotId {
    slot * THREADS as u32 + thread as u32
}

fn owner(slot: SlotId) -> Option<usize> {
    (slot < SLOTS_PER_THREAD * THREADS as u32).then_some(slot as usize % THREADS)
}

/// Runs one thread's operations, checking every answer against what it knows of its own slots.
fn run_thread(index: &Index, thread: usize, ops: &[Op]) -> Result<HashMap<SlotId, Vec<f32>>, String> {
    let mut mine: HashMap<SlotId, Vec<f32>> = HashMap::new();
    let params = SearchParams::top(10);
    let check_no_removed_own =
        |hits: &[sutazai_vector_index::Hit], mine: &HashMap<SlotId, Vec<f32>>| -> Result<(), String> {
            for hit in hits {
                if owner(hit.slot) == Some(thread) && !mine.contains_key(&hit.slot) {
                    return Err(format!("thread {thread}: removed slot {} returned", hit.slot));
                }
            }
            Ok(())
        };
    for op in ops {
        match op {
            Op::Upsert { slot, seed } => {
                let slot = own_slot(thread, *slot);
                let stored = vector(*seed);
                index.upsert(slot, &stored).map_err(|error| error.to_string())?;
                mine.insert(slot, stored);
            }
            Op::Remove { slot } => {
                let slot = own_slot(thread, *slot);
                let was_live = index.remove(slot);
                if was_live != mine.remove(&slot).is_some() {
                    return Err(format!("thread {thread}: remove({slot}) returned {was_live}"));
                }
            }
            Op::SearchOwn { slot } => {
                let slot = own_slot(thread, *slot);
                let Some(stored) = mine.get(&slot) else {
                    continue;
                };
                let hits = index.search(stored, &params, None).map_err(|error| error.to_string())?;
                check_no_removed_own(&hits, &mine)?;
                let found = hits.iter().any(|hit| hit.slot == slot);
                let all_ties = hits.len() == params.k && hits.iter().all(|hit| hit.score == 0.0);
                if hits.first().map(|hit| hit.score) != Some(0.0) || !(found || all_ties) {
                    return Err(format!("thread {thread}: exact match for slot {slot} missed: {hits:?}"));
                }
                if index.get(slot).as_ref() != Some(stored) {
                    return Err(format!("thread {thread}: get({slot}) differs"));
                }
            }
            Op::SearchRandom { seed } => {
                let hits = index.search(&vector(*seed), &params, None).map_err(|error| error.to_string())?;
                check_no_removed_own(&hits, &mine)?;
            }
            Op::Compact => index.compact(),
        }
    }
    Ok(mine)
}

proptest! {
    // 48 cases by default; PROPTEST_CASES raises it for a longer soak
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn concurrent_mutation_never_returns_removed_slots_nor_misses_exact_matches(
        config in config(),
        ops in proptest::collection::vec(proptest::collection::vec(op(), 1..80), THREADS),
    ) {
        let options = IndexOptions {
            exact_search_below: 0,
            ivf_train_threshold: Some(BACKGROUND as usize + 20),
            ..IndexOptions::default()
        };
        let index = Index::with_options(DIMENSION, Metric::L2, config.clone(), options).expect("index");
        let background: Vec<Vec<f32>> = (0..BACKGROUND).map(|seed| vector(u64::from(seed) * 8 + 1_000_001)).collect();
        let items: Vec<(SlotId, &[f32])> = (BACKGROUND_FIRST_SLOT..).zip(background.iter().map(Vec::as_slice)).collect();
        index.upsert_batch(&items).expect("background");

        let outcomes: Vec<Result<HashMap<SlotId, Vec<f32>>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ops
                .iter()
                .enumerate()
                .map(|(thread, thread_ops)| {
                    let index = &index;
                    scope.spawn(move || run_thread(index, thread, thread_ops))
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("thread panicked")).collect()
        });
        let mut live = HashMap::new();
        for outcome in outcomes {
            let mine = outcome.map_err(|failure| TestCaseError::fail(format!("{config:?}: {failure}")))?;
            live.extend(mine);
        }

        // quiescent: the final state is exactly what the threads left
        prop_assert_eq!(index.len(), live.len() + BACKGROUND as usize);
        for slot in 0..SLOTS_PER_THREAD * THREADS as u32 {
            let stored = index.get(slot);
            prop_assert_eq!(stored.as_ref(), live.get(&slot), "slot {}", slot);
        }
        let everything = SearchParams::top(index.len());
        let hits = index.search(&vector(3), &everything, None).expect("search");
        for hit in &hits {
            if owner(hit.slot).is_some() {
                prop_assert!(live.contains_key(&hit.slot), "{:?}: removed slot {} returned", config, hit.slot);
            }
        }
    }
}
