//! Typed errors. No heap: every variant carries plain fields.

use core::fmt;

use crate::format::Activation;

/// Why bundle bytes could not be framed or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with the bundle magic bytes.
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The bytes end before the declared length.
    Truncated,
    /// Bytes follow the declared end of the bundle.
    TrailingBytes,
    /// The CRC-32 does not match: the file was corrupted or tampered with.
    ChecksumMismatch,
    /// The body is not a valid postcard encoding of a bundle.
    Malformed,
    /// The output buffer given to `encode` is too small.
    BufferTooSmall,
}

/// A part of the bundle, named in a [`ValidationError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    /// `features.names`.
    Names,
    /// `features.binary`.
    Binary,
    /// `features.actionable`.
    Actionable,
    /// `features.parents`.
    Parents,
    /// `features.order`.
    Order,
    /// `features.min` and `features.max`.
    Bounds,
    /// `features.direction`.
    Direction,
    /// `grid` (kinds, steps, levels).
    Grid,
    /// `scaler.mean`.
    Mean,
    /// `scaler.std`.
    Std,
    /// `meta.metrics`.
    Metrics,
    /// `flow` (dims, params, layer count).
    Flow,
    /// `flow.ready`, the inversion schedule.
    FlowReady,
    /// `classifier`.
    Classifier,
    /// `carma.mask_net`.
    MaskNet,
    /// `carma.action_net`.
    ActionNet,
    /// `carma.clamp_lo` and `carma.clamp_hi`.
    Clamp,
    /// `carma.cost_range`.
    CostRange,
    /// `carma.weights`.
    Weights,
}

/// Why a decoded bundle is not a usable model. Indices count values (not bytes)
/// within the named section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// The number of features `D` is 0 or above `MAX_FEATURES`.
    FeatureCount {
        /// `D` found (the length of `features.binary`).
        found: usize,
        /// The largest supported `D`.
        max: usize,
    },
    /// A section has the wrong number of bytes.
    Length {
        /// Which section.
        section: Section,
        /// Bytes required.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The names are not `D` non-empty names separated by `'\n'`.
    Names {
        /// Names required (`D`).
        expected: usize,
        /// Names found.
        found: usize,
        /// The first empty name, if any.
        empty: Option<usize>,
    },
    /// A flag byte is neither 0 nor 1.
    NotAFlag {
        /// Which section.
        section: Section,
        /// Byte index.
        index: usize,
    },
    /// `features.order` is not a permutation of `0..D`.
    OrderNotPermutation {
        /// Position in the order of the first bad or repeated entry.
        position: usize,
    },
    /// A parent does not come before its child in the order (this covers
    /// self loops and cycles).
    ParentNotBefore {
        /// The child feature.
        feature: usize,
        /// The parent feature.
        parent: usize,
    },
    /// A value is NaN or infinite.
    NotFinite {
        /// Which section.
        section: Section,
        /// Value index.
        index: usize,
    },
    /// A value is outside its allowed range (`std` and `cost_range` must be
    /// positive, `weights` non-negative, `clamp_lo < clamp_hi`, a feature's
    /// `min <= max`, a direction byte 0, 1 or 2).
    OutOfRange {
        /// Which section.
        section: Section,
        /// Value index (0 for the clamp).
        index: usize,
    },
    /// A network's layer widths do not fit: too few layers, a zero width, or
    /// an input or output width other than the bundle requires.
    Dims {
        /// Which network.
        section: Section,
        /// Index into the network's `dims` (or byte length / 2 if too short).
        index: usize,
        /// Width required (0 when any non-zero width would do).
        expected: usize,
        /// Width found.
        found: usize,
    },
    /// A network's activation is not the one the model needs.
    Activation {
        /// Which network.
        section: Section,
        /// The activation required.
        expected: Activation,
        /// The activation found.
        found: Activation,
    },
    /// `flow.layers` is zero.
    NoFlowLayers,
    /// A network (or the flow's stack) has more layers than `MAX_LAYERS`.
    TooDeep {
        /// Which network.
        section: Section,
        /// Layers found.
        found: usize,
        /// The largest number allowed.
        max: usize,
    },
    /// A `ready` schedule decreases or does not end at the layer width.
    ReadyNotMonotonic {
        /// Flow layer.
        layer: usize,
        /// Hidden layer of its hyper-network.
        hidden: usize,
        /// Step `t` (0..=D) where the count is wrong.
        step: usize,
    },
    /// A weight is non-zero although the inversion schedule says its input is
    /// not known yet when its unit is computed: inverting would not be exact.
    ScheduleViolation {
        /// Flow layer.
        layer: usize,
        /// Weight matrix of the hyper-network (the last one produces the outputs).
        matrix: usize,
        /// Row (unit or output) of that matrix.
        row: usize,
        /// Column (input or previous unit) of that matrix.
        column: usize,
    },
}

/// Which argument of an operation is wrong, in an [`InputError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Argument {
    /// The input vector (`x`, `x_std` or `z`).
    Input,
    /// The output slice.
    Output,
    /// A per-request bound (`Limits::min` or `Limits::max`).
    Limits,
}

/// Why the caller's arguments to an operation were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// A slice has the wrong length.
    Length {
        /// Which argument.
        argument: Argument,
        /// Length required.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// An input value is NaN or infinite.
    NotFinite {
        /// Feature index.
        index: usize,
    },
    /// A binary feature is neither exactly 0 nor exactly 1.
    NotBinary {
        /// Feature index.
        index: usize,
    },
    /// An integer feature is not a multiple of its step, or a categorical
    /// one not the code of one of its levels.
    OffGrid {
        /// Feature index.
        index: usize,
    },
    /// A feature set names a feature the model does not have.
    UnknownFeature {
        /// The feature index (`>= D`).
        index: usize,
    },
    /// The scratch area is shorter than `Bundle::scratch_len`.
    ScratchTooSmall {
        /// `f32` values required.
        needed: usize,
        /// `f32` values given.
        found: usize,
    },
    /// A refinement's `min_prob` is not in `[0.5, 1]`.
    BadRefine,
    /// Per-request limits that make no sense for a feature: a NaN bound,
    /// `min > max`, or both increase- and decrease-only.
    BadLimits {
        /// Feature index.
        index: usize,
    },
}

/// A result of an operation, named in [`Error::NotFinite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Quantity {
    /// The standardized input `(x - mean) / std`.
    Standardized,
    /// Values in original units `x~ * std + mean`.
    Original,
    /// The latent `z = T(x~)`.
    Latent,
    /// The log-density `log p(x~)`.
    LogLikelihood,
    /// The inverse `x~ = T^-1(z)` (a reconstruction or a counterfactual).
    Reconstruction,
    /// The classifier's probability.
    Probability,
    /// The mask network's logits.
    MaskLogits,
    /// The action network's latent shift.
    Action,
    /// The cost of a recommendation.
    Cost,
}

/// Every error the core can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a bundle this build can read.
    Format(FormatError),
    /// The bundle decodes but is not a consistent model.
    Validation(ValidationError),
    /// The arguments of an operation are wrong.
    Input(InputError),
    /// The operation needs the CARMA networks and the bundle has none.
    NoCarma,
    /// A result overflowed to infinity or NaN although every input and
    /// weight is finite: the input is far outside what the model was
    /// trained on, or the weights are extreme. Output slices hold
    /// unspecified values.
    NotFinite(Quantity),
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::Validation(e)
    }
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Error::Input(e)
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::BadMagic => f.write_str("not a CARMA bundle (bad magic bytes)"),
            FormatError::UnsupportedVersion { found, supported } => write!(
                f,
                "bundle format version {found} is not supported (this build reads versions {}-{supported})",
                crate::format::OLDEST_FORMAT_VERSION
            ),
            FormatError::Truncated => f.write_str("bundle is truncated"),
            FormatError::TrailingBytes => {
                f.write_str("unexpected bytes after the end of the bundle")
            }
            FormatError::ChecksumMismatch => {
                f.write_str("bundle checksum mismatch: the file is corrupted or was modified")
            }
            FormatError::Malformed => f.write_str("bundle body is malformed"),
            FormatError::BufferTooSmall => f.write_str("output buffer too small for the bundle"),
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Names => "feature names",
            Section::Binary => "binary flags",
            Section::Actionable => "actionable flags",
            Section::Parents => "parent matrix",
            Section::Order => "topological order",
            Section::Bounds => "feature bounds",
            Section::Direction => "feature directions",
            Section::Grid => "integer and categorical features",
            Section::Mean => "scaler mean",
            Section::Std => "scaler std",
            Section::Metrics => "metrics",
            Section::Flow => "flow",
            Section::FlowReady => "flow inversion schedule",
            Section::Classifier => "classifier",
            Section::MaskNet => "mask network",
            Section::ActionNet => "action network",
            Section::Clamp => "latent clamp",
            Section::CostRange => "cost ranges",
            Section::Weights => "preference weights",
        })
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValidationError::FeatureCount { found, max } => {
                write!(
                    f,
                    "bundle has {found} features; between 1 and {max} are supported"
                )
            }
            ValidationError::Length {
                section,
                expected,
                found,
            } => {
                write!(f, "{section}: expected {expected} bytes, found {found}")
            }
            ValidationError::Names {
                expected,
                found,
                empty,
            } => match empty {
                Some(i) => write!(f, "feature name {i} is empty"),
                None => write!(f, "expected {expected} feature names, found {found}"),
            },
            ValidationError::NotAFlag { section, index } => {
                write!(f, "{section}: byte {index} is neither 0 nor 1")
            }
            ValidationError::OrderNotPermutation { position } => {
                write!(
                    f,
                    "topological order is not a permutation (position {position})"
                )
            }
            ValidationError::ParentNotBefore { feature, parent } => write!(
                f,
                "parent {parent} of feature {feature} does not come before it in the topological order"
            ),
            ValidationError::NotFinite { section, index } => {
                write!(f, "{section}: value {index} is not finite")
            }
            ValidationError::OutOfRange { section, index } => {
                write!(f, "{section}: value {index} is out of range")
            }
            ValidationError::Dims {
                section,
                index,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{section}: width {index} is {found}, expected {expected}"
                )
            }
            ValidationError::Activation {
                section,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{section}: output activation is {found:?}, expected {expected:?}"
                )
            }
            ValidationError::NoFlowLayers => f.write_str("flow has no layers"),
            ValidationError::TooDeep {
                section,
                found,
                max,
            } => write!(f, "{section}: {found} layers, at most {max} are supported"),
            ValidationError::ReadyNotMonotonic {
                layer,
                hidden,
                step,
            } => write!(
                f,
                "flow layer {layer}, hidden layer {hidden}: inversion schedule is wrong at step {step}"
            ),
            ValidationError::ScheduleViolation {
                layer,
                matrix,
                row,
                column,
            } => write!(
                f,
                "flow layer {layer}, weight matrix {matrix}: weight ({row}, {column}) is non-zero but \
                 its input is not known yet when inverting"
            ),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InputError::Length {
                argument,
                expected,
                found,
            } => {
                let what = match argument {
                    Argument::Input => "input",
                    Argument::Output => "output",
                    Argument::Limits => "limits",
                };
                write!(f, "{what} has length {found}, expected {expected}")
            }
            InputError::NotFinite { index } => write!(f, "input value {index} is not finite"),
            InputError::NotBinary { index } => {
                write!(f, "binary feature {index} is neither 0 nor 1")
            }
            InputError::OffGrid { index } => write!(
                f,
                "feature {index} is not on its grid (a multiple of its step, or a level's code)"
            ),
            InputError::UnknownFeature { index } => write!(f, "feature {index} does not exist"),
            InputError::ScratchTooSmall { needed, found } => {
                write!(f, "scratch has {found} values, {needed} are needed")
            }
            InputError::BadRefine => {
                f.write_str("the refinement's minimum probability must be in [0.5, 1]")
            }
            InputError::BadLimits { index } => write!(
                f,
                "the limits of feature {index} are contradictory (NaN, min above max, or both increase- and decrease-only)"
            ),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::Standardized => "standardized input",
            Quantity::Original => "value in original units",
            Quantity::Latent => "latent",
            Quantity::LogLikelihood => "log-likelihood",
            Quantity::Reconstruction => "inverse of the flow",
            Quantity::Probability => "classifier probability",
            Quantity::MaskLogits => "mask network output",
            Quantity::Action => "latent shift",
            Quantity::Cost => "cost",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(e) => write!(f, "{e}"),
            Error::Validation(e) => write!(f, "invalid bundle: {e}"),
            Error::Input(e) => write!(f, "{e}"),
            Error::NoCarma => f.write_str("the bundle has no CARMA networks: it cannot recommend"),
            Error::NotFinite(q) => write!(
                f,
                "the {q} is not finite: the input is too far outside the model's range"
            ),
        }
    }
}

impl core::error::Error for FormatError {}
impl core::error::Error for ValidationError {}
impl core::error::Error for InputError {}
impl core::error::Error for Error {}
