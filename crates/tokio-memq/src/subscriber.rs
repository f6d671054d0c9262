//! Receiving from a topic, alone (broadcast) or as a member of a consumer
//! group.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use memq_codec::DecodeLimits;
use memq_core::{Cursor, Delivered, Waiter};
use memq_groups::{AckMode, Claimed, Member, MemberWaiter};
use memq_partition::{MergedCursor, MergedWaiter};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::error::{AckError, CommitError, DecodeError, OutOfRange, RecvError, RecvTypedError, TryRecvError};
use crate::format::{FormatTable, SerializationFormat};
use crate::lent::LentBatch;
use crate::log::Log;
use crate::message::{Acknowledgeable, Entry, TopicMessage, TypedMessage};
use crate::queue::{PublisherLease, Registry};

/// Receives messages from one topic, in offset order.
///
/// A subscriber from [`MessageQueue::subscriber`](crate::MessageQueue::subscriber)
/// and friends sees every message from its start position, except messages
/// that expire (skipped; counted in the topic's stats) and messages evicted
/// before it read them: then the next receive fails with
/// [`RecvError::Lagged`] carrying the exact number evicted unread (expired
/// ones are never counted there, even when the subscriber was behind), and
/// the one after continues at the oldest retained message.
///
/// A subscriber from [`MessageQueue::subscriber_group`](crate::MessageQueue::subscriber_group)
/// is a member of a consumer group: it competes with the other members,
/// and each message goes to exactly one of them, whichever receive methods
/// they use.
///
/// All receive methods are cancel safe: a receive future dropped before it
/// completes (the losing branch of a `tokio::select!`, a timeout) loses no
/// message. Methods take `&self`, so a subscriber can be shared; tasks
/// sharing one subscriber share its position.
///
/// Dropping a subscriber unregisters it, so it no longer holds back
/// publishers of a topic with `lru_enabled: false`; a group member's
/// unacknowledged messages go to the other members.
///
/// # Examples
///
/// Two subscribers each receive every message; two members of one group
/// share them:
///
/// ```
/// use tokio_memq::{ConsumptionMode, MessageQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let (a, b) = (mq.subscriber("news").await?, mq.subscriber("news").await?);
/// let join = || mq.subscriber_group("news", "indexers", ConsumptionMode::Earliest);
/// let (x, y) = (join().await?, join().await?);
/// mq.publisher("news").publish_batch(vec!["one", "two"]).await?;
/// assert_eq!((a.recv_batch(10).await?.len(), b.recv_batch(10).await?.len()), (2, 2));
/// let mut handled = 0;
/// for member in [&x, &y] {
///     while member.try_recv_now().is_ok() {
///         handled += 1;
///     }
/// }
/// assert_eq!(handled, 2, "each message went to one member");
/// # Ok(()) }
/// ```
pub struct Subscriber {
    topic: Arc<str>,
    kind: Kind,
    /// For a subscription to one partition of a partitioned topic.
    partition: Option<usize>,
    /// Messages a typed batch received but could not hand on (after a
    /// decode failure), delivered before anything else. (A single
    /// cursor puts them back into the cursor instead.)
    stash: Stash,
    /// Keeps the queue alive (its serialization tables among others).
    registry: Arc<Registry>,
    /// The topic read, for its windows and whether it is closed (`None`
    /// for a topic on a server).
    log: Option<Log>,
    /// Limits of this subscriber's typed receives, instead of the queue's
    /// (boxed: rarely set, and every subscriber would pay for it inline).
    decode_limits: Option<Box<DecodeLimits>>,
    /// The topic's delivered count (metrics only).
    #[cfg(feature = "metrics")]
    delivered: Option<Arc<std::sync::atomic::AtomicU64>>,
}

enum Kind {
    Broadcast(Mutex<Cursor<Entry>>),
    /// Every partition of a partitioned topic.
    Merged(Mutex<MergedCursor<Entry>>),
    Group {
        member: Member<Entry>,
        partitioned: bool,
        /// A member may publish to its group's dead-letter topic, which
        /// stays open while it lives. (Here rather than in `Subscriber`:
        /// the variant has room, and every subscriber would pay for it.)
        _dead_letters: Option<PublisherLease>,
    },
    /// A reader or group member of a queue over Redis.
    #[cfg(feature = "redis")]
    Remote(crate::remote::RemoteSource),
}

/// Polls a receive within tokio's cooperative budget: a receiver with a
/// long backlog yields to the scheduler like tokio's own channels do, so it
/// cannot starve other tasks.
fn budgeted<T>(cx: &mut Context<'_>, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    let polled = poll(cx);
    if polled.is_ready() {
        coop.made_progress();
    }
    polled
}

/// The future of [`Subscriber::recv`]: one small future, so that the
/// message is built once, where the caller gets it (through nested
/// `async fn`s the 160-byte message was copied four times per receive, a
/// fifth of a broadcast receive's time).
struct RecvOne<'a> {
    sub: &'a Subscriber,
    wait: Wait,
    /// Where a merged or group receive puts its message.
    out: Vec<TopicMessage>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Future for RecvOne<'_> {
    type Output = Result<TopicMessage, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        #[cfg(feature = "tracing")]
        let _entered = this.span.enter();
        let sub = this.sub;
        if let (Kind::Group { member, .. }, Wait::Group(waiter, _)) = (&sub.kind, &mut this.wait) {
            if sub.stash.is_empty() {
                // The message is built here from what the group handed out,
                // not through a batch of one.
                let got = std::task::ready!(budgeted(cx, |cx| member.poll_recv(cx, waiter)));
                return Poll::Ready(match got {
                    Ok(c) => {
                        sub.delivered(1);
                        Ok(sub.claimed(c))
                    }
                    Err(e) => Err(sub.failed(e)),
                });
            }
        }
        let (Kind::Broadcast(cursor), Wait::Broadcast(waiter)) = (&sub.kind, &mut this.wait) else {
            return match std::task::ready!(sub.poll_batch(cx, &mut this.wait, 1, &mut this.out)) {
                Ok(_) => Poll::Ready(this.out.pop().ok_or(RecvError::Closed)),
                Err(e) => Poll::Ready(Err(e)),
            };
        };
        let got = std::task::ready!(budgeted(cx, |cx| cursor.lock().poll_recv(cx, waiter)));
        // Built here, where the caller gets it (not moved through a `map`).
        Poll::Ready(match got {
            Ok(d) => {
                sub.delivered(1);
                Ok(sub.message(d, sub.partition))
            }
            Err(e) => Err(sub.failed(e)),
        })
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Subscriber");
        d.field("topic", &self.topic);
        match &self.kind {
            Kind::Broadcast(cursor) => d.field("cursor", &*cursor.lock()),
            Kind::Merged(cursors) => d.field("partitions", &cursors.lock().len()),
            Kind::Group { member, .. } => d.field("member", member),
            #[cfg(feature = "redis")]
            Kind::Remote(source) => d.field("source", source),
        };
        d.finish()
    }
}

/// Where a batch receive puts what it receives: owned messages
/// (`Vec<TopicMessage>`) or lent ones ([`LentBatch`](crate::LentBatch)).
pub(crate) trait Received {
    /// A message a cursor delivered, from `partition` of a partitioned
    /// topic.
    fn delivered(&mut self, sub: &Subscriber, d: Delivered<Entry>, partition: Option<usize>);
    /// A message a group member claimed.
    fn claimed(&mut self, sub: &Subscriber, c: Claimed<Entry>);
    /// A message put aside by an earlier typed receive.
    fn stashed(&mut self, sub: &Subscriber, m: TopicMessage);
}

impl Received for Vec<TopicMessage> {
    fn delivered(&mut self, sub: &Subscriber, d: Delivered<Entry>, partition: Option<usize>) {
        self.push(sub.message(d, partition));
    }

    fn claimed(&mut self, sub: &Subscriber, c: Claimed<Entry>) {
        self.push(sub.claimed(c));
    }

    fn stashed(&mut self, _: &Subscriber, m: TopicMessage) {
        self.push(m);
    }
}

/// Feeds a cursor's deliveries to a [`Received`] (a cursor takes an
/// `Extend`).
struct Collect<'a, R> {
    sub: &'a Subscriber,
    /// The partition of a single-partition subscription.
    partition: Option<usize>,
    out: &'a mut R,
}

impl<R: Received> Extend<Delivered<Entry>> for Collect<'_, R> {
    fn extend<I: IntoIterator<Item = Delivered<Entry>>>(&mut self, iter: I) {
        for d in iter {
            self.out.delivered(self.sub, d, self.partition);
        }
    }
}

impl<R: Received> Extend<(usize, Delivered<Entry>)> for Collect<'_, R> {
    fn extend<I: IntoIterator<Item = (usize, Delivered<Entry>)>>(&mut self, iter: I) {
        for (p, d) in iter {
            self.out.delivered(self.sub, d, Some(p));
        }
    }
}

/// What a receive future keeps between polls.
pub(crate) enum Wait {
    Broadcast(Waiter<Entry>),
    Merged(MergedWaiter<Entry>),
    Group(MemberWaiter<Entry>, Vec<Claimed<Entry>>),
    /// A receive from a server, once started.
    #[cfg(feature = "redis")]
    Remote(Option<crate::remote::RemoteRecv>),
}

fn merged_recv_error(e: memq_partition::RecvError) -> RecvError {
    match e {
        memq_partition::RecvError::Lagged { skipped, .. } => RecvError::Lagged(skipped),
        _ => RecvError::Closed,
    }
}

impl Subscriber {
    pub(crate) fn new(registry: Arc<Registry>, log: Log, topic: &str, cursor: Cursor<Entry>) -> Self {
        Self::with_kind(registry, Some(log), topic, Kind::Broadcast(Mutex::new(cursor)))
    }

    pub(crate) fn merged(
        registry: Arc<Registry>,
        log: Log,
        topic: &str,
        cursors: MergedCursor<Entry>,
    ) -> Self {
        Self::with_kind(registry, Some(log), topic, Kind::Merged(Mutex::new(cursors)))
    }

    pub(crate) fn member(
        registry: Arc<Registry>,
        log: Log,
        topic: &str,
        member: Member<Entry>,
        dead_letters: Option<PublisherLease>,
    ) -> Self {
        let partitioned = log.is_partitioned();
        let kind = Kind::Group {
            member,
            partitioned,
            _dead_letters: dead_letters,
        };
        Self::with_kind(registry, Some(log), topic, kind)
    }

    /// A subscriber of a queue over Redis.
    #[cfg(feature = "redis")]
    pub(crate) fn remote(registry: Arc<Registry>, topic: &str, source: crate::remote::RemoteSource) -> Self {
        Self::with_kind(registry, None, topic, Kind::Remote(source))
    }

    fn with_kind(registry: Arc<Registry>, log: Option<Log>, topic: &str, kind: Kind) -> Self {
        // The count of the topic this subscriber reads: a subscriber made
        // for a log whose name has since gone to a newer topic (a wildcard
        // subscription adopts topics late) counts nowhere, rather than in
        // the newer topic's total.
        #[cfg(feature = "metrics")]
        let delivered = registry
            .get(topic)
            .filter(|e| log.as_ref().is_some_and(|l| l.same(&e.log)))
            .map(|e| e.delivered.clone());
        Subscriber {
            #[cfg(feature = "metrics")]
            delivered,
            // A name of its own: every message it hands out holds a
            // reference, and sharing the topic's among its subscribers put
            // every delivery's count on one cache line (fan-out: 13.4 M to
            // 7.2 M deliveries/s on two cores). Its identity also tells
            // the messages this subscriber received from any other's.
            topic: topic.into(),
            kind,
            partition: None,
            stash: Stash::default(),
            registry,
            log,
            decode_limits: None,
        }
    }

    /// Makes this subscriber's typed receives ([`recv_typed`](Self::recv_typed),
    /// [`recv_batch_typed`](Self::recv_batch_typed),
    /// [`recv_typed_message`](Self::recv_typed_message),
    /// [`recv_with_format`](Self::recv_with_format) and their `try_` forms,
    /// and [`MessageRef::deserialize`](crate::MessageRef::deserialize) of
    /// its lent batches) decode with `limits` instead of the queue's
    /// ([`MessageQueue::with_decode_limits`](crate::MessageQueue::with_decode_limits),
    /// 64 MiB decoded by default): a consumer of large payloads can allow
    /// more, one reading untrusted producers less. Messages it returns whole
    /// keep the queue's limits for [`TopicMessage::deserialize`]; use
    /// [`TopicMessage::deserialize_with_limits`] there.
    ///
    /// A payload over the limits is a decode error of kind
    /// [`CodecErrorKind::TooLarge`](crate::CodecErrorKind::TooLarge) (the
    /// message is consumed, as for any decode error).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{CodecErrorKind, DecodeErrorKind, DecodeLimits, MessageQueue, RecvTypedError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let strict = mq.subscriber("uploads").await?.with_decode_limits(DecodeLimits::new().with_max_decoded_size(1024));
    /// let lenient = mq.subscriber("uploads").await?;
    /// mq.publisher("uploads").publish_bincode(vec![0u8; 4096]).await?;
    /// match strict.recv_typed::<Vec<u8>>().await {
    ///     Err(RecvTypedError::Decode(e)) => assert_eq!(e.kind(), DecodeErrorKind::Codec(CodecErrorKind::TooLarge)),
    ///     other => panic!("expected a decode error, got {other:?}"),
    /// }
    /// assert_eq!(lenient.recv_typed::<Vec<u8>>().await?.len(), 4096, "the queue's 64 MiB");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = Some(Box::new(limits));
        self
    }

    /// The limits this subscriber's typed receives decode with: its own
    /// ([`with_decode_limits`](Self::with_decode_limits)), else the queue's.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{DecodeLimits, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(1 << 30));
    /// let sub = mq.subscriber("t").await?;
    /// assert_eq!(sub.decode_limits().max_decoded_size(), 1 << 30);
    /// let small = sub.with_decode_limits(DecodeLimits::new().with_max_decoded_size(10));
    /// assert_eq!(small.decode_limits().max_decoded_size(), 10);
    /// # Ok(()) }
    /// ```
    pub fn decode_limits(&self) -> DecodeLimits {
        self.limits_in_force().unwrap_or_default()
    }

    /// This subscriber's limits, else the queue's, if either was set.
    fn limits_in_force(&self) -> Option<DecodeLimits> {
        self.decode_limits
            .as_deref()
            .copied()
            .or_else(|| self.formats().limits_ref().copied())
    }

    /// The subscriber's own limits, when it has them.
    pub(crate) fn own_decode_limits(&self) -> Option<&DecodeLimits> {
        self.decode_limits.as_deref()
    }

    /// Reads a received message as a `T` with this subscriber's limits.
    fn decode<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        msg: &TopicMessage,
    ) -> Result<T, DecodeError> {
        let decoded = match &self.decode_limits {
            Some(limits) => msg.deserialize_with_limits(limits),
            None => msg.deserialize(),
        };
        self.decode_failed(&decoded);
        decoded
    }

    /// Reports a decode failure (a `tracing` event; nothing without the
    /// feature).
    #[inline]
    fn decode_failed<T>(&self, _decoded: &Result<T, DecodeError>) {
        #[cfg(feature = "tracing")]
        if let Err(e) = _decoded {
            event!(
                debug,
                topic = &*self.topic,
                offset = e.offset(),
                kind = ?e.kind(),
                error = %e,
                "a received message could not be decoded"
            );
        }
    }

    /// Reads a received message as a `T` in `format` with this
    /// subscriber's limits (its own, else as the message says: its
    /// codec's, else the queue's).
    fn decode_in<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        msg: &TopicMessage,
        format: &SerializationFormat,
    ) -> Result<T, DecodeError> {
        let decoded = msg.deserialize_in(format, self.own_decode_limits());
        self.decode_failed(&decoded);
        decoded
    }

    /// True once the topic is closed (deleted, the queue
    /// [closed](crate::MessageQueue::close), or nobody can publish to it
    /// any more): nothing new will arrive. Messages it retained may still
    /// be received; receives fail with [`RecvError::Closed`] after them.
    /// Over Redis, a topic deleted by another process is seen once a
    /// receive finds it gone.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// let publisher = mq.publisher("events");
    /// publisher.publish("last words").await?;
    /// drop((mq, publisher)); // nobody can publish to "events" any more
    /// assert!(sub.is_closed());
    /// assert_eq!(sub.recv().await?.deserialize::<String>()?, "last words");
    /// assert!(sub.recv().await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        match (&self.log, &self.kind) {
            (Some(log), _) => log.is_closed(),
            #[cfg(feature = "redis")]
            (None, Kind::Remote(source)) => source.is_closed(),
            (None, _) => true,
        }
    }

    pub(crate) fn set_partition(&mut self, partition: usize) {
        self.partition = Some(partition);
    }

    pub(crate) fn formats(&self) -> &FormatTable {
        &self.registry.formats
    }

    /// The partition a broadcast cursor reads: its partition for a
    /// subscription to one partition, else 0 (a plain topic).
    fn own_partition(&self) -> usize {
        self.partition.unwrap_or(0)
    }

    /// The message a cursor delivered, labelled with `partition` (a
    /// subscription to one partition, or a partition of a merged read).
    #[inline]
    fn message(&self, d: Delivered<Entry>, partition: Option<usize>) -> TopicMessage {
        TopicMessage::received(
            self.formats(),
            &self.topic,
            d.value,
            d.offset,
            d.timestamp,
            partition,
            1,
        )
    }

    /// The topic this subscriber reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// assert_eq!(sub.topic(), "orders");
    /// # Ok(()) }
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The consumer group this subscriber belongs to, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let member = mq.subscriber_group("orders", "billing", ConsumptionMode::Earliest).await?;
    /// assert_eq!(member.group(), Some("billing"));
    /// assert_eq!(mq.subscriber("orders").await?.group(), None);
    /// # Ok(()) }
    /// ```
    pub fn group(&self) -> Option<&str> {
        match &self.kind {
            Kind::Group { member, .. } => Some(member.group()),
            #[cfg(feature = "redis")]
            Kind::Remote(source) => source.group(),
            _ => None,
        }
    }

    pub(crate) fn waiter(&self) -> Wait {
        match &self.kind {
            Kind::Broadcast(_) => Wait::Broadcast(Waiter::new()),
            Kind::Merged(_) => Wait::Merged(MergedWaiter::new()),
            Kind::Group { .. } => Wait::Group(MemberWaiter::new(), Vec::new()),
            #[cfg(feature = "redis")]
            Kind::Remote(_) => Wait::Remote(None),
        }
    }

    fn claimed(&self, c: Claimed<Entry>) -> TopicMessage {
        TopicMessage::claimed(self.formats(), &self.topic, c, self.is_partitioned_group())
    }

    /// True for a member of a group reading a partitioned topic (its
    /// messages say their partition).
    pub(crate) fn is_partitioned_group(&self) -> bool {
        match &self.kind {
            Kind::Group { partitioned, .. } => *partitioned,
            // A remote reader of a partitioned topic hands its messages
            // on as a group's claims: they say their partition too.
            #[cfg(feature = "redis")]
            Kind::Remote(source) => source.is_partitioned(),
            _ => false,
        }
    }

    /// The TTL after which messages put aside by a typed batch are
    /// dropped, as the topic would have dropped them: the topic's, except
    /// for a group member (what the group handed out stays the member's to
    /// acknowledge; the group expires what it takes back) and a topic on a
    /// server (retention by count).
    fn stash_ttl(&self) -> Option<Duration> {
        if matches!(self.kind, Kind::Group { .. }) {
            return None;
        }
        self.log.as_ref().and_then(|log| log.config().ttl)
    }

    /// The topic name, shared.
    pub(crate) fn topic_name(&self) -> &Arc<str> {
        &self.topic
    }

    /// Polls for up to `max` messages into `out`.
    pub(crate) fn poll_batch(
        &self,
        cx: &mut Context<'_>,
        wait: &mut Wait,
        max: usize,
        out: &mut impl Received,
    ) -> Poll<Result<usize, RecvError>> {
        budgeted(cx, |cx| self.poll_batch_now(cx, wait, max, out))
    }

    /// [`poll_batch`](Self::poll_batch) without spending the task's
    /// cooperative budget (for receives that never wait).
    pub(crate) fn poll_batch_now(
        &self,
        cx: &mut Context<'_>,
        wait: &mut Wait,
        max: usize,
        out: &mut impl Received,
    ) -> Poll<Result<usize, RecvError>> {
        self.poll_batch_counted(cx, wait, max, out, true)
    }

    /// [`poll_batch_now`](Self::poll_batch_now); `count`: whether what it
    /// gets counts as delivered now (false for a typed batch of a member
    /// that gives back what it does not hand on: counted as handed on,
    /// and what went back when it is received again).
    fn poll_batch_counted(
        &self,
        cx: &mut Context<'_>,
        wait: &mut Wait,
        max: usize,
        out: &mut impl Received,
        count: bool,
    ) -> Poll<Result<usize, RecvError>> {
        // What a typed batch put aside comes first; it was counted as
        // delivered when it was received (not again here).
        if max > 0 && !self.stash.is_empty() {
            self.drop_stash_of_lost_partitions();
            let mut stash = self.stash.lock(self.stash_ttl());
            if !stash.is_empty() {
                let n = max.min(stash.len());
                for m in stash.drain(..n) {
                    out.stashed(self, m);
                }
                drop(stash);
                // A receive, for a group's ack timeout, as any other.
                self.keep_alive();
                return Poll::Ready(Ok(n));
            }
        }
        let polled = self.poll_batch_inner(cx, wait, max, out);
        match &polled {
            Poll::Ready(Ok(_)) if !count => {}
            Poll::Ready(got) => self.note(got),
            Poll::Pending => {}
        }
        polled
    }

    /// Notes what a receive got: messages delivered (metrics), or a lag
    /// (its event).
    fn note(&self, got: &Result<usize, RecvError>) {
        match got {
            Ok(n) => self.delivered(*n),
            Err(RecvError::Lagged(n)) => self.lagged(*n),
            Err(_) => {}
        }
    }

    /// A single receive from a cursor or a group failed: its lag is
    /// reported (see [`lagged`](Self::lagged)).
    fn failed(&self, e: memq_core::RecvError) -> RecvError {
        if let memq_core::RecvError::Lagged(n) = e {
            self.lagged(n);
        }
        e.into()
    }

    /// Reports a lag to this subscriber (a `tracing` event; nothing
    /// without the feature).
    #[inline]
    fn lagged(&self, _missed: u64) {
        event!(
            warn,
            topic = &*self.topic,
            missed = _missed,
            "subscriber lagged: messages were evicted before it read them"
        );
    }

    /// Counts `n` messages delivered (for metrics; nothing without them).
    #[inline]
    fn delivered(&self, n: usize) {
        #[cfg(feature = "metrics")]
        if let Some(d) = &self.delivered {
            d.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = n;
    }

    fn poll_batch_inner(
        &self,
        cx: &mut Context<'_>,
        wait: &mut Wait,
        max: usize,
        out: &mut impl Received,
    ) -> Poll<Result<usize, RecvError>> {
        match (&self.kind, wait) {
            (Kind::Broadcast(cursor), Wait::Broadcast(waiter)) => {
                let mut collect = Collect {
                    sub: self,
                    partition: self.partition,
                    out,
                };
                cursor
                    .lock()
                    .poll_recv_batch(cx, waiter, max, &mut collect)
                    .map_err(RecvError::from)
            }
            (Kind::Merged(cursors), Wait::Merged(waiter)) => {
                let mut collect = Collect {
                    sub: self,
                    partition: None,
                    out,
                };
                cursors
                    .lock()
                    .poll_recv_batch(cx, waiter, max, &mut collect)
                    .map_err(merged_recv_error)
            }
            (Kind::Group { member, .. }, Wait::Group(waiter, claimed)) => {
                if max == 0 {
                    return Poll::Ready(Ok(0));
                }
                claimed.clear();
                let r = member.poll_recv_batch(cx, waiter, max, claimed);
                if let Poll::Ready(Ok(_)) = r {
                    for c in claimed.drain(..) {
                        out.claimed(self, c);
                    }
                }
                r.map_err(RecvError::from)
            }
            #[cfg(feature = "redis")]
            (Kind::Remote(source), Wait::Remote(pending)) => {
                if max == 0 {
                    return Poll::Ready(Ok(0));
                }
                if pending.is_none() {
                    // What was read ahead needs no future.
                    let got = source.try_buffered(max)?;
                    if !got.is_empty() {
                        let n = got.len();
                        for got in got {
                            out.claimed(self, source.claimed(self.formats(), got));
                        }
                        return Poll::Ready(Ok(n));
                    }
                }
                let receive = pending.get_or_insert_with(|| source.recv(max, true));
                let got = std::task::ready!(receive.get_mut().as_mut().poll(cx));
                *pending = None;
                Poll::Ready(got.map(|records| {
                    let n = records.len();
                    for got in records {
                        out.claimed(self, source.claimed(self.formats(), got));
                    }
                    n
                }))
            }
            _ => unreachable!("a receive's waiter matches its subscriber"),
        }
    }

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] when messages were evicted before this
    /// subscriber (or its group) read them (the next call continues);
    /// [`RecvError::Closed`] when the topic is closed (deleted, the queue
    /// [closed](crate::MessageQueue::close), or nobody can publish to it
    /// any more) and everything retained has been received.
    ///
    /// # Panics
    ///
    /// Inside a Tokio runtime built without the time driver, when a member
    /// of a group with manual acknowledgement and an
    /// [`ack_timeout`](crate::GroupBuilder::ack_timeout) waits while
    /// another member holds messages (the take-over of an idle member's
    /// messages needs a timer), or while dead letters the sink refused
    /// hold its group at `max_pending` (they are offered again on a
    /// timer); the same for every receive of such a member that waits
    /// (batches, streams, timeouts).
    ///
    /// # Examples
    ///
    /// A receive loop that notes lost messages and goes on:
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, RecvError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// let sub = mq.subscriber_with_options("ticks", options).await?;
    /// for tick in 0..5u32 {
    ///     mq.publisher("ticks").publish(tick).await?;
    /// }
    /// drop(mq); // no publisher is left: the topic closes
    /// let (mut offsets, mut missed) = (Vec::new(), 0);
    /// loop {
    ///     match sub.recv().await {
    ///         Ok(msg) => offsets.push(msg.offset()),
    ///         Err(RecvError::Lagged(n)) => missed += n, // then on with the oldest retained
    ///         Err(RecvError::Closed) => break,
    ///         Err(e) => return Err(e.into()),
    ///     }
    /// }
    /// assert_eq!((offsets, missed), (vec![3, 4], 3));
    /// # Ok(()) }
    /// ```
    ///
    /// (Written as an `async fn` would be; the future is `Send` and cancel
    /// safe: dropped before it completes, it has taken nothing.)
    pub fn recv(&self) -> impl Future<Output = Result<TopicMessage, RecvError>> + Send + '_ {
        RecvOne {
            sub: self,
            wait: self.waiter(),
            out: Vec::new(),
            #[cfg(feature = "tracing")]
            span: tracing::trace_span!(target: "tokio_memq", "memq.recv", topic = %self.topic),
        }
    }

    /// Roughly how many messages a batch receive will find, to size its
    /// `Vec`: a reader that keeps up gets a few messages per call, and
    /// allocating room for `max` every time costs more than the messages.
    pub(crate) fn backlog_hint(&self) -> usize {
        const MAX_HINT: u64 = 1024;
        let backlog = match &self.kind {
            Kind::Broadcast(cursor) => cursor.lock().offsets_ahead(),
            Kind::Merged(_) | Kind::Group { .. } => 64,
            #[cfg(feature = "redis")]
            Kind::Remote(_) => 16,
        };
        // At least one: a batch receive returns one message or more.
        backlog.clamp(1, MAX_HINT) as usize
    }

    async fn recv_into(&self, max: usize, out: &mut Vec<TopicMessage>) -> Result<usize, RecvError> {
        self.recv_into_counted(max, out, true).await
    }

    /// [`recv_into`](Self::recv_into); `count` as for
    /// [`poll_batch_counted`](Self::poll_batch_counted).
    async fn recv_into_counted(
        &self,
        max: usize,
        out: &mut Vec<TopicMessage>,
        count: bool,
    ) -> Result<usize, RecvError> {
        let mut wait = self.waiter();
        traced!(
            poll_fn(|cx| budgeted(cx, |cx| self.poll_batch_counted(cx, &mut wait, max, out, count))),
            "memq.recv_batch",
            self.topic
        )
        .await
    }

    /// Receives the next message if one is available now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when none is; otherwise as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// assert_eq!(sub.try_recv().await.unwrap_err(), TryRecvError::Empty);
    /// mq.publisher("jobs").publish("job 1").await?;
    /// assert_eq!(sub.try_recv().await?.offset(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn try_recv(&self) -> Result<TopicMessage, TryRecvError> {
        #[cfg(feature = "redis")]
        if let Kind::Remote(source) = &self.kind {
            let stashed = self.stash.existing().and_then(|mut s| s.pop_front());
            if let Some(m) = stashed {
                self.keep_alive();
                return Ok(m);
            }
            if let Some(got) = source.try_buffered(1)?.pop() {
                self.delivered(1);
                return Ok(self.claimed(source.claimed(self.formats(), got)));
            }
            let mut records = source
                .recv(1, false)
                .into_inner()
                .await
                .map_err(TryRecvError::from)?;
            let Some(got) = records.pop() else {
                return Err(TryRecvError::Empty);
            };
            self.delivered(1);
            return Ok(self.claimed(source.claimed(self.formats(), got)));
        }
        self.try_recv_now()
    }

    /// [`try_recv`](Self::try_recv) without the `async` 1.0.0 kept.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish(7u8).await?;
    /// mq.close();
    /// assert_eq!(sub.try_recv_now()?.deserialize::<u8>()?, 7, "what was retained comes first");
    /// assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Closed);
    /// # Ok(()) }
    /// ```
    pub fn try_recv_now(&self) -> Result<TopicMessage, TryRecvError> {
        // What a typed batch put aside comes first; it was counted as
        // delivered when it was received.
        if !self.stash.is_empty() {
            self.drop_stash_of_lost_partitions();
            let stashed = self.stash.lock(self.stash_ttl()).pop_front();
            if let Some(m) = stashed {
                // A receive, for a group's ack timeout, as any other.
                self.keep_alive();
                return Ok(m);
            }
        }
        let got = self.try_recv_inner();
        match &got {
            Ok(_) => self.delivered(1),
            Err(TryRecvError::Lagged(n)) => self.lagged(*n),
            Err(_) => {}
        }
        got
    }

    fn try_recv_inner(&self) -> Result<TopicMessage, TryRecvError> {
        match &self.kind {
            Kind::Broadcast(cursor) => cursor
                .lock()
                .try_recv()
                .map(|d| self.message(d, self.partition))
                .map_err(TryRecvError::from),
            Kind::Merged(cursors) => match cursors.lock().try_recv() {
                Ok((p, d)) => Ok(self.message(d, Some(p))),
                Err(memq_partition::TryRecvError::Empty) => Err(TryRecvError::Empty),
                Err(memq_partition::TryRecvError::Lagged { skipped, .. }) => {
                    Err(TryRecvError::Lagged(skipped))
                }
                Err(_) => Err(TryRecvError::Closed),
            },
            Kind::Group { member, .. } => member
                .try_recv()
                .map(|c| self.claimed(c))
                .map_err(TryRecvError::from),
            // Asking the server means waiting for it.
            #[cfg(feature = "redis")]
            Kind::Remote(_) => Err(TryRecvError::Store(crate::error::StoreError::unsupported(
                "not supported by a queue over Redis: try_recv_now (use the async try_recv)",
            ))),
        }
    }

    /// Waits at most `timeout` for the next message; `Ok(None)` when none
    /// came.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Panics
    ///
    /// In a Tokio runtime built without the time driver. Outside any
    /// runtime (for example under another executor) the timeout runs on a
    /// timer thread of this crate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("alerts").await?;
    /// assert!(sub.recv_timeout(Duration::from_secs(5)).await?.is_none(), "nothing came");
    /// mq.publisher("alerts").publish("disk full").await?;
    /// let msg = sub.recv_timeout(Duration::from_secs(5)).await?.expect("one is waiting");
    /// assert_eq!(msg.deserialize::<String>()?, "disk full");
    /// # Ok(()) }
    /// ```
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Option<TopicMessage>, RecvError> {
        let mut delay = memq_core::Delay::after(timeout);
        let got = {
            let mut recv = std::pin::pin!(self.recv());
            poll_fn(|cx| {
                if let Poll::Ready(r) = recv.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                delay.poll_elapsed(cx).map(|()| None)
            })
            .await
        };
        match got {
            Some(r) => r.map(Some),
            None => self.last_look(),
        }
    }

    /// After a receive timed out (and was dropped): a group member's
    /// receive may have been about to try the group's lock again (it
    /// yields its task while another thread holds it), so one more look,
    /// waiting for the lock: a timeout, even of zero, says nothing was
    /// there only when nothing was.
    fn last_look(&self) -> Result<Option<TopicMessage>, RecvError> {
        if !matches!(self.kind, Kind::Group { .. }) {
            return Ok(None);
        }
        match self.try_recv_now() {
            Ok(m) => Ok(Some(m)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Store(e)) => Err(RecvError::Store(e)),
        }
    }

    /// [`recv`](Self::recv) for threads that are not async: waits on this
    /// thread for the next message. Needs no runtime; behaves as `recv`
    /// does (`Lagged(n)` once after messages were evicted unread, then the
    /// rest; `Closed` once the topic is closed and drained).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Panics
    ///
    /// When called from async code (a Tokio worker thread, inside
    /// `block_on`), as Tokio's own blocking calls do: blocking there would
    /// stall the tasks of that thread. Use `recv().await` there, or call
    /// this from `tokio::task::spawn_blocking`.
    ///
    /// # Examples
    ///
    /// An async task hands work to a plain thread:
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, RecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("work").await?;
    /// let worker = std::thread::spawn(move || {
    ///     let mut done = Vec::new();
    ///     loop {
    ///         match sub.blocking_recv() {
    ///             Ok(msg) => done.push(msg.deserialize::<u32>().unwrap()),
    ///             Err(RecvError::Lagged(_)) => continue,
    ///             Err(_closed) => return done,
    ///         }
    ///     }
    /// });
    /// mq.publisher("work").publish_batch(vec![1u32, 2, 3]).await?;
    /// mq.close(); // the thread drains what is retained, then sees `Closed`
    /// assert_eq!(worker.join().unwrap(), [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn blocking_recv(&self) -> Result<TopicMessage, RecvError> {
        crate::blocking::block_on(self.recv())
    }

    /// [`blocking_recv`](Self::blocking_recv) waiting at most `timeout`;
    /// `Ok(None)` when nothing came. Needs no runtime.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Panics
    ///
    /// When called from async code, as [`blocking_recv`](Self::blocking_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// let mq = MessageQueue::new();
    /// let sub = mq.blocking_subscriber("alerts", ConsumptionMode::Latest)?;
    /// assert!(sub.blocking_recv_timeout(Duration::from_millis(10))?.is_none());
    /// mq.publisher("alerts").blocking_publish("disk full")?;
    /// let msg = sub.blocking_recv_timeout(Duration::from_secs(5))?.expect("one is waiting");
    /// assert_eq!(msg.deserialize::<String>()?, "disk full");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_recv_timeout(&self, timeout: Duration) -> Result<Option<TopicMessage>, RecvError> {
        match std::time::Instant::now().checked_add(timeout) {
            Some(deadline) => match crate::blocking::block_on_until(self.recv(), deadline) {
                Some(r) => r.map(Some),
                None => self.last_look(),
            },
            None => self.blocking_recv().map(Some),
        }
    }

    /// [`recv_batch`](Self::recv_batch) for threads that are not async, as
    /// [`blocking_recv`](Self::blocking_recv).
    ///
    /// # Errors
    ///
    /// As [`recv_batch`](Self::recv_batch).
    ///
    /// # Panics
    ///
    /// When called from async code, as [`blocking_recv`](Self::blocking_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// let mq = MessageQueue::new();
    /// mq.publisher("jobs").blocking_publish_batch(vec![1u8, 2, 3])?;
    /// let sub = mq.blocking_subscriber("jobs", ConsumptionMode::Earliest)?;
    /// assert_eq!(sub.blocking_recv_batch(2)?.len(), 2);
    /// assert_eq!(sub.blocking_recv_batch(2)?.len(), 1, "what is there");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_recv_batch(&self, max: usize) -> Result<Vec<TopicMessage>, RecvError> {
        crate::blocking::block_on(self.recv_batch(max))
    }

    /// The messages of this subscriber as a blocking `Iterator`, for
    /// threads that are not async: each `next` waits as
    /// [`blocking_recv`](Self::blocking_recv) does. Yields `Err(Lagged(n))`
    /// where messages were evicted unread and goes on; ends when the topic
    /// is closed and drained (as [`stream`](Self::stream) does), and after
    /// an `Unsupported` store error (a queue over Redis iterated on a
    /// thread outside its runtime: every call would give it again).
    ///
    /// # Panics
    ///
    /// `next` panics when called from async code, as
    /// [`blocking_recv`](Self::blocking_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// let mq = MessageQueue::new();
    /// mq.publisher("lines").blocking_publish_batch(vec!["a", "b"])?;
    /// let sub = mq.blocking_subscriber("lines", ConsumptionMode::Earliest)?;
    /// mq.close(); // the iterator ends after what is retained
    /// let lines = sub.iter().map(|m| m?.deserialize::<String>().map_err(anyhow::Error::from)).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(lines, ["a", "b"]);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            stream: self.message_stream(),
            done: false,
        }
    }

    /// Waits until at least one message is available, then returns up to
    /// `max` (an empty `Vec` only when `max` is 0).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), only when no message was received; a lag
    /// found after some messages is reported by the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish_batch(vec![10u32, 20, 30, 40, 50]).await?;
    /// let first = sub.recv_batch(3).await?;
    /// assert_eq!(first.iter().map(|m| m.offset()).collect::<Vec<_>>(), [0, 1, 2]);
    /// assert_eq!(sub.recv_batch(3).await?.len(), 2, "what is there; it does not wait for 3");
    /// assert!(sub.recv_batch(0).await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn recv_batch(&self, max: usize) -> Result<Vec<TopicMessage>, RecvError> {
        let mut out = Vec::with_capacity(max.min(self.backlog_hint()));
        self.recv_into(max, &mut out).await?;
        Ok(out)
    }

    /// As [`recv_batch`](Self::recv_batch), lending the messages instead
    /// of handing over owned [`TopicMessage`]s: the batch reads them in
    /// place (see [`LentBatch`]), and builds a `TopicMessage` only for
    /// those taken out with [`MessageRef::to_message`](crate::MessageRef::to_message). The fastest way to
    /// read a batch.
    ///
    /// # Errors
    ///
    /// As [`recv_batch`](Self::recv_batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("lines").await?;
    /// let lines = vec!["a".into(), "bc".into()];
    /// mq.publisher("lines").publish_bytes_batch(lines, SerializationFormat::Raw).await?;
    /// let batch = sub.recv_batch_lent(64).await?;
    /// let total: usize = batch.iter().map(|m| m.payload_bytes().len()).sum();
    /// assert_eq!(total, 3);
    /// # Ok(()) }
    /// ```
    pub async fn recv_batch_lent(&self, max: usize) -> Result<LentBatch<'_>, RecvError> {
        let mut batch = LentBatch::new(self, max.min(self.backlog_hint()));
        let mut wait = self.waiter();
        poll_fn(|cx| self.poll_batch(cx, &mut wait, max, &mut batch)).await?;
        Ok(batch)
    }

    /// Waits for the next message and returns its payload as text (bytes
    /// decoded as UTF-8 with invalid sequences replaced; see
    /// [`TopicMessage::payload_str`]).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("lines").await?;
    /// let publisher = mq.publisher("lines");
    /// publisher.publish_bytes(vec![b'o', b'k', 0xFF], SerializationFormat::Raw).await?;
    /// publisher.publish("native text").await?;
    /// assert_eq!(sub.recv_string().await?, "ok\u{FFFD}");
    /// assert_eq!(sub.recv_string().await?, "native text");
    /// # Ok(()) }
    /// ```
    pub async fn recv_string(&self) -> Result<String, RecvError> {
        Ok(self.recv().await?.payload_str().into_owned())
    }

    /// [`recv_string`](Self::recv_string) without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("lines").await?;
    /// assert_eq!(sub.try_recv_string().await.unwrap_err(), TryRecvError::Empty);
    /// mq.publisher("lines").publish_bytes("hello", SerializationFormat::Raw).await?;
    /// assert_eq!(sub.try_recv_string().await?, "hello");
    /// # Ok(()) }
    /// ```
    pub async fn try_recv_string(&self) -> Result<String, TryRecvError> {
        Ok(self.try_recv_now()?.payload_str().into_owned())
    }

    /// Waits for the next message and returns a copy of its payload bytes
    /// (empty for a native value).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("blobs").await?;
    /// let publisher = mq.publisher("blobs");
    /// publisher.publish_bytes(vec![1u8, 2, 3], SerializationFormat::Raw).await?;
    /// publisher.publish(42u32).await?;
    /// assert_eq!(sub.recv_bytes().await?, [1, 2, 3]);
    /// assert!(sub.recv_bytes().await?.is_empty(), "a native value has no bytes");
    /// # Ok(()) }
    /// ```
    pub async fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        Ok(self.recv().await?.payload_bytes().to_vec())
    }

    /// [`recv_bytes`](Self::recv_bytes) without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("blobs").await?;
    /// assert_eq!(sub.try_recv_bytes().await.unwrap_err(), TryRecvError::Empty);
    /// mq.publisher("blobs").publish_bytes(vec![9u8, 8], SerializationFormat::Raw).await?;
    /// assert_eq!(sub.try_recv_bytes().await?, [9, 8]);
    /// # Ok(()) }
    /// ```
    pub async fn try_recv_bytes(&self) -> Result<Vec<u8>, TryRecvError> {
        Ok(self.try_recv_now()?.payload_bytes().to_vec())
    }

    /// [`recv_typed`](Self::recv_typed) without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::TryRecv`](crate::Error::TryRecv) as
    /// [`try_recv`](Self::try_recv); [`Error::Decode`](crate::Error::Decode)
    /// when the message is not a valid `T` (it is consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("n").await?;
    /// assert_eq!(sub.try_recv_typed::<u32>().await, Err(Error::TryRecv(TryRecvError::Empty)));
    /// mq.publisher("n").publish(5u32).await?;
    /// assert_eq!(sub.try_recv_typed::<u32>().await?, 5);
    /// # Ok(()) }
    /// ```
    pub async fn try_recv_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<T, crate::Error> {
        Ok(self.decode(&self.try_recv_now()?)?)
    }

    /// Waits for the next message and reads it as a `T` in `format` (see
    /// [`TopicMessage::deserialize_with_format`]).
    ///
    /// # Errors
    ///
    /// As [`recv_typed`](Self::recv_typed).
    ///
    /// # Examples
    ///
    /// JSON text published as raw bytes:
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, RecvTypedError, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("raw").await?;
    /// let publisher = mq.publisher("raw");
    /// publisher.publish_bytes("[1, 2, 3]", SerializationFormat::Raw).await?;
    /// publisher.publish_bytes("not json", SerializationFormat::Raw).await?;
    /// let values: Vec<u32> = sub.recv_with_format(SerializationFormat::Json).await?;
    /// assert_eq!(values, [1, 2, 3]);
    /// match sub.recv_with_format::<Vec<u32>>(SerializationFormat::Json).await {
    ///     Err(RecvTypedError::Decode(e)) => assert_eq!(e.offset(), Some(1)),
    ///     other => panic!("expected a decode error, got {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv_with_format<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        format: SerializationFormat,
    ) -> Result<T, RecvTypedError> {
        Ok(self.decode_in(&self.recv().await?, &format)?)
    }

    /// [`recv_with_format`](Self::recv_with_format) without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_recv_typed`](Self::try_recv_typed).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, SerializationFormat, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("raw").await?;
    /// mq.publisher("raw").publish_bytes("[1, 2]", SerializationFormat::Raw).await?;
    /// let values: Vec<u8> = sub.try_recv_with_format(SerializationFormat::Json).await?;
    /// assert_eq!(values, [1, 2]);
    /// let empty = sub.try_recv_with_format::<Vec<u8>>(SerializationFormat::Json).await;
    /// assert_eq!(empty, Err(Error::TryRecv(TryRecvError::Empty)));
    /// # Ok(()) }
    /// ```
    pub async fn try_recv_with_format<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        format: SerializationFormat,
    ) -> Result<T, crate::Error> {
        Ok(self.decode_in(&self.try_recv_now()?, &format)?)
    }

    /// [`recv_with_format`](Self::recv_with_format) in bincode.
    ///
    /// # Errors
    ///
    /// As [`recv_typed`](Self::recv_typed).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    /// struct Order { id: u64, item: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// let order = Order { id: 7, item: "book".into() };
    /// mq.publisher("orders").publish_bincode(order.clone()).await?;
    /// assert_eq!(sub.recv_bincode::<Order>().await?, order);
    /// # Ok(()) }
    /// ```
    pub async fn recv_bincode<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<T, RecvTypedError> {
        self.recv_with_format(SerializationFormat::Bincode).await
    }

    /// Waits for the next message; returns it with its format.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("prices").await?;
    /// let publisher = mq.publisher("prices");
    /// publisher.publish_with_format(1.5f64, SerializationFormat::Json).await?;
    /// publisher.publish(2.5f64).await?;
    /// let (msg, format) = sub.recv_with_format_info().await?;
    /// assert_eq!((format, msg.deserialize::<f64>()?), (SerializationFormat::Json, 1.5));
    /// let (_, format) = sub.recv_with_format_info().await?;
    /// assert_eq!(format, SerializationFormat::Native);
    /// # Ok(()) }
    /// ```
    pub async fn recv_with_format_info(&self) -> Result<(TopicMessage, SerializationFormat), RecvError> {
        let msg = self.recv().await?;
        let format = msg.format.clone();
        Ok((msg, format))
    }

    /// Waits for the next message and returns what it says about itself,
    /// without the payload (see [`TopicMessage::metadata`]).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("uploads").await?;
    /// mq.publisher("uploads").publish_bytes(vec![0u8; 256], SerializationFormat::Raw).await?;
    /// let meta = sub.recv_metadata().await?;
    /// assert_eq!((&*meta.topic, meta.offset, meta.payload_size), ("uploads", 0, 256));
    /// assert_eq!(meta.format, SerializationFormat::Raw);
    /// # Ok(()) }
    /// ```
    pub async fn recv_metadata(&self) -> Result<crate::MessageMetadata, RecvError> {
        Ok(self.recv().await?.metadata())
    }

    /// Moves to `offset` (see [`seek`](Self::seek)) and waits for the
    /// message there.
    ///
    /// # Errors
    ///
    /// [`Error::Seek`](crate::Error::Seek) when `offset` is outside the
    /// retained window (nothing moved); otherwise as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, OutOfRange};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("log").await?;
    /// mq.publisher("log").publish_batch(vec!["a", "b", "c"]).await?;
    /// assert_eq!(sub.recv_from_offset(1).await?.deserialize::<String>()?, "b");
    /// assert_eq!(sub.recv().await?.offset(), 2, "reading goes on from there");
    /// let err = sub.recv_from_offset(7).await.unwrap_err();
    /// assert_eq!(err, Error::Seek(OutOfRange { requested: 7, low: 0, high: 3 }));
    /// # Ok(()) }
    /// ```
    pub async fn recv_from_offset(&self, offset: u64) -> Result<TopicMessage, crate::Error> {
        self.seek(offset).await?;
        Ok(self.recv().await?)
    }

    /// Receives until a message matches `predicate`, and returns it. This
    /// is not a server-side filter: the messages before it are consumed
    /// (received and dropped), as in 1.0.0.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), when a receive fails before a match (the
    /// messages consumed so far stay consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("n").await?;
    /// mq.publisher("n").publish_batch(vec![1u32, 2, 3, 4]).await?;
    /// let even = sub.recv_filter(|m| m.deserialize::<u32>().is_ok_and(|n| n % 2 == 0)).await?;
    /// assert_eq!(even.offset(), 1);
    /// assert_eq!(sub.recv().await?.offset(), 2, "1 was consumed, 3 is next");
    /// # Ok(()) }
    /// ```
    pub async fn recv_filter<F: Fn(&TopicMessage) -> bool>(
        &self,
        predicate: F,
    ) -> Result<TopicMessage, RecvError> {
        loop {
            let msg = self.recv().await?;
            if predicate(&msg) {
                return Ok(msg);
            }
        }
    }

    /// Waits for the next message and reads it as a `T` (see
    /// [`TopicMessage::deserialize`]).
    ///
    /// # Errors
    ///
    /// [`RecvTypedError::Recv`] as [`recv`](Self::recv);
    /// [`RecvTypedError::Decode`] when the message is not a valid `T` (it
    /// is consumed; the error names its offset and, on a partitioned topic, its
    /// partition).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{DecodeErrorKind, MessageQueue, RecvTypedError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("n").await?;
    /// let publisher = mq.publisher("n");
    /// publisher.publish(5u32).await?;
    /// publisher.publish("five").await?;
    /// publisher.publish(6u32).await?;
    /// assert_eq!(sub.recv_typed::<u32>().await?, 5);
    /// match sub.recv_typed::<u32>().await {
    ///     Err(RecvTypedError::Decode(e)) => assert_eq!((e.kind(), e.offset()), (DecodeErrorKind::TypeMismatch, Some(1))),
    ///     other => panic!("expected a decode error, got {other:?}"),
    /// }
    /// assert_eq!(sub.recv_typed::<u32>().await?, 6, "the bad message was consumed");
    /// # Ok(()) }
    /// ```
    pub async fn recv_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<T, RecvTypedError> {
        Ok(self.decode(&self.recv().await?)?)
    }

    /// [`recv_typed`](Self::recv_typed) with where the value came from
    /// (offset, partition, delivery count): in a group with manual
    /// acknowledgement, pass the result to [`ack`](Self::ack) or
    /// [`nack`](Self::nack).
    ///
    /// # Errors
    ///
    /// As [`recv_typed`](Self::recv_typed). A message that is not a valid
    /// `T` is consumed without being acknowledged: in a manual group it is
    /// delivered again after the ack timeout, and becomes a dead letter at
    /// `max_deliveries`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, RecvTypedError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let worker = mq.group("orders", "billing").manual_ack().mode(ConsumptionMode::Earliest).join().await?;
    /// let publisher = mq.publisher("orders");
    /// publisher.publish(42u32).await?;
    /// publisher.publish("not a number").await?;
    /// let order = worker.recv_typed_message::<u32>().await?;
    /// assert_eq!((order.value, order.offset, order.partition, order.deliveries), (42, 0, None, 1));
    /// worker.ack(&order)?;
    /// assert!(matches!(worker.recv_typed_message::<u32>().await, Err(RecvTypedError::Decode(_))));
    /// let stats = mq.get_group_stats("orders", "billing").await.unwrap();
    /// assert_eq!(stats.pending, 1, "the bad message is held, not acknowledged");
    /// # Ok(()) }
    /// ```
    pub async fn recv_typed_message<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<TypedMessage<T>, RecvTypedError> {
        let msg = self.recv().await?;
        Ok(TypedMessage {
            value: self.decode(&msg)?,
            offset: msg.offset(),
            partition: msg.partition,
            deliveries: msg.deliveries,
            topic: msg.topic,
        })
    }

    /// Waits for at least one message, then reads up to `max` as `T`s.
    ///
    /// # Errors
    ///
    /// As [`recv_typed`](Self::recv_typed). When a message in the batch
    /// fails to decode, the messages before it are returned and the failing
    /// one is reported by the next call, so nothing is dropped silently.
    /// A member of a group with automatic acknowledgement gives the rest
    /// back to its group at once instead: the group hands them out again
    /// before anything newer (the failing one reported by the receive that
    /// gets it: this member's next, or another member's in a shared
    /// group; in an exclusive group, the partition's owner's, a new one
    /// after a rebalance), and expires them at their TTL. With manual
    /// acknowledgement they stay pending to the member, which hands them
    /// out on its next receives (each restarting its ack timeout); dropped
    /// first, the group delivers them again. (Over Redis, an automatic
    /// group's member acknowledges what it receives: what it put aside is
    /// lost with it.)
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, RecvTypedError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("n").await?;
    /// let publisher = mq.publisher("n");
    /// publisher.publish_batch(vec![1u32, 2]).await?;
    /// publisher.publish("three").await?;
    /// publisher.publish(4u32).await?;
    /// assert_eq!(sub.recv_batch_typed::<u32>(10).await?, [1, 2], "up to the bad one");
    /// let err = sub.recv_batch_typed::<u32>(10).await.unwrap_err();
    /// assert!(matches!(err, RecvTypedError::Decode(ref e) if e.offset() == Some(2)));
    /// assert_eq!(sub.recv_batch_typed::<u32>(10).await?, [4]);
    /// # Ok(()) }
    /// ```
    pub async fn recv_batch_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        max: usize,
    ) -> Result<Vec<T>, RecvTypedError> {
        match &self.kind {
            Kind::Broadcast(cursor) => {
                let mut waiter = Waiter::new();
                let mut raw = Vec::new();
                let mut cursor = poll_fn(|cx| {
                    budgeted(cx, |cx| {
                        let mut cursor = cursor.lock();
                        cursor
                            .poll_recv_batch(cx, &mut waiter, max, &mut raw)
                            .map(|r| r.map(|_| cursor))
                    })
                })
                .await
                .map_err(|e| self.failed(e))?;
                let mut values = Vec::with_capacity(raw.len());
                let mut raw = raw.into_iter();
                while let Some(d) = raw.next() {
                    let msg = self.message(d, self.partition);
                    match self.decode(&msg) {
                        Ok(v) => values.push(v),
                        Err(e) if values.is_empty() => {
                            // The failed message was delivered (the error
                            // reports it); the rest go back.
                            cursor.unread(raw);
                            self.delivered(1);
                            return Err(e.into());
                        }
                        Err(_) => {
                            // Deliver what decoded; the failing message
                            // comes first next time and is reported then.
                            cursor.unread(std::iter::once(msg.into_delivered(self.formats())).chain(raw));
                            break;
                        }
                    }
                }
                // Counted once handed on: what went back is counted when
                // it is received again.
                self.delivered(values.len());
                Ok(values)
            }
            _ => {
                // What goes back to the group is counted when it is
                // received again, not here too.
                let gives_back = self.gives_back();
                let mut msgs = Vec::new();
                self.recv_into_counted(max, &mut msgs, !gives_back).await?;
                let mut values = Vec::with_capacity(msgs.len());
                let mut msgs = msgs.into_iter();
                while let Some(msg) = msgs.next() {
                    match self.decode(&msg) {
                        Ok(v) => values.push(v),
                        Err(e) if values.is_empty() => {
                            // The failed message itself is dropped (the
                            // error reports it); the rest is put aside,
                            // and nothing is allocated when nothing is left.
                            if gives_back {
                                self.delivered(1);
                            }
                            if msgs.len() > 0 {
                                self.put_aside(msgs);
                            }
                            return Err(e.into());
                        }
                        Err(_) => {
                            self.put_aside(std::iter::once(msg).chain(msgs));
                            break;
                        }
                    }
                }
                if gives_back {
                    self.delivered(values.len());
                }
                Ok(values)
            }
        }
    }

    /// The messages of this subscriber as a `Stream`.
    ///
    /// Yields `Err(Lagged(n))` where messages were evicted unread and goes
    /// on; ends when the topic is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    /// use tokio_stream::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// mq.publisher("events").publish_batch(vec![1u32, 2, 3]).await?;
    /// drop(mq); // the topic closes: the stream ends after what it retains
    /// let (mut stream, mut values) = (sub.stream(), Vec::new());
    /// while let Some(msg) = stream.next().await {
    ///     values.push(msg?.deserialize::<u32>()?);
    /// }
    /// assert_eq!(values, [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn stream(&self) -> impl Stream<Item = Result<TopicMessage, RecvError>> + Send + Unpin + '_ {
        self.message_stream()
    }

    fn message_stream(&self) -> MessageStream<&Subscriber> {
        MessageStream {
            wait: self.waiter(),
            sub: self,
            buf: Vec::with_capacity(1),
            done: false,
        }
    }

    /// [`stream`](Self::stream) that owns the subscriber: `'static`, to
    /// move into a task or keep in a struct.
    ///
    /// Owning it, the stream of a subscriber with one cursor in memory (a
    /// plain topic, or one partition) reads without the lock that
    /// [`recv`](Self::recv) takes on every call (`recv` may be called from
    /// several tasks at once): of the ways to take messages one at a time,
    /// this costs the least.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    /// use tokio_stream::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let mut stream = mq.subscriber("events").await?.into_stream();
    /// let sum = tokio::spawn(async move {
    ///     let mut sum = 0;
    ///     while let Some(msg) = stream.next().await {
    ///         sum += msg?.deserialize::<u32>()?;
    ///     }
    ///     anyhow::Ok(sum)
    /// });
    /// mq.publisher("events").publish_batch(vec![1u32, 2, 3]).await?;
    /// mq.close();
    /// assert_eq!(sum.await??, 6);
    /// # Ok(()) }
    /// ```
    pub fn into_stream(self) -> SubscriberStream {
        SubscriberStream {
            inner: MessageStream {
                wait: self.waiter(),
                sub: self,
                buf: Vec::with_capacity(1),
                done: false,
            },
        }
    }

    /// The messages of this subscriber read as `T`s, as a `Stream` that
    /// owns the subscriber. A message that is not a valid `T` is an
    /// `Err(RecvTypedError::Decode(_))` item (with its offset) and the
    /// stream goes on; so does `Lagged(n)`. Ends when the topic is closed
    /// and drained. Decodes with the subscriber's
    /// [decode limits](Self::with_decode_limits).
    ///
    /// Its items carry no offset to acknowledge, so it is for subscribers
    /// and automatic groups: a member of a group with manual
    /// acknowledgement would stop at the group's `max_pending` (use
    /// [`into_stream`](Self::into_stream) and acknowledge each
    /// `TopicMessage`, decoding it with `deserialize`).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, RecvTypedError};
    /// use tokio_stream::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let stream = mq.subscriber("readings").await?.into_typed_stream::<f64>();
    /// let publisher = mq.publisher("readings");
    /// publisher.publish(1.5f64).await?;
    /// publisher.publish("not a number").await?;
    /// publisher.publish(2.5f64).await?;
    /// mq.close();
    /// let items: Vec<Result<f64, RecvTypedError>> = stream.collect().await;
    /// assert_eq!(items.len(), 3);
    /// assert_eq!(items[0].as_ref().ok(), Some(&1.5));
    /// assert!(matches!(&items[1], Err(RecvTypedError::Decode(e)) if e.offset() == Some(1)));
    /// assert_eq!(items[2].as_ref().ok(), Some(&2.5));
    /// # Ok(()) }
    /// ```
    pub fn into_typed_stream<T: DeserializeOwned + Clone + Send + Sync + 'static>(self) -> TypedStream<T> {
        TypedStream {
            inner: self.into_stream(),
            _type: std::marker::PhantomData,
        }
    }

    /// Moves the subscriber (or its whole group) so that the next message
    /// received is `offset`. On a partitioned topic this moves every
    /// partition to `offset`, or none: the offset is checked against every
    /// partition's window first; see [`seek_partition`](Self::seek_partition)
    /// to move one.
    ///
    /// Messages a typed batch put aside for the next receive
    /// ([`recv_batch_typed`](Self::recv_batch_typed)) are passed over: a
    /// member of a group with manual acknowledgement, which holds them
    /// pending and has nothing to acknowledge them by, acknowledges them.
    /// In such a group, a seek back hands out again as new what members
    /// hold at or past `offset`. In any group, what waits for redelivery
    /// there (given back by a typed batch of an automatically
    /// acknowledging group too) goes out as new, once (not from the
    /// redelivery queue as well).
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] unless the offset is retained or is the next one to
    /// be published in every partition; it names the first partition (in
    /// index order) that refuses it, and nothing moved.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("clicks", PartitionRouting::Fixed(0)).await?;
    /// let sub = mq.subscriber_with_options_and_mode("clicks", TopicOptions::default(), ConsumptionMode::Earliest).await?;
    /// for i in 0..4 {
    ///     mq.publish_to_partitioned(TopicMessage::new("clicks", i)?).await?;
    /// }
    /// // One partition holds 0..4, the other nothing: offset 2 is not in both.
    /// assert!(sub.seek(2).await.is_err());
    /// assert_eq!(sub.recv().await?.offset(), 0, "nothing moved");
    /// # Ok(()) }
    /// ```
    pub async fn seek(&self, offset: u64) -> Result<(), OutOfRange> {
        #[cfg(feature = "redis")]
        if let Kind::Remote(source) = &self.kind {
            return match source.seek_all(offset).await {
                Ok(()) => {
                    self.stash.clear();
                    Ok(())
                }
                Err(crate::error::TopicError::OutOfRange(range)) => Err(range),
                // The store could not say (see `seek_partition` for its
                // error) or a group member: an empty window.
                Err(_) => Err(OutOfRange {
                    requested: offset,
                    low: 0,
                    high: 0,
                }),
            };
        }
        let parts = self.windows();
        for &(_, low, high) in &parts {
            if !(low..=high).contains(&offset) {
                return Err(OutOfRange {
                    requested: offset,
                    low,
                    high,
                });
            }
        }
        // Every window held the offset. One cursor moves under its topic's
        // lock, checking the window again: should the message have been
        // evicted meanwhile, the seek fails rather than lands on a gap.
        // Across partitions a window only moves up (and then the cursor
        // reports the messages evicted meanwhile as lagged), so that the
        // moves cannot fail part-way: all partitions or none.
        let moved = match &self.kind {
            Kind::Broadcast(cursor) => cursor.lock().seek(offset),
            Kind::Merged(cursors) => {
                let mut cursors = cursors.lock();
                for &(p, _, _) in &parts {
                    if let Some(c) = cursors.cursor_mut(p) {
                        c.seek_or_lag(offset)?;
                        // A gap found before the seek is behind it now.
                        cursors.forget_lag(p);
                    }
                }
                Ok(())
            }
            // The group checks and moves every partition under its lock.
            #[cfg(feature = "redis")]
            Kind::Remote(_) => unreachable!("handled above"),
            Kind::Group { member, .. } => member.seek_all(offset).map_err(|e| match e {
                memq_groups::GroupError::OutOfRange { range, .. } => range,
                // The group refuses a seek only outside a window; report the
                // first window read above.
                _ => {
                    let (low, high) = parts.first().map_or((0, 0), |&(_, low, high)| (low, high));
                    OutOfRange {
                        requested: offset,
                        low,
                        high,
                    }
                }
            }),
        };
        if moved.is_ok() {
            // What was received and not handed on is behind the new position.
            self.pass_over_stash(None);
            self.wake_parked_receives(None);
        }
        moved
    }

    /// Hands messages this group member received and will not hand on
    /// back to its group (automatic acknowledgement; a manual group takes
    /// back what its members hold by itself).
    fn give_back(&self, member: &Member<Entry>, msgs: Vec<TopicMessage>) {
        if msgs.is_empty() {
            return;
        }
        let formats = self.formats();
        let claims = msgs
            .into_iter()
            .map(|m| {
                let (partition, deliveries) = (m.partition.unwrap_or(0), m.deliveries);
                let d = m.into_delivered(formats);
                Claimed::new(partition, d.offset, d.timestamp, deliveries, d.value)
            })
            .collect();
        member.give_back(claims);
    }

    /// Puts aside what a typed batch received and did not hand on, for
    /// the next receive. A member of a group with automatic
    /// acknowledgement gives it back to its group instead, which hands it
    /// out again before anything newer, to the member that may read it:
    /// put aside, it would wait for this member's next receive, after a
    /// rebalance behind what the partition's new owner receives meanwhile
    /// (an exclusive group's order broken), and past its topic's TTL.
    fn put_aside(&self, msgs: impl DoubleEndedIterator<Item = TopicMessage>) {
        match &self.kind {
            Kind::Group { member, .. } if self.gives_back() => self.give_back(member, msgs.collect()),
            _ => prepend(&mut self.stash.lock(self.stash_ttl()), msgs),
        }
    }

    /// Whether this is a member of a group with automatic
    /// acknowledgement, which gives back what a typed batch does not hand
    /// on ([`put_aside`](Self::put_aside)).
    fn gives_back(&self) -> bool {
        matches!(&self.kind, Kind::Group { member, .. } if member.config().ack == AckMode::Auto)
    }

    /// Before what a typed batch put aside is handed on: what a member of
    /// an exclusive group may no longer read (a rebalance gave the
    /// partition to another member) is not its to hand on: left to the
    /// group, which redelivers what the member held to the new owner.
    /// (Only members of manual groups put anything aside: see
    /// `put_aside`.)
    fn drop_stash_of_lost_partitions(&self) {
        let Kind::Group { member, .. } = &self.kind else {
            return;
        };
        if member.config().assignment != memq_groups::Assignment::Exclusive {
            return;
        }
        // Dropped here: the group redelivers what the member held.
        drop(
            self.stash
                .take_where(|m| !member.may_read(m.partition.unwrap_or(0))),
        );
    }

    /// Drops what a typed batch put aside, now behind a seek (of
    /// `partition`, or of every partition). A member of a group with
    /// manual acknowledgement holds those messages pending and has nothing
    /// to acknowledge them by: they are acknowledged here (passed over, as
    /// the seek asked), or the group's commit and its `max_pending` room
    /// would wait for them for good.
    fn pass_over_stash(&self, partition: Option<usize>) {
        let passed = self
            .stash
            .take_where(|m| partition.is_none_or(|p| m.partition.unwrap_or(0) == p));
        // With the stash's lock released (an acknowledgement wakes members).
        if let Kind::Group { member, .. } = &self.kind {
            for m in &passed {
                // Automatic groups have nothing to acknowledge; one taken
                // over by another member meanwhile is no longer this one's.
                let _ = member.ack(m.partition.unwrap_or(0), m.offset());
            }
        }
    }

    /// Wakes a receive of this subscriber parked in another task (`recv`
    /// takes `&self`: tasks share the cursor) after a seek, so that it
    /// looks at the new position: at `partition`'s topic, or every one the
    /// subscriber reads. Called with no lock of its own held (a waker may
    /// run a consumer group's code). Group members are woken by their
    /// group.
    fn wake_parked_receives(&self, partition: Option<usize>) {
        if !matches!(self.kind, Kind::Broadcast(_) | Kind::Merged(_)) {
            return;
        }
        let topics = self.log.as_ref().map(Log::partitions).unwrap_or_default();
        match partition {
            Some(p) => topics
                .get(p)
                .into_iter()
                .for_each(memq_core::Topic::wake_receivers),
            None => topics.iter().for_each(memq_core::Topic::wake_receivers),
        }
    }

    /// `(partition, low, high)` of every partition this subscriber reads,
    /// in index order.
    fn windows(&self) -> Vec<(usize, u64, u64)> {
        let topics = self.log.as_ref().map(Log::partitions).unwrap_or_default();
        let window = |p: usize| {
            let s = topics[p].stats();
            (p, s.low, s.high)
        };
        match (&self.kind, self.partition) {
            // A subscription to one partition of a partitioned topic.
            (Kind::Broadcast(_), Some(p)) => vec![window(p)],
            _ => (0..self.partitions().min(topics.len())).map(window).collect(),
        }
    }

    /// Moves this subscriber (or its group) in one partition.
    ///
    /// # Errors
    ///
    /// [`TopicError::OutOfRange`](crate::TopicError::OutOfRange) outside
    /// the partition's window, [`TopicError::NoSuchPartition`](crate::TopicError::NoSuchPartition).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// let sub = mq.subscriber("clicks").await?;
    /// for i in 0..4u32 {
    ///     mq.publish_to_partitioned(TopicMessage::new("clicks", i)?).await?; // round-robin
    /// }
    /// for _ in 0..4 {
    ///     sub.recv().await?;
    /// }
    /// sub.seek_partition(1, 0).await?; // partition 1 again from its start
    /// let again = sub.recv().await?;
    /// assert_eq!((again.partition, again.offset(), again.deserialize::<u32>()?), (Some(1), 0, 1));
    /// let err = sub.seek_partition(5, 0).await.unwrap_err();
    /// assert_eq!(err, TopicError::NoSuchPartition { partition: 5, partitions: 2 });
    /// # Ok(()) }
    /// ```
    pub async fn seek_partition(
        &self,
        partition: usize,
        offset: u64,
    ) -> Result<(), crate::error::TopicError> {
        #[cfg(feature = "redis")]
        if let Kind::Remote(source) = &self.kind {
            source.seek(partition, offset).await?;
            self.stash.clear();
            return Ok(());
        }
        self.seek_in(partition, offset)?;
        // Moved: what a typed batch put aside there is behind the new
        // position (kept when the seek fails, as `seek` does).
        self.pass_over_stash(Some(partition));
        Ok(())
    }

    fn seek_in(&self, partition: usize, offset: u64) -> Result<(), crate::error::TopicError> {
        use crate::error::TopicError;
        let partitions = self.partitions();
        let missing = TopicError::NoSuchPartition {
            partition,
            partitions,
        };
        match &self.kind {
            Kind::Broadcast(cursor) if partition == self.own_partition() => {
                cursor.lock().seek(offset)?;
                self.wake_parked_receives(Some(partition));
                Ok(())
            }
            Kind::Broadcast(_) => Err(missing),
            Kind::Merged(cursors) => {
                let mut cursors = cursors.lock();
                match cursors.cursor_mut(partition) {
                    Some(c) => {
                        c.seek(offset)?;
                        // A gap found before the seek is behind it now.
                        cursors.forget_lag(partition);
                        drop(cursors);
                        self.wake_parked_receives(Some(partition));
                        Ok(())
                    }
                    None => Err(missing),
                }
            }
            Kind::Group { member, .. } => member.seek(partition, offset).map_err(|e| match e {
                memq_groups::GroupError::OutOfRange { range, .. } => TopicError::OutOfRange(range),
                _ => missing,
            }),
            #[cfg(feature = "redis")]
            Kind::Remote(_) => unreachable!("seek_partition moves remote subscribers"),
        }
    }

    /// Moves this subscriber (or its group) back to the oldest message
    /// retained, in every partition it reads: 1.0.0's "next offset 0",
    /// for a topic that may have evicted its first messages. Never fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("log").await?;
    /// mq.publisher("log").publish_batch(vec!["a", "b"]).await?;
    /// assert_eq!(sub.recv_batch(10).await?.len(), 2);
    /// sub.reset_offset().await;
    /// assert_eq!(sub.recv().await?.offset(), 0, "read again from the start");
    /// # Ok(()) }
    /// ```
    pub async fn reset_offset(&self) {
        #[cfg(feature = "redis")]
        if let Kind::Remote(source) = &self.kind {
            if source.seek_earliest().await.is_ok() {
                self.stash.clear();
            }
            return;
        }
        let topics = self.log.as_ref().map(Log::partitions).unwrap_or_default();
        for (p, _, _) in self.windows() {
            // A window only moves up: should the oldest message go between
            // reading the window and moving, try the new oldest.
            for _ in 0..16 {
                let low = topics[p].stats().low;
                if self.seek_partition(p, low).await.is_ok() {
                    break;
                }
            }
        }
    }

    /// How many partitions this subscriber reads (1 for a plain topic).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 3).await?;
    /// assert_eq!(mq.subscriber("clicks").await?.partitions(), 3);
    /// assert_eq!(mq.subscribe_partition("clicks", 2, None, ConsumptionMode::Latest).await?.partitions(), 1);
    /// assert_eq!(mq.subscriber("plain").await?.partitions(), 1);
    /// # Ok(()) }
    /// ```
    pub fn partitions(&self) -> usize {
        match &self.kind {
            Kind::Broadcast(_) => 1,
            Kind::Merged(cursors) => cursors.lock().len(),
            Kind::Group { member, .. } => member.partitions(),
            #[cfg(feature = "redis")]
            Kind::Remote(source) => source.partitions(),
        }
    }

    /// Records that everything up to and including `offset` is processed.
    /// Does not move the subscriber (1.0.0 treated commit as seek). For a
    /// group member the commit is the group's; with manual
    /// acknowledgement it acknowledges every message up to `offset` this
    /// member holds, and nothing else: the group's commit then moves as
    /// far as everything below it is acknowledged (messages not delivered
    /// yet, or held by other members, are not processed by this call);
    /// those a typed batch put aside are among the member's, and are not
    /// handed out again. On
    /// a partitioned topic this commits `offset` in every
    /// partition, or in none: partitions have their own offsets, so this
    /// is rarely what you mean there; see
    /// [`commit_partition`](Self::commit_partition).
    ///
    /// # Errors
    ///
    /// [`CommitError::NotPublished`] when some partition has not published
    /// `offset` yet, with that partition's `high` (the first such, in
    /// index order); nothing was committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{CommitError, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish_batch(vec!["a", "b", "c"]).await?;
    /// let first = sub.recv().await?;
    /// sub.commit(first.offset()).await?;
    /// assert_eq!(sub.committed_offset(), Some(0));
    /// assert_eq!(sub.recv().await?.offset(), 1, "a commit does not move the subscriber");
    /// assert_eq!(sub.commit(3).await, Err(CommitError::NotPublished { offset: 3, high: 3 }));
    /// # Ok(()) }
    /// ```
    pub async fn commit(&self, offset: u64) -> Result<(), CommitError> {
        #[cfg(feature = "redis")]
        if let Kind::Remote(_) = &self.kind {
            // No named consumers on a server: nothing to commit to.
            return self.commit_in(0, offset);
        }
        // All or nothing: checked against every partition first.
        for (_, _, high) in self.windows() {
            if offset >= high {
                return Err(CommitError::NotPublished { offset, high });
            }
        }
        for (p, _, _) in self.windows() {
            self.commit_in(p, offset)?;
        }
        Ok(())
    }

    /// Records that everything up to and including `offset` of `partition`
    /// is processed.
    ///
    /// # Errors
    ///
    /// [`CommitError::NotPublished`] for an offset not yet published there,
    /// [`CommitError::NoSuchPartition`] for a partition this subscriber
    /// does not read.
    ///
    /// # Examples
    ///
    /// A named consumer of partition 1 commits there; its lag in the
    /// partition's stats counts what came after:
    ///
    /// ```
    /// use tokio_memq::{CommitError, ConsumptionMode, MessageQueue, PartitionRouting, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("clicks", PartitionRouting::Fixed(1)).await?;
    /// let sub = mq.subscribe_partition("clicks", 1, Some("audit".into()), ConsumptionMode::Earliest).await?;
    /// mq.publisher("clicks").publish_batch(vec!["a", "b", "c"]).await?;
    /// sub.commit_partition(1, 0).await?;
    /// assert_eq!(mq.get_partition_stats("clicks", 1).await.unwrap().consumer_lags["audit"], 2);
    /// let err = sub.commit_partition(0, 0).await.unwrap_err();
    /// assert_eq!(err, CommitError::NoSuchPartition { partition: 0, partitions: 1 });
    /// # Ok(()) }
    /// ```
    pub async fn commit_partition(&self, partition: usize, offset: u64) -> Result<(), CommitError> {
        self.commit_in(partition, offset)
    }

    /// A cursor's refused commit, as this crate's error.
    fn core_commit_error(&self, partition: usize, offset: u64, e: memq_core::CommitError) -> CommitError {
        match e {
            memq_core::CommitError::NotPublished { offset, high } => {
                CommitError::NotPublished { offset, high }
            }
            // memq-core's only reason today (its enum is non-exhaustive):
            // the offset is not published; say where the partition is.
            _ => CommitError::NotPublished {
                offset,
                high: self
                    .log
                    .as_ref()
                    .and_then(|log| log.partitions().get(partition).map(|t| t.stats().high))
                    .unwrap_or(offset),
            },
        }
    }

    fn commit_in(&self, partition: usize, offset: u64) -> Result<(), CommitError> {
        let missing = CommitError::NoSuchPartition {
            partition,
            partitions: self.partitions(),
        };
        match &self.kind {
            Kind::Broadcast(cursor) if partition == self.own_partition() => {
                let committed = cursor.lock().commit(offset);
                committed.map_err(|e| self.core_commit_error(partition, offset, e))
            }
            Kind::Broadcast(_) => Err(missing),
            Kind::Merged(cursors) => match cursors.lock().cursor_mut(partition) {
                Some(c) => c
                    .commit(offset)
                    .map_err(|e| self.core_commit_error(partition, offset, e)),
                None => Err(missing),
            },
            Kind::Group { member, .. } => {
                member.commit(partition, offset).map_err(|e| match e {
                    AckError::NotPublished { offset, high, .. } => CommitError::NotPublished { offset, high },
                    // A group's commit fails only for an unpublished offset
                    // or a partition it does not read.
                    _ => missing,
                })?;
                // What a typed batch put aside up to `offset` was just
                // acknowledged (this member held it): processed, so not
                // handed out again, as a seek past it passes over it.
                drop(
                    self.stash
                        .take_where(|m| m.partition.unwrap_or(0) == partition && m.offset() <= offset),
                );
                Ok(())
            }
            // No named consumers on a server: nothing to commit to.
            #[cfg(feature = "redis")]
            Kind::Remote(_) => Err(CommitError::NoSuchPartition {
                partition,
                partitions: 0,
            }),
        }
    }

    /// Acknowledges a message received by this group member (groups with
    /// manual acknowledgement; see
    /// [`GroupBuilder::manual_ack`](crate::GroupBuilder::manual_ack)).
    ///
    /// # Errors
    ///
    /// [`AckError::NotOwned`] when the message is not pending with this
    /// member (nor is a message of another topic, or, in memory, one
    /// another subscriber received: of an earlier topic of the same name
    /// deleted since, another queue's, another member's), whatever its
    /// offset; [`AckError::AutoAck`] outside manual mode
    /// (including for a subscriber that is not in a group).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{AckError, ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let worker = mq.group("jobs", "workers").manual_ack().mode(ConsumptionMode::Earliest).join().await?;
    /// mq.publisher("jobs").publish("job 1").await?;
    /// let job = worker.recv().await?;
    /// assert_eq!(mq.get_group_stats("jobs", "workers").await.unwrap().pending, 1);
    /// worker.ack(&job)?;
    /// assert_eq!(mq.get_group_stats("jobs", "workers").await.unwrap().pending, 0);
    /// assert_eq!(worker.ack(&job), Err(AckError::NotOwned { partition: 0, offset: 0 }));
    /// let plain = mq.subscriber("jobs").await?;
    /// assert_eq!(plain.ack(&job), Err(AckError::AutoAck));
    /// # Ok(()) }
    /// ```
    pub fn ack(&self, message: &impl Acknowledgeable) -> Result<(), AckError> {
        let (partition, offset) = self.settles(message)?;
        self.ack_at(partition, offset)
    }

    /// Where `message` was received, when it may be this member's: a
    /// message of another topic (in memory: another topic of the same name
    /// too), or one never published, is [`AckError::NotOwned`] (taken for
    /// the pending message at its offset, it settled that one).
    fn settles(&self, message: &impl Acknowledgeable) -> Result<(usize, u64), AckError> {
        let (partition, offset) = (message.ack_partition().unwrap_or(0), message.ack_offset());
        let foreign = message.ack_topic().is_some_and(|topic| match &self.kind {
            // Over Redis, by name: the server's ids tell the rest.
            #[cfg(feature = "redis")]
            Kind::Remote(_) => topic != &*self.topic,
            // In memory, by identity: a message this subscriber received
            // holds its name, so one of an earlier topic of that name
            // (deleted since), another queue's, or another member's is not
            // this member's, whatever its offset.
            _ => !std::ptr::eq(topic, &*self.topic),
        });
        match foreign || !message.ack_received() {
            true => {
                // Outside a group, still `AutoAck`.
                #[cfg(feature = "redis")]
                if let Kind::Remote(source) = &self.kind {
                    return Err(match source.acks_manually() {
                        true => AckError::NotOwned { partition, offset },
                        false => AckError::AutoAck,
                    });
                }
                self.acking_member()?;
                Err(AckError::NotOwned { partition, offset })
            }
            false => Ok((partition, offset)),
        }
    }

    pub(crate) fn ack_at(&self, partition: usize, offset: u64) -> Result<(), AckError> {
        #[cfg(feature = "redis")]
        if let Kind::Remote(source) = &self.kind {
            return source.settle(partition, offset, true);
        }
        self.acking_member()?.ack(partition, offset)
    }

    /// The group member behind this subscriber, for acknowledgements
    /// (outside a group nothing is acknowledged: [`AckError::AutoAck`]).
    fn acking_member(&self) -> Result<&Member<Entry>, AckError> {
        match &self.kind {
            Kind::Group { member, .. } => Ok(member),
            _ => Err(AckError::AutoAck),
        }
    }

    /// Gives a message received by this group member back to the group at
    /// once (manual acknowledgement): it is delivered again, to this
    /// member or another, with [`deliveries`](TopicMessage::deliveries)
    /// raised, or becomes a dead letter at the group's
    /// [`max_deliveries`](crate::GroupBuilder::max_deliveries). For work
    /// that failed and should be retried now rather than after the ack
    /// timeout.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let worker = mq.group("jobs", "workers").manual_ack().mode(ConsumptionMode::Earliest).join().await?;
    /// mq.publisher("jobs").publish("resize").await?;
    /// let job = worker.recv().await?;
    /// worker.nack(&job)?; // failed: try again now
    /// let again = worker.recv().await?;
    /// assert_eq!((again.offset(), again.deliveries), (0, 2));
    /// worker.ack(&again)?;
    /// # Ok(()) }
    /// ```
    pub fn nack(&self, message: &impl Acknowledgeable) -> Result<(), AckError> {
        let (partition, offset) = self.settles(message)?;
        self.nack_at(partition, offset)
    }

    pub(crate) fn nack_at(&self, partition: usize, offset: u64) -> Result<(), AckError> {
        #[cfg(feature = "redis")]
        if let Kind::Remote(source) = &self.kind {
            return source.settle(partition, offset, false);
        }
        self.acking_member()?.nack(partition, offset)
    }

    /// Restarts this group member's ack timeout
    /// ([`GroupBuilder::ack_timeout`](crate::GroupBuilder::ack_timeout) or
    /// `consume_idle_timeout`): for long work, call it before the timeout
    /// runs out so that the messages this member holds are not handed to
    /// other members. Receives and acknowledgements restart it too. Does
    /// nothing outside a group. Over Redis it is sent in the background,
    /// as acknowledgements are, and restarts the timeout of every message
    /// the member holds (there the timeout counts per message, from when
    /// it was handed out).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let join = || mq.group("jobs", "workers").manual_ack().ack_timeout(Duration::from_secs(30)).mode(ConsumptionMode::Earliest).join();
    /// let (busy, other) = (join().await?, join().await?);
    /// mq.publisher("jobs").publish("long job").await?;
    /// let _job = busy.recv().await?;
    /// for _ in 0..3 {
    ///     tokio::time::sleep(Duration::from_secs(20)).await; // working on it
    ///     busy.keep_alive();
    /// }
    /// assert!(other.try_recv_now().is_err(), "still held by `busy` after 60 s");
    /// tokio::time::sleep(Duration::from_secs(31)).await; // `busy` goes quiet
    /// assert_eq!(other.try_recv_now()?.deliveries, 2, "handed to another member");
    /// # Ok(()) }
    /// ```
    pub fn keep_alive(&self) {
        match &self.kind {
            Kind::Group { member, .. } => member.keep_alive(),
            // Sent in the background, as acknowledgements are.
            #[cfg(feature = "redis")]
            Kind::Remote(source) => source.keep_alive(),
            _ => {}
        }
    }

    /// The offset of the next message this subscriber (or its group) will
    /// receive (for a group member, the next new one: messages queued for
    /// redelivery, after a nack or a take-over, come first); `None` for a
    /// subscriber or group of more than one partition (see
    /// [`partition_offset`](Self::partition_offset)); a subscription to one
    /// partition, or to a partitioned topic of one, gives that partition's.
    /// After messages it had not read were evicted, it is the offset it
    /// would have received: its next receive reports
    /// [`RecvError::Lagged`], then goes on from the oldest retained.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("log").await?;
    /// assert_eq!(sub.current_offset().await, Some(0));
    /// mq.publisher("log").publish_batch(vec!["a", "b"]).await?;
    /// sub.recv().await?;
    /// assert_eq!(sub.current_offset().await, Some(1));
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// assert_eq!(mq.subscriber("clicks").await?.current_offset().await, None);
    /// # Ok(()) }
    /// ```
    pub async fn current_offset(&self) -> Option<u64> {
        if self.partitions() > 1 {
            return None;
        }
        self.partition_offset(self.own_partition())
    }

    /// The next offset this subscriber (or its group) will receive from
    /// `partition`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("clicks", PartitionRouting::Fixed(1)).await?;
    /// let sub = mq.subscriber("clicks").await?;
    /// mq.publisher("clicks").publish_batch(vec!["a", "b"]).await?;
    /// sub.recv().await?;
    /// assert_eq!((sub.partition_offset(0), sub.partition_offset(1)), (Some(0), Some(1)));
    /// assert_eq!(sub.partition_offset(2), None, "no such partition");
    /// # Ok(()) }
    /// ```
    pub fn partition_offset(&self, partition: usize) -> Option<u64> {
        // Messages a typed batch put aside come first.
        let stashed = self.stash.existing().and_then(|stash| {
            stash
                .iter()
                .filter(|m| m.partition.unwrap_or(0) == partition)
                .map(TopicMessage::offset)
                .min()
        });
        let position = match &self.kind {
            // Not past a gap a batch found and kept for the next receive:
            // that receive reports it, then goes on past it.
            Kind::Broadcast(cursor) => {
                (partition == self.own_partition()).then(|| cursor.lock().position_before_gap())
            }
            Kind::Merged(cursors) => cursors.lock().position_before_gap(partition),
            Kind::Group { member, .. } => member.position(partition),
            #[cfg(feature = "redis")]
            Kind::Remote(source) => source.position(partition),
        };
        position.map(|p| stashed.map_or(p, |s| s.min(p)))
    }

    /// The next offset this subscriber (or its group) will receive from
    /// each partition it reads, as `(partition, offset)` in partition
    /// order: one entry for a plain topic or a single-partition
    /// subscription.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("clicks", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("clicks", PartitionRouting::Fixed(1)).await?;
    /// let sub = mq.subscriber("clicks").await?;
    /// mq.publish_to_partitioned(TopicMessage::new("clicks", 1u8)?).await?;
    /// sub.recv().await?;
    /// assert_eq!(sub.positions(), [(0, 0), (1, 1)]);
    /// # Ok(()) }
    /// ```
    pub fn positions(&self) -> Vec<(usize, u64)> {
        let parts: Vec<usize> = match (&self.kind, self.partition) {
            (Kind::Broadcast(_), Some(p)) => vec![p],
            _ => (0..self.partitions()).collect(),
        };
        parts
            .into_iter()
            .filter_map(|p| self.partition_offset(p).map(|o| (p, o)))
            .collect()
    }

    /// The last offset committed through this subscriber (or its group);
    /// for a subscription to one partition, that partition's; for one to
    /// every partition of a partitioned topic, partition 0's.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// assert_eq!(sub.committed_offset(), None);
    /// mq.publisher("jobs").publish_batch(vec!["a", "b"]).await?;
    /// sub.commit(1).await?;
    /// assert_eq!(sub.committed_offset(), Some(1));
    /// # Ok(()) }
    /// ```
    pub fn committed_offset(&self) -> Option<u64> {
        match &self.kind {
            Kind::Broadcast(cursor) => cursor.lock().committed(),
            Kind::Merged(cursors) => cursors.lock().cursor(0).and_then(|c| c.committed()),
            Kind::Group { member, .. } => member.stats().committed.first().copied().flatten(),
            #[cfg(feature = "redis")]
            Kind::Remote(_) => None,
        }
    }

    /// Messages published that this subscriber (or its group) has not
    /// processed yet, over all its partitions.
    ///
    /// A subscriber of its own counts what it will still receive or be
    /// told it lost: messages evicted before it read them count (a receive
    /// reports them as [`RecvError::Lagged`]), messages that expired
    /// before it read them do not (they are skipped). A group member's is
    /// its group's ([`GroupStats::lag`](crate::GroupStats::lag)): a count
    /// of offsets, expired ones included until the group moves past them.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// mq.publisher("jobs").publish_batch(vec![1, 2, 3]).await?;
    /// assert_eq!(sub.lag(), 3);
    /// sub.recv().await?;
    /// assert_eq!(sub.lag(), 2);
    /// # Ok(()) }
    /// ```
    pub fn lag(&self) -> u64 {
        // Messages a typed batch put aside are still to be received.
        let stashed = || self.stash.existing().map_or(0, |s| s.len() as u64);
        match &self.kind {
            Kind::Broadcast(cursor) => stashed() + cursor.lock().lag(),
            Kind::Merged(cursors) => stashed() + cursors.lock().lag(),
            // A manual group counts them already: handed out, and not
            // acknowledged.
            Kind::Group { member, .. } if member.config().ack == AckMode::Manual => member.stats().lag,
            Kind::Group { member, .. } => stashed() + member.stats().lag,
            // Known only to the server (a round trip; this call does not
            // wait): see `MessageQueue::get_topic_stats`.
            #[cfg(feature = "redis")]
            Kind::Remote(_) => stashed(),
        }
    }
}

/// Messages a typed batch put aside, with their count readable without
/// the lock: a group member's receive asks on every call (its lock taken
/// and released was a third of that receive's own time, ten members on
/// two CPUs).
///
/// Allocated when something is first stashed: most subscribers never
/// stash, and an idle one pays 16 bytes for it rather than 48.
#[derive(Default)]
struct Stash(std::sync::OnceLock<Box<StashItems>>);

struct StashItems {
    items: Mutex<VecDeque<TopicMessage>>,
    /// `items.len()` as of the last release of the lock.
    len: AtomicUsize,
    /// The topic's message TTL: what expires while put aside is dropped,
    /// as it would have been in the topic.
    ttl: Option<Duration>,
}

impl Stash {
    /// The stash, locked (allocated first if it never was, for messages
    /// that expire after `ttl`).
    fn lock(&self, ttl: Option<Duration>) -> StashGuard<'_> {
        Self::guard(self.0.get_or_init(|| {
            Box::new(StashItems {
                items: Mutex::default(),
                len: AtomicUsize::new(0),
                ttl,
            })
        }))
    }

    /// The stash, locked, if it was ever allocated (otherwise it is empty).
    fn existing(&self) -> Option<StashGuard<'_>> {
        self.0.get().map(|s| Self::guard(s))
    }

    /// Locks `s`, dropping what has expired (never delivered, as in the
    /// topic; the clock is tokio's, as the topic's).
    fn guard(s: &StashItems) -> StashGuard<'_> {
        let mut items = s.items.lock();
        if let (Some(ttl), false) = (s.ttl, items.is_empty()) {
            let now = tokio::time::Instant::now().into_std();
            items.retain(|m| now.saturating_duration_since(m.created_at) < ttl);
        }
        StashGuard { items, len: &s.len }
    }

    /// Takes out what `which` picks, in order, keeping the rest.
    fn take_where(&self, which: impl FnMut(&TopicMessage) -> bool) -> Vec<TopicMessage> {
        let Some(mut stash) = self.existing() else {
            return Vec::new();
        };
        if stash.is_empty() {
            return Vec::new();
        }
        let (taken, kept): (VecDeque<_>, VecDeque<_>) =
            std::mem::take(&mut *stash).into_iter().partition(which);
        *stash = kept;
        taken.into()
    }

    /// Drops whatever is stashed.
    #[cfg(feature = "redis")]
    fn clear(&self) {
        if let Some(mut s) = self.existing() {
            s.clear();
        }
    }

    /// Whether nothing is stashed, without the lock: a message stashed by
    /// a receive running at the same moment may not be seen yet, as if
    /// that receive had finished after this one asked.
    fn is_empty(&self) -> bool {
        self.0.get().is_none_or(|s| s.len.load(Ordering::Acquire) == 0)
    }
}

/// The stash, locked; on release its count is published.
struct StashGuard<'a> {
    items: parking_lot::MutexGuard<'a, VecDeque<TopicMessage>>,
    len: &'a AtomicUsize,
}

impl std::ops::Deref for StashGuard<'_> {
    type Target = VecDeque<TopicMessage>;
    fn deref(&self) -> &Self::Target {
        &self.items
    }
}

impl std::ops::DerefMut for StashGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.items
    }
}

impl Drop for StashGuard<'_> {
    fn drop(&mut self) {
        self.len.store(self.items.len(), Ordering::Release);
    }
}

fn prepend(stash: &mut VecDeque<TopicMessage>, msgs: impl DoubleEndedIterator<Item = TopicMessage>) {
    for m in msgs.rev() {
        stash.push_front(m);
    }
}

/// A subscriber's messages as a stream, over a borrowed (`stream`) or
/// owned (`into_stream`) subscriber.
struct MessageStream<S> {
    sub: S,
    wait: Wait,
    buf: Vec<TopicMessage>,
    done: bool,
}

impl<S: std::borrow::Borrow<Subscriber> + Unpin> Stream for MessageStream<S> {
    type Item = Result<TopicMessage, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.sub.borrow().poll_batch(cx, &mut this.wait, 1, &mut this.buf) {
            Poll::Ready(Err(RecvError::Closed)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(_)) => match this.buf.pop() {
                Some(m) => Poll::Ready(Some(Ok(m))),
                None => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A subscriber's messages as a blocking iterator: see [`Subscriber::iter`].
///
/// # Examples
///
/// ```
/// use tokio_memq::{ConsumptionMode, MessageQueue};
///
/// let mq = MessageQueue::new();
/// mq.publisher("n").blocking_publish_batch(vec![1u32, 2, 3])?;
/// let sub = mq.blocking_subscriber("n", ConsumptionMode::Earliest)?;
/// let first_two: Vec<u32> = sub.iter().take(2).map(|m| m.unwrap().deserialize().unwrap()).collect();
/// assert_eq!(first_two, [1, 2]);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[must_use = "iterators do nothing unless iterated"]
pub struct Iter<'a> {
    stream: MessageStream<&'a Subscriber>,
    /// After an error that every later call would repeat at once.
    done: bool,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("topic", &self.stream.sub.topic)
            .finish()
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<TopicMessage, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let stream = &mut self.stream;
        let item = crate::blocking::block_on(poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)));
        // A queue over Redis cannot wait for a message on a thread outside
        // its runtime: the same answer every time, so the iterator ends
        // with it rather than spin a `for` loop.
        if let Some(Err(RecvError::Store(e))) = &item {
            self.done = e.kind() == crate::StoreErrorKind::Unsupported;
        }
        item
    }
}

/// A subscriber's messages as a `Stream` that owns the subscriber: see
/// [`Subscriber::into_stream`].
///
/// # Examples
///
/// Kept in a struct, as a borrowed stream cannot be:
///
/// ```
/// use tokio_memq::{MessageQueue, SubscriberStream};
/// use tokio_stream::StreamExt;
///
/// struct Worker {
///     inbox: SubscriberStream,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let mut worker = Worker { inbox: mq.subscriber("inbox").await?.into_stream() };
/// mq.publisher("inbox").publish("hello").await?;
/// let msg = worker.inbox.next().await.expect("one message")?;
/// assert_eq!(msg.deserialize::<String>()?, "hello");
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct SubscriberStream {
    inner: MessageStream<Subscriber>,
}

impl SubscriberStream {
    /// The subscriber, to seek, commit or read its lag between items.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    /// use tokio_stream::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let mut stream = mq.subscriber("t").await?.into_stream();
    /// mq.publisher("t").publish_batch(vec![1u8, 2]).await?;
    /// assert_eq!(stream.subscriber().lag(), 2);
    /// stream.next().await.unwrap()?;
    /// assert_eq!(stream.subscriber().lag(), 1);
    /// # Ok(()) }
    /// ```
    pub fn subscriber(&self) -> &Subscriber {
        &self.inner.sub
    }

    /// The subscriber back.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let stream = mq.subscriber("t").await?.into_stream();
    /// let sub = stream.into_subscriber();
    /// assert_eq!(sub.topic(), "t");
    /// # Ok(()) }
    /// ```
    pub fn into_subscriber(self) -> Subscriber {
        self.inner.sub
    }
}

impl fmt::Debug for SubscriberStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberStream")
            .field("subscriber", &self.inner.sub)
            .finish()
    }
}

impl Stream for SubscriberStream {
    type Item = Result<TopicMessage, RecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_owned(cx) {
            Some(polled) => polled,
            None => Pin::new(&mut self.inner).poll_next(cx),
        }
    }
}

impl MessageStream<Subscriber> {
    /// The next message of a broadcast subscriber that this stream owns,
    /// read without taking the subscriber's cursor lock (nobody else can
    /// hold it: an uncontended lock and unlock cost two locked
    /// instructions a message); `None` for the other kinds of subscriber.
    fn poll_owned(&mut self, cx: &mut Context<'_>) -> Option<Poll<Option<Result<TopicMessage, RecvError>>>> {
        if self.done {
            return Some(Poll::Ready(None));
        }
        let sub = &mut self.sub;
        // Nothing puts a broadcast subscriber's messages aside today; if
        // something did, the general path would hand them out first.
        if !sub.stash.is_empty() {
            return None;
        }
        let (Kind::Broadcast(cursor), Wait::Broadcast(waiter)) = (&mut sub.kind, &mut self.wait) else {
            return None;
        };
        let got = match budgeted(cx, |cx| cursor.get_mut().poll_recv(cx, waiter)) {
            Poll::Ready(got) => got,
            Poll::Pending => return Some(Poll::Pending),
        };
        // As `RecvOne` does, written out: the message is built where the
        // caller gets it. (A shared helper returning the `Result` cost an
        // extra move of the 160-byte message: 211 against 217 ns a
        // message in one task, six alternating runs.)
        Some(Poll::Ready(match got {
            Ok(d) => {
                sub.delivered(1);
                Some(Ok(sub.message(d, sub.partition)))
            }
            Err(memq_core::RecvError::Closed) => {
                self.done = true;
                None
            }
            Err(e) => Some(Err(sub.failed(e))),
        }))
    }
}

/// A subscriber's messages read as `T`s: see [`Subscriber::into_typed_stream`].
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, TypedStream};
/// use tokio_stream::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let mut prices: TypedStream<u64> = mq.subscriber("prices").await?.into_typed_stream();
/// mq.publisher("prices").publish(42u64).await?;
/// assert_eq!(prices.next().await.expect("one price")?, 42);
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct TypedStream<T> {
    inner: SubscriberStream,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T> TypedStream<T> {
    /// The subscriber, as [`SubscriberStream::subscriber`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let stream = mq.subscriber("t").await?.into_typed_stream::<u8>();
    /// assert_eq!(stream.subscriber().topic(), "t");
    /// # Ok(()) }
    /// ```
    pub fn subscriber(&self) -> &Subscriber {
        self.inner.subscriber()
    }
}

impl<T> fmt::Debug for TypedStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedStream")
            .field("type", &std::any::type_name::<T>())
            .field("subscriber", self.subscriber())
            .finish()
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Stream for TypedStream<T> {
    type Item = Result<T, RecvTypedError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = &mut self.inner;
        Pin::new(&mut *inner).poll_next(cx).map(|item| {
            item.map(|r| match r {
                Ok(msg) => inner.subscriber().decode(&msg).map_err(RecvTypedError::from),
                Err(e) => Err(RecvTypedError::from(e)),
            })
        })
    }
}
