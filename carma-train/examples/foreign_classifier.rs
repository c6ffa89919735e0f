//! CARMA against a steep classifier of a kind the pipeline does not train: a logistic
//! regression (fitted with the reference recipe) whose weights are multiplied by `K`, so its
//! probabilities jump from 0 to 1 across a thin band. Per dataset and seed it prints the
//! oracle's cost and CARMA's, raw and refined, with coverage and causal validity, all on
//! every rejected test individual.
//!
//! ```sh
//! cargo run --release -p carma-train --example foreign_classifier -- loan,collider-nlin 3 50
//! ```
//! Arguments: datasets (comma-separated), seeds, K.

use carma_train::evaluate::{
    Scores, oracle_bins, rejected_test, run_carma_core, run_carma_core_with, run_oracle, score,
};
use carma_train::pipeline::{NoProgress, PipelineConfig, train_simulated_with};
use carma_train::scm::Dataset;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let datasets: Vec<Dataset> = args
        .get(1)
        .map_or("loan", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("a dataset name"))
        .collect();
    let seeds: u64 = args.get(2).map_or(3, |s| s.parse().expect("seeds"));
    let k: f64 = args.get(3).map_or(50.0, |s| s.parse().expect("K"));
    println!(
        "| dataset | seed | method | cost x100 | / oracle | coverage % | validity % | mean p |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &ds in &datasets {
        for seed in 0..seeds {
            let mut cfg = PipelineConfig::paper(ds);
            cfg.seed = seed;
            cfg.classifier.hidden.clear();
            let sim = train_simulated_with(ds, &cfg, &|c| c.sharpened(k), &mut NoProgress)
                .expect("training succeeds");
            let x = rejected_test(&sim);
            let oracle = score(&sim, &x, &run_oracle(&sim, &x, oracle_bins(ds), 2));
            let raw = score(&sim, &x, &run_carma_core(&sim, &x));
            let refined = score(
                &sim,
                &x,
                &run_carma_core_with(&sim, &x, Some(carma_core::Refine::DEFAULT)),
            );
            let row = |name: &str, s: &Scores| {
                println!(
                    "| {} | {seed} | {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |",
                    ds.name(),
                    s.cost_x100,
                    s.cost_x100 / oracle.cost_x100,
                    s.coverage_pct,
                    s.validity_pct,
                    s.mean_prob
                )
            };
            row("oracle", &oracle);
            row("carma", &raw);
            row("carma-refined", &refined);
        }
    }
}
