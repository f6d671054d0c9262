//! Members parked on the group itself (for redeliveries and rebalances),
//! as opposed to parked on a topic.

use std::task::Waker;

#[derive(Debug, Default)]
pub(crate) struct Wakers {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    armed: usize,
}

impl Wakers {
    /// Stores `waker` in the slot behind `key`, allocating one if needed.
    pub(crate) fn arm(&mut self, key: &mut Option<usize>, waker: &Waker) {
        let k = *key.get_or_insert_with(|| match self.free.pop() {
            Some(k) => k,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        });
        match &mut self.slots[k] {
            Some(w) if w.will_wake(waker) => {}
            slot => {
                if slot.is_none() {
                    self.armed += 1;
                }
                *slot = Some(waker.clone());
            }
        }
    }

    pub(crate) fn release(&mut self, key: usize) {
        if self.slots[key].take().is_some() {
            self.armed -= 1;
        }
        self.free.push(key);
    }

    /// Takes every armed waker, to be woken after the lock is released.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        if self.armed == 0 {
            return Vec::new();
        }
        self.armed = 0;
        self.slots.iter_mut().filter_map(Option::take).collect()
    }
}
