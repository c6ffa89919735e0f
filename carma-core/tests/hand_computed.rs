//! The two-feature model of `common::hand_spec`, with every value worked out
//! on paper from docs/MATH.md sections 2, 4 and 5 (the f64 formulas below are those
//! hand derivations; the approximate numbers are in the comments).

mod common;

use carma_core::error::{Argument, InputError};
use carma_core::{Bundle, Error, FeatureSet};

const TOL: f64 = 1e-5;
/// ln(1e-3), the soft clip bound (FLOW_MATH section 4).
const LN_SLOPE: f64 = -6.907_755_278_982_137;

fn soft_clip(raw: f64) -> f64 {
    raw / (1.0 + (raw / LN_SLOPE).abs())
}

fn elu(x: f64) -> f64 {
    if x > 0.0 { x } else { x.exp_m1() }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `T(x~)` of the hand model: `z0 = x0 + 0.5`, `z1 = x1 exp(ls1) + 2 h`,
/// `h = ELU(x0)`, `ls1 = soft_clip(h)`.
fn forward(x: [f64; 2]) -> ([f64; 2], f64) {
    let h = elu(x[0]);
    let ls1 = soft_clip(h);
    ([x[0] + 0.5, x[1] * ls1.exp() + 2.0 * h], ls1)
}

/// `T^-1(z)`: `x0 = z0 - 0.5`, then `x1 = (z1 - 2 h(x0)) / exp(ls1(x0))`.
fn inverse(z: [f64; 2]) -> [f64; 2] {
    let x0 = z[0] - 0.5;
    let h = elu(x0);
    [x0, (z[1] - 2.0 * h) / soft_clip(h).exp()]
}

fn close(a: f32, b: f64) -> bool {
    ((a as f64) - b).abs() <= TOL * (1.0 + b.abs())
}

fn bundle_bytes() -> Vec<u8> {
    common::hand_spec().to_bytes()
}

#[test]
fn abduction_matches_the_hand_formula() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    for x in [[1.0, 3.0], [1.0, -1.0], [-1.0, 0.25], [0.0, 0.0]] {
        let mut z = [0.0f32; 2];
        b.abduct(&[x[0] as f32, x[1] as f32], &mut z, &mut s)
            .unwrap();
        let (want, _) = forward(x);
        // x = (1, 3): z = (1.5, 3 exp(0.873542) + 2 = 9.186359)
        assert!(
            close(z[0], want[0]) && close(z[1], want[1]),
            "{x:?}: {z:?} vs {want:?}"
        );
    }
}

#[test]
fn inversion_matches_the_hand_formula() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    for z in [[1.5, 9.186_359], [-2.5, 3.604_55], [0.0, -1.0]] {
        let mut x = [0.0f32; 2];
        b.invert(&[z[0] as f32, z[1] as f32], &mut x, &mut s)
            .unwrap();
        let want = inverse(z);
        // z = (-2.5, 3.60455): x0 = -3, h = e^-3 - 1 = -0.950213,
        // x1 = (3.60455 + 1.900426) exp(0.835310) = 12.692...
        assert!(
            close(x[0], want[0]) && close(x[1], want[1]),
            "{z:?}: {x:?} vs {want:?}"
        );
    }
}

#[test]
fn log_likelihood_matches_the_hand_formula() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let x = [1.0, 3.0];
    let (z, ls1) = forward(x);
    // sum_i (-z_i^2 / 2 - ln(2 pi) / 2) + ls0 (= 0) + ls1
    let want = -(z[0] * z[0] + z[1] * z[1]) / 2.0 - (2.0 * std::f64::consts::PI).ln() + ls1;
    let got = b.log_likelihood(&[1.0, 3.0], &mut s).unwrap();
    assert!(close(got, want), "{got} vs {want}"); // about -44.161
}

#[test]
fn classifier_is_the_hand_logistic() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    // sigmoid(x~1 - 0.5): x~1 = -1 gives sigmoid(-1.5) = 0.182426
    assert!(close(
        b.classify(&[1.0, -1.0], &mut s).unwrap(),
        sigmoid(-1.5)
    ));
    assert_eq!(b.classify(&[7.0, 0.5], &mut s).unwrap(), 0.5);
}

#[test]
fn mask_selects_by_logits_and_honours_actionable_and_forbid() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    // phi_0 = (0, 1): always; phi_1 = (0, -z1): iff z1 < 0.
    assert_eq!(
        b.mask(&[0.0, -0.5], FeatureSet::EMPTY, &mut s)
            .unwrap()
            .bits(),
        0b11
    );
    assert_eq!(
        b.mask(&[0.0, 0.5], FeatureSet::EMPTY, &mut s)
            .unwrap()
            .bits(),
        0b01
    );
    // phi_11 = phi_10 = 0: not strictly greater, so not selected.
    assert_eq!(
        b.mask(&[0.0, 0.0], FeatureSet::EMPTY, &mut s)
            .unwrap()
            .bits(),
        0b01
    );
    let forbid0: FeatureSet = [0].into_iter().collect();
    assert_eq!(b.mask(&[0.0, -0.5], forbid0, &mut s).unwrap().bits(), 0b10);

    let mut spec = common::hand_spec();
    spec.actionable = vec![0, 1];
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    assert_eq!(
        b.mask(&[0.0, -0.5], FeatureSet::EMPTY, &mut s)
            .unwrap()
            .bits(),
        0b10
    );
    assert_eq!(
        b.mask(&[0.0, 0.5], FeatureSet::EMPTY, &mut s).unwrap(),
        FeatureSet::EMPTY
    );
}

#[test]
fn action_is_clamped_to_the_latent_range() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut delta = [0.0f32; 2];
    // delta = (-10, 6 m1 - 2) clamped to [-4, 5].
    b.action(
        &[0.3, -0.5],
        FeatureSet::from_bits(0b10),
        &mut delta,
        &mut s,
    )
    .unwrap();
    assert_eq!(delta, [-4.0, 4.0]);
    b.action(&[0.3, -0.5], FeatureSet::EMPTY, &mut delta, &mut s)
        .unwrap();
    assert_eq!(delta, [-4.0, -2.0]);
}

/// The factual of the recommend tests: raw (1, 1.5), standardized (1, -1).
const X_RAW: [f32; 2] = [1.0, 1.5];
const X_STD: [f64; 2] = [1.0, -1.0];
const MEAN: [f64; 2] = [0.5, 2.0];
const STD: [f64; 2] = [0.5, 0.5];
const RANGE: [f64; 2] = [2.0, 4.0];
const WEIGHT: [f64; 2] = [1.0, 2.0];

/// The pipeline by hand for mask `m`: z = T(x~); z1 = -0.395448 < 0, so the
/// mask net picks feature 1 (and always 0); delta = (-4, 4) after clamping.
fn by_hand(m: [bool; 2]) -> ([f64; 2], f64, f64) {
    let (mut z, _) = forward(X_STD);
    let delta = [-4.0, 4.0];
    for i in 0..2 {
        if m[i] {
            z[i] += delta[i];
        }
    }
    let x_cf = inverse(z);
    let p = sigmoid(x_cf[1] - 0.5);
    let cost = (0..2)
        .filter(|&k| m[k])
        .map(|k| WEIGHT[k] * (X_STD[k] - x_cf[k]).powi(2) / RANGE[k])
        .sum::<f64>()
        / 2.0;
    (
        [x_cf[0] * STD[0] + MEAN[0], x_cf[1] * STD[1] + MEAN[1]],
        p,
        cost,
    )
}

#[test]
fn recommend_runs_the_whole_pipeline_by_hand() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![f32::NAN; b.scratch_len()];
    let mut x_cf = [0.0f32; 2];
    let rec = b
        .recommend(&X_RAW, FeatureSet::EMPTY, &mut x_cf, &mut s)
        .unwrap();
    let (want_x, want_p, want_cost) = by_hand([true, true]);
    assert_eq!(rec.mask.bits(), 0b11);
    assert!(!rec.already_accepted);
    assert!(close(rec.prob_before, sigmoid(-1.5)));
    // x~_cf = (-3, 12.692), x_cf = (-1, 8.346), p = sigmoid(12.19) ~ 1
    assert!(
        close(x_cf[0], want_x[0]) && close(x_cf[1], want_x[1]),
        "{x_cf:?} vs {want_x:?}"
    );
    assert!(close(rec.prob_after, want_p));
    assert!(rec.accepted);
    // (1 (1 + 3)^2 / 2 + 2 (-1 - 12.692)^2 / 4) / 2 = 50.87
    assert!(close(rec.cost, want_cost), "{} vs {want_cost}", rec.cost);
}

#[test]
fn forbidding_a_feature_changes_the_recommendation_and_matches_non_actionable() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut x_cf = [0.0f32; 2];
    let forbid: FeatureSet = [0].into_iter().collect();
    let rec = b.recommend(&X_RAW, forbid, &mut x_cf, &mut s).unwrap();
    let (want_x, want_p, want_cost) = by_hand([false, true]);
    assert_eq!(rec.mask.bits(), 0b10);
    // x0 untouched, exactly; x~1_cf = (3.60455 - 2) / exp(0.873542) = 0.669829
    assert_eq!(x_cf[0], X_RAW[0]);
    assert!(close(x_cf[1], want_x[1]), "{x_cf:?} vs {want_x:?}");
    assert!(close(rec.prob_after, want_p) && rec.accepted); // sigmoid(0.1698) = 0.5424
    assert!(close(rec.cost, want_cost)); // 2 (1.669829)^2 / 4 / 2 = 0.697082

    let mut spec = common::hand_spec();
    spec.actionable = vec![0, 1];
    let bytes2 = spec.to_bytes();
    let b2 = Bundle::new(&bytes2).unwrap();
    let mut x_cf2 = [0.0f32; 2];
    let rec2 = b2
        .recommend(&X_RAW, FeatureSet::EMPTY, &mut x_cf2, &mut s)
        .unwrap();
    assert_eq!(x_cf2, x_cf);
    assert_eq!(rec2.mask, rec.mask);
    // One actionable feature instead of two: the mean divides by 1, not 2.
    assert!(close(rec2.cost, 2.0 * want_cost));

    // Forbidding everything: nothing to do, still rejected.
    let rec = b
        .recommend(&X_RAW, FeatureSet::from_bits(0b11), &mut x_cf, &mut s)
        .unwrap();
    assert!(rec.mask.is_empty() && !rec.accepted && rec.cost == 0.0);
    assert_eq!(x_cf, X_RAW);
}

#[test]
fn an_accepted_individual_is_returned_unchanged() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut x_cf = [0.0f32; 2];
    let x = [1.0, 2.5]; // x~1 = 1: p = sigmoid(0.5)
    let rec = b
        .recommend(&x, FeatureSet::EMPTY, &mut x_cf, &mut s)
        .unwrap();
    assert!(rec.already_accepted && rec.accepted && rec.mask.is_empty());
    assert_eq!(x_cf, x);
    assert_eq!(rec.cost, 0.0);
    assert_eq!(rec.prob_after, rec.prob_before);
    assert!(close(rec.prob_before, sigmoid(0.5)));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let n = b.scratch_len();
    let mut s = vec![0.0; n];
    let mut out = [0.0f32; 2];
    let none = FeatureSet::EMPTY;
    assert_eq!(
        b.recommend(&[1.0], none, &mut out, &mut s),
        Err(Error::Input(InputError::Length {
            argument: Argument::Input,
            expected: 2,
            found: 1
        }))
    );
    assert_eq!(
        b.recommend(&X_RAW, none, &mut [0.0; 3], &mut s),
        Err(Error::Input(InputError::Length {
            argument: Argument::Output,
            expected: 2,
            found: 3
        }))
    );
    assert_eq!(
        b.recommend(&[1.0, f32::NAN], none, &mut out, &mut s),
        Err(Error::Input(InputError::NotFinite { index: 1 }))
    );
    assert_eq!(
        b.recommend(&[f32::INFINITY, 0.0], none, &mut out, &mut s),
        Err(Error::Input(InputError::NotFinite { index: 0 }))
    );
    assert_eq!(
        b.recommend(&[0.5, 1.5], none, &mut out, &mut s),
        Err(Error::Input(InputError::NotBinary { index: 0 }))
    );
    assert_eq!(
        b.recommend(&X_RAW, FeatureSet::from_bits(0b100), &mut out, &mut s),
        Err(Error::Input(InputError::UnknownFeature { index: 2 }))
    );
    assert_eq!(
        b.recommend(&X_RAW, none, &mut out, &mut s[..n - 1]),
        Err(Error::Input(InputError::ScratchTooSmall {
            needed: n,
            found: n - 1
        }))
    );
    assert_eq!(
        b.abduct(&X_RAW, &mut out, &mut s[..1]),
        Err(Error::Input(InputError::ScratchTooSmall {
            needed: n,
            found: 1
        }))
    );
    assert_eq!(
        b.invert(&[0.0, f32::NAN], &mut out, &mut s),
        Err(Error::Input(InputError::NotFinite { index: 1 }))
    );
    assert_eq!(
        b.mask(&[0.0, 0.0], FeatureSet::from_bits(1 << 63), &mut s),
        Err(Error::Input(InputError::UnknownFeature { index: 63 }))
    );
    assert_eq!(
        b.standardize(&X_RAW, &mut [0.0; 1]),
        Err(Error::Input(InputError::Length {
            argument: Argument::Output,
            expected: 2,
            found: 1
        }))
    );
}

#[test]
fn a_bundle_without_carma_refuses_carma_operations() {
    let mut spec = common::hand_spec();
    spec.carma = None;
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut out = [0.0f32; 2];
    assert_eq!(
        b.recommend(&X_RAW, FeatureSet::EMPTY, &mut out, &mut s),
        Err(Error::NoCarma)
    );
    assert_eq!(
        b.mask(&[0.0, 0.0], FeatureSet::EMPTY, &mut s),
        Err(Error::NoCarma)
    );
    assert_eq!(
        b.action(&[0.0, 0.0], FeatureSet::EMPTY, &mut out, &mut s),
        Err(Error::NoCarma)
    );
    assert_eq!(
        b.cost(&[0.0, 0.0], &[0.0, 0.0], FeatureSet::EMPTY),
        Err(Error::NoCarma)
    );
    // The flow and the classifier still work.
    b.abduct(&[1.0, 3.0], &mut out, &mut s).unwrap();
    assert!(close(out[0], 1.5));
    assert!(b.classify(&[0.0, 0.0], &mut s).is_ok());
}

#[test]
fn accessors_describe_the_model() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    assert_eq!(b.n_features(), 2);
    assert_eq!(b.feature_name(1), Some("x1"));
    assert_eq!(b.feature_name(2), None);
    assert!(b.is_binary(0) && !b.is_binary(1) && !b.is_binary(99));
    assert!(b.is_actionable(1) && !b.is_actionable(2));
    assert_eq!(b.parents(1).bits(), 0b01);
    assert!(b.parents(0).is_empty() && b.parents(7).is_empty());
    assert!(b.order().eq([0, 1]));
    assert_eq!(b.wire().meta.dataset, "hand");
    assert_eq!(b.scratch_bytes(), 4 * b.scratch_len());
    let mut x_std = [0.0f32; 2];
    b.standardize(&X_RAW, &mut x_std).unwrap();
    assert_eq!(x_std, [1.0, -1.0]);
    let mut back = [0.0f32; 2];
    b.unstandardize(&x_std, &mut back).unwrap();
    assert_eq!(back, X_RAW);
}

#[test]
fn scratch_of_a_loan_sized_model_is_177_values() {
    use carma_core::format::Activation::{Identity, Relu, Sigmoid};
    use rand::SeedableRng;
    // D = 7, flow hidden 64, classifier 32-32, mask 32-32, action 32-32-32 (docs/MATH.md sections 3, 5).
    let shape = common::Shape {
        d: 7,
        flow_layers: 1,
        flow_hidden: vec![64],
    };
    let mut spec = common::random_spec(3, &shape);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    spec.classifier = common::random_mlp(&mut rng, &[7, 32, 32, 1], Relu, Sigmoid, 1.0);
    let carma = spec.carma.as_mut().unwrap();
    carma.mask_net = common::random_mlp(&mut rng, &[7, 32, 32, 14], Relu, Identity, 1.0);
    carma.action_net = common::random_mlp(&mut rng, &[14, 32, 32, 32, 7], Relu, Identity, 1.0);
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    // (layers + 1) D (factual x~, z) + 5 D (refinement: proposal, values, trial, two for
    // a stacked flow) + max(flow max(2 D + 64, tracked inversion: 64 hidden units and 64
    // change flags), classifier 2 * 32, carma 2 D + 2 * 32) = 14 + 35 + 128.
    assert_eq!(b.scratch_len(), 177);
    assert_eq!(b.scratch_bytes(), 708);
    let mut s = vec![0.0; 177];
    let mut out = [0.0f32; 7];
    let x: Vec<f32> = (0..7)
        .map(|i| if b.is_binary(i) { 1.0 } else { 0.1 })
        .collect();
    b.recommend(&x, FeatureSet::EMPTY, &mut out, &mut s)
        .unwrap();
}

#[test]
fn accessors_never_panic_on_out_of_range_arguments() {
    let bytes = bundle_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let m = usize::MAX;
    assert!(b.parents(m).is_empty() && b.parents(m / 2).is_empty());
    assert_eq!((b.feature_name(m), b.mean(m), b.std(m)), (None, None, None));
    assert!(!b.is_binary(m) && !b.is_actionable(m));
    let flow = b.flow();
    assert_eq!(flow.ready(m, m, m), 0);
    assert_eq!(flow.ready(0, 0, m), 0);
    assert!(flow.layer(m).is_none());
    let net = flow.layer(0).unwrap();
    assert!(net.layer(m).is_none());
    assert_eq!(net.width(m), 0);
    assert_eq!(net.activation(m), carma_core::format::Activation::Identity);
    assert_eq!(net.layer(0).unwrap().weight(m, 0), None);
    assert_eq!(net.layer(0).unwrap().weight(0, m), None);
    let carma = b.carma().unwrap();
    assert_eq!((carma.cost_range(m), carma.weight(m)), (None, None));
    assert_eq!(carma.clamp(), (-4.0, 5.0));
}
