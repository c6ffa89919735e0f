//! Trains one dataset and prints CARMA's and the oracle's scores on all
//! rejected test individuals: the quick loop used to study CARMA's settings.
//!
//! ```sh
//! cargo run --release -p carma-train --example carma_probe -- loan demo 450
//! LAMBDA_STEP=0.05 cargo run --release -p carma-train --example carma_probe -- loan demo 450
//! ```
//! Arguments: dataset (default loan), `demo` or `paper` settings, CARMA
//! epochs. Environment: `LAMBDA_STEP`, `WD`, `DAMPING`, `SEED` override the
//! CARMA multiplier step, weight decay, damping and the seed.

use carma_train::evaluate::{
    oracle_bins, rejected_test, run_carma_core, run_carma_core_with, run_oracle, score,
};
use carma_train::pipeline::{PipelineConfig, Progress, Stage, train_simulated};
use carma_train::scm::Dataset;
use std::time::Instant;

struct Log(Instant);

impl Progress for Log {
    fn done(&mut self, s: Stage, summary: &str) {
        eprintln!(
            "[{:>6.1}s] {}: {}",
            self.0.elapsed().as_secs_f64(),
            s.name(),
            summary
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ds: Dataset = args
        .get(1)
        .map(|s| s.parse().expect("a dataset name"))
        .unwrap_or(Dataset::Loan);
    let weighted = std::env::var_os("WEIGHTED").is_some();
    let mut cfg = match args.get(2).map(String::as_str) {
        Some("paper") => PipelineConfig::paper_setting(ds, weighted),
        _ => PipelineConfig::demo(ds),
    };
    if std::env::var_os("CLAMP_ZERO").is_some() {
        cfg.carma.clamp_gradient = carma_train::carma::ClampGradient::Zero;
    }
    if std::env::var_os("CLAMP_PAPER").is_some() {
        cfg.carma.clamp_range = carma_train::carma::ClampRange::Range;
    }
    if std::env::var_os("LOANCFG").is_some() {
        let seed = cfg.carma.seed;
        cfg.carma = carma_train::carma::CarmaConfig {
            seed,
            ..Default::default()
        };
    }
    if std::env::var_os("STEEP").is_some() {
        cfg.classifier.make_steep();
    }
    if let Some(e) = args.get(3) {
        cfg.carma.epochs = e.parse().expect("a number of epochs");
    }
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(v) = env("LAMBDA_STEP") {
        cfg.carma.lambda_step = v;
    }
    if let Some(v) = env("WD") {
        cfg.carma.weight_decay = v;
    }
    if let Some(v) = env("DAMPING") {
        cfg.carma.damping = v;
    }
    if let Some(v) = env("SEED") {
        cfg.seed = v as u64;
    }
    let t = Instant::now();
    let sim = train_simulated(ds, &cfg, &mut Log(t)).expect("training succeeds");
    let x = rejected_test(&sim);
    let o = score(&sim, &x, &run_oracle(&sim, &x, oracle_bins(ds), 2));
    let line = |name: &str, s: &carma_train::evaluate::Scores| {
        println!(
            "{name:<14} cost {:7.3} ({:5.2}x) cov {:6.2} valid {:6.2} act {:.2} p {:.3} us {:.1}",
            s.cost_x100,
            s.cost_x100 / o.cost_x100,
            s.coverage_pct,
            s.validity_pct,
            s.mean_actions,
            s.mean_prob,
            s.us_per_individual
        )
    };
    line("oracle", &o);
    line("carma", &score(&sim, &x, &run_carma_core(&sim, &x)));
    for (min_prob, slack) in [
        (0.55f32, 0.15f32),
        (0.6, 0.1),
        (0.6, 0.15),
        (0.65, 0.15),
        (0.7, 0.15),
    ] {
        let r = carma_core::Refine {
            min_prob,
            steps: 6,
            slack,
        };
        let s = score(&sim, &x, &run_carma_core_with(&sim, &x, Some(r)));
        line(&format!("ref {min_prob} s{slack}"), &s);
    }
    eprintln!("total {:.1}s", t.elapsed().as_secs_f64());
}
