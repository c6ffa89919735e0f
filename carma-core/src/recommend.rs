//! The whole recourse pipeline in original units (docs/MATH.md, sections 1
//! to 6), with the optional refinement of the networks' proposal (section 6).

use crate::FeatureSet;
use crate::bundle::{Bundle, finite};
use crate::carma::Carma;
use crate::error::{Argument, Error, InputError, Quantity};
use crate::flow::{Fixed, Track};
use crate::format::MAX_FEATURES;

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
    /// Cost of the recommendation in standardized units (docs/MATH.md, section 1).
    pub cost: f32,
    /// Cost of the networks' own proposal, before refinement (equal to
    /// `cost` when nothing was refined).
    pub cost_unrefined: f32,
    /// True if refinement changed the networks' proposal.
    pub refined: bool,
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
pub const DEFAULT_MIN_PROB: f32 = 0.7;

/// The default [`Refine::slack`].
pub const DEFAULT_SLACK: f32 = 0.15;

/// What [`Bundle::recommend_with`] is asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Features no recommendation may act on directly (they may still change
    /// as a consequence of a change to one of their causes).
    pub forbid: FeatureSet,
    /// Refine the networks' proposal; `None` returns it as it is.
    pub refine: Option<Refine>,
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
    inner: &'b mut [f32],
}

impl Refiner<'_, '_> {
    /// The counterfactual of `t` in `self.trial`; its probability, cost and
    /// the features that may differ from the factual.
    fn eval(&mut self, t: &Trial) -> Result<(f32, f32, FeatureSet), Error> {
        let binary = self.bundle.binary();
        for k in t.set.iter() {
            if let (Some(v), Some(&x), Some(&a), Some(&f)) = (
                self.values.get_mut(k),
                self.x_std.get(k),
                self.target.get(k),
                t.frac.get(k),
            ) {
                // A binary feature takes its rounded value exactly (it is
                // only ever dropped, never scaled).
                *v = if binary.contains(k) {
                    a
                } else {
                    x + f * (a - x)
                };
            }
        }
        self.trial.copy_from_slice(self.z);
        let track = Track {
            moved: t.set,
            factual: self.factual,
        };
        let fixed = Fixed {
            set: t.set,
            values: self.values,
        };
        let changed =
            self.bundle
                .flow()
                .invert_do(self.trial, Some(track), fixed, self.aux, self.inner)?;
        finite(self.trial, Quantity::Reconstruction)?;
        let p = self.bundle.classify_unchecked(self.trial, self.inner)?;
        let cost = self
            .carma
            .cost(self.x_std, self.trial, t.set, self.bundle.actionable());
        Ok((p, cost, changed))
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
        let options = Options {
            forbid,
            refine: None,
        };
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
    /// is the cost of this rounded proposal. Without binary features in the
    /// proposal and without refinement the result is bit for bit that of
    /// [`Bundle::recommend`] (which does not round, for compatibility).
    ///
    /// With refinement the cost never exceeds the rounded proposal's and
    /// the probability stays at least `min_prob` (when the proposal reached
    /// it); every step is deterministic and runs on the caller's scratch.
    ///
    /// Errors: those of [`Bundle::recommend`], and
    /// [`InputError::BadRefine`] for a `min_prob` that is not in `[0.5, 1]`.
    pub fn recommend_with(
        &self,
        x_raw: &[f32],
        options: &Options,
        x_cf_raw_out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<Recommendation, Error> {
        self.recommend_impl(x_raw, options, true, x_cf_raw_out, scratch)
    }

    /// [`Bundle::recommend_with`]; `exact_binary` rounds the intervened
    /// binary features (off only for [`Bundle::recommend`]'s bits).
    pub(crate) fn recommend_impl(
        &self,
        x_raw: &[f32],
        options: &Options,
        exact_binary: bool,
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
        let (z, rest) = rest.split_at_mut_checked(d).ok_or(too_small)?;
        let (refine_bufs, inner) = rest.split_at_mut_checked(5 * d).ok_or(too_small)?;
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
                cost_unrefined: 0.0,
                refined: false,
            });
        }

        z.copy_from_slice(x_std);
        self.flow().abduct(z, saved, inner)?;
        finite(z, Quantity::Latent)?;
        let factual: &[f32] = factual;
        let x_std = factual.get(..d).unwrap_or_default();

        let mask = carma.mask(z, self.actionable().difference(forbid), inner)?;
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
        let rounding = exact_binary && !mask.intersection(self.binary()).is_empty();
        if (rounding || options.refine.is_some()) && !mask.is_empty() {
            let (target, rest) = refine_bufs.split_at_mut(d);
            let (values, rest) = rest.split_at_mut(d);
            let (trial, aux) = rest.split_at_mut(d);
            target.copy_from_slice(x_cf_std);
            if rounding {
                mask = round_binary(self, x_raw, mask, target);
            }
            let mut refiner = Refiner {
                bundle: self,
                carma,
                x_std,
                factual,
                z,
                target,
                values,
                trial,
                aux,
                inner,
            };
            if rounding {
                if mask.is_empty() {
                    // Every proposed binary change rounds to the person's value.
                    x_cf_std.copy_from_slice(x_std);
                    prob_after = prob_before;
                    cost = 0.0;
                    changed = FeatureSet::EMPTY;
                } else {
                    let all = Trial {
                        set: mask,
                        frac: [1.0; MAX_FEATURES],
                    };
                    let (p, c, ch) = refiner.eval(&all)?;
                    finite(&[c], Quantity::Cost)?;
                    x_cf_std.copy_from_slice(refiner.trial);
                    prob_after = p;
                    cost = c;
                    changed = ch;
                }
                cost_unrefined = cost;
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
        for (i, (v, &x)) in x_cf_std.iter_mut().zip(x_raw).enumerate() {
            *v = match (changed.contains(i), self.mean(i), self.std(i)) {
                // An intervened binary feature differs from the person's
                // value (else rounding dropped it): it is the other one,
                // exactly.
                _ if rounding && mask.contains(i) && self.binary().contains(i) => 1.0 - x,
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
            cost_unrefined,
            refined,
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
    let binary = r.bundle.binary();
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
        let (p, c, changed) = r.eval(t)?;
        if p >= opts.min_prob && c.is_finite() && c <= cap.unwrap_or(*best_c) {
            *best = Some((t.set, p, c, changed));
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
