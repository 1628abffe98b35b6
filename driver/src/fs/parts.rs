//! Multipart part layout: fixed byte ranges per part number, growing so that
//! 10,000 parts reach the 5 TiB object limit while every part but the last
//! stays at or above the 5 MiB minimum.

use crate::store::limits;

/// Fixed part ranges: `base` bytes for parts 1..=1000, doubling every 1000
/// parts (capped at 5 GiB), so 10,000 parts of an 8 MiB base reach 5 TiB.
#[derive(Debug, Clone, Copy)]
pub struct PartLayout {
    base: u64,
}

const PARTS_PER_GROUP: u32 = 1000;

impl PartLayout {
    /// A layout with parts of `base` bytes first.
    pub fn new(base: u64) -> Self {
        PartLayout { base: base.max(1) }
    }

    fn group_size(&self, g: u32) -> u64 {
        (self.base << g.min(20)).min(limits::MAX_PART_SIZE)
    }

    /// Size of part `n` (1-based).
    pub fn size_of(&self, n: u32) -> u64 {
        self.group_size((n - 1) / PARTS_PER_GROUP)
    }

    /// Byte range of part `n`.
    pub fn range(&self, n: u32) -> std::ops::Range<u64> {
        let g = (n - 1) / PARTS_PER_GROUP;
        let mut start = 0;
        for k in 0..g {
            start += PARTS_PER_GROUP as u64 * self.group_size(k);
        }
        start += ((n - 1) % PARTS_PER_GROUP) as u64 * self.group_size(g);
        start..start + self.size_of(n)
    }

    /// The part holding byte `offset`, or `None` past the 10,000th part.
    pub fn part_at(&self, offset: u64) -> Option<u32> {
        let mut start = 0;
        for g in 0..limits::MAX_PARTS / PARTS_PER_GROUP {
            let len = PARTS_PER_GROUP as u64 * self.group_size(g);
            if offset < start + len {
                let idx = (offset - start) / self.group_size(g);
                return Some(g * PARTS_PER_GROUP + idx as u32 + 1);
            }
            start += len;
        }
        None
    }

    /// Largest file size the layout supports (capped at the S3 object limit).
    pub fn max_size(&self) -> u64 {
        self.range(limits::MAX_PARTS)
            .end
            .min(limits::MAX_OBJECT_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reaches_five_tib() {
        let l = PartLayout::new(8 << 20);
        assert_eq!(l.range(1), 0..8 << 20);
        assert_eq!(l.part_at(0), Some(1));
        assert_eq!(l.part_at((8 << 20) - 1), Some(1));
        assert_eq!(l.part_at(8 << 20), Some(2));
        assert_eq!(l.size_of(1001), 16 << 20);
        assert_eq!(l.range(1001).start, 1000 * (8 << 20));
        assert!(l.max_size() >= limits::MAX_OBJECT_SIZE);
        for n in [1, 999, 1000, 1001, 2500, 9999, 10000] {
            let r = l.range(n);
            assert_eq!(l.part_at(r.start), Some(n));
            assert_eq!(l.part_at(r.end - 1), Some(n));
            assert!(l.size_of(n) >= limits::MIN_PART_SIZE);
        }
    }
}
