//! The store facing what it never writes itself, and topics changed under
//! a handle by another: a partition count of 0 or not a number, entries
//! without a payload or with a key that is not UTF-8, a command the server
//! refuses, a group member whose topic is deleted and created again. Each
//! is a typed error, promptly: never a panic, a silent message, or 30 s of
//! reconnecting as if the connection were at fault.
//!
//! Without `redis-server` the tests say they skipped; with `CI` set, a
//! missing server fails them (`.ci/run` installs it).

use std::time::{Duration, Instant};

use memq_redis::{Error, GroupConfig, RecvError, Start, Store, TopicConfig};
use memq_testkit::redis_server::RedisServer;
use tokio::time::timeout;

/// Well under the 30 s a command keeps reconnecting.
const PROMPT: Duration = Duration::from_secs(10);

async fn server() -> Option<RedisServer> {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("the start does not panic")
}

/// A plain connection of the test's own, writing as another program would.
async fn control(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_partition_count_this_crate_never_writes_is_a_protocol_error() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let mut control = control(&server).await;
    for count in ["0", "many", "99999999999"] {
        let _: () = redis::cmd("SET")
            .arg("memq:{evil}:parts")
            .arg(count)
            .query_async(&mut control)
            .await
            .unwrap();
        let started = Instant::now();
        let found = timeout(PROMPT, store.existing("evil")).await.expect("prompt");
        assert!(matches!(found, Err(Error::Protocol(_))), "{count}: {found:?}");
        let opened = timeout(PROMPT, store.partitioned_topic("evil", 2, TopicConfig::default()))
            .await
            .expect("prompt");
        assert!(matches!(opened, Err(Error::Protocol(_))), "{count}: {opened:?}");
        assert!(started.elapsed() < PROMPT);
        // Deleting the topic still works, and removes the bad count.
        assert!(store.delete_topic("evil").await.unwrap());
        assert_eq!(store.partition_count("evil").await.unwrap(), None);
    }
}

/// The topic `t` with "a" at offset 0, a reader of it from the start,
/// and a connection of the test's own.
async fn topic_t(
    server: &RedisServer,
) -> (
    memq_redis::Topic,
    memq_redis::Reader,
    redis::aio::MultiplexedConnection,
) {
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("t", TopicConfig::default()).await.unwrap();
    let reader = topic.reader(Start::Earliest).await.unwrap();
    topic.publish(b"a").await.unwrap();
    (topic, reader, control(server).await)
}

/// `XADD` of `fields` to topic `t`'s log, as another program would write.
fn xadd(fields: &[&[u8]]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg("memq:{t}:log").arg("0-*");
    for f in fields {
        cmd.arg(*f);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_are_reported_once_with_their_offset_then_passed() {
    let Some(server) = server().await else { return };
    let (topic, mut reader, mut control) = topic_t(&server).await;
    let _: String = xadd(&[b"t", b"1", b"x", b"y"])
        .query_async(&mut control)
        .await
        .unwrap();
    let _: String = xadd(&[b"t", b"1", b"p", b"x", b"k", &[0xff, 0xfe]])
        .query_async(&mut control)
        .await
        .unwrap();
    let _: String = xadd(&[b"p", b"x"]).query_async(&mut control).await.unwrap();
    topic.publish(b"b").await.unwrap();
    assert_eq!(
        &timeout(PROMPT, reader.recv())
            .await
            .expect("prompt")
            .unwrap()
            .payload[..],
        b"a"
    );
    for expected in 1..=3 {
        match timeout(PROMPT, reader.recv()).await.expect("prompt") {
            Err(RecvError::Store(Error::Malformed { offset, .. })) => assert_eq!(offset, expected),
            other => panic!("offset {expected}: {other:?}"),
        }
    }
    let next = timeout(PROMPT, reader.recv()).await.expect("prompt").unwrap();
    assert_eq!((next.offset, &next.payload[..]), (4, &b"b"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_topic_deleted_and_created_again_is_told_it_is_gone() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let other = Store::connect(&server.url()).await.unwrap();
    let config = GroupConfig::default().start(Start::Earliest);
    let topic = store.topic("jobs", TopicConfig::default()).await.unwrap();
    let mut member = topic.join("g", "old", config.clone()).await.unwrap();
    topic.publish(b"1").await.unwrap();
    assert_eq!(
        timeout(PROMPT, member.recv())
            .await
            .unwrap()
            .unwrap()
            .record
            .offset,
        0
    );
    assert!(other.delete_topic("jobs").await.unwrap());
    let again = other.topic("jobs", TopicConfig::default()).await.unwrap();
    let mut fresh = again
        .join("g", "new", config.manual(Duration::from_millis(200)))
        .await
        .unwrap();
    again.publish(b"2").await.unwrap();
    let told = timeout(PROMPT, member.recv()).await.expect("prompt");
    assert!(
        matches!(told, Err(RecvError::Store(Error::TopicGone(_)))),
        "{told:?}"
    );
    // What the old member's read took from the new topic went back to
    // the group, as never delivered.
    let got = timeout(PROMPT, fresh.recv()).await.unwrap().unwrap();
    assert_eq!(
        (got.record.offset, &got.record.payload[..], got.deliveries),
        (0, &b"2"[..], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_is_not_an_unavailable_server() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("t", TopicConfig::default()).await.unwrap();
    topic.publish(b"a").await.unwrap();
    let mut control = control(&server).await;
    let _: String = redis::cmd("XADD")
        .arg("memq:{t}:log")
        .arg("*")
        .arg("p")
        .arg("x")
        .query_async(&mut control)
        .await
        .unwrap();
    let started = Instant::now();
    let refused = timeout(PROMPT, topic.publish(b"b"))
        .await
        .expect("prompt")
        .unwrap_err();
    assert!(
        matches!(refused, Error::Redis(_)) && !refused.is_unavailable(),
        "{refused:?}"
    );
    assert!(started.elapsed() < PROMPT);
}

/// A lag found before a malformed entry, taken in from a watcher's
/// answer, is something to hand out (`buffered` counts it): a pump that
/// read again before it was reported would get the same answer again, and
/// drop it, for as long as no receive took the lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_taken_in_from_a_watcher_counts_as_buffered_until_reported() {
    let Some(server) = server().await else { return };
    let (topic, mut reader, mut control) = topic_t(&server).await;
    let _: String = xadd(&[b"p", b"x"]).query_async(&mut control).await.unwrap();
    // Offset 0 goes; the malformed entry at offset 1 stays.
    let _: u64 = redis::cmd("XTRIM")
        .arg("memq:{t}:log")
        .arg("MINID")
        .arg("0-2")
        .query_async(&mut control)
        .await
        .unwrap();
    let mut watcher = topic.watcher().await.unwrap();
    let answer = timeout(PROMPT, watcher.read(reader.wait_request(Duration::from_secs(1))))
        .await
        .expect("prompt")
        .unwrap();
    assert!(reader.accept(answer).await.unwrap());
    assert_eq!(reader.buffered(), 1, "the lag, not reported yet");
    assert!(matches!(reader.take_buffered(8), Err(RecvError::Lagged(1))));
    assert_eq!(reader.buffered(), 0);
    match timeout(PROMPT, reader.recv()).await.expect("prompt") {
        Err(RecvError::Store(Error::Malformed { offset: 1, .. })) => {}
        other => panic!("{other:?}"),
    }
}
