//! The retained window of a topic: offsets `[low, high)` in a ring.
//!
//! Everything here runs under the topic lock; it is plain data-structure
//! code with no synchronisation of its own.

use std::collections::VecDeque;

/// One retained message and the time it was published, in nanoseconds
/// since the topic's clock epoch.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pub(crate) ts: u64,
    pub(crate) value: T,
}

#[derive(Debug)]
pub(crate) struct Log<T> {
    pub(crate) entries: VecDeque<Slot<T>>,
    /// Offset of `entries[0]`; every offset below it has been removed.
    pub(crate) low: u64,
    /// Sum of the weights of the retained messages.
    pub(crate) bytes: usize,
    /// Publish time of the newest message appended, retained or not
    /// (publish times never go down with offsets, even past removals).
    /// Kept here, on the line every publish writes anyway, rather than
    /// read back from the newest slot (another publisher's CPU wrote that
    /// line: a cache miss per publish under the lock).
    pub(crate) newest_ts: Option<u64>,
    /// Why each offset below `low` was removed, so that a cursor found
    /// below the window is told exactly how many it lost to eviction.
    pub(crate) removed: Removals,
}

/// Why a message left the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Evicted to make room: a reader that had not read it lagged.
    Evicted,
    /// Expired: skipped silently, as if it had been delivered and dropped.
    Expired,
}

/// The removed offsets `[start, low)` as runs of one removal kind.
///
/// Exact for the newest [`MAX_RUNS`] runs. Older runs are merged into a
/// prefix `[start, merged_end)` of which only the number evicted is kept,
/// so a cursor resuming inside it may hear of more than it lost (at most
/// that number, and at most the offsets it skipped there), never of fewer.
#[derive(Debug)]
pub(crate) struct Removals {
    /// The first offset the topic ever had.
    start: u64,
    /// Where the merged prefix ends (`start` while nothing is merged).
    merged_end: u64,
    /// How many offsets of the merged prefix were evicted.
    merged_evicted: u64,
    /// `(end, kind)`: offsets from the previous run's end (or
    /// `merged_end`) up to `end`, exclusive, were removed for `kind`.
    runs: VecDeque<(u64, Removal)>,
}

/// Runs kept exactly; a topic alternating between expiry and eviction
/// keeps at most this many (16 bytes each).
pub(crate) const MAX_RUNS: usize = 256;

impl Removals {
    fn new(start: u64) -> Self {
        Removals {
            start,
            merged_end: start,
            merged_evicted: 0,
            runs: VecDeque::new(),
        }
    }

    /// Records that `offset`, the next offset after everything recorded
    /// so far, was removed for `kind`.
    fn record(&mut self, offset: u64, kind: Removal) {
        self.record_run(offset, 1, kind);
    }

    /// Records that the `n` offsets from `offset` on, the next after
    /// everything recorded so far, were removed for `kind`.
    fn record_run(&mut self, offset: u64, n: u64, kind: Removal) {
        if n == 0 {
            return;
        }
        if let Some((end, k)) = self.runs.back_mut() {
            if *k == kind && *end == offset {
                *end += n;
                return;
            }
        }
        if self.runs.len() == MAX_RUNS {
            if let Some((end, oldest)) = self.runs.pop_front() {
                if oldest == Removal::Evicted {
                    self.merged_evicted += end - self.merged_end;
                }
                self.merged_end = end;
            }
        }
        self.runs.push_back((offset + n, kind));
    }

    /// How many offsets in `[from, to)` were evicted; `to` is at most the
    /// window's `low`.
    pub(crate) fn evicted_in(&self, from: u64, to: u64) -> u64 {
        // In the merged prefix: as many as were skipped there, but never
        // more than it evicted.
        let skipped = self.merged_end.min(to).saturating_sub(from.max(self.start));
        let mut count = skipped.min(self.merged_evicted);
        let mut run_start = self.merged_end;
        for &(end, kind) in &self.runs {
            if run_start >= to {
                break;
            }
            if kind == Removal::Evicted {
                count += end.min(to).saturating_sub(run_start.max(from));
            }
            run_start = end;
        }
        count
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }
}

impl<T> Log<T> {
    pub(crate) fn new(first_offset: u64) -> Self {
        Log {
            entries: VecDeque::new(),
            low: first_offset,
            bytes: 0,
            newest_ts: None,
            removed: Removals::new(first_offset),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The offset the next message will get.
    pub(crate) fn high(&self) -> u64 {
        self.low + self.entries.len() as u64
    }

    /// Removes the oldest message, recording why.
    pub(crate) fn pop_front(&mut self, weigh: Option<fn(&T) -> usize>, why: Removal) -> Option<T> {
        let slot = self.entries.pop_front()?;
        self.removed.record(self.low, why);
        self.low += 1;
        if let Some(weigh) = weigh {
            // Saturating, as the sum is (see `Shared::push`).
            self.bytes = self.bytes.saturating_sub(weigh(&slot.value));
        }
        Some(slot.value)
    }

    /// Evicts the `n` oldest messages into `garbage`, which together
    /// weigh `weight`: one record of the removal, one allocation for the
    /// values, where `n` single removals recorded and grew one by one.
    pub(crate) fn evict_front(&mut self, n: usize, weight: usize, garbage: &mut Garbage<T>) {
        let n = n.min(self.entries.len());
        if n == 0 {
            return;
        }
        self.removed.record_run(self.low, n as u64, Removal::Evicted);
        self.low += n as u64;
        self.bytes = self.bytes.saturating_sub(weight);
        if n == 1 {
            // One per publish on a full topic: no iterator to set up.
            if let Some(slot) = self.entries.pop_front() {
                garbage.push(slot.value);
            }
        } else {
            garbage.take_all(self.entries.drain(..n).map(|slot| slot.value));
        }
    }

    /// Makes room for `additional` more messages, growing geometrically
    /// but never past `max` slots: a full bounded topic holds exactly
    /// `max_messages` slots, not the next power of two.
    pub(crate) fn reserve(&mut self, additional: usize, max: usize) {
        let need = self.entries.len() + additional;
        let cap = self.entries.capacity();
        if need > cap {
            let target = cap.saturating_mul(2).max(16).min(max).max(need);
            self.entries.reserve_exact(target - self.entries.len());
        }
    }

    /// Publish time of the oldest retained message.
    pub(crate) fn front_ts(&self) -> Option<u64> {
        self.entries.front().map(|s| s.ts)
    }

    /// Appends one message published at `ts`.
    pub(crate) fn push_back(&mut self, ts: u64, value: T) {
        self.entries.push_back(Slot { ts, value });
        self.newest_ts = Some(ts);
    }

    /// Appends messages all published at `ts`.
    pub(crate) fn extend(&mut self, ts: u64, values: impl IntoIterator<Item = T>) {
        let before = self.entries.len();
        self.entries
            .extend(values.into_iter().map(|value| Slot { ts, value }));
        if self.entries.len() > before {
            self.newest_ts = Some(ts);
        }
    }
}

/// Values removed under the lock, dropped after it is released so that a
/// payload's `Drop` (a 100 MB free, or user code) never runs under it.
///
/// The common case, one eviction per publish, needs no allocation.
#[derive(Debug)]
pub(crate) struct Garbage<T> {
    one: Option<T>,
    many: Vec<T>,
}

impl<T> Garbage<T> {
    pub(crate) fn new() -> Self {
        Garbage {
            one: None,
            many: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.one.is_none() {
            self.one = Some(value);
        } else {
            self.many.push(value);
        }
    }

    /// Takes every value of `values`, allocating at most once.
    fn take_all(&mut self, mut values: impl ExactSizeIterator<Item = T>) {
        if self.one.is_none() {
            self.one = values.next();
        }
        self.many.reserve_exact(values.len());
        self.many.extend(values);
    }
}

/// True when a message published at `ts` is no longer deliverable at `now`.
pub(crate) fn is_expired(ts: u64, now: u64, ttl: u64) -> bool {
    now.saturating_sub(ts) >= ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_arithmetic() {
        let mut log = Log::new(7);
        assert_eq!(log.high(), 7);
        for i in 0..3u64 {
            log.push_back(i, i);
            log.bytes += 1;
        }
        assert_eq!((log.low, log.high(), log.len()), (7, 10, 3));
        assert_eq!(log.pop_front(Some(|_| 1), Removal::Evicted), Some(0));
        assert_eq!((log.low, log.high(), log.bytes), (8, 10, 2));
        assert_eq!(log.newest_ts, Some(2), "the newest time outlives removals");
        assert_eq!(log.front_ts(), Some(1));
    }

    /// Evicting a run at once leaves the window, the byte sum, the
    /// removal record and the values to drop as evicting one at a time
    /// does, whatever the garbage already held.
    #[test]
    fn evicting_a_run_is_evicting_one_at_a_time() {
        for n in [0usize, 1, 2, 5, 9] {
            let (mut run, mut single) = (Log::new(3), Log::new(3));
            for log in [&mut run, &mut single] {
                for i in 0..8u64 {
                    log.push_back(i, i);
                    log.bytes += 2;
                }
                // An earlier expiry, so that the first eviction starts a run.
                log.pop_front(Some(|_| 2), Removal::Expired);
            }
            let (mut g_run, mut g_single) = (Garbage::new(), Garbage::new());
            g_run.push(100);
            g_single.push(100);
            let k = n.min(run.len());
            run.evict_front(n, 2 * k, &mut g_run);
            for _ in 0..k {
                let v = single.pop_front(Some(|_| 2), Removal::Evicted).unwrap();
                g_single.push(v);
            }
            assert_eq!(
                (run.low, run.high(), run.bytes),
                (single.low, single.high(), single.bytes),
                "n = {n}"
            );
            assert_eq!(run.front_ts(), single.front_ts());
            assert_eq!(run.removed.runs(), single.removed.runs());
            for from in 3..=run.low {
                assert_eq!(
                    run.removed.evicted_in(from, run.low),
                    single.removed.evicted_in(from, single.low),
                    "n = {n}, from {from}"
                );
            }
            assert_eq!((g_run.one, g_run.many), (g_single.one, g_single.many), "n = {n}");
        }
        // Into empty garbage: the first value is kept apart, as `push` does.
        let mut log = Log::new(0);
        (0..4u64).for_each(|i| log.push_back(0, i));
        let mut g = Garbage::new();
        log.evict_front(3, 0, &mut g);
        assert_eq!((g.one, g.many), (Some(0), vec![1, 2]));
        assert_eq!(log.removed.evicted_in(0, 3), 3);
    }

    #[test]
    fn removals_count_evictions_exactly() {
        let mut r = Removals::new(10);
        // 10..13 expired, 13..15 evicted, 15 expired, 16..18 evicted.
        for (o, evicted) in [
            (10, false),
            (11, false),
            (12, false),
            (13, true),
            (14, true),
            (15, false),
            (16, true),
            (17, true),
        ] {
            r.record(
                o,
                if evicted {
                    Removal::Evicted
                } else {
                    Removal::Expired
                },
            );
        }
        assert_eq!(r.runs(), 4);
        assert_eq!(r.evicted_in(10, 18), 4);
        assert_eq!(r.evicted_in(0, 18), 4, "offsets before the first never existed");
        assert_eq!(r.evicted_in(14, 17), 2);
        assert_eq!(r.evicted_in(15, 16), 0);
        assert_eq!(r.evicted_in(12, 14), 1);
        assert_eq!(r.evicted_in(18, 18), 0);
    }

    #[test]
    fn removals_stay_bounded_and_over_report_only() {
        let mut r = Removals::new(0);
        for o in 0..10_000u64 {
            let kind = if o % 2 == 0 {
                Removal::Expired
            } else {
                Removal::Evicted
            };
            r.record(o, kind);
        }
        assert_eq!(r.runs(), MAX_RUNS);
        // The newest runs are exact ...
        let recent = 10_000 - MAX_RUNS as u64 + 1;
        let odd = (recent..10_000).filter(|o| o % 2 == 1).count() as u64;
        assert_eq!(r.evicted_in(recent, 10_000), odd);
        // ... and the merged prefix never counts more than it evicted.
        assert_eq!(r.evicted_in(0, 10_000), 5_000);
        // A cursor inside it hears of at least what it lost there.
        let lost = (5_000..10_000).filter(|o| o % 2 == 1).count() as u64;
        let told = r.evicted_in(5_000, 10_000);
        assert!((lost..=lost + 2_500).contains(&told), "{told}");
    }

    #[test]
    fn expiry_boundary() {
        assert!(!is_expired(10, 19, 10));
        assert!(is_expired(10, 20, 10));
        assert!(
            !is_expired(30, 20, 10),
            "a clock that went backwards expires nothing"
        );
    }
}
