//! The Adam optimizer with optional weight decay.

use super::Params;

/// Weight decay for [`Adam`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightDecay {
    /// No decay.
    None,
    /// Classic L2 regularization, torch `Adam(weight_decay = c)`: `c * p` is added to the
    /// gradient before the moment updates.
    L2(f64),
    /// Decoupled decay, torch `AdamW(weight_decay = c)`: `p -= lr * c * p` before the Adam step.
    Decoupled(f64),
}

/// Adam hyperparameters (torch defaults, lr 1e-3 as docs/MATH.md sections 3 (classifier), 4 (causal flow) use).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: WeightDecay,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
        }
    }
}

/// Adam. The moments are kept per tensor in the order of [`Params::params_and_grads`]; use one
/// `Adam` per model.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    config: AdamConfig,
    t: i32,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl Adam {
    /// A fresh optimizer.
    pub fn new(config: AdamConfig) -> Self {
        Self {
            config,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Current learning rate.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Change the learning rate (used by [`super::ReduceLrOnPlateau`]).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Number of steps taken.
    pub fn steps(&self) -> i32 {
        self.t
    }

    /// One update of every parameter of `model` from its accumulated gradients. Gradients are
    /// not zeroed.
    ///
    /// # Panics
    /// If the model's tensor shapes differ from the first call's (one `Adam` per model).
    pub fn step(&mut self, model: &mut impl Params) {
        let pgs = model.params_and_grads();
        if self.m.is_empty() {
            self.m = pgs.iter().map(|pg| vec![0.0; pg.param.len()]).collect();
            self.v = self.m.clone();
        }
        assert_eq!(pgs.len(), self.m.len(), "Adam used with a different model");
        self.t = self.t.saturating_add(1);
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.t);
        let bc2 = 1.0 - c.beta2.powi(self.t);
        let (l2, decoupled) = match c.weight_decay {
            WeightDecay::None => (0.0, 0.0),
            WeightDecay::L2(w) => (w, 0.0),
            WeightDecay::Decoupled(w) => (0.0, w),
        };
        for (k, pg) in pgs.into_iter().enumerate() {
            let (m, v) = (&mut self.m[k], &mut self.v[k]);
            assert_eq!(m.len(), pg.param.len(), "Adam used with a different model");
            for i in 0..m.len() {
                let p = &mut pg.param[i];
                let g = pg.grad[i] + l2 * *p;
                *p -= c.lr * decoupled * *p;
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g;
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g * g;
                *p -= c.lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + c.eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamGrad;

    /// A toy model `L = sum (p - target)^2 / 2`.
    struct Quad {
        p: Vec<f64>,
        g: Vec<f64>,
    }

    impl Params for Quad {
        fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>> {
            vec![ParamGrad {
                param: &mut self.p,
                grad: &mut self.g,
            }]
        }
    }

    impl Quad {
        fn grad(&mut self, target: &[f64]) {
            for i in 0..self.p.len() {
                self.g[i] = self.p[i] - target[i];
            }
        }
    }

    #[test]
    fn first_step_moves_each_param_by_lr_against_the_gradient_sign() {
        let mut q = Quad {
            p: vec![1.0, -2.0],
            g: vec![3.0, -0.5],
        };
        let mut adam = Adam::new(AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        });
        adam.step(&mut q);
        approx::assert_relative_eq!(q.p[0], 0.9, max_relative = 1e-6);
        approx::assert_relative_eq!(q.p[1], -1.9, max_relative = 1e-6);
    }

    #[test]
    fn adam_minimizes_a_quadratic() {
        let target = [0.5, -1.5, 3.0];
        let mut q = Quad {
            p: vec![0.0; 3],
            g: vec![0.0; 3],
        };
        let mut adam = Adam::new(AdamConfig {
            lr: 0.05,
            ..AdamConfig::default()
        });
        for _ in 0..2000 {
            q.grad(&target);
            adam.step(&mut q);
        }
        for i in 0..3 {
            assert!((q.p[i] - target[i]).abs() < 1e-3, "{:?}", q.p);
        }
    }

    #[test]
    fn weight_decay_pulls_the_optimum_towards_zero() {
        let target = [2.0];
        for wd in [WeightDecay::L2(1.0), WeightDecay::Decoupled(1.0)] {
            let mut q = Quad {
                p: vec![0.0],
                g: vec![0.0],
            };
            let cfg = AdamConfig {
                lr: 0.01,
                weight_decay: wd,
                ..AdamConfig::default()
            };
            let mut adam = Adam::new(cfg);
            for _ in 0..5000 {
                q.grad(&target);
                adam.step(&mut q);
            }
            // L2: stationary at p = 2 / (1 + 1) = 1. Decoupled: near 1 as well for this lr.
            assert!((q.p[0] - 1.0).abs() < 0.05, "{wd:?}: {}", q.p[0]);
        }
    }
}
