//! Three processes against one `redis-server`: this test binary runs
//! itself again in two roles. One process publishes 10,000 keyed messages;
//! two others share a consumer group with manual acknowledgement. The
//! first worker, after 2,000 acknowledgements, takes one more message and
//! is killed (SIGKILL) while holding it. Every offset must be acknowledged
//! exactly once, and the message the killed worker held must reach the
//! other worker with a delivery count of at least 2.
//!
//! Without `redis-server` the test says it skipped; with `CI` set, a
//! missing server fails it (`.ci/run` installs it).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memq_redis::{GroupConfig, Message, Start, Store, TopicConfig};
use memq_testkit::redis_server::RedisServer;

const MESSAGES: u64 = 10_000;
const KILL_AFTER: usize = 2_000;
const TOPIC: &str = "cross-process";
const GROUP: &str = "workers";
const LIMIT: Duration = Duration::from_secs(120);

/// A child process of this binary, killed when dropped.
struct Role(Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(role: &str, url: &str, log: &Path) -> Role {
    let child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["role", "--exact", "--nocapture", "--test-threads=1"])
        .env("MEMQ_ROLE", role)
        .env("MEMQ_URL", url)
        .env("MEMQ_LOG", log)
        .stdout(Stdio::null())
        .spawn()
        .expect("the test binary runs again");
    Role(child)
}

/// The lines of a role's log written so far.
fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `(offset, deliveries)` of each "ack" line.
fn acks(log: &Path) -> Vec<(u64, u64)> {
    lines(log)
        .iter()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("ack ")?.split(' ');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_group_across_processes_acknowledges_every_offset_once_when_a_worker_is_killed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let dir = std::env::temp_dir().join(format!("memq-cross-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = |name: &str| -> PathBuf { dir.join(name) };
    // The group exists before anything is published, from offset 0.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        let topic = store
            .topic(TOPIC, TopicConfig::default().max_messages(None))
            .await
            .unwrap();
        drop(topic.join(GROUP, "setup", config()).await.unwrap());
    });

    let doomed = spawn("doomed", &url, &log("doomed"));
    let survivor = spawn("survivor", &url, &log("survivor"));
    let publisher = spawn("publisher", &url, &log("publisher"));

    // The doomed worker holds one message it will never acknowledge.
    wait_for("the doomed worker to hold a message", || {
        lines(&log("doomed")).iter().any(|l| l.starts_with("holding "))
    });
    let held: u64 = lines(&log("doomed"))
        .iter()
        .find_map(|l| l.strip_prefix("holding ")?.parse().ok())
        .unwrap();
    drop(doomed); // SIGKILL
    wait_for("every offset to be acknowledged", || {
        acks(&log("doomed")).len() + acks(&log("survivor")).len() >= MESSAGES as usize
    });
    drop(publisher);
    drop(survivor);

    let mut acked: BTreeMap<u64, Vec<(&str, u64)>> = BTreeMap::new();
    let (doomed_acks, survivor_acks) = (acks(&log("doomed")), acks(&log("survivor")));
    assert_eq!(
        doomed_acks.len(),
        KILL_AFTER,
        "the doomed worker acknowledged {KILL_AFTER}"
    );
    for (who, list) in [("doomed", &doomed_acks), ("survivor", &survivor_acks)] {
        for &(offset, deliveries) in list {
            acked.entry(offset).or_default().push((who, deliveries));
        }
    }
    let twice: Vec<_> = acked.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "acknowledged more than once: {twice:?}");
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..MESSAGES).collect::<Vec<_>>(),
        "every offset acknowledged"
    );
    let taken_over = &acked[&held];
    assert_eq!(taken_over.len(), 1);
    assert_eq!(
        taken_over[0].0, "survivor",
        "the held message went to the other worker"
    );
    assert!(taken_over[0].1 >= 2, "with its delivery count: {taken_over:?}");
    runtime.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        let topic = store.topic(TOPIC, TopicConfig::default()).await.unwrap();
        assert_eq!(topic.pending(GROUP).await.unwrap(), 0, "nothing left pending");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn config() -> GroupConfig {
    GroupConfig::default()
        .manual(Duration::from_millis(500))
        .start(Start::Earliest)
}

/// The roles, run only as a child of the test above (`MEMQ_ROLE` set).
#[test]
fn role() {
    let (Ok(role), Ok(url), Ok(log)) = (
        std::env::var("MEMQ_ROLE"),
        std::env::var("MEMQ_URL"),
        std::env::var("MEMQ_LOG"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Store::connect(&url).await.unwrap();
        let topic = store.topic(TOPIC, TopicConfig::default()).await.unwrap();
        let mut out = std::fs::File::create(&log).unwrap();
        if role == "publisher" {
            for first in (0..MESSAGES).step_by(100) {
                let keys: Vec<String> = (first..first + 100).map(|i| format!("k{}", i % 16)).collect();
                let payloads: Vec<[u8; 8]> = (first..first + 100).map(u64::to_be_bytes).collect();
                let batch: Vec<Message<'_>> = payloads
                    .iter()
                    .zip(&keys)
                    .map(|(p, k)| Message::new(p).key(k))
                    .collect();
                assert_eq!(topic.publish_messages(&batch).await.unwrap(), first..first + 100);
            }
            writeln!(out, "published {MESSAGES}").unwrap();
            std::future::pending::<()>().await;
        }
        let mut member = topic.join(GROUP, &role, config()).await.unwrap();
        let mut done = 0;
        loop {
            let d = member.recv().await.unwrap();
            let offset = d.record.offset;
            assert_eq!(
                d.record.payload[..],
                offset.to_be_bytes(),
                "the message at its offset"
            );
            assert_eq!(
                d.record.key.as_deref(),
                Some(format!("k{}", offset % 16).as_str())
            );
            if role == "doomed" && done == KILL_AFTER {
                writeln!(out, "holding {offset}").unwrap();
                out.flush().unwrap();
                std::future::pending::<()>().await;
            }
            member.ack(offset).await.unwrap();
            writeln!(out, "ack {offset} {}", d.deliveries).unwrap();
            out.flush().unwrap();
            done += 1;
        }
    });
}
