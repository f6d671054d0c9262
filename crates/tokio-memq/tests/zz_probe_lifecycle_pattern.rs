//! Probe (lifecycle): wildcard subscriptions and the registry's end of
//! life (no queue handle left; publishers that may still create topics).

use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue, PatternRecvError};

async fn t<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f).await.expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_sees_a_topic_created_after_the_queue_is_gone_then_ends() {
    let mq = MessageQueue::new();
    let pat = mq.subscribe_pattern("a.*").unwrap();
    let p = mq.publisher("a.x");
    drop(mq);
    let h = tokio::spawn(async move {
        let first = pat.recv().await.map(|m| (m.topic().to_string(), m.offset()));
        let second = pat.recv().await.map(|m| m.offset());
        (first, second)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.publish(1u8).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(p);
    let (first, second) = t(h).await.unwrap();
    assert_eq!(first, Ok(("a.x".to_string(), 0)));
    assert_eq!(second, Err(PatternRecvError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_ends_when_an_unrelated_last_publisher_goes() {
    for unrelated_published in [false, true] {
        let mq = MessageQueue::new();
        let pat = mq.subscribe_pattern("a.*").unwrap();
        let p = mq.publisher("zzz");
        if unrelated_published {
            p.publish(1u8).await.unwrap();
        }
        drop(mq);
        let h = tokio::spawn(async move { pat.recv().await.map(|m| m.offset()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!h.is_finished(), "a publisher may still create a matching topic? (it is for zzz only)");
        drop(p);
        assert_eq!(t(h).await.unwrap(), Err(PatternRecvError::Closed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_ends_when_the_last_dead_letter_member_goes() {
    let mq = MessageQueue::new();
    let pat = mq.subscribe_pattern("q.*").unwrap();
    let member = mq
        .group("jobs", "w")
        .manual_ack()
        .max_deliveries(1)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    drop(mq);
    let h = tokio::spawn(async move { pat.recv().await.map(|m| m.offset()) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(member);
    assert_eq!(t(h).await.unwrap(), Err(PatternRecvError::Closed));
}

#[tokio::test(flavor = "current_thread")]
async fn a_pattern_subscriber_outlives_the_queue_with_a_deleted_and_recreated_topic() {
    let mq = MessageQueue::new();
    let pat = mq.subscribe_pattern("a.>").unwrap();
    let old = mq.publisher("a.b");
    old.publish(1u8).await.unwrap(); // created after subscribing: from its first
    assert!(mq.delete_topic("a.b").await);
    let new = mq.publisher("a.b");
    new.publish(2u8).await.unwrap();
    drop(mq);
    let mut got = Vec::new();
    got.push(t(pat.recv()).await.map(|m| (m.deserialize::<u8>().unwrap(), m.offset())));
    got.push(t(pat.recv()).await.map(|m| (m.deserialize::<u8>().unwrap(), m.offset())));
    got.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(got, [Ok((1, 0)), Ok((2, 0))]);
    assert_eq!(old.publish(3u8).await.map_err(|e| e.kind()), Err(tokio_memq::PublishErrorKind::Closed));
    drop((old, new));
    assert_eq!(t(pat.recv()).await.map(|m| m.offset()), Err(PatternRecvError::Closed));
}
