//! `carma fit`: train the classifier, the causal flow and CARMA on a user's CSV and causal graph,
//! and write one model file. Everything that can be checked is checked before training (the
//! settings, the graph, the label, the output path, the data). The file is written once, at
//! the end, atomically: a failure, Ctrl-C, SIGTERM or SIGHUP during training leaves no model
//! file (and an older one at the same path untouched).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use carma_core::Bundle;
use carma_train::classifier_json::ClassifierJson;
use carma_train::data::{CsvOptions, DEFAULT_LABEL, DataError, Table};
use carma_train::graph::CausalGraph;
use carma_train::io::{AtomicFile, WriteOptions, refuse_overwriting_inputs};
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
    /// Output model file (written atomically when training succeeds; must not be an input).
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
    #[arg(long, value_name = "MODEL", conflicts_with = "classifier_json")]
    pub classifier: Option<PathBuf>,
    /// Bring your own classifier as JSON (a network in your data's units ending in one logit,
    /// e.g. written by the Python package from scikit-learn or PyTorch; layout in
    /// carma-cli/README.md): used exactly and frozen; the label column only reports its accuracy.
    #[arg(long, value_name = "FILE")]
    pub classifier_json: Option<PathBuf>,
    /// Replace the output file even if it is read-only.
    #[arg(long)]
    pub force: bool,
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
            let text = carma_train::io::read_text(path)
                .with_context(|| format!("cannot read configuration {}", path.display()))?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: invalid configuration: {e}", path.display()))?
        }
        None => PipelineConfig::default(),
    };
    if let Some(s) = epochs_scale {
        carma_train::preflight::scale_epochs(&mut cfg, s);
    }
    if let Some(seed) = seed {
        cfg.seed = seed;
    }
    Ok(cfg)
}

pub use carma_train::preflight::MAX_OFFSET_TO_SPREAD;

/// Run `carma fit`. Every setting, the graph, the output path and the data are checked before
/// any training: a mistake found after minutes of training would waste them.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(args.config.as_deref(), args.epochs_scale, args.seed)?;
    let config_name = || {
        args.config
            .as_ref()
            .map_or("the training settings".to_owned(), |p| {
                p.display().to_string()
            })
    };
    cfg.classifier
        .check()
        .with_context(|| format!("{}: [classifier]", config_name()))?;
    cfg.flow
        .check()
        .with_context(|| format!("{}: [flow]", config_name()))?;
    cfg.carma
        .check()
        .with_context(|| format!("{}: [carma]", config_name()))?;
    let graph = CausalGraph::from_toml_path(&args.graph)?;
    carma_train::preflight::check_setup(
        &cfg,
        &graph,
        &args.label,
        &args.graph.display().to_string(),
        &config_name(),
    )?;
    let mut inputs: Vec<(&str, &Path)> = vec![("--data", &args.data), ("--graph", &args.graph)];
    if let Some(c) = &args.config {
        inputs.push(("--config", c));
    }
    if let Some(c) = &args.classifier {
        inputs.push(("--classifier", c));
    }
    if let Some(c) = &args.classifier_json {
        inputs.push(("--classifier-json", c));
    }
    refuse_overwriting_inputs(&args.out, &inputs)?;
    // Created now, so an unwritable destination is found before training; the hidden temporary
    // is removed on a failure, Ctrl-C, SIGTERM or SIGHUP.
    let mut out = AtomicFile::create_with(
        &args.out,
        WriteOptions {
            replace_read_only: args.force,
        },
    )
    .with_context(|| format!("cannot write {}", args.out.display()))?;
    let fixed = match &args.classifier {
        Some(path) => {
            let bytes = crate::model::read_model_bytes(path)
                .context("--classifier: cannot read the classifier's model")?;
            Some(
                FixedClassifier::from_bundle(&bytes)
                    .with_context(|| format!("{}: no usable classifier", path.display()))?,
            )
        }
        None => None,
    };
    // Read and checked before the data, like the other inputs; folded into the first layer
    // once the data (and so the shared scaler) is known.
    let brought_json = match &args.classifier_json {
        Some(path) => Some((ClassifierJson::read(path)?, path.display().to_string())),
        None => None,
    };
    let options = CsvOptions {
        label: Some(args.label.clone()),
        ignore_extra: args.ignore_extra,
    };
    let table = Table::read_csv_with(&args.data, &graph, &options).map_err(|e| hint(e, &args))?;
    carma_train::preflight::check_table(&table, &graph, &args.data.display().to_string())?;
    let fixed = match &brought_json {
        Some((net, file)) => Some(net.to_fixed(&graph, &table.x, file)?),
        None => fixed,
    };
    let name = args.name.clone().unwrap_or_else(|| {
        args.data
            .file_stem()
            .map_or_else(|| "data".to_owned(), |s| s.to_string_lossy().into_owned())
    });
    note!(
        "training on {} rows of {} ({} features, label '{}'), seed {}",
        table.n_rows(),
        args.data.display(),
        graph.len(),
        args.label,
        cfg.seed
    );
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
    out.write_all(&bytes)
        .and_then(|()| out.commit())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let m = &bundle.wire().meta.metrics;
    let pct = |v: Option<f32>| v.map_or("-".to_owned(), |v| format!("{:.1} %", 100.0 * v));
    outln!(
        "wrote {} ({} bytes): classifier test accuracy {}, CARMA coverage {} on {} rejected test rows",
        args.out.display(),
        bytes.len(),
        pct(m.classifier_test_accuracy),
        pct(m.carma_coverage),
        m.n_test
    )?;
    outln!(
        "next: carma recommend --model {} --input people.csv",
        args.out.display()
    )?;
    Ok(())
}

/// The reader's refusal, with the flag that changes it.
fn hint(e: DataError, args: &Args) -> anyhow::Error {
    let extra = match &e {
        DataError::MissingColumn { column, .. } if *column == args.label => format!(
            " (the label column is '{}'; name yours with --label NAME)",
            args.label
        ),
        DataError::ExtraColumn { .. } => " (pass --ignore-extra to skip the columns that are \
            neither features nor the label, such as an id; `carma recommend --id COLUMN` \
            repeats an id column in its output)"
            .to_owned(),
        _ => String::new(),
    };
    if extra.is_empty() {
        e.into()
    } else {
        anyhow::anyhow!("{e}{extra}")
    }
}
