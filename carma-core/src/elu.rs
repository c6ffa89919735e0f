//! The ELU activation `x if x > 0 else exp(x) - 1`, branch-free so that a
//! whole hidden layer is one vectorizable loop.
//!
//! `libm::expm1f` (a rational approximation with data-dependent branches)
//! took about a fifth of a recommendation's time, one call per negative
//! unit. Here `exp(x) - 1` for `x <= 0` uses the classic reduction
//! `x = k ln 2 + r`, `|r| <= ln(2) / 2`, a degree-7 Taylor polynomial for
//! `expm1(r)` (truncation error below `1.6e-8` relative) and
//! `expm1(x) = 2^k expm1(r) + (2^k - 1)`, with no branch and no division.
//! The test below checks it against `f64` `expm1` over the whole range:
//! within 2 units in the last place.

/// `log2(e)` rounded to `f32`.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// The high part of `ln 2`: 9 significant bits, so `k * LN2_HI` is exact for `|k| < 2^15`.
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`, rounded to `f32`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding and subtracting it rounds an `f32` below `2^22` to
/// the nearest integer (ties to even).
const ROUND: f32 = 12_582_912.0;
/// Below this `exp(x) - 1` rounds to `-1` in `f32` (`e^-30 < 2^-43`); clamping
/// there keeps `2^k` a normal number.
const FLOOR: f32 = -30.0;

/// `exp(x) - 1` for `x <= 0` (any other `x` is treated as 0; NaN stays NaN).
#[inline(always)]
fn expm1_nonpositive(x: f32) -> f32 {
    let x = x.clamp(FLOOR, 0.0);
    let t = x * LOG2E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = r + r
        * r
        * (0.5
            + r * (1.0 / 6.0
                + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0))))));
    // `2^k` from the bits of `t = 1.5 * 2^23 + k` (k is an integer in
    // [-44, 0], one unit in the last place of `t` each): integer operations
    // only, which vectorize, unlike a float-to-int conversion. (A NaN makes
    // `p`, so the result, NaN.)
    let k_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    scale * p + (scale - 1.0)
}

/// ELU with `alpha = 1`: `x` if `x > 0`, else `exp(x) - 1`.
#[inline(always)]
pub fn elu(x: f32) -> f32 {
    let e = expm1_nonpositive(x);
    if x > 0.0 { x } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite `f32`.
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let bits = v.to_bits() as i32;
            if bits < 0 { i32::MIN - bits } else { bits }
        };
        key(a).abs_diff(key(b))
    }

    #[test]
    fn matches_f64_expm1_within_two_ulps_on_the_negative_axis() {
        let mut worst = (0, 0.0f32);
        // Every 97th f32 in [-40, 0): about 11 million values.
        let (lo, hi) = ((-40.0f32).to_bits(), (-0.0f32).to_bits());
        let mut bits = hi + 1;
        while bits <= lo {
            let x = f32::from_bits(bits);
            let want = libm::expm1(f64::from(x)) as f32;
            let d = ulps(elu(x), want);
            if d > worst.0 {
                worst = (d, x);
            }
            bits += 97;
        }
        assert!(worst.0 <= 2, "{} ulps at x = {}", worst.0, worst.1);
    }

    #[test]
    fn positive_inputs_pass_through_and_edges_are_right() {
        assert_eq!(elu(1.5), 1.5);
        assert_eq!(elu(f32::MAX), f32::MAX);
        assert_eq!(elu(0.0), 0.0);
        assert_eq!(elu(-0.0).to_bits(), (0.0f32).to_bits());
        assert_eq!(elu(-1e-30), -1e-30);
        assert_eq!(elu(-100.0), -1.0);
        assert_eq!(elu(f32::NEG_INFINITY), -1.0);
        assert!(elu(f32::NAN).is_nan());
        assert_eq!(elu(f32::INFINITY), f32::INFINITY);
    }
}
