//! Partitioned topics through the facade: README 5.5, routing, batches,
//! per-partition and all-partition subscriptions, stats, groups.

use memq_testkit::within;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use memq_testkit::{Expect, History};
use tokio_memq::{
    ConsumptionMode, MessageQueue, PartitionRouting, PublishError, TopicError, TopicMessage, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(60);

#[rustfmt::skip]
async fn readme_5_5(mq: &MessageQueue, msg: TopicMessage) -> anyhow::Result<()> {
    // --- README 5.5, verbatim ---
    use tokio_memq::mq::{TopicOptions, PartitionRouting};

    // Create a topic with 4 partitions
    let opts = TopicOptions { partitions: Some(4), ..Default::default() };
    mq.create_partitioned_topic("events".to_string(), opts, 4).await?;

    // Auto-route messages (Round-Robin by default)
    mq.set_partition_routing("events".to_string(), PartitionRouting::RoundRobin).await?;
    mq.publish_to_partitioned(msg).await?;
    // --- end ---
    Ok(())
}

#[tokio::test]
async fn readme_5_5_creates_routes_and_publishes() {
    let mq = MessageQueue::new();
    let msg = TopicMessage::new("events".to_string(), "first").unwrap();
    readme_5_5(&mq, msg).await.unwrap();
    let stats = mq.get_all_partition_stats("events").await;
    assert_eq!(stats.len(), 4);
    assert_eq!(stats.iter().map(|s| s.message_count).sum::<usize>(), 1);
    assert_eq!(mq.list_partitioned_topics().await, vec!["events".to_string()]);
    assert_eq!(mq.list_topics().await, vec!["events".to_string()]);
    assert_eq!(mq.get_topic_stats("events").await.unwrap().published, 1);
}

#[tokio::test]
async fn creation_errors_are_typed() {
    let mq = MessageQueue::new();
    let zero = mq.create_partitioned_topic("p", TopicOptions::default(), 0).await;
    assert!(matches!(
        zero,
        Err(TopicError::PartitionCount {
            requested: 0,
            existing: None,
            ..
        })
    ));
    // More partitions than a topic may have: refused before any is made.
    let huge = mq
        .create_partitioned_topic("huge", TopicOptions::default(), 1 << 40)
        .await;
    assert!(matches!(
        huge,
        Err(TopicError::PartitionCount {
            requested: 1_099_511_627_776,
            existing: None,
            ..
        })
    ));
    assert!(mq.get_topic_stats("huge").await.is_none());
    // No topic was looked at: the message does not say what one has.
    assert_eq!(
        zero.unwrap_err().to_string(),
        "topic \"p\": 0 partitions requested, not a valid partition count for it"
    );
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    let other = mq.create_partitioned_topic("p", TopicOptions::default(), 4).await;
    assert!(matches!(
        other,
        Err(TopicError::PartitionCount {
            existing: Some(3),
            ..
        })
    ));
    let conflicting = TopicOptions {
        partitions: Some(2),
        ..Default::default()
    };
    assert!(matches!(
        mq.create_partitioned_topic("q", conflicting, 3).await,
        Err(TopicError::PartitionCount {
            requested: 3,
            existing: None,
            ..
        })
    ));
    mq.create_topic("plain", TopicOptions::default()).await.unwrap();
    assert!(matches!(
        mq.create_partitioned_topic("plain", TopicOptions::default(), 2).await,
        Err(TopicError::NotPartitioned { topic }) if topic == "plain"
    ));
    assert!(matches!(
        mq.set_partition_routing("plain", PartitionRouting::Hash).await,
        Err(TopicError::NotPartitioned { .. })
    ));
    assert!(matches!(
        mq.set_partition_routing("nope", PartitionRouting::Hash).await,
        Err(TopicError::NoSuchTopic { .. })
    ));
    assert!(matches!(
        mq.set_partition_routing("p", PartitionRouting::Fixed(3)).await,
        Err(TopicError::NoSuchPartition {
            partition: 3,
            partitions: 3
        })
    ));
    let m = TopicMessage::new("nope", 1u8).unwrap();
    assert!(matches!(
        mq.publish_to_partitioned(m).await,
        Err(PublishError::Unroutable(_))
    ));
}

#[tokio::test]
async fn hash_routing_is_kafkas_and_stable() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("h", TopicOptions::default(), 6)
        .await
        .unwrap();
    mq.set_partition_routing("h", PartitionRouting::Hash)
        .await
        .unwrap();
    for key in ["user-1", "user-2", "21", "", "日本語"] {
        let expected = memq_partition::kafka_partition(key.as_bytes(), 6);
        for _ in 0..3 {
            let m = TopicMessage::new_with_key("h", 0u8, key).unwrap();
            assert_eq!(
                mq.publish_to_partitioned(m).await.unwrap().0,
                expected,
                "key {key:?}"
            );
        }
        let via_publisher_before = mq.get_partition_stats("h", expected).await.unwrap().published;
        mq.publisher("h").publish_with_key(key, 1u8).await.unwrap();
        let after = mq.get_partition_stats("h", expected).await.unwrap().published;
        assert_eq!(after, via_publisher_before + 1, "Publisher routes by key too");
    }
    // Keyless messages fall back to round-robin.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let m = TopicMessage::new("h", 0u8).unwrap();
        seen.insert(mq.publish_to_partitioned(m).await.unwrap().0);
    }
    assert_eq!(seen.len(), 6);
}

#[tokio::test]
async fn other_routings_and_custom_router() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("r", TopicOptions::default(), 4)
        .await
        .unwrap();
    let place = |mq: &MessageQueue| {
        let mq = mq.clone();
        async move {
            mq.publish_to_partitioned(TopicMessage::new("r", 0u8).unwrap())
                .await
        }
    };
    let rr: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..8 {
            v.push(place(&mq).await.unwrap().0);
        }
        v
    };
    assert_eq!(rr, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    mq.set_partition_routing("r", PartitionRouting::Fixed(2))
        .await
        .unwrap();
    assert_eq!(place(&mq).await.unwrap().0, 2);
    mq.set_partition_routing("r", PartitionRouting::Random)
        .await
        .unwrap();
    for _ in 0..20 {
        assert!(place(&mq).await.unwrap().0 < 4);
    }
    let last = PartitionRouting::Custom(Arc::new(|_key: Option<&[u8]>, n: usize| n - 1));
    mq.set_partition_routing("r", last).await.unwrap();
    assert_eq!(place(&mq).await.unwrap().0, 3);
    let bad = PartitionRouting::Custom(Arc::new(|_key: Option<&[u8]>, n: usize| n + 5));
    mq.set_partition_routing("r", bad).await.unwrap();
    assert!(matches!(place(&mq).await, Err(PublishError::Unroutable(_))));
    let panicky = PartitionRouting::Custom(Arc::new(|_key: Option<&[u8]>, _n: usize| panic!("router bug")));
    mq.set_partition_routing("r", panicky).await.unwrap();
    assert!(matches!(place(&mq).await, Err(PublishError::Unroutable(_))));
    mq.set_partition_routing("r", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    assert!(place(&mq).await.is_ok(), "the topic survives a panicking router");
}

#[tokio::test]
async fn batch_shares_are_contiguous_and_in_order_per_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("b", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("b", PartitionRouting::Hash)
        .await
        .unwrap();
    let msgs: Vec<TopicMessage> = (0..30u32)
        .map(|i| TopicMessage::new_with_key("b", i, format!("k{}", i % 5)).unwrap())
        .collect();
    let placements = mq.publish_batch_to_partitioned(msgs).await.unwrap();
    assert_eq!(placements.len(), 30);
    let mut per: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (p, o) in &placements {
        per.entry(*p).or_default().push(*o);
    }
    for offsets in per.values() {
        let expect: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, &expect, "contiguous, in input order");
    }
    // Every key stays on one partition, values in order.
    let all = mq.subscriber("b").await.unwrap();
    all.seek(0).await.unwrap();
    let got = within(LIMIT, all.recv_batch(100)).await.unwrap().unwrap();
    let mut by_key: HashMap<String, (usize, Vec<u32>)> = HashMap::new();
    let mut total = got.len();
    let mut more = got;
    while total < 30 {
        let next = all.recv_batch(100).await.unwrap();
        total += next.len();
        more.extend(next);
    }
    for m in more {
        let v: u32 = m.deserialize().unwrap();
        let e = by_key
            .entry(m.key().unwrap().to_string())
            .or_insert((m.partition.unwrap(), Vec::new()));
        assert_eq!(e.0, m.partition.unwrap(), "one key, one partition");
        e.1.push(v);
    }
    for (_, values) in by_key.values() {
        assert!(values.windows(2).all(|w| w[0] < w[1]), "per-key order");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn partition_subscriptions_and_stats_on_a_current_thread_runtime() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("s", TopicOptions::default(), 2)
        .await
        .unwrap();
    let p1 = mq
        .subscribe_partition("s", 1, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let named = mq
        .subscribe_partition("s", 0, Some("audit".into()), ConsumptionMode::Earliest)
        .await
        .unwrap();
    for i in 0..6u8 {
        mq.publish_to_partitioned(TopicMessage::new("s", i).unwrap())
            .await
            .unwrap();
    }
    let m = p1.recv().await.unwrap();
    assert_eq!((m.partition, m.deserialize::<u8>().unwrap()), (Some(1), 1));
    let m = named.recv().await.unwrap();
    assert_eq!((m.partition, m.offset()), (Some(0), 0));
    named.commit(0).await.unwrap();
    drop(named);
    let resumed = mq
        .subscribe_partition("s", 0, Some("audit".into()), ConsumptionMode::LastOffset)
        .await
        .unwrap();
    assert_eq!(
        resumed.recv().await.unwrap().offset(),
        1,
        "named consumer resumes after its commit"
    );
    assert!(matches!(
        mq.subscribe_partition("s", 2, None, ConsumptionMode::Earliest)
            .await,
        Err(TopicError::NoSuchPartition {
            partition: 2,
            partitions: 2
        })
    ));
    let stats = mq.get_all_partition_stats("s").await;
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.partition, s.published))
            .collect::<Vec<_>>(),
        vec![(0, 3), (1, 3)]
    );
    assert_eq!(mq.get_partition_stats("s", 1).await.unwrap().message_count, 3);
    assert!(mq.get_partition_stats("s", 9).await.is_none());
    assert!(mq.delete_partitioned_topic("s").await);
    assert!(mq.get_all_partition_stats("s").await.is_empty());
}

/// Publishers with keys, members of an exclusive group: every message
/// once, and each key's messages in publish order within its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusive_group_keeps_per_key_order_under_concurrent_publishers() {
    const PUBLISHERS: u64 = 8;
    const PER: u64 = 2_000;
    let total = PUBLISHERS * PER;
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(total as usize),
        partitions: Some(4),
        ..Default::default()
    };
    mq.create_partitioned_topic("k", options, 4).await.unwrap();
    mq.set_partition_routing("k", PartitionRouting::Hash)
        .await
        .unwrap();
    let history = Arc::new(History::new());
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut members = Vec::new();
    for m in 0..3 {
        let sub = mq
            .group("k", "workers")
            .exclusive()
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        let history = history.clone();
        let received = received.clone();
        members.push(tokio::spawn(async move {
            let mut last_per_key: HashMap<u64, u64> = HashMap::new();
            while let Ok(batch) = sub.recv_batch(32).await {
                for msg in batch {
                    let (publisher, seq) = *msg.native::<(u64, u64)>().unwrap();
                    if let Some(prev) = last_per_key.insert(publisher, seq) {
                        assert!(seq > prev, "key {publisher}: {seq} after {prev}");
                    }
                    history.delivered(m, msg.partition.unwrap(), msg.offset(), publisher * PER + seq);
                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    let mut pubs = Vec::new();
    for p in 0..PUBLISHERS {
        let mq = mq.clone();
        let history = history.clone();
        pubs.push(tokio::spawn(async move {
            for seq in 0..PER {
                let msg = TopicMessage::new_with_key("k", (p, seq), format!("publisher-{p}")).unwrap();
                let (partition, offset) = mq.publish_to_partitioned(msg).await.unwrap();
                history.published(partition, offset, p * PER + seq);
            }
        }));
    }
    within(LIMIT, async {
        for p in pubs {
            p.await.unwrap();
        }
        while received.load(std::sync::atomic::Ordering::Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        mq.delete_topic("k").await;
        for m in members {
            m.await.unwrap();
        }
    })
    .await
    .expect("finished");
    history.check(Expect::ExactlyOnce).assert_clean();
}

#[tokio::test]
async fn shared_group_over_partitions_and_all_partition_subscriber() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("g", TopicOptions::default(), 3)
        .await
        .unwrap();
    let all = mq.subscriber("g").await.unwrap();
    let a = mq
        .subscriber_group("g", "w", ConsumptionMode::Earliest)
        .await
        .unwrap();
    let b = mq
        .subscriber_group("g", "w", ConsumptionMode::Earliest)
        .await
        .unwrap();
    for i in 0..30u32 {
        mq.publisher("g").publish(i).await.unwrap();
    }
    let mut everything: Vec<u32> = Vec::new();
    while everything.len() < 30 {
        everything.extend(all.recv_batch_typed::<u32>(50).await.unwrap());
    }
    everything.sort_unstable();
    assert_eq!(
        everything,
        (0..30).collect::<Vec<_>>(),
        "the all-partition subscriber sees everything"
    );
    let mut shared = Vec::new();
    while let Ok(m) = a.try_recv().await {
        shared.push(m.deserialize::<u32>().unwrap());
        if let Ok(m) = b.try_recv().await {
            shared.push(m.deserialize::<u32>().unwrap());
        }
    }
    while let Ok(m) = b.try_recv().await {
        shared.push(m.deserialize::<u32>().unwrap());
    }
    shared.sort_unstable();
    assert_eq!(
        shared,
        (0..30).collect::<Vec<_>>(),
        "the group shares them, once each"
    );
    let g = mq.get_group_stats("g", "w").await.unwrap();
    assert_eq!((g.committed.len(), g.lag), (3, 0));
}

/// A subscription to one partition (here partition 1) commits, seeks and
/// reports its position in that partition's offsets, by its own number.
#[tokio::test]
async fn a_single_partition_subscriber_commits_and_seeks_its_own_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("p", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    for i in 0..3u32 {
        mq.publish_to_partitioned(TopicMessage::new("p", i).unwrap())
            .await
            .unwrap();
    }
    let sub = mq
        .subscribe_partition("p", 1, Some("c".into()), ConsumptionMode::Earliest)
        .await
        .unwrap();
    assert_eq!(sub.recv().await.unwrap().offset(), 0);
    sub.commit(0).await.unwrap();
    sub.commit_partition(1, 1).await.unwrap();
    assert_eq!(sub.committed_offset(), Some(1));
    assert!(
        sub.commit_partition(0, 0).await.is_err(),
        "not this subscriber's partition"
    );
    sub.seek_partition(1, 2).await.unwrap();
    assert_eq!(sub.current_offset().await, Some(2));
    assert_eq!(sub.partition_offset(1), Some(2));
    assert_eq!(sub.recv().await.unwrap().offset(), 2);
    sub.seek(1).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().offset(), 1);
}

/// A batch to a partitioned topic that stops after a share was published
/// hands back only the messages not published, whether they were native
/// values or encoded (the values kept to be handed back): before, an
/// encoded batch handed back every value, and a caller retrying it would
/// have published the first share twice.
#[tokio::test]
async fn a_partly_published_batch_hands_back_only_what_was_not_published() {
    use tokio_memq::{JsonConfig, PublishErrorKind, SerializationConfig, SerializationFormat};
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let capped = TopicOptions {
            max_messages: Some(2),
            ..TopicOptions::default()
        };
        let tries = [
            ("native", "batch"),
            ("native", "batch with a format"),
            ("json", "batch"),
            ("json", "placed batch"),
        ];
        for (defaults, how) in tries {
            let topic = format!("{defaults}, {how}");
            if defaults == "json" {
                let json = SerializationConfig::Json(JsonConfig { pretty: false });
                mq.register_topic_defaults(&topic, SerializationFormat::Json, json, None);
            }
            mq.create_partitioned_topic(&topic, capped.clone(), 2)
                .await
                .unwrap();
            let publisher = mq.publisher(&topic);
            // Round-robin: one message to partition 0, then 10, 12, 14 to
            // partition 1 (three: too many for it), 11 and 13 to partition
            // 0, whose share is published first.
            publisher.publish(0u32).await.unwrap();
            let batch = vec![10u32, 11, 12, 13, 14];
            let err = match how {
                "batch" => publisher.publish_batch(batch).await.unwrap_err(),
                "placed batch" => publisher.publish_batch_placed(batch).await.unwrap_err(),
                _ => publisher
                    .publish_batch_with_format(batch, SerializationFormat::Bincode)
                    .await
                    .unwrap_err(),
            };
            assert_eq!(err.kind(), PublishErrorKind::TooLarge, "{topic}");
            assert_eq!(err.into_inner(), [10, 12, 14], "{topic}");
            let partitions = mq.get_all_partition_stats(&topic).await;
            let published: Vec<u64> = partitions.iter().map(|p| p.published).collect();
            assert_eq!(published, [3, 0], "{topic}: 11 and 13 published");
        }
    })
    .await
    .expect("finished");
}

/// `publish_batch_to_partitioned` checks every topic before publishing
/// anything; a router that cannot place a message stops the batch at its
/// topic, as a refused share does: the topics before it stay published,
/// and the error hands back exactly the messages not published.
#[tokio::test]
async fn a_router_failure_in_a_batch_over_topics_hands_back_what_was_not_published() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        for topic in ["a", "b", "c"] {
            mq.create_partitioned_topic(topic, TopicOptions::default(), 2)
                .await
                .unwrap();
        }
        let out_of_range: tokio_memq::RouterFn = Arc::new(|_key: Option<&[u8]>, _partitions: usize| 7);
        mq.set_partition_routing("b", PartitionRouting::Custom(out_of_range))
            .await
            .unwrap();
        let message = |topic: &str, v: u32| TopicMessage::new(topic, v).unwrap();
        let batch = vec![message("c", 0), message("a", 1), message("b", 2), message("a", 3)];
        let err = mq.publish_batch_to_partitioned(batch).await.unwrap_err();
        assert_eq!(err.kind(), tokio_memq::PublishErrorKind::Unroutable);
        let mut back: Vec<(String, u32)> = err
            .into_inner()
            .into_iter()
            .map(|m| (m.topic().to_owned(), m.deserialize().unwrap()))
            .collect();
        back.sort();
        assert_eq!(back, [("b".to_owned(), 2), ("c".to_owned(), 0)]);
        let mq = &mq;
        let published = |t: &'static str| async move { mq.get_topic_stats(t).await.unwrap().published };
        assert_eq!(
            (published("a").await, published("b").await, published("c").await),
            (2, 0, 0)
        );
        // A topic that does not exist: nothing at all is published.
        let err = mq
            .publish_batch_to_partitioned(vec![message("a", 4), message("nowhere", 5)])
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.into_inner().len()),
            (tokio_memq::PublishErrorKind::Unroutable, 2)
        );
        assert_eq!(published("a").await, 2);
    })
    .await
    .expect("finished");
}

/// Messages a typed batch put aside (after one that failed to decode) on a
/// subscriber reading every partition expire like the rest: once past the
/// topic's TTL they are never delivered (before, they were, by every
/// receive that takes from what was put aside).
#[tokio::test(start_paused = true)]
async fn messages_put_aside_by_a_typed_batch_expire_like_the_rest() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let ttl = TopicOptions {
            message_ttl: Some(Duration::from_secs(10)),
            ..TopicOptions::default()
        };
        mq.create_partitioned_topic("t", ttl.clone(), 2).await.unwrap();
        mq.set_partition_routing("t", PartitionRouting::Fixed(0))
            .await
            .unwrap();
        let publisher = mq.publisher("t");
        for round in 0..2u32 {
            let sub = mq
                .subscriber_with_options_and_mode("t", ttl.clone(), tokio_memq::ConsumptionMode::Latest)
                .await
                .unwrap();
            publisher.publish(1u32).await.unwrap();
            publisher.publish("not a number").await.unwrap();
            publisher.publish(3u32).await.unwrap();
            // 1 comes back; the failed message and 3 are put aside.
            assert_eq!(sub.recv_batch_typed::<u32>(10).await.unwrap(), [1]);
            tokio::time::advance(Duration::from_secs(11)).await;
            if round == 0 {
                assert!(
                    matches!(sub.try_recv_now(), Err(tokio_memq::TryRecvError::Empty)),
                    "nothing left but expired messages"
                );
            } else {
                publisher.publish(7u32).await.unwrap();
                let got: Vec<u32> = sub
                    .recv_batch(10)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.deserialize().unwrap())
                    .collect();
                assert_eq!(got, [7], "only the live message");
            }
        }
    })
    .await
    .expect("finished");
}

/// A seek makes a gap found before it (by a batch that read other
/// partitions first, and not reported yet) moot, on a subscriber reading
/// every partition as on a plain topic: the next message received is the
/// one sought, through `seek` and `seek_partition` alike.
#[tokio::test]
async fn a_seek_drops_a_gap_found_before_it() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let capped = TopicOptions {
            max_messages: Some(3),
            ..TopicOptions::default()
        };
        for (i, seek_all) in [true, false].into_iter().enumerate() {
            let topic = format!("t{i}");
            mq.create_partitioned_topic(&topic, capped.clone(), 2)
                .await
                .unwrap();
            let sub = mq
                .subscriber_with_options_and_mode(
                    &topic,
                    capped.clone(),
                    tokio_memq::ConsumptionMode::Earliest,
                )
                .await
                .unwrap();
            let publish_to = |p: usize, values: std::ops::Range<u32>| {
                let (mq, topic) = (&mq, &topic);
                async move {
                    mq.set_partition_routing(topic, PartitionRouting::Fixed(p))
                        .await
                        .unwrap();
                    for v in values {
                        mq.publish_to_partitioned(TopicMessage::new(topic, v).unwrap())
                            .await
                            .unwrap();
                    }
                }
            };
            publish_to(0, 0..3).await;
            // Partition 1: six published into room for three, so offsets
            // 0 to 2 are gone before anything read them.
            publish_to(1, 10..16).await;
            let first: Vec<(Option<usize>, u64)> = sub
                .recv_batch(10)
                .await
                .unwrap()
                .iter()
                .map(|m| (m.partition, m.offset()))
                .collect();
            assert_eq!(
                first,
                [(Some(0), 0), (Some(0), 1), (Some(0), 2)],
                "then the gap in partition 1"
            );
            if seek_all {
                sub.seek(3).await.unwrap();
            } else {
                sub.seek_partition(1, 4).await.unwrap();
            }
            let next = sub.recv().await.unwrap();
            let sought = if seek_all { 3 } else { 4 };
            assert_eq!((next.partition, next.offset()), (Some(1), sought));
        }
    })
    .await
    .expect("finished");
}

/// A byte budget weighs a native value by what it holds in a batch over
/// topics too (`publish_batch_to_partitioned` kept its inline size, 24
/// bytes for a 1 MiB `Vec`), as single publishes do.
#[tokio::test]
async fn a_batch_over_topics_weighs_native_values_for_the_byte_budget() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let budget = TopicOptions {
            max_bytes: Some(1_000),
            ..TopicOptions::default()
        };
        mq.create_partitioned_topic("pb", budget, 2).await.unwrap();
        let big = || TopicMessage::new("pb", vec![7u8; 1 << 20]).unwrap();
        let single = mq.publish_to_partitioned(big()).await.unwrap_err();
        assert_eq!(single.kind(), tokio_memq::PublishErrorKind::TooLarge);
        let batch = mq.publish_batch_to_partitioned(vec![big()]).await.unwrap_err();
        assert_eq!(batch.kind(), tokio_memq::PublishErrorKind::TooLarge);
        assert_eq!(batch.into_inner().len(), 1, "handed back");
        let small = TopicMessage::new("pb", vec![7u8; 100]).unwrap();
        mq.publish_batch_to_partitioned(vec![small]).await.unwrap();
        let stats = mq.get_topic_stats("pb").await.unwrap();
        assert_eq!(stats.message_count, 1);
        assert!(stats.bytes >= 100, "weighed by what it holds: {}", stats.bytes);
    })
    .await
    .expect("finished");
}

/// `get_partition_stats` makes an automatic group's lag current before it
/// reads it, as the other stats calls do: it read the partition first and
/// wrote the group's lazy commit after, so a monitor polling it saw each
/// lag one poll late (5 for 3 of 5 processed, then 2).
#[tokio::test]
async fn partition_stats_show_an_automatic_groups_current_lag() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("t", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("t", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let member = mq
        .subscriber_group("t", "g", ConsumptionMode::Earliest)
        .await
        .unwrap();
    for i in 0..5u32 {
        mq.publish_to_partitioned(TopicMessage::new("t", i).unwrap())
            .await
            .unwrap();
    }
    for _ in 0..3 {
        member.try_recv_now().unwrap();
    }
    let stats = mq.get_partition_stats("t", 0).await.unwrap();
    assert_eq!(stats.consumer_lags.get("g"), Some(&2), "3 of 5 processed");
    assert_eq!(
        mq.get_all_partition_stats("t").await[0].consumer_lags.get("g"),
        Some(&2)
    );
}

/// After `close()` publishing to a partitioned topic is `Closed`, as for a
/// publisher: `close` empties the registry, and the partitioned publishes
/// took the topic for one that never existed (`Unroutable`).
#[tokio::test]
async fn publishing_to_a_partitioned_topic_after_close_is_closed() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("events", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.close();
    let one = mq
        .publish_to_partitioned(TopicMessage::new("events", 2u8).unwrap())
        .await
        .unwrap_err();
    let batch = mq
        .publish_batch_to_partitioned(vec![TopicMessage::new("events", 3u8).unwrap()])
        .await
        .unwrap_err();
    assert_eq!(
        (one.kind(), batch.kind()),
        (
            tokio_memq::PublishErrorKind::Closed,
            tokio_memq::PublishErrorKind::Closed
        )
    );
    assert_eq!(batch.into_inner().len(), 1, "handed back");
}

/// `subscribe_partition_with_options` makes the topic it subscribes to
/// only when the subscribe succeeds: a start outside the window or a
/// partition the new topic would not have leaves no topic behind.
#[tokio::test]
async fn a_refused_partition_subscribe_creates_no_topic() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let two = TopicOptions {
            partitions: Some(2),
            ..Default::default()
        };
        for id in [None, Some("audit".to_string())] {
            let refused = mq
                .subscribe_partition_with_options(
                    "p.fresh",
                    1,
                    two.clone(),
                    id.clone(),
                    ConsumptionMode::Offset(3),
                )
                .await;
            match refused {
                Err(TopicError::OutOfRange(r)) => assert_eq!((r.requested, r.low, r.high), (3, 0, 0)),
                other => panic!("{id:?}: {other:?}"),
            }
            let refused = mq
                .subscribe_partition_with_options(
                    "p.fresh",
                    5,
                    two.clone(),
                    id.clone(),
                    ConsumptionMode::Earliest,
                )
                .await;
            assert!(
                matches!(
                    refused,
                    Err(TopicError::NoSuchPartition {
                        partition: 5,
                        partitions: 2
                    })
                ),
                "{id:?}: {refused:?}"
            );
        }
        assert!(mq.list_partitioned_topics().await.is_empty());
        assert!(mq.get_all_partition_stats("p.fresh").await.is_empty());
        // The same call with a start the new topic has makes it.
        let sub = mq
            .subscribe_partition_with_options("p.fresh", 1, two, None, ConsumptionMode::Offset(0))
            .await
            .unwrap();
        assert_eq!(mq.list_partitioned_topics().await, ["p.fresh"]);
        mq.set_partition_routing("p.fresh", PartitionRouting::Fixed(1))
            .await
            .unwrap();
        mq.publish_to_partitioned(TopicMessage::new("p.fresh", "x").unwrap())
            .await
            .unwrap();
        let m = sub.recv().await.unwrap();
        assert_eq!((m.partition, m.offset()), (Some(1), 0));
    })
    .await
    .unwrap();
}

/// A gap one partition's reader found while a batch already held another
/// partition's message is reported by the next receive; `lag()` counted
/// it out meanwhile (2 where 5 were still to come: `Lagged(3)` and two
/// messages).
#[tokio::test]
async fn lag_counts_a_gap_a_batch_found_and_kept_for_the_next_receive() {
    let mq = MessageQueue::new();
    let small = TopicOptions {
        max_messages: Some(2),
        ..TopicOptions::default()
    };
    mq.create_partitioned_topic("pl", small.clone(), 2).await.unwrap();
    let sub = mq
        .subscriber_with_options_and_mode("pl", small, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let publish_to = |partition: usize, values: std::ops::RangeInclusive<u8>| {
        let mq = mq.clone();
        async move {
            mq.set_partition_routing("pl", PartitionRouting::Fixed(partition))
                .await
                .unwrap();
            for v in values {
                mq.publish_to_partitioned(TopicMessage::new("pl", v).unwrap())
                    .await
                    .unwrap();
            }
        }
    };
    publish_to(0, 0..=0).await;
    let first = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(
        (first.partition, first.offset()),
        (Some(0), 0),
        "partition 1 is next"
    );
    publish_to(0, 1..=5).await; // partition 0 keeps 4 and 5: 1..4 evicted
    publish_to(1, 9..=9).await;
    assert_eq!(sub.lag(), 3 + 2 + 1);
    let batch = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    let got: Vec<_> = batch.iter().map(|m| (m.partition(), m.offset())).collect();
    drop(batch);
    assert_eq!(got, [(Some(1), 0)], "partition 0's gap kept for the next receive");
    assert_eq!(sub.lag(), 3 + 2, "the gap and partition 0's two");
    assert_eq!(
        sub.try_recv_now().map(|m| m.offset()),
        Err(tokio_memq::TryRecvError::Lagged(3))
    );
    assert_eq!(sub.lag(), 2);
    let rest: Vec<_> = (0..2).map(|_| sub.try_recv_now().unwrap().offset()).collect();
    assert_eq!(rest, [4, 5]);
    assert_eq!(sub.lag(), 0);
}

/// A partition index too large to count past is a typed error: it
/// overflowed `partition + 1` (a panic in debug builds, a count of 0 in
/// release builds).
#[tokio::test]
async fn a_partition_index_too_large_to_count_past_is_refused() {
    let mq = MessageQueue::new();
    let refused = mq
        .subscribe_partition_with_options(
            "huge",
            usize::MAX,
            TopicOptions::default(),
            None,
            ConsumptionMode::Earliest,
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(
            refused,
            TopicError::PartitionCount { .. } | TopicError::NoSuchPartition { .. }
        ),
        "{refused:?}"
    );
    assert!(mq.list_topics().await.is_empty(), "nothing left behind");
}

/// Review finding: a partition's `subscriber_count` counted every member of
/// an exclusive group, though only the partition's owner can receive from
/// it. Counted per partition: a shared group's members all, an exclusive
/// group's owner only; the topic's count still has every member; the
/// snapshot's rows agree with `get_all_partition_stats`.
#[tokio::test]
async fn a_partition_counts_only_the_exclusive_members_that_may_receive_from_it() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("orders", TopicOptions::default(), 2)
            .await
            .unwrap();
        let plain = mq
            .subscribe_partition("orders".to_string(), 0, None, ConsumptionMode::Latest)
            .await
            .unwrap();
        let exclusive = || mq.group("orders", "shipping").exclusive().join();
        let owners = [
            exclusive().await.unwrap(),
            exclusive().await.unwrap(),
            exclusive().await.unwrap(),
        ];
        let shared = || mq.group("orders", "audit").join();
        let shared = [shared().await.unwrap(), shared().await.unwrap()];
        let counts = |stats: Vec<tokio_memq::PartitionStats>| {
            stats.iter().map(|s| s.subscriber_count).collect::<Vec<_>>()
        };
        // Partition 0: the plain subscriber, one owner, both shared members.
        let expected = vec![4, 3];
        assert_eq!(counts(mq.get_all_partition_stats("orders").await), expected);
        let one = mq.get_partition_stats("orders", 1).await.unwrap();
        assert_eq!(one.subscriber_count, 3);
        let snapshot = mq.snapshot();
        let row = snapshot.iter().find(|t| t.name == "orders").unwrap();
        assert_eq!(
            row.partitions
                .iter()
                .map(|p| p.subscriber_count)
                .collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            mq.get_topic_stats("orders").await.unwrap().subscriber_count,
            1 + owners.len() + shared.len(),
            "the topic counts every member"
        );
        // The exclusive group gone, its partitions count nobody of it.
        drop(owners);
        assert_eq!(counts(mq.get_all_partition_stats("orders").await), [3, 2]);
        drop((plain, shared));
    })
    .await
    .unwrap();
}

/// Review finding: after `close`, `subscribe_partition` and
/// `set_partition_routing` said `NoSuchTopic` (the closed queue had
/// emptied its registry) where `subscriber` and
/// `create_partitioned_topic` say `Closed`. Every call that finds no topic
/// on a closed queue says `Closed`, for a partitioned topic that existed
/// and for a name that never did.
#[tokio::test]
async fn a_closed_queue_answers_partition_calls_with_closed() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("orders", TopicOptions::default(), 2)
            .await
            .unwrap();
        mq.close();
        for topic in ["orders", "never"] {
            let subscribe = mq
                .subscribe_partition(topic, 0, None, ConsumptionMode::Earliest)
                .await
                .unwrap_err();
            assert_eq!(subscribe, TopicError::Closed, "{topic}");
            let routing = mq
                .set_partition_routing(topic, PartitionRouting::RoundRobin)
                .await
                .unwrap_err();
            assert_eq!(routing, TopicError::Closed, "{topic}");
            assert_eq!(
                mq.subscriber(topic).await.unwrap_err(),
                TopicError::Closed,
                "{topic}"
            );
        }
    })
    .await
    .unwrap();
}

/// `Publisher::publish_batch` on a partitioned topic returns the run of
/// the lowest-numbered partition that got a share, whichever partition
/// the batch's first message went to, and `0..0` for an empty batch;
/// `publish_batch_placed` says where each message went.
#[tokio::test]
async fn a_partitioned_batch_returns_the_lowest_partition_s_run() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("spread", TopicOptions::default(), 3)
            .await
            .unwrap();
        let publisher = mq.publisher("spread");
        // Round robin: 0 to partition 0, 1 to 1, 2 to 2.
        assert_eq!(publisher.publish_batch(vec![0u32, 1, 2]).await.unwrap(), 0..1);
        // Now the router is at partition 0 again; move it on one.
        mq.publish_to_partitioned(TopicMessage::new("spread", 9u32).unwrap())
            .await
            .unwrap();
        // 3 to partition 1, 4 to 2, 5 to 0 (after 0 and 9): partition 0's run.
        assert_eq!(publisher.publish_batch(vec![3u32, 4, 5]).await.unwrap(), 2..3);
        let placed = publisher.publish_batch_placed(vec![6u32, 7]).await.unwrap();
        assert_eq!(placed, [(1, 2), (2, 2)], "the router went on from partition 1");
        assert_eq!(
            publisher.publish_batch(vec![8u32]).await.unwrap(),
            3..4,
            "8 to partition 0"
        );
        assert_eq!(publisher.publish_batch(Vec::<u32>::new()).await.unwrap(), 0..0);
    })
    .await
    .unwrap();
}

/// A subscriber that reads every partition sees offsets that repeat from
/// one partition to the next: a decode error names the partition too,
/// whichever way the message was received.
#[tokio::test]
async fn a_decode_error_from_every_partition_names_the_partition() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("mixed", TopicOptions::default(), 2)
            .await
            .unwrap();
        let typed = mq.subscriber("mixed").await.unwrap();
        let lent = mq.subscriber("mixed").await.unwrap();
        let publisher = mq.publisher("mixed");
        // Round robin: 1 to partition 0, "two" to 1, 3 to 0, "four" to 1.
        publisher.publish(1u32).await.unwrap();
        publisher.publish("two").await.unwrap();
        publisher.publish(3u32).await.unwrap();
        publisher.publish("four").await.unwrap();

        let mut failed = Vec::new();
        for _ in 0..4 {
            match typed.recv_typed::<u32>().await {
                Ok(_) => {}
                Err(tokio_memq::RecvTypedError::Decode(e)) => failed.push(e),
                Err(other) => panic!("expected a value or a decode error, got {other:?}"),
            }
        }
        let named: Vec<_> = failed.iter().map(|e| (e.offset(), e.partition())).collect();
        assert_eq!(named, [(Some(0), Some(1)), (Some(1), Some(1))]);
        assert!(
            failed[1].to_string().starts_with("message at offset 1 of partition 1: "),
            "{}",
            failed[1]
        );
        assert_ne!(failed[0], failed[1]);

        let batch = lent.recv_batch_lent(4).await.unwrap();
        let mut lent_failed: Vec<_> = (0..batch.len())
            .filter_map(|i| batch.get(i).unwrap().deserialize::<u32>().err())
            .map(|e| (e.offset(), e.partition()))
            .collect();
        lent_failed.sort();
        assert_eq!(lent_failed, [(Some(0), Some(1)), (Some(1), Some(1))]);

        // One partition of it: the partition is named as well.
        let one = mq
            .subscribe_partition("mixed", 1, None, ConsumptionMode::Latest)
            .await
            .unwrap();
        publisher.publish(5u32).await.unwrap(); // to partition 0
        publisher.publish("six").await.unwrap(); // to partition 1
        let e = one.recv_typed::<u32>().await.unwrap_err();
        assert!(
            matches!(&e, tokio_memq::RecvTypedError::Decode(d) if (d.offset(), d.partition()) == (Some(2), Some(1))),
            "{e:?}"
        );
        // A plain topic has no partition to name.
        let plain = mq.subscriber("plain").await.unwrap();
        mq.publisher("plain").publish("seven").await.unwrap();
        let e = plain.recv().await.unwrap().deserialize::<u32>().unwrap_err();
        assert_eq!((e.offset(), e.partition()), (Some(0), None));
        assert!(e.to_string().starts_with("message at offset 0: "), "{e}");
    })
    .await
    .unwrap();
}
