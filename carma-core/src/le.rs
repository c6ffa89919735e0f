//! Little-endian views over borrowed bytes.
//!
//! Weights stay in the bundle's bytes; they are read with `from_le_bytes`, so
//! the buffer needs no particular alignment and nothing is copied at load.

/// A borrowed sequence of little-endian `f32` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct F32s<'a>(&'a [u8]);

impl<'a> F32s<'a> {
    /// No values.
    pub const EMPTY: F32s<'static> = F32s(&[]);

    /// Views `bytes` as `f32` values; `None` if the length is not a multiple of 4.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() % 4 == 0).then_some(Self(bytes))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        let start = i.checked_mul(4)?;
        self.0.get(start..start.checked_add(4)?).map(f32_at)
    }

    /// The values `start..start + len` as a sub-view, or `None` if out of range.
    pub fn slice(&self, start: usize, len: usize) -> Option<F32s<'a>> {
        let end = start.checked_add(len)?.checked_mul(4)?;
        self.0.get(start.checked_mul(4)?..end).map(F32s)
    }

    /// Iterates over the values.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        self.0.chunks_exact(4).map(f32_at)
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// A borrowed sequence of little-endian `u16` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct U16s<'a>(&'a [u8]);

impl<'a> U16s<'a> {
    /// Views `bytes` as `u16` values; `None` if the length is odd.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() % 2 == 0).then_some(Self(bytes))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<u16> {
        let start = i.checked_mul(2)?;
        match self.0.get(start..start.checked_add(2)?)? {
            [a, b] => Some(u16::from_le_bytes([*a, *b])),
            _ => None,
        }
    }

    /// Iterates over the values.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(|b| match b {
            [a, b] => u16::from_le_bytes([*a, *b]),
            _ => 0,
        })
    }
}

/// The `f32` in four little-endian bytes (0 for any other length, which the
/// callers, all iterating `chunks_exact(4)`, never pass).
pub(crate) fn f32_at(b: &[u8]) -> f32 {
    match b {
        [a, b, c, d] => f32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0.0,
    }
}
