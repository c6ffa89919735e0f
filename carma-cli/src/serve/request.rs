//! `POST /v1/recommend`'s body, read against the served model: every refusal names the field.
//!
//! Numbers are read from their JSON text as `carma recommend` reads CSV cells (a feature's value
//! as `f64`, then `f32`; a limit as `f32`), so the same person gets the same bits either way.

use std::fmt;

use carma_core::{FeatureSet, Refine};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::{ApiError, Code};
use super::model::{Key, Model};
use crate::cmd::recommend::{RunLimits, refinement};
use crate::recourse::{DIRECTION_ANY, DIRECTION_DECREASE, DIRECTION_INCREASE, MAX_ROW_CHANGES};
use crate::rows::RowLimit;

/// The longest request or person `id` accepted, in bytes of its JSON text.
pub const MAX_ID_BYTES: usize = 256;
/// The most alternatives a request may ask for (as `carma recommend --alternatives`).
pub const MAX_ALTERNATIVES: u64 = 16;

/// Objects with at most this many keys are checked for repeated keys pairwise.
const SMALL_OBJECT: usize = 16;

/// A request, checked against the model.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The request's `id` as its JSON text (echoed as is) and as text (for the log).
    pub id: Option<(String, String)>,
    /// `people` (an array in the answer) rather than `person`.
    pub batch: bool,
    /// People, `D` values each, the model's feature order, original units.
    pub xs: Vec<f32>,
    /// Each person's `id`.
    pub ids: Vec<Option<String>>,
    /// Each person's own limits, person after person; `override_ends[k]` ends person `k`'s.
    pub overrides: Vec<(RowLimit, f32)>,
    /// See `overrides`.
    pub override_ends: Vec<usize>,
    /// Features not acted on directly.
    pub forbid: FeatureSet,
    /// Refinement (`refine`, `min_prob`).
    pub refine: Option<Refine>,
    /// The request's limits for every person.
    pub limits: RunLimits,
    /// Further recommendations per person.
    pub alternatives: usize,
    /// Notes for the caller (a forbidden feature that is not actionable anyway).
    pub warnings: Vec<String>,
}

impl Parsed {
    /// Number of people.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The request id alone, for an error answer to a body that fails later checks.
pub fn request_id(body: &[u8]) -> Option<(String, String)> {
    let fields: Fields<'_> = serde_json::from_slice(body).ok()?;
    let (_, raw) = fields.0.iter().find(|(k, _)| k == "id")?;
    id_value(raw, "id").ok().flatten()
}

/// Read `body` for `model`, with at most `max_batch` people.
pub fn parse(model: &Model, body: &[u8], max_batch: usize) -> Result<Parsed, ApiError> {
    let fields: Fields<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(
            Code::WrongType,
            "the body must be a JSON object (see docs/SERVING.md)",
        ),
        _ => ApiError::new(
            Code::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        ),
    })?;
    fields.check_unique(&String::new)?;
    let bundle = model.bundle();
    let d = bundle.n_features();
    let mut p = Parsed {
        limits: RunLimits::unlimited(d),
        refine: refinement(false, carma_core::recommend::DEFAULT_MIN_PROB),
        ..Parsed::default()
    };
    let (mut refine, mut min_prob) = (true, carma_core::recommend::DEFAULT_MIN_PROB);
    let mut person = None;
    let mut people = None;
    for (key, raw) in &fields.0 {
        let raw: &RawValue = raw;
        if kind(raw) == Kind::Null {
            continue; // null: the field's default
        }
        let key = key.as_str();
        match key {
            "id" => p.id = id_value(raw, key)?,
            "person" => person = Some(raw),
            "people" => {
                people = Some(array(raw, key)?);
            }
            "forbid" => {
                for (k, i) in feature_list(model, raw, key)? {
                    if !bundle.is_actionable(i) {
                        p.warnings.push(format!(
                            "forbid[{k}]: '{}' is not actionable in the model anyway, so \
                             forbidding it changes nothing",
                            model.names[i]
                        ));
                    }
                    p.forbid.insert(i);
                }
            }
            "refine" => refine = boolean(raw, key)?,
            "min_prob" => {
                min_prob = number::<f32>(raw, key)?;
                if !(0.5..=1.0).contains(&min_prob) {
                    return Err(ApiError::at(
                        Code::InvalidValue,
                        key,
                        format!("expected a probability between 0.5 and 1, found {min_prob}"),
                    ));
                }
            }
            "max_changes" => {
                p.limits.max_changes = Some(whole(raw, key, u64::from(u8::MAX))? as u8);
            }
            "alternatives" => p.alternatives = whole(raw, key, MAX_ALTERNATIVES)? as usize,
            "min" | "max" => {
                let bounds: Fields<'_> = object(raw, key)?;
                bounds.check_unique(&|| key.to_owned())?;
                for (name, v) in &bounds.0 {
                    let field = format!("{key}.{name}");
                    let i = feature_index(model, name, &field)?;
                    let v = finite_f32(v, &field)?;
                    if key == "min" {
                        p.limits.min[i] = v;
                    } else {
                        p.limits.max[i] = v;
                    }
                }
            }
            "increase_only" => {
                p.limits.increase = feature_list(model, raw, key)?.map(|(_, i)| i).collect()
            }
            "decrease_only" => {
                p.limits.decrease = feature_list(model, raw, key)?.map(|(_, i)| i).collect()
            }
            _ => {
                return Err(ApiError::at(
                    Code::UnknownField,
                    key,
                    format!(
                        "unknown field '{}' (a request has: id, person or people, forbid, \
                         refine, min_prob, max_changes, min, max, increase_only, decrease_only, \
                         alternatives)",
                        crate::explain::escaped(key)
                    ),
                ));
            }
        }
    }
    p.refine = refinement(!refine, min_prob);
    if let Some(i) = p
        .limits
        .increase
        .intersection(p.limits.decrease)
        .iter()
        .next()
    {
        return Err(ApiError::at(
            Code::InvalidValue,
            "increase_only",
            format!(
                "'{}' is both in increase_only and decrease_only (forbid it instead)",
                model.names[i]
            ),
        ));
    }
    if let Some(i) = (0..d).find(|&i| p.limits.min[i] > p.limits.max[i]) {
        return Err(ApiError::at(
            Code::InvalidValue,
            format!("min.{}", model.names[i]),
            format!(
                "the minimum of '{}' ({}) is above its maximum ({})",
                model.names[i], p.limits.min[i], p.limits.max[i]
            ),
        ));
    }
    match (person, people) {
        (Some(raw), None) => {
            p.xs.reserve(d);
            read_person(model, raw, None, &mut p)?;
        }
        (None, Some(list)) => {
            if list.len() > max_batch {
                return Err(ApiError::at(
                    Code::BatchTooLarge,
                    "people",
                    format!(
                        "{} people in one request, over the limit of {max_batch} (--max-batch)",
                        list.len()
                    ),
                ));
            }
            p.batch = true;
            p.xs.reserve(list.len() * d);
            for (k, raw) in list.iter().enumerate() {
                read_person(model, raw, Some(k), &mut p)?;
            }
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                Code::MissingPeople,
                "give either 'person' (one) or 'people' (a batch), not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::new(
                Code::MissingPeople,
                "no 'person' (one person) or 'people' (a batch) in the request",
            ));
        }
    }
    Ok(p)
}

/// One person: an object keyed by feature name (with optional `id` and limits, as the columns
/// of `carma recommend`'s CSV), or an array of `D` numbers in the model's feature order.
fn read_person(
    model: &Model,
    raw: &RawValue,
    k: Option<usize>,
    p: &mut Parsed,
) -> Result<(), ApiError> {
    // The person's path (`person`, `people[3]`), written out only for an error.
    let field = || match k {
        Some(k) => format!("people[{k}]"),
        None => "person".to_owned(),
    };
    let bundle = model.bundle();
    let d = bundle.n_features();
    let start = p.xs.len();
    let mut id = None;
    match kind(raw) {
        Kind::Array => {
            let values: Vec<&RawValue> = serde_json::from_str(raw.get())
                .map_err(|_| wrong_type(&field(), "an array", Kind::Array))?;
            if values.len() != d {
                return Err(ApiError::at(
                    Code::WrongLength,
                    field(),
                    format!(
                        "expected {d} values (the model's features in order: {}), found {}",
                        model.names.join(", "),
                        values.len()
                    ),
                ));
            }
            for (i, v) in values.iter().enumerate() {
                let x = feature_value(model, i, v, || format!("{}[{i}]", field()))?;
                p.xs.push(x);
            }
        }
        Kind::Object => {
            let fields: Fields<'_> = serde_json::from_str(raw.get())
                .map_err(|_| wrong_type(&field(), "an object", Kind::Object))?;
            fields.check_unique(&field)?;
            p.xs.resize(start + d, f32::NAN);
            let mut seen = FeatureSet::EMPTY;
            for (key, v) in &fields.0 {
                let at = || format!("{}.{key}", field());
                match model.keys.get(key.as_str()) {
                    Some(&Key::Feature(i)) => {
                        p.xs[start + i] = feature_value(model, i, v, at)?;
                        seen.insert(i);
                    }
                    Some(&Key::Id) => {
                        id = id_value(v, &at())?.map(|(_, text)| text);
                    }
                    Some(&Key::Limit(what)) => {
                        if kind(v) != Kind::Null {
                            p.overrides.push((what, limit_value(what, v, &at())?));
                        }
                    }
                    None => {
                        return Err(ApiError::at(
                            Code::UnknownFeature,
                            at(),
                            format!(
                                "unknown feature '{}' (the model's features are: {}; a person \
                                 may also have id, max_changes and <feature>_min, _max, \
                                 _direction)",
                                crate::explain::escaped(key),
                                model.names.join(", ")
                            ),
                        ));
                    }
                }
            }
            let missing: Vec<&str> = (0..d)
                .filter(|&i| !seen.contains(i))
                .map(|i| model.names[i].as_str())
                .collect();
            if let Some(first) = missing.first() {
                return Err(ApiError::at(
                    Code::MissingFeature,
                    format!("{}.{first}", field()),
                    format!("missing feature(s): {}", missing.join(", ")),
                ));
            }
        }
        k => {
            return Err(wrong_type(
                &field(),
                "an object keyed by feature name or an array of numbers",
                k,
            ));
        }
    }
    p.ids.push(id);
    p.override_ends.push(p.overrides.len());
    Ok(())
}

/// Feature `i`'s value: a number, read as a CSV cell is (`f64`, then `f32`), finite, and 0 or 1
/// for a binary feature.
fn feature_value(
    model: &Model,
    i: usize,
    raw: &RawValue,
    field: impl Fn() -> String,
) -> Result<f32, ApiError> {
    let k = kind(raw);
    if k != Kind::Number {
        return Err(wrong_type(&field(), "a number", k));
    }
    let v: f64 = raw.get().trim().parse().map_err(|_| {
        ApiError::at(
            Code::InvalidValue,
            field(),
            format!("cannot read the number {}", raw.get()),
        )
    })?;
    let x = v as f32;
    if !x.is_finite() {
        return Err(ApiError::at(
            Code::NotFinite,
            field(),
            format!("{} does not fit a 32-bit float", raw.get()),
        ));
    }
    if model.bundle().is_binary(i) && v != 0.0 && v != 1.0 {
        return Err(ApiError::at(
            Code::NotBinary,
            field(),
            format!(
                "'{}' is binary: expected 0 or 1, found {}",
                model.names[i],
                raw.get()
            ),
        ));
    }
    Ok(x)
}

/// A per-person limit's value: a direction code, or a finite number.
fn limit_value(what: RowLimit, raw: &RawValue, field: &str) -> Result<f32, ApiError> {
    match what {
        RowLimit::Direction(_) => {
            let s: String = typed(raw, field, "a string")?;
            match s.as_str() {
                "any" => Ok(DIRECTION_ANY),
                "increase" => Ok(DIRECTION_INCREASE),
                "decrease" => Ok(DIRECTION_DECREASE),
                _ => Err(ApiError::at(
                    Code::InvalidValue,
                    field,
                    format!(
                        "expected increase, decrease or any, found '{}'",
                        crate::explain::escaped(&s)
                    ),
                )),
            }
        }
        RowLimit::MaxChanges => Ok(whole(raw, field, MAX_ROW_CHANGES as u64)? as f32),
        RowLimit::Min(_) | RowLimit::Max(_) => finite_f32(raw, field),
    }
}

/// `forbid`, `increase_only`, `decrease_only`: an array of feature names, each with its position.
fn feature_list<'m>(
    model: &'m Model,
    raw: &RawValue,
    field: &str,
) -> Result<impl Iterator<Item = (usize, usize)> + 'm, ApiError> {
    let names: Vec<&RawValue> = array(raw, field)?;
    let mut out = Vec::with_capacity(names.len());
    for (k, v) in names.iter().enumerate() {
        let at = format!("{field}[{k}]");
        let name: String = typed(v, &at, "a feature name (a string)")?;
        out.push((k, feature_index(model, name.trim(), &at)?));
    }
    Ok(out.into_iter())
}

fn feature_index(model: &Model, name: &str, field: &str) -> Result<usize, ApiError> {
    model.names.iter().position(|n| n == name).ok_or_else(|| {
        ApiError::at(
            Code::UnknownFeature,
            field,
            format!(
                "unknown feature '{}' (the model's features are: {})",
                crate::explain::escaped(name),
                model.names.join(", ")
            ),
        )
    })
}

/// An `id`: a string or a number, at most [`MAX_ID_BYTES`]; its JSON text and its text.
fn id_value(raw: &RawValue, field: &str) -> Result<Option<(String, String)>, ApiError> {
    let text = raw.get().trim();
    if text.len() > MAX_ID_BYTES {
        return Err(ApiError::at(
            Code::InvalidValue,
            field,
            format!("an id is at most {MAX_ID_BYTES} bytes"),
        ));
    }
    match kind(raw) {
        Kind::Null => Ok(None),
        Kind::String => {
            let s: String = typed(raw, field, "a string or a number")?;
            Ok(Some((text.to_owned(), s)))
        }
        Kind::Number => Ok(Some((text.to_owned(), text.to_owned()))),
        k => Err(wrong_type(field, "a string or a number", k)),
    }
}

fn boolean(raw: &RawValue, field: &str) -> Result<bool, ApiError> {
    typed(raw, field, "true or false")
}

/// A whole number from 0 to `max`.
fn whole(raw: &RawValue, field: &str, max: u64) -> Result<u64, ApiError> {
    let v: f64 = number(raw, field)?;
    if v >= 0.0 && v <= max as f64 && v.fract() == 0.0 {
        Ok(v as u64)
    } else {
        Err(ApiError::at(
            Code::InvalidValue,
            field,
            format!(
                "expected a whole number from 0 to {max}, found {}",
                raw.get()
            ),
        ))
    }
}

/// A number that is a finite `f32` (read as a CSV limit cell is).
fn finite_f32(raw: &RawValue, field: &str) -> Result<f32, ApiError> {
    let v: f32 = number(raw, field)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ApiError::at(
            Code::NotFinite,
            field,
            format!("{} does not fit a 32-bit float", raw.get()),
        ))
    }
}

/// A JSON number, parsed from its text.
fn number<T: std::str::FromStr>(raw: &RawValue, field: &str) -> Result<T, ApiError> {
    let k = kind(raw);
    if k != Kind::Number {
        return Err(wrong_type(field, "a number", k));
    }
    raw.get().trim().parse::<T>().map_err(|_| {
        ApiError::at(
            Code::InvalidValue,
            field,
            format!("cannot read the number {}", raw.get()),
        )
    })
}

fn array<'a>(raw: &'a RawValue, field: &str) -> Result<Vec<&'a RawValue>, ApiError> {
    typed(raw, field, "an array")
}

fn object<'a>(raw: &'a RawValue, field: &str) -> Result<Fields<'a>, ApiError> {
    typed(raw, field, "an object")
}

/// `raw` as `T`; a mismatch is a `wrong_type` error naming what was expected and found.
fn typed<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    field: &str,
    expected: &str,
) -> Result<T, ApiError> {
    serde_json::from_str(raw.get()).map_err(|_| wrong_type(field, expected, kind(raw)))
}

fn wrong_type(field: &str, expected: &str, found: Kind) -> ApiError {
    ApiError::at(
        Code::WrongType,
        field,
        format!("expected {expected}, found {found}"),
    )
}

/// A JSON value's type, from its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        })
    }
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

/// A JSON object's entries in order, duplicates kept (so they can be refused), values unread.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl Fields<'_> {
    /// Refuse a key given twice (`prefix` gives the object's own path, only for the error).
    fn check_unique(&self, prefix: &dyn Fn() -> String) -> Result<(), ApiError> {
        // A person's handful of keys are compared pairwise; a large object through a set, so a
        // hostile body cannot make this quadratic.
        let mut seen = std::collections::HashSet::new();
        for (k, (key, _)) in self.0.iter().enumerate() {
            let repeated = if self.0.len() <= SMALL_OBJECT {
                self.0[..k].iter().any(|(other, _)| other == key)
            } else {
                !seen.insert(key.as_str())
            };
            if repeated {
                let prefix = prefix();
                let field = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                return Err(ApiError::at(
                    Code::DuplicateField,
                    field,
                    format!("'{}' is given twice", crate::explain::escaped(key)),
                ));
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Fields(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}
