//! Decoding byte payloads into typed values.

use memq_codec::{Codec, DecodeLimits};
use serde::de::DeserializeOwned;

use crate::error::DecodeError;
use crate::format::SerializationFormat;

/// Decodes `bytes` as a `T`: with the codec that encoded them when known
/// (it knows the compression and processors), otherwise by the frame
/// header, or as a bare payload in `format` when there is none.
///
/// `limits` replaces the codec's limits (or the defaults, without a codec)
/// when given.
pub(crate) fn decode_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    format: &SerializationFormat,
    codec: Option<&Codec>,
    limits: Option<&DecodeLimits>,
) -> Result<T, DecodeError> {
    match (codec, limits) {
        (Some(codec), None) => codec.decode(bytes),
        (Some(codec), Some(limits)) => codec.clone().with_limits(*limits).decode(bytes),
        (None, limits) => memq_codec::decode_frame(bytes, format, limits.unwrap_or(&DecodeLimits::new())),
    }
    .map_err(DecodeError::from)
}
