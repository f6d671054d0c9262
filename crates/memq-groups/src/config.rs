//! How a group acknowledges, redelivers and assigns partitions.

use std::time::Duration;

/// When a delivered message counts as processed.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{AckError, AckMode, Group, GroupConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let auto = Group::new("auto", vec![topic.clone()], GroupConfig::default()).unwrap();
/// let config = GroupConfig::default().ack(AckMode::Manual);
/// let manual = Group::new("manual", vec![topic.clone()], config).unwrap();
/// let (a, m) = (auto.join(StartFrom::Earliest).unwrap(), manual.join(StartFrom::Earliest).unwrap());
/// topic.try_publish("x").unwrap();
/// let (from_a, from_m) = (a.try_recv().unwrap(), m.try_recv().unwrap());
///
/// assert_eq!(auto.stats().pending, 0); // processed on receive
/// assert_eq!(a.ack(from_a.partition, from_a.offset), Err(AckError::AutoAck));
/// assert_eq!(manual.stats().pending, 1); // until acknowledged
/// m.ack(from_m.partition, from_m.offset).unwrap();
/// assert_eq!(manual.stats().pending, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// On receive: the group's committed position advances as messages are
    /// handed out. A member that fails loses what it had received.
    #[default]
    Auto,
    /// On [`Member::ack`](crate::Member::ack): until then the message is
    /// pending with the member that received it, and is redelivered to
    /// another member if that one is dropped or stays idle past
    /// [`GroupConfig::ack_timeout`].
    Manual,
}

/// How the partitions of a multi-partition group are shared.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{Assignment, Group, GroupConfig};
///
/// let parts: Vec<Topic<&str>> = (0..2).map(|_| Topic::new(TopicConfig::default()).unwrap()).collect();
/// let config = GroupConfig::default().assignment(Assignment::Exclusive);
/// let group = Group::new("orders", parts.clone(), config).unwrap();
/// let a = group.join(StartFrom::Earliest).unwrap();
/// let b = group.join(StartFrom::Earliest).unwrap();
/// parts[0].try_publish("p0").unwrap();
/// parts[1].try_publish("p1").unwrap();
///
/// // Each member owns one partition and gets nothing from the other.
/// let (x, y) = (a.try_recv().unwrap(), b.try_recv().unwrap());
/// assert_ne!(x.partition, y.partition);
/// assert!(a.try_recv().is_err() && b.try_recv().is_err());
///
/// drop(b); // rebalanced: `a` owns both partitions now
/// parts[y.partition].try_publish("more").unwrap();
/// assert_eq!(a.try_recv().unwrap().value, "more");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignment {
    /// Every member takes from every partition: the most even load, no
    /// per-key order across members.
    #[default]
    Shared,
    /// Each partition is owned by one member at a time and rebalanced when
    /// members join or leave, so messages with one key (one partition) are
    /// processed in order by one member. With manual acknowledgement and
    /// an [`ack_timeout`](GroupConfig::ack_timeout), a member that has
    /// failed (holds messages past the timeout without receiving or
    /// acknowledging, and is not waiting in a receive) loses its
    /// partitions, with the messages it held, to the member whose receive
    /// finds it so (the other members keep theirs), until its next
    /// receive; a member waiting in a receive keeps them and
    /// gets its messages back as redeliveries. Coming back is a rebalance
    /// like any other: what the members covering for it hold of the
    /// partitions it gets back is redelivered to it (a message it was
    /// merely slow with can go to another member and back, three
    /// deliveries). Set the ack timeout above the longest processing time.
    Exclusive,
}

/// Settings of a [`Group`](crate::Group).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memq_groups::{AckMode, GroupConfig};
///
/// let config = GroupConfig::default()
///     .ack(AckMode::Manual)
///     .ack_timeout(Some(Duration::from_secs(30)))
///     .max_deliveries(Some(5))
///     .max_pending(Some(1_000));
/// assert_eq!(config.ack, AckMode::Manual);
/// assert_eq!(GroupConfig::default().max_pending, Some(10_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupConfig {
    /// When a delivered message counts as processed.
    pub ack: AckMode,
    /// With [`AckMode::Manual`]: a member that neither receives nor
    /// acknowledges for this long is considered failed, and its pending
    /// messages go to other members (under [`Assignment::Exclusive`] with
    /// its partitions, unless it is waiting in a receive: then they come
    /// back to it). `Duration::MAX` never runs out;
    /// zero is refused (with manual acknowledgement) by
    /// [`Group::new`](crate::Group::new).
    pub ack_timeout: Option<Duration>,
    /// With [`AckMode::Manual`]: a message delivered this many times
    /// without an acknowledgement goes to the dead-letter sink instead of
    /// an `n + 1`th delivery. `None`: no limit; `Some(0)` is refused
    /// (with manual acknowledgement) by [`Group::new`](crate::Group::new).
    pub max_deliveries: Option<u32>,
    /// How partitions are shared between members.
    pub assignment: Assignment,
    /// With [`AckMode::Manual`]: the most messages the group holds pending
    /// (handed out and not acknowledged, queued for redelivery, or dead
    /// letters waiting for the sink). At the limit members get no new
    /// messages (redeliveries still flow: a take-over or a member leaving
    /// turns its messages into redeliveries, not into room); a receive
    /// waits, and is woken when an acknowledgement, an expiry or a dead
    /// letter taken by the sink makes room (while dead letters the sink
    /// refused hold the group at the limit, a waiting member offers them
    /// again every 100 ms). The group's position then
    /// stops, so an
    /// [`Overflow::Block`](memq_core::Overflow::Block) topic holds its
    /// publishers back, and an evicting topic cannot make the group hold
    /// an unbounded number of messages. Default: `Some(10_000)`; `None`:
    /// no limit; `Some(0)` is refused by [`Group::new`](crate::Group::new).
    pub max_pending: Option<usize>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            ack: AckMode::default(),
            ack_timeout: None,
            max_deliveries: None,
            assignment: Assignment::default(),
            max_pending: Some(10_000),
        }
    }
}

impl GroupConfig {
    /// Sets [`ack`](Self::ack).
    #[must_use]
    pub fn ack(mut self, ack: AckMode) -> Self {
        self.ack = ack;
        self
    }

    /// Sets [`ack_timeout`](Self::ack_timeout).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets [`max_deliveries`](Self::max_deliveries).
    #[must_use]
    pub fn max_deliveries(mut self, max: Option<u32>) -> Self {
        self.max_deliveries = max;
        self
    }

    /// Sets [`max_pending`](Self::max_pending).
    #[must_use]
    pub fn max_pending(mut self, max: Option<usize>) -> Self {
        self.max_pending = max;
        self
    }

    /// Sets [`assignment`](Self::assignment).
    #[must_use]
    pub fn assignment(mut self, assignment: Assignment) -> Self {
        self.assignment = assignment;
        self
    }

    /// Checks for settings that cannot work, as
    /// [`Group::new`](crate::Group::new) does (a queue over another store
    /// checks with this too): `max_pending` of 0, and with manual
    /// acknowledgement `max_deliveries` of 0 (never delivered at all) or a
    /// zero `ack_timeout` (taken over the moment it is handed out).
    /// Automatic groups use neither of the last two.
    ///
    /// # Errors
    ///
    /// [`GroupError::InvalidConfig`](crate::GroupError::InvalidConfig)
    /// with the reason.
    ///
    /// ```
    /// use memq_groups::{AckMode, GroupConfig};
    /// use std::time::Duration;
    ///
    /// let manual = GroupConfig::default().ack(AckMode::Manual);
    /// assert!(manual.clone().validate().is_ok());
    /// assert!(manual.clone().ack_timeout(Some(Duration::ZERO)).validate().is_err());
    /// assert!(manual.max_deliveries(Some(0)).validate().is_err());
    /// // Unused by automatic groups:
    /// assert!(GroupConfig::default().ack_timeout(Some(Duration::ZERO)).validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), crate::GroupError> {
        use crate::GroupError::InvalidConfig;
        if self.max_pending == Some(0) {
            return Err(InvalidConfig("max_pending must be at least 1"));
        }
        if self.ack == AckMode::Manual {
            if self.max_deliveries == Some(0) {
                return Err(InvalidConfig("max_deliveries must be at least 1"));
            }
            if self.ack_timeout == Some(Duration::ZERO) {
                return Err(InvalidConfig("ack_timeout must be more than zero"));
            }
        }
        Ok(())
    }
}
