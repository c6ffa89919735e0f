//! Regenerates the golden fixtures (`fixtures/golden/`) and the bundle the
//! freestanding proof embeds (`fixtures/freestanding/`). Deliberate only: see
//! `docs/FIXTURES.md` for when.
//!
//! ```text
//! cargo run --release -p carma-train --example regenerate_fixtures [-- [--no-freestanding] [DATASET...]]
//! ```
//!
//! For each dataset (all seven by default) it trains the golden model
//! (`carma_train::golden::config`), writes `<dataset>.carma` and the expected
//! outputs `<dataset>.json`, and checks the JSON parses back to the same
//! bits. When Loan is regenerated it then runs
//! `cargo run -p carma-core --example freestanding_fixture -- --bundle fixtures/golden/loan.carma`
//! so the freestanding program embeds the trained Loan bundle.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use carma_train::golden;
use carma_train::scm::Dataset;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let out_dir = root.join("fixtures/golden");
    let mut freestanding = true;
    let mut datasets = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--no-freestanding" => freestanding = false,
            name => datasets.push(
                Dataset::ALL
                    .into_iter()
                    .find(|d| d.name() == name)
                    .ok_or_else(|| format!("unknown dataset {name:?}"))?,
            ),
        }
    }
    if datasets.is_empty() {
        datasets = Dataset::ALL.to_vec();
    }
    std::fs::create_dir_all(&out_dir)?;
    let all = Instant::now();
    for &dataset in &datasets {
        let t = Instant::now();
        let sim = golden::train(dataset)?;
        let bytes = sim.trained.to_bytes()?;
        let fixture = golden::fixture(dataset, &sim, &bytes)?;
        let text = golden::to_json(&fixture)?;
        // The decimals must parse back to the very bits next to them.
        let back: golden::Fixture = serde_json::from_str(&text)?;
        // (The configuration is informational f64 text; compare the rest.)
        let floats = |f: &golden::Fixture| {
            serde_json::to_string_pretty(&(&f.metrics, &f.rows, &f.forbid_rows))
        };
        let (a, b) = (floats(&back)?, floats(&fixture)?);
        if a != b {
            if let Some((x, y)) = a.lines().zip(b.lines()).find(|(x, y)| x != y) {
                eprintln!("parsed back: {x}\nwritten:     {y}");
            }
            return Err(format!("{}: the JSON does not parse back exactly", dataset.name()).into());
        }
        let name = dataset.name();
        std::fs::write(out_dir.join(format!("{name}.carma")), &bytes)?;
        std::fs::write(out_dir.join(format!("{name}.json")), text)?;
        let accepted = fixture
            .rows
            .iter()
            .filter(|r| !r.recommend.already_accepted && r.recommend.accepted)
            .count();
        let rejected = fixture
            .rows
            .iter()
            .filter(|r| !r.recommend.already_accepted)
            .count();
        eprintln!(
            "{name}: {} bytes, {accepted}/{rejected} rejected rows accepted after recourse, \
             {} forbid rows ({}), test coverage {:.3}, {:.1} s",
            bytes.len(),
            fixture.forbid_rows.len(),
            fixture.forbidden_feature,
            sim.trained.metrics.carma_coverage.unwrap_or(f32::NAN),
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "golden fixtures: {} datasets in {:.1} s",
        datasets.len(),
        all.elapsed().as_secs_f64()
    );
    if freestanding && datasets.contains(&Dataset::Loan) {
        regenerate_freestanding(&root, &out_dir.join("loan.carma"))?;
    }
    Ok(())
}

/// Rewrites `fixtures/freestanding` from the golden Loan bundle.
fn regenerate_freestanding(root: &Path, bundle: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["run", "--quiet", "-p", "carma-core", "--example"])
        .arg("freestanding_fixture")
        .arg("--")
        .arg("--bundle")
        .arg(bundle)
        .status()?;
    if !status.success() {
        return Err(format!("freestanding_fixture failed: {status}").into());
    }
    Ok(())
}
