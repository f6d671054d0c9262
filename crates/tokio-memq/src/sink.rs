//! Publishing from a `Stream`: a [`futures_sink::Sink`] over a publisher.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_sink::Sink;
use serde::Serialize;

use crate::error::PublishError;
use crate::publisher::Publisher;

type InFlight<T> = Pin<Box<dyn Future<Output = Result<u64, PublishError<T>>> + Send + Sync>>;

/// A [`Sink`] of `T` values that publishes each with
/// [`Publisher::publish`]: see [`Publisher::sink`].
///
/// A value is published at once when the topic has room; on a full topic
/// with backpressure (`lru_enabled: false`) the sink holds that one value
/// and is not ready for the next until it is published, so a `forward`
/// waits as `publish` does (over Redis every value is held until the
/// server has it). Like `publish`, the sink spends tokio's cooperative
/// budget (every fourth value), so a `forward` from a stream that is
/// always ready lets the other tasks of its thread run. An error hands the value back
/// ([`PublishError`]) and leaves the sink usable. Values sent without
/// waiting for readiness (a caller breaking the `Sink` contract) wait
/// behind the held one and are published in order; one that fails is
/// handed back by the flush that tried it, and the flushes after it go on
/// with the rest. When the held value fails in `poll_ready`, the error
/// hands that value back; the value a `SinkExt::send` (or `feed`) was
/// about to start is dropped by `futures`, which gives it to the sink only
/// once it is ready: drive `poll_ready` yourself to keep it.
///
/// The held value is published by the sink's own next `poll_ready`,
/// `poll_flush` or `poll_close` (a `send` future dropped while it waited
/// leaves it held, to go out exactly once with the next of those), not
/// by itself when room appears. Dropping a sink that still holds values
/// drops them unpublished, as an unflushed `Sink` does: flush or close it
/// first. `poll_close` publishes what is held and leaves the sink usable
/// (a value sent after it is published too); it does not close the topic.
///
/// # Examples
///
/// ```
/// use futures_util::SinkExt;
/// use tokio_memq::MessageQueue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("t").await?;
/// let mut sink = mq.publisher("t").sink::<&str>();
/// sink.send("one").await?;
/// sink.send_all(&mut futures_util::stream::iter(["two", "three"].map(Ok))).await?;
/// assert_eq!(sub.recv_batch_typed::<String>(10).await?, ["one", "two", "three"]);
/// # Ok(()) }
/// ```
#[must_use = "sinks do nothing unless used"]
pub struct PublishSink<T> {
    /// Shared with the publishes in flight, so that they bind this
    /// publisher to its topic (a clone made before the first publish
    /// would bind on its own, and a deleted topic's next incarnation could
    /// take the sink's values).
    publisher: Arc<Publisher>,
    in_flight: Option<InFlight<T>>,
    /// Values sent while one was held, in order.
    queued: VecDeque<T>,
}

impl<T> PublishSink<T> {
    pub(crate) fn new(publisher: Publisher) -> Self {
        PublishSink {
            publisher: Arc::new(publisher),
            in_flight: None,
            queued: VecDeque::new(),
        }
    }

    /// The publisher the sink publishes with.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// let mq = MessageQueue::new();
    /// let sink = mq.publisher("out").sink::<u32>();
    /// assert_eq!(sink.publisher().topic(), "out");
    /// ```
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Drives the publish the sink holds, then those of the values queued
    /// behind it, to their end; stops at the first that fails (handing its
    /// value back), leaving the rest for the next call.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PublishError<T>>>
    where
        T: Serialize + Send + Sync + 'static,
    {
        loop {
            if let Some(publish) = &mut self.in_flight {
                let done = std::task::ready!(publish.as_mut().poll(cx));
                self.in_flight = None;
                done?;
            }
            let Some(item) = self.queued.pop_front() else {
                return Poll::Ready(Ok(()));
            };
            let publisher = Arc::clone(&self.publisher);
            self.in_flight = Some(Box::pin(async move { publisher.publish(item).await }));
        }
    }
}

// The sink is never pinned structurally: queued values live on the heap
// and are only moved out whole.
impl<T> Unpin for PublishSink<T> {}

impl<T> fmt::Debug for PublishSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishSink")
            .field("publisher", &self.publisher)
            .field(
                "waiting",
                &(usize::from(self.in_flight.is_some()) + self.queued.len()),
            )
            .finish()
    }
}

impl<T: Serialize + Send + Sync + 'static> Sink<T> for PublishSink<T> {
    type Error = PublishError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_in_flight(cx))?;
        // As `publish` does: a loop of sends that never wait must still let
        // other tasks run (yielding here, before the next value is taken).
        if crate::publisher::budget_due() {
            std::task::ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if this.in_flight.is_some() || !this.queued.is_empty() {
            // Called without `poll_ready` first (a caller breaking the
            // `Sink` contract): publish after the held and queued values,
            // in order, rather than drop any.
            this.queued.push_back(item);
            return Ok(());
        }
        let item = if this.publisher.is_remote() {
            // Over Redis a publish always waits for the server.
            item
        } else {
            match this.publisher.try_publish(item) {
                Ok(_) => return Ok(()),
                // No room now: wait for it as `publish` does, driven by
                // `poll_ready` / `poll_flush`.
                Err(PublishError::Full(item)) => item,
                Err(e) => return Err(e),
            }
        };
        let publisher = Arc::clone(&this.publisher);
        this.in_flight = Some(Box::pin(async move { publisher.publish(item).await }));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_in_flight(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_in_flight(cx)
    }
}
