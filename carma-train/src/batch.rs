//! Recommendations for many individuals over several threads: the rows are
//! cut into blocks of [`BLOCK_ROWS`], and each thread takes the next block
//! not yet taken and runs [`Bundle::recommend_batch`] on it with its own
//! scratch area of [`Bundle::batch_scratch_len`] values (the core's lane
//! kernel: several individuals per weight load). Results are the same bits as one thread gives (every row
//! is computed on its own).
//!
//! Blocks rather than one contiguous share per thread: an accepted
//! individual costs about a tenth of a rejected one, so equal shares of
//! rows are unequal shares of work; taking blocks as they come keeps every
//! core busy to the end.

use std::sync::Mutex;

use carma_core::{Bundle, Error, FeatureSet, Recommendation};

/// Rows per block handed to a thread: about half a millisecond of work,
/// so taking a block (a lock) costs nothing in comparison.
pub const BLOCK_ROWS: usize = 512;

/// The number of threads to use when the caller does not say: the
/// machine's available parallelism (1 if unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// [`Bundle::recommend_batch`] over `threads` threads (at least 1, at most
/// one per block). `xs` and `out` are row-major with `D` values per row,
/// `results` has one entry per row. Shape errors fail the whole call before
/// any row is read, as in the core.
pub fn recommend_parallel(
    bundle: &Bundle<'_>,
    xs: &[f32],
    forbid: FeatureSet,
    out: &mut [f32],
    results: &mut [Result<Recommendation, Error>],
    threads: usize,
) -> Result<(), Error> {
    let d = bundle.n_features();
    let rows = results.len();
    let threads = threads.clamp(1, rows.div_ceil(BLOCK_ROWS).max(1));
    if threads == 1 || xs.len() != rows * d || out.len() != rows * d {
        // One thread, or a shape error the core reports.
        let mut scratch = vec![0.0; bundle.batch_scratch_len()];
        return bundle.recommend_batch(xs, forbid, out, results, &mut scratch);
    }
    let blocks = Mutex::new(
        xs.chunks(BLOCK_ROWS * d)
            .zip(out.chunks_mut(BLOCK_ROWS * d))
            .zip(results.chunks_mut(BLOCK_ROWS)),
    );
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut scratch = vec![0.0; bundle.batch_scratch_len()];
                    loop {
                        // Taking the next block cannot panic, so the lock is never poisoned.
                        let next = blocks.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some(((x, o), r)) = next else {
                            return Ok(());
                        };
                        bundle.recommend_batch(x, forbid, o, r, &mut scratch)?;
                    }
                })
            })
            .collect();
        // A thread can only fail the way the whole call would (same bundle,
        // forbid and scratch size), so the first error is the call's.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Error::NoCarma)))
            .collect::<Result<Vec<()>, Error>>()
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{NoProgress, PipelineConfig, train_simulated};
    use crate::scm::Dataset;

    /// A quickly trained triangle-LIN model with its test split.
    fn tiny_triangle() -> crate::pipeline::Simulated {
        train_simulated(
            Dataset::TriangleLin,
            &PipelineConfig::tiny(Dataset::TriangleLin),
            &mut NoProgress,
        )
        .unwrap()
    }

    #[test]
    fn threads_give_the_bits_of_one_thread() {
        let sim = tiny_triangle();
        let bytes = sim.trained.to_bytes().unwrap();
        let bundle = Bundle::new(&bytes).unwrap();
        let d = bundle.n_features();
        // The test split repeated past several blocks (with a last, partial
        // one), so that 2, 3 and 7 threads all share the work.
        let test: Vec<f32> = sim.test.x.iter().map(|&v| v as f32).collect();
        let rows = 7 * BLOCK_ROWS + 37;
        let xs: Vec<f32> = test.iter().copied().cycle().take(rows * d).collect();
        let run = |threads| {
            let mut out = vec![0.0f32; xs.len()];
            let mut results = vec![Err(Error::NoCarma); rows];
            recommend_parallel(
                &bundle,
                &xs,
                FeatureSet::EMPTY,
                &mut out,
                &mut results,
                threads,
            )
            .unwrap();
            let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            (bits, results)
        };
        let one = run(1);
        assert!(one.1.iter().all(Result::is_ok));
        assert!(one.1.iter().any(|r| r.is_ok_and(|r| !r.already_accepted)));
        for threads in [2, 3, 7] {
            assert_eq!(run(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn shape_errors_are_the_cores() {
        let sim = tiny_triangle();
        let bytes = sim.trained.to_bytes().unwrap();
        let bundle = Bundle::new(&bytes).unwrap();
        let mut out = vec![0.0f32; 5];
        let mut results = vec![Err(Error::NoCarma); 2];
        let e = recommend_parallel(
            &bundle,
            &[0.0; 6],
            FeatureSet::EMPTY,
            &mut out,
            &mut results,
            2,
        );
        assert!(matches!(e, Err(Error::Input(_))));
    }
}
