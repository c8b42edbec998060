//! A fixed-size set of small integers, one bit each: the linearizability
//! search's record of which operations are already linearized, hashed and
//! compared as part of every memoized configuration.

/// A set of indices below the size it was created with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BitSet {
    words: Box<[u64]>,
}

impl BitSet {
    /// An empty set able to hold indices `0..len`.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Adds `index`.
    pub(crate) fn insert(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }

    /// Removes `index`.
    pub(crate) fn remove(&mut self, index: usize) {
        self.words[index / 64] &= !(1 << (index % 64));
    }

    /// True when every member of `self` is a member of `other` (both of the same size).
    pub(crate) fn is_subset(&self, other: &BitSet) -> bool {
        debug_assert_eq!(self.words.len(), other.words.len());
        self.words
            .iter()
            .zip(other.words.iter())
            .all(|(mine, theirs)| mine & !theirs == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_and_subset() {
        let mut small = BitSet::new(130);
        let mut large = BitSet::new(130);
        small.insert(129);
        large.insert(129);
        large.insert(3);
        assert!(small.is_subset(&large));
        assert!(!large.is_subset(&small));
        large.remove(3);
        assert_eq!(small, large);
    }
}
