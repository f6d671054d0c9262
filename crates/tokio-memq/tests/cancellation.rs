//! Receive futures dropped at any await point lose nothing.

use std::time::Duration;

use tokio_memq::{MessageQueue, TopicOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_against_a_timer_loses_nothing() {
    const N: u64 = 20_000;
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(N as usize),
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("sel", options).await.unwrap();
    let p = mq.publisher("sel");
    let producer = tokio::spawn(async move {
        for i in 0..N {
            p.publish(i).await.unwrap();
            if i % 500 == 0 {
                // Quiet gaps, so the consumer's receives lose to the timer.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let consume = async {
        let mut next = 0u64;
        let mut timeouts = 0u64;
        while next < N {
            tokio::select! {
                r = sub.recv() => {
                    let m = r.unwrap();
                    assert_eq!(m.offset(), next, "no message lost or repeated");
                    assert_eq!(*m.native::<u64>().unwrap(), next);
                    next += 1;
                }
                _ = tokio::time::sleep(Duration::from_micros(50)) => timeouts += 1,
            }
        }
        timeouts
    };
    let timeouts = memq_testkit::within(Duration::from_secs(60), consume)
        .await
        .expect("progress watchdog");
    producer.await.unwrap();
    assert!(timeouts > 0, "receives were dropped by select! along the way");
}

#[tokio::test]
async fn every_receive_variant_survives_being_dropped_after_one_poll() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    let mq = MessageQueue::new();
    let sub = mq.subscriber("drop").await.unwrap();
    let p = mq.publisher("drop");
    let mut cx = Context::from_waker(Waker::noop());
    for i in 0..100u32 {
        // Each variant parks (nothing published yet) and is dropped.
        assert!(pin!(sub.recv()).as_mut().poll(&mut cx).is_pending());
        assert!(pin!(sub.recv_batch(8)).as_mut().poll(&mut cx).is_pending());
        assert!(pin!(sub.recv_typed::<u32>()).as_mut().poll(&mut cx).is_pending());
        assert!(pin!(sub.recv_batch_typed::<u32>(8))
            .as_mut()
            .poll(&mut cx)
            .is_pending());
        {
            let mut stream = sub.stream();
            let polled = std::pin::Pin::new(&mut stream);
            assert!(futures_core::Stream::poll_next(polled, &mut cx).is_pending());
        }
        p.publish(i).await.unwrap();
        let got = match pin!(sub.recv_typed::<u32>()).as_mut().poll(&mut cx) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("message {i} must be ready"),
        };
        assert_eq!(got, i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_receiving_tasks_loses_nothing_for_survivors() {
    let mq = MessageQueue::new();
    let mut doomed = Vec::new();
    for _ in 0..100 {
        let s = mq.subscriber("abort").await.unwrap();
        doomed.push(tokio::spawn(async move {
            loop {
                let _ = s.recv().await;
            }
        }));
    }
    let survivor = mq.subscriber("abort").await.unwrap();
    let p = mq.publisher("abort");
    for i in 0..50u32 {
        p.publish(i).await.unwrap();
    }
    for t in &doomed {
        t.abort();
    }
    for i in 50..100u32 {
        p.publish(i).await.unwrap();
    }
    for t in doomed {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    let got: Vec<u32> = memq_testkit::within(Duration::from_secs(10), async {
        let mut v = Vec::new();
        while v.len() < 100 {
            v.extend(survivor.recv_batch_typed::<u32>(100).await.unwrap());
        }
        v
    })
    .await
    .unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(mq.get_topic_stats("abort").await.unwrap().subscriber_count, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_receiver_with_a_backlog_yields_to_other_tasks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mq = MessageQueue::new();
    let sub = mq.subscriber("backlog").await.unwrap();
    let p = mq.publisher("backlog");
    for i in 0..5_000u32 {
        p.publish(i).await.unwrap();
    }
    let ran = Arc::new(AtomicBool::new(false));
    let other = {
        let ran = ran.clone();
        tokio::spawn(async move { ran.store(true, Ordering::SeqCst) })
    };
    let mut saw_other_run_at = None;
    for i in 0..5_000u32 {
        assert_eq!(sub.recv_typed::<u32>().await.unwrap(), i);
        if saw_other_run_at.is_none() && ran.load(Ordering::SeqCst) {
            saw_other_run_at = Some(i);
        }
    }
    other.await.unwrap();
    let at = saw_other_run_at.expect("the other task ran while the backlog drained");
    assert!(at < 1_000, "it ran after {at} receives; tokio's budget is 128");
}

/// `publish_batch` dropped while it waits for room publishes nothing on a
/// plain topic; on a partitioned one, the shares that went in before the
/// one that waits stay (both as its doc says).
#[tokio::test(start_paused = true)]
async fn a_batch_dropped_while_it_waits_for_room() {
    let mq = MessageQueue::new();
    let full = |partitions| TopicOptions {
        max_messages: Some(2),
        lru_enabled: false,
        partitions,
        ..Default::default()
    };
    let _sub = mq.subscriber_with_options("plain", full(None)).await.unwrap();
    let publisher = mq.publisher("plain");
    publisher.publish_batch(vec![0u8]).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(50), publisher.publish_batch(vec![1u8, 2])).await;
    assert!(waited.is_err(), "it waits for room");
    assert_eq!(
        mq.get_topic_stats("plain").await.unwrap().published,
        1,
        "nothing of it went in"
    );

    // Partitioned: partition 1 full, partition 0 with room; a batch of
    // two, round robin, has one message for each. Shares go in partition
    // order: 0's goes in and stays, 1's waits and is dropped.
    use tokio_memq::PartitionRouting::{Fixed, RoundRobin};
    mq.create_partitioned_topic("parted", full(None), 2)
        .await
        .unwrap();
    let _all = mq.subscriber("parted").await.unwrap();
    let publisher = mq.publisher("parted");
    for (partition, value) in [(0, 9u8), (1, 10), (1, 11)] {
        mq.set_partition_routing("parted", Fixed(partition))
            .await
            .unwrap();
        publisher.publish(value).await.unwrap();
    }
    mq.set_partition_routing("parted", RoundRobin).await.unwrap();
    let published = |mq: MessageQueue| async move {
        let mut all = mq.get_all_partition_stats("parted").await;
        all.sort_by_key(|s| s.partition);
        all.iter().map(|s| s.message_count).collect::<Vec<_>>()
    };
    assert_eq!(published(mq.clone()).await, [1, 2]);
    let waited = tokio::time::timeout(Duration::from_millis(50), publisher.publish_batch(vec![1u8, 2])).await;
    assert!(waited.is_err(), "partition 1's share waits for room");
    assert_eq!(published(mq.clone()).await, [2, 2], "partition 0's share stayed");
}
