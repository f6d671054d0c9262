//! Stats per partition and for the whole topic: correct, and plain
//! synchronous calls that work on a current-thread runtime (also while a
//! publisher is parked) and with no runtime at all. Closing.

mod common;

use std::time::Duration;

use common::bounded;
use memq_core::{Overflow, StartFrom, TopicConfig};
use memq_partition::{PartitionedTopic, Routing};

#[test]
fn stats_without_a_runtime() {
    let topic = PartitionedTopic::new(TopicConfig::default().max_messages(Some(3)), 2).unwrap();
    for i in 0..10u32 {
        topic.try_publish(None, i).unwrap(); // 5 per partition, 2 evicted each
    }
    let s = topic.stats();
    assert_eq!(
        (s.published, s.depth, s.evicted, s.expired, s.subscribers),
        (10, 6, 4, 0, 0)
    );
    let p0 = topic.partition_stats(0).unwrap();
    assert_eq!(
        (p0.low, p0.high, p0.depth, p0.published, p0.evicted),
        (2, 5, 3, 5, 2)
    );
    assert_eq!(s.partitions, topic.all_partition_stats());
}

#[tokio::test(flavor = "current_thread")]
async fn stats_on_a_current_thread_runtime() {
    let config = TopicConfig::default().max_bytes(Some(10));
    let topic = PartitionedTopic::with_weigher(config, 3, |v: &Vec<u8>| v.len()).unwrap();
    topic.set_routing(Routing::Hash);
    let _all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let _one = topic.subscribe_partition(2, StartFrom::Latest).unwrap();
    // "foobar" → 0 of 3, "a-little-bit-long-string" → 2 of 3 (Kafka's hash).
    topic.publish(Some(b"foobar"), vec![0; 4]).await.unwrap();
    topic.publish(Some(b"foobar"), vec![0; 4]).await.unwrap();
    topic.publish(Some(b"foobar"), vec![0; 4]).await.unwrap(); // evicts one: 8 bytes left
    topic
        .publish(Some(b"a-little-bit-long-string"), vec![0; 7])
        .await
        .unwrap();

    let s = topic.stats();
    assert_eq!(
        (s.published, s.depth, s.bytes, s.evicted, s.subscribers),
        (4, 3, 15, 1, 4)
    );
    let per: Vec<(u64, usize, usize)> = s
        .partitions
        .iter()
        .map(|p| (p.published, p.bytes, p.subscribers))
        .collect();
    assert_eq!(per, vec![(3, 8, 1), (0, 0, 1), (1, 7, 2)]);
    drop(_all);
    assert_eq!(topic.stats().subscribers, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn stats_answer_while_a_publisher_is_parked() {
    let config = TopicConfig::default()
        .max_messages(Some(1))
        .overflow(Overflow::Block);
    let topic = PartitionedTopic::new(config, 2).unwrap();
    topic.set_routing(Routing::Fixed(1));
    let mut reader = topic.subscribe_partition(1, StartFrom::Earliest).unwrap();
    topic.try_publish(None, 1u8).unwrap();
    bounded(async {
        let publish = topic.publish(None, 2);
        let check = async {
            tokio::task::yield_now().await; // the publisher is parked now
            let s = topic.stats();
            assert_eq!((s.published, s.depth), (1, 1));
            assert_eq!(topic.partition_stats(1).unwrap().subscribers, 1);
            reader.recv().await.unwrap();
        };
        let (r, ()) = tokio::join!(publish, check);
        assert_eq!(r.unwrap(), (1, 1));
    })
    .await;
    assert_eq!(topic.stats().published, 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn ttl_expiry_is_counted_per_partition() {
    let config = TopicConfig::default().ttl(Some(Duration::from_secs(5)));
    let topic = PartitionedTopic::new(config, 2).unwrap();
    for i in 0..4u8 {
        topic.try_publish(None, i).unwrap();
    }
    tokio::time::advance(Duration::from_secs(6)).await;
    let s = topic.stats();
    assert_eq!((s.expired, s.depth), (4, 0));
    assert_eq!(
        s.partitions.iter().map(|p| p.expired).collect::<Vec<_>>(),
        vec![2, 2]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn close_closes_every_partition_and_dropping_the_last_handle_too() {
    let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
    let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    topic.try_publish(None, 'a').unwrap();
    let clone = topic.clone();
    drop(topic);
    assert!(!clone.is_closed(), "a clone keeps it open");
    assert_eq!(all.recv().await.unwrap().1.value, 'a');
    drop(clone);
    assert!(all.is_closed());
    assert_eq!(all.recv().await.unwrap_err(), memq_partition::RecvError::Closed);
}
