//! The batch API in individuals per second (issue 8, `docs/PERFORMANCE.md`):
//! `carma_core::Bundle::recommend_batch` on one thread and
//! `carma_train::batch::recommend_parallel` on every core, over the Loan
//! benchmark bundle of `fixtures/bench` (paper sizes; written by
//! `cargo run --release -p carma-train --example bench_bundle`).
//!
//! ```text
//! cargo bench -p carma-train --bench recommend_batch
//! ```
//!
//! Two populations: the rejected test individuals repeated to 100,000 rows
//! (every row takes the full path: abduct, classify, mask, action, invert,
//! classify) and the whole test split repeated to 100,000 rows (accepted
//! individuals stop after the first classification).
//!
//! Each population on 1 thread and on every core, with the lane kernel
//! (`one_thread`, `N_threads`: a scratch of `batch_scratch_len`, as
//! `recommend_parallel` gives) and, in the same run, the one-row-at-a-time
//! path it replaced (`*_per_row`: a scratch of `scratch_len`), so the ratio
//! between the two is clean.

use std::hint::black_box;

use std::sync::Mutex;

use carma_core::{Bundle, Error, FeatureSet, Recommendation};
use carma_train::batch::{BLOCK_ROWS, default_threads, recommend_parallel};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

static LOAN: &[u8] = include_bytes!("../../fixtures/bench/loan.carma");
static LOAN_ROWS: &[u8] = include_bytes!("../../fixtures/bench/loan_test_rows.f32");

/// Rows per batch call.
const ROWS: usize = 100_000;

/// `recommend_parallel` as it was before the lane kernel: the same blocks
/// taken as they come, each thread with a scratch of `scratch_len` values,
/// so the core does one row at a time.
fn per_row_parallel(
    bundle: &Bundle<'_>,
    xs: &[f32],
    out: &mut [f32],
    results: &mut [Result<Recommendation, Error>],
    threads: usize,
) {
    let d = bundle.n_features();
    let blocks = Mutex::new(
        xs.chunks(BLOCK_ROWS * d)
            .zip(out.chunks_mut(BLOCK_ROWS * d))
            .zip(results.chunks_mut(BLOCK_ROWS)),
    );
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut scratch = vec![0.0; bundle.scratch_len()];
                loop {
                    let next = blocks.lock().unwrap().next();
                    let Some(((x, o), r)) = next else { return };
                    bundle
                        .recommend_batch(x, FeatureSet::EMPTY, o, r, &mut scratch)
                        .expect("batch");
                }
            });
        }
    });
}

fn batch(c: &mut Criterion) {
    let bundle = Bundle::new(LOAN).expect("bench bundle");
    let d = bundle.n_features();
    let test: Vec<f32> = LOAN_ROWS
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let mut lane_scratch = vec![0.0f32; bundle.batch_scratch_len()];
    let mut x_std = vec![0.0f32; d];
    let rejected: Vec<f32> = test
        .chunks_exact(d)
        .filter(|x| {
            bundle.standardize(x, &mut x_std).is_ok()
                && bundle.classify(&x_std, &mut scratch).is_ok_and(|p| p < 0.5)
        })
        .flatten()
        .copied()
        .collect();
    let repeat =
        |rows: &[f32]| -> Vec<f32> { rows.iter().copied().cycle().take(ROWS * d).collect() };
    let populations = [
        ("rejected", repeat(&rejected)),
        ("test_split", repeat(&test)),
    ];
    let mut out = vec![0.0f32; ROWS * d];
    let mut results = vec![Err(Error::NoCarma); ROWS];
    let mut g = c.benchmark_group("loan_batch");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    for (name, xs) in &populations {
        g.bench_with_input(BenchmarkId::new("one_thread", name), xs, |b, xs| {
            b.iter(|| {
                bundle
                    .recommend_batch(
                        black_box(xs),
                        FeatureSet::EMPTY,
                        &mut out,
                        &mut results,
                        &mut lane_scratch,
                    )
                    .expect("batch")
            })
        });
        g.bench_with_input(BenchmarkId::new("one_thread_per_row", name), xs, |b, xs| {
            b.iter(|| {
                bundle
                    .recommend_batch(
                        black_box(xs),
                        FeatureSet::EMPTY,
                        &mut out,
                        &mut results,
                        &mut scratch,
                    )
                    .expect("batch")
            })
        });
        let threads = default_threads();
        g.bench_with_input(
            BenchmarkId::new(format!("{threads}_threads"), name),
            xs,
            |b, xs| {
                b.iter(|| {
                    recommend_parallel(
                        &bundle,
                        black_box(xs),
                        FeatureSet::EMPTY,
                        &mut out,
                        &mut results,
                        threads,
                    )
                    .expect("batch")
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new(format!("{threads}_threads_per_row"), name),
            xs,
            |b, xs| {
                b.iter(|| per_row_parallel(&bundle, black_box(xs), &mut out, &mut results, threads))
            },
        );
    }
    g.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
