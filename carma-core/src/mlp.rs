//! Dense multilayer perceptrons over borrowed little-endian weights.
//!
//! The classifier, the CARMA networks and every flow hyper-network are MLPs
//! in the [`MlpWire`] layout: for each layer `W` (`out x in`, row-major), then `b`.
//! Each unit computes `act(sum_k W[j][k] x[k] + b[j])`, the sum taken in
//! index order, so results are bit-for-bit reproducible.

use crate::error::{Error, InputError, Section, ValidationError};
use crate::format::{Activation, MlpWire};
use crate::le::{F32s, U16s, dots, f32_at};

/// Applies `act` to `x`.
pub fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::Elu => {
            if x > 0.0 {
                x
            } else {
                libm::expm1f(x)
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + libm::expf(-x)),
    }
}

/// One dense layer `y = W x + b` of a validated [`Mlp`].
#[derive(Debug, Clone, Copy)]
pub struct Dense<'a> {
    n_in: usize,
    n_out: usize,
    /// `n_out * n_in` LE `f32`, row-major.
    w: &'a [u8],
    /// `n_out` LE `f32`.
    b: &'a [u8],
}

impl<'a> Dense<'a> {
    /// Input width.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// `W[row][col]`, or `None` out of range.
    pub fn weight(&self, row: usize, col: usize) -> Option<f32> {
        if col >= self.n_in {
            return None;
        }
        F32s::new(self.w)?.get(row.checked_mul(self.n_in)?.checked_add(col)?)
    }

    /// Row `row` of `W` as LE bytes (empty out of range).
    fn row_bytes(&self, row: usize) -> &'a [u8] {
        self.w
            .chunks_exact(4 * self.n_in.max(1))
            .nth(row)
            .unwrap_or(&[])
    }

    /// Calls `f(j, W[j] . x + b[j])` for every unit `j` in `rows`, in order;
    /// nothing if `x` is shorter than the input width or `rows` is out of
    /// range. Each sum `W[j][0] x[0] + W[j][1] x[1] + ...` is taken in index
    /// order, [`ROW_BLOCK`] rows at a time so that their additions overlap.
    #[inline]
    pub(crate) fn each_unit(
        &self,
        rows: core::ops::Range<usize>,
        x: &[f32],
        mut f: impl FnMut(usize, f32),
    ) {
        let n = self.n_in;
        let row_len = 4 * n;
        let (Some(x), Some(w), Some(b)) = (
            x.get(..n),
            self.w.get(rows.start * row_len..rows.end * row_len),
            self.b.get(4 * rows.start..4 * rows.end),
        ) else {
            return;
        };
        if n == 0 {
            return;
        }
        let j = rows.start;
        let (j, w, b) = each_block::<ROW_BLOCK>(j, x, w, b, &mut f);
        let (j, w, b) = each_block::<4>(j, x, w, b, &mut f);
        let (j, w, b) = each_block::<2>(j, x, w, b, &mut f);
        each_block::<1>(j, x, w, b, &mut f);
    }

    /// Rows `start..start + out.len()` after activation `act`: `out[k] = act(W[start + k] . x + b[start + k])`.
    #[inline]
    pub(crate) fn forward_rows(&self, start: usize, x: &[f32], act: Activation, out: &mut [f32]) {
        self.each_unit(start..start + out.len(), x, |j, v| {
            if let Some(o) = out.get_mut(j - start) {
                *o = activate(act, v);
            }
        });
    }

    /// `out[j] = act(W[j] . x + b[j])` for every unit `j`.
    pub(crate) fn forward(&self, x: &[f32], act: Activation, out: &mut [f32]) {
        let n = out.len().min(self.n_out);
        self.forward_rows(0, x, act, out.get_mut(..n).unwrap_or_default());
    }

    /// True if row `row` has a non-zero weight on an input whose flag is non-zero.
    pub(crate) fn reads_flagged(&self, row: usize, flags: &[f32]) -> bool {
        self.row_bytes(row)
            .chunks_exact(4)
            .zip(flags)
            .fold(false, |acc, (w, &f)| {
                acc | ((f32_at(w) != 0.0) & (f != 0.0))
            })
    }

    /// The first row whose weight from some column in `cols` is non-zero,
    /// among rows `rows`, as `(row, column)`.
    pub(crate) fn first_nonzero(
        &self,
        rows: core::ops::Range<usize>,
        mut cols: impl FnMut(usize) -> bool,
    ) -> Option<(usize, usize)> {
        rows.into_iter().find_map(|r| {
            self.row_bytes(r)
                .chunks_exact(4)
                .enumerate()
                .find(|&(c, w)| f32_at(w) != 0.0 && cols(c))
                .map(|(c, _)| (r, c))
        })
    }
}

/// Rows computed together by [`Dense::each_unit`]: enough independent sums
/// to hide the latency of a floating-point addition.
pub const ROW_BLOCK: usize = 8;

/// [`Dense::each_unit`] on as many blocks of `R` rows as `w` (rows of
/// `x.len()` weights) and `b` hold, from unit `j`; returns the next unit and
/// the rows and biases left over.
#[inline(always)]
fn each_block<'w, const R: usize>(
    mut j: usize,
    x: &[f32],
    w: &'w [u8],
    b: &'w [u8],
    f: &mut impl FnMut(usize, f32),
) -> (usize, &'w [u8], &'w [u8]) {
    let ws = w.chunks_exact(R * 4 * x.len());
    let bs = b.chunks_exact(4 * R);
    let rest = (ws.remainder(), bs.remainder());
    for (wb, bb) in ws.zip(bs) {
        let acc = dots::<R>(wb, x);
        for (a, b) in acc.into_iter().zip(bb.chunks_exact(4)) {
            f(j, a + f32_at(b));
            j += 1;
        }
    }
    (j, rest.0, rest.1)
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
                return Some(Dense { n_in, n_out, w, b });
            }
            at = b_end;
        }
        None
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
        for l in 0..self.n_layers() {
            let Some(layer) = self.layer(l) else { break };
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
        let params = [1.0, -1.0, 0.5, 2.0, 0.0, -1.0, 1.0, 1.0, 0.25];
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
