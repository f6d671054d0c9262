//! The MessagePack format (rmp-serde): structs as arrays by default, as maps with
//! `struct_map`.

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

use crate::depth::{self, DepthGuard};
use crate::error::{CodecError, ErrorKind};

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    struct_map: bool,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let result = if struct_map {
        value.serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
    } else {
        value.serialize(&mut rmp_serde::Serializer::new(out))
    };
    result.map_err(|e| CodecError::with_source(ErrorKind::Serialize, "messagepack serialization failed", e))
}

/// Decodes from a slice: string and binary lengths are checked against the bytes present
/// before anything is allocated.
///
/// Nesting is bounded by the depth limit. rmp-serde's own limit (default 1024, which can
/// overflow a 2 MiB stack in unoptimized builds) is set to the same number: it counts arrays
/// and maps as the depth limit does but not enum variants, so it never refuses a value the
/// depth limit accepts; it is kept for any value rmp-serde skips without a visitor.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    strict: bool,
    max_depth: usize,
) -> Result<T, CodecError> {
    let guard = DepthGuard::new(max_depth, bytes.len());
    // rmp-serde's counter is a `u16` (it saturates there) that must start above zero.
    let rmp_depth = max_depth.max(1);
    let fail = |e| {
        if guard.tripped() {
            guard.error(e)
        } else if matches!(e, rmp_serde::decode::Error::DepthLimitExceeded) {
            depth::too_deep(max_depth.min(usize::from(u16::MAX)), e)
        } else {
            CodecError::with_source(ErrorKind::Deserialize, "messagepack deserialization failed", e)
        }
    };
    if strict {
        // Reading through `&mut &[u8]` leaves the unread rest in `rest`.
        let mut rest = bytes;
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        de.set_max_depth(rmp_depth);
        let value = guard.seed::<T>().deserialize(&mut de).map_err(fail)?;
        drop(de);
        if !rest.is_empty() {
            return Err(CodecError::msg(
                ErrorKind::TrailingBytes,
                format!("{} bytes left over after the messagepack value", rest.len()),
            ));
        }
        Ok(value)
    } else {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        de.set_max_depth(rmp_depth);
        guard.seed::<T>().deserialize(&mut de).map_err(fail)
    }
}
