//! `carma tune`: a search over CARMA's hyperparameters on the recourse **validation** split
//! (docs/MATH.md, section 5, "Tuning"), never the test split.
//!
//! The classifier and the causal flow do not depend on CARMA's settings, so they are trained
//! once per seed ([`Base`]); each trial then only trains CARMA again
//! ([`crate::pipeline::retrain_carma_on`]) on every seed and is scored on the rejected
//! validation individuals. The sampler is [`tpe::Tpe`]; a trial whose first seed is far worse
//! than the best trial's is pruned (its other seeds are skipped). The objective is the lowest
//! mean validation cost among the trials whose mean coverage meets the target; the Pareto
//! front of (cost, coverage) is kept too. Everything lives in a [`Study`], saved after every
//! trial, so a search can be stopped and resumed.
//!
//! Determinism: trials run in waves of [`StudySettings::batch`]; every trial of a wave is
//! suggested (and pruned) from the trials of the earlier waves only, with a seed derived from
//! its number, so a study is the same whatever the number of threads or the interruptions.

pub mod space;
pub mod study;
pub mod tpe;

pub use study::{
    STUDY_FORMAT, STUDY_VERSION, SeedScore, Study, StudySettings, Target, Trial, TrialState,
    content_hash,
};

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use ndarray::{Array2, Axis};

use crate::carma::CarmaConfig;
use crate::data::Table;
use crate::evaluate::{Setting, oracle_bins, run_carma_core, run_oracle, score};
use crate::graph::CausalGraph;
use crate::pipeline::{
    NoProgress, PipelineConfig, PipelineError, Simulated, Trained, rejected, rejected_rows,
    retrain_carma, retrain_carma_on, table_splits, train_on_table, train_simulated,
};
use space::SpaceError;

/// The coverage the objective asks of a trial, in percent (the paper's selection; issue 4's
/// target, [`crate::carma::TARGET_COVERAGE`]).
pub const DEFAULT_COVERAGE_PCT: f64 = 100.0 * crate::carma::TARGET_COVERAGE;
/// Pruning: a trial whose first seed costs more than this many times the best trial's cost on
/// that seed skips its other seeds.
pub const PRUNE_COST_FACTOR: f64 = 1.5;
/// Pruning: a trial whose first seed's coverage is this many points below the target (while
/// the best trial meets it) skips its other seeds.
pub const PRUNE_COVERAGE_SLACK_PCT: f64 = 5.0;
/// The most trials a study may ask for.
pub const MAX_TRIALS: usize = 100_000;

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A stage of the pipeline failed while training the shared classifier and flow.
    #[error("seed {seed}: {source}")]
    Pipeline {
        /// The seed.
        seed: u64,
        /// What failed.
        source: PipelineError,
    },
    /// The search space is not searchable.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// A setting of the search is out of range.
    #[error("{name} = {value} is invalid: {expected}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The study file cannot be read as a study.
    #[error("not a valid study file: {0}")]
    Corrupt(String),
    /// The study file was made for another search.
    #[error("the study was made for another {field}: {stored} (this run: {wanted})")]
    Mismatch {
        /// The setting that differs.
        field: String,
        /// The study's value (JSON).
        stored: String,
        /// This run's value (JSON).
        wanted: String,
    },
    /// The study could not be saved.
    #[error("cannot save the study: {0}")]
    Save(std::io::Error),
}

/// What one seed's trials share: the classifier and flow trained on it, and its rejected
/// validation individuals.
#[derive(Debug, Clone)]
pub struct Base {
    /// The seed.
    pub seed: u64,
    model: BaseModel,
    /// The oracle's mean cost x 100 on the same individuals, when measured.
    pub oracle_cost_x100: Option<f64>,
    /// The rejected validation individuals scored.
    pub n_individuals: usize,
}

#[derive(Debug, Clone)]
enum BaseModel {
    /// A built-in dataset; `x_val` in original units.
    Simulated {
        sim: Box<Simulated>,
        x_val: Array2<f64>,
    },
    /// A user's table; `x_val` standardized.
    Table {
        trained: Box<Trained>,
        splits: Box<[Table; 3]>,
        x_val: Array2<f64>,
    },
}

/// Where the data of a search comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A built-in dataset (with its preference weights).
    Dataset(&'a Setting),
    /// A user's table and graph.
    Table {
        /// The table (the graph's columns and the label).
        table: &'a Table,
        /// The causal graph.
        graph: &'a CausalGraph,
        /// The name stored in models.
        name: &'a str,
    },
}

fn first_rows(x: Array2<f64>, max: Option<usize>) -> Array2<f64> {
    match max {
        Some(m) if m < x.nrows() => x.slice(ndarray::s![..m, ..]).to_owned(),
        _ => x,
    }
}

/// Trains the classifier and the flow for `seed` (and CARMA with the base settings, which the
/// trials replace), and measures the oracle if asked.
pub fn prepare_base(
    source: Source<'_>,
    settings: &StudySettings,
    seed: u64,
    threads: usize,
) -> Result<Base, TuneError> {
    let mut cfg = settings.base.clone();
    cfg.seed = seed;
    let err = |source| TuneError::Pipeline { seed, source };
    match source {
        Source::Dataset(setting) => {
            let sim = train_simulated(setting.dataset, &cfg, &mut NoProgress).map_err(err)?;
            let x_val = rejected_rows(&sim.trained, &sim.val.x).map_err(|e| err(e.into()))?;
            let x_val = first_rows(x_val, settings.max_individuals);
            let oracle_cost_x100 = (settings.oracle && x_val.nrows() > 0).then(|| {
                let rec = run_oracle(&sim, &x_val, oracle_bins(setting.dataset), threads);
                score(&sim, &x_val, &rec).cost_x100
            });
            Ok(Base {
                seed,
                oracle_cost_x100,
                n_individuals: x_val.nrows(),
                model: BaseModel::Simulated {
                    sim: Box::new(sim),
                    x_val,
                },
            })
        }
        Source::Table { table, graph, name } => {
            let trained = train_on_table(table, graph, name, &cfg, &mut NoProgress).map_err(err)?;
            let splits = table_splits(table, &cfg).map_err(err)?;
            let val_std = trained
                .scaler
                .transform(splits[1].x.view())
                .map_err(|e| err(e.into()))?;
            let x_val = val_std.select(Axis(0), &rejected(&trained.classifier, &val_std));
            let x_val = first_rows(x_val, settings.max_individuals);
            Ok(Base {
                seed,
                oracle_cost_x100: None,
                n_individuals: x_val.nrows(),
                model: BaseModel::Table {
                    trained: Box::new(trained),
                    splits: Box::new(splits),
                    x_val,
                },
            })
        }
    }
}

/// Trains CARMA with `carma` on `base` and scores it on its validation individuals.
fn score_seed(
    base: &Base,
    settings: &StudySettings,
    carma: &CarmaConfig,
) -> Result<SeedScore, PipelineError> {
    let cfg = PipelineConfig {
        seed: base.seed,
        carma: carma.clone(),
        ..settings.base.clone()
    };
    match &base.model {
        BaseModel::Simulated { sim, x_val } => {
            // The product path, as `carma evaluate` scores CARMA: the exported networks'
            // proposals served by the core.
            let sim = retrain_carma(sim, &cfg)?;
            let s = score(&sim, x_val, &run_carma_core(&sim, x_val));
            Ok(SeedScore {
                seed: base.seed,
                cost_x100: s.cost_x100,
                coverage_pct: s.coverage_pct,
                validity_pct: Some(s.validity_pct),
                cost_over_oracle: base
                    .oracle_cost_x100
                    .filter(|&o| o > 0.0)
                    .map(|o| s.cost_x100 / o),
            })
        }
        BaseModel::Table {
            trained,
            splits,
            x_val,
        } => {
            let [a, b, c] = &**splits;
            let t = retrain_carma_on(trained, [a, b, c], &cfg)?;
            let m = t.carma_metrics(x_val);
            Ok(SeedScore {
                seed: base.seed,
                cost_x100: 100.0 * m.cost,
                coverage_pct: 100.0 * m.coverage,
                validity_pct: None,
                cost_over_oracle: None,
            })
        }
    }
}

/// Whether a trial's first seed is far worse than `reference` (the best trial's score on the
/// same seed) under the coverage target.
pub fn should_prune(first: &SeedScore, reference: &SeedScore, coverage_pct: f64) -> bool {
    reference.coverage_pct >= coverage_pct
        && (first.coverage_pct < coverage_pct - PRUNE_COVERAGE_SLACK_PCT
            || first.cost_x100 > PRUNE_COST_FACTOR * reference.cost_x100)
}

/// SplitMix64 of the sampler seed and a trial number: the trial's sampling seed.
fn trial_seed(seed: u64, number: usize) -> u64 {
    let mut z = seed ^ (number as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A trial to run: its number, point, settings and pruning reference.
struct Plan {
    number: usize,
    point: Vec<f64>,
    carma: CarmaConfig,
    reference: Option<Vec<SeedScore>>,
}

fn run_trial(plan: &Plan, bases: &[Base], settings: &StudySettings) -> Trial {
    let start = Instant::now();
    let mut scores = Vec::with_capacity(bases.len());
    let mut state = TrialState::Complete;
    let mut error = None;
    for (i, base) in bases.iter().enumerate() {
        match score_seed(base, settings, &plan.carma) {
            Ok(s) => scores.push(s),
            Err(e) => {
                state = TrialState::Failed;
                error = Some(format!("seed {}: {e}", base.seed));
                break;
            }
        }
        let reference = plan.reference.as_ref().and_then(|r| r.get(i));
        if i == 0 && bases.len() > 1 {
            if let Some(r) = reference {
                if should_prune(&scores[0], r, settings.coverage_pct) {
                    state = TrialState::Pruned;
                    break;
                }
            }
        }
    }
    Trial {
        number: plan.number,
        point: plan.point.clone(),
        carma: plan.carma.clone(),
        state,
        scores,
        error,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// `value` after a trip through its JSON text: what a resumed study reads back.
fn through_json<T: serde::Serialize + serde::de::DeserializeOwned>(value: T) -> T {
    let text = serde_json::to_string(&value).expect("serializes");
    serde_json::from_str(&text).unwrap_or(value)
}

/// Runs the missing trials of `study` up to `trials` in all, on `jobs` threads; `save` is
/// called after every trial (the study file), `report` too (progress).
pub fn run_study(
    study: &mut Study,
    bases: &[Base],
    trials: usize,
    jobs: usize,
    save: &mut dyn FnMut(&Study) -> Result<(), TuneError>,
    report: &mut dyn FnMut(&Study, &Trial),
) -> Result<(), TuneError> {
    if trials == 0 || trials > MAX_TRIALS {
        return Err(TuneError::BadSetting {
            name: "trials",
            value: trials.to_string(),
            expected: "1 to 100000",
        });
    }
    let settings = study.settings.clone();
    let dims = settings.space.dims();
    let batch = settings.batch;
    let mut wave_start = 0;
    while wave_start < trials {
        let wave_end = (wave_start + batch).min(trials);
        let ranked = study.ranked_before(wave_start);
        let points: Vec<Vec<f64>> = ranked.iter().map(|t| t.point.clone()).collect();
        let reference = ranked
            .iter()
            .find(|t| t.state == TrialState::Complete)
            .map(|t| t.scores.clone());
        let plans: Vec<Plan> = (wave_start..wave_end)
            .filter(|&n| study.trial(n).is_none())
            .map(|number| {
                let point = through_json(settings.sampler.suggest(
                    &dims,
                    &points,
                    trial_seed(settings.sampler_seed, number),
                ));
                let carma = settings.space.config(&point, &settings.base.carma);
                Plan {
                    number,
                    point,
                    carma,
                    reference: reference.clone(),
                }
            })
            .collect();
        let queue = Mutex::new(plans.iter());
        let (tx, rx) = mpsc::channel::<Trial>();
        let mut failure = None;
        std::thread::scope(|s| {
            for _ in 0..jobs.clamp(1, plans.len().max(1)) {
                let (queue, tx, settings) = (&queue, tx.clone(), &settings);
                s.spawn(move || {
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some(plan) = next else { break };
                        if tx.send(run_trial(plan, bases, settings)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for trial in rx {
                let trial = through_json(trial);
                study.trials.push(trial.clone());
                study.summarize();
                if failure.is_none() {
                    if let Err(e) = save(study) {
                        failure = Some(e);
                        // Stop handing out trials; the running ones finish.
                        if let Ok(mut q) = queue.lock() {
                            q.by_ref().for_each(drop);
                        }
                    }
                }
                report(study, &trial);
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        wave_start = wave_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scm::Dataset;
    use space::Space;
    use tpe::Tpe;

    fn settings() -> StudySettings {
        StudySettings {
            target: Target::Dataset {
                name: "chain-lin".into(),
            },
            fast: true,
            seeds: vec![0, 1],
            space: Space::fast(),
            sampler: Tpe {
                startup: 2,
                ..Tpe::default()
            },
            sampler_seed: 0,
            batch: 2,
            coverage_pct: DEFAULT_COVERAGE_PCT,
            max_individuals: Some(40),
            oracle: false,
            base: {
                let mut c = PipelineConfig::tiny(Dataset::ChainLin);
                c.n_classifier = 800;
                c.n_flow = 800;
                c.n_recourse = 800;
                c.flow.epochs = 4;
                c
            },
        }
    }

    fn seed_score(cost: f64, cov: f64) -> SeedScore {
        SeedScore {
            seed: 0,
            cost_x100: cost,
            coverage_pct: cov,
            validity_pct: None,
            cost_over_oracle: None,
        }
    }

    fn trial(number: usize, state: TrialState, cost: f64, cov: f64) -> Trial {
        Trial {
            number,
            point: vec![0.5, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.5, 1.0],
            carma: CarmaConfig::default(),
            state,
            scores: vec![seed_score(cost, cov)],
            error: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn the_best_trial_is_the_cheapest_that_meets_the_coverage_and_the_front_is_pareto() {
        let mut s = Study::new(settings()).unwrap();
        s.trials = vec![
            trial(0, TrialState::Complete, 1.0, 99.0),
            trial(1, TrialState::Complete, 2.0, 99.9),
            trial(2, TrialState::Complete, 3.0, 99.95),
            trial(3, TrialState::Complete, 4.0, 99.9),
            trial(4, TrialState::Pruned, 0.5, 100.0),
        ];
        s.summarize();
        assert_eq!(s.best, Some(1));
        assert_eq!(s.pareto, vec![0, 1, 2]);
        assert_eq!(s.best_config().unwrap().carma, CarmaConfig::default());
    }

    #[test]
    fn a_first_seed_far_worse_than_the_best_is_pruned() {
        let best = seed_score(1.0, 100.0);
        assert!(should_prune(&seed_score(1.6, 100.0), &best, 99.5));
        assert!(should_prune(&seed_score(0.5, 90.0), &best, 99.5));
        assert!(!should_prune(&seed_score(1.2, 99.0), &best, 99.5));
        // No feasible reference: nothing to compare with.
        assert!(!should_prune(
            &seed_score(9.0, 50.0),
            &seed_score(1.0, 90.0),
            99.5
        ));
    }

    #[test]
    fn a_study_reads_back_and_refuses_other_settings_or_corruption() {
        let mut s = Study::new(settings()).unwrap();
        s.trials = vec![trial(0, TrialState::Complete, 1.0, 99.9)];
        s.summarize();
        let back = Study::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let mut other = settings();
        other.target = Target::Dataset {
            name: "loan".into(),
        };
        assert!(matches!(
            back.check_matches(&other),
            Err(TuneError::Mismatch { ref field, .. }) if field == "target"
        ));
        let mut other = settings();
        other.batch = 7;
        assert!(back.check_matches(&other).is_ok());
        assert!(matches!(
            Study::from_json("{\"format\": 1"),
            Err(TuneError::Corrupt(_))
        ));
        let bad = s
            .to_json()
            .replace("\"point\": [\n        0.5", "\"point\": [\n        7.5");
        assert!(matches!(Study::from_json(&bad), Err(TuneError::Corrupt(_))));
    }

    #[test]
    fn retraining_carma_with_the_base_settings_reproduces_the_trained_models() {
        let cfg = settings().base;
        let sim = train_simulated(Dataset::ChainLin, &cfg, &mut NoProgress).unwrap();
        let again = retrain_carma(&sim, &cfg).unwrap();
        assert_eq!(again.trained.metrics, sim.trained.metrics);
        // A user's table: the splits `table_splits` gives are the ones `train_on_table` used.
        let (table, graph) = (&sim.train, &sim.trained.graph);
        let t = train_on_table(table, graph, "t", &cfg, &mut NoProgress).unwrap();
        let splits = table_splits(table, &cfg).unwrap();
        let [a, b, c] = &splits;
        let t2 = retrain_carma_on(&t, [a, b, c], &cfg).unwrap();
        assert_eq!(t2.metrics, t.metrics);
        assert!(t.metrics.carma_cost.is_some());
    }

    #[test]
    fn a_study_runs_in_waves_deterministically_and_resumes() {
        let cfg = settings();
        let setting = Setting::parse("chain-lin").unwrap().remove(0);
        let bases: Vec<Base> = cfg
            .seeds
            .iter()
            .map(|&s| prepare_base(Source::Dataset(&setting), &cfg, s, 1).unwrap())
            .collect();
        let run = |study: &mut Study, n: usize, jobs: usize| {
            run_study(study, &bases, n, jobs, &mut |_| Ok(()), &mut |_, _| {}).unwrap();
        };
        // Uninterrupted, two threads: waves {0, 1} and {2, 3}.
        let mut a = Study::new(cfg.clone()).unwrap();
        run(&mut a, 4, 2);
        // One thread, stopped in the middle of the second wave, then resumed from its file.
        let mut b = Study::new(cfg.clone()).unwrap();
        run(&mut b, 3, 1);
        assert_eq!(b.trials.len(), 3);
        let mut b = Study::from_json(&b.to_json()).unwrap();
        run(&mut b, 4, 1);
        assert_eq!(b.trials.len(), 4);
        let strip = |s: &Study| -> Vec<Trial> {
            s.trials
                .iter()
                .map(|t| Trial {
                    seconds: 0.0,
                    ..t.clone()
                })
                .collect()
        };
        assert_eq!(strip(&a), strip(&b));
        assert!(a.trials.iter().all(|t| t.state != TrialState::Failed));
        assert!(a.best.is_some() || a.trials.iter().all(|t| t.state == TrialState::Pruned));
    }
}
