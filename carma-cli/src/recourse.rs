//! One person's recourse, as `carma recommend` and `carma serve` both compute it: the run's
//! limits with the person's own over them, the core's recommendation (and alternatives), and,
//! when forbidding features left nothing accepted, what the model would have changed without
//! that restriction. The callers only read people in (CSV rows, JSON objects) and write the
//! [`Explanation`] out, so the two commands give the same answer, bit for bit.

use carma_core::error::Error as CoreError;
use carma_core::{Bundle, FeatureSet, Refine};

use crate::cmd::recommend::RunLimits;
use crate::explain::{Explanation, Style, Unrestricted};
use crate::rows::RowLimit;

/// The largest per-person `max_changes` (the core handles at most 64 features).
pub const MAX_ROW_CHANGES: f32 = 64.0;

/// Direction codes of a per-person `<feature>_direction` limit, as [`RowLimit::Direction`]
/// carries them: `any`, `increase`, `decrease`.
pub const DIRECTION_ANY: f32 = 0.0;
/// See [`DIRECTION_ANY`].
pub const DIRECTION_INCREASE: f32 = 1.0;
/// See [`DIRECTION_ANY`].
pub const DIRECTION_DECREASE: f32 = 2.0;

/// What every person of a run (a CSV, one HTTP request) shares.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'s> {
    /// Features not acted on directly.
    pub forbid: FeatureSet,
    /// Refinement, or the networks' proposal as it is.
    pub refine: Option<Refine>,
    /// The run's limits.
    pub limits: &'s RunLimits,
    /// Further recommendations per person.
    pub alternatives: usize,
}

/// Why one person got no answer.
#[derive(Debug)]
pub enum PersonError {
    /// A per-person `max_changes` that is not a whole number from 0 to 64.
    MaxChanges(f32),
    /// A per-person minimum above the maximum of the same feature.
    MinAboveMax {
        /// The feature.
        feature: usize,
        /// Its minimum.
        min: f32,
        /// Its maximum.
        max: f32,
    },
    /// The core refused the person (a value not finite, a binary feature not 0 or 1).
    Core(CoreError),
}

/// One thread's (or one request's) reusable buffers.
pub struct Recourse {
    scratch: Vec<f32>,
    x_cf: Vec<f32>,
    x_alt: Vec<f32>,
    /// The first recommendation and the alternatives, `D` values each, and their results.
    x_alts: Vec<f32>,
    alt_recs: Vec<Option<carma_core::Recommendation>>,
    /// This person's bounds: the run's, with the person's own over them.
    row_min: Vec<f32>,
    row_max: Vec<f32>,
    /// Reused for every person (made from the first recommendation).
    explanation: Option<Explanation>,
}

impl Recourse {
    /// Buffers sized for `bundle`.
    pub fn new(bundle: &Bundle<'_>) -> Recourse {
        let d = bundle.n_features();
        Recourse {
            scratch: vec![0.0; bundle.scratch_len()],
            x_cf: vec![0.0; d],
            x_alt: vec![0.0; d],
            x_alts: Vec::new(),
            alt_recs: Vec::new(),
            row_min: vec![0.0; d],
            row_max: vec![0.0; d],
            explanation: None,
        }
    }

    /// Recommend for the person `x` (original units, the bundle's feature order), the `row`-th
    /// of the run, with the person's own limits `overrides` (a NaN value is no override, as an
    /// empty CSV cell) over the run's. The explanation has no id; the caller sets it.
    pub fn explain(
        &mut self,
        bundle: &Bundle<'_>,
        settings: &Settings<'_>,
        style: &Style,
        row: usize,
        x: &[f32],
        overrides: impl IntoIterator<Item = (RowLimit, f32)>,
    ) -> Result<&mut Explanation, PersonError> {
        let Settings {
            forbid,
            refine,
            limits,
            alternatives,
        } = *settings;
        let d = bundle.n_features();
        self.row_min.copy_from_slice(&limits.min);
        self.row_max.copy_from_slice(&limits.max);
        let mut max_changes = limits.max_changes;
        let (mut increase, mut decrease) = (limits.increase, limits.decrease);
        for (what, v) in overrides {
            if v.is_nan() {
                continue;
            }
            match what {
                RowLimit::Direction(i) => {
                    increase.remove(i);
                    decrease.remove(i);
                    if v == DIRECTION_INCREASE {
                        increase.insert(i);
                    } else if v == DIRECTION_DECREASE {
                        decrease.insert(i);
                    }
                }
                RowLimit::Min(i) => self.row_min[i] = v,
                RowLimit::Max(i) => self.row_max[i] = v,
                RowLimit::MaxChanges => {
                    if !((0.0..=MAX_ROW_CHANGES).contains(&v) && v.fract() == 0.0) {
                        return Err(PersonError::MaxChanges(v));
                    }
                    max_changes = Some(v as u8);
                }
            }
        }
        if let Some(i) = (0..d).find(|&i| self.row_min[i] > self.row_max[i]) {
            return Err(PersonError::MinAboveMax {
                feature: i,
                min: self.row_min[i],
                max: self.row_max[i],
            });
        }
        let options = carma_core::Options {
            limits: carma_core::Limits {
                min: &self.row_min,
                max: &self.row_max,
                increase,
                decrease,
                max_changes,
            },
            ..carma_core::Options::new(forbid, refine)
        };
        let rec = if alternatives == 0 {
            bundle.recommend_with(x, &options, &mut self.x_cf, &mut self.scratch)
        } else {
            self.x_alts.resize((alternatives + 1) * d, 0.0);
            self.alt_recs.resize(alternatives + 1, None);
            bundle
                .recommend_alternatives(
                    x,
                    &options,
                    &mut self.x_alts,
                    &mut self.alt_recs,
                    &mut self.scratch,
                )
                .map(|_| {
                    self.x_cf.copy_from_slice(&self.x_alts[..d]);
                    self.alt_recs[0].expect("the first answer is always there")
                })
        }
        .map_err(PersonError::Core)?;
        let e = self
            .explanation
            .get_or_insert_with(|| Explanation::empty(rec));
        e.fill(style, row, x, &self.x_cf, rec);
        if alternatives > 0 {
            for (i, r) in self.alt_recs.iter().enumerate().skip(1) {
                if let Some(r) = r {
                    e.add_alternative(x, &self.x_alts[i * d..(i + 1) * d], *r);
                }
            }
        }
        e.max_changes = max_changes;
        if !forbid.is_empty() && !rec.already_accepted && !rec.accepted {
            // Would the person have had an accepted recommendation without the forbidding?
            let options = carma_core::Options::new(FeatureSet::EMPTY, refine);
            let alt = bundle
                .recommend_with(x, &options, &mut self.x_alt, &mut self.scratch)
                .map_err(PersonError::Core)?;
            let unrestricted = Unrestricted {
                mask: alt.mask,
                prob_after: alt.prob_after,
                accepted: alt.accepted,
            };
            e.forbidden_left_none = Some((forbid, unrestricted));
        }
        Ok(e)
    }
}
