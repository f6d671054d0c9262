//! Lag, expiry and backpressure meeting each other: publishers parked on
//! a full topic whose messages expire, lag reports that leave expired
//! messages out, and all-partition seeks and group commits that fail
//! without applying half of themselves.

use memq_testkit::within;
use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_memq::{
    CommitError, ConsumptionMode, MessageQueue, PartitionRouting, PublishError, Publisher, RecvError,
    Subscriber, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_millis(100);

/// A topic of two messages with backpressure and a 100 ms TTL, full at
/// t = 0: two messages published, held by a subscriber (at offset 0) that
/// never reads. Returns that subscriber and a publisher.
async fn full_topic_about_to_expire(mq: &MessageQueue) -> (Subscriber, Publisher) {
    let options = TopicOptions {
        max_messages: Some(2),
        lru_enabled: false,
        message_ttl: Some(TTL),
        ..Default::default()
    };
    let idle = mq
        .subscriber_with_options_and_mode("c", options, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let p = mq.publisher("c");
    assert_eq!(p.publish(0u32).await.unwrap(), 0);
    assert_eq!(p.publish(1u32).await.unwrap(), 1);
    assert!(
        matches!(p.try_publish(9u32), Err(PublishError::Full(9))),
        "full at t = 0"
    );
    (idle, p)
}

/// Bug C (a). Guards backpressure against TTL: a publish parked on a full
/// `lru_enabled: false` topic completes once the messages holding it back
/// have expired, with no other activity on the topic. Promise
/// (`TopicOptions::lru_enabled`): "a full topic makes `publish` wait until
/// every live subscriber has read the oldest message" — an expired
/// message is never delivered (`message_ttl`), so nobody will read it,
/// and the room exists from 100 ms on.
#[tokio::test(start_paused = true)]
async fn a_parked_publish_completes_when_the_messages_holding_it_expire() {
    let mq = MessageQueue::new();
    let (_idle, p) = full_topic_about_to_expire(&mq).await;
    let parked = {
        let p = p.clone();
        tokio::spawn(async move { p.publish(2u32).await })
    };
    tokio::task::yield_now().await;
    assert!(!parked.is_finished(), "the topic is full: the publish waits");
    tokio::time::advance(Duration::from_millis(300)).await;
    let done = within(LIMIT, parked).await;
    let stats = mq.get_topic_stats("c").await.unwrap();
    let offset = done
        .unwrap_or_else(|_| {
            panic!(
                "the publish is still parked {LIMIT:?} after both messages expired \
                 (expired {}, retained {})",
                stats.expired, stats.message_count
            )
        })
        .unwrap();
    assert!(matches!(offset, Ok(2)), "{offset:?}");
}

/// Bug C (b). As (a) with `publish_timeout(1 s)`: room exists from
/// 100 ms, so it must complete then, not fail with `Timeout` after the
/// full second. Promise (`Publisher::publish_timeout`): "Publishes
/// `data`, waiting at most `timeout` for room".
#[tokio::test(start_paused = true)]
async fn publish_timeout_completes_when_the_messages_holding_it_expire() {
    let mq = MessageQueue::new();
    let (_idle, p) = full_topic_about_to_expire(&mq).await;
    let start = Instant::now();
    let parked = {
        let p = p.clone();
        tokio::spawn(async move { p.publish_timeout(2u32, Duration::from_secs(1)).await })
    };
    let r = within(LIMIT, parked)
        .await
        .expect("publish_timeout returns by its own timeout")
        .unwrap();
    let waited = start.elapsed();
    assert!(
        matches!(r, Ok(2)) && waited < Duration::from_secs(1),
        "published soon after the expiry at {TTL:?}; got {r:?} after {waited:?}"
    );
}

/// Bug C (c). As (a), with a `try_publish` at 300 ms: it succeeds (the
/// room exists), and the parked publish must complete too (two free
/// places, two publishes). Promise as (a).
#[tokio::test(start_paused = true)]
async fn a_parked_publish_completes_when_a_try_publish_finds_room() {
    let mq = MessageQueue::new();
    let (_idle, p) = full_topic_about_to_expire(&mq).await;
    let parked = {
        let p = p.clone();
        tokio::spawn(async move { p.publish(2u32).await })
    };
    tokio::task::yield_now().await;
    assert!(!parked.is_finished(), "the topic is full: the publish waits");
    tokio::time::advance(Duration::from_millis(300)).await;
    let tried = p.try_publish(3u32);
    assert!(tried.is_ok(), "room exists at 300 ms: {tried:?}");
    let done = within(LIMIT, parked)
        .await
        .expect("the parked publish completes: the topic holds one message of two")
        .unwrap();
    let offsets: BTreeSet<u64> = [tried.unwrap(), done.unwrap()].into();
    assert_eq!(offsets, BTreeSet::from([2, 3]));
}

/// Five messages published at t = 0 expire and are swept at 150 ms, then
/// offsets 5..11 fill the capacity-5 topic again and offset 10 evicts
/// offset 5, which is live: one evicted, five expired.
async fn expire_five_then_evict_one(mq: &MessageQueue) {
    let p = mq.publisher("g");
    for i in 0..5u32 {
        assert_eq!(p.publish(i).await.unwrap(), u64::from(i));
    }
    tokio::time::advance(Duration::from_millis(150)).await;
    let stats = mq.get_topic_stats("g").await.unwrap();
    assert_eq!((stats.expired, stats.evicted, stats.message_count), (5, 0, 0));
    for i in 5..11u32 {
        assert_eq!(p.publish(i).await.unwrap(), u64::from(i));
    }
    let stats = mq.get_topic_stats("g").await.unwrap();
    assert_eq!(
        (stats.expired, stats.evicted, stats.low_offset, stats.next_offset),
        (5, 1, 6, 11)
    );
}

/// A subscriber from offset 0 of `topic`, made with `capacity_five_ttl`.
async fn earliest_with_capacity_five_ttl(mq: &MessageQueue, topic: &str) -> Subscriber {
    mq.subscriber_with_options_and_mode(topic, capacity_five_ttl(), ConsumptionMode::Earliest)
        .await
        .unwrap()
}

fn capacity_five_ttl() -> TopicOptions {
    TopicOptions {
        max_messages: Some(5),
        message_ttl: Some(TTL),
        ..Default::default()
    }
}

/// Bug G. Guards the lag count: five messages expire and are swept, then
/// exactly one live message is evicted for capacity; a subscriber still
/// at offset 0 gets `Lagged(1)`, not `Lagged(6)`. The rule (invariant 3):
/// "Lagged(n) counts messages evicted for capacity that the subscriber
/// had not read; messages removed by TTL expiry are skipped silently".
#[tokio::test(start_paused = true)]
async fn a_lag_report_leaves_out_expired_messages() {
    let mq = MessageQueue::new();
    // Created before anything is published: positioned at offset 0.
    let sub = earliest_with_capacity_five_ttl(&mq, "g").await;
    expire_five_then_evict_one(&mq).await;
    let first = within(LIMIT, sub.recv()).await.unwrap().map(|m| m.offset());
    assert_eq!(
        first,
        Err(RecvError::Lagged(1)),
        "one evicted unread; five expired"
    );
    assert_eq!(within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 6);
}

/// `Subscriber::lag` counts what the subscriber will still receive or be
/// told it lost: evicted messages, never expired ones, also before
/// anything swept them (it counted them until a receive looked).
#[tokio::test(start_paused = true)]
async fn a_subscribers_lag_counts_what_it_will_still_receive() {
    let mq = MessageQueue::new();
    let sub = earliest_with_capacity_five_ttl(&mq, "g").await;
    expire_five_then_evict_one(&mq).await;
    assert_eq!(sub.lag(), 1 + 5, "one evicted unread, five live; five expired");

    // Expired and not swept: no publish or stats call since.
    let sub = earliest_with_capacity_five_ttl(&mq, "h").await;
    let p = mq.publisher("h");
    for i in 0..3u32 {
        p.publish(i).await.unwrap();
    }
    assert_eq!(sub.lag(), 3);
    tokio::time::advance(Duration::from_millis(150)).await;
    assert_eq!(sub.lag(), 0, "all three expired: nothing will be received");
    assert!(matches!(sub.try_recv_now(), Err(tokio_memq::TryRecvError::Empty)));
}

/// Bug G through a group member: the same rule for the group's cursor.
#[tokio::test(start_paused = true)]
async fn a_group_lag_report_leaves_out_expired_messages() {
    let mq = MessageQueue::new();
    let member = mq
        .group("g", "workers")
        .options(capacity_five_ttl())
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    expire_five_then_evict_one(&mq).await;
    let first = within(LIMIT, member.recv()).await.unwrap().map(|m| m.offset());
    assert_eq!(
        first,
        Err(RecvError::Lagged(1)),
        "one evicted unread; five expired"
    );
    assert_eq!(within(LIMIT, member.recv()).await.unwrap().unwrap().offset(), 6);
}

/// A topic of two partitions: partition 0 holds offsets 0..4, partition 1
/// is empty (high 0).
async fn partition_0_holds_four(mq: &MessageQueue, topic: &str) {
    mq.create_partitioned_topic(topic, TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing(topic, PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let p = mq.publisher(topic);
    for i in 0..4u32 {
        assert_eq!(p.publish(i).await.unwrap(), u64::from(i));
    }
    let highs: Vec<u64> = mq
        .get_all_partition_stats(topic)
        .await
        .iter()
        .map(|s| s.next_offset)
        .collect();
    assert_eq!(highs, vec![4, 0]);
}

/// Bug H (seek). Guards all-or-nothing seeks: on an all-partition
/// subscriber, `seek(2)` fails with `OutOfRange` because partition 1 has
/// no offset 2, and must leave partition 0 where it was. Promise
/// (`Subscriber::seek`): "[`OutOfRange`] unless the offset is retained or
/// is the next one to be published (in every partition)" — an error means
/// the seek did not happen.
#[tokio::test]
async fn a_failed_all_partition_seek_moves_no_partition() {
    let mq = MessageQueue::new();
    partition_0_holds_four(&mq, "h").await;
    let sub = mq
        .subscriber_with_options_and_mode("h", TopicOptions::default(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    assert_eq!(sub.partitions(), 2);
    assert_eq!(
        (sub.partition_offset(0), sub.partition_offset(1)),
        (Some(0), Some(0))
    );
    let err = sub.seek(2).await.expect_err("partition 1 has no offset 2");
    assert_eq!(
        (err.requested, err.low, err.high),
        (2, 0, 0),
        "names partition 1's empty window"
    );
    assert_eq!(
        (sub.partition_offset(0), sub.partition_offset(1)),
        (Some(0), Some(0)),
        "the failed seek moved no partition"
    );
    let first = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(
        (first.partition, first.offset()),
        (Some(0), 0),
        "partition 0 still starts at 0"
    );
}

/// Bug H (commit). Guards all-or-nothing commits: a member of a group on
/// the same two partitions commits offset 3; partition 1 has not
/// published it (high 0), so the commit must fail with `NotPublished`
/// naming high 0, and must not commit partition 0 either. Promise
/// (`Subscriber::commit`): "[`CommitError::NotPublished`] for an offset
/// not yet published" — settled: in any partition, and a failed commit
/// commits nothing.
#[tokio::test]
async fn a_failed_group_commit_commits_no_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("hc", TopicOptions::default(), 2)
        .await
        .unwrap();
    let member = mq
        .subscriber_group("hc", "g", ConsumptionMode::Earliest)
        .await
        .unwrap();
    mq.set_partition_routing("hc", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let p = mq.publisher("hc");
    for i in 0..4u32 {
        assert_eq!(p.publish(i).await.unwrap(), u64::from(i));
    }
    assert_eq!(
        mq.get_group_stats("hc", "g").await.unwrap().committed,
        vec![None, None]
    );
    let r = member.commit(3).await;
    let committed = mq.get_group_stats("hc", "g").await.unwrap().committed;
    assert!(
        matches!(
            r,
            Err(CommitError::NotPublished {
                offset: 3,
                high: 0,
                ..
            })
        ),
        "commit(3) fails for partition 1 (high 0); got {r:?}, committed afterwards {committed:?}"
    );
    assert_eq!(committed, vec![None, None], "nothing committed in any partition");
    let first = within(LIMIT, member.recv()).await.unwrap().unwrap();
    assert_eq!((first.partition, first.offset()), (Some(0), 0));
}

/// `Subscriber::current_offset` after messages it had not read were
/// evicted: the offset it would have received, then `Lagged`, then the
/// oldest retained (as its doc says).
#[tokio::test]
async fn current_offset_after_an_eviction_is_where_the_subscriber_stood() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(2),
        ..Default::default()
    };
    let sub = mq
        .subscriber_with_options_and_mode("e", options, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let p = mq.publisher("e");
    for i in 0..5u32 {
        p.publish(i).await.unwrap();
    }
    assert_eq!(sub.current_offset().await, Some(0));
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().map(|m| m.offset()),
        Err(RecvError::Lagged(3))
    );
    assert_eq!(sub.current_offset().await, Some(3));
    assert_eq!(within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 3);
    assert_eq!(sub.current_offset().await, Some(4));
}
