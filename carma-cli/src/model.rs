//! Model files: read the bytes, decode and validate them with the core, and describe the
//! features the way the trainer's CSV reader needs them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use carma_core::le::F32s;
use carma_core::{Bundle, Kind};
use carma_train::graph::{CausalGraph, Feature, FeatureKind};

/// A model file's bytes, kept so a [`Bundle`] can borrow them.
pub struct ModelFile {
    /// Where the bytes came from (named in every error).
    pub path: PathBuf,
    /// The whole file.
    pub bytes: Vec<u8>,
}

impl ModelFile {
    /// Read `path`: the header first, then only as many bytes as it announces (at most
    /// [`carma_train::io::MAX_MODEL_BYTES`]), so `/dev/zero` or a huge file is refused at once instead of being
    /// read whole.
    pub fn read(path: &Path) -> anyhow::Result<ModelFile> {
        Ok(ModelFile {
            path: path.to_path_buf(),
            bytes: read_model_bytes(path)?,
        })
    }

    /// Decode and validate: a bad file gives the core's typed error, naming the file.
    pub fn bundle(&self) -> anyhow::Result<Bundle<'_>> {
        Bundle::new(&self.bytes).map_err(|e| {
            anyhow::Error::new(e)
                .context(format!("{}: not a usable carma model", self.path.display()))
        })
    }
}

/// A model file's bytes, bounded (see [`carma_train::io::read_model_bytes`]).
pub fn read_model_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(carma_train::io::read_model_bytes(path)?)
}

/// Feature `i`'s name; the core validated that there are `D` non-empty names.
pub fn name<'a>(bundle: &Bundle<'a>, i: usize) -> &'a str {
    bundle.feature_name(i).unwrap_or("?")
}

/// Every feature name, in the bundle's column order.
pub fn names(bundle: &Bundle<'_>) -> Vec<String> {
    (0..bundle.n_features())
        .map(|i| name(bundle, i).to_owned())
        .collect()
}

/// The preference weight of feature `i`, when the bundle has CARMA networks.
pub fn weight(bundle: &Bundle<'_>, i: usize) -> Option<f32> {
    let carma = bundle.wire().carma?;
    F32s::new(carma.weights)?.get(i)
}

/// Number of `f32` parameters in a params byte section.
pub fn n_params(params: &[u8]) -> usize {
    params.len() / std::mem::size_of::<f32>()
}

/// The bundle's causal graph as the trainer describes it, so CSV input is matched to the model's
/// features by name and binary columns are checked the same way as in training.
pub fn graph(bundle: &Bundle<'_>, file: &Path) -> anyhow::Result<CausalGraph> {
    let features = (0..bundle.n_features())
        .map(|i| {
            let kind = match bundle.kind(i) {
                Kind::Binary => FeatureKind::Binary,
                Kind::Integer { .. } => FeatureKind::Integer,
                Kind::Categorical { .. } => FeatureKind::Categorical,
                Kind::Continuous => FeatureKind::Continuous,
            };
            let mut f = Feature::new(
                name(bundle, i),
                kind,
                bundle.is_actionable(i),
                bundle.parents(i).iter().collect(),
            );
            match bundle.kind(i) {
                Kind::Integer { step } => f.step = Some(f64::from(step)),
                Kind::Categorical { levels } => {
                    f.levels = (0..levels)
                        .map(|l| bundle.level_name(i, l).unwrap_or_default().to_owned())
                        .collect();
                }
                _ => {}
            }
            if let Some(w) = weight(bundle, i) {
                f.weight = f64::from(w);
            }
            f
        })
        .collect();
    CausalGraph::new(features)
        .with_context(|| format!("{}: the model's causal graph", file.display()))
}

/// Resolve comma-separated feature names (`--forbid education,income`) to indices; an unknown
/// name is an error listing the valid ones.
pub fn feature_indices(bundle: &Bundle<'_>, list: &[String]) -> anyhow::Result<Vec<usize>> {
    let all = names(bundle);
    list.iter()
        .map(|wanted| {
            let wanted = wanted.trim();
            all.iter().position(|n| n == wanted).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown feature '{wanted}' (the model's features are: {})",
                    all.join(", ")
                )
            })
        })
        .collect()
}

/// Resolve `--forbid` values: a value naming a feature exactly is that feature (a name may hold
/// a comma); any other value is a comma-separated list. Repeats are kept once.
pub fn forbid_indices(bundle: &Bundle<'_>, values: &[String]) -> anyhow::Result<Vec<usize>> {
    let all = names(bundle);
    let mut out = Vec::new();
    for value in values {
        let parts: Vec<String> = if all.iter().any(|n| n == value.trim()) {
            vec![value.trim().to_owned()]
        } else {
            value.split(',').map(str::to_owned).collect()
        };
        for i in feature_indices(bundle, &parts)? {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    Ok(out)
}
