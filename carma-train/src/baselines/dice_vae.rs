//! DiCE-VAE (docs/MATH.md section 7, oracle & baselines): the amortized, non-causal competitor. A
//! variational autoencoder conditioned on the individual `x~` proposes the
//! counterfactual directly in standardized space, ignoring the causal graph:
//!
//! - encoder `x~ -> (mu, log sigma^2)`, latent size `D`;
//! - decoder `[latent, x~] -> r`, the counterfactual `x~_cf = x~ + r` on the
//!   free features (actionable and not forbidden); every other feature is
//!   overwritten with its factual value;
//! - loss per batch (means over rows): the section 6 cost over all actionable
//!   features (mask 1), plus `hinge_weight * max(0, eps - (2 h(x~_cf) - 1))`,
//!   plus `kl_weight * KL(N(mu, sigma^2) || N(0, I))`;
//! - training by Adam on the rejected individuals, latent drawn with the
//!   reparameterization `mu + sigma * noise` from a seeded generator;
//! - inference decodes the latent mean, so recommendations are deterministic.
//!
//! The residual form `x~ + r` is a parameterization choice: it is the same
//! function class as decoding `x~_cf` outright (the decoder sees `x~`), but
//! starts near "change nothing", which the cost rewards.

use ndarray::{Array1, Array2, Axis, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{BaselineError, BaselineOutput, allowed, check_batch, check_problem, hinge};
use crate::carma::RecourseProblem;
use crate::classifier::Classifier;
use crate::nn::{
    Activation, Adam, AdamConfig, Init, MiniBatches, Mlp, MlpCache, ParamGrad, Params,
};

/// Hidden widths of the encoder and of the decoder (own choice: CARMA's mask network widths
/// for Loan, docs/MATH.md section 5, CARMA training).
pub const DEFAULT_HIDDEN: [usize; 2] = [32, 32];
/// Training epochs (own choice: the loss flattens well before on the toy and Loan problems).
pub const DEFAULT_EPOCHS: usize = 200;
/// Mini-batch size (docs/MATH.md section 5, CARMA training, CARMA's).
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Adam learning rate (torch's default, docs/MATH.md sections 3 (classifier), 4 (causal flow) use it too).
pub const DEFAULT_LR: f64 = 1e-3;
/// Weight of the hinge (own choice: large enough that crossing the boundary always pays
/// for its cost, the exact-penalty regime).
pub const DEFAULT_HINGE_WEIGHT: f64 = 10.0;
/// Weight of the latent KL (own choice: small, the latent only carries diversity).
pub const DEFAULT_KL_WEIGHT: f64 = 0.01;
/// Hinge margin (own choice, wider than CARMA's 0.011: a fixed-weight penalty has no
/// multiplier to push stragglers over, so the margin carries the slack).
pub const DEFAULT_MARGIN: f64 = 0.1;
/// Smallest change that counts as an intervention in the reported mask.
pub const CHANGE_TOLERANCE: f64 = 1e-6;

/// DiCE-VAE hyperparameters, validated by [`DiceVaeConfig::check`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceVaeConfig {
    /// Hidden widths of the encoder and of the decoder.
    pub hidden: Vec<usize>,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Weight of the hinge term.
    pub hinge_weight: f64,
    /// Weight of the KL term.
    pub kl_weight: f64,
    /// Hinge margin `eps`.
    pub margin: f64,
    /// Seed for initialization, batches and the reparameterization noise.
    pub seed: u64,
}

impl Default for DiceVaeConfig {
    fn default() -> Self {
        Self {
            hidden: DEFAULT_HIDDEN.to_vec(),
            epochs: DEFAULT_EPOCHS,
            batch_size: DEFAULT_BATCH_SIZE,
            lr: DEFAULT_LR,
            hinge_weight: DEFAULT_HINGE_WEIGHT,
            kl_weight: DEFAULT_KL_WEIGHT,
            margin: DEFAULT_MARGIN,
            seed: 0,
        }
    }
}

/// A [`DiceVaeConfig`] that passed [`DiceVaeConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedDiceVaeConfig(DiceVaeConfig);

impl CheckedDiceVaeConfig {
    /// The validated values.
    pub fn get(&self) -> &DiceVaeConfig {
        &self.0
    }
}

impl DiceVaeConfig {
    /// Validates every setting once.
    pub fn check(&self) -> Result<CheckedDiceVaeConfig, BaselineError> {
        let bad = |name, value: String, expected| {
            Err(BaselineError::BadSetting {
                name,
                value,
                expected,
            })
        };
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("{:?}", self.hidden),
                "at least one hidden layer, every width at least 1",
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
        for (name, v) in [
            ("hinge_weight", self.hinge_weight),
            ("kl_weight", self.kl_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, v.to_string(), "a non-negative number");
            }
        }
        if !(self.margin.is_finite() && (0.0..1.0).contains(&self.margin)) {
            return bad("margin", self.margin.to_string(), "in [0, 1)");
        }
        Ok(CheckedDiceVaeConfig(self.clone()))
    }
}

/// The loss terms of one batch (means over the rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VaeLoss {
    /// Cost term (section 6 cost, all actionable features).
    pub cost: f64,
    /// Hinge term, unweighted.
    pub hinge: f64,
    /// KL term, unweighted.
    pub kl: f64,
    /// `cost + hinge_weight * hinge + kl_weight * kl`.
    pub total: f64,
}

/// One epoch of training, for progress reporting (means over the epoch's batches).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiceVaeEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// The loss terms.
    pub loss: VaeLoss,
}

/// The trained DiCE-VAE.
#[derive(Debug, Clone, PartialEq)]
pub struct DiceVae {
    encoder: Mlp,
    decoder: Mlp,
    problem: RecourseProblem,
}

/// What a forward pass keeps for the backward pass.
struct Pass {
    enc_cache: MlpCache,
    dec_cache: MlpCache,
    mu: Array2<f64>,
    logvar: Array2<f64>,
    x_cf: Array2<f64>,
    prob: Array1<f64>,
}

impl DiceVae {
    /// Fresh networks for `d` features (torch's `nn.Linear` initialization).
    pub fn new(
        d: usize,
        problem: RecourseProblem,
        config: &CheckedDiceVaeConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let hidden = &config.get().hidden;
        let dims = |input: usize, output: usize| -> Vec<usize> {
            std::iter::once(input)
                .chain(hidden.iter().copied())
                .chain(std::iter::once(output))
                .collect()
        };
        let net = |dims: Vec<usize>, rng: &mut ChaCha8Rng| {
            Mlp::new(
                &dims,
                Activation::Relu,
                Activation::Identity,
                Init::TorchDefault,
                rng,
            )
        };
        let encoder = net(dims(d, 2 * d), rng);
        let decoder = net(dims(2 * d, d), rng);
        Self {
            encoder,
            decoder,
            problem,
        }
    }

    /// The encoder (`D -> 2D`: mean, then log-variance).
    pub fn encoder(&self) -> &Mlp {
        &self.encoder
    }

    /// The decoder (`[latent, x~]` (2D) `-> D` residual).
    pub fn decoder(&self) -> &Mlp {
        &self.decoder
    }

    /// Actionability, weights and cost ranges.
    pub fn problem(&self) -> &RecourseProblem {
        &self.problem
    }

    fn d(&self) -> usize {
        self.problem.actionable.len()
    }

    /// Forward pass with latent `mu + exp(logvar / 2) * noise`; `free[k]`: feature `k` may move.
    fn pass(
        &self,
        classifier: &Classifier,
        x: &Array2<f64>,
        noise: &Array2<f64>,
        free: &[bool],
    ) -> Pass {
        let d = self.d();
        let mut enc_cache = MlpCache::default();
        let enc = self.encoder.forward_with(x, &mut enc_cache);
        let mu = enc.slice(s![.., ..d]).to_owned();
        let logvar = enc.slice(s![.., d..]).to_owned();
        let latent = &mu + &(logvar.mapv(|v| (0.5 * v).exp()) * noise);
        let mut input = Array2::zeros((x.nrows(), 2 * d));
        input.slice_mut(s![.., ..d]).assign(&latent);
        input.slice_mut(s![.., d..]).assign(x);
        let mut dec_cache = MlpCache::default();
        let residual = self.decoder.forward_with(&input, &mut dec_cache);
        let mut x_cf = x.clone();
        for (k, _) in free.iter().enumerate().filter(|&(_, &f)| f) {
            x_cf.column_mut(k)
                .zip_mut_with(&residual.column(k), |v, r| *v += r);
        }
        let prob = classifier.prob(&x_cf);
        Pass {
            enc_cache,
            dec_cache,
            mu,
            logvar,
            x_cf,
            prob,
        }
    }

    fn loss_of(&self, pass: &Pass, x: &Array2<f64>, config: &CheckedDiceVaeConfig) -> VaeLoss {
        let cfg = config.get();
        let bf = x.nrows().max(1) as f64;
        let ones = Array2::ones(x.raw_dim());
        let cost = self.problem.cost(x, &pass.x_cf, &ones).sum() / bf;
        let hinge_sum: f64 = pass.prob.iter().map(|&p| hinge(p, cfg.margin)).sum();
        let kl_sum: f64 = ndarray::Zip::from(&pass.mu)
            .and(&pass.logvar)
            .fold(0.0, |acc, &m, &lv| {
                acc + 0.5 * (m * m + lv.exp() - 1.0 - lv)
            });
        let (hinge, kl) = (hinge_sum / bf, kl_sum / bf);
        VaeLoss {
            cost,
            hinge,
            kl,
            total: cost + cfg.hinge_weight * hinge + cfg.kl_weight * kl,
        }
    }

    /// The training loss of a batch `x` (standardized) with reparameterization noise `noise`
    /// (`[batch][D]`), without gradients.
    pub fn loss(
        &self,
        classifier: &Classifier,
        x: &Array2<f64>,
        noise: &Array2<f64>,
        config: &CheckedDiceVaeConfig,
    ) -> VaeLoss {
        let pass = self.pass(classifier, x, noise, &self.problem.actionable);
        self.loss_of(&pass, x, config)
    }

    /// The training loss of a batch and its backward pass: adds the gradients of `total` to
    /// the encoder's and decoder's parameter gradients (the classifier stays frozen).
    pub fn loss_and_backward(
        &mut self,
        classifier: &Classifier,
        x: &Array2<f64>,
        noise: &Array2<f64>,
        config: &CheckedDiceVaeConfig,
    ) -> VaeLoss {
        let cfg = config.get();
        let (bsz, d) = (x.nrows(), self.d());
        let bf = bsz.max(1) as f64;
        let free = self.problem.actionable.clone();
        let pass = self.pass(classifier, x, noise, &free);
        let loss = self.loss_of(&pass, x, config);
        let n_act = free.iter().filter(|&&f| f).count().max(1) as f64;

        // Cost and hinge to x_cf.
        let mut g_x = Array2::zeros((bsz, d));
        for b in 0..bsz {
            for k in (0..d).filter(|&k| free[k]) {
                let scale = self.problem.weights[k] / self.problem.cost_range[k] / n_act / bf;
                g_x[[b, k]] = 2.0 * scale * (pass.x_cf[[b, k]] - x[[b, k]]);
            }
        }
        let g_p = pass.prob.mapv(|p| {
            if hinge(p, cfg.margin) > 0.0 {
                -2.0 * cfg.hinge_weight / bf
            } else {
                0.0
            }
        });
        g_x += &classifier.input_grad(&pass.x_cf, &g_p);
        // x_cf = x + residual on the free features; fixed features do not reach the decoder.
        for (k, _) in free.iter().enumerate().filter(|&(_, &f)| !f) {
            g_x.column_mut(k).fill(0.0);
        }
        let g_input = self.decoder.backward_with(&pass.dec_cache, &g_x);
        let g_latent = g_input.slice(s![.., ..d]);

        // latent = mu + exp(logvar / 2) * noise; KL = sum (mu^2 + e^lv - 1 - lv) / 2.
        let kw = cfg.kl_weight / bf;
        let mut g_enc = Array2::zeros((bsz, 2 * d));
        for b in 0..bsz {
            for i in 0..d {
                let (m, lv) = (pass.mu[[b, i]], pass.logvar[[b, i]]);
                let sd = (0.5 * lv).exp();
                g_enc[[b, i]] = g_latent[[b, i]] + kw * m;
                g_enc[[b, d + i]] =
                    g_latent[[b, i]] * noise[[b, i]] * 0.5 * sd + kw * 0.5 * (lv.exp() - 1.0);
            }
        }
        self.encoder.backward_with(&pass.enc_cache, &g_enc);
        loss
    }

    /// Trains DiCE-VAE on the standardized rejected individuals `x` (docs/MATH.md section 7, oracle & baselines).
    /// `on_epoch` sees each epoch's mean losses.
    pub fn fit(
        classifier: &Classifier,
        x: &Array2<f64>,
        problem: RecourseProblem,
        config: &CheckedDiceVaeConfig,
        on_epoch: &mut dyn FnMut(DiceVaeEpoch),
    ) -> Result<Self, BaselineError> {
        let cfg = config.get();
        let d = classifier.n_features();
        check_problem(&problem, d)?;
        check_batch(x, d, &[])?;
        if x.nrows() == 0 {
            return Err(BaselineError::NoRejected);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut vae = Self::new(d, problem, config, &mut rng);
        let mut adam = Adam::new(AdamConfig {
            lr: cfg.lr,
            ..AdamConfig::default()
        });
        let mut batches = MiniBatches::new(x.nrows(), cfg.batch_size);
        for epoch in 1..=cfg.epochs {
            batches.shuffle(&mut rng);
            let mut sum = VaeLoss {
                cost: 0.0,
                hinge: 0.0,
                kl: 0.0,
                total: 0.0,
            };
            let mut n = 0usize;
            for idx in batches.batches() {
                let xb = x.select(Axis(0), idx);
                let noise = Array2::from_shape_simple_fn((idx.len(), d), || {
                    StandardNormal.sample(&mut rng)
                });
                vae.zero_grad();
                let l = vae.loss_and_backward(classifier, &xb, &noise, config);
                if !l.total.is_finite() {
                    return Err(BaselineError::NonFinite {
                        epoch,
                        quantity: "the loss",
                    });
                }
                if vae.flat_grads().iter().any(|g| !g.is_finite()) {
                    return Err(BaselineError::NonFinite {
                        epoch,
                        quantity: "a gradient",
                    });
                }
                adam.step(&mut vae);
                sum.cost += l.cost;
                sum.hinge += l.hinge;
                sum.kl += l.kl;
                sum.total += l.total;
                n += 1;
            }
            let n = n.max(1) as f64;
            on_epoch(DiceVaeEpoch {
                epoch,
                loss: VaeLoss {
                    cost: sum.cost / n,
                    hinge: sum.hinge / n,
                    kl: sum.kl / n,
                    total: sum.total / n,
                },
            });
        }
        Ok(vae)
    }

    /// Recommendations for standardized individuals `x`: the decoded latent mean, with every
    /// feature that is not actionable or is flagged in `forbid` held at its factual value. The
    /// mask marks the free features that moved by more than [`CHANGE_TOLERANCE`].
    pub fn recommend(
        &self,
        classifier: &Classifier,
        x: &Array2<f64>,
        forbid: &[bool],
    ) -> Result<BaselineOutput, BaselineError> {
        let d = self.d();
        if classifier.n_features() != d {
            return Err(BaselineError::Shape {
                what: "classifier inputs",
                expected: d,
                found: classifier.n_features(),
            });
        }
        check_batch(x, d, forbid)?;
        let free = allowed(&self.problem, forbid);
        let noise = Array2::zeros(x.raw_dim());
        let pass = self.pass(classifier, x, &noise, &free);
        let mask = Array2::from_shape_fn(x.raw_dim(), |(b, k)| {
            let moved = (pass.x_cf[[b, k]] - x[[b, k]]).abs() > CHANGE_TOLERANCE;
            f64::from(u8::from(free[k] && moved))
        });
        let cost = self.problem.cost(x, &pass.x_cf, &mask);
        Ok(BaselineOutput {
            mask,
            x_cf: pass.x_cf,
            prob: pass.prob,
            cost,
        })
    }
}

impl Params for DiceVae {
    fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>> {
        let mut v = self.encoder.params_and_grads();
        v.extend(self.decoder.params_and_grads());
        v
    }
}

#[cfg(test)]
mod tests;
