//! Consumer groups for tokio-memq: members that compete for the messages
//! of a topic (or of the partitions of a partitioned topic), sharing one
//! position and one committed offset per partition, with optional manual
//! acknowledgement, redelivery and dead letters.
//!
//! Most users want the facade, `tokio-memq`
//! (`MessageQueue::subscriber_group_with_options`); use this crate
//! directly to build groups over your own `memq_core::Topic`s.
//!
//! # Example
//!
//! ```
//! use memq_core::{StartFrom, Topic, TopicConfig};
//! use memq_groups::{AckMode, Group, GroupConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let topic = Topic::new(TopicConfig::default()).unwrap();
//! let config = GroupConfig::default().ack(AckMode::Manual);
//! let group = Group::new("billing", vec![topic.clone()], config).unwrap();
//! let worker = group.join(StartFrom::Committed).unwrap();
//!
//! topic.publish("invoice-1").await.unwrap();
//! let job = worker.recv().await.unwrap();
//! assert_eq!(group.stats().pending, 1);
//! worker.ack(job.partition, job.offset).unwrap();
//! assert_eq!(group.stats().committed, vec![Some(0)]);
//! # }
//! ```
//!
//! # Delivery
//!
//! Every receive of every member (`recv`, `try_recv`, batches, and the
//! facade's typed and stream variants built on them) claims messages under
//! the group's lock, so each message goes to exactly one member while no
//! member fails. Redeliveries are handed out before new messages.
//!
//! # Waiting
//!
//! Members waiting in `recv` are served in the order they began waiting:
//! a publish wakes the member that has waited longest, and the message is
//! kept for it until it runs (a member that receives and comes straight
//! back waits its turn, so members that do little work per message share
//! it evenly instead of the quickest winning every race). A receive polled
//! again before it was woken keeps its place; a member that received, or
//! was woken, waits at the back. A message wakes one member, not all (a
//! burst wakes one per message, as many as wait); one that is woken and
//! then dropped (cancelled) hands its wake-up on. A woken member that is
//! slow to run (a task busy elsewhere) holds back only the message kept
//! for it: later messages wake the members still waiting. A member
//! begins waiting when its receive's claim runs under the group's lock;
//! a receive that finds the lock taken yields its task and tries again
//! (its worker thread runs other tasks meanwhile instead of sleeping on
//! the lock), so it takes its place when it gets the lock.
//! Nothing a group waits for is lost: whenever a member waits, the group
//! is registered with every topic that member may read, or every message
//! there is kept for a member woken for it that may read it, and a
//! member that may take a redelivery has been woken; a rebalance or a
//! member leaving releases what was kept for a member that can no longer
//! take it. Closing the topics wakes every waiting member, and each gets
//! [`RecvError::Closed`] once the group has handed out everything.
//!
//! # Acknowledgement
//!
//! With [`AckMode::Auto`] (the default) a message counts as processed when
//! it is handed out, and the committed offset follows. With
//! [`AckMode::Manual`] it is pending until [`Member::ack`]; the committed
//! offset is just below the lowest unacknowledged one, or, with none
//! below it, just below the group's position (it follows the position
//! whenever the group reads on, whether it hands messages out or passes
//! over expired messages, dead letters or a gap it reports, but not on a
//! seek). A member that is dropped, or that neither receives nor
//! acknowledges for
//! [`GroupConfig::ack_timeout`], loses its pending messages to the other
//! members (it gets [`AckError::NotOwned`] if it acknowledges one later).
//! A member waiting then is woken when they become claimable, whether
//! they were handed out before it began waiting or while it waited.
//! Each redelivery counts; a message delivered
//! [`GroupConfig::max_deliveries`] times goes to the dead-letter sink.
//!
//! Expired messages are never delivered, redeliveries included: a pending
//! message that has reached its topic's TTL
//! ([`TopicConfig::ttl`](memq_core::TopicConfig::ttl), by its publish
//! time) when it would be handed out again is dropped instead (nor is it
//! dead-lettered), counted in [`GroupStats::expired`], and the committed
//! offset moves past it as for an acknowledgement. The member holding it
//! may still acknowledge it until then.
//!
//! The group holds at most [`GroupConfig::max_pending`] messages pending
//! (10,000 by default). At the limit members get no new messages
//! (redeliveries still flow, and a take-over or a member leaving makes
//! its messages redeliveries) and a receive waits until an
//! acknowledgement, an expiry or a dead letter taken makes room (or the
//! last member leaving empties the group). The group's position stops meanwhile, so
//! the messages it holds stay bounded on an evicting topic, and a topic
//! with [`Overflow::Block`](memq_core::Overflow::Block) holds its
//! publishers back.
//!
//! # Dead letters
//!
//! A dead letter ([`DeadLetter`], with its [`DeadLetterReason`]) goes to the
//! group's [`DeadLetterSink`] with no lock held: before the receive that
//! gave up on it hands out new messages. The sink may refuse it (a full or
//! closed dead-letter topic) by handing it back; it then waits in the
//! group, counted in [`GroupStats::pending`] and
//! [`GroupStats::dead_letters_waiting`], the committed offset stays below
//! it, and it is offered again at the start of later receives and after
//! acknowledgements (one offer per occasion while the sink keeps
//! refusing), and every 100 ms by a member waiting
//! while such dead letters hold the group at `max_pending`. It stays across the last
//! member leaving. A dead letter is never handed to a member again: a
//! group that reads it again (a rejoin from the committed offset, a seek
//! back) passes over it, while it waits and after the sink took it,
//! until the committed offset passes it (only a seek below the committed
//! offset hands out again what was processed, dead letters included). A
//! sink that panics leaves the dead letter waiting (it is offered again)
//! and the panic goes on to the receive or acknowledgement that called
//! it. [`GroupStats::dead_lettered`] counts those the sink took. A group
//! without a sink drops its dead letters, counted there.
//!
//! # Commits and positions
//!
//! Committed offsets are stored in the topics as the commits of the
//! consumer named like the group, so they survive every member leaving. A
//! group with no members holds no cursor: it does not hold back publishers
//! of a topic with backpressure. Messages handed out but not acknowledged
//! when the last member leaves are above the committed offset, so the next
//! member to join with [`StartFrom::Committed`](memq_core::StartFrom)
//! receives them again (with their delivery count reset); those evicted
//! meanwhile are reported as [`RecvError::Lagged`]. Where the group had
//! committed nothing yet, the [`Group`] handle remembers where they start
//! (a commit cannot say "nothing processed"), so that holds while the
//! handle lives.
//!
//! # Falling behind
//!
//! When a group falls behind an evicting topic, the member whose receive
//! finds the gap gets [`RecvError::Lagged`] with the exact number of
//! messages skipped, and the group continues at the oldest retained
//! message (the reset policy is "earliest, reported"). A gap found while
//! other messages were handed out is reported by the group's next
//! receive; if the last member leaves first, the rejoined group finds it
//! again from its restart position, except where the skipped messages
//! have expired by then (expired messages are skipped silently).
//!
//! # Partitions
//!
//! Over several partitions, [`Assignment::Shared`] lets every member take
//! from every partition; [`Assignment::Exclusive`] gives each partition to
//! one member at a time, rebalanced when members join or leave, so the
//! messages of one partition (one key) are processed in order by one
//! member. On a rebalance, the pending messages of a partition that
//! changed owner are redelivered to the new owner before anything newer.

#![warn(missing_docs)]

mod config;
mod error;
mod group;
mod member;
mod stats;
mod sync;
mod wait;

pub use config::{AckMode, Assignment, GroupConfig};
pub use error::{AckError, GroupError, OutOfRange, RecvError, TryRecvError};
pub use group::{Claimed, DeadLetter, DeadLetterReason, DeadLetterSink};
pub use member::{Group, Member, MemberWaiter};
pub use stats::GroupStats;
