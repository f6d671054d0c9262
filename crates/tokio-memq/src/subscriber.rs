//! Receiving from a topic.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use memq_core::{Cursor, Delivered, Waiter};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use crate::error::{CommitError, OutOfRange, RecvError, RecvTypedError, TryRecvError};
use crate::message::{Entry, TopicMessage};

/// Receives messages from one topic, in offset order.
///
/// Every subscriber sees every message from its start position, except
/// messages that expire (skipped; counted in the topic's stats) and
/// messages evicted before it read them: then the next receive fails with
/// [`RecvError::Lagged`] carrying the exact number skipped, and the one
/// after continues at the oldest retained message.
///
/// All receive methods are cancel safe: a receive future dropped before it
/// completes (the losing branch of a `tokio::select!`, a timeout) loses no
/// message. Methods take `&self`, so a subscriber can be shared; tasks
/// sharing one subscriber share its position.
///
/// Dropping a subscriber unregisters it, so it no longer holds back
/// publishers of a topic with `lru_enabled: false`.
pub struct Subscriber {
    topic: Arc<str>,
    cursor: Mutex<Cursor<Entry>>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("cursor", &*self.cursor.lock())
            .finish()
    }
}

/// Appends delivered entries to a `Vec<TopicMessage>`.
struct Collect<'a> {
    topic: &'a Arc<str>,
    out: &'a mut Vec<TopicMessage>,
}

impl Extend<Delivered<Entry>> for Collect<'_> {
    fn extend<I: IntoIterator<Item = Delivered<Entry>>>(&mut self, iter: I) {
        let topic = self.topic;
        self.out
            .extend(iter.into_iter().map(|d| TopicMessage::delivered(topic, d)));
    }
}

impl Subscriber {
    pub(crate) fn new(topic: &str, cursor: Cursor<Entry>) -> Self {
        Subscriber {
            topic: topic.into(),
            cursor: Mutex::new(cursor),
        }
    }

    /// The topic this subscriber reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut Waiter<Entry>,
    ) -> Poll<Result<TopicMessage, RecvError>> {
        self.cursor
            .lock()
            .poll_recv(cx, waiter)
            .map(|r| r.map(|d| TopicMessage::delivered(&self.topic, d)))
    }

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] when messages were evicted before this
    /// subscriber read them (the next call continues); [`RecvError::Closed`]
    /// when the topic was deleted or the queue dropped and everything
    /// retained has been received.
    pub async fn recv(&self) -> Result<TopicMessage, RecvError> {
        let mut waiter = Waiter::new();
        poll_fn(|cx| self.poll_recv(cx, &mut waiter)).await
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
        self.cursor
            .lock()
            .try_recv()
            .map(|d| TopicMessage::delivered(&self.topic, d))
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
        let mut waiter = Waiter::new();
        let mut out = Vec::with_capacity(max.min(1024));
        poll_fn(|cx| {
            let mut collect = Collect {
                topic: &self.topic,
                out: &mut out,
            };
            self.cursor
                .lock()
                .poll_recv_batch(cx, &mut waiter, max, &mut collect)
        })
        .await?;
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
        let mut waiter = Waiter::new();
        let mut raw = Vec::new();
        let mut cursor = poll_fn(|cx| {
            let mut cursor = self.cursor.lock();
            match cursor.poll_recv_batch(cx, &mut waiter, max, &mut raw) {
                Poll::Ready(r) => Poll::Ready(r.map(|_| cursor)),
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
                    // Deliver what decoded; the failing message comes first
                    // next time and is reported then.
                    cursor.unread(std::iter::once(msg.into_delivered()).chain(raw));
                    break;
                }
            }
        }
        Ok(values)
    }

    /// The messages of this subscriber as a `Stream`.
    ///
    /// Yields `Err(Lagged(n))` where messages were evicted unread and goes
    /// on; ends when the topic is closed and drained.
    pub fn stream(&self) -> impl Stream<Item = Result<TopicMessage, RecvError>> + Send + Unpin + '_ {
        MessageStream {
            sub: self,
            waiter: Waiter::new(),
            done: false,
        }
    }

    /// Moves the subscriber so that the next message received is `offset`.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] unless the offset is retained or is the next one to
    /// be published.
    pub async fn seek(&self, offset: u64) -> Result<(), OutOfRange> {
        self.cursor.lock().seek(offset)
    }

    /// Records that everything up to and including `offset` is processed.
    /// Does not move the subscriber (1.0.0 treated commit as seek).
    ///
    /// # Errors
    ///
    /// [`CommitError::NotPublished`] for an offset not yet published.
    pub async fn commit(&self, offset: u64) -> Result<(), CommitError> {
        self.cursor.lock().commit(offset)
    }

    /// The offset of the next message this subscriber will receive.
    pub async fn current_offset(&self) -> Option<u64> {
        Some(self.cursor.lock().position())
    }

    /// The last offset committed through this subscriber.
    pub fn committed_offset(&self) -> Option<u64> {
        self.cursor.lock().committed()
    }

    /// Messages published that this subscriber has not received yet.
    pub fn lag(&self) -> u64 {
        self.cursor.lock().lag()
    }
}

struct MessageStream<'a> {
    sub: &'a Subscriber,
    waiter: Waiter<Entry>,
    done: bool,
}

impl Stream for MessageStream<'_> {
    type Item = Result<TopicMessage, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.sub.poll_recv(cx, &mut this.waiter) {
            Poll::Ready(Err(RecvError::Closed)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Pending,
        }
    }
}
