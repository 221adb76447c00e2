//! A small scoped worker pool for the hashing passes: on two cores, reading and hashing files on
//! a couple of threads overlaps one file's I/O with another's hashing. Work not started before
//! the deadline is left undone and reported as such.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Worker threads for a scan: the cores, at most 4 (more only queue on the disk).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1).clamp(1, 4)
}

/// `work` applied to each item on up to `workers` threads, in item order; `None` for an item not
/// started before `deadline`.
pub fn map_until<T, R, F>(items: &[T], workers: usize, deadline: Instant, work: F) -> Vec<Option<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let run = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= items.len() || Instant::now() >= deadline {
                return done;
            }
            done.push((index, work(&items[index])));
        }
    };
    let workers = workers.clamp(1, items.len().max(1));
    let finished: Vec<Vec<(usize, R)>> = if workers == 1 {
        vec![run()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(run)).collect();
            handles.into_iter().filter_map(|handle| handle.join().ok()).collect()
        })
    };
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (index, result) in finished.into_iter().flatten() {
        results[index] = Some(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn maps_in_order_and_stops_at_the_deadline() {
        let items: Vec<u32> = (0..100).collect();
        let later = Instant::now() + Duration::from_secs(60);
        let doubled = map_until(&items, 3, later, |item| item * 2);
        assert_eq!(doubled, items.iter().map(|item| Some(item * 2)).collect::<Vec<_>>());
        let none = map_until(&items, 3, Instant::now(), |item| item * 2);
        assert!(none.iter().all(Option::is_none));
    }
}
