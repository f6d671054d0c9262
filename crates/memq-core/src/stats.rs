//! A point-in-time view of a topic, readable without waiting for its lock.

/// Counters of one topic, read from atomics (never blocks publishers).
///
/// Fields are read one by one, so under concurrent publishing they are
/// each exact but not a single atomic snapshot.
///
/// # Examples
///
/// Evicted and expired messages are counted apart:
///
/// ```
/// use std::time::Duration;
/// use memq_core::{Topic, TopicConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = TopicConfig::default().max_messages(Some(2)).ttl(Some(Duration::from_secs(1)));
/// let topic = Topic::new(config)?;
/// for i in 0..3 { topic.publish(i).await?; } // offset 0 is evicted to make room
/// tokio::time::advance(Duration::from_secs(2)).await; // offsets 1 and 2 expire
///
/// let stats = topic.stats();
/// assert_eq!((stats.published, stats.evicted, stats.expired), (3, 1, 2));
/// assert_eq!((stats.low, stats.high, stats.depth), (3, 3, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// The oldest retained offset.
    pub low: u64,
    /// The offset the next message will get.
    pub high: u64,
    /// Messages retained now (`high - low`), including any that have
    /// expired but have not been swept yet.
    pub depth: u64,
    /// Retained payload bytes, as measured by the topic's weigher (0
    /// without one).
    pub bytes: usize,
    /// Messages ever published.
    pub published: u64,
    /// Messages removed to make room. With
    /// [`Overflow::Block`](crate::Overflow::Block) only messages every
    /// live subscriber had already read are removed.
    pub evicted: u64,
    /// Messages removed because their TTL ran out.
    pub expired: u64,
    /// Live cursors.
    pub subscribers: usize,
    /// Named consumers, live or not, with their committed positions.
    pub consumers: Vec<ConsumerStats>,
}

/// Progress of one named consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// The consumer's name.
    pub name: String,
    /// The last offset it committed.
    pub committed: Option<u64>,
    /// Messages published after its committed position (or after where it
    /// first started, before any commit).
    pub lag: u64,
    /// Live cursors with this name.
    pub live: usize,
}
