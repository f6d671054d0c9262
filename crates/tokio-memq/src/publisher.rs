//! Publishing to a topic.

use std::future::{poll_fn, Future};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use memq_codec::{Codec, CodecError, SerializationFactory};
use parking_lot::RwLock;
use serde::Serialize;

use crate::error::PublishError;
use crate::format::{FormatTag, SerializationFormat};
use crate::log::Log;
use crate::message::{Entry, TopicMessage};
use crate::queue::{PublisherLease, Registry, TopicEntry};

/// Publishes messages to one topic.
///
/// Cheap to clone. The topic is looked up (and created with default
/// options if nobody created it) on the first publish, and the publisher
/// is bound to it from then on; after the topic is deleted, publishing
/// fails with [`PublishError::Closed`] — make a new publisher to publish
/// into a topic created again under the same name. A clone taken after
/// the first publish is bound to the same topic; one taken before binds
/// on its own first publish (so, first used after a delete, it finds the
/// topic created again under the name).
///
/// Every publish returns the offset the message got. On a partitioned
/// topic, messages go through the topic's router (by key where the routing
/// uses keys) and the offset is the one in the partition chosen;
/// [`MessageQueue::publish_to_partitioned`](crate::MessageQueue::publish_to_partitioned)
/// also returns the partition.
///
/// # Serialization
///
/// [`publish`](Self::publish) stores values natively unless serialization
/// defaults apply to this publisher (registered for its publisher key) or
/// its topic, on the queue
/// ([`MessageQueue::register_topic_defaults`](crate::MessageQueue::register_topic_defaults))
/// or process-wide ([`SerializationFactory`]); then it serializes with
/// them. The choice is cached per publisher and refreshed when a
/// registration changes.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, PublishError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let publisher = mq.publisher("events");
/// let clone = publisher.clone();
/// assert_eq!(publisher.publish(1u32).await?, 0);
/// assert_eq!(clone.publish(2u32).await?, 1, "clones publish to the same topic");
///
/// mq.delete_topic("events").await;
/// assert!(matches!(publisher.publish(3u32).await, Err(PublishError::Closed(3))));
/// let fresh = mq.publisher("events");
/// assert_eq!(fresh.publish(3u32).await?, 0, "a new topic under the same name");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Publisher {
    /// Keeps the queue alive and the topic open (see
    /// [`MessageQueue`](crate::MessageQueue#closing)).
    lease: PublisherLease,
    topic_name: Arc<str>,
    publisher_key: Option<Arc<str>>,
    /// The topic, resolved on the first publish, and whether it has a byte
    /// budget (then native values are weighed by what they hold).
    topic: OnceLock<Target>,
    /// The codec that applies, and the registry generations it was
    /// resolved at.
    codec: RwLock<Option<CachedCodec>>,
    /// For a queue over Redis: the topic found on the first publish.
    #[cfg(feature = "redis")]
    remote_topic: OnceLock<RemoteBinding>,
}

/// The topic a publisher of a queue over Redis is bound to, and whether it
/// is gone (deleted by this process, or found deleted by a publish).
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
struct RemoteBinding {
    topic: crate::remote::RemoteTopic,
    gone: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The topic a publisher found on its first publish.
#[derive(Debug, Clone)]
struct Target {
    log: Log,
    /// The topic has a byte budget: native values are weighed by what
    /// they hold.
    budget: bool,
}

#[derive(Debug, Clone)]
struct CachedCodec {
    queue_generation: u64,
    global_generation: u64,
    codec: Option<(Codec, FormatTag)>,
}

impl Clone for Publisher {
    fn clone(&self) -> Self {
        // The topic first: a publisher's lease is bound before its topic
        // is set (see `target`), so a clone that copies the topic gets a
        // bound lease too. (Copied the other way round, a clone taken
        // during the first publish had the topic and an unbound lease,
        // which counted for whatever topic had the name next and kept it
        // open for good.)
        let topic = self.topic.clone();
        Publisher {
            lease: self.lease.clone(),
            topic_name: self.topic_name.clone(),
            publisher_key: self.publisher_key.clone(),
            topic,
            codec: RwLock::new(self.codec.read().clone()),
            #[cfg(feature = "redis")]
            remote_topic: self.remote_topic.clone(),
        }
    }
}

/// A value ready to publish: stored natively, or encoded (then the value
/// is kept to hand back if publishing fails).
enum Prepared<T> {
    Native(Entry),
    Encoded(Entry, T),
}

impl<T: Send + Sync + 'static> Prepared<T> {
    fn split(self) -> (Entry, impl FnOnce(Entry) -> T) {
        let (entry, kept) = match self {
            Prepared::Native(e) => (e, None),
            Prepared::Encoded(e, v) => (e, Some(v)),
        };
        (entry, move |e: Entry| match kept {
            Some(v) => v,
            None => e.into_native(),
        })
    }
}

impl Publisher {
    pub(crate) fn new(registry: Arc<Registry>, topic: &str, key: Option<&str>) -> Self {
        let topic_name: Arc<str> = topic.into();
        Publisher {
            lease: PublisherLease::new(registry, topic_name.clone()),
            topic_name,
            publisher_key: key.map(Into::into),
            topic: OnceLock::new(),
            codec: RwLock::new(None),
            #[cfg(feature = "redis")]
            remote_topic: OnceLock::new(),
        }
    }

    /// The codec that applies to this publisher, or `None` to store
    /// natively: publisher defaults (queue, then global), then topic
    /// defaults (queue, then global).
    fn codec(&self) -> Result<Option<(Codec, FormatTag)>, CodecError> {
        let global = SerializationFactory::global();
        let (q, g) = (self.registry().defaults.generation(), global.generation());
        if let Some(c) = &*self.codec.read() {
            if c.queue_generation == q && c.global_generation == g {
                return Ok(c.codec.clone());
            }
        }
        let queue = &self.registry().defaults;
        // Each level is looked at only when none above it applies: one
        // below that cannot build its codec must not fail a publish that
        // would not use it.
        let mut codec = None;
        if let Some(key) = self.publisher_key.as_deref() {
            codec = match queue.publisher_codec(key)? {
                Some(c) => Some(c),
                None => global.publisher_codec(key)?,
            };
        }
        if codec.is_none() {
            codec = match queue.topic_codec(&self.topic_name)? {
                Some(c) => Some(c),
                None => global.topic_codec(&self.topic_name)?,
            };
        }
        let codec = match codec {
            Some(c) => {
                let tag = self.registry().formats.tag_of_codec(&c)?;
                Some((c, tag))
            }
            None => None,
        };
        *self.codec.write() = Some(CachedCodec {
            queue_generation: q,
            global_generation: g,
            codec: codec.clone(),
        });
        Ok(codec)
    }

    /// Stores `data` natively or encodes it with the codec that applies.
    fn prepare<T: Serialize + Send + Sync + 'static>(&self, data: T) -> Result<Prepared<T>, PublishError<T>> {
        let encoded = self.codec().and_then(|c| match c {
            Some((codec, tag)) => codec.encode(&data).map(|b| Some(Entry::encoded(b, tag))),
            None => Ok(None),
        });
        match encoded {
            Ok(Some(entry)) => Ok(Prepared::Encoded(entry, data)),
            Ok(None) => Ok(Prepared::Native(Entry::native(data))),
            Err(e) => Err(PublishError::Encode {
                value: data,
                error: e.into(),
            }),
        }
    }

    /// As [`prepare`](Self::prepare), for a batch.
    #[allow(clippy::type_complexity)]
    fn prepare_batch<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> Result<(Vec<Entry>, Option<Vec<T>>), PublishError<Vec<T>>> {
        match self.codec() {
            Ok(codec) => Self::encode_batch(data, codec),
            Err(e) => Err(PublishError::Encode {
                value: data,
                error: e.into(),
            }),
        }
    }

    /// The entries for `data`: encoded by `codec` (the values kept to be
    /// handed back), or native values without one.
    #[allow(clippy::type_complexity)]
    fn encode_batch<T: Serialize + Send + Sync + 'static>(
        data: Vec<T>,
        codec: Option<(Codec, FormatTag)>,
    ) -> Result<(Vec<Entry>, Option<Vec<T>>), PublishError<Vec<T>>> {
        let Some((codec, tag)) = codec else {
            return Ok((data.into_iter().map(Entry::native).collect(), None));
        };
        let mut entries = Vec::with_capacity(data.len());
        for v in &data {
            match codec.encode(v) {
                Ok(b) => entries.push(Entry::encoded(b, tag)),
                Err(e) => {
                    return Err(PublishError::Encode {
                        value: data,
                        error: e.into(),
                    })
                }
            }
        }
        Ok((entries, Some(data)))
    }

    /// The codec for `format` with its default settings, and its tag in
    /// this queue; `None` for [`SerializationFormat::Native`].
    fn codec_for(&self, format: SerializationFormat) -> Result<Option<(Codec, FormatTag)>, CodecError> {
        if format == SerializationFormat::Native {
            return Ok(None);
        }
        let codec = Codec::new(format, Default::default(), Default::default())?;
        let tag = self.registry().formats.tag_of_codec(&codec)?;
        Ok(Some((codec, tag)))
    }

    /// Whether this publishes to a queue over Redis (where nothing can be
    /// published without waiting: `try_publish` is unsupported).
    pub(crate) fn is_remote(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.registry().remote().is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    fn registry(&self) -> &Arc<Registry> {
        self.lease.registry()
    }

    /// The tag of `format` in this queue; `data` comes back with it, or in
    /// the error when the queue's table of formats is full.
    fn tag_of<V>(&self, format: &SerializationFormat, data: V) -> Result<(FormatTag, V), PublishError<V>> {
        match self.registry().formats.tag_of(format) {
            Ok(tag) => Ok((tag, data)),
            Err(e) => Err(PublishError::Encode {
                value: data,
                error: e.into(),
            }),
        }
    }

    /// The topic this publisher publishes to.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("events");
    /// assert_eq!(publisher.topic(), "events");
    /// assert!(mq.list_topics().await.is_empty(), "created on the first publish");
    /// publisher.publish("hello").await?;
    /// assert_eq!(mq.list_topics().await, ["events"]);
    /// # Ok(()) }
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic_name
    }

    /// True when publishing can no longer succeed: the queue was
    /// [closed](crate::MessageQueue::close) or the topic this publisher
    /// publishes to was deleted. Over Redis, a topic deleted by another
    /// process is seen once a publish finds it gone.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("events");
    /// publisher.publish("one").await?;
    /// assert!(!publisher.is_closed());
    /// mq.delete_topic("events").await;
    /// assert!(publisher.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        if self.registry().is_closed() {
            return true;
        }
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.is_closed()
                || self
                    .remote_topic
                    .get()
                    .is_some_and(|b| b.gone.load(std::sync::atomic::Ordering::Acquire));
        }
        match self.topic.get() {
            Some(target) => target.log.is_closed(),
            // A clone taken while the publisher it copies bound itself:
            // bound to that topic, which it finds (and binds to) or finds
            // gone (a publish would be `Closed`).
            None if self.lease.bound_id().is_some() => self.target().is_none_or(|t| t.log.is_closed()),
            None => false,
        }
    }

    /// The publisher key given to
    /// [`MessageQueue::publisher_with_key`](crate::MessageQueue::publisher_with_key).
    ///
    /// # Examples
    ///
    /// The key selects the serialization defaults registered for it:
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationConfig, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.register_publisher_defaults("billing", SerializationFormat::Json, SerializationConfig::Default, None);
    /// let sub = mq.subscriber("events").await?;
    /// let (billing, plain) = (mq.publisher_with_key("events", "billing"), mq.publisher("events"));
    /// assert_eq!((billing.publisher_key(), plain.publisher_key()), (Some("billing"), None));
    /// billing.publish(5u32).await?;
    /// plain.publish(6u32).await?;
    /// assert_eq!(sub.recv().await?.format, SerializationFormat::Json);
    /// assert_eq!(sub.recv().await?.format, SerializationFormat::Native);
    /// # Ok(()) }
    /// ```
    pub fn publisher_key(&self) -> Option<&str> {
        self.publisher_key.as_deref()
    }

    fn target(&self) -> Option<&Target> {
        if let Some(t) = self.topic.get() {
            return Some(t);
        }
        let entry = match self.lease.bound_id() {
            // A clone taken while the publisher it copies found its topic:
            // that topic only (never one created under the name since).
            Some(id) => self.registry().get(&self.topic_name).filter(|e| e.id == id)?,
            None => self.registry().get_or_create(&self.topic_name, None).ok()?,
        };
        Some(self.bind_to(entry))
    }

    /// Binds this publisher to `entry`'s topic (unless it found one
    /// already): from now on it can only publish there. The lease is
    /// bound before the topic is set, for `clone`.
    fn bind_to(&self, entry: TopicEntry) -> &Target {
        self.topic.get_or_init(|| {
            self.lease.bind(entry.id);
            Target {
                budget: entry.log.config().max_bytes.is_some(),
                log: entry.log,
            }
        })
    }

    /// A publisher bound to `entry`, the topic of that name a caller just
    /// looked at (not whatever has the name by its first publish).
    pub(crate) fn bound(registry: Arc<Registry>, topic: &str, entry: TopicEntry) -> Self {
        let publisher = Publisher::new(registry, topic, None);
        publisher.bind_to(entry);
        publisher
    }

    /// The topic's log, with `entry` weighed for its byte budget.
    fn log_for(&self, entry: &mut Entry) -> Option<&Log> {
        let target = self.target()?;
        if target.budget {
            entry.weigh_native();
        }
        Some(&target.log)
    }

    /// As [`log_for`](Self::log_for), for a batch.
    fn log_for_all(&self, entries: &mut [Entry]) -> Option<&Log> {
        let target = self.target()?;
        if target.budget {
            entries.iter_mut().for_each(Entry::weigh_native);
        }
        Some(&target.log)
    }

    async fn publish_entry<T>(
        &self,
        entry: Entry,
        back: impl FnOnce(Entry) -> T,
    ) -> Result<u64, PublishError<T>> {
        if budget_due() {
            tokio::task::consume_budget().await;
        }
        let entry = match self.publish_at_once(entry) {
            Ok(offset) => return Ok(offset),
            Err(entry) => entry,
        };
        Ok(self.publish_spent(entry, None, back).await?.1)
    }

    /// The publish [`publish_routed`](Self::publish_routed) makes on its
    /// first poll, once the cooperative budget is counted, when nothing
    /// makes it wait or yield first (a plain local topic with room, no
    /// reader to pace, the topic's lock free), made without building its
    /// future (the layers of futures cost a single publish about 80 of
    /// its 900 instructions, by callgrind). Hands the entry back,
    /// unpublished, whenever any of that does not hold (the full path
    /// then decides). Not with the `tracing` feature (that path opens a
    /// span per publish) nor on a topic with a byte budget.
    #[inline]
    fn publish_at_once(&self, entry: Entry) -> Result<u64, Entry> {
        if cfg!(feature = "tracing") {
            return Err(entry);
        }
        #[cfg(feature = "redis")]
        if self.registry().remote().is_some() {
            return Err(entry);
        }
        // Not on a topic with a byte budget either: a native value would
        // be weighed twice whenever the full path must take over.
        let Some(Target {
            log: Log::Plain(log),
            budget: false,
        }) = self.target()
        else {
            return Err(entry);
        };
        if log.near_eviction() || log.is_busy() {
            return Err(entry);
        }
        log.try_publish(entry)
            .map_err(memq_core::PublishError::into_inner)
    }

    /// Publishes to the topic (through its router when partitioned),
    /// giving up after `timeout` if one is set, and returns the partition
    /// (0 for a plain topic) and offset.
    pub(crate) async fn publish_routed<T>(
        &self,
        entry: Entry,
        timeout: Option<Duration>,
        back: impl FnOnce(Entry) -> T,
    ) -> Result<(usize, u64), PublishError<T>> {
        // A loop of publishes that never wait must still let other tasks
        // run: every fourth publish spends a unit of tokio's cooperative
        // budget, and yields first when the budget is spent (nothing is
        // published before).
        if budget_due() {
            tokio::task::consume_budget().await;
        }
        self.publish_spent(entry, timeout, back).await
    }

    /// [`publish_routed`](Self::publish_routed) once the cooperative
    /// budget is counted.
    async fn publish_spent<T>(
        &self,
        entry: Entry,
        timeout: Option<Duration>,
        back: impl FnOnce(Entry) -> T,
    ) -> Result<(usize, u64), PublishError<T>> {
        traced!(
            self.publish_routed_inner(entry, timeout, back),
            "memq.publish",
            self.topic()
        )
        .await
    }

    async fn publish_routed_inner<T>(
        &self,
        mut entry: Entry,
        timeout: Option<Duration>,
        back: impl FnOnce(Entry) -> T,
    ) -> Result<(usize, u64), PublishError<T>> {
        #[cfg(feature = "redis")]
        if self.registry().remote().is_some() {
            // Never waits for room (retention is by count): the timeout
            // bounds the wait for the server, until the publish is sent.
            // At least a second: opening the topic and checking a quiet
            // connection are round trips, which a shorter timeout (zero)
            // would cut off every time on a healthy server. A timeout too
            // long to be a deadline is none.
            let send_by =
                timeout.and_then(|t| std::time::Instant::now().checked_add(t.max(REMOTE_TIMEOUT_FLOOR)));
            return self
                .publish_remote(vec![entry], send_by, |mut rest| {
                    back(rest.entries.pop().expect("the entry handed back"))
                })
                .await
                .map(|placed| placed.placements[0]);
        }
        match self.log_for(&mut entry) {
            None => Err(PublishError::Closed(back(entry))),
            Some(Log::Plain(log)) => {
                // A reader about as fast as this publisher, about to lose
                // messages to eviction: let it run first (before
                // publishing, so a publish dropped here publishes nothing).
                pace(log).await;
                yield_while_busy(log).await;
                // Most publishes need no waiting: the future (and the
                // timer) are built only when the topic is full.
                match log.try_publish(entry) {
                    Ok(offset) => Ok((0, offset)),
                    Err(memq_core::PublishError::Full(entry)) => {
                        with_timeout(log.publish(entry), timeout, |p| p.take_value())
                            .await
                            .map(|o| (0, o))
                            .map_err(|e| e.map(back))
                    }
                    Err(e) => Err(PublishError::from(e).map(back)),
                }
            }
            Some(Log::Partitioned(log)) => {
                let key = entry.key.clone();
                let publish = log.publish(key.as_deref().map(str::as_bytes), entry);
                with_timeout(publish, timeout, |p| p.take_value())
                    .await
                    .map_err(|e| e.map(back))
            }
        }
    }

    /// Publishes `data` and returns its offset.
    ///
    /// The value is stored natively (`Arc<T>`, no serialization): a
    /// subscriber reading it as the same type gets it for a reference
    /// count ([`TopicMessage::native`]), or a clone
    /// ([`TopicMessage::deserialize`]).
    ///
    /// On a full topic with `lru_enabled: false` this waits until every
    /// live subscriber has read the oldest message.
    ///
    /// A serialized payload of any size can be published (only a byte
    /// budget, `max_bytes`, refuses one); receivers decode within the
    /// queue's [`DecodeLimits`](crate::DecodeLimits), 64 MiB by default.
    /// For bigger payloads make the queue with
    /// [`MessageQueue::with_decode_limits`](crate::MessageQueue::with_decode_limits),
    /// or read one with
    /// [`TopicMessage::deserialize_with_limits`](crate::TopicMessage::deserialize_with_limits).
    ///
    /// # Errors
    ///
    /// [`PublishError`] with the value handed back: `Closed` when the topic
    /// was deleted or the queue [closed](crate::MessageQueue::close),
    /// `TooLarge` when it exceeds the topic's byte budget, `Unroutable`
    /// when a partitioned topic's router cannot place it.
    ///
    /// # Panics
    ///
    /// When it has to wait on a full topic with `lru_enabled: false` and a
    /// `message_ttl` inside a Tokio runtime without the time driver (the
    /// wait for the oldest messages to expire sets a timer).
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("events");
    /// assert_eq!(publisher.publish("first").await?, 0);
    /// assert_eq!(publisher.publish("second").await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn publish<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
    ) -> Result<u64, PublishError<T>> {
        let (entry, back) = self.prepare(data)?.split();
        self.publish_entry(entry, back).await
    }

    /// Publishes `data` with a message key: on a partitioned topic with
    /// hash routing the key chooses the partition, so messages with one key
    /// stay in order. Returns the offset.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("carts", TopicOptions::default(), 8).await?;
    /// mq.set_partition_routing("carts", PartitionRouting::Hash).await?;
    /// let sub = mq.subscriber("carts").await?;
    /// let publisher = mq.publisher("carts");
    /// for (i, step) in ["add", "remove", "checkout"].into_iter().enumerate() {
    ///     // Consecutive offsets: every message went to one partition.
    ///     assert_eq!(publisher.publish_with_key("cart-17", step).await?, i as u64);
    /// }
    /// let counts: Vec<u64> = mq.get_all_partition_stats("carts").await.iter().map(|s| s.published).collect();
    /// let first = sub.recv().await?;
    /// assert_eq!((first.key(), first.offset()), (Some("cart-17"), 0));
    /// assert_eq!(counts[first.partition.unwrap()], 3);
    /// # Ok(()) }
    /// ```
    pub async fn publish_with_key<T: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<String>,
        data: T,
    ) -> Result<u64, PublishError<T>> {
        let (mut entry, back) = self.prepare(data)?.split();
        entry.key = Some(key.into().into());
        self.publish_entry(entry, back).await
    }

    /// Publishes `data` with record headers (an ordered list of
    /// `(name, value)` pairs; see [`Headers`](crate::Headers)), which every
    /// receiver reads with [`TopicMessage::headers`]. They travel with the
    /// message unchanged: partitions, groups, redeliveries, dead letters
    /// (which add where they came from). A message with headers keeps them
    /// in a shared allocation of their own; messages without pay nothing.
    /// Returns the offset.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Headers, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("payments").await?;
    /// let mut headers = Headers::new();
    /// headers.insert("trace-id", "7f3a").insert("retry", "0").insert("retry", "1");
    /// mq.publisher("payments").publish_with_headers(12.5f64, headers).await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.deserialize::<f64>()?, 12.5);
    /// assert_eq!(msg.headers().get_all("retry").count(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn publish_with_headers<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
        headers: impl Into<crate::Headers>,
    ) -> Result<u64, PublishError<T>> {
        let (entry, back) = self.prepare(data)?.split();
        let entry = entry.with_headers(headers.into());
        self.publish_entry(entry, back).await
    }

    /// [`publish_with_key`](Self::publish_with_key) with record headers
    /// (see [`publish_with_headers`](Self::publish_with_headers)).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("carts", TopicOptions::default(), 4).await?;
    /// let sub = mq.subscriber("carts").await?;
    /// mq.publisher("carts").publish_with_key_and_headers("cart-9", "checkout", [("trace-id", "ab12")]).await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!((msg.key(), msg.headers().get_str("trace-id")), (Some("cart-9"), Some("ab12")));
    /// # Ok(()) }
    /// ```
    pub async fn publish_with_key_and_headers<T: Serialize + Send + Sync + 'static>(
        &self,
        key: impl Into<String>,
        data: T,
        headers: impl Into<crate::Headers>,
    ) -> Result<u64, PublishError<T>> {
        let (mut entry, back) = self.prepare(data)?.split();
        entry.key = Some(key.into().into());
        let entry = entry.with_headers(headers.into());
        self.publish_entry(entry, back).await
    }

    /// Publishes `data` if that needs no waiting.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), plus [`PublishError::Full`] (with the
    /// value) where `publish` would wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PublishError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), lru_enabled: false, ..TopicOptions::default() };
    /// let sub = mq.subscriber_with_options("jobs", options).await?;
    /// let publisher = mq.publisher("jobs");
    /// assert_eq!(publisher.try_publish("a")?, 0);
    /// assert_eq!(publisher.try_publish("b")?, 1);
    /// assert!(matches!(publisher.try_publish("c"), Err(PublishError::Full("c"))));
    /// assert_eq!(sub.recv().await?.offset(), 0); // makes room for one
    /// assert_eq!(publisher.try_publish("c")?, 2);
    /// # Ok(()) }
    /// ```
    pub fn try_publish<T: Serialize + Send + Sync + 'static>(&self, data: T) -> Result<u64, PublishError<T>> {
        #[cfg(feature = "redis")]
        if self.registry().remote().is_some() {
            return Err(PublishError::Store {
                value: data,
                error: crate::error::StoreError::unsupported(
                    "not supported by a queue over Redis: try_publish (a publish waits for the server; use publish)",
                ),
            });
        }
        let (mut entry, back) = self.prepare(data)?.split();
        match self.log_for(&mut entry) {
            None => Err(PublishError::Closed(back(entry))),
            Some(Log::Plain(log)) => log
                .try_publish(entry)
                .map_err(|e| PublishError::from(e).map(back)),
            Some(Log::Partitioned(log)) => log
                .try_publish(None, entry)
                .map(|(_, o)| o)
                .map_err(|e| PublishError::from(e).map(back)),
        }
    }

    /// Publishes `data`, waiting at most `timeout` for room.
    ///
    /// Over Redis a publish never waits for room; the timeout bounds the
    /// wait for the server instead (reconnecting, or a connection that
    /// answers nothing), until the publish is sent, and is at least a
    /// second (opening the topic and checking a quiet connection are round
    /// trips a zero timeout would always cut off). Once sent, its reply
    /// is waited for as for [`publish`](Self::publish): a publish cut off
    /// then is `Store` with `OutcomeUnknown`, never `Timeout`.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), plus [`PublishError::Timeout`] with
    /// the value when no room came in time (over Redis: the server could
    /// not be reached in time; nothing was sent).
    ///
    /// # Panics
    ///
    /// When it has to wait (the topic is full) in a Tokio runtime built
    /// without the time driver. Outside any runtime the timeout runs on a
    /// timer thread of this crate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{MessageQueue, PublishError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(1), lru_enabled: false, ..TopicOptions::default() };
    /// let sub = mq.subscriber_with_options("jobs", options).await?;
    /// let publisher = mq.publisher("jobs");
    /// let second = Duration::from_secs(1);
    /// assert_eq!(publisher.publish_timeout("a", second).await?, 0);
    /// let err = publisher.publish_timeout("b", second).await.unwrap_err();
    /// assert!(matches!(err, PublishError::Timeout("b")), "full, and `sub` has not read offset 0");
    /// sub.recv().await?;
    /// assert_eq!(publisher.publish_timeout(err.into_inner(), second).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn publish_timeout<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
        timeout: Duration,
    ) -> Result<u64, PublishError<T>> {
        let (entry, back) = self.prepare(data)?.split();
        self.publish_routed(entry, Some(timeout), back)
            .await
            .map(|(_, o)| o)
    }

    /// [`publish`](Self::publish) for threads that are not async: waits on
    /// this thread (for room, on a topic with backpressure) and returns
    /// the offset. Needs no runtime; behaves as `publish` does (the same
    /// backpressure, the same errors).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Panics
    ///
    /// When called from async code (a Tokio worker thread, inside
    /// `block_on`), as Tokio's own blocking calls do: blocking there would
    /// stall the tasks of that thread. Use `publish(..).await` there, or
    /// call this from `tokio::task::spawn_blocking`.
    ///
    /// # Examples
    ///
    /// A plain thread, no runtime anywhere:
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("clicks");
    /// let offsets = std::thread::spawn(move || {
    ///     (0..3u32).map(|i| publisher.blocking_publish(i).unwrap()).collect::<Vec<_>>()
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(offsets, [0, 1, 2]);
    /// ```
    pub fn blocking_publish<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
    ) -> Result<u64, PublishError<T>> {
        crate::blocking::block_on(self.publish(data))
    }

    /// [`publish_bytes`](Self::publish_bytes) for threads that are not
    /// async, as [`blocking_publish`](Self::blocking_publish).
    ///
    /// # Errors
    ///
    /// As [`publish_bytes`](Self::publish_bytes).
    ///
    /// # Panics
    ///
    /// When called from async code, as [`blocking_publish`](Self::blocking_publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// let mq = MessageQueue::new();
    /// let sub = mq.blocking_subscriber("frames", tokio_memq::ConsumptionMode::Latest)?;
    /// mq.publisher("frames").blocking_publish_bytes(vec![1u8, 2, 3], SerializationFormat::Raw)?;
    /// assert_eq!(sub.blocking_recv()?.payload_bytes(), [1, 2, 3]);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_publish_bytes(
        &self,
        data: impl Into<Bytes>,
        format: SerializationFormat,
    ) -> Result<u64, PublishError<Bytes>> {
        crate::blocking::block_on(self.publish_bytes(data, format))
    }

    /// [`publish_batch`](Self::publish_batch) for threads that are not
    /// async, as [`blocking_publish`](Self::blocking_publish).
    ///
    /// # Errors
    ///
    /// As [`publish_batch`](Self::publish_batch).
    ///
    /// # Panics
    ///
    /// When called from async code, as [`blocking_publish`](Self::blocking_publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// let mq = MessageQueue::new();
    /// assert_eq!(mq.publisher("jobs").blocking_publish_batch(vec!["a", "b", "c"])?, 0..3);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_publish_batch<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> Result<Range<u64>, PublishError<Vec<T>>> {
        crate::blocking::block_on(self.publish_batch(data))
    }

    /// A [`Sink`](futures_sink::Sink) of `T` values that publishes each as
    /// [`publish`](Self::publish) does (the sink holds a clone of this
    /// publisher): for `stream.forward(publisher.sink())` and the other
    /// `SinkExt` combinators. On a topic with backpressure the sink is not
    /// ready for the next value until the last one is published. Errors
    /// are [`PublishError`]s with the value handed back.
    ///
    /// # Examples
    ///
    /// Moving the valid readings of one topic to another:
    ///
    /// ```
    /// use futures_util::{SinkExt, StreamExt};
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let raw = mq.subscriber("raw").await?.into_typed_stream::<i32>();
    /// let clean = mq.subscriber("clean").await?;
    /// let publisher = mq.publisher("raw");
    /// publisher.publish(1i32).await?;
    /// publisher.publish("garbage").await?;
    /// publisher.publish(3i32).await?;
    /// drop(publisher);
    /// mq.delete_topic("raw").await; // the stream ends after what it retains
    ///
    /// let valid = raw.filter_map(|r| std::future::ready(r.ok())).map(Ok);
    /// valid.forward(mq.publisher("clean").sink()).await?;
    /// assert_eq!(clean.recv_batch_typed::<i32>(10).await?, [1, 3]);
    ///
    /// let mut sink = mq.publisher("clean").sink();
    /// sink.send(5i32).await?;
    /// assert_eq!(clean.recv_typed::<i32>().await?, 5);
    /// # Ok(()) }
    /// ```
    pub fn sink<T: Serialize + Send + Sync + 'static>(&self) -> crate::PublishSink<T> {
        crate::PublishSink::new(self.clone())
    }

    /// Publishes `data` as one contiguous run of offsets, nothing
    /// interleaved, and returns the run. All or nothing on a plain topic.
    /// On a partitioned topic each partition's share is one run and this
    /// returns the run of the lowest-numbered partition that got a share
    /// (`0..0` for an empty batch);
    /// [`publish_batch_placed`](Self::publish_batch_placed) returns where
    /// every message landed.
    ///
    /// Cancel safe on a plain topic: dropped while it waits for room, it
    /// publishes nothing. On a partitioned topic the shares go in one
    /// partition after another, so dropped while a later share waits for
    /// room, the earlier shares stay published.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), with the (unpublished part of the)
    /// batch handed back; `TooLarge` when the batch alone exceeds the
    /// topic's limits.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let offsets = mq.publisher("jobs").publish_batch((0..100).collect::<Vec<i32>>()).await?;
    /// assert_eq!(offsets, 0..100);
    /// # Ok(()) }
    /// ```
    pub async fn publish_batch<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> Result<Range<u64>, PublishError<Vec<T>>> {
        let (entries, kept) = self.prepare_batch(data)?;
        self.publish_entries(entries, hand_back(kept)).await
    }

    /// [`publish_batch`](Self::publish_batch), returning where every
    /// message landed: `(partition, offset)` in input order. On a plain
    /// topic that is `(0, offset)` of one contiguous run; on a partitioned
    /// topic each partition's share is one run, and `publish_batch` returns
    /// only that of the lowest-numbered partition with a share.
    ///
    /// # Errors
    ///
    /// As [`publish_batch`](Self::publish_batch).
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
    /// mq.set_partition_routing("clicks", PartitionRouting::RoundRobin).await?;
    /// let landed = mq.publisher("clicks").publish_batch_placed(vec!["a", "b", "c"]).await?;
    /// assert_eq!(landed, [(0, 0), (1, 0), (0, 1)]);
    /// # Ok(()) }
    /// ```
    pub async fn publish_batch_placed<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> Result<Vec<(usize, u64)>, PublishError<Vec<T>>> {
        let (entries, kept) = self.prepare_batch(data)?;
        let landed = self.publish_entries_placed(entries, hand_back(kept)).await?;
        Ok(match landed {
            Landed::Run(range) => range.map(|o| (0, o)).collect(),
            Landed::Shares(receipt) => receipt.placements(),
            #[cfg(feature = "redis")]
            Landed::Placed(placed) => placed.placements,
        })
    }

    /// Publishes byte payloads in `format` as one contiguous run of
    /// offsets, without copying them. All or nothing on a plain topic.
    ///
    /// # Errors
    ///
    /// As [`publish_batch`](Self::publish_batch), handing the payloads back.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Bytes, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("chunks").await?;
    /// let publisher = mq.publisher("chunks");
    /// publisher.publish("header").await?;
    /// let chunks = vec![Bytes::from(vec![1u8; 64]), Bytes::from(vec![2u8; 64])];
    /// assert_eq!(publisher.publish_bytes_batch(chunks.clone(), SerializationFormat::Raw).await?, 1..3);
    /// sub.recv().await?; // the header
    /// let batch = sub.recv_batch(2).await?;
    /// assert_eq!((batch[0].offset(), batch[1].offset()), (1, 2));
    /// assert_eq!(batch[1].bytes().unwrap().as_ptr(), chunks[1].as_ptr(), "not copied");
    /// # Ok(()) }
    /// ```
    pub async fn publish_bytes_batch(
        &self,
        data: Vec<Bytes>,
        format: SerializationFormat,
    ) -> Result<Range<u64>, PublishError<Vec<Bytes>>> {
        let (tag, data) = self.tag_of(&format, data)?;
        let entries: Vec<Entry> = data.into_iter().map(|b| Entry::encoded(b, tag)).collect();
        self.publish_entries(entries, |rest| {
            rest.entries.into_iter().map(Entry::into_bytes).collect()
        })
        .await
    }

    /// Publishes a batch. On a plain topic: one contiguous run, all or
    /// nothing. On a partitioned topic every message goes where the router
    /// puts it, each partition's share as one run; the range returned is
    /// the first share's. When a partition refuses its share, the earlier
    /// shares stay published and only the unpublished messages come back.
    async fn publish_entries<U>(
        &self,
        entries: Vec<Entry>,
        back: impl FnOnce(Unpublished) -> U,
    ) -> Result<Range<u64>, PublishError<U>> {
        self.publish_entries_placed(entries, back)
            .await
            .map(|landed| match landed {
                Landed::Run(range) => range,
                Landed::Shares(receipt) => receipt.shares().first().map_or(0..0, |(_, r)| r.clone()),
                #[cfg(feature = "redis")]
                Landed::Placed(placed) => placed.shares.first().map_or(0..0, |(_, r)| r.clone()),
            })
    }

    /// As [`publish_entries`](Self::publish_entries), saying where each
    /// message landed.
    async fn publish_entries_placed<U>(
        &self,
        entries: Vec<Entry>,
        back: impl FnOnce(Unpublished) -> U,
    ) -> Result<Landed, PublishError<U>> {
        traced!(
            self.publish_entries_inner(entries, back),
            "memq.publish_batch",
            self.topic()
        )
        .await
    }

    async fn publish_entries_inner<U>(
        &self,
        mut entries: Vec<Entry>,
        back: impl FnOnce(Unpublished) -> U,
    ) -> Result<Landed, PublishError<U>> {
        tokio::task::consume_budget().await;
        #[cfg(feature = "redis")]
        if self.registry().remote().is_some() {
            return self.publish_remote(entries, None, back).await.map(Landed::Placed);
        }
        match self.log_for_all(&mut entries) {
            None => Err(PublishError::Closed(back(Unpublished::all(entries)))),
            Some(Log::Plain(log)) => {
                pace(log).await;
                log.publish_batch(entries)
                    .await
                    .map(Landed::Run)
                    .map_err(|e| PublishError::from(e).map(|entries| back(Unpublished::all(entries))))
            }
            Some(Log::Partitioned(log)) => {
                let keyed: Vec<(Option<KeyBytes>, Entry)> = entries
                    .into_iter()
                    .map(|e| (e.key.clone().map(KeyBytes), e))
                    .collect();
                match log.publish_batch(keyed).await {
                    Ok(receipt) => Ok(Landed::Shares(receipt)),
                    Err(e) => {
                        let kind = PublishError::from(e.cause);
                        let rest = Unpublished {
                            entries: e.unpublished.into_iter().map(|(_, v)| v).collect(),
                            index: e.unpublished_index,
                        };
                        Err(kind.map(|()| back(rest)))
                    }
                }
            }
        }
    }

    /// Publishes `entries` as one run to the topic on the server of a queue
    /// made by `MessageQueue::connect`.
    #[cfg(feature = "redis")]
    async fn publish_remote<U>(
        &self,
        entries: Vec<Entry>,
        send_by: Option<std::time::Instant>,
        back: impl FnOnce(Unpublished) -> U,
    ) -> Result<crate::remote::Placed, PublishError<U>> {
        let Some(remote) = self.registry().remote().cloned() else {
            return Err(PublishError::Closed(back(Unpublished::all(entries))));
        };
        let (topic, reused) = match self.remote_topic.get() {
            Some(b) => (b.topic.clone(), false),
            None => match before(send_by, remote.open(&self.topic_name, None)).await {
                None => return Err(PublishError::Timeout(back(Unpublished::all(entries)))),
                Some(Ok(t)) => (t, true),
                Some(Err(crate::error::TopicError::Store(error))) => {
                    return Err(PublishError::Store {
                        value: back(Unpublished::all(entries)),
                        error,
                    })
                }
                Some(Err(_)) => return Err(PublishError::Closed(back(Unpublished::all(entries)))),
            },
        };
        let published = remote
            .publish(&self.registry().formats, &topic, reused, entries, send_by, back)
            .await;
        let mut placed = match published {
            Ok(placed) => placed,
            Err(e) => {
                // Bound to a topic found gone: closed from now on.
                if let (PublishError::Closed(_), Some(bound)) = (&e, self.remote_topic.get()) {
                    bound.gone.store(true, std::sync::atomic::Ordering::Release);
                }
                return Err(e);
            }
        };
        // From its first publish on, a publisher is bound to the topic it
        // found (as in memory: one deleted under it stays closed to it).
        if let Some(found) = placed.topic.take() {
            let _ = self.remote_topic.get_or_init(|| RemoteBinding {
                gone: remote.gone_flag(&self.topic_name),
                topic: found,
            });
        }
        Ok(placed)
    }

    /// Publishes bytes tagged with `format`, without copying them.
    ///
    /// `format` says how readers decode them
    /// ([`TopicMessage::deserialize`](crate::TopicMessage::deserialize));
    /// [`Raw`](SerializationFormat::Raw) for bytes that are the value.
    /// Bytes tagged [`Native`](SerializationFormat::Native) (1.0.0 had no
    /// `Raw`, and its docs advised `Native` for bytes) read back as bytes
    /// ([`TopicMessage::bytes`](crate::TopicMessage::bytes)), and decode
    /// only when they begin with a frame header naming their format (as
    /// 1.0.0's framed payloads do); bare, `deserialize` refuses them with
    /// [`CodecErrorKind::UnsupportedFormat`](crate::CodecErrorKind::UnsupportedFormat).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), handing the bytes back.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Bytes, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("video").await?;
    /// let chunk = Bytes::from(vec![7u8; 1 << 20]);
    /// assert_eq!(mq.publisher("video").publish_bytes(chunk.clone(), SerializationFormat::Raw).await?, 0);
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.format, SerializationFormat::Raw);
    /// assert_eq!(msg.bytes().unwrap().as_ptr(), chunk.as_ptr(), "the published memory, not a copy");
    /// # Ok(()) }
    /// ```
    pub async fn publish_bytes(
        &self,
        data: impl Into<Bytes>,
        format: SerializationFormat,
    ) -> Result<u64, PublishError<Bytes>> {
        let (tag, data) = self.tag_of(&format, data.into())?;
        self.publish_entry(Entry::encoded(data, tag), Entry::into_bytes)
            .await
    }

    /// Publishes bytes you already share as an `Arc<Vec<u8>>`, without
    /// copying them: the message keeps the `Arc` alive.
    ///
    /// # Errors
    ///
    /// As [`publish_bytes`](Self::publish_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("images").await?;
    /// let image = Arc::new(vec![0xFFu8; 4096]);
    /// mq.publisher("images").publish_shared_bytes(image.clone(), SerializationFormat::Raw).await?;
    /// assert_eq!(Arc::strong_count(&image), 2, "the topic holds the same Arc");
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.bytes().unwrap().as_ptr(), image.as_ptr());
    /// # Ok(()) }
    /// ```
    pub async fn publish_shared_bytes(
        &self,
        data: Arc<Vec<u8>>,
        format: SerializationFormat,
    ) -> Result<u64, PublishError<Bytes>> {
        self.publish_bytes(Bytes::from_owner(SharedVec(data)), format)
            .await
    }

    /// Publishes bytes shared as an `Arc<Vec<u8>>` to `topic`, which must
    /// be this publisher's (1.0.0's zero-copy call; see
    /// [`publish_shared_bytes`](Self::publish_shared_bytes), which needs
    /// no topic).
    ///
    /// # Errors
    ///
    /// [`PublishError::Unroutable`] (with the bytes) when `topic` is not
    /// this publisher's topic; otherwise as
    /// [`publish_bytes`](Self::publish_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_memq::{MessageQueue, PublishError, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("frames");
    /// let (topic, frame) = (Arc::new("frames".to_string()), Arc::new(vec![7u8; 4096]));
    /// publisher.publish_shared_data(topic, frame.clone(), SerializationFormat::Raw).await?;
    ///
    /// let elsewhere = Arc::new("other".to_string());
    /// let err = publisher.publish_shared_data(elsewhere, frame, SerializationFormat::Raw).await;
    /// assert!(matches!(err, Err(PublishError::Unroutable(_))));
    /// # Ok(()) }
    /// ```
    pub async fn publish_shared_data(
        &self,
        topic: Arc<String>,
        data: Arc<Vec<u8>>,
        format: SerializationFormat,
    ) -> Result<u64, PublishError<Bytes>> {
        let data = Bytes::from_owner(SharedVec(data));
        if *topic != *self.topic_name {
            return Err(PublishError::Unroutable(data));
        }
        self.publish_bytes(data, format).await
    }

    /// Publishes `data` in `format`, whatever serialization defaults the
    /// topic or publisher has: [`SerializationFormat::Native`] stores the
    /// value itself (as [`publish`](Self::publish) does without
    /// defaults); any other format serializes it with that format's
    /// default settings (no compression, no frame header: the message
    /// carries its format, so any subscriber decodes it). Returns the
    /// offset.
    ///
    /// # Errors
    ///
    /// [`PublishError::Encode`] (with the value) when the value cannot be
    /// serialized in `format`, or `format` is a custom format that was
    /// never registered; otherwise as [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("prices").await?;
    /// let publisher = mq.publisher("prices");
    /// publisher.publish_with_format(12.5f64, SerializationFormat::Json).await?;
    /// publisher.publish_with_format(13.0f64, SerializationFormat::Native).await?;
    ///
    /// let json = sub.recv().await?;
    /// assert_eq!(json.format, SerializationFormat::Json);
    /// assert_eq!(json.deserialize::<f64>()?, 12.5);
    /// assert_eq!(*sub.recv().await?.native::<f64>().unwrap(), 13.0);
    /// # Ok(()) }
    /// ```
    pub async fn publish_with_format<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
        format: SerializationFormat,
    ) -> Result<u64, PublishError<T>> {
        let encoded = self.codec_for(format).and_then(|codec| match codec {
            Some((codec, tag)) => Ok(Some(Entry::encoded(codec.encode(&data)?, tag))),
            None => Ok(None),
        });
        match encoded {
            Ok(Some(entry)) => self.publish_entry(entry, move |_| data).await,
            Ok(None) => self.publish_entry(Entry::native(data), Entry::into_native).await,
            Err(e) => Err(PublishError::Encode {
                value: data,
                error: e.into(),
            }),
        }
    }

    /// [`publish_with_format`](Self::publish_with_format) for a batch: one
    /// contiguous run of offsets, all or nothing (as
    /// [`publish_batch`](Self::publish_batch)).
    ///
    /// # Errors
    ///
    /// As [`publish_batch`](Self::publish_batch); `Encode` (with every
    /// value) when one of them cannot be serialized in `format`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("prices").await?;
    /// let publisher = mq.publisher("prices");
    /// let offsets = publisher.publish_batch_with_format(vec![1.5f64, 2.5], SerializationFormat::MessagePack).await?;
    /// assert_eq!(offsets, 0..2);
    /// for (msg, price) in sub.recv_batch(2).await?.iter().zip([1.5, 2.5]) {
    ///     assert_eq!(msg.format, SerializationFormat::MessagePack);
    ///     assert_eq!(msg.deserialize::<f64>()?, price);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn publish_batch_with_format<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
        format: SerializationFormat,
    ) -> Result<Range<u64>, PublishError<Vec<T>>> {
        let codec = match self.codec_for(format) {
            Ok(codec) => codec,
            Err(e) => {
                return Err(PublishError::Encode {
                    value: data,
                    error: e.into(),
                })
            }
        };
        let (entries, kept) = Self::encode_batch(data, codec)?;
        self.publish_entries(entries, hand_back(kept)).await
    }

    /// Publishes `data` in bincode (1.0.0's shorthand for
    /// [`publish_with_format`](Self::publish_with_format)).
    ///
    /// # Errors
    ///
    /// As [`publish_with_format`](Self::publish_with_format).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("points").await?;
    /// assert_eq!(mq.publisher("points").publish_bincode((3i32, -4i32)).await?, 0);
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.format, SerializationFormat::Bincode);
    /// assert!(msg.native::<(i32, i32)>().is_none(), "serialized, not stored natively");
    /// assert_eq!(msg.deserialize::<(i32, i32)>()?, (3, -4));
    /// # Ok(()) }
    /// ```
    pub async fn publish_bincode<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
    ) -> Result<u64, PublishError<T>> {
        self.publish_with_format(data, SerializationFormat::Bincode).await
    }

    /// Publishes text that is already serialized, its format guessed as
    /// 1.0.0 did (JSON when it starts with `{` or `[`, else bincode; see
    /// [`TopicMessage::from_serialized`]).
    ///
    /// # Errors
    ///
    /// As [`publish_bytes`](Self::publish_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("json").await?;
    /// mq.publisher("json").publish_serialized(r#"{"ok": true}"#.to_string()).await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.format, SerializationFormat::Json);
    /// assert_eq!(msg.payload_str(), r#"{"ok": true}"#);
    /// # Ok(()) }
    /// ```
    pub async fn publish_serialized(&self, payload: String) -> Result<u64, PublishError<Bytes>> {
        let format = crate::message::guess_format(payload.as_bytes());
        self.publish_bytes(payload, format).await
    }

    /// The same as [`publish_serialized`](Self::publish_serialized)
    /// (1.0.0 had both names).
    ///
    /// # Errors
    ///
    /// As [`publish_serialized`](Self::publish_serialized).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("lines").await?;
    /// let publisher = mq.publisher("lines");
    /// publisher.publish_string("[1, 2]".to_string()).await?;
    /// publisher.publish_string("plain text".to_string()).await?;
    /// let json = sub.recv().await?;
    /// assert_eq!((json.format.clone(), json.deserialize::<Vec<u8>>()?), (SerializationFormat::Json, vec![1, 2]));
    /// let other = sub.recv().await?;
    /// assert_eq!(other.format, SerializationFormat::Bincode, "no leading brace or bracket: guessed as bincode");
    /// assert_eq!(other.payload_str(), "plain text");
    /// # Ok(()) }
    /// ```
    pub async fn publish_string(&self, payload: String) -> Result<u64, PublishError<Bytes>> {
        self.publish_serialized(payload).await
    }

    /// Publishes a prebuilt message (keeping its key and format) to this
    /// publisher's topic, whatever topic the message names (a message
    /// received elsewhere can be forwarded as it is); on failure it comes
    /// back naming this publisher's topic.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), handing the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PublishError, SerializationFormat, TopicMessage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// let publisher = mq.publisher("orders");
    /// let order = TopicMessage::new_with_format("orders", 7u32, SerializationFormat::Json)?.with_key("customer-9");
    /// assert_eq!(publisher.publish_message(order.clone()).await?, 0);
    /// let got = sub.recv().await?;
    /// assert_eq!((got.key(), got.format.clone()), (Some("customer-9"), SerializationFormat::Json));
    /// assert_eq!(got.deserialize::<u32>()?, 7);
    ///
    /// mq.close();
    /// let Err(PublishError::Closed(back)) = publisher.publish_message(order).await else { panic!("closed") };
    /// assert_eq!(back.key(), Some("customer-9"));
    /// # Ok(()) }
    /// ```
    pub async fn publish_message(&self, message: TopicMessage) -> Result<u64, PublishError<TopicMessage>> {
        Ok(self.publish_message_routed(message).await?.1)
    }

    pub(crate) async fn publish_message_routed(
        &self,
        message: TopicMessage,
    ) -> Result<(usize, u64), PublishError<TopicMessage>> {
        let topic = self.topic_name.clone();
        let entry = match message.format_tag(&self.registry().formats) {
            Ok(tag) => message.into_entry(tag),
            Err(error) => {
                return Err(PublishError::Encode {
                    value: message,
                    error: error.into(),
                })
            }
        };
        let registry = self.registry().clone();
        self.publish_routed(entry, None, move |e| {
            TopicMessage::unpublished(&registry.formats, &topic, e)
        })
        .await
    }
}

impl Publisher {
    /// Publishes received or built messages to this publisher's topic as
    /// one batch (routed when it is partitioned); where each landed.
    #[cfg(feature = "redis")]
    pub(crate) async fn publish_messages_placed(
        &self,
        messages: Vec<TopicMessage>,
    ) -> Result<Vec<(usize, u64)>, PublishError<Vec<TopicMessage>>> {
        let formats = &self.registry().formats;
        let mut entries = Vec::with_capacity(messages.len());
        let mut messages = messages.into_iter();
        while let Some(m) = messages.next() {
            match m.format_tag(formats) {
                Ok(tag) => entries.push(m.into_entry(tag)),
                Err(error) => {
                    let mut rest: Vec<TopicMessage> = entries
                        .into_iter()
                        .map(|e| TopicMessage::unpublished(formats, &self.topic_name, e))
                        .collect();
                    rest.push(m);
                    rest.extend(messages);
                    return Err(PublishError::Encode {
                        value: rest,
                        error: error.into(),
                    });
                }
            }
        }
        let registry = self.registry().clone();
        let topic = self.topic_name.clone();
        let landed = self
            .publish_entries_placed(entries, move |rest| {
                rest.entries
                    .into_iter()
                    .map(|e| TopicMessage::unpublished(&registry.formats, &topic, e))
                    .collect()
            })
            .await?;
        Ok(match landed {
            Landed::Run(range) => range.map(|o| (0, o)).collect(),
            Landed::Shares(receipt) => receipt.placements(),
            Landed::Placed(placed) => placed.placements,
        })
    }
}

/// Lets the topic's readers run first when the slowest of them, still
/// moving, is about to lose messages to eviction
/// ([`near_eviction`](memq_core::Topic::near_eviction)): a reader about as
/// fast as its publisher then keeps up instead of being told `Lagged`.
/// Both yields: the task's (a reader on this thread) and the thread's (a
/// reader thread waiting for this core). Before publishing, so a publish
/// dropped here has published nothing. Costs nothing otherwise.
async fn pace(log: &memq_core::Topic<Entry>) {
    if log.near_eviction() {
        std::thread::yield_now();
        tokio::task::yield_now().await;
    }
}

/// Before a single publish: while the topic's lock is held on another
/// thread (another publisher, a reader fetching), lets the other tasks of
/// this thread run first, a few turns at most, rather than wait for the
/// lock with the thread. (Ten publishers and a group of ten on two
/// workers: 4.1 M to 4.8 M messages/s; 1 publisher and 1 subscriber,
/// 3.7-4.0 M to 4.3-4.6 M. Batches hold the lock once per batch and do
/// not yield: there, the turns cost more than the wait.)
async fn yield_while_busy(log: &memq_core::Topic<Entry>) {
    let mut turns = 0;
    std::future::poll_fn(|cx| {
        if turns < BUSY_TURNS && log.is_busy() {
            turns += 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// How many times a publish lets its thread's other tasks run while the
/// topic's lock is held elsewhere, before it waits for the lock.
const BUSY_TURNS: u32 = 4;

std::thread_local! {
    /// Single publishes on this thread since one last spent a unit of
    /// tokio's cooperative budget.
    static UNSPENT: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Counts a single publish toward tokio's cooperative budget; true for
/// every `PUBLISHES_PER_UNIT`-th, which spends a unit (yielding first
/// when the budget is spent).
///
/// Counted per thread, not per publisher: a publisher made for each
/// publish (`MessageQueue::publish_to_partitioned` makes one per call)
/// counted from zero every time, so a loop of them never yielded. A
/// thread-local count also leaves nothing for publishers shared between
/// threads to write to one cache line.
#[inline]
pub(crate) fn budget_due() -> bool {
    UNSPENT.with(|unspent| {
        let n = unspent.get().wrapping_add(1);
        let due = n >= PUBLISHES_PER_UNIT;
        unspent.set(if due { 0 } else { n });
        due
    })
}

/// Single publishes per unit of tokio's cooperative budget spent. A loop
/// of publishes that never wait yields every `128 * PUBLISHES_PER_UNIT`
/// publishes (tokio's budget is 128 units per poll of a task). A
/// publish costs about a tenth of a microsecond, so that is still every
/// 50-100 µs; a yield on a runtime with an idle worker wakes that worker
/// (a system call and a context switch).
const PUBLISHES_PER_UNIT: u8 = 4;

/// Where a batch landed: one run on a plain topic, shares on a
/// partitioned one.
/// What a batch publish hands back: the entries it did not publish, and
/// where each was in the batch (ascending). A batch to a partitioned topic
/// can stop after some partitions' shares were published; only the rest
/// comes back.
pub(crate) struct Unpublished {
    pub(crate) entries: Vec<Entry>,
    pub(crate) index: Vec<usize>,
}

impl Unpublished {
    /// The whole batch, unpublished.
    pub(crate) fn all(entries: Vec<Entry>) -> Self {
        Unpublished {
            index: (0..entries.len()).collect(),
            entries,
        }
    }

    /// Those of `entries` whose index is in `unpublished`, in the order given.
    #[cfg(feature = "redis")]
    pub(crate) fn of(entries: Vec<Entry>, unpublished: &std::collections::HashSet<usize>) -> Self {
        let (index, entries) = entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| unpublished.contains(i))
            .unzip();
        Unpublished { entries, index }
    }
}

/// The least time [`Publisher::publish_timeout`] gives a server before a
/// publish is sent: room for the round trips that open the topic and
/// check a quiet connection.
#[cfg(feature = "redis")]
const REMOTE_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

/// Runs `step` of a publish that has sent nothing yet until `send_by` at
/// most; `None` when the deadline came first (the step is dropped). On
/// tokio's timer in a runtime, on a timer thread outside one.
#[cfg(feature = "redis")]
pub(crate) async fn before<F: Future>(send_by: Option<std::time::Instant>, step: F) -> Option<F::Output> {
    let Some(at) = send_by else {
        return Some(step.await);
    };
    let mut step = std::pin::pin!(step);
    let mut delay = memq_core::Delay::until(at.into());
    poll_fn(|cx| {
        if let Poll::Ready(out) = step.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        delay.poll_elapsed(cx).map(|()| None)
    })
    .await
}

/// Hands back what a batch encoded from `kept` did not publish: those of
/// the values, or (native values, nothing kept) the values in the entries.
fn hand_back<T: Send + Sync + 'static>(kept: Option<Vec<T>>) -> impl FnOnce(Unpublished) -> Vec<T> {
    move |rest| match kept {
        Some(values) => {
            let mut wanted = rest.index.into_iter().peekable();
            values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| wanted.next_if_eq(&i).map(|_| v))
                .collect()
        }
        None => rest.entries.into_iter().map(Entry::into_native).collect(),
    }
}

enum Landed {
    Run(Range<u64>),
    Shares(memq_partition::BatchReceipt),
    /// Published to a server.
    #[cfg(feature = "redis")]
    Placed(crate::remote::Placed),
}

/// A message key, read by the partition router as bytes.
pub(crate) struct KeyBytes(pub(crate) Arc<str>);

impl AsRef<[u8]> for KeyBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Runs a publish, handing the message back if `timeout` passes first.
async fn with_timeout<F, O, E>(
    mut publish: F,
    timeout: Option<Duration>,
    mut take: impl FnMut(&mut F) -> Option<Entry>,
) -> Result<O, PublishError<Entry>>
where
    F: Future<Output = Result<O, E>> + Unpin,
    PublishError<Entry>: From<E>,
{
    let Some(timeout) = timeout else {
        return publish.await.map_err(PublishError::from);
    };
    // Tokio's timer in a runtime, a timer thread outside one.
    let mut delay = memq_core::Delay::after(timeout);
    poll_fn(|cx| {
        if let Poll::Ready(r) = Pin::new(&mut publish).poll(cx) {
            return Poll::Ready(r.map_err(PublishError::from));
        }
        if delay.poll_elapsed(cx).is_ready() {
            if let Some(entry) = take(&mut publish) {
                return Poll::Ready(Err(PublishError::Timeout(entry)));
            }
        }
        Poll::Pending
    })
    .await
}

/// Lets `Bytes` borrow from an `Arc<Vec<u8>>` without copying.
pub(crate) struct SharedVec(pub(crate) Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedVec {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
