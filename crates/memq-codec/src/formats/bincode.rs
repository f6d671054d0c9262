//! The bincode format: bincode 1.3 with `DefaultOptions` (varint integers, little endian), the
//! exact encoding tokio-memq 1.0.0 wrote.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::depth::DepthGuard;
use crate::error::{CodecError, ErrorKind};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::DefaultOptions::new()
        .serialize_into(out, value)
        .map_err(|e| CodecError::with_source(ErrorKind::Serialize, "bincode serialization failed", e))
}

/// Decodes from a slice: string and byte lengths are checked against the bytes present before
/// anything is allocated, so no length field can make this allocate more than the input.
///
/// bincode is not self-describing: it nests as deep as the Rust type says, and a recursive
/// type (a `Box`ed enum, an `Option<Box<_>>` chain) lets every byte of input open one more
/// level. The seed reads the value through the depth limit, which is the only bound here.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    strict: bool,
    max_depth: usize,
) -> Result<T, CodecError> {
    let options = bincode::DefaultOptions::new();
    let guard = DepthGuard::new(max_depth, bytes.len());
    let result = if strict {
        options
            .reject_trailing_bytes()
            .deserialize_seed(guard.seed::<T>(), bytes)
    } else {
        options
            .allow_trailing_bytes()
            .deserialize_seed(guard.seed::<T>(), bytes)
    };
    result.map_err(|e| {
        if guard.tripped() {
            return guard.error(e);
        }
        // bincode 1.3 (a frozen release) reports trailing bytes with this one message.
        let trailing = matches!(*e, bincode::ErrorKind::Custom(ref m) if m.contains("bytes remaining"));
        if trailing {
            CodecError::msg(
                ErrorKind::TrailingBytes,
                "bytes left over after the bincode value",
            )
        } else {
            CodecError::with_source(ErrorKind::Deserialize, "bincode deserialization failed", e)
        }
    })
}
