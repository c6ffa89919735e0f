//! Proof that inference allocates nothing: a counting global allocator sees
//! zero allocations across 10,000 `recommend` calls (half of them refined,
//! each followed by a hard intervention) once the bundle is
//! decoded. Counting is per thread, so the test harness's own threads do not
//! interfere; this file holds one test on purpose.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use carma_core::{Bundle, FeatureSet};
use common::{Shape, random_input, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Calls to `recommend` the issue asks for.
const CALLS: usize = 10_000;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // try_with: the thread-local may be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn ten_thousand_recommendations_allocate_nothing() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let shape = Shape {
        d: 7,
        flow_layers: 2,
        flow_hidden: vec![16, 8],
    };
    let spec = random_spec(11, &shape);
    let bytes = spec.to_bytes();
    let inputs: Vec<Vec<f32>> = (0..CALLS).map(|_| random_input(&mut rng, &spec)).collect();
    let forbids: Vec<FeatureSet> = (0..CALLS)
        .map(|_| FeatureSet::from_bits(rng.random::<u64>() & 0b101_0000))
        .collect();
    // A model with integer and categorical features (format version 4).
    let grid_spec = common::with_grid(random_spec(12, &shape), &mut rng);
    let grid_bytes = grid_spec.to_bytes();
    let grid_inputs: Vec<Vec<f32>> = (0..CALLS / 10)
        .map(|_| common::grid_input(&mut rng, &grid_spec))
        .collect();
    let mut out = vec![0.0f32; shape.d];
    let mut checksum = 0.0f64;
    let mut rejected = 0usize;

    let before = allocations();
    let bundle = Bundle::new(&bytes).unwrap();
    let mut scratch = [0.0f32; 512];
    let scratch = &mut scratch[..bundle.scratch_len()];
    let values = [0.5f32; 7];
    let x_std = [0.25f32; 7];
    let (lo, hi) = ([-1.0f32; 7], [1.5f32; 7]);
    let mut alt_rows = [0.0f32; 21];
    let mut alternatives = 0usize;
    let mut refined = 0usize;
    for (k, (x, &forbid)) in inputs.iter().zip(&forbids).enumerate() {
        let rec = if k % 2 == 0 {
            bundle.recommend(x, forbid, &mut out, scratch).unwrap()
        } else {
            // Refinement, hard interventions and (every other time) per-request
            // limits, with max_changes: the same guarantee.
            let mut options = carma_core::Options::new(forbid, Some(carma_core::Refine::DEFAULT));
            if k % 4 == 1 {
                options.limits = carma_core::Limits {
                    min: &lo,
                    max: &hi,
                    increase: FeatureSet::from_bits(0b10),
                    decrease: FeatureSet::from_bits(0b1000),
                    max_changes: Some(2),
                };
            }
            let rec = bundle
                .recommend_with(x, &options, &mut out, scratch)
                .unwrap();
            refined += usize::from(rec.refined);
            if k % 8 == 3 {
                let mut recs = [None; 3];
                bundle
                    .recommend_alternatives(x, &options, &mut alt_rows, &mut recs, scratch)
                    .unwrap();
                alternatives += usize::from(recs[0].is_some());
            }
            bundle
                .intervene(&x_std, rec.mask, &values, &mut out, scratch)
                .unwrap();
            rec
        };
        rejected += usize::from(!rec.already_accepted);
        checksum += f64::from(rec.cost) + f64::from(out[0]);
    }
    let grid_bundle = Bundle::new(&grid_bytes).unwrap();
    assert!(!grid_bundle.grid().is_empty());
    let options = carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT));
    for x in &grid_inputs {
        let rec = grid_bundle
            .recommend_with(x, &options, &mut out, scratch)
            .unwrap();
        checksum += f64::from(rec.cost);
    }
    let during = allocations() - before;

    assert_eq!(
        during, 0,
        "{during} allocations in decode + {CALLS} recommend calls"
    );
    // The calls did real work: most individuals went through the whole pipeline.
    assert!(rejected > CALLS / 10, "{rejected} rejected");
    assert!(refined > 0, "refinement ran");
    assert!(alternatives > 0, "alternatives ran");
    assert!(checksum.is_finite());
    // The counter works: a Vec allocates.
    let v = vec![1u8; 3];
    assert!(allocations() > before, "{v:?}");
}
