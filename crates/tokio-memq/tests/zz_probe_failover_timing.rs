//! Probe (failover): real-time take-over latency of an idle owner's
//! messages, for each kind of waiting receive (multi-thread runtime).

use std::time::{Duration, Instant};

use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, Subscriber, TopicMessage, TopicOptions};
use tokio_stream::StreamExt;

const T: Duration = Duration::from_millis(40);

async fn setup(parts: usize) -> (MessageQueue, Subscriber, Subscriber) {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("t", TopicOptions::default(), parts).await.unwrap();
    mq.set_partition_routing("t", PartitionRouting::Hash).await.unwrap();
    let join = || {
        mq.group("t", "g")
            .exclusive()
            .manual_ack()
            .ack_timeout(T)
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let a = join().await.unwrap();
    let b = join().await.unwrap();
    (mq, a, b)
}

/// Publishes keyed messages until `a` gets one; returns it.
async fn give_a_one(mq: &MessageQueue, a: &Subscriber, b: &Subscriber) -> TopicMessage {
    for k in 0..100 {
        mq.publish_to_partitioned(TopicMessage::new_with_key("t", k as u32, format!("k{k}")).unwrap())
            .await
            .unwrap();
        if let Ok(m) = a.try_recv_now() {
            // drain b's
            while let Ok(x) = b.try_recv_now() {
                b.ack(&x).unwrap();
            }
            return m;
        }
        while let Ok(x) = b.try_recv_now() {
            b.ack(&x).unwrap();
        }
    }
    panic!("a owns nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_latency_each_receive_kind() {
    tokio::time::timeout(Duration::from_secs(30), async {
        for kind in 0..6 {
            for keep in [false, true] {
                let (mq, a, b) = setup(2).await;
                let held = give_a_one(&mq, &a, &b).await;
                let start = Instant::now();
                let b = std::sync::Arc::new(b);
                let keeper = {
                    let a_alive = keep;
                    async move {
                        if a_alive {
                            tokio::time::sleep(T / 2).await;
                            a.keep_alive();
                        }
                        a
                    }
                };
                let bb = b.clone();
                let got: (Option<usize>, u64, u32) = match kind {
                    0 => {
                        let (m, _a) = tokio::join!(bb.recv(), keeper);
                        let m = m.unwrap();
                        (m.partition, m.offset(), m.deliveries)
                    }
                    1 => {
                        let (m, _a) = tokio::join!(bb.recv_batch(4), keeper);
                        let m = m.unwrap();
                        assert_eq!(m.len(), 1);
                        (m[0].partition, m[0].offset(), m[0].deliveries)
                    }
                    2 => {
                        let (m, _a) = tokio::join!(bb.recv_timeout(Duration::from_secs(5)), keeper);
                        let m = m.unwrap().unwrap();
                        (m.partition, m.offset(), m.deliveries)
                    }
                    3 => {
                        let (m, _a) = tokio::join!(async { bb.stream().next().await.unwrap() }, keeper);
                        let m = m.unwrap();
                        (m.partition, m.offset(), m.deliveries)
                    }
                    4 => {
                        let th = tokio::task::spawn_blocking(move || bb.blocking_recv().map(|m| (m.partition, m.offset(), m.deliveries)));
                        let (m, _a) = tokio::join!(th, keeper);
                        m.unwrap().unwrap()
                    }
                    _ => {
                        let th = std::thread::spawn(move || bb.blocking_recv_batch(3).map(|m| (m[0].partition, m[0].offset(), m[0].deliveries)));
                        let _a = keeper.await;
                        let m = tokio::task::spawn_blocking(move || th.join().unwrap()).await.unwrap();
                        m.unwrap()
                    }
                };
                let took = start.elapsed();
                let want = if keep { T + T / 2 } else { T };
                println!("kind {kind} keep {keep}: got {got:?} after {took:?} (want ~{want:?})");
                assert_eq!(got, (held.partition, held.offset(), 2));
                assert!(took >= want - Duration::from_millis(2), "kind {kind}: too early {took:?}");
                assert!(took < want + Duration::from_millis(40), "kind {kind}: late {took:?}");
            }
        }
    })
    .await
    .expect("no hang");
}
