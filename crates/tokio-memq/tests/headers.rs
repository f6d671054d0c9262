//! Record headers through every path: plain and partitioned topics,
//! serialized and native payloads, groups with redelivery, dead letters
//! (which add their origin), lent batches, republishing, byte budgets.

use memq_testkit::within;
use std::time::Duration;

use tokio_memq::{
    dead_letter_headers as dl, ConsumptionMode, Headers, MessageQueue, PartitionRouting, SerializationConfig,
    SerializationFormat, TopicMessage, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(30);

fn pairs(h: &Headers) -> Vec<(String, Vec<u8>)> {
    h.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

fn trace() -> Headers {
    let mut h = Headers::new();
    h.insert("trace-id", "4bf92f35")
        .insert("hop", "gateway")
        .insert("hop", "billing")
        .insert("bin", vec![0u8, 0xFF]);
    h
}

#[tokio::test]
async fn every_publish_form_carries_headers_unchanged_and_plain_messages_have_none() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("t").await.unwrap();
    let publisher = mq.publisher("t");
    publisher.publish_with_headers(1u32, trace()).await.unwrap();
    publisher
        .publish_with_key_and_headers("k", 2u32, [("a", "1")])
        .await
        .unwrap();
    let msg = TopicMessage::new("t", 3u32).unwrap().with_headers(trace());
    assert_eq!(
        pairs(msg.headers()),
        pairs(&trace()),
        "built messages hold them too"
    );
    publisher.publish_message(msg).await.unwrap();
    publisher.publish(4u32).await.unwrap();

    let got = within(LIMIT, sub.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(pairs(got[0].headers()), pairs(&trace()), "order and repeats kept");
    assert_eq!(got[0].deserialize::<u32>().unwrap(), 1);
    assert_eq!(
        (got[1].key(), got[1].headers().get_str("a")),
        (Some("k"), Some("1"))
    );
    assert_eq!(pairs(got[2].headers()), pairs(&trace()));
    assert!(got[3].headers().is_empty());
    // Republished elsewhere: the headers go along.
    let other = mq.subscriber("copy").await.unwrap();
    mq.publisher("copy")
        .publish_message(got[0].clone())
        .await
        .unwrap();
    let copy = within(LIMIT, other.recv()).await.unwrap().unwrap();
    assert_eq!(pairs(copy.headers()), pairs(&trace()));
    assert_eq!(copy.deserialize::<u32>().unwrap(), 1);
}

#[tokio::test]
async fn serialized_payloads_and_lent_batches_carry_headers() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "s",
        SerializationFormat::MessagePack,
        SerializationConfig::Default,
        None,
    );
    let sub = mq.subscriber("s").await.unwrap();
    let publisher = mq.publisher("s");
    publisher
        .publish_with_headers(vec![1u16, 2], trace())
        .await
        .unwrap();
    publisher
        .publish_bytes("raw", SerializationFormat::Raw)
        .await
        .unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    let first = batch.get(0).unwrap();
    assert_eq!(first.deserialize::<Vec<u16>>().unwrap(), [1, 2]);
    assert_eq!(pairs(first.headers()), pairs(&trace()));
    assert!(batch.get(1).unwrap().headers().is_empty());
    let owned = first.to_message();
    assert_eq!(pairs(owned.headers()), pairs(&trace()));
    assert_eq!(owned.format, SerializationFormat::MessagePack);
}

#[tokio::test]
async fn partitioned_topics_keep_headers_on_every_subscription() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("p", PartitionRouting::Hash)
        .await
        .unwrap();
    let all = mq.subscriber("p").await.unwrap();
    let publisher = mq.publisher("p");
    let mut placed = Vec::new();
    for i in 0..6u32 {
        let key = format!("user-{i}");
        publisher
            .publish_with_key_and_headers(key.clone(), i, [("n", i.to_string())])
            .await
            .unwrap();
        placed.push(key);
    }
    let got = within(LIMIT, all.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(got.len(), 6);
    for m in &got {
        let n: u32 = m.deserialize().unwrap();
        assert_eq!(m.headers().get_str("n"), Some(n.to_string().as_str()));
        assert_eq!(m.key(), Some(placed[n as usize].as_str()));
    }
    // One partition's subscriber reads the same headers.
    let p = got[0].partition.unwrap();
    let one = mq
        .subscribe_partition("p", p, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let m = within(LIMIT, one.recv()).await.unwrap().unwrap();
    assert_eq!(m.headers().get_str("n"), got[0].headers().get_str("n"));
}

#[tokio::test(start_paused = true)]
async fn redeliveries_keep_headers_and_dead_letters_add_their_origin() {
    let mq = MessageQueue::new();
    let dead = mq.subscriber("jobs.dead-letters").await.unwrap();
    let join = || {
        mq.group("jobs", "workers")
            .manual_ack()
            .max_deliveries(2)
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let worker = join().await.unwrap();
    mq.publisher("jobs")
        .publish_with_headers("resize", trace())
        .await
        .unwrap();
    let first = within(LIMIT, worker.recv()).await.unwrap().unwrap();
    assert_eq!((first.deliveries, pairs(first.headers())), (1, pairs(&trace())));
    worker.nack(&first).unwrap();
    let again = within(LIMIT, worker.recv()).await.unwrap().unwrap();
    assert_eq!((again.deliveries, pairs(again.headers())), (2, pairs(&trace())));
    worker.nack(&again).unwrap();
    // At the limit: a dead letter at once, nothing to receive.
    assert!(within(LIMIT, worker.recv_timeout(Duration::from_millis(10)))
        .await
        .unwrap()
        .unwrap()
        .is_none());

    let letter = within(LIMIT, dead.recv()).await.unwrap().unwrap();
    assert_eq!(letter.deserialize::<String>().unwrap(), "resize");
    let h = letter.headers();
    // The original headers first, in order, then the origin.
    assert_eq!(pairs(h)[..4], pairs(&trace())[..]);
    assert_eq!(h.get_str(dl::TOPIC), Some("jobs"));
    assert_eq!(h.get_str(dl::GROUP), Some("workers"));
    assert_eq!(h.get_str(dl::OFFSET), Some("0"));
    assert_eq!(h.get_str(dl::DELIVERIES), Some("2"));
    assert_eq!(h.get_str(dl::REASON), Some("max_deliveries=2"));
    assert!(h.get(dl::PARTITION).is_none(), "a plain topic has no partition");
    assert_eq!(h.len(), 9);
    let origin = letter.dead_letter().unwrap();
    assert_eq!((origin.offset, origin.deliveries), (0, 2));
}

#[tokio::test]
async fn headers_weigh_in_a_byte_budget() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_bytes: Some(100),
        ..TopicOptions::default()
    };
    let sub = mq.subscriber_with_options("b", options).await.unwrap();
    let publisher = mq.publisher("b");
    let big = [("h", "x".repeat(51))]; // 52 bytes of header, 60 with its 8

    publisher.publish_with_headers(1u8, big.clone()).await.unwrap();
    let stats = mq.get_topic_stats("b").await.unwrap();
    assert_eq!(stats.bytes, 61, "a one-byte value and its header");
    // A second one does not fit beside it: the first is evicted.
    publisher.publish_with_headers(2u8, big).await.unwrap();
    let stats = mq.get_topic_stats("b").await.unwrap();
    assert_eq!((stats.message_count, stats.bytes, stats.evicted), (1, 61, 1));
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
        tokio_memq::RecvError::Lagged(1)
    );
}

#[tokio::test]
async fn even_empty_headers_weigh_in_a_byte_budget() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_bytes: Some(1000),
        ..TopicOptions::default()
    };
    let _sub = mq.subscriber_with_options("e", options).await.unwrap();
    let empty: Vec<(&str, &str)> = vec![("", ""); 200];
    // 200 empty headers: 1,600 bytes, more than the topic can ever hold.
    let err = mq
        .publisher("e")
        .publish_with_headers(1u8, empty)
        .await
        .unwrap_err();
    assert!(matches!(err, tokio_memq::PublishError::TooLarge(1)), "{err:?}");
}

/// Keys weigh as headers do: 1,000 messages of 10 bytes, each with a
/// 100,000-byte key, kept 100 MB under a 64 KiB budget (and `bytes`
/// said 10,000) before keys were weighed.
#[tokio::test]
async fn keys_weigh_in_a_byte_budget() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_bytes: Some(100),
        ..TopicOptions::default()
    };
    let sub = mq.subscriber_with_options("k", options).await.unwrap();
    let publisher = mq.publisher("k");
    let key = "k".repeat(50);
    publisher.publish_with_key(key.clone(), 1u8).await.unwrap();
    let stats = mq.get_topic_stats("k").await.unwrap();
    assert_eq!(stats.bytes, 51, "a one-byte value and a 50-byte key");
    // A second one does not fit beside it: the first is evicted.
    publisher.publish_with_key(key.clone(), 2u8).await.unwrap();
    let stats = mq.get_topic_stats("k").await.unwrap();
    assert_eq!((stats.message_count, stats.evicted), (1, 1));
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
        tokio_memq::RecvError::Lagged(1)
    );
    let err = publisher
        .publish_with_key("k".repeat(101), 3u8)
        .await
        .unwrap_err();
    assert!(matches!(err, tokio_memq::PublishError::TooLarge(3)), "{err:?}");
}
