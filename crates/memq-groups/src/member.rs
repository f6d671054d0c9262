//! A member of a group, and its receive futures.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use memq_core::{RecvError, StartFrom, Topic, TryRecvError};
use tokio::time::Instant;

use crate::config::GroupConfig;
use crate::error::{AckError, GroupError};
use crate::group::{Claimed, Claims, DeadLetterSink, Shared};
use crate::stats::GroupStats;

/// A consumer group: members that compete for the messages of one or more
/// topics (the partitions of a partitioned topic), sharing one position
/// and one committed offset per partition.
///
/// Cheap to clone. The group's committed offsets are stored in its topics
/// as commits of the consumer named like the group, so they outlive the
/// group's members and this handle: a member that joins later with
/// [`StartFrom::Committed`] resumes after them.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{Group, GroupConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let group = Group::new("workers", vec![topic.clone()], GroupConfig::default()).unwrap();
/// let a = group.join(StartFrom::Earliest).unwrap();
/// let b = group.join(StartFrom::Earliest).unwrap();
/// for job in 0..4 { topic.try_publish(job).unwrap(); }
/// let mut seen = Vec::new();
/// while let Ok(m) = a.try_recv() { seen.push(m.value); if let Ok(m) = b.try_recv() { seen.push(m.value) } }
/// seen.sort();
/// assert_eq!(seen, vec![0, 1, 2, 3], "each job went to exactly one member");
/// ```
pub struct Group<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Group<T> {
    fn clone(&self) -> Self {
        Group {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<T: Clone + Send + 'static> Group<T> {
    /// A group named `name` reading `sources` (one topic, or the
    /// partitions of a partitioned topic, in partition order).
    ///
    /// # Errors
    ///
    /// [`GroupError::NoSources`] for an empty `sources`,
    /// [`GroupError::InvalidConfig`] for a `max_pending` of `Some(0)`, and
    /// with manual acknowledgement a `max_deliveries` of `Some(0)` or an
    /// `ack_timeout` of zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig, GroupError};
    ///
    /// let topic: Topic<u32> = Topic::new(TopicConfig::default()).unwrap();
    /// let group = Group::new("billing", vec![topic.clone()], GroupConfig::default()).unwrap();
    /// assert_eq!((group.name(), group.partitions()), ("billing", 1));
    ///
    /// let none = Group::<u32>::new("empty", Vec::new(), GroupConfig::default());
    /// assert_eq!(none.unwrap_err(), GroupError::NoSources);
    /// let zero = GroupConfig::default().max_pending(Some(0));
    /// assert!(matches!(Group::new("g", vec![topic.clone()], zero), Err(GroupError::InvalidConfig(_))));
    /// let manual = GroupConfig::default().ack(memq_groups::AckMode::Manual);
    /// let never = manual.clone().max_deliveries(Some(0));
    /// assert!(matches!(Group::new("g", vec![topic.clone()], never), Err(GroupError::InvalidConfig(_))));
    /// let instant = manual.ack_timeout(Some(std::time::Duration::ZERO));
    /// assert!(matches!(Group::new("g", vec![topic], instant), Err(GroupError::InvalidConfig(_))));
    /// ```
    pub fn new(name: &str, sources: Vec<Topic<T>>, config: GroupConfig) -> Result<Self, GroupError> {
        Ok(Group {
            shared: Shared::new(name, sources, config, None)?,
        })
    }

    /// Like [`new`](Self::new), with a sink for messages that reach
    /// [`GroupConfig::max_deliveries`]. The sink runs with no lock held; a
    /// dead letter it hands back waits in the group and is offered again
    /// (see [`DeadLetterSink`]).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// See [`DeadLetter`](crate::DeadLetter).
    pub fn with_dead_letters(
        name: &str,
        sources: Vec<Topic<T>>,
        config: GroupConfig,
        sink: DeadLetterSink<T>,
    ) -> Result<Self, GroupError> {
        Ok(Group {
            shared: Shared::new(name, sources, config, Some(sink))?,
        })
    }

    /// Adds a member. `start` places the group's position when it has no
    /// live member (it is ignored otherwise: members share one position);
    /// [`StartFrom::Committed`] resumes after the group's last commit.
    ///
    /// # Errors
    ///
    /// [`GroupError::OutOfRange`] for a start offset outside a partition's
    /// window, [`GroupError::Closed`] when a topic is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// for i in 0..3 { topic.try_publish(i).unwrap(); }
    /// let group = Group::new("audit", vec![topic.clone()], GroupConfig::default()).unwrap();
    /// let first = group.join(StartFrom::Earliest).unwrap();
    /// assert_eq!(first.try_recv().unwrap().value, 0);
    /// // A member is live: the position is shared and `Latest` is ignored.
    /// let second = group.join(StartFrom::Latest).unwrap();
    /// assert_eq!(second.try_recv().unwrap().value, 1);
    ///
    /// drop((first, second));
    /// // Nobody is left; a new member resumes after the group's last commit.
    /// let again = group.join(StartFrom::Committed).unwrap();
    /// assert_eq!(again.try_recv().unwrap().value, 2);
    /// ```
    pub fn join(&self, start: StartFrom) -> Result<Member<T>, GroupError> {
        let id = self.shared.join(start)?;
        Ok(Member {
            shared: self.shared.clone(),
            id,
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many partitions the group reads.
    pub fn partitions(&self) -> usize {
        self.shared.sources.len()
    }

    /// The group's settings.
    pub fn config(&self) -> &GroupConfig {
        &self.shared.config
    }

    /// The group's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{AckMode, Group, GroupConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let config = GroupConfig::default().ack(AckMode::Manual);
    /// let group = Group::new("reports", vec![topic.clone()], config).unwrap();
    /// let member = group.join(StartFrom::Earliest).unwrap();
    /// for i in 0..4 { topic.try_publish(i).unwrap(); }
    /// let msg = member.try_recv().unwrap();
    ///
    /// let stats = group.stats();
    /// assert_eq!((stats.members, stats.pending, stats.lag), (1, 1, 4));
    /// member.ack(msg.partition, msg.offset).unwrap();
    /// let stats = group.stats();
    /// assert_eq!((stats.pending, stats.lag, stats.committed), (0, 3, vec![Some(0)]));
    /// ```
    pub fn stats(&self) -> GroupStats {
        self.shared.stats()
    }

    /// Writes the group's latest automatic commits to its topics now.
    ///
    /// With [`AckMode::Auto`](crate::AckMode::Auto) a group records what it
    /// hands out and writes the commit to the topics when a member waits
    /// or leaves (and before [`stats`](Self::stats), seeks and explicit
    /// commits), not on every receive. Readers of the topics' own
    /// consumer stats call this first to see the latest position.
    pub fn flush_commits(&self) {
        self.shared.flush_commits();
    }
}

/// One member of a [`Group`]. Every message the group reads goes to
/// exactly one member while no member fails, whichever receive method
/// each member uses.
///
/// Dropping a member leaves the group; with [`AckMode::Manual`](crate::AckMode::Manual)
/// the messages it had not acknowledged go to other members.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{AckMode, Group, GroupConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let config = GroupConfig::default().ack(AckMode::Manual);
/// let group = Group::new("jobs", vec![topic.clone()], config).unwrap();
/// let a = group.join(StartFrom::Earliest).unwrap();
/// let b = group.join(StartFrom::Earliest).unwrap();
/// topic.try_publish("job").unwrap();
///
/// let first = a.try_recv().unwrap();
/// assert!(b.try_recv().is_err(), "the job is pending with `a`");
/// drop(a); // leaves without acknowledging
/// let again = b.try_recv().unwrap();
/// assert_eq!((again.offset, again.value, again.deliveries), (first.offset, "job", 2));
/// assert_eq!(group.stats().members, 1);
/// ```
pub struct Member<T: Clone + Send + 'static> {
    shared: Arc<Shared<T>>,
    id: u64,
}

impl<T: Clone + Send + 'static> fmt::Debug for Member<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("group", &self.shared.name)
            .field("id", &self.id)
            .finish()
    }
}

impl<T: Clone + Send + 'static> Drop for Member<T> {
    fn drop(&mut self) {
        self.shared.leave(self.id);
    }
}

/// A member's registration while it waits: its place among the members
/// parked on the group (which hears of each partition's news through its
/// own registration with the topic), and a timer for the moment an idle
/// member's messages become claimable.
///
/// Belongs to the group of the member it was first polled with; polled
/// with a member of another group, it is reset (its registration with
/// the first group released) and starts afresh.
pub struct MemberWaiter<T: Clone + Send + 'static> {
    shared: Option<Arc<Shared<T>>>,
    pub(crate) group_key: Option<usize>,
    /// When the messages of an idle member become claimable.
    pub(crate) deadline: Option<Instant>,
    /// When to offer again the dead letters that hold the group at
    /// `max_pending`.
    pub(crate) retry: Option<Instant>,
    sleep: Option<memq_core::Delay>,
    /// Yields in a row so far (see `claim`): not 0 after a claim that
    /// found the group's lock taken and yielded (its task is woken to try
    /// again), 0 after one that got the lock.
    pub(crate) yields: u8,
}

impl<T: Clone + Send + 'static> MemberWaiter<T> {
    /// A waiter registered nowhere yet.
    pub fn new() -> Self {
        MemberWaiter {
            shared: None,
            group_key: None,
            deadline: None,
            retry: None,
            sleep: None,
            yields: 0,
        }
    }

    /// Releases a registration with a group other than `shared`'s.
    /// (A waiter takes a handle on its group only once it holds a slot
    /// there, see [`Hold`]: a receive that never parks costs no reference
    /// count, which every member of the group would share.)
    fn bind(&mut self, shared: &Arc<Shared<T>>) {
        if self.shared.as_ref().is_some_and(|s| !Arc::ptr_eq(s, shared)) {
            // Dropping the old one releases its slot in its group.
            drop(std::mem::take(self));
        }
    }
}

/// Around a claim: gives the waiter a handle on the group once it holds
/// a slot there, whether the claim returns or unwinds.
struct Hold<'a, T: Clone + Send + 'static> {
    waiter: &'a mut MemberWaiter<T>,
    shared: &'a Arc<Shared<T>>,
}

impl<T: Clone + Send + 'static> Drop for Hold<'_, T> {
    fn drop(&mut self) {
        if self.waiter.group_key.is_some() && self.waiter.shared.is_none() {
            self.waiter.shared = Some(self.shared.clone());
        }
    }
}

impl<T: Clone + Send + 'static> Default for MemberWaiter<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + 'static> Drop for MemberWaiter<T> {
    fn drop(&mut self) {
        if let (Some(shared), Some(key)) = (&self.shared, self.group_key) {
            shared.release_waiter(key);
        }
    }
}

impl<T: Clone + Send + 'static> fmt::Debug for MemberWaiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberWaiter")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> Member<T> {
    /// Whether this member may receive from `partition` now: always in a
    /// group whose members share the partitions; in an exclusive group,
    /// while it owns the partition (a rebalance may give it to another
    /// member).
    pub fn may_read(&self, partition: usize) -> bool {
        self.shared.may_read(self.id, partition)
    }

    /// The settings of this member's group.
    pub fn config(&self) -> &GroupConfig {
        &self.shared.config
    }

    /// Receives the next message if one is available now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], `Lagged(n)` when the group fell behind and
    /// `n` messages were evicted unread, `Closed` when the topics are
    /// closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig, TryRecvError};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
    /// let member = group.join(StartFrom::Earliest).unwrap();
    /// assert_eq!(member.try_recv().unwrap_err(), TryRecvError::Empty);
    ///
    /// for i in 0..3 { topic.try_publish(i).unwrap(); } // evicts offset 0
    /// assert_eq!(member.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    /// assert_eq!(member.try_recv().unwrap().offset, 1);
    /// ```
    pub fn try_recv(&self) -> Result<Claimed<T>, TryRecvError> {
        let mut out = None;
        match self.shared.claim(self.id, 1, &mut out, None) {
            Poll::Ready(Ok(_)) => out.ok_or(TryRecvError::Empty),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// Appends up to `max` available messages to `out`.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), only when nothing was appended.
    pub fn try_recv_batch(&self, max: usize, out: &mut Vec<Claimed<T>>) -> Result<usize, TryRecvError> {
        match self.shared.claim(self.id, max, out, None) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// Waits for the next message for this member. Cancel safe. Waiting
    /// members are served in the order they began waiting.
    ///
    /// # Errors
    ///
    /// As [`recv_batch`](Self::recv_batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig, RecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topic = Topic::new(TopicConfig::default())?;
    /// let group = Group::new("mailer", vec![topic.clone()], GroupConfig::default())?;
    /// let member = group.join(StartFrom::Latest)?;
    /// let t = topic.clone();
    /// tokio::spawn(async move { t.publish("hello").await });
    ///
    /// let msg = member.recv().await?; // waits for the publish
    /// assert_eq!((msg.partition, msg.offset, msg.value), (0, 0, "hello"));
    /// topic.close();
    /// assert_eq!(member.recv().await.unwrap_err(), RecvError::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&self) -> Result<Claimed<T>, RecvError> {
        let mut waiter = MemberWaiter::new();
        poll_fn(|cx| self.poll_recv(cx, &mut waiter)).await
    }

    /// Polls for the next message; the building block of
    /// [`recv`](Self::recv). `waiter` as for
    /// [`poll_recv_batch`](Self::poll_recv_batch).
    ///
    /// # Panics
    ///
    /// As [`poll_recv_batch`](Self::poll_recv_batch).
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut MemberWaiter<T>,
    ) -> Poll<Result<Claimed<T>, RecvError>> {
        let mut out = None;
        match std::task::ready!(self.poll_claim(cx, waiter, 1, &mut out)) {
            Ok(_) => Poll::Ready(out.ok_or(RecvError::Closed)),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Waits until at least one message is available for this member, then
    /// appends up to `max` to `out`. Cancel safe: messages are handed over
    /// only in the poll that completes the future.
    ///
    /// # Errors
    ///
    /// `Lagged(n)` when the group fell behind (the next call continues
    /// with the oldest retained message), `Closed` when the topics are
    /// closed and drained.
    ///
    /// # Panics
    ///
    /// Inside a Tokio runtime built without the time driver, when it
    /// waits on a timer: with an ack timeout configured while a message is
    /// pending with another member (the wait for an idle member's
    /// messages), or while dead letters the sink refused hold the group at
    /// [`GroupConfig::max_pending`] (a waiting member offers them again
    /// every 100 ms). Outside a runtime these timers run on memq-core's
    /// timer thread ([`memq_core::Delay`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topic = Topic::new(TopicConfig::default())?;
    /// let group = Group::new("indexer", vec![topic.clone()], GroupConfig::default())?;
    /// let member = group.join(StartFrom::Earliest)?;
    /// topic.publish_batch(vec![1, 2, 3]).await?;
    ///
    /// let mut batch = Vec::new();
    /// assert_eq!(member.recv_batch(2, &mut batch).await?, 2);
    /// assert_eq!(member.recv_batch(10, &mut batch).await?, 1); // does not wait for more
    /// let values: Vec<i32> = batch.iter().map(|m| m.value).collect();
    /// assert_eq!(values, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_batch(&self, max: usize, out: &mut Vec<Claimed<T>>) -> Result<usize, RecvError> {
        let mut waiter = MemberWaiter::new();
        poll_fn(|cx| self.poll_recv_batch(cx, &mut waiter, max, out)).await
    }

    /// Polls for a batch; the building block of the receive futures.
    ///
    /// `waiter` holds this receive's place among the waiting members: keep
    /// it (pinned or not) across the polls of one receive, and drop it
    /// when the receive is abandoned (that hands a wake-up it had on to
    /// another member). Polled with a member of another group, it is
    /// reset first.
    ///
    /// `Pending` does not always mean that nothing is there: a poll that
    /// finds the group's lock held on another thread wakes its task and
    /// returns `Pending`, to try again at the task's next turn instead of
    /// holding up its thread (a few times in a row at most; then it waits
    /// for the lock). To look without waiting, use
    /// [`try_recv_batch`](Self::try_recv_batch).
    ///
    /// # Panics
    ///
    /// As [`recv_batch`](Self::recv_batch): inside a Tokio runtime built
    /// without the time driver, when it waits on a timer (for an idle
    /// member's messages, or to offer refused dead letters again).
    pub fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut MemberWaiter<T>,
        max: usize,
        out: &mut Vec<Claimed<T>>,
    ) -> Poll<Result<usize, RecvError>> {
        self.poll_claim(cx, waiter, max, out)
    }

    /// A receive of up to `max` messages into `out`.
    fn poll_claim(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut MemberWaiter<T>,
        max: usize,
        out: &mut impl Claims<T>,
    ) -> Poll<Result<usize, RecvError>> {
        waiter.bind(&self.shared);
        loop {
            let claimed = {
                // Holds the group once the waiter has a slot there, even
                // if the claim panics (user code: a sink, a `Drop`), so
                // that dropping the waiter releases the slot.
                let hold = Hold {
                    waiter: &mut *waiter,
                    shared: &self.shared,
                };
                self.shared
                    .claim(self.id, max, out, Some((cx, &mut *hold.waiter)))
            };
            match claimed {
                Poll::Ready(Ok(n)) => return Poll::Ready(Ok(n)),
                Poll::Ready(Err(TryRecvError::Lagged(n))) => return Poll::Ready(Err(RecvError::Lagged(n))),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(RecvError::Closed)),
                // Tries again at its task's next turn, already woken for
                // it (the claim it retries does what a timer due now would
                // wake it for).
                Poll::Pending if waiter.yields > 0 => return Poll::Pending,
                Poll::Pending => {}
            }
            let retry = waiter.retry;
            let deadline = match (waiter.deadline, retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(deadline) = deadline else {
                waiter.sleep = None;
                return Poll::Pending;
            };
            // A timer of the runtime polling now (outside a runtime, the
            // timer thread of memq-core): one kept from an earlier poll may
            // belong to another runtime (a stream moved between runtimes),
            // which panics once that runtime is gone.
            let sleep = waiter.sleep.insert(memq_core::Delay::until(deadline));
            if sleep.poll_elapsed(cx).is_pending() {
                return Poll::Pending;
            }
            // An idle member's messages are claimable now: claim again.
            waiter.sleep = None;
        }
    }

    /// Acknowledges a message this member received (manual mode).
    ///
    /// # Errors
    ///
    /// [`AckError::NotOwned`] when the message is not pending with this
    /// member (acknowledged already, taken over after this member was idle
    /// past the ack timeout, dead-lettered); [`AckError::AutoAck`] in auto
    /// mode; [`AckError::NoSuchPartition`] for a partition the group does
    /// not read.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{AckError, AckMode, Group, GroupConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let config = GroupConfig::default().ack(AckMode::Manual);
    /// let group = Group::new("payments", vec![topic.clone()], config).unwrap();
    /// let member = group.join(StartFrom::Earliest).unwrap();
    /// for i in 0..2 { topic.try_publish(i).unwrap(); }
    /// let (a, b) = (member.try_recv().unwrap(), member.try_recv().unwrap());
    ///
    /// member.ack(b.partition, b.offset).unwrap();
    /// assert_eq!(group.stats().committed, vec![None], "offset 0 is still pending");
    /// member.ack(a.partition, a.offset).unwrap();
    /// assert_eq!(group.stats().committed, vec![Some(1)]);
    /// assert_eq!(member.ack(0, 0), Err(AckError::NotOwned { partition: 0, offset: 0 }));
    /// ```
    pub fn ack(&self, partition: usize, offset: u64) -> Result<(), AckError> {
        self.shared.ack(self.id, partition, offset)
    }

    /// Gives a message this member received back to the group at once
    /// (manual mode): it is delivered again, to this member or another,
    /// with its delivery count raised, or becomes a dead letter at the
    /// group's delivery limit. The negative acknowledgement, for work that
    /// failed and should be retried now rather than after the ack timeout.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{AckMode, Group, GroupConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topic = Topic::new(TopicConfig::default())?;
    /// let group = Group::new("workers", vec![topic.clone()], GroupConfig::default().ack(AckMode::Manual))?;
    /// let member = group.join(StartFrom::Earliest)?;
    /// topic.publish("job").await?;
    /// let first = member.recv().await?;
    /// member.nack(first.partition, first.offset)?;
    /// let again = member.recv().await?;
    /// assert_eq!((again.offset, again.deliveries), (0, 2));
    /// member.ack(again.partition, again.offset)?;
    /// # Ok(()) }
    /// ```
    pub fn nack(&self, partition: usize, offset: u64) -> Result<(), AckError> {
        self.shared.nack(self.id, partition, offset)
    }

    /// Gives messages this member received and did not hand on back to
    /// the group (automatic mode): the next member that looks receives
    /// them, before new ones, with the same delivery count. For a wrapper
    /// that received more than it handed on (a batch it stopped at a value
    /// that failed to decode) and is going away; an automatic group counts
    /// what it hands out as processed, so they would be lost otherwise. If
    /// every member leaves before one takes them, the group's commit moves
    /// back to the first of them: a rejoin from the commit
    /// ([`StartFrom::Committed`](memq_core::StartFrom::Committed)) reads
    /// them again, and what followed them too (from offset 0, the commit
    /// is forgotten: nothing there is processed). Given back messages
    /// expire with the topic's TTL, as it would have dropped them.
    ///
    /// In manual mode it does nothing: what a member received is pending
    /// to it, and goes back to the group when the member leaves or its ack
    /// timeout runs out.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let group = Group::new("workers", vec![topic.clone()], GroupConfig::default()).unwrap();
    /// let (leaving, staying) = (group.join(StartFrom::Earliest).unwrap(), group.join(StartFrom::Earliest).unwrap());
    /// for i in 0..3 { topic.try_publish(i).unwrap(); }
    /// let mut batch = Vec::new();
    /// leaving.try_recv_batch(3, &mut batch).unwrap();
    /// let unused = batch.split_off(1); // only the first was handled
    /// leaving.give_back(unused);
    /// drop(leaving);
    /// let again = staying.try_recv().unwrap();
    /// assert_eq!((again.offset, again.deliveries, again.value), (1, 1, 1));
    /// assert_eq!(staying.try_recv().unwrap().offset, 2);
    /// ```
    pub fn give_back(&self, claims: Vec<Claimed<T>>) {
        self.shared.give_back(self.id, claims);
    }

    /// Restarts this member's [`ack_timeout`](crate::GroupConfig::ack_timeout)
    /// (manual mode): for long work, call it before the timeout runs out
    /// so that the messages it holds are not handed to other members. Any
    /// receive or acknowledgement restarts it too.
    pub fn keep_alive(&self) {
        self.shared.keep_alive(self.id);
    }

    /// Records that everything up to and including `offset` in `partition`
    /// is processed. In manual mode this acknowledges every message up to
    /// `offset` that this member holds.
    ///
    /// # Errors
    ///
    /// [`AckError::NoSuchPartition`] for a partition the group does not
    /// read, [`AckError::NotPublished`] for an offset not yet published.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{AckError, AckMode, Group, GroupConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let config = GroupConfig::default().ack(AckMode::Manual);
    /// let group = Group::new("exports", vec![topic.clone()], config).unwrap();
    /// let member = group.join(StartFrom::Earliest).unwrap();
    /// for i in 0..3 { topic.try_publish(i).unwrap(); }
    /// let mut got = Vec::new();
    /// assert_eq!(member.try_recv_batch(3, &mut got).unwrap(), 3);
    ///
    /// member.commit(0, 2).unwrap(); // acknowledges all three
    /// let stats = group.stats();
    /// assert_eq!((stats.pending, stats.committed), (0, vec![Some(2)]));
    /// assert_eq!(member.commit(0, 3), Err(AckError::NotPublished { partition: 0, offset: 3, high: 3 }));
    /// assert_eq!(member.commit(1, 0), Err(AckError::NoSuchPartition { partition: 1 }));
    /// ```
    pub fn commit(&self, partition: usize, offset: u64) -> Result<(), AckError> {
        self.shared.commit(self.id, partition, offset)
    }

    /// Moves the group's position in `partition`: the next message handed
    /// out from it is `offset`. Manual acknowledgement: messages pending
    /// with members stay pending (a seek back hands them out again as
    /// new). Either mode: those queued for redelivery (nacked, left by a
    /// member, or given back) at or past `offset` go out as new instead,
    /// once. Automatic mode: the committed position, which moved past
    /// messages as they were handed out, moves back below the first of
    /// those given back (nobody has handled them), so that if every member
    /// leaves before one reads them, a rejoin from the commit still does.
    ///
    /// # Errors
    ///
    /// [`GroupError::OutOfRange`] outside the retained window,
    /// [`GroupError::NoSuchPartition`] for a partition the group does not
    /// read.
    pub fn seek(&self, partition: usize, offset: u64) -> Result<(), GroupError> {
        self.shared.seek(partition, offset)
    }

    /// Moves the group's position in every partition to `offset`, all or
    /// nothing: the next message handed out from each partition is
    /// `offset` (the same offset in every partition, as when replaying a
    /// partitioned topic from a point all its partitions share).
    ///
    /// Every partition's window is checked first; if one does not hold
    /// `offset`, no partition moves. Once checked, the moves cannot fail:
    /// a message at or past `offset` that a partition evicts meanwhile is
    /// reported to the next receive as [`TryRecvError::Lagged`] (or
    /// [`RecvError::Lagged`]), as a gap is. Otherwise as
    /// [`seek`](Self::seek) in each partition: messages pending with
    /// members stay pending (a seek back hands them out again as new),
    /// those queued for redelivery at or past `offset` go out as new
    /// instead, once, and waiting members are woken.
    ///
    /// # Errors
    ///
    /// [`GroupError::OutOfRange`] naming the first partition (in index
    /// order) whose retained window `low..=high` does not hold `offset`;
    /// then nothing moved.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    /// use memq_groups::{Group, GroupConfig, GroupError};
    ///
    /// let parts: Vec<Topic<u32>> = (0..2).map(|_| Topic::new(TopicConfig::default()).unwrap()).collect();
    /// let group = Group::new("replay", parts.clone(), GroupConfig::default()).unwrap();
    /// for i in 0..4 {
    ///     parts[0].try_publish(i).unwrap();
    /// }
    /// parts[1].try_publish(10).unwrap();
    /// let member = group.join(StartFrom::Latest).unwrap();
    /// assert_eq!((member.position(0), member.position(1)), (Some(4), Some(1)));
    ///
    /// // Partition 1 holds offset 0 only (its next is 1): nothing moves.
    /// let Err(GroupError::OutOfRange { partition, range }) = member.seek_all(2) else {
    ///     panic!("partition 1 refuses offset 2")
    /// };
    /// assert_eq!((partition, range.low, range.high), (1, 0, 1));
    /// assert_eq!((member.position(0), member.position(1)), (Some(4), Some(1)));
    ///
    /// // Both hold offset 1.
    /// member.seek_all(1).unwrap();
    /// let mut replayed = Vec::new();
    /// while let Ok(m) = member.try_recv() {
    ///     replayed.push((m.partition, m.value));
    /// }
    /// replayed.sort();
    /// assert_eq!(replayed, vec![(0, 1), (0, 2), (0, 3)]);
    /// ```
    pub fn seek_all(&self, offset: u64) -> Result<(), GroupError> {
        self.shared.seek_all(offset)
    }

    /// The group's position in `partition`: the next new offset to hand out
    /// (messages queued for redelivery, after a nack or a take-over, are
    /// handed out before it).
    pub fn position(&self, partition: usize) -> Option<u64> {
        self.shared.position(partition)
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.shared.name
    }

    /// How many partitions the group reads.
    pub fn partitions(&self) -> usize {
        self.shared.sources.len()
    }

    /// The group's counters.
    pub fn stats(&self) -> GroupStats {
        self.shared.stats()
    }
}
