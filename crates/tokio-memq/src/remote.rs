//! A queue whose topics live in Redis Streams (the `redis` feature):
//! the glue between the facade's handles and `memq-redis`.
//!
//! A queue made by [`MessageQueue::connect`] keeps a [`Remote`] in its
//! registry. Publishers and subscribers are the same types as in memory;
//! each of their operations checks for a remote first and comes here. What
//! cannot work over a network store (waiting without a runtime, native
//! values, publishers held back by readers) is refused with a
//! [`StoreError`] of kind [`StoreErrorKind::Unsupported`], never ignored.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use memq_codec::{Codec, Headers};
use memq_groups::{AckMode, Claimed, GroupConfig, GroupStats};
use parking_lot::Mutex;

use crate::error::{PublishError, RecvError, StoreError, StoreErrorKind, TopicError, TryRecvError};
use crate::format::{FormatTable, SerializationFormat};
use crate::message::Entry;
use crate::options::{ConsumptionMode, TopicOptions, TopicStats};
use crate::queue::Registry;
use crate::MessageQueue;

/// The store of a queue made by [`MessageQueue::connect`].
pub(crate) struct Remote {
    store: memq_redis::Store,
    /// Topic handles opened so far, by name.
    topics: Mutex<HashMap<Arc<str>, memq_redis::Topic>>,
    /// Set by [`MessageQueue::close`]: this process's handles stop.
    closed: AtomicBool,
    /// Wakes receives waiting on the server when the queue closes.
    closing: tokio::sync::Notify,
    /// Names group members uniquely across processes.
    member_prefix: String,
    next_member: AtomicU64,
    /// Where background acknowledgements run.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A `memq-redis` error as the facade reports it.
pub(crate) fn store_error(e: memq_redis::Error) -> StoreError {
    let kind = match &e {
        memq_redis::Error::OutcomeUnknown(_) => StoreErrorKind::OutcomeUnknown,
        memq_redis::Error::TopicGone(_) => StoreErrorKind::TopicGone,
        memq_redis::Error::Redis(_) => StoreErrorKind::Unavailable,
        memq_redis::Error::PartitionCount { .. }
        | memq_redis::Error::KindMismatch { .. }
        | memq_redis::Error::TooManyHeaders(_) => StoreErrorKind::Unsupported,
        _ => StoreErrorKind::Protocol,
    };
    StoreError::new(kind, e.to_string(), Some(Arc::new(e)))
}

fn recv_error(e: memq_redis::RecvError) -> RecvError {
    match e {
        memq_redis::RecvError::Lagged(n) => RecvError::Lagged(n),
        // A topic deleted (here or by another process), or lost with the
        // server's data: as in memory, a deleted topic is closed.
        memq_redis::RecvError::Store(memq_redis::Error::TopicGone(_)) => RecvError::Closed,
        memq_redis::RecvError::Store(e) => RecvError::Store(store_error(e)),
        _ => RecvError::Store(StoreError::new(StoreErrorKind::Protocol, e.to_string(), None)),
    }
}

fn unsupported(what: &str) -> StoreError {
    StoreError::unsupported(format!("not supported by a queue over Redis: {what}"))
}

fn no_runtime() -> StoreError {
    unsupported("calls outside a Tokio runtime (blocking and synchronous calls wait on the network)")
}

impl MessageQueue {
    /// A queue whose topics live in Redis Streams (7.0 or newer) at `url`
    /// (`redis://host:port/`), shared by every process connected to it:
    /// the same publishers, subscribers, consumer groups and messages as
    /// an in-memory queue, so code changes only where the queue is made.
    ///
    /// Offsets are dense and the same for every process; a batch is one
    /// contiguous run or nothing; a lost connection is replaced. Where the
    /// two backends differ (native values cross as JSON, no
    /// `lru_enabled: false`, no synchronous calls, acknowledgements sent in
    /// the background...) see the README's "in memory vs Redis" table: each
    /// difference is a typed error or a documented rule.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the server cannot be reached, is older than 7.0,
    /// or the function library cannot be loaded.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::connect("redis://127.0.0.1:6379/").await?;
    /// let sub = mq.subscriber_with_options_and_mode("orders", Default::default(), ConsumptionMode::Latest).await?;
    /// let offset = mq.publisher("orders").publish("order 1").await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!((msg.offset(), msg.deserialize::<String>()?.as_str()), (offset, "order 1"));
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<MessageQueue, StoreError> {
        let store = memq_redis::Store::connect(url).await.map_err(store_error)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let remote = Remote {
            store,
            topics: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
            member_prefix: format!("{}-{nanos:x}", std::process::id()),
            next_member: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
        };
        Ok(MessageQueue::with_registry(Registry::over(Arc::new(remote))))
    }
}

/// The server-side settings for `options`, or why they cannot work there.
fn topic_config(options: &TopicOptions) -> Result<memq_redis::TopicConfig, StoreError> {
    if !options.lru_enabled {
        return Err(unsupported(
            "lru_enabled: false (publishers held back by readers that may be in crashed processes)",
        ));
    }
    if options.max_bytes.is_some() {
        return Err(unsupported("max_bytes (retention is by count)"));
    }
    if options.partitions.is_some() {
        return Err(unsupported("partitioned topics (not yet)"));
    }
    if options.idle_timeout.is_some() || options.consume_idle_timeout.is_some() {
        return Err(unsupported("idle timeouts (topics live on the server)"));
    }
    if options.max_messages == Some(0) || options.message_ttl == Some(Duration::ZERO) {
        return Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "a topic needs room for one message and a TTL above zero",
            None,
        ));
    }
    Ok(memq_redis::TopicConfig::default()
        .max_messages(options.max_messages)
        .ttl(options.message_ttl))
}

impl Remote {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The topic `name`, created with `options` (the defaults when `None`)
    /// if the server does not have it.
    pub(crate) async fn topic(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
    ) -> Result<memq_redis::Topic, StoreError> {
        if self.is_closed() {
            return Err(StoreError::new(
                StoreErrorKind::TopicGone,
                "the queue was closed",
                None,
            ));
        }
        let config = topic_config(options.unwrap_or(&TopicOptions::default()))?;
        if let Some(t) = self.topics.lock().get(name) {
            return Ok(t.clone());
        }
        let (store, owned) = (self.store.clone(), name.to_owned());
        let topic = self.run(async move { store.topic(&owned, config).await }).await?;
        self.topics.lock().insert(name.into(), topic.clone());
        Ok(topic)
    }

    /// Runs a store command as a task on the queue's runtime: awaitable
    /// from anywhere (the store's futures are not `Sync`, and need the
    /// runtime's timers and sockets).
    /// (Started at once: the returned future holds only the task's handle.)
    fn run<T: Send + 'static>(
        &self,
        command: impl Future<Output = Result<T, memq_redis::Error>> + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + Sync + 'static {
        let task = self.runtime.spawn(command);
        async move {
            match task.await {
                Ok(done) => done.map_err(store_error),
                Err(_) => Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "the runtime the queue was connected in has stopped",
                    None,
                )),
            }
        }
    }

    /// Forgets the handle of `name` (deleted, here or elsewhere).
    fn forget(&self, name: &str) {
        self.topics.lock().remove(name);
    }

    pub(crate) async fn delete_topic(&self, name: &str) -> Result<bool, StoreError> {
        self.forget(name);
        self.store.delete_topic(name).await.map_err(store_error)
    }

    pub(crate) async fn list_topics(&self) -> Result<Vec<String>, StoreError> {
        self.store.topic_names().await.map_err(store_error)
    }

    pub(crate) async fn stats(&self, name: &str) -> Result<Option<TopicStats>, StoreError> {
        if !self.store.topic_exists(name).await.map_err(store_error)? {
            return Ok(None);
        }
        let topic = self.topic(name, None).await?;
        let (low, high) = topic.bounds().await.map_err(store_error)?;
        let count = (high - low) as usize;
        // What the server keeps: no subscriber count (readers are in
        // other processes) and no byte count.
        Ok(Some(TopicStats {
            message_count: count,
            subscriber_count: 0,
            dropped_messages: low as usize,
            consumer_lags: HashMap::new(),
            bytes: 0,
            total_payload_size: 0,
            published: high,
            evicted: low,
            expired: 0,
            low_offset: low,
            next_offset: high,
        }))
    }

    pub(crate) async fn group_stats(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<GroupStats>, StoreError> {
        if !self.store.topic_exists(topic).await.map_err(store_error)? {
            return Ok(None);
        }
        let handle = self.topic(topic, None).await?;
        let Some(s) = handle.group_stats(group).await.map_err(store_error)? else {
            return Ok(None);
        };
        let mut stats = GroupStats::empty(group);
        stats.members = s.members;
        stats.lag = s.lag;
        stats.pending = s.pending as usize;
        Ok(Some(stats))
    }

    /// Publishes `entries` as one contiguous run.
    ///
    /// The command runs as a task on the runtime the queue was made in, so
    /// a publish can be awaited anywhere (a blocking publish from a plain
    /// thread included), and one dropped midway still completes or fails
    /// as a whole on the server.
    pub(crate) async fn publish<U>(
        &self,
        formats: &FormatTable,
        topic: &memq_redis::Topic,
        entries: Vec<Entry>,
        back: impl FnOnce(Vec<Entry>) -> U,
    ) -> Result<std::ops::Range<u64>, PublishError<U>> {
        if self.is_closed() {
            return Err(PublishError::Closed(back(entries)));
        }
        let mut wire = Vec::with_capacity(entries.len());
        for e in &entries {
            match Wire::of(formats, e) {
                Ok(w) => wire.push(w),
                Err(error) => {
                    return Err(PublishError::Encode {
                        value: back(entries),
                        error,
                    })
                }
            }
        }
        let handle = topic.clone();
        let sent = self.runtime.spawn(async move {
            let messages: Vec<memq_redis::Message<'_>> = wire.iter().map(Wire::message).collect();
            handle.publish_messages(&messages).await
        });
        let error = match sent.await {
            Ok(Ok(range)) => return Ok(range),
            Ok(Err(memq_redis::Error::TopicGone(_))) => {
                self.forget(topic.name());
                return Err(PublishError::Closed(back(entries)));
            }
            Ok(Err(e)) => store_error(e),
            Err(_) => StoreError::new(
                StoreErrorKind::OutcomeUnknown,
                "the runtime the queue was connected in stopped while a publish ran",
                None,
            ),
        };
        Err(PublishError::Store {
            value: back(entries),
            error,
        })
    }

    /// A broadcast reader of `name` from `mode`.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        name: &str,
        options: Option<&TopicOptions>,
        mode: ConsumptionMode,
    ) -> Result<RemoteSource, TopicError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TopicError::Store(no_runtime()));
        }
        if self.is_closed() {
            return Err(TopicError::Closed);
        }
        let topic = self.topic(name, options).await.map_err(TopicError::Store)?;
        let start = match mode {
            ConsumptionMode::Earliest => memq_redis::Start::Earliest,
            ConsumptionMode::Latest => memq_redis::Start::Latest,
            ConsumptionMode::Offset(o) => memq_redis::Start::Offset(o),
            ConsumptionMode::LastOffset => {
                return Err(TopicError::Store(unsupported(
                    "ConsumptionMode::LastOffset for a subscriber outside a group (use a group)",
                )))
            }
        };
        let reader = match topic.reader(start).await {
            Ok(r) => r,
            Err(memq_redis::Error::OutOfRange { low, high, .. }) => {
                let ConsumptionMode::Offset(offset) = mode else {
                    unreachable!("only a start offset can be out of range")
                };
                return Err(TopicError::OutOfRange(memq_core::OutOfRange {
                    requested: offset,
                    low,
                    high,
                }));
            }
            Err(e) => return Err(TopicError::Store(store_error(e))),
        };
        Ok(RemoteSource::new(
            self.clone(),
            topic,
            Source::Reader(reader),
            None,
        ))
    }

    /// A member of the group `group` of `name`.
    pub(crate) async fn join(
        self: &Arc<Self>,
        name: &str,
        options: Option<&TopicOptions>,
        group: &str,
        mode: ConsumptionMode,
        config: &GroupConfig,
        dead_letters: Option<&str>,
    ) -> Result<RemoteSource, TopicError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TopicError::Store(no_runtime()));
        }
        if self.is_closed() {
            return Err(TopicError::Closed);
        }
        // Pending messages live on the server, where nothing bounds them:
        // only the default (never reached by members that acknowledge) is
        // taken, and exclusive ownership has no server form.
        if config.max_pending != GroupConfig::default().max_pending
            || config.assignment != memq_groups::Assignment::Shared
        {
            return Err(TopicError::Store(unsupported(
                "a max_pending other than the default, and exclusive groups",
            )));
        }
        let topic = self.topic(name, options).await.map_err(TopicError::Store)?;
        let start = match mode {
            ConsumptionMode::Earliest => memq_redis::Start::Earliest,
            ConsumptionMode::Latest | ConsumptionMode::LastOffset => memq_redis::Start::Latest,
            ConsumptionMode::Offset(o) => memq_redis::Start::Offset(o),
        };
        let manual = config.ack == AckMode::Manual;
        let mut redis_config = memq_redis::GroupConfig::default()
            .start(start)
            .dead_letters(dead_letters.map(str::to_owned));
        if manual {
            let timeout = config.ack_timeout.unwrap_or(Duration::from_secs(30));
            redis_config = redis_config
                .manual(timeout)
                .max_deliveries(config.max_deliveries.map(u64::from));
        }
        let member_name = format!(
            "{}-{}",
            self.member_prefix,
            self.next_member.fetch_add(1, Ordering::Relaxed)
        );
        let member = topic
            .join(group, &member_name, redis_config.clone())
            .await
            .map_err(|e| TopicError::Store(store_error(e)))?;
        let info = GroupInfo {
            name: group.to_owned(),
            member: member_name,
            manual,
            ack_timeout: redis_config.ack_timeout,
        };
        Ok(RemoteSource::new(
            self.clone(),
            topic,
            Source::Member(member),
            Some(info),
        ))
    }
}

/// What a message is sent to the server as.
struct Wire {
    payload: Bytes,
    key: Option<Arc<str>>,
    format: SerializationFormat,
    headers: Option<Headers>,
}

impl Wire {
    fn of(formats: &FormatTable, entry: &Entry) -> Result<Wire, crate::EncodeError> {
        let (payload, format) = match entry.payload_ref() {
            Ok(bytes) => (bytes.clone(), formats.format(entry.format)),
            // A native value cannot cross a process: JSON, which every
            // process reads as any type it deserializes into.
            Err(native) => {
                let codec = Codec::new(SerializationFormat::Json, Default::default(), Default::default())?;
                (native.encode_with(&codec)?, SerializationFormat::Json)
            }
        };
        Ok(Wire {
            payload,
            key: entry.key.clone(),
            format,
            headers: entry.headers().cloned(),
        })
    }

    fn message(&self) -> memq_redis::Message<'_> {
        let mut m = memq_redis::Message::new(&self.payload).format(self.format.as_str());
        if let Some(k) = &self.key {
            m = m.key(k);
        }
        if let Some(h) = &self.headers {
            m = m.headers(h);
        }
        m
    }
}

/// A message received from the server, as a group member's claim (a
/// broadcast reader's has one delivery).
fn claimed(formats: &FormatTable, record: memq_redis::Record, deliveries: u64) -> Claimed<Entry> {
    let format: SerializationFormat = record
        .format
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(SerializationFormat::Raw);
    // An unknown custom name is kept as raw bytes rather than refused:
    // the payload is still the caller's to read.
    let tag = formats.tag_of(&format).unwrap_or(crate::format::FormatTag::RAW);
    let mut entry = Entry::encoded(record.payload, tag);
    entry.key = record.key.map(Into::into);
    if !record.headers.is_empty() {
        entry = entry.with_headers(record.headers);
    }
    // The server's clock, carried over to this process's.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let age = Duration::from_millis(now_ms.saturating_sub(record.time_ms));
    let now = tokio::time::Instant::now();
    let timestamp = now.checked_sub(age).unwrap_or(now);
    Claimed::new(
        0,
        record.offset,
        timestamp,
        u32::try_from(deliveries).unwrap_or(u32::MAX),
        entry,
    )
}

enum Source {
    Reader(memq_redis::Reader),
    Member(memq_redis::Member),
}

/// A group member's names and settings.
#[derive(Debug, Clone)]
struct GroupInfo {
    name: String,
    member: String,
    manual: bool,
    ack_timeout: Duration,
}

/// What a subscriber of a remote queue reads from.
pub(crate) struct RemoteSource {
    remote: Arc<Remote>,
    topic: memq_redis::Topic,
    source: Arc<tokio::sync::Mutex<Source>>,
    group: Option<GroupInfo>,
    /// The offset after the last message handed out (broadcast readers).
    position: Arc<AtomicU64>,
}

/// A receive in flight. (In a mutex only to be `Sync`, as every receive
/// future and stream of the crate is: it is polled through `&mut`, with
/// `get_mut`, never locked.)
pub(crate) type RemoteRecv =
    Mutex<Pin<Box<dyn Future<Output = Result<Vec<(memq_redis::Record, u64)>, RecvError>> + Send>>>;

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("topic", &self.topic.name())
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl RemoteSource {
    fn new(remote: Arc<Remote>, topic: memq_redis::Topic, source: Source, group: Option<GroupInfo>) -> Self {
        let position = match &source {
            Source::Reader(r) => r.position(),
            Source::Member(_) => 0,
        };
        RemoteSource {
            remote,
            topic,
            source: Arc::new(tokio::sync::Mutex::new(source)),
            group,
            position: Arc::new(AtomicU64::new(position)),
        }
    }

    pub(crate) fn group(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.name.as_str())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.remote.is_closed()
    }

    /// The offset of the next message a broadcast reader returns.
    pub(crate) fn position(&self) -> Option<u64> {
        self.group
            .is_none()
            .then(|| self.position.load(Ordering::Acquire))
    }

    /// A receive of up to `max` messages (`wait`: for the first one).
    pub(crate) fn recv(&self, max: usize, wait: bool) -> RemoteRecv {
        let remote = self.remote.clone();
        let source = self.source.clone();
        let position = self.position.clone();
        Mutex::new(Box::pin(async move {
            if remote.is_closed() {
                return Err(RecvError::Closed);
            }
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(RecvError::Store(no_runtime()));
            }
            let closing = remote.closing.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if remote.is_closed() {
                return Err(RecvError::Closed);
            }
            let receive = async {
                let mut source = source.lock_owned().await;
                match &mut *source {
                    Source::Reader(reader) => {
                        let got = if wait {
                            reader.recv_batch(max).await
                        } else {
                            reader.try_recv().await.map(|r| r.into_iter().collect())
                        };
                        position.store(reader.position(), Ordering::Release);
                        Ok(got.map_err(recv_error)?.into_iter().map(|r| (r, 1)).collect())
                    }
                    Source::Member(member) => {
                        if !wait {
                            return Err(RecvError::Store(unsupported(
                                "try_recv for a group member (use recv_timeout)",
                            )));
                        }
                        let d = member.recv().await.map_err(recv_error)?;
                        Ok(vec![(d.record, d.deliveries)])
                    }
                }
            };
            tokio::pin!(receive);
            std::future::poll_fn(|cx| {
                if closing.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(Err(RecvError::Closed));
                }
                receive.as_mut().poll(cx)
            })
            .await
        }))
    }

    /// Moves a broadcast reader to `offset` (a new reader there).
    pub(crate) async fn seek(&self, offset: u64) -> Result<(), TopicError> {
        self.move_to(memq_redis::Start::Offset(offset)).await
    }

    /// Moves a broadcast reader to the oldest retained message.
    pub(crate) async fn seek_earliest(&self) -> Result<(), TopicError> {
        self.move_to(memq_redis::Start::Earliest).await
    }

    async fn move_to(&self, start: memq_redis::Start) -> Result<(), TopicError> {
        if self.group.is_some() {
            return Err(TopicError::Store(unsupported("seeking a group member")));
        }
        let mut source = self.source.lock().await;
        let reader = match self.topic.reader(start).await {
            Ok(r) => r,
            Err(memq_redis::Error::OutOfRange { offset, low, high }) => {
                return Err(TopicError::OutOfRange(memq_core::OutOfRange {
                    requested: offset,
                    low,
                    high,
                }))
            }
            Err(e) => return Err(TopicError::Store(store_error(e))),
        };
        self.position.store(reader.position(), Ordering::Release);
        *source = Source::Reader(reader);
        Ok(())
    }

    pub(crate) fn claimed(
        &self,
        formats: &FormatTable,
        record: memq_redis::Record,
        deliveries: u64,
    ) -> Claimed<Entry> {
        claimed(formats, record, deliveries)
    }

    /// Acknowledges (or, `ack` false, hands back) the message at `offset`,
    /// in the background.
    pub(crate) fn settle(
        &self,
        partition: usize,
        offset: u64,
        ack: bool,
    ) -> Result<(), memq_groups::AckError> {
        let Some(group) = self.group.clone().filter(|g| g.manual) else {
            return Err(memq_groups::AckError::AutoAck);
        };
        if partition != 0 {
            return Err(memq_groups::AckError::NoSuchPartition { partition });
        }
        let topic = self.topic.clone();
        self.remote.runtime.spawn(async move {
            // A lost acknowledgement only means another delivery (at least
            // once); nothing waits for this.
            let _ = if ack {
                topic.ack(&group.name, offset).await
            } else {
                topic
                    .release(&group.name, &group.member, offset, group.ack_timeout)
                    .await
            };
        });
        Ok(())
    }
}

impl From<StoreError> for TryRecvError {
    fn from(e: StoreError) -> Self {
        TryRecvError::Store(e)
    }
}
