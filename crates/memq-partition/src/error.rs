//! Error types, one per operation family.
//!
//! Errors that fail a publish hand the message (or the unpublished part of
//! a batch) back, so nothing the caller owned is lost. Errors that concern
//! one partition say which.

use std::fmt;
use std::ops::Range;

/// A partitioned topic that cannot be created.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::{ConfigError, PartitionedTopic};
///
/// let err = PartitionedTopic::<u8>::new(TopicConfig::default().max_messages(Some(0)), 2).unwrap_err();
/// assert_eq!(err, ConfigError::Topic(memq_core::ConfigError::ZeroCapacity));
/// assert_eq!(err.to_string(), "max_messages must be at least 1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The partition count is 0: nothing could ever be published.
    ZeroPartitions,
    /// More partitions than [`MAX_PARTITIONS`](crate::MAX_PARTITIONS):
    /// each is a topic of its own, made when the topic is.
    TooManyPartitions(usize),
    /// The per-partition [`TopicConfig`](memq_core::TopicConfig) cannot work.
    Topic(memq_core::ConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroPartitions => f.write_str("a partitioned topic needs at least 1 partition"),
            ConfigError::TooManyPartitions(n) => write!(
                f,
                "{n} partitions: a partitioned topic has at most {}",
                crate::MAX_PARTITIONS
            ),
            ConfigError::Topic(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Topic(e) => Some(e),
            ConfigError::ZeroPartitions | ConfigError::TooManyPartitions(_) => None,
        }
    }
}

impl From<memq_core::ConfigError> for ConfigError {
    fn from(e: memq_core::ConfigError) -> Self {
        ConfigError::Topic(e)
    }
}

/// A partition index at or past the partition count.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::{PartitionOutOfRange, PartitionedTopic};
///
/// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 2).unwrap();
/// let err = topic.partition_stats(5).unwrap_err();
/// assert_eq!(err, PartitionOutOfRange { partition: 5, partitions: 2 });
/// assert_eq!(err.to_string(), "partition 5 out of range (the topic has 2 partitions)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOutOfRange {
    /// The partition asked for.
    pub partition: usize,
    /// How many partitions the topic has (valid indices are below this).
    pub partitions: usize,
}

impl fmt::Display for PartitionOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition {} out of range (the topic has {} partitions)",
            self.partition, self.partitions
        )
    }
}

impl std::error::Error for PartitionOutOfRange {}

/// Why the router could not place a message.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::{PartitionedTopic, RouteError, Routing};
///
/// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 2).unwrap();
/// topic.set_routing(Routing::custom(|_key: Option<&[u8]>, _n: usize| -> usize { panic!("bug") }));
/// assert_eq!(topic.route(None), Err(RouteError::RouterPanicked));
/// topic.set_routing(Routing::custom(|_key: Option<&[u8]>, n: usize| n));
/// assert!(matches!(topic.route(None), Err(RouteError::RouterOutOfRange(e)) if e.partition == 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// [`Routing::Fixed`](crate::Routing::Fixed) names a partition the
    /// topic does not have.
    FixedOutOfRange(PartitionOutOfRange),
    /// A custom [`Router`](crate::Router) returned a partition the topic
    /// does not have.
    RouterOutOfRange(PartitionOutOfRange),
    /// A custom [`Router`](crate::Router) panicked. The topic is unaffected.
    RouterPanicked,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::FixedOutOfRange(e) => write!(f, "fixed routing: {e}"),
            RouteError::RouterOutOfRange(e) => write!(f, "custom router returned {e}"),
            RouteError::RouterPanicked => f.write_str("custom router panicked"),
        }
    }
}

impl std::error::Error for RouteError {}

/// A publish that did not happen; the message comes back inside.
///
/// `Debug` does not require `T: Debug`, so `?` into `anyhow::Error` or
/// `Box<dyn Error>` works for any payload.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::{PartitionedTopic, PublishError};
///
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// topic.partition(0).unwrap().close();
/// let err = topic.try_publish(None, String::from("kept")).unwrap_err();
/// assert_eq!(err.partition(), Some(0));
/// assert!(matches!(&err, PublishError::Partition { error: memq_core::PublishError::Closed(_), .. }));
/// assert_eq!(err.to_string(), "partition 0: topic closed");
/// assert_eq!(err.into_inner(), "kept");
/// ```
#[derive(PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum PublishError<T> {
    /// The router could not place the message; nothing was published.
    Route {
        /// Why.
        error: RouteError,
        /// The message.
        value: T,
    },
    /// The chosen partition refused the message (closed, full on
    /// `try_publish`, too large, out of offsets).
    Partition {
        /// The partition the message was routed to.
        partition: usize,
        /// The partition's error, holding the message.
        error: memq_core::PublishError<T>,
    },
}

impl<T> PublishError<T> {
    /// The message that was not published.
    pub fn into_inner(self) -> T {
        match self {
            PublishError::Route { value, .. } => value,
            PublishError::Partition { error, .. } => error.into_inner(),
        }
    }

    /// A reference to the message that was not published.
    pub fn get_ref(&self) -> &T {
        match self {
            PublishError::Route { value, .. } => value,
            PublishError::Partition { error, .. } => error.get_ref(),
        }
    }

    /// The partition the message was routed to, if routing succeeded.
    pub fn partition(&self) -> Option<usize> {
        match self {
            PublishError::Route { .. } => None,
            PublishError::Partition { partition, .. } => Some(*partition),
        }
    }

    /// Keeps the kind of failure and replaces the message.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PublishError<U> {
        match self {
            PublishError::Route { error, value } => PublishError::Route {
                error,
                value: f(value),
            },
            PublishError::Partition { partition, error } => PublishError::Partition {
                partition,
                error: error.map(f),
            },
        }
    }
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Route { error, .. } => f
                .debug_struct("Route")
                .field("error", error)
                .finish_non_exhaustive(),
            PublishError::Partition { partition, error } => f
                .debug_struct("Partition")
                .field("partition", partition)
                .field("error", error)
                .finish(),
        }
    }
}

impl<T> fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Route { error, .. } => error.fmt(f),
            PublishError::Partition { partition, error } => write!(f, "partition {partition}: {error}"),
        }
    }
}

impl<T> std::error::Error for PublishError<T> {}

/// A batch publish that stopped part-way, or never started.
///
/// Shares are published in ascending partition order, each as one
/// contiguous run. [`published`](Self::published) lists the shares that
/// made it; [`unpublished`](Self::unpublished) hands back every other
/// message (the failed share and the shares not attempted), with its key,
/// in the order the caller gave them. Nothing is dropped.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::{PartitionedTopic, Routing};
///
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// topic.set_routing(Routing::Hash);
/// topic.partition(0).unwrap().close();
/// // "21" → partition 0 (closed), "abc" → partition 1 of 2.
/// let batch = vec![(Some("abc"), 1), (Some("21"), 2)];
/// let err = topic.try_publish_batch(batch).unwrap_err();
/// assert_eq!(err.cause.partition(), Some(0));
/// assert!(err.published.is_empty()); // partition 0 comes first: nothing published
/// assert_eq!(err.unpublished_index, [0, 1]);
/// assert_eq!(err.into_unpublished(), vec![(Some("abc"), 1), (Some("21"), 2)]);
/// ```
#[non_exhaustive]
pub struct PublishBatchError<K, T> {
    /// Why the batch stopped: a routing error (nothing published), or the
    /// partition whose share failed and how.
    pub cause: PublishError<()>,
    /// The shares that were published: partition and offsets, ascending
    /// partition order.
    pub published: Vec<(usize, Range<u64>)>,
    /// The messages not published, in input order.
    pub unpublished: Vec<(Option<K>, T)>,
    /// The position in the input of each of [`unpublished`](Self::unpublished),
    /// ascending: for a caller that kept something of its own per message
    /// (the values a batch was encoded from) to hand back the right ones.
    pub unpublished_index: Vec<usize>,
}

impl<K, T> PublishBatchError<K, T> {
    /// The messages not published, in input order.
    pub fn into_unpublished(self) -> Vec<(Option<K>, T)> {
        self.unpublished
    }
}

impl<K, T> fmt::Debug for PublishBatchError<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishBatchError")
            .field("cause", &self.cause)
            .field("published", &self.published)
            .field("unpublished", &self.unpublished.len())
            .finish()
    }
}

impl<K, T> fmt::Display for PublishBatchError<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch publish stopped: {} ({} shares published, {} messages handed back)",
            self.cause,
            self.published.len(),
            self.unpublished.len()
        )
    }
}

impl<K, T> std::error::Error for PublishBatchError<K, T> {}

/// Why a subscription could not start.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, TopicConfig};
/// use memq_partition::{PartitionedTopic, SubscribeError};
///
/// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 2).unwrap();
/// let err = topic.subscribe_all(StartFrom::Offset(7)).unwrap_err();
/// assert!(matches!(err, SubscribeError::Partition { partition: 0, .. }));
/// assert_eq!(err.to_string(), "partition 0: offset 7 is outside the retained window 0..=0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The topic has no such partition.
    OutOfRange(PartitionOutOfRange),
    /// The partition refused the subscription (offset not retained, or
    /// closed).
    Partition {
        /// The partition.
        partition: usize,
        /// Its error.
        error: memq_core::SubscribeError,
    },
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::OutOfRange(e) => e.fmt(f),
            SubscribeError::Partition { partition, error } => write!(f, "partition {partition}: {error}"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Why a waiting receive on a [`MergedCursor`](crate::MergedCursor)
/// returned without a message.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, TopicConfig};
/// use memq_partition::{PartitionedTopic, RecvError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default().max_messages(Some(1)), 2).unwrap();
/// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
/// topic.partition(1).unwrap().try_publish(1).unwrap();
/// topic.partition(1).unwrap().try_publish(2).unwrap(); // evicts 1
/// assert_eq!(all.recv().await.unwrap_err(), RecvError::Lagged { partition: 1, skipped: 1 });
/// assert_eq!(all.recv().await.unwrap().1.value, 2);
/// topic.close();
/// assert_eq!(all.recv().await.unwrap_err(), RecvError::Closed);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// The cursor fell behind in `partition` and `skipped` of its offsets
    /// were evicted unread; reading that partition continues at its oldest
    /// retained message.
    Lagged {
        /// The partition the messages were lost in.
        partition: usize,
        /// How many offsets were skipped.
        skipped: u64,
    },
    /// Every partition is closed and every message the cursor could still
    /// read has been delivered.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged { partition, skipped } => {
                write!(
                    f,
                    "partition {partition}: subscriber lagged: {skipped} messages were evicted unread"
                )
            }
            RecvError::Closed => f.write_str("every partition closed"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Why a non-waiting receive on a [`MergedCursor`](crate::MergedCursor)
/// returned without a message.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, TopicConfig};
/// use memq_partition::{PartitionedTopic, TryRecvError};
///
/// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 2).unwrap();
/// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
/// assert_eq!(all.try_recv().unwrap_err(), TryRecvError::Empty);
/// topic.close();
/// assert_eq!(all.try_recv().unwrap_err(), TryRecvError::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No partition has a message right now.
    Empty,
    /// See [`RecvError::Lagged`].
    Lagged {
        /// The partition the messages were lost in.
        partition: usize,
        /// How many offsets were skipped.
        skipped: u64,
    },
    /// See [`RecvError::Closed`].
    Closed,
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged { partition, skipped } => TryRecvError::Lagged { partition, skipped },
            RecvError::Closed => TryRecvError::Closed,
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no message available"),
            TryRecvError::Lagged { partition, skipped } => RecvError::Lagged {
                partition: *partition,
                skipped: *skipped,
            }
            .fmt(f),
            TryRecvError::Closed => RecvError::Closed.fmt(f),
        }
    }
}

impl std::error::Error for TryRecvError {}
