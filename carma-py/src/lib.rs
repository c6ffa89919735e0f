//! `carma._carma`: the native half of the `carma` Python package. The Python half
//! (`python/carma/`) turns DataFrames into arrays in the model's column order and back, and
//! converts scikit-learn and PyTorch classifiers to the classifier JSON layout; everything here
//! takes and returns numpy arrays, releases the GIL for training and batch recommendation, and
//! raises the exceptions of `carma.errors` with the messages of the `carma` command.

use std::path::PathBuf;

use carma_core::{Bundle, FeatureSet, Limits, Options, Recommendation, Refine, Status};
use carma_train::classifier_json::ClassifierJson;
use carma_train::data::{DEFAULT_LABEL, Labels, Table};
use carma_train::graph::CausalGraph;
use carma_train::pipeline::{PipelineConfig, Progress, Stage, train_on_table_with};
use carma_train::scm::{Dataset, Scm};
use ndarray::Array1;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// An exception of `carma.errors` (class `class`) with `message`.
fn error(py: Python<'_>, class: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    match py
        .import("carma.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message,)))
    {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

/// `FileNotFoundError` when `path` does not exist, else `class`.
fn file_error(py: Python<'_>, path: &std::path::Path, class: &str, message: String) -> PyErr {
    if !path.exists() {
        pyo3::exceptions::PyFileNotFoundError::new_err(message)
    } else {
        error(py, class, message)
    }
}

/// A causal graph, validated as `carma fit` validates a graph file.
#[pyclass(module = "carma._carma", name = "Graph", frozen)]
struct Graph {
    inner: CausalGraph,
    /// Where it came from, for messages (a file name, `<dict>`, a dataset).
    source: String,
}

#[pymethods]
impl Graph {
    /// Reads a graph file (TOML, docs/loan-graph.toml).
    #[staticmethod]
    fn from_toml(py: Python<'_>, path: PathBuf) -> PyResult<Graph> {
        let inner = CausalGraph::from_toml_path(&path)
            .map_err(|e| file_error(py, &path, "GraphError", e.to_string()))?;
        Ok(Graph {
            inner,
            source: path.display().to_string(),
        })
    }

    /// Parses graph TOML text; `source` names it in errors.
    #[staticmethod]
    fn from_toml_str(py: Python<'_>, text: &str, source: &str) -> PyResult<Graph> {
        let inner = CausalGraph::from_toml_str(text, source)
            .map_err(|e| error(py, "GraphError", e.to_string()))?;
        Ok(Graph {
            inner,
            source: source.to_owned(),
        })
    }

    /// Parses the JSON form of a graph dict (`{"feature": [{...}, ...]}`, the TOML file's
    /// keys), through the TOML reader so the checks and messages are the file's.
    #[staticmethod]
    fn from_json_str(py: Python<'_>, text: &str, source: &str) -> PyResult<Graph> {
        let bad = |e: String| error(py, "GraphError", format!("{source}: {e}"));
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let toml_value = toml::Value::try_from(value).map_err(|e| bad(e.to_string()))?;
        let toml_text = toml::to_string(&toml_value).map_err(|e| bad(e.to_string()))?;
        Graph::from_toml_str(py, &toml_text, source)
    }

    /// The graph as TOML (what `carma simulate --graph` writes).
    fn to_toml(&self) -> String {
        self.inner.to_toml_string()
    }

    /// Feature names, in the graph's (and the model's) column order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    /// Whether each feature is binary.
    #[getter]
    fn binary(&self) -> Vec<bool> {
        (0..self.inner.len())
            .map(|i| self.inner.is_binary(i))
            .collect()
    }

    /// Where the graph came from.
    #[getter]
    fn source(&self) -> String {
        self.source.clone()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Graph({} features: {}; actionable: {})",
            self.inner.len(),
            self.inner.names().join(", "),
            self.inner
                .actionable()
                .iter()
                .map(|&i| self.inner.features()[i].name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What [`simulate`] returns: `(names, x, y, graph)`.
type Simulated<'py> = (
    Vec<String>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
    Graph,
);

/// Samples `n` rows of a built-in SCM: `(names, x, y, graph)`.
#[pyfunction]
fn simulate<'py>(py: Python<'py>, dataset: &str, n: usize, seed: u64) -> PyResult<Simulated<'py>> {
    let dataset: Dataset = dataset
        .parse()
        .map_err(|e: carma_train::scm::ParseDatasetError| error(py, "CarmaError", e.to_string()))?;
    if n == 0 {
        return Err(error(py, "CarmaError", "expected at least 1 row"));
    }
    let sample = py.detach(|| Scm::new(dataset).sample(n, seed));
    let graph = Graph {
        inner: dataset.graph(),
        source: dataset.name().to_owned(),
    };
    Ok((
        graph.inner.names(),
        sample.x.into_pyarray(py),
        sample.y.into_pyarray(py),
        graph,
    ))
}

/// Calls the Python progress callback `(event, stage, epoch, epochs, loss, summary)`, with the
/// GIL taken back for the call; the first exception it raises (Ctrl-C among them) is kept and
/// raised when training returns.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    epochs: usize,
    failed: Option<PyErr>,
}

impl PyProgress {
    fn call(&mut self, event: &str, stage: Stage, epoch: usize, loss: f64, summary: &str) {
        let (Some(cb), None) = (&self.callback, &self.failed) else {
            return;
        };
        let epochs = self.epochs;
        let result = Python::attach(|py| {
            py.check_signals()?;
            cb.call1(py, (event, stage.name(), epoch, epochs, loss, summary))
                .map(|_| ())
        });
        if let Err(e) = result {
            self.failed = Some(e);
        }
    }
}

impl Progress for PyProgress {
    fn stage(&mut self, stage: Stage, epochs: usize) {
        self.epochs = epochs;
        self.call("stage", stage, 0, f64::NAN, "");
    }
    fn epoch(&mut self, stage: Stage, epoch: usize, loss: f64) {
        self.call("epoch", stage, epoch, loss, "");
    }
    fn done(&mut self, stage: Stage, summary: &str) {
        self.call("done", stage, self.epochs, f64::NAN, summary);
    }
}

/// Trains a model on `x` (rows, the graph's columns in its order) and labels `y`.
#[pyfunction]
#[pyo3(signature = (graph, x, y, label, classifier_json, seed, epochs_scale, progress, name, source))]
fn fit(
    py: Python<'_>,
    graph: &Graph,
    x: PyReadonlyArray2<'_, f64>,
    y: Option<PyReadonlyArray1<'_, f64>>,
    label: String,
    classifier_json: Option<String>,
    seed: u64,
    epochs_scale: f64,
    progress: Option<Py<PyAny>>,
    name: String,
    source: String,
) -> PyResult<Model> {
    if !(epochs_scale.is_finite() && epochs_scale > 0.0) {
        return Err(error(
            py,
            "CarmaError",
            format!("epochs_scale: expected a positive number, found {epochs_scale}"),
        ));
    }
    let mut cfg = PipelineConfig::default();
    carma_train::preflight::scale_epochs(&mut cfg, epochs_scale);
    cfg.seed = seed;
    carma_train::preflight::check_setup(&cfg, &graph.inner, &label, &graph.source, "settings")
        .map_err(|e| error(py, "CarmaError", e.0))?;
    let x = x.as_array().to_owned();
    let labels = y.map(|y| Labels {
        name: label.clone(),
        y: y.as_array().to_owned(),
    });
    let table = Table::new(graph.inner.names(), x, labels)
        .map_err(|e| error(py, "DataError", e.to_string()))?;
    carma_train::preflight::check_table(&table, &graph.inner, &source)
        .map_err(|e| error(py, "DataError", e.0))?;
    let fixed = match &classifier_json {
        Some(text) => Some(
            ClassifierJson::parse(text, "classifier")
                .and_then(|c| c.to_fixed(&graph.inner, &table.x, "classifier"))
                .map_err(|e| error(py, "ClassifierError", e.to_string()))?,
        ),
        None => None,
    };
    let mut progress = PyProgress {
        callback: progress,
        epochs: 0,
        failed: None,
    };
    let inner = &graph.inner;
    let trained = py
        .detach(|| train_on_table_with(&table, inner, &name, fixed.as_ref(), &cfg, &mut progress));
    if let Some(e) = progress.failed {
        return Err(e);
    }
    let trained = trained.map_err(|e| {
        error(
            py,
            "TrainingError",
            format!("training failed; no model was made: {e}"),
        )
    })?;
    let bytes = trained
        .to_bytes()
        .map_err(|e| error(py, "TrainingError", e.to_string()))?;
    Bundle::new(&bytes).map_err(|e| {
        error(
            py,
            "TrainingError",
            format!("the trained model does not validate: {e}"),
        )
    })?;
    Ok(Model {
        bytes,
        source: "<fitted>".to_owned(),
    })
}

/// A trained model: the bundle bytes (tens of kilobytes), decoded and checked by `carma-core`.
#[pyclass(module = "carma._carma", name = "Model", frozen)]
struct Model {
    bytes: Vec<u8>,
    source: String,
}

/// Status codes of the batch arrays, in this order (`carma.STATUSES` names them).
fn status_code(s: Status) -> u8 {
    match s {
        Status::AlreadyAccepted => 0,
        Status::Recommended => 1,
        Status::NoneWithinLimits => 2,
        Status::NotReached => 3,
    }
}

/// How a value of a feature is shown by `carma recommend` (`Style` in carma-cli's
/// `explain.rs`, whose fast formatter matches `std`'s, used here), so that a consequence is what
/// the command calls one: a change invisible at that precision, or below [`CONSEQUENCE_TOL`] of
/// the feature's standard deviation, is not one. The test comparing Python with the CLI checks
/// that both list the same consequences.
#[derive(Clone, Copy)]
enum Shown {
    Fixed(usize),
    Exp(i32),
}

/// A change smaller than this fraction of the feature's standard deviation is not a
/// consequence (the CLI's `explain::CONSEQUENCE_TOL`).
const CONSEQUENCE_TOL: f32 = 1e-3;

fn shown_style(bundle: &Bundle<'_>, i: usize) -> Shown {
    if bundle.is_binary(i) {
        return Shown::Fixed(0);
    }
    let std = bundle.std(i).unwrap_or(1.0).max(f32::MIN_POSITIVE);
    let last = std.log10().round() as i32 - 2;
    if last >= -6 {
        Shown::Fixed((-last).max(0) as usize)
    } else {
        Shown::Exp(last)
    }
}

fn shown(style: Shown, v: f32) -> String {
    match style {
        Shown::Fixed(decimals) => {
            let s = format!("{v:.decimals$}");
            match s.strip_prefix('-') {
                Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
                _ => s,
            }
        }
        Shown::Exp(last) => {
            let lead = if v == 0.0 || !v.is_finite() {
                last
            } else {
                v.abs().log10().floor() as i32
            };
            let precision = (lead - last).clamp(1, 8) as usize;
            format!("{v:.precision$e}")
        }
    }
}

/// What one row's recommendation fills in the batch arrays.
struct RowOut<'a> {
    status: &'a mut u8,
    prob: [&'a mut f32; 4],
    masks: [&'a mut u64; 4],
    max_changes_bound: &'a mut bool,
    x_cf: &'a mut [f32],
}

/// The per-request settings of one `recommend` call, checked against the model.
struct Request {
    forbid: FeatureSet,
    refine: Option<Refine>,
    min: Vec<f32>,
    max: Vec<f32>,
    increase: FeatureSet,
    decrease: FeatureSet,
    max_changes: Option<u8>,
}

impl Request {
    fn options(&self) -> Options<'_> {
        Options {
            limits: Limits {
                min: &self.min,
                max: &self.max,
                increase: self.increase,
                decrease: self.decrease,
                max_changes: self.max_changes,
            },
            ..Options::new(self.forbid, self.refine)
        }
    }
}

impl Model {
    fn bundle(&self, py: Python<'_>) -> PyResult<Bundle<'_>> {
        Bundle::new(&self.bytes).map_err(|e| {
            error(
                py,
                "ModelError",
                format!("{}: not a usable carma model: {e}", self.source),
            )
        })
    }

    /// `names` resolved to feature indices; an unknown name names the valid ones.
    fn indices(
        bundle: &Bundle<'_>,
        py: Python<'_>,
        what: &str,
        names: &[String],
    ) -> PyResult<Vec<usize>> {
        let all: Vec<&str> = (0..bundle.n_features())
            .map(|i| bundle.feature_name(i).unwrap_or("?"))
            .collect();
        names
            .iter()
            .map(|wanted| {
                all.iter().position(|n| n == wanted).ok_or_else(|| {
                    error(
                        py,
                        "LimitError",
                        format!(
                            "{what}: unknown feature '{wanted}' (the model's features are: {})",
                            all.join(", ")
                        ),
                    )
                })
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        bundle: &Bundle<'_>,
        py: Python<'_>,
        forbid: Vec<String>,
        min: Vec<(String, f64)>,
        max: Vec<(String, f64)>,
        increase_only: Vec<String>,
        decrease_only: Vec<String>,
        max_changes: Option<u8>,
        refine: bool,
        min_prob: f32,
    ) -> PyResult<Request> {
        let d = bundle.n_features();
        let forbid = Self::indices(bundle, py, "forbid", &forbid)?
            .into_iter()
            .collect();
        let mut lo = vec![f32::NEG_INFINITY; d];
        let mut hi = vec![f32::INFINITY; d];
        for (what, list, out) in [("min", &min, &mut lo), ("max", &max, &mut hi)] {
            for (name, v) in list {
                let i = Self::indices(
                    bundle,
                    py,
                    &format!("limits['{what}']"),
                    std::slice::from_ref(name),
                )?[0];
                let f = *v as f32;
                if !f.is_finite() {
                    return Err(error(
                        py,
                        "LimitError",
                        format!("limits['{what}']['{name}']: '{v}' is not a finite number"),
                    ));
                }
                out[i] = f;
            }
        }
        let increase: FeatureSet =
            Self::indices(bundle, py, "limits['increase_only']", &increase_only)?
                .into_iter()
                .collect();
        let decrease: FeatureSet =
            Self::indices(bundle, py, "limits['decrease_only']", &decrease_only)?
                .into_iter()
                .collect();
        if let Some(i) = increase.intersection(decrease).iter().next() {
            return Err(error(
                py,
                "LimitError",
                format!(
                    "'{}' is both increase_only and decrease_only (forbid it instead)",
                    bundle.feature_name(i).unwrap_or("?")
                ),
            ));
        }
        if let Some(i) = (0..d).find(|&i| lo[i] > hi[i]) {
            return Err(error(
                py,
                "LimitError",
                format!(
                    "limits: the min of {0} ({1}) is above its max ({2})",
                    bundle.feature_name(i).unwrap_or("?"),
                    lo[i],
                    hi[i]
                ),
            ));
        }
        if !(0.5..=1.0).contains(&min_prob) {
            return Err(error(
                py,
                "LimitError",
                format!("min_prob: expected a probability between 0.5 and 1, found {min_prob}"),
            ));
        }
        Ok(Request {
            forbid,
            refine: refine.then_some(Refine {
                min_prob,
                ..Refine::DEFAULT
            }),
            min: lo,
            max: hi,
            increase,
            decrease,
            max_changes,
        })
    }
}

/// One row: the core's recommendation and the consequences, into `out`; `x32` and `scratch` are
/// the thread's buffers. A refusal is `(feature, message)`.
fn recommend_row(
    bundle: &Bundle<'_>,
    styles: &[Shown],
    options: &Options<'_>,
    x: &[f64],
    x32: &mut [f32],
    scratch: &mut [f32],
    out: RowOut<'_>,
) -> Result<(), (Option<usize>, String)> {
    for (a, &b) in x32.iter_mut().zip(x) {
        *a = b as f32;
    }
    let rec: Recommendation = bundle
        .recommend_with(x32, options, out.x_cf, scratch)
        .map_err(|e| {
            use carma_core::error::{Error as E, InputError as I};
            let feature = match e {
                E::Input(I::NotFinite { index } | I::NotBinary { index }) => Some(index),
                _ => None,
            };
            let hint = match e {
                E::Input(I::NotFinite { .. }) => " (the value does not fit a 32-bit float)",
                _ => "",
            };
            (feature, format!("cannot recommend{hint}: {e}"))
        })?;
    let mut consequences = FeatureSet::EMPTY;
    for (i, (&from, &to)) in x32.iter().zip(out.x_cf.iter()).enumerate() {
        let std = bundle.std(i).unwrap_or(1.0);
        if !rec.mask.contains(i)
            && (to - from).abs() > CONSEQUENCE_TOL * std
            && shown(styles[i], from) != shown(styles[i], to)
        {
            consequences.insert(i);
        }
    }
    *out.status = status_code(rec.status);
    let [pb, pa, c, cu] = out.prob;
    (*pb, *pa, *c, *cu) = (
        rec.prob_before,
        rec.prob_after,
        rec.cost,
        rec.cost_unrefined,
    );
    let [m, cq, bl, oor] = out.masks;
    (*m, *cq, *bl, *oor) = (
        rec.mask.bits(),
        consequences.bits(),
        rec.bound_by_limit.bits(),
        rec.out_of_range.bits(),
    );
    *out.max_changes_bound = rec.max_changes_bound;
    Ok(())
}

#[pymethods]
impl Model {
    /// A model from bundle bytes (as `Model.to_bytes` gives them); `source` names it in errors.
    #[staticmethod]
    #[pyo3(signature = (data, source = "<bytes>".to_owned()))]
    fn from_bytes(py: Python<'_>, data: &[u8], source: String) -> PyResult<Model> {
        let model = Model {
            bytes: data.to_vec(),
            source,
        };
        model.bundle(py)?;
        Ok(model)
    }

    /// Reads a model file as `carma recommend --model` does.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
        let bytes = carma_train::io::read_model_bytes(&path)
            .map_err(|e| file_error(py, &path, "ModelError", e.to_string()))?;
        let model = Model {
            bytes,
            source: path.display().to_string(),
        };
        model.bundle(py)?;
        Ok(model)
    }

    /// Writes the model file atomically (complete or not at all, an older file at `path`
    /// untouched on failure).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        carma_train::io::write_atomic(&path, &self.bytes).map_err(|e| {
            let message = format!("cannot write {}: {e}", path.display());
            match e.kind() {
                std::io::ErrorKind::NotFound => {
                    pyo3::exceptions::PyFileNotFoundError::new_err(message)
                }
                _ => error(py, "CarmaError", message),
            }
        })
    }

    /// The bundle bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    /// What `carma inspect --json` prints, as JSON text.
    fn info_json(&self, py: Python<'_>) -> PyResult<String> {
        let bundle = self.bundle(py)?;
        let v = carma_train::inspect::summary_json(&self.source, &self.bytes, &bundle);
        Ok(v.to_string())
    }

    /// Feature names, in the model's column order.
    #[getter]
    fn names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let b = self.bundle(py)?;
        Ok((0..b.n_features())
            .map(|i| b.feature_name(i).unwrap_or("?").to_owned())
            .collect())
    }

    /// Whether each feature is binary.
    #[getter]
    fn binary(&self, py: Python<'_>) -> PyResult<Vec<bool>> {
        let b = self.bundle(py)?;
        Ok((0..b.n_features()).map(|i| b.is_binary(i)).collect())
    }

    /// Whether each feature is actionable.
    #[getter]
    fn actionable(&self, py: Python<'_>) -> PyResult<Vec<bool>> {
        let b = self.bundle(py)?;
        Ok((0..b.n_features()).map(|i| b.is_actionable(i)).collect())
    }

    /// Whether the model has CARMA networks (and so can recommend).
    #[getter]
    fn recommends(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.bundle(py)?.carma().is_some())
    }

    /// Where the model came from.
    #[getter]
    fn source(&self) -> String {
        self.source.clone()
    }

    /// Recommends for every row of `x` (`n x D`, the model's column order, C order), on
    /// `threads` threads with the GIL released. Returns a dict of arrays: `status` (u8 codes),
    /// `prob_before`, `prob_after`, `cost`, `cost_unrefined` (f32), `mask`, `consequences`,
    /// `bound_by_limit`, `out_of_range` (u64 feature bit sets), `max_changes_bound` (bool) and
    /// `x_cf` (`n x D` f32). A refused row raises `DataError` naming the first one
    /// (`row_offset` is added to the 1-based row numbers of the message).
    #[pyo3(signature = (x, forbid, min, max, increase_only, decrease_only, max_changes, refine, min_prob, threads, source, row_offset = 0))]
    #[allow(clippy::too_many_arguments)]
    fn recommend_batch<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        forbid: Vec<String>,
        min: Vec<(String, f64)>,
        max: Vec<(String, f64)>,
        increase_only: Vec<String>,
        decrease_only: Vec<String>,
        max_changes: Option<u8>,
        refine: bool,
        min_prob: f32,
        threads: Option<usize>,
        source: String,
        row_offset: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let bundle = self.bundle(py)?;
        if bundle.carma().is_none() {
            return Err(error(
                py,
                "ModelError",
                format!(
                    "{}: the model has no CARMA networks (it holds only a causal flow and a \
                     classifier, e.g. imported from PyTorch), so it cannot recommend; train a \
                     full model with `carma.fit`",
                    self.source
                ),
            ));
        }
        let d = bundle.n_features();
        let request = Self::request(
            &bundle,
            py,
            forbid,
            min,
            max,
            increase_only,
            decrease_only,
            max_changes,
            refine,
            min_prob,
        )?;
        let view = x.as_array();
        if view.ncols() != d {
            return Err(error(
                py,
                "DataError",
                format!(
                    "{source}: expected {d} feature columns, found {}",
                    view.ncols()
                ),
            ));
        }
        let xs = view.as_slice().ok_or_else(|| {
            error(
                py,
                "DataError",
                "the feature array must be C-contiguous (numpy.ascontiguousarray)",
            )
        })?;
        let n = view.nrows();
        let mut status = vec![0u8; n];
        let mut probs: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0f32; n]);
        let mut masks: [Vec<u64>; 4] = std::array::from_fn(|_| vec![0u64; n]);
        let mut bound = vec![false; n];
        let mut x_cf = vec![0.0f32; n * d];
        let threads = threads
            .or_else(|| std::thread::available_parallelism().ok().map(|t| t.get()))
            .unwrap_or(1)
            .clamp(1, 256);
        let styles: Vec<Shown> = (0..d).map(|i| shown_style(&bundle, i)).collect();
        let scratch_len = bundle.scratch_len();
        let failure = py.detach(|| {
            let per = n.div_ceil(threads).max(1);
            let run = |start: usize,
                       status: &mut [u8],
                       probs: [&mut [f32]; 4],
                       masks: [&mut [u64]; 4],
                       bound: &mut [bool],
                       x_cf: &mut [f32]|
             -> Option<(usize, Option<usize>, String)> {
                let options = request.options();
                let mut scratch = vec![0.0f32; scratch_len];
                let mut x32 = vec![0.0f32; d];
                let [p0, p1, p2, p3] = probs;
                let [m0, m1, m2, m3] = masks;
                for k in 0..status.len() {
                    let out = RowOut {
                        status: &mut status[k],
                        prob: [&mut p0[k], &mut p1[k], &mut p2[k], &mut p3[k]],
                        masks: [&mut m0[k], &mut m1[k], &mut m2[k], &mut m3[k]],
                        max_changes_bound: &mut bound[k],
                        x_cf: &mut x_cf[k * d..(k + 1) * d],
                    };
                    let row = &xs[(start + k) * d..(start + k + 1) * d];
                    if let Err((feature, message)) =
                        recommend_row(&bundle, &styles, &options, row, &mut x32, &mut scratch, out)
                    {
                        return Some((start + k, feature, message));
                    }
                }
                None
            };
            if threads == 1 || n < 1024 {
                let [p0, p1, p2, p3] = &mut probs;
                let [m0, m1, m2, m3] = &mut masks;
                return run(
                    0,
                    &mut status,
                    [p0, p1, p2, p3],
                    [m0, m1, m2, m3],
                    &mut bound,
                    &mut x_cf,
                );
            }
            std::thread::scope(|s| {
                let [p0, p1, p2, p3] = &mut probs;
                let [m0, m1, m2, m3] = &mut masks;
                let mut handles = Vec::new();
                let parts = status
                    .chunks_mut(per)
                    .zip(p0.chunks_mut(per))
                    .zip(p1.chunks_mut(per))
                    .zip(p2.chunks_mut(per))
                    .zip(p3.chunks_mut(per))
                    .zip(m0.chunks_mut(per))
                    .zip(m1.chunks_mut(per))
                    .zip(m2.chunks_mut(per))
                    .zip(m3.chunks_mut(per))
                    .zip(bound.chunks_mut(per))
                    .zip(x_cf.chunks_mut(per * d));
                for (t, part) in parts.enumerate() {
                    let ((((((((((st, a), b), c), e), f), g), h), i), bd), xc) = part;
                    let run = &run;
                    handles.push(
                        s.spawn(move || run(t * per, st, [a, b, c, e], [f, g, h, i], bd, xc)),
                    );
                }
                handles
                    .into_iter()
                    .filter_map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Some((0, None, "a worker thread panicked".to_owned()))
                        })
                    })
                    .min_by_key(|f| f.0)
            })
        });
        if let Some((row, feature, message)) = failure {
            let column = feature
                .map(|i| format!(", column '{}'", bundle.feature_name(i).unwrap_or("?")))
                .unwrap_or_default();
            return Err(error(
                py,
                "DataError",
                format!("{source}: row {}{column}: {message}", row + 1 + row_offset),
            ));
        }
        let out = PyDict::new(py);
        out.set_item("status", status.into_pyarray(py))?;
        let [p0, p1, p2, p3] = probs;
        out.set_item("prob_before", p0.into_pyarray(py))?;
        out.set_item("prob_after", p1.into_pyarray(py))?;
        out.set_item("cost", p2.into_pyarray(py))?;
        out.set_item("cost_unrefined", p3.into_pyarray(py))?;
        let [m0, m1, m2, m3] = masks;
        out.set_item("mask", m0.into_pyarray(py))?;
        out.set_item("consequences", m1.into_pyarray(py))?;
        out.set_item("bound_by_limit", m2.into_pyarray(py))?;
        out.set_item("out_of_range", m3.into_pyarray(py))?;
        out.set_item("max_changes_bound", bound.into_pyarray(py))?;
        let x_cf = Array1::from(x_cf)
            .into_shape_with_order((n, d))
            .map_err(|e| error(py, "CarmaError", e.to_string()))?;
        out.set_item("x_cf", x_cf.into_pyarray(py))?;
        Ok(out)
    }

    /// Up to `1 + alternatives` recommendations for one person `x` (the model's column order),
    /// as `carma recommend --alternatives K`: the first is the usual one, each further one
    /// changes a different set of features (the cheapest found with one more feature of the
    /// earlier ones forbidden), by cost. Returns a list of `(status, prob_after, cost, mask,
    /// x_cf)`.
    #[pyo3(signature = (x, alternatives, forbid, min, max, increase_only, decrease_only, max_changes, refine, min_prob))]
    #[allow(clippy::too_many_arguments)]
    fn recommend_alternatives(
        &self,
        py: Python<'_>,
        x: Vec<f64>,
        alternatives: usize,
        forbid: Vec<String>,
        min: Vec<(String, f64)>,
        max: Vec<(String, f64)>,
        increase_only: Vec<String>,
        decrease_only: Vec<String>,
        max_changes: Option<u8>,
        refine: bool,
        min_prob: f32,
    ) -> PyResult<Vec<Alternative>> {
        let bundle = self.bundle(py)?;
        if bundle.carma().is_none() {
            return Err(error(
                py,
                "ModelError",
                format!(
                    "{}: the model has no CARMA networks, so it cannot recommend",
                    self.source
                ),
            ));
        }
        if alternatives > 16 {
            return Err(error(
                py,
                "LimitError",
                format!("alternatives: expected 0 to 16, found {alternatives}"),
            ));
        }
        let d = bundle.n_features();
        if x.len() != d {
            return Err(error(
                py,
                "DataError",
                format!("person: expected {d} features, found {}", x.len()),
            ));
        }
        let request = Self::request(
            &bundle,
            py,
            forbid,
            min,
            max,
            increase_only,
            decrease_only,
            max_changes,
            refine,
            min_prob,
        )?;
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut out = vec![0.0f32; (alternatives + 1) * d];
        let mut recs = vec![None; alternatives + 1];
        let mut scratch = vec![0.0f32; bundle.scratch_len()];
        let n = bundle
            .recommend_alternatives(&x32, &request.options(), &mut out, &mut recs, &mut scratch)
            .map_err(|e| error(py, "DataError", format!("person: cannot recommend: {e}")))?;
        Ok(recs
            .iter()
            .take(n)
            .zip(out.chunks_exact(d.max(1)))
            .filter_map(|(r, x_cf)| {
                let r = r.as_ref()?;
                Some((
                    status_code(r.status),
                    r.prob_after,
                    r.cost,
                    r.mask.bits(),
                    x_cf.to_vec(),
                ))
            })
            .collect())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let b = self.bundle(py)?;
        Ok(format!(
            "Model({}: dataset '{}', {} features, {} bytes)",
            self.source,
            b.wire().meta.dataset,
            b.n_features(),
            self.bytes.len()
        ))
    }

    /// Pickling: the bundle bytes (how Dask ships a model to its workers).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Reduced<'py>> {
        let from_bytes = py
            .import("carma._carma")?
            .getattr("Model")?
            .getattr("from_bytes")?;
        Ok((
            from_bytes,
            (PyBytes::new(py, &self.bytes), self.source.clone()),
        ))
    }
}

/// What `carma fit` checks of the graph and the label before reading any data (the default
/// settings' weights).
#[pyfunction]
fn check_setup(py: Python<'_>, graph: &Graph, label: &str) -> PyResult<()> {
    carma_train::preflight::check_setup(
        &PipelineConfig::default(),
        &graph.inner,
        label,
        &graph.source,
        "settings",
    )
    .map_err(|e| error(py, "CarmaError", e.0))
}

/// One of [`Model::recommend_alternatives`]'s answers: `(status, prob_after, cost, mask, x_cf)`.
type Alternative = (u8, f32, f32, u64, Vec<f32>);

/// What `Model.__reduce__` returns: the constructor and its arguments.
type Reduced<'py> = (Bound<'py, PyAny>, (Bound<'py, PyBytes>, String));

/// The label column's default name (`carma simulate` writes `y`).
#[pyfunction]
fn default_label() -> &'static str {
    DEFAULT_LABEL
}

/// The native module.
#[pymodule]
fn _carma(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Graph>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(default_label, m)?)?;
    m.add_function(wrap_pyfunction!(check_setup, m)?)?;
    // The probability a refined recommendation keeps by default (`carma recommend --min-prob`).
    m.add("DEFAULT_MIN_PROB", carma_core::recommend::DEFAULT_MIN_PROB)?;
    Ok(())
}
