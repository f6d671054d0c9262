//! State shared by a topic's handles and cursors, and the operations on it.
//!
//! One mutex guards the retained window, the waiter lists and the cursor
//! positions, so every decision (assign an offset and make it visible,
//! decide that a reader must park and register it, decide that a topic is
//! full and register the publisher) is a single critical section. Nothing
//! else is ever locked while it is held, and no waker, `Drop` of an
//! evicted payload or other user code runs under it, with one exception:
//! `T::clone` copies a message out while the lock is held, so payloads
//! should be cheap to clone (`Arc`, `Bytes`).
//!
//! Counters that stats read are mirrored in atomics, so stats never wait
//! for the lock.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::task::Waker;
use std::time::Duration;

use crate::config::{Overflow, TopicConfig};
use crate::error::{OutOfRange, PublishError, SubscribeError};
use crate::log::{is_expired, Garbage, Log, Removal};
use crate::stats::{ConsumerStats, TopicStats};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::wait::{WaitKey, WaitList, WakeBatch};
use crate::StartFrom;

/// Aligns a value to its own cache lines (128 bytes: two 64-byte lines,
/// as adjacent-line prefetchers pull pairs), against false sharing.
#[derive(Debug, Default)]
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Where a parking future keeps its slot, and the waker to arm.
pub(crate) type Park<'a> = Option<(&'a mut Option<WaitKey>, &'a Waker)>;

pub(crate) type Weigher<T> = fn(&T) -> usize;

#[derive(Debug)]
pub(crate) struct Shared<T> {
    /// On their own cache lines: both sides write them on every operation,
    /// and the read-mostly fields below must not share a line with them.
    hot: CachePadded<Hot<T>>,
    // The fields below fit the 128 bytes after `hot` (the struct's size
    // is a multiple of its 128-byte alignment): an idle topic pays for
    // every byte past them (issue 10 asks for at most 512 per idle topic),
    // so the hot path reads the limits straight from `config` rather than
    // from a copy in its own form.
    pub(crate) config: TopicConfig,
    /// `config.ttl` in nanoseconds.
    ttl_nanos: Option<NonZeroU64>,
    pub(crate) weigher: Option<Weigher<T>>,
    pub(crate) clock: Clock,
    /// Named consumers; allocated for the first.
    named: Mutex<Option<Box<NamedMap>>>,
}

/// What every operation writes: the lock and what it guards, and the
/// counters every publish writes (under the lock; read without it). One
/// padded block for both: 384 bytes, where each padded on its own took
/// 512. `repr(C)` keeps the lock first: the counters share at most the
/// block's last line with the tail of `Inner`, never the lock's word.
#[derive(Debug)]
#[repr(C)]
struct Hot<T> {
    inner: Mutex<Inner<T>>,
    counters: Counters,
}

#[derive(Debug)]
struct Inner<T> {
    log: Log<T>,
    closed: bool,
    recv_waiters: WaitList,
    publish_waiters: WaitList,
    cursors: Cursors,
    /// The slowest position seen by the last publishes that found it near
    /// eviction, and how many messages were published since it last moved.
    pace: (u64, u64),
}

/// Which waiter list a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitKind {
    Recv,
    Publish,
}

impl<T> Inner<T> {
    fn waiters(&mut self, kind: WaitKind) -> &mut WaitList {
        match kind {
            WaitKind::Recv => &mut self.recv_waiters,
            WaitKind::Publish => &mut self.publish_waiters,
        }
    }
}

/// Positions of live cursors (the next offset each will fetch), for
/// backpressure. A slab indexed by cursor id, and the slowest position
/// with how many cursors are at it, so that asking for the slowest (every
/// fetch while a publisher waits for room) does not scan every cursor: it
/// rescans only when the last cursor at the slowest position moves on, at
/// most once per position the slowest cursor passes. (A scan per fetch made
/// a delivery's cost grow with the number of subscribers: 69 ns with 1,000
/// and 124 ns with 10,000.)
#[derive(Debug)]
struct Cursors {
    pos: Vec<CursorPos>,
    /// The first free id (`NO_CURSOR`: none); freed ids form a list
    /// through their entries, which costs an idle topic nothing more.
    free: u32,
    /// How many live cursors are at `slowest`, the slowest live position;
    /// 0 when no cursor is live or it must be found again.
    at_slowest: u32,
    slowest: u64,
}

/// An entry of [`Cursors::pos`].
#[derive(Debug, Clone, Copy)]
enum CursorPos {
    Live(u64),
    /// Free; the next free id.
    Free(u32),
}

/// The end of [`Cursors`]' free list.
const NO_CURSOR: u32 = u32::MAX;

impl Default for Cursors {
    fn default() -> Self {
        Cursors {
            pos: Vec::new(),
            free: NO_CURSOR,
            at_slowest: 0,
            slowest: 0,
        }
    }
}

impl Cursors {
    fn insert(&mut self, pos: u64) -> u32 {
        // The free list holds free entries only (`remove` frees an entry
        // once); `NO_CURSOR` is past the end of any slab.
        let id = if let Some(&CursorPos::Free(next)) = self.pos.get(self.free as usize) {
            let id = self.free;
            self.free = next;
            self.pos[id as usize] = CursorPos::Live(pos);
            id
        } else {
            debug_assert_eq!(self.free, NO_CURSOR, "a live cursor on the free list");
            self.free = NO_CURSOR;
            // Room for exactly one at first (then doubling as usual):
            // an idle topic with one reader pays for no slack.
            if self.pos.capacity() == 0 {
                self.pos.reserve_exact(1);
            }
            self.pos.push(CursorPos::Live(pos));
            u32::try_from(self.pos.len() - 1)
                .ok()
                .filter(|&id| id != NO_CURSOR)
                .expect("more than u32::MAX cursors on one topic")
        };
        self.arrived(pos);
        id
    }

    fn set(&mut self, id: u32, pos: u64) {
        if let [CursorPos::Live(only)] = self.pos.as_mut_slice() {
            // The topic's only cursor (a slab of one holds no free entry):
            // wherever it moves, it is the slowest, so `min` never rescans
            // for a topic with one reader (every publish of an evicting
            // topic asks it).
            *only = pos;
            (self.slowest, self.at_slowest) = (pos, 1);
            return;
        }
        if let CursorPos::Live(old) = &mut self.pos[id as usize] {
            let old = std::mem::replace(old, pos);
            if old != pos {
                self.left(old);
                self.arrived(pos);
            }
        }
    }

    /// Frees `id` (once: removing it again changes nothing).
    fn remove(&mut self, id: u32) {
        if let CursorPos::Live(old) = self.pos[id as usize] {
            self.left(old);
            self.pos[id as usize] = CursorPos::Free(self.free);
            self.free = id;
        }
    }

    /// A cursor arrived at `pos` (inserted or moved there).
    fn arrived(&mut self, pos: u64) {
        if self.at_slowest == 0 {
            // Found again when asked (the first cursor included: with
            // others live, this one need not be the slowest).
        } else if pos == self.slowest {
            self.at_slowest += 1;
        } else if pos < self.slowest {
            (self.slowest, self.at_slowest) = (pos, 1);
        }
    }

    /// A cursor left `pos` (moved away or removed).
    fn left(&mut self, pos: u64) {
        if self.at_slowest != 0 && pos == self.slowest {
            self.at_slowest -= 1;
        }
    }

    /// True when every live cursor has fetched past `offset`.
    fn all_past(&mut self, offset: u64) -> bool {
        self.min().is_none_or(|min| min > offset)
    }

    /// The slowest position kept and how many cursors are at it, if kept.
    #[cfg(test)]
    fn kept_slowest(&self) -> Option<(u64, usize)> {
        (self.at_slowest != 0).then_some((self.slowest, self.at_slowest as usize))
    }

    /// The positions of the live cursors.
    fn live(&self) -> impl Iterator<Item = u64> + '_ {
        self.pos.iter().filter_map(|p| match p {
            CursorPos::Live(p) => Some(*p),
            CursorPos::Free(_) => None,
        })
    }

    /// The slowest live position, by a full scan.
    #[cfg(test)]
    fn scanned_min(&self) -> Option<u64> {
        self.live().min()
    }

    /// The position of the slowest live cursor.
    fn min(&mut self) -> Option<u64> {
        if self.at_slowest == 0 {
            let min = self.live().min()?;
            let n = self.live().filter(|&p| p == min).count();
            // At most `u32::MAX - 1` cursors (their ids are `u32`).
            self.at_slowest = u32::try_from(n).unwrap_or(u32::MAX);
            self.slowest = min;
        }
        Some(self.slowest)
    }
}

#[derive(Debug, Default)]
struct Counters {
    high: AtomicU64,
    low: AtomicU64,
    /// Publish time of the oldest retained message (`u64::MAX` when none),
    /// so stats can tell without the lock whether anything has expired.
    front_ts: AtomicU64,
    bytes: AtomicUsize,
    evicted: AtomicU64,
    expired: AtomicU64,
    subscribers: AtomicUsize,
    /// 1 once the topic is closed (set under the lock, with `closed`
    /// there): asking costs no lock (consumer groups ask on every wake-up).
    closed: AtomicUsize,
    /// 1 while the slowest live cursor of an evicting topic is more than
    /// half the capacity behind, and moving (set by publishes, under the
    /// lock, when it changes): see [`Shared::near_eviction`].
    near_eviction: AtomicUsize,
    /// Live `Topic` handles; the topic closes when the last one drops.
    /// Here, on the line publishes write anyway, rather than beside the
    /// settings every publish reads: code that clones and drops handles
    /// often (a stats poller) must not make publishers miss the cache.
    handles: AtomicUsize,
}

/// Adds to a counter that only the topic lock's holder writes: a load
/// and a store, not a read-modify-write (whose locked instruction costs
/// every publish that evicts a few nanoseconds under the lock).
fn add_locked(counter: &AtomicU64, n: u64) -> u64 {
    let total = counter.load(Ordering::Relaxed).wrapping_add(n);
    counter.store(total, Ordering::Relaxed);
    total
}

/// True when a running total went from `total - n` past a power of two:
/// aggregate events fire a few dozen times in a topic's life, not per
/// message.
#[cfg(feature = "tracing")]
fn crossed_power_of_two(total: u64, n: u64) -> bool {
    let before = total.wrapping_sub(n);
    n > 0 && total > 0 && (before == 0 || before.ilog2() != total.ilog2())
}

/// Named consumers by name.
type NamedMap = HashMap<std::sync::Arc<str>, Named>;

#[derive(Debug)]
struct Named {
    /// The last offset committed, if any.
    committed: Option<u64>,
    /// Where the consumer first started, for lag before any commit.
    start: u64,
    live: usize,
}

/// Timestamps as nanoseconds since the topic was created, on tokio's clock
/// (so paused-time tests drive TTL).
#[derive(Debug)]
pub(crate) struct Clock {
    epoch: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Clock {
            epoch: tokio::time::Instant::now(),
        }
    }

    #[cfg(not(memq_loom))]
    pub(crate) fn now(&self) -> u64 {
        self.nanos_at(tokio::time::Instant::now())
    }

    /// Under loom the models set the time (see [`crate::loom_clock`]).
    #[cfg(memq_loom)]
    pub(crate) fn now(&self) -> u64 {
        crate::loom_clock::now()
    }

    pub(crate) fn nanos_at(&self, at: tokio::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn instant(&self, ts: u64) -> tokio::time::Instant {
        self.epoch + Duration::from_nanos(ts)
    }
}

/// A batch of messages to append: one value or a `Vec`.
pub(crate) trait Batch<T>: Sized {
    fn count(&self) -> usize;
    fn weight(&self, weigh: Weigher<T>) -> usize;
    fn append(self, log: &mut Log<T>, ts: u64);
}

/// A batch of exactly one message.
#[derive(Debug)]
pub(crate) struct One<T>(pub(crate) T);

impl<T> Batch<T> for One<T> {
    fn count(&self) -> usize {
        1
    }
    fn weight(&self, weigh: Weigher<T>) -> usize {
        weigh(&self.0)
    }
    fn append(self, log: &mut Log<T>, ts: u64) {
        log.push_back(ts, self.0);
    }
}

impl<T> Batch<T> for Vec<T> {
    fn count(&self) -> usize {
        self.len()
    }
    fn weight(&self, weigh: Weigher<T>) -> usize {
        self.iter().map(weigh).fold(0usize, usize::saturating_add)
    }
    fn append(self, log: &mut Log<T>, ts: u64) {
        log.extend(ts, self);
    }
}

/// A cursor's view of its own progress, owned by the cursor.
#[derive(Debug)]
pub(crate) struct ReadState {
    /// The next offset to fetch from the log.
    pub(crate) pos: u64,
    pub(crate) id: u32,
}

/// What a fetch found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fetched {
    Some(usize),
    Lagged(u64),
    Empty,
    Closed,
}

impl<T> Shared<T> {
    pub(crate) fn new(config: TopicConfig, weigher: Option<Weigher<T>>) -> Result<Self, crate::ConfigError> {
        let ttl_nanos = config.validate(weigher.is_some())?;
        let counters = Counters::default();
        counters.high.store(config.first_offset, Ordering::Relaxed);
        counters.low.store(config.first_offset, Ordering::Relaxed);
        counters.front_ts.store(u64::MAX, Ordering::Relaxed);
        counters.handles.store(1, Ordering::Relaxed);
        Ok(Shared {
            hot: CachePadded(Hot {
                inner: Mutex::new(Inner {
                    log: Log::new(config.first_offset),
                    closed: false,
                    recv_waiters: WaitList::default(),
                    publish_waiters: WaitList::default(),
                    cursors: Cursors::default(),
                    pace: (u64::MAX, 0),
                }),
                counters,
            }),
            config,
            ttl_nanos,
            weigher,
            clock: Clock::new(),
            named: Mutex::new(None),
        })
    }

    /// The most messages retained (`usize::MAX`: no count limit).
    pub(crate) fn max_messages(&self) -> usize {
        self.config.max_messages.unwrap_or(usize::MAX)
    }

    /// The most bytes retained (`usize::MAX`: no byte budget).
    pub(crate) fn max_bytes(&self) -> usize {
        self.config.max_bytes.unwrap_or(usize::MAX)
    }

    /// Whether a full topic makes publishers wait (rather than evict).
    pub(crate) fn blocks(&self) -> bool {
        self.config.overflow == Overflow::Block
    }

    /// How long a message stays deliverable, in nanoseconds.
    pub(crate) fn ttl_nanos(&self) -> Option<u64> {
        self.ttl_nanos.map(NonZeroU64::get)
    }

    /// Appends `items` as one contiguous run of offsets, or nothing.
    ///
    /// On `Full` with `park` given, the publisher is registered to be woken
    /// when a cursor moves or a sweep removes expired messages, in the
    /// same critical section that found the topic full; `room_at` then
    /// says when enough of the oldest messages expire to make room (TTL
    /// topics), for a publisher that must wake then even if nobody acts.
    pub(crate) fn push<B: Batch<T>>(
        &self,
        items: B,
        park: Park<'_>,
        room_at: &mut Option<u64>,
    ) -> Result<Range<u64>, PublishError<B>> {
        let n = items.count();
        let size = match self.weigher {
            Some(w) => items.weight(w),
            None => 0,
        };
        let now = self.clock.now();
        let mut garbage = Garbage::new();
        // A waker this publish replaces; dropped after the lock.
        let mut _replaced = None;
        let mut g = self.hot.inner.lock();
        // Closed first: a closed topic answers every publish so.
        if g.closed {
            return Err(PublishError::Closed(items));
        }
        if n > self.max_messages() || size > self.max_bytes() {
            return Err(PublishError::TooLarge(items));
        }
        let first = g.log.high();
        if n == 0 {
            return Ok(first..first);
        }
        let Some(end) = first.checked_add(n as u64) else {
            return Err(PublishError::OffsetsExhausted(items));
        };
        // The clock was read before the lock: a publisher that read it
        // later may have got the lock first. Publish times must not go
        // down with offsets (a sweep of expired messages stops at the
        // first live one, and a reader relies on that), so take the
        // newest time seen if it is later.
        let now = g.log.newest_ts.map_or(now, |newest| newest.max(now));
        let swept = self.sweep_expired(&mut g, now, &mut garbage);
        // How many of the oldest messages must go to make room. Decided
        // before anything is removed, so a refused publish changes nothing.
        let (len, bytes) = (g.log.len(), g.log.bytes);
        // Byte sums saturate: a weigher may say anything (`usize::MAX` for
        // each message), and a count that wrapped would evict wrongly.
        let (mut evict, mut freed) = (0usize, 0usize);
        while evict < len
            && (len - evict + n > self.max_messages()
                || bytes.saturating_sub(freed).saturating_add(size) > self.max_bytes())
        {
            // With everything evicted, `n` and `size` fit (checked above).
            if let (Some(w), Some(slot)) = (self.weigher, g.log.entries.get(evict)) {
                freed = freed.saturating_add(w(&slot.value));
            }
            evict += 1;
        }
        let evict_end = g.log.low + evict as u64;
        if evict > 0 && self.blocks() && !g.cursors.all_past(evict_end - 1) {
            if let Some((key, waker)) = park {
                _replaced = g.publish_waiters.arm(key, waker);
            }
            // The `evict` oldest must go; they all have once the newest of
            // them has expired.
            *room_at = match (self.ttl_nanos(), g.log.entries.get(evict - 1)) {
                (Some(ttl), Some(slot)) => Some(slot.ts.saturating_add(ttl)),
                _ => None,
            };
            if swept > 0 {
                // What this sweep freed may be enough for another waiting
                // publisher (one that needs less room).
                self.wake(g, WaitKind::Publish);
            } else {
                drop(g);
            }
            return Err(PublishError::Full(items));
        }
        if evict > 0 {
            // `freed` is what the `evict` oldest weigh (summed above).
            g.log.evict_front(evict, freed, &mut garbage);
            let _total = add_locked(&self.hot.counters.evicted, evict as u64);
            #[cfg(feature = "tracing")]
            if crossed_power_of_two(_total, evict as u64) {
                tracing::info!(
                    target: "memq_core",
                    topic = self.config.name.as_deref().unwrap_or(""),
                    partition = self.config.partition,
                    evicted_total = _total,
                    "messages evicted for capacity (reported at each power of two)"
                );
            }
        }
        g.log.reserve(n, self.max_messages());
        items.append(&mut g.log, now);
        g.log.bytes = g.log.bytes.saturating_add(size);
        if !self.blocks() {
            self.note_pressure(&mut g, end, n as u64);
        }
        if let Some((Some(key), _)) = park {
            g.publish_waiters.disarm(*key);
        }
        self.publish_counters(&g);
        // Expired messages swept here may make room for waiting publishers
        // of a topic that holds them back (a reader that never reads).
        let publishers = swept > 0 && self.blocks();
        self.wake_kinds(g, true, publishers);
        drop(garbage);
        Ok(first..end)
    }

    /// Whether publishers waiting for room should be woken: as soon as
    /// every live cursor has moved past the oldest message, so that
    /// `try_publish` never succeeds while `publish` waits. A reader takes
    /// up to 128 messages per fetch (its read-ahead), so a publisher of a
    /// full topic is woken about once per fetch, not once per message.
    fn room_for_publishers(&self, g: &mut Inner<T>) -> bool {
        if g.publish_waiters.is_empty() {
            return false;
        }
        g.cursors.min().is_none_or(|min| min > g.log.low)
    }

    /// Removes expired messages from the front, counting them; returns
    /// how many it removed.
    #[inline]
    fn sweep_expired(&self, g: &mut Inner<T>, now: u64, garbage: &mut Garbage<T>) -> u64 {
        match self.ttl_nanos() {
            // Inlined, so that a topic without a TTL (most) pays a test,
            // not a call with the slow path's frame (23 instructions per
            // publish and per fetch, by callgrind).
            None => 0,
            Some(ttl) => self.sweep_expired_slow(g, now, ttl, garbage),
        }
    }

    #[inline(never)]
    fn sweep_expired_slow(&self, g: &mut Inner<T>, now: u64, ttl: u64, garbage: &mut Garbage<T>) -> u64 {
        let mut expired = 0;
        while g.log.front_ts().is_some_and(|ts| is_expired(ts, now, ttl)) {
            if let Some(v) = g.log.pop_front(self.weigher, Removal::Expired) {
                garbage.push(v);
                expired += 1;
            }
        }
        if expired > 0 {
            let _total = add_locked(&self.hot.counters.expired, expired);
            #[cfg(feature = "tracing")]
            if crossed_power_of_two(_total, expired) {
                tracing::info!(
                    target: "memq_core",
                    topic = self.config.name.as_deref().unwrap_or(""),
                    partition = self.config.partition,
                    expired_total = _total,
                    "messages expired (reported at each power of two)"
                );
            }
            self.publish_counters(g);
        }
        expired
    }

    /// Mirrors the window in atomics for stats. `low` is stored before
    /// `high` (release), and stats load `high` (acquire) before `low`, so
    /// a reader never sees a window wider than the topic ever held.
    fn publish_counters(&self, g: &Inner<T>) {
        if self.ttl_nanos().is_some() {
            let front = g.log.front_ts().unwrap_or(u64::MAX);
            self.hot.counters.front_ts.store(front, Ordering::Relaxed);
        }
        self.hot.counters.low.store(g.log.low, Ordering::Relaxed);
        self.hot.counters.bytes.store(g.log.bytes, Ordering::Relaxed);
        self.hot.counters.high.store(g.log.high(), Ordering::Release);
    }

    /// Wakes every armed waiter of `kind`, releasing the lock first and
    /// re-taking it only when more than one batch of wakers is armed.
    fn wake<'a>(&'a self, g: MutexGuard<'a, Inner<T>>, kind: WaitKind) {
        match kind {
            WaitKind::Recv => self.wake_kinds(g, true, false),
            WaitKind::Publish => self.wake_kinds(g, false, true),
        }
    }

    /// Wakes every armed receiver (with `recv`) and publisher (with
    /// `publish`), as [`wake`](Self::wake) does.
    fn wake_kinds<'a>(&'a self, mut g: MutexGuard<'a, Inner<T>>, recv: bool, publish: bool) {
        let armed =
            |g: &Inner<T>| (recv && !g.recv_waiters.is_empty()) || (publish && !g.publish_waiters.is_empty());
        if !armed(&g) {
            return;
        }
        loop {
            let mut batch = WakeBatch::new();
            let mut more = false;
            if recv {
                more |= g.recv_waiters.drain_into(&mut batch);
            }
            if publish {
                more |= g.publish_waiters.drain_into(&mut batch);
            }
            drop(g);
            batch.wake_all();
            if !more {
                return;
            }
            g = self.hot.inner.lock();
            if !armed(&g) {
                return;
            }
        }
    }

    /// Registers a cursor and returns its read state.
    pub(crate) fn subscribe(
        &self,
        start: StartFrom,
        name: Option<&std::sync::Arc<str>>,
    ) -> Result<ReadState, SubscribeError> {
        self.subscribe_at(start, name, None)
    }

    /// As [`subscribe`](Self::subscribe); with `resume`, a
    /// [`StartFrom::Committed`] start resumes there instead of after the
    /// named consumer's commit.
    pub(crate) fn subscribe_at(
        &self,
        start: StartFrom,
        name: Option<&std::sync::Arc<str>>,
        resume: Option<u64>,
    ) -> Result<ReadState, SubscribeError> {
        let committed_next = match (start, name) {
            (StartFrom::Committed, _) if resume.is_some() => resume,
            (StartFrom::Committed, Some(name)) => {
                let named = self.named.lock();
                named
                    .as_ref()
                    .and_then(|named| named.get(name))
                    .and_then(|n| n.committed)
                    .map(|c| c.saturating_add(1))
            }
            _ => None,
        };
        let mut g = self.hot.inner.lock();
        if g.closed {
            return Err(SubscribeError::Closed);
        }
        let (low, high) = (g.log.low, g.log.high());
        let pos = match start {
            StartFrom::Earliest => low,
            StartFrom::Latest => high,
            StartFrom::Offset(n) if (low..=high).contains(&n) => n,
            StartFrom::Offset(n) => {
                return Err(SubscribeError::OutOfRange(OutOfRange {
                    requested: n,
                    low,
                    high,
                }))
            }
            // Below `low` is kept on purpose: the first receive then
            // reports the committed-but-evicted gap as a lag.
            StartFrom::Committed => committed_next.map_or(high, |c| c.min(high)),
        };
        let id = g.cursors.insert(pos);
        drop(g);
        self.hot.counters.subscribers.fetch_add(1, Ordering::Relaxed);
        if let Some(name) = name {
            let mut named = self.named.lock();
            let entry = named
                .get_or_insert_default()
                .entry(name.clone())
                .or_insert(Named {
                    committed: None,
                    start: pos,
                    live: 0,
                });
            entry.live += 1;
        }
        Ok(ReadState { pos, id })
    }

    pub(crate) fn unsubscribe(&self, st: &ReadState, name: Option<&std::sync::Arc<str>>) {
        let mut g = self.hot.inner.lock();
        g.cursors.remove(st.id);
        self.hot.counters.subscribers.fetch_sub(1, Ordering::Relaxed);
        if self.blocks() {
            self.wake(g, WaitKind::Publish);
        } else {
            drop(g);
        }
        if let Some(name) = name {
            if let Some(n) = self.named.lock().as_mut().and_then(|named| named.get_mut(name)) {
                n.live -= 1;
            }
        }
    }

    /// Moves the cursor to `offset`; with `below_ok`, an offset below the
    /// window is accepted too (the next fetch reports the gap).
    pub(crate) fn seek(&self, st: &mut ReadState, offset: u64, below_ok: bool) -> Result<(), OutOfRange> {
        let mut g = self.hot.inner.lock();
        let (low, high) = (g.log.low, g.log.high());
        if offset > high || (offset < low && !below_ok) {
            return Err(OutOfRange {
                requested: offset,
                low,
                high,
            });
        }
        let forward = offset > st.pos;
        st.pos = offset;
        g.cursors.set(st.id, offset);
        if forward && self.blocks() {
            self.wake(g, WaitKind::Publish);
        }
        Ok(())
    }

    /// Wakes every armed receiver (see [`Topic::wake_receivers`](crate::Topic::wake_receivers)).
    pub(crate) fn wake_receivers(&self) {
        let g = self.hot.inner.lock();
        self.wake(g, WaitKind::Recv);
    }

    pub(crate) fn commit_named(&self, name: &std::sync::Arc<str>, offset: u64) {
        if let Some(n) = self.named.lock().as_mut().and_then(|named| named.get_mut(name)) {
            n.committed = Some(offset);
        }
    }

    pub(crate) fn forget_named_commit(&self, name: &std::sync::Arc<str>) {
        if let Some(n) = self.named.lock().as_mut().and_then(|named| named.get_mut(name)) {
            n.committed = None;
        }
    }

    pub(crate) fn committed(&self, name: &str) -> Option<u64> {
        self.named
            .lock()
            .as_ref()
            .and_then(|named| named.get(name))
            .and_then(|n| n.committed)
    }

    /// Live `Topic` handles.
    pub(crate) fn handles(&self) -> &AtomicUsize {
        &self.hot.counters.handles
    }

    pub(crate) fn high(&self) -> u64 {
        self.hot.counters.high.load(Ordering::Acquire)
    }

    /// True when a receive at `st` would not wait: messages past its
    /// position, a gap to report, or a closed topic. Otherwise arms `park`
    /// (in the same critical section, so no wake-up is lost) and returns
    /// false. Takes nothing.
    pub(crate) fn ready(&self, st: &ReadState, park: Park<'_>) -> bool {
        // A replaced waker is dropped after the lock (declared before it).
        let mut replaced = None;
        let mut g = self.hot.inner.lock();
        let ready = st.pos != g.log.high() || g.closed;
        match park {
            Some((key, waker)) if !ready => replaced = g.recv_waiters.arm(key, waker),
            Some((Some(key), _)) => g.recv_waiters.disarm(*key),
            _ => {}
        }
        drop(g);
        drop(replaced);
        ready
    }

    /// Releases a parked future's slot.
    pub(crate) fn release(&self, kind: WaitKind, key: WaitKey) {
        // Dropped after the lock is released (the guard is a temporary of
        // this statement): a waker's drop may run code of its own.
        let _waker = self.hot.inner.lock().waiters(kind).release(key);
    }

    pub(crate) fn close(&self) {
        let mut g = self.hot.inner.lock();
        if g.closed {
            return;
        }
        g.closed = true;
        self.hot.counters.closed.store(1, Ordering::Release);
        self.wake_kinds(g, true, true);
    }

    /// Whether the topic is closed, without the lock (a topic never opens
    /// again, so a `true` stays true).
    pub(crate) fn is_closed(&self) -> bool {
        self.hot.counters.closed.load(Ordering::Acquire) != 0
    }

    /// The time to check expiry against: the clock on a topic with a TTL,
    /// 0 (no read) on one where nothing expires.
    pub(crate) fn expiry_now(&self) -> u64 {
        match self.ttl_nanos() {
            Some(_) => self.clock.now(),
            None => 0,
        }
    }

    /// Whether another thread holds the topic's lock right now (a hint).
    pub(crate) fn is_busy(&self) -> bool {
        self.hot.inner.is_locked()
    }

    /// True when, at the last publish, the slowest live cursor of this
    /// evicting topic was more than half the capacity behind, and moving:
    /// a publisher that lets the readers run first (a yield) then evicts
    /// nothing a reader that keeps pace would have read.
    pub(crate) fn near_eviction(&self) -> bool {
        self.hot.counters.near_eviction.load(Ordering::Relaxed) != 0
    }

    /// Updates [`near_eviction`](Self::near_eviction) after a publish of
    /// `n` messages up to `end` (written only when it changes: the line
    /// stays shared). A reader counts while it keeps moving: one that has
    /// not moved for half the capacity (the room it had left) is not
    /// keeping up, and publishers stop making room for it until it moves
    /// again. (Half, measured with 1.0.0's `benchmark_throughput` on 2
    /// cores: its reader lost messages in 5 of 160 runs; with a quarter,
    /// in 7 of 180; without pacing, in 11 to 14 of 20.)
    fn note_pressure(&self, g: &mut Inner<T>, end: u64, n: u64) {
        let capacity = self.max_messages() as u64;
        let slowest = g.cursors.min();
        let mut near =
            capacity != u64::MAX && slowest.is_some_and(|slowest| end.saturating_sub(slowest) > capacity / 2);
        if let (true, Some(slowest)) = (near, slowest) {
            if g.pace.0 == slowest {
                g.pace.1 = g.pace.1.saturating_add(n);
            } else {
                g.pace = (slowest, 0);
            }
            // Until it would lose messages anyway.
            near = g.pace.1 < capacity / 2;
        }
        let flag = usize::from(near);
        if self.hot.counters.near_eviction.load(Ordering::Relaxed) != flag {
            self.hot.counters.near_eviction.store(flag, Ordering::Relaxed);
        }
    }

    /// Whether the oldest retained message has expired at `now`, read
    /// without the lock (as of the last publish or sweep).
    fn front_expired(&self, now: u64) -> bool {
        self.ttl_nanos().is_some_and(|ttl| {
            let front = self.hot.counters.front_ts.load(Ordering::Relaxed);
            front != u64::MAX && is_expired(front, now, ttl)
        })
    }

    /// What a reader whose next fetch starts at `pos` will still deliver
    /// or report lost from the topic: the messages from `pos` on that have
    /// not expired, and those below the window that were evicted (expired
    /// ones are skipped silently, so they are owed to nobody). Lock-free
    /// while `pos` is in the window and nothing in it has expired.
    pub(crate) fn owed_from(&self, pos: u64) -> u64 {
        let high = self.hot.counters.high.load(Ordering::Acquire);
        let low = self.hot.counters.low.load(Ordering::Relaxed).min(high);
        let now = self.expiry_now();
        if pos >= low && !self.front_expired(now) {
            return high.saturating_sub(pos);
        }
        // Dropped after the lock is released.
        let mut garbage = Garbage::new();
        let mut g = self.hot.inner.lock();
        let swept = self.sweep_expired(&mut g, now, &mut garbage);
        let (low, high) = (g.log.low, g.log.high());
        let evicted = match pos < low {
            true => g.log.removed.evicted_in(pos, low),
            false => 0,
        };
        if swept > 0 && self.blocks() {
            self.wake(g, WaitKind::Publish);
        }
        evicted + high.saturating_sub(pos.max(low))
    }

    pub(crate) fn stats(&self) -> TopicStats {
        if self.ttl_nanos().is_some() {
            // Count what has expired since the last publish or receive,
            // but never wait for the lock to do so, and take it only when
            // the oldest message has expired (a poller must not slow the
            // publishers down).
            let now = self.clock.now();
            if self.front_expired(now) {
                let mut garbage = Garbage::new();
                if let Some(mut g) = self.hot.inner.try_lock() {
                    if self.sweep_expired(&mut g, now, &mut garbage) > 0 && self.blocks() {
                        self.wake(g, WaitKind::Publish);
                    }
                }
            }
        }
        let high = self.hot.counters.high.load(Ordering::Acquire);
        let low = self.hot.counters.low.load(Ordering::Relaxed).min(high);
        let first = self.config.first_offset;
        let consumers = self
            .named
            .lock()
            .iter()
            .flat_map(|named| named.iter())
            .map(|(name, n)| {
                let next = n.committed.map_or(n.start, |c| c.saturating_add(1));
                ConsumerStats {
                    name: name.to_string(),
                    committed: n.committed,
                    lag: high.saturating_sub(next),
                    live: n.live,
                }
            })
            .collect();
        TopicStats {
            low,
            high,
            depth: high - low,
            bytes: self.hot.counters.bytes.load(Ordering::Relaxed),
            published: high - first,
            evicted: self.hot.counters.evicted.load(Ordering::Relaxed),
            expired: self.hot.counters.expired.load(Ordering::Relaxed),
            subscribers: self.hot.counters.subscribers.load(Ordering::Relaxed),
            consumers,
        }
    }
}

impl<T: Clone> Shared<T> {
    /// Copies up to `max` messages (and, past the first `at_least`, up to
    /// `max_bytes` by weight) from the cursor's position into `out`.
    pub(crate) fn fetch(
        &self,
        st: &mut ReadState,
        max: usize,
        at_least: usize,
        max_bytes: usize,
        out: &mut impl FnMut(u64, u64, T),
        park: Park<'_>,
    ) -> Fetched {
        let now = self.expiry_now();
        // A waker this fetch replaces; dropped after the lock.
        let mut _replaced = None;
        let mut garbage = Garbage::new();
        let mut g = self.hot.inner.lock();
        let start_pos = st.pos;
        let mut result = None;
        if st.pos < g.log.low {
            // Messages evicted unread are reported; expired ones are
            // skipped silently, as they would have been had they stayed.
            let missed = g.log.removed.evicted_in(st.pos, g.log.low);
            st.pos = g.log.low;
            if missed > 0 {
                result = Some(Fetched::Lagged(missed));
            }
        }
        let mut swept = 0;
        if result.is_none() {
            swept = self.sweep_expired(&mut g, now, &mut garbage);
            if st.pos < g.log.low {
                // Skipped only messages that expired just now.
                st.pos = g.log.low;
            }
            let mut n = 0;
            if st.pos < g.log.high() {
                let start = (st.pos - g.log.low) as usize;
                let mut bytes = 0usize;
                for slot in g.log.entries.range(start..) {
                    if n == max || (n >= at_least.max(1) && bytes >= max_bytes) {
                        break;
                    }
                    // Weighed only when there is a byte bound to stop at.
                    if let Some(w) = self.weigher.filter(|_| max_bytes != usize::MAX) {
                        bytes = bytes.saturating_add(w(&slot.value));
                    }
                    out(st.pos, slot.ts, slot.value.clone());
                    st.pos += 1;
                    n += 1;
                }
            }
            result = Some(if n > 0 {
                if let Some((Some(key), _)) = park {
                    g.recv_waiters.disarm(*key);
                }
                Fetched::Some(n)
            } else if g.closed {
                Fetched::Closed
            } else {
                if let Some((key, waker)) = park {
                    _replaced = g.recv_waiters.arm(key, waker);
                }
                Fetched::Empty
            });
        }
        if st.pos != start_pos {
            g.cursors.set(st.id, st.pos);
        }
        let moved = st.pos != start_pos && self.room_for_publishers(&mut g);
        if self.blocks() && (moved || (swept > 0 && !g.publish_waiters.is_empty())) {
            self.wake(g, WaitKind::Publish);
        } else {
            drop(g);
        }
        drop(garbage);
        result.unwrap_or(Fetched::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::locks_taken;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum CursorOp {
        Insert(u64),
        Set(usize, u64),
        Remove(usize),
        Min,
    }

    fn cursor_op() -> impl Strategy<Value = CursorOp> {
        // Few distinct positions, so that cursors often share the slowest.
        prop_oneof![
            (0u64..8).prop_map(CursorOp::Insert),
            (any::<usize>(), 0u64..8).prop_map(|(i, p)| CursorOp::Set(i, p)),
            any::<usize>().prop_map(CursorOp::Remove),
            Just(CursorOp::Min),
        ]
    }

    proptest! {
        // Under miri: a few cases, and no failure file (miri's isolation
        // has no file system).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { ProptestConfig::default().cases },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The slowest position kept as cursors come, move (both ways:
        /// seeks go back) and go is always the minimum of a full scan.
        #[test]
        fn slowest_cursor_is_the_minimum(ops in proptest::collection::vec(cursor_op(), 1..200)) {
            let mut cursors = Cursors::default();
            let mut live: Vec<u32> = Vec::new();
            for op in ops {
                match op {
                    CursorOp::Insert(p) => {
                        let id = cursors.insert(p);
                        prop_assert!(!live.contains(&id), "id {} handed out twice", id);
                        live.push(id);
                    }
                    CursorOp::Set(i, p) if !live.is_empty() => cursors.set(live[i % live.len()], p),
                    CursorOp::Remove(i) if !live.is_empty() => {
                        let id = live.swap_remove(i % live.len());
                        cursors.remove(id);
                    }
                    _ => {}
                }
                let scanned = cursors.scanned_min();
                prop_assert_eq!(cursors.min(), scanned);
                if let Some(min) = scanned {
                    prop_assert!(cursors.all_past(min.wrapping_sub(1)) || min == 0);
                    prop_assert!(!cursors.all_past(min));
                }
            }
        }
    }

    /// A topic's only cursor is the slowest wherever it moves, forward or
    /// back, without a rescan; with a second cursor (or a freed entry)
    /// in the slab the general bookkeeping applies again.
    #[test]
    fn a_lone_cursor_is_kept_as_the_slowest_as_it_moves() {
        let mut cursors = Cursors::default();
        let id = cursors.insert(5);
        for pos in [6, 7, 3, 9] {
            cursors.set(id, pos);
            assert_eq!(
                cursors.kept_slowest(),
                Some((pos, 1)),
                "no rescan needed at {pos}"
            );
        }
        let other = cursors.insert(20);
        cursors.set(id, 30);
        assert_eq!(cursors.min(), Some(20));
        cursors.remove(other);
        cursors.set(id, 31);
        assert_eq!(cursors.min(), Some(31), "a slab with a freed entry is scanned");
    }

    /// The free list lives inside the slab: a cursor removed twice is
    /// freed once, and ids handed out afterwards are distinct and reused
    /// last-freed first.
    #[test]
    fn removed_cursor_ids_are_reused_once_each() {
        let mut cursors = Cursors::default();
        let ids: Vec<u32> = (0..4).map(|p| cursors.insert(p)).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        cursors.remove(1);
        cursors.remove(2);
        cursors.remove(2);
        assert_eq!(cursors.min(), Some(0));
        let again: Vec<u32> = (0..3).map(|_| cursors.insert(9)).collect();
        assert_eq!(again, [2, 1, 4], "each freed id once, then a new one");
        cursors.remove(0);
        assert_eq!(cursors.min(), Some(3));
        assert_eq!(cursors.kept_slowest(), Some((3, 1)));
    }

    /// Asking whether a topic is closed takes no lock (consumer groups ask
    /// on every wake-up, from the publisher's thread), and the answer
    /// turns true with the close.
    #[test]
    fn is_closed_takes_no_lock() {
        let shared: Shared<u8> = Shared::new(TopicConfig::default(), None).unwrap();
        let before = locks_taken::of(&shared.hot.inner);
        assert!(!shared.is_closed());
        assert_eq!(locks_taken::of(&shared.hot.inner), before);
        shared.close();
        assert!(shared.is_closed());
        let before = locks_taken::of(&shared.hot.inner);
        assert!(shared.is_closed());
        assert_eq!(locks_taken::of(&shared.hot.inner), before);
    }

    /// The slowest position is found by a scan only when the last cursor
    /// at it moves on, not on every move of another cursor.
    #[test]
    fn slowest_cursor_is_not_rescanned_for_others() {
        let mut cursors = Cursors::default();
        let ids: Vec<u32> = (0..1_000).map(|_| cursors.insert(0)).collect();
        assert_eq!(cursors.min(), Some(0));
        // All but the last move on: the slowest stays 0 without a scan.
        for &id in &ids[..999] {
            cursors.set(id, 5);
            assert_eq!(cursors.kept_slowest(), Some((0, 1000 - (id as usize + 1))));
        }
        cursors.set(ids[999], 7);
        assert_eq!(
            cursors.kept_slowest(),
            None,
            "the last one at 0 left: found again when asked"
        );
        assert_eq!(cursors.min(), Some(5));
        assert_eq!(cursors.kept_slowest(), Some((5, 999)));
    }

    /// Bug J: stats on a TTL topic polled while nothing has expired take
    /// no lock, so pollers cannot slow publishers down; once the oldest
    /// message has expired, a stats call sweeps it (and counts it).
    #[tokio::test(start_paused = true)]
    async fn stats_lock_only_when_something_expired() {
        let config = TopicConfig::default().ttl(Some(Duration::from_secs(1)));
        let shared: Shared<u8> = Shared::new(config, None).unwrap();
        shared.push(One(1), None, &mut None).unwrap();
        let before = locks_taken::of(&shared.hot.inner);
        for _ in 0..100 {
            assert_eq!(shared.stats().depth, 1);
        }
        assert_eq!(
            locks_taken::of(&shared.hot.inner) - before,
            0,
            "no lock while nothing expired"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let s = shared.stats();
        assert_eq!((s.depth, s.expired), (0, 1));
        let before = locks_taken::of(&shared.hot.inner);
        for _ in 0..100 {
            assert_eq!(shared.stats().expired, 1);
        }
        assert_eq!(
            locks_taken::of(&shared.hot.inner) - before,
            0,
            "nothing left to sweep"
        );
    }
}
