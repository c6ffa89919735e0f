//! Per-feature standardization `x~ = (x - mean) / std` (docs/MATH.md section 3, classifier).

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Bessel's correction: docs/MATH.md's std divides by `n - 1` (docs/MATH.md section 3, classifier).
const DDOF: f64 = 1.0;
/// A column counts as constant when `std <= CONSTANT_RTOL * max(1, |mean|)`: dividing by such a
/// std would blow rounding noise up into the flow's input, so fitting refuses it.
const CONSTANT_RTOL: f64 = 1e-12;

/// Why a scaler cannot be fitted or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScalerError {
    /// Fewer than two rows: no sample standard deviation.
    #[error("cannot fit a scaler on {n} rows (need at least 2)")]
    TooFewRows {
        /// Rows given.
        n: usize,
    },
    /// A column has (numerically) zero spread.
    #[error(
        "column {column} is constant (std {std:e}); it cannot be standardized (drop it or vary it)"
    )]
    ConstantColumn {
        /// 0-based column.
        column: usize,
        /// The fitted std.
        std: f64,
    },
    /// A column has a NaN or infinite value, or a given mean/std is not finite and positive.
    #[error("column {column} has a non-finite value")]
    NonFinite {
        /// 0-based column.
        column: usize,
    },
    /// Input width differs from the fitted width.
    #[error("expected {expected} columns, found {found}")]
    Width {
        /// Fitted width.
        expected: usize,
        /// Width given.
        found: usize,
    },
}

/// Column means and standard deviations (n - 1), fitted once and shared by every stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    mean: Array1<f64>,
    std: Array1<f64>,
}

impl Scaler {
    /// Fit on the rows of `x`. Refuses fewer than 2 rows, non-finite values and constant columns.
    pub fn fit(x: ArrayView2<'_, f64>) -> Result<Scaler, ScalerError> {
        let n = x.nrows();
        if n < 2 {
            return Err(ScalerError::TooFewRows { n });
        }
        if let Some((_, j)) = x
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(ij, _)| ij)
        {
            return Err(ScalerError::NonFinite { column: j });
        }
        let mean = x.mean_axis(Axis(0)).ok_or(ScalerError::TooFewRows { n })?;
        let std = x.std_axis(Axis(0), DDOF);
        Scaler::from_parts(mean, std)
    }

    /// A scaler from stored parts (e.g. a bundle); same checks as [`Scaler::fit`].
    pub fn from_parts(mean: Array1<f64>, std: Array1<f64>) -> Result<Scaler, ScalerError> {
        if mean.len() != std.len() {
            return Err(ScalerError::Width {
                expected: mean.len(),
                found: std.len(),
            });
        }
        for (j, (&m, &s)) in mean.iter().zip(&std).enumerate() {
            if !m.is_finite() || !s.is_finite() {
                return Err(ScalerError::NonFinite { column: j });
            }
            if s <= CONSTANT_RTOL * m.abs().max(1.0) {
                return Err(ScalerError::ConstantColumn { column: j, std: s });
            }
        }
        Ok(Scaler { mean, std })
    }

    /// Column means.
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// Column standard deviations.
    pub fn std(&self) -> &Array1<f64> {
        &self.std
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// True for a scaler over zero columns.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// `(x - mean) / std`, row-wise.
    pub fn transform(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>, ScalerError> {
        self.check(x.ncols())?;
        Ok((&x - &self.mean) / &self.std)
    }

    /// `x~ * std + mean`, row-wise.
    pub fn inverse_transform(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>, ScalerError> {
        self.check(x.ncols())?;
        Ok(&x * &self.std + &self.mean)
    }

    /// Standardize one row into `out`.
    pub fn transform_slice(&self, x: &[f64], out: &mut [f64]) -> Result<(), ScalerError> {
        self.check(x.len())?;
        self.check(out.len())?;
        for (j, (o, v)) in out.iter_mut().zip(x).enumerate() {
            *o = (v - self.mean[j]) / self.std[j];
        }
        Ok(())
    }

    /// Unstandardize one row into `out`.
    pub fn inverse_transform_slice(&self, x: &[f64], out: &mut [f64]) -> Result<(), ScalerError> {
        self.check(x.len())?;
        self.check(out.len())?;
        for (j, (o, v)) in out.iter_mut().zip(x).enumerate() {
            *o = v * self.std[j] + self.mean[j];
        }
        Ok(())
    }

    fn check(&self, found: usize) -> Result<(), ScalerError> {
        if found == self.len() {
            Ok(())
        } else {
            Err(ScalerError::Width {
                expected: self.len(),
                found,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn fit_uses_bessel_corrected_std() {
        let x = array![[1.0, 10.0], [2.0, 10.5], [3.0, 12.0], [6.0, 9.5]];
        let s = Scaler::fit(x.view()).unwrap();
        assert_eq!(s.mean().to_vec(), vec![3.0, 10.5]);
        // Column 0: squared deviations 4 + 1 + 0 + 9 = 14, over n - 1 = 3.
        assert!((s.std()[0] - (14.0f64 / 3.0).sqrt()).abs() < 1e-15);
        let z = s.transform(x.view()).unwrap();
        for j in 0..2 {
            let col = z.column(j);
            assert!(col.mean().unwrap().abs() < 1e-15);
            assert!((col.std(1.0) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn inverse_transform_undoes_transform_on_arrays_and_slices() {
        let x = array![[1.0, -4.0, 0.0], [2.5, 3.0, 1.0], [-7.0, 0.5, 1.0]];
        let s = Scaler::fit(x.view()).unwrap();
        let back = s
            .inverse_transform(s.transform(x.view()).unwrap().view())
            .unwrap();
        assert!((&back - &x).iter().all(|e| e.abs() < 1e-12));
        let mut z = [0.0; 3];
        let mut r = [0.0; 3];
        s.transform_slice(&[2.5, 3.0, 1.0], &mut z).unwrap();
        s.inverse_transform_slice(&z, &mut r).unwrap();
        assert!(
            r.iter()
                .zip([2.5, 3.0, 1.0])
                .all(|(a, b)| (a - b).abs() < 1e-12)
        );
        assert!(matches!(
            s.transform_slice(&[1.0], &mut z),
            Err(ScalerError::Width {
                expected: 3,
                found: 1
            })
        ));
        assert!(s.transform(array![[1.0, 2.0]].view()).is_err());
    }

    #[test]
    fn constant_columns_too_few_rows_and_non_finite_values_are_refused() {
        let x = array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]];
        assert!(matches!(
            Scaler::fit(x.view()),
            Err(ScalerError::ConstantColumn { column: 1, .. })
        ));
        assert!(matches!(
            Scaler::fit(array![[1.0, 2.0]].view()),
            Err(ScalerError::TooFewRows { n: 1 })
        ));
        let x = array![[1.0, 5.0], [2.0, f64::NAN]];
        assert!(matches!(
            Scaler::fit(x.view()),
            Err(ScalerError::NonFinite { column: 1 })
        ));
    }
}
