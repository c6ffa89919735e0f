//! Personal limits on the seven trained golden models (issue 13): on 10,000
//! random individuals across the datasets, with random per-request bounds,
//! directions and a maximum number of changes, every recommended value stays
//! within the bundle's and the request's bounds, never moves against a
//! direction, at most `max_changes` features change, and the status agrees
//! with the outcome.

use std::path::PathBuf;

use carma_core::{Bundle, FeatureSet, Limits, Options, Refine, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DATASETS: [&str; 7] = [
    "triangle-lin",
    "triangle-nlin",
    "collider-lin",
    "collider-nlin",
    "chain-lin",
    "chain-nlin",
    "loan",
];

fn bundle_bytes(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/golden/{name}.carma"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn limits_hold_on_10000_random_individuals_of_the_golden_models() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (mut people, mut changed, mut bound, mut reduced) = (0usize, 0usize, 0usize, 0usize);
    for (t, name) in DATASETS.iter().enumerate() {
        let bytes = bundle_bytes(name);
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![0.0; b.scratch_len()];
        let mut cf = vec![0.0; d];
        let n = if t == DATASETS.len() - 1 {
            10_000 - people
        } else {
            1_400
        };
        for i in 0..n {
            // Inputs over the bundle's bounds and a little beyond.
            let x: Vec<f32> = (0..d)
                .map(|k| {
                    let (lo, hi) = b.bounds(k).unwrap();
                    if b.is_binary(k) {
                        f32::from(u8::from(rng.random_bool(0.5)))
                    } else {
                        let w = hi - lo;
                        rng.random_range(lo - 0.05 * w..hi + 0.05 * w)
                    }
                })
                .collect();
            let (mut min, mut max) = (vec![f32::NEG_INFINITY; d], vec![f32::INFINITY; d]);
            let (mut inc, mut dec) = (FeatureSet::EMPTY, FeatureSet::EMPTY);
            for k in 0..d {
                let (lo, hi) = b.bounds(k).unwrap();
                let w = hi - lo;
                if rng.random_bool(0.4) {
                    min[k] = x[k] - rng.random_range(0.0..0.3) * w;
                }
                if rng.random_bool(0.4) {
                    max[k] = x[k] + rng.random_range(0.0..0.3) * w;
                }
                match rng.random_range(0..5) {
                    0 => {
                        inc.insert(k);
                    }
                    1 => {
                        dec.insert(k);
                    }
                    _ => {}
                }
            }
            let max_changes = [None, Some(1), Some(2)][rng.random_range(0..3)];
            let options = Options {
                forbid: FeatureSet::EMPTY,
                refine: (i % 2 == 0).then_some(Refine::DEFAULT),
                limits: Limits {
                    min: &min,
                    max: &max,
                    increase: inc,
                    decrease: dec,
                    max_changes,
                },
            };
            let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
            people += 1;
            match r.status {
                Status::AlreadyAccepted => assert!(r.mask.is_empty()),
                Status::Recommended => assert!(r.accepted),
                Status::NoneWithinLimits | Status::NotReached => assert!(!r.accepted),
            }
            if let Some(m) = max_changes {
                assert!(r.mask.len() <= usize::from(m), "{name}");
                reduced += usize::from(r.max_changes_bound);
            }
            bound += usize::from(!r.bound_by_limit.is_empty());
            for k in r.mask.iter() {
                changed += 1;
                let (lo, hi) = b.bounds(k).unwrap();
                let v = cf[k];
                assert!(
                    lo <= v && v <= hi,
                    "{name}: {k} = {v} outside the bundle's [{lo}, {hi}]"
                );
                assert!(
                    min[k] <= v && v <= max[k],
                    "{name}: {k} = {v} outside the request's"
                );
                if inc.contains(k) {
                    assert!(v >= x[k], "{name}: {k} lowered");
                }
                if dec.contains(k) {
                    assert!(v <= x[k], "{name}: {k} raised");
                }
                if b.is_binary(k) {
                    assert!(v == 0.0 || v == 1.0);
                }
            }
        }
    }
    assert_eq!(people, 10_000);
    assert!(
        changed > 3_000 && bound > 1_000 && reduced > 300,
        "{changed} {bound} {reduced}"
    );
}
