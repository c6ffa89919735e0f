//! Elementwise activations with their derivatives.

use ndarray::{Array2, Zip};

/// An elementwise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `max(x, 0)`; the derivative at 0 is taken as 0 (torch's choice).
    Relu,
    /// `x` if `x > 0`, else `exp(x) - 1` (alpha = 1).
    Elu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)` (the hidden layers of a brought scikit-learn or PyTorch classifier).
    Tanh,
}

/// Numerically stable logistic function.
pub(crate) fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

impl Activation {
    /// The activation of one value.
    pub fn apply(self, t: f64) -> f64 {
        match self {
            Activation::Identity => t,
            Activation::Relu => t.max(0.0),
            Activation::Elu => {
                if t > 0.0 {
                    t
                } else {
                    t.exp_m1()
                }
            }
            Activation::Sigmoid => sigmoid(t),
            Activation::Tanh => t.tanh(),
        }
    }

    /// `f(pre)`, elementwise.
    pub fn forward(self, pre: &Array2<f64>) -> Array2<f64> {
        pre.mapv(|t| self.apply(t))
    }

    /// `f(pre)` written into `out` (same shape), elementwise.
    pub fn forward_into(self, pre: &Array2<f64>, out: &mut Array2<f64>) {
        Zip::from(out).and(pre).for_each(|o, &t| *o = self.apply(t));
    }

    /// `dL/d(pre)` from `dL/d(post)`, where `post = f(pre)`; `grad` is overwritten in place.
    pub fn backward_in_place(self, pre: &Array2<f64>, post: &Array2<f64>, grad: &mut Array2<f64>) {
        // One loop per activation so the match is not evaluated per element.
        match self {
            Activation::Identity => {}
            // Selects rather than branches, so that the loops vectorize (same values: `g * 1`
            // is `g`).
            Activation::Relu => Zip::from(grad)
                .and(pre)
                .for_each(|g, &t| *g = if t <= 0.0 { 0.0 } else { *g }),
            Activation::Elu => Zip::from(grad)
                .and(pre)
                .and(post)
                .for_each(|g, &t, &y| *g *= if t <= 0.0 { y + 1.0 } else { 1.0 }),
            Activation::Sigmoid => Zip::from(grad)
                .and(post)
                .for_each(|g, &y| *g *= y * (1.0 - y)),
            Activation::Tanh => Zip::from(grad)
                .and(post)
                .for_each(|g, &y| *g *= 1.0 - y * y),
        }
    }

    /// `dL/d(pre)` from `dL/d(post)`, where `post = f(pre)`.
    pub fn backward(
        self,
        pre: &Array2<f64>,
        post: &Array2<f64>,
        grad_post: &Array2<f64>,
    ) -> Array2<f64> {
        let mut g = grad_post.clone();
        self.backward_in_place(pre, post, &mut g);
        g
    }

    /// The same activation in the bundle's wire format.
    pub fn to_wire(self) -> carma_core::format::Activation {
        use carma_core::format::Activation as W;
        match self {
            Activation::Identity => W::Identity,
            Activation::Relu => W::Relu,
            Activation::Elu => W::Elu,
            Activation::Sigmoid => W::Sigmoid,
            Activation::Tanh => W::Tanh,
        }
    }

    /// The trainer's activation for a wire one.
    pub fn from_wire(wire: carma_core::format::Activation) -> Activation {
        use carma_core::format::Activation as W;
        match wire {
            W::Identity => Activation::Identity,
            W::Relu => Activation::Relu,
            W::Elu => Activation::Elu,
            W::Sigmoid => Activation::Sigmoid,
            W::Tanh => Activation::Tanh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_grads_close, numeric_grad, random_matrix};

    fn check(act: Activation) {
        // Keep inputs away from ReLU/ELU's kink at 0, where the derivative jumps.
        let mut x = random_matrix(5, 4, 1, 3.0);
        x.mapv_inplace(|t| if t.abs() < 0.05 { t + 0.1 } else { t });
        let w = random_matrix(5, 4, 2, 1.0);
        let loss = |x: &Array2<f64>| (act.forward(x) * &w).sum();
        let post = act.forward(&x);
        let analytic = act.backward(&x, &post, &w);
        let numeric = numeric_grad(&x, loss);
        assert_grads_close(analytic.as_slice().unwrap(), numeric.as_slice().unwrap());
    }

    #[test]
    fn relu_backward_matches_finite_differences() {
        check(Activation::Relu);
    }

    #[test]
    fn elu_backward_matches_finite_differences() {
        check(Activation::Elu);
    }

    #[test]
    fn sigmoid_backward_matches_finite_differences() {
        check(Activation::Sigmoid);
    }

    #[test]
    fn tanh_backward_matches_finite_differences() {
        check(Activation::Tanh);
    }

    #[test]
    fn wire_round_trip_keeps_every_activation() {
        for a in [
            Activation::Identity,
            Activation::Relu,
            Activation::Elu,
            Activation::Sigmoid,
            Activation::Tanh,
        ] {
            assert_eq!(Activation::from_wire(a.to_wire()), a);
        }
    }

    #[test]
    fn identity_backward_matches_finite_differences() {
        check(Activation::Identity);
    }

    #[test]
    fn sigmoid_is_stable_for_large_inputs() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }
}
