//! The whole training pipeline: data, the shared scaler, the classifier, the
//! causal flow and CARMA, with their metrics, ready to export as one bundle.
//!
//! Two entry points: [`train_simulated`] draws separate samples per stage
//! from a built-in SCM (docs/MATH.md section 2, datasets, "Samples"); [`train_on_table`] fits a
//! user's table and causal graph.

use ndarray::{Array1, Array2, Axis};

use crate::carma::{Carma, CarmaConfig, CarmaEpoch, CarmaError, RecourseProblem};
use crate::classifier::{ACCEPT_THRESHOLD, Classifier, ClassifierConfig, ClassifierError};
use crate::data::{DataError, Scaler, ScalerError, Table};
use crate::export::{BundleSpec, CarmaSpec, ExportError, FlowSpec, GridFeature, MlpSpec};
use crate::flow::{CausalFlow, FlowConfig, FlowError};
use crate::graph::{CausalGraph, FeatureKind};
use crate::nn::{Activation, Params};
use crate::scm::{Dataset, Scm};
use carma_core::format::MetricsWire;

/// Classifier data set size per dataset (docs/MATH.md section 2, datasets).
pub const PAPER_N_CLASSIFIER: usize = 20_000;
/// Flow data set size (docs/MATH.md section 2, datasets).
pub const PAPER_N_FLOW: usize = 25_000;
/// The flow's hyper-network widths where the project departs from the paper's one layer of
/// 64 (triangle-NLIN and chain-NLIN; docs/MATH.md section 4): one layer fits the sigmoid
/// mechanism of `x_2` too loosely in the tail of `x_1` for the counterfactuals to stay valid.
pub const PROJECT_FLOW_HIDDEN_NLIN: [usize; 2] = [64, 64];
/// Recourse data set size (docs/MATH.md section 2, datasets).
pub const PAPER_N_RECOURSE: usize = 20_000;
/// Classifier split fractions train/val/test (docs/MATH.md section 2, datasets).
pub const CLASSIFIER_SPLIT: [f64; 3] = [0.5, 0.25, 0.25];
/// Flow split fractions (docs/MATH.md section 2, datasets).
pub const FLOW_SPLIT: [f64; 3] = [0.8, 0.1, 0.1];
/// Recourse split fractions (docs/MATH.md section 2, datasets).
pub const RECOURSE_SPLIT: [f64; 3] = [0.5, 0.25, 0.25];
/// Loan preference weights of the weighted experiment: education 3, loan
/// amount 2, income 2, savings 1 (docs/MATH.md section 8, metrics).
pub const LOAN_WEIGHTS: [f64; 7] = [1.0, 1.0, 3.0, 2.0, 1.0, 2.0, 1.0];

/// Everything the pipeline needs besides the data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Master seed; every stage derives its own from it.
    pub seed: u64,
    /// Rows simulated for the classifier.
    pub n_classifier: usize,
    /// Rows simulated for the flow.
    pub n_flow: usize,
    /// Rows simulated for recourse (CARMA training and the test table).
    pub n_recourse: usize,
    /// Classifier settings (its seed is overridden from `seed`).
    pub classifier: ClassifierConfig,
    /// Flow settings (its seed is overridden from `seed`).
    pub flow: FlowConfig,
    /// CARMA settings (its seed is overridden from `seed`).
    pub carma: CarmaConfig,
    /// Preference weights per feature; `None` takes the graph's.
    pub weights: Option<Vec<f64>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self::paper(Dataset::Loan)
    }
}

impl PipelineConfig {
    /// The project's settings for `dataset` (docs/MATH.md sections 2-5): the paper's
    /// ([`PipelineConfig::paper_setting`]) with the departures measured on the validation split
    /// ([`PipelineConfig::project_setting`]).
    pub fn paper(dataset: Dataset) -> Self {
        Self::project_setting(dataset, false)
    }

    /// The paper's settings exactly, for reproduction: its data sizes, classifier recipe, flow
    /// and Table 5's CARMA row; `weighted` selects the Loan preference case study's CARMA
    /// settings (Table 5's last row) and the Loan preference weights.
    pub fn paper_setting(dataset: Dataset, weighted: bool) -> Self {
        let hidden = match dataset {
            Dataset::Loan => crate::classifier::LOAN_HIDDEN.to_vec(),
            d if d.is_linear() => Vec::new(),
            _ => crate::classifier::NLIN_HIDDEN.to_vec(),
        };
        Self {
            seed: 0,
            n_classifier: PAPER_N_CLASSIFIER,
            n_flow: PAPER_N_FLOW,
            n_recourse: PAPER_N_RECOURSE,
            classifier: ClassifierConfig::mlp(&hidden),
            flow: FlowConfig::default(),
            carma: CarmaConfig::table5(dataset, weighted),
            weights: (weighted && dataset == Dataset::Loan).then(|| LOAN_WEIGHTS.to_vec()),
        }
    }

    /// What the evaluation, the demo and `carma oracle` use: [`PipelineConfig::paper_setting`]
    /// with two departures, each chosen on the recourse validation split, never the test split
    /// (docs/MATH.md, sections 4 and 5): CARMA's settings of [`CarmaConfig::project`], and for
    /// triangle-NLIN and chain-NLIN a flow with two hidden layers ([`PROJECT_FLOW_HIDDEN_NLIN`]).
    pub fn project_setting(dataset: Dataset, weighted: bool) -> Self {
        let mut cfg = Self::paper_setting(dataset, weighted);
        cfg.carma = CarmaConfig::project(dataset, weighted);
        if matches!(dataset, Dataset::TriangleNlin | Dataset::ChainNlin) {
            cfg.flow.hidden = PROJECT_FLOW_HIDDEN_NLIN.to_vec();
        }
        cfg
    }

    /// Settings for the demo: the paper's architecture with fewer epochs, so
    /// the whole pipeline runs in well under a minute on two cores.
    pub fn demo(dataset: Dataset) -> Self {
        let mut cfg = Self::paper(dataset);
        cfg.flow.epochs = 60;
        cfg.flow.patience = 10;
        cfg.carma.epochs = 120;
        cfg
    }

    /// A tiny configuration for tests: small samples, few epochs (from
    /// [`PipelineConfig::paper_setting`], which the golden fixtures were made with).
    pub fn tiny(dataset: Dataset) -> Self {
        let mut cfg = Self::paper_setting(dataset, false);
        cfg.n_classifier = 2_000;
        cfg.n_flow = 2_000;
        cfg.n_recourse = 2_000;
        cfg.classifier.epochs = 10;
        // Plain SGD at lr 1e-3 learns nothing in 10 short epochs; Adam does.
        cfg.classifier.make_steep();
        cfg.flow.epochs = 10;
        cfg.flow.hidden = vec![16];
        cfg.carma.epochs = 10;
        cfg.carma.mask_hidden = vec![16];
        cfg.carma.action_hidden = vec![16, 16];
        cfg
    }
}

/// A stage of the pipeline, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Simulating or splitting the data.
    Data,
    /// Training the classifier.
    Classifier,
    /// Training the causal flow.
    Flow,
    /// Training CARMA.
    Carma,
}

impl Stage {
    /// A short name for the stage.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Data => "data",
            Stage::Classifier => "classifier",
            Stage::Flow => "causal flow",
            Stage::Carma => "CARMA",
        }
    }
}

/// Receives progress; every method has an empty default.
pub trait Progress {
    /// A stage starts; `epochs` is its epoch budget (0 when it has none).
    fn stage(&mut self, _stage: Stage, _epochs: usize) {}
    /// An epoch of `stage` ended with mean training loss `loss`.
    fn epoch(&mut self, _stage: Stage, _epoch: usize, _loss: f64) {}
    /// A stage ended; `summary` says how it went, in one line.
    fn done(&mut self, _stage: Stage, _summary: &str) {}
    /// A CARMA epoch ended with these loss terms, multiplier and validation figures (training
    /// curves; [`Progress::epoch`] is told too).
    fn carma_epoch(&mut self, _epoch: &CarmaEpoch) {}
}

/// Ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A data problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The scaler could not be fitted or applied.
    #[error(transparent)]
    Scaler(#[from] ScalerError),
    /// Classifier configuration or training failed.
    #[error("classifier: {0}")]
    Classifier(#[from] ClassifierError),
    /// Flow configuration or training failed.
    #[error("causal flow: {0}")]
    Flow(#[from] FlowError),
    /// CARMA configuration or training failed.
    #[error("CARMA: {0}")]
    Carma(#[from] CarmaError),
    /// The model could not be exported.
    #[error("export: {0}")]
    Export(#[from] ExportError),
    /// A model file given for its classifier could not be read.
    #[error("the classifier's model file: {0}")]
    Bundle(carma_core::error::Error),
    /// A brought classifier was trained on other features.
    #[error("the classifier's model has features {found:?} but the graph has {expected:?}")]
    ClassifierFeatures {
        /// The graph's feature names.
        expected: Vec<String>,
        /// The classifier model's feature names.
        found: Vec<String>,
    },
    /// The table has no label column, so no classifier can be trained.
    #[error("the data has no label column: the classifier needs one")]
    NoLabels,
    /// The table's columns do not match the graph.
    #[error("the data has columns {found:?} but the graph has features {expected:?}")]
    Columns {
        /// The graph's feature names.
        expected: Vec<String>,
        /// The table's column names.
        found: Vec<String>,
    },
    /// Preference weights of the wrong length or non-positive.
    #[error("preference weights must be {expected} positive numbers, got {found:?}")]
    Weights {
        /// Number of features.
        expected: usize,
        /// The weights given.
        found: Vec<f64>,
    },
}

/// A classifier brought from another model file (issue 5, `carma fit
/// --classifier`): used as it is, frozen, with the scaler it was trained on,
/// which then becomes the scaler every stage shares.
#[derive(Debug, Clone)]
pub struct FixedClassifier {
    /// The classifier.
    pub classifier: Classifier,
    /// The standardization its inputs need.
    pub scaler: Scaler,
    /// Its feature names, in column order.
    pub names: Vec<String>,
}

impl FixedClassifier {
    /// Reads the classifier and the scaler of a bundle (validated by `carma-core`).
    pub fn from_bundle(bytes: &[u8]) -> Result<Self, PipelineError> {
        let bundle = carma_core::bundle::Bundle::new(bytes).map_err(PipelineError::Bundle)?;
        let wire = bundle.wire();
        let f32s = |b: &[u8]| -> Vec<f64> {
            b.chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        };
        let dims: Vec<usize> = wire
            .classifier
            .dims
            .chunks_exact(2)
            .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
            .collect();
        let params = f32s(wire.classifier.params);
        let mut rest = params.as_slice();
        let mut layers = Vec::with_capacity(dims.len().saturating_sub(1));
        for w in dims.windows(2) {
            let (n_in, n_out) = (w[0], w[1]);
            let (weights, tail) = rest.split_at((n_in * n_out).min(rest.len()));
            let (bias, tail) = tail.split_at(n_out.min(tail.len()));
            rest = tail;
            if weights.len() != n_in * n_out {
                return Err(PipelineError::Classifier(ClassifierError::BadNet));
            }
            // The wire stores `W` column-major.
            let weights = Array2::from_shape_fn((n_out, n_in), |(row, col)| {
                weights[carma_core::format::weight_index(n_out, row, col)]
            });
            layers.push(crate::nn::Dense::from_parts(
                weights,
                Array1::from(bias.to_vec()),
            ));
        }
        if layers.is_empty() {
            return Err(PipelineError::Classifier(ClassifierError::BadNet));
        }
        let hidden = Activation::from_wire(wire.classifier.hidden);
        let net = crate::nn::Mlp::from_layers(layers, hidden, Activation::Identity);
        let classifier = Classifier::from_net(net)?;
        let scaler = Scaler::from_parts(
            Array1::from(f32s(wire.scaler.mean)),
            Array1::from(f32s(wire.scaler.std)),
        )?;
        let names = wire.features.names.split('\n').map(str::to_owned).collect();
        Ok(Self {
            classifier,
            scaler,
            names,
        })
    }
}

/// A trained model: what the bundle holds, in the trainer's f64 form.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Dataset name.
    pub dataset: String,
    /// Master seed.
    pub seed: u64,
    /// The causal graph.
    pub graph: CausalGraph,
    /// The shared scaler (fitted on the flow's training split).
    pub scaler: Scaler,
    /// The classifier.
    pub classifier: Classifier,
    /// The causal flow.
    pub flow: CausalFlow,
    /// The CARMA networks.
    pub carma: Carma,
    /// Measured quality.
    pub metrics: MetricsWire,
    /// Minimum of each feature over the flow's training rows (original
    /// units): with `train_max`, the default bounds of a recommendation.
    pub train_min: Vec<f64>,
    /// Maximum of each feature over the flow's training rows.
    pub train_max: Vec<f64>,
}

/// Per-feature minimum and maximum of the rows of `x`.
pub fn column_range(x: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    let lo = x
        .axis_iter(Axis(1))
        .map(|c| c.iter().copied().fold(f64::INFINITY, f64::min))
        .collect();
    let hi = x
        .axis_iter(Axis(1))
        .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .collect();
    (lo, hi)
}

/// CARMA's own figures on the rejected test individuals.
#[derive(Debug, Clone, PartialEq)]
pub struct CarmaTestMetrics {
    /// Rejected test individuals.
    pub n: usize,
    /// Fraction accepted after recourse (under the learned flow).
    pub coverage: f64,
    /// Mean cost (docs/MATH.md section 1, problem & cost).
    pub cost: f64,
    /// Mean number of intervened features.
    pub mean_actions: f64,
    /// Mean probability after recourse.
    pub mean_prob: f64,
}

/// What [`train_simulated`] returns: the model, the SCM and the recourse test split.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// The trained model.
    pub trained: Trained,
    /// The true causal model.
    pub scm: Scm,
    /// The recourse training split, original units, with labels.
    pub train: Table,
    /// The recourse validation split, original units, with labels (CARMA's early
    /// checks, and where settings are chosen: never the test split).
    pub val: Table,
    /// The recourse test split, original units, with labels.
    pub test: Table,
    /// Minimum and maximum of each feature over the recourse training split (original units).
    pub train_min: Vec<f64>,
    /// See `train_min`.
    pub train_max: Vec<f64>,
}

fn derive_seed(seed: u64, stage: u64) -> u64 {
    // SplitMix64 step: decorrelates the stages' seeds.
    let mut z = seed.wrapping_add(stage.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn labels(t: &Table) -> Result<&Array1<f64>, PipelineError> {
    t.y().ok_or(PipelineError::NoLabels)
}

/// The next `f32` above the finite `f` (`f32::MAX` stays).
fn f32_up(f: f32) -> f32 {
    if f == f32::MAX {
        f
    } else if f == 0.0 {
        f32::from_bits(1)
    } else if f > 0.0 {
        f32::from_bits(f.to_bits() + 1)
    } else {
        f32::from_bits(f.to_bits() - 1)
    }
}

/// The largest `f32` not above `v` (finite).
fn f32_floor(v: f64) -> f32 {
    let f = (v as f32).clamp(-f32::MAX, f32::MAX);
    if f64::from(f) > v { -f32_up(-f) } else { f }
}

/// The smallest `f32` not below `v` (finite).
fn f32_ceil(v: f64) -> f32 {
    let f = (v as f32).clamp(-f32::MAX, f32::MAX);
    if f64::from(f) < v { f32_up(f) } else { f }
}

/// Per-feature max - min of the standardized rows (the cost denominator).
pub fn feature_ranges(x_std: &Array2<f64>) -> Vec<f64> {
    x_std
        .axis_iter(Axis(1))
        .map(|c| {
            let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
            // A constant column cannot be acted on at any finite cost; keep the division finite.
            (hi - lo).max(f64::EPSILON)
        })
        .collect()
}

/// The rows of `x_std` the classifier rejects.
pub fn rejected(classifier: &Classifier, x_std: &Array2<f64>) -> Vec<usize> {
    let p = classifier.prob(x_std);
    (0..x_std.nrows())
        .filter(|&i| p[i] < ACCEPT_THRESHOLD)
        .collect()
}

/// The rows of `x_raw` (original units) that `trained`'s classifier rejects, in original units.
pub fn rejected_rows(trained: &Trained, x_raw: &Array2<f64>) -> Result<Array2<f64>, ScalerError> {
    let x_std = trained.scaler.transform(x_raw.view())?;
    Ok(x_raw.select(Axis(0), &rejected(&trained.classifier, &x_std)))
}

struct Fitted {
    scaler: Scaler,
    classifier: Classifier,
    flow: CausalFlow,
    metrics: MetricsWire,
}

/// The classifier and flow stages, shared by both entry points.
fn fit_classifier_and_flow(
    graph: &CausalGraph,
    clf_splits: &[Table; 3],
    flow_splits: &[Table; 3],
    fixed: Option<&FixedClassifier>,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Fitted, PipelineError> {
    let scaler = match fixed {
        Some(f) => f.scaler.clone(),
        None => Scaler::fit(flow_splits[0].x.view())?,
    };
    let std = |t: &Table| scaler.transform(t.x.view());

    let (classifier, accuracy) = match fixed {
        Some(f) => {
            let accuracy = match clf_splits[2].y() {
                Some(y) => Some(f.classifier.accuracy(&std(&clf_splits[2])?, y)),
                None => None,
            };
            progress.done(Stage::Classifier, "brought from a model file, not trained");
            (f.classifier.clone(), accuracy)
        }
        None => {
            let (c, a) = train_classifier(clf_splits, &scaler, cfg, progress)?;
            (c, Some(a))
        }
    };
    fit_flow(
        graph,
        flow_splits,
        scaler,
        classifier,
        accuracy,
        cfg,
        progress,
    )
}

fn train_classifier(
    clf_splits: &[Table; 3],
    scaler: &Scaler,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<(Classifier, f64), PipelineError> {
    let std = |t: &Table| scaler.transform(t.x.view());
    progress.stage(Stage::Classifier, cfg.classifier.epochs);
    let clf_cfg = ClassifierConfig {
        seed: derive_seed(cfg.seed, 11),
        ..cfg.classifier.clone()
    }
    .check()?;
    let (classifier, report) = Classifier::fit_observed(
        &std(&clf_splits[0])?,
        labels(&clf_splits[0])?,
        &std(&clf_splits[1])?,
        labels(&clf_splits[1])?,
        &clf_cfg,
        &mut |e| progress.epoch(Stage::Classifier, e.epoch, e.train_loss),
    )?;
    let accuracy = classifier.accuracy(&std(&clf_splits[2])?, labels(&clf_splits[2])?);
    progress.done(
        Stage::Classifier,
        &format!(
            "{} epochs, test accuracy {:.2} %",
            report.epochs_run,
            100.0 * accuracy
        ),
    );
    Ok((classifier, accuracy))
}

fn fit_flow(
    graph: &CausalGraph,
    flow_splits: &[Table; 3],
    scaler: Scaler,
    classifier: Classifier,
    accuracy: Option<f64>,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Fitted, PipelineError> {
    // Integer and categorical features are dequantized for the flow: each
    // value spread uniformly over its grid cell (docs/MATH.md, section 6),
    // one fixed draw per row and split, so that the flow models a density.
    let dequantized: Vec<Table> = flow_splits
        .iter()
        .enumerate()
        .map(|(i, t)| dequantize(t, graph, derive_seed(cfg.seed, 20 + i as u64)))
        .collect();
    let flow_splits = &dequantized[..];
    let std = |t: &Table| scaler.transform(t.x.view());
    progress.stage(Stage::Flow, cfg.flow.epochs);
    let flow_cfg = FlowConfig {
        seed: derive_seed(cfg.seed, 12),
        ..cfg.flow.clone()
    }
    .check()?;
    let parents: Vec<Vec<usize>> = (0..graph.len())
        .map(|i| graph.parents(i).to_vec())
        .collect();
    let (flow, report) = CausalFlow::fit_observed(
        &std(&flow_splits[0])?,
        &std(&flow_splits[1])?,
        &parents,
        &flow_cfg,
        &mut |e| progress.epoch(Stage::Flow, e.epoch, e.train_loss),
    )?;
    let loglik = flow.mean_log_likelihood_original(
        &std(&flow_splits[2])?,
        scaler.std().as_slice().unwrap_or(&[]),
    )?;
    progress.done(
        Stage::Flow,
        &format!(
            "{} epochs, test log-likelihood {:.3} nats per individual",
            report.epochs_run, loglik
        ),
    );
    let metrics = MetricsWire {
        n_train: u32::try_from(flow_splits[0].n_rows()).unwrap_or(u32::MAX),
        classifier_test_accuracy: accuracy.map(|a| a as f32),
        flow_test_loglik: Some(loglik as f32),
        ..MetricsWire::default()
    };
    Ok(Fitted {
        scaler,
        classifier,
        flow,
        metrics,
    })
}

/// `t` with every integer or categorical value `v` replaced by a uniform
/// draw from `[v - step / 2, v + step / 2)`; `t` itself when no feature is
/// on a grid.
fn dequantize(t: &Table, graph: &CausalGraph, seed: u64) -> Table {
    use rand::{Rng, SeedableRng};
    let steps: Vec<(usize, f64)> = (0..graph.len())
        .filter_map(|j| graph.grid_step(j).map(|s| (j, s)))
        .collect();
    let mut out = t.clone();
    if steps.is_empty() {
        return out;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for mut row in out.x.rows_mut() {
        for &(j, step) in &steps {
            row[j] += step * (rng.random::<f64>() - 0.5);
        }
    }
    out
}

fn recourse_problem(
    graph: &CausalGraph,
    cfg: &PipelineConfig,
    x_train_std: &Array2<f64>,
) -> Result<RecourseProblem, PipelineError> {
    let d = graph.len();
    let weights = cfg.weights.clone().unwrap_or_else(|| graph.weights());
    if weights.len() != d || weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(PipelineError::Weights {
            expected: d,
            found: weights,
        });
    }
    Ok(RecourseProblem {
        actionable: (0..d).map(|i| graph.is_actionable(i)).collect(),
        weights,
        cost_range: feature_ranges(x_train_std),
    })
}

/// CARMA's stage on the recourse training and validation rows (original units): the cost
/// problem from the training rows, then CARMA fitted on the rows the classifier rejects.
fn fit_carma_on(
    fitted: &Fitted,
    graph: &CausalGraph,
    train_x: &Array2<f64>,
    val_x: &Array2<f64>,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Carma, PipelineError> {
    let train_std = fitted.scaler.transform(train_x.view())?;
    let problem = recourse_problem(graph, cfg, &train_std)?;
    let x_rej = train_std.select(Axis(0), &rejected(&fitted.classifier, &train_std));
    let val_std = fitted.scaler.transform(val_x.view())?;
    let x_val_rej = val_std.select(Axis(0), &rejected(&fitted.classifier, &val_std));
    fit_carma(fitted, problem, &x_rej, &x_val_rej, cfg, progress)
}

fn fit_carma(
    fitted: &Fitted,
    problem: RecourseProblem,
    x_rejected: &Array2<f64>,
    x_val_rejected: &Array2<f64>,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Carma, PipelineError> {
    progress.stage(Stage::Carma, cfg.carma.epochs);
    let carma_cfg = CarmaConfig {
        seed: derive_seed(cfg.seed, 13),
        ..cfg.carma.clone()
    }
    .check()?;
    let carma = Carma::fit(
        &fitted.flow,
        &fitted.classifier,
        x_rejected,
        Some(x_val_rejected),
        problem,
        &carma_cfg,
        &mut |e| {
            if std::env::var_os("CARMA_DEBUG").is_some() {
                eprintln!("{e:?}");
            }
            progress.carma_epoch(&e);
            progress.epoch(Stage::Carma, e.epoch, e.loss)
        },
    )?;
    Ok(carma)
}

impl Trained {
    /// CARMA's figures on standardized rejected individuals `x_std`.
    pub fn carma_metrics(&self, x_std: &Array2<f64>) -> CarmaTestMetrics {
        let out = self.carma.recommend(
            &self.flow,
            &self.classifier,
            x_std,
            &vec![false; self.graph.len()],
        );
        let n = x_std.nrows();
        let nf = n.max(1) as f64;
        CarmaTestMetrics {
            n,
            coverage: out.prob.iter().filter(|&&p| p >= ACCEPT_THRESHOLD).count() as f64 / nf,
            cost: out.cost.sum() / nf,
            mean_actions: out.mask.sum() / nf,
            mean_prob: out.prob.sum() / nf,
        }
    }

    /// Scores CARMA on the individuals of `x_test` (original units) that the
    /// classifier rejects, and stores the figures in the bundle metrics.
    pub fn record_test_metrics(
        &mut self,
        x_test: &Array2<f64>,
    ) -> Result<CarmaTestMetrics, PipelineError> {
        let test_std = self.scaler.transform(x_test.view())?;
        let x_rej = test_std.select(Axis(0), &rejected(&self.classifier, &test_std));
        let m = self.carma_metrics(&x_rej);
        self.metrics.n_test = u32::try_from(m.n).unwrap_or(u32::MAX);
        self.metrics.carma_coverage = Some(m.coverage as f32);
        self.metrics.carma_cost = Some(m.cost as f32);
        self.metrics.carma_mean_actions = Some(m.mean_actions as f32);
        Ok(m)
    }

    /// The bundle description of this model.
    pub fn bundle_spec(&self) -> BundleSpec {
        let (flow_dims, flow_layers) = self.flow.to_flow_spec_params();
        let (clf_dims, clf_params) = self.classifier.to_mlp_parts();
        let mlp = |net: &crate::nn::Mlp| MlpSpec {
            dims: net.dims(),
            hidden: Activation::to_wire(net.hidden_activation()),
            output: Activation::to_wire(net.output_activation()),
            params: net.to_wire_params(),
        };
        let problem = self.carma.problem();
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (lo, hi) = self.carma.clamp();
        let (min, max) = self.bounds();
        BundleSpec {
            dataset: self.dataset.clone(),
            seed: self.seed,
            metrics: self.metrics,
            names: self.graph.names(),
            binary: (0..self.graph.len())
                .map(|i| self.graph.is_binary(i))
                .collect(),
            actionable: problem.actionable.clone(),
            parents: (0..self.graph.len())
                .map(|i| self.graph.parents(i).to_vec())
                .collect(),
            order: self.graph.order().to_vec(),
            min,
            max,
            direction: self
                .graph
                .features()
                .iter()
                .map(|f| f.direction.to_core())
                .collect(),
            grid: self
                .graph
                .features()
                .iter()
                .map(|f| match f.kind {
                    FeatureKind::Integer => Some(GridFeature::Integer {
                        step: f.grid_step().unwrap_or(1.0) as f32,
                    }),
                    FeatureKind::Categorical => Some(GridFeature::Categorical {
                        levels: f.levels.clone(),
                    }),
                    _ => None,
                })
                .collect(),
            mean: f32s(self.scaler.mean().as_slice().unwrap_or(&[])),
            std: f32s(self.scaler.std().as_slice().unwrap_or(&[])),
            flow: FlowSpec {
                dims: flow_dims,
                layers: flow_layers,
            },
            classifier: MlpSpec {
                dims: clf_dims,
                // ReLU for a classifier trained here (and for logistic regression, which has
                // no hidden layer), whatever a brought one has.
                hidden: self.classifier.net().hidden_activation().to_wire(),
                output: carma_core::format::Activation::Sigmoid,
                params: clf_params,
            },
            carma: Some(CarmaSpec {
                mask_net: mlp(self.carma.mask_net()),
                action_net: mlp(self.carma.action_net()),
                clamp: (lo as f32, hi as f32),
                cost_range: f32s(&problem.cost_range),
                weights: f32s(&problem.weights),
            }),
        }
    }

    /// The bounds a recommendation keeps each feature within (original
    /// units): the graph's `min` / `max` where given, else the training
    /// range widened by [`carma_core::format::BOUND_MARGIN`] of itself on
    /// each side; `[0, 1]` for a binary feature. Empty if the training
    /// range is unknown.
    pub fn bounds(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.graph.len();
        if self.train_min.len() != d || self.train_max.len() != d {
            return (Vec::new(), Vec::new());
        }
        let margin = f64::from(carma_core::format::BOUND_MARGIN);
        let (mut min, mut max) = (Vec::with_capacity(d), Vec::with_capacity(d));
        for (i, f) in self.graph.features().iter().enumerate() {
            let (lo, hi) = if self.graph.is_binary(i) {
                (0.0, 1.0)
            } else if f.kind == FeatureKind::Categorical {
                // Every level, not only those seen.
                (0.0, (f.levels.len() - 1) as f64)
            } else {
                let (a, b) = (self.train_min[i], self.train_max[i]);
                let w = margin * (b - a);
                (a - w, b + w)
            };
            let (mut lo, mut hi) = (f.min.unwrap_or(lo), f.max.unwrap_or(hi));
            if let (FeatureKind::Integer, Some(step)) = (f.kind, f.grid_step()) {
                // The grid points within, when there are any.
                let (a, b) = ((lo / step).ceil() * step, (hi / step).floor() * step);
                if a <= b {
                    (lo, hi) = (a, b);
                }
            }
            let hi = hi.max(lo);
            // Rounded outward to f32, so the stored bounds contain the f64 ones.
            min.push(f32_floor(lo));
            max.push(f32_ceil(hi));
        }
        (min, max)
    }

    /// The bundle bytes (carma-core format).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PipelineError> {
        Ok(self.bundle_spec().to_bytes()?)
    }

    /// Number of trainable parameters of (classifier, flow, mask net, action net).
    pub fn n_params(&self) -> [usize; 4] {
        let mut clf = self.classifier.net().clone();
        let flow: usize = self
            .flow
            .layer_nets()
            .iter()
            .map(|n| n.clone().n_params())
            .sum();
        [
            clf.n_params(),
            flow,
            self.carma.mask_net().clone().n_params(),
            self.carma.action_net().clone().n_params(),
        ]
    }
}

/// Trains every stage on samples of `dataset`'s true SCM (docs/MATH.md section 2, datasets):
/// separate draws for the classifier, the flow and recourse.
pub fn train_simulated(
    dataset: Dataset,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Simulated, PipelineError> {
    train_simulated_with(dataset, cfg, &|c| c, progress)
}

/// [`train_simulated`], with the trained classifier replaced by `swap(classifier)` before
/// CARMA trains (for instance [`Classifier::sharpened`]: the steep classifier a user might
/// bring). The flow, the scaler and the data are the same.
pub fn train_simulated_with(
    dataset: Dataset,
    cfg: &PipelineConfig,
    swap: &dyn Fn(Classifier) -> Classifier,
    progress: &mut dyn Progress,
) -> Result<Simulated, PipelineError> {
    progress.stage(Stage::Data, 0);
    let scm = Scm::new(dataset);
    let graph = scm.graph().clone();
    let draw = |n, stage| Table::from_sample(dataset, scm.sample(n, derive_seed(cfg.seed, stage)));
    let clf_splits = draw(cfg.n_classifier, 1).split(CLASSIFIER_SPLIT, derive_seed(cfg.seed, 4))?;
    let flow_splits = draw(cfg.n_flow, 2).split(FLOW_SPLIT, derive_seed(cfg.seed, 5))?;
    let rec_splits = draw(cfg.n_recourse, 3).split(RECOURSE_SPLIT, derive_seed(cfg.seed, 6))?;
    progress.done(
        Stage::Data,
        &format!(
            "{} rows for the classifier, {} for the flow, {} for recourse",
            cfg.n_classifier, cfg.n_flow, cfg.n_recourse
        ),
    );

    let mut fitted =
        fit_classifier_and_flow(&graph, &clf_splits, &flow_splits, None, cfg, progress)?;
    fitted.classifier = swap(fitted.classifier);
    let (flow_min, flow_max) = column_range(&flow_splits[0].x);
    let carma = fit_carma_on(
        &fitted,
        &graph,
        &rec_splits[0].x,
        &rec_splits[1].x,
        cfg,
        progress,
    )?;

    let train_x = &rec_splits[0].x;
    let train_min = train_x
        .axis_iter(Axis(1))
        .map(|c| c.iter().copied().fold(f64::INFINITY, f64::min))
        .collect();
    let train_max = train_x
        .axis_iter(Axis(1))
        .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .collect();
    let [train, val, test] = rec_splits;
    let mut trained = Trained {
        dataset: dataset.name().to_owned(),
        seed: cfg.seed,
        graph,
        scaler: fitted.scaler,
        classifier: fitted.classifier,
        flow: fitted.flow,
        carma,
        metrics: fitted.metrics,
        train_min: flow_min,
        train_max: flow_max,
    };
    let m = trained.record_test_metrics(&test.x)?;
    progress.done(
        Stage::Carma,
        &format!(
            "coverage {:.2} % on {} rejected test individuals, mean cost x100 {:.2}, {:.2} actions",
            100.0 * m.coverage,
            m.n,
            100.0 * m.cost,
            m.mean_actions
        ),
    );
    Ok(Simulated {
        trained,
        scm,
        train,
        val,
        test,
        train_min,
        train_max,
    })
}

/// CARMA trained again on `sim`'s data, classifier and flow with other settings
/// (`cfg.carma`, `cfg.weights`, `cfg.seed`): what a search over CARMA's settings needs, since
/// the classifier and the flow do not depend on them. The result is `sim` with the new CARMA.
pub fn retrain_carma(sim: &Simulated, cfg: &PipelineConfig) -> Result<Simulated, PipelineError> {
    let mut out = sim.clone();
    out.trained = retrain_carma_on(&sim.trained, [&sim.train, &sim.val, &sim.test], cfg)?;
    Ok(out)
}

/// CARMA trained again on `trained`'s classifier and flow with other settings, on the
/// recourse `splits` (train, validation, test; original units) the model was made with:
/// [`retrain_carma`] for any model, e.g. one of [`train_on_table`] with its
/// [`table_splits`]. The test metrics are recorded on the third split.
pub fn retrain_carma_on(
    trained: &Trained,
    splits: [&Table; 3],
    cfg: &PipelineConfig,
) -> Result<Trained, PipelineError> {
    let t = trained;
    let fitted = Fitted {
        scaler: t.scaler.clone(),
        classifier: t.classifier.clone(),
        flow: t.flow.clone(),
        metrics: t.metrics,
    };
    let carma = fit_carma_on(
        &fitted,
        &t.graph,
        &splits[0].x,
        &splits[1].x,
        cfg,
        &mut NoProgress,
    )?;
    let mut out = t.clone();
    out.carma = carma;
    out.record_test_metrics(&splits[2].x)?;
    Ok(out)
}

/// The train, validation and test splits [`train_on_table`] makes of `table` for
/// `cfg.seed`.
pub fn table_splits(table: &Table, cfg: &PipelineConfig) -> Result<[Table; 3], PipelineError> {
    Ok(table.split(TABLE_SPLIT, derive_seed(cfg.seed, 4))?)
}

/// Trains every stage on a user's table (columns = the graph's features, in
/// the graph's order, plus a label column): split 60/20/20 into train,
/// validation and test; the classifier and the flow share the training rows;
/// CARMA trains on the training rows the classifier rejects.
pub fn train_on_table(
    table: &Table,
    graph: &CausalGraph,
    dataset: &str,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Trained, PipelineError> {
    train_on_table_with(table, graph, dataset, None, cfg, progress)
}

/// [`train_on_table`], optionally with a classifier brought from another
/// model file instead of training one: it stays frozen, its scaler becomes
/// the shared one, and the label column (if any) only reports its accuracy.
pub fn train_on_table_with(
    table: &Table,
    graph: &CausalGraph,
    dataset: &str,
    fixed: Option<&FixedClassifier>,
    cfg: &PipelineConfig,
    progress: &mut dyn Progress,
) -> Result<Trained, PipelineError> {
    if table.names != graph.names() {
        return Err(PipelineError::Columns {
            expected: graph.names(),
            found: table.names.clone(),
        });
    }
    match fixed {
        Some(f) if f.names != graph.names() => {
            return Err(PipelineError::ClassifierFeatures {
                expected: graph.names(),
                found: f.names.clone(),
            });
        }
        Some(_) => {}
        None => {
            labels(table)?;
        }
    }
    progress.stage(Stage::Data, 0);
    let splits = table_splits(table, cfg)?;
    progress.done(
        Stage::Data,
        &format!(
            "{} rows: {} train, {} validation, {} test",
            table.n_rows(),
            splits[0].n_rows(),
            splits[1].n_rows(),
            splits[2].n_rows()
        ),
    );
    let fitted = fit_classifier_and_flow(graph, &splits, &splits, fixed, cfg, progress)?;
    let (train_min, train_max) = column_range(&splits[0].x);
    let carma = fit_carma_on(&fitted, graph, &splits[0].x, &splits[1].x, cfg, progress)?;
    let mut trained = Trained {
        dataset: dataset.to_owned(),
        seed: cfg.seed,
        graph: graph.clone(),
        scaler: fitted.scaler,
        classifier: fitted.classifier,
        flow: fitted.flow,
        carma,
        metrics: fitted.metrics,
        train_min,
        train_max,
    };
    let m = trained.record_test_metrics(&splits[2].x)?;
    progress.done(
        Stage::Carma,
        &format!(
            "coverage {:.2} % on {} rejected test rows",
            100.0 * m.coverage,
            m.n
        ),
    );
    Ok(trained)
}

/// Split of a user's table into train, validation and test.
pub const TABLE_SPLIT: [f64; 3] = [0.6, 0.2, 0.2];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_loan_pipeline_trains_exports_and_is_deterministic() {
        let cfg = PipelineConfig::tiny(Dataset::Loan);
        let a = train_simulated(Dataset::Loan, &cfg, &mut NoProgress).unwrap();
        let bytes = a.trained.to_bytes().unwrap();
        let bundle = carma_core::bundle::Bundle::new(&bytes).unwrap();
        assert_eq!(bundle.n_features(), 7);
        let b = train_simulated(Dataset::Loan, &cfg, &mut NoProgress).unwrap();
        assert_eq!(
            bytes,
            b.trained.to_bytes().unwrap(),
            "same seed, same bundle bytes"
        );
        let m = a.trained.metrics;
        assert!(m.classifier_test_accuracy.unwrap() > 0.7);
        assert!(m.flow_test_loglik.unwrap().is_finite());
        assert!(m.carma_coverage.unwrap() > 0.0);
    }

    #[test]
    fn bounds_round_outward_to_f32() {
        for v in [
            0.1f64, -0.1, 1e-40, -1e-40, 3.3e38, -3.3e38, 0.0, 1.5, -2.75,
        ] {
            let (lo, hi) = (f32_floor(v), f32_ceil(v));
            assert!(f64::from(lo) <= v && f64::from(hi) >= v, "{v}: {lo} {hi}");
            assert!(lo.is_finite() && hi.is_finite());
            assert!(f32_up(lo) >= hi || f64::from(lo) == v, "{v}: tight");
        }
        assert_eq!(f32_up(-0.0), f32::from_bits(1));
        assert_eq!(f32_up(-1.0), -0.99999994);
    }

    /// The bundle bounds each feature by its training range widened by 10 %
    /// of that range on each side ([0, 1] for the binary gender), unless
    /// the graph gives a bound; the graph's direction is stored.
    #[test]
    fn bundle_bounds_are_the_widened_training_range_or_the_graphs() {
        let cfg = PipelineConfig::tiny(Dataset::Loan);
        let mut a = train_simulated(Dataset::Loan, &cfg, &mut NoProgress)
            .unwrap()
            .trained;
        let bytes = a.to_bytes().unwrap();
        let b = carma_core::bundle::Bundle::new(&bytes).unwrap();
        assert_eq!(b.bounds(0), Some((0.0, 1.0)), "gender is binary");
        for i in 1..7 {
            let (lo, hi) = (a.train_min[i], a.train_max[i]);
            let w = 0.1 * (hi - lo);
            let (min, max) = b.bounds(i).unwrap();
            assert!(f64::from(min) <= lo - w && f64::from(min) > lo - w - 1e-3 * (1.0 + w));
            assert!(f64::from(max) >= hi + w && f64::from(max) < hi + w + 1e-3 * (1.0 + w));
            assert_eq!(b.direction(i), carma_core::Direction::Any);
        }
        let mut features = a.graph.features().to_vec();
        features[2].min = Some(-0.25);
        features[2].direction = crate::graph::Direction::Increase;
        features[5].max = Some(3.5);
        a.graph = CausalGraph::new(features).unwrap();
        let bytes = a.to_bytes().unwrap();
        let b = carma_core::bundle::Bundle::new(&bytes).unwrap();
        assert_eq!(b.bounds(2).unwrap().0, -0.25);
        assert_eq!(b.direction(2), carma_core::Direction::Increase);
        assert_eq!(b.bounds(5).unwrap().1, 3.5);
    }

    #[test]
    fn a_brought_classifier_is_used_frozen_with_its_scaler() {
        let cfg = PipelineConfig::tiny(Dataset::ChainLin);
        let donor = train_simulated(Dataset::ChainLin, &cfg, &mut NoProgress).unwrap();
        let bytes = donor.trained.to_bytes().unwrap();
        let fixed = FixedClassifier::from_bundle(&bytes).unwrap();
        let x = donor.test.x.slice(ndarray::s![..20, ..]).to_owned();
        let p_donor = donor
            .trained
            .classifier
            .prob(&donor.trained.scaler.transform(x.view()).unwrap());
        let p_fixed = fixed
            .classifier
            .prob(&fixed.scaler.transform(x.view()).unwrap());
        for (a, b) in p_donor.iter().zip(&p_fixed) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let mut table = donor.train.clone();
        let graph = donor.trained.graph.clone();
        let mut other = cfg.clone();
        other.seed = 99;
        let trained = train_on_table_with(
            &table,
            &graph,
            "chain-lin",
            Some(&fixed),
            &other,
            &mut NoProgress,
        )
        .unwrap();
        let spec = trained.bundle_spec();
        let donor_spec = donor.trained.bundle_spec();
        assert_eq!(
            spec.classifier, donor_spec.classifier,
            "the classifier is not retrained"
        );
        assert_eq!((spec.mean, spec.std), (donor_spec.mean, donor_spec.std));
        // Without labels only the brought classifier can be used.
        table.labels = None;
        assert!(train_on_table(&table, &graph, "x", &other, &mut NoProgress).is_err());
        assert!(
            train_on_table_with(&table, &graph, "x", Some(&fixed), &other, &mut NoProgress).is_ok()
        );
        let mut wrong = fixed.clone();
        wrong.names[1] = "y".into();
        assert!(matches!(
            train_on_table_with(&table, &graph, "x", Some(&wrong), &other, &mut NoProgress),
            Err(PipelineError::ClassifierFeatures { .. })
        ));
    }

    #[test]
    fn seeds_of_the_stages_differ() {
        let s: Vec<u64> = (0..8).map(|k| derive_seed(1, k)).collect();
        for i in 0..s.len() {
            for j in 0..i {
                assert_ne!(s[i], s[j]);
            }
        }
    }
}
