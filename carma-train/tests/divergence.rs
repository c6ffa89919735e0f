//! Training that goes wrong (issue 7): NaN in the data and diverging
//! configurations stop with a typed error naming the stage, the epoch and
//! the quantity, instead of handing NaN or meaningless weights to the export.
//!
//! Before the divergence check, an absurd learning rate (1e6) trained "fine":
//! the Loan classifier ended at chance accuracy (0.52) with weights near 1e7,
//! the flow's test log-likelihood was -6.6e13 nats, and both were exported.

use carma_train::classifier::{Classifier, ClassifierConfig, ClassifierError};
use carma_train::flow::{CausalFlow, FlowConfig, FlowError};
use carma_train::pipeline::{NoProgress, PipelineConfig, PipelineError, train_simulated};
use carma_train::scm::{Dataset, Scm};
use ndarray::{Array1, Array2};

fn tiny() -> PipelineConfig {
    PipelineConfig::tiny(Dataset::Loan)
}

fn loan(n: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let s = Scm::new(Dataset::Loan).sample(n, seed);
    (s.x, s.y)
}

#[test]
fn an_exploding_classifier_stops_with_stage_epoch_and_quantity() {
    let mut cfg = tiny();
    cfg.classifier.lr = 1e6;
    let err = train_simulated(Dataset::Loan, &cfg, &mut NoProgress).unwrap_err();
    let PipelineError::Classifier(ClassifierError::Diverged { epoch, quantity }) = &err else {
        panic!("expected a classifier divergence, got {err}");
    };
    assert!(*epoch >= 1 && *epoch <= cfg.classifier.epochs);
    assert!(quantity.contains("validation loss"), "{quantity}");
    let text = err.to_string();
    assert!(
        text.starts_with("classifier: training diverged at epoch"),
        "{text}"
    );
}

#[test]
fn an_exploding_flow_stops_with_stage_epoch_and_quantity() {
    for lr in [1e6, 1e300] {
        let mut cfg = tiny();
        cfg.flow.lr = lr;
        let err = train_simulated(Dataset::Loan, &cfg, &mut NoProgress).unwrap_err();
        let PipelineError::Flow(FlowError::Diverged { epoch, quantity }) = &err else {
            panic!("lr {lr:e}: expected a flow divergence, got {err}");
        };
        assert!(*epoch >= 1 && *epoch <= cfg.flow.epochs, "lr {lr:e}");
        assert!(
            quantity.contains("not finite") || quantity.contains("exploded"),
            "{quantity}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("causal flow: training diverged at epoch"),
            "{text}"
        );
    }
}

#[test]
fn the_paper_settings_do_not_trip_the_check() {
    // The tiny pipeline with the paper's learning rates trains through.
    let s = train_simulated(Dataset::Loan, &tiny(), &mut NoProgress).unwrap();
    assert!(s.trained.metrics.flow_test_loglik.unwrap().is_finite());
}

#[test]
fn nan_in_the_data_is_refused_with_row_and_column() {
    let (mut x, y) = loan(200, 1);
    let (xv, yv) = loan(100, 2);
    x[[17, 3]] = f64::NAN;
    let cfg = ClassifierConfig::logistic().check().unwrap();
    assert_eq!(
        Classifier::fit(&x, &y, &xv, &yv, &cfg).unwrap_err(),
        ClassifierError::NonFinite {
            split: "training",
            row: 17,
            col: 3
        }
    );
    let parents: Vec<Vec<usize>> = {
        let g = Scm::new(Dataset::Loan).graph().clone();
        (0..g.len()).map(|i| g.parents(i).to_vec()).collect()
    };
    let mut xv_bad = xv.clone();
    xv_bad[[5, 0]] = f64::INFINITY;
    let flow_cfg = FlowConfig {
        epochs: 1,
        ..FlowConfig::default()
    }
    .check()
    .unwrap();
    assert_eq!(
        CausalFlow::fit(&xv, &xv_bad, &parents, &flow_cfg).unwrap_err(),
        FlowError::NonFinite {
            split: "validation",
            row: 5,
            col: 0
        }
    );
}
