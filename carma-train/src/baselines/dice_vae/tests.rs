use super::*;
use crate::baselines::testkit::toy;
use crate::nn::gradcheck::random_matrix;

fn config(epochs: usize) -> CheckedDiceVaeConfig {
    DiceVaeConfig {
        hidden: vec![16, 16],
        epochs,
        batch_size: 64,
        lr: 3e-3,
        ..DiceVaeConfig::default()
    }
    .check()
    .unwrap()
}

/// Every gradient path (cost, hinge through the frozen classifier, fixed-feature overwrite,
/// decoder, reparameterization, KL, encoder) against central finite differences, with the
/// noise fixed.
#[test]
fn gradients_match_finite_differences() {
    let t = toy();
    let cfg = DiceVaeConfig {
        hidden: vec![6, 5],
        kl_weight: 0.3,
        hinge_weight: 2.0,
        margin: 0.2,
        ..DiceVaeConfig::default()
    }
    .check()
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut vae = DiceVae::new(3, t.problem.clone(), &cfg, &mut rng);
    let x = t.rejected.slice(s![..8, ..]).to_owned();
    let noise = random_matrix(8, 3, 7, 1.5);
    let base = vae.loss(&t.classifier, &x, &noise, &cfg);
    assert!(base.hinge > 0.0 && base.cost > 0.0 && base.kl > 0.0);
    vae.zero_grad();
    let returned = vae.loss_and_backward(&t.classifier, &x, &noise, &cfg);
    assert_eq!(returned, base);
    let analytic = vae.flat_grads();
    let params = vae.flat_params();
    let h = 1e-6;
    let mut probe = vae.clone();
    for j in 0..params.len() {
        let mut eval = |delta: f64| {
            let mut p = params.clone();
            p[j] += delta;
            probe.set_flat_params(&p);
            probe.loss(&t.classifier, &x, &noise, &cfg).total
        };
        let numeric = (eval(h) - eval(-h)) / (2.0 * h);
        approx::assert_abs_diff_eq!(numeric, analytic[j], epsilon = 1e-7 + 1e-5 * numeric.abs());
    }
}

fn trained(seed: u64, n_train: usize) -> DiceVae {
    let t = toy();
    let cfg = DiceVaeConfig {
        seed,
        ..config(60).get().clone()
    }
    .check()
    .unwrap();
    let x = t.rejected.slice(s![..n_train, ..]).to_owned();
    DiceVae::fit(&t.classifier, &x, t.problem.clone(), &cfg, &mut |_| {}).unwrap()
}

#[test]
fn non_actionable_and_forbidden_features_are_untouched() {
    let t = toy();
    let vae = trained(1, 200);
    let x = t.rejected.slice(s![..50, ..]).to_owned();
    let out = vae.recommend(&t.classifier, &x, &[]).unwrap();
    assert_eq!(out.x_cf.column(0), x.column(0));
    assert!(out.mask.column(0).iter().all(|&m| m == 0.0));
    let forbid = vae
        .recommend(&t.classifier, &x, &[false, false, true])
        .unwrap();
    assert_eq!(forbid.x_cf.column(0), x.column(0));
    assert_eq!(forbid.x_cf.column(2), x.column(2));
    assert!(forbid.mask.column(2).iter().all(|&m| m == 0.0));
    // The free feature gets the same decoder output as without the forbid flag.
    assert_eq!(forbid.x_cf.column(1), out.x_cf.column(1));
}

/// A short training run on the toy problem reaches high coverage on held-out rejected
/// individuals, with the cost the problem defines.
#[test]
fn short_training_reaches_high_coverage() {
    let t = toy();
    let n = t.rejected.nrows();
    let n_train = (2 * n) / 3;
    let mut epochs = Vec::new();
    let cfg = config(60);
    let x_train = t.rejected.slice(s![..n_train, ..]).to_owned();
    let start = std::time::Instant::now();
    let vae = DiceVae::fit(&t.classifier, &x_train, t.problem.clone(), &cfg, &mut |e| {
        epochs.push(e)
    })
    .unwrap();
    let train_time = start.elapsed();
    assert_eq!(epochs.len(), 60);
    assert!(epochs[59].loss.total < epochs[0].loss.total);
    let x_test = t.rejected.slice(s![n_train.., ..]).to_owned();
    let start = std::time::Instant::now();
    let out = vae.recommend(&t.classifier, &x_test, &[]).unwrap();
    let infer = start.elapsed().as_secs_f64() / x_test.nrows() as f64;
    let coverage = out.prob.iter().filter(|&&p| p >= 0.5).count() as f64 / x_test.nrows() as f64;
    eprintln!(
        "dice-vae: {} train / {} test rows, trained in {:.2?}, coverage {:.1} %, cost x100 {:.3}, \
         mean actions {:.2}, {:.1} us per individual",
        n_train,
        x_test.nrows(),
        train_time,
        100.0 * coverage,
        100.0 * out.cost.mean().unwrap(),
        out.mask.sum() / x_test.nrows() as f64,
        infer * 1e6
    );
    assert!(coverage > 0.8, "coverage {coverage}");
    assert_eq!(out.cost, t.problem.cost(&x_test, &out.x_cf, &out.mask));
    assert_eq!(out.prob, t.classifier.prob(&out.x_cf));
}

#[test]
fn same_seed_gives_identical_outputs() {
    let t = toy();
    let x = t.rejected.slice(s![..30, ..]).to_owned();
    let a = trained(4, 150).recommend(&t.classifier, &x, &[]).unwrap();
    let b = trained(4, 150).recommend(&t.classifier, &x, &[]).unwrap();
    assert_eq!(a, b);
    let c = trained(5, 150).recommend(&t.classifier, &x, &[]).unwrap();
    assert_ne!(a.x_cf, c.x_cf);
}

#[test]
fn config_and_inputs_are_checked() {
    assert!(DiceVaeConfig::default().check().is_ok());
    for bad in [
        DiceVaeConfig {
            hidden: vec![],
            ..DiceVaeConfig::default()
        },
        DiceVaeConfig {
            lr: 0.0,
            ..DiceVaeConfig::default()
        },
        DiceVaeConfig {
            kl_weight: -1.0,
            ..DiceVaeConfig::default()
        },
        DiceVaeConfig {
            margin: f64::NAN,
            ..DiceVaeConfig::default()
        },
        DiceVaeConfig {
            epochs: 0,
            ..DiceVaeConfig::default()
        },
    ] {
        assert!(matches!(bad.check(), Err(BaselineError::BadSetting { .. })));
    }
    let t = toy();
    let cfg = config(1);
    let empty = Array2::zeros((0, 3));
    assert_eq!(
        DiceVae::fit(&t.classifier, &empty, t.problem.clone(), &cfg, &mut |_| {}),
        Err(BaselineError::NoRejected)
    );
    let mut p = t.problem.clone();
    p.weights.pop();
    assert!(matches!(
        DiceVae::fit(&t.classifier, &t.rejected, p, &cfg, &mut |_| {}),
        Err(BaselineError::Shape { .. })
    ));
    let vae = trained(0, 20);
    assert!(matches!(
        vae.recommend(&t.classifier, &Array2::zeros((1, 2)), &[]),
        Err(BaselineError::Shape { .. })
    ));
}
