//! Error types of consumer groups.

use std::fmt;

pub use memq_core::{OutOfRange, RecvError, TryRecvError};

/// A group that cannot be created or joined as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    /// A group needs at least one topic (partition) to read.
    NoSources,
    /// A start offset outside the retained window of a partition.
    OutOfRange {
        /// The partition.
        partition: usize,
        /// The window it missed.
        range: OutOfRange,
    },
    /// A partition index the group does not have.
    NoSuchPartition {
        /// The index asked for.
        partition: usize,
        /// How many partitions the group reads.
        count: usize,
    },
    /// The topic was closed.
    Closed,
    /// A setting the group cannot work with (the reason says which).
    InvalidConfig(&'static str),
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::NoSources => f.write_str("a group needs at least one topic to read"),
            GroupError::OutOfRange { partition, range } => write!(f, "partition {partition}: {range}"),
            GroupError::NoSuchPartition { partition, count } => {
                write!(f, "partition {partition} out of range (the group reads {count})")
            }
            GroupError::Closed => f.write_str("topic closed"),
            GroupError::InvalidConfig(reason) => write!(f, "invalid group config: {reason}"),
        }
    }
}

impl std::error::Error for GroupError {}

/// An acknowledgement that could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckError {
    /// The message is not pending with this member: it was acknowledged
    /// already, taken over by another member after this one went idle,
    /// dead-lettered, or never delivered to this member.
    NotOwned {
        /// The partition.
        partition: usize,
        /// The offset.
        offset: u64,
    },
    /// The group acknowledges automatically on receive; there is nothing
    /// to acknowledge.
    AutoAck,
    /// A partition index the group does not have.
    NoSuchPartition {
        /// The index asked for.
        partition: usize,
    },
    /// A commit of an offset that has not been published.
    NotPublished {
        /// The partition.
        partition: usize,
        /// The offset.
        offset: u64,
        /// The next offset the partition will assign.
        high: u64,
    },
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::NotOwned { partition, offset } => write!(
                f,
                "message {offset} of partition {partition} is not pending with this member"
            ),
            AckError::AutoAck => f.write_str("the group acknowledges on receive; nothing to acknowledge"),
            AckError::NoSuchPartition { partition } => write!(f, "partition {partition} out of range"),
            AckError::NotPublished {
                partition,
                offset,
                high,
            } => write!(
                f,
                "cannot commit offset {offset} of partition {partition}: not published (next is {high})"
            ),
        }
    }
}

impl std::error::Error for AckError {}
