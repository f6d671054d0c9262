//! The retained window of a topic: offsets `[low, high)` in chunks of
//! slots (`chunk.rs`).
//!
//! Everything here runs under the topic lock, except reading lent slots:
//! a reader borrows the chunks it will read ([`Log::lend`]) and clones
//! the values after the lock is released.

use std::collections::VecDeque;

use crate::chunk::{Lent, Owned, Spare};

/// One retained message and the time it was published, in nanoseconds
/// since the topic's clock epoch.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pub(crate) ts: u64,
    pub(crate) value: T,
}

/// Slots per chunk (fewer for a topic that holds fewer messages; a power
/// of two): 4 KiB of slots for the facade's 64-byte slot, so a reader's
/// 128-message read-ahead borrows two or three chunks.
pub(crate) const CHUNK_SLOTS: usize = 64;

/// Removed values that weigh this much each, on average, are moved out of
/// their chunk (to be dropped after the lock) as they are removed; lighter
/// ones leave with their chunk, once all its slots are removed (see
/// [`Log::collect_removed`]). So memory past a byte limit stays below 63
/// such values plus what a reader is copying.
pub(crate) const COLLECT_WEIGHT: usize = 4 * 1024;

/// The retained window. Its size is part of every topic's (an idle one's
/// included: `Shared`'s padded block holds it with no room to spare), so
/// what can be derived is (the chunk size from its shift), and the sum
/// of the weights is kept by the topic, in the counter stats read.
#[derive(Debug)]
pub(crate) struct Log<T> {
    /// The retained messages, from slot `head` of the first chunk on;
    /// every chunk but the last is full.
    chunks: VecDeque<Owned<T>>,
    /// A small topic's chunk emptied by removals, kept for the next one.
    spare: Option<Spare<T>>,
    /// Offset of the oldest retained message; every offset below it has
    /// been removed.
    pub(crate) low: u64,
    /// How many messages are retained.
    len: usize,
    /// Publish time of the newest message appended, retained or not (0
    /// before the first; publish times never go down with offsets, even
    /// past removals). Kept here, on the line every publish writes
    /// anyway, rather than read back from the newest slot (another
    /// publisher's CPU wrote that line: a cache miss per publish under
    /// the lock).
    pub(crate) newest_ts: u64,
    /// Why each offset below `low` was removed, so that a cursor found
    /// below the window is told exactly how many it lost to eviction.
    pub(crate) removed: Removals,
    /// Where `low` is in the first chunk.
    head: u8,
    /// Slots per chunk: `1 << chunk_shift`.
    chunk_shift: u8,
}

/// Why a message left the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Evicted to make room: a reader that had not read it lagged.
    Evicted,
    /// Expired: skipped silently, as if it had been delivered and dropped.
    Expired,
}

/// The removed offsets (the topic's first up to `low`) as runs of one removal kind.
///
/// Exact for the newest [`MAX_RUNS`] runs. Older runs are merged into a
/// prefix `[start, merged_end)` of which only the number evicted is kept,
/// so a cursor resuming inside it may hear of more than it lost (at most
/// that number, and at most the offsets it skipped there), never of fewer.
#[derive(Debug)]
pub(crate) struct Removals {
    /// Where the merged prefix ends (the topic's first offset while
    /// nothing is merged). Where it starts need not be kept: what a
    /// cursor below it is told is capped by `merged_evicted` either way.
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
            merged_end: start,
            merged_evicted: 0,
            runs: VecDeque::new(),
        }
    }

    /// Records that `offset`, the next offset after everything recorded
    /// so far, was removed for `kind`.
    #[cfg(test)]
    fn record(&mut self, offset: u64, kind: Removal) {
        self.record_run(offset, 1, kind);
    }

    /// Records that the `n` offsets from `offset` on, the next after
    /// everything recorded so far, were removed for `kind`.
    fn record_run(&mut self, offset: u64, n: u64, kind: Removal) {
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
        let skipped = self.merged_end.min(to).saturating_sub(from);
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
    /// An empty log whose first offset is `first_offset`, for a topic
    /// that holds at most `max_messages`.
    pub(crate) fn new(first_offset: u64, max_messages: usize) -> Self {
        // A power of two (offsets map to slots by shifts, not divisions),
        // no larger than a topic that holds fewer needs.
        let slots = max_messages.clamp(1, CHUNK_SLOTS).next_power_of_two();
        Log {
            chunks: VecDeque::new(),
            spare: None,
            low: first_offset,
            len: 0,
            newest_ts: 0,
            removed: Removals::new(first_offset),
            head: 0,
            chunk_shift: slots.trailing_zeros() as u8,
        }
    }

    fn chunk_slots(&self) -> usize {
        1 << self.chunk_shift
    }

    /// How many messages are retained.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The offset the next message will get.
    pub(crate) fn high(&self) -> u64 {
        self.low + self.len() as u64
    }

    /// The `i`-th retained message, oldest first.
    pub(crate) fn get(&self, i: usize) -> Option<&Slot<T>> {
        if i >= self.len {
            return None;
        }
        let at = usize::from(self.head) + i;
        self.chunks
            .get(at >> self.chunk_shift)?
            .get(at & (self.chunk_slots() - 1))
    }

    /// The retained messages from the `skip`-th on, oldest first.
    pub(crate) fn iter_from(&self, skip: usize) -> impl Iterator<Item = &Slot<T>> + '_ {
        let at = usize::from(self.head) + skip.min(self.len);
        let (first, i) = (at >> self.chunk_shift, at & (self.chunk_slots() - 1));
        self.chunks
            .range(first.min(self.chunks.len())..)
            .enumerate()
            .flat_map(move |(k, chunk)| chunk.slots_from(if k == 0 { i } else { 0 }))
    }

    /// Removes the oldest message, recording why; returns its weight
    /// (`None` when the log is empty). As
    /// [`remove_front`](Self::remove_front) for one message.
    pub(crate) fn pop_front(
        &mut self,
        weigh: Option<fn(&T) -> usize>,
        why: Removal,
        garbage: &mut Garbage<T>,
    ) -> Option<usize> {
        let slot = self.get(0)?;
        let weight = weigh.map_or(0, |weigh| weigh(&slot.value));
        self.remove_front(1, weight, why, garbage);
        Some(weight)
    }

    /// Removes the `n` oldest messages (at most every one), which weigh
    /// `weight` together (the caller keeps the sum), recording why. A chunk whose every slot is
    /// removed goes to `garbage` whole (a small topic's is emptied into it
    /// and kept); the values of the others stay in their chunk until it
    /// goes, or, when they weigh [`COLLECT_WEIGHT`] each on average, until
    /// [`collect_removed`](Self::collect_removed) is called.
    pub(crate) fn remove_front(&mut self, n: usize, weight: usize, why: Removal, garbage: &mut Garbage<T>) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        self.removed.record_run(self.low, n as u64, why);
        self.low += n as u64;
        self.len -= n;
        let slots = self.chunk_slots();
        let mut head = usize::from(self.head) + n;
        while head >= slots {
            let Some(chunk) = self.chunks.pop_front() else {
                break;
            };
            head -= slots;
            // A small topic's chunk costs less to empty than another to
            // allocate; a full-size one goes whole, its values dropped
            // with it after the lock (or by the last reader holding it).
            let chunk = if slots < CHUNK_SLOTS {
                match chunk.into_spare(&mut |v| garbage.push(v)) {
                    Ok(spare) => {
                        self.spare = Some(spare);
                        continue;
                    }
                    Err(chunk) => chunk,
                }
            } else {
                chunk
            };
            garbage.chunk(chunk);
        }
        // Below `CHUNK_SLOTS`, so it fits.
        self.head = head as u8;
        if self.chunks.is_empty() {
            self.head = 0;
        }
        if weight >= COLLECT_WEIGHT.saturating_mul(n) {
            self.collect_removed(garbage);
        }
    }

    /// Moves the values removed from the first chunk to `garbage`, unless
    /// a reader holds that chunk (then at the next call, or with the
    /// chunk).
    fn collect_removed(&mut self, garbage: &mut Garbage<T>) {
        let head = usize::from(self.head);
        if let Some(chunk) = self.chunks.front_mut() {
            chunk.take_front(head, &mut |v| garbage.push(v));
        }
    }

    /// Publish time of the oldest retained message.
    pub(crate) fn front_ts(&self) -> Option<u64> {
        self.get(0).map(|s| s.ts)
    }

    /// Appends one message published at `ts`.
    pub(crate) fn push_back(&mut self, ts: u64, value: T) {
        let mut slot = Slot { ts, value };
        loop {
            if let Some(chunk) = self.chunks.back_mut().filter(|c| !c.is_full()) {
                match chunk.push(slot) {
                    Ok(()) => break,
                    Err(back) => slot = back,
                }
            }
            let chunk = match self.spare.take() {
                Some(spare) => spare.into_owned(),
                None => Owned::new(self.chunk_slots()),
            };
            self.chunks.push_back(chunk);
        }
        self.len += 1;
        self.newest_ts = ts;
    }

    /// Appends messages all published at `ts`.
    pub(crate) fn extend(&mut self, ts: u64, values: impl IntoIterator<Item = T>) {
        let mut values = values.into_iter();
        while let Some(first) = values.next() {
            // The chunk `first` went to has room for more, or the loop
            // finds the next one.
            self.push_back(ts, first);
            if let Some(chunk) = self.chunks.back_mut() {
                self.len += chunk.fill(ts, &mut values);
            }
        }
    }

    /// Lends the slots of the `n` messages from `offset` on (within the
    /// window) to `out`, one [`Lent`] per chunk, to read after the lock;
    /// returns how many it lent.
    pub(crate) fn lend(&self, offset: u64, n: usize, out: &mut impl FnMut(Lent<T>)) -> usize {
        let Some(skip) = offset.checked_sub(self.low) else {
            return 0;
        };
        let slots = self.chunk_slots();
        let n = n.min(self.len.saturating_sub(skip as usize));
        let start = usize::from(self.head) + skip as usize;
        let (mut at, end) = (start, start + n);
        while at < end {
            let (chunk, i) = (at >> self.chunk_shift, at & (slots - 1));
            let upto = (i + (end - at)).min(slots);
            match self.chunks.get(chunk).and_then(|c| c.lend(i, upto)) {
                Some(lent) => out(lent),
                None => break,
            }
            at += upto - i;
        }
        at - start
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
    /// Chunks removed while a reader held them.
    chunks: Vec<Owned<T>>,
}

impl<T> Garbage<T> {
    pub(crate) fn new() -> Self {
        Garbage {
            one: None,
            many: Vec::new(),
            chunks: Vec::new(),
        }
    }

    pub(crate) fn chunk(&mut self, chunk: Owned<T>) {
        self.chunks.push(chunk);
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
        let mut log = Log::new(7, 1_000);
        assert_eq!(log.high(), 7);
        for i in 0..3u64 {
            log.push_back(i, i);
        }
        assert_eq!((log.low, log.high(), log.len()), (7, 10, 3));
        let mut garbage = Garbage::new();
        assert_eq!(
            log.pop_front(Some(|_| 1), Removal::Evicted, &mut garbage),
            Some(1)
        );
        assert_eq!(removed(&garbage), [0u64; 0], "a light value waits for its chunk");
        assert_eq!(
            log.pop_front(Some(|_| COLLECT_WEIGHT), Removal::Evicted, &mut garbage),
            Some(COLLECT_WEIGHT)
        );
        assert_eq!(
            removed(&garbage),
            [0, 1],
            "a heavy one goes at once, with those before it"
        );
        assert_eq!((log.low, log.high(), log.len()), (9, 10, 1));
        assert_eq!(log.newest_ts, 2, "the newest time outlives removals");
        assert_eq!(log.front_ts(), Some(2));
        assert_eq!(log.pop_front(None, Removal::Expired, &mut garbage), Some(0));
        assert_eq!(
            (log.low, log.high(), log.len(), log.front_ts()),
            (10, 10, 0, None)
        );
        assert_eq!(log.pop_front(None, Removal::Expired, &mut garbage), None);
    }

    fn removed(garbage: &Garbage<u64>) -> Vec<u64> {
        garbage.one.iter().chain(&garbage.many).copied().collect()
    }

    #[test]
    fn chunks_fill_in_order_and_go_whole() {
        let mut log = Log::new(0, 1_000);
        log.extend(5, 0..150u64);
        assert_eq!((log.len(), log.chunks.len()), (150, 3));
        assert_eq!(
            (0..150).map(|i| log.get(i).map(|s| s.value)).collect::<Vec<_>>(),
            (0..150).map(Some).collect::<Vec<_>>()
        );
        assert!(log.get(150).is_none());
        let mut garbage = Garbage::new();
        log.remove_front(70, 0, Removal::Evicted, &mut garbage);
        assert_eq!((log.low, log.len(), log.chunks.len(), log.head), (70, 80, 2, 6));
        assert_eq!(garbage.chunks.len(), 1, "the first chunk, whole");
        assert_eq!(log.get(0).map(|s| (s.ts, s.value)), Some((5, 70)));
        assert_eq!(log.removed.evicted_in(0, 70), 70);
        let mut lent = Vec::new();
        log.lend(100, 40, &mut |l| lent.push(l));
        let read: Vec<u64> = lent.iter().flat_map(|l| l.slots().map(|s| s.value)).collect();
        assert_eq!(read, (100..140).collect::<Vec<_>>());
        assert_eq!(lent.len(), 2, "two chunks");
        log.remove_front(1_000, 0, Removal::Expired, &mut garbage);
        assert_eq!((log.low, log.len(), log.high()), (150, 0, 150));
        // The lent chunks are still readable.
        assert_eq!(lent[1].slots().last().map(|s| s.value), Some(139));
    }

    #[test]
    fn a_small_topic_reuses_its_chunk() {
        let mut log = Log::new(0, 1);
        let mut garbage = Garbage::new();
        for i in 0..5u64 {
            log.push_back(i, i);
            assert!(log.spare.is_none(), "the spare was used");
            assert_eq!((log.len(), log.get(0).map(|s| s.value)), (1, Some(i)));
            assert!(log.pop_front(None, Removal::Evicted, &mut garbage).is_some());
            assert!(log.spare.is_some(), "emptied and kept");
        }
        assert_eq!(removed(&garbage), [0, 1, 2, 3, 4]);
        // A reader holding the chunk: it goes whole instead.
        log.push_back(5, 5);
        let mut lent = None;
        log.lend(5, 1, &mut |l| lent = Some(l));
        assert!(log.pop_front(None, Removal::Evicted, &mut garbage).is_some());
        assert!(log.spare.is_none());
        assert_eq!(garbage.chunks.len(), 1);
        assert_eq!(
            lent.map(|l| l.slots().map(|s| s.value).collect::<Vec<_>>()),
            Some(vec![5])
        );
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
