//! Per-request limits on a recommendation (issue 13, part 2): bounds,
//! directions and the maximum number of changed features, and the status
//! that says when no recommendation fits them.

mod common;

use carma_core::error::{Argument, InputError};
use carma_core::{Bundle, Error, FeatureSet, Limits, Options, Refine, Status};
use common::{Shape, random_input, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn set(items: &[usize]) -> FeatureSet {
    items.iter().copied().collect()
}

/// Random per-request limits for the person `x`: each actionable feature
/// gets, at random, a bound below and above (usually around `x`, sometimes
/// excluding it) and a direction.
fn random_limits(
    rng: &mut ChaCha8Rng,
    spec: &common::Spec,
    x: &[f32],
) -> (Vec<f32>, Vec<f32>, FeatureSet, FeatureSet) {
    let d = spec.d();
    let (mut lo, mut hi) = (vec![f32::NEG_INFINITY; d], vec![f32::INFINITY; d]);
    let (mut inc, mut dec) = (FeatureSet::EMPTY, FeatureSet::EMPTY);
    for k in 0..d {
        let s = spec.std[k];
        if rng.random_bool(0.6) {
            lo[k] = x[k] - s * rng.random_range(-0.3f32..1.0);
        }
        if rng.random_bool(0.6) {
            hi[k] = x[k] + s * rng.random_range(-0.3f32..1.0);
        }
        if lo[k] > hi[k] {
            std::mem::swap(&mut lo[k], &mut hi[k]);
        }
        match rng.random_range(0..4) {
            0 => {
                inc.insert(k);
            }
            1 => {
                dec.insert(k);
            }
            _ => {}
        }
    }
    (lo, hi, inc, dec)
}

/// On 10,000 random individuals of random models (one and two flow layers,
/// binary roots actionable), with and without refinement: every intervened
/// feature stays within the request's bounds and never moves against its
/// direction, a binary one is exactly 0 or 1, and the status agrees with
/// the outcome.
#[test]
fn bounds_and_directions_hold_on_10000_random_individuals() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let (mut people, mut clipped, mut changed, mut within) = (0usize, 0usize, 0usize, 0usize);
    let mut seed = 0u64;
    while people < 10_000 {
        let spec = common::with_binary_actionable(random_spec(seed, &Shape::random(&mut rng)));
        seed += 1;
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        let mut cf = vec![0.0; d];
        for i in 0..125 {
            let x = random_input(&mut rng, &spec);
            let (lo, hi, inc, dec) = random_limits(&mut rng, &spec, &x);
            let refine = if i % 2 == 0 {
                Some(Refine::DEFAULT)
            } else {
                None
            };
            let options = Options {
                forbid: FeatureSet::EMPTY,
                refine,
                limits: Limits {
                    min: &lo,
                    max: &hi,
                    increase: inc,
                    decrease: dec,
                    max_changes: None,
                },
            };
            let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
            people += 1;
            match r.status {
                Status::AlreadyAccepted => {
                    assert!(r.already_accepted && r.mask.is_empty());
                    continue;
                }
                Status::Recommended => assert!(r.accepted),
                Status::NoneWithinLimits | Status::NotReached => assert!(!r.accepted),
            }
            assert!(r.mask.difference(b.actionable()).is_empty());
            for k in r.mask.iter() {
                changed += 1;
                if spec.binary[k] == 1 {
                    assert!(cf[k] == 0.0 || cf[k] == 1.0);
                }
                assert!(
                    lo[k] <= cf[k] && cf[k] <= hi[k],
                    "seed {seed}: feature {k} = {} outside [{}, {}]",
                    cf[k],
                    lo[k],
                    hi[k]
                );
                if inc.contains(k) {
                    assert!(cf[k] >= x[k], "seed {seed}: {k} lowered");
                }
                if dec.contains(k) {
                    assert!(cf[k] <= x[k], "seed {seed}: {k} raised");
                }
                assert_ne!(cf[k], x[k], "an intervention is a change");
                if cf[k] == lo[k] || cf[k] == hi[k] {
                    within += 1;
                }
            }
            clipped += usize::from(!r.bound_by_limit.is_empty());
        }
    }
    assert!(
        clipped > 1000 && changed > 2000 && within > 100,
        "{clipped} {changed} {within}"
    );
}

/// At most `max_changes` features change; when the networks wanted more,
/// the result says so, and an unreachable case has the "none within
/// limits" status.
#[test]
fn max_changes_holds_and_says_when_it_binds() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let (mut bound, mut accepted_bound, mut none) = (0usize, 0usize, 0usize);
    for seed in 0..80 {
        let spec = common::with_binary_actionable(random_spec(seed, &Shape::random(&mut rng)));
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        let (mut cf, mut free_cf) = (vec![0.0; d], vec![0.0; d]);
        for i in 0..20 {
            let x = random_input(&mut rng, &spec);
            let refine = if i % 2 == 0 {
                Some(Refine::DEFAULT)
            } else {
                None
            };
            let free = b
                .recommend_with(
                    &x,
                    &Options::new(FeatureSet::EMPTY, refine),
                    &mut free_cf,
                    &mut s,
                )
                .unwrap();
            let n = rng.random_range(0..=2u8);
            let mut options = Options::new(FeatureSet::EMPTY, refine);
            options.limits.max_changes = Some(n);
            let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
            assert!(
                r.mask.len() <= usize::from(n),
                "seed {seed}: {:?} > {n}",
                r.mask
            );
            if free.already_accepted {
                assert_eq!(r.status, Status::AlreadyAccepted);
                continue;
            }
            if free.mask.len() <= usize::from(n) {
                assert_eq!(
                    r, free,
                    "seed {seed}: a limit that does not bind changes nothing"
                );
                assert_eq!(cf, free_cf);
                continue;
            }
            assert!(r.max_changes_bound, "seed {seed}");
            bound += 1;
            accepted_bound += usize::from(r.accepted);
            if !r.accepted {
                assert_eq!(r.status, Status::NoneWithinLimits);
                none += 1;
            }
            for k in (0..d).filter(|&k| !r.mask.contains(k) && b.is_actionable(k)) {
                // Not intervened on: changes only through its causes.
                if spec.parents[k * d..(k + 1) * d].iter().all(|&p| p == 0) {
                    assert_eq!(cf[k], x[k], "seed {seed}: root {k} left alone");
                }
            }
        }
    }
    assert!(
        bound > 50 && accepted_bound > 10 && none > 10,
        "{bound} {accepted_bound} {none}"
    );
}

/// The hand model (`common::hand_spec`), `x = (0, 2)`: the networks raise
/// `x1`. Decrease-only on `x1` with `x0` forbidden leaves nothing to do:
/// the person is returned unchanged with the "none within limits" status,
/// `x1` named as bound. An upper bound on `x1` clips the raise to it.
#[test]
fn the_hand_model_under_a_direction_and_a_bound() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let x = [0.0f32, 2.0];
    let mut cf = [0.0f32; 2];
    let mut options = Options::new(set(&[0]), None);
    options.limits.decrease = set(&[1]);
    let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
    assert_eq!(r.status, Status::NoneWithinLimits);
    assert_eq!(r.bound_by_limit, set(&[1]));
    assert!(r.mask.is_empty() && !r.accepted);
    assert_eq!(cf, x);
    assert_eq!((r.cost, r.prob_after), (0.0, r.prob_before));

    // x1 at most 2.5 (x~1 = 1): accepted, sigmoid(1 - 0.5) > 0.5.
    let max = [f32::INFINITY, 2.5];
    options.limits = Limits {
        max: &max,
        ..Limits::NONE
    };
    let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
    assert_eq!(r.status, Status::Recommended);
    assert_eq!(r.mask, set(&[1]));
    assert_eq!(cf[1], 2.5);
    assert_eq!(r.bound_by_limit, set(&[1]));
    let p = 1.0 / (1.0 + (-0.5f32).exp());
    assert!((r.prob_after - p).abs() < 1e-6);
    // Cost: weight 2, range 4, x~1 from 0 to 1, over 2 actionable features.
    assert!((r.cost - 0.25).abs() < 1e-6, "{}", r.cost);

    let r = b
        .recommend_with(&x, &Options::new(FeatureSet::EMPTY, None), &mut cf, &mut s)
        .unwrap();
    assert_eq!(r.status, Status::Recommended);
    assert!(r.bound_by_limit.is_empty() && !r.max_changes_bound);

    // A classifier that ignores every feature (sigmoid(-0.5)): nothing is
    // limited and nothing reaches acceptance.
    let mut spec = common::hand_spec();
    spec.classifier.params = common::wire_params(&[2, 1], &[0.0, 0.0, -0.5]);
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let r = b
        .recommend_with(&x, &Options::new(FeatureSet::EMPTY, None), &mut cf, &mut s)
        .unwrap();
    assert_eq!(r.status, Status::NotReached);
    assert!(!r.accepted && r.bound_by_limit.is_empty());
}

#[test]
fn contradictory_limits_are_refused() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let x = [0.0f32, 2.0];
    let mut cf = [0.0f32; 2];
    let nan = [0.0, f32::NAN];
    let (lo, hi) = ([0.0, 3.0], [1.0, 2.0]);
    let short = [0.0];
    let cases: [(Limits<'_>, Error); 4] = [
        (
            Limits {
                min: &nan,
                ..Limits::NONE
            },
            InputError::BadLimits { index: 1 }.into(),
        ),
        (
            Limits {
                min: &lo,
                max: &hi,
                ..Limits::NONE
            },
            InputError::BadLimits { index: 1 }.into(),
        ),
        (
            Limits {
                increase: set(&[0]),
                decrease: set(&[0, 1]),
                ..Limits::NONE
            },
            InputError::BadLimits { index: 0 }.into(),
        ),
        (
            Limits {
                max: &short,
                ..Limits::NONE
            },
            InputError::Length {
                argument: Argument::Limits,
                expected: 2,
                found: 1,
            }
            .into(),
        ),
    ];
    for (limits, want) in cases {
        let options = Options {
            forbid: FeatureSet::EMPTY,
            refine: None,
            limits,
        };
        assert_eq!(b.recommend_with(&x, &options, &mut cf, &mut s), Err(want));
    }
    let options = Options {
        limits: Limits {
            increase: set(&[5]),
            ..Limits::NONE
        },
        ..Options::new(FeatureSet::EMPTY, None)
    };
    assert_eq!(
        b.recommend_with(&x, &options, &mut cf, &mut s),
        Err(InputError::UnknownFeature { index: 5 }.into())
    );
}

/// The bundle's own bounds and directions (format version 3) hold without
/// any per-request limit, and inputs outside the bounds are flagged.
#[test]
fn bundle_bounds_and_directions_hold_and_out_of_range_inputs_are_flagged() {
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    let (mut people, mut flagged, mut changed) = (0usize, 0usize, 0usize);
    for seed in 0..80 {
        let mut spec = common::with_binary_actionable(random_spec(seed, &Shape::random(&mut rng)));
        let d = spec.d();
        for k in (0..d).filter(|&k| spec.binary[k] == 0) {
            spec.min[k] = spec.mean[k] - 1.5 * spec.std[k];
            spec.max[k] = spec.mean[k] + 1.5 * spec.std[k];
            spec.direction[k] = rng.random_range(0..3);
        }
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let mut s = vec![f32::NAN; b.scratch_len()];
        let mut cf = vec![0.0; d];
        for i in 0..30 {
            let x = random_input(&mut rng, &spec);
            let refine = if i % 2 == 0 {
                Some(Refine::DEFAULT)
            } else {
                None
            };
            let r = b
                .recommend_with(
                    &x,
                    &Options::new(FeatureSet::EMPTY, refine),
                    &mut cf,
                    &mut s,
                )
                .unwrap();
            people += 1;
            let outside: FeatureSet = (0..d)
                .filter(|&k| x[k] < spec.min[k] || x[k] > spec.max[k])
                .collect();
            assert_eq!(r.out_of_range, outside);
            assert_eq!(b.out_of_range(&x), outside);
            flagged += usize::from(!outside.is_empty());
            for k in r.mask.iter() {
                changed += 1;
                assert!(
                    spec.min[k] <= cf[k] && cf[k] <= spec.max[k],
                    "seed {seed}: {k}"
                );
                match spec.direction[k] {
                    1 => assert!(cf[k] > x[k], "seed {seed}: {k} must increase"),
                    2 => assert!(cf[k] < x[k], "seed {seed}: {k} must decrease"),
                    _ => {}
                }
            }
        }
    }
    assert!(
        people == 2400 && flagged > 300 && changed > 500,
        "{people} {flagged} {changed}"
    );
}
