//! Seeing inside a running queue: a snapshot of every topic, partition and
//! consumer group; with the `metrics` feature, the same as metrics; with
//! the `tracing` feature, events (see the [`event!`](crate::event) uses).

use memq_groups::GroupStats;

use crate::options::{PartitionStats, TopicStats};
use crate::queue::MessageQueue;

/// One topic of a [`MessageQueue::snapshot`]: its stats, its partitions'
/// (for a partitioned topic) and its consumer groups'.
///
/// # Examples
///
/// ```
/// use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
/// let _worker = mq.group("orders", "billing").mode(ConsumptionMode::Earliest).join().await?;
/// mq.publisher("orders").publish_batch(vec![1u8, 2, 3]).await?;
/// let topics = mq.snapshot();
/// let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
/// assert_eq!(names, ["clicks", "orders"]);
/// assert_eq!(topics[0].partitions.len(), 2);
/// assert_eq!((topics[1].stats.message_count, topics[1].groups[0].name.as_str(), topics[1].groups[0].lag), (3, "billing", 3));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TopicSnapshot {
    /// The topic's name.
    pub name: String,
    /// Its counters (summed over partitions for a partitioned topic).
    pub stats: TopicStats,
    /// Each partition's counters; empty for a plain topic.
    pub partitions: Vec<PartitionStats>,
    /// Its consumer groups, by name.
    pub groups: Vec<GroupStats>,
}

impl MessageQueue {
    /// Every topic, with its partitions and consumer groups, sorted by
    /// name: what an admin page or a metrics exporter shows. Takes each
    /// topic's and group's lock briefly, one at a time; publishers are not
    /// held up.
    ///
    /// It reads this process's topics without waiting: for a queue over
    /// Redis (`MessageQueue::connect`, the `redis` feature) it is empty (the topics are on the
    /// server; [`list_topics`](MessageQueue::list_topics) and
    /// [`get_topic_stats`](MessageQueue::get_topic_stats) ask it), and so
    /// is the admin page of such a queue.
    ///
    /// # Examples
    ///
    /// See [`TopicSnapshot`].
    pub fn snapshot(&self) -> Vec<TopicSnapshot> {
        let mut topics: Vec<TopicSnapshot> = self
            .registry()
            .entries()
            .into_iter()
            .map(|(name, entry)| {
                let groups = entry.group_handles();
                // Groups write their automatic commits lazily; make lags current.
                for g in &groups {
                    g.flush_commits();
                }
                let mut groups: Vec<GroupStats> = groups.iter().map(|g| g.stats()).collect();
                groups.sort_by(|a, b| a.name.cmp(&b.name));
                let (mut stats, parts) = entry.log.stats_and_partitions();
                let partitions = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let mut stats = PartitionStats::from_topic(i, s);
                        stats.subscriber_count =
                            crate::options::with_group_members(stats.subscriber_count, &groups, Some(i));
                        stats
                    })
                    .collect();
                stats.subscriber_count =
                    crate::options::with_group_members(stats.subscriber_count, &groups, None);
                TopicSnapshot {
                    name: name.to_string(),
                    stats,
                    partitions,
                    groups,
                }
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }
}

#[cfg(feature = "metrics")]
mod export {
    use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

    use crate::queue::MessageQueue;

    impl MessageQueue {
        /// Describes the metrics [`record_metrics`](Self::record_metrics)
        /// records (help text and units, for exporters that show them).
        /// Call once, after installing the recorder.
        ///
        /// # Examples
        ///
        /// See [`record_metrics`](Self::record_metrics).
        pub fn describe_metrics() {
            let c = |name: &'static str, help: &'static str| describe_counter!(name, Unit::Count, help);
            let g = |name: &'static str, unit: Unit, help: &'static str| describe_gauge!(name, unit, help);
            c(
                "memq_messages_published_total",
                "Messages published to the topic.",
            );
            c(
                "memq_messages_delivered_total",
                "Messages handed to the topic's subscribers and group members (each delivery counted).",
            );
            c("memq_messages_evicted_total", "Messages evicted for capacity.");
            c("memq_messages_expired_total", "Messages dropped by their TTL.");
            g(
                "memq_retained_messages",
                Unit::Count,
                "Messages the topic retains now.",
            );
            g("memq_retained_bytes", Unit::Bytes, "Bytes the topic retains now.");
            g("memq_subscribers", Unit::Count, "Subscribers of the topic.");
            c(
                "memq_partition_messages_published_total",
                "Messages published to the partition.",
            );
            g(
                "memq_partition_retained_messages",
                Unit::Count,
                "Messages the partition retains now.",
            );
            g(
                "memq_partition_subscribers",
                Unit::Count,
                "Subscribers of the partition.",
            );
            g(
                "memq_group_members",
                Unit::Count,
                "Members of the consumer group.",
            );
            g(
                "memq_group_lag_messages",
                Unit::Count,
                "Messages published after the group's committed position (GroupStats::lag).",
            );
            g(
                "memq_group_pending_acks",
                Unit::Count,
                "Messages handed out and not acknowledged.",
            );
            c(
                "memq_group_redeliveries_total",
                "Messages the group delivered again.",
            );
            c("memq_group_dead_letters_total", "Messages the group gave up on.");
        }

        /// Records the queue's state through the [`metrics`] facade, for
        /// any exporter: call it where the exporter renders (a Prometheus
        /// scrape handler) or on a timer. Nothing is recorded on the
        /// publish or receive path; counters are set to their current
        /// totals (`absolute`). A topic deleted and created again starts
        /// its totals over at 0, as a restarted process does: recorders that
        /// keep the largest value a counter was set to (the `metrics`
        /// crate's own atomic counters) show the old totals until the new
        /// ones pass them; and a deleted topic's series are not removed
        /// (nothing is recorded for it any more: they keep their last
        /// values until the exporter drops idle series). Names follow
        /// Prometheus conventions:
        ///
        /// | metric | type | labels |
        /// |---|---|---|
        /// | `memq_messages_published_total`, `memq_messages_delivered_total`, `memq_messages_evicted_total`, `memq_messages_expired_total` | counter | `topic` |
        /// | `memq_retained_messages`, `memq_retained_bytes`, `memq_subscribers` | gauge | `topic` |
        /// | `memq_partition_messages_published_total` | counter | `topic`, `partition` |
        /// | `memq_partition_retained_messages`, `memq_partition_subscribers` | gauge | `topic`, `partition` |
        /// | `memq_group_members`, `memq_group_lag_messages`, `memq_group_pending_acks` | gauge | `topic`, `group` |
        /// | `memq_group_redeliveries_total`, `memq_group_dead_letters_total` | counter | `topic`, `group` |
        ///
        /// The delivered count is kept only with this feature (one atomic
        /// add per receive call, shared by a topic's subscribers).
        ///
        /// # Examples
        ///
        /// ```
        /// use tokio_memq::MessageQueue;
        ///
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> anyhow::Result<()> {
        /// // With an exporter installed (for example metrics-exporter-prometheus):
        /// MessageQueue::describe_metrics();
        /// let mq = MessageQueue::new();
        /// let sub = mq.subscriber("orders").await?;
        /// mq.publisher("orders").publish("o-1").await?;
        /// sub.recv().await?;
        /// mq.record_metrics(); // before each scrape
        /// # Ok(()) }
        /// ```
        pub fn record_metrics(&self) {
            let delivered = self.registry().delivered_counts();
            for t in self.snapshot() {
                let topic = t.name;
                let label = || [("topic", topic.clone())];
                counter!("memq_messages_published_total", &label()).absolute(t.stats.published);
                let d = delivered.get(topic.as_str()).copied().unwrap_or(0);
                counter!("memq_messages_delivered_total", &label()).absolute(d);
                counter!("memq_messages_evicted_total", &label()).absolute(t.stats.evicted);
                counter!("memq_messages_expired_total", &label()).absolute(t.stats.expired);
                gauge!("memq_retained_messages", &label()).set(t.stats.message_count as f64);
                gauge!("memq_retained_bytes", &label()).set(t.stats.bytes as f64);
                gauge!("memq_subscribers", &label()).set(t.stats.subscriber_count as f64);
                for p in &t.partitions {
                    let labels = [("topic", topic.clone()), ("partition", p.partition.to_string())];
                    counter!("memq_partition_messages_published_total", &labels).absolute(p.published);
                    gauge!("memq_partition_retained_messages", &labels).set(p.message_count as f64);
                    gauge!("memq_partition_subscribers", &labels).set(p.subscriber_count as f64);
                }
                for g in &t.groups {
                    let labels = [("topic", topic.clone()), ("group", g.name.clone())];
                    gauge!("memq_group_members", &labels).set(g.members as f64);
                    gauge!("memq_group_lag_messages", &labels).set(g.lag as f64);
                    gauge!("memq_group_pending_acks", &labels).set(g.pending as f64);
                    counter!("memq_group_redeliveries_total", &labels).absolute(g.redeliveries);
                    counter!("memq_group_dead_letters_total", &labels).absolute(g.dead_lettered);
                }
            }
        }
    }
}
