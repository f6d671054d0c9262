//! Exclusive groups are told `Closed` together: a member owning no
//! partition hears of the partitions' closing whatever their owner does
//! (parks, takes the last message without parking, or a publish fired
//! the relay meanwhile). Found by review: the first fix armed the relays
//! of other members' partitions only in the parking member's own claim,
//! which a message waiting there (or a publish since) left disarmed.

use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig, TryRecvError};
use memq_groups::{Assignment, Group, GroupConfig};

const T: Duration = Duration::from_secs(10);

/// everything". B hangs instead.
#[tokio::test]
async fn exclusive_member_owning_nothing_hears_of_close_after_owner_drains() {
    let topic: Topic<u32> = Topic::new(TopicConfig::default()).unwrap();
    let group = Group::new(
        "g",
        vec![topic.clone()],
        GroupConfig::default().assignment(Assignment::Exclusive),
    )
    .unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    topic.try_publish(1).unwrap();
    let parked = tokio::spawn(async move { (b.recv().await.map(|c| c.offset), b) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.try_recv().unwrap().offset, 0);
    topic.close();
    let got = tokio::time::timeout(T, parked).await;
    assert!(
        matches!(got, Ok(Ok((Err(memq_core::RecvError::Closed), _)))),
        "B should be told Closed; got {got:?}"
    );
    drop(a);
}

/// the topic closes: nothing is armed, B is never told.
#[tokio::test]
async fn exclusive_member_owning_nothing_hears_of_close_after_a_publish() {
    let topic: Topic<u32> = Topic::new(TopicConfig::default()).unwrap();
    let group = Group::new(
        "g",
        vec![topic.clone()],
        GroupConfig::default().assignment(Assignment::Exclusive),
    )
    .unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    let parked = tokio::spawn(async move { (b.recv().await.map(|c| c.offset), b) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    topic.try_publish(1).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.try_recv().unwrap().offset, 0);
    topic.close();
    let got = tokio::time::timeout(T, parked).await;
    assert!(
        matches!(got, Ok(Ok((Err(memq_core::RecvError::Closed), _)))),
        "B should be told Closed; got {got:?}"
    );
    drop(a);
}

/// Control: once A looks again (and is told Closed), B is woken.
#[tokio::test]
async fn control_owner_looking_again_wakes_the_other() {
    let topic: Topic<u32> = Topic::new(TopicConfig::default()).unwrap();
    let group = Group::new(
        "g",
        vec![topic.clone()],
        GroupConfig::default().assignment(Assignment::Exclusive),
    )
    .unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    topic.try_publish(1).unwrap();
    let parked = tokio::spawn(async move { (b.recv().await.map(|c| c.offset), b) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(a.try_recv().unwrap().offset, 0);
    topic.close();
    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Closed);
    let got = tokio::time::timeout(T, parked).await;
    assert!(
        matches!(got, Ok(Ok((Err(memq_core::RecvError::Closed), _)))),
        "B should be told Closed; got {got:?}"
    );
}
