//! Scenario H: memory per retained message beyond the payload, measured
//! with a counting allocator: `N` messages with 16-byte payloads retained
//! by a tokio-memq topic (capacity `N`), next to tokio's broadcast and
//! mpsc channels holding the same messages; and the memory of an idle
//! topic with one subscriber (`T` topics, nothing published), next to a
//! tokio broadcast channel with one receiver. Results go to
//! `target/bench-results/memory.json` for `cargo xtask bench`.

use memq_testkit::alloc;
use tokio_memq::{Bytes, MessageQueue, SerializationFormat, TopicOptions};
use tokio_memq_benches::{quick, results_path};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const PAYLOAD: usize = 16;

fn payload(i: usize) -> Bytes {
    Bytes::from(vec![i as u8; PAYLOAD])
}

/// Bytes allocated by `f` beyond `n` payloads, per message.
fn overhead<R>(n: usize, f: impl FnOnce() -> R) -> (f64, R) {
    let (grown, kept) = grown(f);
    ((grown as f64 - (n * PAYLOAD) as f64) / n as f64, kept)
}

/// Bytes allocated by `f` and still live when it returns (kept by what it
/// returns).
fn grown<R>(f: impl FnOnce() -> R) -> (isize, R) {
    let before = alloc::live();
    let kept = f();
    (alloc::live() - before, kept)
}

fn main() {
    let n = if quick() { 20_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut rows = Vec::new();

    let (per, kept) = overhead(n, || {
        rt.block_on(async {
            let mq = MessageQueue::new();
            let options = TopicOptions {
                max_messages: Some(n),
                ..Default::default()
            };
            let sub = mq.subscriber_with_options("h", options).await.unwrap();
            let p = mq.publisher("h");
            for i in 0..n {
                p.publish_bytes(payload(i), SerializationFormat::Raw)
                    .await
                    .unwrap();
            }
            (mq, sub, p)
        })
    });
    assert_eq!(rt.block_on(kept.0.get_topic_stats("h")).unwrap().message_count, n);
    drop(kept);
    rows.push(("tokio-memq", per));

    let (per, kept) = overhead(n, || {
        let (tx, rx) = tokio::sync::broadcast::channel::<Bytes>(n);
        for i in 0..n {
            tx.send(payload(i)).unwrap();
        }
        (tx, rx)
    });
    drop(kept);
    rows.push(("tokio broadcast", per));

    let (per, kept) = overhead(n, || {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(n);
        for i in 0..n {
            tx.try_send(payload(i)).unwrap();
        }
        (tx, rx)
    });
    drop(kept);
    rows.push(("tokio mpsc", per));

    // An idle topic with one subscriber: what a queue with many quiet
    // topics pays per topic (issue 10 asks for at most 512 bytes).
    let topics = if quick() { 1_000 } else { 10_000 };
    let (per_topic, kept) = grown(|| {
        rt.block_on(async {
            let mq = MessageQueue::new();
            let mut subs = Vec::with_capacity(topics);
            for t in 0..topics {
                subs.push(mq.subscriber(format!("idle-{t}")).await.unwrap());
            }
            (mq, subs)
        })
    });
    assert_eq!(kept.1.len(), topics);
    drop(kept);
    let per_topic = per_topic as f64 / topics as f64;
    let (broadcast_topic, kept) = grown(|| {
        (0..topics)
            .map(|_| tokio::sync::broadcast::channel::<Bytes>(1))
            .collect::<Vec<_>>()
    });
    drop(kept);
    let broadcast_topic = broadcast_topic as f64 / topics as f64;

    println!("H: bytes per retained message beyond its {PAYLOAD}-byte payload, {n} messages");
    println!("| peer | bytes/message |");
    println!("|---|---:|");
    let mut json = Vec::new();
    for (peer, per) in &rows {
        println!("| {peer} | {per:.1} |");
        json.push(serde_json::json!({"peer": peer, "bytes_per_message": per}));
    }
    println!();
    println!("H: bytes per idle topic with one subscriber ({topics} topics, including the topic's name)");
    println!("| peer | bytes/topic |");
    println!("|---|---:|");
    println!("| tokio-memq | {per_topic:.0} |");
    println!("| tokio broadcast (capacity 1, one receiver) | {broadcast_topic:.0} |");
    json.push(serde_json::json!({"peer": "tokio-memq", "bytes_per_idle_topic": per_topic}));
    json.push(serde_json::json!({"peer": "tokio broadcast", "bytes_per_idle_topic": broadcast_topic}));
    std::fs::write(results_path("memory"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}
