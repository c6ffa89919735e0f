//! Writes the Loan bundle and input rows the carma-core benchmarks use.
//!
//! ```text
//! cargo run --release -p carma-train --example bench_bundle -- [OUT_DIR]
//! ```
//!
//! The model has the paper's sizes (flow MADE hidden 64, one layer; mask
//! network 32, 32; action network 32, 32, 32; classifier 32, 32: the
//! defaults of `PipelineConfig::paper`) but few epochs, so it trains in
//! seconds; timing does not depend on how well it is trained, only on the
//! sizes and on how many features the mask selects. `OUT_DIR` (default
//! `fixtures/bench`) receives `loan.carma` and `loan_test_rows.f32`: the
//! recourse test split in original units, 7 little-endian `f32` per row.

use std::path::PathBuf;

use carma_train::pipeline::{NoProgress, PipelineConfig, train_simulated};
use carma_train::scm::Dataset;

/// Seed of the benchmark model.
const SEED: u64 = 8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/bench"))
        });
    let mut cfg = PipelineConfig::tiny(Dataset::Loan);
    let paper = PipelineConfig::paper(Dataset::Loan);
    cfg.seed = SEED;
    cfg.n_recourse = 8_000;
    cfg.flow.hidden = paper.flow.hidden;
    cfg.flow.layers = paper.flow.layers;
    cfg.carma.mask_hidden = paper.carma.mask_hidden;
    cfg.carma.action_hidden = paper.carma.action_hidden;
    cfg.classifier = paper.classifier;
    cfg.classifier.epochs = 10;
    cfg.carma.epochs = 40;
    let sim = train_simulated(Dataset::Loan, &cfg, &mut NoProgress)?;
    let bytes = sim.trained.to_bytes()?;
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("loan.carma"), &bytes)?;
    let rows: Vec<u8> = sim
        .test
        .x
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    std::fs::write(out_dir.join("loan_test_rows.f32"), &rows)?;
    eprintln!(
        "{}: {} bytes, {} test rows; metrics {:?}",
        out_dir.display(),
        bytes.len(),
        sim.test.n_rows(),
        sim.trained.metrics
    );
    Ok(())
}
