//! `Bundle::recommend_alternatives`: further recommendations for the same
//! person, each changing a different set of features (issue 13, part 4).

mod common;

use carma_core::{Bundle, FeatureSet, Options, Refine};
use common::{Shape, random_input, random_spec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// On random models: the first answer is `recommend_with`'s, bit for bit;
/// every alternative is accepted, changes a set of features no earlier
/// answer changes, leaves every feature outside its set at the value the
/// causal model gives it (the roots exactly) and is at least as costly as
/// the one before it; the call is deterministic.
#[test]
fn alternatives_differ_in_their_feature_sets_and_each_is_accepted() {
    const K: usize = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let (mut people, mut with_alternatives, mut alternatives) = (0usize, 0usize, 0usize);
    for seed in 0..60 {
        let spec = common::with_binary_actionable(random_spec(seed, &Shape::random(&mut rng)));
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        let mut s = vec![f32::NAN; b.scratch_len()];
        let options = Options::new(FeatureSet::EMPTY, Some(Refine::DEFAULT));
        for _ in 0..10 {
            let x = random_input(&mut rng, &spec);
            let (mut rows, mut again) = (vec![0.0; K * d], vec![0.0; K * d]);
            let (mut recs, mut recs2) = ([None; K], [None; K]);
            let n = b
                .recommend_alternatives(&x, &options, &mut rows, &mut recs, &mut s)
                .unwrap();
            let n2 = b
                .recommend_alternatives(&x, &options, &mut again, &mut recs2, &mut s)
                .unwrap();
            assert_eq!((n, recs), (n2, recs2));
            assert_eq!(rows[..n * d], again[..n * d]);
            people += 1;
            assert!(n >= 1 && recs[n..].iter().all(Option::is_none));
            let mut cf = vec![0.0; d];
            let first = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
            assert_eq!(recs[0], Some(first));
            assert_eq!(rows[..d], cf[..]);
            if n > 1 {
                with_alternatives += 1;
            }
            for i in 1..n {
                let r = recs[i].unwrap();
                alternatives += 1;
                assert!(r.accepted && !r.mask.is_empty(), "seed {seed}");
                for j in 0..i {
                    assert_ne!(recs[j].unwrap().mask, r.mask, "seed {seed}: {j} and {i}");
                }
                if i >= 2 {
                    assert!(
                        recs[i - 1].unwrap().cost <= r.cost,
                        "seed {seed}: ordered by cost"
                    );
                }
                let row = &rows[i * d..(i + 1) * d];
                for k in 0..d {
                    let root = (0..d).all(|p| spec.parents[k * d + p] == 0);
                    if r.mask.contains(k) {
                        assert_ne!(row[k], x[k], "seed {seed}: an action is a change");
                    } else if root {
                        assert_eq!(row[k], x[k], "seed {seed}: root {k} left alone");
                    }
                }
            }
        }
    }
    assert!(
        people == 600 && with_alternatives > 20 && alternatives > 40,
        "{people} {with_alternatives} {alternatives}"
    );
}

#[test]
fn no_slots_no_answers_and_a_wrong_output_length_is_refused() {
    let bytes = common::hand_spec().to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let options = Options::new(FeatureSet::EMPTY, None);
    let mut recs: [Option<carma_core::Recommendation>; 0] = [];
    assert_eq!(
        b.recommend_alternatives(&[0.0, 2.0], &options, &mut [], &mut recs, &mut s),
        Ok(0)
    );
    let mut recs = [None; 2];
    assert!(
        b.recommend_alternatives(&[0.0, 2.0], &options, &mut [0.0; 3], &mut recs, &mut s)
            .is_err()
    );
    // The hand model: x1 alone works, x0 (binary) rounds to no change, so
    // forbidding x1 leaves nothing: one answer.
    let mut rows = [0.0f32; 4];
    let n = b
        .recommend_alternatives(&[0.0, 2.0], &options, &mut rows, &mut recs, &mut s)
        .unwrap();
    assert_eq!(n, 1);
    assert!(recs[0].unwrap().accepted && recs[1].is_none());
}
