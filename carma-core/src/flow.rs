//! The causal normalizing flow: stacked masked affine (MADE) layers
//! (docs/MATH.md, section 4; exact parameterization in FLOW_MATH sections 3 to 6).
//!
//! Each layer maps `x` to `z_i = x_i * exp(ls_i) + shift_i`, where
//! `(shift_i, raw_i)` are outputs `2i, 2i + 1` of the layer's hyper-network
//! (ELU hidden layers, no output activation) and `ls_i` is `raw_i` soft-clipped.
//! The masks make `shift_i, ls_i` depend on earlier features of the
//! topological order only, so the inverse is solved feature by feature in
//! that order. The writer sorted each hidden layer's units by the step at
//! which they become computable and stored the counts in
//! [`FlowWire::ready`]; the inverse computes each hidden unit exactly once,
//! as soon as its inputs are final, which costs about one forward pass.

use crate::FeatureSet;
use crate::error::{Error, InputError, Section, ValidationError};
use crate::format::{Activation, FlowWire, MAX_FEATURES};
use crate::le::U16s;
use crate::mlp::{Dense, Mlp, activate_all, check_dims, check_params};

/// `ln(1e-3)` rounded to `f32`: the soft clip bound of the log-scale (zuko's
/// monotonic affine transform with slope `1e-3`, FLOW_MATH section 4).
pub const LN_MIN_SCALE: f32 = -6.907_755_4;

/// `ln(2 pi) / 2`, the standard normal's log-normalizer (docs/MATH.md, section 4).
pub const HALF_LN_2PI: f32 = 0.918_938_5;

/// Hidden activation of every hyper-network (docs/MATH.md, section 4).
pub const HIDDEN: Activation = Activation::Elu;

/// The soft-clipped log-scale `raw / (1 + |raw / ln(1e-3)|)`, in the
/// reference's operation order (FLOW_MATH section 4).
pub fn soft_clip(raw: f32) -> f32 {
    raw / (1.0 + libm::fabsf(raw / LN_MIN_SCALE))
}

/// What a tracked [`Flow::invert`] compares against to keep unchanged
/// features exact.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track<'t> {
    /// Latents that differ from the factual's.
    pub moved: FeatureSet,
    /// Each layer's factual input, `n_layers * D` values, layer 0 (`x~`) first.
    pub factual: &'t [f32],
}

/// Hard interventions `do(x~_k = values[k])` for the features `k` of `set`
/// (standardized values; the other entries of `values` are not read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fixed<'t> {
    /// The intervened features.
    pub set: FeatureSet,
    /// Their standardized values, indexed by feature (length `D`).
    pub values: &'t [f32],
}

/// What a one-layer flow's tracked inversions under interventions keep
/// between calls that start from the same latent with the same
/// [`Track::factual`] (refinement's trials, docs/MATH.md, section 6), so
/// that later calls do less work for the same bits.
///
/// - Prefix sums. Up to and including the first position `p` of the order
///   whose feature is moved or intervened, every such call computes the
///   same values: the features before `p` take their factual values and
///   `v` still holds the latent everywhere else, so the hidden units
///   computable at step `p` are the same bits in every call. Their
///   contribution to each later feature's shift and log-scale (the first
///   part of that feature's sum, in input order) is kept; a later call with
///   the same `p` skips those units and continues the sums (the bits of
///   one sum, see `Dense::accumulate_pair`).
/// - Plans. Which features an inversion solves from their latents and
///   which keep their factual values depends only on the moved and
///   intervened sets (and the weights), not on the values: the change
///   flags follow non-zero weights. Once a general inversion has found the
///   changed features for those sets, a later call with the same sets
///   solves just those, without the flags, and computes only the hidden
///   units they read after the prefix. The last [`PLANS`] are kept
///   (refinement returns to its current set after trying to drop each
///   feature of it).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Memo {
    /// The position `p` whose prefix sums are kept; `None` while there are none.
    prefix_at: Option<usize>,
    /// General inversions' moved and intervened sets, and the features
    /// each found changed.
    plans: [Option<(FeatureSet, FeatureSet, FeatureSet)>; PLANS],
    /// The entry of `plans` the next plan replaces.
    next: usize,
    /// Whether the latent and the factual are finite (every call has the
    /// same), once a planned call has looked.
    finite: Option<bool>,
}

/// How many plans a [`Memo`] keeps.
pub(crate) const PLANS: usize = 8;

impl Memo {
    /// The changed features of the kept plan for `moved` and `fixed`.
    fn plan(&self, moved: FeatureSet, fixed: FeatureSet) -> Option<FeatureSet> {
        self.plans
            .iter()
            .flatten()
            .find(|&&(m, f, _)| m == moved && f == fixed)
            .map(|&(_, _, changed)| changed)
    }

    /// Keeps a plan, in place of the oldest once all entries are used.
    fn keep(&mut self, moved: FeatureSet, fixed: FeatureSet, changed: FeatureSet) {
        if let Some(slot) = self.plans.get_mut(self.next) {
            *slot = Some((moved, fixed, changed));
        }
        self.next = (self.next + 1) % PLANS;
    }
}

/// A [`Memo`] and where its prefix sums are kept.
#[derive(Debug)]
pub(crate) struct Reuse<'c> {
    /// What earlier calls left.
    pub memo: &'c mut Memo,
    /// `2 D` values: the prefix sums of outputs `2 i, 2 i + 1` for every
    /// feature `i` at or after position `memo.prefix_at`.
    pub sums: &'c mut [f32],
}

impl Reuse<'_> {
    /// The kept sums of feature `i`'s shift and log-scale.
    fn pair(&self, i: usize) -> [f32; 2] {
        [
            self.sums.get(2 * i).copied().unwrap_or(0.0),
            self.sums.get(2 * i + 1).copied().unwrap_or(0.0),
        ]
    }
}

/// A validated flow whose weights stay in the bundle bytes.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    d: usize,
    n_layers: usize,
    dims: U16s<'a>,
    params: &'a [u8],
    /// Bytes of one layer's parameters.
    layer_bytes: usize,
    ready: U16s<'a>,
    /// The topological order, one byte per feature.
    order: &'a [u8],
}

impl<'a> Flow<'a> {
    /// Validates `wire` for `D = position.len()` features with topological
    /// `order` (already validated; `position[order[t]] = t`): widths,
    /// parameter count, finiteness, the schedule, and that every weight
    /// respects the schedule (so inversion is exact).
    pub(crate) fn new(
        wire: &FlowWire<'a>,
        order: &'a [u8],
        position: &[usize],
    ) -> Result<Self, ValidationError> {
        let d = position.len();
        let n_layers = usize::from(wire.layers);
        if n_layers == 0 {
            return Err(ValidationError::NoFlowLayers);
        }
        let dims = check_dims(wire.dims, Section::Flow, d, 2 * d)?;
        let per_layer = Mlp::param_count(dims);
        check_params(
            wire.params,
            Section::Flow,
            per_layer.and_then(|p| p.checked_mul(n_layers)),
        )?;
        let layer_bytes = per_layer.unwrap_or(0) * 4;
        let n_hidden = dims.len() - 2;
        let ready_len = n_layers
            .checked_mul(n_hidden)
            .and_then(|n| n.checked_mul(2 * (d + 1)))
            .unwrap_or(usize::MAX);
        let ready = U16s::new(wire.ready)
            .filter(|r| r.len().checked_mul(2) == Some(ready_len))
            .ok_or(ValidationError::Length {
                section: Section::FlowReady,
                expected: ready_len,
                found: wire.ready.len(),
            })?;
        let flow = Flow {
            d,
            n_layers,
            dims,
            params: wire.params,
            layer_bytes,
            ready,
            order,
        };
        for layer in 0..n_layers {
            crate::schedule::check_layer(&flow, layer, position)?;
        }
        Ok(flow)
    }

    /// The topological order, one byte per feature.
    pub(crate) fn order(&self) -> &'a [u8] {
        self.order
    }

    /// Number of features `D`.
    pub fn n_features(&self) -> usize {
        self.d
    }

    /// Number of stacked layers.
    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// Number of hidden layers of each hyper-network.
    pub fn n_hidden(&self) -> usize {
        self.dims.len().saturating_sub(2)
    }

    /// Layer `l`'s hyper-network, or `None` past the last layer.
    pub fn layer(&self, l: usize) -> Option<Mlp<'a>> {
        let start = l.checked_mul(self.layer_bytes)?;
        let params = self
            .params
            .get(start..start.checked_add(self.layer_bytes)?)?;
        Some(Mlp::from_parts(
            self.dims,
            HIDDEN,
            Activation::Identity,
            params,
        ))
    }

    /// How many units of hidden layer `hidden` of flow layer `layer` are
    /// computable once the first `step` features of the order are known (0
    /// out of range).
    pub fn ready(&self, layer: usize, hidden: usize, step: usize) -> usize {
        let index = layer
            .checked_mul(self.n_hidden())
            .and_then(|i| i.checked_add(hidden))
            .and_then(|i| i.checked_mul(self.d + 1))
            .and_then(|i| i.checked_add(step));
        index.and_then(|i| self.ready.get(i)).map_or(0, usize::from)
    }

    /// Total width of the hidden layers of one hyper-network.
    pub(crate) fn hidden_len(&self) -> usize {
        (1..=self.n_hidden())
            .map(|h| self.dims.get(h).map_or(0, usize::from))
            .sum()
    }

    /// Scratch `f32` values the flow's operations need: for abduction a copy
    /// of the layer input and every hidden layer, plus the log-likelihood's
    /// latent; for tracked inversion every hidden layer and its change flags.
    pub fn scratch_len(&self) -> usize {
        (2 * self.d + self.hidden_len()).max(self.invert_scratch_len(true))
    }

    /// Running sums inversion keeps for every hidden layer after the first.
    fn sums_len(&self) -> usize {
        if self.n_hidden() == 0 {
            0
        } else {
            self.hidden_len().saturating_sub(self.hidden_span(0).1)
        }
    }

    /// `(start, width)` of hidden layer `h` within the hidden scratch.
    fn hidden_span(&self, h: usize) -> (usize, usize) {
        let start = (1..=h)
            .map(|g| self.dims.get(g).map_or(0, usize::from))
            .sum();
        (start, self.dims.get(h + 1).map_or(0, usize::from))
    }

    /// Splits the hidden scratch into hidden layer `h - 1` (read) and `h` (written), `h >= 1`.
    fn hidden_pair<'s>(&self, hidden: &'s mut [f32], h: usize) -> (&'s [f32], &'s mut [f32]) {
        let (p_start, p_width) = self.hidden_span(h - 1);
        let (start, width) = self.hidden_span(h);
        match hidden.split_at_mut_checked(start) {
            Some((before, after)) => (
                before.get(p_start..p_start + p_width).unwrap_or_default(),
                after.get_mut(..width).unwrap_or_default(),
            ),
            None => (&[], &mut []),
        }
    }

    /// The input of the output matrix: the last hidden layer.
    fn last_hidden<'s>(&self, hidden: &'s [f32]) -> &'s [f32] {
        let (start, width) = self.hidden_span(self.n_hidden() - 1);
        hidden.get(start..start + width).unwrap_or_default()
    }

    /// The units of hidden layer `hidden` of flow layer `layer` that become
    /// computable at step `step` of the inversion.
    fn newly_ready(&self, layer: usize, hidden: usize, step: usize) -> core::ops::Range<usize> {
        let lo = match step.checked_sub(1) {
            Some(before) => self.ready(layer, hidden, before),
            None => 0,
        };
        lo..self.ready(layer, hidden, step)
    }

    /// The part of `values` (hidden layer `hidden`'s values or flags) that is
    /// final at step `step`; the rest is still zero, and a sum may skip it
    /// exactly (see `Dense::each_unit`).
    fn known<'s>(&self, layer: usize, hidden: usize, step: usize, values: &'s [f32]) -> &'s [f32] {
        values
            .get(..self.ready(layer, hidden, step))
            .unwrap_or(values)
    }

    /// Where hidden layer `h >= 1`'s running sums start (the first hidden
    /// layer has none).
    fn sums_start(&self, h: usize) -> usize {
        self.hidden_span(h).0.saturating_sub(self.hidden_span(0).1)
    }

    /// Abduction `z = T(x)` in place: `v` holds `x~` on entry and `z` on exit.
    /// Returns `log |det dz/dx~|`, the sum of every layer's log-scales. If
    /// `save` has room, the input of each layer after the first is copied
    /// there (`D` values per layer), for [`Track::factual`].
    pub(crate) fn abduct(
        &self,
        v: &mut [f32],
        save: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<f32, Error> {
        let d = self.d;
        let needed = d + self.hidden_len();
        let too_small = InputError::ScratchTooSmall {
            needed,
            found: scratch.len(),
        };
        let (input, hidden) = scratch
            .split_at_mut_checked(d)
            .filter(|(_, h)| h.len() >= needed - d)
            .ok_or(too_small)?;
        let n_hidden = self.n_hidden();
        let mut log_det = 0.0;
        for l in 0..self.n_layers {
            let Some(mlp) = self.layer(l) else { break };
            for (a, &b) in input.iter_mut().zip(v.iter()) {
                *a = b;
            }
            if let Some(dst) = l
                .checked_sub(1)
                .and_then(|k| save.get_mut(k * d..(k + 1) * d))
            {
                dst.copy_from_slice(input);
            }
            for (h, dense) in mlp.layers().take(n_hidden).enumerate() {
                if h == 0 {
                    let (_, width) = self.hidden_span(0);
                    dense.forward(input, HIDDEN, hidden.get_mut(..width).unwrap_or_default());
                } else {
                    let (prev, cur) = self.hidden_pair(hidden, h);
                    dense.forward(prev, HIDDEN, cur);
                }
            }
            let Some(out) = mlp.layer(n_hidden) else {
                break;
            };
            let last: &[f32] = if n_hidden == 0 {
                input
            } else {
                self.last_hidden(hidden)
            };
            let mut layer_log_det = 0.0;
            let mut shift = 0.0;
            let input: &[f32] = input;
            out.each_unit(0..2 * d, last, |j, value| {
                if j % 2 == 0 {
                    shift = value;
                } else {
                    let ls = soft_clip(value);
                    if let (Some(vi), Some(&xi)) = (v.get_mut(j / 2), input.get(j / 2)) {
                        *vi = xi * libm::expf(ls) + shift;
                    }
                    layer_log_det += ls;
                }
            });
            log_det += layer_log_det;
        }
        Ok(log_det)
    }

    /// Scratch values [`Flow::invert`] needs: the hidden layers, the running
    /// sums, and with tracking as many change flags as hidden units.
    pub(crate) fn invert_scratch_len(&self, tracking: bool) -> usize {
        self.hidden_len() * if tracking { 2 } else { 1 } + self.sums_len()
    }

    /// Inversion `x~ = T^-1(z)` in place: `v` holds `z` on entry and `x~` on
    /// exit. Layers in reverse; within a layer, features in topological order,
    /// each hidden unit computed once, when the schedule says its inputs are final.
    ///
    /// The units of a hidden layer after the first are summed as their
    /// inputs become final: at each step the previous layer's newly computed
    /// units (a consecutive block, the writer sorted them) are added to the
    /// running sums of every unit not final yet, in input order. A unit's sum
    /// is therefore the one a forward pass takes (the inputs not final when
    /// it is needed have zero weights), bit for bit. A feature's shift and
    /// log-scale are summed when it is solved, over the ready prefix of the
    /// last hidden layer only (the other units are still zero): summing
    /// every output at every step instead was measured slower.
    ///
    /// With `track`, a feature whose latent did not move and whose shift and
    /// log-scale read (through non-zero weights) only unchanged values gets
    /// exactly its factual value instead of `T^-1(T(x))`, which differs by
    /// rounding. Returns the features that may differ from the factual (all
    /// of them without `track`).
    ///
    /// With `fixed` (one-layer flows only; see [`Flow::invert_do`]), an
    /// intervened feature takes its given value instead of being solved from
    /// its latent, and its descendants follow from it: Pearl's hard
    /// intervention with the other latents held.
    pub(crate) fn invert(
        &self,
        v: &mut [f32],
        track: Option<Track<'_>>,
        scratch: &mut [f32],
    ) -> Result<FeatureSet, Error> {
        self.invert_fixed(v, track, None, None, scratch)
    }

    /// [`Flow::invert`] with hard interventions `fixed` (see there), using
    /// and updating `reuse` ([`Memo`]; one hidden layer and tracking only,
    /// ignored otherwise).
    ///
    /// Two kinds of hidden units are not computed, neither of which
    /// changes a bit of the result: with `fixed`, those that become
    /// computable after the last feature solved from its latent (every
    /// later feature is intervened, so nothing reads them); and with
    /// prefix sums for this call's first moved position, those whose
    /// contribution they hold.
    fn invert_fixed(
        &self,
        v: &mut [f32],
        track: Option<Track<'_>>,
        fixed: Option<Fixed<'_>>,
        reuse: Option<Reuse<'_>>,
        scratch: &mut [f32],
    ) -> Result<FeatureSet, Error> {
        let d = self.d;
        let h_len = self.hidden_len();
        let needed = self.invert_scratch_len(track.is_some());
        let too_small = InputError::ScratchTooSmall {
            needed,
            found: scratch.len(),
        };
        let (hidden, rest) = scratch
            .get_mut(..needed)
            .and_then(|s| s.split_at_mut_checked(h_len))
            .ok_or(too_small)?;
        let (sums, flags) = rest
            .split_at_mut_checked(self.sums_len())
            .ok_or(too_small)?;
        let n_hidden = self.n_hidden();
        let tracking = track.is_some();
        let mut prefix = reuse
            .filter(|p| tracking && self.n_layers == 1 && n_hidden == 1 && p.sums.len() >= 2 * d);
        if let (Some(r), Some(f), Some(t)) = (prefix.as_mut(), fixed, track.as_ref()) {
            if let Some(changed) = r.memo.plan(t.moved, f.set) {
                if self.invert_planned(v, t.factual, f, changed, r, hidden) {
                    return Ok(changed);
                }
            }
        }
        // The last position solved from its latent: past it every feature
        // is intervened, and no hidden unit computed there would be read.
        let last_solved = match fixed {
            Some(f) => self
                .order
                .iter()
                .rposition(|&k| !f.set.contains(usize::from(k))),
            None => d.checked_sub(1),
        };
        // Features of the current layer's output that differ from the factual.
        let mut moved = track.as_ref().map_or(FeatureSet::first(d), |t| t.moved);
        for l in (0..self.n_layers).rev() {
            let Some(mlp) = self.layer(l) else { break };
            let Some(out) = mlp.layer(n_hidden) else {
                break;
            };
            // Units not computed yet meet zero weights only; zeroing them keeps
            // whatever the caller left in the scratch (NaN included) out of the sums.
            hidden.fill(0.0);
            flags.fill(0.0);
            sums.fill(0.0);
            let factual = track
                .as_ref()
                .and_then(|t| t.factual.get(l * d..(l + 1) * d))
                .unwrap_or_default();
            // Features of this layer's input that differ from the factual,
            // as a set and as 0/1 flags (the hidden layers' flag format).
            let mut changed = FeatureSet::EMPTY;
            let mut input_flags = [0.0f32; MAX_FEATURES];
            let input_len = d.min(MAX_FEATURES);
            // The last position whose feature asks whether it changed; flags
            // computed after it would never be read.
            let last_asking = if tracking {
                self.order
                    .iter()
                    .rposition(|&f| !moved.contains(usize::from(f)))
            } else {
                None
            };
            // The first moved position, and whether `prefix` holds its sums
            // (then the hidden units up to its step are not computed).
            let touched = fixed.map_or(moved, |f| moved.union(f.set));
            let first_moved = self
                .order
                .iter()
                .position(|&f| touched.contains(usize::from(f)));
            let mut prefix_ready = None;
            if let (Some(p), Some(at)) = (prefix.as_ref(), first_moved) {
                if p.memo.prefix_at == Some(at) {
                    prefix_ready = Some(at);
                }
            }
            for (t, &feature) in self.order.iter().enumerate() {
                // While nothing changed every flag is 0, as the scratch already holds.
                let flagging = !changed.is_empty() && last_asking.is_some_and(|p| p >= t);
                let skip =
                    prefix_ready.is_some_and(|p| t <= p) || last_solved.is_none_or(|s| t > s);
                for (h, dense) in mlp.layers().take(n_hidden).enumerate().filter(|_| !skip) {
                    let core::ops::Range { start: lo, end: hi } = self.newly_ready(l, h, t);
                    if h > 0 {
                        // The previous layer's units computed at this step
                        // join the sums of this layer's units not final yet.
                        self.add_block(l, h, t, &dense, lo, hidden, sums);
                    }
                    if lo >= hi {
                        continue;
                    }
                    if h == 0 {
                        let cur = hidden.get_mut(lo..hi).unwrap_or_default();
                        dense.forward_rows(lo, v, HIDDEN, cur);
                        if flagging {
                            let reads = input_flags.get(..input_len).unwrap_or_default();
                            let f = flags.get_mut(lo..hi).unwrap_or_default();
                            dense.mark_readers(lo, reads, f);
                        }
                    } else {
                        let (_, cur) = self.hidden_pair(hidden, h);
                        let at = self.sums_start(h);
                        let sum = sums.get(at + lo..at + hi).unwrap_or_default();
                        let cur = cur.get_mut(lo..hi).unwrap_or_default();
                        for ((c, s), j) in cur.iter_mut().zip(sum).zip(lo..) {
                            *c = s + dense.bias(j);
                        }
                        activate_all(HIDDEN, cur);
                        if flagging {
                            let (prev_flags, cur_flags) = self.hidden_pair(flags, h);
                            let f = cur_flags.get_mut(lo..hi).unwrap_or_default();
                            dense.mark_readers(lo, self.known(l, h - 1, t, prev_flags), f);
                        }
                    }
                }
                if let (Some(p), true) = (prefix.as_mut(), !skip && first_moved == Some(t)) {
                    self.fill_prefix(l, t, &out, hidden, p);
                    prefix_ready = Some(t);
                }
                let i = usize::from(feature);
                if let Some(value) = fixed
                    .filter(|f| f.set.contains(i))
                    .and_then(|f| f.values.get(i).copied())
                {
                    changed.insert(i);
                    if let Some(f) = input_flags.get_mut(i) {
                        *f = 1.0;
                    }
                    if let Some(vi) = v.get_mut(i) {
                        *vi = value;
                    }
                    continue;
                }
                let is_changed = !tracking
                    || moved.contains(i)
                    || flagging && {
                        let reads: &[f32] = if n_hidden == 0 {
                            input_flags.get(..input_len).unwrap_or_default()
                        } else {
                            self.known(l, n_hidden - 1, t, self.last_hidden(flags))
                        };
                        out.reads_flagged(2 * i, reads) || out.reads_flagged(2 * i + 1, reads)
                    };
                let new_value = if !is_changed {
                    factual.get(i).copied()
                } else {
                    let last: &[f32] = if n_hidden == 0 {
                        v
                    } else {
                        self.known(l, n_hidden - 1, t, self.last_hidden(hidden))
                    };
                    // The sum over the known units, or the kept sums over
                    // the units up to step `at` continued over those computed since.
                    let (mut acc, from) = match (prefix.as_ref(), prefix_ready) {
                        (Some(p), Some(at)) => (p.pair(i), self.ready(l, 0, at)),
                        _ => ([0.0; 2], 0),
                    };
                    let to = last.len().min(out.n_in());
                    out.accumulate_pair(2 * i, from..to, last, &mut acc);
                    let shift = acc[0] + out.bias(2 * i);
                    let ls = soft_clip(acc[1] + out.bias(2 * i + 1));
                    changed.insert(i);
                    if let Some(f) = input_flags.get_mut(i) {
                        *f = 1.0;
                    }
                    v.get(i).map(|&z| (z - shift) / libm::expf(ls))
                };
                if let (Some(vi), Some(x)) = (v.get_mut(i), new_value) {
                    *vi = x;
                }
            }
            moved = changed;
        }
        if let (Some(r), Some(f), Some(t)) = (prefix, fixed, track) {
            r.memo.keep(t.moved, f.set, moved);
        }
        Ok(moved)
    }

    /// Fills `prefix` with the sums of the units of the (only) hidden layer
    /// computable at step `t` for the outputs of every feature from
    /// position `t` on, and marks it as for `t`.
    fn fill_prefix(
        &self,
        l: usize,
        t: usize,
        out: &Dense<'_>,
        hidden: &[f32],
        prefix: &mut Reuse<'_>,
    ) {
        let known = self.known(l, 0, t, hidden);
        for &f in self.order.get(t..).unwrap_or_default() {
            let i = usize::from(f);
            let mut acc = [0.0f32; 2];
            out.accumulate_pair(2 * i, 0..known.len(), known, &mut acc);
            if let Some(s) = prefix.sums.get_mut(2 * i..2 * i + 2) {
                s.copy_from_slice(&acc);
            }
        }
        prefix.memo.prefix_at = Some(t);
    }

    /// The inversion of one planned call (see [`Memo`]): `v` holds the
    /// latent, `changed` is what a general inversion with the same moved
    /// and intervened sets found changed. The features before the first of
    /// them take their `factual` values, the intervened ones theirs, the
    /// changed ones are solved from their latents and the rest keep their
    /// factual values: what the general inversion computes, without the
    /// change flags and with only the hidden units the solved features read
    /// after the prefix. The prefix sums are filled first if they are for
    /// another position. False (and nothing written) if the flow, the
    /// inputs or the scratch are not the plan's shape, or a latent, factual
    /// or intervention value is not finite; then the general inversion runs.
    ///
    /// Every feature that is not solved takes its value first, and the
    /// hidden units are computed in one block per solved feature (those it
    /// reads that are not computed yet). A unit computed early reads the
    /// values written early only through zero weights (the schedule: a
    /// unit reads only the features before its step) where the general
    /// inversion reads the latent; both are finite, so those terms are
    /// `±0` either way, which leave every sum as the general inversion's
    /// (see `Dense::each_unit`).
    fn invert_planned(
        &self,
        v: &mut [f32],
        factual: &[f32],
        fixed: Fixed<'_>,
        changed: FeatureSet,
        reuse: &mut Reuse<'_>,
        hidden: &mut [f32],
    ) -> bool {
        let d = self.d;
        let (Some(mlp), true) = (
            self.layer(0),
            v.len() == d && factual.len() >= d && fixed.values.len() >= d,
        ) else {
            return false;
        };
        let (Some(first), Some(out)) = (mlp.layer(0), mlp.layer(1)) else {
            return false;
        };
        let start_finite = *reuse.memo.finite.get_or_insert_with(|| {
            v.iter().all(|x| x.is_finite()) && factual.iter().take(d).all(|x| x.is_finite())
        });
        let finite = start_finite
            && fixed
                .set
                .iter()
                .all(|k| fixed.values.get(k).is_some_and(|x| x.is_finite()));
        if self.n_layers != 1 || self.n_hidden() != 1 || hidden.len() < first.n_out() || !finite {
            return false;
        }
        let solved = changed.difference(fixed.set);
        for (i, (x, &f)) in v.iter_mut().zip(factual).enumerate() {
            if fixed.set.contains(i) {
                *x = fixed.values.get(i).copied().unwrap_or(f);
            } else if !solved.contains(i) {
                *x = f;
            }
        }
        let touched = changed.union(fixed.set);
        let (Some(start), true) = (
            self.order
                .iter()
                .position(|&f| touched.contains(usize::from(f))),
            !solved.is_empty(),
        ) else {
            return true;
        };
        if reuse.memo.prefix_at != Some(start) {
            let hi = self.ready(0, 0, start);
            first.forward_rows(0, v, HIDDEN, hidden.get_mut(..hi).unwrap_or_default());
            self.fill_prefix(0, start, &out, hidden, reuse);
        }
        let from = self.ready(0, 0, start);
        let mut done = from;
        for (t, &f) in self.order.iter().enumerate().skip(start) {
            let i = usize::from(f);
            if !solved.contains(i) {
                continue;
            }
            let to = self.ready(0, 0, t);
            if done < to {
                let cur = hidden.get_mut(done..to).unwrap_or_default();
                first.forward_rows(done, v, HIDDEN, cur);
                done = to;
            }
            let mut acc = reuse.pair(i);
            out.accumulate_pair(2 * i, from..to, hidden, &mut acc);
            let shift = acc[0] + out.bias(2 * i);
            let ls = soft_clip(acc[1] + out.bias(2 * i + 1));
            if let Some(x) = v.get_mut(i) {
                *x = (*x - shift) / libm::expf(ls);
            }
        }
        true
    }

    /// The counterfactual under hard interventions: `z` holds the factual
    /// latent on entry and `x~_cf` on exit, where every feature of
    /// `fixed.set` takes its given value exactly and every other feature is
    /// solved from its (held) latent given its parents' counterfactual
    /// values, in topological order (docs/MATH.md, section 6). Returns the
    /// features that may differ from the factual.
    ///
    /// A one-layer flow does this in one tracked inversion. A stacked flow
    /// is triangular only as a whole, so each intervened feature, in
    /// topological order, gets the latent that produces its value: invert,
    /// set the value, abduct that feature's latent; then one last inversion.
    /// `aux` holds `2 D` values (the trial point and a copy of the latent).
    ///
    /// With `memo`, a one-layer flow keeps there and in `aux` what later
    /// calls can reuse ([`Memo`]): every call given the same `memo` must
    /// start from the same latent `z` with the same `track` factual (start
    /// a new `Memo` when they change). The result is the same bits with or
    /// without it.
    pub(crate) fn invert_do(
        &self,
        z: &mut [f32],
        track: Option<Track<'_>>,
        fixed: Fixed<'_>,
        aux: &mut [f32],
        memo: Option<&mut Memo>,
        scratch: &mut [f32],
    ) -> Result<FeatureSet, Error> {
        let d = self.d;
        let moved = track.map(|t| Track {
            moved: t.moved.union(fixed.set),
            factual: t.factual,
        });
        if self.n_layers == 1 {
            let reuse = memo.map(|memo| Reuse { memo, sums: aux });
            return self.invert_fixed(z, moved, Some(fixed), reuse, scratch);
        }
        let too_small = InputError::ScratchTooSmall {
            needed: 2 * d,
            found: aux.len(),
        };
        let (trial, rest) = aux.split_at_mut_checked(d).ok_or(too_small)?;
        let latent = rest.get_mut(..d).ok_or(too_small)?;
        for &feature in self.order {
            let k = usize::from(feature);
            let Some(&value) = fixed.values.get(k).filter(|_| fixed.set.contains(k)) else {
                continue;
            };
            trial.copy_from_slice(z);
            self.invert(trial, moved, scratch)?;
            if let Some(t) = trial.get_mut(k) {
                *t = value;
            }
            latent.copy_from_slice(trial);
            self.abduct(latent, &mut [], scratch)?;
            if let (Some(zk), Some(&lk)) = (z.get_mut(k), latent.get(k)) {
                *zk = lk;
            }
        }
        let changed = self.invert(z, moved, scratch)?;
        for k in fixed.set.iter() {
            if let (Some(x), Some(&value)) = (z.get_mut(k), fixed.values.get(k)) {
                *x = value;
            }
        }
        Ok(changed.union(fixed.set))
    }

    /// Adds to the running sums of hidden layer `m >= 1` of layer `l`, for
    /// its units from `from` on, the units of hidden layer `m - 1` that
    /// became final at step `t`.
    #[allow(clippy::too_many_arguments)]
    fn add_block(
        &self,
        l: usize,
        m: usize,
        t: usize,
        dense: &Dense<'_>,
        from: usize,
        hidden: &[f32],
        sums: &mut [f32],
    ) {
        let block = self.newly_ready(l, m - 1, t);
        if block.is_empty() {
            return;
        }
        let (p_start, p_width) = self.hidden_span(m - 1);
        let (at, width) = (self.sums_start(m), self.hidden_span(m).1);
        let (Some(prev), Some(sum)) = (
            hidden.get(p_start..p_start + p_width),
            sums.get_mut(at + from..at + width),
        ) else {
            return;
        };
        dense.accumulate(from..width, block, prev, sum);
    }

    /// `log p(x~)` given the latent `z = T(x~)` and `log |det dz/dx~|`:
    /// `sum_i (-z_i^2 / 2 - ln(2 pi) / 2) + log_det` (docs/MATH.md, section 4).
    pub(crate) fn log_density(z: &[f32], log_det: f32) -> f32 {
        let base: f32 = z.iter().map(|&z| -(z * z) / 2.0 - HALF_LN_2PI).sum();
        base + log_det
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bundle;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Tracked inversions under interventions, one person at a time, with
    /// one `Memo` per person (as refinement keeps it) and without: every
    /// output bit and changed set agree, whether the call is a plan's or
    /// the prefix sums' first or a later one.
    #[test]
    fn a_memo_never_changes_an_inversion() {
        let bundles: [&[u8]; 4] = [
            include_bytes!("../../fixtures/bench/loan.carma"),
            include_bytes!("../../fixtures/golden/chain-nlin.carma"),
            include_bytes!("../../fixtures/golden/triangle-nlin.carma"),
            include_bytes!("../../fixtures/golden/collider-lin.carma"),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut planned = 0;
        for bytes in bundles {
            let bundle = Bundle::new(bytes).expect("fixture decodes");
            let flow = bundle.flow();
            let d = flow.n_features();
            let mut scratch = [0.0f32; 1024];
            for _ in 0..40 {
                let x: [f32; MAX_FEATURES] =
                    core::array::from_fn(|_| rng.random_range(-2.0f32..2.0));
                let mut factual = [0.0f32; 4 * MAX_FEATURES];
                let (x_std, saved) = factual.split_at_mut(d);
                x_std.copy_from_slice(&x[..d]);
                let mut z = [0.0f32; MAX_FEATURES];
                z[..d].copy_from_slice(&x[..d]);
                flow.abduct(&mut z[..d], saved, &mut scratch)
                    .expect("abduct");
                let factual = &factual[..flow.n_layers() * d];
                let mut memo = Memo::default();
                // The memo's sums live here between calls.
                let mut aux = [0.0f32; 2 * MAX_FEATURES];
                // A few sets, each tried several times in a row with new
                // values, then the first again.
                let sets: [FeatureSet; 3] =
                    core::array::from_fn(|_| FeatureSet::from_bits(rng.random::<u64>()));
                for step in 0..16 {
                    let set = sets[(step / 4) % 3].intersection(FeatureSet::first(d));
                    let values: [f32; MAX_FEATURES] =
                        core::array::from_fn(|_| rng.random_range(-3.0f32..3.0));
                    let track = Track {
                        moved: set,
                        factual,
                    };
                    let fixed = Fixed {
                        set,
                        values: &values[..d],
                    };
                    let mut plain = z;
                    let a = flow.invert_do(
                        &mut plain[..d],
                        Some(track),
                        fixed,
                        &mut aux[..2 * d],
                        None,
                        &mut scratch,
                    );
                    let mut reused = z;
                    let hit = memo.plan(set, set).is_some();
                    let b = flow.invert_do(
                        &mut reused[..d],
                        Some(track),
                        fixed,
                        &mut aux[..2 * d],
                        Some(&mut memo),
                        &mut scratch,
                    );
                    assert_eq!(a, b);
                    for (p, r) in plain[..d].iter().zip(&reused[..d]) {
                        assert_eq!(p.to_bits(), r.to_bits());
                    }
                    planned += usize::from(hit);
                }
            }
        }
        // The planned path ran (sets repeat within a person).
        assert!(planned > 100, "only {planned} planned calls");
    }

    #[test]
    fn constants_are_the_f32_roundings() {
        assert_eq!(LN_MIN_SCALE, libm::log(1e-3) as f32);
        assert_eq!(
            HALF_LN_2PI,
            (libm::log(2.0 * core::f64::consts::PI) / 2.0) as f32
        );
    }

    #[test]
    fn soft_clip_is_bounded_and_odd() {
        assert_eq!(soft_clip(0.0), 0.0);
        assert!(soft_clip(1e30) < 6.907_756 && soft_clip(1e30) > 6.9);
        assert_eq!(soft_clip(-2.0), -soft_clip(2.0));
        // 1 / (1 + |1 / ln 1e-3|) by hand: 1 / (1 + 0.144765) = 0.873542
        assert!((soft_clip(1.0) - 0.873_542).abs() < 1e-6);
    }
}
