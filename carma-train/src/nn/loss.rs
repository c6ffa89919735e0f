//! Losses: each returns the mean loss over the batch and its gradient.

use ndarray::{Array1, Array2, ArrayView1, Zip};

use super::activation::sigmoid;

/// Probabilities are clamped into `[PROB_FLOOR, 1 - PROB_FLOOR]` inside [`bce`] so that the
/// logarithms stay finite (torch instead clamps each log term at -100).
pub const PROB_FLOOR: f64 = 1e-12;

/// `ln(2 pi) / 2`, the standard normal's log-normalizer per dimension (docs/MATH.md section 4, causal flow).
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Binary cross-entropy on logits `t` with labels `y` in `{0, 1}` (or soft labels in `[0, 1]`):
/// mean of `-(y ln sigmoid(t) + (1 - y) ln(1 - sigmoid(t)))`, computed stably as
/// `max(t, 0) - t y + ln(1 + exp(-|t|))`. Returns the loss and `dL/dt = (sigmoid(t) - y) / n`.
pub fn bce_with_logits(logits: ArrayView1<f64>, y: ArrayView1<f64>) -> (f64, Array1<f64>) {
    let n = logits.len().max(1) as f64;
    let mut loss = 0.0;
    let mut grad = Array1::zeros(logits.len());
    Zip::from(&mut grad)
        .and(logits)
        .and(y)
        .for_each(|g, &t, &y| {
            loss += t.max(0.0) - t * y + (-t.abs()).exp().ln_1p();
            *g = (sigmoid(t) - y) / n;
        });
    (loss / n, grad)
}

/// Binary cross-entropy on probabilities `p` (clamped by [`PROB_FLOOR`]). Returns the mean loss
/// and `dL/dp`.
pub fn bce(p: ArrayView1<f64>, y: ArrayView1<f64>) -> (f64, Array1<f64>) {
    let n = p.len().max(1) as f64;
    let mut loss = 0.0;
    let mut grad = Array1::zeros(p.len());
    Zip::from(&mut grad).and(p).and(y).for_each(|g, &p, &y| {
        let pc = p.clamp(PROB_FLOOR, 1.0 - PROB_FLOOR);
        loss -= y * pc.ln() + (1.0 - y) * (1.0 - pc).ln();
        *g = if p == pc {
            (pc - y) / (pc * (1.0 - pc)) / n
        } else {
            0.0
        };
    });
    (loss / n, grad)
}

/// The flow's negative log-likelihood under a standard-normal base (docs/MATH.md section 4, causal flow):
/// mean over rows of `sum_i (z_i^2 / 2 + ln(2 pi) / 2) - log_det`.
/// Returns the loss, `dL/dz = z / n` and `dL/d(log_det) = -1 / n` (per row).
pub fn gaussian_nll(z: &Array2<f64>, log_det: &Array1<f64>) -> (f64, Array2<f64>, Array1<f64>) {
    let n = z.nrows().max(1) as f64;
    let d = z.ncols() as f64;
    let quad: f64 = z.iter().map(|v| 0.5 * v * v).sum();
    let loss = (quad + z.nrows() as f64 * d * HALF_LN_2PI - log_det.sum()) / n;
    (loss, z / n, Array1::from_elem(log_det.len(), -1.0 / n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_grads_close, numeric_grad, random_matrix};
    use ndarray::Axis;

    fn labels() -> Array1<f64> {
        Array1::from(vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    }

    #[test]
    fn bce_with_logits_gradient_matches_finite_differences() {
        let t = random_matrix(1, 7, 3, 4.0);
        let y = labels();
        let (_, g) = bce_with_logits(t.row(0), y.view());
        let numeric = numeric_grad(&t, |t| bce_with_logits(t.row(0), y.view()).0);
        assert_grads_close(g.as_slice().unwrap(), numeric.as_slice().unwrap());
    }

    #[test]
    fn bce_on_probabilities_gradient_matches_finite_differences() {
        let p = random_matrix(1, 7, 4, 0.45).mapv(|v| v + 0.5);
        let y = labels();
        let (_, g) = bce(p.row(0), y.view());
        let numeric = numeric_grad(&p, |p| bce(p.row(0), y.view()).0);
        assert_grads_close(g.as_slice().unwrap(), numeric.as_slice().unwrap());
    }

    #[test]
    fn bce_forms_agree_and_stay_finite() {
        let t = Array1::from(vec![-800.0, -3.0, 0.0, 2.5, 900.0]);
        let y = Array1::from(vec![1.0, 0.0, 1.0, 1.0, 0.0]);
        let (l_logit, _) = bce_with_logits(t.view(), y.view());
        assert!(l_logit.is_finite());
        let t_mid = t.slice(ndarray::s![1..4]);
        let p = t_mid.mapv(sigmoid);
        let y_mid = y.slice(ndarray::s![1..4]);
        let (a, _) = bce_with_logits(t_mid, y_mid);
        let (b, _) = bce(p.view(), y_mid);
        approx::assert_relative_eq!(a, b, max_relative = 1e-12);
    }

    #[test]
    fn gaussian_nll_gradients_match_finite_differences() {
        let z = random_matrix(4, 3, 5, 2.0);
        let ld = random_matrix(4, 1, 6, 1.0);
        let (_, gz, gld) = gaussian_nll(&z, &ld.column(0).to_owned());
        let nz = numeric_grad(&z, |z| gaussian_nll(z, &ld.column(0).to_owned()).0);
        assert_grads_close(gz.as_slice().unwrap(), nz.as_slice().unwrap());
        let nld = numeric_grad(&ld, |ld| {
            gaussian_nll(&z, &ld.index_axis(Axis(1), 0).to_owned()).0
        });
        assert_grads_close(gld.as_slice().unwrap(), nld.as_slice().unwrap());
    }

    #[test]
    fn gaussian_nll_of_origin_is_the_normalizer() {
        let z = Array2::zeros((2, 3));
        let (l, _, _) = gaussian_nll(&z, &Array1::zeros(2));
        approx::assert_relative_eq!(l, 3.0 * HALF_LN_2PI, max_relative = 1e-15);
    }
}
