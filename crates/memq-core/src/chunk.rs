//! Blocks of the log's slots that the log writes once and readers copy
//! from after releasing the topic lock.
//!
//! The retained window lives in chunks of a fixed number of slots. The log
//! owns each chunk through an [`Owned`] handle (one per chunk, the only
//! way to write it); a reader, under the topic lock, borrows the slots it
//! will read as a [`Lent`] (a reference count on the chunk), releases the
//! lock and clones the values out. So the clones (reference counts of
//! payloads, cache lines other CPUs wrote) no longer lengthen the critical
//! section every publisher waits for.
//!
//! A slot is written once, then only read, until its value is moved out
//! (through a chunk nobody else holds) or the chunk is dropped. What the
//! log removes stays in its chunk until the chunk goes, unless it is heavy
//! (see `log.rs`); a chunk that goes while a reader holds it is freed by
//! that reader when it lets go. So memory can exceed a topic's byte limit
//! by the light values of its first chunk and by the chunks readers are
//! copying from at that moment.
//!
//! This is the only library module with `unsafe` code (`cargo xtask
//! tidy` refuses it elsewhere, test support's allocators aside). The
//! protocol, each step's justification on its block:
//!
//! - Slots `[0, len)` are initialised, where `len` is the [`Owned`]'s
//!   count; it only grows. Writing takes `&mut Owned`, and there is one
//!   `Owned` per chunk, so there is one writer, and it writes only slot
//!   `len`.
//! - A reader reads only slots a [`Lent`] covers: `lend` (through
//!   `&Owned`, so not while a write runs) checks `taken <= start <= end
//!   <= len`. The writes of those slots happened before the lend (same
//!   thread, or whatever handed over the `Owned`: the topic lock), and
//!   the lend before the reads (same thread, or `Send`).
//! - Slots `[0, taken)` have been moved out. `taken` changes only through
//!   `Arc::get_mut`, which succeeds only when no [`Lent`] and no other
//!   reference to the chunk exists, so no reader is reading then.
//!
//! loom models the protocol (`--cfg memq_loom`, this module's tests), and
//! `cargo xtask miri` runs its tests under miri.

#![allow(unsafe_code)]

use std::fmt;
use std::mem::MaybeUninit;

use crate::log::Slot;
use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// A block of slots; see the module documentation for its protocol.
///
/// Aligned to 128 bytes so that, inside its `Arc`, its fields sit on
/// other cache lines than the reference count: readers write the count
/// (a lend, a drop) while publishers read `slots` on every publish.
#[repr(align(128))]
struct Chunk<T> {
    /// How many slots were written and how many (from the first) were
    /// moved out, stored when the [`Owned`] lets go, for `Drop`; the
    /// writer keeps the live counts in `Owned`.
    len: AtomicUsize,
    taken: AtomicUsize,
    slots: Box<[UnsafeCell<MaybeUninit<Slot<T>>>]>,
}

// SAFETY: a `Chunk` hands out `&Slot<T>` to any thread holding a `Lent`
// (hence `T: Sync`) and moves or drops its values on whichever thread
// removes them or drops it last (hence `T: Send`). Its slots are accessed
// under the protocol above, so no slot is written while it is read.
unsafe impl<T: Send + Sync> Sync for Chunk<T> {}
// SAFETY: as above: the values move with the chunk to the thread that
// drops it, and the chunk is shared through `Arc` (which needs `Sync`).
unsafe impl<T: Send + Sync> Send for Chunk<T> {}

impl<T> Chunk<T> {
    fn new(capacity: usize) -> Self {
        Chunk {
            len: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            slots: (0..capacity)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        }
    }

    /// Slot `i`, which the caller knows is written and not moved out.
    ///
    /// # Safety
    ///
    /// `taken <= i < n`, where `n` slots were written before (in the
    /// happens-before sense) this call, and `&self` keeps `taken` from
    /// moving while the reference lives.
    unsafe fn slot(&self, i: usize) -> &Slot<T> {
        // SAFETY: per the contract above the slot is initialised and is
        // not written or moved out while `&self` lives (the writer writes
        // only past `n`, moving out needs a unique `&mut` chunk).
        self.slots[i].with(|p| unsafe { (*p).assume_init_ref() })
    }
}

impl<T> Drop for Chunk<T> {
    fn drop(&mut self) {
        let len = self.len.load(Ordering::Acquire);
        let taken = self.taken.load(Ordering::Acquire);
        for cell in self.slots.iter().take(len).skip(taken) {
            // SAFETY: `[taken, len)` are initialised and not moved out;
            // `&mut self` means no other access, and each is dropped once.
            cell.with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}

/// The log's handle on one chunk: the only one that writes it or moves
/// values out of it. Not `Clone`: one per chunk.
pub(crate) struct Owned<T> {
    chunk: Arc<Chunk<T>>,
    /// Slots `[0, len)` are written. Kept here, not in the chunk: a
    /// publisher reads and writes it on every publish, and the chunk's
    /// header is the line readers write (its reference count).
    len: usize,
    /// Slots `[0, taken)` have been moved out; changed only while no
    /// other reference to the chunk exists (`Arc::get_mut`). Here for the
    /// same reason as `len`: readers check it on every read.
    taken: usize,
}

impl<T> Owned<T> {
    /// An empty chunk of `capacity` slots.
    pub(crate) fn new(capacity: usize) -> Self {
        Owned {
            chunk: Arc::new(Chunk::new(capacity)),
            len: 0,
            taken: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.chunk.slots.len()
    }

    /// How many slots were written (moved-out ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether every slot is written.
    pub(crate) fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Writes the next slot; gives `slot` back when the chunk is full.
    pub(crate) fn push(&mut self, slot: Slot<T>) -> Result<(), Slot<T>> {
        let Some(cell) = self.chunk.slots.get(self.len) else {
            return Err(slot);
        };
        // SAFETY: slot `len` is read by no one: reads are of slots below
        // the `len` of a `get` or `lend` made through this `Owned`, which
        // `&mut self` says is not running, and `len` grows only below.
        // `&mut self` on the chunk's one `Owned` makes this the only
        // writer, and a written slot is never written again.
        cell.with_mut(|p| unsafe {
            (*p).write(slot);
        });
        self.len += 1;
        Ok(())
    }

    /// Writes values from `values`, all published at `ts`, until the
    /// chunk is full or `values` ends (a value is taken from it only when
    /// there is room for it); returns how many it wrote.
    pub(crate) fn fill(&mut self, ts: u64, values: &mut impl Iterator<Item = T>) -> usize {
        let before = self.len;
        while let Some(cell) = self.chunk.slots.get(self.len) {
            let Some(value) = values.next() else { break };
            // SAFETY: as in `push`: slot `len` is read by no one, and this
            // is the only writer.
            cell.with_mut(|p| unsafe {
                (*p).write(Slot { ts, value });
            });
            self.len += 1;
        }
        self.len - before
    }

    /// The written slots from `i` on (none if `i` was moved out), in
    /// order.
    pub(crate) fn slots_from(&self, i: usize) -> impl Iterator<Item = &Slot<T>> + '_ {
        let range = if self.taken <= i && i <= self.len {
            i..self.len
        } else {
            0..0
        };
        self.chunk.slots[range].iter().map(|cell| {
            // SAFETY: as in `get`, for every slot in `[i, len)` with
            // `taken <= i`.
            cell.with(|p| unsafe { (*p).assume_init_ref() })
        })
    }

    /// The slot at `i`, if written and not moved out.
    pub(crate) fn get(&self, i: usize) -> Option<&Slot<T>> {
        // SAFETY: this thread wrote slots `[0, len)` or was handed `&self`
        // after they were written; `&self` keeps `taken` still.
        (self.taken <= i && i < self.len).then(|| unsafe { self.chunk.slot(i) })
    }

    /// Moves out the values of slots `[taken, end)` (to `out`, in order),
    /// if no reader holds the chunk now; returns whether every slot
    /// below `end` is moved out.
    pub(crate) fn take_front(&mut self, end: usize, out: &mut impl FnMut(T)) -> bool {
        let end = end.min(self.len);
        if self.taken >= end {
            return true;
        }
        // A load first: `get_mut` writes the count's line even when it
        // fails, and readers' lends write it too.
        if Arc::strong_count(&self.chunk) > 1 {
            return false;
        }
        let Some(chunk) = Arc::get_mut(&mut self.chunk) else {
            return false;
        };
        while self.taken < end {
            let i = self.taken;
            // Counted as moved out first: should `out` panic, the value
            // is not dropped twice.
            self.taken += 1;
            // SAFETY: `i` is in `[taken, len)` (initialised, not moved
            // out), `&mut` on the chunk (from `Arc::get_mut`) rules out
            // every other access, and `taken` now excludes it from reads
            // and from `Drop`, so it is moved out once.
            let slot = chunk.slots[i].with_mut(|p| unsafe { (*p).assume_init_read() });
            out(slot.value);
        }
        true
    }

    /// Moves every value out (to `out`) and keeps the empty chunk for
    /// reuse; gives the chunk back, values and all, if a reader holds it.
    pub(crate) fn into_spare(mut self, out: &mut impl FnMut(T)) -> Result<Spare<T>, Self> {
        let len = self.len;
        if !self.take_front(len, out) {
            return Err(self);
        }
        if Arc::get_mut(&mut self.chunk).is_none() {
            return Err(self);
        }
        self.taken = 0;
        self.len = 0;
        Ok(Spare(Arc::clone(&self.chunk)))
    }

    /// Lends slots `[start, end)` to a reader, who may read them after
    /// the topic lock is released, on any thread; `None` unless all are
    /// written and none moved out.
    pub(crate) fn lend(&self, start: usize, end: usize) -> Option<Lent<T>> {
        let readable = self.taken <= start && start <= end && end <= self.len;
        readable.then(|| Lent {
            chunk: Arc::clone(&self.chunk),
            start,
            end,
        })
    }
}

/// An empty chunk kept for reuse (8 bytes: a topic keeps one in its
/// state, whose size counts for every idle topic).
pub(crate) struct Spare<T>(Arc<Chunk<T>>);

impl<T> Spare<T> {
    /// The chunk, to be written from its first slot.
    pub(crate) fn into_owned(self) -> Owned<T> {
        Owned {
            chunk: self.0,
            len: 0,
            taken: 0,
        }
    }
}

impl<T> fmt::Debug for Spare<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spare")
            .field("capacity", &self.0.slots.len())
            .finish()
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // For the chunk's `Drop`, wherever the last reference goes: the
        // `Arc`'s own release and acquire order this store before it.
        self.chunk.len.store(self.len, Ordering::Relaxed);
        self.chunk.taken.store(self.taken, Ordering::Relaxed);
    }
}

impl<T> fmt::Debug for Owned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owned")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .field("taken", &self.taken)
            .finish()
    }
}

/// Slots of a chunk a reader may read without the topic lock: written,
/// and not moved out while this lives.
pub(crate) struct Lent<T> {
    chunk: Arc<Chunk<T>>,
    start: usize,
    end: usize,
}

impl<T> Lent<T> {
    /// The lent slots, in order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot<T>> + '_ {
        self.chunk.slots[self.start..self.end].iter().map(|cell| {
            // SAFETY: `lend` checked `taken <= start <= end <= len`, where
            // the `len` slots were written before the lend, and the lend
            // happened before this (same thread, or `Send`); nothing is
            // moved out while this `Lent` holds the chunk (`take_front`
            // needs a unique `Arc`).
            cell.with(|p| unsafe { (*p).assume_init_ref() })
        })
    }
}

impl<T> fmt::Debug for Lent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lent")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

#[cfg(all(test, not(memq_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as Count;

    /// Counts its drops, to check each value is dropped exactly once.
    #[derive(Debug)]
    struct Tracked<'a>(u64, &'a Count);

    impl Drop for Tracked<'_> {
        fn drop(&mut self) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn slot<V>(ts: u64, value: V) -> Slot<V> {
        Slot { ts, value }
    }

    #[test]
    fn writes_fill_then_refuse() {
        let mut c = Owned::new(2);
        assert!(c.push(slot(1, "a")).is_ok());
        assert!(c.push(slot(2, "b")).is_ok());
        assert!(c.is_full());
        let back = c.push(slot(3, "c")).expect_err("full");
        assert_eq!((back.ts, back.value), (3, "c"));
        assert_eq!(c.get(1).map(|s| s.value), Some("b"));
        assert!(c.get(2).is_none(), "never written");
    }

    #[test]
    fn lent_slots_outlive_removal_and_drop_once() {
        let drops = Count::new(0);
        let mut c = Owned::new(4);
        for i in 0..3 {
            assert!(c.push(slot(i, Tracked(i, &drops))).is_ok());
        }
        let lent = c.lend(1, 3).expect("readable");
        // A reader holds the chunk: nothing can be moved out.
        let mut out = Vec::new();
        assert!(!c.take_front(3, &mut |v| out.push(v)));
        assert!(out.is_empty());
        let read: Vec<u64> = lent.slots().map(|s| s.value.0).collect();
        assert_eq!(read, [1, 2]);
        drop(lent);
        assert!(c.take_front(2, &mut |v| out.push(v)));
        assert_eq!(out.iter().map(|t| t.0).collect::<Vec<_>>(), [0, 1]);
        assert!(c.lend(1, 3).is_none(), "slot 1 was moved out");
        assert!(c.get(1).is_none());
        assert_eq!(c.get(2).map(|s| s.value.0), Some(2));
        drop(out);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 2);
        drop(c);
        assert_eq!(
            drops.load(std::sync::atomic::Ordering::Relaxed),
            3,
            "the rest on drop"
        );
    }

    #[test]
    fn a_lent_chunk_keeps_its_values_after_the_log_lets_go() {
        let drops = Count::new(0);
        let mut c = Owned::new(2);
        assert!(c.push(slot(0, Tracked(7, &drops))).is_ok());
        let lent = c.lend(0, 1).expect("readable");
        drop(c);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert_eq!(lent.slots().map(|s| s.value.0).collect::<Vec<_>>(), [7]);
        drop(lent);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn lending_checks_its_range() {
        let mut c = Owned::new(4);
        assert!(c.push(slot(0, 0u8)).is_ok());
        assert!(c.lend(0, 2).is_none(), "past what was written");
        assert!(c.lend(1, 0).is_none(), "backwards");
        assert_eq!(c.lend(1, 1).map(|l| l.slots().count()), Some(0));
    }

    #[test]
    fn a_spare_only_when_nobody_reads() {
        let mut c = Owned::new(2);
        assert!(c.push(slot(0, String::from("x"))).is_ok());
        let lent = c.lend(0, 1);
        let mut out = Vec::new();
        let c = c.into_spare(&mut |v| out.push(v)).expect_err("a reader holds it");
        assert!(out.is_empty(), "nothing moved");
        drop(lent);
        let spare = c.into_spare(&mut |v| out.push(v)).expect("nobody reads");
        assert_eq!(out, ["x"]);
        let mut c = spare.into_owned();
        assert_eq!(c.len(), 0);
        assert!(c.push(slot(1, String::from("y"))).is_ok());
        assert_eq!(c.get(0).map(|s| s.value.as_str()), Some("y"));
    }

    #[test]
    fn readers_on_other_threads_see_whole_slots() {
        let mut c = Owned::new(64);
        std::thread::scope(|s| {
            let mut lents = Vec::new();
            for i in 0..64u64 {
                assert!(c.push(slot(i, vec![i; 3])).is_ok());
                lents.push(c.lend(0, c.len).expect("readable"));
            }
            for lent in lents {
                s.spawn(move || {
                    for (i, slot) in lent.slots().enumerate() {
                        assert_eq!(slot.value, vec![i as u64; 3]);
                        assert_eq!(slot.ts, i as u64);
                    }
                });
            }
        });
    }
}

#[cfg(all(test, memq_loom))]
mod loom_models {
    use super::*;

    /// A reader lent a chunk while the log writes the next slot and
    /// removes the first: the reader sees whole values, each value is
    /// dropped once (loom checks the cell accesses and leaks).
    #[test]
    fn a_reader_racing_the_writer_and_a_removal() {
        loom::model(|| {
            let mut c = Owned::new(2);
            assert!(c.push(slot(0, loom::sync::Arc::new(10u32))).is_ok());
            let lent = c.lend(0, 1).expect("readable");
            let reader = loom::thread::spawn(move || {
                let seen: Vec<u32> = lent.slots().map(|s| *s.value).collect();
                assert_eq!(seen, [10]);
            });
            assert!(c.push(slot(1, loom::sync::Arc::new(11u32))).is_ok());
            let mut out = Vec::new();
            // Either the reader still holds the chunk (nothing moves) or
            // it is done (slot 0 moves out); never both at once.
            let moved = c.take_front(1, &mut |v| out.push(v));
            assert_eq!(moved, out.len() == 1);
            reader.join().expect("reader");
            assert!(c.take_front(1, &mut |v| out.push(v)));
            assert_eq!(out.iter().map(|v| **v).collect::<Vec<_>>(), [10]);
            assert_eq!(c.get(1).map(|s| *s.value), Some(11));
        });
    }

    /// A slot written after a lend is not part of it; one lent after the
    /// write, on another thread, is read whole.
    #[test]
    fn a_slot_is_published_by_its_length() {
        loom::model(|| {
            let mut c = Owned::new(2);
            assert!(c.push(slot(0, 1u64)).is_ok());
            let early = c.lend(0, 1).expect("readable");
            let reader = loom::thread::spawn(move || {
                assert_eq!(early.slots().map(|s| s.value).collect::<Vec<_>>(), [1]);
            });
            assert!(c.push(slot(1, 2u64)).is_ok());
            let late = c.lend(0, 2).expect("readable");
            let reader2 = loom::thread::spawn(move || {
                let seen: Vec<u64> = late.slots().map(|s| s.value).collect();
                assert_eq!(seen, [1, 2]);
            });
            reader.join().expect("reader");
            reader2.join().expect("reader");
        });
    }

    fn slot<V>(ts: u64, value: V) -> Slot<V> {
        Slot { ts, value }
    }
}
