//! Adversarial tests of the publishing side and of retention: offsets and
//! batch atomicity under concurrency, `TooLarge` by count, bytes, keys and
//! headers, `try_publish` / `publish_timeout` exactly where `publish` would
//! wait, parked publishers (single, batch, timeout, bytes, keyed) released
//! by reads, seeks, a dropped subscriber, expiry, `close` and
//! `delete_topic`, publishes dropped while they wait (nothing
//! half-published, no waiter stranded), the closing rule with the last
//! publisher, publishers made before a topic is deleted, and exact stats
//! after all of it.

#[path = "support/options.rs"]
mod options;
use options::{earliest, evicting, lossless};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use memq_testkit::within;
use tokio::time::Instant;
use tokio_memq::{
    Bytes, ConsumptionMode, Headers, MessageQueue, PublishError, PublishErrorKind, Publisher, RecvError,
    SerializationFormat, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(10);

/// Polls `fut` once with the current task's context.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Aborts the task when dropped, so a failing test leaves nothing running.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

impl<T> AbortOnDrop<T> {
    fn is_finished(&self) -> bool {
        self.0.as_ref().is_some_and(|h| h.is_finished())
    }

    /// The task's output (a panic in it is re-raised here).
    async fn join(mut self) -> T {
        match self.0.take().expect("joined once").await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

fn spawn<F>(fut: F) -> AbortOnDrop<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    AbortOnDrop(Some(tokio::spawn(fut)))
}

/// Lets spawned tasks run until they park (a few turns of the scheduler).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

// ---------------------------------------------------------------------
// Offsets and batches
// ---------------------------------------------------------------------

/// Promises: "Every publish returns the offset the message got"
/// (`Publisher`), and `publish_batch` "Publishes `data` as one contiguous
/// run of offsets, nothing interleaved, and returns the run". Four tasks on
/// four threads mix single publishes, keyed publishes, bytes, `try_publish`
/// and batches of 1..8; every offset returned must hold exactly the value
/// published there, the offsets must be dense, and each batch's values
/// must sit in its run in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_from_many_tasks_are_dense_and_every_batch_is_one_run() {
    const TASKS: u64 = 4;
    const OPS: u64 = 300;
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: None,
        ..TopicOptions::default()
    };
    mq.create_topic("dense", options).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let p = mq.publisher("dense");
        tasks.push(spawn(async move {
            // (offset, id) for every message this task published.
            let mut placed: Vec<(u64, u64)> = Vec::new();
            let mut next_id = t << 32;
            for op in 0..OPS {
                match (op * 7 + t) % 5 {
                    0 => {
                        let n = (op % 8) + 1;
                        let ids: Vec<u64> = (0..n).map(|i| next_id + i).collect();
                        next_id += n;
                        let run = p.publish_batch(ids.clone()).await.unwrap();
                        assert_eq!(run.end - run.start, n, "the run has the batch's length");
                        placed.extend(run.zip(ids));
                    }
                    1 => {
                        placed.push((p.publish(next_id).await.unwrap(), next_id));
                        next_id += 1;
                    }
                    2 => {
                        placed.push((p.publish_with_key("k", next_id).await.unwrap(), next_id));
                        next_id += 1;
                    }
                    3 => {
                        placed.push((p.try_publish(next_id).unwrap(), next_id));
                        next_id += 1;
                    }
                    _ => {
                        let bytes = Bytes::copy_from_slice(&next_id.to_le_bytes());
                        let offset = p.publish_bytes(bytes, SerializationFormat::Raw).await.unwrap();
                        placed.push((offset, next_id));
                        next_id += 1;
                    }
                }
            }
            placed
        }));
    }
    let mut by_offset: BTreeMap<u64, u64> = BTreeMap::new();
    within(LIMIT, async {
        for t in tasks {
            for (offset, id) in t.join().await {
                assert!(
                    by_offset.insert(offset, id).is_none(),
                    "offset {offset} returned twice"
                );
            }
        }
    })
    .await
    .unwrap();
    let total = by_offset.len() as u64;
    assert_eq!(
        by_offset.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    let sub = mq
        .subscriber_with_options_and_mode(
            "dense",
            TopicOptions {
                max_messages: None,
                ..TopicOptions::default()
            },
            ConsumptionMode::Earliest,
        )
        .await
        .unwrap();
    let mut seen = 0u64;
    within(LIMIT, async {
        while seen < total {
            for msg in sub.recv_batch(512).await.unwrap() {
                let offset = msg.offset();
                let id = match msg.format {
                    SerializationFormat::Raw => {
                        u64::from_le_bytes(msg.payload_bytes()[..8].try_into().unwrap())
                    }
                    _ => *msg.native::<u64>().unwrap(),
                };
                assert_eq!(by_offset[&offset], id, "the value at offset {offset}");
                seen += 1;
            }
        }
    })
    .await
    .unwrap();
    let stats = mq.get_topic_stats("dense").await.unwrap();
    assert_eq!((stats.published, stats.message_count as u64), (total, total));
    assert_eq!((stats.evicted, stats.expired, stats.dropped_messages), (0, 0, 0));
}

/// Promise (`publish_batch`): "`TooLarge` when the batch alone exceeds
/// the topic's limits", all or nothing, the batch handed back; README:
/// "a batch larger than the topic's `max_messages` ... even on an evicting
/// topic ... with nothing done". On both overflow policies, a refused
/// batch evicts nothing and the values come back in order; a batch of
/// exactly the capacity is accepted.
#[tokio::test]
async fn a_batch_over_the_count_limit_is_refused_whole_on_both_policies() {
    for lru in [true, false] {
        let mq = MessageQueue::new();
        let options = TopicOptions {
            max_messages: Some(3),
            lru_enabled: lru,
            ..TopicOptions::default()
        };
        let sub = earliest(&mq, "t", options).await;
        let p = mq.publisher("t");
        assert_eq!(p.publish_batch(vec![0u32, 1]).await.unwrap(), 0..2);
        let err = within(LIMIT, p.publish_batch(vec![10u32, 11, 12, 13]))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, PublishError::TooLarge(vec![10, 11, 12, 13]), "lru {lru}");
        let stats = mq.get_topic_stats("t").await.unwrap();
        assert_eq!(
            (stats.published, stats.message_count, stats.evicted),
            (2, 2, 0),
            "nothing evicted for a refused batch (lru {lru})"
        );
        // Read both, so that the waiting topic has room for a full batch.
        assert_eq!(sub.recv_batch_typed::<u32>(10).await.unwrap(), [0, 1]);
        let run = within(LIMIT, p.publish_batch(vec![2u32, 3, 4]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run, 2..5, "exactly the capacity fits (lru {lru})");
        assert_eq!(sub.recv_batch_typed::<u32>(10).await.unwrap(), [2, 3, 4]);
        let stats = mq.get_topic_stats("t").await.unwrap();
        assert_eq!((stats.published, stats.message_count, stats.evicted), (5, 3, 2));
        assert_eq!(stats.dropped_messages, 2);
    }
}

/// README (migration): "a batch of 10,001 with the default options is now
/// `PublishError::TooLarge`; publish it in chunks"; 10,000 fits.
#[tokio::test]
async fn the_default_topic_takes_a_batch_of_ten_thousand_and_refuses_one_more() {
    let mq = MessageQueue::new();
    let p = mq.publisher("big");
    let err = p.publish_batch(vec![0u8; 10_001]).await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::TooLarge);
    assert_eq!(err.into_inner().len(), 10_001);
    assert_eq!(p.publish_batch(vec![1u8; 10_000]).await.unwrap(), 0..10_000);
    let stats = mq.get_topic_stats("big").await.unwrap();
    assert_eq!(
        (stats.published, stats.message_count, stats.evicted),
        (10_000, 10_000, 0)
    );
}

/// Promise (`publish_batch`): `TooLarge` "when the batch alone exceeds the
/// topic's limits" — the byte budget too, though each message fits alone.
/// `max_bytes`: "the oldest messages are evicted to keep the retained
/// payload bytes within the budget".
#[tokio::test]
async fn a_batch_over_the_byte_budget_is_refused_whole_though_each_fits() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_bytes: Some(10),
        max_messages: None,
        ..TopicOptions::default()
    };
    mq.create_topic("b", options).await.unwrap();
    let p = mq.publisher("b");
    assert_eq!(
        p.publish_bytes(vec![1u8; 4], SerializationFormat::Raw)
            .await
            .unwrap(),
        0
    );
    let batch = vec![Bytes::from(vec![2u8; 6]), Bytes::from(vec![3u8; 5])];
    let err = p
        .publish_bytes_batch(batch.clone(), SerializationFormat::Raw)
        .await
        .unwrap_err();
    assert_eq!(err, PublishError::TooLarge(batch));
    let stats = mq.get_topic_stats("b").await.unwrap();
    assert_eq!((stats.published, stats.bytes, stats.evicted), (1, 4, 0));
    // 6 + 4 = 10 fits; 5 + 5 then evicts both older messages.
    let run = p
        .publish_bytes_batch(vec![Bytes::from(vec![4u8; 6])], SerializationFormat::Raw)
        .await
        .unwrap();
    assert_eq!(run, 1..2);
    let stats = mq.get_topic_stats("b").await.unwrap();
    assert_eq!((stats.message_count, stats.bytes, stats.evicted), (2, 10, 0));
    let run = p
        .publish_bytes_batch(
            vec![Bytes::from(vec![5u8; 5]), Bytes::from(vec![6u8; 5])],
            SerializationFormat::Raw,
        )
        .await
        .unwrap();
    assert_eq!(run, 2..4);
    let stats = mq.get_topic_stats("b").await.unwrap();
    assert_eq!(
        (stats.message_count, stats.bytes, stats.evicted, stats.low_offset),
        (2, 10, 2, 2)
    );
    assert_eq!(stats.total_payload_size, stats.bytes);
}

/// Promise (`TopicOptions::max_bytes`): "A message's key and headers weigh
/// too (their bytes, and 8 more per header)". A key alone can make a
/// message too large; headers add exactly their bytes plus 8 each.
#[tokio::test]
async fn keys_and_headers_weigh_against_the_byte_budget() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_bytes: Some(64),
        max_messages: None,
        ..TopicOptions::default()
    };
    mq.create_topic("w", options).await.unwrap();
    let p = mq.publisher("w");
    let bytes = |mq: MessageQueue| async move { mq.get_topic_stats("w").await.unwrap().bytes };

    p.publish_bytes(vec![0u8; 10], SerializationFormat::Raw)
        .await
        .unwrap();
    assert_eq!(bytes(mq.clone()).await, 10);

    let keyed = tokio_memq::TopicMessage::new_with_format("w", 7u8, SerializationFormat::Json)
        .unwrap()
        .with_key("abcde");
    let before = bytes(mq.clone()).await;
    p.publish_message(keyed.clone()).await.unwrap();
    let one = bytes(mq.clone()).await - before;
    assert_eq!(one, 1 + 5, "payload `7` (one byte of JSON) and a key of 5");

    let before = bytes(mq.clone()).await;
    p.publish_message(keyed.clone().with_headers([("ab", "cde")]))
        .await
        .unwrap();
    assert_eq!(bytes(mq.clone()).await - before, 1 + 5 + 8 + 2 + 3);

    // A key longer than the budget: refused, nothing evicted.
    let stats = mq.get_topic_stats("w").await.unwrap();
    let huge_key = keyed.clone().with_key("k".repeat(64));
    let err = p.publish_message(huge_key).await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::TooLarge);
    assert_eq!(
        err.into_inner().key().map(str::len),
        Some(64),
        "the message comes back"
    );
    let after = mq.get_topic_stats("w").await.unwrap();
    assert_eq!(
        (after.published, after.evicted, after.bytes),
        (stats.published, 0, stats.bytes)
    );

    // Headers alone over the budget: refused too.
    let mut headers = Headers::new();
    headers.insert("h", vec![0u8; 60]);
    let err = p.publish_with_headers(1u8, headers).await.unwrap_err();
    assert_eq!(err, PublishError::TooLarge(1u8));
}

/// An empty batch publishes nothing: on a plain topic it returns the empty
/// run at the next offset, and it does not wait on a full topic whose
/// publishers wait (nothing needs room), but a closed topic still refuses
/// it. (`publish_batch`: "Publishes `data` as one contiguous run of
/// offsets ... and returns the run".)
#[tokio::test]
async fn an_empty_batch_needs_no_room_and_publishes_nothing() {
    let mq = MessageQueue::new();
    let _sub = earliest(&mq, "e", lossless(2)).await;
    let p = mq.publisher("e");
    p.publish_batch(vec![1u8, 2]).await.unwrap();
    let run = within(LIMIT, p.publish_batch(Vec::<u8>::new()))
        .await
        .expect("an empty batch needs no room")
        .unwrap();
    assert_eq!(run, 2..2);
    assert_eq!(mq.get_topic_stats("e").await.unwrap().published, 2);
    mq.close();
    assert_eq!(
        p.publish_batch(Vec::<u8>::new()).await,
        Err(PublishError::Closed(Vec::new()))
    );
}

// ---------------------------------------------------------------------
// try_publish and publish_timeout
// ---------------------------------------------------------------------

/// Promises: `try_publish` fails with `Full` "where `publish` would wait";
/// `lru_enabled: false` waits "until every live subscriber has read the
/// oldest message". With a fast and a slow subscriber, the fast one having
/// read everything is not enough; the slow one reading is.
#[tokio::test]
async fn try_publish_is_full_until_the_slowest_subscriber_reads() {
    let mq = MessageQueue::new();
    let fast = earliest(&mq, "two", lossless(2)).await;
    let slow = earliest(&mq, "two", lossless(2)).await;
    let p = mq.publisher("two");
    assert_eq!(p.try_publish(0u8).unwrap(), 0);
    assert_eq!(p.try_publish(1u8).unwrap(), 1);
    assert_eq!(fast.recv_batch_typed::<u8>(8).await.unwrap(), [0, 1]);
    assert_eq!(p.try_publish(2u8), Err(PublishError::Full(2)));
    assert_eq!(
        p.publish_timeout(2u8, Duration::from_millis(20)).await,
        Err(PublishError::Timeout(2))
    );
    assert_eq!(slow.recv_typed::<u8>().await.unwrap(), 0);
    assert_eq!(p.try_publish(2u8).unwrap(), 2);
    assert_eq!(p.try_publish(3u8).unwrap(), 3, "the slow one read ahead both");
    assert_eq!(p.try_publish(4u8), Err(PublishError::Full(4)));
    let stats = mq.get_topic_stats("two").await.unwrap();
    assert_eq!((stats.published, stats.message_count, stats.evicted), (4, 2, 2));
    assert_eq!(stats.dropped_messages, 2);
}

/// `try_publish` on an evicting topic never says `Full`, and refuses with
/// the documented kinds, the value handed back: `TooLarge` over the byte
/// budget, `Closed` once the topic was deleted (for a publisher bound to
/// it) or the queue closed.
#[tokio::test]
async fn try_publish_refusals_hand_the_value_back_with_the_right_kind() {
    let mq = MessageQueue::new();
    mq.create_topic(
        "tp",
        TopicOptions {
            max_messages: Some(1),
            max_bytes: Some(8),
            ..TopicOptions::default()
        },
    )
    .await
    .unwrap();
    let p = mq.publisher("tp");
    for i in 0..5u8 {
        assert_eq!(p.try_publish(i).unwrap(), u64::from(i), "evicting: never Full");
    }
    let err = p.try_publish(vec![7u8; 100]).unwrap_err();
    assert_eq!(err, PublishError::TooLarge(vec![7u8; 100]));
    assert!(mq.delete_topic("tp").await);
    assert_eq!(p.try_publish(9u8), Err(PublishError::Closed(9)));
    let fresh = mq.publisher("tp");
    assert_eq!(fresh.try_publish(1u8).unwrap(), 0, "a new topic under the name");
    mq.close();
    assert_eq!(fresh.try_publish(2u8), Err(PublishError::Closed(2)));
    assert_eq!(
        mq.publisher("other").try_publish(3u8),
        Err(PublishError::Closed(3))
    );
}

/// `publish_timeout` "waiting at most `timeout` for room": with room it
/// publishes even with a zero timeout; without room it gives up with
/// `Timeout` and the value, having published nothing and left nothing
/// behind (the next publish gets the next offset, no gap).
#[tokio::test(start_paused = true)]
async fn publish_timeout_publishes_with_room_and_leaves_no_trace_without() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "pt", lossless(1)).await;
    let p = mq.publisher("pt");
    assert_eq!(p.publish_timeout(0u8, Duration::ZERO).await, Ok(0));
    assert_eq!(
        p.publish_timeout(1u8, Duration::ZERO).await,
        Err(PublishError::Timeout(1))
    );
    let start = Instant::now();
    assert_eq!(
        p.publish_timeout(1u8, Duration::from_secs(3)).await,
        Err(PublishError::Timeout(1))
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "waited exactly the timeout"
    );
    assert_eq!(mq.get_topic_stats("pt").await.unwrap().published, 1);
    assert_eq!(sub.recv_typed::<u8>().await.unwrap(), 0);
    assert_eq!(p.publish_timeout(1u8, Duration::ZERO).await, Ok(1));
    assert_eq!(sub.recv_typed::<u8>().await.unwrap(), 1);
}

/// `publish_timeout` on a partitioned topic whose publishers wait: the
/// value comes back with `Timeout` and no partition got anything.
#[tokio::test(start_paused = true)]
async fn publish_timeout_on_a_full_partition_publishes_nowhere() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("pp", lossless(1), 2).await.unwrap();
    mq.set_partition_routing("pp", tokio_memq::PartitionRouting::Fixed(1))
        .await
        .unwrap();
    let _all = earliest(&mq, "pp", lossless(1)).await;
    let p = mq.publisher("pp");
    assert_eq!(p.publish(0u8).await.unwrap(), 0);
    assert_eq!(
        p.publish_timeout(1u8, Duration::from_millis(100)).await,
        Err(PublishError::Timeout(1))
    );
    let published: Vec<u64> = mq
        .get_all_partition_stats("pp")
        .await
        .iter()
        .map(|s| s.published)
        .collect();
    assert_eq!(published, [0, 1]);
}

// ---------------------------------------------------------------------
// Parked publishers released
// ---------------------------------------------------------------------

/// `lru_enabled: false`: the publish waits "until every live subscriber has
/// read the oldest message": once the only subscriber is dropped there is
/// no live subscriber, so every parked publish (singles and batches)
/// completes, evicting, with distinct dense offsets. A hundred at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_parked_publish_completes_when_the_only_subscriber_drops() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "drop", lossless(4)).await;
    let p = mq.publisher("drop");
    p.publish_batch(vec![0u32; 4]).await.unwrap();
    let mut parked = Vec::new();
    for i in 0..100u32 {
        let p = p.clone();
        parked.push(spawn(async move {
            if i % 10 == 0 {
                let run = p.publish_batch(vec![i; 3]).await.unwrap();
                run.collect::<Vec<_>>()
            } else {
                vec![p.publish(i).await.unwrap()]
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        parked.iter().all(|t| !t.is_finished()),
        "all wait for the subscriber"
    );
    assert_eq!(mq.get_topic_stats("drop").await.unwrap().published, 4);
    drop(sub);
    let mut offsets = BTreeSet::new();
    within(LIMIT, async {
        for t in parked {
            for o in t.join().await {
                assert!(offsets.insert(o));
            }
        }
    })
    .await
    .unwrap();
    let total = 4 + 90 + 10 * 3;
    assert_eq!(offsets, (4..total).collect::<BTreeSet<u64>>());
    let stats = mq.get_topic_stats("drop").await.unwrap();
    assert_eq!((stats.published, stats.message_count), (total, 4));
    assert_eq!(stats.evicted, total - 4);
    assert_eq!(stats.dropped_messages as u64, total - 4);
}

/// A parked batch needs room for all of it: room for one (the slow
/// subscriber seeks one forward) lets a single `try_publish` in and leaves
/// the batch waiting, with nothing of it published; room for three lets
/// it in as one run.
#[tokio::test]
async fn a_parked_batch_waits_for_room_for_all_of_it() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "runs", lossless(4)).await;
    let p = mq.publisher("runs");
    assert_eq!(p.publish_batch(vec![0u32, 1, 2, 3]).await.unwrap(), 0..4);
    let batch = {
        let p = p.clone();
        spawn(async move { p.publish_batch(vec![10u32, 11, 12]).await })
    };
    settle().await;
    assert!(!batch.is_finished());
    sub.seek(1).await.unwrap();
    settle().await;
    assert!(!batch.is_finished(), "room for one is not room for three");
    assert_eq!(mq.get_topic_stats("runs").await.unwrap().published, 4);
    assert_eq!(p.try_publish(4u32).unwrap(), 4, "room for one single");
    sub.seek(5).await.unwrap();
    let run = within(LIMIT, batch.join()).await.unwrap().unwrap();
    assert_eq!(run, 5..8);
    assert_eq!(sub.recv_batch_typed::<u32>(10).await.unwrap(), [10, 11, 12]);
    let stats = mq.get_topic_stats("runs").await.unwrap();
    assert_eq!((stats.published, stats.evicted, stats.message_count), (8, 4, 4));
}

/// A slow subscriber that seeks past the oldest message releases a parked
/// publisher; one that seeks back holds the next one again.
#[tokio::test]
async fn seeking_forward_releases_and_seeking_back_holds_again() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "seek", lossless(2)).await;
    let p = mq.publisher("seek");
    p.publish_batch(vec![0u8, 1]).await.unwrap();
    let parked = {
        let p = p.clone();
        spawn(async move { p.publish(2u8).await })
    };
    settle().await;
    assert!(!parked.is_finished());
    sub.seek(2).await.unwrap();
    assert_eq!(within(LIMIT, parked.join()).await.unwrap(), Ok(2));
    // Window 1..3; back to 1: the oldest is unread again.
    sub.seek(1).await.unwrap();
    assert_eq!(p.try_publish(3u8), Err(PublishError::Full(3)));
    assert_eq!(sub.recv_typed::<u8>().await.unwrap(), 1);
    assert_eq!(p.try_publish(3u8), Ok(3));
}

/// Promise (`MessageQueue::close`): "waiting publishers are woken with
/// [`Closed`] (the value is handed back)". Every kind of parked publish
/// at once — single, keyed, headers, bytes, batch, and `publish_timeout`
/// with an hour to go — returns `Closed` with its own value, not
/// `Timeout`; the subscriber then gets what was retained, then `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_wakes_every_kind_of_parked_publish_with_its_value() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "c", lossless(2)).await;
    let p = mq.publisher("c");
    p.publish_batch(vec![1000u32, 1001]).await.unwrap();
    let (tasks, expected) = park_every_kind(&p, 60);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(tasks.iter().all(|t| !t.is_finished()));
    mq.close();
    check_all_closed(tasks, expected).await;
    assert_eq!(sub.recv_batch_typed::<u32>(8).await.unwrap(), [1000, 1001]);
    assert_eq!(sub.recv().await.unwrap_err(), RecvError::Closed);
}

/// As above with `delete_topic` ("waiting publishers and subscribers are
/// woken with a `Closed` error, and the name becomes free"); then a
/// publisher that had published keeps failing with `Closed`, and one made
/// before the delete that never published publishes to the new topic
/// (README: "one that had not published yet publishes to a topic of that
/// name, created anew (subscribers of the deleted topic do not see it)").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_wakes_every_kind_of_parked_publish_and_frees_the_name() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "d", lossless(2)).await;
    let p = mq.publisher("d");
    let unused = mq.publisher("d");
    p.publish_batch(vec![1000u32, 1001]).await.unwrap();
    let (tasks, expected) = park_every_kind(&p, 60);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(mq.delete_topic("d").await);
    check_all_closed(tasks, expected).await;
    assert!(p.is_closed() && !unused.is_closed());
    assert_eq!(p.publish(1u32).await, Err(PublishError::Closed(1)));
    assert_eq!(
        p.clone().publish(2u32).await,
        Err(PublishError::Closed(2)),
        "a clone too"
    );
    let fresh_sub = earliest(&mq, "d", TopicOptions::default()).await;
    assert_eq!(unused.publish(3u32).await, Ok(0), "the new topic, from offset 0");
    assert_eq!(fresh_sub.recv_typed::<u32>().await.unwrap(), 3);
    assert_eq!(sub.recv_batch_typed::<u32>(8).await.unwrap(), [1000, 1001]);
    assert_eq!(
        sub.recv().await.unwrap_err(),
        RecvError::Closed,
        "not the new topic's message"
    );
    let stats = mq.get_topic_stats("d").await.unwrap();
    assert_eq!((stats.published, stats.evicted, stats.message_count), (1, 0, 1));
}

type Parked = AbortOnDrop<(usize, Result<(), PublishErrorKind>, String)>;

/// Parks `n` publishes of every kind on `p`'s full topic; each reports
/// its index, its error kind and what it got back (as text).
fn park_every_kind(p: &Publisher, n: usize) -> (Vec<Parked>, Vec<String>) {
    let mut tasks = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let p = p.clone();
        let v = i as u32;
        let kind = i % 6;
        expected.push(match kind {
            3 => format!("bytes {:?}", vec![v as u8; 3]),
            4 => format!("batch {:?}", vec![v, v + 1]),
            _ => format!("value {v}"),
        });
        tasks.push(spawn(async move {
            let fmt = |r: Result<(), PublishError<String>>| match r {
                Ok(()) => (Ok(()), String::new()),
                Err(e) => (Err(e.kind()), e.into_inner()),
            };
            let (kind, back) = match kind {
                0 => fmt(p
                    .publish(v)
                    .await
                    .map(drop)
                    .map_err(|e| e.map(|v| format!("value {v}")))),
                1 => fmt(p
                    .publish_with_key("key", v)
                    .await
                    .map(drop)
                    .map_err(|e| e.map(|v| format!("value {v}")))),
                2 => fmt(p
                    .publish_with_headers(v, [("h", "x")])
                    .await
                    .map(drop)
                    .map_err(|e| e.map(|v| format!("value {v}")))),
                3 => fmt(p
                    .publish_bytes(vec![v as u8; 3], SerializationFormat::Raw)
                    .await
                    .map(drop)
                    .map_err(|e| e.map(|b| format!("bytes {:?}", b.to_vec())))),
                4 => fmt(p
                    .publish_batch(vec![v, v + 1])
                    .await
                    .map(drop)
                    .map_err(|e| e.map(|b| format!("batch {b:?}")))),
                _ => fmt(p
                    .publish_timeout(v, Duration::from_secs(3600))
                    .await
                    .map(drop)
                    .map_err(|e| e.map(|v| format!("value {v}")))),
            };
            (i, kind, back)
        }));
    }
    (tasks, expected)
}

async fn check_all_closed(tasks: Vec<Parked>, expected: Vec<String>) {
    within(LIMIT, async {
        for t in tasks {
            let (i, kind, back) = t.join().await;
            assert_eq!(kind, Err(PublishErrorKind::Closed), "parked publish {i}");
            assert_eq!(back, expected[i], "parked publish {i} hands its value back");
        }
    })
    .await
    .expect("every parked publish is woken");
}

/// Closing rule (`MessageQueue`, "# Closing"): with the last `MessageQueue`
/// clone gone, a publisher parked on a full topic keeps it open; the
/// subscriber's read lets it in, and when that last publisher is dropped
/// the subscriber gets what is retained, then `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_publisher_keeps_its_topic_open_after_the_queue_is_dropped() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "kept", lossless(1)).await;
    let p = mq.publisher("kept");
    p.publish(0u8).await.unwrap();
    let parked = spawn(async move {
        let r = p.publish(1u8).await;
        drop(p);
        r
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(mq);
    assert!(!sub.is_closed(), "the parked publisher can still publish");
    assert!(!parked.is_finished());
    assert_eq!(sub.recv_typed::<u8>().await.unwrap(), 0);
    assert_eq!(within(LIMIT, parked.join()).await.unwrap(), Ok(1));
    let r = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(r.deserialize::<u8>().unwrap(), 1);
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
        RecvError::Closed
    );
}

/// Closing rule, never-used publishers: a publisher that has not published
/// yet still counts ("the topic's last `Publisher`"): the topic stays open
/// while it lives, it can publish after the queue is gone, and its drop
/// closes the topic. A publisher of another topic holds nothing open.
/// Partitioned topics follow the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_used_publishers_hold_their_topic_open_and_close_it_when_dropped() {
    let mq = MessageQueue::new();
    let plain = earliest(&mq, "plain", TopicOptions::default()).await;
    mq.create_partitioned_topic("parted", TopicOptions::default(), 2)
        .await
        .unwrap();
    let parted = earliest(&mq, "parted", TopicOptions::default()).await;
    let other = earliest(&mq, "other", TopicOptions::default()).await;
    let (p_plain, p_parted, _p_elsewhere) =
        (mq.publisher("plain"), mq.publisher("parted"), mq.publisher("x"));
    let p_plain2 = p_plain.clone();
    drop(mq);
    assert_eq!(
        within(LIMIT, other.recv()).await.unwrap().unwrap_err(),
        RecvError::Closed,
        "nobody can publish to `other`"
    );
    assert!(!plain.is_closed() && !parted.is_closed());
    assert_eq!(p_plain2.publish(5u8).await, Ok(0));
    drop(p_plain2);
    assert!(
        !plain.is_closed(),
        "the original never published but still counts"
    );
    assert_eq!(p_parted.publish(6u8).await.map(|_| ()), Ok(()));
    drop(p_plain);
    drop(p_parted);
    for (sub, v) in [(&plain, 5u8), (&parted, 6u8)] {
        let got = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        assert_eq!(got.deserialize::<u8>().unwrap(), v);
        assert_eq!(
            within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
            RecvError::Closed
        );
    }
}

// ---------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------

/// Promise (`Publisher::publish_batch`): "Cancel safe on a plain topic:
/// dropped while it waits for room, it publishes nothing"; memq-core's
/// publish: "Dropping it before completion publishes nothing". Every
/// publish variant, polled 1..=3 times while the topic is full and then
/// dropped, publishes nothing; afterwards a parked publish is still woken
/// (no waiter slot left stranded) and offsets stay dense.
#[tokio::test]
async fn publishes_dropped_while_parked_publish_nothing() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "x", lossless(2)).await;
    let p = mq.publisher("x");
    assert_eq!(p.publish_batch(vec![0u32, 100]).await.unwrap(), 0..2);
    for k in 1..=3 {
        for variant in 0..6 {
            let mut fut: Pin<Box<dyn Future<Output = Result<(), PublishErrorKind>> + Send + '_>> =
                match variant {
                    0 => Box::pin(async { p.publish(1u32).await.map(drop).map_err(|e| e.kind()) }),
                    1 => Box::pin(async {
                        p.publish_with_key("k", 1u32)
                            .await
                            .map(drop)
                            .map_err(|e| e.kind())
                    }),
                    2 => Box::pin(async {
                        p.publish_bytes(vec![1u8], SerializationFormat::Raw)
                            .await
                            .map(drop)
                            .map_err(|e| e.kind())
                    }),
                    3 => Box::pin(async {
                        p.publish_timeout(1u32, Duration::from_secs(3600))
                            .await
                            .map(drop)
                            .map_err(|e| e.kind())
                    }),
                    4 => Box::pin(async {
                        p.publish_batch(vec![1u32, 2])
                            .await
                            .map(drop)
                            .map_err(|e| e.kind())
                    }),
                    _ => Box::pin(async {
                        p.publish_with_headers(1u32, [("a", "b")])
                            .await
                            .map(drop)
                            .map_err(|e| e.kind())
                    }),
                };
            for _ in 0..k {
                assert!(
                    poll_once(&mut fut).await.is_pending(),
                    "variant {variant}: full, it waits"
                );
            }
            drop(fut);
        }
    }
    assert_eq!(mq.get_topic_stats("x").await.unwrap().published, 2);
    let parked = {
        let p = p.clone();
        spawn(async move { p.publish(1u32).await })
    };
    settle().await;
    assert!(!parked.is_finished());
    assert_eq!(sub.recv_typed::<u32>().await.unwrap(), 0);
    assert_eq!(within(LIMIT, parked.join()).await.unwrap(), Ok(2));
    assert_eq!(sub.recv_batch_typed::<u32>(8).await.unwrap(), [100, 1]);
    assert_eq!(mq.get_topic_stats("x").await.unwrap().published, 3);
}

/// Two publishes wait for one place; the one woken first is dropped
/// before it runs again. The other must not be stranded: it takes the
/// place.
#[tokio::test]
async fn a_parked_publish_dropped_after_its_wake_up_strands_no_one() {
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "w", lossless(2)).await;
    let p = mq.publisher("w");
    p.publish_batch(vec![0u8, 1]).await.unwrap();
    let mut first = Box::pin(p.publish(10u8));
    assert!(poll_once(&mut first).await.is_pending());
    let second = {
        let p = p.clone();
        spawn(async move { p.publish(20u8).await })
    };
    settle().await;
    assert!(!second.is_finished());
    sub.seek(1).await.unwrap(); // room for exactly one
    drop(first);
    assert_eq!(within(LIMIT, second.join()).await.unwrap(), Ok(2));
    assert_eq!(mq.get_topic_stats("w").await.unwrap().published, 3);
    assert_eq!(sub.recv_batch_typed::<u8>(8).await.unwrap(), [1, 20]);
}

// ---------------------------------------------------------------------
// TTL and waiting publishers
// ---------------------------------------------------------------------

/// A subscriber that never reads holds a full topic of 2 with a TTL of
/// 100 ms. Five publishes parked at t = 0 go in as messages expire: two at
/// 100 ms (the first two expire), two at 200 ms (those two expire), the
/// last at 300 ms. None earlier, none lost, offsets dense; stats exact.
#[tokio::test(start_paused = true)]
async fn parked_publishers_are_released_by_expiry_in_waves() {
    let ttl = Duration::from_millis(100);
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(ttl),
        ..lossless(2)
    };
    let _idle = earliest(&mq, "waves", options).await;
    let p = mq.publisher("waves");
    p.publish_batch(vec![0u32, 1]).await.unwrap();
    let start = Instant::now();
    let mut parked = Vec::new();
    for i in 0..5u32 {
        let p = p.clone();
        parked.push(spawn(async move {
            let offset = p.publish(10 + i).await.unwrap();
            (offset, start.elapsed())
        }));
    }
    settle().await;
    let mut done = Vec::new();
    within(Duration::from_secs(5), async {
        for t in parked {
            done.push(t.join().await);
        }
    })
    .await
    .expect("every parked publish goes in as messages expire");
    done.sort();
    let offsets: Vec<u64> = done.iter().map(|d| d.0).collect();
    assert_eq!(offsets, [2, 3, 4, 5, 6]);
    let wave = |d: Duration| d.as_millis() / 100;
    let waves: Vec<u128> = done.iter().map(|d| wave(d.1)).collect();
    assert_eq!(waves, [1, 1, 2, 2, 3], "released as messages expire: {done:?}");
    let stats = mq.get_topic_stats("waves").await.unwrap();
    assert_eq!(
        (stats.published, stats.expired, stats.evicted, stats.message_count),
        (7, 6, 0, 1),
        "the two published at 200 ms expire at 300 ms, when the last goes in"
    );
    assert_eq!(stats.dropped_messages, 6);
}

/// A parked batch of two on a full topic of three whose messages were
/// published at 0, 50 and 80 ms (TTL 100 ms) goes in when the two oldest
/// have expired, at 150 ms: not at 100 ms (one place is not two), and
/// without waiting for the third.
#[tokio::test(start_paused = true)]
async fn a_parked_batch_goes_in_when_enough_messages_expire() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_millis(100)),
        ..lossless(3)
    };
    let _idle = earliest(&mq, "tb", options).await;
    let p = mq.publisher("tb");
    let start = Instant::now();
    p.publish(0u8).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    p.publish(1u8).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    p.publish(2u8).await.unwrap();
    let batch = {
        let p = p.clone();
        spawn(async move {
            let run = p.publish_batch(vec![3u8, 4]).await;
            (run, start.elapsed())
        })
    };
    let (run, at) = within(Duration::from_secs(5), batch.join()).await.unwrap();
    assert_eq!(run, Ok(3..5));
    assert_eq!(at.as_millis() / 10, 15, "at 150 ms: {at:?}");
    let stats = mq.get_topic_stats("tb").await.unwrap();
    assert_eq!(
        (stats.published, stats.expired, stats.evicted, stats.message_count),
        (5, 2, 0, 3)
    );
}

/// The same release by expiry on a partition of a partitioned topic
/// whose publishers wait: a publish parked on the full partition completes
/// when the message holding it expires, with nobody reading.
#[tokio::test(start_paused = true)]
async fn a_publish_parked_on_a_partition_is_released_by_expiry() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_millis(100)),
        ..lossless(1)
    };
    mq.create_partitioned_topic("pt", options.clone(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("pt", tokio_memq::PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let _idle = earliest(&mq, "pt", options).await;
    let p = mq.publisher("pt");
    let start = Instant::now();
    assert_eq!(p.publish(0u8).await, Ok(0));
    let parked = {
        let p = p.clone();
        spawn(async move { (p.publish(1u8).await, start.elapsed()) })
    };
    let (r, at) = within(Duration::from_secs(5), parked.join()).await.unwrap();
    assert_eq!(r, Ok(1));
    assert_eq!(at.as_millis() / 10, 10, "at 100 ms: {at:?}");
    let stats = mq.get_partition_stats("pt", 0).await.unwrap();
    assert_eq!(
        (stats.published, stats.dropped_messages, stats.message_count),
        (2, 1, 1)
    );
}

/// Stats on a topic whose publishers wait, with a TTL: an eviction of a
/// message every subscriber read counts as evicted, expiries as expired,
/// `dropped_messages` is their sum, `message_count` and `bytes` follow.
/// A topic deleted and made again starts from zero.
#[tokio::test(start_paused = true)]
async fn stats_on_a_waiting_ttl_topic_are_exact() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_millis(100)),
        ..lossless(3)
    };
    let sub = earliest(&mq, "s", options.clone()).await;
    let p = mq.publisher("s");
    for i in 0..3u8 {
        p.publish_bytes(vec![i; 4], SerializationFormat::Raw)
            .await
            .unwrap();
    }
    assert_eq!(sub.recv().await.unwrap().offset(), 0); // reads all three ahead
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(publish_bytes_now(&p, vec![9u8; 4]).await, Ok(3));
    let stats = mq.get_topic_stats("s").await.unwrap();
    assert_eq!(
        (
            stats.published,
            stats.evicted,
            stats.expired,
            stats.message_count,
            stats.bytes
        ),
        (4, 1, 0, 3, 12)
    );
    tokio::time::sleep(Duration::from_millis(95)).await; // t = 105: 1 and 2 expired
    let stats = mq.get_topic_stats("s").await.unwrap();
    assert_eq!(
        (
            stats.evicted,
            stats.expired,
            stats.dropped_messages,
            stats.message_count,
            stats.bytes
        ),
        (1, 2, 3, 1, 4)
    );
    assert_eq!((stats.low_offset, stats.next_offset), (3, 4));
    assert!(mq.delete_topic("s").await);
    mq.create_topic("s", options).await.unwrap();
    let stats = mq.get_topic_stats("s").await.unwrap();
    assert_eq!(
        (
            stats.published,
            stats.evicted,
            stats.expired,
            stats.message_count,
            stats.bytes
        ),
        (0, 0, 0, 0, 0)
    );
}

/// `publish_bytes` where there is room: it must not wait.
async fn publish_bytes_now(p: &Publisher, data: Vec<u8>) -> Result<u64, PublishErrorKind> {
    within(LIMIT, p.publish_bytes(data, SerializationFormat::Raw))
        .await
        .expect("room: no wait")
        .map_err(|e| e.kind())
}

// ---------------------------------------------------------------------
// Many publishers, one slow reader
// ---------------------------------------------------------------------

/// Eight publishers on four threads push 300 messages each through a topic
/// of 4 whose publishers wait, read by one subscriber: every message is
/// delivered exactly once, each publisher's messages in its order, offsets
/// dense, nothing evicted unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_waiting_publishers_lose_nothing() {
    const PUBLISHERS: u32 = 8;
    const EACH: u32 = 300;
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "many", lossless(4)).await;
    let mut tasks = Vec::new();
    for t in 0..PUBLISHERS {
        let p = mq.publisher("many");
        tasks.push(spawn(async move {
            for i in 0..EACH {
                let v = t * 1_000_000 + i;
                if i % 3 == 0 && i + 1 < EACH {
                    // A batch of two: i and i + 1 travel together.
                    continue;
                }
                if i % 3 == 1 {
                    p.publish_batch(vec![v - 1, v]).await.unwrap();
                } else {
                    p.publish(v).await.unwrap();
                }
            }
        }));
    }
    let total = (PUBLISHERS * EACH) as usize;
    let mut next = vec![0u32; PUBLISHERS as usize];
    let mut offset = 0u64;
    within(LIMIT, async {
        while offset < total as u64 {
            for msg in sub.recv_batch(64).await.unwrap() {
                assert_eq!(msg.offset(), offset);
                offset += 1;
                let v = *msg.native::<u32>().unwrap();
                let (t, i) = ((v / 1_000_000) as usize, v % 1_000_000);
                assert_eq!(i, next[t], "publisher {t}'s messages in order");
                next[t] += 1;
            }
        }
        for t in tasks {
            t.join().await;
        }
    })
    .await
    .unwrap();
    let stats = mq.get_topic_stats("many").await.unwrap();
    assert_eq!(stats.published, total as u64);
    assert_eq!(stats.expired, 0);
    assert_eq!(stats.evicted + stats.message_count as u64, total as u64);
}

/// The 1.0.0 publishing trait (`AsyncMessagePublisher`) returns the offsets
/// now (README migration: "publishing returns the offset(s) assigned
/// instead of `()`") and fails on a closed queue.
#[tokio::test]
async fn the_1_0_publishing_trait_returns_offsets() {
    use tokio_memq::AsyncMessagePublisher;
    let mq = MessageQueue::new();
    let p = mq.publisher("compat");
    assert_eq!(AsyncMessagePublisher::publish(&p, 1u8).await.unwrap(), 0);
    assert_eq!(
        AsyncMessagePublisher::publish_batch(&p, vec![2u8, 3])
            .await
            .unwrap(),
        1..3
    );
    assert_eq!(
        AsyncMessagePublisher::publish_bytes(&p, vec![1u8, 2], SerializationFormat::Raw)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        AsyncMessagePublisher::publish_serialized(&p, "[1]".to_string())
            .await
            .unwrap(),
        4
    );
    mq.close();
    assert!(AsyncMessagePublisher::publish(&p, 1u8).await.is_err());
}

// ---------------------------------------------------------------------
// Values handed back through codecs and partitions
// ---------------------------------------------------------------------

/// A publish serialized by topic defaults keeps the value to hand back
/// (`PublishError`: "Failed publishes hand the message back"): parked and
/// then closed, single and batch publishes return the original values,
/// not their encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_encoded_publishes_hand_back_the_original_values() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "enc",
        SerializationFormat::Json,
        tokio_memq::SerializationConfig::Default,
        None,
    );
    let sub = earliest(&mq, "enc", lossless(2)).await;
    let p = mq.publisher("enc");
    p.publish_batch(vec!["a".to_string(), "b".to_string()])
        .await
        .unwrap();
    let single = {
        let p = p.clone();
        spawn(async move { p.publish("c".to_string()).await })
    };
    let batch = {
        let p = p.clone();
        spawn(async move { p.publish_batch(vec!["d".to_string(), "e".to_string()]).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!single.is_finished() && !batch.is_finished());
    mq.close();
    let (single, batch) = within(LIMIT, async { (single.join().await, batch.join().await) })
        .await
        .unwrap();
    assert_eq!(single, Err(PublishError::Closed("c".to_string())));
    assert_eq!(
        batch,
        Err(PublishError::Closed(vec!["d".to_string(), "e".to_string()]))
    );
    let got = sub.recv_batch(8).await.unwrap();
    assert_eq!(got[0].format, SerializationFormat::Json);
    assert_eq!(got.len(), 2);
}

/// Promise (`publish_batch`): on a partitioned topic "the earlier shares
/// stay published and only the unpublished messages come back". Round
/// robin over two partitions, partition 1 full and held: the share of
/// partition 0 goes in, partition 1's waits; closing the queue hands back
/// exactly partition 1's values in input order — natively stored and
/// serialized by topic defaults alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_batch_cut_by_close_hands_back_exactly_the_unpublished_values() {
    for encoded in [false, true] {
        let mq = MessageQueue::new();
        if encoded {
            mq.register_topic_defaults(
                "pb",
                SerializationFormat::MessagePack,
                tokio_memq::SerializationConfig::Default,
                None,
            );
        }
        mq.create_partitioned_topic("pb", lossless(4), 2).await.unwrap();
        let p0 = mq
            .subscribe_partition("pb", 0, None, ConsumptionMode::Earliest)
            .await
            .unwrap();
        let _p1 = mq
            .subscribe_partition("pb", 1, None, ConsumptionMode::Earliest)
            .await
            .unwrap();
        mq.set_partition_routing("pb", tokio_memq::PartitionRouting::Fixed(1))
            .await
            .unwrap();
        let p = mq.publisher("pb");
        p.publish_batch(vec![100u32, 101, 102, 103]).await.unwrap();
        mq.set_partition_routing("pb", tokio_memq::PartitionRouting::RoundRobin)
            .await
            .unwrap();
        let batch = {
            let p = p.clone();
            spawn(async move { p.publish_batch(vec![0u32, 1, 2, 3, 4]).await })
        };
        // Partition 0's share goes in (shares go in partition order);
        // partition 1's waits.
        let got: Vec<u32> = within(LIMIT, p0.recv_batch_typed::<u32>(8))
            .await
            .unwrap()
            .unwrap();
        assert!(got == [0, 2, 4] || got == [1, 3], "round robin: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!batch.is_finished());
        mq.close();
        let r = within(LIMIT, batch.join()).await.unwrap();
        let rest: Vec<u32> = (0..5).filter(|v| !got.contains(v)).collect();
        assert_eq!(r, Err(PublishError::Closed(rest)), "encoded {encoded}");
    }
}

/// `MessageQueue::publish_to_partitioned` and `publish_batch_to_partitioned`
/// parked on a full partition are woken by `close` with `Closed`, handing
/// back what they did not publish (for the batch: "what was published
/// before it stays published and the error ... hands back every message
/// that was not", topics taken in name order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_level_partitioned_publishes_parked_then_closed_hand_back_the_rest() {
    use tokio_memq::TopicMessage;
    let mq = MessageQueue::new();
    for t in ["pa", "pb"] {
        mq.create_partitioned_topic(t, lossless(1), 2).await.unwrap();
        mq.set_partition_routing(t, tokio_memq::PartitionRouting::Fixed(1))
            .await
            .unwrap();
    }
    let a1 = mq
        .subscribe_partition("pa", 1, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let a0 = mq
        .subscribe_partition("pa", 0, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    assert_eq!(
        mq.publish_to_partitioned(TopicMessage::new("pa", 100u32).unwrap())
            .await
            .unwrap(),
        (1, 0)
    );
    let single = {
        let mq = mq.clone();
        spawn(async move {
            mq.publish_to_partitioned(TopicMessage::new("pa", 2u32).unwrap())
                .await
                .map_err(|e| (e.kind(), e.into_inner().deserialize::<u32>().unwrap()))
        })
    };
    let batch = {
        let mq = mq.clone();
        spawn(async move {
            let messages = vec![
                TopicMessage::new("pb", 20u32).unwrap(),
                TopicMessage::new("pa", 10u32).unwrap(),
                TopicMessage::new("pb", 21u32).unwrap(),
            ];
            mq.publish_batch_to_partitioned(messages).await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!single.is_finished() && !batch.is_finished());
    mq.close();
    assert_eq!(
        within(LIMIT, single.join()).await.unwrap(),
        Err((PublishErrorKind::Closed, 2))
    );
    let err = within(LIMIT, batch.join()).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::Closed);
    let back: Vec<(String, u32)> = err
        .into_inner()
        .iter()
        .map(|m| (m.topic().to_string(), m.deserialize::<u32>().unwrap()))
        .collect();
    let named = |t: &str, v: u32| (t.to_string(), v);
    assert_eq!(back, [named("pa", 10), named("pb", 20), named("pb", 21)]);
    assert_eq!(a1.recv_typed::<u32>().await.unwrap(), 100);
    assert_eq!(a1.recv().await.unwrap_err(), RecvError::Closed);
    assert_eq!(
        a0.recv().await.unwrap_err(),
        RecvError::Closed,
        "nothing reached partition 0"
    );
}

// ---------------------------------------------------------------------
// Byte accounting
// ---------------------------------------------------------------------

/// `TopicStats::bytes`: "A native value is weighed by what it holds only on
/// a topic with a byte budget; elsewhere it counts its inline size (a
/// `Vec<u8>` 24 bytes, whatever it holds)", keys and headers included.
#[tokio::test]
async fn bytes_without_a_budget_count_inline_sizes_keys_and_headers() {
    let mq = MessageQueue::new();
    mq.create_topic("inline", evicting(100)).await.unwrap();
    let p = mq.publisher("inline");
    let bytes = |mq: MessageQueue| async move { mq.get_topic_stats("inline").await.unwrap().bytes };
    let inline = std::mem::size_of::<Vec<u8>>();
    p.publish(vec![0u8; 4096]).await.unwrap();
    assert_eq!(bytes(mq.clone()).await, inline);
    p.publish_with_key("abc", vec![0u8; 10]).await.unwrap();
    assert_eq!(bytes(mq.clone()).await, 2 * inline + 3);
    p.publish_with_headers(vec![0u8; 10], [("n", "vv")])
        .await
        .unwrap();
    assert_eq!(bytes(mq.clone()).await, 3 * inline + 3 + 8 + 1 + 2);
    p.publish_batch(vec![vec![1u8; 100], vec![2u8; 100]])
        .await
        .unwrap();
    assert_eq!(bytes(mq.clone()).await, 5 * inline + 3 + 11);
    p.publish_bytes(vec![0u8; 7], SerializationFormat::Raw)
        .await
        .unwrap();
    assert_eq!(bytes(mq.clone()).await, 5 * inline + 3 + 11 + 7);
}

/// Byte budget boundaries on both policies: a message of exactly the
/// budget is accepted, one byte more is `TooLarge`; on a waiting topic a
/// publish that needs the bytes of an unread message waits (`try_publish`
/// says `Full`, the bytes come back from `publish_timeout`'s `Timeout`),
/// and goes in, evicting, once the subscriber read it.
#[tokio::test(start_paused = true)]
async fn byte_budget_boundaries_and_waiting_for_bytes() {
    for lru in [true, false] {
        let mq = MessageQueue::new();
        let options = TopicOptions {
            max_messages: None,
            max_bytes: Some(10),
            lru_enabled: lru,
            ..TopicOptions::default()
        };
        let sub = earliest(&mq, "bb", options).await;
        let p = mq.publisher("bb");
        let err = p
            .publish_bytes(vec![1u8; 11], SerializationFormat::Raw)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), PublishErrorKind::TooLarge);
        assert_eq!(
            within(LIMIT, p.publish_bytes(vec![1u8; 10], SerializationFormat::Raw))
                .await
                .unwrap(),
            Ok(0),
            "exactly the budget (lru {lru})"
        );
        let next = p.publish_bytes(vec![2u8; 1], SerializationFormat::Raw);
        if lru {
            assert_eq!(next.await, Ok(1));
            assert_eq!(sub.recv().await.unwrap_err(), RecvError::Lagged(1));
        } else {
            let waited = tokio::time::timeout(Duration::from_millis(100), next).await;
            assert!(waited.is_err(), "one more byte waits for the unread ten");
            let parked = {
                let p = p.clone();
                spawn(async move { p.publish_bytes(vec![2u8; 1], SerializationFormat::Raw).await })
            };
            settle().await;
            assert!(!parked.is_finished());
            assert_eq!(sub.recv().await.unwrap().payload_bytes(), vec![1u8; 10]);
            assert_eq!(within(LIMIT, parked.join()).await.unwrap(), Ok(1));
        }
        assert_eq!(sub.recv().await.unwrap().payload_bytes(), [2u8]);
        let stats = mq.get_topic_stats("bb").await.unwrap();
        assert_eq!(
            (stats.published, stats.evicted, stats.message_count, stats.bytes),
            (2, 1, 1, 1),
            "lru {lru}"
        );
    }
}

// ---------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------

/// A `PublishSink` whose send waits for room on a full topic fails with
/// `Closed` and its value when the topic is deleted; a parked `send`
/// never hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_sink_send_fails_with_closed_on_delete() {
    use futures_util::SinkExt;
    let mq = MessageQueue::new();
    let _sub = earliest(&mq, "sink", lossless(1)).await;
    let p = mq.publisher("sink");
    p.publish(0u32).await.unwrap();
    let mut sink = p.sink::<u32>();
    let sent = spawn(async move {
        let first = sink.send(1u32).await;
        let second = sink.send(2u32).await;
        (first, second)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!sent.is_finished());
    assert!(mq.delete_topic("sink").await);
    let (first, second) = within(LIMIT, sent.join()).await.unwrap();
    assert_eq!(first, Err(PublishError::Closed(1)));
    assert_eq!(second, Err(PublishError::Closed(2)));
}

// ---------------------------------------------------------------------
// Races with close and delete
// ---------------------------------------------------------------------

/// "Never loses an accepted message": publishers (singles and batches) race
/// `close` or `delete_topic` on a topic whose publishers wait, read by one
/// subscriber. Every publish that returned `Ok` must reach the subscriber
/// before its `Closed` ("subscribers first receive what each topic
/// retains"), every other one must be `Closed` with its value, and the
/// accepted offsets must be dense from 0. Many rounds, the cut at a
/// different moment each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_racing_close_or_delete_lose_no_accepted_message() {
    let started = std::time::Instant::now();
    let mut round = 0u64;
    while round < 60 && started.elapsed() < Duration::from_millis(1500) {
        round += 1;
        let by_delete = round % 2 == 0;
        let lru = round % 4 >= 2;
        let mq = MessageQueue::new();
        let options = if lru { evicting(8) } else { lossless(8) };
        let sub = earliest(&mq, "race", options).await;
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let p = mq.publisher("race");
            p.publish_batch(Vec::<u64>::new()).await.unwrap(); // bound to this topic
            tasks.push(spawn(async move {
                let mut accepted = Vec::new();
                for i in 0..1_000u64 {
                    let v = (t << 32) | i;
                    if i % 4 == 0 {
                        match p.publish_batch(vec![v, v | (1 << 31)]).await {
                            Ok(run) => accepted.extend(run.zip([v, v | (1 << 31)])),
                            Err(PublishError::Closed(back)) => {
                                assert_eq!(back, [v, v | (1 << 31)]);
                                break;
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                    } else {
                        match p.publish(v).await {
                            Ok(o) => accepted.push((o, v)),
                            Err(PublishError::Closed(back)) => {
                                assert_eq!(back, v);
                                break;
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
                accepted
            }));
        }
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let reader = spawn(async move {
            let mut got = Vec::new();
            let mut lagged = 0u64;
            loop {
                match sub.recv().await {
                    Ok(m) => {
                        got.push((m.offset(), *m.native::<u64>().unwrap()));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(RecvError::Lagged(n)) => lagged += n,
                    Err(RecvError::Closed) => return (got, lagged),
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
        // Cut after a varying amount of traffic.
        let target = (round as usize * 397) % 3_000;
        let deadline = std::time::Instant::now() + Duration::from_millis(200);
        while received.load(Ordering::Relaxed) < target && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        if by_delete {
            assert!(mq.delete_topic("race").await);
        } else {
            mq.close();
        }
        let (accepted, got) = within(LIMIT, async {
            let mut accepted = BTreeMap::new();
            for t in tasks {
                for (o, v) in t.join().await {
                    assert!(accepted.insert(o, v).is_none());
                }
            }
            (accepted, reader.join().await)
        })
        .await
        .expect("every publisher and the reader finish");
        let expected: Vec<(u64, u64)> = accepted.into_iter().collect();
        assert_eq!(
            expected.iter().map(|e| e.0).collect::<Vec<_>>(),
            (0..expected.len() as u64).collect::<Vec<_>>(),
            "round {round}: accepted offsets are dense"
        );
        let (got, lagged) = got;
        if lru {
            // Evicting: what was not delivered was reported, exactly.
            assert_eq!(got.len() as u64 + lagged, expected.len() as u64, "round {round}");
            let delivered: BTreeSet<(u64, u64)> = got.iter().copied().collect();
            assert!(
                delivered.is_subset(&expected.iter().copied().collect()),
                "round {round}"
            );
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "in offset order");
        } else {
            assert_eq!(lagged, 0);
            assert_eq!(
                got, expected,
                "round {round} (delete {by_delete}): every accepted message delivered"
            );
        }
    }
}
