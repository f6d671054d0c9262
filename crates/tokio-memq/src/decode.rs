//! Decoding byte payloads into typed values.

use serde::de::DeserializeOwned;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::format::SerializationFormat;

/// Decodes `bytes` in `format` as a `T`.
pub(crate) fn decode_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    format: &SerializationFormat,
) -> Result<T, DecodeError> {
    match format {
        SerializationFormat::Json => serde_json::from_slice(bytes)
            .map_err(|e| DecodeError::new(DecodeErrorKind::Malformed, format!("invalid json: {e}"))),
        other => Err(DecodeError::new(
            DecodeErrorKind::UnsupportedFormat,
            format!("no decoder for {} payloads in this build", other.as_str()),
        )),
    }
}
