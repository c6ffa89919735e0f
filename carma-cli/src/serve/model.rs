//! The model a server answers with: the file's bytes and the [`Bundle`] decoded from them in one
//! value, checked fully before it serves, and swapped whole on a reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use carma_core::{Bundle, FeatureSet};

use crate::cmd::recommend::{RunLimits, refinement};
use crate::explain::Style;
use crate::model::{self, ModelFile};
use crate::recourse::{Recourse, Settings};
use crate::rows::RowLimit;

self_cell::self_cell!(
    /// A model file and the bundle borrowing its bytes.
    struct Decoded {
        owner: ModelFile,
        #[covariant]
        dependent: Bundle,
    }
);

/// What a key of a person's JSON object means for this model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Feature `i`'s value.
    Feature(usize),
    /// A per-person limit (`max_changes`, `<feature>_min`, `<feature>_max`, `<feature>_direction`).
    Limit(RowLimit),
    /// The person's identifier, echoed in the answer.
    Id,
}

/// A loaded, validated model.
pub struct Model {
    decoded: Decoded,
    /// Value formatting, computed once.
    pub style: Style,
    /// Feature names in the bundle's order.
    pub names: Vec<String>,
    /// Every key a person's object may hold.
    pub keys: HashMap<String, Key>,
    /// `carma inspect --json` of the file, serialized once.
    pub inspect: Vec<u8>,
    /// The file's CRC-32 (its trailer), in hex: names the model in answers, logs and metrics.
    pub fingerprint: String,
    /// 1 for the model loaded at start, one more for each reload that succeeded.
    pub generation: u64,
}

impl Model {
    /// Read, decode and validate `path`: a bundle the core accepts, with CARMA networks, a
    /// consistent causal graph, and a recommendation for the mean person that the core computes
    /// without an error. Nothing is served from a file that fails any of these.
    pub fn load(path: &Path, generation: u64) -> anyhow::Result<Model> {
        let file = ModelFile::read(path)?;
        let decoded = Decoded::try_new(file, |f| f.bundle())?;
        let bundle = decoded.borrow_dependent();
        let file = decoded.borrow_owner();
        if bundle.carma().is_none() {
            anyhow::bail!(
                "{}: the model has no CARMA networks (only a causal flow and a classifier, e.g. \
                 imported from PyTorch), so it cannot recommend",
                path.display()
            );
        }
        model::graph(bundle, &file.path)?;
        let d = bundle.n_features();
        let mean: Vec<f32> = (0..d)
            .map(|i| {
                let m = bundle.mean(i).unwrap_or(0.0);
                if bundle.is_binary(i) {
                    if m >= 0.5 { 1.0 } else { 0.0 }
                } else {
                    m
                }
            })
            .collect();
        let style = Style::new(bundle);
        let limits = RunLimits::unlimited(d);
        let settings = Settings {
            forbid: FeatureSet::EMPTY,
            refine: refinement(false, carma_core::recommend::DEFAULT_MIN_PROB),
            limits: &limits,
            alternatives: 0,
        };
        Recourse::new(bundle)
            .explain(bundle, &settings, &style, 1, &mean, [])
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: the model fails its self-check (a recommendation for the mean person): \
                     {e:?}",
                    path.display()
                )
            })?;
        let names = model::names(bundle);
        let inspect = serde_json::to_vec(&crate::cmd::inspect::json(file, bundle))
            .context("cannot describe the model")?;
        let trailer = &file.bytes[file.bytes.len() - carma_core::format::TRAILER_LEN..];
        let fingerprint = trailer.iter().rev().map(|b| format!("{b:02x}")).collect();
        let keys = keys(&names);
        Ok(Model {
            decoded,
            style,
            names,
            keys,
            inspect,
            fingerprint,
            generation,
        })
    }

    /// The decoded bundle.
    pub fn bundle(&self) -> &Bundle<'_> {
        self.decoded.borrow_dependent()
    }

    /// The dataset the model was trained on, as its metadata says.
    pub fn dataset(&self) -> &str {
        self.bundle().wire().meta.dataset
    }

    /// Where the model was read from.
    pub fn path(&self) -> &Path {
        &self.decoded.borrow_owner().path
    }
}

/// The keys of a person's object: the features, `id`, `max_changes` and `<feature>_min`,
/// `<feature>_max`, `<feature>_direction`, as the columns of `carma recommend`'s CSV (a key that
/// is itself a feature is that feature).
fn keys(names: &[String]) -> HashMap<String, Key> {
    let mut keys = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        for (suffix, limit) in [
            ("_min", RowLimit::Min(i)),
            ("_max", RowLimit::Max(i)),
            ("_direction", RowLimit::Direction(i)),
        ] {
            keys.insert(format!("{n}{suffix}"), Key::Limit(limit));
        }
    }
    keys.insert("max_changes".to_owned(), Key::Limit(RowLimit::MaxChanges));
    keys.insert("id".to_owned(), Key::Id);
    for (i, n) in names.iter().enumerate() {
        keys.insert(n.clone(), Key::Feature(i));
    }
    keys
}

/// The model being served, swapped whole by a reload: a request holds the [`Arc`] it started
/// with until it has answered, so it never sees two models.
pub struct Current {
    path: PathBuf,
    model: RwLock<Arc<Model>>,
    /// One reload at a time.
    reload: tokio::sync::Mutex<()>,
    /// Refuse a new model whose features (names, order) differ from the served one's.
    pub same_features: bool,
}

impl Current {
    /// Load `path` for the first time.
    pub fn load(path: &Path, same_features: bool) -> anyhow::Result<Current> {
        Ok(Current {
            path: path.to_path_buf(),
            model: RwLock::new(Arc::new(Model::load(path, 1)?)),
            reload: tokio::sync::Mutex::new(()),
            same_features,
        })
    }

    /// The model serving now.
    pub fn get(&self) -> Arc<Model> {
        // A poisoned lock only means a thread panicked while holding it; the Arc inside is
        // whole either way.
        match self.model.read() {
            Ok(m) => Arc::clone(&m),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Load the file again (off the async threads), validate it as at start and swap it in; on
    /// any error the served model stays.
    pub async fn reload(&self) -> anyhow::Result<Arc<Model>> {
        let _one = self.reload.lock().await;
        let old = self.get();
        let path = self.path.clone();
        let generation = old.generation + 1;
        let new = tokio::task::spawn_blocking(move || Model::load(&path, generation))
            .await
            .context("the reload task failed")??;
        if self.same_features && new.names != old.names {
            anyhow::bail!(
                "{}: the new model's features ({}) differ from the served model's ({}); clients \
                 would send the wrong fields (start the server with --allow-feature-change to \
                 accept this)",
                self.path.display(),
                new.names.join(", "),
                old.names.join(", ")
            );
        }
        let new = Arc::new(new);
        match self.model.write() {
            Ok(mut m) => *m = Arc::clone(&new),
            Err(p) => *p.into_inner() = Arc::clone(&new),
        }
        Ok(new)
    }
}
