//! A set of feature indices, as one `u64` (a bundle has at most
//! [`MAX_FEATURES`](crate::format::MAX_FEATURES) = 64 features).

use core::fmt;

/// A set of feature indices `0..64`: an intervention mask, or the features a
/// caller forbids for one individual.
///
/// ```
/// use carma_core::FeatureSet;
/// let mut s = FeatureSet::EMPTY;
/// assert!(s.insert(2));
/// assert!(s.insert(5));
/// assert!(!s.insert(64)); // not representable
/// assert!(s.contains(5) && !s.contains(3));
/// assert_eq!(s.len(), 2);
/// assert!(s.iter().eq([2, 5]));
/// assert_eq!(s, [5, 2].into_iter().collect());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// The empty set.
    pub const EMPTY: FeatureSet = FeatureSet(0);

    /// The set whose bit `i` is set for each feature `i` in it.
    pub const fn from_bits(bits: u64) -> Self {
        FeatureSet(bits)
    }

    /// Bit `i` is set iff feature `i` is in the set.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set `{0, 1, ..., n - 1}` (all 64 features if `n >= 64`).
    pub const fn first(n: usize) -> Self {
        if n >= 64 {
            FeatureSet(u64::MAX)
        } else {
            FeatureSet((1u64 << n) - 1)
        }
    }

    /// Adds feature `i`. Returns `true` if the set changed, `false` if `i`
    /// was already in it or is `>= 64` (not representable; the set is unchanged).
    pub fn insert(&mut self, i: usize) -> bool {
        match bit(i) {
            Some(b) if self.0 & b == 0 => {
                self.0 |= b;
                true
            }
            _ => false,
        }
    }

    /// Removes feature `i`. Returns `true` if it was in the set.
    pub fn remove(&mut self, i: usize) -> bool {
        let was = self.contains(i);
        if let Some(b) = bit(i) {
            self.0 &= !b;
        }
        was
    }

    /// True if feature `i` is in the set.
    pub const fn contains(self, i: usize) -> bool {
        match bit(i) {
            Some(b) => self.0 & b != 0,
            None => false,
        }
    }

    /// Number of features in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True if the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Features in either set.
    pub const fn union(self, other: FeatureSet) -> Self {
        FeatureSet(self.0 | other.0)
    }

    /// Features in both sets.
    pub const fn intersection(self, other: FeatureSet) -> Self {
        FeatureSet(self.0 & other.0)
    }

    /// Features in `self` but not in `other`.
    pub const fn difference(self, other: FeatureSet) -> Self {
        FeatureSet(self.0 & !other.0)
    }

    /// The largest feature index in the set, if any.
    pub const fn max(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(63 - self.0.leading_zeros() as usize)
        }
    }

    /// The features in increasing order.
    pub fn iter(self) -> Iter {
        Iter(self.0)
    }
}

const fn bit(i: usize) -> Option<u64> {
    if i < 64 { Some(1u64 << i) } else { None }
}

/// Iterator over a [`FeatureSet`], in increasing order.
#[derive(Debug, Clone)]
pub struct Iter(u64);

impl Iterator for Iter {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter {}

impl IntoIterator for FeatureSet {
    type Item = usize;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl FromIterator<usize> for FeatureSet {
    /// Collects indices; any `>= 64` are skipped (see [`FeatureSet::insert`]).
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut s = FeatureSet::EMPTY;
        for i in iter {
            s.insert(i);
        }
        s
    }
}

impl fmt::Debug for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_contains_agree() {
        let mut s = FeatureSet::EMPTY;
        assert!(s.is_empty());
        assert!(s.insert(0));
        assert!(!s.insert(0));
        assert!(s.insert(63));
        assert!(!s.insert(64));
        assert!(!s.insert(usize::MAX));
        assert_eq!(s.len(), 2);
        assert_eq!(s.bits(), 1 | (1 << 63));
        assert_eq!(s.max(), Some(63));
        assert!(s.remove(63));
        assert!(!s.remove(63));
        assert!(!s.remove(1000));
        assert!(s.iter().eq([0]));
        assert!(!s.contains(64));
    }

    #[test]
    fn set_algebra_matches_bits() {
        let a = FeatureSet::from_bits(0b1100);
        let b = FeatureSet::from_bits(0b1010);
        assert_eq!(a.union(b).bits(), 0b1110);
        assert_eq!(a.intersection(b).bits(), 0b1000);
        assert_eq!(a.difference(b).bits(), 0b0100);
        assert_eq!(FeatureSet::first(3).bits(), 0b111);
        assert_eq!(FeatureSet::first(64).bits(), u64::MAX);
        assert_eq!(FeatureSet::first(0), FeatureSet::EMPTY);
        assert_eq!(FeatureSet::EMPTY.max(), None);
        assert_eq!(a.iter().len(), 2);
    }
}
