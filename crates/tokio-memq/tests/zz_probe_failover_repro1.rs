//! Probe (failover) repro: a member that fails makes a *healthy* member
//! lose its partition and the message it is working on.

use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, TopicMessage, TopicOptions};

#[tokio::test(start_paused = true)]
async fn a_failing_member_takes_a_healthy_members_partition_away() {
    const T: Duration = Duration::from_millis(30);
    tokio::time::timeout(Duration::from_secs(10), async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("t", TopicOptions::default(), 3).await.unwrap();
        let join = || {
            mq.group("t", "g")
                .exclusive()
                .manual_ack()
                .ack_timeout(T)
                .mode(ConsumptionMode::Earliest)
                .join()
        };
        // Members joined in this order own partitions 0, 1, 2.
        let (a, b, c) = (join().await.unwrap(), join().await.unwrap(), join().await.unwrap());
        let publish = |p: usize| {
            let mq = mq.clone();
            async move {
                mq.set_partition_routing("t", PartitionRouting::Fixed(p)).await.unwrap();
                mq.publish_to_partitioned(TopicMessage::new("t", p as u32).unwrap()).await.unwrap()
            }
        };
        publish(1).await;
        let held_by_b = b.try_recv_now().unwrap(); // b then hangs, never acks
        assert_eq!(held_by_b.partition, Some(1));
        tokio::time::sleep(T / 2).await;
        publish(2).await;
        let work_of_c = c.try_recv_now().unwrap(); // c is healthy and busy with it
        assert_eq!(work_of_c.partition, Some(2));
        tokio::time::sleep(T / 2 + Duration::from_millis(1)).await;
        // b has failed (T without activity); c received T/2 ago.
        let got: Vec<(Option<usize>, u64, u32)> = std::iter::from_fn(|| a.try_recv_now().ok())
            .map(|m| (m.partition, m.offset(), m.deliveries))
            .collect();
        println!("a takes over: {got:?}");
        println!("c acks its message, {:?} after receiving it: {:?}", T / 2, c.ack(&work_of_c));
        assert_eq!(got, [(Some(1), 0, 2)], "a gets b's message, and only that");
    })
    .await
    .expect("no hang");
}

/// The same with `max_deliveries(1)`: the healthy member's in-flight
/// message, delivered once, becomes a dead letter because another
/// member failed.
#[tokio::test(start_paused = true)]
async fn a_failing_member_dead_letters_a_healthy_members_message() {
    const T: Duration = Duration::from_millis(30);
    tokio::time::timeout(Duration::from_secs(10), async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("t", TopicOptions::default(), 3).await.unwrap();
        let dead = mq.subscriber("t.dead-letters").await.unwrap();
        let join = || {
            mq.group("t", "g")
                .exclusive()
                .manual_ack()
                .ack_timeout(T)
                .max_deliveries(1)
                .mode(ConsumptionMode::Earliest)
                .join()
        };
        let (a, b, c) = (join().await.unwrap(), join().await.unwrap(), join().await.unwrap());
        let publish = |p: usize| {
            let mq = mq.clone();
            async move {
                mq.set_partition_routing("t", PartitionRouting::Fixed(p)).await.unwrap();
                mq.publish_to_partitioned(TopicMessage::new("t", p as u32).unwrap()).await.unwrap()
            }
        };
        publish(1).await;
        let _held_by_b = b.try_recv_now().unwrap(); // b hangs
        tokio::time::sleep(T / 2).await;
        publish(2).await;
        let work_of_c = c.try_recv_now().unwrap(); // c: healthy, working
        tokio::time::sleep(T / 2 + Duration::from_millis(1)).await;
        assert!(a.try_recv_now().is_err());
        let letters: Vec<(Option<usize>, u64)> = std::iter::from_fn(|| dead.try_recv_now().ok())
            .map(|m| (m.dead_letter().unwrap().partition, m.dead_letter().unwrap().offset))
            .collect();
        println!("dead letters: {letters:?}; c's ack: {:?}", c.ack(&work_of_c));
        assert_eq!(letters, [(Some(1), 0)], "only b's message is dead-lettered");
    })
    .await
    .expect("no hang");
}
