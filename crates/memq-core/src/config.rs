//! How much a topic keeps, and what happens when it is full.

use std::num::NonZeroU64;
use std::time::Duration;

use crate::error::ConfigError;

/// What a full topic does with the next publish.
///
/// A topic is full when one more message would exceed
/// [`TopicConfig::max_messages`] or [`TopicConfig::max_bytes`].
///
/// # Examples
///
/// ```
/// use memq_core::{Overflow, PublishError, StartFrom, Topic, TopicConfig};
///
/// let config = TopicConfig::default().max_messages(Some(2));
/// let dropping = Topic::new(config.clone()).unwrap();
/// let blocking = Topic::new(config.overflow(Overflow::Block)).unwrap();
/// let _a = dropping.subscribe(StartFrom::Earliest).unwrap();
/// let _b = blocking.subscribe(StartFrom::Earliest).unwrap();
/// for i in 0..2 {
///     dropping.try_publish(i).unwrap();
///     blocking.try_publish(i).unwrap();
/// }
/// assert_eq!(dropping.try_publish(2), Ok(2)); // offset 0 is evicted
/// assert_eq!(dropping.stats().evicted, 1);
/// assert_eq!(blocking.try_publish(2), Err(PublishError::Full(2))); // `_b` has not read offset 0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Evict the oldest message to make room; publishers never wait.
    ///
    /// A subscriber that had not yet read an evicted message is told so:
    /// its next receive fails with
    /// [`RecvError::Lagged`](crate::RecvError::Lagged) carrying the exact
    /// number of offsets it skipped.
    #[default]
    DropOldest,
    /// Make the publisher wait until every live subscriber has moved past
    /// the oldest message, then evict it (Disruptor-style backpressure).
    ///
    /// Nothing is ever lost to a live subscriber. `try_publish` fails with
    /// [`PublishError::Full`](crate::PublishError::Full) instead of waiting.
    Block,
}

/// Retention and overflow settings of a [`Topic`](crate::Topic).
///
/// The defaults match tokio-memq 1.0.0: at most 10,000 messages, no byte
/// budget, no TTL, oldest evicted when full.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memq_core::{Overflow, TopicConfig};
///
/// let config = TopicConfig::default()
///     .max_messages(Some(1_000))
///     .max_bytes(Some(64 << 20))
///     .ttl(Some(Duration::from_secs(30)))
///     .overflow(Overflow::Block);
/// assert_eq!(config.max_messages, Some(1_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// The most messages the topic retains; `None` for no count limit.
    pub max_messages: Option<usize>,
    /// The most payload bytes the topic retains, as measured by the
    /// topic's weigher; `None` for no byte budget.
    pub max_bytes: Option<usize>,
    /// How long a message stays deliverable after it was published.
    /// Expired messages are never delivered; they are counted in
    /// [`TopicStats::expired`](crate::TopicStats::expired).
    pub ttl: Option<Duration>,
    /// What a full topic does with the next publish.
    pub overflow: Overflow,
    /// The offset the first message gets. Offsets are never reused, so a
    /// topic can publish `u64::MAX - first_offset` messages in its life;
    /// this knob exists to test behaviour near that limit.
    pub first_offset: u64,
    /// A label for diagnostics (the `topic` field of `tracing` events);
    /// changes nothing else.
    pub name: Option<std::sync::Arc<str>>,
    /// For a partition of a partitioned topic, its number: a label for
    /// diagnostics (the `partition` field of `tracing` events, whose
    /// totals are then the partition's); changes nothing else. (A `u16`:
    /// it fits where the settings had room, and a topic has at most
    /// 65,536 partitions.)
    pub partition: Option<u16>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            max_messages: Some(10_000),
            max_bytes: None,
            ttl: None,
            overflow: Overflow::DropOldest,
            first_offset: 0,
            name: None,
            partition: None,
        }
    }
}

impl TopicConfig {
    /// An unbounded topic: no count limit, no byte budget, no TTL.
    ///
    /// Memory grows with every message nobody evicts; prefer a bound.
    pub fn unbounded() -> Self {
        TopicConfig {
            max_messages: None,
            ..TopicConfig::default()
        }
    }

    /// Sets [`max_messages`](Self::max_messages).
    #[must_use]
    pub fn max_messages(mut self, max: Option<usize>) -> Self {
        self.max_messages = max;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    #[must_use]
    pub fn max_bytes(mut self, max: Option<usize>) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`overflow`](Self::overflow).
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Sets [`name`](Self::name).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::TopicConfig;
    ///
    /// let config = TopicConfig::default().name(Some("orders".into()));
    /// assert_eq!(config.name.as_deref(), Some("orders"));
    /// ```
    #[must_use]
    pub fn name(mut self, name: Option<std::sync::Arc<str>>) -> Self {
        self.name = name;
        self
    }

    /// Sets [`partition`](Self::partition).
    ///
    /// ```
    /// use memq_core::TopicConfig;
    ///
    /// let config = TopicConfig::default().partition(Some(3));
    /// assert_eq!(config.partition, Some(3));
    /// ```
    #[must_use]
    pub fn partition(mut self, partition: Option<u16>) -> Self {
        self.partition = partition;
        self
    }

    /// Sets [`first_offset`](Self::first_offset).
    #[must_use]
    pub fn first_offset(mut self, offset: u64) -> Self {
        self.first_offset = offset;
        self
    }

    /// Checks that the config can work; returns the TTL in nanoseconds
    /// (never zero: a zero TTL is refused), the form the hot path wants.
    pub(crate) fn validate(&self, has_weigher: bool) -> Result<Option<NonZeroU64>, ConfigError> {
        if self.max_messages == Some(0) {
            return Err(ConfigError::ZeroCapacity);
        }
        if self.max_bytes == Some(0) {
            return Err(ConfigError::ZeroByteBudget);
        }
        if self.max_bytes.is_some() && !has_weigher {
            return Err(ConfigError::ByteBudgetWithoutWeigher);
        }
        match self.ttl {
            None => Ok(None),
            Some(ttl) if ttl.is_zero() => Err(ConfigError::ZeroTtl),
            Some(ttl) => Ok(NonZeroU64::new(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))),
        }
    }
}
