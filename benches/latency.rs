//! Scenario F: latency at fixed rates. A publisher thread sends one
//! message per slot of a fixed schedule (slot `k` is due at
//! `first + k * gap`; the thread sleeps while the slot is more than
//! `SPIN` away, then polls the clock, yielding the CPU between reads, so
//! even a 20 µs gap is kept; a pure spin made the receiver wait for the
//! spinner's time slice now and then on 2 cores, milliseconds). Each
//! message carries the time read just before its send call: the delay
//! recorded is from that actual send time to the receive, the same for
//! every implementation. A send that starts more than one gap after its
//! slot is counted as late (the schedule slipped; it is sent at once, no
//! slot is skipped), and reported. The first `WARM_UP` messages of each
//! run are not counted.
//!
//! - 50,000 messages/s (one every 20 µs), at capacity 1,024 and 16,384:
//!   tokio-memq, tokio mpsc, flume and kanal, 5 runs each (the peers in
//!   turn within a run), reported as the median of the 5 runs' p50, p99
//!   and p99.9.
//! - 5,000 messages/s (one every 200 µs), capacity 16,384, one run, with
//!   tokio broadcast too (its buffer holds the whole run).
//!
//! The receiver is the future the runtime's `block_on` drives (as the body
//! of `#[tokio::main]` is), on a 2-worker runtime. A receiver in a spawned
//! task measured about 15 µs more at p50 for every peer on the 2-core
//! development machine (the wake-up of a parked worker), which hides the
//! differences between the queues.
//!
//! The publisher is a plain thread using each peer's blocking send for
//! such threads (mpsc `blocking_send`, flume `send`, kanal's sync sender,
//! broadcast `send`, tokio-memq `blocking_publish_bytes`). Results go to
//! `target/bench-results/latency.json` for `cargo xtask bench`.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_memq::{Bytes, MessageQueue, SerializationFormat};
use tokio_memq_benches::{
    lossless, note_machine, quick, results_path, runtime, workers, CAPACITIES, LARGE_CAPACITY,
};

/// Messages at the start of each run that are sent but not counted.
const WARM_UP: usize = 200;

/// How close to its slot the publisher stops sleeping and spins.
const SPIN: Duration = Duration::from_micros(100);

/// What one run measured.
struct Run {
    /// Send-to-receive delays in nanoseconds, warm-up excluded.
    delays: Vec<u64>,
    /// Sends that started more than one gap after their slot.
    late: usize,
}

/// One peer's run: `(runtime, gap, counted messages, capacity)`.
type Measure = fn(&Runtime, Duration, usize, usize) -> Run;

fn stamp(origin: Instant) -> Bytes {
    let nanos = origin.elapsed().as_nanos() as u64;
    Bytes::copy_from_slice(&nanos.to_le_bytes())
}

fn delay(origin: Instant, b: &[u8]) -> u64 {
    let sent = u64::from_le_bytes(b[..8].try_into().unwrap());
    (origin.elapsed().as_nanos() as u64).saturating_sub(sent)
}

/// Sends `total` stamped messages from a plain thread, one per slot of
/// `gap`; returns how many sends started more than one gap late.
fn pace(
    gap: Duration,
    total: usize,
    origin: Instant,
    mut send: impl FnMut(Bytes) + Send + 'static,
) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let first = Instant::now() + Duration::from_millis(1);
        let mut late = 0;
        for k in 0..total {
            let slot = first + gap * k as u32;
            let mut now = Instant::now();
            // A sleep overshoots by tens of µs: sleep only when the slot
            // is far off, and poll the clock the rest of the way.
            if slot > now + SPIN {
                std::thread::sleep(slot - now - SPIN);
                now = Instant::now();
            }
            while now < slot {
                std::thread::yield_now();
                now = Instant::now();
            }
            if now - slot > gap {
                late += 1;
            }
            send(stamp(origin));
        }
        late
    })
}

/// Joins the publisher and drops the warm-up.
fn finish(mut delays: Vec<u64>, sender: JoinHandle<usize>, n: usize) -> Run {
    let late = sender.join().unwrap();
    assert_eq!(delays.len(), n + WARM_UP, "every message arrived");
    delays.drain(..WARM_UP);
    Run { delays, late }
}

fn memq(rt: &Runtime, gap: Duration, n: usize, capacity: usize) -> Run {
    rt.block_on(async {
        let mq = MessageQueue::new();
        let sub = mq.subscriber_with_options("f", lossless(capacity)).await.unwrap();
        let publisher = mq.publisher("f");
        let origin = Instant::now();
        let sender = pace(gap, n + WARM_UP, origin, move |b| {
            publisher
                .blocking_publish_bytes(b, SerializationFormat::Raw)
                .unwrap();
        });
        let mut delays = Vec::with_capacity(n + WARM_UP);
        while delays.len() < n + WARM_UP {
            let m = sub.recv().await.unwrap();
            delays.push(delay(origin, m.payload_bytes()));
        }
        finish(delays, sender, n)
    })
}

fn tokio_mpsc(rt: &Runtime, gap: Duration, n: usize, capacity: usize) -> Run {
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(capacity);
        let origin = Instant::now();
        let sender = pace(gap, n + WARM_UP, origin, move |b| tx.blocking_send(b).unwrap());
        let mut delays = Vec::with_capacity(n + WARM_UP);
        while let Some(b) = rx.recv().await {
            delays.push(delay(origin, &b));
        }
        finish(delays, sender, n)
    })
}

/// Capacity is ignored: lossless only with a buffer for the whole run.
fn tokio_broadcast(rt: &Runtime, gap: Duration, n: usize, _capacity: usize) -> Run {
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::broadcast::channel::<Bytes>(n + WARM_UP);
        let origin = Instant::now();
        let sender = pace(gap, n + WARM_UP, origin, move |b| {
            tx.send(b).unwrap();
        });
        let mut delays = Vec::with_capacity(n + WARM_UP);
        while let Ok(b) = rx.recv().await {
            delays.push(delay(origin, &b));
        }
        finish(delays, sender, n)
    })
}

fn flume(rt: &Runtime, gap: Duration, n: usize, capacity: usize) -> Run {
    rt.block_on(async {
        let (tx, rx) = flume::bounded::<Bytes>(capacity);
        let origin = Instant::now();
        let sender = pace(gap, n + WARM_UP, origin, move |b| tx.send(b).unwrap());
        let mut delays = Vec::with_capacity(n + WARM_UP);
        while let Ok(b) = rx.recv_async().await {
            delays.push(delay(origin, &b));
        }
        finish(delays, sender, n)
    })
}

fn kanal(rt: &Runtime, gap: Duration, n: usize, capacity: usize) -> Run {
    rt.block_on(async {
        let (tx, rx) = kanal::bounded_async::<Bytes>(capacity);
        let tx = tx.to_sync();
        let origin = Instant::now();
        let sender = pace(gap, n + WARM_UP, origin, move |b| tx.send(b).unwrap());
        let mut delays = Vec::with_capacity(n + WARM_UP);
        while let Ok(b) = rx.recv().await {
            delays.push(delay(origin, &b));
        }
        finish(delays, sender, n)
    })
}

/// p50, p99 and p99.9 in µs (nearest rank).
fn percentiles(mut d: Vec<u64>) -> [f64; 3] {
    d.sort_unstable();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)] as f64 / 1_000.0;
    [at(0.50), at(0.99), at(0.999)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One rate at one capacity, every peer `runs` times (the peers in turn
/// within each run, so that a noisy moment does not land on one peer).
fn scenario(
    rt: &Runtime,
    gap: Duration,
    capacity: usize,
    runs: usize,
    n: usize,
    peers: &[(&str, Measure)],
) -> Vec<serde_json::Value> {
    note_machine(&format!("F every {} µs, capacity {capacity}", gap.as_micros()));
    let mut per_peer: Vec<(Vec<[f64; 3]>, usize)> = vec![(Vec::new(), 0); peers.len()];
    for _ in 0..runs {
        for ((_, measure), (results, late)) in peers.iter().zip(&mut per_peer) {
            let run = measure(rt, gap, n, capacity);
            results.push(percentiles(run.delays));
            *late += run.late;
        }
    }
    let rate = (1e9 / gap.as_nanos() as f64).round();
    println!(
        "F: latency at {rate} msgs/s, capacity {capacity}, {n} messages, {} workers, median of {runs} run(s)",
        workers()
    );
    println!("| peer | p50 µs | p99 µs | p99.9 µs | late sends |");
    println!("|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for ((peer, _), (results, late)) in peers.iter().zip(per_peer) {
        let column = |i: usize| results.iter().map(|r| r[i]).collect::<Vec<f64>>();
        let [p50, p99, p999] = [0, 1, 2].map(|i| median(column(i)));
        let late = late as f64 / (runs * (n + WARM_UP)) as f64;
        println!(
            "| {peer} | {p50:.1} | {p99:.1} | {p999:.1} | {:.2}% |",
            late * 100.0
        );
        rows.push(serde_json::json!({
            "peer": peer,
            "rate_per_s": rate,
            "gap_us": gap.as_secs_f64() * 1e6,
            "capacity": capacity,
            "runs": runs,
            "messages": n,
            "p50_us": p50,
            "p99_us": p99,
            "p999_us": p999,
            "p50_us_runs": column(0),
            "p99_us_runs": column(1),
            "p999_us_runs": column(2),
            "late_fraction": late,
        }));
    }
    println!();
    rows
}

fn main() {
    let rt = runtime();
    let mut json = Vec::new();

    let fast: [(&str, Measure); 4] = [
        ("tokio-memq", memq),
        ("tokio mpsc", tokio_mpsc),
        ("flume", flume),
        ("kanal", kanal),
    ];
    let n = if quick() { 5_000 } else { 25_000 };
    for capacity in CAPACITIES {
        json.extend(scenario(&rt, Duration::from_micros(20), capacity, 5, n, &fast));
    }

    let moderate: [(&str, Measure); 5] = [
        ("tokio-memq", memq),
        ("tokio mpsc", tokio_mpsc),
        ("tokio broadcast", tokio_broadcast),
        ("flume", flume),
        ("kanal", kanal),
    ];
    let n = if quick() { 2_000 } else { 10_000 };
    json.extend(scenario(
        &rt,
        Duration::from_micros(200),
        LARGE_CAPACITY,
        1,
        n,
        &moderate,
    ));

    std::fs::write(results_path("latency"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}
