//! Seeded train/validation/test splits (docs/MATH.md section 2, datasets: the reference's fractions).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::DataError;

/// Classifier data: train/validation/test 0.5/0.25/0.25 (docs/MATH.md section 2, datasets).
pub const CLASSIFIER_SPLIT: [f64; 3] = [0.5, 0.25, 0.25];
/// Causal-flow data: 0.8/0.1/0.1 (docs/MATH.md section 2, datasets).
pub const FLOW_SPLIT: [f64; 3] = [0.8, 0.1, 0.1];
/// Recourse data: 0.5/0.25/0.25 (docs/MATH.md section 2, datasets).
pub const RECOURSE_SPLIT: [f64; 3] = [0.5, 0.25, 0.25];

/// Fractions must sum to 1 within this tolerance.
const SUM_TOL: f64 = 1e-9;

/// Row indices of the three parts; together a permutation of `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

/// Shuffle `0..n` with a `ChaCha8Rng` seeded by `seed`, then cut it into parts of
/// `round(n * fractions[0])`, `round(n * fractions[1])` and the rest.
pub fn split_indices(n: usize, fractions: [f64; 3], seed: u64) -> Result<Split, DataError> {
    let ok = fractions.iter().all(|f| f.is_finite() && *f >= 0.0)
        && (fractions.iter().sum::<f64>() - 1.0).abs() <= SUM_TOL;
    if !ok {
        return Err(DataError::Fractions { fractions });
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_train = ((n as f64 * fractions[0]).round() as usize).min(n);
    let n_val = ((n as f64 * fractions[1]).round() as usize).min(n - n_train);
    let test = idx.split_off(n_train + n_val);
    let val = idx.split_off(n_train);
    Ok(Split {
        train: idx,
        val,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_have_the_spec_sizes_and_partition_the_rows() {
        let s = split_indices(20_000, CLASSIFIER_SPLIT, 1).unwrap();
        assert_eq!(
            (s.train.len(), s.val.len(), s.test.len()),
            (10_000, 5_000, 5_000)
        );
        let s = split_indices(25_000, FLOW_SPLIT, 1).unwrap();
        assert_eq!(
            (s.train.len(), s.val.len(), s.test.len()),
            (20_000, 2_500, 2_500)
        );
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.val)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..25_000).collect::<Vec<_>>());
        let s = split_indices(7, FLOW_SPLIT, 3).unwrap();
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), 7);
    }

    #[test]
    fn splits_are_deterministic_per_seed_and_shuffled() {
        assert_eq!(
            split_indices(100, FLOW_SPLIT, 9).unwrap(),
            split_indices(100, FLOW_SPLIT, 9).unwrap()
        );
        assert_ne!(
            split_indices(100, FLOW_SPLIT, 9).unwrap(),
            split_indices(100, FLOW_SPLIT, 10).unwrap()
        );
        assert_ne!(
            split_indices(100, FLOW_SPLIT, 9).unwrap().train,
            (0..80).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_fractions_are_refused() {
        for f in [[0.5, 0.5, 0.5], [1.2, -0.1, -0.1], [f64::NAN, 0.5, 0.5]] {
            assert!(
                matches!(split_indices(10, f, 0), Err(DataError::Fractions { .. })),
                "{f:?}"
            );
        }
    }
}
