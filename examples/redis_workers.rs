//! A publisher and a group of workers as separate processes, sharing
//! topics through a Redis server (7.0 or newer), with the same API as an
//! in-memory queue: only `MessageQueue::connect` differs.
//!
//! Against a server of your own (`apt-get install redis-server`, or
//! `redis-server --port 6379 --save ''`):
//!
//! ```text
//! cargo run -p tokio-memq-examples --features redis --example redis_workers -- worker redis://127.0.0.1:6379/ &
//! cargo run -p tokio-memq-examples --features redis --example redis_workers -- worker redis://127.0.0.1:6379/ &
//! cargo run -p tokio-memq-examples --features redis --example redis_workers -- publisher redis://127.0.0.1:6379/ 1000
//! ```
//!
//! Or all at once, against a `redis-server` the example starts on a free
//! port and stops at the end (it runs itself as the three processes):
//!
//! ```text
//! cargo run -p tokio-memq-examples --features redis --example redis_workers -- demo
//! ```
//!
//! Workers share the group `resizers` with manual acknowledgement: each
//! job goes to one worker, and one a worker took but did not acknowledge
//! within five seconds (it crashed, say) goes to another, with its delivery
//! count. Offsets are the same in every process.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use memq_testkit::redis_server::RedisServer;
use tokio_memq::{ConsumptionMode, MessageQueue};

type Result<T> = anyhow::Result<T>;

const TOPIC: &str = "images";
const GROUP: &str = "resizers";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["publisher", url, count] => publisher(url, count.parse()?).await,
        ["worker", url] => worker(url, None).await,
        ["worker", url, until] => worker(url, Some(until.parse()?)).await,
        ["demo"] | [] => demo().await,
        _ => anyhow::bail!("usage: redis_workers publisher URL COUNT | worker URL [TOTAL] | demo"),
    }
}

/// Publishes `count` jobs, keyed by image.
async fn publisher(url: &str, count: u64) -> Result<()> {
    let mq = MessageQueue::connect(url).await?;
    let publisher = mq.publisher(TOPIC);
    for i in 0..count {
        let image = format!("image-{i}.png");
        let offset = publisher.publish_with_key(image.clone(), image).await?;
        if offset % 10 == 0 {
            println!("publisher: job at offset {offset}");
        }
    }
    Ok(())
}

/// Takes jobs from the group, acknowledging each once done; with `total`,
/// stops once that many jobs were published and the group has handed out
/// and seen acknowledged every one (by any worker).
async fn worker(url: &str, total: Option<u64>) -> Result<()> {
    let mq = MessageQueue::connect(url).await?;
    let jobs = mq
        .group(TOPIC, GROUP)
        .mode(ConsumptionMode::Earliest)
        .manual_ack()
        .ack_timeout(Duration::from_secs(5))
        .join()
        .await?;
    let me = std::process::id();
    loop {
        // A receive dropped by the timeout loses nothing.
        let Some(job) = jobs.recv_timeout(Duration::from_millis(500)).await? else {
            if let Some(total) = total {
                let published = mq.get_topic_stats(TOPIC).await.map_or(0, |s| s.next_offset);
                let group = mq.get_group_stats(TOPIC, GROUP).await;
                if published >= total && group.is_some_and(|g| g.lag == 0 && g.pending == 0) {
                    return Ok(());
                }
            }
            continue;
        };
        let image: String = job.deserialize()?;
        println!(
            "worker {me}: resized {image} (offset {}, delivery {})",
            job.offset(),
            job.deliveries
        );
        jobs.ack(&job)?;
    }
}

/// Starts a server, then this example as two workers and a publisher.
async fn demo() -> Result<()> {
    let Some(server) = RedisServer::start() else {
        anyhow::bail!("redis-server is not installed (apt-get install redis-server)");
    };
    let url = server.url();
    let me = std::env::current_exe()?;
    let run = |args: &[&str]| -> std::io::Result<Child> {
        Command::new(&me).args(args).stdout(Stdio::inherit()).spawn()
    };
    // 20 jobs: the workers stop once all 20 are done, by either of them.
    let mut roles = vec![
        run(&["publisher", &url, "20"])?,
        run(&["worker", &url, "20"])?,
        run(&["worker", &url, "20"])?,
    ]
    .into_iter();
    while let Some(mut child) = roles.next() {
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        if !status.success() {
            // The others would wait for jobs that never come.
            for mut other in roles {
                let _ = other.kill();
                let _ = other.wait();
            }
            anyhow::bail!("a role failed: {status}");
        }
    }
    let mq = MessageQueue::connect(&url).await?;
    let stats = mq
        .get_group_stats(TOPIC, GROUP)
        .await
        .ok_or_else(|| anyhow::anyhow!("the group exists"))?;
    println!(
        "demo: every job done (lag {}, pending {})",
        stats.lag, stats.pending
    );
    Ok(())
}
