//! Adversarial checks of typed receives and what they put aside (plain,
//! partitioned and group subscribers, mixed with untyped receives, seeks,
//! commits, lag, TTL and cancellation), of serialization (native values
//! against `publish_with_format` in every built-in format, serialization
//! defaults with compression, the conversions and refusals promised for
//! native values, hostile payloads under decode limits, with memory
//! measured), of lent batches and of record headers carried through
//! typed batches, groups and republishing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use memq_testkit::within;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_memq::{
    Bytes, CodecErrorKind, CompressionConfig, ConsumptionMode, DecodeErrorKind, DecodeLimits, Error, Headers,
    JsonConfig, MessagePayload, MessageQueue, PartitionRouting, PipelineConfig, PublishError, RecvError,
    RecvTypedError, SerializationConfig, SerializationFormat, Subscriber, TopicMessage, TopicOptions,
    TryRecvError,
};
use tokio_stream::StreamExt;

#[global_allocator]
static ALLOC: memq_testkit::alloc::Counting = memq_testkit::alloc::Counting;

const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `fut` within [`LIMIT`], failing on a hang or a lost wake-up.
async fn w<F: Future>(fut: F) -> F::Output {
    within(LIMIT, fut).await.expect("done in time, and woken")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    tags: Vec<String>,
    price: Option<f64>,
}

fn order(id: u64) -> Order {
    Order {
        id,
        item: format!("item-{id}"),
        tags: vec!["a".into(), "b".into()],
        price: Some(id as f64 + 0.5),
    }
}

fn trace(n: u32) -> Headers {
    let mut h = Headers::new();
    h.insert("trace-id", format!("t-{n}"))
        .insert("hop", "one")
        .insert("hop", "two")
        .insert("bin", vec![0u8, 0xFF]);
    h
}

fn gzip_json() -> PipelineConfig {
    PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(6) },
        pre: None,
        post: None,
        use_magic_header: true,
    }
}

fn is_decode<T: std::fmt::Debug>(r: &Result<T, RecvTypedError>, offset: u64) -> bool {
    matches!(r, Err(RecvTypedError::Decode(e)) if e.offset() == Some(offset))
}

/// What a received message says about itself, for comparisons.
type Seen = (
    u64,
    Option<usize>,
    Option<String>,
    Headers,
    SerializationFormat,
    Vec<u8>,
);

fn seen(m: &TopicMessage) -> Seen {
    (
        m.offset(),
        m.partition,
        m.key().map(str::to_owned),
        m.headers().clone(),
        m.format.clone(),
        m.payload_bytes().to_vec(),
    )
}

async fn partitioned(mq: &MessageQueue, topic: &str, options: TopicOptions) -> Subscriber {
    mq.create_partitioned_topic(topic, options, 2).await.unwrap();
    mq.subscriber(topic).await.unwrap()
}

async fn route(mq: &MessageQueue, topic: &str, partition: usize) {
    mq.set_partition_routing(topic, PartitionRouting::Fixed(partition))
        .await
        .unwrap();
}

/// Everything a subscriber has now, as (partition, offset), without waiting.
fn drain_now(sub: &Subscriber) -> Vec<(Option<usize>, u64)> {
    let mut out = Vec::new();
    loop {
        match sub.try_recv_now() {
            Ok(m) => out.push((m.partition, m.offset())),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

// ---------------------------------------------------------------------
// Typed receives and what they put aside
// ---------------------------------------------------------------------

/// A plain subscriber's typed batch stops before a message it cannot
/// decode; the message and what follows it stay the subscriber's next, for
/// untyped, typed, non-waiting and lent receives alike, each once, and its
/// position, lag and commits say so meanwhile.
#[tokio::test]
async fn a_plain_typed_batch_puts_back_and_every_receive_kind_takes_over() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("plain").await.unwrap();
    let publisher = mq.publisher("plain");
    publisher.publish_batch(vec![1u32, 2]).await.unwrap();
    publisher.publish("three").await.unwrap();
    publisher.publish_batch(vec![4u32, 5, 6]).await.unwrap();

    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [1, 2]);
    assert_eq!(sub.lag(), 4, "the bad one and those after it are still to come");
    assert_eq!(w(sub.current_offset()).await, Some(2));
    assert_eq!(sub.positions(), [(0, 2)]);
    sub.commit(1).await.unwrap();
    assert_eq!(sub.committed_offset(), Some(1));
    assert_eq!(
        w(sub.current_offset()).await,
        Some(2),
        "a commit does not move it"
    );

    // Untyped: the message the typed batch could not read, as it is.
    let bad = w(sub.recv()).await.unwrap();
    assert_eq!(
        (bad.offset(), bad.deserialize::<String>().unwrap()),
        (2, "three".into())
    );
    assert_eq!(sub.try_recv_typed::<u32>().await.unwrap(), 4);
    let lent = w(sub.recv_batch_lent(10)).await.unwrap();
    let lent: Vec<(u64, u32)> = lent
        .iter()
        .map(|m| (m.offset(), m.deserialize::<u32>().unwrap()))
        .collect();
    assert_eq!(lent, [(4, 5), (5, 6)]);
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    assert_eq!(sub.lag(), 0);

    // Back to the start: each message once more, the bad one reported once.
    sub.seek(0).await.unwrap();
    assert_eq!(w(sub.recv_batch_typed::<u32>(2)).await.unwrap(), [1, 2]);
    let err = w(sub.recv_batch_typed::<u32>(10)).await;
    assert!(is_decode(&err, 2), "{err:?}");
    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [4, 5, 6]);
    assert_eq!(sub.lag(), 0);
}

/// The first message of a typed batch fails: the error names it, the rest
/// is not lost, and `recv_typed` / `recv_typed_message` agree on offsets.
#[tokio::test]
async fn a_typed_batch_whose_first_message_fails_reports_it_and_keeps_the_rest() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("first").await.unwrap();
    let publisher = mq.publisher("first");
    publisher.publish("zero").await.unwrap();
    publisher.publish("one").await.unwrap();
    publisher.publish(2u64).await.unwrap();
    publisher
        .publish_with_format(3u64, SerializationFormat::Json)
        .await
        .unwrap();

    let e = w(sub.recv_batch_typed::<u64>(10)).await;
    assert!(
        matches!(&e, Err(RecvTypedError::Decode(e)) if e.offset() == Some(0) && e.kind() == DecodeErrorKind::TypeMismatch),
        "{e:?}"
    );
    let e = w(sub.recv_typed::<u64>()).await;
    assert!(is_decode(&e, 1), "{e:?}");
    let typed = w(sub.recv_typed_message::<u64>()).await.unwrap();
    assert_eq!(
        (typed.value, typed.offset, typed.partition, typed.deliveries),
        (2, 2, None, 1)
    );
    assert_eq!(w(sub.recv_batch_typed::<u64>(10)).await.unwrap(), [3]);
    assert_eq!(
        w(sub.recv_batch_typed::<u64>(0)).await.unwrap(),
        Vec::<u64>::new()
    );
    assert!(sub.try_recv_now().is_err());
}

/// What a typed batch of a merged (all-partition) subscriber puts aside
/// keeps its key, headers, partition, format and codec (compressed JSON
/// from topic defaults, an explicit MessagePack, raw bytes): a lent batch
/// and `to_message` read them exactly as a second subscriber received them.
#[tokio::test]
async fn what_a_merged_typed_batch_puts_aside_keeps_everything_it_said() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "st",
        SerializationFormat::Json,
        SerializationConfig::Json(JsonConfig { pretty: false }),
        Some(gzip_json()),
    );
    let sub = partitioned(&mq, "st", TopicOptions::default()).await;
    let witness = mq.subscriber("st").await.unwrap();
    route(&mq, "st", 1).await;
    let publisher = mq.publisher("st");
    publisher.publish(1u32).await.unwrap();
    publisher.publish_with_headers("bad", trace(1)).await.unwrap();
    publisher
        .publish_with_key_and_headers("k2", 3u32, trace(2))
        .await
        .unwrap();
    publisher
        .publish_with_format(4u32, SerializationFormat::MessagePack)
        .await
        .unwrap();
    publisher
        .publish_bytes(Bytes::from_static(b"raw!"), SerializationFormat::Raw)
        .await
        .unwrap();

    let reference: Vec<Seen> = w(witness.recv_batch(10))
        .await
        .unwrap()
        .iter()
        .map(seen)
        .collect();
    assert_eq!(reference.len(), 5);
    assert_eq!(
        &reference[1].5[..3],
        b"TMQ",
        "encoded with the topic's gzip pipeline"
    );

    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [1]);
    assert_eq!(sub.positions(), [(0, 0), (1, 1)]);
    assert_eq!(sub.lag(), 4);

    let batch = w(sub.recv_batch_lent(10)).await.unwrap();
    assert_eq!(batch.len(), 4);
    for (i, m) in batch.iter().enumerate() {
        let whole = m.to_message();
        assert_eq!(seen(&whole), reference[i + 1], "item {i}");
        assert_eq!(
            (
                m.offset(),
                m.partition(),
                m.key().map(str::to_owned),
                m.headers().clone(),
                m.format()
            ),
            (
                reference[i + 1].0,
                reference[i + 1].1,
                reference[i + 1].2.clone(),
                reference[i + 1].3.clone(),
                reference[i + 1].4.clone()
            )
        );
        assert_eq!(m.payload_bytes(), &reference[i + 1].5[..]);
    }
    assert_eq!(batch.get(0).unwrap().deserialize::<String>().unwrap(), "bad");
    assert_eq!(batch.get(1).unwrap().deserialize::<u32>().unwrap(), 3);
    assert_eq!(
        batch.get(1).unwrap().to_message().deserialize::<u32>().unwrap(),
        3
    );
    assert_eq!(batch.get(2).unwrap().format(), SerializationFormat::MessagePack);
    assert_eq!(batch.get(2).unwrap().deserialize::<u32>().unwrap(), 4);
    assert_eq!(batch.get(3).unwrap().payload_bytes(), b"raw!");
    drop(batch);
    assert_eq!(sub.lag(), 0);
    assert!(drain_now(&sub).is_empty());
}

/// After a merged typed batch put messages aside, a seek back to the start
/// hands out every message of every partition exactly once (the put-aside
/// copies are passed over, not delivered as well).
#[tokio::test]
async fn a_merged_seek_back_after_a_typed_batch_delivers_each_message_once() {
    let mq = MessageQueue::new();
    let sub = partitioned(&mq, "sk", TopicOptions::default()).await;
    route(&mq, "sk", 0).await;
    let publisher = mq.publisher("sk");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("x").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    route(&mq, "sk", 1).await;
    publisher.publish_batch(vec![10u32, 11]).await.unwrap();

    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [1]);
    assert_eq!(sub.lag(), 4);
    sub.seek(0).await.unwrap();
    assert_eq!(sub.lag(), 5);
    let mut got = drain_now(&sub);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            (Some(0), 0),
            (Some(0), 1),
            (Some(0), 2),
            (Some(1), 0),
            (Some(1), 1)
        ]
    );
    assert_eq!(sub.lag(), 0);

    // The same with a reset: put aside again (the merged batch takes
    // turns between partitions, so which values come first may vary; the
    // bad one is never among them), then back to the oldest.
    sub.seek(0).await.unwrap();
    let before_bad = w(sub.recv_batch_typed::<u32>(10)).await.unwrap();
    assert!(before_bad.contains(&1) && before_bad.len() < 5, "{before_bad:?}");
    assert_eq!(sub.lag(), 5 - before_bad.len() as u64);
    sub.reset_offset().await;
    let mut got = drain_now(&sub);
    got.sort_unstable();
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(sub.lag(), 0);
}

/// Messages put aside by a merged typed batch expire at the topic's TTL,
/// as they would have in the topic: never delivered after it, and no
/// longer counted in the lag.
#[tokio::test(start_paused = true)]
async fn messages_put_aside_expire_at_the_topic_ttl() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(10)),
        ..TopicOptions::default()
    };
    let sub = partitioned(&mq, "ttl", options).await;
    route(&mq, "ttl", 0).await;
    let publisher = mq.publisher("ttl");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("x").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [1]);
    assert_eq!(sub.lag(), 2);

    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(sub.lag(), 0, "expired while put aside");
    assert!(w(sub.recv_timeout(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_none());
    publisher.publish(4u32).await.unwrap();
    assert_eq!(w(sub.recv_typed::<u32>()).await.unwrap(), 4);
}

/// A merged typed batch dropped while it waits takes nothing; a typed
/// stream made afterwards hands out what an earlier typed batch put aside
/// first, errors included.
#[tokio::test]
async fn a_dropped_merged_typed_batch_takes_nothing_and_a_typed_stream_takes_over() {
    let mq = MessageQueue::new();
    let sub = partitioned(&mq, "dr", TopicOptions::default()).await;
    route(&mq, "dr", 1).await;
    {
        let mut fut = pin!(sub.recv_batch_typed::<u32>(10));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    let publisher = mq.publisher("dr");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("two").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [1]);

    let mut stream = sub.into_typed_stream::<u32>();
    let first = w(stream.next()).await.unwrap();
    assert!(is_decode(&first, 1), "{first:?}");
    assert_eq!(w(stream.next()).await.unwrap().unwrap(), 3);
    drop(publisher);
    mq.close();
    assert!(w(stream.next()).await.is_none());
}

/// One merged subscriber shared by tasks using typed batches, plain
/// receives, non-waiting typed receives and lent batches, while messages
/// (some of another type) are published: every good value arrives exactly
/// once, and every bad one is reported exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_merged_subscriber_delivers_each_message_once_to_mixed_typed_receives() {
    const N: u64 = 400;
    let mq = MessageQueue::new();
    let sub = Arc::new(partitioned(&mq, "mix", TopicOptions::default()).await);
    let goods = Arc::new(Mutex::new(Vec::new()));
    let bads = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0u64));

    let mut tasks = tokio::task::JoinSet::new();
    {
        let (sub, goods, errors) = (sub.clone(), goods.clone(), errors.clone());
        tasks.spawn(async move {
            loop {
                match sub.recv_batch_typed::<u64>(4).await {
                    Ok(v) => goods.lock().unwrap().extend(v),
                    Err(RecvTypedError::Decode(_)) => *errors.lock().unwrap() += 1,
                    Err(RecvTypedError::Recv(RecvError::Closed)) => return,
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
    }
    {
        let (sub, goods, bads) = (sub.clone(), goods.clone(), bads.clone());
        tasks.spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(m) => match m.deserialize::<u64>() {
                        Ok(v) => goods.lock().unwrap().push(v),
                        Err(_) => bads.lock().unwrap().push(m.deserialize::<String>().unwrap()),
                    },
                    Err(RecvError::Closed) => return,
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
    }
    {
        let (sub, goods, errors) = (sub.clone(), goods.clone(), errors.clone());
        tasks.spawn(async move {
            loop {
                match sub.try_recv_typed::<u64>().await {
                    Ok(v) => goods.lock().unwrap().push(v),
                    Err(Error::Decode(_)) => *errors.lock().unwrap() += 1,
                    Err(Error::TryRecv(TryRecvError::Empty)) => tokio::task::yield_now().await,
                    Err(Error::TryRecv(TryRecvError::Closed)) => return,
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
    }
    {
        let (sub, goods, bads) = (sub.clone(), goods.clone(), bads.clone());
        tasks.spawn(async move {
            loop {
                match sub.recv_batch_lent(3).await {
                    Ok(batch) => {
                        for m in &batch {
                            match m.deserialize::<u64>() {
                                Ok(v) => goods.lock().unwrap().push(v),
                                Err(_) => bads.lock().unwrap().push(m.deserialize::<String>().unwrap()),
                            }
                        }
                    }
                    Err(RecvError::Closed) => return,
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
    }

    let publisher = mq.publisher("mix");
    let mut expected_goods = Vec::new();
    let mut expected_bads = 0;
    for i in 0..N {
        if i % 5 == 3 {
            publisher.publish(format!("bad-{i}")).await.unwrap();
            expected_bads += 1;
        } else {
            publisher.publish(i).await.unwrap();
            expected_goods.push(i);
        }
        if i % 17 == 0 {
            tokio::task::yield_now().await;
        }
    }
    drop(publisher);
    mq.close();
    let joined = w(async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
    joined.await;

    let mut goods = goods.lock().unwrap().clone();
    goods.sort_unstable();
    assert_eq!(goods, expected_goods, "every good value exactly once");
    let bads = bads.lock().unwrap().clone();
    let unique: HashSet<_> = bads.iter().collect();
    assert_eq!(unique.len(), bads.len(), "no bad message twice: {bads:?}");
    assert_eq!(bads.len() as u64 + *errors.lock().unwrap(), expected_bads);
}

/// A member of a group with manual acknowledgement: what its typed batch
/// puts aside is handed out by its next receives (with its headers), is
/// still pending meanwhile, and a seek passes over it (acknowledged, so the
/// group's commit is not held back for good).
#[tokio::test]
async fn a_manual_member_s_put_aside_messages_keep_headers_and_a_seek_settles_them() {
    let mq = MessageQueue::new();
    let member = mq
        .group("man", "g")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    let publisher = mq.publisher("man");
    publisher.publish(1u32).await.unwrap();
    publisher.publish_with_headers("bad", trace(7)).await.unwrap();
    publisher
        .publish_with_key_and_headers("k", 3u32, trace(8))
        .await
        .unwrap();
    publisher.publish(4u32).await.unwrap();

    assert_eq!(w(member.recv_batch_typed::<u32>(10)).await.unwrap(), [1]);
    let stats = mq.get_group_stats("man", "g").await.unwrap();
    assert_eq!(stats.pending, 4, "handed out, none acknowledged");
    let bad = w(member.recv()).await.unwrap();
    assert_eq!((bad.offset(), bad.headers().clone()), (1, trace(7)));
    member.ack(&bad).unwrap();
    let next = w(member.recv_typed_message::<u32>()).await.unwrap();
    assert_eq!((next.value, next.offset), (3, 2));
    member.ack(&next).unwrap();
    // Offset 3 is still put aside; the seek forward passes over it.
    member.seek(4).await.unwrap();
    let stats = mq.get_group_stats("man", "g").await.unwrap();
    assert_eq!(stats.pending, 1, "offset 0 is still held (never acknowledged)");
    publisher.publish(5u32).await.unwrap();
    let five = w(member.recv_typed_message::<u32>()).await.unwrap();
    assert_eq!((five.value, five.offset), (5, 4));
}

/// An automatic group's member gives back what its typed batch did not
/// hand on: received again, the messages still carry key, headers and the
/// codec that encoded them.
#[tokio::test]
async fn an_automatic_member_s_given_back_messages_keep_key_headers_and_codec() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "auto",
        SerializationFormat::Json,
        SerializationConfig::Default,
        Some(gzip_json()),
    );
    let member = mq
        .subscriber_group("auto", "g", ConsumptionMode::Earliest)
        .await
        .unwrap();
    let publisher = mq.publisher("auto");
    publisher.publish(order(1)).await.unwrap();
    publisher.publish_with_headers("bad", trace(1)).await.unwrap();
    publisher
        .publish_with_key_and_headers("k", order(3), trace(3))
        .await
        .unwrap();

    assert_eq!(w(member.recv_batch_typed::<Order>(10)).await.unwrap(), [order(1)]);
    let again = w(member.recv_batch(10)).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].headers(), &trace(1));
    assert_eq!(again[0].deserialize::<String>().unwrap(), "bad");
    assert_eq!((again[1].key(), again[1].headers()), (Some("k"), &trace(3)));
    assert_eq!(again[1].format, SerializationFormat::Json);
    assert_eq!(&again[1].payload_bytes()[..3], b"TMQ");
    assert_eq!(again[1].deserialize::<Order>().unwrap(), order(3));
    assert!(member.try_recv_now().is_err());
}

// ---------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------

/// Every built-in format (and native storage) round-trips a struct through
/// every read path, says its format, and serializes without a frame header
/// or compression whatever the topic's defaults.
#[tokio::test]
async fn publish_with_format_round_trips_through_every_read_path() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "fmt",
        SerializationFormat::Json,
        SerializationConfig::Default,
        Some(gzip_json()),
    );
    let sub = mq.subscriber("fmt").await.unwrap();
    let publisher = mq.publisher("fmt");
    let formats = [
        SerializationFormat::Bincode,
        SerializationFormat::Json,
        SerializationFormat::MessagePack,
        SerializationFormat::Native,
    ];
    for (i, f) in formats.iter().enumerate() {
        let i = i as u64;
        // Four times: message, typed, lent, stream.
        for _ in 0..4 {
            publisher.publish_with_format(order(i), f.clone()).await.unwrap();
        }
    }
    for (i, f) in formats.iter().enumerate() {
        let i = i as u64;
        let m = w(sub.recv()).await.unwrap();
        assert_eq!(&m.format, f);
        assert_eq!(m.deserialize::<Order>().unwrap(), order(i), "{f}");
        assert_eq!(m.deserialize_with_format::<Order>(f).unwrap(), order(i), "{f}");
        let native = m.native::<Order>();
        assert_eq!(
            native.as_deref(),
            (*f == SerializationFormat::Native).then_some(&order(i))
        );
        if *f != SerializationFormat::Native {
            assert!(!m.payload_bytes().starts_with(b"TMQ"), "{f}: no frame header");
            assert!(matches!(m.payload, MessagePayload::Bytes(_)));
        }
        assert_eq!(w(sub.recv_typed::<Order>()).await.unwrap(), order(i));
        let lent = w(sub.recv_batch_lent(1)).await.unwrap();
        let r = lent.get(0).unwrap();
        assert_eq!(
            (r.format(), r.deserialize::<Order>().unwrap()),
            (f.clone(), order(i))
        );
        assert_eq!(r.native::<Order>().is_some(), *f == SerializationFormat::Native);
        drop(lent);
        assert_eq!(
            w(sub.recv_with_format::<Order>(f.clone())).await.unwrap(),
            order(i)
        );
    }
    // With the defaults: JSON, gzip, a frame header.
    publisher.publish(order(9)).await.unwrap();
    let m = w(sub.recv()).await.unwrap();
    assert_eq!(
        (&m.format, &m.payload_bytes()[..3]),
        (&SerializationFormat::Json, &b"TMQ"[..])
    );
    assert_eq!(m.deserialize::<Order>().unwrap(), order(9));
}

/// A value that cannot be encoded comes back whole with a typed error, and
/// nothing is published (no offset is used up).
#[tokio::test]
async fn encode_failures_hand_the_value_back_and_publish_nothing() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("enc").await.unwrap();
    let publisher = mq.publisher("enc");
    match publisher
        .publish_with_format(7u32, SerializationFormat::Raw)
        .await
    {
        Err(PublishError::Encode { value, error }) => {
            assert_eq!((value, error.kind()), (7, CodecErrorKind::Serialize))
        }
        other => panic!("{other:?}"),
    }
    let unknown = SerializationFormat::Custom("codec-typed-adversarial-never-registered".into());
    match publisher.publish_with_format(order(1), unknown.clone()).await {
        Err(PublishError::Encode { value, error }) => {
            assert_eq!((value, error.kind()), (order(1), CodecErrorKind::UnknownFormat))
        }
        other => panic!("{other:?}"),
    }
    let fine = vec![HashMap::from([("ok".to_string(), 1u8)]), HashMap::new()];
    // JSON object keys must be strings: a tuple key fails, and the batch
    // is all or nothing.
    let tuples = vec![
        HashMap::from([((1u8, 2u8), 1u8)]),
        HashMap::from([((3u8, 4u8), 2u8)]),
    ];
    match publisher
        .publish_batch_with_format(tuples.clone(), SerializationFormat::Json)
        .await
    {
        Err(PublishError::Encode { value, error }) => {
            assert_eq!((value, error.kind()), (tuples, CodecErrorKind::Serialize))
        }
        other => panic!("{other:?}"),
    }
    match TopicMessage::new_with_format("enc", 7u32, unknown) {
        Err(Error::Encode(e)) => assert_eq!(e.kind(), CodecErrorKind::UnknownFormat),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        publisher
            .publish_with_format(fine, SerializationFormat::Json)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        w(sub.recv()).await.unwrap().offset(),
        0,
        "the first publish that worked"
    );
    let stats = mq.get_topic_stats("enc").await.unwrap();
    assert_eq!(stats.published, 1);
}

/// Raw payloads are the bytes themselves; read as text they must be UTF-8
/// (a typed error otherwise), as other types a typed error, never a panic.
#[tokio::test]
async fn raw_payloads_are_the_bytes_and_misreads_are_typed_errors() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("raw").await.unwrap();
    let publisher = mq.publisher("raw");
    publisher
        .publish_with_format("héllo".to_string(), SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_with_format(vec![1u8, 2, 3], SerializationFormat::Raw)
        .await
        .unwrap();
    publisher
        .publish_bytes(vec![0xFFu8, 0xFE, b'T', b'M', b'Q'], SerializationFormat::Raw)
        .await
        .unwrap();
    let msgs = w(sub.recv_batch(3)).await.unwrap();
    assert_eq!(msgs[0].payload_bytes(), "héllo".as_bytes());
    assert_eq!(msgs[0].deserialize::<String>().unwrap(), "héllo");
    assert_eq!(msgs[1].payload_bytes(), [1, 2, 3]);
    assert_eq!(msgs[1].deserialize::<Vec<u8>>().unwrap(), [1, 2, 3]);
    assert_eq!(
        msgs[1].deserialize::<Bytes>().unwrap(),
        Bytes::from_static(&[1, 2, 3])
    );
    let err = msgs[2].deserialize::<String>().unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::Codec(_)), "{err:?}");
    assert_eq!(err.offset(), Some(2));
    let err = msgs[2].deserialize::<u32>().unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::Codec(_)), "{err:?}");
    assert_eq!(
        msgs[2].deserialize::<Vec<u8>>().unwrap(),
        [0xFF, 0xFE, b'T', b'M', b'Q']
    );
}

/// Bytes tagged with a custom name that was never registered, or with a
/// built-in name used as a custom one, read as typed errors, not as
/// another format and not as a panic.
#[tokio::test]
async fn unregistered_custom_formats_are_unknown_not_guessed() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("custom").await.unwrap();
    let publisher = mq.publisher("custom");
    let names = ["codec-typed-adversarial-nope", "json"];
    for name in names {
        publisher
            .publish_bytes("[1,2]", SerializationFormat::Custom(name.into()))
            .await
            .unwrap();
    }
    for name in names {
        let m = w(sub.recv()).await.unwrap();
        assert_eq!(m.format, SerializationFormat::Custom(name.into()));
        let err = m.deserialize::<Vec<u8>>().unwrap_err();
        assert_eq!(
            err.kind(),
            DecodeErrorKind::Codec(CodecErrorKind::UnknownFormat),
            "{name}: {err:?}"
        );
        // Read in a format the caller names, the same bytes decode.
        assert_eq!(
            m.deserialize_with_format::<Vec<u8>>(&SerializationFormat::Json)
                .unwrap(),
            [1, 2]
        );
    }
}

/// The conversions of native values the docs promise, and their refusals,
/// agree across `TopicMessage::deserialize`, `recv_typed` and lent batches.
#[tokio::test]
async fn native_conversions_and_refusals_agree_on_every_read_path() {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        y: i32,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Meters(f64);
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Feet(f64);

    let mq = MessageQueue::new();
    let sub = mq.subscriber("conv").await.unwrap();
    let lent_sub = mq.subscriber("conv").await.unwrap();
    let p = mq.publisher("conv");

    /// Publishes `$v` and expects every read as `$t` to give `$want`
    /// (`Some(value)`) or a type mismatch (`None`).
    macro_rules! case {
        ($v:expr, $t:ty, $want:expr) => {{
            let want: Option<$t> = $want;
            p.publish($v).await.unwrap();
            let m = w(sub.recv()).await.unwrap();
            let direct = m.deserialize::<$t>();
            let lent = w(lent_sub.recv_batch_lent(1)).await.unwrap();
            let via_ref = lent.get(0).unwrap().deserialize::<$t>();
            for (how, got) in [("deserialize", direct), ("lent", via_ref)] {
                match (&want, got) {
                    (Some(v), Ok(got)) => {
                        assert_eq!(&got, v, "{} as {}: {how}", stringify!($v), stringify!($t))
                    }
                    (None, Err(e)) => assert_eq!(
                        e.kind(),
                        DecodeErrorKind::TypeMismatch,
                        "{} as {}: {how}",
                        stringify!($v),
                        stringify!($t)
                    ),
                    (want, got) => panic!(
                        "{} as {}: {how}: want {want:?}, got {got:?}",
                        stringify!($v),
                        stringify!($t)
                    ),
                }
            }
        }};
    }

    case!("text", String, Some("text".into()));
    case!(-7i32, i64, Some(-7));
    case!(-7i32, f64, Some(-7.0));
    case!(300u64, u32, Some(300));
    case!(300u64, u8, None);
    case!(-1i64, u64, None);
    case!(1.5f32, f64, Some(1.5));
    case!(0.1f64, f32, None);
    case!(0.5f64, f32, Some(0.5));
    case!(u128::MAX, f64, None);
    case!((1u64 << 53) + 1, f64, None);
    case!(vec![1u8, 2, 255], Vec<u16>, Some(vec![1, 2, 255]));
    case!((1i32, -2i32), (i64, i64), Some((1, -2)));
    case!((1i32, -2i32), (i64,), None);
    case!((1i32, -2i32), (i64, i64, i64), None);
    case!(vec![Some(1u8), None], Vec<Option<u32>>, Some(vec![Some(1), None]));
    case!(vec![1u8, 1], HashSet<u8>, None);
    case!(vec![1u8, 2], BTreeSet<u8>, Some(BTreeSet::from([1, 2])));
    case!((1i32, 2i32), Point, None);
    case!(Point { x: 1, y: 2 }, (i32, i32), None);
    case!(Point { x: 1, y: 2 }, Point, Some(Point { x: 1, y: 2 }));
    case!(HashMap::from([("a".to_string(), 1u8)]), HashMap<String, u8>, Some(HashMap::from([("a".to_string(), 1u8)])));
    case!(HashMap::from([("a".to_string(), 1u8)]), HashMap<String, u16>, None);
    case!(Bytes::from_static(b"abc"), String, None);
    case!("abc", Vec<u8>, None);
    case!(Meters(2.0), f64, Some(2.0));
    case!(Meters(2.0), Feet, None);
    case!(2.0f64, Meters, Some(Meters(2.0)));
    case!(Some(5u8), u8, None);
    case!(true, u8, None);
    case!('x', String, Some("x".into()));
}

mod other {
    /// The same serde name and shape as `Nest` below, another Rust type.
    #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
    pub(crate) struct Nest(pub(crate) Vec<Nest>);
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Nest(Vec<Nest>);

fn nest(levels: usize) -> Nest {
    let mut n = Nest(Vec::new());
    for _ in 0..levels {
        n = Nest(vec![n]);
    }
    n
}

fn other_nest(levels: usize) -> other::Nest {
    let mut n = other::Nest(Vec::new());
    for _ in 0..levels {
        n = other::Nest(vec![n]);
    }
    n
}

/// A native value converts to another type of the same shape only to a
/// bounded depth: deeper is a type mismatch, never a stack overflow; and
/// `payload_str` writes it as JSON up to 1,024 levels, past that
/// `[native value]`.
#[tokio::test]
async fn deep_native_values_convert_to_a_bound_and_display_safely() {
    let shallow = TopicMessage::new("t", nest(20)).unwrap();
    assert_eq!(shallow.deserialize::<other::Nest>().unwrap(), other_nest(20));
    let deep = TopicMessage::new("t", nest(3000)).unwrap();
    assert_eq!(
        deep.deserialize::<other::Nest>().unwrap_err().kind(),
        DecodeErrorKind::TypeMismatch
    );
    assert!(deep.native::<Nest>().is_some(), "as its own type it is shared");
    assert_eq!(deep.payload_str(), "[native value]");
    let json = TopicMessage::new("t", nest(300))
        .unwrap()
        .payload_str()
        .into_owned();
    assert_eq!(json, format!("{}{}", "[".repeat(301), "]".repeat(301)));
}

/// Passes when `r` decoded, or failed with a codec error (hostile bytes
/// may happen to decode; they must never be a type mismatch or a panic).
fn codec_error<T: std::fmt::Debug>(r: Result<T, tokio_memq::DecodeError>, what: &str) {
    if let Err(e) = r {
        assert!(matches!(e.kind(), DecodeErrorKind::Codec(_)), "{what}: {e:?}");
    }
}

/// Hostile bytes in every format (random, truncated, huge declared
/// lengths, a frame header in front of garbage) give typed decode errors
/// through every read path, and never allocate much past the queue's
/// decode limit.
#[tokio::test]
async fn hostile_payloads_give_typed_errors_within_bounded_memory() {
    // The only test of this binary that measures; the others allocate
    // little, well under the bound below.
    let limits = DecodeLimits::new().with_max_decoded_size(1 << 20);
    let mq = MessageQueue::with_decode_limits(limits);
    let sub = mq.subscriber("hostile").await.unwrap();
    let publisher = mq.publisher("hostile");

    let mut payloads: Vec<(SerializationFormat, Vec<u8>)> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let formats = [
        SerializationFormat::Bincode,
        SerializationFormat::Json,
        SerializationFormat::MessagePack,
    ];
    for f in &formats {
        for len in [0usize, 1, 2, 3, 5, 8, 16, 64, 300] {
            for _ in 0..4 {
                payloads.push((f.clone(), (0..len).map(|_| rng.gen()).collect()));
            }
        }
        let good = TopicMessage::new_with_format("x", vec![order(1), order(2)], f.clone()).unwrap();
        let good = good.payload_bytes().to_vec();
        for cut in 0..good.len() {
            payloads.push((f.clone(), good[..cut].to_vec()));
        }
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"\0\0");
        payloads.push((f.clone(), trailing));
        let mut framed = b"TMQ\x02\x01\x00".to_vec();
        framed.extend((0..40).map(|_| rng.gen::<u8>()));
        payloads.push((f.clone(), framed));
    }
    // Declared lengths far past the input: bincode varint u64::MAX / 2^40,
    // MessagePack array32 / bin32 / str32 of 4 Gi, JSON a long number.
    payloads.push((
        SerializationFormat::Bincode,
        vec![0xFD, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3],
    ));
    payloads.push((
        SerializationFormat::Bincode,
        vec![0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ));
    payloads.push((
        SerializationFormat::MessagePack,
        vec![0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2],
    ));
    payloads.push((
        SerializationFormat::MessagePack,
        vec![0xC6, 0xFF, 0xFF, 0xFF, 0xFF, 1],
    ));
    payloads.push((
        SerializationFormat::MessagePack,
        vec![0xDB, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
    ));
    payloads.push((
        SerializationFormat::Json,
        format!("[{}]", "9".repeat(5000)).into_bytes(),
    ));

    memq_testkit::alloc::reset_peak();
    let base = memq_testkit::alloc::live();
    for (f, bytes) in &payloads {
        publisher.publish_bytes(bytes.clone(), f.clone()).await.unwrap();
        let m = w(sub.recv()).await.unwrap();
        let what = format!("{f} {bytes:02x?}");
        codec_error(m.deserialize::<Vec<Order>>(), &what);
        codec_error(m.deserialize::<Vec<u64>>(), &what);
        codec_error(m.deserialize::<Vec<()>>(), &what);
        codec_error(m.deserialize::<String>(), &what);
        codec_error(m.deserialize::<Vec<Bytes>>(), &what);
        codec_error(m.deserialize::<HashMap<String, Vec<u8>>>(), &what);
        codec_error(m.deserialize::<serde_json::Value>(), &what);
        codec_error(
            m.deserialize_with_limits::<Vec<u64>>(&DecodeLimits::new().with_max_decoded_size(64)),
            &what,
        );
        codec_error(
            m.deserialize_with_format::<Vec<u64>>(&SerializationFormat::Json),
            &what,
        );
    }
    let peak = memq_testkit::alloc::peak() - base;
    assert!(peak < 16 << 20, "peak {peak} bytes over a 1 MiB decode limit");
}

/// Deep nesting is refused as `TooDeep` in every format, at the queue's
/// depth limit, while values within it decode.
#[tokio::test]
async fn deep_nesting_is_too_deep_in_every_format() {
    let mq = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_depth(16));
    let sub = mq.subscriber("deep").await.unwrap();
    let publisher = mq.publisher("deep");
    let json = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let msgpack = |n: usize| {
        let mut v = vec![0x91u8; n - 1];
        v.push(0x90);
        v
    };
    let bincode = |n: usize| {
        // `Nest` in bincode: a length of one per level, then an empty one.
        let mut v = vec![1u8; n];
        v.push(0);
        v
    };
    let cases: [(SerializationFormat, Vec<u8>, bool); 6] = [
        (SerializationFormat::Json, json(4), true),
        (SerializationFormat::Json, json(100_000), false),
        (SerializationFormat::MessagePack, msgpack(4), true),
        (SerializationFormat::MessagePack, msgpack(100_000), false),
        (SerializationFormat::Bincode, bincode(4), true),
        (SerializationFormat::Bincode, bincode(100_000), false),
    ];
    for (f, bytes, ok) in &cases {
        publisher.publish_bytes(bytes.clone(), f.clone()).await.unwrap();
        let m = w(sub.recv()).await.unwrap();
        let got = if *f == SerializationFormat::Bincode {
            m.deserialize::<other::Nest>().map(|_| ())
        } else {
            m.deserialize::<serde_json::Value>().map(|_| ())
        };
        match (ok, got) {
            (true, Ok(())) => {}
            (false, Err(e)) => assert_eq!(e.kind(), DecodeErrorKind::Codec(CodecErrorKind::TooDeep), "{f}"),
            (ok, got) => panic!("{f} ({} bytes): want ok={ok}, got {got:?}", bytes.len()),
        }
    }
}

// ---------------------------------------------------------------------
// Lent batches
// ---------------------------------------------------------------------

/// A lent batch consumes what it holds even when dropped unread; messages
/// taken out outlive it and the subscriber; lag and close read as for
/// `recv_batch`.
#[tokio::test]
async fn lent_batches_consume_on_receipt_and_taken_messages_outlive_them() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(4),
        ..TopicOptions::default()
    };
    let sub = mq.subscriber_with_options("lent", options).await.unwrap();
    let publisher = mq.publisher("lent");
    publisher
        .publish_batch((0..3u32).collect::<Vec<_>>())
        .await
        .unwrap();
    drop(w(sub.recv_batch_lent(2)).await.unwrap());
    assert_eq!(sub.lag(), 1);
    let kept = {
        let batch = w(sub.recv_batch_lent(10)).await.unwrap();
        assert_eq!(batch.len(), 1);
        batch.get(0).unwrap().to_message()
    };
    assert_eq!((kept.offset(), kept.deserialize::<u32>().unwrap()), (2, 2));
    // Six more into room for four: two evicted unread.
    for i in 3..9u32 {
        publisher.publish(i).await.unwrap();
    }
    assert_eq!(
        w(sub.recv_batch_lent(10)).await.unwrap_err(),
        RecvError::Lagged(2)
    );
    let batch = w(sub.recv_batch_lent(10)).await.unwrap();
    let taken = batch.into_messages();
    drop(sub);
    assert_eq!(
        taken
            .iter()
            .map(|m| (m.offset(), m.deserialize::<u32>().unwrap()))
            .collect::<Vec<_>>(),
        [(5, 5), (6, 6), (7, 7), (8, 8)]
    );
    let sub = mq.subscriber("lent").await.unwrap();
    drop(publisher);
    mq.close();
    assert_eq!(w(sub.recv_batch_lent(10)).await.unwrap_err(), RecvError::Closed);
}

// ---------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------

/// Headers, key and format go along when a received message (codec
/// encoded, with headers) is published again to another queue; that
/// queue's decode limits apply there, not the first queue's.
#[tokio::test]
async fn republishing_to_another_queue_keeps_headers_and_uses_that_queue_s_limits() {
    let strict = MessageQueue::with_decode_limits(DecodeLimits::new().with_max_decoded_size(16));
    strict.register_topic_defaults(
        "src",
        SerializationFormat::Json,
        SerializationConfig::Default,
        Some(gzip_json()),
    );
    let roomy = MessageQueue::new();
    let src = strict.subscriber("src").await.unwrap();
    let dst = roomy.subscriber("dst").await.unwrap();
    let long = "z".repeat(200);
    strict
        .publisher("src")
        .publish_with_key_and_headers("key", long.clone(), trace(5))
        .await
        .unwrap();
    let got = w(src.recv()).await.unwrap();
    let err = got.deserialize::<String>().unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Codec(CodecErrorKind::TooLarge));
    roomy.publisher("dst").publish_message(got.clone()).await.unwrap();
    let there = w(dst.recv()).await.unwrap();
    assert_eq!(
        (there.key(), there.headers(), &there.format),
        (Some("key"), &trace(5), &SerializationFormat::Json)
    );
    assert_eq!(there.payload_bytes(), got.payload_bytes());
    assert_eq!(
        there.deserialize::<String>().unwrap(),
        long,
        "the roomy queue's limits"
    );
    let lent =
        w(roomy.subscriber_with_options_and_mode("dst", TopicOptions::default(), ConsumptionMode::Earliest))
            .await
            .unwrap();
    let batch = w(lent.recv_batch_lent(1)).await.unwrap();
    assert_eq!(batch.get(0).unwrap().deserialize::<String>().unwrap(), long);
    assert_eq!(batch.get(0).unwrap().headers(), &trace(5));
}

/// Takes the next message either member has, and which member took it.
async fn either<'a>(a: &'a Subscriber, b: &'a Subscriber) -> (TopicMessage, &'a Subscriber) {
    loop {
        if let Ok(m) = a.try_recv_now() {
            return (m, a);
        }
        if let Ok(m) = b.try_recv_now() {
            return (m, b);
        }
        tokio::task::yield_now().await;
    }
}

/// Headers survive a partitioned topic's group with manual acks, a
/// redelivery and a dead letter.
#[tokio::test]
async fn headers_survive_partitioned_groups_redelivery_and_dead_letters() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("hp", TopicOptions::default(), 2)
        .await
        .unwrap();
    route(&mq, "hp", 1).await;
    let dead = mq.subscriber("hp.dead").await.unwrap();
    let join = || {
        mq.group("hp", "g")
            .manual_ack()
            .max_deliveries(2)
            .dead_letter_topic("hp.dead")
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (a, b) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("hp")
        .publish_with_key_and_headers("k", 5u32, trace(9))
        .await
        .unwrap();
    let (first, owner) = w(either(&a, &b)).await;
    assert_eq!(
        (first.partition, first.headers(), first.deliveries),
        (Some(1), &trace(9), 1)
    );
    owner.nack(&first).unwrap();
    let (again, owner) = w(either(&a, &b)).await;
    assert_eq!(
        (again.headers(), again.deliveries, again.key()),
        (&trace(9), 2, Some("k"))
    );
    let typed_again = again.deserialize::<u32>().unwrap();
    assert_eq!(typed_again, 5);
    owner.nack(&again).unwrap();
    let letter = w(dead.recv()).await.unwrap();
    let origin = letter.dead_letter().expect("a dead letter");
    assert_eq!(
        (origin.partition, origin.offset, origin.deliveries),
        (Some(1), 0, 2)
    );
    let own: Vec<(String, Vec<u8>)> = letter
        .headers()
        .iter()
        .filter(|(n, _)| !n.starts_with("memq.dead_letter."))
        .map(|(n, v)| (n.to_owned(), v.to_vec()))
        .collect();
    let published: Vec<(String, Vec<u8>)> =
        trace(9).iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect();
    assert_eq!(own, published, "its own headers, in order, next to the origin");
    assert_eq!(letter.deserialize::<u32>().unwrap(), 5);
    assert_eq!(letter.key(), Some("k"));
}

/// Receives until nothing is left now: (offsets delivered, lag reported).
fn drain_counting(sub: &Subscriber) -> (Vec<u64>, u64) {
    let (mut got, mut lagged) = (Vec::new(), 0);
    loop {
        match sub.try_recv_now() {
            Ok(m) => got.push(m.offset()),
            Err(TryRecvError::Lagged(n)) => lagged += n,
            Err(TryRecvError::Empty) => return (got, lagged),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// Messages a plain typed batch put back are then evicted: each offset is
/// either delivered or counted as lost, never both, and the lag said so.
#[tokio::test]
async fn messages_put_back_then_evicted_are_delivered_or_lagged_never_both() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(4),
        ..TopicOptions::default()
    };
    let sub = mq.subscriber_with_options("ev", options).await.unwrap();
    let publisher = mq.publisher("ev");
    publisher.publish(0u32).await.unwrap();
    publisher.publish("x").await.unwrap();
    publisher.publish(2u32).await.unwrap();
    publisher.publish(3u32).await.unwrap();
    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [0]);
    for i in 4..8u32 {
        publisher.publish(i).await.unwrap();
    }
    let lag = sub.lag();
    let (got, lagged) = drain_counting(&sub);
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no offset twice: {got:?}");
    assert_eq!(
        got.len() as u64 + lagged,
        7,
        "offsets 1..8 once each: got {got:?}, lagged {lagged}"
    );
    assert_eq!(lag, 7, "the lag counted the same");
}

/// The same for a merged subscriber, whose typed batch puts messages aside.
#[tokio::test]
async fn messages_put_aside_then_evicted_are_delivered_or_lagged_never_both() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(4),
        ..TopicOptions::default()
    };
    let sub = partitioned(&mq, "evm", options).await;
    route(&mq, "evm", 0).await;
    let publisher = mq.publisher("evm");
    publisher.publish(0u32).await.unwrap();
    publisher.publish("x").await.unwrap();
    publisher.publish(2u32).await.unwrap();
    publisher.publish(3u32).await.unwrap();
    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [0]);
    for i in 4..8u32 {
        publisher.publish(i).await.unwrap();
    }
    let lag = sub.lag();
    let (got, lagged) = drain_counting(&sub);
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no offset twice: {got:?}");
    assert_eq!(
        got.len() as u64 + lagged,
        7,
        "offsets 1..8 once each: got {got:?}, lagged {lagged}"
    );
    assert_eq!(lag, 7, "the lag counted the same");
}

/// An owned stream of a plain subscriber starts with what a typed batch
/// put back; a closed topic's typed batch hands out what is left first.
#[tokio::test]
async fn an_owned_stream_and_a_closed_topic_hand_out_what_a_typed_batch_put_back() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("os").await.unwrap();
    let publisher = mq.publisher("os");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("x").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    assert_eq!(w(sub.recv_batch_typed::<u32>(10)).await.unwrap(), [1]);
    drop(publisher);
    mq.close();
    let mut stream = sub.into_stream();
    let offsets: Vec<u64> = w(async {
        let mut v = Vec::new();
        while let Some(m) = stream.next().await {
            v.push(m.unwrap().offset());
        }
        v
    })
    .await;
    assert_eq!(offsets, [1, 2]);

    let mq = MessageQueue::new();
    let sub = partitioned(&mq, "osm", TopicOptions::default()).await;
    let publisher = mq.publisher("osm");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("x").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    let first = w(sub.recv_batch_typed::<u32>(10)).await;
    drop(publisher);
    mq.close();
    let mut n = first.map_or(0, |v| v.len());
    let mut errors = 0;
    loop {
        match w(sub.recv_batch_typed::<u32>(10)).await {
            Ok(v) => n += v.len(),
            Err(RecvTypedError::Decode(_)) => errors += 1,
            Err(RecvTypedError::Recv(RecvError::Closed)) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((n, errors), (2, 1));
}

/// A frame's header says its format whatever format the reader names
/// (MessagePack here; `Raw` is the documented exception of
/// `memq_codec::decode_frame`: raw bytes are never searched for a header).
#[tokio::test]
async fn a_frame_header_wins_over_the_format_a_reader_names() {
    let mq = MessageQueue::new();
    let framed = PipelineConfig {
        use_magic_header: true,
        ..PipelineConfig::default()
    };
    mq.register_topic_defaults(
        "fr",
        SerializationFormat::Json,
        SerializationConfig::Default,
        Some(framed),
    );
    let sub = mq.subscriber("fr").await.unwrap();
    mq.publisher("fr").publish("hello".to_string()).await.unwrap();
    let m = w(sub.recv()).await.unwrap();
    assert_eq!(&m.payload_bytes()[..3], b"TMQ");
    for f in [SerializationFormat::MessagePack, SerializationFormat::Bincode] {
        assert_eq!(m.deserialize_with_format::<String>(&f).unwrap(), "hello", "{f}");
    }
    let raw = m
        .deserialize_with_format::<Vec<u8>>(&SerializationFormat::Raw)
        .unwrap();
    assert_eq!(raw, m.payload_bytes(), "raw: the bytes as they are");
}
