//! Rows per second of the Rust batch API (`carma_train::batch::recommend_parallel`, no
//! refinement, every core) on a model file and a file of raw little-endian `f32` rows: the
//! baseline of the Python benchmark (`carma-py/bench/bench_recommend.py`, docs/PYTHON.md).
//!
//! ```text
//! cargo run --release -p carma-train --example batch_throughput -- MODEL ROWS.f32 [REPEATS]
//! ```

use carma_core::{Bundle, FeatureSet};
use carma_train::batch::{default_threads, recommend_parallel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model), Some(rows)) = (args.get(1), args.get(2)) else {
        return Err("usage: batch_throughput MODEL ROWS.f32 [REPEATS]".into());
    };
    let repeats: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let bytes = carma_train::io::read_model_bytes(model.as_ref())?;
    let bundle = Bundle::new(&bytes).map_err(|e| format!("{model}: {e}"))?;
    let d = bundle.n_features();
    let xs: Vec<f32> = std::fs::read(rows)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = xs.len() / d;
    let mut out = vec![0.0f32; n * d];
    let mut results = vec![Err(carma_core::Error::NoCarma); n];
    let threads = default_threads();
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t = std::time::Instant::now();
        recommend_parallel(
            &bundle,
            &xs,
            FeatureSet::EMPTY,
            &mut out,
            &mut results,
            threads,
        )
        .map_err(|e| format!("{e}"))?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let accepted = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.accepted))
        .count();
    println!(
        "{{\"rows\": {n}, \"threads\": {threads}, \"seconds\": {best}, \"rows_per_second\": {}, \"accepted\": {accepted}}}",
        n as f64 / best
    );
    Ok(())
}
