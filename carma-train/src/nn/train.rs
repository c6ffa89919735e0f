//! Training-loop helpers: seeded mini-batches, early stopping, a plateau learning-rate schedule.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::Adam;

/// A seeded permutation of `0..n`, cut into mini-batches of at most `batch_size` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniBatches {
    perm: Vec<usize>,
    batch_size: usize,
}

impl MiniBatches {
    /// Batches over `n` rows in order; call [`MiniBatches::shuffle`] before each epoch.
    /// A `batch_size` of 0 is treated as 1.
    pub fn new(n: usize, batch_size: usize) -> Self {
        Self {
            perm: (0..n).collect(),
            batch_size: batch_size.max(1),
        }
    }

    /// Reshuffle the row order with `rng`.
    pub fn shuffle(&mut self, rng: &mut ChaCha8Rng) {
        self.perm.shuffle(rng);
    }

    /// The row indices of each batch (the last one may be shorter).
    pub fn batches(&self) -> std::slice::Chunks<'_, usize> {
        self.perm.chunks(self.batch_size)
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        self.perm.len().div_ceil(self.batch_size)
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.perm.is_empty()
    }
}

/// One finished training epoch, as passed to the observer of the `fit_observed` functions
/// (progress bars, logs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochEnd {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's mini-batches (weighted by batch size).
    pub train_loss: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Learning rate used during the epoch.
    pub lr: f64,
}

/// What [`EarlyStopping::observe`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New best validation loss; the model was saved.
    Improved,
    /// No improvement, patience not yet exhausted.
    Continue,
    /// No improvement for `patience` epochs in a row: stop training.
    Stop,
}

/// Stops training when the validation loss has not improved by more than `min_delta` for
/// `patience` consecutive epochs, keeping a clone of the best model.
#[derive(Debug, Clone)]
pub struct EarlyStopping<T: Clone> {
    patience: usize,
    min_delta: f64,
    best_loss: f64,
    best: Option<T>,
    bad_epochs: usize,
}

impl<T: Clone> EarlyStopping<T> {
    /// A fresh tracker.
    pub fn new(patience: usize, min_delta: f64) -> Self {
        Self {
            patience,
            min_delta,
            best_loss: f64::INFINITY,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Record one epoch's validation loss (non-finite losses never count as improvements).
    pub fn observe(&mut self, val_loss: f64, model: &T) -> Verdict {
        if val_loss.is_finite() && val_loss < self.best_loss - self.min_delta {
            self.best_loss = val_loss;
            self.best = Some(model.clone());
            self.bad_epochs = 0;
            Verdict::Improved
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs >= self.patience {
                Verdict::Stop
            } else {
                Verdict::Continue
            }
        }
    }

    /// Best validation loss seen (infinity before any finite one).
    pub fn best_loss(&self) -> f64 {
        self.best_loss
    }

    /// The best model so far.
    pub fn best(&self) -> Option<&T> {
        self.best.as_ref()
    }

    /// The best model, consuming the tracker.
    pub fn into_best(self) -> Option<T> {
        self.best
    }
}

/// Multiply the learning rate by `factor` when the validation loss has not improved (relative
/// threshold `threshold`) for more than `patience` epochs; never below `min_lr`. Mirrors torch's
/// `ReduceLROnPlateau(mode="min", threshold_mode="rel")` with no cooldown.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceLrOnPlateau {
    factor: f64,
    patience: usize,
    threshold: f64,
    min_lr: f64,
    best: f64,
    bad_epochs: usize,
}

impl ReduceLrOnPlateau {
    /// torch's defaults are `factor 0.1, patience 10, threshold 1e-4, min_lr 0`.
    pub fn new(factor: f64, patience: usize, threshold: f64, min_lr: f64) -> Self {
        Self {
            factor,
            patience,
            threshold,
            min_lr,
            best: f64::INFINITY,
            bad_epochs: 0,
        }
    }

    /// Record one epoch's validation loss; returns true when the learning rate was reduced.
    pub fn step(&mut self, val_loss: f64, adam: &mut Adam) -> bool {
        let improved = val_loss.is_finite()
            && (self.best == f64::INFINITY
                || val_loss < self.best - self.threshold * self.best.abs());
        if improved {
            self.best = val_loss;
            self.bad_epochs = 0;
            return false;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > self.patience {
            self.bad_epochs = 0;
            let new_lr = (adam.lr() * self.factor).max(self.min_lr);
            let reduced = new_lr < adam.lr();
            adam.set_lr(new_lr);
            return reduced;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::AdamConfig;
    use rand::SeedableRng;

    #[test]
    fn minibatches_cover_every_row_once_and_are_seeded() {
        let mut a = MiniBatches::new(10, 3);
        let mut b = MiniBatches::new(10, 3);
        a.shuffle(&mut ChaCha8Rng::seed_from_u64(4));
        b.shuffle(&mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        let mut all: Vec<usize> = a.batches().flatten().copied().collect();
        assert_ne!(all, (0..10).collect::<Vec<_>>());
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(a.batches().last().unwrap().len(), 1);
    }

    #[test]
    fn early_stopping_keeps_the_best_and_stops_after_patience() {
        let mut es = EarlyStopping::new(2, 0.0);
        assert_eq!(es.observe(3.0, &"a"), Verdict::Improved);
        assert_eq!(es.observe(2.0, &"b"), Verdict::Improved);
        assert_eq!(es.observe(2.5, &"c"), Verdict::Continue);
        assert_eq!(es.observe(f64::NAN, &"d"), Verdict::Stop);
        assert_eq!(es.best_loss(), 2.0);
        assert_eq!(es.into_best(), Some("b"));
    }

    #[test]
    fn plateau_schedule_reduces_after_patience() {
        let mut adam = Adam::new(AdamConfig::default());
        let mut sched = ReduceLrOnPlateau::new(0.5, 1, 1e-4, 1e-4);
        assert!(!sched.step(1.0, &mut adam));
        assert!(!sched.step(1.0, &mut adam));
        assert!(sched.step(1.0, &mut adam));
        approx::assert_relative_eq!(adam.lr(), 5e-4);
        assert!(!sched.step(0.5, &mut adam));
        for _ in 0..10 {
            sched.step(0.5, &mut adam);
        }
        approx::assert_relative_eq!(adam.lr(), 1e-4);
    }
}
