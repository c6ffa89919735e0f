//! One person's recommendation in words, JSON or a CSV row: what to change (current and
//! recommended values in original units), what changes as a consequence, and the probability of
//! acceptance before and after.

use std::fmt::Write as _;

use carma_core::{Bundle, FeatureSet, Recommendation};

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
        let mut actions = Vec::new();
        let mut consequences = Vec::new();
        for (i, (&from, &to)) in x.iter().zip(x_cf).enumerate() {
            let change = Change {
                feature: i,
                from,
                to,
            };
            let std = bundle.std(i).unwrap_or(1.0);
            if rec.mask.contains(i) {
                actions.push(change);
            } else if (to - from).abs() > CONSEQUENCE_TOL * std
                && value(bundle, i, from) != value(bundle, i, to)
            {
                consequences.push(change);
            }
        }
        Explanation {
            row,
            id: None,
            rec,
            actions,
            consequences,
            x_cf: x_cf.to_vec(),
            forbidden_left_none: None,
        }
    }

    /// `already accepted`, `accepted after the recommendation`, or `not accepted`.
    pub fn status(&self) -> &'static str {
        if self.rec.already_accepted {
            "already accepted"
        } else if self.rec.accepted {
            "accepted after the recommendation"
        } else {
            "not accepted"
        }
    }

    /// Plain language, one paragraph (ending in a newline).
    pub fn text(&self, bundle: &Bundle<'_>) -> String {
        let r = &self.rec;
        let mut s = match &self.id {
            Some(id) => format!("Person {id}: "),
            None => format!("Person {}: ", self.row),
        };
        if r.already_accepted {
            let _ = writeln!(
                s,
                "already accepted (p = {:.2}). Nothing to change.",
                r.prob_before
            );
            return s;
        }
        let _ = write!(s, "rejected (p = {:.2}). ", r.prob_before);
        if self.actions.is_empty() {
            s.push_str("No recommendation: no feature that may be changed would help.");
        } else {
            // "raise income from 1.20 to 2.85 and savings from 0.40 to 3.10": a verb is said
            // once for a run of actions sharing it.
            let mut previous = "";
            let actions: Vec<String> = self
                .actions
                .iter()
                .map(|c| {
                    let (verb, rest) = action_words(bundle, c);
                    let said = if verb == previous {
                        rest
                    } else {
                        format!("{verb} {rest}")
                    };
                    previous = verb;
                    said
                })
                .collect();
            let _ = write!(s, "Recommended: {}", join(&actions));
            if !self.consequences.is_empty() {
                let cons: Vec<String> = self
                    .consequences
                    .iter()
                    .map(|c| consequence_words(bundle, c))
                    .collect();
                let _ = write!(s, "; as a consequence {}", join(&cons));
            }
            if r.accepted {
                let _ = write!(s, ". Then accepted (p = {:.2}).", r.prob_after);
            } else {
                let _ = write!(
                    s,
                    ". Even then still rejected (p = {:.2}): the best the model found.",
                    r.prob_after
                );
            }
        }
        s.push('\n');
        if let Some(w) = self.warning(bundle) {
            let _ = writeln!(s, "  Warning: {w}");
        }
        s
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
        }
    }

    /// The CSV header matching [`Explanation::csv_record`]; `id` names the identifier column,
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
                "actions",
                "consequences",
            ]
            .map(String::from),
        );
        for i in 0..bundle.n_features() {
            h.push(format!("{}_recommended", model::name(bundle, i)));
        }
        h.push("warning".into());
        h
    }

    /// One CSV record: the summary, then the recommended value of every feature.
    pub fn csv_record(&self, bundle: &Bundle<'_>) -> Vec<String> {
        let names = |v: &[Change]| {
            v.iter()
                .map(|c| model::name(bundle, c.feature))
                .collect::<Vec<_>>()
                .join(";")
        };
        let mut r = vec![self.row.to_string()];
        r.extend(self.id.clone());
        r.extend([
            self.status().to_owned(),
            self.rec.prob_before.to_string(),
            self.rec.prob_after.to_string(),
            self.rec.cost.to_string(),
            names(&self.actions),
            names(&self.consequences),
        ]);
        r.extend(self.x_cf.iter().map(f32::to_string));
        r.push(self.warning(bundle).unwrap_or_default());
        r
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
    actions: Vec<ChangeJson<'n>>,
    consequences: Vec<ChangeJson<'n>>,
    recommended: Profile<'n>,
    warning: Option<String>,
}

#[derive(serde::Serialize)]
struct ChangeJson<'n> {
    feature: &'n str,
    from: f64,
    to: f64,
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
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// A value with as many decimals as a hundredth of the feature's spread needs.
pub fn value(bundle: &Bundle<'_>, i: usize, v: f32) -> String {
    if bundle.is_binary(i) {
        return format!("{v:.0}");
    }
    let std = bundle.std(i).unwrap_or(1.0).max(f32::MIN_POSITIVE);
    let decimals = (DIGITS_PER_STD - std.log10().round() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    // -0.003 shown with one decimal is "-0.0": say 0.0.
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => s,
    }
}

/// The verb and the rest: (`raise`, `income from 1.20 to 2.85`).
fn action_words(bundle: &Bundle<'_>, c: &Change) -> (&'static str, String) {
    let verb = if bundle.is_binary(c.feature) {
        "change"
    } else if c.to >= c.from {
        "raise"
    } else {
        "lower"
    };
    let rest = format!(
        "{} from {} to {}",
        model::name(bundle, c.feature),
        value(bundle, c.feature, c.from),
        value(bundle, c.feature, c.to)
    );
    (verb, rest)
}

fn consequence_words(bundle: &Bundle<'_>, c: &Change) -> String {
    let verb = if c.to >= c.from { "rises" } else { "falls" };
    format!(
        "{} {verb} from {} to {}",
        model::name(bundle, c.feature),
        value(bundle, c.feature, c.from),
        value(bundle, c.feature, c.to)
    )
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
}
