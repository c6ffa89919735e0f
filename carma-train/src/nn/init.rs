//! Seeded weight initialization.

use ndarray::{Array1, Array2};
use rand::Rng;

/// How a [`super::Dense`] layer's weights and biases start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Xavier/Glorot uniform: `W ~ U(-a, a)`, `a = gain * sqrt(6 / (fan_in + fan_out))`, every bias
    /// equal to `bias`. CARMA's networks use `gain = sqrt(2)`, `bias = 0.01` (docs/MATH.md section 5, CARMA training).
    XavierUniform {
        /// Multiplier of the bound.
        gain: f64,
        /// Constant bias.
        bias: f64,
    },
    /// torch's `nn.Linear` default: `W` and `b` both `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    TorchDefault,
}

/// CARMA's initialization (docs/MATH.md section 5, CARMA training): Xavier uniform, gain `sqrt(2)`, bias 0.01.
pub const CARMA_INIT: Init = Init::XavierUniform {
    gain: std::f64::consts::SQRT_2,
    bias: 0.01,
};

fn uniform(rng: &mut impl Rng, bound: f64) -> f64 {
    if bound > 0.0 {
        rng.random_range(-bound..bound)
    } else {
        0.0
    }
}

impl Init {
    /// A `[fan_out][fan_in]` weight matrix and a `fan_out` bias vector.
    pub fn sample(
        self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut impl Rng,
    ) -> (Array2<f64>, Array1<f64>) {
        match self {
            Init::XavierUniform { gain, bias } => {
                let bound = gain * (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
                let w = Array2::from_shape_simple_fn((fan_out, fan_in), || uniform(rng, bound));
                (w, Array1::from_elem(fan_out, bias))
            }
            Init::TorchDefault => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                let w = Array2::from_shape_simple_fn((fan_out, fan_in), || uniform(rng, bound));
                let b = Array1::from_shape_simple_fn(fan_out, || uniform(rng, bound));
                (w, b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn xavier_respects_bound_and_bias_and_is_seeded() {
        let init = CARMA_INIT;
        let (w, b) = init.sample(10, 30, &mut ChaCha8Rng::seed_from_u64(3));
        let bound = std::f64::consts::SQRT_2 * (6.0f64 / 40.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.5 * bound));
        assert!(b.iter().all(|&v| v == 0.01));
        let (w2, _) = init.sample(10, 30, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(w, w2);
    }

    #[test]
    fn torch_default_respects_fan_in_bound() {
        let (w, b) = Init::TorchDefault.sample(16, 4, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(w.iter().chain(b.iter()).all(|v| v.abs() <= 0.25));
    }
}
