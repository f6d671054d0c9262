//! What a topic name refers to: one log, or a partitioned set of logs.

use memq_core::Topic;
use memq_partition::PartitionedTopic;

use crate::message::Entry;
use crate::options::TopicStats;

/// The storage behind a topic name.
#[derive(Debug, Clone)]
pub(crate) enum Log {
    Plain(Topic<Entry>),
    Partitioned(PartitionedTopic<Entry>),
}

impl Log {
    pub(crate) fn close(&self) {
        match self {
            Log::Plain(t) => t.close(),
            Log::Partitioned(p) => p.close(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Log::Plain(t) => t.is_closed(),
            Log::Partitioned(p) => p.partitions().iter().all(|t| t.is_closed()),
        }
    }

    /// The logs a consumer group reads, in partition order.
    pub(crate) fn partitions(&self) -> Vec<Topic<Entry>> {
        match self {
            Log::Plain(t) => vec![t.clone()],
            Log::Partitioned(p) => p.partitions().to_vec(),
        }
    }

    /// How the topic retains messages (for a partitioned topic, each of
    /// its partitions).
    pub(crate) fn config(&self) -> &memq_core::TopicConfig {
        match self {
            Log::Plain(t) => t.config(),
            Log::Partitioned(p) => p.config(),
        }
    }

    /// Whether `other` is a handle of this very log, not of another topic
    /// of the same name (deleted and made again): each log's settings
    /// live in its own allocation.
    #[cfg(feature = "metrics")]
    pub(crate) fn same(&self, other: &Log) -> bool {
        std::ptr::eq(self.config(), other.config())
    }

    pub(crate) fn is_partitioned(&self) -> bool {
        matches!(self, Log::Partitioned(_))
    }

    /// Stats of the topic; for a partitioned topic, summed over partitions.
    pub(crate) fn stats(&self) -> TopicStats {
        self.stats_and_partitions().0
    }

    /// Stats of the topic and of each partition (none for a plain topic),
    /// each partition read once: the totals are the sums of those rows,
    /// not of a second reading taken while publishers ran.
    pub(crate) fn stats_and_partitions(&self) -> (TopicStats, Vec<TopicStats>) {
        match self {
            Log::Plain(t) => (t.stats().into(), Vec::new()),
            Log::Partitioned(p) => {
                let parts: Vec<TopicStats> = p.all_partition_stats().into_iter().map(Into::into).collect();
                (TopicStats::sum(parts.iter().cloned()), parts)
            }
        }
    }
}
