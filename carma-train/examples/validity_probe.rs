//! Where CARMA's causal validity is lost: for one dataset, compares each
//! recommendation's counterfactual under the learned flow with the true SCM's
//! (same interventions), and prints the per-feature error and the invalid cases.
//!
//! ```sh
//! cargo run --release -p carma-train --example validity_probe -- triangle-nlin
//! ```

use carma_train::evaluate::{rejected_test, run_carma_core};
use carma_train::pipeline::{NoProgress, PipelineConfig, train_simulated};
use carma_train::scm::Dataset;
use ndarray::Array2;

fn main() {
    let ds: Dataset = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a dataset"))
        .unwrap_or(Dataset::TriangleNlin);
    let mut cfg = PipelineConfig::paper(ds);
    if std::env::var_os("STEEP").is_some() {
        cfg.classifier.make_steep();
    }
    let sim = train_simulated(ds, &cfg, &mut NoProgress).expect("trains");
    let t = &sim.trained;
    let x = rejected_test(&sim);
    let rec = run_carma_core(&sim, &x);
    let (n, d) = x.dim();
    let flow_cf = t.scaler.inverse_transform(rec.x_cf.view()).unwrap();
    let mut true_cf = Array2::zeros((n, d));
    let mut err = vec![0.0; d];
    for i in 0..n {
        let iv: Vec<(usize, f64)> = (0..d)
            .filter(|&k| rec.mask[[i, k]] > 0.5)
            .map(|k| (k, flow_cf[[i, k]]))
            .collect();
        let row = x.row(i).to_vec();
        let mut out = vec![0.0; d];
        sim.scm.counterfactual_into(&row, &iv, &mut out).unwrap();
        for k in 0..d {
            true_cf[[i, k]] = out[k];
            err[k] += ((out[k] - flow_cf[[i, k]]) / t.scaler.std()[k]).abs() / n as f64;
        }
    }
    let p_true = t
        .classifier
        .prob(&t.scaler.transform(true_cf.view()).unwrap());
    println!("mean |true - flow| / std per feature: {err:.4?}");
    let mut shown = 0;
    let mut invalid = 0;
    for i in 0..n {
        if p_true[i] < 0.5 {
            invalid += 1;
            if shown < 12 {
                shown += 1;
                println!(
                    "x {:.3?}\n  flow {:.3?} p {:.3}\n  true {:.3?} p {:.3}",
                    x.row(i).to_vec(),
                    flow_cf.row(i).to_vec(),
                    rec.prob[i],
                    true_cf.row(i).to_vec(),
                    p_true[i]
                );
            }
        }
    }
    println!("invalid {invalid} of {n}");
}
