//! Members parked on the group, served in the order they began waiting.
//!
//! A group registers with each partition's topic once, through a relay
//! waker (see `group.rs`), instead of every parked member registering
//! itself: a publish then wakes one eligible member, not all of them. The
//! one woken is the member that has waited longest (first in, first out
//! by the time it parked), so members that each do little work per
//! message take turns instead of the quickest to park winning every
//! race. A member polled again while still parked (a spurious poll, not a
//! notification) keeps its place; a member that was woken, or that
//! received, parks again at the back.
//!
//! A member woken is marked as notified; if its receive is dropped before
//! it runs, the notification is handed to another member, so no wake-up
//! is lost to cancellation. Until it runs, the message it was woken for
//! is owed to it: a member that did not wait does not take it first (see
//! [`Wakers::owed`]). A member notified for a partition that a rebalance
//! gives away is owed nothing there any more ([`Wakers::disown`]), nor is
//! a member that left ([`Wakers::forget`]).
//!
//! With an ack timeout, a parked member also waits on a timer for the
//! moment another member's messages become claimable; the group records
//! each armed deadline here ([`Wakers::arm`]), so that a claim that hands
//! messages out can tell whether some parked member will wake in time for
//! their take-over ([`Wakers::timer_by`]) or must be woken to arm one
//! ([`Wakers::wake_to_arm`]).

use std::collections::{BTreeMap, BTreeSet};
use std::task::Waker;

use tokio::time::Instant;

/// What a parked member was woken for, to pass on if its receive is
/// dropped before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// News on one partition: pass on to a member that may read it.
    Partition(usize),
    /// News for the whole group (a rebalance, redeliveries, a seek,
    /// closing, room under `max_pending`): pass on to any member.
    Group,
}

#[derive(Debug)]
struct Slot {
    member: u64,
    /// Present while parked and not yet woken.
    waker: Option<Waker>,
    /// Its place in the queue: while parked, or while its claim runs
    /// after a poll that was not a notification (so it parks again in the
    /// same place).
    ticket: Option<u64>,
    /// Woken for this and not yet run.
    notified: Option<Notice>,
    /// The deadline of its take-over timer, while it has one armed (see
    /// [`Wakers::arm`]).
    deadline: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct Wakers {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Parked slots by ticket: the longest waiting first.
    queue: BTreeMap<u64, usize>,
    next_ticket: u64,
    /// Per partition: members notified for it that have not run yet.
    owed: Vec<usize>,
    /// The take-over timers of the slots that hold one, earliest first.
    timers: BTreeSet<(Instant, usize)>,
}

impl Wakers {
    /// How many members were notified for `partition` and have not run
    /// yet: each is owed one of its messages.
    pub(crate) fn owed(&self, partition: usize) -> usize {
        self.owed.get(partition).copied().unwrap_or(0)
    }

    /// Records that a slot was notified for `notice`.
    fn notify(owed: &mut Vec<usize>, notice: Notice) {
        if let Notice::Partition(p) = notice {
            if owed.len() <= p {
                owed.resize(p + 1, 0);
            }
            owed[p] += 1;
        }
    }

    /// Takes a slot's notification back; returns it.
    fn settle(owed: &mut [usize], notified: &mut Option<Notice>) -> Option<Notice> {
        let notice = notified.take();
        if let Some(Notice::Partition(p)) = notice {
            owed[p] -= 1;
        }
        notice
    }

    /// Forgets the take-over timer of slot `k`; returns whether it had one.
    fn disarm(timers: &mut BTreeSet<(Instant, usize)>, k: usize, slot: &mut Slot) -> bool {
        match slot.deadline.take() {
            Some(d) => timers.remove(&(d, k)),
            None => false,
        }
    }

    /// Records the take-over timer the member behind `key` arms as it
    /// parks (`None`: it arms none).
    pub(crate) fn arm(&mut self, key: Option<usize>, deadline: Option<Instant>) {
        let Some(k) = key else { return };
        let Some(slot) = self.slots[k].as_mut() else {
            return;
        };
        Self::disarm(&mut self.timers, k, slot);
        if let Some(d) = deadline {
            slot.deadline = Some(d);
            self.timers.insert((d, k));
        }
    }

    /// Whether the slot behind `key` holds a take-over timer: it is parked
    /// with one armed, or it was woken and has not run yet.
    pub(crate) fn has_timer(&self, key: Option<usize>) -> bool {
        key.and_then(|k| self.slots[k].as_ref())
            .is_some_and(|s| s.deadline.is_some())
    }

    /// Whether a slot of a member that `eligible` accepts holds a
    /// take-over timer due no later than `moment`.
    pub(crate) fn timer_by(&self, moment: Instant, eligible: impl Fn(u64) -> bool) -> bool {
        self.timers
            .range(..=(moment, usize::MAX))
            .any(|&(_, k)| self.slots[k].as_ref().is_some_and(|s| eligible(s.member)))
    }

    /// The member behind `key` is running a claim: its notification, if
    /// any, is being acted on, and it is out of the queue while it runs;
    /// its take-over timer is armed afresh if it parks again. It keeps
    /// its ticket if it was still parked (polled without being woken), so
    /// that parking again keeps its place.
    pub(crate) fn begin(&mut self, key: Option<usize>) {
        if let Some(k) = key {
            let Some(slot) = self.slots[k].as_mut() else {
                return;
            };
            Self::disarm(&mut self.timers, k, slot);
            Self::settle(&mut self.owed, &mut slot.notified);
            if slot.waker.take().is_some() {
                if let Some(t) = slot.ticket {
                    self.queue.remove(&t);
                }
            } else {
                slot.ticket = None;
            }
        }
    }

    /// Parks `member` with `waker` in the slot behind `key`, allocating one
    /// if needed: at its old place if [`begin`](Self::begin) kept one,
    /// else at the back.
    pub(crate) fn park(&mut self, key: &mut Option<usize>, waker: &Waker, member: u64) {
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
            ticket: None,
            notified: None,
            deadline: None,
        });
        slot.member = member;
        Self::settle(&mut self.owed, &mut slot.notified);
        match &mut slot.waker {
            Some(w) if w.will_wake(waker) => {}
            w => *w = Some(waker.clone()),
        }
        let ticket = *slot.ticket.get_or_insert_with(|| {
            self.next_ticket += 1;
            self.next_ticket
        });
        self.queue.insert(ticket, k);
    }

    /// The member behind `key` completed its receive (it does not wait):
    /// out of the queue, and its next park goes to the back.
    pub(crate) fn done(&mut self, key: Option<usize>) {
        if let Some(k) = key {
            let Some(slot) = self.slots[k].as_mut() else {
                return;
            };
            Self::disarm(&mut self.timers, k, slot);
            Self::settle(&mut self.owed, &mut slot.notified);
            slot.waker = None;
            if let Some(t) = slot.ticket.take() {
                self.queue.remove(&t);
            }
        }
    }

    /// Frees the slot; returns what it was notified for and had not yet
    /// acted on, which the caller must pass on.
    pub(crate) fn release(&mut self, key: usize) -> Option<Notice> {
        let mut slot = self.slots[key].take()?;
        if let (Some(t), Some(_)) = (slot.ticket, &slot.waker) {
            self.queue.remove(&t);
        }
        Self::disarm(&mut self.timers, key, &mut slot);
        self.free.push(key);
        Self::settle(&mut self.owed, &mut slot.notified)
    }

    /// True when a member that `eligible` accepts is parked.
    pub(crate) fn any_parked(&self, eligible: impl Fn(u64) -> bool) -> bool {
        self.queue
            .values()
            .any(|&k| self.slots[k].as_ref().is_some_and(|s| eligible(s.member)))
    }

    /// Whether `member` is waiting in a receive: parked, or woken and not
    /// run yet.
    pub(crate) fn waiting(&self, member: u64) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| s.member == member && (s.waker.is_some() || s.notified.is_some()))
    }

    /// How many members are parked and not yet woken.
    pub(crate) fn parked(&self) -> usize {
        self.queue.len()
    }

    /// True when no member is parked at all.
    pub(crate) fn none_parked(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes the wakers of up to `n` parked members that `eligible`
    /// accepts, the longest waiting first, marking each notified for
    /// `notice` (for a partition: each is owed one of its messages).
    pub(crate) fn wake_some(
        &mut self,
        n: usize,
        notice: Notice,
        eligible: impl Fn(u64) -> bool,
    ) -> Vec<Waker> {
        let mut woken = Vec::new();
        if n == 0 {
            return woken;
        }
        let (slots, owed) = (&mut self.slots, &mut self.owed);
        self.queue.retain(|_, &mut k| {
            if woken.len() == n {
                return true;
            }
            match slots[k].as_mut() {
                Some(slot) if slot.waker.is_some() && eligible(slot.member) => {
                    slot.ticket = None;
                    slot.notified = Some(notice);
                    Self::notify(owed, notice);
                    woken.extend(slot.waker.take());
                    false
                }
                _ => true,
            }
        });
        woken
    }

    /// `partition` changed owner: the members notified for it may no
    /// longer read it, so its messages are owed to nobody. Their
    /// notifications stay, as news for the whole group (to pass on if
    /// their receive is dropped).
    pub(crate) fn disown(&mut self, partition: usize) {
        if self.owed(partition) == 0 {
            return;
        }
        for slot in self.slots.iter_mut().flatten() {
            if slot.notified == Some(Notice::Partition(partition)) {
                slot.notified = Some(Notice::Group);
            }
        }
        self.owed[partition] = 0;
    }

    /// `member` left the group: what it was notified for is owed to it
    /// no more, and a slot of it still parked (a waiter that outlived its
    /// member) leaves the queue. The slots stay allocated until their
    /// waiters release them.
    pub(crate) fn forget(&mut self, member: u64) {
        for (k, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut().filter(|s| s.member == member) else {
                continue;
            };
            Self::disarm(&mut self.timers, k, slot);
            Self::settle(&mut self.owed, &mut slot.notified);
            if slot.waker.take().is_some() {
                if let Some(t) = slot.ticket.take() {
                    self.queue.remove(&t);
                }
            }
            slot.ticket = None;
        }
    }

    /// Takes the waker of the longest-waiting parked member that
    /// `eligible` accepts, and marks it notified for `notice`.
    pub(crate) fn wake_one(&mut self, notice: Notice, eligible: impl Fn(u64) -> bool) -> Option<Waker> {
        self.wake_first(notice, eligible).map(|(_, w)| w)
    }

    /// As [`wake_one`](Self::wake_one); also returns the woken slot.
    fn wake_first(&mut self, notice: Notice, eligible: impl Fn(u64) -> bool) -> Option<(usize, Waker)> {
        let (&ticket, &k) = self.queue.iter().find(|(_, &k)| {
            self.slots[k]
                .as_ref()
                .is_some_and(|s| s.waker.is_some() && eligible(s.member))
        })?;
        self.queue.remove(&ticket);
        let slot = self.slots[k].as_mut()?;
        slot.ticket = None;
        slot.notified = Some(notice);
        Self::notify(&mut self.owed, notice);
        slot.waker.take().map(|w| (k, w))
    }

    /// Wakes the longest-waiting parked member that `eligible` accepts so
    /// that it arms its take-over timer afresh (news for the group). Until
    /// it runs it counts as holding a timer that fired `now`: it claims
    /// (and parks again with a fresh deadline) or passes the duty on.
    pub(crate) fn wake_to_arm(&mut self, now: Instant, eligible: impl Fn(u64) -> bool) -> Option<Waker> {
        let (k, waker) = self.wake_first(Notice::Group, eligible)?;
        self.arm(Some(k), Some(now));
        Some(waker)
    }

    /// Takes the wakers of every parked member that `eligible` accepts,
    /// marking them notified for `notice` (redeliveries, rebalances,
    /// seeks, closing).
    pub(crate) fn wake_all(&mut self, notice: Notice, eligible: impl Fn(u64) -> bool) -> Vec<Waker> {
        let mut woken = Vec::new();
        let (slots, owed) = (&mut self.slots, &mut self.owed);
        self.queue.retain(|_, &mut k| match slots[k].as_mut() {
            Some(slot) if eligible(slot.member) => {
                slot.ticket = None;
                slot.notified = Some(notice);
                Self::notify(owed, notice);
                woken.extend(slot.waker.take());
                false
            }
            _ => true,
        });
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The member that would be woken next.
    fn front(w: &Wakers) -> Option<u64> {
        let (_, &k) = w.queue.iter().next()?;
        w.slots[k].as_ref().map(|s| s.member)
    }

    fn wake_order(w: &mut Wakers) -> Vec<u64> {
        let mut order = Vec::new();
        while let Some(m) = front(w) {
            assert!(w.wake_one(Notice::Partition(0), |_| true).is_some());
            order.push(m);
        }
        order
    }

    #[test]
    fn wakes_in_the_order_members_parked() {
        let waker = Waker::noop();
        let mut w = Wakers::default();
        let mut keys = [None, None, None];
        for m in [2, 1, 0] {
            w.park(&mut keys[m], waker, m as u64);
        }
        // Member 2 polled again without a notification: keeps its place.
        w.begin(keys[2]);
        w.park(&mut keys[2], waker, 2);
        assert_eq!(wake_order(&mut w), vec![2, 1, 0]);
        // Woken members run, and park again at the back in turn.
        for m in [0, 2, 1] {
            w.begin(keys[m]);
            w.park(&mut keys[m], waker, m as u64);
        }
        // One that received goes to the back too.
        w.begin(keys[0]);
        w.done(keys[0]);
        w.park(&mut keys[0], waker, 0);
        assert_eq!(wake_order(&mut w), vec![2, 1, 0]);
    }

    #[test]
    fn release_returns_an_unacted_notification() {
        let waker = Waker::noop();
        let mut w = Wakers::default();
        let (mut a, mut b) = (None, None);
        w.park(&mut a, waker, 0);
        w.park(&mut b, waker, 1);
        assert_eq!(w.wake_all(Notice::Group, |m| m == 1).len(), 1);
        assert!(w.any_parked(|m| m == 0));
        assert!(!w.any_parked(|m| m == 1));
        assert_eq!(w.release(b.unwrap()), Some(Notice::Group));
        assert_eq!(w.release(a.unwrap()), None);
        assert!(w.queue.is_empty());
    }

    #[test]
    fn wake_some_wakes_the_longest_waiting_and_reserves_one_message_each() {
        let waker = Waker::noop();
        let mut w = Wakers::default();
        let mut keys = [None, None, None];
        for m in [2, 0, 1] {
            w.park(&mut keys[m], waker, m as u64);
        }
        assert_eq!(w.wake_some(2, Notice::Partition(0), |m| m != 0).len(), 2);
        assert_eq!(w.owed(0), 2);
        assert_eq!(front(&w), Some(0), "2 and 1 were woken, in that order");
        assert!(w.wake_some(5, Notice::Partition(0), |m| m != 0).is_empty());
        // A rebalance gives partition 0 away: nothing is owed there, and
        // the notifications are passed on as group news if dropped.
        w.disown(0);
        assert_eq!(w.owed(0), 0);
        assert_eq!(w.release(keys[2].unwrap()), Some(Notice::Group));
        // Member 0 leaves while its waiter lives: out of the queue, owed
        // nothing.
        w.wake_some(1, Notice::Partition(3), |_| true);
        assert_eq!(w.owed(3), 1);
        w.forget(0);
        assert_eq!(w.owed(3), 0);
        assert!(w.none_parked());
        assert_eq!(w.release(keys[0].unwrap()), None);
    }

    #[test]
    fn take_over_timers_are_tracked_while_their_slots_wait() {
        let waker = Waker::noop();
        let t0 = Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let mut w = Wakers::default();
        let (mut a, mut b, mut c) = (None, None, None);
        w.park(&mut a, waker, 0);
        w.arm(a, Some(at(10)));
        w.park(&mut b, waker, 1);
        w.arm(b, None);
        w.park(&mut c, waker, 2);
        assert!(w.has_timer(a) && !w.has_timer(b));
        assert!(w.timer_by(at(10), |m| m != 1));
        assert!(!w.timer_by(at(9), |_| true), "due too late");
        assert!(!w.timer_by(at(20), |m| m != 0), "only member 0 holds one");
        // Woken to arm one: the longest waiting other than 0 (b), which
        // counts as holding one due now until it runs.
        assert!(w.wake_to_arm(at(5), |m| m != 0).is_some());
        assert!(w.has_timer(b) && w.timer_by(at(5), |m| m == 1));
        w.begin(b);
        assert!(!w.has_timer(b), "running: armed afresh if it parks");
        w.park(&mut b, waker, 1);
        w.arm(b, Some(at(7)));
        w.done(b);
        assert!(!w.has_timer(b));
        w.release(a.unwrap());
        w.forget(2);
        assert!(w.timers.is_empty());
    }

    #[test]
    fn a_notification_is_owed_until_its_member_runs() {
        let waker = Waker::noop();
        let mut w = Wakers::default();
        let (mut a, mut b) = (None, None);
        w.park(&mut a, waker, 0);
        w.park(&mut b, waker, 1);
        w.wake_one(Notice::Partition(2), |_| true).unwrap();
        w.wake_one(Notice::Partition(2), |_| true).unwrap();
        assert_eq!((w.owed(2), w.owed(0), w.owed(9)), (2, 0, 0));
        w.begin(a);
        assert_eq!(w.owed(2), 1);
        assert_eq!(w.release(b.unwrap()), Some(Notice::Partition(2)));
        assert_eq!(w.owed(2), 0);
    }
}
