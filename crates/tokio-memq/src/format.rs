//! The format of a stored payload, in two bytes.
//!
//! Each retained message keeps a [`FormatTag`] instead of a
//! `SerializationFormat` (whose `Custom` variant holds a `String`) or a
//! `Codec`, so that a message costs 64 bytes beyond its payload. A tag is
//! one of: a built-in format, a custom format name kept once in the
//! queue's [`FormatTable`], or a codec kept there once per distinct
//! setting (messages encoded with a topic's or publisher's serialization
//! defaults carry the codec that encoded them, so receivers decode them
//! with the same pipeline). The table belongs to the queue and is freed
//! with it; nothing is process-wide.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The format of a message's payload, as
/// [`TopicMessage::format`](crate::TopicMessage::format) reports it:
/// `Native` for a value stored as it is, `Raw` for bytes published as they
/// are, or the format it was serialized in.
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
/// publisher.publish_with_format(2u8, SerializationFormat::MessagePack).await?;
/// publisher.publish_bytes("3", SerializationFormat::Raw).await?;
/// let formats: Vec<String> = sub.recv_batch(3).await?.iter().map(|m| m.format.to_string()).collect();
/// assert_eq!(formats, ["native", "messagepack", "raw"]);
/// # Ok(()) }
/// ```
pub use memq_codec::SerializationFormat;
use memq_codec::{Codec, CodecError, DecodeLimits, ErrorKind};
use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FormatTag(u16);

const CUSTOM_BASE: u16 = 16;
const CODEC_BASE: u16 = 0x8000;

/// The custom format names and codecs of one queue's stored payloads,
/// each kept once and named by a [`FormatTag`].
///
/// Per queue, freed with it. Codecs are kept once per distinct setting
/// ([`Codec::same_settings`]: processors by identity, the same `Arc`s),
/// so registering the same defaults again and again adds nothing, but
/// each registration with newly built processors adds one, for the
/// queue's life (retained payloads may name it; the public docs of
/// `register_topic_defaults` say so); a queue that asks for more than [`Table::CAPACITY`]
/// distinct ones gets a typed error at publish time, never a misread
/// payload. Lookups on the delivery path take no lock.
#[derive(Debug, Default)]
pub(crate) struct FormatTable {
    custom: Table<Arc<str>>,
    codecs: Table<Codec>,
    /// Writers only: where each custom name is.
    names: Mutex<HashMap<Arc<str>, usize>>,
    /// Writers only: serializes adding codecs.
    adding_codec: Mutex<()>,
    /// The queue's decode limits, when it has its own (set once, when the
    /// queue is made: [`MessageQueue::with_decode_limits`]). Every message
    /// received from the queue carries them ([`TopicMessage`]'s decoding
    /// applies them unless its codec has limits of its own), so that a
    /// message published again to another queue decodes there with that
    /// queue's.
    limits: OnceLock<Arc<DecodeLimits>>,
}

/// Segments of 1, 2, 4, ... slots, filled in order: lock-free reads;
/// writers are serialized by the table's owner.
#[derive(Debug)]
struct Table<T> {
    segments: [OnceLock<Box<[OnceLock<T>]>>; SEGMENTS],
    len: AtomicUsize,
}

const SEGMENTS: usize = 15;

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            segments: [const { OnceLock::new() }; SEGMENTS],
            len: AtomicUsize::new(0),
        }
    }
}

impl<T: Clone> Table<T> {
    /// Slots in all segments: 2^15 - 1.
    const CAPACITY: usize = (1 << SEGMENTS) - 1;

    fn locate(i: usize) -> (usize, usize) {
        let n = i + 1;
        let segment = (usize::BITS - 1 - n.leading_zeros()) as usize;
        (segment, n - (1 << segment))
    }

    fn get(&self, i: usize) -> Option<&T> {
        let (segment, slot) = Self::locate(i);
        self.segments.get(segment)?.get()?.get(slot)?.get()
    }

    /// The items so far, oldest first.
    fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len.load(Ordering::Acquire)).filter_map(|i| self.get(i))
    }

    /// Adds `item` and returns its index; `None` when the table holds
    /// `capacity` items (at most [`CAPACITY`](Self::CAPACITY)). Callers
    /// serialize their pushes.
    fn push(&self, item: T, capacity: usize) -> Option<usize> {
        let i = self.len.load(Ordering::Acquire);
        if i >= capacity.min(Self::CAPACITY) {
            return None;
        }
        let (segment, slot) = Self::locate(i);
        let slots =
            self.segments[segment].get_or_init(|| (0..1usize << segment).map(|_| OnceLock::new()).collect());
        let _ = slots[slot].set(item);
        self.len.store(i + 1, Ordering::Release);
        Some(i)
    }
}

/// Custom format names a queue can tell apart (their tags sit below the
/// codecs').
const CUSTOM_CAPACITY: usize = (CODEC_BASE - CUSTOM_BASE) as usize;
/// Distinct codecs a queue can tell apart.
const CODEC_CAPACITY: usize = Table::<()>::CAPACITY;

fn table_full(what: &str, capacity: usize) -> CodecError {
    let message =
        format!("more than {capacity} distinct {what} in one queue; register fewer distinct settings");
    CodecError::new(ErrorKind::InvalidConfig, message)
}

impl FormatTable {
    /// Makes receivers decode with `limits`. Only before anything is
    /// stored: the queue is new.
    fn set_limits(&self, limits: DecodeLimits) {
        let _ = self.limits.set(Arc::new(limits));
    }

    /// The queue's own decode limits, if it has them, as received messages
    /// carry them.
    pub(crate) fn shared_limits(&self) -> Option<Arc<DecodeLimits>> {
        self.limits.get().cloned()
    }

    /// The queue's own decode limits, if it has them.
    pub(crate) fn limits_ref(&self) -> Option<&DecodeLimits> {
        self.limits.get().map(|l| &**l)
    }

    /// The tag of a payload in `format` (not encoded by a codec).
    ///
    /// # Errors
    ///
    /// When the queue already uses [`Table::CAPACITY`] other custom format
    /// names.
    pub(crate) fn tag_of(&self, format: &SerializationFormat) -> Result<FormatTag, CodecError> {
        Ok(match format {
            SerializationFormat::Bincode => FormatTag(0),
            SerializationFormat::Json => FormatTag(1),
            SerializationFormat::MessagePack => FormatTag(2),
            SerializationFormat::Native => FormatTag::NATIVE,
            SerializationFormat::Raw => FormatTag(4),
            other => {
                let mut names = self.names.lock();
                let i = match names.get(other.as_str()) {
                    Some(&i) => i,
                    None => {
                        let name: Arc<str> = other.as_str().into();
                        let i = self
                            .custom
                            .push(name.clone(), CUSTOM_CAPACITY)
                            .ok_or_else(|| table_full("custom format names", CUSTOM_CAPACITY))?;
                        names.insert(name, i);
                        i
                    }
                };
                FormatTag(CUSTOM_BASE + i as u16)
            }
        })
    }

    /// The tag of a payload encoded by `codec`.
    ///
    /// # Errors
    ///
    /// When the queue already uses [`Table::CAPACITY`] other codecs.
    pub(crate) fn tag_of_codec(&self, codec: &Codec) -> Result<FormatTag, CodecError> {
        let _adding = self.adding_codec.lock();
        let known = self.codecs.iter().position(|c| c.same_settings(codec));
        let i = match known {
            Some(i) => i,
            None => self
                .codecs
                .push(codec.clone(), CODEC_CAPACITY)
                .ok_or_else(|| table_full("serialization settings", CODEC_CAPACITY))?,
        };
        Ok(FormatTag(CODEC_BASE + i as u16))
    }

    /// The codec that encoded a payload, if one did.
    pub(crate) fn codec(&self, tag: FormatTag) -> Option<Codec> {
        let i = tag.0.checked_sub(CODEC_BASE)?;
        self.codecs.get(usize::from(i)).cloned()
    }

    /// The format and, for encoded payloads, the codec that encoded them.
    pub(crate) fn resolve(&self, tag: FormatTag) -> (SerializationFormat, Option<Codec>) {
        match self.codec(tag) {
            Some(c) => (c.format().clone(), Some(c)),
            None => (self.format(tag), None),
        }
    }

    pub(crate) fn format(&self, tag: FormatTag) -> SerializationFormat {
        match tag.0 {
            0 => SerializationFormat::Bincode,
            1 => SerializationFormat::Json,
            2 => SerializationFormat::MessagePack,
            3 => SerializationFormat::Native,
            4 => SerializationFormat::Raw,
            n if n >= CODEC_BASE => match self.codec(tag) {
                Some(c) => c.format().clone(),
                None => SerializationFormat::Custom("unknown".to_owned()),
            },
            n => {
                let name = n
                    .checked_sub(CUSTOM_BASE)
                    .and_then(|i| self.custom.get(usize::from(i)));
                SerializationFormat::Custom(name.map_or("unknown", |n| &**n).to_owned())
            }
        }
    }
}

impl FormatTag {
    pub(crate) const NATIVE: FormatTag = FormatTag(3);
    pub(crate) const RAW: FormatTag = FormatTag(4);
}

impl crate::MessageQueue {
    /// An empty queue whose receivers decode payloads with `limits`
    /// instead of the defaults (64 MiB decoded, 128 levels of nesting;
    /// see [`DecodeLimits`]): for payloads bigger than 64 MiB, or to
    /// refuse smaller ones from a less trusted publisher. Every message
    /// received from this queue deserializes with them
    /// ([`TopicMessage::deserialize`](crate::TopicMessage::deserialize),
    /// typed receives, lent batches), except payloads encoded by a codec
    /// that has limits of its own. A payload any size can be published;
    /// the limits apply when it is read. A value published natively is
    /// never decoded, so no limit applies to it: read as its own type it
    /// is cloned, read as another it converts as
    /// [`TopicMessage::deserialize`](crate::TopicMessage::deserialize)
    /// says (nested at most 128 levels). For one read with other limits,
    /// see [`TopicMessage::deserialize_with_limits`](crate::TopicMessage::deserialize_with_limits).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{DecodeErrorKind, DecodeLimits, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let strict = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(16));
    /// let sub = strict.subscriber("t").await?;
    /// let publisher = strict.publisher("t");
    /// publisher.publish_with_format("short", SerializationFormat::Json).await?;
    /// publisher.publish_with_format("a string well over sixteen bytes", SerializationFormat::Json).await?;
    /// assert_eq!(sub.recv_typed::<String>().await?, "short");
    /// let err = sub.recv().await?.deserialize::<String>().unwrap_err();
    /// assert!(matches!(err.kind(), DecodeErrorKind::Codec(_)));
    /// # Ok(()) }
    /// ```
    pub fn with_decode_limits(limits: DecodeLimits) -> Self {
        let mq = Self::new();
        mq.registry().formats.set_limits(limits);
        mq
    }

    /// This queue's decode limits: those given to
    /// [`with_decode_limits`](Self::with_decode_limits), or the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{DecodeLimits, MessageQueue};
    ///
    /// assert_eq!(MessageQueue::new().decode_limits().max_decoded_size(), 64 << 20);
    /// let roomy = DecodeLimits::new().with_max_decoded_size(1 << 30);
    /// assert_eq!(MessageQueue::with_decode_limits(roomy).decode_limits(), roomy);
    /// ```
    pub fn decode_limits(&self) -> DecodeLimits {
        self.registry().formats.limits_ref().copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let table = FormatTable::default();
        for f in [
            SerializationFormat::Bincode,
            SerializationFormat::Json,
            SerializationFormat::MessagePack,
            SerializationFormat::Native,
            SerializationFormat::Raw,
            SerializationFormat::Custom("avro".into()),
            SerializationFormat::Custom("cbor".into()),
        ] {
            let tag = table.tag_of(&f).unwrap();
            assert_eq!(table.format(tag), f);
            assert!(table.codec(tag).is_none());
        }
        let avro = SerializationFormat::Custom("avro".into());
        assert_eq!(table.tag_of(&avro).unwrap(), table.tag_of(&avro).unwrap());
    }

    #[test]
    fn codecs_are_kept_once_per_setting() {
        let table = FormatTable::default();
        let json = || {
            Codec::new(
                SerializationFormat::Json,
                memq_codec::SerializationConfig::Default,
                memq_codec::PipelineConfig::default(),
            )
            .unwrap()
        };
        let (a, b) = (json(), json());
        let tag = table.tag_of_codec(&a).unwrap();
        assert_eq!(tag, table.tag_of_codec(&b).unwrap(), "equal settings share a tag");
        assert!(table.codec(tag).unwrap().same_settings(&b));
        assert_eq!(table.format(tag), SerializationFormat::Json);
    }

    #[test]
    fn segments_cover_every_index_once() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..Table::<u8>::CAPACITY {
            let (segment, slot) = Table::<u8>::locate(i);
            assert!(segment < SEGMENTS && slot < 1 << segment);
            assert!(seen.insert((segment, slot)));
        }
    }

    #[test]
    fn a_full_table_refuses_with_a_typed_error() {
        let table = FormatTable::default();
        for i in 0..CUSTOM_CAPACITY {
            table
                .tag_of(&SerializationFormat::Custom(format!("f{i}")))
                .unwrap();
        }
        let err = table
            .tag_of(&SerializationFormat::Custom("one more".into()))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        let last = format!("f{}", CUSTOM_CAPACITY - 1);
        let tag = table.tag_of(&SerializationFormat::Custom(last.clone())).unwrap();
        assert_eq!(table.format(tag), SerializationFormat::Custom(last));
        assert!(table.codec(tag).is_none(), "custom tags never read as codecs");
    }
}
