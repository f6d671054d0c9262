//! A thread that is not async (a UI thread, a C callback, a game loop)
//! hands work to async workers and reads the results back, with the
//! blocking handles: `blocking_publish` and `blocking_recv_timeout` on
//! the plain thread, `recv_typed` and `publish` in the workers.
//!
//! `cargo run --example blocking_worker`

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_memq::{ConsumptionMode, MessageQueue, RecvError, RecvTypedError, Subscriber, TopicOptions};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    id: u32,
    width: u32,
    height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Done {
    id: u32,
    worker: usize,
    pixels: u64,
}

fn main() -> anyhow::Result<()> {
    let done = run(24)?;
    let workers: BTreeSet<usize> = done.iter().map(|d| d.worker).collect();
    println!("ui: {} results from workers {workers:?}", done.len());
    Ok(())
}

/// Runs `jobs` jobs through three async workers and returns the results
/// in the order the "UI" thread received them.
fn run(jobs: u32) -> anyhow::Result<Vec<Done>> {
    let mq = MessageQueue::new();
    // The async side: its own runtime threads. The thread calling `run`
    // never enters it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Room for four waiting jobs: the UI thread waits when the workers
    // fall behind, instead of queueing without bound.
    let jobs_topic = TopicOptions {
        max_messages: Some(4),
        lru_enabled: false,
        ..TopicOptions::default()
    };
    for worker in 0..3 {
        let member = mq
            .group("jobs", "resizers")
            .options(jobs_topic.clone())
            .mode(ConsumptionMode::Earliest)
            .blocking_join()?;
        rt.spawn(work(worker, member, mq.clone()));
    }
    let results = mq.blocking_subscriber("results", ConsumptionMode::Earliest)?;

    // The "UI" thread: a plain thread, no runtime.
    let publisher = mq.publisher("jobs");
    let mut done = Vec::new();
    let mut next = 0;
    while done.len() < jobs as usize {
        if next < jobs {
            let job = Job {
                id: next,
                width: 640 + next,
                height: 480,
            };
            publisher.blocking_publish(job)?;
            next += 1;
        }
        // Stay responsive: wait a little for a result, then go on with
        // the frame.
        match results.blocking_recv_timeout(Duration::from_millis(5))? {
            Some(msg) => {
                let result: Done = msg.deserialize()?;
                println!(
                    "ui: job {} done by worker {} ({} pixels)",
                    result.id, result.worker, result.pixels
                );
                done.push(result);
            }
            None => println!("ui: {} of {jobs} done, drawing a frame", done.len()),
        }
    }
    mq.close(); // the workers see `Closed` and return
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(done)
}

/// An async worker of the `resizers` group: each job goes to one worker.
async fn work(worker: usize, member: Subscriber, mq: MessageQueue) {
    let results = mq.publisher("results");
    loop {
        match member.recv_typed::<Job>().await {
            Ok(job) => {
                tokio::time::sleep(Duration::from_millis(2)).await; // the work
                let done = Done {
                    id: job.id,
                    worker,
                    pixels: u64::from(job.width) * u64::from(job.height),
                };
                if results.publish(done).await.is_err() {
                    return; // the queue closed
                }
            }
            Err(RecvTypedError::Recv(RecvError::Lagged(n))) => eprintln!("worker {worker}: {n} jobs lost"),
            Err(RecvTypedError::Decode(e)) => eprintln!("worker {worker}: bad job: {e}"),
            Err(_closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example does what it says: every job done once, by the
    /// workers, read back on the plain thread.
    #[test]
    fn every_job_comes_back_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(run(50).map_err(|e| e.to_string())));
        let done = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("finished in time")
            .unwrap();
        let ids: Vec<u32> = {
            let mut ids: Vec<u32> = done.iter().map(|d| d.id).collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        for d in &done {
            assert_eq!(d.pixels, u64::from(640 + d.id) * 480);
            assert!(d.worker < 3);
        }
    }
}
