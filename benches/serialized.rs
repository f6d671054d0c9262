//! Scenario G: the serialized path. `publish(T)` on a topic with JSON or
//! bincode defaults plus `recv_typed::<T>()`, against calling the same
//! serializer and deserializer directly on the same value. One task does
//! both ends on a current-thread runtime, so the difference is the queue's
//! own cost (no cross-thread wake-ups). Target: at most 20% more.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tokio_memq::{ConsumptionMode, MessageQueue, SerializationConfig, SerializationFormat, TopicOptions};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<(String, u32)>,
    total_cents: u64,
    express: bool,
}

/// A small order (3 items, about 60 bytes as bincode, 120 as JSON).
fn small_order() -> Order {
    Order {
        id: 123_456_789,
        customer: "customer-4711".into(),
        items: vec![("coffee".into(), 2), ("croissant".into(), 1), ("juice".into(), 3)],
        total_cents: 1_899,
        express: true,
    }
}

/// A larger order (60 items, about 1 KiB as bincode, 1.6 KiB as JSON).
fn large_order() -> Order {
    Order {
        items: (0..60).map(|i| (format!("item-number-{i}"), i)).collect(),
        ..small_order()
    }
}

const BATCH: u64 = 1_000;

fn through_queue(c: &mut Criterion, name: &str, format: SerializationFormat, value: Order) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mq, sub) = rt.block_on(async {
        let mq = MessageQueue::new();
        mq.register_topic_defaults("g", format.clone(), SerializationConfig::Default, None);
        let options = TopicOptions {
            max_messages: Some(2 * BATCH as usize),
            ..Default::default()
        };
        let sub = mq
            .subscriber_with_options_and_mode("g", options, ConsumptionMode::Latest)
            .await
            .unwrap();
        (mq, sub)
    });
    let publisher = mq.publisher("g");
    let mut group = c.benchmark_group(format!("G_serialized_{name}"));
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("direct serializer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for _ in 0..BATCH {
                    let v = value.clone();
                    let bytes = match format {
                        SerializationFormat::Json => serde_json::to_vec(&v).unwrap(),
                        _ => bincode::serialize(&v).unwrap(),
                    };
                    let back: Order = match format {
                        SerializationFormat::Json => serde_json::from_slice(&bytes).unwrap(),
                        _ => bincode::deserialize(&bytes).unwrap(),
                    };
                    std::hint::black_box(back);
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("tokio-memq publish + recv_typed", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for _ in 0..BATCH {
                        publisher.publish(value.clone()).await.unwrap();
                        let back: Order = sub.recv_typed().await.unwrap();
                        std::hint::black_box(back);
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

fn serialized(c: &mut Criterion) {
    through_queue(c, "json_small", SerializationFormat::Json, small_order());
    through_queue(c, "bincode_small", SerializationFormat::Bincode, small_order());
    through_queue(c, "json_1KiB", SerializationFormat::Json, large_order());
    through_queue(c, "bincode_1KiB", SerializationFormat::Bincode, large_order());
}

criterion_group!(benches, serialized);
criterion_main!(benches);
