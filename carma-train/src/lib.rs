//! # carma-train
//!
//! The desktop side of carma-rs: ground-truth structural causal models, data
//! handling, hand-written neural layers with backpropagation, the classifier,
//! the causal normalizing flow, CARMA training, the baselines and metrics, and
//! export to the `carma-core` bundle format.

pub mod baselines;
pub mod batch;
pub mod carma;
pub mod classifier;
pub mod classifier_json;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod flow;
pub mod golden;
pub mod graph;
pub mod import;
pub mod inspect;
pub mod io;
pub mod nn;
pub mod oracle;
pub mod pipeline;
pub mod preflight;
pub mod scm;
pub mod tune;
