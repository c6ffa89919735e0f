//! `carma simulate`: sample one of the seven SCMs of SPEC section 2 to a CSV (features and the
//! label `y`), and optionally write its causal graph file for `carma fit`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use carma_train::data::Table;
use carma_train::io::write_atomic;
use carma_train::scm::Dataset;

/// Arguments of `carma simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset: triangle-lin, triangle-nlin, collider-lin, collider-nlin, chain-lin, chain-nlin
    /// or loan.
    #[arg(long, short = 'd')]
    pub dataset: Dataset,
    /// Number of rows to draw.
    #[arg(short = 'n', long = "rows", value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: u64,
    /// Random seed (the same seed gives the same rows).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV (written atomically); standard output when absent.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Also write the dataset's causal graph file (TOML), for `carma fit --graph`.
    #[arg(long)]
    pub graph: Option<PathBuf>,
}

/// Run `carma simulate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let n = usize::try_from(args.rows).context("too many rows for this machine")?;
    let sample = args.dataset.scm().sample(n, args.seed);
    let table = Table::from_sample(args.dataset, sample);
    match &args.out {
        Some(path) => {
            table.write_csv(path)?;
            eprintln!(
                "wrote {n} rows of {} (seed {}) to {}",
                args.dataset,
                args.seed,
                path.display()
            );
        }
        None => {
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            table.write_csv_to(&mut out)?;
            out.flush()?;
        }
    }
    if let Some(path) = &args.graph {
        let toml = args.dataset.graph().to_toml_string();
        write_atomic(path, toml.as_bytes())
            .with_context(|| format!("cannot write graph file {}", path.display()))?;
        eprintln!(
            "wrote the causal graph of {} to {}",
            args.dataset,
            path.display()
        );
    }
    Ok(())
}
