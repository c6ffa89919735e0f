//! Reading and checking an evaluation's `history.json` (CARMA's training per epoch, per setting
//! and seed; `carma evaluate --out DIR` writes it beside runs.json).

use std::path::{Path, PathBuf};

use carma_train::evaluate::Setting;

use super::ReportError;
use crate::cmd::evaluate::{History, Recipe};
use crate::progress::EpochRecord;

/// One setting's training: per seed, its epochs in order.
#[derive(Debug, Clone)]
pub struct SettingHistory {
    /// The setting's name.
    pub name: String,
    /// `(seed, epochs)`, in seed order.
    pub seeds: Vec<(u64, Vec<EpochRecord>)>,
}

/// A checked `history.json`.
#[derive(Debug, Clone)]
pub struct HistoryFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The classifier recipe it was made with.
    pub recipe: Recipe,
    /// Settings in the paper's order.
    pub settings: Vec<SettingHistory>,
}

/// Read and check `path`.
pub fn read(path: &Path) -> Result<HistoryFile, ReportError> {
    let text = carma_train::io::read_text(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let history: History =
        serde_json::from_str(&text).map_err(|source| ReportError::NotHistory {
            path: path.to_owned(),
            source,
        })?;
    let mut settings = Vec::new();
    for (name, seeds) in history.carma {
        if !matches!(Setting::parse(&name), Ok(v) if v.len() == 1 && v[0].name == name) {
            return Err(ReportError::UnknownSetting {
                path: path.to_owned(),
                setting: name,
            });
        }
        for (seed, epochs) in &seeds {
            if let Some(problem) = problem(epochs) {
                return Err(ReportError::BadHistory {
                    path: path.to_owned(),
                    setting: name,
                    seed: *seed,
                    problem,
                });
            }
        }
        if !seeds.is_empty() {
            settings.push(SettingHistory {
                name,
                seeds: seeds.into_iter().collect(),
            });
        }
    }
    if settings.is_empty() {
        return Err(ReportError::NoScores {
            path: path.to_owned(),
        });
    }
    let order: Vec<String> = Setting::parse("all")
        .map(|v| v.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    settings.sort_by_key(|s| order.iter().position(|n| *n == s.name));
    Ok(HistoryFile {
        path: path.to_owned(),
        recipe: history.options.classifier,
        settings,
    })
}

/// What is wrong with one training's epochs, if anything.
fn problem(epochs: &[EpochRecord]) -> Option<String> {
    if epochs.is_empty() {
        return Some("no epochs".into());
    }
    for (i, e) in epochs.iter().enumerate() {
        if e.epoch != i + 1 {
            return Some(format!(
                "epoch {} where epoch {} was expected",
                e.epoch,
                i + 1
            ));
        }
        if let Some(c) = e.val_coverage.filter(|c| !(0.0..=1.0).contains(c)) {
            return Some(format!(
                "epoch {}: a validation coverage of {c}, outside 0 to 1",
                e.epoch
            ));
        }
    }
    None
}
