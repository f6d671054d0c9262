//! Counters of one group.

/// Progress of a group, read under the group's lock (never the topics').
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{Group, GroupConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// let group = Group::new("search", vec![topic.clone()], GroupConfig::default()).unwrap();
/// let member = group.join(StartFrom::Earliest).unwrap();
/// for i in 0..3 { topic.try_publish(i).unwrap(); }
/// member.try_recv().unwrap();
///
/// let stats = group.stats();
/// assert_eq!((stats.name.as_str(), stats.members, stats.readers), ("search", 1, vec![1]));
/// // Auto mode: a message is processed once handed out.
/// assert_eq!((stats.committed, stats.lag, stats.pending), (vec![Some(0)], 2, 0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Live members.
    pub members: usize,
    /// Receives parked in the group, waiting for messages: one per member
    /// waiting in `recv`, unless a member runs several receives at once. A
    /// receive woken for a message is not counted, nor one that has not
    /// run its claim yet (or found the group's lock taken and will try
    /// again).
    pub waiting: usize,
    /// The committed offset per partition: everything up to and including
    /// it is processed.
    pub committed: Vec<Option<u64>>,
    /// Per partition, the live members that may receive from it: every
    /// member with [`Assignment::Shared`](crate::Assignment::Shared); with
    /// [`Assignment::Exclusive`](crate::Assignment::Exclusive) its one
    /// owner (1 while the group has members, 0 without).
    pub readers: Vec<usize>,
    /// Messages published after the group's committed position, over all
    /// partitions: what it has not handed out yet and, with manual
    /// acknowledgement, everything from the oldest message not yet
    /// acknowledged on (messages acknowledged out of order above it
    /// included: the commit moves past a message only once every message
    /// before it is acknowledged). A count of offsets: messages that
    /// expired or were evicted unread count until the group's position
    /// moves past them.
    pub lag: u64,
    /// Manual mode: messages delivered and not yet acknowledged, queued
    /// for redelivery, or waiting for the dead-letter sink (see
    /// [`dead_letters_waiting`](Self::dead_letters_waiting)); what
    /// [`GroupConfig::max_pending`](crate::GroupConfig::max_pending) bounds.
    pub pending: usize,
    /// Deliveries after the first, over the group's life.
    pub redeliveries: u64,
    /// Dead letters the sink took, over the group's life.
    pub dead_lettered: u64,
    /// Dead letters the sink refused (a full or closed dead-letter topic),
    /// kept by the group and offered again at its later receives and
    /// acknowledgements. Included in [`pending`](Self::pending); the
    /// committed position stays below them.
    pub dead_letters_waiting: usize,
    /// Pending messages dropped because they reached their topic's TTL
    /// before they could be delivered again (expired messages are never
    /// delivered), over the group's life. The committed position moves
    /// past them as for an acknowledgement.
    pub expired: u64,
}

impl GroupStats {
    /// Stats of a group named `name` with nothing in it, for other
    /// backends of a group (a queue over a network store) to fill in.
    ///
    /// ```
    /// let stats = memq_groups::GroupStats::empty("billing");
    /// assert_eq!((stats.name.as_str(), stats.members, stats.lag), ("billing", 0, 0));
    /// ```
    pub fn empty(name: impl Into<String>) -> Self {
        GroupStats {
            name: name.into(),
            members: 0,
            waiting: 0,
            committed: Vec::new(),
            readers: Vec::new(),
            lag: 0,
            pending: 0,
            redeliveries: 0,
            dead_lettered: 0,
            dead_letters_waiting: 0,
            expired: 0,
        }
    }
}
