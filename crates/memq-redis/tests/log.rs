//! The topic log against a real `redis-server` (Debian's 7.0) that each
//! test starts on a free port of 127.0.0.1: dense offsets from concurrent
//! publishers, contiguous batches, exact lag after trimming, start
//! positions, blocking reads woken by a publish, deleted topics.
//!
//! Without `redis-server` the tests say they skipped; with `CI` set, a
//! missing server fails them (`.ci/run` installs it).

use memq_testkit::within;
use std::time::Duration;

use memq_testkit::redis_server::RedisServer;

use memq_redis::{Error, GroupConfig, RecvError, Start, Store, TopicConfig};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

/// A `redis-server` of this test's own (killed when dropped), or `None`
/// where there is none and CI is unset.
async fn server() -> Option<RedisServer> {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("the start does not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_one_gapless_sequence_and_contiguous_batches() {
    let Some(server) = server().await else { return };
    // Two "processes": two stores, two connections.
    let (a, b) = (
        Store::connect(&server.url()).await.unwrap(),
        Store::connect(&server.url()).await.unwrap(),
    );
    let config = TopicConfig::default().max_messages(None);
    let (ta, tb) = (
        a.topic("orders", config.clone()).await.unwrap(),
        b.topic("orders", config).await.unwrap(),
    );
    let mut reader = ta.reader(Start::Earliest).await.unwrap();
    let publish = |t: memq_redis::Topic, tag: u8| {
        tokio::spawn(async move {
            let mut runs = Vec::new();
            for i in 0..50u8 {
                let batch: Vec<Vec<u8>> = (0..3).map(|j| vec![tag, i, j]).collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                runs.push(t.publish_batch(&refs).await.unwrap());
            }
            runs
        })
    };
    let (ra, rb) = (publish(ta.clone(), 1), publish(tb.clone(), 2));
    let mut runs = ra.await.unwrap();
    runs.extend(rb.await.unwrap());
    runs.sort_by_key(|r| r.start);
    // One gapless sequence of 300 offsets, each batch a run of 3.
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(*r, (i as u64 * 3)..(i as u64 * 3 + 3));
    }
    let mut got = Vec::new();
    while got.len() < 300 {
        let r = within(LIMIT, reader.recv()).await.unwrap().unwrap();
        assert_eq!(r.offset, got.len() as u64);
        got.push(r.payload.to_vec());
    }
    // A batch is contiguous: its three messages are adjacent, in order.
    for chunk in got.chunks(3) {
        assert_eq!((chunk[0][0], chunk[0][1]), (chunk[2][0], chunk[2][1]));
        assert_eq!([chunk[0][2], chunk[1][2], chunk[2][2]], [0, 1, 2]);
    }
    assert_eq!(ta.bounds().await.unwrap(), (0, 300));
}

#[tokio::test]
async fn trimming_is_reported_as_exact_lag_then_the_rest() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store
        .topic("small", TopicConfig::default().max_messages(Some(3)))
        .await
        .unwrap();
    let mut early = topic.reader(Start::Earliest).await.unwrap();
    for i in 0..10u8 {
        assert_eq!(topic.publish(&[i]).await.unwrap(), u64::from(i));
    }
    assert_eq!(topic.bounds().await.unwrap(), (7, 10));
    match within(LIMIT, early.recv()).await.unwrap() {
        Err(RecvError::Lagged(7)) => {}
        other => panic!("expected Lagged(7), got {other:?}"),
    }
    let rest: Vec<u8> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(within(LIMIT, early.recv()).await.unwrap().unwrap().payload[0]);
        }
        v
    };
    assert_eq!(rest, [7, 8, 9]);
    assert!(early.try_recv().await.unwrap().is_none());
}

#[tokio::test]
async fn start_positions_and_a_blocking_read_woken_by_a_publish() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("t", TopicConfig::default()).await.unwrap();
    topic.publish_batch(&[&b"a"[..], b"b", b"c"]).await.unwrap();
    let mut latest = topic.reader(Start::Latest).await.unwrap();
    let mut from1 = topic.reader(Start::Offset(1)).await.unwrap();
    assert_eq!(latest.position(), 3);
    assert_eq!(&from1.recv().await.unwrap().payload[..], b"b");
    assert!(matches!(
        topic.reader(Start::Offset(4)).await,
        Err(Error::OutOfRange {
            offset: 4,
            low: 0,
            high: 3
        })
    ));
    // A reader waiting on the server is woken by a publish from elsewhere.
    let other = Store::connect(&server.url()).await.unwrap();
    let t2 = other.topic("t", TopicConfig::default()).await.unwrap();
    let waiting = tokio::spawn(async move { within(LIMIT, latest.recv()).await.unwrap().unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(t2.publish(b"d").await.unwrap(), 3);
    let r = waiting.await.unwrap();
    assert_eq!((r.offset, &r.payload[..]), (3, &b"d"[..]));
    assert!(r.time_ms > 1_600_000_000_000, "server time in ms: {}", r.time_ms);
}

#[tokio::test]
async fn a_deleted_topic_refuses_publishes_from_old_handles() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let old = store.topic("gone", TopicConfig::default()).await.unwrap();
    old.publish(b"1").await.unwrap();
    assert!(store.delete_topic("gone").await.unwrap());
    assert!(matches!(old.publish(b"2").await, Err(Error::TopicGone(_))));
    // Created again: a new incarnation, its own offsets from 0.
    let new = store.topic("gone", TopicConfig::default()).await.unwrap();
    assert_eq!(new.publish(b"3").await.unwrap(), 0);
    assert!(
        matches!(old.publish(b"4").await, Err(Error::TopicGone(_))),
        "still the old incarnation"
    );
    assert!(!store.delete_topic("never").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_goes_to_one_member_of_a_group() {
    use memq_redis::GroupConfig;
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("jobs", TopicConfig::default()).await.unwrap();
    let config = GroupConfig::default().start(Start::Earliest);
    let mut members = Vec::new();
    for name in ["a", "b"] {
        members.push(topic.join("workers", name, config.clone()).await.unwrap());
    }
    for i in 0..40u8 {
        topic.publish(&[i]).await.unwrap();
    }
    let tasks: Vec<_> = members
        .into_iter()
        .map(|mut m| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                // Stop once nothing came for a while (the other member has the rest).
                while let Ok(Ok(d)) = timeout(Duration::from_millis(1500), m.recv()).await {
                    assert_eq!(d.deliveries, 1);
                    got.push(d.record.payload[0]);
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(got, sorted, "each member's share in order");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<u8>>(), "every message exactly once");
    assert_eq!(topic.pending("workers").await.unwrap(), 0, "auto-acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_members_message_is_redelivered_then_dead_lettered() {
    use memq_redis::GroupConfig;
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("tasks", TopicConfig::default()).await.unwrap();
    let dead_topic = store
        .topic("tasks.dead-letters", TopicConfig::default())
        .await
        .unwrap();
    let mut dead = dead_topic.reader(Start::Earliest).await.unwrap();
    let config = GroupConfig::default()
        .start(Start::Earliest)
        .manual(Duration::from_millis(200))
        .max_deliveries(Some(2));
    let mut idle = topic.join("g", "idle", config.clone()).await.unwrap();
    let mut busy = topic.join("g", "busy", config).await.unwrap();
    topic.publish(b"fragile").await.unwrap();
    topic.publish(b"fine").await.unwrap();
    let first = within(LIMIT, idle.recv()).await.unwrap().unwrap();
    assert_eq!((first.record.offset, first.deliveries), (0, 1));
    // `idle` never acknowledges: after the ack timeout `busy` takes it over
    // (after or before the other message), with its delivery count.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let d = within(LIMIT, busy.recv()).await.unwrap().unwrap();
        seen.push((d.record.offset, d.deliveries));
        if d.record.offset == 1 {
            busy.ack(1).await.unwrap();
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [(0, 2), (1, 1)]);
    // `busy` does not acknowledge offset 0 either: past the limit of 2 it
    // becomes a dead letter, and is acknowledged.
    let next = timeout(Duration::from_millis(1500), busy.recv()).await;
    assert!(next.is_err(), "nothing more to deliver: {next:?}");
    let letter = within(LIMIT, dead.recv()).await.unwrap().unwrap();
    assert_eq!(&letter.payload[..], b"fragile");
    // Where it came from, as headers.
    let h = &letter.headers;
    assert_eq!(h.get_str("memq.dead_letter.topic"), Some("tasks"));
    assert_eq!(h.get_str("memq.dead_letter.group"), Some("g"));
    assert_eq!(h.get_str("memq.dead_letter.offset"), Some("0"));
    assert_eq!(h.get_str("memq.dead_letter.deliveries"), Some("2"));
    assert_eq!(h.get_str("memq.dead_letter.reason"), Some("max_deliveries=2"));
    assert_eq!(topic.pending("g").await.unwrap(), 0);
}

/// A member that is gone hands back everything it holds, past one round
/// of the function (512) too: another member takes each message over at
/// once (not after the ack timeout), with its delivery count, and the
/// gone member holds nothing after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_member_hands_back_all_it_holds() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("jobs", TopicConfig::default()).await.unwrap();
    let config = GroupConfig::default()
        .start(Start::Earliest)
        .manual(Duration::from_secs(3600));
    let mut gone = topic.join("g", "gone", config.clone()).await.unwrap();
    let payloads: Vec<[u8; 2]> = (0..600u16).map(u16::to_be_bytes).collect();
    let batch: Vec<memq_redis::Message<'_>> = payloads.iter().map(|p| memq_redis::Message::new(p)).collect();
    topic.publish_messages(&batch).await.unwrap();
    for offset in 0..600 {
        let d = within(LIMIT, gone.recv()).await.unwrap().unwrap();
        assert_eq!((d.record.offset, d.deliveries), (offset, 1));
    }
    drop(gone);
    let released = within(
        LIMIT,
        topic.release_member("g", "gone", Duration::from_secs(3600)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(released, 600);
    let mut other = topic.join("g", "other", config).await.unwrap();
    let mut offsets = Vec::new();
    for _ in 0..600 {
        let d = within(LIMIT, other.recv()).await.unwrap().unwrap();
        assert_eq!(d.deliveries, 2, "taken over with its count");
        offsets.push(d.record.offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..600).collect::<Vec<u64>>(), "each once");
    let again = within(
        LIMIT,
        topic.release_member("g", "gone", Duration::from_secs(3600)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(again, 0, "it holds nothing now");
}

/// Number of clients blocked on the server now.
async fn blocked_clients(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Waits until the server has no blocked client (10 s at most).
async fn no_client_stays_blocked(url: &str) {
    let started = std::time::Instant::now();
    while blocked_clients(url).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a client stayed blocked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dropped_receive_leaves_no_client_blocked_and_loses_nothing() {
    use memq_redis::GroupConfig;
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("quiet", TopicConfig::default()).await.unwrap();
    // A reader waiting 60 s on the server, dropped after 100 ms.
    let mut reader = topic
        .reader(Start::Latest)
        .await
        .unwrap()
        .with_wait(Duration::from_secs(60));
    assert!(timeout(Duration::from_millis(100), reader.recv()).await.is_err());
    // A group member, the same.
    let mut member = topic.join("g", "m", GroupConfig::default()).await.unwrap();
    assert!(timeout(Duration::from_millis(100), member.recv()).await.is_err());
    // The reader's 60 s wait is cancelled on the server at once (the
    // member's own wait lasts at most 1 s anyway).
    no_client_stays_blocked(&server.url()).await;
    // And both go on as if nothing happened.
    topic.publish(b"x").await.unwrap();
    assert_eq!(
        &within(LIMIT, reader.recv()).await.unwrap().unwrap().payload[..],
        b"x"
    );
    let d = within(LIMIT, member.recv()).await.unwrap().unwrap();
    assert_eq!((&d.record.payload[..], d.deliveries), (&b"x"[..], 1));
    assert_eq!(topic.pending("g").await.unwrap(), 0);
}

#[tokio::test]
async fn keys_formats_and_headers_cross_the_server_unchanged() {
    use memq_redis::{GroupConfig, Headers, Message};
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("rich", TopicConfig::default()).await.unwrap();
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    let mut member = topic
        .join("g", "m", GroupConfig::default().start(Start::Earliest))
        .await
        .unwrap();
    let mut headers = Headers::new();
    headers
        .insert("trace-id", "4bf92f35")
        .insert("hop", "a")
        .insert("hop", "b")
        .insert("bin", vec![0u8, 0xFF, b'p']);
    let sent = [
        Message::new(b"{\"n\":1}")
            .key("user-7")
            .format("json")
            .headers(&headers),
        Message::new(b"plain"),
    ];
    assert_eq!(topic.publish_messages(&sent).await.unwrap(), 0..2);
    let first = within(LIMIT, reader.recv()).await.unwrap().unwrap();
    assert_eq!(&first.payload[..], b"{\"n\":1}");
    assert_eq!(
        (first.key.as_deref(), first.format.as_deref()),
        (Some("user-7"), Some("json"))
    );
    assert_eq!(first.headers, headers, "order, repeats and binary values kept");
    let second = within(LIMIT, reader.recv()).await.unwrap().unwrap();
    assert_eq!((second.key, second.format, second.headers.len()), (None, None, 0));
    let via_group = within(LIMIT, member.recv()).await.unwrap().unwrap();
    assert_eq!(via_group.record.headers, headers);
}

#[tokio::test]
async fn partitions_are_logs_of_their_own_and_counts_are_checked() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let clicks = store
        .partitioned_topic("clicks", 3, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(clicks.partitions().len(), 3);
    for (p, topic) in clicks.partitions().iter().enumerate() {
        assert_eq!((topic.name(), topic.partition()), ("clicks", Some(p)));
        // Each partition has its own offsets from 0.
        assert_eq!(topic.publish(&[p as u8]).await.unwrap(), 0);
        assert_eq!(topic.publish(&[p as u8]).await.unwrap(), 1);
    }
    let mut reader = clicks
        .partition(2)
        .unwrap()
        .reader(Start::Earliest)
        .await
        .unwrap();
    assert_eq!(within(LIMIT, reader.recv()).await.unwrap().unwrap().payload[0], 2);
    // Another process sees the same count; another count, or the other
    // kind of topic under the name, is refused.
    let again = store
        .partitioned_topic("clicks", 3, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(again.partition(1).unwrap().bounds().await.unwrap(), (0, 2));
    assert!(matches!(
        store.partitioned_topic("clicks", 4, TopicConfig::default()).await,
        Err(Error::PartitionCount {
            requested: 4,
            existing: Some(3),
            ..
        })
    ));
    assert!(matches!(
        store.partitioned_topic("none", 0, TopicConfig::default()).await,
        Err(Error::PartitionCount { .. })
    ));
    assert!(matches!(
        store.topic("clicks", TopicConfig::default()).await,
        Err(Error::KindMismatch { .. })
    ));
    store.topic("plain", TopicConfig::default()).await.unwrap();
    assert!(matches!(
        store.partitioned_topic("plain", 2, TopicConfig::default()).await,
        Err(Error::KindMismatch { .. })
    ));
    // A plain topic whose name looks like a partition does not collide.
    let lookalike = store.topic("clicks#1", TopicConfig::default()).await.unwrap();
    assert_eq!(lookalike.publish(b"x").await.unwrap(), 0);
    assert_eq!(clicks.partition(1).unwrap().bounds().await.unwrap(), (0, 2));
    // Deleting removes every partition.
    assert!(store.delete_topic("clicks").await.unwrap());
    assert!(matches!(
        clicks.partition(0).unwrap().publish(b"y").await,
        Err(Error::TopicGone(_))
    ));
    let fresh = store
        .partitioned_topic("clicks", 5, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(fresh.partition(4).unwrap().publish(b"z").await.unwrap(), 0);
}

#[tokio::test]
async fn a_reader_of_a_deleted_topic_is_told_not_fed_the_new_one() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("re", TopicConfig::default()).await.unwrap();
    topic.publish_batch(&[&b"1"[..], b"2", b"3"]).await.unwrap();
    let mut reader = topic.reader(Start::Latest).await.unwrap();
    assert_eq!(reader.position(), 3);
    store.delete_topic("re").await.unwrap();
    let again = store.topic("re", TopicConfig::default()).await.unwrap();
    again.publish_batch(&[&b"a"[..], b"b", b"c", b"d"]).await.unwrap();
    // Offsets started over: offset 3 is the new topic's fourth message,
    // which this reader must not take for what follows its old position.
    match within(LIMIT, reader.recv()).await.unwrap() {
        Err(RecvError::Store(Error::TopicGone(name))) => assert_eq!(name, "re"),
        other => panic!("expected TopicGone, got {other:?}"),
    }
}

/// The same while the reader waits on the server: a stream deleted under
/// a blocked `XREAD` does not end its wait, and the topic created again
/// answered it with its own message at the reader's old position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waiting_while_its_topic_is_deleted_and_created_again_is_told() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("re", TopicConfig::default()).await.unwrap();
    topic.publish_batch(&[&b"1"[..], b"2"]).await.unwrap();
    let mut reader = topic
        .reader(Start::Latest)
        .await
        .unwrap()
        .with_wait(Duration::from_secs(20));
    assert_eq!(reader.position(), 2);
    let waiting = tokio::spawn(async move { reader.recv().await });
    // Until the reader is blocked on the server.
    let mut control = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    within(LIMIT, async {
        loop {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut control)
                .await
                .unwrap();
            if info.contains("blocked_clients:1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    store.delete_topic("re").await.unwrap();
    let again = store.topic("re", TopicConfig::default()).await.unwrap();
    // Offset 2 of the new topic is its third message.
    again.publish_batch(&[&b"a"[..], b"b", b"c"]).await.unwrap();
    match within(LIMIT, waiting).await.unwrap().unwrap() {
        Err(RecvError::Store(Error::TopicGone(name))) => assert_eq!(name, "re"),
        other => panic!("expected TopicGone, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_trimmed_while_pending_is_not_delivered_empty() {
    use memq_redis::GroupConfig;
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store
        .topic("short", TopicConfig::default().max_messages(Some(2)))
        .await
        .unwrap();
    // A member "m" takes a message and goes away without acknowledging it.
    let mut first = topic
        .join(
            "g",
            "m",
            GroupConfig::default()
                .start(Start::Earliest)
                .manual(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    topic.publish(b"old").await.unwrap();
    assert_eq!(
        &within(LIMIT, first.recv()).await.unwrap().unwrap().record.payload[..],
        b"old"
    );
    drop(first);
    // The message is trimmed while still pending to "m".
    topic.publish_batch(&[&b"x"[..], b"y"]).await.unwrap();
    // "m" again: what is pending to it has no body any more; it is
    // acknowledged, not handed out as an empty message.
    let mut again = topic.join("g", "m", GroupConfig::default()).await.unwrap();
    let got = within(LIMIT, again.recv()).await.unwrap().unwrap();
    assert_eq!(&got.record.payload[..], b"x");
    let got = within(LIMIT, again.recv()).await.unwrap().unwrap();
    assert_eq!(&got.record.payload[..], b"y");
    assert_eq!(topic.pending("g").await.unwrap(), 0);
}

#[tokio::test]
async fn too_many_headers_is_a_typed_error_and_publishes_nothing() {
    use memq_redis::{Headers, Message, MAX_HEADERS};
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("hdr", TopicConfig::default()).await.unwrap();
    let many: Headers = (0..=MAX_HEADERS).map(|i| (format!("h{i}"), "v")).collect();
    let at_limit: Headers = (0..MAX_HEADERS).map(|i| (format!("h{i}"), "v")).collect();
    let err = topic
        .publish_messages(&[Message::new(b"ok"), Message::new(b"x").headers(&many)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManyHeaders(n) if n == MAX_HEADERS + 1),
        "{err:?}"
    );
    assert_eq!(topic.bounds().await.unwrap(), (0, 0), "nothing published");
    // The limit itself works.
    assert_eq!(
        topic
            .publish_messages(&[Message::new(b"y").headers(&at_limit)])
            .await
            .unwrap(),
        0..1
    );
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    assert_eq!(
        within(LIMIT, reader.recv()).await.unwrap().unwrap().headers.len(),
        MAX_HEADERS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_stats_count_what_is_not_handed_out_and_what_is_not_acknowledged() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("audit", TopicConfig::default()).await.unwrap();
    assert_eq!(topic.group_stats("readers").await.unwrap(), None, "no stream yet");
    let config = GroupConfig::default()
        .manual(Duration::from_secs(60))
        .start(Start::Earliest);
    let mut member = topic.join("readers", "a", config).await.unwrap();
    let payloads: Vec<[u8; 1]> = (0..10u8).map(|i| [i]).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    assert_eq!(topic.publish_batch(&refs).await.unwrap(), 0..10);
    let stats = topic.group_stats("readers").await.unwrap().unwrap();
    assert_eq!((stats.lag, stats.pending, stats.members), (10, 0, 1));
    for offset in 0..3 {
        let d = within(LIMIT, member.recv()).await.unwrap().unwrap();
        assert_eq!(d.record.offset, offset);
    }
    let stats = topic.group_stats("readers").await.unwrap().unwrap();
    assert_eq!((stats.lag, stats.pending), (7, 3));
    member.ack(0).await.unwrap();
    member.ack(1).await.unwrap();
    let stats = topic.group_stats("readers").await.unwrap().unwrap();
    assert_eq!((stats.lag, stats.pending), (7, 1));
    assert_eq!(topic.group_stats("nobody").await.unwrap(), None);
}

/// A member hands back only what it holds: `release` (a nack) and
/// `release_unseen` (a read-ahead of a member going away) of a message
/// another member took over meanwhile leave it with that member, its
/// delivery count as it is. (Found by review: both claimed it back
/// unconditionally, so a third member received what the second still
/// held, with the count reset.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_hands_back_only_what_it_holds() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("t", TopicConfig::default()).await.unwrap();
    let ack_timeout = Duration::from_millis(300);
    let config = GroupConfig::default().manual(ack_timeout).start(Start::Earliest);
    let mut a = topic.join("g", "a", config.clone()).await.unwrap();
    let mut b = topic.join("g", "b", config).await.unwrap();
    assert_eq!(topic.publish(b"x").await.unwrap(), 0);
    let first = within(LIMIT, a.recv()).await.unwrap().unwrap();
    assert_eq!((first.record.offset, first.deliveries), (0, 1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Idle past the ack timeout: b takes it over.
    let taken = within(LIMIT, b.recv()).await.unwrap().unwrap();
    assert_eq!((taken.record.offset, taken.deliveries), (0, 2));
    topic
        .release_unseen("g", "a", 0, first.deliveries, ack_timeout)
        .await
        .unwrap();
    topic.release("g", "a", 0, ack_timeout).await.unwrap();
    let mut control = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("memq:{t}:log")
        .arg("g")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut control)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let (id, owner, _idle, count) = &pending[0];
    assert_eq!(
        (id.as_str(), owner.as_str(), *count),
        ("0-1", "b", 2),
        "still b's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_on_a_watcher_while_its_reader_stays_free() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("w", TopicConfig::default()).await.unwrap();
    let other = Store::connect(&server.url()).await.unwrap();
    let elsewhere = other.topic("w", TopicConfig::default()).await.unwrap();
    let mut reader = topic.reader(Start::Latest).await.unwrap();
    let mut watcher = topic.watcher().await.unwrap();
    let offsets = |records: Vec<memq_redis::Record>| records.iter().map(|r| r.offset).collect::<Vec<u64>>();

    // The read waits on the watcher; the reader answers meanwhile.
    let request = reader.wait_request(Duration::from_secs(20));
    let answer = {
        let waiting = watcher.read(request);
        tokio::pin!(waiting);
        assert!(timeout(Duration::from_millis(100), &mut waiting).await.is_err());
        assert!(within(LIMIT, reader.try_recv_batch(8))
            .await
            .unwrap()
            .unwrap()
            .is_empty());
        let publishing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            elsewhere.publish_batch(&[&b"a"[..], b"b", b"c"]).await.unwrap()
        });
        let answer = within(LIMIT, waiting).await.unwrap().unwrap();
        assert_eq!(publishing.await.unwrap(), 0..3);
        answer
    };
    assert!(reader.accept(answer).await.unwrap());
    assert_eq!(reader.buffered(), 3);
    assert_eq!(offsets(reader.take_buffered(2).unwrap()), vec![0, 1]);
    assert_eq!(offsets(reader.try_recv_batch(8).await.unwrap()), vec![2]);

    // An answer to a request made before the reader read is dropped:
    // nothing twice.
    let request = reader.wait_request(Duration::from_secs(20));
    topic.publish_batch(&[&b"d"[..], b"e"]).await.unwrap();
    let stale = within(LIMIT, watcher.read(request)).await.unwrap().unwrap();
    assert_eq!(offsets(reader.recv_batch(1).await.unwrap()), vec![3]);
    assert!(
        !reader.accept(stale).await.unwrap(),
        "made before the reader read"
    );
    assert_eq!(
        offsets(reader.take_buffered(8).unwrap()),
        vec![4],
        "what it had buffered"
    );
    assert!(
        reader.try_recv_batch(8).await.unwrap().is_empty(),
        "nothing twice"
    );
    // ... and so is one made for another reader.
    let mut behind = topic.reader(Start::Offset(1)).await.unwrap();
    let foreign = within(LIMIT, watcher.read(behind.wait_request(Duration::from_secs(1))))
        .await
        .unwrap()
        .unwrap();
    assert!(!reader.accept(foreign).await.unwrap(), "another reader's");
    assert_eq!(reader.buffered(), 0);
    assert_eq!(offsets(behind.try_recv_batch(1).await.unwrap()), vec![1]);

    // A read dropped while it waits is cancelled on the server, and the
    // watcher serves the next one.
    let request = reader.wait_request(Duration::from_secs(60));
    assert!(timeout(Duration::from_millis(100), watcher.read(request))
        .await
        .is_err());
    no_client_stays_blocked(&server.url()).await;
    topic.publish(b"f").await.unwrap();
    // (An answer may come back empty once: the cancelled wait's unblock
    // can reach the next one.)
    let mut got = Vec::new();
    for _ in 0..3 {
        let request = reader.wait_request(Duration::from_secs(20));
        let answer = within(LIMIT, watcher.read(request)).await.unwrap().unwrap();
        reader.accept(answer).await.unwrap();
        got = offsets(reader.take_buffered(8).unwrap());
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, vec![5]);
}
