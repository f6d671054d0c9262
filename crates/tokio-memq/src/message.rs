//! Messages: what is stored per offset, and what a subscriber receives.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use memq_codec::{Codec, CodecError, DecodeLimits, Headers};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::format::{FormatTable, FormatTag, SerializationFormat};
use crate::weigh::Weight;
/// Why a consumer group gave up on a message: the `reason` of its
/// [`DeadLetterInfo`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio_memq::{ConsumptionMode, DeadLetterReason, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let failed = mq.subscriber("emails.failed").await?;
/// let join = || mq.group("emails", "senders").manual_ack().max_deliveries(2).dead_letter_topic("emails.failed").mode(ConsumptionMode::Earliest).join();
/// let (a, b, c) = (join().await?, join().await?, join().await?);
/// mq.publisher("emails").publish("welcome").await?;
/// a.recv().await?;
/// drop(a); // never acknowledged: delivered again
/// assert_eq!(b.recv().await?.deliveries, 2);
/// drop(b); // the limit is reached
/// assert!(c.recv_timeout(Duration::from_millis(10)).await?.is_none());
/// let letter = failed.recv().await?;
/// assert_eq!(letter.dead_letter().unwrap().reason, DeadLetterReason::MaxDeliveries { limit: 2 });
/// # Ok(()) }
/// ```
pub use memq_groups::DeadLetterReason;

/// A value published natively, as the queue stores it.
pub(crate) trait NativeValue: Any + Send + Sync {
    /// The value as a self-describing tree, for reads as another type.
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    /// The value as one scalar, for reads as another type.
    fn to_scalar(&self) -> Result<crate::convert::Scalar, crate::convert::NotScalar>;
    fn type_name(&self) -> &'static str;
    /// Shallow size, for byte budgets.
    fn shallow_size(&self) -> usize;
    /// What the value holds, for byte budgets (see `weigh.rs`).
    fn weight(&self) -> usize;
    /// The value encoded by `codec` (to leave the process).
    #[cfg(feature = "redis")]
    fn encode_with(&self, codec: &memq_codec::Codec) -> Result<Bytes, memq_codec::CodecError>;
}

impl<T: Serialize + Send + Sync + 'static> NativeValue for T {
    fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        // serde_json's serializer recurses without a limit: a value nested
        // a million levels overflowed the stack (`payload_str`).
        if crate::weigh::too_deep(self) {
            return Err(serde::ser::Error::custom(format_args!(
                "a value nested more than {} levels deep",
                crate::weigh::MAX_DEPTH
            )));
        }
        serde_json::to_value(self)
    }
    fn to_scalar(&self) -> Result<crate::convert::Scalar, crate::convert::NotScalar> {
        crate::convert::scalar_of(self)
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn shallow_size(&self) -> usize {
        std::mem::size_of::<T>()
    }
    fn weight(&self) -> usize {
        crate::weigh::weight_of(self)
    }
    #[cfg(feature = "redis")]
    fn encode_with(&self, codec: &memq_codec::Codec) -> Result<Bytes, memq_codec::CodecError> {
        if crate::weigh::too_deep(self) {
            return Err(memq_codec::CodecError::new(
                memq_codec::ErrorKind::TooDeep,
                format!("a value nested more than {} levels deep", crate::weigh::MAX_DEPTH),
            ));
        }
        codec.encode(self)
    }
}

/// A Rust value published without serialization: shared, never copied.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessagePayload, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("points").await?;
/// mq.publisher("points").publish((3i32, 4i32)).await?;
/// let msg = sub.recv().await?;
/// let MessagePayload::Native(value) = &msg.payload else { panic!("published natively") };
/// assert_eq!(value.type_name(), "(i32, i32)");
/// assert_eq!(value.downcast_ref::<(i32, i32)>(), Some(&(3, 4)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NativePayload(Arc<dyn NativeValue>);

impl NativePayload {
    pub(crate) fn new<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        NativePayload(Arc::new(value))
    }

    /// The name of the published type.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessagePayload, TopicMessage};
    ///
    /// let msg = TopicMessage::new("sizes", 42u64)?;
    /// let MessagePayload::Native(value) = &msg.payload else { unreachable!() };
    /// assert_eq!(value.type_name(), "u64");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }

    /// The value, shared, when it is a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{MessagePayload, TopicMessage};
    ///
    /// let msg = TopicMessage::new("names", vec!["ada".to_string()])?;
    /// let MessagePayload::Native(value) = &msg.payload else { unreachable!() };
    /// let (a, b) = (value.downcast::<Vec<String>>().unwrap(), value.downcast::<Vec<String>>().unwrap());
    /// assert!(Arc::ptr_eq(&a, &b), "one value, two handles");
    /// assert!(value.downcast::<Vec<&str>>().is_none(), "not the published type");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn downcast<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.0.clone();
        any.downcast::<T>().ok()
    }

    /// A reference to the value when it is a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessagePayload, TopicMessage};
    ///
    /// let msg = TopicMessage::new("temperatures", 21.5f32)?;
    /// let MessagePayload::Native(value) = &msg.payload else { unreachable!() };
    /// assert_eq!(value.downcast_ref::<f32>(), Some(&21.5));
    /// assert_eq!(value.downcast_ref::<f64>(), None, "no conversion here; see TopicMessage::deserialize");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<T>()
    }

    /// Takes the value back when this is its only handle.
    pub(crate) fn into_inner<T: Send + Sync + 'static>(self) -> Option<T> {
        let any: Arc<dyn Any + Send + Sync> = self.0;
        Arc::try_unwrap(any.downcast::<T>().ok()?).ok()
    }

    /// Reads the value as `T`: a clone when it is a `T`, otherwise a
    /// conversion that loses nothing (see `convert.rs`): a value published
    /// as `&str` reads as `String`, an `i32` as `i64`.
    pub(crate) fn read<T: DeserializeOwned + Clone + 'static>(&self) -> Result<T, DecodeError> {
        if let Some(v) = self.downcast_ref::<T>() {
            return Ok(v.clone());
        }
        // Another type: only a scalar the target holds exactly (see
        // `convert.rs`); anything else is a mismatch naming both types.
        let mismatch = |e: crate::convert::NotScalar| {
            DecodeError::new(
                DecodeErrorKind::TypeMismatch,
                format!(
                    "native {} cannot be read as {}: {e}",
                    self.type_name(),
                    std::any::type_name::<T>()
                ),
            )
        };
        let scalar = self.0.to_scalar().map_err(mismatch)?;
        crate::convert::read_scalar(scalar).map_err(mismatch)
    }

    pub(crate) fn shallow_size(&self) -> usize {
        self.0.shallow_size()
    }

    /// The value encoded by `codec`.
    #[cfg(feature = "redis")]
    pub(crate) fn encode_with(&self, codec: &memq_codec::Codec) -> Result<Bytes, memq_codec::CodecError> {
        self.0.encode_with(codec)
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
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessagePayload, MessageQueue, SerializationFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("mixed").await?;
/// let publisher = mq.publisher("mixed");
/// publisher.publish_bytes(vec![1u8, 2, 3], SerializationFormat::Raw).await?;
/// publisher.publish(String::from("native")).await?;
/// for msg in sub.recv_batch(2).await? {
///     match &msg.payload {
///         MessagePayload::Bytes(bytes) => assert_eq!(&bytes[..], [1, 2, 3]),
///         MessagePayload::Native(value) => assert_eq!(value.downcast_ref::<String>().unwrap(), "native"),
///     }
/// }
/// # Ok(()) }
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// assert_eq!(TopicMessage::from_bytes("t", "hello", SerializationFormat::Raw).payload.len(), 5);
    /// assert_eq!(TopicMessage::new("t", "hello")?.payload.len(), 0, "native");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        match self {
            MessagePayload::Bytes(b) => b.len(),
            MessagePayload::Native(_) => 0,
        }
    }

    /// True for an empty byte payload; a native value is never empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// assert!(TopicMessage::from_bytes("t", Vec::new(), SerializationFormat::Raw).payload.is_empty());
    /// assert!(!TopicMessage::new("t", "")?.payload.is_empty(), "native, even an empty string");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
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

/// What the topic log stores per offset: 56 bytes, 64 with the log's
/// timestamp (see `memq-core`). Rarely used metadata (where a dead letter
/// came from) lives behind the payload, in [`Stored::Extended`], so that
/// the common message pays nothing for it.
#[derive(Clone)]
pub(crate) struct Entry {
    payload: Stored,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) format: FormatTag,
    /// For byte budgets: what a native value holds (byte payloads weigh
    /// their length).
    weight: Weight,
}

/// A payload as stored: nested so that the three cases fit in the 32
/// bytes of `Bytes` (its null vtable pointer tells the others apart).
#[derive(Clone)]
enum Stored {
    Bytes(Bytes),
    Other(Other),
}

#[derive(Clone)]
enum Other {
    Native(NativePayload),
    Extended(Arc<Extended>),
}

/// A payload with metadata. The metadata is shared with every message
/// received from the entry (no copy per delivery).
struct Extended {
    payload: MessagePayload,
    meta: Arc<Meta>,
}

/// What a message rarely carries: record headers, where a dead letter
/// came from. Kept apart from the common message.
#[derive(Clone, Default)]
pub(crate) struct Meta {
    pub(crate) dead_letter: Option<DeadLetterInfo>,
    pub(crate) headers: Headers,
}

impl Meta {
    fn is_empty(&self) -> bool {
        self.dead_letter.is_none() && self.headers.is_empty()
    }
}

/// What headers weigh in a byte budget: their names and values, and 8
/// bytes each.
fn headers_weight(headers: &Headers) -> usize {
    // A header costs its bytes and its place in the list, even empty.
    const PER_HEADER: usize = 8;
    headers.iter().map(|(n, v)| PER_HEADER + n.len() + v.len()).sum()
}

/// The headers of a message that has none.
pub(crate) fn no_headers() -> &'static Headers {
    static NONE: std::sync::OnceLock<Headers> = std::sync::OnceLock::new();
    NONE.get_or_init(Headers::new)
}

/// Header names a dead letter gets, saying where it came from (next to
/// the headers it was published with): text values.
///
/// # Examples
///
/// ```
/// use tokio_memq::{dead_letter_headers, ConsumptionMode, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let dead = mq.subscriber("jobs.dead-letters").await?;
/// let worker = mq.group("jobs", "w").manual_ack().max_deliveries(1).mode(ConsumptionMode::Earliest).join().await?;
/// mq.publisher("jobs").publish_with_headers("job", [("trace-id", "t-1")]).await?;
/// let job = worker.recv().await?;
/// worker.nack(&job)?; // at the limit: a dead letter at once
/// assert!(worker.try_recv_now().is_err());
/// let letter = dead.recv().await?;
/// let h = letter.headers();
/// assert_eq!(h.get_str("trace-id"), Some("t-1"));
/// assert_eq!(h.get_str(dead_letter_headers::TOPIC), Some("jobs"));
/// assert_eq!(h.get_str(dead_letter_headers::REASON), Some("max_deliveries=1"));
/// # Ok(()) }
/// ```
pub mod dead_letter_headers {
    /// The topic the message was published to.
    pub const TOPIC: &str = "memq.dead_letter.topic";
    /// The consumer group that gave up on it.
    pub const GROUP: &str = "memq.dead_letter.group";
    /// Its partition (only on a partitioned topic).
    pub const PARTITION: &str = "memq.dead_letter.partition";
    /// Its offset there.
    pub const OFFSET: &str = "memq.dead_letter.offset";
    /// How many times the group delivered it.
    pub const DELIVERIES: &str = "memq.dead_letter.deliveries";
    /// Why the group gave up on it (`max_deliveries=<limit>`).
    pub const REASON: &str = "memq.dead_letter.reason";
}

// The layout the log's per-message overhead depends on.
const _: () = assert!(std::mem::size_of::<Entry>() == 56);

impl Entry {
    /// A native value weighed by its inline size (topics without a byte
    /// budget).
    pub(crate) fn native<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        let weight = Weight::new(std::mem::size_of::<T>());
        Entry {
            payload: Stored::Other(Other::Native(NativePayload::new(value))),
            key: None,
            format: FormatTag::NATIVE,
            weight,
        }
    }

    /// Weighs a native value by what it holds, for a topic with a byte
    /// budget (byte payloads weigh their length already).
    pub(crate) fn weigh_native(&mut self) {
        let native = match &self.payload {
            Stored::Other(Other::Native(n)) => n,
            Stored::Other(Other::Extended(x)) => match &x.payload {
                MessagePayload::Native(n) => n,
                MessagePayload::Bytes(_) => return,
            },
            Stored::Bytes(_) => return,
        };
        let headers = self.headers().map_or(0, headers_weight);
        self.weight = Weight::new(native.0.weight().saturating_add(headers));
    }

    /// Bytes in the format behind `tag` (for bytes encoded by a codec,
    /// receivers decode them with the same codec).
    pub(crate) fn encoded(bytes: Bytes, tag: FormatTag) -> Self {
        Entry {
            weight: Weight::new(bytes.len()),
            payload: Stored::Bytes(bytes),
            key: None,
            format: tag,
        }
    }

    /// An entry holding a received message's payload again (to publish
    /// it elsewhere). A native value is weighed by its inline size.
    fn from_payload(payload: MessagePayload, key: Option<Arc<str>>, format: FormatTag) -> Self {
        let (payload, weight) = match payload {
            MessagePayload::Bytes(b) => {
                let w = Weight::new(b.len());
                (Stored::Bytes(b), w)
            }
            MessagePayload::Native(n) => {
                let w = Weight::new(n.shallow_size());
                (Stored::Other(Other::Native(n)), w)
            }
        };
        Entry {
            payload,
            key,
            format,
            weight,
        }
    }

    /// The payload, taken out.
    fn into_payload(self) -> MessagePayload {
        match self.payload {
            Stored::Bytes(b) => MessagePayload::Bytes(b),
            Stored::Other(Other::Native(n)) => MessagePayload::Native(n),
            Stored::Other(Other::Extended(x)) => x.payload.clone(),
        }
    }

    /// The payload, borrowed: shared bytes or a native value.
    pub(crate) fn payload_ref(&self) -> Result<&Bytes, &NativePayload> {
        match &self.payload {
            Stored::Bytes(b) => Ok(b),
            Stored::Other(Other::Native(n)) => Err(n),
            Stored::Other(Other::Extended(x)) => match &x.payload {
                MessagePayload::Bytes(b) => Ok(b),
                MessagePayload::Native(n) => Err(n),
            },
        }
    }

    /// Where a dead letter came from, for entries published as one.
    pub(crate) fn dead_letter(&self) -> Option<&DeadLetterInfo> {
        self.meta().and_then(|m| m.dead_letter.as_ref())
    }

    /// The entry's record headers, if it has any.
    pub(crate) fn headers(&self) -> Option<&Headers> {
        self.meta().map(|m| &m.headers).filter(|h| !h.is_empty())
    }

    /// Headers and dead-letter origin, when the entry has either.
    pub(crate) fn meta(&self) -> Option<&Arc<Meta>> {
        match &self.payload {
            Stored::Other(Other::Extended(x)) => Some(&x.meta),
            _ => None,
        }
    }

    /// This entry with `meta` (the plain entry again when it is empty).
    /// Headers weigh their names and values, for byte budgets.
    pub(crate) fn with_meta(self, meta: Arc<Meta>) -> Self {
        let had = self.headers().map_or(0, headers_weight);
        let base = self.payload_weight().saturating_sub(had);
        let (key, format) = (self.key.clone(), self.format);
        let payload = self.into_payload();
        let (payload, weight) = if meta.is_empty() {
            let stored = match payload {
                MessagePayload::Bytes(b) => Stored::Bytes(b),
                MessagePayload::Native(n) => Stored::Other(Other::Native(n)),
            };
            (stored, base)
        } else {
            let weight = base.saturating_add(headers_weight(&meta.headers));
            (
                Stored::Other(Other::Extended(Arc::new(Extended { payload, meta }))),
                weight,
            )
        };
        Entry {
            payload,
            key,
            format,
            weight: Weight::new(weight),
        }
    }

    /// This entry with `headers` (replacing any it had).
    pub(crate) fn with_headers(self, headers: Headers) -> Self {
        let mut meta = self.meta().map(|m| Meta::clone(m)).unwrap_or_default();
        meta.headers = headers;
        self.with_meta(Arc::new(meta))
    }

    /// This entry as a dead letter from `info`: its headers are kept and
    /// the origin is added to them (see [`dead_letter_headers`]).
    /// This entry with headers that came from another process: a dead
    /// letter's origin headers (see [`dead_letter_headers`]) make it one
    /// here too ([`TopicMessage::dead_letter`]).
    #[cfg(feature = "redis")]
    pub(crate) fn with_received_headers(self, headers: Headers) -> Self {
        use dead_letter_headers as h;
        let text = |name: &str| headers.get(name).and_then(|v| std::str::from_utf8(v).ok());
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        let reason = text(h::REASON)
            .and_then(|r| r.strip_prefix("max_deliveries="))
            .and_then(|n| n.parse().ok())
            .map(|limit| DeadLetterReason::MaxDeliveries { limit });
        let dead_letter = match (
            text(h::TOPIC),
            text(h::GROUP),
            number(h::OFFSET),
            number(h::DELIVERIES),
            reason,
        ) {
            (Some(topic), Some(group), Some(offset), Some(deliveries), Some(reason)) => {
                Some(DeadLetterInfo {
                    topic: topic.into(),
                    group: group.into(),
                    partition: number(h::PARTITION).map(|p| p as usize),
                    offset,
                    deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
                    reason,
                })
            }
            _ => None,
        };
        self.with_meta(Arc::new(Meta { dead_letter, headers }))
    }

    pub(crate) fn into_dead_letter(self, info: DeadLetterInfo) -> Self {
        use dead_letter_headers as h;
        let mut meta = self.meta().map(|m| Meta::clone(m)).unwrap_or_default();
        let headers = &mut meta.headers;
        // A dead letter dead-lettered again (from the dead-letter topic's
        // own group): its headers say this origin only, as `dead_letter()`
        // does (a partition left from the first would be wrong).
        for name in [
            h::TOPIC,
            h::GROUP,
            h::PARTITION,
            h::OFFSET,
            h::DELIVERIES,
            h::REASON,
        ] {
            headers.remove(name);
        }
        headers.insert(h::TOPIC, info.topic.to_string());
        headers.insert(h::GROUP, info.group.to_string());
        if let Some(p) = info.partition {
            headers.insert(h::PARTITION, p.to_string());
        }
        headers.insert(h::OFFSET, info.offset.to_string());
        headers.insert(h::DELIVERIES, info.deliveries.to_string());
        let reason = match info.reason {
            DeadLetterReason::MaxDeliveries { limit } => format!("max_deliveries={limit}"),
            other => format!("{other:?}"),
        };
        headers.insert(h::REASON, reason);
        meta.dead_letter = Some(info);
        self.with_meta(Arc::new(meta))
    }

    /// Gives back the value an `Entry::native` was built from.
    pub(crate) fn into_native<T: Send + Sync + 'static>(self) -> T {
        match self.into_payload() {
            MessagePayload::Native(n) => n
                .into_inner()
                .expect("an entry that was not published has no other owner"),
            MessagePayload::Bytes(_) => unreachable!("native entries hold native payloads"),
        }
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        match self.into_payload() {
            MessagePayload::Bytes(b) => b,
            MessagePayload::Native(_) => unreachable!("byte entries hold byte payloads"),
        }
    }

    /// The weight of an entry for byte budgets: its payload and headers,
    /// and its key.
    pub(crate) fn weight(&self) -> usize {
        let key = self.key.as_ref().map_or(0, |k| k.len());
        self.payload_weight().saturating_add(key)
    }

    /// The weight of the payload and headers.
    fn payload_weight(&self) -> usize {
        match &self.payload {
            Stored::Bytes(b) => b.len(),
            Stored::Other(_) => self.weight.get(),
        }
    }
}

/// Where a dead letter came from: the message it was, and why it was
/// given up on. Read it with [`TopicMessage::dead_letter`] on messages
/// received from a dead-letter topic.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio_memq::{ConsumptionMode, DeadLetterReason, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let dead = mq.subscriber("jobs.dead-letters").await?;
/// let join = || mq.group("jobs", "workers").manual_ack().max_deliveries(1).mode(ConsumptionMode::Earliest).join();
/// let (worker, other) = (join().await?, join().await?);
/// mq.publisher("jobs").publish("resize image 7").await?;
/// let job = worker.recv().await?; // delivered once, never acked
/// drop(worker);                   // its message is due again, but the limit is 1
/// assert!(other.recv_timeout(Duration::from_millis(10)).await?.is_none());
///
/// let letter = dead.recv().await?;
/// let origin = letter.dead_letter().expect("published as a dead letter");
/// assert_eq!((origin.topic.as_ref(), origin.group.as_ref()), ("jobs", "workers"));
/// assert_eq!((origin.offset, origin.deliveries), (job.offset(), 1));
/// assert_eq!(origin.reason, DeadLetterReason::MaxDeliveries { limit: 1 });
/// assert_eq!(letter.deserialize::<String>()?, "resize image 7");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterInfo {
    /// The topic the message was published to.
    pub topic: Arc<str>,
    /// The consumer group that gave up on it.
    pub group: Arc<str>,
    /// Its partition, on a partitioned topic.
    pub partition: Option<usize>,
    /// Its offset there.
    pub offset: u64,
    /// How many times the group delivered it.
    pub deliveries: u32,
    /// Why the group gave up on it.
    pub reason: DeadLetterReason,
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
    /// Record headers, and where it came from for a dead letter.
    meta: Option<Arc<Meta>>,
    /// The decode limits of the queue it was received from, when that
    /// queue has its own ([`MessageQueue::with_decode_limits`]); not
    /// carried along when it is published again.
    limits: Option<Arc<DecodeLimits>>,
}

impl TopicMessage {
    pub(crate) fn claimed(
        formats: &FormatTable,
        topic: &Arc<str>,
        c: memq_groups::Claimed<Entry>,
        partitioned: bool,
    ) -> Self {
        let partition = partitioned.then_some(c.partition);
        Self::received(
            formats,
            topic,
            c.value,
            c.offset,
            c.timestamp,
            partition,
            c.deliveries,
        )
    }

    #[inline]
    pub(crate) fn received(
        formats: &FormatTable,
        topic: &Arc<str>,
        entry: Entry,
        offset: u64,
        timestamp: tokio::time::Instant,
        partition: Option<usize>,
        deliveries: u32,
    ) -> Self {
        let (format, codec) = formats.resolve(entry.format);
        let meta = entry.meta().cloned();
        TopicMessage {
            topic: topic.clone(),
            format,
            created_at: timestamp.into_std(),
            offset: Some(offset),
            partition,
            deliveries,
            codec,
            meta,
            limits: formats.shared_limits(),
            key: entry.key.clone(),
            payload: entry.into_payload(),
        }
    }

    /// Turns a message received from a queue back into what its cursor
    /// delivered (its format is in that queue's table already).
    pub(crate) fn into_delivered(self, formats: &FormatTable) -> memq_core::Delivered<Entry> {
        let offset = self.offset.unwrap_or(0);
        let timestamp = tokio::time::Instant::from_std(self.created_at);
        // Received from this queue, so its format has a tag here already.
        let tag = self.format_tag(formats).unwrap_or(FormatTag::RAW);
        memq_core::Delivered::new(offset, timestamp, self.into_entry(tag))
    }

    /// The tag of this message's format in the queue of `formats`.
    ///
    /// # Errors
    ///
    /// When the queue's format table is full.
    pub(crate) fn format_tag(&self, formats: &FormatTable) -> Result<FormatTag, CodecError> {
        match &self.codec {
            Some(codec) => formats.tag_of_codec(codec),
            None => formats.tag_of(&self.format),
        }
    }

    /// The entry to store for this message, with its format's `tag`.
    pub(crate) fn into_entry(self, tag: FormatTag) -> Entry {
        let entry = Entry::from_payload(self.payload, self.key, tag);
        match self.meta {
            Some(meta) => entry.with_meta(meta),
            None => entry,
        }
    }

    /// The message's record headers (empty when it has none): as
    /// published, through partitions, groups and redeliveries; a dead
    /// letter keeps them and adds where it came from
    /// ([`dead_letter_headers`](crate::dead_letter_headers)).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Headers, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// let publisher = mq.publisher("orders");
    /// publisher.publish_with_headers("order 1", [("trace-id", "4bf92f35"), ("source", "web")]).await?;
    /// publisher.publish("order 2").await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.headers().get_str("trace-id"), Some("4bf92f35"));
    /// assert_eq!(msg.headers().len(), 2);
    /// assert!(sub.recv().await?.headers().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn headers(&self) -> &Headers {
        match &self.meta {
            Some(m) => &m.headers,
            None => no_headers(),
        }
    }

    /// This message with `headers` (replacing any it had), for
    /// [`Publisher::publish_message`](crate::Publisher::publish_message)
    /// and [`MessageQueue::publish_to_partitioned`](crate::MessageQueue::publish_to_partitioned).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// let msg = TopicMessage::new_with_key("events", 7u32, "user-1")?.with_headers([("kind", "click")]);
    /// mq.publisher("events").publish_message(msg).await?;
    /// let got = sub.recv().await?;
    /// assert_eq!((got.key(), got.headers().get_str("kind")), (Some("user-1"), Some("click")));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_headers(mut self, headers: impl Into<Headers>) -> Self {
        let mut meta = self.meta.map(Arc::unwrap_or_clone).unwrap_or_default();
        meta.headers = headers.into();
        self.meta = Some(Arc::new(meta));
        self
    }

    /// Where this message came from, when it was received from a
    /// dead-letter topic: its topic, group, partition, offset, how many
    /// times the group delivered it and why it gave up. See
    /// [`DeadLetterInfo`].
    ///
    /// # Examples
    ///
    /// A message published by a publisher has none (see
    /// [`DeadLetterInfo`] for one that has):
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish("job").await?;
    /// assert!(sub.recv().await?.dead_letter().is_none());
    /// # Ok(()) }
    /// ```
    pub fn dead_letter(&self) -> Option<&DeadLetterInfo> {
        self.meta.as_ref().and_then(|m| m.dead_letter.as_ref())
    }

    /// A message holding `data` natively, to be published with
    /// [`Publisher::publish_message`](crate::Publisher::publish_message).
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the 1.0.0 signature.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// let msg = TopicMessage::new("events", 5u32)?;
    /// assert_eq!((msg.format.clone(), msg.offset), (SerializationFormat::Native, None));
    /// assert_eq!(mq.publisher("events").publish_message(msg).await?, 0);
    /// assert_eq!(*sub.recv().await?.native::<u32>().unwrap(), 5);
    /// # Ok(()) }
    /// ```
    pub fn new<T: Serialize + Send + Sync + 'static>(
        topic: impl Into<String>,
        data: T,
    ) -> Result<Self, crate::Error> {
        let payload = MessagePayload::Native(NativePayload::new(data));
        Ok(Self::built(
            topic.into().into(),
            payload,
            SerializationFormat::Native,
        ))
    }

    /// Like [`new`](Self::new), with a key.
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the 1.0.0 signature.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::TopicMessage;
    ///
    /// let msg = TopicMessage::new_with_key("logins", "ada", "user-1")?;
    /// assert_eq!((msg.topic(), msg.key()), ("logins", Some("user-1")));
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn new_with_key<T: Serialize + Send + Sync + 'static>(
        topic: impl Into<String>,
        data: T,
        key: impl Into<String>,
    ) -> Result<Self, crate::Error> {
        let mut msg = Self::new(topic, data)?;
        msg.key = Some(key.into().into());
        Ok(msg)
    }

    /// A message holding `data` in `format`: the value itself for
    /// [`SerializationFormat::Native`] (as [`new`](Self::new)), otherwise
    /// serialized with that format's default settings (no compression, no
    /// frame header: the message carries its format, so any subscriber
    /// decodes it). Publish it with
    /// [`Publisher::publish_message`](crate::Publisher::publish_message).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) when `data` cannot be
    /// serialized in `format` (or `format` is a custom format that was
    /// never registered).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// let msg = TopicMessage::new_with_format_and_key("orders", (7u32, "book"), SerializationFormat::MessagePack, "customer-9")?;
    /// mq.publisher("orders").publish_message(msg).await?;
    ///
    /// let got = sub.recv().await?;
    /// assert_eq!(got.format, SerializationFormat::MessagePack);
    /// assert_eq!(got.key(), Some("customer-9"));
    /// assert_eq!(got.deserialize::<(u32, String)>()?, (7, "book".to_string()));
    /// # Ok(()) }
    /// ```
    pub fn new_with_format<T: Serialize + Send + Sync + 'static>(
        topic: impl Into<String>,
        data: T,
        format: SerializationFormat,
    ) -> Result<Self, crate::Error> {
        if format == SerializationFormat::Native {
            return Self::new(topic, data);
        }
        let codec =
            Codec::new(format.clone(), Default::default(), Default::default()).map_err(EncodeError::from)?;
        let bytes = codec.encode(&data).map_err(EncodeError::from)?;
        let mut msg = Self::built(topic.into().into(), MessagePayload::Bytes(bytes), format);
        msg.codec = Some(codec);
        Ok(msg)
    }

    /// [`new_with_format`](Self::new_with_format) with a key.
    ///
    /// # Errors
    ///
    /// As [`new_with_format`](Self::new_with_format).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::new_with_format_and_key("carts", vec![3u8, 4], SerializationFormat::Json, "cart-9")?;
    /// assert_eq!((msg.format.clone(), msg.key()), (SerializationFormat::Json, Some("cart-9")));
    /// assert_eq!(msg.deserialize::<Vec<u8>>()?, [3, 4]);
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn new_with_format_and_key<T: Serialize + Send + Sync + 'static>(
        topic: impl Into<String>,
        data: T,
        format: SerializationFormat,
        key: impl Into<String>,
    ) -> Result<Self, crate::Error> {
        Ok(Self::new_with_format(topic, data, format)?.with_key(key))
    }

    /// [`new_with_format`](Self::new_with_format) with the topic as 1.0.0
    /// shared it.
    ///
    /// # Errors
    ///
    /// As [`new_with_format`](Self::new_with_format).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let topic = Arc::new("metrics".to_string());
    /// let msg = TopicMessage::new_shared_topic(topic, 0.25f64, SerializationFormat::MessagePack)?;
    /// assert_eq!((msg.topic(), msg.deserialize::<f64>()?), ("metrics", 0.25));
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn new_shared_topic<T: Serialize + Send + Sync + 'static>(
        topic: Arc<String>,
        data: T,
        format: SerializationFormat,
    ) -> Result<Self, crate::Error> {
        Self::new_with_format(topic.as_str(), data, format)
    }

    /// A message holding bytes shared as an `Arc<Vec<u8>>`, without
    /// copying them (the message keeps the `Arc` alive).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let image = Arc::new(vec![0xFFu8; 1 << 16]);
    /// let msg = TopicMessage::from_shared_bytes("images", image.clone(), SerializationFormat::Raw);
    /// assert_eq!(msg.payload_bytes().as_ptr(), image.as_ptr(), "the same memory");
    /// assert_eq!(Arc::strong_count(&image), 2);
    /// ```
    pub fn from_shared_bytes(
        topic: impl Into<String>,
        data: Arc<Vec<u8>>,
        format: SerializationFormat,
    ) -> Self {
        Self::from_bytes(
            topic,
            Bytes::from_owner(crate::publisher::SharedVec(data)),
            format,
        )
    }

    /// [`from_shared_bytes`](Self::from_shared_bytes) with the topic as
    /// 1.0.0 shared it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let (topic, data) = (Arc::new("raw".to_string()), Arc::new(b"abc".to_vec()));
    /// let msg = TopicMessage::from_shared_data(topic, data.clone(), SerializationFormat::Raw);
    /// assert_eq!((msg.topic(), msg.payload_bytes()), ("raw", &b"abc"[..]));
    /// assert_eq!(msg.payload_bytes().as_ptr(), data.as_ptr());
    /// ```
    pub fn from_shared_data(topic: Arc<String>, data: Arc<Vec<u8>>, format: SerializationFormat) -> Self {
        Self::from_shared_bytes(topic.as_str(), data, format)
    }

    /// [`from_bytes`](Self::from_bytes) with the topic as 1.0.0 shared it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let topic = Arc::new("csv".to_string());
    /// let msg = TopicMessage::from_shared_bytes_topic(topic, b"a,b\n".to_vec(), SerializationFormat::Raw);
    /// assert_eq!((msg.topic(), msg.payload_str().as_ref()), ("csv", "a,b\n"));
    /// ```
    pub fn from_shared_bytes_topic(topic: Arc<String>, data: Vec<u8>, format: SerializationFormat) -> Self {
        Self::from_bytes(topic.as_str(), data, format)
    }

    /// A message holding text that is already serialized, its format
    /// guessed as 1.0.0 did: JSON when it starts with `{` or `[`, else
    /// bincode. (A frame written by a codec says its own format, whatever
    /// the guess.)
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_serialized("events", r#"{"id": 7}"#.to_string());
    /// assert_eq!(msg.format, SerializationFormat::Json);
    /// assert_eq!(msg.deserialize::<serde_json::Value>()?["id"], 7);
    /// # Ok::<(), tokio_memq::DecodeError>(())
    /// ```
    pub fn from_serialized(topic: impl Into<String>, payload: String) -> Self {
        let format = guess_format(payload.as_bytes());
        Self::from_bytes(topic, payload, format)
    }

    /// [`from_serialized`](Self::from_serialized) with the topic as 1.0.0
    /// shared it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let topic = Arc::new("events".to_string());
    /// let msg = TopicMessage::from_shared_serialized_topic(topic, "[1, 2]".to_string());
    /// assert_eq!(msg.format, SerializationFormat::Json);
    /// assert_eq!(msg.deserialize::<Vec<i32>>()?, [1, 2]);
    /// # Ok::<(), tokio_memq::DecodeError>(())
    /// ```
    pub fn from_shared_serialized_topic(topic: Arc<String>, payload: String) -> Self {
        Self::from_serialized(topic.as_str(), payload)
    }

    /// A message holding bincode bytes.
    ///
    /// # Examples
    ///
    /// Bytes as bincode 1.3 writes a `String` (its length, then its
    /// UTF-8), the way 1.0.0 serialized:
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_bincode("names", vec![3, b'a', b'd', b'a']);
    /// assert_eq!(msg.format, SerializationFormat::Bincode);
    /// assert_eq!(msg.deserialize::<String>()?, "ada");
    /// # Ok::<(), tokio_memq::DecodeError>(())
    /// ```
    pub fn from_bincode(topic: impl Into<String>, data: Vec<u8>) -> Self {
        Self::from_bytes(topic, data, SerializationFormat::Bincode)
    }

    /// A message holding bytes in `format`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Bytes, SerializationFormat, TopicMessage};
    ///
    /// let json = TopicMessage::from_bytes("users", r#"{"id": 7, "name": "ada"}"#, SerializationFormat::Json);
    /// assert_eq!(json.deserialize::<serde_json::Value>()?["name"], "ada");
    /// let raw = TopicMessage::from_bytes("blobs", Bytes::from_static(b"\x00\x01"), SerializationFormat::Raw);
    /// assert_eq!(raw.payload_bytes(), [0, 1]);
    /// # Ok::<(), tokio_memq::DecodeError>(())
    /// ```
    pub fn from_bytes(topic: impl Into<String>, data: impl Into<Bytes>, format: SerializationFormat) -> Self {
        Self::built(topic.into().into(), MessagePayload::Bytes(data.into()), format)
    }

    /// A message built to be published.
    fn built(topic: Arc<str>, payload: MessagePayload, format: SerializationFormat) -> Self {
        TopicMessage {
            topic,
            format,
            created_at: tokio::time::Instant::now().into_std(),
            offset: None,
            key: None,
            partition: None,
            deliveries: 0,
            codec: None,
            meta: None,
            limits: None,
            payload,
        }
    }

    /// An entry that could not be published, handed back as a message.
    pub(crate) fn unpublished(formats: &FormatTable, topic: &Arc<str>, entry: Entry) -> Self {
        let (format, codec) = formats.resolve(entry.format);
        TopicMessage {
            topic: topic.clone(),
            format,
            created_at: tokio::time::Instant::now().into_std(),
            offset: None,
            key: entry.key.clone(),
            partition: None,
            deliveries: 0,
            codec,
            meta: entry.meta().cloned(),
            limits: formats.shared_limits(),
            payload: entry.into_payload(),
        }
    }

    /// Sets the key.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_bytes("clicks", "home", SerializationFormat::Raw).with_key("session-4");
    /// assert_eq!(msg.key(), Some("session-4"));
    /// ```
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into().into());
        self
    }

    /// The offset; 0 for a message that was not received from a topic.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// mq.publisher("events").publish_batch(vec!["a", "b"]).await?;
    /// assert_eq!(sub.recv_batch(2).await?[1].offset(), 1);
    /// let built = TopicMessage::new("events", "c")?;
    /// assert_eq!((built.offset(), built.offset), (0, None), "not received from a topic");
    /// # Ok(()) }
    /// ```
    pub fn offset(&self) -> u64 {
        self.offset.unwrap_or(0)
    }

    /// The key, when one was given.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("logins").await?;
    /// let publisher = mq.publisher("logins");
    /// publisher.publish_with_key("user-1", "ada").await?;
    /// publisher.publish("anonymous").await?;
    /// assert_eq!(sub.recv().await?.key(), Some("user-1"));
    /// assert_eq!(sub.recv().await?.key(), None);
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The topic name.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// mq.publisher("orders").publish(1u32).await?;
    /// assert_eq!(sub.recv().await?.topic(), "orders");
    /// # Ok(()) }
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// When the message was published.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("heartbeats").await?;
    /// let publisher = mq.publisher("heartbeats");
    /// publisher.publish("beat").await?;
    /// tokio::time::sleep(Duration::from_secs(5)).await;
    /// publisher.publish("beat").await?;
    /// let (first, second) = (sub.recv().await?, sub.recv().await?);
    /// assert_eq!(second.timestamp() - first.timestamp(), Duration::from_secs(5));
    /// # Ok(()) }
    /// ```
    pub fn timestamp(&self) -> std::time::Instant {
        self.created_at
    }

    /// The payload's format.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_serialized("events", "{}".to_string());
    /// assert_eq!(msg.serialization_format(), &SerializationFormat::Json);
    /// assert_eq!(TopicMessage::new("events", 1)?.serialization_format(), &SerializationFormat::Native);
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn serialization_format(&self) -> &SerializationFormat {
        &self.format
    }

    /// The payload bytes; empty for a native value.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_bytes("bits", vec![0b1010u8, 0b0101], SerializationFormat::Raw);
    /// assert_eq!(msg.payload_bytes(), [0b1010, 0b0101]);
    /// assert!(TopicMessage::new("bits", vec![1u8, 2])?.payload_bytes().is_empty(), "native");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn payload_bytes(&self) -> &[u8] {
        match &self.payload {
            MessagePayload::Bytes(b) => b,
            MessagePayload::Native(_) => &[],
        }
    }

    /// The payload as shared [`Bytes`] (a reference-count increment), or
    /// `None` for a native value.
    ///
    /// # Examples
    ///
    /// Bytes published with
    /// [`publish_bytes`](crate::Publisher::publish_bytes) reach every
    /// subscriber without a copy:
    ///
    /// ```
    /// use tokio_memq::{Bytes, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let (a, b) = (mq.subscriber("video").await?, mq.subscriber("video").await?);
    /// let chunk = Bytes::from(vec![7u8; 1 << 20]);
    /// mq.publisher("video").publish_bytes(chunk.clone(), SerializationFormat::Raw).await?;
    /// let (from_a, from_b) = (a.recv().await?.bytes().unwrap(), b.recv().await?.bytes().unwrap());
    /// assert_eq!(from_a.as_ptr(), chunk.as_ptr());
    /// assert_eq!(from_b.as_ptr(), chunk.as_ptr());
    /// # Ok(()) }
    /// ```
    pub fn bytes(&self) -> Option<Bytes> {
        match &self.payload {
            MessagePayload::Bytes(b) => Some(b.clone()),
            MessagePayload::Native(_) => None,
        }
    }

    /// The natively published value, shared, when it is a `T`.
    ///
    /// # Examples
    ///
    /// A value published with [`publish`](crate::Publisher::publish) is
    /// stored once; every subscriber reads the same one:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let (a, b) = (mq.subscriber("grids").await?, mq.subscriber("grids").await?);
    /// mq.publisher("grids").publish(vec![0.5f32; 1 << 16]).await?;
    /// let (msg_a, msg_b) = (a.recv().await?, b.recv().await?);
    /// let (grid_a, grid_b) = (msg_a.native::<Vec<f32>>().unwrap(), msg_b.native::<Vec<f32>>().unwrap());
    /// assert!(Arc::ptr_eq(&grid_a, &grid_b), "one value, not a copy per subscriber");
    /// assert!(msg_a.native::<Vec<f64>>().is_none(), "only as the published type");
    /// # Ok(()) }
    /// ```
    pub fn native<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        match &self.payload {
            MessagePayload::Native(n) => n.downcast(),
            MessagePayload::Bytes(_) => None,
        }
    }

    /// The payload as text, for display: bytes decoded as UTF-8 with
    /// invalid sequences replaced, a native `String` or `&'static str` as
    /// is, any other native value as JSON (other string types, a
    /// `Box<str>` say, as a JSON string); one that cannot be written as
    /// JSON, or nests more than 1,024 levels deep, as `[native value]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// assert_eq!(TopicMessage::new("t", "plain")?.payload_str(), "plain");
    /// assert_eq!(TopicMessage::new("t", (1, "two"))?.payload_str(), r#"[1,"two"]"#);
    /// let invalid = TopicMessage::from_bytes("t", vec![b'o', b'k', 0xFF], SerializationFormat::Raw);
    /// assert_eq!(invalid.payload_str(), "ok\u{FFFD}");
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
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
    /// A native value of type `T` is cloned. A native value of another type
    /// converts only when nothing is lost: numbers, text, `bool`, `char`
    /// and bytes (behind `&`, `Box`, `Arc` or a newtype, in options,
    /// sequences and tuples) into a type that holds each exactly, so a
    /// `&str` reads as a `String`, an `i32` as an `i64` or `f64`, a
    /// `Vec<u8>` as a `Vec<u16>`. Structs and enums (even of the same
    /// shape, or from a tuple of their fields), maps, bytes as text and
    /// text as bytes, a sequence that repeats an element as a set, values
    /// nested more than 128 levels deep, and narrowing that would change
    /// a value (`u128::MAX` as `f64`, `0.1f64` as `f32`, `300` as `u8`)
    /// are [`TypeMismatch`](crate::DecodeErrorKind::TypeMismatch) errors
    /// naming both types. Byte payloads are decoded by their format.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a valid `T`; its
    /// [`kind`](DecodeError::kind) says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{CodecErrorKind, DecodeErrorKind, SerializationFormat, TopicMessage};
    ///
    /// let native = TopicMessage::new("t", "42")?;
    /// assert_eq!(native.deserialize::<String>()?, "42");
    /// assert_eq!(native.deserialize::<u32>().unwrap_err().kind(), DecodeErrorKind::TypeMismatch);
    ///
    /// let broken = TopicMessage::from_bytes("t", "{not json", SerializationFormat::Json);
    /// let err = broken.deserialize::<serde_json::Value>().unwrap_err();
    /// assert_eq!(err.kind(), DecodeErrorKind::Codec(CodecErrorKind::Deserialize));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn deserialize<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self) -> Result<T, DecodeError> {
        let at = self.offset;
        match &self.payload {
            MessagePayload::Native(n) => n.read(),
            MessagePayload::Bytes(b) => crate::decode::decode_bytes(
                b,
                &self.format,
                self.codec.as_ref(),
                None,
                self.limits.as_deref(),
            ),
        }
        .map_err(|e| e.at(at, self.partition))
    }
}

/// 1.0.0's accessors, kept for code written against it.
impl TopicMessage {
    /// The payload as text, as [`payload_str`](Self::payload_str) (1.0.0
    /// had both names; the method shares its name with the field).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessagePayload, SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_bytes("t", "text", SerializationFormat::Raw);
    /// assert_eq!(msg.payload(), "text"); // the method: text
    /// assert!(matches!(msg.payload, MessagePayload::Bytes(_))); // the field: the payload itself
    /// ```
    pub fn payload(&self) -> Cow<'_, str> {
        self.payload_str()
    }

    /// True once `ttl` has passed since the message was built or published
    /// (at `ttl` exactly too, as a topic's TTL counts it: from then on the
    /// topic no longer delivers it).
    ///
    /// Measured on Tokio's clock, as the queue's TTL is (the system's
    /// outside a runtime): with time paused in a test, it follows
    /// `tokio::time::advance`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::TopicMessage;
    ///
    /// let msg = TopicMessage::new("t", 1)?;
    /// std::thread::sleep(Duration::from_millis(20));
    /// assert!(msg.is_expired(Duration::from_millis(10)));
    /// assert!(!msg.is_expired(Duration::from_secs(3600)));
    /// # Ok::<(), tokio_memq::Error>(())
    /// ```
    pub fn is_expired(&self, ttl: std::time::Duration) -> bool {
        tokio::time::Instant::now()
            .into_std()
            .saturating_duration_since(self.created_at)
            >= ttl
    }

    /// Reads the payload as a `T` in `format` rather than the message's
    /// own (a frame's header still says its format, except for
    /// [`SerializationFormat::Raw`], which reads the bytes as they are,
    /// header included). A native value reads as
    /// [`deserialize`](Self::deserialize) does.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a valid `T` in `format`.
    ///
    /// # Examples
    ///
    /// JSON text that was published as raw bytes:
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_bytes("t", "[1, 2, 3]", SerializationFormat::Raw);
    /// let values: Vec<u32> = msg.deserialize_with_format(&SerializationFormat::Json)?;
    /// assert_eq!(values, [1, 2, 3]);
    /// # Ok::<(), tokio_memq::DecodeError>(())
    /// ```
    pub fn deserialize_with_format<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        format: &SerializationFormat,
    ) -> Result<T, DecodeError> {
        self.deserialize_in(format, None)
    }

    /// Reads the payload as a `T` in `format` with `limits` (the defaults
    /// when `None`).
    pub(crate) fn deserialize_in<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        format: &SerializationFormat,
        limits: Option<&DecodeLimits>,
    ) -> Result<T, DecodeError> {
        let queue = self.limits.as_deref();
        match &self.payload {
            MessagePayload::Native(n) => n.read(),
            // Its own format: through its codec (compression, processors).
            MessagePayload::Bytes(b) if *format == self.format => {
                crate::decode::decode_bytes(b, format, self.codec.as_ref(), limits, queue)
            }
            MessagePayload::Bytes(b) => {
                let own = self
                    .codec
                    .as_ref()
                    .map(Codec::limits)
                    .filter(|l| **l != DecodeLimits::default());
                crate::decode::decode_bytes(b, format, None, limits.or(own), queue)
            }
        }
        .map_err(|e| e.at(self.offset, self.partition))
    }

    /// Reads the payload as a `T` as [`deserialize`](Self::deserialize)
    /// does, with `limits` instead of the queue's (or the codec's): for one
    /// payload bigger than the limits allow, or one to read more strictly.
    ///
    /// # Errors
    ///
    /// As [`deserialize`](Self::deserialize).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{DecodeLimits, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("t").await?;
    /// mq.publisher("t").publish_with_format(vec![7u8; 100], SerializationFormat::Json).await?;
    /// let msg = sub.recv().await?;
    /// let tight = DecodeLimits::new().with_max_decoded_size(10);
    /// assert!(msg.deserialize_with_limits::<Vec<u8>>(&tight).is_err());
    /// assert_eq!(msg.deserialize::<Vec<u8>>()?.len(), 100);
    /// # Ok(()) }
    /// ```
    pub fn deserialize_with_limits<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        limits: &DecodeLimits,
    ) -> Result<T, DecodeError> {
        match &self.payload {
            MessagePayload::Native(n) => n.read(),
            MessagePayload::Bytes(b) => {
                crate::decode::decode_bytes(b, &self.format, self.codec.as_ref(), Some(limits), None)
            }
        }
        .map_err(|e| e.at(self.offset, self.partition))
    }

    /// The payload for a log line: text cut at `max_len` bytes (on a
    /// character boundary), its length and format.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{SerializationFormat, TopicMessage};
    ///
    /// let msg = TopicMessage::from_bytes("t", "hello world", SerializationFormat::Raw);
    /// assert_eq!(msg.display_payload(5), "hello... (len=11 fmt=raw)");
    /// ```
    pub fn display_payload(&self, max_len: usize) -> String {
        let text = self.payload_str();
        let mut cut = max_len.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let ellipsis = if cut < text.len() { "..." } else { "" };
        format!(
            "{}{ellipsis} (len={} fmt={})",
            &text[..cut],
            self.payload.len(),
            self.format.as_str()
        )
    }

    /// What the message says about itself, without the payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("uploads").await?;
    /// mq.publisher("uploads").publish_bytes(vec![0u8; 512], SerializationFormat::Raw).await?;
    /// let meta = sub.recv().await?.metadata();
    /// assert_eq!((&*meta.topic, meta.offset, meta.payload_size), ("uploads", 0, 512));
    /// assert_eq!(meta.format, SerializationFormat::Raw);
    /// # Ok(()) }
    /// ```
    pub fn metadata(&self) -> MessageMetadata {
        MessageMetadata {
            topic: self.topic.clone(),
            format: self.format.clone(),
            created_at: self.created_at,
            offset: self.offset(),
            payload_size: self.payload.len(),
        }
    }
}

/// A received message, by where it came from: what acknowledging it
/// ([`Subscriber::ack`](crate::Subscriber::ack),
/// [`Subscriber::nack`](crate::Subscriber::nack)) needs. Implemented by
/// [`TopicMessage`], [`MessageRef`](crate::MessageRef) and
/// [`TypedMessage`].
pub trait Acknowledgeable {
    /// Its partition, on a partitioned topic.
    fn ack_partition(&self) -> Option<usize>;
    /// Its offset (in its partition).
    fn ack_offset(&self) -> u64;
    /// The topic it was received from, where it says: a member refuses
    /// to acknowledge a message of another topic (`None`: not checked). In
    /// memory a member compares the name's identity, not its text (the
    /// `str` the receiving subscriber handed out, its own), so a message
    /// another subscriber received (of an earlier topic of the same name,
    /// of another queue's) is refused too: an implementation forwards the
    /// received message's, or returns `None`.
    fn ack_topic(&self) -> Option<&str> {
        None
    }
    /// Whether it was received from a topic at all: a message built and
    /// never published has no offset, and acknowledges nothing.
    fn ack_received(&self) -> bool {
        true
    }
}

impl Acknowledgeable for TopicMessage {
    fn ack_partition(&self) -> Option<usize> {
        self.partition
    }

    fn ack_offset(&self) -> u64 {
        self.offset()
    }

    fn ack_topic(&self) -> Option<&str> {
        Some(&self.topic)
    }

    fn ack_received(&self) -> bool {
        self.offset.is_some()
    }
}

/// A value read by [`Subscriber::recv_typed_message`](crate::Subscriber::recv_typed_message),
/// with where it came from: a typed receive whose message can be
/// acknowledged in a group with manual acknowledgement.
///
/// # Examples
///
/// ```
/// use tokio_memq::{ConsumptionMode, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let worker = mq.group("orders", "billing").manual_ack().mode(ConsumptionMode::Earliest).join().await?;
/// mq.publisher("orders").publish(42u32).await?;
/// let order = worker.recv_typed_message::<u32>().await?;
/// assert_eq!((order.value, order.offset, order.deliveries), (42, 0, 1));
/// worker.ack(&order)?;
/// assert_eq!(mq.get_group_stats("orders", "billing").await.unwrap().committed, [Some(0)]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypedMessage<T> {
    /// The value.
    pub value: T,
    /// Its offset (in its partition).
    pub offset: u64,
    /// Its partition, on a partitioned topic.
    pub partition: Option<usize>,
    /// How many times its group has delivered it, this time included (1
    /// outside groups).
    pub deliveries: u32,
    /// The topic it was received from (checked when it is acknowledged).
    pub(crate) topic: Arc<str>,
}

impl<T> Acknowledgeable for TypedMessage<T> {
    fn ack_partition(&self) -> Option<usize> {
        self.partition
    }

    fn ack_offset(&self) -> u64 {
        self.offset
    }

    fn ack_topic(&self) -> Option<&str> {
        Some(&self.topic)
    }
}

/// A message's metadata without its payload (1.0.0's
/// `mq::message::MessageMetadata`; the topic is an `Arc<str>` and the
/// offset a `u64` now).
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, SerializationFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("events").await?;
/// let publisher = mq.publisher("events");
/// publisher.publish_serialized(r#"{"kind": "login"}"#.to_string()).await?;
/// publisher.publish(7u8).await?;
/// let json = sub.recv_metadata().await?;
/// assert_eq!((json.offset, json.format, json.payload_size), (0, SerializationFormat::Json, 17));
/// let native = sub.recv_metadata().await?;
/// assert_eq!((native.offset, native.format, native.payload_size), (1, SerializationFormat::Native, 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The payload's format.
    pub format: SerializationFormat,
    /// When the message was built or published.
    pub created_at: std::time::Instant,
    /// Its offset (0 for a message not received from a topic).
    pub offset: u64,
    /// The payload's length in bytes (0 for a native value).
    pub payload_size: usize,
}

/// 1.0.0's format guess for serialized text: JSON when it starts with `{`
/// or `[` (after whitespace), else bincode.
pub(crate) fn guess_format(bytes: &[u8]) -> SerializationFormat {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => SerializationFormat::Json,
        _ => SerializationFormat::Bincode,
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
