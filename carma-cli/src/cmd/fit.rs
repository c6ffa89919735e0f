//! `carma fit`: train the classifier, the causal flow and CARMA on a user's CSV and causal graph,
//! and write one model file. The file is written once, at the end, atomically: a failure or
//! Ctrl-C during training leaves no model file (and an older one at the same path untouched).

use std::path::{Path, PathBuf};

use anyhow::Context;
use carma_core::Bundle;
use carma_train::data::{CsvOptions, DEFAULT_LABEL, Table};
use carma_train::graph::CausalGraph;
use carma_train::io::write_atomic;
use carma_train::pipeline::{FixedClassifier, PipelineConfig, train_on_table_with};

use crate::progress::Bars;

/// Arguments of `carma fit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training data: a header with the graph's feature names (any order) and a 0/1 label column.
    #[arg(long)]
    pub data: PathBuf,
    /// The causal graph file (TOML; see docs/loan-graph.toml).
    #[arg(long)]
    pub graph: PathBuf,
    /// Output model file (written atomically when training succeeds).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Name of the label column.
    #[arg(long, default_value = DEFAULT_LABEL)]
    pub label: String,
    /// Ignore CSV columns that are neither features nor the label (instead of refusing them).
    #[arg(long)]
    pub ignore_extra: bool,
    /// Training settings (TOML with the fields of the pipeline configuration: seed, [classifier],
    /// [flow], [carma], weights; missing fields keep the defaults, the paper's Loan settings).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Multiply every stage's epoch budget (e.g. 0.2 for a quick model).
    #[arg(long, value_parser = parse_scale)]
    pub epochs_scale: Option<f64>,
    /// Master seed (overrides the configuration's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Dataset name stored in the model (default: the data file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Bring a fixed classifier: the classifier (and its scaler) of this model file is used
    /// frozen instead of training one; the label column then only reports its accuracy.
    #[arg(long, value_name = "MODEL")]
    pub classifier: Option<PathBuf>,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, found '{s}'")),
    }
}

/// The pipeline configuration from the defaults, `--config`, `--epochs-scale` and `--seed`.
pub fn config(
    file: Option<&Path>,
    epochs_scale: Option<f64>,
    seed: Option<u64>,
) -> anyhow::Result<PipelineConfig> {
    let mut cfg = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read configuration {}", path.display()))?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: invalid configuration: {e}", path.display()))?
        }
        None => PipelineConfig::default(),
    };
    if let Some(s) = epochs_scale {
        let scale = |e: &mut usize| *e = ((*e as f64 * s).ceil() as usize).max(1);
        scale(&mut cfg.classifier.epochs);
        scale(&mut cfg.flow.epochs);
        scale(&mut cfg.carma.epochs);
    }
    if let Some(seed) = seed {
        cfg.seed = seed;
    }
    Ok(cfg)
}

/// Run `carma fit`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(args.config.as_deref(), args.epochs_scale, args.seed)?;
    let graph = CausalGraph::from_toml_path(&args.graph)?;
    let options = CsvOptions {
        label: Some(args.label.clone()),
        ignore_extra: args.ignore_extra,
    };
    let table = Table::read_csv_with(&args.data, &graph, &options)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.data
            .file_stem()
            .map_or_else(|| "data".to_owned(), |s| s.to_string_lossy().into_owned())
    });
    eprintln!(
        "training on {} rows of {} ({} features, label '{}'), seed {}",
        table.n_rows(),
        args.data.display(),
        graph.len(),
        args.label,
        cfg.seed
    );
    let fixed = match &args.classifier {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| {
                format!("cannot read the classifier's model {}", path.display())
            })?;
            Some(
                FixedClassifier::from_bundle(&bytes)
                    .with_context(|| format!("{}: no usable classifier", path.display()))?,
            )
        }
        None => None,
    };
    let trained = train_on_table_with(
        &table,
        &graph,
        &name,
        fixed.as_ref(),
        &cfg,
        &mut Bars::new(),
    )
    .context("training failed; no model file was written")?;
    let bytes = trained.to_bytes()?;
    // The core must accept what we write: check before anything reaches the disk.
    let bundle = Bundle::new(&bytes)
        .map_err(|e| anyhow::Error::new(e).context("the trained model does not validate"))?;
    write_atomic(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let m = &bundle.wire().meta.metrics;
    let pct = |v: Option<f32>| v.map_or("-".to_owned(), |v| format!("{:.1} %", 100.0 * v));
    println!(
        "wrote {} ({} bytes): classifier test accuracy {}, CARMA coverage {} on {} rejected test rows",
        args.out.display(),
        bytes.len(),
        pct(m.classifier_test_accuracy),
        pct(m.carma_coverage),
        m.n_test
    );
    println!(
        "next: carma recommend --model {} --input people.csv",
        args.out.display()
    );
    Ok(())
}
