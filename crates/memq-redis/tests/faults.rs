//! Faults against a real `redis-server` of each test's own: connections
//! killed while a reader and a group member wait and while a publish is in
//! flight, a server restarted with its append-only file (`appendfsync
//! always`), and one restarted without its data.
//!
//! Without `redis-server` the tests say they skipped; with `CI` set, a
//! missing server fails them (`.ci/run` installs it).

use memq_testkit::within;
use std::time::Duration;

use memq_redis::{Error, GroupConfig, Member, Reader, RecvError, Start, Store, Topic, TopicConfig};
use memq_testkit::redis_server::{Persistence, RedisServer};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(60);

async fn server(persistence: Persistence) -> Option<RedisServer> {
    tokio::task::spawn_blocking(move || RedisServer::start_with(persistence))
        .await
        .expect("the start does not panic")
}

/// A plain connection of the test's own, to act on the server.
async fn control(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The topic `ledger`, with a reader and a member of the group
/// `auditors`, both from the start.
async fn ledger(server: &RedisServer) -> (Topic, Reader, Member) {
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("ledger", TopicConfig::default()).await.unwrap();
    let reader = topic.reader(Start::Earliest).await.unwrap();
    let member = topic
        .join("auditors", "a", GroupConfig::default().start(Start::Earliest))
        .await
        .unwrap();
    (topic, reader, member)
}

/// Kills every client connection but the control one.
async fn kill_clients(control: &mut redis::aio::MultiplexedConnection) -> u64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(control)
        .await
        .unwrap()
}

/// Clients blocked in a command on the server.
async fn blocked_clients(control: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(control)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Waits until `cond` holds (polling), failing after `LIMIT`.
async fn eventually<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) {
    within(LIMIT, async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the condition holds in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_and_a_member_whose_connections_are_killed_while_they_wait_carry_on() {
    let Some(server) = server(Persistence::None).await else {
        return;
    };
    let mut control = control(&server).await;
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("jobs", TopicConfig::default()).await.unwrap();
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    let mut member = topic
        .join("workers", "a", GroupConfig::default().start(Start::Earliest))
        .await
        .unwrap();
    let read = tokio::spawn(async move {
        let r = reader.recv().await.map(|r| r.offset);
        (reader, r)
    });
    let claimed = tokio::spawn(async move {
        let d = member.recv().await.map(|d| d.record.offset);
        (member, d)
    });
    // Both wait on the server, then lose their connections.
    eventually(|| {
        let mut c = control.clone();
        async move { blocked_clients(&mut c).await == 2 }
    })
    .await;
    assert!(kill_clients(&mut control).await >= 2);
    // A read reconnects (it may safely run twice); the publish then goes
    // out on the new connection.
    assert_eq!(topic.bounds().await.unwrap(), (0, 0));
    assert_eq!(topic.publish(b"first").await.unwrap(), 0);
    let (mut reader, r) = within(LIMIT, read).await.unwrap().unwrap();
    assert_eq!(r.unwrap(), 0, "the reader carried on where it was");
    let (mut member, d) = within(LIMIT, claimed).await.unwrap().unwrap();
    assert_eq!(d.unwrap(), 0, "the member got the message once");
    assert_eq!(topic.pending("workers").await.unwrap(), 0, "and acknowledged it");
    // And both go on.
    assert_eq!(topic.publish(b"second").await.unwrap(), 1);
    assert_eq!(within(LIMIT, reader.recv()).await.unwrap().unwrap().offset, 1);
    assert_eq!(
        within(LIMIT, member.recv()).await.unwrap().unwrap().record.offset,
        1
    );
}

/// A server that stops answering while keeping the connections open (hung,
/// or cut off by a network that drops packets): a reader and a member
/// waiting on it give their connections up once a reply is 10 s past due,
/// and carry on over new ones. Before, a blocking read had no limit and
/// waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_and_a_member_whose_server_goes_silent_while_they_wait_carry_on() {
    let Some(server) = server(Persistence::None).await else {
        return;
    };
    let control = control(&server).await;
    let target = format!(
        "127.0.0.1:{}",
        server
            .url()
            .trim_start_matches("redis://127.0.0.1:")
            .trim_end_matches('/')
    );
    let proxy = memq_testkit::proxy::Proxy::start(target.parse().unwrap())
        .await
        .unwrap();
    // The reader and the member reach the server through the proxy; the
    // publisher directly.
    let through = Store::connect(&proxy.redis_url()).await.unwrap();
    let topic = through.topic("jobs", TopicConfig::default()).await.unwrap();
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    let mut member = topic
        .join("workers", "a", GroupConfig::default().start(Start::Earliest))
        .await
        .unwrap();
    let read = tokio::spawn(async move { reader.recv().await.map(|r| r.offset) });
    let claimed = tokio::spawn(async move { member.recv().await.map(|d| d.record.offset) });
    eventually(|| {
        let mut c = control.clone();
        async move { blocked_clients(&mut c).await == 2 }
    })
    .await;
    proxy.freeze();
    let direct = Store::connect(&server.url()).await.unwrap();
    let publisher = direct.topic("jobs", TopicConfig::default()).await.unwrap();
    assert_eq!(publisher.publish(b"first").await.unwrap(), 0);
    // Found within the read's wait (1 s) plus 10 s, then read again.
    assert_eq!(within(LIMIT, read).await.unwrap().unwrap().unwrap(), 0);
    assert_eq!(within(LIMIT, claimed).await.unwrap().unwrap().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_cut_off_in_flight_says_its_outcome_is_unknown_and_the_next_reconnects() {
    let Some(server) = server(Persistence::None).await else {
        return;
    };
    let mut control = control(&server).await;
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("orders", TopicConfig::default()).await.unwrap();
    // Writes wait on the server; the publish is sent and held there.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query_async(&mut control)
        .await
        .unwrap();
    let publish = {
        let topic = topic.clone();
        tokio::spawn(async move { topic.publish(b"maybe").await })
    };
    eventually(|| {
        let mut c = control.clone();
        async move { blocked_clients(&mut c).await >= 1 }
    })
    .await;
    assert!(kill_clients(&mut control).await >= 1);
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut control)
        .await
        .unwrap();
    let outcome = within(LIMIT, publish).await.unwrap().unwrap();
    assert!(
        matches!(outcome, Err(Error::OutcomeUnknown(_))),
        "a publish whose reply was lost says so: {outcome:?}"
    );
    assert!(outcome
        .unwrap_err()
        .to_string()
        .contains("may or may not be stored"));
    // The next publish reconnects; offsets stay dense whatever happened to
    // the first (here it was never run: the server held it until its
    // client was gone).
    let next = within(LIMIT, topic.publish(b"next")).await.unwrap().unwrap();
    let (low, high) = topic.bounds().await.unwrap();
    assert_eq!((low, high), (0, next + 1));
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    let mut seen = Vec::new();
    while let Some(r) = reader.try_recv().await.unwrap() {
        seen.push((r.offset, r.payload.to_vec()));
    }
    assert_eq!(seen.last(), Some(&(next, b"next".to_vec())));
    assert_eq!(seen.len() as u64, high, "no gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_with_its_append_only_file_loses_and_repeats_nothing() {
    let Some(mut server) = server(Persistence::AofAlways).await else {
        return;
    };
    let (topic, mut reader, mut member) = ledger(&server).await;
    for i in 0..50u64 {
        assert_eq!(topic.publish(&i.to_be_bytes()).await.unwrap(), i);
    }
    let batch: Vec<[u8; 8]> = (50..100u64).map(u64::to_be_bytes).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
    assert_eq!(topic.publish_batch(&refs).await.unwrap(), 50..100);
    let (mut read, mut claimed) = (Vec::new(), Vec::new());
    for _ in 0..60 {
        read.push(within(LIMIT, reader.recv()).await.unwrap().unwrap());
    }
    for _ in 0..40 {
        claimed.push(within(LIMIT, member.recv()).await.unwrap().unwrap().record);
    }

    tokio::task::block_in_place(|| server.restart());

    // Reads reconnect; everything acknowledged before is still there.
    assert_eq!(within(LIMIT, topic.bounds()).await.unwrap().unwrap(), (0, 100));
    let batch: Vec<[u8; 8]> = (100..200u64).map(u64::to_be_bytes).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
    assert_eq!(topic.publish_batch(&refs).await.unwrap(), 100..200);
    while read.len() < 200 {
        read.push(within(LIMIT, reader.recv()).await.unwrap().unwrap());
    }
    while claimed.len() < 200 {
        claimed.push(within(LIMIT, member.recv()).await.unwrap().unwrap().record);
    }
    for (i, r) in read.iter().enumerate() {
        assert_eq!(
            (r.offset, &r.payload[..]),
            (i as u64, &(i as u64).to_be_bytes()[..])
        );
    }
    for (i, r) in claimed.iter().enumerate() {
        assert_eq!(
            (r.offset, &r.payload[..]),
            (i as u64, &(i as u64).to_be_bytes()[..])
        );
    }
    assert_eq!(topic.pending("auditors").await.unwrap(), 0);
    assert!(
        timeout(Duration::from_millis(300), reader.try_recv())
            .await
            .unwrap()
            .unwrap()
            .is_none(),
        "nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_without_its_data_is_an_error_not_a_hang() {
    let Some(mut server) = server(Persistence::None).await else {
        return;
    };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("events", TopicConfig::default()).await.unwrap();
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    assert_eq!(topic.publish_batch(&[&b"a"[..], b"b"]).await.unwrap(), 0..2);
    assert_eq!(within(LIMIT, reader.recv()).await.unwrap().unwrap().offset, 0);
    // Both buffered messages are delivered; the restart happens between.
    tokio::task::block_in_place(|| server.restart());
    assert_eq!(within(LIMIT, reader.recv()).await.unwrap().unwrap().offset, 1);
    let next = within(LIMIT, reader.recv()).await.unwrap();
    assert!(
        matches!(next, Err(RecvError::Store(Error::TopicGone(ref t))) if t == "events"),
        "the topic it read is gone: {next:?}"
    );
    // A publish through the old handle is refused too (after the
    // reconnection, or with the lost connection's unknown outcome).
    let first = topic.publish(b"c").await;
    let refused = match first {
        Err(Error::OutcomeUnknown(_)) => topic.publish(b"c").await,
        other => other,
    };
    assert!(matches!(refused, Err(Error::TopicGone(_))), "{refused:?}");
}

/// A reader at 5 told that the log ends at 2.
fn assert_ahead_at_5_of_2<T: std::fmt::Debug>(told: &Result<T, RecvError>) {
    assert!(
        matches!(
            told,
            Err(RecvError::Store(Error::AheadOfLog {
                position: 5,
                high: 2,
                ..
            }))
        ),
        "{told:?}"
    );
}

/// The server keeps the topic but loses its newest messages (restarted
/// from an older copy, a failover to a replica that lagged): a reader past
/// the end of the log would wait forever for offsets that new messages
/// never reach. It is told instead, waiting or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_past_the_end_of_a_log_that_lost_messages_is_told_not_stalled() {
    let Some(server) = server(Persistence::None).await else {
        return;
    };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store.topic("jobs", TopicConfig::default()).await.unwrap();
    topic
        .publish_batch(&[&b"a"[..], b"b", b"c", b"d", b"e"])
        .await
        .unwrap();
    let mut waiting = topic
        .reader(Start::Earliest)
        .await
        .unwrap()
        .with_wait(Duration::from_millis(100));
    let mut polling = topic.reader(Start::Earliest).await.unwrap();
    for _ in 0..5 {
        waiting.recv().await.unwrap();
        polling.try_recv().await.unwrap().unwrap();
    }
    assert_eq!((waiting.position(), polling.position()), (5, 5));
    // The log goes, its settings stay: as after a restart from a copy made
    // before these five were published.
    let mut control = control(&server).await;
    let _: u64 = redis::cmd("DEL")
        .arg("memq:{jobs}:log")
        .query_async(&mut control)
        .await
        .unwrap();
    assert_eq!(
        topic.publish_batch(&[&b"x"[..], b"y"]).await.unwrap(),
        0..2,
        "offsets over again"
    );
    let told = within(LIMIT, waiting.recv()).await.expect("told, not stalled");
    assert_ahead_at_5_of_2(&told);
    let told = within(LIMIT, polling.try_recv()).await.unwrap();
    assert_ahead_at_5_of_2(&told);
    // An empty log whose last offset is behind the reader: the same.
    let _: u64 = redis::cmd("XTRIM")
        .arg("memq:{jobs}:log")
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut control)
        .await
        .unwrap();
    let told = within(LIMIT, polling.try_recv()).await.unwrap();
    assert_ahead_at_5_of_2(&told);
    // A reader at the end is fine.
    let mut fresh = topic.reader(Start::Latest).await.unwrap();
    assert!(within(LIMIT, fresh.try_recv()).await.unwrap().unwrap().is_none());
}

/// A restarted server answers `LOADING` to most commands until its data
/// is loaded, after accepting connections. A reader and a group member
/// that reconnect meanwhile (their blocking reads) wait for it, rather
/// than reporting an error; nothing is lost or repeated. Loading is
/// slowed (`key-load-delay`, 5,000 keys at 200 µs: about a second) so
/// that the reconnections land in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_that_reconnect_while_the_server_loads_wait_for_it() {
    let Some(mut server) = server(Persistence::AofAlways).await else {
        return;
    };
    let (topic, mut reader, mut member) = ledger(&server).await;
    for i in 0..10u64 {
        assert_eq!(topic.publish(&i.to_be_bytes()).await.unwrap(), i);
    }
    for i in 0..10u64 {
        assert_eq!(within(LIMIT, reader.recv()).await.unwrap().unwrap().offset, i);
        let claimed = within(LIMIT, member.recv()).await.unwrap().unwrap().record;
        assert_eq!(claimed.offset, i);
    }
    let mut control = control(&server).await;
    let _: i64 = redis::cmd("EVAL")
        .arg("for i = 1, 5000 do redis.call('SET', 'filler:' .. i, 'x') end return 1")
        .arg(0)
        .query_async(&mut control)
        .await
        .unwrap();
    // Both wait in a blocking read when the server goes.
    let reading = tokio::spawn(async move { reader.recv().await.map(|r| (r.offset, r.payload.to_vec())) });
    let claiming = tokio::spawn(async move {
        member
            .recv()
            .await
            .map(|c| (c.record.offset, c.record.payload.to_vec()))
    });
    eventually(|| {
        let mut control = control.clone();
        async move { blocked_clients(&mut control).await == 2 }
    })
    .await;
    tokio::task::block_in_place(|| server.restart_loading_slowly(Duration::from_micros(200)));
    assert_eq!(within(LIMIT, topic.publish(b"after")).await.unwrap().unwrap(), 10);
    let after = (10, b"after".to_vec());
    assert_eq!(within(LIMIT, reading).await.unwrap().unwrap().unwrap(), after);
    assert_eq!(within(LIMIT, claiming).await.unwrap().unwrap().unwrap(), after);
}
