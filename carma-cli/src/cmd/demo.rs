//! `carma demo`: a newcomer's first minute. Simulate Loan, train the classifier, the causal flow
//! and CARMA, export the bundle, then use the bundle through the core (the product path) to tell
//! a few rejected applicants what to change, and measure coverage, causal validity, cost and time
//! per individual on every rejected test applicant.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use carma_core::{Bundle, FeatureSet, Recommendation};
use carma_train::io::write_atomic;
use carma_train::pipeline::{PipelineConfig, Simulated, train_simulated};
use carma_train::scm::Dataset;

use crate::explain::Explanation;
use crate::progress::Bars;

/// Arguments of `carma demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Master seed for the simulation and training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many rejected applicants to show.
    #[arg(long, default_value_t = 5)]
    pub show: usize,
    /// Small samples and few epochs: a rough model in seconds (for a quick look or a test).
    #[arg(long)]
    pub fast: bool,
    /// Also save the trained model here (written atomically).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Show the networks' proposals as they are, without refinement.
    #[arg(long)]
    pub no_refine: bool,
    /// Run the brute-force oracle on this many of the rejected test applicants, for the cost
    /// comparison (0 to skip).
    #[arg(long, default_value_t = DEFAULT_ORACLE_SAMPLE)]
    pub oracle_sample: usize,
}

/// Rejected applicants the demo's oracle comparison covers by default (about 1 ms each).
pub const DEFAULT_ORACLE_SAMPLE: usize = 300;

/// Figures measured with the core on the rejected test applicants (docs/MATH.md, section 8).
#[derive(Debug, Default)]
struct Figures {
    rejected: usize,
    covered: usize,
    valid: usize,
    cost: f64,
    cost_unrefined: f64,
    actions: usize,
    seconds: f64,
    /// The first rejected applicants' rows (original units), for the oracle.
    sample: Vec<Vec<f64>>,
    /// CARMA's cost on each applicant of `sample`.
    sample_cost: Vec<f64>,
}

/// Run `carma demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset = Dataset::Loan;
    let mut cfg = if args.fast {
        PipelineConfig::tiny(dataset)
    } else {
        PipelineConfig::demo(dataset)
    };
    cfg.seed = args.seed;
    eprintln!(
        "carma demo: simulating {dataset} and training the classifier, the causal flow and CARMA \
         (seed {}{})",
        args.seed,
        if args.fast { ", fast settings" } else { "" }
    );
    let sim = train_simulated(dataset, &cfg, &mut Bars::new()).context("training failed")?;
    let bytes = sim.trained.to_bytes()?;
    let bundle = Bundle::new(&bytes)
        .map_err(|e| anyhow::Error::new(e).context("the trained model does not validate"))?;
    if let Some(path) = &args.save {
        write_atomic(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "saved the model to {} ({} bytes)",
            path.display(),
            bytes.len()
        );
    }

    let refine =
        crate::cmd::recommend::refinement(args.no_refine, carma_core::recommend::DEFAULT_MIN_PROB);
    let (figures, shown) = recommend_test(&bundle, &sim, args.show, refine, args.oracle_sample)?;
    println!();
    if shown.is_empty() {
        println!("No rejected applicants in the test split.");
    } else {
        println!(
            "{} of the rejected applicants (features in original units):",
            shown.len()
        );
        println!(
            "(Loan is semi-synthetic: its simulated features are centred near zero, so negative \
             amounts and ages are expected, not errors.)"
        );
        for e in &shown {
            print!("{}", e.text(&bundle));
        }
    }

    let n = figures.rejected.max(1) as f64;
    println!();
    println!(
        "On all {} rejected test applicants (computed with the exported model, {} bytes):",
        figures.rejected,
        bytes.len()
    );
    println!(
        "  coverage        {:.2} % accepted after the recommendation (by the model's classifier)",
        100.0 * figures.covered as f64 / n
    );
    println!(
        "  causal validity {:.2} % accepted when the recommendation is applied to the true causal model",
        100.0 * figures.valid as f64 / n
    );
    println!(
        "  cost x100       {:.2} (docs/MATH.md, section 1), {:.2} features changed on average{}",
        100.0 * figures.cost / n,
        figures.actions as f64 / n,
        if refine.is_some() {
            format!(
                "; {:.2} before refinement (the networks' own proposals)",
                100.0 * figures.cost_unrefined / n
            )
        } else {
            " (networks' proposals, not refined)".to_owned()
        }
    );
    if !figures.sample.is_empty() {
        let start = Instant::now();
        let oracle = oracle_costs(&sim, &figures.sample);
        let k = figures.sample.len() as f64;
        let (ours, theirs) = (
            figures.sample_cost.iter().sum::<f64>() / k,
            oracle.iter().sum::<f64>() / k,
        );
        println!(
            "  vs the oracle   cost x100 {:.2} against the brute-force oracle's {:.2} on the first \
             {} of them ({:.2}x; the oracle searched the true causal model, {:.1} ms each)",
            100.0 * ours,
            100.0 * theirs,
            figures.sample.len(),
            if theirs > 0.0 {
                ours / theirs
            } else {
                f64::NAN
            },
            1e3 * start.elapsed().as_secs_f64() / k,
        );
    }
    println!(
        "  time            {:.1} microseconds per individual, one core, scratch {} bytes",
        1e6 * figures.seconds / n,
        bundle.scratch_bytes()
    );
    if let Some(acc) = bundle.wire().meta.metrics.classifier_test_accuracy {
        println!("  classifier      {:.1} % test accuracy", 100.0 * acc);
    }
    println!();
    println!(
        "Next: carma simulate --dataset loan -n 20000 -o loan.csv --graph loan.toml, then \
         carma fit --data loan.csv --graph loan.toml -o loan.carma"
    );
    Ok(())
}

/// Recommend for every test applicant with the core; keep the first `show` rejected ones.
fn recommend_test(
    bundle: &Bundle<'_>,
    sim: &Simulated,
    show: usize,
    refine: Option<carma_core::Refine>,
    oracle_sample: usize,
) -> anyhow::Result<(Figures, Vec<Explanation>)> {
    let options = carma_core::Options::new(FeatureSet::EMPTY, refine);
    let d = bundle.n_features();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let mut x = vec![0.0f32; d];
    let mut x_cf = vec![0.0f32; d];
    let mut f = Figures::default();
    let mut shown = Vec::new();
    for (r, row) in sim.test.x.rows().into_iter().enumerate() {
        for (a, &b) in x.iter_mut().zip(row) {
            *a = b as f32;
        }
        let start = Instant::now();
        let rec = bundle
            .recommend_with(&x, &options, &mut x_cf, &mut scratch)
            .with_context(|| format!("test applicant {}", r + 1))?;
        f.seconds += start.elapsed().as_secs_f64();
        if rec.already_accepted {
            continue;
        }
        f.rejected += 1;
        f.covered += usize::from(rec.accepted);
        f.cost += f64::from(rec.cost);
        f.cost_unrefined += f64::from(rec.cost_unrefined);
        f.actions += rec.mask.len();
        if f.sample.len() < oracle_sample {
            f.sample.push(row.to_vec());
            f.sample_cost.push(f64::from(rec.cost));
        }
        f.valid += usize::from(valid(bundle, sim, &x, &x_cf, &rec, &mut scratch));
        if shown.len() < show {
            shown.push(Explanation::new(bundle, r + 1, &x, &x_cf, rec));
        }
    }
    Ok((f, shown))
}

/// The oracle's cost for each applicant of `rows` (original units), on the true causal model.
fn oracle_costs(sim: &Simulated, rows: &[Vec<f64>]) -> Vec<f64> {
    use carma_train::evaluate::{oracle_bins, oracle_problem, solve_oracle_true_scm};
    let problem = oracle_problem(sim, oracle_bins(Dataset::Loan));
    rows.iter()
        .map(|x| solve_oracle_true_scm(sim, &problem, x).cost)
        .collect()
}

/// Causal validity (docs/MATH.md, section 8): the recommended values of the intervened features, applied
/// as hard interventions to the true SCM of this individual, give a profile the classifier
/// accepts.
fn valid(
    bundle: &Bundle<'_>,
    sim: &Simulated,
    x: &[f32],
    x_cf: &[f32],
    rec: &Recommendation,
    scratch: &mut [f32],
) -> bool {
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let interventions: Vec<(usize, f64)> =
        rec.mask.iter().map(|k| (k, f64::from(x_cf[k]))).collect();
    let Ok(true_cf) = sim.scm.counterfactual(&x64, &interventions) else {
        return false;
    };
    let true_cf: Vec<f32> = true_cf.iter().map(|&v| v as f32).collect();
    let mut std = vec![0.0f32; true_cf.len()];
    bundle.standardize(&true_cf, &mut std).is_ok()
        && bundle
            .classify(&std, scratch)
            .is_ok_and(|p| p >= carma_core::recommend::ACCEPT_THRESHOLD)
}
