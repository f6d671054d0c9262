//! Scenario C: 10 publishers to 10 competing consumers, 1 KiB `Bytes`,
//! on a 2-worker multi-thread runtime: a tokio-memq consumer group next
//! to flume and kanal used as multi-consumer channels (bounded, same
//! capacity). Every message is received exactly once in every run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio_memq::{Bytes, ConsumptionMode, MessageQueue, SerializationFormat, TopicOptions};

const PUBLISHERS: u64 = 10;
const CONSUMERS: usize = 10;
const PER_PUBLISHER: u64 = 5_000;
const TOTAL: u64 = PUBLISHERS * PER_PUBLISHER;
const CAPACITY: usize = 16 * 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn payloads() -> Vec<Bytes> {
    (0..1024).map(|i| Bytes::from(vec![i as u8; 1024])).collect()
}

async fn memq_group(payloads: Vec<Bytes>, batch: usize) -> Duration {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(CAPACITY),
        lru_enabled: false,
        ..Default::default()
    };
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let member = mq
            .group("c", "workers")
            .options(options.clone())
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        let (received, done) = (received.clone(), done.clone());
        consumers.push(tokio::spawn(async move {
            let mut got = 0u64;
            while let Ok(msgs) = member.recv_batch(batch).await {
                got += msgs.len() as u64;
                if received.fetch_add(msgs.len() as u64, Ordering::AcqRel) + msgs.len() as u64 == TOTAL {
                    done.notify_one();
                }
            }
            got
        }));
    }
    let start = Instant::now();
    for p in 0..PUBLISHERS {
        let publisher = mq.publisher("c");
        let payloads = payloads.clone();
        tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                let payload = payloads[((p * PER_PUBLISHER + i) % 1024) as usize].clone();
                publisher
                    .publish_bytes(payload, SerializationFormat::Bincode)
                    .await
                    .unwrap();
            }
        });
    }
    done.notified().await;
    let elapsed = start.elapsed();
    // Close the topic so the members, now waiting, stop.
    mq.delete_topic("c").await;
    let mut got = 0;
    for c in consumers {
        got += c.await.unwrap();
    }
    assert_eq!(got, TOTAL, "every message exactly once");
    elapsed
}

async fn flume_mpmc(payloads: Vec<Bytes>) -> Duration {
    let (tx, rx) = flume::bounded::<Bytes>(CAPACITY);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut got = 0u64;
                while rx.recv_async().await.is_ok() {
                    got += 1;
                }
                got
            })
        })
        .collect();
    drop(rx);
    let start = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let tx = tx.clone();
            let payloads = payloads.clone();
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    let payload = payloads[((p * PER_PUBLISHER + i) % 1024) as usize].clone();
                    tx.send_async(payload).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for p in publishers {
        p.await.unwrap();
    }
    let mut got = 0;
    for c in consumers {
        got += c.await.unwrap();
    }
    assert_eq!(got, TOTAL);
    start.elapsed()
}

async fn kanal_mpmc(payloads: Vec<Bytes>) -> Duration {
    let (tx, rx) = kanal::bounded_async::<Bytes>(CAPACITY);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut got = 0u64;
                while rx.recv().await.is_ok() {
                    got += 1;
                }
                got
            })
        })
        .collect();
    drop(rx);
    let start = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let tx = tx.clone();
            let payloads = payloads.clone();
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    let payload = payloads[((p * PER_PUBLISHER + i) % 1024) as usize].clone();
                    tx.send(payload).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for p in publishers {
        p.await.unwrap();
    }
    let mut got = 0;
    for c in consumers {
        got += c.await.unwrap();
    }
    assert_eq!(got, TOTAL);
    start.elapsed()
}

fn ten_by_ten(c: &mut Criterion) {
    let rt = runtime();
    let data = payloads();
    let mut group = c.benchmark_group("C_10p_10c_group_1KiB");
    group.throughput(Throughput::Elements(TOTAL));
    group.sample_size(10);
    group.bench_function("tokio-memq group, recv", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(memq_group(data.clone(), 1))).sum())
    });
    group.bench_function("tokio-memq group, recv_batch(64)", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(memq_group(data.clone(), 64)))
                .sum()
        })
    });
    group.bench_function("flume", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(flume_mpmc(data.clone()))).sum())
    });
    group.bench_function("kanal", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(kanal_mpmc(data.clone()))).sum())
    });
    group.finish();
}

criterion_group!(benches, ten_by_ten);
criterion_main!(benches);
