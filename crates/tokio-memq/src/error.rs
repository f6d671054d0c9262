//! Error types of the facade.
//!
//! Each operation family has its own type; [`Error`] gathers them all for
//! code that just wants `?` (and for the backend-neutral traits). Failed
//! publishes hand the message back.

use std::fmt;
use std::sync::Arc;

pub use memq_codec::ErrorKind as CodecErrorKind;
pub use memq_core::{ConfigError, OutOfRange};
pub use memq_groups::AckError;

/// Why a receive returned no message.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, RecvError, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let options = TopicOptions { max_messages: Some(1), ..TopicOptions::default() };
/// let sub = mq.subscriber_with_options("ticks", options).await?;
/// for tick in 1..=3u8 {
///     mq.publisher("ticks").publish(tick).await?;
/// }
/// assert_eq!(sub.recv().await.unwrap_err(), RecvError::Lagged(2));
/// assert_eq!(sub.recv().await?.offset(), 2);
/// mq.close();
/// assert_eq!(sub.recv().await.unwrap_err(), RecvError::Closed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and this many offsets were evicted
    /// before it read them. The next receive continues at the oldest
    /// retained message.
    #[error("subscriber lagged: {0} messages were evicted unread")]
    Lagged(u64),
    /// The topic was closed and every message this subscriber could still
    /// read has been delivered. (A member of a group with manual
    /// acknowledgement is told once the group has handed out everything: a
    /// message another member still holds unacknowledged can come back to
    /// it afterwards, if that member nacks it or leaves. To process those,
    /// receive until every member is told `Closed`.)
    #[error("topic closed")]
    Closed,
    /// The store behind a queue made with `MessageQueue::connect` (Redis)
    /// failed; the subscriber keeps its position and the receive can be
    /// repeated. An in-memory queue never returns this.
    #[error(transparent)]
    Store(StoreError),
}

impl From<memq_core::RecvError> for RecvError {
    fn from(e: memq_core::RecvError) -> Self {
        match e {
            memq_core::RecvError::Lagged(n) => RecvError::Lagged(n),
            _ => RecvError::Closed,
        }
    }
}

/// Why a receive that does not wait returned no message.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, RecvError, TryRecvError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("jobs").await?;
/// assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
/// assert_eq!(TryRecvError::from(RecvError::Lagged(2)), TryRecvError::Lagged(2));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is available right now.
    #[error("no message available")]
    Empty,
    /// See [`RecvError::Lagged`].
    #[error("subscriber lagged: {0} messages were evicted unread")]
    Lagged(u64),
    /// See [`RecvError::Closed`].
    #[error("topic closed")]
    Closed,
    /// See [`RecvError::Store`].
    #[error(transparent)]
    Store(StoreError),
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Closed => TryRecvError::Closed,
            RecvError::Store(e) => TryRecvError::Store(e),
        }
    }
}

impl From<memq_core::TryRecvError> for TryRecvError {
    fn from(e: memq_core::TryRecvError) -> Self {
        match e {
            memq_core::TryRecvError::Empty => TryRecvError::Empty,
            memq_core::TryRecvError::Lagged(n) => TryRecvError::Lagged(n),
            _ => TryRecvError::Closed,
        }
    }
}

impl From<memq_core::RecvError> for TryRecvError {
    fn from(e: memq_core::RecvError) -> Self {
        RecvError::from(e).into()
    }
}

/// A failure of the store behind a queue made with
/// `MessageQueue::connect` (Redis, the `redis` feature): the server could
/// not be reached, a publish was cut off, the topic was deleted under the
/// handle, or the operation cannot work on that store. In-memory queues
/// never produce one.
///
/// Cheap to clone; [`source`](std::error::Error::source) reaches the
/// store's own error when there is one. Two errors are equal when their
/// kinds and messages are.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: Arc<str>,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for StoreError {}

impl StoreError {
    #[allow(dead_code)] // used by the `redis` feature
    pub(crate) fn new(
        kind: StoreErrorKind,
        message: impl Into<Arc<str>>,
        source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source,
        }
    }

    /// An operation the store cannot do (`what` names it and why).
    #[allow(dead_code)] // used by the `redis` feature
    pub(crate) fn unsupported(what: impl Into<Arc<str>>) -> Self {
        Self::new(StoreErrorKind::Unsupported, what, None)
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// What kind of [`StoreError`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The server could not be reached (after reconnecting for a while)
    /// or kept declining for now (loading its data, busy with a script);
    /// nothing was done, and the same call may work later.
    Unavailable,
    /// The connection was lost after a publish was sent: the message may
    /// or may not be stored. Read the topic before publishing again if a
    /// duplicate matters.
    OutcomeUnknown,
    /// The topic was deleted (or the server lost its data) while this
    /// handle used it.
    TopicGone,
    /// The server lost messages it had stored (restarted from an older
    /// copy of its data, a failover to a replica that lagged): a reader
    /// past the end of the log is told rather than left waiting for
    /// offsets new messages would never reach. Seek to a retained offset
    /// to go on.
    DataLost,
    /// The operation cannot work on this store (see the README's "in
    /// memory vs Redis" table): synchronous calls, `lru_enabled: false`,
    /// byte budgets and the like.
    Unsupported,
    /// The server answered something unexpected: a command it refused
    /// (a key of the wrong type, an entry ID at or below the log's top),
    /// data this crate never writes (a partition count of 0), or an entry
    /// that is no message (no payload, a key that is not UTF-8: reported
    /// once, then passed). Asking again would not change it.
    Protocol,
}

/// A publish that did not happen; the message comes back inside.
///
/// `Debug` does not require `T: Debug`, so `?` into `anyhow::Error` works
/// for any payload.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, PublishError, PublishErrorKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let publisher = mq.publisher("orders");
/// mq.close();
/// let err = publisher.publish(String::from("order 1")).await.unwrap_err();
/// assert!(matches!(&err, PublishError::Closed(order) if order == "order 1"));
/// assert_eq!((err.kind(), err.to_string()), (PublishErrorKind::Closed, "topic closed".to_string()));
/// assert_eq!(format!("{err:?}"), "Closed(..)", "the payload is not shown");
/// assert_eq!(err.into_inner(), "order 1");
/// # Ok(()) }
/// ```
#[derive(PartialEq, Eq, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError<T> {
    /// The topic is full and has `lru_enabled: false`; only
    /// [`try_publish`](crate::Publisher::try_publish) returns this,
    /// [`publish`](crate::Publisher::publish) waits instead.
    #[error("topic is full")]
    Full(T),
    /// The topic is closed: deleted, its queue
    /// [closed](crate::MessageQueue::close), or (for a publisher bound to
    /// a deleted topic) gone for good.
    #[error("topic closed")]
    Closed(T),
    /// A publish with a timeout waited that long for room (over Redis:
    /// for the server; nothing was sent).
    #[error("timed out waiting for room in the topic (over Redis: for the server)")]
    Timeout(T),
    /// The message or batch is larger than the topic can ever hold.
    #[error("message is larger than the topic can hold")]
    TooLarge(T),
    /// The topic has handed out its last offset.
    #[error("topic has used up its offsets")]
    OffsetsExhausted(T),
    /// The partitioned topic's router could not place the message (a
    /// `Fixed` partition or custom router out of range, a router that
    /// panicked), the topic named by the message does not exist, or (for
    /// [`publish_shared_data`](crate::Publisher::publish_shared_data)) it
    /// names a topic other than the publisher's.
    #[error("message could not be routed to its topic or partition")]
    Unroutable(T),
    /// The value could not be serialized with the topic's or publisher's
    /// serialization defaults; nothing was published.
    #[error("message could not be serialized")]
    Encode {
        /// The value.
        value: T,
        /// Why (also the error's [`source`](std::error::Error::source)).
        #[source]
        error: EncodeError,
    },
    /// The store behind a queue made with `MessageQueue::connect` (Redis)
    /// failed or cannot do this; see [`StoreError::kind`] for whether the
    /// message may have been stored
    /// ([`StoreErrorKind::OutcomeUnknown`]) or certainly was not.
    #[error("{error}")]
    Store {
        /// The value.
        value: T,
        /// Why (also the error's [`source`](std::error::Error::source)).
        #[source]
        error: StoreError,
    },
}

impl<T> PublishError<T> {
    /// The message that was not published.
    ///
    /// # Examples
    ///
    /// A value refused by a closed queue, published to another one:
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let (old, new) = (MessageQueue::new(), MessageQueue::new());
    /// let sub = new.subscriber("jobs").await?;
    /// old.close();
    /// let job = old.publisher("jobs").publish(vec![1u8, 2]).await.unwrap_err().into_inner();
    /// new.publisher("jobs").publish(job).await?;
    /// assert_eq!(*sub.recv().await?.native::<Vec<u8>>().unwrap(), [1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PublishError::Full(v)
            | PublishError::Closed(v)
            | PublishError::Timeout(v)
            | PublishError::TooLarge(v)
            | PublishError::OffsetsExhausted(v)
            | PublishError::Unroutable(v)
            | PublishError::Encode { value: v, .. }
            | PublishError::Store { value: v, .. } => v,
        }
    }

    /// Keeps the kind, replaces the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PublishError, SerializationFormat, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_bytes: Some(1024), ..TopicOptions::default() };
    /// mq.create_topic("blobs", options).await?;
    /// let publisher = mq.publisher("blobs");
    /// let err = publisher.publish_bytes(vec![0u8; 2048], SerializationFormat::Raw).await.unwrap_err();
    /// let err = err.map(|bytes| bytes.len());
    /// assert_eq!(err, PublishError::TooLarge(2048));
    /// # Ok(()) }
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PublishError<U> {
        match self {
            PublishError::Full(v) => PublishError::Full(f(v)),
            PublishError::Closed(v) => PublishError::Closed(f(v)),
            PublishError::Timeout(v) => PublishError::Timeout(f(v)),
            PublishError::TooLarge(v) => PublishError::TooLarge(f(v)),
            PublishError::OffsetsExhausted(v) => PublishError::OffsetsExhausted(f(v)),
            PublishError::Unroutable(v) => PublishError::Unroutable(f(v)),
            PublishError::Encode { value, error } => PublishError::Encode {
                value: f(value),
                error,
            },
            PublishError::Store { value, error } => PublishError::Store {
                value: f(value),
                error,
            },
        }
    }

    /// The same error without the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, PublishErrorKind, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let err = mq.publish_to_partitioned(TopicMessage::new("nowhere", 1u8)?).await.unwrap_err();
    /// assert_eq!(err.kind(), PublishErrorKind::Unroutable, "no such topic");
    /// assert_eq!(err.kind().to_string(), err.to_string());
    /// assert_eq!(Error::from(err), Error::Publish(PublishErrorKind::Unroutable));
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> PublishErrorKind {
        match self {
            PublishError::Full(_) => PublishErrorKind::Full,
            PublishError::Closed(_) => PublishErrorKind::Closed,
            PublishError::Timeout(_) => PublishErrorKind::Timeout,
            PublishError::TooLarge(_) => PublishErrorKind::TooLarge,
            PublishError::OffsetsExhausted(_) => PublishErrorKind::OffsetsExhausted,
            PublishError::Unroutable(_) => PublishErrorKind::Unroutable,
            PublishError::Encode { .. } => PublishErrorKind::Encode,
            PublishError::Store { .. } => PublishErrorKind::Store,
        }
    }
}

impl<T> From<memq_partition::PublishError<T>> for PublishError<T> {
    fn from(e: memq_partition::PublishError<T>) -> Self {
        match e {
            memq_partition::PublishError::Partition { error, .. } => error.into(),
            other => PublishError::Unroutable(other.into_inner()),
        }
    }
}

impl<T> From<memq_core::PublishError<T>> for PublishError<T> {
    fn from(e: memq_core::PublishError<T>) -> Self {
        match e {
            memq_core::PublishError::Full(v) => PublishError::Full(v),
            memq_core::PublishError::Closed(v) => PublishError::Closed(v),
            memq_core::PublishError::TooLarge(v) => PublishError::TooLarge(v),
            memq_core::PublishError::OffsetsExhausted(v) => PublishError::OffsetsExhausted(v),
            // memq-core's enum is non-exhaustive; anything new is a
            // failure to publish into a topic that cannot take it.
            other => PublishError::Closed(other.into_inner()),
        }
    }
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}(..)", self.kind())
    }
}

/// What kind of [`PublishError`] happened, without the message.
///
/// # Examples
///
/// Counting failed publishes by kind:
///
/// ```
/// use std::collections::HashMap;
/// use tokio_memq::{MessageQueue, PublishErrorKind, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let options = TopicOptions { max_messages: Some(1), lru_enabled: false, ..TopicOptions::default() };
/// let _sub = mq.subscriber_with_options("jobs", options).await?;
/// let publisher = mq.publisher("jobs");
/// let mut failures: HashMap<PublishErrorKind, usize> = HashMap::new();
/// for job in 0..4u32 {
///     if job == 3 {
///         mq.close();
///     }
///     if let Err(e) = publisher.try_publish(job) {
///         *failures.entry(e.kind()).or_default() += 1;
///     }
/// }
/// assert_eq!(failures, HashMap::from([(PublishErrorKind::Full, 2), (PublishErrorKind::Closed, 1)]));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PublishErrorKind {
    /// See [`PublishError::Full`].
    Full,
    /// See [`PublishError::Closed`].
    Closed,
    /// See [`PublishError::Timeout`].
    Timeout,
    /// See [`PublishError::TooLarge`].
    TooLarge,
    /// See [`PublishError::OffsetsExhausted`].
    OffsetsExhausted,
    /// See [`PublishError::Unroutable`].
    Unroutable,
    /// See [`PublishError::Encode`].
    Encode,
    /// See [`PublishError::Store`].
    Store,
}

impl fmt::Display for PublishErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishErrorKind::Full => "topic is full",
            PublishErrorKind::Closed => "topic closed",
            PublishErrorKind::Timeout => "timed out waiting for room in the topic",
            PublishErrorKind::TooLarge => "message is larger than the topic can hold",
            PublishErrorKind::OffsetsExhausted => "topic has used up its offsets",
            PublishErrorKind::Unroutable => "message could not be routed to its topic or partition",
            PublishErrorKind::Encode => "message could not be serialized",
            PublishErrorKind::Store => "the store failed",
        })
    }
}

/// A commit that could not be recorded; nothing was committed.
///
/// # Examples
///
/// ```
/// use tokio_memq::{CommitError, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("jobs").await?;
/// mq.publisher("jobs").publish(1u8).await?;
/// assert_eq!(sub.commit(5).await, Err(CommitError::NotPublished { offset: 5, high: 1 }));
/// assert_eq!(
///     sub.commit_partition(3, 0).await,
///     Err(CommitError::NoSuchPartition { partition: 3, partitions: 1 })
/// );
/// sub.commit(0).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The offset has not been published; `high` is the next offset the
    /// topic (or partition) will assign.
    #[error("cannot commit offset {offset}: it has not been published (next offset is {high})")]
    NotPublished {
        /// The offset the caller tried to commit.
        offset: u64,
        /// The next offset the topic will assign.
        high: u64,
    },
    /// A partition this subscriber does not read.
    #[error("partition {partition} out of range: this subscriber reads {partitions}")]
    NoSuchPartition {
        /// The index asked for.
        partition: usize,
        /// How many partitions this subscriber reads.
        partitions: usize,
    },
}

/// A topic could not be created or subscribed to as asked.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, PartitionRouting, TopicError, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_topic("plain", TopicOptions::default()).await?;
/// let smaller = TopicOptions { max_messages: Some(5), ..TopicOptions::default() };
/// let err = mq.create_topic("plain", smaller).await.unwrap_err();
/// assert_eq!(err, TopicError::OptionsMismatch { topic: "plain".into() });
/// let err = mq.set_partition_routing("plain", PartitionRouting::Hash).await.unwrap_err();
/// assert_eq!(err, TopicError::NotPartitioned { topic: "plain".into() });
/// assert_eq!(err.to_string(), r#"topic "plain" is not partitioned"#);
/// let err = mq.subscribe_partition("missing", 0, None, Default::default()).await.unwrap_err();
/// assert_eq!(err, TopicError::NoSuchTopic { topic: "missing".into() });
/// mq.close();
/// assert_eq!(mq.subscriber("plain").await.unwrap_err(), TopicError::Closed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The options cannot work (zero capacity, zero TTL...).
    #[error("invalid topic options: {0}")]
    InvalidOptions(#[from] ConfigError),
    /// The topic exists with different retention options; 1.0.0 silently
    /// ignored the new ones.
    #[error("topic {topic:?} already exists with different options")]
    OptionsMismatch {
        /// The topic name.
        topic: String,
    },
    /// A start offset outside the retained window.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    /// The consumer group exists with other settings (ack mode, ack
    /// timeout, delivery limit).
    #[error("consumer group {group:?} already exists with different settings")]
    GroupConfigMismatch {
        /// The group name.
        group: String,
    },
    /// Consumer group settings that cannot work (a `max_pending` of 0).
    #[error("consumer group {group:?}: {reason}")]
    InvalidGroupConfig {
        /// The group.
        group: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The topic or its queue was closed.
    #[error("topic closed")]
    Closed,
    /// A partitioned topic with 0 partitions, or with a count that differs
    /// from the existing topic's (or from `options.partitions`).
    #[error("topic {topic:?}: {requested} partitions requested, {}", match existing {
        Some(n) => format!("it has {n}"),
        None => "not a valid partition count for it".to_string(),
    })]
    PartitionCount {
        /// The topic name.
        topic: String,
        /// The count asked for.
        requested: usize,
        /// The count it has, if it is partitioned.
        existing: Option<usize>,
    },
    /// A partitioned operation (routing, partition stats, a partition
    /// subscription, creating it with partitions) on a topic that exists
    /// and is not partitioned.
    #[error("topic {topic:?} is not partitioned")]
    NotPartitioned {
        /// The topic name.
        topic: String,
    },
    /// A wildcard pattern that does not follow the subject rules (see
    /// [`MessageQueue::subscribe_pattern`](crate::MessageQueue::subscribe_pattern)).
    #[error("invalid topic pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No topic of that name exists.
    #[error("no topic named {topic:?}")]
    NoSuchTopic {
        /// The topic name.
        topic: String,
    },
    /// A partition index the topic does not have.
    #[error("partition {partition} out of range: the topic has {partitions}")]
    NoSuchPartition {
        /// The index asked for.
        partition: usize,
        /// How many partitions the topic has.
        partitions: usize,
    },
    /// See [`StoreError`]: the store behind a queue made with
    /// `MessageQueue::connect` failed or cannot do this.
    #[error(transparent)]
    Store(StoreError),
}

impl From<memq_core::SubscribeError> for TopicError {
    fn from(e: memq_core::SubscribeError) -> Self {
        match e {
            memq_core::SubscribeError::OutOfRange(r) => TopicError::OutOfRange(r),
            _ => TopicError::Closed,
        }
    }
}

impl From<memq_partition::SubscribeError> for TopicError {
    fn from(e: memq_partition::SubscribeError) -> Self {
        match e {
            memq_partition::SubscribeError::OutOfRange(r) => TopicError::NoSuchPartition {
                partition: r.partition,
                partitions: r.partitions,
            },
            memq_partition::SubscribeError::Partition { error, .. } => error.into(),
            _ => TopicError::Closed,
        }
    }
}

/// Why a payload could not be read as the requested type.
///
/// [`source`](std::error::Error::source) reaches the codec's error (and
/// through it the serializer's) when the bytes failed to decode. Two
/// errors are equal when their kind, message, offset and partition are.
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use tokio_memq::{CodecError, CodecErrorKind, DecodeErrorKind, MessageQueue, SerializationFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("readings").await?;
/// mq.publisher("readings").publish_bytes_batch(vec!["17".into(), "{broken".into()], SerializationFormat::Json).await?;
/// assert_eq!(sub.recv().await?.deserialize::<u32>()?, 17);
/// let err = sub.recv().await?.deserialize::<u32>().unwrap_err();
/// assert_eq!((err.kind(), err.offset()), (DecodeErrorKind::Codec(CodecErrorKind::Deserialize), Some(1)));
/// assert!(err.to_string().starts_with("message at offset 1: "));
/// let codec = err.source().and_then(|e| e.downcast_ref::<CodecError>()).expect("the codec's error");
/// assert_eq!(codec.kind(), CodecErrorKind::Deserialize);
/// assert!(codec.source().is_some_and(|e| e.is::<serde_json::Error>()), "and the serializer's");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    message: String,
    offset: Option<u64>,
    partition: Option<usize>,
    source: Option<Arc<memq_codec::CodecError>>,
}

impl PartialEq for DecodeError {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.message, self.offset, self.partition)
            == (other.kind, &other.message, other.offset, other.partition)
    }
}

impl Eq for DecodeError {}

/// The class of a [`DecodeError`].
///
/// # Examples
///
/// ```
/// use tokio_memq::{CodecErrorKind, DecodeError, DecodeErrorKind, SerializationFormat, TopicMessage};
///
/// fn describe(e: &DecodeError) -> &'static str {
///     match e.kind() {
///         DecodeErrorKind::TypeMismatch => "published as another type",
///         DecodeErrorKind::Codec(CodecErrorKind::Deserialize) => "not a valid value",
///         _ => "damaged bytes",
///     }
/// }
/// let native = TopicMessage::new("t", "seven")?;
/// assert_eq!(describe(&native.deserialize::<u32>().unwrap_err()), "published as another type");
/// let json = TopicMessage::from_bytes("t", r#""seven""#, SerializationFormat::Json);
/// assert_eq!(describe(&json.deserialize::<u32>().unwrap_err()), "not a valid value");
/// # Ok::<(), tokio_memq::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A native value whose type cannot be read as the requested one.
    TypeMismatch,
    /// The bytes could not be decoded; the codec's error kind says why
    /// (truncated, checksum mismatch, too large, not a valid `T`...).
    Codec(CodecErrorKind),
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, message: impl Into<String>) -> Self {
        DecodeError {
            kind,
            message: message.into(),
            offset: None,
            partition: None,
            source: None,
        }
    }

    /// Names the message that failed: its offset and, on a partitioned
    /// topic, its partition.
    pub(crate) fn at(mut self, offset: Option<u64>, partition: Option<usize>) -> Self {
        self.offset = offset;
        self.partition = partition;
        self
    }

    /// Why decoding failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{
    ///     Codec, CodecErrorKind, DecodeErrorKind, PipelineConfig, SerializationConfig, SerializationFormat, TopicMessage,
    /// };
    ///
    /// let framed = PipelineConfig { use_magic_header: true, ..PipelineConfig::default() };
    /// let codec = Codec::new(SerializationFormat::Bincode, SerializationConfig::Default, framed)?;
    /// let frame = codec.encode("ada")?;
    /// let read = |bytes| TopicMessage::from_bytes("names", bytes, SerializationFormat::Bincode).deserialize::<String>();
    /// assert_eq!(read(frame.clone())?, "ada");
    /// let cut = read(frame.slice(..frame.len() - 1)).unwrap_err();
    /// assert_eq!(cut.kind(), DecodeErrorKind::Codec(CodecErrorKind::Truncated));
    /// let mut flipped = frame.to_vec();
    /// *flipped.last_mut().unwrap() ^= 1;
    /// let flipped = read(flipped.into()).unwrap_err();
    /// assert_eq!(flipped.kind(), DecodeErrorKind::Codec(CodecErrorKind::ChecksumMismatch));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The offset of the message that failed, when it came from a topic.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("n").await?;
    /// mq.publisher("n").publish_batch(vec!["1", "2", "three"]).await?;
    /// let received = sub.recv_batch(3).await?;
    /// assert_eq!(received[2].deserialize::<u8>().unwrap_err().offset(), Some(2));
    /// let built = TopicMessage::new("n", "three")?;
    /// assert_eq!(built.deserialize::<u8>().unwrap_err().offset(), None, "not from a topic");
    /// # Ok(()) }
    /// ```
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The partition of the message that failed, when it came from a
    /// partitioned topic: with a subscriber that reads every partition,
    /// the offset alone does not say which message it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("n", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("n", PartitionRouting::RoundRobin).await?;
    /// let sub = mq.subscriber("n").await?; // every partition
    /// mq.publisher("n").publish_batch(vec!["1", "two"]).await?; // one to each
    /// let msgs = sub.recv_batch(2).await?;
    /// let bad = msgs.iter().find(|m| m.deserialize::<u8>().is_err()).unwrap();
    /// let err = bad.deserialize::<u8>().unwrap_err();
    /// assert_eq!((err.offset(), err.partition()), (Some(0), bad.partition));
    /// assert!(err.to_string().starts_with(&format!("message at offset 0 of partition {}: ", bad.partition.unwrap())));
    /// let plain = mq.subscriber("plain").await?;
    /// mq.publisher("plain").publish("three").await?;
    /// assert_eq!(plain.recv().await?.deserialize::<u8>().unwrap_err().partition(), None);
    /// # Ok(()) }
    /// ```
    pub fn partition(&self) -> Option<usize> {
        self.partition
    }
}

impl From<memq_codec::CodecError> for DecodeError {
    fn from(e: memq_codec::CodecError) -> Self {
        let mut error = DecodeError::new(DecodeErrorKind::Codec(e.kind()), error_chain(&e));
        error.source = Some(Arc::new(e));
        error
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.offset, self.partition) {
            (Some(o), Some(p)) => write!(f, "message at offset {o} of partition {p}: {}", self.message),
            (Some(o), None) => write!(f, "message at offset {o}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a value could not be serialized for publishing.
///
/// [`source`](std::error::Error::source) reaches the codec's error (and
/// through it the serializer's). Two errors are equal when their kind and
/// message are.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::error::Error as _;
/// use tokio_memq::{CodecError, CodecErrorKind, MessageQueue, PublishError, SerializationFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let cells = HashMap::from([((0u8, 1u8), 'x')]); // JSON object keys must be strings
/// let err = mq.publisher("grid").publish_with_format(cells, SerializationFormat::Json).await.unwrap_err();
/// let PublishError::Encode { value, error } = err else { panic!("expected Encode") };
/// assert_eq!(value[&(0, 1)], 'x', "the value comes back");
/// assert_eq!(error.kind(), CodecErrorKind::Serialize);
/// let codec = error.source().and_then(|e| e.downcast_ref::<CodecError>()).expect("the codec's error");
/// assert!(codec.source().is_some_and(|e| e.is::<serde_json::Error>()));
/// assert!(mq.list_topics().await.is_empty(), "nothing was published");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EncodeError {
    kind: CodecErrorKind,
    message: String,
    source: Arc<memq_codec::CodecError>,
}

impl PartialEq for EncodeError {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.message) == (other.kind, &other.message)
    }
}

impl Eq for EncodeError {}

impl EncodeError {
    /// The codec's error kind (serialization failed, invalid settings,
    /// unsupported format...).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{CodecErrorKind, Error, SerializationFormat, TopicMessage};
    ///
    /// // The raw format takes bytes and text only.
    /// let Err(Error::Encode(err)) = TopicMessage::new_with_format("t", 7u32, SerializationFormat::Raw) else {
    ///     panic!("expected an encode error");
    /// };
    /// assert_eq!(err.kind(), CodecErrorKind::Serialize);
    /// let unknown = SerializationFormat::Custom("never-registered".into());
    /// let Err(Error::Encode(err)) = TopicMessage::new_with_format("t", 7u32, unknown) else { panic!() };
    /// assert_eq!(err.kind(), CodecErrorKind::UnknownFormat);
    /// ```
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }
}

impl From<memq_codec::CodecError> for EncodeError {
    fn from(e: memq_codec::CodecError) -> Self {
        EncodeError {
            kind: e.kind(),
            message: error_chain(&e),
            source: Arc::new(e),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not serialize the message: {}", self.message)
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// A typed receive that failed to receive or to decode.
///
/// # Examples
///
/// ```
/// use tokio_memq::{DecodeErrorKind, MessageQueue, RecvError, RecvTypedError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("counts").await?;
/// let publisher = mq.publisher("counts");
/// publisher.publish(1u32).await?;
/// publisher.publish("two").await?;
/// assert_eq!(sub.recv_typed::<u32>().await?, 1);
/// match sub.recv_typed::<u32>().await {
///     Err(RecvTypedError::Decode(e)) => assert_eq!((e.kind(), e.offset()), (DecodeErrorKind::TypeMismatch, Some(1))),
///     other => panic!("expected a decode error, got {other:?}"),
/// }
/// drop((mq, publisher)); // nobody can publish any more: the topic closes
/// assert_eq!(sub.recv_typed::<u32>().await, Err(RecvTypedError::Recv(RecvError::Closed)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTypedError {
    /// Receiving failed.
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// The message was received but is not a valid `T`; it is consumed,
    /// and [`DecodeError::offset`] names it.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Any error of this crate, for callers that just want `?`.
///
/// # Examples
///
/// Each error type converts with `?`, and `Error` converts on into
/// `anyhow::Error`:
///
/// ```
/// use tokio_memq::{Error, MessageQueue, PublishErrorKind, TopicError};
///
/// async fn first_reading(mq: &MessageQueue) -> Result<u32, Error> {
///     let sub = mq.subscriber("readings").await?; // TopicError
///     mq.publisher("readings").publish(7u32).await?; // PublishError<u32>
///     Ok(sub.recv_typed::<u32>().await?) // RecvTypedError
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// assert_eq!(first_reading(&mq).await?, 7);
/// mq.close();
/// assert_eq!(first_reading(&mq).await, Err(Error::Topic(TopicError::Closed)));
/// let err: Error = mq.publisher("readings").publish(8u32).await.unwrap_err().into();
/// assert_eq!(err, Error::Publish(PublishErrorKind::Closed));
/// let err = anyhow::Error::from(err);
/// assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Publish(PublishErrorKind::Closed)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`PublishError`]; the message was dropped.
    #[error("publish failed: {0}")]
    Publish(PublishErrorKind),
    /// See [`RecvError`].
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// See [`TryRecvError`].
    #[error(transparent)]
    TryRecv(#[from] TryRecvError),
    /// See [`DecodeError`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`TopicError`].
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// See [`CommitError`].
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// See [`OutOfRange`].
    #[error(transparent)]
    Seek(#[from] OutOfRange),
    /// See [`AckError`].
    #[error(transparent)]
    Ack(#[from] AckError),
    /// See [`EncodeError`]: a value could not be serialized (building a
    /// [`TopicMessage`](crate::TopicMessage) in a format, or publishing
    /// through the 1.0.0 traits, which return this `Error`).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// See [`PatternRecvError`](crate::PatternRecvError).
    #[error(transparent)]
    Pattern(#[from] crate::pattern::PatternRecvError),
}

impl<T> From<PublishError<T>> for Error {
    /// The kind of failure; a value that could not be serialized keeps
    /// why ([`Error::Encode`]).
    fn from(e: PublishError<T>) -> Self {
        match e {
            PublishError::Encode { error, .. } => Error::Encode(error),
            e => Error::Publish(e.kind()),
        }
    }
}

impl From<RecvTypedError> for Error {
    fn from(e: RecvTypedError) -> Self {
        match e {
            RecvTypedError::Recv(e) => Error::Recv(e),
            RecvTypedError::Decode(e) => Error::Decode(e),
        }
    }
}
