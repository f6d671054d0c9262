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
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when it holds none (only for a receive of at most 0).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `index`th message, if there is one.
    pub fn get(&self, index: usize) -> Option<MessageRef<'_>> {
        let sub = self.sub;
        self.items.get(index).map(|item| MessageRef { sub, item })
    }

    /// The messages in offset order (per partition on a partitioned
    /// topic).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            sub: self.sub,
            items: self.items.iter(),
        }
    }

    /// Every message, owned (as [`recv_batch`](Subscriber::recv_batch)
    /// would have returned them).
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

/// The messages of a [`LentBatch`], from [`LentBatch::iter`].
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
#[derive(Clone, Copy)]
pub struct MessageRef<'b> {
    sub: &'b Subscriber,
    item: &'b Item,
}

impl<'b> MessageRef<'b> {
    /// Its offset in its topic (or partition).
    pub fn offset(&self) -> u64 {
        self.item.offset
    }

    /// The partition it came from, on a partitioned topic.
    pub fn partition(&self) -> Option<usize> {
        self.item.partition
    }

    /// How many times its consumer group has delivered it, this time
    /// included (1 outside groups).
    pub fn deliveries(&self) -> u32 {
        self.item.deliveries
    }

    /// When it was published.
    pub fn created_at(&self) -> std::time::Instant {
        self.item.timestamp.into_std()
    }

    /// The topic it was published to.
    pub fn topic(&self) -> &'b str {
        self.sub.topic()
    }

    /// Its key, when one was given.
    pub fn key(&self) -> Option<&'b str> {
        self.item.entry.key.as_deref()
    }

    /// The format of its payload.
    pub fn format(&self) -> SerializationFormat {
        self.sub.formats().format(self.item.entry.format)
    }

    /// The payload bytes; empty for a native value (as
    /// [`TopicMessage::payload_bytes`]).
    pub fn payload_bytes(&self) -> &'b [u8] {
        match self.item.entry.payload_ref() {
            Ok(b) => b,
            Err(_) => &[],
        }
    }

    /// The payload as shared [`Bytes`] (a reference-count increment), or
    /// `None` for a native value.
    pub fn bytes(&self) -> Option<Bytes> {
        self.item.entry.payload_ref().ok().cloned()
    }

    /// The natively published value, shared, when it is a `T`.
    pub fn native<T: Send + Sync + 'static>(&self) -> Option<std::sync::Arc<T>> {
        self.item.entry.payload_ref().err().and_then(|n| n.downcast())
    }

    /// Reads the payload as a `T`, as [`TopicMessage::deserialize`] does.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the payload is not a valid `T`.
    pub fn deserialize<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self) -> Result<T, DecodeError> {
        match self.item.entry.payload_ref() {
            Err(native) => native.read(),
            Ok(bytes) => {
                let (format, codec) = self.sub.formats().resolve(self.item.entry.format);
                crate::decode::decode_bytes(bytes, &format, codec.as_ref())
            }
        }
        .map_err(|e| e.at(Some(self.item.offset)))
    }

    /// Where it came from, for a message received from a dead-letter
    /// topic (see [`TopicMessage::dead_letter`]).
    pub fn dead_letter(&self) -> Option<&'b DeadLetterInfo> {
        self.item.entry.dead_letter()
    }

    /// The message, owned: what [`recv_batch`](Subscriber::recv_batch)
    /// would have returned for it. Shares the payload (nothing is copied).
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
    pub fn ack(&self) -> Result<(), AckError> {
        self.sub
            .ack_at(self.item.partition.unwrap_or(0), self.item.offset)
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
