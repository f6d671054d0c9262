//! `Member::nack` gives a message back for redelivery now (waking a parked
//! member, counting the delivery, dead-lettering at the limit), and
//! `Member::keep_alive` holds off the ack timeout for long work.

use memq_testkit::within;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{
    AckError, AckMode, DeadLetter, DeadLetterReason, DeadLetterSink, Group, GroupConfig, TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(60);

fn topic() -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(64))).unwrap()
}

fn manual() -> GroupConfig {
    GroupConfig::default().ack(AckMode::Manual)
}

#[tokio::test]
async fn a_nacked_message_is_delivered_again_at_once_with_its_count() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], manual()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    for v in [10, 11] {
        t.publish(v).await.unwrap();
    }
    let first = within(LIMIT, a.recv()).await.unwrap().unwrap();
    assert_eq!((first.offset, first.value, first.deliveries), (0, 10, 1));
    a.nack(first.partition, first.offset).unwrap();
    // Redeliveries come before new messages.
    let again = within(LIMIT, a.recv()).await.unwrap().unwrap();
    assert_eq!((again.offset, again.value, again.deliveries), (0, 10, 2));
    let next = within(LIMIT, a.recv()).await.unwrap().unwrap();
    assert_eq!(next.offset, 1);
    a.ack(again.partition, again.offset).unwrap();
    a.ack(next.partition, next.offset).unwrap();
    assert_eq!(group.stats().committed, [Some(1)]);
}

#[tokio::test]
async fn a_nack_wakes_a_parked_member() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], manual()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    t.publish(7).await.unwrap();
    let got = within(LIMIT, a.recv()).await.unwrap().unwrap();
    // B waits: nothing else to take.
    let waiting = tokio::spawn(async move { b.recv().await.map(|c| (c.offset, c.deliveries)) });
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished());
    a.nack(got.partition, got.offset).unwrap();
    let (offset, deliveries) = within(LIMIT, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!((offset, deliveries), (0, 2));
}

#[tokio::test]
async fn a_nack_at_the_delivery_limit_makes_a_dead_letter() {
    let t = topic();
    let taken: Arc<Mutex<Vec<DeadLetter<u64>>>> = Arc::default();
    let to = taken.clone();
    let sink: DeadLetterSink<u64> = Arc::new(move |d| {
        to.lock().unwrap().push(d);
        Ok(())
    });
    let config = manual().max_deliveries(Some(2));
    let group = Group::with_dead_letters("g", vec![t.clone()], config, sink).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    t.publish(5).await.unwrap();
    for delivery in 1..=2 {
        let c = within(LIMIT, a.recv()).await.unwrap().unwrap();
        assert_eq!(c.deliveries, delivery);
        a.nack(c.partition, c.offset).unwrap();
    }
    // Delivered twice: the nack made it a dead letter at once.
    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Empty);
    let letters = taken.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].offset, letters[0].value, letters[0].deliveries),
        (0, 5, 2)
    );
    assert_eq!(letters[0].reason, DeadLetterReason::MaxDeliveries { limit: 2 });
}

#[tokio::test]
async fn nack_errors() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], manual()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    t.publish(1).await.unwrap();
    let c = within(LIMIT, a.recv()).await.unwrap().unwrap();
    // Not B's to give back; no such partition; nothing at that offset.
    assert_eq!(
        b.nack(0, 0),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 0
        })
    );
    assert_eq!(a.nack(3, 0), Err(AckError::NoSuchPartition { partition: 3 }));
    assert_eq!(
        a.nack(0, 9),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 9
        })
    );
    a.ack(c.partition, c.offset).unwrap();
    assert_eq!(
        a.nack(0, 0),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 0
        }),
        "acked"
    );

    let auto = Group::new("auto", vec![t.clone()], GroupConfig::default()).unwrap();
    let m = auto.join(StartFrom::Earliest).unwrap();
    assert_eq!(m.nack(0, 0), Err(AckError::AutoAck));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_holds_off_the_ack_timeout() {
    let t = topic();
    let config = manual().ack_timeout(Some(Duration::from_millis(100)));
    let group = Group::new("g", vec![t.clone()], config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    t.publish(3).await.unwrap();
    let c = within(LIMIT, a.recv()).await.unwrap().unwrap();
    // Long work: 3 x 80 ms, keeping alive in between (240 ms in all).
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        a.keep_alive();
        assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Empty, "still A's");
    }
    // Then idle past the timeout: the message goes to B.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let taken = b.try_recv().unwrap();
    assert_eq!((taken.offset, taken.deliveries), (c.offset, 2));
    assert_eq!(
        a.ack(c.partition, c.offset),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 0
        })
    );
}
