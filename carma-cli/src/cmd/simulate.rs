//! `carma simulate`: sample one of the seven SCMs of docs/MATH.md section 2 (datasets) to a
//! CSV (features and the label `y`), and optionally write its causal graph file for `carma fit`.
//! Rows are drawn and written one at a time, so memory does not grow with `-n`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use carma_train::data::{CsvRowWriter, DEFAULT_LABEL, DataError};
use carma_train::io::{AtomicFile, WriteOptions, same_file};
use carma_train::scm::Dataset;

/// Arguments of `carma simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset: triangle-lin, triangle-nlin, collider-lin, collider-nlin, chain-lin, chain-nlin
    /// or loan.
    #[arg(long, short = 'd')]
    pub dataset: Dataset,
    /// Number of rows to draw (streamed to the output: memory does not grow with it).
    #[arg(short = 'n', long = "rows", value_parser = parse_rows)]
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
    /// Replace output files even if they are read-only.
    #[arg(long)]
    pub force: bool,
}

fn parse_rows(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("expected at least 1 row".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "expected a number of rows from 1 to {}, found '{s}'",
            u64::MAX
        )),
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
    match (csv_out, &args.out) {
        (Some(mut file), Some(path)) => {
            let cannot = || format!("cannot write {}", path.display());
            write_rows(
                args.dataset,
                n,
                args.seed,
                &mut file,
                &path.display().to_string(),
            )
            .with_context(cannot)?;
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
            write_rows(args.dataset, n, args.seed, &mut out, "<standard output>")
                .context(cannot)?;
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

/// Stream `n` rows of `dataset` (the rows `Scm::sample(n, seed)` draws, as `Table::write_csv`
/// writes them) to `out`, one at a time.
fn write_rows(
    dataset: Dataset,
    n: u64,
    seed: u64,
    out: &mut impl Write,
    label: &str,
) -> Result<(), DataError> {
    let mut header: Vec<&str> = dataset.feature_names().to_vec();
    header.push(DEFAULT_LABEL);
    let mut w = CsvRowWriter::new(out, &header, label)?;
    let scm = dataset.scm();
    let mut rows = scm.rows(seed);
    for _ in 0..n {
        let row = rows.next_row();
        w.write_row(row.x.iter().copied().chain([row.y]))?;
    }
    w.finish()
}
