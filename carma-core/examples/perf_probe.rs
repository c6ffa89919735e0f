//! Performance probe for `docs/PERFORMANCE.md`: a digest of every output bit
//! (to show an optimization kept the results), and fixed call counts to run
//! under `valgrind --tool=callgrind` for instruction counts.
//!
//! ```text
//! cargo run --release -p carma-core --example perf_probe -- digest
//! valgrind --tool=callgrind target/release/examples/perf_probe STAGE N
//! ```
//!
//! `STAGE` is `density` (non-zero flow weights), `setup` (load only),
//! `recommend`, `refined` (recommend with the default refinement), `limited` (refined, raise
//! only, at most 2 changes), `alternatives` (refined, and 2 alternatives), `abduct`, `invert`,
//! `classify`, `mask` or `action`; each call handles one rejected Loan
//! individual of `fixtures/bench`, cycling. Instructions per call are
//! `(Ir(STAGE, N) - Ir(setup, N)) / N`.
//!
//! `batch-split`, `batch-rejected` (N rows of the whole test split, or of
//! its rejected rows, cycling, through `recommend_batch` in calls of 512
//! rows with the lane kernel's scratch) and `batch-split-rows`,
//! `batch-rejected-rows` (the same with a scratch of `scratch_len`: one row
//! at a time), for `perf stat` cycles per row.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use carma_core::{Bundle, FeatureSet};
use common::{Shape, grid_input, random_input, random_spec, with_binary_actionable, with_grid};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

static LOAN: &[u8] = include_bytes!("../../fixtures/bench/loan.carma");
static LOAN_ROWS: &[u8] = include_bytes!("../../fixtures/bench/loan_test_rows.f32");

/// FNV-1a over 32-bit words.
struct Digest(u64);

impl Digest {
    fn add(&mut self, word: u32) {
        for b in word.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn recommend_all(bundle: &Bundle<'_>, rows: &[Vec<f32>], h: &mut Digest) -> usize {
    let d = bundle.n_features();
    let mut scratch = vec![f32::NAN; bundle.scratch_len()];
    let mut out = vec![0.0; d];
    let mut errors = 0;
    for x in rows {
        for forbid in [FeatureSet::EMPTY, FeatureSet::from_bits(1)] {
            let forbid = forbid.intersection(FeatureSet::first(d));
            match bundle.recommend(x, forbid, &mut out, &mut scratch) {
                Ok(r) => {
                    h.add(r.mask.bits() as u32);
                    h.add(r.prob_before.to_bits());
                    h.add(r.prob_after.to_bits());
                    h.add(r.cost.to_bits());
                    h.add(u32::from(r.accepted) | u32::from(r.already_accepted) << 1);
                    out.iter().for_each(|v| h.add(v.to_bits()));
                }
                Err(_) => errors += 1,
            }
        }
        let mut z = vec![0.0; d];
        if bundle.abduct(x, &mut z, &mut scratch).is_ok() {
            z.iter().for_each(|v| h.add(v.to_bits()));
            if bundle.invert(&z, &mut out, &mut scratch).is_ok() {
                out.iter().for_each(|v| h.add(v.to_bits()));
            }
            if let Ok(l) = bundle.log_likelihood(x, &mut scratch) {
                h.add(l.to_bits());
            }
        }
    }
    errors
}

/// Every output bit of refined recommendations (with limits, and two
/// alternatives) for `rows`, under a few option sets.
fn refined_all(bundle: &Bundle<'_>, rows: &[Vec<f32>], h: &mut Digest) -> usize {
    use carma_core::{Limits, Options, Refine};
    let d = bundle.n_features();
    let mut scratch = vec![f32::NAN; bundle.scratch_len()];
    let mut out = vec![0.0; d];
    let mut outs = vec![0.0; 3 * d];
    let mut recs = [None; 3];
    let mut errors = 0;
    let add = |h: &mut Digest, r: &carma_core::Recommendation, out: &[f32]| {
        h.add(r.mask.bits() as u32);
        h.add(r.prob_after.to_bits());
        h.add(r.cost.to_bits());
        h.add(r.cost_unrefined.to_bits());
        h.add(u32::from(r.refined) | u32::from(r.max_changes_bound) << 1);
        h.add(r.bound_by_limit.bits() as u32);
        h.add(r.status as u32);
        out.iter().for_each(|v| h.add(v.to_bits()));
    };
    let raise = FeatureSet::first(d);
    let cut = FeatureSet::first(d.min(2));
    let limited = Limits {
        increase: raise.difference(cut),
        decrease: cut,
        max_changes: Some(2),
        ..Limits::NONE
    };
    let tight = Refine {
        min_prob: 0.75,
        steps: 4,
        slack: 0.0,
    };
    let option_sets = [
        Options::new(FeatureSet::EMPTY, Some(Refine::DEFAULT)),
        Options::new(FeatureSet::EMPTY, Some(tight)),
        Options::new(FeatureSet::EMPTY, None),
        Options {
            forbid: FeatureSet::EMPTY,
            refine: Some(Refine::DEFAULT),
            limits: limited,
        },
    ];
    for x in rows {
        for options in &option_sets {
            match bundle.recommend_with(x, options, &mut out, &mut scratch) {
                Ok(r) => add(h, &r, &out),
                Err(_) => errors += 1,
            }
        }
        match bundle.recommend_alternatives(x, &option_sets[0], &mut outs, &mut recs, &mut scratch)
        {
            Ok(n) => {
                h.add(n as u32);
                for (r, o) in recs.iter().zip(outs.chunks_exact(d.max(1))).take(n) {
                    if let Some(r) = r {
                        add(h, r, o);
                    }
                }
            }
            Err(_) => errors += 1,
        }
    }
    errors
}

fn loan_rows(d: usize) -> Vec<Vec<f32>> {
    LOAN_ROWS
        .chunks_exact(4 * d)
        .map(|r| {
            r.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stage = args.first().map_or("digest", String::as_str);
    let bundle = Bundle::new(LOAN).expect("the bench bundle decodes");
    let d = bundle.n_features();
    let rows = loan_rows(d);
    if stage == "digest" {
        let mut h = Digest(0xcbf2_9ce4_8422_2325);
        let errors = recommend_all(&bundle, &rows, &mut h);
        println!("loan part {:016x}", h.0);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for seed in 0..200 {
            let spec = random_spec(seed, &Shape::random(&mut rng));
            let bytes = spec.to_bytes();
            let b = Bundle::new(&bytes).expect("random specs are valid");
            let rows: Vec<Vec<f32>> = (0..50).map(|_| random_input(&mut rng, &spec)).collect();
            recommend_all(&b, &rows, &mut h);
        }
        println!("digest {:016x} ({errors} Loan errors)", h.0);
        return;
    }
    if stage == "digest-refined" {
        let mut h = Digest(0xcbf2_9ce4_8422_2325);
        let errors = refined_all(&bundle, &rows, &mut h);
        println!("loan part {:016x}", h.0);
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for seed in 0..300 {
            let spec = random_spec(seed, &Shape::random(&mut rng));
            let spec = match seed % 3 {
                0 => spec,
                1 => with_binary_actionable(spec),
                _ => with_grid(spec, &mut rng),
            };
            let bytes = spec.to_bytes();
            let b = Bundle::new(&bytes).expect("random specs are valid");
            let rows: Vec<Vec<f32>> = (0..40)
                .map(|_| {
                    if seed % 3 == 2 {
                        grid_input(&mut rng, &spec)
                    } else {
                        random_input(&mut rng, &spec)
                    }
                })
                .collect();
            refined_all(&b, &rows, &mut h);
        }
        println!("digest-refined {:016x} ({errors} Loan errors)", h.0);
        return;
    }
    if stage == "density" {
        // Non-zero weights of each flow matrix (the MADE masks zero the rest).
        let mlp = bundle.flow().layer(0).expect("one flow layer");
        for m in 0..mlp.n_layers() {
            let dense = mlp.layer(m).expect("matrix");
            let (rows, cols) = (dense.n_out(), dense.n_in());
            let nz = (0..rows)
                .flat_map(|r| (0..cols).map(move |c| (r, c)))
                .filter(|&(r, c)| dense.weight(r, c).is_some_and(|w| w != 0.0))
                .count();
            println!("flow matrix {m}: {rows} x {cols}, {nz} non-zero");
        }
        return;
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    if let Some(kind) = stage.strip_prefix("batch-") {
        let (kind, per_row) = match kind.strip_suffix("-rows") {
            Some(k) => (k, true),
            None => (kind, false),
        };
        let mut scratch = vec![0.0f32; bundle.scratch_len()];
        let mut x_std = vec![0.0; d];
        let source: Vec<f32> = rows
            .iter()
            .filter(|x| {
                kind == "split"
                    || (bundle.standardize(x, &mut x_std).is_ok()
                        && bundle.classify(&x_std, &mut scratch).is_ok_and(|p| p < 0.5))
            })
            .flatten()
            .copied()
            .collect();
        let xs: Vec<f32> = source.iter().copied().cycle().take(n * d).collect();
        let len = if per_row {
            bundle.scratch_len()
        } else {
            bundle.batch_scratch_len()
        };
        let mut scratch = vec![0.0f32; len];
        let mut out = vec![0.0f32; 512 * d];
        let mut results = vec![Err(carma_core::Error::NoCarma); 512];
        let mut acc = 0.0f32;
        for x in xs.chunks(512 * d) {
            let rows = x.len() / d;
            bundle
                .recommend_batch(
                    black_box(x),
                    FeatureSet::EMPTY,
                    &mut out[..rows * d],
                    &mut results[..rows],
                    &mut scratch,
                )
                .expect("batch");
            acc += results
                .iter()
                .map(|r| r.map_or(0.0, |r| r.cost))
                .sum::<f32>();
        }
        println!("{stage} {n} rows: {acc}");
        return;
    }
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let mut out = vec![0.0f32; d];
    let mut alt_rows = vec![0.0f32; 3 * d];
    let mut recs = [None; 3];
    // Per rejected individual: raw, standardized, latent, mask.
    let mut cases = Vec::new();
    for x in &rows {
        let mut x_std = vec![0.0; d];
        bundle.standardize(x, &mut x_std).expect("standardize");
        if bundle.classify(&x_std, &mut scratch).expect("classify") >= 0.5 {
            continue;
        }
        let mut z = vec![0.0; d];
        bundle.abduct(&x_std, &mut z, &mut scratch).expect("abduct");
        let mask = bundle
            .mask(&z, FeatureSet::EMPTY, &mut scratch)
            .expect("mask");
        cases.push((x.clone(), x_std, z, mask));
    }
    let mut acc = 0.0f32;
    for k in 0..n {
        let (x, x_std, z, mask) = &cases[k % cases.len()];
        let (x, x_std, z) = (black_box(x), black_box(x_std), black_box(z));
        match stage {
            "setup" => acc += x[0],
            "recommend" => {
                let r = bundle.recommend(x, FeatureSet::EMPTY, &mut out, &mut scratch);
                acc += r.map_or(0.0, |r| r.cost);
            }
            "refined" => {
                let options =
                    carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT));
                let r = bundle.recommend_with(x, &options, &mut out, &mut scratch);
                acc += r.map_or(0.0, |r| r.cost);
            }
            "limited" => {
                // As the bench's recommend_rejected_limited: raise only, at most 2 changes.
                let options = carma_core::Options {
                    limits: carma_core::Limits {
                        increase: bundle.actionable(),
                        max_changes: Some(2),
                        ..carma_core::Limits::NONE
                    },
                    ..carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT))
                };
                let r = bundle.recommend_with(x, &options, &mut out, &mut scratch);
                acc += r.map_or(0.0, |r| r.cost);
            }
            "alternatives" => {
                let options =
                    carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT));
                let r = bundle.recommend_alternatives(
                    x,
                    &options,
                    &mut alt_rows,
                    &mut recs,
                    &mut scratch,
                );
                acc += r.map_or(0.0, |n| n as f32);
            }
            "abduct" => {
                let _ = bundle.abduct(x_std, &mut out, &mut scratch);
                acc += out[0];
            }
            "invert" => {
                let _ = bundle.invert(z, &mut out, &mut scratch);
                acc += out[0];
            }
            "classify" => acc += bundle.classify(x_std, &mut scratch).unwrap_or(0.0),
            "mask" => {
                let m = bundle.mask(z, FeatureSet::EMPTY, &mut scratch);
                acc += m.map_or(0, |m| m.len()) as f32;
            }
            "action" => {
                let _ = bundle.action(z, *mask, &mut out, &mut scratch);
                acc += out[0];
            }
            other => panic!("unknown stage {other}"),
        }
    }
    println!(
        "{stage} {n} calls over {} rejected rows: {acc}",
        cases.len()
    );
}
