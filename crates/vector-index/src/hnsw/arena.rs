//! Append-only segmented storage: element `i` never moves once allocated, so readers hold plain
//! references while writers append, without a lock around the whole structure.
//!
//! Segment `s` holds `FIRST_SEGMENT << s` elements and is allocated on first touch; 23 segments
//! cover every `u32` index. An element's address is a segment lookup plus an offset.

use std::sync::OnceLock;

const FIRST_SEGMENT_BITS: u32 = 10;
const SEGMENTS: usize = 23;

#[derive(Debug)]
pub(crate) struct Segmented<T> {
    segments: [OnceLock<Box<[T]>>; SEGMENTS],
}

impl<T> Default for Segmented<T> {
    fn default() -> Self {
        Self { segments: std::array::from_fn(|_| OnceLock::new()) }
    }
}

#[inline(always)]
fn locate(index: u32) -> (usize, usize) {
    let biased = u64::from(index) + (1u64 << FIRST_SEGMENT_BITS);
    let segment = (63 - biased.leading_zeros()) - FIRST_SEGMENT_BITS;
    let offset = biased - (1u64 << (segment + FIRST_SEGMENT_BITS));
    (segment as usize, offset as usize)
}

impl<T: Default> Segmented<T> {
    /// The element at `index`, or `None` if its segment was never allocated.
    #[inline(always)]
    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        let (segment, offset) = locate(index);
        self.segments[segment].get().map(|elements| &elements[offset])
    }

    /// The element at `index`, allocating its segment (default elements) if needed.
    pub(crate) fn get_or_allocate(&self, index: u32) -> &T {
        let (segment, offset) = locate(index);
        let elements = self.segments[segment].get_or_init(|| {
            let length = 1usize << (segment as u32 + FIRST_SEGMENT_BITS);
            (0..length).map(|_| T::default()).collect()
        });
        &elements[offset]
    }

    /// Bytes of the allocated segments (element headers only, not what elements point to).
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.segments
            .iter()
            .filter_map(OnceLock::get)
            .map(|elements| elements.len() * std::mem::size_of::<T>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn segments_tile_the_u32_range() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1023), (0, 1023));
        assert_eq!(locate(1024), (1, 0));
        assert_eq!(locate(3071), (1, 2047));
        assert_eq!(locate(3072), (2, 0));
        assert_eq!(locate(u32::MAX).0, SEGMENTS - 1);
    }

    #[test]
    fn elements_are_stable_and_lazily_allocated() {
        let storage: Segmented<AtomicU32> = Segmented::default();
        assert!(storage.get(5000).is_none());
        storage.get_or_allocate(5000).store(7, Ordering::Relaxed);
        assert_eq!(storage.get(5000).map(|value| value.load(Ordering::Relaxed)), Some(7));
        assert!(storage.get(0).is_none(), "only the touched segment is allocated");
    }
}
