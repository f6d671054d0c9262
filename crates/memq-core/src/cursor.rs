//! A subscriber's position in a topic, and the receive futures.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::{CommitError, OutOfRange, RecvError, TryRecvError};
use crate::log::is_expired;
use crate::shared::{Fetched, Park, ReadState, Shared, WaitKind};
use crate::sync::Arc;
use crate::wait::WaitKey;

/// Messages a single `recv` copies out per lock acquisition.
const READ_AHEAD: usize = 128;
/// ... unless they weigh more than this (at least one is always taken).
const READ_AHEAD_BYTES: usize = 1 << 20;
/// Buffer room kept after a big batch has gone through it.
const BUFFER_KEPT: usize = 8 * READ_AHEAD;

/// A message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered<T> {
    /// The message's offset in its topic.
    pub offset: u64,
    /// When it was published (tokio's clock, so paused time applies).
    pub timestamp: tokio::time::Instant,
    /// The message itself.
    pub value: T,
}

impl<T> Delivered<T> {
    /// Builds a delivered message, for wrappers that hand messages back
    /// with [`Cursor::unread`].
    pub fn new(offset: u64, timestamp: tokio::time::Instant, value: T) -> Self {
        Delivered {
            offset,
            timestamp,
            value,
        }
    }
}

/// A parked future's registration with a topic.
///
/// Futures that wait on a topic (receives, and publishes on a
/// [`Overflow::Block`](crate::Overflow::Block) topic) keep one of these;
/// dropping it withdraws the registration, so a future dropped at any
/// point leaves nothing behind. Build your own futures on
/// [`Cursor::poll_recv`] with one `Waiter` per future.
pub struct Waiter<T> {
    shared: Option<Arc<Shared<T>>>,
    key: Option<WaitKey>,
    kind: WaitKind,
}

impl<T> Waiter<T> {
    /// A waiter that is not registered anywhere yet.
    pub fn new() -> Self {
        Self::with_kind(WaitKind::Recv)
    }

    pub(crate) fn with_kind(kind: WaitKind) -> Self {
        Waiter {
            shared: None,
            key: None,
            kind,
        }
    }

    /// Lends the key slot for `shared`, first withdrawing any registration
    /// with a different topic.
    pub(crate) fn slot(&mut self, shared: &Arc<Shared<T>>) -> &mut Option<WaitKey> {
        if let Some(old) = &self.shared {
            if !Arc::ptr_eq(old, shared) {
                if let Some(key) = self.key.take() {
                    old.release(self.kind, key);
                }
                self.shared = None;
            }
        }
        &mut self.key
    }

    /// Remembers which topic the key belongs to, once one was allocated.
    pub(crate) fn attach(&mut self, shared: &Arc<Shared<T>>) {
        if self.key.is_some() && self.shared.is_none() {
            self.shared = Some(shared.clone());
        }
    }
}

impl<T> Default for Waiter<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        if let (Some(shared), Some(key)) = (&self.shared, self.key) {
            shared.release(self.kind, key);
        }
    }
}

impl<T> fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("registered", &self.key.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct Buffered<T> {
    offset: u64,
    ts: u64,
    value: T,
}

/// The first message a fetch copies out, kept apart from the buffer for
/// a single receive; should a later `clone` of the same fetch panic, it
/// goes back to the front of the buffer (its cursor has moved past it).
struct KeptFirst<'a, T> {
    first: Option<Buffered<T>>,
    buf: &'a mut VecDeque<Buffered<T>>,
}

impl<T> KeptFirst<'_, T> {
    fn keep(&mut self, b: Buffered<T>) {
        if self.first.is_none() {
            self.first = Some(b);
        } else {
            self.buf.push_back(b);
        }
    }
}

impl<T> Drop for KeptFirst<'_, T> {
    fn drop(&mut self) {
        if let Some(b) = self.first.take() {
            self.buf.push_front(b);
        }
    }
}

impl<T> Buffered<T> {
    fn delivered(self, clock: &crate::shared::Clock) -> Delivered<T> {
        Delivered {
            offset: self.offset,
            timestamp: clock.instant(self.ts),
            value: self.value,
        }
    }
}

/// A subscriber's position in a [`Topic`](crate::Topic).
///
/// Created by [`Topic::subscribe`](crate::Topic::subscribe). Each cursor
/// sees every message from its start position in offset order, except
/// messages that expire (skipped silently) and messages evicted before it
/// read them (reported as [`RecvError::Lagged`] with the exact count).
///
/// A receive copies up to 128 messages out of the topic per lock
/// acquisition into a small buffer inside the cursor; those messages are
/// then delivered even if the topic evicts them meanwhile.
///
/// Dropping a cursor unregisters it: it no longer holds back publishers on
/// an [`Overflow::Block`](crate::Overflow::Block) topic.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let mut a = topic.subscribe(StartFrom::Earliest).unwrap();
/// let mut b = topic.subscribe(StartFrom::Earliest).unwrap();
/// topic.try_publish("x").unwrap();
///
/// // Every cursor sees every message, at its own pace.
/// assert_eq!(a.try_recv().unwrap().value, "x");
/// assert_eq!((a.position(), b.position()), (1, 0));
/// assert_eq!(b.try_recv().unwrap().value, "x");
/// drop(b);
/// assert_eq!(topic.stats().subscribers, 1);
/// ```
pub struct Cursor<T> {
    shared: Arc<Shared<T>>,
    st: ReadState,
    buf: VecDeque<Buffered<T>>,
    /// A gap found after handing out messages, reported next (never 0).
    pending_lag: Option<NonZeroU64>,
    /// Boxed: most cursors have no name, and every one would pay 16 bytes
    /// for an inline `Option<Arc<str>>` (issue 10 bounds an idle topic
    /// with one subscriber).
    name: Option<Box<std::sync::Arc<str>>>,
    /// The last offset committed ([`NOT_COMMITTED`]: none; no offset can
    /// be `u64::MAX`, as the next offset after the last one must exist).
    committed: u64,
}

/// [`Cursor::committed`]'s "nothing committed", in half the space of an
/// `Option<u64>`.
const NOT_COMMITTED: u64 = u64::MAX;

impl<T> fmt::Debug for Cursor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("name", &self.name)
            .field("position", &self.position())
            .field("committed", &self.committed())
            .finish_non_exhaustive()
    }
}

impl<T> Cursor<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>, st: ReadState, name: Option<std::sync::Arc<str>>) -> Self {
        let committed = name.as_deref().and_then(|n| shared.committed(n));
        Cursor {
            shared,
            st,
            buf: VecDeque::new(),
            pending_lag: None,
            name: name.map(Box::new),
            committed: committed.unwrap_or(NOT_COMMITTED),
        }
    }

    /// The offset of the next message this cursor will deliver (or, if it
    /// has fallen behind, would have delivered; once a batch receive has
    /// found a gap and kept it for the next receive, the oldest retained
    /// after it).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// for i in 0..3 { topic.try_publish(i).unwrap(); }
    /// let mut cursor = topic.subscribe(StartFrom::Offset(1)).unwrap();
    /// assert_eq!(cursor.position(), 1);
    /// assert_eq!(cursor.try_recv().unwrap().offset, 1);
    /// assert_eq!(cursor.position(), 2);
    /// ```
    pub fn position(&self) -> u64 {
        self.buf.front().map_or(self.st.pos, |b| b.offset)
    }

    /// [`position`](Self::position), except that a gap a batch receive
    /// found and kept for the next receive counts as not yet passed: the
    /// offset this cursor would have delivered next had the batch stopped
    /// short of the gap (what `position` says when the receive that finds
    /// a gap is the one that reports it). With messages that expired mixed
    /// into the gap it counts back by the evicted ones only.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig, TryRecvError};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(4))).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// topic.try_publish_batch(vec![0, 1]).unwrap();
    /// assert_eq!(cursor.try_recv().unwrap().value, 0); // 1 is read ahead
    /// for i in 2..8 {
    ///     topic.try_publish(i).unwrap(); // 2 and 3 are evicted unread
    /// }
    /// let mut batch = Vec::new();
    /// assert_eq!(cursor.try_recv_batch(10, &mut batch), Ok(1)); // 1, then the gap
    /// assert_eq!((cursor.position(), cursor.position_before_gap()), (4, 2));
    /// assert_eq!(cursor.try_recv().map(|d| d.value), Err(TryRecvError::Lagged(2)));
    /// assert_eq!(cursor.position_before_gap(), 4);
    /// ```
    pub fn position_before_gap(&self) -> u64 {
        match (self.buf.front(), self.pending_lag) {
            (None, Some(gap)) => self.st.pos.saturating_sub(gap.get()),
            _ => self.position(),
        }
    }

    /// The consumer name this cursor was opened with.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().map(|n| &**n)
    }

    /// The last offset committed through this cursor, or for a named
    /// cursor the consumer's committed offset when it was opened.
    pub fn committed(&self) -> Option<u64> {
        (self.committed != NOT_COMMITTED).then_some(self.committed)
    }

    /// Offsets published past this cursor's position: what a fetch will
    /// walk through, messages that expired or were evicted included (see
    /// [`lag`](Self::lag) for what it will still deliver or report; a gap
    /// a batch found and kept for the next receive is past the position,
    /// so `lag` counts it and this does not).
    /// Lock-free and without a clock read: for bookkeeping on hot paths
    /// (a consumer group's claim, a batch's size hint).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// let cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// for i in 0..5 { topic.try_publish(i).unwrap(); }
    /// assert_eq!(cursor.offsets_ahead(), 5, "three of them evicted");
    /// assert_eq!(cursor.lag(), 5, "reported as a lag of 3, then 2 delivered");
    /// ```
    pub fn offsets_ahead(&self) -> u64 {
        self.shared.high().saturating_sub(self.position())
    }

    /// Messages published that this cursor has not delivered yet and
    /// still will: those it holds read ahead, those still in the topic,
    /// and those evicted before it read them, which it reports as a lag
    /// (a gap it found and has not reported yet included). Messages that
    /// expired before it read them are not counted: they are skipped, as
    /// a receive would skip them now.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// for i in 0..5 { topic.try_publish(i).unwrap(); }
    /// assert_eq!(cursor.lag(), 5);
    /// cursor.try_recv().unwrap();
    /// assert_eq!(cursor.lag(), 4); // read ahead into the cursor, not delivered: still counted
    /// ```
    pub fn lag(&self) -> u64 {
        let held = match self.shared.ttl_nanos() {
            Some(ttl) => {
                // Publish times never go down with offsets: the expired are a prefix.
                let now = self.shared.expiry_now();
                let expired = self.buf.partition_point(|b| is_expired(b.ts, now, ttl));
                self.buf.len() - expired
            }
            None => self.buf.len(),
        };
        let gap = self.pending_lag.map_or(0, NonZeroU64::get);
        (held as u64)
            .saturating_add(gap)
            .saturating_add(self.shared.owed_from(self.st.pos))
    }

    /// Records that everything up to and including `offset` is processed.
    ///
    /// For a named cursor the commit belongs to the consumer name: a
    /// cursor opened later with [`StartFrom::Committed`](crate::StartFrom)
    /// starts at `offset + 1`. Committing does not move this cursor.
    ///
    /// # Errors
    ///
    /// [`CommitError::NotPublished`] when `offset` has not been published.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{CommitError, StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe_named("audit", StartFrom::Earliest).unwrap();
    /// for i in 0..3 { topic.try_publish(i).unwrap(); }
    /// let msg = cursor.try_recv().unwrap();
    /// cursor.commit(msg.offset).unwrap();
    /// assert_eq!((cursor.committed(), topic.committed("audit")), (Some(0), Some(0)));
    /// assert_eq!(cursor.position(), 1, "committing does not move the cursor");
    /// assert_eq!(cursor.commit(3), Err(CommitError::NotPublished { offset: 3, high: 3 }));
    /// ```
    pub fn commit(&mut self, offset: u64) -> Result<(), CommitError> {
        let high = self.shared.high();
        // Below the topic's first offset nothing was ever published.
        if offset >= high || offset < self.shared.config.first_offset {
            return Err(CommitError::NotPublished { offset, high });
        }
        if let Some(name) = &self.name {
            self.shared.commit_named(name, offset);
        }
        // `offset < high <= u64::MAX`: never the sentinel.
        self.committed = offset;
        Ok(())
    }

    /// Forgets the commit: as if nothing was committed through this
    /// cursor, and for a named cursor by its consumer name (a cursor opened
    /// later with [`StartFrom::Committed`](crate::StartFrom) finds none).
    /// For a consumer that handed messages back to be read again from the
    /// first one, offset 0, which no commit can say.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe_named("audit", StartFrom::Earliest).unwrap();
    /// topic.try_publish(1).unwrap();
    /// cursor.commit(0).unwrap();
    /// cursor.forget_commit();
    /// assert_eq!((cursor.committed(), topic.committed("audit")), (None, None));
    /// ```
    pub fn forget_commit(&mut self) {
        if let Some(name) = &self.name {
            self.shared.forget_named_commit(name);
        }
        self.committed = NOT_COMMITTED;
    }

    /// Takes the report of a gap this cursor found after handing out some
    /// messages (a batch receive that topped up from the topic and found
    /// the next messages evicted), which its next receive would otherwise
    /// return as [`RecvError::Lagged`]. The cursor then stands at the
    /// oldest retained message, just past the gap. For wrappers that must
    /// not lose the report when they drop or move the cursor.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// topic.try_publish(0).unwrap();
    /// topic.try_publish(1).unwrap();
    /// assert_eq!(cursor.try_recv().unwrap().offset, 0); // 1 is read ahead
    /// for i in 2..5 {
    ///     topic.try_publish(i).unwrap(); // evicts 0 to 2
    /// }
    /// let mut batch = Vec::new();
    /// cursor.try_recv_batch(10, &mut batch).unwrap(); // 1, then the gap
    /// assert_eq!(batch.len(), 1);
    /// assert_eq!(cursor.take_lag(), Some(1));
    /// assert_eq!(cursor.position(), 3);
    /// assert_eq!(cursor.take_lag(), None);
    /// ```
    pub fn take_lag(&mut self) -> Option<u64> {
        self.pending_lag.take().map(NonZeroU64::get)
    }

    /// Puts messages back in front of everything else, to be delivered
    /// next in the order given. For wrappers that received a batch and
    /// could not hand all of it on (a decode failure, say): the messages
    /// are not lost and keep their offsets.
    pub fn unread(&mut self, messages: impl DoubleEndedIterator<Item = Delivered<T>>) {
        for d in messages.rev() {
            let ts = self.shared.clock.nanos_at(d.timestamp);
            self.buf.push_front(Buffered {
                offset: d.offset,
                ts,
                value: d.value,
            });
        }
    }

    /// True once the topic is closed; messages may still be buffered.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<T: Clone> Cursor<T> {
    /// Moves the cursor so that the next message delivered is `offset`.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] unless `low <= offset <= high`, where `low` is the
    /// oldest retained offset and `high` the next to be published.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{Topic, TopicConfig, StartFrom};
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// for i in 0..3 { topic.try_publish(i).unwrap(); }
    /// assert_eq!(cursor.try_recv().unwrap().value, 0);
    /// cursor.seek(0).unwrap();
    /// assert_eq!(cursor.try_recv().unwrap().value, 0);
    /// assert!(cursor.seek(4).is_err());
    /// ```
    pub fn seek(&mut self, offset: u64) -> Result<(), OutOfRange> {
        self.seek_inner(offset, false)
    }

    /// Like [`seek`](Self::seek), but an offset below the retained window
    /// is accepted: the next receive reports the messages evicted since as
    /// [`RecvError::Lagged`] (and skips those that expired), as
    /// [`Topic::resume_named`](crate::Topic::resume_named) does. For
    /// wrappers that checked a window and must not fail when a concurrent
    /// eviction moved it meanwhile (an all-or-nothing seek over several
    /// partitions).
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] when `offset` is past the next offset to be
    /// published.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig, TryRecvError};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
    /// for i in 0..5 { topic.try_publish(i).unwrap(); }
    /// assert!(cursor.seek(1).is_err());
    /// cursor.seek_or_lag(1).unwrap();
    /// assert_eq!(cursor.try_recv().unwrap_err(), TryRecvError::Lagged(2));
    /// assert_eq!(cursor.try_recv().unwrap().offset, 3);
    /// assert!(cursor.seek_or_lag(6).is_err());
    /// ```
    pub fn seek_or_lag(&mut self, offset: u64) -> Result<(), OutOfRange> {
        self.seek_inner(offset, true)
    }

    fn seek_inner(&mut self, offset: u64, below_ok: bool) -> Result<(), OutOfRange> {
        self.shared.seek(&mut self.st, offset, below_ok)?;
        self.pending_lag = None;
        // Dropped after the topic lock was released.
        self.buf.clear();
        Ok(())
    }

    /// Receives the next message without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is available, `Lagged(n)` when
    /// `n` messages were evicted before this cursor read them, `Closed`
    /// when the topic is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig, TryRecvError};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
    /// assert_eq!(cursor.try_recv().unwrap_err(), TryRecvError::Empty);
    ///
    /// for i in 0..3 { topic.try_publish(i).unwrap(); } // evicts offset 0
    /// assert_eq!(cursor.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    /// assert_eq!(cursor.try_recv().unwrap().value, 1);
    /// topic.close();
    /// assert_eq!(cursor.try_recv().unwrap().value, 2);
    /// assert_eq!(cursor.try_recv().unwrap_err(), TryRecvError::Closed);
    /// ```
    pub fn try_recv(&mut self) -> Result<Delivered<T>, TryRecvError> {
        let mut item = None;
        self.take(1, 0, &mut |d| item = Some(d), None)?;
        item.ok_or(TryRecvError::Empty)
    }

    /// Waits for the next message.
    ///
    /// Cancel safe: dropping the future before it completes loses no
    /// message; the next receive returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{Topic, TopicConfig, StartFrom};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
    /// let t = topic.clone();
    /// tokio::spawn(async move { t.publish("hi").await.unwrap() });
    /// let msg = cursor.recv().await.unwrap();
    /// assert_eq!((msg.offset, msg.value), (0, "hi"));
    /// # }
    /// ```
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv {
            cursor: self,
            waiter: Waiter::new(),
        }
    }

    /// Polls for the next message, registering `waiter` to be woken when
    /// one may be available. The building block of [`recv`](Self::recv).
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut Waiter<T>,
    ) -> Poll<Result<Delivered<T>, RecvError>> {
        // The common case, kept short: a message read ahead by an earlier
        // receive, on a topic where nothing expires. (Anything else, and
        // an empty buffer, goes through `take`.)
        if self.shared.ttl_nanos().is_none() {
            if let Some(b) = self.buf.pop_front() {
                return Poll::Ready(Ok(b.delivered(&self.shared.clock)));
            }
        }
        let mut item = None;
        let taken = self.take(1, 0, &mut |d| item = Some(d), Some((&mut *waiter, cx.waker())));
        waiter.attach(&self.shared);
        match taken {
            Ok(_) => match item {
                Some(d) => Poll::Ready(Ok(d)),
                None => Poll::Pending,
            },
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Lagged(n)) => Poll::Ready(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Closed) => Poll::Ready(Err(RecvError::Closed)),
        }
    }

    /// Polls whether a receive would complete without waiting (a message
    /// is buffered or published past the position, a gap is to be
    /// reported, or the topic is closed), taking nothing. When it would
    /// wait, `waiter` is registered to be woken when that may change.
    ///
    /// For wrappers that hand a cursor's messages to others and must keep
    /// a registration without receiving (consumer groups re-arming their
    /// wake-up). A ready answer may be spurious with a TTL (the messages
    /// may expire before they are received).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use memq_core::{StartFrom, Topic, TopicConfig, Waiter};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
    /// let mut waiter = Waiter::new();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(cursor.poll_ready(&mut cx, &mut waiter).is_pending());
    /// topic.try_publish(1).unwrap();
    /// assert!(cursor.poll_ready(&mut cx, &mut waiter).is_ready());
    /// assert_eq!(cursor.try_recv().unwrap().value, 1, "nothing was taken");
    /// ```
    pub fn poll_ready(&mut self, cx: &mut Context<'_>, waiter: &mut Waiter<T>) -> Poll<()> {
        if !self.buf.is_empty() || self.pending_lag.is_some() {
            return Poll::Ready(());
        }
        let slot = waiter.slot(&self.shared);
        let ready = self.shared.ready(&self.st, Some((slot, cx.waker())));
        waiter.attach(&self.shared);
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// How many messages earlier receives read ahead (some may have
    /// expired since): what [`take_read_ahead`](Self::take_read_ahead)
    /// can hand out.
    pub fn read_ahead(&self) -> usize {
        self.buf.len()
    }

    /// Hands up to `max` messages that earlier receives read ahead to
    /// `out`, without touching the topic (no lock, no gap report, no
    /// registration), and returns how many: 0 when nothing was read ahead,
    /// or all of it expired. Messages that expired while read ahead are
    /// dropped, as a receive drops them. For wrappers that serve several consumers from one
    /// cursor (consumer groups): the next receive goes on where this left
    /// off.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(cursor.take_read_ahead(1, &mut out), 0, "nothing read ahead yet");
    /// topic.try_publish_batch(vec![1, 2, 3]).unwrap();
    /// assert_eq!(cursor.try_recv().unwrap().value, 1); // reads the others ahead
    /// assert_eq!(cursor.take_read_ahead(5, &mut out), 2);
    /// assert_eq!(out.iter().map(|d| d.offset).collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn take_read_ahead(&mut self, max: usize, out: &mut impl Extend<Delivered<T>>) -> usize {
        if self.buf.is_empty() {
            return 0;
        }
        let now = self.shared.expiry_now();
        self.drain(max, now, &mut |d| out.extend(Some(d)))
    }

    /// Appends up to `max` available messages to `out` without waiting and
    /// returns how many.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), only when no message was appended;
    /// a lag found after some messages is reported by the next call.
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        out: &mut impl Extend<Delivered<T>>,
    ) -> Result<usize, TryRecvError> {
        self.take(max, 0, &mut |d| out.extend(Some(d)), None)
    }

    /// Waits until at least one message is available, then appends up to
    /// `max` to `out` and returns how many (0 only when `max` is 0).
    ///
    /// Cancel safe, like [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topic = Topic::new(TopicConfig::default())?;
    /// let mut cursor = topic.subscribe(StartFrom::Earliest)?;
    /// topic.publish_batch(vec![10, 20, 30]).await?;
    ///
    /// let mut batch = Vec::new();
    /// assert_eq!(cursor.recv_batch(2, &mut batch).await?, 2);
    /// assert_eq!(cursor.recv_batch(10, &mut batch).await?, 1); // does not wait for more
    /// let offsets: Vec<u64> = batch.iter().map(|m| m.offset).collect();
    /// assert_eq!(offsets, [0, 1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_batch<'a, E: Extend<Delivered<T>>>(
        &'a mut self,
        max: usize,
        out: &'a mut E,
    ) -> RecvBatch<'a, T, E> {
        RecvBatch {
            cursor: self,
            max,
            out,
            waiter: Waiter::new(),
        }
    }

    /// Polls for a batch; the building block of
    /// [`recv_batch`](Self::recv_batch).
    pub fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut Waiter<T>,
        max: usize,
        out: &mut impl Extend<Delivered<T>>,
    ) -> Poll<Result<usize, RecvError>> {
        self.poll_recv_batch_ahead(cx, waiter, max, 0, out)
    }

    /// As [`poll_recv_batch`](Self::poll_recv_batch), but when nothing is
    /// read ahead, the fetch from the topic reads up to `ahead` messages:
    /// the batch whatever it weighs, and past it while everything fetched
    /// weighs less than a single receive's read-ahead may (1 MiB by the
    /// topic's weigher). What this receive does not take stays read ahead
    /// for the next ones, which then need no lock (see
    /// [`take_read_ahead`](Self::take_read_ahead)). A batch that starts on
    /// messages already read ahead tops them up to `max` only. For
    /// wrappers that serve several consumers from one cursor.
    ///
    /// ```
    /// use std::task::{Context, Waker};
    /// use memq_core::{StartFrom, Topic, TopicConfig, Waiter};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// topic.try_publish_batch((0..10).collect()).unwrap();
    /// let (mut waiter, mut out) = (Waiter::new(), Vec::new());
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let polled = cursor.poll_recv_batch_ahead(&mut cx, &mut waiter, 4, 8, &mut out);
    /// assert!(polled.is_ready());
    /// assert_eq!((out.len(), cursor.read_ahead()), (4, 4), "4 taken, 4 more read ahead");
    /// ```
    pub fn poll_recv_batch_ahead(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut Waiter<T>,
        max: usize,
        ahead: usize,
        out: &mut impl Extend<Delivered<T>>,
    ) -> Poll<Result<usize, RecvError>> {
        let taken = self.take(
            max,
            ahead,
            &mut |d| out.extend(Some(d)),
            Some((&mut *waiter, cx.waker())),
        );
        waiter.attach(&self.shared);
        match taken {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Lagged(n)) => Poll::Ready(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Closed) => Poll::Ready(Err(RecvError::Closed)),
        }
    }

    /// Delivers up to `max` messages through `out`: first from the local
    /// buffer, then from the topic (a fetch for a batch reads up to
    /// `ahead` messages, at least `max`). `Err(Empty)` means nothing was
    /// delivered (and, with `park`, that the waiter is armed).
    ///
    /// Messages are cloned from the topic into the buffer under the
    /// topic's lock and handed to `out` only after it is released: `out`
    /// may be a caller's `Extend` implementation, and the publisher waits
    /// for nothing but the clones.
    fn take(
        &mut self,
        max: usize,
        ahead: usize,
        out: &mut dyn FnMut(Delivered<T>),
        park: Option<(&mut Waiter<T>, &Waker)>,
    ) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let now = self.shared.expiry_now();
        // Nothing read ahead (a reader keeping up): straight to the fetch.
        let mut got = if self.buf.is_empty() {
            0
        } else {
            self.drain(max, now, out)
        };
        if got == max {
            return Ok(got);
        }
        // A gap found earlier comes after everything buffered before it.
        if let Some(n) = self.pending_lag {
            if got == 0 {
                self.pending_lag = None;
                return Err(TryRecvError::Lagged(n.get()));
            }
            return Ok(got);
        }
        if got > 0 {
            // Top up without waiting; a lag found here is reported next time.
            if let Fetched::Lagged(n) = self.refill(max - got, max - got, usize::MAX, None) {
                self.pending_lag = NonZeroU64::new(n);
            }
            got += self.drain(max - got, now, out);
            return Ok(got);
        }
        let mut park = park.map(|(waiter, waker)| (waiter.slot(&self.shared), waker));
        // A single receive reads ahead; a batch takes what it asked for,
        // whatever it weighs, and reads ahead past it (as far as its
        // caller asked) while everything fetched weighs less than a
        // single receive's read-ahead may.
        let (count, at_least, bytes) = if max == 1 {
            (READ_AHEAD, 1, READ_AHEAD_BYTES)
        } else if ahead > max {
            (ahead, max, READ_AHEAD_BYTES)
        } else {
            (max, max, usize::MAX)
        };
        loop {
            let again = park.as_mut().map(|(key, waker)| (&mut **key, *waker));
            let fetched = if max == 1 {
                // A single receive takes the first message fetched
                // straight from the fetch, and buffers only the rest.
                let (fetched, first) = self.refill_first(count, bytes, again);
                let ttl = self.shared.ttl_nanos();
                if let Some(b) = first.filter(|b| !ttl.is_some_and(|ttl| is_expired(b.ts, now, ttl))) {
                    out(b.delivered(&self.shared.clock));
                    return Ok(1);
                }
                fetched
            } else {
                self.refill(count, at_least, bytes, again)
            };
            match fetched {
                Fetched::Some(_) => {
                    // The fetch dropped what had expired by its own clock
                    // reading (no earlier than `now`), and publish times do
                    // not go down with offsets, so this delivers at least
                    // one. Should everything fetched have expired after
                    // all, fetch again rather than return nothing with the
                    // waiter disarmed.
                    let n = self.drain(max, now, out);
                    if n > 0 {
                        return Ok(n);
                    }
                }
                Fetched::Lagged(n) => return Err(TryRecvError::Lagged(n)),
                Fetched::Closed => return Err(TryRecvError::Closed),
                Fetched::Empty => return Err(TryRecvError::Empty),
            }
        }
    }

    /// Hands up to `max` buffered messages to `out`, skipping those that
    /// expired by `now`; returns how many it handed over.
    fn drain(&mut self, max: usize, now: u64, out: &mut dyn FnMut(Delivered<T>)) -> usize {
        let shared: &Shared<T> = &self.shared;
        let ttl = shared.ttl_nanos();
        let mut got = 0;
        // The instant of the last publish time converted: a batch's
        // messages share one (26 instructions a message, by callgrind).
        let mut last: Option<(u64, tokio::time::Instant)> = None;
        while got < max {
            let Some(b) = self.buf.pop_front() else { break };
            if ttl.is_some_and(|ttl| is_expired(b.ts, now, ttl)) {
                continue;
            }
            let timestamp = match last {
                Some((ts, at)) if ts == b.ts => at,
                _ => {
                    let at = shared.clock.instant(b.ts);
                    last = Some((b.ts, at));
                    at
                }
            };
            out(Delivered {
                offset: b.offset,
                timestamp,
                value: b.value,
            });
            got += 1;
        }
        if self.buf.is_empty() && self.buf.capacity() > BUFFER_KEPT {
            // A big batch went through the buffer; do not keep its room.
            self.buf.shrink_to(READ_AHEAD);
        }
        got
    }

    /// As [`refill`](Self::refill) with `at_least` 1, handing back the
    /// first message fetched rather than buffering it.
    fn refill_first(&mut self, count: usize, bytes: usize, park: Park<'_>) -> (Fetched, Option<Buffered<T>>) {
        let mut kept = KeptFirst {
            first: None,
            buf: &mut self.buf,
        };
        let mut sink = |offset, ts, value| kept.keep(Buffered { offset, ts, value });
        let fetched = self.shared.fetch(&mut self.st, count, 1, bytes, &mut sink, park);
        (fetched, kept.first.take())
    }

    /// Clones up to `count` messages (`bytes` by weight, past the first
    /// `at_least`) from the topic into the buffer.
    fn refill(&mut self, count: usize, at_least: usize, bytes: usize, park: Park<'_>) -> Fetched {
        let buf = &mut self.buf;
        let mut sink = |offset, ts, value| buf.push_back(Buffered { offset, ts, value });
        self.shared
            .fetch(&mut self.st, count, at_least, bytes, &mut sink, park)
    }
}

impl<T> Drop for Cursor<T> {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.st, self.name.as_deref());
    }
}

/// Future of [`Cursor::recv`].
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    cursor: &'a mut Cursor<T>,
    waiter: Waiter<T>,
}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Result<Delivered<T>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.cursor.poll_recv(cx, &mut this.waiter)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}

/// Future of [`Cursor::recv_batch`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvBatch<'a, T, E> {
    cursor: &'a mut Cursor<T>,
    max: usize,
    out: &'a mut E,
    waiter: Waiter<T>,
}

impl<T: Clone, E: Extend<Delivered<T>>> Future for RecvBatch<'_, T, E> {
    type Output = Result<usize, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.cursor
            .poll_recv_batch(cx, &mut this.waiter, this.max, this.out)
    }
}

impl<T, E> fmt::Debug for RecvBatch<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}
