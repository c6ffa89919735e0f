//! Import of a causal flow and classifier trained in PyTorch (the CARMA
//! paper's code, or your own) from a JSON file, into a [`BundleSpec`].
//!
//! The imported bundle has no CARMA networks (`carma: None`): it abducts,
//! inverts, scores log-likelihoods and classifies exactly as the PyTorch
//! model does, and CARMA can then be trained on it. Nothing is approximated:
//! the reference flow (zuko's masked autoregressive transform with a
//! monotonic affine map, docs/MATH.md section 4, causal flow) is one MADE layer with ELU hidden
//! units and no output activation, whose soft-clipped log-scale is the one
//! carma-core computes; the masks are multiplied into the weights, which is
//! what the PyTorch forward pass does.
//!
//! # JSON layout
//!
//! This is the layout of `fixtures/reference/{loan,trianglesens_linear}_flow.json`.
//! Keys not listed are ignored. A *tensor* is `{"shape": [..], "data": ..}`
//! with `data` nested lists matching `shape` (`tensor.tolist()`); weight
//! matrices are `[out][in]` as in `torch.nn.Linear` (`y = W x + b`).
//!
//! | key | content |
//! |---|---|
//! | `dataset` | string, stored in the bundle |
//! | `num_features` | `D` |
//! | `causal_adjacency.matrix` | `D x D` of 0/1: `matrix[i][j] = 1` iff feature `j` is a parent of feature `i` (row = child); must be acyclic |
//! | `W1`, `b1`, `W2`, `b2`, ... `Wn`, `bn` | the flow's hyper-network (MADE) layers: `W1` is `[H1, D]`, `Wn` is `[2D, H(n-1)]`; ELU after every layer but the last. Output row `2i` is the shift of feature `i`, row `2i+1` its unconstrained log-scale |
//! | `M1`, ... `Mn` | optional 0/1 masks with the shapes of `W1..Wn`, multiplied into the weights (zuko stores the weights unmasked). Omit them if your weights are already masked |
//! | `scalers.recourse`, `scalers.causal_estimator`, `scalers.clf` | `{"mean": [D], "std": [D]}`: `x_scaled = (x - mean) / std`. Only the one chosen with [`ScalerChoice`] is needed |
//! | `classifier.type` | `"nn"` (ReLU MLP) or `"linear"` (logistic regression); sigmoid output either way |
//! | `classifier.layers` | list of tensors `{"name", "shape", "data"}`: weight, bias, weight, bias, ... in forward order (the `state_dict` order); the last layer has one output |
//! | `actionable_features` | list of feature indices a recommendation may change |
//! | `feature_names` | optional, `D` strings. Default: the Loan names for a dataset named `loan...`, else `x_s, x_1, ..., x_{D-1}` (the paper's synthetic datasets) |
//! | `binary_features` | optional, list of indices of 0/1 features. Default `[0]`: the sensitive attribute, binary in every dataset of the paper. Give `[]` if none is binary |
//! | `config` | optional; if present it must describe what carma-core computes: `num_transforms` 1, `activation` ELU, `base_to_data` false, `monotonic_affine_slope` 1e-3 |
//! | `base_loc`, `base_scale` | optional; if present all 0 and all 1 (standard normal base) |
//!
//! The flow's outputs for feature `i` must depend only on the parents of `i`
//! (given the masks, this is checked).
//!
//! Exporting a zuko flow from PyTorch takes a few lines, for example:
//!
//! ```text
//! t = lambda x: {"shape": list(x.shape), "data": x.detach().cpu().tolist()}
//! net = flow.transform.transforms[0].hyper   # the MaskedMLP
//! lin = [m for m in net if isinstance(m, torch.nn.Linear)]
//! out = {"dataset": "mydata", "num_features": d,
//!        "causal_adjacency": {"matrix": adj.int().tolist()},
//!        "scalers": {"recourse": {"mean": mean.tolist(), "std": std.tolist()}},
//!        "classifier": {"type": "nn", "layers": [dict(name=k, **t(v)) for k, v in clf.state_dict().items()]},
//!        "actionable_features": [2, 3, 5, 6]}
//! for k, m in enumerate(lin, 1):
//!     out[f"W{k}"], out[f"b{k}"], out[f"M{k}"] = t(m.weight), t(m.bias), t(m.mask)
//! json.dump(out, open("flow.json", "w"))
//! ```
//!
//! `carma import` wraps [`import_reference_json`] and writes the bundle.

use std::collections::BTreeMap;
use std::str::FromStr;

use carma_core::format::{Activation, MAX_FEATURES, MetricsWire};
use serde::Deserialize;
use serde_json::Value;

use crate::export::{BundleSpec, FlowSpec, MlpSpec};

/// Feature names of the Loan dataset (docs/MATH.md section 2, datasets), used when the JSON has none: the
/// simulator's, so imported and trained Loan models name their features alike.
pub use crate::scm::LOAN_NAMES;

/// The soft-clip slope carma-core's flow uses (zuko `MonotonicAffineTransform`, FLOW_MATH section 4).
const SLOPE: f64 = 1e-3;

/// Which of the reference's three scalers goes into the bundle (FLOW_MATH section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScalerChoice {
    /// `scalers.recourse`: what CARMA, the oracle and the reference test vectors use.
    #[default]
    Recourse,
    /// `scalers.causal_estimator`: the flow's training scaler, used for the
    /// paper's test log-likelihood.
    CausalEstimator,
    /// `scalers.clf`: the classifier's training scaler.
    Classifier,
}

impl ScalerChoice {
    /// The key under `scalers` in the JSON.
    pub fn key(self) -> &'static str {
        match self {
            ScalerChoice::Recourse => "recourse",
            ScalerChoice::CausalEstimator => "causal_estimator",
            ScalerChoice::Classifier => "clf",
        }
    }
}

impl FromStr for ScalerChoice {
    type Err = ImportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "recourse" => Ok(ScalerChoice::Recourse),
            "causal_estimator" => Ok(ScalerChoice::CausalEstimator),
            "clf" => Ok(ScalerChoice::Classifier),
            other => Err(ImportError::Unsupported {
                what: "scaler".into(),
                found: format!("{other:?} (expected recourse, causal_estimator or clf)"),
            }),
        }
    }
}

/// Why a JSON file cannot be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not JSON, or a required key is missing or has the wrong type.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A required key is missing.
    #[error("missing key {0:?}")]
    Missing(String),
    /// A tensor or list has the wrong shape.
    #[error("{name}: {reason}")]
    Shape {
        /// The key.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A mask or adjacency entry is not 0 or 1.
    #[error("{name}: entry {index} is {value}, expected 0 or 1")]
    NotBinary {
        /// The key.
        name: String,
        /// Flat index of the entry.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// The causal graph has a cycle (or a self-loop).
    #[error("the causal adjacency has a cycle through features {features:?}")]
    Cyclic {
        /// Features on or downstream of a cycle.
        features: Vec<usize>,
    },
    /// The flow's shift or log-scale of a feature depends on a non-parent.
    #[error(
        "the flow's outputs for feature {feature} depend on feature {depends_on}, \
         which is not one of its parents in causal_adjacency"
    )]
    NotCausal {
        /// The feature whose outputs are wrong.
        feature: usize,
        /// The non-parent it depends on.
        depends_on: usize,
    },
    /// A value carma-core cannot express (another activation, several transforms, ...).
    #[error("unsupported {what}: {found}")]
    Unsupported {
        /// What was checked.
        what: String,
        /// What the file says.
        found: String,
    },
    /// A value out of range (a feature index, a standard deviation, ...).
    #[error("{what}: {reason}")]
    Invalid {
        /// The key.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

/// `{"shape": [..], "data": nested lists}`.
#[derive(Deserialize)]
struct Tensor {
    #[serde(default)]
    name: Option<String>,
    shape: Vec<usize>,
    data: Value,
}

#[derive(Deserialize)]
struct Adjacency {
    matrix: Value,
}

#[derive(Deserialize)]
struct Scaler {
    mean: Vec<f64>,
    std: Vec<f64>,
}

#[derive(Deserialize, Default)]
struct Config {
    num_transforms: Option<usize>,
    activation: Option<String>,
    base_to_data: Option<bool>,
    monotonic_affine_slope: Option<f64>,
}

#[derive(Deserialize, Default)]
struct ClassifierParams {
    act: Option<String>,
}

#[derive(Deserialize)]
struct Classifier {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    params: ClassifierParams,
    layers: Vec<Tensor>,
}

#[derive(Deserialize)]
struct Reference {
    dataset: String,
    num_features: usize,
    #[serde(default)]
    feature_names: Option<Vec<String>>,
    #[serde(default)]
    binary_features: Option<Vec<usize>>,
    #[serde(default)]
    config: Option<Config>,
    causal_adjacency: Adjacency,
    scalers: BTreeMap<String, Value>,
    classifier: Classifier,
    actionable_features: Vec<usize>,
    #[serde(default)]
    base_loc: Option<Vec<f64>>,
    #[serde(default)]
    base_scale: Option<Vec<f64>>,
    /// Everything else, including the flow tensors `W1, b1, M1, ...`.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Reads a causal flow and classifier in the JSON layout of the module docs.
///
/// `scaler` picks which of the file's scalers the bundle standardizes with:
/// [`ScalerChoice::Recourse`] reproduces CARMA and the reference test
/// vectors, [`ScalerChoice::CausalEstimator`] the paper's test
/// log-likelihood. The result has `carma: None`, seed 0 and empty metrics.
pub fn import_reference_json(text: &str, scaler: ScalerChoice) -> Result<BundleSpec, ImportError> {
    let r: Reference = serde_json::from_str(text)?;
    let d = r.num_features;
    if d == 0 || d > MAX_FEATURES {
        return Err(ImportError::Invalid {
            what: "num_features".into(),
            reason: format!("must be in 1..={MAX_FEATURES}, is {d}"),
        });
    }
    check_config(&r)?;

    let parents = read_adjacency(&r.causal_adjacency.matrix, d)?;
    let order = topological_order(&parents)?;
    let flow = read_flow(&r.rest, d, &parents)?;
    let classifier = read_classifier(&r.classifier, d)?;
    let (mean, std) = read_scaler(&r.scalers, scaler, d)?;

    let names = match r.feature_names {
        Some(names) => {
            check_count("feature_names", d, names.len())?;
            names
        }
        None => default_names(&r.dataset, d),
    };
    let binary = index_flags(
        "binary_features",
        r.binary_features.as_deref().unwrap_or(&[0]),
        d,
    )?;
    let actionable = index_flags("actionable_features", &r.actionable_features, d)?;

    Ok(BundleSpec {
        min: Vec::new(),
        max: Vec::new(),
        direction: Vec::new(),
        grid: Vec::new(),
        dataset: r.dataset,
        seed: 0,
        metrics: MetricsWire::default(),
        names,
        binary,
        actionable,
        parents,
        order,
        mean,
        std,
        flow,
        classifier,
        carma: None,
    })
}

/// Default names: Loan's for `loan*`, else the paper's `x_s, x_1, ...`.
fn default_names(dataset: &str, d: usize) -> Vec<String> {
    if dataset.to_ascii_lowercase().starts_with("loan") && d == LOAN_NAMES.len() {
        LOAN_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..d)
            .map(|i| {
                if i == 0 {
                    "x_s".to_string()
                } else {
                    format!("x_{i}")
                }
            })
            .collect()
    }
}

/// Rejects configurations carma-core's flow does not compute.
fn check_config(r: &Reference) -> Result<(), ImportError> {
    let unsupported = |what: &str, found: String| ImportError::Unsupported {
        what: what.into(),
        found,
    };
    if let Some(c) = &r.config {
        if let Some(n) = c.num_transforms
            && n != 1
        {
            return Err(unsupported(
                "config.num_transforms",
                format!("{n} (only 1 can be imported)"),
            ));
        }
        if let Some(a) = &c.activation
            && !a.trim_start().to_ascii_lowercase().starts_with("elu")
        {
            return Err(unsupported(
                "config.activation",
                format!("{a:?} (only ELU)"),
            ));
        }
        if c.base_to_data == Some(true) {
            return Err(unsupported(
                "config.base_to_data",
                "true (the flow must map data to latent)".into(),
            ));
        }
        if let Some(s) = c.monotonic_affine_slope
            && (s - SLOPE).abs() > 1e-12
        {
            return Err(unsupported(
                "config.monotonic_affine_slope",
                format!("{s} (only {SLOPE})"),
            ));
        }
    }
    for (key, v, want) in [
        ("base_loc", &r.base_loc, 0.0),
        ("base_scale", &r.base_scale, 1.0),
    ] {
        if let Some(v) = v {
            check_count(key, r.num_features, v.len())?;
            if v.iter().any(|&x| x != want) {
                return Err(unsupported(
                    key,
                    format!("{v:?} (the base must be a standard normal)"),
                ));
            }
        }
    }
    Ok(())
}

fn check_count(name: &str, expected: usize, found: usize) -> Result<(), ImportError> {
    if expected == found {
        Ok(())
    } else {
        Err(ImportError::Shape {
            name: name.into(),
            reason: format!("expected {expected} entries, found {found}"),
        })
    }
}

/// Flattens nested JSON lists of numbers, checking them against `shape`.
fn flatten(name: &str, shape: &[usize], data: &Value) -> Result<Vec<f64>, ImportError> {
    fn walk(name: &str, shape: &[usize], v: &Value, out: &mut Vec<f64>) -> Result<(), ImportError> {
        let bad = |reason: String| ImportError::Shape {
            name: name.into(),
            reason,
        };
        match shape.split_first() {
            None => match v {
                Value::Number(n) => {
                    out.push(
                        n.as_f64()
                            .ok_or_else(|| bad(format!("{n} is not a number")))?,
                    );
                    Ok(())
                }
                Value::Bool(b) => {
                    out.push(f64::from(u8::from(*b)));
                    Ok(())
                }
                other => Err(bad(format!("expected a number, found {other}"))),
            },
            Some((&n, inner)) => match v {
                Value::Array(items) if items.len() == n => items
                    .iter()
                    .try_for_each(|item| walk(name, inner, item, out)),
                Value::Array(items) => Err(bad(format!(
                    "a dimension of length {} where the shape says {n}",
                    items.len()
                ))),
                other => Err(bad(format!("expected a list, found {other}"))),
            },
        }
    }
    let mut out = Vec::with_capacity(shape.iter().product());
    walk(name, shape, data, &mut out)?;
    Ok(out)
}

fn tensor(rest: &BTreeMap<String, Value>, key: &str) -> Result<Option<Tensor>, ImportError> {
    rest.get(key)
        .map(|v| Tensor::deserialize(v).map_err(ImportError::from))
        .transpose()
}

fn expect_shape(name: &str, t: &Tensor, shape: &[usize]) -> Result<(), ImportError> {
    if t.shape == shape {
        Ok(())
    } else {
        Err(ImportError::Shape {
            name: name.into(),
            reason: format!("shape {:?}, expected {shape:?}", t.shape),
        })
    }
}

fn check_binary(name: &str, v: &[f64]) -> Result<(), ImportError> {
    match v.iter().position(|&x| x != 0.0 && x != 1.0) {
        None => Ok(()),
        Some(index) => Err(ImportError::NotBinary {
            name: name.into(),
            index,
            value: v[index],
        }),
    }
}

/// `parents[i]` from the `D x D` adjacency (row = child).
fn read_adjacency(matrix: &Value, d: usize) -> Result<Vec<Vec<usize>>, ImportError> {
    let name = "causal_adjacency.matrix";
    let a = flatten(name, &[d, d], matrix)?;
    check_binary(name, &a)?;
    Ok((0..d)
        .map(|i| (0..d).filter(|&j| a[i * d + j] == 1.0).collect())
        .collect())
}

/// Kahn's algorithm, smallest ready index first, so the order is deterministic.
fn topological_order(parents: &[Vec<usize>]) -> Result<Vec<usize>, ImportError> {
    let d = parents.len();
    let mut missing: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut done = vec![false; d];
    let mut order = Vec::with_capacity(d);
    while let Some(i) = (0..d).find(|&i| !done[i] && missing[i] == 0) {
        done[i] = true;
        order.push(i);
        for (c, ps) in parents.iter().enumerate() {
            missing[c] -= ps.iter().filter(|&&p| p == i).count();
        }
    }
    if order.len() < d {
        return Err(ImportError::Cyclic {
            features: (0..d).filter(|&i| !done[i]).collect(),
        });
    }
    Ok(order)
}

/// Reads `W1, b1, [M1], ..., Wn, bn, [Mn]`, multiplies the masks in, and
/// checks that the outputs of each feature depend on its parents only.
fn read_flow(
    rest: &BTreeMap<String, Value>,
    d: usize,
    parents: &[Vec<usize>],
) -> Result<FlowSpec, ImportError> {
    let mut dims = vec![d];
    let mut params = Vec::new();
    // Input dependencies of each unit of the current layer, as bit sets.
    let mut deps: Vec<u64> = (0..d).map(|j| 1u64 << j).collect();
    for k in 1.. {
        let (wk, bk, mk) = (format!("W{k}"), format!("b{k}"), format!("M{k}"));
        let Some(w) = tensor(rest, &wk)? else {
            if k == 1 {
                return Err(ImportError::Missing(wk));
            }
            break;
        };
        let n_in = dims[k - 1];
        let n_out = w.shape.first().copied().unwrap_or(0);
        expect_shape(&wk, &w, &[n_out, n_in])?;
        let b = tensor(rest, &bk)?.ok_or_else(|| ImportError::Missing(bk.clone()))?;
        expect_shape(&bk, &b, &[n_out])?;
        let mut w_data = flatten(&wk, &w.shape, &w.data)?;
        if let Some(m) = tensor(rest, &mk)? {
            expect_shape(&mk, &m, &w.shape)?;
            let m_data = flatten(&mk, &m.shape, &m.data)?;
            check_binary(&mk, &m_data)?;
            for (w, m) in w_data.iter_mut().zip(&m_data) {
                if *m == 0.0 {
                    *w = 0.0;
                }
            }
        }
        deps = (0..n_out)
            .map(|r| {
                let row = &w_data[r * n_in..(r + 1) * n_in];
                row.iter()
                    .zip(&deps)
                    .filter(|(w, _)| **w != 0.0)
                    .fold(0, |acc, (_, &s)| acc | s)
            })
            .collect();
        params.extend(w_data.iter().map(|&x| x as f32));
        params.extend(flatten(&bk, &b.shape, &b.data)?.iter().map(|&x| x as f32));
        dims.push(n_out);
    }
    if dims.len() < 3 || dims[dims.len() - 1] != 2 * d {
        return Err(ImportError::Shape {
            name: "flow".into(),
            reason: format!(
                "layer widths {dims:?}: need at least one hidden layer and {} outputs (shift and \
                 log-scale of each feature)",
                2 * d
            ),
        });
    }
    for (i, ps) in parents.iter().enumerate() {
        let allowed = ps.iter().fold(0u64, |acc, &j| acc | 1 << j);
        let used = deps[2 * i] | deps[2 * i + 1];
        if used & !allowed != 0 {
            let depends_on = (used & !allowed).trailing_zeros() as usize;
            return Err(ImportError::NotCausal {
                feature: i,
                depends_on,
            });
        }
    }
    Ok(FlowSpec {
        dims,
        layers: vec![params],
    })
}

/// The classifier: `nn` (ReLU MLP) or `linear`, sigmoid output.
fn read_classifier(c: &Classifier, d: usize) -> Result<MlpSpec, ImportError> {
    match c.kind.as_str() {
        "nn" => {
            if let Some(act) = &c.params.act
                && !act.eq_ignore_ascii_case("relu")
            {
                return Err(ImportError::Unsupported {
                    what: "classifier.params.act".into(),
                    found: format!("{act:?} (only relu)"),
                });
            }
        }
        "linear" => {
            if c.layers.len() != 2 {
                return Err(ImportError::Shape {
                    name: "classifier.layers".into(),
                    reason: format!(
                        "a linear classifier has one weight and one bias, found {} tensors",
                        c.layers.len()
                    ),
                });
            }
        }
        other => {
            return Err(ImportError::Unsupported {
                what: "classifier.type".into(),
                found: format!("{other:?} (expected \"nn\" or \"linear\")"),
            });
        }
    }
    if c.layers.is_empty() || c.layers.len() % 2 != 0 {
        return Err(ImportError::Shape {
            name: "classifier.layers".into(),
            reason: format!(
                "expected weight, bias pairs, found {} tensors",
                c.layers.len()
            ),
        });
    }
    let mut dims = vec![d];
    let mut params = Vec::new();
    for (l, pair) in c.layers.chunks_exact(2).enumerate() {
        let (w, b) = (&pair[0], &pair[1]);
        let label = |t: &Tensor, kind: &str| {
            t.name
                .clone()
                .unwrap_or_else(|| format!("classifier.layers[{}] ({kind})", 2 * l))
        };
        let (wn, bn) = (label(w, "weight"), label(b, "bias"));
        for (name, want) in [(&wn, "weight"), (&bn, "bias")] {
            if w.name.is_some() && !name.ends_with(want) {
                return Err(ImportError::Shape {
                    name: name.clone(),
                    reason: format!("expected a {want} here (layers alternate weight, bias)"),
                });
            }
        }
        let n_in = dims[l];
        let n_out = w.shape.first().copied().unwrap_or(0);
        expect_shape(&wn, w, &[n_out, n_in])?;
        expect_shape(&bn, b, &[n_out])?;
        params.extend(flatten(&wn, &w.shape, &w.data)?.iter().map(|&x| x as f32));
        params.extend(flatten(&bn, &b.shape, &b.data)?.iter().map(|&x| x as f32));
        dims.push(n_out);
    }
    if dims[dims.len() - 1] != 1 || dims.contains(&0) {
        return Err(ImportError::Shape {
            name: "classifier.layers".into(),
            reason: format!("layer widths {dims:?}: the last layer must have one output"),
        });
    }
    Ok(MlpSpec {
        dims,
        hidden: Activation::Relu,
        output: Activation::Sigmoid,
        params,
    })
}

fn read_scaler(
    scalers: &BTreeMap<String, Value>,
    choice: ScalerChoice,
    d: usize,
) -> Result<(Vec<f32>, Vec<f32>), ImportError> {
    let key = choice.key();
    let v = scalers
        .get(key)
        .ok_or_else(|| ImportError::Missing(format!("scalers.{key}")))?;
    let s = Scaler::deserialize(v)?;
    check_count(&format!("scalers.{key}.mean"), d, s.mean.len())?;
    check_count(&format!("scalers.{key}.std"), d, s.std.len())?;
    if let Some(j) = s.std.iter().position(|&x| x.is_nan() || x <= 0.0) {
        return Err(ImportError::Invalid {
            what: format!("scalers.{key}.std"),
            reason: format!("feature {j} has std {}, must be positive", s.std[j]),
        });
    }
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
    Ok((f(&s.mean), f(&s.std)))
}

/// `D` flags from a list of distinct indices.
fn index_flags(name: &str, indices: &[usize], d: usize) -> Result<Vec<bool>, ImportError> {
    let mut flags = vec![false; d];
    for &i in indices {
        if i >= d || flags[i] {
            return Err(ImportError::Invalid {
                what: name.into(),
                reason: format!("index {i} is out of range or repeated (D = {d})"),
            });
        }
        flags[i] = true;
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../fixtures/reference/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(&fixture(name)).unwrap();
        edit(&mut v);
        v.to_string()
    }

    #[test]
    fn loan_reference_imports_with_its_graph_and_networks() {
        let spec =
            import_reference_json(&fixture("loan_flow.json"), ScalerChoice::Recourse).unwrap();
        assert_eq!(spec.dataset, "loan");
        assert_eq!(spec.names, LOAN_NAMES.map(String::from).to_vec());
        assert_eq!(
            spec.binary,
            vec![true, false, false, false, false, false, false]
        );
        assert_eq!(
            spec.actionable,
            vec![false, false, true, true, false, true, true]
        );
        let expected_parents: Vec<Vec<usize>> = vec![
            vec![],
            vec![],
            vec![0, 1],
            vec![0, 1],
            vec![0, 1, 3],
            vec![0, 1, 2],
            vec![5],
        ];
        assert_eq!(spec.parents, expected_parents);
        assert_eq!(spec.order, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(spec.flow.dims, vec![7, 64, 14]);
        assert_eq!(spec.flow.layers.len(), 1);
        assert_eq!(spec.classifier.dims, vec![7, 32, 32, 1]);
        assert_eq!(spec.classifier.hidden, Activation::Relu);
        assert_eq!(spec.classifier.output, Activation::Sigmoid);
        assert_eq!(spec.std[1], 10.980_886_f32);
        assert!(spec.carma.is_none());
        spec.to_bytes().unwrap();
    }

    #[test]
    fn triangle_reference_imports_as_logistic_classifier() {
        let spec = import_reference_json(
            &fixture("trianglesens_linear_flow.json"),
            ScalerChoice::CausalEstimator,
        )
        .unwrap();
        assert_eq!(spec.names, vec!["x_s", "x_1", "x_2", "x_3"]);
        assert_eq!(spec.parents, vec![vec![], vec![0], vec![1], vec![0, 1, 2]]);
        assert_eq!(spec.flow.dims, vec![4, 32, 8]);
        assert_eq!(spec.classifier.dims, vec![4, 1]);
        assert_eq!(spec.actionable, vec![false, true, true, true]);
        // The causal_estimator scaler, not the recourse one.
        assert_eq!(spec.std[1], 2.131_844_5_f32);
        spec.to_bytes().unwrap();
    }

    #[test]
    fn masks_are_multiplied_into_the_weights_exactly() {
        let text = fixture("trianglesens_linear_flow.json");
        let v: Value = serde_json::from_str(&text).unwrap();
        let spec = import_reference_json(&text, ScalerChoice::Recourse).unwrap();
        let w1 = flatten("W1", &[32, 4], &v["W1"]["data"]).unwrap();
        let m1 = flatten("M1", &[32, 4], &v["M1"]["data"]).unwrap();
        let w2 = flatten("W2", &[8, 32], &v["W2"]["data"]).unwrap();
        let m2 = flatten("M2", &[8, 32], &v["M2"]["data"]).unwrap();
        let b1 = flatten("b1", &[32], &v["b1"]["data"]).unwrap();
        let b2 = flatten("b2", &[8], &v["b2"]["data"]).unwrap();
        let expected: Vec<f32> = w1
            .iter()
            .zip(&m1)
            .map(|(w, m)| w * m)
            .chain(b1.iter().copied())
            .chain(w2.iter().zip(&m2).map(|(w, m)| w * m))
            .chain(b2.iter().copied())
            .map(|x| x as f32)
            .collect();
        assert_eq!(spec.flow.layers[0], expected);
        // The masks really remove weights (the file stores them unmasked).
        assert!(w1.iter().zip(&m1).any(|(w, m)| *m == 0.0 && *w != 0.0));
    }

    #[test]
    fn optional_names_binary_and_missing_masks_are_honoured() {
        let text = edited("trianglesens_linear_flow.json", |v| {
            v["feature_names"] = serde_json::json!(["s", "a", "b", "c"]);
            v["binary_features"] = serde_json::json!([]);
            let obj = v.as_object_mut().unwrap();
            obj.remove("M1");
            obj.remove("M2");
            obj.remove("config");
        });
        // Without masks the unmasked weights connect every input: not causal.
        assert!(matches!(
            import_reference_json(&text, ScalerChoice::Recourse),
            Err(ImportError::NotCausal { feature: 0, .. })
        ));
        let text = edited("trianglesens_linear_flow.json", |v| {
            v["feature_names"] = serde_json::json!(["s", "a", "b", "c"]);
            v["binary_features"] = serde_json::json!([]);
        });
        let spec = import_reference_json(&text, ScalerChoice::Recourse).unwrap();
        assert_eq!(spec.names, vec!["s", "a", "b", "c"]);
        assert_eq!(spec.binary, vec![false; 4]);
    }

    #[test]
    fn import_rejects_what_the_core_cannot_express() {
        let name = "trianglesens_linear_flow.json";
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["causal_adjacency"]["matrix"][0][3] = 1.into()),
                "Cyclic",
            ),
            (
                Box::new(|v| v["causal_adjacency"]["matrix"][1][1] = 1.into()),
                "Cyclic",
            ),
            (
                Box::new(|v| v["causal_adjacency"]["matrix"][1][0] = 2.into()),
                "NotBinary",
            ),
            (Box::new(|v| v["M2"]["data"][0][0] = 1.into()), "NotCausal"),
            (
                Box::new(|v| v["M1"]["data"][0][0] = serde_json::json!(0.5)),
                "NotBinary",
            ),
            (Box::new(|v| v["W2"]["shape"][0] = 7.into()), "Shape"),
            (
                Box::new(|v| v["b1"]["data"] = serde_json::json!([1.0])),
                "Shape",
            ),
            (
                Box::new(|v| v["config"]["num_transforms"] = 2.into()),
                "Unsupported",
            ),
            (
                Box::new(|v| v["config"]["activation"] = "relu".into()),
                "Unsupported",
            ),
            (
                Box::new(|v| v["base_scale"][0] = serde_json::json!(2.0)),
                "Unsupported",
            ),
            (
                Box::new(|v| v["classifier"]["type"] = "svm".into()),
                "Unsupported",
            ),
            (
                Box::new(|v| v["actionable_features"] = serde_json::json!([4])),
                "Invalid",
            ),
            (
                Box::new(|v| v["scalers"]["recourse"]["std"][2] = serde_json::json!(0.0)),
                "Invalid",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("W1");
                }),
                "Missing",
            ),
            (
                Box::new(|v| {
                    v["scalers"].as_object_mut().unwrap().remove("recourse");
                }),
                "Missing",
            ),
            (Box::new(|v| v["num_features"] = 5.into()), "Shape"),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            let err =
                import_reference_json(&edited(name, edit), ScalerChoice::Recourse).unwrap_err();
            let got = format!("{err:?}");
            assert!(
                got.starts_with(want),
                "case {i}: expected {want}, got {got} ({err})"
            );
        }
        assert!(matches!(
            import_reference_json("{", ScalerChoice::Recourse),
            Err(ImportError::Json(_))
        ));
    }

    #[test]
    fn scaler_choice_parses_its_keys() {
        for c in [
            ScalerChoice::Recourse,
            ScalerChoice::CausalEstimator,
            ScalerChoice::Classifier,
        ] {
            assert_eq!(c.key().parse::<ScalerChoice>().unwrap(), c);
        }
        assert!("minmax".parse::<ScalerChoice>().is_err());
        assert_eq!(ScalerChoice::default(), ScalerChoice::Recourse);
    }
}
