//! Decode limits as a queue setting (`MessageQueue::with_decode_limits`)
//! per subscriber (`Subscriber::with_decode_limits`) and per read
//! (`TopicMessage::deserialize_with_limits`): payloads over
//! the 64 MiB default can be read where the queue allows it, and a stricter
//! queue refuses what the default would take, in every format and every
//! receive path.

use memq_testkit::within;
use std::time::Duration;

use tokio_memq::{
    Bytes, CodecErrorKind, ConsumptionMode, DecodeErrorKind, DecodeLimits, Error, MessageQueue,
    PipelineConfig, RecvTypedError, SerializationConfig, SerializationFormat, TopicMessage,
};

const LIMIT: Duration = Duration::from_secs(60);

fn too_large(kind: DecodeErrorKind) -> bool {
    kind == DecodeErrorKind::Codec(CodecErrorKind::TooLarge)
}

#[tokio::test]
async fn a_payload_over_the_default_reads_on_a_queue_that_allows_it() {
    let big = Bytes::from(vec![7u8; (64 << 20) + 1]);
    // The default queue takes it, and cannot read it.
    let mq = MessageQueue::new();
    assert_eq!(mq.decode_limits(), DecodeLimits::default());
    let sub = mq.subscriber("big").await.unwrap();
    mq.publisher("big")
        .publish_bytes(big.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    let err = msg.deserialize::<Bytes>().unwrap_err();
    assert!(too_large(err.kind()), "{err:?}");
    // One read with other limits.
    let roomy = DecodeLimits::new().with_max_decoded_size(128 << 20);
    assert_eq!(
        msg.deserialize_with_limits::<Bytes>(&roomy).unwrap().len(),
        big.len()
    );

    // A queue with those limits reads it with every receive.
    let mq = MessageQueue::with_decode_limits(roomy);
    assert_eq!(mq.decode_limits(), roomy);
    let sub = mq.subscriber("big").await.unwrap();
    let publisher = mq.publisher("big");
    publisher
        .publish_bytes(big.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_bytes(big.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(msg.deserialize::<Bytes>().unwrap().len(), big.len());
    let typed: Bytes = within(LIMIT, sub.recv_typed()).await.unwrap().unwrap();
    assert_eq!(typed.len(), big.len());
}

#[tokio::test]
async fn a_strict_queue_refuses_in_every_format_and_receive_path() {
    let strict = DecodeLimits::new().with_max_decoded_size(64);
    let mq = MessageQueue::with_decode_limits(strict);
    let sub = mq.subscriber("s").await.unwrap();
    let publisher = mq.publisher("s");
    let long = "x".repeat(200);
    for format in [
        SerializationFormat::Bincode,
        SerializationFormat::Json,
        SerializationFormat::MessagePack,
    ] {
        publisher.publish_with_format("ok", format.clone()).await.unwrap();
        publisher.publish_with_format(long.clone(), format).await.unwrap();
    }
    publisher
        .publish_bytes("ok", SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_bytes(long.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    // Bare JSON (no frame) in a built-in format, as 1.0.0 code publishes it.
    publisher
        .publish_serialized("[\"ok\"]".to_string())
        .await
        .unwrap();
    publisher
        .publish_serialized(format!("[\"{long}\"]"))
        .await
        .unwrap();

    let msgs = within(LIMIT, sub.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(msgs.len(), 10);
    for (i, pair) in msgs.chunks(2).enumerate() {
        if i < 4 {
            assert_eq!(
                pair[0].deserialize::<String>().unwrap(),
                "ok",
                "{:?}",
                pair[0].format
            );
        } else {
            assert_eq!(pair[0].deserialize::<Vec<String>>().unwrap(), ["ok"]);
        }
        let err = pair[1].deserialize::<serde_json::Value>().unwrap_err();
        assert!(too_large(err.kind()), "{:?}: {err:?}", pair[1].format);
    }
    // Native values are not decoded: no limit applies.
    publisher.publish(long.clone()).await.unwrap();
    assert_eq!(
        within(LIMIT, sub.recv_typed::<String>()).await.unwrap().unwrap(),
        long
    );

    // Lent batches read with the queue's limits too.
    publisher
        .publish_with_format(long.clone(), SerializationFormat::Json)
        .await
        .unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(1)).await.unwrap().unwrap();
    let err = batch.get(0).unwrap().deserialize::<String>().unwrap_err();
    assert!(too_large(err.kind()), "{err:?}");
    // A more generous read of the same message.
    let generous = DecodeLimits::default();
    assert_eq!(
        batch
            .get(0)
            .unwrap()
            .to_message()
            .deserialize_with_limits::<String>(&generous)
            .unwrap(),
        long
    );
}

#[tokio::test]
async fn framed_payloads_and_serialization_defaults_decode_with_the_queue_limits() {
    let mq = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(16));
    let long = "y".repeat(100);
    // A frame written by a codec elsewhere, published as bytes: the frame
    // says its format; the queue's limits apply.
    let codec = tokio_memq::Codec::new(
        SerializationFormat::Json,
        SerializationConfig::Default,
        PipelineConfig {
            use_magic_header: true,
            ..Default::default()
        },
    )
    .unwrap();
    let frame = codec.encode(&long).unwrap();
    let sub = mq.subscriber("c").await.unwrap();
    mq.publisher("c")
        .publish_message(TopicMessage::from_bytes("c", frame, SerializationFormat::Bincode))
        .await
        .unwrap();
    let got = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert!(too_large(got.deserialize::<String>().unwrap_err().kind()));
    assert_eq!(
        got.deserialize_with_limits::<String>(&DecodeLimits::default())
            .unwrap(),
        long
    );

    // Published with a topic's serialization defaults (a codec of the
    // queue's table): the same.
    mq.register_topic_defaults(
        "d",
        SerializationFormat::Json,
        SerializationConfig::Default,
        Some(PipelineConfig::default()),
    );
    let sub = mq.subscriber("d").await.unwrap();
    mq.publisher("d").publish(long.clone()).await.unwrap();
    mq.publisher("d").publish("short").await.unwrap();
    let got = within(LIMIT, sub.recv_batch(2)).await.unwrap().unwrap();
    assert_eq!(got[0].format, SerializationFormat::Json);
    assert!(too_large(got[0].deserialize::<String>().unwrap_err().kind()));
    assert_eq!(got[1].deserialize::<String>().unwrap(), "short");
    assert_eq!(
        got[0]
            .deserialize_with_limits::<String>(&DecodeLimits::default())
            .unwrap(),
        long
    );
}

#[tokio::test]
async fn received_messages_published_again_keep_their_format() {
    let mq = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(1 << 10));
    let first = mq.subscriber("a").await.unwrap();
    let second = mq.subscriber("b").await.unwrap();
    let publisher = mq.publisher("a");
    publisher.publish_serialized("[1,2,3]".to_string()).await.unwrap();
    publisher
        .publish_with_format(vec![4u8, 5], SerializationFormat::MessagePack)
        .await
        .unwrap();
    let msgs = within(LIMIT, first.recv_batch(2)).await.unwrap().unwrap();
    let forward = mq.publisher("b");
    for m in msgs {
        forward.publish_message(m).await.unwrap();
    }
    let again = within(LIMIT, second.recv_batch(2)).await.unwrap().unwrap();
    assert_eq!(again[0].format, SerializationFormat::Json);
    assert_eq!(again[0].deserialize::<Vec<u8>>().unwrap(), [1, 2, 3]);
    assert_eq!(again[1].format, SerializationFormat::MessagePack);
    assert_eq!(again[1].deserialize::<Vec<u8>>().unwrap(), [4, 5]);
}

fn decode_too_large<T: std::fmt::Debug>(r: Result<T, RecvTypedError>) -> bool {
    matches!(r, Err(RecvTypedError::Decode(e)) if too_large(e.kind()))
}

#[tokio::test]
async fn a_subscriber_setting_overrides_the_queue_in_every_typed_receive() {
    // A strict queue (16 bytes); one subscriber allows the default 64 MiB,
    // another keeps the queue's limits.
    let mq = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(16));
    let roomy = mq
        .subscriber("t")
        .await
        .unwrap()
        .with_decode_limits(DecodeLimits::default());
    let strict = mq.subscriber("t").await.unwrap();
    assert_eq!(roomy.decode_limits(), DecodeLimits::default());
    assert_eq!(strict.decode_limits().max_decoded_size(), 16);
    let long = "y".repeat(100);
    let publisher = mq.publisher("t");
    // 0..=3: JSON (queue codec), 4: bincode, 5: raw JSON text, 6: JSON.
    for _ in 0..4 {
        publisher
            .publish_with_format(long.clone(), SerializationFormat::Json)
            .await
            .unwrap();
    }
    publisher.publish_bincode(long.clone()).await.unwrap();
    publisher
        .publish_bytes(format!("\"{long}\""), SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_with_format(long.clone(), SerializationFormat::Json)
        .await
        .unwrap();

    for sub in [&roomy, &strict] {
        let ok = std::ptr::eq(sub, &roomy);
        let typed = within(LIMIT, sub.recv_typed::<String>()).await.unwrap();
        assert_eq!(typed.as_ref().ok(), ok.then_some(&long), "recv_typed");
        assert_eq!(decode_too_large(typed), !ok);
        let tried = sub.try_recv_typed::<String>().await;
        assert_eq!(tried.as_ref().ok(), ok.then_some(&long), "try_recv_typed");
        assert_eq!(
            matches!(tried, Err(Error::Decode(ref e)) if too_large(e.kind())),
            !ok,
            "{tried:?}"
        );
        let message = within(LIMIT, sub.recv_typed_message::<String>()).await.unwrap();
        assert_eq!(
            message.as_ref().ok().map(|m| (&m.value, m.offset)),
            ok.then_some((&long, 2))
        );
        assert_eq!(decode_too_large(message), !ok);
        let batch = within(LIMIT, sub.recv_batch_typed::<String>(2)).await.unwrap();
        if ok {
            assert_eq!(batch.unwrap(), [long.clone(), long.clone()], "JSON then bincode");
        } else {
            assert!(decode_too_large(batch));
            // The bincode one is reported by the next call, not lost.
            let next = within(LIMIT, sub.recv_batch_typed::<String>(2)).await.unwrap();
            assert!(decode_too_large(next));
        }
        let formatted = within(LIMIT, sub.recv_with_format::<String>(SerializationFormat::Json))
            .await
            .unwrap();
        assert_eq!(formatted.as_ref().ok(), ok.then_some(&long), "recv_with_format");
        assert_eq!(decode_too_large(formatted), !ok);
        let lent = within(LIMIT, sub.recv_batch_lent(1)).await.unwrap().unwrap();
        let read = lent.get(0).unwrap().deserialize::<String>();
        assert_eq!(read.as_ref().ok(), ok.then_some(&long), "lent batch");
        assert_eq!(read.is_err_and(|e| too_large(e.kind())), !ok);
        // Everything was consumed, nothing is left behind.
        assert!(sub.try_recv_now().is_err());
    }

    // Whole messages keep the queue's limits: the subscriber's setting is
    // for its typed receives.
    publisher
        .publish_with_format(long.clone(), SerializationFormat::Json)
        .await
        .unwrap();
    let msg = within(LIMIT, roomy.recv()).await.unwrap().unwrap();
    assert!(msg.deserialize::<String>().is_err_and(|e| too_large(e.kind())));
    assert_eq!(
        msg.deserialize_with_limits::<String>(&roomy.decode_limits())
            .unwrap(),
        long
    );
}

#[tokio::test]
async fn a_strict_group_member_consumes_what_it_cannot_decode_without_losing_the_rest() {
    let mq = MessageQueue::new();
    let member = mq
        .group("jobs", "workers")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap()
        .with_decode_limits(DecodeLimits::new().with_max_decoded_size(8));
    let publisher = mq.publisher("jobs");
    publisher.publish_bincode("short".to_string()).await.unwrap();
    publisher
        .publish_bincode("much too long for eight".to_string())
        .await
        .unwrap();
    publisher.publish_bincode("tiny".to_string()).await.unwrap();
    let first = within(LIMIT, member.recv_batch_typed::<String>(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, ["short"], "up to the one over the limit");
    let err = within(LIMIT, member.recv_batch_typed::<String>(10))
        .await
        .unwrap();
    assert!(
        matches!(err, Err(RecvTypedError::Decode(ref e)) if too_large(e.kind()) && e.offset() == Some(1)),
        "{err:?}"
    );
    let rest = within(LIMIT, member.recv_batch_typed::<String>(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, ["tiny"]);
}

/// A received message carries the limits of the queue it came from, not
/// in its codec: published again to another queue, it decodes there with
/// that queue's limits. Before, a strict queue's limits followed the
/// message into a queue with the defaults (refusing what it allows), and
/// a roomy queue's let a strict queue decode what it forbids.
#[tokio::test]
async fn a_message_published_again_to_another_queue_decodes_with_that_queue_s_limits() {
    within(LIMIT, async {
        let long = "z".repeat(200);
        let value = vec![long.clone()];
        let strict = || MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(16));
        let roomy = || MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(1 << 30));
        let gzip = PipelineConfig {
            compression: tokio_memq::CompressionConfig::Gzip { level: None },
            use_magic_header: false,
            ..PipelineConfig::default()
        };
        for (from, to, fits) in [(strict(), MessageQueue::new(), true), (roomy(), strict(), false)] {
            for compressed in [false, true] {
                let topic = if compressed { "gzip" } else { "plain" };
                if compressed {
                    for q in [&from, &to] {
                        q.register_topic_defaults(
                            topic,
                            SerializationFormat::Json,
                            SerializationConfig::Default,
                            Some(gzip.clone()),
                        );
                    }
                }
                let (source, sink) = (
                    from.subscriber(topic).await.unwrap(),
                    to.subscriber(topic).await.unwrap(),
                );
                // Encoded (JSON, or the topic's defaults), never a native value.
                let publisher = from.publisher(topic);
                if compressed {
                    publisher.publish(value.clone()).await.unwrap();
                } else {
                    publisher
                        .publish_with_format(value.clone(), SerializationFormat::Json)
                        .await
                        .unwrap();
                }
                let received = source.recv().await.unwrap();
                to.publisher(topic).publish_message(received).await.unwrap();
                let again = sink.recv().await.unwrap();
                let read = again.deserialize::<Vec<String>>();
                if fits {
                    assert_eq!(
                        read.unwrap(),
                        value,
                        "{topic}: the defaults of the queue it is in"
                    );
                } else {
                    assert!(
                        too_large(read.unwrap_err().kind()),
                        "{topic}: the strict queue's limits"
                    );
                }
            }
        }
    })
    .await
    .expect("finished");
}

struct JsonLines;

impl tokio_memq::CustomFormat for JsonLines {
    fn name(&self) -> &str {
        "decode-limits-jsonl"
    }

    fn serialize(
        &self,
        value: &tokio_memq::ErasedValue<'_>,
        _: &SerializationConfig,
        out: &mut Vec<u8>,
    ) -> Result<(), tokio_memq::CodecError> {
        serde_json::to_writer(&mut *out, value)
            .map_err(|e| tokio_memq::CodecError::new(CodecErrorKind::Serialize, e))?;
        out.push(b'\n');
        Ok(())
    }

    fn deserialize(
        &self,
        bytes: &[u8],
        sink: tokio_memq::ValueSink<'_>,
    ) -> Result<(), tokio_memq::CodecError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        sink.deserialize(&mut de)?;
        de.end()
            .map_err(|e| tokio_memq::CodecError::new(CodecErrorKind::TrailingBytes, e))
    }
}

/// The queue's limits hold for bytes published in a custom format (they
/// carry no codec) and for a payload read in another format than its
/// own; a custom format is written with what `tokio_memq` exports alone.
#[tokio::test]
async fn custom_format_bytes_and_reads_in_another_format_obey_the_queue_limits() {
    within(LIMIT, async {
        tokio_memq::SerializationFactory::register_format(std::sync::Arc::new(JsonLines));
        let long = "q".repeat(200);
        let strict = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(16));
        let sub = strict.subscriber("c").await.unwrap();
        let custom = SerializationFormat::Custom("decode-limits-jsonl".into());
        let publisher = strict.publisher("c");
        publisher
            .publish_bytes(format!("\"{long}\"\n"), custom.clone())
            .await
            .unwrap();
        publisher
            .publish_with_format(long.clone(), custom.clone())
            .await
            .unwrap();
        publisher
            .publish_bytes(format!("\"{long}\""), SerializationFormat::Raw)
            .await
            .unwrap();
        for how in ["custom bytes", "custom codec"] {
            let m = sub.recv().await.unwrap();
            assert_eq!(m.format, custom);
            assert!(too_large(m.deserialize::<String>().unwrap_err().kind()), "{how}");
            assert_eq!(
                m.deserialize_with_limits::<String>(&DecodeLimits::new()).unwrap(),
                long,
                "{how}"
            );
        }
        let raw = sub.recv().await.unwrap();
        let as_json = raw.deserialize_with_format::<String>(&SerializationFormat::Json);
        assert!(too_large(as_json.unwrap_err().kind()), "read in another format");
        // The same on a queue with the defaults: everything reads.
        let mq = MessageQueue::new();
        let sub = mq.subscriber("c").await.unwrap();
        mq.publisher("c")
            .publish_bytes(format!("\"{long}\"\n"), custom)
            .await
            .unwrap();
        assert_eq!(sub.recv().await.unwrap().deserialize::<String>().unwrap(), long);
    })
    .await
    .expect("finished");
}
