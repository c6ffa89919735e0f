use super::*;
use crate::baselines::testkit::toy;
use ndarray::s;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GRID_BOUND: f64 = 10.0;

fn config(threads: usize) -> CheckedOptimizerConfig {
    OptimizerConfig {
        threads,
        ..OptimizerConfig::default()
    }
    .check()
    .unwrap()
}

/// The penalized objective's gradient (cost, squared hinge through the classifier, flow
/// inverse) against central finite differences.
#[test]
fn penalized_gradient_matches_finite_differences() {
    let t = toy();
    let problem = &t.problem;
    let n_act = 2.0;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut active = 0;
    for row in 0..6 {
        let x = t.rejected.slice(s![row..row + 1, ..]).to_owned();
        let z = t.flow.abduct(&x);
        for features in [vec![1], vec![2], vec![1, 2]] {
            let obj = SubsetObjective {
                flow: &t.flow,
                classifier: &t.classifier,
                x: &x,
                z: &z,
                features: &features,
                scale: features
                    .iter()
                    .map(|&k| problem.weights[k] / problem.cost_range[k] / n_act)
                    .collect(),
                target_logit: target_logit(0.3),
                penalty: 7.0,
                last: RefCell::new(None),
            };
            let u: Vec<f64> = features
                .iter()
                .map(|_| rng.random_range(-3.0..3.0))
                .collect();
            let (value, grad) = obj.value_and_gradient(&u);
            assert_eq!(value, obj.evaluate(&u).value);
            assert_eq!(obj.cached(&u), (value, grad.clone()));
            assert_eq!(obj.cached(&u), (value, grad.clone()));
            if obj.evaluate(&u).logit < obj.target_logit {
                active += 1;
            }
            let h = 1e-6;
            for j in 0..u.len() {
                let mut up = u.clone();
                up[j] += h;
                let mut down = u.clone();
                down[j] -= h;
                let numeric = (obj.evaluate(&up).value - obj.evaluate(&down).value) / (2.0 * h);
                approx::assert_abs_diff_eq!(
                    numeric,
                    grad[j],
                    epsilon = 1e-7 + 1e-6 * numeric.abs()
                );
            }
        }
    }
    assert!(
        active >= 3,
        "the hinge must be active in some cases ({active})"
    );
}

/// Every rejected individual gets an accepted counterfactual that only moves
/// allowed features, with the cost the problem defines.
#[test]
fn finds_accepted_counterfactuals_for_rejected_individuals() {
    let t = toy();
    let x = t.rejected.slice(s![..40, ..]).to_owned();
    assert!(t.classifier.prob(&x).iter().all(|&p| p < 0.5));
    let start = std::time::Instant::now();
    let sols = solve_all(&t.flow, &t.classifier, &t.problem, &x, &[], &config(2)).unwrap();
    let per = start.elapsed().as_secs_f64() / 40.0;
    eprintln!("optimizer: {:.2} ms per individual (2 threads)", per * 1e3);
    assert!(sols.iter().all(|s| s.solver_failures == 0));
    let out = to_output(sols.clone());
    assert!(out.prob.iter().all(|&p| p >= 0.5), "{:?}", out.prob);
    assert!(out.mask.column(0).iter().all(|&m| m == 0.0));
    assert!(out.mask.rows().into_iter().all(|r| r.sum() >= 1.0));
    assert_eq!(out.cost, t.problem.cost(&x, &out.x_cf, &out.mask));
    assert_eq!(out.prob, t.classifier.prob(&out.x_cf));
    assert!(out.cost.iter().all(|&c| c > 0.0));
    let mean_actions = out.mask.sum() / 40.0;
    eprintln!(
        "optimizer: mean cost x100 {:.3}, mean actions {mean_actions:.2}",
        100.0 * out.cost.mean().unwrap()
    );
    // The non-intervened root keeps its value.
    for r in 0..40 {
        assert!((out.x_cf[[r, 0]] - x[[r, 0]]).abs() < 1e-9);
    }
}

/// An honest bound: for each individual and each single allowed feature, a
/// brute-force line search over a fine grid of latent shifts (accepting only
/// counterfactuals that clear the same margin) finds nothing cheaper than the
/// optimizer's answer, which also searches the larger subsets.
#[test]
fn never_costlier_than_a_brute_force_single_feature_search() {
    let t = toy();
    let cfg = config(2);
    let margin = cfg.get().margin;
    // Latent shifts of the grid: [-GRID_BOUND, GRID_BOUND] (standard-normal latents).
    let bound = GRID_BOUND;
    let n = 12;
    let x = t.rejected.slice(s![..n, ..]).to_owned();
    let out = recommend(&t.flow, &t.classifier, &t.problem, &x, &[], &cfg).unwrap();
    let grid = 8001;
    let mut strictly_better = 0;
    for r in 0..n {
        let xr = x.slice(s![r..r + 1, ..]).to_owned();
        let z = t.flow.abduct(&xr);
        for k in [1, 2] {
            let mut z_cf = Array2::zeros((grid, 3));
            for (g, mut row) in z_cf.rows_mut().into_iter().enumerate() {
                row.assign(&z.row(0));
                row[k] += -bound + 2.0 * bound * g as f64 / (grid - 1) as f64;
            }
            let x_cf = t.flow.inverse(&z_cf);
            let p = t.classifier.prob(&x_cf);
            let xs = Array2::from_shape_fn((grid, 3), |(_, j)| xr[[0, j]]);
            let mask = Array2::from_shape_fn((grid, 3), |(_, j)| f64::from(u8::from(j == k)));
            let cost = t.problem.cost(&xs, &x_cf, &mask);
            let brute = (0..grid)
                .filter(|&g| 2.0 * p[g] - 1.0 >= margin)
                .map(|g| cost[g])
                .fold(f64::INFINITY, f64::min);
            assert!(
                out.cost[r] <= brute * (1.0 + 1e-6) + 1e-9,
                "row {r} feature {k}: optimizer {} vs brute force {brute}",
                out.cost[r]
            );
            if out.cost[r] < brute * (1.0 - 1e-3) {
                strictly_better += 1;
            }
        }
    }
    eprintln!(
        "optimizer strictly cheaper than a single-feature grid in {strictly_better} of {} cases",
        2 * n
    );
}

#[test]
fn forbidden_features_are_never_intervened() {
    let t = toy();
    let x = t.rejected.slice(s![..10, ..]).to_owned();
    let out = recommend(
        &t.flow,
        &t.classifier,
        &t.problem,
        &x,
        &[false, true, false],
        &config(1),
    )
    .unwrap();
    assert!(out.mask.column(1).iter().all(|&m| m == 0.0));
    assert!(out.mask.column(2).iter().all(|&m| m == 1.0));
    let none = recommend(
        &t.flow,
        &t.classifier,
        &t.problem,
        &x,
        &[false, true, true],
        &config(1),
    )
    .unwrap();
    assert_eq!(none.x_cf, x);
    assert!(none.cost.iter().all(|&c| c == 0.0));
    assert_eq!(none.prob, t.classifier.prob(&x));
}

#[test]
fn results_are_deterministic_and_independent_of_threads() {
    let t = toy();
    let x = t.rejected.slice(s![..9, ..]).to_owned();
    let one = recommend(&t.flow, &t.classifier, &t.problem, &x, &[], &config(1)).unwrap();
    let two = recommend(&t.flow, &t.classifier, &t.problem, &x, &[], &config(2)).unwrap();
    let again = recommend(&t.flow, &t.classifier, &t.problem, &x, &[], &config(2)).unwrap();
    assert_eq!(one, two);
    assert_eq!(two, again);
}

#[test]
fn subsets_are_enumerated_smallest_first() {
    let s = subsets(&[0, 2, 3, 5]);
    assert_eq!(s.len(), 15);
    assert_eq!(s[..4], [vec![0], vec![2], vec![3], vec![5]]);
    assert_eq!(s[4], vec![0, 2]);
    assert_eq!(s[14], vec![0, 2, 3, 5]);
    assert!(s.windows(2).all(|w| w[0].len() <= w[1].len()));
}

#[test]
fn config_check_rejects_bad_settings() {
    assert!(OptimizerConfig::default().check().is_ok());
    for bad in [
        OptimizerConfig {
            margin: 1.0,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            rounds: 0,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            penalty_growth: 0.5,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            rounds: 400,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            initial_penalty: f64::NAN,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            slack: 1.0,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            cost_tolerance: -1.0,
            ..OptimizerConfig::default()
        },
        OptimizerConfig {
            threads: 0,
            ..OptimizerConfig::default()
        },
    ] {
        assert!(matches!(bad.check(), Err(BaselineError::BadSetting { .. })));
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let t = toy();
    let cfg = config(1);
    let x = Array2::zeros((2, 4));
    assert!(matches!(
        recommend(&t.flow, &t.classifier, &t.problem, &x, &[], &cfg),
        Err(BaselineError::Shape { .. })
    ));
    let x = Array2::from_elem((1, 3), f64::INFINITY);
    assert!(matches!(
        recommend(&t.flow, &t.classifier, &t.problem, &x, &[], &cfg),
        Err(BaselineError::NonFiniteInput { row: 0, col: 0 })
    ));
    assert!(matches!(
        solve_subset(
            &t.flow,
            &t.classifier,
            &t.problem,
            t.rejected.row(0),
            &[0],
            &cfg
        ),
        Err(BaselineError::BadSetting { .. })
    ));
}
