//! The flow's hyperparameters (validated once into [`CheckedFlowConfig`]), its errors and its
//! training report.

/// `ln(1e-3)`: zuko's `MonotonicAffineTransform(slope = 1e-3)` soft-clips the log-scale into
/// `(ln 1e-3, -ln 1e-3)` (FLOW_MATH section 4).
pub const LN_MIN_SCALE: f64 = -6.907_755_278_982_137;
/// Hyper-network hidden widths of the Loan reference flow (FLOW_MATH section 0).
pub const DEFAULT_HIDDEN: [usize; 1] = [64];
/// Stacked layers in the reference flows (FLOW_MATH section 2).
pub const DEFAULT_LAYERS: usize = 1;
/// Adam learning rate (docs/MATH.md section 4, causal flow).
pub const DEFAULT_LR: f64 = 1e-3;
/// Epoch budget (our choice; early stopping usually ends training first).
pub const DEFAULT_EPOCHS: usize = 500;
/// Mini-batch size (our choice, as the classifier's, docs/MATH.md section 3, classifier).
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Early-stopping patience in epochs (our choice).
pub const DEFAULT_PATIENCE: usize = 30;
/// Plateau schedule: multiply the learning rate by this factor (our choice)...
pub const DEFAULT_PLATEAU_FACTOR: f64 = 0.5;
/// ...after this many epochs without improvement (torch's default patience).
pub const DEFAULT_PLATEAU_PATIENCE: usize = 10;
/// Relative improvement the plateau schedule requires (torch's default threshold).
pub const PLATEAU_THRESHOLD: f64 = 1e-4;
/// The learning rate never goes below this (our choice).
pub const DEFAULT_MIN_LR: f64 = 1e-5;

/// Flow hyperparameters, as read from a file or the command line. Validate with
/// [`FlowConfig::check`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Hyper-network hidden widths (shared by every layer).
    pub hidden: Vec<usize>,
    /// Number of stacked masked affine layers.
    pub layers: usize,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// L2 weight decay (torch `Adam(weight_decay)`), 0 for none.
    pub weight_decay: f64,
    /// Early-stopping patience in epochs.
    pub patience: usize,
    /// Plateau schedule factor, in `(0, 1)`.
    pub plateau_factor: f64,
    /// Plateau schedule patience in epochs.
    pub plateau_patience: usize,
    /// Lower bound of the learning rate.
    pub min_lr: f64,
    /// Seed for the initialization and the mini-batch order.
    pub seed: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            hidden: DEFAULT_HIDDEN.to_vec(),
            layers: DEFAULT_LAYERS,
            epochs: DEFAULT_EPOCHS,
            batch_size: DEFAULT_BATCH_SIZE,
            lr: DEFAULT_LR,
            weight_decay: 0.0,
            patience: DEFAULT_PATIENCE,
            plateau_factor: DEFAULT_PLATEAU_FACTOR,
            plateau_patience: DEFAULT_PLATEAU_PATIENCE,
            min_lr: DEFAULT_MIN_LR,
            seed: 0,
        }
    }
}

/// Why a flow configuration, graph or data set was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowError {
    /// `layers` is 0.
    #[error("the flow needs at least one layer")]
    ZeroLayers,
    /// `epochs` is 0.
    #[error("flow epochs must be at least 1")]
    ZeroEpochs,
    /// `batch_size` is 0.
    #[error("flow batch size must be at least 1")]
    ZeroBatchSize,
    /// `patience` is 0.
    #[error("flow early-stopping patience must be at least 1")]
    ZeroPatience,
    /// The learning rate (or its floor) is not a positive finite number, or the floor exceeds it.
    #[error(
        "flow learning rate {lr} (floor {min_lr}) must be positive, finite and above the floor"
    )]
    BadLearningRate {
        /// Initial learning rate.
        lr: f64,
        /// Floor.
        min_lr: f64,
    },
    /// The weight decay is negative or not finite.
    #[error("flow weight decay must be non-negative and finite, got {0}")]
    BadWeightDecay(f64),
    /// The plateau factor is not in `(0, 1)`.
    #[error("flow plateau factor must be in (0, 1), got {0}")]
    BadPlateauFactor(f64),
    /// A hidden layer is narrower than the number of distinct parent sets.
    #[error("flow hidden layer {layer} has width {width}; the graph needs at least {needed}")]
    HiddenTooNarrow {
        /// Index into `hidden`.
        layer: usize,
        /// Its width.
        width: usize,
        /// Distinct non-empty parent sets in the graph.
        needed: usize,
    },
    /// The graph has no features.
    #[error("the causal graph has no features")]
    EmptyGraph,
    /// A parent index is not a feature.
    #[error("feature {node} lists parent {parent}, but there are only {n} features")]
    ParentOutOfRange {
        /// Child.
        node: usize,
        /// Offending parent index.
        parent: usize,
        /// Number of features.
        n: usize,
    },
    /// A feature lists itself as a parent.
    #[error("feature {0} is its own parent")]
    SelfLoop(usize),
    /// The graph has a cycle through this feature.
    #[error("the causal graph has a cycle through feature {0}")]
    Cycle(usize),
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
    /// A value is NaN or infinite.
    #[error("{split}: value at row {row}, column {col} is not finite")]
    NonFinite {
        /// Which array.
        split: &'static str,
        /// Row.
        row: usize,
        /// Column.
        col: usize,
    },
    /// Training diverged (issue 7): a non-finite or exploding loss.
    #[error("training diverged at epoch {epoch}: {quantity}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// What was not finite or exploded.
        quantity: &'static str,
    },
    /// A hyper-network does not map `D` inputs to `2D` outputs.
    #[error("hyper-network {layer} has widths {dims:?}; expected {d} inputs and {} outputs", 2 * d)]
    HypernetDims {
        /// Flow layer.
        layer: usize,
        /// Its widths.
        dims: Vec<usize>,
        /// Number of features.
        d: usize,
    },
    /// A hyper-network does not use ELU hidden and identity output activations.
    #[error("hyper-network {0} must use ELU hidden activations and no output activation")]
    HypernetActivation(usize),
    /// A hyper-network output depends on a feature that is not a parent.
    #[error(
        "hyper-network {layer}: output {output} depends on feature {input}, which is not a parent"
    )]
    NotAutoregressive {
        /// Flow layer.
        layer: usize,
        /// Output index (`2i` or `2i + 1` for feature `i`).
        output: usize,
        /// Input feature.
        input: usize,
    },
    /// A standard deviation is not positive and finite.
    #[error("standard deviation of feature {index} is {value}; it must be positive and finite")]
    BadStd {
        /// Feature.
        index: usize,
        /// The value found.
        value: f64,
    },
}

/// A [`FlowConfig`] that passed [`FlowConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedFlowConfig(FlowConfig);

impl CheckedFlowConfig {
    /// The validated values.
    pub fn get(&self) -> &FlowConfig {
        &self.0
    }
}

impl FlowConfig {
    /// Validate once; training code trusts the result. (Widths against the graph are checked by
    /// [`super::CausalFlow::new`].)
    pub fn check(&self) -> Result<CheckedFlowConfig, FlowError> {
        if self.layers == 0 {
            return Err(FlowError::ZeroLayers);
        }
        if self.epochs == 0 {
            return Err(FlowError::ZeroEpochs);
        }
        if self.batch_size == 0 {
            return Err(FlowError::ZeroBatchSize);
        }
        if self.patience == 0 {
            return Err(FlowError::ZeroPatience);
        }
        let lr_ok = |v: f64| v.is_finite() && v > 0.0;
        if !(lr_ok(self.lr) && lr_ok(self.min_lr) && self.min_lr <= self.lr) {
            return Err(FlowError::BadLearningRate {
                lr: self.lr,
                min_lr: self.min_lr,
            });
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(FlowError::BadWeightDecay(self.weight_decay));
        }
        if !(self.plateau_factor > 0.0 && self.plateau_factor < 1.0) {
            return Err(FlowError::BadPlateauFactor(self.plateau_factor));
        }
        Ok(CheckedFlowConfig(self.clone()))
    }
}

/// What training did.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowReport {
    /// Epochs actually run.
    pub epochs_run: usize,
    /// Epoch (1-based) whose parameters were kept.
    pub best_epoch: usize,
    /// Mean validation negative log-likelihood (standardized units) of the kept parameters.
    pub best_val_nll: f64,
    /// Learning rate at the end of training.
    pub final_lr: f64,
}
