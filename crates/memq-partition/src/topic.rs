//! The partitioned topic handle and the single-message publish future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use memq_core::{Cursor, StartFrom, Topic, TopicConfig, TopicStats};

use crate::batch::{BatchReceipt, PublishBatch};
use crate::error::{
    ConfigError, PartitionOutOfRange, PublishBatchError, PublishError, RouteError, SubscribeError,
};
use crate::merged::MergedCursor;
use crate::routing::{RouterState, Routing};
use crate::stats::PartitionedStats;

/// A topic split into `n` independent partitions, each a
/// [`memq_core::Topic`] with its own offsets, plus a router that picks
/// the partition of every message.
///
/// `PartitionedTopic` is a cheap handle: `Clone` shares the same
/// partitions and router. When the last handle is dropped, every
/// partition closes (unless a [`Topic`] handle obtained from
/// [`partition`](Self::partition) still holds it open).
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, TopicConfig};
/// use memq_partition::{PartitionedTopic, Routing};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 4).unwrap();
/// topic.set_routing(Routing::Hash);
///
/// // Kafka's partitioner: murmur2("foobar") & 0x7fffffff = 1357151166, % 4 = 2.
/// let (partition, offset) = topic.publish(Some(b"foobar"), "hello").await.unwrap();
/// assert_eq!((partition, offset), (2, 0));
///
/// let mut cursor = topic.subscribe_partition(2, StartFrom::Earliest).unwrap();
/// assert_eq!(cursor.try_recv().unwrap().value, "hello");
/// # }
/// ```
pub struct PartitionedTopic<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    partitions: Box<[Topic<T>]>,
    router: RouterState,
    /// The settings it was made with (each partition's are these with its
    /// number as [`TopicConfig::partition`]).
    config: TopicConfig,
}

impl<T> Clone for PartitionedTopic<T> {
    fn clone(&self) -> Self {
        PartitionedTopic {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for PartitionedTopic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedTopic")
            .field("partitions", &self.inner.partitions.len())
            .field("router", &self.inner.router)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> PartitionedTopic<T> {
    /// Creates a topic of `partitions` partitions, each with its own copy
    /// of `config` (limits such as `max_messages` apply per partition).
    /// Routing starts as [`Routing::RoundRobin`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroPartitions`] for 0 partitions,
    /// [`ConfigError::TooManyPartitions`] for more than
    /// [`MAX_PARTITIONS`](crate::MAX_PARTITIONS), [`ConfigError::Topic`]
    /// for a `config` that cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::{ConfigError, PartitionedTopic};
    ///
    /// let topic = PartitionedTopic::<u32>::new(TopicConfig::default(), 3).unwrap();
    /// assert_eq!(topic.partition_count(), 3);
    ///
    /// let err = PartitionedTopic::<u32>::new(TopicConfig::default(), 0).unwrap_err();
    /// assert_eq!(err, ConfigError::ZeroPartitions);
    /// let err = PartitionedTopic::<u32>::new(TopicConfig::default(), 1 << 40).unwrap_err();
    /// assert_eq!(err, ConfigError::TooManyPartitions(1 << 40));
    /// ```
    pub fn new(config: TopicConfig, partitions: usize) -> Result<Self, ConfigError> {
        Self::build(config, partitions, Topic::new)
    }

    /// Creates a topic whose partitions measure messages with `weigher`,
    /// for byte budgets and byte stats (see [`Topic::with_weigher`]).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::PartitionedTopic;
    ///
    /// let config = TopicConfig::default().max_bytes(Some(8));
    /// let topic = PartitionedTopic::with_weigher(config, 2, |v: &Vec<u8>| v.len()).unwrap();
    /// topic.try_publish(None, vec![0; 5]).unwrap(); // partition 0
    /// topic.try_publish(None, vec![0; 3]).unwrap(); // partition 1
    /// assert_eq!(topic.stats().bytes, 8);
    /// ```
    pub fn with_weigher(
        config: TopicConfig,
        partitions: usize,
        weigher: fn(&T) -> usize,
    ) -> Result<Self, ConfigError> {
        Self::build(config, partitions, |c| Topic::with_weigher(c, weigher))
    }

    fn build(
        config: TopicConfig,
        partitions: usize,
        mut make: impl FnMut(TopicConfig) -> Result<Topic<T>, memq_core::ConfigError>,
    ) -> Result<Self, ConfigError> {
        if partitions == 0 {
            return Err(ConfigError::ZeroPartitions);
        }
        // Checked before any is made: each partition is a topic (and a
        // count from user input could ask for more than memory holds).
        if partitions > crate::MAX_PARTITIONS {
            return Err(ConfigError::TooManyPartitions(partitions));
        }
        let topics = (0..partitions)
            // Below MAX_PARTITIONS (2^16): every index fits the label.
            .map(|p| make(config.clone().partition(u16::try_from(p).ok())))
            .collect::<Result<Box<[_]>, _>>()?;
        Ok(PartitionedTopic {
            inner: Arc::new(Inner {
                partitions: topics,
                router: RouterState::new(partitions),
                config,
            }),
        })
    }

    /// Publishes a message to the partition the router picks and returns
    /// `(partition, offset)`.
    ///
    /// The partition is chosen when `publish` is called, not when the
    /// future is first polled. On a full
    /// [`Overflow::Block`](memq_core::Overflow::Block) partition the future
    /// waits; otherwise it completes on its first poll. Dropping it before
    /// completion publishes nothing.
    ///
    /// # Errors
    ///
    /// [`PublishError::Route`] when the router cannot place the message,
    /// [`PublishError::Partition`] when the partition refuses it; both
    /// hand the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::{PartitionedTopic, PublishError, RouteError, Routing};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// assert_eq!(topic.publish(None, 'a').await.unwrap(), (0, 0));
    /// assert_eq!(topic.publish(None, 'b').await.unwrap(), (1, 0));
    /// assert_eq!(topic.publish(None, 'c').await.unwrap(), (0, 1));
    ///
    /// topic.set_routing(Routing::Fixed(5));
    /// match topic.publish(None, 'd').await {
    ///     Err(PublishError::Route { error: RouteError::FixedOutOfRange(e), value }) => {
    ///         assert_eq!((e.partition, e.partitions, value), (5, 2, 'd'));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn publish(&self, key: Option<&[u8]>, value: T) -> Publish<'_, T> {
        let state = match self.inner.router.route(key) {
            Ok(partition) => State::Routed {
                partition,
                publish: self.inner.partitions[partition].publish(value),
            },
            Err(error) => State::Failed(Some(PublishError::Route { error, value })),
        };
        Publish { state }
    }

    /// Publishes a message if that needs no waiting, and returns
    /// `(partition, offset)`.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), plus a partition's
    /// [`memq_core::PublishError::Full`] where `publish` would wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::{PartitionedTopic, PublishError};
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// assert_eq!(topic.try_publish(None, 1).unwrap(), (0, 0));
    /// topic.close();
    /// match topic.try_publish(None, 2) {
    ///     Err(PublishError::Partition { partition: 1, error }) => assert_eq!(error.into_inner(), 2),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn try_publish(&self, key: Option<&[u8]>, value: T) -> Result<(usize, u64), PublishError<T>> {
        let partition = match self.inner.router.route(key) {
            Ok(p) => p,
            Err(error) => return Err(PublishError::Route { error, value }),
        };
        self.inner.partitions[partition]
            .try_publish(value)
            .map(|offset| (partition, offset))
            .map_err(|error| PublishError::Partition { partition, error })
    }

    /// Publishes messages, each routed by its key; every partition's share
    /// is published as one contiguous, in-order run of offsets (one
    /// [`Topic::publish_batch`] per partition).
    ///
    /// Routing is done first, for the whole batch, under one snapshot of
    /// the strategy: if any message cannot be routed, nothing is
    /// published. Shares are then published in ascending partition order,
    /// each all or nothing. If a share fails (a closed partition, say),
    /// publishing stops there: the shares before it stay published, and
    /// [`PublishBatchError`] lists them and hands back every other message
    /// with its key, in input order. See the crate docs, `## Batches`.
    ///
    /// Dropping the future before it completes may leave a prefix of the
    /// shares published; [`PublishBatch::take_unpublished`] recovers the
    /// rest first.
    ///
    /// # Errors
    ///
    /// [`PublishBatchError`], as above.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::{PartitionedTopic, Routing};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 4).unwrap();
    /// topic.set_routing(Routing::Hash);
    /// let batch = vec![
    ///     (Some("foobar"), 1), // partition 2
    ///     (Some("21"), 2),     // partition 0
    ///     (Some("foobar"), 3), // partition 2
    /// ];
    /// let receipt = topic.publish_batch(batch).await.unwrap();
    /// assert_eq!(receipt.shares(), &[(0, 0..1), (2, 0..2)]);
    /// assert_eq!(receipt.placements(), vec![(2, 0), (0, 0), (2, 1)]);
    /// # }
    /// ```
    pub fn publish_batch<K: AsRef<[u8]>>(&self, messages: Vec<(Option<K>, T)>) -> PublishBatch<'_, K, T> {
        PublishBatch::new(&self.inner.partitions, &self.inner.router, messages)
    }

    /// [`publish_batch`](Self::publish_batch) without waiting.
    ///
    /// # Errors
    ///
    /// As [`publish_batch`](Self::publish_batch); a share that would have
    /// to wait fails with [`memq_core::PublishError::Full`] and stops the
    /// batch there.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::{PartitionedTopic, PublishError, Routing};
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
    /// topic.partition(1).unwrap().close();
    /// let batch: Vec<(Option<&[u8]>, char)> = vec![(None, 'a'), (None, 'b'), (None, 'c'), (None, 'd')];
    /// // Round-robin: a→0, b→1, c→2, d→0. Partition 0's share is published,
    /// // partition 1's fails, partition 2's is never attempted.
    /// let err = topic.try_publish_batch(batch).unwrap_err();
    /// assert_eq!(err.cause.partition(), Some(1));
    /// assert_eq!(err.published, vec![(0, 0..2)]);
    /// let back: Vec<char> = err.unpublished.into_iter().map(|(_, v)| v).collect();
    /// assert_eq!(back, vec!['b', 'c']);
    /// ```
    pub fn try_publish_batch<K: AsRef<[u8]>>(
        &self,
        messages: Vec<(Option<K>, T)>,
    ) -> Result<BatchReceipt, PublishBatchError<K, T>> {
        crate::batch::try_publish_batch(&self.inner.partitions, &self.inner.router, messages)
    }

    /// Opens a cursor on one partition.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::OutOfRange`] for a partition the topic does not
    /// have; [`SubscribeError::Partition`] when the partition refuses
    /// (offset not retained, closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::{PartitionedTopic, SubscribeError};
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// topic.try_publish(None, "p0").unwrap();
    /// topic.try_publish(None, "p1").unwrap();
    /// let mut c = topic.subscribe_partition(1, StartFrom::Earliest).unwrap();
    /// assert_eq!(c.try_recv().unwrap().value, "p1");
    /// assert!(matches!(
    ///     topic.subscribe_partition(2, StartFrom::Earliest),
    ///     Err(SubscribeError::OutOfRange(_))
    /// ));
    /// ```
    pub fn subscribe_partition(
        &self,
        partition: usize,
        start: StartFrom,
    ) -> Result<Cursor<T>, SubscribeError> {
        self.topic(partition)
            .map_err(SubscribeError::OutOfRange)?
            .subscribe(start)
            .map_err(|error| SubscribeError::Partition { partition, error })
    }

    /// Opens a cursor on one partition for a named consumer, whose commits
    /// outlive the cursor (see [`Topic::subscribe_named`]). Each partition
    /// keeps its own commits for the name.
    ///
    /// # Errors
    ///
    /// As [`subscribe_partition`](Self::subscribe_partition).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// topic.set_routing(memq_partition::Routing::Fixed(1));
    /// for i in 0..3 { topic.try_publish(None, i).unwrap(); }
    /// let mut c = topic.subscribe_partition_named(1, "audit", StartFrom::Earliest).unwrap();
    /// let m = c.try_recv().unwrap();
    /// c.commit(m.offset).unwrap();
    /// drop(c);
    /// let mut c = topic.subscribe_partition_named(1, "audit", StartFrom::Committed).unwrap();
    /// assert_eq!(c.try_recv().unwrap().value, 1);
    /// ```
    pub fn subscribe_partition_named(
        &self,
        partition: usize,
        name: &str,
        start: StartFrom,
    ) -> Result<Cursor<T>, SubscribeError> {
        self.topic(partition)
            .map_err(SubscribeError::OutOfRange)?
            .subscribe_named(name, start)
            .map_err(|error| SubscribeError::Partition { partition, error })
    }

    /// Opens one cursor per partition, every one at `start`, merged into a
    /// [`MergedCursor`] that yields `(partition, message)` from all of
    /// them fairly. See the crate docs, `## Reading every partition`.
    ///
    /// `StartFrom::Offset(n)` asks every partition for offset `n`.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::Partition`] for the first partition that refuses;
    /// no cursor is left open.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// for i in 0..4 { topic.try_publish(None, i).unwrap(); } // 0,2 → p0; 1,3 → p1
    /// let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    /// let mut got = Vec::new();
    /// while let Ok((p, m)) = all.try_recv() {
    ///     got.push((p, m.value));
    /// }
    /// assert_eq!(got, vec![(0, 0), (1, 1), (0, 2), (1, 3)]);
    /// ```
    pub fn subscribe_all(&self, start: StartFrom) -> Result<MergedCursor<T>, SubscribeError> {
        (0..self.partition_count())
            .map(|p| self.subscribe_partition(p, start).map(|c| (p, c)))
            .collect::<Result<Vec<_>, _>>()
            .map(MergedCursor::new)
    }

    /// [`subscribe_all`](Self::subscribe_all) for a named consumer: each
    /// partition's cursor is named `name` (commits are per partition).
    ///
    /// # Errors
    ///
    /// As [`subscribe_all`](Self::subscribe_all).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// for i in 0..4 { topic.try_publish(None, i).unwrap(); } // 0,2 → p0; 1,3 → p1
    /// let mut all = topic.subscribe_all_named("billing", StartFrom::Earliest).unwrap();
    /// let (p, m) = all.try_recv().unwrap();
    /// all.cursor_mut(p).unwrap().commit(m.offset).unwrap(); // value 0 of partition 0
    /// drop(all);
    /// let mut all = topic.subscribe_all_named("billing", StartFrom::Committed).unwrap();
    /// // Partition 0 resumes after its commit; partition 1 had none, so it
    /// // starts at the latest offset, like any uncommitted consumer.
    /// assert_eq!(all.try_recv().unwrap().1.value, 2);
    /// assert!(all.try_recv().is_err());
    /// ```
    pub fn subscribe_all_named(
        &self,
        name: &str,
        start: StartFrom,
    ) -> Result<MergedCursor<T>, SubscribeError> {
        (0..self.partition_count())
            .map(|p| self.subscribe_partition_named(p, name, start).map(|c| (p, c)))
            .collect::<Result<Vec<_>, _>>()
            .map(MergedCursor::new)
    }

    /// Counters of one partition; never waits for publishers.
    ///
    /// # Errors
    ///
    /// [`PartitionOutOfRange`] for a partition the topic does not have.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// topic.try_publish(None, 'a').unwrap();
    /// assert_eq!(topic.partition_stats(0).unwrap().published, 1);
    /// assert_eq!(topic.partition_stats(1).unwrap().published, 0);
    /// assert!(topic.partition_stats(2).is_err());
    /// ```
    pub fn partition_stats(&self, partition: usize) -> Result<TopicStats, PartitionOutOfRange> {
        self.topic(partition).map(Topic::stats)
    }

    /// Counters of every partition, indexed by partition; never waits for
    /// publishers and works from any context (no runtime needed).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
    /// topic.try_publish(None, 'a').unwrap();
    /// let all = topic.all_partition_stats();
    /// assert_eq!(all.iter().map(|s| s.depth).collect::<Vec<_>>(), vec![1, 0, 0]);
    /// ```
    pub fn all_partition_stats(&self) -> Vec<TopicStats> {
        self.inner.partitions.iter().map(Topic::stats).collect()
    }

    /// Counters of every partition and their sums; never waits for
    /// publishers.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
    /// for i in 0..7 { topic.try_publish(None, i).unwrap(); }
    /// let stats = topic.stats();
    /// assert_eq!((stats.published, stats.partitions.len()), (7, 3));
    /// ```
    pub fn stats(&self) -> PartitionedStats {
        PartitionedStats::from_partitions(self.all_partition_stats())
    }

    /// Closes every partition: publishing fails with `Closed`, waiting
    /// publishers are woken with that error, and cursors receive what is
    /// retained, then `Closed`. Closing twice does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 2).unwrap();
    /// topic.close();
    /// assert!(topic.is_closed());
    /// assert!(topic.try_publish(None, 1).is_err());
    /// ```
    pub fn close(&self) {
        for t in self.inner.partitions.iter() {
            t.close();
        }
    }

    /// The per-partition configuration the topic was created with (each
    /// partition's is this with its number as
    /// [`TopicConfig::partition`](memq_core::TopicConfig::partition)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::PartitionedTopic;
    /// let config = TopicConfig::default().max_messages(Some(10));
    /// let topic = PartitionedTopic::<u8>::new(config.clone(), 3).unwrap();
    /// assert_eq!(topic.config(), &config);
    /// ```
    pub fn config(&self) -> &TopicConfig {
        &self.inner.config
    }

    /// True once every partition is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 2).unwrap();
    /// topic.partition(0).unwrap().close();
    /// assert!(!topic.is_closed());
    /// topic.close();
    /// assert!(topic.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.partitions.iter().all(Topic::is_closed)
    }
}

impl<T> PartitionedTopic<T> {
    /// The number of partitions, fixed at creation (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 8).unwrap();
    /// assert_eq!(topic.partition_count(), 8);
    /// ```
    pub fn partition_count(&self) -> usize {
        self.inner.partitions.len()
    }

    /// The topic of one partition, for direct access (subscribing with
    /// options this crate does not wrap, publishing past the router).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// topic.partition(1).unwrap().try_publish("direct").unwrap();
    /// assert_eq!(topic.partition_stats(1).unwrap().published, 1);
    /// assert!(topic.partition(2).is_none());
    /// ```
    pub fn partition(&self, partition: usize) -> Option<&Topic<T>> {
        self.inner.partitions.get(partition)
    }

    /// Every partition's topic, indexed by partition.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 3).unwrap();
    /// assert_eq!(topic.partitions().len(), 3);
    /// ```
    pub fn partitions(&self) -> &[Topic<T>] {
        &self.inner.partitions
    }

    /// The current routing strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::{PartitionedTopic, Routing};
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 3).unwrap();
    /// topic.set_routing(Routing::Random);
    /// assert!(matches!(topic.routing(), Routing::Random));
    /// ```
    pub fn routing(&self) -> Routing {
        self.inner.router.get()
    }

    /// Changes the routing strategy for every later publish, from any
    /// thread, without waiting for publishers. A publish or batch already
    /// routed keeps its partitions. A [`Routing::Fixed`] index is checked
    /// on each publish, not here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::{PartitionedTopic, Routing};
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 4).unwrap();
    /// topic.set_routing(Routing::Fixed(3));
    /// assert_eq!(topic.try_publish(Some(b"k"), 1).unwrap(), (3, 0));
    /// topic.set_routing(Routing::Hash);
    /// assert_eq!(topic.try_publish(Some(b"foobar"), 2).unwrap(), (2, 0));
    /// ```
    pub fn set_routing(&self, routing: Routing) {
        self.inner.router.set(routing);
    }

    /// The partition the router picks for `key`, without publishing.
    ///
    /// This consumes a routing decision: under round-robin (and `Hash`
    /// without a key) it advances the shared counter; under `Random` it
    /// draws a number. For `Hash` with a key it is exactly where a publish
    /// would go.
    ///
    /// # Errors
    ///
    /// [`RouteError`] as a publish would report it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::TopicConfig;
    /// # use memq_partition::{PartitionedTopic, Routing};
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 4).unwrap();
    /// topic.set_routing(Routing::Hash);
    /// assert_eq!(topic.route(Some(b"foobar")), Ok(2));
    /// ```
    pub fn route(&self, key: Option<&[u8]>) -> Result<usize, RouteError> {
        self.inner.router.route(key)
    }

    fn topic(&self, partition: usize) -> Result<&Topic<T>, PartitionOutOfRange> {
        self.inner.partitions.get(partition).ok_or(PartitionOutOfRange {
            partition,
            partitions: self.inner.partitions.len(),
        })
    }
}

enum State<'a, T> {
    Routed {
        partition: usize,
        publish: memq_core::Publish<'a, T>,
    },
    Failed(Option<PublishError<T>>),
}

/// Future of [`PartitionedTopic::publish`]; resolves to
/// `(partition, offset)`.
///
/// # Examples
///
/// ```
/// # use memq_core::TopicConfig;
/// # use memq_partition::{PartitionedTopic, Routing};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// topic.set_routing(Routing::Fixed(1));
/// let publish = topic.publish(None, 42);
/// assert_eq!(publish.partition(), Some(1));
/// assert_eq!(publish.await.unwrap(), (1, 0));
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Publish<'a, T> {
    state: State<'a, T>,
}

impl<T> Publish<'_, T> {
    /// The partition the message was routed to; `None` if routing failed.
    pub fn partition(&self) -> Option<usize> {
        match &self.state {
            State::Routed { partition, .. } => Some(*partition),
            State::Failed(_) => None,
        }
    }

    /// Takes the message back out of a publish that has not completed, so
    /// that a caller giving up (a timeout, say) keeps it. Polling
    /// afterwards panics.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{Overflow, StartFrom, TopicConfig};
    /// # use memq_partition::PartitionedTopic;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let config = TopicConfig::default().max_messages(Some(1)).overflow(Overflow::Block);
    /// let topic = PartitionedTopic::new(config, 1).unwrap();
    /// let _reader = topic.subscribe_partition(0, StartFrom::Earliest).unwrap();
    /// topic.try_publish(None, 1).unwrap(); // partition 0 is now full
    /// let mut publish = topic.publish(None, 2);
    /// let timed_out = tokio::time::timeout(std::time::Duration::from_millis(1), &mut publish).await;
    /// assert!(timed_out.is_err());
    /// assert_eq!(publish.take_value(), Some(2));
    /// # }
    /// ```
    pub fn take_value(&mut self) -> Option<T> {
        match &mut self.state {
            State::Routed { publish, .. } => publish.take_value(),
            State::Failed(e) => e.take().map(PublishError::into_inner),
        }
    }
}

impl<T> Unpin for Publish<'_, T> {}

impl<T> Future for Publish<'_, T> {
    type Output = Result<(usize, u64), PublishError<T>>;

    /// # Panics
    ///
    /// When polled after it completed or after
    /// [`take_value`](Publish::take_value).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Routed { partition, publish } => {
                let partition = *partition;
                Pin::new(publish).poll(cx).map(|r| {
                    r.map(|offset| (partition, offset))
                        .map_err(|error| PublishError::Partition { partition, error })
                })
            }
            State::Failed(e) => Poll::Ready(Err(e.take().expect("publish future polled after completion"))),
        }
    }
}

impl<T> fmt::Debug for Publish<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("partition", &self.partition())
            .finish_non_exhaustive()
    }
}
