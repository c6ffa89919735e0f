//! The classifier h(x) (docs/MATH.md, section 3): logistic regression or an MLP with ReLU hidden
//! layers, sigmoid output, trained with binary cross-entropy on standardized features.
//!
//! Two recipes. The default is the paper reference's: plain SGD (lr 1e-3, no momentum), batch
//! 256, 500 epochs, no early stopping, the last epoch kept. On the paper's datasets, whose labels
//! are a deterministic function of the features, it stops well short of a step function
//! (Loan: about 91 % test accuracy), which is the classifier CARMA was designed and tuned
//! against. [`ClassifierConfig::steep`] is the project's earlier recipe, Adam with early
//! stopping: more accurate (Loan about 99 %) and nearly a step function, the hard case for
//! recourse that a user's own model often is.

use ndarray::{Array1, Array2, ArrayView1, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::nn::{
    Activation, Adam, AdamConfig, EarlyStopping, EpochEnd, Init, MiniBatches, Mlp, MlpCache,
    Params, Sgd, Verdict, WeightDecay, loss::bce_with_logits,
};

/// Training epochs (docs/MATH.md section 3, classifier).
pub const DEFAULT_EPOCHS: usize = 500;
/// Mini-batch size (docs/MATH.md section 3, classifier).
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Learning rate (the reference's SGD: 1e-3; also used for the steep recipe's Adam).
pub const DEFAULT_LR: f64 = 1e-3;
/// Epochs without a better validation loss before training stops, when early stopping is on
/// (the steep recipe; our choice).
pub const DEFAULT_PATIENCE: usize = 50;

/// How the classifier's parameters are optimized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierOptimizer {
    /// Plain SGD, no momentum (the paper reference's recipe).
    #[default]
    Sgd,
    /// Adam with torch's defaults (the steep recipe).
    Adam,
}
/// An individual is accepted when `h(x) >= ACCEPT_THRESHOLD` (docs/MATH.md, section 1).
pub const ACCEPT_THRESHOLD: f64 = 0.5;
/// The hidden activations a classifier may have: ReLU (what [`Classifier::fit`] trains) and the
/// others of scikit-learn's `MLPClassifier` and of PyTorch's common layers (tanh, logistic,
/// identity), for a brought classifier.
pub const HIDDEN_ACTIVATIONS: [Activation; 4] = [
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Identity,
];
/// Hidden widths for the non-linear datasets (docs/MATH.md section 3, classifier).
pub const NLIN_HIDDEN: [usize; 1] = [16];
/// Hidden widths for Loan (docs/MATH.md section 3, classifier).
pub const LOAN_HIDDEN: [usize; 2] = [32, 32];

/// Classifier hyperparameters, as read from a file or the command line. Validate with
/// [`ClassifierConfig::check`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Hidden widths; empty means logistic regression.
    pub hidden: Vec<usize>,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// The optimizer: `"sgd"` (default, the reference's) or `"adam"`.
    pub optimizer: ClassifierOptimizer,
    /// Learning rate.
    pub lr: f64,
    /// L2 weight decay (torch `weight_decay`), 0 for none.
    pub weight_decay: f64,
    /// Keep the epoch with the best validation loss and stop after `patience` epochs without
    /// improvement; `false` (default, the reference's) trains every epoch and keeps the last.
    pub early_stopping: bool,
    /// Early-stopping patience in epochs (used only with `early_stopping`).
    pub patience: usize,
    /// Seed for the initialization and the mini-batch order.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            hidden: Vec::new(),
            epochs: DEFAULT_EPOCHS,
            batch_size: DEFAULT_BATCH_SIZE,
            optimizer: ClassifierOptimizer::Sgd,
            lr: DEFAULT_LR,
            weight_decay: 0.0,
            early_stopping: false,
            patience: DEFAULT_PATIENCE,
            seed: 0,
        }
    }
}

/// Why a classifier configuration or its data was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifierError {
    /// `epochs` is 0.
    #[error("classifier epochs must be at least 1")]
    ZeroEpochs,
    /// `batch_size` is 0.
    #[error("classifier batch size must be at least 1")]
    ZeroBatchSize,
    /// `patience` is 0.
    #[error("classifier early-stopping patience must be at least 1")]
    ZeroPatience,
    /// The learning rate is not a positive finite number.
    #[error("classifier learning rate must be positive and finite, got {0}")]
    BadLearningRate(f64),
    /// The weight decay is negative or not finite.
    #[error("classifier weight decay must be non-negative and finite, got {0}")]
    BadWeightDecay(f64),
    /// A hidden layer has width 0.
    #[error("classifier hidden layer {layer} has width 0")]
    ZeroWidth {
        /// Index into `hidden`.
        layer: usize,
    },
    /// A data split has no rows.
    #[error("the {split} split is empty")]
    EmptySplit {
        /// Which split.
        split: &'static str,
    },
    /// Array shapes disagree.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// Which quantity.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Actual size.
        found: usize,
    },
    /// A feature value is NaN or infinite.
    #[error("{split} split: feature value at row {row}, column {col} is not finite")]
    NonFinite {
        /// Which split.
        split: &'static str,
        /// Row.
        row: usize,
        /// Column.
        col: usize,
    },
    /// A network given to [`Classifier::from_net`] does not have one output, hidden
    /// activations among [`HIDDEN_ACTIVATIONS`] and no output activation.
    #[error(
        "a classifier network needs one output (the logit), hidden layers with ReLU, tanh, \
         logistic or identity activations, and no output activation"
    )]
    BadNet,
    /// Training diverged (issue 7): a non-finite or exploding loss.
    #[error("training diverged at epoch {epoch}: {quantity}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// What was not finite or exploded.
        quantity: &'static str,
    },
    /// A label is not 0 or 1.
    #[error("{split} split: label at row {row} is {value}, expected 0 or 1")]
    BadLabel {
        /// Which split.
        split: &'static str,
        /// Row.
        row: usize,
        /// The value found.
        value: f64,
    },
}

/// A [`ClassifierConfig`] that passed [`ClassifierConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedClassifierConfig(ClassifierConfig);

impl CheckedClassifierConfig {
    /// The validated values.
    pub fn get(&self) -> &ClassifierConfig {
        &self.0
    }
}

impl ClassifierConfig {
    /// Logistic regression with the reference recipe.
    pub fn logistic() -> Self {
        Self::default()
    }

    /// An MLP with the given hidden widths and the reference recipe.
    pub fn mlp(hidden: &[usize]) -> Self {
        Self {
            hidden: hidden.to_vec(),
            ..Self::default()
        }
    }

    /// The steep recipe: Adam (lr 1e-3) with early stopping on the validation loss
    /// (patience [`DEFAULT_PATIENCE`]), the given hidden widths.
    pub fn steep(hidden: &[usize]) -> Self {
        Self {
            hidden: hidden.to_vec(),
            optimizer: ClassifierOptimizer::Adam,
            early_stopping: true,
            ..Self::default()
        }
    }

    /// Switches this configuration to the steep recipe (Adam, early stopping), keeping the
    /// architecture, the epoch budget and the seed.
    pub fn make_steep(&mut self) {
        self.optimizer = ClassifierOptimizer::Adam;
        self.early_stopping = true;
    }

    /// Validate once; training code trusts the result.
    pub fn check(&self) -> Result<CheckedClassifierConfig, ClassifierError> {
        if self.epochs == 0 {
            return Err(ClassifierError::ZeroEpochs);
        }
        if self.batch_size == 0 {
            return Err(ClassifierError::ZeroBatchSize);
        }
        if self.early_stopping && self.patience == 0 {
            return Err(ClassifierError::ZeroPatience);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ClassifierError::BadLearningRate(self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ClassifierError::BadWeightDecay(self.weight_decay));
        }
        if let Some(layer) = self.hidden.iter().position(|&w| w == 0) {
            return Err(ClassifierError::ZeroWidth { layer });
        }
        Ok(CheckedClassifierConfig(self.clone()))
    }
}

/// What training did.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierReport {
    /// Epochs actually run (early stopping may end before the budget).
    pub epochs_run: usize,
    /// Epoch (1-based) whose parameters were kept.
    pub best_epoch: usize,
    /// Validation BCE of the kept parameters.
    pub best_val_loss: f64,
    /// Validation accuracy of the kept parameters.
    pub val_accuracy: f64,
}

/// `h(x)`: a network producing one logit, followed by a sigmoid. Inputs are standardized
/// features, all `D` columns (docs/MATH.md section 3, classifier).
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// Hidden layers ReLU, output Identity (the logit); the sigmoid is applied on top.
    net: Mlp,
}

fn validate_split(
    split: &'static str,
    x: &Array2<f64>,
    y: ArrayView1<f64>,
    d: usize,
) -> Result<(), ClassifierError> {
    if x.nrows() == 0 {
        return Err(ClassifierError::EmptySplit { split });
    }
    if x.ncols() != d {
        return Err(ClassifierError::Shape {
            what: "number of feature columns",
            expected: d,
            found: x.ncols(),
        });
    }
    if y.len() != x.nrows() {
        return Err(ClassifierError::Shape {
            what: "number of labels",
            expected: x.nrows(),
            found: y.len(),
        });
    }
    if let Some(((row, col), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(ClassifierError::NonFinite { split, row, col });
    }
    if let Some((row, &value)) = y.iter().enumerate().find(|(_, v)| **v != 0.0 && **v != 1.0) {
        return Err(ClassifierError::BadLabel { split, row, value });
    }
    Ok(())
}

/// A classifier forward pass kept for its input gradient ([`Classifier::prob_traced`]).
#[derive(Debug, Clone)]
pub struct ClassifierTrace(MlpCache);

impl Classifier {
    /// An untrained classifier over `n_features` inputs, initialized like torch's `nn.Linear`
    /// from `config.seed`.
    pub fn new(n_features: usize, config: &CheckedClassifierConfig) -> Self {
        let cfg = config.get();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Self::with_rng(n_features, cfg, &mut rng)
    }

    fn with_rng(n_features: usize, cfg: &ClassifierConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut dims = vec![n_features];
        dims.extend_from_slice(&cfg.hidden);
        dims.push(1);
        Self {
            net: Mlp::new(
                &dims,
                Activation::Relu,
                Activation::Identity,
                Init::TorchDefault,
                rng,
            ),
        }
    }

    /// Train on `(x_train, y_train)` with early stopping on `(x_val, y_val)`; labels are 0 or 1.
    /// Returns the parameters with the best validation loss.
    pub fn fit(
        x_train: &Array2<f64>,
        y_train: &Array1<f64>,
        x_val: &Array2<f64>,
        y_val: &Array1<f64>,
        config: &CheckedClassifierConfig,
    ) -> Result<(Self, ClassifierReport), ClassifierError> {
        Self::fit_observed(x_train, y_train, x_val, y_val, config, &mut |_| {})
    }

    /// [`Classifier::fit`], calling `observer` after every epoch.
    pub fn fit_observed(
        x_train: &Array2<f64>,
        y_train: &Array1<f64>,
        x_val: &Array2<f64>,
        y_val: &Array1<f64>,
        config: &CheckedClassifierConfig,
        observer: &mut dyn FnMut(EpochEnd),
    ) -> Result<(Self, ClassifierReport), ClassifierError> {
        let cfg = config.get();
        let d = x_train.ncols();
        validate_split("training", x_train, y_train.view(), d)?;
        validate_split("validation", x_val, y_val.view(), d)?;

        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut model = Self::with_rng(d, cfg, &mut rng);
        let mut adam = Adam::new(AdamConfig {
            lr: cfg.lr,
            weight_decay: if cfg.weight_decay > 0.0 {
                WeightDecay::L2(cfg.weight_decay)
            } else {
                WeightDecay::None
            },
            ..AdamConfig::default()
        });
        let sgd = Sgd {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
        };
        let mut last_val_loss = f64::INFINITY;
        let mut batches = MiniBatches::new(x_train.nrows(), cfg.batch_size);
        let mut stopper = EarlyStopping::new(cfg.patience, 0.0);
        let mut best_epoch = 0;
        let mut epochs_run = 0;
        let initial_val_loss = model.loss(x_val, y_val);
        for epoch in 1..=cfg.epochs {
            epochs_run = epoch;
            batches.shuffle(&mut rng);
            let mut train_loss = 0.0;
            for idx in batches.batches() {
                let xb = x_train.select(Axis(0), idx);
                let yb = y_train.select(Axis(0), idx);
                model.net.zero_grad();
                let logits = model.net.forward(&xb);
                let (loss, g) = bce_with_logits(logits.column(0), yb.view());
                train_loss += loss * idx.len() as f64;
                model.net.backward(&g.insert_axis(Axis(1)));
                match cfg.optimizer {
                    ClassifierOptimizer::Sgd => sgd.step(&mut model.net),
                    ClassifierOptimizer::Adam => adam.step(&mut model.net),
                }
            }
            let val_loss = model.loss(x_val, y_val);
            let train_loss = train_loss / x_train.nrows() as f64;
            observer(EpochEnd {
                epoch,
                train_loss,
                val_loss,
                lr: cfg.lr,
            });
            if let Some(quantity) = crate::nn::divergence(train_loss, val_loss, initial_val_loss) {
                return Err(ClassifierError::Diverged { epoch, quantity });
            }
            last_val_loss = val_loss;
            if !cfg.early_stopping {
                best_epoch = epoch;
                continue;
            }
            match stopper.observe(val_loss, &model) {
                Verdict::Improved => best_epoch = epoch,
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
        }
        let (model, best_val_loss) = if cfg.early_stopping {
            let best = stopper.best_loss();
            (stopper.into_best().unwrap_or(model), best)
        } else {
            (model, last_val_loss)
        };
        let val_accuracy = model.accuracy(x_val, y_val);
        Ok((
            model,
            ClassifierReport {
                epochs_run,
                best_epoch,
                best_val_loss,
                val_accuracy,
            },
        ))
    }

    /// A classifier from an existing logit network (the reference checkpoint's weights, a
    /// brought scikit-learn or PyTorch model): one output, hidden activations among
    /// [`HIDDEN_ACTIVATIONS`], identity output (the sigmoid is applied on top).
    pub fn from_net(net: Mlp) -> Result<Self, ClassifierError> {
        let dims = net.dims();
        let hidden_ok = dims.len() == 2 || HIDDEN_ACTIVATIONS.contains(&net.hidden_activation());
        if dims[dims.len() - 1] != 1
            || !hidden_ok
            || net.output_activation() != Activation::Identity
        {
            return Err(ClassifierError::BadNet);
        }
        Ok(Self { net })
    }

    /// The same decision boundary with every logit multiplied by `factor` (the output layer's
    /// weights and bias scaled): `factor > 1` makes the classifier steeper. Used to build the
    /// steep classifiers a user might bring (a logistic regression with very large weights).
    pub fn sharpened(&self, factor: f64) -> Classifier {
        let layers = self.net.layers();
        let last = layers.len() - 1;
        let scaled = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let k = if i == last { factor } else { 1.0 };
                crate::nn::Dense::from_parts(l.weight() * k, l.bias() * k)
            })
            .collect();
        Classifier {
            net: Mlp::from_layers(
                scaled,
                self.net.hidden_activation(),
                self.net.output_activation(),
            ),
        }
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.net.dims()[0]
    }

    /// The logit network (hidden ReLU for a trained one, output Identity).
    pub fn net(&self) -> &Mlp {
        &self.net
    }

    /// The logits, one per row.
    pub fn logits(&self, x: &Array2<f64>) -> Array1<f64> {
        self.net.predict(x).column(0).to_owned()
    }

    /// `h(x) = P(y = 1 | x)`, one per row.
    pub fn prob(&self, x: &Array2<f64>) -> Array1<f64> {
        self.logits(x).mapv(|t| Activation::Sigmoid.apply(t))
    }

    /// Mean binary cross-entropy on `(x, y)`.
    pub fn loss(&self, x: &Array2<f64>, y: &Array1<f64>) -> f64 {
        bce_with_logits(self.logits(x).view(), y.view()).0
    }

    /// Fraction of rows where `1[h(x) >= 0.5]` equals the label (0 for no rows).
    pub fn accuracy(&self, x: &Array2<f64>, y: &Array1<f64>) -> f64 {
        let p = self.prob(x);
        if p.is_empty() {
            return 0.0;
        }
        let hits = p
            .iter()
            .zip(y)
            .filter(|&(&p, &y)| (p >= ACCEPT_THRESHOLD) == (y >= 0.5))
            .count();
        hits as f64 / p.len() as f64
    }

    /// Gradient of `sum_r grad_p[r] * h(x_r)` with respect to `x` (rows = batch). The classifier
    /// stays frozen: its parameter gradients are not touched.
    pub fn input_grad(&self, x: &Array2<f64>, grad_p: &Array1<f64>) -> Array2<f64> {
        let (_, trace) = self.prob_traced(x);
        self.input_grad_traced(&trace, grad_p)
    }

    /// [`Classifier::prob`], keeping the forward pass for [`Classifier::input_grad_traced`].
    pub fn prob_traced(&self, x: &Array2<f64>) -> (Array1<f64>, ClassifierTrace) {
        let mut cache = MlpCache::default();
        let p = self
            .net
            .forward_with(x, &mut cache)
            .column(0)
            .mapv(|t| Activation::Sigmoid.apply(t));
        (p, ClassifierTrace(cache))
    }

    /// [`Classifier::input_grad`] at the point of a [`Classifier::prob_traced`] call, without
    /// a second forward pass.
    pub fn input_grad_traced(&self, trace: &ClassifierTrace, grad_p: &Array1<f64>) -> Array2<f64> {
        let mut g = trace.0.output().mapv(|t| {
            let p = Activation::Sigmoid.apply(t);
            p * (1.0 - p)
        });
        g.column_mut(0).zip_mut_with(grad_p, |a, &b| *a *= b);
        self.net.input_grad(&trace.0, &g)
    }

    /// Widths `[D, hidden..., 1]` and parameters in `MlpWire` layout (`f32`), for export as an
    /// MLP with hidden activation ReLU and output activation Sigmoid.
    pub fn to_mlp_parts(&self) -> (Vec<usize>, Vec<f32>) {
        (self.net.dims(), self.net.to_wire_params())
    }
}

impl Params for Classifier {
    fn params_and_grads(&mut self) -> Vec<crate::nn::ParamGrad<'_>> {
        self.net.params_and_grads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_grads_close, numeric_grad, random_matrix};
    use rand::Rng;

    /// Rows uniform in `[-2, 2]^3`, labels from `rule`.
    fn dataset(n: usize, seed: u64, rule: impl Fn(&[f64]) -> bool) -> (Array2<f64>, Array1<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_simple_fn((n, 3), || rng.random_range(-2.0..2.0));
        let y = x
            .rows()
            .into_iter()
            .map(|r| f64::from(u8::from(rule(r.as_slice().unwrap()))))
            .collect();
        (x, y)
    }

    fn linear_rule(r: &[f64]) -> bool {
        r[0] + 0.5 * r[1] - r[2] > 0.2
    }

    fn quick(hidden: &[usize], epochs: usize, lr: f64) -> CheckedClassifierConfig {
        ClassifierConfig {
            hidden: hidden.to_vec(),
            epochs,
            batch_size: 64,
            lr,
            patience: 10,
            seed: 7,
            ..ClassifierConfig::steep(&[])
        }
        .check()
        .unwrap()
    }

    #[test]
    fn logistic_regression_learns_a_linear_boundary() {
        let (x, y) = dataset(1500, 1, linear_rule);
        let (xv, yv) = dataset(500, 2, linear_rule);
        let (xt, yt) = dataset(500, 3, linear_rule);
        let (clf, report) = Classifier::fit(&x, &y, &xv, &yv, &quick(&[], 40, 0.05)).unwrap();
        assert_eq!(clf.to_mlp_parts().0, vec![3, 1]);
        assert!(report.best_epoch >= 1 && report.best_epoch <= report.epochs_run);
        let acc = clf.accuracy(&xt, &yt);
        assert!(acc > 0.95, "test accuracy {acc}");
    }

    #[test]
    fn mlp_learns_a_boundary_logistic_regression_cannot() {
        // A disc: not linearly separable.
        let rule = |r: &[f64]| r[0] * r[0] + r[1] * r[1] < 1.5;
        let (x, y) = dataset(2000, 4, rule);
        let (xv, yv) = dataset(500, 5, rule);
        let (xt, yt) = dataset(500, 6, rule);
        let (mlp, _) = Classifier::fit(&x, &y, &xv, &yv, &quick(&[16], 60, 0.01)).unwrap();
        let (lin, _) = Classifier::fit(&x, &y, &xv, &yv, &quick(&[], 60, 0.01)).unwrap();
        let (a_mlp, a_lin) = (mlp.accuracy(&xt, &yt), lin.accuracy(&xt, &yt));
        assert!(
            a_mlp > 0.9 && a_mlp > a_lin + 0.1,
            "mlp {a_mlp}, logistic {a_lin}"
        );
    }

    /// The two recipes on labels that are a deterministic function of the features (as on the
    /// paper's datasets): the reference's (SGD, every epoch, the last kept) stays smooth, with
    /// many probabilities between 0.1 and 0.9; the steep one (Adam, early stopping) is close to a
    /// step function.
    #[test]
    fn the_reference_recipe_is_smoother_than_the_steep_one_and_keeps_the_last_epoch() {
        let (x, y) = dataset(4000, 11, linear_rule);
        let (xv, yv) = dataset(1000, 12, linear_rule);
        let (xt, _) = dataset(1000, 13, linear_rule);
        let fit = |cfg: ClassifierConfig| {
            Classifier::fit(
                &x,
                &y,
                &xv,
                &yv,
                &ClassifierConfig { seed: 3, ..cfg }.check().unwrap(),
            )
            .unwrap()
        };
        let (smooth, r) = fit(ClassifierConfig {
            epochs: 60,
            lr: 0.05,
            ..ClassifierConfig::mlp(&[16])
        });
        assert_eq!((r.epochs_run, r.best_epoch), (60, 60), "no early stopping");
        let (steep, _) = fit(ClassifierConfig {
            epochs: 60,
            lr: 0.01,
            ..ClassifierConfig::steep(&[16])
        });
        let ambiguous = |c: &Classifier| {
            c.prob(&xt)
                .iter()
                .filter(|&&p| (0.1..=0.9).contains(&p))
                .count() as f64
                / 1000.0
        };
        let (a_smooth, a_steep) = (ambiguous(&smooth), ambiguous(&steep));
        assert!(
            a_smooth > 2.0 * a_steep,
            "smooth {a_smooth}, steep {a_steep}"
        );
        assert!(smooth.accuracy(&xt, &dataset(1000, 13, linear_rule).1) > 0.8);
    }

    #[test]
    fn sharpening_keeps_the_boundary_and_scales_the_logit() {
        let clf = Classifier::new(3, &ClassifierConfig::mlp(&[4]).check().unwrap());
        let x = random_matrix(6, 3, 2, 1.0);
        let sharp = clf.sharpened(20.0);
        for (a, b) in clf.logits(&x).iter().zip(sharp.logits(&x).iter()) {
            approx::assert_relative_eq!(*b, 20.0 * a, max_relative = 1e-12);
        }
    }

    #[test]
    fn observer_sees_every_epoch() {
        let (x, y) = dataset(200, 1, linear_rule);
        let mut seen = Vec::new();
        let (_, report) =
            Classifier::fit_observed(&x, &y, &x, &y, &quick(&[], 4, 0.01), &mut |e| seen.push(e))
                .unwrap();
        assert_eq!(seen.len(), report.epochs_run);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(k, e)| e.epoch == k + 1 && e.train_loss.is_finite())
        );
        assert!(seen.last().unwrap().val_loss < seen[0].val_loss);
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (x, y) = dataset(300, 1, linear_rule);
        let cfg = quick(&[4], 3, 0.01);
        let (a, _) = Classifier::fit(&x, &y, &x, &y, &cfg).unwrap();
        let (b, _) = Classifier::fit(&x, &y, &x, &y, &cfg).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn input_grad_matches_finite_differences() {
        let clf = Classifier::new(4, &ClassifierConfig::mlp(&LOAN_HIDDEN).check().unwrap());
        let x = random_matrix(5, 4, 3, 1.5);
        let gp = Array1::from(vec![1.0, -0.5, 2.0, 0.3, -1.2]);
        let analytic = clf.input_grad(&x, &gp);
        let numeric = numeric_grad(&x, |x| (clf.prob(x) * &gp).sum());
        assert_grads_close(analytic.as_slice().unwrap(), numeric.as_slice().unwrap());
    }

    #[test]
    fn config_check_names_the_problem() {
        let bad = |f: fn(&mut ClassifierConfig)| {
            let mut c = ClassifierConfig::default();
            f(&mut c);
            c.check().unwrap_err()
        };
        assert_eq!(bad(|c| c.epochs = 0), ClassifierError::ZeroEpochs);
        assert_eq!(bad(|c| c.batch_size = 0), ClassifierError::ZeroBatchSize);
        assert_eq!(bad(|c| c.lr = -1.0), ClassifierError::BadLearningRate(-1.0));
        assert_eq!(
            bad(|c| c.hidden = vec![8, 0]),
            ClassifierError::ZeroWidth { layer: 1 }
        );
        assert!(ClassifierConfig::mlp(&NLIN_HIDDEN).check().is_ok());
    }

    #[test]
    fn fit_rejects_bad_data_with_typed_errors() {
        let cfg = quick(&[], 1, 0.01);
        let (mut x, mut y) = dataset(10, 1, linear_rule);
        x[[3, 2]] = f64::NAN;
        let err = Classifier::fit(&x, &y, &x, &y, &cfg).unwrap_err();
        assert_eq!(
            err,
            ClassifierError::NonFinite {
                split: "training",
                row: 3,
                col: 2
            }
        );
        x[[3, 2]] = 0.0;
        y[4] = 0.5;
        let err = Classifier::fit(&x, &y, &x, &y, &cfg).unwrap_err();
        assert!(matches!(err, ClassifierError::BadLabel { row: 4, .. }));
        let empty = Array2::zeros((0, 3));
        let err = Classifier::fit(&x, &y, &empty, &Array1::zeros(0), &cfg).unwrap_err();
        assert!(matches!(
            err,
            ClassifierError::BadLabel { .. } | ClassifierError::EmptySplit { .. }
        ));
    }
}
