//! What a model file holds, as one JSON value: `carma inspect --json` prints it and the Python
//! package's `Model.info()` returns it, so both describe a model with the same keys.

use carma_core::le::{F32s, U16s};
use carma_core::{Bundle, Kind};
use serde_json::{Value, json};

fn widths(bytes: &[u8]) -> Vec<u16> {
    U16s::new(bytes)
        .map(|d| d.iter().collect())
        .unwrap_or_default()
}

fn n_params(params: &[u8]) -> usize {
    params.len() / std::mem::size_of::<f32>()
}

fn name<'a>(bundle: &Bundle<'a>, i: usize) -> &'a str {
    bundle.feature_name(i).unwrap_or("?")
}

/// The direction a recommendation may move feature `i`: `any`, `increase` or `decrease`.
pub fn direction(bundle: &Bundle<'_>, i: usize) -> &'static str {
    match bundle.direction(i) {
        carma_core::Direction::Increase => "increase",
        carma_core::Direction::Decrease => "decrease",
        _ => "any",
    }
}

/// The graph file's word for feature `i`'s kind.
pub fn kind_word(bundle: &Bundle<'_>, i: usize) -> &'static str {
    match bundle.kind(i) {
        Kind::Continuous => "continuous",
        Kind::Binary => "binary",
        Kind::Integer { .. } => "integer",
        Kind::Categorical { .. } => "categorical",
    }
}

/// The level names of a categorical feature (empty for the other kinds).
pub fn levels<'a>(bundle: &Bundle<'a>, i: usize) -> Vec<&'a str> {
    match bundle.kind(i) {
        Kind::Categorical { levels } => (0..levels)
            .filter_map(|l| bundle.level_name(i, l))
            .collect(),
        _ => Vec::new(),
    }
}

/// The preference weight of feature `i`, when the bundle has CARMA networks.
pub fn weight(bundle: &Bundle<'_>, i: usize) -> Option<f32> {
    let carma = bundle.wire().carma?;
    F32s::new(carma.weights)?.get(i)
}

/// The summary of `bundle`, decoded from `bytes` read from `file`: metadata, features, network
/// sizes and metrics.
pub fn summary_json(file: &str, bytes: &[u8], bundle: &Bundle<'_>) -> Value {
    let w = bundle.wire();
    let features: Vec<Value> = (0..bundle.n_features())
        .map(|i| {
            json!({
                "name": name(bundle, i),
                "kind": kind_word(bundle, i),
                "step": match bundle.kind(i) { Kind::Integer { step } => Some(step), _ => None },
                "levels": levels(bundle, i),
                "actionable": bundle.is_actionable(i),
                "parents": bundle.parents(i).iter().map(|p| name(bundle, p)).collect::<Vec<_>>(),
                "weight": weight(bundle, i),
                "mean": bundle.mean(i),
                "std": bundle.std(i),
                "min": bundle.bounds(i).map(|b| b.0),
                "max": bundle.bounds(i).map(|b| b.1),
                "direction": direction(bundle, i),
            })
        })
        .collect();
    let mut nets = vec![
        ("causal_flow", widths(w.flow.dims), n_params(w.flow.params)),
        (
            "classifier",
            widths(w.classifier.dims),
            n_params(w.classifier.params),
        ),
    ];
    if let Some(c) = &w.carma {
        nets.push((
            "mask_network",
            widths(c.mask_net.dims),
            n_params(c.mask_net.params),
        ));
        nets.push((
            "action_network",
            widths(c.action_net.dims),
            n_params(c.action_net.params),
        ));
    }
    let nets: serde_json::Map<String, Value> = nets
        .into_iter()
        .map(|(n, dims, params)| {
            (
                n.to_owned(),
                json!({ "widths": dims, "parameters": params }),
            )
        })
        .collect();
    let m = &w.meta.metrics;
    json!({
        "file": file,
        "dataset": w.meta.dataset,
        "seed": w.meta.seed,
        "trainer": w.meta.trainer,
        // Bundle::new checked the header, so these two bytes are the version it read.
        "format_version": bytes.get(8..10).map(|v| u16::from_le_bytes([v[0], v[1]])),
        "recommends": w.carma.is_some(),
        "features": features,
        "sizes": {
            "file_bytes": bytes.len(),
            "flow_layers": w.flow.layers,
            "networks": nets,
            "scratch_floats": bundle.scratch_len(),
            "scratch_bytes": bundle.scratch_bytes(),
        },
        "metrics": {
            "n_train": m.n_train,
            "n_test": m.n_test,
            "classifier_test_accuracy": m.classifier_test_accuracy,
            "flow_test_loglik": m.flow_test_loglik,
            "carma_coverage": m.carma_coverage,
            "carma_validity": m.carma_validity,
            "carma_cost": m.carma_cost,
            "carma_mean_actions": m.carma_mean_actions,
        },
    })
}
