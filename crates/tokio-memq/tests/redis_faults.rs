//! A queue over Redis facing what the in-memory queue never meets: data
//! on the server that this crate did not write (a partition count of 0, an
//! entry without a payload, a key that is not UTF-8, a log of the wrong
//! type), a topic deleted or created again by another process while a
//! group member uses it, a server restarted without its data, a server
//! busy for longer than a round trip. Each is a typed error or the
//! documented behaviour: never a panic, a silent message, or a retry loop.
//!
//! Each test starts a `redis-server` of its own; without one the tests say
//! they skipped (with `CI` set a missing server fails them).
#![cfg(feature = "redis")]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[path = "support/redis.rs"]
mod support;

use memq_testkit::redis_server::RedisServer;
use support::{address, connect, raw, server, LIMIT};
use tokio::time::timeout;
use tokio_memq::{
    ConsumptionMode, MessageQueue, PublishError, RecvError, SerializationFormat, StoreErrorKind, TopicError,
    TopicMessage, TopicOptions,
};

/// Well under the 30 s a command keeps reconnecting: an answer within
/// this is not a retry loop that gave up.
const PROMPT: Duration = Duration::from_secs(10);

/// A member of group `g` of topic `jobs`, from its oldest message.
async fn join_jobs(mq: &MessageQueue) -> tokio_memq::Subscriber {
    mq.group("jobs", "g")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap()
}

fn kind<T>(e: &PublishError<T>) -> Option<StoreErrorKind> {
    match e {
        PublishError::Store { error, .. } => Some(error.kind()),
        _ => None,
    }
}

/// A partition count of 0 (or not a number) stored under a topic's name
/// is refused as the server answering nonsense: no index out of bounds,
/// and no 30 s of reconnecting as if the connection were at fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_partition_count_of_zero_or_junk_is_a_typed_error_not_a_panic() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    for (name, count) in [("evil", &b"0"[..]), ("junk", b"many"), ("huge", b"99999999999")] {
        raw(
            &server,
            &[b"SET", format!("memq:{{{name}}}:parts").as_bytes(), count],
        );
        raw(&server, &[b"SADD", b"memq:topics", name.as_bytes()]);
        let started = Instant::now();
        // Each in a task of its own: a panic there is an error here.
        let (mq1, mq2, mq3) = (mq.clone(), mq.clone(), mq.clone());
        let stats = tokio::spawn(async move { timeout(PROMPT, mq1.get_topic_stats(name)).await });
        assert_eq!(stats.await.expect("no panic").expect("prompt"), None, "{name}");
        let published = tokio::spawn(async move { timeout(PROMPT, mq2.publisher(name).publish(1u8)).await });
        let published = published.await.expect("no panic").expect("prompt");
        assert_eq!(
            published.as_ref().err().and_then(kind),
            Some(StoreErrorKind::Protocol),
            "{name}: {published:?}"
        );
        let msg = TopicMessage::new_with_key(name, 1u8, "k").unwrap();
        let routed = tokio::spawn(async move { timeout(PROMPT, mq3.publish_to_partitioned(msg)).await });
        let routed = routed.await.expect("no panic").expect("prompt");
        assert_eq!(
            routed.as_ref().err().and_then(kind),
            Some(StoreErrorKind::Protocol),
            "{name}: {routed:?}"
        );
        let sub = timeout(
            PROMPT,
            mq.subscriber_with_options_and_mode(name, TopicOptions::default(), ConsumptionMode::Earliest),
        )
        .await
        .expect("prompt");
        assert!(
            matches!(&sub, Err(TopicError::Store(e)) if e.kind() == StoreErrorKind::Protocol),
            "{name}: {:?}",
            sub.err()
        );
        assert!(started.elapsed() < PROMPT, "{name}: {:?}", started.elapsed());
    }
}

/// Another process deletes the topic and publishes to it anew, and joins
/// the group there: a member of the old topic is told `Closed`, never fed
/// the new topic's messages under old offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_of_a_topic_created_again_elsewhere_is_closed() {
    let Some(server) = server().await else { return };
    let (a, b) = (connect(&server).await, connect(&server).await);
    let member = join_jobs(&a).await;
    a.publisher("jobs").publish(1u8).await.unwrap();
    assert_eq!(timeout(LIMIT, member.recv()).await.unwrap().unwrap().offset(), 0);
    assert!(b.delete_topic("jobs").await);
    b.publisher("jobs").publish(2u8).await.unwrap();
    let other = join_jobs(&b).await;
    b.publisher("jobs").publish(3u8).await.unwrap();
    let told = timeout(PROMPT, member.recv()).await.expect("told in time");
    assert_eq!(told.map(|m| m.offset()), Err(RecvError::Closed));
    // The new topic's member has its messages.
    let got = timeout(LIMIT, other.recv()).await.unwrap().unwrap();
    assert_eq!((got.offset(), got.deserialize::<u8>().unwrap()), (0, 2));
}

/// A member waiting while another process deletes its topic is told
/// `Closed` (as a subscriber is), not a store error followed by `NOGROUP`
/// errors forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_group_member_of_a_topic_deleted_elsewhere_is_closed() {
    let Some(server) = server().await else { return };
    let (a, b) = (connect(&server).await, connect(&server).await);
    let member = join_jobs(&a).await;
    a.publisher("jobs").publish(1u8).await.unwrap();
    assert_eq!(timeout(LIMIT, member.recv()).await.unwrap().unwrap().offset(), 0);
    let waiting = tokio::spawn(async move {
        let told = timeout(PROMPT, member.recv())
            .await
            .map(|r| r.map(|m| m.offset()));
        let again = timeout(PROMPT, member.recv())
            .await
            .map(|r| r.map(|m| m.offset()));
        (told, again)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.delete_topic("jobs").await);
    let (told, again) = waiting.await.unwrap();
    assert_eq!(told, Ok(Err(RecvError::Closed)));
    assert_eq!(again, Ok(Err(RecvError::Closed)), "and stays closed");
}

/// A server restarted without its data has lost the topic: its group
/// members are told `Closed`, as its subscribers are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_of_a_topic_lost_with_a_restarted_server_is_closed() {
    let Some(mut server) = server().await else { return };
    let mq = connect(&server).await;
    let member = mq
        .group("t", "g")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    let sub = mq
        .subscriber_with_options_and_mode("t", TopicOptions::default(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    mq.publisher("t").publish(1u8).await.unwrap();
    assert_eq!(timeout(LIMIT, member.recv()).await.unwrap().unwrap().offset(), 0);
    assert_eq!(timeout(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    tokio::task::block_in_place(|| server.restart());
    let read = timeout(PROMPT, sub.recv()).await.expect("prompt");
    assert_eq!(read.map(|m| m.offset()), Err(RecvError::Closed), "the subscriber");
    let told = timeout(PROMPT, member.recv()).await.expect("prompt");
    assert_eq!(told.map(|m| m.offset()), Err(RecvError::Closed), "the member");
}

/// A large payload or batch keeps a healthy server busy for longer than
/// the `redis` crate's default response timeout (500 ms): the publish is
/// stored and says so, rather than `OutcomeUnknown`. So is a publish sent
/// while another client's script keeps the server busy for 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_publish_or_one_to_a_busy_server_is_stored_and_says_so() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let options = TopicOptions {
        max_messages: None,
        ..TopicOptions::default()
    };
    mq.create_topic("big", options.clone()).await.unwrap();
    let sub = mq
        .subscriber_with_options_and_mode("big", options, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let publisher = mq.publisher("big");
    let payload: Vec<u8> = (0..64usize << 20).map(|i| (i % 251) as u8).collect();
    let published = timeout(
        LIMIT,
        publisher.publish_bytes(payload.clone(), SerializationFormat::Raw),
    )
    .await
    .expect("in time");
    assert_eq!(published.map_err(|e| e.to_string()), Ok(0), "64 MiB");
    let got = timeout(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert!(got.payload_bytes() == &payload[..]);
    drop((got, payload));
    let batch: Vec<tokio_memq::Bytes> = (0..200_000).map(|i| format!("m{i}").into()).collect();
    let published = timeout(
        LIMIT,
        publisher.publish_bytes_batch(batch, SerializationFormat::Raw),
    )
    .await
    .expect("in time");
    assert_eq!(
        published.map_err(|e| e.to_string()),
        Ok(1..200_001),
        "a batch of 200,000"
    );
    // The server runs one script at a time: it answers nothing else for
    // about 1.5 s.
    let url = server.url();
    let busy = std::thread::spawn(move || {
        let port: u16 = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let script = "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] \
                      while true do t = redis.call('TIME') if t[1] * 1000000 + t[2] - s > 1500000 then return 1 end end";
        let command = format!("*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n", script.len());
        stream.write_all(command.as_bytes()).unwrap();
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).unwrap();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = timeout(LIMIT, publisher.publish(1u8)).await.expect("in time");
    busy.join().unwrap();
    assert_eq!(
        published.map_err(|e| e.to_string()),
        Ok(200_001),
        "while the server is busy"
    );
}

/// README: a subscriber with `LastOffset` over Redis starts at `Latest`,
/// also of one partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_subscriber_with_last_offset_starts_at_latest() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    mq.create_partitioned_topic("p", TopicOptions::default(), 2)
        .await
        .unwrap();
    let sub = mq
        .subscribe_partition("p", 0, None, ConsumptionMode::LastOffset)
        .await
        .unwrap();
    let old = mq
        .subscribe_partition("p", 0, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    mq.set_partition_routing("p", tokio_memq::PartitionRouting::Fixed(0))
        .await
        .unwrap();
    mq.publisher("p").publish(7u8).await.unwrap();
    let got = timeout(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!((got.offset(), got.deserialize::<u8>().unwrap()), (0, 7));
    drop(old);
}

/// Entries another program added to a log with no payload, or with a key
/// that is not UTF-8, are each reported once as a typed error (never
/// delivered as an empty message, or without their key); the reader goes
/// on with what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_are_typed_errors_and_the_reader_goes_on() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let sub = mq
        .subscriber_with_options_and_mode("t", TopicOptions::default(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    let publisher = mq.publisher("t");
    publisher.publish(1u8).await.unwrap();
    raw(
        &server,
        &[b"XADD", b"memq:{t}:log", b"0-*", b"t", b"1", b"x", b"y"],
    );
    raw(
        &server,
        &[
            b"XADD",
            b"memq:{t}:log",
            b"0-*",
            b"t",
            b"1",
            b"p",
            b"x",
            b"k",
            &[0xff, 0xfe, b'a'],
        ],
    );
    publisher.publish(4u8).await.unwrap();
    assert_eq!(timeout(LIMIT, sub.recv()).await.unwrap().unwrap().offset(), 0);
    for offset in [1, 2] {
        let got = timeout(LIMIT, sub.recv()).await.unwrap();
        assert!(
            matches!(&got, Err(RecvError::Store(e)) if e.kind() == StoreErrorKind::Protocol),
            "offset {offset}: {:?}",
            got.map(|m| (m.offset(), m.key.clone(), m.payload_bytes().to_vec()))
        );
    }
    let next = timeout(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!((next.offset(), next.deserialize::<u8>().unwrap()), (3, 4));
}

/// A group member given a malformed entry reports it and acknowledges it
/// (no other member could read it either), then goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_reports_a_malformed_entry_once_and_goes_on() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let member = mq
        .group("t", "g")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    raw(
        &server,
        &[b"XADD", b"memq:{t}:log", b"0-*", b"t", b"1", b"x", b"y"],
    );
    mq.publisher("t").publish(2u8).await.unwrap();
    let got = timeout(LIMIT, member.recv()).await.unwrap();
    assert!(
        matches!(&got, Err(RecvError::Store(e)) if e.kind() == StoreErrorKind::Protocol),
        "{:?}",
        got.map(|m| m.offset())
    );
    let next = timeout(LIMIT, member.recv()).await.unwrap().unwrap();
    assert_eq!(next.offset(), 1);
}

/// A command the server refuses (an entry ID another program put above
/// the topic's, a log key of the wrong type) is `Protocol`: the server
/// answered, it was not out of reach (`Unavailable`), and asking again
/// will not help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_the_server_refuses_are_protocol_errors_not_unavailable() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    mq.publisher("t").publish(1u8).await.unwrap();
    raw(
        &server,
        &[b"XADD", b"memq:{t}:log", b"*", b"t", b"1", b"p", b"junk"],
    );
    let started = Instant::now();
    let published = timeout(PROMPT, mq.publisher("t").publish(2u8))
        .await
        .expect("prompt");
    assert_eq!(
        published.as_ref().err().and_then(kind),
        Some(StoreErrorKind::Protocol),
        "{published:?}"
    );
    raw(&server, &[b"SET", b"memq:{w}:log", b"x"]);
    raw(
        &server,
        &[
            b"HSET",
            b"memq:{w}:meta",
            b"incarnation",
            b"999",
            b"max_messages",
            b"10",
            b"ttl_ms",
            b"0",
        ],
    );
    raw(&server, &[b"SADD", b"memq:topics", b"w"]);
    let published = timeout(PROMPT, mq.publisher("w").publish(1u8))
        .await
        .expect("prompt");
    assert_eq!(
        published.as_ref().err().and_then(kind),
        Some(StoreErrorKind::Protocol),
        "{published:?}"
    );
    assert!(started.elapsed() < PROMPT);
}

/// Commands waiting for the shared connection while the server is gone
/// fail together: each of them, once it got the reconnection lock, tried
/// for 30 s again, so with three publishes waiting the last failed after
/// 90 s (four: 120 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_waiting_on_a_gone_server_fail_together() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let publishers: Vec<_> = (0..3).map(|i| mq.publisher(format!("t{i}"))).collect();
    for p in &publishers {
        p.publish(0u8).await.unwrap();
    }
    tokio::task::block_in_place(|| drop(server));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = publishers
        .into_iter()
        .map(|p| tokio::spawn(async move { timeout(Duration::from_secs(120), p.publish(1u8)).await }))
        .collect();
    for task in tasks {
        let err = task.await.unwrap().expect("failed in time").unwrap_err();
        assert!(
            matches!(
                kind(&err),
                Some(StoreErrorKind::Unavailable | StoreErrorKind::OutcomeUnknown)
            ),
            "{err:?}"
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(50), "the last failed after {took:?}");
}

/// `publish_timeout` over Redis never waits for room, so its timeout
/// bounds what it does wait for: the server, until the publish is sent.
/// With the server gone (a publisher that has published before, and one
/// that has not: it must open the topic first) or silent (the connection
/// answers nothing), it gives the value back as `Timeout` once the
/// timeout is past, not after 30 s of reconnecting (then `Unavailable`)
/// or 10 s of waiting for a reply (then `OutcomeUnknown`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_timeout_over_redis_bounds_the_wait_for_the_server() {
    let Some(server) = server().await else { return };
    let short = Duration::from_millis(300);

    // Silent: the proxy holds the connection open and carries nothing.
    let proxy = timeout(PROMPT, memq_testkit::proxy::Proxy::start(address(&server)))
        .await
        .expect("in time")
        .unwrap();
    let mq = timeout(LIMIT, MessageQueue::connect(&proxy.redis_url()))
        .await
        .expect("connects in time")
        .expect("connects");
    // A zero timeout publishes to a healthy server: it has at least a
    // second for the round trips before the send (opening the topic, and
    // checking the connection, quiet for longer than 100 ms).
    tokio::time::sleep(Duration::from_millis(250)).await;
    let first = mq.publisher("bounded");
    assert_eq!(
        timeout(PROMPT, first.publish_timeout(0u32, Duration::ZERO))
            .await
            .expect("in time")
            .unwrap(),
        0
    );
    let publisher = mq.publisher("bounded");
    // A timeout too long to be a deadline is none (no overflow).
    assert_eq!(
        timeout(PROMPT, publisher.publish_timeout(1u32, Duration::MAX))
            .await
            .expect("in time")
            .unwrap(),
        1
    );
    proxy.freeze();
    // Quiet for longer than the 100 ms after which a publish first checks
    // the connection: that check is what meets the silence.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let silent = timeout(PROMPT, publisher.publish_timeout(2u32, short))
        .await
        .expect("gave up in time");
    assert_eq!(silent, Err(PublishError::Timeout(2)), "silent server");

    // Gone: the publisher that published before, and a new one.
    let direct = connect(&server).await;
    let known = direct.publisher("bounded");
    assert_eq!(
        timeout(PROMPT, known.publish_timeout(3u32, short))
            .await
            .expect("in time")
            .unwrap(),
        2
    );
    let fresh = direct.publisher("never-opened");
    tokio::task::block_in_place(|| drop(server));
    tokio::time::sleep(Duration::from_millis(250)).await;
    for (name, p) in [("known", &known), ("fresh", &fresh)] {
        let gone = timeout(PROMPT, p.publish_timeout(4u32, short))
            .await
            .expect("gave up in time");
        assert_eq!(
            gone,
            Err(PublishError::Timeout(4)),
            "gone server, {name} publisher"
        );
    }
    // Without a timeout a publish still reports the server out of reach
    // (after reconnecting; `commands_waiting_on_a_gone_server_fail_together`).
}

/// `iter()` on a thread outside the runtime, over Redis: every `next`
/// would be `Unsupported` at once, so the iterator ends after saying so
/// once (a `for` loop over it span).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterating_over_redis_outside_the_runtime_says_unsupported_once() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let sub = mq.subscriber("lines").await.unwrap();
    // A plain thread (a spin there must not hold up the runtime's drop).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let items: Vec<_> = sub
            .iter()
            .take(3)
            .map(|r| r.map(|m| m.offset()).map_err(|e| e.to_string()))
            .collect();
        let _ = tx.send(items);
    });
    let items = tokio::task::block_in_place(|| rx.recv_timeout(LIMIT)).expect("in time");
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].is_err());
}

/// A server that goes silent with the connections open, read through
/// short `recv_timeout`s: each timeout drops its receive, but the read on
/// the server belongs to the partition's pump, which gives the silent
/// connection up once a reply is 10 s past due and carries on over a new
/// one. (When each receive ran its own read, every read was dropped
/// before it was due, and the connection was never replaced.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_receive_timeouts_do_not_keep_a_silent_connection() {
    let Some(server) = server().await else { return };
    let proxy = memq_testkit::proxy::Proxy::start(address(&server)).await.unwrap();
    let mq = MessageQueue::connect(&proxy.redis_url()).await.unwrap();
    let sub = mq
        .subscriber_with_options_and_mode("hushed", TopicOptions::default(), ConsumptionMode::Latest)
        .await
        .unwrap();
    // The pump's connection is open (and waiting) before the silence.
    assert!(sub
        .recv_timeout(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    proxy.freeze();
    let direct = connect(&server).await;
    assert_eq!(direct.publisher("hushed").publish(7u32).await.unwrap(), 0);
    let started = Instant::now();
    let got = loop {
        if let Some(m) = sub.recv_timeout(Duration::from_secs(2)).await.unwrap() {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the silent connection was never replaced"
        );
    };
    assert_eq!((got.offset(), got.deserialize::<u32>().unwrap()), (0, 7));
}

/// Blocking calls over Redis on `spawn_blocking` threads whose runtime
/// shuts down while they wait: a receive waiting for messages, a group
/// member's, and a publish waiting on a server that went silent. Each
/// returns (an error: the runtime that carried the connections is gone);
/// none panics, none waits for ever.
#[test]
fn blocking_calls_over_redis_outlive_their_runtime() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one_worker = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    // The proxy runs on a runtime of its own, which lives on.
    let proxy_rt = one_worker();
    let proxy = proxy_rt
        .block_on(memq_testkit::proxy::Proxy::start(address(&server)))
        .unwrap();
    let rt = one_worker();
    // Each setup call fails at `LIMIT` rather than hanging.
    let mq = rt
        .block_on(async { timeout(LIMIT, MessageQueue::connect(&proxy.redis_url())).await })
        .expect("connects in time")
        .expect("connects");
    let sub = rt
        .block_on(async {
            timeout(
                LIMIT,
                mq.subscriber_with_options_and_mode("b", TopicOptions::default(), ConsumptionMode::Latest),
            )
            .await
        })
        .expect("subscribes in time")
        .unwrap();
    let member = rt
        .block_on(async { timeout(LIMIT, mq.group("b", "g").mode(ConsumptionMode::Latest).join()).await })
        .expect("joins in time")
        .unwrap();
    // (Another topic: the receives find nothing.)
    let publisher = mq.publisher("c");
    let first = rt
        .block_on(async { timeout(LIMIT, publisher.publish(0u8)).await })
        .expect("publishes in time");
    assert_eq!(first.unwrap(), 0);
    // From now on the server seems to hang: the publish below waits for
    // its answer (reconnecting once it is 10 s past due).
    proxy.freeze();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let catch = |f: Box<dyn FnOnce() -> Option<StoreErrorKind> + Send>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        })
    };
    let recv_kind = |r: Result<tokio_memq::TopicMessage, RecvError>| match r {
        Err(RecvError::Store(e)) => Some(e.kind()),
        _ => None,
    };
    type Call = Box<dyn FnOnce() -> Option<StoreErrorKind> + Send>;
    let calls: Vec<(&str, Call)> = vec![
        ("subscriber", Box::new(move || recv_kind(sub.blocking_recv()))),
        ("member", Box::new(move || recv_kind(member.blocking_recv()))),
        (
            "publish",
            Box::new(move || publisher.blocking_publish(1u8).err().as_ref().and_then(kind)),
        ),
    ];
    let n = calls.len();
    for (name, call) in calls {
        let (started, done) = (started_tx.clone(), done_tx.clone());
        rt.spawn_blocking(move || {
            let _ = started.send(());
            let _ = done.send((name, catch(call)));
        });
    }
    for _ in 0..n {
        started_rx.recv_timeout(LIMIT).unwrap();
    }
    // Time for each to start waiting (one that starts after the shutdown
    // gets the same error).
    std::thread::sleep(Duration::from_millis(500));
    rt.shutdown_timeout(Duration::from_millis(10));
    for _ in 0..n {
        let (name, got) = done_rx.recv_timeout(LIMIT).expect("returns in time");
        let got = got.unwrap_or_else(|p| panic!("{name} panicked: {p}"));
        // A publish sent before its connection went is `OutcomeUnknown`.
        let expected: &[StoreErrorKind] = match name {
            "publish" => &[StoreErrorKind::OutcomeUnknown, StoreErrorKind::Unavailable],
            _ => &[StoreErrorKind::Unavailable],
        };
        assert!(got.is_some_and(|k| expected.contains(&k)), "{name}: {got:?}");
    }
    drop(mq);
}
