//! Messages: what is stored per offset, and what a subscriber receives.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use memq_codec::Codec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::format::{FormatTag, SerializationFormat};

/// A value published natively, as the queue stores it.
pub(crate) trait NativeValue: Any + Send + Sync {
    /// The value as a self-describing tree, for reads as another type.
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    fn type_name(&self) -> &'static str;
    /// Shallow size, for byte budgets.
    fn shallow_size(&self) -> usize;
}

impl<T: Serialize + Send + Sync + 'static> NativeValue for T {
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn shallow_size(&self) -> usize {
        std::mem::size_of::<T>()
    }
}

/// A Rust value published without serialization: shared, never copied.
#[derive(Clone)]
pub struct NativePayload(Arc<dyn NativeValue>);

impl NativePayload {
    pub(crate) fn new<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        NativePayload(Arc::new(value))
    }

    /// The name of the published type.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }

    /// The value, shared, when it is a `T`.
    pub fn downcast<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.0.clone();
        any.downcast::<T>().ok()
    }

    /// A reference to the value when it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<T>()
    }

    /// Takes the value back when this is its only handle.
    pub(crate) fn into_inner<T: Send + Sync + 'static>(self) -> Option<T> {
        let any: Arc<dyn Any + Send + Sync> = self.0;
        Arc::try_unwrap(any.downcast::<T>().ok()?).ok()
    }

    /// Reads the value as `T`: a clone when it is a `T`, otherwise through
    /// its serde representation, so a value published as `&str` reads as
    /// `String` and an `i32` as `i64`.
    pub(crate) fn read<T: DeserializeOwned + Clone + 'static>(&self) -> Result<T, DecodeError> {
        if let Some(v) = self.downcast_ref::<T>() {
            return Ok(v.clone());
        }
        let mismatch = |e: serde_json::Error| {
            DecodeError::new(
                DecodeErrorKind::TypeMismatch,
                format!(
                    "native {} cannot be read as {}: {e}",
                    self.type_name(),
                    std::any::type_name::<T>()
                ),
            )
        };
        let tree = self.0.to_json().map_err(mismatch)?;
        serde_json::from_value(tree).map_err(mismatch)
    }

    pub(crate) fn shallow_size(&self) -> usize {
        self.0.shallow_size()
    }
}

impl fmt::Debug for NativePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NativePayload").field(&self.type_name()).finish()
    }
}

/// The payload of a message: bytes, or a Rust value stored natively.
///
/// Cloning either is a reference-count increment; payload bytes are
/// never copied between publish and receive.
#[derive(Clone)]
pub enum MessagePayload {
    /// Serialized or raw bytes.
    Bytes(Bytes),
    /// A value published with [`Publisher::publish`](crate::Publisher::publish)
    /// on a topic without serialization defaults.
    Native(NativePayload),
}

impl MessagePayload {
    /// Length in bytes; 0 for native values (their size is unknown).
    pub fn len(&self) -> usize {
        match self {
            MessagePayload::Bytes(b) => b.len(),
            MessagePayload::Native(_) => 0,
        }
    }

    /// True for an empty byte payload; a native value is never empty.
    pub fn is_empty(&self) -> bool {
        match self {
            MessagePayload::Bytes(b) => b.is_empty(),
            MessagePayload::Native(_) => false,
        }
    }
}

impl fmt::Debug for MessagePayload {
    /// Shows the kind and size, never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessagePayload::Bytes(b) => f.debug_struct("Bytes").field("len", &b.len()).finish(),
            MessagePayload::Native(n) => f.debug_tuple("Native").field(&n.type_name()).finish(),
        }
    }
}

/// What the topic log stores per offset (64 bytes with the log's
/// timestamp; see `memq-core`).
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) payload: MessagePayload,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) format: FormatTag,
}

impl Entry {
    pub(crate) fn native<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        Entry {
            payload: MessagePayload::Native(NativePayload::new(value)),
            key: None,
            format: FormatTag::NATIVE,
        }
    }

    pub(crate) fn bytes(bytes: Bytes, format: &SerializationFormat) -> Self {
        Entry {
            payload: MessagePayload::Bytes(bytes),
            key: None,
            format: FormatTag::of(format),
        }
    }

    /// Bytes encoded by the codec behind `tag`; receivers decode them
    /// with the same codec.
    pub(crate) fn encoded(bytes: Bytes, tag: FormatTag) -> Self {
        Entry {
            payload: MessagePayload::Bytes(bytes),
            key: None,
            format: tag,
        }
    }

    /// Gives back the value an `Entry::native` was built from.
    pub(crate) fn into_native<T: Send + Sync + 'static>(self) -> T {
        match self.payload {
            MessagePayload::Native(n) => n
                .into_inner()
                .expect("an entry that was not published has no other owner"),
            MessagePayload::Bytes(_) => unreachable!("native entries hold native payloads"),
        }
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        match self.payload {
            MessagePayload::Bytes(b) => b,
            MessagePayload::Native(_) => unreachable!("byte entries hold byte payloads"),
        }
    }

    /// The weight of an entry for byte budgets.
    pub(crate) fn weight(&self) -> usize {
        match &self.payload {
            MessagePayload::Bytes(b) => b.len(),
            MessagePayload::Native(n) => n.shallow_size(),
        }
    }
}

/// A message as a subscriber receives it.
///
/// Cheap to clone: the payload is shared, never copied.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, ConsumptionMode, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("orders").await?;
/// mq.publisher("orders").publish(42u32).await?;
/// let msg = sub.recv().await?;
/// assert_eq!(msg.offset(), 0);
/// assert_eq!(msg.deserialize::<u32>()?, 42);
/// assert_eq!(msg.deserialize::<u64>()?, 42, "compatible types read too");
/// assert_eq!(*msg.native::<u32>().unwrap(), 42, "zero-copy for the same type");
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct TopicMessage {
    /// The topic the message was published to.
    pub topic: Arc<str>,
    /// The payload.
    pub payload: MessagePayload,
    /// The format of the payload.
    pub format: SerializationFormat,
    /// When the message was published.
    pub created_at: std::time::Instant,
    /// Its offset in the topic; `None` for a message built to be published.
    pub offset: Option<u64>,
    /// Its key, when one was given.
    pub key: Option<Arc<str>>,
    /// The partition it came from, for partitioned topics.
    pub partition: Option<usize>,
    /// How many times it has been delivered to its consumer group, this
    /// time included (1 outside groups).
    pub deliveries: u32,
    /// The codec that encoded the payload (serialization defaults), if one did.
    codec: Option<Codec>,
}

impl TopicMessage {
    pub(crate) fn delivered(topic: &Arc<str>, d: memq_core::Delivered<Entry>) -> Self {
        let (format, codec) = d.value.format.resolve();
        TopicMessage {
            topic: topic.clone(),
            format,
            payload: d.value.payload,
            created_at: d.timestamp.into_std(),
            offset: Some(d.offset),
            key: d.value.key,
            partition: None,
            deliveries: 1,
            codec,
        }
    }

    pub(crate) fn claimed(topic: &Arc<str>, c: memq_groups::Claimed<Entry>, partitioned: bool) -> Self {
        let (format, codec) = c.value.format.resolve();
        TopicMessage {
            topic: topic.clone(),
            format,
            payload: c.value.payload,
            created_at: c.timestamp.into_std(),
            offset: Some(c.offset),
            key: c.value.key,
            partition: partitioned.then_some(c.partition),
            deliveries: c.deliveries,
            codec,
        }
    }

    /// Turns a received message back into what its cursor delivered.
    pub(crate) fn into_delivered(self) -> memq_core::Delivered<Entry> {
        let offset = self.offset.unwrap_or(0);
        let timestamp = tokio::time::Instant::from_std(self.created_at);
        memq_core::Delivered::new(offset, timestamp, self.into_entry())
    }

    pub(crate) fn into_entry(self) -> Entry {
        Entry {
            format: match &self.codec {
                Some(codec) => FormatTag::of_codec(codec),
                None => FormatTag::of(&self.format),
            },
            payload: self.payload,
            key: self.key,
        }
    }

    /// A message holding `data` natively, to be published with
    /// [`Publisher::publish_message`](crate::Publisher::publish_message).
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the 1.0.0 signature.
    pub fn new<T: Serialize + Send + Sync + 'static>(
        topic: impl Into<String>,
        data: T,
    ) -> Result<Self, crate::Error> {
        Ok(Self::unpublished(&topic.into().into(), Entry::native(data)))
    }

    /// Like [`new`](Self::new), with a key.
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the 1.0.0 signature.
    pub fn new_with_key<T: Serialize + Send + Sync + 'static>(
        topic: impl Into<String>,
        data: T,
        key: impl Into<String>,
    ) -> Result<Self, crate::Error> {
        let mut msg = Self::new(topic, data)?;
        msg.key = Some(key.into().into());
        Ok(msg)
    }

    /// A message holding bytes in `format`.
    pub fn from_bytes(topic: impl Into<String>, data: impl Into<Bytes>, format: SerializationFormat) -> Self {
        Self::unpublished(&topic.into().into(), Entry::bytes(data.into(), &format))
    }

    pub(crate) fn unpublished(topic: &Arc<str>, entry: Entry) -> Self {
        TopicMessage {
            topic: topic.clone(),
            format: entry.format.format(),
            payload: entry.payload,
            created_at: std::time::Instant::now(),
            offset: None,
            key: entry.key,
            partition: None,
            deliveries: 0,
            codec: entry.format.codec(),
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into().into());
        self
    }

    /// The offset; 0 for a message that was not received from a topic.
    pub fn offset(&self) -> u64 {
        self.offset.unwrap_or(0)
    }

    /// The key, when one was given.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// When the message was published.
    pub fn timestamp(&self) -> std::time::Instant {
        self.created_at
    }

    /// The payload's format.
    pub fn serialization_format(&self) -> &SerializationFormat {
        &self.format
    }

    /// The payload bytes; empty for a native value.
    pub fn payload_bytes(&self) -> &[u8] {
        match &self.payload {
            MessagePayload::Bytes(b) => b,
            MessagePayload::Native(_) => &[],
        }
    }

    /// The payload as shared [`Bytes`] (a reference-count increment), or
    /// `None` for a native value.
    pub fn bytes(&self) -> Option<Bytes> {
        match &self.payload {
            MessagePayload::Bytes(b) => Some(b.clone()),
            MessagePayload::Native(_) => None,
        }
    }

    /// The natively published value, shared, when it is a `T`.
    pub fn native<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        match &self.payload {
            MessagePayload::Native(n) => n.downcast(),
            MessagePayload::Bytes(_) => None,
        }
    }

    /// The payload as text, for display: bytes decoded as UTF-8 with
    /// invalid sequences replaced, a native string as is, any other native
    /// value as JSON.
    pub fn payload_str(&self) -> Cow<'_, str> {
        match &self.payload {
            MessagePayload::Bytes(b) => String::from_utf8_lossy(b),
            MessagePayload::Native(n) => {
                if let Some(s) = n.downcast_ref::<String>() {
                    Cow::Borrowed(s)
                } else if let Some(s) = n.downcast_ref::<&'static str>() {
                    Cow::Borrowed(s)
                } else {
                    match n.0.to_json() {
                        Ok(v) => Cow::Owned(v.to_string()),
                        Err(_) => Cow::Borrowed("[native value]"),
                    }
                }
            }
        }
    }

    /// Reads the payload as a `T`.
    ///
    /// A native value of type `T` is cloned; a native value of another type
    /// is converted through its serde representation (a `&str` reads as a
    /// `String`, an `i32` as an `i64`). Byte payloads are decoded by their
    /// format.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a valid `T`; its
    /// [`kind`](DecodeError::kind) says why.
    pub fn deserialize<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self) -> Result<T, DecodeError> {
        let at = self.offset;
        match &self.payload {
            MessagePayload::Native(n) => n.read(),
            MessagePayload::Bytes(b) => crate::decode::decode_bytes(b, &self.format, self.codec.as_ref()),
        }
        .map_err(|e| e.at(at))
    }
}

impl fmt::Debug for TopicMessage {
    /// Shows the metadata and payload size, never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicMessage")
            .field("topic", &self.topic)
            .field("offset", &self.offset)
            .field("key", &self.key)
            .field("format", &self.format)
            .field("payload", &self.payload)
            .finish()
    }
}
