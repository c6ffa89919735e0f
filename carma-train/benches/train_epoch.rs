//! One training epoch of the Loan flow and of the Loan classifier at the reference's sizes
//! (docs/MATH.md section 2, datasets: flow 20,000 training rows, classifier 10,000; batch 256; Loan widths of
//! docs/MATH.md sections 3 (classifier), 4 (causal flow)). Each iteration is `fit` with a budget of one epoch and a one-row
//! validation split, so it also counts the (small) initialization.

use carma_train::classifier::{Classifier, ClassifierConfig, LOAN_HIDDEN};
use carma_train::flow::{CausalFlow, FlowConfig};
use carma_train::scm::{Dataset, Scm};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, Axis, s};

fn standardize(x: &Array2<f64>) -> Array2<f64> {
    let mean = x.mean_axis(Axis(0)).expect("rows");
    let std = x.std_axis(Axis(0), 1.0);
    (x - &mean) / &std
}

fn loan_epochs(c: &mut Criterion) {
    let scm = Scm::new(Dataset::Loan);
    let parents: Vec<Vec<usize>> = (0..scm.n_features())
        .map(|i| scm.graph().parents(i).to_vec())
        .collect();

    let flow_x = standardize(&scm.sample(20_000, 1).x);
    let flow_val = flow_x.slice(s![..1, ..]).to_owned();
    let flow_cfg = FlowConfig {
        epochs: 1,
        ..FlowConfig::default()
    }
    .check()
    .expect("valid config");
    c.bench_function("loan_flow_epoch_20000_rows", |b| {
        b.iter(|| CausalFlow::fit(&flow_x, &flow_val, &parents, &flow_cfg).expect("fit"))
    });

    let clf_sample = scm.sample(10_000, 2);
    let clf_x = standardize(&clf_sample.x);
    let (val_x, val_y) = (
        clf_x.slice(s![..1, ..]).to_owned(),
        clf_sample.y.slice(s![..1]).to_owned(),
    );
    let clf_cfg = ClassifierConfig {
        epochs: 1,
        ..ClassifierConfig::mlp(&LOAN_HIDDEN)
    }
    .check()
    .expect("valid config");
    c.bench_function("loan_classifier_epoch_10000_rows", |b| {
        b.iter(|| Classifier::fit(&clf_x, &clf_sample.y, &val_x, &val_y, &clf_cfg).expect("fit"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = loan_epochs
}
criterion_main!(benches);
