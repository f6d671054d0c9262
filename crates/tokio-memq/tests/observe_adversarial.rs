//! Adversarial checks of `snapshot()` and `record_metrics()` (a review of
//! 2026-12-02): totals across a topic deleted and made again, and
//! snapshots taken while everything else runs.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::timeout;
use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};

const T: Duration = Duration::from_secs(20);

/// Every metric `record_metrics` records now, as `name{k=v,...}`.
fn record(mq: &MessageQueue) -> BTreeMap<String, DebugValue> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || mq.record_metrics());
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(m: &BTreeMap<String, DebugValue>, n: &str) -> u64 {
    match m.get(n) {
        Some(DebugValue::Counter(v)) => *v,
        other => panic!("{n}: {other:?} in {m:#?}"),
    }
}

/// A topic deleted and created again starts its totals over at 0: the
/// messages of the old topic a wildcard subscription reads afterwards are
/// not deliveries of the new one (they were: the subscriber took its
/// count by name when it adopted the old topic, after the new one had the
/// name).
#[tokio::test]
async fn delivered_total_does_not_leak_across_incarnations_through_a_pattern() {
    timeout(T, async {
        let mq = MessageQueue::new();
        let pattern = mq.subscribe_pattern("q.*").unwrap();
        // The first `q.a`: three messages the wildcard subscription has not read.
        mq.publisher("q.a").publish_batch(vec![1u8, 2, 3]).await.unwrap();
        assert!(mq.delete_topic("q.a").await);
        // The second `q.a`: nothing published, nothing delivered.
        mq.create_topic("q.a", TopicOptions::default()).await.unwrap();
        for _ in 0..3 {
            pattern.recv().await.unwrap();
        }
        let m = record(&mq);
        assert_eq!(counter(&m, "memq_messages_published_total{topic=q.a}"), 0);
        assert_eq!(
            counter(&m, "memq_messages_delivered_total{topic=q.a}"),
            0,
            "the old topic's deliveries counted for the new one"
        );
    })
    .await
    .unwrap();
}

/// `snapshot` and `record_metrics` in a loop while publishers, members of
/// automatic and manual groups, wildcard subscribers and deletes run: no
/// deadlock, and every snapshot's counts agree with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_under_load_never_hang_or_contradict_themselves() {
    let mq = MessageQueue::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..3 {
        let mq = mq.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("load.{t}");
            let small = TopicOptions {
                max_messages: Some(50),
                ..TopicOptions::default()
            };
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                if t == 2 {
                    let _ = mq.create_partitioned_topic(&name, small.clone(), 3).await;
                } else {
                    let _ = mq.create_topic(&name, small.clone()).await;
                }
                let auto = mq
                    .group(&name, "auto")
                    .mode(ConsumptionMode::Earliest)
                    .join()
                    .await;
                let manual = mq
                    .group(&name, "manual")
                    .manual_ack()
                    .max_deliveries(2)
                    .mode(ConsumptionMode::Earliest)
                    .join()
                    .await;
                let p = mq.publisher(&name);
                for i in 0..200u32 {
                    if p.publish(i).await.is_err() {
                        break;
                    }
                    if let Ok(a) = &auto {
                        let _ = a.try_recv_now();
                    }
                    if let Ok(m) = &manual {
                        if let Ok(msg) = m.try_recv_now() {
                            if i % 3 == 0 {
                                let _ = m.nack(&msg);
                            } else {
                                let _ = m.ack(&msg);
                            }
                        }
                    }
                }
                if round % 2 == 0 {
                    mq.delete_topic(&name).await;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let pat = mq.subscribe_pattern("load.*").unwrap();
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = tokio::time::timeout(Duration::from_millis(5), pat.recv()).await;
            }
        })
    };
    let checker = {
        let mq = mq.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut problems = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = record(&mq);
                for t in mq.snapshot() {
                    let s = &t.stats;
                    if s.message_count as u64 > s.published
                        || s.evicted + s.expired > s.published
                        || (t.partitions.is_empty() && s.next_offset != s.published)
                        || (t.partitions.is_empty() && s.next_offset - s.low_offset != s.message_count as u64)
                    {
                        problems.push(format!("{t:?}"));
                    }
                    for g in &t.groups {
                        if g.lag > s.published || g.pending as u64 > g.lag {
                            problems.push(format!("{}: {g:?}", t.name));
                        }
                    }
                }
            }
            problems
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let problems = timeout(T, checker).await.expect("snapshot hung").unwrap();
    for t in tasks {
        timeout(T, t).await.expect("a worker hung").unwrap();
    }
    timeout(T, reader)
        .await
        .expect("the pattern reader hung")
        .unwrap();
    assert!(
        problems.is_empty(),
        "{} contradictions, first: {:?}",
        problems.len(),
        problems.first()
    );
}
