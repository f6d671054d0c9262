//! Scenario F: latency at a moderate fixed rate. A publisher thread sends
//! one message every `GAP` (5,000 messages/s), each carrying its send
//! time; a tokio task receives them and records the delay. Percentiles
//! p50/p99/p999, for tokio-memq and the channels, in one run. Results go
//! to `target/bench-results/latency.json` for `cargo xtask bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio_memq::{Bytes, MessageQueue, SerializationFormat, TopicOptions};
use tokio_memq_benches::{quick, results_path, runtime, LARGE_CAPACITY as CAPACITY};

const GAP: Duration = Duration::from_micros(200);

fn stamp(start: Instant) -> Bytes {
    let nanos = start.elapsed().as_nanos() as u64;
    Bytes::copy_from_slice(&nanos.to_le_bytes())
}

fn delay(start: Instant, b: &[u8]) -> u64 {
    let sent = u64::from_le_bytes(b[..8].try_into().unwrap());
    (start.elapsed().as_nanos() as u64).saturating_sub(sent)
}

/// Paces `send` from a plain thread, `n` times.
fn pace(n: u64, mut send: impl FnMut() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        for _ in 0..n {
            next += GAP;
            send();
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    })
}

fn percentiles(mut d: Vec<u64>) -> [f64; 3] {
    d.sort_unstable();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)] as f64 / 1_000.0;
    [at(0.50), at(0.99), at(0.999)]
}

fn main() {
    let rt = runtime();
    let n: u64 = if quick() { 2_000 } else { 10_000 };
    let mut rows = Vec::new();

    // tokio-memq
    let d = rt.block_on(async {
        let mq = MessageQueue::new();
        let options = TopicOptions {
            max_messages: Some(CAPACITY),
            lru_enabled: false,
            ..Default::default()
        };
        let sub = mq.subscriber_with_options("f", options).await.unwrap();
        let publisher = mq.publisher("f");
        let start = Instant::now();
        let handle = Handle::current();
        let sender = pace(n, move || {
            handle
                .block_on(publisher.publish_bytes(stamp(start), SerializationFormat::Raw))
                .unwrap();
        });
        let mut delays = Vec::with_capacity(n as usize);
        while (delays.len() as u64) < n {
            let m = sub.recv().await.unwrap();
            delays.push(delay(start, m.payload_bytes()));
        }
        sender.join().unwrap();
        delays
    });
    rows.push(("tokio-memq", percentiles(d)));

    // tokio mpsc
    let d = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CAPACITY);
        let start = Instant::now();
        let sender = pace(n, move || tx.blocking_send(stamp(start)).unwrap());
        let mut delays = Vec::with_capacity(n as usize);
        while let Some(b) = rx.recv().await {
            delays.push(delay(start, &b));
        }
        sender.join().unwrap();
        delays
    });
    rows.push(("tokio mpsc", percentiles(d)));

    // tokio broadcast
    let d = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::broadcast::channel::<Bytes>(n as usize);
        let start = Instant::now();
        let sender = pace(n, move || {
            tx.send(stamp(start)).unwrap();
        });
        let mut delays = Vec::with_capacity(n as usize);
        while let Ok(b) = rx.recv().await {
            delays.push(delay(start, &b));
        }
        sender.join().unwrap();
        delays
    });
    rows.push(("tokio broadcast", percentiles(d)));

    // flume
    let d = rt.block_on(async {
        let (tx, rx) = flume::bounded::<Bytes>(CAPACITY);
        let start = Instant::now();
        let sender = pace(n, move || tx.send(stamp(start)).unwrap());
        let mut delays = Vec::with_capacity(n as usize);
        while let Ok(b) = rx.recv_async().await {
            delays.push(delay(start, &b));
        }
        sender.join().unwrap();
        delays
    });
    rows.push(("flume", percentiles(d)));

    // kanal
    let d = rt.block_on(async {
        let (tx, rx) = kanal::bounded_async::<Bytes>(CAPACITY);
        let tx = Arc::new(tx.to_sync());
        let start = Instant::now();
        let sender = pace(n, move || tx.send(stamp(start)).unwrap());
        let mut delays = Vec::with_capacity(n as usize);
        while let Ok(b) = rx.recv().await {
            delays.push(delay(start, &b));
        }
        sender.join().unwrap();
        delays
    });
    rows.push(("kanal", percentiles(d)));

    println!(
        "F: latency at {} msgs/s, {n} messages, {} workers",
        1_000_000 / GAP.as_micros(),
        tokio_memq_benches::workers()
    );
    println!("| peer | p50 µs | p99 µs | p999 µs |");
    println!("|---|---:|---:|---:|");
    let mut json = Vec::new();
    for (peer, [p50, p99, p999]) in &rows {
        println!("| {peer} | {p50:.1} | {p99:.1} | {p999:.1} |");
        json.push(serde_json::json!({"peer": peer, "p50_us": p50, "p99_us": p99, "p999_us": p999}));
    }
    std::fs::write(results_path("latency"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}
