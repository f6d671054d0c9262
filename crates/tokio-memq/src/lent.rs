//! Batches received by reference: [`Subscriber::recv_batch_lent`].
//!
//! A [`TopicMessage`] is an owned, self-contained message (about 160
//! bytes, with its topic name and resolved format). Building one per
//! message, moving it into a `Vec` and dropping it again is most of what a
//! batch receive costs once the messages have left the topic. A lent batch
//! keeps the messages as the topic stored them (payload, key and format
//! tag, plus offset and time) and hands out [`MessageRef`]s that read them
//! in place; a [`TopicMessage`] is built only for the messages the caller
//! takes out with [`MessageRef::to_message`].

use std::fmt;

use bytes::Bytes;
use memq_core::Delivered;
use memq_groups::Claimed;
use serde::de::DeserializeOwned;

use crate::error::{AckError, DecodeError};
use crate::format::SerializationFormat;
use crate::message::{DeadLetterInfo, Entry, TopicMessage};
use crate::subscriber::{Received, Subscriber};
use memq_codec::Headers;

/// One message of a [`LentBatch`], as the topic stored it.
struct Item {
    offset: u64,
    timestamp: tokio::time::Instant,
    partition: Option<usize>,
    deliveries: u32,
    entry: Entry,
}

impl Item {
    fn into_message(self, sub: &Subscriber) -> TopicMessage {
        TopicMessage::received(
            sub.formats(),
            sub.topic_name(),
            self.entry,
            self.offset,
            self.timestamp,
            self.partition,
            self.deliveries,
        )
    }
}

/// Messages received by [`Subscriber::recv_batch_lent`], read in place.
///
/// Iterate it (by reference) for [`MessageRef`]s; nothing is copied
/// until a message is taken out with [`MessageRef::to_message`], or the
/// whole batch with [`into_messages`](Self::into_messages). The messages
/// are consumed when the batch is received, as with
/// [`recv_batch`](Subscriber::recv_batch): dropping the batch does not put
/// them back.
///
/// # Examples
///
/// ```
/// use tokio_memq::MessageQueue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("readings").await?;
/// mq.publisher("readings").publish_batch(vec![20u32, 21, 23]).await?;
///
/// let batch = sub.recv_batch_lent(100).await?;
/// assert_eq!(batch.len(), 3);
/// let mut sum = 0;
/// for msg in &batch {
///     sum += msg.deserialize::<u32>()?;
/// }
/// assert_eq!(sum, 64);
/// let last = batch.iter().last().unwrap();
/// assert_eq!(last.offset(), 2);
/// let kept = last.to_message(); // an owned TopicMessage, for later
/// assert_eq!(kept.deserialize::<u32>()?, 23);
/// # Ok(()) }
/// ```
pub struct LentBatch<'a> {
    sub: &'a Subscriber,
    items: Vec<Item>,
}

impl<'a> LentBatch<'a> {
    pub(crate) fn new(sub: &'a Subscriber, capacity: usize) -> Self {
        LentBatch {
            sub,
            items: Vec::with_capacity(capacity),
        }
    }

    /// How many messages the batch holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish_batch(vec![1, 2, 3, 4, 5]).await?;
    /// assert_eq!(sub.recv_batch_lent(3).await?.len(), 3);
    /// assert_eq!(sub.recv_batch_lent(100).await?.len(), 2, "what was left");
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when it holds none (only for a receive of at most 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish("job").await?;
    /// assert!(sub.recv_batch_lent(0).await?.is_empty());
    /// assert!(!sub.recv_batch_lent(10).await?.is_empty(), "the message is still there");
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `index`th message, if there is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("letters").await?;
    /// mq.publisher("letters").publish_batch(vec!["a", "b", "c"]).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.get(1).map(|m| m.offset()), Some(1));
    /// assert_eq!(batch.get(2).unwrap().deserialize::<String>()?, "c");
    /// assert!(batch.get(3).is_none());
    /// # Ok(()) }
    /// ```
    pub fn get(&self, index: usize) -> Option<MessageRef<'_>> {
        let sub = self.sub;
        self.items.get(index).map(|item| MessageRef { sub, item })
    }

    /// The messages in offset order (per partition on a partitioned
    /// topic).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("scores").await?;
    /// mq.publisher("scores").publish_batch(vec![10u32, 20, 30]).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// let offsets: Vec<u64> = batch.iter().map(|m| m.offset()).collect();
    /// assert_eq!(offsets, [0, 1, 2]);
    /// let scores = batch.iter().map(|m| m.deserialize::<u32>()).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(scores, [10, 20, 30]);
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            sub: self.sub,
            items: self.items.iter(),
        }
    }

    /// Every message, owned (as [`recv_batch`](Subscriber::recv_batch)
    /// would have returned them).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// mq.publisher("events").publish_batch(vec!["up", "down"]).await?;
    /// let kept = sub.recv_batch_lent(10).await?.into_messages();
    /// drop(sub); // the messages do not borrow the subscriber
    /// assert_eq!(kept.len(), 2);
    /// assert_eq!((kept[1].offset(), kept[1].deserialize::<String>()?), (1, "down".to_string()));
    /// # Ok(()) }
    /// ```
    pub fn into_messages(self) -> Vec<TopicMessage> {
        let sub = self.sub;
        self.items
            .into_iter()
            .map(|item| item.into_message(sub))
            .collect()
    }
}

impl fmt::Debug for LentBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'b> IntoIterator for &'b LentBatch<'_> {
    type Item = MessageRef<'b>;
    type IntoIter = Iter<'b>;

    fn into_iter(self) -> Iter<'b> {
        self.iter()
    }
}

/// The messages of a [`LentBatch`], from [`LentBatch::iter`]: from
/// either end, with an exact length.
///
/// # Examples
///
/// ```
/// use tokio_memq::MessageQueue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("steps").await?;
/// mq.publisher("steps").publish_batch(vec!["a", "b", "c"]).await?;
/// let batch = sub.recv_batch_lent(10).await?;
/// let mut steps = batch.iter();
/// assert_eq!(steps.len(), 3);
/// assert_eq!(steps.next_back().map(|m| m.offset()), Some(2));
/// assert_eq!(steps.next().map(|m| m.offset()), Some(0));
/// assert_eq!(format!("{steps:?}"), "Iter { remaining: 1 }");
/// # Ok(()) }
/// ```
pub struct Iter<'b> {
    sub: &'b Subscriber,
    items: std::slice::Iter<'b, Item>,
}

impl<'b> Iterator for Iter<'b> {
    type Item = MessageRef<'b>;

    fn next(&mut self) -> Option<MessageRef<'b>> {
        let sub = self.sub;
        self.items.next().map(|item| MessageRef { sub, item })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let sub = self.sub;
        self.items.next_back().map(|item| MessageRef { sub, item })
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.items.len())
            .finish()
    }
}

/// A message of a [`LentBatch`], read in place: the accessors of
/// [`TopicMessage`] without building one.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, SerializationFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("orders").await?;
/// mq.publisher("orders").publish_with_key("customer-3", 99u32).await?;
/// let batch = sub.recv_batch_lent(10).await?;
/// let order = batch.get(0).unwrap();
/// assert_eq!((order.topic(), order.offset(), order.key()), ("orders", 0, Some("customer-3")));
/// assert_eq!(order.format(), SerializationFormat::Native);
/// assert_eq!(order.deserialize::<u32>()?, 99);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct MessageRef<'b> {
    sub: &'b Subscriber,
    item: &'b Item,
}

impl<'b> MessageRef<'b> {
    /// Its offset in its topic (or partition).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, RecvError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// let sub = mq.subscriber_with_options("ticks", options).await?;
    /// for tick in 0..3 {
    ///     mq.publisher("ticks").publish(tick).await?; // offset 0 is evicted unread
    /// }
    /// assert_eq!(sub.recv_batch_lent(10).await.unwrap_err(), RecvError::Lagged(1));
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.iter().map(|m| m.offset()).collect::<Vec<_>>(), [1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn offset(&self) -> u64 {
        self.item.offset
    }

    /// The partition it came from, on a partitioned topic.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 4).await?;
    /// mq.set_partition_routing("clicks", PartitionRouting::Fixed(2)).await?;
    /// let sub = mq.subscriber("clicks").await?;
    /// mq.publisher("clicks").publish("home").await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.get(0).unwrap().partition(), Some(2));
    /// # Ok(()) }
    /// ```
    pub fn partition(&self) -> Option<usize> {
        self.item.partition
    }

    /// How many times its consumer group has delivered it, this time
    /// included (1 outside groups).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let join = || mq.group("jobs", "workers").manual_ack().mode(ConsumptionMode::Earliest).join();
    /// let (first, second) = (join().await?, join().await?);
    /// mq.publisher("jobs").publish("resize").await?;
    /// assert_eq!(first.recv_batch_lent(1).await?.get(0).unwrap().deliveries(), 1);
    /// drop(first); // never acknowledged: the job goes to the other member
    /// assert_eq!(second.recv_batch_lent(1).await?.get(0).unwrap().deliveries(), 2);
    /// # Ok(()) }
    /// ```
    pub fn deliveries(&self) -> u32 {
        self.item.deliveries
    }

    /// When it was published.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("readings").await?;
    /// let publisher = mq.publisher("readings");
    /// publisher.publish(1).await?;
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// publisher.publish(2).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// let gap = batch.get(1).unwrap().created_at() - batch.get(0).unwrap().created_at();
    /// assert_eq!(gap, Duration::from_secs(2));
    /// # Ok(()) }
    /// ```
    pub fn created_at(&self) -> std::time::Instant {
        self.item.timestamp.into_std()
    }

    /// The topic it was published to.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("alerts").await?;
    /// mq.publisher("alerts").publish("disk full").await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert!(batch.iter().all(|m| m.topic() == "alerts"));
    /// # Ok(()) }
    /// ```
    pub fn topic(&self) -> &'b str {
        self.sub.topic()
    }

    /// Its key, when one was given.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("logins").await?;
    /// let publisher = mq.publisher("logins");
    /// publisher.publish_with_key("user-1", "ada").await?;
    /// publisher.publish("anonymous").await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.iter().map(|m| m.key()).collect::<Vec<_>>(), [Some("user-1"), None]);
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> Option<&'b str> {
        self.item.entry.key.as_deref()
    }

    /// The format of its payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("mixed").await?;
    /// let publisher = mq.publisher("mixed");
    /// publisher.publish(1u8).await?;
    /// publisher.publish_with_format(2u8, SerializationFormat::Json).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// let formats: Vec<_> = batch.iter().map(|m| m.format()).collect();
    /// assert_eq!(formats, [SerializationFormat::Native, SerializationFormat::Json]);
    /// # Ok(()) }
    /// ```
    pub fn format(&self) -> SerializationFormat {
        self.sub.formats().format(self.item.entry.format)
    }

    /// The payload bytes; empty for a native value (as
    /// [`TopicMessage::payload_bytes`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("packets").await?;
    /// let publisher = mq.publisher("packets");
    /// publisher.publish_bytes(vec![0xCA, 0xFE], SerializationFormat::Raw).await?;
    /// publisher.publish(vec![0xCAu8, 0xFE]).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.get(0).unwrap().payload_bytes(), [0xCA, 0xFE]);
    /// assert!(batch.get(1).unwrap().payload_bytes().is_empty(), "native");
    /// # Ok(()) }
    /// ```
    pub fn payload_bytes(&self) -> &'b [u8] {
        match self.item.entry.payload_ref() {
            Ok(b) => b,
            Err(_) => &[],
        }
    }

    /// The payload as shared [`Bytes`] (a reference-count increment), or
    /// `None` for a native value.
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
    /// let chunk = Bytes::from(vec![1u8; 1 << 16]);
    /// mq.publisher("video").publish_bytes(chunk.clone(), SerializationFormat::Raw).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// let shared = batch.get(0).unwrap().bytes().expect("published as bytes");
    /// assert_eq!(shared.as_ptr(), chunk.as_ptr(), "not a copy");
    /// # Ok(()) }
    /// ```
    pub fn bytes(&self) -> Option<Bytes> {
        self.item.entry.payload_ref().ok().cloned()
    }

    /// The natively published value, shared, when it is a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("config").await?;
    /// mq.publisher("config").publish(vec![("retries", 3u8)]).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// let msg = batch.get(0).unwrap();
    /// assert_eq!(*msg.native::<Vec<(&str, u8)>>().unwrap(), [("retries", 3)]);
    /// assert!(msg.native::<String>().is_none(), "not the published type");
    /// # Ok(()) }
    /// ```
    pub fn native<T: Send + Sync + 'static>(&self) -> Option<std::sync::Arc<T>> {
        self.item.entry.payload_ref().err().and_then(|n| n.downcast())
    }

    /// Reads the payload as a `T`, as [`TopicMessage::deserialize`] does
    /// (with the subscriber's [decode limits](Subscriber::with_decode_limits)
    /// when it has its own).
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a valid `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{DecodeErrorKind, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("amounts").await?;
    /// let publisher = mq.publisher("amounts");
    /// publisher.publish(12i32).await?;
    /// publisher.publish("twelve").await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.get(0).unwrap().deserialize::<i64>()?, 12, "an i32 reads as an i64");
    /// let err = batch.get(1).unwrap().deserialize::<i64>().unwrap_err();
    /// assert_eq!((err.kind(), err.offset()), (DecodeErrorKind::TypeMismatch, Some(1)));
    /// # Ok(()) }
    /// ```
    pub fn deserialize<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self) -> Result<T, DecodeError> {
        match self.item.entry.payload_ref() {
            Err(native) => native.read(),
            Ok(bytes) => {
                let formats = self.sub.formats();
                let (format, codec) = formats.resolve(self.item.entry.format);
                let (own, queue) = (self.sub.own_decode_limits(), formats.limits_ref());
                crate::decode::decode_bytes(bytes, &format, codec.as_ref(), own, queue)
            }
        }
        .map_err(|e| e.at(Some(self.item.offset), self.item.partition))
    }

    /// Its record headers (see [`TopicMessage::headers`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("t").await?;
    /// mq.publisher("t").publish_with_headers(1u8, [("h", "v")]).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// assert_eq!(batch.get(0).unwrap().headers().get_str("h"), Some("v"));
    /// # Ok(()) }
    /// ```
    pub fn headers(&self) -> &'b Headers {
        self.item
            .entry
            .headers()
            .unwrap_or_else(|| crate::message::no_headers())
    }

    /// Where it came from, for a message received from a dead-letter
    /// topic (see [`TopicMessage::dead_letter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let dead = mq.subscriber("jobs.dead-letters").await?;
    /// let join = || mq.group("jobs", "workers").manual_ack().max_deliveries(1).mode(ConsumptionMode::Earliest).join();
    /// let (worker, other) = (join().await?, join().await?);
    /// mq.publisher("jobs").publish("resize").await?;
    /// worker.recv().await?; // delivered once, never acknowledged
    /// drop(worker);
    /// assert!(other.recv_timeout(Duration::from_millis(10)).await?.is_none(), "dead-lettered, not redelivered");
    /// let batch = dead.recv_batch_lent(10).await?;
    /// let origin = batch.get(0).unwrap().dead_letter().expect("a dead letter");
    /// assert_eq!((origin.group.as_ref(), origin.offset, origin.deliveries), ("workers", 0, 1));
    /// # Ok(()) }
    /// ```
    pub fn dead_letter(&self) -> Option<&'b DeadLetterInfo> {
        self.item.entry.dead_letter()
    }

    /// The message, owned: what [`recv_batch`](Subscriber::recv_batch)
    /// would have returned for it. Shares the payload (nothing is copied).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// mq.publisher("orders").publish_batch(vec![5u32, 500, 7]).await?;
    /// let batch = sub.recv_batch_lent(10).await?;
    /// let large: Vec<_> = batch.iter().filter(|m| m.deserialize::<u32>().is_ok_and(|v| v > 100)).map(|m| m.to_message()).collect();
    /// drop(batch);
    /// assert_eq!(large.len(), 1);
    /// assert_eq!((large[0].offset(), large[0].deserialize::<u32>()?), (1, 500));
    /// # Ok(()) }
    /// ```
    pub fn to_message(&self) -> TopicMessage {
        let item = self.item;
        TopicMessage::received(
            self.sub.formats(),
            self.sub.topic_name(),
            item.entry.clone(),
            item.offset,
            item.timestamp,
            self.item.partition,
            self.item.deliveries,
        )
    }

    /// Acknowledges it, for a member of a group with manual
    /// acknowledgement (as [`Subscriber::ack`]).
    ///
    /// # Errors
    ///
    /// As [`Subscriber::ack`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{AckError, ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let worker = mq.group("jobs", "workers").manual_ack().mode(ConsumptionMode::Earliest).join().await?;
    /// mq.publisher("jobs").publish_batch(vec!["a", "b"]).await?;
    /// let batch = worker.recv_batch_lent(10).await?;
    /// assert_eq!(mq.get_group_stats("jobs", "workers").await.unwrap().pending, 2);
    /// for job in &batch {
    ///     job.ack()?;
    /// }
    /// assert_eq!(mq.get_group_stats("jobs", "workers").await.unwrap().pending, 0);
    /// assert!(matches!(batch.get(0).unwrap().ack(), Err(AckError::NotOwned { .. })), "acknowledged already");
    /// # Ok(()) }
    /// ```
    pub fn ack(&self) -> Result<(), AckError> {
        self.sub
            .ack_at(self.item.partition.unwrap_or(0), self.item.offset)
    }

    /// Gives it back to the group for redelivery now (as
    /// [`Subscriber::nack`]).
    ///
    /// # Errors
    ///
    /// As [`Subscriber::ack`].
    pub fn nack(&self) -> Result<(), AckError> {
        self.sub
            .nack_at(self.item.partition.unwrap_or(0), self.item.offset)
    }
}

impl fmt::Debug for MessageRef<'_> {
    /// Shows the metadata and payload size, never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRef")
            .field("topic", &self.topic())
            .field("offset", &self.offset())
            .field("partition", &self.partition())
            .field("key", &self.key())
            .field("payload_len", &self.payload_bytes().len())
            .finish()
    }
}

impl Received for LentBatch<'_> {
    fn delivered(&mut self, _: &Subscriber, d: Delivered<Entry>, partition: Option<usize>) {
        self.items.push(Item {
            offset: d.offset,
            timestamp: d.timestamp,
            partition,
            deliveries: 1,
            entry: d.value,
        });
    }

    fn claimed(&mut self, sub: &Subscriber, c: Claimed<Entry>) {
        self.items.push(Item {
            offset: c.offset,
            timestamp: c.timestamp,
            partition: sub.is_partitioned_group().then_some(c.partition),
            deliveries: c.deliveries,
            entry: c.value,
        });
    }

    fn stashed(&mut self, sub: &Subscriber, m: TopicMessage) {
        let (partition, deliveries) = (m.partition, m.deliveries);
        let d = m.into_delivered(sub.formats());
        self.items.push(Item {
            offset: d.offset,
            timestamp: d.timestamp,
            partition,
            deliveries,
            entry: d.value,
        });
    }
}

impl crate::message::Acknowledgeable for MessageRef<'_> {
    fn ack_partition(&self) -> Option<usize> {
        self.item.partition
    }

    fn ack_offset(&self) -> u64 {
        self.item.offset
    }

    fn ack_topic(&self) -> Option<&str> {
        Some(self.topic())
    }
}
