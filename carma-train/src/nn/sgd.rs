//! Plain stochastic gradient descent: `p <- p - lr * (g + c p)`, torch `SGD(momentum = 0)`.
//!
//! The paper's reference trains its classifiers this way (lr 1e-3, batch 256, 500 epochs); the
//! result is much smoother than an Adam-trained one on the same data, which matters for
//! recourse (docs/MATH.md, section 3).

use super::Params;

/// SGD without momentum, with optional L2 weight decay added to the gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// L2 coefficient `c` (torch `weight_decay`), 0 for none.
    pub weight_decay: f64,
}

impl Sgd {
    /// One update of every parameter of `model` from its accumulated gradients. Gradients are
    /// not zeroed.
    pub fn step(&self, model: &mut impl Params) {
        for pg in model.params_and_grads() {
            for (p, &g) in pg.param.iter_mut().zip(pg.grad.iter()) {
                *p -= self.lr * (g + self.weight_decay * *p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamGrad;

    struct Two {
        p: Vec<f64>,
        g: Vec<f64>,
    }

    impl Params for Two {
        fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>> {
            vec![ParamGrad {
                param: &mut self.p,
                grad: &mut self.g,
            }]
        }
    }

    #[test]
    fn one_step_is_lr_times_the_gradient_plus_decay() {
        let mut m = Two {
            p: vec![1.0, -2.0],
            g: vec![3.0, -0.5],
        };
        Sgd {
            lr: 0.1,
            weight_decay: 0.5,
        }
        .step(&mut m);
        approx::assert_relative_eq!(m.p[0], 1.0 - 0.1 * (3.0 + 0.5), max_relative = 1e-12);
        approx::assert_relative_eq!(m.p[1], -2.0 - 0.1 * (-0.5 - 1.0), max_relative = 1e-12);
        // Gradients are left for the caller to zero.
        assert_eq!(m.g, vec![3.0, -0.5]);
    }

    #[test]
    fn sgd_minimizes_a_quadratic() {
        let target = [0.5, -1.5];
        let mut m = Two {
            p: vec![0.0; 2],
            g: vec![0.0; 2],
        };
        let sgd = Sgd {
            lr: 0.1,
            weight_decay: 0.0,
        };
        for _ in 0..500 {
            for i in 0..2 {
                m.g[i] = m.p[i] - target[i];
            }
            sgd.step(&mut m);
        }
        for i in 0..2 {
            assert!((m.p[i] - target[i]).abs() < 1e-9, "{:?}", m.p);
        }
    }
}
