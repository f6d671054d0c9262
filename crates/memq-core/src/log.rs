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
    /// Publish time of offset `low - 1`, once anything has been removed.
    /// A subscriber that finds itself below `low` uses it to tell whether
    /// everything it skipped had expired anyway.
    pub(crate) last_removed_ts: Option<u64>,
}

impl<T> Log<T> {
    pub(crate) fn new(first_offset: u64) -> Self {
        Log {
            entries: VecDeque::new(),
            low: first_offset,
            bytes: 0,
            last_removed_ts: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The offset the next message will get.
    pub(crate) fn high(&self) -> u64 {
        self.low + self.entries.len() as u64
    }

    /// Removes the oldest message. The log must not be empty.
    pub(crate) fn pop_front(&mut self, weigh: Option<fn(&T) -> usize>) -> Option<T> {
        let slot = self.entries.pop_front()?;
        self.low += 1;
        self.last_removed_ts = Some(slot.ts);
        if let Some(weigh) = weigh {
            self.bytes -= weigh(&slot.value);
        }
        Some(slot.value)
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

    /// Publish time of the newest message, retained or not.
    pub(crate) fn newest_ts(&self) -> Option<u64> {
        self.entries.back().map(|s| s.ts).or(self.last_removed_ts)
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
            log.entries.push_back(Slot { ts: i, value: i });
            log.bytes += 1;
        }
        assert_eq!((log.low, log.high(), log.len()), (7, 10, 3));
        assert_eq!(log.pop_front(Some(|_| 1)), Some(0));
        assert_eq!((log.low, log.high(), log.bytes), (8, 10, 2));
        assert_eq!(log.last_removed_ts, Some(0));
        assert_eq!(log.front_ts(), Some(1));
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
