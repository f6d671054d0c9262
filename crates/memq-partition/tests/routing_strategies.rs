//! Construction and the non-hash routing strategies: zero partitions,
//! round-robin, random, fixed, custom routers (out of range, panicking),
//! and changing the strategy while publishers run.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{bounded, partition_contents, unbounded};
use memq_core::{StartFrom, TopicConfig};
use memq_partition::{
    ConfigError, PartitionOutOfRange, PartitionedTopic, PublishError, RouteError, Routing, SubscribeError,
};

#[test]
fn zero_partitions_is_an_error() {
    assert_eq!(
        PartitionedTopic::<u8>::new(TopicConfig::default(), 0).unwrap_err(),
        ConfigError::ZeroPartitions
    );
    assert_eq!(
        PartitionedTopic::<Vec<u8>>::with_weigher(TopicConfig::default(), 0, |v| v.len()).unwrap_err(),
        ConfigError::ZeroPartitions
    );
    // A bad per-partition config is reported as such.
    assert_eq!(
        PartitionedTopic::<u8>::new(TopicConfig::default().max_messages(Some(0)), 3).unwrap_err(),
        ConfigError::Topic(memq_core::ConfigError::ZeroCapacity)
    );
    assert_eq!(
        ConfigError::ZeroPartitions.to_string(),
        "a partitioned topic needs at least 1 partition"
    );
}

#[test]
fn out_of_range_partition_is_a_typed_error() {
    let topic = unbounded::<u8>(3);
    let oor = PartitionOutOfRange {
        partition: 3,
        partitions: 3,
    };
    assert_eq!(
        topic.subscribe_partition(3, StartFrom::Earliest).unwrap_err(),
        SubscribeError::OutOfRange(oor)
    );
    assert_eq!(topic.partition_stats(3).unwrap_err(), oor);
    assert!(topic.partition(3).is_none());
    assert_eq!(
        oor.to_string(),
        "partition 3 out of range (the topic has 3 partitions)"
    );
}

#[test]
fn round_robin_distributes_evenly_in_turn() {
    let topic = unbounded::<u32>(4);
    let parts: Vec<usize> = (0..12)
        .map(|i| topic.try_publish(Some(b"ignored"), i).unwrap().0)
        .collect();
    assert_eq!(parts, vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    // A batch continues the same turn order.
    let batch: Vec<(Option<&[u8]>, u32)> = (12..18).map(|i| (None, i)).collect();
    let receipt = topic.try_publish_batch(batch).unwrap();
    assert_eq!(receipt.shares(), &[(0, 3..5), (1, 3..5), (2, 3..4), (3, 3..4)]);
    let depths: Vec<u64> = topic.all_partition_stats().iter().map(|s| s.depth).collect();
    assert_eq!(depths, vec![5, 5, 4, 4]);
    assert_eq!(
        partition_contents(&topic, 1),
        vec![(0, 1), (1, 5), (2, 9), (3, 13), (4, 17)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_exactly_even_across_concurrent_publishers() {
    let topic = unbounded::<usize>(4);
    bounded(async {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let topic = topic.clone();
                tokio::spawn(async move {
                    for i in 0..250 {
                        topic.publish(None, t * 1000 + i).await.unwrap();
                        if i % 25 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    })
    .await;
    // The shared counter hands out 0..1000 once each: 250 per partition.
    let published: Vec<u64> = topic.all_partition_stats().iter().map(|s| s.published).collect();
    assert_eq!(published, vec![250, 250, 250, 250]);
}

#[test]
fn random_stays_in_range_and_spreads() {
    let topic = unbounded::<u32>(4);
    topic.set_routing(Routing::Random);
    let mut counts = [0u32; 4];
    for i in 0..4000 {
        counts[topic.try_publish(None, i).unwrap().0] += 1;
    }
    let batch: Vec<(Option<&[u8]>, u32)> = (0..4000).map(|i| (None, i)).collect();
    for (p, _) in topic.try_publish_batch(batch).unwrap().placements() {
        counts[p] += 1;
    }
    // 8000 draws, expected 2000 each, standard deviation ~39: a uniform
    // generator never leaves 1500..2500.
    for c in counts {
        assert!((1500..2500).contains(&c), "{counts:?}");
    }
}

#[test]
fn fixed_routes_everything_to_one_partition() {
    let topic = unbounded::<u32>(3);
    topic.set_routing(Routing::Fixed(2));
    for i in 0..3 {
        assert_eq!(topic.try_publish(Some(b"k"), i).unwrap(), (2, u64::from(i)));
    }
    let batch: Vec<(Option<&str>, u32)> = vec![(Some("a"), 3), (None, 4)];
    assert_eq!(topic.try_publish_batch(batch).unwrap().shares(), &[(2, 3..5)]);
}

#[tokio::test(flavor = "current_thread")]
async fn fixed_out_of_range_is_an_error_for_single_and_batch() {
    let topic = unbounded::<u32>(3);
    topic.set_routing(Routing::Fixed(3));
    let expected = RouteError::FixedOutOfRange(PartitionOutOfRange {
        partition: 3,
        partitions: 3,
    });

    match topic.try_publish(None, 1) {
        Err(PublishError::Route { error, value }) => assert_eq!((error, value), (expected, 1)),
        other => panic!("{other:?}"),
    }
    match topic.publish(Some(b"k"), 2).await {
        Err(PublishError::Route { error, value }) => assert_eq!((error, value), (expected, 2)),
        other => panic!("{other:?}"),
    }
    let batch = vec![(Some("a"), 3), (None, 4)];
    let err = topic.try_publish_batch(batch.clone()).unwrap_err();
    assert_eq!(
        err.cause,
        PublishError::Route {
            error: expected,
            value: ()
        }
    );
    assert!(err.published.is_empty());
    assert_eq!(err.unpublished, batch);
    let err = topic.publish_batch(batch.clone()).await.unwrap_err();
    assert_eq!(
        err.cause,
        PublishError::Route {
            error: expected,
            value: ()
        }
    );
    assert_eq!(err.unpublished, batch);
    // Even an empty batch is refused: the routing cannot work.
    assert!(topic
        .try_publish_batch(Vec::<(Option<&[u8]>, u32)>::new())
        .is_err());

    assert_eq!(topic.stats().published, 0, "nothing was published");
    assert_eq!(
        topic.try_publish(None, 9).unwrap_err().to_string(),
        "fixed routing: partition 3 out of range (the topic has 3 partitions)"
    );
}

#[test]
fn custom_router_out_of_range_is_an_error() {
    let topic = unbounded::<u32>(2);
    topic.set_routing(Routing::custom(|key: Option<&[u8]>, n: usize| {
        key.map_or(0, |k| usize::from(k[0]) % (n + 1))
    }));
    assert_eq!(topic.try_publish(Some(&[1]), 1).unwrap(), (1, 0));
    let oor = RouteError::RouterOutOfRange(PartitionOutOfRange {
        partition: 2,
        partitions: 2,
    });
    match topic.try_publish(Some(&[2]), 2) {
        Err(PublishError::Route { error, value }) => assert_eq!((error, value), (oor, 2)),
        other => panic!("{other:?}"),
    }
    // One bad key refuses the whole batch.
    let batch: Vec<(Option<Vec<u8>>, u32)> = vec![(Some(vec![0]), 3), (Some(vec![2]), 4), (None, 5)];
    let err = topic.try_publish_batch(batch.clone()).unwrap_err();
    assert_eq!(
        err.cause,
        PublishError::Route {
            error: oor,
            value: ()
        }
    );
    assert_eq!(err.unpublished, batch);
    assert_eq!(topic.stats().published, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn panicking_custom_router_leaves_the_topic_usable() {
    let topic = unbounded::<u32>(3);
    let mut reader = topic.subscribe_all(StartFrom::Earliest).unwrap();
    topic.set_routing(Routing::custom(|key: Option<&[u8]>, n: usize| {
        if key == Some(b"boom") {
            panic!("router refuses this key");
        }
        key.map_or(0, |k| k.len() % n)
    }));

    match topic.try_publish(Some(b"boom"), 1) {
        Err(PublishError::Route { error, value }) => {
            assert_eq!((error, value), (RouteError::RouterPanicked, 1))
        }
        other => panic!("{other:?}"),
    }
    match topic.publish(Some(b"boom"), 2).await {
        Err(PublishError::Route { error, value }) => {
            assert_eq!((error, value), (RouteError::RouterPanicked, 2))
        }
        other => panic!("{other:?}"),
    }
    let batch: Vec<(Option<&[u8]>, u32)> = vec![(Some(b"a"), 3), (Some(b"boom"), 4)];
    let err = topic.try_publish_batch(batch.clone()).unwrap_err();
    assert_eq!(
        err.cause,
        PublishError::Route {
            error: RouteError::RouterPanicked,
            value: ()
        }
    );
    assert_eq!(err.unpublished, batch, "the whole batch comes back");
    assert_eq!(topic.stats().published, 0);

    // Same router, other keys: still works, single and batch, sync and async.
    assert_eq!(topic.try_publish(Some(b"ab"), 5).unwrap(), (2, 0));
    assert_eq!(topic.publish(Some(b"a"), 6).await.unwrap(), (1, 0));
    let batch: Vec<(Option<&[u8]>, u32)> = vec![(Some(b"abc"), 7), (None, 8)];
    assert_eq!(topic.publish_batch(batch).await.unwrap().shares(), &[(0, 0..2)]);
    // The strategy can be changed, and readers are unaffected.
    topic.set_routing(Routing::RoundRobin);
    topic.try_publish(None, 9).unwrap();
    let mut got: Vec<u32> = Vec::new();
    while let Ok((_, m)) = reader.try_recv() {
        got.push(m.value);
    }
    got.sort_unstable();
    assert_eq!(got, vec![5, 6, 7, 8, 9]);
    assert_eq!(topic.stats().published, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_routing_while_publishing_is_safe() {
    let topic = unbounded::<u32>(4);
    let stop = Arc::new(AtomicBool::new(false));
    bounded(async {
        let switcher = {
            let topic = topic.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let strategies = [
                    Routing::Hash,
                    Routing::Random,
                    Routing::Fixed(1),
                    Routing::custom(|_: Option<&[u8]>, n: usize| n - 1),
                    Routing::RoundRobin,
                ];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    topic.set_routing(strategies[i % strategies.len()].clone());
                    i += 1;
                    tokio::task::yield_now().await;
                }
            })
        };
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let topic = topic.clone();
                tokio::spawn(async move {
                    for i in 0..2000u32 {
                        let key = i.to_be_bytes();
                        let (p, _) = topic.publish(Some(&key), i).await.unwrap();
                        assert!(p < 4);
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for p in publishers {
            p.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        switcher.await.unwrap();
    })
    .await;
    assert_eq!(topic.stats().published, 4000);
}
