//! One training epoch of the two recourse stages at the paper's Loan sizes, against a
//! classifier and a flow trained once in setup (`common::loan_model`: the paper's sample
//! sizes and epochs, seed 0):
//!
//! - CARMA (mask network 32, 32; action network 32, 32, 32; batch 256; docs/MATH.md section 5, CARMA training):
//!   `Carma::fit` on the standardized recourse training rows the classifier rejects (4,720 of
//!   the 10,000 rows with seed 0), with validation on the rejected rows of the recourse test
//!   split (the same size as the validation split the pipeline scores every epoch, which
//!   `train_simulated` does not return), as `pipeline::train_simulated` trains it. Two
//!   benchmarks: `loan_carma_fit_1_epoch`, a fit with a budget of one epoch (so with the
//!   one-off abduction of the training rows and the initialization, like `train_epoch.rs`),
//!   and `loan_carma_second_epoch`, the wall time of the second epoch alone (training and its
//!   validation scoring) of two-epoch fits, timed between the epoch callbacks. Setup also
//!   prints the time of each epoch of one 10-epoch fit.
//! - DiCE-VAE (encoder and decoder 32, 32; batch 256; docs/MATH.md section 7, oracle & baselines): `DiceVae::fit` with a
//!   one-epoch budget on the same rejected rows, as `evaluate::evaluate_seed` trains it.
//!
//! The classifier's and the flow's epochs are in `train_epoch.rs`. Setup takes about 10 s
//! (the classifier's and the flow's training); the benches about 40 s, on one thread.
//!
//! ```text
//! cargo bench -p carma-train --bench stages
//! ```

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use carma_train::baselines::{DiceVae, DiceVaeConfig};
use carma_train::carma::{Carma, CarmaConfig, CheckedCarmaConfig};
use carma_train::pipeline::{Trained, rejected};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, Axis};

/// Epochs of the CARMA fit whose per-epoch times setup prints.
const SETUP_EPOCHS: usize = 10;

/// The standardized rows of `x_raw` (original units) the model's classifier rejects.
fn rejected_std(t: &Trained, x_raw: &Array2<f64>) -> Array2<f64> {
    let x = t.scaler.transform(x_raw.view()).expect("same width");
    x.select(Axis(0), &rejected(&t.classifier, &x))
}

fn loan_recourse_epochs(c: &mut Criterion) {
    let sim = common::loan_model();
    let t = &sim.trained;
    let x_rej = rejected_std(t, &sim.train.x);
    let x_val_rej = rejected_std(t, &sim.test.x);
    let problem = t.carma.problem().clone();
    eprintln!(
        "setup: {} of {} recourse training rows rejected (CARMA and DiCE-VAE train on them), \
         {} of {} validation rows",
        x_rej.nrows(),
        sim.train.n_rows(),
        x_val_rej.nrows(),
        sim.test.n_rows()
    );

    let carma_cfg = |epochs| {
        CarmaConfig {
            epochs,
            seed: 13,
            ..CarmaConfig::default()
        }
        .check()
        .expect("valid config")
    };
    // Wall time at the end of each epoch (after its validation scoring) of a `cfg` fit.
    let carma_epoch_ends = |cfg: &CheckedCarmaConfig| {
        let mut ends = vec![Instant::now()];
        Carma::fit(
            &t.flow,
            &t.classifier,
            &x_rej,
            Some(&x_val_rej),
            problem.clone(),
            cfg,
            &mut |e| {
                black_box(e);
                ends.push(Instant::now());
            },
        )
        .expect("fit");
        ends
    };
    let ends = carma_epoch_ends(&carma_cfg(SETUP_EPOCHS));
    let ms: Vec<String> = ends
        .windows(2)
        .map(|w| format!("{:.1}", (w[1] - w[0]).as_secs_f64() * 1e3))
        .collect();
    eprintln!(
        "setup: a {SETUP_EPOCHS}-epoch CARMA fit, ms per epoch (the first with the abduction \
         and initialization): {}",
        ms.join(", ")
    );

    let one = carma_cfg(1);
    c.bench_function("loan_carma_fit_1_epoch", |b| {
        b.iter(|| {
            Carma::fit(
                &t.flow,
                &t.classifier,
                &x_rej,
                Some(&x_val_rej),
                problem.clone(),
                &one,
                &mut |e| {
                    black_box(e);
                },
            )
            .expect("fit")
        })
    });
    let two = carma_cfg(2);
    c.bench_function("loan_carma_second_epoch", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let ends = carma_epoch_ends(&two);
                    ends[2] - ends[1]
                })
                .sum::<Duration>()
        })
    });

    let vae_cfg = DiceVaeConfig {
        epochs: 1,
        seed: 0xD1CE,
        ..DiceVaeConfig::default()
    }
    .check()
    .expect("valid config");
    c.bench_function("loan_dice_vae_fit_1_epoch", |b| {
        b.iter(|| {
            DiceVae::fit(&t.classifier, &x_rej, problem.clone(), &vae_cfg, &mut |e| {
                black_box(e);
            })
            .expect("fit")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = loan_recourse_epochs
}
criterion_main!(benches);
