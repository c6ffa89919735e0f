//! Neural-network building blocks with hand-written backward passes (f64, `ndarray`).
//!
//! Everything works on mini-batches: an `Array2<f64>` holds one individual per row.
//!
//! - [`Activation`]: `Identity`, `Relu`, `Elu` (alpha 1), `Sigmoid`, `Tanh`, applied elementwise, with
//!   [`Activation::forward`] and [`Activation::backward`].
//! - [`Dense`]: `y = x W^T + b`, `W` stored `[out][in]` like torch. [`Dense::masked`] builds the
//!   MADE masked layer (`W ⊙ M`, with the weight gradient masked too).
//! - [`Mlp`]: a stack of [`Dense`] layers with one activation after every hidden layer and one
//!   after the output layer. [`Mlp::forward`] caches what [`Mlp::backward`] needs;
//!   `backward` takes `dL/d(output)`, **adds** the parameter gradients into the layers and returns
//!   `dL/d(input)`. For frozen networks use [`Mlp::forward_with`] + [`Mlp::input_grad`] with an
//!   explicit [`MlpCache`] (no `&mut self`, parameter gradients untouched), or [`Mlp::predict`].
//! - [`loss`]: binary cross-entropy (on logits and on probabilities) and the standard-normal
//!   negative log-likelihood with a log-determinant (the flow loss); each returns the mean loss
//!   and its gradient.
//! - [`Params`]: every trainable thing lists its `(parameter, gradient)` slices in a fixed
//!   order. [`Adam`] updates anything that implements it: `model.zero_grad()`, forward, loss,
//!   backward, `adam.step(&mut model)`.
//! - [`MiniBatches`] (seeded shuffling with `ChaCha8Rng`), [`EarlyStopping`] (patience on a
//!   validation loss, keeps a clone of the best model) and [`ReduceLrOnPlateau`]; [`EpochEnd`] is
//!   what the `fit_observed` training functions report after every epoch.
//! - [`made_masks`]: MADE masks from parent lists (zuko's construction, FLOW_MATH section 7).
//! - [`Init`]: Xavier/Glorot uniform with a gain and a constant bias (CARMA: gain `sqrt(2)`,
//!   bias 0.01, docs/MATH.md section 5, CARMA training) or torch's `nn.Linear` default; always from a seeded RNG.

mod activation;
mod adam;
mod dense;
mod divergence;
mod init;
pub mod loss;
mod made;
mod mlp;
mod sgd;
mod train;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use activation::Activation;
pub use adam::{Adam, AdamConfig, WeightDecay};
pub use dense::Dense;
pub use divergence::{EXPLODED_FACTOR, divergence};
pub use init::{CARMA_INIT, Init};
pub use made::{made_masks, made_min_hidden};
pub use mlp::{Mlp, MlpCache};
pub use sgd::Sgd;
pub use train::{EarlyStopping, EpochEnd, MiniBatches, ReduceLrOnPlateau, Verdict};

/// One trainable tensor and its accumulated gradient, both flattened (row-major).
#[derive(Debug)]
pub struct ParamGrad<'a> {
    /// The parameter values.
    pub param: &'a mut [f64],
    /// `dL/d(param)`, accumulated by the backward passes since the last [`Params::zero_grad`].
    pub grad: &'a mut [f64],
}

/// Anything with trainable parameters. The order of [`Params::params_and_grads`] must not change
/// between calls: the optimizer keeps its moments by position.
pub trait Params {
    /// Every parameter tensor with its gradient, in a fixed order.
    fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>>;

    /// Set every gradient to zero.
    fn zero_grad(&mut self) {
        for pg in self.params_and_grads() {
            pg.grad.fill(0.0);
        }
    }

    /// Total number of scalar parameters.
    fn n_params(&mut self) -> usize {
        self.params_and_grads()
            .iter()
            .map(|pg| pg.param.len())
            .sum()
    }

    /// All parameters, concatenated in [`Params::params_and_grads`] order.
    fn flat_params(&mut self) -> Vec<f64> {
        let mut out = Vec::new();
        for pg in self.params_and_grads() {
            out.extend_from_slice(pg.param);
        }
        out
    }

    /// All gradients, concatenated in [`Params::params_and_grads`] order.
    fn flat_grads(&mut self) -> Vec<f64> {
        let mut out = Vec::new();
        for pg in self.params_and_grads() {
            out.extend_from_slice(pg.grad);
        }
        out
    }

    /// Overwrite the parameters from a vector laid out as [`Params::flat_params`] returns it.
    /// Extra values are ignored; missing values leave the rest unchanged.
    fn set_flat_params(&mut self, values: &[f64]) {
        let mut rest = values;
        for pg in self.params_and_grads() {
            let n = pg.param.len().min(rest.len());
            pg.param[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
    }
}
