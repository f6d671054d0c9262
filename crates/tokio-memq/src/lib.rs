//! # tokio-memq
//!
//! An in-process, in-memory message queue for Tokio applications: topics
//! that many tasks publish to and many tasks read from, with replay by
//! offset, batching, bounded memory, backpressure and zero-copy payloads.
//!
//! This is 2.0, a rewrite of the 1.0.0 crate under the same API that keeps
//! what 1.0.0 promised: no lost, duplicated or silently skipped messages,
//! no panics on binary payloads, no sleeping between messages. See
//! [Changes from 1.0](#changes-from-10).
//!
//! # Quick start
//!
//! ```
//! use tokio_memq::mq::MessageQueue;
//! use tokio_memq::{MessageSubscriber, AsyncMessagePublisher};
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let mq = MessageQueue::new();
//!     let sub = mq.subscriber("chat").await?;
//!
//!     let publisher = mq.publisher("chat");
//!     tokio::spawn(async move {
//!         publisher.publish("Hello World".to_string()).await.unwrap();
//!     });
//!
//!     let msg = sub.recv().await?;
//!     let payload: String = msg.deserialize()?;
//!     assert_eq!(payload, "Hello World");
//!     Ok(())
//! }
//! ```
//!
//! # Delivery
//!
//! Every subscriber sees every message published to its topic from its
//! start position ([`ConsumptionMode`]), in offset order. Offsets are dense
//! `u64`s assigned when a message becomes visible; a batch gets a
//! contiguous run.
//!
//! Nothing is lost silently. When a topic with `lru_enabled: true` (the
//! default) is full it evicts its oldest message; a subscriber that had
//! not read it gets [`RecvError::Lagged`] with the exact number it missed,
//! then continues with the oldest retained message. With
//! `lru_enabled: false`, a full topic makes publishers wait until every
//! live subscriber has read the oldest message instead. Messages older
//! than `message_ttl` are never delivered and are counted in
//! [`TopicStats`].
//!
//! A receive loop notes the lag and goes on:
//!
//! ```
//! use tokio_memq::{MessageQueue, RecvError, TopicOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let mq = MessageQueue::new();
//! let options = TopicOptions { max_messages: Some(3), ..TopicOptions::default() };
//! let sub = mq.subscriber_with_options("ticks", options).await?;
//! for tick in 0..10u32 {
//!     mq.publisher("ticks").publish(tick).await?;
//! }
//! drop(mq); // nobody can publish any more: the topic closes
//! let (mut ticks, mut missed) = (Vec::new(), 0);
//! loop {
//!     match sub.recv().await {
//!         Ok(msg) => ticks.push(msg.deserialize::<u32>()?),
//!         Err(RecvError::Lagged(n)) => missed += n, // then on with the oldest retained
//!         Err(RecvError::Closed) => break,
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!((ticks, missed), (vec![7, 8, 9], 7));
//! # Ok(()) }
//! ```
//!
//! # Cancellation
//!
//! Every receive is cancel safe: a receive dropped at any await point (the
//! losing branch of `tokio::select!`, a timeout) loses no message.
//!
//! ```
//! use std::time::Duration;
//! use tokio_memq::MessageQueue;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> anyhow::Result<()> {
//! let mq = MessageQueue::new();
//! let sub = mq.subscriber("jobs").await?;
//! let publisher = mq.publisher("jobs");
//! let mut idle_ticks = 0;
//! loop {
//!     tokio::select! {
//!         msg = sub.recv() => {
//!             assert_eq!(msg?.deserialize::<String>()?, "job 1");
//!             break;
//!         }
//!         _ = tokio::time::sleep(Duration::from_secs(1)) => {
//!             idle_ticks += 1; // the receive was dropped
//!             publisher.publish("job 1").await?;
//!         }
//!     }
//! }
//! assert_eq!(idle_ticks, 1);
//! # Ok(()) }
//! ```
//!
//! # Native values and bytes
//!
//! [`Publisher::publish`] stores a value natively (`Arc<T>`): nothing is
//! serialized, and [`TopicMessage::native`] gives it back for a reference
//! count. [`TopicMessage::deserialize`] clones it, or converts it to a
//! compatible type (`&str` to `String`, `i32` to `i64`).
//! [`Publisher::publish_bytes`] takes [`bytes::Bytes`]: a 100 MB payload
//! published to ten subscribers is one allocation.
//!
//! ```
//! use std::sync::Arc;
//! use tokio_memq::{MessageQueue, SerializationFormat};
//!
//! #[derive(serde::Serialize)]
//! struct Frame { id: u32, pixels: Vec<u8> }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let mq = MessageQueue::new();
//! let sub = mq.subscriber("frames").await?;
//! let publisher = mq.publisher("frames");
//! publisher.publish(Frame { id: 1, pixels: vec![0; 1 << 20] }).await?;
//! let image = Arc::new(vec![0xFFu8; 1 << 20]);
//! publisher.publish_shared_bytes(image.clone(), SerializationFormat::Raw).await?;
//!
//! let frame = sub.recv().await?.native::<Frame>().expect("published as a Frame");
//! assert_eq!((frame.id, frame.pixels.len()), (1, 1 << 20));
//! let bytes = sub.recv().await?.bytes().expect("published as bytes");
//! assert_eq!(bytes.as_ptr(), image.as_ptr(), "the published memory, not a copy");
//! # Ok(()) }
//! ```
//!
//! # Across processes
//!
//! With the `redis` feature (off by default; Rust 1.88),
//! `MessageQueue::connect("redis://host:port/")` makes a queue whose
//! topics live in Redis Streams (7.0 or newer), shared by every process
//! connected to the server: the same publishers, subscribers, groups,
//! partitioned topics and messages, with offsets equal in every process.
//! What cannot work there is a [`StoreError`] of kind
//! [`StoreErrorKind::Unsupported`] where it is asked, and a failure of the
//! server is a `Store` variant of the usual errors. The README's "Running
//! across processes with Redis" lists every difference.
//!
//! # Changes from 1.0
//!
//! - Offsets are `u64` (`ConsumptionMode::Offset(u64)`, `seek(u64)`,
//!   `commit(u64)`), and publishing returns the offset(s) assigned.
//! - `commit(offset)` records that everything up to and including
//!   `offset` is processed; it no longer moves the subscriber (1.0.0
//!   treated it as `seek` and redelivered).
//! - Errors are typed ([`PublishError`] hands the message back,
//!   [`RecvError`], [`TopicError`], [`DecodeError`]) and convert into
//!   `anyhow::Error` with `?` as before.
//! - A lagging subscriber gets [`RecvError::Lagged`] instead of silently
//!   skipping; `lru_enabled: false` now means backpressure.
//! - Subscribing with options that differ from an existing topic's is an
//!   error ([`TopicError::OptionsMismatch`]) instead of being ignored.
//! - [`TopicMessage`] fields are `Arc<str>` for `topic` and `key`,
//!   `Option<u64>` for `offset`; it is `#[non_exhaustive]`.
//! - Calls 1.0.0 accepted and did something else with are errors: a
//!   batch larger than the topic can hold (`TooLarge`; 1.0.0 kept its
//!   newest messages), a seek or start offset outside the retained
//!   window (`OutOfRange`), a commit past the last offset, a fixed
//!   partition past the count (see the README's migration notes).
//! - `MessageQueue::new()` works outside a runtime and spawns nothing.
//! - The traits have an associated `Error` type and return futures
//!   directly (no `async_trait` boxing).
//!
//! Every error converts into `anyhow::Error` with `?`; match on the typed
//! error where the case matters:
//!
//! ```
//! use tokio_memq::{MessageQueue, PublishError, TopicError, TopicOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let mq = MessageQueue::new();
//! mq.create_topic("orders", TopicOptions::default()).await?;
//! let smaller = TopicOptions { max_messages: Some(10), ..TopicOptions::default() };
//! let err = mq.create_topic("orders", smaller).await.unwrap_err();
//! assert_eq!(err, TopicError::OptionsMismatch { topic: "orders".into() });
//!
//! mq.close();
//! match mq.publisher("orders").publish(String::from("order 1")).await {
//!     Err(PublishError::Closed(order)) => assert_eq!(order, "order 1"), // handed back
//!     other => panic!("expected Closed, got {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Module paths
//!
//! Everything is at the crate root and, as in 1.0.0, under [`mq`].

#![warn(missing_docs)]

/// A `tracing` event (target `tokio_memq`) with the `tracing` feature;
/// nothing, not even the arguments' evaluation, without it.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "tokio_memq", $($arg)+);
    };
}

/// `fut` inside a `trace` span named `name` with a `topic` field, with the
/// `tracing` feature; `fut` itself without it.
macro_rules! traced {
    ($fut:expr, $name:literal, $topic:expr) => {{
        #[cfg(feature = "tracing")]
        let fut = tracing::Instrument::instrument(
            $fut,
            tracing::trace_span!(target: "tokio_memq", $name, topic = %$topic),
        );
        #[cfg(not(feature = "tracing"))]
        let fut = $fut;
        fut
    }};
}

mod blocking;
mod convert;
mod decode;
mod error;
mod format;
mod lent;
mod log;
mod message;
mod observe;
mod options;
mod partitioned;
mod pattern;
mod publisher;
mod queue;
#[cfg(feature = "redis")]
mod remote;
mod sink;
mod subscriber;
mod traits;
mod weigh;

/// The repository README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

pub use bytes::Bytes;
pub use error::{
    AckError, CodecErrorKind, CommitError, ConfigError, DecodeError, DecodeErrorKind, EncodeError, Error,
    OutOfRange, PublishError, PublishErrorKind, RecvError, RecvTypedError, StoreError, StoreErrorKind,
    TopicError, TryRecvError,
};
pub use format::SerializationFormat;
pub use lent::{Iter as LentIter, LentBatch, MessageRef};
pub use memq_codec::{
    BincodeConfig, ByteProcessor, Codec, CodecError, Compression, CompressionConfig, CustomFormat,
    DecodeLimits, DefaultSettings, DefaultsRegistry, ErasedValue, FrameHeader, FrameVersion, HeaderMode,
    Headers, JsonConfig, MessagePackConfig, NoopProcessor, PipelineConfig, ProcessorPair,
    SerializationConfig, SerializationFactory, ValueSink,
};
/// Progress of a consumer group, from
/// [`MessageQueue::get_group_stats`].
///
/// ```
/// use tokio_memq::{ConsumptionMode, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let worker = mq.group("jobs", "workers").manual_ack().mode(ConsumptionMode::Earliest).join().await?;
/// mq.publisher("jobs").publish_batch(vec!["a", "b", "c"]).await?;
/// let job = worker.recv().await?;
/// let stats = mq.get_group_stats("jobs", "workers").await.expect("the group exists");
/// assert_eq!((stats.members, stats.pending, stats.lag), (1, 1, 3));
/// worker.ack(&job)?;
/// let stats = mq.get_group_stats("jobs", "workers").await.unwrap();
/// assert_eq!((stats.pending, stats.lag, stats.committed), (0, 2, vec![Some(0)]));
/// # Ok(()) }
/// ```
pub use memq_groups::GroupStats;
pub use message::{
    dead_letter_headers, Acknowledgeable, DeadLetterInfo, DeadLetterReason, MessageMetadata, MessagePayload,
    NativePayload, TopicMessage, TypedMessage,
};
pub use observe::TopicSnapshot;
pub use options::{ConsumptionMode, PartitionRouting, PartitionStats, RouterFn, TopicOptions, TopicStats};
pub use pattern::{PatternRecvError, PatternSubscriber};
pub use publisher::Publisher;
pub use queue::{GroupBuilder, MessageQueue};
pub use sink::PublishSink;
pub use subscriber::{Iter, Subscriber, SubscriberStream, TypedStream};
pub use traits::{AsyncMessagePublisher, MessagePublisher, MessageSubscriber, QueueManager};

/// The 1.0.0 module paths (`tokio_memq::mq::MessageQueue` and friends).
pub mod mq {
    pub use crate::{
        AsyncMessagePublisher, ConsumptionMode, MessagePublisher, MessageQueue, MessageSubscriber,
        PartitionRouting, PartitionStats, Publisher, QueueManager, SerializationFormat, Subscriber,
        TopicMessage, TopicOptions, TopicStats,
    };

    /// 1.0.0's `mq::traits`.
    pub mod traits {
        pub use crate::{AsyncMessagePublisher, MessagePublisher, MessageSubscriber, QueueManager};
    }

    /// 1.0.0's `mq::message`.
    pub mod message {
        pub use crate::{ConsumptionMode, MessageMetadata, MessagePayload, TopicMessage, TopicOptions};
    }

    pub use crate::{
        BincodeConfig, ByteProcessor, CompressionConfig, DefaultSettings, JsonConfig, MessagePackConfig,
        NoopProcessor, PipelineConfig, ProcessorPair, SerializationConfig, SerializationFactory,
    };

    /// 1.0.0's `mq::serializer`.
    pub mod serializer {
        pub use crate::{
            BincodeConfig, ByteProcessor, CompressionConfig, DefaultSettings, JsonConfig, MessagePackConfig,
            NoopProcessor, PipelineConfig, ProcessorPair, SerializationConfig, SerializationFactory,
            SerializationFormat,
        };

        /// 1.0.0's serialization error: the codec's error now (its kind
        /// says why, `source()` reaches the cause).
        ///
        /// # Examples
        ///
        /// ```
        /// use tokio_memq::mq::serializer::SerializationError;
        /// use tokio_memq::{Codec, CodecErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
        ///
        /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?;
        /// assert_eq!(codec.decode::<u32>(&codec.encode(&7u32)?)?, 7);
        /// let err: SerializationError = codec.decode::<u32>(b"\"seven\"").unwrap_err();
        /// assert_eq!(err.kind(), CodecErrorKind::Deserialize);
        /// # Ok::<(), SerializationError>(())
        /// ```
        pub type SerializationError = crate::CodecError;
    }

    /// 1.0.0's `mq::publisher`.
    pub mod publisher {
        pub use crate::Publisher;
    }

    /// 1.0.0's `mq::subscriber`.
    pub mod subscriber {
        pub use crate::Subscriber;
    }

    /// 1.0.0's `mq::broker` (stats, partition routing).
    pub mod broker {
        pub use crate::{PartitionRouting, PartitionStats, TopicStats};
    }
}
