//! Random sequences of operations on a consumer group over tiny topics,
//! each step checked against a plain reference model (maps and sets) of
//! the documented group contract, not against the implementation.
//!
//! Operations: publish and batch publish to a partition, members joining
//! (every `StartFrom`) and leaving (drop), `try_recv`, `try_recv_batch`
//! (including `max = 0`), `recv_batch` bounded by a timeout under paused
//! time, acks and nacks (`Member::nack`) of held, foreign, stale and
//! unknown messages, `Member::give_back` of what a member received (a
//! suffix, as a wrapper that stopped part-way through a batch would, any
//! subset, or nothing; in either mode), commits and
//! seeks (of one partition, and `seek_all`) in and out of the window and
//! of range, advancing the clock past or below the ack timeout and the
//! topics' TTL, `stats` and `flush_commits`, and switching the
//! dead-letter sink between taking and refusing (as a full dead-letter
//! topic). Configurations include a TTL (on topics big enough never to
//! evict, so the model knows what expired) and `max_pending`.
//!
//! Checked at every step: every message handed out is the one published
//! there (value and timestamp); a message is held by one member at a time;
//! new messages of a partition are handed out in order, each once (auto
//! mode: never twice unless the group was moved back by a seek or a
//! rejoin, or a member gave it back: then it goes to the next member that
//! looks and may take it, before new messages, with the same delivery
//! count, and the next receive that may take it does; if every member
//! leaves first, the commit moves back to the first message given back
//! and not taken, or is forgotten at offset 0, so that a rejoin from the
//! commit reads it again; a seek back that makes such messages go out as
//! new moves the commit back below them there and then); with manual acks a message is handed out again
//! only after its holder nacked it, left, lost its partition in a
//! rebalance or idled past the ack timeout, redeliveries come before new
//! messages with `deliveries` counting up (a member parked that may take
//! a nacked message is woken for it), and after `max_deliveries` it goes
//! to the dead-letter sink instead; in manual mode `give_back` changes
//! nothing; a message is never handed out once it has expired (a pending
//! one due for redelivery is dropped, counted as expired and committed
//! past, and the group passes silently only over messages that expired or
//! are dead letters); a dead letter is never handed to a member again; a
//! dead letter the sink refused waits in the
//! group, counted as pending, holding the commit below it, offered again
//! at the start of every receive and after acks, across the last member
//! leaving; the group never holds more than `max_pending` and, at the
//! limit, hands out redeliveries only; acks and nacks answer `NotOwned`,
//! `AutoAck`, `NoSuchPartition` exactly when they should; the committed offsets,
//! lag, pending, redelivery, dead-letter (taken and waiting) and expired
//! counters equal the model's; every gap the group skips is
//! reported by one `Lagged` with the exact count, before anything else; with
//! `Assignment::Exclusive` only a partition's owner receives from it; a
//! `Block` topic never makes a live group lag. At the end of each case a
//! member drains the group and every published message must be processed
//! (acknowledged; auto mode: handed out and not given back, or committed
//! by `commit`), dead-lettered, reported as lagged, expired, or
//! deliberately skipped by a seek or a start position.
//!
//! Where the docs are silent the model follows the implementation, as a
//! choice of contract: exclusive assignment gives partition `p` to the
//! `p % n`th member in join order, leaving out (while others remain)
//! members that failed: found, by a receive, holding messages past the
//! ack timeout while not waiting in a receive of their own, until their
//! next receive (a failure moves only the failed members' partitions, to
//! the member whose receive found it; coming back shares them out
//! afresh); an
//! idle member's messages are taken
//! over lazily, by the next receive of any member (the idle one included,
//! which then gets them back as redeliveries); a receive attempt counts as
//! activity even when it finds nothing; the manual commit is recomputed
//! when messages are acknowledged, committed, dead-lettered or expire,
//! and whenever the group's position moves other than by a seek (a
//! receive handing messages out or passing over expired messages, dead
//! letters or a gap; a relay armed ahead past expired messages); a seek
//! back hands messages out again as new, taking them from a member that
//! still held them; the group's cursor reads ahead, so a topic may evict
//! messages the group has not handed out yet without a lag (only a jump
//! of `Member::position` is a gap); a
//! `Committed` rejoin below the window reports the gap again even if an
//! earlier session had reported it; the dead letters a receive makes go to
//! the sink before it hands out new messages (so what the sink takes makes
//! room under `max_pending` for that receive); a dead letter, waiting or
//! taken by the sink, that the group reads again (after a seek back or a
//! rejoin) is passed over, and not counted in a gap, until the committed
//! offset passes it (a seek below the commit re-reads what was
//! processed, dead letters taken included); room under `max_pending` is
//! counted for each partition read in turn; a nack counts as activity for
//! the ack timeout (as an ack does); a nack of a message delivered
//! `max_deliveries` times makes it a dead letter at once, offered to the
//! sink then with the dead letters waiting (any other nack offers
//! nothing); a nack of a message that reached the TTL drops it at once,
//! counted as expired, with every other message queued for redelivery
//! that reached it; in auto mode, messages given back and not yet handed
//! on count in `GroupStats::pending` and in the lag, and one that expires
//! first is dropped when a receive would hand it on, counted in
//! `GroupStats::expired` (the commit then recomputed as in manual mode:
//! only forward, so in practice unchanged), and not in `redeliveries`; a
//! message given back while a copy of it is queued already (two copies,
//! after a seek back) is queued once. A member gives back only messages
//! it received (the model keeps its last eight at hand; older ones count
//! as handled); in auto mode an explicit `commit` declares processed
//! everything through it, messages given back included (the group may
//! then leave out those it had yet to read again after a seek back; the
//! ones still queued it hands on all the same, and moves the commit back
//! below them if every member leaves first).
//!
//! In manual mode with nothing committed, the restart offset the group
//! keeps for a `Committed` rejoin when its last member leaves is the
//! lowest unprocessed offset (a dead letter waiting, say), but never past
//! the group's position (found by this model, fixed: the rejoin skipped
//! the messages between, never processed).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use memq_core::{Overflow, PublishError, StartFrom, Topic, TopicConfig};
use memq_groups::{
    AckError, AckMode, Assignment, Claimed, DeadLetter, DeadLetterReason, Group, GroupConfig, GroupError,
    Member, MemberWaiter, OutOfRange, RecvError, TryRecvError,
};
use proptest::prelude::*;
use tokio::time::Instant;

const GROUP: &str = "g";

#[derive(Debug, Clone)]
struct Config {
    partitions: usize,
    cap: usize,
    block: bool,
    manual: bool,
    /// Ignored by the group in auto mode (documented as manual-only).
    ack_timeout_ms: Option<u64>,
    max_deliveries: Option<u32>,
    exclusive: bool,
    /// The topics' TTL (ms). With a TTL the topics are made big enough
    /// never to evict (cap 512): the model then knows every message the
    /// group passes over expired, and checks the group's own TTL rule
    /// (pending messages that expired are dropped, never redelivered)
    /// exactly; the interplay of expiry with eviction is memq-core's.
    ttl_ms: Option<u64>,
    /// `GroupConfig::max_pending` (manual mode only).
    max_pending: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Earliest,
    Latest,
    Offset(u64),
    Committed,
}

#[derive(Debug, Clone)]
enum Op {
    Publish(usize),
    PublishBatch(usize, usize),
    Join(Start),
    Leave(usize),
    TryRecv(usize),
    TryRecvBatch(usize, usize),
    /// `recv_batch(max)` under a timeout of this many ms.
    RecvWait(usize, usize, u64),
    /// Member, how to pick the target, raw partition, raw offset.
    Ack(usize, u8, usize, u64),
    /// Member, raw partition, how to pick the offset, raw offset.
    Commit(usize, usize, u8, u64),
    Seek(usize, usize, u8, u64),
    /// Member, how to pick the offset, raw offset.
    SeekAll(usize, u8, u64),
    Advance(u64),
    Stats,
    Flush,
    /// Whether the dead-letter sink takes what it is offered from now on
    /// (`false`: it hands dead letters back, as a full dead-letter topic).
    Sink(bool),
    /// Member, batch size: polls a receive of the member that stays
    /// waiting (`poll_recv_batch` by hand), or polls its waiting one
    /// again without a wake-up.
    Park(usize, usize),
    /// Drops the member's waiting receive (cancelled).
    Abandon(usize),
    /// `nack`: member, how to pick the target, raw partition, raw offset
    /// (picked as for [`Op::Ack`]).
    Nack(usize, u8, usize, u64),
    /// `give_back`: member, how to pick among the messages it received
    /// (a suffix, a subset, none), raw choice.
    GiveBack(usize, u8, u64),
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..=2,
        1usize..=6,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(5u64..40),
        prop::option::of(1u32..=3),
        any::<bool>(),
        prop_oneof![3 => Just(None), 1 => (10u64..60).prop_map(Some)],
        prop::option::of(1usize..=3),
    )
        .prop_map(
            |(
                partitions,
                cap,
                block,
                manual,
                ack_timeout_ms,
                max_deliveries,
                exclusive,
                ttl_ms,
                max_pending,
            )| {
                Config {
                    partitions,
                    cap: if ttl_ms.is_some() { 512 } else { cap },
                    block,
                    manual,
                    ack_timeout_ms,
                    max_deliveries,
                    exclusive,
                    ttl_ms,
                    max_pending,
                }
            },
        )
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        1 => Just(Start::Earliest),
        1 => Just(Start::Latest),
        1 => (0u64..12).prop_map(Start::Offset),
        2 => Just(Start::Committed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..2).prop_map(Op::Publish),
        2 => (0usize..2, 0usize..5).prop_map(|(p, k)| Op::PublishBatch(p, k)),
        3 => start().prop_map(Op::Join),
        2 => (0usize..3).prop_map(Op::Leave),
        6 => (0usize..3).prop_map(Op::TryRecv),
        3 => (0usize..3, 0usize..5).prop_map(|(i, m)| Op::TryRecvBatch(i, m)),
        2 => (0usize..3, 1usize..4, 1u64..50).prop_map(|(i, m, ms)| Op::RecvWait(i, m, ms)),
        5 => (0usize..3, 0u8..9, 0usize..3, 0u64..12).prop_map(|(i, s, p, o)| Op::Ack(i, s, p, o)),
        1 => (0usize..3, 0usize..3, 0u8..4, 0u64..12).prop_map(|(i, p, s, o)| Op::Commit(i, p, s, o)),
        1 => (0usize..3, 0usize..3, 0u8..5, 0u64..12).prop_map(|(i, p, s, o)| Op::Seek(i, p, s, o)),
        1 => (0usize..3, 0u8..6, 0u64..12).prop_map(|(i, s, o)| Op::SeekAll(i, s, o)),
        3 => (0u64..40).prop_map(Op::Advance),
        1 => Just(Op::Stats),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(Op::Sink),
        4 => (0usize..3, 1usize..4).prop_map(|(i, m)| Op::Park(i, m)),
        1 => (0usize..3).prop_map(Op::Abandon),
        4 => (0usize..3, 0u8..9, 0usize..3, 0u64..12).prop_map(|(i, s, p, o)| Op::Nack(i, s, p, o)),
        4 => (0usize..3, 0u8..7, 0u64..64).prop_map(|(i, s, r)| Op::GiveBack(i, s, r)),
    ]
}

type Key = (usize, u64);

/// The value published at `offset` of `partition`.
fn val(partition: usize, offset: u64) -> u64 {
    ((partition as u64) << 32) | offset
}

/// A message handed out and not acknowledged.
#[derive(Debug, Clone, Copy)]
struct Pend {
    /// `None` while queued for redelivery.
    owner: Option<u64>,
    deliveries: u32,
}

struct Slot {
    id: u64,
    member: Member<u64>,
    /// Last receive or acknowledgement (ms), for the ack timeout.
    last_active: u64,
    /// A receive of this member left waiting (`Op::Park`), polled by hand
    /// only when woken.
    hand: Option<Hand>,
    /// The last messages it received (at most [`HELD`], oldest first),
    /// not given back: what `Op::GiveBack` picks from. Older ones count
    /// as handled.
    held: Vec<Claimed<u64>>,
}

/// How many received messages a member keeps at hand to give back.
const HELD: usize = 8;

/// A waiting receive driven by hand: its waiter, the batch size, and a
/// waker that records being woken.
struct Hand {
    waiter: MemberWaiter<u64>,
    max: usize,
    flag: Arc<Flag>,
    waker: Waker,
    /// When its timer (ack-timeout take-over, dead-letter retry) fires, as
    /// the model expects it armed at its last poll (ms).
    timer: Option<u64>,
}

/// Whether the hand was woken since it was last polled, and when.
struct Flag(AtomicBool, Mutex<Vec<Instant>>);

impl Flag {
    fn new() -> Self {
        Flag(AtomicBool::new(false), Mutex::new(Vec::new()))
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push(Instant::now());
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Part {
    topic: Topic<u64>,
    /// Publish time (ms) of every offset ever published.
    ts: Vec<u64>,
    /// Oldest retained offset.
    low: u64,
    /// While the group has members: the next offset it hands out from
    /// this partition (every lower one was handed out, reported as lagged
    /// or deliberately skipped).
    next: u64,
    /// Whether the group may find a gap here (an evicting topic, or a
    /// blocking one the group resumed below the window of).
    may_lag: bool,
    /// The group's committed offset.
    committed: Option<u64>,
    /// Manual mode, nothing committed yet: the lowest message handed out
    /// and not acknowledged when the last member left, which the docs
    /// promise a `StartFrom::Committed` rejoin receives again.
    resume: Option<u64>,
    /// Where the group was when its last member left.
    last_pos: u64,
}

impl Part {
    fn high(&self) -> u64 {
        self.ts.len() as u64
    }
}

/// Where a claim moved a partition's position past the group's next
/// offset without handing messages out.
#[derive(Debug)]
struct Skip {
    partition: usize,
    /// The new position.
    to: u64,
    /// Offsets passed over because they expired.
    expired: Vec<u64>,
    /// The gap: runs of offsets lost to eviction, between dead letters
    /// waiting (which are not lost).
    gap: Vec<(u64, u64)>,
}

/// How one claim (one receive attempt under the group lock) ended.
enum Outcome {
    Got(Vec<Claimed<u64>>),
    Empty,
    Lagged(u64),
}

struct Model {
    cfg: Config,
    group: Group<u64>,
    parts: Vec<Part>,
    /// Live members in join order, which is id order.
    members: Vec<Slot>,
    next_id: u64,
    /// Exclusive mode: the owner of each partition.
    owners: Vec<Option<u64>>,
    /// Exclusive mode with an ack timeout: members found holding messages
    /// past it while not waiting in a receive (failed), left out of the
    /// assignment until their next receive.
    stalled: std::collections::BTreeSet<u64>,
    pending: BTreeMap<Key, Pend>,
    /// Recently acknowledged, for stale acks.
    acked: Vec<Key>,
    /// Acknowledged (manual mode), or committed by `commit` (auto mode).
    processed: HashSet<Key>,
    /// Auto mode: copies of each message handed out and not given back
    /// (handled by the member that received them).
    handed: BTreeMap<Key, u32>,
    dead: HashSet<Key>,
    lagged: HashSet<Key>,
    skipped: HashSet<Key>,
    /// Offsets that expired before the group could hand them out (new,
    /// or pending and due for redelivery).
    expired: HashSet<Key>,
    /// Pending messages dropped because they expired (`GroupStats::expired`).
    expired_pending: u64,
    /// Offsets the group skipped over that no `Lagged` has reported yet:
    /// (partition, from, to), runs without dead letters waiting.
    unannounced: Vec<(usize, u64, u64)>,
    redeliveries: u64,
    /// Dead letters the sink refused, waiting in the group: deliveries.
    backlog: BTreeMap<Key, u32>,
    /// Expected dead letters the sink took, in order: (partition, offset,
    /// deliveries).
    dead_letters: Vec<(usize, u64, u32)>,
    sink: Arc<Mutex<Vec<DeadLetter<u64>>>>,
    /// Whether the sink takes dead letters.
    accepting: Arc<AtomicBool>,
    origin: Instant,
    now: u64,
}

impl Model {
    fn n(&self) -> usize {
        self.parts.len()
    }

    fn pick(&self, i: usize) -> Option<u64> {
        (!self.members.is_empty()).then(|| self.members[i % self.members.len()].id)
    }

    fn member(&self, id: u64) -> &Member<u64> {
        &self.members.iter().find(|s| s.id == id).unwrap().member
    }

    fn slot_mut(&mut self, id: u64) -> Option<&mut Slot> {
        self.members.iter_mut().find(|s| s.id == id)
    }

    fn eligible(&self, m: u64, p: usize) -> bool {
        !self.cfg.exclusive || self.owners[p] == Some(m)
    }

    fn lowest_pending(&self, p: usize) -> Option<u64> {
        self.pending
            .range((p, 0)..=(p, u64::MAX))
            .next()
            .map(|(k, _)| k.1)
    }

    /// The lowest offset of `p` pending or waiting as a dead letter.
    fn lowest_unprocessed(&self, p: usize) -> Option<u64> {
        let dead = self
            .backlog
            .range((p, 0)..=(p, u64::MAX))
            .next()
            .map(|(k, _)| k.1);
        match (self.lowest_pending(p), dead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether offset `o` of `p` has reached the TTL by now.
    fn is_expired(&self, p: usize, o: u64) -> bool {
        self.cfg
            .ttl_ms
            .is_some_and(|ttl| self.now >= self.parts[p].ts[o as usize] + ttl)
    }

    /// The topic removes what expired from its front (on a publish, and
    /// on the stats every step reads).
    fn sweep(&mut self, p: usize) {
        while self.parts[p].low < self.parts[p].high() && self.is_expired(p, self.parts[p].low) {
            self.parts[p].low += 1;
        }
    }

    /// Manual mode with `max_pending`: how many new messages the group may
    /// hand out (pending messages and dead letters waiting count).
    fn room(&self) -> usize {
        match (self.cfg.manual, self.cfg.max_pending) {
            (true, Some(limit)) => limit.saturating_sub(self.pending.len() + self.backlog.len()),
            _ => usize::MAX,
        }
    }

    /// Offers the dead letters waiting to the sink, in partition and
    /// offset order: it takes all of them, or (refusing) none.
    fn offer(&mut self) {
        if !self.accepting.load(Ordering::Relaxed) || self.backlog.is_empty() {
            return;
        }
        let taken = std::mem::take(&mut self.backlog);
        for (&(p, o), &deliveries) in &taken {
            self.dead.insert((p, o));
            self.dead_letters.push((p, o, deliveries));
        }
        let parts: std::collections::BTreeSet<usize> = taken.keys().map(|k| k.0).collect();
        for p in parts {
            self.update_commit(p);
        }
    }

    fn instant(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// Exclusive mode: partition `p` belongs to the `p % n`th live member
    /// in id order (assumption: the docs only say "rebalanced"; this is
    /// the implementation's round robin). The owned pending messages of a
    /// partition that changed owner are queued for redelivery.
    fn rebalance(&mut self) {
        if !self.cfg.exclusive {
            return;
        }
        // Failed members are left out while others remain.
        let mut ids: Vec<u64> = self
            .members
            .iter()
            .map(|s| s.id)
            .filter(|id| !self.stalled.contains(id))
            .collect();
        if ids.is_empty() {
            ids = self.members.iter().map(|s| s.id).collect();
        }
        for p in 0..self.n() {
            let owner = (!ids.is_empty()).then(|| ids[p % ids.len()]);
            if self.owners[p] != owner {
                self.owners[p] = owner;
                for (_, pend) in self.pending.range_mut((p, 0)..=(p, u64::MAX)) {
                    pend.owner = None;
                }
            }
        }
    }

    /// Exclusive mode: the partitions of failed members go to `receiver`,
    /// the member whose receive found them failed; the others keep theirs.
    fn reassign_failed(&mut self, receiver: u64) {
        for p in 0..self.n() {
            if self.owners[p].is_some_and(|o| self.stalled.contains(&o)) {
                self.owners[p] = Some(receiver);
                for (_, pend) in self.pending.range_mut((p, 0)..=(p, u64::MAX)) {
                    pend.owner = None;
                }
            }
        }
    }

    /// Manual mode: the committed offset is just below the lowest
    /// unacknowledged offset or dead letter waiting (or the next to hand
    /// out), and only moves forward. Recomputed when messages are
    /// acknowledged, committed, dead-lettered or expire, and when the
    /// position moves other than by a seek (assumption: a seek only moves
    /// the position).
    fn update_commit(&mut self, p: usize) {
        if self.members.is_empty() {
            return;
        }
        let next = self
            .lowest_unprocessed(p)
            .map_or(self.parts[p].next, |o| o.min(self.parts[p].next));
        if let Some(through) = next.checked_sub(1) {
            let part = &mut self.parts[p];
            if part.committed.is_none_or(|c| c < through) {
                part.committed = Some(through);
            }
        }
    }

    fn mark(set: &mut HashSet<Key>, p: usize, range: std::ops::Range<u64>) {
        set.extend(range.map(|o| (p, o)));
    }

    /// When the earliest message pending with another member becomes
    /// claimable by `m` (the wake-up of a waiting receive).
    fn next_deadline(&self, m: u64) -> Option<u64> {
        let t = self.cfg.ack_timeout_ms?;
        if !self.cfg.manual {
            return None;
        }
        self.pending
            .values()
            .filter_map(|p| p.owner)
            .filter(|o| *o != m)
            .filter_map(|o| self.members.iter().find(|s| s.id == o))
            .map(|s| s.last_active + t)
            .min()
    }

    /// Whether the group fetched offset `o` of `p` (and then passed over
    /// it, as a dead letter waiting): it was retained and not expired.
    fn fetched(&self, p: usize, o: u64) -> bool {
        if self.cfg.ttl_ms.is_some() {
            !self.is_expired(p, o)
        } else {
            o >= self.parts[p].low
        }
    }

    /// Whether the group passes over offset `o` of `p` when it reads it
    /// again: a dead letter waiting for the sink, or one the sink took
    /// above the committed offset (never handed to a member again).
    fn passed_over(&self, p: usize, o: u64) -> bool {
        self.backlog.contains_key(&(p, o))
            || (self.dead.contains(&(p, o)) && self.parts[p].committed.is_none_or(|c| c < o))
    }

    /// Moves partition `p`'s next offset up to `to` over offsets the group
    /// passes over silently: dead letters waiting or taken (see
    /// [`passed_over`](Self::passed_over)), and messages that expired. Stops at the first other one. Returns where it stopped,
    /// the expired offsets, and whether a dead letter was fetched.
    fn silent_run(&self, p: usize, to: u64) -> (u64, Vec<u64>, bool) {
        let (mut at, mut expired, mut fetched) = (self.parts[p].next, Vec::new(), false);
        while at < to {
            if self.passed_over(p, at) {
                fetched |= self.fetched(p, at);
            } else if self.is_expired(p, at) {
                expired.push(at);
            } else {
                break;
            }
            at += 1;
        }
        (at, expired, fetched)
    }

    /// Position jumps found after a claim of `m`: what the group passed
    /// over silently, and the gaps it skipped.
    fn find_skips(&self, m: u64) -> Result<Vec<Skip>, TestCaseError> {
        let mut skips = Vec::new();
        for p in 0..self.n() {
            let pos = self.member(m).position(p);
            let part = &self.parts[p];
            if pos == Some(part.next) {
                continue;
            }
            let pos = pos.unwrap_or(0);
            prop_assert!(
                pos > part.next,
                "partition {} moved back from {} to {} on a receive",
                p,
                part.next,
                pos
            );
            prop_assert!(
                self.eligible(m, p),
                "member {} read partition {} it does not own",
                m,
                p
            );
            let (from, expired, _) = self.silent_run(p, pos);
            let mut gap = Vec::new();
            if from < pos {
                prop_assert!(
                    self.cfg.ttl_ms.is_none(),
                    "partition {} skipped {}..{}, not expired, on a topic that never evicts",
                    p,
                    from,
                    pos
                );
                prop_assert!(
                    part.may_lag,
                    "partition {} skipped {}..{} although the topic blocks",
                    p,
                    from,
                    pos
                );
                prop_assert_eq!(
                    pos,
                    part.low,
                    "a gap in partition {} ends at the oldest retained offset",
                    p
                );
                // Runs between the dead letters (not lost).
                let mut run = from;
                for o in from..=pos {
                    if o == pos || self.passed_over(p, o) {
                        if o > run {
                            gap.push((run, o));
                        }
                        run = o + 1;
                    }
                }
            }
            skips.push(Skip {
                partition: p,
                to: pos,
                expired,
                gap,
            });
        }
        Ok(skips)
    }

    /// Moves the model past what [`find_skips`](Self::find_skips) found;
    /// returns the partitions whose position moved (manual mode: the
    /// claim recomputes their commit).
    fn apply_skips(&mut self, skips: &[Skip]) -> Vec<usize> {
        let mut moved = Vec::new();
        for skip in skips {
            let p = skip.partition;
            for &o in &skip.expired {
                self.expired.insert((p, o));
            }
            for &(from, to) in &skip.gap {
                Self::mark(&mut self.lagged, p, from..to);
            }
            moved.push(p);
            let part = &mut self.parts[p];
            part.next = skip.to;
            part.may_lag = !self.cfg.block;
        }
        moved
    }

    fn check_claimed(&self, c: &Claimed<u64>, deliveries: u32) -> Result<(), TestCaseError> {
        prop_assert!(c.partition < self.n());
        let part = &self.parts[c.partition];
        prop_assert!(c.offset < part.high(), "offset {} never published", c.offset);
        prop_assert_eq!(
            c.value,
            val(c.partition, c.offset),
            "value of {:?}",
            (c.partition, c.offset)
        );
        prop_assert_eq!(c.timestamp, self.instant(part.ts[c.offset as usize]), "timestamp");
        prop_assert_eq!(
            c.deliveries,
            deliveries,
            "deliveries of {:?}",
            (c.partition, c.offset)
        );
        prop_assert!(
            !self.is_expired(c.partition, c.offset),
            "{:?} delivered (delivery {}) after it expired",
            (c.partition, c.offset),
            deliveries
        );
        Ok(())
    }

    /// Checks one claim of `m` for up to `max` messages against the model
    /// and applies it.
    fn claim(&mut self, m: u64, max: usize, outcome: Outcome) -> Result<(), TestCaseError> {
        self.claim_at(m, max, outcome, true)
    }

    /// As [`claim`](Self::claim); `settled`: the group's positions are
    /// those this claim left (not so for the claims of a waiting receive
    /// before its last, which the model replays afterwards: positions
    /// then show where the last left them).
    fn claim_at(&mut self, m: u64, max: usize, outcome: Outcome, settled: bool) -> Result<(), TestCaseError> {
        if max == 0 {
            prop_assert!(
                matches!(&outcome, Outcome::Got(v) if v.is_empty()),
                "max 0 returns Ok(0) and does nothing"
            );
            return Ok(());
        }
        if let Outcome::Got(v) = &outcome {
            prop_assert!(
                !v.is_empty() && v.len() <= max,
                "{} messages for max {}",
                v.len(),
                max
            );
            // At hand for `give_back`.
            if let Some(s) = self.slot_mut(m) {
                s.held.extend(v.iter().cloned());
                let over = s.held.len().saturating_sub(HELD);
                s.held.drain(..over);
            }
        }
        // Dead letters the sink refused before are offered to it again
        // first.
        self.offer();
        // Manual mode: a receive first takes the messages of idle members
        // (the receiver included), then marks the receiver active.
        if self.cfg.manual {
            if let Some(t) = self.cfg.ack_timeout_ms {
                // Exclusive mode: the receiver, if it had failed, gets its
                // share back; members that held messages past the timeout
                // while not waiting in a receive fail (assumption: the
                // docs say such a member "is considered failed"; waiting
                // in a receive, it is not, and takes its messages again).
                let returned = self.cfg.exclusive && self.stalled.remove(&m);
                let mut failed_now = false;
                if !self.pending.is_empty() {
                    let now = self.now;
                    let idle: Vec<u64> = self
                        .members
                        .iter()
                        .filter(|s| now - s.last_active >= t)
                        .map(|s| s.id)
                        .collect();
                    let mut failed = Vec::new();
                    for pend in self.pending.values_mut() {
                        if let Some(o) = pend.owner.filter(|o| idle.contains(o)) {
                            pend.owner = None;
                            failed.push(o);
                        }
                    }
                    if self.cfg.exclusive {
                        for o in failed {
                            let waiting = self.members.iter().any(|s| s.id == o && s.hand.is_some());
                            if o != m && !waiting {
                                failed_now |= self.stalled.insert(o);
                            }
                        }
                    }
                }
                // Coming back shares the partitions out afresh; a failure
                // moves only the failed members' partitions, to the member
                // whose receive found it.
                if returned {
                    self.rebalance();
                } else if failed_now {
                    self.reassign_failed(m);
                }
            }
            let now = self.now;
            if let Some(s) = self.slot_mut(m) {
                s.last_active = now;
            }
        }
        // Messages due for redelivery (auto mode: given back) that reached
        // the TTL are dropped (never delivered), counted, and committed
        // past.
        self.expire_queued();
        let pool: u64 = self.unannounced.iter().map(|&(_, from, to)| to - from).sum();
        // Redeliveries, in partition and offset order, before anything new;
        // one at its limit goes to the dead letters instead.
        let queued: Vec<Key> = self
            .pending
            .iter()
            .filter(|(k, p)| p.owner.is_none() && self.eligible(m, k.0))
            .map(|(k, _)| *k)
            .collect();
        let mut redeliver = Vec::new();
        let mut bury = Vec::new();
        for k in queued {
            if redeliver.len() == max {
                break;
            }
            // (Auto mode: given back, no limit.)
            if self.cfg.manual
                && self
                    .cfg
                    .max_deliveries
                    .is_some_and(|limit| self.pending[&k].deliveries >= limit)
            {
                bury.push(k);
            } else {
                redeliver.push(k);
            }
        }
        match outcome {
            Outcome::Got(out) => {
                prop_assert_eq!(pool, 0, "a lag found earlier is reported before anything else");
                self.bury(&bury);
                prop_assert!(
                    out.len() >= redeliver.len(),
                    "redeliveries come first: {:?}",
                    redeliver
                );
                for (c, k) in out.iter().zip(&redeliver) {
                    prop_assert_eq!((c.partition, c.offset), *k, "redelivery order");
                    if !self.cfg.manual {
                        // Given back: handed on with the same count, and
                        // then nobody's.
                        let pend = self.pending.remove(k).unwrap();
                        self.check_claimed(c, pend.deliveries)?;
                        *self.handed.entry(*k).or_default() += 1;
                        continue;
                    }
                    let pend = self.pending.get_mut(k).unwrap();
                    pend.owner = Some(m);
                    pend.deliveries += 1;
                    let d = pend.deliveries;
                    self.check_claimed(c, d)?;
                    self.redeliveries += 1;
                }
                // New messages: per partition, one contiguous run from the
                // group's position (passing over what expired and dead
                // letters waiting), within the room under `max_pending`.
                let room = self.room();
                let fresh = &out[redeliver.len()..];
                let mut runs: Vec<usize> = Vec::new();
                // Room is counted per partition read: a message handed out
                // again after a seek back replaces its pending entry.
                let (mut run_room, mut run_len, mut superseded) = (0, 0, false);
                for c in fresh {
                    let p = c.partition;
                    prop_assert!(p < self.n());
                    if runs.last() != Some(&p) {
                        prop_assert!(!runs.contains(&p), "partition {} read twice in one claim", p);
                        runs.push(p);
                        (run_room, run_len) = (self.room(), 0);
                    }
                    // One that replaces a pending entry (a seek back read
                    // it again) takes no room.
                    if !(self.cfg.manual && self.pending.contains_key(&(p, c.offset))) {
                        run_len += 1;
                    }
                    prop_assert!(
                        run_len <= run_room,
                        "{} new messages from partition {} with room for {} under max_pending",
                        run_len,
                        p,
                        run_room
                    );
                    prop_assert!(
                        self.eligible(m, p),
                        "member {} got partition {} it does not own",
                        m,
                        p
                    );
                    let (at, expired, _) = self.silent_run(p, c.offset);
                    prop_assert_eq!(c.offset, at, "next new message of partition {}", p);
                    for o in expired {
                        self.expired.insert((p, o));
                    }
                    self.check_claimed(c, 1)?;
                    self.parts[p].next = c.offset + 1;
                    if self.cfg.manual {
                        // A fresh delivery (after a seek back) supersedes
                        // an older pending one.
                        superseded |= self
                            .pending
                            .insert(
                                (p, c.offset),
                                Pend {
                                    owner: Some(m),
                                    deliveries: 1,
                                },
                            )
                            .is_some();
                    } else {
                        *self.handed.entry((p, c.offset)).or_default() += 1;
                        // Only forward: an explicit commit ahead holds.
                        let part = &mut self.parts[p];
                        part.committed = part.committed.max(Some(c.offset));
                    }
                }
                let skips = self.find_skips(m)?;
                // Found after some messages: reported by the next receive.
                for skip in &skips {
                    let p = skip.partition;
                    self.unannounced
                        .extend(skip.gap.iter().map(|&(from, to)| (p, from, to)));
                }
                runs.extend(self.apply_skips(&skips));
                if self.cfg.manual {
                    for p in runs {
                        self.update_commit(p);
                    }
                }
                // (Messages may be kept for members woken for them that
                // have not run yet: one each, at most.)
                if fresh.len() < (max - redeliver.len()).min(room) && !superseded {
                    let woken = self.woken_count();
                    let mut unread = 0;
                    for p in 0..self.n() {
                        if self.eligible(m, p) && !skips.iter().any(|s| s.partition == p && !s.gap.is_empty())
                        {
                            if woken == 0 {
                                prop_assert_eq!(
                                    self.parts[p].next,
                                    self.parts[p].high(),
                                    "batch of {} for max {} left partition {} unread",
                                    out.len(),
                                    max,
                                    p
                                );
                            }
                            unread += self.parts[p].high() - self.parts[p].next;
                        }
                    }
                    prop_assert!(
                        unread <= woken as u64,
                        "batch of {} for max {} left {} unread with {} members woken",
                        out.len(),
                        max,
                        unread,
                        woken
                    );
                }
            }
            Outcome::Empty => {
                prop_assert!(
                    redeliver.is_empty(),
                    "Empty while {:?} waited for redelivery",
                    redeliver
                );
                prop_assert_eq!(pool, 0, "Empty while a lag of {} was unreported", pool);
                self.bury(&bury);
                if !settled {
                    // Nothing it could have handed out: what is left to
                    // read had expired, or waits as dead letters; the
                    // group read past all of it. (Unless messages were
                    // kept for a receive woken for them: then the next
                    // settled claim finds where the group stands.)
                    let mut skips = Vec::new();
                    if self.room() > 0 && !self.others_notified_by(self.now) {
                        for p in 0..self.n() {
                            let high = self.parts[p].high();
                            if self.eligible(m, p) && self.parts[p].next != high {
                                let (at, expired, _) = self.silent_run(p, high);
                                prop_assert_eq!(at, high, "Empty with partition {} unread", p);
                                skips.push(Skip {
                                    partition: p,
                                    to: high,
                                    expired,
                                    gap: Vec::new(),
                                });
                            }
                        }
                    }
                    let moved = self.apply_skips(&skips);
                    if self.cfg.manual {
                        for p in moved {
                            self.update_commit(p);
                        }
                    }
                    return Ok(());
                }
                let skips = self.find_skips(m)?;
                prop_assert!(
                    skips.iter().all(|s| s.gap.is_empty()),
                    "Empty after skipping {:?}",
                    skips
                );
                let moved = self.apply_skips(&skips);
                if self.cfg.manual {
                    for p in moved {
                        self.update_commit(p);
                    }
                }
                if self.room() > 0 && !self.others_woken(m) {
                    for p in 0..self.n() {
                        if self.eligible(m, p) {
                            prop_assert_eq!(
                                self.parts[p].next,
                                self.parts[p].high(),
                                "Empty with partition {} unread",
                                p
                            );
                        }
                    }
                }
            }
            Outcome::Lagged(n) => {
                prop_assert!(n > 0, "Lagged(0)");
                if pool > 0 {
                    // A gap found by an earlier receive, reported first.
                    prop_assert_eq!(n, pool, "Lagged reports every unreported skip");
                    let skips = self.find_skips(m)?;
                    prop_assert!(skips.is_empty(), "moved before reporting a lag: {:?}", skips);
                    self.unannounced.clear();
                } else {
                    // Found now, before anything was handed out; dead
                    // letters were buried (and offered) before.
                    prop_assert!(
                        redeliver.is_empty(),
                        "Lagged while {:?} waited for redelivery",
                        redeliver
                    );
                    self.bury(&bury);
                    prop_assert!(self.room() > 0, "read a partition at max_pending");
                    let skips = self.find_skips(m)?;
                    let gaps: Vec<&Skip> = skips.iter().filter(|s| !s.gap.is_empty()).collect();
                    prop_assert_eq!(gaps.len(), 1, "one gap per report: {:?}", skips);
                    let count: u64 = gaps[0].gap.iter().map(|&(from, to)| to - from).sum();
                    prop_assert_eq!(n, count, "exact count of the gap");
                    let moved = self.apply_skips(&skips);
                    if self.cfg.manual {
                        for p in moved {
                            self.update_commit(p);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops the messages queued for redelivery (nacked, taken over, given
    /// back) that reached the TTL: counted in `GroupStats::expired`, and
    /// the commit recomputed as for an acknowledgement (auto mode too:
    /// assumption, the implementation's rule; it only moves forward).
    fn expire_queued(&mut self) {
        let gone: Vec<Key> = self
            .pending
            .iter()
            .filter(|(k, p)| p.owner.is_none() && self.is_expired(k.0, k.1))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.pending.remove(k);
            self.expired.insert(*k);
            self.expired_pending += 1;
        }
        let parts: std::collections::BTreeSet<usize> = gone.iter().map(|k| k.0).collect();
        for p in parts {
            self.update_commit(p);
        }
    }

    /// Messages that reached `max_deliveries`: dead letters, offered to
    /// the sink at once (before the claim goes on to new messages), and
    /// waiting in the group while it refuses them.
    fn bury(&mut self, keys: &[Key]) {
        for k in keys {
            let pend = self.pending.remove(k).unwrap();
            self.backlog.insert(*k, pend.deliveries);
        }
        if !keys.is_empty() {
            self.offer();
        }
    }

    fn publish(&mut self, p: usize, k: Option<usize>) -> Result<(), TestCaseError> {
        let p = p % self.n();
        let count = k.unwrap_or(1);
        let high = self.parts[p].high();
        let values: Vec<u64> = (0..count as u64).map(|i| val(p, high + i)).collect();
        let result = match k {
            None => self.parts[p].topic.try_publish(values[0]).map(|o| o..o + 1),
            Some(_) => self.parts[p]
                .topic
                .try_publish_batch(values)
                .map_err(|e| e.map(|v| v[0])),
        };
        if count > 0 && count <= self.cfg.cap {
            // A publish first removes what expired.
            self.sweep(p);
        }
        let part = &self.parts[p];
        let evict = ((part.high() - part.low) as usize + count).saturating_sub(self.cfg.cap) as u64;
        match result {
            Ok(r) => {
                prop_assert!(count <= self.cfg.cap);
                prop_assert_eq!(r, high..high + count as u64, "offsets are dense");
                let now = self.now;
                let part = &mut self.parts[p];
                part.ts.extend(std::iter::repeat_n(now, count));
                if count > 0 {
                    part.low += evict;
                }
            }
            Err(PublishError::TooLarge(_)) => prop_assert!(count > self.cfg.cap),
            Err(PublishError::Full(_)) => {
                prop_assert!(self.cfg.block && evict > 0, "Full without needing room");
                prop_assert!(
                    !self.members.is_empty(),
                    "a group without members holds nothing back"
                );
                prop_assert!(
                    part.next < part.low + evict,
                    "refused although the group read past what would be evicted"
                );
            }
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
        Ok(())
    }

    fn join(&mut self, start: Start) -> Result<(), TestCaseError> {
        let from_empty = self.members.is_empty();
        let sf = match start {
            Start::Earliest => StartFrom::Earliest,
            Start::Latest => StartFrom::Latest,
            Start::Offset(o) => StartFrom::Offset(o),
            Start::Committed => StartFrom::Committed,
        };
        let mut err = None;
        let mut starts = Vec::new();
        if from_empty {
            for (p, part) in self.parts.iter().enumerate() {
                let (low, high) = (part.low, part.high());
                starts.push(match start {
                    Start::Earliest => low,
                    Start::Latest => high,
                    Start::Offset(o) => {
                        if !(low..=high).contains(&o) && err.is_none() {
                            err = Some(GroupError::OutOfRange {
                                partition: p,
                                range: OutOfRange {
                                    requested: o,
                                    low,
                                    high,
                                },
                            });
                        }
                        o
                    }
                    // After the commit; with none, where the unacknowledged
                    // messages start; with none of those either, Latest.
                    Start::Committed => match (part.committed, part.resume) {
                        (Some(c), _) => c + 1,
                        // As after a commit: below the window, the first
                        // receive reports what was evicted meanwhile.
                        (None, Some(r)) => r,
                        (None, None) => high,
                    },
                });
            }
        }
        let member = match (self.group.join(sf), err) {
            (Ok(member), None) => member,
            (Err(e), Some(x)) => {
                prop_assert_eq!(e, x);
                return Ok(());
            }
            (Ok(_), Some(x)) => return Err(TestCaseError::fail(format!("joined, expected {x:?}"))),
            (Err(e), None) => return Err(TestCaseError::fail(format!("join failed: {e:?}"))),
        };
        if from_empty {
            let block = self.cfg.block;
            for (p, s) in starts.into_iter().enumerate() {
                let part = &mut self.parts[p];
                // Where the group stood: offsets between it and the new
                // start are skipped on purpose.
                let was = part
                    .committed
                    .map(|c| c + 1)
                    .or(part.resume)
                    .unwrap_or(part.last_pos);
                if s > was {
                    Self::mark(&mut self.skipped, p, was..s);
                }
                // An unreported gap at or past the new start is found again
                // by the new cursor; only the part below it is still owed.
                self.unannounced = self
                    .unannounced
                    .iter()
                    .map(|&(q, from, to)| {
                        if q == p {
                            (q, from, to.min(s))
                        } else {
                            (q, from, to)
                        }
                    })
                    .filter(|&(_, from, to)| to > from)
                    .collect();
                let part = &mut self.parts[p];
                part.next = s;
                part.may_lag = !block || s < part.low;
                if !matches!(start, Start::Committed) {
                    part.resume = None;
                }
            }
        }
        self.members.push(Slot {
            id: self.next_id,
            member,
            last_active: self.now,
            hand: None,
            held: Vec::new(),
        });
        self.next_id += 1;
        self.rebalance();
        Ok(())
    }

    fn leave(&mut self, i: usize) {
        let Some(id) = self.pick(i) else { return };
        let at = self.members.iter().position(|s| s.id == id).unwrap();
        let Slot { member, hand, .. } = self.members.remove(at);
        self.stalled.remove(&id);
        // The member first: a receive of it may outlive it.
        drop(member);
        drop(hand);
        if self.members.is_empty() {
            // The group keeps only its commits (and its dead letters
            // waiting); unacknowledged messages are above them and come
            // back to a `Committed` rejoin.
            for p in 0..self.n() {
                let lowest = self.lowest_unprocessed(p);
                let part = &mut self.parts[p];
                part.last_pos = part.next;
                if self.cfg.manual && part.committed.is_none() {
                    if let Some(l) = lowest {
                        // Nor past the group's position: what lies below
                        // and was never handed out is unprocessed too.
                        let l = l.min(part.next);
                        part.resume = Some(part.resume.map_or(l, |r| r.min(l)));
                    }
                }
                if let (false, Some(l)) = (self.cfg.manual, lowest) {
                    // Given back and not taken: the commit moves back to
                    // the first of them.
                    Self::rewind(part, l);
                }
            }
            self.pending.clear();
        } else {
            for pend in self.pending.values_mut() {
                if pend.owner == Some(id) {
                    pend.owner = None;
                }
            }
            self.rebalance();
        }
    }

    /// What `ack` and `nack` of `key` by member `m` answer.
    fn settle_answer(&self, m: u64, key: Key) -> Result<(), AckError> {
        if !self.cfg.manual {
            Err(AckError::AutoAck)
        } else if key.0 >= self.n() {
            Err(AckError::NoSuchPartition { partition: key.0 })
        } else if self.pending.get(&key).is_some_and(|p| p.owner == Some(m)) {
            Ok(())
        } else {
            Err(AckError::NotOwned {
                partition: key.0,
                offset: key.1,
            })
        }
    }

    fn ack(&mut self, i: usize, sel: u8, rp: usize, ro: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let n = self.n();
        let key = match sel {
            0..=4 if !self.pending.is_empty() => {
                *self.pending.keys().nth(ro as usize % self.pending.len()).unwrap()
            }
            5 | 6 if !self.acked.is_empty() => self.acked[ro as usize % self.acked.len()],
            _ => (rp % (n + 1), ro),
        };
        let got = self.member(m).ack(key.0, key.1);
        let expected = self.settle_answer(m, key);
        prop_assert_eq!(got, expected, "ack {:?} by {}", key, m);
        if got.is_ok() {
            self.acknowledged(key);
            let now = self.now;
            self.slot_mut(m).unwrap().last_active = now;
            self.update_commit(key.0);
            // Dead letters waiting are offered again after an ack.
            self.offer();
        }
        Ok(())
    }

    /// `nack`: answers as `ack` does; the message is queued for
    /// redelivery at once (the nack counts as activity), or, delivered
    /// `max_deliveries` times, becomes a dead letter at once (offered to
    /// the sink with the others waiting); one that reached the TTL is
    /// dropped instead, with every other queued one that did.
    fn nack(&mut self, i: usize, sel: u8, rp: usize, ro: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let n = self.n();
        let mine: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| p.owner == Some(m))
            .map(|(k, _)| *k)
            .collect();
        let key = match sel {
            // Mostly one it holds.
            0..=2 if !mine.is_empty() => mine[ro as usize % mine.len()],
            0..=4 if !self.pending.is_empty() => {
                *self.pending.keys().nth(ro as usize % self.pending.len()).unwrap()
            }
            5 | 6 if !self.acked.is_empty() => self.acked[ro as usize % self.acked.len()],
            _ => (rp % (n + 1), ro),
        };
        let got = self.member(m).nack(key.0, key.1);
        let expected = self.settle_answer(m, key);
        prop_assert_eq!(got, expected, "nack {:?} by {}", key, m);
        if got.is_err() {
            return Ok(());
        }
        let now = self.now;
        self.slot_mut(m).unwrap().last_active = now;
        let pend = self.pending.get_mut(&key).unwrap();
        pend.owner = None;
        let deliveries = pend.deliveries;
        if self.is_expired(key.0, key.1) {
            self.expire_queued();
        } else if self.cfg.max_deliveries.is_some_and(|limit| deliveries >= limit) {
            self.bury(&[key]);
        }
        Ok(())
    }

    /// `give_back` of some of the messages the member received. Auto
    /// mode: each goes back to the redelivery queue with its delivery
    /// count (one already queued there stays queued once); manual mode:
    /// nothing changes.
    fn give_back(&mut self, i: usize, sel: u8, raw: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let slot = self.slot_mut(m).unwrap();
        let len = slot.held.len();
        let back: Vec<Claimed<u64>> = match sel {
            // A suffix: a batch handled up to a point.
            0..=3 => {
                let k = raw as usize % (len + 1);
                slot.held.split_off(len - k)
            }
            // Any subset.
            4 | 5 => {
                let mut back = Vec::new();
                let mut kept = Vec::new();
                for (j, c) in slot.held.drain(..).enumerate() {
                    if raw >> (j % 64) & 1 == 1 {
                        back.push(c);
                    } else {
                        kept.push(c);
                    }
                }
                slot.held = kept;
                back
            }
            _ => Vec::new(),
        };
        let keys: Vec<(Key, u32)> = back
            .iter()
            .map(|c| ((c.partition, c.offset), c.deliveries))
            .collect();
        self.member(m).give_back(back);
        if self.cfg.manual {
            // Pending to the member already.
            return Ok(());
        }
        for (k, deliveries) in keys {
            let copies = self.handed.get_mut(&k).unwrap();
            prop_assert!(*copies > 0, "{:?} given back more often than handed out", k);
            *copies -= 1;
            self.pending.entry(k).or_insert(Pend {
                owner: None,
                deliveries,
            });
        }
        Ok(())
    }

    fn acknowledged(&mut self, key: Key) {
        self.pending.remove(&key);
        self.processed.insert(key);
        self.acked.push(key);
        if self.acked.len() > 8 {
            self.acked.remove(0);
        }
    }

    fn commit(&mut self, i: usize, rp: usize, sel: u8, ro: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let n = self.n();
        let p = rp % (n + 1);
        let (high, next) = self.parts.get(p).map_or((0, 0), |x| (x.high(), x.next));
        let o = match sel {
            0 => high.saturating_sub(1),
            1 => high,
            2 => next.saturating_sub(1),
            _ => ro,
        };
        let got = self.member(m).commit(p, o);
        let expected = if p >= n {
            Err(AckError::NoSuchPartition { partition: p })
        } else if o >= high {
            Err(AckError::NotPublished {
                partition: p,
                offset: o,
                high,
            })
        } else {
            Ok(())
        };
        prop_assert_eq!(got, expected, "commit {:?} by {}", (p, o), m);
        if got.is_err() {
            return Ok(());
        }
        if self.cfg.manual {
            // Acknowledges what this member holds up to `o`.
            let mine: Vec<Key> = self
                .pending
                .range((p, 0)..=(p, o))
                .filter(|(_, x)| x.owner == Some(m))
                .map(|(k, _)| *k)
                .collect();
            if !mine.is_empty() {
                // Acknowledging is activity (see `GroupConfig::ack_timeout`).
                let now = self.now;
                self.slot_mut(m).unwrap().last_active = now;
            }
            for k in mine {
                self.acknowledged(k);
            }
            self.update_commit(p);
            self.offer();
        } else {
            // Declared processed by the caller, given back or not.
            Self::mark(&mut self.processed, p, 0..o + 1);
            self.parts[p].committed = Some(o);
        }
        Ok(())
    }

    fn seek(&mut self, i: usize, rp: usize, sel: u8, ro: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let n = self.n();
        let p = rp % (n + 1);
        let (low, high) = self.parts.get(p).map_or((0, 0), |x| (x.low, x.high()));
        let o = match sel {
            0 => low.saturating_sub(1),
            1 => low,
            2 => high,
            3 => high + 1,
            _ => ro,
        };
        let got = self.member(m).seek(p, o);
        let expected = if p >= n {
            Err(GroupError::NoSuchPartition {
                partition: p,
                count: n,
            })
        } else if !(low..=high).contains(&o) {
            Err(GroupError::OutOfRange {
                partition: p,
                range: OutOfRange {
                    requested: o,
                    low,
                    high,
                },
            })
        } else {
            Ok(())
        };
        prop_assert_eq!(&got, &expected, "seek {:?}", (p, o));
        if got.is_ok() {
            let block = self.cfg.block;
            let part = &mut self.parts[p];
            let from = part.next;
            part.next = o;
            part.may_lag = !block;
            if o > from {
                Self::mark(&mut self.skipped, p, from..o);
            }
            self.unqueue_from(p, o);
        }
        Ok(())
    }

    /// Auto mode: the commit moves back to just below `l`, the first
    /// message given back and not handed on (only back); at offset 0 it is
    /// forgotten, and a rejoin from it starts at 0.
    fn rewind(part: &mut Part, l: u64) {
        match l.checked_sub(1) {
            Some(through) => {
                if part.committed.is_some_and(|c| c > through) {
                    part.committed = Some(through);
                }
            }
            None => {
                part.committed = None;
                part.resume = Some(0);
            }
        }
    }

    /// After a seek of `p` to `o`: what was queued for redelivery at or
    /// past `o` goes out as new when read again, not from the queue too;
    /// a `Committed` rejoin after the last member left starts no later
    /// than the lowest of it: with nothing committed, from where it
    /// starts; auto mode, the commit moves back below it (as the last
    /// member leaving moves it below what was given back).
    fn unqueue_from(&mut self, p: usize, o: u64) {
        let lowest = self
            .pending
            .iter()
            .filter(|(k, pend)| k.0 == p && k.1 >= o && pend.owner.is_none())
            .map(|(k, _)| k.1)
            .min();
        let part = &mut self.parts[p];
        match (lowest, part.committed) {
            (Some(l), None) => part.resume = Some(part.resume.map_or(l, |r| r.min(l))),
            (Some(l), Some(_)) if !self.cfg.manual => Self::rewind(part, l),
            _ => {}
        }
        self.pending
            .retain(|k, pend| !(k.0 == p && k.1 >= o && pend.owner.is_none()));
    }

    /// `seek_all`: every partition's window is checked (in index order)
    /// before any moves; then each moves as by [`seek`](Self::seek).
    fn seek_all(&mut self, i: usize, sel: u8, ro: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let lows = self.parts.iter().map(|x| x.low);
        let highs = self.parts.iter().map(Part::high);
        let o = match sel {
            0 => lows.clone().min().unwrap_or(0).saturating_sub(1),
            1 => lows.clone().max().unwrap_or(0),
            2 => highs.clone().min().unwrap_or(0),
            3 => highs.clone().max().unwrap_or(0),
            4 => highs.clone().max().unwrap_or(0) + 1,
            _ => ro,
        };
        let before: Vec<Option<u64>> = (0..self.n()).map(|p| self.member(m).position(p)).collect();
        let got = self.member(m).seek_all(o);
        let refused = self.parts.iter().enumerate().find_map(|(p, x)| {
            let (low, high) = (x.low, x.high());
            (!(low..=high).contains(&o)).then_some(GroupError::OutOfRange {
                partition: p,
                range: OutOfRange {
                    requested: o,
                    low,
                    high,
                },
            })
        });
        prop_assert_eq!(&got, &refused.map_or(Ok(()), Err), "seek_all {}", o);
        if got.is_err() {
            let after: Vec<Option<u64>> = (0..self.n()).map(|p| self.member(m).position(p)).collect();
            prop_assert_eq!(after, before, "a refused seek_all moved a partition");
            return Ok(());
        }
        let block = self.cfg.block;
        for p in 0..self.n() {
            let part = &mut self.parts[p];
            let from = part.next;
            part.next = o;
            part.may_lag = !block;
            if o > from {
                Self::mark(&mut self.skipped, p, from..o);
            }
            self.unqueue_from(p, o);
        }
        Ok(())
    }

    fn try_recv(&mut self, i: usize, max: Option<usize>) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let member = self.member(m);
        let (limit, outcome) = match max {
            None => (
                1,
                match member.try_recv() {
                    Ok(c) => Outcome::Got(vec![c]),
                    Err(TryRecvError::Empty) => Outcome::Empty,
                    Err(TryRecvError::Lagged(n)) => Outcome::Lagged(n),
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                },
            ),
            Some(max) => {
                let mut out = Vec::new();
                let outcome = match member.try_recv_batch(max, &mut out) {
                    Ok(n) => {
                        prop_assert_eq!(n, out.len());
                        Outcome::Got(out)
                    }
                    Err(TryRecvError::Empty) => Outcome::Empty,
                    Err(TryRecvError::Lagged(n)) => Outcome::Lagged(n),
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                };
                (max, outcome)
            }
        };
        self.claim(m, limit, outcome)
    }

    /// A waiting receive: claims now; if nothing, sleeps until another
    /// member's messages become claimable (ack timeout) or the timeout,
    /// claiming again at each wake-up.
    async fn recv_wait(&mut self, i: usize, max: usize, ms: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.pick(i) else { return Ok(()) };
        let mut out = Vec::new();
        let result = tokio::time::timeout(
            Duration::from_millis(ms),
            self.member(m).recv_batch(max, &mut out),
        )
        .await;
        let elapsed = Instant::now() - self.origin;
        prop_assert_eq!(elapsed.subsec_nanos() % 1_000_000, 0, "whole milliseconds");
        let end = elapsed.as_millis() as u64;
        let limit = self.now + ms;
        loop {
            if self.now == end {
                let outcome = match result {
                    Ok(Ok(n)) => {
                        prop_assert_eq!(n, out.len());
                        Outcome::Got(out)
                    }
                    Ok(Err(RecvError::Lagged(n))) => Outcome::Lagged(n),
                    Ok(Err(e)) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                    Err(_) => {
                        prop_assert_eq!(end, limit, "timed out early");
                        Outcome::Empty
                    }
                };
                return self.claim(m, max, outcome);
            }
            self.claim_at(m, max, Outcome::Empty, false)?;
            let mut wake = self.next_deadline(m).map_or(limit, |d| d.min(limit));
            if self.room() == 0 && !self.backlog.is_empty() {
                // Held at `max_pending` by dead letters the sink refuses:
                // offered again every 100 ms.
                wake = wake.min(self.now + 100);
            }
            prop_assert!(
                wake > self.now && wake <= end,
                "woke at {} ms; the model expected a wake-up at {} ms",
                end,
                wake
            );
            self.now = wake;
        }
    }

    /// Whether a waiting receive (other than the one claiming, whose
    /// flag is cleared when it is polled; possibly of `m` itself) was
    /// woken and has not run yet: messages may be kept for it.
    /// How many members' waiting receives were woken and have not run:
    /// each may be owed one message.
    fn woken_count(&self) -> usize {
        self.members
            .iter()
            .filter(|s| s.hand.as_ref().is_some_and(|h| h.flag.0.load(Ordering::SeqCst)))
            .count()
    }

    fn others_woken(&self, _m: u64) -> bool {
        self.members
            .iter()
            .any(|s| s.hand.as_ref().is_some_and(|h| h.flag.0.load(Ordering::SeqCst)))
    }

    /// As [`others_woken`](Self::others_woken) for a claim of a waiting
    /// receive at `ms`, replayed after it: woken by then (by the group,
    /// possibly in that claim). A receive's own timer firing is no
    /// notification (nothing is kept for it), nor is a wake-up after
    /// `ms`.
    fn others_notified_by(&self, ms: u64) -> bool {
        self.members.iter().filter_map(|s| s.hand.as_ref()).any(|h| {
            let mut at: Vec<u64> = h
                .flag
                .1
                .lock()
                .unwrap()
                .iter()
                .map(|i| (*i - self.origin).as_millis() as u64)
                .filter(|&w| w <= ms)
                .collect();
            if let Some(i) = at.iter().position(|&w| Some(w) == h.timer) {
                at.swap_remove(i);
            }
            !at.is_empty()
        })
    }

    /// Polls member `m`'s waiting receive once and checks the claim.
    fn poll_hand(&mut self, m: u64) -> Result<(), TestCaseError> {
        let slot = self.members.iter_mut().find(|s| s.id == m).unwrap();
        let hand = slot.hand.as_mut().unwrap();
        hand.flag.0.store(false, Ordering::SeqCst);
        hand.flag.1.lock().unwrap().clear();
        let max = hand.max;
        let mut out = Vec::new();
        let polled = slot.member.poll_recv_batch(
            &mut Context::from_waker(&hand.waker),
            &mut hand.waiter,
            max,
            &mut out,
        );
        let outcome = match polled {
            Poll::Pending => Outcome::Empty,
            Poll::Ready(Ok(n)) => {
                prop_assert_eq!(n, out.len());
                Outcome::Got(out)
            }
            Poll::Ready(Err(RecvError::Lagged(n))) => Outcome::Lagged(n),
            Poll::Ready(Err(e)) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        };
        if polled.is_ready() {
            // The receive is over.
            slot.hand = None;
        }
        self.claim(m, max, outcome)?;
        // Waiting: when its timer fires (as in `recv_wait`).
        let timer = self
            .next_deadline(m)
            .into_iter()
            .chain((self.room() == 0 && !self.backlog.is_empty()).then_some(self.now + 100));
        let timer = timer.min();
        if let Some(hand) = self.slot_mut(m).and_then(|s| s.hand.as_mut()) {
            hand.timer = timer;
        }
        Ok(())
    }

    /// Runs every waiting receive that was woken (as an executor would),
    /// until none is; then no member may be left waiting with something
    /// it could take (no lost wake-up): a redelivery it may take, or, with
    /// room under `max_pending`, a message (or a gap to report) in a
    /// partition it may read; nor, with an ack timeout, with another
    /// member's messages claimable (idle past the timeout) that it was
    /// not woken for, whether they were handed out before it parked or
    /// while it waited. (Not checked: dead letters the sink would now
    /// take.)
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..64 {
            let woken = self
                .members
                .iter()
                .find(|s| s.hand.as_ref().is_some_and(|h| h.flag.0.load(Ordering::SeqCst)))
                .map(|s| s.id);
            match woken {
                Some(m) => self.poll_hand(m)?,
                None => {
                    for s in &self.members {
                        if s.hand.is_some() {
                            let m = s.id;
                            prop_assert!(
                                !self.could_take(m),
                                "member {} waits, never woken, with something to take; group {:?}",
                                m,
                                self.group.stats()
                            );
                            let due = self.next_deadline(m);
                            prop_assert!(
                                due.is_none_or(|d| d > self.now),
                                "member {} waits at {} ms, never woken, although another member's \
                                 messages were claimable at {:?} ms; group {:?}",
                                m,
                                self.now,
                                due,
                                self.group.stats()
                            );
                        }
                    }
                    return Ok(());
                }
            }
        }
        Err(TestCaseError::fail("members kept waking each other"))
    }

    /// The group may pass over messages that expired outside a claim:
    /// arming a relay while messages are kept for members woken for them
    /// reads them into the cursor's buffer, dropping what expired. Moves
    /// the model along, and (manual mode) the commit with it.
    fn catch_up(&mut self) -> Result<(), TestCaseError> {
        let Some(first) = self.members.first() else {
            return Ok(());
        };
        let positions: Vec<Option<u64>> = (0..self.n()).map(|p| first.member.position(p)).collect();
        for (p, pos) in positions.into_iter().enumerate() {
            let Some(pos) = pos else { continue };
            if pos > self.parts[p].next {
                let (at, expired, fetched) = self.silent_run(p, pos);
                prop_assert!(
                    at == pos && !fetched,
                    "partition {} moved from {} to {} outside a receive",
                    p,
                    self.parts[p].next,
                    pos
                );
                for o in expired {
                    self.expired.insert((p, o));
                }
                self.parts[p].next = pos;
                if self.cfg.manual {
                    // The commit follows the position.
                    self.update_commit(p);
                }
            }
        }
        Ok(())
    }

    /// Whether a receive of `m` now would hand something out (or report
    /// a gap found now).
    fn could_take(&self, m: u64) -> bool {
        if self
            .pending
            .iter()
            .any(|(k, p)| p.owner.is_none() && self.eligible(m, k.0))
        {
            return true;
        }
        self.room() > 0
            && (0..self.n()).any(|p| {
                let high = self.parts[p].high();
                self.eligible(m, p) && self.silent_run(p, high).0 < high
            })
    }

    fn check_dead_letters(&mut self) -> Result<(), TestCaseError> {
        let seen = self.sink.lock().unwrap().clone();
        prop_assert_eq!(
            seen.len(),
            self.dead_letters.len(),
            "dead letters: {:?}",
            self.dead_letters
        );
        for (d, &(p, o, deliveries)) in seen.iter().zip(&self.dead_letters) {
            prop_assert_eq!(&*d.group, GROUP);
            prop_assert_eq!((d.partition, d.offset, d.deliveries), (p, o, deliveries));
            prop_assert_eq!(d.value, val(p, o));
            prop_assert_eq!(d.timestamp, self.instant(self.parts[p].ts[o as usize]));
            let limit = self.cfg.max_deliveries.unwrap();
            prop_assert_eq!(d.reason, DeadLetterReason::MaxDeliveries { limit });
        }
        Ok(())
    }

    fn check_stats(&self) -> Result<(), TestCaseError> {
        let s = self.group.stats();
        prop_assert_eq!(s.members, self.members.len());
        let committed: Vec<Option<u64>> = self.parts.iter().map(|p| p.committed).collect();
        prop_assert_eq!(&s.committed, &committed, "committed");
        let lag: u64 = self
            .parts
            .iter()
            .enumerate()
            .map(|(p, part)| {
                let next = if self.members.is_empty() {
                    part.committed
                        .map(|c| c + 1)
                        .or(part.resume)
                        .unwrap_or(part.high())
                } else {
                    part.next
                };
                let from = self.lowest_unprocessed(p).map_or(next, |o| o.min(next));
                part.high() - from
            })
            .sum();
        prop_assert_eq!(s.lag, lag, "lag");
        prop_assert_eq!(s.pending, self.pending.len() + self.backlog.len(), "pending");
        prop_assert_eq!(s.dead_letters_waiting, self.backlog.len(), "dead letters waiting");
        prop_assert_eq!(s.redeliveries, self.redeliveries, "redeliveries");
        prop_assert_eq!(s.dead_lettered, self.dead_letters.len() as u64, "dead_lettered");
        prop_assert_eq!(s.expired, self.expired_pending, "expired");
        if let Some(limit) = self.cfg.max_pending.filter(|_| self.cfg.manual) {
            prop_assert!(
                s.pending <= limit,
                "{} pending over max_pending {}",
                s.pending,
                limit
            );
        }
        Ok(())
    }

    async fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        // Checked right after (the counters must say what they did).
        let counted = matches!(op, Op::Nack(..) | Op::GiveBack(..));
        match op {
            Op::Publish(p) => self.publish(p, None)?,
            Op::PublishBatch(p, k) => self.publish(p, Some(k))?,
            Op::Join(start) => {
                if self.members.len() < 3 {
                    self.join(start)?;
                }
            }
            Op::Leave(i) => self.leave(i),
            Op::TryRecv(i) => self.try_recv(i, None)?,
            Op::TryRecvBatch(i, max) => self.try_recv(i, Some(max))?,
            Op::RecvWait(i, max, ms) => self.recv_wait(i, max, ms).await?,
            Op::Ack(i, sel, p, o) => self.ack(i, sel, p, o)?,
            Op::Commit(i, p, sel, o) => self.commit(i, p, sel, o)?,
            Op::Seek(i, p, sel, o) => self.seek(i, p, sel, o)?,
            Op::SeekAll(i, sel, o) => self.seek_all(i, sel, o)?,
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms)).await;
                self.now += ms;
            }
            Op::Stats => self.check_stats()?,
            Op::Sink(accept) => self.accepting.store(accept, Ordering::Relaxed),
            Op::Park(i, max) => {
                if let Some(m) = self.pick(i) {
                    let slot = self.slot_mut(m).unwrap();
                    if slot.hand.is_none() {
                        let flag = Arc::new(Flag::new());
                        slot.hand = Some(Hand {
                            waiter: MemberWaiter::new(),
                            max,
                            waker: Waker::from(flag.clone()),
                            flag,
                            timer: None,
                        });
                    }
                    self.poll_hand(m)?;
                }
            }
            Op::Nack(i, sel, p, o) => self.nack(i, sel, p, o)?,
            Op::GiveBack(i, sel, raw) => self.give_back(i, sel, raw)?,
            Op::Abandon(i) => {
                if let Some(m) = self.pick(i) {
                    drop(self.slot_mut(m).unwrap().hand.take());
                }
            }
            Op::Flush => {
                self.group.flush_commits();
                for (p, part) in self.parts.iter().enumerate() {
                    prop_assert_eq!(
                        part.topic.committed(GROUP),
                        part.committed,
                        "flushed commit of {}",
                        p
                    );
                }
            }
        }
        prop_assert_eq!(Instant::now(), self.instant(self.now), "clock");
        self.settle()?;
        self.catch_up()?;
        self.check_dead_letters()?;
        for p in 0..self.n() {
            // Topic stats remove what expired.
            self.sweep(p);
        }
        for (p, part) in self.parts.iter().enumerate() {
            let s = part.topic.stats();
            prop_assert_eq!(
                (s.low, s.high),
                (part.low, part.high()),
                "window of partition {}",
                p
            );
            if let Some(slot) = self.members.first() {
                prop_assert_eq!(
                    slot.member.position(p),
                    Some(part.next),
                    "position of partition {}",
                    p
                );
            }
        }
        if counted {
            self.check_stats()?;
        }
        Ok(())
    }

    /// Joins a member, makes it the only one, and receives (and acks)
    /// until nothing is left; then everything must be accounted for.
    async fn drain(&mut self) -> Result<(), TestCaseError> {
        self.step(Op::Sink(true)).await?;
        self.join(Start::Committed)?;
        self.check_dead_letters()?;
        for (p, part) in self.parts.iter().enumerate() {
            prop_assert_eq!(
                self.members[0].member.position(p),
                Some(part.next),
                "position of partition {}",
                p
            );
        }
        while self.members.len() > 1 {
            self.step(Op::Leave(0)).await?;
        }
        let drainer = self.members[0].id;
        let mut was_empty = false;
        for _ in 0..1000 {
            let mut out = Vec::new();
            let r = self.member(drainer).try_recv_batch(16, &mut out);
            let outcome = match r {
                Ok(_) => Outcome::Got(out.clone()),
                Err(TryRecvError::Empty) => Outcome::Empty,
                Err(TryRecvError::Lagged(n)) => Outcome::Lagged(n),
                Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
            };
            let empty = matches!(outcome, Outcome::Empty);
            self.claim(drainer, 16, outcome)?;
            self.check_dead_letters()?;
            // (An Empty at `max_pending` may have made room by burying:
            // done at the second in a row.)
            if empty && std::mem::replace(&mut was_empty, true) {
                break;
            }
            was_empty = empty;
            if self.cfg.manual {
                for c in out {
                    self.ack(0, 7, c.partition, c.offset)?;
                }
            }
        }
        prop_assert!(
            self.unannounced.is_empty(),
            "every gap reported: {:?}",
            self.unannounced
        );
        prop_assert!(self.pending.is_empty(), "drained: {:?}", self.pending);
        prop_assert!(
            self.backlog.is_empty(),
            "dead letters waiting: {:?}",
            self.backlog
        );
        self.check_stats()?;
        for (p, part) in self.parts.iter().enumerate() {
            for o in 0..part.high() {
                let k = (p, o);
                prop_assert!(
                    self.processed.contains(&k)
                        || self.handed.get(&k).is_some_and(|&n| n > 0)
                        || self.dead.contains(&k)
                        || self.lagged.contains(&k)
                        || self.skipped.contains(&k)
                        || self.expired.contains(&k),
                    "message {:?} lost: not processed, dead-lettered, reported as lagged, skipped or expired",
                    k
                );
            }
        }
        Ok(())
    }
}

async fn run(cfg: Config, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let origin = Instant::now();
    let topic_config = TopicConfig::default()
        .max_messages(Some(cfg.cap))
        .ttl(cfg.ttl_ms.map(Duration::from_millis))
        .overflow(if cfg.block {
            Overflow::Block
        } else {
            Overflow::DropOldest
        });
    let parts: Vec<Part> = (0..cfg.partitions)
        .map(|_| Part {
            topic: Topic::new(topic_config.clone()).unwrap(),
            ts: Vec::new(),
            low: 0,
            next: 0,
            may_lag: !cfg.block,
            committed: None,
            resume: None,
            last_pos: 0,
        })
        .collect();
    let group_config = GroupConfig::default()
        .ack(if cfg.manual {
            AckMode::Manual
        } else {
            AckMode::Auto
        })
        .ack_timeout(cfg.ack_timeout_ms.map(Duration::from_millis))
        .max_deliveries(cfg.max_deliveries)
        .max_pending(cfg.max_pending)
        .assignment(if cfg.exclusive {
            Assignment::Exclusive
        } else {
            Assignment::Shared
        });
    let sink: Arc<Mutex<Vec<DeadLetter<u64>>>> = Arc::default();
    let accepting = Arc::new(AtomicBool::new(true));
    let (to_sink, accepts) = (sink.clone(), accepting.clone());
    let group = Group::with_dead_letters(
        GROUP,
        parts.iter().map(|p| p.topic.clone()).collect(),
        group_config,
        Arc::new(move |d| {
            if !accepts.load(Ordering::Relaxed) {
                return Err(d);
            }
            to_sink.lock().unwrap().push(d);
            Ok(())
        }),
    )
    .unwrap();
    let mut model = Model {
        owners: vec![None; cfg.partitions],
        stalled: Default::default(),
        cfg,
        group,
        parts,
        members: Vec::new(),
        next_id: 0,
        pending: BTreeMap::new(),
        acked: Vec::new(),
        processed: HashSet::new(),
        handed: BTreeMap::new(),
        dead: HashSet::new(),
        lagged: HashSet::new(),
        skipped: HashSet::new(),
        expired: HashSet::new(),
        expired_pending: 0,
        unannounced: Vec::new(),
        redeliveries: 0,
        backlog: BTreeMap::new(),
        dead_letters: Vec::new(),
        sink,
        accepting,
        origin,
        now: 0,
    };
    for op in ops {
        model.step(op).await?;
    }
    model.drain().await
}

fn check(cfg: Config, ops: Vec<Op>) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run(cfg, ops))
}

/// `MEMQ_STRESS` (set by `cargo xtask stress`) multiplies the cases.
fn cases() -> u32 {
    512 * memq_testkit::stress_scale()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_step_keeps_the_group_contract(cfg in config(), ops in prop::collection::vec(op(), 1..100)) {
        check(cfg, ops)?;
    }
}

// Regressions: counterexamples the model found, as plain tests.

/// A model case in manual-ack mode over `partitions` topics of `cap`
/// messages, evicting, without timeouts or dead letters.
fn manual_case(partitions: usize, cap: usize) -> Config {
    Config {
        partitions,
        cap,
        block: false,
        manual: true,
        ack_timeout_ms: None,
        max_deliveries: None,
        exclusive: false,
        ttl_ms: None,
        max_pending: None,
    }
}

fn manual_config() -> GroupConfig {
    GroupConfig::default().ack(AckMode::Manual)
}

fn tiny_topic(cap: usize) -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(cap))).unwrap()
}

/// Model: `Join(Earliest), Publish(0), TryRecv(0), Leave(0)`, then a
/// `Committed` rejoin. Offset 0 was handed out and never acknowledged, so
/// nothing could be committed (there is no offset below 0); the rejoin
/// started at `Latest` and message 0 was lost.
#[test]
fn unacknowledged_first_message_comes_back_to_a_committed_rejoin() {
    let t = tiny_topic(2);
    let group = Group::new(GROUP, vec![t.clone()], manual_config()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(7).unwrap();
    assert_eq!(a.try_recv().unwrap().offset, 0);
    drop(a);
    assert_eq!(group.stats().lag, 1, "message 0 is not processed");
    let b = group.join(StartFrom::Committed).unwrap();
    let again = b.try_recv().unwrap();
    assert_eq!((again.offset, again.deliveries, again.value), (0, 1, 7));
    b.ack(0, 0).unwrap();
    assert_eq!(group.stats().committed, vec![Some(0)]);
}

/// As above, with message 0 evicted before the rejoin: reported as lagged.
#[test]
fn unacknowledged_first_message_evicted_meanwhile_is_reported_as_lagged() {
    let t = tiny_topic(2);
    let group = Group::new(GROUP, vec![t.clone()], manual_config()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(0).unwrap();
    a.try_recv().unwrap();
    drop(a);
    for i in 1..4 {
        t.try_publish(i).unwrap();
    }
    let b = group.join(StartFrom::Committed).unwrap();
    assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Lagged(2));
    assert_eq!(b.try_recv().unwrap().offset, 2);
}

/// Model (shrunk): a batch receive took buffered messages and then found
/// a gap; the cursor kept the report for its own next receive, so it came
/// after other members' redeliveries, and was lost when the member left
/// (or on a seek). Here: the gap (offset 2) was committed over and never
/// reported.
#[test]
fn gap_found_after_a_batch_is_reported_even_if_the_member_leaves() {
    let t = tiny_topic(2);
    let group = Group::new(GROUP, vec![t.clone()], manual_config()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(0).unwrap();
    t.try_publish(1).unwrap();
    assert_eq!(a.try_recv().unwrap().offset, 0); // reads 0 and 1 ahead
    a.ack(0, 0).unwrap();
    for i in 2..5 {
        t.try_publish(i).unwrap(); // evicts 0, 1, 2
    }
    let mut got = Vec::new();
    a.try_recv_batch(2, &mut got).unwrap();
    assert_eq!(got.iter().map(|c| c.offset).collect::<Vec<_>>(), vec![1]);
    a.ack(0, 1).unwrap();
    drop(a);
    let b = group.join(StartFrom::Committed).unwrap();
    assert_eq!(
        b.try_recv().unwrap_err(),
        TryRecvError::Lagged(1),
        "offset 2 was skipped"
    );
    assert_eq!(b.try_recv().unwrap().offset, 3);
}

/// The model's shrunk input for the gap above: the report must come
/// before the redeliveries of a member that left.
#[test]
fn model_regression_gap_reported_before_redeliveries() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        ..manual_case(1, 3)
    };
    let ops = vec![
        Op::Join(Start::Committed),
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::TryRecv(0),
        Op::Publish(0),
        Op::PublishBatch(0, 3),
        Op::Publish(0),
        Op::RecvWait(0, 3, 1),
        Op::Ack(0, 0, 0, 0),
    ];
    check(cfg, ops).unwrap();
}

/// The model's shrunk input for the lost first message.
#[test]
fn model_regression_committed_rejoin_without_commit() {
    let cfg = manual_case(2, 2);
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Leave(0),
    ];
    check(cfg, ops).unwrap();
}

/// Model (shrunk): `Join, Publish(0), Publish(1), TryRecv x3, Advance(5),
/// Commit(partition 0 through the last offset), TryRecv` with a 5 ms ack
/// timeout. `commit` acknowledges what the member holds, and the docs say
/// a member that acknowledges is not idle; the group still took the
/// member's other message away from it and redelivered it.
#[tokio::test(start_paused = true)]
async fn committing_counts_as_activity_for_the_ack_timeout() {
    let t = tiny_topic(10);
    let config = manual_config().ack_timeout(Some(Duration::from_millis(10)));
    let group = Group::new(GROUP, vec![t.clone()], config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    for i in 0..3 {
        t.try_publish(i).unwrap();
    }
    let mut held = Vec::new();
    a.try_recv_batch(2, &mut held).unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;
    a.commit(0, 0).unwrap(); // acknowledges offset 0 now
    let c = b.try_recv().unwrap();
    assert_eq!((c.offset, c.deliveries), (2, 1), "offset 1 stays with a");
    a.ack(0, 1).unwrap();
    assert_eq!(group.stats().redeliveries, 0);
}

#[test]
fn model_regression_commit_is_activity() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        ..manual_case(2, 1)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(1),
        Op::TryRecv(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::TryRecv(0),
        Op::Advance(5),
        Op::Commit(0, 0, 0, 0),
        Op::TryRecv(0),
    ];
    check(cfg, ops).unwrap();
}

/// Review finding: a gap taken from the cursor after a batch was kept in
/// the group when the last member left, and the rejoined cursor found the
/// same gap again, so it was reported twice (manual mode: `Lagged(4)` for
/// offsets 0, 1 and 2).
#[test]
fn a_gap_is_reported_once_across_a_committed_rejoin_manual() {
    let t = tiny_topic(2);
    let group = Group::new(GROUP, vec![t.clone()], manual_config()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(0).unwrap();
    t.try_publish(1).unwrap();
    assert_eq!(a.try_recv().unwrap().offset, 0); // reads 1 ahead
    for i in 2..5 {
        t.try_publish(i).unwrap(); // evicts 0, 1, 2
    }
    let mut got = Vec::new();
    a.try_recv_batch(2, &mut got).unwrap();
    assert_eq!(got.iter().map(|c| c.offset).collect::<Vec<_>>(), vec![1]);
    drop(a); // 0 and 1 unacknowledged, 2 never delivered
    let b = group.join(StartFrom::Committed).unwrap();
    assert_eq!(
        b.try_recv().unwrap_err(),
        TryRecvError::Lagged(3),
        "offsets 0, 1 and 2, once"
    );
    assert_eq!(b.try_recv().unwrap().offset, 3);
    assert_eq!(b.try_recv().unwrap().offset, 4);
    assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// The same in auto mode: offset 2 was reported from the group's stash
/// and again by the rejoined cursor.
#[test]
fn a_gap_is_reported_once_across_a_committed_rejoin_auto() {
    let t = tiny_topic(2);
    let group = Group::new(GROUP, vec![t.clone()], GroupConfig::default()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(0).unwrap();
    t.try_publish(1).unwrap();
    assert_eq!(a.try_recv().unwrap().offset, 0);
    for i in 2..5 {
        t.try_publish(i).unwrap();
    }
    let mut got = Vec::new();
    a.try_recv_batch(2, &mut got).unwrap();
    assert_eq!(got.iter().map(|c| c.offset).collect::<Vec<_>>(), vec![1]);
    drop(a);
    let b = group.join(StartFrom::Committed).unwrap();
    assert_eq!(
        b.try_recv().unwrap_err(),
        TryRecvError::Lagged(1),
        "offset 2, once"
    );
    assert_eq!(b.try_recv().unwrap().offset, 3);
    assert_eq!(b.try_recv().unwrap().offset, 4);
    assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// Review finding: unacknowledged messages that expired (not evicted)
/// while nobody was in the group were reported as lagged on the rejoin;
/// expired messages are skipped silently everywhere else.
#[tokio::test(start_paused = true)]
async fn expired_unacknowledged_messages_are_not_reported_as_lag_on_rejoin() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(10))
            .ttl(Some(Duration::from_secs(5))),
    )
    .unwrap();
    let group = Group::new(GROUP, vec![t.clone()], manual_config()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(0u64).unwrap();
    assert_eq!(a.try_recv().unwrap().offset, 0);
    drop(a);
    tokio::time::advance(Duration::from_secs(6)).await;
    t.try_publish(1).unwrap(); // sweeps offset 0, expired
    let b = group.join(StartFrom::Committed).unwrap();
    assert_eq!(b.try_recv().unwrap().offset, 1, "no lag for what expired");
}

/// Found while fixing the double-counted gap: a gap stashed by the group,
/// then a resume below it; the rejoined cursor reports the whole range
/// once.
#[test]
fn model_regression_exclusive_rejoin_after_a_gap_and_a_redelivery() {
    let cfg = Config {
        exclusive: true,
        ..manual_case(2, 1)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(1),
        Op::TryRecv(0),
        Op::Join(Start::Earliest),
        Op::Publish(1),
        Op::Publish(1),
        Op::TryRecvBatch(1, 2),
        Op::Leave(0),
        Op::Leave(0),
    ];
    check(cfg, ops).unwrap();
}

/// Model (shrunk), after dead letters could wait in the group: a batch
/// that fetched a dead letter waiting (re-read after a seek back) passed
/// over it and returned one message short, leaving the partition unread.
#[test]
fn model_regression_a_batch_passes_over_a_waiting_dead_letter_and_fills_up() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        max_deliveries: Some(1),
        ..manual_case(1, 5)
    };
    let ops = vec![
        Op::Publish(0),
        Op::Publish(0),
        Op::Join(Start::Committed),
        Op::Sink(false),
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Advance(5),
        Op::Publish(0),
        Op::Publish(0),
        Op::Seek(0, 0, 1, 0),
        Op::TryRecvBatch(0, 2),
    ];
    check(cfg, ops).unwrap();
}

/// Model (shrunk): with `max_pending` 1, a receive took its own idle
/// message back and buried it (max deliveries 1); it was at the limit
/// until the sink took the dead letter, and the sink was only offered it
/// after the claim. The dead letters a claim makes now go to the sink
/// before it hands out new messages.
#[test]
fn model_regression_a_buried_message_makes_room_for_the_same_receive() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        max_deliveries: Some(1),
        max_pending: Some(1),
        ..manual_case(1, 1)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Publish(0),
        Op::Advance(5),
        Op::RecvWait(0, 1, 1),
    ];
    check(cfg, ops).unwrap();
}

/// A pending message that expired is dropped when it would be
/// redelivered, counted in `GroupStats::expired`, and committed past;
/// with `max_pending` that makes room for new messages.
#[test]
fn model_regression_expired_pending_messages_make_room() {
    let cfg = Config {
        ack_timeout_ms: Some(14),
        ttl_ms: Some(10),
        max_pending: Some(2),
        ..manual_case(2, 512)
    };
    let ops = vec![
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::TryRecv(0),
        Op::Advance(10),
        Op::Publish(0),
        Op::RecvWait(0, 1, 14),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// Model: members 0 and 1 park in that order on an empty partition; the
/// publish wakes member 0, which receives; member 1 had parked with
/// nothing pending, so it had no timer for member 0's take-over, and the
/// clock passing the ack timeout did not wake it (the wake-up check
/// leaves it waiting with member 0's message claimable).
#[test]
fn model_regression_a_member_parked_before_another_received_is_woken_for_the_take_over() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        ..manual_case(1, 4)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Join(Start::Earliest),
        Op::Park(0, 1),
        Op::Park(1, 1),
        Op::Publish(0),
        Op::Advance(5),
    ];
    check(cfg, ops).unwrap();
}

/// The shrunk input the model found for the same (exclusive assignment,
/// `max_pending` 1: member 1 owns nothing, parks, and member 0 receives
/// without waiting).
#[test]
fn model_regression_a_receive_without_waiting_arms_the_take_over_of_the_members_parked() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        exclusive: true,
        max_pending: Some(1),
        ..manual_case(1, 2)
    };
    let ops = vec![
        Op::Join(Start::Committed),
        Op::Publish(0),
        Op::Publish(0),
        Op::Join(Start::Earliest),
        Op::Park(1, 1),
        Op::TryRecv(0),
        Op::Advance(5),
    ];
    check(cfg, ops).unwrap();
}

/// The model's shrunk input: member 1 (owning nothing) is woken to arm
/// its take-over timer, which fires while member 0 waits in `recv_batch`
/// past the TTL; the model took that timer's wake-up for a notification
/// (messages kept for member 1), deferred what member 0's waiting claims
/// passed over (an expired message), and so committed less than the
/// group. A timer firing keeps nothing for anyone.
#[test]
fn model_regression_a_timer_firing_keeps_nothing_for_its_member() {
    let cfg = Config {
        ack_timeout_ms: Some(17),
        exclusive: true,
        ttl_ms: Some(26),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::Advance(10),
        Op::Park(1, 1),
        Op::TryRecv(2),
        Op::Advance(16),
        Op::RecvWait(0, 1, 17),
        Op::Seek(0, 0, 0, 0),
    ];
    check(cfg, ops).unwrap();
}

/// Model, under `MEMQ_STRESS` (reported as a "committed" mismatch):
/// after a seek back the group re-read offset 1 and its cursor read 2
/// ahead; both then became dead letters (taken) and offset 2 was evicted
/// from the topic while still in the cursor's buffer. The next receive
/// passed over the buffered 2, found offset 3 evicted and reported
/// `Lagged(1)`. The group committed through 2 (it had recomputed the
/// commit after passing over a buffered message) where the model, which
/// cannot see the buffer, assumed 2 was never fetched and expected 1; had
/// 2 been evicted before the cursor read it, the group would have
/// committed 1 as well. Both are within the contract (1 and 2 were
/// dead-lettered), but the commit depended on the invisible read-ahead
/// buffer. Now every move of the position but a seek recomputes the
/// commit, here through 3 (the gap reported by this very receive), in
/// the group and in the model.
#[test]
fn model_regression_the_commit_does_not_depend_on_a_dead_letter_read_ahead() {
    let cfg = Config {
        ack_timeout_ms: Some(5),
        max_deliveries: Some(1),
        ..manual_case(1, 2)
    };
    let ops = vec![
        Op::Publish(0),
        Op::Join(Start::Committed),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::TryRecv(0),
        Op::Seek(0, 2, 1, 0),
        Op::TryRecv(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Advance(5),
        Op::Park(0, 1),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// The same as a plain test: whether the dead letters a receive passes
/// over sat in the cursor's read-ahead buffer or had been evicted before
/// the cursor read them, the receive that passes them and reports the gap
/// after them leaves the same commit (before: 1 with the buffer, none
/// without).
#[tokio::test(start_paused = true)]
async fn the_commit_past_dead_letters_and_a_gap_does_not_depend_on_read_ahead() {
    for buffered in [true, false] {
        let t = tiny_topic(2);
        let config = manual_config()
            .ack_timeout(Some(Duration::from_millis(5)))
            .max_deliveries(Some(1));
        // No sink: dead letters are dropped (counted as taken).
        let group = Group::new(GROUP, vec![t.clone()], config).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        t.try_publish(0).unwrap();
        t.try_publish(1).unwrap();
        assert_eq!(a.try_recv().unwrap().offset, 0);
        assert_eq!(a.try_recv().unwrap().offset, 1);
        a.seek(0, 0).unwrap();
        if buffered {
            // Handed out again as new; 1 is read ahead into the buffer.
            assert_eq!(a.try_recv().unwrap().offset, 0);
        }
        for i in 2..5 {
            t.try_publish(i).unwrap(); // evicts 0, 1 and 2
        }
        tokio::time::advance(Duration::from_millis(5)).await;
        let b = group.join(StartFrom::Earliest).unwrap();
        // Takes over 0 and 1 (idle), dead-letters them (one delivery
        // each), passes over them and reports offset 2 as lagged.
        assert_eq!(
            b.try_recv().unwrap_err(),
            TryRecvError::Lagged(1),
            "buffered: {buffered}"
        );
        let stats = group.stats();
        assert_eq!(stats.dead_lettered, 2);
        assert_eq!(stats.committed, vec![Some(2)], "buffered: {buffered}");
        assert_eq!(b.try_recv().unwrap().offset, 3);
    }
}

/// Model, under `MEMQ_STRESS` (reported as a "committed" mismatch: the
/// group committed through 6, the model expected 2): member 0's waiting
/// receive (`RecvWait`) claimed at 23 ms, when member 1's timer fired;
/// that claim expired member 1's message, whose room woke member 1 for
/// partition 1, and passed over partition 0's expired offsets 3 to 6.
/// With member 1 notified, the model cannot tell what member 0's
/// intermediate claims read, and leaves it to the receive's last claim
/// (at 46 ms, member 0 idle past the ack timeout): that claim dropped
/// member 0's own pending 1 and 2 as expired and recomputed the commit
/// from the group's position (7): through 6, which is right (0 was
/// acknowledged, 1 to 6 expired). The model recomputed it from the
/// position it had last settled (3), before catching up. The model was
/// wrong; it now also recomputes the commit of a partition whose
/// position the claim is found to have moved.
#[test]
fn model_regression_an_expiry_in_a_waiting_receive_commits_from_the_group_position() {
    let cfg = Config {
        ack_timeout_ms: Some(23),
        ttl_ms: Some(10),
        exclusive: true,
        max_pending: Some(3),
        ..manual_case(2, 512)
    };
    let ops = vec![
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::Publish(0),
        Op::Ack(0, 0, 0, 0),
        Op::Park(0, 2),
        Op::PublishBatch(0, 0),
        Op::Publish(0),
        Op::Park(0, 1),
        Op::Join(Start::Earliest),
        Op::Publish(1),
        Op::Ack(2, 0, 0, 0),
        Op::TryRecv(1),
        Op::Park(1, 1),
        Op::Publish(1),
        Op::Advance(2),
        Op::RecvWait(0, 1, 44),
    ];
    check(cfg, ops).unwrap();
}

/// Model, found with the commit following the position: an ack makes room
/// under `max_pending` 1; the relay is armed ahead for the parked members
/// (the message left is kept for the one woken), which reads past the
/// expired offset 1 outside any receive. The group commits through it
/// there and then (as a receive passing over it would); the model
/// catches up the position, and the commit with it.
#[test]
fn model_regression_a_relay_armed_ahead_past_expired_messages_moves_the_commit() {
    let cfg = Config {
        ttl_ms: Some(10),
        max_pending: Some(1),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Committed),
        Op::Join(Start::Earliest),
        Op::Leave(0),
        Op::Park(0, 1),
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::Park(2, 1),
        Op::RecvWait(0, 1, 10),
        Op::Park(1, 1),
        Op::Ack(0, 0, 0, 0),
        Op::Seek(0, 0, 0, 0),
    ];
    check(cfg, ops).unwrap();
}

/// Auto mode: `commit` records that everything through its offset is
/// processed; a later automatic commit of a lower offset (the group's
/// position, behind the explicit commit) moved the committed offset
/// backward, so a rejoin read again what the member had declared done.
#[test]
fn an_automatic_commit_never_moves_an_explicit_one_back() {
    let t = tiny_topic(10);
    let group = Group::new(GROUP, vec![t.clone()], GroupConfig::default()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    for i in 0..6 {
        t.try_publish(i).unwrap();
    }
    assert_eq!(a.try_recv().unwrap().offset, 0);
    a.commit(0, 3).unwrap();
    assert_eq!(group.stats().committed, vec![Some(3)]);
    assert_eq!(
        a.try_recv().unwrap().offset,
        1,
        "the position is not moved by a commit"
    );
    assert_eq!(group.stats().committed, vec![Some(3)], "still through 3");
    drop(a);
    assert_eq!(t.committed(GROUP), Some(3), "what outlives the group");
    // A member rejoining from the commit starts after it.
    let b = group.join(StartFrom::Committed).unwrap();
    assert_eq!(b.try_recv().unwrap().offset, 4);
    assert_eq!(group.stats().committed, vec![Some(4)], "and moves on from there");
}

/// Model, under `MEMQ_STRESS` 1000 ("unexpected Closed"): an exclusive
/// group's member that owns the only partition was told `Closed` on an
/// open topic. This session's exclusive-group rule counted a partition
/// whose claim handed out nothing and passed over what it read (here an
/// expired message and a dead letter after a seek back) as neither closed
/// nor waiting, and took "no other partition left" for the group being
/// done. Every partition the member owns must be closed and drained.
#[test]
fn model_regression_exclusive_closed_only_when_its_own_partitions_are() {
    let cfg = Config {
        ack_timeout_ms: Some(12),
        max_deliveries: Some(1),
        exclusive: true,
        ttl_ms: Some(51),
        max_pending: Some(2),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Park(0, 1),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::SeekAll(0, 0, 0),
        Op::Park(0, 1),
        Op::RecvWait(0, 1, 12),
    ];
    check(cfg, ops).unwrap();
}

/// Model (`cargo xtask stress 1000`, shrunk): exclusive, manual, TTL 10 ms,
/// one message pending at most. Member 0 parks, two messages arrive and
/// expire while it waits for its receive; it acknowledges, and a new
/// message is published: the member, parked, was never woken for it.
#[test]
fn model_regression_a_member_parked_past_expired_messages_is_woken_for_a_new_one() {
    let cfg = Config {
        exclusive: true,
        ttl_ms: Some(10),
        max_pending: Some(1),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Committed),
        Op::Park(0, 1),
        Op::PublishBatch(0, 2),
        Op::Park(0, 1),
        Op::Publish(0),
        Op::RecvWait(0, 1, 10),
        Op::Ack(0, 0, 0, 0),
        Op::Publish(0),
    ];
    check(cfg, ops).unwrap();
}

// `nack` and `give_back` in the model, as plain cases.

/// A nack queues the message for redelivery at once (deliveries counting
/// up); at `max_deliveries` a nack makes it a dead letter at once, which
/// waits (holding the commit) while the sink refuses it.
#[test]
fn model_nack_redelivers_then_buries_at_the_limit() {
    let cfg = Config {
        max_deliveries: Some(2),
        ..manual_case(1, 8)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Nack(0, 0, 0, 0),
        Op::TryRecv(0),
        Op::Sink(false),
        Op::Nack(0, 0, 0, 0),
        Op::Stats,
        Op::TryRecv(0),
        Op::Ack(0, 0, 0, 0),
        Op::Stats,
        Op::Sink(true),
        Op::TryRecv(0),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// A nack wakes a member parked that may take the message.
#[test]
fn model_nack_wakes_a_parked_member() {
    for exclusive in [false, true] {
        let cfg = Config {
            exclusive,
            ..manual_case(1, 4)
        };
        let ops = vec![
            Op::Join(Start::Earliest),
            Op::Publish(0),
            Op::TryRecv(0),
            Op::Join(Start::Earliest),
            Op::Park(1, 1),
            Op::Park(0, 2),
            Op::Nack(0, 0, 0, 0),
            Op::Stats,
        ];
        check(cfg, ops).unwrap();
    }
}

/// A nack of a message that reached the TTL drops it: counted as expired,
/// committed past, never delivered again.
#[test]
fn model_nack_of_an_expired_message_drops_it() {
    let cfg = Config {
        ttl_ms: Some(10),
        max_deliveries: Some(1),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecvBatch(0, 2),
        Op::Advance(10),
        Op::Nack(0, 0, 0, 0),
        Op::Stats,
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// Auto mode: what a member gives back goes to the next member that
/// looks, with the same count; given back and not taken when the last
/// member leaves, it moves the commit back for a rejoin to read it again.
#[test]
fn model_give_back_goes_to_the_next_member_and_survives_the_last_leaving() {
    for exclusive in [false, true] {
        let cfg = Config {
            exclusive,
            manual: false,
            ..manual_case(2, 8)
        };
        let ops = vec![
            Op::Join(Start::Earliest),
            Op::PublishBatch(0, 4),
            Op::Publish(1),
            Op::TryRecvBatch(0, 5),
            Op::GiveBack(0, 0, 3),
            Op::Stats,
            Op::Join(Start::Earliest),
            Op::TryRecv(1),
            Op::Leave(0),
            Op::Stats,
            Op::Leave(0),
            Op::Stats,
            Op::Flush,
        ];
        check(cfg, ops).unwrap();
    }
}

/// Auto mode: given back from offset 0 by the last member: the commit is
/// forgotten, and a rejoin from it reads from 0.
#[test]
fn model_give_back_from_offset_zero_forgets_the_commit() {
    let cfg = Config {
        manual: false,
        ..manual_case(1, 8)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecvBatch(0, 2),
        Op::GiveBack(0, 0, 2),
        Op::Leave(0),
        Op::Stats,
        Op::Join(Start::Committed),
        Op::TryRecvBatch(0, 4),
    ];
    check(cfg, ops).unwrap();
}

/// Auto mode: a message given back expires with the topic's TTL: dropped
/// when a receive would hand it on, counted as expired.
#[test]
fn model_given_back_messages_expire() {
    let cfg = Config {
        manual: false,
        ttl_ms: Some(10),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::Publish(0),
        Op::TryRecvBatch(0, 2),
        Op::GiveBack(0, 4, 1),
        Op::Advance(10),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// Manual mode: `give_back` changes nothing; the message stays pending
/// with its member.
#[test]
fn model_give_back_does_nothing_in_manual_mode() {
    let cfg = Config {
        ack_timeout_ms: Some(20),
        ..manual_case(1, 8)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Join(Start::Earliest),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::GiveBack(0, 0, 1),
        Op::Stats,
        Op::TryRecv(1),
        Op::Ack(0, 0, 0, 0),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// The model's shrunk input for the first bug of
/// `group_found_by_model.rs`: offset 2 is given back, and the seek back
/// to 1 makes it go out as new; the last member leaves before the group
/// reads it. The seek moves the commit back below it, so the rejoin from
/// the commit (the drain) reads it again.
#[test]
fn model_given_back_then_a_seek_back_is_read_again_after_the_last_member_left() {
    let cfg = Config {
        manual: false,
        ..manual_case(1, 8)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::PublishBatch(0, 3),
        Op::TryRecvBatch(0, 3),
        Op::GiveBack(0, 0, 1),
        Op::Seek(0, 0, 4, 1),
        Op::Stats,
        Op::Flush,
        Op::Leave(0),
        Op::Stats,
    ];
    check(cfg, ops).unwrap();
}

/// Model (`MEMQ_STRESS` 1000, shrunk), showing a choice: offsets 10 to 12
/// are given back, a seek to 12 makes 12 go out as new (the commit moves
/// back to 11), then the member commits through 12 itself and receives
/// 10 and 11 again; it leaves before the group reads 12. The explicit
/// commit declared 12 processed, so the rejoin from the commit starts at
/// 13: the model counts an explicit commit as handling what it covers,
/// given back or not.
#[test]
fn model_regression_an_explicit_commit_covers_what_was_given_back() {
    let cfg = Config {
        block: true,
        manual: false,
        ..manual_case(1, 1)
    };
    let mut ops = vec![Op::Publish(0); 10];
    ops.extend([
        Op::Join(Start::Committed),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::Publish(0),
        Op::TryRecv(0),
        Op::GiveBack(0, 0, 3),
        Op::SeekAll(0, 1, 0),
        Op::Stats,
        Op::Commit(0, 0, 0, 0),
        Op::TryRecvBatch(0, 2),
        Op::Leave(0),
        Op::Stats,
    ]);
    check(cfg, ops).unwrap();
}

/// The model's shrunk input for the second bug of
/// `group_found_by_model.rs` (`MEMQ_STRESS` 1000): the last member, which
/// joined from `Earliest`, leaves with a dead letter waiting above the
/// group's position; the rejoin from the commit (the drain) reads
/// message 0 again.
#[test]
fn model_regression_a_dead_letter_waiting_above_the_position_at_the_last_leave() {
    let cfg = Config {
        max_deliveries: Some(1),
        ttl_ms: Some(19),
        ..manual_case(1, 512)
    };
    let ops = vec![
        Op::Join(Start::Earliest),
        Op::Sink(false),
        Op::Publish(0),
        Op::Publish(0),
        Op::Join(Start::Earliest),
        Op::TryRecv(1),
        Op::Publish(0),
        Op::PublishBatch(0, 2),
        Op::TryRecv(0),
        Op::TryRecv(0),
        Op::Leave(2),
        Op::TryRecv(0),
        Op::Leave(0),
        Op::Join(Start::Earliest),
        Op::Leave(0),
    ];
    check(cfg, ops).unwrap();
}
