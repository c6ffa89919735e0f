use super::*;
use crate::classifier::ClassifierConfig;
use crate::flow::FlowConfig;
use ndarray::Array1;
use rand_distr::{Distribution, StandardNormal};

fn parents() -> Vec<Vec<usize>> {
    vec![vec![], vec![0], vec![0, 1]]
}

fn random_x(n: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, 3), |_| StandardNormal.sample(&mut rng))
}

fn problem() -> RecourseProblem {
    RecourseProblem {
        actionable: vec![false, true, true],
        weights: vec![1.0, 2.0, 1.0],
        cost_range: vec![4.0, 5.0, 6.0],
    }
}

fn tiny_parts() -> (CausalFlow, Classifier, Carma) {
    let flow = CausalFlow::new(
        &parents(),
        &FlowConfig {
            hidden: vec![8],
            seed: 3,
            ..FlowConfig::default()
        }
        .check()
        .unwrap(),
    )
    .unwrap();
    let clf = Classifier::new(3, &ClassifierConfig::mlp(&[5]).check().unwrap());
    let config = CarmaConfig {
        mask_hidden: vec![6],
        action_hidden: vec![6, 5],
        ..CarmaConfig::default()
    }
    .check()
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let carma = Carma::new(3, problem(), (-50.0, 50.0), &config, &mut rng);
    (flow, clf, carma)
}

/// Every gradient path (mask net, Gumbel-softmax, KL, action net, clamp, flow
/// inverse, classifier, cost, hinge) against central finite differences, with
/// the Gumbel noise fixed and the relaxed sample so the loss is differentiable.
#[test]
fn end_to_end_gradients_match_finite_differences() {
    gradients_match_finite_differences(1.0);
}

/// The same with the mask prior's KL down-weighted (`CarmaConfig::kl_weight`).
#[test]
fn end_to_end_gradients_match_finite_differences_with_a_kl_weight() {
    gradients_match_finite_differences(0.3);
}

fn gradients_match_finite_differences(kl_weight: f64) {
    let (flow, clf, mut carma) = tiny_parts();
    let x = random_x(7, 1);
    let z = flow.abduct(&x);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let noise = Array2::from_shape_fn((7, 6), |_| gumbel(&mut rng));
    let (tau, lag) = (
        0.7,
        Lagrangian {
            margin: 0.9,
            lambda: 1.5,
            damping: DEFAULT_DAMPING,
            kl_weight,
        },
    );
    let base =
        carma
            .clone()
            .loss_and_backward(&flow, &clf, &x, &z, &noise, tau, lag, MaskMode::Relaxed);
    assert!(
        base.hinge > 0.0,
        "the hinge must be active for the test to cover it"
    );
    let coef = lag.lambda - lag.damping * base.hinge;
    let objective = |c: &mut Carma| {
        let parts = c.loss_and_backward(&flow, &clf, &x, &z, &noise, tau, lag, MaskMode::Relaxed);
        parts.cost + lag.kl_weight * parts.kl + coef * parts.hinge
    };
    carma.mask_net.zero_grad();
    carma.action_net.zero_grad();
    let mut work = carma.clone();
    work.loss_and_backward(&flow, &clf, &x, &z, &noise, tau, lag, MaskMode::Relaxed);
    let analytic = NetPair(&mut work.mask_net, &mut work.action_net).flat_grads();
    let params = NetPair(&mut carma.mask_net, &mut carma.action_net).flat_params();
    let h = 1e-6;
    for j in 0..params.len() {
        let eval = |delta: f64| {
            let mut c = carma.clone();
            let mut p = params.clone();
            p[j] += delta;
            NetPair(&mut c.mask_net, &mut c.action_net).set_flat_params(&p);
            objective(&mut c)
        };
        let numeric = (eval(h) - eval(-h)) / (2.0 * h);
        approx::assert_abs_diff_eq!(numeric, analytic[j], epsilon = 1e-6 + 1e-5 * numeric.abs());
    }
}

#[test]
fn straight_through_mask_is_hard_and_respects_actionability() {
    let (flow, clf, mut carma) = tiny_parts();
    let x = random_x(20, 2);
    let z = flow.abduct(&x);
    let noise = Array2::zeros((20, 6));
    let parts = carma.loss_and_backward(
        &flow,
        &clf,
        &x,
        &z,
        &noise,
        0.5,
        Lagrangian {
            margin: 0.01,
            lambda: 0.0,
            damping: DEFAULT_DAMPING,
            kl_weight: 1.0,
        },
        MaskMode::StraightThrough,
    );
    assert!(parts.total.is_finite());
    // With zero noise the hard mask equals the inference mask.
    let m = carma.mask(&z, &[false; 3]);
    assert!(m.column(0).iter().all(|&v| v == 0.0));
    assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
    let forbidden = carma.mask(&z, &[false, true, false]);
    assert!(forbidden.column(1).iter().all(|&v| v == 0.0));
}

#[test]
fn cost_counts_only_intervened_actionable_features() {
    let p = problem();
    let x = Array2::from_shape_vec((1, 3), vec![0.0, 0.0, 0.0]).unwrap();
    let x_cf = Array2::from_shape_vec((1, 3), vec![9.0, 1.0, 2.0]).unwrap();
    let m = Array2::from_shape_vec((1, 3), vec![1.0, 1.0, 0.0]).unwrap();
    // Only feature 1: w 2 * 1^2 / range 5, averaged over the 2 actionable features.
    assert!((p.cost(&x, &x_cf, &m)[0] - 0.2).abs() < 1e-12);
    assert!((p.prior_on(1) - 0.25).abs() < 1e-12);
}

/// A short training run on a toy problem reaches high coverage, never acts
/// on the non-actionable feature, and is deterministic for a seed.
#[test]
fn training_finds_recourse_for_rejected_individuals() {
    let x = random_x(1200, 5);
    let flow_cfg = FlowConfig {
        hidden: vec![8],
        epochs: 5,
        seed: 1,
        ..FlowConfig::default()
    }
    .check()
    .unwrap();
    let (flow, _) = CausalFlow::fit(
        &x.slice(s![..1000, ..]).to_owned(),
        &x.slice(s![1000.., ..]).to_owned(),
        &parents(),
        &flow_cfg,
    )
    .unwrap();
    let y: Array1<f64> = x
        .rows()
        .into_iter()
        .map(|r| f64::from(u8::from(r[1] + r[2] > 1.0)))
        .collect();
    let clf_cfg = ClassifierConfig {
        epochs: 60,
        ..ClassifierConfig::steep(&[])
    }
    .check()
    .unwrap();
    let (clf, _) = Classifier::fit(&x, &y, &x, &y, &clf_cfg).unwrap();
    let p = clf.prob(&x);
    let rejected: Vec<usize> = (0..x.nrows()).filter(|&i| p[i] < 0.5).collect();
    let xr = x.select(Axis(0), &rejected);
    let cost_range = x.map_axis(Axis(0), |c| {
        c.fold(f64::MIN, |a, &b| a.max(b)) - c.fold(f64::MAX, |a, &b| a.min(b))
    });
    let problem = RecourseProblem {
        actionable: vec![false, true, true],
        weights: vec![1.0; 3],
        cost_range: cost_range.to_vec(),
    };
    let cfg = CarmaConfig {
        mask_hidden: vec![16],
        action_hidden: vec![16, 16],
        epochs: 40,
        batch_size: 64,
        ..CarmaConfig::default()
    }
    .check()
    .unwrap();
    let mut losses = Vec::new();
    let carma = Carma::fit(&flow, &clf, &xr, None, problem.clone(), &cfg, &mut |e| {
        losses.push(e.loss)
    })
    .unwrap();
    assert_eq!(losses.len(), 40);
    let out = carma.recommend(&flow, &clf, &xr, &[false; 3]);
    let coverage = out.prob.iter().filter(|&&v| v >= 0.5).count() as f64 / xr.nrows() as f64;
    assert!(coverage > 0.9, "coverage {coverage}");
    assert!(out.mask.column(0).iter().all(|&v| v == 0.0));
    let again = Carma::fit(&flow, &clf, &xr, None, problem, &cfg, &mut |_| {}).unwrap();
    assert_eq!(again.recommend(&flow, &clf, &xr, &[false; 3]), out);
}

/// With validation data the kept epoch is the cheapest one that reaches the
/// coverage target (or the best-covering one), measured as served.
#[test]
fn validation_keeps_the_cheapest_epoch_that_reaches_the_coverage_target() {
    let (flow, clf, _) = tiny_parts();
    let x = random_x(300, 8);
    let cfg = CarmaConfig {
        mask_hidden: vec![8],
        action_hidden: vec![8],
        epochs: 12,
        batch_size: 64,
        ..CarmaConfig::default()
    }
    .check()
    .unwrap();
    let mut seen = Vec::new();
    let carma = Carma::fit(&flow, &clf, &x, Some(&x), problem(), &cfg, &mut |e| {
        seen.push((e.val_coverage.unwrap(), e.val_cost.unwrap()))
    })
    .unwrap();
    let reached: Vec<&(f64, f64)> = seen.iter().filter(|(c, _)| *c >= TARGET_COVERAGE).collect();
    let expected = if reached.is_empty() {
        seen.iter().map(|s| s.0).fold(f64::MIN, f64::max)
    } else {
        reached.iter().map(|s| s.1).fold(f64::MAX, f64::min)
    };
    let out = carma.recommend(&flow, &clf, &x, &[]);
    let coverage = out.prob.iter().filter(|&&p| p >= 0.5).count() as f64 / 300.0;
    let cost = out.cost.sum() / 300.0;
    let got = if reached.is_empty() { coverage } else { cost };
    assert_eq!(got, expected);
}

/// With the clamp at `(-0.01, 0.01)`, every shift the action network proposes sits past it.
/// The exact (paper's) derivative then gives the action network no gradient at all from the
/// loss; the inward rule passes exactly the components that move an output back inside, so
/// the same step with the inward rule differs from the exact one only on the action network,
/// and one descent step moves the clamped outputs toward the range.
#[test]
fn the_inward_clamp_gradient_pulls_clamped_shifts_back_and_the_exact_one_does_not() {
    let (flow, clf, base) = tiny_parts();
    let x = random_x(16, 2);
    let z = flow.abduct(&x);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let noise = Array2::from_shape_fn((16, 6), |_| gumbel(&mut rng));
    let lag = Lagrangian {
        margin: 0.9,
        lambda: 2.0,
        damping: DEFAULT_DAMPING,
        kl_weight: 1.0,
    };
    let grads = |rule: ClampGradient| {
        let mut c = base.clone();
        c.clamp = (-0.01, 0.01);
        c.clamp_gradient = rule;
        c.mask_net.zero_grad();
        c.action_net.zero_grad();
        c.loss_and_backward(&flow, &clf, &x, &z, &noise, 0.7, lag, MaskMode::Relaxed);
        let mask: Vec<f64> = c.mask_net.flat_grads();
        let action: Vec<f64> = c.action_net.flat_grads();
        (mask, action)
    };
    let mut input = Array2::zeros((16, 6));
    input.slice_mut(s![.., ..3]).assign(&z);
    input.slice_mut(s![.., 3..]).fill(1.0);
    let raw = base.action_net.predict(&input);
    let outside = raw.iter().filter(|v| v.abs() > 0.01).count();
    assert!(
        outside > raw.len() / 2,
        "the test needs clamped outputs: {outside}"
    );
    let (_, exact) = grads(ClampGradient::Zero);
    let (_, inward) = grads(ClampGradient::Inward);
    let norm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
    // Outputs inside (-0.01, 0.01) are rare; the exact gradient is (nearly) all zero.
    assert!(
        norm(&inward) > 10.0 * norm(&exact),
        "{} vs {}",
        norm(&inward),
        norm(&exact)
    );
}
