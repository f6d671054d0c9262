//! Consumer groups in memory (plain and partitioned topics) against the
//! promises of their docs, written to break them: receives from what a
//! typed batch put aside, expiry at the delivery limit, settings of a
//! second join, exclusive order across a rebalance, and long mixed runs
//! of every kind of receive, cancelled ones included, checked for exactly
//! once. Each test is bounded in time: a hang fails.

use std::time::Duration;

use tokio::time::timeout;
use tokio_memq::{ConsumptionMode, MessageQueue, TopicError, TopicOptions, TryRecvError};

/// Under a paused clock this is virtual time (the runtime jumps to it
/// when everything waits), so it must exceed every ack timeout used.
const LIMIT: Duration = Duration::from_secs(600);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    timeout(LIMIT, f).await.expect("timed out (hang)")
}

/// README / `GroupConfig::ack_timeout`: "a member that neither receives
/// nor acknowledges for this long is considered failed". `keep_alive`:
/// "Receives and acknowledgements restart it too." A receive served from
/// what a typed batch put aside is a receive of the member: it must
/// restart the ack timeout.
#[tokio::test(start_paused = true)]
async fn a_receive_from_the_typed_batch_stash_restarts_the_ack_timeout() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("jobs", "workers")
            .manual_ack()
            .ack_timeout(Duration::from_secs(30))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let a = within(join()).await.unwrap();
    let b = within(join()).await.unwrap();
    let p = mq.publisher("jobs");
    within(p.publish(0u32)).await.unwrap();
    within(p.publish("not a number")).await.unwrap();
    within(p.publish(2u32)).await.unwrap();
    // A takes all three; 1 and 2 are put aside for its next receives.
    let got = within(a.recv_batch_typed::<u32>(10)).await.unwrap();
    assert_eq!(got, [0]);
    within(a.commit(0)).await.unwrap(); // acknowledges offset 0
    tokio::time::advance(Duration::from_secs(20)).await;
    // A receives again at t = 20 s (from what was put aside).
    let m = within(a.recv()).await.unwrap();
    assert_eq!(m.offset(), 1);
    // t = 35 s: 15 s since A's last receive, under the 30 s timeout.
    tokio::time::advance(Duration::from_secs(15)).await;
    match b.try_recv_now() {
        Err(TryRecvError::Empty) => {}
        other => panic!("B took over from A although A received 15 s ago: {other:?}"),
    }
    assert_eq!(a.ack(&m), Ok(()), "A still holds what it is working on");
}

/// `memq_groups` docs: "Expired messages are never delivered,
/// redeliveries included: a pending message that has reached its topic's
/// TTL ... when it would be handed out again is dropped instead (nor is it
/// dead-lettered), counted in GroupStats::expired". README: "redelivery on
/// drop or idle timeout (never of an expired message)". A `nack` of an
/// expired message at the delivery limit must not make it a dead letter.
#[tokio::test(start_paused = true)]
async fn a_nack_of_an_expired_message_at_the_limit_does_not_dead_letter_it() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(1)),
        ..TopicOptions::default()
    };
    let dead = within(mq.subscriber("jobs.dead-letters")).await.unwrap();
    let w = within(
        mq.group("jobs", "workers")
            .options(options)
            .manual_ack()
            .max_deliveries(1)
            .mode(ConsumptionMode::Earliest)
            .join(),
    )
    .await
    .unwrap();
    within(mq.publisher("jobs").publish(7u32)).await.unwrap();
    let m = within(w.recv()).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await; // past its TTL
    w.nack(&m).unwrap();
    let s = within(mq.get_group_stats("jobs", "workers")).await.unwrap();
    let letter = dead.try_recv_now();
    assert!(
        letter.is_err(),
        "an expired message was dead-lettered: {letter:?}; stats {s:?}"
    );
    assert_eq!((s.expired, s.dead_lettered, s.pending), (1, 0, 0), "{s:?}");
}

/// As above, for a member dropped: its expired message is dropped, not
/// dead-lettered (memq-groups' own test, through the facade).
#[tokio::test(start_paused = true)]
async fn a_dropped_members_expired_message_at_the_limit_is_not_dead_lettered() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(1)),
        ..TopicOptions::default()
    };
    let dead = within(mq.subscriber("jobs.dead-letters")).await.unwrap();
    let join = || {
        mq.group("jobs", "workers")
            .options(options.clone())
            .manual_ack()
            .max_deliveries(1)
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let w = within(join()).await.unwrap();
    let keeper = within(join()).await.unwrap();
    within(mq.publisher("jobs").publish(7u32)).await.unwrap();
    let _m = within(w.recv()).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    drop(w);
    assert!(keeper.try_recv_now().is_err());
    assert!(dead.try_recv_now().is_err());
    let s = within(mq.get_group_stats("jobs", "workers")).await.unwrap();
    assert_eq!((s.expired, s.dead_lettered, s.pending), (1, 0, 0), "{s:?}");
}

/// `GroupBuilder` docs: "A group's settings are fixed by the first member
/// to join" and `join`: "GroupConfigMismatch when the group exists with
/// other settings". A second join naming another dead-letter topic is
/// taken silently, and its dead letters go to the first join's topic.
#[tokio::test]
async fn a_join_with_another_dead_letter_topic_is_a_mismatch() {
    let mq = MessageQueue::new();
    let _first = within(
        mq.group("jobs", "workers")
            .manual_ack()
            .max_deliveries(1)
            .dead_letter_topic("first-dlq")
            .join(),
    )
    .await
    .unwrap();
    let second = within(
        mq.group("jobs", "workers")
            .manual_ack()
            .max_deliveries(1)
            .dead_letter_topic("second-dlq")
            .join(),
    )
    .await;
    assert_eq!(
        second.err(),
        Some(TopicError::GroupConfigMismatch {
            group: "workers".into()
        }),
        "joined with another dead-letter topic than the group's"
    );
}

/// `GroupBuilder::ack_timeout` example through `recv_timeout` and a
/// stream: a waiting member gets an idle member's message at the timeout.
#[tokio::test(start_paused = true)]
async fn recv_timeout_and_a_stream_take_over_an_idle_members_message() {
    use tokio_stream::StreamExt;
    let mq = MessageQueue::new();
    let join = || {
        mq.group("jobs", "workers")
            .manual_ack()
            .ack_timeout(Duration::from_secs(30))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (stuck, other) = (within(join()).await.unwrap(), within(join()).await.unwrap());
    let third = within(join()).await.unwrap();
    within(mq.publisher("jobs").publish_batch(vec![1u32, 2]))
        .await
        .unwrap();
    let _a = within(stuck.recv()).await.unwrap();
    let _b = within(stuck.recv()).await.unwrap();
    let start = tokio::time::Instant::now();
    let got = within(other.recv_timeout(Duration::from_secs(60))).await.unwrap();
    let got = got.expect("taken over within 60 s");
    assert_eq!(got.deliveries, 2);
    assert!(start.elapsed() >= Duration::from_secs(30));
    let mut s = third.into_stream();
    let next = within(s.next()).await.unwrap().unwrap();
    assert_eq!(next.deliveries, 2);
    let mut offs = vec![got.offset(), next.offset()];
    offs.sort_unstable();
    assert_eq!(offs, [0, 1]);
}

/// README: "a topic with lru_enabled: false holds its publishers back" at
/// max_pending; "A group with no members holds no cursor: it does not hold
/// back publishers". The last member leaving releases a blocked
/// publisher, and the next member from the commit gets the unacknowledged
/// messages again.
#[tokio::test(start_paused = true)]
async fn the_last_member_leaving_releases_a_lossless_topics_publisher() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(4),
        lru_enabled: false,
        ..TopicOptions::default()
    };
    let w = within(
        mq.group("jobs", "workers")
            .options(options.clone())
            .manual_ack()
            .max_pending(2)
            .mode(ConsumptionMode::Earliest)
            .join(),
    )
    .await
    .unwrap();
    let p = mq.publisher("jobs");
    let a = within(async {
        p.publish(0u32).await.unwrap();
        w.recv().await.unwrap()
    })
    .await;
    assert_eq!(a.offset(), 0);
    let mut published = 1;
    // Publish until it blocks.
    while let Ok(r) = timeout(Duration::from_secs(1), p.publish(published as u32)).await {
        r.unwrap();
        published += 1;
        assert!(published <= 300, "never held back");
    }
    drop(w);
    within(p.publish(999u32)).await.unwrap();
    let w2 = within(
        mq.group("jobs", "workers")
            .options(options)
            .manual_ack()
            .max_pending(2)
            .join(),
    )
    .await
    .unwrap();
    // Offset 0 was never acknowledged: received again, or reported lost
    // (evicted meanwhile: nobody held the publisher back).
    match within(w2.recv()).await {
        Ok(m) => assert_eq!(m.offset(), 0),
        Err(tokio_memq::RecvError::Lagged(n)) => {
            assert_eq!(within(w2.recv()).await.unwrap().offset(), n);
        }
        Err(e) => panic!("expected offset 0 again, got {e:?}"),
    }
}

/// `GroupBuilder::exclusive`: "gives each partition to one member at a
/// time ... so messages with one key are processed in order by one
/// member"; `memq_groups`: "On a rebalance, the pending messages of a
/// partition that changed owner are redelivered to the new owner before
/// anything newer." `recv_batch_typed`: what a batch put aside is handed
/// out later, "nothing is dropped silently". An automatic exclusive
/// member that put messages of a partition aside, and loses that
/// partition in a rebalance, must not let the new owner process newer
/// messages of it first.
#[tokio::test]
async fn what_a_typed_batch_did_not_hand_on_reaches_a_partitions_new_owner_first() {
    use tokio_memq::{PartitionRouting, TopicMessage};
    let mq = MessageQueue::new();
    within(mq.create_partitioned_topic("orders", TopicOptions::default(), 2))
        .await
        .unwrap();
    within(mq.set_partition_routing("orders", PartitionRouting::Fixed(1)))
        .await
        .unwrap();
    let join = || {
        mq.group("orders", "shipping")
            .exclusive()
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let a = within(join()).await.unwrap(); // owns both partitions
    within(mq.publish_to_partitioned(TopicMessage::new("orders", 0u32).unwrap()))
        .await
        .unwrap();
    within(mq.publish_to_partitioned(TopicMessage::new("orders", "bad").unwrap()))
        .await
        .unwrap();
    within(mq.publish_to_partitioned(TopicMessage::new("orders", 2u32).unwrap()))
        .await
        .unwrap();
    // A takes 0..=2 of partition 1; 1 and 2 are put aside.
    assert_eq!(within(a.recv_batch_typed::<u32>(10)).await.unwrap(), [0]);
    let b = within(join()).await.unwrap(); // partition 1 moves to B
    within(mq.publish_to_partitioned(TopicMessage::new("orders", 3u32).unwrap()))
        .await
        .unwrap();
    let mut order = vec![within(b.recv()).await.unwrap().offset()];
    // A's next receive gives what it put aside of partition 1 back.
    assert!(matches!(a.try_recv_now(), Err(TryRecvError::Empty)));
    while let Ok(m) = b.try_recv_now() {
        assert_eq!(m.partition, Some(1));
        order.push(m.offset());
    }
    assert_eq!(
        order,
        [1, 2, 3],
        "partition 1 processed out of order by its new owner (A's put-aside 1, 2 after 3)"
    );
}

/// One receive of member `kind` of the mixed runs below: `recv`,
/// `recv_batch(batch)`, a 50 µs `recv_timeout`, `try_recv_now`, or a `recv`
/// cancelled by a 20 µs timer (nothing got: an empty list).
async fn receive_as(
    m: &tokio_memq::Subscriber,
    kind: usize,
    batch: usize,
) -> Result<Vec<tokio_memq::TopicMessage>, tokio_memq::RecvError> {
    match kind {
        0 => m.recv().await.map(|x| vec![x]),
        1 => m.recv_batch(batch).await,
        2 => m
            .recv_timeout(Duration::from_micros(50))
            .await
            .map(|x| x.into_iter().collect()),
        3 => match m.try_recv_now() {
            Ok(x) => Ok(vec![x]),
            Err(TryRecvError::Empty) => {
                tokio::task::yield_now().await;
                Ok(vec![])
            }
            Err(TryRecvError::Closed) => Err(tokio_memq::RecvError::Closed),
            Err(e) => panic!("{e:?}"),
        },
        _ => {
            tokio::select! {
                r = m.recv() => r.map(|x| vec![x]),
                _ = tokio::time::sleep(Duration::from_micros(20)) => Ok(vec![]),
            }
        }
    }
}

/// Every value in `0..total` counted exactly once in `all` (`what`: how
/// they were counted, for the message).
fn assert_each_once(all: &std::collections::HashMap<u64, usize>, total: u64, what: &str) {
    let dups: Vec<_> = all.iter().filter(|(_, &c)| c > 1).collect();
    assert!(dups.is_empty(), "{what} twice: {:?}", &dups[..dups.len().min(10)]);
    let missing = (0..total).filter(|v| !all.contains_key(v)).count();
    assert_eq!(
        (all.len() as u64, missing),
        (total, 0),
        "{what}: {missing} missing"
    );
}

/// Three publishers of topic `t`, `per` distinct values each (publisher
/// `k` the values `k * per ..`), until all are published.
async fn publish_from_three(mq: &MessageQueue, per: u64) {
    let mut pubs = Vec::new();
    for k in 0..3u64 {
        let p = mq.publisher("t");
        pubs.push(tokio::spawn(async move {
            for j in 0..per {
                p.publish(k * per + j).await.unwrap();
                if j % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for p in pubs {
        within(p).await.unwrap();
    }
}

/// Exactly once in an automatic group over 4 partitions: 6 members each
/// using another receive (recv, recv_batch, recv_timeout with short
/// timeouts, try_recv_now, a stream, receives cancelled by a short
/// `select!` timer), 3 publishers, then `close()`: every message once, in
/// offset order per partition for each member, every member told Closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_automatic_group_delivers_exactly_once_to_mixed_and_cancelled_receives() {
    use std::collections::HashMap;
    use std::sync::Arc;
    use tokio_stream::StreamExt;
    const PER_PUBLISHER: u64 = 4_000;
    let mq = MessageQueue::new();
    within(mq.create_partitioned_topic("t", TopicOptions::default(), 4))
        .await
        .unwrap();
    let mut members = Vec::new();
    for _ in 0..6 {
        members.push(Arc::new(
            within(mq.group("t", "g").mode(ConsumptionMode::Earliest).join())
                .await
                .unwrap(),
        ));
    }
    let mut tasks = Vec::new();
    for (i, m) in members.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut got: Vec<(usize, u64, u64)> = Vec::new();
            let push = |got: &mut Vec<(usize, u64, u64)>, msg: tokio_memq::TopicMessage| {
                got.push((
                    msg.partition.unwrap(),
                    msg.offset(),
                    msg.deserialize::<u64>().unwrap(),
                ));
            };
            if i == 4 {
                let m = Arc::try_unwrap(m).unwrap();
                let mut s = m.into_stream();
                while let Some(r) = s.next().await {
                    push(&mut got, r.unwrap());
                }
                return got;
            }
            loop {
                let r = receive_as(&m, i, 7).await;
                match r {
                    Ok(v) => v.into_iter().for_each(|x| push(&mut got, x)),
                    Err(tokio_memq::RecvError::Closed) => return got,
                    Err(e) => panic!("member {i}: {e:?}"),
                }
            }
        }));
    }
    publish_from_three(&mq, PER_PUBLISHER).await;
    mq.close();
    let mut all: HashMap<u64, usize> = HashMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let got = within(t).await.unwrap();
        let mut last: HashMap<usize, u64> = HashMap::new();
        for (p, off, v) in got {
            if let Some(&l) = last.get(&p) {
                assert!(off > l, "member {i}: partition {p} offset {off} after {l}");
            }
            last.insert(p, off);
            *all.entry(v).or_default() += 1;
        }
    }
    let total = 3 * PER_PUBLISHER;
    assert_each_once(&all, total, "delivered");
}

/// Manual group, 4 partitions, max_pending 16, 5 members with mixed and
/// cancelled receives, acking each message (nacking one first delivery in
/// 7): every message acknowledged exactly once, nothing left pending,
/// members all told Closed after `close()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_group_has_every_message_acked_once_under_max_pending() {
    use std::collections::HashMap;
    use std::sync::Arc;
    const PER_PUBLISHER: u64 = 3_000;
    let mq = MessageQueue::new();
    within(mq.create_partitioned_topic("t", TopicOptions::default(), 4))
        .await
        .unwrap();
    let mut members = Vec::new();
    for _ in 0..5 {
        members.push(Arc::new(
            within(
                mq.group("t", "g")
                    .manual_ack()
                    .max_pending(16)
                    .mode(ConsumptionMode::Earliest)
                    .join(),
            )
            .await
            .unwrap(),
        ));
    }
    let mut tasks = Vec::new();
    for (i, m) in members.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<u64> = Vec::new();
            loop {
                let r = receive_as(&m, i, 5).await;
                match r {
                    Ok(v) => {
                        for x in v {
                            let val = x.deserialize::<u64>().unwrap();
                            if x.deliveries == 1 && val % 7 == 0 {
                                m.nack(&x).unwrap();
                            } else {
                                m.ack(&x).unwrap();
                                acked.push(val);
                            }
                        }
                    }
                    Err(tokio_memq::RecvError::Closed) => return acked,
                    Err(e) => panic!("member {i}: {e:?}"),
                }
            }
        }));
    }
    publish_from_three(&mq, PER_PUBLISHER).await;
    // Wait until everything is acknowledged, then close.
    within(async {
        loop {
            let s = mq.get_group_stats("t", "g").await.unwrap();
            if s.lag == 0 && s.pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    mq.close();
    let mut all: HashMap<u64, usize> = HashMap::new();
    for t in tasks {
        for v in within(t).await.unwrap() {
            *all.entry(v).or_default() += 1;
        }
    }
    let total = 3 * PER_PUBLISHER;
    assert_each_once(&all, total, "acked");
}

/// `TopicOptions::message_ttl`: "Expired messages are never delivered".
/// A plain subscriber drops what a typed batch put aside once it expires
/// (as the topic would have); a member of an automatic group handed it
/// out past its TTL (it kept it; it now gives it back to the group, which
/// expires it).
#[tokio::test(start_paused = true)]
async fn an_automatic_member_never_hands_out_an_expired_message_a_typed_batch_did_not_hand_on() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(1)),
        ..TopicOptions::default()
    };
    let w = within(
        mq.group("jobs", "g")
            .options(options)
            .mode(ConsumptionMode::Earliest)
            .join(),
    )
    .await
    .unwrap();
    let p = mq.publisher("jobs");
    within(p.publish(0u32)).await.unwrap();
    within(p.publish("bad")).await.unwrap();
    within(p.publish(2u32)).await.unwrap();
    assert_eq!(within(w.recv_batch_typed::<u32>(10)).await.unwrap(), [0]);
    tokio::time::advance(Duration::from_secs(5)).await;
    let r = w.try_recv_now();
    assert!(
        matches!(r, Err(TryRecvError::Empty)),
        "handed out a message 5 s past its 1 s TTL: {r:?}"
    );
}
