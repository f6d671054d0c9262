//! The queue: a registry of named topics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memq_core::Topic;
use parking_lot::RwLock;

use crate::error::TopicError;
use crate::message::Entry;
use crate::options::{ConsumptionMode, TopicOptions, TopicStats};
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;

/// A topic in the registry.
#[derive(Debug, Clone)]
pub(crate) struct TopicEntry {
    pub(crate) log: Topic<Entry>,
    pub(crate) options: TopicOptions,
}

/// State shared by a queue's handles, publishers and subscribers.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    topics: RwLock<HashMap<Arc<str>, TopicEntry>>,
    closed: AtomicBool,
}

impl Registry {
    /// The topic named `name`, created with `options` when absent.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        options: Option<&TopicOptions>,
    ) -> Result<TopicEntry, TopicError> {
        if let Some(entry) = self.topics.read().get(name) {
            return Self::check(name, entry, options);
        }
        let fresh = options.cloned().unwrap_or_default();
        // Build outside the write lock; only the insert happens under it.
        let log = Topic::with_weigher(fresh.to_config(), Entry::weight)?;
        let mut topics = self.topics.write();
        if self.closed.load(Ordering::Acquire) {
            return Err(TopicError::Closed);
        }
        if let Some(entry) = topics.get(name) {
            return Self::check(name, entry, options);
        }
        let entry = TopicEntry { log, options: fresh };
        topics.insert(name.into(), entry.clone());
        Ok(entry)
    }

    fn check(
        name: &str,
        entry: &TopicEntry,
        options: Option<&TopicOptions>,
    ) -> Result<TopicEntry, TopicError> {
        match options {
            Some(o) if !o.same_retention(&entry.options) => Err(TopicError::OptionsMismatch {
                topic: name.to_owned(),
            }),
            _ => Ok(entry.clone()),
        }
    }

    fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        let topics = std::mem::take(&mut *self.topics.write());
        for entry in topics.into_values() {
            entry.log.close();
        }
    }
}

/// Closes every topic when the last `MessageQueue` clone is dropped.
#[derive(Debug)]
struct Owner(Arc<Registry>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.close_all();
    }
}

/// An in-memory message queue: named topics that many tasks publish to and
/// many tasks read from.
///
/// Cloning is cheap and shares the topics. Creating a queue spawns nothing
/// and needs no runtime. When the last clone is dropped every topic
/// closes: waiting publishers and subscribers are woken with a `Closed`
/// error (subscribers first receive what was retained).
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
    pub fn new() -> Self {
        MessageQueue {
            owner: Arc::new(Owner(Arc::new(Registry::default()))),
        }
    }

    fn registry(&self) -> &Arc<Registry> {
        &self.owner.0
    }

    /// A publisher for `topic`. The topic is created with default options
    /// on the first publish if nobody created it before.
    pub fn publisher(&self, topic: impl AsRef<str>) -> Publisher {
        Publisher::new(self.registry().clone(), topic.as_ref(), None)
    }

    /// A publisher for `topic` with a publisher key (which selects
    /// per-publisher serialization defaults).
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
    pub async fn subscriber(&self, topic: impl AsRef<str>) -> Result<Subscriber, TopicError> {
        self.subscribe(topic.as_ref(), None, ConsumptionMode::default())
    }

    /// Subscribes to `topic`, creating it with `options` when absent.
    ///
    /// # Errors
    ///
    /// [`TopicError::OptionsMismatch`] when the topic exists with
    /// different retention options, [`TopicError::InvalidOptions`] for
    /// options that cannot work.
    pub async fn subscriber_with_options(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
    ) -> Result<Subscriber, TopicError> {
        self.subscribe(topic.as_ref(), Some(&options), ConsumptionMode::default())
    }

    /// Subscribes to `topic` from the position `mode` names, creating the
    /// topic with `options` when absent.
    ///
    /// # Errors
    ///
    /// As [`subscriber_with_options`](Self::subscriber_with_options), plus
    /// [`TopicError::OutOfRange`] for a [`ConsumptionMode::Offset`] outside
    /// the retained window.
    pub async fn subscriber_with_options_and_mode(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        self.subscribe(topic.as_ref(), Some(&options), mode)
    }

    fn subscribe(
        &self,
        topic: &str,
        options: Option<&TopicOptions>,
        mode: ConsumptionMode,
    ) -> Result<Subscriber, TopicError> {
        let entry = self.registry().get_or_create(topic, options)?;
        let cursor = entry.log.subscribe(mode.start()).map_err(|e| match e {
            memq_core::SubscribeError::OutOfRange(r) => TopicError::OutOfRange(r),
            _ => TopicError::Closed,
        })?;
        Ok(Subscriber::new(topic, cursor))
    }

    /// Creates `topic` with `options`; does nothing when it exists with
    /// the same retention options.
    ///
    /// # Errors
    ///
    /// [`TopicError::OptionsMismatch`] when it exists with different
    /// options, [`TopicError::InvalidOptions`] for options that cannot work.
    pub async fn create_topic(
        &self,
        topic: impl AsRef<str>,
        options: TopicOptions,
    ) -> Result<(), TopicError> {
        self.registry()
            .get_or_create(topic.as_ref(), Some(&options))
            .map(drop)
    }

    /// Deletes `topic`: it closes, waiting publishers and subscribers are
    /// woken with a `Closed` error, and the name becomes free. Returns
    /// whether the topic existed.
    pub async fn delete_topic(&self, topic: impl AsRef<str>) -> bool {
        let removed = self.registry().topics.write().remove(topic.as_ref());
        match removed {
            Some(entry) => {
                entry.log.close();
                true
            }
            None => false,
        }
    }

    /// The names of all topics, sorted.
    pub async fn list_topics(&self) -> Vec<String> {
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
    pub async fn get_topic_stats(&self, topic: impl AsRef<str>) -> Option<TopicStats> {
        let log = self.registry().topics.read().get(topic.as_ref())?.log.clone();
        Some(log.stats().into())
    }
}
