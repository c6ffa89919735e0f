//! The whole recourse pipeline in original units (SPEC sections 3 to 6).

use crate::FeatureSet;
use crate::bundle::{Bundle, finite};
use crate::error::{Argument, Error, InputError, Quantity};
use crate::flow::Track;

/// A classifier probability at or above this is an acceptance (SPEC section 1).
pub const ACCEPT_THRESHOLD: f32 = 0.5;

/// What [`Bundle::recommend`] found for one individual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    /// The features to intervene on (actionable, not forbidden).
    pub mask: FeatureSet,
    /// Acceptance probability of the individual as they are.
    pub prob_before: f32,
    /// Acceptance probability of the counterfactual.
    pub prob_after: f32,
    /// True if the counterfactual is accepted (`prob_after >= 0.5`).
    pub accepted: bool,
    /// True if the individual was accepted already; then nothing changes.
    pub already_accepted: bool,
    /// Cost of the recommendation in standardized units (SPEC section 6).
    pub cost: f32,
}

impl<'a> Bundle<'a> {
    /// Recommends how `x_raw` (original units) could become accepted, never
    /// intervening on the features in `forbid`, and writes the counterfactual
    /// (original units) to `x_cf_raw_out`.
    ///
    /// Steps: standardize, classify; if accepted already, the counterfactual
    /// is `x_raw` with an empty mask (no latent is computed). Otherwise
    /// abduct `z`, mask, action, `z_cf = z + m * delta`, invert, classify,
    /// cost, unstandardize.
    /// Descendants of intervened features move through the flow; features
    /// the intervention cannot reach (through the flow's non-zero weights)
    /// are copied from `x_raw` exactly.
    ///
    /// Errors: no CARMA networks, wrong lengths, a non-finite input, a binary
    /// feature that is not exactly 0 or 1, `forbid` naming a feature `>= D`,
    /// a scratch shorter than [`Bundle::scratch_len`]; [`Error::NotFinite`]
    /// when a step overflows (an input far outside the training range, or
    /// extreme weights), so every `Ok` result is finite.
    pub fn recommend(
        &self,
        x_raw: &[f32],
        forbid: FeatureSet,
        x_cf_raw_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<Recommendation, Error> {
        let carma = self.carma_or_err()?;
        self.check_input(x_raw)?;
        self.check_len(x_cf_raw_out, Argument::Output)?;
        self.check_set(forbid)?;
        self.check_scratch(scratch)?;
        if let Some(index) = self
            .binary()
            .iter()
            .find(|&i| x_raw.get(i).is_some_and(|&v| v != 0.0 && v != 1.0))
        {
            return Err(InputError::NotBinary { index }.into());
        }
        let d = self.n_features();
        let needed = self.scratch_len();
        let too_small = InputError::ScratchTooSmall {
            needed,
            found: scratch.len(),
        };
        // Scratch: each flow layer's factual input (x~ first), the latent, the rest.
        let n_layers = self.flow().n_layers();
        let (factual, rest) = scratch
            .split_at_mut_checked(n_layers * d)
            .ok_or(too_small)?;
        let (z, inner) = rest.split_at_mut_checked(d).ok_or(too_small)?;
        let (x_std, saved) = factual.split_at_mut_checked(d).ok_or(too_small)?;
        self.standardize(x_raw, x_std)?;
        // The classifier first: an accepted individual needs no latent.
        let prob_before = self.classify_unchecked(x_std, inner)?;
        if prob_before >= ACCEPT_THRESHOLD {
            x_cf_raw_out.copy_from_slice(x_raw);
            return Ok(Recommendation {
                mask: FeatureSet::EMPTY,
                prob_before,
                prob_after: prob_before,
                accepted: true,
                already_accepted: true,
                cost: 0.0,
            });
        }

        z.copy_from_slice(x_std);
        self.flow().abduct(z, saved, inner)?;
        finite(z, Quantity::Latent)?;
        let factual: &[f32] = factual;
        let x_std = factual.get(..d).unwrap_or_default();

        let mask = carma.mask(z, self.actionable().difference(forbid), inner)?;
        // The output slice holds delta, then x~_cf, then x_cf.
        let delta = x_cf_raw_out;
        carma.action(z, mask, delta, inner)?;
        for i in mask.iter() {
            if let (Some(zi), Some(&di)) = (z.get_mut(i), delta.get(i)) {
                *zi += di;
            }
        }
        let x_cf_std = delta;
        x_cf_std.copy_from_slice(z);
        // Features the intervention cannot reach keep their factual value
        // exactly (not T^-1(T(x)), which differs by rounding).
        let track = Track {
            moved: mask,
            factual,
        };
        let changed = self.flow().invert(x_cf_std, Some(track), inner)?;
        finite(x_cf_std, Quantity::Reconstruction)?;
        let prob_after = self.classify_unchecked(x_cf_std, inner)?;
        let cost = carma.cost(x_std, x_cf_std, mask, self.actionable());
        finite(&[cost], Quantity::Cost)?;
        for (i, (v, &x)) in x_cf_std.iter_mut().zip(x_raw).enumerate() {
            *v = match (changed.contains(i), self.mean(i), self.std(i)) {
                (true, Some(m), Some(s)) => *v * s + m,
                _ => x,
            };
        }
        finite(x_cf_std, Quantity::Original)?;
        Ok(Recommendation {
            mask,
            prob_before,
            prob_after,
            accepted: prob_after >= ACCEPT_THRESHOLD,
            already_accepted: false,
            cost,
        })
    }

    /// The cost of moving `x_std` to `x_cf_std` by intervening on `mask`
    /// (SPEC section 6): `mean over actionable k of w_k m_k (x~_k - x~cf_k)^2 / range_k`.
    pub fn cost(&self, x_std: &[f32], x_cf_std: &[f32], mask: FeatureSet) -> Result<f32, Error> {
        let carma = self.carma_or_err()?;
        self.check_input(x_std)?;
        self.check_input(x_cf_std)?;
        self.check_set(mask)?;
        let cost = carma.cost(x_std, x_cf_std, mask, self.actionable());
        finite(&[cost], Quantity::Cost)?;
        Ok(cost)
    }
}
