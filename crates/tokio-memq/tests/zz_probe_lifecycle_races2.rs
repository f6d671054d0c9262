//! Probe (lifecycle): a publisher finds its topic, the topic is deleted and
//! the last queue handle dropped before it binds. Its lease then stops
//! counting (no topic can be created any more), in `PublisherLease::bind`,
//! which does not wake the wildcard subscriptions as `Drop` does: a parked
//! pattern receive may never learn it ended.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tokio_memq::{MessageQueue, PatternRecvError, PublishError};

fn spin(n: u64) {
    for i in 0..n {
        std::hint::black_box(i);
    }
}

#[test]
fn a_parked_pattern_receive_learns_that_no_topic_can_come() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let rounds: u64 = std::env::var("PROBE_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let mut seed = 0x1234_5678u64;
    let mut hits = 0u64;
    let window_hits = AtomicU64::new(0);
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (da, db) = (seed % 3000, (seed >> 20) % 100);
        let mq = MessageQueue::new();
        rt.block_on(mq.create_topic("t", Default::default())).unwrap();
        let pat = Arc::new(mq.subscribe_pattern("t").unwrap());
        let p = mq.publisher("t");
        let parked = {
            let pat = pat.clone();
            rt.spawn(async move { pat.recv().await.map(|m| m.offset()) })
        };
        // Let it park.
        std::thread::sleep(Duration::from_micros(200));
        let go = Arc::new(Barrier::new(2));
        let deleted = Arc::new(AtomicBool::new(false));
        let b = {
            let (go, deleted) = (go.clone(), deleted.clone());
            std::thread::spawn(move || {
                go.wait();
                spin(db);
                let d = {
                    let mut fut = std::pin::pin!(mq.delete_topic("t"));
                    match fut.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
                        std::task::Poll::Ready(d) => d,
                        std::task::Poll::Pending => unreachable!(),
                    }
                };
                deleted.store(d, Ordering::Release);
                drop(mq);
            })
        };
        go.wait();
        spin(da);
        let got = p.try_publish(1u8);
        b.join().unwrap();
        if !matches!(got, Err(PublishError::Closed(1))) {
            parked.abort();
            continue;
        }
        // The publisher found the topic, which was deleted before it bound:
        // it can never publish, so no topic can be created any more.
        window_hits.fetch_add(1, Ordering::Relaxed);
        assert_eq!(pat.try_recv_now().map(|m| m.offset()), Err(PatternRecvError::Closed), "round {round}: a fresh look says Closed");
        let r = rt.block_on(async { tokio::time::timeout(Duration::from_millis(500), parked).await });
        match r {
            Ok(Ok(Err(PatternRecvError::Closed))) => {}
            other => {
                hits += 1;
                eprintln!("round {round}: the parked receive: {other:?} (publisher still alive)");
                drop(p);
                break;
            }
        }
    }
    eprintln!("rounds {rounds}: window hit {} times, parked receive not woken {hits} times", window_hits.load(Ordering::Relaxed));
    assert_eq!(hits, 0);
}
