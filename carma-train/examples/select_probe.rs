//! Which epoch should CARMA keep? Compares model-selection rules on the recourse validation
//! split, never the test split: the rejected validation individuals are cut in two halves,
//! every epoch is scored on both, a rule chooses an epoch on half A, and the chosen epoch's
//! refined recommendations are scored on half B against the oracle on half B.
//!
//! ```sh
//! cargo run --release -p carma-train --example select_probe -- chain-nlin ref 0,1,2
//! ```
//! Arguments: dataset (or `loan-weighted`), `ref` or `steep`, seeds.
//!
//! Rules: `last` (the last epoch), `networks` (the trainer's: the cheapest epoch whose
//! networks alone cover 99.5 %), `refined` (the same rule on the refined recommendations).

use carma_train::carma::{Carma, ValidationScore};
use carma_train::evaluate::{
    Scores, oracle_bins, run_carma_core, run_carma_core_with, run_oracle, score,
};
use carma_train::pipeline::{
    NoProgress, PipelineConfig, Simulated, rejected, rejected_rows, train_simulated,
};
use carma_train::scm::Dataset;
use ndarray::{Array2, Axis};
use std::time::Instant;

/// Per epoch: networks alone on A, refined on A, refined on B.
struct Epoch {
    networks_a: Scores,
    refined_a: Scores,
    refined_b: Scores,
}

/// The trainer's rule: the cheapest epoch reaching 99.5 % coverage, else the best covered.
fn choose(scores: &[(f64, f64)]) -> usize {
    let mut best = 0;
    for (k, &(cov, cost)) in scores.iter().enumerate() {
        let (bc, bk) = scores[best];
        let reached = cov >= 99.5;
        let better = if reached != (bc >= 99.5) {
            reached
        } else if reached {
            cost < bk
        } else {
            cov > bc
        };
        if better {
            best = k;
        }
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (ds, weighted) = match args.get(1).map(String::as_str) {
        Some("loan-weighted") => (Dataset::Loan, true),
        Some(s) => (s.parse().expect("a dataset name"), false),
        None => (Dataset::Loan, false),
    };
    let steep = args.get(2).map(String::as_str) == Some("steep");
    let seeds: Vec<u64> = args
        .get(3)
        .map(|s| s.split(',').map(|v| v.parse().expect("a seed")).collect())
        .unwrap_or_else(|| vec![0]);
    let t0 = Instant::now();
    let mut ratios: Vec<[f64; 3]> = Vec::new();
    for &seed in &seeds {
        let mut cfg = PipelineConfig::project_setting(ds, weighted);
        if steep {
            cfg.classifier.make_steep();
        }
        cfg.seed = seed;
        let mut one = cfg.clone();
        one.carma.epochs = 1;
        let base = train_simulated(ds, &one, &mut NoProgress).expect("training succeeds");
        let t = &base.trained;
        let val = rejected_rows(t, &base.val.x).expect("same width");
        let half = |r: usize| -> Array2<f64> {
            let idx: Vec<usize> = (0..val.nrows()).filter(|i| i % 2 == r).collect();
            val.select(Axis(0), &idx)
        };
        let (xa, xb) = (half(0), half(1));
        let oracle_b = score(&base, &xb, &run_oracle(&base, &xb, oracle_bins(ds), 2));
        let train_std = t.scaler.transform(base.train.x.view()).expect("same width");
        let x_rej = train_std.select(Axis(0), &rejected(&t.classifier, &train_std));
        let carma_cfg = carma_train::carma::CarmaConfig {
            seed: seed.wrapping_mul(0x9E37_79B9).wrapping_add(13),
            ..cfg.carma.clone()
        }
        .check()
        .expect("valid");
        let mut epochs: Vec<Epoch> = Vec::new();
        let refine = Some(carma_core::Refine::DEFAULT);
        let mut scorer = |carma: &Carma| {
            let mut sim: Simulated = base.clone();
            sim.trained.carma = carma.clone();
            let networks_a = score(&sim, &xa, &run_carma_core(&sim, &xa));
            let refined_a = score(&sim, &xa, &run_carma_core_with(&sim, &xa, refine));
            let refined_b = score(&sim, &xb, &run_carma_core_with(&sim, &xb, refine));
            let s = ValidationScore {
                coverage: networks_a.coverage_pct / 100.0,
                cost: networks_a.cost_x100 / 100.0,
            };
            epochs.push(Epoch {
                networks_a,
                refined_a,
                refined_b,
            });
            Some(s)
        };
        Carma::fit_scored(
            &t.flow,
            &t.classifier,
            &x_rej,
            t.carma.problem().clone(),
            &carma_cfg,
            &mut scorer,
            &mut |_| {},
        )
        .expect("CARMA trains");
        let by = |f: &dyn Fn(&Epoch) -> &Scores| {
            choose(
                &epochs
                    .iter()
                    .map(|e| (f(e).coverage_pct, f(e).cost_x100))
                    .collect::<Vec<_>>(),
            )
        };
        let picks = [
            ("last", epochs.len() - 1),
            ("networks", by(&|e| &e.networks_a)),
            ("refined", by(&|e| &e.refined_a)),
        ];
        let mut row = [0.0; 3];
        for (k, (name, e)) in picks.iter().enumerate() {
            let b = &epochs[*e].refined_b;
            row[k] = b.cost_x100 / oracle_b.cost_x100;
            println!(
                "seed {seed} {name:<9} epoch {:>3}: B refined {:6.3} ({:5.2}x) cov {:6.2} valid {:6.2}  [{:.0}s]",
                e + 1,
                b.cost_x100,
                row[k],
                b.coverage_pct,
                b.validity_pct,
                t0.elapsed().as_secs_f64()
            );
        }
        ratios.push(row);
    }
    let n = ratios.len() as f64;
    for (k, name) in ["last", "networks", "refined"].iter().enumerate() {
        let v: Vec<f64> = ratios.iter().map(|r| r[k]).collect();
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        println!(
            "mean {name:<9} {mean:5.3}x (spread {:3.0} %)",
            100.0 * sd / mean
        );
    }
}
