//! Throughput, 1 publisher to 1 subscriber, 1 KiB `Bytes`, next to tokio's
//! mpsc in the same run, on a 2-worker multi-thread runtime.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio_memq::{Bytes, MessageQueue, SerializationFormat, TopicOptions};

const MESSAGES: u64 = 10_000;
const CAPACITY: usize = 16 * 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn memq_one_to_one(payload: Bytes) -> Duration {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(CAPACITY),
        lru_enabled: false,
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("bench", options).await.unwrap();
    let publisher = mq.publisher("bench");
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            publisher
                .publish_bytes(payload.clone(), SerializationFormat::Bincode)
                .await
                .unwrap();
        }
    });
    let mut got = 0;
    while got < MESSAGES {
        got += sub.recv_batch(256).await.unwrap().len() as u64;
    }
    producer.await.unwrap();
    start.elapsed()
}

async fn mpsc_one_to_one(payload: Bytes) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel(CAPACITY);
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            tx.send(payload.clone()).await.unwrap();
        }
    });
    let mut got = 0;
    while rx.recv().await.is_some() {
        got += 1;
    }
    assert_eq!(got, MESSAGES);
    producer.await.unwrap();
    start.elapsed()
}

fn one_to_one(c: &mut Criterion) {
    let rt = runtime();
    let payload = Bytes::from(vec![1u8; 1024]);
    let mut group = c.benchmark_group("A_1p_1c_1KiB");
    group.throughput(Throughput::Elements(MESSAGES));
    group.bench_function("tokio-memq", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(memq_one_to_one(payload.clone())))
                .sum()
        })
    });
    group.bench_function("tokio_mpsc", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(mpsc_one_to_one(payload.clone())))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, one_to_one);
criterion_main!(benches);
