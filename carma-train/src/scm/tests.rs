use ndarray::Array2;

use super::*;

/// Abduction must invert sampling to this (docs/MATH.md section 2, datasets; issue 3).
const ABDUCTION_TOL: f64 = 1e-9;
const N: usize = 2_000;

fn row(a: &Array2<f64>, r: usize) -> Vec<f64> {
    a.row(r).to_vec()
}

#[test]
fn names_round_trip_through_from_str_and_display() {
    for d in Dataset::ALL {
        assert_eq!(d.to_string().parse::<Dataset>(), Ok(d));
    }
    assert_eq!("triangle-LIN".parse::<Dataset>(), Ok(Dataset::TriangleLin));
    assert_eq!(" Loan ".parse::<Dataset>(), Ok(Dataset::Loan));
    let err = "triangle".parse::<Dataset>().unwrap_err();
    assert!(err.to_string().contains("'triangle'") && err.to_string().contains("chain-nlin"));
}

#[test]
fn graphs_follow_the_spec_parents_kinds_and_actionable_flags() {
    let g = Dataset::TriangleNlin.graph();
    assert_eq!(g.names(), ["x_s", "x_1", "x_2", "x_3"]);
    assert_eq!(
        (g.parents(1), g.parents(2), g.parents(3)),
        (&[0][..], &[1][..], &[0, 1, 2][..])
    );
    assert_eq!(g.actionable(), vec![1, 2, 3]);
    assert!(g.is_binary(0) && !g.is_binary(1));
    assert_eq!(Dataset::ColliderLin.graph().parents(2), &[0]);
    assert_eq!(Dataset::ChainNlin.graph().parents(3), &[0, 2]);
    let g = Dataset::Loan.graph();
    assert_eq!(
        g.names(),
        [
            "gender",
            "age",
            "education",
            "loan_amount",
            "duration",
            "income",
            "savings"
        ]
    );
    assert_eq!(g.actionable(), vec![2, 3, 5, 6]);
    assert_eq!(g.parents(4), &[0, 1, 3]);
    assert_eq!(g.parents(6), &[5]);
    assert!(g.is_binary(0) && (1..7).all(|i| !g.is_binary(i)));
    assert_eq!(g.max_depth(), 3); // savings <- income <- education <- gender
}

#[test]
fn abduction_inverts_sampling() {
    for d in Dataset::ALL {
        let scm = d.scm();
        let s = scm.sample(N, 11);
        let u = scm.abduct(s.x.view()).unwrap();
        let err = (&u - &s.u).iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(err < ABDUCTION_TOL, "{d}: max |u - f^-1(f(u))| = {err:e}");
    }
}

#[test]
fn sampling_is_deterministic_per_seed() {
    for d in Dataset::ALL {
        let scm = d.scm();
        assert_eq!(scm.sample(50, 3), scm.sample(50, 3), "{d}");
        assert_ne!(scm.sample(50, 3).x, scm.sample(50, 4).x, "{d}");
    }
}

#[test]
fn samples_satisfy_the_structural_equations_and_label_rule() {
    for d in Dataset::ALL {
        let scm = d.scm();
        let s = scm.sample(200, 5);
        let mut x = vec![0.0; scm.n_features()];
        for r in 0..200 {
            scm.generate_row(&row(&s.u, r), &mut x);
            assert_eq!(x, row(&s.x, r), "{d}");
            assert!(s.x[[r, 0]] == 0.0 || s.x[[r, 0]] == 1.0, "{d}: binary root");
            let g = scm.logit(&x, &row(&s.u, r));
            assert_eq!(
                s.y[r],
                if g >= 0.0 { 1.0 } else { 0.0 },
                "{d}: label of g = {g}"
            );
        }
    }
}

#[test]
fn label_rates_are_not_degenerate() {
    for d in Dataset::ALL {
        let s = d.scm().sample(20_000, 1);
        let rate = s.y.mean().unwrap();
        println!("{d}: P(y = 1) = {rate:.4}");
        assert!((0.05..=0.95).contains(&rate), "{d}: label rate {rate}");
    }
}

#[test]
fn loan_label_uses_the_sign_rule() {
    let scm = Dataset::Loan.scm();
    let u = [0.0; 7];
    // income and savings both >= 0: + income * savings.
    let x = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0];
    assert!((scm.logit(&x, &u) - 0.3 * (-1.0 - 2.0 + 3.0 + 4.0 + 12.0)).abs() < 1e-12);
    // one negative: - income * savings.
    let x = [0.0, 0.0, 0.0, 1.0, 2.0, -3.0, 4.0];
    assert!((scm.logit(&x, &u) - 0.3 * (-1.0 - 2.0 - 3.0 + 4.0 + 12.0)).abs() < 1e-12);
}

#[test]
fn triangle_nlin_label_has_the_inverse_cube() {
    let scm = Dataset::TriangleNlin.scm();
    let (x, u) = ([1.0, 1.0, 0.5, 2.0], [0.0, -1.0, 0.0, 0.0]);
    let expected = -1.0 + 2.0 + 0.75 * 8.0 + 0.1 * 4.0 - 0.5;
    assert!((scm.logit(&x, &u) - expected).abs() < 1e-12);
    // A tiny negative x_2 drives the logit to -inf: rejected, not NaN.
    assert_eq!(scm.label(&[0.0, 0.0, -1e-120, 0.0], &u), 0.0);
}

#[test]
fn counterfactual_without_intervention_returns_x() {
    for d in Dataset::ALL {
        let scm = d.scm();
        let s = scm.sample(100, 2);
        for r in 0..100 {
            assert_eq!(
                scm.counterfactual(&row(&s.x, r), &[]).unwrap(),
                row(&s.x, r),
                "{d}"
            );
        }
    }
}

#[test]
fn intervening_on_a_leaf_changes_nothing_else() {
    for d in Dataset::ALL {
        let scm = d.scm();
        let g = scm.graph();
        let s = scm.sample(50, 9);
        for leaf in (0..g.len()).filter(|&i| g.children(i).is_empty()) {
            for r in 0..50 {
                let x = row(&s.x, r);
                let cf = scm.counterfactual(&x, &[(leaf, x[leaf] + 1.5)]).unwrap();
                for i in 0..g.len() {
                    let want = if i == leaf { x[leaf] + 1.5 } else { x[i] };
                    assert_eq!(cf[i], want, "{d}: leaf {leaf}, feature {i}");
                }
            }
        }
    }
}

#[test]
fn non_descendants_keep_their_factual_values_exactly() {
    let scm = Dataset::Loan.scm();
    let s = scm.sample(50, 4);
    for r in 0..50 {
        let x = row(&s.x, r);
        // do(education): only income and savings (its descendants) move.
        let cf = scm.counterfactual(&x, &[(2, 0.3)]).unwrap();
        for i in [0, 1, 3, 4] {
            assert_eq!(cf[i], x[i]);
        }
        assert_eq!(cf[2], 0.3);
    }
}

/// Closed forms derived by hand from the table of docs/MATH.md section 2, datasets: with `delta_k = v_k - x_k`, a linear SCM's
/// counterfactual adds the path-coefficient sums of the intervened features.
#[test]
fn linear_counterfactuals_match_their_closed_forms() {
    type ClosedForm = fn(&[f64], f64) -> Vec<f64>;
    let cases: [(Dataset, usize, ClosedForm); 7] = [
        // triangle: x2 = x1 + u2, x3 = xs + .25 x1 + .5 x2 + u3.
        (Dataset::TriangleLin, 1, |x, v| {
            let d = v - x[1];
            vec![x[0], v, x[2] + d, x[3] + 0.25 * d + 0.5 * d]
        }),
        (Dataset::TriangleLin, 2, |x, v| {
            vec![x[0], x[1], v, x[3] + 0.5 * (v - x[2])]
        }),
        // collider: x3 = .05 xs + .25 x1 + .25 x2 + u3.
        (Dataset::ColliderLin, 1, |x, v| {
            vec![x[0], v, x[2], x[3] + 0.25 * (v - x[1])]
        }),
        (Dataset::ColliderLin, 2, |x, v| {
            vec![x[0], x[1], v, x[3] + 0.25 * (v - x[2])]
        }),
        // chain: x2 = xs + .5 x1 + u2, x3 = .25 xs + .5 x2 + u3.
        (Dataset::ChainLin, 1, |x, v| {
            let d = v - x[1];
            vec![x[0], v, x[2] + 0.5 * d, x[3] + 0.25 * d]
        }),
        (Dataset::ChainLin, 2, |x, v| {
            vec![x[0], x[1], v, x[3] + 0.5 * (v - x[2])]
        }),
        // do(x_s) on chain: x1 += d, x2 += d + .5 d, x3 += .25 d + .5 (1.5 d).
        (Dataset::ChainLin, 0, |x, v| {
            let d = v - x[0];
            vec![v, x[1] + d, x[2] + 1.5 * d, x[3] + d]
        }),
    ];
    for (dataset, k, closed) in cases {
        let scm = dataset.scm();
        let s = scm.sample(100, 21);
        for r in 0..100 {
            let x = row(&s.x, r);
            let v = x[k] + (r as f64 - 50.0) / 10.0;
            let cf = scm.counterfactual(&x, &[(k, v)]).unwrap();
            let want = closed(&x, v);
            for i in 0..4 {
                assert!(
                    (cf[i] - want[i]).abs() < 1e-12,
                    "{dataset} do(x{k}): feature {i}: {} vs {}",
                    cf[i],
                    want[i]
                );
            }
        }
    }
    // Two interventions on triangle: do(x1 = a, x3 = b) leaves x3 at b, x2 shifts by a - x1.
    let scm = Dataset::TriangleLin.scm();
    let x = row(&scm.sample(1, 8).x, 0);
    let cf = scm.counterfactual(&x, &[(1, 2.0), (3, -1.0)]).unwrap();
    assert_eq!(cf[3], -1.0);
    assert!((cf[2] - (x[2] + 2.0 - x[1])).abs() < 1e-12);
}

#[test]
fn loan_income_counterfactual_moves_savings_through_the_relu() {
    let scm = Dataset::Loan.scm();
    let s = scm.sample(100, 13);
    for r in 0..100 {
        let x = row(&s.x, r);
        let v = x[5] + 3.0;
        let cf = scm.counterfactual(&x, &[(5, v)]).unwrap();
        let want = x[6] + 1.5 * (v.max(0.0) - x[5].max(0.0));
        assert!((cf[6] - want).abs() < 1e-12);
    }
}

#[test]
fn batch_counterfactuals_agree_with_single_ones() {
    for d in [Dataset::ChainNlin, Dataset::Loan] {
        let scm = d.scm();
        let dim = scm.n_features();
        let x = row(&scm.sample(1, 17).x, 0);
        let masks: Vec<u64> = (0..(1u64 << dim)).step_by(3).collect();
        let values = Array2::from_shape_fn((masks.len(), dim), |(c, k)| {
            x[k] + 0.1 * (c as f64) - 0.05 * k as f64
        });
        let mut out = Array2::zeros((masks.len(), dim));
        scm.counterfactual_batch(&x, &masks, values.view(), out.view_mut())
            .unwrap();
        for (c, &m) in masks.iter().enumerate() {
            let ivs: Vec<(usize, f64)> = (0..dim)
                .filter(|k| m & (1 << k) != 0)
                .map(|k| (k, values[[c, k]]))
                .collect();
            assert_eq!(
                out.row(c).to_vec(),
                scm.counterfactual(&x, &ivs).unwrap(),
                "{d}: mask {m:b}"
            );
        }
    }
}

#[test]
fn bad_queries_are_typed_errors() {
    let scm = Dataset::Loan.scm();
    let x = row(&scm.sample(1, 1).x, 0);
    assert!(matches!(
        scm.counterfactual(&x[..6], &[]),
        Err(ScmError::Shape {
            expected: 7,
            found: 6,
            ..
        })
    ));
    assert!(matches!(
        scm.counterfactual(&x, &[(7, 0.0)]),
        Err(ScmError::InterventionIndex { index: 7, len: 7 })
    ));
    assert!(matches!(
        scm.counterfactual(&x, &[(2, f64::NAN)]),
        Err(ScmError::NonFiniteIntervention { .. })
    ));
    let mut bad = x.clone();
    bad[3] = f64::INFINITY;
    assert!(matches!(
        scm.counterfactual(&bad, &[]),
        Err(ScmError::NonFinite {
            feature: "loan_amount",
            ..
        })
    ));
    // Education is -0.5 + sigmoid(.): outside (-0.5, 0.5) there is no u_2.
    let mut bad = x.clone();
    bad[2] = 0.7;
    let err = scm.counterfactual(&bad, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            ScmError::OutsideSupport {
                feature: "education",
                ..
            }
        ),
        "{err}"
    );
    let masks = [1u64 << 9];
    let mut out = Array2::zeros((1, 7));
    let err = scm
        .counterfactual_batch(&x, &masks, Array2::zeros((1, 7)).view(), out.view_mut())
        .unwrap_err();
    assert!(
        matches!(err, ScmError::InterventionIndex { index: 9, len: 7 }),
        "{err}"
    );
}

#[test]
fn docs_loan_graph_file_is_the_builtin_loan_graph() {
    let text = include_str!("../../../docs/loan-graph.toml");
    let g = CausalGraph::from_toml_str(text, "docs/loan-graph.toml").unwrap();
    assert_eq!(g, Dataset::Loan.graph());
}

#[test]
fn builtin_graphs_round_trip_through_toml() {
    for d in Dataset::ALL {
        let g = d.graph();
        assert_eq!(
            CausalGraph::from_toml_str(&g.to_toml_string(), d.name()).unwrap(),
            g,
            "{d}"
        );
    }
}
