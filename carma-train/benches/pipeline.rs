//! The full Loan pipeline's wall time with the paper's settings (`PipelineConfig::paper`,
//! seed 0), on one thread: simulate the three samples, train the classifier (up to 500
//! epochs, early stopping), the flow (up to 500 epochs, early stopping) and CARMA (450
//! epochs, validation every epoch), score CARMA on the rejected test individuals
//! (`pipeline::train_simulated`), then the evaluation of CARMA as served: export the bundle,
//! `carma-core` recommends for every rejected test individual, scored against the true SCM
//! (`evaluate::run_carma_core`, `evaluate::score`). The oracle and the optimizer baselines
//! are not part of it (see `per_individual.rs`).
//!
//! One run took 27 s on a quiet core and up to 49 s on the loaded 2-core machine (CARMA's
//! 450 epochs are three quarters of it). Criterion's minimum of 10 samples, one run each (the
//! 200 s target keeps one run per sample for runs over 20 s; criterion warns that it cannot
//! finish in it), plus its warm-up run make this bench take 5 to 10 minutes. Each run's
//! per-stage split goes to stderr. Plain `cargo bench` skips this bench (`bench = false` in
//! Cargo.toml); run it by name, alone on the machine:
//!
//! ```text
//! cargo bench -p carma-train --bench pipeline
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use carma_train::evaluate::{rejected_test, run_carma_core, score};
use carma_train::pipeline::{PipelineConfig, Progress, Stage, train_simulated};
use carma_train::scm::Dataset;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

/// Records the wall time between the end of one stage and the end of the next.
struct StageTimes {
    last: Instant,
    split: Vec<(&'static str, f64)>,
}

impl Progress for StageTimes {
    fn done(&mut self, stage: Stage, _summary: &str) {
        let now = Instant::now();
        self.split
            .push((stage.name(), (now - self.last).as_secs_f64()));
        self.last = now;
    }
}

fn loan_pipeline(c: &mut Criterion) {
    let mut cfg = PipelineConfig::paper(Dataset::Loan);
    cfg.seed = 0;
    let mut group = c.benchmark_group("pipeline");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(200));
    group.bench_function("loan_paper", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let mut times = StageTimes {
                    last: start,
                    split: Vec::new(),
                };
                let sim = train_simulated(Dataset::Loan, &cfg, &mut times).expect("Loan trains");
                let eval_start = Instant::now();
                let x = rejected_test(&sim);
                let scores = score(&sim, &x, &run_carma_core(&sim, &x));
                let elapsed = start.elapsed();
                total += elapsed;
                let split: Vec<String> = times
                    .split
                    .iter()
                    .map(|(name, s)| format!("{name} {s:.1} s"))
                    .collect();
                eprintln!(
                    "run: {:.1} s = {}, evaluation {:.2} s; coverage {:.2} %, validity {:.2} % \
                     on {} rejected test individuals",
                    elapsed.as_secs_f64(),
                    split.join(", "),
                    eval_start.elapsed().as_secs_f64(),
                    scores.coverage_pct,
                    scores.validity_pct,
                    scores.n_test
                );
                black_box(scores);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, loan_pipeline);
criterion_main!(benches);
