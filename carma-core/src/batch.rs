//! Many individuals per call: [`Bundle::recommend_batch`].
//!
//! Still no allocation and no threads (the core is `no_std`); a caller with
//! threads splits the rows into contiguous chunks, one scratch area each
//! (`carma_train::batch` does).

use crate::FeatureSet;
use crate::bundle::Bundle;
use crate::error::{Argument, Error, InputError};
use crate::recommend::{Options, Recommendation};

impl<'a> Bundle<'a> {
    /// [`Bundle::recommend`] for every row of `xs` (row-major, `D` values
    /// per row, original units), with the same `forbid` for all: row `r`'s
    /// counterfactual goes to row `r` of `out` (`xs.len()` values) and its
    /// outcome to `results[r]`. One scratch area of
    /// [`Bundle::scratch_len`] values serves the whole batch.
    ///
    /// A problem with one row (not finite, a binary feature not 0 or 1, an
    /// overflow) is that row's `Err` and does not stop the others; wrong
    /// lengths, a short scratch, an unknown feature in `forbid` or a bundle
    /// without CARMA networks fail the whole call before any row is read.
    /// Each row's result has the bits `recommend` gives it alone.
    pub fn recommend_batch(
        &self,
        xs: &[f32],
        forbid: FeatureSet,
        out: &mut [f32],
        results: &mut [Result<Recommendation, Error>],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let options = Options::new(forbid, None);
        self.batch_impl(xs, &options, false, out, results, scratch)
    }

    /// [`Bundle::recommend_batch`] with the options of [`Bundle::recommend_with`]
    /// (forbidden features, refinement); each row's result has the bits
    /// `recommend_with` gives it alone.
    pub fn recommend_batch_with(
        &self,
        xs: &[f32],
        options: &Options,
        out: &mut [f32],
        results: &mut [Result<Recommendation, Error>],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.batch_impl(xs, options, true, out, results, scratch)
    }

    /// The batch of [`Bundle::recommend_impl`] calls.
    fn batch_impl(
        &self,
        xs: &[f32],
        options: &Options,
        exact_binary: bool,
        out: &mut [f32],
        results: &mut [Result<Recommendation, Error>],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        self.carma_or_err()?;
        self.check_set(options.forbid)?;
        self.check_scratch(scratch)?;
        let d = self.n_features();
        let rows = results.len();
        let length = |argument, found| InputError::Length {
            argument,
            expected: rows * d,
            found,
        };
        if xs.len() != rows * d {
            return Err(length(Argument::Input, xs.len()).into());
        }
        if out.len() != rows * d {
            return Err(length(Argument::Output, out.len()).into());
        }
        for ((x, o), r) in xs
            .chunks_exact(d)
            .zip(out.chunks_exact_mut(d))
            .zip(results.iter_mut())
        {
            *r = self.recommend_impl(x, options, exact_binary, o, scratch);
        }
        Ok(())
    }
}
