//! The competitors CARMA is measured against (docs/MATH.md section 7, oracle & baselines), besides the
//! true-SCM oracle (`crate::oracle`):
//!
//! - [`optimizer`]: the unamortized search a user would run without CARMA and
//!   without the true causal model. Per individual and per subset of the
//!   allowed actionable features, it minimizes the cost over latent shifts on
//!   the learned flow and classifier with a penalty method and L-BFGS.
//! - [`dice_vae`]: DiCE-VAE, amortized and non-causal: a conditional VAE that
//!   decodes the counterfactual directly in standardized space.
//!
//! Both take standardized individuals the classifier rejects and answer with a
//! [`BaselineOutput`], scored with the same cost as CARMA
//! ([`RecourseProblem::cost`]).

use ndarray::{Array1, Array2};

use crate::carma::RecourseProblem;

pub mod dice_vae;
pub mod optimizer;
#[cfg(test)]
mod testkit;

pub use dice_vae::{CheckedDiceVaeConfig, DiceVae, DiceVaeConfig, DiceVaeEpoch, VaeLoss};
pub use optimizer::{CheckedOptimizerConfig, OptimizerConfig, SubsetSolution};

/// A baseline's recommendations for a batch (standardized space), shaped like
/// CARMA's output.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineOutput {
    /// 0/1 per feature: intervened on (always actionable and not forbidden), `[batch][D]`.
    pub mask: Array2<f64>,
    /// Counterfactuals, standardized, `[batch][D]`.
    pub x_cf: Array2<f64>,
    /// Classifier probability of each counterfactual.
    pub prob: Array1<f64>,
    /// Cost of each recommendation ([`RecourseProblem::cost`] with `mask`).
    pub cost: Array1<f64>,
}

/// Why a baseline could not be configured, trained or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineError {
    /// A setting is out of range.
    #[error("baseline setting `{name}` = {value} is invalid: {expected}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// Sizes do not fit together.
    #[error("baseline {what}: expected {expected}, found {found}")]
    Shape {
        /// What was measured.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Found size.
        found: usize,
    },
    /// An input value is NaN or infinite.
    #[error("baseline input row {row}, feature {col} is not finite")]
    NonFiniteInput {
        /// 0-based row.
        row: usize,
        /// 0-based feature.
        col: usize,
    },
    /// No individual to train on.
    #[error("no rejected individuals to train the baseline on")]
    NoRejected,
    /// No feature is actionable.
    #[error("no feature is actionable: the baseline has nothing to recommend")]
    NothingActionable,
    /// Training diverged.
    #[error("baseline training diverged at epoch {epoch}: {quantity} is not finite")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// The offending quantity.
        quantity: &'static str,
    },
}

/// Checks that `problem` describes `d` features with at least one actionable,
/// positive finite cost ranges and weights.
pub(crate) fn check_problem(problem: &RecourseProblem, d: usize) -> Result<(), BaselineError> {
    for (what, found) in [
        ("actionable flags", problem.actionable.len()),
        ("preference weights", problem.weights.len()),
        ("cost ranges", problem.cost_range.len()),
    ] {
        if found != d {
            return Err(BaselineError::Shape {
                what,
                expected: d,
                found,
            });
        }
    }
    if !problem.actionable.contains(&true) {
        return Err(BaselineError::NothingActionable);
    }
    for (name, values) in [
        ("cost_range", &problem.cost_range),
        ("weights", &problem.weights),
    ] {
        if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(BaselineError::BadSetting {
                name,
                value: v.to_string(),
                expected: "positive finite numbers",
            });
        }
    }
    Ok(())
}

/// Checks that `x` has `d` columns of finite values and `forbid` is not longer than `d`.
pub(crate) fn check_batch(x: &Array2<f64>, d: usize, forbid: &[bool]) -> Result<(), BaselineError> {
    if x.ncols() != d {
        return Err(BaselineError::Shape {
            what: "feature columns",
            expected: d,
            found: x.ncols(),
        });
    }
    if forbid.len() > d {
        return Err(BaselineError::Shape {
            what: "forbid flags",
            expected: d,
            found: forbid.len(),
        });
    }
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((row, col), _)) => Err(BaselineError::NonFiniteInput { row, col }),
        None => Ok(()),
    }
}

/// Per feature: actionable and not forbidden (missing forbid flags mean allowed, as in
/// `Carma::mask`).
pub(crate) fn allowed(problem: &RecourseProblem, forbid: &[bool]) -> Vec<bool> {
    problem
        .actionable
        .iter()
        .enumerate()
        .map(|(i, &a)| a && !forbid.get(i).copied().unwrap_or(false))
        .collect()
}

/// `max(0, margin - (2p - 1))`, the hinge on acceptance (docs/MATH.md section 5, CARMA training).
pub(crate) fn hinge(p: f64, margin: f64) -> f64 {
    (margin - (2.0 * p - 1.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> RecourseProblem {
        RecourseProblem {
            actionable: vec![false, true, true],
            weights: vec![1.0; 3],
            cost_range: vec![1.0; 3],
        }
    }

    #[test]
    fn problem_and_batch_checks_name_the_fault() {
        assert!(check_problem(&problem(), 3).is_ok());
        assert!(matches!(
            check_problem(&problem(), 4),
            Err(BaselineError::Shape { .. })
        ));
        let mut p = problem();
        p.actionable = vec![false; 3];
        assert_eq!(check_problem(&p, 3), Err(BaselineError::NothingActionable));
        let mut p = problem();
        p.cost_range[1] = 0.0;
        assert!(matches!(
            check_problem(&p, 3),
            Err(BaselineError::BadSetting { .. })
        ));
        let mut x = Array2::zeros((2, 3));
        assert!(check_batch(&x, 3, &[false; 3]).is_ok());
        assert!(check_batch(&x, 3, &[false; 4]).is_err());
        x[[1, 2]] = f64::NAN;
        assert_eq!(
            check_batch(&x, 3, &[]),
            Err(BaselineError::NonFiniteInput { row: 1, col: 2 })
        );
    }

    #[test]
    fn allowed_features_are_actionable_and_not_forbidden() {
        assert_eq!(allowed(&problem(), &[]), vec![false, true, true]);
        assert_eq!(
            allowed(&problem(), &[true, true, false]),
            vec![false, false, true]
        );
        assert_eq!(hinge(0.9, 0.011), 0.0);
        assert!((hinge(0.25, 0.011) - 0.511).abs() < 1e-12);
    }
}
