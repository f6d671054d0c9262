//! Throughput of tokio-memq next to `tokio::sync::mpsc` and `broadcast`,
//! measured in the same run on the same payloads.
//!
//! `cargo run --release --example perf_runner [-- --quick] [--workers N] [--capacity N] [--only ROW]`
//!
//! `--only` runs one row (`1kib`, `one-task`, `fan-out`, `fan-out-streams`, `groups`, `groups-batch`, `batches`, `batches-lent`, `1mib`, `100mib`,
//! `wildcard`: a pattern subscriber against a plain one; `scale`: cost per
//! delivery from 1 to 10,000 subscribers and per publish from 1 to 10,000
//! topics, against tokio broadcast; `replay`: a subscriber reading a full
//! topic from `Earliest`, against live delivery and a broadcast receiver
//! draining its buffer);
//! `--ours-only` skips the peers (their columns read 0): both for a profiler.
//!
//! Every scenario runs on a multi-thread runtime (2 workers unless
//! `--workers` says otherwise), publishes distinct `Bytes` payloads (a
//! pool used in turn) that are shared, never copied, and checks that every
//! message arrived: a peer that loses messages is not reported as faster. Each figure is the median of three
//! runs. tokio-memq and mpsc are bounded to `--capacity` messages (16,384
//! unless it says otherwise; 1,024 is where hand-offs between the two ends
//! dominate). The criterion suite (`cargo xtask bench`) measures more, more
//! carefully.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{broadcast, mpsc};
use tokio_memq::{Bytes, MessageQueue, SerializationFormat, TopicOptions};
use tokio_stream::StreamExt;

/// Room in a bounded queue or channel, the same for everyone that has one,
/// unless `--capacity` says otherwise.
const DEFAULT_CAPACITY: usize = 16 * 1024;
/// Messages per batch in the batch scenario.
const BATCH: usize = 100;
const FORMAT: SerializationFormat = SerializationFormat::Bincode;

struct Config {
    workers: usize,
    scale: u64,
    capacity: usize,
    only: Option<String>,
}

/// The rows of the table, by the name `--only` takes.
const ROWS: [&str; 13] = [
    "1kib",
    "one-task",
    "fan-out",
    "fan-out-streams",
    "groups",
    "groups-batch",
    "batches",
    "batches-lent",
    "1mib",
    "100mib",
    "wildcard",
    "scale",
    "replay",
];

struct Row {
    scenario: String,
    payload: &'static str,
    unit: &'static str,
    ours: f64,
    mpsc: Option<f64>,
    broadcast: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let mut config = Config {
        workers: 2,
        scale: 1,
        capacity: DEFAULT_CAPACITY,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => config.scale = 4,
            "--workers" => config.workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(2),
            "--capacity" => {
                config.capacity = match args.next().and_then(|n| n.parse().ok()) {
                    Some(n) if n >= BATCH => n,
                    _ => anyhow::bail!("--capacity takes a number of messages, at least {BATCH}"),
                }
            }
            "--ours-only" => OURS_ONLY.store(true, std::sync::atomic::Ordering::Relaxed),
            "--only" => match args.next() {
                Some(row) if ROWS.contains(&row.as_str()) => config.only = Some(row),
                _ => anyhow::bail!("--only takes one of {}", ROWS.join(", ")),
            },
            other => anyhow::bail!(
                "unknown argument {other}; use --quick, --workers N, --capacity N, --only ROW or --ours-only"
            ),
        }
    }
    let cap = config.capacity;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()?;
    let n = |full: u64| full / config.scale;
    // The 1 KiB pool serves most rows; the big ones are made only for the
    // rows that use them (216 MB, not worth allocating for `--only`).
    let kib = Pool::new(1024, 1024);

    // Before each row: how long a cache line takes between two CPUs (on
    // the shared development machine, five times as long in its slow
    // periods; see `memq_testkit::machine`).
    let probes = std::cell::RefCell::new(Vec::new());
    let wanted = |row: &'static str| {
        let wanted = config.only.as_deref().is_none_or(|only| only == row);
        if wanted {
            probes
                .borrow_mut()
                .push((row, memq_testkit::machine::core_round_trip()));
        }
        wanted
    };
    let mut rows = Vec::new();
    if wanted("1kib") {
        rows.push(one_to_one(&rt, "1P / 1C", "1 KiB", &kib, n(1_000_000), cap));
    }
    if wanted("one-task") {
        rows.push(one_task(&rt, &kib, n(2_000_000), cap));
    }
    if wanted("fan-out") {
        rows.push(fan_out(&rt, n(200_000), 10, &kib, cap, false));
    }
    if wanted("fan-out-streams") {
        rows.push(fan_out(&rt, n(200_000), 10, &kib, cap, true));
    }
    if wanted("groups") {
        rows.push(groups(&rt, n(400_000), 10, &kib, cap, 1));
    }
    if wanted("groups-batch") {
        rows.push(groups(&rt, n(400_000), 10, &kib, cap, 64));
    }
    if wanted("batches") {
        rows.push(batches(&rt, n(1_000_000), BATCH, &kib, cap, false));
    }
    if wanted("batches-lent") {
        rows.push(batches(&rt, n(1_000_000), BATCH, &kib, cap, true));
    }
    if wanted("1mib") {
        let mib = Pool::new(1 << 20, 16);
        rows.push(one_to_one(&rt, "1P / 1C", "1 MiB", &mib, n(200_000), cap));
    }
    if wanted("100mib") {
        let hundred_mib = Pool::new(100 << 20, 2);
        rows.push(one_to_one(
            &rt,
            "1P / 1C",
            "100 MiB",
            &hundred_mib,
            n(200_000),
            cap,
        ));
    }
    print_table(&config, &rows);
    if wanted("wildcard") {
        wildcard(&rt, n(1_000_000), &kib, cap);
    }
    // Not part of the full table (they take a minute): `--only scale`,
    // `--only replay`.
    if config.only.as_deref() == Some("scale") && wanted("scale") {
        scale(&rt, config.scale, &kib);
    }
    if config.only.as_deref() == Some("replay") && wanted("replay") {
        replay(&rt, n(1_000_000), &kib);
    }
    print_probes(&probes.into_inner());
    Ok(())
}

/// The core-to-core round trip measured before each row, and a warning
/// when they differ enough that the rows ran in different periods of a
/// shared machine.
fn print_probes(probes: &[(&str, Option<Duration>)]) {
    let nanos = |d: &Option<Duration>| {
        d.map_or_else(|| "not measured".to_string(), |d| format!("{} ns", d.as_nanos()))
    };
    let listed: Vec<String> = probes
        .iter()
        .map(|(row, d)| format!("{row} {}", nanos(d)))
        .collect();
    println!();
    println!("Core-to-core round trip before each row: {}.", listed.join(", "));
    let measured: Vec<Duration> = probes.iter().filter_map(|(_, d)| *d).collect();
    if let (Some(low), Some(high)) = (measured.iter().min(), measured.iter().max()) {
        if *high > *low * 2 {
            println!(
                "Warning: it ranged from {} to {} ns: rows measured in a slow period (the higher figure) \
                 are not comparable with the others; run them again.",
                low.as_nanos(),
                high.as_nanos()
            );
        }
    }
}

/// What a wildcard subscription costs: one publisher, 1 KiB messages,
/// received by a plain subscriber of the topic, by a pattern subscriber
/// matching only that topic, and by one matching it among ten topics
/// that each get a tenth of the messages (ten publishers).
fn wildcard(rt: &Runtime, n: u64, pool: &Pool, capacity: usize) {
    let run = |topics: u64, pattern: bool| {
        let pool = pool.clone();
        rate(rt, move || {
            let pool = pool.clone();
            Box::pin(async move {
                let mq = MessageQueue::new();
                let names: Vec<String> = (0..topics).map(|t| format!("w.{t}")).collect();
                for name in &names {
                    mq.create_topic(name.as_str(), lossless(capacity)).await.unwrap();
                }
                let plain = if pattern {
                    None
                } else {
                    Some(mq.subscriber("w.0").await.unwrap())
                };
                let wild = if pattern {
                    Some(mq.subscribe_pattern("w.*").unwrap())
                } else {
                    None
                };
                let per = n / topics;
                let start = Instant::now();
                for name in names {
                    let publisher = mq.publisher(name);
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        for i in 0..per {
                            publisher.publish_bytes(pool.get(i), FORMAT).await.unwrap();
                        }
                    });
                }
                let mut got = 0u64;
                while got < per * topics {
                    match (&plain, &wild) {
                        (Some(s), _) => drop(s.recv().await.unwrap()),
                        (_, Some(w)) => drop(w.recv().await.unwrap()),
                        _ => unreachable!("one of them is set"),
                    }
                    got += 1;
                }
                (got, start.elapsed())
            })
        })
    };
    let plain = run(1, false);
    let one = run(1, true);
    let ten = run(10, true);
    println!();
    println!("| wildcard (1 KiB, capacity {capacity}) | msgs/s | / plain subscriber |");
    println!("|---|---:|---:|");
    println!("| plain subscriber, 1 topic | {} | 1.00x |", human(plain));
    println!(
        "| `subscribe_pattern(\"w.*\")`, 1 topic | {} | {:.2}x |",
        human(one),
        one / plain
    );
    println!(
        "| `subscribe_pattern(\"w.*\")`, 10 topics, 10 publishers | {} | {:.2}x |",
        human(ten),
        ten / plain
    );
}

/// Whether costs stay flat as a queue grows: nanoseconds per delivery with
/// 1 to 10,000 subscribers of one topic (capacity 1,024, lossless, so the
/// publisher keeps waiting for the slowest reader), and per publish with
/// 1 to 10,000 topics (one idle subscriber each, evicting), against tokio
/// broadcast doing the same (a buffer holding the whole run for fan-out,
/// its only lossless setting).
fn scale(rt: &Runtime, quick: u64, pool: &Pool) {
    const CAPACITY: usize = 1024;
    let fan_out = |subscribers: u64, ours: bool| {
        let n = (1_000_000 / quick / subscribers).max(2 * CAPACITY as u64);
        let pool = pool.clone();
        let run = move || -> std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Duration)>>> {
            let pool = pool.clone();
            Box::pin(async move {
                let mut readers = Vec::new();
                let start;
                if ours {
                    let mq = MessageQueue::new();
                    for _ in 0..subscribers {
                        let sub = mq.subscriber_with_options("s", lossless(CAPACITY)).await.unwrap();
                        readers.push(tokio::spawn(async move {
                            for _ in 0..n {
                                sub.recv().await.unwrap();
                            }
                            n
                        }));
                    }
                    let publisher = mq.publisher("s");
                    start = Instant::now();
                    for i in 0..n {
                        publisher.publish_bytes(pool.get(i), FORMAT).await.unwrap();
                    }
                } else {
                    let (tx, _) = broadcast::channel::<Bytes>(n as usize);
                    for _ in 0..subscribers {
                        let mut rx = tx.subscribe();
                        readers.push(tokio::spawn(async move {
                            for _ in 0..n {
                                rx.recv().await.unwrap();
                            }
                            n
                        }));
                    }
                    start = Instant::now();
                    for i in 0..n {
                        tx.send(pool.get(i)).unwrap();
                    }
                }
                let mut got = 0;
                for r in readers {
                    got += r.await.unwrap();
                }
                assert_eq!(got, n * subscribers);
                (got, start.elapsed())
            })
        };
        let per_second = if ours { rate(rt, run) } else { peer_rate(rt, run) };
        1e9 / per_second
    };
    println!();
    println!("| fan-out, 1 KiB, capacity {CAPACITY} | ns per delivery | tokio broadcast | / 1 subscriber | broadcast / 1 |");
    println!("|---|---:|---:|---:|---:|");
    let (mut ours_one, mut peer_one) = (0.0, 0.0);
    for subscribers in [1u64, 10, 100, 1_000, 10_000] {
        let (ours, peer) = (fan_out(subscribers, true), fan_out(subscribers, false));
        if subscribers == 1 {
            (ours_one, peer_one) = (ours, peer);
        }
        println!(
            "| {subscribers} subscribers | {ours:.1} | {peer:.1} | {:.2}x | {:.2}x |",
            ours / ours_one,
            peer / peer_one
        );
    }

    let per_topic = |topics: u64, ours: bool| {
        let n = 1_000_000 / quick;
        let pool = pool.clone();
        let run = move || -> std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Duration)>>> {
            let pool = pool.clone();
            Box::pin(async move {
                let start;
                if ours {
                    let mq = MessageQueue::new();
                    let options = TopicOptions {
                        max_messages: Some(CAPACITY),
                        ..Default::default()
                    };
                    let mut subs = Vec::new();
                    let mut publishers = Vec::new();
                    for t in 0..topics {
                        let name = format!("t{t}");
                        subs.push(
                            mq.subscriber_with_options(name.as_str(), options.clone())
                                .await
                                .unwrap(),
                        );
                        publishers.push(mq.publisher(name));
                    }
                    start = Instant::now();
                    for i in 0..n {
                        publishers[(i % topics) as usize]
                            .publish_bytes(pool.get(i), FORMAT)
                            .await
                            .unwrap();
                    }
                    drop(subs);
                } else {
                    let channels: Vec<_> = (0..topics)
                        .map(|_| broadcast::channel::<Bytes>(CAPACITY))
                        .collect();
                    start = Instant::now();
                    for i in 0..n {
                        channels[(i % topics) as usize].0.send(pool.get(i)).unwrap();
                    }
                }
                (n, start.elapsed())
            })
        };
        let per_second = if ours { rate(rt, run) } else { peer_rate(rt, run) };
        1e9 / per_second
    };
    println!();
    println!("| publishes in turn across topics, 1 KiB | ns per publish | tokio broadcast | / 1 topic | broadcast / 1 |");
    println!("|---|---:|---:|---:|---:|");
    let (mut ours_one, mut peer_one) = (0.0, 0.0);
    for topics in [1u64, 100, 10_000] {
        let (ours, peer) = (per_topic(topics, true), per_topic(topics, false));
        if topics == 1 {
            (ours_one, peer_one) = (ours, peer);
        }
        println!(
            "| {topics} topics | {ours:.1} | {peer:.1} | {:.2}x | {:.2}x |",
            ours / ours_one,
            peer / peer_one
        );
    }
}

/// How a topic's retained messages replay (issue 10, item 7: at least as
/// fast as live delivery): `n` messages published into a topic that keeps
/// them all, then read from `Earliest` by a new subscriber in one task,
/// timed from the subscribe to the last message, through `recv`, an owned
/// stream and lent batches of 100; next to live delivery (one publisher
/// and one subscriber running at once, the `1kib` row) and a tokio
/// broadcast receiver draining a buffer holding the same messages.
fn replay(rt: &Runtime, n: u64, pool: &Pool) {
    #[derive(Clone, Copy)]
    enum Read {
        Recv,
        Stream,
        Lent,
    }
    let ours = |read: Read| {
        let pool = pool.clone();
        rate(rt, move || {
            let pool = pool.clone();
            Box::pin(async move {
                let mq = MessageQueue::new();
                let options = TopicOptions {
                    max_messages: Some(n as usize),
                    ..Default::default()
                };
                mq.create_topic("r", options.clone()).await.unwrap();
                let publisher = mq.publisher("r");
                for i in 0..n {
                    publisher.publish_bytes(pool.get(i), FORMAT).await.unwrap();
                }
                let start = Instant::now();
                let sub = mq
                    .subscriber_with_options_and_mode("r", options, tokio_memq::ConsumptionMode::Earliest)
                    .await
                    .unwrap();
                let mut next = 0u64;
                match read {
                    Read::Recv => {
                        while next < n {
                            let m = sub.recv().await.unwrap();
                            assert_eq!(m.offset, Some(next), "in order, none missing");
                            next += 1;
                        }
                    }
                    Read::Stream => {
                        let mut stream = sub.into_stream();
                        while next < n {
                            let m = stream.next().await.unwrap().unwrap();
                            assert_eq!(m.offset, Some(next), "in order, none missing");
                            next += 1;
                        }
                    }
                    Read::Lent => {
                        while next < n {
                            let batch = sub.recv_batch_lent(BATCH).await.unwrap();
                            for m in batch.iter() {
                                assert_eq!(m.offset(), next, "in order, none missing");
                                next += 1;
                            }
                        }
                    }
                }
                (next, start.elapsed())
            })
        })
    };
    let recv = ours(Read::Recv);
    let stream = ours(Read::Stream);
    let lent = ours(Read::Lent);
    let live = one_to_one_memq(rt, pool, n, DEFAULT_CAPACITY);
    let peer = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, mut rx) = broadcast::channel::<Bytes>(n as usize);
            for i in 0..n {
                tx.send(pool.get(i)).unwrap();
            }
            let start = Instant::now();
            let mut got = 0u64;
            while got < n {
                drop(rx.recv().await.unwrap());
                got += 1;
            }
            (got, start.elapsed())
        })
    });
    println!();
    println!("| replay of {n} retained 1 KiB messages from `Earliest` | msgs/s | / live delivery | / broadcast draining |");
    println!("|---|---:|---:|---:|");
    for (name, r) in [
        ("`recv`", recv),
        ("owned stream", stream),
        ("lent batches of 100", lent),
    ] {
        println!(
            "| {name} | {} | {:.2}x | {} |",
            human(r),
            r / live,
            ratio(r, peer)
        );
    }
    println!(
        "| live delivery (1P / 1C, `recv`) | {} | 1.00x | {} |",
        human(live),
        ratio(live, peer)
    );
    println!(
        "| tokio broadcast draining its buffer | {} | | 1.00x |",
        human(peer)
    );
}

/// Distinct payloads, published in turn: every message is its own buffer,
/// as in an application. (Publishing one buffer over and over measures
/// contention on its reference count instead: a log keeps its own
/// reference to every message and hands each reader another, so it does
/// twice a channel's atomic operations on that one cache line.)
#[derive(Clone)]
struct Pool(std::sync::Arc<Vec<Bytes>>);

impl Pool {
    fn new(size: usize, count: usize) -> Self {
        Pool(std::sync::Arc::new(
            (0..count).map(|i| Bytes::from(vec![i as u8; size])).collect(),
        ))
    }

    fn get(&self, i: u64) -> Bytes {
        self.0[(i % self.0.len() as u64) as usize].clone()
    }

    /// The `round`th batch of `size` payloads.
    fn batch(&self, round: u64, size: usize) -> Vec<Bytes> {
        let first = round * size as u64;
        (first..first + size as u64).map(|i| self.get(i)).collect()
    }
}

/// Set by `--ours-only`.
static OURS_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A peer's [`rate`], or 0 under `--ours-only`.
fn peer_rate(
    rt: &Runtime,
    f: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Duration)>>>,
) -> f64 {
    if OURS_ONLY.load(std::sync::atomic::Ordering::Relaxed) {
        return 0.0;
    }
    rate(rt, f)
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[runs.len() / 2]
}

/// Runs `f` three times; `f` returns (items counted, elapsed).
fn rate(
    rt: &Runtime,
    f: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Duration)>>>,
) -> f64 {
    median(
        (0..3)
            .map(|_| {
                let (items, elapsed) = rt.block_on(f());
                items as f64 / elapsed.as_secs_f64()
            })
            .collect(),
    )
}

fn lossless(capacity: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(capacity),
        lru_enabled: false,
        ..Default::default()
    }
}

/// tokio-memq's figure of [`one_to_one`]: a publisher task and a
/// subscriber, `n` messages.
fn one_to_one_memq(rt: &Runtime, pool: &Pool, n: u64, capacity: usize) -> f64 {
    rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let mq = MessageQueue::new();
            let sub = mq.subscriber_with_options("a", lossless(capacity)).await.unwrap();
            let publisher = mq.publisher("a");
            let start = Instant::now();
            let producer = tokio::spawn(async move {
                for i in 0..n {
                    publisher.publish_bytes(pool.get(i), FORMAT).await.unwrap();
                }
            });
            let mut got = 0u64;
            while got < n {
                sub.recv().await.unwrap();
                got += 1;
            }
            producer.await.unwrap();
            (got, start.elapsed())
        })
    })
}

fn one_to_one(rt: &Runtime, scenario: &str, size: &'static str, pool: &Pool, n: u64, capacity: usize) -> Row {
    let ours = one_to_one_memq(rt, pool, n, capacity);
    let mpsc = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, mut rx) = mpsc::channel::<Bytes>(capacity);
            let start = Instant::now();
            let producer = tokio::spawn(async move {
                for i in 0..n {
                    tx.send(pool.get(i)).await.unwrap();
                }
            });
            let mut got = 0u64;
            while rx.recv().await.is_some() {
                got += 1;
            }
            producer.await.unwrap();
            assert_eq!(got, n);
            (got, start.elapsed())
        })
    });
    let broadcast = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            // Lossless only when the buffer holds the whole run.
            let (tx, mut rx) = broadcast::channel::<Bytes>(n as usize);
            let start = Instant::now();
            let producer = tokio::spawn(async move {
                for i in 0..n {
                    tx.send(pool.get(i)).unwrap();
                }
            });
            let mut got = 0u64;
            while rx.recv().await.is_ok() {
                got += 1;
            }
            producer.await.unwrap();
            assert_eq!(got, n);
            (got, start.elapsed())
        })
    });
    Row {
        scenario: scenario.to_string(),
        payload: size,
        unit: "msgs/s",
        ours,
        mpsc: Some(mpsc),
        broadcast: Some(broadcast),
    }
}

/// One task publishes a message and receives it, in turn: what a publish
/// and a receive cost in CPU time, with no hand-off between threads.
fn one_task(rt: &Runtime, pool: &Pool, n: u64, capacity: usize) -> Row {
    let ours = rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let mq = MessageQueue::new();
            let sub = mq.subscriber_with_options("a", lossless(capacity)).await.unwrap();
            let publisher = mq.publisher("a");
            let start = Instant::now();
            for i in 0..n {
                publisher.publish_bytes(pool.get(i), FORMAT).await.unwrap();
                let msg = sub.recv().await.unwrap();
                assert_eq!(msg.offset, Some(i));
            }
            (n, start.elapsed())
        })
    });
    let mpsc = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, mut rx) = mpsc::channel::<Bytes>(capacity);
            let start = Instant::now();
            for i in 0..n {
                tx.send(pool.get(i)).await.unwrap();
                std::hint::black_box(rx.recv().await.unwrap());
            }
            (n, start.elapsed())
        })
    });
    let broadcast = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, mut rx) = broadcast::channel::<Bytes>(capacity);
            let start = Instant::now();
            for i in 0..n {
                tx.send(pool.get(i)).unwrap();
                std::hint::black_box(rx.recv().await.unwrap());
            }
            (n, start.elapsed())
        })
    });
    Row {
        scenario: "1P + 1C in one task".to_string(),
        payload: "1 KiB",
        unit: "msgs/s",
        ours,
        mpsc: Some(mpsc),
        broadcast: Some(broadcast),
    }
}

/// `publishers` publishers to a consumer group of as many members, each
/// receiving with `recv` (scenario C; its peers are in the criterion suite).
/// `publishers` publishers and as many group members, receiving with
/// `recv` (`batch` 1) or `recv_batch(batch)`.
fn groups(rt: &Runtime, n: u64, publishers: u64, pool: &Pool, capacity: usize, batch: usize) -> Row {
    let ours = rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let mq = MessageQueue::new();
            let per = n / publishers;
            let total = per * publishers;
            let mut members = Vec::new();
            for _ in 0..publishers {
                let member = mq
                    .group("c", "workers")
                    .options(lossless(capacity))
                    .mode(tokio_memq::ConsumptionMode::Earliest)
                    .join()
                    .await
                    .unwrap();
                // Each counts its own, as a channel's receivers would, until
                // the topic is deleted and drained.
                members.push(tokio::spawn(async move {
                    let mut got = 0u64;
                    if batch == 1 {
                        while member.recv().await.is_ok() {
                            got += 1;
                        }
                    } else {
                        while let Ok(batch) = member.recv_batch(batch).await {
                            got += batch.len() as u64;
                        }
                    }
                    got
                }));
            }
            let start = Instant::now();
            let mut publishing = Vec::new();
            for p in 0..publishers {
                let publisher = mq.publisher("c");
                let pool = pool.clone();
                publishing.push(tokio::spawn(async move {
                    for i in 0..per {
                        publisher
                            .publish_bytes(pool.get(p * per + i), FORMAT)
                            .await
                            .unwrap();
                    }
                }));
            }
            for p in publishing {
                p.await.unwrap();
            }
            mq.delete_topic("c").await;
            let mut got = 0;
            for m in members {
                got += m.await.unwrap();
            }
            let elapsed = start.elapsed();
            assert_eq!(got, total, "every message exactly once");
            (got, elapsed)
        })
    });
    Row {
        scenario: match batch {
            1 => format!("{publishers}P / group of {publishers}"),
            b => format!("{publishers}P / group of {publishers}, recv_batch({b})"),
        },
        payload: "1 KiB",
        unit: "msgs/s",
        ours,
        mpsc: None,
        broadcast: None,
    }
}

fn fan_out(rt: &Runtime, n: u64, subscribers: usize, pool: &Pool, capacity: usize, streams: bool) -> Row {
    let ours = rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let mq = MessageQueue::new();
            let mut readers = Vec::new();
            for _ in 0..subscribers {
                let sub = mq.subscriber_with_options("b", lossless(capacity)).await.unwrap();
                readers.push(tokio::spawn(async move {
                    let mut got = 0u64;
                    if streams {
                        let mut stream = sub.into_stream();
                        while got < n {
                            stream.next().await.unwrap().unwrap();
                            got += 1;
                        }
                    } else {
                        while got < n {
                            sub.recv().await.unwrap();
                            got += 1;
                        }
                    }
                    got
                }));
            }
            let publisher = mq.publisher("b");
            let start = Instant::now();
            for i in 0..n {
                publisher.publish_bytes(pool.get(i), FORMAT).await.unwrap();
            }
            let mut got = 0;
            for r in readers {
                got += r.await.unwrap();
            }
            assert_eq!(got, n * subscribers as u64);
            (got, start.elapsed())
        })
    });
    let broadcast = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, _) = broadcast::channel::<Bytes>(n as usize);
            let readers: Vec<_> = (0..subscribers)
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
                tx.send(pool.get(i)).unwrap();
            }
            drop(tx);
            let mut got = 0;
            for r in readers {
                got += r.await.unwrap();
            }
            assert_eq!(got, n * subscribers as u64);
            (got, start.elapsed())
        })
    });
    Row {
        scenario: if streams {
            format!("1P / {subscribers} owned streams")
        } else {
            format!("1P / {subscribers} subscribers")
        },
        payload: "1 KiB",
        unit: "deliveries/s",
        ours,
        mpsc: None,
        broadcast: Some(broadcast),
    }
}

/// Batches of `size`, received owned (`recv_batch`) or lent
/// (`recv_batch_lent`, the payloads read in place).
fn batches(rt: &Runtime, n: u64, size: usize, pool: &Pool, capacity: usize, lent: bool) -> Row {
    let rounds = n / size as u64;
    let ours = rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let mq = MessageQueue::new();
            let sub = mq.subscriber_with_options("c", lossless(capacity)).await.unwrap();
            let publisher = mq.publisher("c");
            let start = Instant::now();
            let producer = tokio::spawn(async move {
                for r in 0..rounds {
                    let batch = pool.batch(r, size);
                    publisher.publish_bytes_batch(batch, FORMAT).await.unwrap();
                }
            });
            let mut got = 0u64;
            while got < rounds * size as u64 {
                got += if lent {
                    sub.recv_batch_lent(size).await.unwrap().len()
                } else {
                    sub.recv_batch(size).await.unwrap().len()
                } as u64;
            }
            producer.await.unwrap();
            (got, start.elapsed())
        })
    });
    let mpsc = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(capacity / size);
            let start = Instant::now();
            let producer = tokio::spawn(async move {
                for r in 0..rounds {
                    tx.send(pool.batch(r, size)).await.unwrap();
                }
            });
            let mut got = 0u64;
            while let Some(batch) = rx.recv().await {
                got += batch.len() as u64;
            }
            producer.await.unwrap();
            (got, start.elapsed())
        })
    });
    let broadcast = peer_rate(rt, || {
        let pool = pool.clone();
        Box::pin(async move {
            let (tx, mut rx) = broadcast::channel::<std::sync::Arc<Vec<Bytes>>>(rounds as usize);
            let start = Instant::now();
            let producer = tokio::spawn(async move {
                for r in 0..rounds {
                    tx.send(std::sync::Arc::new(pool.batch(r, size))).unwrap();
                }
            });
            let mut got = 0u64;
            while let Ok(batch) = rx.recv().await {
                got += batch.len() as u64;
            }
            producer.await.unwrap();
            (got, start.elapsed())
        })
    });
    Row {
        scenario: format!("1P / 1C, batches of {size}{}", if lent { ", lent" } else { "" }),
        payload: "1 KiB",
        unit: "msgs/s",
        ours,
        mpsc: Some(mpsc),
        broadcast: Some(broadcast),
    }
}

/// `ours / peer` as a ratio, or `n/a` without a peer figure (none in
/// the table, or `--ours-only`).
fn ratio(ours: f64, peer: f64) -> String {
    if peer > 0.0 {
        format!("{:.2}x", ours / peer)
    } else {
        "n/a".to_string()
    }
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.1} k", rate / 1e3)
    }
}

fn print_table(config: &Config, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "tokio-memq perf_runner: {} runtime workers, {} CPUs, median of 3 runs{}{}",
        config.workers,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if config.scale > 1 { ", --quick" } else { "" },
        if config.capacity != DEFAULT_CAPACITY {
            format!(", --capacity {}", config.capacity)
        } else {
            String::new()
        }
    );
    println!();
    println!("| scenario | payload | unit | tokio-memq | tokio mpsc | tokio broadcast | memq / best peer |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for r in rows {
        let best = r.mpsc.into_iter().chain(r.broadcast).fold(0.0f64, f64::max);
        let cell = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), human);
        let ratio = ratio(r.ours, best);
        println!(
            "| {} | {} | {} | {} | {} | {} | {ratio} |",
            r.scenario,
            r.payload,
            r.unit,
            human(r.ours),
            cell(r.mpsc),
            cell(r.broadcast),
        );
    }
    println!();
    println!(
        "Every run checks that every message arrived. tokio-memq and mpsc are bounded to {} messages",
        config.capacity
    );
    println!(
        "(lru_enabled: false: publishers wait, nothing is lost); broadcast cannot wait for slow receivers,"
    );
    println!(
        "so it is given a buffer that holds the whole run. mpsc has no fan-out (n/a). Batches: mpsc and"
    );
    println!("broadcast carry Vec<Bytes> of 100 per message; tokio-memq gives each message its own offset.");
}
