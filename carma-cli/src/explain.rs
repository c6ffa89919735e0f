//! One person's recommendation in words, JSON or a CSV row: what to change (current and
//! recommended values in original units), what changes as a consequence, and the probability of
//! acceptance before and after.

use std::fmt::{self, Write as _};

use carma_core::{Bundle, FeatureSet, Kind, Recommendation, Status};

use crate::model;

/// A change smaller than this fraction of the feature's standard deviation is rounding in the
/// flow's round trip, not a consequence worth telling (nor is one invisible at the precision
/// shown, see [`value`]).
pub const CONSEQUENCE_TOL: f32 = 1e-3;

/// Significant digits shown for a change of one standard deviation: `from 1.20 to 2.85` when the
/// feature's std is about 1, `from 5200 to 6100` when it is about 1000.
const DIGITS_PER_STD: i32 = 2;

/// One feature's move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// Feature index.
    pub feature: usize,
    /// Current value, original units.
    pub from: f32,
    /// Recommended (or resulting) value, original units.
    pub to: f32,
}

/// What the recommendation would have been without `--forbid`, when the forbidden features
/// leave no accepted one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unrestricted {
    /// Features the unrestricted recommendation changes.
    pub mask: FeatureSet,
    /// Probability after it.
    pub prob_after: f32,
    /// Whether it is accepted.
    pub accepted: bool,
}

/// Everything said about one person.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// 1-based data row of the input.
    pub row: usize,
    /// The person's identifier from the input's `--id` column, when asked for.
    pub id: Option<String>,
    /// The core's result.
    pub rec: Recommendation,
    /// The features to act on, in feature order.
    pub actions: Vec<Change>,
    /// Other features that move as a consequence.
    pub consequences: Vec<Change>,
    /// The recommended profile, original units.
    pub x_cf: Vec<f32>,
    /// Set when features were forbidden and no accepted recommendation is left: the forbidden
    /// features and what the model would recommend without them forbidden.
    pub forbidden_left_none: Option<(FeatureSet, Unrestricted)>,
    /// The request's `max_changes`, when it bound the recommendation.
    pub max_changes: Option<u8>,
    /// The person's values (original units), for the out-of-range notes.
    pub x: Vec<f32>,
    /// Further recommendations (`--alternatives`), each with its actions.
    pub alternatives: Vec<(Recommendation, Vec<Change>)>,
}

impl Explanation {
    /// Sort the changes between `x` and `x_cf` into actions (the mask) and consequences.
    pub fn new(
        bundle: &Bundle<'_>,
        row: usize,
        x: &[f32],
        x_cf: &[f32],
        rec: Recommendation,
    ) -> Explanation {
        let mut e = Explanation::empty(rec);
        e.fill(&Style::new(bundle), row, x, x_cf, rec);
        e
    }

    /// An explanation with nothing in it yet, to be [`fill`](Explanation::fill)ed again and
    /// again without allocating.
    pub fn empty(rec: Recommendation) -> Explanation {
        Explanation {
            row: 0,
            id: None,
            rec,
            actions: Vec::new(),
            consequences: Vec::new(),
            x_cf: Vec::new(),
            forbidden_left_none: None,
            max_changes: None,
            x: Vec::new(),
            alternatives: Vec::new(),
        }
    }

    /// What [`Explanation::new`] computes, into this one's buffers; the id and the warning are
    /// cleared.
    pub fn fill(
        &mut self,
        style: &Style,
        row: usize,
        x: &[f32],
        x_cf: &[f32],
        rec: Recommendation,
    ) {
        self.row = row;
        self.id = None;
        self.rec = rec;
        self.actions.clear();
        self.consequences.clear();
        self.forbidden_left_none = None;
        for (i, (&from, &to)) in x.iter().zip(x_cf).enumerate() {
            let change = Change {
                feature: i,
                from,
                to,
            };
            if rec.mask.contains(i) {
                self.actions.push(change);
            } else if (to - from).abs() > CONSEQUENCE_TOL * style.std[i]
                && style.shown(i, from) != style.shown(i, to)
            {
                self.consequences.push(change);
            }
        }
        self.x_cf.clear();
        self.x_cf.extend_from_slice(x_cf);
        self.x.clear();
        self.x.extend_from_slice(x);
        self.max_changes = None;
        self.alternatives.clear();
    }

    /// Add an alternative recommendation: its result and counterfactual `x_cf`.
    pub fn add_alternative(&mut self, x: &[f32], x_cf: &[f32], rec: Recommendation) {
        let actions = rec
            .mask
            .iter()
            .filter_map(|i| {
                Some(Change {
                    feature: i,
                    from: *x.get(i)?,
                    to: *x_cf.get(i)?,
                })
            })
            .collect();
        self.alternatives.push((rec, actions));
    }

    /// Set the identifier, reusing the string's memory.
    pub fn set_id(&mut self, id: &str) {
        let s = self.id.get_or_insert_with(String::new);
        s.clear();
        s.push_str(id);
    }

    /// `already accepted`, `accepted after the recommendation`, `no recommendation within your
    /// limits` (the limits bound and nothing accepted is left), or `not accepted` (nothing
    /// limited the model and it found nothing accepted).
    pub fn status(&self) -> &'static str {
        match self.rec.status {
            Status::AlreadyAccepted => "already accepted",
            Status::Recommended => "accepted after the recommendation",
            Status::NoneWithinLimits => "no recommendation within your limits",
            Status::NotReached => "not accepted",
        }
    }

    /// Which limits bound the recommendation, in words (empty if none did): the features a
    /// bound or a direction held back, the maximum number of changes, the forbidden features.
    pub fn limit_reason(&self, bundle: &Bundle<'_>) -> String {
        let mut parts = Vec::new();
        if !self.rec.bound_by_limit.is_empty() {
            let names = set_names(bundle, self.rec.bound_by_limit);
            parts.push(format!(
                "{} held back by {} bounds or direction",
                join(&names),
                if names.len() == 1 { "its" } else { "their" }
            ));
        }
        if self.rec.max_changes_bound {
            parts.push(match self.max_changes {
                Some(n) => format!(
                    "at most {n} change{} allowed",
                    if n == 1 { "" } else { "s" }
                ),
                None => "the maximum number of changes".to_owned(),
            });
        }
        if let Some((forbid, _)) = &self.forbidden_left_none {
            parts.push(format!("{} forbidden", join(&set_names(bundle, *forbid))));
        }
        parts.join("; ")
    }

    /// One note per input value outside the model's bounds (the training range and its margin).
    pub fn out_of_range_notes(&self, bundle: &Bundle<'_>) -> Vec<String> {
        self.rec
            .out_of_range
            .iter()
            .map(|i| {
                let (lo, hi) = bundle
                    .bounds(i)
                    .unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                format!(
                    "{} = {} is outside the range the model knows ({lo} to {hi}); the answer is \
                     less reliable",
                    model::name(bundle, i),
                    self.x.get(i).copied().unwrap_or(f32::NAN)
                )
            })
            .collect()
    }

    /// Plain language, one paragraph (ending in a newline).
    pub fn text(&self, bundle: &Bundle<'_>) -> String {
        let mut out = Vec::new();
        self.write_text(bundle, &Style::new(bundle), &mut out);
        String::from_utf8(out).expect("the text is built from strings")
    }

    /// Append [`Explanation::text`] to `out`.
    pub fn write_text(&self, bundle: &Bundle<'_>, style: &Style, out: &mut Vec<u8>) {
        let r = &self.rec;
        match &self.id {
            Some(id) => {
                out.extend_from_slice(b"Person ");
                // A line break or an escape sequence in an id must not forge output lines.
                write_escaped(out, id);
                out.extend_from_slice(b": ");
            }
            None => {
                out.extend_from_slice(b"Person ");
                write_uint(out, self.row as u64);
                out.extend_from_slice(b": ");
            }
        }
        if r.already_accepted {
            out.extend_from_slice(b"already accepted (p = ");
            write_fixed(out, r.prob_before, 2);
            out.extend_from_slice(b"). Nothing to change.\n");
            for note in self.out_of_range_notes(bundle) {
                out.extend_from_slice(b"  Note: ");
                out.extend_from_slice(note.as_bytes());
                out.push(b'\n');
            }
            return;
        }
        out.extend_from_slice(b"rejected (p = ");
        write_fixed(out, r.prob_before, 2);
        out.extend_from_slice(b"). ");
        if r.status == Status::NoneWithinLimits {
            out.extend_from_slice(b"No recommendation within your limits (");
            out.extend_from_slice(self.limit_reason(bundle).as_bytes());
            out.extend_from_slice(b"): the best change the model found within them leaves p = ");
            write_fixed(out, r.prob_after, 2);
            out.extend_from_slice(b", so none is given.");
        } else if !r.accepted && !self.actions.is_empty() {
            out.extend_from_slice(b"No recommendation: the best change the model found (to ");
            let names: Vec<String> = self
                .actions
                .iter()
                .map(|c| style.names[c.feature].clone())
                .collect();
            out.extend_from_slice(join(&names).as_bytes());
            out.extend_from_slice(b") still leaves p = ");
            write_fixed(out, r.prob_after, 2);
            out.extend_from_slice(b", so none is given.");
        } else if self.actions.is_empty() {
            out.extend_from_slice(b"No recommendation: no feature that may be changed would help.");
        } else {
            out.extend_from_slice(b"Recommended: ");
            write_actions(bundle, style, &self.actions, out);
            if !self.consequences.is_empty() {
                out.extend_from_slice(b"; as a consequence ");
                for (k, c) in self.consequences.iter().enumerate() {
                    separator(out, k, self.consequences.len());
                    out.extend_from_slice(style.names[c.feature].as_bytes());
                    out.extend_from_slice(if c.to >= c.from { b" rises" } else { b" falls" });
                    style.write_move(out, c);
                }
            }
            out.extend_from_slice(b". Then accepted (p = ");
            write_fixed(out, r.prob_after, 2);
            out.extend_from_slice(b").");
            let reason = self.limit_reason(bundle);
            if !reason.is_empty() {
                out.extend_from_slice(b" Within your limits: ");
                out.extend_from_slice(reason.as_bytes());
                out.push(b'.');
            }
        }
        out.push(b'\n');
        for (k, (rec, actions)) in self.alternatives.iter().enumerate() {
            out.extend_from_slice(b"  Alternative ");
            write_uint(out, k as u64 + 1);
            out.extend_from_slice(b": ");
            write_actions(bundle, style, actions, out);
            out.extend_from_slice(b". Then accepted (p = ");
            write_fixed(out, rec.prob_after, 2);
            out.extend_from_slice(b"), cost ");
            write_f32(out, rec.cost);
            out.extend_from_slice(b".\n");
        }
        for note in self.out_of_range_notes(bundle) {
            out.extend_from_slice(b"  Note: ");
            out.extend_from_slice(note.as_bytes());
            out.push(b'\n');
        }
        if let Some(w) = self.warning(bundle) {
            out.extend_from_slice(b"  Warning: ");
            out.extend_from_slice(w.as_bytes());
            out.push(b'\n');
        }
    }

    /// The `--forbid` warning, if any.
    pub fn warning(&self, bundle: &Bundle<'_>) -> Option<String> {
        let (forbid, unrestricted) = self.forbidden_left_none.as_ref()?;
        let forbidden = join(&set_names(bundle, *forbid));
        Some(if unrestricted.accepted {
            format!(
                "forbidding {forbidden} leaves no accepted recommendation; without that \
                 restriction the model would change {} (then accepted, p = {:.2})",
                join(&set_names(bundle, unrestricted.mask)),
                unrestricted.prob_after
            )
        } else {
            format!("no accepted recommendation, with or without forbidding {forbidden}")
        })
    }

    /// One JSON object (serialize it directly: a `serde_json::Value` would sort the keys).
    pub fn json<'s, 'n: 's>(&'s self, bundle: &Bundle<'n>) -> impl serde::Serialize + use<'s, 'n> {
        let changes = |v: &[Change]| -> Vec<ChangeJson<'n>> {
            v.iter()
                .map(|c| ChangeJson {
                    feature: model::name(bundle, c.feature),
                    from: short(c.from),
                    to: short(c.to),
                    from_level: level(bundle, c.feature, c.from),
                    to_level: level(bundle, c.feature, c.to),
                })
                .collect()
        };
        Person {
            row: self.row,
            id: self.id.as_deref(),
            status: self.status(),
            already_accepted: self.rec.already_accepted,
            accepted: self.rec.accepted,
            prob_before: short(self.rec.prob_before),
            prob_after: short(self.rec.prob_after),
            cost: short(self.rec.cost),
            cost_unrefined: short(self.rec.cost_unrefined),
            actions: changes(&self.actions),
            consequences: changes(&self.consequences),
            recommended: Profile(
                self.x_cf
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (model::name(bundle, i), short(v)))
                    .collect(),
            ),
            warning: self.warning(bundle),
            bound_by_limit: set_names(bundle, self.rec.bound_by_limit),
            max_changes_bound: self.rec.max_changes_bound,
            limit_reason: Some(self.limit_reason(bundle)).filter(|r| !r.is_empty()),
            out_of_range: set_names(bundle, self.rec.out_of_range),
            alternatives: self
                .alternatives
                .iter()
                .map(|(r, a)| AlternativeJson {
                    actions: changes(a),
                    prob_after: short(r.prob_after),
                    cost: short(r.cost),
                })
                .collect(),
        }
    }

    /// The CSV header matching [`Explanation::write_csv`]; `id` names the identifier column,
    /// when there is one.
    pub fn csv_header(bundle: &Bundle<'_>, id: Option<&str>) -> Vec<String> {
        let mut h: Vec<String> = vec!["row".into()];
        h.extend(id.map(String::from));
        h.extend(
            [
                "status",
                "prob_before",
                "prob_after",
                "cost",
                "cost_unrefined",
                "actions",
                "consequences",
            ]
            .map(String::from),
        );
        for i in 0..bundle.n_features() {
            h.push(format!("{}_recommended", model::name(bundle, i)));
        }
        h.extend(["warning", "bound_by_limit", "out_of_range", "alternatives"].map(String::from));
        h
    }
}

impl Explanation {
    /// Append one CSV line: the row, the id, the status, the probabilities, the cost, the
    /// actions and consequences (`;`-separated), the recommended value of every feature, the
    /// warning, the features a limit held back and the inputs outside the model's range
    /// (`;`-separated). Quoted as the `csv` crate's writer quotes (a field holding a comma, a quote or a line break is put in quotes, its
    /// quotes doubled).
    pub fn write_csv(&self, bundle: &Bundle<'_>, style: &Style, out: &mut Vec<u8>) {
        let r = &self.rec;
        write_uint(out, self.row as u64);
        if let Some(id) = &self.id {
            csv_field(out, |o| o.extend_from_slice(id.as_bytes()));
        }
        // Numbers and the status never need quotes.
        out.push(b',');
        out.extend_from_slice(self.status().as_bytes());
        for v in [r.prob_before, r.prob_after, r.cost, r.cost_unrefined] {
            out.push(b',');
            write_compact(out, v);
        }
        for list in [&self.actions, &self.consequences] {
            csv_field(out, |o| {
                for (k, c) in list.iter().enumerate() {
                    if k > 0 {
                        o.push(b';');
                    }
                    o.extend_from_slice(style.names[c.feature].as_bytes());
                }
            });
        }
        for (i, &v) in self.x_cf.iter().enumerate() {
            // A categorical feature by its level's name (the input reads names and codes).
            match level(bundle, i, v) {
                Some(name) => csv_field(out, |o| o.extend_from_slice(name.as_bytes())),
                None => {
                    out.push(b',');
                    write_compact(out, v);
                }
            }
        }
        match self.warning(bundle) {
            Some(w) => csv_field(out, |o| o.extend_from_slice(w.as_bytes())),
            None => out.push(b','),
        }
        for set in [r.bound_by_limit, r.out_of_range] {
            csv_field(out, |o| {
                for (k, i) in set.iter().enumerate() {
                    if k > 0 {
                        o.push(b';');
                    }
                    o.extend_from_slice(style.names[i].as_bytes());
                }
            });
        }
        // Each alternative's features `;`-separated, alternatives separated by ` | `.
        csv_field(out, |o| {
            for (k, (alt, _)) in self.alternatives.iter().enumerate() {
                if k > 0 {
                    o.extend_from_slice(b" | ");
                }
                for (j, i) in alt.mask.iter().enumerate() {
                    if j > 0 {
                        o.push(b';');
                    }
                    o.extend_from_slice(style.names[i].as_bytes());
                }
            }
        });
        out.push(b'\n');
    }
}

/// A comma, then the field `write` appends, quoted if it must be.
fn csv_field(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b',');
    let start = out.len();
    write(out);
    quote(out, start);
}

/// Put `out[start..]` in quotes, doubling its quotes, when it holds a comma, a quote or a line
/// break (the `csv` crate's writer's rule with its default settings).
fn quote(out: &mut Vec<u8>, start: usize) {
    if out[start..]
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        let field = out.split_off(start);
        out.push(b'"');
        for b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

/// Append `v` as the shortest decimal that reads back to it, compactly: as [`write_f32`]
/// (`Display`) for zero and magnitudes in [1e-5, 1e16), in exponent notation otherwise
/// (`5.562752e-35`, not `0.0000000000000000000000000000000005562752`), as `format!("{v:e}")`.
pub fn write_compact(out: &mut Vec<u8>, v: f32) {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() || (1e-5..1e16).contains(&a) {
        write_f32(out, v);
    } else {
        let _ = write!(Bytes(out), "{v:e}");
    }
}

/// Append `v` exactly as `format!("{v}")` writes it (the shortest decimal that reads back to
/// `v`, never in exponent notation), about three times faster: the digits come from `ryu` (the
/// same shortest, closest digits; test `f32_display_matches_std_for_every_f32`, ignored by
/// default) and are laid out as `Display` does.
pub fn write_f32(out: &mut Vec<u8>, v: f32) {
    if !v.is_finite() {
        let _ = write!(Bytes(out), "{v}");
        return;
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    // Most values: ryu writes `123.45`, `0.0012` or `1200.0` (no exponent), which is Display's
    // text once a `.0` is dropped, unless v is a halfway case (checked from its bits).
    if let Some(p) = text.iter().position(|&b| b == b'.')
        && !text.contains(&b'e')
    {
        let (shown, e) = if &text[p + 1..] == b"0" {
            let int = &text[..p];
            let zeros = int.iter().rev().take_while(|&&b| b == b'0').count();
            (int, zeros as i32)
        } else {
            (text, -((text.len() - p - 1) as i32))
        };
        if !maybe_halfway(v, e) {
            out.extend_from_slice(shown);
            return;
        }
    }
    let (negative, text) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(p) => {
            let e = std::str::from_utf8(&text[p + 1..])
                .ok()
                .and_then(|e| e.parse::<i32>().ok());
            let Some(e) = e else {
                let _ = write!(Bytes(out), "{v}");
                return;
            };
            (&text[..p], e)
        }
        None => (text, 0),
    };
    // The value is 0.DIGITS x 10^k.
    let mut digits = [0u8; 32];
    let (mut n, mut point) = (0, None);
    for &b in mantissa {
        if b == b'.' {
            point = Some(n);
        } else if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let mut k = point.unwrap_or(n) as i32 + exponent;
    let mut lo = 0;
    while lo < n && digits[lo] == b'0' {
        lo += 1;
        k -= 1;
    }
    let mut hi = n;
    while hi > lo && digits[hi - 1] == b'0' {
        hi -= 1;
    }
    // When v lies exactly halfway between two shortest candidates, ryu takes the even one and
    // Display the one above: 5.97265625 is "5.9726562" for ryu and "5.9726563" for Display.
    if lo < hi && hi - lo <= 18 {
        let int = digits[lo..hi]
            .iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        let e = k - (hi - lo) as i32;
        if halfway_above(v, int, e) {
            let mut up = int + 1;
            let mut e = e;
            while up % 10 == 0 {
                up /= 10;
                e += 1;
            }
            let mut len = 0;
            let mut rest = up;
            while rest > 0 {
                len += 1;
                rest /= 10;
            }
            let mut rest = up;
            for i in (0..len).rev() {
                digits[i] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            lo = 0;
            hi = len;
            k = len as i32 + e;
        }
    }
    if negative {
        out.push(b'-');
    }
    let d = &digits[lo..hi];
    let zeros = |out: &mut Vec<u8>, count: i32| out.extend((0..count).map(|_| b'0'));
    if d.is_empty() {
        out.push(b'0');
    } else if k <= 0 {
        out.extend_from_slice(b"0.");
        zeros(out, -k);
        out.extend_from_slice(d);
    } else if k as usize >= d.len() {
        out.extend_from_slice(d);
        zeros(out, k - d.len() as i32);
    } else {
        out.extend_from_slice(&d[..k as usize]);
        out.push(b'.');
        out.extend_from_slice(&d[k as usize..]);
    }
}

/// `|v| = m x 2^q` with `m` odd (`m = 0` for zero).
fn odd_mantissa(v: f32) -> (u32, i32) {
    let bits = v.to_bits();
    let (exp, frac) = ((bits >> 23) & 0xff, bits & 0x7f_ffff);
    let (m, q) = if exp == 0 {
        (frac, -149)
    } else {
        (frac | 1 << 23, exp as i32 - 150)
    };
    if m == 0 {
        return (0, 0);
    }
    (m >> m.trailing_zeros(), q + m.trailing_zeros() as i32)
}

/// Whether `|v|` may be `(int + 1/2) x 10^e` for some integer `int` (see [`halfway_above`]).
fn maybe_halfway(v: f32, e: i32) -> bool {
    let (m, q) = odd_mantissa(v);
    m != 0 && q + 1 == e
}

/// Whether `|v|` is exactly `(int + 1/2) x 10^e`.
fn halfway_above(v: f32, int: u64, e: i32) -> bool {
    let (m, q) = odd_mantissa(v);
    if m == 0 {
        return false;
    }
    let m = u128::from(m);
    // 2|v| = (2 int + 1) x 10^e, with 2 int + 1 odd: the powers of 2 and the odd parts match.
    if q + 1 != e {
        return false;
    }
    let odd = 2 * u128::from(int) + 1;
    let five = |p: i32| 5u128.checked_pow(p as u32);
    if e >= 0 {
        five(e).and_then(|f| odd.checked_mul(f)) == Some(m)
    } else {
        five(-e).and_then(|f| m.checked_mul(f)) == Some(odd)
    }
}

/// Append `text` with its control characters (line breaks, NUL, terminal escapes) escaped as
/// `\n`, `\u{1b}`..., so that a value from the input cannot start a line of its own.
pub fn write_escaped(out: &mut Vec<u8>, text: &str) {
    if !text.chars().any(char::is_control) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(Bytes(out), "{}", c.escape_default());
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// `text` with its control characters escaped (see [`write_escaped`]).
pub fn escaped(text: &str) -> String {
    let mut out = Vec::new();
    write_escaped(&mut out, text);
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// `, ` or ` and ` before item `k` of `n`, as [`join`] puts them.
/// "raise income from 1.20 to 2.85 and savings from 0.40 to 3.10": a verb is said once for a
/// run of actions sharing it.
fn write_actions(bundle: &Bundle<'_>, style: &Style, actions: &[Change], out: &mut Vec<u8>) {
    let mut previous = "";
    for (k, c) in actions.iter().enumerate() {
        separator(out, k, actions.len());
        let verb = action_verb(bundle, c);
        if verb != previous {
            out.extend_from_slice(verb.as_bytes());
            out.push(b' ');
        }
        previous = verb;
        out.extend_from_slice(style.names[c.feature].as_bytes());
        style.write_move(out, c);
    }
}

fn separator(out: &mut Vec<u8>, k: usize, n: usize) {
    if k == 0 {
        return;
    }
    out.extend_from_slice(if k + 1 == n { b" and " } else { b", " });
}

/// `fmt::Write` appending to a byte buffer.
pub struct Bytes<'a>(pub &'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// How one feature's values are written.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    /// 0 or 1, no decimals (sign kept).
    Binary,
    /// A categorical feature: the level's name (the code if it names none).
    Level(Vec<String>),
    /// This many decimals (0 to 6).
    Fixed(usize),
    /// A spread too small for 6 decimals (e.g. a feature on a scale of 1e-9): exponent notation
    /// with enough significant digits that the last one is this power of ten.
    Exp(i32),
}

/// How each feature's values are shown, computed once per model: a value has as many decimals
/// as a hundredth of the feature's spread needs (in exponent notation when that is more than 6
/// decimals); the spread also scales the consequence tolerance.
#[derive(Debug, Clone)]
pub struct Style {
    /// How each feature is written.
    shown: Vec<Shown>,
    /// Standard deviation of each feature (1 when the model has no scaler).
    std: Vec<f32>,
    /// Feature names.
    names: Vec<String>,
}

impl Style {
    /// The style of `bundle`'s features.
    pub fn new(bundle: &Bundle<'_>) -> Style {
        let d = bundle.n_features();
        Style {
            shown: (0..d)
                .map(|i| {
                    match bundle.kind(i) {
                        Kind::Binary => return Shown::Binary,
                        Kind::Categorical { levels } => {
                            return Shown::Level(
                                (0..levels)
                                    .map(|l| escaped(bundle.level_name(i, l).unwrap_or_default()))
                                    .collect(),
                            );
                        }
                        // As many decimals as the step has (none for whole steps).
                        Kind::Integer { step } => {
                            let decimals = (0..=6)
                                .find(|&n| {
                                    let scaled = f64::from(step) * 10f64.powi(n);
                                    (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
                                })
                                .unwrap_or(6);
                            return Shown::Fixed(decimals as usize);
                        }
                        Kind::Continuous => {}
                    }
                    let std = bundle.std(i).unwrap_or(1.0).max(f32::MIN_POSITIVE);
                    let last = std.log10().round() as i32 - DIGITS_PER_STD;
                    if last >= -6 {
                        Shown::Fixed((-last).max(0) as usize)
                    } else {
                        Shown::Exp(last)
                    }
                })
                .collect(),
            std: (0..d).map(|i| bundle.std(i).unwrap_or(1.0)).collect(),
            names: model::names(bundle).iter().map(|n| escaped(n)).collect(),
        }
    }

    /// Feature `i`'s value `v` as shown, in a buffer on the stack.
    fn shown(&self, i: usize, v: f32) -> Small {
        let mut s = Small::default();
        match &self.shown[i] {
            Shown::Binary => write_fixed(&mut s, v, 0),
            Shown::Level(names) => match names.get(v as usize).filter(|_| v >= 0.0) {
                Some(name) => s.put(name.as_bytes()),
                None => write_fixed(&mut s, v, 0),
            },
            &Shown::Fixed(decimals) => {
                write_fixed(&mut s, v, decimals);
                // -0.003 shown with one decimal is "-0.0": say 0.0.
                if let [b'-', rest @ ..] = s.as_bytes()
                    && rest.iter().all(|&b| b == b'0' || b == b'.')
                {
                    s.buf.copy_within(1..s.len, 0);
                    s.len -= 1;
                }
            }
            &Shown::Exp(last) => {
                // Digits after the point: from v's leading power of ten down to `last`, at
                // most the 8 an f32 holds.
                let lead = if v == 0.0 || !v.is_finite() {
                    last
                } else {
                    v.abs().log10().floor() as i32
                };
                let precision = (lead - last).clamp(1, 8) as usize;
                let mut text = String::new();
                let _ = write!(text, "{v:.precision$e}");
                s.put(text.as_bytes());
            }
        }
        s
    }

    /// Append ` from <from> to <to>`.
    fn write_move(&self, out: &mut Vec<u8>, c: &Change) {
        if let Shown::Level(names) = &self.shown[c.feature] {
            // Names of any length (the stack buffer holds 64 bytes).
            let name = |v: f32| names.get(v as usize).filter(|_| v >= 0.0);
            if let (Some(from), Some(to)) = (name(c.from), name(c.to)) {
                for part in [" from ", from, " to ", to] {
                    out.extend_from_slice(part.as_bytes());
                }
                return;
            }
        }
        let (from, to) = (self.shown(c.feature, c.from), self.shown(c.feature, c.to));
        if from.as_bytes() == to.as_bytes() && c.from != c.to {
            // A change smaller than the feature's usual precision (refinement can shrink a
            // change that far): the shortest exponent forms, which differ for different f32s.
            let _ = write!(Bytes(out), " from {:e} to {:e}", c.from, c.to);
            return;
        }
        out.extend_from_slice(b" from ");
        out.extend_from_slice(from.as_bytes());
        out.extend_from_slice(b" to ");
        out.extend_from_slice(to.as_bytes());
    }
}

/// Where the number formatters append bytes.
pub trait Put {
    /// Append `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Put for Small {
    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }
}

/// Append `n` in decimal, as `format!("{n}")`.
pub fn write_uint(out: &mut impl Put, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put(&buf[i..]);
}

/// Append `v` with `decimals` decimals exactly as `format!("{v:.decimals$}")` does (the exact
/// value of `v` rounded half to even; the sign of a negative value, zero included, is kept),
/// without `fmt`'s general algorithm: with at most 6 decimals, `|v| x 10^decimals` is exact in
/// `f64` (24 + 20 significant bits), so rounding it to an integer rounds the exact value.
pub fn write_fixed(out: &mut impl Put, v: f32, decimals: usize) {
    const POW10: [u64; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let scaled = POW10
        .get(decimals)
        .map(|&p| f64::from(v).abs() * p as f64)
        .filter(|s| v.is_finite() && *s < 1e17);
    let Some(scaled) = scaled else {
        let mut s = String::new();
        let _ = write!(s, "{v:.decimals$}");
        out.put(s.as_bytes());
        return;
    };
    let n = scaled.round_ties_even() as u64;
    if v.is_sign_negative() {
        out.put(b"-");
    }
    let p = POW10[decimals];
    write_uint(out, n / p);
    if decimals > 0 {
        let mut frac = [b'0'; 7];
        frac[0] = b'.';
        let mut f = n % p;
        for k in (1..=decimals).rev() {
            frac[k] = b'0' + (f % 10) as u8;
            f /= 10;
        }
        out.put(&frac[..=decimals]);
    }
}

/// A short text on the stack: an `f32` with at most 6 decimals takes at most 47 bytes.
#[derive(Clone, Copy)]
pub struct Small {
    buf: [u8; 64],
    len: usize,
}

impl Default for Small {
    fn default() -> Self {
        Small {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Small {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl PartialEq for Small {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// The JSON form of one person (a struct, so the keys keep this order).
#[derive(serde::Serialize)]
struct Person<'s, 'n> {
    row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'s str>,
    status: &'static str,
    already_accepted: bool,
    accepted: bool,
    prob_before: f64,
    prob_after: f64,
    cost: f64,
    /// The networks' own proposal's cost, before refinement.
    cost_unrefined: f64,
    actions: Vec<ChangeJson<'n>>,
    consequences: Vec<ChangeJson<'n>>,
    recommended: Profile<'n>,
    warning: Option<String>,
    /// Features a bound or a direction held back.
    bound_by_limit: Vec<String>,
    /// The maximum number of changes left some out.
    max_changes_bound: bool,
    /// Which limits bound, in words.
    limit_reason: Option<String>,
    /// Input features outside the model's bounds.
    out_of_range: Vec<String>,
    /// Further recommendations (`--alternatives`), by cost.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alternatives: Vec<AlternativeJson<'n>>,
}

#[derive(serde::Serialize)]
struct AlternativeJson<'n> {
    actions: Vec<ChangeJson<'n>>,
    prob_after: f64,
    cost: f64,
}

#[derive(serde::Serialize)]
struct ChangeJson<'n> {
    feature: &'n str,
    from: f64,
    to: f64,
    /// A categorical feature's level names for `from` and `to` (the codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    from_level: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_level: Option<&'n str>,
}

/// The name of the level coded `v` of feature `i`, if it is categorical.
fn level<'n>(bundle: &Bundle<'n>, i: usize, v: f32) -> Option<&'n str> {
    (v >= 0.0)
        .then(|| bundle.level_name(i, v as usize))
        .flatten()
}

/// Feature name -> value, as a JSON object in feature order.
struct Profile<'n>(Vec<(&'n str, f64)>);

impl serde::Serialize for Profile<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// An `f32` as the shortest decimal that reads back to it (so JSON shows 0.31, not
/// 0.3100000023841858).
fn short(v: f32) -> f64 {
    // `write_f32` writes what `Display` does (tested), about three times faster, into one
    // buffer per thread instead of a new `String` per value (a person has some 25 values).
    thread_local!(static DIGITS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
    DIGITS.with_borrow_mut(|digits| {
        digits.clear();
        write_f32(digits, v);
        std::str::from_utf8(digits)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(f64::from(v))
    })
}

/// The verb of an action: `change` (binary), `raise` or `lower`.
fn action_verb(bundle: &Bundle<'_>, c: &Change) -> &'static str {
    if bundle.is_binary(c.feature) || bundle.categorical().contains(c.feature) {
        "change"
    } else if c.to >= c.from {
        "raise"
    } else {
        "lower"
    }
}

fn set_names(bundle: &Bundle<'_>, set: FeatureSet) -> Vec<String> {
    set.iter()
        .map(|i| model::name(bundle, i).to_owned())
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
pub fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_and_ours(v: f32) -> (String, String) {
        let mut out = Vec::new();
        write_f32(&mut out, v);
        (format!("{v}"), String::from_utf8(out).unwrap())
    }

    #[test]
    fn f32_display_matches_std() {
        let special = [
            0.0f32,
            -0.0,
            1.0,
            -1.5,
            0.1,
            0.3,
            1e-7,
            1.5e-7,
            1e20,
            123456790.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-45,
            f32::EPSILON,
            0.5,
            16777216.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for v in special {
            let (a, b) = std_and_ours(v);
            assert_eq!(a, b, "{v:e}");
        }
        // Every 997th bit pattern: all exponents, many mantissas.
        for bits in (0..=u32::MAX).step_by(997) {
            let v = f32::from_bits(bits);
            let (a, b) = std_and_ours(v);
            assert_eq!(a, b, "bits {bits:#x}");
        }
    }

    /// Every finite positive `f32` (the sign is only a prefix in both):
    /// `cargo test --release -p carma-cli --bin carma -- --ignored f32_display` (minutes).
    #[test]
    #[ignore]
    fn f32_display_matches_std_for_every_f32() {
        let mut ours = Vec::new();
        let mut std = String::new();
        for bits in 0..0x7f80_0000u32 {
            let v = f32::from_bits(bits);
            ours.clear();
            std.clear();
            write_f32(&mut ours, v);
            let _ = write!(std, "{v}");
            assert_eq!(std.as_bytes(), ours.as_slice(), "bits {bits:#x}");
        }
    }

    #[test]
    fn fixed_decimals_match_std() {
        let check = |v: f32| {
            for decimals in 0..=7 {
                let mut out = Vec::new();
                write_fixed(&mut out, v, decimals);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("{v:.decimals$}"),
                    "{v:e} {decimals}"
                );
            }
        };
        // Exact ties (round half to even), signs, zeros, the f64 limit, non-finite values.
        for v in [
            0.25f32,
            0.125,
            0.375,
            0.5,
            1.5,
            2.5,
            0.0625,
            0.1875,
            -0.125,
            -0.0,
            0.0,
            -0.001,
            0.005,
            0.995,
            1e10,
            1e11,
            1e17,
            3e38,
            1e-45,
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
        ] {
            check(v);
        }
        for bits in (0..=u32::MAX).step_by(4999) {
            check(f32::from_bits(bits));
        }
        // Every value at 2^-7 steps: each is a tie for some number of decimals.
        for k in -3000..3000 {
            check(k as f32 / 128.0);
        }
        let mut out = Vec::new();
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            out.clear();
            write_uint(&mut out, n);
            assert_eq!(String::from_utf8(out.clone()).unwrap(), n.to_string());
        }
    }

    #[test]
    fn csv_lines_match_the_csv_writer() {
        // Fields that need quotes, and ones that do not.
        for field in [
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "cr\r",
            "",
            " spaced ",
        ] {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(["1", field, "x"]).unwrap();
            let expected = w.into_inner().unwrap();
            let mut out = b"1".to_vec();
            csv_field(&mut out, |o| o.extend_from_slice(field.as_bytes()));
            csv_field(&mut out, |o| o.push(b'x'));
            out.push(b'\n');
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn join_reads_as_a_sentence() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(join(&s(&[])), "");
        assert_eq!(join(&s(&["a"])), "a");
        assert_eq!(join(&s(&["a", "b"])), "a and b");
        assert_eq!(join(&s(&["a", "b", "c"])), "a, b and c");
    }

    #[test]
    fn negative_zero_is_shown_as_zero() {
        assert_eq!(format!("{:.1}", -0.003f32), "-0.0");
        let neg = "-0.0".strip_prefix('-').unwrap();
        assert!(neg.bytes().all(|b| b == b'0' || b == b'.'));
    }

    #[test]
    fn short_prints_the_f32_not_its_f64_widening() {
        assert_eq!(short(0.31).to_string(), "0.31");
        assert_eq!(short(-2.5), -2.5);
    }

    #[test]
    fn short_is_the_f64_of_the_display_text() {
        for bits in (0..=u32::MAX).step_by(997) {
            let v = f32::from_bits(bits);
            if v.is_finite() {
                let want: f64 = v.to_string().parse().unwrap();
                assert_eq!(short(v).to_bits(), want.to_bits(), "bits {bits:#x}");
            }
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = Vec::new();
        write_escaped(&mut out, "p1\nPerson 2: accepted\u{1b}[2J\0");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "p1\\nPerson 2: accepted\\u{1b}[2J\\u{0}"
        );
        let mut out = Vec::new();
        write_escaped(&mut out, "plain é");
        assert_eq!(out, "plain é".as_bytes());
    }

    #[test]
    fn compact_floats_use_an_exponent_for_tiny_and_huge_values() {
        let text = |v: f32| {
            let mut out = Vec::new();
            write_compact(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(5.562752e-35), "5.562752e-35");
        assert_eq!(text(0.25), "0.25");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(1e20), "1e20");
        assert_eq!(text(-3.5e-7), "-3.5e-7");
        for v in [5.562752e-35f32, 1e20, -3.5e-7, 123.456] {
            assert_eq!(text(v).parse::<f32>().unwrap(), v);
        }
    }
}
