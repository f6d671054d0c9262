//! 1.0.0 calls that 2.0 kept (issue 11, item 1): what each does, and its
//! errors. (1.0.0's own examples build and run in `compat/`.)

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;
use tokio_memq::{
    ConsumptionMode, Error, MessageQueue, PartitionRouting, PublishError, RecvError, SerializationFormat,
    TopicMessage, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn publish_shared_data_checks_the_topic_and_shares_the_bytes() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("frames").await.unwrap();
    let publisher = mq.publisher("frames");
    let frame = Arc::new(vec![1u8, 2, 3]);
    let at = publisher
        .publish_shared_data(Arc::new("frames".into()), frame.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    assert_eq!(at, 0);
    let err = publisher
        .publish_shared_data(
            Arc::new("frames2".into()),
            frame.clone(),
            SerializationFormat::Raw,
        )
        .await
        .unwrap_err();
    match err {
        PublishError::Unroutable(bytes) => assert_eq!(&bytes[..], [1, 2, 3], "the bytes come back"),
        other => panic!("expected Unroutable, got {other:?}"),
    }
    let got = timeout(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(got.payload_bytes(), [1, 2, 3]);
    // Nothing else was published.
    assert!(sub.try_recv_now().is_err());
    assert_eq!(mq.get_topic_stats("frames").await.unwrap().published, 1);
}

#[tokio::test]
async fn publish_with_format_overrides_the_topic_defaults() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "typed",
        SerializationFormat::MessagePack,
        Default::default(),
        None,
    );
    let sub = mq.subscriber("typed").await.unwrap();
    let publisher = mq.publisher("typed");
    publisher.publish(1u32).await.unwrap();
    publisher
        .publish_with_format(2u32, SerializationFormat::Json)
        .await
        .unwrap();
    publisher
        .publish_with_format(3u32, SerializationFormat::Native)
        .await
        .unwrap();
    publisher
        .publish_with_format(4u32, SerializationFormat::Bincode)
        .await
        .unwrap();
    let msgs = timeout(LIMIT, sub.recv_batch(4)).await.unwrap().unwrap();
    let formats: Vec<_> = msgs.iter().map(|m| m.format.clone()).collect();
    assert_eq!(
        formats,
        [
            SerializationFormat::MessagePack,
            SerializationFormat::Json,
            SerializationFormat::Native,
            SerializationFormat::Bincode
        ]
    );
    let values: Vec<u32> = msgs.iter().map(|m| m.deserialize().unwrap()).collect();
    assert_eq!(values, [1, 2, 3, 4]);
    assert_eq!(*msgs[2].native::<u32>().unwrap(), 3, "native: the value itself");
}

#[tokio::test]
async fn publish_with_format_hands_the_value_back_when_it_cannot_encode() {
    let mq = MessageQueue::new();
    let publisher = mq.publisher("t");
    let unknown = SerializationFormat::Custom("never-registered".into());
    match publisher.publish_with_format(5u8, unknown).await {
        Err(PublishError::Encode { value, .. }) => assert_eq!(value, 5),
        other => panic!("expected Encode, got {other:?}"),
    }
    // A value JSON cannot hold: a map with non-string keys.
    let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    match publisher
        .publish_with_format(map, SerializationFormat::Json)
        .await
    {
        Err(PublishError::Encode { value, .. }) => assert_eq!(value.len(), 1),
        other => panic!("expected Encode, got {other:?}"),
    }
    let stats = mq.get_topic_stats("t").await;
    assert!(stats.is_none_or(|s| s.published == 0), "nothing published");
}

#[tokio::test]
async fn messages_built_in_a_format_carry_it_and_their_key() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("m").await.unwrap();
    let publisher = mq.publisher("m");
    for format in [
        SerializationFormat::Json,
        SerializationFormat::MessagePack,
        SerializationFormat::Bincode,
        SerializationFormat::Native,
    ] {
        let msg = TopicMessage::new_with_format_and_key("m", vec![1u16, 2], format.clone(), "k").unwrap();
        assert_eq!(msg.format, format);
        assert_eq!(msg.key(), Some("k"));
        publisher.publish_message(msg).await.unwrap();
        let got = timeout(LIMIT, sub.recv()).await.unwrap().unwrap();
        assert_eq!(got.format, format);
        assert_eq!(got.key(), Some("k"));
        assert_eq!(got.deserialize::<Vec<u16>>().unwrap(), [1, 2]);
    }
    let plain = TopicMessage::new_with_format("m", "text", SerializationFormat::Json).unwrap();
    assert_eq!(plain.key(), None);
    assert_eq!(plain.deserialize::<String>().unwrap(), "text");
    let err =
        TopicMessage::new_with_format("m", 1u8, SerializationFormat::Custom("nope".into())).unwrap_err();
    assert!(matches!(err, Error::Encode(_)), "{err:?}");
}

#[tokio::test]
async fn reset_offset_goes_back_to_the_oldest_retained_message() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(3),
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("r", options).await.unwrap();
    let publisher = mq.publisher("r");
    for i in 0..5u32 {
        publisher.publish(i).await.unwrap();
    }
    // Offsets 0 and 1 were evicted: a reset lands on 2, with no lag to report.
    sub.reset_offset().await;
    let got = timeout(LIMIT, sub.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(got.iter().map(|m| m.offset()).collect::<Vec<_>>(), [2, 3, 4]);
    sub.reset_offset().await;
    assert_eq!(timeout(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 2);
    assert_eq!(sub.current_offset().await, Some(3));
}

#[tokio::test]
async fn reset_offset_moves_every_partition_and_group_members() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("p", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let all = mq.subscriber("p").await.unwrap();
    for i in 0..4u32 {
        mq.publish_to_partitioned(TopicMessage::new("p", i).unwrap())
            .await
            .unwrap();
    }
    let first = timeout(LIMIT, all.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(first.len(), 4);
    all.reset_offset().await;
    let again = timeout(LIMIT, all.recv_batch(10)).await.unwrap().unwrap();
    let mut offsets: Vec<_> = again.iter().map(|m| (m.partition, m.offset())).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, [(Some(0), 0), (Some(0), 1), (Some(1), 0), (Some(1), 1)]);

    let member = mq
        .subscriber_group("jobs".to_owned(), "g".to_owned(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    mq.publisher("jobs").publish_batch(vec![1u8, 2]).await.unwrap();
    assert_eq!(
        timeout(LIMIT, member.recv_batch(10))
            .await
            .unwrap()
            .unwrap()
            .len(),
        2
    );
    member.reset_offset().await;
    let replayed = timeout(LIMIT, member.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(replayed.iter().map(|m| m.offset()).collect::<Vec<_>>(), [0, 1]);
}

#[tokio::test]
async fn a_closed_topic_still_resets_and_then_reports_closed() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("c").await.unwrap();
    let publisher = mq.publisher("c");
    publisher.publish(1u8).await.unwrap();
    drop((mq, publisher));
    assert_eq!(timeout(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    sub.reset_offset().await;
    assert_eq!(timeout(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    assert_eq!(
        timeout(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
        RecvError::Closed
    );
}

#[tokio::test]
async fn stats_carry_1_0_field_names() {
    let mq = MessageQueue::new();
    let publisher = mq.publisher("s");
    publisher
        .publish_bytes(vec![0u8; 100], SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_bytes(vec![0u8; 28], SerializationFormat::Raw)
        .await
        .unwrap();
    let stats = mq.get_topic_stats("s").await.unwrap();
    assert_eq!(stats.total_payload_size, 128);
    assert_eq!(stats.total_payload_size, stats.bytes);

    mq.create_partitioned_topic("ps", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("ps", PartitionRouting::Fixed(2))
        .await
        .unwrap();
    let named = mq
        .subscribe_partition(
            "ps".to_owned(),
            2,
            Some("audit".to_owned()),
            ConsumptionMode::Earliest,
        )
        .await
        .unwrap();
    for i in 0..3u8 {
        mq.publish_to_partitioned(TopicMessage::new("ps", i).unwrap())
            .await
            .unwrap();
    }
    let got = timeout(LIMIT, named.recv()).await.unwrap().unwrap();
    named.commit(got.offset()).await.unwrap();
    let all = mq.get_all_partition_stats("ps").await;
    assert_eq!(all.iter().map(|s| s.partition_id).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(all.iter().all(|s| s.partition_id == s.partition));
    let two = mq.get_partition_stats("ps", 2).await.unwrap();
    assert_eq!(two.message_count, 3);
    assert_eq!(
        two.consumer_lags.get("audit"),
        Some(&2),
        "two published after the commit"
    );
    assert!(all[0].consumer_lags.values().all(|&lag| lag == 0));
}
