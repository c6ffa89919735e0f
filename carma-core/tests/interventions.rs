//! Hard interventions `do(x~_S = v)` through the learned flow, and the
//! refinement of CARMA's proposal that is built on them (docs/MATH.md,
//! section 6).

mod common;

use carma_core::error::InputError;
use carma_core::recommend::MAX_EXTEND;
use carma_core::{Bundle, Error, FeatureSet, Options, Refine};
use common::{Shape, random_input, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn elu(x: f64) -> f64 {
    if x > 0.0 { x } else { x.exp_m1() }
}

fn soft_clip(raw: f64) -> f64 {
    raw / (1.0 + (raw / -6.907_755_278_982_137f64).abs())
}

fn set(items: &[usize]) -> FeatureSet {
    items.iter().copied().collect()
}

/// The hand model (`common::hand_spec`): `z0 = x0 + 0.5`, `z1 = x1 exp(ls1) + 2h`,
/// `h = ELU(x0)`, `ls1 = soft_clip(h)`. Under `do(x0 = a)` with `z1` held,
/// `x1' = (z1 - 2 ELU(a)) / exp(soft_clip(ELU(a)))`.
#[test]
fn do_on_a_cause_moves_its_effect_through_the_learned_mechanism() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![f32::NAN; b.scratch_len()];
    for (x, a) in [
        ([1.0f64, 3.0], -1.0f64),
        ([-1.0, 0.25], 1.0),
        ([0.0, -2.0], 0.7),
    ] {
        let h = elu(x[0]);
        let z1 = x[1] * soft_clip(h).exp() + 2.0 * h;
        let ha = elu(a);
        let want = (z1 - 2.0 * ha) / soft_clip(ha).exp();
        let mut out = [0.0f32; 2];
        let xs = [x[0] as f32, x[1] as f32];
        b.intervene(&xs, set(&[0]), &[a as f32, 99.0], &mut out, &mut s)
            .unwrap();
        assert_eq!(out[0], a as f32, "the intervened value is exact");
        assert!(
            (f64::from(out[1]) - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{x:?}, do(x0 = {a}): {} vs hand {want}",
            out[1]
        );
    }
}

#[test]
fn do_on_an_effect_leaves_its_cause_alone_and_do_on_nothing_changes_nothing() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let x = [0.75f32, -1.5];
    let mut out = [0.0f32; 2];
    b.intervene(&x, set(&[1]), &[5.0, 2.5], &mut out, &mut s)
        .unwrap();
    assert_eq!(out, [0.75, 2.5]);
    b.intervene(&x, FeatureSet::EMPTY, &[5.0, 2.5], &mut out, &mut s)
        .unwrap();
    assert_eq!(out, x, "no intervention: the person, bit for bit");
    b.intervene(&x, set(&[0, 1]), &[-0.25, 4.0], &mut out, &mut s)
        .unwrap();
    assert_eq!(out, [-0.25, 4.0]);
}

#[test]
fn intervene_refuses_bad_arguments() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut out = [0.0f32; 2];
    assert_eq!(
        b.intervene(&[0.0, 0.0], set(&[0]), &[f32::NAN, 0.0], &mut out, &mut s),
        Err(Error::Input(InputError::NotFinite { index: 0 }))
    );
    // A NaN outside the intervened set is not read.
    assert!(
        b.intervene(&[0.0, 0.0], set(&[0]), &[1.0, f32::NAN], &mut out, &mut s)
            .is_ok()
    );
    assert_eq!(
        b.intervene(&[0.0, 0.0], set(&[2]), &[0.0, 0.0], &mut out, &mut s),
        Err(Error::Input(InputError::UnknownFeature { index: 2 }))
    );
    assert!(matches!(
        b.intervene(&[0.0, 0.0], set(&[0]), &[0.0], &mut out, &mut s),
        Err(Error::Input(InputError::Length { .. }))
    ));
}

/// On random models (one and two flow layers, up to 12 features): the
/// intervened features take their values exactly, every other feature keeps
/// its latent (abducting the counterfactual gives back the person's latent),
/// and features that descend from no intervened feature keep their value bit
/// for bit.
#[test]
fn do_holds_the_latents_of_every_feature_not_intervened_on() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut checked = [0usize; 2];
    for seed in 0..60 {
        let shape = Shape::random(&mut rng);
        let spec = random_spec(seed, &shape);
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        for _ in 0..8 {
            let x_raw = random_input(&mut rng, &spec);
            let mut x = vec![0.0; d];
            b.standardize(&x_raw, &mut x).unwrap();
            let chosen = FeatureSet::from_bits(rng.random::<u64>() & FeatureSet::first(d).bits());
            let values: Vec<f32> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut out = vec![0.0; d];
            b.intervene(&x, chosen, &values, &mut out, &mut s).unwrap();
            let (mut z, mut z_cf) = (vec![0.0; d], vec![0.0; d]);
            b.abduct(&x, &mut z, &mut s).unwrap();
            b.abduct(&out, &mut z_cf, &mut s).unwrap();
            for i in 0..d {
                if chosen.contains(i) {
                    assert_eq!(out[i], values[i], "seed {seed}: feature {i} is set");
                } else {
                    let tol = 2e-3 * (1.0 + z[i].abs());
                    assert!(
                        (z[i] - z_cf[i]).abs() <= tol,
                        "seed {seed}, {} layers: latent {i} moved {} -> {}",
                        shape.flow_layers,
                        z[i],
                        z_cf[i]
                    );
                }
            }
            // A feature none of whose ancestors (itself included) is intervened on is exact.
            let mut reached = chosen;
            for &k in spec.order.iter() {
                let k = usize::from(k);
                if (0..d).any(|p| spec.parents[k * d + p] == 1 && reached.contains(p)) {
                    reached.insert(k);
                }
            }
            for i in (0..d).filter(|&i| !reached.contains(i)) {
                assert_eq!(out[i], x[i], "seed {seed}: unreached feature {i} exact");
            }
            checked[shape.flow_layers - 1] += 1;
        }
    }
    assert!(checked[0] > 50 && checked[1] > 50, "{checked:?}");
}

fn refine(min_prob: f32, slack: f32) -> Options<'static> {
    Options {
        forbid: FeatureSet::EMPTY,
        refine: Some(Refine {
            min_prob,
            steps: 6,
            slack,
        }),
        limits: carma_core::Limits::NONE,
    }
}

/// On random models: for a proposal that reaches the margin, refinement
/// never raises the cost, never loses the margin, only drops features and
/// only shrinks changes toward the person. A proposal short of the margin is
/// either left as it is or extended along its own direction (at most
/// `MAX_EXTEND` times each change) until it reaches the margin.
#[test]
fn refinement_never_raises_the_cost_nor_loses_acceptance() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut refined, mut below, mut dropped) = (0, 0, 0);
    for seed in 0..80 {
        let spec = random_spec(seed, &Shape::random(&mut rng));
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        for _ in 0..10 {
            let x = random_input(&mut rng, &spec);
            let (mut raw_cf, mut cf) = (vec![0.0; d], vec![0.0; d]);
            let raw = b
                .recommend(&x, FeatureSet::EMPTY, &mut raw_cf, &mut s)
                .unwrap();
            let min_prob = [0.5, 0.6, 0.8][rng.random_range(0..3)];
            let slack = [0.0, 0.1][rng.random_range(0..2)];
            let r = b
                .recommend_with(&x, &refine(min_prob, slack), &mut cf, &mut s)
                .unwrap();
            assert_eq!(r.cost_unrefined, raw.cost);
            if !r.refined {
                assert_eq!((r, cf.clone()), (raw_with(&raw), raw_cf.clone()));
                assert!(raw.already_accepted || raw.prob_after < min_prob || raw.mask.is_empty());
                below += usize::from(!raw.already_accepted);
                continue;
            }
            let extended = raw.prob_after < min_prob;
            if !extended {
                assert!(r.cost <= raw.cost, "seed {seed}: {} > {}", r.cost, raw.cost);
            }
            assert!(r.prob_after >= min_prob && r.accepted);
            assert_eq!(r.mask.difference(raw.mask), FeatureSet::EMPTY);
            let bound = if extended { MAX_EXTEND } else { 1.0 };
            for k in r.mask.iter() {
                let (to, full) = ((cf[k] - x[k]).abs(), (raw_cf[k] - x[k]).abs());
                assert!(
                    to <= bound * full * (1.0 + 1e-4) + 1e-5,
                    "seed {seed}: {k} grew"
                );
                assert!((cf[k] - x[k]) * (raw_cf[k] - x[k]) >= 0.0, "same direction");
            }
            refined += usize::from(r.refined);
            dropped += raw.mask.len() - r.mask.len();
        }
    }
    assert!(
        refined > 20 && below > 10 && dropped > 10,
        "{refined} {below} {dropped}"
    );
}

fn raw_with(r: &carma_core::Recommendation) -> carma_core::Recommendation {
    *r
}

#[test]
fn refinement_is_deterministic_whatever_the_scratch_held() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for seed in 0..30 {
        let spec = random_spec(seed, &Shape::random(&mut rng));
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut clean = vec![0.0; b.scratch_len()];
        let mut dirty = vec![f32::NAN; b.scratch_len() + 5];
        for _ in 0..5 {
            let x = random_input(&mut rng, &spec);
            let (mut a, mut c) = (vec![0.0; d], vec![0.0; d]);
            let ra = b
                .recommend_with(
                    &x,
                    &Options::new(FeatureSet::EMPTY, Some(Refine::DEFAULT)),
                    &mut a,
                    &mut clean,
                )
                .unwrap();
            let rc = b
                .recommend_with(
                    &x,
                    &Options::new(FeatureSet::EMPTY, Some(Refine::DEFAULT)),
                    &mut c,
                    &mut dirty,
                )
                .unwrap();
            assert_eq!(ra, rc);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn a_minimum_probability_outside_half_to_one_is_refused() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut out = [0.0f32; 2];
    for bad in [0.4, 1.5, f32::NAN] {
        assert_eq!(
            b.recommend_with(&[0.0, 2.0], &refine(bad, 0.0), &mut out, &mut s),
            Err(Error::Input(InputError::BadRefine))
        );
    }
}

/// Refinement of the hand model's proposal, worked out by hand. For
/// `x = (0, 2)` (`x~ = (-1, 0)`, `p = sigmoid(-0.5)`), CARMA selects both
/// features (`z1 = 2 ELU(-1) < 0`) and shifts `z0` by -4 (clamped) and `z1`
/// by 4: `x~cf = (-5, x~1')`. Under `do(x~1 = v)` alone the classifier is
/// `sigmoid(v - 0.5)`. x0 is binary: its proposal `x~0 = -5` is `-2` in
/// original units, which rounds to 0, the person's own value, so it leaves
/// the mask before refinement; the refinement then shrinks x1's change to the smallest fraction (of 6
/// bisection steps) with `p >= 0.6`, i.e. `v >= 0.5 + logit(0.6) = 0.905`.
#[test]
fn refinement_of_the_hand_model_matches_the_hand_solution() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let (mut raw_cf, mut cf) = ([0.0f32; 2], [0.0f32; 2]);
    let x = [0.0f32, 2.0];
    let raw = b
        .recommend(&x, FeatureSet::EMPTY, &mut raw_cf, &mut s)
        .unwrap();
    assert_eq!(raw.mask, set(&[0, 1]));
    let r = b
        .recommend_with(&x, &refine(0.6, 0.0), &mut cf, &mut s)
        .unwrap();
    assert!(r.refined);
    assert_eq!(r.mask, set(&[1]), "x0 rounds to no change");
    assert!(
        r.cost_unrefined < raw.cost,
        "the rounded proposal drops x0's cost"
    );
    assert_eq!(cf[0], x[0], "x0 left as it is");
    // x~1 after refinement: the first of 0, 1/2, ..., 1/64 fractions of the change that
    // reaches v >= 0.905; in original units 2 + 0.5 v.
    let target = 0.5 + (0.6f64 / 0.4).ln();
    let full = (f64::from(raw_cf[1]) - 2.0) / 0.5;
    let v = (f64::from(cf[1]) - 2.0) / 0.5;
    assert!(v >= target - 1e-5, "{v} reaches {target}");
    assert!(
        v - target <= full / 64.0 + 1e-5,
        "{v} within one step of {target} (full {full})"
    );
    let p = 1.0 / (1.0 + (-(v - 0.5)).exp());
    assert!((f64::from(r.prob_after) - p).abs() < 1e-5);
    // cost: weight 2, range 4, over 2 actionable features.
    let cost = 2.0 * v * v / 4.0 / 2.0;
    assert!(
        (f64::from(r.cost) - cost).abs() < 1e-5,
        "{} vs {cost}",
        r.cost
    );
    assert!(r.cost < raw.cost);
}

/// On random models whose binary roots are actionable, with and without
/// refinement: an intervened binary feature comes back exactly 0 or 1 and
/// different from the person's value (a proposal that rounds to the
/// person's value is no change and leaves the mask), and the probability
/// and the cost are those of the hard intervention at that exact value
/// (recomputed independently with `intervene`, `classify` and `cost`).
#[test]
fn binary_actionable_features_get_exactly_0_or_1_and_are_costed_there() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (mut flipped, mut rounded_away, mut checked) = (0usize, 0usize, 0usize);
    for seed in 0..80 {
        let spec = common::with_binary_actionable(random_spec(seed, &Shape::random(&mut rng)));
        if !spec.binary.contains(&1) {
            continue;
        }
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        for i in 0..12 {
            let x = random_input(&mut rng, &spec);
            let options = if i % 2 == 0 {
                refine(0.7, 0.15)
            } else {
                Options::new(FeatureSet::EMPTY, None)
            };
            let (mut raw_cf, mut cf) = (vec![0.0; d], vec![0.0; d]);
            let raw = b
                .recommend(&x, FeatureSet::EMPTY, &mut raw_cf, &mut s)
                .unwrap();
            let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
            if r.already_accepted {
                continue;
            }
            for k in (0..d).filter(|&k| spec.binary[k] == 1) {
                assert!(cf[k] == 0.0 || cf[k] == 1.0, "seed {seed}: {k} = {}", cf[k]);
                if r.mask.contains(k) {
                    assert_ne!(cf[k], x[k], "seed {seed}: a kept binary change flips");
                    flipped += 1;
                } else {
                    assert_eq!(cf[k], x[k], "seed {seed}: a root not intervened on stays");
                    if raw.mask.contains(k) && options.refine.is_none() {
                        rounded_away += 1;
                    }
                }
            }
            // Recompute the counterfactual at the returned values.
            let (mut x_std, mut values, mut out) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
            b.standardize(&x, &mut x_std).unwrap();
            b.standardize(&cf, &mut values).unwrap();
            b.intervene(&x_std, r.mask, &values, &mut out, &mut s)
                .unwrap();
            let p = b.classify(&out, &mut s).unwrap();
            let c = b.cost(&x_std, &out, r.mask).unwrap();
            assert!(
                (p - r.prob_after).abs() <= 1e-3,
                "seed {seed}: p {p} vs {}",
                r.prob_after
            );
            assert!(
                (c - r.cost).abs() <= 1e-3 * (1.0 + c),
                "seed {seed}: cost {c} vs {}",
                r.cost
            );
            if options.refine.is_none() {
                assert_eq!(r.cost_unrefined, r.cost);
            }
            checked += 1;
        }
    }
    assert!(
        flipped > 20 && rounded_away > 5 && checked > 100,
        "{flipped} {rounded_away} {checked}"
    );
}

/// The hand model's binary `x0` (mean 0.5, std 0.5): for `x = (1, 1)`
/// (`x~ = (1, -2)`), CARMA selects both features and shifts `z0` by -4:
/// `x~0 = -3`, `x0 = -1` in original units, which rounds to 0. So the
/// recommendation sets `x0` to exactly 0 (`x~0 = -1`) and `x1` follows
/// through the flow from that value.
#[test]
fn the_hand_models_binary_proposal_is_rounded_and_applied_exactly() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let x = [1.0f32, 1.0];
    let (mut raw_cf, mut cf) = ([0.0f32; 2], [0.0f32; 2]);
    let raw = b
        .recommend(&x, FeatureSet::EMPTY, &mut raw_cf, &mut s)
        .unwrap();
    assert_eq!(raw.mask, set(&[0, 1]));
    assert_eq!(raw_cf[0], -1.0, "recommend() keeps the networks' value");
    let opts = Options::new(FeatureSet::EMPTY, None);
    let r = b.recommend_with(&x, &opts, &mut cf, &mut s).unwrap();
    assert_eq!(r.mask, set(&[0, 1]));
    assert_eq!(cf[0], 0.0);
    // do(x~0 = -1, x~1 = the proposal's value): x1 is set, so only x0's
    // cost changes: weight 1, range 2, (1 - (-1))^2 = 4 -> 2, over 2 features.
    let (mut x_std, mut cf_std) = ([0.0f32; 2], [0.0f32; 2]);
    b.standardize(&x, &mut x_std).unwrap();
    b.standardize(&cf, &mut cf_std).unwrap();
    assert_eq!(cf_std[0], -1.0);
    let x1_part = 2.0 * (x_std[1] - cf_std[1]).powi(2) / 4.0 / 2.0;
    assert!((r.cost - (1.0 + x1_part)).abs() < 1e-5, "{}", r.cost);
    let p = 1.0 / (1.0 + (-(cf_std[1] - 0.5)).exp());
    assert!((r.prob_after - p).abs() < 1e-5);
}
