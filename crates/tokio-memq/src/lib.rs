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
//! # Cancellation
//!
//! Every receive is cancel safe: a receive dropped at any await point (the
//! losing branch of `tokio::select!`, a timeout) loses no message.
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
//! - `MessageQueue::new()` works outside a runtime and spawns nothing.
//! - The traits have an associated `Error` type and return futures
//!   directly (no `async_trait` boxing).
//!
//! # Module paths
//!
//! Everything is at the crate root and, as in 1.0.0, under [`mq`].

#![warn(missing_docs)]

mod decode;
mod error;
mod format;
mod lent;
mod log;
mod message;
mod options;
mod partitioned;
mod publisher;
mod queue;
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
    OutOfRange, PublishError, PublishErrorKind, RecvError, RecvTypedError, TopicError, TryRecvError,
};
pub use format::SerializationFormat;
pub use lent::{Iter as LentIter, LentBatch, MessageRef};
pub use memq_codec::{
    BincodeConfig, ByteProcessor, Codec, CodecError, CompressionConfig, CustomFormat, DecodeLimits,
    DefaultSettings, DefaultsRegistry, FrameVersion, HeaderMode, JsonConfig, MessagePackConfig,
    NoopProcessor, PipelineConfig, ProcessorPair, SerializationConfig, SerializationFactory,
};
pub use memq_groups::GroupStats;
pub use message::{
    DeadLetterInfo, DeadLetterReason, MessageMetadata, MessagePayload, NativePayload, TopicMessage,
};
pub use options::{ConsumptionMode, PartitionRouting, PartitionStats, RouterFn, TopicOptions, TopicStats};
pub use publisher::Publisher;
pub use queue::{GroupBuilder, MessageQueue};
pub use subscriber::Subscriber;
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
