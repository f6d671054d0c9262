//! Batch publishing: contiguous in-order shares (also under concurrency),
//! the documented failure semantics, waiting shares and cancellation.

mod common;

use std::time::Duration;

use common::{bounded, partition_contents, unbounded};
use memq_core::{Overflow, StartFrom, TopicConfig};
use memq_partition::{PartitionedTopic, PublishError, Routing};

/// (publisher, batch, index in batch).
type Msg = (usize, usize, usize);

/// Routes keys "p0", "p1", … to that partition.
fn by_name() -> Routing {
    Routing::custom(|key: Option<&[u8]>, _n: usize| {
        key.and_then(|k| std::str::from_utf8(&k[1..]).ok()?.parse().ok())
            .unwrap_or(0)
    })
}

#[test]
fn shares_are_contiguous_and_in_input_order() {
    let topic = unbounded::<u32>(3);
    topic.set_routing(by_name());
    topic.try_publish(Some(b"p1"), 100).unwrap();
    let batch: Vec<(Option<&str>, u32)> = vec![
        (Some("p2"), 0),
        (Some("p1"), 1),
        (Some("p2"), 2),
        (Some("p0"), 3),
        (Some("p1"), 4),
        (Some("p2"), 5),
    ];
    let receipt = topic.try_publish_batch(batch).unwrap();
    assert_eq!(receipt.shares(), &[(0, 0..1), (1, 1..3), (2, 0..3)]);
    assert_eq!(
        receipt.placements(),
        vec![(2, 0), (1, 1), (2, 1), (0, 0), (1, 2), (2, 2)]
    );
    assert_eq!(receipt.len(), 6);
    assert_eq!(partition_contents(&topic, 1), vec![(0, 100), (1, 1), (2, 4)]);
    assert_eq!(partition_contents(&topic, 2), vec![(0, 0), (1, 2), (2, 5)]);

    let empty = topic
        .try_publish_batch(Vec::<(Option<&str>, u32)>::new())
        .unwrap();
    assert!(empty.is_empty() && empty.shares().is_empty());
}

/// Four tasks publish keyed batches while two publish single messages.
/// Each batch's share must occupy exactly its receipt's offsets, with no
/// other message inside, in input order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_stay_contiguous_under_concurrent_publishers() {
    let topic = unbounded::<Msg>(4);
    topic.set_routing(Routing::Hash);
    let receipts = bounded(async {
        let batchers: Vec<_> = (0..4)
            .map(|t| {
                let topic = topic.clone();
                tokio::spawn(async move {
                    let mut receipts = Vec::new();
                    for b in 0..100 {
                        let batch: Vec<(Option<String>, Msg)> = (0..12)
                            .map(|i| (Some(format!("key-{}", (t + i) % 9)), (t, b, i)))
                            .collect();
                        receipts.push(topic.publish_batch(batch).await.unwrap());
                        tokio::task::yield_now().await;
                    }
                    receipts
                })
            })
            .collect();
        let singles: Vec<_> = (0..2)
            .map(|t| {
                let topic = topic.clone();
                tokio::spawn(async move {
                    for i in 0..600 {
                        topic.publish(None, (100 + t, 0, i)).await.unwrap();
                        if i % 10 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for s in singles {
            s.await.unwrap();
        }
        let mut all = Vec::new();
        for b in batchers {
            all.push(b.await.unwrap());
        }
        all
    })
    .await;

    let contents: Vec<Vec<(u64, Msg)>> = (0..4).map(|p| partition_contents(&topic, p)).collect();
    for (t, batches) in receipts.iter().enumerate() {
        for (b, receipt) in batches.iter().enumerate() {
            let placements = receipt.placements();
            assert_eq!(placements.len(), 12);
            for (p, range) in receipt.shares() {
                let share: Vec<Msg> = contents[*p][range.start as usize..range.end as usize]
                    .iter()
                    .map(|(_, v)| *v)
                    .collect();
                let expected: Vec<Msg> = placements
                    .iter()
                    .enumerate()
                    .filter(|(_, (q, _))| q == p)
                    .map(|(i, _)| (t, b, i))
                    .collect();
                assert_eq!(share, expected, "batch {t}/{b} share in partition {p}");
            }
        }
    }
    assert_eq!(topic.stats().published, 4 * 100 * 12 + 2 * 600);
}

#[test]
fn failed_share_stops_the_batch_and_hands_back_the_rest() {
    let topic = unbounded::<u32>(4);
    topic.set_routing(by_name());
    topic.partition(2).unwrap().close();
    let batch: Vec<(Option<&str>, u32)> = vec![
        (Some("p3"), 0),
        (Some("p2"), 1),
        (Some("p0"), 2),
        (Some("p1"), 3),
        (Some("p2"), 4),
        (Some("p0"), 5),
    ];
    let err = topic.try_publish_batch(batch).unwrap_err();
    // Partitions 0 and 1 come before the closed partition 2: published.
    assert_eq!(err.published, vec![(0, 0..2), (1, 0..1)]);
    assert!(matches!(
        err.cause,
        PublishError::Partition {
            partition: 2,
            error: memq_core::PublishError::Closed(())
        }
    ));
    // The failed share (p2) and the untried one (p3) come back, in input order.
    assert_eq!(
        err.unpublished,
        vec![(Some("p3"), 0), (Some("p2"), 1), (Some("p2"), 4)]
    );
    // Where each of them was in the input.
    assert_eq!(err.unpublished_index, [0, 1, 4]);
    assert_eq!(partition_contents(&topic, 0), vec![(0, 2), (1, 5)]);
    assert_eq!(partition_contents(&topic, 1), vec![(0, 3)]);
    assert_eq!(topic.partition_stats(3).unwrap().published, 0);
    assert_eq!(
        err.to_string(),
        "batch publish stopped: partition 2: topic closed (2 shares published, 3 messages handed back)"
    );

    // The handed-back messages can be retried as they are.
    topic.set_routing(Routing::Fixed(3));
    let retried = topic.try_publish_batch(err.into_unpublished()).unwrap();
    assert_eq!(retried.shares(), &[(3, 0..3)]);
}

#[test]
fn share_larger_than_a_partition_is_refused_whole() {
    let topic = PartitionedTopic::new(TopicConfig::default().max_messages(Some(2)), 2).unwrap();
    topic.set_routing(by_name());
    let batch: Vec<(Option<&str>, u8)> =
        vec![(Some("p0"), 0), (Some("p1"), 1), (Some("p1"), 2), (Some("p1"), 3)];
    let err = topic.try_publish_batch(batch).unwrap_err();
    assert!(matches!(
        err.cause,
        PublishError::Partition {
            partition: 1,
            error: memq_core::PublishError::TooLarge(())
        }
    ));
    assert_eq!(err.published, vec![(0, 0..1)]);
    assert_eq!(err.unpublished.len(), 3);
    assert_eq!(err.unpublished_index, [1, 2, 3]);
    assert_eq!(topic.partition_stats(1).unwrap().published, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn try_batch_stops_at_a_full_partition_and_async_batch_waits() {
    let config = TopicConfig::default()
        .max_messages(Some(2))
        .overflow(Overflow::Block);
    let topic = PartitionedTopic::new(config, 2).unwrap();
    topic.set_routing(by_name());
    let mut reader = topic.subscribe_partition(1, StartFrom::Earliest).unwrap();
    topic.try_publish(Some(b"p1"), 10).unwrap();
    topic.try_publish(Some(b"p1"), 11).unwrap(); // partition 1 is full

    let batch: Vec<(Option<&str>, u8)> = vec![(Some("p1"), 1), (Some("p0"), 0)];
    let err = topic.try_publish_batch(batch.clone()).unwrap_err();
    assert!(matches!(
        err.cause,
        PublishError::Partition {
            partition: 1,
            error: memq_core::PublishError::Full(())
        }
    ));
    assert_eq!(err.published, vec![(0, 0..1)]);
    assert_eq!(err.unpublished, vec![(Some("p1"), 1)]);

    // The async batch waits for partition 1 and completes once the reader
    // moves on.
    let receipt = bounded(async {
        let publish = topic.publish_batch(vec![(Some("p1"), 2u8), (Some("p1"), 3)]);
        let read = async {
            tokio::task::yield_now().await;
            assert_eq!(reader.recv().await.unwrap().value, 10);
            assert_eq!(reader.recv().await.unwrap().value, 11);
        };
        let (receipt, ()) = tokio::join!(publish, read);
        receipt
    })
    .await
    .unwrap();
    assert_eq!(receipt.shares(), &[(1, 2..4)]);
    assert_eq!(partition_contents(&topic, 1), vec![(2, 2), (3, 3)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelled_batch_reports_what_was_published() {
    let config = TopicConfig::default()
        .max_messages(Some(1))
        .overflow(Overflow::Block);
    let topic = PartitionedTopic::new(config, 3).unwrap();
    topic.set_routing(by_name());
    let _reader = topic.subscribe_partition(1, StartFrom::Earliest).unwrap();
    topic.try_publish(Some(b"p1"), 0).unwrap(); // partition 1 is full

    let batch: Vec<(Option<&str>, u8)> = vec![(Some("p2"), 1), (Some("p1"), 2), (Some("p0"), 3)];
    let mut publish = topic.publish_batch(batch);
    assert!(tokio::time::timeout(Duration::from_secs(1), &mut publish)
        .await
        .is_err());
    assert_eq!(publish.published(), &[(0, 0..1)]);
    assert_eq!(publish.take_unpublished(), vec![(Some("p2"), 1), (Some("p1"), 2)]);
    drop(publish);
    assert_eq!(partition_contents(&topic, 0), vec![(0, 3)]);
    assert_eq!(topic.partition_stats(1).unwrap().published, 1);
    assert_eq!(topic.partition_stats(2).unwrap().published, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn close_fails_publishes_with_the_message_back() {
    let topic = unbounded::<String>(2);
    topic.close();
    match topic.publish(Some(b"k"), "kept".to_string()).await {
        Err(e) => {
            assert_eq!(e.partition(), Some(0));
            assert_eq!(e.to_string(), "partition 0: topic closed");
            assert_eq!(e.into_inner(), "kept");
        }
        Ok(r) => panic!("{r:?}"),
    }
    let err = topic
        .publish_batch(vec![(None::<&[u8]>, "a".to_string()), (None, "b".to_string())])
        .await
        .unwrap_err();
    assert!(err.published.is_empty());
    assert_eq!(err.unpublished.len(), 2);
}
