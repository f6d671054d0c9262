//! Decoding byte payloads into typed values.

use memq_codec::{Codec, DecodeLimits};
use serde::de::DeserializeOwned;

use crate::error::DecodeError;
use crate::format::SerializationFormat;

/// Decodes `bytes` as a `T`: with the codec that encoded them when known
/// (it knows the compression and processors), otherwise by the frame
/// header, or as a bare payload in `format` when there is none.
///
/// The limits are the first of: `explicit` (a receive's own), the codec's
/// own (when it has any), `queue`'s (the queue the message was received
/// from, when it has its own), the defaults.
pub(crate) fn decode_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    format: &SerializationFormat,
    codec: Option<&Codec>,
    explicit: Option<&DecodeLimits>,
    queue: Option<&DecodeLimits>,
) -> Result<T, DecodeError> {
    match codec {
        Some(codec) => {
            let own = *codec.limits() != DecodeLimits::default();
            match explicit.or(if own { None } else { queue }) {
                Some(limits) => codec.decode_with_limits(bytes, limits),
                None => codec.decode(bytes),
            }
        }
        None => memq_codec::decode_frame(bytes, format, explicit.or(queue).unwrap_or(&DecodeLimits::new())),
    }
    .map_err(DecodeError::from)
}
