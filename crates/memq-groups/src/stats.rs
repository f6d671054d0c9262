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
    /// Messages delivered and not yet acknowledged (manual mode).
    pub pending: usize,
    /// Deliveries after the first, over the group's life.
    pub redeliveries: u64,
    /// Messages given to the dead-letter sink.
    pub dead_lettered: u64,
    /// Pending messages dropped because they reached their topic's TTL
    /// before they could be delivered again (expired messages are never
    /// delivered), over the group's life. The committed position moves
    /// past them as for an acknowledgement.
    pub expired: u64,
}
