//! Divergence detection for the training loops (issue 7): a non-finite loss,
//! or a validation loss that exploded far above the untrained model's, stops
//! training with the epoch and the quantity instead of returning NaN or
//! meaningless weights.

/// A validation loss above this many times the untrained model's (or above
/// this many nats, when the untrained loss is below 1) means training has
/// exploded. Working training lowers the loss; an absurd learning rate
/// raised the Loan flow's validation NLL from about 10 to 6e13 in one epoch
/// and the classifier's BCE from 0.7 to millions. Issue 7.
pub const EXPLODED_FACTOR: f64 = 1e3;

/// What went wrong in an epoch, or `None` if its losses look sane.
/// `initial_val_loss` is the untrained model's validation loss.
pub fn divergence(train_loss: f64, val_loss: f64, initial_val_loss: f64) -> Option<&'static str> {
    if !train_loss.is_finite() {
        Some("the training loss is not finite")
    } else if !val_loss.is_finite() {
        Some("the validation loss is not finite")
    } else if initial_val_loss.is_finite()
        && val_loss > EXPLODED_FACTOR * initial_val_loss.abs().max(1.0)
    {
        Some("the validation loss exploded (over 1000 times the untrained model's)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_losses_pass_and_each_failure_is_named() {
        assert_eq!(divergence(0.7, 0.6, 0.69), None);
        // A flow's NLL may go negative as it fits: not a divergence.
        assert_eq!(divergence(-3.0, -2.5, 9.9), None);
        assert_eq!(divergence(5.0, 999.0, 0.5), None);
        assert_eq!(
            divergence(f64::NAN, 1.0, 1.0),
            Some("the training loss is not finite")
        );
        assert_eq!(
            divergence(1.0, f64::INFINITY, 1.0),
            Some("the validation loss is not finite")
        );
        assert!(divergence(1.0, 1.1e4, 10.0).is_some_and(|q| q.contains("exploded")));
        assert_eq!(divergence(1.0, 0.9e4, 10.0), None);
    }
}
