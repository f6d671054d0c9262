//! Error types of the facade.
//!
//! Each operation family has its own type; [`Error`] gathers them all for
//! code that just wants `?` (and for the backend-neutral traits). Failed
//! publishes hand the message back.

use std::fmt;
use std::sync::Arc;

pub use memq_codec::ErrorKind as CodecErrorKind;
pub use memq_core::{ConfigError, OutOfRange, RecvError, TryRecvError};
pub use memq_groups::AckError;

/// A publish that did not happen; the message comes back inside.
///
/// `Debug` does not require `T: Debug`, so `?` into `anyhow::Error` works
/// for any payload.
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
    /// A publish with a timeout waited that long for room.
    #[error("timed out waiting for room in the topic")]
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
    #[error("{error}")]
    Encode {
        /// The value.
        value: T,
        /// Why.
        error: EncodeError,
    },
}

impl<T> PublishError<T> {
    /// The message that was not published.
    pub fn into_inner(self) -> T {
        match self {
            PublishError::Full(v)
            | PublishError::Closed(v)
            | PublishError::Timeout(v)
            | PublishError::TooLarge(v)
            | PublishError::OffsetsExhausted(v)
            | PublishError::Unroutable(v)
            | PublishError::Encode { value: v, .. } => v,
        }
    }

    /// Keeps the kind, replaces the message.
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
        }
    }

    /// The same error without the message.
    pub fn kind(&self) -> PublishErrorKind {
        match self {
            PublishError::Full(_) => PublishErrorKind::Full,
            PublishError::Closed(_) => PublishErrorKind::Closed,
            PublishError::Timeout(_) => PublishErrorKind::Timeout,
            PublishError::TooLarge(_) => PublishErrorKind::TooLarge,
            PublishError::OffsetsExhausted(_) => PublishErrorKind::OffsetsExhausted,
            PublishError::Unroutable(_) => PublishErrorKind::Unroutable,
            PublishError::Encode { .. } => PublishErrorKind::Encode,
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
/// errors are equal when their kind, message and offset are.
#[derive(Debug, Clone)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    message: String,
    offset: Option<u64>,
    source: Option<Arc<memq_codec::CodecError>>,
}

impl PartialEq for DecodeError {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.message, self.offset) == (other.kind, &other.message, other.offset)
    }
}

impl Eq for DecodeError {}

/// The class of a [`DecodeError`].
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
            source: None,
        }
    }

    pub(crate) fn at(mut self, offset: Option<u64>) -> Self {
        self.offset = offset;
        self
    }

    /// Why decoding failed.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The offset of the message that failed, when it came from a topic.
    pub fn offset(&self) -> Option<u64> {
        self.offset
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
        match self.offset {
            Some(o) => write!(f, "message at offset {o}: {}", self.message),
            None => f.write_str(&self.message),
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
    /// [`TopicMessage`](crate::TopicMessage) in a format).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl<T> From<PublishError<T>> for Error {
    fn from(e: PublishError<T>) -> Self {
        Error::Publish(e.kind())
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
