//! Per-format configuration: [`SerializationConfig`] and the structs it carries.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Configuration of the bincode format (the 1.0.0 struct, kept for source compatibility).
///
/// 1.0.0 accepted these fields and ignored them: it always wrote bincode 1.3's
/// `DefaultOptions` encoding (varint integers, little endian). This crate does the same, so
/// that every bincode payload is readable without knowing how it was configured (a frame
/// header records the format, not its options). The fields are kept so that 1.0.0 code that
/// builds a `BincodeConfig` still compiles.
///
/// # Examples
///
/// ```
/// use memq_codec::BincodeConfig;
///
/// let config = BincodeConfig::compact();
/// assert!(config.fixed_int_encoding);
/// assert_eq!(BincodeConfig::new(), BincodeConfig::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BincodeConfig {
    /// Accepted and ignored (as in 1.0.0).
    pub include_field_names: bool,
    /// Accepted and ignored (as in 1.0.0): output is always little endian.
    pub little_endian: bool,
    /// Accepted and ignored (as in 1.0.0).
    pub limit_int_size: Option<u8>,
    /// Accepted and ignored (as in 1.0.0): integers are always varint-encoded.
    pub fixed_int_encoding: bool,
}

impl BincodeConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// 1.0.0's "with field names" preset (no effect on the output).
    pub fn with_field_names() -> Self {
        Self {
            include_field_names: true,
            ..Self::default()
        }
    }

    /// 1.0.0's "little endian" preset (no effect on the output).
    pub fn little_endian() -> Self {
        Self {
            little_endian: true,
            ..Self::default()
        }
    }

    /// 1.0.0's "compact" preset (no effect on the output).
    pub fn compact() -> Self {
        Self {
            include_field_names: false,
            little_endian: true,
            limit_int_size: Some(8),
            fixed_int_encoding: true,
        }
    }
}

/// Configuration of the JSON format.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, JsonConfig, PipelineConfig, SerializationConfig, SerializationFormat};
///
/// let pretty = SerializationConfig::Json(JsonConfig { pretty: true });
/// let codec = Codec::new(SerializationFormat::Json, pretty, PipelineConfig::default())?;
/// let bytes = codec.encode(&vec![1, 2])?;
/// assert_eq!(&bytes[..], b"[\n  1,\n  2\n]");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonConfig {
    /// Write indented, multi-line JSON instead of compact JSON. Decoding accepts both.
    pub pretty: bool,
}

/// Configuration of the MessagePack format.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, MessagePackConfig, PipelineConfig, SerializationConfig, SerializationFormat};
///
/// #[derive(serde::Serialize)]
/// struct Point { x: u8 }
///
/// let as_map = SerializationConfig::MessagePack(MessagePackConfig { struct_map: true });
/// let codec = Codec::new(SerializationFormat::MessagePack, as_map, PipelineConfig::default())?;
/// // fixmap(1), fixstr "x", 7
/// assert_eq!(&codec.encode(&Point { x: 7 })?[..], &[0x81, 0xa1, b'x', 7]);
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessagePackConfig {
    /// Write structs as maps keyed by field name instead of arrays of field values (1.0.0
    /// accepted this option and ignored it; this crate honours it). Decoding accepts both.
    pub struct_map: bool,
}

/// The configuration handed to a format (the 1.0.0 enum).
///
/// `Default` means "the format's default configuration" and fits every format. The other
/// variants must match the format they configure: a [`Codec`](crate::Codec) built for JSON
/// with a `Bincode(..)` configuration is an [`InvalidConfig`](crate::ErrorKind::InvalidConfig)
/// error. `Custom` carries any value for a [`CustomFormat`](crate::CustomFormat), which
/// receives it on every call to [`serialize`](crate::CustomFormat::serialize).
///
/// # Examples
///
/// ```
/// use memq_codec::{JsonConfig, SerializationConfig};
///
/// let config = SerializationConfig::Json(JsonConfig { pretty: false });
/// assert!(matches!(config, SerializationConfig::Json(JsonConfig { pretty: false })));
/// ```
#[derive(Clone, Default)]
pub enum SerializationConfig {
    /// Configuration of [`SerializationFormat::Bincode`](crate::SerializationFormat::Bincode).
    Bincode(BincodeConfig),
    /// Configuration of [`SerializationFormat::Json`](crate::SerializationFormat::Json).
    Json(JsonConfig),
    /// Configuration of [`SerializationFormat::MessagePack`](crate::SerializationFormat::MessagePack).
    MessagePack(MessagePackConfig),
    /// Configuration of a [`SerializationFormat::Custom`](crate::SerializationFormat::Custom)
    /// format, which downcasts it.
    Custom(Arc<dyn Any + Send + Sync>),
    /// The default configuration of whatever the format is.
    #[default]
    Default,
}

impl fmt::Debug for SerializationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerializationConfig::Bincode(c) => f.debug_tuple("Bincode").field(c).finish(),
            SerializationConfig::Json(c) => f.debug_tuple("Json").field(c).finish(),
            SerializationConfig::MessagePack(c) => f.debug_tuple("MessagePack").field(c).finish(),
            SerializationConfig::Custom(_) => f.write_str("Custom(..)"),
            SerializationConfig::Default => f.write_str("Default"),
        }
    }
}
