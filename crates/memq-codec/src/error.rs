//! The one error type of this crate: opaque, with a [`kind`](CodecError::kind) to match on.
//!
//! Like `serde_json::Error`, [`CodecError`] is a boxed inner value (one pointer wide, so a
//! `Result<T, CodecError>` stays small) and keeps the error types of the libraries underneath
//! (bincode, serde_json, rmp-serde, flate2, zstd) out of this crate's public API: they are
//! reachable only as a `dyn Error` through [`source`](std::error::Error::source).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

/// What went wrong, as a value to match on.
///
/// Every kind is distinct, so a caller (or a test) can tell a corrupted frame from a type
/// mismatch, or a decompression bomb from a truncated message.
///
/// # Examples
///
/// ```
/// use memq_codec::{decode_frame, DecodeLimits, ErrorKind, SerializationFormat};
///
/// // A frame header with version 9, which no release has written.
/// let frame = b"TMQ\x09\x01\x00{}";
/// let err = decode_frame::<u32>(frame, &SerializationFormat::Json, &DecodeLimits::default())
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::UnknownVersion);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A frame starts with `TMQ` but its version byte names no known frame version.
    UnknownVersion,
    /// A frame names a format code this crate does not know, or a custom format that is not
    /// registered.
    UnknownFormat,
    /// A frame names a compression code this crate does not know.
    UnknownCompression,
    /// The format is known but cannot be used here: its cargo feature is disabled, or it is
    /// [`Native`](crate::SerializationFormat::Native), which is never serialized.
    UnsupportedFormat,
    /// The compression is known but its cargo feature is disabled.
    UnsupportedCompression,
    /// The codec requires a frame header and the input has none.
    MissingHeader,
    /// The input ends before the frame (or the compressed stream) does.
    Truncated,
    /// The input goes on after the end of the frame or of its compressed stream.
    TrailingBytes,
    /// The frame's checksum does not match its contents.
    ChecksumMismatch,
    /// Decoding would produce more than [`DecodeLimits::max_decoded_size`](crate::DecodeLimits)
    /// bytes, or more elements than its payload can back (see
    /// [`DecodeLimits`](crate::DecodeLimits)), or a payload is too large for the frame's
    /// length field.
    TooLarge,
    /// The value nests deeper than [`DecodeLimits::max_depth`](crate::DecodeLimits::max_depth)
    /// allows (or, in JSON, deeper than serde_json's own limit of 128 levels).
    TooDeep,
    /// The compressed data is corrupt.
    Decompress,
    /// Compression failed while encoding.
    Compress,
    /// The value could not be serialized (for example a map with non-string keys in JSON, or a
    /// non-byte value in the raw format).
    Serialize,
    /// The payload could not be deserialized into the requested type.
    Deserialize,
    /// A pre- or post-processor returned an error.
    Processor,
    /// The format, its configuration and the pipeline do not fit together (a JSON format with
    /// a bincode configuration, a gzip level above 9, ...).
    InvalidConfig,
    /// A version 3 frame's record headers section is malformed (a length past its end, a
    /// count that does not match, a name that is not UTF-8).
    InvalidHeaders,
}

impl ErrorKind {
    /// A short lowercase description of the kind, as used in error messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memq_codec::ErrorKind::ChecksumMismatch.as_str(), "checksum mismatch");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UnknownVersion => "unknown frame version",
            ErrorKind::UnknownFormat => "unknown format",
            ErrorKind::UnknownCompression => "unknown compression",
            ErrorKind::UnsupportedFormat => "unsupported format",
            ErrorKind::UnsupportedCompression => "unsupported compression",
            ErrorKind::MissingHeader => "missing frame header",
            ErrorKind::Truncated => "truncated input",
            ErrorKind::TrailingBytes => "trailing bytes",
            ErrorKind::ChecksumMismatch => "checksum mismatch",
            ErrorKind::TooLarge => "too large",
            ErrorKind::TooDeep => "too deep",
            ErrorKind::Decompress => "corrupt compressed data",
            ErrorKind::Compress => "compression failed",
            ErrorKind::Serialize => "serialization failed",
            ErrorKind::Deserialize => "deserialization failed",
            ErrorKind::Processor => "processor failed",
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::InvalidHeaders => "invalid record headers",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible operation in this crate.
///
/// Match on [`kind`](CodecError::kind); the message (its `Display`) says what exactly was
/// wrong, and [`source`](std::error::Error::source) gives the underlying library's error
/// where there is one.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
///
/// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?;
/// let err = codec.decode::<u32>(b"\"not a number\"").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Deserialize);
/// assert!(err.to_string().starts_with("json deserialization failed: invalid type"));
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
pub struct CodecError {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl CodecError {
    /// Creates an error of `kind` caused by `error`.
    ///
    /// This is for the code this crate calls back: a [`ByteProcessor`](crate::ByteProcessor)
    /// or a [`CustomFormat`](crate::CustomFormat) reports its failures with it. `error` may be
    /// any error type, a `String` or a `&str`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{CodecError, ErrorKind};
    ///
    /// let err = CodecError::new(ErrorKind::Processor, "key not loaded");
    /// assert_eq!(err.kind(), ErrorKind::Processor);
    /// assert_eq!(err.to_string(), "processor failed: key not loaded");
    /// ```
    pub fn new<E>(kind: ErrorKind, error: E) -> CodecError
    where
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        CodecError {
            inner: Box::new(Inner {
                kind,
                message: Cow::Borrowed(kind.as_str()),
                source: Some(error.into()),
            }),
        }
    }

    /// An error with a message and no underlying cause.
    pub(crate) fn msg(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> CodecError {
        CodecError {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                source: None,
            }),
        }
    }

    /// An error with a message and an underlying cause.
    pub(crate) fn with_source<E>(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: E,
    ) -> CodecError
    where
        E: StdError + Send + Sync + 'static,
    {
        CodecError {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                source: Some(Box::new(source)),
            }),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)?;
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CodecError");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl StdError for CodecError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
