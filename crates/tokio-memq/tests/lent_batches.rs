//! `recv_batch_lent`: the same messages, in the same order, with the same
//! metadata as `recv_batch`, for every kind of subscriber; errors and
//! cancellation as `recv_batch`; acks from a lent message.

use memq_testkit::within;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::timeout;
use tokio_memq::{
    Bytes, ConsumptionMode, MessageQueue, PartitionRouting, RecvError, SerializationFormat, TopicMessage,
    TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(10);

/// What a test compares: everything a message says about itself.
fn summary(m: &TopicMessage) -> (u64, Option<usize>, u32, String, Option<String>, Vec<u8>) {
    (
        m.offset(),
        m.partition,
        m.deliveries,
        m.topic().to_owned(),
        m.key().map(str::to_owned),
        m.payload_bytes().to_vec(),
    )
}

#[tokio::test]
async fn a_lent_batch_holds_what_recv_batch_would_have() {
    let mq = MessageQueue::new();
    let owned = mq.subscriber("t").await.unwrap();
    let lent = mq.subscriber("t").await.unwrap();
    let publisher = mq.publisher("t");
    let payloads: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i; i as usize])).collect();
    publisher
        .publish_bytes_batch(payloads.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    publisher.publish_with_key("k1", "keyed").await.unwrap();

    let want = within(LIMIT, owned.recv_batch(100)).await.unwrap().unwrap();
    let batch = within(LIMIT, lent.recv_batch_lent(100)).await.unwrap().unwrap();
    assert_eq!(batch.len(), 51);
    assert!(!batch.is_empty());
    for (m, w) in batch.iter().zip(&want) {
        assert_eq!(m.offset(), w.offset());
        assert_eq!(m.partition(), w.partition);
        assert_eq!(m.deliveries(), 1);
        assert_eq!(m.topic(), "t");
        assert_eq!(m.key(), w.key());
        assert_eq!(m.format(), w.format);
        assert_eq!(m.payload_bytes(), w.payload_bytes());
        assert_eq!(m.bytes(), w.bytes());
        assert_eq!(m.created_at(), w.created_at);
        assert_eq!(summary(&m.to_message()), summary(w));
    }
    let last = batch.get(50).unwrap();
    assert_eq!(last.key(), Some("k1"));
    assert_eq!(last.deserialize::<String>().unwrap(), "keyed");
    assert!(batch.get(51).is_none());
    // Iterated from both ends, with an exact length.
    let mut it = batch.iter();
    assert_eq!(it.len(), 51);
    assert_eq!(it.next_back().unwrap().offset(), 50);
    assert_eq!(it.next().unwrap().offset(), 0);
    assert_eq!(it.len(), 49);
    let owned_again: Vec<_> = batch.into_messages().iter().map(summary).collect();
    assert_eq!(owned_again, want.iter().map(summary).collect::<Vec<_>>());
}

#[tokio::test]
async fn batches_are_consumed_in_order_and_capped_at_max() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("t").await.unwrap();
    let publisher = mq.publisher("t");
    publisher.publish_batch((0..10u32).collect()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let batch = within(LIMIT, sub.recv_batch_lent(3)).await.unwrap().unwrap();
        assert!((1..=3).contains(&batch.len()), "got {}", batch.len());
        for m in &batch {
            seen.push((m.offset(), m.deserialize::<u32>().unwrap()));
        }
    }
    assert_eq!(seen, (0..10u32).map(|i| (u64::from(i), i)).collect::<Vec<_>>());
    // Nothing left: the next receive waits.
    assert!(timeout(Duration::from_millis(20), sub.recv_batch_lent(3))
        .await
        .is_err());
    // A batch of at most 0 returns at once, empty.
    let empty = within(LIMIT, sub.recv_batch_lent(0)).await.unwrap().unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn native_values_are_read_in_place() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("n").await.unwrap();
    mq.publisher("n")
        .publish((7u64, "seven".to_owned()))
        .await
        .unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(8)).await.unwrap().unwrap();
    let m = batch.get(0).unwrap();
    assert_eq!(m.format(), SerializationFormat::Native);
    assert_eq!(m.payload_bytes(), b"");
    assert!(m.bytes().is_none());
    let shared = m.native::<(u64, String)>().expect("the same type, shared");
    assert_eq!(*shared, (7, "seven".to_owned()));
    assert!(m.native::<u64>().is_none());
    assert_eq!(m.deserialize::<(u64, String)>().unwrap(), (7, "seven".to_owned()));
    let err = m.deserialize::<Vec<u8>>().unwrap_err();
    assert_eq!(err.offset(), Some(0), "a decode error names the offset");
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_gets_lagged_then_the_rest() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(4),
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("l", options).await.unwrap();
    let publisher = mq.publisher("l");
    for i in 0..10u32 {
        publisher.publish(i).await.unwrap();
    }
    let err = within(LIMIT, sub.recv_batch_lent(100))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, RecvError::Lagged(6));
    let batch = within(LIMIT, sub.recv_batch_lent(100)).await.unwrap().unwrap();
    let offsets: Vec<u64> = batch.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, [6, 7, 8, 9]);
}

#[tokio::test]
async fn closing_ends_a_waiting_lent_receive() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("c").await.unwrap();
    let publisher = mq.publisher("c");
    publisher.publish(1u8).await.unwrap();
    let waiting = tokio::spawn(async move {
        let first = sub.recv_batch_lent(10).await.map(|b| b.len());
        let then = sub.recv_batch_lent(10).await.map(|b| b.len());
        (first, then)
    });
    tokio::task::yield_now().await;
    drop((mq, publisher));
    let (first, then) = within(LIMIT, waiting).await.unwrap().unwrap();
    assert_eq!(first, Ok(1));
    assert_eq!(then, Err(RecvError::Closed));
}

#[tokio::test]
async fn a_dropped_lent_receive_loses_nothing() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("d").await.unwrap();
    let publisher = mq.publisher("d");
    {
        // Polled once while empty (it parks), then dropped.
        let mut fut = pin!(sub.recv_batch_lent(10));
        let waker = std::task::Waker::noop();
        assert!(matches!(
            fut.as_mut().poll(&mut Context::from_waker(waker)),
            Poll::Pending
        ));
    }
    publisher.publish_batch(vec![1u8, 2, 3]).await.unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(batch.iter().map(|m| m.offset()).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test]
async fn partitioned_topics_label_every_message_with_its_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("p", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let all = mq.subscriber("p").await.unwrap();
    let one = mq
        .subscribe_partition("p".to_owned(), 1, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    for i in 0..9u32 {
        mq.publish_to_partitioned(TopicMessage::new("p", i).unwrap())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 9 {
        let batch = within(LIMIT, all.recv_batch_lent(4)).await.unwrap().unwrap();
        for m in &batch {
            let p = m.partition().expect("labelled");
            assert_eq!(m.to_message().partition, Some(p));
            seen.push((p, m.offset(), m.deserialize::<u32>().unwrap()));
        }
    }
    seen.sort_unstable();
    let mut want: Vec<(usize, u64, u32)> = (0..9u32)
        .map(|i| ((i % 3) as usize, u64::from(i / 3), i))
        .collect();
    want.sort_unstable();
    assert_eq!(seen, want);

    let batch = within(LIMIT, one.recv_batch_lent(10)).await.unwrap().unwrap();
    let got: Vec<_> = batch.iter().map(|m| (m.partition(), m.offset())).collect();
    assert_eq!(got, [(Some(1), 0), (Some(1), 1), (Some(1), 2)]);
}

#[tokio::test]
async fn group_members_ack_lent_messages_and_unacked_ones_come_back() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("jobs", "workers")
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let worker = join().await.unwrap();
    mq.publisher("jobs")
        .publish_batch((0..6u32).collect())
        .await
        .unwrap();
    let batch = within(LIMIT, worker.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(batch.len(), 6);
    for m in batch.iter().filter(|m| m.offset() % 2 == 0) {
        assert_eq!(m.deliveries(), 1);
        m.ack().unwrap();
    }
    // Acked twice: not pending any more.
    assert!(batch.get(0).unwrap().ack().is_err());
    let next = join().await.unwrap();
    drop(batch);
    drop(worker);

    // The unacknowledged odd ones go to the other member, delivered again.
    let batch = within(LIMIT, next.recv_batch_lent(10)).await.unwrap().unwrap();
    let again: Vec<_> = batch.iter().map(|m| (m.offset(), m.deliveries())).collect();
    assert_eq!(again, [(1, 2), (3, 2), (5, 2)]);
    for m in &batch {
        m.ack().unwrap();
    }
}

#[tokio::test]
async fn ack_outside_a_manual_group_is_a_typed_error() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("a").await.unwrap();
    mq.publisher("a").publish(1u8).await.unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(1)).await.unwrap().unwrap();
    assert_eq!(batch.get(0).unwrap().ack(), Err(tokio_memq::AckError::AutoAck));
}

#[tokio::test]
async fn a_message_a_typed_batch_could_not_decode_comes_first_in_a_lent_batch() {
    let mq = MessageQueue::new();
    let member = mq
        .group("m", "g")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    let publisher = mq.publisher("m");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("not a number").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    // The typed batch stops before the message it cannot decode and keeps
    // it (and what follows) for the next receive.
    let values = within(LIMIT, member.recv_batch_typed::<u32>(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(values, [1]);
    let batch = within(LIMIT, member.recv_batch_lent(10)).await.unwrap().unwrap();
    let got: Vec<_> = batch
        .iter()
        .map(|m| (m.offset(), m.deliveries(), m.topic()))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].1), (1, 1));
    assert_eq!(
        batch.get(0).unwrap().deserialize::<String>().unwrap(),
        "not a number"
    );
    assert_eq!(batch.get(1).unwrap().deserialize::<u32>().unwrap(), 3);
    assert_eq!(batch.get(1).unwrap().offset(), 2);
}
