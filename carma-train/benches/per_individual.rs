//! The two unamortized methods, per individual, on the first five rejected Loan test
//! individuals of a model trained once in setup (`common::loan_model`: the paper's sample
//! sizes and epochs, seed 0), each on one thread:
//!
//! - the oracle (docs/MATH.md section 7, oracle & baselines; `evaluate::run_oracle` with one thread and one row, as
//!   `carma evaluate` runs it): 15 bins on the four actionable features, so the same 65,535
//!   candidate intervention sets as the paper's, run cheapest first through the TRUE Loan SCM
//!   and the classifier until the first accepted one (`carma-train/src/oracle.rs`). The
//!   single-row call includes one scoped thread spawn (microseconds);
//! - the argmin optimizer baseline (`baselines::optimizer::recommend` with its default
//!   settings, one thread): L-BFGS with a growing penalty on the learned flow and the
//!   classifier, for each of the 15 non-empty subsets of the actionable features.
//!
//! Each benchmark is one individual (`oracle/0` .. `oracle/4`, `optimizer/0` ..
//! `optimizer/4`); setup prints what each method found for each, and how many candidates the
//! oracle ran through the SCM and the classifier before the first accepted one. A third group,
//! `oracle_fixed/0` .. `oracle_fixed/4`, is the oracle's part that does not depend on the
//! models: `OracleProblem::solve` with a classifier that accepts everything, so the grids,
//! the 65,535 costs, their sort and one batch of 16 candidates (copies of the factual). Setup takes about 10 s; the
//! benches about 2 minutes.
//!
//! ```text
//! cargo bench -p carma-train --bench per_individual
//! ```

mod common;

use std::hint::black_box;

use carma_train::baselines::OptimizerConfig;
use carma_train::baselines::optimizer;
use carma_train::evaluate::{
    oracle_bins, oracle_problem, rejected_test, run_oracle, solve_oracle_true_scm,
};
use carma_train::scm::Dataset;
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use ndarray::{Array1, Array2, s};

/// Rejected test individuals benchmarked.
const INDIVIDUALS: usize = 5;

fn loan_per_individual(c: &mut Criterion) {
    let sim = common::loan_model();
    let t = &sim.trained;
    let x_all = rejected_test(&sim);
    assert!(x_all.nrows() >= INDIVIDUALS, "enough rejected individuals");
    let rows: Vec<_> = (0..INDIVIDUALS)
        .map(|i| x_all.slice(s![i..i + 1, ..]).to_owned())
        .collect();
    let bins = oracle_bins(Dataset::Loan);
    let problem = t.carma.problem().clone();
    let forbid = vec![false; problem.actionable.len()];
    let opt_cfg = OptimizerConfig {
        threads: 1,
        ..OptimizerConfig::default()
    }
    .check()
    .expect("valid config");

    let oracle = oracle_problem(&sim, bins);
    for (i, row) in rows.iter().enumerate() {
        let o = run_oracle(&sim, row, bins, 1);
        let x = row.row(0).to_vec();
        let direct = solve_oracle_true_scm(&sim, &oracle, &x);
        assert_eq!(direct.cost, o.cost[0], "the same oracle as run_oracle");
        let x_std = t.scaler.transform(row.view()).expect("same width");
        let p = optimizer::recommend(&t.flow, &t.classifier, &problem, &x_std, &forbid, &opt_cfg)
            .expect("optimizer");
        eprintln!(
            "setup: individual {i}: p = {:.2e}; oracle: {} of {} candidates run, cost x100 {:.3}, \
             {} actions, p {:.3}; optimizer: cost x100 {:.3}, {} actions, p {:.3}",
            t.classifier.prob(&x_std)[0],
            direct.evaluated,
            oracle.n_candidates(&x),
            100.0 * o.cost[0],
            o.mask.sum(),
            o.prob[0],
            100.0 * p.cost[0],
            p.mask.sum(),
            p.prob[0],
        );
    }

    let mut group = c.benchmark_group("oracle");
    group.sample_size(10);
    for (i, row) in rows.iter().enumerate() {
        group.bench_with_input(BenchmarkId::from_parameter(i), row, |b, row| {
            b.iter(|| run_oracle(&sim, black_box(row), bins, 1))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("oracle_fixed");
    group.sample_size(10);
    for (i, row) in rows.iter().enumerate() {
        let x = row.row(0).to_vec();
        group.bench_with_input(BenchmarkId::from_parameter(i), &x, |b, x| {
            b.iter(|| {
                let mut cf = |_: &[(usize, f64)], out: &mut [f64]| out.copy_from_slice(x);
                let mut accept = |rows: &Array2<f64>| Array1::ones(rows.nrows());
                oracle.solve(black_box(x), &mut cf, &mut accept)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("optimizer");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (i, row) in rows.iter().enumerate() {
        let x_std = t.scaler.transform(row.view()).expect("same width");
        group.bench_with_input(BenchmarkId::from_parameter(i), &x_std, |b, x_std| {
            b.iter(|| {
                optimizer::recommend(
                    &t.flow,
                    &t.classifier,
                    &problem,
                    black_box(x_std),
                    &forbid,
                    &opt_cfg,
                )
                .expect("optimizer")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, loan_per_individual);
criterion_main!(benches);
