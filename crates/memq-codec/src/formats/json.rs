//! The JSON format (serde_json), compact or pretty.

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

use crate::depth::{self, DepthGuard};
use crate::error::{CodecError, ErrorKind};

/// serde_json's own nesting limit, fixed in the library. It counts arrays and objects as the
/// depth limit does, so it never refuses a value that a depth limit of 128 or less accepts.
const SERDE_JSON_MAX_DEPTH: usize = 128;

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

/// Decodes from a slice, nesting at most `max_depth` levels. serde_json's own limit of 128
/// levels stays on as well (it also bounds the values it skips without a visitor), and is
/// reported as the same error.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    strict: bool,
    max_depth: usize,
) -> Result<T, CodecError> {
    let guard = DepthGuard::new(max_depth, bytes.len());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = guard.seed::<T>().deserialize(&mut de).map_err(|e| {
        if guard.tripped() {
            guard.error(e)
        } else if e.is_syntax() && e.to_string().starts_with("recursion limit exceeded") {
            depth::too_deep(max_depth.min(SERDE_JSON_MAX_DEPTH), e)
        } else {
            CodecError::with_source(ErrorKind::Deserialize, "json deserialization failed", e)
        }
    })?;
    if strict {
        de.end()
            .map_err(|_| CodecError::msg(ErrorKind::TrailingBytes, "bytes left over after the json value"))?;
    }
    Ok(value)
}
