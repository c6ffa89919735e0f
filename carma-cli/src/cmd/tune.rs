//! `carma tune`: search CARMA's hyperparameters on the recourse validation split of a built-in
//! dataset or of the user's CSV and graph (docs/MATH.md, section 5, "Tuning";
//! `carma_train::tune`), and write the best configuration as a file `carma fit --config`
//! reads. The study file is rewritten atomically after every trial, so a stopped search
//! resumes where it was.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::Context;
use carma_train::data::{CsvOptions, DEFAULT_LABEL, Table};
use carma_train::evaluate::Setting;
use carma_train::graph::CausalGraph;
use carma_train::io::{refuse_overwriting_inputs, write_atomic};
use carma_train::pipeline::PipelineConfig;
use carma_train::scm::Dataset;
use carma_train::tune::space::Space;
use carma_train::tune::tpe::Tpe;
use carma_train::tune::{
    Base, DEFAULT_COVERAGE_PCT, Source, Study, StudySettings, Target, Trial, TrialState,
    content_hash, prepare_base, run_study,
};

/// Arguments of `carma tune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A built-in dataset (`loan`, `loan-weighted`, `chain-lin`, ...), simulated per seed.
    #[arg(long, conflicts_with_all = ["data", "graph"], required_unless_present = "data")]
    pub dataset: Option<String>,
    /// Your training data instead (as `carma fit --data`).
    #[arg(long, requires = "graph")]
    pub data: Option<PathBuf>,
    /// The causal graph of `--data` (TOML, as `carma fit --graph`).
    #[arg(long, requires = "data")]
    pub graph: Option<PathBuf>,
    /// Name of the label column of `--data`.
    #[arg(long, default_value = DEFAULT_LABEL)]
    pub label: String,
    /// Ignore columns of `--data` that are neither features nor the label.
    #[arg(long)]
    pub ignore_extra: bool,
    /// The settings that are not searched (as `carma fit --config`: [classifier], [flow],
    /// CARMA's other settings, weights); default: the project's for the dataset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The search space (TOML: one table per hyperparameter, e.g. `[lr] kind = "float"
    /// lo = 0.001 hi = 0.01 log = true`); default: the paper's.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// Trials in the study in all (a resumed study runs the missing ones).
    #[arg(long, default_value_t = 50, value_parser = super::parse_positive)]
    pub trials: usize,
    /// Seeds each trial trains on (0 to N-1); the classifier and flow train once per seed.
    #[arg(long, default_value_t = 3, value_parser = super::parse_positive)]
    pub seeds: usize,
    /// The coverage a trial must reach on the validation split, in percent.
    #[arg(long, default_value_t = DEFAULT_COVERAGE_PCT, value_parser = parse_pct)]
    pub coverage: f64,
    /// Trials run at once (default: every core). A new study also suggests its trials in
    /// waves of this size.
    #[arg(long, value_parser = super::parse_jobs)]
    pub jobs: Option<NonZeroUsize>,
    /// The study file (JSON): resumed when it exists, rewritten after every trial.
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// Where the best configuration goes (TOML for `carma fit --config`).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Random trials before TPE models the history.
    #[arg(long, default_value_t = carma_train::tune::tpe::DEFAULT_STARTUP)]
    pub startup: usize,
    /// The sampler's seed.
    #[arg(long, default_value_t = 0)]
    pub sampler_seed: u64,
    /// Score each trial on at most this many rejected validation individuals per seed.
    #[arg(long, value_parser = super::parse_positive)]
    pub max_individuals: Option<usize>,
    /// Do not run the oracle on the validation individuals (built-in datasets; without it no
    /// cost over the oracle is reported).
    #[arg(long)]
    pub no_oracle: bool,
    /// Tiny smoke-test settings: small samples, few epochs, a small space (not for results).
    #[arg(long)]
    pub fast: bool,
}

fn parse_pct(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a percentage from 0 to 100, found '{s}'")),
    }
}

/// The user's table, read and checked as `carma fit` does.
struct UserTable {
    table: Table,
    graph: CausalGraph,
    name: String,
}

/// Run `carma tune`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let jobs = super::evaluate::threads(args.jobs);
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    for (flag, p) in [
        ("--data", &args.data),
        ("--graph", &args.graph),
        ("--config", &args.config),
        ("--space", &args.space),
    ] {
        if let Some(p) = p {
            inputs.push((flag, p));
        }
    }
    if let Some(study) = &args.study {
        refuse_overwriting_inputs(study, &inputs)?;
        if study.exists() && !study.is_file() {
            anyhow::bail!("--study {}: not a regular file", study.display());
        }
        inputs.push(("--study", study));
    }
    refuse_overwriting_inputs(&args.out, &inputs)?;

    let setting = match &args.dataset {
        Some(name) => {
            let mut s = Setting::parse(name).with_context(|| format!("--dataset {name}"))?;
            if s.len() != 1 {
                anyhow::bail!("--dataset {name}: tune one dataset at a time");
            }
            Some(s.remove(0))
        }
        None => None,
    };
    let user = match (&args.data, &args.graph) {
        (Some(data), Some(graph_path)) => {
            let graph = CausalGraph::from_toml_path(graph_path)?;
            let options = CsvOptions {
                label: Some(args.label.clone()),
                ignore_extra: args.ignore_extra,
            };
            let table = Table::read_csv_with(data, &graph, &options)
                .with_context(|| format!("--data {}", data.display()))?;
            carma_train::preflight::check_table(&table, &graph, &data.display().to_string())?;
            let name = data
                .file_stem()
                .map_or_else(|| "data".to_owned(), |s| s.to_string_lossy().into_owned());
            Some(UserTable { table, graph, name })
        }
        _ => None,
    };

    let settings = study_settings(&args, setting.as_ref(), jobs)?;
    if let Some(u) = &user {
        let graph_name = args.graph.as_ref().map(|p| p.display().to_string());
        carma_train::preflight::check_setup(
            &settings.base,
            &u.graph,
            &args.label,
            graph_name.as_deref().unwrap_or(""),
            "the training settings",
        )?;
    }
    let mut study = match &args.study {
        Some(path) if path.exists() => {
            let text = carma_train::io::read_text(path)
                .with_context(|| format!("cannot read the study {}", path.display()))?;
            let study =
                Study::from_json(&text).with_context(|| format!("--study {}", path.display()))?;
            study.check_matches(&settings).with_context(|| {
                format!(
                    "--study {}: cannot resume it (use another --study file for this search)",
                    path.display()
                )
            })?;
            note!(
                "resuming {}: {} trials done",
                path.display(),
                study.trials.len()
            );
            study
        }
        _ => Study::new(settings.clone())?,
    };
    let source = match (&setting, &user) {
        (Some(s), _) => Source::Dataset(s),
        (None, Some(u)) => Source::Table {
            table: &u.table,
            graph: &u.graph,
            name: &u.name,
        },
        (None, None) => anyhow::bail!("give --dataset NAME, or --data FILE with --graph FILE"),
    };

    let missing = (0..args.trials).any(|n| study.trial(n).is_none());
    if missing {
        let bases = prepare_bases(source, &study.settings, jobs)?;
        let total = args.trials;
        let study_path = args.study.clone();
        let mut save = |s: &Study| -> Result<(), carma_train::tune::TuneError> {
            match &study_path {
                Some(p) => write_atomic(p, s.to_json().as_bytes())
                    .map_err(carma_train::tune::TuneError::Save),
                None => Ok(()),
            }
        };
        let mut report = |s: &Study, t: &Trial| {
            let done = s.trials.iter().filter(|t| t.number < total).count();
            note!(
                "trial {done}/{total} (#{}): {} | best {}",
                t.number,
                describe(t),
                s.best_trial().map_or("none yet".to_owned(), |b| format!(
                    "#{}: {}",
                    b.number,
                    describe(b)
                ))
            );
        };
        run_study(&mut study, &bases, total, jobs, &mut save, &mut report)?;
    } else {
        note!("the study already has {} trials", args.trials);
    }
    write_best(&study, &args.out)?;
    summary(&study)
}

/// The settings of the search these arguments ask for.
fn study_settings(
    args: &Args,
    setting: Option<&Setting>,
    jobs: usize,
) -> anyhow::Result<StudySettings> {
    let target = match (setting, &args.data, &args.graph) {
        (Some(s), _, _) => Target::Dataset {
            name: s.name.clone(),
        },
        (None, Some(data), Some(graph)) => {
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            Target::Table {
                data: data.display().to_string(),
                data_hash: content_hash(&read(data)?),
                graph_hash: content_hash(&read(graph)?),
                label: args.label.clone(),
            }
        }
        _ => anyhow::bail!("give --dataset NAME, or --data FILE with --graph FILE"),
    };
    let base = match (&args.config, setting) {
        (Some(_), _) => {
            let mut c = super::fit::config(args.config.as_deref(), None, None)?;
            // `loan-weighted` means Loan's preference weights unless the file gives others.
            if c.weights.is_none() {
                c.weights = setting.and_then(|s| s.weights.clone());
            }
            c
        }
        (None, Some(s)) => {
            let mut c = if args.fast {
                PipelineConfig::tiny(s.dataset)
            } else {
                PipelineConfig::project_setting(s.dataset, s.weights.is_some())
            };
            c.weights = s.weights.clone();
            c
        }
        (None, None) if args.fast => {
            let mut c = PipelineConfig::tiny(Dataset::Loan);
            c.weights = None;
            c
        }
        (None, None) => PipelineConfig::default(),
    };
    let check = |r: Result<(), String>, what: &str| r.map_err(|e| anyhow::anyhow!("{what}: {e}"));
    check(
        base.classifier.check().map(drop).map_err(|e| e.to_string()),
        "[classifier]",
    )?;
    check(
        base.flow.check().map(drop).map_err(|e| e.to_string()),
        "[flow]",
    )?;
    check(
        base.carma.check().map(drop).map_err(|e| e.to_string()),
        "[carma]",
    )?;
    let space = match &args.space {
        Some(path) => {
            let text = carma_train::io::read_text(path)
                .with_context(|| format!("cannot read the space {}", path.display()))?;
            toml::from_str::<Space>(&text)
                .map_err(|e| anyhow::anyhow!("{}: invalid search space: {e}", path.display()))?
        }
        None if args.fast => Space::fast(),
        None => Space::paper(),
    };
    space.check().with_context(|| {
        args.space
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    })?;
    let settings = StudySettings {
        target,
        fast: args.fast,
        seeds: (0..args.seeds as u64).collect(),
        space,
        sampler: Tpe {
            startup: args.startup,
            ..Tpe::default()
        },
        sampler_seed: args.sampler_seed,
        batch: jobs,
        coverage_pct: args.coverage,
        max_individuals: args.max_individuals,
        oracle: setting.is_some() && !args.no_oracle,
        base,
    };
    settings.check()?;
    Ok(settings)
}

/// The classifier and flow of every seed, trained in parallel.
fn prepare_bases(
    source: Source<'_>,
    settings: &StudySettings,
    jobs: usize,
) -> anyhow::Result<Vec<Base>> {
    note!(
        "training the classifier and the flow on {} seeds ({} at once)",
        settings.seeds.len(),
        jobs.min(settings.seeds.len())
    );
    let chunk = settings.seeds.len().div_ceil(jobs.max(1)).max(1);
    let oracle_threads = (jobs / settings.seeds.len().max(1)).max(1);
    let results: Vec<Result<Base, carma_train::tune::TuneError>> = std::thread::scope(|s| {
        let handles: Vec<_> = settings
            .seeds
            .chunks(chunk)
            .map(|seeds| {
                s.spawn(move || {
                    seeds
                        .iter()
                        .map(|&seed| prepare_base(source, settings, seed, oracle_threads))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut bases = Vec::with_capacity(results.len());
    for r in results {
        let base = r.context("cannot train the shared classifier and flow")?;
        note!(
            "seed {}: {} rejected validation individuals{}",
            base.seed,
            base.n_individuals,
            base.oracle_cost_x100
                .map_or(String::new(), |o| format!(", oracle cost x100 {o:.3}"))
        );
        bases.push(base);
    }
    if bases.len() != settings.seeds.len() {
        anyhow::bail!("a worker training the shared classifier and flow stopped");
    }
    Ok(bases)
}

/// A trial in one line.
fn describe(t: &Trial) -> String {
    match t.state {
        TrialState::Failed => format!("failed ({})", t.error.as_deref().unwrap_or("")),
        state => format!(
            "cost x100 {:.3}{}, coverage {:.2} %{} ({} seed{}, {:.0} s)",
            t.cost_x100(),
            t.cost_over_oracle()
                .map_or(String::new(), |r| format!(" ({r:.2}x the oracle)")),
            t.coverage_pct(),
            if state == TrialState::Pruned {
                ", pruned"
            } else {
                ""
            },
            t.scores.len(),
            if t.scores.len() == 1 { "" } else { "s" },
            t.seconds
        ),
    }
}

/// Writes the best trial's configuration for `carma fit --config`.
fn write_best(study: &Study, out: &Path) -> anyhow::Result<()> {
    let (Some(best), Some(cfg)) = (study.best_trial(), study.best_config()) else {
        anyhow::bail!(
            "no trial completed, so there is no configuration to write (see the errors above)"
        );
    };
    let s = &study.settings;
    let target = match &s.target {
        Target::Dataset { name } => name.clone(),
        Target::Table { data, .. } => data.clone(),
    };
    let met = best.coverage_pct() >= s.coverage_pct;
    let mut text = format!(
        "# carma tune: trial {} of {} on {target}, seeds {:?}, recourse validation split.\n\
         # Validation cost x100 {:.4}, coverage {:.2} % (target {} %{}).\n\
         # Use: carma fit --data DATA.csv --graph GRAPH.toml --config {}\n",
        best.number,
        study.trials.len(),
        s.seeds,
        best.cost_x100(),
        best.coverage_pct(),
        s.coverage_pct,
        if met {
            ", met"
        } else {
            ", NOT met by any trial: the highest coverage is kept"
        },
        out.display()
    );
    text.push_str(&toml::to_string(&cfg).context("cannot write the configuration as TOML")?);
    write_atomic(out, text.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    if !met {
        note!(
            "warning: no trial reached {} % coverage; {} holds the trial with the highest coverage",
            s.coverage_pct,
            out.display()
        );
    }
    Ok(())
}

/// The best trial and the Pareto front, on standard output.
fn summary(study: &Study) -> anyhow::Result<()> {
    let counts = |state| study.trials.iter().filter(|t| t.state == state).count();
    outln!(
        "{} trials: {} complete, {} pruned, {} failed",
        study.trials.len(),
        counts(TrialState::Complete),
        counts(TrialState::Pruned),
        counts(TrialState::Failed)
    )?;
    if let Some(b) = study.best_trial() {
        outln!("best: trial #{}: {}", b.number, describe(b))?;
        let c = &b.carma;
        outln!(
            "  lr {:.3e}, mask {:?}, action {:?}, epochs {}, batch {}, margin {:.4}, tau {:.3}",
            c.lr,
            c.mask_hidden,
            c.action_hidden,
            c.epochs,
            c.batch_size,
            c.margin,
            c.tau
        )?;
    }
    outln!("Pareto front of (validation cost, coverage):")?;
    for n in &study.pareto {
        if let Some(t) = study.trial(*n) {
            outln!("  #{n}: {}", describe(t))?;
        }
    }
    Ok(())
}
