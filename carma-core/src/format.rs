//! The bundle's wire format (versions 3 and 4).
//!
//! A bundle file is
//!
//! ```text
//! MAGIC (8 bytes) | version (u16 LE) | body length (u32 LE) | body | CRC-32 (u32 LE)
//! ```
//!
//! where the body is a [`BundleWire`] serialized with postcard (in version 4
//! followed by its [`GridWire`], also postcard) and the CRC-32 (IEEE) covers
//! every byte before it. Numeric arrays are byte strings of
//! little-endian `f32` (or `u16`) values, so decoding borrows them from the
//! file instead of copying. The writer (`carma-train`) does everything that
//! can be done once: MADE masks are multiplied into the weights, hidden units
//! are sorted by when they become computable during inversion, and that
//! schedule is stored in [`FlowWire::ready`].
//!
//! Layouts (`W` is `[out][in]` as in `y = W x + b`, stored column-major):
//! - [`MlpWire::params`]: for each consecutive pair `dims[l], dims[l+1]`, first
//!   `W_l` (`dims[l+1] * dims[l]` values: the `dims[l+1]` weights leaving
//!   input 0, then those leaving input 1, and so on; `W[row][col]` is value
//!   [`weight_index`]`(n_out, row, col)`), then `b_l` (`dims[l+1]` values).
//!   Column-major lets the reader update a block of output units input by
//!   input with contiguous loads while each unit still sums in input order
//!   (version 1 stored `W` row-major; it is not read any more).
//! - [`FlowWire::params`]: the params of each flow layer, one after the other,
//!   each laid out as an MLP over [`FlowWire::dims`]. Layer 0 is applied first
//!   in the data-to-latent direction.
//! - MADE output order: row `2i` is the shift of feature `i`, row `2i + 1` its
//!   unconstrained log-scale (docs/MATH.md, section 4).

use serde::{Deserialize, Serialize};

use crate::error::{Error, FormatError};

/// The first eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"CARMA\0BN";
/// The newest format version this crate reads and writes.
///
/// Version 4 added integer and categorical features ([`GridWire`], after
/// the body of version 3). A bundle without them is still written as
/// version 3, byte for byte what earlier builds wrote and can read; one with
/// them is version 4, which earlier builds refuse with the version error.
/// Version 3 added the per-feature bounds and directions
/// ([`FeaturesWire::min`], [`FeaturesWire::max`], [`FeaturesWire::direction`]);
/// versions 1 and 2 are refused with the version error (re-export them).
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version this crate reads.
pub const OLDEST_FORMAT_VERSION: u16 = 3;
/// Bytes before the body: magic, version, body length.
pub const HEADER_LEN: usize = 8 + 2 + 4;
/// Bytes after the body: the CRC-32.
pub const TRAILER_LEN: usize = 4;
/// The largest number of features a bundle may have (feature sets are `u64` bit masks).
pub const MAX_FEATURES: usize = 64;
/// The most weight layers a network may have. Layer lookups are linear in
/// the depth, so a hostile file with thousands of one-unit layers made every
/// operation quadratic (a 720 KB bundle of 30,000 layers took 3 s to load and
/// 6 s per inversion); real models have a handful (issue 7,
/// docs/RELIABILITY.md).
pub const MAX_LAYERS: usize = 64;

/// Where `W[row][col]` of a layer with `n_out` outputs sits among the
/// layer's weights on the wire (column-major): `col * n_out + row`.
///
/// Writers hold weights row-major (`row * n_in + col`) and place each value
/// here; readers of the raw bytes use it the same way.
pub const fn weight_index(n_out: usize, row: usize, col: usize) -> usize {
    col * n_out + row
}

/// Writes one layer's weights, given row-major (`W[row][col]` at
/// `row * n_in + col`, as trainers hold them), into `wire` in the wire's
/// column-major order ([`weight_index`]). `false`, writing nothing, unless
/// both slices hold `n_in * n_out` values.
pub fn weights_to_wire(n_in: usize, n_out: usize, row_major: &[f32], wire: &mut [f32]) -> bool {
    let n = n_in.checked_mul(n_out);
    if n != Some(row_major.len()) || n != Some(wire.len()) {
        return false;
    }
    for (row, weights) in row_major.chunks_exact(n_in.max(1)).enumerate() {
        for (col, &w) in weights.iter().enumerate() {
            if let Some(slot) = wire.get_mut(weight_index(n_out, row, col)) {
                *slot = w;
            }
        }
    }
    true
}

/// Which way a feature may be changed by a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Up or down.
    Any,
    /// Only up (age can only grow).
    Increase,
    /// Only down (a debt can only be paid down).
    Decrease,
}

impl Direction {
    /// The wire byte: 0 any, 1 increase, 2 decrease.
    pub const fn to_byte(self) -> u8 {
        match self {
            Direction::Any => 0,
            Direction::Increase => 1,
            Direction::Decrease => 2,
        }
    }

    /// The direction of a wire byte, `None` for any other byte.
    pub const fn from_byte(b: u8) -> Option<Direction> {
        match b {
            0 => Some(Direction::Any),
            1 => Some(Direction::Increase),
            2 => Some(Direction::Decrease),
            _ => None,
        }
    }
}

/// An activation function, applied elementwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` if `x > 0`, else `exp(x) - 1`.
    Elu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)` (scikit-learn's and PyTorch's `tanh` hidden layers). Appended last: the wire
    /// stores a variant by its position, so the earlier ones keep their bytes.
    Tanh,
}

/// A dense multilayer perceptron.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpWire<'a> {
    /// Layer widths as `u16` LE: input, hidden..., output. At least two.
    #[serde(borrow)]
    pub dims: &'a [u8],
    /// Activation after every hidden layer.
    pub hidden: Activation,
    /// Activation after the output layer.
    pub output: Activation,
    /// Weights and biases, `f32` LE, in the order given in the module docs.
    #[serde(borrow)]
    pub params: &'a [u8],
}

/// Names and properties of the features, and the causal graph.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeaturesWire<'a> {
    /// Feature names separated by `'\n'`, `D` of them, none empty.
    #[serde(borrow)]
    pub names: &'a str,
    /// `D` bytes: 1 if the feature is binary (0 or 1), else 0.
    #[serde(borrow)]
    pub binary: &'a [u8],
    /// `D` bytes: 1 if the feature may be intervened on, else 0.
    #[serde(borrow)]
    pub actionable: &'a [u8],
    /// `D * D` bytes: `parents[i * D + j] = 1` iff feature `j` is a parent of `i`.
    #[serde(borrow)]
    pub parents: &'a [u8],
    /// `D` bytes: a topological order of the graph (parents before children).
    #[serde(borrow)]
    pub order: &'a [u8],
    /// `D` lower bounds (original units, finite, `f32` LE): no recommendation
    /// sets a feature below its bound. By default the training minimum less
    /// [`BOUND_MARGIN`] of the training range (0 for a binary feature).
    #[serde(borrow)]
    pub min: &'a [u8],
    /// `D` upper bounds, as `min` (`min[i] <= max[i]`).
    #[serde(borrow)]
    pub max: &'a [u8],
    /// `D` bytes: the direction a recommendation may move each feature,
    /// [`Direction::to_byte`] (0 any, 1 increase only, 2 decrease only).
    #[serde(borrow)]
    pub direction: &'a [u8],
}

/// The default bounds' margin: the training range widened by this fraction
/// of itself on each side (so a recommendation may go a little beyond what
/// the data shows, never far).
pub const BOUND_MARGIN: f32 = 0.1;

/// Per-feature standardization `x~ = (x - mean) / std` (docs/MATH.md, section 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalerWire<'a> {
    /// `D` means, `f32` LE.
    #[serde(borrow)]
    pub mean: &'a [u8],
    /// `D` standard deviations (positive), `f32` LE.
    #[serde(borrow)]
    pub std: &'a [u8],
}

/// The causal normalizing flow: stacked masked affine (MADE) layers (docs/MATH.md, section 4).
///
/// Every hyper-network has ELU hidden layers and no output activation (fixed,
/// so not stored). It may have no hidden layer at all; then `ready` is empty.
/// `Bundle::new` checks that every non-zero weight respects `ready` and the
/// topological order, so that inversion is exact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlowWire<'a> {
    /// Number of stacked layers, at least one.
    pub layers: u8,
    /// Hyper-network widths as `u16` LE, shared by every layer: `D`, hidden..., `2D`.
    #[serde(borrow)]
    pub dims: &'a [u8],
    /// Every layer's hyper-network parameters (masks already multiplied in).
    #[serde(borrow)]
    pub params: &'a [u8],
    /// Inversion schedule, `u16` LE. For each layer, for each hidden layer of
    /// its hyper-network, `D + 1` entries: entry `t` is how many of that
    /// hidden layer's units (a prefix, the writer sorts them) can be computed
    /// once the first `t` features of the topological order are known.
    #[serde(borrow)]
    pub ready: &'a [u8],
}

/// The CARMA networks and what the recommendation needs besides them (docs/MATH.md, section 5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CarmaWire<'a> {
    /// Mask network: `D -> ... -> 2D` logits, `(phi_i0, phi_i1)` at `2i, 2i + 1`.
    #[serde(borrow)]
    pub mask_net: MlpWire<'a>,
    /// Action network: `[z, m]` (`2D`) `-> ... -> D` latent shifts.
    #[serde(borrow)]
    pub action_net: MlpWire<'a>,
    /// Lower bound of the latent shift clamp.
    pub clamp_lo: f32,
    /// Upper bound of the latent shift clamp.
    pub clamp_hi: f32,
    /// `D` cost ranges (max - min of the standardized training data), `f32` LE.
    #[serde(borrow)]
    pub cost_range: &'a [u8],
    /// `D` preference weights (1 by default), `f32` LE.
    #[serde(borrow)]
    pub weights: &'a [u8],
}

/// What a user needs to trust a model: provenance and measured quality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetaWire<'a> {
    /// The dataset the model was trained on.
    #[serde(borrow)]
    pub dataset: &'a str,
    /// The training seed.
    pub seed: u64,
    /// The program that wrote the bundle, with its version.
    #[serde(borrow)]
    pub trainer: &'a str,
    /// Measured quality; `None` where not measured.
    pub metrics: MetricsWire,
}

/// Training and test metrics stored with a model.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsWire {
    /// Rows used to train the flow.
    pub n_train: u32,
    /// Rows used to test.
    pub n_test: u32,
    /// Classifier accuracy on its test split, in [0, 1].
    pub classifier_test_accuracy: Option<f32>,
    /// Flow mean test log-likelihood per individual, original units (nats).
    pub flow_test_loglik: Option<f32>,
    /// CARMA coverage on the rejected test individuals, in [0, 1].
    pub carma_coverage: Option<f32>,
    /// CARMA causal validity under the true SCM, in [0, 1], when known.
    pub carma_validity: Option<f32>,
    /// CARMA mean cost (docs/MATH.md, section 5) on the rejected test individuals.
    pub carma_cost: Option<f32>,
    /// CARMA mean number of intervened features.
    pub carma_mean_actions: Option<f32>,
}

/// A feature's kind byte in [`GridWire::kind`]: continuous, or binary when
/// [`FeaturesWire::binary`] says so.
pub const KIND_PLAIN: u8 = 0;
/// [`GridWire::kind`]: an integer feature, on the multiples of its step.
pub const KIND_INTEGER: u8 = 1;
/// [`GridWire::kind`]: a categorical feature, coded `0..levels` (docs/MATH.md, section 6).
pub const KIND_CATEGORICAL: u8 = 2;

/// The features whose values lie on a grid (format version 4): integers on
/// the multiples of a step, categorical features on the codes of their
/// levels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GridWire<'a> {
    /// `D` bytes: [`KIND_PLAIN`], [`KIND_INTEGER`] or [`KIND_CATEGORICAL`].
    #[serde(borrow)]
    pub kind: &'a [u8],
    /// `D` steps (`f32` LE): positive and finite for an integer feature, 1
    /// for a categorical one, 0 otherwise.
    #[serde(borrow)]
    pub step: &'a [u8],
    /// `D` bytes: the number of levels of a categorical feature (at least
    /// 2), 0 otherwise.
    #[serde(borrow)]
    pub n_levels: &'a [u8],
    /// The level names of the categorical features, feature after feature
    /// and in code order, separated by `'\n'`, none empty (empty if there is
    /// no categorical feature).
    #[serde(borrow)]
    pub levels: &'a str,
}

/// A whole trained model as it is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BundleWire<'a> {
    /// Provenance and metrics.
    #[serde(borrow)]
    pub meta: MetaWire<'a>,
    /// Features and the causal graph.
    #[serde(borrow)]
    pub features: FeaturesWire<'a>,
    /// The shared standardization.
    #[serde(borrow)]
    pub scaler: ScalerWire<'a>,
    /// The causal normalizing flow.
    #[serde(borrow)]
    pub flow: FlowWire<'a>,
    /// The classifier, on standardized inputs, ending in a sigmoid.
    #[serde(borrow)]
    pub classifier: MlpWire<'a>,
    /// The CARMA mask and action networks; `None` in a bundle that holds only
    /// a flow and a classifier (for instance one imported from PyTorch before
    /// CARMA is trained on it). Such a bundle abducts, inverts and classifies
    /// but cannot recommend.
    #[serde(borrow)]
    pub carma: Option<CarmaWire<'a>>,
    /// The integer and categorical features; `None` if there are none (then
    /// the bundle is written as version 3). Serialized after the rest of the
    /// body, in version 4 only.
    #[serde(skip)]
    pub grid: Option<GridWire<'a>>,
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in bytes {
        c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

impl<'a> BundleWire<'a> {
    /// Writes the framed bundle into `out` and returns the number of bytes used.
    ///
    /// Needs no allocator: a too-small `out` gives [`FormatError::BufferTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        if out.len() < HEADER_LEN + TRAILER_LEN {
            return Err(FormatError::BufferTooSmall.into());
        }
        let (head, rest) = out.split_at_mut(HEADER_LEN);
        let room = rest.len() - TRAILER_LEN;
        let body = &mut rest[..room];
        let mut body_len = postcard::to_slice(self, body)
            .map_err(|_| Error::from(FormatError::BufferTooSmall))?
            .len();
        let version = match &self.grid {
            None => OLDEST_FORMAT_VERSION,
            Some(grid) => {
                body_len += postcard::to_slice(grid, &mut body[body_len..])
                    .map_err(|_| Error::from(FormatError::BufferTooSmall))?
                    .len();
                FORMAT_VERSION
            }
        };
        head[..8].copy_from_slice(&MAGIC);
        head[8..10].copy_from_slice(&version.to_le_bytes());
        let len32 =
            u32::try_from(body_len).map_err(|_| Error::from(FormatError::BufferTooSmall))?;
        head[10..14].copy_from_slice(&len32.to_le_bytes());
        let end = HEADER_LEN + body_len;
        let crc = crc32(&out[..end]);
        out[end..end + TRAILER_LEN].copy_from_slice(&crc.to_le_bytes());
        Ok(end + TRAILER_LEN)
    }

    /// Checks the framing (magic, version, length, CRC) and decodes the body,
    /// borrowing every array from `bytes`. Shapes are not checked here; see
    /// `Bundle::new` for the full validation.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic.into());
        }
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated.into());
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            }
            .into());
        }
        let body_len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        let end = HEADER_LEN
            .checked_add(body_len)
            .ok_or(FormatError::Truncated)?;
        let total = end.checked_add(TRAILER_LEN).ok_or(FormatError::Truncated)?;
        if bytes.len() < total {
            return Err(FormatError::Truncated.into());
        }
        if bytes.len() > total {
            return Err(FormatError::TrailingBytes.into());
        }
        let stored =
            u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if crc32(&bytes[..end]) != stored {
            return Err(FormatError::ChecksumMismatch.into());
        }
        let (mut wire, mut rest) =
            postcard::take_from_bytes::<BundleWire<'a>>(&bytes[HEADER_LEN..end])
                .map_err(|_| Error::from(FormatError::Malformed))?;
        if version == FORMAT_VERSION {
            let (grid, after) = postcard::take_from_bytes::<GridWire<'a>>(rest)
                .map_err(|_| Error::from(FormatError::Malformed))?;
            wire.grid = Some(grid);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(FormatError::TrailingBytes.into());
        }
        Ok(wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_to_wire_stores_columns_one_after_the_other() {
        // W = [[1, 2, 3], [4, 5, 6]] (2 outputs, 3 inputs), row-major.
        let mut wire = [0.0; 6];
        assert!(weights_to_wire(
            3,
            2,
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &mut wire
        ));
        assert_eq!(wire, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(wire[weight_index(2, 1, 2)], 6.0);
        let mut short = [9.0; 5];
        assert!(!weights_to_wire(3, 2, &[0.0; 6], &mut short));
        assert_eq!(short, [9.0; 5]);
        assert!(!weights_to_wire(3, 2, &[0.0; 5], &mut wire));
        assert!(weights_to_wire(0, 4, &[], &mut []));
    }
}
