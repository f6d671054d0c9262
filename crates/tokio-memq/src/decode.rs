//! Decoding byte payloads into typed values.

use memq_codec::{Codec, DecodeLimits};
use serde::de::DeserializeOwned;

use crate::error::DecodeError;
use crate::format::SerializationFormat;

/// Decodes `bytes` as a `T`: with the codec that encoded them when known
/// (it knows the compression and processors), otherwise by the frame
/// header, or as a bare payload in `format` when there is none.
pub(crate) fn decode_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    format: &SerializationFormat,
    codec: Option<&Codec>,
) -> Result<T, DecodeError> {
    match codec {
        Some(codec) => codec.decode(bytes),
        None => memq_codec::decode_frame(bytes, format, &DecodeLimits::new()),
    }
    .map_err(DecodeError::from)
}
