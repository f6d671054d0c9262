//! Consumer groups share the work fairly: a publish wakes the member that
//! has waited longest, and the message is kept for it, so members that
//! each do almost no work per message take turns instead of one of them
//! winning every race.
//!
//! Regression: a publish woke the first parked member by slot index, so
//! the member that parked again soonest won every time (2 members, 1,000
//! of 1,000 messages to one).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{Group, GroupConfig};
use tokio::sync::Notify;

const LIMIT: Duration = Duration::from_secs(30);

/// `members` tasks looping on `recv`, a publisher task yielding between
/// publishes; returns what each member received.
async fn run(members: usize, total: u64) -> Vec<Vec<u64>> {
    let topic = Topic::new(TopicConfig::default().max_messages(Some(total as usize))).unwrap();
    let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
    let got: Arc<Vec<Mutex<Vec<u64>>>> = Arc::new((0..members).map(|_| Mutex::default()).collect());
    let delivered = Arc::new(AtomicU64::new(0));
    let all_in = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..members {
        let member = group.join(StartFrom::Earliest).unwrap();
        let (got, delivered, all_in) = (got.clone(), delivered.clone(), all_in.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(c) = member.recv().await {
                got[i].lock().unwrap().push(c.value);
                if delivered.fetch_add(1, Ordering::Relaxed) + 1 == total {
                    all_in.notify_one();
                }
            }
        }));
    }
    // Let every member park before the first publish.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let publisher = tokio::spawn(async move {
        for i in 0..total {
            topic.publish(i).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    tokio::time::timeout(LIMIT, all_in.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {total} delivered; group {:?}",
                delivered.load(Ordering::Relaxed),
                group.stats()
            )
        });
    publisher.await.unwrap();
    for t in &tasks {
        t.abort();
    }
    got.iter().map(|m| m.lock().unwrap().clone()).collect()
}

/// Every message once, and every member at least a third of its even
/// share.
fn assert_fair(got: &[Vec<u64>], total: u64) {
    let shares: Vec<usize> = got.iter().map(Vec::len).collect();
    let all: Vec<u64> = got.iter().flatten().copied().collect();
    assert_eq!(all.len() as u64, total, "shares {shares:?}");
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len() as u64, total, "no duplicates");
    assert!(distinct.iter().all(|v| *v < total));
    eprintln!("shares of {total}: {shares:?}");
    let floor = total as usize / got.len() / 3;
    assert!(
        shares.iter().all(|s| *s >= floor),
        "every member gets at least {floor} of {total}: {shares:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn two_members_share_the_work_current_thread() {
    let got = run(2, 1_000).await;
    assert_fair(&got, 1_000);
}

#[tokio::test(flavor = "current_thread")]
async fn eight_members_share_the_work_current_thread() {
    let got = run(8, 2_000).await;
    assert_fair(&got, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_the_work_multi_thread() {
    let got = run(2, 1_000).await;
    assert_fair(&got, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_members_share_the_work_multi_thread() {
    let got = run(8, 2_000).await;
    assert_fair(&got, 2_000);
}
