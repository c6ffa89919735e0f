//! What `carma fit` checks before any training, shared with the Python package so both refuse
//! the same inputs with the same words: a mistake found after minutes of training would waste
//! them. Each check names its source (a file, or `DataFrame`), given by the caller.

use crate::data::Table;
use crate::graph::CausalGraph;
use crate::pipeline::PipelineConfig;

/// Fewest data rows `fit` accepts: 60 % train (the scaler needs 2 rows, the classifier a few),
/// 20 % validation, 20 % test.
pub const MIN_ROWS: usize = 10;

/// A continuous column whose `|mean| / std` exceeds this loses its variation in the model's
/// 32-bit floats (which resolve about 1 part in 10^7 of a value): at 10^4, one unit of
/// rounding is still a thousandth of the column's spread.
pub const MAX_OFFSET_TO_SPREAD: f64 = 1e4;

/// Why the inputs of a fit were refused before training.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PreflightError(pub String);

/// Multiply every stage's epoch budget by `scale` (rounded up, at least 1).
pub fn scale_epochs(cfg: &mut PipelineConfig, scale: f64) {
    let scaled = |e: &mut usize| *e = ((*e as f64 * scale).ceil() as usize).max(1);
    scaled(&mut cfg.classifier.epochs);
    scaled(&mut cfg.flow.epochs);
    scaled(&mut cfg.carma.epochs);
}

/// The graph has something to recommend, the preference weights fit it and the label is not
/// one of its features. `graph_name` and `config_name` say where they came from.
pub fn check_setup(
    cfg: &PipelineConfig,
    graph: &CausalGraph,
    label: &str,
    graph_name: &str,
    config_name: &str,
) -> Result<(), PreflightError> {
    if graph.actionable().is_empty() {
        return Err(PreflightError(format!(
            "{graph_name}: no feature is actionable, so there is nothing to recommend (mark at \
             least one feature `actionable = true`)"
        )));
    }
    if let Some(w) = &cfg.weights
        && (w.len() != graph.len() || w.iter().any(|w| !(w.is_finite() && *w > 0.0)))
    {
        return Err(PreflightError(format!(
            "{config_name}: weights must be {} positive numbers, one per feature of {graph_name} \
             ({}), got {w:?}",
            graph.len(),
            graph.names().join(", ")
        )));
    }
    if graph.index_of(label).is_some() {
        return Err(PreflightError(format!(
            "--label {label}: '{label}' is a feature of the causal graph {graph_name}; the label \
             must be a separate 0/1 column (the decision to explain), not one of the features"
        )));
    }
    Ok(())
}

/// What training would only find later, or not at all: too few rows, a constant column, a
/// column whose offset hides its variation in 32-bit floats. `data_name` names the data.
pub fn check_table(
    table: &Table,
    graph: &CausalGraph,
    data_name: &str,
) -> Result<(), PreflightError> {
    let n = table.n_rows();
    if n < MIN_ROWS {
        return Err(PreflightError(format!(
            "{data_name}: {n} data row{}; fit needs at least {MIN_ROWS} (60 % of them train the \
             model, 20 % validate it and 20 % test it)",
            if n == 1 { "" } else { "s" }
        )));
    }
    for (j, column) in table.x.columns().into_iter().enumerate() {
        let name = &graph.features()[j].name;
        let mean = column.mean().unwrap_or(0.0);
        let std = column.std(1.0);
        if std <= 1e-12 * mean.abs().max(1.0) {
            return Err(PreflightError(format!(
                "{data_name}: column '{name}' is constant ({}) in every row: it cannot be \
                 standardized or learned from; drop it from the data and the graph, or vary it",
                column[0]
            )));
        }
        if !graph.is_binary(j) && mean.abs() / std > MAX_OFFSET_TO_SPREAD {
            return Err(PreflightError(format!(
                "{data_name}: column '{name}' varies by about {std:.3e} around {mean:.6e}: the \
                 model computes in 32-bit floats, which cannot represent variations that small \
                 relative to the value (|mean| / std over {MAX_OFFSET_TO_SPREAD:e}); subtract an \
                 offset from the column (e.g. {:.0}) before training",
                mean.round()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Feature, FeatureKind};
    use ndarray::Array2;

    fn graph() -> CausalGraph {
        CausalGraph::new(vec![
            Feature::new("a", FeatureKind::Continuous, true, vec![]),
            Feature::new("b", FeatureKind::Continuous, false, vec![0]),
        ])
        .unwrap()
    }

    #[test]
    fn too_few_rows_a_constant_column_and_a_large_offset_are_refused_by_name() {
        let g = graph();
        let table = |x: Array2<f64>| Table::new(g.names(), x, None).unwrap();
        let few = table(Array2::from_shape_fn((3, 2), |(i, j)| (i + j) as f64));
        let e = check_table(&few, &g, "d.csv").unwrap_err().0;
        assert!(
            e.starts_with("d.csv: 3 data rows; fit needs at least 10"),
            "{e}"
        );
        let constant = table(Array2::from_shape_fn((20, 2), |(i, j)| (i * j) as f64));
        let e = check_table(&constant, &g, "DataFrame").unwrap_err().0;
        assert!(
            e.starts_with("DataFrame: column 'a' is constant (0)"),
            "{e}"
        );
        let offset = table(Array2::from_shape_fn((20, 2), |(i, j)| {
            1e9 * j as f64 + i as f64
        }));
        let e = check_table(&offset, &g, "d.csv").unwrap_err().0;
        assert!(e.contains("column 'b' varies by about"), "{e}");
        let fine = table(Array2::from_shape_fn((20, 2), |(i, j)| {
            (i * (j + 1)) as f64
        }));
        assert_eq!(check_table(&fine, &g, "d.csv"), Ok(()));
    }

    #[test]
    fn a_label_that_is_a_feature_and_bad_weights_are_refused() {
        let g = graph();
        let cfg = PipelineConfig::default();
        let e = check_setup(&cfg, &g, "b", "g.toml", "cfg").unwrap_err().0;
        assert!(
            e.starts_with("--label b: 'b' is a feature of the causal graph g.toml"),
            "{e}"
        );
        let bad = PipelineConfig {
            weights: Some(vec![1.0]),
            ..PipelineConfig::default()
        };
        let e = check_setup(&bad, &g, "y", "g.toml", "cfg").unwrap_err().0;
        assert!(
            e.starts_with("cfg: weights must be 2 positive numbers"),
            "{e}"
        );
        assert_eq!(check_setup(&cfg, &g, "y", "g.toml", "cfg"), Ok(()));
    }

    #[test]
    fn scaling_epochs_rounds_up_and_keeps_at_least_one() {
        let mut cfg = PipelineConfig::default();
        let (c, f) = (cfg.classifier.epochs, cfg.flow.epochs);
        scale_epochs(&mut cfg, 0.5);
        assert_eq!(cfg.classifier.epochs, c.div_ceil(2));
        assert_eq!(cfg.flow.epochs, f.div_ceil(2));
        scale_epochs(&mut cfg, 1e-9);
        assert_eq!((cfg.classifier.epochs, cfg.carma.epochs), (1, 1));
    }
}
