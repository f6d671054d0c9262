//! Helpers shared by the behaviour tests.

#![allow(dead_code, unreachable_pub)]

use memq_testkit::within;
use std::future::Future;
use std::time::Duration;

use memq_core::{Cursor, TopicConfig};
use memq_partition::PartitionedTopic;

/// Every test's bound in wall-clock time; generous for a loaded 2-core box.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `fut` under [`LIMIT`], failing the test if it takes longer.
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    within(LIMIT, fut).await.expect("test exceeded its time bound")
}

/// An unbounded partitioned topic of `n` partitions.
pub fn unbounded<T: Clone + Send + 'static>(n: usize) -> PartitionedTopic<T> {
    PartitionedTopic::new(TopicConfig::unbounded(), n).unwrap()
}

/// Everything a cursor can deliver now, as values.
pub fn drain<T: Clone>(c: &mut Cursor<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(d) = c.try_recv() {
        out.push(d.value);
    }
    out
}

/// Everything retained in partition `p`, as `(offset, value)`.
pub fn partition_contents<T: Clone + Send + 'static>(topic: &PartitionedTopic<T>, p: usize) -> Vec<(u64, T)> {
    let mut c = topic
        .subscribe_partition(p, memq_core::StartFrom::Earliest)
        .unwrap();
    let mut out = Vec::new();
    while let Ok(d) = c.try_recv() {
        out.push((d.offset, d.value));
    }
    out
}
