//! `carma evaluate`: the paper's Table 1 protocol (SPEC section 8) over datasets and seeds, via
//! `carma_train::evaluate`: train on simulated data, run CARMA through the core (and optionally
//! the brute-force oracle) on the rejected test individuals, score, and summarize mean and
//! standard deviation over the seeds.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Context;
use carma_train::evaluate::{
    Scores, oracle_bins, rejected_test, run_carma_core, run_oracle, score,
};
use carma_train::io::write_atomic;
use carma_train::pipeline::{PipelineConfig, train_simulated};
use carma_train::scm::Dataset;
use ndarray::s;

use crate::progress::Bars;

/// Arguments of `carma evaluate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A dataset name, or `all` for the seven of SPEC section 2.
    #[arg(long, short = 'd', default_value = "all")]
    pub dataset: String,
    /// Number of seeds (the paper uses 10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// The first seed; seeds are first, first + 1, ...
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Directory for evaluation.json and evaluation.md (written atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Small samples and few epochs (a smoke run, not the paper's numbers).
    #[arg(long)]
    pub fast: bool,
    /// Multiply every stage's epoch budget.
    #[arg(long)]
    pub epochs_scale: Option<f64>,
    /// Score at most this many rejected test individuals per seed (default: all).
    #[arg(long)]
    pub max_individuals: Option<usize>,
    /// Also run the brute-force oracle on the first N rejected individuals per seed (20 when N
    /// is omitted: the oracle needs up to seconds per individual).
    #[arg(long, num_args = 0..=1, default_missing_value = "20", value_name = "N")]
    pub oracle: Option<usize>,
    /// Threads for the oracle (default: every core).
    #[arg(long)]
    pub jobs: Option<NonZeroUsize>,
}

/// One dataset and seed.
#[derive(Debug, serde::Serialize)]
struct Run {
    dataset: String,
    seed: u64,
    classifier_test_accuracy: Option<f32>,
    flow_test_loglik: Option<f32>,
    carma: Scores,
    oracle: Option<Scores>,
}

/// Mean and standard deviation over seeds of one method on one dataset.
#[derive(Debug, serde::Serialize)]
struct Summary {
    dataset: String,
    method: &'static str,
    seeds: usize,
    cost_x100: (f64, f64),
    coverage_pct: (f64, f64),
    mean_actions: (f64, f64),
    validity_pct: (f64, f64),
    us_per_individual: (f64, f64),
}

/// The datasets `--dataset` names.
pub fn datasets(name: &str) -> anyhow::Result<Vec<Dataset>> {
    if name.eq_ignore_ascii_case("all") {
        Ok(Dataset::ALL.to_vec())
    } else {
        Ok(vec![name.parse()?])
    }
}

/// The configuration for `dataset`: the paper's, or the tiny one with `--fast`.
pub fn config(
    dataset: Dataset,
    fast: bool,
    epochs_scale: Option<f64>,
    seed: u64,
) -> PipelineConfig {
    let mut cfg = if fast {
        PipelineConfig::tiny(dataset)
    } else {
        PipelineConfig::paper(dataset)
    };
    if let Some(s) = epochs_scale.filter(|s| s.is_finite() && *s > 0.0) {
        let scale = |e: &mut usize| *e = ((*e as f64 * s).ceil() as usize).max(1);
        scale(&mut cfg.classifier.epochs);
        scale(&mut cfg.flow.epochs);
        scale(&mut cfg.carma.epochs);
    }
    cfg.seed = seed;
    cfg
}

/// Run `carma evaluate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let datasets = datasets(&args.dataset)?;
    if let Some(s) = args.epochs_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
        anyhow::bail!("--epochs-scale must be a positive number, found {s}");
    }
    let threads = threads(args.jobs);
    let mut runs = Vec::new();
    for &dataset in &datasets {
        for seed in args.first_seed..args.first_seed + args.seeds {
            eprintln!("== {dataset}, seed {seed}");
            let cfg = config(dataset, args.fast, args.epochs_scale, seed);
            let sim = train_simulated(dataset, &cfg, &mut Bars::new())
                .with_context(|| format!("{dataset}, seed {seed}: training failed"))?;
            let mut x = rejected_test(&sim);
            if let Some(m) = args.max_individuals {
                x = x.slice(s![..m.min(x.nrows()), ..]).to_owned();
            }
            let carma = score(&sim, &x, &run_carma_core(&sim, &x));
            let oracle = args.oracle.map(|m| {
                let xo = x.slice(s![..m.min(x.nrows()), ..]).to_owned();
                score(
                    &sim,
                    &xo,
                    &run_oracle(&sim, &xo, oracle_bins(dataset), threads),
                )
            });
            let m = sim.trained.metrics;
            runs.push(Run {
                dataset: dataset.name().to_owned(),
                seed,
                classifier_test_accuracy: m.classifier_test_accuracy,
                flow_test_loglik: m.flow_test_loglik,
                carma,
                oracle,
            });
        }
    }
    let summaries = summarize(&datasets, &runs);
    let table = markdown(&summaries);
    print!("{table}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let json = serde_json::json!({
            "datasets": datasets.iter().map(|d| d.name()).collect::<Vec<_>>(),
            "seeds": (args.first_seed..args.first_seed + args.seeds).collect::<Vec<_>>(),
            "fast": args.fast,
            "epochs_scale": args.epochs_scale,
            "max_individuals": args.max_individuals,
            "oracle_individuals": args.oracle,
            "summary": summaries,
            "runs": runs,
        });
        let json_path = dir.join("evaluation.json");
        write_atomic(&json_path, serde_json::to_string_pretty(&json)?.as_bytes())
            .with_context(|| format!("cannot write {}", json_path.display()))?;
        let md_path = dir.join("evaluation.md");
        let md = format!(
            "# CARMA evaluation\n\nProduced by `carma evaluate --dataset {} --seeds {}{}`: mean ± \
             standard deviation over seeds, on the rejected test individuals (SPEC section 8).\n\n{table}",
            args.dataset,
            args.seeds,
            if args.fast { " --fast" } else { "" }
        );
        write_atomic(&md_path, md.as_bytes())
            .with_context(|| format!("cannot write {}", md_path.display()))?;
        eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    }
    Ok(())
}

/// The number of worker threads: `--jobs`, else every core.
pub fn threads(jobs: Option<NonZeroUsize>) -> usize {
    jobs.or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    // Sample standard deviation; 0 for a single seed.
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn summarize(datasets: &[Dataset], runs: &[Run]) -> Vec<Summary> {
    let mut out = Vec::new();
    for d in datasets {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.dataset == d.name()).collect();
        let methods: [(&'static str, Vec<&Scores>); 2] = [
            ("CARMA", mine.iter().map(|r| &r.carma).collect()),
            (
                "oracle",
                mine.iter().filter_map(|r| r.oracle.as_ref()).collect(),
            ),
        ];
        for (method, scores) in methods {
            if scores.is_empty() {
                continue;
            }
            let f =
                |g: fn(&Scores) -> f64| mean_std(&scores.iter().map(|s| g(s)).collect::<Vec<_>>());
            out.push(Summary {
                dataset: d.name().to_owned(),
                method,
                seeds: scores.len(),
                cost_x100: f(|s| s.cost_x100),
                coverage_pct: f(|s| s.coverage_pct),
                mean_actions: f(|s| s.mean_actions),
                validity_pct: f(|s| s.validity_pct),
                us_per_individual: f(|s| s.us_per_individual),
            });
        }
    }
    out
}

fn markdown(summaries: &[Summary]) -> String {
    let pm = |(m, s): (f64, f64), p: usize| format!("{m:.p$} ± {s:.p$}");
    let mut t = String::from(
        "| dataset | method | seeds | cost x100 | coverage % | actions | validity % | µs per individual |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for s in summaries {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.dataset,
            s.method,
            s.seeds,
            pm(s.cost_x100, 2),
            pm(s.coverage_pct, 2),
            pm(s.mean_actions, 2),
            pm(s.validity_pct, 2),
            pm(s.us_per_individual, 1),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_is_the_sample_standard_deviation() {
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn datasets_accepts_all_or_one_name() {
        assert_eq!(datasets("all").unwrap().len(), 7);
        assert_eq!(datasets("Loan").unwrap(), [Dataset::Loan]);
        assert!(datasets("mortgage").is_err());
    }
}
