//! Dead letters reach the dead-letter topic that exists when they are
//! dead-lettered, not the one that existed when the group was created.

use memq_testkit::within;
use std::time::Duration;

use tokio_memq::{ConsumptionMode, DeadLetterReason, MessageQueue, TopicOptions, TryRecvError};

const LIMIT: Duration = Duration::from_secs(10);

/// Bug I. Guards the dead-letter route across a re-created dead-letter
/// topic: a manual-ack group with `max_deliveries(1)` is created (which
/// creates `jobs.dead-letters`); the dead-letter topic is deleted and
/// created again by subscribing to it; a message delivered once and not
/// acknowledged (its member drops) is dead-lettered on its next claim and
/// must arrive on the new dead-letter topic. Promise
/// (`GroupBuilder::max_deliveries`): "After this many deliveries without
/// an acknowledgement a message goes to the dead-letter topic", and
/// `dead_letter_topic`: "The topic dead letters are published to" — by
/// name: the topic of that name now.
#[tokio::test]
async fn dead_letters_reach_a_re_created_dead_letter_topic() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("jobs", "w")
            .manual_ack()
            .max_deliveries(1)
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    // Keeps the group's state alive while the other member comes and goes.
    let keeper = join().await.unwrap();
    assert!(
        mq.list_topics().await.contains(&"jobs.dead-letters".to_string()),
        "the group created its dead-letter topic"
    );
    assert!(mq.delete_topic("jobs.dead-letters").await);
    let dead = mq.subscriber("jobs.dead-letters").await.unwrap();

    mq.publisher("jobs").publish("poison").await.unwrap();
    let worker = join().await.unwrap();
    let m = worker.try_recv().await.unwrap();
    assert_eq!((m.offset(), m.deliveries), (0, 1));
    // Dies without acking: message 0 is up for redelivery, and its second
    // delivery would exceed max_deliveries(1): dead-lettered.
    drop(worker);
    assert_eq!(keeper.try_recv().await.unwrap_err(), TryRecvError::Empty);
    let stats = mq.get_group_stats("jobs", "w").await.unwrap();
    assert_eq!((stats.dead_lettered, stats.pending), (1, 0));

    let d = within(LIMIT, dead.recv()).await;
    let published = mq.get_topic_stats("jobs.dead-letters").await.map(|s| s.published);
    let d = d
        .unwrap_or_else(|_| {
            panic!(
                "no dead letter on the re-created topic within {LIMIT:?} (group dead_lettered = {}, \
                 the dead-letter topic has published {published:?})",
                stats.dead_lettered
            )
        })
        .unwrap();
    assert_eq!(
        (d.offset(), d.deserialize::<String>().unwrap()),
        (0, "poison".to_string())
    );
}

/// Item 4: a dead letter the dead-letter topic cannot take (full, with
/// `lru_enabled: false`, its reader behind) is not dropped: the group
/// keeps it pending and counted, holds its commit below it, and hands it
/// over at a later receive once there is room. Every dead letter carries
/// where it came from.
#[tokio::test]
async fn a_dead_letter_waits_for_room_in_a_full_dead_letter_topic() {
    let mq = MessageQueue::new();
    let blocking = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        ..Default::default()
    };
    let dead = mq.subscriber_with_options("dlq", blocking).await.unwrap();
    let join = || {
        mq.group("jobs", "w")
            .manual_ack()
            .max_deliveries(1)
            .dead_letter_topic("dlq")
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let keeper = join().await.unwrap();
    let publisher = mq.publisher("jobs");
    for job in ["first", "second", "third"] {
        publisher.publish(job).await.unwrap();
    }
    // A worker takes 0 and 1 and dies: both are due again, past the limit.
    let worker = join().await.unwrap();
    assert_eq!(worker.try_recv().await.unwrap().offset(), 0);
    assert_eq!(worker.try_recv().await.unwrap().offset(), 1);
    drop(worker);
    // The keeper's receive dead-letters both: the topic takes one.
    let third = keeper.try_recv().await.unwrap();
    assert_eq!(third.offset(), 2);
    keeper.ack(&third).unwrap();
    let stats = mq.get_group_stats("jobs", "w").await.unwrap();
    assert_eq!(
        (stats.dead_lettered, stats.dead_letters_waiting, stats.pending),
        (1, 1, 1),
        "one taken, one waiting and still pending"
    );
    assert_eq!(
        stats.committed,
        vec![Some(0)],
        "the commit stays below the waiting one"
    );

    let first = within(LIMIT, dead.recv()).await.unwrap().unwrap();
    assert_eq!(first.deserialize::<String>().unwrap(), "first");
    let origin = first
        .dead_letter()
        .expect("a dead letter says where it came from");
    assert_eq!((&*origin.topic, &*origin.group), ("jobs", "w"));
    assert_eq!((origin.partition, origin.offset, origin.deliveries), (None, 0, 1));
    assert_eq!(origin.reason, DeadLetterReason::MaxDeliveries { limit: 1 });
    // Room now: the next receive of the group hands the waiting one over.
    assert_eq!(keeper.try_recv().await.unwrap_err(), TryRecvError::Empty);
    let second = within(LIMIT, dead.recv()).await.unwrap().unwrap();
    assert_eq!(second.deserialize::<String>().unwrap(), "second");
    assert_eq!(second.dead_letter().map(|o| o.offset), Some(1));
    let stats = mq.get_group_stats("jobs", "w").await.unwrap();
    assert_eq!(
        (stats.dead_lettered, stats.dead_letters_waiting, stats.pending),
        (2, 0, 0)
    );
    assert_eq!(stats.committed, vec![Some(2)]);
}

/// A message received from a dead-letter topic and published again (to
/// retry it) keeps its payload and key, and says where it came from.
#[tokio::test]
async fn a_dead_letter_published_again_keeps_its_origin() {
    let mq = MessageQueue::new();
    let dead = mq.subscriber("jobs.dead-letters").await.unwrap();
    let retry = mq.subscriber("retry").await.unwrap();
    let join = || {
        mq.group("jobs", "w")
            .manual_ack()
            .max_deliveries(1)
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let keeper = join().await.unwrap();
    mq.publisher("jobs").publish_with_key("k", 7u32).await.unwrap();
    let worker = join().await.unwrap();
    worker.try_recv().await.unwrap();
    drop(worker);
    assert_eq!(keeper.try_recv().await.unwrap_err(), TryRecvError::Empty);
    let letter = within(LIMIT, dead.recv()).await.unwrap().unwrap();
    assert_eq!(letter.key(), Some("k"));
    mq.publisher("retry").publish_message(letter).await.unwrap();
    let again = within(LIMIT, retry.recv()).await.unwrap().unwrap();
    assert_eq!((again.key(), again.deserialize::<u32>().unwrap()), (Some("k"), 7));
    assert_eq!(
        again.dead_letter().map(|o| (&*o.topic, o.offset)),
        Some(("jobs", 0))
    );
}

/// A dead letter is weighed for the dead-letter topic's byte budget, not
/// its source's: a native value that topic could not take directly does
/// not slip in as a dead letter (it waits, counted, as a full topic's do).
#[tokio::test]
async fn a_dead_letter_is_weighed_for_the_dead_letter_topic_budget() {
    let mq = MessageQueue::new();
    let small = TopicOptions {
        max_bytes: Some(1_000),
        ..Default::default()
    };
    mq.create_topic("dlq", small).await.unwrap();
    let join = || {
        mq.group("jobs", "w")
            .manual_ack()
            .max_deliveries(1)
            .dead_letter_topic("dlq")
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let keeper = join().await.unwrap();
    mq.publisher("jobs").publish(vec![7u8; 1 << 20]).await.unwrap();
    let worker = join().await.unwrap();
    worker.try_recv().await.unwrap();
    drop(worker);
    assert_eq!(keeper.try_recv().await.unwrap_err(), TryRecvError::Empty);
    let stats = mq.get_group_stats("jobs", "w").await.unwrap();
    assert_eq!((stats.dead_lettered, stats.dead_letters_waiting), (0, 1));
    assert_eq!(mq.get_topic_stats("dlq").await.unwrap().message_count, 0);
}

/// A nack that reaches `max_deliveries` makes the message a dead letter at
/// once, with no other receive (before, it waited for some member's next
/// claim, which may never come).
#[tokio::test]
async fn a_nack_at_the_delivery_limit_dead_letters_at_once() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let dead = mq.subscriber("t.dead-letters").await.unwrap();
        let member = mq
            .group("t", "g")
            .manual_ack()
            .max_deliveries(1)
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        mq.publisher("t").publish(1u8).await.unwrap();
        let m = member.recv().await.unwrap();
        member.nack(&m).unwrap();
        // The member receives nothing more, and stays.
        let letter = dead.recv().await.unwrap();
        let origin = letter.dead_letter().expect("a dead letter");
        assert_eq!((origin.offset, origin.deliveries), (0, 1));
        assert_eq!(origin.reason, DeadLetterReason::MaxDeliveries { limit: 1 });
        assert_eq!(mq.get_group_stats("t", "g").await.unwrap().pending, 0);
        drop(member);
    })
    .await
    .expect("finished");
}

/// A dead letter dead-lettered again (the dead-letter topic's own group
/// gives up on it) says its latest origin only, in its headers as in
/// `dead_letter()`: a partition header left from the first origin stayed.
#[tokio::test]
async fn a_dead_letter_dead_lettered_again_names_its_latest_origin_only() {
    use tokio_memq::{dead_letter_headers as h, PartitionRouting};
    within(LIMIT, async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("a", TopicOptions::default(), 2)
            .await
            .unwrap();
        mq.set_partition_routing("a", PartitionRouting::Fixed(1))
            .await
            .unwrap();
        let join = |topic: &'static str, group: &'static str, dead: &'static str| {
            mq.group(topic, group)
                .manual_ack()
                .max_deliveries(1)
                .dead_letter_topic(dead)
                .mode(ConsumptionMode::Earliest)
                .join()
        };
        let (first, second) = (
            join("a", "g1", "b").await.unwrap(),
            join("b", "g2", "c").await.unwrap(),
        );
        let last = mq.subscriber("c").await.unwrap();
        mq.publisher("a").publish("x").await.unwrap();
        let m = first.recv().await.unwrap();
        first.nack(&m).unwrap();
        let m = second.recv().await.unwrap();
        assert_eq!(m.dead_letter().unwrap().partition, Some(1));
        second.nack(&m).unwrap();
        let letter = last.recv().await.unwrap();
        let origin = letter.dead_letter().unwrap();
        assert_eq!(
            (&*origin.topic, &*origin.group, origin.partition),
            ("b", "g2", None)
        );
        let headers = letter.headers();
        assert_eq!(headers.get_str(h::TOPIC), Some("b"));
        assert_eq!(headers.get_str(h::GROUP), Some("g2"));
        assert_eq!(headers.get_str(h::PARTITION), None, "b is not partitioned");
        assert_eq!(headers.get_all(h::TOPIC).count(), 1);
        assert_eq!(letter.deserialize::<String>().unwrap(), "x");
    })
    .await
    .expect("finished");
}
