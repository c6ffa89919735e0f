//! Exogenous distributions of docs/MATH.md section 2, datasets. Variances in docs/MATH.md become standard deviations
//! here, once, in the constants.

use rand::Rng;
use rand_distr::{Bernoulli, Distribution, Gamma, Normal};

use super::Dataset;

/// `u_s ~ Bernoulli(0.5)` for the binary root (x_s, gender) of every dataset.
const ROOT_P: f64 = 0.5;
/// `u_1 ~ 0.5 N(-2, 1.5) + 0.5 N(1.5, 1)` for the four-node datasets: (weight, mean, variance).
const MIXTURE: [(f64, f64, f64); 2] = [(0.5, -2.0, 1.5), (0.5, 1.5, 1.0)];
/// Variance of `u_2` in "version 2" (triangle-NLIN, collider-NLIN); version 1 has 1.
const U2_VARIANCE_V2: f64 = 0.1;
/// Loan age noise `u_1 ~ Gamma(shape 10, scale 3.5)`.
const LOAN_AGE_GAMMA: (f64, f64) = (10.0, 3.5);
/// Loan noise variances for nodes 2..=6: 0.5^2, 2^2, 3^2, 2^2, 5^2.
const LOAN_VARIANCES: [f64; 5] = [0.25, 4.0, 9.0, 4.0, 25.0];

/// The distribution of one exogenous variable.
#[derive(Debug, Clone, Copy)]
pub enum Noise {
    /// 0 or 1, each with probability 1/2.
    Bernoulli(Bernoulli),
    /// The two-component Gaussian mixture: the first component with probability `MIXTURE[0].0`.
    Mixture(Bernoulli, Normal<f64>, Normal<f64>),
    /// A centred or shifted Gaussian.
    Normal(Normal<f64>),
    /// A Gamma distribution (Loan's age).
    Gamma(Gamma<f64>),
}

impl Noise {
    /// Draw one value.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Noise::Bernoulli(b) => f64::from(u8::from(b.sample(rng))),
            Noise::Mixture(first, a, b) => {
                if first.sample(rng) {
                    a.sample(rng)
                } else {
                    b.sample(rng)
                }
            }
            Noise::Normal(n) => n.sample(rng),
            Noise::Gamma(g) => g.sample(rng),
        }
    }
}

// The parameters are constants checked by the tests, so construction cannot fail.
fn normal(mean: f64, variance: f64) -> Normal<f64> {
    Normal::new(mean, variance.sqrt()).expect("constant Gaussian parameters are valid")
}

fn bernoulli(p: f64) -> Bernoulli {
    Bernoulli::new(p).expect("constant probability is in [0, 1]")
}

/// The exogenous distribution of every node of `dataset`, in node order.
pub fn exogenous(dataset: Dataset) -> Vec<Noise> {
    let root = Noise::Bernoulli(bernoulli(ROOT_P));
    match dataset {
        Dataset::Loan => {
            let (shape, scale) = LOAN_AGE_GAMMA;
            let gamma = Gamma::new(shape, scale).expect("constant Gamma parameters are valid");
            let mut v = vec![root, Noise::Gamma(gamma)];
            v.extend(
                LOAN_VARIANCES
                    .iter()
                    .map(|&var| Noise::Normal(normal(0.0, var))),
            );
            v
        }
        _ => {
            let [(w, m0, v0), (_, m1, v1)] = MIXTURE;
            let mixture = Noise::Mixture(bernoulli(w), normal(m0, v0), normal(m1, v1));
            let u2_var = if dataset.is_noise_version_2() {
                U2_VARIANCE_V2
            } else {
                1.0
            };
            vec![
                root,
                mixture,
                Noise::Normal(normal(0.0, u2_var)),
                Noise::Normal(normal(0.0, 1.0)),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn moments(noise: &Noise, n: usize) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<f64> = (0..n).map(|_| noise.sample(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        (mean, var)
    }

    #[test]
    fn mixture_and_gamma_have_the_spec_moments() {
        const N: usize = 200_000;
        // Mixture: mean 0.5(-2) + 0.5(1.5) = -0.25; variance = 0.5(1.5 + 4) + 0.5(1 + 2.25) - 0.0625.
        let u1 = &exogenous(Dataset::TriangleLin)[1];
        let (m, v) = moments(u1, N);
        assert!((m + 0.25).abs() < 0.02, "mixture mean {m}");
        assert!(
            (v - (0.5 * 5.5 + 0.5 * 3.25 - 0.0625)).abs() < 0.05,
            "mixture variance {v}"
        );
        // Gamma(10, 3.5): mean 35, variance 10 * 3.5^2 = 122.5.
        let (m, v) = moments(&exogenous(Dataset::Loan)[1], N);
        assert!((m - 35.0).abs() < 0.1, "gamma mean {m}");
        assert!((v - 122.5).abs() < 2.0, "gamma variance {v}");
        // Loan savings noise: variance 25 (std 5).
        let (_, v) = moments(&exogenous(Dataset::Loan)[6], N);
        assert!((v - 25.0).abs() < 0.5, "savings noise variance {v}");
        // Version 2: u_2 variance 0.1.
        let (_, v) = moments(&exogenous(Dataset::ColliderNlin)[2], N);
        assert!((v - 0.1).abs() < 0.003, "version-2 u_2 variance {v}");
        let (m, _) = moments(&exogenous(Dataset::ChainNlin)[0], N);
        assert!((m - 0.5).abs() < 0.01, "bernoulli mean {m}");
    }
}
