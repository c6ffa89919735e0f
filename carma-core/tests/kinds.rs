//! Integer and categorical features (issue 13, part 2; format version 4):
//! every recommended value is on its grid, interventions and consequences
//! alike, the classifier is evaluated at those values, and a bundle that
//! says otherwise, or an input off its grid, is refused.

mod common;

use carma_core::error::{InputError, Section, ValidationError};
use carma_core::format::{FORMAT_VERSION, KIND_CATEGORICAL, KIND_INTEGER, OLDEST_FORMAT_VERSION};
use carma_core::{Bundle, Error, FeatureSet, Kind, Options, Refine, Status};
use common::{Grid, Shape, Spec, grid_input, random_spec, with_grid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn on_grid(b: &Bundle<'_>, k: usize, v: f32) -> bool {
    match b.kind(k) {
        Kind::Integer { step } => (v / step).round() * step == v,
        Kind::Categorical { levels } => v.fract() == 0.0 && v >= 0.0 && v < levels as f32,
        Kind::Binary => v == 0.0 || v == 1.0,
        Kind::Continuous => true,
    }
}

#[test]
fn recommendations_stay_on_the_grids_on_10000_random_individuals() {
    let mut rng = ChaCha8Rng::seed_from_u64(47);
    let (mut people, mut intervened, mut consequences, mut seed) = (0usize, 0usize, 0usize, 0u64);
    while people < 10_000 {
        let spec = with_grid(
            common::with_binary_actionable(random_spec(1000 + seed, &Shape::random(&mut rng))),
            &mut rng,
        );
        seed += 1;
        let bytes = spec.to_bytes();
        let b = Bundle::new(&bytes).unwrap();
        let d = b.n_features();
        if b.grid().is_empty() {
            continue;
        }
        let mut s = vec![f32::NAN; b.scratch_len()];
        let (mut cf, mut x_std) = (vec![0.0; d], vec![0.0; d]);
        for i in 0..100 {
            let x = grid_input(&mut rng, &spec);
            let refine = (i % 2 == 0).then_some(Refine::DEFAULT);
            let options = Options::new(FeatureSet::EMPTY, refine);
            let r = b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
            let mut raw_cf = vec![0.0; d];
            let raw = b
                .recommend_with(
                    &x,
                    &Options::new(FeatureSet::EMPTY, None),
                    &mut raw_cf,
                    &mut s,
                )
                .unwrap();
            people += 1;
            for k in b.grid().iter() {
                assert!(
                    on_grid(&b, k, cf[k]),
                    "model {seed} person {i}: feature {k} = {} off {:?}",
                    cf[k],
                    b.kind(k)
                );
                if r.mask.contains(k) {
                    intervened += 1;
                    let (lo, hi) = b.bounds(k).unwrap();
                    assert!(lo <= cf[k] && cf[k] <= hi);
                    assert_ne!(
                        cf[k], x[k],
                        "an intervention that changes nothing is no intervention"
                    );
                } else if cf[k] != x[k] {
                    consequences += 1;
                }
            }
            // The classifier was evaluated at the person the output describes.
            b.standardize(&cf, &mut x_std).unwrap();
            let p = b.classify(&x_std, &mut s).unwrap();
            assert!(
                (p - r.prob_after).abs() <= 1e-4,
                "p {p} against {}",
                r.prob_after
            );
            assert_eq!(r.cost_unrefined, raw.cost);
            if r.refined {
                // Refinement never loses the margin, and costs more only
                // when it had to extend a proposal short of it.
                assert!(r.prob_after >= Refine::DEFAULT.min_prob, "{r:?}");
                assert!(
                    r.cost <= raw.cost || raw.prob_after < Refine::DEFAULT.min_prob,
                    "{r:?} {raw:?}"
                );
            }
            assert_eq!(
                r.accepted,
                r.status == Status::Recommended || r.already_accepted
            );
        }
    }
    assert!(
        intervened > 500,
        "too few grid interventions to mean anything: {intervened}"
    );
    assert!(
        consequences > 100,
        "too few grid consequences: {consequences}"
    );
}

#[test]
fn level_names_and_kinds_are_read_back() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let spec = with_grid(
        random_spec(
            7,
            &Shape {
                d: 6,
                flow_layers: 1,
                flow_hidden: vec![8],
            },
        ),
        &mut rng,
    );
    let bytes = spec.to_bytes();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), FORMAT_VERSION);
    let b = Bundle::new(&bytes).unwrap();
    let mut names = spec.grid.levels.split('\n');
    for k in 0..6 {
        match spec.grid.kind[k] {
            KIND_CATEGORICAL => {
                assert_eq!(
                    b.kind(k),
                    Kind::Categorical {
                        levels: usize::from(spec.grid.n_levels[k])
                    }
                );
                for l in 0..usize::from(spec.grid.n_levels[k]) {
                    assert_eq!(b.level_name(k, l), names.next());
                }
                assert_eq!(b.level_name(k, usize::from(spec.grid.n_levels[k])), None);
            }
            KIND_INTEGER => assert_eq!(
                b.kind(k),
                Kind::Integer {
                    step: spec.grid.step[k]
                }
            ),
            _ => assert_eq!(b.level_name(k, 0), None),
        }
    }
    // Without a grid section the bundle is the version-3 bundle it always was.
    let mut plain = spec.clone();
    plain.grid = Grid::default();
    let bytes = plain.to_bytes();
    assert_eq!(
        u16::from_le_bytes([bytes[8], bytes[9]]),
        OLDEST_FORMAT_VERSION
    );
    assert!(Bundle::new(&bytes).unwrap().grid().is_empty());
}

fn grid_spec() -> Spec {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    loop {
        let spec = with_grid(
            random_spec(
                rng.random(),
                &Shape {
                    d: 5,
                    flow_layers: 1,
                    flow_hidden: vec![6],
                },
            ),
            &mut rng,
        );
        let kinds = &spec.grid.kind;
        if kinds.contains(&KIND_INTEGER) && kinds.contains(&KIND_CATEGORICAL) {
            return spec;
        }
    }
}

#[test]
fn inputs_off_their_grid_are_refused() {
    let spec = grid_spec();
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = grid_input(&mut rng, &spec);
    let mut s = vec![0.0; b.scratch_len()];
    let mut cf = vec![0.0; 5];
    let options = Options::new(FeatureSet::EMPTY, Some(Refine::DEFAULT));
    b.recommend_with(&x, &options, &mut cf, &mut s).unwrap();
    for k in b.grid().iter() {
        let off = match b.kind(k) {
            Kind::Integer { step } => vec![x[k] + 0.5 * step],
            Kind::Categorical { levels } => vec![0.5, -1.0, levels as f32],
            _ => unreachable!(),
        };
        for v in off {
            let mut y = x.clone();
            y[k] = v;
            assert_eq!(
                b.recommend_with(&y, &options, &mut cf, &mut s).unwrap_err(),
                Error::Input(InputError::OffGrid { index: k }),
                "feature {k} = {v}"
            );
        }
    }
}

#[test]
fn inconsistent_grid_sections_are_refused() {
    let spec = grid_spec();
    let cat = spec
        .grid
        .kind
        .iter()
        .position(|&k| k == KIND_CATEGORICAL)
        .unwrap();
    let int = spec
        .grid
        .kind
        .iter()
        .position(|&k| k == KIND_INTEGER)
        .unwrap();
    let refused = |mutate: &dyn Fn(&mut Spec)| {
        let mut bad = spec.clone();
        mutate(&mut bad);
        match Bundle::new(&bad.to_bytes()) {
            Err(Error::Validation(
                ValidationError::OutOfRange {
                    section: Section::Grid,
                    ..
                }
                | ValidationError::Length {
                    section: Section::Grid,
                    ..
                },
            )) => {}
            other => panic!("accepted or wrong error: {other:?}"),
        }
    };
    refused(&|s| s.grid.step[int] = 0.0);
    refused(&|s| s.grid.step[int] = -1.0);
    refused(&|s| s.grid.n_levels[int] = 3);
    refused(&|s| s.grid.kind[int] = 7);
    refused(&|s| s.grid.step[cat] = 2.0);
    refused(&|s| s.grid.n_levels[cat] = 1);
    refused(&|s| s.max[cat] += 1.0);
    refused(&|s| s.min[cat] = 0.5);
    refused(&|s| s.grid.levels.push_str("\nextra"));
    refused(&|s| {
        // An empty level name, the count unchanged.
        let mut names: Vec<&str> = s.grid.levels.split('\n').collect();
        names[0] = "";
        s.grid.levels = names.join("\n");
    });
    refused(&|s| s.grid.kind.pop().map(|_| ()).unwrap_or(()));
    // A binary feature cannot also be on a grid.
    if let Some(bin) = spec.binary.iter().position(|&b| b == 1) {
        refused(&|s| {
            s.grid.kind[bin] = KIND_INTEGER;
            s.grid.step[bin] = 1.0;
        });
    }
}
