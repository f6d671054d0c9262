//! Error types of consumer groups.

use std::fmt;

pub use memq_core::{OutOfRange, RecvError, TryRecvError};

/// A group that cannot be created or joined as asked.
///
/// # Examples
///
/// ```
/// use memq_core::{OutOfRange, StartFrom, Topic, TopicConfig};
/// use memq_groups::{Group, GroupConfig, GroupError};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// topic.try_publish(1).unwrap();
/// let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
/// let err = group.join(StartFrom::Offset(5)).unwrap_err();
/// let range = OutOfRange { requested: 5, low: 0, high: 1 };
/// assert_eq!(err, GroupError::OutOfRange { partition: 0, range });
///
/// let member = group.join(StartFrom::Earliest).unwrap();
/// assert_eq!(member.seek(3, 0), Err(GroupError::NoSuchPartition { partition: 3, count: 1 }));
/// drop(member);
/// topic.close();
/// assert_eq!(group.join(StartFrom::Earliest).unwrap_err(), GroupError::Closed);
/// ```
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
///
/// # Examples
///
/// A member idle past the ack timeout loses its message to another member:
///
/// ```
/// use std::time::Duration;
/// use memq_core::{StartFrom, Topic, TopicConfig};
/// use memq_groups::{AckError, AckMode, Group, GroupConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let topic = Topic::new(TopicConfig::default())?;
/// let config = GroupConfig::default().ack(AckMode::Manual).ack_timeout(Some(Duration::from_secs(5)));
/// let group = Group::new("jobs", vec![topic.clone()], config)?;
/// let (slow, other) = (group.join(StartFrom::Earliest)?, group.join(StartFrom::Earliest)?);
/// topic.publish("job").await?;
/// let job = slow.try_recv()?;
///
/// tokio::time::advance(Duration::from_secs(6)).await;
/// assert_eq!(other.try_recv()?.deliveries, 2); // taken over
/// assert_eq!(slow.ack(job.partition, job.offset), Err(AckError::NotOwned { partition: 0, offset: 0 }));
/// # Ok(())
/// # }
/// ```
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
