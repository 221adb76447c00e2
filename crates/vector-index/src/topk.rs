//! Ranking: the (distance, slot) order every index returns results in, and a bounded collector of
//! the k best.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::SlotId;

/// A candidate result: internal distance (smaller is better) and slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Neighbor {
    pub(crate) distance: f32,
    pub(crate) slot: SlotId,
}

impl Neighbor {
    /// Whether `self` ranks before `other`: smaller distance, then smaller slot.
    ///
    /// Uses IEEE comparisons, so `-0.0` ties with `0.0`, and a NaN distance (only reachable through
    /// overflowing sums like `inf - inf`) never ranks before anything and is never admitted.
    #[inline(always)]
    pub(crate) fn ranks_before(self, other: Neighbor) -> bool {
        self.distance < other.distance || (self.distance == other.distance && self.slot < other.slot)
    }
}

impl Eq for Neighbor {}

impl Ord for Neighbor {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.ranks_before(*other) {
            Ordering::Less
        } else if other.ranks_before(*self) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }
}

impl PartialOrd for Neighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` best neighbours seen so far. A max-heap on (distance, slot), so the worst kept result
/// is on top and most candidates are rejected by one comparison with it.
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Neighbor>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k.min(4096) + 1) }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// Offers a candidate; kept if fewer than `k` are held or it ranks before the worst one held.
    #[inline]
    pub(crate) fn push(&mut self, candidate: Neighbor) {
        if self.heap.len() < self.k {
            if !candidate.distance.is_nan() {
                self.heap.push(candidate);
            }
            return;
        }
        if let Some(mut worst) = self.heap.peek_mut()
            && candidate.ranks_before(*worst)
        {
            *worst = candidate;
        }
    }

    /// Distance of the worst result held once full, `+inf` before: a candidate farther than this
    /// cannot enter, so scans test it inline before calling `push`.
    #[inline(always)]
    pub(crate) fn bound(&self) -> f32 {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.k => worst.distance,
            _ => f32::INFINITY,
        }
    }

    /// Adds everything `other` holds (used to merge per-chunk results of a parallel scan).
    pub(crate) fn merge(&mut self, other: TopK) {
        for candidate in other.heap {
            self.push(candidate);
        }
    }

    /// The results, best first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_smallest_with_ties_by_slot() {
        let mut top = TopK::new(3);
        for (distance, slot) in [(5.0, 1), (1.0, 9), (1.0, 2), (3.0, 4), (1.0, 7), (0.5, 8)] {
            top.push(Neighbor { distance, slot });
        }
        let kept: Vec<(f32, u32)> =
            top.into_sorted().iter().map(|neighbor| (neighbor.distance, neighbor.slot)).collect();
        assert_eq!(kept, vec![(0.5, 8), (1.0, 2), (1.0, 7)]);
    }

    #[test]
    fn never_admits_nan() {
        let mut top = TopK::new(2);
        top.push(Neighbor { distance: f32::NAN, slot: 1 });
        assert_eq!(top.len(), 0);
    }
}
