//! A classifier brought as JSON (`carma fit --classifier-json`, and what the Python package
//! writes for a scikit-learn or PyTorch model): a feed-forward network in the user's own units
//! that ends in one logit, imported exactly (no retraining, no approximation).
//!
//! The layout (documented for users in `carma-cli/README.md`):
//!
//! ```json
//! {
//!   "format": "carma-classifier",
//!   "version": 1,
//!   "source": "sklearn.neural_network.MLPClassifier",
//!   "features": ["income", "savings"],
//!   "input_scaler": {"mean": [3.1, 0.4], "scale": [1.2, 0.9]},
//!   "hidden_activation": "relu",
//!   "layers": [
//!     {"weight": [[0.5, -1.0], [2.0, 0.25]], "bias": [0.1, 0.0]},
//!     {"weight": [[1.5, -0.5]], "bias": [-0.2]}
//!   ]
//! }
//! ```
//!
//! `features` names the network's inputs in order (each a feature of the causal graph, each at
//! most once; a graph feature it does not name gets zero weights). `input_scaler` (optional)
//! standardizes them first, `u = (x - mean) / scale`, as scikit-learn's `StandardScaler` does.
//! Each layer is `W u + b` with `W` given row by row (one row per output unit, as PyTorch's
//! `Linear.weight` and the transpose of scikit-learn's `coefs_`), followed by
//! `hidden_activation` (`relu`, `tanh`, `logistic` or `identity`) except after the last layer,
//! which has one output: the logit, whose logistic function is the probability of acceptance.
//!
//! The model computes on standardized features `x~ = (x - m) / s` with the shared scaler; the
//! input scaler and the shared one are folded into the first layer (in `f64`, from the `f32`
//! values the bundle stores), so the bundle's probabilities are the network's up to `f32`
//! rounding.

use ndarray::{Array1, Array2};

use crate::classifier::{Classifier, ClassifierError};
use crate::data::Scaler;
use crate::graph::CausalGraph;
use crate::nn::{Activation, Dense, Mlp};
use crate::pipeline::FixedClassifier;

/// The `format` field's value.
pub const FORMAT: &str = "carma-classifier";
/// The layout version this reader understands.
pub const VERSION: u32 = 1;
/// The largest file read (64 MiB): a network of thousands of units is a few megabytes.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// What the file supports, for every refusal.
pub const SUPPORTED: &str = "supported: a feed-forward network of dense layers with relu, tanh, \
    logistic or identity hidden activations ending in one logit (scikit-learn LogisticRegression \
    or MLPClassifier, binary, optionally after a StandardScaler in a Pipeline; PyTorch \
    nn.Sequential of Linear and ReLU/Tanh/Sigmoid layers)";

/// Why a classifier file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierJsonError {
    /// Not readable as JSON of this layout.
    #[error("{file}: not a classifier file: {message} ({SUPPORTED}; see carma-cli/README.md)")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A value is not what the layout allows.
    #[error("{file}: {message} ({SUPPORTED})")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    format: String,
    version: u32,
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
    features: Vec<String>,
    #[serde(default)]
    input_scaler: Option<ScalerJson>,
    hidden_activation: String,
    layers: Vec<LayerJson>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScalerJson {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerJson {
    weight: Vec<Vec<f64>>,
    bias: Vec<f64>,
}

/// A validated classifier file: a logit network over named inputs in the user's units.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierJson {
    /// The network's inputs, in order.
    pub features: Vec<String>,
    /// `(mean, scale)` of the input standardization, when there is one.
    pub input_scaler: Option<(Vec<f64>, Vec<f64>)>,
    /// The hidden activation.
    pub hidden: Activation,
    /// `(W, b)` per layer, `W` as `[out][in]`.
    pub layers: Vec<(Array2<f64>, Array1<f64>)>,
}

impl ClassifierJson {
    /// Reads and validates a classifier file.
    pub fn read(path: &std::path::Path) -> Result<ClassifierJson, ClassifierJsonError> {
        use std::io::Read;
        let file = path.display().to_string();
        let io = |source| ClassifierJsonError::Io {
            file: file.clone(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_JSON_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_JSON_BYTES {
            return Err(ClassifierJsonError::Invalid {
                file,
                message: format!("over {} MiB", MAX_JSON_BYTES >> 20),
            });
        }
        ClassifierJson::parse(&text, &file)
    }

    /// Parses and validates classifier JSON; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<ClassifierJson, ClassifierJsonError> {
        let raw: FileJson =
            serde_json::from_str(text).map_err(|e| ClassifierJsonError::Syntax {
                file: file.to_owned(),
                message: e.to_string(),
            })?;
        let bad = |message: String| ClassifierJsonError::Invalid {
            file: file.to_owned(),
            message,
        };
        if raw.format != FORMAT {
            return Err(bad(format!(
                "\"format\" is '{}', expected '{FORMAT}'",
                raw.format
            )));
        }
        if raw.version != VERSION {
            return Err(bad(format!(
                "\"version\" is {}, this carma reads version {VERSION}",
                raw.version
            )));
        }
        let hidden = match raw.hidden_activation.as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "logistic" | "sigmoid" => Activation::Sigmoid,
            "identity" => Activation::Identity,
            other => {
                return Err(bad(format!("hidden activation '{other}' is not supported")));
            }
        };
        let k = raw.features.len();
        if k == 0 {
            return Err(bad("\"features\" is empty".to_owned()));
        }
        for (i, f) in raw.features.iter().enumerate() {
            if raw.features[..i].contains(f) {
                return Err(bad(format!("feature '{f}' is an input twice")));
            }
        }
        let input_scaler = match raw.input_scaler {
            Some(ScalerJson { mean, scale }) => {
                if mean.len() != k || scale.len() != k {
                    return Err(bad(format!(
                        "the input scaler has {} means and {} scales for {k} features",
                        mean.len(),
                        scale.len()
                    )));
                }
                if let Some(j) = (0..k).find(|&j| !(mean[j].is_finite() && scale[j].is_finite())) {
                    return Err(bad(format!(
                        "the input scaler of '{}' is not finite",
                        raw.features[j]
                    )));
                }
                if let Some(j) = (0..k).find(|&j| scale[j] <= 0.0) {
                    return Err(bad(format!(
                        "the input scaler's scale of '{}' is {}, expected a positive number",
                        raw.features[j], scale[j]
                    )));
                }
                Some((mean, scale))
            }
            None => None,
        };
        if raw.layers.is_empty() {
            return Err(bad("no layers".to_owned()));
        }
        let n_layers = raw.layers.len();
        let mut width = k;
        let mut layers = Vec::with_capacity(n_layers);
        for (l, layer) in raw.layers.into_iter().enumerate() {
            let rows = layer.weight.len();
            if rows == 0 {
                return Err(bad(format!("layer {l} has no output units")));
            }
            if let Some(r) = layer.weight.iter().position(|row| row.len() != width) {
                return Err(bad(format!(
                    "layer {l}: weight row {r} has {} values, expected {width} (the layer's \
                     inputs)",
                    layer.weight[r].len()
                )));
            }
            if layer.bias.len() != rows {
                return Err(bad(format!(
                    "layer {l}: {} biases for {rows} output units",
                    layer.bias.len()
                )));
            }
            if layer
                .weight
                .iter()
                .flatten()
                .chain(&layer.bias)
                .any(|v| !v.is_finite())
            {
                return Err(bad(format!("layer {l} has a value that is not finite")));
            }
            let w = Array2::from_shape_fn((rows, width), |(r, c)| layer.weight[r][c]);
            layers.push((w, Array1::from(layer.bias)));
            width = rows;
        }
        if width != 1 {
            return Err(bad(format!(
                "the last layer has {width} outputs; a binary classifier ends in one logit"
            )));
        }
        Ok(ClassifierJson {
            features: raw.features,
            input_scaler,
            hidden,
            layers,
        })
    }

    /// The network's logit for rows `x` of its inputs, in its own units (`f64`; for tests and
    /// checks).
    pub fn logits(&self, x: &Array2<f64>) -> Array1<f64> {
        let mut h = x.clone();
        if let Some((mean, scale)) = &self.input_scaler {
            for mut row in h.rows_mut() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (*v - mean[j]) / scale[j];
                }
            }
        }
        let last = self.layers.len() - 1;
        for (l, (w, b)) in self.layers.iter().enumerate() {
            h = h.dot(&w.t()) + b;
            if l < last {
                h.mapv_inplace(|t| self.hidden.apply(t));
            }
        }
        h.column(0).to_owned()
    }

    /// The classifier over `graph`'s features standardized by `scaler` (the shared scaler of
    /// every stage), with the input scaler and `scaler` folded into the first layer.
    pub fn to_classifier(
        &self,
        graph: &CausalGraph,
        scaler: &Scaler,
        file: &str,
    ) -> Result<Classifier, ClassifierJsonError> {
        let d = graph.len();
        let mut columns = Vec::with_capacity(self.features.len());
        for f in &self.features {
            columns.push(graph.index_of(f).ok_or_else(|| ClassifierJsonError::Invalid {
                file: file.to_owned(),
                message: format!(
                    "input '{f}' is not a feature of the causal graph (its features are: {})",
                    graph.names().join(", ")
                ),
            })?);
        }
        let (w0, b0) = &self.layers[0];
        let mut w = Array2::zeros((w0.nrows(), d));
        let mut b = b0.clone();
        for (k, &g) in columns.iter().enumerate() {
            let (mu, sigma) = match &self.input_scaler {
                Some((mean, scale)) => (mean[k], scale[k]),
                None => (0.0, 1.0),
            };
            // u_k = (x_g - mu) / sigma and x_g = x~_g s_g + m_g, so
            // u_k = x~_g (s_g / sigma) + (m_g - mu) / sigma.
            let (m, s) = (scaler.mean()[g], scaler.std()[g]);
            for r in 0..w0.nrows() {
                w[[r, g]] = w0[[r, k]] * (s / sigma);
                b[r] += w0[[r, k]] * ((m - mu) / sigma);
            }
        }
        let mut dense = vec![Dense::from_parts(w, b)];
        dense.extend(
            self.layers[1..]
                .iter()
                .map(|(w, b)| Dense::from_parts(w.clone(), b.clone())),
        );
        let net = Mlp::from_layers(dense, self.hidden, Activation::Identity);
        Classifier::from_net(net).map_err(|e: ClassifierError| ClassifierJsonError::Invalid {
            file: file.to_owned(),
            message: e.to_string(),
        })
    }

    /// The brought classifier for training on `x` (original units, the graph's column order):
    /// the shared scaler is fitted on all of `x` and rounded to the `f32` values the bundle
    /// stores, so the trainer and the bundle standardize alike.
    pub fn to_fixed(
        &self,
        graph: &CausalGraph,
        x: &Array2<f64>,
        file: &str,
    ) -> Result<FixedClassifier, ClassifierJsonError> {
        let invalid = |message: String| ClassifierJsonError::Invalid {
            file: file.to_owned(),
            message,
        };
        let fitted = Scaler::fit(x.view()).map_err(|e| invalid(e.to_string()))?;
        let f32_round = |a: &Array1<f64>| a.mapv(|v| f64::from(v as f32));
        let scaler = Scaler::from_parts(f32_round(fitted.mean()), f32_round(fitted.std()))
            .map_err(|e| invalid(e.to_string()))?;
        let classifier = self.to_classifier(graph, &scaler, file)?;
        Ok(FixedClassifier {
            classifier,
            scaler,
            names: graph.names(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Feature, FeatureKind};

    fn graph() -> CausalGraph {
        CausalGraph::new(vec![
            Feature::new("a", FeatureKind::Continuous, true, vec![]),
            Feature::new("b", FeatureKind::Continuous, true, vec![0]),
            Feature::new("c", FeatureKind::Continuous, false, vec![]),
        ])
        .unwrap()
    }

    const TANH_NET: &str = r#"{
        "format": "carma-classifier", "version": 1, "source": "test",
        "features": ["b", "a"],
        "input_scaler": {"mean": [10.0, -2.0], "scale": [4.0, 0.5]},
        "hidden_activation": "tanh",
        "layers": [
            {"weight": [[0.5, -1.0], [2.0, 0.25], [-0.3, 0.7]], "bias": [0.1, 0.0, -0.4]},
            {"weight": [[1.5, -0.5, 0.8]], "bias": [-0.2]}
        ]
    }"#;

    /// Folding the input scaler and the shared one into the first layer keeps the network's
    /// probabilities (in f64, to rounding), with its inputs reordered to the graph's and the
    /// unused feature given zero weights.
    #[test]
    fn folded_classifier_gives_the_networks_probabilities() {
        let net = ClassifierJson::parse(TANH_NET, "t.json").unwrap();
        let x = Array2::from_shape_fn((40, 3), |(i, j)| {
            let t = i as f64 * 0.37 + j as f64;
            [-2.0 + t.sin(), 10.0 + 4.0 * t.cos(), 100.0 * t][j]
        });
        let fixed = net.to_fixed(&graph(), &x, "t.json").unwrap();
        let p = fixed
            .classifier
            .prob(&fixed.scaler.transform(x.view()).unwrap());
        let inputs = Array2::from_shape_fn((40, 2), |(i, k)| x[[i, [1, 0][k]]]);
        let want = net.logits(&inputs).mapv(|t| Activation::Sigmoid.apply(t));
        for (a, b) in p.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        let w = fixed.classifier.net().layers()[0].weight().clone();
        assert!(w.column(2).iter().all(|&v| v == 0.0), "c is not an input");
        assert_eq!(fixed.classifier.net().hidden_activation(), Activation::Tanh);
    }

    #[test]
    fn unsupported_or_malformed_networks_are_refused_saying_what_is_supported() {
        let cases = [
            (
                TANH_NET.replace("\"tanh\"", "\"softplus\""),
                "hidden activation 'softplus'",
            ),
            (
                TANH_NET.replace(
                    "[[1.5, -0.5, 0.8]], \"bias\": [-0.2]",
                    "[[1.5, -0.5, 0.8], [1, 1, 1]], \"bias\": [-0.2, 0]",
                ),
                "ends in one logit",
            ),
            (
                TANH_NET.replace("[0.5, -1.0], ", "[0.5], "),
                "weight row 0 has 1 values, expected 2",
            ),
            (
                TANH_NET.replace("\"scale\": [4.0, 0.5]", "\"scale\": [0.0, 0.5]"),
                "expected a positive number",
            ),
            (
                TANH_NET.replace("\"version\": 1", "\"version\": 2"),
                "\"version\" is 2, this carma reads version 1",
            ),
            (
                TANH_NET.replace(
                    "\"features\": [\"b\", \"a\"]",
                    "\"features\": [\"b\", \"b\"]",
                ),
                "twice",
            ),
            (TANH_NET.replace("\"source\"", "\"extra\""), "unknown field"),
            ("[1, 2]".to_owned(), "not a classifier file"),
        ];
        for (text, want) in cases {
            let e = ClassifierJson::parse(&text, "t.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(
                e.starts_with("t.json: ") && e.contains("supported: "),
                "{e}"
            );
        }
        let net =
            ClassifierJson::parse(&TANH_NET.replace("\"b\", \"a\"", "\"b\", \"z\""), "t.json")
                .unwrap();
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f64);
        let e = net
            .to_fixed(&graph(), &x, "t.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "input 'z' is not a feature of the causal graph (its features are: a, b, c)"
            ),
            "{e}"
        );
    }

    /// The whole way: a tanh network brought as JSON, a pipeline trained around it, the bundle
    /// exported; the core's probabilities are the network's (f64, in the user's units) to f32
    /// rounding, and the bundle records the tanh hidden layers.
    #[test]
    fn a_brought_network_reaches_the_bundle_exactly() {
        use crate::pipeline::{NoProgress, PipelineConfig, train_on_table_with};
        use crate::scm::{Dataset, Scm};
        let dataset = Dataset::ChainLin;
        let table = crate::data::Table::from_sample(dataset, Scm::new(dataset).sample(600, 3));
        let graph = dataset.graph();
        // The first three of the four features: the fourth gets zero weights.
        let names = &graph.names()[..3];
        let text = format!(
            r#"{{"format": "carma-classifier", "version": 1, "features": {names:?},
                "input_scaler": {{"mean": [0.1, -0.2, 0.3], "scale": [1.5, 2.0, 0.8]}},
                "hidden_activation": "tanh",
                "layers": [
                    {{"weight": [[0.8, -0.4, 0.3], [0.2, 0.9, -0.6]], "bias": [0.05, -0.1]}},
                    {{"weight": [[1.7, -1.1]], "bias": [0.3]}}
                ]}}"#
        );
        let net = ClassifierJson::parse(&text, "net.json").unwrap();
        let fixed = net.to_fixed(&graph, &table.x, "net.json").unwrap();
        let trained = train_on_table_with(
            &table,
            &graph,
            "chain",
            Some(&fixed),
            &PipelineConfig::tiny(dataset),
            &mut NoProgress,
        )
        .unwrap();
        let bytes = trained.to_bytes().unwrap();
        let bundle = carma_core::Bundle::new(&bytes).unwrap();
        assert_eq!(
            bundle.wire().classifier.hidden,
            carma_core::format::Activation::Tanh
        );
        let rows = table.x.slice(ndarray::s![..200, ..]).to_owned();
        let rows32 = rows.mapv(|v| f64::from(v as f32));
        let inputs = rows32.slice(ndarray::s![.., ..3]).to_owned();
        let want = net.logits(&inputs).mapv(|t| Activation::Sigmoid.apply(t));
        let mut scratch = vec![0.0f32; bundle.scratch_len()];
        let mut x_cf = vec![0.0f32; graph.len()];
        let mut worst = 0.0f64;
        for (r, row) in rows32.rows().into_iter().enumerate() {
            let x: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            let rec = bundle
                .recommend(&x, carma_core::FeatureSet::EMPTY, &mut x_cf, &mut scratch)
                .unwrap();
            worst = worst.max((f64::from(rec.prob_before) - want[r]).abs());
        }
        assert!(worst < 1e-6, "largest probability difference {worst:e}");
    }
}
