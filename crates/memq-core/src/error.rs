//! Error types, one per operation family.
//!
//! Errors that fail a publish hand the message back, so nothing the caller
//! owned is lost. A subscriber that fell behind learns the exact number of
//! offsets it skipped.

use std::fmt;

/// A [`TopicConfig`](crate::TopicConfig) that cannot work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memq_core::{ConfigError, Topic, TopicConfig};
///
/// let budget = TopicConfig::default().max_bytes(Some(1024));
/// assert_eq!(Topic::<Vec<u8>>::new(budget.clone()).unwrap_err(), ConfigError::ByteBudgetWithoutWeigher);
/// assert!(Topic::with_weigher(budget, |v: &Vec<u8>| v.len()).is_ok());
///
/// let ttl = TopicConfig::default().ttl(Some(Duration::ZERO));
/// assert_eq!(Topic::<u8>::new(ttl).unwrap_err(), ConfigError::ZeroTtl);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_messages` is `Some(0)`: nothing could ever be published.
    ZeroCapacity,
    /// `max_bytes` is `Some(0)`: nothing could ever be published.
    ZeroByteBudget,
    /// `max_bytes` is set but the topic has no weigher to measure messages.
    ByteBudgetWithoutWeigher,
    /// `ttl` is zero: every message would expire before anyone read it.
    ZeroTtl,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::ZeroCapacity => "max_messages must be at least 1",
            ConfigError::ZeroByteBudget => "max_bytes must be at least 1",
            ConfigError::ByteBudgetWithoutWeigher => {
                "max_bytes needs a weigher (Topic::with_weigher) to measure messages"
            }
            ConfigError::ZeroTtl => "ttl must be longer than zero",
        })
    }
}

impl std::error::Error for ConfigError {}

/// A publish that did not happen; the message comes back inside.
///
/// `Debug` does not require `T: Debug`, so `?` into `anyhow::Error` or
/// `Box<dyn Error>` works for any payload.
///
/// # Examples
///
/// ```
/// use memq_core::{Overflow, PublishError, StartFrom, Topic, TopicConfig};
///
/// let config = TopicConfig::default().max_messages(Some(1)).overflow(Overflow::Block);
/// let topic = Topic::new(config).unwrap();
/// let _reader = topic.subscribe(StartFrom::Earliest).unwrap();
/// topic.try_publish(String::from("a")).unwrap();
///
/// // Full: `_reader` has not read "a" yet. The message comes back.
/// let err = topic.try_publish(String::from("b")).unwrap_err();
/// assert!(matches!(err, PublishError::Full(_)));
/// assert_eq!(err.into_inner(), "b");
/// // Two messages never fit in a topic of one.
/// let batch = vec![String::from("c"), String::from("d")];
/// assert!(matches!(topic.try_publish_batch(batch), Err(PublishError::TooLarge(_))));
/// topic.close();
/// assert_eq!(topic.try_publish(String::from("e")), Err(PublishError::Closed("e".into())));
///
/// let last = Topic::new(TopicConfig::default().first_offset(u64::MAX - 1)).unwrap();
/// assert_eq!(last.try_publish(1), Ok(u64::MAX - 1));
/// assert_eq!(last.try_publish(2), Err(PublishError::OffsetsExhausted(2)));
/// ```
#[derive(PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum PublishError<T> {
    /// The topic is full and its overflow policy is
    /// [`Overflow::Block`](crate::Overflow::Block); only `try_publish`
    /// returns this, `publish` waits instead.
    Full(T),
    /// The topic was closed; nothing more can be published to it.
    Closed(T),
    /// The message (or batch) is larger than the topic can ever hold: more
    /// messages than `max_messages` or more bytes than `max_bytes`.
    TooLarge(T),
    /// The topic has handed out its last offset (`u64::MAX - 1`).
    OffsetsExhausted(T),
}

impl<T> PublishError<T> {
    /// The message that was not published.
    pub fn into_inner(self) -> T {
        match self {
            PublishError::Full(v)
            | PublishError::Closed(v)
            | PublishError::TooLarge(v)
            | PublishError::OffsetsExhausted(v) => v,
        }
    }

    /// A reference to the message that was not published.
    pub fn get_ref(&self) -> &T {
        match self {
            PublishError::Full(v)
            | PublishError::Closed(v)
            | PublishError::TooLarge(v)
            | PublishError::OffsetsExhausted(v) => v,
        }
    }

    /// Keeps the kind of failure and replaces the message, e.g. to hand
    /// back the caller's value instead of an internal wrapper.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PublishError<U> {
        match self {
            PublishError::Full(v) => PublishError::Full(f(v)),
            PublishError::Closed(v) => PublishError::Closed(f(v)),
            PublishError::TooLarge(v) => PublishError::TooLarge(f(v)),
            PublishError::OffsetsExhausted(v) => PublishError::OffsetsExhausted(f(v)),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            PublishError::Full(_) => "Full",
            PublishError::Closed(_) => "Closed",
            PublishError::TooLarge(_) => "TooLarge",
            PublishError::OffsetsExhausted(_) => "OffsetsExhausted",
        }
    }
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(..)", self.name())
    }
}

impl<T> fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishError::Full(_) => "topic is full",
            PublishError::Closed(_) => "topic closed",
            PublishError::TooLarge(_) => "message is larger than the topic can hold",
            PublishError::OffsetsExhausted(_) => "topic has used up its offsets",
        })
    }
}

impl<T> std::error::Error for PublishError<T> {}

/// Why a waiting receive returned without a message.
///
/// # Examples
///
/// ```
/// use memq_core::{RecvError, StartFrom, Topic, TopicConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let topic = Topic::new(TopicConfig::default().max_messages(Some(2)))?;
/// let mut cursor = topic.subscribe(StartFrom::Earliest)?;
/// for i in 0..5 { topic.publish(i).await?; }
///
/// // Offsets 0 to 2 were evicted before the cursor read them.
/// assert_eq!(cursor.recv().await.unwrap_err(), RecvError::Lagged(3));
/// assert_eq!(cursor.recv().await?.offset, 3);
/// topic.close();
/// assert_eq!(cursor.recv().await?.offset, 4);
/// assert_eq!(cursor.recv().await.unwrap_err(), RecvError::Closed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and this many offsets were evicted
    /// before it read them. The next receive continues at the oldest
    /// retained message.
    Lagged(u64),
    /// The topic was closed and every message this subscriber could still
    /// read has been delivered.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "subscriber lagged: {n} messages were evicted unread"),
            RecvError::Closed => f.write_str("topic closed"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Why a non-waiting receive returned without a message.
///
/// # Examples
///
/// ```
/// use memq_core::{RecvError, StartFrom, Topic, TopicConfig, TryRecvError};
///
/// let topic = Topic::<u8>::new(TopicConfig::default()).unwrap();
/// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
/// assert_eq!(cursor.try_recv().unwrap_err(), TryRecvError::Empty); // nothing published yet
/// topic.close();
/// assert_eq!(cursor.try_recv().unwrap_err(), TryRecvError::Closed);
/// assert_eq!(TryRecvError::from(RecvError::Lagged(2)), TryRecvError::Lagged(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is available right now.
    Empty,
    /// See [`RecvError::Lagged`].
    Lagged(u64),
    /// See [`RecvError::Closed`].
    Closed,
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Closed => TryRecvError::Closed,
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no message available"),
            TryRecvError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            TryRecvError::Closed => RecvError::Closed.fmt(f),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// An offset outside the retained window `[low, high]`.
///
/// # Examples
///
/// ```
/// use memq_core::{OutOfRange, StartFrom, Topic, TopicConfig};
///
/// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
/// for i in 0..4 { topic.try_publish(i).unwrap(); } // retains offsets 2 and 3
/// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
/// let err = cursor.seek(1).unwrap_err();
/// assert_eq!(err, OutOfRange { requested: 1, low: 2, high: 4 });
/// assert_eq!(err.to_string(), "offset 1 is outside the retained window 2..=4");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    /// The offset asked for.
    pub requested: u64,
    /// The oldest retained offset.
    pub low: u64,
    /// The offset the next published message will get.
    pub high: u64,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset {} is outside the retained window {}..={}",
            self.requested, self.low, self.high
        )
    }
}

impl std::error::Error for OutOfRange {}

/// Why a subscription could not start.
///
/// # Examples
///
/// ```
/// use memq_core::{OutOfRange, StartFrom, SubscribeError, Topic, TopicConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// topic.try_publish('a').unwrap();
/// assert!(topic.subscribe(StartFrom::Offset(1)).is_ok()); // the next offset may be named
/// let err = topic.subscribe(StartFrom::Offset(2)).unwrap_err();
/// assert_eq!(err, SubscribeError::OutOfRange(OutOfRange { requested: 2, low: 0, high: 1 }));
/// topic.close();
/// assert_eq!(topic.subscribe(StartFrom::Earliest).unwrap_err(), SubscribeError::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// [`StartFrom::Offset`](crate::StartFrom::Offset) named an offset
    /// that is not retained (evicted, or not yet published).
    OutOfRange(OutOfRange),
    /// The topic was closed.
    Closed,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::OutOfRange(e) => e.fmt(f),
            SubscribeError::Closed => f.write_str("topic closed"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// A commit of an offset that does not exist yet.
///
/// # Examples
///
/// ```
/// use memq_core::{CommitError, StartFrom, Topic, TopicConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let mut cursor = topic.subscribe_named("audit", StartFrom::Earliest).unwrap();
/// topic.try_publish(()).unwrap();
/// assert!(cursor.commit(0).is_ok());
/// assert_eq!(cursor.commit(1), Err(CommitError::NotPublished { offset: 1, high: 1 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitError {
    /// The offset has not been published; `high` is the next offset the
    /// topic will assign.
    NotPublished {
        /// The offset the caller tried to commit.
        offset: u64,
        /// The next offset the topic will assign.
        high: u64,
    },
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::NotPublished { offset, high } => write!(
                f,
                "cannot commit offset {offset}: it has not been published (next offset is {high})"
            ),
        }
    }
}

impl std::error::Error for CommitError {}
