//! The whole recourse pipeline in original units (docs/MATH.md, sections 1
//! to 6), with the optional refinement of the networks' proposal (section 6).

use crate::FeatureSet;
use crate::bundle::{Bundle, Kind, finite};
use crate::carma::Carma;
use crate::error::{Argument, Error, InputError, Quantity};
use crate::flow::{Fixed, Memo, Track};
use crate::format::{Direction, MAX_FEATURES};

/// A classifier probability at or above this is an acceptance (docs/MATH.md, section 1).
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
    /// Cost of the recommendation in standardized units (docs/MATH.md, section 1).
    pub cost: f32,
    /// Cost of the networks' own proposal, before refinement (equal to
    /// `cost` when nothing was refined).
    pub cost_unrefined: f32,
    /// True if refinement changed the networks' proposal.
    pub refined: bool,
    /// What the answer is: see [`Status`].
    pub status: Status,
    /// The features a limit (a bound or a direction, the bundle's or the
    /// request's) held back: the networks proposed to change them and the
    /// limit clipped the value, or let it not move at all.
    pub bound_by_limit: FeatureSet,
    /// True if the networks proposed more changes than
    /// [`Limits::max_changes`] allows, so some were left out.
    pub max_changes_bound: bool,
    /// The features whose input value lies outside the bundle's bounds
    /// (the training range and its margin): the model has not seen such
    /// values, so the answer is less reliable there.
    pub out_of_range: FeatureSet,
}

impl Recommendation {
    /// The outcome for a person the classifier already accepts (probability `prob`): nothing
    /// to change.
    pub(crate) fn already(prob: f32, out_of_range: FeatureSet) -> Self {
        Recommendation {
            mask: FeatureSet::EMPTY,
            prob_before: prob,
            prob_after: prob,
            accepted: true,
            already_accepted: true,
            cost: 0.0,
            cost_unrefined: 0.0,
            refined: false,
            status: Status::AlreadyAccepted,
            bound_by_limit: FeatureSet::EMPTY,
            max_changes_bound: false,
            out_of_range,
        }
    }
}

/// What kind of answer a [`Recommendation`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The person is accepted as they are: nothing to change.
    AlreadyAccepted,
    /// The counterfactual is accepted: the change is the advice.
    Recommended,
    /// No accepted recommendation was found within the limits (forbidden
    /// features, bounds, directions, the maximum number of changes);
    /// `bound_by_limit` and `max_changes_bound` say which bound. The
    /// counterfactual is not advice.
    NoneWithinLimits,
    /// No limit held the networks back, and their recommendation is still
    /// not accepted. The counterfactual is not advice.
    NotReached,
}

/// Per-request limits on a recommendation, in original units, on top of the
/// bundle's own bounds and directions (they can only tighten them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits<'l> {
    /// Empty, or one lower bound per feature (`-inf` for none).
    pub min: &'l [f32],
    /// Empty, or one upper bound per feature (`+inf` for none).
    pub max: &'l [f32],
    /// Features that may only be raised (or kept).
    pub increase: FeatureSet,
    /// Features that may only be lowered (or kept).
    pub decrease: FeatureSet,
    /// At most this many features changed directly; `None` for no limit.
    pub max_changes: Option<u8>,
}

impl Limits<'_> {
    /// No limit beyond the bundle's.
    pub const NONE: Limits<'static> = Limits {
        min: &[],
        max: &[],
        increase: FeatureSet::EMPTY,
        decrease: FeatureSet::EMPTY,
        max_changes: None,
    };
}

/// How [`Bundle::recommend_with`] turns the networks' proposal into the
/// smallest change that still works (docs/MATH.md, section 6).
///
/// The proposal's intervened values become hard interventions
/// `do(x_k = v_k)` on the learned causal model. Then, keeping the
/// counterfactual's probability at least `min_prob` and never raising the
/// cost: each intervened feature is dropped if the rest suffices (cheapest
/// contribution first); the remaining changes are shrunk together toward the
/// person's current values by bisection on the fraction of the change; then
/// each one alone, costliest first; then each is raised by `slack` of
/// itself, a margin against the learned model's error. A proposal whose
/// probability is below `min_prob` is first extended along its own
/// direction, up to [`MAX_EXTEND`] times each change, to the smallest
/// extension that reaches `min_prob` (or returned unrefined if none does);
/// only then can refinement cost more than the proposal. A binary feature is
/// only ever dropped, never moved to a fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refine {
    /// The probability a refined counterfactual must keep; at least 0.5.
    /// Above 0.5 it is a safety margin against the learned model's error.
    pub min_prob: f32,
    /// Bisection steps of each shrink (0: only drop features).
    pub steps: u8,
    /// Safety margin on the size of the change: once the smallest working
    /// fractions are found, each is raised by this fraction of itself (never
    /// past the proposal), so the advice goes a little beyond the learned
    /// boundary whatever the classifier's steepness. 0 for none.
    pub slack: f32,
}

impl Refine {
    /// The default: probability at least [`DEFAULT_MIN_PROB`], 6 bisection steps.
    pub const DEFAULT: Refine = Refine {
        min_prob: DEFAULT_MIN_PROB,
        steps: 6,
        slack: DEFAULT_SLACK,
    };
}

/// The probability refinement keeps by default.
pub const DEFAULT_MIN_PROB: f32 = 0.6;

/// The default [`Refine::slack`].
pub const DEFAULT_SLACK: f32 = 0.15;

/// What [`Bundle::recommend_with`] is asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options<'l> {
    /// Features no recommendation may act on directly (they may still change
    /// as a consequence of a change to one of their causes).
    pub forbid: FeatureSet,
    /// Refine the networks' proposal; `None` returns it as it is.
    pub refine: Option<Refine>,
    /// Bounds, directions and the maximum number of changes for this request.
    pub limits: Limits<'l>,
}

impl Options<'static> {
    /// `forbid` and `refine`, with no per-request limits.
    pub const fn new(forbid: FeatureSet, refine: Option<Refine>) -> Self {
        Options {
            forbid,
            refine,
            limits: Limits::NONE,
        }
    }
}

/// A trial point of the refinement: a set of interventions and the fraction
/// of each proposed change it applies.
#[derive(Debug, Clone, Copy)]
struct Trial {
    set: FeatureSet,
    frac: [f32; MAX_FEATURES],
}

/// The buffers one refinement evaluation reads and writes.
struct Refiner<'b, 'a> {
    bundle: &'b Bundle<'a>,
    carma: &'b Carma<'a>,
    /// The person, standardized.
    x_std: &'b [f32],
    /// The person, in original units.
    x_raw: &'b [f32],
    /// Each flow layer's factual input.
    factual: &'b [f32],
    /// The factual latent.
    z: &'b [f32],
    /// The proposal's standardized counterfactual values.
    target: &'b [f32],
    /// The intervention values of the trial.
    values: &'b mut [f32],
    /// The trial's counterfactual.
    trial: &'b mut [f32],
    aux: &'b mut [f32],
    /// What a one-layer flow keeps between evaluations, with sums in `aux`
    /// (`Flow::invert_do`): they all start from `z` and `factual`.
    memo: Memo,
    inner: &'b mut [f32],
    /// Each feature's allowed interval, standardized.
    lo: [f32; MAX_FEATURES],
    hi: [f32; MAX_FEATURES],
    /// The same intervals in original units (for the integer grids).
    lo_raw: [f32; MAX_FEATURES],
    hi_raw: [f32; MAX_FEATURES],
}

impl Refiner<'_, '_> {
    /// The counterfactual of `t` in `self.trial`; its probability, cost,
    /// the features that may differ from the factual, and the interventions
    /// it made (`t.set` less the integer features whose scaled change rounds
    /// to nothing).
    fn eval(&mut self, t: &Trial) -> Result<(f32, f32, FeatureSet, FeatureSet), Error> {
        let whole = self.bundle.binary().union(self.bundle.categorical());
        let integer = self.bundle.grid().difference(self.bundle.categorical());
        let mut set = t.set;
        for k in t.set.iter() {
            if integer.contains(k) {
                // On the grid, in original units, within the interval.
                if let (Some(v), Some(&xr), Some(&a), Some(&f), Some(m), Some(sd)) = (
                    self.values.get_mut(k),
                    self.x_raw.get(k),
                    self.target.get(k),
                    t.frac.get(k),
                    self.bundle.mean(k),
                    self.bundle.std(k),
                ) {
                    let (lo, hi) = (
                        self.lo_raw.get(k).copied().unwrap_or(f32::NEG_INFINITY),
                        self.hi_raw.get(k).copied().unwrap_or(f32::INFINITY),
                    );
                    let want = xr + f * ((a * sd + m) - xr);
                    match self.bundle.snap(k, want, lo, hi) {
                        Some(g) if !same_point(self.bundle, k, g, xr) => *v = (g - m) / sd,
                        _ => {
                            set.remove(k);
                        }
                    }
                }
                continue;
            }
            if let (Some(v), Some(&x), Some(&a), Some(&f)) = (
                self.values.get_mut(k),
                self.x_std.get(k),
                self.target.get(k),
                t.frac.get(k),
            ) {
                // A binary or categorical feature takes its rounded value
                // exactly (it is only ever dropped, never scaled); a
                // continuous one stays within its allowed interval.
                *v = if whole.contains(k) {
                    a
                } else {
                    let (lo, hi) = (
                        self.lo.get(k).copied().unwrap_or(f32::NEG_INFINITY),
                        self.hi.get(k).copied().unwrap_or(f32::INFINITY),
                    );
                    (x + f * (a - x)).max(lo).min(hi)
                };
            }
        }
        self.trial.copy_from_slice(self.z);
        let track = Track {
            moved: set,
            factual: self.factual,
        };
        let fixed = Fixed {
            set,
            values: self.values,
        };
        let changed = self.bundle.flow().invert_do(
            self.trial,
            Some(track),
            fixed,
            self.aux,
            Some(&mut self.memo),
            self.inner,
        )?;
        finite(self.trial, Quantity::Reconstruction)?;
        round_consequences(self.bundle, self.trial, changed.difference(set));
        let p = self.bundle.classify_unchecked(self.trial, self.inner)?;
        let cost = self
            .carma
            .cost(self.x_std, self.trial, set, self.bundle.actionable());
        Ok((p, cost, changed, set))
    }
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
    /// This is the networks' answer as it is, with the bits it has always
    /// had: binary features are not rounded and the bundle's bounds and
    /// directions are not applied (`status`, `bound_by_limit` and
    /// `out_of_range` are still filled in). Advice for a person should come
    /// from [`Bundle::recommend_with`], which honours them.
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
        let options = Options::new(forbid, None);
        self.recommend_impl(x_raw, &options, false, x_cf_raw_out, scratch)
    }

    /// [`Bundle::recommend`] with options: the forbidden features and the
    /// refinement of the proposal ([`Refine`]).
    ///
    /// Binary features are exact: the networks' proposal for an intervened
    /// binary feature is rounded in original units (1 if it is at least
    /// 0.5, else 0) and applied as a hard intervention (as
    /// [`Bundle::intervene`] does), so the counterfactual, its probability
    /// and its cost are those of that exact value, and the counterfactual
    /// holds exactly 0 or 1. A binary feature whose rounded value is the
    /// person's own is no change and leaves the mask; if nothing is left,
    /// the counterfactual is the person and the cost 0. `cost_unrefined`
    /// is the cost of this rounded (and limited, see below) proposal. When
    /// the proposal has no binary feature, no limit touches it and there is
    /// no refinement, the mask, probabilities, cost and counterfactual are
    /// bit for bit those of [`Bundle::recommend`] (which neither rounds nor
    /// limits, for compatibility).
    ///
    /// With refinement the cost never exceeds the rounded proposal's and
    /// the probability stays at least `min_prob` (when the proposal reached
    /// it); every step is deterministic and runs on the caller's scratch.
    ///
    /// Limits (docs/MATH.md, section 6): every intervened value stays within
    /// the bundle's bounds ([`Bundle::bounds`]) and the request's
    /// ([`Options::limits`]), and never moves against the bundle's or the
    /// request's direction; at most [`Limits::max_changes`] features change.
    /// [`Recommendation::status`] says whether the answer is advice, and
    /// `bound_by_limit` / `max_changes_bound` which limits bound.
    ///
    /// Errors: those of [`Bundle::recommend`],
    /// [`InputError::BadRefine`] for a `min_prob` that is not in `[0.5, 1]`,
    /// and [`InputError::BadLimits`] / [`InputError::Length`] for
    /// contradictory or misshapen limits.
    pub fn recommend_with(
        &self,
        x_raw: &[f32],
        options: &Options,
        x_cf_raw_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<Recommendation, Error> {
        self.recommend_impl(x_raw, options, true, x_cf_raw_out, scratch)
    }

    /// [`Bundle::recommend_with`]; `exact` honours the feature kinds and the
    /// limits (off only for [`Bundle::recommend`]'s historical bits).
    pub(crate) fn recommend_impl(
        &self,
        x_raw: &[f32],
        options: &Options,
        exact: bool,
        x_cf_raw_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<Recommendation, Error> {
        let forbid = options.forbid;
        if let Some(r) = options.refine {
            if !(r.min_prob >= ACCEPT_THRESHOLD && r.min_prob <= 1.0) {
                return Err(InputError::BadRefine.into());
            }
        }
        let carma = self.carma_or_err()?;
        self.check_input(x_raw)?;
        self.check_len(x_cf_raw_out, Argument::Output)?;
        self.check_set(forbid)?;
        self.check_limits(&options.limits)?;
        self.check_scratch(scratch)?;
        if let Some(index) = self
            .binary()
            .iter()
            .find(|&i| x_raw.get(i).is_some_and(|&v| v != 0.0 && v != 1.0))
        {
            return Err(InputError::NotBinary { index }.into());
        }
        self.check_grid_input(x_raw)?;
        let d = self.n_features();
        let out_of_range = self.out_of_range(x_raw);
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
        let (z, rest) = rest.split_at_mut_checked(d).ok_or(too_small)?;
        let (refine_bufs, inner) = rest.split_at_mut_checked(5 * d).ok_or(too_small)?;
        let (x_std, saved) = factual.split_at_mut_checked(d).ok_or(too_small)?;
        self.standardize(x_raw, x_std)?;
        // The classifier first: an accepted individual needs no latent.
        let prob_before = self.classify_unchecked(x_std, inner)?;
        if prob_before >= ACCEPT_THRESHOLD {
            x_cf_raw_out.copy_from_slice(x_raw);
            return Ok(Recommendation::already(prob_before, out_of_range));
        }

        z.copy_from_slice(x_std);
        self.flow().abduct(z, saved, inner)?;
        finite(z, Quantity::Latent)?;
        let factual: &[f32] = factual;
        let x_std = factual.get(..d).unwrap_or_default();

        // Each feature's allowed interval (original units), and the
        // features no limit lets move at all.
        let mut lo = [f32::NEG_INFINITY; MAX_FEATURES];
        let mut hi = [f32::INFINITY; MAX_FEATURES];
        let frozen = if exact {
            self.intervals(x_raw, &options.limits, &mut lo, &mut hi)
        } else {
            FeatureSet::EMPTY
        };
        let proposed = carma.mask(z, self.actionable().difference(forbid), inner)?;
        // A feature the limits hold still is not offered to the action
        // network (as if forbidden); the mask network decides per feature,
        // so the rest of its mask is the same.
        let mut bound_by_limit = proposed.intersection(frozen);
        let mask = proposed.difference(frozen);
        // The output slice holds delta, then z_cf and x~_cf, then x_cf; `z`
        // keeps the factual latent (refinement starts from it).
        let delta = x_cf_raw_out;
        carma.action(z, mask, delta, inner)?;
        for (i, (di, &zi)) in delta.iter_mut().zip(z.iter()).enumerate() {
            *di = if mask.contains(i) { zi + *di } else { zi };
        }
        let x_cf_std = delta;
        // Features the intervention cannot reach keep their factual value
        // exactly (not T^-1(T(x)), which differs by rounding).
        let track = Track {
            moved: mask,
            factual,
        };
        let mut changed = self.flow().invert(x_cf_std, Some(track), inner)?;
        finite(x_cf_std, Quantity::Reconstruction)?;
        let mut prob_after = self.classify_unchecked(x_cf_std, inner)?;
        let mut cost = carma.cost(x_std, x_cf_std, mask, self.actionable());
        finite(&[cost], Quantity::Cost)?;
        let mut cost_unrefined = cost;
        let mut mask = mask;
        let mut refined = false;
        let mut max_changes_bound = false;
        let binary = self.binary();
        if (exact || options.refine.is_some()) && !mask.is_empty() {
            let (target, rest) = refine_bufs.split_at_mut(d);
            let (values, rest) = rest.split_at_mut(d);
            let (trial, aux) = rest.split_at_mut(d);
            target.copy_from_slice(x_cf_std);
            let mut adjusted = false;
            if exact {
                let before = mask;
                mask = round_binary(self, x_raw, mask, target);
                adjusted |= !mask.intersection(binary).is_empty() || mask != before;
                let (kept, clipped) = clip(self, x_raw, mask, &lo, &hi, target);
                adjusted |= !clipped.is_empty();
                bound_by_limit = bound_by_limit.union(clipped);
                mask = kept;
                adjusted |= !mask.intersection(self.grid()).is_empty();
                mask = round_grid(self, x_raw, mask, &lo, &hi, target);
            }
            // The refiner's bounds, standardized (a standard deviation is positive).
            let (mut lo_std, mut hi_std) = (
                [f32::NEG_INFINITY; MAX_FEATURES],
                [f32::INFINITY; MAX_FEATURES],
            );
            for k in 0..d {
                if let (Some(l), Some(h), Some(m), Some(s), Some(ls), Some(hs)) = (
                    lo.get(k),
                    hi.get(k),
                    self.mean(k),
                    self.std(k),
                    lo_std.get_mut(k),
                    hi_std.get_mut(k),
                ) {
                    *ls = (l - m) / s;
                    *hs = (h - m) / s;
                }
            }
            let mut refiner = Refiner {
                bundle: self,
                carma,
                x_std,
                x_raw,
                factual,
                z,
                target,
                values,
                trial,
                aux,
                memo: Memo::default(),
                inner,
                lo: lo_std,
                hi: hi_std,
                lo_raw: lo,
                hi_raw: hi,
            };
            let min_p = options.refine.map_or(ACCEPT_THRESHOLD, |r| r.min_prob);
            let max_n = options.limits.max_changes.map(usize::from);
            // Twice at most: the proposal as the limits leave it; then, if
            // refinement kept more than `max_changes` features, their
            // best-working subset of that size.
            for pass in 0..2 {
                if pass == 1 {
                    match max_n {
                        Some(n) if mask.len() > n => {
                            mask = fewer_changes(&mut refiner, mask, n, min_p)?;
                            max_changes_bound = true;
                            adjusted = true;
                        }
                        _ => break,
                    }
                }
                if adjusted {
                    if mask.is_empty() {
                        // Nothing is left to change.
                        x_cf_std.copy_from_slice(x_std);
                        prob_after = prob_before;
                        cost = 0.0;
                        changed = FeatureSet::EMPTY;
                    } else {
                        let all = Trial {
                            set: mask,
                            frac: [1.0; MAX_FEATURES],
                        };
                        let (p, c, ch, set) = refiner.eval(&all)?;
                        finite(&[c], Quantity::Cost)?;
                        x_cf_std.copy_from_slice(refiner.trial);
                        prob_after = p;
                        cost = c;
                        changed = ch;
                        mask = set;
                    }
                    if pass == 0 {
                        cost_unrefined = cost;
                    }
                }
                if let Some(r) = options.refine.filter(|_| !mask.is_empty()) {
                    let best = refine(&mut refiner, mask, prob_after, cost, r, x_cf_std)?;
                    if let Some((set, p, c, ch)) = best {
                        mask = set;
                        prob_after = p;
                        cost = c;
                        changed = ch;
                        refined = true;
                    }
                }
            }
        }
        // Integer and categorical consequences are rounded to their grids
        // (the interventions already are), and the classifier sees the
        // rounded person (docs/MATH.md, section 6); refinement's trials
        // already were.
        let grid = self.grid();
        if exact && round_consequences(self, x_cf_std, changed.difference(mask)) {
            prob_after = self.classify_unchecked(x_cf_std, inner)?;
        }
        for (i, (v, &x)) in x_cf_std.iter_mut().zip(x_raw).enumerate() {
            *v = match (changed.contains(i), self.mean(i), self.std(i)) {
                // An intervened binary feature differs from the person's
                // value (else rounding dropped it): it is the other one,
                // exactly.
                _ if exact && mask.contains(i) && binary.contains(i) => 1.0 - x,
                (true, Some(m), Some(s)) => {
                    let v = *v * s + m;
                    let v = match (exact && mask.contains(i), lo.get(i), hi.get(i)) {
                        // Rounding to original units must not cross a limit.
                        (true, Some(&l), Some(&h)) => v.max(l).min(h),
                        _ => v,
                    };
                    // A grid value comes back exactly (not off by the
                    // round trip through standardization), an intervention
                    // within its interval, a consequence within its codes.
                    if exact && grid.contains(i) {
                        let (l, h) = if mask.contains(i) {
                            let l = lo.get(i).copied().unwrap_or(f32::NEG_INFINITY);
                            (l, hi.get(i).copied().unwrap_or(f32::INFINITY))
                        } else {
                            consequence_bounds(self, i)
                        };
                        self.snap(i, v, l, h).unwrap_or(v)
                    } else {
                        v
                    }
                }
                _ => x,
            };
        }
        finite(x_cf_std, Quantity::Original)?;
        let accepted = prob_after >= ACCEPT_THRESHOLD;
        let limited = !bound_by_limit.is_empty()
            || max_changes_bound
            || !forbid.intersection(self.actionable()).is_empty();
        let status = match (accepted, limited) {
            (true, _) => Status::Recommended,
            (false, true) => Status::NoneWithinLimits,
            (false, false) => Status::NotReached,
        };
        Ok(Recommendation {
            mask,
            prob_before,
            prob_after,
            accepted,
            already_accepted: false,
            cost,
            cost_unrefined,
            refined,
            status,
            bound_by_limit,
            max_changes_bound,
            out_of_range,
        })
    }

    /// Checks per-request limits: each bound slice empty or of length `D`,
    /// no NaN, no `min > max`, no feature both increase- and decrease-only.
    pub(crate) fn check_limits(&self, limits: &Limits<'_>) -> Result<(), Error> {
        for v in [limits.min, limits.max] {
            if !v.is_empty() {
                self.check_len(v, Argument::Limits)?;
            }
            if let Some(index) = v.iter().position(|x| x.is_nan()) {
                return Err(InputError::BadLimits { index }.into());
            }
        }
        let both = limits.increase.intersection(limits.decrease);
        self.check_set(limits.increase.union(limits.decrease))?;
        if let Some(index) = both.iter().next() {
            return Err(InputError::BadLimits { index }.into());
        }
        if let Some(index) = limits
            .min
            .iter()
            .zip(limits.max)
            .position(|(lo, hi)| lo > hi)
        {
            return Err(InputError::BadLimits { index }.into());
        }
        Ok(())
    }

    /// Each feature's allowed interval `[lo, hi]` (original units): the
    /// bundle's bounds and direction and the request's, intersected, with
    /// the person's value as the end a direction fixes. Returns the
    /// actionable features no value of which the interval allows besides
    /// the person's own.
    fn intervals(
        &self,
        x_raw: &[f32],
        limits: &Limits<'_>,
        lo: &mut [f32; MAX_FEATURES],
        hi: &mut [f32; MAX_FEATURES],
    ) -> FeatureSet {
        let mut frozen = FeatureSet::EMPTY;
        for k in self.actionable().iter() {
            let (Some(l), Some(h), Some(&x)) = (lo.get_mut(k), hi.get_mut(k), x_raw.get(k)) else {
                continue;
            };
            let (bmin, bmax) = self.bounds(k).unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
            *l = bmin.max(limits.min.get(k).copied().unwrap_or(f32::NEG_INFINITY));
            *h = bmax.min(limits.max.get(k).copied().unwrap_or(f32::INFINITY));
            let dir = self.direction(k);
            if limits.increase.contains(k) || dir == Direction::Increase {
                *l = l.max(x);
            }
            if limits.decrease.contains(k) || dir == Direction::Decrease {
                *h = h.min(x);
            }
            let stuck = if self.binary().contains(k) {
                let other = 1.0 - x;
                !(*l <= other && other <= *h)
            } else if self.grid().contains(k) {
                // No grid point in the interval but the person's own.
                let step = self.grid_step(k);
                let first = libm::ceilf(*l / step) * step;
                let last = libm::floorf(*h / step) * step;
                *l > *h || first > last || (first == last && same_point(self, k, first, x))
            } else {
                *l > *h || (*l == x && *h == x)
            };
            if stuck {
                frozen.insert(k);
            }
        }
        frozen
    }

    /// The features whose value `x_raw` lies outside the bundle's bounds.
    pub fn out_of_range(&self, x_raw: &[f32]) -> FeatureSet {
        let mut out = FeatureSet::EMPTY;
        for (k, &x) in x_raw.iter().enumerate().take(self.n_features()) {
            if let Some((lo, hi)) = self.bounds(k) {
                if !(lo <= x && x <= hi) {
                    out.insert(k);
                }
            }
        }
        out
    }

    /// The cost of moving `x_std` to `x_cf_std` by intervening on `mask`
    /// (docs/MATH.md, section 5): `mean over actionable k of w_k m_k (x~_k - x~cf_k)^2 / range_k`.
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

/// Rounds each intervened binary feature of the standardized proposal
/// `target` to 0 or 1 in original units (1 from 0.5 on) and stores the
/// standardized value of that exact number; returns `mask` without the
/// binary features whose rounded value is the person's own.
fn round_binary(b: &Bundle<'_>, x_raw: &[f32], mask: FeatureSet, target: &mut [f32]) -> FeatureSet {
    let mut out = mask;
    for k in mask.intersection(b.binary()).iter() {
        if let (Some(t), Some(&x), Some(m), Some(s)) =
            (target.get_mut(k), x_raw.get(k), b.mean(k), b.std(k))
        {
            let v = if *t * s + m >= 0.5 { 1.0 } else { 0.0 };
            if v == x {
                out.remove(k);
            } else {
                *t = (v - m) / s;
            }
        }
    }
    out
}

/// True if `a` and `b` are the same point of feature `k`'s grid (within a
/// ten-thousandth of a step).
fn same_point(b: &Bundle<'_>, k: usize, a: f32, x: f32) -> bool {
    libm::fabsf(a - x) <= 1e-4 * b.grid_step(k)
}

/// Where a consequence on a grid feature may be rounded: a categorical
/// feature's codes, anywhere for an integer one.
fn consequence_bounds(b: &Bundle<'_>, k: usize) -> (f32, f32) {
    match b.kind(k) {
        Kind::Categorical { levels } => (0.0, levels as f32 - 1.0),
        _ => (f32::NEG_INFINITY, f32::INFINITY),
    }
}

/// Rounds the integer and categorical features among `moved` of the
/// standardized counterfactual `x_cf_std` to their grids (a categorical
/// one within its codes); true if a value changed.
fn round_consequences(b: &Bundle<'_>, x_cf_std: &mut [f32], moved: FeatureSet) -> bool {
    let mut any = false;
    for k in moved.intersection(b.grid()).iter() {
        if let (Some(v), Some(m), Some(sd)) = (x_cf_std.get_mut(k), b.mean(k), b.std(k)) {
            let (l, h) = consequence_bounds(b, k);
            if let Some(g) = b.snap(k, *v * sd + m, l, h) {
                let g = (g - m) / sd;
                any |= g != *v;
                *v = g;
            }
        }
    }
    any
}

/// Rounds each intervened integer or categorical feature of the
/// standardized proposal `target` to the nearest point of its grid within
/// its interval `[lo, hi]` (original units) and stores the standardized
/// value of that exact number; returns `mask` without the features whose
/// rounded value is the person's own (or whose interval holds no point).
fn round_grid(
    b: &Bundle<'_>,
    x_raw: &[f32],
    mask: FeatureSet,
    lo: &[f32; MAX_FEATURES],
    hi: &[f32; MAX_FEATURES],
    target: &mut [f32],
) -> FeatureSet {
    let mut out = mask;
    for k in mask.intersection(b.grid()).iter() {
        if let (Some(t), Some(&x), Some(m), Some(s), Some(&l), Some(&h)) = (
            target.get_mut(k),
            x_raw.get(k),
            b.mean(k),
            b.std(k),
            lo.get(k),
            hi.get(k),
        ) {
            match b.snap(k, *t * s + m, l, h) {
                Some(g) if !same_point(b, k, g, x) => *t = (g - m) / s,
                _ => {
                    out.remove(k);
                }
            }
        }
    }
    out
}

/// Clips each continuous intervention of `mask` (standardized values in
/// `target`) into its allowed interval `[lo, hi]` (original units). Returns
/// the features kept (a feature clipped to the person's own value is no
/// change) and the features a limit clipped.
fn clip(
    b: &Bundle<'_>,
    x_raw: &[f32],
    mask: FeatureSet,
    lo: &[f32; MAX_FEATURES],
    hi: &[f32; MAX_FEATURES],
    target: &mut [f32],
) -> (FeatureSet, FeatureSet) {
    let (mut kept, mut clipped) = (mask, FeatureSet::EMPTY);
    for k in mask.difference(b.binary()).iter() {
        if let (Some(t), Some(&x), Some(m), Some(s), Some(&l), Some(&h)) = (
            target.get_mut(k),
            x_raw.get(k),
            b.mean(k),
            b.std(k),
            lo.get(k),
            hi.get(k),
        ) {
            let a = *t * s + m;
            // A categorical proposal past its first or last level is only
            // that level: no limit binds there.
            let a = if b.categorical().contains(k) {
                let (first, last) = consequence_bounds(b, k);
                a.max(first).min(last)
            } else {
                a
            };
            let c = a.max(l).min(h);
            if c != a {
                clipped.insert(k);
                if c == x {
                    kept.remove(k);
                } else {
                    *t = (c - m) / s;
                }
            }
        }
    }
    (kept, clipped)
}

/// At most `n` of the interventions of `mask` (all at their full values):
/// removes one feature at a time, each time the one whose removal keeps
/// the probability at least `min_p` at the lowest cost, or, if none does,
/// the one whose removal keeps the highest probability (ties: the lowest
/// index). Deterministic.
fn fewer_changes(
    r: &mut Refiner<'_, '_>,
    mask: FeatureSet,
    n: usize,
    min_p: f32,
) -> Result<FeatureSet, Error> {
    let mut set = mask;
    while set.len() > n {
        // (feature, works, cost, probability) of the best removal so far.
        let mut best: Option<(usize, bool, f32, f32)> = None;
        for k in set.iter() {
            let mut t = Trial {
                set,
                frac: [1.0; MAX_FEATURES],
            };
            t.set.remove(k);
            let (p, c) = if t.set.is_empty() {
                (f32::NEG_INFINITY, 0.0)
            } else {
                let (p, c, _, _) = r.eval(&t)?;
                (p, c)
            };
            let works = p >= min_p && c.is_finite();
            let better = match best {
                None => true,
                Some((_, bw, bc, bp)) => match (works, bw) {
                    (true, false) => true,
                    (false, true) => false,
                    (true, true) => c < bc,
                    (false, false) => p > bp,
                },
            };
            if better {
                best = Some((k, works, c, p));
            }
        }
        match best {
            Some((k, _, _, _)) => {
                set.remove(k);
            }
            None => break,
        }
    }
    Ok(set)
}

/// How far refinement may extend a proposal that misses the margin: at most
/// this multiple of each change.
pub const MAX_EXTEND: f32 = 2.0;

/// The best point refinement has found: its set, probability, cost and the
/// features that may differ from the factual.
type Found = (FeatureSet, f32, f32, FeatureSet);

/// Refines a proposal `mask` (probability `p0`, cost `c0`) as [`Refine`]
/// says; the best counterfactual found is left in `best_out`. Returns it,
/// or `None` when the proposal itself is kept.
fn refine(
    r: &mut Refiner<'_, '_>,
    mask: FeatureSet,
    p0: f32,
    c0: f32,
    opts: Refine,
    best_out: &mut [f32],
) -> Result<Option<Found>, Error> {
    // Binary and categorical features are only ever dropped, never scaled.
    let binary = r.bundle.binary().union(r.bundle.categorical());
    let mut cur = Trial {
        set: mask,
        frac: [1.0; MAX_FEATURES],
    };
    let mut best: Option<Found> = None;
    let mut best_c = c0;
    let mut accept = |r: &mut Refiner<'_, '_>,
                      t: &Trial,
                      best: &mut Option<Found>,
                      best_c: &mut f32,
                      cap: Option<f32>|
     -> Result<bool, Error> {
        if t.set.is_empty() {
            return Ok(false);
        }
        let (p, c, changed, set) = r.eval(t)?;
        if p >= opts.min_prob && c.is_finite() && c <= cap.unwrap_or(*best_c) {
            *best = Some((set, p, c, changed));
            *best_c = c;
            best_out.copy_from_slice(r.trial);
            Ok(true)
        } else {
            Ok(false)
        }
    };
    // Scales every continuous change of `t` by `f` (a binary feature stays
    // at 0 or 1: it is only ever dropped).
    let scaled = |t: &Trial, f: f32| {
        let mut out = *t;
        for k in out.set.difference(binary).iter() {
            if let Some(v) = out.frac.get_mut(k) {
                *v *= f;
            }
        }
        out
    };
    // 0. A proposal short of the margin is extended along its own direction
    //    (at most MAX_EXTEND times each change), then shrunk back to the
    //    smallest extension that reaches it.
    let mut limit = 1.0f32;
    if p0 < opts.min_prob {
        let mut reached = None;
        let mut below = 1.0f32;
        for f in [1.25f32, 1.5, MAX_EXTEND] {
            if accept(
                r,
                &scaled(&cur, f),
                &mut best,
                &mut best_c,
                Some(f32::INFINITY),
            )? {
                reached = Some(f);
                break;
            }
            below = f;
        }
        let Some(mut hi) = reached else {
            return Ok(None);
        };
        let mut lo = below;
        for _ in 0..opts.steps {
            let mid = 0.5 * (lo + hi);
            if accept(
                r,
                &scaled(&cur, mid),
                &mut best,
                &mut best_c,
                Some(f32::INFINITY),
            )? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        cur = scaled(&cur, hi);
        limit = hi;
    }
    let start_c = best_c;
    // Each feature's share of the current point's cost, for the orders below.
    let mut share = [0.0f32; MAX_FEATURES];
    for k in mask.iter() {
        let f = cur.frac.get(k).copied().unwrap_or(1.0);
        let one = FeatureSet::from_bits(1u64 << k);
        if let Some(s) = share.get_mut(k) {
            *s = f * f * r.carma.cost(r.x_std, r.target, one, r.bundle.actionable());
        }
    }
    let mut order = [0u8; MAX_FEATURES];
    let mut n = 0;
    for k in mask.iter() {
        if let Some(o) = order.get_mut(n) {
            *o = k as u8;
            n += 1;
        }
    }
    let order = order.get_mut(..n).unwrap_or_default();
    // Ascending share, ties by index: a deterministic insertion sort.
    for i in 1..order.len() {
        let mut j = i;
        while j > 0 {
            let (a, b) = (order[j - 1], order[j]);
            let (sa, sb) = (share[usize::from(a)], share[usize::from(b)]);
            if sa > sb || (sa == sb && a > b) {
                order.swap(j - 1, j);
                j -= 1;
            } else {
                break;
            }
        }
    }
    // 1. Drop what is not needed, cheapest first.
    for &k in order.iter() {
        let mut t = cur;
        t.set.remove(usize::from(k));
        if accept(r, &t, &mut best, &mut best_c, None)? {
            cur = t;
        }
    }
    // 2. Shrink every remaining change by one common fraction.
    let (mut lo, mut hi) = (0.0f32, 1.0f32);
    let base = cur;
    for _ in 0..opts.steps {
        let mid = 0.5 * (lo + hi);
        let t = scaled(&base, mid);
        if accept(r, &t, &mut best, &mut best_c, None)? {
            hi = mid;
            cur = t;
        } else {
            lo = mid;
        }
    }
    // 3. Then each change alone, costliest first.
    for &k in order.iter().rev() {
        let k = usize::from(k);
        if !cur.set.contains(k) || binary.contains(k) {
            continue;
        }
        let (mut lo, mut hi) = (0.0f32, cur.frac.get(k).copied().unwrap_or(1.0));
        for _ in 0..opts.steps {
            let mid = 0.5 * (lo + hi);
            let mut t = cur;
            if let Some(f) = t.frac.get_mut(k) {
                *f = mid;
            }
            if accept(r, &t, &mut best, &mut best_c, None)? {
                hi = mid;
                cur = t;
            } else {
                lo = mid;
            }
        }
    }
    // 4. The safety margin on the size of each remaining change, never past
    //    the starting point.
    if best.is_some() && opts.slack > 0.0 {
        let mut t = cur;
        for k in t.set.difference(binary).iter() {
            if let Some(f) = t.frac.get_mut(k) {
                *f = (*f * (1.0 + opts.slack)).min(limit);
            }
        }
        accept(r, &t, &mut best, &mut best_c, Some(start_c))?;
    }
    Ok(best)
}
