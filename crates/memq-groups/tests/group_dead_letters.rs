//! Dead letters are never dropped silently: a dead letter the sink hands
//! back (a full or closed dead-letter topic) stays in the group, counted
//! as pending and as waiting, holds the committed position below it, and
//! is offered again at later receives and acknowledgements, across the
//! last member leaving too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use memq_core::{Overflow, StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, DeadLetter, DeadLetterReason, DeadLetterSink, Group, GroupConfig};

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
    let c = tokio::time::timeout(std::time::Duration::from_secs(60), worker.recv())
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
