//! Loom models of group races, run with `cargo xtask loom`. Without
//! `--cfg memq_loom` this file compiles to nothing.

#![cfg(memq_loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::thread;
use memq_core::{RecvError, StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Assignment, Group, GroupConfig, GroupError, Member, MemberWaiter};
use memq_testkit::loom_model as model;

/// As `memq_testkit::loom_model`, with loom's preemption bound set: the
/// models with three threads parking and waking each other would
/// otherwise explore far too many schedules. Bugs of waking need few
/// preemptions (the lost wake-ups below take one or two).
fn bounded_model<F: Fn() + Sync + Send + 'static>(preemptions: usize, f: F) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let name = std::thread::current().name().unwrap_or("model").to_string();
    eprintln!(
        "loom: {name}: {} schedules explored (preemption bound {preemptions})",
        runs.load(Ordering::Relaxed)
    );
}

/// A group with manual acknowledgement over `topic`.
fn manual_group(topic: &Topic<u8>) -> Group<u8> {
    Group::new(
        "g",
        vec![topic.clone()],
        GroupConfig::default().ack(AckMode::Manual),
    )
    .unwrap()
}

/// Two members racing for one message: exactly one gets it.
#[test]
fn two_members_racing_for_one_message() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(9u8).unwrap();
        let h = thread::spawn(move || a.try_recv().ok().map(|c| c.value));
        let mine = b.try_recv().ok().map(|c| c.value);
        let theirs = h.join().unwrap();
        let got: Vec<u8> = mine.into_iter().chain(theirs).collect();
        assert_eq!(got, vec![9], "exactly one member got it");
    });
}

/// Acks racing on two messages: the committed offset ends at the last
/// one, whatever the order.
#[test]
fn acks_racing_move_the_commit_watermark_once_both_land() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(4))).unwrap();
        let group = manual_group(&topic);
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(0u8).unwrap();
        topic.try_publish(1u8).unwrap();
        let first = a.try_recv().unwrap();
        let second = b.try_recv().unwrap();
        let h = thread::spawn(move || {
            a.ack(first.partition, first.offset).unwrap();
            a
        });
        b.ack(second.partition, second.offset).unwrap();
        let _a = h.join().unwrap();
        assert_eq!(group.stats().committed, vec![Some(1)]);
        assert_eq!(group.stats().pending, 0);
    });
}

/// A publish racing a member that may already be parked: the topic wakes
/// the group's relay, the relay wakes the member, the member gets it.
#[test]
fn publish_races_a_parked_member() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let h = thread::spawn(move || {
            topic.try_publish(5u8).unwrap();
        });
        let got = loom::future::block_on(a.recv()).unwrap();
        assert_eq!((got.offset, got.value, got.deliveries), (0, 5, 1));
        h.join().unwrap();
    });
}

/// A member leaving with an unacknowledged message while another may be
/// parked: the parked one is woken and gets it again, counted.
#[test]
fn a_leaving_member_wakes_a_parked_one_for_its_pending_message() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let group = manual_group(&topic);
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(7u8).unwrap();
        let held = a.try_recv().unwrap();
        assert_eq!(held.offset, 0);
        let h = thread::spawn(move || drop(a));
        let again = loom::future::block_on(b.recv()).unwrap();
        assert_eq!((again.offset, again.value, again.deliveries), (0, 7, 2));
        h.join().unwrap();
        b.ack(again.partition, again.offset).unwrap();
        assert_eq!(group.stats().committed, vec![Some(0)]);
    });
}

/// Two members parked, the topic closed racing their parking: both must
/// get `Closed`.
fn closing_wakes_both_parked_members(assignment: Assignment) {
    bounded_model(4, move || {
        let topic = Topic::<u8>::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let config = GroupConfig::default().assignment(assignment);
        let group = Group::new("g", vec![topic.clone()], config).unwrap();
        let parked: Vec<_> = (0..2)
            .map(|_| {
                let m = group.join(StartFrom::Earliest).unwrap();
                thread::spawn(move || {
                    let r = loom::future::block_on(m.recv()).map(|c| c.value);
                    (r, m)
                })
            })
            .collect();
        topic.close();
        let results: Vec<_> = parked.into_iter().map(|h| h.join().unwrap()).collect();
        for (r, _member) in &results {
            assert_eq!(*r, Err(RecvError::Closed));
        }
    });
}

/// Lost wake-up A: two members parked in `recv` while the topic is
/// closed. Closing fired the group's relay once, which woke one member;
/// the other stayed parked forever. Both must get `Closed`. (The members
/// stay alive until both receives return: a member leaving wakes the
/// others, which would hide the bug.)
#[test]
fn closing_wakes_every_parked_member() {
    closing_wakes_both_parked_members(Assignment::Shared);
}

/// Exclusive assignment: one partition, an owner and a member that owns
/// nothing, both parked; closing the topic races their parking. The member
/// owning nothing armed no relay of its own and was never told `Closed`;
/// now, while members are parked, every claim keeps the relays of the
/// partitions not yet done armed, whoever owns them, and both must get
/// `Closed`.
#[test]
fn closing_wakes_a_member_of_an_exclusive_group_that_owns_nothing() {
    closing_wakes_both_parked_members(Assignment::Exclusive);
}

/// Lost wake-up B: two members parked; the one woken for message 0 takes
/// it (through the partition's relay registration, which that disarms)
/// and receives nothing more, while message 1 is published. Nobody
/// re-armed the relay, so the other member stayed parked. It must get
/// message 1.
#[test]
fn a_claim_leaves_the_wake_up_armed_for_a_parked_member() {
    bounded_model(4, || {
        let topic = Topic::<u8>::new(TopicConfig::default().max_messages(Some(4))).unwrap();
        let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
        let parked: Vec<_> = (0..2)
            .map(|_| {
                let m = group.join(StartFrom::Earliest).unwrap();
                thread::spawn(move || {
                    let r = loom::future::block_on(m.recv()).map(|c| c.value);
                    (r, m) // one receive, then holds the member
                })
            })
            .collect();
        topic.try_publish(0).unwrap();
        topic.try_publish(1).unwrap();
        let results: Vec<_> = parked.into_iter().map(|h| h.join().unwrap()).collect();
        let mut got: Vec<u8> = results.iter().map(|(r, _member)| (*r).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1]);
    });
}

/// `max_pending` 1: one member holds the group's one message in hand
/// while another parks at the limit; the acknowledgement that makes room
/// races the parking, and must not be lost.
#[test]
fn an_ack_that_makes_room_wakes_a_member_parked_at_the_limit() {
    bounded_model(4, || {
        let topic = Topic::<u8>::new(TopicConfig::default().max_messages(Some(4))).unwrap();
        let config = GroupConfig::default().ack(AckMode::Manual).max_pending(Some(1));
        let group = Group::new("g", vec![topic.clone()], config).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(0).unwrap();
        topic.try_publish(1).unwrap();
        let held = a.try_recv().unwrap();
        let h = thread::spawn(move || {
            let r = loom::future::block_on(b.recv()).map(|c| (c.offset, c.deliveries));
            (r, b)
        });
        a.ack(held.partition, held.offset).unwrap();
        let (r, _b) = h.join().unwrap();
        assert_eq!(r, Ok((1, 1)));
        assert_eq!(group.stats().pending, 1);
    });
}

/// A receive polled by hand (in the model's main thread), with a waker
/// that only records being woken.
struct Hand {
    waiter: MemberWaiter<u8>,
    waker: Waker,
}

struct Flag(std::sync::atomic::AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Hand {
    fn new() -> Self {
        Hand {
            waiter: MemberWaiter::new(),
            waker: Waker::from(Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)))),
        }
    }

    fn poll(&mut self, m: &Member<u8>) -> Poll<Vec<u8>> {
        let mut out = Vec::new();
        m.poll_recv_batch(
            &mut Context::from_waker(&self.waker),
            &mut self.waiter,
            1,
            &mut out,
        )
        .map(|r| {
            r.unwrap();
            out.into_iter().map(|c| c.value).collect()
        })
    }
}

/// Review 1: exclusive assignment over two partitions. A owns both and
/// waits; a publish to p1 wakes it (p1's message kept for it); B joins,
/// which gives p1 to B, and receives in another thread, racing A's run
/// (driven by hand here). Where B claimed first, it passed over the
/// message kept for A without arming p1's relay, A then parked unable
/// to read p1, and B waited forever (a deadlock here) while p1 got
/// more messages. B must get one of p1's messages.
#[test]
fn a_partition_given_away_while_its_message_is_kept_is_not_stranded() {
    bounded_model(4, || {
        let parts: Vec<Topic<u8>> = (0..2)
            .map(|_| Topic::new(TopicConfig::default().max_messages(Some(4))).unwrap())
            .collect();
        let config = GroupConfig::default().assignment(Assignment::Exclusive);
        let group = Group::new("g", parts.clone(), config).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let mut ha = Hand::new();
        assert!(ha.poll(&a).is_pending());
        parts[1].try_publish(10).unwrap(); // wakes A
        let b = group.join(StartFrom::Earliest).unwrap(); // p0: A, p1: B
        let tb = thread::spawn(move || {
            let r = loom::future::block_on(b.recv()).map(|c| c.value);
            (r, b) // holds the member: a member leaving wakes the others
        });
        assert_eq!(ha.poll(&a), Poll::Pending, "p0 is empty");
        parts[1].try_publish(11).unwrap();
        let (rb, _b) = tb.join().unwrap();
        assert!(matches!(rb, Ok(10 | 11)), "B got {rb:?}");
    });
}

/// Review 5: A waits (driven by hand, and not polled again), B waits in
/// another thread; two messages are published. The first woke A, and
/// the relay then stayed disarmed until A ran, so B waited forever (a
/// deadlock here) with the second message unread. Only the message kept
/// for A may wait for it: B must get the other.
#[test]
fn a_woken_member_that_does_not_run_holds_back_only_its_own_message() {
    bounded_model(4, || {
        eprintln!("------");
        let topic = Topic::<u8>::new(TopicConfig::default().max_messages(Some(4))).unwrap();
        let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        let mut ha = Hand::new();
        assert!(ha.poll(&a).is_pending());
        let tb = thread::spawn(move || {
            let r = loom::future::block_on(b.recv()).map(|c| c.value);
            (r, b)
        });
        eprintln!("pub 0");
        topic.try_publish(0).unwrap();
        eprintln!("pub 1");
        topic.try_publish(1).unwrap();
        eprintln!("join");
        let (rb, _b) = tb.join().unwrap();
        let rb = rb.unwrap();
        assert!(rb < 2);
        // A gets the other one.
        assert_eq!(ha.poll(&a), Poll::Ready(vec![1 - rb]));
    });
}

/// `seek_all` racing a publish that evicts the offset it seeks to from
/// partition 0: every partition moves (an eviction after the window
/// check is accepted, and the next receive reports it as lagged) or none
/// does (the check saw the eviction); never partition 1 alone.
#[test]
fn seek_all_racing_an_eviction_moves_every_partition_or_none() {
    model(|| {
        let one = || Topic::new(TopicConfig::default().max_messages(Some(1))).unwrap();
        let parts = vec![one(), one()];
        parts[0].try_publish(0u8).unwrap();
        parts[1].try_publish(0u8).unwrap();
        let group = Group::new("g", parts.clone(), GroupConfig::default()).unwrap();
        let m = group.join(StartFrom::Latest).unwrap();
        let p0 = parts[0].clone();
        // Evicts offset 0 of partition 0.
        let h = thread::spawn(move || p0.try_publish(1u8).unwrap());
        let sought = m.seek_all(0);
        h.join().unwrap();
        let positions = (m.position(0), m.position(1));
        let (mut got, mut lagged) = (Vec::new(), 0);
        for _ in 0..4 {
            match m.try_recv() {
                Ok(c) => got.push((c.partition, c.offset)),
                Err(memq_core::TryRecvError::Lagged(n)) => lagged += n,
                Err(_) => break,
            }
        }
        got.sort_unstable();
        match sought {
            Ok(()) => {
                assert_eq!(positions, (Some(0), Some(0)));
                assert_eq!((got, lagged), (vec![(0, 1), (1, 0)], 1));
            }
            Err(GroupError::OutOfRange { partition, range }) => {
                assert_eq!((partition, range.low), (0, 1));
                assert_eq!(positions, (Some(1), Some(1)), "nothing moved");
                assert_eq!((got, lagged), (vec![(0, 1)], 0));
            }
            Err(e) => panic!("{e:?}"),
        }
    });
}
