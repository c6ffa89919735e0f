//! The mutation engine of the hostile-bundle tests (issue 7): where the
//! length fields and numbers of a bundle are, how to corrupt them, and what a
//! decoded bundle must do afterwards.
//!
//! Every mutation is a plain value with a `Debug` form, drawn from a seeded
//! ChaCha8 stream, so a failure names the fixture, the mutation index and the
//! mutation itself, and can be replayed.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use carma_core::error::{Error, FormatError};
use carma_core::format::{
    BundleWire, HEADER_LEN, MAGIC, OLDEST_FORMAT_VERSION, TRAILER_LEN, crc32,
};
use carma_core::{Bundle, FeatureSet};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A bundle to attack, with the positions of its length fields and numbers.
pub struct Fixture {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Length prefixes of the borrowed byte strings: (field, start, varint bytes, value).
    pub varints: Vec<(&'static str, usize, usize, usize)>,
    /// `f32` arrays and scalars: (field, byte range in the file).
    pub floats: Vec<(&'static str, Range<usize>)>,
    /// Single-byte fields: enum tags (activations), `flow.layers`, flag bytes.
    pub tags: Vec<(&'static str, usize)>,
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Postcard's unsigned varint (LEB128) encoding of `v`.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(bytes: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (k, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * k);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl Fixture {
    /// Locates every length prefix, number and tag of a valid bundle.
    pub fn new(name: &str, bytes: Vec<u8>) -> Fixture {
        let wire = BundleWire::decode(&bytes)
            .unwrap_or_else(|e| panic!("fixture {name} does not decode: {e}"));
        let base = bytes.as_ptr() as usize;
        let at = |s: &[u8]| s.as_ptr() as usize - base;
        let mut strings: Vec<(&'static str, &[u8])> = vec![
            ("meta.dataset", wire.meta.dataset.as_bytes()),
            ("meta.trainer", wire.meta.trainer.as_bytes()),
            ("features.names", wire.features.names.as_bytes()),
            ("features.binary", wire.features.binary),
            ("features.actionable", wire.features.actionable),
            ("features.parents", wire.features.parents),
            ("features.order", wire.features.order),
            ("scaler.mean", wire.scaler.mean),
            ("scaler.std", wire.scaler.std),
            ("flow.dims", wire.flow.dims),
            ("flow.params", wire.flow.params),
            ("flow.ready", wire.flow.ready),
            ("classifier.dims", wire.classifier.dims),
            ("classifier.params", wire.classifier.params),
        ];
        let mut floats: Vec<(&'static str, Range<usize>)> = Vec::new();
        let mut tags: Vec<(&'static str, usize)> = Vec::new();
        let span = |s: &[u8]| at(s)..at(s) + s.len();
        for (field, s) in [
            ("scaler.mean", wire.scaler.mean),
            ("scaler.std", wire.scaler.std),
            ("flow.params", wire.flow.params),
            ("classifier.params", wire.classifier.params),
        ] {
            floats.push((field, span(s)));
        }
        // `flow.layers` is the u8 just before the length of `flow.dims`.
        let dims_len = varint_len(wire.flow.dims.len());
        tags.push(("flow.layers", at(wire.flow.dims) - dims_len - 1));
        // Each MLP's two activation tags follow its dims.
        let end = |s: &[u8]| at(s) + s.len();
        tags.push(("classifier.hidden", end(wire.classifier.dims)));
        tags.push(("classifier.output", end(wire.classifier.dims) + 1));
        for (field, s) in [
            ("features.binary", wire.features.binary),
            ("features.actionable", wire.features.actionable),
            ("features.parents", wire.features.parents),
            ("features.order", wire.features.order),
        ] {
            for k in span(s) {
                tags.push((field, k));
            }
        }
        if let Some(c) = &wire.carma {
            strings.extend([
                ("carma.mask_net.dims", c.mask_net.dims),
                ("carma.mask_net.params", c.mask_net.params),
                ("carma.action_net.dims", c.action_net.dims),
                ("carma.action_net.params", c.action_net.params),
                ("carma.cost_range", c.cost_range),
                ("carma.weights", c.weights),
            ]);
            for (field, s) in [
                ("carma.mask_net.params", c.mask_net.params),
                ("carma.action_net.params", c.action_net.params),
                ("carma.cost_range", c.cost_range),
                ("carma.weights", c.weights),
            ] {
                floats.push((field, span(s)));
            }
            // clamp_lo and clamp_hi: two raw f32 right after the action net's params.
            let clamp = end(c.action_net.params);
            floats.push(("carma.clamp", clamp..clamp + 8));
            for (net, dims) in [
                ("carma.mask_net", c.mask_net.dims),
                ("carma.action_net", c.action_net.dims),
            ] {
                tags.push((net, end(dims)));
                tags.push((net, end(dims) + 1));
            }
        }
        let varints = strings
            .into_iter()
            .map(|(field, s)| {
                let n = varint_len(s.len());
                let start = at(s) - n;
                assert_eq!(
                    read_varint(&bytes[start..]),
                    Some(s.len() as u64),
                    "{name}: length prefix of {field} not where expected"
                );
                (field, start, n, s.len())
            })
            .collect();
        Fixture {
            name: name.to_owned(),
            bytes,
            varints,
            floats,
            tags,
        }
    }

    /// The postcard body (between the header and the CRC).
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..self.bytes.len() - TRAILER_LEN]
    }
}

/// Frames `body` with a correct header length and CRC-32, as a writer would.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + HEADER_LEN + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    // The fixtures' bodies have no grid section: version 3.
    out.extend_from_slice(&OLDEST_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Special `f32` values written over a number of the bundle.
pub const SPECIAL_F32: [f32; 14] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    1e30,
    -1e30,
    1e19,
    -1e19,
    f32::MIN_POSITIVE,
    1e-45, // subnormal
    0.0,
    -0.0,
    -1.0,
];

/// One corruption of a bundle. "Reframed" ones recompute the header length
/// and the CRC, so the postcard decoder and the validation must catch them;
/// the others leave the CRC (and header) as they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// The file cut to `len` bytes.
    Truncate { len: usize },
    /// The body cut to `len` bytes, reframed.
    TruncateBody { len: usize },
    /// Bits (file bit indices) flipped, CRC left as is.
    FlipBits { bits: Vec<usize> },
    /// Bits (body bit indices) flipped, reframed.
    FlipBodyBits { bits: Vec<usize> },
    /// A byte inserted at file position `at`, CRC and header left as is.
    Insert { at: usize, byte: u8 },
    /// A byte deleted at file position `at`, CRC and header left as is.
    Delete { at: usize },
    /// A byte inserted into the body, reframed.
    InsertBody { at: usize, byte: u8 },
    /// A run of `len` body bytes deleted at `at`, reframed.
    DeleteBody { at: usize, len: usize },
    /// Random body bytes overwritten, reframed.
    SetBodyBytes { edits: Vec<(usize, u8)> },
    /// The header's body length replaced, CRC left as is.
    HeaderLength { value: u32 },
    /// A length prefix replaced by the varint of `value`, reframed.
    Varint { field: &'static str, value: u64 },
    /// A length prefix replaced by `bytes` (overlong or unterminated), reframed.
    VarintBytes { field: &'static str, bytes: Vec<u8> },
    /// One `f32` (file offset) overwritten, reframed.
    Float {
        field: &'static str,
        at: usize,
        value: f32,
    },
    /// One `f32` scaled by `factor`, reframed.
    ScaleFloat {
        field: &'static str,
        at: usize,
        factor: f32,
    },
    /// A single-byte field (tag, flag, layer count) overwritten, reframed.
    Tag {
        field: &'static str,
        at: usize,
        byte: u8,
    },
    /// `len` body bytes copied from `from` over `to`, reframed.
    Splice { from: usize, to: usize, len: usize },
}

impl Mutation {
    /// The kind, for the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Mutation::Truncate { .. } => "truncate (CRC as is)",
            Mutation::TruncateBody { .. } => "truncate body (reframed)",
            Mutation::FlipBits { bits } if bits.len() == 1 => "1 bit flip (CRC as is)",
            Mutation::FlipBits { .. } => "2-8 bit flips (CRC as is)",
            Mutation::FlipBodyBits { bits } if bits.len() == 1 => "1 bit flip (reframed)",
            Mutation::FlipBodyBits { .. } => "2-8 bit flips (reframed)",
            Mutation::Insert { .. } => "byte insert (CRC as is)",
            Mutation::Delete { .. } => "byte delete (CRC as is)",
            Mutation::InsertBody { .. } => "byte insert (reframed)",
            Mutation::DeleteBody { .. } => "byte run delete (reframed)",
            Mutation::SetBodyBytes { .. } => "random bytes (reframed)",
            Mutation::HeaderLength { .. } => "header length (CRC as is)",
            Mutation::Varint { .. } => "length varint value (reframed)",
            Mutation::VarintBytes { .. } => "length varint overlong/unterminated (reframed)",
            Mutation::Float { .. } => "special f32 (reframed)",
            Mutation::ScaleFloat { .. } => "scaled f32 (reframed)",
            Mutation::Tag { .. } => "tag/flag byte (reframed)",
            Mutation::Splice { .. } => "splice (reframed)",
        }
    }

    /// True if the CRC is left as is: any change must then be refused.
    pub fn keeps_crc(&self) -> bool {
        matches!(
            self,
            Mutation::Truncate { .. }
                | Mutation::FlipBits { .. }
                | Mutation::Insert { .. }
                | Mutation::Delete { .. }
                | Mutation::HeaderLength { .. }
        )
    }

    /// The corrupted bytes.
    pub fn apply(&self, f: &Fixture) -> Vec<u8> {
        let good = &f.bytes;
        let body_start = HEADER_LEN;
        match self {
            Mutation::Truncate { len } => good[..*len].to_vec(),
            Mutation::TruncateBody { len } => frame(&f.body()[..*len]),
            Mutation::FlipBits { bits } => {
                let mut b = good.clone();
                for &k in bits {
                    b[k / 8] ^= 1 << (k % 8);
                }
                b
            }
            Mutation::FlipBodyBits { bits } => {
                let mut body = f.body().to_vec();
                for &k in bits {
                    body[k / 8] ^= 1 << (k % 8);
                }
                frame(&body)
            }
            Mutation::Insert { at, byte } => {
                let mut b = good.clone();
                b.insert(*at, *byte);
                b
            }
            Mutation::Delete { at } => {
                let mut b = good.clone();
                b.remove(*at);
                b
            }
            Mutation::InsertBody { at, byte } => {
                let mut body = f.body().to_vec();
                body.insert(*at, *byte);
                frame(&body)
            }
            Mutation::DeleteBody { at, len } => {
                let mut body = f.body().to_vec();
                body.drain(*at..*at + *len);
                frame(&body)
            }
            Mutation::SetBodyBytes { edits } => {
                let mut body = f.body().to_vec();
                for &(k, v) in edits {
                    body[k] = v;
                }
                frame(&body)
            }
            Mutation::HeaderLength { value } => {
                let mut b = good.clone();
                b[10..14].copy_from_slice(&value.to_le_bytes());
                b
            }
            Mutation::Varint { field, value } => replace_varint(f, field, &varint(*value)),
            Mutation::VarintBytes { field, bytes } => replace_varint(f, field, bytes),
            Mutation::Float { at, value, .. } => {
                let mut body = f.body().to_vec();
                body[at - body_start..at - body_start + 4].copy_from_slice(&value.to_le_bytes());
                frame(&body)
            }
            Mutation::ScaleFloat { at, factor, .. } => {
                let mut body = f.body().to_vec();
                let k = at - body_start;
                let v = f32::from_le_bytes(body[k..k + 4].try_into().unwrap());
                body[k..k + 4].copy_from_slice(&(v * factor).to_le_bytes());
                frame(&body)
            }
            Mutation::Tag { at, byte, .. } => {
                let mut body = f.body().to_vec();
                body[at - body_start] = *byte;
                frame(&body)
            }
            Mutation::Splice { from, to, len } => {
                let mut body = f.body().to_vec();
                body.copy_within(*from..*from + *len, *to);
                frame(&body)
            }
        }
    }
}

fn replace_varint(f: &Fixture, field: &str, new: &[u8]) -> Vec<u8> {
    let &(_, start, n, _) = f
        .varints
        .iter()
        .find(|v| v.0 == field)
        .expect("known field");
    let mut body = f.body().to_vec();
    let s = start - HEADER_LEN;
    body.splice(s..s + n, new.iter().copied());
    frame(&body)
}

/// Draws one random mutation of `f`.
pub fn random_mutation(f: &Fixture, rng: &mut ChaCha8Rng) -> Mutation {
    let n = f.bytes.len();
    let body_len = f.body().len();
    match rng.random_range(0..16u32) {
        0 => Mutation::FlipBits {
            bits: vec![rng.random_range(0..8 * n)],
        },
        1 => Mutation::FlipBits {
            bits: (0..rng.random_range(2..=8))
                .map(|_| rng.random_range(0..8 * n))
                .collect(),
        },
        2 | 3 => Mutation::FlipBodyBits {
            bits: vec![rng.random_range(0..8 * body_len)],
        },
        4 => Mutation::FlipBodyBits {
            bits: (0..rng.random_range(2..=8))
                .map(|_| rng.random_range(0..8 * body_len))
                .collect(),
        },
        5 => {
            if rng.random_bool(0.5) {
                Mutation::Insert {
                    at: rng.random_range(0..=n),
                    byte: rng.random(),
                }
            } else {
                Mutation::Delete {
                    at: rng.random_range(0..n),
                }
            }
        }
        6 => Mutation::InsertBody {
            at: rng.random_range(0..=body_len),
            byte: rng.random(),
        },
        7 => {
            let at = rng.random_range(0..body_len);
            let len = rng.random_range(1..=(body_len - at).min(16));
            Mutation::DeleteBody { at, len }
        }
        8 => Mutation::SetBodyBytes {
            edits: (0..rng.random_range(1..=4))
                .map(|_| (rng.random_range(0..body_len), rng.random()))
                .collect(),
        },
        9 => {
            let real = body_len as u32;
            let value = match rng.random_range(0..5) {
                0 => rng.random(),
                1 => u32::MAX - rng.random_range(0..64),
                2 => real.wrapping_add(rng.random_range(1..64)),
                3 => real.saturating_sub(rng.random_range(1..64)),
                _ => rng.random_range(0..64),
            };
            Mutation::HeaderLength { value }
        }
        10 | 11 => {
            let &(field, _, _, len) = &f.varints[rng.random_range(0..f.varints.len())];
            let len = len as u64;
            let value = match rng.random_range(0..9) {
                0 => 0,
                1 => len.saturating_sub(1),
                2 => len + 1,
                3 => len.saturating_sub(rng.random_range(1..=8)),
                4 => len + rng.random_range(1..=8),
                5 => len * 2,
                6 => u64::from(u32::MAX),
                7 => u64::MAX - rng.random_range(0..4),
                _ => rng.random_range(0..(body_len as u64 * 2)),
            };
            Mutation::Varint { field, value }
        }
        12 => {
            let &(field, _, _, len) = &f.varints[rng.random_range(0..f.varints.len())];
            let bytes = match rng.random_range(0..3) {
                // Overlong: the same value padded with continuation bytes.
                0 => {
                    let mut v = varint(len as u64);
                    let last = v.len() - 1;
                    v[last] |= 0x80;
                    v.extend(std::iter::repeat_n(0x80, rng.random_range(0..4)));
                    v.push(0);
                    v
                }
                // Unterminated: continuation bits for 11 bytes and more.
                1 => vec![0xff; rng.random_range(10..=14)],
                _ => (0..rng.random_range(1..=10))
                    .map(|_| rng.random())
                    .collect(),
            };
            Mutation::VarintBytes { field, bytes }
        }
        13 => {
            let (field, range) = f.floats[rng.random_range(0..f.floats.len())].clone();
            let at = range.start + 4 * rng.random_range(0..(range.len() / 4));
            let value = if rng.random_bool(0.8) {
                SPECIAL_F32[rng.random_range(0..SPECIAL_F32.len())]
            } else {
                f32::from_bits(rng.random())
            };
            if rng.random_bool(0.3) {
                Mutation::ScaleFloat {
                    field,
                    at,
                    factor: [1e3, 1e6, 1e12, -1e6, 1e-6][rng.random_range(0..5)],
                }
            } else {
                Mutation::Float { field, at, value }
            }
        }
        14 => {
            let (field, at) = f.tags[rng.random_range(0..f.tags.len())];
            let byte = match rng.random_range(0..3) {
                0 => rng.random_range(0..4),
                1 => rng.random_range(4..8),
                _ => rng.random(),
            };
            Mutation::Tag { field, at, byte }
        }
        _ => {
            let len = rng.random_range(1..=64.min(body_len));
            Mutation::Splice {
                from: rng.random_range(0..=body_len - len),
                to: rng.random_range(0..=body_len - len),
                len,
            }
        }
    }
}

/// What one mutation led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Refused with this error (its variant name).
    Refused(&'static str),
    /// Decoded and validated; the operations ran.
    Accepted { ops: usize, overflows: usize },
}

/// Tallies over a run.
#[derive(Default)]
pub struct Tally {
    pub mutations: u64,
    pub accepted: u64,
    pub ops: u64,
    /// Operations that returned `Error::NotFinite` (an overflow caught).
    pub overflows: u64,
    pub by_kind: BTreeMap<&'static str, (u64, u64)>,
    pub errors: BTreeMap<&'static str, u64>,
    pub failures: Vec<String>,
    pub slowest: (Duration, String),
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.mutations += other.mutations;
        self.accepted += other.accepted;
        self.ops += other.ops;
        self.overflows += other.overflows;
        for (k, (a, b)) in other.by_kind {
            let e = self.by_kind.entry(k).or_default();
            e.0 += a;
            e.1 += b;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.failures.extend(other.failures);
        if other.slowest.0 > self.slowest.0 {
            self.slowest = other.slowest;
        }
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "{} mutations, {} decoded Ok ({} operations run on them, {} refused as overflows), {} failures; slowest {:?} ({})\n",
            self.mutations,
            self.accepted,
            self.ops,
            self.overflows,
            self.failures.len(),
            self.slowest.0,
            self.slowest.1
        );
        for (k, (n, ok)) in &self.by_kind {
            s += &format!("  {k:48} {n:>9} tried {ok:>8} decoded Ok\n");
        }
        for (k, n) in &self.errors {
            s += &format!("  refused: {k:40} {n:>9}\n");
        }
        s
    }
}

fn error_name(e: &Error) -> &'static str {
    use carma_core::error::ValidationError as V;
    match e {
        Error::Format(FormatError::BadMagic) => "Format::BadMagic",
        Error::Format(FormatError::UnsupportedVersion { .. }) => "Format::UnsupportedVersion",
        Error::Format(FormatError::Truncated) => "Format::Truncated",
        Error::Format(FormatError::TrailingBytes) => "Format::TrailingBytes",
        Error::Format(FormatError::ChecksumMismatch) => "Format::ChecksumMismatch",
        Error::Format(FormatError::Malformed) => "Format::Malformed",
        Error::Format(_) => "Format::other",
        Error::Validation(V::FeatureCount { .. }) => "Validation::FeatureCount",
        Error::Validation(V::Length { .. }) => "Validation::Length",
        Error::Validation(V::Names { .. }) => "Validation::Names",
        Error::Validation(V::NotAFlag { .. }) => "Validation::NotAFlag",
        Error::Validation(V::OrderNotPermutation { .. }) => "Validation::OrderNotPermutation",
        Error::Validation(V::ParentNotBefore { .. }) => "Validation::ParentNotBefore",
        Error::Validation(V::NotFinite { .. }) => "Validation::NotFinite",
        Error::Validation(V::OutOfRange { .. }) => "Validation::OutOfRange",
        Error::Validation(V::Dims { .. }) => "Validation::Dims",
        Error::Validation(V::Activation { .. }) => "Validation::Activation",
        Error::Validation(V::NoFlowLayers) => "Validation::NoFlowLayers",
        Error::Validation(V::ReadyNotMonotonic { .. }) => "Validation::ReadyNotMonotonic",
        Error::Validation(V::ScheduleViolation { .. }) => "Validation::ScheduleViolation",
        Error::Validation(V::TooDeep { .. }) => "Validation::TooDeep",
        Error::Validation(_) => "Validation::other",
        Error::Input(_) => "Input",
        Error::NoCarma => "NoCarma",
        _ => "other",
    }
}

/// The errors an operation may return for well-formed, finite arguments of
/// the right lengths and a scratch of `scratch_len`: none of the caller's
/// fault, so only "this bundle cannot do that" or a numeric overflow.
fn allowed_op_error(b: &Bundle<'_>, e: &Error) -> bool {
    match e {
        Error::NoCarma => b.carma().is_none(),
        Error::Input(_) | Error::Format(_) | Error::Validation(_) => false,
        _ => true,
    }
}

fn subset(a: FeatureSet, b: FeatureSet) -> bool {
    a.difference(b).is_empty()
}

fn all_finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// Inputs (original units) for a `D`-feature bundle: the scaler's mean, a
/// spread around it, zeros, and values far outside any training range.
fn inputs(b: &Bundle<'_>, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let d = b.n_features();
    let fix = |i: usize, v: f32| {
        if b.is_binary(i) {
            if v >= 0.5 { 1.0 } else { 0.0 }
        } else {
            v
        }
    };
    let mean: Vec<f32> = (0..d).map(|i| fix(i, b.mean(i).unwrap_or(0.0))).collect();
    let spread: Vec<f32> = (0..d)
        .map(|i| {
            let (m, s) = (b.mean(i).unwrap_or(0.0), b.std(i).unwrap_or(1.0));
            let v = m + s * rng.random_range(-3.0f32..3.0);
            // A hostile std can make the spread overflow; inputs stay finite.
            fix(i, if v.is_finite() { v } else { m })
        })
        .collect();
    let zeros = vec![0.0; d];
    let extreme: Vec<f32> = (0..d)
        .map(|i| fix(i, [f32::MAX, -1e30, 1e19, f32::MIN][i % 4]))
        .collect();
    vec![mean, spread, zeros, extreme]
}

/// Runs every operation of a decoded bundle on a few inputs. Returns the
/// number of operations run, or what went wrong.
/// Returns the number of operations run and how many of them reported an
/// overflow (`Error::NotFinite`).
pub fn exercise(b: &Bundle<'_>, rng: &mut ChaCha8Rng) -> Result<(usize, usize), String> {
    let d = b.n_features();
    let n = b.scratch_len();
    let mut s = vec![f32::NAN; n];
    let mut ops = 0usize;
    let mut overflows = 0usize;
    let mut check = |what: &str, r: Result<bool, Error>| -> Result<(), String> {
        ops += 1;
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "{what}: Ok with a non-finite or out-of-range result"
            )),
            Err(e) if allowed_op_error(b, &e) => {
                overflows += usize::from(matches!(e, Error::NotFinite(_)));
                Ok(())
            }
            Err(e) => Err(format!("{what}: unexpected error {e:?}")),
        }
    };
    // Accessors never panic, in range or not.
    for i in 0..d + 2 {
        let _ = (b.feature_name(i), b.mean(i), b.std(i), b.parents(i));
        let _ = (b.is_binary(i), b.is_actionable(i));
    }
    let _ = b.order().count();
    for x in inputs(b, rng) {
        let mut xs = vec![0.0; d];
        let r = b.standardize(&x, &mut xs).map(|()| all_finite(&xs));
        check("standardize", r)?;
        if !all_finite(&xs) {
            // The standardized input overflowed; nothing further to feed.
            xs.iter_mut().for_each(|v| *v = 0.0);
        }
        let mut z = vec![0.0; d];
        let r = b.abduct(&xs, &mut z, &mut s).map(|()| all_finite(&z));
        check("abduct", r)?;
        if !all_finite(&z) {
            z.iter_mut().for_each(|v| *v = 0.0);
        }
        check(
            "log_likelihood",
            b.log_likelihood(&xs, &mut s).map(f32::is_finite),
        )?;
        check(
            "classify",
            b.classify(&xs, &mut s).map(|p| (0.0..=1.0).contains(&p)),
        )?;
        let mut back = vec![0.0; d];
        let r = b.invert(&z, &mut back, &mut s).map(|()| all_finite(&back));
        check("invert", r)?;
        let mut raw = vec![0.0; d];
        let r = b.unstandardize(&xs, &mut raw).map(|()| all_finite(&raw));
        check("unstandardize", r)?;
        let forbid: FeatureSet = (0..d).filter(|_| rng.random_bool(0.2)).collect();
        let mask = b.mask(&z, forbid, &mut s);
        check(
            "mask",
            mask.map(|m| subset(m, b.actionable().difference(forbid))),
        )?;
        let mut delta = vec![0.0; d];
        let r = b
            .action(&z, mask.unwrap_or(FeatureSet::EMPTY), &mut delta, &mut s)
            .map(|()| all_finite(&delta));
        check("action", r)?;
        for forbid in [FeatureSet::EMPTY, forbid] {
            let mut x_cf = vec![0.0; d];
            let r = b.recommend(&x, forbid, &mut x_cf, &mut s).map(|rec| {
                all_finite(&x_cf)
                    && (0.0..=1.0).contains(&rec.prob_before)
                    && (0.0..=1.0).contains(&rec.prob_after)
                    && rec.cost.is_finite()
                    && rec.cost >= 0.0
                    && subset(rec.mask, b.actionable().difference(forbid))
            });
            check("recommend", r)?;
        }
    }
    Ok((ops, overflows))
}

/// Applies `m` to `f`, decodes, and exercises whatever decodes. Panics are
/// caught and reported as failures with the mutation that caused them.
pub fn run_one(f: &Fixture, m: &Mutation, index: u64, rng: &mut ChaCha8Rng, tally: &mut Tally) {
    let bytes = m.apply(f);
    let changed = bytes != f.bytes;
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| match Bundle::new(&bytes) {
        Err(e) => Ok(Outcome::Refused(error_name(&e))),
        Ok(b) => exercise(&b, rng).map(|(ops, overflows)| Outcome::Accepted { ops, overflows }),
    }));
    let elapsed = start.elapsed();
    tally.mutations += 1;
    let entry = tally.by_kind.entry(m.kind()).or_default();
    entry.0 += 1;
    let tag = format!("{} #{index}: {m:?}", f.name);
    if elapsed > tally.slowest.0 {
        tally.slowest = (elapsed, tag.clone());
    }
    match result {
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tally.failures.push(format!("PANIC {tag}: {msg}"));
        }
        Ok(Err(why)) => {
            entry.1 += 1;
            tally.accepted += 1;
            tally.failures.push(format!("{tag}: {why}"));
        }
        Ok(Ok(Outcome::Accepted { ops, overflows })) => {
            entry.1 += 1;
            tally.accepted += 1;
            tally.ops += ops as u64;
            tally.overflows += overflows as u64;
            if m.keeps_crc() && changed {
                tally.failures.push(format!(
                    "{tag}: changed bytes with the old CRC were accepted"
                ));
            }
        }
        Ok(Ok(Outcome::Refused(name))) => {
            *tally.errors.entry(name).or_default() += 1;
        }
    }
}
