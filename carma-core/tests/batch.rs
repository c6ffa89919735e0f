//! `recommend_batch` gives every row the bits `recommend` gives it alone,
//! keeps a bad row's error to that row, and refuses wrong shapes; with
//! `batch_scratch_len` values of scratch (the lane kernel) as with
//! `scratch_len` (one row at a time).

mod common;

use carma_core::error::{Argument, InputError};
use carma_core::{Bundle, Error, FeatureSet, Recommendation};
use carma_core::{Options, Refine};
use common::{Shape, random_input, random_spec, with_binary_actionable};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The trained Loan bundle at the paper's sizes and its 2,000 test rows.
static LOAN: &[u8] = include_bytes!("../../fixtures/bench/loan.carma");
static LOAN_ROWS: &[u8] = include_bytes!("../../fixtures/bench/loan_test_rows.f32");

fn loan_rows() -> Vec<f32> {
    LOAN_ROWS
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A recommendation with its floats as bits, so that equality is bit for bit.
fn rec_bits(r: &Result<Recommendation, Error>) -> Result<(Recommendation, [u32; 4]), Error> {
    r.map(|r| {
        let b = [r.prob_before, r.prob_after, r.cost, r.cost_unrefined].map(f32::to_bits);
        (r, b)
    })
}

/// Runs `recommend_batch` on `xs` with a scratch of `scratch` values (NaN
/// filled) and checks every row against `recommend` alone, bit for bit.
/// Returns how many rows were rejected (took the full path) and how many
/// were errors.
fn check_batch(
    bundle: &Bundle<'_>,
    xs: &[f32],
    forbid: FeatureSet,
    scratch: usize,
) -> (usize, usize) {
    let d = bundle.n_features();
    let n = xs.len() / d;
    let mut scratch = vec![f32::NAN; scratch];
    let mut out = vec![f32::NAN; n * d];
    let mut results = vec![Err(Error::NoCarma); n];
    bundle
        .recommend_batch(xs, forbid, &mut out, &mut results, &mut scratch)
        .unwrap();
    let mut single_scratch = vec![f32::NAN; bundle.scratch_len()];
    let (mut rejected, mut errors) = (0, 0);
    for r in 0..n {
        let mut one = vec![f32::NAN; d];
        let single = bundle.recommend(
            &xs[r * d..(r + 1) * d],
            forbid,
            &mut one,
            &mut single_scratch,
        );
        assert_eq!(rec_bits(&results[r]), rec_bits(&single), "row {r} of {n}");
        match single {
            Ok(rec) => {
                assert_eq!(bits(&out[r * d..(r + 1) * d]), bits(&one), "row {r} of {n}");
                rejected += usize::from(!rec.already_accepted);
            }
            Err(_) => errors += 1,
        }
    }
    (rejected, errors)
}

#[test]
fn batch_rows_match_single_calls_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(81);
    for seed in 0..20 {
        let spec = random_spec(seed, &Shape::random(&mut rng));
        let bytes = spec.to_bytes();
        let bundle = Bundle::new(&bytes).unwrap();
        let d = bundle.n_features();
        let n = 30;
        let mut xs: Vec<f32> = (0..n).flat_map(|_| random_input(&mut rng, &spec)).collect();
        // Row 3 is not finite: its own error, the others unaffected.
        xs[3 * d] = f32::NAN;
        for len in [bundle.scratch_len(), bundle.batch_scratch_len()] {
            let (_, errors) = check_batch(&bundle, &xs, FeatureSet::EMPTY, len);
            assert!(errors >= 1, "seed {seed}");
        }
        let mut scratch = vec![f32::NAN; bundle.batch_scratch_len()];
        let mut out = vec![0.0; n * d];
        let mut results = vec![Err(Error::NoCarma); n];
        bundle
            .recommend_batch(&xs, FeatureSet::EMPTY, &mut out, &mut results, &mut scratch)
            .unwrap();
        for r in 0..n {
            let mut one = vec![0.0; d];
            let single = bundle.recommend(
                &xs[r * d..(r + 1) * d],
                FeatureSet::EMPTY,
                &mut one,
                &mut scratch,
            );
            assert_eq!(results[r], single, "seed {seed} row {r}");
            if r == 3 {
                assert!(matches!(
                    single,
                    Err(Error::Input(InputError::NotFinite { .. }))
                ));
            } else {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&out[r * d..(r + 1) * d]),
                    bits(&one),
                    "seed {seed} row {r}"
                );
            }
        }
    }
}

#[test]
fn batch_shapes_are_checked_before_any_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(82);
    let spec = random_spec(1, &Shape::random(&mut rng));
    let bytes = spec.to_bytes();
    let bundle = Bundle::new(&bytes).unwrap();
    let d = bundle.n_features();
    let xs: Vec<f32> = (0..4).flat_map(|_| random_input(&mut rng, &spec)).collect();
    let mut scratch = vec![0.0; bundle.scratch_len()];
    let mut out = vec![0.0; 4 * d];
    let untouched: Result<Recommendation, Error> = Err(Error::NoCarma);
    let mut results = vec![untouched; 3];
    let e = bundle.recommend_batch(&xs, FeatureSet::EMPTY, &mut out, &mut results, &mut scratch);
    assert_eq!(
        e,
        Err(Error::Input(InputError::Length {
            argument: Argument::Input,
            expected: 3 * d,
            found: 4 * d
        }))
    );
    assert!(results.iter().all(|r| *r == untouched));
    let mut results = vec![untouched; 4];
    let e = bundle.recommend_batch(
        &xs,
        FeatureSet::EMPTY,
        &mut out[1..],
        &mut results,
        &mut scratch,
    );
    assert!(matches!(
        e,
        Err(Error::Input(InputError::Length {
            argument: Argument::Output,
            ..
        }))
    ));
    let e = bundle.recommend_batch(
        &xs,
        FeatureSet::EMPTY,
        &mut out,
        &mut results,
        &mut scratch[..bundle.scratch_len() - 1],
    );
    assert!(matches!(
        e,
        Err(Error::Input(InputError::ScratchTooSmall { .. }))
    ));
    let e = bundle.recommend_batch(
        &xs,
        FeatureSet::from_bits(1 << 63),
        &mut out,
        &mut results,
        &mut scratch,
    );
    assert!(matches!(
        e,
        Err(Error::Input(InputError::UnknownFeature { .. }))
    ));
    assert!(results.iter().all(|r| *r == untouched));
}

/// The lane kernel on the Loan model: batches of 1, 7, 8, 9 and 100 rows
/// (not multiples of the 8 lanes, so partial blocks of both stages) and
/// the whole split, accepted and rejected mixed, rejected only, with and
/// without forbidden features: every row the bits of `recommend` alone.
#[test]
fn lane_kernel_gives_the_bits_of_single_calls_on_loan() {
    let bundle = Bundle::new(LOAN).unwrap();
    let d = bundle.n_features();
    // As documented on `batch_scratch_len`.
    assert_eq!(bundle.scratch_len(), 177);
    assert_eq!(bundle.batch_scratch_len(), 177 + 16 * 170);
    let all = loan_rows();
    let mut scratch = vec![0.0; bundle.scratch_len()];
    let mut x_std = vec![0.0; d];
    let rejected: Vec<f32> = all
        .chunks_exact(d)
        .filter(|x| {
            bundle.standardize(x, &mut x_std).unwrap();
            bundle.classify(&x_std, &mut scratch).unwrap() < 0.5
        })
        .flatten()
        .copied()
        .collect();
    let forbids = [
        FeatureSet::EMPTY,
        FeatureSet::from_bits(0b1),
        FeatureSet::from_bits(0b101_0010),
        FeatureSet::first(d),
    ];
    for forbid in forbids {
        for rows in [1, 7, 8, 9, 100, all.len() / d] {
            for (name, xs) in [("split", &all), ("rejected", &rejected)] {
                // Start at an odd row, so that blocks begin at other people.
                let start = 13 * d;
                let xs = &xs[start..(start + rows * d).min(xs.len())];
                let (rej, errors) = check_batch(&bundle, xs, forbid, bundle.batch_scratch_len());
                assert_eq!(errors, 0, "{name} {rows}");
                if name == "rejected" {
                    assert_eq!(rej, xs.len() / d, "{name} {rows}");
                }
            }
        }
    }
    // The whole split has both kinds.
    let (rej, _) = check_batch(&bundle, &all, FeatureSet::EMPTY, bundle.batch_scratch_len());
    assert!(rej > 900 && rej < 1100, "{rej} rejected");
}

/// Bad rows inside lane blocks: a NaN, an infinity, a value that
/// overflows when standardized, a non-binary value of a binary feature;
/// each is that row's error (the one `recommend` gives) and every other
/// row of its block has the bits of a single call.
#[test]
fn bad_rows_in_a_lane_block_are_their_own_errors() {
    let bundle = Bundle::new(LOAN).unwrap();
    let d = bundle.n_features();
    let mut xs: Vec<f32> = loan_rows()[..100 * d].to_vec();
    xs[3 * d] = f32::NAN;
    xs[8 * d + 2] = f32::INFINITY;
    xs[9 * d + 1] = f32::NAN;
    xs[10 * d + 4] = f32::MAX;
    xs[50 * d + d - 1] = -f32::MAX;
    for r in 60..68 {
        xs[r * d + r % d] = f32::NAN; // a whole block of bad rows
    }
    let (_, errors) = check_batch(&bundle, &xs, FeatureSet::EMPTY, bundle.batch_scratch_len());
    assert!(errors >= 11, "{errors} errors");
    let mut rng = ChaCha8Rng::seed_from_u64(85);
    // Random bundles with binary actionable features: a binary value that
    // is neither 0 nor 1 is that row's error.
    for seed in 0..10 {
        let spec = with_binary_actionable(random_spec(seed, &Shape::random(&mut rng)));
        let bytes = spec.to_bytes();
        let bundle = Bundle::new(&bytes).unwrap();
        let d = bundle.n_features();
        let mut xs: Vec<f32> = (0..40)
            .flat_map(|_| random_input(&mut rng, &spec))
            .collect();
        if let Some(k) = spec.binary.iter().position(|&b| b == 1) {
            xs[5 * d + k] = 0.5;
        }
        xs[11 * d] = f32::NAN;
        let (_, errors) = check_batch(&bundle, &xs, FeatureSet::EMPTY, bundle.batch_scratch_len());
        assert!(errors >= 1, "seed {seed}");
    }
}

/// Random bundles of every shape the tests build (one or two flow layers,
/// one or two hidden layers: the lane kernel or the fallback for the
/// rejected rows), inputs far outside the training range among them (some
/// overflow), random forbidden sets and batch sizes.
#[test]
fn lane_kernel_gives_the_bits_of_single_calls_on_random_bundles() {
    let mut rng = ChaCha8Rng::seed_from_u64(84);
    let mut rejected = 0;
    for seed in 0..40 {
        let spec = random_spec(100 + seed, &Shape::random(&mut rng));
        let bytes = spec.to_bytes();
        let bundle = Bundle::new(&bytes).unwrap();
        let d = bundle.n_features();
        let n = rng.random_range(1..60);
        let mut xs: Vec<f32> = (0..n).flat_map(|_| random_input(&mut rng, &spec)).collect();
        for _ in 0..n / 10 {
            let r = rng.random_range(0..n);
            let k = rng.random_range(0..d);
            if spec.binary[k] == 0 {
                xs[r * d + k] *= 1e18;
            }
        }
        let forbid = FeatureSet::from_bits(rng.random::<u64>()).intersection(FeatureSet::first(d));
        let forbid = if rng.random_bool(0.5) {
            FeatureSet::EMPTY
        } else {
            forbid
        };
        rejected += check_batch(&bundle, &xs, forbid, bundle.batch_scratch_len()).0;
        // A scratch between the two sizes runs one row at a time.
        check_batch(&bundle, &xs, forbid, bundle.batch_scratch_len() - 1);
    }
    assert!(rejected > 200, "{rejected} rejected");
}

/// `recommend_batch_with` (refinement, limits) classifies in lanes and does
/// the rejected rows alone: the bits of `recommend_with`.
#[test]
fn batch_with_options_gives_the_bits_of_single_calls() {
    let bundle = Bundle::new(LOAN).unwrap();
    let d = bundle.n_features();
    let mut xs: Vec<f32> = loan_rows()[..61 * d].to_vec();
    xs[17 * d] = f32::NAN;
    let options = [
        Options::new(FeatureSet::EMPTY, Some(Refine::DEFAULT)),
        Options::new(FeatureSet::from_bits(0b10), None),
        Options::new(
            FeatureSet::EMPTY,
            Some(Refine {
                min_prob: 0.2, // refused: every row's error
                ..Refine::DEFAULT
            }),
        ),
    ];
    for o in &options {
        for len in [bundle.scratch_len(), bundle.batch_scratch_len()] {
            let n = xs.len() / d;
            let mut scratch = vec![f32::NAN; len];
            let mut out = vec![f32::NAN; n * d];
            let mut results = vec![Err(Error::NoCarma); n];
            bundle
                .recommend_batch_with(&xs, o, &mut out, &mut results, &mut scratch)
                .unwrap();
            for r in 0..n {
                let mut one = vec![f32::NAN; d];
                let single =
                    bundle.recommend_with(&xs[r * d..(r + 1) * d], o, &mut one, &mut scratch);
                assert_eq!(rec_bits(&results[r]), rec_bits(&single), "row {r}");
                if single.is_ok() {
                    assert_eq!(bits(&out[r * d..(r + 1) * d]), bits(&one), "row {r}");
                }
            }
        }
    }
}
