//! The Tree-structured Parzen Estimator (Bergstra et al., 2011; docs/MATH.md, section 5,
//! "Tuning"): after a few random points, the finished trials are split into the best
//! `gamma` fraction and the rest, each parameter gets one Parzen density per group (`l` for
//! the good, `g` for the others), and the next point is the candidate drawn from `l` that
//! maximizes `l(x) / g(x)`. Each parameter is modelled on its own (the "independent" TPE).
//! Everything is drawn from a generator seeded by the caller, so a suggestion is a function
//! of the seed and the history alone.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::space::Dim;

/// Random points before the model is used (the usual TPE default).
pub const DEFAULT_STARTUP: usize = 10;
/// Candidates drawn from `l` per suggestion (hyperopt's and Optuna's 24).
pub const DEFAULT_CANDIDATES: usize = 24;
/// Fraction of the history counted as good.
pub const DEFAULT_GAMMA: f64 = 0.25;
/// At most this many trials are counted as good (Optuna's cap).
pub const MAX_GOOD: usize = 25;
/// Weight of the prior component (a wide Gaussian over the whole range, or one count per
/// choice) in each density: it keeps every region reachable.
const PRIOR_WEIGHT: f64 = 1.0;

/// The sampler's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpe {
    /// Random points before the model is used.
    pub startup: usize,
    /// Candidates drawn per suggestion.
    pub candidates: usize,
    /// Fraction of the history counted as good, in (0, 1).
    pub gamma: f64,
}

impl Default for Tpe {
    fn default() -> Self {
        Self {
            startup: DEFAULT_STARTUP,
            candidates: DEFAULT_CANDIDATES,
            gamma: DEFAULT_GAMMA,
        }
    }
}

/// A point drawn uniformly: unit coordinates (rounded onto their levels) and choice indices.
pub fn random_point(dims: &[Dim], rng: &mut impl Rng) -> Vec<f64> {
    dims.iter()
        .map(|d| match *d {
            Dim::Numeric { levels } => snap(rng.random::<f64>(), levels),
            Dim::Categorical(n) => rng.random_range(0..n.max(1)) as f64,
        })
        .collect()
}

/// `u` rounded onto `levels` equally spaced points of `[0, 1]`.
fn snap(u: f64, levels: Option<usize>) -> f64 {
    match levels {
        Some(l) if l > 1 => (u * (l - 1) as f64).round() / (l - 1) as f64,
        Some(_) => 0.0,
        None => u.clamp(0.0, 1.0),
    }
}

impl Tpe {
    /// The next point to try, from the finished trials' points `ranked` (best first) and a
    /// seed: random while fewer than `startup` trials are known, else TPE's choice.
    pub fn suggest(&self, dims: &[Dim], ranked: &[Vec<f64>], seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        if ranked.len() < self.startup.max(2) {
            return random_point(dims, &mut rng);
        }
        let n_good = ((self.gamma * ranked.len() as f64).ceil() as usize).clamp(1, MAX_GOOD);
        let (good, bad) = ranked.split_at(n_good.min(ranked.len() - 1));
        dims.iter()
            .enumerate()
            .map(|(j, d)| {
                let l: Vec<f64> = good.iter().map(|p| p[j]).collect();
                let g: Vec<f64> = bad.iter().map(|p| p[j]).collect();
                match *d {
                    Dim::Numeric { levels } => {
                        let (l, g) = (Parzen::new(&l), Parzen::new(&g));
                        self.best_of(
                            &mut rng,
                            |r| snap(l.sample(r), levels),
                            |x| l.log_pdf(x) - g.log_pdf(x),
                        )
                    }
                    Dim::Categorical(n) => {
                        let (l, g) = (counts(&l, n), counts(&g, n));
                        self.best_of(
                            &mut rng,
                            |r| draw_weighted(&l, r) as f64,
                            |x| (l[x as usize] / g[x as usize]).ln(),
                        )
                    }
                }
            })
            .collect()
    }

    /// The candidate with the highest score among `candidates` draws (the first on ties).
    fn best_of(
        &self,
        rng: &mut ChaCha8Rng,
        mut draw: impl FnMut(&mut ChaCha8Rng) -> f64,
        score: impl Fn(f64) -> f64,
    ) -> f64 {
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..self.candidates.max(1) {
            let x = draw(rng);
            let s = score(x);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, x));
            }
        }
        best.map_or(0.5, |(_, x)| x)
    }
}

/// Normalized choice weights: one prior count per choice plus the observed counts.
fn counts(xs: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![PRIOR_WEIGHT; n.max(1)];
    for &x in xs {
        c[(x as usize).min(n.max(1) - 1)] += 1.0;
    }
    let total: f64 = c.iter().sum();
    c.iter().map(|w| w / total).collect()
}

fn draw_weighted(weights: &[f64], rng: &mut impl Rng) -> usize {
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// A mixture of Gaussians truncated to `[0, 1]`: one per observation with a bandwidth from
/// its neighbours' distance (hyperopt's rule), plus the wide prior.
#[derive(Debug, Clone)]
struct Parzen {
    mu: Vec<f64>,
    sigma: Vec<f64>,
    weight: Vec<f64>,
}

impl Parzen {
    fn new(xs: &[f64]) -> Self {
        let mut mu: Vec<f64> = xs.to_vec();
        mu.push(0.5);
        mu.sort_by(f64::total_cmp);
        let n = mu.len();
        let sigma_min = 1.0 / (n as f64 + 1.0).min(100.0);
        let sigma = (0..n)
            .map(|i| {
                let left = if i == 0 { mu[0] } else { mu[i] - mu[i - 1] };
                let right = if i + 1 == n {
                    1.0 - mu[i]
                } else {
                    mu[i + 1] - mu[i]
                };
                left.max(right).clamp(sigma_min, 1.0)
            })
            .collect::<Vec<_>>();
        // The prior: the component at 0.5 added above, made wide.
        let prior = mu.iter().position(|&m| m == 0.5).unwrap_or(0);
        let mut sigma = sigma;
        sigma[prior] = 1.0;
        let mut weight = vec![1.0; n];
        weight[prior] = PRIOR_WEIGHT;
        let total: f64 = weight.iter().sum();
        weight.iter_mut().for_each(|w| *w /= total);
        Self { mu, sigma, weight }
    }

    fn sample(&self, rng: &mut impl Rng) -> f64 {
        let k = draw_weighted(&self.weight, rng);
        let (m, s) = (self.mu[k], self.sigma[k]);
        // Rejection onto [0, 1]; the component's mass there is at least a third of it (its
        // mean lies in the range, its width is at most the range).
        for _ in 0..64 {
            let x = m + s * standard_normal(rng);
            if (0.0..=1.0).contains(&x) {
                return x;
            }
        }
        m.clamp(0.0, 1.0)
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let p: f64 = (0..self.mu.len())
            .map(|k| {
                let (m, s) = (self.mu[k], self.sigma[k]);
                let mass = phi((1.0 - m) / s) - phi(-m / s);
                let z = (x - m) / s;
                self.weight[k] * (-0.5 * z * z).exp()
                    / (s * (2.0 * std::f64::consts::PI).sqrt() * mass.max(1e-12))
            })
            .sum();
        p.max(1e-300).ln()
    }
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The standard normal distribution function.
fn phi(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// The error function (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7: plenty for
/// a density ratio).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap objective on the unit square: 0 at (0.3, 0.8), elongated along x.
    fn bowl(p: &[f64]) -> f64 {
        (p[0] - 0.3).powi(2) + 4.0 * (p[1] - 0.8).powi(2)
    }

    /// Runs `budget` trials on `f` with TPE (or random points when `tpe` is `None`) and
    /// returns the best value found.
    fn search(
        f: fn(&[f64]) -> f64,
        dims: &[Dim],
        tpe: Option<Tpe>,
        budget: usize,
        seed: u64,
    ) -> f64 {
        let mut history: Vec<(Vec<f64>, f64)> = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xABCD);
        for k in 0..budget {
            let p = match tpe {
                Some(t) => {
                    let mut ranked = history.clone();
                    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
                    let pts: Vec<Vec<f64>> = ranked.into_iter().map(|(p, _)| p).collect();
                    t.suggest(dims, &pts, seed.wrapping_mul(1000).wrapping_add(k as u64))
                }
                None => random_point(dims, &mut rng),
            };
            let v = f(&p);
            history.push((p, v));
        }
        history.iter().map(|h| h.1).fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn a_suggestion_is_a_function_of_the_seed_and_the_history() {
        let dims = [
            Dim::Numeric { levels: None },
            Dim::Numeric { levels: Some(5) },
            Dim::Categorical(3),
        ];
        let history: Vec<Vec<f64>> = (0..12)
            .map(|i| vec![i as f64 / 12.0, (i % 5) as f64 / 4.0, (i % 3) as f64])
            .collect();
        let t = Tpe::default();
        let a = t.suggest(&dims, &history, 7);
        assert_eq!(a, t.suggest(&dims, &history, 7));
        assert_ne!(a, t.suggest(&dims, &history, 8));
        // Integer levels and choices are respected.
        assert!((a[1] * 4.0 - (a[1] * 4.0).round()).abs() < 1e-12);
        assert!([0.0, 1.0, 2.0].contains(&a[2]));
        assert!((0.0..=1.0).contains(&a[0]));
    }

    #[test]
    fn tpe_beats_random_search_on_a_2d_bowl_with_the_same_budget() {
        let dims = [Dim::Numeric { levels: None }, Dim::Numeric { levels: None }];
        let seeds = 0..20u64;
        let budget = 40;
        let tpe: f64 = seeds
            .clone()
            .map(|s| search(bowl, &dims, Some(Tpe::default()), budget, s))
            .sum::<f64>()
            / 20.0;
        let random: f64 = seeds
            .map(|s| search(bowl, &dims, None, budget, s))
            .sum::<f64>()
            / 20.0;
        eprintln!("mean best over 20 seeds, 40 trials: TPE {tpe:.5}, random {random:.5}");
        assert!(tpe < 0.5 * random, "TPE {tpe} against random {random}");
    }

    #[test]
    fn tpe_beats_random_search_on_a_1d_objective_with_a_categorical_one() {
        // Best at u = 0.62 and choice 2 of 4.
        fn f(p: &[f64]) -> f64 {
            (p[0] - 0.62).abs() + if p[1] == 2.0 { 0.0 } else { 0.3 }
        }
        let dims = [Dim::Numeric { levels: None }, Dim::Categorical(4)];
        let mean = |tpe: Option<Tpe>| {
            (0..20u64)
                .map(|s| search(f, &dims, tpe, 30, s))
                .sum::<f64>()
                / 20.0
        };
        let (tpe, random) = (mean(Some(Tpe::default())), mean(None));
        eprintln!("mean best over 20 seeds, 30 trials: TPE {tpe:.5}, random {random:.5}");
        assert!(tpe < random, "TPE {tpe} against random {random}");
    }

    #[test]
    fn the_error_function_matches_known_values() {
        assert!(erf(0.0).abs() < 1e-7);
        assert!((erf(1.0) - 0.842_700_79).abs() < 2e-7);
        assert!((erf(-2.0) + 0.995_322_27).abs() < 2e-7);
    }
}
