//! Per-thread "visited" marks for graph searches: one `u16` epoch per node, so starting a search
//! costs an increment instead of clearing a set (hnswlib's visited-list pool, minus the pool lock).

use std::cell::RefCell;

#[derive(Debug, Default)]
pub(crate) struct VisitedSet {
    marks: Vec<u16>,
    epoch: u16,
}

impl VisitedSet {
    /// Forgets every mark; `capacity` is a size hint (marks grow on demand for nodes added meanwhile).
    pub(crate) fn reset(&mut self, capacity: usize) {
        if self.marks.len() < capacity {
            self.marks.resize(capacity, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Pulls `node`'s mark into cache ahead of `insert`.
    #[inline(always)]
    pub(crate) fn prefetch(&self, node: u32) {
        if let Some(mark) = self.marks.get(node as usize) {
            crate::simd::prefetch(mark);
        }
    }

    /// Marks `node`; returns whether it was unmarked.
    #[inline(always)]
    pub(crate) fn insert(&mut self, node: u32) -> bool {
        let index = node as usize;
        if index >= self.marks.len() {
            self.marks.resize((index + 1).next_power_of_two(), 0);
        }
        let mark = &mut self.marks[index];
        if *mark == self.epoch {
            return false;
        }
        *mark = self.epoch;
        true
    }
}

thread_local! {
    static VISITED: RefCell<VisitedSet> = RefCell::new(VisitedSet::default());
}

/// Runs `work` with this thread's visited set, reset for `capacity` nodes. A nested call (a
/// filter that searches again, say) gets a fresh set instead of the busy one.
pub(crate) fn with_visited<R>(capacity: usize, work: impl FnOnce(&mut VisitedSet) -> R) -> R {
    VISITED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut visited) => {
            visited.reset(capacity);
            work(&mut visited)
        }
        Err(_) => {
            let mut visited = VisitedSet::default();
            visited.reset(capacity);
            work(&mut visited)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_forgets_marks_across_epoch_wraparound() {
        let mut visited = VisitedSet::default();
        for _ in 0..70_000 {
            visited.reset(4);
            assert!(visited.insert(3));
            assert!(!visited.insert(3));
        }
        assert!(visited.insert(100), "grows for nodes past the capacity hint");
    }
}
