//! The evaluation of SPEC section 8: every method on the same rejected test
//! individuals, scored the same way.
//!
//! A method hands back, per individual, the intervened features and the
//! counterfactual (standardized); [`score`] turns that into cost, coverage
//! (under the learned flow and the classifier), number of actions, mean
//! probability and causal validity: the recommended values of the intervened
//! features applied as hard interventions to the TRUE SCM of the individual,
//! whose counterfactual the classifier must accept.

use std::time::Instant;

use ndarray::{Array1, Array2, Axis};

use crate::classifier::ACCEPT_THRESHOLD;
use crate::oracle::{BINS_LOAN, BINS_SYNTHETIC, OracleProblem};
use crate::pipeline::{Simulated, rejected};
use crate::scm::Dataset;

/// What a method recommends for a batch of individuals.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    /// 0/1 per feature: intervened or not, `[n][D]`.
    pub mask: Array2<f64>,
    /// Counterfactuals, standardized, `[n][D]`.
    pub x_cf: Array2<f64>,
    /// Classifier probability of each counterfactual (as the method sees it).
    pub prob: Array1<f64>,
    /// Cost of each recommendation (SPEC section 6).
    pub cost: Array1<f64>,
    /// Wall-clock microseconds per individual spent by the method.
    pub us_per_individual: f64,
}

/// One method's figures on one seed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Mean cost x100.
    pub cost_x100: f64,
    /// Accepted by the classifier after recourse, %.
    pub coverage_pct: f64,
    /// Mean number of intervened features.
    pub mean_actions: f64,
    /// Mean classifier probability after recourse.
    pub mean_prob: f64,
    /// Microseconds per individual.
    pub us_per_individual: f64,
    /// Accepted after applying the interventions to the true SCM, %.
    pub validity_pct: f64,
    /// Individuals scored.
    pub n_test: usize,
    /// Per feature, the fraction of individuals intervened on it.
    pub feature_rates: Vec<f64>,
    /// `actions_histogram[k]`: individuals with exactly `k` intervened features.
    pub actions_histogram: Vec<usize>,
}

/// Scores `rec` for the rejected test individuals `x_raw` (original units).
pub fn score(sim: &Simulated, x_raw: &Array2<f64>, rec: &Recommendations) -> Scores {
    let t = &sim.trained;
    let n = x_raw.nrows();
    let d = x_raw.ncols();
    let nf = n.max(1) as f64;
    let x_cf_raw = t
        .scaler
        .inverse_transform(rec.x_cf.view())
        .expect("counterfactuals have the model's width");
    // Validity under the true SCM.
    let mut true_cf = Array2::zeros((n, d));
    let mut interventions = Vec::with_capacity(d);
    for i in 0..n {
        interventions.clear();
        for k in 0..d {
            if rec.mask[[i, k]] > 0.5 {
                interventions.push((k, x_cf_raw[[i, k]]));
            }
        }
        let row = x_raw.row(i);
        let x = row.as_slice().expect("contiguous rows");
        let mut out = true_cf.row_mut(i);
        // An individual the SCM cannot abduct counts as invalid: keep the factual (rejected) row.
        if sim
            .scm
            .counterfactual_into(x, &interventions, out.as_slice_mut().expect("contiguous"))
            .is_err()
        {
            out.assign(&row);
        }
    }
    let true_std = t.scaler.transform(true_cf.view()).expect("same width");
    let valid = t.classifier.prob(&true_std);
    let mut histogram = vec![0usize; d + 1];
    for row in rec.mask.rows() {
        histogram[row.iter().filter(|&&m| m > 0.5).count()] += 1;
    }
    Scores {
        cost_x100: 100.0 * rec.cost.sum() / nf,
        coverage_pct: 100.0 * rec.prob.iter().filter(|&&p| p >= ACCEPT_THRESHOLD).count() as f64
            / nf,
        mean_actions: rec.mask.sum() / nf,
        mean_prob: rec.prob.sum() / nf,
        us_per_individual: rec.us_per_individual,
        validity_pct: 100.0 * valid.iter().filter(|&&p| p >= ACCEPT_THRESHOLD).count() as f64 / nf,
        n_test: n,
        feature_rates: rec
            .mask
            .mean_axis(Axis(0))
            .map(|m| m.to_vec())
            .unwrap_or_default(),
        actions_histogram: histogram,
    }
}

/// The rejected individuals of the recourse test split, original units.
pub fn rejected_test(sim: &Simulated) -> Array2<f64> {
    let t = &sim.trained;
    let x_std = t.scaler.transform(sim.test.x.view()).expect("same width");
    sim.test.x.select(Axis(0), &rejected(&t.classifier, &x_std))
}

/// CARMA through the product path: the exported bundle served by `carma-core`,
/// one individual at a time (the time per individual is that of the core).
pub fn run_carma_core(sim: &Simulated, x_raw: &Array2<f64>) -> Recommendations {
    let t = &sim.trained;
    let bytes = t.to_bytes().expect("a trained model exports");
    let bundle = carma_core::bundle::Bundle::new(&bytes).expect("the core reads its own export");
    let (n, d) = x_raw.dim();
    let mut scratch = vec![0f32; bundle.scratch_len()];
    let xs: Vec<f32> = x_raw.iter().map(|&v| v as f32).collect();
    let mut out = vec![0f32; n * d];
    let mut results = Vec::with_capacity(n);
    let start = Instant::now();
    for (x, o) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        results.push(bundle.recommend(x, carma_core::FeatureSet::EMPTY, o, &mut scratch));
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    let mut mask = Array2::zeros((n, d));
    let mut prob = Array1::zeros(n);
    let mut cost = Array1::zeros(n);
    for (i, r) in results.iter().enumerate() {
        if let Ok(r) = r {
            for k in r.mask.iter() {
                mask[[i, k]] = 1.0;
            }
            prob[i] = f64::from(r.prob_after);
            cost[i] = f64::from(r.cost);
        }
    }
    let x_cf_raw = Array2::from_shape_fn((n, d), |(i, k)| f64::from(out[i * d + k]));
    let x_cf = t.scaler.transform(x_cf_raw.view()).expect("same width");
    Recommendations {
        mask,
        x_cf,
        prob,
        cost,
        us_per_individual: us,
    }
}

/// The oracle's bins for a dataset (SPEC section 7).
pub fn oracle_bins(dataset: Dataset) -> usize {
    if dataset == Dataset::Loan {
        BINS_LOAN
    } else {
        BINS_SYNTHETIC
    }
}

/// The brute-force oracle on the true SCM, parallel across individuals.
pub fn run_oracle(
    sim: &Simulated,
    x_raw: &Array2<f64>,
    bins: usize,
    threads: usize,
) -> Recommendations {
    let t = &sim.trained;
    let problem = t.carma.problem();
    let d = x_raw.ncols();
    let oracle = OracleProblem {
        actionable: (0..d).filter(|&k| problem.actionable[k]).collect(),
        min: sim.train_min.clone(),
        max: sim.train_max.clone(),
        binary: (0..d).map(|k| t.graph.is_binary(k)).collect(),
        mean: t.scaler.mean().to_vec(),
        std: t.scaler.std().to_vec(),
        cost_range: problem.cost_range.clone(),
        weights: problem.weights.clone(),
        bins,
    };
    let n = x_raw.nrows();
    let threads = threads.max(1);
    let chunk = n.div_ceil(threads).max(1);
    let start = Instant::now();
    let results: Vec<crate::oracle::OracleResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                let oracle = &oracle;
                s.spawn(move || {
                    let to = (from + chunk).min(n);
                    (from..to)
                        .map(|i| {
                            let row = x_raw.row(i);
                            let x = row.as_slice().expect("contiguous");
                            let mut u = vec![0.0; d];
                            let abducted = sim.scm.abduct_row(x, &mut u).is_ok();
                            let mut values = vec![0.0; d];
                            let mut cf = |iv: &[(usize, f64)], out: &mut [f64]| {
                                if !abducted {
                                    out.copy_from_slice(x);
                                    return;
                                }
                                let mut mask = 0u64;
                                for &(k, v) in iv {
                                    mask |= 1 << k;
                                    values[k] = v;
                                }
                                sim.scm.counterfactual_with_u(x, &u, mask, &values, out);
                            };
                            let mut prob = |rows: &Array2<f64>| {
                                t.classifier
                                    .prob(&t.scaler.transform(rows.view()).expect("same width"))
                            };
                            oracle.solve(x, &mut cf, &mut prob)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("oracle worker"))
            .collect()
    });
    let us = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    let mut mask = Array2::zeros((n, d));
    let mut x_cf_raw = Array2::zeros((n, d));
    let mut prob = Array1::zeros(n);
    let mut cost = Array1::zeros(n);
    for (i, r) in results.iter().enumerate() {
        for &(k, _) in &r.interventions {
            mask[[i, k]] = 1.0;
        }
        x_cf_raw.row_mut(i).assign(&Array1::from(r.x_cf.clone()));
        prob[i] = r.prob;
        cost[i] = r.cost;
    }
    Recommendations {
        mask,
        x_cf: t.scaler.transform(x_cf_raw.view()).expect("same width"),
        prob,
        cost,
        us_per_individual: us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{NoProgress, PipelineConfig, train_simulated};

    #[test]
    fn oracle_counterfactuals_are_valid_by_construction_and_scores_are_consistent() {
        let sim = train_simulated(
            Dataset::ChainLin,
            &PipelineConfig::tiny(Dataset::ChainLin),
            &mut NoProgress,
        )
        .unwrap();
        let x = rejected_test(&sim);
        let x = x.slice(ndarray::s![..40.min(x.nrows()), ..]).to_owned();
        let oracle = run_oracle(&sim, &x, 9, 2);
        let s = score(&sim, &x, &oracle);
        // The oracle works on the true SCM: whatever it finds is valid by construction.
        let found = oracle.prob.iter().filter(|&&p| p >= 0.5).count() as f64;
        assert!((s.validity_pct - 100.0 * found / x.nrows() as f64).abs() < 1e-9);
        assert_eq!(s.actions_histogram.iter().sum::<usize>(), x.nrows());
        let carma = run_carma_core(&sim, &x);
        let c = score(&sim, &x, &carma);
        assert_eq!(c.n_test, x.nrows());
        assert!(c.cost_x100.is_finite() && c.mean_actions <= 3.0);
    }
}
