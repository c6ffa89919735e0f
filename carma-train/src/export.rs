//! Export of trained parts into the carma-core bundle format.
//!
//! The trainer describes a model with plain owned types ([`BundleSpec`] and
//! its parts, all `f32`, in the wire layouts of `carma_core::format`) and
//! [`BundleSpec::to_bytes`] does everything the device should not have to do:
//! it validates every shape, checks that each flow layer is autoregressive
//! with respect to the topological order, sorts the hidden units of each flow
//! hyper-network by when they become computable during inversion, stores that
//! schedule (`FlowWire::ready`), and frames the bundle. The same spec always
//! gives the same bytes.

use carma_core::format::HEADER_LEN;
use carma_core::format::{
    Activation, BundleWire, CarmaWire, FeaturesWire, FlowWire, GridWire, KIND_CATEGORICAL,
    KIND_INTEGER, KIND_PLAIN, MAX_FEATURES, MetaWire, MetricsWire, MlpWire, ScalerWire,
    TRAILER_LEN, weights_to_wire,
};

/// The program that writes bundles, stored in every bundle's metadata.
pub const TRAINER: &str = concat!("carma-train ", env!("CARGO_PKG_VERSION"));

/// The most stacked flow layers a bundle may hold: the core's limit (`carma_core::format::MAX_LAYERS`).
pub const MAX_FLOW_LAYERS: usize = carma_core::format::MAX_LAYERS;

/// Largest layer width the wire format can store (`dims` are `u16`).
pub const MAX_WIDTH: usize = u16::MAX as usize;

/// A dense multilayer perceptron, `f32`, in the `MlpWire` layout.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSpec {
    /// Layer widths: input, hidden..., output. At least two.
    pub dims: Vec<usize>,
    /// Activation after every hidden layer.
    pub hidden: Activation,
    /// Activation after the output layer.
    pub output: Activation,
    /// For each layer: `W` (`out x in`, row-major), then `b`. (The bundle
    /// stores `W` column-major; export reorders it.)
    pub params: Vec<f32>,
}

/// A causal normalizing flow: stacked MADE affine layers (docs/MATH.md section 4, causal flow).
///
/// Every layer's hyper-network is an MLP over `dims` with ELU hidden
/// activations and no output activation; output row `2i` is the shift of
/// feature `i`, row `2i + 1` its unconstrained log-scale (soft-clipped by the
/// core).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpec {
    /// Hyper-network widths, shared by every layer: `D`, hidden..., `2D`.
    pub dims: Vec<usize>,
    /// Each layer's hyper-network params in the `MlpWire` layout, MADE masks
    /// already multiplied in, hidden units in any order. Layer 0 is applied
    /// first in the data-to-latent direction.
    pub layers: Vec<Vec<f32>>,
}

/// The CARMA mask and action networks (docs/MATH.md section 5, CARMA training).
#[derive(Debug, Clone, PartialEq)]
pub struct CarmaSpec {
    /// `D -> ... -> 2D` logits.
    pub mask_net: MlpSpec,
    /// `[z, m]` (`2D`) `-> ... -> D` latent shifts.
    pub action_net: MlpSpec,
    /// Lower and upper bound of the latent shift clamp.
    pub clamp: (f32, f32),
    /// `D` cost ranges (max - min of the standardized training data).
    pub cost_range: Vec<f32>,
    /// `D` preference weights (1 by default).
    pub weights: Vec<f32>,
}

/// A feature whose values lie on a grid (bundle format version 4).
#[derive(Debug, Clone, PartialEq)]
pub enum GridFeature {
    /// Multiples of `step`.
    Integer {
        /// The step (positive).
        step: f32,
    },
    /// One of `levels`, coded `0..levels.len()`.
    Categorical {
        /// The level names, in code order.
        levels: Vec<String>,
    },
}

/// A whole model, ready to be written as a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleSpec {
    /// The dataset the model was trained on.
    pub dataset: String,
    /// The training seed.
    pub seed: u64,
    /// Measured quality.
    pub metrics: MetricsWire,
    /// `D` feature names, non-empty, without `'\n'`.
    pub names: Vec<String>,
    /// `D` flags: the feature is 0/1.
    pub binary: Vec<bool>,
    /// `D` flags: the feature may be intervened on.
    pub actionable: Vec<bool>,
    /// `D` lists: `parents[i]` holds the parents of feature `i`.
    pub parents: Vec<Vec<usize>>,
    /// A topological order of the graph (parents before children).
    pub order: Vec<usize>,
    /// `D` lower bounds of a recommendation (original units), or empty for
    /// none (`-f32::MAX`: a bundle imported without its training data).
    pub min: Vec<f32>,
    /// `D` upper bounds, or empty for none (`f32::MAX`).
    pub max: Vec<f32>,
    /// `D` directions, or empty for "any" everywhere.
    pub direction: Vec<carma_core::Direction>,
    /// `D` entries, `None` for a continuous or binary feature; or empty when
    /// no feature is on a grid (the bundle is then format version 3).
    pub grid: Vec<Option<GridFeature>>,
    /// `D` scaler means.
    pub mean: Vec<f32>,
    /// `D` scaler standard deviations (positive).
    pub std: Vec<f32>,
    /// The causal normalizing flow.
    pub flow: FlowSpec,
    /// The classifier: `D -> ... -> 1`, sigmoid output.
    pub classifier: MlpSpec,
    /// The CARMA networks, if trained.
    pub carma: Option<CarmaSpec>,
}

/// Why a [`BundleSpec`] cannot be written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// There are no features, or more than a bundle can hold.
    #[error("a bundle needs between 1 and {max} features, got {found}")]
    FeatureCount {
        /// Number of features given.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// A per-feature (or other) list has the wrong length.
    #[error("{what}: expected {expected} entries, found {found}")]
    Length {
        /// Which list.
        what: String,
        /// Required length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A feature name is empty or contains a newline.
    #[error("feature {index}: name {name:?} must be non-empty and contain no newline")]
    BadName {
        /// Feature index.
        index: usize,
        /// The offending name.
        name: String,
    },
    /// A value is NaN or infinite.
    #[error("{what}: value at index {index} is not finite")]
    NonFinite {
        /// Which array.
        what: String,
        /// Position in the array.
        index: usize,
    },
    /// A value is outside its allowed range.
    #[error("{what}: {reason}")]
    OutOfRange {
        /// Which value.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The parent lists do not describe a graph over the features.
    #[error("feature {feature}: invalid parent {parent} ({reason})")]
    BadParent {
        /// The child.
        feature: usize,
        /// The offending parent index.
        parent: usize,
        /// Out of range, self-loop or duplicate.
        reason: &'static str,
    },
    /// `order` is not a permutation of the feature indices.
    #[error("order is not a permutation of 0..{n_features}")]
    OrderNotPermutation {
        /// Number of features.
        n_features: usize,
    },
    /// `order` puts a child before one of its parents (or the graph has a cycle).
    #[error("order is not topological: feature {feature} comes before its parent {parent}")]
    OrderNotTopological {
        /// The child.
        feature: usize,
        /// The parent placed after it.
        parent: usize,
    },
    /// An MLP's layer widths are unusable.
    #[error("{what}: bad layer widths {dims:?} ({reason})")]
    Dims {
        /// Which network.
        what: String,
        /// The widths given.
        dims: Vec<usize>,
        /// What is wrong with them.
        reason: String,
    },
    /// An MLP's parameter vector does not match its widths.
    #[error("{what}: widths {dims:?} need {expected} parameters, found {found}")]
    ParamCount {
        /// Which network.
        what: String,
        /// The widths.
        dims: Vec<usize>,
        /// Required count.
        expected: usize,
        /// Actual count.
        found: usize,
    },
    /// A flow layer's shift or log-scale of a feature depends on a feature at
    /// the same or a later position of the topological order: the MADE masks
    /// do not follow the causal graph, and the flow cannot be inverted.
    #[error(
        "flow layer {layer}: outputs of feature {feature} (position {position} of the order) \
         depend on a unit that needs the first {needs} features of the order; the MADE masks \
         do not follow the order"
    )]
    NotAutoregressive {
        /// Flow layer.
        layer: usize,
        /// Feature whose outputs are wrong.
        feature: usize,
        /// Its position in the topological order.
        position: usize,
        /// How many leading features of the order the offending unit needs.
        needs: usize,
    },
    /// postcard could not serialize the bundle body.
    #[error("serializing the bundle failed: {0}")]
    Serialize(String),
    /// The core's encoder refused the bundle.
    #[error("encoding the bundle failed: {0}")]
    Encode(carma_core::error::Error),
}

impl BundleSpec {
    /// Number of features `D`.
    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    /// Validates the spec and writes the framed bundle (carma-core wire format).
    ///
    /// Flow hyper-network hidden units are reordered (the function each
    /// layer computes is unchanged) and the inversion schedule is computed.
    /// Deterministic: the same spec always gives the same bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ExportError> {
        let d = self.n_features();
        if d == 0 || d > MAX_FEATURES {
            return Err(ExportError::FeatureCount {
                found: d,
                max: MAX_FEATURES,
            });
        }
        for (index, name) in self.names.iter().enumerate() {
            if name.is_empty() || name.contains('\n') {
                return Err(ExportError::BadName {
                    index,
                    name: name.clone(),
                });
            }
        }
        check_len("binary", d, self.binary.len())?;
        check_len("actionable", d, self.actionable.len())?;
        check_len("parents", d, self.parents.len())?;
        check_len("order", d, self.order.len())?;
        check_len("mean", d, self.mean.len())?;
        check_len("std", d, self.std.len())?;
        check_finite("mean", &self.mean)?;
        check_finite("std", &self.std)?;
        if let Some(j) = self.std.iter().position(|&s| s <= 0.0) {
            return Err(ExportError::OutOfRange {
                what: format!("std of feature {j}"),
                reason: format!("must be positive, is {}", self.std[j]),
            });
        }
        let parents = parent_matrix(&self.parents)?;
        let position = check_order(&self.order, &self.parents)?;

        let flow = self.export_flow(&position)?;

        check_mlp("classifier", &self.classifier, d, 1)?;
        if self.classifier.output != Activation::Sigmoid {
            return Err(ExportError::OutOfRange {
                what: "classifier output activation".into(),
                reason: format!("must be Sigmoid, is {:?}", self.classifier.output),
            });
        }
        if let Some(c) = &self.carma {
            check_carma(c, d)?;
        }

        let names = self.names.join("\n");
        let binary: Vec<u8> = self.binary.iter().map(|&b| u8::from(b)).collect();
        let actionable: Vec<u8> = self.actionable.iter().map(|&b| u8::from(b)).collect();
        // `order` entries fit in a byte: d <= MAX_FEATURES = 64.
        let order: Vec<u8> = self.order.iter().map(|&i| i as u8).collect();
        let or_all = |v: &[f32], fill: f32| {
            if v.is_empty() {
                vec![fill; d]
            } else {
                v.to_vec()
            }
        };
        let (min, max) = (or_all(&self.min, -f32::MAX), or_all(&self.max, f32::MAX));
        check_len("min", d, min.len())?;
        check_len("max", d, max.len())?;
        check_finite("min", &min)?;
        check_finite("max", &max)?;
        if let Some(j) = (0..d).find(|&j| min[j] > max[j]) {
            return Err(ExportError::OutOfRange {
                what: format!("bounds of feature {j}"),
                reason: format!("min {} is above max {}", min[j], max[j]),
            });
        }
        let direction: Vec<u8> = if self.direction.is_empty() {
            vec![0; d]
        } else {
            check_len("direction", d, self.direction.len())?;
            self.direction.iter().map(|v| v.to_byte()).collect()
        };
        let grid = self.grid_bytes(d, &min, &max)?;
        let (min, max) = (f32_bytes(&min), f32_bytes(&max));
        let mean = f32_bytes(&self.mean);
        let std = f32_bytes(&self.std);
        let flow_dims = u16_bytes(&self.flow.dims);
        let clf = OwnedMlp::new(&self.classifier);
        let carma = self.carma.as_ref().map(|c| {
            (
                OwnedMlp::new(&c.mask_net),
                OwnedMlp::new(&c.action_net),
                f32_bytes(&c.cost_range),
                f32_bytes(&c.weights),
            )
        });

        let wire = BundleWire {
            meta: MetaWire {
                dataset: &self.dataset,
                seed: self.seed,
                trainer: TRAINER,
                metrics: self.metrics,
            },
            features: FeaturesWire {
                names: &names,
                binary: &binary,
                actionable: &actionable,
                parents: &parents,
                order: &order,
                min: &min,
                max: &max,
                direction: &direction,
            },
            scaler: ScalerWire {
                mean: &mean,
                std: &std,
            },
            flow: FlowWire {
                // Checked against MAX_FLOW_LAYERS in export_flow.
                layers: self.flow.layers.len() as u8,
                dims: &flow_dims,
                params: &flow.params,
                ready: &flow.ready,
            },
            classifier: clf.wire(&self.classifier),
            carma: match (&self.carma, &carma) {
                (Some(c), Some((mask, action, range, weights))) => Some(CarmaWire {
                    mask_net: mask.wire(&c.mask_net),
                    action_net: action.wire(&c.action_net),
                    clamp_lo: c.clamp.0,
                    clamp_hi: c.clamp.1,
                    cost_range: range,
                    weights,
                }),
                _ => None,
            },
            grid: grid
                .as_ref()
                .map(|(kind, step, n_levels, levels)| GridWire {
                    kind,
                    step,
                    n_levels,
                    levels,
                }),
        };

        let size = |r: Result<Vec<u8>, postcard::Error>| {
            r.map(|v| v.len())
                .map_err(|e| ExportError::Serialize(e.to_string()))
        };
        let body = size(postcard::to_allocvec(&wire))?
            + match &wire.grid {
                Some(g) => size(postcard::to_allocvec(g))?,
                None => 0,
            };
        let mut out = vec![0u8; HEADER_LEN + body + TRAILER_LEN];
        let n = wire.encode(&mut out).map_err(ExportError::Encode)?;
        out.truncate(n);
        Ok(out)
    }

    /// The grid section's bytes (kinds, steps, level counts, level names),
    /// or `None` when no feature is on a grid. A categorical feature's
    /// bounds must be codes within its levels.
    #[allow(clippy::type_complexity)]
    fn grid_bytes(
        &self,
        d: usize,
        min: &[f32],
        max: &[f32],
    ) -> Result<Option<(Vec<u8>, Vec<u8>, Vec<u8>, String)>, ExportError> {
        if self.grid.iter().all(Option::is_none) {
            return Ok(None);
        }
        check_len("grid", d, self.grid.len())?;
        let (mut kind, mut step, mut n_levels) =
            (vec![KIND_PLAIN; d], vec![0.0f32; d], vec![0u8; d]);
        let mut names: Vec<&str> = Vec::new();
        for (j, g) in self.grid.iter().enumerate() {
            let bad = |reason: String| ExportError::OutOfRange {
                what: format!("grid of feature {j}"),
                reason,
            };
            match g {
                None => {}
                Some(_) if self.binary[j] => {
                    return Err(bad("a binary feature is not on a grid".into()));
                }
                Some(GridFeature::Integer { step: s }) => {
                    if !(s.is_finite() && *s > 0.0) {
                        return Err(bad(format!("step {s} is not positive")));
                    }
                    kind[j] = KIND_INTEGER;
                    step[j] = *s;
                }
                Some(GridFeature::Categorical { levels }) => {
                    let n = u8::try_from(levels.len())
                        .ok()
                        .filter(|&n| n >= 2)
                        .ok_or_else(|| bad(format!("{} levels (2 to 255)", levels.len())))?;
                    if levels.iter().any(|l| l.is_empty() || l.contains('\n')) {
                        return Err(bad("a level name is empty or spans lines".into()));
                    }
                    let last = f32::from(n - 1);
                    if !(min[j] >= 0.0
                        && max[j] <= last
                        && min[j].fract() == 0.0
                        && max[j].fract() == 0.0)
                    {
                        return Err(bad(format!(
                            "bounds {}..{} are not codes in 0..={last}",
                            min[j], max[j]
                        )));
                    }
                    kind[j] = KIND_CATEGORICAL;
                    step[j] = 1.0;
                    n_levels[j] = n;
                    names.extend(levels.iter().map(String::as_str));
                }
            }
        }
        Ok(Some((kind, f32_bytes(&step), n_levels, names.join("\n"))))
    }

    /// Validates the flow, sorts its hidden units and computes the schedule.
    fn export_flow(&self, position: &[usize]) -> Result<ExportedFlow, ExportError> {
        let d = self.n_features();
        let dims = &self.flow.dims;
        let n_layers = self.flow.layers.len();
        if n_layers == 0 || n_layers > MAX_FLOW_LAYERS {
            return Err(ExportError::OutOfRange {
                what: "flow layers".into(),
                reason: format!("need between 1 and {MAX_FLOW_LAYERS}, got {n_layers}"),
            });
        }
        let mut params = Vec::new();
        let mut ready = Vec::new();
        for (layer, p) in self.flow.layers.iter().enumerate() {
            let what = format!("flow layer {layer}");
            check_dims(&what, dims, d, 2 * d)?;
            check_params(&what, dims, p)?;
            let mut p = p.clone();
            let sched = schedule_layer(dims, &mut p, &self.order, position, layer)?;
            params.extend(f32_bytes(&wire_order(dims, &p)));
            ready.extend(sched.iter().flat_map(|v| v.to_le_bytes()));
        }
        Ok(ExportedFlow { params, ready })
    }
}

/// A flow layer after sorting, as wire bytes.
struct ExportedFlow {
    params: Vec<u8>,
    ready: Vec<u8>,
}

/// The byte arrays an `MlpWire` borrows.
struct OwnedMlp {
    dims: Vec<u8>,
    params: Vec<u8>,
}

impl OwnedMlp {
    fn new(m: &MlpSpec) -> Self {
        Self {
            dims: u16_bytes(&m.dims),
            params: f32_bytes(&wire_order(&m.dims, &m.params)),
        }
    }

    fn wire(&self, m: &MlpSpec) -> MlpWire<'_> {
        MlpWire {
            dims: &self.dims,
            hidden: m.hidden,
            output: m.output,
            params: &self.params,
        }
    }
}

/// An MLP's parameters (each `W` row-major, as the specs hold them) in the
/// wire order: each `W` column-major (`carma_core::format::weight_index`),
/// so that the core updates a block of units with contiguous loads. The
/// shapes were checked before.
fn wire_order(dims: &[usize], params: &[f32]) -> Vec<f32> {
    let mut out = params.to_vec();
    for ((w_at, b_at), pair) in layer_offsets(dims).into_iter().zip(dims.windows(2)) {
        let written = weights_to_wire(pair[0], pair[1], &params[w_at..b_at], &mut out[w_at..b_at]);
        debug_assert!(written, "layer shapes were checked");
    }
    out
}

/// Offsets of `W_l` and `b_l` in an MLP parameter vector, for each layer `l`.
fn layer_offsets(dims: &[usize]) -> Vec<(usize, usize)> {
    let mut offsets = Vec::with_capacity(dims.len().saturating_sub(1));
    let mut at = 0;
    for w in dims.windows(2) {
        let (n_in, n_out) = (w[0], w[1]);
        offsets.push((at, at + n_out * n_in));
        at += n_out * n_in + n_out;
    }
    offsets
}

/// Number of parameters of an MLP with widths `dims`.
fn param_count(dims: &[usize]) -> usize {
    dims.windows(2).map(|w| w[1] * w[0] + w[1]).sum()
}

/// Sorts the hidden units of one flow hyper-network by inversion step and
/// returns the `ready` schedule (`D + 1` entries per hidden layer).
///
/// Input feature `j` is known from step `position[j] + 1` on (once the first
/// `position[j] + 1` features of the order are inverted). A unit's step is the
/// largest step of the units it has a nonzero weight from (0 if none). Rows of
/// `W_l`, `b_l` and columns of `W_{l+1}` are permuted together, with a stable
/// sort, so the function is unchanged and the result deterministic. Then the
/// outputs of the feature at position `t` may use only units of step `<= t`.
fn schedule_layer(
    dims: &[usize],
    params: &mut [f32],
    order: &[usize],
    position: &[usize],
    layer: usize,
) -> Result<Vec<u16>, ExportError> {
    let d = order.len();
    let offsets = layer_offsets(dims);
    let n_weights = dims.len() - 1;
    let mut prev_step: Vec<usize> = position.iter().map(|&p| p + 1).collect();
    let mut ready = Vec::with_capacity((n_weights - 1) * (d + 1));
    for l in 0..n_weights - 1 {
        let (n_in, n_out) = (dims[l], dims[l + 1]);
        let (w_at, b_at) = offsets[l];
        let step: Vec<usize> = (0..n_out)
            .map(|u| {
                let row = &params[w_at + u * n_in..w_at + (u + 1) * n_in];
                row.iter()
                    .zip(&prev_step)
                    .filter(|(w, _)| **w != 0.0)
                    .map(|(_, &s)| s)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut perm: Vec<usize> = (0..n_out).collect();
        perm.sort_by_key(|&u| step[u]); // stable
        permute_rows(&mut params[w_at..b_at], n_in, &perm);
        permute_rows(&mut params[b_at..b_at + n_out], 1, &perm);
        let (next_w, _) = offsets[l + 1];
        let n_next = dims[l + 2];
        permute_columns(&mut params[next_w..next_w + n_next * n_out], n_out, &perm);
        let sorted: Vec<usize> = perm.iter().map(|&u| step[u]).collect();
        for t in 0..=d {
            // Widths are at most MAX_WIDTH (checked), so the count fits.
            ready.push(sorted.iter().take_while(|&&s| s <= t).count() as u16);
        }
        prev_step = sorted;
    }
    let (w_at, _) = offsets[n_weights - 1];
    let n_in = dims[n_weights - 1];
    for (t, &feature) in order.iter().enumerate() {
        for row in [2 * feature, 2 * feature + 1] {
            let w = &params[w_at + row * n_in..w_at + (row + 1) * n_in];
            if let Some(needs) = w
                .iter()
                .zip(&prev_step)
                .filter(|(w, s)| **w != 0.0 && **s > t)
                .map(|(_, &s)| s)
                .max()
            {
                return Err(ExportError::NotAutoregressive {
                    layer,
                    feature,
                    position: t,
                    needs,
                });
            }
        }
    }
    Ok(ready)
}

/// Reorders the rows of a row-major matrix: new row `r` is old row `perm[r]`.
fn permute_rows(m: &mut [f32], n_cols: usize, perm: &[usize]) {
    let old = m.to_vec();
    for (r, &src) in perm.iter().enumerate() {
        m[r * n_cols..(r + 1) * n_cols].copy_from_slice(&old[src * n_cols..(src + 1) * n_cols]);
    }
}

/// Reorders the columns of a row-major matrix: new column `c` is old column `perm[c]`.
fn permute_columns(m: &mut [f32], n_cols: usize, perm: &[usize]) {
    for row in m.chunks_exact_mut(n_cols) {
        let old = row.to_vec();
        for (c, &src) in perm.iter().enumerate() {
            row[c] = old[src];
        }
    }
}

fn check_len(what: &str, expected: usize, found: usize) -> Result<(), ExportError> {
    if expected == found {
        Ok(())
    } else {
        Err(ExportError::Length {
            what: what.into(),
            expected,
            found,
        })
    }
}

fn check_finite(what: &str, v: &[f32]) -> Result<(), ExportError> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(ExportError::NonFinite {
            what: what.into(),
            index,
        }),
    }
}

/// Widths: at least two, each in `1..=MAX_WIDTH`, with the given ends.
fn check_dims(what: &str, dims: &[usize], n_in: usize, n_out: usize) -> Result<(), ExportError> {
    let bad = |reason: String| ExportError::Dims {
        what: what.into(),
        dims: dims.to_vec(),
        reason,
    };
    if dims.len() < 2 {
        return Err(bad("need at least an input and an output width".into()));
    }
    let layers = dims.len() - 1;
    if layers > carma_core::format::MAX_LAYERS {
        return Err(bad(format!(
            "{layers} weight layers, the core reads at most {}",
            carma_core::format::MAX_LAYERS
        )));
    }
    if let Some(&w) = dims.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
        return Err(bad(format!("width {w} is not in 1..={MAX_WIDTH}")));
    }
    if dims[0] != n_in {
        return Err(bad(format!("input width must be {n_in}")));
    }
    if dims[dims.len() - 1] != n_out {
        return Err(bad(format!("output width must be {n_out}")));
    }
    Ok(())
}

fn check_params(what: &str, dims: &[usize], params: &[f32]) -> Result<(), ExportError> {
    let expected = param_count(dims);
    if params.len() != expected {
        return Err(ExportError::ParamCount {
            what: what.into(),
            dims: dims.to_vec(),
            expected,
            found: params.len(),
        });
    }
    check_finite(what, params)
}

fn check_mlp(what: &str, m: &MlpSpec, n_in: usize, n_out: usize) -> Result<(), ExportError> {
    check_dims(what, &m.dims, n_in, n_out)?;
    check_params(what, &m.dims, &m.params)
}

fn check_carma(c: &CarmaSpec, d: usize) -> Result<(), ExportError> {
    check_mlp("CARMA mask network", &c.mask_net, d, 2 * d)?;
    check_mlp("CARMA action network", &c.action_net, 2 * d, d)?;
    let (lo, hi) = c.clamp;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(ExportError::OutOfRange {
            what: "CARMA latent shift clamp".into(),
            reason: format!("need finite lo < hi, got ({lo}, {hi})"),
        });
    }
    for (what, v) in [
        ("CARMA cost_range", &c.cost_range),
        ("CARMA weights", &c.weights),
    ] {
        check_len(what, d, v.len())?;
        check_finite(what, v)?;
        if let Some(j) = v.iter().position(|&x| x <= 0.0) {
            return Err(ExportError::OutOfRange {
                what: format!("{what} of feature {j}"),
                reason: format!("must be positive, is {}", v[j]),
            });
        }
    }
    Ok(())
}

/// The `D * D` parent matrix of the wire format, after validating the lists.
fn parent_matrix(parents: &[Vec<usize>]) -> Result<Vec<u8>, ExportError> {
    let d = parents.len();
    let mut m = vec![0u8; d * d];
    for (i, ps) in parents.iter().enumerate() {
        for &j in ps {
            let reason = if j >= d {
                "out of range"
            } else if j == i {
                "a feature cannot be its own parent"
            } else if m[i * d + j] != 0 {
                "listed twice"
            } else {
                m[i * d + j] = 1;
                continue;
            };
            return Err(ExportError::BadParent {
                feature: i,
                parent: j,
                reason,
            });
        }
    }
    Ok(m)
}

/// Checks that `order` is a topological permutation; returns each feature's position.
fn check_order(order: &[usize], parents: &[Vec<usize>]) -> Result<Vec<usize>, ExportError> {
    let d = parents.len();
    let mut position = vec![usize::MAX; d];
    for (t, &i) in order.iter().enumerate() {
        if i >= d || position[i] != usize::MAX {
            return Err(ExportError::OrderNotPermutation { n_features: d });
        }
        position[i] = t;
    }
    for (i, ps) in parents.iter().enumerate() {
        if let Some(&j) = ps.iter().find(|&&j| position[j] > position[i]) {
            return Err(ExportError::OrderNotTopological {
                feature: i,
                parent: j,
            });
        }
    }
    Ok(position)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Widths as `u16` LE; callers have checked them against [`MAX_WIDTH`].
fn u16_bytes(v: &[usize]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use carma_core::format::weight_index;
    use carma_core::le::{F32s, U16s};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Evaluates a flow hyper-network (ELU hidden, identity output) in f64.
    /// Wire-order parameters (each `W` column-major) back in the specs' row-major order.
    fn from_wire_order(dims: &[usize], wire: &[f32]) -> Vec<f32> {
        let mut out = wire.to_vec();
        for ((w_at, _), pair) in layer_offsets(dims).into_iter().zip(dims.windows(2)) {
            let (n_in, n_out) = (pair[0], pair[1]);
            for row in 0..n_out {
                for col in 0..n_in {
                    out[w_at + row * n_in + col] = wire[w_at + weight_index(n_out, row, col)];
                }
            }
        }
        out
    }

    fn eval_hypernet(dims: &[usize], params: &[f32], x: &[f64]) -> Vec<f64> {
        let offsets = layer_offsets(dims);
        let mut a = x.to_vec();
        for (l, &(w_at, b_at)) in offsets.iter().enumerate() {
            let (n_in, n_out) = (dims[l], dims[l + 1]);
            let mut y: Vec<f64> = (0..n_out)
                .map(|r| {
                    let row = &params[w_at + r * n_in..w_at + (r + 1) * n_in];
                    let dot: f64 = row.iter().zip(&a).map(|(&w, &v)| f64::from(w) * v).sum();
                    dot + f64::from(params[b_at + r])
                })
                .collect();
            if l + 1 < offsets.len() {
                y.iter_mut()
                    .for_each(|v| *v = if *v > 0.0 { *v } else { v.exp_m1() });
            }
            a = y;
        }
        a
    }

    /// A random MADE hyper-network autoregressive w.r.t. `order`: unit `u` of
    /// each hidden layer gets a connectivity level `m(u)` in `-1..d-1`
    /// (`-1`: no inputs at all) and sees units/inputs of level `<= m(u)`; the
    /// outputs of the feature at position `t` see units of level `< t`.
    fn random_made(dims: &[usize], order: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let d = order.len();
        let mut position = vec![0; d];
        for (t, &i) in order.iter().enumerate() {
            position[i] = t;
        }
        let mut params = vec![0.0f32; param_count(dims)];
        let offsets = layer_offsets(dims);
        let mut prev_level: Vec<i64> = position.iter().map(|&p| p as i64).collect();
        for (l, &(w_at, b_at)) in offsets.iter().enumerate() {
            let (n_in, n_out) = (dims[l], dims[l + 1]);
            let last = l + 1 == offsets.len();
            let level: Vec<i64> = (0..n_out)
                .map(|r| {
                    if last {
                        position[r / 2] as i64 - 1
                    } else {
                        rng.random_range(-1..d as i64 - 1)
                    }
                })
                .collect();
            for r in 0..n_out {
                for c in 0..n_in {
                    let allowed = if l == 0 {
                        prev_level[c] <= level[r] && level[r] >= 0
                    } else {
                        prev_level[c] <= level[r]
                    };
                    if allowed {
                        params[w_at + r * n_in + c] = rng.random_range(-1.0..1.0);
                    }
                }
                params[b_at + r] = rng.random_range(-0.5..0.5);
            }
            prev_level = level;
        }
        params
    }

    fn positions(order: &[usize]) -> Vec<usize> {
        let mut p = vec![0; order.len()];
        for (t, &i) in order.iter().enumerate() {
            p[i] = t;
        }
        p
    }

    /// A 4-feature spec with a two-layer flow whose hyper-networks have two
    /// hidden layers, autoregressive w.r.t. `order`.
    fn spec_with(order: Vec<usize>, parents: Vec<Vec<usize>>, seed: u64) -> BundleSpec {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dims = vec![4, 6, 5, 8];
        let layers = vec![
            random_made(&dims, &order, &mut rng),
            random_made(&dims, &order, &mut rng),
        ];
        BundleSpec {
            min: Vec::new(),
            max: Vec::new(),
            direction: Vec::new(),
            grid: Vec::new(),
            dataset: "triangle-test".into(),
            seed,
            metrics: MetricsWire::default(),
            names: ["x_s", "x_1", "x_2", "x_3"].map(String::from).to_vec(),
            binary: vec![true, false, false, false],
            actionable: vec![false, true, true, true],
            parents,
            order,
            mean: vec![0.5, 0.1, -0.2, 0.3],
            std: vec![0.5, 2.0, 2.3, 2.1],
            flow: FlowSpec { dims, layers },
            classifier: MlpSpec {
                dims: vec![4, 1],
                hidden: Activation::Relu,
                output: Activation::Sigmoid,
                params: vec![0.1, 0.2, -0.3, 0.4, 0.05],
            },
            carma: None,
        }
    }

    /// Triangle graph 1<-0, 2<-1, 3<-{0,1,2}.
    fn triangle_spec(seed: u64) -> BundleSpec {
        spec_with(
            vec![0, 1, 2, 3],
            vec![vec![], vec![0], vec![1], vec![0, 1, 2]],
            seed,
        )
    }

    #[test]
    fn sorting_hidden_units_leaves_the_hypernetwork_function_unchanged() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for order in [vec![0, 1, 2, 3], vec![2, 0, 3, 1]] {
            let dims = [4, 9, 7, 8];
            let original = random_made(&dims, &order, &mut rng);
            let mut sorted = original.clone();
            let ready = schedule_layer(&dims, &mut sorted, &order, &positions(&order), 0).unwrap();
            assert_ne!(original, sorted, "the test network should need reordering");
            for _ in 0..20 {
                let x: Vec<f64> = (0..4).map(|_| rng.random_range(-3.0..3.0)).collect();
                let before = eval_hypernet(&dims, &original, &x);
                let after = eval_hypernet(&dims, &sorted, &x);
                for (a, b) in before.iter().zip(&after) {
                    assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{a} vs {b}");
                }
            }
            // Schedules: non-decreasing, complete at t = D.
            assert_eq!(ready.len(), 2 * 5);
            for (h, chunk) in ready.chunks(5).enumerate() {
                assert!(chunk.windows(2).all(|w| w[0] <= w[1]));
                assert_eq!(usize::from(chunk[4]), dims[h + 1]);
            }
        }
    }

    #[test]
    fn schedule_of_a_hand_built_network_is_exact() {
        // Graph 0<-2, 1<-0; order [2, 0, 1]: input 2 is known from step 1,
        // input 0 from step 2, input 1 from step 3.
        let order = [2, 0, 1];
        let dims = [3, 4, 6];
        #[rustfmt::skip]
        let w1 = [
            1.0, 0.0, 0.0, // unit 0: input 0 -> step 2
            0.0, 0.0, 0.0, // unit 1: nothing -> step 0
            0.0, 0.0, 2.0, // unit 2: input 2 -> step 1
            3.0, 0.0, 4.0, // unit 3: inputs 0, 2 -> step 2
        ];
        let b1 = [0.1, 0.2, 0.3, 0.4];
        #[rustfmt::skip]
        let w2 = [
            0.0, 5.0, 6.0, 0.0, // feature 0 (position 1): units 1, 2
            0.0, 7.0, 0.0, 0.0,
            8.0, 0.0, 9.0, 10.0, // feature 1 (position 2): units 0, 2, 3
            11.0, 12.0, 0.0, 13.0,
            0.0, 14.0, 0.0, 0.0, // feature 2 (position 0): unit 1 only
            0.0, 0.0, 0.0, 0.0,
        ];
        let b2 = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0];
        let mut params: Vec<f32> = [&w1[..], &b1, &w2, &b2].concat();
        let ready = schedule_layer(&dims, &mut params, &order, &positions(&order), 0).unwrap();
        // Steps [2, 0, 1, 2] sorted stably: units [1, 2, 0, 3].
        assert_eq!(ready, vec![1, 2, 4, 4]);
        #[rustfmt::skip]
        let w1_sorted = [
            0.0, 0.0, 0.0,
            0.0, 0.0, 2.0,
            1.0, 0.0, 0.0,
            3.0, 0.0, 4.0,
        ];
        #[rustfmt::skip]
        let w2_sorted = [
            5.0, 6.0, 0.0, 0.0,
            7.0, 0.0, 0.0, 0.0,
            0.0, 9.0, 8.0, 10.0,
            12.0, 0.0, 11.0, 13.0,
            14.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        let expected: Vec<f32> = [&w1_sorted[..], &[0.2, 0.3, 0.1, 0.4], &w2_sorted, &b2].concat();
        assert_eq!(params, expected);

        // Feature 2 (position 0) may not use unit 2 (step 1).
        let mut bad: Vec<f32> = [&w1[..], &b1, &w2, &b2].concat();
        let (w2_at, _) = layer_offsets(&dims)[1];
        bad[w2_at + 5 * 4 + 2] = 0.5;
        let err = schedule_layer(&dims, &mut bad, &order, &positions(&order), 3).unwrap_err();
        assert_eq!(
            err,
            ExportError::NotAutoregressive {
                layer: 3,
                feature: 2,
                position: 0,
                needs: 1
            }
        );
    }

    #[test]
    fn schedule_without_hidden_layers_checks_inputs_directly() {
        let order = [1, 0];
        let dims = [2, 4];
        // Feature 0 (position 1) uses input 1 (position 0): fine.
        let mut ok: Vec<f32> = vec![0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4];
        assert_eq!(
            schedule_layer(&dims, &mut ok, &order, &positions(&order), 0),
            Ok(vec![])
        );
        // Feature 1 (position 0) uses input 0 (position 1): wrong.
        let mut bad = ok.clone();
        bad[2 * 2] = 1.0; // row 2 (shift of feature 1), column 0
        assert!(matches!(
            schedule_layer(&dims, &mut bad, &order, &positions(&order), 0),
            Err(ExportError::NotAutoregressive {
                feature: 1,
                position: 0,
                needs: 2,
                ..
            })
        ));
    }

    #[test]
    fn export_is_deterministic_and_decodes_to_the_spec() {
        let spec = triangle_spec(11);
        let bytes = spec.to_bytes().unwrap();
        assert_eq!(bytes, spec.to_bytes().unwrap());
        let wire = BundleWire::decode(&bytes).unwrap();
        assert_eq!(wire.meta.dataset, "triangle-test");
        assert_eq!(wire.meta.trainer, TRAINER);
        assert_eq!(wire.features.names, "x_s\nx_1\nx_2\nx_3");
        assert_eq!(wire.features.binary, &[1, 0, 0, 0]);
        assert_eq!(wire.features.actionable, &[0, 1, 1, 1]);
        assert_eq!(wire.features.order, &[0, 1, 2, 3]);
        #[rustfmt::skip]
        assert_eq!(wire.features.parents, &[
            0, 0, 0, 0,
            1, 0, 0, 0,
            0, 1, 0, 0,
            1, 1, 1, 0,
        ]);
        let std: Vec<f32> = F32s::new(wire.scaler.std).unwrap().iter().collect();
        assert_eq!(std, spec.std);
        assert_eq!(wire.flow.layers, 2);
        let dims: Vec<u16> = U16s::new(wire.flow.dims).unwrap().iter().collect();
        assert_eq!(dims, vec![4, 6, 5, 8]);
        assert_eq!(U16s::new(wire.flow.ready).unwrap().len(), 2 * 2 * 5);
        let params = F32s::new(wire.flow.params).unwrap();
        let n = param_count(&spec.flow.dims);
        assert_eq!(params.len(), 2 * n);
        // Each stored layer computes what the spec's layer computes.
        for (l, layer) in spec.flow.layers.iter().enumerate() {
            let stored: Vec<f32> = params.slice(l * n, n).unwrap().iter().collect();
            let x = [0.3, -1.2, 0.7, 2.0];
            let a = eval_hypernet(&spec.flow.dims, layer, &x);
            let b = eval_hypernet(
                &spec.flow.dims,
                &from_wire_order(&spec.flow.dims, &stored),
                &x,
            );
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
        assert!(wire.carma.is_none());
    }

    #[test]
    fn export_with_carma_networks_round_trips() {
        let mut spec = triangle_spec(3);
        let mlp = |dims: Vec<usize>, output| MlpSpec {
            params: (0..param_count(&dims)).map(|i| i as f32 * 0.01).collect(),
            dims,
            hidden: Activation::Relu,
            output,
        };
        spec.carma = Some(CarmaSpec {
            mask_net: mlp(vec![4, 3, 8], Activation::Identity),
            action_net: mlp(vec![8, 3, 4], Activation::Identity),
            clamp: (-4.0, 5.0),
            cost_range: vec![2.0, 7.0, 6.0, 13.0],
            weights: vec![1.0; 4],
        });
        let bytes = spec.to_bytes().unwrap();
        let carma = BundleWire::decode(&bytes).unwrap().carma.unwrap();
        assert_eq!((carma.clamp_lo, carma.clamp_hi), (-4.0, 5.0));
        let dims: Vec<u16> = U16s::new(carma.action_net.dims).unwrap().iter().collect();
        assert_eq!(dims, vec![8, 3, 4]);
        // Weights are stored column-major: W[row][col] at weight_index(n_out, row, col).
        let c = spec.carma.as_ref().unwrap();
        for (wire, net) in [
            (carma.mask_net, &c.mask_net),
            (carma.action_net, &c.action_net),
        ] {
            let stored: Vec<f32> = F32s::new(wire.params).unwrap().iter().collect();
            assert_ne!(stored, net.params);
            assert_eq!(from_wire_order(&net.dims, &stored), net.params);
        }
        let (n_in, n_out) = (c.mask_net.dims[0], c.mask_net.dims[1]);
        let stored = F32s::new(carma.mask_net.params).unwrap();
        assert_eq!(
            stored.get(weight_index(n_out, 2, 1)),
            Some(c.mask_net.params[2 * n_in + 1])
        );
        spec.carma.as_mut().unwrap().clamp = (1.0, 1.0);
        assert!(matches!(
            spec.to_bytes(),
            Err(ExportError::OutOfRange { .. })
        ));
    }

    #[test]
    fn export_rejects_wrong_shapes_with_clear_errors() {
        let base = triangle_spec(5);

        let mut s = base.clone();
        s.binary.pop();
        assert_eq!(
            s.to_bytes(),
            Err(ExportError::Length {
                what: "binary".into(),
                expected: 4,
                found: 3
            })
        );

        let mut s = base.clone();
        s.flow.dims = vec![4, 6, 5, 7];
        assert!(matches!(s.to_bytes(), Err(ExportError::Dims { .. })));
        let mut deep = base.clone();
        deep.classifier.dims = std::iter::once(deep.n_features())
            .chain(std::iter::repeat_n(1, carma_core::format::MAX_LAYERS + 1))
            .collect();
        assert!(
            matches!(deep.to_bytes(), Err(ExportError::Dims { reason, .. }) if reason.contains("weight layers")),
            "a network deeper than the core reads is refused at export"
        );

        let mut s = base.clone();
        s.flow.layers[1].push(0.0);
        assert!(matches!(
            s.to_bytes(),
            Err(ExportError::ParamCount { what, found, expected, .. })
                if what == "flow layer 1" && found == expected + 1
        ));

        let mut s = base.clone();
        s.classifier.dims = vec![3, 1];
        assert!(
            matches!(s.to_bytes(), Err(ExportError::Dims { what, .. }) if what == "classifier")
        );

        let mut s = base.clone();
        s.classifier.output = Activation::Identity;
        assert!(matches!(s.to_bytes(), Err(ExportError::OutOfRange { .. })));

        let mut s = base.clone();
        s.order = vec![1, 0, 2, 3];
        assert_eq!(
            s.to_bytes(),
            Err(ExportError::OrderNotTopological {
                feature: 1,
                parent: 0
            })
        );

        let mut s = base.clone();
        s.order = vec![0, 1, 1, 3];
        assert_eq!(
            s.to_bytes(),
            Err(ExportError::OrderNotPermutation { n_features: 4 })
        );

        let mut s = base.clone();
        s.parents[2] = vec![2];
        assert!(matches!(
            s.to_bytes(),
            Err(ExportError::BadParent {
                feature: 2,
                parent: 2,
                ..
            })
        ));

        let mut s = base.clone();
        s.std[1] = 0.0;
        assert!(matches!(s.to_bytes(), Err(ExportError::OutOfRange { .. })));

        let mut s = base.clone();
        s.mean[0] = f32::NAN;
        assert_eq!(
            s.to_bytes(),
            Err(ExportError::NonFinite {
                what: "mean".into(),
                index: 0
            })
        );

        let mut s = base.clone();
        s.names[3] = "a\nb".into();
        assert!(matches!(
            s.to_bytes(),
            Err(ExportError::BadName { index: 3, .. })
        ));

        let mut s = base.clone();
        s.flow.layers.clear();
        assert!(matches!(s.to_bytes(), Err(ExportError::OutOfRange { .. })));
    }

    #[test]
    fn export_rejects_a_flow_that_is_not_autoregressive_in_the_order() {
        let mut s = triangle_spec(9);
        // The root x_s (position 0) must not depend on anything: give its
        // shift a weight from every unit of the last hidden layer.
        let (w_at, _) = layer_offsets(&s.flow.dims)[2];
        for c in 0..5 {
            s.flow.layers[0][w_at + c] = 1.0;
        }
        assert!(matches!(
            s.to_bytes(),
            Err(ExportError::NotAutoregressive {
                layer: 0,
                feature: 0,
                position: 0,
                ..
            })
        ));
    }

    /// The flow in f64, straight from FLOW_MATH sections 3-5: returns `z`
    /// and `log p(x~)`.
    fn flow_forward_f64(spec: &BundleSpec, x: &[f64]) -> (Vec<f64>, f64) {
        let bound = (1e-3f64).ln();
        let mut x = x.to_vec();
        let mut log_det = 0.0;
        for layer in &spec.flow.layers {
            let o = eval_hypernet(&spec.flow.dims, layer, &x);
            for i in 0..x.len() {
                let raw = o[2 * i + 1];
                let ls = raw / (1.0 + (raw / bound).abs());
                x[i] = x[i] * ls.exp() + o[2 * i];
                log_det += ls;
            }
        }
        let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let log_p = x.iter().map(|z| -z * z / 2.0 - half_ln_2pi).sum::<f64>() + log_det;
        (x, log_p)
    }

    /// The core computes in f32; agreement with an f64 evaluation, relative.
    const F32_TOL: f64 = 1e-5;

    #[test]
    fn core_accepts_the_export_and_computes_the_same_flow() {
        // Graph 0<-2, 1<-{0,3}, 3<-2; order [2, 0, 3, 1]: the schedule is not
        // the identity, and each hyper-network has two hidden layers.
        let order = vec![2, 0, 3, 1];
        let parents = vec![vec![2], vec![0, 3], vec![], vec![2]];
        for seed in [1, 2, 3] {
            let spec = spec_with(order.clone(), parents.clone(), seed);
            let bytes = spec.to_bytes().unwrap();
            let bundle = carma_core::bundle::Bundle::new(&bytes).unwrap();
            let mut scratch = vec![0.0f32; bundle.scratch_len()];
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut z, mut back) = (vec![0.0f32; 4], vec![0.0f32; 4]);
            for _ in 0..20 {
                let x: Vec<f32> = (0..4).map(|_| rng.random_range(-2.0..2.0)).collect();
                let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                let (z_ref, log_p_ref) = flow_forward_f64(&spec, &x64);
                bundle.abduct(&x, &mut z, &mut scratch).unwrap();
                for (a, b) in z.iter().zip(&z_ref) {
                    assert!(
                        (f64::from(*a) - b).abs() <= F32_TOL * (1.0 + b.abs()),
                        "z {a} vs {b}"
                    );
                }
                let log_p = bundle.log_likelihood(&x, &mut scratch).unwrap();
                assert!((f64::from(log_p) - log_p_ref).abs() <= F32_TOL * (1.0 + log_p_ref.abs()));
                bundle.invert(&z, &mut back, &mut scratch).unwrap();
                for (a, b) in back.iter().zip(&x64) {
                    let err = (f64::from(*a) - b).abs();
                    assert!(err <= F32_TOL * (1.0 + b.abs()), "x {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn trainer_flow_exports_to_the_same_function_in_the_core() {
        use crate::flow::{CausalFlow, FlowConfig};
        use ndarray::Array2;
        // Graph 0<-3, 1<-{0,3}, 2<-1, 3 root: the order [3, 0, 1, 2] is not
        // the identity; two stacked layers with two hidden layers each.
        let parents = vec![vec![3], vec![0, 3], vec![1], vec![]];
        let config = FlowConfig {
            hidden: vec![12, 10],
            layers: 2,
            seed: 4,
            ..Default::default()
        };
        let flow = CausalFlow::new(&parents, &config.check().unwrap()).unwrap();
        let (dims, layers) = flow.to_flow_spec_params();
        let mut spec = spec_with(vec![3, 0, 1, 2], parents, 4);
        spec.flow = FlowSpec { dims, layers };
        let bytes = spec.to_bytes().unwrap();
        let bundle = carma_core::bundle::Bundle::new(&bytes).unwrap();
        let mut scratch = vec![0.0f32; bundle.scratch_len()];

        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x32: Vec<f32> = (0..4 * 16).map(|_| rng.random_range(-2.5..2.5)).collect();
        let x = Array2::from_shape_fn((16, 4), |(r, c)| f64::from(x32[r * 4 + c]));
        let z_ref = flow.abduct(&x);
        let log_p_ref = flow.log_prob(&x);
        let (mut z, mut back) = (vec![0.0f32; 4], vec![0.0f32; 4]);
        for r in 0..16 {
            let row = &x32[r * 4..(r + 1) * 4];
            bundle.abduct(row, &mut z, &mut scratch).unwrap();
            for c in 0..4 {
                let b = z_ref[[r, c]];
                assert!(
                    (f64::from(z[c]) - b).abs() <= F32_TOL * (1.0 + b.abs()),
                    "z {} vs {b}",
                    z[c]
                );
            }
            let log_p = f64::from(bundle.log_likelihood(row, &mut scratch).unwrap());
            assert!((log_p - log_p_ref[r]).abs() <= F32_TOL * (1.0 + log_p_ref[r].abs()));
            bundle.invert(&z, &mut back, &mut scratch).unwrap();
            for c in 0..4 {
                let b = f64::from(row[c]);
                assert!((f64::from(back[c]) - b).abs() <= F32_TOL * (1.0 + b.abs()));
            }
        }
    }
}
