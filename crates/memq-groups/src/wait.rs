//! Members parked on the group.
//!
//! A group registers with each partition's topic once, through a relay
//! waker (see `group.rs`), instead of every parked member registering
//! itself: a publish then wakes one eligible member, not all of them. A
//! member woken that way is marked as notified; if its receive is dropped
//! before it runs, the notification is handed to another member, so no
//! wake-up is lost to cancellation.

use std::task::Waker;

#[derive(Debug)]
struct Slot {
    member: u64,
    waker: Option<Waker>,
    /// Woken on behalf of this partition and not yet polled.
    notified: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Wakers {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
}

impl Wakers {
    /// Parks `member` with `waker` in the slot behind `key`, allocating one
    /// if needed. Clears any notification (the member is running).
    pub(crate) fn arm(&mut self, key: &mut Option<usize>, waker: &Waker, member: u64) {
        let k = *key.get_or_insert_with(|| match self.free.pop() {
            Some(k) => k,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        });
        let slot = self.slots[k].get_or_insert(Slot {
            member,
            waker: None,
            notified: None,
        });
        slot.member = member;
        slot.notified = None;
        match &mut slot.waker {
            Some(w) if w.will_wake(waker) => {}
            w => *w = Some(waker.clone()),
        }
    }

    /// Marks the slot as running (polled), without waiting.
    pub(crate) fn running(&mut self, key: Option<usize>) {
        if let Some(slot) = key.and_then(|k| self.slots[k].as_mut()) {
            slot.notified = None;
            slot.waker = None;
        }
    }

    /// Frees the slot; returns the partition it was notified for and not
    /// yet acted on, which the caller must pass on.
    pub(crate) fn release(&mut self, key: usize) -> Option<usize> {
        let notified = self.slots[key].take().and_then(|s| s.notified);
        self.free.push(key);
        notified
    }

    /// Takes the waker of one parked member that `eligible` accepts, and
    /// marks it notified for `partition`.
    pub(crate) fn wake_one(&mut self, partition: usize, eligible: impl Fn(u64) -> bool) -> Option<Waker> {
        self.slots.iter_mut().flatten().find_map(|slot| {
            if slot.waker.is_some() && eligible(slot.member) {
                slot.notified = Some(partition);
                slot.waker.take()
            } else {
                None
            }
        })
    }

    /// Takes every parked member's waker (redeliveries, rebalances, closing).
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.slots
            .iter_mut()
            .flatten()
            .filter_map(|s| s.waker.take())
            .collect()
    }
}
