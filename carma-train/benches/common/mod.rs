//! Setup shared by the training-side benches (`stages`, `per_individual`): one Loan model
//! at the paper's sample sizes, trained once, deterministically.

use std::time::Instant;

use carma_train::pipeline::{NoProgress, PipelineConfig, Simulated, train_simulated};
use carma_train::scm::Dataset;

/// Master seed of the bench model (every stage derives its own seed from it).
pub const SEED: u64 = 0;

/// Loan at the paper's sizes (`PipelineConfig::paper`: 20,000 classifier rows, 25,000 flow
/// rows, 20,000 recourse rows), with the classifier and the flow trained with the paper's
/// epochs and early stopping (about 10 s; the rejected individuals, and so the size of a
/// CARMA or DiCE-VAE epoch, depend on the classifier), and CARMA with a one-epoch budget
/// (the benches that need CARMA train their own).
pub fn loan_model() -> Simulated {
    let mut cfg = PipelineConfig::paper(Dataset::Loan);
    cfg.seed = SEED;
    cfg.carma.epochs = 1;
    let start = Instant::now();
    let sim = train_simulated(Dataset::Loan, &cfg, &mut NoProgress).expect("Loan trains");
    eprintln!(
        "setup: Loan model (seed {SEED}, paper classifier and flow, 1 CARMA epoch) trained in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    sim
}
