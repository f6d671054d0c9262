//! The queue: a registry of named topics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use memq_core::{StartFrom, Topic};
use memq_groups::{AckMode, Assignment, DeadLetter, DeadLetterSink, Group, GroupConfig, GroupStats};

use memq_partition::PartitionedTopic;
use parking_lot::{Mutex, RwLock};

use crate::error::TopicError;
use crate::format::FormatTable;
use crate::log::Log;
use crate::message::{DeadLetterInfo, Entry};
use crate::options::{ConsumptionMode, TopicOptions, TopicStats};
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;

/// A topic in the registry.
#[derive(Debug, Clone)]
pub(crate) struct TopicEntry {
    /// Which topic of that name this is (a name can be deleted and used
    /// again); unique in the queue.
    pub(crate) id: u64,
    pub(crate) log: Log,
    /// Consumer groups of this topic, by name; made for its first group
    /// ([`Registry::groups_of`]): most topics have none, and an idle topic
    /// would pay 48 bytes for an empty map. A group outlives its members
    /// (its commits live in the topic anyway).
    groups: Option<Groups>,
    /// Messages handed to the topic's subscribers (only counted for
    /// metrics).
    #[cfg(feature = "metrics")]
    pub(crate) delivered: Arc<std::sync::atomic::AtomicU64>,
}

/// A topic's consumer groups, by name.
type Groups = Arc<Mutex<std::collections::BTreeMap<String, GroupEntry>>>;

impl TopicEntry {
    /// Handles of the topic's consumer groups.
    pub(crate) fn group_handles(&self) -> Vec<Group<Entry>> {
        self.groups
            .as_ref()
            .map(|g| g.lock().values().map(|g| g.group.clone()).collect())
            .unwrap_or_default()
    }

    /// The topic's consumer group called `name`.
    fn group(&self, name: &str) -> Option<GroupEntry> {
        self.groups.as_ref()?.lock().get(name).cloned()
    }
}

/// A consumer group in the registry.
#[derive(Debug, Clone)]
struct GroupEntry {
    group: Group<Entry>,
    /// Where its dead letters go, when it has a delivery limit.
    dead_letters: Option<Arc<str>>,
}

/// State shared by a queue's handles, publishers and subscribers.
///
/// Every handle keeps it alive; it is freed with the last one.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    topics: RwLock<HashMap<Arc<str>, TopicEntry>>,
    /// Set by [`MessageQueue::close`]: no topic can be created any more.
    closed: AtomicBool,
    /// Who can still publish: see [`PublisherLease`].
    writers: Mutex<Writers>,
    /// The next [`TopicEntry::id`].
    next_id: AtomicU64,
    /// Serialization defaults of this queue's topics and publishers.
    pub(crate) defaults: memq_codec::DefaultsRegistry,
    /// The formats of the payloads stored in this queue.
    pub(crate) formats: FormatTable,
    /// Wildcard subscriptions, told of every topic created.
    watches: Mutex<Vec<std::sync::Weak<crate::pattern::Watch>>>,
    /// The server holding the topics of a queue made by
    /// [`MessageQueue::connect`]; `None` in memory.
    #[cfg(feature = "redis")]
    pub(crate) remote: Option<Arc<crate::remote::Remote>>,
}

/// Who can still publish to the queue's topics. A topic closes when nobody
/// can publish to it any more, as a channel closes when its last sender is
/// gone: once no `MessageQueue` handle is left (any of them can make a
/// publisher for any topic) and the topic's last publisher is gone.
///
/// A publisher holds a lease on its topic's name from its creation. Once
/// it has published, it is bound to the topic it found: if that topic is
/// deleted, the lease no longer counts for the name (the publisher can
/// never publish to a topic created again under it).
#[derive(Debug, Default)]
struct Writers {
    /// Leases that may still publish to the topic of each name: those not
    /// bound yet and those bound to its current topic.
    leases: HashMap<Arc<str>, usize>,
    /// Leases bound to each live topic, by [`TopicEntry::id`].
    bound: HashMap<u64, usize>,
    /// The last `MessageQueue` handle was dropped.
    queue_gone: bool,
}

impl Writers {
    /// One lease fewer may publish to `name`; the topic to close, if that
    /// was the last one and no queue handle is left.
    fn release(&mut self, registry: &Registry, name: &Arc<str>) -> Option<TopicEntry> {
        match self.leases.get_mut(name) {
            Some(n) if *n > 1 => {
                *n -= 1;
                None
            }
            _ => {
                self.leases.remove(name);
                self.queue_gone.then(|| registry.get(name)).flatten()
            }
        }
    }
}

/// A publisher's claim on a topic: while one exists, the topic stays open
/// after the last `MessageQueue` handle is dropped (see [`Writers`]).
#[derive(Debug)]
pub(crate) struct PublisherLease {
    registry: Arc<Registry>,
    topic: Arc<str>,
    /// The topic this lease was bound to, once its publisher found it.
    bound: OnceLock<u64>,
}

impl PublisherLease {
    pub(crate) fn new(registry: Arc<Registry>, topic: Arc<str>) -> Self {
        *registry.writers.lock().leases.entry(topic.clone()).or_default() += 1;
        PublisherLease {
            registry,
            topic,
            bound: OnceLock::new(),
        }
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Binds the lease to the topic with `id`, which its publisher found.
    /// The topic this lease is bound to, once bound.
    pub(crate) fn bound_id(&self) -> Option<u64> {
        self.bound.get().copied()
    }

    pub(crate) fn bind(&self, id: u64) {
        let mut writers = self.registry.writers.lock();
        if self.bound.set(id).is_err() {
            return;
        }
        let current = self.registry.get(&self.topic).is_some_and(|e| e.id == id);
        let close = if current {
            *writers.bound.entry(id).or_default() += 1;
            None
        } else {
            // Deleted since the publisher found it: it can never publish
            // to the topic of that name.
            writers.release(&self.registry, &self.topic)
        };
        drop(writers);
        if let Some(entry) = close {
            entry.log.close();
        }
    }
}

impl Clone for PublisherLease {
    fn clone(&self) -> Self {
        let mut writers = self.registry.writers.lock();
        let bound = OnceLock::new();
        let counts = match self.bound.get() {
            None => true,
            Some(&id) => {
                let _ = bound.set(id);
                match writers.bound.get_mut(&id) {
                    Some(n) => {
                        *n += 1;
                        true
                    }
                    // Bound to a deleted topic: counts for nothing.
                    None => false,
                }
            }
        };
        if counts {
            *writers.leases.entry(self.topic.clone()).or_default() += 1;
        }
        PublisherLease {
            registry: self.registry.clone(),
            topic: self.topic.clone(),
            bound,
        }
    }
}

impl Drop for PublisherLease {
    fn drop(&mut self) {
        let mut writers = self.registry.writers.lock();
        let counts = match self.bound.get() {
            None => true,
            Some(id) => match writers.bound.get_mut(id) {
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        writers.bound.remove(id);
                    }
                    true
                }
                None => false,
            },
        };
        let close = if counts {
            writers.release(&self.registry, &self.topic)
        } else {
            None
        };
        let last = writers.queue_gone && writers.leases.is_empty();
        // Closed after the lock is released (closing runs wakers). No
        // lease for the name can appear meanwhile: it would take a queue
        // handle or a publisher of that name, and neither is left.
        drop(writers);
        if let Some(entry) = close {
            entry.log.close();
        }
        if last {
            // Nothing can create a topic any more.
            self.registry.wake_watches();
        }
    }
}

impl Registry {
    /// The registry of a queue whose topics live on a server.
    #[cfg(feature = "redis")]
    pub(crate) fn over(remote: Arc<crate::remote::Remote>) -> Registry {
        Registry {
            remote: Some(remote),
            ..Registry::default()
        }
    }

    /// The server of a queue made by [`MessageQueue::connect`].
    #[cfg(feature = "redis")]
    pub(crate) fn remote(&self) -> Option<&Arc<crate::remote::Remote>> {
        self.remote.as_ref()
    }

    /// Refuses an in-memory topic in a queue over a server (the
    /// operations that come here have no remote form, or are synchronous).
    pub(crate) fn local_only(&self) -> Result<(), TopicError> {
        #[cfg(feature = "redis")]
        if self.remote.is_some() {
            return Err(TopicError::Store(crate::error::StoreError::unsupported(
                "not supported by a queue over Redis: synchronous subscribes and joins, \
                 wildcard subscriptions and partitioned topics",
            )));
        }
        Ok(())
    }

    /// The topic named `name`, created with `options` when absent.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
    ) -> Result<TopicEntry, TopicError> {
        self.get_or_create_for(name, options, None)
    }

    /// As [`get_or_create`](Self::get_or_create); a topic made here is
    /// registered only if `first_use` succeeds on it first (so that a
    /// subscribe that fails, a start offset outside the new topic's
    /// window, creates nothing). An existing topic is returned as it is.
    pub(crate) fn get_or_create_for(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
        first_use: Option<FirstUse<'_>>,
    ) -> Result<TopicEntry, TopicError> {
        self.local_only()?;
        // Options that ask for partitions make (or check) a partitioned
        // topic: 1.0.0 ignored the field, which silently made a plain one.
        if let Some(n) = options.and_then(|o| o.partitions) {
            let options = options.cloned().unwrap_or_default();
            return self.get_or_create_partitioned_for(name, &options, n, first_use);
        }
        if let Some(entry) = self.topics.read().get(name) {
            return Self::check(name, entry, options);
        }
        // Build outside the write lock; only the insert happens under it.
        // One allocation of the name serves as the registry's key and the
        // topic's label.
        let key: Arc<str> = name.into();
        let config = options
            .map_or_else(|| TopicOptions::default().to_config(), TopicOptions::to_config)
            .name(Some(key.clone()));
        let log = Log::Plain(Topic::with_weigher(config, Entry::weight)?);
        if let Some(first_use) = first_use {
            self.refuse_if_closed()?;
            first_use(&log)?;
        }
        self.insert(key, log, options)
    }

    /// Creates the partitioned topic `name`, or returns it when it exists
    /// with the same partition count and retention options.
    pub(crate) fn get_or_create_partitioned(
        &self,
        name: &str,
        options: &TopicOptions,
        partitions: usize,
    ) -> Result<TopicEntry, TopicError> {
        self.get_or_create_partitioned_for(name, options, partitions, None)
    }

    /// As [`get_or_create_partitioned`](Self::get_or_create_partitioned),
    /// with a `first_use` as [`get_or_create_for`](Self::get_or_create_for)
    /// takes.
    pub(crate) fn get_or_create_partitioned_for(
        &self,
        name: &str,
        options: &TopicOptions,
        partitions: usize,
        first_use: Option<FirstUse<'_>>,
    ) -> Result<TopicEntry, TopicError> {
        self.local_only()?;
        if partitions == 0 || options.partitions.is_some_and(|p| p != partitions) {
            // Refused before looking at any topic: `existing` is what a
            // topic has, and none was looked at.
            return Err(TopicError::PartitionCount {
                topic: name.to_owned(),
                requested: partitions,
                existing: None,
            });
        }
        if let Some(entry) = self.topics.read().get(name) {
            return Self::check_partitioned(name, entry, options, partitions);
        }
        let key: Arc<str> = name.into();
        let log = PartitionedTopic::with_weigher(
            options.to_config().name(Some(key.clone())),
            partitions,
            Entry::weight,
        )
        .map_err(|e| match e {
            memq_partition::ConfigError::Topic(c) => TopicError::InvalidOptions(c),
            _ => TopicError::PartitionCount {
                topic: name.to_owned(),
                requested: partitions,
                existing: None,
            },
        })?;
        let log = Log::Partitioned(log);
        if let Some(first_use) = first_use {
            self.refuse_if_closed()?;
            first_use(&log)?;
        }
        let entry = self.insert(key, log, None)?;
        Self::check_partitioned(name, &entry, options, partitions)
    }

    fn check_partitioned(
        name: &str,
        entry: &TopicEntry,
        options: &TopicOptions,
        partitions: usize,
    ) -> Result<TopicEntry, TopicError> {
        match &entry.log {
            Log::Partitioned(p) if p.partition_count() == partitions => {
                Self::check(name, entry, Some(options))
            }
            Log::Partitioned(p) => Err(TopicError::PartitionCount {
                topic: name.to_owned(),
                requested: partitions,
                existing: Some(p.partition_count()),
            }),
            Log::Plain(_) => Err(TopicError::NotPartitioned {
                topic: name.to_owned(),
            }),
        }
    }

    /// `Closed` once the queue is closed: [`insert`](Self::insert)'s
    /// answer, also asked before a topic made here is tried, so that a
    /// closed queue's refusal comes first.
    fn refuse_if_closed(&self) -> Result<(), TopicError> {
        if self.is_closed() {
            return Err(TopicError::Closed);
        }
        Ok(())
    }

    fn insert(
        &self,
        name: Arc<str>,
        log: Log,
        options: Option<&TopicOptions>,
    ) -> Result<TopicEntry, TopicError> {
        let mut topics = self.topics.write();
        // Under the write lock: a close that marks the queue first finds
        // this topic in the registry.
        self.refuse_if_closed()?;
        if let Some(entry) = topics.get(&*name) {
            return Self::check(&name, entry, options);
        }
        let entry = TopicEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            log,
            groups: None,
            #[cfg(feature = "metrics")]
            delivered: Arc::default(),
        };
        topics.insert(name.clone(), entry.clone());
        // Under the topics lock: a wildcard subscription registering now
        // sees the topic either here or in its listing, never twice.
        let mut wake = Vec::new();
        self.watches.lock().retain(|w| match w.upgrade() {
            Some(watch) => {
                wake.extend(watch.topic_created(&name, &entry));
                true
            }
            None => false,
        });
        drop(topics);
        // Reported and woken outside the registry's lock.
        event!(
            debug,
            topic = &*name,
            partitioned = entry.log.is_partitioned(),
            "topic created"
        );
        wake.into_iter().for_each(std::task::Waker::wake);
        Ok(entry)
    }

    /// Registers a wildcard subscription; returns the matching topics
    /// there now (later ones are announced to it).
    pub(crate) fn watch(
        &self,
        watch: &Arc<crate::pattern::Watch>,
    ) -> Result<Vec<(Arc<str>, TopicEntry)>, TopicError> {
        let topics = self.topics.read();
        self.refuse_if_closed()?;
        self.watches.lock().push(Arc::downgrade(watch));
        Ok(crate::pattern::matching(&topics, watch))
    }

    /// Forgets a wildcard subscription.
    pub(crate) fn unwatch(&self, watch: &Arc<crate::pattern::Watch>) {
        let target = Arc::as_ptr(watch);
        self.watches
            .lock()
            .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), target));
    }

    fn check(
        name: &str,
        entry: &TopicEntry,
        options: Option<&TopicOptions>,
    ) -> Result<TopicEntry, TopicError> {
        match options {
            Some(o) if !o.same_retention(entry.log.config()) => Err(TopicError::OptionsMismatch {
                topic: name.to_owned(),
            }),
            _ => Ok(entry.clone()),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<TopicEntry> {
        self.topics.read().get(name).cloned()
    }

    /// The stats of the consumer groups of the topic called `name` (none
    /// when it has none, or no such topic exists).
    pub(crate) fn group_stats_of(&self, name: &str) -> Vec<GroupStats> {
        self.get(name)
            .map(|e| e.group_handles().iter().map(Group::stats).collect())
            .unwrap_or_default()
    }

    /// The groups map of `entry`, the topic called `name`, made for its
    /// first group and shared by every copy of the entry from then on;
    /// `None` when the topic has left the registry since `entry` was looked
    /// up (deleted, or the queue closed). It may not be closed yet: `close`
    /// and `delete_topic` take a topic out of the registry first, so a map
    /// of its own would let two first joins of one group make two groups
    /// over one open topic, each member receiving every message.
    fn groups_of(&self, name: &str, entry: &TopicEntry) -> Option<Groups> {
        if let Some(groups) = &entry.groups {
            return Some(groups.clone());
        }
        match self.topics.write().get_mut(name) {
            Some(current) if current.id == entry.id => {
                Some(current.groups.get_or_insert_with(Groups::default).clone())
            }
            _ => None,
        }
    }

    /// Every topic, with its name.
    pub(crate) fn entries(&self) -> Vec<(Arc<str>, TopicEntry)> {
        self.topics
            .read()
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    }

    /// The delivered count of every topic.
    #[cfg(feature = "metrics")]
    pub(crate) fn delivered_counts(&self) -> HashMap<Arc<str>, u64> {
        self.topics
            .read()
            .iter()
            .map(|(n, e)| (n.clone(), e.delivered.load(Ordering::Relaxed)))
            .collect()
    }

    /// True once [`MessageQueue::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes every topic and refuses new ones.
    fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        #[cfg(feature = "redis")]
        if let Some(remote) = &self.remote {
            remote.close();
        }
        let topics = std::mem::take(&mut *self.topics.write());
        for entry in topics.into_values() {
            entry.log.close();
        }
        self.wake_watches();
    }

    /// True once no topic can be created any more: the queue was closed,
    /// or no queue handle and no publisher (which creates its topic on
    /// its first publish) is left.
    pub(crate) fn no_new_topics(&self) -> bool {
        if self.is_closed() {
            // A topic whose creation began before the queue closed is
            // announced to the wildcard subscriptions under the topics
            // lock: wait for it, so that a subscription asking this and
            // then looking for new topics finds it.
            drop(self.topics.read());
            return true;
        }
        let writers = self.writers.lock();
        writers.queue_gone && writers.leases.is_empty()
    }

    /// Wakes the wildcard subscriptions' waiting receives (to see that no
    /// topic can come any more).
    fn wake_watches(&self) {
        let watches: Vec<_> = self
            .watches
            .lock()
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        for w in watches {
            w.take_wakers().into_iter().for_each(std::task::Waker::wake);
        }
    }

    /// The last `MessageQueue` handle is gone: close the topics nobody can
    /// publish to any more (the others close with their last publisher).
    fn queue_gone(&self) {
        let mut writers = self.writers.lock();
        writers.queue_gone = true;
        let orphans: Vec<TopicEntry> = self
            .topics
            .read()
            .iter()
            .filter(|(name, _)| !writers.leases.contains_key(*name))
            .map(|(_, entry)| entry.clone())
            .collect();
        drop(writers);
        for entry in orphans {
            entry.log.close();
        }
        self.wake_watches();
    }

    /// Removes topic `name` if `which` says so, unbinding the leases bound
    /// to it (checked and removed under one lock).
    pub(crate) fn remove_if(
        &self,
        name: &str,
        which: impl FnOnce(&TopicEntry) -> bool,
    ) -> Option<TopicEntry> {
        let mut writers = self.writers.lock();
        let mut topics = self.topics.write();
        if !topics.get(name).is_some_and(which) {
            return None;
        }
        let entry = topics.remove(name)?;
        drop(topics);
        if let Some(stale) = writers.bound.remove(&entry.id) {
            if let Some(n) = writers.leases.get_mut(name) {
                *n = n.saturating_sub(stale);
                if *n == 0 {
                    writers.leases.remove(name);
                }
            }
        }
        Some(entry)
    }
}

/// What a registry call does with a topic it made before registering it
/// ([`Registry::get_or_create_for`]).
pub(crate) type FirstUse<'a> = &'a dyn Fn(&Log) -> Result<(), TopicError>;

/// Whether a reader of every partition of `log` could start at `start`
/// (a subscribe tried and dropped): what a subscribe or a join checks
/// before it makes anything that would outlive its refusal.
pub(crate) fn try_start(log: &Log, start: StartFrom) -> Result<(), TopicError> {
    match log {
        Log::Plain(log) => log.subscribe(start).map(drop).map_err(TopicError::from),
        Log::Partitioned(log) => log.subscribe_all(start).map(drop).map_err(TopicError::from),
    }
}

/// Tells the registry when the last `MessageQueue` clone is dropped.
#[derive(Debug)]
struct Owner(Arc<Registry>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.queue_gone();
    }
}

/// An in-memory message queue: named topics that many tasks publish to and
/// many tasks read from.
///
/// Cloning is cheap and shares the topics. Creating a queue spawns nothing
/// and needs no runtime.
///
/// # Closing
///
/// Publishers and subscribers keep the queue alive: a function may create
/// a queue and return only a `Publisher` and a `Subscriber`, and they keep
/// working. A topic closes when nobody can publish to it any more, as a
/// channel closes when its senders are gone: once the last `MessageQueue`
/// clone is dropped (any clone can make new publishers) and the topic's
/// last [`Publisher`] is dropped. Its subscribers then receive what is
/// retained, then [`RecvError::Closed`](crate::RecvError::Closed). A
/// consumer group's members count as publishers of its dead-letter topic.
///
/// [`close`](Self::close) shuts everything down at once, and
/// [`delete_topic`](Self::delete_topic) one topic. Memory is freed when
/// the last handle of any kind is dropped.
///
/// # Examples
///
/// ```
/// use tokio_memq::MessageQueue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscriber("chat").await?;
/// mq.publisher("chat").publish("hello".to_string()).await?;
/// let msg = sub.recv().await?;
/// assert_eq!(msg.deserialize::<String>()?, "hello");
/// assert_eq!(mq.list_topics().await, vec!["chat".to_string()]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MessageQueue {
    owner: Arc<Owner>,
}

impl Default for MessageQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageQueue {
    /// Creates an empty queue. Works outside a runtime.
    ///
    /// # Examples
    ///
    /// No runtime is needed to create a queue or to publish without waiting;
    /// clones share the topics:
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// let mq = MessageQueue::new();
    /// let clone = mq.clone();
    /// assert_eq!(mq.publisher("boot").try_publish("first")?, 0);
    /// assert_eq!(clone.publisher("boot").try_publish("second")?, 1, "the same topic");
    /// assert!(!mq.is_closed());
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    pub(crate) fn with_registry(registry: Registry) -> Self {
        MessageQueue {
            owner: Arc::new(Owner(Arc::new(registry))),
        }
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.owner.0
    }

    /// Shuts the queue down: every topic closes and no topic can be
    /// created any more. Publishing fails with
    /// [`PublishError::Closed`](crate::PublishError::Closed) (the value is
    /// handed back), waiting publishers are woken with it, and subscribers
    /// first receive what each topic retains, then
    /// [`RecvError::Closed`](crate::RecvError::Closed). Closing twice does
    /// nothing.
    ///
    /// Dropping the queue does not close it while publishers live (see
    /// [Closing](Self#closing)); call this for a shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PublishError, RecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("jobs").await?;
    /// let publisher = mq.publisher("jobs");
    /// publisher.publish(1u32).await?;
    /// mq.close();
    /// assert!(mq.is_closed() && publisher.is_closed() && sub.is_closed());
    /// assert!(matches!(publisher.publish(2u32).await, Err(PublishError::Closed(2))));
    /// assert_eq!(sub.recv().await?.deserialize::<u32>()?, 1, "what was retained");
    /// assert!(matches!(sub.recv().await, Err(RecvError::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn close(&self) {
        self.registry().close_all();
        event!(debug, "queue closed");
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let clone = mq.clone();
    /// assert!(!clone.is_closed());
    /// mq.close();
    /// assert!(clone.is_closed(), "clones share the queue");
    /// assert_eq!(clone.subscriber("late").await.unwrap_err(), TopicError::Closed);
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.registry().is_closed()
    }

    /// A publisher for `topic`. The topic is created with default options
    /// on the first publish if nobody created it before.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let publisher = mq.publisher("events");
    /// assert!(mq.list_topics().await.is_empty(), "created on the first publish");
    /// assert_eq!(publisher.publish("started").await?, 0);
    /// assert_eq!(mq.list_topics().await, ["events"]);
    /// # Ok(()) }
    /// ```
    pub fn publisher(&self, topic: impl AsRef<str>) -> Publisher {
        Publisher::new(self.registry().clone(), topic.as_ref(), None)
    }

    /// A publisher for `topic` with a publisher key (which selects
    /// per-publisher serialization defaults).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationConfig, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.register_publisher_defaults("audit", SerializationFormat::Json, SerializationConfig::Default, None);
    /// let sub = mq.subscriber("events").await?;
    /// let audit = mq.publisher_with_key("events", "audit");
    /// assert_eq!(audit.publisher_key(), Some("audit"));
    /// audit.publish(vec![1, 2]).await?;
    /// mq.publisher("events").publish(vec![3, 4]).await?;
    /// assert_eq!(sub.recv().await?.format, SerializationFormat::Json);
    /// assert_eq!(sub.recv().await?.format, SerializationFormat::Native, "no key, no defaults");
    /// # Ok(()) }
    /// ```
    pub fn publisher_with_key(&self, topic: impl AsRef<str>, publisher_key: impl AsRef<str>) -> Publisher {
        Publisher::new(
            self.registry().clone(),
            topic.as_ref(),
            Some(publisher_key.as_ref()),
        )
    }

    /// Subscribes to `topic` (created with default options when absent),
    /// receiving messages published from now on.
    ///
    /// # Errors
    ///
    /// [`TopicError::Closed`] when the queue is shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.publisher("chat").publish("before").await?;
    /// let sub = mq.subscriber("chat").await?;
    /// mq.publisher("chat").publish("after").await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!((msg.offset(), msg.deserialize::<String>()?.as_str()), (1, "after"));
    /// # Ok(()) }
    /// ```
    pub async fn subscriber(&self, topic: impl AsRef<str>) -> Result<Subscriber, TopicError> {
        self.subscribe_async(topic.as_ref(), None, ConsumptionMode::default())
            .await
    }

    /// [`subscriber`](Self::subscriber) for threads that are not async,
    /// with the [`ConsumptionMode`] to start from (subscribing never
    /// waits; this may be called from async code too). Receive with
    /// [`Subscriber::blocking_recv`] and its kin, or [`Subscriber::iter`].
    ///
    /// # Errors
    ///
    /// As [`subscriber_with_options_and_mode`](Self::subscriber_with_options_and_mode)
    /// without options.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// let mq = MessageQueue::new();
    /// mq.publisher("log").blocking_publish("retained")?;
    /// let sub = mq.blocking_subscriber("log", ConsumptionMode::Earliest)?;
    /// assert_eq!(sub.blocking_recv()?.deserialize::<String>()?, "retained");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_subscriber(
        &self,
        topic: impl AsRef<str>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        self.subscribe(topic.as_ref(), None, mode)
    }

    /// Subscribes to every topic whose name matches `pattern`, with NATS
    /// subject rules: names are `.`-separated tokens, `*` matches any one
    /// token, `>` (as the last token) one or more trailing tokens. So
    /// `orders.*` matches `orders.eu` but neither `orders` nor
    /// `orders.eu.vip`; `orders.>` matches the last two.
    ///
    /// Topics that exist now are read from their next message (as
    /// [`subscriber`](Self::subscriber) does); topics created later, by
    /// anyone, from their first. Messages of one topic arrive in order,
    /// topics take turns; each message says its topic and its offset in
    /// it, and lag is reported per topic
    /// ([`PatternRecvError::Lagged`](crate::PatternRecvError::Lagged),
    /// [`PatternSubscriber::lag`](crate::PatternSubscriber::lag)).
    /// Partitioned topics are read in every partition.
    ///
    /// # Errors
    ///
    /// [`TopicError::InvalidPattern`] for a pattern with an empty token,
    /// `>` before the end, or `*`/`>` inside a token;
    /// [`TopicError::Closed`] when the queue is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let eu = mq.publisher("orders.eu");
    /// eu.publish("before").await?; // existing topics: from their next message
    /// let orders = mq.subscribe_pattern("orders.*")?;
    /// eu.publish("eu-1").await?;
    /// mq.publisher("orders.us").publish("us-1").await?; // created after: from its first
    /// mq.publisher("refunds.eu").publish("no match").await?;
    ///
    /// let mut got = vec![orders.recv().await?, orders.recv().await?];
    /// got.sort_by_key(|m| m.topic().to_string());
    /// let seen: Vec<(&str, u64)> = got.iter().map(|m| (m.topic(), m.offset())).collect();
    /// assert_eq!(seen, [("orders.eu", 1), ("orders.us", 0)]);
    ///
    /// assert!(matches!(mq.subscribe_pattern("orders*"), Err(TopicError::InvalidPattern { .. })));
    /// # Ok(()) }
    /// ```
    pub fn subscribe_pattern(&self, pattern: &str) -> Result<crate::PatternSubscriber, TopicError> {
        self.registry().local_only()?;
        crate::PatternSubscriber::new(self.registry().clone(), pattern)
    }

    /// Subscribes to `topic`, creating it with `options` when absent.
    ///
    /// # Errors
    ///
    /// [`TopicError::OptionsMismatch`] when the topic exists with
    /// different retention options, [`TopicError::InvalidOptions`] for
    /// options that cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let small = TopicOptions { max_messages: Some(100), ..TopicOptions::default() };
    /// let _first = mq.subscriber_with_options("metrics", small.clone()).await?;
    /// let _second = mq.subscriber_with_options("metrics", small).await?; // the same options: fine
    /// let err = mq.subscriber_with_options("metrics", TopicOptions::default()).await.unwrap_err();
    /// assert_eq!(err, TopicError::OptionsMismatch { topic: "metrics".into() });
    /// let zero = TopicOptions { max_messages: Some(0), ..TopicOptions::default() };
    /// assert!(matches!(mq.subscriber_with_options("none", zero).await, Err(TopicError::InvalidOptions(_))));
    /// # Ok(()) }
    /// ```
    pub async fn subscriber_with_options(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
    ) -> Result<Subscriber, TopicError> {
        self.subscribe_async(topic.as_ref(), Some(&options), ConsumptionMode::default())
            .await
    }

    /// Subscribes to `topic` from the position `mode` names, creating the
    /// topic with `options` when absent.
    ///
    /// # Errors
    ///
    /// As [`subscriber_with_options`](Self::subscriber_with_options), plus
    /// [`TopicError::OutOfRange`] for a [`ConsumptionMode::Offset`] outside
    /// the retained window (for a topic that does not exist yet, any offset
    /// but 0; a refused subscribe creates no topic).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, OutOfRange, TopicError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.publisher("log").publish_batch(vec!["a", "b", "c"]).await?;
    /// let options = TopicOptions::default();
    /// let replay = mq.subscriber_with_options_and_mode("log", options.clone(), ConsumptionMode::Earliest).await?;
    /// assert_eq!(replay.recv().await?.deserialize::<String>()?, "a");
    /// let err = mq.subscriber_with_options_and_mode("log", options, ConsumptionMode::Offset(5)).await.unwrap_err();
    /// assert_eq!(err, TopicError::OutOfRange(OutOfRange { requested: 5, low: 0, high: 3 }));
    /// # Ok(()) }
    /// ```
    pub async fn subscriber_with_options_and_mode(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        self.subscribe_async(topic.as_ref(), Some(&options), mode).await
    }

    /// Subscribes, on the server for a queue made by [`connect`](Self::connect).
    async fn subscribe_async(
        &self,
        topic: &str,
        options: Option<&TopicOptions>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            // A subscriber of a queue over Redis starts where asked, from
            // the newest message by default (it has no commit to resume).
            let mode = if mode == ConsumptionMode::LastOffset {
                ConsumptionMode::Latest
            } else {
                mode
            };
            let source = remote.subscribe(topic, options, mode, None).await?;
            return Ok(Subscriber::remote(self.registry().clone(), topic, source));
        }
        self.subscribe(topic, options, mode)
    }

    fn subscribe(
        &self,
        topic: &str,
        options: Option<&TopicOptions>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        // Tried on a topic made for this subscribe before it is
        // registered: a start it refuses leaves no topic behind.
        let try_start = |log: &Log| try_start(log, mode.start());
        let entry = self
            .registry()
            .get_or_create_for(topic, options, Some(&try_start))?;
        match &entry.log {
            Log::Plain(log) => {
                let cursor = log.subscribe(mode.start()).map_err(TopicError::from)?;
                Ok(Subscriber::new(
                    self.registry().clone(),
                    entry.log.clone(),
                    topic,
                    cursor,
                ))
            }
            Log::Partitioned(log) => {
                let merged = log.subscribe_all(mode.start()).map_err(TopicError::from)?;
                Ok(Subscriber::merged(
                    self.registry().clone(),
                    entry.log.clone(),
                    topic,
                    merged,
                ))
            }
        }
    }

    /// Registers serialization defaults for `topic` on this queue: values
    /// published with [`Publisher::publish`] (and the batch, timeout and
    /// keyed variants) are then serialized with `format`, `config` and
    /// `pipeline` instead of stored natively. Receivers decode them with
    /// [`TopicMessage::deserialize`](crate::TopicMessage::deserialize) or
    /// `recv_typed`.
    ///
    /// Precedence: the publisher's defaults (this queue's, then
    /// [`SerializationFactory`](crate::SerializationFactory)'s), then the
    /// topic's (this queue's, then the factory's), then native storage.
    ///
    /// The queue keeps every distinct setting it has encoded with for as
    /// long as it lives (retained payloads name theirs): registering the
    /// same settings again takes nothing, but processors are told apart by
    /// identity, so settings with a newly built
    /// [`ProcessorPair`](crate::ProcessorPair) take a new entry each time.
    /// Build processors once and register clones of them; past 32,767
    /// distinct settings a publish with new ones fails with
    /// [`PublishError::Encode`](crate::PublishError::Encode).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{CompressionConfig, JsonConfig, MessageQueue, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let pipeline = PipelineConfig { compression: CompressionConfig::Gzip { level: Some(6) }, pre: None, post: None, use_magic_header: true };
    /// mq.register_topic_defaults("logs", SerializationFormat::Json, SerializationConfig::Json(JsonConfig { pretty: false }), Some(pipeline));
    /// let sub = mq.subscriber("logs").await?;
    /// mq.publisher("logs").publish(vec!["line one", "line two"]).await?;
    /// let msg = sub.recv().await?;
    /// assert_eq!(msg.format, SerializationFormat::Json);
    /// assert_eq!(&msg.payload_bytes()[..3], b"TMQ");
    /// assert_eq!(msg.deserialize::<Vec<String>>()?, ["line one", "line two"]);
    /// # Ok(()) }
    /// ```
    pub fn register_topic_defaults(
        &self,
        topic: &str,
        format: memq_codec::SerializationFormat,
        config: memq_codec::SerializationConfig,
        pipeline: Option<memq_codec::PipelineConfig>,
    ) {
        self.registry()
            .defaults
            .register_topic_defaults(topic, format, config, pipeline);
    }

    /// Registers serialization defaults for publishers created with
    /// [`publisher_with_key`](Self::publisher_with_key)`(_, publisher_key)`
    /// on this queue; they win over topic defaults. Settings are kept as
    /// [`register_topic_defaults`](Self::register_topic_defaults) says:
    /// build processors once.
    ///
    /// # Examples
    ///
    /// A keyed publisher's defaults win over the topic's:
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationConfig, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.register_topic_defaults("events", SerializationFormat::Json, SerializationConfig::Default, None);
    /// mq.register_publisher_defaults("compact", SerializationFormat::MessagePack, SerializationConfig::Default, None);
    /// let sub = mq.subscriber("events").await?;
    /// mq.publisher("events").publish(1u8).await?;
    /// mq.publisher_with_key("events", "compact").publish(2u8).await?;
    /// assert_eq!(sub.recv().await?.format, SerializationFormat::Json);
    /// let msg = sub.recv().await?;
    /// assert_eq!((msg.format.clone(), msg.deserialize::<u8>()?), (SerializationFormat::MessagePack, 2));
    /// # Ok(()) }
    /// ```
    pub fn register_publisher_defaults(
        &self,
        publisher_key: &str,
        format: memq_codec::SerializationFormat,
        config: memq_codec::SerializationConfig,
        pipeline: Option<memq_codec::PipelineConfig>,
    ) {
        self.registry()
            .defaults
            .register_publisher_defaults(publisher_key, format, config, pipeline);
    }

    /// This queue's serialization defaults (to inspect or remove them).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, SerializationConfig, SerializationFormat};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.register_topic_defaults("logs", SerializationFormat::Json, SerializationConfig::Default, None);
    /// let defaults = mq.serialization_defaults();
    /// assert_eq!(defaults.topic_defaults("logs").map(|d| d.format), Some(SerializationFormat::Json));
    /// defaults.remove_topic_defaults("logs");
    /// let sub = mq.subscriber("logs").await?;
    /// mq.publisher("logs").publish("line").await?;
    /// assert_eq!(sub.recv().await?.format, SerializationFormat::Native, "stored natively again");
    /// # Ok(()) }
    /// ```
    pub fn serialization_defaults(&self) -> &memq_codec::DefaultsRegistry {
        &self.registry().defaults
    }

    /// Joins consumer group `group` of `topic` (created with default
    /// options when absent). Members of one group compete: each message
    /// goes to exactly one of them. `mode` places the group's position when
    /// it has no live member; `LastOffset` resumes after the group's last
    /// commit. Messages count as processed when received; see
    /// [`group`](Self::group) for manual acknowledgement.
    ///
    /// # Errors
    ///
    /// As [`subscriber_with_options_and_mode`](Self::subscriber_with_options_and_mode),
    /// plus [`TopicError::GroupConfigMismatch`] when the group exists with
    /// other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let a = mq.subscriber_group("jobs", "workers", ConsumptionMode::Earliest).await?;
    /// let b = mq.subscriber_group("jobs", "workers", ConsumptionMode::Earliest).await?;
    /// mq.publisher("jobs").publish_batch((0..10).collect::<Vec<u32>>()).await?;
    /// let mut seen = Vec::new();
    /// for member in [&a, &b] {
    ///     while let Ok(msg) = member.try_recv_now() {
    ///         seen.push(msg.offset());
    ///     }
    /// }
    /// seen.sort_unstable();
    /// assert_eq!(seen, (0..10).collect::<Vec<u64>>(), "each message once, to one member");
    /// drop((a, b));
    /// mq.publisher("jobs").publish(10u32).await?;
    /// let c = mq.subscriber_group("jobs", "workers", ConsumptionMode::LastOffset).await?;
    /// assert_eq!(c.recv().await?.offset(), 10, "resumes after the group's last commit");
    /// # Ok(()) }
    /// ```
    pub async fn subscriber_group(
        &self,
        topic: impl AsRef<str>,
        group: impl AsRef<str>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        self.group(topic, group).mode(mode).join().await
    }

    /// Like [`subscriber_group`](Self::subscriber_group), creating the
    /// topic with `options` when absent. `options.consume_idle_timeout`
    /// becomes the group's ack timeout (used with manual acknowledgement).
    ///
    /// # Errors
    ///
    /// As [`subscriber_group`](Self::subscriber_group), plus
    /// [`TopicError::OptionsMismatch`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, RecvError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// let worker = mq.subscriber_group_with_options("jobs", options, "workers", ConsumptionMode::Earliest).await?;
    /// for i in 0..5u32 {
    ///     mq.publisher("jobs").publish(i).await?;
    /// }
    /// assert_eq!(worker.recv().await.unwrap_err(), RecvError::Lagged(3));
    /// assert_eq!(worker.recv().await?.deserialize::<u32>()?, 3);
    /// # Ok(()) }
    /// ```
    pub async fn subscriber_group_with_options(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
        group: impl AsRef<str>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        self.group(topic, group).options(options).mode(mode).join().await
    }

    /// A builder for joining consumer group `group` of `topic` with the
    /// options 1.0.0 did not have: manual acknowledgement, an ack timeout,
    /// a delivery limit and a dead-letter topic.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let worker = mq
    ///     .group("jobs", "workers")
    ///     .manual_ack()
    ///     .ack_timeout(Duration::from_secs(30))
    ///     .max_deliveries(5)
    ///     .mode(ConsumptionMode::Earliest)
    ///     .join()
    ///     .await?;
    /// mq.publisher("jobs").publish("resize image 7").await?;
    /// let job = worker.recv().await?;
    /// worker.ack(&job)?;
    /// assert_eq!(mq.get_group_stats("jobs", "workers").await.unwrap().pending, 0);
    /// # Ok(()) }
    /// ```
    pub fn group(&self, topic: impl AsRef<str>, group: impl AsRef<str>) -> GroupBuilder<'_> {
        GroupBuilder {
            queue: self,
            topic: topic.as_ref().to_owned(),
            group: group.as_ref().to_owned(),
            options: None,
            mode: ConsumptionMode::LastOffset,
            config: GroupConfig::default(),
            dead_letter_topic: None,
        }
    }

    /// Counters of consumer group `group` of `topic`, or `None` when either
    /// does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// assert!(mq.get_group_stats("jobs", "workers").await.is_none());
    /// let worker = mq.subscriber_group("jobs", "workers", ConsumptionMode::Earliest).await?;
    /// mq.publisher("jobs").publish_batch(vec!["a", "b", "c"]).await?;
    /// worker.recv().await?;
    /// let stats = mq.get_group_stats("jobs", "workers").await.expect("the group exists");
    /// assert_eq!((stats.members, stats.pending, stats.lag), (1, 0, 2));
    /// # Ok(()) }
    /// ```
    pub async fn get_group_stats(
        &self,
        topic: impl AsRef<str>,
        group: impl AsRef<str>,
    ) -> Option<GroupStats> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote
                .group_stats(topic.as_ref(), group.as_ref())
                .await
                .ok()
                .flatten();
        }
        let entry = self.registry().get(topic.as_ref())?;
        Some(entry.group(group.as_ref())?.group.stats())
    }

    /// Creates `topic` with `options`; does nothing when it exists with
    /// the same retention options.
    ///
    /// # Errors
    ///
    /// [`TopicError::OptionsMismatch`] when it exists with different
    /// options, [`TopicError::InvalidOptions`] for options that cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let options = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// mq.create_topic("recent", options.clone()).await?;
    /// mq.create_topic("recent", options).await?; // the same options again: nothing happens
    /// for i in 0..5u32 {
    ///     mq.publisher("recent").publish(i).await?;
    /// }
    /// assert_eq!(mq.get_topic_stats("recent").await.unwrap().message_count, 2);
    /// let err = mq.create_topic("recent", TopicOptions::default()).await.unwrap_err();
    /// assert_eq!(err, TopicError::OptionsMismatch { topic: "recent".into() });
    /// # Ok(()) }
    /// ```
    pub async fn create_topic(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
    ) -> Result<(), TopicError> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            // Asks the server, whatever handle this process holds: another
            // process may have deleted the topic since.
            return remote.open_fresh(topic.as_ref(), Some(&options)).await.map(drop);
        }
        self.registry()
            .get_or_create(topic.as_ref(), Some(&options))
            .map(drop)
    }

    /// Deletes `topic`: it closes, waiting publishers and subscribers are
    /// woken with a `Closed` error, and the name becomes free. Returns
    /// whether the topic existed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, RecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscriber("temp").await?;
    /// mq.publisher("temp").publish(1u8).await?;
    /// assert!(mq.delete_topic("temp").await);
    /// assert!(!mq.delete_topic("temp").await, "already gone");
    /// assert!(sub.is_closed() && mq.list_topics().await.is_empty());
    /// assert_eq!(sub.recv().await?.offset(), 0, "what it retained is still delivered");
    /// assert_eq!(sub.recv().await.unwrap_err(), RecvError::Closed);
    /// # Ok(()) }
    /// ```
    pub async fn delete_topic(&self, topic: impl AsRef<str>) -> bool {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.delete_topic(topic.as_ref()).await.unwrap_or(false);
        }
        let removed = self.registry().remove_if(topic.as_ref(), |_| true);
        self.deleted(topic.as_ref(), removed)
    }

    /// Closes a topic just removed from the registry; whether there was one.
    pub(crate) fn deleted(&self, _topic: &str, removed: Option<TopicEntry>) -> bool {
        match removed {
            Some(entry) => {
                entry.log.close();
                event!(debug, topic = _topic, "topic deleted");
                true
            }
            None => false,
        }
    }

    /// The names of all topics, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_topic("b", TopicOptions::default()).await?;
    /// mq.publisher("a").publish(1u8).await?;
    /// mq.create_partitioned_topic("c", TopicOptions::default(), 2).await?;
    /// assert_eq!(mq.list_topics().await, ["a", "b", "c"]);
    /// # Ok(()) }
    /// ```
    pub async fn list_topics(&self) -> Vec<String> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.list_topics().await.unwrap_or_default();
        }
        let mut names: Vec<String> = self
            .registry()
            .topics
            .read()
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Counters of `topic`, or `None` when it does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// assert!(mq.get_topic_stats("orders").await.is_none());
    /// let sub = mq.subscriber("orders").await?;
    /// mq.publisher("orders").publish_batch(vec![1u32, 2, 3]).await?;
    /// sub.recv().await?;
    /// let stats = mq.get_topic_stats("orders").await.expect("the topic exists");
    /// assert_eq!((stats.published, stats.message_count, stats.subscriber_count), (3, 3, 1));
    /// assert_eq!((stats.low_offset, stats.next_offset), (0, 3));
    /// # Ok(()) }
    /// ```
    pub async fn get_topic_stats(&self, topic: impl AsRef<str>) -> Option<TopicStats> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.registry().remote() {
            return remote.stats(topic.as_ref()).await.ok().flatten();
        }
        // No registry lock is held below: flushing takes group and topic
        // locks, and a stats sweep may wake publishers.
        let entry = self.registry().get(topic.as_ref())?;
        // Groups write their automatic commits lazily; make lags current.
        let groups: Vec<GroupStats> = entry
            .group_handles()
            .iter()
            .map(|g| {
                g.flush_commits();
                g.stats()
            })
            .collect();
        let mut stats = entry.log.stats();
        stats.subscriber_count = crate::options::with_group_members(stats.subscriber_count, &groups, None);
        Some(stats)
    }
}

/// Joins a consumer group with options beyond 1.0.0's; from
/// [`MessageQueue::group`].
///
/// # Examples
///
/// A group's settings are fixed by the first member to join:
///
/// ```
/// use tokio_memq::{MessageQueue, TopicError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let worker = mq.group("jobs", "workers").manual_ack().max_pending(100).join().await?;
/// assert_eq!(worker.group(), Some("workers"));
/// let err = mq.group("jobs", "workers").join().await.unwrap_err();
/// assert_eq!(err, TopicError::GroupConfigMismatch { group: "workers".into() });
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `join` is awaited"]
pub struct GroupBuilder<'a> {
    queue: &'a MessageQueue,
    topic: String,
    group: String,
    options: Option<TopicOptions>,
    mode: ConsumptionMode,
    config: GroupConfig,
    dead_letter_topic: Option<String>,
}

impl GroupBuilder<'_> {
    /// Options for the topic if it has to be created (and checked against
    /// it otherwise). `consume_idle_timeout` becomes the ack timeout unless
    /// [`ack_timeout`](Self::ack_timeout) is given.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let small = TopicOptions { max_messages: Some(2), ..TopicOptions::default() };
    /// let _worker = mq.group("jobs", "workers").options(small).join().await?;
    /// for i in 0..5u32 {
    ///     mq.publisher("jobs").publish(i).await?;
    /// }
    /// assert_eq!(mq.get_topic_stats("jobs").await.unwrap().message_count, 2, "created with them");
    /// let err = mq.group("jobs", "audit").options(TopicOptions::default()).join().await.unwrap_err();
    /// assert_eq!(err, TopicError::OptionsMismatch { topic: "jobs".into() });
    /// # Ok(()) }
    /// ```
    pub fn options(mut self, options: TopicOptions) -> Self {
        if self.config.ack_timeout.is_none() {
            self.config = self.config.ack_timeout(options.consume_idle_timeout);
        }
        self.options = Some(options);
        self
    }

    /// Where the group starts when it has no live member (default
    /// `LastOffset`: after its last commit, else at the next message).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.publisher("jobs").publish_batch(vec!["old 1", "old 2"]).await?;
    /// let replay = mq.group("jobs", "replay").mode(ConsumptionMode::Earliest).join().await?;
    /// let fresh = mq.group("jobs", "fresh").join().await?; // LastOffset: no commit yet, so new ones only
    /// mq.publisher("jobs").publish("new").await?;
    /// assert_eq!(replay.recv().await?.offset(), 0);
    /// assert_eq!(fresh.recv().await?.offset(), 2);
    /// # Ok(()) }
    /// ```
    pub fn mode(mut self, mode: ConsumptionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Messages stay pending until [`Subscriber::ack`]; a member that is
    /// dropped, or idle past the ack timeout, loses its pending messages to
    /// the other members.
    ///
    /// # Examples
    ///
    /// A message a member received and never acknowledged goes to another
    /// member when the first is dropped:
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let join = || mq.group("jobs", "workers").manual_ack().mode(ConsumptionMode::Earliest).join();
    /// let (crashes, survives) = (join().await?, join().await?);
    /// mq.publisher("jobs").publish("job 1").await?;
    /// assert_eq!(crashes.recv().await?.deliveries, 1);
    /// drop(crashes);
    /// let again = survives.recv().await?;
    /// assert_eq!((again.offset(), again.deliveries), (0, 2));
    /// survives.ack(&again)?;
    /// assert_eq!(mq.get_group_stats("jobs", "workers").await.unwrap().pending, 0);
    /// # Ok(()) }
    /// ```
    pub fn manual_ack(mut self) -> Self {
        self.config = self.config.ack(AckMode::Manual);
        self
    }

    /// How long a member may neither receive nor acknowledge before its
    /// pending messages go to other members (manual acknowledgement).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let join = || mq.group("jobs", "workers").manual_ack().ack_timeout(Duration::from_secs(30)).mode(ConsumptionMode::Earliest).join();
    /// let (stuck, other) = (join().await?, join().await?);
    /// mq.publisher("jobs").publish("job 1").await?;
    /// let _job = stuck.recv().await?; // never acknowledged, and `stuck` stays idle
    /// let start = Instant::now();
    /// let again = other.recv().await?;
    /// assert_eq!((again.offset(), again.deliveries), (0, 2));
    /// assert!(start.elapsed() >= Duration::from_secs(30));
    /// # Ok(()) }
    /// ```
    pub fn ack_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config = self.config.ack_timeout(Some(timeout));
        self
    }

    /// After this many deliveries without an acknowledgement a message
    /// goes to the dead-letter topic (manual acknowledgement).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let dead = mq.subscriber("jobs.dead-letters").await?; // the default dead-letter topic
    /// let join = || mq.group("jobs", "workers").manual_ack().max_deliveries(2).mode(ConsumptionMode::Earliest).join();
    /// let keeper = join().await?;
    /// mq.publisher("jobs").publish("poison").await?;
    /// for _ in 0..2 {
    ///     let failing = join().await?;
    ///     failing.recv().await?; // never acknowledged; dropped at the end of the loop
    /// }
    /// assert!(keeper.try_recv_now().is_err(), "not delivered a third time");
    /// let letter = dead.recv().await?;
    /// assert_eq!(letter.dead_letter().map(|d| (d.offset, d.deliveries)), Some((0, 2)));
    /// # Ok(()) }
    /// ```
    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.config = self.config.max_deliveries(Some(max));
        self
    }

    /// With manual acknowledgement: the most messages the group holds
    /// unacknowledged (default 10,000). At the limit members receive no
    /// new messages until one is acknowledged, so memory stays bounded and
    /// a topic with `lru_enabled: false` holds its publishers back. A limit
    /// of 0 makes [`join`](Self::join) fail with
    /// [`TopicError::InvalidGroupConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let worker = mq.group("jobs", "w").manual_ack().max_pending(1).mode(ConsumptionMode::Earliest).join().await?;
    /// mq.publisher("jobs").publish_batch(vec![1, 2]).await?;
    /// let first = worker.try_recv().await?;
    /// assert!(worker.try_recv().await.is_err(), "one unacknowledged is the limit");
    /// worker.ack(&first)?;
    /// assert_eq!(worker.try_recv().await?.offset(), 1);
    /// # Ok(()) }
    /// ```
    pub fn max_pending(mut self, max: usize) -> Self {
        self.config = self.config.max_pending(Some(max));
        self
    }

    /// On a partitioned topic, gives each partition to one member at a
    /// time (rebalanced as members join and leave), so messages with one
    /// key are processed in order by one member. The default shares every
    /// partition between all members.
    ///
    /// With manual acknowledgement, a rebalance (a member joining or
    /// leaving) hands what the previous owner of a moved partition holds
    /// unacknowledged to the new owner, as a redelivery (its `ack` then
    /// fails with [`AckError::NotOwned`](crate::AckError::NotOwned), and at
    /// [`max_deliveries`](Self::max_deliveries) it becomes a dead letter).
    /// An owner that holds messages past its
    /// [`ack_timeout`](Self::ack_timeout) without receiving or
    /// acknowledging has failed: its partitions go, with the messages it
    /// held, to the member whose receive finds it so (the others keep
    /// theirs), until its next receive (a stuck owner does not stall
    /// them). Its return is a rebalance too, so what the
    /// others took over from it comes back to it as redeliveries: set the
    /// ack timeout above the longest processing time. An owner waiting in
    /// a receive keeps its partitions and gets its messages back.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, Subscriber, TopicMessage, TopicOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.create_partitioned_topic("orders", TopicOptions::default(), 2).await?;
    /// mq.set_partition_routing("orders", PartitionRouting::Hash).await?;
    /// let join = || mq.group("orders", "shipping").exclusive().mode(ConsumptionMode::Earliest).join();
    /// let (a, b) = (join().await?, join().await?);
    /// for step in ["paid", "packed", "shipped"] {
    ///     mq.publish_to_partitioned(TopicMessage::new_with_key("orders", step, "order-9")?).await?;
    /// }
    /// let drain = |m: &Subscriber| std::iter::from_fn(|| m.try_recv_now().ok()).map(|m| m.offset()).collect::<Vec<_>>();
    /// let (from_a, from_b) = (drain(&a), drain(&b));
    /// assert!(from_a == [0, 1, 2] && from_b.is_empty() || from_b == [0, 1, 2] && from_a.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn exclusive(mut self) -> Self {
        self.config = self.config.assignment(Assignment::Exclusive);
        self
    }

    /// The topic dead letters are published to (default
    /// `"<topic>.dead-letters"`, created with default options).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let dead = mq.subscriber("failed-jobs").await?;
    /// let join = || mq.group("jobs", "workers").manual_ack().max_deliveries(1).dead_letter_topic("failed-jobs").mode(ConsumptionMode::Earliest).join();
    /// let (keeper, failing) = (join().await?, join().await?);
    /// mq.publisher("jobs").publish("poison").await?;
    /// failing.recv().await?;
    /// drop(failing); // never acknowledged
    /// assert!(keeper.try_recv_now().is_err(), "dead-lettered instead");
    /// let letter = dead.recv().await?;
    /// assert_eq!((letter.topic(), letter.dead_letter().unwrap().topic.as_ref()), ("failed-jobs", "jobs"));
    /// # Ok(()) }
    /// ```
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// The group's handle and dead-letter topic, if its settings are the
    /// ones asked for.
    fn check(&self, existing: GroupEntry) -> Result<(Group<Entry>, Option<Arc<str>>), TopicError> {
        let mut asked = self.config.clone();
        let group = existing.group.config();
        if group.ack == memq_groups::AckMode::Auto && asked.ack == memq_groups::AckMode::Auto {
            // The ack timeout counts only with manual acknowledgement: a
            // 1.0.0 caller may give `consume_idle_timeout` (which becomes
            // it) to some joins of an automatic group and not to others.
            asked.ack_timeout = group.ack_timeout;
        }
        // The dead-letter topic is one of its settings too (with the same
        // delivery limit, both have one or neither does).
        if *group != asked || existing.dead_letters != self.dead_letter_name() {
            return Err(TopicError::GroupConfigMismatch {
                group: self.group.clone(),
            });
        }
        Ok((existing.group, existing.dead_letters))
    }

    /// Where this join's group sends its dead letters: the topic named, or
    /// `"<topic>.dead-letters"`; `None` without a delivery limit.
    fn dead_letter_name(&self) -> Option<Arc<str>> {
        self.config.max_deliveries.map(|_| {
            self.dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{}.dead-letters", self.topic))
                .into()
        })
    }

    /// Joins the group.
    ///
    /// # Errors
    ///
    /// [`TopicError::OptionsMismatch`] or [`TopicError::InvalidOptions`]
    /// for the topic's options, [`TopicError::GroupConfigMismatch`] when
    /// the group exists with other settings,
    /// [`TopicError::InvalidGroupConfig`], [`TopicError::OutOfRange`] for
    /// a start offset outside the window, [`TopicError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, TopicError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let err = mq.group("jobs", "workers").manual_ack().max_pending(0).join().await.unwrap_err();
    /// assert!(matches!(err, TopicError::InvalidGroupConfig { ref group, .. } if group == "workers"));
    /// let member = mq.group("jobs", "workers").join().await?;
    /// mq.publisher("jobs").publish("job 1").await?;
    /// assert_eq!(member.recv().await?.deserialize::<String>()?, "job 1");
    /// # Ok(()) }
    /// ```
    pub async fn join(self) -> Result<Subscriber, TopicError> {
        #[cfg(feature = "redis")]
        if let Some(remote) = self.queue.registry().remote() {
            let source = remote
                .join(
                    &self.topic,
                    self.options.as_ref(),
                    &self.group,
                    self.mode,
                    &self.config,
                    self.dead_letter_topic.as_deref(),
                )
                .await?;
            return Ok(Subscriber::remote(
                self.queue.registry().clone(),
                &self.topic,
                source,
            ));
        }
        self.join_now()
    }

    /// [`join`](Self::join) for threads that are not async (joining never
    /// waits; this may be called from async code too).
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{ConsumptionMode, MessageQueue};
    ///
    /// let mq = MessageQueue::new();
    /// mq.publisher("jobs").blocking_publish_batch(vec![1u32, 2])?;
    /// let worker = std::thread::spawn({
    ///     let mq = mq.clone();
    ///     move || {
    ///         let member = mq.group("jobs", "workers").mode(ConsumptionMode::Earliest).blocking_join()?;
    ///         let batch = member.blocking_recv_batch(10)?;
    ///         anyhow::Ok(batch.len())
    ///     }
    /// });
    /// assert_eq!(worker.join().unwrap()?, 2);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_join(self) -> Result<Subscriber, TopicError> {
        self.join_now()
    }

    fn join_now(self) -> Result<Subscriber, TopicError> {
        // A refused join leaves nothing behind: settings the group cannot
        // work with, and a start outside the window, are refused before
        // a topic, a dead-letter topic or the group is made for it.
        self.config.validate().map_err(|e| group_error(&self.group, e))?;
        let start = self.mode.start();
        let registry = self.queue.registry();
        let entry = registry.get_or_create_for(
            &self.topic,
            self.options.as_ref(),
            Some(&|log: &Log| try_start(log, start)),
        )?;
        let existing = entry.group(&self.group);
        let (group, dead_letters) = match existing {
            Some(g) => self.check(g)?,
            None => {
                if matches!(start, StartFrom::Offset(_)) {
                    // Only an offset can be refused. (An eviction between
                    // this look and the join below can still refuse it:
                    // the group then stays registered, as one whose
                    // members all left.)
                    try_start(&entry.log, start)?;
                }
                let dead_letters = self.dead_letter_name();
                let sources = entry.log.partitions();
                let g = match &dead_letters {
                    Some(name) => {
                        // Created now, so that it can be subscribed to
                        // before the first dead letter; and before the
                        // groups map is locked, never while (creating a
                        // topic takes the registry's write lock).
                        registry.get_or_create(name, None)?;
                        let sink = dead_letter_sink(
                            Arc::downgrade(registry),
                            self.topic.as_str().into(),
                            name.clone(),
                            entry.log.is_partitioned(),
                        );
                        Group::with_dead_letters(&self.group, sources, self.config.clone(), sink)
                    }
                    None => Group::new(&self.group, sources, self.config.clone()),
                }
                .map_err(|e| group_error(&self.group, e))?;
                // The topic deleted (or the queue closed) meanwhile: as
                // a join that found it so.
                let groups = registry
                    .groups_of(&self.topic, &entry)
                    .ok_or(TopicError::Closed)?;
                let mut groups = groups.lock();
                match groups.get(&self.group) {
                    // Another join created it meanwhile.
                    Some(other) => {
                        let other = other.clone();
                        drop(groups);
                        self.check(other)?
                    }
                    None => {
                        let stored = GroupEntry {
                            group: g.clone(),
                            dead_letters: dead_letters.clone(),
                        };
                        groups.insert(self.group.clone(), stored);
                        (g, dead_letters)
                    }
                }
            }
        };
        // A member may publish to the dead-letter topic: it stays open
        // while the member lives (see `MessageQueue`'s Closing).
        let dead_letters = dead_letters.map(|name| PublisherLease::new(registry.clone(), name));
        let member = group.join(start).map_err(|e| group_error(&self.group, e))?;
        Ok(Subscriber::member(
            registry.clone(),
            entry.log.clone(),
            &self.topic,
            member,
            dead_letters,
        ))
    }
}

/// Publishes a group's dead letters to the topic named `name`, looked up
/// for each one, so that a dead-letter topic deleted and created again
/// receives them (and one deleted is created again, with default
/// options). Each carries where it came from ([`DeadLetterInfo`]) besides
/// its payload, key and format, weighed for that topic's byte budget. A
/// dead letter the topic refuses (full with `lru_enabled: false`, closed,
/// too large for it) is handed back to the group, which keeps it pending,
/// counted in its stats, and offers it again later: it is never dropped.
fn dead_letter_sink(
    registry: Weak<Registry>,
    source: Arc<str>,
    name: Arc<str>,
    partitioned: bool,
) -> DeadLetterSink<Entry> {
    Arc::new(move |d: DeadLetter<Entry>| {
        let Some(registry) = registry.upgrade() else {
            return Err(d);
        };
        let Ok(target) = registry.get_or_create(&name, None) else {
            return Err(d);
        };
        let info = DeadLetterInfo {
            topic: source.clone(),
            group: d.group.clone(),
            partition: partitioned.then_some(d.partition),
            offset: d.offset,
            deliveries: d.deliveries,
            reason: d.reason,
        };
        let mut letter = d.value.clone().into_dead_letter(info);
        if target.log.config().max_bytes.is_some() {
            // Weighed for the dead-letter topic's budget, not its source's.
            letter.weigh_native();
        }
        let published = match &target.log {
            Log::Plain(t) => t.try_publish(letter).is_ok(),
            Log::Partitioned(p) => {
                let key = letter.key.clone();
                p.try_publish(key.as_deref().map(str::as_bytes), letter).is_ok()
            }
        };
        if published {
            Ok(())
        } else {
            Err(d)
        }
    })
}

/// A group's refusal as this crate's error, each reason as its own kind.
pub(crate) fn group_error(group: &str, e: memq_groups::GroupError) -> TopicError {
    match e {
        memq_groups::GroupError::InvalidConfig(reason) => TopicError::InvalidGroupConfig {
            group: group.to_owned(),
            reason,
        },
        memq_groups::GroupError::NoSources => TopicError::InvalidGroupConfig {
            group: group.to_owned(),
            reason: "a group needs at least one topic to read",
        },
        memq_groups::GroupError::OutOfRange { range, .. } => TopicError::OutOfRange(range),
        memq_groups::GroupError::NoSuchPartition { partition, count } => TopicError::NoSuchPartition {
            partition,
            partitions: count,
        },
        // Closed, and anything a later memq-groups adds (its enum is
        // non-exhaustive) that stops a group from being joined.
        _ => TopicError::Closed,
    }
}
