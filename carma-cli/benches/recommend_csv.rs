//! `carma recommend` end to end, CSV in, in rows per second (issue 8: ≥ 500,000 rows/s on the
//! 2-core machine, `docs/PERFORMANCE.md`).
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo bench -p carma-cli --bench recommend_csv
//! CARMA_BENCH_ROWS=100000 cargo bench -p carma-cli --bench recommend_csv -- csv/jobs2
//! ```
//!
//! `carma` is a binary, so each iteration runs the built `carma` as a process, the way a user
//! does:
//!
//! ```text
//! carma recommend --model fixtures/bench/loan.carma --input loan.csv --format F --jobs J -o out
//! ```
//!
//! with `F` = `csv` or `text` and `J` = 1 or 2. The input is written once, in setup, to a temporary
//! directory by `carma simulate --dataset loan -n 1000000 --seed 1` (the Loan features and the
//! label, which `recommend` ignores: about 120 bytes per row; about half the rows are rejected by
//! the model and take the full path). The model is the Loan bundle of the paper's sizes in
//! `fixtures/bench` (written by `cargo run --release -p carma-train --example bench_bundle`);
//! `CARMA_BENCH_MODEL=path` takes another model file, `CARMA_BENCH_ROWS=n` another number of rows,
//! `CARMA_BENCH_BIN=path` another `carma` binary (e.g. an older build, to compare).
//! The output goes to a file in the same directory (written atomically, as `-o` always does).
//! Each sample is one whole run, process start and model loading included (a few milliseconds).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

/// The `carma` to run: `CARMA_BENCH_BIN`, else the one built with this bench.
fn binary() -> PathBuf {
    std::env::var_os("CARMA_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_carma")))
}

/// Run `carma` with `args`; panics with its standard error when it fails.
fn carma(args: &[&str]) {
    let out = Command::new(binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run carma");
    assert!(
        out.status.success(),
        "carma {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn recommend_csv(c: &mut Criterion) {
    let rows: u64 = std::env::var("CARMA_BENCH_ROWS")
        .ok()
        .map(|v| v.parse().expect("CARMA_BENCH_ROWS: a number of rows"))
        .unwrap_or(1_000_000);
    let model = std::env::var_os("CARMA_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bench/loan.carma")
        });
    let dir = TempDir(std::env::temp_dir().join(format!("carma-bench-csv-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("create the temporary directory");
    let input = dir.0.join("loan.csv");
    let output = dir.0.join("out");
    carma(&[
        "simulate",
        "--dataset",
        "loan",
        "-n",
        &rows.to_string(),
        "--seed",
        "1",
        "-o",
        path(&input),
        "--graph",
        path(&dir.0.join("loan.toml")),
    ]);

    let mut group = c.benchmark_group("recommend_csv");
    group
        .throughput(Throughput::Elements(rows))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    for format in ["csv", "text"] {
        for jobs in ["1", "2"] {
            group.bench_function(BenchmarkId::new(format, format!("jobs{jobs}")), |b| {
                b.iter(|| {
                    carma(&[
                        "recommend",
                        "--model",
                        path(&model),
                        "--input",
                        path(&input),
                        "--format",
                        format,
                        "--jobs",
                        jobs,
                        "-o",
                        path(&output),
                    ])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, recommend_csv);
criterion_main!(benches);
