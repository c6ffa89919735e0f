//! Times the three training stages of the Loan pipeline at the paper's sizes (issue 19's
//! baseline and profile target): the classifier and the flow once, then CARMA with the
//! project's Loan settings (`PipelineConfig::project_setting`), and prints what CARMA reaches
//! on the rejected test individuals so a speed change can be checked for quality.
//!
//! ```sh
//! cargo run --release -p carma-train --example train_profile -- 0 450
//! perf record -g target/release/examples/train_profile 0 450
//! ```
//! Arguments: seed (default 0), CARMA epochs (default the setting's), CARMA repetitions
//! (default 1).

use std::time::Instant;

use carma_train::carma::Carma;
use carma_train::nn::Params;
use carma_train::pipeline::{
    PipelineConfig, Progress, Stage, rejected_rows, retrain_carma, train_simulated,
};
use carma_train::scm::Dataset;

/// FNV-1a over the bits of every CARMA parameter (f64): the same digest means the same model.
fn digest(carma: &Carma) -> u64 {
    let mut nets = [carma.mask_net().clone(), carma.action_net().clone()];
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for v in nets.iter_mut().flat_map(|n| n.flat_params()) {
        for b in v.to_bits().to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

struct Log(Instant);

impl Progress for Log {
    fn done(&mut self, s: Stage, summary: &str) {
        eprintln!(
            "[{:>6.2}s] {}: {}",
            self.0.elapsed().as_secs_f64(),
            s.name(),
            summary
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).map_or(0, |s| s.parse().expect("a seed"));
    let mut cfg = PipelineConfig::project_setting(Dataset::Loan, false);
    cfg.seed = seed;
    let epochs = args
        .get(2)
        .map_or(cfg.carma.epochs, |s| s.parse().expect("epochs"));
    let reps: usize = args.get(3).map_or(1, |s| s.parse().expect("repetitions"));
    let mut first = cfg.clone();
    first.carma.epochs = 1;
    let sim = train_simulated(Dataset::Loan, &first, &mut Log(Instant::now())).expect("trains");
    cfg.carma.epochs = epochs;
    for _ in 0..reps {
        let start = Instant::now();
        let out = retrain_carma(&sim, &cfg).expect("CARMA trains");
        let secs = start.elapsed().as_secs_f64();
        let t = &out.trained;
        let rows = rejected_rows(t, &sim.test.x).expect("same width");
        let m = t.carma_metrics(&t.scaler.transform(rows.view()).expect("same width"));
        println!(
            "carma {epochs} epochs: {secs:.2} s ({:.2} ms/epoch); test: coverage {:.2} %, cost x100 {:.3}, {:.2} actions; parameters {:016x}",
            1e3 * secs / epochs as f64,
            100.0 * m.coverage,
            100.0 * m.cost,
            m.mean_actions,
            digest(&t.carma)
        );
    }
}
