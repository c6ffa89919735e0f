//! Many individuals per call: [`Bundle::recommend_batch`].
//!
//! Still no allocation and no threads (the core is `no_std`); a caller with
//! threads splits the rows into contiguous chunks, one scratch area each
//! (`carma_train::batch` does).
//!
//! Given [`Bundle::batch_scratch_len`] values of scratch, rows go through
//! the lane kernel (`crate::lanes`) 16 at a time: a block is
//! standardized and classified together; the accepted ones are done, the
//! rejected ones are gathered into a block of their own, which takes the
//! whole path together (abduct, mask, action, tracked inversion, classify).
//! Whatever the kernel does not cover runs one row at a time with the same
//! code as [`Bundle::recommend`]: a row the checks refuse, a lane in which
//! any step is not finite (redone alone, so its error is the one
//! `recommend` gives), a flow with more than one layer or hidden layer, and
//! the rejected rows of [`Bundle::recommend_batch_with`] (rounding, limits
//! and refinement are per person). Every row has the bits a single call
//! gives it.

use crate::FeatureSet;
use crate::bundle::Bundle;
use crate::carma::Carma;
use crate::error::{Argument, Error, InputError};
use crate::format::MAX_FEATURES;
use crate::lanes::{FlowLanes, LANES, Lane, finite_lanes, lane, mlp, set_lane};
use crate::recommend::{ACCEPT_THRESHOLD, Options, Recommendation, Status};

impl<'a> Bundle<'a> {
    /// [`Bundle::recommend`] for every row of `xs` (row-major, `D` values
    /// per row, original units), with the same `forbid` for all: row `r`'s
    /// counterfactual goes to row `r` of `out` (`xs.len()` values) and its
    /// outcome to `results[r]`. One scratch area serves the whole batch: at
    /// least [`Bundle::scratch_len`] values, and with
    /// [`Bundle::batch_scratch_len`] values (more; the lane buffers) the
    /// rows go through the lane kernel, several individuals per weight
    /// load, instead of one at a time.
    ///
    /// A problem with one row (not finite, a binary feature not 0 or 1, an
    /// overflow) is that row's `Err` and does not stop the others; wrong
    /// lengths, a short scratch, an unknown feature in `forbid` or a bundle
    /// without CARMA networks fail the whole call before any row is read.
    /// Each row's result has the bits `recommend` gives it alone.
    pub fn recommend_batch(
        &self,
        xs: &[f32],
        forbid: FeatureSet,
        out: &mut [f32],
        results: &mut [Result<Recommendation, Error>],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let options = Options::new(forbid, None);
        self.batch_impl(xs, &options, false, out, results, scratch)
    }

    /// [`Bundle::recommend_batch`] with the options of [`Bundle::recommend_with`]
    /// (forbidden features, refinement); each row's result has the bits
    /// `recommend_with` gives it alone. With [`Bundle::batch_scratch_len`]
    /// values of scratch the classifier runs in lanes, so the accepted
    /// rows cost only that; the rejected ones are done one at a time.
    pub fn recommend_batch_with(
        &self,
        xs: &[f32],
        options: &Options,
        out: &mut [f32],
        results: &mut [Result<Recommendation, Error>],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.batch_impl(xs, options, true, out, results, scratch)
    }

    /// Scratch `f32` values with which [`Bundle::recommend_batch`] runs the
    /// lane kernel: [`Bundle::scratch_len`] (for the rows done one at a
    /// time) plus 16 (the lanes: individuals at a time) times
    /// `6 D + H + 2 W` for the lane buffers, where `H` is the flow's hidden
    /// width and `W` the widest layer of the classifier and the CARMA
    /// networks (Loan at the paper's sizes: 177 + 16 × 170 = 2,897 values,
    /// 11,588 bytes). A smaller scratch (at least [`Bundle::scratch_len`])
    /// is still accepted and runs one row at a time.
    pub fn batch_scratch_len(&self) -> usize {
        self.scratch_len() + LANES * self.lane_values()
    }

    /// Lane groups the kernel keeps: the block being classified, the
    /// rejected block, its latents, its counterfactuals, the action
    /// network's input `[z, m]`, the flow's hidden units and two layer buffers.
    fn lane_values(&self) -> usize {
        let d = self.n_features();
        let width = self.carma().map_or(0, |c| {
            c.mask_net().max_width().max(c.action_net().max_width())
        });
        let width = width.max(self.classifier().max_width());
        6 * d + self.flow().hidden_len() + 2 * width
    }

    /// The batch of [`Bundle::recommend_impl`] calls.
    fn batch_impl(
        &self,
        xs: &[f32],
        options: &Options,
        exact: bool,
        out: &mut [f32],
        results: &mut [Result<Recommendation, Error>],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let carma = self.carma_or_err()?;
        self.check_set(options.forbid)?;
        self.check_scratch(scratch)?;
        let d = self.n_features();
        let rows = results.len();
        let length = |argument, found| InputError::Length {
            argument,
            expected: rows * d,
            found,
        };
        if xs.len() != rows * d {
            return Err(length(Argument::Input, xs.len()).into());
        }
        if out.len() != rows * d {
            return Err(length(Argument::Output, out.len()).into());
        }
        // Options every row would refuse are each row's error, as alone.
        let options_ok = options
            .refine
            .is_none_or(|r| r.min_prob >= ACCEPT_THRESHOLD && r.min_prob <= 1.0)
            && self.check_limits(&options.limits).is_ok();
        let (single, lanes) = scratch.split_at_mut(self.scratch_len());
        let lane_len = LANES * self.lane_values();
        match lanes.get_mut(..lane_len) {
            Some(lanes) if options_ok && d > 0 => {
                let mut run =
                    Run::new(self, carma, options, exact, xs, out, results, single, lanes);
                for r in 0..rows {
                    run.push(r);
                }
                run.finish();
            }
            _ => {
                for ((x, o), r) in xs
                    .chunks_exact(d.max(1))
                    .zip(out.chunks_exact_mut(d.max(1)))
                    .zip(results.iter_mut())
                {
                    *r = self.recommend_impl(x, options, exact, o, single);
                }
            }
        }
        Ok(())
    }
}

/// The lane buffers, each a number of lane groups (see [`Bundle::lane_values`]).
struct Work<'s> {
    /// The standardized block being classified (`D`).
    xc: &'s mut [f32],
    /// The standardized rejected block (`D`).
    xq: &'s mut [f32],
    /// Its latents (`D`).
    z: &'s mut [f32],
    /// Its counterfactual latents, then standardized counterfactuals (`D`).
    v: &'s mut [f32],
    /// The action network's input `[z, m]` (`2 D`).
    zm: &'s mut [f32],
    /// The flow's hidden units.
    hidden: &'s mut [f32],
    /// The layer buffers of the networks.
    a: &'s mut [f32],
    b: &'s mut [f32],
}

/// One batch call on the lane kernel: the two blocks being filled.
struct Run<'r, 'a, 'o> {
    bundle: &'r Bundle<'a>,
    carma: &'r Carma<'a>,
    options: &'r Options<'o>,
    exact: bool,
    /// The flow in lanes, if it has that form and the rejected rows take
    /// the kernel (`recommend_batch`); else they go one at a time.
    flow: Option<FlowLanes<'a>>,
    /// The features the mask may choose.
    allowed: FeatureSet,
    /// A forbidden feature is actionable (the status of an unaccepted answer).
    limited: bool,
    xs: &'r [f32],
    out: &'r mut [f32],
    results: &'r mut [Result<Recommendation, Error>],
    /// Scratch for the rows done one at a time.
    single: &'r mut [f32],
    work: Work<'r>,
    /// The rows of the block being classified, and how many.
    c_rows: [usize; LANES],
    c_n: usize,
    /// The rows of the rejected block, their probabilities, and how many.
    q_rows: [usize; LANES],
    q_prob: Lane,
    q_n: usize,
}

impl<'r, 'a, 'o> Run<'r, 'a, 'o> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        bundle: &'r Bundle<'a>,
        carma: &'r Carma<'a>,
        options: &'r Options<'o>,
        exact: bool,
        xs: &'r [f32],
        out: &'r mut [f32],
        results: &'r mut [Result<Recommendation, Error>],
        single: &'r mut [f32],
        lanes: &'r mut [f32],
    ) -> Self {
        let d = bundle.n_features();
        // Lanes past a partial block keep finite values from earlier ones
        // (never the caller's NaN or subnormal garbage); they are not read out.
        lanes.fill(0.0);
        let g = |n: usize| n * LANES;
        let (xc, rest) = lanes.split_at_mut(g(d));
        let (xq, rest) = rest.split_at_mut(g(d));
        let (z, rest) = rest.split_at_mut(g(d));
        let (v, rest) = rest.split_at_mut(g(d));
        let (zm, rest) = rest.split_at_mut(g(2 * d));
        let (hidden, rest) = rest.split_at_mut(g(bundle.flow().hidden_len()));
        let (a, b) = rest.split_at_mut(rest.len() / 2);
        let flow = if exact || options.refine.is_some() {
            None
        } else {
            FlowLanes::new(bundle.flow())
        };
        Run {
            bundle,
            carma,
            options,
            exact,
            flow,
            allowed: bundle.actionable().difference(options.forbid),
            limited: !options.forbid.intersection(bundle.actionable()).is_empty(),
            xs,
            out,
            results,
            single,
            work: Work {
                xc,
                xq,
                z,
                v,
                zm,
                hidden,
                a,
                b,
            },
            c_rows: [0; LANES],
            c_n: 0,
            q_rows: [0; LANES],
            q_prob: [0.0; LANES],
            q_n: 0,
        }
    }

    /// Row `r`'s input.
    fn x(&self, r: usize) -> &'r [f32] {
        let d = self.bundle.n_features();
        self.xs.get(r * d..(r + 1) * d).unwrap_or_default()
    }

    /// Row `r` on its own, as [`Bundle::recommend_impl`] does it.
    fn one(&mut self, r: usize) {
        let d = self.bundle.n_features();
        let x = self.x(r);
        if let (Some(o), Some(res)) = (
            self.out.get_mut(r * d..(r + 1) * d),
            self.results.get_mut(r),
        ) {
            *res = self
                .bundle
                .recommend_impl(x, self.options, self.exact, o, self.single);
        }
    }

    /// Adds row `r` to the block being classified (or does it alone if the
    /// checks of `recommend` refuse it or it does not standardize finitely).
    fn push(&mut self, r: usize) {
        let b = self.bundle;
        let x = self.x(r);
        let plain = x.iter().all(|v| v.is_finite())
            && b.binary()
                .iter()
                .all(|i| x.get(i).is_some_and(|&v| v == 0.0 || v == 1.0))
            && b.check_grid_input(x).is_ok();
        let mut std = [0.0f32; MAX_FEATURES];
        for (k, (s, &v)) in std.iter_mut().zip(x).enumerate() {
            if let (Some(m), Some(sd)) = (b.mean(k), b.std(k)) {
                *s = (v - m) / sd;
            }
        }
        if !plain || !std.iter().take(x.len()).all(|v| v.is_finite()) {
            self.one(r);
            return;
        }
        let l = self.c_n;
        for (k, &s) in std.iter().enumerate().take(x.len()) {
            if let Some(c) = self.work.xc.get_mut(k * LANES + l) {
                *c = s;
            }
        }
        if let Some(c) = self.c_rows.get_mut(l) {
            *c = r;
        }
        self.c_n += 1;
        if self.c_n == LANES {
            self.classify();
        }
    }

    /// Classifies the block: accepted rows are done, rejected ones join the
    /// rejected block.
    fn classify(&mut self) {
        let n = core::mem::take(&mut self.c_n);
        let w = &mut self.work;
        let p = lane(mlp(self.bundle.classifier(), w.xc, w.a, w.b), 0);
        for l in 0..n {
            let (r, p) = (self.c_rows[l], p[l]);
            if !p.is_finite() {
                self.one(r);
            } else if p >= ACCEPT_THRESHOLD {
                self.accepted(r, p);
            } else if self.flow.is_some() {
                let q = self.q_n;
                let d = self.bundle.n_features();
                for k in 0..d {
                    let v = self.work.xc.get(k * LANES + l).copied().unwrap_or(0.0);
                    if let Some(dst) = self.work.xq.get_mut(k * LANES + q) {
                        *dst = v;
                    }
                }
                self.q_rows[q] = r;
                self.q_prob[q] = p;
                self.q_n += 1;
                if self.q_n == LANES {
                    self.full();
                }
            } else {
                self.one(r);
            }
        }
    }

    /// An accepted row: itself, with an empty mask.
    fn accepted(&mut self, r: usize, p: f32) {
        let d = self.bundle.n_features();
        let x = self.x(r);
        if let (Some(o), Some(res)) = (
            self.out.get_mut(r * d..(r + 1) * d),
            self.results.get_mut(r),
        ) {
            o.copy_from_slice(x);
            *res = Ok(Recommendation::already(p, self.bundle.out_of_range(x)));
        }
    }

    /// The whole path for the rejected block (`recommend`'s steps, lane by
    /// lane); a lane in which a step is not finite is redone alone.
    fn full(&mut self) {
        let n = core::mem::take(&mut self.q_n);
        let Some(flow) = self.flow.as_ref() else {
            return;
        };
        let (b, carma) = (self.bundle, self.carma);
        let d = b.n_features();
        let w = &mut self.work;
        let mut ok = [true; LANES];
        flow.abduct(w.xq, w.z, w.hidden, &mut ok);
        and(&mut ok, finite_lanes(w.z));
        // The mask: phi_i1 > phi_i0 among the allowed features.
        let mut masks = [FeatureSet::EMPTY; LANES];
        {
            let phi = mlp(carma.mask_net(), w.z, w.a, w.b);
            and(&mut ok, no_nan(phi));
            for i in 0..d {
                let (p0, p1) = (lane(phi, 2 * i), lane(phi, 2 * i + 1));
                for (l, m) in masks.iter_mut().enumerate() {
                    if p1[l] > p0[l] && self.allowed.contains(i) {
                        m.insert(i);
                    }
                }
            }
        }
        // The action network on [z, m]; z_cf = z + m * clamp(delta).
        for i in 0..d {
            set_lane(w.zm, i, &lane(w.z, i));
            let m: Lane = core::array::from_fn(|l| if masks[l].contains(i) { 1.0 } else { 0.0 });
            set_lane(w.zm, d + i, &m);
        }
        {
            let delta = mlp(carma.action_net(), w.zm, w.a, w.b);
            and(&mut ok, no_nan(delta));
            let (lo, hi) = carma.clamp();
            for i in 0..d {
                let (dl, zl) = (lane(delta, i), lane(w.z, i));
                let v: Lane = core::array::from_fn(|l| {
                    if masks[l].contains(i) {
                        zl[l] + dl[l].max(lo).min(hi)
                    } else {
                        zl[l]
                    }
                });
                set_lane(w.v, i, &v);
            }
        }
        // Inversion leaves out zero-weight terms: exact for finite latents.
        and(&mut ok, finite_lanes(w.v));
        let changed = flow.invert(w.v, w.xq, &masks, w.hidden);
        and(&mut ok, finite_lanes(w.v));
        let p_after = lane(mlp(b.classifier(), w.v, w.a, w.b), 0);
        for l in 0..n {
            let r = self.q_rows[l];
            if !ok[l] || !p_after[l].is_finite() {
                self.one(r);
                continue;
            }
            let mut x_std = [0.0f32; MAX_FEATURES];
            let mut x_cf = [0.0f32; MAX_FEATURES];
            for k in 0..d {
                x_std[k] = self.work.xq.get(k * LANES + l).copied().unwrap_or(0.0);
                x_cf[k] = self.work.v.get(k * LANES + l).copied().unwrap_or(0.0);
            }
            let (x_std, x_cf) = (&x_std[..d], &mut x_cf[..d]);
            let cost = carma.cost(x_std, x_cf, masks[l], b.actionable());
            let x = self.x(r);
            for (i, (v, &xr)) in x_cf.iter_mut().zip(x).enumerate() {
                *v = match (changed[l].contains(i), b.mean(i), b.std(i)) {
                    (true, Some(m), Some(s)) => *v * s + m,
                    _ => xr,
                };
            }
            if !cost.is_finite() || !x_cf.iter().all(|v| v.is_finite()) {
                self.one(r);
                continue;
            }
            let accepted = p_after[l] >= ACCEPT_THRESHOLD;
            let status = match (accepted, self.limited) {
                (true, _) => Status::Recommended,
                (false, true) => Status::NoneWithinLimits,
                (false, false) => Status::NotReached,
            };
            if let (Some(o), Some(res)) = (
                self.out.get_mut(r * d..(r + 1) * d),
                self.results.get_mut(r),
            ) {
                o.copy_from_slice(x_cf);
                *res = Ok(Recommendation {
                    mask: masks[l],
                    prob_before: self.q_prob[l],
                    prob_after: p_after[l],
                    accepted,
                    already_accepted: false,
                    cost,
                    cost_unrefined: cost,
                    refined: false,
                    status,
                    bound_by_limit: FeatureSet::EMPTY,
                    max_changes_bound: false,
                    out_of_range: b.out_of_range(x),
                });
            }
        }
    }

    /// The partial blocks.
    fn finish(&mut self) {
        if self.c_n > 0 {
            self.classify();
        }
        if self.q_n > 0 {
            self.full();
        }
    }
}

/// `ok[l] &= more[l]`.
fn and(ok: &mut [bool; LANES], more: [bool; LANES]) {
    for (o, m) in ok.iter_mut().zip(more) {
        *o &= m;
    }
}

/// True in each lane with no NaN in `buf` (infinities allowed, as the
/// networks' checks allow them).
fn no_nan(buf: &[f32]) -> [bool; LANES] {
    let mut ok = [true; LANES];
    for g in buf.chunks_exact(LANES) {
        for (o, v) in ok.iter_mut().zip(g) {
            *o &= !v.is_nan();
        }
    }
    ok
}
