//! Does asking the action network about the proposal's neighbouring feature sets find cheaper
//! recommendations? Scores three inference strategies on the rejected individuals of the
//! recourse *validation* split against the oracle on the same individuals:
//!
//! - `refined`: what `carma recommend` does (the mask network's set, refined);
//! - `pick`: the proposal and each proposal with one of its features left out (the action
//!   network asked again, unrefined), the cheapest whose probability reaches the refinement's
//!   `min_prob`, then refined;
//! - `best`: every one of those candidates refined, the cheapest accepted (the costly bound).
//!
//! ```sh
//! cargo run --release -p carma-train --example neighbour_probe -- chain-nlin ref 0,1,2
//! ```

use carma_core::bundle::Bundle;
use carma_core::{FeatureSet, Options, Recommendation, Refine};
use carma_train::evaluate::{Recommendations, oracle_bins, oracle_problem, run_oracle, score};
use carma_train::pipeline::{
    NoProgress, PipelineConfig, Simulated, rejected_rows, train_simulated,
};
use carma_train::scm::Dataset;
use ndarray::{Array1, Array2};
use std::time::Instant;

#[derive(Clone, Copy)]
enum Strategy {
    Refined,
    Pick,
    Best,
}

fn run(sim: &Simulated, x_raw: &Array2<f64>, s: Strategy) -> Recommendations {
    let t = &sim.trained;
    let bytes = t.to_bytes().expect("exports");
    let b = Bundle::new(&bytes).expect("loads");
    let (n, d) = x_raw.dim();
    let mut scratch = vec![0f32; b.scratch_len()];
    let mut out = vec![0f32; d];
    let mut mask = Array2::zeros((n, d));
    let mut x_cf = Array2::zeros((n, d));
    let mut prob = Array1::zeros(n);
    let mut cost = Array1::zeros(n);
    let start = Instant::now();
    let refine = Refine::DEFAULT;
    for i in 0..n {
        let x: Vec<f32> = x_raw.row(i).iter().map(|&v| v as f32).collect();
        let mut call = |forbid: FeatureSet, refine: Option<Refine>, out: &mut [f32]| {
            b.recommend_with(&x, &Options::new(forbid, refine), out, &mut scratch)
                .expect("valid input")
        };
        let mut best: (Recommendation, Vec<f32>) = {
            let r = call(FeatureSet::EMPTY, Some(refine), &mut out);
            (r, out.clone())
        };
        if !matches!(s, Strategy::Refined) && !best.0.already_accepted {
            let first = call(FeatureSet::EMPTY, None, &mut out);
            let mut cands = vec![(FeatureSet::EMPTY, first)];
            for k in first.mask.iter() {
                let mut f = FeatureSet::EMPTY;
                f.insert(k);
                let r = call(f, None, &mut out);
                if !r.mask.is_empty() {
                    cands.push((f, r));
                }
            }
            match s {
                Strategy::Pick => {
                    let pick = cands
                        .iter()
                        .filter(|(_, r)| r.prob_after >= refine.min_prob)
                        .min_by(|a, b| a.1.cost.total_cmp(&b.1.cost))
                        .map_or(FeatureSet::EMPTY, |c| c.0);
                    if pick != FeatureSet::EMPTY {
                        let r = call(pick, Some(refine), &mut out);
                        if r.accepted {
                            best = (r, out.clone());
                        }
                    }
                }
                Strategy::Best => {
                    for (f, _) in cands.iter().skip(1) {
                        let r = call(*f, Some(refine), &mut out);
                        if r.accepted && (!best.0.accepted || r.cost < best.0.cost) {
                            best = (r, out.clone());
                        }
                    }
                }
                Strategy::Refined => {}
            }
        }
        let (r, o) = best;
        for k in r.mask.iter() {
            mask[[i, k]] = 1.0;
        }
        prob[i] = f64::from(r.prob_after);
        cost[i] = f64::from(r.cost);
        for k in 0..d {
            x_cf[[i, k]] = f64::from(o[k]);
        }
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    Recommendations {
        mask,
        x_cf: t.scaler.transform(x_cf.view()).expect("same width"),
        prob,
        cost,
        us_per_individual: us,
    }
}

/// The oracle's grid search with the *learned* flow as the causal model (hard interventions
/// on a one-layer flow: intervened features take their values, the others are solved level by
/// level from their factual latents): how cheap recourse is within CARMA's own model.
fn run_flow_oracle(sim: &Simulated, x_raw: &Array2<f64>, bins: usize) -> Recommendations {
    let t = &sim.trained;
    assert_eq!(t.flow.n_layers(), 1, "one-layer flows only");
    let net = &t.flow.layer_nets()[0];
    let oracle = oracle_problem(sim, bins);
    let (n, d) = x_raw.dim();
    let (mean, std) = (t.scaler.mean().to_vec(), t.scaler.std().to_vec());
    let mut mask = Array2::zeros((n, d));
    let mut x_cf_raw = Array2::zeros((n, d));
    let mut prob = Array1::zeros(n);
    let mut cost = Array1::zeros(n);
    for i in 0..n {
        let x = x_raw.row(i).to_owned().insert_axis(ndarray::Axis(0));
        let xs = t.scaler.transform(x.view()).expect("same width");
        let z = t.flow.abduct(&xs);
        let mut cf = |iv: &[(usize, f64)], out: &mut [f64]| {
            let mut y = Array2::<f64>::zeros((1, d));
            for level in t.flow.levels() {
                let o = net.predict(&y);
                for &k in level {
                    y[[0, k]] = match iv.iter().find(|(f, _)| *f == k) {
                        Some(&(_, v)) => (v - mean[k]) / std[k],
                        None => {
                            let raw = o[[0, 2 * k + 1]];
                            let ls = raw / (1.0 + (raw / carma_train::flow::LN_MIN_SCALE).abs());
                            (z[[0, k]] - o[[0, 2 * k]]) / ls.exp()
                        }
                    };
                }
            }
            for k in 0..d {
                out[k] = y[[0, k]] * std[k] + mean[k];
            }
        };
        let mut p = |rows: &Array2<f64>| {
            t.classifier
                .prob(&t.scaler.transform(rows.view()).expect("same width"))
        };
        let r = oracle.solve(
            x_raw.row(i).as_slice().expect("contiguous"),
            &mut cf,
            &mut p,
        );
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
        us_per_individual: 0.0,
    }
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
    let names = ["refined", "pick", "best"];
    let mut acc: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for &seed in &seeds {
        let mut cfg = PipelineConfig::project_setting(ds, weighted);
        if steep {
            cfg.classifier.make_steep();
        }
        cfg.seed = seed;
        let sim = train_simulated(ds, &cfg, &mut NoProgress).expect("trains");
        let x = rejected_rows(&sim.trained, &sim.val.x).expect("same width");
        let o = score(&sim, &x, &run_oracle(&sim, &x, oracle_bins(ds), 2));
        if std::env::var_os("FLOW_ORACLE").is_some() {
            let fo = score(&sim, &x, &run_flow_oracle(&sim, &x, oracle_bins(ds)));
            println!(
                "seed {seed} flow-oracle cost {:6.3} ({:5.2}x) cov {:6.2} valid {:6.2} act {:.2}",
                fo.cost_x100,
                fo.cost_x100 / o.cost_x100,
                fo.coverage_pct,
                fo.validity_pct,
                fo.mean_actions
            );
        }
        for (k, s) in [Strategy::Refined, Strategy::Pick, Strategy::Best]
            .into_iter()
            .enumerate()
        {
            let sc = score(&sim, &x, &run(&sim, &x, s));
            acc[k].push(sc.cost_x100 / o.cost_x100);
            println!(
                "seed {seed} {:<8} cost {:6.3} ({:5.2}x) cov {:6.2} valid {:6.2} act {:.2} us {:.1}",
                names[k],
                sc.cost_x100,
                sc.cost_x100 / o.cost_x100,
                sc.coverage_pct,
                sc.validity_pct,
                sc.mean_actions,
                sc.us_per_individual
            );
        }
    }
    for (k, v) in acc.iter().enumerate() {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        println!(
            "mean {:<8} {mean:5.3}x (spread {:3.0} %)",
            names[k],
            100.0 * sd / mean
        );
    }
}
