//! Several individuals at once: every value of a network becomes a lane
//! group of [`LANES`] individuals, so one weight load serves all of them
//! (the kernel of [`crate::Bundle::recommend_batch`], docs/PERFORMANCE.md).
//!
//! Each lane computes what the one-at-a-time path computes for its
//! individual, operation for operation: every unit's sum in input order
//! from `+0`, then the bias, then the activation, no fused multiply-add.
//! The lanes are different individuals, so nothing is reordered and the
//! bits are those of [`crate::Bundle::recommend`].
//!
//! Buffers are flat `f32` slices with one lane group per value: value `k`
//! of lane `l` at `k * LANES + l`. Plain fixed-size arrays in the inner
//! loops, which the compiler vectorizes (two SSE registers per group on the
//! baseline x86-64 target, one AVX register when built for it).

use core::ops::Range;

use crate::FeatureSet;
use crate::flow::{Flow, HIDDEN, soft_clip};
use crate::format::{Activation, MAX_FEATURES};
use crate::le::f32_at;
use crate::mlp::{Dense, Mlp, activate_all};

/// Individuals per lane group.
pub(crate) const LANES: usize = 16;

/// One value for each of [`LANES`] individuals.
pub(crate) type Lane = [f32; LANES];

/// Units summed together by [`dense`]: two, so that their sums (four SSE
/// registers each) and one input group (four more) fit the sixteen SSE
/// registers. Sixteen lanes of two units did better than eight of four
/// or thirty-two of one (fewer broadcasts of a weight per multiply-add).
const UNITS: usize = 2;

/// Value `k`'s lane group in `buf` (zeros out of range).
#[inline(always)]
pub(crate) fn lane(buf: &[f32], k: usize) -> Lane {
    buf.get(k * LANES..(k + 1) * LANES)
        .and_then(|s| Lane::try_from(s).ok())
        .unwrap_or([0.0; LANES])
}

/// Stores `v` as value `k`'s lane group of `buf` (nothing out of range).
#[inline(always)]
pub(crate) fn set_lane(buf: &mut [f32], k: usize, v: &Lane) {
    if let Some(s) = buf.get_mut(k * LANES..(k + 1) * LANES) {
        s.copy_from_slice(v);
    }
}

/// Adds one input column's term to the `U` units' sums in every lane:
/// `acc[u] += w[u] * x`, with `run` the column's `U` weights as bytes.
#[inline(always)]
fn add_column<const U: usize>(acc: &mut [Lane; U], run: &[u8], xk: &Lane) {
    let wu: [f32; U] = core::array::from_fn(|u| run.get(4 * u..4 * u + 4).map_or(0.0, f32_at));
    for (a, &wv) in acc.iter_mut().zip(&wu) {
        for (s, &xv) in a.iter_mut().zip(xk) {
            *s += wv * xv;
        }
    }
}

/// `sum_k W[j + u][k] x[k]` for the `U` units from `j`, over the columns of
/// `w` (whole columns of `col_len` bytes) and the lane groups of `x`, in
/// input order, for every lane.
#[inline(always)]
fn block<const U: usize>(w: &[u8], col_len: usize, j: usize, x: &[f32]) -> [Lane; U] {
    let mut acc = [[0.0f32; LANES]; U];
    for (col, xk) in w.chunks_exact(col_len.max(1)).zip(x.chunks_exact(LANES)) {
        let (Some(run), Ok(xk)) = (col.get(4 * j..4 * (j + U)), <&Lane>::try_from(xk)) else {
            break;
        };
        add_column(&mut acc, run, xk);
    }
    acc
}

/// [`block`] over the columns of `cols` only (in increasing order: the
/// sum's input order with the other terms left out).
#[inline(always)]
fn block_cols<const U: usize>(
    w: &[u8],
    col_len: usize,
    j: usize,
    x: &[f32],
    cols: FeatureSet,
) -> [Lane; U] {
    let mut acc = [[0.0f32; LANES]; U];
    for k in cols.iter() {
        let at = k * col_len + 4 * j;
        let (Some(run), Some(xk)) = (
            w.get(at..at + 4 * U),
            x.get(k * LANES..(k + 1) * LANES)
                .and_then(|s| <&Lane>::try_from(s).ok()),
        ) else {
            break;
        };
        add_column(&mut acc, run, xk);
    }
    acc
}

/// The sums of units `2 i` and `2 i + 1` of `layer` (a flow feature's
/// shift and log-scale before the bias) over its first `cols` inputs.
#[inline(always)]
pub(crate) fn pair(layer: &Dense<'_>, i: usize, cols: usize, x: &[f32]) -> [Lane; 2] {
    let col_len = 4 * layer.n_out();
    let cols = cols.min(layer.n_in());
    match (
        layer.weight_bytes().get(..cols * col_len),
        x.get(..cols * LANES),
    ) {
        (Some(w), Some(x)) if 2 * i + 2 <= layer.n_out() => block::<2>(w, col_len, 2 * i, x),
        _ => [[0.0; LANES]; 2],
    }
}

/// `out[j - rows.start] = act(W[j] . x + b[j])` for every unit `j` of
/// `rows` and every lane: the bits of `Dense::forward_rows` lane by lane.
/// Nothing if the rows are out of range or `x` is short.
pub(crate) fn dense(
    layer: &Dense<'_>,
    rows: Range<usize>,
    x: &[f32],
    act: Activation,
    out: &mut [f32],
) {
    // The activation over the stored sums: one long loop, which the
    // compiler vectorizes (applied to each lane group in registers, the
    // ELU's polynomial was scalarized).
    let n = rows.len() * LANES;
    dense_with(layer, rows, x, out, |_| None);
    activate_all(act, out.get_mut(..n).unwrap_or_default());
}

/// [`dense`] summing, for the units `j..end` of a block, only the inputs
/// `cols(end)` (all inputs past `64`): the flow's first matrix, whose
/// units read only the features before their step (the MADE masks). The
/// terms left out have zero weights; with finite inputs they are `±0`,
/// which leave a sum unchanged, so the bits are those of [`dense`] in each
/// lane whose inputs are finite.
pub(crate) fn dense_sparse(
    layer: &Dense<'_>,
    rows: Range<usize>,
    x: &[f32],
    act: Activation,
    out: &mut [f32],
    cols: impl Fn(usize) -> FeatureSet,
) {
    let n = rows.len() * LANES;
    let all = layer.n_in() > MAX_FEATURES;
    dense_with(layer, rows, x, out, |end| (!all).then(|| cols(end)));
    activate_all(act, out.get_mut(..n).unwrap_or_default());
}

/// The sums and biases of [`dense`], over the inputs `cols(end)` for the
/// block of units ending at `end` (all of them for `None`).
#[inline(always)]
fn dense_with(
    layer: &Dense<'_>,
    rows: Range<usize>,
    x: &[f32],
    out: &mut [f32],
    cols: impl Fn(usize) -> Option<FeatureSet>,
) {
    let (n_in, n_out) = (layer.n_in(), layer.n_out());
    let col_len = 4 * n_out;
    let (Some(x), Some(out), true) = (
        x.get(..n_in * LANES),
        out.get_mut(..rows.len() * LANES),
        rows.end <= n_out,
    ) else {
        return;
    };
    let w = layer.weight_bytes();
    let mut j = rows.start;
    let mut groups = out.chunks_exact_mut(LANES);
    let mut emit = |j: usize, sums: &[Lane]| {
        for (u, s) in sums.iter().enumerate() {
            let b = layer.bias(j + u);
            if let Some(o) = groups.next() {
                for (o, &s) in o.iter_mut().zip(s) {
                    *o = s + b;
                }
            }
        }
    };
    while j < rows.end {
        let u = match rows.end - j {
            left if left >= UNITS => UNITS,
            left if left >= 2 => 2,
            _ => 1,
        };
        match (cols(j + u), u == UNITS, u == 2) {
            (None, true, _) => emit(j, &block::<UNITS>(w, col_len, j, x)),
            (None, _, true) => emit(j, &block::<2>(w, col_len, j, x)),
            (None, _, _) => emit(j, &block::<1>(w, col_len, j, x)),
            (Some(c), true, _) => emit(j, &block_cols::<UNITS>(w, col_len, j, x, c)),
            (Some(c), _, true) => emit(j, &block_cols::<2>(w, col_len, j, x, c)),
            (Some(c), _, _) => emit(j, &block_cols::<1>(w, col_len, j, x, c)),
        }
        j += u;
    }
}

/// [`Mlp::forward`] for every lane of `x` (`n_in` lane groups), with `a`
/// and `b` (each [`Mlp::max_width`] lane groups) as the layers' buffers;
/// returns the output (`n_out` lane groups, in one of them).
pub(crate) fn mlp<'s>(net: &Mlp<'_>, x: &[f32], a: &'s mut [f32], b: &'s mut [f32]) -> &'s [f32] {
    // `in_a`: the previous layer's output is in `a`.
    let mut in_a = false;
    for (l, layer) in net.layers().enumerate() {
        let act = net.activation(l);
        let rows = 0..layer.n_out();
        match (l, in_a) {
            (0, _) => dense(&layer, rows, x, act, a),
            (_, true) => dense(&layer, rows, a, act, b),
            (_, false) => dense(&layer, rows, b, act, a),
        }
        in_a = l == 0 || !in_a;
    }
    let n = net.n_out() * LANES;
    let out: &'s [f32] = if in_a { a } else { b };
    out.get(..n).unwrap_or_default()
}

/// True in each lane whose values in `buf` are all finite.
pub(crate) fn finite_lanes(buf: &[f32]) -> [bool; LANES] {
    let mut ok = [true; LANES];
    for g in buf.chunks_exact(LANES) {
        for (o, v) in ok.iter_mut().zip(g) {
            *o &= v.is_finite();
        }
    }
    ok
}

/// What the lane kernel needs of a one-layer flow with one hidden layer
/// (the paper's): its two matrices, the schedule and, for tracked
/// inversion, which features each feature's shift and log-scale read.
pub(crate) struct FlowLanes<'a> {
    first: Dense<'a>,
    out: Dense<'a>,
    order: &'a [u8],
    /// Hidden units computable once the first `t` features of the order are known.
    ready: [usize; MAX_FEATURES + 1],
    /// The first `t` features of the order, as a set.
    before: [FeatureSet; MAX_FEATURES + 1],
    /// `reads[i]`: the features some hidden unit reads (a non-zero weight)
    /// that feature `i`'s shift or log-scale reads (a non-zero weight).
    reads: [FeatureSet; MAX_FEATURES],
}

impl<'a> FlowLanes<'a> {
    /// The flow's lane form; `None` unless it has one layer with one hidden
    /// layer (the others take the one-at-a-time path).
    pub(crate) fn new(flow: &Flow<'a>) -> Option<Self> {
        let d = flow.n_features();
        if flow.n_layers() != 1 || flow.n_hidden() != 1 || d > MAX_FEATURES {
            return None;
        }
        let mlp = flow.layer(0)?;
        let (first, out) = (mlp.layer(0)?, mlp.layer(1)?);
        let mut ready = [0usize; MAX_FEATURES + 1];
        for (t, r) in ready.iter_mut().enumerate().take(d + 1) {
            *r = flow.ready(0, 0, t);
        }
        let order = flow.order();
        let mut before = [FeatureSet::EMPTY; MAX_FEATURES + 1];
        for t in 0..d {
            let mut next = before[t];
            next.insert(order.get(t).map_or(0, |&f| usize::from(f)));
            before[t + 1] = next;
        }
        // Feature `i` at position `t` reads the hidden units before
        // `ready[t]` (the schedule); in topological order a unit's inputs
        // are one column walk of the first matrix.
        let mut reads = [FeatureSet::EMPTY; MAX_FEATURES];
        let h = first.n_out();
        let (w1, w2) = (first.weight_bytes(), out.weight_bytes());
        let nz = |w: &[u8], n_out: usize, row: usize, col: usize| {
            w.get(4 * (col * n_out + row)..4 * (col * n_out + row) + 4)
                .is_some_and(|b| f32_at(b) != 0.0)
        };
        for j in 0..h {
            let mut inputs = FeatureSet::EMPTY;
            for k in 0..d {
                if nz(w1, h, j, k) {
                    inputs.insert(k);
                }
            }
            if inputs.is_empty() {
                continue;
            }
            for (t, &f) in order.iter().enumerate() {
                let i = usize::from(f);
                if j < ready[t] && (nz(w2, 2 * d, 2 * i, j) || nz(w2, 2 * d, 2 * i + 1, j)) {
                    if let Some(r) = reads.get_mut(i) {
                        *r = r.union(inputs);
                    }
                }
            }
        }
        Some(FlowLanes {
            before,
            first,
            out,
            order,
            ready,
            reads,
        })
    }

    /// The features the hidden units before `end` may read (non-zero
    /// weights): those before the step at which unit `end - 1` is computable.
    fn inputs_before(&self, end: usize) -> FeatureSet {
        let step = self
            .ready
            .iter()
            .position(|&r| r >= end)
            .unwrap_or(MAX_FEATURES);
        self.before.get(step).copied().unwrap_or(FeatureSet::EMPTY)
    }

    /// Hidden units of the flow's hyper-network.
    pub(crate) fn hidden(&self) -> usize {
        self.first.n_out()
    }

    /// Abduction `z = T(x~)` of every lane (`x`, `z`: `D` lane groups;
    /// `hidden`: [`FlowLanes::hidden`] groups). The bits of `Flow::abduct`
    /// in each lane whose hidden values are finite (false in `ok` for the
    /// others): each feature's shift and log-scale sum only the hidden units
    /// the schedule lets them read, and each hidden unit only the features
    /// before its step: the terms left out have zero weights, and `±0`
    /// times a finite value leaves a sum unchanged (`x` is finite).
    pub(crate) fn abduct(
        &self,
        x: &[f32],
        z: &mut [f32],
        hidden: &mut [f32],
        ok: &mut [bool; LANES],
    ) {
        let h = self.hidden();
        dense_sparse(&self.first, 0..h, x, HIDDEN, hidden, |end| {
            self.inputs_before(end)
        });
        let fin = finite_lanes(hidden.get(..h * LANES).unwrap_or_default());
        for (o, f) in ok.iter_mut().zip(fin) {
            *o &= f;
        }
        for (t, &f) in self.order.iter().enumerate() {
            let i = usize::from(f);
            let [s, r] = pair(&self.out, i, self.ready[t], hidden);
            let (bs, br) = (self.out.bias(2 * i), self.out.bias(2 * i + 1));
            let xi = lane(x, i);
            let mut zi = [0.0f32; LANES];
            for l in 0..LANES {
                let shift = s[l] + bs;
                let ls = soft_clip(r[l] + br);
                zi[l] = xi[l] * libm::expf(ls) + shift;
            }
            set_lane(z, i, &zi);
        }
    }

    /// Tracked inversion of every lane: `v` holds each lane's latent on
    /// entry and its `x~` on exit; `moved[l]` are lane `l`'s latents that
    /// differ from the factual `x~` in `factual`. The bits of `Flow::invert`
    /// with tracking, lane by lane, in each lane whose latents and results
    /// are finite (the caller checks both): the hidden units as the schedule
    /// makes them computable (their zero-weight inputs left out, see
    /// [`dense_sparse`]: an input is the latent or the solved value, both
    /// finite then), and a feature whose
    /// latent did not move and whose shift and log-scale read no changed
    /// value gets its factual value. Which values are changed follows the
    /// non-zero weights only (`reads`), as the change flags do. Returns each
    /// lane's changed features.
    pub(crate) fn invert(
        &self,
        v: &mut [f32],
        factual: &[f32],
        moved: &[FeatureSet; LANES],
        hidden: &mut [f32],
    ) -> [FeatureSet; LANES] {
        let mut changed = [FeatureSet::EMPTY; LANES];
        let mut done = 0;
        for (t, &f) in self.order.iter().enumerate() {
            let to = self.ready[t];
            if done < to {
                let cur = hidden.get_mut(done * LANES..to * LANES).unwrap_or_default();
                dense_sparse(&self.first, done..to, v, HIDDEN, cur, |end| {
                    self.inputs_before(end)
                });
                done = to;
            }
            let i = usize::from(f);
            let reads = self.reads.get(i).copied().unwrap_or(FeatureSet::EMPTY);
            let mut solve = [false; LANES];
            for (s, (m, c)) in solve.iter_mut().zip(moved.iter().zip(&changed)) {
                *s = m.contains(i) || !reads.intersection(*c).is_empty();
            }
            let mut vi = lane(factual, i);
            if solve.iter().any(|&s| s) {
                let [s, r] = pair(&self.out, i, to, hidden);
                let (bs, br) = (self.out.bias(2 * i), self.out.bias(2 * i + 1));
                let zi = lane(v, i);
                for l in 0..LANES {
                    if solve[l] {
                        let shift = s[l] + bs;
                        let ls = soft_clip(r[l] + br);
                        vi[l] = (zi[l] - shift) / libm::expf(ls);
                        changed[l].insert(i);
                    }
                }
            }
            set_lane(v, i, &vi);
        }
        changed
    }
}
