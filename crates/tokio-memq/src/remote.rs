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
use crate::options::{ConsumptionMode, PartitionStats, TopicOptions, TopicStats};
use crate::publisher::Unpublished;
use crate::queue::Registry;
use crate::MessageQueue;

/// The store of a queue made by [`MessageQueue::connect`].
pub(crate) struct Remote {
    store: memq_redis::Store,
    /// Topic handles opened so far, by name.
    topics: Mutex<HashMap<Arc<str>, RemoteTopic>>,
    /// The `gone` flags of this process's subscribers and bound publishers
    /// of each topic, set when this process deletes it (one deleted by
    /// another process is found by a read or publish).
    handles: Mutex<HashMap<Arc<str>, Vec<std::sync::Weak<AtomicBool>>>>,
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
        memq_redis::Error::AheadOfLog { .. } => StoreErrorKind::DataLost,
        // Out of reach for 30 s; a command the server answered with an
        // error (a wrong type, an ID at or below the log's top) was not:
        // asking again would be refused again.
        e if e.is_unavailable() => StoreErrorKind::Unavailable,
        memq_redis::Error::PartitionCount { .. }
        | memq_redis::Error::KindMismatch { .. }
        | memq_redis::Error::TooManyHeaders(_)
        | memq_redis::Error::EvictingServer(_) => StoreErrorKind::Unsupported,
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
    /// may evict any key when short of memory (an `allkeys-*`
    /// `maxmemory-policy`: a topic's log could go while its settings stay;
    /// kind `Unsupported`), or the function library cannot be loaded.
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
        // Its connections and timers are Tokio's.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| no_runtime())?;
        let store = memq_redis::Store::connect(url).await.map_err(store_error)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let remote = Remote {
            store,
            topics: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
            member_prefix: format!("{}-{nanos:x}", std::process::id()),
            next_member: AtomicU64::new(0),
            runtime,
        };
        Ok(MessageQueue::with_registry(Registry::over(Arc::new(remote))))
    }
}

/// The server-side settings for `options`, or why they cannot work:
/// [`TopicError::InvalidOptions`] for options that cannot work anywhere
/// (as in memory), an unsupported [`StoreError`] for those that cannot
/// work on a server.
fn topic_config(options: &TopicOptions) -> Result<memq_redis::TopicConfig, TopicError> {
    options.validate()?;
    server_config(options).map_err(TopicError::Store)
}

fn server_config(options: &TopicOptions) -> Result<memq_redis::TopicConfig, StoreError> {
    if !options.lru_enabled {
        return Err(unsupported(
            "lru_enabled: false (publishers held back by readers that may be in crashed processes)",
        ));
    }
    if options.max_bytes.is_some() {
        return Err(unsupported("max_bytes (retention is by count)"));
    }
    if options.idle_timeout.is_some() || options.consume_idle_timeout.is_some() {
        return Err(unsupported("idle timeouts (topics live on the server)"));
    }
    Ok(memq_redis::TopicConfig::default()
        .max_messages(options.max_messages)
        .ttl(options.message_ttl))
}

/// A topic on the server: one log, or one per partition.
#[derive(Clone)]
pub(crate) enum RemoteTopic {
    Plain(memq_redis::Topic),
    Partitioned(Arc<Parted>),
}

/// A partitioned topic, with this process's routing of it.
pub(crate) struct Parted {
    topic: memq_redis::PartitionedTopic,
    router: memq_partition::RouterState,
}

impl Parted {
    pub(crate) fn partition_count(&self) -> usize {
        self.topic.partitions().len()
    }
}

impl std::fmt::Debug for RemoteTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTopic")
            .field("name", &self.name())
            .field("partitions", &self.partition_count())
            .finish()
    }
}

impl RemoteTopic {
    /// A topic as the store found it (`None` for a kind this crate does
    /// not know), with round-robin routing for a partitioned one.
    fn from_store(found: memq_redis::Existing) -> Option<RemoteTopic> {
        match found {
            memq_redis::Existing::Plain(t) => Some(RemoteTopic::Plain(t)),
            memq_redis::Existing::Partitioned(topic) => {
                let router = memq_partition::RouterState::new(topic.partitions().len());
                Some(RemoteTopic::Partitioned(Arc::new(Parted { topic, router })))
            }
            _ => None,
        }
    }

    /// Its logs with their partition indices (one, index 0, for a plain
    /// topic).
    fn logs(&self) -> Vec<(usize, memq_redis::Topic)> {
        match self {
            RemoteTopic::Plain(t) => vec![(0, t.clone())],
            RemoteTopic::Partitioned(p) => p.topic.partitions().iter().cloned().enumerate().collect(),
        }
    }

    fn name(&self) -> &str {
        match self {
            RemoteTopic::Plain(t) => t.name(),
            RemoteTopic::Partitioned(p) => p.topic.name(),
        }
    }

    /// Whether it is a handle of the same topic as `other` (made before
    /// any delete and re-creation under its name, by any process).
    fn is_handle_of(&self, other: &RemoteTopic) -> bool {
        match (self, other) {
            (RemoteTopic::Plain(a), RemoteTopic::Plain(b)) => a.same_topic(b),
            (RemoteTopic::Partitioned(a), RemoteTopic::Partitioned(b)) => {
                let (a, b) = (a.topic.partitions(), b.topic.partitions());
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_topic(y))
            }
            _ => false,
        }
    }

    /// Whether the server keeps it (every partition) as `config` says.
    fn is_kept_as(&self, config: &memq_redis::TopicConfig) -> bool {
        match self {
            RemoteTopic::Plain(t) => t.is_kept_as(config),
            RemoteTopic::Partitioned(p) => p.topic.partitions().iter().all(|t| t.is_kept_as(config)),
        }
    }

    /// The same handle (not another one of the same name).
    fn same(&self, other: &RemoteTopic) -> bool {
        match (self, other) {
            (RemoteTopic::Plain(a), RemoteTopic::Plain(b)) => a.same_topic(b),
            (RemoteTopic::Partitioned(a), RemoteTopic::Partitioned(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn partition_count(&self) -> Option<usize> {
        match self {
            RemoteTopic::Plain(_) => None,
            RemoteTopic::Partitioned(p) => Some(p.topic.partitions().len()),
        }
    }
}

/// A topic or partition error from the store, as this crate's error.
fn topic_error(e: memq_redis::Error) -> TopicError {
    match e {
        memq_redis::Error::PartitionCount {
            topic,
            requested,
            existing,
        } => TopicError::PartitionCount {
            topic,
            requested,
            existing,
        },
        memq_redis::Error::KindMismatch { topic } => TopicError::NotPartitioned { topic },
        memq_redis::Error::OutOfRange { offset, low, high } => {
            TopicError::OutOfRange(memq_core::OutOfRange {
                requested: offset,
                low,
                high,
            })
        }
        e => TopicError::Store(store_error(e)),
    }
}

/// Where each message of a published batch landed.
pub(crate) struct Placed {
    /// Each partition's share, in partition order (one run, partition 0,
    /// for a plain topic).
    pub(crate) shares: Vec<(usize, std::ops::Range<u64>)>,
    /// `(partition, offset)` of each message, in the order given.
    pub(crate) placements: Vec<(usize, u64)>,
    /// The topic it went to.
    pub(crate) topic: Option<RemoteTopic>,
}

/// Why an attempt to publish failed.
enum Failed {
    Encode(crate::EncodeError),
    Unroutable,
    /// A partition's share is more than it retains: nothing was sent.
    TooLarge,
    /// The topic was deleted; `published`: some shares went in before.
    Gone {
        published: bool,
        unpublished: std::collections::HashSet<usize>,
    },
    Store {
        unpublished: std::collections::HashSet<usize>,
        error: StoreError,
    },
    /// The server could not be reached before the publish's deadline:
    /// these were not sent.
    Deadline {
        unpublished: std::collections::HashSet<usize>,
    },
}

impl Remote {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The topic `name` as the server has it (plain or partitioned), or
    /// created with `options` (the defaults when `None`; partitioned when
    /// they ask for partitions).
    pub(crate) async fn open(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
    ) -> Result<RemoteTopic, TopicError> {
        self.open_with(name, options, true).await
    }

    /// [`open`](Self::open), from the server whatever this process holds:
    /// for readers, which must not start on a handle of a topic deleted
    /// (and maybe created again) by another process. The handle is kept
    /// for later calls when the name had none, or a plain topic's.
    pub(crate) async fn open_fresh(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
    ) -> Result<RemoteTopic, TopicError> {
        self.open_with(name, options, false).await
    }

    async fn open_with(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
        cached: bool,
    ) -> Result<RemoteTopic, TopicError> {
        if self.is_closed() {
            return Err(TopicError::Closed);
        }
        // Options given must match an existing topic's, as in memory.
        let explicit = options.is_some();
        let options = options.cloned().unwrap_or_default();
        let config = topic_config(&options)?;
        let asked = config.clone();
        let checked = |topic: RemoteTopic| {
            if explicit && !topic.is_kept_as(&asked) {
                return Err(TopicError::OptionsMismatch {
                    topic: name.to_owned(),
                });
            }
            Ok(topic)
        };
        let wanted = options.partitions;
        // A partitioned topic asked for: the server says whether it exists
        // with that count (another process may have made it anew).
        let kept = self
            .topics
            .lock()
            .get(name)
            .filter(|_| cached && wanted.is_none())
            .cloned();
        if let Some(t) = kept {
            return checked(t);
        }
        let (store, owned) = (self.store.clone(), name.to_owned());
        let opened = self
            .ask(async move {
                let partitions = match wanted {
                    Some(n) => Some(n),
                    None => store.partition_count(&owned).await?,
                };
                Ok(match partitions {
                    Some(n) => {
                        memq_redis::Existing::Partitioned(store.partitioned_topic(&owned, n, config).await?)
                    }
                    None => memq_redis::Existing::Plain(store.topic(&owned, config).await?),
                })
            })
            .await?;
        let topic = RemoteTopic::from_store(opened).ok_or_else(|| TopicError::NoSuchTopic {
            topic: name.to_owned(),
        })?;
        let mut topics = self.topics.lock();
        checked(match topics.get(name) {
            // Another task opened it meanwhile: the first one counts.
            Some(kept) if cached && kept.is_handle_of(&topic) => kept.clone(),
            // A fresh handle for a reader; the kept one holds this process's
            // routing for publishers.
            Some(kept @ RemoteTopic::Partitioned(_)) if !cached && kept.is_handle_of(&topic) => topic,
            // None kept, or one of a topic deleted since (by any process).
            _ => {
                topics.insert(name.into(), topic.clone());
                topic
            }
        })
    }

    /// The topic `name` if the server has it; creates nothing. This
    /// process's handle when it has one of that topic (with its routing);
    /// one of a topic deleted since (and maybe made again, with another
    /// partition count, by another process) is replaced. Asks the server
    /// every time: for stats and settings, not for publishes.
    async fn existing(&self, name: &str) -> Result<Option<RemoteTopic>, TopicError> {
        self.existing_with(name, true).await
    }

    /// [`existing`](Self::existing); `fresh` false: this process's handle,
    /// when it has one, without asking (for publishes, which replace a
    /// handle of a topic gone when they find it gone).
    async fn existing_with(&self, name: &str, fresh: bool) -> Result<Option<RemoteTopic>, TopicError> {
        if !fresh {
            if let Some(t) = self.topics.lock().get(name) {
                return Ok(Some(t.clone()));
            }
        }
        let (store, owned) = (self.store.clone(), name.to_owned());
        let found = self.ask(async move { store.existing(&owned).await }).await?;
        let Some(topic) = found.and_then(RemoteTopic::from_store) else {
            return Ok(None);
        };
        let mut topics = self.topics.lock();
        match topics.get(name) {
            Some(kept) if kept.is_handle_of(&topic) => Ok(Some(kept.clone())),
            _ => {
                topics.insert(name.into(), topic.clone());
                Ok(Some(topic))
            }
        }
    }

    /// Whether the partitioned topic `name` exists (for a publish: by
    /// this process's handle when it has one).
    pub(crate) async fn parted_exists(&self, name: &str) -> Result<bool, TopicError> {
        match self.parted_with(name, false).await {
            Ok(_) => Ok(true),
            Err(TopicError::NoSuchTopic { .. } | TopicError::NotPartitioned { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The existing partitioned topic `name`.
    pub(crate) async fn parted(&self, name: &str) -> Result<Arc<Parted>, TopicError> {
        self.parted_with(name, true).await
    }

    /// [`parted`](Self::parted); `fresh` as for
    /// [`existing_with`](Self::existing_with).
    async fn parted_with(&self, name: &str, fresh: bool) -> Result<Arc<Parted>, TopicError> {
        let (store, owned) = (self.store.clone(), name.to_owned());
        let exists = self.ask(async move { store.topic_exists(&owned).await }).await?;
        if !exists {
            return Err(TopicError::NoSuchTopic {
                topic: name.to_owned(),
            });
        }
        // Not `open`: a topic deleted meanwhile must not come back.
        match self.existing_with(name, fresh).await? {
            Some(RemoteTopic::Partitioned(p)) => Ok(p),
            Some(RemoteTopic::Plain(_)) => Err(TopicError::NotPartitioned {
                topic: name.to_owned(),
            }),
            None => Err(TopicError::NoSuchTopic {
                topic: name.to_owned(),
            }),
        }
    }

    /// [`run`](Self::run), its failures as a topic operation's. (Not an
    /// `async fn`: that would hold the command, which is not `Sync`.)
    fn ask<T: Send + 'static>(
        &self,
        command: impl Future<Output = Result<T, memq_redis::Error>> + Send + 'static,
    ) -> impl Future<Output = Result<T, TopicError>> + Send + Sync + 'static {
        let running = self.run(command);
        async move { running.await.map_err(TopicError::Store)?.map_err(topic_error) }
    }

    /// Runs a store command: polled by the caller inside a Tokio runtime,
    /// or as a task on the queue's runtime from anywhere else (a blocking
    /// publish on a plain thread); `Sync` either way, as the crate's
    /// futures are (the store's are not). The outer error: the queue's
    /// runtime stopped.
    fn run<T: Send + 'static>(
        &self,
        command: impl Future<Output = Result<T, memq_redis::Error>> + Send + 'static,
    ) -> Running<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            Running::Here(Mutex::new(Box::pin(command)))
        } else {
            Running::Task(self.runtime.spawn(command))
        }
    }

    /// Forgets the handle of `name` (deleted, here or elsewhere).
    fn forget(&self, name: &str) {
        self.topics.lock().remove(name);
    }

    /// Forgets `stale`, the handle that found its topic gone, unless a
    /// newer handle (with its routing) took its place meanwhile.
    fn forget_handle(&self, stale: &RemoteTopic) {
        let mut topics = self.topics.lock();
        if topics.get(stale.name()).is_some_and(|t| t.same(stale)) {
            topics.remove(stale.name());
        }
    }

    pub(crate) async fn delete_topic(&self, name: &str) -> Result<bool, StoreError> {
        self.forget(name);
        // The handles made before the delete: one made after it may be of
        // the topic created again.
        let handles = self.handles.lock().remove(name).unwrap_or_default();
        let deleted = self.store.delete_topic(name).await.map_err(store_error);
        if deleted.is_ok() {
            for flag in handles.iter().filter_map(std::sync::Weak::upgrade) {
                flag.store(true, Ordering::Release);
            }
        } else {
            self.handles
                .lock()
                .entry(name.into())
                .or_default()
                .extend(handles);
        }
        deleted
    }

    /// A new `gone` flag of a handle of `name`, set when this process
    /// deletes the topic.
    pub(crate) fn gone_flag(&self, name: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut handles = self.handles.lock();
        let of_name = handles.entry(name.into()).or_default();
        of_name.retain(|h| h.strong_count() > 0);
        of_name.push(Arc::downgrade(&flag));
        flag
    }

    pub(crate) async fn list_topics(&self) -> Result<Vec<String>, StoreError> {
        self.store.topic_names().await.map_err(store_error)
    }

    /// The names of the partitioned topics.
    pub(crate) async fn list_partitioned(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for name in self.list_topics().await? {
            if self
                .store
                .partition_count(&name)
                .await
                .map_err(store_error)?
                .is_some()
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Stats of the topic `name` (summed over partitions, whose offsets
    /// are their own: then the offsets are 0, as in memory).
    pub(crate) async fn stats(&self, name: &str) -> Result<Option<TopicStats>, TopicError> {
        if !self
            .store
            .topic_exists(name)
            .await
            .map_err(|e| TopicError::Store(store_error(e)))?
        {
            return Ok(None);
        }
        let Some(topic) = self.existing(name).await? else {
            return Ok(None);
        };
        let parts = self.partition_stats_of(&topic).await?;
        let mut total = TopicStats::sum(parts.iter().map(|p| p.1.clone()));
        if topic.partition_count().is_none() {
            total.low_offset = parts[0].1.low_offset;
            total.next_offset = parts[0].1.next_offset;
        }
        Ok(Some(total))
    }

    /// Each log's stats, by partition.
    async fn partition_stats_of(&self, topic: &RemoteTopic) -> Result<Vec<(usize, TopicStats)>, TopicError> {
        let mut stats = Vec::new();
        for (p, log) in topic.logs() {
            let (low, high) = log.bounds().await.map_err(topic_error)?;
            // Each consumer group's lag (the server's groups are the named
            // consumers): from its commit on, as in memory.
            let consumer_lags = log
                .all_group_stats()
                .await
                .map_err(topic_error)?
                .into_iter()
                .map(|(name, g)| (name, usize::try_from(g.unprocessed).unwrap_or(usize::MAX)))
                .collect();
            // What the server keeps: no subscriber count (readers are in
            // other processes), no byte count, and what was removed (by
            // retention or TTL) as one count.
            stats.push((
                p,
                TopicStats {
                    message_count: high.saturating_sub(low) as usize,
                    subscriber_count: 0,
                    dropped_messages: low as usize,
                    consumer_lags,
                    bytes: 0,
                    total_payload_size: 0,
                    published: high,
                    evicted: low,
                    expired: 0,
                    low_offset: low,
                    next_offset: high,
                },
            ));
        }
        Ok(stats)
    }

    /// Stats of each partition of the partitioned topic `name`.
    pub(crate) async fn partition_stats(&self, name: &str) -> Result<Vec<PartitionStats>, TopicError> {
        let topic = RemoteTopic::Partitioned(self.parted(name).await?);
        Ok(self
            .partition_stats_of(&topic)
            .await?
            .into_iter()
            .map(|(p, t)| PartitionStats::from_topic(p, t))
            .collect())
    }

    /// Sets this process's routing of the partitioned topic `name`.
    pub(crate) async fn set_routing(
        &self,
        name: &str,
        routing: memq_partition::Routing,
    ) -> Result<(), TopicError> {
        let parted = self.parted(name).await?;
        if let memq_partition::Routing::Fixed(partition) = routing {
            let partitions = parted.topic.partitions().len();
            if partition >= partitions {
                return Err(TopicError::NoSuchPartition {
                    partition,
                    partitions,
                });
            }
        }
        parted.router.set(routing);
        Ok(())
    }

    pub(crate) async fn group_stats(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<Option<GroupStats>, TopicError> {
        if !self
            .store
            .topic_exists(topic)
            .await
            .map_err(|e| TopicError::Store(store_error(e)))?
        {
            return Ok(None);
        }
        let Some(handle) = self.existing(topic).await? else {
            return Ok(None);
        };
        let mut stats = GroupStats::empty(group);
        let mut found = false;
        for (_, log) in handle.logs() {
            let Some(s) = log.group_stats(group).await.map_err(topic_error)? else {
                stats.committed.push(None);
                continue;
            };
            found = true;
            // A member reads every partition: counted once.
            stats.members = stats.members.max(s.members);
            // As in memory: everything from the oldest message not
            // acknowledged on (the server's lag counts only what was not
            // handed out), and the commit just below it.
            stats.lag += s.unprocessed;
            stats.pending += s.pending as usize;
            stats.committed.push(s.first_unprocessed.checked_sub(1));
        }
        Ok(found.then_some(stats))
    }

    /// Publishes `entries`: as one contiguous run to a plain topic, or
    /// routed to partitions, each partition's share one run. A share that
    /// fails leaves the earlier ones published; the messages not published
    /// come back in the error.
    ///
    /// Each share is one command: stored whole or not at all, also when
    /// the publish is dropped midway (then the caller cannot know which).
    ///
    /// `reused`: `topic` is this process's handle, not yet published to by
    /// this publisher. Should the topic have been deleted and created again
    /// (by another process) since the handle was made, the publish goes to
    /// the topic of that name now, once, instead of failing. The placement
    /// says which topic it went to.
    pub(crate) async fn publish<U>(
        &self,
        formats: &FormatTable,
        topic: &RemoteTopic,
        reused: bool,
        entries: Vec<Entry>,
        send_by: Option<std::time::Instant>,
        back: impl FnOnce(Unpublished) -> U,
    ) -> Result<Placed, PublishError<U>> {
        let mut topic = topic.clone();
        let mut may_reopen = reused;
        let failure = loop {
            if self.is_closed() {
                return Err(PublishError::Closed(back(Unpublished::all(entries))));
            }
            match self.publish_once(formats, &topic, &entries, send_by).await {
                Ok(mut placed) => {
                    placed.topic = Some(topic);
                    return Ok(placed);
                }
                Err(Failed::Gone { published: false, .. }) if may_reopen => {
                    may_reopen = false;
                    self.forget_handle(&topic);
                    let Some(opened) = crate::publisher::before(send_by, self.open(topic.name(), None)).await
                    else {
                        return Err(PublishError::Timeout(back(Unpublished::all(entries))));
                    };
                    match opened {
                        Ok(fresh) => topic = fresh,
                        Err(TopicError::Store(error)) => {
                            return Err(PublishError::Store {
                                value: back(Unpublished::all(entries)),
                                error,
                            })
                        }
                        Err(_) => return Err(PublishError::Closed(back(Unpublished::all(entries)))),
                    }
                }
                Err(f) => break f,
            }
        };
        let (unpublished, error) = match failure {
            Failed::Encode(error) => {
                return Err(PublishError::Encode {
                    value: back(Unpublished::all(entries)),
                    error,
                })
            }
            Failed::Unroutable => return Err(PublishError::Unroutable(back(Unpublished::all(entries)))),
            Failed::TooLarge => return Err(PublishError::TooLarge(back(Unpublished::all(entries)))),
            Failed::Gone { unpublished, .. } => {
                self.forget_handle(&topic);
                (unpublished, None)
            }
            Failed::Store { unpublished, error } => (unpublished, Some(error)),
            Failed::Deadline { unpublished } => {
                let rest = Unpublished::of(entries, &unpublished);
                return Err(PublishError::Timeout(back(rest)));
            }
        };
        let rest = Unpublished::of(entries, &unpublished);
        Err(match error {
            None => PublishError::Closed(back(rest)),
            Some(error) => PublishError::Store {
                value: back(rest),
                error,
            },
        })
    }

    /// One attempt of [`publish`](Self::publish).
    async fn publish_once(
        &self,
        formats: &FormatTable,
        topic: &RemoteTopic,
        entries: &[Entry],
        send_by: Option<std::time::Instant>,
    ) -> Result<Placed, Failed> {
        let mut wire = Vec::with_capacity(entries.len());
        for e in entries {
            wire.push(Some(Wire::of(formats, e).map_err(Failed::Encode)?));
        }
        // Each message's partition, then each partition's share in order.
        let logs = topic.logs();
        let routes: Vec<usize> = match topic {
            RemoteTopic::Plain(_) => vec![0; entries.len()],
            RemoteTopic::Partitioned(p) => {
                let keys: Vec<(Option<&[u8]>, ())> = entries
                    .iter()
                    .map(|e| (e.key.as_deref().map(str::as_bytes), ()))
                    .collect();
                let mut routes = Vec::with_capacity(keys.len());
                p.router
                    .route_batch(&keys, &mut routes)
                    .map_err(|_| Failed::Unroutable)?;
                routes
            }
        };
        let mut shares: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, &p) in routes.iter().enumerate() {
            shares.entry(p).or_default().push(i);
        }
        if let (true, RemoteTopic::Plain(_)) = (entries.is_empty(), topic) {
            // An empty batch: the empty run where the next message goes,
            // as in memory.
            shares.insert(0, Vec::new());
        }
        // A share larger than its log retains is refused whole, before
        // anything is sent, as in memory (stored, it would be trimmed to
        // its last messages as it went in).
        let too_large = shares.iter().any(|(p, indices)| {
            let max = logs.get(*p).and_then(|l| l.1.max_messages());
            max.is_some_and(|max| indices.len() as u64 > max)
        });
        if too_large {
            return Err(Failed::TooLarge);
        }
        let mut placed = Placed {
            shares: Vec::new(),
            placements: vec![(0, 0); entries.len()],
            topic: None,
        };
        for (p, indices) in &shares {
            let share: Vec<Wire> = indices.iter().filter_map(|&i| wire[i].take()).collect();
            let unpublished = || -> std::collections::HashSet<usize> {
                shares.range(*p..).flat_map(|(_, i)| i.iter().copied()).collect()
            };
            // The store checks partition counts; a route past them is
            // refused rather than trusted.
            let Some(log) = logs.get(*p).map(|l| l.1.clone()) else {
                return Err(Failed::Store {
                    unpublished: unpublished(),
                    error: StoreError::new(
                        StoreErrorKind::Protocol,
                        format!("topic {:?} has no partition {p}", topic.name()),
                        None,
                    ),
                });
            };
            let sent = self
                .run(async move {
                    let messages: Vec<memq_redis::Message<'_>> = share.iter().map(Wire::message).collect();
                    log.publish_messages_by(&messages, send_by).await
                })
                .await;
            match sent {
                Ok(Ok(run)) => {
                    for (&i, o) in indices.iter().zip(run.clone()) {
                        placed.placements[i] = (*p, o);
                    }
                    placed.shares.push((*p, run));
                }
                Ok(Err(memq_redis::Error::Deadline)) => {
                    return Err(Failed::Deadline {
                        unpublished: unpublished(),
                    })
                }
                Ok(Err(memq_redis::Error::TopicGone(_))) => {
                    return Err(Failed::Gone {
                        published: !placed.shares.is_empty(),
                        unpublished: unpublished(),
                    })
                }
                Ok(Err(e)) => {
                    return Err(Failed::Store {
                        unpublished: unpublished(),
                        error: store_error(e),
                    })
                }
                Err(_) => {
                    return Err(Failed::Store {
                        unpublished: unpublished(),
                        error: StoreError::new(
                            StoreErrorKind::OutcomeUnknown,
                            "the runtime the queue was connected in stopped while a publish ran",
                            None,
                        ),
                    })
                }
            }
        }
        Ok(placed)
    }

    /// Refuses a start at an offset past 0 on a topic the server does not
    /// have (a new topic's window is empty) before the topic is made for
    /// it, as in memory: a refused subscribe or join creates nothing.
    async fn refuse_start_on_missing(&self, name: &str, mode: ConsumptionMode) -> Result<(), TopicError> {
        if self.is_closed() {
            return Err(TopicError::Closed);
        }
        match mode {
            ConsumptionMode::Offset(n) if n > 0 && self.existing(name).await?.is_none() => {
                Err(outside_a_new_window(n))
            }
            _ => Ok(()),
        }
    }

    /// Readers of `name` (every partition, or only `partition`) from `mode`.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        name: &str,
        options: Option<&TopicOptions>,
        mode: ConsumptionMode,
        partition: Option<usize>,
    ) -> Result<RemoteSource, TopicError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TopicError::Store(no_runtime()));
        }
        self.refuse_start_on_missing(name, mode).await?;
        let topic = self.open_fresh(name, options).await?;
        let start = match mode {
            ConsumptionMode::Earliest => memq_redis::Start::Earliest,
            ConsumptionMode::Latest => memq_redis::Start::Latest,
            ConsumptionMode::Offset(o) => memq_redis::Start::Offset(o),
            // No commits on the server to resume from (groups keep theirs):
            // from the next message, as the README says.
            ConsumptionMode::LastOffset => memq_redis::Start::Latest,
        };
        let mut logs = topic.logs();
        if let Some(p) = partition {
            let partitions = logs.len();
            if topic.partition_count().is_none() {
                return Err(TopicError::NotPartitioned {
                    topic: name.to_owned(),
                });
            }
            logs.retain(|(i, _)| *i == p);
            if logs.is_empty() {
                return Err(TopicError::NoSuchPartition {
                    partition: p,
                    partitions,
                });
            }
        }
        let mut parts = Vec::with_capacity(logs.len());
        for (p, log) in logs {
            let reader = log.reader(start).await.map_err(topic_error)?;
            parts.push(Part::new(p, log, Source::Reader(reader)));
        }
        Ok(RemoteSource::new(
            self.clone(),
            parts,
            None,
            topic.partition_count().is_some(),
            self.gone_flag(name),
        ))
    }

    /// A member of the group `group` of `name` (of every partition).
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
        // Refused as in memory: a zero ack timeout or no delivery at all.
        config
            .validate()
            .map_err(|e| crate::queue::group_error(group, e))?;
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
        self.refuse_start_on_missing(name, mode).await?;
        let topic = self.open_fresh(name, options).await?;
        let start = match mode {
            ConsumptionMode::Earliest => memq_redis::Start::Earliest,
            ConsumptionMode::Latest | ConsumptionMode::LastOffset => memq_redis::Start::Latest,
            ConsumptionMode::Offset(o) => memq_redis::Start::Offset(o),
        };
        let manual = config.ack == AckMode::Manual;
        // Every member acknowledges on the server itself: in automatic
        // mode when a message is handed out (not when the server hands it
        // over, so one read and not yet handed out, held by a member that
        // goes away, comes back after the ack timeout rather than being
        // lost).
        // (An automatic group's zero ack timeout, unused in memory, is not
        // taken here either: messages would go to the next member that
        // looks while their member still holds them.)
        let timeout = config
            .ack_timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(30));
        let mut redis_config = memq_redis::GroupConfig::default()
            .start(start)
            .dead_letters(dead_letters.map(str::to_owned))
            .manual(timeout);
        if manual {
            redis_config = redis_config.max_deliveries(config.max_deliveries.map(u64::from));
        }
        let member_name = format!(
            "{}-{}",
            self.member_prefix,
            self.next_member.fetch_add(1, Ordering::Relaxed)
        );
        let mut parts = Vec::new();
        for (p, log) in topic.logs() {
            let member = log
                .join(group, &member_name, redis_config.clone())
                .await
                .map_err(topic_error)?;
            parts.push(Part::new(p, log, Source::Member(member)));
        }
        let info = GroupInfo {
            name: group.to_owned(),
            member: member_name,
            manual,
            ack_timeout: redis_config.ack_timeout,
        };
        Ok(RemoteSource::new(
            self.clone(),
            parts,
            Some(info),
            topic.partition_count().is_some(),
            self.gone_flag(name),
        ))
    }
}

/// A start at offset `n` (past 0) refused on a topic not made yet: a new
/// topic's window is empty.
pub(crate) fn outside_a_new_window(n: u64) -> TopicError {
    TopicError::OutOfRange(memq_core::OutOfRange {
        requested: n,
        low: 0,
        high: 0,
    })
}

/// A store command's future.
type Command<T> = Pin<Box<dyn Future<Output = Result<T, memq_redis::Error>> + Send>>;

/// A store command in flight (see [`Remote::run`]).
pub(crate) enum Running<T> {
    /// Polled by its caller. (In a mutex only to be `Sync`: polled
    /// through `&mut`, with `get_mut`, never locked.)
    Here(Mutex<Command<T>>),
    /// A task on the queue's runtime.
    Task(tokio::task::JoinHandle<Result<T, memq_redis::Error>>),
}

impl<T> Future for Running<T> {
    type Output = Result<Result<T, memq_redis::Error>, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Running::Here(command) => command.get_mut().as_mut().poll(cx).map(Ok),
            Running::Task(task) => Pin::new(task)
                .poll(cx)
                .map(|done| done.map_err(|_| runtime_stopped())),
        }
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
        let mut m = memq_redis::Message::new(&self.payload);
        // Raw bytes go without a format field: a message without one is
        // raw (as one published by memq-redis alone), and the server adds
        // each field with a call of its own.
        if self.format != SerializationFormat::Raw {
            m = m.format(self.format.as_str());
        }
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
fn claimed(formats: &FormatTable, (partition, record, deliveries): Got) -> Claimed<Entry> {
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
        entry = entry.with_received_headers(record.headers);
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
        partition,
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

/// One log a subscriber reads: a partition, or the whole of a plain topic.
#[derive(Clone)]
struct Part {
    index: usize,
    log: memq_redis::Topic,
    source: Arc<ReaderLock>,
    /// The offset after the last message handed out (readers).
    position: Arc<AtomicU64>,
    /// The error this log's pump met, for the next receive (readers).
    pump_error: Arc<Mutex<Option<RecvError>>>,
}

/// A reader's (or member's) lock. Taken by waiting for its release rather
/// than in a queue: a receive polled once and then left unpolled holds
/// nothing (a queued `tokio::sync::Mutex::lock` would be handed the lock
/// and keep it), so the subscriber's other calls go on.
struct ReaderLock {
    source: tokio::sync::Mutex<Source>,
    released: tokio::sync::Notify,
}

impl ReaderLock {
    fn new(source: Source) -> Self {
        ReaderLock {
            source: tokio::sync::Mutex::new(source),
            released: tokio::sync::Notify::new(),
        }
    }

    async fn lock(&self) -> ReaderGuard<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            released.await;
        }
    }

    fn try_lock(&self) -> Option<ReaderGuard<'_>> {
        let guard = self.source.try_lock().ok()?;
        Some(ReaderGuard {
            guard: Some(guard),
            lock: self,
        })
    }
}

/// A held [`ReaderLock`]; tells those waiting for it when dropped.
struct ReaderGuard<'a> {
    guard: Option<tokio::sync::MutexGuard<'a, Source>>,
    lock: &'a ReaderLock,
}

impl std::ops::Deref for ReaderGuard<'_> {
    type Target = Source;

    fn deref(&self) -> &Source {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for ReaderGuard<'_> {
    fn deref_mut(&mut self) -> &mut Source {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.lock.released.notify_waiters();
    }
}

/// The receives of a reader subscriber and its pumps: one task per log
/// reads (waiting on the server, on a connection of its own, without
/// holding the log's reader) while a receive waits and nothing read is
/// left to hand out; receives wait to be told, holding nothing.
#[derive(Default)]
struct Readers {
    /// The receives waiting now.
    demand: Demand,
    /// Told when a pump took in an answer (or met an error).
    arrived: tokio::sync::Notify,
    /// Told when a seek moves a reader: the pumps ask again from there.
    moved: tokio::sync::Notify,
    /// A pump has ended (see [`PumpEnded`]).
    ended: AtomicBool,
}

/// Moved into a pump's task when it is spawned, so it is dropped with the
/// task whenever that ends: the pump returning (the topic gone, the queue
/// closed), its subscriber dropped (aborted), or the queue's runtime
/// shutting down, before the task ever ran too. Then `ended` is set and
/// the waiting receives are told: without it a receive waiting on a
/// runtime that shut down (a blocking receive on a `spawn_blocking`
/// thread) waited for ever for a pump that was no more.
struct PumpEnded<S: Pumped>(Arc<S>);

/// What a [`PumpEnded`] tells: [`Readers`] or an [`Inbox`].
trait Pumped {
    fn ended(&self) -> &AtomicBool;
    fn arrived(&self) -> &tokio::sync::Notify;
}

impl<S: Pumped> Drop for PumpEnded<S> {
    fn drop(&mut self) {
        self.0.ended().store(true, Ordering::Release);
        self.0.arrived().notify_waiters();
    }
}

impl Pumped for Readers {
    fn ended(&self) -> &AtomicBool {
        &self.ended
    }
    fn arrived(&self) -> &tokio::sync::Notify {
        &self.arrived
    }
}

impl Pumped for Inbox {
    fn ended(&self) -> &AtomicBool {
        &self.ended
    }
    fn arrived(&self) -> &tokio::sync::Notify {
        &self.arrived
    }
}

/// Spawns `pump` on the queue's runtime with `ended` moved into its task.
fn spawn_pump<S: Pumped + Send + Sync + 'static>(
    remote: &Remote,
    ended: PumpEnded<S>,
    pump: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    remote.runtime.spawn(async move {
        let _ended = ended;
        pump.await;
    })
}

/// What a receive is told once its subscriber's pumps have ended while
/// the topic and the queue are still there: the runtime that ran them
/// (the one the queue was connected in) has shut down.
fn pumps_ended() -> RecvError {
    RecvError::Store(runtime_stopped())
}

/// The runtime the queue was connected in (which carries its
/// connections, pumps and commands from outside a runtime) has shut down.
fn runtime_stopped() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "the runtime the queue was connected in has stopped",
        None,
    )
}

/// How many receives wait for a subscriber's pumps, who are told when one
/// starts to wait.
#[derive(Default)]
struct Demand {
    waiting: AtomicU64,
    started: tokio::sync::Notify,
}

impl Demand {
    /// Counts a receive as waiting while the result lives.
    fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.started.notify_waiters();
        Waiting(self)
    }

    fn is_waited_for(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Told when a receive starts to wait.
    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.started.notified()
    }
}

/// A receive waiting on a [`Demand`] (counted while it lives).
struct Waiting<'a>(&'a Demand);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Readers {
    /// Reads `part` whenever a receive waits and nothing is left to hand
    /// out (messages or a lag its reader holds, an error it met), until the
    /// topic is `gone` or the queue closes (the task is aborted when its
    /// subscriber is dropped). Its reads wait on the server with a watcher
    /// of its own; a seek cuts the wait short.
    async fn pump(self: Arc<Self>, part: Part, remote: Arc<Remote>, gone: Arc<AtomicBool>) {
        let mut watcher: Option<memq_redis::Watcher> = None;
        loop {
            // A request once a receive waits and nothing is left.
            let request = loop {
                let demand = self.demand.notified();
                tokio::pin!(demand);
                demand.as_mut().enable();
                if remote.is_closed() || gone.load(Ordering::Acquire) {
                    // A receive that looked before the topic went (deleted
                    // by this process) and waits now: it looks again.
                    self.arrived.notify_waiters();
                    return;
                }
                if self.demand.is_waited_for() && part.pump_error.lock().is_none() {
                    let source = part.source.lock().await;
                    match &*source {
                        Source::Reader(r) if r.buffered() == 0 => break r.wait_request(WATCH),
                        Source::Reader(_) => {}
                        Source::Member(_) => return,
                    }
                }
                demand.await;
            };
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let w = match &mut watcher {
                Some(w) => w,
                None => match part.log.watcher().await {
                    Ok(w) => watcher.insert(w),
                    Err(e) => {
                        self.fail(&part, &gone, RecvError::Store(store_error(e)));
                        continue;
                    }
                },
            };
            let closing = remote.closing.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if remote.is_closed() {
                return;
            }
            let answer = {
                let read = w.read(request);
                tokio::pin!(read);
                std::future::poll_fn(|cx| {
                    if closing.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(None);
                    }
                    // A seek: what was asked for is past; ask again (the
                    // wait cut short may end the next one early: then it
                    // asks again).
                    if moved.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(Some(None));
                    }
                    read.as_mut().poll(cx).map(|a| Some(Some(a)))
                })
                .await
            };
            let answer = match answer {
                None => return,
                Some(None) => continue,
                Some(Some(Ok(answer))) => answer,
                Some(Some(Err(e))) => {
                    // Reconnected for 30 s in vain: a new connection next time.
                    watcher = None;
                    self.fail(&part, &gone, RecvError::Store(store_error(e)));
                    continue;
                }
            };
            let mut source = part.source.lock().await;
            if let Source::Reader(reader) = &mut *source {
                let taken = reader.accept(answer).await;
                part.position.store(reader.position(), Ordering::Release);
                drop(source);
                if let Err(e) = taken {
                    self.fail(&part, &gone, recv_error(e));
                    continue;
                }
            }
            self.arrived.notify_waiters();
        }
    }

    /// Keeps `error` for the next receive (`Closed`: the topic is
    /// `gone`, for every receive), and tells the receives.
    fn fail(&self, part: &Part, gone: &AtomicBool, error: RecvError) {
        if error == RecvError::Closed {
            gone.store(true, Ordering::Release);
        } else {
            *part.pump_error.lock() = Some(error);
        }
        self.arrived.notify_waiters();
    }
}

impl Part {
    fn new(index: usize, log: memq_redis::Topic, source: Source) -> Part {
        let position = match &source {
            Source::Reader(r) => r.position(),
            Source::Member(_) => 0,
        };
        Part {
            index,
            log,
            source: Arc::new(ReaderLock::new(source)),
            position: Arc::new(AtomicU64::new(position)),
            pump_error: Arc::default(),
        }
    }

    /// Up to `max` messages this log's reader has now: what it read
    /// ahead, else one read that does not wait.
    async fn read_now(&self, max: usize) -> Result<Vec<Got>, RecvError> {
        let mut source = self.source.lock().await;
        let Source::Reader(reader) = &mut *source else {
            return Ok(Vec::new());
        };
        let got = reader.try_recv_batch(max).await;
        self.position.store(reader.position(), Ordering::Release);
        Ok(got
            .map_err(recv_error)?
            .into_iter()
            .map(|r| (self.index, r, 1))
            .collect())
    }

    /// This log's group member's next message, waiting for it.
    async fn claim(&self) -> Result<Vec<Got>, RecvError> {
        let mut source = self.source.lock().await;
        let Source::Member(member) = &mut *source else {
            return Ok(Vec::new());
        };
        let d = member.recv().await.map_err(recv_error)?;
        Ok(vec![(self.index, d.record, d.deliveries)])
    }

    /// What this log's reader has buffered already (no round trip).
    async fn buffered(&self, max: usize) -> Result<Vec<Got>, RecvError> {
        self.take_buffered(&mut *self.source.lock().await, max)
    }

    /// What `source`, this log's, has buffered (a group member: nothing).
    fn take_buffered(&self, source: &mut Source, max: usize) -> Result<Vec<Got>, RecvError> {
        let Source::Reader(reader) = source else {
            return Ok(Vec::new());
        };
        let got = reader.take_buffered(max).map_err(recv_error);
        self.position.store(reader.position(), Ordering::Release);
        Ok(got?.into_iter().map(|r| (self.index, r, 1)).collect())
    }
}

/// What the readers of `parts` read ahead: the first that has any.
async fn read_ahead(parts: &[Part], max: usize) -> Result<Vec<Got>, RecvError> {
    for part in parts {
        let got = part.buffered(max).await?;
        if !got.is_empty() {
            return Ok(got);
        }
    }
    Ok(Vec::new())
}

/// `work`, or `Closed` as soon as `closing` (the queue's close) is told.
async fn or_closed<T>(
    mut closing: Pin<&mut tokio::sync::futures::Notified<'_>>,
    work: impl Future<Output = Result<T, RecvError>>,
) -> Result<T, RecvError> {
    tokio::pin!(work);
    std::future::poll_fn(|cx| {
        if closing.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(RecvError::Closed));
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// A message received: its partition, the record, its delivery count.
type Got = (usize, memq_redis::Record, u64);

/// What a subscriber of a remote queue reads from.
pub(crate) struct RemoteSource {
    remote: Arc<Remote>,
    parts: Vec<Part>,
    group: Option<GroupInfo>,
    /// A group member's messages, read by its pumps.
    inbox: Option<Arc<Inbox>>,
    /// One task per partition reading for a group member.
    pumps: Vec<tokio::task::JoinHandle<()>>,
    /// The topic is partitioned: messages say their partition.
    partitioned: bool,
    /// Which part a receive looks at first (they take turns).
    turn: AtomicU64,
    /// A reader's receives and pumps.
    readers: Arc<Readers>,
    /// The topic is gone: deleted by this process, or found deleted by a
    /// receive.
    gone: Arc<AtomicBool>,
}

/// What a group member's pumps read, waiting to be handed out.
///
/// A member's read cut off midway leaves its message pending to the member
/// on the server, where only the ack timeout brings it back: so a member's
/// reads are not cut off when a receive stops waiting, only when the queue
/// closes (a closed process must not take its group's messages; a read
/// the server answered just before it was cancelled comes back after the
/// ack timeout). One task per partition reads, only while a receive waits
/// and nothing (no message, lag or error) is waiting to be handed out (a
/// member holds at most one message per partition it has not handed out);
/// receives take from here and are cancel safe.
struct Inbox {
    queue: Mutex<std::collections::VecDeque<Got>>,
    /// The receives waiting now.
    demand: Demand,
    /// Told when a message (or an error) arrives.
    arrived: tokio::sync::Notify,
    /// The errors pumps met, oldest first, for the next receives. Several
    /// partitions' pumps read at once: each one's report is kept (a single
    /// slot let a later lag overwrite one not yet told), and lags that
    /// follow one another are told as one, their sum (as a group in memory
    /// tells the gaps of all its partitions).
    errors: Mutex<std::collections::VecDeque<RecvError>>,
    /// A pump found the topic gone (deleted, or lost with the server's
    /// data) and stopped: every receive after the first told is `Closed`
    /// too, as in memory, rather than a wait for a pump that is no more.
    closed: AtomicBool,
    /// A pump has ended (see [`PumpEnded`]).
    ended: AtomicBool,
}

impl Inbox {
    fn new() -> Self {
        Inbox {
            queue: Mutex::new(std::collections::VecDeque::new()),
            demand: Demand::default(),
            arrived: tokio::sync::Notify::new(),
            errors: Mutex::new(std::collections::VecDeque::new()),
            closed: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        }
    }

    /// Keeps `e`, which a pump met, for a receive to tell: a lag right
    /// after another adds to it.
    fn met(&self, e: RecvError) {
        let mut errors = self.errors.lock();
        match (errors.back_mut(), e) {
            (Some(RecvError::Lagged(told)), RecvError::Lagged(n)) => *told = told.saturating_add(n),
            (_, e) => errors.push_back(e),
        }
    }

    /// Up to `max` messages waiting to be handed out.
    fn take(&self, max: usize) -> Vec<Got> {
        let mut queue = self.queue.lock();
        let n = max.max(1).min(queue.len());
        queue.drain(..n).collect()
    }

    /// Reads `part` for a group member whenever a receive waits, until
    /// the topic is gone or the queue closes (a read waiting then is
    /// cancelled: a closed process takes no more of its group's messages).
    async fn pump(self: Arc<Self>, part: Part, remote: Arc<Remote>) {
        loop {
            loop {
                let demand = self.demand.notified();
                tokio::pin!(demand);
                demand.as_mut().enable();
                // Nothing more is read while something read, or a lag or
                // an error met, waits to be handed out: what it reads next
                // would overtake a lag reported before it.
                if self.demand.is_waited_for()
                    && self.queue.lock().is_empty()
                    && self.errors.lock().is_empty()
                {
                    break;
                }
                demand.await;
            }
            let closing = remote.closing.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if remote.is_closed() {
                return;
            }
            // The read is dropped (cancelled on the server) if the queue
            // closes first. (Polled by hand, as the reader pump does: the
            // crate does not build tokio's `select!`.)
            let got = {
                let claim = part.claim();
                tokio::pin!(claim);
                std::future::poll_fn(|cx| {
                    if closing.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(None);
                    }
                    claim.as_mut().poll(cx).map(Some)
                })
                .await
            };
            let Some(got) = got else { return };
            let stop = matches!(got, Err(RecvError::Closed));
            if stop {
                self.closed.store(true, Ordering::Release);
            }
            // (A lag is news, not a failure: the next read goes at once.)
            let failed = matches!(got, Err(RecvError::Store(_)));
            match got {
                Ok(got) => self.queue.lock().extend(got),
                Err(e) => self.met(e),
            }
            self.arrived.notify_waiters();
            if stop {
                return;
            }
            if failed {
                // The store gave up reconnecting (30 s): ask again later.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Drop for RemoteSource {
    fn drop(&mut self) {
        for pump in &self.pumps {
            pump.abort();
        }
        // What was read and not handed out goes back to the group at once,
        // its delivery count as it was before the read (nobody saw it).
        let (Some(inbox), Some(group)) = (&self.inbox, &self.group) else {
            return;
        };
        let left: Vec<Got> = inbox.queue.lock().drain(..).collect();
        for part in &self.parts {
            let unseen: Vec<(u64, u64)> = left
                .iter()
                .filter(|(p, _, _)| *p == part.index)
                .map(|(_, record, deliveries)| (record.offset, *deliveries))
                .collect();
            // With manual acknowledgement, also what it handed out and
            // nobody acknowledged (all of it is pending to this member on
            // the server): the other members take it over at their next
            // look, as in memory, rather than after the ack timeout.
            // (Automatic groups have acknowledged what they handed out.)
            if unseen.is_empty() && !group.manual {
                continue;
            }
            let (log, group) = (part.log.clone(), group.clone());
            self.remote.runtime.spawn(async move {
                // A failure leaves them to the ack timeout.
                for (offset, deliveries) in unseen {
                    let _ = log
                        .release_unseen(&group.name, &group.member, offset, deliveries, group.ack_timeout)
                        .await;
                }
                if group.manual {
                    let _ = log
                        .release_member(&group.name, &group.member, group.ack_timeout)
                        .await;
                }
            });
        }
    }
}

/// How long a pump's read waits on the server before it asks again (which
/// is also how soon a topic deleted by another process ends a waiting
/// receive).
const WATCH: Duration = Duration::from_secs(1);

/// A receive in flight. (In a mutex only to be `Sync`, as every receive
/// future and stream of the crate is: it is polled through `&mut`, with
/// `get_mut`, never locked.)
pub(crate) type RemoteRecv = Mutex<Receiving>;

/// Receiving from the server.
pub(crate) type Receiving = Pin<Box<dyn Future<Output = Result<Vec<Got>, RecvError>> + Send>>;

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("partitions", &self.parts.len())
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl RemoteSource {
    fn new(
        remote: Arc<Remote>,
        parts: Vec<Part>,
        group: Option<GroupInfo>,
        partitioned: bool,
        gone: Arc<AtomicBool>,
    ) -> Self {
        let readers = Arc::new(Readers::default());
        let (inbox, pumps) = if group.is_some() {
            let inbox = Arc::new(Inbox::new());
            let pumps = parts
                .iter()
                .map(|part| {
                    spawn_pump(
                        &remote,
                        PumpEnded(inbox.clone()),
                        inbox.clone().pump(part.clone(), remote.clone()),
                    )
                })
                .collect();
            (Some(inbox), pumps)
        } else {
            let pumps = parts
                .iter()
                .map(|part| {
                    let pump = readers.clone().pump(part.clone(), remote.clone(), gone.clone());
                    spawn_pump(&remote, PumpEnded(readers.clone()), pump)
                })
                .collect();
            (None, pumps)
        };
        RemoteSource {
            remote,
            parts,
            group,
            inbox,
            pumps,
            partitioned,
            turn: AtomicU64::new(0),
            readers,
            gone,
        }
    }

    /// A group member's messages as they are handed out: acknowledged now
    /// in automatic mode.
    fn hand_out(&self, got: Vec<Got>) -> Vec<Got> {
        Self::handed_out(&self.remote, self.group.as_ref(), &self.parts, got)
    }

    /// What a member hands out of `got`: all of it but what expired while
    /// it waited in the inbox, which is acknowledged and never handed out
    /// (as in memory). What is handed out is acknowledged too in
    /// automatic mode.
    fn handed_out(remote: &Remote, group: Option<&GroupInfo>, parts: &[Part], mut got: Vec<Got>) -> Vec<Got> {
        let Some(group) = group else {
            return got;
        };
        got.retain(|(partition, record, _)| {
            let expired = record.is_expired();
            if expired || !group.manual {
                if let Some(part) = parts.iter().find(|p| p.index == *partition) {
                    let (log, name, offset) = (part.log.clone(), group.name.clone(), record.offset);
                    remote.runtime.spawn(async move {
                        // Lost with the connection: delivered again after
                        // the ack timeout (at least once).
                        let _ = log.ack(&name, offset).await;
                    });
                }
            }
            !expired
        });
        got
    }

    pub(crate) fn group(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.name.as_str())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.remote.is_closed() || self.gone.load(Ordering::Acquire)
    }

    /// Messages say their partition (a partitioned topic).
    pub(crate) fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// How many logs this reads.
    pub(crate) fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// The offset of the next message a reader returns from `partition`.
    pub(crate) fn position(&self, partition: usize) -> Option<u64> {
        if self.group.is_some() {
            return None;
        }
        let part = self.parts.iter().find(|p| p.index == partition)?;
        Some(part.position.load(Ordering::Acquire))
    }

    /// Up to `max` messages a reader has read ahead, without waiting or
    /// asking the server (an empty list when none has any, or another
    /// receive holds them).
    pub(crate) fn try_buffered(&self, max: usize) -> Result<Vec<Got>, RecvError> {
        if self.remote.is_closed() {
            return Err(RecvError::Closed);
        }
        if let Some(inbox) = &self.inbox {
            return Ok(self.hand_out(inbox.take(max)));
        }
        let n = self.parts.len();
        let first = (self.turn.load(Ordering::Relaxed) as usize) % n.max(1);
        for i in 0..n {
            let part = &self.parts[(first + i) % n];
            let Some(mut source) = part.source.try_lock() else {
                continue;
            };
            let got = part.take_buffered(&mut source, max)?;
            if !got.is_empty() {
                self.turn.fetch_add(1, Ordering::Relaxed);
                return Ok(got);
            }
        }
        Ok(Vec::new())
    }

    /// A receive of up to `max` messages (`wait`: for the first one): a
    /// group member's from its inbox, a reader's from its logs. One that
    /// finds the topic gone closes the subscriber.
    pub(crate) fn recv(&self, max: usize, wait: bool) -> RemoteRecv {
        let receiving = match self.inbox.clone() {
            Some(inbox) => self.recv_member(inbox, max, wait),
            None => self.recv_reader(max, wait),
        };
        // A receive that finds the topic gone closes the subscriber.
        let gone = self.gone.clone();
        Mutex::new(Box::pin(async move {
            let got = receiving.await;
            if matches!(got, Err(RecvError::Closed)) {
                gone.store(true, Ordering::Release);
            }
            got
        }))
    }

    /// A reader's receive of up to `max` messages (`wait`: for the first
    /// one), from whichever log has them first; the logs take turns.
    fn recv_reader(&self, max: usize, wait: bool) -> Receiving {
        let remote = self.remote.clone();
        let (readers, gone) = (self.readers.clone(), self.gone.clone());
        let n = self.parts.len();
        let first = (self.turn.fetch_add(1, Ordering::Relaxed) as usize) % n.max(1);
        let parts: Vec<Part> = (0..n).map(|i| self.parts[(first + i) % n].clone()).collect();
        Box::pin(async move {
            if remote.is_closed() {
                return Err(RecvError::Closed);
            }
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(RecvError::Store(no_runtime()));
            }
            let closing = remote.closing.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if !wait {
                // What is read ahead, else one read of each log that does
                // not wait (the queue's close cuts it short).
                return or_closed(closing, async {
                    let got = read_ahead(&parts, max).await?;
                    if !got.is_empty() {
                        return Ok(got);
                    }
                    for part in &parts {
                        let got = part.read_now(max).await?;
                        if !got.is_empty() {
                            return Ok(got);
                        }
                    }
                    Ok(Vec::new())
                })
                .await;
            }
            loop {
                if remote.is_closed() {
                    return Err(RecvError::Closed);
                }
                let arrived = readers.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                // What the pumps (or other receives) read ahead; else what a
                // pump met.
                let got = or_closed(closing.as_mut(), async {
                    let got = read_ahead(&parts, max).await?;
                    if !got.is_empty() {
                        return Ok(got);
                    }
                    for part in &parts {
                        if let Some(e) = part.pump_error.lock().take() {
                            return Err(e);
                        }
                    }
                    if gone.load(Ordering::Acquire) {
                        return Err(RecvError::Closed);
                    }
                    if readers.ended.load(Ordering::Acquire) {
                        // A pump that ended because the topic went or the
                        // queue closed said so first.
                        if gone.load(Ordering::Acquire) || remote.is_closed() {
                            return Err(RecvError::Closed);
                        }
                        return Err(pumps_ended());
                    }
                    Ok(Vec::new())
                })
                .await?;
                if !got.is_empty() {
                    return Ok(got);
                }
                // Wait for the pumps (a pump's read answers at once when
                // the server has messages), holding nothing.
                let _waiting = readers.demand.wait();
                or_closed(closing.as_mut(), async {
                    arrived.await;
                    Ok(())
                })
                .await?;
            }
        })
    }

    /// A group member's receive: from the inbox, waiting for the pumps.
    fn recv_member(&self, inbox: Arc<Inbox>, max: usize, wait: bool) -> Receiving {
        let remote = self.remote.clone();
        let group = self.group.clone();
        let parts = self.parts.clone();
        Box::pin(async move {
            loop {
                if remote.is_closed() {
                    return Err(RecvError::Closed);
                }
                let got = Self::handed_out(&remote, group.as_ref(), &parts, inbox.take(max));
                if !got.is_empty() {
                    return Ok(got);
                }
                if let Some(e) = inbox.errors.lock().pop_front() {
                    return Err(e);
                }
                if inbox.closed.load(Ordering::Acquire) {
                    return Err(RecvError::Closed);
                }
                if inbox.ended.load(Ordering::Acquire) {
                    // A pump that ended because the topic went or the
                    // queue closed said so first.
                    if inbox.closed.load(Ordering::Acquire) || remote.is_closed() {
                        return Err(RecvError::Closed);
                    }
                    return Err(pumps_ended());
                }
                if !wait {
                    return Err(RecvError::Store(unsupported(
                        "try_recv for a group member (use recv_timeout)",
                    )));
                }
                let arrived = inbox.arrived.notified();
                let closing = remote.closing.notified();
                tokio::pin!(arrived, closing);
                arrived.as_mut().enable();
                closing.as_mut().enable();
                // Looked again once registered: nothing arrives unseen.
                if remote.is_closed()
                    || !inbox.queue.lock().is_empty()
                    || !inbox.errors.lock().is_empty()
                    || inbox.closed.load(Ordering::Acquire)
                    || inbox.ended.load(Ordering::Acquire)
                {
                    continue;
                }
                let _waiting = inbox.demand.wait();
                std::future::poll_fn(|cx| {
                    if closing.as_mut().poll(cx).is_ready() || arrived.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(());
                    }
                    std::task::Poll::Pending
                })
                .await;
            }
        })
    }

    /// Moves a reader of `partition` to `offset` (a new reader there).
    pub(crate) async fn seek(&self, partition: usize, offset: u64) -> Result<(), TopicError> {
        self.move_to(partition, memq_redis::Start::Offset(offset)).await
    }

    /// Moves every reader to `offset`, or none: each partition must
    /// retain it (or have it next).
    pub(crate) async fn seek_all(&self, offset: u64) -> Result<(), TopicError> {
        if self.group.is_some() {
            return Err(TopicError::Store(unsupported("seeking a group member")));
        }
        // Every new reader first (each checks its window), then all swapped
        // in: a failure moves none.
        let mut readers = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let reader = part
                .log
                .reader(memq_redis::Start::Offset(offset))
                .await
                .map_err(topic_error)?;
            readers.push(reader);
        }
        for (part, reader) in self.parts.iter().zip(readers) {
            let mut source = part.source.lock().await;
            part.position.store(reader.position(), Ordering::Release);
            *source = Source::Reader(reader);
        }
        self.readers.moved.notify_waiters();
        Ok(())
    }

    /// Moves every reader to its oldest retained message.
    pub(crate) async fn seek_earliest(&self) -> Result<(), TopicError> {
        for part in &self.parts {
            self.move_to(part.index, memq_redis::Start::Earliest).await?;
        }
        Ok(())
    }

    async fn move_to(&self, partition: usize, start: memq_redis::Start) -> Result<(), TopicError> {
        if self.group.is_some() {
            return Err(TopicError::Store(unsupported("seeking a group member")));
        }
        let Some(part) = self.parts.iter().find(|p| p.index == partition) else {
            return Err(TopicError::NoSuchPartition {
                partition,
                partitions: self.parts.len(),
            });
        };
        let mut source = part.source.lock().await;
        let reader = part.log.reader(start).await.map_err(topic_error)?;
        part.position.store(reader.position(), Ordering::Release);
        *source = Source::Reader(reader);
        drop(source);
        self.readers.moved.notify_waiters();
        Ok(())
    }

    pub(crate) fn claimed(&self, formats: &FormatTable, got: Got) -> Claimed<Entry> {
        claimed(formats, got)
    }

    /// Whether this is a member of a group with manual acknowledgement
    /// (otherwise acknowledging is [`AckError::AutoAck`](memq_groups::AckError::AutoAck)).
    pub(crate) fn acks_manually(&self) -> bool {
        self.group.as_ref().is_some_and(|g| g.manual)
    }

    /// Acknowledges (or, `ack` false, hands back) the message at `offset`
    /// of `partition`, in the background.
    pub(crate) fn settle(
        &self,
        partition: usize,
        offset: u64,
        ack: bool,
    ) -> Result<(), memq_groups::AckError> {
        let Some(group) = self.group.clone().filter(|g| g.manual) else {
            return Err(memq_groups::AckError::AutoAck);
        };
        self.settle_now(&group, partition, offset, ack)
    }

    /// Restarts the ack timeout of what this member holds on the server
    /// (manual acknowledgement; in the background: a lost one only means
    /// the messages may go to another member, at least once).
    pub(crate) fn keep_alive(&self) {
        let Some(group) = self.group.clone().filter(|g| g.manual) else {
            return;
        };
        for part in &self.parts {
            let (log, group) = (part.log.clone(), group.clone());
            self.remote.runtime.spawn(async move {
                let _ = log.keep_alive(&group.name, &group.member).await;
            });
        }
    }

    fn settle_now(
        &self,
        group: &GroupInfo,
        partition: usize,
        offset: u64,
        ack: bool,
    ) -> Result<(), memq_groups::AckError> {
        let group = group.clone();
        let Some(part) = self.parts.iter().find(|p| p.index == partition) else {
            return Err(memq_groups::AckError::NoSuchPartition { partition });
        };
        let log = part.log.clone();
        self.remote.runtime.spawn(async move {
            // A lost acknowledgement only means another delivery (at least
            // once); nothing waits for this.
            let _ = if ack {
                log.ack(&group.name, offset).await
            } else {
                log.release(&group.name, &group.member, offset, group.ack_timeout)
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
