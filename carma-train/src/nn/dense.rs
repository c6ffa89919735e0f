//! The dense (fully connected) layer, optionally with a fixed MADE mask.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Axis};
use rand::Rng;

use super::{Init, ParamGrad, Params};

/// `y = x W^T + b` with `W` stored `[out][in]` (torch layout). With a mask `M` (0/1, same shape
/// as `W`) the layer computes `y = x (W ⊙ M)^T + b` and the weight gradient is masked too, so
/// masked-out weights never matter (MADE, docs/MATH.md section 4, causal flow).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    w: Array2<f64>,
    b: Array1<f64>,
    gw: Array2<f64>,
    gb: Array1<f64>,
    mask: Option<Array2<f64>>,
}

impl Dense {
    /// A layer `fan_in -> fan_out` initialized by `init`.
    pub fn new(fan_in: usize, fan_out: usize, init: Init, rng: &mut impl Rng) -> Self {
        let (w, b) = init.sample(fan_in, fan_out, rng);
        Self::from_parts(w, b)
    }

    /// A masked (MADE) layer. `mask` is `[fan_out][fan_in]` of 0/1; masked weights are zeroed.
    pub fn masked(mask: Array2<f64>, init: Init, rng: &mut impl Rng) -> Self {
        let (fan_out, fan_in) = mask.dim();
        let mut layer = Self::new(fan_in, fan_out, init, rng);
        layer.w *= &mask;
        layer.mask = Some(mask);
        layer
    }

    /// A layer with the given weight `[out][in]` and bias `[out]`.
    ///
    /// # Panics
    /// If `b.len() != w.nrows()` (a programming error, not user data).
    pub fn from_parts(w: Array2<f64>, b: Array1<f64>) -> Self {
        assert_eq!(
            w.nrows(),
            b.len(),
            "bias length must equal the number of outputs"
        );
        let gw = Array2::zeros(w.raw_dim());
        let gb = Array1::zeros(b.len());
        Self {
            w: w.as_standard_layout().into_owned(),
            b,
            gw,
            gb,
            mask: None,
        }
    }

    /// The same layer with a MADE mask `[out][in]` (0/1); masked weights are zeroed.
    ///
    /// # Panics
    /// If the mask's shape differs from the weight's (a programming error).
    pub fn with_mask(mut self, mask: Array2<f64>) -> Self {
        assert_eq!(
            mask.dim(),
            self.w.dim(),
            "mask shape must equal the weight shape"
        );
        self.w *= &mask;
        self.mask = Some(mask);
        self
    }

    /// Number of inputs.
    pub fn fan_in(&self) -> usize {
        self.w.ncols()
    }

    /// Number of outputs.
    pub fn fan_out(&self) -> usize {
        self.w.nrows()
    }

    /// The raw (unmasked) weight, `[out][in]`.
    pub fn weight(&self) -> &Array2<f64> {
        &self.w
    }

    /// The bias.
    pub fn bias(&self) -> &Array1<f64> {
        &self.b
    }

    /// The mask, if this is a MADE layer.
    pub fn mask(&self) -> Option<&Array2<f64>> {
        self.mask.as_ref()
    }

    /// The weight actually used: `W ⊙ M` for a masked layer, else `W`.
    pub fn effective_weight(&self) -> Array2<f64> {
        match &self.mask {
            Some(m) => &self.w * m,
            None => self.w.clone(),
        }
    }

    /// Accumulated weight gradient (masked for a MADE layer).
    pub fn weight_grad(&self) -> &Array2<f64> {
        &self.gw
    }

    /// Accumulated bias gradient.
    pub fn bias_grad(&self) -> &Array1<f64> {
        &self.gb
    }

    /// `x W_eff^T + b` for a batch `x` of shape `[batch][in]`.
    pub fn forward(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut y = match &self.mask {
            Some(m) => x.dot(&(&self.w * m).t()),
            None => x.dot(&self.w.t()),
        };
        y += &self.b;
        y
    }

    /// `dL/dx = g W_eff` for the output gradient `g` (`[batch][out]`); parameters untouched.
    pub fn input_grad(&self, grad_out: &Array2<f64>) -> Array2<f64> {
        match &self.mask {
            Some(m) => grad_out.dot(&(&self.w * m)),
            None => grad_out.dot(&self.w),
        }
    }

    /// Add `dL/dW = g^T x` (masked) and `dL/db = sum_rows g` into the gradients and return
    /// `dL/dx`. `x` is the input that `forward` saw.
    pub fn backward(&mut self, x: &Array2<f64>, grad_out: &Array2<f64>) -> Array2<f64> {
        self.accumulate_param_grads(x, grad_out);
        self.input_grad(grad_out)
    }

    /// Add the parameter gradients only (for the first layer, where `dL/dx` may not be needed).
    pub fn accumulate_param_grads(&mut self, x: &Array2<f64>, grad_out: &Array2<f64>) {
        match &self.mask {
            Some(m) => {
                let mut gw = grad_out.t().dot(x);
                gw *= m;
                self.gw += &gw;
            }
            None => general_mat_mul(1.0, &grad_out.t(), x, 1.0, &mut self.gw),
        }
        self.gb += &grad_out.sum_axis(Axis(0));
    }
}

impl Params for Dense {
    fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>> {
        // Arrays are created in standard layout (from_parts), so the slices exist.
        vec![
            ParamGrad {
                param: self.w.as_slice_mut().expect("standard layout"),
                grad: self.gw.as_slice_mut().expect("standard layout"),
            },
            ParamGrad {
                param: self.b.as_slice_mut().expect("standard layout"),
                grad: self.gb.as_slice_mut().expect("standard layout"),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{
        assert_grads_close, numeric_grad, numeric_param_grad, random_matrix,
    };
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check(mut layer: Dense) {
        let x = random_matrix(6, layer.fan_in(), 11, 2.0);
        let w_out = random_matrix(6, layer.fan_out(), 12, 1.0);
        // L = sum(y ⊙ w_out), so dL/dy = w_out.
        let loss_x = |x: &Array2<f64>| (layer.forward(x) * &w_out).sum();
        let numeric_x = numeric_grad(&x, loss_x);
        layer.zero_grad();
        let gx = layer.backward(&x, &w_out);
        assert_grads_close(gx.as_slice().unwrap(), numeric_x.as_slice().unwrap());
        let analytic_p = layer.flat_grads();
        let numeric_p = numeric_param_grad(&mut layer, |l| (l.forward(&x) * &w_out).sum());
        assert_grads_close(&analytic_p, &numeric_p);
    }

    #[test]
    fn dense_backward_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        check(Dense::new(4, 3, Init::TorchDefault, &mut rng));
    }

    #[test]
    fn masked_dense_backward_matches_finite_differences_and_masks_grads() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mask = Array2::from_shape_fn((5, 4), |(o, i)| f64::from(u8::from((o + i) % 3 != 0)));
        let layer = Dense::masked(mask.clone(), Init::TorchDefault, &mut rng);
        check(layer.clone());
        let mut layer = layer;
        let x = random_matrix(3, 4, 1, 1.0);
        layer.backward(&x, &random_matrix(3, 5, 2, 1.0));
        for ((o, i), &m) in mask.indexed_iter() {
            if m == 0.0 {
                assert_eq!(layer.weight_grad()[[o, i]], 0.0);
                assert_eq!(layer.weight()[[o, i]], 0.0);
            }
        }
    }

    #[test]
    fn gradients_accumulate_until_zeroed() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut layer = Dense::new(3, 2, Init::TorchDefault, &mut rng);
        let x = random_matrix(4, 3, 1, 1.0);
        let g = random_matrix(4, 2, 2, 1.0);
        layer.backward(&x, &g);
        let once = layer.flat_grads();
        layer.backward(&x, &g);
        let twice = layer.flat_grads();
        for (a, b) in once.iter().zip(&twice) {
            assert!((2.0 * a - b).abs() < 1e-12);
        }
        layer.zero_grad();
        assert!(layer.flat_grads().iter().all(|&v| v == 0.0));
    }
}
