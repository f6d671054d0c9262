//! The topic log under [tokio-memq]: a bounded, replayable, multi-subscriber
//! in-memory log with dense `u64` offsets, retention, backpressure and async
//! wake-ups.
//!
//! Most users want the facade, [tokio-memq], which adds named topics,
//! serialization and the 1.0.0 API on top of this crate. Depend on
//! `memq-core` alone when you want a fast in-memory log of your own type
//! with no serde and no queue registry: it depends only on `parking_lot`
//! and tokio's clock, and works with any executor (tokio's paused clock
//! drives TTL in tests).
//!
//! [tokio-memq]: https://docs.rs/tokio-memq
//!
//! # Example
//!
//! ```
//! use memq_core::{RecvError, StartFrom, Topic, TopicConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! #[derive(Clone, Debug, PartialEq)]
//! struct Tick { price: u32 }
//!
//! let topic = Topic::new(TopicConfig::default().max_messages(Some(3))).unwrap();
//! let mut live = topic.subscribe(StartFrom::Latest).unwrap();
//!
//! for price in 0..5 {
//!     topic.publish(Tick { price }).await.unwrap();
//! }
//! // Capacity 3: offsets 0 and 1 were evicted before `live` read them.
//! assert_eq!(live.recv().await.unwrap_err(), RecvError::Lagged(2));
//! let next = live.recv().await.unwrap();
//! assert_eq!((next.offset, next.value), (2, Tick { price: 2 }));
//!
//! // Replay what is retained from any offset.
//! let mut replay = topic.subscribe(StartFrom::Offset(3)).unwrap();
//! assert_eq!(replay.recv().await.unwrap().value.price, 3);
//! # }
//! ```
//!
//! # Offsets
//!
//! Each topic numbers its messages densely, in the order they became
//! visible, and never reuses a number. An offset is assigned in the same
//! critical section that makes the message visible, so no reader ever
//! sees a gap that is later filled. A batch gets a contiguous run with
//! nothing interleaved, or fails whole. The retained messages are always
//! one window `[low, high)`; eviction only raises `low`.
//!
//! # Retention
//!
//! A topic keeps at most [`TopicConfig::max_messages`] messages and at most
//! [`TopicConfig::max_bytes`] bytes (measured by a weigher you supply), and
//! a message at most [`TopicConfig::ttl`] after it was published. There is
//! no background task and no timer per message: expired messages are
//! removed lazily by the next publish, receive or stats call, and never
//! delivered. A publish waiting for room on a TTL topic that holds
//! publishers back sets one timer, for the moment the oldest messages
//! expire.
//!
//! # Lagging
//!
//! With [`Overflow::DropOldest`] (the default) a full topic evicts its
//! oldest message and publishers never wait. A cursor that had not yet
//! read an evicted message gets [`RecvError::Lagged`] with the exact number
//! of messages it lost to eviction, then continues at the oldest retained
//! message.
//!
//! The rule is by cause: `Lagged(n)` counts messages removed to make room
//! that the cursor had not read; messages removed because they expired are
//! skipped silently, whether the cursor was behind or not (an expired
//! message is never delivered, so nobody lost it by being slow). A topic
//! remembers why it removed each offset (as runs of one cause, the newest
//! 256 runs exactly; older runs merged and counted as evicted, so a cursor
//! resuming from that far back may hear of more, never of fewer).
//!
//! # Backpressure
//!
//! With [`Overflow::Block`] a full topic makes [`Topic::publish`] wait until
//! every live cursor has moved past the oldest message; nothing is lost to
//! a live cursor. [`Topic::try_publish`] returns [`PublishError::Full`] with
//! the message instead. A cursor that is dropped stops holding publishers
//! back.
//!
//! # Cancellation
//!
//! Every future here is cancel safe: dropping a receive at any await point
//! (the losing branch of a `select!`) loses no message and withdraws its
//! waker; dropping a publish before it completes publishes nothing.
//!
//! # Closing
//!
//! [`Topic::close`], or dropping the last [`Topic`] handle, closes the
//! topic: waiting publishers fail with `Closed`, and cursors receive what
//! is retained, then [`RecvError::Closed`].
//!
//! # Wake-ups and locking
//!
//! A receiver parks only after it found nothing under the topic lock, and
//! registers its waker in that same critical section, so no wake-up is
//! lost. A publisher with nobody waiting does no wake-up work; otherwise it
//! releases the lock before waking anyone. Evicted payloads are dropped
//! after the lock is released. Message values are cloned out under the
//! lock, so they should be cheap to clone (`Arc`, `bytes::Bytes`).

#![warn(missing_docs)]

mod config;
mod cursor;
mod delay;
mod error;
mod log;
mod shared;
mod stats;
mod sync;
mod topic;
mod wait;

/// The clock topics read under `--cfg memq_loom`: loom models set it, so
/// TTL races can be modelled without real time. Not part of the API.
#[cfg(memq_loom)]
#[doc(hidden)]
pub mod loom_clock {
    use std::cell::Cell;

    std::thread_local! {
        // Loom runs a model's threads on the test's own OS thread, so one
        // thread-local is that model's clock, apart from other tests'.
        static NOW: Cell<u64> = const { Cell::new(0) };
    }

    /// Nanoseconds since every topic's epoch, as the model set them.
    pub fn now() -> u64 {
        NOW.with(Cell::get)
    }

    /// Sets the time every topic reads (start each model with `set(0)`).
    pub fn set(nanos: u64) {
        NOW.with(|n| n.set(nanos));
    }
}

pub use config::{Overflow, TopicConfig};
pub use cursor::{Cursor, Delivered, Recv, RecvBatch, Waiter};
pub use delay::Delay;
pub use error::{
    CommitError, ConfigError, OutOfRange, PublishError, RecvError, SubscribeError, TryRecvError,
};
pub use stats::{ConsumerStats, TopicStats};
pub use topic::{Publish, PublishBatch, StartFrom, Topic};
