//! Tests of the causal flow: the autoregressive property, exact inversion, the log-determinant,
//! finite-difference gradients and a short maximum-likelihood fit.

use super::*;
use crate::nn::gradcheck::{assert_grads_close, numeric_grad, numeric_param_grad, random_matrix};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// The triangle graph of docs/MATH.md section 2, datasets: `1 <- 0`, `2 <- 1`, `3 <- {0, 1, 2}`.
fn triangle() -> Vec<Vec<usize>> {
    vec![vec![], vec![0], vec![1], vec![0, 1, 2]]
}

fn config(hidden: &[usize], layers: usize) -> CheckedFlowConfig {
    FlowConfig {
        hidden: hidden.to_vec(),
        layers,
        seed: 3,
        ..FlowConfig::default()
    }
    .check()
    .unwrap()
}

/// An untrained flow whose parameters are perturbed so every connection matters.
fn random_flow(parents: &[Vec<usize>], hidden: &[usize], layers: usize) -> CausalFlow {
    let mut flow = CausalFlow::new(parents, &config(hidden, layers)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let p: Vec<f64> = flow
        .flat_params()
        .iter()
        .map(|v| v + rng.random_range(-0.3..0.3))
        .collect();
    flow.set_flat_params(&p);
    flow
}

#[test]
fn perturbing_a_feature_moves_only_its_latent_and_its_childrens() {
    let parents = triangle();
    let flow = random_flow(&parents, &[16], 1);
    let x = random_matrix(3, 4, 1, 1.5);
    let z = flow.abduct(&x);
    for i in 0..4 {
        let mut xp = x.clone();
        xp.column_mut(i).mapv_inplace(|v| v + 0.3);
        let zp = flow.abduct(&xp);
        for j in 0..4 {
            let moved = (0..3).any(|r| (zp[[r, j]] - z[[r, j]]).abs() > 1e-12);
            let expected = j == i || parents[j].contains(&i);
            assert_eq!(moved, expected, "perturbing x_{i} and z_{j}");
        }
    }
}

#[test]
fn inverse_of_forward_is_identity() {
    for (hidden, layers) in [(vec![16], 1), (vec![8, 8], 3)] {
        let flow = random_flow(&triangle(), &hidden, layers);
        let x = random_matrix(20, 4, 2, 2.0);
        let back = flow.inverse(&flow.abduct(&x));
        let err = (&back - &x).mapv(f64::abs).fold(0.0f64, |a, &b| a.max(b));
        assert!(err < 1e-9, "round trip error {err} with {layers} layers");
    }
}

/// Determinant by Gaussian elimination with partial pivoting.
fn det(mut a: Array2<f64>) -> f64 {
    let n = a.nrows();
    let mut d = 1.0;
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[[i, c]].abs().total_cmp(&a[[j, c]].abs()))
            .unwrap();
        if p != c {
            for k in 0..n {
                a.swap([p, k], [c, k]);
            }
            d = -d;
        }
        d *= a[[c, c]];
        for r in c + 1..n {
            let f = a[[r, c]] / a[[c, c]];
            for k in c..n {
                a[[r, k]] -= f * a[[c, k]];
            }
        }
    }
    d
}

#[test]
fn log_det_equals_numeric_log_abs_det_of_the_jacobian() {
    let flow = random_flow(&triangle(), &[8, 8], 2);
    let x = random_matrix(3, 4, 4, 1.5);
    let (_, log_det) = flow.forward(&x);
    for r in 0..3 {
        let row = x.slice(s![r..r + 1, ..]).to_owned();
        let mut jac = Array2::zeros((4, 4));
        for out in 0..4 {
            let g = numeric_grad(&row, |xr| flow.abduct(xr)[[0, out]]);
            jac.row_mut(out).assign(&g.row(0));
        }
        approx::assert_relative_eq!(
            log_det[r],
            det(jac).abs().ln(),
            max_relative = 1e-7,
            epsilon = 1e-8
        );
    }
}

#[test]
fn nll_gradient_matches_finite_differences() {
    let mut flow = random_flow(&triangle(), &[5, 4], 2);
    let x = random_matrix(6, 4, 5, 1.5);
    flow.zero_grad();
    let loss = flow.nll_backward(&x);
    approx::assert_relative_eq!(loss, -flow.mean_log_likelihood(&x), max_relative = 1e-12);
    let analytic = flow.flat_grads();
    let numeric = numeric_param_grad(&mut flow, |f| -f.mean_log_likelihood(&x));
    assert_grads_close(&analytic, &numeric);
}

#[test]
fn inverse_backward_matches_finite_differences_of_the_inverse() {
    for (hidden, layers) in [(vec![16], 1), (vec![6, 6], 2)] {
        let flow = random_flow(&triangle(), &hidden, layers);
        let z = random_matrix(4, 4, 6, 1.5);
        let w = random_matrix(4, 4, 7, 1.0);
        let x_cf = flow.inverse(&z);
        let analytic = flow.inverse_backward(&x_cf, &w);
        let numeric = numeric_grad(&z, |z| (flow.inverse(z) * &w).sum());
        assert_grads_close(analytic.as_slice().unwrap(), numeric.as_slice().unwrap());
    }
}

/// The inverse as first written: every level's pass runs the whole hyper-network on the whole
/// batch, and the gradient starts from a fresh forward pass at the solution.
fn naive_inverse(flow: &CausalFlow, z: &Array2<f64>) -> Array2<f64> {
    let mut y = z.clone();
    for net in flow.layer_nets().iter().rev() {
        let mut x = Array2::zeros(y.raw_dim());
        for level in flow.levels() {
            let o = net.predict(&x);
            for &i in level {
                for r in 0..x.nrows() {
                    x[[r, i]] = (y[[r, i]] - o[[r, 2 * i]]) / soft_clip(o[[r, 2 * i + 1]]).exp();
                }
            }
        }
        y = x;
    }
    y
}

/// The shortcuts of the inverse (the roots' outputs from one row, each level's pass restricted
/// to its outputs, the gradient from the last pass's cache) give the same values as the
/// straightforward computation, on graphs with one to four depth levels, one and two layers,
/// one and two hidden layers.
#[test]
fn inverse_shortcuts_give_the_values_of_the_straightforward_inverse() {
    let graphs = [
        triangle(),
        vec![vec![], vec![0], vec![1], vec![2]],
        vec![vec![], vec![], vec![0, 1]],
        vec![vec![], vec![]],
    ];
    for parents in &graphs {
        for (hidden, layers) in [(vec![12], 1), (vec![6, 7], 2)] {
            let flow = random_flow(parents, &hidden, layers);
            let d = parents.len();
            let z = random_matrix(9, d, 6, 1.5);
            let w = random_matrix(9, d, 7, 1.0);
            let x = flow.inverse(&z);
            assert_eq!(x, naive_inverse(&flow, &z), "{parents:?} {hidden:?}");
            let (x_traced, trace) = flow.inverse_traced(&z);
            assert_eq!(x_traced, x);
            let traced = flow.inverse_backward_traced(&trace, &w);
            let fresh = flow.inverse_backward(&x, &w);
            if layers == 1 {
                assert_eq!(traced, fresh, "{parents:?} {hidden:?}");
            } else {
                // A later layer's Jacobian is taken where the inverse put its input, not where
                // a forward pass from x puts it: the two differ by rounding.
                let err = max_abs_diff(&traced, &fresh);
                assert!(err < 1e-12, "{parents:?} {hidden:?} x{layers}: {err:e}");
            }
        }
    }
}

#[test]
fn soft_clip_bounds_the_log_scale_and_its_derivative_is_right() {
    for raw in [-1e6, -30.0, -1.0, 0.0, 0.5, 7.0, 1e6] {
        assert!(soft_clip(raw).abs() < -LN_MIN_SCALE);
        let h = 1e-6;
        let numeric = (soft_clip(raw + h) - soft_clip(raw - h)) / (2.0 * h);
        approx::assert_relative_eq!(
            soft_clip_grad(raw),
            numeric,
            max_relative = 1e-6,
            epsilon = 1e-9
        );
    }
}

/// A linear-Gaussian SCM `x0 = u0`, `x1 = 0.8 x0 + 0.6 u1`, `x2 = -0.5 x0 + 0.7 x1 + 0.4 u2`:
/// samples and the exact mean log-density.
fn linear_gaussian(n: usize, seed: u64) -> (Array2<f64>, f64) {
    const SIGMA: [f64; 3] = [1.0, 0.6, 0.4];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 3));
    let mut ll = 0.0;
    for r in 0..n {
        let u: [f64; 3] = std::array::from_fn(|_| StandardNormal.sample(&mut rng));
        x[[r, 0]] = SIGMA[0] * u[0];
        x[[r, 1]] = 0.8 * x[[r, 0]] + SIGMA[1] * u[1];
        x[[r, 2]] = -0.5 * x[[r, 0]] + 0.7 * x[[r, 1]] + SIGMA[2] * u[2];
        ll += (0..3)
            .map(|i| -0.5 * u[i] * u[i] - HALF_LN_2PI - SIGMA[i].ln())
            .sum::<f64>();
    }
    (x, ll / n as f64)
}

#[test]
fn maximum_likelihood_fit_approaches_the_true_density() {
    let parents = vec![vec![], vec![0], vec![0, 1]];
    let (train, _) = linear_gaussian(2000, 1);
    let (val, _) = linear_gaussian(500, 2);
    let (test, true_ll) = linear_gaussian(1000, 3);
    let cfg = FlowConfig {
        hidden: vec![16],
        epochs: 40,
        batch_size: 64,
        lr: 1e-2,
        seed: 5,
        ..FlowConfig::default()
    }
    .check()
    .unwrap();
    let before = CausalFlow::new(&parents, &cfg)
        .unwrap()
        .mean_log_likelihood(&test);
    let mut epochs = Vec::new();
    let (flow, report) =
        CausalFlow::fit_observed(&train, &val, &parents, &cfg, &mut |e| epochs.push(e)).unwrap();
    let after = flow.mean_log_likelihood(&test);
    assert!(report.best_epoch >= 1);
    assert_eq!(epochs.len(), report.epochs_run);
    let best = epochs[report.best_epoch - 1].val_loss;
    approx::assert_relative_eq!(best, report.best_val_nll);
    approx::assert_relative_eq!(best, -flow.mean_log_likelihood(&val), max_relative = 1e-12);
    assert!(after > before + 0.5, "before {before}, after {after}");
    assert!(after > true_ll - 0.1, "learned {after}, true {true_ll}");
    let orig = flow
        .mean_log_likelihood_original(&test, &[0.5, 0.5, 0.5])
        .unwrap();
    approx::assert_relative_eq!(orig, after + 3.0 * 2.0f64.ln(), max_relative = 1e-12);
}

#[test]
fn flow_spec_params_have_mlp_wire_layout_with_masks_applied() {
    let flow = random_flow(&triangle(), &[8], 2);
    let (dims, layers) = flow.to_flow_spec_params();
    assert_eq!(dims, vec![4, 8, 8]);
    assert_eq!(layers.len(), 2);
    for (l, params) in layers.iter().enumerate() {
        assert_eq!(params.len(), 8 * 4 + 8 + 8 * 8 + 8);
        let first = &flow.layer_nets()[l].layers()[0];
        let mask = first.mask().unwrap();
        for ((o, i), &m) in mask.indexed_iter() {
            let v = params[o * 4 + i];
            if m == 0.0 {
                assert_eq!(v, 0.0);
            } else {
                assert_eq!(v, first.weight()[[o, i]] as f32);
            }
        }
    }
}

#[test]
fn bad_graphs_and_configs_are_refused_with_typed_errors() {
    let cfg = config(&[8], 1);
    assert_eq!(
        CausalFlow::new(&[], &cfg).unwrap_err(),
        FlowError::EmptyGraph
    );
    assert_eq!(
        CausalFlow::new(&[vec![1], vec![0]], &cfg).unwrap_err(),
        FlowError::Cycle(0)
    );
    assert_eq!(
        CausalFlow::new(&[vec![0]], &cfg).unwrap_err(),
        FlowError::SelfLoop(0)
    );
    assert_eq!(
        CausalFlow::new(&[vec![], vec![5]], &cfg).unwrap_err(),
        FlowError::ParentOutOfRange {
            node: 1,
            parent: 5,
            n: 2
        }
    );
    assert_eq!(
        CausalFlow::new(&triangle(), &config(&[2], 1)).unwrap_err(),
        FlowError::HiddenTooNarrow {
            layer: 0,
            width: 2,
            needed: 3
        }
    );
    let bad = FlowConfig {
        plateau_factor: 1.0,
        ..FlowConfig::default()
    };
    assert_eq!(bad.check().unwrap_err(), FlowError::BadPlateauFactor(1.0));
    let mut x = random_matrix(5, 4, 1, 1.0);
    x[[2, 1]] = f64::INFINITY;
    let ok = random_matrix(5, 4, 2, 1.0);
    assert_eq!(
        CausalFlow::fit(&ok, &x, &triangle(), &cfg).unwrap_err(),
        FlowError::NonFinite {
            split: "validation",
            row: 2,
            col: 1
        }
    );
    assert!(matches!(
        CausalFlow::new(&triangle(), &cfg)
            .unwrap()
            .mean_log_likelihood_original(&ok, &[1.0; 3]),
        Err(FlowError::Shape { .. })
    ));
}

#[test]
fn levels_group_features_by_depth() {
    let flow = CausalFlow::new(&triangle(), &config(&[8], 1)).unwrap();
    assert_eq!(flow.levels(), &[vec![0], vec![1], vec![2], vec![3]]);
    let loan = vec![
        vec![],
        vec![],
        vec![0, 1],
        vec![0, 1],
        vec![0, 1, 3],
        vec![0, 1, 2],
        vec![5],
    ];
    let flow = CausalFlow::new(&loan, &config(&[64], 1)).unwrap();
    assert_eq!(flow.levels().len(), 4);
}

/// Fit a flow on `dataset` at the reference's scale (docs/MATH.md section 2, datasets: 25,000 flow rows split
/// 0.8/0.1/0.1) and return the mean test log-likelihood in original units.
fn reference_scale_fit(dataset: crate::scm::Dataset, hidden: &[usize]) -> f64 {
    use crate::scm::Scm;
    let scm = Scm::new(dataset);
    let x = scm.sample(25_000, 11).x;
    let (train, rest) = x.view().split_at(Axis(0), 20_000);
    let (val, test) = rest.split_at(Axis(0), 2_500);
    let mean = train.mean_axis(Axis(0)).unwrap();
    let std = train.std_axis(Axis(0), 1.0);
    let scale = |a: ndarray::ArrayView2<f64>| (&a - &mean) / &std;
    let parents: Vec<Vec<usize>> = (0..scm.n_features())
        .map(|i| scm.graph().parents(i).to_vec())
        .collect();
    let cfg = FlowConfig {
        hidden: hidden.to_vec(),
        ..FlowConfig::default()
    }
    .check()
    .unwrap();
    let start = std::time::Instant::now();
    let (flow, report) = CausalFlow::fit(&scale(train), &scale(val), &parents, &cfg).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let ll = flow
        .mean_log_likelihood_original(&scale(test), std.as_slice().unwrap())
        .unwrap();
    eprintln!(
        "{dataset:?} flow: test LL {ll:.3}, {report:?}, {secs:.1} s, {:.1} ms/epoch",
        1e3 * secs / report.epochs_run as f64
    );
    ll
}

/// The reference reaches -13.614 nats per individual on Loan (docs/MATH.md section 4, causal flow; one layer, hidden
/// [64]). Slow: `cargo test -p carma-train --lib reference_ -- --ignored --nocapture`.
#[test]
#[ignore = "slow: full-size Loan fit"]
fn reference_loan_flow_reaches_the_reference_test_log_likelihood() {
    const REFERENCE_LOAN_LL: f64 = -13.614;
    let ll = reference_scale_fit(crate::scm::Dataset::Loan, &DEFAULT_HIDDEN);
    assert!(ll >= REFERENCE_LOAN_LL, "test log-likelihood {ll}");
}

/// The reference reaches -5.706 nats per individual on triangle-LIN (docs/MATH.md section 4, causal flow; hidden
/// [32], FLOW_MATH section 0).
#[test]
#[ignore = "slow: full-size triangle-LIN fit"]
fn reference_triangle_lin_flow_reaches_the_reference_test_log_likelihood() {
    const REFERENCE_TRIANGLE_LIN_LL: f64 = -5.706;
    let ll = reference_scale_fit(crate::scm::Dataset::TriangleLin, &[32]);
    assert!(ll >= REFERENCE_TRIANGLE_LIN_LL, "test log-likelihood {ll}");
}

/// A matrix from a JSON `{"data": [[...], ...]}` or a plain nested list.
fn json_matrix(v: &serde_json::Value) -> Array2<f64> {
    let rows = v.get("data").unwrap_or(v).as_array().unwrap();
    let data: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    Array2::from_shape_vec((rows.len(), data.len() / rows.len()), data).unwrap()
}

fn json_vector(v: &serde_json::Value) -> Array1<f64> {
    let v = v.get("data").unwrap_or(v).as_array().unwrap();
    v.iter().map(|x| x.as_f64().unwrap()).collect()
}

fn fixture(file: &str) -> serde_json::Value {
    let path = format!(
        "{}/../fixtures/reference/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference fixture")).expect("json")
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).mapv(f64::abs).fold(0.0, |m, &v| m.max(v))
}

/// The reference checkpoints' weights loaded into our flow reproduce the reference's f64
/// latents, log-densities and counterfactual inverses (FLOW_MATH: f64 vectors), and the
/// classifier its probabilities (f32 vectors).
#[test]
fn reference_weights_reproduce_the_reference_outputs() {
    use crate::classifier::Classifier;
    for name in ["trianglesens_linear", "loan"] {
        let model = fixture(&format!("{name}_flow.json"));
        let vectors = fixture(&format!("{name}_vectors.json"));
        let adj = json_matrix(&model["causal_adjacency"]["matrix"]);
        let parents: Vec<Vec<usize>> = adj
            .rows()
            .into_iter()
            .map(|r| (0..r.len()).filter(|&j| r[j] == 1.0).collect())
            .collect();
        let dense = |w: &str, b: &str, m: &str| {
            Dense::from_parts(json_matrix(&model[w]), json_vector(&model[b]))
                .with_mask(json_matrix(&model[m]))
        };
        let net = Mlp::from_layers(
            vec![dense("W1", "b1", "M1"), dense("W2", "b2", "M2")],
            Activation::Elu,
            Activation::Identity,
        );
        let flow = CausalFlow::from_hypernets(&parents, vec![net]).unwrap();

        // The f64 vectors start from the raw rows scaled in f64 with the recourse scaler.
        let scaler = &model["scalers"]["recourse"];
        let x = (json_matrix(&vectors["x_raw"]) - &json_vector(&scaler["mean"]))
            / &json_vector(&scaler["std"]);
        let z = flow.abduct(&x);
        let z_err = max_abs_diff(&z, &json_matrix(&vectors["f64"]["z"]));
        let lp_err = (flow.log_prob(&x) - json_vector(&vectors["f64"]["log_prob_scaled"]))
            .mapv(f64::abs)
            .fold(0.0f64, |m, &v| m.max(v));
        let z_cf =
            &z + &(json_matrix(&vectors["cf"]["mask"]) * json_matrix(&vectors["cf"]["delta"]));
        let x_cf = flow.inverse(&z_cf);
        let cf_err = max_abs_diff(&x_cf, &json_matrix(&vectors["f64"]["x_cf_scaled"]));
        assert!(
            z_err < 1e-9 && lp_err < 1e-9 && cf_err < 1e-9,
            "{name}: {z_err} {lp_err} {cf_err}"
        );

        let layers = model["classifier"]["layers"].as_array().unwrap();
        let clf_layers = layers
            .chunks(2)
            .map(|wb| Dense::from_parts(json_matrix(&wb[0]), json_vector(&wb[1])))
            .collect();
        let clf = Classifier::from_net(Mlp::from_layers(
            clf_layers,
            Activation::Relu,
            Activation::Identity,
        ))
        .unwrap();
        let p_err = (clf.prob(&x) - json_vector(&vectors["clf_prob"]))
            .mapv(f64::abs)
            .fold(0.0f64, |m, &v| m.max(v));
        assert!(p_err < 1e-5, "{name}: classifier {p_err}");
    }
}

#[test]
fn from_hypernets_refuses_a_net_that_breaks_the_graph() {
    let parents = triangle();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dense_net = Mlp::new(
        &[4, 8, 8],
        Activation::Elu,
        Activation::Identity,
        Init::TorchDefault,
        &mut rng,
    );
    assert!(matches!(
        CausalFlow::from_hypernets(&parents, vec![dense_net]),
        Err(FlowError::NotAutoregressive { layer: 0, .. })
    ));
    let good = random_flow(&parents, &[8], 1).layer_nets().to_vec();
    assert!(CausalFlow::from_hypernets(&parents, good).is_ok());
}

/// Core agreement: a trained-shape flow (two layers, deep hyper-network) and an MLP classifier
/// exported through `to_flow_spec_params` / `to_mlp_parts` and decoded by `carma-core` give the
/// trainer's abduction, inversion, log-density and probability within 1e-5 (f32 arithmetic).
#[test]
fn core_bundle_agrees_with_the_trainer_forward_pass() {
    use crate::classifier::{Classifier, ClassifierConfig};
    use crate::export::{BundleSpec, FlowSpec, MlpSpec};
    use carma_core::format::{Activation as WireAct, MetricsWire};
    const CORE_TOL: f64 = 1e-5;

    let parents = triangle();
    let flow = random_flow(&parents, &[8, 6], 2);
    let clf = Classifier::new(4, &ClassifierConfig::mlp(&[5]).check().unwrap());
    let (flow_dims, flow_layers) = flow.to_flow_spec_params();
    let (clf_dims, clf_params) = clf.to_mlp_parts();
    let spec = BundleSpec {
        min: Vec::new(),
        max: Vec::new(),
        direction: Vec::new(),
        grid: Vec::new(),
        dataset: "triangle-test".into(),
        seed: 0,
        metrics: MetricsWire::default(),
        names: (0..4).map(|i| format!("x{i}")).collect(),
        binary: vec![false; 4],
        actionable: vec![false, true, true, true],
        parents: parents.clone(),
        order: vec![0, 1, 2, 3],
        mean: vec![0.0; 4],
        std: vec![1.0; 4],
        flow: FlowSpec {
            dims: flow_dims,
            layers: flow_layers,
        },
        classifier: MlpSpec {
            dims: clf_dims,
            hidden: WireAct::Relu,
            output: WireAct::Sigmoid,
            params: clf_params,
        },
        carma: None,
    };
    let bytes = spec.to_bytes().expect("export");
    let bundle = carma_core::Bundle::new(&bytes).expect("decode");
    let mut scratch = vec![0.0f32; bundle.scratch_len()];

    let x = random_matrix(10, 4, 9, 1.5);
    let z = flow.abduct(&x);
    let lp = flow.log_prob(&x);
    let p = clf.prob(&x);
    let back = flow.inverse(&z);
    for r in 0..x.nrows() {
        let xr: Vec<f32> = x.row(r).iter().map(|&v| v as f32).collect();
        let zr: Vec<f32> = z.row(r).iter().map(|&v| v as f32).collect();
        let mut out = [0.0f32; 4];
        bundle.abduct(&xr, &mut out, &mut scratch).unwrap();
        for i in 0..4 {
            approx::assert_abs_diff_eq!(f64::from(out[i]), z[[r, i]], epsilon = CORE_TOL);
        }
        bundle.invert(&zr, &mut out, &mut scratch).unwrap();
        for i in 0..4 {
            approx::assert_abs_diff_eq!(f64::from(out[i]), back[[r, i]], epsilon = CORE_TOL);
        }
        let core_lp = bundle.log_likelihood(&xr, &mut scratch).unwrap();
        approx::assert_abs_diff_eq!(f64::from(core_lp), lp[r], epsilon = CORE_TOL);
        let core_p = bundle.classify(&xr, &mut scratch).unwrap();
        approx::assert_abs_diff_eq!(f64::from(core_p), p[r], epsilon = CORE_TOL);
    }
}
