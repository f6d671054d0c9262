//! The shared state of a group and the claim that hands messages out.
//!
//! One mutex per group guards the cursors (one per partition), the
//! members, the pending messages, the redelivery queue and the dead
//! letters waiting for the sink. Every receive variant of every member
//! goes through [`Shared::claim`] under that lock, so a message can be
//! handed to one member only: duplicates inside a healthy group are
//! impossible by construction. The group lock may be held while a topic's
//! lock is taken (through a cursor), never the other way round.
//!
//! # Wake-ups
//!
//! The group registers with each partition's topic through one relay
//! waker per partition (`relay_waiters`), armed by a parking member's
//! claim in the same critical section that found the partition empty. The
//! rule that keeps wake-ups from being lost: whenever the group lock is
//! released, for every partition and every member parked that may read
//! it, the relay is armed, or every message there (up to the room under
//! `max_pending`) is owed to a member notified for it that may read it
//! (and will claim, or pass the notification on if its receive is
//! dropped), and a parked member that may take a redelivery has been
//! notified. [`Shared::restore`] re-establishes it at the end of every
//! claim, whether the member parks or not, and [`Shared::cover`] for one
//! partition: it notifies one parked member per message not yet owed to
//! someone (the longest waiting first), and, when everything there is
//! owed while members are still parked, arms the relay anyway by reading
//! the owed messages into the cursor's buffer first (`arm_ahead`), so
//! that a notified member that is slow to run holds up only the messages
//! kept for it, not the next publish. What disarms a relay, and what
//! restores the rule:
//!
//! - the topic firing it (a publish, closing): [`Shared::relay`] covers
//!   the partition (closing: wakes every parked member; in an exclusive
//!   group, while members are parked, `restore` keeps the relay of every
//!   partition not yet closed and drained armed, whoever owns it, and
//!   wakes them all once every partition is: a member is told `Closed`
//!   when the whole group has handed out everything, not only its own
//!   partitions);
//! - a claim taking messages through it: `restore` before it returns;
//! - the last member leaving drops the registrations with the cursors; a
//!   member parks again only through a claim, which arms them afresh;
//! - a group at `max_pending` leaves a relay that fired disarmed (no
//!   member may take what is there): whatever makes room (an ack, an
//!   expiry, a dead letter the sink takes) restores the rule. Dead letters
//!   the sink refused, holding the group at the limit, are offered again
//!   by a parked member's timer (`DEAD_LETTER_RETRY`).
//!
//! A member notified for a partition that a rebalance gives to another
//! member is owed nothing there any more (`Wakers::disown`), nor is a
//! member that left (`Wakers::forget`). Seeks, joins, leaves and
//! rebalances wake every parked member.
//!
//! With an ack timeout, nothing fires when an idle member's messages
//! become claimable: parked members wait on timers. A member parks with
//! its timer set for the earliest moment another member's pending
//! messages become claimable (`next_deadline`, recorded in `Wakers::arm`).
//! The rule: whenever the group lock is released, for every member
//! holding pending messages and parked members other than it, one of
//! those holds a timer due by that moment (a member woken and not yet run
//! counts as holding one: it claims, and parks again with a fresh
//! deadline). Moments never move earlier (activity only delays them), so
//! a timer stays early enough; what breaks the rule is a claim handing
//! messages out (a new moment, after members parked) and a timer lost
//! with its receive (it received instead of parking again, or was
//! dropped). [`Shared::cover_take_over`] restores it then, waking the
//! longest-waiting parked member other than the owner to arm a timer, and
//! nobody while a timer covers the moment (or without an ack timeout).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::sync::{Mutex, MutexGuard};
use memq_core::{Cursor, Delivered, OutOfRange, StartFrom, Topic, TryRecvError, Waiter};
use tokio::time::Instant;

use crate::config::{AckMode, Assignment, GroupConfig};
use crate::error::{AckError, GroupError};
use crate::member::MemberWaiter;
use crate::stats::GroupStats;
use crate::wait::{Notice, Wakers};

/// A message handed to one member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed<T> {
    /// The partition (index into the group's topics) it came from.
    pub partition: usize,
    /// Its offset in that partition.
    pub offset: u64,
    /// When it was published.
    pub timestamp: Instant,
    /// How many times it has been delivered, this time included.
    pub deliveries: u32,
    /// The message.
    pub value: T,
}

impl<T> Claimed<T> {
    /// Builds a claimed message, for other backends of a group (a queue
    /// over a network store) that hand messages on in this shape.
    ///
    /// ```
    /// let c = memq_groups::Claimed::new(0, 7, tokio::time::Instant::now(), 2, "payload");
    /// assert_eq!((c.offset, c.deliveries, c.value), (7, 2, "payload"));
    /// ```
    pub fn new(partition: usize, offset: u64, timestamp: Instant, deliveries: u32, value: T) -> Self {
        Claimed {
            partition,
            offset,
            timestamp,
            deliveries,
            value,
        }
    }

    /// A message a partition's cursor delivered, handed out for the first
    /// time.
    fn first(partition: usize, d: Delivered<T>) -> Self {
        Claimed::new(partition, d.offset, d.timestamp, 1, d.value)
    }
}

/// Why a message became a [`DeadLetter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// It was delivered [`GroupConfig::max_deliveries`] times without an
    /// acknowledgement.
    MaxDeliveries {
        /// The limit it reached.
        limit: u32,
    },
}

/// A message the group gave up on (see [`DeadLetterReason`]), handed to
/// the group's [`DeadLetterSink`].
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{AckMode, DeadLetter, DeadLetterReason, Group, GroupConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let dead: Arc<Mutex<Vec<DeadLetter<&str>>>> = Arc::default();
/// let to = dead.clone();
/// let config = GroupConfig::default().ack(AckMode::Manual).max_deliveries(Some(1));
/// let sink = Arc::new(move |d| Ok(to.lock().unwrap().push(d)));
/// let group = Group::with_dead_letters("jobs", vec![topic.clone()], config, sink).unwrap();
///
/// let worker = group.join(StartFrom::Earliest).unwrap();
/// let failing = group.join(StartFrom::Earliest).unwrap();
/// topic.try_publish("poison").unwrap();
/// assert_eq!(failing.try_recv().unwrap().value, "poison");
/// drop(failing); // never acknowledged: due for a second delivery
///
/// assert!(worker.try_recv().is_err(), "dead-lettered instead");
/// assert_eq!(group.stats().dead_lettered, 1);
/// let dead = dead.lock().unwrap();
/// assert_eq!((dead[0].offset, dead[0].value), (0, "poison"));
/// assert_eq!(dead[0].reason, DeadLetterReason::MaxDeliveries { limit: 1 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter<T> {
    /// The group's name.
    pub group: Arc<str>,
    /// The partition it came from.
    pub partition: usize,
    /// Its offset there.
    pub offset: u64,
    /// When it was published.
    pub timestamp: Instant,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// Why the group gave up on it.
    pub reason: DeadLetterReason,
    /// The message.
    pub value: T,
}

/// Where dead letters go (typically: publish to a dead-letter topic).
/// Called without any lock held.
///
/// `Ok(())` takes the dead letter. `Err` hands it back (the dead-letter
/// topic is full, or closed): the group keeps it, counted in
/// [`GroupStats::pending`] and [`GroupStats::dead_letters_waiting`], keeps
/// its committed position below it, and offers it again at the start of
/// later receives and after acknowledgements, so a dead letter is never
/// dropped silently. A sink that panics leaves the dead letter waiting
/// (the group keeps a copy while it is offered); the panic reaches the
/// receive or acknowledgement that called the sink.
pub type DeadLetterSink<T> = Arc<dyn Fn(DeadLetter<T>) -> Result<(), DeadLetter<T>> + Send + Sync>;

/// `count` offsets from `from` in `partition` that the group skipped
/// (evicted before it read them).
#[derive(Debug)]
struct Gap {
    partition: usize,
    from: u64,
    count: u64,
}

#[derive(Debug)]
struct Member {
    last_active: Instant,
}

#[derive(Debug)]
struct Pending<T> {
    /// `None` while queued for redelivery.
    owner: Option<u64>,
    deliveries: u32,
    timestamp: Instant,
    value: T,
}

type Key = (usize, u64);

/// How often a member waiting at [`GroupConfig::max_pending`] offers the
/// dead letters that hold the group there to the sink again.
pub(crate) const DEAD_LETTER_RETRY: Duration = Duration::from_millis(100);

struct State<T> {
    /// One per partition while the group has members; empty otherwise
    /// (then the group holds nothing back and keeps only its commits,
    /// which live in the topics as named-consumer commits).
    cursors: Vec<Cursor<T>>,
    members: BTreeMap<u64, Member>,
    next_member: u64,
    /// Partition owners under [`Assignment::Exclusive`].
    owners: Vec<Option<u64>>,
    /// Exclusive assignment with manual acks: members found holding
    /// messages past the ack timeout outside a receive (failed, as
    /// [`GroupConfig::ack_timeout`] says), left out of the assignment
    /// until their next receive.
    stalled: BTreeSet<u64>,
    pending: BTreeMap<Key, Pending<T>>,
    redeliver: BTreeSet<Key>,
    /// Dead letters the sink has not taken yet (`None` while one is being
    /// offered to it, with the lock released). They stay across the last
    /// member leaving; a rejoined cursor that reads one again skips it.
    dead: BTreeMap<Key, Option<DeadLetter<T>>>,
    /// Dead letters the sink took, above the committed offset of their
    /// partition: a cursor that reads one again (a rejoin from the
    /// committed offset, a seek back) passes over it, as over one
    /// waiting. Not pending; dropped once the commit passes them.
    taken: BTreeSet<Key>,
    /// Values removed under the lock (acknowledged, expired, passed
    /// over), dropped after it is released: their `Drop` is user code.
    garbage: Vec<T>,
    /// Gaps found while other messages were being handed out, reported
    /// (as one lag) by the next claim.
    gaps: Vec<Gap>,
    /// The last offset committed per partition by this group.
    committed: Vec<Option<u64>>,
    /// Manual mode, per partition with nothing committed: the lowest
    /// offset handed out and not acknowledged (or dead letter waiting)
    /// when the last member left, or the group's position then if lower.
    /// A commit cannot say "nothing processed" (there is no offset below
    /// the first), so a [`StartFrom::Committed`] rejoin starts here.
    resume: Vec<Option<u64>>,
    /// Auto-mode commits not yet written to the topics (they are written
    /// when a member waits or leaves, and before stats, seeks and explicit
    /// commits, instead of on every receive).
    unflushed: Vec<bool>,
    waiters: Wakers,
    /// The group's registration with each partition's topic, made through
    /// the partition's relay waker.
    relay_waiters: Vec<Waiter<T>>,
    /// Per partition: the relay is known to be armed. False whenever it
    /// may not be (it fired, or a claim took messages through it); a
    /// claim that does not park re-arms those with a member parked.
    armed: Vec<bool>,
    /// Where the next scan over partitions starts, for fairness.
    rr: usize,
    redeliveries: u64,
    dead_lettered: u64,
    expired: u64,
}

impl<T> State<T> {
    /// Records a gap of `k` offsets that partition `p`'s cursor has just
    /// stepped over: it now stands at the oldest retained message, just
    /// past the gap. Dead letters in that range, waiting for the sink or
    /// taken by it, are not lost: they are left out (the gap is recorded
    /// as the runs of offsets between them). Returns how many offsets it
    /// counts.
    fn gap_before(&mut self, p: usize, k: u64) -> u64 {
        let to = self.cursors[p].position();
        let mut from = to.saturating_sub(k);
        let mut counted = 0;
        let mut waiting: Vec<u64> = self.dead.range((p, from)..(p, to)).map(|(k, _)| k.1).collect();
        waiting.extend(self.taken.range((p, from)..(p, to)).map(|k| k.1));
        waiting.sort_unstable();
        for end in waiting.into_iter().chain(Some(to)) {
            if end > from {
                self.gaps.push(Gap {
                    partition: p,
                    from,
                    count: end - from,
                });
                counted += end - from;
            }
            from = end + 1;
        }
        counted
    }

    /// Whether a cursor reading `key` again passes over it: a dead letter
    /// waiting for the sink, or one it took that the commit has not
    /// passed yet.
    fn passed_over(&self, key: &Key) -> bool {
        self.dead.contains_key(key) || self.taken.contains(key)
    }

    /// Pending messages, dead letters waiting included: what
    /// [`GroupConfig::max_pending`] bounds.
    fn pending_count(&self) -> usize {
        self.pending.len() + self.dead.len()
    }

    /// The lowest offset of `partition` not processed: pending, or a dead
    /// letter waiting.
    fn lowest_unprocessed(&self, partition: usize) -> Option<u64> {
        let range = (partition, 0)..=(partition, u64::MAX);
        let pending = self.pending.range(range.clone()).next().map(|(k, _)| k.1);
        let dead = self.dead.range(range).next().map(|(k, _)| k.1);
        match (pending, dead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub(crate) struct Shared<T> {
    pub(crate) name: Arc<str>,
    pub(crate) sources: Vec<Topic<T>>,
    pub(crate) config: GroupConfig,
    sink: Option<DeadLetterSink<T>>,
    /// Each partition's TTL: pending messages that reach it are dropped
    /// instead of being handed out again.
    ttls: Vec<Option<Duration>>,
    state: Mutex<State<T>>,
    /// One per partition: wakes one eligible parked member when the
    /// partition's topic has news.
    relays: Vec<Waker>,
}

/// The waker a group registers with a partition's topic.
struct Relay<T> {
    group: Weak<Shared<T>>,
    partition: usize,
}

impl<T: Clone + Send + 'static> Wake for Relay<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(group) = self.group.upgrade() {
            group.relay(self.partition);
        }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("partitions", &self.sources.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Which members may act on `notice`: live ones, other than `except`,
/// that may read the partition.
fn eligibility<'a>(
    assignment: Assignment,
    members: &'a BTreeMap<u64, Member>,
    owners: &'a [Option<u64>],
    notice: Notice,
    except: Option<u64>,
) -> impl Fn(u64) -> bool + 'a {
    let owner = match (assignment, notice) {
        (Assignment::Exclusive, Notice::Partition(p)) => Some(owners.get(p).copied().flatten()),
        _ => None,
    };
    move |m| Some(m) != except && members.contains_key(&m) && owner.is_none_or(|o| o == Some(m))
}

/// Where a claim puts what it hands out: a batch, or the one message of
/// a single receive (which then needs no allocation).
pub(crate) trait Claims<T> {
    /// How many it holds.
    fn count(&self) -> usize;
    fn push(&mut self, claimed: Claimed<T>);
}

impl<T> Claims<T> for Vec<Claimed<T>> {
    fn count(&self) -> usize {
        self.len()
    }

    fn push(&mut self, claimed: Claimed<T>) {
        Vec::push(self, claimed);
    }
}

/// A single receive: claims with `max` 1 push at most one message.
impl<T> Claims<T> for Option<Claimed<T>> {
    fn count(&self) -> usize {
        usize::from(self.is_some())
    }

    fn push(&mut self, claimed: Claimed<T>) {
        debug_assert!(self.is_none(), "a single receive claims one message");
        *self = Some(claimed);
    }
}

/// Collects a cursor's deliveries as first deliveries from `partition`,
/// noting the offset of the last.
struct ClaimedFrom<'a, C> {
    partition: usize,
    out: &'a mut C,
    last: Option<u64>,
}

impl<T, C: Claims<T>> Extend<Delivered<T>> for ClaimedFrom<'_, C> {
    fn extend<I: IntoIterator<Item = Delivered<T>>>(&mut self, iter: I) {
        for d in iter {
            self.last = Some(d.offset);
            self.out.push(Claimed::first(self.partition, d));
        }
    }
}

/// How many times in a row a receive yields its task when it finds the
/// group's lock taken, before it waits for the lock.
const MAX_YIELDS: u8 = 4;

/// How many messages a group's batch receive reads from a partition at
/// once (a single receive reads 128 ahead in memq-core).
const GROUP_READ_AHEAD: usize = 128;

/// How a claim ends.
enum Exit {
    /// It returns this (the member does not wait).
    Ready(Result<usize, TryRecvError>),
    /// The member parks.
    Park,
}

impl<T: Clone + Send + 'static> Shared<T> {
    pub(crate) fn new(
        name: &str,
        sources: Vec<Topic<T>>,
        config: GroupConfig,
        sink: Option<DeadLetterSink<T>>,
    ) -> Result<Arc<Self>, GroupError> {
        if sources.is_empty() {
            return Err(GroupError::NoSources);
        }
        config.validate()?;
        let n = sources.len();
        let committed = sources.iter().map(|t| t.committed(name)).collect();
        let ttls = sources.iter().map(|t| t.config().ttl).collect();
        Ok(Arc::new_cyclic(|weak: &Weak<Shared<T>>| Shared {
            name: name.into(),
            sources,
            config,
            sink,
            ttls,
            state: Mutex::new(State {
                cursors: Vec::new(),
                members: BTreeMap::new(),
                next_member: 0,
                owners: vec![None; n],
                stalled: BTreeSet::new(),
                pending: BTreeMap::new(),
                redeliver: BTreeSet::new(),
                dead: BTreeMap::new(),
                taken: BTreeSet::new(),
                garbage: Vec::new(),
                gaps: Vec::new(),
                committed,
                resume: vec![None; n],
                unflushed: vec![false; n],
                waiters: Wakers::default(),
                relay_waiters: (0..n).map(|_| Waiter::new()).collect(),
                armed: vec![false; n],
                rr: 0,
                redeliveries: 0,
                dead_lettered: 0,
                expired: 0,
            }),
            relays: (0..n)
                .map(|partition| {
                    Waker::from(Arc::new(Relay {
                        group: weak.clone(),
                        partition,
                    }))
                })
                .collect(),
        }))
    }

    /// Frees a member future's slot; a notification it had not acted on
    /// goes to another member (for a partition: the messages there that
    /// are owed to nobody now are covered again).
    pub(crate) fn release_waiter(&self, key: usize) {
        let mut st = self.state.lock();
        let mut wake = Vec::new();
        // A take-over timer goes with it: another member arms one.
        let timer = st.waiters.has_timer(Some(key));
        match st.waiters.release(key) {
            Some(Notice::Partition(p)) if p < st.cursors.len() => self.cover(&mut st, p, &mut wake),
            Some(notice) => wake.extend(self.pass_on(&mut st, notice, None)),
            None => {}
        }
        if timer {
            self.cover_take_over(&mut st, None, &mut wake);
        }
        self.unlock(st, wake);
    }

    /// Releases the lock; then wakes `wake` and drops the values the
    /// critical section removed (wakers and `Drop` are user code, run
    /// with no lock held).
    fn unlock(&self, mut st: MutexGuard<'_, State<T>>, wake: Vec<Waker>) {
        let garbage = std::mem::take(&mut st.garbage);
        drop(st);
        wake.into_iter().for_each(Waker::wake);
        drop(garbage);
    }

    /// A partition's topic has news (the relay fired, and is disarmed):
    /// cover the partition (wake one member that may read it per message
    /// owed to nobody yet), or wake every parked member that may read it
    /// if the topic was closed.
    fn relay(&self, partition: usize) {
        // Asked before the group lock: a topic is never locked first.
        let closed = self.sources[partition].is_closed();
        let mut st = self.state.lock();
        st.armed[partition] = false;
        let mut wake = Vec::new();
        if closed {
            // Every parked member, those that may not read it included: a
            // member of an exclusive group owning none of the partitions
            // is told `Closed` too once they are all drained.
            wake = self.wake_everyone(&mut st);
        } else if partition < st.cursors.len() {
            self.cover(&mut st, partition, &mut wake);
        }
        self.unlock(st, wake);
    }

    /// Restores the wake-up rule (see the module docs) before the lock is
    /// released: every member parked that may take a redelivery, or new
    /// messages of a partition, is notified, or the partition's relay is
    /// armed.
    fn restore(&self, st: &mut State<T>, wake: &mut Vec<Waker>) {
        if st.waiters.none_parked() || st.cursors.is_empty() {
            return;
        }
        if !st.redeliver.is_empty() {
            // Redeliveries flow whatever the room; nothing fires for them.
            match self.config.assignment {
                Assignment::Shared => {
                    let n = st.redeliver.len();
                    let State { waiters, members, .. } = &mut *st;
                    wake.extend(waiters.wake_some(n, Notice::Group, |m| members.contains_key(&m)));
                }
                Assignment::Exclusive => {
                    for p in 0..st.cursors.len() {
                        if st.redeliver.range((p, 0)..=(p, u64::MAX)).next().is_some() {
                            let State {
                                waiters,
                                members,
                                owners,
                                ..
                            } = &mut *st;
                            let eligible = eligibility(
                                self.config.assignment,
                                members,
                                owners,
                                Notice::Partition(p),
                                None,
                            );
                            wake.extend(waiters.wake_some(1, Notice::Group, eligible));
                        }
                    }
                }
            }
        }
        for p in 0..st.cursors.len() {
            if st.armed[p] && st.cursors[p].offsets_ahead() <= st.waiters.owed(p) as u64 {
                continue;
            }
            self.cover(st, p, wake);
        }
        if self.config.assignment == Assignment::Exclusive {
            self.cover_closing(st, wake);
        }
    }

    /// Exclusive groups, members parked: a member is told `Closed` only
    /// when every partition is closed and drained, those it does not own
    /// included (one owning none would never be told otherwise). So every
    /// partition not done yet keeps its relay armed, whoever is parked (a
    /// member that does not own it hears of its closing), and once all of
    /// them are done the parked members are woken to find it so.
    fn cover_closing(&self, st: &mut State<T>, wake: &mut Vec<Waker>) {
        let mut all_done = st.redeliver.is_empty();
        for p in 0..st.cursors.len() {
            let done = st.cursors[p].is_closed() && st.cursors[p].offsets_ahead() == 0;
            all_done &= done;
            if !done && !st.armed[p] {
                let mut relay = Context::from_waker(&self.relays[p]);
                let state = &mut *st;
                let ready = state.cursors[p]
                    .poll_ready(&mut relay, &mut state.relay_waiters[p])
                    .is_ready();
                st.armed[p] = !ready;
            }
        }
        if all_done {
            wake.extend(self.wake_everyone(st));
        }
    }

    /// For the members parked that may read partition `p`: notifies one
    /// per message there owed to nobody yet (the longest waiting first;
    /// none while the group is at `max_pending`, where what makes room
    /// restores the rule), and arms the relay if members are still parked,
    /// so they hear of the next publish even while the messages there are
    /// kept for notified members that have not run yet.
    fn cover(&self, st: &mut State<T>, p: usize, wake: &mut Vec<Waker>) {
        let notice = Notice::Partition(p);
        // Again if messages came in while the relay was being armed.
        for _ in 0..4 {
            if !self.any_parked(st, notice, None) {
                return;
            }
            let mut relay = Context::from_waker(&self.relays[p]);
            let state = &mut *st;
            if state.cursors[p]
                .poll_ready(&mut relay, &mut state.relay_waiters[p])
                .is_pending()
            {
                st.armed[p] = true;
                return;
            }
            st.armed[p] = false;
            let closed = st.cursors[p].is_closed();
            let lag = st.cursors[p].offsets_ahead();
            let room = self.room(st);
            if lag == 0 || room == 0 {
                // Closed and drained (each member finds it so), or no room
                // (what makes room restores the rule).
                return;
            }
            let owed = st.waiters.owed(p) as u64;
            let want = usize::try_from(lag.saturating_sub(owed))
                .unwrap_or(usize::MAX)
                .min(room);
            let State {
                waiters,
                members,
                owners,
                ..
            } = &mut *st;
            let woken = waiters.wake_some(
                want,
                notice,
                eligibility(self.config.assignment, members, owners, notice, None),
            );
            let owed = owed + woken.len() as u64;
            wake.extend(woken);
            if closed || lag > owed || !self.any_parked(st, notice, None) {
                return;
            }
            // Everything there is kept for members woken for it, and more
            // are parked: they must hear of the next publish.
            if !self.arm_ahead(st, p) || st.cursors[p].offsets_ahead() <= st.waiters.owed(p) as u64 {
                return;
            }
        }
    }

    /// Arms partition `p`'s relay although the cursor has messages ready
    /// (all of them owed to notified members): reads them into the
    /// cursor's buffer, registers the relay, and puts them back, so the
    /// cursor hands out the same messages in the same order. Gives up
    /// (leaving the cursor where it was, a gap it found still to be found
    /// by the next receive) if the read finds a gap or the topic closed.
    /// Returns whether the relay is armed.
    fn arm_ahead(&self, st: &mut State<T>, p: usize) -> bool {
        let mut held: Vec<Delivered<T>> = Vec::new();
        let start = st.cursors[p].position();
        let mut relay = Context::from_waker(&self.relays[p]);
        let state = &mut *st;
        let cursor = &mut state.cursors[p];
        let mut armed = false;
        let mut gap = false;
        for _ in 0..4 {
            match cursor.try_recv_batch(usize::MAX, &mut held) {
                Ok(_) | Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Lagged(_)) => {
                    gap = true;
                    break;
                }
                Err(_) => break,
            }
            if cursor
                .poll_ready(&mut relay, &mut state.relay_waiters[p])
                .is_pending()
            {
                armed = true;
                break;
            }
            // A publish came in meanwhile (read it too), a gap was found
            // after the messages read, or the topic closed.
            if cursor.take_lag().is_some() {
                gap = true;
                break;
            }
            if cursor.is_closed() {
                break;
            }
        }
        if gap {
            // Back to where the gap starts: the next receive finds it
            // again, after the messages before it.
            let from = held.last().map_or(start, |d| d.offset + 1);
            let _ = cursor.seek_or_lag(from);
        }
        cursor.unread(held.into_iter());
        state.armed[p] = armed;
        if self.config.ack == AckMode::Manual && st.cursors[p].position() != start {
            // It passed over messages that expired: the commit follows the
            // position, as after a receive.
            self.update_commit(st, p);
        }
        armed
    }

    /// The waker of the longest-waiting parked member (other than
    /// `except`) that may act on `notice`, marked as notified for it.
    fn pass_on(&self, st: &mut State<T>, notice: Notice, except: Option<u64>) -> Option<Waker> {
        let State {
            waiters,
            members,
            owners,
            ..
        } = st;
        let eligible = eligibility(self.config.assignment, members, owners, notice, except);
        waiters.wake_one(notice, eligible)
    }

    /// Whether a member (other than `except`) that may act on `notice` is
    /// parked.
    fn any_parked(&self, st: &State<T>, notice: Notice, except: Option<u64>) -> bool {
        let eligible = eligibility(self.config.assignment, &st.members, &st.owners, notice, except);
        st.waiters.any_parked(eligible)
    }

    /// Wakes every parked member (a change for the whole group).
    fn wake_everyone(&self, st: &mut State<T>) -> Vec<Waker> {
        st.waiters.wake_all(Notice::Group, |_| true)
    }

    /// How many new messages the group may hand out before it reaches
    /// [`GroupConfig::max_pending`].
    fn room(&self, st: &State<T>) -> usize {
        match (self.config.ack, self.config.max_pending) {
            (AckMode::Manual, Some(limit)) => limit.saturating_sub(st.pending_count()),
            _ => usize::MAX,
        }
    }

    /// After the pending count went down from `before`: if that made room
    /// under the limit, wake parked members to use it (one per message
    /// they may take, see [`restore`](Self::restore)).
    fn room_freed(&self, st: &mut State<T>, before: usize, wake: &mut Vec<Waker>) {
        let Some(limit) = self.config.max_pending else {
            return;
        };
        if self.config.ack != AckMode::Manual || before < limit || st.pending_count() >= limit {
            return;
        }
        self.restore(st, wake);
    }

    pub(crate) fn join(&self, start: StartFrom) -> Result<u64, GroupError> {
        let mut st = self.state.lock();
        if st.cursors.is_empty() {
            let mut cursors = Vec::with_capacity(self.sources.len());
            for (partition, topic) in self.sources.iter().enumerate() {
                let resume = st.resume[partition]
                    .filter(|_| start == StartFrom::Committed && topic.committed(&self.name).is_none());
                let subscribed = match resume {
                    // Unacknowledged messages of a group that never
                    // committed: receive them again; the cursor reports
                    // those evicted meanwhile as lagged (and skips those
                    // that expired), as after a commit.
                    Some(r) => topic.resume_named(&self.name, r),
                    None => topic.subscribe_named(&self.name, start),
                };
                match subscribed {
                    Ok(c) => cursors.push(c),
                    Err(memq_core::SubscribeError::OutOfRange(range)) => {
                        return Err(GroupError::OutOfRange { partition, range })
                    }
                    Err(_) => return Err(GroupError::Closed),
                }
            }
            st.cursors = cursors;
            st.armed.iter_mut().for_each(|a| *a = false);
            // Gaps the old cursors found and nobody was told about yet.
            // The part of a gap at or past where a new cursor starts is
            // found again by it (it was evicted, so it is below the
            // window); the part below that start is still to report.
            let starts: Vec<u64> = st.cursors.iter().map(Cursor::position).collect();
            st.gaps.retain_mut(|g| {
                g.count = starts[g.partition].min(g.from + g.count).saturating_sub(g.from);
                g.count > 0
            });
            if start != StartFrom::Committed {
                st.resume.iter_mut().for_each(|r| *r = None);
            }
        }
        let id = st.next_member;
        st.next_member += 1;
        st.members.insert(
            id,
            Member {
                last_active: Instant::now(),
            },
        );
        self.rebalance(&mut st);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "memq_groups", group = &*self.name, member = id, members = st.members.len(), "member joined");
        let wake = self.wake_everyone(&mut st);
        self.unlock(st, wake);
        Ok(id)
    }

    pub(crate) fn leave(&self, id: u64) {
        let mut st = self.state.lock();
        st.members.remove(&id);
        st.stalled.remove(&id);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "memq_groups", group = &*self.name, member = id, members = st.members.len(), "member left");
        // A waiter that outlives its member holds no reservation.
        st.waiters.forget(id);
        self.flush(&mut st);
        let mut retired = Vec::new();
        let mut relays = Vec::new();
        if st.members.is_empty() {
            // Nobody reads: drop the cursors so the group holds nothing
            // back. Unacknowledged messages are above the committed
            // position, so the next member to join receives them again.
            // Dead letters waiting for the sink stay.
            if self.config.ack == AckMode::Manual {
                for p in 0..self.sources.len() {
                    if let (None, Some(l)) = (st.committed[p], st.lowest_unprocessed(p)) {
                        // Not past the group's position either: what lies
                        // below what is unprocessed and was never handed
                        // out (a member joined earlier than a dead letter
                        // waiting for the sink, and left) is unprocessed too.
                        let l = st.cursors.get(p).map_or(l, |c| l.min(c.position()));
                        st.resume[p] = Some(st.resume[p].map_or(l, |r| r.min(l)));
                    }
                }
            } else {
                // Automatic mode: what was given back and nobody took is
                // read again by the next member (from the committed
                // position, so what came after it may be delivered twice).
                for p in 0..self.sources.len() {
                    if let Some(l) = st.lowest_unprocessed(p) {
                        self.rewind_commit(&mut st, p, l);
                    }
                }
            }
            retired = std::mem::take(&mut st.cursors);
            let fresh = (0..self.sources.len()).map(|_| Waiter::new()).collect();
            relays = std::mem::replace(&mut st.relay_waiters, fresh);
            st.armed.iter_mut().for_each(|a| *a = false);
            // Dropped after the lock is released.
            let pending = std::mem::take(&mut st.pending);
            st.garbage.extend(pending.into_values().map(|p| p.value));
            st.redeliver.clear();
        } else {
            let theirs: Vec<Key> = st
                .pending
                .iter()
                .filter(|(_, p)| p.owner == Some(id))
                .map(|(k, _)| *k)
                .collect();
            for k in theirs {
                if let Some(p) = st.pending.get_mut(&k) {
                    p.owner = None;
                }
                st.redeliver.insert(k);
            }
            self.rebalance(&mut st);
        }
        let wake = self.wake_everyone(&mut st);
        self.unlock(st, wake);
        drop(relays);
        drop(retired);
    }

    /// Recomputes partition owners (exclusive mode) and hands the pending
    /// messages of partitions that changed owner to their new owner.
    fn rebalance(&self, st: &mut State<T>) {
        if self.config.assignment != Assignment::Exclusive {
            return;
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "memq_groups",
            group = &*self.name,
            members = st.members.len(),
            partitions = self.sources.len(),
            "partitions reassigned"
        );
        // Members that failed are left out while others remain.
        let mut ids: Vec<u64> = st
            .members
            .keys()
            .filter(|m| !st.stalled.contains(m))
            .copied()
            .collect();
        if ids.is_empty() {
            ids = st.members.keys().copied().collect();
        }
        for p in 0..self.sources.len() {
            let owner = (!ids.is_empty()).then(|| ids[p % ids.len()]);
            self.give(st, p, owner);
        }
    }

    /// Exclusive assignment: hands only the partitions of members that
    /// failed to `receiver`, the member whose receive found them failed
    /// (it is receiving: the others may be busy), leaving every other
    /// partition with its owner, so that a failure does not take a healthy
    /// member's partition and the message it is working on.
    fn reassign_failed(&self, st: &mut State<T>, receiver: u64) {
        for p in 0..self.sources.len() {
            if st.owners[p].is_some_and(|o| st.stalled.contains(&o)) {
                self.give(st, p, Some(receiver));
            }
        }
    }

    /// Makes `owner` the owner of partition `p`: if that changes it, the
    /// members notified for `p` may no longer take its messages, and what
    /// the previous owner holds there is queued for the new one.
    fn give(&self, st: &mut State<T>, p: usize, owner: Option<u64>) {
        if st.owners[p] == owner {
            return;
        }
        st.owners[p] = owner;
        st.waiters.disown(p);
        let moved: Vec<Key> = st
            .pending
            .range((p, 0)..=(p, u64::MAX))
            .filter(|(_, m)| m.owner.is_some())
            .map(|(k, _)| *k)
            .collect();
        for k in moved {
            if let Some(m) = st.pending.get_mut(&k) {
                m.owner = None;
            }
            st.redeliver.insert(k);
        }
    }

    fn eligible(&self, st: &State<T>, member: u64, partition: usize) -> bool {
        match self.config.assignment {
            Assignment::Shared => true,
            Assignment::Exclusive => st.owners[partition] == Some(member),
        }
    }

    /// Hands up to `max` messages to `member`: redeliveries first, then new
    /// messages, partitions taken in turn. With `park`, registers the
    /// member to be woken when that may change.
    pub(crate) fn claim(
        &self,
        member: u64,
        max: usize,
        out: &mut impl Claims<T>,
        mut park: Option<(&mut Context<'_>, &mut MemberWaiter<T>)>,
    ) -> Poll<Result<usize, TryRecvError>> {
        if max == 0 {
            return Poll::Ready(Ok(0));
        }
        let manual = self.config.ack == AckMode::Manual;
        let key = park.as_ref().and_then(|(_, w)| w.group_key);
        let mut wake = Vec::new();
        let before = out.count();
        // A receive that finds the lock taken yields its task and tries
        // again, rather than parking its worker thread on the lock while
        // other tasks there (publishers, other members) could run: twice
        // the messages per second with ten publishers and ten members on
        // two workers. It waits in the group only once its claim runs.
        // A few times in a row at most: then it waits for the lock, so
        // that a receive cannot be kept out by others that keep taking it
        // (a thread looping on `try_recv`), nor spin through its executor.
        let mut st = match &mut park {
            Some((cx, waiter)) if waiter.yields < MAX_YIELDS => match self.state.lock_or_yield() {
                Some(st) => {
                    waiter.yields = 0;
                    st
                }
                None => {
                    waiter.yields += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            },
            Some((_, waiter)) => {
                waiter.yields = 0;
                self.state.lock()
            }
            None => self.state.lock(),
        };
        // A take-over timer this receive held, armed afresh if it parks.
        let timer = st.waiters.has_timer(key);
        st.waiters.begin(key);
        if let Some(got) = self.claim_read_ahead(&mut st, max, out) {
            st.waiters.done(key);
            // Members parked hear of what is left, as after any claim.
            self.restore(&mut st, &mut wake);
            self.unlock(st, wake);
            return Poll::Ready(Ok(got));
        }
        if !st.dead.is_empty() {
            // Dead letters the sink refused before: offer them again first.
            st = self.offer_dead_letters(st, &mut wake);
        }
        // Idle tracking and expiry matter only with manual acknowledgement.
        if manual {
            let now = Instant::now();
            self.take_over_idle(&mut st, member, now);
            if let Some(m) = st.members.get_mut(&member) {
                m.last_active = now;
            }
            // Room an expiry makes is restored below, parked or not.
            self.expire_queued(&mut st, now);
        } else if !st.redeliver.is_empty() {
            // Messages given back (`give_back`) expire as the topic's do.
            self.expire_queued(&mut st, Instant::now());
        }
        let exit = 'claim: {
            let lagged: u64 = st.gaps.drain(..).map(|g| g.count).sum();
            if lagged > 0 {
                break 'claim Exit::Ready(Err(TryRecvError::Lagged(lagged)));
            }
            let (mut got, mut buried) = self.redeliver(&mut st, member, max, out);
            while buried {
                // New dead letters go to the sink (with the lock released)
                // before new messages are handed out: what it takes makes
                // room under `max_pending`. Meanwhile a member may have left
                // or joined (the sink is user code; so is any other thread):
                // redeliveries that queued for this member then come before
                // anything new of their partitions.
                st = self.offer_dead_letters(st, &mut wake);
                if got == max {
                    break;
                }
                let (more, again) = self.redeliver(&mut st, member, max - got, out);
                got += more;
                buried = again;
            }
            self.claim_new(&mut st, member, max, got, out, park.is_some())
        };
        let exit = match exit {
            Exit::Park if park.is_none() => Exit::Ready(Err(TryRecvError::Empty)),
            e => e,
        };
        let result = match exit {
            Exit::Park => {
                let (cx, waiter) = park.as_mut().expect("parks only with a context");
                st.waiters.park(&mut waiter.group_key, cx.waker(), member);
                waiter.deadline = self.next_deadline(&st, member);
                st.waiters.arm(waiter.group_key, waiter.deadline);
                // Held at the limit by dead letters the sink refused:
                // nothing else would offer them again.
                waiter.retry = (self.room(&st) == 0 && st.dead.values().any(Option::is_some))
                    .then(|| Instant::now() + DEAD_LETTER_RETRY);
                Poll::Pending
            }
            Exit::Ready(r) => {
                st.waiters.done(key);
                if r == Err(TryRecvError::Closed) {
                    // Every parked member finds the same.
                    wake.extend(self.wake_everyone(&mut st));
                }
                Poll::Ready(r)
            }
        };
        // Whether this member parks or not: nobody parked misses what is
        // there (what this claim left, what an expiry made room for, what
        // a notification it acted on was kept for).
        self.restore(&mut st, &mut wake);
        if result.is_ready() {
            // Not parking: a take-over timer it held is gone; messages it
            // took become claimable by others when it idles.
            if timer {
                self.cover_take_over(&mut st, None, &mut wake);
            } else if out.count() > before {
                self.cover_take_over(&mut st, Some(member), &mut wake);
            }
        }
        self.unlock(st, wake);
        result
    }

    /// The common claim, kept short: in an automatic group whose members
    /// share the partitions, with no gap to report, no redelivery and no
    /// dead letter to offer, what the full claim would hand out from the
    /// next partition (up to `max`, less what is owed to members woken
    /// for its messages) is handed out from what its cursor read ahead,
    /// when that holds all of it, touching nothing else. Returns how
    /// many, or `None` when the full claim must run.
    fn claim_read_ahead(&self, st: &mut State<T>, max: usize, out: &mut impl Claims<T>) -> Option<usize> {
        if self.config.ack == AckMode::Manual
            || self.config.assignment != Assignment::Shared
            || st.cursors.is_empty()
            || !st.gaps.is_empty()
            || !st.redeliver.is_empty()
            || !st.dead.is_empty()
            || !st.taken.is_empty()
        {
            return None;
        }
        let n = st.cursors.len();
        let p = st.rr % n;
        // With a TTL, what was read ahead may have expired: a batch would
        // then get fewer than `max` while the topic holds more, which a
        // batch must take (a single receive that finds all of it expired
        // gets nothing here and runs the full claim).
        if max > 1 && self.ttls[p].is_some() {
            return None;
        }
        // What this claim may take, as the full claim counts it: what the
        // partition holds past what was handed out (the cursor's lag, read
        // ahead included; the topic's end read without its lock), less
        // what is owed to members woken for it; up to `max`. A batch
        // takes all of that, so the read-ahead must hold it. (A single
        // receive with messages owed runs the full claim, which tops the
        // read-ahead up: taking from it here measured 2-4% slower for ten
        // members using `recv`, where batches of 64 gained 7-9%.)
        let owed = st.waiters.owed(p) as u64;
        if owed != 0 && max == 1 {
            return None;
        }
        let may = st.cursors[p].offsets_ahead().saturating_sub(owed).min(max as u64);
        // Short of `max`, a batch goes on to the other partitions: the
        // full claim's work.
        if may == 0 || (st.cursors[p].read_ahead() as u64) < may || (may < max as u64 && n > 1) {
            return None;
        }
        let max = may as usize;
        let mut sink = ClaimedFrom {
            partition: p,
            out,
            last: None,
        };
        let got = st.cursors[p].take_read_ahead(max, &mut sink);
        let last = sink.last?;
        // As in the full claim: a gap the cursor found after these is
        // reported by the group's next receive, whatever happens to the
        // cursor meanwhile.
        if let Some(k) = st.cursors[p].take_lag() {
            st.gap_before(p, k);
        }
        self.commit_through(st, p, last);
        st.rr = (st.rr + 1) % n;
        Some(got)
    }

    /// Hands up to `max` redeliveries to `member`, in partition and offset
    /// order; those at `max_deliveries` become dead letters waiting for
    /// the sink instead. Returns how many it handed out, and whether it
    /// made dead letters.
    fn redeliver(
        &self,
        st: &mut State<T>,
        member: u64,
        max: usize,
        out: &mut impl Claims<T>,
    ) -> (usize, bool) {
        let (mut got, mut buried) = (0, false);
        // In partition and offset order, stopping at `max` (the set may be
        // long); a partition this member may not read is skipped whole.
        let mut from = Bound::Unbounded;
        while got < max {
            let Some(&key) = st.redeliver.range((from, Bound::Unbounded)).next() else {
                break;
            };
            if !self.eligible(st, member, key.0) {
                from = Bound::Excluded((key.0, u64::MAX));
                continue;
            }
            from = Bound::Excluded(key);
            st.redeliver.remove(&key);
            if self.config.ack == AckMode::Auto {
                // Given back (`give_back`): handed on, and then nobody's
                // (automatic groups acknowledge what they hand out).
                if let Some(p) = st.pending.remove(&key) {
                    out.push(Claimed {
                        partition: key.0,
                        offset: key.1,
                        timestamp: p.timestamp,
                        deliveries: p.deliveries.saturating_add(1),
                        value: p.value,
                    });
                    got += 1;
                }
                continue;
            }
            let Some(p) = st.pending.get_mut(&key) else {
                continue;
            };
            if self.at_limit(p) {
                buried |= self.bury(st, key);
                continue;
            }
            p.owner = Some(member);
            p.deliveries += 1;
            out.push(Claimed {
                partition: key.0,
                offset: key.1,
                timestamp: p.timestamp,
                deliveries: p.deliveries,
                value: p.value.clone(),
            });
            st.redeliveries += 1;
            got += 1;
        }
        #[cfg(feature = "tracing")]
        if got > 0 {
            tracing::debug!(target: "memq_groups", group = &*self.name, member, messages = got, "redelivered");
        }
        (got, buried)
    }

    /// Whether `p` was delivered as often as the group allows.
    fn at_limit(&self, p: &Pending<T>) -> bool {
        self.config.max_deliveries.is_some_and(|max| p.deliveries >= max)
    }

    /// Makes the pending message at `key` a dead letter waiting for the
    /// sink (offered when the lock is released, counted as pending until
    /// it is taken). Returns whether it was pending.
    fn bury(&self, st: &mut State<T>, key: Key) -> bool {
        let Some(p) = st.pending.remove(&key) else {
            return false;
        };
        let limit = self.config.max_deliveries.unwrap_or(p.deliveries);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "memq_groups",
            group = &*self.name,
            partition = key.0,
            offset = key.1,
            deliveries = p.deliveries,
            limit,
            "message dead-lettered: delivered too many times"
        );
        st.dead.insert(
            key,
            Some(DeadLetter {
                group: self.name.clone(),
                partition: key.0,
                offset: key.1,
                timestamp: p.timestamp,
                deliveries: p.deliveries,
                reason: DeadLetterReason::MaxDeliveries { limit },
                value: p.value,
            }),
        );
        true
    }

    /// The rest of a claim after `got` redeliveries: new messages,
    /// partitions taken in turn; or whether the member parks (`can_park`)
    /// or finds nothing.
    fn claim_new(
        &self,
        st: &mut State<T>,
        member: u64,
        max: usize,
        mut got: usize,
        out: &mut impl Claims<T>,
        can_park: bool,
    ) -> Exit {
        let manual = self.config.ack == AckMode::Manual;
        let n = st.cursors.len();
        let mut closed = 0;
        let mut pending_parts = 0;
        let mut fresh: Vec<Delivered<T>> = Vec::new();
        for i in 0..n {
            if got == max {
                break;
            }
            let p = (st.rr + i) % n;
            if !self.eligible(st, member, p) {
                continue;
            }
            let room = self.room(st);
            if room == 0 {
                // At `max_pending`: nothing new. Still tell a closed and
                // drained partition, and keep the relay armed while the
                // partition has nothing (so closing it wakes the member).
                let ready = if can_park {
                    let mut relay = Context::from_waker(&self.relays[p]);
                    let ready = st.cursors[p]
                        .poll_ready(&mut relay, &mut st.relay_waiters[p])
                        .is_ready();
                    st.armed[p] = !ready;
                    ready
                } else {
                    true
                };
                if ready && st.cursors[p].offsets_ahead() == 0 && st.cursors[p].is_closed() {
                    closed += 1;
                } else {
                    pending_parts += 1;
                }
                continue;
            }
            if self.owed_take(st, p, room) == 0 {
                // Every message there is owed to a member woken for it.
                pending_parts += 1;
                continue;
            }
            // Messages re-read that wait as dead letters are passed over;
            // then poll again for what the batch is still short of (not
            // past a gap found here: the next receive reports it first).
            let gaps = st.gaps.len();
            let start = st.cursors[p].position();
            let polled = loop {
                fresh.clear();
                let take = self.owed_take(st, p, (max - got).min(self.room(st)));
                if take == 0 {
                    break Poll::Ready(Ok(0));
                }
                let polled = if can_park {
                    // Registered through the partition's relay, not the
                    // member: a publish then wakes one member, not all.
                    let mut relay = Context::from_waker(&self.relays[p]);
                    let state = &mut *st;
                    // A batch reads ahead as a single receive does: the
                    // claims after it take from the cursor's buffer.
                    let polled = state.cursors[p].poll_recv_batch_ahead(
                        &mut relay,
                        &mut state.relay_waiters[p],
                        take,
                        GROUP_READ_AHEAD,
                        &mut fresh,
                    );
                    // Taking messages disarms it; a lag or a close may have.
                    state.armed[p] = polled.is_pending();
                    polled
                } else {
                    match st.cursors[p].try_recv_batch(take, &mut fresh) {
                        Ok(k) => Poll::Ready(Ok(k)),
                        Err(TryRecvError::Empty) => Poll::Pending,
                        Err(TryRecvError::Lagged(k)) => Poll::Ready(Err(memq_core::RecvError::Lagged(k))),
                        Err(_) => Poll::Ready(Err(memq_core::RecvError::Closed)),
                    }
                };
                match polled {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(memq_core::RecvError::Lagged(k))) => {
                        if st.gap_before(p, k) > 0 {
                            break polled;
                        }
                        // Only dead letters waiting for the sink were
                        // evicted: nothing lost, read on.
                        continue;
                    }
                    _ => break polled,
                }
                let mut passed = 0;
                let last = fresh.last().map(|d| d.offset);
                for d in fresh.drain(..) {
                    if st.passed_over(&(p, d.offset)) {
                        passed += 1;
                        st.garbage.push(d.value);
                        continue;
                    }
                    if manual {
                        let superseded = st.pending.insert(
                            (p, d.offset),
                            Pending {
                                owner: Some(member),
                                deliveries: 1,
                                timestamp: d.timestamp,
                                value: d.value.clone(),
                            },
                        );
                        // Handed out again after a seek back.
                        st.garbage.extend(superseded.map(|p| p.value));
                    }
                    out.push(Claimed::first(p, d));
                    got += 1;
                }
                if let Some(last) = last {
                    // A gap the cursor found after these messages is
                    // reported by its next receive; take the report now, so
                    // that it reaches the group's next receive whatever
                    // happens to the cursor meanwhile (a seek, the last
                    // member leaving).
                    if let Some(k) = st.cursors[p].take_lag() {
                        st.gap_before(p, k);
                    }
                    if !manual {
                        self.commit_through(st, p, last);
                    }
                }
                if passed == 0 || got == max || st.gaps.len() > gaps {
                    break polled;
                }
            };
            if manual && st.cursors[p].position() != start {
                // Whatever moved the position (messages handed out, dead
                // letters or expired messages passed over, a gap found):
                // the commit follows, whether what was passed over sat in
                // the cursor's read-ahead buffer or not.
                self.update_commit(st, p);
            }
            match polled {
                Poll::Ready(Ok(_)) | Poll::Ready(Err(memq_core::RecvError::Lagged(_))) => {}
                Poll::Ready(Err(_)) => closed += 1,
                Poll::Pending => pending_parts += 1,
            }
            if got == 0 && !st.gaps.is_empty() {
                // A gap found before anything was handed out: reported now.
                let k = st.gaps.drain(..).map(|g| g.count).sum();
                st.rr = (p + 1) % n;
                return Exit::Ready(Err(TryRecvError::Lagged(k)));
            }
        }
        if n > 0 {
            st.rr = (st.rr + 1) % n;
        }
        if got > 0 {
            return Exit::Ready(Ok(got));
        }
        // About to wait (or nothing there): make the commits durable.
        self.flush(st);
        let rest_done = match self.config.assignment {
            Assignment::Shared => closed > 0,
            // Every partition it owns closed and drained, and the others
            // too: closed for the whole group, not only what this member
            // owns now (another member's partition comes to it when that
            // member leaves: told `Closed` early, it would never read it;
            // owning none, it would never be told).
            Assignment::Exclusive => {
                let mut owned = 0;
                let others_done = (0..n).all(|p| {
                    let own = self.eligible(st, member, p);
                    owned += usize::from(own);
                    own || st.cursors[p].is_closed() && st.cursors[p].offsets_ahead() == 0
                });
                others_done && closed == owned
            }
        };
        if st.cursors.is_empty() || (rest_done && pending_parts == 0 && st.redeliver.is_empty()) {
            Exit::Ready(Err(TryRecvError::Closed))
        } else {
            Exit::Park
        }
    }

    /// `take`, less what partition `p` owes to members woken for its
    /// messages that have not run yet: those are theirs (members are
    /// served in the order they began waiting, not by who comes back
    /// first).
    fn owed_take(&self, st: &State<T>, p: usize, take: usize) -> usize {
        let owed = st.waiters.owed(p) as u64;
        if owed == 0 {
            return take;
        }
        match st.cursors[p].offsets_ahead() {
            0 => take,
            lag => take.min(usize::try_from(lag.saturating_sub(owed)).unwrap_or(usize::MAX)),
        }
    }

    /// Offers the dead letters waiting for the sink to it, in partition
    /// and offset order, with the lock released; stops at the first it
    /// refuses (the rest wait with it). One is offered first, and the rest
    /// only if the sink took it, so a sink that keeps refusing (a full
    /// dead-letter topic) costs one call per offer, whatever the backlog.
    /// Returns the lock.
    fn offer_dead_letters<'a>(
        &'a self,
        mut st: MutexGuard<'a, State<T>>,
        wake: &mut Vec<Waker>,
    ) -> MutexGuard<'a, State<T>> {
        let mut want = 1;
        loop {
            // Marked as being offered (`None`): still pending, holding the
            // commit, and offered by nobody else meanwhile.
            let batch: Vec<(Key, DeadLetter<T>)> = st
                .dead
                .iter_mut()
                .filter_map(|(k, d)| d.take().map(|d| (*k, d)))
                .take(want)
                .collect();
            if batch.is_empty() {
                return st;
            }
            let offered = batch.len();
            drop(st);
            let mut taken = Vec::with_capacity(offered);
            let mut refused = Vec::new();
            let mut panicked = None;
            let mut batch = batch.into_iter();
            for (key, d) in batch.by_ref() {
                let Some(sink) = &self.sink else {
                    taken.push(key);
                    continue;
                };
                // A copy to keep if the sink panics: the letter must not
                // be lost with it.
                let copy = d.clone();
                match std::panic::catch_unwind(AssertUnwindSafe(|| sink(d))) {
                    Ok(Ok(())) => taken.push(key),
                    Ok(Err(d)) => {
                        refused.push((key, d));
                        break;
                    }
                    Err(payload) => {
                        refused.push((key, copy));
                        panicked = Some(payload);
                        break;
                    }
                }
            }
            refused.extend(batch);
            st = self.state.lock();
            let before = st.pending_count();
            let done = !refused.is_empty() || offered < want;
            for (key, d) in refused {
                if let Some(slot) = st.dead.get_mut(&key) {
                    *slot = Some(d);
                }
            }
            for key in taken {
                st.dead.remove(&key);
                st.dead_lettered += 1;
                if st.committed[key.0].is_none_or(|c| c < key.1) {
                    // A cursor may read it again: it passes over it.
                    st.taken.insert(key);
                }
                self.update_commit(&mut st, key.0);
            }
            self.room_freed(&mut st, before, wake);
            if let Some(payload) = panicked {
                // The group stays as if the sink had refused the letter
                // (it waits, and is offered again); the receive or ack
                // that called the sink panics with it. Whoever it would
                // have woken, and every parked member (its own
                // notification is lost with it), is woken first.
                wake.extend(self.wake_everyone(&mut st));
                self.unlock(st, std::mem::take(wake));
                std::panic::resume_unwind(payload);
            }
            if done {
                return st;
            }
            want = usize::MAX;
        }
    }

    /// Queues for redelivery the pending messages of members idle past the
    /// ack timeout (`claimer`, whose receive this is, included: it gets
    /// them back as redeliveries).
    ///
    /// Under exclusive assignment, those of them that held messages and
    /// are not waiting in a receive have failed: their partitions go to
    /// `claimer` (otherwise their messages would wait for them, and a stuck
    /// owner would stall its partitions for good; the other members keep
    /// theirs) until their next receive, which is when `claimer`, if it had
    /// failed, gets its share back (the partitions shared out afresh).
    fn take_over_idle(&self, st: &mut State<T>, claimer: u64, now: Instant) {
        let Some(timeout) = self.config.ack_timeout else {
            return;
        };
        let exclusive = self.config.assignment == Assignment::Exclusive;
        // Back from failing: the partitions are shared out afresh.
        let returned = exclusive && st.stalled.remove(&claimer);
        let mut failed_now = false;
        if !st.pending.is_empty() {
            let idle: Vec<u64> = st
                .members
                .iter()
                .filter(|(_, m)| now.saturating_duration_since(m.last_active) >= timeout)
                .map(|(id, _)| *id)
                .collect();
            let mut moved = Vec::new();
            let mut failed = BTreeSet::new();
            if !idle.is_empty() {
                for (k, p) in st.pending.iter_mut() {
                    if let Some(o) = p.owner.filter(|o| idle.contains(o)) {
                        p.owner = None;
                        moved.push(*k);
                        failed.insert(o);
                    }
                }
            }
            #[cfg(feature = "tracing")]
            if !moved.is_empty() {
                tracing::info!(
                    target: "memq_groups",
                    group = &*self.name,
                    idle_members = idle.len(),
                    messages = moved.len(),
                    "idle members' messages taken over for redelivery"
                );
            }
            st.redeliver.extend(moved);
            if exclusive {
                for o in failed {
                    if o != claimer && !st.waiters.waiting(o) {
                        failed_now |= st.stalled.insert(o);
                    }
                }
            }
        }
        if returned {
            self.rebalance(st);
        } else if failed_now {
            self.reassign_failed(st, claimer);
        }
    }

    /// Drops the messages queued for redelivery that have reached their
    /// partition's TTL (expired messages are never delivered), counting
    /// them; the committed position moves past them as for an ack.
    fn expire_queued(&self, st: &mut State<T>, now: Instant) {
        if st.redeliver.is_empty() || self.ttls.iter().all(Option::is_none) {
            return;
        }
        // Publish times never go down with offsets: in each partition the
        // expired ones come first.
        let mut expired: Vec<Key> = Vec::new();
        for (p, ttl) in self.ttls.iter().enumerate() {
            let Some(ttl) = *ttl else { continue };
            expired.extend(
                st.redeliver
                    .range((p, 0)..=(p, u64::MAX))
                    .take_while(|k| {
                        st.pending
                            .get(k)
                            .is_none_or(|m| now.saturating_duration_since(m.timestamp) >= ttl)
                    })
                    .copied(),
            );
        }
        for k in &expired {
            st.redeliver.remove(k);
            if let Some(m) = st.pending.remove(k) {
                st.expired += 1;
                // Dropped after the lock is released.
                st.garbage.push(m.value);
            }
        }
        let partitions: BTreeSet<usize> = expired.iter().map(|k| k.0).collect();
        for p in partitions {
            self.update_commit(st, p);
        }
    }

    /// With an ack timeout: makes sure that the moment the messages of
    /// `owner` (of every member holding messages, for `None`) become
    /// claimable by another member wakes one of the members parked that
    /// may want them. A member arms its take-over timer as it parks
    /// ([`next_deadline`](Self::next_deadline)), for the messages pending
    /// then; this covers the messages handed out while members wait, and
    /// the timers lost with the receive that held them (it received
    /// instead of parking again, or it was dropped). Either some member
    /// other than the owner holds a timer due by then, or the longest
    /// waiting of them is woken to arm one (counting as holding one until
    /// it runs). A take-over moment never moves earlier (activity only
    /// delays it), so a timer armed for it stays early enough: a member
    /// woken early claims and arms again. Without an ack timeout, or
    /// while a parked member's timer covers the moment, nobody is woken.
    fn cover_take_over(&self, st: &mut State<T>, owner: Option<u64>, wake: &mut Vec<Waker>) {
        let Some(timeout) = self.config.ack_timeout else {
            return;
        };
        if self.config.ack != AckMode::Manual || st.pending.is_empty() || st.waiters.none_parked() {
            return;
        }
        let now = Instant::now();
        let mut cover = |st: &mut State<T>, o: u64| {
            let State { waiters, members, .. } = st;
            // No moment at all for a timeout past what an `Instant` can
            // say (`Duration::MAX`: never).
            let Some(moment) = members.get(&o).and_then(|m| m.last_active.checked_add(timeout)) else {
                return;
            };
            let other = |m: u64| m != o && members.contains_key(&m);
            if !waiters.timer_by(moment, other) {
                wake.extend(waiters.wake_to_arm(now, other));
            }
        };
        match owner {
            Some(o) => cover(st, o),
            None => {
                let owners: BTreeSet<u64> = st.pending.values().filter_map(|p| p.owner).collect();
                owners.into_iter().for_each(|o| cover(st, o));
            }
        }
    }

    /// When the earliest pending message of another member becomes
    /// claimable by this one, if ever.
    fn next_deadline(&self, st: &State<T>, member: u64) -> Option<Instant> {
        let timeout = self.config.ack_timeout?;
        let owners: BTreeSet<u64> = st.pending.values().filter_map(|p| p.owner).collect();
        owners
            .into_iter()
            .filter(|o| *o != member)
            .filter_map(|o| {
                st.members
                    .get(&o)
                    .and_then(|m| m.last_active.checked_add(timeout))
            })
            .min()
    }

    /// Auto mode: everything through `offset` is processed. Recorded
    /// here; written to the topic by [`flush`](Self::flush). Only moves
    /// forward: a commit a member made ahead of the group's position (or
    /// one made before a seek back) still holds.
    fn commit_through(&self, st: &mut State<T>, partition: usize, offset: u64) {
        if st.committed[partition].is_none_or(|c| c < offset) {
            st.committed[partition] = Some(offset);
            st.unflushed[partition] = true;
        }
    }

    /// Writes pending auto-mode commits to the topics now.
    pub(crate) fn flush_commits(&self) {
        let mut st = self.state.lock();
        self.flush(&mut st);
    }

    /// Writes auto-mode commits to the topics, where they outlive the group.
    fn flush(&self, st: &mut State<T>) {
        for p in 0..st.cursors.len() {
            if std::mem::take(&mut st.unflushed[p]) {
                if let Some(c) = st.committed[p] {
                    let _ = st.cursors[p].commit(c);
                }
            }
        }
    }

    /// Automatic mode, the last member leaving: moves `partition`'s commit
    /// back so that a rejoin from it reads `offset` again (a message given
    /// back that nobody took). At offset 0, where no commit says "nothing
    /// processed", the commit is forgotten and a rejoin from it starts at 0.
    fn rewind_commit(&self, st: &mut State<T>, partition: usize, offset: u64) {
        match offset.checked_sub(1) {
            Some(through) => {
                if st.committed[partition].is_some_and(|c| c > through)
                    && st.cursors[partition].commit(through).is_ok()
                {
                    st.committed[partition] = Some(through);
                }
            }
            // Nothing processed: no commit at all, and a rejoin from the
            // commit starts at 0.
            None => {
                st.cursors[partition].forget_commit();
                st.committed[partition] = None;
                st.resume[partition] = Some(0);
            }
        }
    }

    /// Manual mode: the committed position is just below the lowest
    /// unacknowledged offset, or dead letter waiting for the sink (or
    /// below the next one to hand out). Called whenever one of those
    /// changes: acknowledgements, expiries, dead letters taken, and every
    /// move of the cursor but a seek (a claim reading on, a relay armed
    /// ahead past expired messages), so that the commit never depends on
    /// what the cursor happened to hold in its read-ahead buffer.
    fn update_commit(&self, st: &mut State<T>, partition: usize) {
        let Some(cursor) = st.cursors.get(partition) else {
            return;
        };
        let next = st
            .lowest_unprocessed(partition)
            .map_or(cursor.position(), |o| o.min(cursor.position()));
        if let Some(through) = next.checked_sub(1) {
            if st.committed[partition].is_none_or(|c| c < through) {
                // Only moves forward; a gap below `next` cannot be re-read.
                if st.cursors[partition].commit(through).is_ok() {
                    st.committed[partition] = Some(through);
                    // Dead letters taken that no cursor reads again
                    // without a seek below the commit.
                    while let Some(&k) = st.taken.range((partition, 0)..=(partition, through)).next() {
                        st.taken.remove(&k);
                    }
                }
            }
        }
    }

    pub(crate) fn ack(&self, member: u64, partition: usize, offset: u64) -> Result<(), AckError> {
        if self.config.ack == AckMode::Auto {
            return Err(AckError::AutoAck);
        }
        if partition >= self.sources.len() {
            return Err(AckError::NoSuchPartition { partition });
        }
        let mut st = self.state.lock();
        match st.pending.get(&(partition, offset)) {
            Some(p) if p.owner == Some(member) => {
                let before = st.pending_count();
                // Dropped after the lock is released.
                let _done = st.pending.remove(&(partition, offset));
                if let Some(m) = st.members.get_mut(&member) {
                    m.last_active = Instant::now();
                }
                self.update_commit(&mut st, partition);
                self.acknowledged(st, before);
                Ok(())
            }
            _ => Err(AckError::NotOwned { partition, offset }),
        }
    }

    /// Automatic mode: takes back messages `member` claimed and did not
    /// hand on, for the next member that looks (before new ones), their
    /// delivery count unchanged. (Manual mode: they are pending to the
    /// member already, and come back when it leaves or idles.)
    pub(crate) fn give_back(&self, member: u64, claims: Vec<Claimed<T>>) {
        if self.config.ack == AckMode::Manual || claims.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        if st.cursors.is_empty() || !st.members.contains_key(&member) {
            // Not a member of a live group (it left already).
            st.garbage.extend(claims.into_iter().map(|c| c.value));
            self.unlock(st, Vec::new());
            return;
        }
        for c in claims {
            if c.partition >= self.sources.len() {
                continue;
            }
            let key = (c.partition, c.offset);
            if st.pending.contains_key(&key) {
                st.garbage.push(c.value);
                continue;
            }
            st.pending.insert(
                key,
                Pending {
                    owner: None,
                    // Raised again when it is handed out.
                    deliveries: c.deliveries.saturating_sub(1),
                    timestamp: c.timestamp,
                    value: c.value,
                },
            );
            st.redeliver.insert(key);
        }
        let mut wake = Vec::new();
        self.restore(&mut st, &mut wake);
        self.unlock(st, wake);
    }

    /// Manual mode: gives a message `member` holds back for redelivery now.
    pub(crate) fn nack(&self, member: u64, partition: usize, offset: u64) -> Result<(), AckError> {
        if self.config.ack == AckMode::Auto {
            return Err(AckError::AutoAck);
        }
        if partition >= self.sources.len() {
            return Err(AckError::NoSuchPartition { partition });
        }
        let mut st = self.state.lock();
        let key = (partition, offset);
        match st.pending.get_mut(&key) {
            Some(p) if p.owner == Some(member) => {
                p.owner = None;
                let now = Instant::now();
                // One past its TTL is dropped when it would be handed out
                // again, never dead-lettered, whatever its deliveries.
                let expired =
                    self.ttls[partition].is_some_and(|ttl| now.saturating_duration_since(p.timestamp) >= ttl);
                let last = self.at_limit(p) && !expired;
                if let Some(m) = st.members.get_mut(&member) {
                    m.last_active = now;
                }
                let mut wake = Vec::new();
                if expired {
                    st.redeliver.insert(key);
                    self.expire_queued(&mut st, now);
                } else if last {
                    // Delivered as often as allowed: a dead letter now,
                    // rather than when some member next claims (nobody
                    // may).
                    self.bury(&mut st, key);
                    st = self.offer_dead_letters(st, &mut wake);
                } else {
                    st.redeliver.insert(key);
                }
                // A parked member that may take it (or the room a dead
                // letter taken by the sink made) is woken.
                self.restore(&mut st, &mut wake);
                self.unlock(st, wake);
                Ok(())
            }
            _ => Err(AckError::NotOwned { partition, offset }),
        }
    }

    /// Restarts `member`'s ack timeout.
    pub(crate) fn keep_alive(&self, member: u64) {
        if let Some(m) = self.state.lock().members.get_mut(&member) {
            m.last_active = Instant::now();
        }
    }

    /// After acknowledgements took the pending count down from `before`:
    /// wakes members for the room made, and offers the dead letters
    /// waiting to the sink again. Releases the lock.
    fn acknowledged<'a>(&'a self, mut st: MutexGuard<'a, State<T>>, before: usize) {
        let mut wake = Vec::new();
        self.room_freed(&mut st, before, &mut wake);
        if !st.dead.is_empty() {
            st = self.offer_dead_letters(st, &mut wake);
        }
        self.unlock(st, wake);
    }

    /// Manual mode: acknowledges every message this member holds in
    /// `partition` up to and including `offset`. Auto mode: records the
    /// commit.
    pub(crate) fn commit(&self, member: u64, partition: usize, offset: u64) -> Result<(), AckError> {
        if partition >= self.sources.len() {
            return Err(AckError::NoSuchPartition { partition });
        }
        let high = self.sources[partition].high();
        if offset >= high {
            return Err(AckError::NotPublished {
                partition,
                offset,
                high,
            });
        }
        let mut st = self.state.lock();
        if self.config.ack == AckMode::Auto {
            if let Some(c) = st.cursors.get_mut(partition) {
                if c.commit(offset).is_ok() {
                    st.committed[partition] = Some(offset);
                    st.unflushed[partition] = false;
                }
            }
            return Ok(());
        }
        let mine: Vec<Key> = st
            .pending
            .range((partition, 0)..=(partition, offset))
            .filter(|(_, p)| p.owner == Some(member))
            .map(|(k, _)| *k)
            .collect();
        if !mine.is_empty() {
            // Acknowledging: not idle (see `GroupConfig::ack_timeout`).
            if let Some(m) = st.members.get_mut(&member) {
                m.last_active = Instant::now();
            }
        }
        let before = st.pending_count();
        for k in mine {
            if let Some(m) = st.pending.remove(&k) {
                st.garbage.push(m.value);
            }
        }
        self.update_commit(&mut st, partition);
        self.acknowledged(st, before);
        Ok(())
    }

    pub(crate) fn seek(&self, partition: usize, offset: u64) -> Result<(), GroupError> {
        let mut st = self.state.lock();
        self.flush(&mut st);
        let count = st.cursors.len();
        let cursor = st
            .cursors
            .get_mut(partition)
            .ok_or(GroupError::NoSuchPartition { partition, count })?;
        cursor
            .seek(offset)
            .map_err(|range| GroupError::OutOfRange { partition, range })?;
        self.unqueue_from(&mut st, partition, offset);
        let wake = self.wake_everyone(&mut st);
        self.unlock(st, wake);
        Ok(())
    }

    /// Moves every partition's cursor to `offset`, or none: the windows
    /// are checked first, and the moves cannot fail. Otherwise as
    /// [`seek`](Self::seek) for each partition (pending messages stay as
    /// they are, those queued for redelivery at or past `offset` go out
    /// as new instead; parked members are woken).
    pub(crate) fn seek_all(&self, offset: u64) -> Result<(), GroupError> {
        let mut st = self.state.lock();
        self.flush(&mut st);
        // A window only moves up: `high` never goes down, and an eviction
        // raises `low`. An offset checked here is therefore still at or
        // below `high` when the cursors move; one evicted since the check
        // is accepted by `seek_or_lag` (the next receive reports it as
        // lagged), so no move fails once the first is made.
        for (partition, topic) in self.sources.iter().enumerate() {
            let stats = topic.stats();
            let (low, high) = (stats.low, stats.high);
            if !(low..=high).contains(&offset) {
                return Err(GroupError::OutOfRange {
                    partition,
                    range: OutOfRange {
                        requested: offset,
                        low,
                        high,
                    },
                });
            }
        }
        for cursor in &mut st.cursors {
            let moved = cursor.seek_or_lag(offset);
            debug_assert!(moved.is_ok(), "checked against the window: {moved:?}");
        }
        for partition in 0..st.cursors.len() {
            self.unqueue_from(&mut st, partition, offset);
        }
        let wake = self.wake_everyone(&mut st);
        self.unlock(st, wake);
        Ok(())
    }

    /// After a seek of `partition` back to `offset`: the messages queued
    /// for redelivery there, at or past `offset` (nacked or left by a
    /// member in manual mode, given back in automatic mode), go out again
    /// as new when the cursor reaches them (as those pending with members
    /// do), so they leave the queue, with their pending entries (nobody
    /// holds them); otherwise each went out twice, from the queue and as
    /// new. A `Committed` rejoin after the last member left starts no
    /// later than the lowest of them, as it would have while they were
    /// pending: with nothing committed, through `resume`; in automatic
    /// mode, whose commit moved past them when they were handed out, the
    /// commit moves back below them now (what they were given back for:
    /// nobody has handled them). In manual mode the commit is below every
    /// unacknowledged message already.
    fn unqueue_from(&self, st: &mut State<T>, partition: usize, offset: u64) {
        let queued: Vec<Key> = st
            .redeliver
            .range((partition, offset)..=(partition, u64::MAX))
            .copied()
            .collect();
        if let Some(&(_, lowest)) = queued.first() {
            match st.committed[partition] {
                None => st.resume[partition] = Some(st.resume[partition].map_or(lowest, |r| r.min(lowest))),
                Some(_) if self.config.ack == AckMode::Auto => self.rewind_commit(st, partition, lowest),
                Some(_) => {}
            }
        }
        for key in queued {
            st.redeliver.remove(&key);
            if let Some(p) = st.pending.remove(&key) {
                st.garbage.push(p.value);
            }
        }
    }

    pub(crate) fn may_read(&self, member: u64, partition: usize) -> bool {
        let st = self.state.lock();
        st.members.contains_key(&member) && self.eligible(&st, member, partition)
    }

    pub(crate) fn position(&self, partition: usize) -> Option<u64> {
        self.state.lock().cursors.get(partition).map(|c| c.position())
    }

    pub(crate) fn stats(&self) -> GroupStats {
        let mut st = self.state.lock();
        self.flush(&mut st);
        let mut lag = 0u64;
        let mut committed = Vec::with_capacity(self.sources.len());
        for (p, topic) in self.sources.iter().enumerate() {
            let next = match st.cursors.get(p) {
                Some(c) => c.position(),
                None => topic
                    .committed(&self.name)
                    .map(|c| c + 1)
                    .or(st.resume[p])
                    .unwrap_or(topic.high()),
            };
            let unacked_from = st.lowest_unprocessed(p).map_or(next, |o| o.min(next));
            lag += topic.high().saturating_sub(unacked_from);
            committed.push(topic.committed(&self.name));
        }
        let members = st.members.len();
        let readers = match self.config.assignment {
            Assignment::Shared => members,
            Assignment::Exclusive => members.min(1),
        };
        GroupStats {
            name: self.name.to_string(),
            members,
            readers: vec![readers; self.sources.len()],
            waiting: st.waiters.parked(),
            committed,
            lag,
            pending: st.pending_count(),
            redeliveries: st.redeliveries,
            dead_lettered: st.dead_lettered,
            dead_letters_waiting: st.dead.len(),
            expired: st.expired,
        }
    }
}
