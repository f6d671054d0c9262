//! Probe (failover) repro: a claim that offers a dead letter to the sink
//! releases the group lock between handing out redeliveries and reading
//! new messages; a rebalance in that window (a member leaving) makes the
//! claim hand out a *new* message of the partition it just got, ahead of
//! the pending message of that partition queued for redelivery.

use std::sync::{Arc, Mutex};

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Assignment, DeadLetter, Group, GroupConfig, Member};

#[test]
fn new_message_handed_out_before_a_redelivery_of_its_partition() {
    let topics: Vec<Topic<&str>> = (0..3).map(|_| Topic::new(TopicConfig::default()).unwrap()).collect();
    // The sink drops member `b` (it leaves while the claim has the lock
    // released; any other thread could do the same at that moment).
    let leaver: Arc<Mutex<Option<Member<&str>>>> = Arc::default();
    let in_sink = leaver.clone();
    let sink = Arc::new(move |_d: DeadLetter<&str>| {
        drop(in_sink.lock().unwrap().take());
        Ok(())
    });
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .max_deliveries(Some(2))
        .assignment(Assignment::Exclusive);
    let g = Group::with_dead_letters("g", topics.clone(), config, sink).unwrap();
    let a = g.join(StartFrom::Earliest).unwrap(); // owns p0
    let b = g.join(StartFrom::Earliest).unwrap(); // owns p1
    let c = g.join(StartFrom::Earliest).unwrap(); // owns p2

    // b holds p1@0 (one delivery); p1@1 waits in the topic.
    topics[1].try_publish("p1-first").unwrap();
    let held = b.try_recv().unwrap();
    assert_eq!((held.partition, held.offset), (1, 0));
    topics[1].try_publish("p1-second").unwrap();
    *leaver.lock().unwrap() = Some(b);

    // c holds p2@0 at its second delivery, and leaves: a owns p2 now and
    // the message waits for it, due to become a dead letter.
    topics[2].try_publish("poison").unwrap();
    let x = c.try_recv().unwrap();
    c.nack(x.partition, x.offset).unwrap();
    let x = c.try_recv().unwrap();
    assert_eq!((x.partition, x.offset, x.deliveries), (2, 0, 2));
    drop(c);

    // a's receive: the poison goes to the sink (b leaves meanwhile: p1 is
    // a's now, p1@0 queued for redelivery) ...
    let first = a.try_recv().unwrap();
    println!("a's first receive: p{}@{} d{} {:?}", first.partition, first.offset, first.deliveries, first.value);
    let second = a.try_recv().unwrap();
    println!("a's second receive: p{}@{} d{} {:?}", second.partition, second.offset, second.deliveries, second.value);
    assert_eq!(
        (first.partition, first.offset, first.deliveries),
        (1, 0, 2),
        "p1@0, pending when p1 changed owner, must come before p1@1"
    );
}

/// The same race through the facade, with real threads: `a` receives
/// (burying a dead letter, published to the dead-letter topic with the
/// group lock released) while `b` leaves on another thread.
#[test]
fn facade_race_new_before_redelivery() {
    use std::sync::Barrier;
    use tokio_memq::{ConsumptionMode, MessageQueue, PartitionRouting, TopicMessage, TopicOptions};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut hits = 0;
    let mut wrong = Vec::new();
    let runs = 3000;
    for run in 0..runs {
        let mq = MessageQueue::new();
        let (a, b, c) = rt.block_on(async {
            mq.create_partitioned_topic("t", TopicOptions::default(), 3).await.unwrap();
            let join = || {
                mq.group("t", "g")
                    .exclusive()
                    .manual_ack()
                    .max_deliveries(2)
                    .mode(ConsumptionMode::Earliest)
                    .join()
            };
            (join().await.unwrap(), join().await.unwrap(), join().await.unwrap())
        });
        let publish = |p: usize, v: &'static str| {
            rt.block_on(async {
                mq.set_partition_routing("t", PartitionRouting::Fixed(p)).await.unwrap();
                mq.publish_to_partitioned(TopicMessage::new("t", v).unwrap()).await.unwrap()
            })
        };
        publish(1, "p1-first");
        let held = b.try_recv_now().unwrap();
        assert_eq!((held.partition, held.offset()), (Some(1), 0));
        publish(1, "p1-second");
        publish(2, "poison");
        let x = c.try_recv_now().unwrap();
        c.nack(&x).unwrap();
        let x = c.try_recv_now().unwrap();
        assert_eq!(x.deliveries, 2);
        drop(c);
        let barrier = Arc::new(Barrier::new(2));
        let b2 = barrier.clone();
        let t = std::thread::spawn(move || {
            b2.wait();
            for _ in 0..(run % 50) {
                std::hint::spin_loop();
            }
            drop(b);
        });
        barrier.wait();
        let first = a.try_recv_now();
        t.join().unwrap();
        let first = first.map(|m| (m.partition, m.offset(), m.deliveries));
        match first {
            Ok((Some(1), 1, 1)) => {
                hits += 1;
                let second = a.try_recv_now().map(|m| (m.partition, m.offset(), m.deliveries));
                if wrong.len() < 3 {
                    wrong.push(format!("run {run}: first {first:?}, then {second:?}"));
                }
            }
            _ => {}
        }
    }
    println!("{hits} of {runs} runs handed out p1@1 before p1@0: {wrong:?}");
    assert_eq!(hits, 0);
}
