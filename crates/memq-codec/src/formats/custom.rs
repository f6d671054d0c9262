//! Custom formats: the [`CustomFormat`] trait and the two type-erased handles it works with.
//!
//! A custom format is any serde data format. The codec hands it the value to write as an
//! [`ErasedValue`] (which implements `Serialize`, so it goes straight into the format's
//! serializer) and asks it to read a value by handing it a [`ValueSink`] to feed its
//! deserializer into. Neither handle names a third-party type, so the trait stays stable
//! whatever erasure library the crate uses inside.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::config::SerializationConfig;
use crate::depth::DepthGuard;
use crate::error::{CodecError, ErrorKind};

/// A serialization format registered by name, for
/// [`SerializationFormat::Custom`](crate::SerializationFormat::Custom).
///
/// Register it with [`SerializationFactory::register_format`](crate::SerializationFactory::register_format)
/// (or hand it to [`Codec::custom`](crate::Codec::custom) directly). Its name goes into every
/// version 2 frame it writes, so a receiver can pick the same format; it must be 1 to 255
/// bytes long.
///
/// Implementations must not panic on any input to [`deserialize`](CustomFormat::deserialize).
/// The [`ValueSink`] applies the codec's depth limit to the deserializer it is given, so a
/// format need not count nesting itself, unless it recurses on its own (to skip a value it
/// was not asked for, say).
///
/// # Examples
///
/// A format that writes JSON with a trailing newline ("JSON lines"):
///
/// ```
/// use std::sync::Arc;
/// use memq_codec::{Codec, CodecError, CustomFormat, ErasedValue, ErrorKind, PipelineConfig,
///     SerializationConfig, ValueSink};
///
/// struct JsonLines;
///
/// impl CustomFormat for JsonLines {
///     fn name(&self) -> &str {
///         "jsonl"
///     }
///
///     fn serialize(&self, value: &ErasedValue<'_>, _: &SerializationConfig, out: &mut Vec<u8>)
///         -> Result<(), CodecError>
///     {
///         serde_json::to_writer(&mut *out, value).map_err(|e| CodecError::new(ErrorKind::Serialize, e))?;
///         out.push(b'\n');
///         Ok(())
///     }
///
///     fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError> {
///         let mut de = serde_json::Deserializer::from_slice(bytes);
///         sink.deserialize(&mut de)?;
///         de.end().map_err(|e| CodecError::new(ErrorKind::TrailingBytes, e))
///     }
/// }
///
/// let codec = Codec::custom(Arc::new(JsonLines), SerializationConfig::Default, PipelineConfig::default())?;
/// let bytes = codec.encode(&[1, 2])?;
/// assert_eq!(&bytes[..], b"[1,2]\n");
/// assert_eq!(codec.decode::<Vec<u8>>(&bytes)?, vec![1, 2]);
/// # Ok::<(), CodecError>(())
/// ```
pub trait CustomFormat: Send + Sync + 'static {
    /// The format's name, as in `SerializationFormat::Custom(name)`: 1 to 255 bytes.
    fn name(&self) -> &str;

    /// Appends `value`, serialized, to `out`. `config` is the codec's configuration
    /// ([`SerializationConfig::Custom`] carries the format's own settings).
    ///
    /// # Errors
    ///
    /// A [`CodecError`] of kind [`Serialize`](ErrorKind::Serialize) when the value cannot be
    /// written.
    fn serialize(
        &self,
        value: &ErasedValue<'_>,
        config: &SerializationConfig,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;

    /// Reads one value from `bytes` by passing a deserializer over them to
    /// [`sink.deserialize`](ValueSink::deserialize).
    ///
    /// # Errors
    ///
    /// A [`CodecError`] of kind [`Deserialize`](ErrorKind::Deserialize) (the sink's own error
    /// is already of that kind) or [`TrailingBytes`](ErrorKind::TrailingBytes).
    fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError>;
}

/// A value to serialize, with its type erased; it implements [`Serialize`].
///
/// # Examples
///
/// ```
/// use memq_codec::ErasedValue;
///
/// let value = ErasedValue::new(&("a", 1));
/// assert_eq!(serde_json::to_string(&value).unwrap(), r#"["a",1]"#);
/// ```
pub struct ErasedValue<'a> {
    inner: &'a dyn erased_serde::Serialize,
}

impl<'a> ErasedValue<'a> {
    /// Erases the type of `value`.
    pub fn new<T: Serialize>(value: &'a T) -> Self {
        ErasedValue { inner: value }
    }
}

impl Serialize for ErasedValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        erased_serde::serialize(self.inner, serializer)
    }
}

impl fmt::Debug for ErasedValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErasedValue").finish_non_exhaustive()
    }
}

/// The erased "read one value of the requested type from this deserializer" step.
type SinkFn<'a> =
    dyn for<'de> FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<(), erased_serde::Error> + 'a;

/// Where a [`CustomFormat`] delivers the value it reads: call
/// [`deserialize`](ValueSink::deserialize) once with the format's deserializer.
///
/// The sink reads the value through the codec's depth limit
/// ([`DecodeLimits::max_depth`](crate::DecodeLimits::max_depth)), so a custom format is as
/// safe from deeply nested input as the built-in ones, as long as the format itself does not
/// recurse without its deserializer being asked for a value (to skip one, say).
pub struct ValueSink<'a> {
    read: &'a mut SinkFn<'a>,
    guard: &'a DepthGuard,
}

impl ValueSink<'_> {
    /// Reads the requested value from `deserializer`.
    ///
    /// # Errors
    ///
    /// A [`CodecError`] of kind [`Deserialize`](ErrorKind::Deserialize) when the
    /// deserializer's data does not fit the requested type, or
    /// [`TooDeep`](ErrorKind::TooDeep) when it nests deeper than the decode limits allow.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), CodecError> {
        let guard = self.guard;
        let mut erased = <dyn erased_serde::Deserializer<'de>>::erase(guard.wrap(deserializer));
        (self.read)(&mut erased).map_err(|e| {
            if guard.tripped() {
                guard.error(e)
            } else {
                CodecError::with_source(ErrorKind::Deserialize, "deserialization failed", e)
            }
        })
    }
}

impl fmt::Debug for ValueSink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueSink").finish_non_exhaustive()
    }
}

/// Forces a closure to the higher-ranked signature [`ValueSink`] stores.
fn sink_fn<F>(f: F) -> F
where
    F: for<'de> FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<(), erased_serde::Error>,
{
    f
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    format: &dyn CustomFormat,
    config: &SerializationConfig,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    // `&T` is sized even when `T` is not, so it can be erased.
    let value = &value;
    format.serialize(&ErasedValue { inner: &value }, config, out)
}

pub(crate) fn decode<T: DeserializeOwned>(
    format: &dyn CustomFormat,
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, CodecError> {
    let guard = DepthGuard::new(max_depth, bytes.len());
    let mut slot: Option<T> = None;
    let mut read = sink_fn(|de| {
        slot = Some(erased_serde::deserialize::<T>(de)?);
        Ok(())
    });
    let sink = ValueSink {
        read: &mut read,
        guard: &guard,
    };
    match format.deserialize(bytes, sink) {
        Ok(()) => {}
        // A format that wraps the sink's error in one of its own still reports the depth.
        Err(e) if guard.tripped() && e.kind() != guard.error_kind() => return Err(guard.error(e)),
        Err(e) => return Err(e),
    }
    slot.ok_or_else(|| {
        CodecError::msg(
            ErrorKind::Deserialize,
            format!(
                "custom format {:?} returned without reading a value",
                format.name()
            ),
        )
    })
}
