//! Random sequences of operations on a tiny topic, each step checked
//! against the contract (not against the implementation): published
//! messages are delivered intact and in order, a cursor skips only what it
//! was told it lagged over or what had expired, a lag report counts only
//! messages evicted for capacity (never expired ones), backpressure only refuses
//! a publish when a live cursor still needs the oldest message, offsets
//! are dense, and what was published is always accounted for as retained,
//! evicted or expired.
//!
//! Two layers of checks run side by side. The properties above are checked
//! loosely, against what each cursor was handed so far (`Reader`). Under
//! them runs an exact model of the documented contract (`Model`): the
//! window `[low, high)`, every message's publish time and weight, why each
//! removed offset left (evicted or expired), the byte sum, the counters,
//! each cursor's fetch position, read-ahead buffer and kept gap, and each
//! named consumer. Every operation's result is compared with the model's
//! exactly, and after every step one cursor (drawn at random) is probed.
//!
//! Operations: `Publish` and `PublishBatch` (each message with a weight,
//! 0 to 4), `Subscribe`, `SubscribeNamed` (two names, any [`StartFrom`],
//! mostly `Committed`), `ResumeNamed`, `TryRecv`, `TryRecvBatch`,
//! `PollRecv` and `PollRecvBatchAhead` (a noop waker; `Pending` is
//! `Empty`), `PollReady`, `TakeReadAhead`, `Seek`, `SeekOrLag`, `Commit`,
//! `ForgetCommit`, `Drop`, `Advance` (tokio's paused clock), `Close` and
//! `Stats`. Topics have a count limit or none, a byte budget or none (with
//! a weigher that reads the weight back out of the value; a topic without
//! a budget sometimes has one too, for the byte stats), a TTL or none, and
//! either overflow policy.
//!
//! What is checked exactly:
//! - publishes: the run of offsets, `Closed` before `TooLarge` before
//!   anything else, `TooLarge` exactly when the batch alone has more
//!   messages than `max_messages` or weighs more than `max_bytes`, the
//!   oldest messages evicted until the new ones fit (by count and by bytes,
//!   the fewest that make room), and on a `Block` topic `Full` exactly when
//!   a live cursor has not fetched past the newest message that would be
//!   evicted (nothing changes then, except that the publish swept what had
//!   expired);
//! - receives: which offsets are delivered, with their values and publish
//!   times, each `Lagged(n)` and `Empty`/`Closed`;
//! - `stats()`: `low`, `high`, `depth`, `bytes`, `published`, `evicted`,
//!   `expired`, `subscribers`, and each consumer's `committed`, `lag` and
//!   `live`, either after every step or only at `Stats` (drawn per case),
//!   because `stats()` itself sweeps what expired: with rare stats calls
//!   lazy expiry is observable (a subscribe `Earliest` or a seek still finds
//!   expired, unswept messages in the window);
//! - probes after every step: `position`, `position_before_gap`,
//!   `read_ahead`, `committed`, `offsets_ahead`, `name`, `is_closed`,
//!   `lag` of one cursor, and `Topic::committed` for both names,
//!   `Topic::high`, `Topic::is_closed`;
//! - `poll_ready`: ready exactly when something is read ahead, a gap is
//!   kept, something was published past the cursor's fetch position, or
//!   the topic is closed; pending then means a receive finds nothing, and
//!   without a TTL ready means it finds something.
//!
//! Choices where the docs are silent (the model follows the implementation
//! there):
//! - how much a receive reads ahead: a single receive (`try_recv`,
//!   `poll_recv`, a batch of one) fetches up to 128 messages (all of a tiny
//!   topic); a batch of `max` fetches exactly `max`, or `ahead` when
//!   `poll_recv_batch_ahead` asks for more (weights here are far below the
//!   1 MiB read-ahead bound); a batch that started on read-ahead messages
//!   tops up by what is missing and keeps a gap found there for the next
//!   receive. Backpressure counts a cursor's fetch position, so what it
//!   read ahead no longer holds publishers back (as the `Cursor` docs say
//!   read-ahead messages are delivered even if evicted meanwhile);
//! - on a byte budget a publish may have to evict several messages; `Block`
//!   refuses unless every live cursor has fetched past all of them;
//! - when expired messages are swept: by a publish (that is not refused as
//!   `Closed` or `TooLarge` and is not empty), by a fetch from the topic
//!   (one that does not report a lag first), by `stats()`, and by `lag()`
//!   (which the docs do not list; it sweeps as a receive would);
//! - `position()` counts an expired message still read ahead, or an
//!   expired one not yet swept, as the next one: it is the delivery
//!   pointer, expiry not applied; `read_ahead()` counts expired ones too
//!   (as documented);
//! - a consumer's stats `lag` after `forget_commit` counts from where the
//!   consumer first started, as before any commit; the start is where its
//!   first cursor started;
//! - a named cursor's `committed()` is the consumer's commit when it was
//!   opened, then only what it commits or forgets itself;
//! - `try_recv_batch(0, ..)` and a batch poll of 0 answer `Ok(0)`, even with
//!   a gap kept or on a closed topic.
//!
//! At most 120 operations a case keep the topic's record of why offsets
//! left under its 256 exact runs, so lag reports are exact here.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use memq_core::{
    CommitError, Cursor, Delivered, OutOfRange, Overflow, PublishError, RecvError, StartFrom, SubscribeError,
    Topic, TopicConfig, TryRecvError, Waiter,
};
use proptest::prelude::*;

/// Consumer names.
const NAMES: [&str; 2] = ["a", "b"];

/// The value published at `offset` with `weight`: the weigher reads the
/// weight back.
fn value(offset: u64, weight: usize) -> u64 {
    offset * 100 + weight as u64 * 10 + 7
}

fn weigh(v: &u64) -> usize {
    ((v / 10) % 10) as usize
}

#[derive(Debug, Clone)]
struct Config {
    cap: Option<usize>,
    max_bytes: Option<usize>,
    /// A weigher without a byte budget still measures the byte stats.
    weigher: bool,
    ttl_ms: Option<u64>,
    block: bool,
    /// Check `stats()` after every step, or only at `Op::Stats`.
    eager_stats: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// One message of this weight.
    Publish(usize),
    /// Messages of these weights.
    PublishBatch(Vec<usize>),
    Subscribe(u8, u64),
    /// Name, start kind, offset for `StartFrom::Offset`.
    SubscribeNamed(usize, u8, u64),
    ResumeNamed(usize, u64),
    TryRecv(usize),
    TryRecvBatch(usize, usize),
    PollRecv(usize),
    /// Cursor, `max`, `ahead`.
    PollRecvBatchAhead(usize, usize, usize),
    PollReady(usize),
    TakeReadAhead(usize, usize),
    Seek(usize, u64),
    SeekOrLag(usize, u64),
    Commit(usize, u64),
    ForgetCommit(usize),
    Drop(usize),
    Advance(u64),
    Close,
    Stats,
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::option::weighted(0.8, 1usize..5),
        prop::option::weighted(0.5, 1usize..10),
        any::<bool>(),
        prop::option::of(1u64..50),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(cap, max_bytes, weigher, ttl_ms, block, eager_stats)| Config {
            cap,
            max_bytes,
            weigher: weigher || max_bytes.is_some(),
            ttl_ms,
            block,
            eager_stats,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..5).prop_map(Op::Publish),
        2 => prop::collection::vec(0usize..5, 0..6).prop_map(Op::PublishBatch),
        2 => (0u8..3, 0u64..12).prop_map(|(k, o)| Op::Subscribe(k, o)),
        2 => (0usize..2, 0u8..5, 0u64..12).prop_map(|(n, k, o)| Op::SubscribeNamed(n, k, o)),
        1 => (0usize..2, 0u64..14).prop_map(|(n, o)| Op::ResumeNamed(n, o)),
        6 => (0usize..4).prop_map(Op::TryRecv),
        3 => (0usize..4, 0usize..6).prop_map(|(c, m)| Op::TryRecvBatch(c, m)),
        2 => (0usize..4).prop_map(Op::PollRecv),
        2 => (0usize..4, 0usize..4, 0usize..8).prop_map(|(c, m, a)| Op::PollRecvBatchAhead(c, m, a)),
        2 => (0usize..4).prop_map(Op::PollReady),
        2 => (0usize..4, 0usize..4).prop_map(|(c, m)| Op::TakeReadAhead(c, m)),
        1 => (0usize..4, 0u64..12).prop_map(|(c, o)| Op::Seek(c, o)),
        1 => (0usize..4, 0u64..12).prop_map(|(c, o)| Op::SeekOrLag(c, o)),
        2 => (0usize..4, 0u64..12).prop_map(|(c, o)| Op::Commit(c, o)),
        1 => (0usize..4).prop_map(Op::ForgetCommit),
        1 => (0usize..4).prop_map(Op::Drop),
        2 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Close),
        1 => Just(Op::Stats),
    ]
}

/// Why an offset left the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Evicted,
    Expired,
}

/// A cursor as the contract describes it.
#[derive(Debug, Clone)]
struct MCursor {
    /// The next offset it fetches from the topic: what holds publishers
    /// back on a `Block` topic.
    pos: u64,
    /// Offsets read ahead, not delivered yet.
    buf: VecDeque<u64>,
    /// A gap a batch found after handing out messages, reported next.
    pending: Option<u64>,
    committed: Option<u64>,
    name: Option<usize>,
}

#[derive(Debug, Clone)]
struct MNamed {
    committed: Option<u64>,
    /// Where its first cursor started.
    start: u64,
    live: usize,
}

enum Fetched {
    Some,
    Lagged(u64),
    Closed,
    Empty,
}

/// How a publish failed, without the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Full,
    Closed,
    TooLarge,
}

fn refused<T: PartialEq + std::fmt::Debug>(e: PublishError<T>, sent: &T) -> Result<Refused, TestCaseError> {
    prop_assert_eq!(e.get_ref(), sent, "the message comes back");
    Ok(match e {
        PublishError::Full(_) => Refused::Full,
        PublishError::Closed(_) => Refused::Closed,
        PublishError::TooLarge(_) => Refused::TooLarge,
        e => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
    })
}

/// The exact model of the documented contract.
#[derive(Debug, Clone)]
struct Model {
    cap: usize,
    max_bytes: usize,
    weigher: bool,
    ttl: Option<u64>,
    block: bool,
    now: u64,
    /// Publish time (ms) and weight of each offset ever published.
    published: Vec<(u64, usize)>,
    low: u64,
    bytes: usize,
    /// Why each offset below `low` left.
    removed: Vec<Removal>,
    evicted: u64,
    expired: u64,
    closed: bool,
    cursors: Vec<Option<MCursor>>,
    named: BTreeMap<usize, MNamed>,
}

impl Model {
    fn high(&self) -> u64 {
        self.published.len() as u64
    }

    fn weight(&self, offset: u64) -> usize {
        if self.weigher {
            self.published[offset as usize].1
        } else {
            0
        }
    }

    fn expired(&self, offset: u64) -> bool {
        match (self.ttl, self.published.get(offset as usize)) {
            (Some(ttl), Some(&(t, _))) => self.now - t >= ttl,
            _ => false,
        }
    }

    fn remove_front(&mut self, why: Removal) {
        self.bytes -= self.weight(self.low);
        self.removed.push(why);
        self.low += 1;
        match why {
            Removal::Evicted => self.evicted += 1,
            Removal::Expired => self.expired += 1,
        }
    }

    /// Removes what has expired from the front of the window.
    fn sweep(&mut self) {
        while self.low < self.high() && self.expired(self.low) {
            self.remove_front(Removal::Expired);
        }
    }

    /// How many offsets in `[from, to)` were evicted (`to <= low`).
    fn evicted_in(&self, from: u64, to: u64) -> u64 {
        (from..to.max(from))
            .filter(|&o| self.removed[o as usize] == Removal::Evicted)
            .count() as u64
    }

    fn cur(&mut self, ci: usize) -> &mut MCursor {
        self.cursors[ci].as_mut().expect("a live cursor")
    }

    fn publish(&mut self, weights: &[usize]) -> Result<Range<u64>, Refused> {
        let n = weights.len();
        let size: usize = if self.weigher { weights.iter().sum() } else { 0 };
        if self.closed {
            return Err(Refused::Closed);
        }
        if n > self.cap || size > self.max_bytes {
            return Err(Refused::TooLarge);
        }
        let first = self.high();
        if n == 0 {
            return Ok(first..first);
        }
        self.sweep();
        // The fewest of the oldest that make room, by count and by bytes.
        let len = (first - self.low) as usize;
        let (mut evict, mut freed) = (0usize, 0usize);
        while evict < len && (len - evict + n > self.cap || self.bytes - freed + size > self.max_bytes) {
            freed += self.weight(self.low + evict as u64);
            evict += 1;
        }
        if evict > 0 && self.block {
            let newest = self.low + evict as u64 - 1;
            if self.cursors.iter().flatten().any(|c| c.pos <= newest) {
                return Err(Refused::Full);
            }
        }
        for _ in 0..evict {
            self.remove_front(Removal::Evicted);
        }
        for &w in weights {
            self.published.push((self.now, w));
        }
        self.bytes += size;
        Ok(first..first + n as u64)
    }

    fn subscribe(
        &mut self,
        start: StartFrom,
        name: Option<usize>,
        resume: Option<u64>,
    ) -> Result<u64, SubscribeError> {
        if self.closed {
            return Err(SubscribeError::Closed);
        }
        let (low, high) = (self.low, self.high());
        let committed = name.and_then(|n| self.named.get(&n).and_then(|c| c.committed));
        let pos = match start {
            StartFrom::Earliest => low,
            StartFrom::Latest => high,
            StartFrom::Offset(o) if low <= o && o <= high => o,
            StartFrom::Offset(o) => {
                return Err(SubscribeError::OutOfRange(OutOfRange {
                    requested: o,
                    low,
                    high,
                }))
            }
            StartFrom::Committed => resume.or(committed.map(|c| c + 1)).map_or(high, |c| c.min(high)),
        };
        if let Some(n) = name {
            let entry = self.named.entry(n).or_insert(MNamed {
                committed: None,
                start: pos,
                live: 0,
            });
            entry.live += 1;
        }
        self.cursors.push(Some(MCursor {
            pos,
            buf: VecDeque::new(),
            pending: None,
            committed,
            name,
        }));
        Ok(pos)
    }

    fn fetch(&mut self, ci: usize, count: usize) -> Fetched {
        let low = self.low;
        let c = self.cur(ci);
        if c.pos < low {
            let from = c.pos;
            c.pos = low;
            let missed = self.evicted_in(from, low);
            if missed > 0 {
                return Fetched::Lagged(missed);
            }
        }
        self.sweep();
        let (low, high, closed) = (self.low, self.high(), self.closed);
        let c = self.cur(ci);
        c.pos = c.pos.max(low);
        let n = (count as u64).min(high - c.pos);
        c.buf.extend(c.pos..c.pos + n);
        c.pos += n;
        if n > 0 {
            Fetched::Some
        } else if closed {
            Fetched::Closed
        } else {
            Fetched::Empty
        }
    }

    /// Hands out up to `max` read-ahead messages, dropping expired ones.
    fn drain(&mut self, ci: usize, max: usize, out: &mut Vec<u64>) -> usize {
        let mut got = 0;
        while got < max {
            let Some(o) = self.cur(ci).buf.pop_front() else {
                break;
            };
            if self.expired(o) {
                continue;
            }
            out.push(o);
            got += 1;
        }
        got
    }

    /// A receive of up to `max` (reading up to `ahead` when nothing is
    /// read ahead and `ahead > max`).
    fn take(&mut self, ci: usize, max: usize, ahead: usize) -> Result<Vec<u64>, TryRecvError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let got = self.drain(ci, max, &mut out);
        if got == max {
            return Ok(out);
        }
        if let Some(n) = self.cur(ci).pending {
            if got == 0 {
                self.cur(ci).pending = None;
                return Err(TryRecvError::Lagged(n));
            }
            return Ok(out);
        }
        if got > 0 {
            if let Fetched::Lagged(n) = self.fetch(ci, max - got) {
                self.cur(ci).pending = Some(n);
            }
            self.drain(ci, max - got, &mut out);
            return Ok(out);
        }
        let count = if max == 1 { 128 } else { ahead.max(max) };
        match self.fetch(ci, count) {
            Fetched::Some => {
                self.drain(ci, max, &mut out);
                Ok(out)
            }
            Fetched::Lagged(n) => Err(TryRecvError::Lagged(n)),
            Fetched::Closed => Err(TryRecvError::Closed),
            Fetched::Empty => Err(TryRecvError::Empty),
        }
    }

    fn take_read_ahead(&mut self, ci: usize, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        self.drain(ci, max, &mut out);
        out
    }

    fn poll_ready(&mut self, ci: usize) -> bool {
        let (high, closed) = (self.high(), self.closed);
        let c = self.cur(ci);
        !c.buf.is_empty() || c.pending.is_some() || c.pos != high || closed
    }

    fn seek(&mut self, ci: usize, o: u64, below_ok: bool) -> Result<(), OutOfRange> {
        let (low, high) = (self.low, self.high());
        if o > high || (o < low && !below_ok) {
            return Err(OutOfRange {
                requested: o,
                low,
                high,
            });
        }
        let c = self.cur(ci);
        c.pos = o;
        c.pending = None;
        c.buf.clear();
        Ok(())
    }

    fn commit(&mut self, ci: usize, o: u64) -> Result<(), CommitError> {
        let high = self.high();
        if o >= high {
            return Err(CommitError::NotPublished { offset: o, high });
        }
        let c = self.cur(ci);
        c.committed = Some(o);
        if let Some(n) = c.name {
            self.named.get_mut(&n).unwrap().committed = Some(o);
        }
        Ok(())
    }

    fn forget_commit(&mut self, ci: usize) {
        let c = self.cur(ci);
        c.committed = None;
        if let Some(n) = c.name {
            self.named.get_mut(&n).unwrap().committed = None;
        }
    }

    fn drop_cursor(&mut self, ci: usize) {
        if let Some(c) = self.cursors[ci].take() {
            if let Some(n) = c.name {
                self.named.get_mut(&n).unwrap().live -= 1;
            }
        }
    }

    fn position(&self, ci: usize) -> u64 {
        let c = self.cursors[ci].as_ref().unwrap();
        c.buf.front().copied().unwrap_or(c.pos)
    }

    fn position_before_gap(&self, ci: usize) -> u64 {
        let c = self.cursors[ci].as_ref().unwrap();
        match (c.buf.front(), c.pending) {
            (None, Some(gap)) => c.pos - gap,
            _ => self.position(ci),
        }
    }

    /// Read ahead and unexpired, kept gap, evicted unread, and unexpired
    /// in the window from the fetch position on.
    fn lag(&mut self, ci: usize) -> u64 {
        self.sweep();
        let c = self.cursors[ci].as_ref().unwrap();
        let held = c.buf.iter().filter(|&&o| !self.expired(o)).count() as u64;
        let below = if c.pos < self.low {
            self.evicted_in(c.pos, self.low)
        } else {
            0
        };
        let live = (c.pos.max(self.low)..self.high())
            .filter(|&o| !self.expired(o))
            .count() as u64;
        held + c.pending.unwrap_or(0) + below + live
    }
}

struct Reader {
    cursor: Cursor<u64>,
    /// The next offset the contract says it may deliver: every offset
    /// below it was delivered, announced as lagged, or expired.
    next: u64,
    /// Offsets announced as skipped (lagged) since `next` was set.
    lagged: u64,
    /// Started or sought below the window: its first receive may report
    /// that gap even under backpressure.
    resumed_below: bool,
}

struct Run {
    cfg: Config,
    topic: Topic<u64>,
    /// The topic's clock epoch (paused time: the instant it was created).
    t0: tokio::time::Instant,
    m: Model,
    /// Parallel to `m.cursors`.
    readers: Vec<Option<Reader>>,
}

/// A receive's outcome: delivered messages or why none.
type Received = Result<Vec<Delivered<u64>>, TryRecvError>;

impl Run {
    /// The live cursor `i` designates, if any.
    fn slot(&self, i: usize) -> Option<usize> {
        let n = self.readers.len();
        (n > 0 && self.readers[i % n].is_some()).then(|| i % n)
    }

    fn rd(&mut self, ci: usize) -> &mut Reader {
        self.readers[ci].as_mut().unwrap()
    }

    /// Checks one delivered message and moves the reader past it.
    fn delivered(&mut self, ci: usize, d: &Delivered<u64>) -> Result<(), TestCaseError> {
        let offset = d.offset;
        prop_assert!(
            offset < self.m.high(),
            "offset {} delivered, never published",
            offset
        );
        let (ts, w) = self.m.published[offset as usize];
        prop_assert_eq!(
            d.value,
            value(offset, w),
            "delivered value matches what was published"
        );
        prop_assert_eq!(
            d.timestamp.duration_since(self.t0),
            Duration::from_millis(ts),
            "timestamp is the publish time"
        );
        let (from, lagged) = {
            let r = self.readers[ci].as_ref().unwrap();
            (r.next, r.lagged)
        };
        prop_assert!(
            offset >= from,
            "offset {} delivered again (next was {})",
            offset,
            from
        );
        prop_assert!(
            !self.m.expired(offset),
            "offset {} delivered after it expired",
            offset
        );
        let live_skipped = (from..offset).filter(|&o| !self.m.expired(o)).count() as u64;
        prop_assert!(
            live_skipped <= lagged,
            "{} unexpired offsets before {} skipped, only {} announced",
            live_skipped,
            offset,
            lagged
        );
        let evicted = self.m.evicted_in(from, offset.min(self.m.low));
        prop_assert!(
            lagged <= evicted,
            "announced {} skips in a gap of {} where {} were evicted (expired ones are not lag)",
            lagged,
            offset - from,
            evicted
        );
        let r = self.rd(ci);
        r.next = offset + 1;
        r.lagged = 0;
        Ok(())
    }

    fn lagged(&mut self, ci: usize, lag: u64) -> Result<(), TestCaseError> {
        prop_assert!(lag > 0);
        let low = self.m.low;
        let block = self.cfg.block;
        let r = self.rd(ci);
        prop_assert!(
            !block || std::mem::take(&mut r.resumed_below),
            "backpressure never makes a live cursor lag"
        );
        r.lagged += lag;
        let (next, lagged) = (r.next, r.lagged);
        // Everything announced as skipped has left the window, evicted.
        prop_assert!(
            next + lagged <= low,
            "{} skips announced after {} but the window starts at {}",
            lagged,
            next,
            low
        );
        let evicted = self.m.evicted_in(next, low);
        prop_assert!(
            lagged <= evicted,
            "{} skips announced after {}, only {} evicted",
            lagged,
            next,
            evicted
        );
        Ok(())
    }

    /// Nothing was deliverable: everything unexpired from `next` on has
    /// left the window and was announced.
    fn nothing(&mut self, ci: usize) -> Result<(), TestCaseError> {
        let (from, lagged) = {
            let r = self.readers[ci].as_ref().unwrap();
            (r.next, r.lagged)
        };
        let (low, high) = (self.m.low, self.m.high());
        for o in from.max(low)..high {
            prop_assert!(
                self.m.expired(o),
                "offset {} was deliverable but nothing was returned",
                o
            );
        }
        let gone_live = (from..low.min(high)).filter(|&o| !self.m.expired(o)).count() as u64;
        prop_assert!(
            gone_live <= lagged,
            "{} offsets evicted unread, {} announced",
            gone_live,
            lagged
        );
        Ok(())
    }

    /// Compares a receive with the model's and checks it loosely.
    fn received(
        &mut self,
        ci: usize,
        got: Received,
        expect: Result<Vec<u64>, TryRecvError>,
    ) -> Result<(), TestCaseError> {
        match got {
            Ok(ds) => {
                let offsets: Vec<u64> = ds.iter().map(|d| d.offset).collect();
                prop_assert_eq!(Ok(offsets), expect);
                for d in &ds {
                    self.delivered(ci, d)?;
                }
            }
            Err(e) => {
                prop_assert_eq!(Err(e), expect);
                match e {
                    TryRecvError::Lagged(n) => self.lagged(ci, n)?,
                    TryRecvError::Empty => self.nothing(ci)?,
                    TryRecvError::Closed => {
                        prop_assert!(self.m.closed);
                        self.nothing(ci)?;
                    }
                    e => prop_assert!(false, "unexpected {:?}", e),
                }
            }
        }
        Ok(())
    }

    fn opened(
        &mut self,
        got: Result<Cursor<u64>, SubscribeError>,
        expect: Result<u64, SubscribeError>,
    ) -> Result<(), TestCaseError> {
        match (got, expect) {
            (Ok(cursor), Ok(pos)) => {
                prop_assert_eq!(cursor.position(), pos, "starts where the contract says");
                let resumed_below = pos < self.m.low;
                self.readers.push(Some(Reader {
                    cursor,
                    next: pos,
                    lagged: 0,
                    resumed_below,
                }));
            }
            (got, expect) => prop_assert_eq!(got.map(|c| c.position()), expect),
        }
        Ok(())
    }

    fn check_stats(&mut self) -> Result<(), TestCaseError> {
        self.m.sweep();
        let s = self.topic.stats();
        let m = &self.m;
        let high = m.high();
        prop_assert_eq!(
            (s.low, s.high, s.depth, s.bytes, s.published),
            (m.low, high, high - m.low, m.bytes, high),
            "low, high, depth, bytes, published"
        );
        prop_assert_eq!((s.evicted, s.expired), (m.evicted, m.expired), "evicted, expired");
        prop_assert_eq!(s.subscribers, m.cursors.iter().flatten().count());
        let mut consumers: Vec<_> = s
            .consumers
            .iter()
            .map(|c| (c.name.clone(), c.committed, c.lag, c.live))
            .collect();
        consumers.sort();
        let expect: Vec<_> = m
            .named
            .iter()
            .map(|(&n, c)| {
                let next = c.committed.map_or(c.start, |c| c + 1);
                (NAMES[n].to_string(), c.committed, high - next, c.live)
            })
            .collect();
        prop_assert_eq!(consumers, expect, "consumers: name, committed, lag, live");
        prop_assert!(s.depth as usize <= m.cap);
        prop_assert!(s.bytes <= m.max_bytes);
        prop_assert_eq!(
            s.depth + s.evicted + s.expired,
            s.published,
            "every message accounted for"
        );
        Ok(())
    }

    /// The queries on one cursor, and the topic's own.
    fn probe(&mut self, i: usize) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.topic.high(), self.m.high());
        prop_assert_eq!(self.topic.is_closed(), self.m.closed);
        for (n, name) in NAMES.iter().enumerate() {
            let expect = self.m.named.get(&n).and_then(|c| c.committed);
            prop_assert_eq!(self.topic.committed(name), expect, "committed({})", name);
        }
        let Some(ci) = self.slot(i) else { return Ok(()) };
        let pos = self.m.position(ci);
        let c = self.m.cursors[ci].clone().unwrap();
        let r = &self.readers[ci].as_ref().unwrap().cursor;
        prop_assert_eq!(r.position(), pos, "position");
        prop_assert_eq!(
            r.position_before_gap(),
            self.m.position_before_gap(ci),
            "position_before_gap"
        );
        prop_assert_eq!(r.read_ahead(), c.buf.len(), "read_ahead");
        prop_assert_eq!(r.committed(), c.committed, "committed");
        prop_assert_eq!(
            r.offsets_ahead(),
            self.m.high().saturating_sub(pos),
            "offsets_ahead"
        );
        prop_assert_eq!(r.name(), c.name.map(|n| NAMES[n]), "name");
        prop_assert_eq!(r.is_closed(), self.m.closed);
        let lag = r.lag();
        prop_assert_eq!(lag, self.m.lag(ci), "lag");
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Publish(w) => {
                let v = value(self.m.high(), w);
                let got = self.topic.try_publish(v);
                let expect = self.m.publish(&[w]);
                match got {
                    Ok(o) => prop_assert_eq!(Ok(o..o + 1), expect, "offsets are dense"),
                    Err(e) => prop_assert_eq!(Err(refused(e, &v)?), expect),
                }
            }
            Op::PublishBatch(ws) => {
                let high = self.m.high();
                let values: Vec<u64> = ws
                    .iter()
                    .enumerate()
                    .map(|(k, &w)| value(high + k as u64, w))
                    .collect();
                let got = self.topic.try_publish_batch(values.clone());
                let expect = self.m.publish(&ws);
                match got {
                    Ok(r) => prop_assert_eq!(Ok(r), expect, "a contiguous run"),
                    Err(e) => prop_assert_eq!(Err(refused(e, &values)?), expect),
                }
            }
            Op::Subscribe(kind, o) => {
                let start = match kind {
                    0 => StartFrom::Earliest,
                    1 => StartFrom::Latest,
                    _ => StartFrom::Offset(o),
                };
                let got = self.topic.subscribe(start);
                let expect = self.m.subscribe(start, None, None);
                self.opened(got, expect)?;
            }
            Op::SubscribeNamed(n, kind, o) => {
                let start = match kind {
                    0 | 1 => StartFrom::Committed,
                    2 => StartFrom::Earliest,
                    3 => StartFrom::Latest,
                    _ => StartFrom::Offset(o),
                };
                let got = self.topic.subscribe_named(NAMES[n], start);
                let expect = self.m.subscribe(start, Some(n), None);
                self.opened(got, expect)?;
            }
            Op::ResumeNamed(n, next) => {
                let got = self.topic.resume_named(NAMES[n], next);
                let expect = self.m.subscribe(StartFrom::Committed, Some(n), Some(next));
                self.opened(got, expect)?;
            }
            Op::TryRecv(i) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let got = self.rd(ci).cursor.try_recv().map(|d| vec![d]);
                let expect = self.m.take(ci, 1, 0);
                self.received(ci, got, expect)?;
            }
            Op::TryRecvBatch(i, max) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let mut out = Vec::new();
                let got = self.rd(ci).cursor.try_recv_batch(max, &mut out);
                let got = got.map(|n| {
                    assert_eq!(n, out.len());
                    out
                });
                let expect = self.m.take(ci, max, 0);
                self.received(ci, got, expect)?;
            }
            Op::PollRecv(i) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let mut waiter = Waiter::new();
                let polled = self
                    .rd(ci)
                    .cursor
                    .poll_recv(&mut Context::from_waker(Waker::noop()), &mut waiter);
                drop(waiter);
                let got = match polled {
                    Poll::Ready(Ok(d)) => Ok(vec![d]),
                    Poll::Ready(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
                    Poll::Ready(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
                    Poll::Pending => Err(TryRecvError::Empty),
                    Poll::Ready(Err(e)) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                };
                let expect = self.m.take(ci, 1, 0);
                self.received(ci, got, expect)?;
            }
            Op::PollRecvBatchAhead(i, max, ahead) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let (mut waiter, mut out) = (Waiter::new(), Vec::new());
                let polled = self.rd(ci).cursor.poll_recv_batch_ahead(
                    &mut Context::from_waker(Waker::noop()),
                    &mut waiter,
                    max,
                    ahead,
                    &mut out,
                );
                drop(waiter);
                let got = match polled {
                    Poll::Ready(Ok(n)) => {
                        prop_assert_eq!(n, out.len());
                        Ok(out)
                    }
                    Poll::Ready(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
                    Poll::Ready(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
                    Poll::Pending => Err(TryRecvError::Empty),
                    Poll::Ready(Err(e)) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                };
                let expect = self.m.take(ci, max, ahead);
                self.received(ci, got, expect)?;
            }
            Op::PollReady(i) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let mut waiter = Waiter::new();
                let polled = self
                    .rd(ci)
                    .cursor
                    .poll_ready(&mut Context::from_waker(Waker::noop()), &mut waiter);
                drop(waiter);
                let expect = self.m.poll_ready(ci);
                prop_assert_eq!(polled.is_ready(), expect, "poll_ready");
                // What a receive would find now (on a copy of the model).
                let found = self.m.clone().take(ci, 1, 0);
                if !expect {
                    prop_assert_eq!(
                        found,
                        Err(TryRecvError::Empty),
                        "pending, yet a receive finds something"
                    );
                } else if self.m.ttl.is_none() {
                    prop_assert_ne!(
                        found,
                        Err(TryRecvError::Empty),
                        "ready, yet a receive finds nothing"
                    );
                }
            }
            Op::TakeReadAhead(i, max) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let mut out = Vec::new();
                let n = self.rd(ci).cursor.take_read_ahead(max, &mut out);
                prop_assert_eq!(n, out.len());
                let expect = self.m.take_read_ahead(ci, max);
                self.received(ci, Ok(out), Ok(expect))?;
            }
            Op::Seek(i, o) | Op::SeekOrLag(i, o) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let below_ok = matches!(op, Op::SeekOrLag(..));
                let r = self.rd(ci);
                let got = if below_ok {
                    r.cursor.seek_or_lag(o)
                } else {
                    r.cursor.seek(o)
                };
                let expect = self.m.seek(ci, o, below_ok);
                prop_assert_eq!(got, expect);
                if got.is_ok() {
                    let low = self.m.low;
                    let r = self.rd(ci);
                    prop_assert_eq!(r.cursor.position(), o);
                    r.next = o;
                    r.lagged = 0;
                    r.resumed_below = o < low;
                }
            }
            Op::Commit(i, o) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                let got = self.rd(ci).cursor.commit(o);
                prop_assert_eq!(got, self.m.commit(ci, o));
            }
            Op::ForgetCommit(i) => {
                let Some(ci) = self.slot(i) else { return Ok(()) };
                self.rd(ci).cursor.forget_commit();
                self.m.forget_commit(ci);
            }
            Op::Drop(i) => {
                let n = self.readers.len();
                if n > 0 {
                    self.readers[i % n] = None;
                    self.m.drop_cursor(i % n);
                }
            }
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms)).await_blocking();
                self.m.now += ms;
            }
            Op::Close => {
                self.topic.close();
                self.m.closed = true;
            }
            Op::Stats => self.check_stats()?,
        }
        if self.cfg.eager_stats {
            self.check_stats()?;
        }
        Ok(())
    }
}

/// `advance` is async; the model runs inside a paused current-thread
/// runtime, so drive it to completion in place.
trait AwaitBlocking {
    fn await_blocking(self);
}

impl<F: std::future::Future<Output = ()>> AwaitBlocking for F {
    fn await_blocking(self) {
        tokio::runtime::Handle::current().block_on(self);
    }
}

fn run(cfg: Config, ops: Vec<(Op, usize)>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let config = TopicConfig::default()
        .max_messages(cfg.cap)
        .max_bytes(cfg.max_bytes)
        .ttl(cfg.ttl_ms.map(Duration::from_millis))
        .overflow(if cfg.block {
            Overflow::Block
        } else {
            Overflow::DropOldest
        });
    let t0 = tokio::time::Instant::now();
    let topic = if cfg.weigher {
        Topic::with_weigher(config, weigh)
    } else {
        Topic::new(config)
    }
    .unwrap();
    let m = Model {
        cap: cfg.cap.unwrap_or(usize::MAX),
        max_bytes: cfg.max_bytes.unwrap_or(usize::MAX),
        weigher: cfg.weigher,
        ttl: cfg.ttl_ms,
        block: cfg.block,
        now: 0,
        published: Vec::new(),
        low: 0,
        bytes: 0,
        removed: Vec::new(),
        evicted: 0,
        expired: 0,
        closed: false,
        cursors: Vec::new(),
        named: BTreeMap::new(),
    };
    let mut run = Run {
        cfg,
        topic,
        t0,
        m,
        readers: Vec::new(),
    };
    for (op, probe) in ops {
        run.step(op)?;
        run.probe(probe)?;
    }
    run.check_stats()
}

/// `MEMQ_STRESS` (set by `cargo xtask stress`) multiplies the cases.
fn cases() -> u32 {
    512 * memq_testkit::stress_scale()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_step_keeps_the_contract(
        cfg in config(),
        ops in prop::collection::vec((op(), any::<usize>()), 1..120),
    ) {
        run(cfg, ops)?;
    }
}
