//! Counters of a whole partitioned topic, summed over its partitions.

use memq_core::TopicStats;

/// Counters of every partition of a
/// [`PartitionedTopic`](crate::PartitionedTopic), and their sums.
///
/// Read without waiting for publishers, partition by partition: each
/// partition's counters are exact, the whole is not one atomic snapshot
/// while publishers run.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::PartitionedTopic;
///
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// for i in 0..5 {
///     topic.try_publish(None, i).unwrap(); // round-robin: 3 to p0, 2 to p1
/// }
/// let stats = topic.stats();
/// assert_eq!(stats.published, 5);
/// assert_eq!(stats.depth, 5);
/// assert_eq!(stats.partitions[0].published, 3);
/// assert_eq!(stats.partitions[1].published, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionedStats {
    /// Each partition's own counters, indexed by partition.
    pub partitions: Vec<TopicStats>,
    /// Messages retained now, all partitions together.
    pub depth: u64,
    /// Retained payload bytes (as measured by the weigher; 0 without one).
    pub bytes: usize,
    /// Messages ever published.
    pub published: u64,
    /// Messages removed to make room.
    pub evicted: u64,
    /// Messages removed because their TTL ran out.
    pub expired: u64,
    /// Live cursors, summed over partitions: a
    /// [`MergedCursor`](crate::MergedCursor) over `n` partitions counts `n`
    /// times.
    pub subscribers: usize,
}

impl PartitionedStats {
    pub(crate) fn from_partitions(partitions: Vec<TopicStats>) -> Self {
        let mut s = PartitionedStats {
            partitions: Vec::new(),
            depth: 0,
            bytes: 0,
            published: 0,
            evicted: 0,
            expired: 0,
            subscribers: 0,
        };
        for p in &partitions {
            s.depth = s.depth.saturating_add(p.depth);
            s.bytes = s.bytes.saturating_add(p.bytes);
            s.published = s.published.saturating_add(p.published);
            s.evicted = s.evicted.saturating_add(p.evicted);
            s.expired = s.expired.saturating_add(p.expired);
            s.subscribers = s.subscribers.saturating_add(p.subscribers);
        }
        s.partitions = partitions;
        s
    }
}
