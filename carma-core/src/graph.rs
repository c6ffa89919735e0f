//! The features and the causal graph (docs/MATH.md, section 2): names, flags, the
//! parent matrix and the topological order, checked against each other.

use crate::FeatureSet;
use crate::error::{Section, ValidationError};
use crate::format::{FeaturesWire, MAX_FEATURES};

/// Reads `D` flag bytes (0 or 1) into a set.
pub(crate) fn flags(
    bytes: &[u8],
    section: Section,
    d: usize,
) -> Result<FeatureSet, ValidationError> {
    if bytes.len() != d {
        return Err(ValidationError::Length {
            section,
            expected: d,
            found: bytes.len(),
        });
    }
    let mut set = FeatureSet::EMPTY;
    for (index, &b) in bytes.iter().enumerate() {
        match b {
            0 => {}
            1 => {
                set.insert(index);
            }
            _ => return Err(ValidationError::NotAFlag { section, index }),
        }
    }
    Ok(set)
}

/// Checks the feature section for `D = binary.len()` features and returns
/// `D` with each feature's position in the topological order.
pub(crate) fn check_features(
    f: &FeaturesWire<'_>,
) -> Result<(usize, [usize; MAX_FEATURES]), ValidationError> {
    let d = f.binary.len();
    if d == 0 || d > MAX_FEATURES {
        return Err(ValidationError::FeatureCount {
            found: d,
            max: MAX_FEATURES,
        });
    }
    let found = f.names.split('\n').count();
    let empty = f.names.split('\n').position(str::is_empty);
    if found != d || empty.is_some() {
        return Err(ValidationError::Names {
            expected: d,
            found,
            empty,
        });
    }
    flags(f.actionable, Section::Actionable, d)?;
    if f.parents.len() != d * d {
        return Err(ValidationError::Length {
            section: Section::Parents,
            expected: d * d,
            found: f.parents.len(),
        });
    }
    if let Some(index) = f.parents.iter().position(|&b| b > 1) {
        return Err(ValidationError::NotAFlag {
            section: Section::Parents,
            index,
        });
    }
    if f.order.len() != d {
        return Err(ValidationError::Length {
            section: Section::Order,
            expected: d,
            found: f.order.len(),
        });
    }
    let mut position = [0usize; MAX_FEATURES];
    let mut seen = FeatureSet::EMPTY;
    for (t, &feature) in f.order.iter().enumerate() {
        let i = usize::from(feature);
        if i >= d || !seen.insert(i) {
            return Err(ValidationError::OrderNotPermutation { position: t });
        }
        if let Some(p) = position.get_mut(i) {
            *p = t;
        }
    }
    for (index, &b) in f.parents.iter().enumerate() {
        let (feature, parent) = (index / d, index % d);
        let pos = |i: usize| position.get(i).copied().unwrap_or(0);
        if b == 1 && pos(parent) >= pos(feature) {
            return Err(ValidationError::ParentNotBefore { feature, parent });
        }
    }
    Ok((d, position))
}
