//! Validation of the flow's inversion schedule (`FlowWire::ready`): each
//! hidden layer's counts grow to its width, and every non-zero weight reads
//! only values that are final when its unit (or output) is computed, so the
//! node-by-node inversion is exact.

use crate::error::ValidationError;
use crate::flow::Flow;

/// Checks one layer's schedule and that its weights respect it.
pub(crate) fn check_layer(
    flow: &Flow<'_>,
    layer: usize,
    position: &[usize],
) -> Result<(), ValidationError> {
    let d = flow.n_features();
    let mlp = flow.layer(layer).ok_or(ValidationError::NoFlowLayers)?;
    let n_hidden = flow.n_hidden();
    for hidden in 0..n_hidden {
        let width = mlp.width(hidden + 1);
        let mut prev = 0;
        for step in 0..=d {
            let r = flow.ready(layer, hidden, step);
            if r < prev || r > width || (step == d && r != width) {
                return Err(ValidationError::ReadyNotMonotonic {
                    layer,
                    hidden,
                    step,
                });
            }
            prev = r;
        }
    }
    let violation =
        |matrix: usize, (row, column): (usize, usize)| ValidationError::ScheduleViolation {
            layer,
            matrix,
            row,
            column,
        };
    // Is input `c` of matrix `m` unknown at step `t`?
    let late = |m: usize, t: usize, c: usize| {
        if m == 0 {
            position.get(c).is_none_or(|&p| p >= t)
        } else {
            c >= flow.ready(layer, m - 1, t)
        }
    };
    for m in 0..n_hidden {
        let dense = mlp.layer(m).ok_or(ValidationError::NoFlowLayers)?;
        for t in 0..=d {
            let lo = if t == 0 {
                0
            } else {
                flow.ready(layer, m, t - 1)
            };
            let hi = flow.ready(layer, m, t);
            if let Some(hit) = dense.first_nonzero(lo..hi, |c| late(m, t, c)) {
                return Err(violation(m, hit));
            }
        }
    }
    let out = mlp.layer(n_hidden).ok_or(ValidationError::NoFlowLayers)?;
    for (t, &feature) in flow.order().iter().enumerate() {
        let i = usize::from(feature);
        if let Some(hit) = out.first_nonzero(2 * i..2 * i + 2, |c| late(n_hidden, t, c)) {
            return Err(violation(n_hidden, hit));
        }
    }
    Ok(())
}
