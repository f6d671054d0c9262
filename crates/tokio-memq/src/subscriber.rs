//! Receiving from a topic, alone (broadcast) or as a member of a consumer
//! group.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use memq_core::{Cursor, Delivered, Waiter};
use memq_groups::{Claimed, Member, MemberWaiter};
use memq_partition::{MergedCursor, MergedWaiter};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::error::{AckError, CommitError, OutOfRange, RecvError, RecvTypedError, TryRecvError};
use crate::message::{Entry, TopicMessage};

/// Receives messages from one topic, in offset order.
///
/// A subscriber from [`MessageQueue::subscriber`](crate::MessageQueue::subscriber)
/// and friends sees every message from its start position, except messages
/// that expire (skipped; counted in the topic's stats) and messages evicted
/// before it read them: then the next receive fails with
/// [`RecvError::Lagged`] carrying the exact number skipped, and the one
/// after continues at the oldest retained message.
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
pub struct Subscriber {
    topic: Arc<str>,
    kind: Kind,
    /// For a subscription to one partition of a partitioned topic.
    partition: Option<usize>,
    /// Messages a typed batch received but could not hand on (after a
    /// decode failure), delivered before anything else. (A single
    /// cursor puts them back into the cursor instead.)
    stash: Mutex<VecDeque<TopicMessage>>,
}

enum Kind {
    Broadcast(Mutex<Cursor<Entry>>),
    /// Every partition of a partitioned topic.
    Merged(Mutex<MergedCursor<Entry>>),
    Group {
        member: Member<Entry>,
        partitioned: bool,
    },
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Subscriber");
        d.field("topic", &self.topic);
        match &self.kind {
            Kind::Broadcast(cursor) => d.field("cursor", &*cursor.lock()),
            Kind::Merged(cursors) => d.field("partitions", &cursors.lock().len()),
            Kind::Group { member, .. } => d.field("member", member),
        };
        d.finish()
    }
}

/// Appends delivered entries to a `Vec<TopicMessage>`.
struct Collect<'a> {
    topic: &'a Arc<str>,
    partition: Option<usize>,
    out: &'a mut Vec<TopicMessage>,
}

impl Extend<Delivered<Entry>> for Collect<'_> {
    fn extend<I: IntoIterator<Item = Delivered<Entry>>>(&mut self, iter: I) {
        let (topic, partition) = (self.topic, self.partition);
        self.out.extend(iter.into_iter().map(|d| {
            let mut m = TopicMessage::delivered(topic, d);
            m.partition = partition;
            m
        }));
    }
}

/// Appends entries delivered from partitions to a `Vec<TopicMessage>`.
struct CollectPartitioned<'a> {
    topic: &'a Arc<str>,
    out: &'a mut Vec<TopicMessage>,
}

impl Extend<(usize, Delivered<Entry>)> for CollectPartitioned<'_> {
    fn extend<I: IntoIterator<Item = (usize, Delivered<Entry>)>>(&mut self, iter: I) {
        let topic = self.topic;
        self.out.extend(iter.into_iter().map(|(p, d)| {
            let mut m = TopicMessage::delivered(topic, d);
            m.partition = Some(p);
            m
        }));
    }
}

/// What a receive future keeps between polls.
enum Wait {
    Broadcast(Waiter<Entry>),
    Merged(MergedWaiter<Entry>),
    Group(MemberWaiter<Entry>, Vec<Claimed<Entry>>),
}

fn merged_recv_error(e: memq_partition::RecvError) -> RecvError {
    match e {
        memq_partition::RecvError::Lagged { skipped, .. } => RecvError::Lagged(skipped),
        _ => RecvError::Closed,
    }
}

impl Subscriber {
    pub(crate) fn new(topic: &str, cursor: Cursor<Entry>) -> Self {
        Self::with_kind(topic, Kind::Broadcast(Mutex::new(cursor)))
    }

    pub(crate) fn merged(topic: &str, cursors: MergedCursor<Entry>) -> Self {
        Self::with_kind(topic, Kind::Merged(Mutex::new(cursors)))
    }

    pub(crate) fn member(topic: &str, member: Member<Entry>, partitioned: bool) -> Self {
        Self::with_kind(topic, Kind::Group { member, partitioned })
    }

    fn with_kind(topic: &str, kind: Kind) -> Self {
        Subscriber {
            topic: topic.into(),
            kind,
            partition: None,
            stash: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn set_partition(&mut self, partition: usize) {
        self.partition = Some(partition);
    }

    /// Labels messages from a single-partition subscription.
    fn label(&self, mut m: TopicMessage) -> TopicMessage {
        if self.partition.is_some() {
            m.partition = self.partition;
        }
        m
    }

    /// The topic this subscriber reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The consumer group this subscriber belongs to, if any.
    pub fn group(&self) -> Option<&str> {
        match &self.kind {
            Kind::Group { member, .. } => Some(member.group()),
            _ => None,
        }
    }

    fn waiter(&self) -> Wait {
        match &self.kind {
            Kind::Broadcast(_) => Wait::Broadcast(Waiter::new()),
            Kind::Merged(_) => Wait::Merged(MergedWaiter::new()),
            Kind::Group { .. } => Wait::Group(MemberWaiter::new(), Vec::new()),
        }
    }

    fn claimed(&self, c: Claimed<Entry>) -> TopicMessage {
        let partitioned = matches!(
            self.kind,
            Kind::Group {
                partitioned: true,
                ..
            }
        );
        TopicMessage::claimed(&self.topic, c, partitioned)
    }

    /// Polls for up to `max` messages into `out`.
    fn poll_batch(
        &self,
        cx: &mut Context<'_>,
        wait: &mut Wait,
        max: usize,
        out: &mut Vec<TopicMessage>,
    ) -> Poll<Result<usize, RecvError>> {
        // A receiver with a long backlog yields to the scheduler like
        // tokio's own channels do, so it cannot starve other tasks.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let polled = self.poll_batch_inner(cx, wait, max, out);
        if polled.is_ready() {
            coop.made_progress();
        }
        polled
    }

    fn poll_batch_inner(
        &self,
        cx: &mut Context<'_>,
        wait: &mut Wait,
        max: usize,
        out: &mut Vec<TopicMessage>,
    ) -> Poll<Result<usize, RecvError>> {
        if max > 0 {
            let mut stash = self.stash.lock();
            if !stash.is_empty() {
                let n = max.min(stash.len());
                out.extend(stash.drain(..n));
                return Poll::Ready(Ok(n));
            }
        }
        match (&self.kind, wait) {
            (Kind::Broadcast(cursor), Wait::Broadcast(waiter)) => {
                let mut collect = Collect {
                    topic: &self.topic,
                    partition: self.partition,
                    out,
                };
                cursor.lock().poll_recv_batch(cx, waiter, max, &mut collect)
            }
            (Kind::Merged(cursors), Wait::Merged(waiter)) => {
                let mut collect = CollectPartitioned {
                    topic: &self.topic,
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
                    out.extend(claimed.drain(..).map(|c| self.claimed(c)));
                }
                r
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
    /// [`RecvError::Closed`] when the topic was deleted or the queue
    /// dropped and everything retained has been received.
    pub async fn recv(&self) -> Result<TopicMessage, RecvError> {
        if let Kind::Broadcast(cursor) = &self.kind {
            let mut waiter = Waiter::new();
            return poll_fn(|cx| {
                let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
                let polled = cursor.lock().poll_recv(cx, &mut waiter);
                if polled.is_ready() {
                    coop.made_progress();
                }
                polled.map(|r| r.map(|d| self.label(TopicMessage::delivered(&self.topic, d))))
            })
            .await;
        }
        let mut out = Vec::with_capacity(1);
        self.recv_into(1, &mut out).await?;
        out.pop().ok_or(RecvError::Closed)
    }

    /// Roughly how many messages a batch receive will find, to size its
    /// `Vec`: a reader that keeps up gets a few messages per call, and
    /// allocating room for `max` every time costs more than the messages.
    fn backlog_hint(&self) -> usize {
        const MAX_HINT: u64 = 1024;
        let backlog = match &self.kind {
            Kind::Broadcast(cursor) => cursor.lock().lag(),
            Kind::Merged(_) | Kind::Group { .. } => 64,
        };
        // At least one: a batch receive returns one message or more.
        backlog.clamp(1, MAX_HINT) as usize
    }

    async fn recv_into(&self, max: usize, out: &mut Vec<TopicMessage>) -> Result<usize, RecvError> {
        let mut wait = self.waiter();
        poll_fn(|cx| self.poll_batch(cx, &mut wait, max, out)).await
    }

    /// Receives the next message if one is available now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when none is; otherwise as [`recv`](Self::recv).
    pub async fn try_recv(&self) -> Result<TopicMessage, TryRecvError> {
        self.try_recv_now()
    }

    /// [`try_recv`](Self::try_recv) without the `async` 1.0.0 kept.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_now(&self) -> Result<TopicMessage, TryRecvError> {
        if let Some(m) = self.stash.lock().pop_front() {
            return Ok(m);
        }
        match &self.kind {
            Kind::Broadcast(cursor) => cursor
                .lock()
                .try_recv()
                .map(|d| self.label(TopicMessage::delivered(&self.topic, d))),
            Kind::Merged(cursors) => match cursors.lock().try_recv() {
                Ok((p, d)) => {
                    let mut m = TopicMessage::delivered(&self.topic, d);
                    m.partition = Some(p);
                    Ok(m)
                }
                Err(memq_partition::TryRecvError::Empty) => Err(TryRecvError::Empty),
                Err(memq_partition::TryRecvError::Lagged { skipped, .. }) => {
                    Err(TryRecvError::Lagged(skipped))
                }
                Err(_) => Err(TryRecvError::Closed),
            },
            Kind::Group { member, .. } => member.try_recv().map(|c| self.claimed(c)),
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
    /// Outside a Tokio runtime with the time driver enabled.
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Option<TopicMessage>, RecvError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(r) => r.map(Some),
            Err(_elapsed) => Ok(None),
        }
    }

    /// Waits until at least one message is available, then returns up to
    /// `max` (an empty `Vec` only when `max` is 0).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), only when no message was received; a lag
    /// found after some messages is reported by the next call.
    pub async fn recv_batch(&self, max: usize) -> Result<Vec<TopicMessage>, RecvError> {
        let mut out = Vec::with_capacity(max.min(self.backlog_hint()));
        self.recv_into(max, &mut out).await?;
        Ok(out)
    }

    /// Waits for the next message and reads it as a `T` (see
    /// [`TopicMessage::deserialize`]).
    ///
    /// # Errors
    ///
    /// [`RecvTypedError::Recv`] as [`recv`](Self::recv);
    /// [`RecvTypedError::Decode`] when the message is not a valid `T` (it
    /// is consumed; the error names its offset).
    pub async fn recv_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<T, RecvTypedError> {
        Ok(self.recv().await?.deserialize()?)
    }

    /// Waits for at least one message, then reads up to `max` as `T`s.
    ///
    /// # Errors
    ///
    /// As [`recv_typed`](Self::recv_typed). When a message in the batch
    /// fails to decode, the messages before it are returned and the failing
    /// one is reported by the next call, so nothing is dropped silently.
    pub async fn recv_batch_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        max: usize,
    ) -> Result<Vec<T>, RecvTypedError> {
        match &self.kind {
            Kind::Broadcast(cursor) => {
                let mut waiter = Waiter::new();
                let mut raw = Vec::new();
                let mut cursor = poll_fn(|cx| {
                    let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
                    let mut cursor = cursor.lock();
                    match cursor.poll_recv_batch(cx, &mut waiter, max, &mut raw) {
                        Poll::Ready(r) => {
                            coop.made_progress();
                            Poll::Ready(r.map(|_| cursor))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await?;
                let mut values = Vec::with_capacity(raw.len());
                let mut raw = raw.into_iter();
                while let Some(d) = raw.next() {
                    let msg = TopicMessage::delivered(&self.topic, d);
                    match msg.deserialize() {
                        Ok(v) => values.push(v),
                        Err(e) if values.is_empty() => {
                            cursor.unread(raw);
                            return Err(e.into());
                        }
                        Err(_) => {
                            // Deliver what decoded; the failing message
                            // comes first next time and is reported then.
                            cursor.unread(std::iter::once(msg.into_delivered()).chain(raw));
                            break;
                        }
                    }
                }
                Ok(values)
            }
            Kind::Merged(_) | Kind::Group { .. } => {
                let stash = &self.stash;
                let mut msgs = Vec::new();
                self.recv_into(max, &mut msgs).await?;
                let mut values = Vec::with_capacity(msgs.len());
                let mut msgs = msgs.into_iter();
                while let Some(msg) = msgs.next() {
                    match msg.deserialize() {
                        Ok(v) => values.push(v),
                        Err(e) if values.is_empty() => {
                            prepend(&mut stash.lock(), msgs);
                            return Err(e.into());
                        }
                        Err(_) => {
                            prepend(&mut stash.lock(), std::iter::once(msg).chain(msgs));
                            break;
                        }
                    }
                }
                Ok(values)
            }
        }
    }

    /// The messages of this subscriber as a `Stream`.
    ///
    /// Yields `Err(Lagged(n))` where messages were evicted unread and goes
    /// on; ends when the topic is closed and drained.
    pub fn stream(&self) -> impl Stream<Item = Result<TopicMessage, RecvError>> + Send + Unpin + '_ {
        MessageStream {
            sub: self,
            wait: self.waiter(),
            buf: Vec::with_capacity(1),
            done: false,
        }
    }

    /// Moves the subscriber (or its whole group) so that the next message
    /// received is `offset`. On a partitioned topic this moves every
    /// partition to `offset`; see [`seek_partition`](Self::seek_partition).
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] unless the offset is retained or is the next one to
    /// be published (in every partition).
    pub async fn seek(&self, offset: u64) -> Result<(), OutOfRange> {
        self.stash.lock().clear();
        for p in 0..self.partitions() {
            self.seek_in(p, offset).map_err(|e| match e {
                crate::error::TopicError::OutOfRange(r) => r,
                _ => OutOfRange {
                    requested: offset,
                    low: 0,
                    high: 0,
                },
            })?;
        }
        Ok(())
    }

    /// Moves this subscriber (or its group) in one partition.
    ///
    /// # Errors
    ///
    /// [`TopicError::OutOfRange`](crate::TopicError::OutOfRange) outside
    /// the partition's window, [`TopicError::NoSuchPartition`](crate::TopicError::NoSuchPartition).
    pub async fn seek_partition(
        &self,
        partition: usize,
        offset: u64,
    ) -> Result<(), crate::error::TopicError> {
        self.stash
            .lock()
            .retain(|m| m.partition.unwrap_or(0) != partition);
        self.seek_in(partition, offset)
    }

    fn seek_in(&self, partition: usize, offset: u64) -> Result<(), crate::error::TopicError> {
        use crate::error::TopicError;
        let partitions = self.partitions();
        let missing = TopicError::NoSuchPartition {
            partition,
            partitions,
        };
        match &self.kind {
            Kind::Broadcast(cursor) if partition == 0 => Ok(cursor.lock().seek(offset)?),
            Kind::Broadcast(_) => Err(missing),
            Kind::Merged(cursors) => match cursors.lock().cursor_mut(partition) {
                Some(c) => Ok(c.seek(offset)?),
                None => Err(missing),
            },
            Kind::Group { member, .. } => member.seek(partition, offset).map_err(|e| match e {
                memq_groups::GroupError::OutOfRange { range, .. } => TopicError::OutOfRange(range),
                _ => missing,
            }),
        }
    }

    /// How many partitions this subscriber reads (1 for a plain topic).
    pub fn partitions(&self) -> usize {
        match &self.kind {
            Kind::Broadcast(_) => 1,
            Kind::Merged(cursors) => cursors.lock().len(),
            Kind::Group { member, .. } => member.partitions(),
        }
    }

    /// Records that everything up to and including `offset` is processed.
    /// Does not move the subscriber (1.0.0 treated commit as seek). For a
    /// group member the commit is the group's; with manual
    /// acknowledgement it acknowledges every message up to `offset` this
    /// member holds. On a partitioned topic this commits `offset` in every
    /// partition that has published it; see
    /// [`commit_partition`](Self::commit_partition).
    ///
    /// # Errors
    ///
    /// [`CommitError::NotPublished`] for an offset not yet published (in
    /// any partition).
    pub async fn commit(&self, offset: u64) -> Result<(), CommitError> {
        let mut result = Err(CommitError::NotPublished { offset, high: 0 });
        for p in 0..self.partitions() {
            match self.commit_in(p, offset) {
                Ok(()) => result = Ok(()),
                Err(e) if result.is_err() => result = Err(e),
                Err(_) => {}
            }
        }
        result
    }

    /// Records that everything up to and including `offset` of `partition`
    /// is processed.
    ///
    /// # Errors
    ///
    /// [`CommitError::NotPublished`] for an offset not yet published there
    /// (or a partition this subscriber does not read).
    pub async fn commit_partition(&self, partition: usize, offset: u64) -> Result<(), CommitError> {
        self.commit_in(partition, offset)
    }

    fn commit_in(&self, partition: usize, offset: u64) -> Result<(), CommitError> {
        let missing = CommitError::NotPublished { offset, high: 0 };
        match &self.kind {
            Kind::Broadcast(cursor) if partition == 0 => cursor.lock().commit(offset),
            Kind::Broadcast(_) => Err(missing),
            Kind::Merged(cursors) => match cursors.lock().cursor_mut(partition) {
                Some(c) => c.commit(offset),
                None => Err(missing),
            },
            Kind::Group { member, .. } => member.commit(partition, offset).map_err(|e| match e {
                AckError::NotPublished { offset, high, .. } => CommitError::NotPublished { offset, high },
                _ => missing,
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
    /// member; [`AckError::AutoAck`] outside manual mode (including for a
    /// subscriber that is not in a group).
    pub fn ack(&self, message: &TopicMessage) -> Result<(), AckError> {
        match &self.kind {
            Kind::Group { member, .. } => member.ack(message.partition.unwrap_or(0), message.offset()),
            _ => Err(AckError::AutoAck),
        }
    }

    /// The offset of the next message this subscriber (or its group) will
    /// receive; `None` on a partitioned topic (see
    /// [`partition_offset`](Self::partition_offset)).
    pub async fn current_offset(&self) -> Option<u64> {
        if self.partitions() > 1 {
            return None;
        }
        self.partition_offset(0)
    }

    /// The next offset this subscriber (or its group) will receive from
    /// `partition`.
    pub fn partition_offset(&self, partition: usize) -> Option<u64> {
        match &self.kind {
            Kind::Broadcast(cursor) => (partition == 0).then(|| cursor.lock().position()),
            Kind::Merged(cursors) => cursors.lock().cursor(partition).map(|c| c.position()),
            Kind::Group { member, .. } => member.position(partition),
        }
    }

    /// The last offset committed through this subscriber (or its group);
    /// for a partitioned topic, partition 0's.
    pub fn committed_offset(&self) -> Option<u64> {
        match &self.kind {
            Kind::Broadcast(cursor) => cursor.lock().committed(),
            Kind::Merged(cursors) => cursors.lock().cursor(0).and_then(|c| c.committed()),
            Kind::Group { member, .. } => member.stats().committed.first().copied().flatten(),
        }
    }

    /// Messages published that this subscriber (or its group) has not
    /// processed yet, over all its partitions.
    pub fn lag(&self) -> u64 {
        match &self.kind {
            Kind::Broadcast(cursor) => cursor.lock().lag(),
            Kind::Merged(cursors) => cursors.lock().lag(),
            Kind::Group { member, .. } => member.stats().lag,
        }
    }
}

fn prepend(stash: &mut VecDeque<TopicMessage>, msgs: impl DoubleEndedIterator<Item = TopicMessage>) {
    for m in msgs.rev() {
        stash.push_front(m);
    }
}

struct MessageStream<'a> {
    sub: &'a Subscriber,
    wait: Wait,
    buf: Vec<TopicMessage>,
    done: bool,
}

impl Stream for MessageStream<'_> {
    type Item = Result<TopicMessage, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.sub.poll_batch(cx, &mut this.wait, 1, &mut this.buf) {
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
