//! `carma simulate`: sample one of the seven SCMs of docs/MATH.md section 2 (datasets) to a CSV (features and the
//! label `y`), and optionally write its causal graph file for `carma fit`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use carma_train::data::Table;
use carma_train::io::{AtomicFile, WriteOptions, same_file};
use carma_train::scm::Dataset;

/// Arguments of `carma simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset: triangle-lin, triangle-nlin, collider-lin, collider-nlin, chain-lin, chain-nlin
    /// or loan.
    #[arg(long, short = 'd')]
    pub dataset: Dataset,
    /// Number of rows to draw (1 to 10,000,000; the rows are held in memory, about 120 MB per
    /// million).
    #[arg(short = 'n', long = "rows", value_parser = parse_rows)]
    pub rows: usize,
    /// Random seed (the same seed gives the same rows).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV (written atomically); standard output when absent.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Also write the dataset's causal graph file (TOML), for `carma fit --graph`.
    #[arg(long)]
    pub graph: Option<PathBuf>,
    /// Replace output files even if they are read-only.
    #[arg(long)]
    pub force: bool,
}

/// The most rows `simulate` draws: the sample is held in memory before it is written (about
/// 120 MB per million rows), so 10 million take about 1.2 GB; `-n 1000000000` used to abort on
/// a 56 GB allocation, and `-n 18446744073709551615` to panic.
pub const MAX_ROWS: usize = 10_000_000;

fn parse_rows(s: &str) -> Result<usize, String> {
    match s.trim().parse::<u128>() {
        Ok(n) if n >= 1 && n <= MAX_ROWS as u128 => Ok(n as usize),
        Ok(0) => Err("expected at least 1 row".to_owned()),
        Ok(_) => Err(format!(
            "at most {MAX_ROWS} rows (the sample is held in memory, about 120 MB per million \
             rows); for more, run simulate several times with different --seed values"
        )),
        Err(_) => Err(format!("expected a number of rows, found '{s}'")),
    }
}

/// Run `carma simulate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let n = args.rows;
    let options = WriteOptions {
        replace_read_only: args.force,
    };
    if let (Some(out), Some(graph)) = (&args.out, &args.graph)
        && (out == graph || same_file(out, graph))
    {
        anyhow::bail!(
            "-o {} and --graph {} name the same file",
            out.display(),
            graph.display()
        );
    }
    // Both destinations are opened before sampling, so a bad path fails at once.
    let csv_out = match &args.out {
        Some(path) => Some(
            AtomicFile::create_with(path, options)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => None,
    };
    let graph_out = match &args.graph {
        Some(path) => Some(
            AtomicFile::create_with(path, options)
                .with_context(|| format!("cannot write graph file {}", path.display()))?,
        ),
        None => None,
    };
    let sample = args.dataset.scm().sample(n, args.seed);
    let table = Table::from_sample(args.dataset, sample);
    match (csv_out, &args.out) {
        (Some(mut file), Some(path)) => {
            let cannot = || format!("cannot write {}", path.display());
            table.write_csv_to(&mut file).with_context(cannot)?;
            file.commit().with_context(cannot)?;
            note!(
                "wrote {n} rows of {} (seed {}) to {}",
                args.dataset,
                args.seed,
                path.display()
            );
        }
        _ => {
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            let cannot = "cannot write to standard output";
            table.write_csv_to(&mut out).context(cannot)?;
            out.flush().context(cannot)?;
        }
    }
    if let (Some(mut file), Some(path)) = (graph_out, &args.graph) {
        let toml = args.dataset.graph().to_toml_string();
        file.write_all(toml.as_bytes())
            .and_then(|()| file.commit())
            .with_context(|| format!("cannot write graph file {}", path.display()))?;
        note!(
            "wrote the causal graph of {} to {}",
            args.dataset,
            path.display()
        );
    }
    Ok(())
}
