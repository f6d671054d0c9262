//! Probe (failover): deterministic, paused-time checks of exclusive
//! groups with manual acks and an ack timeout, through the facade.

use std::time::Duration;

use tokio_memq::{
    ConsumptionMode, MessageQueue, PartitionRouting, Subscriber, TopicMessage, TopicOptions,
};

const T: Duration = Duration::from_millis(30);
const LIMIT: Duration = Duration::from_secs(30);

async fn setup(parts: usize) -> MessageQueue {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("t", TopicOptions::default(), parts)
        .await
        .unwrap();
    mq.set_partition_routing("t", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    mq
}

async fn join(mq: &MessageQueue) -> Subscriber {
    mq.group("t", "g")
        .exclusive()
        .manual_ack()
        .ack_timeout(T)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap()
}

async fn publish_to(mq: &MessageQueue, p: usize, v: u64) -> (usize, u64) {
    mq.set_partition_routing("t", PartitionRouting::Fixed(p))
        .await
        .unwrap();
    mq.publish_to_partitioned(TopicMessage::new("t", v).unwrap())
        .await
        .unwrap()
}

fn drain(m: &Subscriber) -> Vec<(usize, u64, u32)> {
    std::iter::from_fn(|| m.try_recv_now().ok())
        .map(|m| (m.partition.unwrap(), m.offset(), m.deliveries))
        .collect()
}

/// Cleaner version: acks with the messages themselves.
#[tokio::test(start_paused = true)]
async fn healthy_member_loses_partition_and_in_flight_message_on_others_failover() {
    tokio::time::timeout(LIMIT, async {
        let mq = setup(3).await;
        let a = join(&mq).await;
        let b = join(&mq).await;
        let c = join(&mq).await;
        let ms = [&a, &b, &c];
        for p in 0..3 {
            publish_to(&mq, p, p as u64).await;
        }
        let mut own = vec![usize::MAX; 3];
        let mut msgs: Vec<Vec<TopicMessage>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for (i, m) in ms.iter().enumerate() {
            while let Ok(x) = m.try_recv_now() {
                own[x.partition.unwrap()] = i;
                msgs[i].push(x);
            }
        }
        println!("initial owners {own:?}");
        // a and c ack at once; b holds (it will fail).
        for x in msgs[0].drain(..) {
            a.ack(&x).unwrap();
        }
        for x in msgs[2].drain(..) {
            c.ack(&x).unwrap();
        }
        // c receives a new message of its partition and works on it
        // (healthy: it will ack before its timeout).
        let c_part = own.iter().position(|&x| x == 2).unwrap();
        publish_to(&mq, c_part, 7).await;
        let in_flight = c.try_recv_now().unwrap();
        assert_eq!(in_flight.partition, Some(c_part));
        // time passes: b exceeds its timeout; a and c are healthy (c
        // keeps alive while working)
        tokio::time::sleep(T / 2).await;
        c.keep_alive();
        a.keep_alive();
        tokio::time::sleep(T / 2 + Duration::from_millis(1)).await;
        c.keep_alive();
        // a receives: finds b failed.
        let from_a = drain(&a);
        println!("a got {from_a:?}");
        // c finishes its in-flight message
        let r = c.ack(&in_flight);
        println!("c's ack of its in-flight message: {r:?}");
        let ow = {
            let mut out = vec![None; 3];
            for p in 0..3 {
                publish_to(&mq, p, 999).await;
            }
            for (i, m) in ms.iter().enumerate() {
                if i == 1 {
                    continue; // b must not receive (that would bring it back)
                }
                while let Ok(x) = m.try_recv_now() {
                    let p = x.partition.unwrap();
                    println!("member {i} got p{p}@{} d{}", x.offset(), x.deliveries);
                    out[p] = Some(i);
                    let _ = m.ack(&x);
                }
            }
            out
        };
        println!("owners after b failed: {ow:?}");
        assert_eq!(r, Ok(()), "c is healthy and acked well within its timeout, yet lost its message");
    })
    .await
    .expect("no hang");
}

