//! Exclusive groups are told `Closed` together: a member owning no
//! partition hears of the partitions' closing whatever their owner does
//! (parks, takes the last message without parking, or a publish fired
//! the relay meanwhile). Found by review: the first fix armed the relays
//! of other members' partitions only in the parking member's own claim,
//! which a message waiting there (or a publish since) left disarmed.

use std::time::Duration;

use memq_core::{RecvError, StartFrom, Topic, TopicConfig, TryRecvError};
use memq_groups::{Assignment, Group, GroupConfig, Member};

const T: Duration = Duration::from_secs(10);

/// An exclusive group on one partition: `a` owns it, `b` owns nothing.
fn owner_and_idle() -> (Topic<u32>, Group<u32>, Member<u32>, Member<u32>) {
    let topic: Topic<u32> = Topic::new(TopicConfig::default()).unwrap();
    let config = GroupConfig::default().assignment(Assignment::Exclusive);
    let group = Group::new("g", vec![topic.clone()], config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    (topic, group, a, b)
}

/// `b`'s receive, parked in a task of its own.
async fn park(b: Member<u32>) -> tokio::task::JoinHandle<(Result<u64, RecvError>, Member<u32>)> {
    let parked = tokio::spawn(async move { (b.recv().await.map(|c| c.offset), b) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    parked
}

async fn assert_told_closed(parked: tokio::task::JoinHandle<(Result<u64, RecvError>, Member<u32>)>) {
    let got = tokio::time::timeout(T, parked).await;
    assert!(
        matches!(got, Ok(Ok((Err(RecvError::Closed), _)))),
        "b should be told Closed; got {got:?}"
    );
}

/// `b` parks while the partition holds a message (so its claim cannot arm
/// the relay), `a` takes it without parking, then the topic closes.
#[tokio::test]
async fn exclusive_member_owning_nothing_hears_of_close_after_owner_drains() {
    let (topic, _group, a, b) = owner_and_idle();
    topic.try_publish(1).unwrap();
    let parked = park(b).await;
    assert_eq!(a.try_recv().unwrap().offset, 0);
    topic.close();
    assert_told_closed(parked).await;
}

/// `b` parks while the partition is empty; a publish fires the relay
/// (waking nobody who may read it: `a` is not parked) and disarms it; `a`
/// takes the message without parking; the topic closes.
#[tokio::test]
async fn exclusive_member_owning_nothing_hears_of_close_after_a_publish() {
    let (topic, _group, a, b) = owner_and_idle();
    let parked = park(b).await;
    topic.try_publish(1).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.try_recv().unwrap().offset, 0);
    topic.close();
    assert_told_closed(parked).await;
}

/// And once `a` looks again (and is told `Closed`), `b` is woken.
#[tokio::test]
async fn the_owner_told_closed_wakes_the_other() {
    let (topic, _group, a, b) = owner_and_idle();
    topic.try_publish(1).unwrap();
    let parked = park(b).await;
    assert_eq!(a.try_recv().unwrap().offset, 0);
    topic.close();
    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Closed);
    assert_told_closed(parked).await;
}
