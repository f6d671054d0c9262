//! Backend-neutral traits: the publish/subscribe API as an in-memory or a
//! networked backend can implement it.
//!
//! The inherent methods of [`Publisher`] and [`Subscriber`] are what most
//! code calls (they hand failed messages back and need no trait import);
//! these traits exist so code can be generic over the backend. Their
//! signatures are async, fallible and mention no in-memory internals.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::format::SerializationFormat;
use crate::message::TopicMessage;
use crate::publisher::Publisher;
use crate::queue::MessageQueue;
use crate::subscriber::Subscriber;

/// What every publisher has: its topic (1.0.0's `MessagePublisher`).
pub trait MessagePublisher: Send + Sync {
    /// The topic this publisher publishes to.
    fn topic(&self) -> &str;
}

/// Publishing to one topic.
pub trait AsyncMessagePublisher: Send + Sync {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The topic this publisher publishes to.
    fn topic(&self) -> &str;

    /// Publishes a value; returns its offset.
    fn publish<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Publishes values as one contiguous run of offsets.
    fn publish_batch<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> impl Future<Output = Result<Range<u64>, Self::Error>> + Send;

    /// Publishes bytes in `format` (a `Vec<u8>`, `Bytes`, `String`, ...).
    fn publish_bytes(
        &self,
        data: impl Into<Bytes> + Send,
        format: SerializationFormat,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Publishes text that is already serialized (its format guessed: JSON
    /// when it starts with `{` or `[`, else bincode).
    fn publish_serialized(&self, payload: String) -> impl Future<Output = Result<u64, Self::Error>> + Send;
}

/// Receiving from one topic.
pub trait MessageSubscriber: Send + Sync {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The topic this subscriber reads.
    fn topic(&self) -> &str;

    /// Waits for the next message.
    fn recv(&self) -> impl Future<Output = Result<TopicMessage, Self::Error>> + Send;

    /// Receives the next message if one is available now.
    fn try_recv(&self) -> impl Future<Output = Result<TopicMessage, Self::Error>> + Send;

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    fn recv_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<TopicMessage>, Self::Error>> + Send;

    /// Waits for at least one message, returns up to `max`.
    fn recv_batch(&self, max: usize) -> impl Future<Output = Result<Vec<TopicMessage>, Self::Error>> + Send;

    /// Waits for the next message and reads it as a `T`.
    fn recv_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> impl Future<Output = Result<T, Self::Error>> + Send;

    /// Waits for at least one message, reads up to `max` as `T`s.
    fn recv_batch_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<T>, Self::Error>> + Send;

    /// The offset of the next message to be received.
    fn current_offset(&self) -> impl Future<Output = Option<u64>> + Send;

    /// Records that everything up to and including `offset` is processed.
    fn commit(&self, offset: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Moves to `offset`.
    fn seek(&self, offset: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Moves back to the oldest message retained.
    fn reset_offset(&self) -> impl Future<Output = ()> + Send;

    /// The messages as a stream.
    fn stream(&self) -> impl Stream<Item = Result<TopicMessage, Self::Error>> + Send + '_;
}

/// Creating publishers and subscribers by topic name.
pub trait QueueManager: Send + Sync {
    /// The publisher type.
    type Publisher: AsyncMessagePublisher;
    /// The subscriber type.
    type Subscriber: MessageSubscriber;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A publisher for `topic`.
    fn create_publisher(&self, topic: String) -> impl Future<Output = Self::Publisher> + Send;
    /// A subscriber for `topic`.
    fn create_subscriber(
        &self,
        topic: String,
    ) -> impl Future<Output = Result<Self::Subscriber, Self::Error>> + Send;
    /// The names of all topics.
    fn list_topics(&self) -> impl Future<Output = Vec<String>> + Send;
}

impl MessagePublisher for Publisher {
    fn topic(&self) -> &str {
        Publisher::topic(self)
    }
}

impl AsyncMessagePublisher for Publisher {
    type Error = Error;

    fn topic(&self) -> &str {
        Publisher::topic(self)
    }

    async fn publish<T: Serialize + Send + Sync + 'static>(&self, data: T) -> Result<u64, Error> {
        Ok(Publisher::publish(self, data).await?)
    }

    async fn publish_batch<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> Result<Range<u64>, Error> {
        Ok(Publisher::publish_batch(self, data).await?)
    }

    async fn publish_bytes(
        &self,
        data: impl Into<Bytes> + Send,
        format: SerializationFormat,
    ) -> Result<u64, Error> {
        Ok(Publisher::publish_bytes(self, data, format).await?)
    }

    async fn publish_serialized(&self, payload: String) -> Result<u64, Error> {
        Ok(Publisher::publish_serialized(self, payload).await?)
    }
}

impl MessageSubscriber for Subscriber {
    type Error = Error;

    fn topic(&self) -> &str {
        Subscriber::topic(self)
    }

    async fn recv(&self) -> Result<TopicMessage, Error> {
        Ok(Subscriber::recv(self).await?)
    }

    async fn try_recv(&self) -> Result<TopicMessage, Error> {
        Ok(Subscriber::try_recv_now(self)?)
    }

    async fn recv_timeout(&self, timeout: Duration) -> Result<Option<TopicMessage>, Error> {
        Ok(Subscriber::recv_timeout(self, timeout).await?)
    }

    async fn recv_batch(&self, max: usize) -> Result<Vec<TopicMessage>, Error> {
        Ok(Subscriber::recv_batch(self, max).await?)
    }

    async fn recv_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self) -> Result<T, Error> {
        Ok(Subscriber::recv_typed(self).await?)
    }

    async fn recv_batch_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        max: usize,
    ) -> Result<Vec<T>, Error> {
        Ok(Subscriber::recv_batch_typed(self, max).await?)
    }

    async fn current_offset(&self) -> Option<u64> {
        Subscriber::current_offset(self).await
    }

    async fn commit(&self, offset: u64) -> Result<(), Error> {
        Ok(Subscriber::commit(self, offset).await?)
    }

    async fn seek(&self, offset: u64) -> Result<(), Error> {
        Ok(Subscriber::seek(self, offset).await?)
    }

    async fn reset_offset(&self) {
        Subscriber::reset_offset(self).await;
    }

    fn stream(&self) -> impl Stream<Item = Result<TopicMessage, Error>> + Send + '_ {
        MapErr(Subscriber::stream(self))
    }
}

struct MapErr<S>(S);

impl<S, T, E> Stream for MapErr<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: Into<Error>,
{
    type Item = Result<T, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|o| o.map(|r| r.map_err(Into::into)))
    }
}

impl QueueManager for MessageQueue {
    type Publisher = Publisher;
    type Subscriber = Subscriber;
    type Error = Error;

    async fn create_publisher(&self, topic: String) -> Publisher {
        self.publisher(topic)
    }

    async fn create_subscriber(&self, topic: String) -> Result<Subscriber, Error> {
        Ok(self.subscriber(topic).await?)
    }

    async fn list_topics(&self) -> Vec<String> {
        MessageQueue::list_topics(self).await
    }
}
