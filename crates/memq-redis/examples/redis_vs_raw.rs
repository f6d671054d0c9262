//! memq-redis next to the raw `redis` crate doing the same work, against a
//! `redis-server` this example starts on a free port (Debian's package):
//!
//! `cargo run --release -p memq-redis --example redis_vs_raw [-- --quick]`
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
//! Payloads are 100 bytes; each figure is the median of five runs, ours
//! and raw in turn, each on a fresh key. Both sides use one multiplexed connection per role.

use std::time::{Duration, Instant};

use memq_redis::{GroupConfig, Start, Store, TopicConfig};
use memq_testkit::redis_server::RedisServer;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

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
    let client = redis::Client::open(url.as_str())?;
    let raw = client.get_multiplexed_async_connection().await?;
    let config = TopicConfig::default().max_messages(Some(RETAIN));

    let mut rows = Vec::new();
    let singles = 10_000 / scale;
    rows.push((
        "single publishes".to_string(),
        interleaved(
            |run| single_ours(&store, &config, run, singles),
            |run| single_raw(raw.clone(), run, singles),
        )
        .await?,
    ));
    let batches = 500 / scale;
    rows.push((
        format!("batches of {BATCH}"),
        interleaved(
            |run| batch_ours(&store, &config, run, batches),
            |run| batch_raw(raw.clone(), run, batches),
        )
        .await?,
    ));
    let retained = 50_000 / scale;
    rows.push((
        "reading retained messages".to_string(),
        interleaved(
            |run| read_ours(&store, &config, run, retained),
            |run| read_raw(raw.clone(), &client, run, retained),
        )
        .await?,
    ));
    let claimed = 5_000 / scale;
    rows.push((
        "group receive + ack".to_string(),
        interleaved(
            |run| group_ours(&store, &config, run, claimed),
            |run| group_raw(raw.clone(), &client, run, claimed),
        )
        .await?,
    ));

    println!("memq-redis against the raw redis crate, same server, same run (messages/s, median of {RUNS} runs, alternating)");
    println!();
    println!("| scenario | memq-redis | raw redis | memq-redis / raw |");
    println!("|---|---:|---:|---:|");
    for (name, (ours, raw)) in rows {
        println!("| {name} | {ours:.0} | {raw:.0} | {:.2}x |", ours / raw);
    }
    drop(server);
    Ok(())
}

/// Runs of each side.
const RUNS: u32 = 5;

/// The medians over [`RUNS`] runs of `ours(run)` and `raw(run)`, which
/// return (messages, time), run in turn (ours, raw, ours, ...) so that the
/// machine's slow moments fall on both.
async fn interleaved<A, AF, B, BF>(mut ours: A, mut raw: B) -> Result<(f64, f64)>
where
    A: FnMut(u32) -> AF,
    AF: std::future::Future<Output = Result<(u64, Duration)>>,
    B: FnMut(u32) -> BF,
    BF: std::future::Future<Output = Result<(u64, Duration)>>,
{
    let rate = |(n, elapsed): (u64, Duration)| n as f64 / elapsed.as_secs_f64();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        a.push(rate(ours(run).await?));
        b.push(rate(raw(run).await?));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(a), median(b)))
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
