//! Partitioned topics for [tokio-memq]: `n` independent
//! [`memq_core::Topic`] logs behind one router that picks each message's
//! partition, with Kafka-compatible key hashing.
//!
//! A [`PartitionedTopic<T>`] holds `n` partitions created from one
//! [`TopicConfig`](memq_core::TopicConfig). Publishing routes a message by
//! its key (or round-robin, randomly, to a fixed partition, or by your own
//! [`Router`]) and returns `(partition, offset)`; each partition numbers
//! its messages densely from 0, like any memq-core topic. Readers open a
//! [`memq_core::Cursor`] on one partition, or a [`MergedCursor`] over
//! several or all of them.
//!
//! Most users want the facade, [tokio-memq], whose `MessageQueue` keeps
//! partitioned topics in the same namespace as plain ones
//! (`create_partitioned_topic`, `publish_to_partitioned`,
//! `subscribe_partition`, …) and adds serialization. Depend on
//! `memq-partition` alone when you want sharded in-memory logs of your own
//! type with no registry and no serde; it depends only on `memq-core`.
//!
//! [tokio-memq]: https://docs.rs/tokio-memq
//!
//! # Example
//!
//! ```
//! use memq_core::{StartFrom, TopicConfig};
//! use memq_partition::{PartitionedTopic, Routing};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! #[derive(Clone, Debug, PartialEq)]
//! struct Order { user: &'static str, amount: u32 }
//!
//! let orders = PartitionedTopic::new(TopicConfig::default(), 4).unwrap();
//! orders.set_routing(Routing::Hash);
//! let mut all = orders.subscribe_all(StartFrom::Latest).unwrap();
//!
//! for amount in [10, 20, 30] {
//!     let order = Order { user: "foobar", amount };
//!     let (partition, _) = orders.publish(Some(order.user.as_bytes()), order).await.unwrap();
//!     assert_eq!(partition, 2); // one key, one partition: per-key order holds
//! }
//!
//! let mut amounts = Vec::new();
//! for _ in 0..3 {
//!     let (partition, msg) = all.recv().await.unwrap();
//!     assert_eq!(partition, 2);
//!     amounts.push(msg.value.amount);
//! }
//! assert_eq!(amounts, vec![10, 20, 30]);
//! assert_eq!(orders.stats().published, 3);
//! # }
//! ```
//!
//! # Routing
//!
//! [`Routing`] is chosen per topic and changed at any time with
//! [`PartitionedTopic::set_routing`] (a publish already routed keeps its
//! partition). The default is [`Routing::RoundRobin`], as in tokio-memq
//! 1.0.
//!
//! - **`RoundRobin`**: one counter per topic, shared by all publishers:
//!   message `i` (in the order publishers took a number) goes to partition
//!   `i % n`. Keys are ignored. A batch takes a run of consecutive numbers.
//! - **`Hash`**: Kafka's default partitioner, bit for bit, so a key lands
//!   on the same partition number here as in a Kafka topic with the same
//!   partition count, on every platform and in every release:
//!
//!   ```text
//!   partition = (murmur2(key) & 0x7fffffff) % n
//!   ```
//!
//!   where `murmur2` is Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed
//!   `0x9747b28c`, `m = 0x5bd1e995`, `r = 24`, `h = seed ^ len`, the key
//!   read as little-endian 4-byte words, tail bytes mixed as in Kafka's
//!   switch, final mix `h ^= h >>> 13; h *= m; h ^= h >>> 15`, the result
//!   taken as a signed 32-bit int. `& 0x7fffffff` is Kafka's `toPositive`
//!   (not `abs`). Keys are the raw bytes (a string key is its UTF-8
//!   bytes). Worked example: `murmur2(b"foobar") = -790332482` (a vector
//!   from Kafka's own tests), `-790332482 & 0x7fffffff = 1357151166`,
//!   `1357151166 % 4 = 2`: key `"foobar"` goes to partition 2 of 4.
//!   [`murmur2`] and [`kafka_partition`] expose both steps.
//!
//!   **A message without a key** takes the next round-robin partition
//!   (the same counter as `RoundRobin`). Kafka's newer producers stick
//!   keyless records to one partition per batch instead; both spread load,
//!   neither gives keyless messages an order across partitions.
//! - **`Random`**: a uniformly random partition per message, from a
//!   splitmix64 generator seeded once per topic by the OS.
//! - **`Fixed(p)`**: always partition `p`. If `p >= n` every publish, single
//!   or batch, fails with [`RouteError::FixedOutOfRange`] and publishes
//!   nothing.
//! - **`Custom`**: your [`Router`] (any `Fn(Option<&[u8]>, usize) -> usize`),
//!   given the key and `n`. An index `>= n` fails the publish with
//!   [`RouteError::RouterOutOfRange`]; a panic inside the router is caught
//!   and fails the publish with [`RouteError::RouterPanicked`]: no lock is
//!   held while the router runs, so the topic stays fully usable. (With
//!   `panic = "abort"` a panic aborts, as everywhere.)
//!
//! # Ordering
//!
//! Each partition is one memq-core log: offsets are dense and assigned
//! where messages become visible, so every reader of a partition sees its
//! messages in publish order. Messages with one key under `Hash` always go
//! to one partition, so per-key order holds for any number of concurrent
//! publishers (each publisher's own sends stay in its order). There is no
//! order across partitions.
//!
//! # Batches
//!
//! [`PartitionedTopic::publish_batch`] takes `Vec<(Option<key>, T)>`. It
//! routes the whole batch first, under one snapshot of the strategy; if a
//! single message cannot be routed, nothing is published and the whole
//! batch comes back in a [`PublishBatchError`]. Otherwise the batch is
//! split into one share per partition (keeping input order inside each
//! share), and the shares are published in ascending partition order, each
//! with one [`Topic::publish_batch`](memq_core::Topic::publish_batch): a
//! share is one contiguous, in-order run of offsets with nothing
//! interleaved, or nothing.
//!
//! Across partitions a batch is not atomic. If a share fails (its partition
//! is closed, the share is larger than a partition can hold, or, for
//! `try_publish_batch`, the partition is full), publishing stops at that
//! share: every share of a lower partition is published and listed in
//! [`PublishBatchError::published`] with its offsets; the failed share and
//! every share of a higher partition are not published, and all their
//! messages come back in [`PublishBatchError::unpublished`] with their
//! keys, in input order, ready to retry. No message is dropped silently.
//!
//! # Reading every partition
//!
//! [`PartitionedTopic::subscribe_all`] (or [`MergedCursor::new`] over any
//! set of partition cursors) yields `(partition, message)`:
//!
//! - **Exactly once:** each partition's messages arrive once each, in
//!   offset order, as from the partition's own cursor.
//! - **Fair:** partitions take turns. A receive starts with the partition
//!   after the one that last delivered, so while several partitions have
//!   messages each gets one turn per round and none is starved by a busy
//!   one. A batch receive of `max` asks each partition in turn for up to
//!   `ceil(max / partitions)` messages, and goes round again while room
//!   remains and some partition still had more.
//! - **Lag:** a partition that evicted messages this cursor had not read
//!   reports [`RecvError::Lagged`] with the partition and the exact count,
//!   then continues at its oldest retained message. A lag found by a batch
//!   that already holds messages is reported by the next receive, before
//!   that partition's next message.
//! - **Closed:** [`RecvError::Closed`] once every partition is closed and
//!   every message this cursor could still read was delivered.
//! - **Waking:** a receive that finds nothing registers with every
//!   partition, each in the same critical section that found it empty, so
//!   a publish to any partition wakes it; [`MergedWaiter`] holds one
//!   [`memq_core::Waiter`] per partition for hand-written futures built on
//!   [`MergedCursor::poll_recv`].
//!
//! # Cancellation
//!
//! Every receive future is cancel safe: messages leave a partition cursor
//! only in the poll that completes the future, and a dropped future
//! withdraws its registrations. Dropping [`Publish`] before it completes
//! publishes nothing ([`Publish::take_value`] recovers the message).
//! Dropping [`PublishBatch`] part-way may leave a prefix of its shares
//! published; [`PublishBatch::take_unpublished`] and
//! [`PublishBatch::published`] say exactly what was and was not.
//!
//! # Retention, closing and stats
//!
//! Limits in the [`TopicConfig`](memq_core::TopicConfig) apply to each
//! partition: `max_messages(Some(1000))` over 4 partitions retains up to
//! 4000 messages. [`PartitionedTopic::close`] closes every partition;
//! dropping the last handle does too. [`PartitionedTopic::partition_stats`],
//! [`PartitionedTopic::all_partition_stats`] and [`PartitionedTopic::stats`]
//! are plain synchronous calls that never wait for publishers and need no
//! runtime.

#![warn(missing_docs)]

/// The most partitions a partitioned topic may have (as over Redis): each
/// is a topic of its own, made with the partitioned topic.
pub const MAX_PARTITIONS: usize = 1 << 16;

mod batch;
mod error;
mod merged;
mod murmur2;
mod routing;
mod stats;
mod topic;

pub use batch::{BatchReceipt, PublishBatch};
pub use error::{
    ConfigError, PartitionOutOfRange, PublishBatchError, PublishError, RecvError, RouteError, SubscribeError,
    TryRecvError,
};
pub use merged::{MergedCursor, MergedWaiter, Recv, RecvBatch};
pub use murmur2::{kafka_partition, murmur2};
pub use routing::{Router, RouterState, Routing};
pub use stats::PartitionedStats;
pub use topic::{PartitionedTopic, Publish};
