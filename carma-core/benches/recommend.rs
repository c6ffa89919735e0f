//! Inference benchmarks of the core (issue 8, `docs/PERFORMANCE.md`).
//!
//! ```text
//! cargo bench -p carma-core --bench recommend
//! ```
//!
//! `loan/*`: a trained Loan bundle of the paper's sizes (flow MADE hidden 64;
//! mask network 32, 32; action network 32, 32, 32; classifier 32, 32) and its
//! recourse test split, both in `fixtures/bench` (written by
//! `cargo run --release -p carma-train --example bench_bundle`). Each
//! iteration handles one individual, cycling through the rows, so the times
//! are per individual, one at a time, on one core.
//!
//! `chain/*`: random bundles of the same widths on chain graphs of 4, 8, 16
//! and 32 features, every individual rejected (so `recommend` takes its full
//! path), for how the cost grows with the number of features.
//!
//! `loan_batch/{lanes,per_row}/{rejected,test_split}`: `recommend_batch`
//! over the rejected rows or the whole split, with the lane kernel and with
//! the one-row-at-a-time path, per individual, one core.
//!
//! `*/invert_fixed_point_baseline`: the reference implementation's inverse
//! (`D` full passes of each flow layer, FLOW_MATH section 6) on the core's
//! own kernels, so that the scheduled inversion's speed-up is a ratio
//! measured in the same run (the tests check both give the same bits).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use carma_core::format::{Activation, MetricsWire};
use carma_core::{Bundle, FeatureSet, Recommendation};
use common::{Carma, Graph, Spec, made_layer, random_mlp};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The trained Loan bundle.
static LOAN: &[u8] = include_bytes!("../../fixtures/bench/loan.carma");
/// Its recourse test split, original units, `D` little-endian `f32` per row.
static LOAN_ROWS: &[u8] = include_bytes!("../../fixtures/bench/loan_test_rows.f32");

/// Paper widths (docs/MATH.md sections 3 to 5).
const FLOW_HIDDEN: u16 = 64;
const MASK_HIDDEN: [u16; 2] = [32, 32];
const ACTION_HIDDEN: [u16; 3] = [32, 32, 32];
const CLASSIFIER_HIDDEN: [u16; 2] = [32, 32];

/// Chain lengths of the scaling benchmark.
const CHAIN_LENGTHS: [usize; 4] = [4, 8, 16, 32];

/// Per-individual intermediate values, for timing each stage on its own.
struct Case {
    x_raw: Vec<f32>,
    x_std: Vec<f32>,
    z: Vec<f32>,
    mask: FeatureSet,
    z_cf: Vec<f32>,
    rejected: bool,
}

fn cases(bundle: &Bundle<'_>, rows: &[Vec<f32>]) -> Vec<Case> {
    let d = bundle.n_features();
    let mut scratch = vec![0.0; bundle.scratch_len()];
    rows.iter()
        .map(|x_raw| {
            let mut x_std = vec![0.0; d];
            bundle.standardize(x_raw, &mut x_std).unwrap();
            let mut z = vec![0.0; d];
            bundle.abduct(&x_std, &mut z, &mut scratch).unwrap();
            let rejected = bundle.classify(&x_std, &mut scratch).unwrap() < 0.5;
            let mask = bundle.mask(&z, FeatureSet::EMPTY, &mut scratch).unwrap();
            let mut delta = vec![0.0; d];
            bundle.action(&z, mask, &mut delta, &mut scratch).unwrap();
            let z_cf = (0..d)
                .map(|i| z[i] + if mask.contains(i) { delta[i] } else { 0.0 })
                .collect();
            Case {
                x_raw: x_raw.clone(),
                x_std,
                z,
                mask,
                z_cf,
                rejected,
            }
        })
        .collect()
}

/// Runs `f` on one case per iteration, cycling through `cases`.
fn per_case<'c, T>(
    b: &mut criterion::Bencher<'_>,
    cases: &'c [Case],
    mut f: impl FnMut(&'c Case) -> T,
) {
    let mut i = 0;
    b.iter(|| {
        let c = &cases[i];
        i = if i + 1 == cases.len() { 0 } else { i + 1 };
        black_box(f(black_box(c)))
    });
}

fn loan(c: &mut Criterion) {
    let bundle = Bundle::new(LOAN).unwrap();
    let d = bundle.n_features();
    let rows: Vec<Vec<f32>> = LOAN_ROWS
        .chunks_exact(4 * d)
        .map(|r| {
            r.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        })
        .collect();
    let all = cases(&bundle, &rows);
    let rejected: Vec<Case> = cases(
        &bundle,
        &all.iter()
            .filter(|c| c.rejected)
            .map(|c| c.x_raw.clone())
            .collect::<Vec<_>>(),
    );
    let mean_actions =
        rejected.iter().map(|c| c.mask.len()).sum::<usize>() as f64 / rejected.len() as f64;
    eprintln!(
        "loan: {} bytes, scratch {} values, {} test rows, {} rejected, {mean_actions:.2} features intervened on average",
        LOAN.len(),
        bundle.scratch_len(),
        all.len(),
        rejected.len()
    );
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let mut out = vec![0.0f32; d];
    let mut g = c.benchmark_group("loan");
    g.throughput(Throughput::Elements(1));
    g.bench_function("recommend_rejected", |b| {
        per_case(b, &rejected, |c| -> Recommendation {
            bundle
                .recommend(&c.x_raw, FeatureSet::EMPTY, &mut out, &mut scratch)
                .unwrap()
        })
    });
    // Refinement (docs/MATH.md, section 6) on top of the same proposals: the
    // difference to recommend_rejected is what refinement costs.
    let refined = carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT));
    g.bench_function("recommend_rejected_refined", |b| {
        per_case(b, &rejected, |c| -> Recommendation {
            bundle
                .recommend_with(&c.x_raw, &refined, &mut out, &mut scratch)
                .unwrap()
        })
    });
    // Refinement under per-request limits (raise only, at most two changes):
    // what clipping and the max-changes search add.
    let increase = bundle.actionable();
    let limited = carma_core::Options {
        limits: carma_core::Limits {
            increase,
            max_changes: Some(2),
            ..carma_core::Limits::NONE
        },
        ..refined
    };
    g.bench_function("recommend_rejected_limited", |b| {
        per_case(b, &rejected, |c| -> Recommendation {
            bundle
                .recommend_with(&c.x_raw, &limited, &mut out, &mut scratch)
                .unwrap()
        })
    });
    // Two alternatives besides the refined recommendation.
    let mut rows = vec![0.0f32; 3 * d];
    let mut recs = [None; 3];
    g.bench_function("recommend_rejected_2_alternatives", |b| {
        per_case(b, &rejected, |c| {
            bundle
                .recommend_alternatives(&c.x_raw, &refined, &mut rows, &mut recs, &mut scratch)
                .unwrap()
        })
    });
    // One hard intervention on the proposal's features (the unit refinement repeats).
    let values: Vec<Vec<f32>> = rejected.iter().map(|c| c.x_std.clone()).collect();
    g.bench_function("intervene", |b| {
        let mut k = 0;
        per_case(b, &rejected, |c| {
            k = (k + 1) % values.len();
            bundle
                .intervene(&c.x_std, c.mask, &values[k], &mut out, &mut scratch)
                .unwrap()
        })
    });
    g.bench_function("recommend_test_split", |b| {
        per_case(b, &all, |c| {
            bundle
                .recommend(&c.x_raw, FeatureSet::EMPTY, &mut out, &mut scratch)
                .unwrap()
        })
    });
    g.bench_function("abduct", |b| {
        per_case(b, &rejected, |c| {
            bundle.abduct(&c.x_std, &mut out, &mut scratch).unwrap()
        })
    });
    g.bench_function("invert", |b| {
        per_case(b, &rejected, |c| {
            bundle.invert(&c.z_cf, &mut out, &mut scratch).unwrap()
        })
    });
    // The reference's algorithm (D full passes per flow layer) on the same
    // kernels: the baseline of the scheduled inversion, in the same process.
    let mut work = vec![0.0f32; d + bundle.flow().layer(0).unwrap().scratch_len()];
    g.bench_function("invert_fixed_point_baseline", |b| {
        per_case(b, &rejected, |c| {
            out.copy_from_slice(&c.z_cf);
            common::fixed_point_invert(&bundle, &mut out, &mut work);
        })
    });
    g.bench_function("classify", |b| {
        per_case(b, &rejected, |c| {
            bundle.classify(&c.x_std, &mut scratch).unwrap()
        })
    });
    g.bench_function("mask_net", |b| {
        per_case(b, &rejected, |c| {
            bundle.mask(&c.z, FeatureSet::EMPTY, &mut scratch).unwrap()
        })
    });
    g.bench_function("action_net", |b| {
        per_case(b, &rejected, |c| {
            bundle.action(&c.z, c.mask, &mut out, &mut scratch).unwrap()
        })
    });
    g.finish();

    // The batch API on one core: the lane kernel (a scratch of
    // `batch_scratch_len`) against the one-row-at-a-time path (a scratch of
    // `scratch_len`) in the same run, over the rejected rows and the whole
    // split, per individual.
    let flat =
        |cases: &[Case]| -> Vec<f32> { cases.iter().flat_map(|c| c.x_raw.clone()).collect() };
    let mut g = c.benchmark_group("loan_batch");
    for (name, xs) in [("rejected", flat(&rejected)), ("test_split", flat(&all))] {
        let rows = xs.len() / d;
        g.throughput(Throughput::Elements(rows as u64));
        let mut out = vec![0.0f32; xs.len()];
        let mut results = vec![Err(carma_core::Error::NoCarma); rows];
        for (kernel, len) in [
            ("lanes", bundle.batch_scratch_len()),
            ("per_row", bundle.scratch_len()),
        ] {
            let mut scratch = vec![0.0f32; len];
            g.bench_function(BenchmarkId::new(kernel, name), |b| {
                b.iter(|| {
                    bundle
                        .recommend_batch(
                            black_box(&xs),
                            FeatureSet::EMPTY,
                            &mut out,
                            &mut results,
                            &mut scratch,
                        )
                        .unwrap()
                })
            });
        }
    }
    g.finish();
}

/// A bundle of the paper's widths on the chain `0 -> 1 -> ... -> d - 1`,
/// random weights, every feature actionable, a classifier that rejects everyone.
fn chain_bundle(d: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let graph = Graph {
        parents: (0..d)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect(),
        order: (0..d).collect(),
    };
    let (flow_params, ready) = made_layer(&mut rng, &graph, &[FLOW_HIDDEN]);
    let d16 = u16::try_from(d).unwrap();
    let dims = |hidden: &[u16], n_in: u16, n_out: u16| {
        let mut v = vec![n_in];
        v.extend(hidden);
        v.push(n_out);
        v
    };
    let mut classifier = random_mlp(
        &mut rng,
        &dims(&CLASSIFIER_HIDDEN, d16, 1),
        Activation::Relu,
        Activation::Sigmoid,
        1.0,
    );
    // The output bias: far below zero, so every individual is rejected.
    if let Some(b) = classifier.params.last_mut() {
        *b = -1e3;
    }
    let mask_net = random_mlp(
        &mut rng,
        &dims(&MASK_HIDDEN, d16, 2 * d16),
        Activation::Relu,
        Activation::Identity,
        2.0,
    );
    let action_net = random_mlp(
        &mut rng,
        &dims(&ACTION_HIDDEN, 2 * d16, d16),
        Activation::Relu,
        Activation::Identity,
        2.0,
    );
    Spec {
        dataset: format!("chain-{d}"),
        seed,
        metrics: MetricsWire::default(),
        names: (0..d)
            .map(|i| format!("x{i}"))
            .collect::<Vec<_>>()
            .join("\n"),
        binary: vec![0; d],
        actionable: vec![1; d],
        parents: graph.matrix(),
        order: graph.order.iter().map(|&i| i as u8).collect(),
        min: vec![-1e6; d],
        max: vec![1e6; d],
        direction: vec![0; d],
        mean: vec![0.0; d],
        std: vec![1.0; d],
        flow_layers: 1,
        flow_dims: vec![d16, FLOW_HIDDEN, 2 * d16],
        flow_params,
        ready,
        classifier,
        carma: Some(Carma {
            mask_net,
            action_net,
            clamp_lo: -2.0,
            clamp_hi: 2.0,
            cost_range: vec![4.0; d],
            weights: vec![1.0; d],
        }),
        grid: common::Grid::default(),
    }
    .to_bytes()
}

fn chain(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(1));
    for d in CHAIN_LENGTHS {
        let bytes = chain_bundle(d, d as u64);
        let bundle = Bundle::new(&bytes).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let rows: Vec<Vec<f32>> = (0..256)
            .map(|_| (0..d).map(|_| rng.random_range(-2.0..2.0)).collect())
            .collect();
        let cases = cases(&bundle, &rows);
        let mut scratch = vec![0.0f32; bundle.scratch_len()];
        let mut out = vec![0.0f32; d];
        g.bench_with_input(BenchmarkId::new("recommend", d), &cases, |b, cases| {
            per_case(b, cases, |c| {
                bundle
                    .recommend(&c.x_raw, FeatureSet::EMPTY, &mut out, &mut scratch)
                    .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("abduct", d), &cases, |b, cases| {
            per_case(b, cases, |c| {
                bundle.abduct(&c.x_std, &mut out, &mut scratch).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("invert", d), &cases, |b, cases| {
            per_case(b, cases, |c| {
                bundle.invert(&c.z_cf, &mut out, &mut scratch).unwrap()
            })
        });
        let mut work = vec![0.0f32; d + bundle.flow().layer(0).unwrap().scratch_len()];
        g.bench_with_input(
            BenchmarkId::new("invert_fixed_point_baseline", d),
            &cases,
            |b, cases| {
                per_case(b, cases, |c| {
                    out.copy_from_slice(&c.z_cf);
                    common::fixed_point_invert(&bundle, &mut out, &mut work);
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = loan, chain
}
criterion_main!(benches);
