//! Training progress as indicatif bars: one line per stage with its epoch and loss, finished
//! with the stage's summary. Without a terminal (a pipe, a test) the bars are hidden and only
//! the summaries are printed, to standard error.

use std::time::{Duration, Instant};

use carma_train::pipeline::{Progress, Stage};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a bar redraws at most.
const REFRESH: Duration = Duration::from_millis(100);

/// The bars of one training run.
pub struct Bars {
    multi: MultiProgress,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Bars {
    /// Bars on standard error (hidden when it is not a terminal).
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bar: None,
            started: Instant::now(),
        }
    }
}

fn style(with_length: bool) -> ProgressStyle {
    let template = if with_length {
        "{prefix:>12.bold} [{bar:30}] {pos}/{len} epochs  {msg}  ({elapsed})"
    } else {
        "{prefix:>12.bold} {spinner} {msg}  ({elapsed})"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress for Bars {
    fn stage(&mut self, stage: Stage, epochs: usize) {
        let bar = if epochs > 0 {
            ProgressBar::new(epochs as u64).with_style(style(true))
        } else {
            ProgressBar::new_spinner().with_style(style(false))
        };
        let bar = self.multi.add(bar);
        bar.set_prefix(stage.name());
        bar.set_message("training");
        bar.enable_steady_tick(REFRESH);
        self.started = Instant::now();
        self.bar = Some(bar);
    }

    fn epoch(&mut self, _stage: Stage, epoch: usize, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(epoch as u64);
            bar.set_message(format!("loss {loss:.4}"));
        }
    }

    fn done(&mut self, stage: Stage, summary: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        match self.bar.take() {
            Some(bar) if !bar.is_hidden() => {
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>12.bold} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.finish_with_message(format!("{summary} ({secs:.1} s)"));
            }
            bar => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                note!("{:>12} {summary} ({secs:.1} s)", stage.name());
            }
        }
    }
}

/// One CARMA training epoch as `history.json` keeps it (`carma_train::carma::CarmaEpoch`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean total loss over the epoch's batches.
    pub loss: f64,
    /// Mean cost term.
    pub cost: f64,
    /// Mean hinge.
    pub hinge: f64,
    /// The multiplier at the end of the epoch.
    pub lambda: f64,
    /// Validation coverage, a fraction (when validation data was given).
    #[serde(default)]
    pub val_coverage: Option<f64>,
    /// Validation mean cost (when validation data was given).
    #[serde(default)]
    pub val_cost: Option<f64>,
}

/// Passes everything to another [`Progress`] and keeps CARMA's epochs.
pub struct Recording<'a> {
    inner: &'a mut dyn Progress,
    /// CARMA's epochs so far, in order.
    pub carma: Vec<EpochRecord>,
}

impl<'a> Recording<'a> {
    /// Records what reaches `inner`.
    pub fn new(inner: &'a mut dyn Progress) -> Recording<'a> {
        Recording {
            inner,
            carma: Vec::new(),
        }
    }
}

impl Progress for Recording<'_> {
    fn stage(&mut self, stage: Stage, epochs: usize) {
        self.inner.stage(stage, epochs);
    }

    fn epoch(&mut self, stage: Stage, epoch: usize, loss: f64) {
        self.inner.epoch(stage, epoch, loss);
    }

    fn done(&mut self, stage: Stage, summary: &str) {
        self.inner.done(stage, summary);
    }

    fn carma_epoch(&mut self, e: &carma_train::carma::CarmaEpoch) {
        self.carma.push(EpochRecord {
            epoch: e.epoch,
            loss: e.loss,
            cost: e.cost,
            hinge: e.hinge,
            lambda: e.lambda,
            val_coverage: e.val_coverage,
            val_cost: e.val_cost,
        });
        self.inner.carma_epoch(e);
    }
}
