//! A receive that parks holds a slot in the group until its waiter is
//! dropped, whatever happened in the claim that parked it: a waiter takes
//! a handle on its group only once it holds a slot there, and must take
//! it even when that claim unwinds (a value's `Drop` run after the lock is
//! released panics), or the slot stays parked forever, counted in
//! `GroupStats::waiting` and woken for messages nobody receives.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Group, GroupConfig, MemberWaiter};

/// A value whose `Drop` panics once its flag is armed (the flag is shared
/// with its clones, and disarmed by the panic).
#[derive(Clone, Debug)]
struct Bomb {
    id: u64,
    armed: Arc<AtomicBool>,
}

impl Bomb {
    fn new(id: u64) -> Self {
        Bomb {
            id,
            armed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("the drop of value {} panics", self.id);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_claim_that_parks_and_unwinds_still_releases_its_slot() {
    let topic = Topic::new(
        TopicConfig::default()
            .max_messages(Some(1))
            .ttl(Some(Duration::from_millis(100))),
    )
    .unwrap();
    let config = GroupConfig::default().ack(AckMode::Manual);
    let group = Group::new("g", vec![topic.clone()], config).unwrap();
    let holder = group.join(StartFrom::Earliest).unwrap();
    let waiter_member = group.join(StartFrom::Earliest).unwrap();

    let bomb = Bomb::new(0);
    let armed = bomb.armed.clone();
    topic.try_publish(bomb).unwrap();
    let first = holder.try_recv().unwrap();
    // Evicts the topic's copy of offset 0 (capacity 1): the group's
    // pending copy is the only one left once `first` is dropped.
    topic.try_publish(Bomb::new(1)).unwrap();
    let second = holder.try_recv().unwrap();
    assert_eq!((first.offset, second.offset), (0, 1));
    holder.nack(0, 0).unwrap();
    drop(first);
    // Offset 0 waits for redelivery and expires.
    tokio::time::advance(Duration::from_millis(200)).await;
    armed.store(true, Ordering::SeqCst);

    // The claim drops the expired redelivery, finds nothing, parks, and
    // unwinds from the drop run after the group's lock is released.
    let mut waiter = MemberWaiter::new();
    let mut out = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        waiter_member.poll_recv_batch(&mut cx, &mut waiter, 1, &mut out)
    }));
    assert!(polled.is_err(), "the panic reaches the receive");
    assert!(!armed.load(Ordering::SeqCst), "the expired value was dropped");
    let stats = group.stats();
    assert_eq!((stats.expired, stats.waiting), (1, 1), "parked before the drop");

    drop(waiter);
    assert_eq!(group.stats().waiting, 0, "dropping the waiter released its slot");
    // And the group goes on: the next message goes to whoever asks.
    topic.try_publish(Bomb::new(2)).unwrap();
    let next = waiter_member.try_recv().unwrap();
    assert_eq!((next.offset, next.value.id, next.deliveries), (2, 2, 1));
}
