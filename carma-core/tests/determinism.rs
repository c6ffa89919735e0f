//! The same inputs give bit-identical outputs, whatever the scratch held
//! before and whichever decoded copy of the bundle runs them.

mod common;

use carma_core::{Bundle, FeatureSet, Recommendation};
use common::{Shape, random_input, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn bits(r: &Recommendation, x_cf: &[f32]) -> Vec<u64> {
    let mut v = vec![
        r.mask.bits(),
        r.prob_before.to_bits() as u64,
        r.prob_after.to_bits() as u64,
        r.cost.to_bits() as u64,
        u64::from(r.accepted) | u64::from(r.already_accepted) << 1,
    ];
    v.extend(x_cf.iter().map(|x| x.to_bits() as u64));
    v
}

#[test]
fn recommend_twice_gives_bit_identical_results() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut rejected = 0;
    for seed in 0..40 {
        let spec = random_spec(seed, &Shape::random(&mut rng));
        let bytes = spec.to_bytes();
        let copy = bytes.clone();
        let (a, b) = (Bundle::new(&bytes).unwrap(), Bundle::new(&copy).unwrap());
        let d = a.n_features();
        let mut clean = vec![0.0; a.scratch_len()];
        let mut dirty = vec![f32::NAN; a.scratch_len() + 3];
        for _ in 0..10 {
            let x = random_input(&mut rng, &spec);
            let forbid = FeatureSet::from_bits(rng.random::<u64>() & FeatureSet::first(d).bits());
            let (mut out1, mut out2) = (vec![0.0; d], vec![0.0; d]);
            let r1 = a.recommend(&x, forbid, &mut out1, &mut clean).unwrap();
            let r2 = b.recommend(&x, forbid, &mut out2, &mut dirty).unwrap();
            assert_eq!(bits(&r1, &out1), bits(&r2, &out2), "seed {seed}");
            rejected += usize::from(!r1.already_accepted);
            dirty.iter_mut().for_each(|v| *v = f32::INFINITY);

            let (mut z1, mut z2) = (vec![0.0; d], vec![0.0; d]);
            let mut x_std = vec![0.0; d];
            a.standardize(&x, &mut x_std).unwrap();
            a.abduct(&x_std, &mut z1, &mut clean).unwrap();
            b.abduct(&x_std, &mut z2, &mut dirty).unwrap();
            assert!(z1.iter().zip(&z2).all(|(p, q)| p.to_bits() == q.to_bits()));
            let l1 = a.log_likelihood(&x_std, &mut clean).unwrap();
            let l2 = b.log_likelihood(&x_std, &mut dirty).unwrap();
            assert_eq!(l1.to_bits(), l2.to_bits());
        }
    }
    assert!(
        rejected > 50,
        "too few rejected individuals exercised: {rejected}"
    );
}
