//! `carma oracle`: the brute-force oracle of docs/MATH.md section 7 (the exact grid search on the true
//! SCM) next to CARMA on the same rejected individuals, one line each, then both scores.

use std::num::NonZeroUsize;

use anyhow::Context;
use carma_train::evaluate::{
    Recommendations, oracle_bins, rejected_test, run_carma_core_with, run_oracle, score,
};
use carma_train::pipeline::{PipelineConfig, train_simulated};
use carma_train::scm::Dataset;
use ndarray::s;

use crate::cmd::evaluate::threads;
use crate::explain::join;
use crate::progress::Bars;

/// Arguments of `carma oracle`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset: triangle-lin, ..., loan.
    #[arg(long, short = 'd')]
    pub dataset: Dataset,
    /// Master seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rejected test individuals to solve.
    #[arg(short = 'n', long = "individuals", default_value_t = 10, value_parser = crate::cmd::parse_positive)]
    pub individuals: usize,
    /// Grid bins per actionable feature (default: 25, or 15 for Loan, as in docs/MATH.md,
    /// section 7, oracle & baselines).
    #[arg(long, value_parser = crate::cmd::parse_positive)]
    pub bins: Option<usize>,
    /// Train with the demo settings instead of the paper's (faster, a little less accurate);
    /// `--fast` trains the tiny model of a smoke test.
    #[arg(long)]
    pub demo_training: bool,
    /// Small samples and few epochs.
    #[arg(long)]
    pub fast: bool,
    /// Threads for the oracle (default: every core; at most 256).
    #[arg(long, value_parser = crate::cmd::parse_jobs)]
    pub jobs: Option<NonZeroUsize>,
    /// Show CARMA's networks' proposals as they are, without the refinement `carma recommend`
    /// applies by default.
    #[arg(long)]
    pub no_refine: bool,
}

/// Run `carma oracle`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset = args.dataset;
    let mut cfg = if args.fast {
        PipelineConfig::tiny(dataset)
    } else if args.demo_training {
        PipelineConfig::demo(dataset)
    } else {
        PipelineConfig::paper(dataset)
    };
    cfg.seed = args.seed;
    let sim = train_simulated(dataset, &cfg, &mut Bars::new()).context("training failed")?;
    let x = rejected_test(&sim);
    let x = x
        .slice(s![..args.individuals.min(x.nrows()), ..])
        .to_owned();
    let bins = args.bins.unwrap_or_else(|| oracle_bins(dataset));
    note!(
        "oracle: {} rejected test individuals of {dataset}, {bins} bins per actionable feature",
        x.nrows()
    );
    let oracle = run_oracle(&sim, &x, bins, threads(args.jobs));
    let refine =
        crate::cmd::recommend::refinement(args.no_refine, carma_core::recommend::DEFAULT_MIN_PROB);
    let carma = run_carma_core_with(&sim, &x, refine);
    let names = sim.trained.graph.names();
    let describe = |r: &Recommendations, i: usize| {
        let changed: Vec<String> = (0..names.len())
            .filter(|&k| r.mask[[i, k]] > 0.5)
            .map(|k| names[k].clone())
            .collect();
        let what = if changed.is_empty() {
            "nothing".to_owned()
        } else {
            join(&changed)
        };
        format!(
            "{what} (cost x100 {:.2}, p = {:.2})",
            100.0 * r.cost[i],
            r.prob[i]
        )
    };
    for i in 0..x.nrows() {
        outln!(
            "Individual {}: oracle changes {}; CARMA changes {}",
            i + 1,
            describe(&oracle, i),
            describe(&carma, i)
        )?;
    }
    outln!()?;
    outln!("| method | cost x100 | coverage % | actions | validity % | µs per individual |")?;
    outln!("|---|---|---|---|---|---|")?;
    for (name, r) in [("oracle", &oracle), ("CARMA", &carma)] {
        let sc = score(&sim, &x, r);
        outln!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            sc.cost_x100,
            sc.coverage_pct,
            sc.mean_actions,
            sc.validity_pct,
            sc.us_per_individual
        )?;
    }
    Ok(())
}
