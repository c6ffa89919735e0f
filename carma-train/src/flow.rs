//! The causal normalizing flow (docs/MATH.md section 4, causal flow, `reference/FLOW_MATH.md`): `L` stacked masked
//! affine autoregressive layers whose MADE masks follow the causal graph, trained by maximum
//! likelihood on standardized data.
//!
//! Layer `l` maps `y` to `y' = y * exp(ls(y)) + shift(y)` where `(shift_i, raw_i)` are outputs
//! `2i, 2i + 1` of a masked hyper-network that reads the parents of `i` only, and
//! `ls = raw / (1 + |raw / ln(1e-3)|)`. Layer 0 is applied first in the data-to-latent direction
//! (abduction), the inverse runs the layers in reverse, each one depth level of the graph at a
//! time.

use ndarray::{Array1, Array2, Axis, Zip, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::graph::CausalGraph;
mod config;

pub use config::{
    CheckedFlowConfig, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_HIDDEN, DEFAULT_LAYERS,
    DEFAULT_LR, DEFAULT_MIN_LR, DEFAULT_PATIENCE, DEFAULT_PLATEAU_FACTOR, DEFAULT_PLATEAU_PATIENCE,
    FlowConfig, FlowError, FlowReport, LN_MIN_SCALE, PLATEAU_THRESHOLD,
};

use crate::nn::{
    Activation, Adam, AdamConfig, Dense, EarlyStopping, EpochEnd, Init, MiniBatches, Mlp, MlpCache,
    ParamGrad, Params, ReduceLrOnPlateau, Verdict, WeightDecay, loss::HALF_LN_2PI,
    loss::gaussian_nll, made_masks, made_min_hidden,
};

/// Soft clip of the log-scale (FLOW_MATH section 4), same operation order as zuko.
fn soft_clip(raw: f64) -> f64 {
    raw / (1.0 + (raw / LN_MIN_SCALE).abs())
}

/// `d soft_clip / d raw = 1 / (1 + |raw / ln 1e-3|)^2`.
fn soft_clip_grad(raw: f64) -> f64 {
    let a = 1.0 + (raw / LN_MIN_SCALE).abs();
    1.0 / (a * a)
}

/// One layer's forward pass with what the backward passes need.
struct LayerTrace {
    cache: MlpCache,
    /// `exp(ls)`, `[batch][D]`.
    scale: Array2<f64>,
    /// `ls`, `[batch][D]`.
    ls: Array2<f64>,
    /// `d ls / d raw`, `[batch][D]`.
    dls: Array2<f64>,
    /// The layer output.
    z: Array2<f64>,
}

fn layer_trace(net: &Mlp, x: &Array2<f64>) -> LayerTrace {
    let mut cache = MlpCache::default();
    let o = net.forward_with(x, &mut cache);
    let raw = o.slice(s![.., 1..;2]);
    let ls = raw.mapv(soft_clip);
    let dls = raw.mapv(soft_clip_grad);
    let scale = ls.mapv(f64::exp);
    let z = x * &scale + o.slice(s![.., ..;2]);
    LayerTrace {
        cache,
        scale,
        ls,
        dls,
        z,
    }
}

/// `(z, ls)` of one layer, without caching.
fn layer_apply(net: &Mlp, x: &Array2<f64>) -> (Array2<f64>, Array2<f64>) {
    let o = net.predict(x);
    let ls = o.slice(s![.., 1..;2]).mapv(soft_clip);
    let z = x * &ls.mapv(f64::exp) + o.slice(s![.., ..;2]);
    (z, ls)
}

/// What the gradient through one layer's inverse needs (docs/MATH.md section 5): the
/// hyper-network's forward cache at the layer's input `x`, `1 / exp(ls)` and
/// `d z / d raw = x exp(ls) d ls / d raw`.
struct LayerJacobian {
    cache: MlpCache,
    inv_scale: Array2<f64>,
    dz_draw: Array2<f64>,
}

impl LayerJacobian {
    /// From the cache of a forward pass whose outputs are the layer's at input `x`.
    fn from_output(cache: MlpCache, x: &Array2<f64>) -> Self {
        let raw = cache.output().slice(s![.., 1..;2]);
        let dls = raw.mapv(soft_clip_grad);
        let scale = raw.mapv(soft_clip).mapv(f64::exp);
        Self::new(cache, &scale, &dls, x)
    }

    /// From the cache and the `exp(ls)`, `d ls / d raw` of a forward pass at input `x`.
    fn new(cache: MlpCache, scale: &Array2<f64>, dls: &Array2<f64>, x: &Array2<f64>) -> Self {
        Self {
            cache,
            inv_scale: scale.mapv(|s| 1.0 / s),
            dz_draw: x * scale * dls,
        }
    }
}

/// Each layer's Jacobian at the solution of [`CausalFlow::inverse_traced`], for
/// [`CausalFlow::inverse_backward_traced`].
pub struct InverseTrace {
    /// In the layers' order (data to latent).
    layers: Vec<LayerJacobian>,
}

/// Interleave `(d shift, d raw)` into a hyper-network output gradient `[batch][2D]`.
fn interleave(g_shift: &Array2<f64>, g_raw: &Array2<f64>) -> Array2<f64> {
    let (b, d) = g_shift.dim();
    let mut g = Array2::zeros((b, 2 * d));
    g.slice_mut(s![.., ..;2]).assign(g_shift);
    g.slice_mut(s![.., 1..;2]).assign(g_raw);
    g
}

/// Nodes grouped by depth (roots first); validates the parent lists.
fn depth_levels(parents: &[Vec<usize>]) -> Result<Vec<Vec<usize>>, FlowError> {
    let n = parents.len();
    if n == 0 {
        return Err(FlowError::EmptyGraph);
    }
    for (node, ps) in parents.iter().enumerate() {
        for &parent in ps {
            if parent >= n {
                return Err(FlowError::ParentOutOfRange { node, parent, n });
            }
            if parent == node {
                return Err(FlowError::SelfLoop(node));
            }
        }
    }
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut done = 0;
    while done < n {
        let mut progress = false;
        for i in 0..n {
            if depth[i].is_some() {
                continue;
            }
            let ds: Option<Vec<usize>> = parents[i].iter().map(|&p| depth[p]).collect();
            if let Some(ds) = ds {
                depth[i] = Some(ds.into_iter().max().map_or(0, |m| m + 1));
                done += 1;
                progress = true;
            }
        }
        if !progress {
            let node = depth.iter().position(Option::is_none).unwrap_or(0);
            return Err(FlowError::Cycle(node));
        }
    }
    let depth: Vec<usize> = depth.into_iter().map(|d| d.unwrap_or(0)).collect();
    let max = depth.iter().copied().max().unwrap_or(0);
    Ok((0..=max)
        .map(|l| (0..n).filter(|&i| depth[i] == l).collect())
        .collect())
}

fn check_finite(split: &'static str, x: &Array2<f64>) -> Result<(), FlowError> {
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((row, col), _)) => Err(FlowError::NonFinite { split, row, col }),
        None => Ok(()),
    }
}

/// The causal normalizing flow `z = T(x~)` on standardized features.
#[derive(Debug, Clone, PartialEq)]
pub struct CausalFlow {
    parents: Vec<Vec<usize>>,
    levels: Vec<Vec<usize>>,
    layers: Vec<Mlp>,
}

impl CausalFlow {
    /// An untrained flow for the graph given by `parents[i]` (the parents of feature `i`),
    /// initialized like torch's `nn.Linear` from `config.seed`.
    pub fn new(parents: &[Vec<usize>], config: &CheckedFlowConfig) -> Result<Self, FlowError> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.get().seed);
        Self::with_rng(parents, config.get(), &mut rng)
    }

    /// [`CausalFlow::new`] for a validated causal graph.
    pub fn from_graph(graph: &CausalGraph, config: &CheckedFlowConfig) -> Result<Self, FlowError> {
        let parents: Vec<Vec<usize>> = (0..graph.len())
            .map(|i| graph.parents(i).to_vec())
            .collect();
        Self::new(&parents, config)
    }

    fn with_rng(
        parents: &[Vec<usize>],
        cfg: &FlowConfig,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, FlowError> {
        let levels = depth_levels(parents)?;
        let needed = made_min_hidden(parents);
        if let Some((layer, &width)) = cfg.hidden.iter().enumerate().find(|&(_, &w)| w < needed) {
            return Err(FlowError::HiddenTooNarrow {
                layer,
                width,
                needed,
            });
        }
        let layers = (0..cfg.layers)
            .map(|_| {
                let dense = made_masks(parents, &cfg.hidden)
                    .into_iter()
                    .map(|m| Dense::masked(m, Init::TorchDefault, rng))
                    .collect();
                Mlp::from_layers(dense, Activation::Elu, Activation::Identity)
            })
            .collect();
        Ok(Self {
            parents: parents.to_vec(),
            levels,
            layers,
        })
    }

    /// A flow from existing hyper-networks (e.g. the reference checkpoint's weights with their
    /// masks, see [`Dense::with_mask`]), layer 0 first in the data-to-latent direction. Each must
    /// map `D -> ... -> 2D` with ELU hidden and identity output activations, and its effective
    /// weights must respect the graph: output `2i, 2i + 1` may depend on the parents of `i` only.
    pub fn from_hypernets(parents: &[Vec<usize>], nets: Vec<Mlp>) -> Result<Self, FlowError> {
        let levels = depth_levels(parents)?;
        if nets.is_empty() {
            return Err(FlowError::ZeroLayers);
        }
        let d = parents.len();
        for (layer, net) in nets.iter().enumerate() {
            let dims = net.dims();
            if dims[0] != d || dims[dims.len() - 1] != 2 * d {
                return Err(FlowError::HypernetDims { layer, dims, d });
            }
            let hidden_ok = dims.len() == 2 || net.hidden_activation() == Activation::Elu;
            if !hidden_ok || net.output_activation() != Activation::Identity {
                return Err(FlowError::HypernetActivation(layer));
            }
            // reach[o][j]: some path of non-zero effective weights from input j to output o.
            let nonzero = |l: &Dense| l.effective_weight().mapv(|w| f64::from(u8::from(w != 0.0)));
            let mut reach = nonzero(&net.layers()[0]);
            for l in &net.layers()[1..] {
                reach = nonzero(l).dot(&reach);
            }
            for ((output, input), &r) in reach.indexed_iter() {
                if r > 0.0 && !parents[output / 2].contains(&input) {
                    return Err(FlowError::NotAutoregressive {
                        layer,
                        output,
                        input,
                    });
                }
            }
        }
        Ok(Self {
            parents: parents.to_vec(),
            levels,
            layers: nets,
        })
    }

    /// Number of features `D`.
    pub fn n_features(&self) -> usize {
        self.parents.len()
    }

    /// Number of stacked layers.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Parents of each feature.
    pub fn parents(&self) -> &[Vec<usize>] {
        &self.parents
    }

    /// Features grouped by depth in the graph (roots first); the inverse makes one
    /// hyper-network pass per group and layer.
    pub fn levels(&self) -> &[Vec<usize>] {
        &self.levels
    }

    /// Each layer's hyper-network (masked dense layers, ELU hidden, identity output). The
    /// effective weights are [`Dense::effective_weight`].
    pub fn layer_nets(&self) -> &[Mlp] {
        &self.layers
    }

    /// Abduction with the log-determinant: `(z, log|det dz/dx~|)` per row. `x` is standardized,
    /// `[batch][D]`.
    ///
    /// # Panics
    /// If `x` does not have `D` columns.
    pub fn forward(&self, x: &Array2<f64>) -> (Array2<f64>, Array1<f64>) {
        let mut y = x.clone();
        let mut log_det = Array1::zeros(x.nrows());
        for net in &self.layers {
            let (z, ls) = layer_apply(net, &y);
            log_det += &ls.sum_axis(Axis(1));
            y = z;
        }
        (y, log_det)
    }

    /// Abduction `z = T(x~)`.
    pub fn abduct(&self, x: &Array2<f64>) -> Array2<f64> {
        self.forward(x).0
    }

    /// `log p(x~)` per row, standardized units (docs/MATH.md section 4, causal flow).
    pub fn log_prob(&self, x: &Array2<f64>) -> Array1<f64> {
        let (z, log_det) = self.forward(x);
        let quad = z.map_axis(Axis(1), |r| r.iter().map(|v| -0.5 * v * v).sum::<f64>());
        quad - self.n_features() as f64 * HALF_LN_2PI + log_det
    }

    /// Mean `log p(x~)` over the rows, standardized units (NaN for no rows).
    pub fn mean_log_likelihood(&self, x: &Array2<f64>) -> f64 {
        self.log_prob(x).mean().unwrap_or(f64::NAN)
    }

    /// Mean log-density in original units, `log p(x~) - sum_j ln std_j` (docs/MATH.md section 4, causal flow), for
    /// rows `x_std` standardized with the per-feature `std`.
    pub fn mean_log_likelihood_original(
        &self,
        x_std: &Array2<f64>,
        std: &[f64],
    ) -> Result<f64, FlowError> {
        if std.len() != self.n_features() {
            return Err(FlowError::Shape {
                what: "number of standard deviations",
                expected: self.n_features(),
                found: std.len(),
            });
        }
        if let Some((index, &value)) = std
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(FlowError::BadStd { index, value });
        }
        let log_std: f64 = std.iter().map(|s| s.ln()).sum();
        Ok(self.mean_log_likelihood(x_std) - log_std)
    }

    /// One layer's inverse: one hyper-network pass per depth level, with the last pass's
    /// forward cache when `keep` (what [`CausalFlow::inverse_backward_traced`] needs).
    ///
    /// The roots (depth 0) read no feature, so the hyper-network's outputs for them are the
    /// same for every row: those of the all-zero input the first pass would read. They are
    /// computed on one row instead of the whole batch (same bits: rows do not mix in a matrix
    /// product).
    fn layer_inverse(
        &self,
        net: &Mlp,
        z: &Array2<f64>,
        keep: bool,
    ) -> (Array2<f64>, Option<LayerJacobian>) {
        let mut x = Array2::zeros(z.raw_dim());
        // Writes the level's features from the pass's outputs `o`: one row (shared by every
        // row) or a row per row, with feature `level[k]`'s outputs at columns `2 c, 2 c + 1`
        // where `c` is `k` for a restricted pass and the feature itself otherwise.
        let solve = |x: &mut Array2<f64>, level: &[usize], o: Array2<f64>, restricted: bool| {
            let rows = x.nrows();
            for (k, &i) in level.iter().enumerate() {
                let c = if restricted { k } else { i };
                let (shift, raw) = (o.column(2 * c), o.column(2 * c + 1));
                let shift = shift.broadcast(rows).expect("one row or a row per row");
                let raw = raw.broadcast(rows).expect("one row or a row per row");
                Zip::from(x.column_mut(i))
                    .and(z.column(i))
                    .and(shift)
                    .and(raw)
                    .for_each(|x, &z, &shift, &raw| *x = (z - shift) / soft_clip(raw).exp());
            }
        };
        let n_levels = self.levels.len();
        let mut cache = MlpCache::default();
        for (l, level) in self.levels.iter().enumerate() {
            if l + 1 == n_levels && keep {
                let o = net.forward_with(&x, &mut cache).clone();
                solve(&mut x, level, o, false);
            } else if l == 0 {
                let o = net.predict(&Array2::zeros((1, z.ncols())));
                solve(&mut x, level, o, false);
            } else {
                // Only this level's outputs are read: the rest of the hyper-network is skipped.
                let outputs: Vec<usize> = level.iter().flat_map(|&i| [2 * i, 2 * i + 1]).collect();
                let o = net.restricted_to(&outputs).predict(&x);
                solve(&mut x, level, o, true);
            }
        }
        let jacobian = keep.then(|| LayerJacobian::from_output(cache, &x));
        (x, jacobian)
    }

    /// Prediction `x~ = T^-1(z)` (layers in reverse, each solved level by level).
    ///
    /// # Panics
    /// If `z` does not have `D` columns.
    pub fn inverse(&self, z: &Array2<f64>) -> Array2<f64> {
        let mut y = z.clone();
        for net in self.layers.iter().rev() {
            y = self.layer_inverse(net, &y, false).0;
        }
        y
    }

    /// [`CausalFlow::inverse`], also returning what [`CausalFlow::inverse_backward_traced`]
    /// needs, so that the gradient costs no further forward pass: each layer's last inverse
    /// pass already saw every input its outputs depend on (a feature of the deepest level is
    /// nobody's parent), so its outputs are those of a forward pass at the solution.
    pub fn inverse_traced(&self, z: &Array2<f64>) -> (Array2<f64>, InverseTrace) {
        let mut y = z.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        for net in self.layers.iter().rev() {
            let (x, jacobian) = self.layer_inverse(net, &y, true);
            layers.push(jacobian.expect("kept"));
            y = x;
        }
        layers.reverse();
        (y, InverseTrace { layers })
    }

    /// `J^-T g` for one layer (`J = d layer(x) / dx` at the layer's input): the fixed-point form
    /// of back-substitution in reverse topological order. `a = (g - N^T a) / exp(ls)` where `N`
    /// is the strictly lower (parents-only) part of `J`, a vector-Jacobian product through the
    /// hyper-network; after (depth levels - 1) rounds every entry is exact.
    fn layer_jt_solve(&self, net: &Mlp, j: &LayerJacobian, g: &Array2<f64>) -> Array2<f64> {
        let mut a = g * &j.inv_scale;
        for _ in 1..self.levels.len() {
            let g_o = interleave(&a, &(&a * &j.dz_draw));
            let off = net.input_grad(&j.cache, &g_o);
            a = (g - &off) * &j.inv_scale;
        }
        a
    }

    /// Gradient with respect to `z_cf` of a loss whose gradient with respect to
    /// `x_cf = T^-1(z_cf)` is `grad_x` (docs/MATH.md section 5, CARMA training: the inverse-function rule, `J^-T g` with
    /// `J = dT/dx~` at `x_cf`, chained through the layers). The flow stays frozen.
    pub fn inverse_backward(&self, x_cf: &Array2<f64>, grad_x: &Array2<f64>) -> Array2<f64> {
        let mut y = x_cf.clone();
        let mut g = grad_x.clone();
        for net in &self.layers {
            let t = layer_trace(net, &y);
            let j = LayerJacobian::new(t.cache, &t.scale, &t.dls, &y);
            g = self.layer_jt_solve(net, &j, &g);
            y = t.z;
        }
        g
    }

    /// [`CausalFlow::inverse_backward`] at the point of an [`CausalFlow::inverse_traced`] call:
    /// the same values without a forward pass.
    pub fn inverse_backward_traced(
        &self,
        trace: &InverseTrace,
        grad_x: &Array2<f64>,
    ) -> Array2<f64> {
        let mut g = grad_x.clone();
        for (net, j) in self.layers.iter().zip(&trace.layers) {
            g = self.layer_jt_solve(net, j, &g);
        }
        g
    }

    /// Mean negative log-likelihood of the rows of `x` (standardized); adds its gradient to the
    /// hyper-network parameter gradients.
    pub fn nll_backward(&mut self, x: &Array2<f64>) -> f64 {
        let mut traces: Vec<LayerTrace> = Vec::with_capacity(self.layers.len());
        let mut log_det = Array1::zeros(x.nrows());
        for net in &self.layers {
            let t = layer_trace(net, traces.last().map_or(x, |t| &t.z));
            log_det += &t.ls.sum_axis(Axis(1));
            traces.push(t);
        }
        let z = &traces.last().expect("at least one layer").z;
        let (loss, mut g, g_ld) = gaussian_nll(z, &log_det);
        let g_ld = g_ld.insert_axis(Axis(1));
        for (net, t) in self.layers.iter_mut().zip(&traces).rev() {
            let x_in = t.cache.input();
            // d L / d ls_i = g_i * x_i * exp(ls_i) + d L / d log_det
            let g_raw = (&g * x_in * &t.scale + &g_ld) * &t.dls;
            let g_o = interleave(&g, &g_raw);
            let g_in = net.backward_with(&t.cache, &g_o);
            g = g * &t.scale + g_in;
        }
        loss
    }

    /// Maximum-likelihood training on standardized rows (docs/MATH.md section 4, causal flow): Adam, plateau schedule,
    /// early stopping on the validation NLL, keeping the best parameters.
    pub fn fit(
        x_train: &Array2<f64>,
        x_val: &Array2<f64>,
        parents: &[Vec<usize>],
        config: &CheckedFlowConfig,
    ) -> Result<(Self, FlowReport), FlowError> {
        Self::fit_observed(x_train, x_val, parents, config, &mut |_| {})
    }

    /// [`CausalFlow::fit`], calling `observer` after every epoch (losses are mean NLLs in
    /// standardized units).
    pub fn fit_observed(
        x_train: &Array2<f64>,
        x_val: &Array2<f64>,
        parents: &[Vec<usize>],
        config: &CheckedFlowConfig,
        observer: &mut dyn FnMut(EpochEnd),
    ) -> Result<(Self, FlowReport), FlowError> {
        let cfg = config.get();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut flow = Self::with_rng(parents, cfg, &mut rng)?;
        let d = flow.n_features();
        for (split, x) in [("training", x_train), ("validation", x_val)] {
            if x.nrows() == 0 {
                return Err(FlowError::EmptySplit { split });
            }
            if x.ncols() != d {
                return Err(FlowError::Shape {
                    what: "number of feature columns",
                    expected: d,
                    found: x.ncols(),
                });
            }
            check_finite(split, x)?;
        }
        let mut adam = Adam::new(AdamConfig {
            lr: cfg.lr,
            weight_decay: if cfg.weight_decay > 0.0 {
                WeightDecay::L2(cfg.weight_decay)
            } else {
                WeightDecay::None
            },
            ..AdamConfig::default()
        });
        let mut plateau = ReduceLrOnPlateau::new(
            cfg.plateau_factor,
            cfg.plateau_patience,
            PLATEAU_THRESHOLD,
            cfg.min_lr,
        );
        let mut stopper = EarlyStopping::new(cfg.patience, 0.0);
        let mut batches = MiniBatches::new(x_train.nrows(), cfg.batch_size);
        let (mut epochs_run, mut best_epoch) = (0, 0);
        let initial_val_nll = -flow.mean_log_likelihood(x_val);
        for epoch in 1..=cfg.epochs {
            epochs_run = epoch;
            batches.shuffle(&mut rng);
            let lr = adam.lr();
            let mut train_nll = 0.0;
            for idx in batches.batches() {
                let xb = x_train.select(Axis(0), idx);
                flow.zero_grad();
                train_nll += flow.nll_backward(&xb) * idx.len() as f64;
                adam.step(&mut flow);
            }
            let val_nll = -flow.mean_log_likelihood(x_val);
            let train_nll = train_nll / x_train.nrows() as f64;
            observer(EpochEnd {
                epoch,
                train_loss: train_nll,
                val_loss: val_nll,
                lr,
            });
            if let Some(quantity) = crate::nn::divergence(train_nll, val_nll, initial_val_nll) {
                return Err(FlowError::Diverged { epoch, quantity });
            }
            plateau.step(val_nll, &mut adam);
            match stopper.observe(val_nll, &flow) {
                Verdict::Improved => best_epoch = epoch,
                Verdict::Continue => {}
                Verdict::Stop => break,
            }
        }
        let best_val_nll = stopper.best_loss();
        let flow = stopper.into_best().unwrap_or(flow);
        Ok((
            flow,
            FlowReport {
                epochs_run,
                best_epoch,
                best_val_nll,
                final_lr: adam.lr(),
            },
        ))
    }

    /// Hyper-network widths `[D, hidden..., 2D]` and, per layer (layer 0 first in the
    /// data-to-latent direction), its parameters in `MlpWire` layout with the masks multiplied
    /// in, as `f32`: what `export::FlowSpec` needs.
    pub fn to_flow_spec_params(&self) -> (Vec<usize>, Vec<Vec<f32>>) {
        (
            self.layers[0].dims(),
            self.layers.iter().map(Mlp::to_wire_params).collect(),
        )
    }
}

impl Params for CausalFlow {
    fn params_and_grads(&mut self) -> Vec<ParamGrad<'_>> {
        self.layers
            .iter_mut()
            .flat_map(Mlp::params_and_grads)
            .collect()
    }
}

#[cfg(test)]
mod tests;
