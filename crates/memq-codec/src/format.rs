//! Which serialization format a payload is in, and the one-byte code a frame header uses for it.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// The serialization format of a payload (the 1.0.0 enum, plus [`Raw`](SerializationFormat::Raw)).
///
/// | variant | frame code | needs feature |
/// |---|---:|---|
/// | `Bincode` | 0 | `bincode` |
/// | `Json` | 1 | `json` |
/// | `MessagePack` | 2 | `msgpack` |
/// | `Native` | 3 (never written) | - |
/// | `Raw` | 4 (frame version 2 only) | - |
/// | `Custom(name)` | 255 | - (a registered [`CustomFormat`](crate::CustomFormat)) |
///
/// `Native` names a Rust value kept as it is (`Arc<T>`) by the queue; it is never serialized,
/// so a [`Codec`](crate::Codec) cannot be built for it.
///
/// # Changes from 1.0
///
/// `Raw` is new: the payload is the bytes themselves, with no serialization. A topic
/// configured as raw never looks for a frame header unless told to, so raw bytes that happen
/// to begin with `TMQ` are not misread. Because of that addition the enum is now
/// `#[non_exhaustive]`: a `match` on it needs a `_` arm.
///
/// # Examples
///
/// ```
/// use memq_codec::SerializationFormat;
///
/// let format: SerializationFormat = "msgpack".parse().unwrap();
/// assert_eq!(format, SerializationFormat::MessagePack);
/// assert_eq!(format.as_str(), "messagepack");
/// assert_eq!("protobuf".parse::<SerializationFormat>().unwrap(), SerializationFormat::Custom("protobuf".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SerializationFormat {
    /// bincode 1.3 with `DefaultOptions` (varint integers, little endian), as 1.0.0 wrote it.
    Bincode,
    /// JSON (serde_json). JSON has no NaN or infinity: serde_json writes non-finite floats
    /// as `null`, which reads back as `None` in an `Option<f64>` and fails to decode as a
    /// bare `f64`. Use bincode or MessagePack for values that may hold them.
    Json,
    /// MessagePack (rmp-serde).
    MessagePack,
    /// A Rust value stored as it is (`Arc<T>`) by the queue, never serialized.
    Native,
    /// A format registered by name through [`SerializationFactory::register_format`](crate::SerializationFactory::register_format).
    Custom(String),
    /// The payload is the bytes themselves: a `Vec<u8>`, `Bytes`, `&[u8]`, `String` or `&str`.
    Raw,
}

/// Frame code of [`SerializationFormat::Bincode`].
pub(crate) const CODE_BINCODE: u8 = 0;
/// Frame code of [`SerializationFormat::Json`].
pub(crate) const CODE_JSON: u8 = 1;
/// Frame code of [`SerializationFormat::MessagePack`].
pub(crate) const CODE_MSGPACK: u8 = 2;
/// Frame code 1.0.0 assigned to [`SerializationFormat::Native`]; never written by this crate.
pub(crate) const CODE_NATIVE: u8 = 3;
/// Frame code of [`SerializationFormat::Raw`] (frame version 2 only).
pub(crate) const CODE_RAW: u8 = 4;
/// Frame code of [`SerializationFormat::Custom`].
pub(crate) const CODE_CUSTOM: u8 = 255;

impl SerializationFormat {
    /// The format's name: `"bincode"`, `"json"`, `"messagepack"`, `"native"`, `"raw"`, or the
    /// custom format's own name.
    pub fn as_str(&self) -> &str {
        match self {
            SerializationFormat::Bincode => "bincode",
            SerializationFormat::Json => "json",
            SerializationFormat::MessagePack => "messagepack",
            SerializationFormat::Native => "native",
            SerializationFormat::Custom(name) => name,
            SerializationFormat::Raw => "raw",
        }
    }

    /// The frame header code of this format.
    pub(crate) fn code(&self) -> u8 {
        match self {
            SerializationFormat::Bincode => CODE_BINCODE,
            SerializationFormat::Json => CODE_JSON,
            SerializationFormat::MessagePack => CODE_MSGPACK,
            SerializationFormat::Native => CODE_NATIVE,
            SerializationFormat::Custom(_) => CODE_CUSTOM,
            SerializationFormat::Raw => CODE_RAW,
        }
    }
}

impl fmt::Display for SerializationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SerializationFormat {
    type Err = Infallible;

    /// Parses a format name as 1.0.0 did, case-insensitively: `bincode` (or `binary`), `json`,
    /// `msgpack` (or `messagepack`), `native`, `raw`; any other name is a custom format.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bincode" | "binary" => SerializationFormat::Bincode,
            "json" => SerializationFormat::Json,
            "msgpack" | "messagepack" => SerializationFormat::MessagePack,
            "native" => SerializationFormat::Native,
            "raw" => SerializationFormat::Raw,
            _ => SerializationFormat::Custom(s.to_owned()),
        })
    }
}
