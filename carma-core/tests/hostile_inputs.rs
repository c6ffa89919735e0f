//! Hostile arguments (issue 7): `recommend` and the other operations given
//! NaN, infinities, finite values so large that a step overflows, wrong
//! lengths, binary features that are not 0 or 1, and feature sets naming
//! features the model does not have. Every case is a typed error, never a
//! NaN or an infinity in an `Ok`. (`hand_computed.rs` covers the basic
//! length, NaN and scratch cases; these are the rest.)
//!
//! Overflow cases are regression tests: before `Error::NotFinite` the core
//! returned `Ok` with an infinite latent, a `-inf` log-likelihood or NaN
//! counterfactuals, and turned NaN mask logits or actions into "no action"
//! or the lower clamp without a word.

mod common;

use carma_core::error::{Argument, InputError, Quantity, Section, ValidationError};
use carma_core::format::{MAX_LAYERS, weight_index};
use carma_core::{Bundle, Error, FeatureSet};
use common::hand_spec;

const NONE: FeatureSet = FeatureSet::EMPTY;
/// x0 is binary, x1 continuous (mean 2, std 0.5).
const X: [f32; 2] = [1.0, 1.5];

fn with<T>(bytes: &[u8], f: impl FnOnce(&Bundle<'_>, &mut [f32]) -> T) -> T {
    let b = Bundle::new(bytes).expect("valid bundle");
    let mut s = vec![0.0; b.scratch_len()];
    f(&b, &mut s)
}

fn input(e: InputError) -> Result<(), Error> {
    Err(Error::Input(e))
}

#[test]
fn non_finite_inputs_are_refused_by_every_operation() {
    let bytes = hand_spec().to_bytes();
    with(&bytes, |b, s| {
        let mut out = [0.0f32; 2];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let x = [1.0, bad];
            let nf = input(InputError::NotFinite { index: 1 });
            assert_eq!(b.recommend(&x, NONE, &mut out, s).map(drop), nf);
            assert_eq!(b.standardize(&x, &mut out), nf);
            assert_eq!(b.unstandardize(&x, &mut out), nf);
            assert_eq!(b.abduct(&x, &mut out, s), nf);
            assert_eq!(b.log_likelihood(&x, s).map(drop), nf);
            assert_eq!(b.classify(&x, s).map(drop), nf);
            assert_eq!(b.invert(&x, &mut out, s), nf);
            assert_eq!(b.mask(&x, NONE, s).map(drop), nf);
            assert_eq!(b.action(&x, NONE, &mut out, s), nf);
            assert_eq!(b.cost(&[0.0, 0.0], &x, NONE).map(drop), nf);
            assert_eq!(b.cost(&x, &[0.0, 0.0], NONE).map(drop), nf);
        }
        // A NaN in a binary feature is reported as not finite, not as "not binary".
        assert_eq!(
            b.recommend(&[f32::NAN, 1.5], NONE, &mut out, s).map(drop),
            input(InputError::NotFinite { index: 0 })
        );
    });
}

#[test]
fn binary_features_must_be_exactly_zero_or_one() {
    let bytes = hand_spec().to_bytes();
    with(&bytes, |b, s| {
        let mut out = [0.0f32; 2];
        for bad in [0.5, -1.0, 2.0, 1.000_000_1, 1e-45, 0.999_999_9] {
            assert_eq!(
                b.recommend(&[bad, 1.5], NONE, &mut out, s).map(drop),
                input(InputError::NotBinary { index: 0 }),
                "x0 = {bad:e}"
            );
        }
        // -0.0 == 0.0: accepted, as is every value of the continuous feature.
        assert!(b.recommend(&[-0.0, 1.5], NONE, &mut out, s).is_ok());
        assert!(b.recommend(&[0.0, -1e-45], NONE, &mut out, s).is_ok());
    });
}

#[test]
fn wrong_lengths_are_refused_for_inputs_and_outputs() {
    let bytes = hand_spec().to_bytes();
    with(&bytes, |b, s| {
        let len = |argument, found| {
            input(InputError::Length {
                argument,
                expected: 2,
                found,
            })
        };
        let mut out2 = [0.0f32; 2];
        for x in [&[][..], &[1.0][..], &[1.0, 1.5, 0.0][..]] {
            let found = x.len();
            assert_eq!(
                b.recommend(x, NONE, &mut out2, s).map(drop),
                len(Argument::Input, found)
            );
            assert_eq!(b.abduct(x, &mut out2, s), len(Argument::Input, found));
            assert_eq!(b.classify(x, s).map(drop), len(Argument::Input, found));
        }
        for n in [0, 1, 3, 64] {
            let mut out = vec![0.0f32; n];
            assert_eq!(
                b.recommend(&X, NONE, &mut out, s).map(drop),
                len(Argument::Output, n)
            );
            assert_eq!(b.abduct(&[0.0, 0.0], &mut out, s), len(Argument::Output, n));
            assert_eq!(b.invert(&[0.0, 0.0], &mut out, s), len(Argument::Output, n));
            assert_eq!(b.standardize(&X, &mut out), len(Argument::Output, n));
            assert_eq!(
                b.action(&[0.0, 0.0], NONE, &mut out, s),
                len(Argument::Output, n)
            );
        }
    });
}

#[test]
fn feature_sets_beyond_d_are_refused() {
    let bytes = hand_spec().to_bytes();
    with(&bytes, |b, s| {
        let mut out = [0.0f32; 2];
        for index in [2, 3, 31, 63] {
            let set = FeatureSet::from_bits(1 << index | 1);
            let unknown = input(InputError::UnknownFeature { index });
            assert_eq!(b.recommend(&X, set, &mut out, s).map(drop), unknown);
            assert_eq!(b.mask(&[0.0, 0.0], set, s).map(drop), unknown);
            assert_eq!(b.action(&[0.0, 0.0], set, &mut out, s), unknown);
            assert_eq!(b.cost(&[0.0, 0.0], &[1.0, 1.0], set).map(drop), unknown);
        }
        // Forbidding every feature the model has is fine: nothing to change.
        let rec = b
            .recommend(&X, FeatureSet::first(2), &mut out, s)
            .expect("all forbidden");
        assert!(rec.mask.is_empty());
        assert_eq!(out, X);
    });
}

fn overflow(q: Quantity) -> Result<(), Error> {
    Err(Error::NotFinite(q))
}

#[test]
fn finite_inputs_that_overflow_are_typed_errors_not_nan() {
    let bytes = hand_spec().to_bytes();
    with(&bytes, |b, s| {
        let mut out = [0.0f32; 2];
        // (f32::MAX - 2) / 0.5 overflows while standardizing.
        let huge = [1.0, f32::MAX];
        assert_eq!(
            b.recommend(&huge, NONE, &mut out, s).map(drop),
            overflow(Quantity::Standardized)
        );
        assert_eq!(
            b.standardize(&huge, &mut out),
            overflow(Quantity::Standardized)
        );
        // x~ = (1, 2e38): z1 = x~1 * exp(soft_clip(1)) + 2 overflows in the flow.
        let x_std = [1.0, 2e38];
        assert_eq!(b.abduct(&x_std, &mut out, s), overflow(Quantity::Latent));
        // Rejected (x~1 = -2e38), so recommend needs the latent, which overflows.
        assert_eq!(
            b.recommend(&[1.0, -1e38], NONE, &mut out, s).map(drop),
            overflow(Quantity::Latent)
        );
        // Accepted (x~1 = 2e38): the classifier runs first and no latent is needed.
        let r = b.recommend(&[1.0, 1e38], NONE, &mut out, s).unwrap();
        assert!(r.already_accepted && r.prob_before == 1.0 && r.cost == 0.0);
        assert_eq!(out, [1.0, 1e38]);
        // x~1 = 1e20: z1 is finite but z1^2 is not; log p was -inf.
        assert_eq!(
            b.log_likelihood(&[1.0, 1e20], s).map(drop),
            overflow(Quantity::LogLikelihood)
        );
        // z = (-3e38, 3e38): x~0 = -3e38, h = -1, x~1 = (z1 + 2) * e^0.87 overflows.
        assert_eq!(
            b.invert(&[-3e38, 3e38], &mut out, s),
            overflow(Quantity::Reconstruction)
        );
        // Finite results of the same operations still come back.
        assert!(b.abduct(&[1.0, 1e30], &mut out, s).is_ok() && out[1].is_finite());
    });
}

#[test]
fn unstandardizing_can_overflow_too() {
    let mut spec = hand_spec();
    spec.std[1] = 4.0;
    let bytes = spec.to_bytes();
    with(&bytes, |b, _| {
        let mut out = [0.0f32; 2];
        assert_eq!(
            b.unstandardize(&[0.0, f32::MAX], &mut out),
            overflow(Quantity::Original)
        );
        assert_eq!(b.unstandardize(&[0.0, 1e37], &mut out), Ok(()));
    });
}

#[test]
fn extreme_weights_give_typed_errors_where_nan_was_silent() {
    let mut spec = hand_spec();
    // Classifier 2 -> 2 (ReLU) -> 1: h = (3e38 x0, 3e38 x0), logit = h0 - h1:
    // inf - inf = NaN for x~0 >= 2.
    spec.classifier.dims = vec![2, 2, 1];
    spec.classifier.params = common::wire_params(
        &[2, 2, 1],
        &[3e38, 0.0, 3e38, 0.0, 0.0, 0.0, 1.0, -1.0, 0.0],
    );
    let carma = spec.carma.as_mut().unwrap();
    // phi_11 (mask output 3, of 4) = 3e38 z0 - 3e38 z1 (+1): NaN at z = (2, 2).
    carma.mask_net.params[weight_index(4, 3, 0)] = 3e38;
    carma.mask_net.params[weight_index(4, 3, 1)] = -3e38;
    // delta1 (action output 1, of 2) = 3e38 z0 - 3e38 z1 + ...: NaN at z = (2, 2).
    carma.action_net.params[weight_index(2, 1, 0)] = 3e38;
    carma.action_net.params[weight_index(2, 1, 1)] = -3e38;
    let bytes = spec.to_bytes();
    with(&bytes, |b, s| {
        assert_eq!(
            b.classify(&[2.0, 0.0], s).map(drop),
            overflow(Quantity::Probability)
        );
        assert!(b.classify(&[0.0, 0.0], s).is_ok_and(|p| p == 0.5));
        assert_eq!(
            b.mask(&[2.0, 2.0], NONE, s).map(drop),
            overflow(Quantity::MaskLogits)
        );
        let mut delta = [0.0f32; 2];
        assert_eq!(
            b.action(&[2.0, 2.0], FeatureSet::first(2), &mut delta, s),
            overflow(Quantity::Action)
        );
        // +inf saturates at the clamp instead (a direction, not a NaN).
        assert!(
            b.action(&[2.0, 0.0], FeatureSet::first(2), &mut delta, s)
                .is_ok()
        );
        assert_eq!(delta[1], 5.0);
        // In recommend: x = (1, 2) gives x~0 = 1, below the overflow.
        let mut out = [0.0f32; 2];
        let r = b.recommend(&[1.0, 2.0], NONE, &mut out, s);
        assert!(
            r.is_ok_and(|r| r.prob_before.is_finite() && out.iter().all(|v| v.is_finite()))
                || matches!(r, Err(Error::NotFinite(_))),
            "{r:?}"
        );
    });
}

#[test]
fn the_error_names_the_quantity() {
    let e = Error::NotFinite(Quantity::Latent);
    let text = format!("{e}");
    assert!(
        text.contains("latent") && text.contains("not finite"),
        "{text}"
    );
}

/// A Loan-sized model (the freestanding fixture): the most extreme finite
/// inputs give a typed error or a finite recommendation, never NaN.
#[test]
fn loan_fixture_never_returns_non_finite_results() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/freestanding/bundle.carma"
    );
    let bytes = std::fs::read(path).unwrap();
    with(&bytes, |b, s| {
        let d = b.n_features();
        let mut out = vec![0.0f32; d];
        for v in [f32::MAX, f32::MIN, 1e30, -1e30, 1e19, 1e10, -1e10] {
            let x: Vec<f32> = (0..d)
                .map(|i| if b.is_binary(i) { 1.0 } else { v })
                .collect();
            match b.recommend(&x, NONE, &mut out, s) {
                Ok(r) => assert!(
                    r.prob_before.is_finite()
                        && r.prob_after.is_finite()
                        && r.cost.is_finite()
                        && out.iter().all(|v| v.is_finite()),
                    "{v:e}: {r:?} {out:?}"
                ),
                Err(e) => assert!(matches!(e, Error::NotFinite(_)), "{v:e}: {e:?}"),
            }
        }
    });
}

/// A classifier of `layers` weight layers, one unit wide, all weights zero.
fn deep_classifier(spec: &mut common::Spec, layers: usize) {
    spec.classifier.dims = std::iter::once(2)
        .chain(std::iter::repeat_n(1, layers))
        .collect();
    spec.classifier.params = vec![0.0; 3 + 2 * (layers - 1)];
}

/// Regression: thousands of one-unit layers made every operation quadratic
/// in the depth (30,000 layers: 3 s to load, 6 s per inversion). Now
/// refused at load, quickly.
#[test]
fn networks_deeper_than_max_layers_are_refused_quickly() {
    let mut spec = hand_spec();
    deep_classifier(&mut spec, MAX_LAYERS);
    let bytes = spec.to_bytes();
    with(&bytes, |b, s| {
        assert_eq!(b.classifier().n_layers(), MAX_LAYERS);
        assert!(b.classify(&[0.0, 0.0], s).is_ok_and(|p| p == 0.5));
    });
    for layers in [MAX_LAYERS + 1, 30_000] {
        let mut spec = hand_spec();
        deep_classifier(&mut spec, layers);
        let bytes = spec.to_bytes();
        let start = std::time::Instant::now();
        assert_eq!(
            Bundle::new(&bytes).map(drop),
            Err(Error::Validation(ValidationError::TooDeep {
                section: Section::Classifier,
                found: layers,
                max: MAX_LAYERS
            }))
        );
        assert!(start.elapsed() < std::time::Duration::from_millis(100));
    }
    let mut spec = hand_spec();
    spec.flow_dims = std::iter::once(2)
        .chain(std::iter::repeat_n(1, MAX_LAYERS))
        .chain(std::iter::once(4))
        .collect();
    assert_eq!(
        Bundle::new(&spec.to_bytes()).map(drop),
        Err(Error::Validation(ValidationError::TooDeep {
            section: Section::Flow,
            found: MAX_LAYERS + 1,
            max: MAX_LAYERS
        }))
    );
}
