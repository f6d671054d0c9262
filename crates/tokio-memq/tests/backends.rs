//! The delivery contract, run against both backends: an in-memory queue
//! (`MessageQueue::new`) and a queue over a real `redis-server`
//! (`MessageQueue::connect`, the `redis` feature) that each test starts on
//! a free port of 127.0.0.1. The same test body runs on each, so code that
//! passes here behaves the same whichever queue it is given.
//!
//! Without `redis-server` the Redis half says it skipped; with `CI` set a
//! missing server fails (`.ci/run` installs it). Also here: the documented
//! differences, each a typed error.
#![cfg(feature = "redis")]

use memq_testkit::within;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use memq_testkit::redis_server::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::time::timeout;
use tokio_memq::{
    ConsumptionMode, Headers, MessageQueue, PublishError, RecvError, SerializationFormat, StoreErrorKind,
    TopicError, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(30);

/// The queues a test runs on: in memory, and over Redis when a server
/// could be started (kept alive by the returned handle).
async fn backends() -> (Vec<(&'static str, MessageQueue)>, Option<RedisServer>) {
    let mut queues = vec![("memory", MessageQueue::new())];
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("starting the server does not panic");
    if let Some(server) = &server {
        let mq = within(LIMIT, MessageQueue::connect(&server.url()))
            .await
            .expect("connects in time")
            .expect("connects");
        queues.push(("redis", mq));
    }
    (queues, server)
}

/// Runs `body` on every backend, naming the backend in a failure.
macro_rules! on_each_backend {
    (|$mq:ident, $name:ident| $body:block) => {{
        let (queues, _server) = backends().await;
        for ($name, $mq) in queues {
            let run = async { $body };
            within(LIMIT, run)
                .await
                .unwrap_or_else(|_| panic!("{}: timed out", $name));
        }
    }};
}

/// `f` on a thread outside the runtime; its result, or a failure after
/// `LIMIT` (the thread is left behind: a hang fails the test, not CI).
fn on_plain_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    tokio::task::block_in_place(|| rx.recv_timeout(LIMIT)).expect("the thread finishes in time")
}

fn latest() -> TopicOptions {
    TopicOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_make_one_gapless_sequence_in_order() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("orders", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let publish = |tag: &'static str| {
            let publisher = mq.publisher("orders");
            tokio::spawn(async move {
                for i in 0..100u32 {
                    publisher.publish(format!("{tag}-{i}")).await.unwrap();
                }
            })
        };
        let (a, b) = (publish("a"), publish("b"));
        a.await.unwrap();
        b.await.unwrap();
        let mut offsets = Vec::new();
        let mut per_tag: HashMap<String, Vec<u32>> = HashMap::new();
        while offsets.len() < 200 {
            let msg = sub.recv().await.unwrap();
            offsets.push(msg.offset());
            let text: String = msg.deserialize().unwrap();
            let (tag, i) = text.split_once('-').unwrap();
            per_tag
                .entry(tag.to_owned())
                .or_default()
                .push(i.parse().unwrap());
        }
        assert_eq!(
            offsets,
            (0..200).collect::<Vec<u64>>(),
            "{backend}: one gapless sequence"
        );
        for (tag, seen) in per_tag {
            assert_eq!(seen, (0..100).collect::<Vec<u32>>(), "{backend}: {tag}'s order");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_contiguous_and_batch_receives_keep_order() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("chunks", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let publisher = mq.publisher("chunks");
        assert_eq!(publisher.publish("first").await.unwrap(), 0, "{backend}");
        let run = publisher
            .publish_batch((0..10u32).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(run, 1..11, "{backend}");
        let mut got = Vec::new();
        while got.len() < 11 {
            got.extend(sub.recv_batch(64).await.unwrap());
        }
        let offsets: Vec<u64> = got.iter().map(|m| m.offset()).collect();
        assert_eq!(offsets, (0..11).collect::<Vec<u64>>(), "{backend}");
        let values: Vec<u32> = got[1..].iter().map(|m| m.deserialize().unwrap()).collect();
        assert_eq!(values, (0..10).collect::<Vec<u32>>(), "{backend}");
        // An empty batch stores nothing.
        let empty = publisher.publish_batch(Vec::<u32>::new()).await.unwrap();
        assert!(empty.is_empty(), "{backend}: {empty:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_positions_and_an_offset_outside_the_window() {
    on_each_backend!(|mq, backend| {
        mq.publisher("log")
            .publish_batch(vec!["a", "b", "c"])
            .await
            .unwrap();
        let at = |mode| mq.subscriber_with_options_and_mode("log", latest(), mode);
        let earliest = at(ConsumptionMode::Earliest).await.unwrap();
        let from1 = at(ConsumptionMode::Offset(1)).await.unwrap();
        let newest = at(ConsumptionMode::Latest).await.unwrap();
        mq.publisher("log").publish("d").await.unwrap();
        assert_eq!(
            earliest.recv().await.unwrap().deserialize::<String>().unwrap(),
            "a",
            "{backend}"
        );
        assert_eq!(from1.recv().await.unwrap().offset(), 1, "{backend}");
        assert_eq!(newest.recv().await.unwrap().offset(), 3, "{backend}");
        match at(ConsumptionMode::Offset(9)).await {
            Err(TopicError::OutOfRange(r)) => {
                assert_eq!((r.requested, r.low, r.high), (9, 0, 4), "{backend}")
            }
            other => panic!("{backend}: expected OutOfRange, got {other:?}"),
        }
        // Seeking back reads again.
        from1.seek(0).await.unwrap();
        assert_eq!(from1.recv().await.unwrap().offset(), 0, "{backend}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_retention_is_told_exactly_how_many_it_lost() {
    on_each_backend!(|mq, backend| {
        let options = TopicOptions {
            max_messages: Some(3),
            ..TopicOptions::default()
        };
        let sub = mq
            .subscriber_with_options_and_mode("ticks", options, ConsumptionMode::Latest)
            .await
            .unwrap();
        for tick in 0..10u32 {
            mq.publisher("ticks").publish(tick).await.unwrap();
        }
        assert_eq!(sub.recv().await.unwrap_err(), RecvError::Lagged(7), "{backend}");
        let rest: Vec<u32> = sub
            .recv_batch(10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.deserialize().unwrap())
            .collect();
        assert_eq!(rest, [7, 8, 9], "{backend}");
        let stats = mq.get_topic_stats("ticks").await.unwrap();
        assert_eq!(
            (
                stats.message_count,
                stats.low_offset,
                stats.next_offset,
                stats.published
            ),
            (3, 7, 10, 10),
            "{backend}"
        );
    });
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_bytes_keys_and_headers_arrive_as_published() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("mixed", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let publisher = mq.publisher("mixed");
        let order = Order {
            id: 7,
            items: vec!["tea".into(), "cake".into()],
        };
        publisher.publish(order.clone()).await.unwrap();
        publisher
            .publish_with_format(order.clone(), SerializationFormat::MessagePack)
            .await
            .unwrap();
        publisher
            .publish_bytes(vec![0u8, 159, 146, 150, 255], SerializationFormat::Raw)
            .await
            .unwrap();
        let mut headers = Headers::new();
        headers.insert("trace-id", "abc");
        publisher
            .publish_with_key_and_headers("customer-9", 5u32, headers)
            .await
            .unwrap();

        let native = sub.recv().await.unwrap();
        assert_eq!(native.deserialize::<Order>().unwrap(), order, "{backend}");
        let packed = sub.recv().await.unwrap();
        assert_eq!(packed.format, SerializationFormat::MessagePack, "{backend}");
        assert_eq!(packed.deserialize::<Order>().unwrap(), order, "{backend}");
        let raw = sub.recv().await.unwrap();
        assert_eq!(raw.format, SerializationFormat::Raw, "{backend}");
        assert_eq!(
            &raw.bytes().unwrap()[..],
            [0u8, 159, 146, 150, 255],
            "{backend}: binary intact"
        );
        let keyed = sub.recv().await.unwrap();
        assert_eq!(keyed.key.as_deref(), Some("customer-9"), "{backend}");
        assert_eq!(
            keyed.headers().get("trace-id").map(|v| &v[..]),
            Some(&b"abc"[..]),
            "{backend}"
        );
        assert_eq!(keyed.deserialize::<u32>().unwrap(), 5, "{backend}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_share_messages_each_to_exactly_one() {
    on_each_backend!(|mq, backend| {
        let join = || mq.subscriber_group("jobs", "workers", ConsumptionMode::Latest);
        let (a, b) = (join().await.unwrap(), join().await.unwrap());
        assert_eq!(a.group(), Some("workers"), "{backend}");
        let publisher = mq.publisher("jobs");
        let work = |member: tokio_memq::Subscriber| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Ok(Some(msg)) = member.recv_timeout(Duration::from_millis(1500)).await {
                    seen.push(msg.offset());
                }
                seen
            })
        };
        let (wa, wb) = (work(a), work(b));
        for i in 0..40u32 {
            publisher.publish(i).await.unwrap();
        }
        let (sa, sb) = (wa.await.unwrap(), wb.await.unwrap());
        let all: BTreeSet<u64> = sa.iter().chain(&sb).copied().collect();
        assert_eq!(
            sa.len() + sb.len(),
            40,
            "{backend}: nothing twice ({sa:?} / {sb:?})"
        );
        assert_eq!(all, (0..40).collect::<BTreeSet<u64>>(), "{backend}: nothing lost");
        let stats = mq.get_group_stats("jobs", "workers").await.unwrap();
        assert_eq!((stats.lag, stats.pending), (0, 0), "{backend}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_come_back_with_their_delivery_count_then_dead_letters() {
    on_each_backend!(|mq, backend| {
        let join = || {
            mq.group("emails", "senders")
                .mode(ConsumptionMode::Latest)
                .manual_ack()
                .ack_timeout(Duration::from_millis(200))
                .max_deliveries(2)
                .dead_letter_topic("emails.failed")
                .join()
        };
        let (a, b) = (join().await.unwrap(), join().await.unwrap());
        let failed = mq
            .subscriber_with_options_and_mode("emails.failed", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        mq.publisher("emails").publish("welcome").await.unwrap();
        mq.publisher("emails").publish("receipt").await.unwrap();

        // The first: acknowledged at once, never seen again.
        let first = a.recv().await.unwrap();
        assert_eq!((first.offset(), first.deliveries), (0, 1), "{backend}");
        a.ack(&first).unwrap();
        // The second: handed back twice, then a dead letter.
        let second = b.recv().await.unwrap();
        assert_eq!((second.offset(), second.deliveries), (1, 1), "{backend}");
        b.nack(&second).unwrap();
        // Either member may take it over; the one that did hands it back.
        let (holder, again) = tokio::select! {
            m = a.recv() => (&a, m.unwrap()),
            m = b.recv() => (&b, m.unwrap()),
        };
        assert_eq!((again.offset(), again.deliveries), (1, 2), "{backend}");
        holder.nack(&again).unwrap();
        // Both members keep asking; the third delivery becomes a dead letter.
        let letter = tokio::select! {
            l = failed.recv() => l.unwrap(),
            m = a.recv() => panic!("{backend}: delivered past the limit: {m:?}"),
            m = b.recv() => panic!("{backend}: delivered past the limit: {m:?}"),
        };
        assert_eq!(letter.deserialize::<String>().unwrap(), "receipt", "{backend}");
        let origin = letter
            .dead_letter()
            .expect("a dead letter says where it came from");
        assert_eq!(
            (&*origin.topic, &*origin.group, origin.offset, origin.deliveries),
            ("emails", "senders", 1, 2),
            "{backend}"
        );
        assert_eq!(
            origin.reason,
            tokio_memq::DeadLetterReason::MaxDeliveries { limit: 2 },
            "{backend}"
        );
        assert!(
            a.recv_timeout(Duration::from_millis(500))
                .await
                .unwrap()
                .is_none(),
            "{backend}: nothing else"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_dropped_midway_lose_nothing() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("ticks", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let publisher = mq.publisher("ticks");
        let feeder = tokio::spawn(async move {
            for i in 0..60u32 {
                publisher.publish(i).await.unwrap();
                if i % 7 == 0 {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 60 {
            // Most of these time out and are dropped while they wait.
            if let Ok(msg) = timeout(Duration::from_micros(700), sub.recv()).await {
                got.push(msg.unwrap().deserialize::<u32>().unwrap());
            }
        }
        feeder.await.unwrap();
        assert_eq!(
            got,
            (0..60).collect::<Vec<u32>>(),
            "{backend}: no loss, no repeat"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_queue_wakes_a_waiting_receive_and_stops_publishers() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("idle", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let publisher = mq.publisher("idle");
        let waiting = tokio::spawn(async move { sub.recv().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        mq.close();
        assert_eq!(
            waiting.await.unwrap().unwrap_err(),
            RecvError::Closed,
            "{backend}"
        );
        assert!(publisher.is_closed(), "{backend}");
        assert!(
            matches!(publisher.publish(1u8).await, Err(PublishError::Closed(1))),
            "{backend}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_ends_its_readers_and_bound_publishers() {
    on_each_backend!(|mq, backend| {
        let publisher = mq.publisher("temp");
        publisher.publish(1u8).await.unwrap();
        let sub = mq
            .subscriber_with_options_and_mode("temp", latest(), ConsumptionMode::Earliest)
            .await
            .unwrap();
        assert_eq!(sub.recv().await.unwrap().offset(), 0, "{backend}");
        assert_eq!(mq.list_topics().await, ["temp"], "{backend}");
        assert!(mq.delete_topic("temp").await, "{backend}");
        assert!(!mq.delete_topic("temp").await, "{backend}: gone already");
        assert_eq!(
            sub.recv().await.unwrap_err(),
            RecvError::Closed,
            "{backend}: not a hang"
        );
        assert!(
            matches!(publisher.publish(2u8).await, Err(PublishError::Closed(2))),
            "{backend}: bound to the deleted topic"
        );
        // A new topic under the name starts over.
        assert_eq!(mq.publisher("temp").publish(3u8).await.unwrap(), 0, "{backend}");
    });
}

/// What a queue over Redis cannot do is a typed error where it is asked,
/// never a silent difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_differences_are_typed_errors() {
    let (queues, _server) = backends().await;
    for (backend, mq) in queues {
        let remote = backend == "redis";
        let refused = |kind: Option<StoreErrorKind>| kind == Some(StoreErrorKind::Unsupported);
        let try_published = mq.publisher("t").try_publish(1u8);
        let kind = match &try_published {
            Err(PublishError::Store { error, .. }) => Some(error.kind()),
            _ => None,
        };
        assert_eq!(refused(kind), remote, "{backend}: try_publish {try_published:?}");
        let blocking = TopicOptions {
            lru_enabled: false,
            ..TopicOptions::default()
        };
        let created = mq.create_topic("held", blocking).await;
        let kind = match &created {
            Err(TopicError::Store(e)) => Some(e.kind()),
            _ => None,
        };
        assert_eq!(refused(kind), remote, "{backend}: lru_enabled false {created:?}");
        let pattern = mq.subscribe_pattern("t.*");
        assert_eq!(pattern.is_err(), remote, "{backend}: wildcards");
        if remote {
            // Named consumers and exclusive groups have no server form.
            mq.create_partitioned_topic("parts", TopicOptions::default(), 2)
                .await
                .unwrap();
            let named = mq
                .subscribe_partition("parts", 0, Some("audit".into()), ConsumptionMode::Earliest)
                .await;
            assert!(
                matches!(&named, Err(TopicError::Store(e)) if e.kind() == StoreErrorKind::Unsupported),
                "{named:?}"
            );
            let exclusive = mq.group("parts", "owners").exclusive().join().await;
            assert!(
                matches!(&exclusive, Err(TopicError::Store(e)) if e.kind() == StoreErrorKind::Unsupported),
                "{exclusive:?}"
            );
            // A blocking publish from a plain thread runs on the queue's
            // runtime; a blocking receive is refused.
            let publisher = mq.publisher("from-thread");
            let offset = on_plain_thread(move || publisher.blocking_publish(7u8));
            assert_eq!(offset.unwrap(), 0);
            let reader = mq
                .subscriber_with_options_and_mode("from-thread", latest(), ConsumptionMode::Earliest)
                .await
                .unwrap();
            let refused = on_plain_thread(move || reader.blocking_recv());
            assert!(
                matches!(&refused, Err(RecvError::Store(e)) if e.kind() == StoreErrorKind::Unsupported),
                "{refused:?}"
            );
            // Nothing to commit to (no named consumers on the server).
            assert!(matches!(
                mq.subscriber("t").await.unwrap().commit(0).await,
                Err(tokio_memq::CommitError::NoSuchPartition { partitions: 0, .. })
            ));
            // Synchronous calls wait for nobody: refused, not blocking.
            let sync = mq.publisher("t").try_publish(2u8);
            assert!(matches!(sync, Err(PublishError::Store { value: 2, .. })));
            let sub = mq.subscriber("t").await.unwrap();
            assert!(matches!(
                sub.try_recv_now(),
                Err(tokio_memq::TryRecvError::Store(_))
            ));
            // Native values cross as JSON: no shared `Arc` on the other side.
            let sub = mq
                .subscriber_with_options_and_mode("native", latest(), ConsumptionMode::Latest)
                .await
                .unwrap();
            mq.publisher("native").publish(vec![1u16, 2]).await.unwrap();
            let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
            assert_eq!(msg.format, SerializationFormat::Json);
            assert!(msg.native::<Vec<u16>>().is_none());
            assert_eq!(msg.deserialize::<Vec<u16>>().unwrap(), [1, 2]);
        }
    }
}

/// Two queues connected to one server are two processes' views: one
/// topic, one sequence, messages from either reach both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_share_topics_offsets_and_groups() {
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await.unwrap() else {
        return;
    };
    let a = MessageQueue::connect(&server.url()).await.unwrap();
    let b = MessageQueue::connect(&server.url()).await.unwrap();
    let sub_b = b
        .subscriber_with_options_and_mode("shared", latest(), ConsumptionMode::Latest)
        .await
        .unwrap();
    assert_eq!(a.publisher("shared").publish("from a").await.unwrap(), 0);
    assert_eq!(b.publisher("shared").publish("from b").await.unwrap(), 1);
    let got: Vec<String> = within(LIMIT, async {
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(
                sub_b
                    .recv_batch(2)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.deserialize::<String>().unwrap()),
            );
        }
        got
    })
    .await
    .unwrap();
    assert_eq!(got, ["from a", "from b"]);
    assert_eq!(a.list_topics().await, ["shared"]);
    // One group across the two: each message to one of them.
    let ga = a
        .subscriber_group("shared", "g", ConsumptionMode::Latest)
        .await
        .unwrap();
    let gb = b
        .subscriber_group("shared", "g", ConsumptionMode::Latest)
        .await
        .unwrap();
    a.publisher("shared").publish_batch(vec!["x", "y"]).await.unwrap();
    let mut offsets = BTreeSet::new();
    within(LIMIT, async {
        while offsets.len() < 2 {
            tokio::select! {
                m = ga.recv() => assert!(offsets.insert(m.unwrap().offset()), "twice"),
                m = gb.recv() => assert!(offsets.insert(m.unwrap().offset()), "twice"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(offsets, BTreeSet::from([2, 3]));
    let stats = b.get_group_stats("shared", "g").await.unwrap();
    assert_eq!((stats.members, stats.lag, stats.pending), (2, 0, 0));
    // Deleted by one process: the other's waiting reader is told, and its
    // publisher too.
    let publisher_b = b.publisher("shared");
    publisher_b.publish("before").await.unwrap();
    let offsets: Vec<u64> = within(LIMIT, sub_b.recv_batch(3))
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|m| m.offset())
        .collect();
    assert_eq!(offsets, [2, 3, 4], "the group's two, then this one");
    let waiting = tokio::spawn(async move { within(LIMIT, sub_b.recv()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(a.delete_topic("shared").await);
    assert_eq!(waiting.await.unwrap().unwrap().unwrap_err(), RecvError::Closed);
    // Created again by the other process: a new publisher and a new
    // reader here find the new topic, though this process held the old.
    assert_eq!(a.publisher("shared").publish("again").await.unwrap(), 0);
    assert_eq!(b.publisher("shared").publish("and again").await.unwrap(), 1);
    let sub_new = b
        .subscriber_with_options_and_mode("shared", latest(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    let again: Vec<String> = within(LIMIT, sub_new.recv_batch(2))
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|m| m.deserialize().unwrap())
        .collect();
    assert_eq!(again, ["again", "and again"]);
    assert!(
        matches!(publisher_b.publish("after").await, Err(PublishError::Closed(_))),
        "bound to the deleted topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_topics_route_by_key_and_keep_per_key_order() {
    on_each_backend!(|mq, backend| {
        mq.create_partitioned_topic("clicks", TopicOptions::default(), 3)
            .await
            .unwrap();
        let err = mq
            .create_partitioned_topic("clicks", TopicOptions::default(), 4)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            TopicError::PartitionCount {
                topic: "clicks".into(),
                requested: 4,
                existing: Some(3)
            },
            "{backend}"
        );
        assert_eq!(mq.list_partitioned_topics().await, ["clicks"], "{backend}");
        // Round-robin (the default): a batch takes consecutive partitions.
        let placed = mq
            .publisher("clicks")
            .publish_batch_placed(vec!["a", "b", "c", "d"])
            .await
            .unwrap();
        assert_eq!(placed, [(0, 0), (1, 0), (2, 0), (0, 1)], "{backend}");
        // By key: one key, one partition, in order.
        mq.set_partition_routing("clicks", tokio_memq::PartitionRouting::Hash)
            .await
            .unwrap();
        let all = mq
            .subscriber_with_options_and_mode("clicks", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let publisher = mq.publisher("clicks");
        let mut partition_of = HashMap::new();
        for i in 0..30u32 {
            let user = format!("user-{}", i % 5);
            let offset = publisher.publish_with_key(user.clone(), i).await.unwrap();
            let _ = offset;
        }
        let mut per_user: HashMap<String, Vec<u32>> = HashMap::new();
        let mut per_partition: HashMap<usize, Vec<u64>> = HashMap::new();
        let mut got = 0;
        while got < 30 {
            for msg in all.recv_batch(30).await.unwrap() {
                got += 1;
                let p = msg
                    .partition
                    .expect("messages of a partitioned topic say their partition");
                let user = msg.key.as_deref().unwrap().to_owned();
                assert_eq!(
                    *partition_of.entry(user.clone()).or_insert(p),
                    p,
                    "{backend}: {user} moved"
                );
                per_user
                    .entry(user)
                    .or_default()
                    .push(msg.deserialize::<u32>().unwrap());
                per_partition.entry(p).or_default().push(msg.offset());
            }
        }
        for (user, values) in &per_user {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            assert_eq!(values, &sorted, "{backend}: {user}'s order");
            assert_eq!(values.len(), 6, "{backend}: {user}");
        }
        for (p, offsets) in &per_partition {
            let first = offsets[0];
            assert_eq!(
                offsets,
                &(first..first + offsets.len() as u64).collect::<Vec<u64>>(),
                "{backend}: partition {p} dense"
            );
        }
        // One partition alone.
        let (&p, offsets) = per_partition.iter().next().unwrap();
        let one = mq
            .subscribe_partition("clicks", p, None, ConsumptionMode::Offset(offsets[0]))
            .await
            .unwrap();
        let mine = one.recv_batch(100).await.unwrap();
        assert!(mine.iter().all(|m| m.partition == Some(p)), "{backend}");
        assert_eq!(mine[0].offset(), offsets[0], "{backend}");
        let stats = mq.get_all_partition_stats("clicks").await;
        let published: u64 = stats.iter().map(|s| s.published).sum();
        assert_eq!((stats.len(), published), (3, 34), "{backend}");
        assert_eq!(
            mq.get_topic_stats("clicks").await.unwrap().published,
            34,
            "{backend}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_every_partition_of_a_topic() {
    on_each_backend!(|mq, backend| {
        mq.create_partitioned_topic("orders", TopicOptions::default(), 2)
            .await
            .unwrap();
        let join = || mq.subscriber_group("orders", "billing", ConsumptionMode::Latest);
        let (a, b) = (join().await.unwrap(), join().await.unwrap());
        mq.publisher("orders")
            .publish_batch((0..20u32).collect::<Vec<_>>())
            .await
            .unwrap();
        let mut seen = BTreeSet::new();
        let mut count = 0;
        while count < 20 {
            let msg = tokio::select! {
                m = a.recv() => m.unwrap(),
                m = b.recv() => m.unwrap(),
            };
            count += 1;
            assert!(msg.partition.is_some(), "{backend}");
            assert!(
                seen.insert(msg.deserialize::<u32>().unwrap()),
                "{backend}: delivered twice"
            );
        }
        assert_eq!(seen, (0..20).collect::<BTreeSet<u32>>(), "{backend}");
        assert!(
            a.recv_timeout(Duration::from_millis(300))
                .await
                .unwrap()
                .is_none(),
            "{backend}: nothing more"
        );
    });
}

/// A group member's receives dropped while they wait (timeouts, the losing
/// branch of a `select!`), over several partitions at once, lose nothing
/// and hold nothing back: every message arrives once, at its first
/// delivery, long before any ack timeout could bring one back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_receives_dropped_midway_over_partitions_lose_and_delay_nothing() {
    on_each_backend!(|mq, backend| {
        mq.create_partitioned_topic("events", TopicOptions::default(), 3)
            .await
            .unwrap();
        mq.set_partition_routing("events", tokio_memq::PartitionRouting::Hash)
            .await
            .unwrap();
        let member = mq
            .group("events", "audit")
            .mode(ConsumptionMode::Latest)
            .manual_ack()
            .max_deliveries(1)
            .join()
            .await
            .unwrap();
        let publisher = mq.publisher("events");
        let feeder = tokio::spawn(async move {
            for i in 0..60u32 {
                publisher
                    .publish_with_key(format!("k{}", i % 7), i)
                    .await
                    .unwrap();
                if i % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        let mut seen = BTreeSet::new();
        memq_testkit::within(Duration::from_secs(10), async {
            while seen.len() < 60 {
                // Most of these are dropped while they wait.
                if let Ok(msg) = timeout(Duration::from_micros(700), member.recv()).await {
                    let msg = msg.unwrap();
                    assert_eq!(msg.deliveries, 1, "{backend}: delivered before");
                    member.ack(&msg).unwrap();
                    assert!(seen.insert(msg.deserialize::<u32>().unwrap()), "{backend}: twice");
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{backend}: held back: {} of 60", seen.len()));
        feeder.await.unwrap();
        assert_eq!(seen, (0..60).collect::<BTreeSet<u32>>(), "{backend}");
    });
}

/// Asking about a topic that is not there answers so, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_of_a_missing_topic_create_nothing() {
    on_each_backend!(|mq, backend| {
        assert!(mq.get_topic_stats("ghost").await.is_none(), "{backend}");
        assert!(mq.get_group_stats("ghost", "g").await.is_none(), "{backend}");
        assert!(mq.get_all_partition_stats("ghost").await.is_empty(), "{backend}");
        assert!(mq.get_partition_stats("ghost", 0).await.is_none(), "{backend}");
        assert!(!mq.delete_partitioned_topic("ghost").await, "{backend}");
        assert!(mq.list_topics().await.is_empty(), "{backend}: nothing created");
        // And after a delete.
        mq.publisher("brief").publish(1u8).await.unwrap();
        assert!(mq.delete_topic("brief").await, "{backend}");
        assert!(mq.get_topic_stats("brief").await.is_none(), "{backend}");
        assert!(mq.list_topics().await.is_empty(), "{backend}: not brought back");
    });
}

/// The queue over a server that restarts with its data (`appendfsync
/// always`) while a subscriber and a group member wait: both carry on
/// after it, and between them nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_while_receives_wait_loses_and_repeats_nothing() {
    let started = tokio::task::spawn_blocking(|| {
        RedisServer::start_with(memq_testkit::redis_server::Persistence::AofAlways)
    });
    let Some(mut server) = started.await.unwrap() else {
        return;
    };
    let mq = MessageQueue::connect(&server.url()).await.unwrap();
    let sub = mq
        .subscriber_with_options_and_mode("ledger", latest(), ConsumptionMode::Latest)
        .await
        .unwrap();
    let member = mq
        .group("ledger", "auditors")
        .mode(ConsumptionMode::Latest)
        .manual_ack()
        .join()
        .await
        .unwrap();
    let publisher = mq.publisher("ledger");
    assert_eq!(
        publisher
            .publish_batch((0..20u64).collect::<Vec<_>>())
            .await
            .unwrap(),
        0..20
    );
    let (mut read, mut claimed) = (Vec::new(), Vec::new());
    while read.len() < 20 {
        read.extend(within(LIMIT, sub.recv_batch(20)).await.unwrap().unwrap());
    }
    while claimed.len() < 20 {
        let msg = within(LIMIT, member.recv()).await.unwrap().unwrap();
        member.ack(&msg).unwrap();
        claimed.push(msg);
    }
    // Both wait on the server when it goes.
    let waiting_sub = tokio::spawn(async move {
        let mut more = Vec::new();
        while more.len() < 20 {
            more.extend(within(LIMIT, sub.recv_batch(20)).await.unwrap().unwrap());
        }
        more
    });
    let waiting_member = tokio::spawn(async move {
        let mut more = Vec::new();
        while more.len() < 20 {
            let msg = within(LIMIT, member.recv()).await.unwrap().unwrap();
            member.ack(&msg).unwrap();
            more.push(msg);
        }
        more
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::block_in_place(|| server.restart());
    let published = within(LIMIT, publisher.publish_batch((20..40u64).collect::<Vec<_>>()))
        .await
        .unwrap();
    // Not OutcomeUnknown: the quiet connection is checked before sending.
    if let Err(tokio_memq::PublishError::Store { error, .. }) = &published {
        panic!("the publish after the restart: {error:?}");
    }
    assert_eq!(published.unwrap(), 20..40);
    read.extend(waiting_sub.await.unwrap());
    claimed.extend(waiting_member.await.unwrap());
    let offsets = |msgs: &[tokio_memq::TopicMessage]| msgs.iter().map(|m| m.offset()).collect::<Vec<u64>>();
    assert_eq!(offsets(&read), (0..40).collect::<Vec<u64>>(), "the subscriber");
    let mut got = offsets(&claimed);
    got.sort_unstable();
    assert_eq!(got, (0..40).collect::<Vec<u64>>(), "the member");
    let values: Vec<u64> = read.iter().map(|m| m.deserialize().unwrap()).collect();
    assert_eq!(values, (0..40).collect::<Vec<u64>>());
}

/// A group's lag counts what it has not processed: not handed out, or
/// handed out and not acknowledged, on both backends (over Redis it left
/// out what was handed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_s_lag_counts_what_it_holds_unacknowledged() {
    on_each_backend!(|mq, backend| {
        let worker = mq
            .group("lagging", "w")
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        mq.publisher("lagging")
            .publish_batch(vec![1u8, 2, 3])
            .await
            .unwrap();
        let held = worker.recv().await.unwrap();
        let stats = mq.get_group_stats("lagging", "w").await.unwrap();
        assert_eq!(
            stats.lag, 3,
            "{backend}: two not handed out, one not acknowledged"
        );
        worker.ack(&held).unwrap();
        // Acknowledgements go to the server in the background.
        let mut lag = 3;
        for _ in 0..100 {
            lag = mq.get_group_stats("lagging", "w").await.unwrap().lag;
            if lag == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(lag, 2, "{backend}");
    });
}

/// A manual member dropped with a message it never acknowledged hands it
/// to the other members at once (their next look), not after the ack
/// timeout, on both backends (over Redis it waited the full timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_member_s_unacknowledged_messages_go_to_the_others() {
    on_each_backend!(|mq, backend| {
        let join = || {
            mq.group("handover", "workers")
                .manual_ack()
                .ack_timeout(Duration::from_secs(60))
                .mode(ConsumptionMode::Earliest)
                .join()
        };
        let (crashes, survives) = (join().await.unwrap(), join().await.unwrap());
        mq.publisher("handover").publish("job 1").await.unwrap();
        let first = crashes.recv().await.unwrap();
        assert_eq!(first.deliveries, 1, "{backend}");
        drop(crashes);
        let again = tokio::time::timeout(Duration::from_secs(10), survives.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{backend}: not handed over within 10 s of the drop (ack timeout 60 s)")
            })
            .unwrap();
        assert_eq!((again.offset(), again.deliveries), (0, 2), "{backend}");
    });
}

/// An ack timeout of `Duration::MAX` (never take a member's messages
/// over) still lets a nack hand a message to the next receive, on both
/// backends (over Redis the idle time it was released with reached before
/// 1970, which the server takes as 0: never redelivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_redelivers_with_an_ack_timeout_that_never_runs_out() {
    on_each_backend!(|mq, backend| {
        let member = mq
            .group("forever", "workers")
            .manual_ack()
            .ack_timeout(Duration::MAX)
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        mq.publisher("forever").publish("job").await.unwrap();
        let first = member.recv().await.unwrap();
        member.nack(&first).unwrap();
        let again = tokio::time::timeout(Duration::from_secs(10), member.recv())
            .await
            .unwrap_or_else(|_| panic!("{backend}: the nacked message never came back"))
            .unwrap();
        assert_eq!((again.offset(), again.deliveries), (0, 2), "{backend}");
    });
}

/// Settings that cannot work are refused the same way on both backends:
/// a manual group that would never deliver (`max_deliveries` 0) or whose
/// messages are idle the moment they are handed out (a zero ack timeout).
/// Over Redis a zero timeout was taken, and every message was handed to
/// the next member that looked while its first member still held it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_group_that_cannot_work_is_refused_on_both_backends() {
    on_each_backend!(|mq, backend| {
        let zero = mq
            .group("refused", "workers")
            .manual_ack()
            .ack_timeout(Duration::ZERO)
            .join()
            .await;
        match zero {
            Err(TopicError::InvalidGroupConfig { group, reason }) => {
                assert_eq!(group, "workers", "{backend}");
                assert!(reason.contains("ack_timeout"), "{backend}: {reason}");
            }
            other => panic!("{backend}: a zero ack timeout was not refused: {other:?}"),
        }
        let never = mq
            .group("refused", "workers")
            .manual_ack()
            .max_deliveries(0)
            .join()
            .await;
        assert!(
            matches!(&never, Err(TopicError::InvalidGroupConfig { reason, .. }) if reason.contains("max_deliveries")),
            "{backend}: {never:?}"
        );
        // Unused by an automatic group, and taken: each message is
        // delivered once, to one of its members.
        let join = || {
            mq.group("refused", "auto")
                .ack_timeout(Duration::ZERO)
                .mode(ConsumptionMode::Earliest)
                .join()
        };
        let (a, b) = (join().await.unwrap(), join().await.unwrap());
        let publisher = mq.publisher("refused");
        for i in 0..20u32 {
            publisher.publish(i).await.unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 20 {
            for m in [&a, &b] {
                if let Some(msg) = m.recv_timeout(Duration::from_millis(50)).await.unwrap() {
                    seen.push(msg.offset());
                }
            }
        }
        // Nothing more: no message went to both.
        for m in [&a, &b] {
            assert!(
                m.recv_timeout(Duration::from_millis(300))
                    .await
                    .unwrap()
                    .is_none(),
                "{backend}"
            );
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<u64>>(), "{backend}");
    });
}

/// `publish_batch_to_partitioned` checks every topic before it publishes
/// anything, on both backends: over Redis the topics before a missing one
/// (in name order) were published and only the rest handed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_to_partitioned_topics_with_a_missing_one_publishes_nothing() {
    use tokio_memq::{PublishErrorKind, TopicMessage};
    on_each_backend!(|mq, backend| {
        mq.create_partitioned_topic("events", TopicOptions::default(), 2)
            .await
            .unwrap();
        let batch = (0..4)
            .map(|i| TopicMessage::new("events", i))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        mq.publish_batch_to_partitioned(batch).await.unwrap();
        // "events" comes before "nowhere": it was published first.
        let mixed = vec![
            TopicMessage::new("nowhere", 4).unwrap(),
            TopicMessage::new("events", 5).unwrap(),
        ];
        let err = mq.publish_batch_to_partitioned(mixed).await.unwrap_err();
        assert_eq!(err.kind(), PublishErrorKind::Unroutable, "{backend}");
        let mut back: Vec<String> = err.into_inner().iter().map(|m| m.topic.to_string()).collect();
        back.sort_unstable();
        assert_eq!(back, ["events", "nowhere"], "{backend}: all handed back");
        let published = mq.get_topic_stats("events").await.unwrap().published;
        assert_eq!(published, 4, "{backend}: nothing published");
    });
}

/// A new group's start offset outside the window is refused on both
/// backends: over Redis a group placed past the end waited there and
/// skipped every message published below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_at_an_offset_outside_the_window_is_refused() {
    on_each_backend!(|mq, backend| {
        mq.publisher("t").publish(0u32).await.unwrap(); // window [0, 1)
        let joined = mq.group("t", "g").mode(ConsumptionMode::Offset(5)).join().await;
        match joined {
            Err(TopicError::OutOfRange(r)) => {
                assert_eq!((r.requested, r.low, r.high), (5, 0, 1), "{backend}")
            }
            other => panic!("{backend}: {other:?}"),
        }
        // At the end of the window: taken, and it reads what follows.
        let member = mq
            .group("t", "g")
            .mode(ConsumptionMode::Offset(1))
            .join()
            .await
            .unwrap();
        mq.publisher("t").publish(1u32).await.unwrap();
        let m = within(LIMIT, member.recv()).await.unwrap().unwrap();
        assert_eq!(m.offset(), 1, "{backend}");
    });
}

/// A message a member read ahead and never handed out, given back when
/// the member is dropped, reaches the next member as a first delivery,
/// on both backends: over Redis its delivery count was raised (with
/// `max_deliveries(1)` it went to the dead-letter topic unseen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_ahead_and_never_handed_out_is_a_first_delivery_for_the_next_member() {
    on_each_backend!(|mq, backend| {
        for manual in [true, false] {
            let topic = if manual { "jobs-manual" } else { "jobs-auto" };
            let join = || {
                let builder = mq
                    .group(topic, "g")
                    .mode(ConsumptionMode::Earliest)
                    .ack_timeout(Duration::from_millis(500));
                if manual {
                    builder
                        .manual_ack()
                        .max_deliveries(1)
                        .dead_letter_topic("dead")
                        .join()
                } else {
                    builder.join()
                }
            };
            let a = join().await.unwrap();
            // A receive that gives up: the member reads on meanwhile.
            assert!(
                timeout(Duration::from_millis(100), a.recv()).await.is_err(),
                "{backend}"
            );
            mq.publisher(topic).publish(7u32).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(a);
            let b = join().await.unwrap();
            let got = timeout(Duration::from_secs(10), b.recv())
                .await
                .unwrap_or_else(|_| panic!("{backend}, manual {manual}: never delivered"))
                .unwrap();
            assert_eq!(
                (got.offset(), got.deliveries),
                (0, 1),
                "{backend}, manual {manual}"
            );
            if manual {
                b.ack(&got).unwrap();
            }
        }
    });
}

/// `keep_alive` holds a long job on both backends: over Redis it did
/// nothing, and the job went to a second worker after the ack timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_a_long_job_on_both_backends() {
    on_each_backend!(|mq, backend| {
        let join = || {
            mq.group("long", "workers")
                .manual_ack()
                .ack_timeout(Duration::from_millis(500))
                .mode(ConsumptionMode::Earliest)
                .join()
        };
        let (busy, other) = (join().await.unwrap(), join().await.unwrap());
        mq.publisher("long").publish("long job").await.unwrap();
        let job = within(LIMIT, busy.recv()).await.unwrap().unwrap();
        let watcher = tokio::spawn(async move {
            let got = other.recv_timeout(Duration::from_millis(1500)).await;
            (got.map(|m| m.map(|m| (m.offset(), m.deliveries))), other)
        });
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            busy.keep_alive();
        }
        let (stolen, other) = watcher.await.unwrap();
        assert_eq!(stolen, Ok(None), "{backend}: still held by the busy member");
        // Quiet from now on: the job goes to the other member.
        let taken = within(LIMIT, other.recv()).await.unwrap().unwrap();
        assert_eq!((taken.offset(), taken.deliveries), (job.offset(), 2), "{backend}");
        other.ack(&taken).unwrap();
    });
}

/// A publisher's `Sink` publishes on both backends: over Redis it tried
/// `try_publish` first, which a queue over Redis never supports, and
/// refused every value (`Store`, `Unsupported`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_publishes_on_every_backend() {
    use futures_util::SinkExt;
    on_each_backend!(|mq, name| {
        let sub = mq.subscriber("sunk").await.unwrap();
        let mut sink = mq.publisher("sunk").sink::<u32>();
        sink.send(1).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        sink.send_all(&mut futures_util::stream::iter([2u32, 3].map(Ok)))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let mut got = Vec::new();
        while got.len() < 3 {
            got.extend(sub.recv_batch_typed::<u32>(10).await.unwrap());
        }
        assert_eq!(got, [1, 2, 3], "{name}");
    });
}

/// A sink that published keeps failing with `Closed` once its topic is
/// deleted, as its publisher does, on both backends: over Redis each of
/// its publishes went through a fresh clone of an unbound publisher, and
/// the next send after a delete created the topic again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_stays_closed_after_its_topic_is_deleted() {
    use futures_util::SinkExt;
    on_each_backend!(|mq, name| {
        let mut sink = mq.publisher("sunk-once").sink::<u32>();
        sink.send(1).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(mq.delete_topic("sunk-once").await, "{name}");
        let r = sink.send(2).await;
        assert!(matches!(r, Err(PublishError::Closed(2))), "{name}: {r:?}");
        assert!(
            !mq.list_topics().await.iter().any(|t| t == "sunk-once"),
            "{name}: the topic came back"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_left_waiting_does_not_hold_up_the_subscriber_s_other_calls() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("one-sub-many-calls", latest(), ConsumptionMode::Earliest)
            .await
            .unwrap();
        let publisher = mq.publisher("one-sub-many-calls");
        // A receive that starts to wait and is then left alone, neither
        // polled nor dropped (a stream item, a `select!` branch kept).
        let mut first = std::pin::pin!(sub.recv());
        assert!(
            timeout(Duration::from_millis(300), &mut first).await.is_err(),
            "{backend}: nothing to receive yet"
        );
        let quick = Duration::from_secs(5);
        let empty = timeout(quick, sub.try_recv()).await;
        assert!(
            matches!(empty, Ok(Err(tokio_memq::TryRecvError::Empty))),
            "{backend}: try_recv answers at once: {empty:?}"
        );
        publisher.publish(10u32).await.unwrap();
        let second = timeout(quick, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("{backend}: a second receive is not held up"))
            .unwrap();
        assert_eq!(
            (second.offset(), second.deserialize::<u32>().unwrap()),
            (0, 10),
            "{backend}"
        );
        timeout(quick, sub.seek(0))
            .await
            .unwrap_or_else(|_| panic!("{backend}: seek is not held up"))
            .unwrap();
        let again = timeout(quick, sub.recv_timeout(quick))
            .await
            .unwrap_or_else(|_| panic!("{backend}: recv_timeout is not held up"))
            .unwrap()
            .expect("the message sought");
        assert_eq!(
            (again.offset(), again.deserialize::<u32>().unwrap()),
            (0, 10),
            "{backend}"
        );
        // The receive left waiting still works: it takes the next one.
        publisher.publish(11u32).await.unwrap();
        let next = timeout(quick, &mut first)
            .await
            .unwrap_or_else(|_| panic!("{backend}: the first receive wakes"))
            .unwrap();
        assert_eq!(
            (next.offset(), next.deserialize::<u32>().unwrap()),
            (1, 11),
            "{backend}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_moves_a_receive_that_is_waiting() {
    on_each_backend!(|mq, backend| {
        let publisher = mq.publisher("seek-while-waiting");
        let sub = mq
            .subscriber_with_options_and_mode("seek-while-waiting", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        publisher.publish(7u32).await.unwrap();
        assert_eq!(sub.recv().await.unwrap().offset(), 0, "{backend}");
        // Caught up, a receive waits; a seek back to 0 gives it offset 0.
        let (got, sought) = tokio::join!(timeout(Duration::from_secs(10), sub.recv()), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sub.seek(0).await
        });
        sought.unwrap();
        let got = got
            .unwrap_or_else(|_| panic!("{backend}: the waiting receive follows the seek"))
            .unwrap();
        assert_eq!(
            (got.offset(), got.deserialize::<u32>().unwrap()),
            (0, 7),
            "{backend}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_differ_from_an_existing_topic_s_are_refused() {
    on_each_backend!(|mq, backend| {
        let two = TopicOptions {
            max_messages: Some(2),
            ..TopicOptions::default()
        };
        let ttl = TopicOptions {
            message_ttl: Some(Duration::from_secs(60)),
            ..TopicOptions::default()
        };
        mq.create_topic("kept-two", two.clone()).await.unwrap();
        mq.create_topic("kept-two", two.clone()).await.unwrap();
        let mismatch = TopicError::OptionsMismatch {
            topic: "kept-two".into(),
        };
        assert_eq!(
            mq.create_topic("kept-two", TopicOptions::default())
                .await
                .unwrap_err(),
            mismatch,
            "{backend}"
        );
        assert_eq!(
            mq.create_topic("kept-two", ttl.clone()).await.unwrap_err(),
            mismatch,
            "{backend}"
        );
        assert_eq!(
            mq.subscriber_with_options_and_mode("kept-two", TopicOptions::default(), ConsumptionMode::Latest)
                .await
                .unwrap_err(),
            mismatch,
            "{backend}"
        );
        // Without options, the topic as it is; with the same, too.
        let sub = mq.subscriber("kept-two".to_string()).await.unwrap();
        mq.subscriber_with_options_and_mode("kept-two", two.clone(), ConsumptionMode::Latest)
            .await
            .unwrap();
        // The refusals changed nothing: it keeps two.
        for i in 0..5u32 {
            mq.publisher("kept-two").publish(i).await.unwrap();
        }
        assert_eq!(
            mq.get_topic_stats("kept-two").await.unwrap().message_count,
            2,
            "{backend}"
        );
        drop(sub);
        // The same for a partitioned topic.
        mq.create_partitioned_topic("kept-parts", ttl.clone(), 2)
            .await
            .unwrap();
        assert_eq!(
            mq.create_partitioned_topic("kept-parts", two.clone(), 2)
                .await
                .unwrap_err(),
            TopicError::OptionsMismatch {
                topic: "kept-parts".into()
            },
            "{backend}"
        );
        mq.create_partitioned_topic("kept-parts", ttl, 2).await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_of_a_deleted_topic_say_closed() {
    on_each_backend!(|mq, backend| {
        let sub = mq
            .subscriber_with_options_and_mode("doomed", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        let parted = {
            mq.create_partitioned_topic("doomed-parts", latest(), 2)
                .await
                .unwrap();
            mq.subscribe_partition("doomed-parts", 1, None, ConsumptionMode::Latest)
                .await
                .unwrap()
        };
        let publisher = mq.publisher("doomed");
        publisher.publish(1u8).await.unwrap();
        let unbound = mq.publisher("doomed");
        assert!(
            !sub.is_closed() && !publisher.is_closed() && !parted.is_closed(),
            "{backend}"
        );
        assert!(mq.delete_topic("doomed").await, "{backend}");
        assert!(sub.is_closed(), "{backend}: the subscriber");
        assert!(publisher.is_closed(), "{backend}: the bound publisher");
        assert!(!unbound.is_closed(), "{backend}: a publisher not bound yet");
        assert!(!parted.is_closed(), "{backend}: another topic's");
        // A receive waiting while this process deletes the topic ends.
        let (waited, deleted) = tokio::join!(timeout(Duration::from_secs(10), parted.recv()), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            mq.delete_topic("doomed-parts").await
        });
        assert!(deleted, "{backend}");
        assert_eq!(
            waited
                .unwrap_or_else(|_| panic!("{backend}: the waiting receive ends"))
                .unwrap_err(),
            RecvError::Closed,
            "{backend}"
        );
        assert!(parted.is_closed(), "{backend}: a partition's subscriber");
        // Handles made after the delete are of the topic made again.
        let again = mq
            .subscriber_with_options_and_mode("doomed", latest(), ConsumptionMode::Latest)
            .await
            .unwrap();
        assert!(!again.is_closed(), "{backend}");
        assert!(sub.is_closed(), "{backend}: the old one stays closed");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_by_another_process_closes_what_finds_it_gone() {
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await.unwrap() else {
        return;
    };
    let a = MessageQueue::connect(&server.url()).await.unwrap();
    let b = MessageQueue::connect(&server.url()).await.unwrap();
    let sub = a
        .subscriber_with_options_and_mode("elsewhere", latest(), ConsumptionMode::Latest)
        .await
        .unwrap();
    let publisher = a.publisher("elsewhere");
    publisher.publish(1u8).await.unwrap();
    assert_eq!(within(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    assert!(b.delete_topic("elsewhere").await);
    // Not known here until a read or a publish finds it gone.
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
        RecvError::Closed
    );
    assert!(sub.is_closed());
    assert!(matches!(
        within(LIMIT, publisher.publish(2u8)).await.unwrap(),
        Err(PublishError::Closed(2))
    ));
    assert!(publisher.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_topic_made_again_elsewhere_is_seen_with_its_new_count() {
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await.unwrap() else {
        return;
    };
    let a = MessageQueue::connect(&server.url()).await.unwrap();
    let b = MessageQueue::connect(&server.url()).await.unwrap();
    a.create_partitioned_topic("remade", latest(), 2).await.unwrap();
    a.set_partition_routing("remade", tokio_memq::PartitionRouting::Fixed(1))
        .await
        .unwrap();
    assert_eq!(a.get_all_partition_stats("remade").await.len(), 2);
    // Another process deletes it and makes it again with 4 partitions.
    assert!(b.delete_topic("remade").await);
    b.create_partitioned_topic("remade", latest(), 4).await.unwrap();
    assert_eq!(a.get_all_partition_stats("remade").await.len(), 4);
    assert!(a.get_partition_stats("remade", 3).await.is_some());
    a.set_partition_routing("remade", tokio_memq::PartitionRouting::Fixed(3))
        .await
        .unwrap();
    assert_eq!(
        a.create_partitioned_topic("remade", latest(), 2)
            .await
            .unwrap_err(),
        TopicError::PartitionCount {
            topic: "remade".into(),
            requested: 2,
            existing: Some(4),
        }
    );
    a.create_partitioned_topic("remade", latest(), 4).await.unwrap();
    // Its routing is this process's: a publish goes to partition 3.
    let message = tokio_memq::TopicMessage::new("remade".to_string(), 1u8).unwrap();
    assert_eq!(a.publish_to_partitioned(message).await.unwrap(), (3, 0));
}

/// One poll of `fut`: whether it finished.
async fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> bool {
    let mut fut = std::pin::Pin::new(fut);
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
}

/// How many `XREAD`s the server at `url` has run (`INFO commandstats`,
/// over a plain connection of its own; 10 s at most).
async fn xreads(url: &str) -> u64 {
    timeout(Duration::from_secs(10), xreads_unbounded(url))
        .await
        .expect("INFO answers in time")
}

async fn xreads_unbounded(url: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "an INFO reply");
        reply.extend_from_slice(&chunk[..n]);
        let Some(end) = reply.iter().position(|&b| b == b'\n') else {
            continue;
        };
        let len: usize = std::str::from_utf8(&reply[1..end - 1]).unwrap().parse().unwrap();
        if reply.len() >= end + 1 + len {
            break;
        }
    }
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_xread:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_receive_over_redis_reads_each_partition_once_per_wait() {
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await.unwrap() else {
        return;
    };
    let mq = MessageQueue::connect(&server.url()).await.unwrap();
    mq.create_partitioned_topic("idle-parts", latest(), 4)
        .await
        .unwrap();
    let sub = mq.subscriber("idle-parts".to_string()).await.unwrap();
    // Receives cancelled at once, then one left waiting for 3 s: each
    // partition waits on the server about once a second (a round of
    // reads that cancelled one another ran thousands).
    for i in 0..100u64 {
        assert!(timeout(Duration::from_micros(50 + i * 37), sub.recv())
            .await
            .is_err());
    }
    let before = xreads(&server.url()).await;
    assert!(timeout(Duration::from_secs(3), sub.recv()).await.is_err());
    let during = xreads(&server.url()).await - before;
    assert!(during <= 4 * 3 * 3, "{during} reads waiting 3 s on 4 partitions");
    // Nothing lost to the cancelled receives, nothing twice.
    let publisher = mq.publisher("idle-parts");
    for i in 0..8u32 {
        publisher.publish(i).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 8 {
        let m = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        got.push(m.deserialize::<u32>().unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (0..8).collect::<Vec<u32>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_queued_on_the_reader_and_left_unpolled_holds_nothing() {
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await.unwrap() else {
        return;
    };
    let mq = MessageQueue::connect(&server.url()).await.unwrap();
    let sub = mq
        .subscriber_with_options_and_mode("queued", latest(), ConsumptionMode::Latest)
        .await
        .unwrap();
    // A try_recv holds the reader for its round trip; a receive polled
    // meanwhile waits for the reader, and is then left alone.
    let mut reading = Box::pin(sub.try_recv());
    let mut waiting = Box::pin(sub.recv());
    let started = poll_once(&mut reading).await;
    assert!(!poll_once(&mut waiting).await, "nothing to receive");
    if !started {
        let got = timeout(Duration::from_secs(5), reading)
            .await
            .expect("try_recv ends");
        assert!(matches!(got, Err(tokio_memq::TryRecvError::Empty)), "{got:?}");
    }
    let again = timeout(Duration::from_secs(5), sub.try_recv()).await;
    assert!(again.is_ok(), "try_recv is not held up by the unpolled receive");
    let sought = timeout(Duration::from_secs(5), sub.seek(0)).await;
    assert!(sought.is_ok(), "seek is not held up by the unpolled receive");
    drop(waiting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_ends_a_first_receive_while_the_server_is_gone() {
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await.unwrap() else {
        return;
    };
    let mq = std::sync::Arc::new(MessageQueue::connect(&server.url()).await.unwrap());
    let sub = mq
        .subscriber_with_options_and_mode("gone-server", latest(), ConsumptionMode::Latest)
        .await
        .unwrap();
    drop(server);
    let closer = {
        let mq = mq.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            mq.close();
        })
    };
    // Reconnecting lasts 30 s; the close ends the receive long before.
    let got = timeout(Duration::from_secs(10), sub.recv()).await;
    closer.await.unwrap();
    assert!(matches!(got, Ok(Err(RecvError::Closed))), "{got:?}");
}

/// A subscribe, a join or a partition subscribe refused for its start
/// offset (or partition) on a topic that does not exist leaves no topic
/// behind, on both backends (over Redis the topic was made on the server
/// before the start was tried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_start_on_a_missing_topic_creates_nothing() {
    on_each_backend!(|mq, backend| {
        let subscribed = mq
            .subscriber_with_options_and_mode(
                "fresh-sub",
                TopicOptions::default(),
                ConsumptionMode::Offset(3),
            )
            .await;
        let joined = mq
            .group("fresh-join", "g")
            .mode(ConsumptionMode::Offset(3))
            .join()
            .await;
        for refused in [subscribed.map(drop), joined.map(drop)] {
            match refused {
                Err(TopicError::OutOfRange(r)) => {
                    assert_eq!((r.requested, r.low, r.high), (3, 0, 0), "{backend}")
                }
                other => panic!("{backend}: {other:?}"),
            }
        }
        let two = TopicOptions {
            partitions: Some(2),
            ..Default::default()
        };
        let (offset, index) = (ConsumptionMode::Offset(3), ConsumptionMode::Earliest);
        let refused = mq
            .subscribe_partition_with_options("fresh-parted", 1, two.clone(), None, offset)
            .await;
        match refused {
            Err(TopicError::OutOfRange(r)) => {
                assert_eq!((r.requested, r.low, r.high), (3, 0, 0), "{backend}")
            }
            other => panic!("{backend}: {other:?}"),
        }
        let refused = mq
            .subscribe_partition_with_options("fresh-parted", 5, two, None, index)
            .await;
        assert!(
            matches!(
                refused,
                Err(TopicError::NoSuchPartition {
                    partition: 5,
                    partitions: 2
                })
            ),
            "{backend}: {refused:?}"
        );
        let topics = mq.list_topics().await;
        assert!(
            !topics.iter().any(|t| t.starts_with("fresh")),
            "{backend}: {topics:?}"
        );
        assert!(mq.list_partitioned_topics().await.is_empty(), "{backend}");
        assert!(mq.get_topic_stats("fresh-sub").await.is_none(), "{backend}");
        // Offset 0 is where a new topic starts: taken.
        let sub = mq
            .subscriber_with_options_and_mode(
                "fresh-sub",
                TopicOptions::default(),
                ConsumptionMode::Offset(0),
            )
            .await
            .unwrap();
        mq.publisher("fresh-sub").publish(4u8).await.unwrap();
        let m = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        assert_eq!((m.offset(), m.deserialize::<u8>().unwrap()), (0, 4), "{backend}");
    });
}
