//! The benchmark scenarios of tokio-memq and its peers, shared by the
//! bench targets (`cargo bench -p tokio-memq-benches`) and summarised by
//! `cargo xtask bench`.
//!
//! Every scenario moves `Bytes` payloads taken round-robin from a pool of
//! distinct 1 KiB buffers (so reference counts are not one shared hot
//! spot, as they would not be in an application), on a multi-thread
//! runtime with `workers()` workers (2 unless `MEMQ_BENCH_WORKERS` says
//! otherwise), and checks that every message arrived: a peer that loses
//! messages is not reported as faster.
//!
//! Scenarios A to D run at two capacities, [`CAPACITIES`]: 1,024 messages
//! (small buffers, where hand-offs between publisher and receiver
//! dominate) and 16,384. Each peer is set up as its docs recommend for the
//! job, with the same capacity:
//! - tokio-memq: `max_messages: capacity`, `lru_enabled: false` (publishers
//!   wait for the slowest reader, nothing is lost), `publish_bytes` with
//!   the raw format, `recv` or `recv_batch`;
//! - tokio mpsc: `mpsc::channel(capacity)`, `send().await` / `recv().await`;
//! - flume: `flume::bounded(capacity)`, `send_async` / `recv_async`;
//! - kanal: `kanal::bounded_async(capacity)`, `send().await` / `recv().await`;
//! - async-channel: `async_channel::bounded(capacity)`;
//! - async-broadcast: `broadcast(capacity)`, overflow off (its default: the
//!   sender waits for the slowest receiver);
//! - tokio broadcast: senders never wait and a lagging receiver loses the
//!   oldest messages, so the only lossless setting is a buffer holding the
//!   whole run; it gets that at both capacities (the figure is the same
//!   setting measured twice).
//!
//! Batches (scenario D): the channels carry `Vec`s of 100, so they get
//! `capacity / 100` slots, the same number of messages.

#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_memq::{Bytes, ConsumptionMode, MessageQueue, SerializationFormat, TopicOptions};

/// The small capacity: hand-offs between the two ends dominate.
pub const SMALL_CAPACITY: usize = 1024;

/// The large capacity (what perf_runner uses by default).
pub const LARGE_CAPACITY: usize = 16 * 1024;

/// Room in every bounded queue or channel: scenarios A to D run at both.
pub const CAPACITIES: [usize; 2] = [SMALL_CAPACITY, LARGE_CAPACITY];

/// A criterion group id for `scenario` at `capacity`: `A_1p_1c_1KiB_cap1024`.
/// `cargo xtask bench` reads the capacity back from the suffix.
pub fn with_capacity(scenario: &str, capacity: usize) -> String {
    format!("{scenario}_cap{capacity}")
}

/// The criterion group whose benchmarks run now, for [`note_machine`].
static GROUP: std::sync::Mutex<(String, String)> = std::sync::Mutex::new((String::new(), String::new()));

/// `c.benchmark_group(id)`, remembered for [`note_machine`].
pub fn benchmark_group(
    c: &mut criterion::Criterion,
    id: impl Into<String>,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let id = id.into();
    // A new group: its first benchmark is noted whatever its name.
    *GROUP.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (id.clone(), String::new());
    c.benchmark_group(id)
}

/// Records, once per benchmark (call it from the routine: criterion calls
/// that many times, and never for a benchmark a filter leaves out), how
/// long a cache line took between two CPUs before it ran
/// ([`memq_testkit::machine`]): `cargo xtask bench` lists the figures, so
/// that rows measured in one of the shared machine's slow periods can be
/// told apart. Appends a line to `target/bench-results/machine.jsonl`.
pub fn note_machine(bench: &str) {
    let mut current = GROUP.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if current.1 == bench {
        return;
    }
    current.1 = bench.to_string();
    let line = serde_json::json!({
        "group": current.0,
        "bench": bench,
        "round_trip_ns": memq_testkit::machine::core_round_trip().map(|d| d.as_nanos() as u64),
    });
    let path = results_path("machine").with_extension("jsonl");
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        eprintln!("cannot record the machine's state in {}: {e}", path.display());
    }
}

/// Runtime workers (`MEMQ_BENCH_WORKERS`, default 2).
pub fn workers() -> usize {
    env_usize("MEMQ_BENCH_WORKERS", 2)
}

/// Reads a positive number from the environment.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// True under `cargo xtask bench --quick` (`MEMQ_BENCH_QUICK`).
pub fn quick() -> bool {
    std::env::var_os("MEMQ_BENCH_QUICK").is_some()
}

/// A multi-thread runtime with [`workers`] workers.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Distinct payloads of `size` bytes, to be used round-robin.
pub fn payloads(size: usize, count: usize) -> Arc<Vec<Bytes>> {
    Arc::new((0..count).map(|i| Bytes::from(vec![i as u8; size])).collect())
}

/// A tokio-memq topic holding `capacity` messages whose publishers wait
/// for the slowest reader (nothing is lost).
pub fn lossless(capacity: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(capacity),
        lru_enabled: false,
        ..Default::default()
    }
}

const FORMAT: SerializationFormat = SerializationFormat::Raw;

/// Scenario A and E: one publisher, one receiver, `n` messages.
pub mod one_to_one {
    use super::*;

    pub async fn memq(pool: Arc<Vec<Bytes>>, n: u64, batch: usize, capacity: usize) -> Duration {
        let mq = MessageQueue::new();
        let sub = mq.subscriber_with_options("a", lossless(capacity)).await.unwrap();
        let publisher = mq.publisher("a");
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..n {
                let p = pool[i as usize % pool.len()].clone();
                publisher.publish_bytes(p, FORMAT).await.unwrap();
            }
        });
        let mut got = 0;
        while got < n {
            // A batch of one is `recv`, so the row named `recv` measures it.
            got += if batch == 1 {
                sub.recv().await.map(|_| 1).unwrap()
            } else {
                sub.recv_batch(batch).await.unwrap().len() as u64
            };
        }
        producer.await.unwrap();
        assert_eq!(got, n);
        start.elapsed()
    }

    pub async fn tokio_mpsc(pool: Arc<Vec<Bytes>>, n: u64, capacity: usize) -> Duration {
        let (tx, mut rx) = tokio::sync::mpsc::channel(capacity);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send(pool[i as usize % pool.len()].clone()).await.unwrap();
            }
        });
        let mut got = 0u64;
        while rx.recv().await.is_some() {
            got += 1;
        }
        producer.await.unwrap();
        assert_eq!(got, n);
        start.elapsed()
    }

    /// Lossless only with a buffer that holds the whole run.
    pub async fn tokio_broadcast(pool: Arc<Vec<Bytes>>, n: u64) -> Duration {
        let (tx, mut rx) = tokio::sync::broadcast::channel(n as usize);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send(pool[i as usize % pool.len()].clone()).unwrap();
            }
        });
        let mut got = 0u64;
        while rx.recv().await.is_ok() {
            got += 1;
        }
        producer.await.unwrap();
        assert_eq!(got, n);
        start.elapsed()
    }

    pub async fn flume(pool: Arc<Vec<Bytes>>, n: u64, capacity: usize) -> Duration {
        let (tx, rx) = flume::bounded(capacity);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send_async(pool[i as usize % pool.len()].clone())
                    .await
                    .unwrap();
            }
        });
        let mut got = 0u64;
        while rx.recv_async().await.is_ok() {
            got += 1;
        }
        producer.await.unwrap();
        assert_eq!(got, n);
        start.elapsed()
    }

    pub async fn kanal(pool: Arc<Vec<Bytes>>, n: u64, capacity: usize) -> Duration {
        let (tx, rx) = kanal::bounded_async(capacity);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send(pool[i as usize % pool.len()].clone()).await.unwrap();
            }
        });
        let mut got = 0u64;
        while rx.recv().await.is_ok() {
            got += 1;
        }
        producer.await.unwrap();
        assert_eq!(got, n);
        start.elapsed()
    }

    pub async fn async_channel(pool: Arc<Vec<Bytes>>, n: u64, capacity: usize) -> Duration {
        let (tx, rx) = async_channel::bounded(capacity);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send(pool[i as usize % pool.len()].clone()).await.unwrap();
            }
        });
        let mut got = 0u64;
        while rx.recv().await.is_ok() {
            got += 1;
        }
        producer.await.unwrap();
        assert_eq!(got, n);
        start.elapsed()
    }
}

/// Scenario B: one publisher, `subs` subscribers each receiving every
/// message; the count is deliveries (`n * subs`).
pub mod fan_out {
    use super::*;

    pub async fn memq(pool: Arc<Vec<Bytes>>, n: u64, subs: usize, capacity: usize) -> Duration {
        let mq = MessageQueue::new();
        let mut readers = Vec::new();
        for _ in 0..subs {
            let sub = mq.subscriber_with_options("b", lossless(capacity)).await.unwrap();
            readers.push(tokio::spawn(async move {
                let mut got = 0u64;
                while got < n {
                    got += sub.recv_batch(256).await.unwrap().len() as u64;
                }
                got
            }));
        }
        let publisher = mq.publisher("b");
        let start = Instant::now();
        for i in 0..n {
            let p = pool[i as usize % pool.len()].clone();
            publisher.publish_bytes(p, FORMAT).await.unwrap();
        }
        let mut got = 0;
        for r in readers {
            got += r.await.unwrap();
        }
        assert_eq!(got, n * subs as u64);
        start.elapsed()
    }

    /// Lossless only with a buffer that holds the whole run.
    pub async fn tokio_broadcast(pool: Arc<Vec<Bytes>>, n: u64, subs: usize) -> Duration {
        let (tx, _) = tokio::sync::broadcast::channel(n as usize);
        let readers: Vec<_> = (0..subs)
            .map(|_| {
                let mut rx = tx.subscribe();
                tokio::spawn(async move {
                    let mut got = 0u64;
                    while rx.recv().await.is_ok() {
                        got += 1;
                    }
                    got
                })
            })
            .collect();
        let start = Instant::now();
        for i in 0..n {
            tx.send(pool[i as usize % pool.len()].clone()).unwrap();
        }
        drop(tx);
        let mut got = 0;
        for r in readers {
            got += r.await.unwrap();
        }
        assert_eq!(got, n * subs as u64);
        start.elapsed()
    }

    pub async fn async_broadcast(pool: Arc<Vec<Bytes>>, n: u64, subs: usize, capacity: usize) -> Duration {
        // Bounded and lossless: the sender waits for the slowest receiver.
        let (tx, rx) = async_broadcast::broadcast(capacity);
        let readers: Vec<_> = (0..subs)
            .map(|_| {
                let mut rx = rx.clone();
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
        for i in 0..n {
            tx.broadcast(pool[i as usize % pool.len()].clone()).await.unwrap();
        }
        drop(tx);
        let mut got = 0;
        for r in readers {
            got += r.await.unwrap();
        }
        assert_eq!(got, n * subs as u64);
        start.elapsed()
    }
}

/// Scenario C: `pubs` publishers, `consumers` competing consumers.
pub mod competing {
    use super::*;

    pub async fn memq(
        pool: Arc<Vec<Bytes>>,
        per: u64,
        pubs: u64,
        consumers: usize,
        batch: usize,
        capacity: usize,
    ) -> Duration {
        let total = per * pubs;
        let mq = MessageQueue::new();
        let mut readers = Vec::new();
        for _ in 0..consumers {
            let member = mq
                .group("c", "workers")
                .options(lossless(capacity))
                .mode(ConsumptionMode::Earliest)
                .join()
                .await
                .unwrap();
            // Each member counts what it got, as the channels' receivers
            // do, until the topic is deleted and drained (their channel
            // closed and drained).
            readers.push(tokio::spawn(async move {
                let mut got = 0u64;
                loop {
                    // A batch of one is `recv`, so the row named `recv`
                    // measures it.
                    let k = if batch == 1 {
                        member.recv().await.map(|_| 1)
                    } else {
                        member.recv_batch(batch).await.map(|m| m.len() as u64)
                    };
                    match k {
                        Ok(k) => got += k,
                        Err(e) => {
                            assert_eq!(e, tokio_memq::RecvError::Closed);
                            break got;
                        }
                    }
                }
            }));
        }
        let start = Instant::now();
        let senders: Vec<_> = (0..pubs)
            .map(|p| {
                let publisher = mq.publisher("c");
                let pool = pool.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        let b = pool[((p * per + i) as usize) % pool.len()].clone();
                        publisher.publish_bytes(b, FORMAT).await.unwrap();
                    }
                })
            })
            .collect();
        for s in senders {
            s.await.unwrap();
        }
        mq.delete_topic("c").await;
        let mut got = 0;
        for r in readers {
            got += r.await.unwrap();
        }
        assert_eq!(got, total, "every message exactly once");
        start.elapsed()
    }

    macro_rules! mpmc {
        ($name:ident, $make:path, $send:ident, $recv:ident) => {
            pub async fn $name(
                pool: Arc<Vec<Bytes>>,
                per: u64,
                pubs: u64,
                consumers: usize,
                capacity: usize,
            ) -> Duration {
                let (tx, rx) = $make(capacity);
                let readers: Vec<_> = (0..consumers)
                    .map(|_| {
                        let rx = rx.clone();
                        tokio::spawn(async move {
                            let mut got = 0u64;
                            while rx.$recv().await.is_ok() {
                                got += 1;
                            }
                            got
                        })
                    })
                    .collect();
                drop(rx);
                let start = Instant::now();
                let senders: Vec<_> = (0..pubs)
                    .map(|p| {
                        let tx = tx.clone();
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            for i in 0..per {
                                let b = pool[((p * per + i) as usize) % pool.len()].clone();
                                tx.$send(b).await.unwrap();
                            }
                        })
                    })
                    .collect();
                drop(tx);
                for s in senders {
                    s.await.unwrap();
                }
                let mut got = 0;
                for r in readers {
                    got += r.await.unwrap();
                }
                assert_eq!(got, per * pubs);
                start.elapsed()
            }
        };
    }

    mpmc!(flume, flume::bounded::<Bytes>, send_async, recv_async);
    mpmc!(kanal, kanal::bounded_async::<Bytes>, send, recv);
    mpmc!(async_channel, async_channel::bounded::<Bytes>, send, recv);
}

/// Scenario D: batches of `size`. tokio-memq gives each message its own
/// offset; the channels carry one `Vec` of `size` messages per send.
pub mod batches {
    use super::*;

    /// Batches received owned (`recv_batch`) or, with `lent`, lent
    /// (`recv_batch_lent`: read in place, nothing built per message).
    pub async fn memq(pool: Arc<Vec<Bytes>>, n: u64, size: usize, capacity: usize, lent: bool) -> Duration {
        let rounds = n / size as u64;
        let mq = MessageQueue::new();
        let sub = mq.subscriber_with_options("d", lossless(capacity)).await.unwrap();
        let publisher = mq.publisher("d");
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for r in 0..rounds {
                let batch: Vec<Bytes> = (0..size)
                    .map(|i| pool[(r as usize * size + i) % pool.len()].clone())
                    .collect();
                publisher.publish_bytes_batch(batch, FORMAT).await.unwrap();
            }
        });
        let mut got = 0;
        while got < rounds * size as u64 {
            got += if lent {
                sub.recv_batch_lent(size).await.unwrap().len()
            } else {
                sub.recv_batch(size).await.unwrap().len()
            } as u64;
        }
        producer.await.unwrap();
        start.elapsed()
    }

    /// Slots for `Vec`s of `size` holding `capacity` messages (at least one).
    fn slots(capacity: usize, size: usize) -> usize {
        (capacity / size).max(1)
    }

    fn batch(pool: &[Bytes], r: u64, size: usize) -> Vec<Bytes> {
        (0..size)
            .map(|i| pool[(r as usize * size + i) % pool.len()].clone())
            .collect()
    }

    pub async fn tokio_mpsc(pool: Arc<Vec<Bytes>>, n: u64, size: usize, capacity: usize) -> Duration {
        let rounds = n / size as u64;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(slots(capacity, size));
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for r in 0..rounds {
                tx.send(batch(&pool, r, size)).await.unwrap();
            }
        });
        let mut got = 0u64;
        while let Some(b) = rx.recv().await {
            got += b.len() as u64;
        }
        producer.await.unwrap();
        assert_eq!(got, rounds * size as u64);
        start.elapsed()
    }

    pub async fn flume(pool: Arc<Vec<Bytes>>, n: u64, size: usize, capacity: usize) -> Duration {
        let rounds = n / size as u64;
        let (tx, rx) = flume::bounded::<Vec<Bytes>>(slots(capacity, size));
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for r in 0..rounds {
                tx.send_async(batch(&pool, r, size)).await.unwrap();
            }
        });
        let mut got = 0u64;
        while let Ok(b) = rx.recv_async().await {
            got += b.len() as u64;
        }
        producer.await.unwrap();
        assert_eq!(got, rounds * size as u64);
        start.elapsed()
    }

    pub async fn kanal(pool: Arc<Vec<Bytes>>, n: u64, size: usize, capacity: usize) -> Duration {
        let rounds = n / size as u64;
        let (tx, rx) = kanal::bounded_async::<Vec<Bytes>>(slots(capacity, size));
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for r in 0..rounds {
                tx.send(batch(&pool, r, size)).await.unwrap();
            }
        });
        let mut got = 0u64;
        while let Ok(b) = rx.recv().await {
            got += b.len() as u64;
        }
        producer.await.unwrap();
        assert_eq!(got, rounds * size as u64);
        start.elapsed()
    }
}

/// Where the latency and memory benches write their results for
/// `cargo xtask bench` (`target/bench-results/<name>.json`).
pub fn results_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-results");
    std::fs::create_dir_all(&dir).expect("results directory");
    dir.join(format!("{name}.json"))
}

/// Scenario I: publishing to a TTL topic while other threads poll its
/// stats. Stats must never slow publishers down; with nothing expired, a
/// stats call reads atomics only.
pub mod stats_polling {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Publishes `n` messages to a topic with a (long) TTL while `pollers`
    /// threads call `get_topic_stats` on it in a loop; returns how long
    /// the publishes took. A reader keeps up, so every message is checked.
    ///
    /// `polled` names the topic the pollers read: `"i"` (the one
    /// published to) or `"other"` (an idle one, the control: the pollers
    /// take the same CPU time, on a 2-core machine a large part of it).
    pub async fn memq(pool: Arc<Vec<Bytes>>, n: u64, pollers: usize, polled: &'static str) -> Duration {
        let mq = MessageQueue::new();
        let options = TopicOptions {
            message_ttl: Some(Duration::from_secs(3600)),
            ..lossless(LARGE_CAPACITY)
        };
        mq.create_topic("other", options.clone()).await.unwrap();
        let sub = mq.subscriber_with_options("i", options).await.unwrap();
        let publisher = mq.publisher("i");
        let stop = Arc::new(AtomicBool::new(false));
        let polling = Arc::new(AtomicU64::new(0));
        let handle = tokio::runtime::Handle::current();
        let threads: Vec<_> = (0..pollers)
            .map(|_| {
                let (mq, stop, handle) = (mq.clone(), stop.clone(), handle.clone());
                let polling = polling.clone();
                std::thread::spawn(move || {
                    polling.fetch_add(1, Ordering::Relaxed);
                    while !stop.load(Ordering::Relaxed) {
                        let stats = handle.block_on(mq.get_topic_stats(polled));
                        assert!(stats.is_some());
                    }
                })
            })
            .collect();
        // The pollers run before the first publish.
        while polling.load(Ordering::Relaxed) < pollers as u64 {
            tokio::task::yield_now().await;
        }
        let reader = tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                got += sub.recv_batch(256).await.unwrap().len() as u64;
            }
        });
        let start = Instant::now();
        for i in 0..n {
            let payload = pool[i as usize % pool.len()].clone();
            publisher.publish_bytes(payload, FORMAT).await.unwrap();
        }
        let elapsed = start.elapsed();
        reader.await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        elapsed
    }
}
