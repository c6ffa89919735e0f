//! Dense multilayer perceptrons over borrowed little-endian weights.
//!
//! The classifier, the CARMA networks and every flow hyper-network are MLPs
//! in the [`MlpWire`] layout: for each layer `W` (column-major: the weights
//! leaving input 0, then input 1, ...), then `b`.
//! Each unit computes `act(sum_k W[j][k] x[k] + b[j])`, the sum taken in
//! index order, so results are bit-for-bit reproducible.

use crate::error::{Error, InputError, Section, ValidationError};
use crate::format::{Activation, MlpWire};
use crate::le::{F32s, U16s, f32_at};

/// `max(x, 0)` (NaN gives 0).
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.0 }
}

/// `1 / (1 + exp(-x))`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Applies `act` to `x`.
pub fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => relu(x),
        Activation::Elu => crate::elu::elu(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => libm::tanhf(x),
    }
}

/// Applies `act` to every value of `v` (the same values as [`activate`],
/// with the choice of function made once, so each loop vectorizes).
pub fn activate_all(act: Activation, v: &mut [f32]) {
    // One loop per function (a function pointer would keep them from vectorizing).
    match act {
        Activation::Identity => {}
        Activation::Relu => v.iter_mut().for_each(|x| *x = relu(*x)),
        Activation::Elu => v.iter_mut().for_each(|x| *x = crate::elu::elu(*x)),
        Activation::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Activation::Tanh => v.iter_mut().for_each(|x| *x = libm::tanhf(*x)),
    }
}

/// One dense layer `y = W x + b` of a validated [`Mlp`].
///
/// `W` is stored column-major (see [`crate::format`]): the `n_out` weights
/// leaving input `k` are consecutive, so a block of output units is updated
/// input by input with contiguous loads, and each unit's sum still runs in
/// input order.
#[derive(Debug, Clone, Copy)]
pub struct Dense<'a> {
    n_in: usize,
    n_out: usize,
    /// `n_in * n_out` LE `f32`, column-major: `W[row][col]` at `col * n_out + row`.
    w: &'a [u8],
    /// `n_out` LE `f32`.
    b: &'a [u8],
    /// `w` and every parameter byte after it (`b`, later layers): a block
    /// may read a few weights past the rows it needs, as long as they are here.
    tail: &'a [u8],
}

/// Widest block of units [`Dense::each_unit`] sums together.
const WIDE: usize = 32;
/// [`WIDE`] in groups of four (one SSE register each).
const GROUPS: usize = WIDE / 4;
/// The running sums of a block, four lanes per group.
type Lanes = [[f32; 4]; GROUPS];

impl<'a> Dense<'a> {
    /// Input width.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// The weight bytes, column-major (`W[row][col]` at `4 (col n_out + row)`).
    pub(crate) fn weight_bytes(&self) -> &'a [u8] {
        self.w
    }

    /// `W[row][col]`, or `None` out of range.
    pub fn weight(&self, row: usize, col: usize) -> Option<f32> {
        if row >= self.n_out {
            return None;
        }
        F32s::new(self.w)?.get(col.checked_mul(self.n_out)?.checked_add(row)?)
    }

    /// Row `row` of `W` (the weights into unit `row`), in input order.
    fn row(&self, row: usize) -> impl Iterator<Item = f32> + 'a {
        let valid = row < self.n_out;
        self.w
            .chunks_exact(4 * self.n_out.max(1))
            .filter(move |_| valid)
            .filter_map(move |col| col.get(4 * row..4 * row + 4).map(f32_at))
    }

    /// Calls `f(j, W[j] . x + b[j])` for every unit `j` in `rows`, in order;
    /// nothing if `rows` is out of range; inputs past the input width are
    /// ignored. Each sum `W[j][0] x[0] + W[j][1] x[1] + ...` is taken in input
    /// order (no fused multiply-add), a block of units at a time so that
    /// their additions overlap; the bits do not depend on the blocking.
    ///
    /// A shorter `x` stands for inputs that are all `+0.0` past its end: their
    /// terms `W[j][k] * 0` are `±0`, which leave a running sum unchanged (it
    /// starts at `+0` and round-to-nearest never turns it into `-0`), so they
    /// are skipped with the same result.
    #[inline]
    pub(crate) fn each_unit(
        &self,
        rows: core::ops::Range<usize>,
        x: &[f32],
        mut f: impl FnMut(usize, f32),
    ) {
        let x = x.get(..self.n_in.min(x.len())).unwrap_or_default();
        if rows.end > self.n_out || rows.start > rows.end {
            return;
        }
        let mut j = rows.start;
        while j < rows.end {
            let mut acc = [[0.0f32; 4]; GROUPS];
            let n = self.add_columns(j, rows.end - j, 0..x.len(), x, &mut acc);
            if n == 0 {
                return;
            }
            for (r, &a) in acc.as_flattened().iter().enumerate().take(n) {
                f(j + r, a + self.bias(j + r));
            }
            j += n;
        }
    }

    /// Adds `W[j][k] x[k]` for the inputs `k` in `cols` (in that order) to
    /// `acc[j - rows.start]` for every unit `j` in `rows`. Summing a layer's
    /// inputs in consecutive calls over consecutive column ranges gives the
    /// bits of one [`Dense::each_unit`] sum (before the bias). Nothing if a
    /// range is out of bounds or `acc` is shorter than `rows`.
    pub(crate) fn accumulate(
        &self,
        rows: core::ops::Range<usize>,
        cols: core::ops::Range<usize>,
        x: &[f32],
        acc: &mut [f32],
    ) {
        let (true, Some(x), Some(acc)) = (
            rows.end <= self.n_out && cols.end <= self.n_in && rows.start <= rows.end,
            x.get(..cols.end),
            acc.get_mut(..rows.end.saturating_sub(rows.start)),
        ) else {
            return;
        };
        let mut j = rows.start;
        for chunk in acc.chunks_mut(WIDE) {
            let mut block = [[0.0f32; 4]; GROUPS];
            for (b, &a) in block.as_flattened_mut().iter_mut().zip(chunk.iter()) {
                *b = a;
            }
            let n = self.add_columns(j, chunk.len(), cols.clone(), x, &mut block);
            for (a, &b) in chunk.iter_mut().zip(block.as_flattened()).take(n) {
                *a = b;
            }
            j += n;
            if n < chunk.len() {
                break;
            }
        }
    }

    /// Adds `W[row][k] x[k]` to `acc[0]` and `W[row + 1][k] x[k]` to
    /// `acc[1]` for the inputs `k` in `cols`, in that order: the bits of
    /// [`Dense::accumulate`] for those two rows, in one loop without its
    /// blocks (a flow feature's shift and log-scale: two adjacent rows, so
    /// each column's two weights are one 8-byte run). Nothing if a range is
    /// out of bounds.
    pub(crate) fn accumulate_pair(
        &self,
        row: usize,
        cols: core::ops::Range<usize>,
        x: &[f32],
        acc: &mut [f32; 2],
    ) {
        let col_len = 4 * self.n_out;
        let (Some(xs), Some(w), Some(run)) = (
            x.get(cols.clone()).filter(|_| cols.end <= self.n_in),
            cols.start
                .checked_mul(col_len)
                .zip(cols.end.checked_mul(col_len))
                .and_then(|(a, b)| self.w.get(a..b)),
            row.checked_add(2)
                .filter(|&end| end <= self.n_out)
                .map(|_| 4 * row..4 * row + 8),
        ) else {
            return;
        };
        let [mut a, mut b] = *acc;
        for (col, &xk) in w.chunks_exact(col_len.max(1)).zip(xs) {
            if let Some((wa, wb)) = col.get(run.clone()).and_then(|p| p.split_at_checked(4)) {
                a += f32_at(wa) * xk;
                b += f32_at(wb) * xk;
            }
        }
        *acc = [a, b];
    }

    /// Adds the columns `cols` of `x` to `acc` for up to `want` units from
    /// `j` (at most [`WIDE`]), in one block; returns how many units were done
    /// (`min(want, WIDE)`, or fewer near the end of the parameters).
    ///
    /// The block is the narrowest of 4, 8, 16 or 32 units that covers
    /// `want`, so a narrow layer is one set of independent sums, not several
    /// chains one after the other. It reads up to `R - want` weights per
    /// column past the units asked for (lanes whose sums are not used); near
    /// the end of the parameters, where those reads would leave them, exact
    /// widths are used instead.
    #[inline(always)]
    fn add_columns(
        &self,
        j: usize,
        want: usize,
        cols: core::ops::Range<usize>,
        x: &[f32],
        acc: &mut Lanes,
    ) -> usize {
        let c = || cols.clone();
        let done = match want {
            0 => return 0,
            1..=4 => self.block::<4>(j, c(), x, acc),
            5..=8 => self.block::<8>(j, c(), x, acc),
            9..=16 => self.block::<16>(j, c(), x, acc),
            _ => self.block::<WIDE>(j, c(), x, acc),
        };
        if done {
            want.min(WIDE)
        } else if want >= 16 && self.block::<16>(j, c(), x, acc) {
            16
        } else if want >= 8 && self.block::<8>(j, c(), x, acc) {
            8
        } else if want >= 4 && self.block::<4>(j, c(), x, acc) {
            4
        } else {
            usize::from(self.block::<1>(j, c(), x, acc))
        }
    }

    /// [`Dense::columns`] from and back into the first `R` lanes of `acc`.
    #[inline(always)]
    fn block<const R: usize>(
        &self,
        j: usize,
        cols: core::ops::Range<usize>,
        x: &[f32],
        acc: &mut Lanes,
    ) -> bool {
        let lanes = acc.as_flattened_mut();
        match self.columns::<R>(j, cols, x, lanes) {
            Some(sums) => {
                for (l, s) in lanes.iter_mut().zip(sums) {
                    *l = s;
                }
                true
            }
            None => false,
        }
    }

    /// `init[r] + W[j + r][k] x[k]` summed over `k` in `cols`, in order, for
    /// the `R` units from `j`; `None` if the reads would leave the
    /// parameters. Each column's `R` weights are one contiguous run of `4 R`
    /// bytes (the runs of a narrow layer overlap); the sums stay in registers.
    #[inline(always)]
    fn columns<const R: usize>(
        &self,
        j: usize,
        cols: core::ops::Range<usize>,
        x: &[f32],
        init: &[f32],
    ) -> Option<[f32; R]> {
        let mut acc = [0.0f32; R];
        for (a, &i) in acc.iter_mut().zip(init) {
            *a = i;
        }
        let col_len = 4 * self.n_out;
        let xs = x.get(cols.clone())?;
        let Some(last) = xs.len().checked_sub(1) else {
            return Some(acc);
        };
        let start = cols.start.checked_mul(col_len)?.checked_add(4 * j)?;
        let end = last.checked_mul(col_len)?.checked_add(start + 4 * R)?;
        let region = self.tail.get(start..end)?;
        let add = |acc: &mut [f32; R], run: &[u8], xk: f32| {
            for (a, w) in acc.iter_mut().zip(run.chunks_exact(4)) {
                *a += f32_at(w) * xk;
            }
        };
        let (xs, x_last) = xs.split_at_checked(last)?;
        let (head, tail) = region.split_at_checked(last * col_len)?;
        if col_len >= 4 * R {
            // Whole columns, then the last run: the bound is checked once.
            for (col, &xk) in head.chunks_exact(col_len).zip(xs) {
                add(&mut acc, col.get(..4 * R)?, xk);
            }
        } else {
            // A narrow layer: each run reaches into the next column.
            for (i, &xk) in xs.iter().enumerate() {
                let at = i * col_len;
                add(&mut acc, region.get(at..at + 4 * R)?, xk);
            }
        }
        if let Some(&xk) = x_last.first() {
            add(&mut acc, tail, xk);
        }
        Some(acc)
    }

    /// Rows `start..start + out.len()` after activation `act`: `out[k] = act(W[start + k] . x + b[start + k])`,
    /// summed as in [`Dense::each_unit`]. Nothing if the rows are out of range.
    #[inline]
    pub(crate) fn forward_rows(&self, start: usize, x: &[f32], act: Activation, out: &mut [f32]) {
        let x = x.get(..self.n_in.min(x.len())).unwrap_or_default();
        let Some(mut bias) = self.b.get(4 * start..4 * (start + out.len())) else {
            return;
        };
        let mut j = start;
        let mut rest: &mut [f32] = &mut *out;
        while !rest.is_empty() {
            let mut acc = [[0.0f32; 4]; GROUPS];
            let n = self.add_columns(j, rest.len(), 0..x.len(), x, &mut acc);
            let (Some((head, tail)), Some((b_head, b_tail))) =
                (rest.split_at_mut_checked(n), bias.split_at_checked(4 * n))
            else {
                return;
            };
            if n == 0 {
                return;
            }
            for ((o, a), b) in head
                .iter_mut()
                .zip(acc.as_flattened())
                .zip(b_head.chunks_exact(4))
            {
                *o = a + f32_at(b);
            }
            (rest, bias, j) = (tail, b_tail, j + n);
        }
        activate_all(act, out);
    }

    /// `out[j] = act(W[j] . x + b[j])` for every unit `j`.
    pub(crate) fn forward(&self, x: &[f32], act: Activation, out: &mut [f32]) {
        let n = out.len().min(self.n_out);
        self.forward_rows(0, x, act, out.get_mut(..n).unwrap_or_default());
    }

    /// Bias `b[j]` (0 out of range).
    pub(crate) fn bias(&self, j: usize) -> f32 {
        self.b.get(4 * j..4 * j + 4).map_or(0.0, f32_at)
    }

    /// True if row `row` has a non-zero weight on an input whose flag is non-zero.
    pub(crate) fn reads_flagged(&self, row: usize, flags: &[f32]) -> bool {
        self.row(row).zip(flags).any(|(w, &f)| f != 0.0 && w != 0.0)
    }

    /// Sets `out[r]` to 1 if unit `start + r` has a non-zero weight on an
    /// input whose flag is non-zero (leaves it otherwise). Column by column,
    /// flagged inputs only: each column's weights into the units are
    /// contiguous.
    pub(crate) fn mark_readers(&self, start: usize, flags: &[f32], out: &mut [f32]) {
        let col_len = 4 * self.n_out;
        let (from, to) = (4 * start, 4 * (start + out.len()));
        for (col, _) in self
            .w
            .chunks_exact(col_len.max(1))
            .zip(flags)
            .filter(|&(_, &f)| f != 0.0)
        {
            for (o, w) in out
                .iter_mut()
                .zip(col.get(from..to).unwrap_or_default().chunks_exact(4))
            {
                if f32_at(w) != 0.0 {
                    *o = 1.0;
                }
            }
        }
    }

    /// The first row whose weight from some column in `cols` is non-zero,
    /// among rows `rows`, as `(row, column)`.
    pub(crate) fn first_nonzero(
        &self,
        rows: core::ops::Range<usize>,
        mut cols: impl FnMut(usize) -> bool,
    ) -> Option<(usize, usize)> {
        rows.into_iter().find_map(|r| {
            self.row(r)
                .enumerate()
                .find(|&(c, w)| w != 0.0 && cols(c))
                .map(|(c, _)| (r, c))
        })
    }
}

/// A validated multilayer perceptron whose weights stay in the bundle bytes.
#[derive(Debug, Clone, Copy)]
pub struct Mlp<'a> {
    dims: U16s<'a>,
    hidden: Activation,
    output: Activation,
    params: &'a [u8],
}

/// Number of `f32` parameters of an MLP with widths `dims`, if it fits in `usize`.
fn param_count(dims: U16s<'_>) -> Option<usize> {
    let mut total = 0usize;
    let mut prev: Option<usize> = None;
    for w in dims.iter() {
        let w = usize::from(w);
        if let Some(p) = prev {
            total = total.checked_add(w.checked_mul(p)?.checked_add(w)?)?;
        }
        prev = Some(w);
    }
    Some(total)
}

/// Checks layer widths: at least two, none zero, the first `n_in`, the last `n_out`.
pub(crate) fn check_dims(
    bytes: &[u8],
    section: Section,
    n_in: usize,
    n_out: usize,
) -> Result<U16s<'_>, ValidationError> {
    let dims = U16s::new(bytes).ok_or(ValidationError::Length {
        section,
        expected: bytes.len() + 1,
        found: bytes.len(),
    })?;
    if dims.len() < 2 {
        return Err(ValidationError::Dims {
            section,
            index: dims.len(),
            expected: 0,
            found: 0,
        });
    }
    let last = dims.len() - 1;
    for (index, w) in dims.iter().enumerate() {
        let found = usize::from(w);
        let expected = match index {
            0 => n_in,
            i if i == last => n_out,
            _ => 0,
        };
        if found == 0 || (expected != 0 && found != expected) {
            return Err(ValidationError::Dims {
                section,
                index,
                expected,
                found,
            });
        }
    }
    Ok(dims)
}

/// Checks that `params` holds exactly `count` finite LE `f32` values.
pub(crate) fn check_params(
    params: &[u8],
    section: Section,
    count: Option<usize>,
) -> Result<(), ValidationError> {
    let expected = count.and_then(|c| c.checked_mul(4)).unwrap_or(usize::MAX);
    if params.len() != expected {
        return Err(ValidationError::Length {
            section,
            expected,
            found: params.len(),
        });
    }
    check_finite(params, section)
}

/// Checks that every LE `f32` in `bytes` is finite.
pub(crate) fn check_finite(bytes: &[u8], section: Section) -> Result<(), ValidationError> {
    match bytes.chunks_exact(4).position(|b| !f32_at(b).is_finite()) {
        Some(index) => Err(ValidationError::NotFinite { section, index }),
        None => Ok(()),
    }
}

impl<'a> Mlp<'a> {
    /// Validates `wire` as a network from `n_in` to `n_out` values: widths,
    /// parameter count and finiteness.
    pub(crate) fn new(
        wire: &MlpWire<'a>,
        section: Section,
        n_in: usize,
        n_out: usize,
    ) -> Result<Self, ValidationError> {
        let dims = check_dims(wire.dims, section, n_in, n_out)?;
        check_params(wire.params, section, param_count(dims))?;
        Ok(Mlp {
            dims,
            hidden: wire.hidden,
            output: wire.output,
            params: wire.params,
        })
    }

    /// A network over already-validated `dims` whose `params` were checked by the caller.
    pub(crate) fn from_parts(
        dims: U16s<'a>,
        hidden: Activation,
        output: Activation,
        params: &'a [u8],
    ) -> Self {
        Mlp {
            dims,
            hidden,
            output,
            params,
        }
    }

    /// Number of parameters for the widths `dims` (validated, so it fits).
    pub(crate) fn param_count(dims: U16s<'_>) -> Option<usize> {
        param_count(dims)
    }

    /// Number of weight matrices (layers).
    pub fn n_layers(&self) -> usize {
        self.dims.len().saturating_sub(1)
    }

    /// Width `i` (`0` is the input).
    pub fn width(&self, i: usize) -> usize {
        self.dims.get(i).map_or(0, usize::from)
    }

    /// Input width.
    pub fn n_in(&self) -> usize {
        self.width(0)
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.width(self.n_layers())
    }

    /// The activation after layer `l`.
    pub fn activation(&self, l: usize) -> Activation {
        if l.saturating_add(1) >= self.n_layers() {
            self.output
        } else {
            self.hidden
        }
    }

    /// Layer `l` (`W_l`, `b_l`), or `None` past the last.
    pub fn layer(&self, l: usize) -> Option<Dense<'a>> {
        let mut at = 0usize;
        for i in 0..=l {
            let n_in = usize::from(self.dims.get(i)?);
            let n_out = usize::from(self.dims.get(i + 1)?);
            let nw = n_out.checked_mul(n_in)?.checked_mul(4)?;
            let nb = n_out.checked_mul(4)?;
            let w_end = at.checked_add(nw)?;
            let b_end = w_end.checked_add(nb)?;
            if i == l {
                let w = self.params.get(at..w_end)?;
                let b = self.params.get(w_end..b_end)?;
                let tail = self.params.get(at..)?;
                return Some(Dense {
                    n_in,
                    n_out,
                    w,
                    b,
                    tail,
                });
            }
            at = b_end;
        }
        None
    }

    /// The layers in order (what [`Mlp::layer`] gives for `0, 1, ...`,
    /// without walking the widths again for each).
    pub fn layers(&self) -> impl Iterator<Item = Dense<'a>> + 'a {
        let params = self.params;
        let mut at = 0usize;
        let dims = self.dims;
        (0..self.n_layers()).map_while(move |i| {
            let n_in = usize::from(dims.get(i)?);
            let n_out = usize::from(dims.get(i + 1)?);
            let w_end = at.checked_add(n_out.checked_mul(n_in)?.checked_mul(4)?)?;
            let b_end = w_end.checked_add(n_out.checked_mul(4)?)?;
            let dense = Dense {
                n_in,
                n_out,
                w: params.get(at..w_end)?,
                b: params.get(w_end..b_end)?,
                tail: params.get(at..)?,
            };
            at = b_end;
            Some(dense)
        })
    }

    /// The largest width after the input.
    pub fn max_width(&self) -> usize {
        self.dims.iter().skip(1).map(usize::from).max().unwrap_or(0)
    }

    /// Scratch `f32` values [`Mlp::forward`] needs: two buffers of the largest width.
    pub fn scratch_len(&self) -> usize {
        2 * self.max_width()
    }

    /// Runs the network on `x`, using `scratch`, and returns the output (a
    /// part of `scratch`).
    pub fn forward<'s>(&self, x: &[f32], scratch: &'s mut [f32]) -> Result<&'s [f32], Error> {
        if x.len() != self.n_in() {
            return Err(InputError::Length {
                argument: crate::error::Argument::Input,
                expected: self.n_in(),
                found: x.len(),
            }
            .into());
        }
        let width = self.max_width();
        let too_small = InputError::ScratchTooSmall {
            needed: self.scratch_len(),
            found: scratch.len(),
        };
        let (a, rest) = scratch.split_at_mut_checked(width).ok_or(too_small)?;
        let b = rest.get_mut(..width).ok_or(too_small)?;
        // `in_a`: the previous layer's output is in `a`.
        let mut in_a = false;
        for (l, layer) in self.layers().enumerate() {
            let act = self.activation(l);
            let (n_in, n_out) = (layer.n_in(), layer.n_out());
            match (l, in_a) {
                (0, _) => layer.forward(x, act, a.get_mut(..n_out).unwrap_or_default()),
                (_, true) => layer.forward(
                    a.get(..n_in).unwrap_or_default(),
                    act,
                    b.get_mut(..n_out).unwrap_or_default(),
                ),
                (_, false) => layer.forward(
                    b.get(..n_in).unwrap_or_default(),
                    act,
                    a.get_mut(..n_out).unwrap_or_default(),
                ),
            }
            in_a = l == 0 || !in_a;
        }
        let n_out = self.n_out();
        let out: &'s [f32] = if in_a { a } else { b };
        Ok(out.get(..n_out).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(v: &[f32], out: &mut [u8]) -> usize {
        for (c, x) in out.chunks_exact_mut(4).zip(v) {
            c.copy_from_slice(&x.to_le_bytes());
        }
        4 * v.len()
    }

    #[test]
    fn two_layer_relu_sigmoid_by_hand() {
        // 2 -> 2 (ReLU) -> 1 (sigmoid)
        // h = relu([[1, -1], [0.5, 2]] x + [0, -1]); y = sigmoid([1, 1] h + 0.25)
        let dims = [2u8, 0, 2, 0, 1, 0];
        // W1 column-major: the weights leaving x0 (1, 0.5), then x1 (-1, 2).
        let params = [1.0, 0.5, -1.0, 2.0, 0.0, -1.0, 1.0, 1.0, 0.25];
        let mut pb = [0u8; 36];
        le(&params, &mut pb);
        let wire = MlpWire {
            dims: &dims,
            hidden: Activation::Relu,
            output: Activation::Sigmoid,
            params: &pb,
        };
        let mlp = Mlp::new(&wire, Section::Classifier, 2, 1).unwrap();
        assert_eq!(mlp.scratch_len(), 4);
        let mut scratch = [f32::NAN; 4];
        // x = (1, 2): pre = (-1, 4.5 - 1 = 3.5) -> h = (0, 3.5) -> y = sigmoid(3.75)
        let y = mlp.forward(&[1.0, 2.0], &mut scratch).unwrap();
        assert_eq!(y, &[1.0 / (1.0 + libm::expf(-3.75))]);
        assert_eq!(mlp.layer(0).unwrap().weight(0, 1), Some(-1.0));
        assert_eq!(mlp.layer(0).unwrap().weight(1, 0), Some(0.5));
        assert_eq!(mlp.layer(1).unwrap().weight(0, 1), Some(1.0));
        assert_eq!(mlp.layer(2).map(|l| l.n_in()), None);
    }

    #[test]
    fn activations_match_their_definitions() {
        assert_eq!(activate(Activation::Relu, -2.0), 0.0);
        assert_eq!(activate(Activation::Relu, 2.0), 2.0);
        assert_eq!(activate(Activation::Elu, 1.5), 1.5);
        assert!((activate(Activation::Elu, -1.0) - (libm::exp(-1.0) - 1.0) as f32).abs() < 1e-7);
        assert_eq!(activate(Activation::Sigmoid, 0.0), 0.5);
        assert_eq!(activate(Activation::Sigmoid, -200.0), 0.0);
        assert_eq!(activate(Activation::Identity, -3.0), -3.0);
        assert_eq!(activate(Activation::Tanh, 0.0), 0.0);
        assert_eq!(activate(Activation::Tanh, 30.0), 1.0);
        assert!((activate(Activation::Tanh, -0.5) - libm::tanh(-0.5) as f32).abs() < 1e-7);
    }

    /// The wire stores an activation by its position: the variants that existed before `Tanh`
    /// keep their bytes (so older bundles and the golden fixtures still decode), `Tanh` is new.
    #[test]
    fn activation_wire_bytes_are_positional_and_tanh_is_appended() {
        let all = [
            Activation::Identity,
            Activation::Relu,
            Activation::Elu,
            Activation::Sigmoid,
            Activation::Tanh,
        ];
        for (byte, act) in all.into_iter().enumerate() {
            let mut buf = [0u8; 4];
            let used = postcard::to_slice(&act, &mut buf).unwrap();
            assert_eq!(used, &[byte as u8]);
            assert_eq!(
                postcard::from_bytes::<Activation>(&[byte as u8]).unwrap(),
                act
            );
        }
    }

    #[test]
    fn short_scratch_and_wrong_input_are_typed_errors() {
        let dims = [1u8, 0, 1, 0];
        let mut pb = [0u8; 8];
        le(&[2.0, 1.0], &mut pb);
        let wire = MlpWire {
            dims: &dims,
            hidden: Activation::Relu,
            output: Activation::Identity,
            params: &pb,
        };
        let mlp = Mlp::new(&wire, Section::MaskNet, 1, 1).unwrap();
        let mut s = [0.0; 1];
        assert_eq!(
            mlp.forward(&[1.0], &mut s),
            Err(Error::Input(InputError::ScratchTooSmall {
                needed: 2,
                found: 1
            }))
        );
        let mut s = [0.0; 2];
        assert!(matches!(
            mlp.forward(&[1.0, 2.0], &mut s),
            Err(Error::Input(InputError::Length { .. }))
        ));
        assert_eq!(mlp.forward(&[3.0], &mut s).unwrap(), &[7.0]);
    }
}
