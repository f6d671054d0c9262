//! Topic options, consumption modes and stats: the 1.0.0 shapes.

use std::collections::HashMap;
use std::time::Duration;

use memq_core::{Overflow, StartFrom, TopicConfig};

use crate::error::ConfigError;

/// Retention and overflow options of a topic (the 1.0.0 struct, plus
/// `max_bytes`).
///
/// # Examples
///
/// The defaults: at most 10,000 messages, the oldest evicted when full,
/// no TTL and no byte budget. Set the fields you need and take the rest
/// from `Default`:
///
/// ```
/// use tokio_memq::TopicOptions;
///
/// let defaults = TopicOptions::default();
/// assert_eq!((defaults.max_messages, defaults.lru_enabled), (Some(10_000), true));
/// assert_eq!((defaults.message_ttl, defaults.max_bytes), (None, None));
/// let small = TopicOptions { max_messages: Some(100), ..TopicOptions::default() };
/// assert!(small.validate().is_ok());
/// ```
///
/// `lru_enabled: false` is backpressure: a full topic refuses
/// [`try_publish`](crate::Publisher::try_publish) with `Full`, makes
/// [`publish_timeout`](crate::Publisher::publish_timeout) give up with
/// `Timeout` (both hand the value back), and has room again once every
/// subscriber has read the oldest message:
///
/// ```
/// use std::time::Duration;
/// use tokio_memq::{MessageQueue, PublishError, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let options = TopicOptions { max_messages: Some(2), lru_enabled: false, ..TopicOptions::default() };
/// let sub = mq.subscriber_with_options("uploads", options).await?;
/// let publisher = mq.publisher("uploads");
/// assert_eq!(publisher.try_publish("a")?, 0);
/// assert_eq!(publisher.try_publish("b")?, 1);
/// assert_eq!(publisher.try_publish("c"), Err(PublishError::Full("c")));
/// let waited = publisher.publish_timeout("c", Duration::from_millis(50)).await;
/// assert_eq!(waited, Err(PublishError::Timeout("c")));
/// sub.recv().await?; // the oldest message is read: room for one more
/// assert_eq!(publisher.try_publish("c")?, 2);
/// # Ok(()) }
/// ```
///
/// `message_ttl`: a message older than that is never delivered, and is
/// counted as expired:
///
/// ```
/// use std::time::Duration;
/// use tokio_memq::{MessageQueue, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let options = TopicOptions { message_ttl: Some(Duration::from_secs(60)), ..TopicOptions::default() };
/// let sub = mq.subscriber_with_options("quotes", options).await?;
/// let publisher = mq.publisher("quotes");
/// publisher.publish("stale").await?;
/// tokio::time::sleep(Duration::from_secs(61)).await;
/// publisher.publish("fresh").await?;
/// assert_eq!(sub.recv().await?.deserialize::<String>()?, "fresh");
/// assert_eq!(mq.get_topic_stats("quotes").await.unwrap().expired, 1);
/// # Ok(()) }
/// ```
///
/// `max_bytes`: the oldest messages are evicted to keep the retained
/// payload bytes within the budget, and a message larger than the whole
/// budget is refused:
///
/// ```
/// use tokio_memq::{MessageQueue, PublishErrorKind, SerializationFormat, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_topic("blobs", TopicOptions { max_bytes: Some(1024), ..TopicOptions::default() }).await?;
/// let publisher = mq.publisher("blobs");
/// publisher.publish_bytes(vec![1u8; 600], SerializationFormat::Raw).await?;
/// publisher.publish_bytes(vec![2u8; 600], SerializationFormat::Raw).await?; // evicts the first
/// let stats = mq.get_topic_stats("blobs").await.unwrap();
/// assert_eq!((stats.message_count, stats.bytes, stats.evicted), (1, 600, 1));
///
/// let err = publisher.publish_bytes(vec![3u8; 2048], SerializationFormat::Raw).await.unwrap_err();
/// assert_eq!(err.kind(), PublishErrorKind::TooLarge);
/// assert_eq!(err.into_inner().len(), 2048, "the bytes come back");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOptions {
    /// The most messages the topic retains (default `Some(10000)`);
    /// `None`: no limit on the count (with `max_bytes`, messages that
    /// weigh nothing, empty and without key or headers, are not bounded
    /// at all: keep a count too).
    pub max_messages: Option<usize>,
    /// How long a message stays deliverable. Expired messages are never
    /// delivered and are counted in [`TopicStats::expired`].
    pub message_ttl: Option<Duration>,
    /// `true` (default): a full topic evicts its oldest message, and a
    /// subscriber that had not read it gets
    /// [`RecvError::Lagged`](crate::RecvError::Lagged) with the exact
    /// count. `false`: a full topic makes `publish` wait until every live
    /// subscriber has read the oldest message; nothing is lost. A
    /// subscriber reads ahead (up to 128 messages, or 1 MiB, per fetch,
    /// which it holds and delivers in order): those count as read, so a
    /// topic of capacity `n` lets publishers run up to `n` plus what a
    /// subscriber holds read ahead past its last receive.
    pub lru_enabled: bool,
    /// The number of partitions, for partitioned topics.
    pub partitions: Option<usize>,
    /// Reserved, as in 1.0.0: stored, but has no effect yet.
    pub idle_timeout: Option<Duration>,
    /// For consumer groups with manual acknowledgement, joined with these
    /// options: the idle time after which a member's unacknowledged
    /// messages go to other members (the group's ack timeout; see
    /// [`GroupBuilder::ack_timeout`](crate::GroupBuilder::ack_timeout)).
    /// Plain subscribers ignore it.
    pub consume_idle_timeout: Option<Duration>,
    /// The most payload bytes the topic retains (new in 2.0). Byte
    /// payloads weigh their length; native values what they hold (their
    /// inline size plus the strings, bytes and collections they reach, as
    /// their `Serialize` shows them: a `Vec<u8>` of 1 MiB weighs about
    /// 1 MiB), measured once when published to a topic with this budget.
    /// A message's key and headers weigh too (their bytes, and 8 more
    /// per header).
    pub max_bytes: Option<usize>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        TopicOptions {
            max_messages: Some(10_000),
            message_ttl: None,
            lru_enabled: true,
            partitions: None,
            idle_timeout: None,
            consume_idle_timeout: None,
            max_bytes: None,
        }
    }
}

impl TopicOptions {
    pub(crate) fn to_config(&self) -> TopicConfig {
        TopicConfig::default()
            .max_messages(self.max_messages)
            .max_bytes(self.max_bytes)
            .ttl(self.message_ttl)
            .overflow(if self.lru_enabled {
                Overflow::DropOldest
            } else {
                Overflow::Block
            })
    }

    /// Checks the options without creating a topic.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero capacity, zero byte budget or zero TTL.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{ConfigError, TopicOptions};
    ///
    /// assert_eq!(TopicOptions::default().validate(), Ok(()));
    /// let empty = TopicOptions { max_messages: Some(0), ..TopicOptions::default() };
    /// assert_eq!(empty.validate(), Err(ConfigError::ZeroCapacity));
    /// let instant = TopicOptions { message_ttl: Some(Duration::ZERO), ..TopicOptions::default() };
    /// assert_eq!(instant.validate(), Err(ConfigError::ZeroTtl));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        memq_core::Topic::<()>::with_weigher(self.to_config(), |_| 0).map(drop)
    }

    /// True when a topic made with these options would retain messages
    /// as the topic of `config` does.
    pub(crate) fn same_retention(&self, config: &TopicConfig) -> bool {
        let mine = self.to_config();
        mine.max_messages == config.max_messages
            && mine.max_bytes == config.max_bytes
            && mine.ttl == config.ttl
            && mine.overflow == config.overflow
    }
}

/// Where a subscriber starts reading (the 1.0.0 enum).
///
/// # Examples
///
/// ```
/// use tokio_memq::{ConsumptionMode, MessageQueue, OutOfRange, TopicError, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.publisher("log").publish_batch(vec!["a", "b", "c"]).await?;
/// let from = |mode| mq.subscriber_with_options_and_mode("log", TopicOptions::default(), mode);
/// let (earliest, third, latest) =
///     (from(ConsumptionMode::Earliest).await?, from(ConsumptionMode::Offset(2)).await?, from(ConsumptionMode::Latest).await?);
/// mq.publisher("log").publish("d").await?;
/// assert_eq!(earliest.recv().await?.offset(), 0);
/// assert_eq!(third.recv().await?.offset(), 2);
/// assert_eq!(latest.recv().await?.offset(), 3);
///
/// let err = from(ConsumptionMode::Offset(9)).await.unwrap_err();
/// assert_eq!(err, TopicError::OutOfRange(OutOfRange { requested: 9, low: 0, high: 4 }));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumptionMode {
    /// The oldest retained message.
    Earliest,
    /// Only messages published after subscribing.
    Latest,
    /// Exactly offset `n`; outside the retained window is an error.
    Offset(u64),
    /// After the consumer's last committed offset; without one (and for
    /// anonymous subscribers), like `Latest`. The default.
    #[default]
    LastOffset,
}

impl ConsumptionMode {
    pub(crate) fn start(self) -> StartFrom {
        match self {
            ConsumptionMode::Earliest => StartFrom::Earliest,
            ConsumptionMode::Latest => StartFrom::Latest,
            ConsumptionMode::Offset(n) => StartFrom::Offset(n),
            ConsumptionMode::LastOffset => StartFrom::Committed,
        }
    }
}

/// Counters of one topic (the 1.0.0 fields, plus more). Reading them never
/// blocks publishers.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let options = TopicOptions { max_messages: Some(3), ..TopicOptions::default() };
/// let _sub = mq.subscriber_with_options("ticks", options).await?;
/// let publisher = mq.publisher("ticks");
/// for tick in 0..5u32 {
///     publisher.publish(tick).await?;
/// }
/// let stats = mq.get_topic_stats("ticks").await.expect("the topic exists");
/// assert_eq!((stats.published, stats.message_count, stats.evicted), (5, 3, 2));
/// assert_eq!((stats.low_offset, stats.next_offset), (2, 5));
/// assert_eq!((stats.dropped_messages, stats.subscriber_count), (2, 1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Messages retained now.
    pub message_count: usize,
    /// Live subscribers, each member of a consumer group included. For a
    /// partitioned topic, those of its busiest partition: a subscriber of
    /// every partition counts once, one of a single partition only there
    /// (see [`get_all_partition_stats`](crate::MessageQueue::get_all_partition_stats)).
    pub subscriber_count: usize,
    /// Messages removed by retention: `evicted + expired` (see
    /// [`evicted`](Self::evicted) for a topic whose publishers wait).
    pub dropped_messages: usize,
    /// Named consumers' lag: messages published after their committed
    /// position. A consumer group with automatic acknowledgement commits
    /// through the last message it handed out, so messages that expired
    /// after it count here until it hands out the next one (its
    /// [`GroupStats::lag`](crate::GroupStats) has passed over them).
    pub consumer_lags: HashMap<String, usize>,
    /// Retained payload bytes, weighed as [`max_bytes`](TopicOptions::max_bytes)
    /// weighs them (keys and headers included). A native value is
    /// weighed by what it holds only on a topic with a byte budget;
    /// elsewhere it counts its inline size (a `Vec<u8>` 24 bytes,
    /// whatever it holds), as walking every value would cost each publish.
    pub bytes: usize,
    /// The same as [`bytes`](Self::bytes), under 1.0.0's name.
    pub total_payload_size: usize,
    /// Messages ever published.
    pub published: u64,
    /// Messages evicted to make room. On a topic whose publishers wait
    /// for room (`lru_enabled: false`) only messages every live subscriber
    /// had already read are evicted: no subscriber misses one.
    pub evicted: u64,
    /// Messages that expired.
    pub expired: u64,
    /// The oldest retained offset. 0 for a partitioned topic, whose
    /// offsets are per partition (see
    /// [`get_all_partition_stats`](crate::MessageQueue::get_all_partition_stats)).
    pub low_offset: u64,
    /// The offset the next message will get. 0 for a partitioned topic,
    /// as `low_offset`.
    pub next_offset: u64,
}

/// Live subscribers of a topic (or of its partition `partition`) read by
/// `readers` cursors: a consumer group reads through one cursor while it
/// has members, and each of its members is a subscriber of the topic; of
/// a partition, those that may receive from it (an exclusive group's
/// owner only).
pub(crate) fn with_group_members(
    readers: usize,
    groups: &[memq_groups::GroupStats],
    partition: Option<usize>,
) -> usize {
    let (live, members) = groups
        .iter()
        .filter(|g| g.members > 0)
        .fold((0, 0), |(live, members), g| {
            let counted = partition
                .and_then(|p| g.readers.get(p).copied())
                .unwrap_or(g.members);
            (live + 1, members + counted)
        });
    readers.saturating_sub(live) + members
}

impl TopicStats {
    /// Sums per-partition stats into one (lags summed per consumer name).
    pub(crate) fn sum(parts: impl Iterator<Item = TopicStats>) -> TopicStats {
        let mut total = TopicStats {
            message_count: 0,
            subscriber_count: 0,
            dropped_messages: 0,
            consumer_lags: HashMap::new(),
            bytes: 0,
            total_payload_size: 0,
            published: 0,
            evicted: 0,
            expired: 0,
            low_offset: 0,
            next_offset: 0,
        };
        for s in parts {
            total.message_count += s.message_count;
            total.subscriber_count = total.subscriber_count.max(s.subscriber_count);
            total.dropped_messages += s.dropped_messages;
            for (name, lag) in s.consumer_lags {
                *total.consumer_lags.entry(name).or_default() += lag;
            }
            total.bytes += s.bytes;
            total.total_payload_size += s.total_payload_size;
            total.published += s.published;
            total.evicted += s.evicted;
            total.expired += s.expired;
        }
        total
    }
}

/// How messages published to a partitioned topic choose their partition
/// (the 1.0.0 enum, plus custom routers).
///
/// # Examples
///
/// A custom router sends keys with a region prefix to that region's
/// partition, and everything else to the last one:
///
/// ```
/// use std::sync::Arc;
/// use tokio_memq::{MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_partitioned_topic("orders", TopicOptions::default(), 3).await?;
/// let by_region = PartitionRouting::Custom(Arc::new(|key: Option<&[u8]>, partitions: usize| match key {
///     Some(k) if k.starts_with(b"eu-") => 0,
///     Some(k) if k.starts_with(b"us-") => 1,
///     _ => partitions - 1,
/// }));
/// mq.set_partition_routing("orders", by_region).await?;
/// let (partition, _) = mq.publish_to_partitioned(TopicMessage::new_with_key("orders", 10u32, "us-42")?).await?;
/// assert_eq!(partition, 1);
/// let (partition, _) = mq.publish_to_partitioned(TopicMessage::new("orders", 11u32)?).await?;
/// assert_eq!(partition, 2);
/// # Ok(()) }
/// ```
///
/// With `Hash`, every message with one key goes to one partition, so
/// those messages stay in order:
///
/// ```
/// use tokio_memq::{MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_partitioned_topic("carts", TopicOptions::default(), 8).await?;
/// mq.set_partition_routing("carts", PartitionRouting::Hash).await?;
/// let mut placed = Vec::new();
/// for step in ["add", "add", "remove", "checkout"] {
///     placed.push(mq.publish_to_partitioned(TopicMessage::new_with_key("carts", step, "cart-17")?).await?);
/// }
/// assert!(placed.iter().all(|&(p, _)| p == placed[0].0));
/// assert_eq!(placed.iter().map(|&(_, offset)| offset).collect::<Vec<_>>(), [0, 1, 2, 3]);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum PartitionRouting {
    /// Partitions in turn (the default).
    #[default]
    RoundRobin,
    /// By message key with Kafka's default partitioner:
    /// `(murmur2(key) & 0x7fffffff) % partitions`, so keys land on the
    /// same partition number as in Kafka. Keyless messages take the next
    /// round-robin partition.
    Hash,
    /// A random partition per message.
    Random,
    /// Always this partition.
    Fixed(usize),
    /// A function of the key (as bytes) and the partition count.
    Custom(RouterFn),
}

/// A custom partition router: the message key (as bytes, if any) and the
/// partition count in, the partition out. It runs with no lock held; a
/// router that panics or returns an index out of range makes the publish
/// fail with `Unroutable` and leaves the topic usable.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tokio_memq::{MessageQueue, PartitionRouting, PublishErrorKind, RouterFn, TopicMessage, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_partitioned_topic("jobs", TopicOptions::default(), 2).await?;
/// // By key length; a key of 7 bytes or more names a partition that does not exist.
/// let router: RouterFn = Arc::new(|key, _partitions| key.map_or(0, |k| k.len() / 4));
/// mq.set_partition_routing("jobs", PartitionRouting::Custom(router)).await?;
/// assert_eq!(mq.publish_to_partitioned(TopicMessage::new_with_key("jobs", 1, "abcd")?).await?, (1, 0));
/// let err = mq.publish_to_partitioned(TopicMessage::new_with_key("jobs", 2, "abcdefgh")?).await.unwrap_err();
/// assert_eq!(err.kind(), PublishErrorKind::Unroutable);
/// assert_eq!(mq.publish_to_partitioned(TopicMessage::new("jobs", 3)?).await?, (0, 0), "still usable");
/// # Ok(()) }
/// ```
pub type RouterFn = std::sync::Arc<dyn Fn(Option<&[u8]>, usize) -> usize + Send + Sync>;

/// Equal variants with equal partitions; two `Custom` routers are equal
/// only when they are the same function (`Arc::ptr_eq`).
impl PartialEq for PartitionRouting {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PartitionRouting::RoundRobin, PartitionRouting::RoundRobin)
            | (PartitionRouting::Hash, PartitionRouting::Hash)
            | (PartitionRouting::Random, PartitionRouting::Random) => true,
            (PartitionRouting::Fixed(a), PartitionRouting::Fixed(b)) => a == b,
            (PartitionRouting::Custom(a), PartitionRouting::Custom(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::fmt::Debug for PartitionRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionRouting::RoundRobin => f.write_str("RoundRobin"),
            PartitionRouting::Hash => f.write_str("Hash"),
            PartitionRouting::Random => f.write_str("Random"),
            PartitionRouting::Fixed(n) => f.debug_tuple("Fixed").field(n).finish(),
            PartitionRouting::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl PartitionRouting {
    pub(crate) fn to_routing(&self) -> memq_partition::Routing {
        match self {
            PartitionRouting::RoundRobin => memq_partition::Routing::RoundRobin,
            PartitionRouting::Hash => memq_partition::Routing::Hash,
            PartitionRouting::Random => memq_partition::Routing::Random,
            PartitionRouting::Fixed(n) => memq_partition::Routing::Fixed(*n),
            PartitionRouting::Custom(f) => {
                let f = f.clone();
                memq_partition::Routing::custom(move |key: Option<&[u8]>, n: usize| f(key, n))
            }
        }
    }
}

/// Counters of one partition of a partitioned topic.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, PartitionRouting, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
/// mq.set_partition_routing("clicks", PartitionRouting::Fixed(1)).await?;
/// mq.publisher("clicks").publish_batch(vec!["home", "cart", "pay"]).await?;
///
/// let stats = mq.get_all_partition_stats("clicks").await;
/// assert_eq!(stats.iter().map(|s| s.published).collect::<Vec<_>>(), [0, 3]);
/// let second = mq.get_partition_stats("clicks", 1).await.unwrap();
/// assert_eq!((second.partition, second.message_count, second.next_offset), (1, 3, 3));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The partition's index.
    pub partition: usize,
    /// The same, under 1.0.0's name.
    pub partition_id: usize,
    /// Messages retained now.
    pub message_count: usize,
    /// Live subscribers reading this partition, each member of a
    /// consumer group that may receive from it included (every member of
    /// a shared group, the owner of this partition in an
    /// [`exclusive`](crate::GroupBuilder::exclusive) one).
    pub subscriber_count: usize,
    /// Messages removed by retention.
    pub dropped_messages: usize,
    /// Named consumers' lag on this partition: messages published after
    /// their committed position.
    pub consumer_lags: HashMap<String, usize>,
    /// Messages ever published to this partition.
    pub published: u64,
    /// The oldest retained offset.
    pub low_offset: u64,
    /// The offset the next message will get.
    pub next_offset: u64,
}

impl PartitionStats {
    pub(crate) fn new(partition: usize, s: memq_core::TopicStats) -> Self {
        Self::from_topic(partition, TopicStats::from(s))
    }

    /// The stats of partition `partition`, from its log's.
    pub(crate) fn from_topic(partition: usize, t: TopicStats) -> Self {
        PartitionStats {
            partition,
            partition_id: partition,
            message_count: t.message_count,
            subscriber_count: t.subscriber_count,
            dropped_messages: t.dropped_messages,
            consumer_lags: t.consumer_lags,
            published: t.published,
            low_offset: t.low_offset,
            next_offset: t.next_offset,
        }
    }
}

impl From<memq_core::TopicStats> for TopicStats {
    fn from(s: memq_core::TopicStats) -> Self {
        let sat = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        TopicStats {
            message_count: sat(s.depth),
            subscriber_count: s.subscribers,
            dropped_messages: sat(s.evicted.saturating_add(s.expired)),
            consumer_lags: s.consumers.iter().map(|c| (c.name.clone(), sat(c.lag))).collect(),
            bytes: s.bytes,
            total_payload_size: s.bytes,
            published: s.published,
            evicted: s.evicted,
            expired: s.expired,
            low_offset: s.low,
            next_offset: s.high,
        }
    }
}
