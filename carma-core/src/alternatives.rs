//! Several recommendations for one person, each changing a different set of
//! features: [`Bundle::recommend_alternatives`] (issue 13, part 4).

use crate::bundle::Bundle;
use crate::error::{Argument, Error, InputError};
use crate::recommend::{Options, Recommendation};

impl<'a> Bundle<'a> {
    /// Up to `recs.len()` recommendations for `x_raw`: `recs[0]` is
    /// [`Bundle::recommend_with`]'s; each further one is the cheapest
    /// accepted recommendation found when one more feature used by the
    /// earlier ones is forbidden (on top of `options.forbid`), whose set of
    /// changed features differs from every earlier one. The alternatives
    /// (`recs[1..n]`) are ordered by cost, ties by the forbidden feature.
    /// Returns `n`, the number found; `recs[n..]` are set to `None`. Row `i`
    /// of `x_cfs_out` (`D` values each, `recs.len()` rows) holds the
    /// counterfactual of `recs[i]`; rows from `n` on hold unspecified values.
    ///
    /// Already accepted people, or a first recommendation that is not
    /// accepted, get no alternatives. Deterministic; no allocation: each
    /// candidate is one `recommend_with` on the caller's scratch.
    ///
    /// Errors: those of [`Bundle::recommend_with`], and
    /// [`InputError::Length`] if `x_cfs_out` is not `recs.len() * D` long.
    pub fn recommend_alternatives(
        &self,
        x_raw: &[f32],
        options: &Options<'_>,
        x_cfs_out: &mut [f32],
        recs: &mut [Option<Recommendation>],
        scratch: &mut [f32],
    ) -> Result<usize, Error> {
        let d = self.n_features();
        if x_cfs_out.len() != recs.len() * d {
            return Err(InputError::Length {
                argument: Argument::Output,
                expected: recs.len() * d,
                found: x_cfs_out.len(),
            }
            .into());
        }
        recs.fill(None);
        let mut rows = x_cfs_out.chunks_exact_mut(d.max(1));
        let (Some(first_row), Some(slot)) = (rows.next(), recs.first_mut()) else {
            return Ok(0);
        };
        let first = self.recommend_with(x_raw, options, first_row, scratch)?;
        *slot = Some(first);
        if first.already_accepted || !first.accepted {
            return Ok(1);
        }
        let mut used = first.mask;
        let mut n = 1;
        for row in rows {
            // The cheapest new accepted set, by the feature forbidden for it.
            let mut best: Option<(usize, f32)> = None;
            for f in used.iter() {
                let mut o = *options;
                if !o.forbid.insert(f) {
                    continue;
                }
                let r = self.recommend_with(x_raw, &o, row, scratch)?;
                let new = recs
                    .get(..n)
                    .unwrap_or_default()
                    .iter()
                    .flatten()
                    .all(|p| p.mask != r.mask);
                if r.accepted && !r.mask.is_empty() && new && best.is_none_or(|(_, c)| r.cost < c) {
                    best = Some((f, r.cost));
                }
            }
            let Some((f, _)) = best else {
                break;
            };
            let mut o = *options;
            o.forbid.insert(f);
            let r = self.recommend_with(x_raw, &o, row, scratch)?;
            if let Some(s) = recs.get_mut(n) {
                *s = Some(r);
            }
            used = used.union(r.mask);
            n += 1;
        }
        // Alternatives by cost: a stable insertion sort of recs[1..n] and their rows.
        for i in 2..n {
            let mut j = i;
            while j > 1 {
                let cost = |k: usize| {
                    recs.get(k)
                        .copied()
                        .flatten()
                        .map_or(f32::INFINITY, |r| r.cost)
                };
                if cost(j - 1) <= cost(j) {
                    break;
                }
                recs.swap(j - 1, j);
                let (head, tail) = x_cfs_out.split_at_mut(j * d);
                if let (Some(a), Some(b)) = (head.get_mut((j - 1) * d..), tail.get_mut(..d)) {
                    a.swap_with_slice(b);
                }
                j -= 1;
            }
        }
        Ok(n)
    }
}
