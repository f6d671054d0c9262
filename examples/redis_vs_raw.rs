//! tokio-memq over Redis (the queue from `MessageQueue::connect`, and
//! memq-redis, the log beneath it) next to the raw `redis` crate doing the
//! same work, against a `redis-server` this example starts on a free port
//! (Debian's package):
//!
//! `cargo run --release -p tokio-memq-examples --features redis --example redis_vs_raw [-- --quick]`
//!
//! The queue's figures are what an application gets (`Publisher`,
//! `Subscriber`, a group member); memq-redis's show what the layer below
//! costs.
//!
//! - single publishes, one after the other: ours `Topic::publish` (a
//!   FUNCTION call that checks the topic, adds with the next dense offset
//!   and trims), raw `XADD key MAXLEN n * p <payload>`;
//! - batches of 100: ours `Topic::publish_batch` (one FUNCTION call, a
//!   contiguous run), raw a pipeline of 100 such `XADD`s (not contiguous
//!   when others publish: less than ours guarantees);
//! - reading retained messages from the start: ours `Reader::try_recv`,
//!   raw `XREAD COUNT 128` parsed into `StreamReadReply`;
//! - group receives with their acknowledgements: ours a `Member` with
//!   automatic acks (`XREADGROUP COUNT 1`, then `XACK`), raw the same two
//!   commands.
//!
//! Payloads are 100 bytes; each figure is the median of five runs, the
//! queue, memq-redis and raw in turn, each on a fresh key. Every side uses
//! one multiplexed connection per role.

use std::time::{Duration, Instant};

use memq_redis::{GroupConfig, Start, Store, TopicConfig};
use memq_testkit::redis_server::RedisServer;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use tokio_memq::{Bytes, ConsumptionMode, MessageQueue, SerializationFormat, TopicOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PAYLOAD: [u8; 100] = [7; 100];
const BATCH: usize = 100;
/// Retention of every key (ours and raw): more than any run publishes.
const RETAIN: usize = 1_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 5 } else { 1 };
    let Some(server) = tokio::task::spawn_blocking(RedisServer::start).await? else {
        return Ok(());
    };
    let url = server.url();
    let store = Store::connect(&url).await?;
    let mq = MessageQueue::connect(&url).await?;
    let client = redis::Client::open(url.as_str())?;
    let raw = client.get_multiplexed_async_connection().await?;
    let config = TopicConfig::default().max_messages(Some(RETAIN));

    let mut rows = Vec::new();
    let singles = 10_000 / scale;
    rows.push((
        "single publishes".to_string(),
        interleaved(
            |run| single_queue(&mq, run, singles),
            |run| single_ours(&store, &config, run, singles),
            |run| single_raw(raw.clone(), run, singles),
        )
        .await?,
    ));
    let batches = 500 / scale;
    rows.push((
        format!("batches of {BATCH}"),
        interleaved(
            |run| batch_queue(&mq, run, batches),
            |run| batch_ours(&store, &config, run, batches),
            |run| batch_raw(raw.clone(), run, batches),
        )
        .await?,
    ));
    let retained = 50_000 / scale;
    rows.push((
        "reading retained messages".to_string(),
        interleaved(
            |run| read_queue(&mq, run, retained),
            |run| read_ours(&store, &config, run, retained),
            |run| read_raw(raw.clone(), &client, run, retained),
        )
        .await?,
    ));
    let claimed = 5_000 / scale;
    rows.push((
        "group receive + ack".to_string(),
        interleaved(
            |run| group_queue(&mq, run, claimed),
            |run| group_ours(&store, &config, run, claimed),
            |run| group_raw(raw.clone(), &client, run, claimed),
        )
        .await?,
    ));

    println!("tokio-memq over Redis against the raw redis crate, same server, same run (messages/s, median of {RUNS} runs, alternating)");
    println!();
    println!("| scenario | tokio-memq queue | memq-redis | raw redis | queue / raw | memq-redis / raw |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, (queue, ours, raw)) in rows {
        println!(
            "| {name} | {queue:.0} | {ours:.0} | {raw:.0} | {:.2}x | {:.2}x |",
            queue / raw,
            ours / raw
        );
    }
    drop(server);
    Ok(())
}

/// Runs of each side.
const RUNS: u32 = 5;

/// The medians over [`RUNS`] runs of `queue(run)`, `ours(run)` and
/// `raw(run)`, which return (messages, time), run in turn (each run
/// starting with the next side) so that the machine's slow moments fall on
/// all three.
async fn interleaved<Q, QF, A, AF, B, BF>(mut queue: Q, mut ours: A, mut raw: B) -> Result<(f64, f64, f64)>
where
    Q: FnMut(u32) -> QF,
    QF: std::future::Future<Output = Result<(u64, Duration)>>,
    A: FnMut(u32) -> AF,
    AF: std::future::Future<Output = Result<(u64, Duration)>>,
    B: FnMut(u32) -> BF,
    BF: std::future::Future<Output = Result<(u64, Duration)>>,
{
    let rate = |(n, elapsed): (u64, Duration)| n as f64 / elapsed.as_secs_f64();
    let (mut q, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        // Each run starts with another side, so none always follows the same.
        for side in 0..3 {
            match (run + side) % 3 {
                0 => q.push(rate(queue(run).await?)),
                1 => a.push(rate(ours(run).await?)),
                _ => b.push(rate(raw(run).await?)),
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(q), median(a), median(b)))
}

/// The queue's topic for a scenario's run, retaining [`RETAIN`].
async fn queue_topic(mq: &MessageQueue, scenario: &str, run: u32) -> Result<String> {
    let name = format!("queue-{scenario}-{run}");
    mq.create_topic(&name, retaining()).await?;
    Ok(name)
}

/// The queue's topic options: [`RETAIN`] messages.
fn retaining() -> TopicOptions {
    TopicOptions {
        max_messages: Some(RETAIN),
        ..TopicOptions::default()
    }
}

async fn single_queue(mq: &MessageQueue, run: u32, n: u64) -> Result<(u64, Duration)> {
    let publisher = mq.publisher(queue_topic(mq, "single", run).await?);
    let payload = Bytes::from_static(&PAYLOAD);
    let start = Instant::now();
    for i in 0..n {
        let offset = publisher
            .publish_bytes(payload.clone(), SerializationFormat::Raw)
            .await?;
        assert_eq!(offset, i);
    }
    Ok((n, start.elapsed()))
}

async fn batch_queue(mq: &MessageQueue, run: u32, batches: u64) -> Result<(u64, Duration)> {
    let publisher = mq.publisher(queue_topic(mq, "batch", run).await?);
    let batch = vec![Bytes::from_static(&PAYLOAD); BATCH];
    let start = Instant::now();
    for b in 0..batches {
        let first = b * BATCH as u64;
        let run = publisher
            .publish_bytes_batch(batch.clone(), SerializationFormat::Raw)
            .await?;
        assert_eq!(run, first..first + BATCH as u64);
    }
    Ok((batches * BATCH as u64, start.elapsed()))
}

/// Fills the queue's `topic` as [`fill_ours`] does.
async fn fill_queue(mq: &MessageQueue, topic: &str, n: u64) -> Result<u64> {
    let publisher = mq.publisher(topic);
    let batch = vec![Bytes::from_static(&PAYLOAD); 1_000];
    for _ in 0..n.div_ceil(1_000) {
        publisher
            .publish_bytes_batch(batch.clone(), SerializationFormat::Raw)
            .await?;
    }
    Ok(n.div_ceil(1_000) * 1_000)
}

async fn read_queue(mq: &MessageQueue, run: u32, n: u64) -> Result<(u64, Duration)> {
    let topic = queue_topic(mq, "read", run).await?;
    let total = fill_queue(mq, &topic, n).await?;
    let sub = mq
        .subscriber_with_options_and_mode(&topic, retaining(), ConsumptionMode::Earliest)
        .await?;
    let start = Instant::now();
    for i in 0..total {
        let msg = sub.try_recv().await?;
        assert_eq!((msg.offset(), msg.payload.len()), (i, PAYLOAD.len()));
    }
    Ok((total, start.elapsed()))
}

async fn group_queue(mq: &MessageQueue, run: u32, n: u64) -> Result<(u64, Duration)> {
    let topic = queue_topic(mq, "group", run).await?;
    let total = fill_queue(mq, &topic, n).await?;
    let member = mq
        .subscriber_group(&topic, "g", ConsumptionMode::Earliest)
        .await?;
    let start = Instant::now();
    for i in 0..total {
        assert_eq!(member.recv().await?.offset(), i);
    }
    Ok((total, start.elapsed()))
}

fn raw_key(scenario: &str, run: u32) -> String {
    format!("raw:{scenario}:{run}")
}

/// `XADD key MAXLEN = RETAIN * p PAYLOAD`.
fn xadd(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key)
        .arg("MAXLEN")
        .arg("=")
        .arg(RETAIN)
        .arg("*")
        .arg("p")
        .arg(&PAYLOAD[..]);
    cmd
}

async fn single_ours(store: &Store, config: &TopicConfig, run: u32, n: u64) -> Result<(u64, Duration)> {
    let topic = store.topic(&format!("single-{run}"), config.clone()).await?;
    let start = Instant::now();
    for i in 0..n {
        assert_eq!(topic.publish(&PAYLOAD).await?, i);
    }
    Ok((n, start.elapsed()))
}

async fn single_raw(mut conn: MultiplexedConnection, run: u32, n: u64) -> Result<(u64, Duration)> {
    let key = raw_key("single", run);
    let start = Instant::now();
    for _ in 0..n {
        let _: String = xadd(&key).query_async(&mut conn).await?;
    }
    Ok((n, start.elapsed()))
}

async fn batch_ours(store: &Store, config: &TopicConfig, run: u32, batches: u64) -> Result<(u64, Duration)> {
    let topic = store.topic(&format!("batch-{run}"), config.clone()).await?;
    let batch = [&PAYLOAD[..]; BATCH];
    let start = Instant::now();
    for b in 0..batches {
        let first = b * BATCH as u64;
        assert_eq!(topic.publish_batch(&batch).await?, first..first + BATCH as u64);
    }
    Ok((batches * BATCH as u64, start.elapsed()))
}

async fn batch_raw(mut conn: MultiplexedConnection, run: u32, batches: u64) -> Result<(u64, Duration)> {
    let key = raw_key("batch", run);
    let mut pipe = redis::pipe();
    for _ in 0..BATCH {
        pipe.add_command(xadd(&key));
    }
    let start = Instant::now();
    for _ in 0..batches {
        let ids: Vec<String> = pipe.query_async(&mut conn).await?;
        assert_eq!(ids.len(), BATCH);
    }
    Ok((batches * BATCH as u64, start.elapsed()))
}

/// Fills `topic` with `n` messages rounded up to thousands, in batches
/// (not timed); returns how many.
async fn fill_ours(topic: &memq_redis::Topic, n: u64) -> Result<u64> {
    let batch = [&PAYLOAD[..]; 1_000];
    for _ in 0..n.div_ceil(1_000) {
        topic.publish_batch(&batch).await?;
    }
    Ok(n.div_ceil(1_000) * 1_000)
}

/// Fills `key` with `n` messages in pipelines (not timed).
async fn fill_raw(conn: &mut MultiplexedConnection, key: &str, n: u64) -> Result<()> {
    let mut left = n;
    while left > 0 {
        let mut pipe = redis::pipe();
        for _ in 0..left.min(1_000) {
            pipe.add_command(xadd(key)).ignore();
        }
        let () = pipe.query_async(conn).await?;
        left -= left.min(1_000);
    }
    Ok(())
}

async fn read_ours(store: &Store, config: &TopicConfig, run: u32, n: u64) -> Result<(u64, Duration)> {
    let topic = store.topic(&format!("read-{run}"), config.clone()).await?;
    let total = fill_ours(&topic, n).await?;
    let mut reader = topic.reader(Start::Earliest).await?;
    let start = Instant::now();
    for i in 0..total {
        let record = reader.try_recv().await?.expect("retained");
        assert_eq!((record.offset, record.payload.len()), (i, PAYLOAD.len()));
    }
    Ok((total, start.elapsed()))
}

async fn read_raw(
    mut conn: MultiplexedConnection,
    client: &redis::Client,
    run: u32,
    n: u64,
) -> Result<(u64, Duration)> {
    let key = raw_key("read", run);
    let total = n.div_ceil(1_000) * 1_000;
    fill_raw(&mut conn, &key, total).await?;
    // A connection of its own, as a reader that may block needs.
    let mut reader = client.get_multiplexed_async_connection().await?;
    let start = Instant::now();
    let (mut last, mut got) = ("0-0".to_string(), 0u64);
    while got < total {
        let reply: StreamReadReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(128)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last)
            .query_async(&mut reader)
            .await?;
        for id in reply.keys.iter().flat_map(|k| &k.ids) {
            let payload: Vec<u8> = id.get("p").expect("a payload");
            assert_eq!(payload.len(), PAYLOAD.len());
            last.clone_from(&id.id);
            got += 1;
        }
    }
    Ok((got, start.elapsed()))
}

async fn group_ours(store: &Store, config: &TopicConfig, run: u32, n: u64) -> Result<(u64, Duration)> {
    let topic = store.topic(&format!("group-{run}"), config.clone()).await?;
    let total = fill_ours(&topic, n).await?;
    let mut member = topic
        .join("g", "m", GroupConfig::default().start(Start::Earliest))
        .await?;
    let start = Instant::now();
    for i in 0..total {
        let delivery = member.recv().await?;
        assert_eq!(delivery.record.offset, i);
    }
    Ok((total, start.elapsed()))
}

async fn group_raw(
    mut conn: MultiplexedConnection,
    client: &redis::Client,
    run: u32,
    n: u64,
) -> Result<(u64, Duration)> {
    let key = raw_key("group", run);
    let total = n.div_ceil(1_000) * 1_000;
    fill_raw(&mut conn, &key, total).await?;
    let _: String = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await?;
    let mut member = client.get_multiplexed_async_connection().await?;
    let start = Instant::now();
    for _ in 0..total {
        let reply: StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("m")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut member)
            .await?;
        let id = &reply.keys[0].ids[0];
        let payload: Vec<u8> = id.get("p").expect("a payload");
        assert_eq!(payload.len(), PAYLOAD.len());
        let acked: u64 = redis::cmd("XACK")
            .arg(&key)
            .arg("g")
            .arg(&id.id)
            .query_async(&mut member)
            .await?;
        assert_eq!(acked, 1);
    }
    Ok((total, start.elapsed()))
}
