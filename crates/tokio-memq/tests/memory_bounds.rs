//! Memory and resources, measured with a counting global allocator: a
//! subscriber that never reads cannot grow memory, every payload is
//! dropped exactly once, and waiting or churning subscribers leaves
//! nothing behind.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use memq_testkit::alloc;
use serde::{Serialize, Serializer};
use tokio_memq::{Bytes, ConsumptionMode, MessageQueue, SerializationFormat, TopicOptions};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_subscriber_that_never_reads_keeps_memory_at_the_bound() {
    let _serial = alloc::serial();
    rt().block_on(async {
        let mq = MessageQueue::new();
        let options = TopicOptions {
            max_messages: Some(1_000),
            ..Default::default()
        };
        let _idle = mq.subscriber_with_options("idle", options).await.unwrap();
        let p = mq.publisher("idle");
        let publish = |n: u64| {
            let p = p.clone();
            async move {
                for i in 0..n {
                    let payload = Bytes::from(vec![i as u8; 64]);
                    p.publish_bytes(payload, SerializationFormat::Bincode)
                        .await
                        .unwrap();
                }
            }
        };
        publish(10_000).await; // window full, ring at its final size
        let warm = alloc::live();
        publish(1_000_000).await;
        let after = alloc::live();
        let stats = mq.get_topic_stats("idle").await.unwrap();
        assert_eq!((stats.message_count, stats.evicted), (1_000, 1_009_000));
        assert!(
            (after - warm).abs() < 16 * 1024,
            "memory moved by {} bytes over 10^6 publishes",
            after - warm
        );
    });
}

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
static DOUBLE_DROPS: AtomicU64 = AtomicU64::new(0);

/// A payload that records its drop.
struct Tracked(u64);

impl Tracked {
    fn new() -> Self {
        Tracked(CREATED.fetch_add(1, Ordering::SeqCst))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut d = DROPPED.lock().unwrap();
        if !d.get_or_insert_with(HashSet::new).insert(self.0) {
            DOUBLE_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Serialize for Tracked {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[test]
fn every_payload_is_dropped_exactly_once() {
    let _serial = alloc::serial();
    // The drop log is allocated up front so it does not count below.
    DROPPED
        .lock()
        .unwrap()
        .get_or_insert_with(|| HashSet::with_capacity(1 << 16));
    let before = alloc::live();
    rt().block_on(async {
        let mq = MessageQueue::new();
        let small = TopicOptions {
            max_messages: Some(50),
            ..Default::default()
        };
        let reader = mq.subscriber_with_options("a", small.clone()).await.unwrap();
        let _never = mq.subscriber_with_options("a", small.clone()).await.unwrap();
        let group = mq
            .group("a", "g")
            .manual_ack()
            .max_deliveries(2)
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        let p = mq.publisher("a");
        for _ in 0..300 {
            p.publish(Tracked::new()).await.unwrap();
        }
        // Some read, some held, some lagged over, some acked, some redelivered.
        let _ = reader.recv_batch(30).await;
        assert_eq!(
            group.recv_batch(20).await.unwrap_err(),
            tokio_memq::RecvError::Lagged(250)
        );
        let held = group.recv_batch(20).await.unwrap();
        for m in held.iter().take(10) {
            group.ack(m).unwrap();
        }
        let second = mq
            .group("a", "g")
            .manual_ack()
            .max_deliveries(2)
            .join()
            .await
            .unwrap();
        drop(group); // its 10 unacked messages go to `second`
        let _ = second.recv_batch(100).await;
        drop(held);
        // A batch that fails: handed back, then dropped by the caller.
        let refused = mq
            .publisher("full")
            .publish_batch((0..20_000).map(|_| Tracked::new()).collect::<Vec<_>>())
            .await;
        assert!(refused.is_err(), "larger than the default 10,000 capacity");
        drop(refused);
        mq.publisher("b").publish(Tracked::new()).await.unwrap();
        assert!(mq.delete_topic("b").await);
        drop((reader, second, p));
        drop(mq);
    });
    let created = CREATED.load(Ordering::SeqCst);
    let dropped = DROPPED.lock().unwrap().as_ref().map_or(0, |d| d.len() as u64);
    assert_eq!(DOUBLE_DROPS.load(Ordering::SeqCst), 0, "no payload dropped twice");
    assert_eq!(dropped, created, "every payload dropped");
    assert!(
        alloc::live() - before < 8 * 1024,
        "queue memory returned: {}",
        alloc::live() - before
    );
}

struct Nop;
impl Wake for Nop {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn polling_a_pending_receive_with_new_wakers_does_not_grow_memory() {
    let _serial = alloc::serial();
    rt().block_on(async {
        let mq = MessageQueue::new();
        let sub = mq.subscriber("w").await.unwrap();
        let group = mq
            .subscriber_group("w", "g", ConsumptionMode::Latest)
            .await
            .unwrap();
        let mut recv = pin!(sub.recv());
        let mut grecv = pin!(group.recv());
        let mut poll = |n: usize| {
            for _ in 0..n {
                let waker = Waker::from(Arc::new(Nop));
                let mut cx = Context::from_waker(&waker);
                assert!(recv.as_mut().poll(&mut cx).is_pending());
                assert!(grecv.as_mut().poll(&mut cx).is_pending());
            }
        };
        poll(1_000);
        let warm = alloc::live();
        poll(1_000_000);
        assert!(alloc::live() - warm < 1024, "grew by {}", alloc::live() - warm);
    });
}

#[test]
fn churning_subscribers_and_groups_leaves_nothing_behind() {
    let _serial = alloc::serial();
    rt().block_on(async {
        let mq = MessageQueue::new();
        let p = mq.publisher("churn");
        p.publish(0u8).await.unwrap();
        let keep = mq.subscriber("churn").await.unwrap();
        let warm_up = |n: usize| {
            let mq = mq.clone();
            async move {
                for i in 0..n {
                    let s = mq.subscriber("churn").await.unwrap();
                    let g = mq
                        .subscriber_group("churn", format!("g{}", i % 8), ConsumptionMode::Latest)
                        .await
                        .unwrap();
                    drop((s, g));
                }
            }
        };
        warm_up(1_000).await;
        // Two rounds: a leak grows in both; the harness's own threads (the
        // global counter sees them) may allocate during one of them.
        let mut grew = Vec::new();
        for _ in 0..2 {
            let before = alloc::live() as i64;
            warm_up(50_000).await;
            grew.push(alloc::live() as i64 - before);
        }
        let stats = mq.get_topic_stats("churn").await.unwrap();
        assert_eq!(stats.subscriber_count, 1, "only `keep` is live");
        for i in 0..8 {
            assert_eq!(
                mq.get_group_stats("churn", format!("g{i}"))
                    .await
                    .unwrap()
                    .members,
                0
            );
        }
        assert!(
            grew.iter().min().is_some_and(|&g| g < 4 * 1024),
            "grew by {grew:?} bytes in two rounds of 50,000 churns"
        );
        assert_eq!(p.publish(1u8).await.unwrap(), 1);
        assert_eq!(keep.recv().await.unwrap().offset(), 1);
    });
}

/// A wildcard subscription that is never read does not keep the topics
/// created and deleted since it last looked that had nothing for it; a
/// deleted topic with a message it has not read is kept until read.
#[test]
fn an_unread_wildcard_subscription_forgets_topics_deleted_empty() {
    let _serial = alloc::serial();
    rt().block_on(async {
        let mq = MessageQueue::new();
        let wildcard = mq.subscribe_pattern("w.*").unwrap();
        mq.publisher("w.kept").publish(7u8).await.unwrap();
        assert!(mq.delete_topic("w.kept").await);
        mq.create_topic("w.live", TopicOptions::default()).await.unwrap();
        let churn = |n: usize| {
            let mq = mq.clone();
            async move {
                for i in 0..n {
                    let name = format!("w.t{}", i % 4);
                    mq.create_topic(&name, TopicOptions::default()).await.unwrap();
                    assert!(mq.delete_topic(&name).await);
                }
            }
        };
        churn(1_000).await;
        let mut grew = Vec::new();
        for _ in 0..2 {
            let before = alloc::live() as i64;
            churn(20_000).await;
            grew.push(alloc::live() as i64 - before);
        }
        // Each kept topic costs over a kilobyte: 20,000 of them, megabytes.
        assert!(
            grew.iter().min().is_some_and(|&g| g < 64 * 1024),
            "grew by {grew:?} bytes in two rounds of 20,000 topics created and deleted"
        );
        // The 40,000 created and deleted empty are gone; the one with a
        // message unread and the live one are kept.
        assert_eq!(wildcard.topics(), ["w.kept", "w.live"]);
        let limit = std::time::Duration::from_secs(30);
        let m = tokio::time::timeout(limit, wildcard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.topic(), m.deserialize::<u8>().unwrap()), ("w.kept", 7));
        mq.publisher("w.live").publish(8u8).await.unwrap();
        let m = tokio::time::timeout(limit, wildcard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.topic(), m.deserialize::<u8>().unwrap()), ("w.live", 8));
    });
}

/// A native value read as another type converts through a copy of its
/// scalars: a `Vec<u8>` of 1 MiB read as `Vec<u16>` (2 MiB) used 32 MiB
/// for it (32 bytes an element). Small unsigned integers are held a byte
/// each now: the copy and the result, 3 MiB.
#[test]
fn reading_a_native_byte_vector_as_another_type_costs_about_its_size() {
    let _serial = alloc::serial();
    const N: usize = 1 << 20;
    let msg =
        tokio_memq::TopicMessage::new("t", (0..N).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    let before = alloc::live();
    alloc::reset_peak();
    let wide = msg.deserialize::<Vec<u16>>().unwrap();
    let extra = alloc::peak() - before;
    assert_eq!(wide.len(), N);
    assert!(wide.iter().enumerate().all(|(i, w)| *w == (i % 251) as u16));
    assert!(
        extra < (4 * N) as isize,
        "{extra} bytes at the peak to read {N} bytes as {} bytes",
        2 * N
    );
}
