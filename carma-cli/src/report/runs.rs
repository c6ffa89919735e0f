//! Reading and checking an evaluation's `runs.json` (what `carma evaluate --out DIR` writes):
//! every seed's scores per setting and method, checked against the setting's graph so the
//! figures never index past a feature or draw a number that is not one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use carma_train::evaluate::{Method, Scores, Setting};

use super::ReportError;
use crate::cmd::evaluate::{Recipe, Runs};

/// One setting of a runs file: its graph's feature names and, per method present, the seeds'
/// scores in seed order.
#[derive(Debug, Clone)]
pub struct SettingRuns {
    /// The setting (dataset and preference weights).
    pub setting: Setting,
    /// Feature names, from the dataset's causal graph, in node order.
    pub features: Vec<String>,
    /// Per method (table order), `(seed, scores)` for every seed that ran it.
    pub methods: BTreeMap<Method, Vec<(u64, Scores)>>,
}

impl SettingRuns {
    /// The scores of `method`, in seed order (empty when it did not run).
    pub fn scores(&self, method: Method) -> Vec<Scores> {
        self.methods
            .get(&method)
            .map(|v| v.iter().map(|(_, s)| s.clone()).collect())
            .unwrap_or_default()
    }
}

/// A checked `runs.json`.
#[derive(Debug, Clone)]
pub struct RunsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The classifier recipe it was made with.
    pub recipe: Recipe,
    /// The optimizers' individuals per seed, when capped (`--optimizer-individuals`).
    pub optimizer_individuals: Option<usize>,
    /// Settings in the paper's order (the seven datasets, then loan-weighted).
    pub settings: Vec<SettingRuns>,
}

impl RunsFile {
    /// The setting named `name`, if the file has it.
    pub fn setting(&self, name: &str) -> Option<&SettingRuns> {
        self.settings.iter().find(|s| s.setting.name == name)
    }
}

/// The recipe's name, as `--classifier` spells it and the figures' file names begin.
pub fn recipe_name(recipe: Recipe) -> &'static str {
    match recipe {
        Recipe::Reference => "reference",
        Recipe::Steep => "steep",
    }
}

/// Read and check `path`.
pub fn read(path: &Path) -> Result<RunsFile, ReportError> {
    let text = carma_train::io::read_text(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let runs: Runs = serde_json::from_str(&text).map_err(|source| ReportError::NotRuns {
        path: path.to_owned(),
        source,
    })?;
    check(path, runs)
}

/// The order of the paper's tables: the seven datasets, then loan-weighted.
fn paper_order() -> Vec<String> {
    Setting::parse("all")
        .map(|v| v.into_iter().map(|s| s.name).collect())
        .unwrap_or_default()
}

fn check(path: &Path, runs: Runs) -> Result<RunsFile, ReportError> {
    let bad = |setting: &str, seed: u64, method: &str, problem: String| ReportError::BadScores {
        path: path.to_owned(),
        setting: setting.to_owned(),
        seed,
        method: method.to_owned(),
        problem,
    };
    let mut settings = Vec::new();
    for (name, seeds) in runs.runs {
        let setting = match Setting::parse(&name) {
            Ok(mut v) if v.len() == 1 && v[0].name == name => v.remove(0),
            _ => {
                return Err(ReportError::UnknownSetting {
                    path: path.to_owned(),
                    setting: name,
                });
            }
        };
        let features = setting.dataset.graph().names();
        let d = features.len();
        let mut methods: BTreeMap<Method, Vec<(u64, Scores)>> = BTreeMap::new();
        for (seed, by_method) in seeds {
            for (method_name, scores) in by_method {
                let Some(method) = Method::ALL.into_iter().find(|m| m.name() == method_name) else {
                    return Err(ReportError::UnknownMethod {
                        path: path.to_owned(),
                        setting: name,
                        method: method_name,
                    });
                };
                if let Some(problem) = problem(&scores, d) {
                    return Err(bad(&name, seed, &method_name, problem));
                }
                methods.entry(method).or_default().push((seed, scores));
            }
        }
        if !methods.is_empty() {
            settings.push(SettingRuns {
                setting,
                features,
                methods,
            });
        }
    }
    if settings.is_empty() {
        return Err(ReportError::NoScores {
            path: path.to_owned(),
        });
    }
    let order = paper_order();
    settings.sort_by_key(|s| order.iter().position(|n| *n == s.setting.name));
    Ok(RunsFile {
        path: path.to_owned(),
        recipe: runs.options.classifier,
        optimizer_individuals: runs.options.optimizer_individuals,
        settings,
    })
}

/// What is wrong with one method's scores on a graph of `d` features, if anything.
fn problem(s: &Scores, d: usize) -> Option<String> {
    if s.feature_rates.len() != d {
        return Some(format!(
            "{} feature rates for a graph of {d} features",
            s.feature_rates.len()
        ));
    }
    if s.actions_histogram.len() != d + 1 {
        return Some(format!(
            "an actions histogram of {} bins for a graph of {d} features (expected {})",
            s.actions_histogram.len(),
            d + 1
        ));
    }
    if let Some(r) = s.feature_rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
        return Some(format!("a feature rate of {r}, outside 0 to 1"));
    }
    if !(s.cost_x100.is_finite() && s.cost_x100 >= 0.0) {
        return Some(format!("a cost x100 of {}", s.cost_x100));
    }
    let counted: usize = s.actions_histogram.iter().sum();
    if counted != s.n_test {
        return Some(format!(
            "an actions histogram counting {counted} individuals for n_test {}",
            s.n_test
        ));
    }
    None
}
