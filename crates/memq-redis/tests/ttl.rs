//! Topics with a TTL against a real `redis-server` of each test's own:
//! expired messages are never delivered and are skipped silently, while a
//! reader is told exactly how many it lost to `max_messages`, however the
//! two kinds of removal interleave. (Real time, by the server's clock: the
//! TTLs are 1 s, so a slow machine has a second between a publish and the
//! reads that expect it live, and the waits for expiry 1.3 s.)
//!
//! Without `redis-server` the tests say they skipped; with `CI` set, a
//! missing server fails them (`.ci/run` installs it).

use memq_testkit::within;
use std::time::Duration;

use memq_redis::{GroupConfig, RecvError, Start, Store, Topic, TopicConfig};
use memq_testkit::redis_server::RedisServer;
use tokio::time::{sleep, timeout};

const LIMIT: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_millis(1_000);
/// Long enough for everything published before it to expire.
const PAST_TTL: Duration = Duration::from_millis(1_300);

async fn server() -> Option<RedisServer> {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("the start does not panic")
}

async fn publish(topic: &Topic, offsets: std::ops::Range<u64>) {
    let payloads: Vec<[u8; 8]> = offsets.clone().map(u64::to_be_bytes).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    assert_eq!(topic.publish_batch(&refs).await.unwrap(), offsets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_skipped_silently_and_evicted_ones_counted_exactly() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let config = TopicConfig::default().max_messages(Some(2)).ttl(Some(TTL));
    let topic = store.topic("sensors", config).await.unwrap();
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    // 0 and 1 expire; 2 is evicted for 3 and 4; 3 and 4 expire; 5 is
    // evicted for 6 and 7.
    publish(&topic, 0..2).await;
    sleep(PAST_TTL).await;
    publish(&topic, 2..5).await;
    sleep(PAST_TTL).await;
    publish(&topic, 5..8).await;
    assert_eq!(topic.bounds().await.unwrap(), (6, 8));
    let lagged = within(LIMIT, reader.recv()).await.unwrap();
    assert!(
        matches!(lagged, Err(RecvError::Lagged(2))),
        "only the 2 evicted are reported, not the 4 expired: {lagged:?}"
    );
    for offset in 6..8u64 {
        let r = within(LIMIT, reader.recv()).await.unwrap().unwrap();
        assert_eq!((r.offset, &r.payload[..]), (offset, &offset.to_be_bytes()[..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_is_not_delivered_before_anything_removes_it() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store
        .topic("quotes", TopicConfig::default().ttl(Some(TTL)))
        .await
        .unwrap();
    let mut reader = topic.reader(Start::Earliest).await.unwrap();
    publish(&topic, 0..3).await;
    sleep(PAST_TTL).await;
    // Still stored (nobody published since), never delivered.
    assert_eq!(topic.bounds().await.unwrap(), (0, 3));
    assert!(
        reader.try_recv().await.unwrap().is_none(),
        "expired, skipped silently"
    );
    assert_eq!(reader.position(), 3);
    publish(&topic, 3..4).await;
    let r = within(LIMIT, reader.recv()).await.unwrap().unwrap();
    assert_eq!(r.offset, 3, "no lag reported for what expired");
    // The publish removed the expired ones.
    assert_eq!(topic.bounds().await.unwrap(), (3, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_never_hands_out_an_expired_message() {
    let Some(server) = server().await else { return };
    let store = Store::connect(&server.url()).await.unwrap();
    let topic = store
        .topic("alerts", TopicConfig::default().ttl(Some(TTL)))
        .await
        .unwrap();
    let config = GroupConfig::default()
        .manual(Duration::from_secs(60))
        .start(Start::Earliest);
    let mut member = topic.join("pagers", "a", config).await.unwrap();
    // Published, then expired while nobody read it (still stored: no
    // publish came after it).
    publish(&topic, 0..2).await;
    sleep(PAST_TTL).await;
    assert!(
        timeout(Duration::from_millis(300), member.recv()).await.is_err(),
        "nothing live to hand out"
    );
    assert_eq!(
        topic.pending("pagers").await.unwrap(),
        0,
        "expired ones are acknowledged, not held"
    );
    publish(&topic, 2..3).await;
    let d = within(LIMIT, member.recv()).await.unwrap().unwrap();
    assert_eq!((d.record.offset, d.deliveries), (2, 1));
    member.ack(2).await.unwrap();
    let stats = topic.group_stats("pagers").await.unwrap().unwrap();
    assert_eq!((stats.lag, stats.pending), (0, 0));
}
