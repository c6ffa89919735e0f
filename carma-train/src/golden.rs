//! Golden fixtures: one small trained bundle per dataset and the exact
//! outputs `carma-core` gives for a few individuals of its test split.
//!
//! `cargo run --release -p carma-train --example regenerate_fixtures`
//! writes `fixtures/golden/<dataset>.carma` and `<dataset>.json` with
//! [`bundle`] and [`fixture`]; the workspace test `tests/golden.rs` checks
//! the core against them bit for bit and retrains one bundle with
//! [`bundle`] to check the bytes are the committed ones. See
//! `docs/FIXTURES.md`.

use carma_core::{Bundle, FeatureSet};
use serde::{Deserialize, Serialize};

use crate::pipeline::{NoProgress, PipelineConfig, PipelineError, Simulated, train_simulated};
use crate::scm::Dataset;

/// Master seed of every golden bundle.
pub const SEED: u64 = 6;
/// CARMA epochs of the golden bundles: more than [`PipelineConfig::tiny`]'s,
/// so that most rejected individuals get a recommendation that is accepted.
pub const CARMA_EPOCHS: usize = 100;
/// Rejected test individuals per fixture file.
pub const N_REJECTED: usize = 14;
/// Accepted test individuals per fixture file.
pub const N_ACCEPTED: usize = 6;
/// Rejected individuals re-run with one actionable feature forbidden.
pub const N_FORBID: usize = 5;
/// Version of the JSON layout below; bump it when the layout changes.
pub const LAYOUT_VERSION: u32 = 1;
/// The command that regenerates the fixtures.
pub const COMMAND: &str = "cargo run --release -p carma-train --example regenerate_fixtures";

/// The pipeline settings of the golden bundle of `dataset`:
/// [`PipelineConfig::tiny`] with [`SEED`] and [`CARMA_EPOCHS`].
pub fn config(dataset: Dataset) -> PipelineConfig {
    let mut cfg = PipelineConfig::tiny(dataset);
    cfg.seed = SEED;
    cfg.carma.epochs = CARMA_EPOCHS;
    cfg
}

/// Trains the golden model of `dataset` (see [`config`]).
pub fn train(dataset: Dataset) -> Result<Simulated, PipelineError> {
    train_simulated(dataset, &config(dataset), &mut NoProgress)
}

/// The golden bundle bytes of `dataset`: what `<dataset>.carma` holds.
pub fn bundle(dataset: Dataset) -> Result<Vec<u8>, PipelineError> {
    train(dataset)?.trained.to_bytes()
}

/// FNV-1a (64 bit) of `bytes`: ties a fixture file to its bundle.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A vector of `f32`: readable decimals (shortest round-trip form) and the
/// authoritative bit patterns (`0x` + 8 hex digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floats {
    /// The values, for people.
    pub values: Vec<f32>,
    /// `f32::to_bits` of each value, for the tests.
    pub bits: Vec<String>,
}

impl Floats {
    /// Both forms of `v`.
    pub fn new(v: &[f32]) -> Self {
        Floats {
            values: v.to_vec(),
            bits: v.iter().map(|&x| hex(x)).collect(),
        }
    }

    /// The values the bit patterns denote (`None` if one is malformed).
    pub fn decode(&self) -> Option<Vec<f32>> {
        self.bits.iter().map(|s| unhex(s)).collect()
    }
}

/// One `f32`: decimal and bits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Float {
    /// The value, for people.
    pub value: f32,
    /// `f32::to_bits`, for the tests.
    pub bits: Bits,
}

/// A bit pattern written as `"0x3f800000"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits(pub u32);

impl Serialize for Bits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{:08x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Bits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        unhex(&s)
            .map(|x| Bits(x.to_bits()))
            .ok_or_else(|| serde::de::Error::custom(format!("not an f32 bit pattern: {s:?}")))
    }
}

impl Float {
    /// Both forms of `x`.
    pub fn new(x: f32) -> Self {
        Float {
            value: x,
            bits: Bits(x.to_bits()),
        }
    }

    /// The value the bits denote.
    pub fn get(self) -> f32 {
        f32::from_bits(self.bits.0)
    }
}

fn hex(x: f32) -> String {
    format!("0x{:08x}", x.to_bits())
}

fn unhex(s: &str) -> Option<f32> {
    let h = s.strip_prefix("0x")?;
    (h.len() == 8)
        .then(|| u32::from_str_radix(h, 16).ok())
        .flatten()
        .map(f32::from_bits)
}

/// A feature set: names (readable) and the `FeatureSet` bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// The features' names, in index order.
    pub names: Vec<String>,
    /// `FeatureSet::bits`.
    pub bits: u64,
}

impl Features {
    fn new(bundle: &Bundle<'_>, set: FeatureSet) -> Self {
        Features {
            names: set
                .iter()
                .map(|i| bundle.feature_name(i).unwrap_or("?").to_owned())
                .collect(),
            bits: set.bits(),
        }
    }
}

/// The individual operations of [`Bundle`], chained by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ops {
    /// `standardize(x)`.
    pub x_std: Floats,
    /// `abduct(x_std)`.
    pub z: Floats,
    /// `log_likelihood(x_std)` (standardized space).
    pub log_likelihood: Float,
    /// `invert(z)`.
    pub x_std_reconstructed: Floats,
    /// `classify(x_std)`.
    pub prob: Float,
    /// `mask(z, forbid)`.
    pub mask: Features,
    /// `action(z, mask)`: the clamped latent shift (all features).
    pub delta: Floats,
    /// `z + mask * delta`.
    pub z_cf: Floats,
    /// `invert(z_cf)`: the counterfactual, standardized.
    pub x_cf_std: Floats,
    /// `unstandardize(x_cf_std)`: the counterfactual, original units.
    pub x_cf: Floats,
    /// `classify(x_cf_std)`.
    pub prob_cf: Float,
    /// `cost(x_std, x_cf_std, mask)`.
    pub cost: Float,
}

/// What `Bundle::recommend(x, forbid)` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recommend {
    /// The features to intervene on.
    pub mask: Features,
    /// Probability as the individual is.
    pub prob_before: Float,
    /// Probability of the counterfactual.
    pub prob_after: Float,
    /// `prob_after >= 0.5`.
    pub accepted: bool,
    /// `prob_before >= 0.5` (then nothing changes).
    pub already_accepted: bool,
    /// Cost (standardized units).
    pub cost: Float,
    /// The counterfactual, original units. Features the intervention cannot
    /// reach are copied from `x`, so this can differ from `ops.x_cf` by rounding.
    pub x_cf: Floats,
}

/// One input and every expected output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Index of the individual in the simulated recourse test split.
    pub test_row: usize,
    /// The true SCM label (1 = accepted).
    pub label: f32,
    /// The input, original units (the f64 sample rounded to f32).
    pub x: Floats,
    /// Features forbidden for this individual.
    pub forbid: Features,
    /// The operations one by one.
    pub ops: Ops,
    /// The whole pipeline.
    pub recommend: Recommend,
}

/// One feature of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureInfo {
    /// Its name.
    pub name: String,
    /// Takes only 0 and 1.
    pub binary: bool,
    /// May be intervened on.
    pub actionable: bool,
}

/// The metrics stored in the bundle (training report, for people).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Flow training rows.
    pub n_train: u32,
    /// Rejected recourse test rows.
    pub n_test: u32,
    /// Classifier accuracy on its test split.
    pub classifier_test_accuracy: Option<f32>,
    /// Flow mean test log-likelihood, original units.
    pub flow_test_loglik: Option<f32>,
    /// CARMA coverage on the rejected test rows.
    pub carma_coverage: Option<f32>,
    /// CARMA mean cost.
    pub carma_cost: Option<f32>,
    /// CARMA mean number of actions.
    pub carma_mean_actions: Option<f32>,
}

/// A whole `<dataset>.json` fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// What this file is.
    pub about: String,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u32,
    /// The regeneration command ([`COMMAND`]).
    pub regenerate: String,
    /// Dataset name.
    pub dataset: String,
    /// The bundle file next to this one.
    pub bundle_file: String,
    /// Its length in bytes.
    pub bundle_len: usize,
    /// Its FNV-1a 64 hash, `0x` + 16 hex digits.
    pub bundle_fnv1a64: String,
    /// Pipeline settings, as `PipelineConfig` JSON.
    pub config: serde_json::Value,
    /// The bundle's metrics, for people.
    pub metrics: Metrics,
    /// The features in index order.
    pub features: Vec<FeatureInfo>,
    /// [`N_REJECTED`] rejected then [`N_ACCEPTED`] accepted test individuals, nothing forbidden.
    pub rows: Vec<Row>,
    /// The actionable feature forbidden in `forbid_rows`.
    pub forbidden_feature: String,
    /// Up to [`N_FORBID`] rejected individuals whose recommendation used
    /// `forbidden_feature`, again with it forbidden.
    pub forbid_rows: Vec<Row>,
}

/// Why a fixture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// Training failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The core refused the bundle or an input.
    #[error("carma-core: {0:?}")]
    Core(carma_core::Error),
    /// The test split has too few rejected or accepted individuals.
    #[error(
        "{dataset}: the test split has {rejected} rejected and {accepted} accepted individuals"
    )]
    TooFew {
        /// Dataset.
        dataset: String,
        /// Rejected found.
        rejected: usize,
        /// Accepted found.
        accepted: usize,
    },
    /// JSON failure.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl From<carma_core::Error> for GoldenError {
    fn from(e: carma_core::Error) -> Self {
        GoldenError::Core(e)
    }
}

/// Every expected output for input `x` (original units) with `forbid`.
pub fn row(
    bundle: &Bundle<'_>,
    test_row: usize,
    label: f32,
    x: &[f32],
    forbid: FeatureSet,
) -> Result<Row, carma_core::Error> {
    let d = bundle.n_features();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let mut x_std = vec![0.0f32; d];
    bundle.standardize(x, &mut x_std)?;
    let mut z = vec![0.0f32; d];
    bundle.abduct(&x_std, &mut z, &mut scratch)?;
    let log_likelihood = bundle.log_likelihood(&x_std, &mut scratch)?;
    let mut x_rec = vec![0.0f32; d];
    bundle.invert(&z, &mut x_rec, &mut scratch)?;
    let prob = bundle.classify(&x_std, &mut scratch)?;
    let mask = bundle.mask(&z, forbid, &mut scratch)?;
    let mut delta = vec![0.0f32; d];
    bundle.action(&z, mask, &mut delta, &mut scratch)?;
    let mut z_cf = z.clone();
    for i in mask.iter() {
        z_cf[i] += delta[i];
    }
    let mut x_cf_std = vec![0.0f32; d];
    bundle.invert(&z_cf, &mut x_cf_std, &mut scratch)?;
    let mut x_cf = vec![0.0f32; d];
    bundle.unstandardize(&x_cf_std, &mut x_cf)?;
    let prob_cf = bundle.classify(&x_cf_std, &mut scratch)?;
    let cost = bundle.cost(&x_std, &x_cf_std, mask)?;

    let mut rec_x_cf = vec![0.0f32; d];
    let rec = bundle.recommend(x, forbid, &mut rec_x_cf, &mut scratch)?;
    Ok(Row {
        test_row,
        label,
        x: Floats::new(x),
        forbid: Features::new(bundle, forbid),
        ops: Ops {
            x_std: Floats::new(&x_std),
            z: Floats::new(&z),
            log_likelihood: Float::new(log_likelihood),
            x_std_reconstructed: Floats::new(&x_rec),
            prob: Float::new(prob),
            mask: Features::new(bundle, mask),
            delta: Floats::new(&delta),
            z_cf: Floats::new(&z_cf),
            x_cf_std: Floats::new(&x_cf_std),
            x_cf: Floats::new(&x_cf),
            prob_cf: Float::new(prob_cf),
            cost: Float::new(cost),
        },
        recommend: Recommend {
            mask: Features::new(bundle, rec.mask),
            prob_before: Float::new(rec.prob_before),
            prob_after: Float::new(rec.prob_after),
            accepted: rec.accepted,
            already_accepted: rec.already_accepted,
            cost: Float::new(rec.cost),
            x_cf: Floats::new(&rec_x_cf),
        },
    })
}

/// The fixture of a trained `sim` whose exported bytes are `bytes`: the first
/// [`N_REJECTED`] rejected and [`N_ACCEPTED`] accepted individuals of the
/// recourse test split (the core's classifier decides), and the forbid case:
/// the actionable feature the most of those recommendations use (lowest
/// index on ties) forbidden for up to [`N_FORBID`] rejected individuals that
/// used it.
pub fn fixture(dataset: Dataset, sim: &Simulated, bytes: &[u8]) -> Result<Fixture, GoldenError> {
    let bundle = Bundle::new(bytes)?;
    let d = bundle.n_features();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let labels = sim.test.y();
    let mut rejected = Vec::new();
    let mut accepted = Vec::new();
    let mut x_std = vec![0.0f32; d];
    for (k, r) in sim.test.x.rows().into_iter().enumerate() {
        if rejected.len() >= N_REJECTED && accepted.len() >= N_ACCEPTED {
            break;
        }
        let x: Vec<f32> = r.iter().map(|&v| v as f32).collect();
        bundle.standardize(&x, &mut x_std)?;
        let p = bundle.classify(&x_std, &mut scratch)?;
        let label = labels.map_or(f32::NAN, |y| y[k] as f32);
        let list = if p < carma_core::recommend::ACCEPT_THRESHOLD {
            &mut rejected
        } else {
            &mut accepted
        };
        list.push((k, label, x));
    }
    if rejected.len() < N_REJECTED || accepted.len() < N_ACCEPTED {
        return Err(GoldenError::TooFew {
            dataset: dataset.name().to_owned(),
            rejected: rejected.len(),
            accepted: accepted.len(),
        });
    }
    rejected.truncate(N_REJECTED);
    accepted.truncate(N_ACCEPTED);
    let rows = rejected
        .iter()
        .chain(&accepted)
        .map(|(k, label, x)| row(&bundle, *k, *label, x, FeatureSet::EMPTY))
        .collect::<Result<Vec<_>, _>>()?;

    let used = |i: usize| {
        rows.iter()
            .filter(|r| FeatureSet::from_bits(r.recommend.mask.bits).contains(i))
            .count()
    };
    let actionable: Vec<usize> = bundle.actionable().iter().collect();
    let forbidden = actionable
        .iter()
        .copied()
        .max_by_key(|&i| (used(i), std::cmp::Reverse(i)))
        .unwrap_or(0);
    let forbid = FeatureSet::from_bits(1 << forbidden);
    let forbid_rows = rejected
        .iter()
        .zip(&rows)
        .filter(|(_, r)| FeatureSet::from_bits(r.recommend.mask.bits).contains(forbidden))
        .take(N_FORBID)
        .map(|((k, label, x), _)| row(&bundle, *k, *label, x, forbid))
        .collect::<Result<Vec<_>, _>>()?;

    let features = (0..d)
        .map(|i| FeatureInfo {
            name: bundle.feature_name(i).unwrap_or("?").to_owned(),
            binary: bundle.is_binary(i),
            actionable: bundle.is_actionable(i),
        })
        .collect();
    let m = bundle.wire().meta.metrics;
    Ok(Fixture {
        about: format!(
            "Golden outputs of carma-core for the {} bundle {}.carma: inputs from the simulated \
             recourse test split and every output, each f32 as a decimal and as its bits \
             (authoritative). See docs/FIXTURES.md.",
            dataset.name(),
            dataset.name()
        ),
        layout_version: LAYOUT_VERSION,
        regenerate: COMMAND.to_owned(),
        dataset: dataset.name().to_owned(),
        bundle_file: format!("{}.carma", dataset.name()),
        bundle_len: bytes.len(),
        bundle_fnv1a64: format!("0x{:016x}", fnv1a64(bytes)),
        config: serde_json::to_value(config(dataset))?,
        metrics: Metrics {
            n_train: m.n_train,
            n_test: m.n_test,
            classifier_test_accuracy: m.classifier_test_accuracy,
            flow_test_loglik: m.flow_test_loglik,
            carma_coverage: m.carma_coverage,
            carma_cost: m.carma_cost,
            carma_mean_actions: m.carma_mean_actions,
        },
        features,
        rows,
        forbidden_feature: bundle.feature_name(forbidden).unwrap_or("?").to_owned(),
        forbid_rows,
    })
}

/// `fixture` as text: pretty JSON with every array of numbers or strings on
/// one line.
pub fn to_json(fixture: &Fixture) -> Result<String, serde_json::Error> {
    let pretty = serde_json::to_string_pretty(fixture)?;
    let mut out = String::with_capacity(pretty.len());
    let mut lines = pretty.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with('[') {
            // Collect the array; join it if it holds only scalars.
            let mut items = Vec::new();
            let mut closing = None;
            while let Some(next) = lines.peek() {
                let t = next.trim();
                if t.starts_with(']') {
                    closing = Some(t.to_owned());
                    lines.next();
                    break;
                }
                if t.ends_with('{') || t.ends_with('[') {
                    break;
                }
                items.push(t.to_owned());
                lines.next();
            }
            if let Some(close) = closing {
                out.push_str(line.trim_end());
                out.push_str(&items.join(" "));
                out.push_str(&close);
                out.push('\n');
            } else {
                out.push_str(line);
                out.push('\n');
                let indent = line.len() - line.trim_start().len() + 2;
                for item in items {
                    out.push_str(&" ".repeat(indent));
                    out.push_str(&item);
                    out.push('\n');
                }
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_through_json() {
        for x in [0.1f32, -3.5e-12, 1.0e30, f32::MIN_POSITIVE, -0.0, 7.0] {
            let f = Float::new(x);
            let back: Float = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
            assert_eq!(back.get().to_bits(), x.to_bits());
            assert_eq!(back.value.to_bits(), x.to_bits(), "decimal {x:?}");
        }
        assert!(serde_json::from_str::<Bits>("\"0x3f80000\"").is_err());
        assert!(serde_json::from_str::<Bits>("\"3f800000\"").is_err());
    }

    #[test]
    fn compact_json_parses_back_to_the_same_value() {
        let v = Floats::new(&[1.5, -2.25]);
        let f = Fixture {
            about: "a".into(),
            layout_version: 1,
            regenerate: COMMAND.into(),
            dataset: "d".into(),
            bundle_file: "d.carma".into(),
            bundle_len: 3,
            bundle_fnv1a64: format!("0x{:016x}", fnv1a64(b"abc")),
            config: serde_json::json!({"a": [1, 2], "b": {"c": []}}),
            metrics: Metrics {
                n_train: 1,
                n_test: 2,
                classifier_test_accuracy: Some(0.75),
                flow_test_loglik: None,
                carma_coverage: None,
                carma_cost: None,
                carma_mean_actions: None,
            },
            features: vec![FeatureInfo {
                name: "x".into(),
                binary: false,
                actionable: true,
            }],
            rows: Vec::new(),
            forbidden_feature: "x".into(),
            forbid_rows: Vec::new(),
        };
        let text = to_json(&f).unwrap();
        let back: Fixture = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        assert!(text.contains("\"a\": [1, 2]"), "{text}");
        let floats: Floats =
            serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        assert_eq!(floats, v);
        assert_eq!(floats.decode().unwrap(), vec![1.5, -2.25]);
    }

    #[test]
    fn fnv_of_known_strings() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
