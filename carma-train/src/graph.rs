//! The causal graph: features, their kinds, parents and actionability.

/// Whether a feature takes any real value or only 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// A real-valued feature.
    Continuous,
    /// A feature that is 0 or 1.
    Binary,
}

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
}

/// A validated directed acyclic graph over the features, with a topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct CausalGraph {
    features: Vec<Feature>,
    order: Vec<usize>,
}

impl CausalGraph {
    /// The features, in column order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when there are no features.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Parents of feature `i`.
    pub fn parents(&self, i: usize) -> &[usize] {
        &self.features[i].parents
    }

    /// A topological order (parents before children).
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}
