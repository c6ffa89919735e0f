//! A decoded, validated model bundle and the operations on it.
//!
//! [`Bundle::new`] trusts nothing: after the framing and postcard decoding it
//! checks every shape against the others, every number, the causal graph and
//! the flow's inversion schedule. Afterwards every operation works on slices
//! the caller provides plus a scratch area of [`Bundle::scratch_len`] values,
//! and allocates nothing.

use crate::FeatureSet;
use crate::carma::Carma;
use crate::error::{Argument, Error, InputError, Quantity, Section, ValidationError};
use crate::flow::{Fixed, Flow, Track};
use crate::format::{
    Activation, BundleWire, Direction, GridWire, KIND_CATEGORICAL, KIND_INTEGER, KIND_PLAIN,
    MAX_LAYERS, MetricsWire,
};
use crate::graph::{check_features, flags};
use crate::le::F32s;
use crate::mlp::{Mlp, check_finite};

/// A trained model, borrowing its weights from the bundle bytes.
#[derive(Debug, Clone, Copy)]
pub struct Bundle<'a> {
    wire: BundleWire<'a>,
    d: usize,
    binary: FeatureSet,
    integer: FeatureSet,
    categorical: FeatureSet,
    step: F32s<'a>,
    actionable: FeatureSet,
    mean: F32s<'a>,
    std: F32s<'a>,
    min: F32s<'a>,
    max: F32s<'a>,
    direction: &'a [u8],
    flow: Flow<'a>,
    classifier: Mlp<'a>,
    carma: Option<Carma<'a>>,
}

/// Checks `bytes` holds `d` finite LE `f32` values.
pub(crate) fn floats(
    bytes: &[u8],
    section: Section,
    d: usize,
) -> Result<F32s<'_>, ValidationError> {
    let v = F32s::new(bytes)
        .filter(|v| v.len() == d)
        .ok_or(ValidationError::Length {
            section,
            expected: 4 * d,
            found: bytes.len(),
        })?;
    check_finite(bytes, section)?;
    Ok(v)
}

/// Checks `bytes` holds `d` finite positive LE `f32` values.
pub(crate) fn positive(
    bytes: &[u8],
    section: Section,
    d: usize,
) -> Result<F32s<'_>, ValidationError> {
    let v = floats(bytes, section, d)?;
    match v.iter().position(|x| x <= 0.0) {
        Some(index) => Err(ValidationError::OutOfRange { section, index }),
        None => Ok(v),
    }
}

/// `Ok` if every value of `v` is finite, else [`Error::NotFinite`] naming
/// `quantity`: finite weights and inputs can still overflow.
pub(crate) fn finite(v: &[f32], quantity: Quantity) -> Result<(), Error> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Error::NotFinite(quantity))
    }
}

/// Checks that a network with widths `dims` (`u16` LE) has at most
/// `MAX_LAYERS` weight layers.
/// The kind of a feature (graph files say `kind = "..."`; docs/MATH.md, section 6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any real value.
    Continuous,
    /// Exactly 0 or 1.
    Binary,
    /// A multiple of `step`.
    Integer {
        /// The grid's step (positive).
        step: f32,
    },
    /// One of `levels` levels, coded `0..levels`.
    Categorical {
        /// The number of levels (at least 2).
        levels: usize,
    },
}

/// Checks the grid section against the features: returns the integer and
/// the categorical features and the steps.
fn check_grid<'a>(
    grid: &GridWire<'a>,
    d: usize,
    binary: FeatureSet,
    min: F32s<'_>,
    max: F32s<'_>,
) -> Result<(FeatureSet, FeatureSet, F32s<'a>), ValidationError> {
    let section = Section::Grid;
    let bad = |index| ValidationError::OutOfRange { section, index };
    let step = floats(grid.step, section, d)?;
    for bytes in [grid.kind, grid.n_levels] {
        if bytes.len() != d {
            return Err(ValidationError::Length {
                section,
                expected: d,
                found: bytes.len(),
            });
        }
    }
    let (mut integer, mut categorical) = (FeatureSet::EMPTY, FeatureSet::EMPTY);
    let mut total_levels = 0usize;
    for i in 0..d {
        let (kind, n, st) = (grid.kind[i], grid.n_levels[i], step.get(i).unwrap_or(0.0));
        let (lo, hi) = (min.get(i).unwrap_or(0.0), max.get(i).unwrap_or(0.0));
        let ok = match kind {
            KIND_PLAIN => n == 0 && st == 0.0,
            KIND_INTEGER => !binary.contains(i) && n == 0 && st > 0.0,
            KIND_CATEGORICAL => {
                let last = f32::from(n) - 1.0;
                let whole = |v: f32| libm::truncf(v) == v;
                !binary.contains(i)
                    && n >= 2
                    && st == 1.0
                    && lo >= 0.0
                    && hi <= last
                    && whole(lo)
                    && whole(hi)
            }
            _ => false,
        };
        if !ok {
            return Err(bad(i));
        }
        match kind {
            KIND_INTEGER => integer.insert(i),
            KIND_CATEGORICAL => categorical.insert(i),
            _ => false,
        };
        total_levels += usize::from(n);
    }
    let lines = if grid.levels.is_empty() {
        0
    } else {
        grid.levels.split('\n').count()
    };
    if lines != total_levels || (lines > 0 && grid.levels.split('\n').any(str::is_empty)) {
        return Err(ValidationError::Length {
            section,
            expected: total_levels,
            found: lines,
        });
    }
    Ok((integer, categorical, step))
}

fn check_depth(dims: &[u8], section: Section) -> Result<(), ValidationError> {
    let found = (dims.len() / 2).saturating_sub(1);
    if found > MAX_LAYERS {
        return Err(ValidationError::TooDeep {
            section,
            found,
            max: MAX_LAYERS,
        });
    }
    Ok(())
}

/// Checks that every metric present is finite.
fn check_metrics(m: &MetricsWire) -> Result<(), ValidationError> {
    let values = [
        m.classifier_test_accuracy,
        m.flow_test_loglik,
        m.carma_coverage,
        m.carma_validity,
        m.carma_cost,
        m.carma_mean_actions,
    ];
    match values
        .iter()
        .position(|v| v.is_some_and(|v| !v.is_finite()))
    {
        Some(index) => Err(ValidationError::NotFinite {
            section: Section::Metrics,
            index,
        }),
        None => Ok(()),
    }
}

impl<'a> Bundle<'a> {
    /// Decodes and validates a bundle, borrowing its weights from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::from_wire(BundleWire::decode(bytes)?)
    }

    /// Validates an already decoded bundle.
    pub fn from_wire(wire: BundleWire<'a>) -> Result<Self, Error> {
        let f = &wire.features;
        let (d, position) = check_features(f)?;
        let binary = flags(f.binary, Section::Binary, d)?;
        let actionable = flags(f.actionable, Section::Actionable, d)?;
        let mean = floats(wire.scaler.mean, Section::Mean, d)?;
        let std = positive(wire.scaler.std, Section::Std, d)?;
        let min = floats(f.min, Section::Bounds, d)?;
        let max = floats(f.max, Section::Bounds, d)?;
        if let Some(index) = min.iter().zip(max.iter()).position(|(lo, hi)| lo > hi) {
            return Err(ValidationError::OutOfRange {
                section: Section::Bounds,
                index,
            }
            .into());
        }
        if f.direction.len() != d {
            return Err(ValidationError::Length {
                section: Section::Direction,
                expected: d,
                found: f.direction.len(),
            }
            .into());
        }
        if let Some(index) = f
            .direction
            .iter()
            .position(|&b| Direction::from_byte(b).is_none())
        {
            return Err(ValidationError::OutOfRange {
                section: Section::Direction,
                index,
            }
            .into());
        }
        let (integer, categorical, step) = match &wire.grid {
            Some(g) => check_grid(g, d, binary, min, max)?,
            None => (FeatureSet::EMPTY, FeatureSet::EMPTY, F32s::EMPTY),
        };
        check_metrics(&wire.meta.metrics)?;
        check_depth(wire.flow.dims, Section::Flow)?;
        check_depth(wire.classifier.dims, Section::Classifier)?;
        if let Some(c) = &wire.carma {
            check_depth(c.mask_net.dims, Section::MaskNet)?;
            check_depth(c.action_net.dims, Section::ActionNet)?;
        }
        let flow = Flow::new(&wire.flow, f.order, position.get(..d).unwrap_or_default())?;
        let classifier = Mlp::new(&wire.classifier, Section::Classifier, d, 1)?;
        if wire.classifier.output != Activation::Sigmoid {
            return Err(ValidationError::Activation {
                section: Section::Classifier,
                expected: Activation::Sigmoid,
                found: wire.classifier.output,
            }
            .into());
        }
        let carma = match &wire.carma {
            Some(c) => Some(Carma::new(c, d)?),
            None => None,
        };
        Ok(Bundle {
            wire,
            d,
            binary,
            integer,
            categorical,
            step,
            actionable,
            mean,
            std,
            min,
            max,
            direction: f.direction,
            flow,
            classifier,
            carma,
        })
    }

    /// The decoded wire form (metadata, metrics, raw sections).
    pub fn wire(&self) -> &BundleWire<'a> {
        &self.wire
    }

    /// Number of features `D`.
    pub fn n_features(&self) -> usize {
        self.d
    }

    /// The name of feature `i`.
    pub fn feature_name(&self, i: usize) -> Option<&'a str> {
        self.wire.features.names.split('\n').nth(i)
    }

    /// True if feature `i` may be intervened on.
    pub fn is_actionable(&self, i: usize) -> bool {
        self.actionable.contains(i)
    }

    /// True if feature `i` takes only the values 0 and 1.
    pub fn is_binary(&self, i: usize) -> bool {
        self.binary.contains(i)
    }

    /// The actionable features.
    pub fn actionable(&self) -> FeatureSet {
        self.actionable
    }

    /// The binary features.
    pub fn binary(&self) -> FeatureSet {
        self.binary
    }

    /// The integer and categorical features: those on a grid.
    pub fn grid(&self) -> FeatureSet {
        self.integer.union(self.categorical)
    }

    /// The categorical features.
    pub fn categorical(&self) -> FeatureSet {
        self.categorical
    }

    /// The kind of feature `i` ([`Kind::Continuous`] out of range).
    pub fn kind(&self, i: usize) -> Kind {
        if self.binary.contains(i) {
            Kind::Binary
        } else if self.integer.contains(i) {
            Kind::Integer {
                step: self.step.get(i).unwrap_or(1.0),
            }
        } else if self.categorical.contains(i) {
            let levels = self
                .wire
                .grid
                .and_then(|g| g.n_levels.get(i).copied())
                .map_or(0, usize::from);
            Kind::Categorical { levels }
        } else {
            Kind::Continuous
        }
    }

    /// The name of level `code` of categorical feature `i`.
    pub fn level_name(&self, i: usize, code: usize) -> Option<&'a str> {
        let grid = self.wire.grid?;
        let n = usize::from(*grid.n_levels.get(i)?);
        if !self.categorical.contains(i) || code >= n {
            return None;
        }
        let before: usize = grid
            .n_levels
            .get(..i)?
            .iter()
            .map(|&b| usize::from(b))
            .sum();
        grid.levels.split('\n').nth(before + code)
    }

    /// The grid step of feature `i` (1 for a categorical feature and for
    /// one not on a grid).
    pub(crate) fn grid_step(&self, i: usize) -> f32 {
        self.step.get(i).filter(|&s| s > 0.0).unwrap_or(1.0)
    }

    /// The grid point of feature `i` nearest to `v` within `[lo, hi]`, or
    /// `None` if the interval holds none; `v` itself for a feature not on
    /// a grid.
    pub(crate) fn snap(&self, i: usize, v: f32, lo: f32, hi: f32) -> Option<f32> {
        if !self.grid().contains(i) {
            return Some(v);
        }
        let step = self.grid_step(i);
        let mut g = libm::roundf(v / step) * step;
        if g > hi {
            g = libm::floorf(hi / step) * step;
        }
        if g < lo {
            g = libm::ceilf(lo / step) * step;
        }
        (lo <= g && g <= hi).then_some(g)
    }

    /// The parents of feature `i` in the causal graph (empty out of range).
    pub fn parents(&self, i: usize) -> FeatureSet {
        let d = self.d;
        let row = i
            .checked_mul(d)
            .and_then(|s| self.wire.features.parents.get(s..s.checked_add(d)?));
        row.unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == 1)
            .map(|(j, _)| j)
            .collect()
    }

    /// The topological order of the features (parents before children).
    pub fn order(&self) -> impl ExactSizeIterator<Item = usize> + 'a {
        self.wire.features.order.iter().map(|&i| usize::from(i))
    }

    /// The scaler's mean of feature `i`.
    pub fn mean(&self, i: usize) -> Option<f32> {
        self.mean.get(i)
    }

    /// The scaler's standard deviation of feature `i`.
    pub fn std(&self, i: usize) -> Option<f32> {
        self.std.get(i)
    }

    /// The bounds `(min, max)` a recommendation keeps feature `i` within,
    /// in original units (`None` out of range).
    pub fn bounds(&self, i: usize) -> Option<(f32, f32)> {
        Some((self.min.get(i)?, self.max.get(i)?))
    }

    /// The direction a recommendation may change feature `i` in
    /// ([`Direction::Any`] out of range).
    pub fn direction(&self, i: usize) -> Direction {
        self.direction
            .get(i)
            .and_then(|&b| Direction::from_byte(b))
            .unwrap_or(Direction::Any)
    }

    /// The causal normalizing flow.
    pub fn flow(&self) -> &Flow<'a> {
        &self.flow
    }

    /// The classifier, on standardized inputs.
    pub fn classifier(&self) -> &Mlp<'a> {
        &self.classifier
    }

    /// The CARMA networks, if the bundle has them.
    pub fn carma(&self) -> Option<&Carma<'a>> {
        self.carma.as_ref()
    }

    /// Scratch `f32` values every operation needs (the same for all of them).
    pub fn scratch_len(&self) -> usize {
        let inner = self
            .flow
            .scratch_len()
            .max(self.classifier.scratch_len())
            .max(self.carma.as_ref().map_or(0, Carma::scratch_len));
        // recommend keeps besides: every flow layer's factual input (the
        // first is x~), the latent and refinement's five vectors (the
        // proposal, the intervention values, the trial point, and two for
        // a stacked flow's interventions).
        (self.flow.n_layers() + 6) * self.d + inner
    }

    /// [`Bundle::scratch_len`] in bytes.
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_len() * core::mem::size_of::<f32>()
    }

    pub(crate) fn check_len(&self, v: &[f32], argument: Argument) -> Result<(), Error> {
        if v.len() == self.d {
            Ok(())
        } else {
            Err(InputError::Length {
                argument,
                expected: self.d,
                found: v.len(),
            }
            .into())
        }
    }

    pub(crate) fn check_input(&self, v: &[f32]) -> Result<(), Error> {
        self.check_len(v, Argument::Input)?;
        match v.iter().position(|x| !x.is_finite()) {
            Some(index) => Err(InputError::NotFinite { index }.into()),
            None => Ok(()),
        }
    }

    /// Checks that every integer and categorical value of the person
    /// `x_raw` (original units) is on its grid: within a ten-thousandth of
    /// a step of a multiple of it, and a categorical code in `0..levels`.
    pub(crate) fn check_grid_input(&self, x_raw: &[f32]) -> Result<(), Error> {
        for i in self.grid().iter() {
            let Some(&v) = x_raw.get(i) else {
                continue;
            };
            let step = self.grid_step(i);
            let g = libm::roundf(v / step) * step;
            let mut ok = libm::fabsf(v - g) <= 1e-4 * step;
            if let Kind::Categorical { levels } = self.kind(i) {
                ok &= g >= 0.0 && g <= levels as f32 - 1.0;
            }
            if !ok {
                return Err(InputError::OffGrid { index: i }.into());
            }
        }
        Ok(())
    }

    pub(crate) fn check_scratch(&self, scratch: &[f32]) -> Result<(), Error> {
        let needed = self.scratch_len();
        if scratch.len() >= needed {
            Ok(())
        } else {
            Err(InputError::ScratchTooSmall {
                needed,
                found: scratch.len(),
            }
            .into())
        }
    }

    pub(crate) fn check_set(&self, set: FeatureSet) -> Result<(), Error> {
        match set.max() {
            Some(index) if index >= self.d => Err(InputError::UnknownFeature { index }.into()),
            _ => Ok(()),
        }
    }

    pub(crate) fn carma_or_err(&self) -> Result<&Carma<'a>, Error> {
        self.carma.as_ref().ok_or(Error::NoCarma)
    }

    /// `out = (x - mean) / std`, per feature (docs/MATH.md, section 2). A non-finite
    /// input or result is an error.
    pub fn standardize(&self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.check_input(x)?;
        self.check_len(out, Argument::Output)?;
        for (((o, &x), m), s) in out
            .iter_mut()
            .zip(x)
            .zip(self.mean.iter())
            .zip(self.std.iter())
        {
            *o = (x - m) / s;
        }
        finite(out, Quantity::Standardized)
    }

    /// `out = x_std * std + mean`, per feature (the inverse of
    /// [`Bundle::standardize`]). A non-finite input or result is an error.
    pub fn unstandardize(&self, x_std: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.check_input(x_std)?;
        self.check_len(out, Argument::Output)?;
        for (((o, &x), m), s) in out
            .iter_mut()
            .zip(x_std)
            .zip(self.mean.iter())
            .zip(self.std.iter())
        {
            *o = x * s + m;
        }
        finite(out, Quantity::Original)
    }

    /// Abduction `z = T(x~)` through every flow layer (docs/MATH.md, section 4).
    pub fn abduct(
        &self,
        x_std: &[f32],
        z_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(x_std)?;
        self.check_len(z_out, Argument::Output)?;
        self.check_scratch(scratch)?;
        z_out.copy_from_slice(x_std);
        self.flow.abduct(z_out, &mut [], scratch)?;
        finite(z_out, Quantity::Latent)
    }

    /// The flow's log-density `log p(x~)` of a standardized point
    /// (docs/MATH.md, section 4). In original units subtract `sum_j ln std_j`.
    pub fn log_likelihood(&self, x_std: &[f32], scratch: &mut [f32]) -> Result<f32, Error> {
        self.check_input(x_std)?;
        self.check_scratch(scratch)?;
        let too_small = InputError::ScratchTooSmall {
            needed: self.scratch_len(),
            found: scratch.len(),
        };
        let (z, rest) = scratch.split_at_mut_checked(self.d).ok_or(too_small)?;
        z.copy_from_slice(x_std);
        let log_det = self.flow.abduct(z, &mut [], rest)?;
        let log_p = Flow::log_density(z, log_det);
        finite(&[log_p], Quantity::LogLikelihood)?;
        Ok(log_p)
    }

    /// Inversion `x~ = T^-1(z)`: layers in reverse, features in topological order.
    pub fn invert(
        &self,
        z: &[f32],
        x_std_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(z)?;
        self.check_len(x_std_out, Argument::Output)?;
        self.check_scratch(scratch)?;
        x_std_out.copy_from_slice(z);
        self.flow.invert(x_std_out, None, scratch)?;
        finite(x_std_out, Quantity::Reconstruction)
    }

    /// The counterfactual of the standardized person `x_std` under the hard
    /// interventions `do(x~_k = values[k])` for the features `k` of `set`
    /// (docs/MATH.md, section 6): every intervened feature takes its value
    /// exactly; every other feature keeps its latent (abducted from
    /// `x_std`) and follows its intervened causes through the learned
    /// mechanisms. `values` has one entry per feature; entries outside `set`
    /// are ignored. Features no intervention reaches keep their value bit for
    /// bit.
    pub fn intervene(
        &self,
        x_std: &[f32],
        set: FeatureSet,
        values: &[f32],
        x_cf_std_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(x_std)?;
        self.check_set(set)?;
        self.check_len(values, Argument::Input)?;
        if let Some(index) = set
            .iter()
            .find(|&k| values.get(k).is_some_and(|v| !v.is_finite()))
        {
            return Err(InputError::NotFinite { index }.into());
        }
        self.check_len(x_cf_std_out, Argument::Output)?;
        self.check_scratch(scratch)?;
        let d = self.d;
        let n_layers = self.flow.n_layers();
        let too_small = InputError::ScratchTooSmall {
            needed: self.scratch_len(),
            found: scratch.len(),
        };
        let (factual, rest) = scratch
            .split_at_mut_checked(n_layers * d)
            .ok_or(too_small)?;
        let (aux, inner) = rest.split_at_mut_checked(2 * d).ok_or(too_small)?;
        let (x0, saved) = factual.split_at_mut_checked(d).ok_or(too_small)?;
        x0.copy_from_slice(x_std);
        x_cf_std_out.copy_from_slice(x_std);
        self.flow.abduct(x_cf_std_out, saved, inner)?;
        finite(x_cf_std_out, Quantity::Latent)?;
        let track = Track {
            moved: set,
            factual,
        };
        let fixed = Fixed { set, values };
        self.flow
            .invert_do(x_cf_std_out, Some(track), fixed, aux, None, inner)?;
        finite(x_cf_std_out, Quantity::Reconstruction)
    }

    /// The classifier's probability that `x~` is accepted (docs/MATH.md, section 3).
    pub fn classify(&self, x_std: &[f32], scratch: &mut [f32]) -> Result<f32, Error> {
        self.check_input(x_std)?;
        self.check_scratch(scratch)?;
        self.classify_unchecked(x_std, scratch)
    }

    pub(crate) fn classify_unchecked(
        &self,
        x_std: &[f32],
        scratch: &mut [f32],
    ) -> Result<f32, Error> {
        let out = self.classifier.forward(x_std, scratch)?;
        let p = out.first().copied().unwrap_or(0.0);
        // The sigmoid maps +-inf to 1 or 0; only NaN (inf - inf) gets here.
        finite(&[p], Quantity::Probability)?;
        Ok(p)
    }

    /// The intervention mask for latent `z` (docs/MATH.md, section 5): feature `i` is
    /// selected iff `phi_i1 > phi_i0`, it is actionable and not in `forbid`.
    pub fn mask(
        &self,
        z: &[f32],
        forbid: FeatureSet,
        scratch: &mut [f32],
    ) -> Result<FeatureSet, Error> {
        let carma = self.carma_or_err()?;
        self.check_input(z)?;
        self.check_set(forbid)?;
        self.check_scratch(scratch)?;
        carma.mask(z, self.actionable.difference(forbid), scratch)
    }

    /// The latent shift `delta` the action network proposes for latent `z`
    /// and `mask`, clamped to the bundle's range (docs/MATH.md, section 5). The
    /// intervention is `z_cf = z + mask * delta`.
    pub fn action(
        &self,
        z: &[f32],
        mask: FeatureSet,
        delta_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let carma = self.carma_or_err()?;
        self.check_input(z)?;
        self.check_set(mask)?;
        self.check_len(delta_out, Argument::Output)?;
        self.check_scratch(scratch)?;
        carma.action(z, mask, delta_out, scratch)
    }
}
