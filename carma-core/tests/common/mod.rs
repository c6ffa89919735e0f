//! Test-only bundle builder: owned bundle parts with wire-level fields (so a
//! test can corrupt any of them), random causal graphs, MADE masks multiplied
//! into random weights, hidden units sorted by readiness, and the `ready`
//! schedule. Kept simple on purpose; the real exporter is `carma-train`.
#![allow(dead_code)]

use carma_core::format::{
    Activation, BundleWire, CarmaWire, FeaturesWire, FlowWire, GridWire, KIND_CATEGORICAL,
    KIND_INTEGER, MetaWire, MetricsWire, MlpWire, ScalerWire, weights_to_wire,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `f32` values as little-endian bytes.
pub fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An MLP's parameters, each layer's `W` given row-major (`W[row][col]` at
/// `row * n_in + col`, as one writes them by hand), in the wire order
/// (`W` column-major, see `carma_core::format::weight_index`).
pub fn wire_params(dims: &[u16], row_major: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(row_major.len());
    let mut at = 0;
    for w in dims.windows(2) {
        let (n_in, n_out) = (usize::from(w[0]), usize::from(w[1]));
        let mut wt = vec![0.0; n_in * n_out];
        assert!(weights_to_wire(
            n_in,
            n_out,
            &row_major[at..at + n_in * n_out],
            &mut wt
        ));
        out.extend(wt);
        out.extend(&row_major[at + n_in * n_out..at + n_in * n_out + n_out]);
        at += n_in * n_out + n_out;
    }
    assert_eq!(at, row_major.len(), "parameter count of {dims:?}");
    out
}

/// The reference's inverse (FLOW_MATH section 6), on the core's own kernels:
/// per layer, from `x = 0`, `D` full passes of the hyper-network and
/// `x <- (z - shift(x)) / exp(ls(x))`. `v` holds `z` on entry and `x~` on
/// exit; `work` holds `D` values plus the hyper-network's scratch. The
/// inversion tests compare the core against it bit for bit, and the
/// benchmarks run it as the baseline the scheduled inversion is measured
/// against.
pub fn fixed_point_invert(b: &carma_core::Bundle<'_>, v: &mut [f32], work: &mut [f32]) {
    let flow = b.flow();
    let d = v.len();
    let (x, scratch) = work.split_at_mut(d);
    for l in (0..flow.n_layers()).rev() {
        let net = flow.layer(l).expect("layer");
        x.fill(0.0);
        for _ in 0..d {
            let o = net.forward(x, scratch).expect("forward");
            for i in 0..d {
                x[i] = (v[i] - o[2 * i]) / libm::expf(carma_core::flow::soft_clip(o[2 * i + 1]));
            }
        }
        v.copy_from_slice(x);
    }
}

/// `u16` values as little-endian bytes.
pub fn le16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An MLP in the wire layout, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub dims: Vec<u16>,
    pub hidden: Activation,
    pub output: Activation,
    pub params: Vec<f32>,
}

/// The CARMA part, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Carma {
    pub mask_net: Mlp,
    pub action_net: Mlp,
    pub clamp_lo: f32,
    pub clamp_hi: f32,
    pub cost_range: Vec<f32>,
    pub weights: Vec<f32>,
}

/// A whole bundle, owned, field for field as on the wire (parameters in the
/// wire order: build them with [`wire_params`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub dataset: String,
    pub seed: u64,
    pub metrics: MetricsWire,
    pub names: String,
    pub binary: Vec<u8>,
    pub actionable: Vec<u8>,
    pub parents: Vec<u8>,
    pub order: Vec<u8>,
    /// Bounds in original units and direction bytes (format version 3).
    pub min: Vec<f32>,
    pub max: Vec<f32>,
    pub direction: Vec<u8>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub flow_layers: u8,
    pub flow_dims: Vec<u16>,
    pub flow_params: Vec<f32>,
    pub ready: Vec<u16>,
    pub classifier: Mlp,
    pub carma: Option<Carma>,
    /// Integer and categorical features (format version 4): kind bytes,
    /// steps, level counts and level names; empty `kind` for none.
    pub grid: Grid,
}

/// The grid section, owned (empty `kind`: no grid section).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    pub kind: Vec<u8>,
    pub step: Vec<f32>,
    pub n_levels: Vec<u8>,
    pub levels: String,
}

/// The byte arrays an `MlpWire` borrows.
struct MlpBytes(Vec<u8>, Vec<u8>);

impl MlpBytes {
    fn new(m: &Mlp) -> Self {
        MlpBytes(le16(&m.dims), le(&m.params))
    }
    fn wire(&self, m: &Mlp) -> MlpWire<'_> {
        MlpWire {
            dims: &self.0,
            hidden: m.hidden,
            output: m.output,
            params: &self.1,
        }
    }
}

impl Spec {
    pub fn d(&self) -> usize {
        self.binary.len()
    }

    /// Bounds no test reaches: `[0, 1]` for a binary feature, else
    /// `mean -+ 1000 std` (the random streams are not touched).
    pub fn with_wide_bounds(mut self) -> Spec {
        let d = self.d();
        self.min = (0..d)
            .map(|i| {
                if self.binary[i] == 1 {
                    0.0
                } else {
                    self.mean[i] - 1000.0 * self.std[i]
                }
            })
            .collect();
        self.max = (0..d)
            .map(|i| {
                if self.binary[i] == 1 {
                    1.0
                } else {
                    self.mean[i] + 1000.0 * self.std[i]
                }
            })
            .collect();
        self.direction = vec![0; d];
        self
    }

    /// Calls `f` with the wire form (for tests that need to corrupt raw bytes).
    pub fn with_wire<R>(&self, f: impl FnOnce(BundleWire<'_>) -> R) -> R {
        let (mean, std) = (le(&self.mean), le(&self.std));
        let (min, max) = (le(&self.min), le(&self.max));
        let (flow_dims, flow_params, ready) = (
            le16(&self.flow_dims),
            le(&self.flow_params),
            le16(&self.ready),
        );
        let clf = MlpBytes::new(&self.classifier);
        let step = le(&self.grid.step);
        let carma = self.carma.as_ref().map(|c| {
            (
                MlpBytes::new(&c.mask_net),
                MlpBytes::new(&c.action_net),
                le(&c.cost_range),
                le(&c.weights),
            )
        });
        let wire = BundleWire {
            meta: MetaWire {
                dataset: &self.dataset,
                seed: self.seed,
                trainer: "carma-core tests",
                metrics: self.metrics,
            },
            features: FeaturesWire {
                names: &self.names,
                binary: &self.binary,
                actionable: &self.actionable,
                parents: &self.parents,
                order: &self.order,
                min: &min,
                max: &max,
                direction: &self.direction,
            },
            scaler: ScalerWire {
                mean: &mean,
                std: &std,
            },
            flow: FlowWire {
                layers: self.flow_layers,
                dims: &flow_dims,
                params: &flow_params,
                ready: &ready,
            },
            classifier: clf.wire(&self.classifier),
            carma: self
                .carma
                .as_ref()
                .zip(carma.as_ref())
                .map(|(c, (m, a, r, w))| CarmaWire {
                    mask_net: m.wire(&c.mask_net),
                    action_net: a.wire(&c.action_net),
                    clamp_lo: c.clamp_lo,
                    clamp_hi: c.clamp_hi,
                    cost_range: r,
                    weights: w,
                }),
            grid: (!self.grid.kind.is_empty()).then(|| GridWire {
                kind: &self.grid.kind,
                step: &step,
                n_levels: &self.grid.n_levels,
                levels: &self.grid.levels,
            }),
        };
        f(wire)
    }

    /// The framed bundle bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.with_wire(|w| encode(&w))
    }
}

/// Frames a wire bundle into a fresh buffer.
pub fn encode(wire: &BundleWire<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 12];
    loop {
        match wire.encode(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return buf;
            }
            Err(_) => {
                let len = buf.len() * 2;
                buf.resize(len, 0);
            }
        }
    }
}

/// A causal graph: `parents[i]` and a topological order.
#[derive(Debug, Clone)]
pub struct Graph {
    pub parents: Vec<Vec<usize>>,
    pub order: Vec<usize>,
}

impl Graph {
    pub fn d(&self) -> usize {
        self.order.len()
    }

    /// `position[i]`: where feature `i` is in the order.
    pub fn position(&self) -> Vec<usize> {
        let mut p = vec![0; self.d()];
        for (t, &i) in self.order.iter().enumerate() {
            p[i] = t;
        }
        p
    }

    /// The `D * D` parent matrix of the wire format.
    pub fn matrix(&self) -> Vec<u8> {
        let d = self.d();
        let mut m = vec![0u8; d * d];
        for (i, ps) in self.parents.iter().enumerate() {
            for &j in ps {
                m[i * d + j] = 1;
            }
        }
        m
    }
}

/// A random DAG on `d` nodes: a random order, each earlier node a parent with probability 1/2.
pub fn random_graph(rng: &mut ChaCha8Rng, d: usize) -> Graph {
    let mut order: Vec<usize> = (0..d).collect();
    for i in (1..d).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut parents = vec![Vec::new(); d];
    for t in 0..d {
        for s in 0..t {
            if rng.random_bool(0.5) {
                parents[order[t]].push(order[s]);
            }
        }
        parents[order[t]].sort();
    }
    Graph { parents, order }
}

/// Random dense parameters for `dims`, `U(-scale, scale) / sqrt(fan_in)`.
pub fn random_mlp(
    rng: &mut ChaCha8Rng,
    dims: &[u16],
    hidden: Activation,
    output: Activation,
    scale: f32,
) -> Mlp {
    let mut params = Vec::new();
    for w in dims.windows(2) {
        let (n_in, n_out) = (w[0] as usize, w[1] as usize);
        let s = scale / (n_in as f32).sqrt();
        params.extend((0..n_in * n_out).map(|_| rng.random_range(-s..s)));
        params.extend((0..n_out).map(|_| rng.random_range(-0.5f32..0.5)));
    }
    Mlp {
        dims: dims.to_vec(),
        hidden,
        output,
        params: wire_params(dims, &params),
    }
}

/// One MADE hyper-network over `graph` with the given hidden widths: each
/// hidden unit is labelled with the parent set of a random node; a unit sees
/// the inputs in its label (first hidden layer) or the previous units whose
/// label is a subset of its own; outputs `2i, 2i + 1` see the last units whose
/// label is a subset of `parents(i)`. Units are sorted by the step at which
/// they become computable. Returns the params (wire order) and the `ready` schedule.
pub fn made_layer(rng: &mut ChaCha8Rng, graph: &Graph, hidden: &[u16]) -> (Vec<f32>, Vec<u16>) {
    let d = graph.d();
    let position = graph.position();
    let sets: Vec<u64> = graph
        .parents
        .iter()
        .map(|ps| ps.iter().fold(0u64, |s, &j| s | 1 << j))
        .collect();
    let step = |s: u64| {
        (0..d)
            .filter(|&j| s >> j & 1 == 1)
            .map(|j| position[j] + 1)
            .max()
            .unwrap_or(0)
    };
    let mut params = Vec::new();
    let mut ready = Vec::new();
    // Labels of the previous layer's units; the inputs are labelled by themselves.
    let mut prev: Vec<u64> = (0..d).map(|j| 1u64 << j).collect();
    for (h, &width) in hidden.iter().enumerate() {
        let mut labels: Vec<u64> = (0..width).map(|_| sets[rng.random_range(0..d)]).collect();
        labels.sort_by_key(|&s| step(s));
        let s = 1.5 / (prev.len() as f32).sqrt();
        for &l in &labels {
            for &p in &prev {
                let connected = if h == 0 { l & p != 0 } else { p & !l == 0 };
                let w = rng.random_range(-s..s);
                params.push(if connected { w } else { 0.0 });
            }
        }
        params.extend(labels.iter().map(|_| rng.random_range(-0.5f32..0.5)));
        for t in 0..=d {
            ready.push(labels.iter().filter(|&&l| step(l) <= t).count() as u16);
        }
        prev = labels;
    }
    // Output rows: small weights keep the log-scales moderate.
    let s = 0.5 / (prev.len() as f32).sqrt();
    for i in 0..2 * d {
        let pa = sets[i / 2];
        for &p in &prev {
            let connected = if hidden.is_empty() {
                p & pa != 0
            } else {
                p & !pa == 0
            };
            let w = rng.random_range(-s..s);
            params.push(if connected { w } else { 0.0 });
        }
    }
    params.extend((0..2 * d).map(|_| rng.random_range(-0.3f32..0.3)));
    let mut dims = vec![d as u16];
    dims.extend(hidden);
    dims.push(2 * d as u16);
    (wire_params(&dims, &params), ready)
}

/// Shape of a random spec.
#[derive(Debug, Clone)]
pub struct Shape {
    pub d: usize,
    pub flow_layers: usize,
    pub flow_hidden: Vec<u16>,
}

impl Shape {
    /// A random shape: up to 12 features, 1-2 flow layers, 1-2 hidden layers.
    pub fn random(rng: &mut ChaCha8Rng) -> Shape {
        let d = rng.random_range(1..=12);
        let flow_layers = rng.random_range(1..=2);
        let n_hidden = rng.random_range(1..=2);
        let flow_hidden = (0..n_hidden).map(|_| rng.random_range(1..=24)).collect();
        Shape {
            d,
            flow_layers,
            flow_hidden,
        }
    }
}

/// A valid random bundle of the given shape, with CARMA networks.
pub fn random_spec(seed: u64, shape: &Shape) -> Spec {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = shape.d;
    let graph = random_graph(&mut rng, d);
    let roots: Vec<usize> = (0..d).filter(|&i| graph.parents[i].is_empty()).collect();
    let binary: Vec<u8> = (0..d)
        .map(|i| u8::from(roots.contains(&i) && rng.random_bool(0.3)))
        .collect();
    let actionable: Vec<u8> = (0..d)
        .map(|i| u8::from(binary[i] == 0 && rng.random_bool(0.7)))
        .collect();
    let mut flow_params = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..shape.flow_layers {
        let (p, r) = made_layer(&mut rng, &graph, &shape.flow_hidden);
        flow_params.extend(p);
        ready.extend(r);
    }
    let mut flow_dims = vec![d as u16];
    flow_dims.extend(&shape.flow_hidden);
    flow_dims.push(2 * d as u16);
    let d16 = d as u16;
    let width = rng.random_range(3..=8);
    let classifier = random_mlp(
        &mut rng,
        &[d16, width, 1],
        Activation::Relu,
        Activation::Sigmoid,
        2.0,
    );
    let mask_net = random_mlp(
        &mut rng,
        &[d16, width, 2 * d16],
        Activation::Relu,
        Activation::Identity,
        2.0,
    );
    let action_net = random_mlp(
        &mut rng,
        &[2 * d16, width, width, d16],
        Activation::Relu,
        Activation::Identity,
        3.0,
    );
    Spec {
        dataset: format!("random-{seed}"),
        seed,
        metrics: MetricsWire {
            n_train: 100,
            n_test: 10,
            ..MetricsWire::default()
        },
        names: (0..d)
            .map(|i| format!("x{i}"))
            .collect::<Vec<_>>()
            .join("\n"),
        binary,
        actionable,
        parents: graph.matrix(),
        order: graph.order.iter().map(|&i| i as u8).collect(),
        min: Vec::new(),
        max: Vec::new(),
        direction: vec![0; d],
        mean: (0..d).map(|_| rng.random_range(-2.0..2.0)).collect(),
        std: (0..d).map(|_| rng.random_range(0.5..3.0)).collect(),
        flow_layers: shape.flow_layers as u8,
        flow_dims,
        flow_params,
        ready,
        classifier,
        carma: Some(Carma {
            mask_net,
            action_net,
            clamp_lo: -4.0,
            clamp_hi: 5.0,
            cost_range: (0..d).map(|_| rng.random_range(2.0..6.0)).collect(),
            weights: (0..d).map(|_| rng.random_range(1..=3) as f32).collect(),
        }),
        grid: Grid::default(),
    }
    .with_wide_bounds()
}

/// Random raw inputs for `spec`: binary features 0 or 1, others `mean + std * U(-2, 2)`.
pub fn random_input(rng: &mut ChaCha8Rng, spec: &Spec) -> Vec<f32> {
    (0..spec.d())
        .map(|i| {
            if spec.binary[i] == 1 {
                f32::from(u8::from(rng.random_bool(0.5)))
            } else {
                spec.mean[i] + spec.std[i] * rng.random_range(-2.0f32..2.0)
            }
        })
        .collect()
}

/// The hand-built two-feature model of the unit tests (values worked out on
/// paper in `tests/hand_computed.rs`): `x0 -> x1`, order `[0, 1]`.
///
/// - scaler: mean `(0.5, 2)`, std `(0.5, 0.5)`; `x0` binary.
/// - flow: one layer, hyper-network `2 -> 1 -> 4`, `h = ELU(x~0)`;
///   `shift0 = 0.5, raw0 = 0`, `shift1 = 2h, raw1 = h`.
/// - classifier: `sigmoid(x~1 - 0.5)`.
/// - mask net (`2 -> 4`, no hidden layer): `phi_0 = (0, 1)` (always select),
///   `phi_1 = (0, -z1)` (select iff `z1 < 0`).
/// - action net (`4 -> 2`): `delta = (-10, 6 m1 - 2)`, clamp `[-4, 5]`.
/// - cost ranges `(2, 4)`, weights `(1, 2)`; both features actionable.
pub fn hand_spec() -> Spec {
    let flow_params = vec![
        1.0, 0.0, // W1 (1x2): h sees x~0
        0.0, // b1
        0.0, // W2 (4x1): shift0
        0.0, // raw0
        2.0, // shift1 = 2h
        1.0, // raw1 = h
        0.5, 0.0, 0.0, 0.0, // b2
    ];
    Spec {
        dataset: "hand".into(),
        seed: 0,
        metrics: MetricsWire::default(),
        names: "x0\nx1".into(),
        binary: vec![1, 0],
        actionable: vec![1, 1],
        parents: vec![0, 0, 1, 0],
        order: vec![0, 1],
        min: vec![0.0, -1000.0],
        max: vec![1.0, 1000.0],
        direction: vec![0, 0],
        mean: vec![0.5, 2.0],
        std: vec![0.5, 0.5],
        flow_layers: 1,
        flow_dims: vec![2, 1, 4],
        flow_params: wire_params(&[2, 1, 4], &flow_params),
        // The unit needs x0 (position 0): ready once 1 feature is known.
        ready: vec![0, 1, 1],
        classifier: Mlp {
            dims: vec![2, 1],
            hidden: Activation::Relu,
            output: Activation::Sigmoid,
            params: wire_params(&[2, 1], &[0.0, 1.0, -0.5]),
        },
        carma: Some(Carma {
            mask_net: Mlp {
                dims: vec![2, 4],
                hidden: Activation::Relu,
                output: Activation::Identity,
                params: wire_params(
                    &[2, 4],
                    &[
                        0.0, 0.0, // phi_00
                        0.0, 0.0, // phi_01
                        0.0, 0.0, // phi_10
                        0.0, -1.0, // phi_11 = -z1
                        0.0, 1.0, 0.0, 0.0, // biases
                    ],
                ),
            },
            action_net: Mlp {
                dims: vec![4, 2],
                hidden: Activation::Relu,
                output: Activation::Identity,
                params: wire_params(
                    &[4, 2],
                    &[
                        0.0, 0.0, 0.0, 0.0, // delta0
                        0.0, 0.0, 0.0, 6.0, // delta1 = 6 m1 - 2
                        -10.0, -2.0, // biases
                    ],
                ),
            },
            clamp_lo: -4.0,
            clamp_hi: 5.0,
            cost_range: vec![2.0, 4.0],
            weights: vec![1.0, 2.0],
        }),
        grid: Grid::default(),
    }
}

/// `spec` with every binary feature made actionable (the random specs keep
/// binary features fixed); the random streams are not touched, so the
/// model is otherwise the same.
pub fn with_binary_actionable(mut spec: Spec) -> Spec {
    for (a, &b) in spec.actionable.iter_mut().zip(&spec.binary) {
        if b == 1 {
            *a = 1;
        }
    }
    spec
}

/// `spec` with some non-binary features made integer (a step of a quarter
/// to twice their scale) or categorical (3 to 6 levels, standardized like
/// codes spread over their range), actionable at random.
pub fn with_grid(mut spec: Spec, rng: &mut ChaCha8Rng) -> Spec {
    let d = spec.d();
    let mut grid = Grid {
        kind: vec![0; d],
        step: vec![0.0; d],
        n_levels: vec![0; d],
        levels: String::new(),
    };
    let mut names = Vec::new();
    for k in 0..d {
        if spec.binary[k] == 1 {
            continue;
        }
        match rng.random_range(0..3) {
            0 => {
                grid.kind[k] = KIND_INTEGER;
                grid.step[k] = spec.std[k] * [0.25f32, 0.5, 1.0, 2.0][rng.random_range(0..4)];
                spec.min[k] = spec.mean[k] - 1000.0 * spec.std[k];
                spec.max[k] = spec.mean[k] + 1000.0 * spec.std[k];
            }
            1 => {
                let n: u8 = rng.random_range(3..=6);
                grid.kind[k] = KIND_CATEGORICAL;
                grid.step[k] = 1.0;
                grid.n_levels[k] = n;
                spec.mean[k] = f32::from(n - 1) / 2.0;
                spec.std[k] = f32::from(n) / 3.5;
                spec.min[k] = 0.0;
                spec.max[k] = f32::from(n - 1);
                names.extend((0..n).map(|l| format!("f{k}-level{l}")));
            }
            _ => continue,
        }
        if rng.random_bool(0.8) {
            spec.actionable[k] = 1;
        }
    }
    grid.levels = names.join("\n");
    spec.grid = grid;
    spec
}

/// A person on the grids: integers rounded, categorical codes uniform.
pub fn grid_input(rng: &mut ChaCha8Rng, spec: &Spec) -> Vec<f32> {
    (0..spec.d())
        .map(|k| match spec.grid.kind.get(k).copied().unwrap_or(0) {
            KIND_INTEGER => {
                let v = spec.mean[k] + spec.std[k] * rng.random_range(-2.0f32..2.0);
                (v / spec.grid.step[k]).round() * spec.grid.step[k]
            }
            KIND_CATEGORICAL => f32::from(rng.random_range(0..spec.grid.n_levels[k])),
            _ if spec.binary[k] == 1 => f32::from(u8::from(rng.random_bool(0.5))),
            _ => spec.mean[k] + spec.std[k] * rng.random_range(-2.0f32..2.0),
        })
        .collect()
}
