//! The MessagePack format (rmp-serde): structs as arrays by default, as maps with
//! `struct_map`.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CodecError, ErrorKind};

/// Nesting depth the decoder accepts, as serde_json's; rmp-serde's own default (1024) can
/// overflow a 2 MiB thread stack on recursive types in unoptimized builds.
const MAX_DEPTH: usize = 128;

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
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], strict: bool) -> Result<T, CodecError> {
    let fail = |e| CodecError::with_source(ErrorKind::Deserialize, "messagepack deserialization failed", e);
    if strict {
        // Reading through `&mut &[u8]` leaves the unread rest in `rest`.
        let mut rest = bytes;
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        de.set_max_depth(MAX_DEPTH);
        let value = T::deserialize(&mut de).map_err(fail)?;
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
        de.set_max_depth(MAX_DEPTH);
        T::deserialize(&mut de).map_err(fail)
    }
}
