//! The structural equations of docs/MATH.md section 2, datasets, their inverses in `u_i` (abduction), and the label
//! logits. One `match` per concept, so each dataset's row of the table of docs/MATH.md section 2, datasets reads in one place.

use super::Dataset;

/// `1 / (1 + exp(-a))`, without overflow for large `|a|`.
pub fn sigmoid(a: f64) -> f64 {
    if a >= 0.0 {
        1.0 / (1.0 + (-a).exp())
    } else {
        let e = a.exp();
        e / (1.0 + e)
    }
}

/// The inverse of [`sigmoid`] on `(0, 1)`; NaN or infinite outside.
pub fn logit(p: f64) -> f64 {
    p.ln() - (-p).ln_1p()
}

/// `x_i = f_i(x_pa(i), u_i)`. Reads only the parents of `i` from `x`.
pub fn structural(dataset: Dataset, i: usize, x: &[f64], u: f64) -> f64 {
    use Dataset::*;
    match (dataset, i) {
        // Every dataset's node 0 (x_s, gender) is its exogenous.
        (_, 0) => u,
        (TriangleLin | TriangleNlin | ColliderLin | ChainLin | ChainNlin, 1) => x[0] + u,
        (ColliderNlin, 1) => 0.5 * x[0] + u,

        (TriangleLin, 2) => x[1] + u,
        (TriangleLin, 3) => x[0] + 0.25 * x[1] + 0.5 * x[2] + u,

        (TriangleNlin, 2) => -1.0 + 3.0 * sigmoid(2.0 * x[1]) + u,
        (TriangleNlin, 3) => x[0] + 0.25 * x[1] * x[1] + 0.5 * x[2] + u,

        (ColliderLin, 2) => 0.5 * x[0] + u,
        (ColliderLin, 3) => 0.05 * x[0] + 0.25 * x[1] + 0.25 * x[2] + u,

        (ColliderNlin, 2) => 0.5 * x[0] + u,
        (ColliderNlin, 3) => 0.25 * x[0] + 0.25 * x[1] * x[1] + 0.25 * x[2] * x[2] + u,

        (ChainLin, 2) => x[0] + 0.5 * x[1] + u,
        (ChainLin, 3) => 0.25 * x[0] + 0.5 * x[2] + u,

        (ChainNlin, 2) => x[0] + 3.0 * sigmoid(2.0 * x[1]) + u,
        (ChainNlin, 3) => 0.25 * x[0] + x[2] * x[2] + u,

        (Loan, 1) => u - LOAN_AGE_OFFSET,
        (Loan, 2) => -0.5 + sigmoid(loan_education_arg(x) + u),
        (Loan, 3) => loan_amount_mean(x) + u,
        (Loan, 4) => loan_duration_mean(x) + u,
        (Loan, 5) => loan_income_mean(x) + u,
        (Loan, 6) => loan_savings_mean(x) + u,

        _ => unreachable!("node {i} does not exist in {dataset}"),
    }
}

/// `u_i = f_i^-1(x_pa(i), x_i)`: the exact inverse of [`structural`] in `u`.
pub fn inverse(dataset: Dataset, i: usize, x: &[f64]) -> f64 {
    use Dataset::*;
    match (dataset, i) {
        (_, 0) => x[0],
        (Loan, 1) => x[1] + LOAN_AGE_OFFSET,
        (Loan, 2) => logit(x[2] + 0.5) - loan_education_arg(x),
        // Every other equation is additive in u: u = x_i - f_i(x_pa, 0).
        _ => x[i] - structural(dataset, i, x, 0.0),
    }
}

/// The label logit `g(x, u_1)` of docs/MATH.md section 2, datasets.
pub fn label_logit(dataset: Dataset, x: &[f64], u1: f64) -> f64 {
    use Dataset::*;
    match dataset {
        TriangleLin | ColliderLin | ChainLin => x[1] + 0.5 * x[2] + x[3] + 0.5 * u1,
        TriangleNlin => -1.0 + x[1].exp2() + 0.75 * x[2].powi(-3) + 0.1 * x[3] * x[3] + 0.5 * u1,
        ColliderNlin => x[1].powi(3) + x[2] + 3.0 * x[3] + 0.5 * u1,
        ChainNlin => x[1].powi(3) + x[2] + 0.75 * x[3].exp() + 0.5 * u1 - 50.0,
        Loan => {
            let (amount, duration, income, savings) = (x[3], x[4], x[5], x[6]);
            let sgn = if income >= 0.0 && savings >= 0.0 {
                1.0
            } else {
                -1.0
            };
            0.3 * (-amount - duration + income + savings + sgn * income * savings)
        }
    }
}

/// Loan: `x_1 = u_1 - 35` centres the Gamma(10, 3.5) age noise (mean 35) at zero (docs/MATH.md section 2, datasets).
const LOAN_AGE_OFFSET: f64 = 35.0;

fn loan_education_arg(x: &[f64]) -> f64 {
    -1.0 + 0.5 * x[0] + sigmoid(0.1 * x[1])
}

fn loan_amount_mean(x: &[f64]) -> f64 {
    1.0 + 0.01 * (x[1] - 5.0) * (5.0 - x[1]) + (1.0 - x[0])
}

fn loan_duration_mean(x: &[f64]) -> f64 {
    -1.0 + 0.1 * x[1] + 2.0 * (1.0 - x[0]) + x[3]
}

fn loan_income_mean(x: &[f64]) -> f64 {
    -4.0 + 0.1 * (x[1] + LOAN_AGE_OFFSET) + 2.0 * x[0] + x[0] * x[2]
}

fn loan_savings_mean(x: &[f64]) -> f64 {
    -4.0 + 1.5 * x[5].max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_logit_are_inverse_and_stable() {
        // Near 1, 1 - p keeps few digits; Loan education stays far from there.
        for a in [-30.0, -5.0, -0.1, 0.0, 0.3, 4.0, 10.0] {
            assert!(
                (logit(sigmoid(a)) - a).abs() < 1e-9 * (1.0 + a * a),
                "a = {a}"
            );
        }
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(0.0), 0.5);
    }
}
