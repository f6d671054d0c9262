//! Review probe: a member found failed only because it is slow (it holds a message past the
//! ack timeout while processing it) gets its partition back at its next receive, and the
//! message the healthy member took over, still being processed there, is taken from that
//! member too: one slow message is delivered three times (A, B, A) and B's ack is refused.

use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckError, AckMode, Assignment, Group, GroupConfig};
use memq_testkit::within;

const ACK_TIMEOUT: Duration = Duration::from_millis(100);

#[tokio::test(start_paused = true)]
async fn zz_review_a_slow_owner_coming_back_takes_in_flight_work_from_the_substitute() {
    let topics: Vec<Topic<u64>> = (0..2)
        .map(|_| Topic::new(TopicConfig::default().max_messages(Some(64))).unwrap())
        .collect();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .ack_timeout(Some(ACK_TIMEOUT))
        .assignment(Assignment::Exclusive);
    let g = Group::new("g", topics.clone(), config).unwrap();
    let a = g.join(StartFrom::Earliest).unwrap();
    let b = g.join(StartFrom::Earliest).unwrap();
    topics[0].try_publish(10).unwrap();
    topics[1].try_publish(20).unwrap();
    let from_a = a.try_recv().unwrap();
    let from_b = b.try_recv().unwrap();
    b.ack(from_b.partition, from_b.offset).unwrap();
    let pa = from_a.partition;

    // A processes its message for 150 ms (slow, not dead). B waits and takes it over at 100 ms.
    let waiting = tokio::spawn(async move {
        let c = b.recv().await.unwrap();
        (c, b)
    });
    let (taken, b) = within(Duration::from_secs(60), waiting).await.unwrap().unwrap();
    assert_eq!((taken.partition, taken.offset, taken.deliveries), (pa, 0, 2));

    // 50 ms later A is done: its ack is refused (fine, documented) and it asks for more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(a.ack(pa, 0), Err(AckError::NotOwned { .. })));
    let again = a.try_recv();
    // B is still processing offset 0 (held 50 ms, well inside the timeout). Does A's return
    // take it from B?
    let b_ack = b.ack(pa, 0);
    eprintln!("A's receive after coming back: {:?}", again.as_ref().map(|c| (c.partition, c.offset, c.deliveries)));
    eprintln!("B's ack of the message it took over, 50 ms into a 100 ms timeout: {b_ack:?}");
    assert!(
        b_ack.is_ok(),
        "B, active and inside its ack timeout, lost the message it took over when A came back \
         (A got {:?})",
        again.map(|c| (c.partition, c.offset, c.deliveries))
    );
}
