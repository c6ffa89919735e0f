//! The flow on random causal graphs (up to 12 nodes, 1-2 layers, 1-2 hidden
//! layers): inversion undoes abduction, agrees with the reference's
//! fixed-point inverse, and the log-density is the change of variables.

mod common;

use carma_core::Bundle;
use carma_core::flow::soft_clip;
use common::{Shape, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Round-trip tolerance required by the issue.
const ROUND_TRIP_TOL: f32 = 1e-5;
const GRAPHS: u64 = 300;
const POINTS: usize = 20;

fn random_point(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
    (0..d).map(|_| rng.random_range(-2.5f32..2.5)).collect()
}

#[test]
fn inversion_undoes_abduction_on_random_graphs_up_to_12_nodes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut worst = 0.0f32;
    let mut sizes = [0usize; 13];
    for seed in 0..GRAPHS {
        let shape = Shape::random(&mut rng);
        sizes[shape.d] += 1;
        let bytes = random_spec(seed, &shape).to_bytes();
        let b = Bundle::new(&bytes).unwrap_or_else(|e| panic!("seed {seed} {shape:?}: {e}"));
        let mut s = vec![f32::NAN; b.scratch_len()];
        for _ in 0..POINTS {
            let x = random_point(&mut rng, shape.d);
            let mut z = vec![0.0; shape.d];
            let mut back = vec![0.0; shape.d];
            b.abduct(&x, &mut z, &mut s).unwrap();
            b.invert(&z, &mut back, &mut s).unwrap();
            for (a, c) in x.iter().zip(&back) {
                let err = (a - c).abs();
                worst = worst.max(err);
                assert!(
                    err <= ROUND_TRIP_TOL,
                    "seed {seed} {shape:?}: {x:?} -> {z:?} -> {back:?}"
                );
            }
        }
    }
    // Every size from 1 to 12 was exercised.
    assert!(sizes[1..].iter().all(|&n| n > 0), "{sizes:?}");
    eprintln!("worst round-trip error {worst:e}");
}

#[test]
fn inversion_equals_the_reference_fixed_point_iteration() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for seed in 0..60 {
        let shape = Shape::random(&mut rng);
        let bytes = random_spec(1000 + seed, &shape).to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let mut s = vec![0.0; b.scratch_len()];
        for _ in 0..5 {
            let z = random_point(&mut rng, shape.d);
            let mut x = vec![0.0; shape.d];
            b.invert(&z, &mut x, &mut s).unwrap();
            let mut reference = z.clone();
            let mut work = vec![0.0; shape.d + b.flow().layer(0).unwrap().scratch_len()];
            common::fixed_point_invert(&b, &mut reference, &mut work);
            // Same operations on the same final values: equal, not just close.
            assert_eq!(x, reference, "seed {seed} {shape:?}");
        }
    }
}

#[test]
fn log_likelihood_is_the_change_of_variables() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for seed in 0..60 {
        let shape = Shape::random(&mut rng);
        let bytes = random_spec(2000 + seed, &shape).to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let mut s = vec![0.0; b.scratch_len()];
        let x = random_point(&mut rng, shape.d);
        // Independently, in f64 from the hyper-network outputs.
        let mut v: Vec<f64> = x.iter().map(|&a| a as f64).collect();
        let mut log_det = 0.0f64;
        let mut buf = vec![0.0; 1024];
        for l in 0..b.flow().n_layers() {
            let input: Vec<f32> = v.iter().map(|&a| a as f32).collect();
            let o = b
                .flow()
                .layer(l)
                .unwrap()
                .forward(&input, &mut buf)
                .unwrap()
                .to_vec();
            for i in 0..shape.d {
                let ls = soft_clip(o[2 * i + 1]) as f64;
                v[i] = v[i] * ls.exp() + o[2 * i] as f64;
                log_det += ls;
            }
        }
        let half_ln_2pi = (2.0 * std::f64::consts::PI).ln() / 2.0;
        let want: f64 = v.iter().map(|z| -z * z / 2.0 - half_ln_2pi).sum::<f64>() + log_det;
        let got = b.log_likelihood(&x, &mut s).unwrap() as f64;
        assert!(
            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "seed {seed}: {got} vs {want}"
        );
        let mut z = vec![0.0; shape.d];
        b.abduct(&x, &mut z, &mut s).unwrap();
        for (a, c) in z.iter().zip(&v) {
            assert!(((*a as f64) - c).abs() <= 1e-4 * (1.0 + c.abs()));
        }
    }
}
