//! Ground-truth structural causal models (docs/MATH.md section 2, datasets).
//!
//! An [`Scm`] samples exogenous `u`, features `x` and the deterministic label; abducts `u` from
//! `x` with the true inverse; and answers counterfactual queries under hard interventions
//! (docs/MATH.md section 7, oracle & baselines: the oracle and causal validity use these).

mod equations;
mod noise;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::graph::{CausalGraph, Feature, FeatureKind, MAX_FEATURES};

pub use equations::{logit, sigmoid};

/// Accepted means `sigmoid(g) >= 0.5` (docs/MATH.md section 2, datasets).
pub const ACCEPT_THRESHOLD: f64 = 0.5;

/// The seven datasets of docs/MATH.md section 2, datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// triangle-LIN.
    TriangleLin,
    /// triangle-NLIN.
    TriangleNlin,
    /// collider-LIN.
    ColliderLin,
    /// collider-NLIN.
    ColliderNlin,
    /// chain-LIN.
    ChainLin,
    /// chain-NLIN.
    ChainNlin,
    /// Loan (semi-synthetic German credit).
    Loan,
}

/// The four-node datasets' feature names.
const FOUR_NODE_NAMES: [&str; 4] = ["x_s", "x_1", "x_2", "x_3"];
/// Loan's feature names, in node order.
pub const LOAN_NAMES: [&str; 7] = [
    "gender",
    "age",
    "education",
    "loan_amount",
    "duration",
    "income",
    "savings",
];
/// Loan's actionable nodes: education, loan amount, income, savings (docs/MATH.md section 2, datasets).
const LOAN_ACTIONABLE: [usize; 4] = [2, 3, 5, 6];

impl Dataset {
    /// All seven, in docs/MATH.md's order.
    pub const ALL: [Dataset; 7] = [
        Dataset::TriangleLin,
        Dataset::TriangleNlin,
        Dataset::ColliderLin,
        Dataset::ColliderNlin,
        Dataset::ChainLin,
        Dataset::ChainNlin,
        Dataset::Loan,
    ];

    /// The dataset's name: `triangle-lin`, ..., `loan`.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::TriangleLin => "triangle-lin",
            Dataset::TriangleNlin => "triangle-nlin",
            Dataset::ColliderLin => "collider-lin",
            Dataset::ColliderNlin => "collider-nlin",
            Dataset::ChainLin => "chain-lin",
            Dataset::ChainNlin => "chain-nlin",
            Dataset::Loan => "loan",
        }
    }

    /// Linear structural equations (the LIN datasets).
    pub fn is_linear(self) -> bool {
        matches!(
            self,
            Dataset::TriangleLin | Dataset::ColliderLin | Dataset::ChainLin
        )
    }

    /// Exogenous "version 2" (`u_2 ~ N(0, 0.1)`): triangle-NLIN and collider-NLIN.
    pub fn is_noise_version_2(self) -> bool {
        matches!(self, Dataset::TriangleNlin | Dataset::ColliderNlin)
    }

    /// Feature names, in node order.
    pub fn feature_names(self) -> &'static [&'static str] {
        match self {
            Dataset::Loan => &LOAN_NAMES,
            _ => &FOUR_NODE_NAMES,
        }
    }

    /// Number of features.
    pub fn n_features(self) -> usize {
        self.feature_names().len()
    }

    /// Parents of each node (docs/MATH.md section 2, datasets).
    fn parents(self) -> Vec<Vec<usize>> {
        match self {
            Dataset::TriangleLin | Dataset::TriangleNlin => {
                vec![vec![], vec![0], vec![1], vec![0, 1, 2]]
            }
            Dataset::ColliderLin | Dataset::ColliderNlin => {
                vec![vec![], vec![0], vec![0], vec![0, 1, 2]]
            }
            Dataset::ChainLin | Dataset::ChainNlin => vec![vec![], vec![0], vec![0, 1], vec![0, 2]],
            Dataset::Loan => vec![
                vec![],
                vec![],
                vec![0, 1],
                vec![0, 1],
                vec![0, 1, 3],
                vec![0, 1, 2],
                vec![5],
            ],
        }
    }

    /// The dataset's causal graph: parents from the equations, node 0 binary, actionable flags
    /// of docs/MATH.md section 2, datasets, unit weights.
    pub fn graph(self) -> CausalGraph {
        let features = self
            .parents()
            .into_iter()
            .enumerate()
            .map(|(i, parents)| {
                let kind = if i == 0 {
                    FeatureKind::Binary
                } else {
                    FeatureKind::Continuous
                };
                let actionable = match self {
                    Dataset::Loan => LOAN_ACTIONABLE.contains(&i),
                    _ => i != 0,
                };
                Feature::new(self.feature_names()[i], kind, actionable, parents)
            })
            .collect();
        CausalGraph::new(features).expect("the built-in graphs are valid (tested)")
    }

    /// The dataset's ground-truth SCM.
    pub fn scm(self) -> Scm {
        Scm::new(self)
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown dataset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown dataset '{0}' (expected one of: triangle-lin, triangle-nlin, collider-lin, collider-nlin, \
     chain-lin, chain-nlin, loan)"
)]
pub struct ParseDatasetError(pub String);

impl FromStr for Dataset {
    type Err = ParseDatasetError;

    /// Case-insensitive, so the paper's spelling `triangle-LIN` works too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseDatasetError(s.to_owned()))
    }
}

/// Why an SCM query was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScmError {
    /// A row, buffer or matrix has the wrong width or length.
    #[error("wrong length for {what}: expected {expected}, found {found}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A feature value is NaN or infinite.
    #[error("feature '{feature}' is not finite ({value})")]
    NonFinite {
        /// Feature name.
        feature: &'static str,
        /// The value.
        value: f64,
    },
    /// The true inverse is undefined at this value (e.g. Loan education outside (-0.5, 0.5)).
    #[error("feature '{feature}' = {value} is outside the support of the {dataset} model")]
    OutsideSupport {
        /// The dataset.
        dataset: Dataset,
        /// Feature name.
        feature: &'static str,
        /// The value.
        value: f64,
    },
    /// An intervention names a feature that does not exist.
    #[error("intervention on feature index {index}, but the model has {len} features")]
    InterventionIndex {
        /// The index.
        index: usize,
        /// Number of features.
        len: usize,
    },
    /// An intervention value is NaN or infinite.
    #[error("intervention on '{feature}' sets a non-finite value ({value})")]
    NonFiniteIntervention {
        /// Feature name.
        feature: &'static str,
        /// The value.
        value: f64,
    },
}

/// Samples of an SCM: exogenous `u`, features `x` (both `n x D`) and the label `y` (0 or 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Exogenous variables, one row per individual.
    pub u: Array2<f64>,
    /// Features, one row per individual.
    pub x: Array2<f64>,
    /// Deterministic label, 0.0 or 1.0.
    pub y: Array1<f64>,
}

/// One individual drawn by a [`RowSampler`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Exogenous variables.
    pub u: &'a [f64],
    /// Features.
    pub x: &'a [f64],
    /// Deterministic label, 0.0 or 1.0.
    pub y: f64,
}

/// Draws individuals one at a time ([`Scm::rows`]).
#[derive(Debug, Clone)]
pub struct RowSampler<'s> {
    scm: &'s Scm,
    rng: ChaCha8Rng,
    u: Vec<f64>,
    x: Vec<f64>,
}

impl RowSampler<'_> {
    /// The next individual: `u_0, ..., u_{D-1}` drawn in order, then `x = f(u)` and the label.
    pub fn next_row(&mut self) -> Row<'_> {
        for (ui, noise) in self.u.iter_mut().zip(&self.scm.noise) {
            *ui = noise.sample(&mut self.rng);
        }
        self.scm.generate_row(&self.u, &mut self.x);
        let y = self.scm.label(&self.x, &self.u);
        Row {
            u: &self.u,
            x: &self.x,
            y,
        }
    }
}

/// A ground-truth structural causal model.
#[derive(Debug, Clone)]
pub struct Scm {
    dataset: Dataset,
    graph: CausalGraph,
    noise: Vec<noise::Noise>,
}

impl Scm {
    /// The SCM of `dataset`.
    pub fn new(dataset: Dataset) -> Scm {
        Scm {
            dataset,
            graph: dataset.graph(),
            noise: noise::exogenous(dataset),
        }
    }

    /// Which dataset.
    pub fn dataset(&self) -> Dataset {
        self.dataset
    }

    /// The causal graph.
    pub fn graph(&self) -> &CausalGraph {
        &self.graph
    }

    /// Number of features `D`.
    pub fn n_features(&self) -> usize {
        self.graph.len()
    }

    /// Draw `n` individuals with a `ChaCha8Rng` seeded by `seed` (same seed, same samples).
    /// Per individual, `u_0, ..., u_{D-1}` are drawn in order.
    pub fn sample(&self, n: usize, seed: u64) -> Sample {
        let d = self.n_features();
        let mut rows = self.rows(seed);
        let mut u = Array2::zeros((n, d));
        let mut x = Array2::zeros((n, d));
        let mut y = Array1::zeros(n);
        for r in 0..n {
            let row = rows.next_row();
            y[r] = row.y;
            u.row_mut(r)
                .iter_mut()
                .zip(row.u)
                .for_each(|(a, b)| *a = *b);
            x.row_mut(r)
                .iter_mut()
                .zip(row.x)
                .for_each(|(a, b)| *a = *b);
        }
        Sample { u, x, y }
    }

    /// The individuals of [`Scm::sample`]`(n, seed)`, one at a time and in the same order, for
    /// any `n`: `carma simulate` streams them to its output in constant memory.
    pub fn rows(&self, seed: u64) -> RowSampler<'_> {
        let d = self.n_features();
        RowSampler {
            scm: self,
            rng: ChaCha8Rng::seed_from_u64(seed),
            u: vec![0.0; d],
            x: vec![0.0; d],
        }
    }

    /// `x = f(u)`: evaluate the structural equations in topological order.
    ///
    /// # Panics
    /// If `u` or `x_out` is not `D` long (a programming error, not a data error).
    pub fn generate_row(&self, u: &[f64], x_out: &mut [f64]) {
        let d = self.n_features();
        assert!(
            u.len() == d && x_out.len() == d,
            "generate_row: rows must have {d} entries"
        );
        for &i in self.graph.order() {
            x_out[i] = equations::structural(self.dataset, i, x_out, u[i]);
        }
    }

    /// `u = f^-1(x)` for one individual, with the true inverse of each equation.
    pub fn abduct_row(&self, x: &[f64], u_out: &mut [f64]) -> Result<(), ScmError> {
        let d = self.n_features();
        check_len("x", d, x.len())?;
        check_len("u", d, u_out.len())?;
        let names = self.dataset.feature_names();
        for (i, &v) in x.iter().enumerate() {
            if !v.is_finite() {
                return Err(ScmError::NonFinite {
                    feature: names[i],
                    value: v,
                });
            }
        }
        for i in 0..d {
            let u = equations::inverse(self.dataset, i, x);
            if !u.is_finite() {
                return Err(ScmError::OutsideSupport {
                    dataset: self.dataset,
                    feature: names[i],
                    value: x[i],
                });
            }
            u_out[i] = u;
        }
        Ok(())
    }

    /// Abduct every row of `x`.
    pub fn abduct(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>, ScmError> {
        let d = self.n_features();
        check_len("columns of x", d, x.ncols())?;
        let mut u = Array2::zeros(x.raw_dim());
        let mut x_row = vec![0.0; d];
        let mut u_row = vec![0.0; d];
        for (xr, mut ur) in x.rows().into_iter().zip(u.rows_mut()) {
            x_row.iter_mut().zip(xr).for_each(|(a, b)| *a = *b);
            self.abduct_row(&x_row, &mut u_row)?;
            ur.iter_mut().zip(&u_row).for_each(|(a, b)| *a = *b);
        }
        Ok(u)
    }

    /// The label logit `g(x, u_1)` (docs/MATH.md section 2, datasets).
    pub fn logit(&self, x: &[f64], u: &[f64]) -> f64 {
        equations::label_logit(self.dataset, x, u[1])
    }

    /// The deterministic label `1[sigmoid(g(x, u_1)) >= 0.5]`, as 0.0 or 1.0.
    pub fn label(&self, x: &[f64], u: &[f64]) -> f64 {
        // NaN (never for finite SCM samples) compares false: rejected.
        if sigmoid(self.logit(x, u)) >= ACCEPT_THRESHOLD {
            1.0
        } else {
            0.0
        }
    }

    /// The counterfactual of `x` under `do(x_k = v)` for each `(k, v)`: abduct `u`, set the
    /// intervened features, recompute their descendants in topological order; every other
    /// feature keeps its factual value exactly.
    pub fn counterfactual(
        &self,
        x: &[f64],
        interventions: &[(usize, f64)],
    ) -> Result<Vec<f64>, ScmError> {
        let mut out = vec![0.0; self.n_features()];
        self.counterfactual_into(x, interventions, &mut out)?;
        Ok(out)
    }

    /// [`Scm::counterfactual`] into a caller buffer, without allocating (the oracle's call).
    pub fn counterfactual_into(
        &self,
        x: &[f64],
        interventions: &[(usize, f64)],
        out: &mut [f64],
    ) -> Result<(), ScmError> {
        let d = self.n_features();
        check_len("out", d, out.len())?;
        // Graphs have at most MAX_FEATURES nodes: u fits on the stack.
        let mut u_buf = [0.0; MAX_FEATURES];
        let u = &mut u_buf[..d];
        self.abduct_row(x, u)?;
        let mut mask = 0u64;
        for &(k, v) in interventions {
            self.check_intervention(k, v)?;
            mask |= 1 << k;
            out[k] = v;
        }
        self.propagate(x, u, mask, out);
        Ok(())
    }

    /// Counterfactuals of one individual under many intervention sets, without allocating per
    /// candidate. Row `c` of `out` is `x` under `do(x_k = values[[c, k]])` for every bit `k` set in
    /// `masks[c]` (entries of `values` outside the mask are ignored).
    pub fn counterfactual_batch(
        &self,
        x: &[f64],
        masks: &[u64],
        values: ArrayView2<'_, f64>,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<(), ScmError> {
        let d = self.n_features();
        check_len("columns of values", d, values.ncols())?;
        check_len("columns of out", d, out.ncols())?;
        check_len("rows of values", masks.len(), values.nrows())?;
        check_len("rows of out", masks.len(), out.nrows())?;
        let mut u = vec![0.0; d];
        self.abduct_row(x, &mut u)?;
        let mut v_row = vec![0.0; d];
        let mut o_row = vec![0.0; d];
        for ((&mask, v), mut o) in masks.iter().zip(values.rows()).zip(out.rows_mut()) {
            if d < MAX_FEATURES && mask >> d != 0 {
                return Err(ScmError::InterventionIndex {
                    index: (63 - mask.leading_zeros()) as usize,
                    len: d,
                });
            }
            for k in 0..d {
                v_row[k] = v[k];
                if mask & (1 << k) != 0 {
                    self.check_intervention(k, v_row[k])?;
                }
            }
            self.counterfactual_with_u(x, &u, mask, &v_row, &mut o_row);
            o.iter_mut().zip(&o_row).for_each(|(a, b)| *a = *b);
        }
        Ok(())
    }

    /// The core of every counterfactual, for callers that abducted `u` themselves (the oracle's
    /// inner loop): `x_cf[k] = values[k]` for `k` in `mask`; a feature with an intervened or
    /// changed ancestor is recomputed from its equation with the abducted `u`; the rest are copied
    /// from `x`. No checks, no allocation.
    ///
    /// # Panics
    /// If a slice is not `D` long.
    pub fn counterfactual_with_u(
        &self,
        x: &[f64],
        u: &[f64],
        mask: u64,
        values: &[f64],
        out: &mut [f64],
    ) {
        for k in 0..self.n_features() {
            if mask & (1 << k) != 0 {
                out[k] = values[k];
            }
        }
        self.propagate(x, u, mask, out);
    }

    /// `out` holds the intervened values at the bits of `mask`; fill in the rest.
    fn propagate(&self, x: &[f64], u: &[f64], mask: u64, out: &mut [f64]) {
        let mut moved = mask;
        for &i in self.graph.order() {
            let bit = 1u64 << i;
            if mask & bit != 0 {
                continue;
            }
            if self.graph.parents(i).iter().any(|&p| moved & (1 << p) != 0) {
                out[i] = equations::structural(self.dataset, i, out, u[i]);
                moved |= bit;
            } else {
                out[i] = x[i];
            }
        }
    }

    fn check_intervention(&self, k: usize, v: f64) -> Result<(), ScmError> {
        let d = self.n_features();
        if k >= d {
            return Err(ScmError::InterventionIndex { index: k, len: d });
        }
        if !v.is_finite() {
            return Err(ScmError::NonFiniteIntervention {
                feature: self.dataset.feature_names()[k],
                value: v,
            });
        }
        Ok(())
    }
}

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), ScmError> {
    if expected == found {
        Ok(())
    } else {
        Err(ScmError::Shape {
            what,
            expected,
            found,
        })
    }
}
