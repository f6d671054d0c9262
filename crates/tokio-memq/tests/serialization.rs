//! Serialization through the queue: README 5.6, defaults and their
//! precedence, frames, raw payloads, processors, encode errors.

use memq_testkit::within;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_memq::{
    Codec, CodecErrorKind, CompressionConfig, ConsumptionMode, DecodeErrorKind, JsonConfig,
    MessagePackConfig, MessageQueue, PipelineConfig, ProcessorPair, PublishError, SerializationConfig,
    SerializationFactory, SerializationFormat, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LogLine {
    level: String,
    text: String,
    code: u32,
}

fn line(i: u32) -> LogLine {
    LogLine {
        level: "info".into(),
        text: format!("request {i} served ✓"),
        code: 200 + i,
    }
}

#[rustfmt::skip]
fn readme_5_6() {
    // --- README 5.6, verbatim ---
    use tokio_memq::mq::{
        SerializationFactory, SerializationFormat, SerializationConfig, 
        JsonConfig, PipelineConfig, CompressionConfig
    };

    let topic = "compressed_logs";

    // Configure compression pipeline (Gzip Level 6)
    let pipeline = PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(6) },
        pre: None, 
        post: None,
        use_magic_header: true, // Auto-detect format on receive
    };

    // Register defaults for a topic
    SerializationFactory::register_topic_defaults(
        topic,
        SerializationFormat::Json,
        SerializationConfig::Json(JsonConfig { pretty: false }),
        Some(pipeline),
    );

    // Now all messages published to "compressed_logs" will be automatically
    // serialized to JSON and Gzip compressed.
    // --- end ---
}

#[tokio::test]
async fn readme_5_6_topic_defaults_serialize_and_compress() {
    readme_5_6();
    let mq = MessageQueue::new();
    let sub = mq.subscriber("compressed_logs").await.unwrap();
    let p = mq.publisher("compressed_logs");
    for i in 0..3 {
        p.publish(line(i)).await.unwrap();
    }
    for i in 0..3 {
        let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        assert_eq!(msg.format, SerializationFormat::Json);
        let bytes = msg.payload_bytes();
        assert_eq!(&bytes[..3], b"TMQ", "framed");
        assert_eq!(bytes[5], 1, "gzip compression code");
        assert_eq!(msg.deserialize::<LogLine>().unwrap(), line(i));
        // The same bytes decode from the header alone, as another process would.
        let framed = tokio_memq::Bytes::copy_from_slice(bytes);
        let other = MessageQueue::new();
        let s2 = other.subscriber("x").await.unwrap();
        other
            .publisher("x")
            .publish_bytes(framed, SerializationFormat::Json)
            .await
            .unwrap();
        assert_eq!(
            s2.recv().await.unwrap().deserialize::<LogLine>().unwrap(),
            line(i)
        );
    }
    assert!(sub
        .recv_timeout(Duration::from_millis(10))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn precedence_is_publisher_over_topic_over_native() {
    let mq = MessageQueue::new();
    let topic = "precedence_topic";
    let sub = mq.subscriber(topic).await.unwrap();
    let plain = mq.publisher(topic);
    let keyed = mq.publisher_with_key(topic, "precedence_pub");

    plain.publish(1u32).await.unwrap();
    assert_eq!(
        sub.recv().await.unwrap().format,
        SerializationFormat::Native,
        "nothing registered"
    );

    // Process-wide topic defaults apply...
    SerializationFactory::register_topic_defaults(
        topic,
        SerializationFormat::Bincode,
        SerializationConfig::Default,
        None,
    );
    plain.publish(2u32).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().format, SerializationFormat::Bincode);
    // ...unless this queue has its own.
    mq.register_topic_defaults(
        topic,
        SerializationFormat::Json,
        SerializationConfig::Default,
        None,
    );
    plain.publish(3u32).await.unwrap();
    let m = sub.recv().await.unwrap();
    assert_eq!(
        (m.format.clone(), m.deserialize::<u32>().unwrap()),
        (SerializationFormat::Json, 3)
    );

    // Publisher defaults win over topic defaults: process-wide, then the queue's.
    SerializationFactory::register_publisher_defaults(
        "precedence_pub",
        SerializationFormat::MessagePack,
        SerializationConfig::MessagePack(MessagePackConfig { struct_map: true }),
        None,
    );
    keyed.publish(4u32).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().format, SerializationFormat::MessagePack);
    mq.register_publisher_defaults(
        "precedence_pub",
        SerializationFormat::Bincode,
        SerializationConfig::Default,
        None,
    );
    keyed.publish(5u32).await.unwrap();
    let m = sub.recv().await.unwrap();
    assert_eq!(
        (m.format.clone(), m.deserialize::<u32>().unwrap()),
        (SerializationFormat::Bincode, 5)
    );

    // Another queue sees only the process-wide registrations.
    let other = MessageQueue::new();
    let s2 = other.subscriber(topic).await.unwrap();
    other.publisher(topic).publish(6u32).await.unwrap();
    assert_eq!(s2.recv().await.unwrap().format, SerializationFormat::Bincode);

    // Removing the queue's topic defaults falls back to the process-wide ones.
    mq.serialization_defaults().remove_topic_defaults(topic);
    plain.publish(7u32).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().format, SerializationFormat::Bincode);
}

#[tokio::test]
async fn typed_receives_batches_and_groups_decode_encoded_messages() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "typed",
        SerializationFormat::MessagePack,
        SerializationConfig::MessagePack(MessagePackConfig { struct_map: true }),
        Some(PipelineConfig {
            compression: CompressionConfig::Zstd { level: 3 },
            ..Default::default()
        }),
    );
    let sub = mq
        .subscriber_with_options_and_mode("typed", TopicOptions::default(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    let group = mq
        .subscriber_group("typed", "g", ConsumptionMode::Earliest)
        .await
        .unwrap();
    let offsets = mq
        .publisher("typed")
        .publish_batch((0..10).map(line).collect())
        .await
        .unwrap();
    assert_eq!(offsets, 0..10);
    assert_eq!(sub.recv_typed::<LogLine>().await.unwrap(), line(0));
    assert_eq!(
        sub.recv_batch_typed::<LogLine>(100).await.unwrap(),
        (1..10).map(line).collect::<Vec<_>>()
    );
    let mut from_group = Vec::new();
    while from_group.len() < 10 {
        from_group.extend(group.recv_batch_typed::<LogLine>(4).await.unwrap());
    }
    assert_eq!(from_group, (0..10).map(line).collect::<Vec<_>>());
    // Decoding as the wrong type is a typed error naming the offset.
    mq.publisher("typed").publish(line(99)).await.unwrap();
    let err = sub.recv_typed::<u64>().await.unwrap_err();
    match err {
        tokio_memq::RecvTypedError::Decode(e) => {
            assert_eq!(e.kind(), DecodeErrorKind::Codec(CodecErrorKind::Deserialize));
            assert_eq!(e.offset(), Some(10));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn raw_payloads_that_start_with_the_magic_are_not_misread() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("raw").await.unwrap();
    let tricky = b"TMQ\x01\x01\x00{\"not\": \"a frame\"}".to_vec();
    mq.publisher("raw")
        .publish_bytes(tricky.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    let m = sub.recv().await.unwrap();
    assert_eq!(m.format, SerializationFormat::Raw);
    assert_eq!(m.deserialize::<Vec<u8>>().unwrap(), tricky);
    assert_eq!(m.payload_bytes(), &tricky[..]);
}

#[tokio::test]
async fn processors_run_on_encode_and_in_reverse_on_decode() {
    let xor = |data: &[u8]| -> Result<Vec<u8>, tokio_memq::CodecError> {
        Ok(data.iter().map(|b| b ^ 0x5A).collect())
    };
    let pipeline = PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(1) },
        pre: Some(ProcessorPair {
            encode: Arc::new(xor),
            decode: Arc::new(xor),
        }),
        post: None,
        use_magic_header: false,
    };
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "sealed",
        SerializationFormat::Json,
        SerializationConfig::Json(JsonConfig { pretty: true }),
        Some(pipeline),
    );
    let sub = mq.subscriber("sealed").await.unwrap();
    mq.publisher("sealed").publish(line(5)).await.unwrap();
    let m = sub.recv().await.unwrap();
    assert_ne!(&m.payload_bytes()[..3], b"TMQ", "no header was asked for");
    assert_eq!(
        m.deserialize::<LogLine>().unwrap(),
        line(5),
        "the receiver uses the encoding codec"
    );
}

#[tokio::test]
async fn values_that_cannot_be_serialized_come_back() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "strict",
        SerializationFormat::Json,
        SerializationConfig::Default,
        None,
    );
    mq.create_topic("strict", TopicOptions::default()).await.unwrap();
    // JSON maps need string keys.
    let value: HashMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
    match mq.publisher("strict").publish(value.clone()).await {
        Err(err @ PublishError::Encode { .. }) => {
            // Says what failed, and the cause is its source (the codec's
            // error below it), as the kind's text says.
            assert_eq!(err.to_string(), err.kind().to_string());
            let source = std::error::Error::source(&err).expect("the encode error");
            assert!(source.to_string().contains("key"), "{source}");
            let PublishError::Encode { value: back, error } = err else {
                unreachable!()
            };
            assert_eq!(back, value);
            assert_eq!(error.kind(), CodecErrorKind::Serialize);
        }
        other => panic!("{other:?}"),
    }
    match mq.publisher("strict").publish_batch(vec![value.clone()]).await {
        Err(PublishError::Encode { value: back, .. }) => assert_eq!(back, vec![value]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        mq.get_topic_stats("strict").await.unwrap().published,
        0,
        "nothing half-published"
    );
}

#[test]
fn codecs_work_without_a_queue() {
    let codec = Codec::new(
        SerializationFormat::Bincode,
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap();
    let bytes = codec.encode(&line(1)).unwrap();
    assert_eq!(codec.decode::<LogLine>(&bytes).unwrap(), line(1));
}

/// A value whose `Serialize` panics.
#[derive(Debug, Clone)]
struct Explosive;

impl Serialize for Explosive {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("serializer bug");
    }
}

#[tokio::test]
async fn a_panicking_serializer_reaches_the_caller_and_the_queue_keeps_working() {
    use futures_core::Future as _;
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "boom",
        SerializationFormat::Json,
        SerializationConfig::Default,
        None,
    );
    let sub = mq.subscriber("boom").await.unwrap();
    let p = mq.publisher("boom");
    let publish = p.publish(Explosive);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = Box::pin(publish);
        let _ = fut.as_mut().poll(&mut cx);
    }));
    assert!(caught.is_err(), "the panic reaches the publishing caller");
    p.publish(line(1)).await.unwrap();
    assert_eq!(
        sub.recv_typed::<LogLine>().await.unwrap(),
        line(1),
        "the next message is delivered"
    );
    // Native values serialize only when read as another type: the panic
    // reaches that reader, and the message stays readable as itself.
    let native = mq.subscriber("boom-native").await.unwrap();
    mq.publisher("boom-native").publish(Explosive).await.unwrap();
    let m = native.recv().await.unwrap();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.deserialize::<String>()));
    assert!(read.is_err());
    assert!(m.native::<Explosive>().is_some());
}

struct Xor;

impl tokio_memq::ByteProcessor for Xor {
    fn process(&self, data: &[u8]) -> Result<Vec<u8>, tokio_memq::CodecError> {
        Ok(data.iter().map(|b| b ^ 0x5a).collect())
    }
}

/// Reading a message in its own format, by name, goes through the codec
/// that encoded it (compression, processors), as `deserialize` does:
/// `deserialize_with_format`, `recv_with_format` and `recv_bincode`.
/// Before, they read the bytes as a bare payload and failed.
#[tokio::test]
async fn reading_in_a_message_s_own_format_uses_its_codec() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let gzip = PipelineConfig {
            compression: tokio_memq::CompressionConfig::Gzip { level: None },
            use_magic_header: false,
            ..PipelineConfig::default()
        };
        let xor = PipelineConfig {
            pre: Some(tokio_memq::ProcessorPair {
                encode: Arc::new(Xor),
                decode: Arc::new(Xor),
            }),
            use_magic_header: true,
            ..PipelineConfig::default()
        };
        mq.register_topic_defaults(
            "gzip",
            SerializationFormat::Json,
            SerializationConfig::Default,
            Some(gzip),
        );
        mq.register_topic_defaults(
            "xor",
            SerializationFormat::Bincode,
            SerializationConfig::Default,
            Some(xor),
        );
        let (gzipped, xored) = (
            mq.subscriber("gzip").await.unwrap(),
            mq.subscriber("xor").await.unwrap(),
        );
        for _ in 0..2 {
            mq.publisher("gzip").publish(9u32).await.unwrap();
            mq.publisher("xor").publish("hello".to_string()).await.unwrap();
        }
        assert_eq!(
            gzipped
                .recv_with_format::<u32>(SerializationFormat::Json)
                .await
                .unwrap(),
            9
        );
        let m = gzipped.recv().await.unwrap();
        assert_eq!(
            m.deserialize_with_format::<u32>(&SerializationFormat::Json)
                .unwrap(),
            9
        );
        assert_eq!(xored.recv_bincode::<String>().await.unwrap(), "hello");
        let m = xored.recv().await.unwrap();
        assert_eq!(
            m.deserialize_with_format::<String>(&SerializationFormat::Bincode)
                .unwrap(),
            "hello"
        );
    })
    .await
    .expect("finished");
}

/// A native `Bytes` reads as a `Vec<u8>` (which asks for a sequence), as a
/// native `Vec<u8>` reads as `Bytes`.
#[tokio::test]
async fn native_bytes_and_byte_vectors_read_as_each_other() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let sub = mq.subscriber("n").await.unwrap();
        let publisher = mq.publisher("n");
        publisher
            .publish(tokio_memq::Bytes::from_static(b"abc"))
            .await
            .unwrap();
        publisher.publish(b"def".to_vec()).await.unwrap();
        assert_eq!(
            sub.recv().await.unwrap().deserialize::<Vec<u8>>().unwrap(),
            b"abc"
        );
        assert_eq!(
            sub.recv()
                .await
                .unwrap()
                .deserialize::<tokio_memq::Bytes>()
                .unwrap(),
            &b"def"[..]
        );
    })
    .await
    .expect("finished");
}

/// A queue's defaults rank above the process-wide ones: those below, even
/// when they cannot build a codec (gzip level 200), are not looked at.
/// Both were built on every publish, and the broken one failed it.
#[tokio::test]
async fn broken_process_wide_defaults_do_not_fail_a_queue_s_own() {
    let (topic, key) = ("ranked-defaults", "ranked-defaults-key");
    let broken = PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(200) },
        ..PipelineConfig::default()
    };
    let json = SerializationFormat::Json;
    SerializationFactory::register_topic_defaults(
        topic,
        json.clone(),
        SerializationConfig::Default,
        Some(broken.clone()),
    );
    SerializationFactory::register_publisher_defaults(key, json, SerializationConfig::Default, Some(broken));
    let mq = MessageQueue::new();
    let msgpack = SerializationFormat::MessagePack;
    mq.register_topic_defaults(topic, msgpack.clone(), SerializationConfig::Default, None);
    mq.register_publisher_defaults(key, msgpack.clone(), SerializationConfig::Default, None);
    let sub = mq.subscriber(topic).await.unwrap();
    mq.publisher(topic).publish(1u8).await.unwrap();
    mq.publisher_with_key(topic, key).publish(2u8).await.unwrap();
    for value in [1u8, 2] {
        let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        assert_eq!(
            (msg.format.clone(), msg.deserialize::<u8>().unwrap()),
            (msgpack.clone(), value)
        );
    }
    // Without the queue's, the broken ones apply: a typed error.
    let other = MessageQueue::new();
    assert!(matches!(
        other.publisher(topic).publish(3u8).await,
        Err(PublishError::Encode { .. })
    ));
    SerializationFactory::global().remove_topic_defaults(topic);
    SerializationFactory::global().remove_publisher_defaults(key);
}

/// `publish_bytes` with `Native` (1.0.0's advice for bytes, before `Raw`):
/// the bytes read back as they are; `deserialize` decodes them when they
/// begin with a frame header naming their format, and refuses bare ones
/// with `UnsupportedFormat` (nothing says how to decode them).
#[tokio::test]
async fn bytes_tagged_native_read_as_bytes_and_decode_only_framed() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let sub = mq.subscriber("legacy").await.unwrap();
        let publisher = mq.publisher("legacy");
        publisher
            .publish_bytes(b"[1,2]".to_vec(), SerializationFormat::Native)
            .await
            .unwrap();
        let pipeline = PipelineConfig {
            use_magic_header: true,
            ..PipelineConfig::default()
        };
        let framed = Codec::new(SerializationFormat::Json, SerializationConfig::Default, pipeline)
            .unwrap()
            .encode(&vec![3u8, 4])
            .unwrap();
        publisher
            .publish_bytes(framed.clone(), SerializationFormat::Native)
            .await
            .unwrap();

        let bare = sub.recv().await.unwrap();
        assert_eq!(bare.format, SerializationFormat::Native);
        assert_eq!(&bare.bytes().unwrap()[..], b"[1,2]");
        let err = bare.deserialize::<Vec<u8>>().unwrap_err();
        assert_eq!(
            err.kind(),
            DecodeErrorKind::Codec(CodecErrorKind::UnsupportedFormat),
            "{err}"
        );
        let framed_msg = sub.recv().await.unwrap();
        assert_eq!(framed_msg.bytes().unwrap(), &framed);
        assert_eq!(framed_msg.deserialize::<Vec<u8>>().unwrap(), [3, 4]);
    })
    .await
    .unwrap();
}
