//! The formats, one per file, behind one dispatching [`Engine`].

#[cfg(feature = "bincode")]
mod bincode;
pub(crate) mod custom;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "msgpack")]
mod msgpack;
mod raw;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::SerializationConfig;
use crate::error::{CodecError, ErrorKind};
use crate::format::SerializationFormat;
use crate::registry;
use custom::CustomFormat;

/// A format ready to encode and decode: the format and the settings that affect its output.
#[derive(Clone)]
pub(crate) enum Engine {
    #[cfg(feature = "bincode")]
    Bincode,
    #[cfg(feature = "json")]
    Json {
        pretty: bool,
    },
    #[cfg(feature = "msgpack")]
    MessagePack {
        struct_map: bool,
    },
    Raw,
    Custom {
        format: Arc<dyn CustomFormat>,
        config: SerializationConfig,
    },
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "bincode")]
            Engine::Bincode => f.write_str("Bincode"),
            #[cfg(feature = "json")]
            Engine::Json { pretty } => f.debug_struct("Json").field("pretty", pretty).finish(),
            #[cfg(feature = "msgpack")]
            Engine::MessagePack { struct_map } => f
                .debug_struct("MessagePack")
                .field("struct_map", struct_map)
                .finish(),
            Engine::Raw => f.write_str("Raw"),
            Engine::Custom { format, .. } => f.debug_tuple("Custom").field(&format.name()).finish(),
        }
    }
}

#[cfg(not(all(feature = "bincode", feature = "json", feature = "msgpack")))]
fn disabled(format: &SerializationFormat, feature: &str) -> CodecError {
    CodecError::msg(
        ErrorKind::UnsupportedFormat,
        format!("the {format} format needs the `{feature}` feature of memq-codec"),
    )
}

fn mismatch(format: &SerializationFormat, config: &SerializationConfig) -> CodecError {
    CodecError::msg(
        ErrorKind::InvalidConfig,
        format!("the {format} format cannot take the configuration {config:?}"),
    )
}

impl Engine {
    /// The engine that writes `format` with `config`, checking that they fit together.
    pub(crate) fn new(
        format: &SerializationFormat,
        config: &SerializationConfig,
    ) -> Result<Engine, CodecError> {
        use SerializationConfig as C;
        use SerializationFormat as F;
        let fits = matches!(
            (format, config),
            (_, C::Default)
                | (F::Bincode, C::Bincode(_))
                | (F::Json, C::Json(_))
                | (F::MessagePack, C::MessagePack(_))
                | (F::Custom(_), C::Custom(_))
        );
        if !fits {
            return Err(mismatch(format, config));
        }
        if let F::Custom(name) = format {
            let custom = registry::format(name).ok_or_else(|| {
                CodecError::msg(
                    ErrorKind::UnknownFormat,
                    format!("no custom format named {name:?} is registered"),
                )
            })?;
            return Self::custom(custom, config.clone());
        }
        let engine = Self::for_format(format)?;
        Ok(match (engine, config) {
            #[cfg(feature = "json")]
            (Engine::Json { .. }, C::Json(c)) => Engine::Json { pretty: c.pretty },
            #[cfg(feature = "msgpack")]
            (Engine::MessagePack { .. }, C::MessagePack(c)) => Engine::MessagePack {
                struct_map: c.struct_map,
            },
            (engine, _) => engine,
        })
    }

    /// The engine for a custom format object.
    pub(crate) fn custom(
        format: Arc<dyn CustomFormat>,
        config: SerializationConfig,
    ) -> Result<Engine, CodecError> {
        let len = format.name().len();
        if len == 0 || len > 255 {
            return Err(CodecError::msg(
                ErrorKind::InvalidConfig,
                format!("a custom format name must be 1 to 255 bytes long, not {len}"),
            ));
        }
        Ok(Engine::Custom { format, config })
    }

    /// The engine that reads `format` (decoding does not depend on any configuration).
    pub(crate) fn for_format(format: &SerializationFormat) -> Result<Engine, CodecError> {
        match format {
            #[cfg(feature = "bincode")]
            SerializationFormat::Bincode => Ok(Engine::Bincode),
            #[cfg(not(feature = "bincode"))]
            SerializationFormat::Bincode => Err(disabled(format, "bincode")),
            #[cfg(feature = "json")]
            SerializationFormat::Json => Ok(Engine::Json { pretty: false }),
            #[cfg(not(feature = "json"))]
            SerializationFormat::Json => Err(disabled(format, "json")),
            #[cfg(feature = "msgpack")]
            SerializationFormat::MessagePack => Ok(Engine::MessagePack { struct_map: false }),
            #[cfg(not(feature = "msgpack"))]
            SerializationFormat::MessagePack => Err(disabled(format, "msgpack")),
            SerializationFormat::Raw => Ok(Engine::Raw),
            SerializationFormat::Custom(_) => Self::new(format, &SerializationConfig::Default),
            SerializationFormat::Native => Err(CodecError::msg(
                ErrorKind::UnsupportedFormat,
                "native values are kept as they are by the queue, never encoded \
                 (bytes tagged native decode only with a frame header that names their format)",
            )),
        }
    }

    /// Whether this engine reads `format`.
    pub(crate) fn reads(&self, format: &SerializationFormat) -> bool {
        match (self, format) {
            #[cfg(feature = "bincode")]
            (Engine::Bincode, SerializationFormat::Bincode) => true,
            #[cfg(feature = "json")]
            (Engine::Json { .. }, SerializationFormat::Json) => true,
            #[cfg(feature = "msgpack")]
            (Engine::MessagePack { .. }, SerializationFormat::MessagePack) => true,
            (Engine::Raw, SerializationFormat::Raw) => true,
            (Engine::Custom { format: own, .. }, SerializationFormat::Custom(name)) => own.name() == name,
            _ => false,
        }
    }

    /// Whether this is a custom format (what a version 1 frame's code 255 means).
    pub(crate) fn is_custom(&self) -> bool {
        matches!(self, Engine::Custom { .. })
    }

    /// Appends `value`, serialized, to `out`.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match self {
            #[cfg(feature = "bincode")]
            Engine::Bincode => bincode::encode(value, out),
            #[cfg(feature = "json")]
            Engine::Json { pretty } => json::encode(value, *pretty, out),
            #[cfg(feature = "msgpack")]
            Engine::MessagePack { struct_map } => msgpack::encode(value, *struct_map, out),
            Engine::Raw => raw::encode(value, out),
            Engine::Custom { format, config } => custom::encode(&**format, config, value, out),
        }
    }

    /// Reads a `T` from `bytes`, nesting at most `max_depth` levels; with `strict`, bytes left
    /// after the value are an error.
    ///
    /// Taking the bytes as a `Cow` lets the raw format hand an owned buffer (a decompressed
    /// payload) to a `Bytes` or `Vec<u8>` visitor without copying it. The raw format has no
    /// nesting, so it ignores `max_depth`.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        bytes: Cow<'_, [u8]>,
        strict: bool,
        max_depth: usize,
    ) -> Result<T, CodecError> {
        // Only some formats use `strict`.
        let _ = strict;
        match self {
            #[cfg(feature = "bincode")]
            Engine::Bincode => bincode::decode(&bytes, strict, max_depth),
            #[cfg(feature = "json")]
            Engine::Json { .. } => json::decode(&bytes, strict, max_depth),
            #[cfg(feature = "msgpack")]
            Engine::MessagePack { .. } => msgpack::decode(&bytes, strict, max_depth),
            Engine::Raw => raw::decode(bytes),
            Engine::Custom { format, .. } => custom::decode(&**format, &bytes, max_depth),
        }
    }
}
