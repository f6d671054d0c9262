//! 1.0.0 calls that 2.0 kept (issue 11, item 1): what each does, and its
//! errors. (1.0.0's own examples build and run in `compat/`.)

use memq_testkit::within;
use std::sync::Arc;
use std::time::Duration;

use tokio_memq::{
    ConsumptionMode, Error, MessageQueue, PartitionRouting, PublishError, RecvError, SerializationFormat,
    TopicError, TopicMessage, TopicOptions,
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
    let got = within(LIMIT, sub.recv()).await.unwrap().unwrap();
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
    let msgs = within(LIMIT, sub.recv_batch(4)).await.unwrap().unwrap();
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
        let got = within(LIMIT, sub.recv()).await.unwrap().unwrap();
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
    let got = within(LIMIT, sub.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(got.iter().map(|m| m.offset()).collect::<Vec<_>>(), [2, 3, 4]);
    sub.reset_offset().await;
    assert_eq!(within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 2);
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
    let first = within(LIMIT, all.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(first.len(), 4);
    all.reset_offset().await;
    let again = within(LIMIT, all.recv_batch(10)).await.unwrap().unwrap();
    let mut offsets: Vec<_> = again.iter().map(|m| (m.partition, m.offset())).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, [(Some(0), 0), (Some(0), 1), (Some(1), 0), (Some(1), 1)]);

    let member = mq
        .subscriber_group("jobs".to_owned(), "g".to_owned(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    mq.publisher("jobs").publish_batch(vec![1u8, 2]).await.unwrap();
    assert_eq!(
        within(LIMIT, member.recv_batch(10)).await.unwrap().unwrap().len(),
        2
    );
    member.reset_offset().await;
    let replayed = within(LIMIT, member.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(replayed.iter().map(|m| m.offset()).collect::<Vec<_>>(), [0, 1]);
}

#[tokio::test]
async fn a_closed_topic_still_resets_and_then_reports_closed() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("c").await.unwrap();
    let publisher = mq.publisher("c");
    publisher.publish(1u8).await.unwrap();
    drop((mq, publisher));
    assert_eq!(within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    sub.reset_offset().await;
    assert_eq!(within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
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
    let got = within(LIMIT, named.recv()).await.unwrap().unwrap();
    named.commit(got.offset()).await.unwrap();
    let all = mq.get_all_partition_stats("ps").await;
    assert_eq!(all.iter().map(|s| s.partition_id).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(all.iter().all(|s| s.partition_id == s.partition));
    // Summed over partitions, offsets say nothing: 0, as documented.
    let summed = mq.get_topic_stats("ps").await.unwrap();
    assert_eq!(
        (summed.published, summed.low_offset, summed.next_offset),
        (3, 0, 0)
    );
    let two = mq.get_partition_stats("ps", 2).await.unwrap();
    assert_eq!(two.message_count, 3);
    assert_eq!(
        two.consumer_lags.get("audit"),
        Some(&2),
        "two published after the commit"
    );
    assert!(all[0].consumer_lags.values().all(|&lag| lag == 0));
}

#[tokio::test]
async fn text_and_byte_receives() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("text").await.unwrap();
    let publisher = mq.publisher("text");
    assert_eq!(
        sub.try_recv_string().await.unwrap_err(),
        tokio_memq::TryRecvError::Empty
    );
    assert_eq!(
        sub.try_recv_bytes().await.unwrap_err(),
        tokio_memq::TryRecvError::Empty
    );
    publisher.publish_string("héllo".to_string()).await.unwrap();
    publisher
        .publish_bytes(vec![0xff, b'a'], SerializationFormat::Raw)
        .await
        .unwrap();
    publisher.publish_serialized("[1,2]".to_string()).await.unwrap();
    publisher.publish(7u8).await.unwrap();
    assert_eq!(within(LIMIT, sub.recv_string()).await.unwrap().unwrap(), "héllo");
    assert_eq!(
        sub.try_recv_string().await.unwrap(),
        "\u{fffd}a",
        "invalid UTF-8 replaced"
    );
    assert_eq!(within(LIMIT, sub.recv_bytes()).await.unwrap().unwrap(), b"[1,2]");
    assert_eq!(
        sub.try_recv_bytes().await.unwrap(),
        b"",
        "a native value has no bytes"
    );
}

#[tokio::test]
async fn formats_are_guessed_or_chosen() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("f").await.unwrap();
    let publisher = mq.publisher("f");
    publisher
        .publish_serialized(r#" {"a": 1}"#.to_string())
        .await
        .unwrap();
    publisher.publish_string("plain".to_string()).await.unwrap();
    publisher.publish_bincode(300u16).await.unwrap();
    let range = publisher
        .publish_batch_with_format(vec![1u8, 2, 3], SerializationFormat::MessagePack)
        .await
        .unwrap();
    assert_eq!(range, 3..6);
    let (json, format) = within(LIMIT, sub.recv_with_format_info()).await.unwrap().unwrap();
    assert_eq!(format, SerializationFormat::Json);
    assert_eq!(json.deserialize::<serde_json::Value>().unwrap()["a"], 1);
    let plain = within(LIMIT, sub.recv_metadata()).await.unwrap().unwrap();
    assert_eq!((plain.offset, plain.payload_size), (1, 5));
    assert_eq!(
        plain.format,
        SerializationFormat::Bincode,
        "1.0.0's guess for text that is not JSON"
    );
    assert_eq!(&*plain.topic, "f");
    assert_eq!(
        within(LIMIT, sub.recv_bincode::<u16>()).await.unwrap().unwrap(),
        300
    );
    let batch = within(LIMIT, sub.recv_batch(3)).await.unwrap().unwrap();
    assert!(batch.iter().all(|m| m.format == SerializationFormat::MessagePack));
    assert_eq!(
        batch
            .iter()
            .map(|m| m.deserialize::<u8>().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );

    match publisher
        .publish_batch_with_format(vec![1u8, 2], SerializationFormat::Custom("unknown".into()))
        .await
    {
        Err(PublishError::Encode { value, .. }) => assert_eq!(value, [1, 2], "every value back"),
        other => panic!("expected Encode, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_receives_in_a_given_format() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("g").await.unwrap();
    let publisher = mq.publisher("g");
    // Bare JSON, published as raw bytes: read as JSON on request.
    publisher
        .publish_bytes("[4,5]", SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_bytes("[6]", SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_bytes("nope", SerializationFormat::Raw)
        .await
        .unwrap();
    let v: Vec<u8> = within(LIMIT, sub.recv_with_format(SerializationFormat::Json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, [4, 5]);
    let v: Vec<u8> = sub.try_recv_with_format(SerializationFormat::Json).await.unwrap();
    assert_eq!(v, [6]);
    let err = sub
        .try_recv_with_format::<Vec<u8>>(SerializationFormat::Json)
        .await
        .unwrap_err();
    match err {
        Error::Decode(d) => assert_eq!(d.offset(), Some(2)),
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(matches!(sub.try_recv_typed::<u8>().await, Err(Error::TryRecv(_))));
    publisher.publish(9u8).await.unwrap();
    assert_eq!(sub.try_recv_typed::<u8>().await.unwrap(), 9);
}

#[tokio::test]
async fn recv_from_offset_and_recv_filter() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("o").await.unwrap();
    let publisher = mq.publisher("o");
    publisher.publish_batch((0..6u32).collect()).await.unwrap();
    let third = within(LIMIT, sub.recv_from_offset(3)).await.unwrap().unwrap();
    assert_eq!(third.offset(), 3);
    assert!(matches!(sub.recv_from_offset(99).await, Err(Error::Seek(_))));
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(),
        4,
        "a failed seek moved nothing"
    );
    let first_even = within(LIMIT, sub.recv_from_offset(0)).await.unwrap().unwrap();
    assert_eq!(first_even.offset(), 0);
    let five = within(LIMIT, sub.recv_filter(|m| m.deserialize::<u32>().unwrap() == 5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(five.offset(), 5);
    assert!(sub.try_recv_now().is_err(), "1 to 4 were consumed on the way");
}

#[tokio::test]
async fn message_constructors_and_accessors_of_1_0() {
    let shared = Arc::new(b"{\"x\":1}".to_vec());
    let topic = Arc::new("t".to_string());
    for msg in [
        TopicMessage::from_shared_bytes("t", shared.clone(), SerializationFormat::Json),
        TopicMessage::from_shared_data(topic.clone(), shared.clone(), SerializationFormat::Json),
        TopicMessage::from_shared_bytes_topic(topic.clone(), shared.to_vec(), SerializationFormat::Json),
        TopicMessage::from_shared_serialized_topic(topic.clone(), "{\"x\":1}".to_string()),
        TopicMessage::from_serialized("t", "{\"x\":1}".to_string()),
        TopicMessage::new_shared_topic(
            topic.clone(),
            serde_json::json!({"x": 1}),
            SerializationFormat::Json,
        )
        .unwrap(),
    ] {
        assert_eq!(msg.topic(), "t");
        assert_eq!(msg.format, SerializationFormat::Json);
        assert_eq!(msg.deserialize::<serde_json::Value>().unwrap()["x"], 1);
        assert_eq!(msg.payload(), msg.payload_str());
    }
    let bin = TopicMessage::from_bincode("t", vec![1, 0, 0, 0]);
    assert_eq!(bin.format, SerializationFormat::Bincode);
    assert_eq!(bin.deserialize::<u32>().unwrap(), 1);
    assert!(!bin.is_expired(Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(5));
    assert!(bin.is_expired(Duration::from_millis(1)), "5 ms old, 1 ms TTL");
    let meta = bin.metadata();
    assert_eq!(
        (meta.offset, meta.payload_size, meta.format),
        (0, 4, SerializationFormat::Bincode)
    );
    // Cut on a character boundary, never inside one.
    let text = TopicMessage::from_bytes("t", "añb", SerializationFormat::Raw);
    assert_eq!(text.display_payload(2), "a... (len=4 fmt=raw)");
    assert_eq!(text.display_payload(10), "añb (len=4 fmt=raw)");
    assert_eq!(text.display_payload(0), "... (len=4 fmt=raw)");
}

#[tokio::test]
async fn routing_compares_like_1_0() {
    assert_eq!(PartitionRouting::Hash, PartitionRouting::Hash);
    assert_eq!(PartitionRouting::Fixed(2), PartitionRouting::Fixed(2));
    assert_ne!(PartitionRouting::Fixed(2), PartitionRouting::Fixed(3));
    assert_ne!(PartitionRouting::RoundRobin, PartitionRouting::Random);
    let f: tokio_memq::RouterFn = Arc::new(|_, n| n - 1);
    let g: tokio_memq::RouterFn = Arc::new(|_, n| n - 1);
    assert_eq!(
        PartitionRouting::Custom(f.clone()),
        PartitionRouting::Custom(f.clone())
    );
    assert_ne!(
        PartitionRouting::Custom(f),
        PartitionRouting::Custom(g),
        "different functions"
    );
}

/// Generic code over the 1.0.0 traits.
async fn publish_through_traits<P>(publisher: &P) -> Result<u64, P::Error>
where
    P: tokio_memq::AsyncMessagePublisher + tokio_memq::MessagePublisher,
{
    assert_eq!(tokio_memq::MessagePublisher::topic(publisher), "generic");
    publisher
        .publish_bytes(vec![1u8, 2], SerializationFormat::Raw)
        .await?;
    publisher.publish_serialized("[3]".to_string()).await
}

async fn rewind<S: tokio_memq::MessageSubscriber>(sub: &S) {
    sub.reset_offset().await;
}

#[tokio::test]
async fn the_traits_carry_1_0_methods() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("generic").await.unwrap();
    let publisher = mq.publisher("generic");
    assert_eq!(publish_through_traits(&publisher).await.unwrap(), 1);
    assert_eq!(within(LIMIT, sub.recv_batch(2)).await.unwrap().unwrap().len(), 2);
    rewind(&sub).await;
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap().payload_bytes(),
        [1, 2]
    );
}

#[tokio::test]
async fn options_asking_for_partitions_make_a_partitioned_topic_or_fail() {
    let mq = MessageQueue::new();
    let three = TopicOptions {
        partitions: Some(3),
        ..Default::default()
    };
    mq.create_topic("p3", three.clone()).await.unwrap();
    assert_eq!(mq.get_all_partition_stats("p3").await.len(), 3);
    assert_eq!(mq.list_partitioned_topics().await, ["p3"]);
    let sub = mq.subscriber_with_options("p3", three.clone()).await.unwrap();
    assert_eq!(sub.partitions(), 3);

    // A subscriber's options create the topic the same way.
    let two = TopicOptions {
        partitions: Some(2),
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("p2", two.clone()).await.unwrap();
    assert_eq!(sub.partitions(), 2);
    assert_eq!(mq.get_all_partition_stats("p2").await.len(), 2);

    // Another count, zero partitions, or a plain topic already there: errors.
    assert!(mq.subscriber_with_options("p3", two.clone()).await.is_err());
    let zero = TopicOptions {
        partitions: Some(0),
        ..Default::default()
    };
    assert!(mq.create_topic("p0", zero).await.is_err());
    mq.create_topic("plain", TopicOptions::default()).await.unwrap();
    assert!(mq.create_topic("plain", two).await.is_err());
    assert!(mq.get_all_partition_stats("plain").await.is_empty());
}

#[tokio::test]
async fn errors_report_real_values_and_their_own_kind() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("e").await.unwrap();
    mq.publisher("e").publish(1u8).await.unwrap();
    // A partition this subscriber does not read: said so, no made-up offsets.
    assert_eq!(
        sub.commit_partition(2, 0).await,
        Err(tokio_memq::CommitError::NoSuchPartition {
            partition: 2,
            partitions: 1
        })
    );
    assert_eq!(
        sub.commit(4).await,
        Err(tokio_memq::CommitError::NotPublished { offset: 4, high: 1 })
    );
    // A group member's seek outside the window names the real window.
    let member = mq
        .subscriber_group("e".to_owned(), "g".to_owned(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    let err = member.seek(9).await.unwrap_err();
    assert_eq!((err.requested, err.low, err.high), (9, 0, 1));
    // Partitioned operations on a plain topic have their own error.
    assert!(matches!(mq.get_all_partition_stats("e").await.as_slice(), []));
    assert!(matches!(
        mq.subscribe_partition("e".to_owned(), 0, None, ConsumptionMode::Earliest)
            .await,
        Err(tokio_memq::TopicError::NotPartitioned { .. })
    ));
}

#[tokio::test]
async fn decode_and_encode_errors_keep_their_causes() {
    use std::error::Error as _;
    let mq = MessageQueue::new();
    let sub = mq.subscriber("j").await.unwrap();
    let publisher = mq.publisher("j");
    publisher
        .publish_with_format("not a number", SerializationFormat::Json)
        .await
        .unwrap();
    let err = within(LIMIT, sub.recv_typed::<u32>()).await.unwrap().unwrap_err();
    let codec = err
        .source()
        .and_then(|e| e.downcast_ref::<tokio_memq::CodecError>())
        .expect("the codec's error is the source");
    assert_eq!(codec.kind(), tokio_memq::CodecErrorKind::Deserialize);
    let serde = codec.source().expect("and the serializer's error is its source");
    assert!(serde.downcast_ref::<serde_json::Error>().is_some(), "{serde:?}");

    let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let Err(PublishError::Encode { error, .. }) = publisher
        .publish_with_format(map, SerializationFormat::Json)
        .await
    else {
        panic!("a map with tuple keys is not JSON");
    };
    let codec = error
        .source()
        .and_then(|e| e.downcast_ref::<tokio_memq::CodecError>())
        .expect("the codec's error is the source");
    assert_eq!(codec.kind(), error.kind());
    assert!(codec
        .source()
        .is_some_and(|e| e.downcast_ref::<serde_json::Error>().is_some()));
}

#[tokio::test]
async fn positions_of_every_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("pos", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("pos", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let all = mq.subscriber("pos").await.unwrap();
    let one = mq
        .subscribe_partition("pos".to_owned(), 2, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    for i in 0..5u8 {
        mq.publish_to_partitioned(TopicMessage::new("pos", i).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(all.positions(), [(0, 0), (1, 0), (2, 0)]);
    all.seek_partition(1, 1).await.unwrap();
    all.seek_partition(0, 2).await.unwrap();
    assert_eq!(all.positions(), [(0, 2), (1, 1), (2, 0)]);
    assert_eq!(one.positions(), [(2, 0)]);
    within(LIMIT, one.recv()).await.unwrap().unwrap();
    assert_eq!(one.positions(), [(2, 1)]);

    let plain = mq.subscriber("plain-pos").await.unwrap();
    mq.publisher("plain-pos").publish(1u8).await.unwrap();
    within(LIMIT, plain.recv()).await.unwrap().unwrap();
    assert_eq!(plain.positions(), [(0, 1)]);
}

#[tokio::test(start_paused = true)]
async fn nack_and_keep_alive_in_a_manual_group() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("work", "w")
            .manual_ack()
            .ack_timeout(Duration::from_millis(100))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let a = join().await.unwrap();
    let b = join().await.unwrap();
    mq.publisher("work").publish_batch(vec![1u8, 2]).await.unwrap();
    let first = within(LIMIT, a.recv()).await.unwrap().unwrap();
    a.nack(&first).unwrap();
    assert_eq!(
        a.nack(&first),
        Err(tokio_memq::AckError::NotOwned {
            partition: 0,
            offset: 0
        })
    );
    let again = within(LIMIT, b.recv()).await.unwrap().unwrap();
    assert_eq!(
        (again.offset(), again.deliveries),
        (0, 2),
        "redelivered at once, counted"
    );
    b.ack(&again).unwrap();

    // Long work on a lent message: keep_alive holds off the timeout.
    let batch = within(LIMIT, a.recv_batch_lent(1)).await.unwrap().unwrap();
    let m = batch.get(0).unwrap();
    assert_eq!(m.offset(), 1);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        a.keep_alive();
    }
    assert!(b.try_recv_now().is_err(), "still A's after 240 ms");
    m.nack().unwrap();
    let redelivered = within(LIMIT, b.recv()).await.unwrap().unwrap();
    assert_eq!((redelivered.offset(), redelivered.deliveries), (1, 2));
    b.ack(&redelivered).unwrap();

    // Outside a manual group there is nothing to give back.
    let plain = mq.subscriber("work").await.unwrap();
    plain.keep_alive();
    assert_eq!(plain.nack(&again), Err(tokio_memq::AckError::AutoAck));
}

#[tokio::test(start_paused = true)]
async fn typed_receives_can_be_acknowledged() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("tq", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("tq", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    let join = || {
        mq.group("tq", "g")
            .manual_ack()
            .ack_timeout(Duration::from_millis(100))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let a = join().await.unwrap();
    for v in [5u32, 6] {
        mq.publish_to_partitioned(TopicMessage::new("tq", v).unwrap())
            .await
            .unwrap();
    }
    let five = within(LIMIT, a.recv_typed_message::<u32>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (five.value, five.partition, five.offset, five.deliveries),
        (5, Some(1), 0, 1)
    );
    a.ack(&five).unwrap();
    let six = within(LIMIT, a.recv_typed_message::<u32>())
        .await
        .unwrap()
        .unwrap();
    a.nack(&six).unwrap();
    let again = within(LIMIT, a.recv_typed_message::<u32>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.value, again.deliveries), (6, 2));
    a.ack(&again).unwrap();
    assert_eq!(
        a.ack(&again),
        Err(tokio_memq::AckError::NotOwned {
            partition: 1,
            offset: 1
        })
    );
    // Acknowledged: nothing comes back after the ack timeout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.try_recv_now().is_err());
    let stats = mq.get_group_stats("tq", "g").await.unwrap();
    assert_eq!(stats.committed, [None, Some(1)]);
}

/// A subscriber of every partition of a new two-partition `topic` whose
/// typed batch of `u32` got `[1]` from partition 0 and put aside offsets
/// 1 (`"x"`, which failed to decode) and 2 there.
async fn two_put_aside_in_partition_0(mq: &MessageQueue, topic: &str) -> tokio_memq::Subscriber {
    mq.create_partitioned_topic(topic, TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing(topic, PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let sub = mq.subscriber(topic).await.unwrap();
    for m in [
        TopicMessage::new(topic, 1u32),
        TopicMessage::new(topic, "x"),
        TopicMessage::new(topic, 3u32),
    ] {
        mq.publish_to_partitioned(m.unwrap()).await.unwrap();
    }
    let first = within(LIMIT, sub.recv_batch_typed::<u32>(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, [1]);
    sub
}

#[tokio::test]
async fn messages_a_typed_batch_put_aside_survive_a_failed_seek_and_count_in_positions() {
    let mq = MessageQueue::new();
    let sub = two_put_aside_in_partition_0(&mq, "st").await;
    // Offsets 1 and 2 are put aside; they are what comes next.
    assert_eq!(sub.positions(), [(0, 1), (1, 0)]);
    assert_eq!(sub.lag(), 2);
    assert!(sub.seek_partition(0, 99).await.is_err());
    let next = sub.try_recv_now().unwrap();
    assert_eq!(next.offset(), 1, "a failed seek loses nothing");
    assert_eq!(sub.try_recv_now().unwrap().offset(), 2);
}

/// A seek that succeeds drops what a typed batch put aside (it is behind
/// the new position): `seek` all of it, `seek_partition` that
/// partition's only; `lag` and `partition_offset` then leave it out. (A
/// subscriber of one cursor puts such messages back into its cursor; one
/// of every partition keeps them in its stash, allocated when first used:
/// the second half.)
#[tokio::test]
async fn a_successful_seek_drops_what_a_typed_batch_put_aside() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("plain").await.unwrap();
    let p = mq.publisher("plain");
    p.publish(1u32).await.unwrap();
    p.publish("x").await.unwrap();
    p.publish(3u32).await.unwrap();
    let first = within(LIMIT, sub.recv_batch_typed::<u32>(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, [1]);
    assert_eq!(sub.lag(), 2, "offsets 1 and 2 put aside");
    sub.seek(3).await.unwrap();
    assert_eq!(sub.lag(), 0);
    assert_eq!(sub.partition_offset(0), Some(3));
    assert!(sub.try_recv_now().is_err(), "nothing put aside is left");
    p.publish(4u32).await.unwrap();
    assert_eq!(sub.try_recv_now().unwrap().offset(), 3);

    let sub = two_put_aside_in_partition_0(&mq, "parts").await;
    mq.set_partition_routing("parts", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    mq.publish_to_partitioned(TopicMessage::new("parts", 10u32).unwrap())
        .await
        .unwrap();
    assert_eq!(sub.lag(), 3, "two put aside in partition 0, one new in 1");
    assert_eq!(sub.partition_offset(0), Some(1));
    // Partition 1's seek keeps partition 0's messages.
    sub.seek_partition(1, 0).await.unwrap();
    assert_eq!(sub.lag(), 3);
    assert_eq!(sub.partition_offset(0), Some(1));
    sub.seek_partition(0, 3).await.unwrap();
    assert_eq!(sub.lag(), 1);
    assert_eq!(sub.partition_offset(0), Some(3));
    let next = sub.try_recv_now().unwrap();
    assert_eq!((next.partition, next.offset()), (Some(1), 0));
    assert!(sub.try_recv_now().is_err());
}

#[tokio::test]
async fn native_values_convert_only_when_nothing_is_lost() {
    #[derive(serde::Serialize, Clone)]
    struct Celsius {
        degrees: f64,
    }
    #[derive(serde::Deserialize, Clone, Debug)]
    struct Fahrenheit {
        #[allow(dead_code)]
        degrees: f64,
    }
    let mq = MessageQueue::new();
    let sub = mq.subscriber("n").await.unwrap();
    let p = mq.publisher("n");
    p.publish("borrowed").await.unwrap();
    p.publish(7u32).await.unwrap();
    p.publish(u128::MAX).await.unwrap();
    p.publish(f64::NAN).await.unwrap();
    p.publish(0.1f64).await.unwrap();
    p.publish(Celsius { degrees: 21.5 }).await.unwrap();
    let keys: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    p.publish(keys).await.unwrap();
    p.publish(vec![1u8, 2]).await.unwrap();
    let m = within(LIMIT, sub.recv_batch(8)).await.unwrap().unwrap();
    let mismatch = |e: tokio_memq::DecodeError, from: &str, to: &str| {
        assert_eq!(e.kind(), tokio_memq::DecodeErrorKind::TypeMismatch);
        let text = e.to_string();
        assert!(text.contains(from) && text.contains(to), "{text}");
    };
    assert_eq!(m[0].deserialize::<String>().unwrap(), "borrowed");
    assert_eq!(m[1].deserialize::<u64>().unwrap(), 7);
    assert_eq!(m[1].deserialize::<f64>().unwrap(), 7.0);
    mismatch(m[1].deserialize::<String>().unwrap_err(), "u32", "String");
    assert_eq!(m[2].deserialize::<u128>().unwrap(), u128::MAX, "its own type");
    mismatch(m[2].deserialize::<f64>().unwrap_err(), "u128", "f64");
    mismatch(m[2].deserialize::<u64>().unwrap_err(), "u128", "u64");
    assert!(
        m[3].deserialize::<f64>().unwrap().is_nan(),
        "NaN read as itself, not null"
    );
    mismatch(m[4].deserialize::<f32>().unwrap_err(), "f64", "f32");
    mismatch(
        m[5].deserialize::<Fahrenheit>().unwrap_err(),
        "Celsius",
        "Fahrenheit",
    );
    mismatch(
        m[6].deserialize::<std::collections::HashMap<String, u8>>()
            .unwrap_err(),
        "HashMap",
        "HashMap",
    );
    assert_eq!(
        m[7].deserialize::<Vec<u32>>().unwrap(),
        [1, 2],
        "widened element by element"
    );
}

/// Reinterpretations a lossless conversion let through: a tuple read as
/// a struct of its fields' types, a `Vec` with repeats read as a set
/// (which drops them), bytes read as text; and a value nested deeper than
/// serde's derives recurse safely.
#[test]
fn native_values_do_not_convert_into_another_shape() {
    use std::collections::BTreeSet;
    use tokio_memq::{DecodeErrorKind, TopicMessage};
    #[derive(serde::Deserialize, Clone, Debug)]
    #[allow(dead_code)]
    struct Point {
        x: i32,
        y: i32,
    }
    let kind = |m: &TopicMessage, read: fn(&TopicMessage) -> Result<(), tokio_memq::DecodeError>| {
        read(m).map_err(|e| e.kind())
    };
    let pair = TopicMessage::new("t", (1i32, 2i32)).unwrap();
    assert_eq!(
        kind(&pair, |m| m.deserialize::<Point>().map(drop)),
        Err(DecodeErrorKind::TypeMismatch)
    );
    let pair = TopicMessage::new("t", (5u64, 7u32)).unwrap();
    assert_eq!(
        kind(&pair, |m| m.deserialize::<Duration>().map(drop)),
        Err(DecodeErrorKind::TypeMismatch)
    );
    let repeats = TopicMessage::new("t", vec![3u8, 1, 3]).unwrap();
    assert_eq!(
        kind(&repeats, |m| m.deserialize::<BTreeSet<u8>>().map(drop)),
        Err(DecodeErrorKind::TypeMismatch)
    );
    assert_eq!(repeats.deserialize::<Vec<u16>>().unwrap(), [3, 1, 3]);
    let bytes = TopicMessage::new("t", tokio_memq::Bytes::from_static(b"text")).unwrap();
    assert_eq!(
        kind(&bytes, |m| m.deserialize::<String>().map(drop)),
        Err(DecodeErrorKind::TypeMismatch)
    );
    let nested = |levels: usize| {
        let value = (0..levels).fold(serde_json::json!([]), |v, _| serde_json::json!([v]));
        TopicMessage::new("t", value).unwrap()
    };
    assert_eq!(
        kind(&nested(100), |m| m
            .deserialize::<Vec<serde_json::Value>>()
            .map(drop)),
        Ok(())
    );
    assert_eq!(
        kind(&nested(1_000), |m| m
            .deserialize::<Vec<serde_json::Value>>()
            .map(drop)),
        Err(DecodeErrorKind::TypeMismatch),
        "nested more than 128 levels"
    );
}

/// Vectors in vectors, any depth: dropped without recursion.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Nested(Vec<Nested>);

impl Drop for Nested {
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.0);
        while let Some(mut n) = stack.pop() {
            stack.append(&mut n.0);
        }
    }
}

fn nested(levels: usize) -> Nested {
    (0..levels).fold(Nested(Vec::new()), |inner, _| Nested(vec![inner]))
}

/// A native value nested a million levels deep is shown as
/// `[native value]` and weighed for a byte budget down to a limit: both
/// walked it to the bottom and overflowed the stack (the process aborted).
#[tokio::test]
async fn a_native_value_nested_a_million_levels_is_displayed_and_published() {
    let shallow = tokio_memq::TopicMessage::new("t", nested(3)).unwrap();
    assert_eq!(shallow.payload_str(), "[[[[]]]]");
    let deep = tokio_memq::TopicMessage::new("t", nested(1_000_000)).unwrap();
    assert_eq!(deep.payload_str(), "[native value]");

    let mq = MessageQueue::new();
    let budget = TopicOptions {
        max_bytes: Some(1 << 20),
        ..TopicOptions::default()
    };
    let sub = mq.subscriber_with_options("deep", budget).await.unwrap();
    mq.publisher("deep").publish(nested(1_000_000)).await.unwrap();
    let got = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(got.payload_str(), "[native value]");
    assert!(got.native::<Nested>().is_some());
}

#[tokio::test]
async fn batches_say_where_every_message_landed() {
    let mq = MessageQueue::new();
    let plain = mq.publisher("plain-b");
    plain.publish(0u8).await.unwrap();
    assert_eq!(
        plain.publish_batch_placed(vec![1u8, 2]).await.unwrap(),
        [(0, 1), (0, 2)]
    );

    mq.create_partitioned_topic("hb", TopicOptions::default(), 4)
        .await
        .unwrap();
    mq.set_partition_routing("hb", PartitionRouting::Hash)
        .await
        .unwrap();
    let sub = mq.subscriber("hb").await.unwrap();
    let keyed = mq.publisher("hb");
    let landed = keyed.publish_batch_placed((0..12u32).collect()).await.unwrap();
    assert_eq!(landed.len(), 12);
    // Every placement is where the message is.
    let got = within(LIMIT, sub.recv_batch(12)).await.unwrap().unwrap();
    let mut seen: Vec<(usize, u64, u32)> = got
        .iter()
        .map(|m| (m.partition.unwrap(), m.offset(), m.deserialize().unwrap()))
        .collect();
    seen.sort_unstable();
    let mut want: Vec<(usize, u64, u32)> = landed
        .iter()
        .zip(0..12u32)
        .map(|(&(p, o), v)| (p, o, v))
        .collect();
    want.sort_unstable();
    assert_eq!(seen, want);

    // Nothing published: the values come back.
    mq.close();
    match keyed.publish_batch_placed(vec![7u32, 8]).await {
        Err(PublishError::Closed(values)) => assert_eq!(values, [7, 8]),
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// `is_expired` of a received message follows Tokio's clock, as the TTL of
/// the queue does: with time paused, `advance` ages it and nothing else
/// does (it compared the system clock with a Tokio timestamp).
#[tokio::test(start_paused = true)]
async fn is_expired_follows_the_tokio_clock() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("t").await.unwrap();
    mq.publisher("t").publish(1u8).await.unwrap();
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    let built = TopicMessage::new("t", 2u8).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !msg.is_expired(Duration::from_millis(10)),
        "paused: no time passed"
    );
    assert!(!built.is_expired(Duration::from_millis(10)));
    tokio::time::advance(Duration::from_secs(10)).await;
    for m in [&msg, &built] {
        assert!(m.is_expired(Duration::from_secs(5)));
        assert!(!m.is_expired(Duration::from_secs(20)));
    }
}

/// `subscribe_partition_with_options` on an existing topic checks the
/// options as `create_partitioned_topic` does (it ignored them).
#[tokio::test]
async fn subscribe_partition_with_options_checks_an_existing_topic() {
    let mq = MessageQueue::new();
    let small = TopicOptions {
        max_messages: Some(10),
        ..TopicOptions::default()
    };
    mq.create_partitioned_topic("p", small.clone(), 3).await.unwrap();
    // Same options: subscribes, whatever partition it names.
    let sub = mq
        .subscribe_partition_with_options("p", 0, small.clone(), None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    assert_eq!(mq.get_all_partition_stats("p").await.len(), 3, "not re-created");
    // Other retention: a mismatch, not a silent subscribe.
    let big = TopicOptions {
        max_messages: Some(1000),
        ..TopicOptions::default()
    };
    let err = mq
        .subscribe_partition_with_options("p", 1, big, None, ConsumptionMode::Earliest)
        .await
        .unwrap_err();
    assert_eq!(err, TopicError::OptionsMismatch { topic: "p".into() });
    // Another count.
    let four = TopicOptions {
        partitions: Some(4),
        ..small.clone()
    };
    let err = mq
        .subscribe_partition_with_options("p", 1, four, None, ConsumptionMode::Earliest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TopicError::PartitionCount { requested: 4, .. }),
        "{err:?}"
    );
    // A plain topic of that name.
    mq.create_topic("plain", TopicOptions::default()).await.unwrap();
    let err = mq
        .subscribe_partition_with_options(
            "plain",
            0,
            TopicOptions::default(),
            None,
            ConsumptionMode::Earliest,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TopicError::NotPartitioned {
            topic: "plain".into()
        }
    );
    // Absent: created with `options.partitions`.
    let two = TopicOptions {
        partitions: Some(2),
        ..TopicOptions::default()
    };
    mq.subscribe_partition_with_options("fresh", 0, two, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    assert_eq!(mq.get_all_partition_stats("fresh").await.len(), 2);
    // The subscriber that matched still works.
    mq.publish_to_partitioned(TopicMessage::new("p", 5u8).unwrap())
        .await
        .unwrap();
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!((msg.partition, msg.deserialize::<u8>().unwrap()), (Some(0), 5));
}

/// A value the 1.0.0 publisher trait cannot serialize fails with an error
/// that says why (the codec's complaint), as the inherent `publish` does;
/// it used to say only "message could not be serialized".
#[tokio::test]
async fn the_publisher_trait_keeps_why_a_value_could_not_be_serialized() {
    use tokio_memq::{
        AsyncMessagePublisher, CompressionConfig, PipelineConfig, SerializationConfig, SerializationFormat,
    };
    let mq = MessageQueue::new();
    let bad = PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(99) },
        use_magic_header: true,
        ..PipelineConfig::default()
    };
    mq.register_topic_defaults(
        "em",
        SerializationFormat::Json,
        SerializationConfig::Default,
        Some(bad),
    );
    let publisher = mq.publisher("em");
    let inherent = publisher.publish(1u32).await.unwrap_err();
    let why = std::error::Error::source(&inherent).expect("a cause").to_string();
    let through_trait = AsyncMessagePublisher::publish(&publisher, 1u32)
        .await
        .unwrap_err();
    assert!(
        matches!(through_trait, tokio_memq::Error::Encode(_)),
        "{through_trait:?}"
    );
    let said = anyhow::Error::from(through_trait);
    assert!(format!("{said:#}").contains(&why), "{said:#} (the cause: {why})");
    assert!(why.contains("99"), "{why}");
}
