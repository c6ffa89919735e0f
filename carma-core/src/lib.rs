//! # carma-core
//!
//! Allocation-free inference for CARMA (causal algorithmic recourse with
//! amortization, FAccT 2024) on a trained model bundle.
//!
//! `#![no_std]`, no `alloc`, no `unsafe`. A [`Bundle`] is decoded from
//! caller-owned bytes without copying the weights; every operation writes into
//! slices the caller provides, with a scratch area of
//! [`Bundle::scratch_len`] values.
//!
//! ```
//! use carma_core::format::*;
//! use carma_core::{Bundle, FeatureSet};
//!
//! // One feature, "savings", standardized with mean 10 and std 2. The flow is
//! // the identity (all its weights zero), the classifier is
//! // sigmoid(x~ - 1), the mask network always selects the feature and the
//! // action network always shifts its latent by 3.
//! fn le<const N: usize>(v: [f32; N]) -> [[u8; 4]; N] {
//!     v.map(f32::to_le_bytes)
//! }
//! fn mlp<'a>(dims: &'a [u8], params: &'a [[u8; 4]], output: Activation) -> MlpWire<'a> {
//!     MlpWire { dims, hidden: Activation::Relu, output, params: params.as_flattened() }
//! }
//! let (mean, std, range, weight) = (le([10.0]), le([2.0]), le([4.0]), le([1.0]));
//! let (lo, hi) = (le([0.0]), le([100.0])); // recommendations stay in [0, 100]
//! let flow_params = le([0.0; 6]); // W1 (1x1), b1, W2 (2x1), b2
//! let clf_params = le([1.0, -1.0]); // W, b
//! let mask_params = le([0.0, 0.0, 0.0, 1.0]); // phi_0 = 0, phi_1 = 1
//! let action_params = le([0.0, 0.0, 3.0]);
//! let wire = BundleWire {
//!     meta: MetaWire { dataset: "toy", seed: 0, trainer: "doc", metrics: MetricsWire::default() },
//!     features: FeaturesWire {
//!         names: "savings", binary: &[0], actionable: &[1], parents: &[0], order: &[0],
//!         min: lo.as_flattened(), max: hi.as_flattened(), direction: &[0], // 0: any direction
//!     },
//!     scaler: ScalerWire { mean: mean.as_flattened(), std: std.as_flattened() },
//!     // Widths are u16 LE: 1 -> 1 -> 2. The single hidden unit has no inputs,
//!     // so it is ready before any feature is known: schedule [1, 1].
//!     flow: FlowWire { layers: 1, dims: &[1, 0, 1, 0, 2, 0], params: flow_params.as_flattened(), ready: &[1, 0, 1, 0] },
//!     classifier: mlp(&[1, 0, 1, 0], &clf_params, Activation::Sigmoid),
//!     grid: None, // no integer or categorical feature
//!     carma: Some(CarmaWire {
//!         mask_net: mlp(&[1, 0, 2, 0], &mask_params, Activation::Identity),
//!         action_net: mlp(&[2, 0, 1, 0], &action_params, Activation::Identity),
//!         clamp_lo: -4.0, clamp_hi: 5.0, cost_range: range.as_flattened(), weights: weight.as_flattened(),
//!     }),
//! };
//! let mut buf = [0u8; 512];
//! let n = wire.encode(&mut buf)?;
//!
//! let bundle = Bundle::new(&buf[..n])?;
//! let mut scratch = [0.0f32; 64];
//! assert!(bundle.scratch_len() <= scratch.len());
//! let mut x_cf = [0.0f32];
//! let rec = bundle.recommend(&[10.0], FeatureSet::EMPTY, &mut x_cf, &mut scratch)?;
//! // x~ = 0, p = sigmoid(-1) < 0.5: rejected. z_cf = 0 + 3, x~_cf = 3, x_cf = 3 * 2 + 10.
//! assert!(!rec.already_accepted && rec.accepted);
//! assert!(rec.mask.contains(0));
//! assert_eq!(x_cf, [16.0]);
//! assert_eq!(rec.cost, 9.0 / 4.0); // w (x~ - x~_cf)^2 / range over 1 actionable feature
//! assert!(rec.prob_before < 0.5 && rec.prob_after > 0.5);
//!
//! // Forbidding the feature leaves nothing to change: still rejected.
//! let rec = bundle.recommend(&[10.0], [0].into_iter().collect(), &mut x_cf, &mut scratch)?;
//! assert!(rec.mask.is_empty() && !rec.accepted);
//! # Ok::<(), carma_core::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod alternatives;
mod batch;
pub mod bundle;
pub mod carma;
pub mod elu;
pub mod error;
pub mod feature_set;
pub mod flow;
pub mod format;
mod graph;
mod lanes;
pub mod le;
pub mod mlp;
pub mod recommend;
mod schedule;

pub use bundle::{Bundle, Kind};
pub use error::Error;
pub use feature_set::FeatureSet;
pub use format::Direction;
pub use recommend::{Limits, Options, Recommendation, Refine, Status};
