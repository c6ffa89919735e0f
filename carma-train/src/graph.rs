//! The causal graph: features, their kinds, parents and actionability.
//!
//! A [`CausalGraph`] is built once, validated (names, parents, cycles, weights), and then
//! trusted by everything downstream: the MADE masks of the flow, the inversion schedule
//! (depth), the SCM counterfactuals and the CSV column matching.
//!
//! Graphs can be written by hand as TOML (see `docs/loan-graph.toml`):
//!
//! ```toml
//! [[feature]]
//! name = "income"
//! kind = "continuous"     # or "binary", "integer", "categorical"
//! actionable = true
//! parents = ["gender", "age", "education"]
//! weight = 2.0            # optional preference weight, default 1
//! min = 0.0               # optional: no recommendation goes below (original units)
//! max = 250.0             # optional: nor above
//! direction = "increase"  # optional: "increase", "decrease" or "any" (default)
//!
//! [[feature]]
//! name = "children"
//! kind = "integer"
//! step = 1                # optional, default 1: values are multiples of it
//! actionable = false
//!
//! [[feature]]
//! name = "housing"
//! kind = "categorical"
//! levels = ["rent", "own", "free"]   # coded 0, 1, 2 in the data and the flow
//! actionable = true
//! ```
//!
//! Categorical levels are ordinal codes (docs/MATH.md, section 6): a CSV cell holds a level's
//! name or its code; `min` / `max` / `direction` of a categorical feature are codes.
//!
//! Without `min` / `max` the exported bundle bounds a feature by its training range widened
//! by [`carma_core::format::BOUND_MARGIN`] (10 %) of that range on each side (`[0, 1]` for a
//! binary feature).

use std::fmt::Write as _;
use std::path::Path;

use ndarray::Array2;
use serde::Deserialize;

/// The largest number of features a graph may have: the core's feature sets are `u64` masks.
pub const MAX_FEATURES: usize = carma_core::format::MAX_FEATURES;

/// Preference weight of a feature whose graph file gives none (docs/MATH.md section 1, problem & cost: unweighted cost).
pub const DEFAULT_WEIGHT: f64 = 1.0;

/// What values a feature takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// A real-valued feature.
    Continuous,
    /// A feature that is 0 or 1.
    Binary,
    /// Multiples of [`Feature::step`].
    Integer,
    /// One of [`Feature::levels`], coded `0..levels.len()`.
    Categorical,
}

impl FeatureKind {
    /// The word used in graph files.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::Continuous => "continuous",
            FeatureKind::Binary => "binary",
            FeatureKind::Integer => "integer",
            FeatureKind::Categorical => "categorical",
        }
    }
}

/// The most levels a categorical feature may have (the bundle stores the count in a byte).
pub const MAX_LEVELS: usize = 255;

/// One node of the causal graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Column name.
    pub name: String,
    /// Binary or continuous.
    pub kind: FeatureKind,
    /// May a recommendation intervene on it?
    pub actionable: bool,
    /// Preference weight for the cost (1 by default; larger is costlier).
    pub weight: f64,
    /// Indices of the parents.
    pub parents: Vec<usize>,
    /// Lowest value a recommendation may set (original units); `None`: the
    /// training range's default.
    pub min: Option<f64>,
    /// Highest value a recommendation may set; `None`: the default.
    pub max: Option<f64>,
    /// Which way a recommendation may move the feature.
    pub direction: Direction,
    /// The grid step of an integer feature (`None`: 1); `None` for the other kinds.
    pub step: Option<f64>,
    /// The level names of a categorical feature, in code order; empty for the other kinds.
    pub levels: Vec<String>,
}

/// Which way a recommendation may move a feature (the graph file's `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Up or down.
    #[default]
    Any,
    /// Only up (age can only grow).
    Increase,
    /// Only down (a debt can only be paid down).
    Decrease,
}

impl Direction {
    /// The word used in graph files.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Any => "any",
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
        }
    }

    /// The bundle's direction.
    pub fn to_core(self) -> carma_core::Direction {
        match self {
            Direction::Any => carma_core::Direction::Any,
            Direction::Increase => carma_core::Direction::Increase,
            Direction::Decrease => carma_core::Direction::Decrease,
        }
    }
}

impl Feature {
    /// A feature with weight [`DEFAULT_WEIGHT`].
    pub fn new(
        name: impl Into<String>,
        kind: FeatureKind,
        actionable: bool,
        parents: Vec<usize>,
    ) -> Self {
        Feature {
            name: name.into(),
            kind,
            actionable,
            weight: DEFAULT_WEIGHT,
            parents,
            min: None,
            max: None,
            direction: Direction::Any,
            step: None,
            levels: Vec::new(),
        }
    }

    /// A categorical feature with these levels (coded in this order).
    pub fn categorical(
        name: impl Into<String>,
        levels: Vec<String>,
        actionable: bool,
        parents: Vec<usize>,
    ) -> Self {
        Feature {
            levels,
            ..Feature::new(name, FeatureKind::Categorical, actionable, parents)
        }
    }

    /// The grid step: [`Feature::step`] (default 1) for an integer feature, 1 for a
    /// categorical one, `None` for the others.
    pub fn grid_step(&self) -> Option<f64> {
        match self.kind {
            FeatureKind::Integer => Some(self.step.unwrap_or(1.0)),
            FeatureKind::Categorical => Some(1.0),
            _ => None,
        }
    }

    /// `v` on this feature's grid: the multiple of the step (or the level's
    /// code) it is, to a millionth of a step, or `None` if it is none (a
    /// decimal such as 0.3 is not an exact binary multiple of 0.1); `v`
    /// itself for a continuous or binary feature.
    pub fn grid_value(&self, v: f64) -> Option<f64> {
        let Some(step) = self.grid_step() else {
            return Some(v);
        };
        let k = (v / step).round();
        let levels = self.levels.len() as f64;
        let in_levels = self.kind != FeatureKind::Categorical || (0.0..levels).contains(&k);
        ((v - k * step).abs() <= 1e-6 * step && in_levels).then_some(k * step)
    }

    /// The code of a categorical feature's level `name`.
    pub fn level_code(&self, name: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == name)
    }
}

/// Why a graph was refused. Variants name the feature at fault; [`GraphError::InFile`] adds the
/// file and, where known, the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The graph has no features.
    #[error("the graph has no features (expected at least one [[feature]] entry)")]
    Empty,
    /// More features than the core can address.
    #[error("the graph has {found} features; at most {max} are supported")]
    TooManyFeatures {
        /// Number of features given.
        found: usize,
        /// [`MAX_FEATURES`].
        max: usize,
    },
    /// A feature name is empty or only whitespace.
    #[error("feature {index} has an empty name")]
    EmptyName {
        /// Index of the feature.
        index: usize,
    },
    /// Two features share a name.
    #[error("duplicate feature name '{name}' (features {first} and {second})")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// Index of the first feature with that name.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// A feature lists itself as a parent.
    #[error("feature '{feature}' lists itself as a parent (self-loop)")]
    SelfLoop {
        /// The feature.
        feature: String,
    },
    /// A parent index does not name a feature.
    #[error("feature '{feature}' has parent index {parent}, but there are only {len} features")]
    ParentOutOfRange {
        /// The feature.
        feature: String,
        /// The bad index.
        parent: usize,
        /// Number of features.
        len: usize,
    },
    /// A parent name does not name a feature (graph files).
    #[error(
        "feature '{feature}' has unknown parent '{parent}' (expected the name of another feature)"
    )]
    UnknownParent {
        /// The feature.
        feature: String,
        /// The unknown name.
        parent: String,
    },
    /// A parent is listed twice.
    #[error("feature '{feature}' lists parent '{parent}' twice")]
    DuplicateParent {
        /// The feature.
        feature: String,
        /// The repeated parent.
        parent: String,
    },
    /// The parent relation has a cycle; `cycle` lists it parent-first, closing on its start.
    #[error("the graph has a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// Feature names along the cycle, each a parent of the next; the first is repeated last.
        cycle: Vec<String>,
    },
    /// A preference weight is not a positive finite number.
    #[error("feature '{feature}' has weight {weight}; expected a positive finite number")]
    BadWeight {
        /// The feature.
        feature: String,
        /// The weight given.
        weight: f64,
    },
    /// A feature's `min` or `max` is not finite (as an `f32`), or `min > max`.
    #[error(
        "feature '{feature}' has bounds min = {min:?}, max = {max:?}; expected finite numbers with min <= max"
    )]
    BadBounds {
        /// The feature.
        feature: String,
        /// The `min` given.
        min: Option<f64>,
        /// The `max` given.
        max: Option<f64>,
    },
    /// A feature's `step` or `levels` do not fit its kind.
    #[error("feature '{feature}': {problem}")]
    BadKind {
        /// The feature.
        feature: String,
        /// What is wrong, in words.
        problem: String,
    },
    /// The TOML text does not parse or does not have the expected shape.
    #[error("{message}")]
    Syntax {
        /// The parser's message (what was expected).
        message: String,
    },
    /// The graph file could not be read.
    #[error("cannot read the graph file: {source}")]
    Io {
        /// The operating-system error.
        #[from]
        source: std::io::Error,
    },
    /// An error found in a graph file: names the file and, when known, the line.
    #[error("{file}{}: {source}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    InFile {
        /// The file (or label) the graph came from.
        file: String,
        /// 1-based line, when the parser gave a position.
        line: Option<usize>,
        /// What is wrong.
        #[source]
        source: Box<GraphError>,
    },
}

impl GraphError {
    /// The error without its file context (for matching).
    pub fn kind(&self) -> &GraphError {
        match self {
            GraphError::InFile { source, .. } => source.kind(),
            other => other,
        }
    }

    fn in_file(self, file: &str, line: Option<usize>) -> GraphError {
        GraphError::InFile {
            file: file.to_owned(),
            line,
            source: Box::new(self),
        }
    }
}

/// A validated directed acyclic graph over the features, with a topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct CausalGraph {
    features: Vec<Feature>,
    order: Vec<usize>,
    depth: Vec<usize>,
}

impl CausalGraph {
    /// Validate `features` and compute the topological order and depths.
    ///
    /// Refuses: no features, more than [`MAX_FEATURES`], empty or duplicate names, self-loops,
    /// parent indices out of range, repeated parents, cycles (naming the features on one), and
    /// weights that are not positive and finite.
    pub fn new(features: Vec<Feature>) -> Result<Self, GraphError> {
        let len = features.len();
        if len == 0 {
            return Err(GraphError::Empty);
        }
        if len > MAX_FEATURES {
            return Err(GraphError::TooManyFeatures {
                found: len,
                max: MAX_FEATURES,
            });
        }
        for (i, f) in features.iter().enumerate() {
            if f.name.trim().is_empty() {
                return Err(GraphError::EmptyName { index: i });
            }
            if let Some(first) = features[..i].iter().position(|g| g.name == f.name) {
                return Err(GraphError::DuplicateName {
                    name: f.name.clone(),
                    first,
                    second: i,
                });
            }
            if !(f.weight.is_finite() && f.weight > 0.0) {
                return Err(GraphError::BadWeight {
                    feature: f.name.clone(),
                    weight: f.weight,
                });
            }
            check_kind(f)?;
            check_bounds(f)?;
            for (k, &p) in f.parents.iter().enumerate() {
                if p == i {
                    return Err(GraphError::SelfLoop {
                        feature: f.name.clone(),
                    });
                }
                if p >= len {
                    return Err(GraphError::ParentOutOfRange {
                        feature: f.name.clone(),
                        parent: p,
                        len,
                    });
                }
                if f.parents[..k].contains(&p) {
                    return Err(GraphError::DuplicateParent {
                        feature: f.name.clone(),
                        parent: features[p].name.clone(),
                    });
                }
            }
        }
        let order = topological_order(&features)?;
        let mut depth = vec![0; len];
        for &i in &order {
            depth[i] = features[i]
                .parents
                .iter()
                .map(|&p| depth[p] + 1)
                .max()
                .unwrap_or(0);
        }
        Ok(CausalGraph {
            features,
            order,
            depth,
        })
    }

    /// Parse a TOML graph file's text. `file_label` names the source in error messages.
    pub fn from_toml_str(text: &str, file_label: &str) -> Result<Self, GraphError> {
        let file: GraphFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            GraphError::Syntax {
                message: e.message().trim_end().to_owned(),
            }
            .in_file(file_label, line)
        })?;
        let entries = file.feature;
        let mut features = Vec::with_capacity(entries.len());
        for entry in &entries {
            let line = Some(line_of(text, entry.name.span().start));
            let name = entry.name.get_ref();
            let mut parents = Vec::with_capacity(entry.parents.len());
            for p in &entry.parents {
                let Some(idx) = entries.iter().position(|e| e.name.get_ref() == p.get_ref()) else {
                    return Err(GraphError::UnknownParent {
                        feature: name.clone(),
                        parent: p.get_ref().clone(),
                    }
                    .in_file(file_label, Some(line_of(text, p.span().start))));
                };
                parents.push(idx);
            }
            let weight = entry
                .weight
                .as_ref()
                .map_or(DEFAULT_WEIGHT, |w| *w.get_ref());
            let feature = Feature {
                name: name.clone(),
                kind: entry.kind,
                actionable: entry.actionable,
                weight,
                parents,
                min: entry.min,
                max: entry.max,
                direction: entry.direction,
                step: entry.step,
                levels: entry.levels.clone(),
            };
            // Per-feature checks here so the error carries the feature's line.
            if let Err(e) = CausalGraph::check_one(&feature, features.len(), &entries) {
                let line = match (&e, &entry.weight) {
                    (GraphError::BadWeight { .. }, Some(w)) => Some(line_of(text, w.span().start)),
                    _ => line,
                };
                return Err(e.in_file(file_label, line));
            }
            features.push(feature);
        }
        CausalGraph::new(features).map_err(|e| {
            // Cycles and the rest: point at the first feature named, when there is one.
            let line = match &e {
                GraphError::Cycle { cycle } => cycle
                    .first()
                    .and_then(|n| entries.iter().find(|e| e.name.get_ref() == n))
                    .map(|e| line_of(text, e.name.span().start)),
                _ => None,
            };
            e.in_file(file_label, line)
        })
    }

    /// Checks on one graph-file entry that can be made before the whole graph is known.
    fn check_one(f: &Feature, index: usize, entries: &[FeatureEntry]) -> Result<(), GraphError> {
        if f.name.trim().is_empty() {
            return Err(GraphError::EmptyName { index });
        }
        if let Some(first) = entries[..index]
            .iter()
            .position(|e| e.name.get_ref() == &f.name)
        {
            return Err(GraphError::DuplicateName {
                name: f.name.clone(),
                first,
                second: index,
            });
        }
        if f.parents.contains(&index) {
            return Err(GraphError::SelfLoop {
                feature: f.name.clone(),
            });
        }
        for (k, p) in f.parents.iter().enumerate() {
            if f.parents[..k].contains(p) {
                return Err(GraphError::DuplicateParent {
                    feature: f.name.clone(),
                    parent: entries[*p].name.get_ref().clone(),
                });
            }
        }
        if !(f.weight.is_finite() && f.weight > 0.0) {
            return Err(GraphError::BadWeight {
                feature: f.name.clone(),
                weight: f.weight,
            });
        }
        check_kind(f)?;
        check_bounds(f)
    }

    /// Read and parse a TOML graph file; errors name the path.
    pub fn from_toml_path(path: impl AsRef<Path>) -> Result<Self, GraphError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let text =
            crate::io::read_text(path).map_err(|e| GraphError::from(e).in_file(&label, None))?;
        CausalGraph::from_toml_str(&text, &label)
    }

    /// The graph as a TOML graph file ([`CausalGraph::from_toml_str`] reads it back).
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.features.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let parents: Vec<String> = f
                .parents
                .iter()
                .map(|&p| toml_string(&self.features[p].name))
                .collect();
            // Writing to a String cannot fail.
            let _ = writeln!(out, "[[feature]]");
            let _ = writeln!(out, "name = {}", toml_string(&f.name));
            let _ = writeln!(out, "kind = \"{}\"", f.kind.as_str());
            let _ = writeln!(out, "actionable = {}", f.actionable);
            let _ = writeln!(out, "parents = [{}]", parents.join(", "));
            if f.weight != DEFAULT_WEIGHT {
                let _ = writeln!(out, "weight = {:?}", f.weight);
            }
            if let Some(v) = f.min {
                let _ = writeln!(out, "min = {v:?}");
            }
            if let Some(v) = f.max {
                let _ = writeln!(out, "max = {v:?}");
            }
            if f.direction != Direction::Any {
                let _ = writeln!(out, "direction = \"{}\"", f.direction.as_str());
            }
            if let Some(step) = f.step {
                let _ = writeln!(out, "step = {step:?}");
            }
            if !f.levels.is_empty() {
                let levels: Vec<String> = f.levels.iter().map(|l| toml_string(l)).collect();
                let _ = writeln!(out, "levels = [{}]", levels.join(", "));
            }
        }
        out
    }

    /// The features, in column order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when there are no features (never, for a validated graph).
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Parents of feature `i`.
    pub fn parents(&self, i: usize) -> &[usize] {
        &self.features[i].parents
    }

    /// Children of feature `i`, in index order.
    pub fn children(&self, i: usize) -> Vec<usize> {
        (0..self.len())
            .filter(|&c| self.features[c].parents.contains(&i))
            .collect()
    }

    /// A topological order (parents before children; among nodes ready at the same time, the
    /// smallest index first, so the order is deterministic).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Depth of feature `i`: 0 for a root, else 1 + the largest depth of its parents.
    pub fn depth(&self, i: usize) -> usize {
        self.depth[i]
    }

    /// The largest depth of any feature (the length of the longest directed path).
    pub fn max_depth(&self) -> usize {
        self.depth.iter().copied().max().unwrap_or(0)
    }

    /// Index of the feature called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    /// Feature names, in column order.
    pub fn names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }

    /// Causal adjacency `A` (d x d): `A[[i, j]]` is true iff `x_j` is a parent of `x_i` (a row is
    /// the child), as in `reference/FLOW_MATH.md` section 1.
    pub fn adjacency(&self) -> Array2<bool> {
        let d = self.len();
        let mut a = Array2::from_elem((d, d), false);
        for (i, f) in self.features.iter().enumerate() {
            for &p in &f.parents {
                a[[i, p]] = true;
            }
        }
        a
    }

    /// Is feature `i` binary?
    pub fn is_binary(&self, i: usize) -> bool {
        self.features[i].kind == FeatureKind::Binary
    }

    /// The grid step of feature `i` if it is integer or categorical.
    pub fn grid_step(&self, i: usize) -> Option<f64> {
        self.features[i].grid_step()
    }

    /// Is feature `i` actionable?
    pub fn is_actionable(&self, i: usize) -> bool {
        self.features[i].actionable
    }

    /// Indices of the actionable features.
    pub fn actionable(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.features[i].actionable)
            .collect()
    }

    /// Preference weights, in column order.
    pub fn weights(&self) -> Vec<f64> {
        self.features.iter().map(|f| f.weight).collect()
    }

    /// Bit mask of the features downstream of the set `roots` (a bit mask), roots included.
    pub fn descendants_mask(&self, roots: u64) -> u64 {
        let mut mask = roots;
        for &i in &self.order {
            if self.features[i]
                .parents
                .iter()
                .any(|&p| mask & (1 << p) != 0)
            {
                mask |= 1 << i;
            }
        }
        mask
    }
}

/// Kahn's algorithm, smallest ready index first. On failure, names one cycle.
fn topological_order(features: &[Feature]) -> Result<Vec<usize>, GraphError> {
    let len = features.len();
    let mut placed = vec![false; len];
    let mut order = Vec::with_capacity(len);
    // Graphs are small (at most 64 nodes): a quadratic scan keeps the tie-break obvious.
    while order.len() < len {
        let ready =
            (0..len).find(|&i| !placed[i] && features[i].parents.iter().all(|&p| placed[p]));
        match ready {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                return Err(GraphError::Cycle {
                    cycle: find_cycle(features, &placed),
                });
            }
        }
    }
    Ok(order)
}

/// Every unplaced node has an unplaced parent: walk parents until a node repeats.
fn find_cycle(features: &[Feature], placed: &[bool]) -> Vec<String> {
    let start = placed.iter().position(|&p| !p).unwrap_or(0);
    let mut path = vec![start];
    let mut node = start;
    // Every unplaced node has an unplaced parent, so the walk only ends by closing a cycle.
    while let Some(&parent) = features[node].parents.iter().find(|&&p| !placed[p]) {
        if let Some(pos) = path.iter().position(|&n| n == parent) {
            // path[pos..] is child-first along parent links; reverse to read parent -> child.
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .rev()
                .map(|&n| features[n].name.clone())
                .collect();
            cycle.push(features[path[path.len() - 1]].name.clone());
            return cycle;
        }
        path.push(parent);
        node = parent;
    }
    path.iter().map(|&n| features[n].name.clone()).collect()
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML basic string with the needed escapes.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A feature's bounds are finite as `f32` values and ordered.
/// The `step` and `levels` fit the kind, and a categorical feature's bounds are codes.
fn check_kind(f: &Feature) -> Result<(), GraphError> {
    let bad = |problem: String| {
        Err(GraphError::BadKind {
            feature: f.name.clone(),
            problem,
        })
    };
    let kind = f.kind.as_str();
    if f.step.is_some() && f.kind != FeatureKind::Integer {
        return bad(format!(
            "a {kind} feature has no step (only an integer one does)"
        ));
    }
    if !f.levels.is_empty() && f.kind != FeatureKind::Categorical {
        return bad(format!(
            "a {kind} feature has no levels (only a categorical one does)"
        ));
    }
    match f.kind {
        FeatureKind::Integer => {
            if let Some(step) = f.step {
                if !(step.is_finite() && step > 0.0 && (step as f32) > 0.0) {
                    return bad(format!("step = {step}; expected a positive number"));
                }
            }
        }
        FeatureKind::Categorical => {
            let n = f.levels.len();
            if !(2..=MAX_LEVELS).contains(&n) {
                return bad(format!(
                    "a categorical feature needs 2 to {MAX_LEVELS} levels, found {n} (levels = [\"a\", \"b\", ...])"
                ));
            }
            for (i, l) in f.levels.iter().enumerate() {
                if l.trim().is_empty() || l.contains('\n') {
                    return bad(format!("level {i} is empty or spans lines"));
                }
                if f.levels[..i].contains(l) {
                    return bad(format!("level '{l}' is listed twice"));
                }
            }
            let last = (n - 1) as f64;
            for v in [f.min, f.max].into_iter().flatten() {
                if !(v.fract() == 0.0 && (0.0..=last).contains(&v)) {
                    return bad(format!(
                        "bound {v} is not a level's code (0 to {last}, in the order of levels)"
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_bounds(f: &Feature) -> Result<(), GraphError> {
    let finite = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && (v as f32).is_finite());
    let ordered = match (f.min, f.max) {
        (Some(lo), Some(hi)) => lo <= hi,
        _ => true,
    };
    if finite(f.min) && finite(f.max) && ordered {
        Ok(())
    } else {
        Err(GraphError::BadBounds {
            feature: f.name.clone(),
            min: f.min,
            max: f.max,
        })
    }
}

/// The graph file: a list of `[[feature]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    #[serde(default)]
    feature: Vec<FeatureEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureEntry {
    name: toml::Spanned<String>,
    kind: FeatureKind,
    actionable: bool,
    #[serde(default)]
    parents: Vec<toml::Spanned<String>>,
    #[serde(default)]
    weight: Option<toml::Spanned<f64>>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    direction: Direction,
    #[serde(default)]
    step: Option<f64>,
    #[serde(default)]
    levels: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feat(name: &str, parents: &[usize]) -> Feature {
        Feature::new(name, FeatureKind::Continuous, true, parents.to_vec())
    }

    const SMALL: &str = r#"
[[feature]]
name = "a"
kind = "binary"
actionable = false

[[feature]]
name = "b"
kind = "continuous"
actionable = true
parents = ["a"]
weight = 2.5

[[feature]]
name = "c"
kind = "continuous"
actionable = true
parents = ["a", "b"]
"#;

    #[test]
    fn topological_order_takes_smallest_ready_index_first() {
        // 0 <- 2, 1 root, 2 root, 3 <- 1
        let g = CausalGraph::new(vec![
            feat("a", &[2]),
            feat("b", &[]),
            feat("c", &[]),
            feat("d", &[1]),
        ])
        .unwrap();
        assert_eq!(g.order(), &[1, 2, 0, 3]);
        assert_eq!(
            (g.depth(0), g.depth(1), g.depth(2), g.depth(3)),
            (1, 0, 0, 1)
        );
        assert_eq!(g.max_depth(), 1);
    }

    #[test]
    fn depth_follows_longest_path() {
        let g = CausalGraph::new(vec![
            feat("s", &[]),
            feat("x1", &[0]),
            feat("x2", &[0, 1]),
            feat("x3", &[2]),
        ])
        .unwrap();
        assert_eq!(g.order(), &[0, 1, 2, 3]);
        assert_eq!(g.max_depth(), 3);
        assert_eq!(g.depth(2), 2);
        assert_eq!(g.children(0), vec![1, 2]);
        assert_eq!(g.descendants_mask(0b0010), 0b1110);
        let a = g.adjacency();
        assert!(a[[2, 0]] && a[[2, 1]] && !a[[0, 2]] && !a[[2, 2]]);
        assert_eq!(a.iter().filter(|&&b| b).count(), 4);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let err = CausalGraph::new(vec![feat("a", &[]), feat("a", &[])]).unwrap_err();
        assert!(
            matches!(err, GraphError::DuplicateName { ref name, first: 0, second: 1 } if name == "a")
        );
    }

    #[test]
    fn self_loops_are_refused() {
        let err = CausalGraph::new(vec![feat("a", &[]), feat("b", &[1])]).unwrap_err();
        assert!(matches!(err, GraphError::SelfLoop { ref feature } if feature == "b"));
    }

    #[test]
    fn parent_index_out_of_range_is_refused() {
        let err = CausalGraph::new(vec![feat("a", &[5])]).unwrap_err();
        assert!(matches!(
            err,
            GraphError::ParentOutOfRange {
                parent: 5,
                len: 1,
                ..
            }
        ));
    }

    #[test]
    fn cycles_are_refused_naming_the_features_on_them() {
        // r root; a <- c, b <- a, c <- b: cycle a -> b -> c -> a.
        let err = CausalGraph::new(vec![
            feat("r", &[]),
            feat("a", &[0, 3]),
            feat("b", &[1]),
            feat("c", &[2]),
        ])
        .unwrap_err();
        let GraphError::Cycle { cycle } = &err else {
            panic!("expected a cycle, got {err}")
        };
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle.first(), cycle.last());
        let mut on_cycle: Vec<&str> = cycle[..3].iter().map(String::as_str).collect();
        on_cycle.sort_unstable();
        assert_eq!(on_cycle, ["a", "b", "c"]);
        // Each listed feature is a parent of the next.
        let g_names = ["r", "a", "b", "c"];
        let parents: [&[usize]; 4] = [&[], &[0, 3], &[1], &[2]];
        for w in cycle.windows(2) {
            let child = g_names.iter().position(|n| *n == w[1]).unwrap();
            let parent = g_names.iter().position(|n| *n == w[0]).unwrap();
            assert!(
                parents[child].contains(&parent),
                "{} is not a parent of {}",
                w[0],
                w[1]
            );
        }
        assert!(err.to_string().contains(" -> "));
    }

    #[test]
    fn non_positive_or_non_finite_weights_are_refused() {
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut f = feat("a", &[]);
            f.weight = w;
            assert!(
                matches!(CausalGraph::new(vec![f]), Err(GraphError::BadWeight { .. })),
                "weight {w}"
            );
        }
    }

    #[test]
    fn empty_graph_and_too_many_features_are_refused() {
        assert!(matches!(CausalGraph::new(vec![]), Err(GraphError::Empty)));
        let many = (0..=MAX_FEATURES)
            .map(|i| feat(&format!("f{i}"), &[]))
            .collect();
        assert!(matches!(
            CausalGraph::new(many),
            Err(GraphError::TooManyFeatures { .. })
        ));
    }

    #[test]
    fn toml_graph_parses_names_kinds_parents_and_weights() {
        let g = CausalGraph::from_toml_str(SMALL, "small.toml").unwrap();
        assert_eq!(g.names(), ["a", "b", "c"]);
        assert!(g.is_binary(0) && !g.is_binary(1));
        assert_eq!(g.actionable(), vec![1, 2]);
        assert_eq!(g.parents(2), &[0, 1]);
        assert_eq!(g.weights(), vec![1.0, 2.5, 1.0]);
        assert_eq!(g.index_of("c"), Some(2));
        assert_eq!(g.index_of("z"), None);
    }

    #[test]
    fn toml_bounds_and_directions_parse_round_trip_and_are_checked() {
        let text = "[[feature]]\nname = \"age\"\nkind = \"continuous\"\nactionable = true\n\
                    min = 18.0\nmax = 99.0\ndirection = \"increase\"\n\n\
                    [[feature]]\nname = \"debt\"\nkind = \"continuous\"\nactionable = true\n\
                    direction = \"decrease\"\n";
        let g = CausalGraph::from_toml_str(text, "g.toml").unwrap();
        let f = g.features();
        assert_eq!(
            (f[0].min, f[0].max, f[0].direction),
            (Some(18.0), Some(99.0), Direction::Increase)
        );
        assert_eq!(
            (f[1].min, f[1].max, f[1].direction),
            (None, None, Direction::Decrease)
        );
        let back = CausalGraph::from_toml_str(&g.to_toml_string(), "back").unwrap();
        assert_eq!(back.features(), g.features());
        let bad = text.replace("max = 99.0", "max = 10.0");
        let e = CausalGraph::from_toml_str(&bad, "g.toml").unwrap_err();
        assert!(matches!(e.kind(), GraphError::BadBounds { .. }), "{e}");
        let bad = text.replace("\"increase\"", "\"up\"");
        assert!(CausalGraph::from_toml_str(&bad, "g.toml").is_err());
    }

    #[test]
    fn toml_round_trip_preserves_the_graph() {
        let g = CausalGraph::from_toml_str(SMALL, "small.toml").unwrap();
        let text = g.to_toml_string();
        let back = CausalGraph::from_toml_str(&text, "round-trip").unwrap();
        assert_eq!(g, back);
    }

    #[test]
    fn toml_unknown_parent_names_file_feature_line_and_parent() {
        let text = SMALL.replace(r#"parents = ["a", "b"]"#, r#"parents = ["a", "bb"]"#);
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err.kind(), GraphError::UnknownParent { feature, parent } if feature == "c" && parent == "bb")
        );
        let line = text.lines().position(|l| l.contains("\"bb\"")).unwrap() + 1;
        assert!(msg.starts_with(&format!("g.toml:{line}: ")), "{msg}");
        assert!(msg.contains("'c'") && msg.contains("'bb'"), "{msg}");
    }

    #[test]
    fn toml_cycle_names_file_and_features() {
        let text = SMALL.replace(
            "actionable = false",
            "actionable = false\nparents = [\"c\"]",
        );
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err.kind(), GraphError::Cycle { .. }), "{msg}");
        assert!(msg.starts_with("g.toml:") && msg.contains("cycle"), "{msg}");
        for n in ["'a'", "'c'"] {
            let bare = n.trim_matches('\'');
            assert!(msg.contains(bare), "{msg} should name {n}");
        }
    }

    #[test]
    fn toml_self_loop_and_duplicate_name_point_at_the_feature_line() {
        let text = SMALL.replace(r#"parents = ["a"]"#, r#"parents = ["a", "b"]"#);
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        assert!(matches!(err.kind(), GraphError::SelfLoop { feature } if feature == "b"));
        let line = text.lines().position(|l| l == "name = \"b\"").unwrap() + 1;
        assert!(
            err.to_string().starts_with(&format!("g.toml:{line}: ")),
            "{err}"
        );

        let text = SMALL.replace("name = \"c\"", "name = \"a\"");
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        assert!(
            matches!(err.kind(), GraphError::DuplicateName { name, .. } if name == "a"),
            "{err}"
        );
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "name = \"a\"")
            .last()
            .unwrap()
            .0
            + 1;
        assert!(
            err.to_string().starts_with(&format!("g.toml:{line}: ")),
            "{err}"
        );
    }

    #[test]
    fn toml_syntax_and_shape_errors_name_the_line() {
        let text = SMALL.replace("kind = \"continuous\"", "kind = \"real\"");
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        assert!(matches!(err.kind(), GraphError::Syntax { .. }));
        let line = text.lines().position(|l| l.contains("\"real\"")).unwrap() + 1;
        assert!(
            err.to_string().starts_with(&format!("g.toml:{line}: ")),
            "{err}"
        );

        let text = SMALL.replace(
            "actionable = true\nparents = [\"a\"]",
            "actionabel = true\nparents = [\"a\"]",
        );
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        assert!(err.to_string().contains("actionabel"), "{err}");

        let err = CausalGraph::from_toml_str("[[feature]\nname=", "g.toml").unwrap_err();
        assert!(err.to_string().starts_with("g.toml:1: "), "{err}");

        let err = CausalGraph::from_toml_str("", "empty.toml").unwrap_err();
        assert!(matches!(err.kind(), GraphError::Empty));
        assert!(err.to_string().starts_with("empty.toml: "), "{err}");

        let text = SMALL.replace("weight = 2.5", "weight = -2");
        let err = CausalGraph::from_toml_str(&text, "g.toml").unwrap_err();
        assert!(matches!(err.kind(), GraphError::BadWeight { .. }), "{err}");
        let line = text.lines().position(|l| l == "weight = -2").unwrap() + 1;
        assert!(
            err.to_string().starts_with(&format!("g.toml:{line}: ")),
            "{err}"
        );
    }

    #[test]
    fn toml_path_errors_name_the_path() {
        let err = CausalGraph::from_toml_path("/nonexistent/dir/graph.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/dir/graph.toml: cannot read"),
            "{err}"
        );
    }
}
