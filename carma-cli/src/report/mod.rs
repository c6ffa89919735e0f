//! `carma report`: SVG figures from the seeds' scores an evaluation wrote (`runs.json` of
//! `carma evaluate --out DIR`), as the paper shows them (issue 17): per-feature intervention
//! rates and the distribution of the number of intervened features for every method (Fig. 7, 9,
//! 10), each method's cost against the oracle's, and the Loan preference case study; from the
//! `history.json` beside it, CARMA's training curves.
//!
//! Nothing is trained or recomputed: the figures draw what `runs.json` holds. Each figure is
//! written atomically (a temporary beside it, then a rename; `carma_train::io::write_atomic`).

pub mod draw;
pub mod figures;
pub mod history;
pub mod runs;

use std::path::PathBuf;

use carma_train::io::{refuse_overwriting_inputs, write_atomic};

/// Arguments of `carma report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A runs.json written by `carma evaluate --out DIR`; repeat for several (one per
    /// classifier recipe: the figures' names begin with the recipe).
    #[arg(long, required_unless_present = "history")]
    pub runs: Vec<PathBuf>,
    /// A history.json written beside it (CARMA's training per epoch): the training curves;
    /// repeat for several (one per classifier recipe).
    #[arg(long)]
    pub history: Vec<PathBuf>,
    /// Directory for the SVG figures (created if missing).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
}

/// Why `carma report` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The runs file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON, or JSON of another shape than `runs.json`.
    #[error(
        "{}: not a runs.json of carma evaluate (setting -> seed -> method -> scores, with its options)",
        path.display()
    )]
    NotRuns {
        /// The file.
        path: PathBuf,
        /// The parser's account.
        source: serde_json::Error,
    },
    /// Not JSON, or JSON of another shape than `history.json`.
    #[error(
        "{}: not a history.json of carma evaluate (setting -> seed -> epochs, with its options)",
        path.display()
    )]
    NotHistory {
        /// The file.
        path: PathBuf,
        /// The parser's account.
        source: serde_json::Error,
    },
    /// A training history that is not one a run can give.
    #[error("{}: {setting}, seed {seed}: {problem}", path.display())]
    BadHistory {
        /// The file.
        path: PathBuf,
        /// The setting.
        setting: String,
        /// The seed.
        seed: u64,
        /// What is wrong.
        problem: String,
    },
    /// A setting that is neither a dataset nor loan-weighted.
    #[error("{}: unknown setting '{setting}'", path.display())]
    UnknownSetting {
        /// The file.
        path: PathBuf,
        /// The setting's name.
        setting: String,
    },
    /// A method `carma evaluate` does not run.
    #[error("{}: {setting}: unknown method '{method}'", path.display())]
    UnknownMethod {
        /// The file.
        path: PathBuf,
        /// The setting.
        setting: String,
        /// The method's name.
        method: String,
    },
    /// Scores that do not fit the setting's graph, or are not numbers a run can give.
    #[error("{}: {setting}, seed {seed}, {method}: {problem}", path.display())]
    BadScores {
        /// The file.
        path: PathBuf,
        /// The setting.
        setting: String,
        /// The seed.
        seed: u64,
        /// The method.
        method: String,
        /// What is wrong.
        problem: String,
    },
    /// A runs or history file without any scores or epochs.
    #[error("{}: nothing to draw (no setting has a finished seed)", path.display())]
    NoScores {
        /// The file.
        path: PathBuf,
    },
    /// Two runs (or history) files of one classifier recipe: their figures would have the same
    /// names.
    #[error(
        "{} and {} were both made with the {recipe} classifier recipe: their figures would \
         overwrite each other; give them to two runs of carma report with different --out",
        first.display(),
        second.display()
    )]
    SameRecipe {
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
        /// The recipe.
        recipe: &'static str,
    },
    /// Drawing a figure failed.
    #[error("cannot draw {figure}")]
    Draw {
        /// The figure's file name.
        figure: String,
        /// Why.
        source: draw::DrawError,
    },
    /// The output directory or a figure could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Run `carma report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let written = write_report(&args.runs, &args.history, &args.out)?;
    for path in written {
        outln!("{}", path.display())?;
    }
    Ok(())
}

/// Read every runs and history file, then draw and write their figures into `out`; returns the
/// paths written. Nothing is written unless every file reads and checks.
pub fn write_report(
    runs: &[PathBuf],
    histories: &[PathBuf],
    out: &std::path::Path,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut files: Vec<runs::RunsFile> = Vec::with_capacity(runs.len());
    for path in runs {
        let file = runs::read(path)?;
        if let Some(first) = files.iter().find(|f| f.recipe == file.recipe) {
            return Err(ReportError::SameRecipe {
                first: first.path.clone(),
                second: file.path,
                recipe: runs::recipe_name(file.recipe),
            });
        }
        files.push(file);
    }
    let mut trainings: Vec<history::HistoryFile> = Vec::with_capacity(histories.len());
    for path in histories {
        let file = history::read(path)?;
        if let Some(first) = trainings.iter().find(|f| f.recipe == file.recipe) {
            return Err(ReportError::SameRecipe {
                first: first.path.clone(),
                second: file.path,
                recipe: runs::recipe_name(file.recipe),
            });
        }
        trainings.push(file);
    }
    let mut charts = Vec::new();
    for file in &files {
        let (figures, skipped) = figures::all(file);
        for note in skipped {
            note!("{note}");
        }
        charts.extend(figures);
    }
    charts.extend(trainings.iter().map(figures::curves));
    let mut drawn = Vec::with_capacity(charts.len());
    for f in charts {
        let svg = draw::svg(&f.chart).map_err(|source| ReportError::Draw {
            figure: f.file_name.clone(),
            source,
        })?;
        drawn.push((out.join(&f.file_name), svg));
    }
    std::fs::create_dir_all(out).map_err(|source| ReportError::Write {
        path: out.to_owned(),
        source,
    })?;
    let inputs: Vec<(&str, &std::path::Path)> = runs
        .iter()
        .map(|p| ("--runs", p.as_path()))
        .chain(histories.iter().map(|p| ("--history", p.as_path())))
        .collect();
    let mut written = Vec::with_capacity(drawn.len());
    for (path, svg) in drawn {
        refuse_overwriting_inputs(&path, &inputs)
            .and_then(|()| write_atomic(&path, svg.as_bytes()))
            .map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}
