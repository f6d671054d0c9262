//! `GroupConfig::max_pending`: a group holds a bounded number of messages
//! unacknowledged; at the limit members get nothing new (redeliveries
//! still flow), wait, and are woken when room is made; the group's
//! position stops, so a blocking topic holds its publishers back.

use memq_testkit::within;
use std::time::Duration;

use memq_core::{Overflow, StartFrom, Topic, TopicConfig, TryRecvError};
use memq_groups::{AckMode, Group, GroupConfig, GroupError};

const LIMIT: Duration = Duration::from_secs(60);

fn limited(max: usize) -> GroupConfig {
    GroupConfig::default().ack(AckMode::Manual).max_pending(Some(max))
}

fn topic(cap: usize, overflow: Overflow) -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(cap)).overflow(overflow)).unwrap()
}

/// Lets spawned tasks run until they park (current-thread runtime).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn the_default_limit_and_a_zero_limit() {
    assert_eq!(GroupConfig::default().max_pending, Some(10_000));
    let t = topic(4, Overflow::DropOldest);
    let err = Group::new("g", vec![t], limited(0)).unwrap_err();
    assert!(matches!(err, GroupError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_member_at_the_limit_gets_nothing_new_until_it_acknowledges() {
    let t = topic(100, Overflow::DropOldest);
    let group = Group::new("g", vec![t.clone()], limited(3)).unwrap();
    let m = group.join(StartFrom::Earliest).unwrap();
    for i in 0..6 {
        t.try_publish(i).unwrap();
    }
    let mut held = Vec::new();
    assert_eq!(
        m.try_recv_batch(10, &mut held),
        Ok(3),
        "a batch stops at the limit"
    );
    assert_eq!(held.iter().map(|c| c.offset).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(m.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(tokio::time::timeout(Duration::from_secs(1), m.recv())
        .await
        .is_err());
    let s = group.stats();
    assert_eq!((s.pending, s.lag), (3, 6));
    m.ack(0, 1).unwrap();
    let next = m.try_recv().unwrap();
    assert_eq!((next.offset, next.deliveries), (3, 1));
    assert_eq!(m.try_recv().unwrap_err(), TryRecvError::Empty);
    m.ack(0, 0).unwrap();
    m.ack(0, 2).unwrap();
    let mut more = Vec::new();
    assert_eq!(m.try_recv_batch(10, &mut more), Ok(2));
    assert_eq!(more.iter().map(|c| c.offset).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(group.stats().committed, vec![Some(2)]);
}

/// No lost wake-up: a member parked at the limit is woken by the
/// acknowledgement (of another member) that makes room.
#[tokio::test(start_paused = true)]
async fn a_member_parked_at_the_limit_is_woken_by_the_ack_that_makes_room() {
    let t = topic(100, Overflow::DropOldest);
    let group = Group::new("g", vec![t.clone()], limited(3)).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    for i in 0..5 {
        t.try_publish(i).unwrap();
    }
    let mut held = Vec::new();
    a.try_recv_batch(3, &mut held).unwrap();
    let waiting = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let got = within(LIMIT, b.recv()).await;
        (
            got.map(|r| r.map(|c| (c.offset, c.deliveries))),
            start.elapsed(),
            b,
        )
    });
    settle().await;
    assert!(!waiting.is_finished(), "b waits at the limit");
    a.ack(0, 0).unwrap();
    let (got, waited, _b) = waiting.await.unwrap();
    assert_eq!(got.unwrap().unwrap(), (3, 1));
    assert_eq!(waited, Duration::ZERO, "woken by the ack, not by a timer");
}

/// Redeliveries flow at the limit: a member that leaves with the group's
/// whole allowance hands it to the member parked at the limit.
#[tokio::test(start_paused = true)]
async fn redeliveries_still_flow_at_the_limit() {
    let t = topic(100, Overflow::DropOldest);
    let group = Group::new("g", vec![t.clone()], limited(2)).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    for i in 0..4 {
        t.try_publish(i).unwrap();
    }
    let mut held = Vec::new();
    a.try_recv_batch(2, &mut held).unwrap();
    assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Empty);
    let waiting = tokio::spawn(async move {
        let mut got = Vec::new();
        let r = within(LIMIT, b.recv_batch(10, &mut got)).await;
        (r.map(|r| r.ok()), got, b)
    });
    settle().await;
    drop(a);
    let (r, got, _b) = waiting.await.unwrap();
    assert_eq!(r, Ok(Some(2)));
    let seen: Vec<(u64, u32)> = got.iter().map(|c| (c.offset, c.deliveries)).collect();
    assert_eq!(seen, vec![(0, 2), (1, 2)], "the redeliveries, nothing new");
    assert_eq!(group.stats().pending, 2);
}

/// Backpressure: on a blocking topic the group's position stops at the
/// limit, so publishers wait until an acknowledgement lets the group read
/// on.
#[tokio::test(start_paused = true)]
async fn a_blocking_topic_holds_publishers_back_while_the_group_is_at_the_limit() {
    let t = topic(4, Overflow::Block);
    let group = Group::new("g", vec![t.clone()], limited(3)).unwrap();
    let m = group.join(StartFrom::Earliest).unwrap();
    for i in 0..4 {
        t.try_publish(i).unwrap();
    }
    for i in 0..3 {
        assert_eq!(m.try_recv().unwrap().offset, i);
    }
    assert_eq!(m.try_recv().unwrap_err(), TryRecvError::Empty);
    // The group read 0..4 ahead (offset 3 waits in its buffer), so the
    // topic takes four more; then it is full of messages the group has
    // not read, and publishers wait.
    for i in 4..8 {
        t.try_publish(i).unwrap();
    }
    assert!(matches!(t.try_publish(8), Err(memq_core::PublishError::Full(8))));
    let publisher = {
        let t = t.clone();
        tokio::spawn(async move { within(LIMIT, t.publish(8)).await })
    };
    settle().await;
    assert!(!publisher.is_finished(), "the publisher waits");
    assert!(m.try_recv().is_err());
    m.ack(0, 0).unwrap();
    assert_eq!(m.try_recv().unwrap().offset, 3, "from the buffer");
    settle().await;
    assert!(!publisher.is_finished(), "still: the group has not read on");
    m.ack(0, 1).unwrap();
    assert_eq!(m.try_recv().unwrap().offset, 4, "read on");
    let offset = publisher.await.unwrap().expect("released at once").unwrap();
    assert_eq!(offset, 8);
    assert_eq!(group.stats().pending, 3);
}

/// End to end on a blocking topic: a publisher much faster than a member
/// that takes batches and acknowledges them later; everything arrives, in
/// order, and the group never holds more than the limit.
#[tokio::test(start_paused = true)]
async fn a_fast_publisher_and_a_slow_member_on_a_blocking_topic() {
    let t = topic(4, Overflow::Block);
    let group = Group::new("g", vec![t.clone()], limited(3)).unwrap();
    let m = group.join(StartFrom::Earliest).unwrap();
    let publisher = {
        let t = t.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                t.publish(i).await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut largest = 0;
    within(LIMIT, async {
        while seen.len() < 50 {
            let mut batch = Vec::new();
            m.recv_batch(10, &mut batch).await.unwrap();
            assert!(group.stats().pending <= 3);
            largest = largest.max(batch.len());
            tokio::time::sleep(Duration::from_millis(1)).await;
            for c in batch {
                seen.push(c.value);
                m.ack(c.partition, c.offset).unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(largest, 3, "batches fill up to the limit");
    publisher.await.unwrap();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    assert_eq!(group.stats().committed, vec![Some(49)]);
}
