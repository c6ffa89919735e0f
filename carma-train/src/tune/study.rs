//! A study: what defines a search ([`StudySettings`]), its trials and their scores, the best
//! trial and the Pareto front, and the JSON file that keeps them between runs (docs/MATH.md,
//! section 5, "Tuning").

use crate::carma::CarmaConfig;
use crate::pipeline::PipelineConfig;

use super::TuneError;
use super::space::{self, N_PARAMS, Space};
use super::tpe::Tpe;

/// The study file's format name.
pub const STUDY_FORMAT: &str = "carma-tune-study";
/// The study file's format version.
pub const STUDY_VERSION: u32 = 1;
/// A mismatching setting is shown up to this many characters.
const MAX_SHOWN: usize = 160;

/// What is tuned: a built-in dataset or a user's table and graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    /// A built-in SCM (or `loan-weighted`), simulated per seed; scored against the oracle.
    Dataset {
        /// Its name.
        name: String,
    },
    /// A user's CSV and causal graph, identified by their contents.
    Table {
        /// The data file's name, for people.
        data: String,
        /// FNV-1a 64 of the data file's bytes, hex.
        data_hash: String,
        /// FNV-1a 64 of the graph file's bytes, hex.
        graph_hash: String,
        /// The label column.
        label: String,
    },
}

/// FNV-1a 64 of `bytes`, as 16 hex digits: identifies an input file in a study.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Everything that defines a search; a study is resumed only with the same settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySettings {
    /// What is tuned.
    pub target: Target,
    /// The tiny smoke-test configuration (`--fast`).
    pub fast: bool,
    /// The seeds every trial trains on.
    pub seeds: Vec<u64>,
    /// The search space.
    pub space: Space,
    /// The sampler.
    pub sampler: Tpe,
    /// The sampler's seed.
    pub sampler_seed: u64,
    /// Trials per wave: suggested together from the earlier waves.
    pub batch: usize,
    /// The coverage a trial must reach, in percent.
    pub coverage_pct: f64,
    /// At most this many rejected validation individuals score a trial.
    pub max_individuals: Option<usize>,
    /// Whether each seed's oracle cost is measured (built-in datasets).
    pub oracle: bool,
    /// The pipeline settings besides the searched ones (the classifier, the flow, CARMA's
    /// other settings, the weights).
    pub base: PipelineConfig,
}

impl StudySettings {
    /// Every setting is usable.
    pub fn check(&self) -> Result<(), TuneError> {
        self.space.check()?;
        let bad = |name, value: String, expected| {
            Err(TuneError::BadSetting {
                name,
                value,
                expected,
            })
        };
        if self.seeds.is_empty() {
            return bad("seeds", "[]".into(), "at least one seed");
        }
        if !(self.coverage_pct.is_finite() && (0.0..=100.0).contains(&self.coverage_pct)) {
            return bad(
                "coverage",
                self.coverage_pct.to_string(),
                "a percentage in [0, 100]",
            );
        }
        if self.batch == 0 {
            return bad("batch", "0".into(), "at least 1");
        }
        if self.max_individuals == Some(0) {
            return bad("max_individuals", "0".into(), "at least 1");
        }
        if !(self.sampler.gamma > 0.0 && self.sampler.gamma < 1.0) {
            return bad("gamma", self.sampler.gamma.to_string(), "in (0, 1)");
        }
        if self.sampler.candidates == 0 {
            return bad("candidates", "0".into(), "at least 1");
        }
        Ok(())
    }
}

/// A trial's scores on one seed's validation individuals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedScore {
    /// The seed.
    pub seed: u64,
    /// Mean cost x 100 (docs/MATH.md section 1).
    pub cost_x100: f64,
    /// Rejected validation individuals accepted after recourse, percent.
    pub coverage_pct: f64,
    /// Accepted under the true SCM, percent (built-in datasets).
    pub validity_pct: Option<f64>,
    /// Cost over the oracle's on the same individuals (built-in datasets with the oracle).
    pub cost_over_oracle: Option<f64>,
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Every seed trained and was scored.
    Complete,
    /// Stopped after its first seed (far worse than the best trial).
    Pruned,
    /// Training failed (e.g. diverged).
    Failed,
}

/// One trial: a point of the space, its CARMA settings and its scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// 0-based trial number.
    pub number: usize,
    /// The sampler's coordinates (unit coordinates and choice indices).
    pub point: Vec<f64>,
    /// The CARMA settings tried.
    pub carma: CarmaConfig,
    /// How it ended.
    pub state: TrialState,
    /// Its scores, per seed (one when pruned, none when failed on the first).
    pub scores: Vec<SeedScore>,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl Trial {
    fn mean(&self, f: impl Fn(&SeedScore) -> f64) -> f64 {
        self.scores.iter().map(f).sum::<f64>() / self.scores.len().max(1) as f64
    }

    /// Mean validation cost x 100 over its seeds.
    pub fn cost_x100(&self) -> f64 {
        self.mean(|s| s.cost_x100)
    }

    /// Mean validation coverage, percent.
    pub fn coverage_pct(&self) -> f64 {
        self.mean(|s| s.coverage_pct)
    }

    /// Mean cost over the oracle's, when measured on every seed.
    pub fn cost_over_oracle(&self) -> Option<f64> {
        let v: Option<Vec<f64>> = self.scores.iter().map(|s| s.cost_over_oracle).collect();
        v.filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Its place in the objective's order, smaller is better: trials meeting the coverage
    /// target by cost, then the others by their shortfall, then failed ones.
    pub fn rank_key(&self, coverage_pct: f64) -> (u8, f64) {
        match self.state {
            TrialState::Failed => (2, 0.0),
            _ if self.scores.is_empty() => (2, 0.0),
            _ if self.coverage_pct() >= coverage_pct => (0, self.cost_x100()),
            _ => (1, coverage_pct - self.coverage_pct()),
        }
    }
}

fn compare_keys(a: (u8, f64), b: (u8, f64)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))
}

/// A search: its settings and the trials so far (the study file's content).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// [`STUDY_FORMAT`].
    pub format: String,
    /// [`STUDY_VERSION`].
    pub version: u32,
    /// What defines the search.
    pub settings: StudySettings,
    /// The finished trials, by number.
    pub trials: Vec<Trial>,
    /// The best trial's number (the objective), if any trial is complete.
    pub best: Option<usize>,
    /// The complete trials on the Pareto front of (lower cost, higher coverage), by cost.
    pub pareto: Vec<usize>,
}

impl Study {
    /// A study with no trials.
    pub fn new(settings: StudySettings) -> Result<Self, TuneError> {
        settings.check()?;
        Ok(Self {
            format: STUDY_FORMAT.to_owned(),
            version: STUDY_VERSION,
            settings,
            trials: Vec::new(),
            best: None,
            pareto: Vec::new(),
        })
    }

    /// The study file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a study serializes") + "\n"
    }

    /// Reads and checks a study file's text: its format, settings and trials.
    pub fn from_json(text: &str) -> Result<Self, TuneError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| TuneError::Corrupt(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(STUDY_FORMAT) {
            return Err(TuneError::Corrupt(format!(
                "no \"format\": \"{STUDY_FORMAT}\" field"
            )));
        }
        let study: Study =
            serde_json::from_value(value).map_err(|e| TuneError::Corrupt(e.to_string()))?;
        if study.version != STUDY_VERSION {
            return Err(TuneError::Corrupt(format!(
                "version {} (this program reads version {STUDY_VERSION})",
                study.version
            )));
        }
        study
            .settings
            .check()
            .map_err(|e| TuneError::Corrupt(e.to_string()))?;
        let dims = study.settings.space.dims();
        for (i, t) in study.trials.iter().enumerate() {
            let in_range = t.point.len() == N_PARAMS
                && t.point.iter().zip(&dims).all(|(&u, d)| match *d {
                    space::Dim::Numeric { .. } => (0.0..=1.0).contains(&u),
                    space::Dim::Categorical(n) => u >= 0.0 && (u as usize) < n && u.fract() == 0.0,
                });
            if !in_range {
                return Err(TuneError::Corrupt(format!(
                    "trial {} has a point outside the space",
                    t.number
                )));
            }
            if study.trials[..i].iter().any(|o| o.number == t.number) {
                return Err(TuneError::Corrupt(format!(
                    "trial {} appears twice",
                    t.number
                )));
            }
            let finite = t
                .scores
                .iter()
                .all(|s| s.cost_x100.is_finite() && s.coverage_pct.is_finite());
            if !finite || (t.state != TrialState::Failed && t.scores.is_empty()) {
                return Err(TuneError::Corrupt(format!(
                    "trial {} has no usable scores",
                    t.number
                )));
            }
        }
        let mut study = study;
        study.summarize();
        Ok(study)
    }

    /// Refuses to resume with other settings than the study's; `wanted.batch` is ignored (a
    /// study keeps the wave size it was made with).
    pub fn check_matches(&self, wanted: &StudySettings) -> Result<(), TuneError> {
        let mut wanted = wanted.clone();
        wanted.batch = self.settings.batch;
        // Both sides through the same JSON text, so a number compares as the file spells it.
        let as_value = |s: &StudySettings| -> serde_json::Value {
            let text = serde_json::to_string(s).expect("settings serialize");
            serde_json::from_str(&text).expect("settings parse")
        };
        let (stored, fresh) = (as_value(&self.settings), as_value(&wanted));
        if let (Some(a), Some(b)) = (stored.as_object(), fresh.as_object()) {
            // What the study is about first, then the rest in the file's order.
            let first = ["target", "space", "fast", "seeds"];
            let keys = first
                .iter()
                .map(|k| k.to_string())
                .chain(b.keys().filter(|k| !first.contains(&k.as_str())).cloned());
            for k in keys {
                let v = &b[&k];
                if a.get(&k) != Some(v) {
                    let show = |v: Option<&serde_json::Value>| {
                        let text = v.map_or("nothing".to_owned(), serde_json::Value::to_string);
                        match text.char_indices().nth(MAX_SHOWN) {
                            Some((i, _)) => format!("{}...", &text[..i]),
                            None => text,
                        }
                    };
                    return Err(TuneError::Mismatch {
                        field: k.replace('_', " "),
                        stored: show(a.get(&k)),
                        wanted: show(Some(v)),
                    });
                }
            }
        }
        Ok(())
    }

    /// The trial with `number`.
    pub fn trial(&self, number: usize) -> Option<&Trial> {
        self.trials.iter().find(|t| t.number == number)
    }

    /// The best complete trial: the objective's choice.
    pub fn best_trial(&self) -> Option<&Trial> {
        self.best.and_then(|n| self.trial(n))
    }

    /// The pipeline configuration of the best trial (what `carma fit --config` reads).
    pub fn best_config(&self) -> Option<PipelineConfig> {
        self.best_trial().map(|t| PipelineConfig {
            carma: t.carma.clone(),
            ..self.settings.base.clone()
        })
    }

    /// Recomputes `best` and `pareto` from the trials, sorted by number.
    pub(crate) fn summarize(&mut self) {
        self.trials.sort_by_key(|t| t.number);
        let target = self.settings.coverage_pct;
        let complete: Vec<&Trial> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .collect();
        self.best = complete
            .iter()
            .min_by(|a, b| compare_keys(a.rank_key(target), b.rank_key(target)))
            .map(|t| t.number);
        let mut front: Vec<&Trial> = complete
            .iter()
            .copied()
            .filter(|t| {
                !complete.iter().any(|o| {
                    o.cost_x100() <= t.cost_x100()
                        && o.coverage_pct() >= t.coverage_pct()
                        && (o.cost_x100() < t.cost_x100() || o.coverage_pct() > t.coverage_pct())
                })
            })
            .collect();
        front.sort_by(|a, b| {
            a.cost_x100()
                .total_cmp(&b.cost_x100())
                .then(a.number.cmp(&b.number))
        });
        self.pareto = front.iter().map(|t| t.number).collect();
    }

    /// Trials with number below `before`, best first (what the sampler learns from).
    pub(crate) fn ranked_before(&self, before: usize) -> Vec<&Trial> {
        let target = self.settings.coverage_pct;
        let mut r: Vec<&Trial> = self.trials.iter().filter(|t| t.number < before).collect();
        r.sort_by(|a, b| {
            compare_keys(a.rank_key(target), b.rank_key(target)).then(a.number.cmp(&b.number))
        });
        r
    }
}
