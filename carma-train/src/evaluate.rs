//! The evaluation of docs/MATH.md section 8, metrics: every method on the same rejected test
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
use crate::pipeline::{Simulated, rejected, rejected_rows};
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
    /// Cost of each recommendation (docs/MATH.md section 1, problem & cost).
    pub cost: Array1<f64>,
    /// Wall-clock microseconds per individual spent by the method.
    pub us_per_individual: f64,
}

/// One method's figures on one seed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    rejected_rows(&sim.trained, &sim.test.x).expect("same width")
}

/// CARMA through the product path: the exported bundle served by `carma-core`,
/// one individual at a time (the time per individual is that of the core).
pub fn run_carma_core(sim: &Simulated, x_raw: &Array2<f64>) -> Recommendations {
    run_carma_core_with(sim, x_raw, None)
}

/// [`run_carma_core`] with the core's refinement of each proposal (`None`: the networks'
/// proposals as they are).
pub fn run_carma_core_with(
    sim: &Simulated,
    x_raw: &Array2<f64>,
    refine: Option<carma_core::Refine>,
) -> Recommendations {
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
        let options = carma_core::Options::new(carma_core::FeatureSet::EMPTY, refine);
        results.push(bundle.recommend_with(x, &options, o, &mut scratch));
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

/// The oracle's bins for a dataset (docs/MATH.md section 7, oracle & baselines).
pub fn oracle_bins(dataset: Dataset) -> usize {
    if dataset == Dataset::Loan {
        BINS_LOAN
    } else {
        BINS_SYNTHETIC
    }
}

/// The oracle for one individual `x` (original units) on the true SCM: counterfactuals
/// from the individual's abducted noise, the trained classifier on them (an individual whose
/// noise cannot be abducted gets its own row back for every candidate).
pub fn solve_oracle_true_scm(
    sim: &Simulated,
    oracle: &OracleProblem,
    x: &[f64],
) -> crate::oracle::OracleResult {
    let t = &sim.trained;
    let d = x.len();
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
}

/// The oracle's search problem for a trained model: its actionable features, the training
/// range, binary features, scaler, cost ranges and weights, with `bins` values per feature.
pub fn oracle_problem(sim: &Simulated, bins: usize) -> OracleProblem {
    let t = &sim.trained;
    let problem = t.carma.problem();
    let d = problem.actionable.len();
    OracleProblem {
        actionable: (0..d).filter(|&k| problem.actionable[k]).collect(),
        min: sim.train_min.clone(),
        max: sim.train_max.clone(),
        binary: (0..d).map(|k| t.graph.is_binary(k)).collect(),
        mean: t.scaler.mean().to_vec(),
        std: t.scaler.std().to_vec(),
        cost_range: problem.cost_range.clone(),
        weights: problem.weights.clone(),
        bins,
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
    let d = x_raw.ncols();
    let oracle = oracle_problem(sim, bins);
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
                            solve_oracle_true_scm(sim, oracle, row.as_slice().expect("contiguous"))
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

/// The methods compared, by the names the results use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Method {
    /// Brute-force grid on the true SCM (docs/MATH.md section 7, oracle & baselines).
    #[serde(rename = "oracle")]
    Oracle,
    /// Per-individual penalty-method optimizer on the learned flow (argmin), with CARMA's
    /// training hinge margin.
    #[serde(rename = "optimizer")]
    Optimizer,
    /// The optimizer asked for the probability CARMA's refinement keeps
    /// ([`carma_core::recommend::DEFAULT_MIN_PROB`]): the same margin, a fair comparison.
    #[serde(rename = "optimizer-margin")]
    OptimizerMargin,
    /// DiCE-VAE, amortized and non-causal.
    #[serde(rename = "dice-vae")]
    DiceVae,
    /// CARMA's networks as they are, served by carma-core.
    #[serde(rename = "carma")]
    Carma,
    /// CARMA served by carma-core with the default refinement (what `carma recommend` does).
    #[serde(rename = "carma-refined")]
    CarmaRefined,
}

impl Method {
    /// All methods, in table order.
    pub const ALL: [Method; 6] = [
        Method::Oracle,
        Method::Optimizer,
        Method::OptimizerMargin,
        Method::DiceVae,
        Method::Carma,
        Method::CarmaRefined,
    ];

    /// The name in the results.
    pub fn name(self) -> &'static str {
        match self {
            Method::Oracle => "oracle",
            Method::Optimizer => "optimizer",
            Method::OptimizerMargin => "optimizer-margin",
            Method::DiceVae => "dice-vae",
            Method::Carma => "carma",
            Method::CarmaRefined => "carma-refined",
        }
    }
}

/// A dataset with its preference weights, as the results name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Name in the results (`loan-weighted` for Loan with weights).
    pub name: String,
    /// The SCM.
    pub dataset: Dataset,
    /// Preference weights, `None` for the graph's (all 1).
    pub weights: Option<Vec<f64>>,
}

impl Setting {
    /// `all` (the seven datasets and weighted Loan), a dataset name, or `loan-weighted`.
    pub fn parse(name: &str) -> Result<Vec<Setting>, crate::scm::ParseDatasetError> {
        let plain = |dataset: Dataset| Setting {
            name: dataset.name().to_owned(),
            dataset,
            weights: None,
        };
        let weighted = || Setting {
            name: "loan-weighted".to_owned(),
            dataset: Dataset::Loan,
            weights: Some(crate::pipeline::LOAN_WEIGHTS.to_vec()),
        };
        match name.to_ascii_lowercase().as_str() {
            "all" => Ok(Dataset::ALL
                .iter()
                .map(|&d| plain(d))
                .chain(std::iter::once(weighted()))
                .collect()),
            "loan-weighted" => Ok(vec![weighted()]),
            other => Ok(vec![plain(other.parse()?)]),
        }
    }
}

/// How an evaluation runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Seeds, one trained model each.
    pub seeds: Vec<u64>,
    /// Methods to run.
    pub methods: Vec<Method>,
    /// Score at most this many rejected test individuals (the same ones for every method).
    pub max_individuals: Option<usize>,
    /// Threads for the oracle and the optimizer.
    pub threads: usize,
    /// Multiplies every training stage's epoch budget (1 = the paper's).
    pub epochs_scale: f64,
    /// Start from [`crate::pipeline::PipelineConfig::tiny`] instead of the
    /// paper's settings (a smoke run, not the paper's numbers).
    pub tiny: bool,
    /// Train the classifier with the steep recipe
    /// ([`crate::classifier::ClassifierConfig::make_steep`]) instead of the reference's.
    pub steep: bool,
    /// Run the optimizers on at most this many of the scored individuals (the first ones; the
    /// test split is an i.i.d. sample, so they are a random subset).
    pub optimizer_individuals: Option<usize>,
    /// Train with the paper's settings exactly ([`crate::pipeline::PipelineConfig::paper_setting`])
    /// instead of the project's ([`crate::pipeline::PipelineConfig::project_setting`]).
    pub table5: bool,
}

/// Mean and standard deviation (population, as the paper's `np.std`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stat {
    /// Mean over seeds.
    pub mean: f64,
    /// Standard deviation over seeds.
    pub std: f64,
}

impl Stat {
    /// Mean and standard deviation of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let v: Vec<f64> = values.into_iter().collect();
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Stat {
            mean,
            std: var.sqrt(),
        }
    }
}

/// One method on one setting, summarized over seeds (the shape of `docs/results.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MethodSummary {
    /// Cost x100.
    pub cost_x100: Stat,
    /// Coverage %.
    pub coverage_pct: Stat,
    /// Mean number of intervened features.
    pub mean_actions: Stat,
    /// Mean probability after recourse.
    pub mean_prob: Stat,
    /// Microseconds per individual.
    pub us_per_individual: Stat,
    /// Causal validity %.
    pub validity_pct: Stat,
    /// Individuals per seed (the last seed's count).
    pub n_test: usize,
    /// Seeds summarized.
    pub n_seeds: usize,
    /// Per feature, the mean fraction of individuals intervened on it.
    pub feature_rates: Vec<f64>,
    /// Individuals with exactly k intervened features, summed over seeds.
    pub actions_histogram: Vec<usize>,
}

impl MethodSummary {
    /// Summarizes one method's scores over seeds.
    pub fn of(scores: &[Scores]) -> MethodSummary {
        let stat = |f: fn(&Scores) -> f64| Stat::of(scores.iter().map(f));
        let d = scores.first().map_or(0, |s| s.feature_rates.len());
        MethodSummary {
            cost_x100: stat(|s| s.cost_x100),
            coverage_pct: stat(|s| s.coverage_pct),
            mean_actions: stat(|s| s.mean_actions),
            mean_prob: stat(|s| s.mean_prob),
            us_per_individual: stat(|s| s.us_per_individual),
            validity_pct: stat(|s| s.validity_pct),
            n_test: scores.last().map_or(0, |s| s.n_test),
            n_seeds: scores.len(),
            feature_rates: (0..d)
                .map(|k| Stat::of(scores.iter().map(|s| s.feature_rates[k])).mean)
                .collect(),
            actions_histogram: (0..=d)
                .map(|k| scores.iter().map(|s| s.actions_histogram[k]).sum())
                .collect(),
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Training failed.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// A baseline failed.
    #[error(transparent)]
    Baseline(#[from] crate::baselines::BaselineError),
}

/// Runs every method of `opts` for one setting and seed, on the same rejected
/// test individuals. `progress` sees the training stages.
pub fn evaluate_seed(
    setting: &Setting,
    seed: u64,
    opts: &EvalOptions,
    progress: &mut dyn crate::pipeline::Progress,
) -> Result<Vec<(Method, Scores)>, EvalError> {
    evaluate_seed_with(setting, seed, opts, progress, &mut |_, _| {})
}

/// What [`evaluate_seed_with`] reports about each method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MethodEvent<'a> {
    /// The method starts on this many rejected test individuals.
    Start {
        /// Individuals to recommend for.
        individuals: usize,
    },
    /// The method finished and was scored.
    Done(&'a Scores),
}

/// [`evaluate_seed`], with `on_method` told when each method starts and ends
/// (the methods after training can take minutes: the oracle, the optimizer).
pub fn evaluate_seed_with(
    setting: &Setting,
    seed: u64,
    opts: &EvalOptions,
    progress: &mut dyn crate::pipeline::Progress,
    on_method: &mut dyn FnMut(Method, MethodEvent<'_>),
) -> Result<Vec<(Method, Scores)>, EvalError> {
    let mut cfg = if opts.tiny {
        crate::pipeline::PipelineConfig::tiny(setting.dataset)
    } else if opts.table5 {
        crate::pipeline::PipelineConfig::paper_setting(setting.dataset, setting.weights.is_some())
    } else {
        crate::pipeline::PipelineConfig::project_setting(setting.dataset, setting.weights.is_some())
    };
    cfg.seed = seed;
    cfg.weights = setting.weights.clone();
    if opts.steep {
        cfg.classifier.make_steep();
    }
    let scale = |e: usize| ((e as f64 * opts.epochs_scale).round() as usize).max(1);
    cfg.classifier.epochs = scale(cfg.classifier.epochs);
    cfg.flow.epochs = scale(cfg.flow.epochs);
    cfg.carma.epochs = scale(cfg.carma.epochs);
    let sim = crate::pipeline::train_simulated(setting.dataset, &cfg, progress)?;
    let mut x = rejected_test(&sim);
    if let Some(m) = opts.max_individuals {
        x = x.slice(ndarray::s![..m.min(x.nrows()), ..]).to_owned();
    }
    let t = &sim.trained;
    let x_std = t.scaler.transform(x.view()).expect("same width");
    let d = x.ncols();
    let forbid = vec![false; d];
    let problem = t.carma.problem().clone();
    let mut out = Vec::new();
    for &method in &opts.methods {
        on_method(
            method,
            MethodEvent::Start {
                individuals: x.nrows(),
            },
        );
        let n_opt = opts
            .optimizer_individuals
            .unwrap_or(x.nrows())
            .min(x.nrows());
        let (x_scored, rec) = match method {
            Method::Carma => (x.view(), run_carma_core(&sim, &x)),
            Method::CarmaRefined => (
                x.view(),
                run_carma_core_with(&sim, &x, Some(carma_core::Refine::DEFAULT)),
            ),
            Method::Oracle => (
                x.view(),
                run_oracle(&sim, &x, oracle_bins(setting.dataset), opts.threads),
            ),
            Method::Optimizer | Method::OptimizerMargin => {
                let margin = if method == Method::Optimizer {
                    crate::baselines::optimizer::DEFAULT_MARGIN
                } else {
                    2.0 * f64::from(carma_core::recommend::DEFAULT_MIN_PROB) - 1.0
                };
                let config = crate::baselines::OptimizerConfig {
                    threads: opts.threads,
                    margin,
                    ..crate::baselines::OptimizerConfig::default()
                }
                .check()?;
                let xs = x_std.slice(ndarray::s![..n_opt, ..]).to_owned();
                let start = Instant::now();
                let o = crate::baselines::optimizer::recommend(
                    &t.flow,
                    &t.classifier,
                    &problem,
                    &xs,
                    &forbid,
                    &config,
                )?;
                (
                    x.slice(ndarray::s![..n_opt, ..]),
                    from_baseline(o, start, n_opt),
                )
            }
            Method::DiceVae => {
                let config = crate::baselines::DiceVaeConfig {
                    seed: seed.wrapping_add(0xD1CE),
                    ..crate::baselines::DiceVaeConfig::default()
                }
                .check()?;
                // Trained on the same rejected training individuals as CARMA.
                let train_std = t.scaler.transform(sim.train.x.view()).expect("same width");
                let x_train = train_std.select(Axis(0), &rejected(&t.classifier, &train_std));
                let vae = crate::baselines::DiceVae::fit(
                    &t.classifier,
                    &x_train,
                    problem.clone(),
                    &config,
                    &mut |_| {},
                )?;
                let start = Instant::now();
                let o = vae.recommend(&t.classifier, &x_std, &forbid)?;
                (x.view(), from_baseline(o, start, x.nrows()))
            }
        };
        let scores = score(&sim, &x_scored.to_owned(), &rec);
        on_method(method, MethodEvent::Done(&scores));
        out.push((method, scores));
    }
    Ok(out)
}

fn from_baseline(o: crate::baselines::BaselineOutput, start: Instant, n: usize) -> Recommendations {
    Recommendations {
        us_per_individual: start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64,
        mask: o.mask,
        x_cf: o.x_cf,
        prob: o.prob,
        cost: o.cost,
    }
}

/// Results of a whole evaluation: setting name -> method name -> summary.
pub type Results =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, MethodSummary>>;

/// The results as a markdown table (one row per setting and method).
pub fn results_markdown(results: &Results) -> String {
    let mut s = String::from(
        "| dataset | method | cost x100 | coverage % | actions | mean p | validity % | µs / individual | n |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (setting, methods) in results {
        for m in Method::ALL {
            if let Some(r) = methods.get(m.name()) {
                let f = |st: Stat, p: usize| format!("{:.p$} ± {:.p$}", st.mean, st.std);
                s.push_str(&format!(
                    "| {setting} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    m.name(),
                    f(r.cost_x100, 2),
                    f(r.coverage_pct, 2),
                    f(r.mean_actions, 2),
                    f(r.mean_prob, 3),
                    f(r.validity_pct, 2),
                    f(r.us_per_individual, 1),
                    r.n_test
                ));
            }
        }
    }
    s
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

    #[test]
    fn method_events_bracket_each_method_in_order() {
        let setting = &Setting::parse("chain-lin").unwrap()[0];
        let opts = EvalOptions {
            seeds: vec![3],
            methods: vec![Method::Oracle, Method::Carma],
            max_individuals: Some(5),
            threads: 1,
            epochs_scale: 1.0,
            tiny: true,
            steep: false,
            optimizer_individuals: None,
            table5: false,
        };
        let mut events = Vec::new();
        let run = evaluate_seed_with(setting, 3, &opts, &mut NoProgress, &mut |m, e| {
            events.push(match e {
                MethodEvent::Start { individuals } => (m, Some(individuals), None),
                MethodEvent::Done(s) => (m, None, Some(s.clone())),
            })
        })
        .unwrap();
        assert_eq!(events.len(), 4);
        for (i, (method, scores)) in run.iter().enumerate() {
            assert_eq!(events[2 * i].0, *method);
            assert_eq!(events[2 * i].1, Some(scores.n_test));
            assert_eq!(events[2 * i + 1].0, *method);
            assert_eq!(events[2 * i + 1].2.as_ref(), Some(scores));
        }
    }

    #[test]
    fn every_method_is_scored_on_the_same_individuals_and_summarized() {
        let settings = Setting::parse("all").unwrap();
        assert_eq!(settings.len(), 8);
        assert_eq!(settings[7].name, "loan-weighted");
        let setting = &Setting::parse("collider-lin").unwrap()[0];
        let opts = EvalOptions {
            seeds: vec![1, 2],
            methods: Method::ALL.to_vec(),
            max_individuals: Some(12),
            threads: 2,
            epochs_scale: 1.0,
            tiny: true,
            steep: false,
            optimizer_individuals: None,
            table5: false,
        };
        let runs: Vec<Vec<(Method, Scores)>> = opts
            .seeds
            .iter()
            .map(|&s| evaluate_seed(setting, s, &opts, &mut NoProgress).unwrap())
            .collect();
        for run in &runs {
            assert_eq!(run.len(), Method::ALL.len());
            let n = run[0].1.n_test;
            assert!(run.iter().all(|(_, s)| s.n_test == n));
        }
        let oracle: Vec<Scores> = runs.iter().map(|r| r[0].1.clone()).collect();
        let summary = MethodSummary::of(&oracle);
        let mean = (oracle[0].cost_x100 + oracle[1].cost_x100) / 2.0;
        assert!((summary.cost_x100.mean - mean).abs() < 1e-12);
        let mut results = Results::new();
        results
            .entry("collider-lin".into())
            .or_default()
            .insert("oracle".into(), summary);
        let md = results_markdown(&results);
        assert!(md.contains("| collider-lin | oracle |"));
        let json = serde_json::to_value(&results).unwrap();
        assert!(json["collider-lin"]["oracle"]["cost_x100"]["mean"].is_number());
    }
}
