//! A publisher and a group of workers as separate processes, sharing
//! topics through a Redis server (7.0 or newer).
//!
//! Against a server of your own (`apt-get install redis-server`, or
//! `redis-server --port 6379 --save ''`):
//!
//! ```text
//! cargo run -p memq-redis --example workers -- worker redis://127.0.0.1:6379/ alice &
//! cargo run -p memq-redis --example workers -- worker redis://127.0.0.1:6379/ bob &
//! cargo run -p memq-redis --example workers -- publisher redis://127.0.0.1:6379/ 1000
//! ```
//!
//! Or all at once, against a `redis-server` the example starts on a free
//! port and stops at the end (it runs itself as the three processes):
//!
//! ```text
//! cargo run -p memq-redis --example workers -- demo
//! ```
//!
//! Workers share the group `resizers` with manual acknowledgement: each
//! job goes to one worker, and one a worker took but did not acknowledge
//! within five seconds (it crashed, say) goes to another, with its delivery
//! count. Offsets are the same in every process.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use memq_redis::{GroupConfig, Message, Start, Store, TopicConfig};
use memq_testkit::redis_server::RedisServer;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const TOPIC: &str = "images";
const GROUP: &str = "resizers";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["publisher", url, count] => publisher(url, count.parse()?).await,
        ["worker", url, name] => worker(url, name, None).await,
        ["worker", url, name, until] => worker(url, name, Some(until.parse()?)).await,
        ["demo"] | [] => demo().await,
        _ => Err("usage: workers publisher URL COUNT | worker URL NAME [TOTAL] | demo".into()),
    }
}

/// Publishes `count` jobs, keyed by image, in batches of 100.
async fn publisher(url: &str, count: u64) -> Result<()> {
    let store = Store::connect(url).await?;
    let topic = store.topic(TOPIC, TopicConfig::default()).await?;
    let mut sent = 0;
    while sent < count {
        let n = (count - sent).min(100);
        let names: Vec<String> = (sent..sent + n).map(|i| format!("image-{i}.png")).collect();
        let batch: Vec<Message<'_>> = names
            .iter()
            .map(|name| Message::new(name.as_bytes()).key(name))
            .collect();
        let offsets = topic.publish_messages(&batch).await?;
        println!("publisher: jobs at offsets {offsets:?}");
        sent += n;
    }
    Ok(())
}

/// Takes jobs from the group, acknowledging each once done; with `total`,
/// stops once that many jobs were published and the group has handed out
/// and seen acknowledged every one (by any worker).
async fn worker(url: &str, name: &str, total: Option<u64>) -> Result<()> {
    let store = Store::connect(url).await?;
    let topic = store.topic(TOPIC, TopicConfig::default()).await?;
    let config = GroupConfig::default()
        .manual(Duration::from_secs(5))
        .start(Start::Earliest);
    let mut member = topic.join(GROUP, name, config).await?;
    loop {
        // A receive dropped by the timeout loses nothing.
        let Ok(job) = tokio::time::timeout(Duration::from_millis(500), member.recv()).await else {
            if let Some(total) = total {
                let (_, published) = topic.bounds().await?;
                let stats = topic.group_stats(GROUP).await?.ok_or("the group exists")?;
                if published >= total && stats.lag == 0 && stats.pending == 0 {
                    return Ok(());
                }
            }
            continue;
        };
        let job = job?;
        let image = String::from_utf8_lossy(&job.record.payload);
        println!(
            "{name}: resized {image} (offset {}, delivery {})",
            job.record.offset, job.deliveries
        );
        member.ack(job.record.offset).await?;
    }
}

/// Starts a server, then this example as two workers and a publisher.
async fn demo() -> Result<()> {
    let Some(server) = RedisServer::start() else {
        return Err("redis-server is not installed (apt-get install redis-server)".into());
    };
    let url = server.url();
    let me = std::env::current_exe()?;
    let run = |args: &[&str]| -> std::io::Result<Child> {
        Command::new(&me).args(args).stdout(Stdio::inherit()).spawn()
    };
    // 20 jobs: the workers stop once all 20 are done, by either of them.
    let mut roles = vec![
        run(&["publisher", &url, "20"])?,
        run(&["worker", &url, "alice", "20"])?,
        run(&["worker", &url, "bob", "20"])?,
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
            return Err(format!("a role failed: {status}").into());
        }
    }
    let store = Store::connect(&url).await?;
    let stats = store
        .topic(TOPIC, TopicConfig::default())
        .await?
        .group_stats(GROUP)
        .await?
        .ok_or("the group exists")?;
    println!(
        "demo: every job done (lag {}, pending {})",
        stats.lag, stats.pending
    );
    Ok(())
}
