//! CARMA: the amortized recourse networks and their training (docs/MATH.md section 5, CARMA training).
//!
//! The mask network picks which actionable features to intervene on, the
//! action network how far to move their latents; the frozen flow's inverse
//! turns the intervened latents into the counterfactual and the frozen
//! classifier scores it. Training minimizes the range-normalized cost plus the
//! mask prior's KL, under a hinge constraint on the counterfactual's
//! probability handled by a damped Lagrange multiplier.

use ndarray::{Array1, Array2, Axis, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::classifier::Classifier;
use crate::flow::CausalFlow;
use crate::nn::{
    Activation, Adam, AdamConfig, CARMA_INIT, MiniBatches, Mlp, MlpCache, Params, WeightDecay,
};

/// Mask network hidden widths for Loan (paper Table 5).
pub const DEFAULT_MASK_HIDDEN: [usize; 2] = [32, 32];
/// Action network hidden widths for Loan (paper Table 5).
pub const DEFAULT_ACTION_HIDDEN: [usize; 3] = [32, 32, 32];
/// Epochs (paper Table 5, Loan).
pub const DEFAULT_EPOCHS: usize = 450;
/// Mini-batch size (paper Table 5).
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Adam learning rate (paper Table 5, Loan).
pub const DEFAULT_LR: f64 = 5e-3;
/// Gumbel-softmax temperature (paper Table 5, Loan).
pub const DEFAULT_TAU: f64 = 0.45;
/// Hinge margin `eps` (paper Table 5, Loan).
pub const DEFAULT_MARGIN: f64 = 0.011;
/// Adam L2 weight decay (torch `Adam(weight_decay)`) of the reference run
/// (`reference/carma_loan_trained.json`, hparams).
pub const DEFAULT_WEIGHT_DECAY: f64 = 5e-4;
/// Coverage the model selection asks of a validation epoch (issue 4's target).
pub const TARGET_COVERAGE: f64 = 0.995;
/// Damping of the modified differential method of multipliers (docs/MATH.md section 5, CARMA training).
pub const DEFAULT_DAMPING: f64 = 10.0;
/// Step of the multiplier update `lambda <- max(0, lambda + step * H)` (docs/MATH.md section 5, CARMA training: 1).
pub const DEFAULT_LAMBDA_STEP: f64 = 1.0;

/// The KL weight of [`CarmaConfig::project`] where the paper's 1 lets the mask prior outweigh
/// the cost (docs/MATH.md, section 5).
pub const PROJECT_KL_WEIGHT: f64 = 0.1;

/// CARMA hyperparameters, validated by [`CarmaConfig::check`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarmaConfig {
    /// Mask network hidden widths.
    pub mask_hidden: Vec<usize>,
    /// Action network hidden widths.
    pub action_hidden: Vec<usize>,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Gumbel-softmax temperature.
    pub tau: f64,
    /// Hinge margin.
    pub margin: f64,
    /// Adam L2 weight decay.
    pub weight_decay: f64,
    /// Damping `c` in `(lambda - c H) H`.
    pub damping: f64,
    /// Step of the multiplier update.
    pub lambda_step: f64,
    /// Weight `beta` of the mask prior's KL in the loss (1, the paper's, by default;
    /// docs/MATH.md section 5). Left out of the serialized settings when it is 1.
    #[serde(skip_serializing_if = "is_one")]
    pub kl_weight: f64,
    /// The gradient of the latent-shift clamp: `"inward"` (default) or `"zero"` (the paper's).
    pub clamp_gradient: ClampGradient,
    /// The latent-shift clamp's range: `"span"` (default) or `"range"` (the paper's).
    pub clamp_range: ClampRange,
    /// Seed for initialization, batches and Gumbel noise.
    pub seed: u64,
}

/// The range of the latent shift `delta` (docs/MATH.md, section 5), from the training latents'
/// range `[lo, hi] = [floor(min z), ceil(max z)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClampRange {
    /// `[-(hi - lo), hi - lo]`: every latent in the range can reach every other one. The
    /// paper's rule cannot (a latent at `lo + 1` with `hi = 3` can rise by 3 at most); on
    /// chain-NLIN 13-24 % of the shifts were measured to sit at its upper bound.
    #[default]
    Span,
    /// `[lo, hi]` itself (the paper's).
    Range,
}

/// How the gradient passes the clamp of the action network's output (docs/MATH.md, section 5).
///
/// The forward pass is the paper's clamp either way. With `Zero` (the exact derivative, the
/// paper's), an output past the clamp gets no gradient at all, so an action network that
/// overshoots early stays there: against a steep classifier most shifts were measured to sit at
/// the clamp for the rest of training. With `Inward`, an output past the clamp still gets
/// the component of its gradient that moves it back inside (the cost pulls it toward zero), and
/// none that would push it further out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClampGradient {
    /// Pass the gradient that points back into the clamp range.
    #[default]
    Inward,
    /// The exact derivative: zero outside the range (the paper's).
    Zero,
}

impl Default for CarmaConfig {
    fn default() -> Self {
        Self {
            mask_hidden: DEFAULT_MASK_HIDDEN.to_vec(),
            action_hidden: DEFAULT_ACTION_HIDDEN.to_vec(),
            epochs: DEFAULT_EPOCHS,
            batch_size: DEFAULT_BATCH_SIZE,
            lr: DEFAULT_LR,
            tau: DEFAULT_TAU,
            margin: DEFAULT_MARGIN,
            weight_decay: DEFAULT_WEIGHT_DECAY,
            damping: DEFAULT_DAMPING,
            lambda_step: DEFAULT_LAMBDA_STEP,
            kl_weight: 1.0,
            clamp_gradient: ClampGradient::Inward,
            clamp_range: ClampRange::Span,
            seed: 0,
        }
    }
}

/// A [`CarmaConfig`] that passed [`CarmaConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCarmaConfig(CarmaConfig);

impl CheckedCarmaConfig {
    /// The validated values.
    pub fn get(&self) -> &CarmaConfig {
        &self.0
    }
}

/// Why CARMA could not be configured or trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CarmaError {
    /// A hyperparameter is out of range.
    #[error("CARMA setting `{name}` = {value} is invalid: {expected}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The problem description does not fit the flow or the data.
    #[error("CARMA {what}: expected {expected}, found {found}")]
    Shape {
        /// What was measured.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Found size.
        found: usize,
    },
    /// No training individual is rejected by the classifier.
    #[error("no rejected individuals to train CARMA on")]
    NoRejected,
    /// No feature is actionable.
    #[error("no feature is actionable: CARMA has nothing to recommend")]
    NothingActionable,
    /// Training diverged.
    #[error("CARMA training diverged at epoch {epoch}: {quantity} is not finite")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// The offending quantity.
        quantity: &'static str,
    },
}

impl CarmaConfig {
    /// The paper's tuned settings for `dataset` (its Table 5; `weighted` selects the row of the
    /// Loan preference case study). Weight decay, damping and the multiplier step are the
    /// reference run's, the same for every dataset.
    pub fn table5(dataset: crate::scm::Dataset, weighted: bool) -> Self {
        use crate::scm::Dataset as D;
        // (lr, mask hidden, action hidden, epochs, batch, margin, tau)
        let (lr, mask, action, epochs, batch, margin, tau): (f64, &[usize], &[usize], _, _, _, _) =
            match (dataset, weighted) {
                (D::TriangleLin, _) => (5e-3, &[32], &[8, 8, 8, 8], 500, 32, 0.007, 0.55),
                (D::ColliderLin, _) => (5e-3, &[32], &[32, 32, 32, 32], 350, 256, 0.013, 0.31),
                (D::ChainLin, _) => (5e-3, &[16], &[8, 8], 150, 128, 0.004, 0.87),
                (D::TriangleNlin, _) => (5e-3, &[32, 32, 32], &[8, 8, 8, 8], 450, 256, 0.003, 0.2),
                (D::ColliderNlin, _) => (1e-2, &[16, 16, 16], &[8, 8, 8], 250, 64, 0.002, 0.83),
                (D::ChainNlin, _) => (
                    5e-3,
                    &[32, 32, 32],
                    &[32, 32, 32, 32],
                    250,
                    256,
                    0.007,
                    0.08,
                ),
                (D::Loan, false) => (5e-3, &[32, 32], &[32, 32, 32], 450, 256, 0.011, 0.45),
                (D::Loan, true) => (
                    1e-3,
                    &[16, 16, 16],
                    &[32, 32, 32, 32],
                    450,
                    256,
                    0.007,
                    0.33,
                ),
            };
        Self {
            mask_hidden: mask.to_vec(),
            action_hidden: action.to_vec(),
            epochs,
            batch_size: batch,
            lr,
            tau,
            margin,
            ..Self::default()
        }
    }

    /// The project's settings for `dataset`: the paper's Table 5 row ([`CarmaConfig::table5`])
    /// except where a comparison on the recourse *validation* split found settings that cost
    /// clearly less with this project's classifier and flow (docs/MATH.md, section 5): chain-LIN
    /// takes Loan's row (the trainer's defaults); chain-NLIN and weighted Loan weigh the mask
    /// prior's KL by [`PROJECT_KL_WEIGHT`].
    pub fn project(dataset: crate::scm::Dataset, weighted: bool) -> Self {
        use crate::scm::Dataset as D;
        match (dataset, weighted) {
            (D::ChainLin, _) => Self::default(),
            (D::ChainNlin, _) | (D::Loan, true) => Self {
                kl_weight: PROJECT_KL_WEIGHT,
                ..Self::table5(dataset, weighted)
            },
            _ => Self::table5(dataset, weighted),
        }
    }

    /// Validates every setting once.
    pub fn check(&self) -> Result<CheckedCarmaConfig, CarmaError> {
        let bad = |name, value: String, expected| {
            Err(CarmaError::BadSetting {
                name,
                value,
                expected,
            })
        };
        if self.mask_hidden.contains(&0) || self.action_hidden.contains(&0) {
            return bad(
                "hidden",
                format!("{:?} / {:?}", self.mask_hidden, self.action_hidden),
                "hidden widths must be at least 1",
            );
        }
        if self.epochs == 0 {
            return bad("epochs", "0".into(), "at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "0".into(), "at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr.to_string(), "a positive number");
        }
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return bad("tau", self.tau.to_string(), "a positive number");
        }
        if !(self.margin.is_finite() && (0.0..1.0).contains(&self.margin)) {
            return bad("margin", self.margin.to_string(), "in [0, 1)");
        }
        for (name, value) in [
            ("weight_decay", self.weight_decay),
            ("damping", self.damping),
            ("lambda_step", self.lambda_step),
            ("kl_weight", self.kl_weight),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(name, value.to_string(), "a number >= 0");
            }
        }
        Ok(CheckedCarmaConfig(self.clone()))
    }
}

/// What a recourse problem fixes besides the data: which features may be
/// acted on, their preference weights and the cost ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct RecourseProblem {
    /// Per feature: may it be intervened on?
    pub actionable: Vec<bool>,
    /// Per feature preference weight `w_k` (1 by default).
    pub weights: Vec<f64>,
    /// Per feature, max - min of the standardized recourse training data.
    pub cost_range: Vec<f64>,
}

impl RecourseProblem {
    /// Prior probability of intervening on feature `k`: `1 / (2 w_k)` (docs/MATH.md section 5, CARMA training).
    pub fn prior_on(&self, k: usize) -> f64 {
        1.0 / (2.0 * self.weights[k])
    }

    fn n_actionable(&self) -> usize {
        self.actionable.iter().filter(|&&a| a).count()
    }

    /// Cost of each row (docs/MATH.md section 1, problem & cost): `mean_{k actionable} w_k m_k (x_k - x_cf,k)^2 / range_k`.
    pub fn cost(&self, x: &Array2<f64>, x_cf: &Array2<f64>, mask: &Array2<f64>) -> Array1<f64> {
        let n_act = self.n_actionable().max(1) as f64;
        let mut out = Array1::zeros(x.nrows());
        for (b, o) in out.iter_mut().enumerate() {
            let mut c = 0.0;
            for k in 0..x.ncols() {
                if self.actionable[k] {
                    let d = x[[b, k]] - x_cf[[b, k]];
                    c += self.weights[k] * mask[[b, k]] * d * d / self.cost_range[k];
                }
            }
            *o = c / n_act;
        }
        out
    }
}

/// The trained CARMA networks.
#[derive(Debug, Clone)]
pub struct Carma {
    mask_net: Mlp,
    action_net: Mlp,
    problem: RecourseProblem,
    clamp: (f64, f64),
    clamp_gradient: ClampGradient,
}

/// CARMA's recommendation for a batch (standardized space).
#[derive(Debug, Clone, PartialEq)]
pub struct CarmaOutput {
    /// 0/1 mask of intervened features, `[batch][D]`.
    pub mask: Array2<f64>,
    /// Latent shifts (already clamped), `[batch][D]`.
    pub delta: Array2<f64>,
    /// Counterfactual latents.
    pub z_cf: Array2<f64>,
    /// Counterfactuals, standardized.
    pub x_cf: Array2<f64>,
    /// Classifier probability of each counterfactual.
    pub prob: Array1<f64>,
    /// Cost of each recommendation.
    pub cost: Array1<f64>,
}

/// One epoch of training, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CarmaEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean total loss over the epoch's batches.
    pub loss: f64,
    /// Mean cost term.
    pub cost: f64,
    /// Mean hinge.
    pub hinge: f64,
    /// Multiplier at the end of the epoch.
    pub lambda: f64,
    /// Validation coverage (deterministic mask), when validation data is given.
    pub val_coverage: Option<f64>,
    /// Validation mean cost, when validation data is given.
    pub val_cost: Option<f64>,
}

/// How an epoch's networks do on the validation individuals: what the model selection of
/// [`Carma::fit_scored`] compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationScore {
    /// Fraction of the individuals whose recommendation is accepted.
    pub coverage: f64,
    /// Mean cost of the recommendations.
    pub cost: f64,
}

/// The loss terms of one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossParts {
    /// Cost term `C`.
    pub cost: f64,
    /// Mask prior `KL`.
    pub kl: f64,
    /// Hinge `H`.
    pub hinge: f64,
    /// `C + beta KL + (lambda - c H) H`.
    pub total: f64,
}

/// The constraint side of the loss: hinge margin, multiplier and damping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lagrangian {
    /// Hinge margin `eps`.
    pub margin: f64,
    /// Current multiplier `lambda`.
    pub lambda: f64,
    /// Damping `c`.
    pub damping: f64,
    /// Weight `beta` of the mask prior's KL.
    pub kl_weight: f64,
}

/// How the mask is drawn in a training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskMode {
    /// Straight-through Gumbel-softmax: hard one-hot forward, soft gradient (training).
    StraightThrough,
    /// The relaxed (soft) Gumbel-softmax sample forward and backward; exactly
    /// differentiable, used to check the gradients.
    Relaxed,
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// A standard Gumbel sample from a seeded generator.
fn gumbel(rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    -(-u.ln()).ln()
}

impl Carma {
    /// Fresh networks for `d` features.
    pub fn new(
        d: usize,
        problem: RecourseProblem,
        clamp: (f64, f64),
        config: &CheckedCarmaConfig,
        rng: &mut impl Rng,
    ) -> Self {
        let cfg = config.get();
        let mask_dims: Vec<usize> = std::iter::once(d)
            .chain(cfg.mask_hidden.iter().copied())
            .chain(std::iter::once(2 * d))
            .collect();
        let action_dims: Vec<usize> = std::iter::once(2 * d)
            .chain(cfg.action_hidden.iter().copied())
            .chain(std::iter::once(d))
            .collect();
        let mask_net = Mlp::new(
            &mask_dims,
            Activation::Relu,
            Activation::Identity,
            CARMA_INIT,
            rng,
        );
        let action_net = Mlp::new(
            &action_dims,
            Activation::Relu,
            Activation::Identity,
            CARMA_INIT,
            rng,
        );
        Self {
            mask_net,
            action_net,
            problem,
            clamp,
            clamp_gradient: cfg.clamp_gradient,
        }
    }

    /// The mask network (`D -> 2D` logits).
    pub fn mask_net(&self) -> &Mlp {
        &self.mask_net
    }

    /// The action network (`2D -> D` latent shifts, before the clamp).
    pub fn action_net(&self) -> &Mlp {
        &self.action_net
    }

    /// Actionability, weights and cost ranges.
    pub fn problem(&self) -> &RecourseProblem {
        &self.problem
    }

    /// The latent shift clamp `(lo, hi)`.
    pub fn clamp(&self) -> (f64, f64) {
        self.clamp
    }

    fn d(&self) -> usize {
        self.problem.actionable.len()
    }

    /// Trains CARMA on the standardized rejected individuals `x` (docs/MATH.md section 5, CARMA training).
    /// `on_epoch` sees each epoch's mean losses.
    ///
    /// With validation individuals `x_val` (standardized, rejected), the
    /// networks are scored after every epoch as they will be served
    /// (deterministic mask) and the epoch kept is the cheapest whose coverage
    /// reaches [`TARGET_COVERAGE`], or the one with the highest coverage if
    /// none does; without, the last epoch is kept.
    pub fn fit(
        flow: &CausalFlow,
        classifier: &Classifier,
        x: &Array2<f64>,
        x_val: Option<&Array2<f64>>,
        problem: RecourseProblem,
        config: &CheckedCarmaConfig,
        on_epoch: &mut dyn FnMut(CarmaEpoch),
    ) -> Result<Self, CarmaError> {
        // The flow is frozen: the validation individuals' latents are the same every epoch.
        let val = x_val
            .filter(|xv| xv.nrows() > 0)
            .map(|xv| (xv, flow.abduct(xv)));
        let mut networks = |carma: &Carma| {
            val.as_ref().map(|(xv, zv)| {
                let out = carma.recommend_latent(flow, classifier, xv, zv, &[]);
                let nv = xv.nrows() as f64;
                ValidationScore {
                    coverage: out.prob.iter().filter(|&&p| p >= 0.5).count() as f64 / nv,
                    cost: out.cost.sum() / nv,
                }
            })
        };
        Self::fit_scored(
            flow,
            classifier,
            x,
            problem,
            config,
            &mut networks,
            on_epoch,
        )
    }

    /// [`Carma::fit`] with the validation score of each epoch's networks given by `score`
    /// (`None`: no validation, the last epoch is kept), for instance the score of the
    /// recommendations as served, refined by the core.
    pub fn fit_scored(
        flow: &CausalFlow,
        classifier: &Classifier,
        x: &Array2<f64>,
        problem: RecourseProblem,
        config: &CheckedCarmaConfig,
        score: &mut dyn FnMut(&Carma) -> Option<ValidationScore>,
        on_epoch: &mut dyn FnMut(CarmaEpoch),
    ) -> Result<Self, CarmaError> {
        let cfg = config.get();
        let d = flow.n_features();
        for (what, found) in [
            ("feature columns", x.ncols()),
            ("actionable flags", problem.actionable.len()),
            ("preference weights", problem.weights.len()),
            ("cost ranges", problem.cost_range.len()),
        ] {
            if found != d {
                return Err(CarmaError::Shape {
                    what,
                    expected: d,
                    found,
                });
            }
        }
        if problem.n_actionable() == 0 {
            return Err(CarmaError::NothingActionable);
        }
        if x.nrows() == 0 {
            return Err(CarmaError::NoRejected);
        }
        let z = flow.abduct(x);
        if z.iter().any(|v| !v.is_finite()) {
            return Err(CarmaError::NonFinite {
                epoch: 0,
                quantity: "the abducted latents",
            });
        }
        // docs/MATH.md section 5, CARMA training: clamp to [floor(min z), ceil(max z)] of the training latents.
        let lo = z.iter().copied().fold(f64::INFINITY, f64::min).floor();
        let hi = z.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil();
        let (lo, hi) = match cfg.clamp_range {
            ClampRange::Range => (lo, hi),
            ClampRange::Span => (-(hi - lo), hi - lo),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut carma = Self::new(d, problem, (lo, hi), config, &mut rng);
        let mut adam = Adam::new(AdamConfig {
            lr: cfg.lr,
            weight_decay: if cfg.weight_decay > 0.0 {
                WeightDecay::L2(cfg.weight_decay)
            } else {
                WeightDecay::None
            },
            ..AdamConfig::default()
        });
        let mut batches = MiniBatches::new(x.nrows(), cfg.batch_size);
        let mut lambda = 0.0;
        let mut noise = Array2::zeros((0, 2 * d));
        let mut best: Option<(f64, f64, Carma)> = None;
        for epoch in 1..=cfg.epochs {
            batches.shuffle(&mut rng);
            let (mut sum_loss, mut sum_cost, mut sum_hinge, mut n) = (0.0, 0.0, 0.0, 0usize);
            for idx in batches.batches() {
                let xb = x.select(Axis(0), idx);
                let zb = z.select(Axis(0), idx);
                if noise.nrows() != idx.len() {
                    noise = Array2::zeros((idx.len(), 2 * d));
                }
                noise.mapv_inplace(|_| gumbel(&mut rng));
                carma.mask_net.zero_grad();
                carma.action_net.zero_grad();
                let parts = carma.loss_and_backward(
                    flow,
                    classifier,
                    &xb,
                    &zb,
                    &noise,
                    cfg.tau,
                    Lagrangian {
                        margin: cfg.margin,
                        lambda,
                        damping: cfg.damping,
                        kl_weight: cfg.kl_weight,
                    },
                    MaskMode::StraightThrough,
                );
                if !parts.total.is_finite() {
                    return Err(CarmaError::NonFinite {
                        epoch,
                        quantity: "the loss",
                    });
                }
                let mut nets = NetPair(&mut carma.mask_net, &mut carma.action_net);
                if nets.flat_grads().iter().any(|g| !g.is_finite()) {
                    return Err(CarmaError::NonFinite {
                        epoch,
                        quantity: "a gradient",
                    });
                }
                adam.step(&mut nets);
                lambda = (lambda + cfg.lambda_step * parts.hinge).max(0.0);
                sum_loss += parts.total;
                sum_cost += parts.cost;
                sum_hinge += parts.hinge;
                n += 1;
            }
            let n = n.max(1) as f64;
            let scores = score(&carma).map(|v| (v.coverage, v.cost));
            if let Some((coverage, cost)) = scores {
                let better = match best.as_ref() {
                    None => true,
                    Some(&(c, k, _)) => {
                        let reached = coverage >= TARGET_COVERAGE;
                        if reached != (c >= TARGET_COVERAGE) {
                            reached
                        } else if reached {
                            cost < k
                        } else {
                            coverage > c
                        }
                    }
                };
                if better {
                    best = Some((coverage, cost, carma.clone()));
                }
            }
            on_epoch(CarmaEpoch {
                epoch,
                loss: sum_loss / n,
                cost: sum_cost / n,
                hinge: sum_hinge / n,
                lambda,
                val_coverage: scores.map(|v| v.0),
                val_cost: scores.map(|v| v.1),
            });
        }
        Ok(best.map_or(carma, |b| b.2))
    }

    /// One training step's forward and backward pass: returns the loss terms
    /// and adds the gradients of `C + KL + (lambda - c H) H` (with `H`
    /// detached in the damping factor) to both networks' parameter gradients.
    /// `noise` holds the Gumbel samples, `[batch][2D]`.
    pub fn loss_and_backward(
        &mut self,
        flow: &CausalFlow,
        classifier: &Classifier,
        x: &Array2<f64>,
        z: &Array2<f64>,
        noise: &Array2<f64>,
        tau: f64,
        lagrangian: Lagrangian,
        mode: MaskMode,
    ) -> LossParts {
        let Lagrangian {
            margin,
            lambda,
            damping,
            kl_weight,
        } = lagrangian;
        let (bsz, d) = (x.nrows(), self.d());
        let bf = bsz as f64;
        let n_act = self.problem.n_actionable().max(1) as f64;

        // Mask network and the Gumbel-softmax sample of class 1 per feature.
        let mut mask_cache = MlpCache::default();
        let phi = self.mask_net.forward_with(z, &mut mask_cache).clone();
        let mut soft = Array2::zeros((bsz, d));
        let mut m = Array2::zeros((bsz, d));
        for b in 0..bsz {
            for i in 0..d {
                let a0 = (phi[[b, 2 * i]] + noise[[b, 2 * i]]) / tau;
                let a1 = (phi[[b, 2 * i + 1]] + noise[[b, 2 * i + 1]]) / tau;
                let s1 = sigmoid(a1 - a0);
                soft[[b, i]] = s1;
                if self.problem.actionable[i] {
                    m[[b, i]] = match mode {
                        MaskMode::StraightThrough => f64::from(u8::from(a1 > a0)),
                        MaskMode::Relaxed => s1,
                    };
                }
            }
        }

        // Action network on [z, m], clamped.
        let mut input = Array2::zeros((bsz, 2 * d));
        input.slice_mut(s![.., ..d]).assign(z);
        input.slice_mut(s![.., d..]).assign(&m);
        let mut action_cache = MlpCache::default();
        let raw = self
            .action_net
            .forward_with(&input, &mut action_cache)
            .clone();
        let (lo, hi) = self.clamp;
        let delta = raw.mapv(|v| v.clamp(lo, hi));

        // Through the frozen flow inverse and classifier.
        let z_cf = z + &(&m * &delta);
        let (x_cf, flow_trace) = flow.inverse_traced(&z_cf);
        let (p, classifier_trace) = classifier.prob_traced(&x_cf);

        // Loss terms.
        let cost = self.problem.cost(x, &x_cf, &m).sum() / bf;
        let mut kl = 0.0;
        let mut g_phi = Array2::zeros((bsz, 2 * d));
        for b in 0..bsz {
            for i in (0..d).filter(|&i| self.problem.actionable[i]) {
                let q1 = sigmoid(phi[[b, 2 * i + 1]] - phi[[b, 2 * i]]);
                let q0 = 1.0 - q1;
                let p1 = self.problem.prior_on(i);
                let p0 = 1.0 - p1;
                kl += xlogx_over(q0, p0) + xlogx_over(q1, p1);
                // dKL/dq1 = ln(q1/p1) - ln(q0/p0); dq1/dphi1 = q0 q1 = -dq1/dphi0.
                let dq1 =
                    (q1.max(f64::MIN_POSITIVE) / p1).ln() - (q0.max(f64::MIN_POSITIVE) / p0).ln();
                let g = kl_weight * dq1 * q0 * q1 / bf;
                g_phi[[b, 2 * i + 1]] += g;
                g_phi[[b, 2 * i]] -= g;
            }
        }
        kl /= bf;
        let hinge_terms = p.mapv(|pb| (margin - (2.0 * pb - 1.0)).max(0.0));
        let hinge = hinge_terms.sum() / bf;
        let coef = lambda - damping * hinge;
        let total = cost + kl_weight * kl + coef * hinge;

        // Backward: cost and hinge to x_cf and m.
        let mut g_m = Array2::zeros((bsz, d));
        let mut g_x = Array2::zeros((bsz, d));
        for b in 0..bsz {
            for k in (0..d).filter(|&k| self.problem.actionable[k]) {
                let scale = self.problem.weights[k] / self.problem.cost_range[k] / n_act / bf;
                let diff = x_cf[[b, k]] - x[[b, k]];
                g_x[[b, k]] += scale * m[[b, k]] * 2.0 * diff;
                g_m[[b, k]] += scale * diff * diff;
            }
        }
        let g_p = hinge_terms.mapv(|h| if h > 0.0 { -2.0 * coef / bf } else { 0.0 });
        g_x += &classifier.input_grad_traced(&classifier_trace, &g_p);
        let g_zcf = flow.inverse_backward_traced(&flow_trace, &g_x);
        // z_cf = z + m * delta.
        g_m += &(&g_zcf * &delta);
        let g_delta = &g_zcf * &m;
        let inward = self.clamp_gradient == ClampGradient::Inward;
        let g_raw = ndarray::Zip::from(&g_delta)
            .and(&raw)
            .map_collect(|&g, &r| {
                // Descent moves r by -g: past hi, g > 0 moves it back in; past lo, g < 0.
                if (r > lo && r < hi) || (inward && ((r >= hi && g > 0.0) || (r <= lo && g < 0.0)))
                {
                    g
                } else {
                    0.0
                }
            });
        let g_input = self.action_net.backward_with(&action_cache, &g_raw);
        g_m += &g_input.slice(s![.., d..]);

        // Through the (straight-through) Gumbel-softmax to the logits.
        for b in 0..bsz {
            for i in (0..d).filter(|&i| self.problem.actionable[i]) {
                let s1 = soft[[b, i]];
                let g = g_m[[b, i]] * s1 * (1.0 - s1) / tau;
                g_phi[[b, 2 * i + 1]] += g;
                g_phi[[b, 2 * i]] -= g;
            }
        }
        self.mask_net.backward_with(&mask_cache, &g_phi);

        LossParts {
            cost,
            kl,
            hinge,
            total,
        }
    }

    /// The deterministic mask (docs/MATH.md section 5, CARMA training): `m_i = 1` iff `phi_i1 > phi_i0`
    /// and feature `i` is actionable and not in `forbid`.
    pub fn mask(&self, z: &Array2<f64>, forbid: &[bool]) -> Array2<f64> {
        let phi = self.mask_net.predict(z);
        let d = self.d();
        Array2::from_shape_fn((z.nrows(), d), |(b, i)| {
            let on = self.problem.actionable[i]
                && !forbid.get(i).copied().unwrap_or(false)
                && phi[[b, 2 * i + 1]] > phi[[b, 2 * i]];
            f64::from(u8::from(on))
        })
    }

    /// Recommendations for standardized individuals `x` (docs/MATH.md section 5, CARMA training,
    /// inference): mask, clamped action, inversion, classifier, cost.
    pub fn recommend(
        &self,
        flow: &CausalFlow,
        classifier: &Classifier,
        x: &Array2<f64>,
        forbid: &[bool],
    ) -> CarmaOutput {
        self.recommend_latent(flow, classifier, x, &flow.abduct(x), forbid)
    }

    /// [`Carma::recommend`] for individuals `x` whose latents `z = T(x)` are known.
    pub fn recommend_latent(
        &self,
        flow: &CausalFlow,
        classifier: &Classifier,
        x: &Array2<f64>,
        z: &Array2<f64>,
        forbid: &[bool],
    ) -> CarmaOutput {
        let d = self.d();
        let mask = self.mask(z, forbid);
        let mut input = Array2::zeros((x.nrows(), 2 * d));
        input.slice_mut(s![.., ..d]).assign(z);
        input.slice_mut(s![.., d..]).assign(&mask);
        let (lo, hi) = self.clamp;
        let delta = self.action_net.predict(&input).mapv(|v| v.clamp(lo, hi));
        let z_cf = z + &(&mask * &delta);
        let x_cf = flow.inverse(&z_cf);
        let prob = classifier.prob(&x_cf);
        let cost = self.problem.cost(x, &x_cf, &mask);
        CarmaOutput {
            mask,
            delta,
            z_cf,
            x_cf,
            prob,
            cost,
        }
    }
}

/// `q ln(q / p)`, with `0 ln 0 = 0`.
fn xlogx_over(q: f64, p: f64) -> f64 {
    if q > 0.0 { q * (q / p).ln() } else { 0.0 }
}

/// Both CARMA networks as one parameter set for the optimizer.
struct NetPair<'a>(&'a mut Mlp, &'a mut Mlp);

impl Params for NetPair<'_> {
    fn params_and_grads(&mut self) -> Vec<crate::nn::ParamGrad<'_>> {
        let mut v = self.0.params_and_grads();
        v.extend(self.1.params_and_grads());
        v
    }
}

#[cfg(test)]
mod tests;
