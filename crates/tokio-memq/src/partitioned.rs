//! Partitioned topics on the queue: creation, routing, publishing with
//! placement, per-partition subscriptions and stats.

use std::collections::BTreeMap;

use memq_partition::PartitionedTopic;

use crate::error::{PublishError, TopicError};
use crate::log::Log;
use crate::message::{Entry, TopicMessage};
use crate::options::{ConsumptionMode, PartitionRouting, PartitionStats, TopicOptions};
use crate::publisher::{KeyBytes, Publisher};
use crate::queue::MessageQueue;
use crate::subscriber::Subscriber;

impl MessageQueue {
    /// [`publish_batch_to_partitioned`](Self::publish_batch_to_partitioned)
    /// on a queue over Redis: each topic's share through its publisher.
    #[cfg(feature = "redis")]
    async fn publish_batch_to_remote(
        &self,
        by_topic: BTreeMap<std::sync::Arc<str>, Vec<(usize, TopicMessage)>>,
    ) -> Result<Vec<(usize, u64)>, PublishError<Vec<TopicMessage>>> {
        let Some(remote) = self.registry().remote().cloned() else {
            return Err(PublishError::Unroutable(Vec::new()));
        };
        let total: usize = by_topic.values().map(Vec::len).sum();
        // Every topic is checked before anything is published, as in memory.
        let mut refused = None;
        for topic in by_topic.keys() {
            let exists = remote.parted_exists(topic).await;
            if !matches!(exists, Ok(true)) {
                refused = Some(exists);
                break;
            }
        }
        if let Some(exists) = refused {
            // Handed back whole (by topic, as in memory).
            let all = by_topic.into_values().flatten().map(|(_, m)| m).collect();
            return Err(match exists {
                Err(TopicError::Store(error)) => PublishError::Store { value: all, error },
                _ => PublishError::Unroutable(all),
            });
        }
        let mut placements = vec![(0, 0); total];
        let mut groups = by_topic.into_iter();
        while let Some((topic, msgs)) = groups.next() {
            let rest_of = |groups: std::collections::btree_map::IntoIter<_, Vec<(usize, TopicMessage)>>| {
                groups.flat_map(|(_, msgs)| msgs.into_iter().map(|(_, m)| m))
            };
            let (positions, msgs): (Vec<usize>, Vec<TopicMessage>) = msgs.into_iter().unzip();
            match self.publisher(&*topic).publish_messages_placed(msgs).await {
                Ok(placed) => {
                    for (pos, placement) in positions.into_iter().zip(placed) {
                        placements[pos] = placement;
                    }
                }
                Err(e) => {
                    let later: Vec<TopicMessage> = rest_of(groups).collect();
                    return Err(e.map(|mut rest| {
                        rest.extend(later);
                        rest
                    }));
                }
            }
        }
        Ok(placements)
    }

    fn partitioned(&self, topic: &str) -> Result<PartitionedTopic<Entry>, TopicError> {
        match self.registry().get(topic).map(|e| e.log) {
            Some(Log::Partitioned(p)) => Ok(p),
            Some(Log::Plain(_)) => Err(TopicError::NotPartitioned {
                topic: topic.to_owned(),
            }),
            // A closed queue has emptied its registry: say why.
            None if self.registry().is_closed() => Err(TopicError::Closed),
            None => Err(TopicError::NoSuchTopic {
                topic: topic.to_owned(),
            }),
        }
    }

    /// Creates a topic of `partitions` partitions, each a log with
    /// `options`'s retention. Plain and partitioned topics share one
    /// namespace: `publisher`, `subscriber`, `subscriber_group`,
    /// `list_topics`, `get_topic_stats` and `delete_topic` all work on it.
    /// Creating it again with the same count and options does nothing.
    ///
    /// # Errors
    ///
    /// [`TopicError::PartitionCount`] for 0 partitions or a count that
    /// differs from `options.partitions` (when set) or from the existing
    /// topic's; [`TopicError::NotPartitioned`] for an existing plain topic
    /// of that name; [`TopicError::OptionsMismatch`],
    /// [`TopicError::InvalidOptions`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("events", TopicOptions::default(), 4).await?;
    /// mq.set_partition_routing("events", PartitionRouting::Hash).await?;
    /// let msg = TopicMessage::new_with_key("events", 42u32, "user-7")?;
    /// let (partition, offset) = mq.publish_to_partitioned(msg).await?;
    /// let sub = mq.subscribe_partition("events", partition, None, tokio_memq::ConsumptionMode::Earliest).await?;
    /// assert_eq!(sub.recv().await?.offset(), offset);
    /// assert!(mq.create_partitioned_topic("events", TopicOptions::default(), 0).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn create_partitioned_topic(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
        partitions: usize,
    ) -> Result<(), TopicError> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            if partitions == 0 || options.partitions.is_some_and(|p| p != partitions) {
                return Err(TopicError::PartitionCount {
                    topic: topic.as_ref().to_owned(),
                    requested: partitions,
                    existing: options.partitions,
                });
            }
            let options = TopicOptions {
                partitions: Some(partitions),
                ..options
            };
            return remote.open(topic.as_ref(), Some(&options)).await.map(drop);
        }
        self.registry()
            .get_or_create_partitioned(topic.as_ref(), &options, partitions)
            .map(drop)
    }

    /// Sets how messages published to a partitioned topic choose their
    /// partition (round-robin until set).
    ///
    /// # Errors
    ///
    /// [`TopicError::NoSuchTopic`], [`TopicError::NotPartitioned`] for a
    /// plain topic, [`TopicError::NoSuchPartition`] for `Fixed(n)` out of
    /// range, [`TopicError::Closed`] after [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicError, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("jobs", TopicOptions::default(), 3).await?;
    /// mq.set_partition_routing("jobs", PartitionRouting::Fixed(2)).await?;
    /// assert_eq!(mq.publish_to_partitioned(TopicMessage::new("jobs", 1)?).await?, (2, 0));
    /// let err = mq.set_partition_routing("jobs", PartitionRouting::Fixed(3)).await.unwrap_err();
    /// assert_eq!(err, TopicError::NoSuchPartition { partition: 3, partitions: 3 });
    /// mq.create_topic("plain", TopicOptions::default()).await?;
    /// let err = mq.set_partition_routing("plain", PartitionRouting::Hash).await.unwrap_err();
    /// assert_eq!(err, TopicError::NotPartitioned { topic: "plain".into() });
    /// # Ok(()) }
    /// ```
    pub async fn set_partition_routing(
        &self,
        topic: impl AsRef<str>,
        routing: PartitionRouting,
    ) -> Result<(), TopicError> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.set_routing(topic.as_ref(), routing.to_routing()).await;
        }
        let log = self.partitioned(topic.as_ref())?;
        if let PartitionRouting::Fixed(partition) = routing {
            let partitions = log.partition_count();
            if partition >= partitions {
                return Err(TopicError::NoSuchPartition {
                    partition,
                    partitions,
                });
            }
        }
        log.set_routing(routing.to_routing());
        Ok(())
    }

    /// Publishes `message` to the partitioned topic it names, through the
    /// topic's router (its key chooses the partition under hash routing),
    /// and returns the partition and offset.
    ///
    /// # Errors
    ///
    /// [`PublishError::Closed`] after [`close`](Self::close);
    /// [`PublishError::Unroutable`] when the topic does not exist, is not
    /// partitioned, or its router cannot place the message; otherwise as
    /// [`Publisher::publish`](crate::Publisher::publish). The message comes
    /// back inside.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PublishErrorKind, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("events", TopicOptions::default(), 2).await?;
    /// let mut placed = Vec::new();
    /// for i in 0..3 {
    ///     placed.push(mq.publish_to_partitioned(TopicMessage::new("events", i)?).await?);
    /// }
    /// assert_eq!(placed, [(0, 0), (1, 0), (0, 1)], "round-robin until routing is set");
    /// let err = mq.publish_to_partitioned(TopicMessage::new("nowhere", 1)?).await.unwrap_err();
    /// assert_eq!(err.kind(), PublishErrorKind::Unroutable);
    /// assert_eq!(err.into_inner().topic(), "nowhere", "the message comes back");
    /// # Ok(()) }
    /// ```
    pub async fn publish_to_partitioned(
        &self,
        message: TopicMessage,
    ) -> Result<(usize, u64), PublishError<TopicMessage>> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            // Only to a partitioned topic the server has.
            match remote.parted_exists(&message.topic).await {
                Ok(true) => {}
                Err(TopicError::Store(error)) => {
                    return Err(PublishError::Store {
                        value: message,
                        error,
                    })
                }
                _ => return Err(PublishError::Unroutable(message)),
            }
            return self
                .publisher(&*message.topic.clone())
                .publish_message_routed(message)
                .await;
        }
        // Through the topic looked at here: a publisher found it by name
        // again, and a topic deleted meanwhile was created anew, plain.
        let entry = match self.registry().get(&message.topic) {
            Some(entry) if matches!(entry.log, Log::Partitioned(_)) => entry,
            // `close()` empties the registry: that is `Closed`, as for a
            // publisher, not a topic that never existed.
            _ if self.registry().is_closed() => return Err(PublishError::Closed(message)),
            _ => return Err(PublishError::Unroutable(message)),
        };
        Publisher::bound(self.registry().clone(), &message.topic.clone(), entry)
            .publish_message_routed(message)
            .await
    }

    /// Publishes messages to the partitioned topics they name, one topic
    /// after another in name order. Each topic's messages are routed
    /// first; each partition's share is then published as one contiguous,
    /// in-order run. Returns every message's (partition, offset), in input
    /// order.
    ///
    /// # Errors
    ///
    /// [`PublishError::Closed`] after [`close`](Self::close);
    /// [`PublishError::Unroutable`] (nothing published) when a topic does
    /// not exist or is not partitioned: every topic is checked before
    /// anything is published. When a topic's router cannot place one of
    /// its messages (a custom router returning a partition out of range),
    /// nothing of that topic is published, and, as when a partition refuses
    /// its share (closed, too large), what was published before it stays
    /// published and the error (`Unroutable`, or the share's) hands back
    /// every message that was not.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PublishErrorKind, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("events", TopicOptions::default(), 2).await?;
    /// let batch = (0..4).map(|i| TopicMessage::new("events", i)).collect::<Result<Vec<_>, _>>()?;
    /// let placements = mq.publish_batch_to_partitioned(batch).await?;
    /// assert_eq!(placements, [(0, 0), (1, 0), (0, 1), (1, 1)], "one (partition, offset) per message");
    ///
    /// let mixed = vec![TopicMessage::new("events", 4)?, TopicMessage::new("nowhere", 5)?];
    /// let err = mq.publish_batch_to_partitioned(mixed).await.unwrap_err();
    /// assert_eq!((err.kind(), err.into_inner().len()), (PublishErrorKind::Unroutable, 2));
    /// assert_eq!(mq.get_topic_stats("events").await.unwrap().published, 4, "nothing published");
    /// # Ok(()) }
    /// ```
    pub async fn publish_batch_to_partitioned(
        &self,
        messages: Vec<TopicMessage>,
    ) -> Result<Vec<(usize, u64)>, PublishError<Vec<TopicMessage>>> {
        // Group by topic, remembering input positions.
        let mut by_topic: BTreeMap<std::sync::Arc<str>, Vec<(usize, TopicMessage)>> = BTreeMap::new();
        for (i, m) in messages.into_iter().enumerate() {
            by_topic.entry(m.topic.clone()).or_default().push((i, m));
        }
        #[cfg(feature = "redis")]
        if self.registry().remote().is_some() {
            return self.publish_batch_to_remote(by_topic).await;
        }
        let mut logs = Vec::with_capacity(by_topic.len());
        for topic in by_topic.keys() {
            match self.partitioned(topic) {
                Ok(log) => logs.push(log),
                Err(_) => {
                    let all = by_topic.into_values().flatten().map(|(_, m)| m).collect();
                    return Err(if self.registry().is_closed() {
                        PublishError::Closed(all)
                    } else {
                        PublishError::Unroutable(all)
                    });
                }
            }
        }
        let total: usize = by_topic.values().map(Vec::len).sum();
        let mut placements = vec![(0, 0); total];
        let mut groups = by_topic.into_iter().zip(logs).peekable();
        while let Some(((topic, msgs), log)) = groups.next() {
            let (positions, msgs): (Vec<usize>, Vec<TopicMessage>) = msgs.into_iter().unzip();
            let formats = &self.registry().formats;
            let mut keyed: Vec<(Option<KeyBytes>, Entry)> = Vec::with_capacity(msgs.len());
            let mut msgs = msgs.into_iter();
            // A byte budget weighs native values by what they hold, as a
            // publisher's publishes do.
            let budget = log.config().max_bytes.is_some();
            for m in msgs.by_ref() {
                match m.format_tag(formats) {
                    Ok(tag) => {
                        let mut e = m.into_entry(tag);
                        if budget {
                            e.weigh_native();
                        }
                        keyed.push((e.key.clone().map(KeyBytes), e));
                    }
                    Err(error) => {
                        // Nothing of this topic's share was published.
                        let mut rest: Vec<TopicMessage> = keyed
                            .into_iter()
                            .map(|(_, e)| TopicMessage::unpublished(formats, &topic, e))
                            .collect();
                        rest.push(m);
                        rest.extend(msgs);
                        for ((_, later), _) in groups {
                            rest.extend(later.into_iter().map(|(_, m)| m));
                        }
                        return Err(PublishError::Encode {
                            value: rest,
                            error: error.into(),
                        });
                    }
                }
            }
            match log.publish_batch(keyed).await {
                Ok(receipt) => {
                    for (pos, placement) in positions.into_iter().zip(receipt.placements()) {
                        placements[pos] = placement;
                    }
                }
                Err(e) => {
                    let kind = PublishError::from(e.cause);
                    let mut rest: Vec<TopicMessage> = e
                        .unpublished
                        .into_iter()
                        .map(|(_, v)| TopicMessage::unpublished(formats, &topic, v))
                        .collect();
                    for ((topic, msgs), _) in groups {
                        rest.extend(msgs.into_iter().map(|(_, m)| m).filter(|m| m.topic == topic));
                    }
                    return Err(kind.map(|()| rest));
                }
            }
        }
        Ok(placements)
    }

    /// Subscribes to one partition of a partitioned topic. With a
    /// `consumer_id`, the subscription is that named consumer's: its
    /// commits persist, and [`ConsumptionMode::LastOffset`] resumes after
    /// them (use [`subscriber_group`](Self::subscriber_group) for
    /// competing consumers).
    ///
    /// # Errors
    ///
    /// [`TopicError::NoSuchTopic`], [`TopicError::NoSuchPartition`],
    /// [`TopicError::NotPartitioned`] for a plain topic,
    /// [`TopicError::OutOfRange`] for a start offset outside the window,
    /// [`TopicError::Closed`] after [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// A named consumer resumes after its last commit:
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, TopicError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("orders", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("orders", PartitionRouting::Fixed(0)).await?;
    /// mq.publisher("orders").publish_batch(vec!["a", "b", "c"]).await?;
    /// let billing = || mq.subscribe_partition("orders", 0, Some("billing".into()), ConsumptionMode::LastOffset);
    /// let first = mq.subscribe_partition("orders", 0, Some("billing".into()), ConsumptionMode::Earliest).await?;
    /// first.commit(first.recv().await?.offset()).await?;
    /// drop(first);
    /// assert_eq!(billing().await?.recv().await?.offset(), 1);
    /// let err = mq.subscribe_partition("orders", 5, None, ConsumptionMode::Latest).await.unwrap_err();
    /// assert_eq!(err, TopicError::NoSuchPartition { partition: 5, partitions: 2 });
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_partition(
        &self,
        topic: impl AsRef<str>,
        partition: usize,
        consumer_id: Option<String>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        let topic = topic.as_ref();
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            if consumer_id.is_some() {
                return Err(TopicError::Store(crate::error::StoreError::unsupported(
                    "not supported by a queue over Redis: named consumers (use a group)",
                )));
            }
            remote.parted(topic).await?;
            let source = remote.subscribe(topic, None, mode, Some(partition)).await?;
            let mut sub = Subscriber::remote(self.registry().clone(), topic, source);
            sub.set_partition(partition);
            return Ok(sub);
        }
        let log = self.partitioned(topic)?;
        let cursor = match &consumer_id {
            Some(id) => log.subscribe_partition_named(partition, id, mode.start()),
            None => log.subscribe_partition(partition, mode.start()),
        }?;
        let mut sub = Subscriber::new(self.registry().clone(), Log::Partitioned(log), topic, cursor);
        sub.set_partition(partition);
        Ok(sub)
    }

    /// Like [`subscribe_partition`](Self::subscribe_partition), creating
    /// the topic with `options` and `options.partitions` partitions (or
    /// `partition + 1`) when absent (the 1.0.0 behaviour). An existing
    /// topic must match `options` as for
    /// [`create_partitioned_topic`](Self::create_partitioned_topic).
    ///
    /// # Errors
    ///
    /// As [`create_partitioned_topic`](Self::create_partitioned_topic)
    /// (an existing topic with other retention options is
    /// [`TopicError::OptionsMismatch`], with another count than
    /// `options.partitions` [`TopicError::PartitionCount`], a plain topic
    /// [`TopicError::NotPartitioned`]) and
    /// [`subscribe_partition`](Self::subscribe_partition).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions::default();
    /// let sub = mq.subscribe_partition_with_options("clicks", 2, options, None, ConsumptionMode::Earliest).await?;
    /// assert_eq!(mq.get_all_partition_stats("clicks").await.len(), 3, "created with partition + 1");
    /// mq.set_partition_routing("clicks", PartitionRouting::Fixed(2)).await?;
    /// mq.publish_to_partitioned(TopicMessage::new("clicks", "x")?).await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!((msg.partition, msg.offset()), (Some(2), 0));
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_partition_with_options(
        &self,
        topic: impl AsRef<str>,
        partition: usize,
        options: TopicOptions,
        consumer_id: Option<String>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        let topic = topic.as_ref();
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            // An existing topic keeps its count; a new one gets `partition + 1`.
            let existing = match remote.parted(topic).await {
                Ok(p) => Some(p.partition_count()),
                Err(TopicError::NoSuchTopic { .. }) => None,
                Err(e) => return Err(e),
            };
            let options = TopicOptions {
                partitions: options
                    .partitions
                    .or(existing)
                    .or(Some(partition.saturating_add(1))),
                ..options
            };
            if existing.is_none() {
                // Refused before the topic is made, as in memory: a
                // partition it would not have, a start past its (empty)
                // window.
                let partitions = options.partitions.unwrap_or(partition.saturating_add(1));
                if partition >= partitions {
                    return Err(TopicError::NoSuchPartition {
                        partition,
                        partitions,
                    });
                }
                if let ConsumptionMode::Offset(n @ 1..) = mode {
                    return Err(crate::remote::outside_a_new_window(n));
                }
            }
            remote.open(topic, Some(&options)).await?;
            return self
                .subscribe_partition(topic, partition, consumer_id, mode)
                .await;
        }
        // An existing topic is checked against `options` (retention, and
        // the count when given) as `create_partitioned_topic` checks it.
        let count = match (options.partitions, self.registry().get(topic).map(|e| e.log)) {
            (Some(count), _) => count,
            (None, Some(Log::Partitioned(log))) => log.partition_count(),
            (None, _) => partition.saturating_add(1),
        };
        // Tried on a topic made here before it is registered: a start or
        // a partition it refuses leaves no topic behind.
        let try_start = |log: &Log| match log {
            Log::Partitioned(log) => match &consumer_id {
                Some(id) => log.subscribe_partition_named(partition, id, mode.start()),
                None => log.subscribe_partition(partition, mode.start()),
            }
            .map(drop)
            .map_err(TopicError::from),
            Log::Plain(_) => Ok(()),
        };
        self.registry()
            .get_or_create_partitioned_for(topic, &options, count, Some(&try_start))?;
        self.subscribe_partition(topic, partition, consumer_id, mode)
            .await
    }

    /// Counters of one partition, or `None` when the topic is not
    /// partitioned or has no such partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// let _sub = mq.subscribe_partition("clicks", 0, None, ConsumptionMode::Latest).await?;
    /// for i in 0..3 {
    ///     mq.publish_to_partitioned(TopicMessage::new("clicks", i)?).await?; // to 0, 1, 0
    /// }
    /// let first = mq.get_partition_stats("clicks", 0).await.expect("partition 0 exists");
    /// assert_eq!((first.published, first.next_offset, first.subscriber_count), (2, 2, 1));
    /// assert!(mq.get_partition_stats("clicks", 2).await.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn get_partition_stats(
        &self,
        topic: impl AsRef<str>,
        partition: usize,
    ) -> Option<PartitionStats> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            let all = remote.partition_stats(topic.as_ref()).await.ok()?;
            return all.into_iter().find(|s| s.partition == partition);
        }
        let log = self.partitioned(topic.as_ref()).ok()?;
        // First: it writes the groups' lazy automatic commits, which the
        // partition's consumer lags are computed from.
        let groups = self.registry().group_stats_of(topic.as_ref());
        let mut stats = PartitionStats::new(partition, log.partition_stats(partition).ok()?);
        stats.subscriber_count =
            crate::options::with_group_members(stats.subscriber_count, &groups, Some(partition));
        Some(stats)
    }

    /// Counters of every partition, in partition order (empty when the
    /// topic is not partitioned). Never waits for publishers.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 3).await?;
    /// for i in 0..4 {
    ///     mq.publish_to_partitioned(TopicMessage::new("clicks", i)?).await?; // to 0, 1, 2, 0
    /// }
    /// let stats = mq.get_all_partition_stats("clicks").await;
    /// let published: Vec<_> = stats.iter().map(|s| (s.partition, s.published)).collect();
    /// assert_eq!(published, [(0, 2), (1, 1), (2, 1)]);
    /// assert!(mq.get_all_partition_stats("missing").await.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn get_all_partition_stats(&self, topic: impl AsRef<str>) -> Vec<PartitionStats> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.partition_stats(topic.as_ref()).await.unwrap_or_default();
        }
        let Ok(log) = self.partitioned(topic.as_ref()) else {
            return Vec::new();
        };
        let groups = self.registry().group_stats_of(topic.as_ref());
        log.all_partition_stats()
            .into_iter()
            .enumerate()
            .map(|(p, s)| {
                let mut stats = PartitionStats::new(p, s);
                stats.subscriber_count =
                    crate::options::with_group_members(stats.subscriber_count, &groups, Some(p));
                stats
            })
            .collect()
    }

    /// The names of the partitioned topics, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("b", TopicOptions::default(), 2).await?;
    /// mq.create_topic("plain", TopicOptions::default()).await?;
    /// mq.create_partitioned_topic("a", TopicOptions::default(), 3).await?;
    /// assert_eq!(mq.list_partitioned_topics().await, ["a", "b"]);
    /// assert_eq!(mq.list_topics().await, ["a", "b", "plain"]);
    /// # Ok(()) }
    /// ```
    pub async fn list_partitioned_topics(&self) -> Vec<String> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.list_partitioned().await.unwrap_or_default();
        }
        let mut names = Vec::new();
        for name in self.list_topics().await {
            if self.partitioned(&name).is_ok() {
                names.push(name);
            }
        }
        names
    }

    /// Deletes a partitioned topic; as [`delete_topic`](Self::delete_topic).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// mq.create_topic("plain", TopicOptions::default()).await?;
    /// let sub = mq.subscriber("clicks").await?;
    /// assert!(!mq.delete_partitioned_topic("plain").await, "a plain topic is left alone");
    /// assert!(mq.delete_partitioned_topic("clicks").await);
    /// assert!(sub.is_closed());
    /// assert_eq!(mq.list_topics().await, ["plain"]);
    /// # Ok(()) }
    /// ```
    pub async fn delete_partitioned_topic(&self, topic: impl AsRef<str>) -> bool {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.parted(topic.as_ref()).await.is_ok() && self.delete_topic(topic).await;
        }
        // Checked and removed in one step: a plain topic created under the
        // name meanwhile is left alone.
        let removed = self
            .registry()
            .remove_if(topic.as_ref(), |e| matches!(e.log, Log::Partitioned(_)));
        self.deleted(topic.as_ref(), removed)
    }
}
