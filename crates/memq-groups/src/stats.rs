//! Counters of one group.

/// Progress of a group, read under the group's lock (never the topics').
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Live members.
    pub members: usize,
    /// The committed offset per partition: everything up to and including
    /// it is processed.
    pub committed: Vec<Option<u64>>,
    /// Messages published that the group has not yet processed (not handed
    /// out, or handed out and not acknowledged), over all partitions.
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
