//! `recommend` moves exactly the intervened features and their descendants:
//! every other feature comes back bit-for-bit as it went in, on random
//! graphs with stacked flow layers.

mod common;

use carma_core::{Bundle, FeatureSet};
use common::{Shape, random_input, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Intervened features and everything downstream of them in the graph.
fn reachable(spec: &common::Spec, mask: FeatureSet) -> FeatureSet {
    let d = spec.d();
    let mut set = mask;
    for &i in &spec.order {
        let i = usize::from(i);
        if (0..d).any(|j| spec.parents[i * d + j] == 1 && set.contains(j)) {
            set.insert(i);
        }
    }
    set
}

#[test]
fn features_the_intervention_cannot_reach_are_returned_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (mut exact, mut moved) = (0, 0);
    for seed in 0..80 {
        let spec = random_spec(seed, &Shape::random(&mut rng));
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        for _ in 0..10 {
            let x = random_input(&mut rng, &spec);
            let forbid = FeatureSet::from_bits(rng.random::<u64>() & FeatureSet::first(d).bits());
            let mut x_cf = vec![0.0; d];
            let rec = b.recommend(&x, forbid, &mut x_cf, &mut s).unwrap();
            assert!(rec.mask.difference(b.actionable()).is_empty());
            assert!(rec.mask.intersection(forbid).is_empty());
            let reach = reachable(&spec, rec.mask);
            for i in 0..d {
                if !reach.contains(i) {
                    assert_eq!(
                        x_cf[i].to_bits(),
                        x[i].to_bits(),
                        "seed {seed}, feature {i}"
                    );
                    exact += 1;
                } else if x_cf[i] != x[i] {
                    moved += 1;
                }
            }
            if rec.already_accepted {
                assert_eq!(x_cf, x);
            }
        }
    }
    assert!(exact > 100 && moved > 100, "exact {exact}, moved {moved}");
}
