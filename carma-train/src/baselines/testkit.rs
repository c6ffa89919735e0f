//! A small recourse problem for the baseline tests: a 3-node linear SCM
//! (`x0 -> x1`, `x0 -> x2`, `x1 -> x2`), a briefly trained causal flow on it, a
//! logistic classifier, and the rejected individuals. Built once per test binary.

use std::sync::OnceLock;

use ndarray::{Array1, Array2, Axis, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::carma::RecourseProblem;
use crate::classifier::{Classifier, ClassifierConfig};
use crate::flow::{CausalFlow, FlowConfig};

/// The toy problem.
pub(crate) struct Toy {
    pub flow: CausalFlow,
    pub classifier: Classifier,
    pub problem: RecourseProblem,
    /// Standardized individuals the classifier rejects.
    pub rejected: Array2<f64>,
}

pub(crate) fn parents() -> Vec<Vec<usize>> {
    vec![vec![], vec![0], vec![0, 1]]
}

/// `n` standardized rows of the linear SCM.
fn sample(n: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 3));
    for mut r in x.rows_mut() {
        let u: [f64; 3] = std::array::from_fn(|_| StandardNormal.sample(&mut rng));
        r[0] = u[0];
        r[1] = 0.8 * r[0] + 0.6 * u[1];
        r[2] = -0.5 * r[0] + 0.7 * r[1] + 0.5 * u[2];
    }
    let mean = x.mean_axis(Axis(0)).expect("rows");
    let std = x.std_axis(Axis(0), 1.0);
    (x - &mean) / &std
}

fn build() -> Toy {
    let x = sample(1200, 11);
    let flow_cfg = FlowConfig {
        hidden: vec![8],
        epochs: 10,
        seed: 1,
        ..FlowConfig::default()
    }
    .check()
    .expect("valid flow config");
    let (flow, _) = CausalFlow::fit(
        &x.slice(s![..1000, ..]).to_owned(),
        &x.slice(s![1000.., ..]).to_owned(),
        &parents(),
        &flow_cfg,
    )
    .expect("flow fits");
    let y: Array1<f64> = x
        .rows()
        .into_iter()
        .map(|r| f64::from(u8::from(r[1] + r[2] - 0.3 * r[0] > 1.0)))
        .collect();
    let clf_cfg = ClassifierConfig {
        epochs: 60,
        ..ClassifierConfig::steep(&[])
    }
    .check()
    .expect("valid classifier config");
    let (classifier, _) = Classifier::fit(&x, &y, &x, &y, &clf_cfg).expect("classifier fits");
    let p = classifier.prob(&x);
    let rejected_rows: Vec<usize> = (0..x.nrows()).filter(|&i| p[i] < 0.5).collect();
    let cost_range = x.map_axis(Axis(0), |c| {
        c.fold(f64::MIN, |a, &b| a.max(b)) - c.fold(f64::MAX, |a, &b| a.min(b))
    });
    Toy {
        flow,
        classifier,
        problem: RecourseProblem {
            actionable: vec![false, true, true],
            weights: vec![1.0, 1.0, 2.0],
            cost_range: cost_range.to_vec(),
        },
        rejected: x.select(Axis(0), &rejected_rows),
    }
}

/// The shared toy problem.
pub(crate) fn toy() -> &'static Toy {
    static TOY: OnceLock<Toy> = OnceLock::new();
    TOY.get_or_init(build)
}
