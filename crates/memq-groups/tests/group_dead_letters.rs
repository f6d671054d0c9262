//! Dead letters are never dropped silently: a dead letter the sink hands
//! back (a full or closed dead-letter topic) stays in the group, counted
//! as pending and as waiting, holds the committed position below it, and
//! is offered again at later receives and acknowledgements, across the
//! last member leaving too, and across a sink that panics; once the sink
//! took it, it is never handed to a member again.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use memq_core::{Overflow, StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, DeadLetter, DeadLetterReason, DeadLetterSink, Group, GroupConfig, MemberWaiter};

type Taken = Arc<Mutex<Vec<DeadLetter<u64>>>>;

/// A sink that takes dead letters while `open` is set, and hands them
/// back otherwise.
fn switch_sink(open: &Arc<AtomicBool>) -> (DeadLetterSink<u64>, Taken) {
    let taken: Taken = Arc::default();
    let (to, open) = (taken.clone(), open.clone());
    let sink: DeadLetterSink<u64> = Arc::new(move |d| {
        if open.load(Ordering::SeqCst) {
            to.lock().unwrap().push(d);
            Ok(())
        } else {
            Err(d)
        }
    });
    (sink, taken)
}

fn manual_max_1() -> GroupConfig {
    GroupConfig::default()
        .ack(AckMode::Manual)
        .max_deliveries(Some(1))
}

/// Offset 0 (value 100) delivered once and not acknowledged by a member
/// that leaves (the caller keeps another in the group): due for a second
/// delivery, which `max_deliveries(1)` refuses.
fn poison(group: &Group<u64>, t: &Topic<u64>) {
    let failing = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(100).unwrap();
    assert_eq!(failing.try_recv().unwrap().offset, 0);
    drop(failing);
}

#[test]
fn a_refused_dead_letter_waits_in_the_group_and_is_offered_again() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let (sink, taken) = switch_sink(&open);
    let group = Group::with_dead_letters("g", vec![t.clone()], manual_max_1(), sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    poison(&group, &t);
    t.try_publish(101).unwrap();
    t.try_publish(102).unwrap();
    // The claim buries offset 0 (refused) and hands out offset 1.
    let c = worker.try_recv().unwrap();
    assert_eq!((c.offset, c.deliveries), (1, 1));
    let s = group.stats();
    assert_eq!((s.dead_letters_waiting, s.dead_lettered, s.pending), (1, 0, 2));
    worker.ack(0, 1).unwrap(); // offered again, refused again
    assert_eq!(worker.try_recv().unwrap().offset, 2);
    worker.ack(0, 2).unwrap();
    let s = group.stats();
    assert_eq!((s.dead_letters_waiting, s.dead_lettered, s.pending), (1, 0, 1));
    assert_eq!(s.committed, vec![None], "never past the dead letter waiting");
    assert_eq!(s.lag, 3);
    assert!(taken.lock().unwrap().is_empty());
    assert_eq!(worker.try_recv().unwrap_err(), memq_core::TryRecvError::Empty);

    // The sink takes it at the next receive.
    open.store(true, Ordering::SeqCst);
    assert_eq!(worker.try_recv().unwrap_err(), memq_core::TryRecvError::Empty);
    let s = group.stats();
    assert_eq!((s.dead_letters_waiting, s.dead_lettered, s.pending), (0, 1, 0));
    assert_eq!(s.committed, vec![Some(2)]);
    assert_eq!(s.lag, 0);
    let taken = taken.lock().unwrap();
    assert_eq!(taken.len(), 1);
    let d = &taken[0];
    assert_eq!(
        (&*d.group, d.partition, d.offset, d.deliveries, d.value),
        ("g", 0, 0, 1, 100)
    );
    assert_eq!(d.reason, DeadLetterReason::MaxDeliveries { limit: 1 });
}

#[test]
fn an_acknowledgement_offers_the_dead_letters_waiting() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let (sink, taken) = switch_sink(&open);
    let group = Group::with_dead_letters("g", vec![t.clone()], manual_max_1(), sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    poison(&group, &t);
    t.try_publish(101).unwrap();
    let c = worker.try_recv().unwrap();
    assert_eq!(group.stats().dead_letters_waiting, 1);
    open.store(true, Ordering::SeqCst);
    worker.ack(c.partition, c.offset).unwrap();
    assert_eq!(taken.lock().unwrap().len(), 1);
    let s = group.stats();
    assert_eq!((s.dead_letters_waiting, s.dead_lettered, s.pending), (0, 1, 0));
    assert_eq!(s.committed, vec![Some(1)]);
}

#[test]
fn a_dead_letter_waiting_survives_the_last_member_leaving() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let (sink, taken) = switch_sink(&open);
    let group = Group::with_dead_letters("g", vec![t.clone()], manual_max_1(), sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    poison(&group, &t);
    assert!(worker.try_recv().is_err());
    assert_eq!(group.stats().dead_letters_waiting, 1);
    drop(worker);
    let s = group.stats();
    assert_eq!((s.members, s.dead_letters_waiting, s.pending), (0, 1, 1));
    assert_eq!(s.lag, 1);

    // The rejoined group reads offset 0 again: it is a dead letter, not a
    // message for members.
    let again = group.join(StartFrom::Committed).unwrap();
    t.try_publish(101).unwrap();
    let c = again.try_recv().unwrap();
    assert_eq!((c.offset, c.deliveries), (1, 1));
    again.ack(0, 1).unwrap();
    assert_eq!(group.stats().committed, vec![None]);

    open.store(true, Ordering::SeqCst);
    assert!(again.try_recv().is_err());
    let taken = taken.lock().unwrap();
    assert_eq!(
        taken.iter().map(|d| (d.offset, d.value)).collect::<Vec<_>>(),
        vec![(0, 100)]
    );
    let s = group.stats();
    assert_eq!((s.dead_letters_waiting, s.dead_lettered, s.pending), (0, 1, 0));
    assert_eq!(s.committed, vec![Some(1)]);
}

/// The sink most users have: publish to a dead-letter topic, here one
/// that blocks when full. What it cannot take waits, and goes once the
/// dead-letter topic's reader has made room.
#[test]
fn a_full_dead_letter_topic_holds_dead_letters_back_instead_of_losing_them() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let dlq = Topic::new(
        TopicConfig::default()
            .max_messages(Some(1))
            .overflow(Overflow::Block),
    )
    .unwrap();
    let mut dlq_reader = dlq.subscribe(StartFrom::Earliest).unwrap();
    let to = dlq.clone();
    let sink: DeadLetterSink<u64> = Arc::new(move |mut d: DeadLetter<u64>| match to.try_publish(d.value) {
        Ok(_) => Ok(()),
        Err(e) => {
            d.value = e.into_inner();
            Err(d)
        }
    });
    let group = Group::with_dead_letters("g", vec![t.clone()], manual_max_1(), sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    // Two poison messages: the second finds the dead-letter topic full.
    for v in [100, 101] {
        let failing = group.join(StartFrom::Earliest).unwrap();
        t.try_publish(v).unwrap();
        let c = failing.try_recv().unwrap();
        assert_eq!(c.value, v);
        drop(failing);
        assert!(worker.try_recv().is_err());
    }
    let s = group.stats();
    assert_eq!((s.dead_lettered, s.dead_letters_waiting), (1, 1));
    assert_eq!(s.committed, vec![Some(0)]);
    assert_eq!(dlq_reader.try_recv().unwrap().value, 100);
    assert!(worker.try_recv().is_err()); // offered again: room now
    assert_eq!(dlq_reader.try_recv().unwrap().value, 101);
    let s = group.stats();
    assert_eq!((s.dead_lettered, s.dead_letters_waiting, s.pending), (2, 0, 0));
    assert_eq!(s.committed, vec![Some(1)]);
}

/// Dead letters the sink refuses can fill `max_pending`; then no receive
/// and no acknowledgement would come to offer them again. A member that
/// waits offers them again on a timer, and gets the next message once the
/// dead-letter topic has room.
#[tokio::test(start_paused = true)]
async fn a_member_waiting_at_the_limit_offers_refused_dead_letters_again() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let (sink, taken) = switch_sink(&open);
    let config = manual_max_1().max_pending(Some(1));
    let group = Group::with_dead_letters("g", vec![t.clone()], config, sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    poison(&group, &t);
    t.try_publish(101).unwrap();
    assert!(worker.try_recv().is_err(), "at the limit: the dead letter waits");
    assert_eq!(group.stats().pending, 1);
    let start = tokio::time::Instant::now();
    let opener = {
        let open = open.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            open.store(true, Ordering::SeqCst);
        })
    };
    let c = memq_testkit::within(std::time::Duration::from_secs(60), worker.recv())
        .await
        .expect("offered again while waiting")
        .unwrap();
    assert_eq!((c.offset, c.value), (1, 101));
    assert_eq!(
        start.elapsed(),
        std::time::Duration::from_millis(300),
        "at the next retry"
    );
    opener.await.unwrap();
    assert_eq!(taken.lock().unwrap().len(), 1);
    assert_eq!(group.stats().dead_lettered, 1);
}

/// Review 3: a refused dead letter at offset 0 waits; the last member
/// leaves; C rejoins from the committed offset (below it); the sink now
/// takes it. C's receive offered it (taken, and forgotten), then read
/// offset 0 again from the topic and handed it out as a new message
/// (delivery 1). A dead letter is never handed to a member again.
#[test]
fn a_dead_letter_taken_after_a_rejoin_is_not_handed_out_again() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let (sink, taken) = switch_sink(&open);
    let group = Group::with_dead_letters("g", vec![t.clone()], manual_max_1(), sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    poison(&group, &t);
    assert!(worker.try_recv().is_err(), "dead-lettered, refused: waits");
    assert_eq!(group.stats().dead_letters_waiting, 1);
    drop(worker);
    let again = group.join(StartFrom::Committed).unwrap();
    assert_eq!(again.position(0), Some(0), "below the dead letter");
    open.store(true, Ordering::SeqCst);
    let r = again.try_recv();
    assert!(r.is_err(), "handed out again: {r:?}");
    assert_eq!(taken.lock().unwrap().len(), 1);
    t.try_publish(101).unwrap();
    let c = again.try_recv().unwrap();
    assert_eq!((c.offset, c.deliveries), (1, 1));
    again.ack(0, 1).unwrap();
    let s = group.stats();
    assert_eq!((s.dead_lettered, s.dead_letters_waiting, s.pending), (1, 0, 0));
    assert_eq!(s.committed, vec![Some(1)]);
}

/// Review 3, the same with the letter taken at once: a message below it
/// stays unacknowledged, so the commit stays below the dead letter; the
/// last member leaves; a rejoin from the committed offset reads both
/// again. The unacknowledged one comes back (as documented); the dead
/// letter must not.
#[test]
fn a_dead_letter_above_the_commit_is_passed_over_by_a_rejoin() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(true));
    let (sink, taken) = switch_sink(&open);
    let group = Group::with_dead_letters("g", vec![t.clone()], manual_max_1(), sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    let failing = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(100).unwrap();
    t.try_publish(101).unwrap();
    assert_eq!(worker.try_recv().unwrap().offset, 0, "held, never acknowledged");
    assert_eq!(failing.try_recv().unwrap().offset, 1);
    drop(failing);
    assert!(worker.try_recv().is_err(), "offset 1 dead-lettered");
    assert_eq!(taken.lock().unwrap().len(), 1);
    assert_eq!(group.stats().committed, vec![None]);
    drop(worker);
    let again = group.join(StartFrom::Committed).unwrap();
    let c = again.try_recv().unwrap();
    assert_eq!((c.offset, c.deliveries), (0, 1), "unacknowledged: received again");
    let r = again.try_recv();
    assert!(r.is_err(), "the dead letter handed out again: {r:?}");
    again.ack(0, 0).unwrap();
    assert_eq!(group.stats().committed, vec![Some(1)]);
}

/// Review 4: a sink that panics. The letter it was given was marked as
/// being offered and never restored: never offered again, pending and
/// commit stuck; and the member the claim had woken (room made by a
/// letter taken just before) was never woken. The panic reaches the
/// caller; the letter waits and is offered again; the woken member is.
#[tokio::test(start_paused = true)]
async fn a_panicking_sink_leaves_its_dead_letter_waiting() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    // 0: refuse; 1: take one, then panic; 2: take.
    let mode = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let taken: Taken = Arc::default();
    let sink: DeadLetterSink<u64> = {
        let (mode, calls, taken) = (mode.clone(), calls.clone(), taken.clone());
        Arc::new(move |d| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            match mode.load(Ordering::SeqCst) {
                0 => Err(d),
                1 if taken.lock().unwrap().len() == 1 => panic!("sink bug at call {call}"),
                _ => {
                    taken.lock().unwrap().push(d);
                    Ok(())
                }
            }
        })
    };
    let config = manual_max_1().max_pending(Some(2));
    let group = Group::with_dead_letters("g", vec![t.clone()], config, sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    let failing = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(100).unwrap();
    t.try_publish(101).unwrap();
    let mut held = Vec::new();
    failing.try_recv_batch(2, &mut held).unwrap();
    drop(failing);
    assert!(worker.try_recv().is_err(), "both dead-lettered, refused");
    assert_eq!(group.stats().dead_letters_waiting, 2);
    t.try_publish(102).unwrap();
    // A member parked at the limit, with a message to take once there
    // is room.
    let parked = group.join(StartFrom::Earliest).unwrap();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut waiter = MemberWaiter::new();
    let mut out = Vec::new();
    let poll = parked.poll_recv_batch(&mut Context::from_waker(&waker), &mut waiter, 1, &mut out);
    assert!(poll.is_pending());

    mode.store(1, Ordering::SeqCst);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| worker.try_recv()));
    assert!(r.is_err(), "the sink's panic reaches the caller");
    assert!(
        flag.0.load(Ordering::SeqCst),
        "the member woken for the room made"
    );
    let s = group.stats();
    assert_eq!((s.dead_lettered, s.dead_letters_waiting, s.pending), (1, 1, 1));
    assert_eq!(s.committed, vec![Some(0)]);

    mode.store(2, Ordering::SeqCst);
    // Offered again; offset 2 is kept for the member woken for it.
    assert!(worker.try_recv().is_err());
    assert_eq!(
        taken.lock().unwrap().iter().map(|d| d.offset).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let poll = parked.poll_recv_batch(&mut Context::from_waker(&waker), &mut waiter, 1, &mut out);
    assert!(poll.is_ready());
    assert_eq!(out[0].offset, 2);
    let s = group.stats();
    assert_eq!((s.dead_lettered, s.dead_letters_waiting), (2, 0));
    assert_eq!(s.committed, vec![Some(1)]);
}

/// Review 8: with refused dead letters holding the group at
/// `max_pending`, a receive polled outside any Tokio runtime panicked
/// (its 100 ms retry timer needed a runtime). Its retry timer now runs on
/// memq-core's timer thread there; the dead letters are offered again at
/// the group's receives and acks too.
#[test]
fn a_member_waiting_at_the_limit_outside_a_runtime_does_not_panic() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let (sink, taken) = switch_sink(&open);
    let config = manual_max_1().max_pending(Some(1));
    let group = Group::with_dead_letters("g", vec![t.clone()], config, sink).unwrap();
    let worker = group.join(StartFrom::Earliest).unwrap();
    poison(&group, &t);
    t.try_publish(101).unwrap();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut waiter = MemberWaiter::new();
    let mut out = Vec::new();
    let poll = std::panic::catch_unwind(AssertUnwindSafe(|| {
        worker.poll_recv_batch(&mut Context::from_waker(&waker), &mut waiter, 1, &mut out)
    }));
    assert!(matches!(poll, Ok(Poll::Pending)), "{poll:?}");
    assert_eq!(group.stats().dead_letters_waiting, 1);
    open.store(true, Ordering::SeqCst);
    let other = group.join(StartFrom::Earliest).unwrap();
    assert!(flag.0.swap(false, Ordering::SeqCst), "the join woke it");
    let poll = worker.poll_recv_batch(&mut Context::from_waker(&waker), &mut waiter, 1, &mut out);
    assert!(poll.is_ready(), "the dead letter taken, room for offset 1");
    assert_eq!(out[0].offset, 1);
    assert_eq!(taken.lock().unwrap().len(), 1);
    drop(other);
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Model (shrunk by hand): one receive hands out a redelivery, then finds
/// a gap in one partition (evicted unread), then reads the other from a
/// seek back, where the first message it reads is a dead letter the sink
/// took (passed over). It stopped reading there, because of the gap found
/// in the first partition, and returned one message for a batch of two
/// with the next one readable. A gap stops the read of its own partition
/// only.
#[test]
fn a_gap_in_one_partition_does_not_cut_short_the_batch_from_another() {
    let p0 = Topic::new(TopicConfig::default()).unwrap();
    let p1 = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    let (sink, taken) = switch_sink(&Arc::new(AtomicBool::new(true)));
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .max_deliveries(Some(2));
    let group = Group::with_dead_letters("g", vec![p0.clone(), p1.clone()], config, sink).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let c = group.join(StartFrom::Earliest).unwrap();
    p0.try_publish(10).unwrap();
    p1.try_publish(20).unwrap();
    let mut held = Vec::new();
    a.try_recv_batch(2, &mut held).unwrap();
    assert!(b.try_recv().is_err());
    drop(a); // both wait for redelivery
    assert_eq!(c.try_recv().map(|m| (m.partition, m.deliveries)), Ok((0, 2)));
    // The seek back while c holds p0's 0 (a seek unqueues what waits for
    // redelivery at or past it: that goes out as new instead).
    b.seek(0, 0).unwrap();
    drop(c); // p0's 0 again, at its last delivery
    p0.try_publish(11).unwrap();
    for v in 21..24 {
        p1.try_publish(v).unwrap(); // evicts p1's 1, unread
    }
    // Receives take the partitions in turn: this one starts at p1.
    let mut out = Vec::new();
    let n = b.try_recv_batch(2, &mut out).unwrap();
    let got: Vec<_> = out
        .iter()
        .map(|m| (m.partition, m.offset, m.deliveries))
        .collect();
    assert_eq!(taken.lock().unwrap().len(), 1, "p0's 0 dead-lettered");
    assert_eq!(
        got,
        vec![(1, 0, 2), (0, 1, 1)],
        "p1's 0 redelivered, p0's 0 passed over, p0's 1; group {:?}",
        group.stats()
    );
    assert_eq!(n, 2);
    assert_eq!(
        b.try_recv_batch(2, &mut out),
        Err(memq_core::TryRecvError::Lagged(1))
    );
    assert_eq!(b.try_recv().map(|m| (m.partition, m.offset)), Ok((1, 2)));
}

/// A claim offers new dead letters to the sink with the group's lock
/// released; a member leaving meanwhile (here from inside the sink; any
/// thread could) gives the claiming member a partition whose pending
/// message is queued for redelivery. That message must come before the
/// partition's next new one: the claim handed out the new one first.
#[test]
fn a_rebalance_while_the_sink_runs_keeps_redeliveries_first() {
    let topics: Vec<Topic<&str>> = (0..3)
        .map(|_| Topic::new(TopicConfig::default()).unwrap())
        .collect();
    let leaver: Arc<Mutex<Option<memq_groups::Member<&str>>>> = Arc::default();
    let in_sink = leaver.clone();
    let sink: DeadLetterSink<&str> = Arc::new(move |_d: DeadLetter<&str>| {
        drop(in_sink.lock().unwrap().take());
        Ok(())
    });
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .max_deliveries(Some(2))
        .assignment(memq_groups::Assignment::Exclusive);
    let g = Group::with_dead_letters("g", topics.clone(), config, sink).unwrap();
    let a = g.join(StartFrom::Earliest).unwrap(); // owns p0
    let b = g.join(StartFrom::Earliest).unwrap(); // owns p1
    let c = g.join(StartFrom::Earliest).unwrap(); // owns p2
    topics[1].try_publish("p1-first").unwrap();
    let held = b.try_recv().unwrap();
    assert_eq!((held.partition, held.offset), (1, 0));
    topics[1].try_publish("p1-second").unwrap();
    *leaver.lock().unwrap() = Some(b);
    // p2@0 at its second delivery when c leaves: a owns p2, and its next
    // claim makes it a dead letter.
    topics[2].try_publish("poison").unwrap();
    let x = c.try_recv().unwrap();
    c.nack(x.partition, x.offset).unwrap();
    assert_eq!(c.try_recv().unwrap().deliveries, 2);
    drop(c);
    // The sink takes the poison and b leaves: p1 is a's, p1@0 queued.
    let first = a.try_recv().unwrap();
    assert_eq!(
        (first.partition, first.offset, first.deliveries),
        (1, 0, 2),
        "p1@0 before p1@1"
    );
    let second = a.try_recv().unwrap();
    assert_eq!((second.partition, second.offset, second.deliveries), (1, 1, 1));
}
