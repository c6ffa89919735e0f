//! Finite-difference helpers for the gradient tests.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Params;

/// Central-difference step.
pub(crate) const FD_STEP: f64 = 1e-5;
/// Relative tolerance between analytic and numeric gradients (brief: ~1e-6 in f64).
pub(crate) const FD_RTOL: f64 = 1e-6;
/// Absolute floor for gradients that are (near) zero.
pub(crate) const FD_ATOL: f64 = 1e-8;

/// A matrix of uniform values in `[-scale, scale]`.
pub(crate) fn random_matrix(rows: usize, cols: usize, seed: u64, scale: f64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..scale))
}

/// Central differences of `f` with respect to every entry of `x`.
pub(crate) fn numeric_grad(x: &Array2<f64>, f: impl Fn(&Array2<f64>) -> f64) -> Array2<f64> {
    let mut xp = x.clone();
    let mut g = Array2::zeros(x.raw_dim());
    for idx in 0..x.len() {
        let (r, c) = (idx / x.ncols(), idx % x.ncols());
        let orig = xp[[r, c]];
        xp[[r, c]] = orig + FD_STEP;
        let up = f(&xp);
        xp[[r, c]] = orig - FD_STEP;
        let down = f(&xp);
        xp[[r, c]] = orig;
        g[[r, c]] = (up - down) / (2.0 * FD_STEP);
    }
    g
}

/// Central differences of `loss(model)` with respect to every parameter of `model`.
pub(crate) fn numeric_param_grad<M: Params>(
    model: &mut M,
    loss: impl Fn(&mut M) -> f64,
) -> Vec<f64> {
    let p0 = model.flat_params();
    let mut p = p0.clone();
    let mut g = vec![0.0; p0.len()];
    for k in 0..p0.len() {
        p[k] = p0[k] + FD_STEP;
        model.set_flat_params(&p);
        let up = loss(model);
        p[k] = p0[k] - FD_STEP;
        model.set_flat_params(&p);
        let down = loss(model);
        p[k] = p0[k];
        g[k] = (up - down) / (2.0 * FD_STEP);
    }
    model.set_flat_params(&p0);
    g
}

/// Assert every analytic gradient is within [`FD_RTOL`] (relative) of the numeric one.
pub(crate) fn assert_grads_close(analytic: &[f64], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len());
    for (k, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        assert!(
            approx::relative_eq!(a, n, epsilon = FD_ATOL, max_relative = FD_RTOL),
            "gradient entry {k}: analytic {a:e} vs numeric {n:e}"
        );
    }
}
