//! The JSON format (serde_json), compact or pretty.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CodecError, ErrorKind};

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    pretty: bool,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let result = if pretty {
        serde_json::to_writer_pretty(out, value)
    } else {
        serde_json::to_writer(out, value)
    };
    result.map_err(|e| CodecError::with_source(ErrorKind::Serialize, "json serialization failed", e))
}

/// Decodes from a slice. serde_json limits nesting to 128 levels, so hostile input cannot
/// exhaust the stack.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], strict: bool) -> Result<T, CodecError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de)
        .map_err(|e| CodecError::with_source(ErrorKind::Deserialize, "json deserialization failed", e))?;
    if strict {
        de.end()
            .map_err(|_| CodecError::msg(ErrorKind::TrailingBytes, "bytes left over after the json value"))?;
    }
    Ok(value)
}
