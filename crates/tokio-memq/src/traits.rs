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
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessagePublisher, MessageQueue};
///
/// fn describe(publisher: &impl MessagePublisher) -> String {
///     format!("publishes to {}", publisher.topic())
/// }
///
/// let mq = MessageQueue::new();
/// assert_eq!(describe(&mq.publisher("orders")), "publishes to orders");
/// ```
pub trait MessagePublisher: Send + Sync {
    /// The topic this publisher publishes to.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessagePublisher, MessageQueue};
    ///
    /// let mq = MessageQueue::new();
    /// let publishers = [mq.publisher("a"), mq.publisher("b")];
    /// let topics: Vec<&str> = publishers.iter().map(MessagePublisher::topic).collect();
    /// assert_eq!(topics, ["a", "b"]);
    /// ```
    fn topic(&self) -> &str;
}

/// Publishing to one topic.
///
/// Write code against this trait to keep it independent of the backend;
/// the in-memory [`Publisher`] implements it with [`Error`] as its error.
///
/// # Examples
///
/// ```
/// use std::ops::Range;
/// use tokio_memq::{AsyncMessagePublisher, MessageQueue};
///
/// async fn publish_readings<P: AsyncMessagePublisher>(p: &P, readings: Vec<f64>) -> Result<Range<u64>, P::Error> {
///     p.publish(format!("{} readings follow", readings.len())).await?;
///     p.publish_batch(readings).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("sensor").await?;
/// assert_eq!(publish_readings(&mq.publisher("sensor"), vec![20.5, 21.0]).await?, 1..3);
/// assert_eq!(sub.recv().await?.deserialize::<String>()?, "2 readings follow");
/// # Ok(()) }
/// ```
pub trait AsyncMessagePublisher: Send + Sync {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The topic this publisher publishes to.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{AsyncMessagePublisher, MessageQueue};
    ///
    /// fn topic_of<P: AsyncMessagePublisher>(publisher: &P) -> &str {
    ///     publisher.topic()
    /// }
    ///
    /// let mq = MessageQueue::new();
    /// assert_eq!(topic_of(&mq.publisher("audit")), "audit");
    /// ```
    fn topic(&self) -> &str;

    /// Publishes a value; returns its offset.
    ///
    /// # Examples
    ///
    /// The in-memory backend's error keeps what went wrong, not the value:
    ///
    /// ```
    /// use tokio_memq::{AsyncMessagePublisher, Error, MessageQueue, PublishErrorKind};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("greetings");
    /// assert_eq!(AsyncMessagePublisher::publish(&publisher, "hello").await?, 0);
    /// assert_eq!(AsyncMessagePublisher::publish(&publisher, "again").await?, 1);
    ///
    /// mq.close();
    /// let err = AsyncMessagePublisher::publish(&publisher, "too late").await.unwrap_err();
    /// assert_eq!(err, Error::Publish(PublishErrorKind::Closed));
    /// # Ok(()) }
    /// ```
    fn publish<T: Serialize + Send + Sync + 'static>(
        &self,
        data: T,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Publishes values as one contiguous run of offsets.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{AsyncMessagePublisher, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// let publisher = mq.publisher("jobs");
    /// assert_eq!(AsyncMessagePublisher::publish_batch(&publisher, vec!["a", "b", "c"]).await?, 0..3);
    /// assert_eq!(AsyncMessagePublisher::publish_batch(&publisher, vec!["d"]).await?, 3..4);
    /// assert_eq!(sub.recv_batch_typed::<String>(10).await?, ["a", "b", "c", "d"]);
    /// # Ok(()) }
    /// ```
    fn publish_batch<T: Serialize + Send + Sync + 'static>(
        &self,
        data: Vec<T>,
    ) -> impl Future<Output = Result<Range<u64>, Self::Error>> + Send;

    /// Publishes bytes in `format` (a `Vec<u8>`, `Bytes`, `String`, ...).
    ///
    /// # Examples
    ///
    /// A [`Bytes`] payload is shared with every subscriber, not copied:
    ///
    /// ```
    /// use tokio_memq::{AsyncMessagePublisher, Bytes, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("frames").await?;
    /// let frame = Bytes::from(vec![0xAB; 4096]);
    /// AsyncMessagePublisher::publish_bytes(&mq.publisher("frames"), frame.clone(), SerializationFormat::Raw).await?;
    ///
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.format, SerializationFormat::Raw);
    /// assert_eq!(msg.bytes().unwrap().as_ptr(), frame.as_ptr(), "the same memory");
    /// # Ok(()) }
    /// ```
    fn publish_bytes(
        &self,
        data: impl Into<Bytes> + Send,
        format: SerializationFormat,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Publishes text that is already serialized (its format guessed: JSON
    /// when it starts with `{` or `[`, else bincode).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{AsyncMessagePublisher, MessageQueue, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// let publisher = mq.publisher("events");
    /// AsyncMessagePublisher::publish_serialized(&publisher, r#"[1, 2, 3]"#.to_string()).await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.format, SerializationFormat::Json);
    /// assert_eq!(msg.deserialize::<Vec<u8>>()?, [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    fn publish_serialized(&self, payload: String) -> impl Future<Output = Result<u64, Self::Error>> + Send;
}

/// Receiving from one topic.
///
/// Write consumers against this trait to keep them independent of the
/// backend; the in-memory [`Subscriber`] implements it with [`Error`] as
/// its error.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, MessageSubscriber};
///
/// async fn sum<S: MessageSubscriber>(sub: &S, count: usize) -> Result<u64, S::Error> {
///     let mut total = 0;
///     for _ in 0..count {
///         total += sub.recv_typed::<u64>().await?;
///     }
///     Ok(total)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("amounts").await?;
/// mq.publisher("amounts").publish_batch(vec![5u64, 10, 20]).await?;
/// assert_eq!(sum(&sub, 3).await?, 35);
/// # Ok(()) }
/// ```
pub trait MessageSubscriber: Send + Sync {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The topic this subscriber reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, MessageSubscriber};
    ///
    /// fn topic_of<S: MessageSubscriber>(sub: &S) -> &str {
    ///     sub.topic()
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// assert_eq!(topic_of(&mq.subscriber("metrics").await?), "metrics");
    /// # Ok(()) }
    /// ```
    fn topic(&self) -> &str;

    /// Waits for the next message.
    ///
    /// # Examples
    ///
    /// A receive loop that reads until the topic closes. When the topic
    /// evicted messages this subscriber had not read, the receive fails with
    /// [`RecvError::Lagged`](crate::RecvError::Lagged) and the count; the
    /// loop notes it and goes on with the oldest retained message.
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, MessageSubscriber, RecvError, TopicOptions};
    ///
    /// async fn drain<S: MessageSubscriber<Error = Error>>(sub: &S) -> Result<(Vec<u64>, u64), Error> {
    ///     let (mut read, mut missed) = (Vec::new(), 0);
    ///     loop {
    ///         match sub.recv().await {
    ///             Ok(msg) => read.push(msg.offset()),
    ///             Err(Error::Recv(RecvError::Lagged(n))) => missed += n,
    ///             Err(Error::Recv(RecvError::Closed)) => return Ok((read, missed)),
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// let sub = mq.subscriber_with_options("ticks", options).await?;
    /// for i in 0..5u32 {
    ///     mq.publisher("ticks").publish(i).await?; // only the last 2 are retained
    /// }
    /// drop(mq); // nobody can publish any more: the topic closes
    /// assert_eq!(drain(&sub).await?, (vec![3, 4], 3));
    /// # Ok(()) }
    /// ```
    fn recv(&self) -> impl Future<Output = Result<TopicMessage, Self::Error>> + Send;

    /// Receives the next message if one is available now.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, MessageSubscriber, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// let empty = MessageSubscriber::try_recv(&sub).await;
    /// assert_eq!(empty.unwrap_err(), Error::TryRecv(TryRecvError::Empty));
    /// mq.publisher("jobs").publish("job 1").await?;
    /// assert_eq!(MessageSubscriber::try_recv(&sub).await?.offset(), 0);
    /// # Ok(()) }
    /// ```
    fn try_recv(&self) -> impl Future<Output = Result<TopicMessage, Self::Error>> + Send;

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{MessageQueue, MessageSubscriber};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("alerts").await?;
    /// let wait = Duration::from_secs(1);
    /// assert!(MessageSubscriber::recv_timeout(&sub, wait).await?.is_none());
    /// mq.publisher("alerts").publish("disk full").await?;
    /// let msg = MessageSubscriber::recv_timeout(&sub, wait).await?.expect("one was published");
    /// assert_eq!(msg.deserialize::<String>()?, "disk full");
    /// # Ok(()) }
    /// ```
    fn recv_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<TopicMessage>, Self::Error>> + Send;

    /// Waits for at least one message, returns up to `max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, MessageSubscriber};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("log").await?;
    /// mq.publisher("log").publish_batch(vec!["a", "b", "c", "d", "e"]).await?;
    /// let first = MessageSubscriber::recv_batch(&sub, 3).await?;
    /// assert_eq!(first.iter().map(|m| m.offset()).collect::<Vec<_>>(), [0, 1, 2]);
    /// assert_eq!(MessageSubscriber::recv_batch(&sub, 100).await?.len(), 2, "what is there, not 100");
    /// # Ok(()) }
    /// ```
    fn recv_batch(&self, max: usize) -> impl Future<Output = Result<Vec<TopicMessage>, Self::Error>> + Send;

    /// Waits for the next message and reads it as a `T`.
    ///
    /// # Examples
    ///
    /// A payload that is not a `T` is consumed and reported with its
    /// offset:
    ///
    /// ```
    /// use tokio_memq::{DecodeErrorKind, Error, MessageQueue, MessageSubscriber};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("counts").await?;
    /// let publisher = mq.publisher("counts");
    /// publisher.publish(7i32).await?;
    /// publisher.publish("seven").await?;
    /// assert_eq!(MessageSubscriber::recv_typed::<i64>(&sub).await?, 7, "an i32 reads as an i64");
    /// let Err(Error::Decode(e)) = MessageSubscriber::recv_typed::<i64>(&sub).await else { panic!() };
    /// assert_eq!((e.kind(), e.offset()), (DecodeErrorKind::TypeMismatch, Some(1)));
    /// # Ok(()) }
    /// ```
    fn recv_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
    ) -> impl Future<Output = Result<T, Self::Error>> + Send;

    /// Waits for at least one message, reads up to `max` as `T`s.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, MessageSubscriber};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("temperatures").await?;
    /// mq.publisher("temperatures").publish_batch(vec![18u16, 19, 21]).await?;
    /// let values: Vec<u32> = MessageSubscriber::recv_batch_typed(&sub, 10).await?;
    /// assert_eq!(values, [18, 19, 21]);
    /// # Ok(()) }
    /// ```
    fn recv_batch_typed<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<T>, Self::Error>> + Send;

    /// The offset of the next message to be received.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, MessageSubscriber};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("orders").await?;
    /// assert_eq!(MessageSubscriber::current_offset(&sub).await, Some(0));
    /// mq.publisher("orders").publish_batch(vec![1, 2]).await?;
    /// sub.recv().await?;
    /// assert_eq!(MessageSubscriber::current_offset(&sub).await, Some(1));
    /// # Ok(()) }
    /// ```
    fn current_offset(&self) -> impl Future<Output = Option<u64>> + Send;

    /// Records that everything up to and including `offset` is processed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{CommitError, Error, MessageQueue, MessageSubscriber};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("payments").await?;
    /// mq.publisher("payments").publish(250u32).await?;
    /// let msg = sub.recv().await?;
    /// MessageSubscriber::commit(&sub, msg.offset()).await?;
    /// assert_eq!(sub.committed_offset(), Some(0));
    ///
    /// let err = MessageSubscriber::commit(&sub, 5).await.unwrap_err();
    /// assert_eq!(err, Error::Commit(CommitError::NotPublished { offset: 5, high: 1 }));
    /// # Ok(()) }
    /// ```
    fn commit(&self, offset: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Moves to `offset`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, MessageSubscriber, OutOfRange};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("events").await?;
    /// mq.publisher("events").publish_batch(vec!["a", "b", "c"]).await?;
    /// MessageSubscriber::seek(&sub, 1).await?;
    /// assert_eq!(sub.recv().await?.deserialize::<String>()?, "b");
    ///
    /// let err = MessageSubscriber::seek(&sub, 9).await.unwrap_err();
    /// assert_eq!(err, Error::Seek(OutOfRange { requested: 9, low: 0, high: 3 }));
    /// # Ok(()) }
    /// ```
    fn seek(&self, offset: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Moves back to the oldest message retained.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, MessageSubscriber, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// mq.create_topic("prices", options).await?;
    /// let sub = mq.subscriber("prices").await?;
    /// for price in [10, 11, 12] {
    ///     mq.publisher("prices").publish(price).await?; // 10 is evicted
    /// }
    /// MessageSubscriber::reset_offset(&sub).await;
    /// assert_eq!(sub.recv().await?.offset(), 1, "the oldest retained, not 0");
    /// # Ok(()) }
    /// ```
    fn reset_offset(&self) -> impl Future<Output = ()> + Send;

    /// The messages as a stream. It yields `Err` for a lag and goes on,
    /// and ends when the topic is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, MessageSubscriber};
    /// use tokio_stream::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("lines").await?;
    /// mq.publisher("lines").publish_batch(vec!["one", "two"]).await?;
    /// drop(mq); // and the publisher: the topic closes, so the stream ends
    ///
    /// let mut stream = std::pin::pin!(MessageSubscriber::stream(&sub));
    /// let mut lines = Vec::new();
    /// while let Some(msg) = stream.next().await {
    ///     lines.push(msg?.deserialize::<String>()?);
    /// }
    /// assert_eq!(lines, ["one", "two"]);
    /// # Ok(()) }
    /// ```
    fn stream(&self) -> impl Stream<Item = Result<TopicMessage, Self::Error>> + Send + '_;
}

/// Creating publishers and subscribers by topic name.
///
/// With this trait and the two above, a whole service can be written
/// without naming the backend. Every error type converts into
/// `anyhow::Error` (or `Box<dyn Error>`) with `?`.
///
/// # Examples
///
/// ```
/// use tokio_memq::{AsyncMessagePublisher, MessageQueue, MessageSubscriber, QueueManager};
///
/// async fn echo<Q: QueueManager>(queue: &Q, text: &str) -> anyhow::Result<String> {
///     let sub = queue.create_subscriber("echo".to_string()).await?;
///     let publisher = queue.create_publisher("echo".to_string()).await;
///     publisher.publish(text.to_string()).await?;
///     Ok(sub.recv_typed::<String>().await?)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// assert_eq!(echo(&mq, "ping").await?, "ping");
/// assert_eq!(mq.list_topics().await, ["echo"]);
/// # Ok(()) }
/// ```
pub trait QueueManager: Send + Sync {
    /// The publisher type.
    type Publisher: AsyncMessagePublisher;
    /// The subscriber type.
    type Subscriber: MessageSubscriber;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A publisher for `topic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{AsyncMessagePublisher, MessageQueue, QueueManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = QueueManager::create_publisher(&mq, "audit".to_string()).await;
    /// assert_eq!(AsyncMessagePublisher::topic(&publisher), "audit");
    /// assert_eq!(AsyncMessagePublisher::publish(&publisher, "login").await?, 0);
    /// # Ok(()) }
    /// ```
    fn create_publisher(&self, topic: String) -> impl Future<Output = Self::Publisher> + Send;
    /// A subscriber for `topic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{Error, MessageQueue, QueueManager, TopicError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = QueueManager::create_subscriber(&mq, "audit".to_string()).await?;
    /// assert_eq!(sub.topic(), "audit");
    ///
    /// mq.close();
    /// let err = QueueManager::create_subscriber(&mq, "other".to_string()).await.unwrap_err();
    /// assert_eq!(err, Error::Topic(TopicError::Closed));
    /// # Ok(()) }
    /// ```
    fn create_subscriber(
        &self,
        topic: String,
    ) -> impl Future<Output = Result<Self::Subscriber, Self::Error>> + Send;
    /// The names of all topics.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, QueueManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let _b = QueueManager::create_subscriber(&mq, "b".to_string()).await?;
    /// let _a = QueueManager::create_subscriber(&mq, "a".to_string()).await?;
    /// assert_eq!(QueueManager::list_topics(&mq).await, ["a", "b"]);
    /// # Ok(()) }
    /// ```
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
