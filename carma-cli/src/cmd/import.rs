//! `carma import`: a PyTorch reference JSON (causal flow and classifier) to a model bundle.

use std::path::PathBuf;

use anyhow::Context;
use carma_core::Bundle;
use carma_train::import::{ScalerChoice, import_reference_json};
use carma_train::io::{WriteOptions, refuse_overwriting_inputs, write_atomic_with};

/// Arguments of `carma import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The reference JSON (zuko MADE flow, causal adjacency, scalers, classifier).
    #[arg(long)]
    pub json: PathBuf,
    /// Which of the file's scalers standardizes the bundle: recourse (what CARMA and the
    /// reference vectors use), causal_estimator (the flow's, for its test log-likelihood) or clf.
    #[arg(long, default_value = "recourse", value_parser = parse_scaler)]
    pub scaler: ScalerChoice,
    /// Output model file (written atomically; must not be the JSON).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Replace the output file even if it is read-only.
    #[arg(long)]
    pub force: bool,
}

fn parse_scaler(s: &str) -> Result<ScalerChoice, String> {
    s.parse()
        .map_err(|e: carma_train::import::ImportError| e.to_string())
}

/// Run `carma import`.
pub fn run(args: Args) -> anyhow::Result<()> {
    refuse_overwriting_inputs(&args.out, &[("--json", &args.json)])?;
    let text = carma_train::io::read_text(&args.json)
        .with_context(|| format!("cannot read {}", args.json.display()))?;
    let spec = import_reference_json(&text, args.scaler)
        .with_context(|| format!("{}: cannot import", args.json.display()))?;
    let bytes = spec
        .to_bytes()
        .with_context(|| format!("{}: cannot export the imported model", args.json.display()))?;
    // The core must accept what we write; checking here keeps a bad file off the disk.
    let bundle = Bundle::new(&bytes).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "{}: the imported model does not validate",
            args.json.display()
        ))
    })?;
    write_atomic_with(
        &args.out,
        &bytes,
        WriteOptions {
            replace_read_only: args.force,
        },
    )
    .with_context(|| format!("cannot write {}", args.out.display()))?;
    outln!(
        "wrote {} ({} bytes): causal flow ({} layer{}) and classifier from {}, {} features, scaler '{}'.",
        args.out.display(),
        bytes.len(),
        bundle.flow().n_layers(),
        if bundle.flow().n_layers() == 1 {
            ""
        } else {
            "s"
        },
        args.json.display(),
        bundle.n_features(),
        args.scaler.key()
    )?;
    outln!(
        "Only the flow and the classifier are imported: the model has no CARMA networks, so it can \
         be inspected but `carma recommend` will refuse it."
    )?;
    Ok(())
}
