//! Typed errors. No heap: every variant carries plain fields.

use core::fmt;

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

/// Every error the core can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a bundle this build can read.
    Format(FormatError),
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::BadMagic => f.write_str("not a CARMA bundle (bad magic bytes)"),
            FormatError::UnsupportedVersion { found, supported } => write!(
                f,
                "bundle format version {found} is not supported (this build reads version {supported})"
            ),
            FormatError::Truncated => f.write_str("bundle is truncated"),
            FormatError::TrailingBytes => f.write_str("unexpected bytes after the end of the bundle"),
            FormatError::ChecksumMismatch => {
                f.write_str("bundle checksum mismatch: the file is corrupted or was modified")
            }
            FormatError::Malformed => f.write_str("bundle body is malformed"),
            FormatError::BufferTooSmall => f.write_str("output buffer too small for the bundle"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for FormatError {}
impl core::error::Error for Error {}
