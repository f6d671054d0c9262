//! A group never loses a wake-up: closing wakes every parked member, and
//! a claim that took the partition's wake-up registration with it leaves
//! one behind for the members still parked.

use std::sync::Arc;
use std::time::Duration;

use memq_core::{RecvError, StartFrom, Topic, TopicConfig};
use memq_groups::{Group, GroupConfig, Member};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Far longer than anything here takes; under paused time a hang reaches
/// it at once.
const LIMIT: Duration = Duration::from_secs(60);

/// Waits for `recv` up to [`LIMIT`], and says whether any (paused) time
/// passed: a member that was never woken is polled again by the timeout
/// when it fires, and would then find the topic closed.
async fn recv_now(m: &Member<u64>) -> Result<Result<u64, RecvError>, Duration> {
    let start = Instant::now();
    match tokio::time::timeout(LIMIT, m.recv()).await {
        Ok(r) if start.elapsed().is_zero() => Ok(r.map(|c| c.value)),
        _ => Err(start.elapsed()),
    }
}

fn topic() -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(16))).unwrap()
}

/// Lets spawned tasks run until they park (current-thread runtime).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// Bug A: four members parked in `recv`; closing the topic woke one (it
/// got `Closed`) and the other three hung. (The members stay alive: a
/// member that leaves wakes the others, which hid the bug.)
#[tokio::test(start_paused = true)]
async fn closing_the_topic_wakes_every_parked_member() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let members: Vec<_> = (0..4)
        .map(|_| Arc::new(group.join(StartFrom::Earliest).unwrap()))
        .collect();
    let tasks: Vec<_> = members
        .iter()
        .map(|m| {
            let m = m.clone();
            tokio::spawn(async move { recv_now(&m).await })
        })
        .collect();
    settle().await;
    t.close();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for (i, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Ok(Err(RecvError::Closed))),
            "member {i}: {r:?} (a duration means it was never woken)"
        );
    }
    drop(members);
}

/// As above with two partitions, one with messages received just before
/// both close: every member ends with `Closed`, and every message is
/// received once. (Before the fix one member hung: each close woke one
/// member at most.)
#[tokio::test(start_paused = true)]
async fn closing_partitions_wakes_every_member_after_the_drain() {
    let parts = vec![topic(), topic()];
    let group = Group::new("g", parts.clone(), GroupConfig::default()).unwrap();
    let members: Vec<_> = (0..3)
        .map(|_| Arc::new(group.join(StartFrom::Earliest).unwrap()))
        .collect();
    let tasks: Vec<_> = members
        .iter()
        .map(|m| {
            let m = m.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    match recv_now(&m).await {
                        Ok(Ok(v)) => got.push(v),
                        Ok(Err(RecvError::Closed)) => return Ok(got),
                        other => return Err(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    settle().await;
    parts[0].try_publish(0).unwrap();
    parts[0].try_publish(1).unwrap();
    settle().await;
    for t in &parts {
        t.close();
    }
    let mut all = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(got) => all.extend(got),
            Err(e) => panic!("member {i} never saw Closed: {e}"),
        }
    }
    all.sort_unstable();
    assert_eq!(all, vec![0, 1]);
    drop(members);
}

/// Bug B: two members parked; the one woken for message 0 takes it and
/// then keeps its handle without receiving again. Its claim used up the
/// partition's wake-up registration, so the publish of message 1 woke
/// nobody and the other member stayed parked (group stats: lag 1,
/// pending 0).
#[tokio::test(start_paused = true)]
async fn a_claim_leaves_the_wake_up_armed_for_the_members_still_parked() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut holds = Vec::new();
    for i in 0..2 {
        let m = group.join(StartFrom::Earliest).unwrap();
        let done = done_tx.clone();
        let (hold_tx, hold_rx) = oneshot::channel::<()>();
        holds.push(hold_tx);
        tokio::spawn(async move {
            let c = m.recv().await;
            done.send((i, c.map(|c| c.value))).unwrap();
            // Keeps the member, receiving nothing more.
            let _ = hold_rx.await;
            drop(m);
        });
    }
    settle().await;
    t.try_publish(0).unwrap();
    let (first, value) = tokio::time::timeout(LIMIT, done_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, Ok(0));
    t.try_publish(1).unwrap();
    let second = tokio::time::timeout(LIMIT, done_rx.recv()).await;
    let Ok(Some((other, value))) = second else {
        panic!("the other member was never woken; group {:?}", group.stats());
    };
    assert_ne!(first, other);
    assert_eq!(value, Ok(1));
    drop(holds);
}
