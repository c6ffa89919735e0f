//! `recommend_batch` gives every row the bits `recommend` gives it alone,
//! keeps a bad row's error to that row, and refuses wrong shapes.

mod common;

use carma_core::error::{Argument, InputError};
use carma_core::{Bundle, Error, FeatureSet, Recommendation};
use common::{Shape, random_input, random_spec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
        let mut scratch = vec![f32::NAN; bundle.scratch_len()];
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
