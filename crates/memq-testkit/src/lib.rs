//! Test support shared by the workspace's test suites (not published).
//!
//! [`History`] records every publish and every delivery of a concurrent
//! run and reports the anomalies a message queue must never show: lost
//! messages, duplicates, deliveries that do not match what was published
//! at that offset, per-partition order violations, and skips that were not
//! announced as a lag. [`alloc`] is a counting global allocator for tests
//! of memory bounds. [`proxy`] is a TCP proxy that can go silent while its
//! connections stay open (a hung server). [`Turns`] paces fairness runs: it publishes only
//! while every member is parked in its receive. [`redis_server`] starts a
//! `redis-server` of a test's own. [`machine`] measures how long a cache
//! line takes between two CPUs (benchmark reports say which period of the
//! shared machine they ran in). [`within`] bounds an await in time and
//! fails a future that is ready only when polled without a wake-up.

#![warn(missing_docs)]

pub mod alloc;
pub mod machine;
pub mod proxy;
pub mod redis_server;
mod turns;
mod woken;

pub use turns::{Seen, Turns};
pub use woken::{within, NotWoken};

/// How much bigger the long tier runs: `MEMQ_STRESS` (set by
/// `cargo xtask stress`), at least 1.
pub fn stress_scale() -> u32 {
    std::env::var("MEMQ_STRESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Runs a loom model and reports how many schedules it explored, under
/// the test's name (shown by `cargo xtask loom`, which runs the models
/// with `--nocapture`). Only with `--cfg memq_loom`.
#[cfg(memq_loom)]
pub fn loom_model<F: Fn() + Sync + Send + 'static>(f: F) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let name = std::thread::current().name().unwrap_or("model").to_string();
    eprintln!(
        "loom: {name}: {} schedules explored",
        runs.load(Ordering::Relaxed)
    );
}

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

/// How messages are expected to reach consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Competing consumers (a group): every message to exactly one of them.
    ExactlyOnce,
    /// Broadcast: every message to each of `consumers`, except what a
    /// consumer was told it lagged over.
    EveryConsumer {
        /// How many consumers.
        consumers: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Delivery {
    consumer: usize,
    partition: usize,
    offset: u64,
    id: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// (partition, offset) -> message id.
    published: HashMap<(usize, u64), u64>,
    deliveries: Vec<Delivery>,
    /// (consumer, partition) -> total offsets announced as skipped.
    lagged: HashMap<(usize, usize), u64>,
}

/// A thread-safe log of a run; see the crate docs.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Inner>,
}

/// What [`History::check`] found. Empty vectors mean no anomaly.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Messages published.
    pub published: usize,
    /// Deliveries recorded.
    pub delivered: usize,
    /// Message ids never delivered (to anyone, or to some consumer).
    pub lost: Vec<u64>,
    /// Message ids delivered more often than expected.
    pub duplicated: Vec<u64>,
    /// Deliveries whose id is not what was published at that offset.
    pub mismatched: Vec<(usize, u64)>,
    /// (consumer, partition, previous offset, next offset) where a consumer
    /// saw a partition's offsets go backwards.
    pub out_of_order: Vec<(usize, usize, u64, u64)>,
    /// (consumer, partition, offsets skipped but not announced).
    pub unannounced_skips: Vec<(usize, usize, u64)>,
}

impl Report {
    /// True when no anomaly was found.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.mismatched.is_empty()
            && self.out_of_order.is_empty()
            && self.unannounced_skips.is_empty()
    }

    /// Panics with the report unless it is clean.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "history anomalies: {self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn few<T: fmt::Debug>(v: &[T]) -> String {
            let shown: Vec<_> = v.iter().take(8).collect();
            format!("{} {:?}{}", v.len(), shown, if v.len() > 8 { " ..." } else { "" })
        }
        write!(
            f,
            "published {}, delivered {}; lost {}; duplicated {}; mismatched {}; out of order {}; unannounced skips {}",
            self.published,
            self.delivered,
            few(&self.lost),
            few(&self.duplicated),
            few(&self.mismatched),
            few(&self.out_of_order),
            few(&self.unannounced_skips)
        )
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that message `id` was published at `offset` of `partition`.
    pub fn published(&self, partition: usize, offset: u64, id: u64) {
        self.lock().published.insert((partition, offset), id);
    }

    /// Records that `consumer` received message `id` from `offset` of
    /// `partition`.
    pub fn delivered(&self, consumer: usize, partition: usize, offset: u64, id: u64) {
        self.lock().deliveries.push(Delivery {
            consumer,
            partition,
            offset,
            id,
        });
    }

    /// Records that `consumer` was told it skipped `n` offsets of
    /// `partition` (a `Lagged(n)` error).
    pub fn lagged(&self, consumer: usize, partition: usize, n: u64) {
        *self.lock().lagged.entry((consumer, partition)).or_default() += n;
    }

    /// Checks the run against `expect`.
    pub fn check(&self, expect: Expect) -> Report {
        let inner = self.lock();
        let mut report = Report {
            published: inner.published.len(),
            delivered: inner.deliveries.len(),
            ..Report::default()
        };
        // Per consumer and partition, deliveries in the order they happened.
        let mut seen: BTreeMap<(usize, usize), Vec<u64>> = BTreeMap::new();
        let mut counts: HashMap<(usize, u64), usize> = HashMap::new();
        for d in &inner.deliveries {
            if inner.published.get(&(d.partition, d.offset)) != Some(&d.id) {
                report.mismatched.push((d.partition, d.offset));
            }
            seen.entry((d.consumer, d.partition)).or_default().push(d.offset);
            let who = match expect {
                Expect::ExactlyOnce => 0,
                Expect::EveryConsumer { .. } => d.consumer,
            };
            *counts.entry((who, d.id)).or_default() += 1;
        }
        for (&(consumer, partition), offsets) in &seen {
            for w in offsets.windows(2) {
                if w[1] <= w[0] {
                    report.out_of_order.push((consumer, partition, w[0], w[1]));
                }
            }
            if let Expect::EveryConsumer { .. } = expect {
                let gaps: u64 = offsets.windows(2).map(|w| w[1].saturating_sub(w[0] + 1)).sum();
                let announced = inner.lagged.get(&(consumer, partition)).copied().unwrap_or(0);
                if gaps > announced {
                    report
                        .unannounced_skips
                        .push((consumer, partition, gaps - announced));
                }
            }
        }
        let mut ids: Vec<u64> = inner.published.values().copied().collect();
        ids.sort_unstable();
        let consumers = match expect {
            Expect::ExactlyOnce => 1,
            Expect::EveryConsumer { consumers } => consumers,
        };
        for c in 0..consumers {
            let mut missing = Vec::new();
            for &id in &ids {
                match counts.get(&(c, id)).copied().unwrap_or(0) {
                    0 => missing.push(id),
                    1 => {}
                    _ => report.duplicated.push(id),
                }
            }
            // A consumer may miss exactly as many messages as it was told
            // it lagged over; anything beyond that is lost.
            let announced: u64 = inner
                .lagged
                .iter()
                .filter(|((consumer, _), _)| *consumer == c)
                .map(|(_, n)| *n)
                .sum();
            if missing.len() as u64 > announced {
                report.lost.extend(missing);
            }
        }
        report.lost.sort_unstable();
        report.lost.dedup();
        report.duplicated.sort_unstable();
        report.duplicated.dedup();
        report
    }
}

#[cfg(test)]
#[global_allocator]
static COUNTING: alloc::Counting = alloc::Counting;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counting_allocator_counts() {
        let _serial = alloc::serial();
        // The counters are global: the test harness's own threads allocate
        // and free a few KiB meanwhile, so measure in MiB with slack.
        const MIB: isize = 1 << 20;
        const SLACK: isize = 256 << 10;
        let before = alloc::live();
        let v: Vec<u8> = Vec::with_capacity(MIB as usize);
        assert!(alloc::live() - before >= MIB - SLACK);
        let mut w = v;
        w.reserve_exact(2 * MIB as usize);
        assert!(alloc::live() - before >= 2 * MIB - SLACK);
        drop(w);
        alloc::reset_peak();
        assert!(alloc::peak() >= alloc::live());
    }

    #[test]
    fn finds_each_kind_of_anomaly() {
        // Serial with the allocator test, which counts every allocation.
        let _serial = alloc::serial();
        let h = History::new();
        for i in 0..5 {
            h.published(0, i, 100 + i);
        }
        h.delivered(0, 0, 0, 100);
        h.delivered(0, 0, 2, 102); // skipped offset 1, unannounced
        h.delivered(0, 0, 2, 102); // duplicate, and not increasing
        h.delivered(0, 0, 3, 999); // mismatched id
        let r = h.check(Expect::EveryConsumer { consumers: 1 });
        assert_eq!(r.lost, vec![101, 103, 104]);
        assert_eq!(r.duplicated, vec![102]);
        assert_eq!(r.mismatched, vec![(0, 3)]);
        assert_eq!(r.out_of_order, vec![(0, 0, 2, 2)]);
        assert_eq!(r.unannounced_skips, vec![(0, 0, 1)]);
        assert!(!r.is_clean());
    }

    #[test]
    fn clean_runs_are_clean() {
        // Serial with the allocator test, which counts every allocation.
        let _serial = alloc::serial();
        let h = History::new();
        for i in 0..4 {
            h.published(0, i, i);
        }
        h.delivered(0, 0, 0, 0);
        h.delivered(1, 0, 1, 1);
        h.delivered(0, 0, 2, 2);
        h.delivered(1, 0, 3, 3);
        h.check(Expect::ExactlyOnce).assert_clean();
        let b = History::new();
        for i in 0..4 {
            b.published(0, i, i);
        }
        b.delivered(0, 0, 0, 0);
        b.lagged(0, 0, 2);
        b.delivered(0, 0, 3, 3);
        let r = b.check(Expect::EveryConsumer { consumers: 1 });
        assert!(r.unannounced_skips.is_empty() && r.duplicated.is_empty(), "{r}");
    }
}
