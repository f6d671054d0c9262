//! Exclusive assignment with manual acknowledgement: a member that holds
//! messages past the ack timeout without receiving or acknowledging has
//! failed (`GroupConfig::ack_timeout`), so its partitions go to the other
//! members until its next receive. Before, its messages were taken from
//! it but waited for it (it still owned their partition), and a stuck
//! owner stalled its partitions for as long as it lived.

use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckError, AckMode, Assignment, Group, GroupConfig, Member};
use memq_testkit::within;
use tokio::time::Instant;

const ACK_TIMEOUT: Duration = Duration::from_millis(100);

/// Far longer than anything here takes; under paused time a hang reaches
/// it at once.
const LIMIT: Duration = Duration::from_secs(60);

fn group(partitions: usize) -> (Vec<Topic<u64>>, Group<u64>) {
    let topics: Vec<Topic<u64>> = (0..partitions)
        .map(|_| Topic::new(TopicConfig::default().max_messages(Some(64))).unwrap())
        .collect();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .ack_timeout(Some(ACK_TIMEOUT))
        .assignment(Assignment::Exclusive);
    let group = Group::new("g", topics.clone(), config).unwrap();
    (topics, group)
}

/// Drains what `m` can take now: (partition, offset, deliveries).
fn drain(m: &Member<u64>) -> Vec<(usize, u64, u32)> {
    std::iter::from_fn(|| m.try_recv().ok())
        .map(|c| (c.partition, c.offset, c.deliveries))
        .collect()
}

/// Two members of a two-partition group, one partition each, each given a
/// message: A holds its own, B acknowledged its. Returns A, B and their
/// partitions.
fn a_holds_one(t: &[Topic<u64>], g: &Group<u64>) -> (Member<u64>, Member<u64>, usize, usize) {
    let a = g.join(StartFrom::Earliest).unwrap();
    let b = g.join(StartFrom::Earliest).unwrap();
    t[0].try_publish(10).unwrap();
    t[1].try_publish(20).unwrap();
    let from_a = a.try_recv().unwrap();
    let from_b = b.try_recv().unwrap();
    let (pa, pb) = (from_a.partition, from_b.partition);
    assert_ne!(pa, pb, "one partition each");
    b.ack(pb, from_b.offset).unwrap();
    (a, b, pa, pb)
}

/// A takes a message of its partition and then does nothing. B, parked
/// in `recv`, wakes when A's ack timeout runs out and takes A's message
/// (second delivery) and what A's partition receives afterwards; A's late
/// ack is refused. When A receives again it gets its partition back.
#[tokio::test(start_paused = true)]
async fn a_stuck_owner_loses_its_partitions_until_it_receives_again() {
    let (t, g) = group(2);
    let (a, b, pa, pb) = a_holds_one(&t, &g);
    let start = Instant::now();

    // B waits; A holds its message and is stuck.
    let waiting = tokio::spawn(async move {
        let c = b.recv().await.unwrap();
        ((c.partition, c.offset, c.deliveries), Instant::now(), b)
    });
    let (got, at, b) = within(LIMIT, waiting)
        .await
        .expect("B never got A's message")
        .unwrap();
    assert_eq!(got, (pa, 0, 2), "A's message, delivered a second time, to B");
    assert_eq!(at - start, ACK_TIMEOUT, "at the moment A's ack timeout ran out");
    b.ack(pa, 0).unwrap();

    // A's partition is B's while A stays away: new messages flow to B.
    t[pa].try_publish(11).unwrap();
    t[pb].try_publish(21).unwrap();
    let mut got = drain(&b);
    got.sort_unstable();
    let mut want = vec![(pa, 1, 1), (pb, 1, 1)];
    want.sort_unstable();
    assert_eq!(got, want, "B reads both partitions");
    let late = a.ack(pa, 0);
    assert!(
        matches!(late, Err(AckError::NotOwned { .. })),
        "A's late ack is refused: {late:?}"
    );
    for (p, o, _) in got {
        b.ack(p, o).unwrap();
    }

    // A receives again: the partitions are shared out again.
    assert!(a.try_recv().is_err(), "nothing waiting");
    t[0].try_publish(12).unwrap();
    t[1].try_publish(22).unwrap();
    let (from_a, from_b) = (drain(&a), drain(&b));
    assert_eq!(from_a.len(), 1, "A owns one partition again: {from_a:?}");
    assert_eq!(from_b.len(), 1, "B owns the other: {from_b:?}");
    assert_ne!(from_a[0].0, from_b[0].0);
    assert_eq!(g.stats().pending, 2);
}

/// A member waiting in a receive has not failed, although it holds
/// messages past the timeout: they are taken from it and come back to it
/// (it keeps its partition), and the other member is not handed them.
#[tokio::test(start_paused = true)]
async fn an_owner_waiting_in_a_receive_keeps_its_partition() {
    let (t, g) = group(2);
    let (a, b, pa, _) = a_holds_one(&t, &g);

    // A waits for more without acknowledging; B waits too.
    let a_task = tokio::spawn(async move {
        let c = a.recv().await.unwrap();
        ((c.partition, c.offset, c.deliveries), a)
    });
    tokio::task::yield_now().await;
    // (Until A has held it, again, for the timeout without receiving:
    // then A has failed, and B takes it.)
    let b_task = tokio::spawn(async move {
        let r = tokio::time::timeout(ACK_TIMEOUT * 3 / 2, b.recv()).await;
        (r.is_err(), b)
    });
    let (got, _a) = within(LIMIT, a_task)
        .await
        .expect("A never got its message back")
        .unwrap();
    assert_eq!(got, (pa, 0, 2), "A's own message came back to it");
    let (timed_out, _b) = within(LIMIT, b_task).await.unwrap().unwrap();
    assert!(timed_out, "B was handed nothing of A's partition");
}

/// The only member left holds the partitions even when stuck: with no
/// one else to take them, its messages wait for it, and it gets them as
/// redeliveries at its next receive.
#[tokio::test(start_paused = true)]
async fn a_stuck_member_alone_keeps_its_partitions() {
    let (t, g) = group(2);
    let (a, b, pa, _) = a_holds_one(&t, &g);
    tokio::time::sleep(ACK_TIMEOUT).await;
    // B's receive finds A failed and takes its partition ...
    assert_eq!(drain(&b), vec![(pa, 0, 2)]);
    // ... and leaves: A is alone, and owns both again.
    drop(b);
    t[pa].try_publish(11).unwrap();
    let mut got = drain(&a);
    got.sort_unstable();
    assert_eq!(got, vec![(pa, 0, 3), (pa, 1, 1)]);
}

/// A failure moves only the failed member's partitions: with three
/// members, B failing gave C's partition to A as well (the owners were
/// recomputed over the members left), with the message C was working on,
/// and C's acknowledgement was refused.
#[tokio::test(start_paused = true)]
async fn a_failure_leaves_the_healthy_members_partitions_alone() {
    let (t, g) = group(3);
    let (a, b, c) = (
        g.join(StartFrom::Earliest).unwrap(),
        g.join(StartFrom::Earliest).unwrap(),
        g.join(StartFrom::Earliest).unwrap(),
    );
    // In join order they own partitions 0, 1 and 2.
    t[1].try_publish(11).unwrap();
    let held_by_b = b.try_recv().unwrap();
    assert_eq!(held_by_b.partition, 1);
    tokio::time::sleep(ACK_TIMEOUT / 2).await;
    t[2].try_publish(21).unwrap();
    let work_of_c = c.try_recv().unwrap();
    assert_eq!(work_of_c.partition, 2);
    tokio::time::sleep(ACK_TIMEOUT / 2).await;
    // B has failed; C received half a timeout ago.
    assert_eq!(drain(&a), vec![(1, 0, 2)], "A takes B's message, and only that");
    a.ack(1, 0).unwrap();
    c.ack(2, 0).unwrap();
    t[2].try_publish(22).unwrap();
    assert_eq!(drain(&c), vec![(2, 1, 1)], "C keeps its partition");
    // B comes back: the partitions are shared out afresh.
    assert!(b.try_recv().is_err());
    t[1].try_publish(12).unwrap();
    assert_eq!(drain(&b), vec![(1, 1, 1)]);
}
