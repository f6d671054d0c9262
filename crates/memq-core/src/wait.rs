//! Waiter bookkeeping: who is parked on a topic, and waking them without
//! holding its lock.
//!
//! Each parked future owns one slot, identified by a key it keeps until it
//! completes or is dropped. A slot is *armed* while it holds a waker that
//! has not been woken yet; only armed slots are in the `armed` list, so a
//! publisher with nobody waiting does no wake-up work beyond one
//! `is_empty` check. Waking takes wakers out under the lock into a
//! fixed-size [`WakeBatch`] and calls them after the lock is released.

use std::task::Waker;

/// Key of a slot in a [`WaitList`].
pub(crate) type WaitKey = u32;

/// No slot: the end of the free list.
const NONE: WaitKey = WaitKey::MAX;

#[derive(Debug)]
struct Slot {
    waker: Option<Waker>,
    armed: bool,
    /// On the free list (released, not armed since).
    free: bool,
    /// The next free slot, while this one is free (in the bytes the
    /// waker's alignment leaves anyway).
    next_free: WaitKey,
}

/// The slots and the armed list; freed slots form a list through
/// `next_free` (rather than a `Vec` of their keys, 16 bytes more per list
/// in every topic, idle ones included).
#[derive(Debug)]
pub(crate) struct WaitList {
    slots: Vec<Slot>,
    armed: Vec<WaitKey>,
    free: WaitKey,
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList {
            slots: Vec::new(),
            armed: Vec::new(),
            free: NONE,
        }
    }
}

impl WaitList {
    /// True when nobody waits for a wake-up.
    pub(crate) fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Arms the slot behind `key` with `waker`, allocating a slot first if
    /// `key` is `None`. Returns the waker it replaced, for the caller to
    /// drop once the topic's lock is released: dropping a waker may run
    /// code of its own (which may take the lock).
    #[must_use = "drop the replaced waker after the lock is released"]
    pub(crate) fn arm(&mut self, key: &mut Option<WaitKey>, waker: &Waker) -> Option<Waker> {
        let k = match *key {
            Some(k) => k,
            None => {
                let k = if self.free != NONE {
                    let k = self.free;
                    let slot = &mut self.slots[k as usize];
                    slot.free = false;
                    self.free = slot.next_free;
                    k
                } else {
                    let k = WaitKey::try_from(self.slots.len())
                        .ok()
                        .filter(|&k| k != NONE)
                        .expect("more than u32::MAX futures parked on one topic");
                    self.slots.push(Slot {
                        waker: None,
                        armed: false,
                        free: false,
                        next_free: NONE,
                    });
                    k
                };
                *key = Some(k);
                k
            }
        };
        let slot = &mut self.slots[k as usize];
        let replaced = match &mut slot.waker {
            Some(w) if w.will_wake(waker) => None,
            w => w.replace(waker.clone()),
        };
        if !slot.armed {
            slot.armed = true;
            self.armed.push(k);
        }
        replaced
    }

    /// Takes the slot out of the armed list, keeping it allocated.
    pub(crate) fn disarm(&mut self, key: WaitKey) {
        let slot = &mut self.slots[key as usize];
        if slot.armed {
            slot.armed = false;
            if let Some(i) = self.armed.iter().rposition(|&k| k == key) {
                self.armed.swap_remove(i);
            }
        }
    }

    /// Frees the slot; `key` must not be used again. Returns its waker,
    /// for the caller to drop once the lock is released (see `arm`).
    #[must_use = "drop the waker after the lock is released"]
    pub(crate) fn release(&mut self, key: WaitKey) -> Option<Waker> {
        self.disarm(key);
        let slot = &mut self.slots[key as usize];
        debug_assert!(!slot.free, "slot {key} released twice");
        if slot.free {
            // On the list already: a second push would make it its own
            // successor, and every later waiter would share it.
            return None;
        }
        slot.free = true;
        slot.next_free = self.free;
        self.free = key;
        slot.waker.take()
    }

    /// Moves armed wakers into `batch` until it is full. Returns true when
    /// armed wakers remain.
    pub(crate) fn drain_into(&mut self, batch: &mut WakeBatch) -> bool {
        while !batch.is_full() {
            let Some(k) = self.armed.pop() else {
                return false;
            };
            let slot = &mut self.slots[k as usize];
            slot.armed = false;
            if let Some(w) = slot.waker.take() {
                batch.push(w);
            }
        }
        !self.armed.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        let mut free = 0;
        let mut k = self.free;
        while k != NONE {
            free += 1;
            k = self.slots[k as usize].next_free;
        }
        self.slots.len() - free
    }
}

const BATCH: usize = 32;

/// Wakers collected under a lock, to be woken after it is released.
#[derive(Debug)]
pub(crate) struct WakeBatch {
    wakers: [Option<Waker>; BATCH],
    len: usize,
}

impl WakeBatch {
    pub(crate) fn new() -> Self {
        WakeBatch {
            wakers: [const { None }; BATCH],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }

    fn push(&mut self, waker: Waker) {
        self.wakers[self.len] = Some(waker);
        self.len += 1;
    }

    /// Wakes everything collected. Call with no lock held.
    ///
    /// A waker that panics does not cost the others their wake-up: the
    /// panic unwinds through `Drop`, which wakes the rest.
    pub(crate) fn wake_all(&mut self) {
        while self.len > 0 {
            self.len -= 1;
            if let Some(w) = self.wakers[self.len].take() {
                w.wake();
            }
        }
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        self.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn arm_drain_release_keeps_lists_bounded() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut list = WaitList::default();
        for _ in 0..1000 {
            let mut key = None;
            assert!(list.arm(&mut key, &waker).is_none());
            let again = list.arm(&mut key, &waker);
            // Miri does not keep a vtable's address unique (as the
            // language allows), so `will_wake` may not recognise a clone
            // of the same waker there; the list stays bounded either way.
            if !cfg!(miri) {
                assert!(again.is_none(), "the same waker stays");
            }
            assert_eq!(list.armed.len(), 1);
            assert!(list.release(key.unwrap()).is_some());
        }
        assert!(list.is_empty());
        assert_eq!(list.slots.len(), 1);

        let mut keys = vec![None; 40];
        for k in &mut keys {
            let _ = list.arm(k, &waker);
        }
        let mut batch = WakeBatch::new();
        assert!(list.drain_into(&mut batch));
        batch.wake_all();
        assert!(!list.drain_into(&mut batch));
        batch.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 40);
        assert!(list.is_empty());
        for k in keys {
            let _ = list.release(k.unwrap());
        }
        assert_eq!(list.allocated(), 0);
    }
}
