//! The CARMA networks (docs/MATH.md, section 5): the mask network chooses which
//! features to intervene on, the action network how far to shift their latents.

use crate::FeatureSet;
use crate::bundle::positive;
use crate::error::{Error, InputError, Quantity, Section, ValidationError};
use crate::format::CarmaWire;
use crate::le::F32s;
use crate::mlp::Mlp;

/// Validated CARMA networks and the cost parameters, borrowing the bundle bytes.
#[derive(Debug, Clone, Copy)]
pub struct Carma<'a> {
    d: usize,
    mask_net: Mlp<'a>,
    action_net: Mlp<'a>,
    clamp_lo: f32,
    clamp_hi: f32,
    cost_range: F32s<'a>,
    weights: F32s<'a>,
}

impl<'a> Carma<'a> {
    /// Validates the networks' shapes for `d` features, the clamp range, the
    /// cost ranges (positive) and the preference weights (positive).
    pub(crate) fn new(wire: &CarmaWire<'a>, d: usize) -> Result<Self, ValidationError> {
        let mask_net = Mlp::new(&wire.mask_net, Section::MaskNet, d, 2 * d)?;
        let action_net = Mlp::new(&wire.action_net, Section::ActionNet, 2 * d, d)?;
        for (index, v) in [wire.clamp_lo, wire.clamp_hi].into_iter().enumerate() {
            if !v.is_finite() {
                return Err(ValidationError::NotFinite {
                    section: Section::Clamp,
                    index,
                });
            }
        }
        if wire.clamp_lo >= wire.clamp_hi {
            return Err(ValidationError::OutOfRange {
                section: Section::Clamp,
                index: 0,
            });
        }
        let cost_range = positive(wire.cost_range, Section::CostRange, d)?;
        let weights = positive(wire.weights, Section::Weights, d)?;
        Ok(Carma {
            d,
            mask_net,
            action_net,
            clamp_lo: wire.clamp_lo,
            clamp_hi: wire.clamp_hi,
            cost_range,
            weights,
        })
    }

    /// The mask network, `z -> (phi_i0, phi_i1)` at `2i, 2i + 1`.
    pub fn mask_net(&self) -> &Mlp<'a> {
        &self.mask_net
    }

    /// The action network, `[z, m] -> delta` (before clamping).
    pub fn action_net(&self) -> &Mlp<'a> {
        &self.action_net
    }

    /// The latent shift clamp `(lo, hi)`.
    pub fn clamp(&self) -> (f32, f32) {
        (self.clamp_lo, self.clamp_hi)
    }

    /// Cost range of feature `i` (max - min of its standardized training data).
    pub fn cost_range(&self, i: usize) -> Option<f32> {
        self.cost_range.get(i)
    }

    /// Preference weight of feature `i`.
    pub fn weight(&self, i: usize) -> Option<f32> {
        self.weights.get(i)
    }

    /// Scratch `f32` values the networks need: the action input `[z, m]` and
    /// the larger of the two networks' buffers.
    pub fn scratch_len(&self) -> usize {
        2 * self.d
            + self
                .mask_net
                .scratch_len()
                .max(self.action_net.scratch_len())
    }

    /// The mask: feature `i` is selected iff it is in `allowed` and its
    /// class-1 softmax probability exceeds 0.5, i.e. `phi_i1 > phi_i0`.
    pub(crate) fn mask(
        &self,
        z: &[f32],
        allowed: FeatureSet,
        scratch: &mut [f32],
    ) -> Result<FeatureSet, Error> {
        let phi = self.mask_net.forward(z, scratch)?;
        // NaN logits (inf - inf) would silently select nothing.
        if phi.iter().any(|v| v.is_nan()) {
            return Err(Error::NotFinite(Quantity::MaskLogits));
        }
        let mut mask = FeatureSet::EMPTY;
        for (i, pair) in phi.chunks_exact(2).enumerate() {
            if let [phi0, phi1] = pair {
                if phi1 > phi0 && allowed.contains(i) {
                    mask.insert(i);
                }
            }
        }
        Ok(mask)
    }

    /// The clamped latent shift `delta = clamp(action_net([z, m]), lo, hi)`.
    pub(crate) fn action(
        &self,
        z: &[f32],
        mask: FeatureSet,
        delta: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let d = self.d;
        let needed = self.scratch_len();
        let too_small = InputError::ScratchTooSmall {
            needed,
            found: scratch.len(),
        };
        let (input, rest) = scratch.split_at_mut_checked(2 * d).ok_or(too_small)?;
        let (zs, ms) = input.split_at_mut(d);
        for (a, &b) in zs.iter_mut().zip(z) {
            *a = b;
        }
        for (i, m) in ms.iter_mut().enumerate() {
            *m = if mask.contains(i) { 1.0 } else { 0.0 };
        }
        let out = self.action_net.forward(input, rest)?;
        // An overflow to +-inf saturates at the clamp; NaN (inf - inf) has no
        // direction and is an error, not silently `lo`.
        if out.iter().any(|v| v.is_nan()) {
            return Err(Error::NotFinite(Quantity::Action));
        }
        for (dst, &v) in delta.iter_mut().zip(out) {
            // max/min (not f32::clamp): never panics.
            *dst = v.max(self.clamp_lo).min(self.clamp_hi);
        }
        Ok(())
    }

    /// The cost of moving `x_std` to `x_cf_std` under `mask` (docs/MATH.md, section 5):
    /// `mean over actionable k of w_k m_k (x~_k - x~cf_k)^2 / range_k`,
    /// 0 when no feature is actionable.
    pub(crate) fn cost(
        &self,
        x_std: &[f32],
        x_cf_std: &[f32],
        mask: FeatureSet,
        actionable: FeatureSet,
    ) -> f32 {
        let mut sum = 0.0f32;
        for k in actionable.iter() {
            if !mask.contains(k) {
                continue;
            }
            let (Some(&x), Some(&x_cf)) = (x_std.get(k), x_cf_std.get(k)) else {
                continue;
            };
            let (w, range) = (
                self.weights.get(k).unwrap_or(0.0),
                self.cost_range.get(k).unwrap_or(1.0),
            );
            let diff = x - x_cf;
            sum += w * (diff * diff) / range;
        }
        match actionable.len() {
            0 => 0.0,
            n => sum / n as f32,
        }
    }
}
