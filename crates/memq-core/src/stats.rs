//! A point-in-time view of a topic, readable without waiting for its lock.

/// Counters of one topic, read from atomics (never blocks publishers).
///
/// Fields are read one by one, so under concurrent publishing they are
/// each exact but not a single atomic snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// The oldest retained offset.
    pub low: u64,
    /// The offset the next message will get.
    pub high: u64,
    /// Messages retained now (`high - low`), including any that have
    /// expired but have not been swept yet.
    pub depth: u64,
    /// Retained payload bytes, as measured by the topic's weigher (0
    /// without one).
    pub bytes: usize,
    /// Messages ever published.
    pub published: u64,
    /// Messages removed to make room. With
    /// [`Overflow::Block`](crate::Overflow::Block) only messages every
    /// live subscriber had already read are removed.
    pub evicted: u64,
    /// Messages removed because their TTL ran out.
    pub expired: u64,
    /// Live cursors.
    pub subscribers: usize,
    /// Named consumers, live or not, with their committed positions.
    pub consumers: Vec<ConsumerStats>,
}

/// Progress of one named consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// The consumer's name.
    pub name: String,
    /// The last offset it committed.
    pub committed: Option<u64>,
    /// Messages published after its committed position (or after where it
    /// first started, before any commit).
    pub lag: u64,
    /// Live cursors with this name.
    pub live: usize,
}
