//! Adversarial tests of partitioned topics, subscribers of every partition
//! ("merged" subscribers) and wildcard subscriptions: exactly-once and
//! per-partition order while publishers race routing changes, the turn
//! order partitions take, exact lag counts per partition, `seek`,
//! `commit`, `reset_offset` and `current_offset` on merged subscribers,
//! every receive variant (`recv`, `try_recv`, `recv_batch`,
//! `recv_batch_lent`, `recv_timeout`, `recv_filter`, `stream`), waiters
//! woken by delete, close and the queue being dropped, TTL under paused
//! time, stats adding up, and wildcard subscriptions whose topics are
//! created, deleted and re-created (plain and partitioned) while a
//! receive waits, with receives cancelled mid-way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memq_testkit::within;
use tokio::task::JoinHandle;
use tokio_memq::{
    CommitError, ConsumptionMode, MessageQueue, OutOfRange, PartitionRouting, PatternRecvError,
    PatternSubscriber, RecvError, Subscriber, TopicMessage, TopicOptions, TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(30);

/// Aborts the spawned tasks however the test ends (a failed assertion
/// too), so that no loop outlives it.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(fut));
    }

    /// Waits for every task, failing on a panic inside one.
    async fn join(&mut self) {
        for t in self.0.drain(..) {
            within(LIMIT, t)
                .await
                .expect("task finished in time")
                .expect("task did not panic");
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Sets a flag when dropped (stops publisher loops on failure).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn opts(max: Option<usize>) -> TopicOptions {
    TopicOptions {
        max_messages: max,
        ..TopicOptions::default()
    }
}

fn ttl(secs: u64) -> TopicOptions {
    TopicOptions {
        message_ttl: Some(Duration::from_secs(secs)),
        ..TopicOptions::default()
    }
}

async fn next(sub: &Subscriber) -> TopicMessage {
    within(LIMIT, sub.recv())
        .await
        .expect("woken in time")
        .expect("a message")
}

async fn next_p(sub: &PatternSubscriber) -> TopicMessage {
    within(LIMIT, sub.recv())
        .await
        .expect("woken in time")
        .expect("a message")
}

/// A topic and, for a partitioned one, a partition.
type TopicPart = (String, Option<usize>);

/// `(offset, value)` pairs in arrival order.
type Offsets = Vec<(u64, u64)>;

fn val(m: &TopicMessage) -> u64 {
    m.deserialize::<u64>().expect("a u64")
}

/// `(partition, offset, value)` of a received message.
fn pov(m: &TopicMessage) -> (usize, u64, u64) {
    (m.partition.expect("a partition"), m.offset(), val(m))
}

/// Publishes `values` to partition `p` of `topic` (with fixed routing).
async fn fill(mq: &MessageQueue, topic: &str, p: usize, values: impl IntoIterator<Item = u64>) {
    mq.set_partition_routing(topic, PartitionRouting::Fixed(p))
        .await
        .unwrap();
    for v in values {
        let (got, _) = mq
            .publish_to_partitioned(TopicMessage::new(topic, v).unwrap())
            .await
            .unwrap();
        assert_eq!(got, p);
    }
}

/// Drains what a subscriber has now, noting lags, without waiting.
fn drain(sub: &Subscriber) -> (Vec<(usize, u64, u64)>, Vec<u64>) {
    let (mut got, mut lags) = (Vec::new(), Vec::new());
    loop {
        match sub.try_recv_now() {
            Ok(m) => got.push(pov(&m)),
            Err(TryRecvError::Lagged(n)) => lags.push(n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return (got, lags),
            Err(e) => panic!("{e}"),
        }
    }
}

// ---------------------------------------------------------------------
// Merged subscribers: delivery, order, turns
// ---------------------------------------------------------------------

/// Three publishers race a task that keeps changing the routing (round
/// robin, hash by key, random, fixed): a subscriber of every partition
/// receives every message exactly once, where `publish_to_partitioned`
/// said it went, each partition densely in offset order, and each
/// publisher's messages in one partition in its publish order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_gets_each_message_once_where_placed_while_routing_changes() {
    const PUBLISHERS: u64 = 3;
    const N: u64 = 400;
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("rt", opts(None), 4).await.unwrap();
    let sub = mq.subscriber("rt").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let placed = Arc::new(parking_lot_free::Placed::default());
    let mut tasks = Tasks::default();
    {
        let (mq, stop) = (mq.clone(), stop.clone());
        tasks.spawn(async move {
            let routings = [
                PartitionRouting::RoundRobin,
                PartitionRouting::Hash,
                PartitionRouting::Random,
                PartitionRouting::Fixed(3),
                PartitionRouting::Fixed(0),
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                mq.set_partition_routing("rt", routings[i % routings.len()].clone())
                    .await
                    .unwrap();
                i += 1;
                tokio::task::yield_now().await;
            }
        });
    }
    let mut publishers = Tasks::default();
    for p in 0..PUBLISHERS {
        let (mq, placed) = (mq.clone(), placed.clone());
        publishers.spawn(async move {
            for i in 0..N {
                let v = p * 1_000_000 + i;
                let msg = TopicMessage::new_with_key("rt", v, format!("k{}", i % 7)).unwrap();
                let (part, off) = mq.publish_to_partitioned(msg).await.unwrap();
                placed.put((part, off), v);
            }
        });
    }
    let mut got: Vec<(usize, u64, u64)> = Vec::new();
    let mut i = 0u64;
    while (got.len() as u64) < PUBLISHERS * N {
        if i % 3 == 0 {
            let batch = within(LIMIT, sub.recv_batch(5)).await.unwrap().unwrap();
            assert!(!batch.is_empty() && batch.len() <= 5, "{}", batch.len());
            got.extend(batch.iter().map(pov));
        } else {
            got.push(pov(&next(&sub).await));
        }
        i += 1;
    }
    publishers.join().await;
    stop.store(true, Ordering::Relaxed);
    tasks.join().await;
    assert_eq!(
        sub.try_recv_now().unwrap_err(),
        TryRecvError::Empty,
        "nothing more"
    );
    let placed = placed.take();
    assert_eq!(placed.len() as u64, PUBLISHERS * N);
    let mut per_partition: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut per_publisher: HashMap<(u64, usize), Vec<u64>> = HashMap::new();
    for &(p, o, v) in &got {
        assert_eq!(
            placed.get(&(p, o)),
            Some(&v),
            "({p}, {o}) holds what was placed there"
        );
        per_partition.entry(p).or_default().push(o);
        per_publisher.entry((v / 1_000_000, p)).or_default().push(v);
    }
    for (p, offsets) in &per_partition {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, &expected, "partition {p}: dense, in order, once each");
    }
    for (key, values) in &per_publisher {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{key:?}: publish order kept"
        );
    }
    let stats = mq.get_all_partition_stats("rt").await;
    let total: u64 = stats.iter().map(|s| s.published).sum();
    assert_eq!(total, PUBLISHERS * N);
    for s in &stats {
        assert_eq!(
            s.published as usize,
            per_partition.get(&s.partition).map_or(0, Vec::len),
            "partition {} stats against what was received",
            s.partition
        );
    }
}

/// A tiny map behind a std mutex (no extra dependency).
mod parking_lot_free {
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub(super) struct Placed(Mutex<HashMap<(usize, u64), u64>>);

    impl Placed {
        pub(super) fn put(&self, at: (usize, u64), v: u64) {
            let old = self.0.lock().unwrap().insert(at, v);
            assert!(old.is_none(), "{at:?} placed twice");
        }

        pub(super) fn take(&self) -> HashMap<(usize, u64), u64> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }
}

/// "Partitions take turns. A receive starts with the partition after the
/// one that last delivered": with three partitions holding three
/// messages each, single receives visit 0, 1, 2, 0, 1, 2, ...; a busy
/// partition does not starve one that gets a message later.
#[tokio::test]
async fn merged_single_receives_take_turns_across_partitions() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("turns", opts(None), 3).await.unwrap();
    let sub = mq.subscriber("turns").await.unwrap();
    for p in 0..3 {
        fill(&mq, "turns", p, (0..3).map(|i| p as u64 * 10 + i)).await;
    }
    let mut order = Vec::new();
    for i in 0..9 {
        let m = if i % 2 == 0 {
            next(&sub).await
        } else {
            sub.try_recv().await.unwrap()
        };
        order.push(pov(&m));
    }
    assert_eq!(
        order,
        [
            (0, 0, 0),
            (1, 0, 10),
            (2, 0, 20),
            (0, 1, 1),
            (1, 1, 11),
            (2, 1, 21),
            (0, 2, 2),
            (1, 2, 12),
            (2, 2, 22)
        ]
    );
    // A busy partition 0, then one message to partition 2: it comes within
    // one round.
    fill(&mq, "turns", 0, 100..110).await;
    fill(&mq, "turns", 2, [999]).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(val(&next(&sub).await));
    }
    assert!(seen.contains(&999), "partition 2 starved: {seen:?}");
}

/// A batch receive of `max` never returns more than `max`, asks each
/// partition for `ceil(max / partitions)` in turn, and over many calls
/// delivers everything once, each partition in order; `recv_batch(0)`
/// returns at once, even with nothing there.
#[tokio::test]
async fn merged_batches_respect_max_and_share_between_partitions() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("b", opts(None), 3).await.unwrap();
    let sub = mq.subscriber("b").await.unwrap();
    assert!(within(LIMIT, sub.recv_batch(0))
        .await
        .unwrap()
        .unwrap()
        .is_empty());
    for p in 0..3 {
        fill(&mq, "b", p, (0..10).map(|i| p as u64 * 100 + i)).await;
    }
    let first = within(LIMIT, sub.recv_batch(6)).await.unwrap().unwrap();
    let parts: Vec<usize> = first.iter().map(|m| m.partition.unwrap()).collect();
    assert_eq!(parts, [0, 0, 1, 1, 2, 2], "two from each partition");
    let mut all: Vec<(usize, u64, u64)> = first.iter().map(pov).collect();
    for max in [1usize, 2, 4, 5, 7, 100] {
        let batch = within(LIMIT, sub.recv_batch(max)).await.unwrap().unwrap();
        assert!(
            !batch.is_empty() && batch.len() <= max,
            "max {max}: {}",
            batch.len()
        );
        all.extend(batch.iter().map(pov));
        if all.len() == 30 {
            break;
        }
    }
    assert_eq!(all.len(), 30);
    for p in 0..3usize {
        let mine: Vec<(u64, u64)> = all.iter().filter(|m| m.0 == p).map(|m| (m.1, m.2)).collect();
        let expected: Vec<(u64, u64)> = (0..10).map(|i| (i, p as u64 * 100 + i)).collect();
        assert_eq!(mine, expected, "partition {p}");
    }
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
}

/// `recv_batch_lent` on a merged subscriber: each lent message says its
/// partition and offset, and what it lends is what an owned batch would
/// have returned.
#[tokio::test]
async fn merged_lent_batches_say_their_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("lent", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("lent").await.unwrap();
    fill(&mq, "lent", 1, [10, 11, 12]).await;
    fill(&mq, "lent", 0, [0, 1]).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        let batch = within(LIMIT, sub.recv_batch_lent(2)).await.unwrap().unwrap();
        assert!(batch.len() <= 2);
        for m in batch.iter() {
            got.push((
                m.partition().unwrap(),
                m.offset(),
                m.deserialize::<u64>().unwrap(),
            ));
        }
    }
    got.sort_unstable();
    assert_eq!(got, [(0, 0, 0), (0, 1, 1), (1, 0, 10), (1, 1, 11), (1, 2, 12)]);
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
}

/// The round-robin counter is one per topic, shared by single publishes,
/// batches and keyless messages under hash routing ("A message without a
/// key takes the next round-robin partition (the same counter as
/// `RoundRobin`)"; "A batch takes a run of consecutive numbers").
#[tokio::test]
async fn one_round_robin_counter_serves_publishes_batches_and_keyless_hash() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("rr", opts(None), 3).await.unwrap();
    let one = |v: u64| TopicMessage::new("rr", v).unwrap();
    assert_eq!(mq.publish_to_partitioned(one(0)).await.unwrap(), (0, 0));
    let placed = mq
        .publish_batch_to_partitioned(vec![one(1), one(2), one(3)])
        .await
        .unwrap();
    assert_eq!(placed, [(1, 0), (2, 0), (0, 1)]);
    // Through a publisher of the topic: the same counter.
    mq.publisher("rr").publish(4u64).await.unwrap();
    mq.set_partition_routing("rr", PartitionRouting::Hash)
        .await
        .unwrap();
    assert_eq!(
        mq.publish_to_partitioned(one(5)).await.unwrap(),
        (2, 1),
        "keyless: next in turn"
    );
    mq.set_partition_routing("rr", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    assert_eq!(mq.publish_to_partitioned(one(6)).await.unwrap(), (0, 2));
    let sub = mq.blocking_subscriber("rr", ConsumptionMode::Earliest).unwrap();
    let (mut got, lags) = drain(&sub);
    assert!(lags.is_empty());
    got.sort_unstable();
    assert_eq!(
        got,
        [
            (0, 0, 0),
            (0, 1, 3),
            (0, 2, 6),
            (1, 0, 1),
            (1, 1, 4),
            (2, 0, 2),
            (2, 1, 5)
        ]
    );
}

// ---------------------------------------------------------------------
// Lag
// ---------------------------------------------------------------------

/// Each partition that evicted unread messages reports its own exact
/// count once; the counts add up to the topic's `evicted`; `lag()` counts
/// the evicted ones until they are reported; single receives, batches and
/// `try_recv` agree.
#[tokio::test]
async fn merged_lag_is_exact_per_partition_for_every_receive_kind() {
    for kind in 0..3 {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("lag", opts(Some(2)), 3)
            .await
            .unwrap();
        let sub = mq.subscriber("lag").await.unwrap();
        // Round robin: five to each partition; each keeps its last two.
        for v in 0..15u64 {
            mq.publish_to_partitioned(TopicMessage::new("lag", v).unwrap())
                .await
                .unwrap();
        }
        assert_eq!(sub.lag(), 15, "kind {kind}: evicted unread messages count");
        let stats = mq.get_topic_stats("lag").await.unwrap();
        assert_eq!((stats.evicted, stats.message_count), (9, 6));
        let (mut got, mut lags) = (Vec::new(), Vec::new());
        while got.len() < 6 {
            match kind {
                0 => match within(LIMIT, sub.recv()).await.unwrap() {
                    Ok(m) => got.push(pov(&m)),
                    Err(RecvError::Lagged(n)) => lags.push(n),
                    Err(e) => panic!("{e}"),
                },
                1 => match within(LIMIT, sub.recv_batch(4)).await.unwrap() {
                    Ok(b) => got.extend(b.iter().map(pov)),
                    Err(RecvError::Lagged(n)) => lags.push(n),
                    Err(e) => panic!("{e}"),
                },
                _ => match sub.try_recv().await {
                    Ok(m) => got.push(pov(&m)),
                    Err(TryRecvError::Lagged(n)) => lags.push(n),
                    Err(e) => panic!("{e}"),
                },
            }
            assert!(lags.len() <= 3, "kind {kind}: {lags:?}");
        }
        assert_eq!(lags, [3, 3, 3], "kind {kind}: one report per partition");
        got.sort_unstable();
        assert_eq!(
            got,
            [
                (0, 3, 9),
                (0, 4, 12),
                (1, 3, 10),
                (1, 4, 13),
                (2, 3, 11),
                (2, 4, 14)
            ],
            "kind {kind}"
        );
        assert_eq!(sub.lag(), 0, "kind {kind}");
        assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    }
}

// ---------------------------------------------------------------------
// seek, reset_offset, commit, current_offset
// ---------------------------------------------------------------------

/// `seek` moves every partition to the offset (or none): after it, each
/// partition is read again from there; the next offset of every
/// partition is accepted; past it is `OutOfRange` naming the first
/// partition that refuses, and nothing moved.
#[tokio::test]
async fn merged_seek_moves_every_partition_or_none() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("sk", opts(None), 3).await.unwrap();
    let sub = mq.subscriber("sk").await.unwrap();
    for p in 0..3 {
        fill(&mq, "sk", p, (0..5).map(|i| p as u64 * 10 + i)).await;
    }
    let (first, _) = drain(&sub);
    assert_eq!(first.len(), 15);
    sub.seek(2).await.unwrap();
    assert_eq!(sub.positions(), [(0, 2), (1, 2), (2, 2)]);
    let (mut again, _) = drain(&sub);
    again.sort_unstable();
    let expected: Vec<(usize, u64, u64)> = (0..3usize)
        .flat_map(|p| (2..5u64).map(move |o| (p, o, p as u64 * 10 + o)))
        .collect();
    assert_eq!(again, expected);
    sub.seek(5).await.unwrap();
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        sub.seek(6).await.unwrap_err(),
        OutOfRange {
            requested: 6,
            low: 0,
            high: 5
        }
    );
    // Partition 1 one ahead: 6 is still out of range in partition 0.
    fill(&mq, "sk", 1, [15]).await;
    sub.seek(0).await.unwrap();
    let err = sub.seek(6).await.unwrap_err();
    assert_eq!((err.requested, err.high), (6, 5), "partition 0 refuses");
    assert_eq!(sub.positions(), [(0, 0), (1, 0), (2, 0)], "nothing moved");
    assert_eq!(drain(&sub).0.len(), 16);
}

/// A seek wakes a receive of the same subscriber parked in another task
/// (the subscriber is shared): it delivers from the new position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_seek_wakes_a_receive_parked_in_another_task() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("wake", opts(None), 2).await.unwrap();
    let sub = Arc::new(mq.subscriber("wake").await.unwrap());
    fill(&mq, "wake", 1, [7, 8]).await;
    assert_eq!(drain(&sub).0.len(), 2);
    let mut tasks = Tasks::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    {
        let sub = sub.clone();
        tasks.spawn(async move {
            let m = within(LIMIT, sub.recv()).await.unwrap().unwrap();
            let _ = tx.send(pov(&m));
        });
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    sub.seek_partition(1, 1).await.unwrap();
    assert_eq!(within(LIMIT, rx).await.unwrap().unwrap(), (1, 1, 8));
    tasks.join().await;
}

/// `reset_offset` after evictions: every partition goes back to its
/// oldest retained message, with no lag reported for what was evicted
/// before it (the reader had read it all).
#[tokio::test]
async fn merged_reset_offset_goes_to_each_partitions_oldest_retained() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("rs", opts(Some(3)), 2).await.unwrap();
    let sub = mq.subscriber("rs").await.unwrap();
    fill(&mq, "rs", 0, 0..5).await;
    fill(&mq, "rs", 1, 10..12).await;
    let (got, lags) = drain(&sub);
    assert_eq!((got.len(), lags), (5, vec![2]), "partition 0 evicted 2 unread");
    sub.reset_offset().await;
    assert_eq!(sub.positions(), [(0, 2), (1, 0)]);
    assert_eq!(sub.lag(), 5);
    let (mut again, lags) = drain(&sub);
    again.sort_unstable();
    assert!(lags.is_empty(), "{lags:?}");
    assert_eq!(again, [(0, 2, 2), (0, 3, 3), (0, 4, 4), (1, 0, 10), (1, 1, 11)]);
}

/// `commit` on a merged subscriber commits the offset in every partition
/// or in none, naming the first partition that has not published it;
/// `committed_offset` is partition 0's; `commit_partition` checks its
/// partition.
#[tokio::test]
async fn merged_commit_is_all_or_nothing() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("cm", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("cm").await.unwrap();
    fill(&mq, "cm", 0, 0..3).await;
    fill(&mq, "cm", 1, [10]).await;
    assert_eq!(
        sub.commit(2).await,
        Err(CommitError::NotPublished { offset: 2, high: 1 })
    );
    assert_eq!(sub.committed_offset(), None, "nothing committed");
    sub.commit(0).await.unwrap();
    assert_eq!(sub.committed_offset(), Some(0));
    sub.commit_partition(0, 2).await.unwrap();
    assert_eq!(sub.committed_offset(), Some(2));
    assert_eq!(
        sub.commit_partition(1, 1).await,
        Err(CommitError::NotPublished { offset: 1, high: 1 })
    );
    assert_eq!(
        sub.commit_partition(2, 0).await,
        Err(CommitError::NoSuchPartition {
            partition: 2,
            partitions: 2
        })
    );
    // A commit does not move the subscriber.
    assert_eq!(drain(&sub).0.len(), 4);
}

/// `current_offset`: `None` over several partitions, the partition's
/// offset for a partitioned topic of one partition (also after an
/// eviction: where the subscriber stood); `positions` for all.
#[tokio::test]
async fn merged_current_offset_and_positions() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("one", opts(Some(2)), 1)
        .await
        .unwrap();
    mq.create_partitioned_topic("two", opts(None), 2).await.unwrap();
    let one = mq.subscriber("one").await.unwrap();
    let two = mq.subscriber("two").await.unwrap();
    assert_eq!(one.current_offset().await, Some(0));
    assert_eq!(two.current_offset().await, None);
    for v in 0..3u64 {
        mq.publish_to_partitioned(TopicMessage::new("one", v).unwrap())
            .await
            .unwrap();
        mq.publish_to_partitioned(TopicMessage::new("two", v).unwrap())
            .await
            .unwrap();
    }
    // Offset 0 of "one" was evicted unread: still where it stood.
    assert_eq!(one.current_offset().await, Some(0));
    assert_eq!(
        within(LIMIT, one.recv()).await.unwrap().unwrap_err(),
        RecvError::Lagged(1)
    );
    assert_eq!(one.current_offset().await, Some(1));
    assert_eq!(next(&one).await.offset(), 1);
    assert_eq!(one.current_offset().await, Some(2));
    next(&two).await;
    assert_eq!(two.positions(), [(0, 1), (1, 0)]);
    assert_eq!(two.partition_offset(2), None);
}

// ---------------------------------------------------------------------
// Waiters woken by delete, close, the queue dropped
// ---------------------------------------------------------------------

/// Which receive a waiting task runs.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    Recv,
    Batch,
    Lent,
    Timeout,
    Stream,
    Filter,
}

const WAITINGS: [Waiting; 6] = [
    Waiting::Recv,
    Waiting::Batch,
    Waiting::Lent,
    Waiting::Timeout,
    Waiting::Stream,
    Waiting::Filter,
];

/// Receives with `how` until the subscriber ends: the values received,
/// and whether it ended with `Closed`.
async fn receive_until_closed(sub: &Subscriber, how: Waiting) -> Vec<u64> {
    use tokio_stream::StreamExt;
    let mut got = Vec::new();
    if let Waiting::Stream = how {
        let mut stream = sub.stream();
        while let Some(m) = stream.next().await {
            got.push(val(&m.unwrap()));
        }
        return got;
    }
    loop {
        let r: Result<Vec<u64>, RecvError> = match how {
            Waiting::Recv => sub.recv().await.map(|m| vec![val(&m)]),
            Waiting::Batch => sub.recv_batch(3).await.map(|b| b.iter().map(val).collect()),
            Waiting::Lent => sub
                .recv_batch_lent(3)
                .await
                .map(|b| b.iter().map(|m| m.deserialize::<u64>().unwrap()).collect()),
            Waiting::Timeout => match sub.recv_timeout(Duration::from_secs(3600)).await {
                Ok(Some(m)) => Ok(vec![val(&m)]),
                Ok(None) => panic!("timed out instead of closing"),
                Err(e) => Err(e),
            },
            Waiting::Filter => sub.recv_filter(|_| true).await.map(|m| vec![val(&m)]),
            Waiting::Stream => unreachable!(),
        };
        match r {
            Ok(v) => got.extend(v),
            Err(RecvError::Closed) => return got,
            Err(e) => panic!("{how:?}: {e}"),
        }
    }
}

/// How the topic goes away under a waiting receive.
#[derive(Clone, Copy, Debug)]
enum Ending {
    DeletePartitioned,
    DeleteTopic,
    Close,
    DropQueue,
}

/// For every receive kind and every way a partitioned topic ends: a
/// merged receive waiting on an empty topic wakes, the messages published
/// just before the end are delivered, then it ends with `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_merged_receive_ends_with_closed_however_the_topic_ends() {
    for ending in [
        Ending::DeletePartitioned,
        Ending::DeleteTopic,
        Ending::Close,
        Ending::DropQueue,
    ] {
        for how in WAITINGS {
            let mq = MessageQueue::new();
            mq.create_partitioned_topic("end", opts(None), 3).await.unwrap();
            let sub = mq.subscriber("end").await.unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut tasks = Tasks::default();
            tasks.spawn(async move {
                let got = within(LIMIT, receive_until_closed(&sub, how)).await;
                let _ = tx.send(got.map_err(|_| ()));
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            // Published while it waits, so that it has something to drain.
            let publish = mq.publish_batch_to_partitioned(
                (0..5u64).map(|v| TopicMessage::new("end", v).unwrap()).collect(),
            );
            let publish = publish.await.unwrap();
            assert_eq!(publish.len(), 5);
            match ending {
                Ending::DeletePartitioned => assert!(mq.delete_partitioned_topic("end").await),
                Ending::DeleteTopic => assert!(mq.delete_topic("end").await),
                Ending::Close => mq.close(),
                Ending::DropQueue => drop(mq),
            }
            let got = within(LIMIT, rx)
                .await
                .unwrap_or_else(|_| panic!("{ending:?}/{how:?}: not woken"))
                .unwrap();
            let mut got = got.unwrap_or_else(|()| panic!("{ending:?}/{how:?}: never ended"));
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2, 3, 4], "{ending:?}/{how:?}");
            tasks.join().await;
        }
    }
}

/// A live publisher of the partitioned topic keeps it open when the queue
/// is dropped; the waiting merged receive gets its messages and ends only
/// when that publisher is dropped. `publish_to_partitioned`'s own
/// publisher does not keep it open.
#[tokio::test]
async fn a_live_publisher_keeps_a_merged_receive_waiting_after_the_queue_is_dropped() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("kept", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("kept").await.unwrap();
    mq.publish_to_partitioned(TopicMessage::new("kept", 1u64).unwrap())
        .await
        .unwrap();
    let publisher = mq.publisher("kept");
    drop(mq);
    assert!(!sub.is_closed(), "a publisher can still publish");
    assert_eq!(val(&next(&sub).await), 1);
    let sub = Arc::new(sub);
    let mut tasks = Tasks::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let sub = sub.clone();
        tasks.spawn(async move {
            loop {
                let r = within(LIMIT, sub.recv()).await.unwrap();
                let end = r.is_err();
                let _ = tx.send(r.map(|m| pov(&m)));
                if end {
                    return;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(rx.try_recv().is_err(), "still waiting");
    publisher.publish(2u64).await.unwrap();
    publisher.publish(3u64).await.unwrap();
    drop(publisher);
    let mut got = Vec::new();
    let end = loop {
        match within(LIMIT, rx.recv()).await.unwrap().unwrap() {
            Ok(m) => got.push(m),
            Err(e) => break e,
        }
    };
    got.sort_unstable();
    // Round robin went on from the first publish (partition 0): 2 to
    // partition 1, 3 to partition 0.
    assert_eq!(got, [(0, 1, 3), (1, 0, 2)]);
    assert_eq!(end, RecvError::Closed);
    tasks.join().await;
}

/// One merged subscriber shared by several tasks, each with another
/// receive kind, under concurrent publishers: every message goes to one
/// task exactly once (receives share the cursors), and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_subscriber_shared_by_tasks_delivers_each_message_once() {
    const N: u64 = 3_000;
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("shared", opts(None), 3)
        .await
        .unwrap();
    let sub = Arc::new(mq.subscriber("shared").await.unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64, u64)>();
    let mut readers = Tasks::default();
    for how in [Waiting::Recv, Waiting::Batch, Waiting::Lent, Waiting::Timeout] {
        let (sub, tx) = (sub.clone(), tx.clone());
        readers.spawn(async move {
            loop {
                let got: Result<Vec<(usize, u64, u64)>, RecvError> = match how {
                    Waiting::Recv => sub.recv().await.map(|m| vec![pov(&m)]),
                    Waiting::Batch => sub.recv_batch(7).await.map(|b| b.iter().map(pov).collect()),
                    Waiting::Lent => sub.recv_batch_lent(5).await.map(|b| {
                        b.iter()
                            .map(|m| {
                                (
                                    m.partition().unwrap(),
                                    m.offset(),
                                    m.deserialize::<u64>().unwrap(),
                                )
                            })
                            .collect()
                    }),
                    _ => match sub.recv_timeout(Duration::from_millis(1)).await {
                        Ok(m) => Ok(m.iter().map(pov).collect()),
                        Err(e) => Err(e),
                    },
                };
                match got {
                    Ok(v) => v.into_iter().for_each(|m| tx.send(m).unwrap()),
                    Err(RecvError::Closed) => return,
                    Err(e) => panic!("{e}"),
                }
            }
        });
    }
    drop(tx);
    let mut publishers = Tasks::default();
    for p in 0..2u64 {
        let mq = mq.clone();
        publishers.spawn(async move {
            let mut i = 0;
            while i < N / 2 {
                if i % 10 == 0 {
                    let batch = (i..i + 10)
                        .map(|j| TopicMessage::new("shared", p * N + j).unwrap())
                        .collect();
                    mq.publish_batch_to_partitioned(batch).await.unwrap();
                    i += 10;
                } else {
                    mq.publish_to_partitioned(TopicMessage::new("shared", p * N + i).unwrap())
                        .await
                        .unwrap();
                    i += 1;
                }
            }
        });
    }
    publishers.join().await;
    let mut got = Vec::new();
    while got.len() < N as usize {
        got.push(within(LIMIT, rx.recv()).await.unwrap().unwrap());
    }
    mq.close();
    readers.join().await;
    assert!(rx.try_recv().is_err(), "nothing delivered twice");
    let values: BTreeSet<u64> = got.iter().map(|m| m.2).collect();
    assert_eq!(values.len(), N as usize, "every value once");
    let places: BTreeSet<(usize, u64)> = got.iter().map(|m| (m.0, m.1)).collect();
    assert_eq!(places.len(), N as usize, "every (partition, offset) once");
    for p in 0..3 {
        let n = places.iter().filter(|x| x.0 == p).count() as u64;
        assert!(
            places.iter().filter(|x| x.0 == p).map(|x| x.1).eq(0..n),
            "partition {p} dense"
        );
    }
}

/// Merged receives dropped mid-way (a `select!` against a short timer,
/// a `recv_batch` timed out) while publishers run: nothing is lost,
/// nothing delivered twice, each partition in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_receives_cancelled_mid_way_lose_nothing() {
    const N: u64 = 2_000;
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("cx", opts(None), 4).await.unwrap();
    let sub = mq.subscriber("cx").await.unwrap();
    let mut publishers = Tasks::default();
    {
        let mq = mq.clone();
        publishers.spawn(async move {
            for v in 0..N {
                mq.publish_to_partitioned(TopicMessage::new("cx", v).unwrap())
                    .await
                    .unwrap();
                if v % 64 == 0 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        });
    }
    let mut got = Vec::new();
    let mut i = 0u32;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while (got.len() as u64) < N {
        assert!(tokio::time::Instant::now() < deadline, "stalled at {}", got.len());
        i += 1;
        let short = Duration::from_micros(u64::from(i % 7) * 50);
        match i % 3 {
            0 => tokio::select! {
                r = sub.recv() => got.push(pov(&r.unwrap())),
                () = tokio::time::sleep(short) => {}
            },
            1 => {
                if let Ok(r) = tokio::time::timeout(short, sub.recv_batch(9)).await {
                    got.extend(r.unwrap().iter().map(pov));
                }
            }
            _ => {
                if let Ok(r) = tokio::time::timeout(short, sub.recv_batch_lent(4)).await {
                    got.extend(r.unwrap().iter().map(|m| m.to_message()).map(|m| pov(&m)));
                }
            }
        }
    }
    publishers.join().await;
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    let values: BTreeSet<u64> = got.iter().map(|m| m.2).collect();
    assert_eq!((got.len(), values.len()), (N as usize, N as usize));
    for p in 0..4 {
        let offsets: Vec<u64> = got.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
        assert!(
            offsets.iter().copied().eq(0..offsets.len() as u64),
            "partition {p}"
        );
    }
}

// ---------------------------------------------------------------------
// recv_filter, stream, recv_timeout
// ---------------------------------------------------------------------

/// `recv_filter` on a merged subscriber consumes what comes before the
/// match (in the turn order) and nothing after it: what follows is every
/// remaining message once, each partition going on right after what was
/// consumed.
#[tokio::test]
async fn merged_recv_filter_consumes_only_up_to_the_match() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("flt", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("flt").await.unwrap();
    for v in 0..10u64 {
        mq.publish_to_partitioned(TopicMessage::new("flt", v).unwrap())
            .await
            .unwrap(); // evens to 0, odds to 1
    }
    let hit = within(LIMIT, sub.recv_filter(|m| val(m) == 5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pov(&hit), (1, 2, 5));
    let (rest, _) = drain(&sub);
    // Turns: 0,1,0,1,0,(1 = 5): consumed 0,1,2,3,4; the rest follows.
    let mut values: Vec<u64> = rest.iter().map(|m| m.2).collect();
    values.sort_unstable();
    assert_eq!(values, [6, 7, 8, 9]);
}

/// A merged subscriber's `stream()` yields lags as items and goes on,
/// and ends after the queue is closed and every partition drained.
#[tokio::test]
async fn merged_stream_reports_lag_and_ends_after_close() {
    use tokio_stream::StreamExt;
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("st", opts(Some(1)), 2).await.unwrap();
    let sub = mq.subscriber("st").await.unwrap();
    fill(&mq, "st", 1, [1, 2, 3]).await;
    fill(&mq, "st", 0, [0]).await;
    mq.close();
    let items: Vec<Result<(usize, u64, u64), RecvError>> = within(LIMIT, sub.stream().collect::<Vec<_>>())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.map(|m| pov(&m)))
        .collect();
    let lags: Vec<&RecvError> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(lags, [&RecvError::Lagged(2)]);
    let mut msgs: Vec<(usize, u64, u64)> = items.into_iter().filter_map(Result::ok).collect();
    msgs.sort_unstable();
    assert_eq!(msgs, [(0, 0, 0), (1, 2, 3)]);
}

// ---------------------------------------------------------------------
// TTL (paused time)
// ---------------------------------------------------------------------

/// Expired messages of a partitioned topic are never delivered, not
/// reported as lag, and counted as expired in the topic's stats and as
/// dropped in each partition's.
#[tokio::test(start_paused = true)]
async fn expired_messages_of_partitions_are_skipped_and_counted() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("ttl", ttl(10), 2).await.unwrap();
    let sub = mq.subscriber("ttl").await.unwrap();
    for v in 0..4u64 {
        mq.publish_to_partitioned(TopicMessage::new("ttl", v).unwrap())
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(6)).await;
    for v in 4..6u64 {
        mq.publish_to_partitioned(TopicMessage::new("ttl", v).unwrap())
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await; // the first four expired
    assert_eq!(sub.lag(), 2, "expired messages are not counted as lag");
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(pov(&next(&sub).await));
    }
    got.sort_unstable();
    assert_eq!(got, [(0, 2, 4), (1, 2, 5)]);
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    let stats = mq.get_topic_stats("ttl").await.unwrap();
    assert_eq!(
        (stats.published, stats.expired, stats.evicted),
        (6, 4, 0),
        "{stats:?}"
    );
    let parts = mq.get_all_partition_stats("ttl").await;
    let dropped: Vec<usize> = parts.iter().map(|p| p.dropped_messages).collect();
    assert_eq!(dropped, [2, 2]);
    assert_eq!(stats.dropped_messages, 4);
}

/// A merged `recv_timeout` gives `Ok(None)` when nothing came (a message
/// that expired while it waited included), and the message when one was
/// published before the time ran out.
#[tokio::test(start_paused = true)]
async fn merged_recv_timeout_under_paused_time() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("rto", ttl(2), 3).await.unwrap();
    let sub = mq.subscriber("rto").await.unwrap();
    assert!(sub.recv_timeout(Duration::from_secs(5)).await.unwrap().is_none());
    {
        let mq = mq.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            mq.set_partition_routing("rto", PartitionRouting::Fixed(2))
                .await
                .unwrap();
            mq.publish_to_partitioned(TopicMessage::new("rto", 9u64).unwrap())
                .await
                .unwrap();
        });
    }
    let m = sub.recv_timeout(Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(pov(&m), (2, 0, 9));
    // Published, then expired before anyone looked.
    mq.publish_to_partitioned(TopicMessage::new("rto", 10u64).unwrap())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(sub.recv_timeout(Duration::from_secs(1)).await.unwrap().is_none());
    // Both expired: 9 (received, still retained) and 10 (never delivered).
    assert_eq!(mq.get_topic_stats("rto").await.unwrap().expired, 2);
}

/// A partition of a topic whose publishers wait (`lru_enabled: false`):
/// a publish parked on the full partition completes when the messages
/// holding it expire, while a merged reader sees only the live ones.
#[tokio::test(start_paused = true)]
async fn a_publish_parked_on_a_full_partition_completes_when_its_messages_expire() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(2),
        lru_enabled: false,
        message_ttl: Some(Duration::from_secs(10)),
        ..TopicOptions::default()
    };
    mq.create_partitioned_topic("full", options, 2).await.unwrap();
    let sub = mq.subscriber("full").await.unwrap();
    fill(&mq, "full", 1, [1, 2]).await;
    let parked = {
        let mq = mq.clone();
        tokio::spawn(async move {
            mq.publish_to_partitioned(TopicMessage::new("full", 3u64).unwrap())
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!parked.is_finished(), "partition 1 is full and unread");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let placed = within(LIMIT, parked).await.unwrap().unwrap();
    assert_eq!(placed, (1, 2));
    let m = next(&sub).await;
    assert_eq!(pov(&m), (1, 2, 3), "the expired ones skipped silently");
}

// ---------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------

/// Topic stats of a partitioned topic are the sums of its partitions'
/// (published, retained, dropped); its subscriber count is the busiest
/// partition's; a merged subscriber counts once in every partition, and
/// leaves every partition when dropped.
#[tokio::test]
async fn partitioned_stats_add_up() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("sum", opts(Some(4)), 3)
        .await
        .unwrap();
    let all = mq.subscriber("sum").await.unwrap();
    let one = mq
        .subscribe_partition("sum", 1, None, ConsumptionMode::Latest)
        .await
        .unwrap();
    for v in 0..10u64 {
        mq.publish_to_partitioned(TopicMessage::new("sum", v).unwrap())
            .await
            .unwrap();
    }
    let batch: Vec<TopicMessage> = (10..20u64)
        .map(|v| TopicMessage::new("sum", v).unwrap())
        .collect();
    mq.publish_batch_to_partitioned(batch).await.unwrap();
    let parts = mq.get_all_partition_stats("sum").await;
    let topic = mq.get_topic_stats("sum").await.unwrap();
    assert_eq!(parts.iter().map(|p| p.published).collect::<Vec<_>>(), [7, 7, 6]);
    assert_eq!(
        parts.iter().map(|p| p.message_count).collect::<Vec<_>>(),
        [4, 4, 4]
    );
    assert_eq!(
        parts.iter().map(|p| p.subscriber_count).collect::<Vec<_>>(),
        [1, 2, 1]
    );
    assert_eq!(
        (
            topic.published,
            topic.message_count,
            topic.evicted,
            topic.dropped_messages
        ),
        (20, 12, 8, 8)
    );
    assert_eq!(topic.subscriber_count, 2);
    assert_eq!(
        (topic.low_offset, topic.next_offset),
        (0, 0),
        "offsets are per partition"
    );
    for row in &parts {
        let single = mq.get_partition_stats("sum", row.partition).await.unwrap();
        assert_eq!(single.published, row.published);
        assert_eq!(
            (single.low_offset, single.next_offset),
            (row.low_offset, row.next_offset)
        );
        assert_eq!(single.next_offset, single.published);
        assert_eq!(
            single.next_offset - single.low_offset,
            single.message_count as u64
        );
    }
    drop(all);
    let parts = mq.get_all_partition_stats("sum").await;
    assert_eq!(
        parts.iter().map(|p| p.subscriber_count).collect::<Vec<_>>(),
        [0, 1, 0]
    );
    drop(one);
    assert_eq!(mq.get_topic_stats("sum").await.unwrap().subscriber_count, 0);
}

// ---------------------------------------------------------------------
// Wildcard subscriptions
// ---------------------------------------------------------------------

/// A topic deleted and created again under the same name while a pattern
/// receive waits: the old topic's retained message and the new topic's
/// (from its first offset) both arrive, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_pattern_receive_sees_a_topic_deleted_and_re_created() {
    let mq = MessageQueue::new();
    let sub = Arc::new(mq.subscribe_pattern("w.*").unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Tasks::default();
    {
        let sub = sub.clone();
        tasks.spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(m) => tx.send((m.topic().to_owned(), m.offset(), val(&m))).unwrap(),
                    Err(PatternRecvError::Closed) => return,
                    Err(e) => panic!("{e}"),
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    mq.publisher("w.a").publish(1u64).await.unwrap();
    assert!(mq.delete_topic("w.a").await);
    mq.publisher("w.a").publish(2u64).await.unwrap();
    mq.create_partitioned_topic("w.b", opts(None), 2).await.unwrap();
    mq.publish_to_partitioned(TopicMessage::new("w.b", 3u64).unwrap())
        .await
        .unwrap();
    assert!(mq.delete_partitioned_topic("w.b").await);
    mq.publisher("w.b").publish(4u64).await.unwrap(); // plain now
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(within(LIMIT, rx.recv()).await.unwrap().unwrap());
    }
    got.sort_unstable();
    assert_eq!(
        got,
        [
            ("w.a".to_owned(), 0, 1),
            ("w.a".to_owned(), 0, 2),
            ("w.b".to_owned(), 0, 3),
            ("w.b".to_owned(), 0, 4)
        ]
    );
    mq.close();
    tasks.join().await;
    assert!(rx.try_recv().is_err(), "nothing twice");
}

/// A partitioned topic created while a pattern receive waits wakes it,
/// and the receive reads it from its first message in every partition;
/// a partitioned topic that existed before subscribing is read from its
/// next message in every partition.
#[tokio::test]
async fn pattern_reads_partitioned_topics_from_the_right_start() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("pt.old", opts(None), 2)
        .await
        .unwrap();
    for v in 0..2u64 {
        mq.publish_to_partitioned(TopicMessage::new("pt.old", v).unwrap())
            .await
            .unwrap();
    }
    let sub = Arc::new(mq.subscribe_pattern("pt.*").unwrap());
    let waiting = {
        let sub = sub.clone();
        tokio::spawn(async move { within(LIMIT, sub.recv()).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    mq.create_partitioned_topic("pt.new", opts(None), 3)
        .await
        .unwrap();
    mq.set_partition_routing("pt.new", PartitionRouting::Fixed(2))
        .await
        .unwrap();
    mq.publish_to_partitioned(TopicMessage::new("pt.new", 7u64).unwrap())
        .await
        .unwrap();
    let m = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(
        (m.topic(), m.partition, m.offset(), val(&m)),
        ("pt.new", Some(2), 0, 7)
    );
    for v in 2..4u64 {
        mq.publish_to_partitioned(TopicMessage::new("pt.old", v).unwrap())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = next_p(&sub).await;
        got.push((m.topic().to_owned(), m.partition.unwrap(), m.offset(), val(&m)));
    }
    got.sort_unstable();
    assert_eq!(
        got,
        [("pt.old".to_owned(), 0, 1, 2), ("pt.old".to_owned(), 1, 1, 3)]
    );
    assert_eq!(sub.try_recv_now().unwrap_err(), PatternRecvError::Empty);
}

/// Close while a pattern receive waits with partitioned and plain topics
/// holding messages: it gets every retained message, then `Closed`; a
/// stream ends.
#[tokio::test]
async fn pattern_close_delivers_what_partitions_retain_then_ends() {
    use tokio_stream::StreamExt;
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("c.>").unwrap();
    mq.create_partitioned_topic("c.p", opts(None), 3).await.unwrap();
    mq.publish_batch_to_partitioned((0..6u64).map(|v| TopicMessage::new("c.p", v).unwrap()).collect())
        .await
        .unwrap();
    mq.publisher("c.q.r").publish(6u64).await.unwrap();
    let collecting = tokio::spawn(async move {
        let stream = sub.stream();
        within(LIMIT, stream.map(|r| val(&r.unwrap())).collect::<Vec<u64>>()).await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    mq.close();
    let mut got = collecting.await.unwrap().expect("ended in time");
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 6]);
}

/// Dropping the queue while a pattern receive waits: with nobody able to
/// publish or create a topic, it drains the partitioned topic and ends;
/// while a publisher of a matching topic lives, it keeps waiting and
/// gets that publisher's messages.
#[tokio::test]
async fn pattern_receive_when_the_queue_is_dropped() {
    let mq = MessageQueue::new();
    let sub = Arc::new(mq.subscribe_pattern("d.*").unwrap());
    mq.create_partitioned_topic("d.p", opts(None), 2).await.unwrap();
    mq.publish_to_partitioned(TopicMessage::new("d.p", 1u64).unwrap())
        .await
        .unwrap();
    let publisher = mq.publisher("d.live");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Tasks::default();
    {
        let sub = sub.clone();
        tasks.spawn(async move {
            loop {
                let r = within(LIMIT, sub.recv()).await.unwrap();
                let end = r.is_err();
                let _ = tx.send(r.map(|m| (m.topic().to_owned(), val(&m))));
                if end {
                    return;
                }
            }
        });
    }
    assert_eq!(
        within(LIMIT, rx.recv()).await.unwrap().unwrap(),
        Ok(("d.p".to_owned(), 1))
    );
    drop(mq);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(rx.try_recv().is_err(), "a publisher may still create d.live");
    publisher.publish(2u64).await.unwrap();
    assert_eq!(
        within(LIMIT, rx.recv()).await.unwrap().unwrap(),
        Ok(("d.live".to_owned(), 2))
    );
    drop(publisher);
    assert_eq!(
        within(LIMIT, rx.recv()).await.unwrap().unwrap(),
        Err(PatternRecvError::Closed)
    );
    tasks.join().await;
}

/// Pattern receives dropped mid-way (against short timers, and
/// `recv_timeout`s that run out) while publishers feed a plain and a
/// partitioned topic and a third topic is created midway: every message
/// arrives once, each topic (each partition) in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_receives_cancelled_mid_way_lose_nothing() {
    const N: u64 = 1_500;
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("cc.*").unwrap();
    mq.create_partitioned_topic("cc.part", opts(None), 3)
        .await
        .unwrap();
    let mut publishers = Tasks::default();
    for name in ["cc.plain", "cc.part", "cc.late"] {
        let mq = mq.clone();
        publishers.spawn(async move {
            if name == "cc.late" {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let publisher = mq.publisher(name);
            for v in 0..N {
                publisher.publish(v).await.unwrap();
                if v % 50 == 0 {
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
        });
    }
    let mut got: BTreeMap<TopicPart, Vec<(u64, u64)>> = BTreeMap::new();
    let mut count = 0u64;
    let mut i = 0u32;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while count < 3 * N {
        assert!(tokio::time::Instant::now() < deadline, "stalled at {count}");
        i += 1;
        let short = Duration::from_micros(u64::from(i % 5) * 60);
        let m = if i % 2 == 0 {
            tokio::select! {
                r = sub.recv() => Some(r.unwrap()),
                () = tokio::time::sleep(short) => None,
            }
        } else {
            sub.recv_timeout(short).await.unwrap()
        };
        if let Some(m) = m {
            got.entry((m.topic().to_owned(), m.partition))
                .or_default()
                .push((m.offset(), val(&m)));
            count += 1;
        }
    }
    publishers.join().await;
    assert_eq!(sub.try_recv_now().unwrap_err(), PatternRecvError::Empty);
    let mut values: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for ((topic, part), seen) in &got {
        assert!(
            seen.iter().map(|s| s.0).eq(0..seen.len() as u64),
            "{topic}/{part:?}: dense offsets in order"
        );
        assert!(
            seen.windows(2).all(|w| w[0].1 < w[1].1),
            "{topic}/{part:?}: values in order"
        );
        values
            .entry(topic.clone())
            .or_default()
            .extend(seen.iter().map(|s| s.1));
    }
    for topic in ["cc.late", "cc.part", "cc.plain"] {
        assert_eq!(values[topic].len() as u64, N, "{topic}: every message once");
    }
}

/// Expired messages of a partitioned topic matching a pattern are
/// skipped silently (no lag), and `lag()` leaves them out.
#[tokio::test(start_paused = true)]
async fn pattern_skips_expired_partition_messages_silently() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("e.*").unwrap();
    mq.create_partitioned_topic("e.p", ttl(5), 2).await.unwrap();
    for v in 0..4u64 {
        mq.publish_to_partitioned(TopicMessage::new("e.p", v).unwrap())
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(6)).await;
    mq.publish_to_partitioned(TopicMessage::new("e.p", 4u64).unwrap())
        .await
        .unwrap();
    assert_eq!(sub.lag(), [("e.p".to_string(), 1)]);
    let m = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!((m.partition, m.offset(), val(&m)), (Some(0), 2, 4));
    assert_eq!(sub.try_recv_now().unwrap_err(), PatternRecvError::Empty);
    assert!(sub.recv_timeout(Duration::from_secs(1)).await.unwrap().is_none());
}

/// A deleted partitioned topic leaves the pattern's set once drained, a
/// re-created one joins; `topics()` and `lag()` say so along the way.
#[tokio::test]
async fn pattern_topics_and_lag_follow_a_partitioned_topic_through_delete() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("l.*").unwrap();
    mq.create_partitioned_topic("l.p", opts(Some(2)), 2)
        .await
        .unwrap();
    for v in 0..6u64 {
        mq.publish_to_partitioned(TopicMessage::new("l.p", v).unwrap())
            .await
            .unwrap(); // three to each partition, each keeps two
    }
    assert_eq!(sub.lag(), [("l.p".to_string(), 6)]);
    assert!(mq.delete_partitioned_topic("l.p").await);
    assert_eq!(sub.topics(), ["l.p"], "still to drain");
    let (mut lags, mut values) = (Vec::new(), Vec::new());
    loop {
        match sub.try_recv_now() {
            Ok(m) => values.push(val(&m)),
            Err(PatternRecvError::Lagged { topic, count }) => lags.push((topic.to_string(), count)),
            Err(PatternRecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    values.sort_unstable();
    assert_eq!(values, [2, 3, 4, 5]);
    assert_eq!(lags, [("l.p".to_string(), 1), ("l.p".to_string(), 1)]);
    assert!(sub.topics().is_empty(), "drained and deleted: gone");
    mq.create_partitioned_topic("l.p", opts(None), 3).await.unwrap();
    assert_eq!(sub.topics(), ["l.p"]);
    assert_eq!(sub.lag(), [("l.p".to_string(), 0)]);
}

// ---------------------------------------------------------------------
// Publishers parked on a partition
// ---------------------------------------------------------------------

fn waiting_opts(max: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(max),
        lru_enabled: false,
        ..TopicOptions::default()
    }
}

/// Routes by the key's first digit (keyless: partition 0).
fn by_key() -> PartitionRouting {
    PartitionRouting::Custom(Arc::new(|key: Option<&[u8]>, _n: usize| {
        key.map_or(0, |k| usize::from(k[0] - b'0'))
    }))
}

/// A `publish_to_partitioned` parked on a full partition whose reader
/// has not read: deleting the topic (or closing the queue) wakes it with
/// `Closed` and the message back; nothing was published.
#[tokio::test]
async fn a_parked_publish_to_a_partition_gets_closed_and_its_message_back() {
    for close in [false, true] {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("pk", waiting_opts(1), 2)
            .await
            .unwrap();
        let sub = mq.subscriber("pk").await.unwrap();
        mq.set_partition_routing("pk", PartitionRouting::Fixed(1))
            .await
            .unwrap();
        mq.publish_to_partitioned(TopicMessage::new("pk", 1u64).unwrap())
            .await
            .unwrap();
        let parked = {
            let mq = mq.clone();
            tokio::spawn(async move {
                within(
                    LIMIT,
                    mq.publish_to_partitioned(TopicMessage::new("pk", 2u64).unwrap()),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!parked.is_finished(), "partition 1 is full and unread");
        if close {
            mq.close();
        } else {
            assert!(mq.delete_partitioned_topic("pk").await);
        }
        let err = parked.await.unwrap().expect("woken").unwrap_err();
        assert_eq!(err.kind(), tokio_memq::PublishErrorKind::Closed, "close {close}");
        assert_eq!(val(&err.into_inner()), 2, "the message comes back");
        let (got, lags) = drain(&sub);
        assert_eq!((got, lags), (vec![(1, 0, 1)], vec![]), "close {close}");
    }
}

/// A batch over partitions whose second share waits for room: closing
/// the queue leaves the first share published (and delivered) and hands
/// back exactly the second share, in input order, with `Closed`.
#[tokio::test]
async fn a_parked_batch_hands_back_exactly_its_unpublished_share_on_close() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("pb", waiting_opts(2), 2)
        .await
        .unwrap();
    let sub = mq.subscriber("pb").await.unwrap();
    mq.set_partition_routing("pb", by_key()).await.unwrap();
    for v in [100u64, 101] {
        mq.publish_to_partitioned(TopicMessage::new_with_key("pb", v, "1").unwrap())
            .await
            .unwrap();
    }
    let batch: Vec<TopicMessage> = (0..4u64)
        .map(|v| TopicMessage::new_with_key("pb", v, if v % 2 == 0 { "0" } else { "1" }).unwrap())
        .collect();
    let parked = {
        let mq = mq.clone();
        tokio::spawn(async move { within(LIMIT, mq.publish_batch_to_partitioned(batch)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!parked.is_finished(), "partition 1 is full and unread");
    mq.close();
    let err = parked.await.unwrap().expect("woken").unwrap_err();
    assert_eq!(err.kind(), tokio_memq::PublishErrorKind::Closed);
    let back: Vec<u64> = err.into_inner().iter().map(val).collect();
    assert_eq!(back, [1, 3], "partition 1's share, in input order");
    let (mut got, _) = drain(&sub);
    got.sort_unstable();
    assert_eq!(got, [(0, 0, 0), (0, 1, 2), (1, 0, 100), (1, 1, 101)]);
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Closed);
}

/// A share larger than its partition can ever hold (publishers wait, no
/// eviction) is refused as `TooLarge`; the shares of lower partitions
/// stay published, and exactly the refused share and what came after
/// come back.
#[tokio::test]
async fn a_share_too_large_for_its_partition_is_handed_back() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("tl", waiting_opts(2), 3)
        .await
        .unwrap();
    mq.set_partition_routing("tl", by_key()).await.unwrap();
    let keys = ["0", "1", "1", "2", "1", "0"];
    let batch: Vec<TopicMessage> = keys
        .iter()
        .enumerate()
        .map(|(v, k)| TopicMessage::new_with_key("tl", v as u64, *k).unwrap())
        .collect();
    let err = within(LIMIT, mq.publish_batch_to_partitioned(batch))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), tokio_memq::PublishErrorKind::TooLarge);
    let mut back: Vec<u64> = err.into_inner().iter().map(val).collect();
    back.sort_unstable();
    assert_eq!(back, [1, 2, 3, 4], "partition 1's share and partition 2's");
    let published: Vec<u64> = mq
        .get_all_partition_stats("tl")
        .await
        .iter()
        .map(|s| s.published)
        .collect();
    assert_eq!(published, [2, 0, 0]);
}

// ---------------------------------------------------------------------
// More stats and handles
// ---------------------------------------------------------------------

/// Retained bytes of a partitioned topic: byte payloads weigh their
/// length, keys their bytes; evicted messages leave the total; the
/// total is the sum over partitions.
#[tokio::test]
async fn partitioned_bytes_count_payloads_and_keys_of_what_is_retained() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("by", opts(Some(2)), 2).await.unwrap();
    // Round robin: partition 0 gets lengths 1, 3, 5; partition 1 gets 2, 4, 6.
    for len in 1..=6usize {
        let msg = TopicMessage::from_bytes("by", vec![7u8; len], tokio_memq::SerializationFormat::Raw)
            .with_key("kk");
        mq.publish_to_partitioned(msg).await.unwrap();
    }
    let stats = mq.get_topic_stats("by").await.unwrap();
    // Retained: 3 and 5 in partition 0, 4 and 6 in partition 1, each with a 2-byte key.
    assert_eq!(stats.bytes, 3 + 5 + 4 + 6 + 4 * 2, "{stats:?}");
    assert_eq!(stats.total_payload_size, stats.bytes);
    assert_eq!((stats.message_count, stats.evicted), (4, 2));
}

/// A merged subscriber read from a plain thread (`iter`, and
/// `blocking_recv_batch`) gets everything, then ends when the queue is
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_merged_reader_gets_everything_then_ends() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("blk", opts(None), 3).await.unwrap();
    let a = mq.subscriber("blk").await.unwrap();
    let b = mq.subscriber("blk").await.unwrap();
    let by_iter = tokio::task::spawn_blocking(move || a.iter().map(|m| pov(&m.unwrap())).collect::<Vec<_>>());
    let by_batch = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        loop {
            match b.blocking_recv_batch(4) {
                Ok(batch) => {
                    assert!(!batch.is_empty() && batch.len() <= 4);
                    got.extend(batch.iter().map(pov));
                }
                Err(RecvError::Closed) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    for v in 0..30u64 {
        mq.publish_to_partitioned(TopicMessage::new("blk", v).unwrap())
            .await
            .unwrap();
        if v % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    mq.close();
    for reader in [by_iter, by_batch] {
        let mut got = within(LIMIT, reader).await.expect("ended").unwrap();
        got.sort_unstable();
        let expected: Vec<(usize, u64, u64)> = (0..30u64).map(|v| ((v % 3) as usize, v / 3, v)).collect();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(got, expected);
    }
}

/// Named consumers of different partitions under one name keep separate
/// commits: each resumes after its own partition's commit.
#[tokio::test]
async fn one_consumer_name_commits_per_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("nc", opts(None), 2).await.unwrap();
    fill(&mq, "nc", 0, 0..5).await;
    fill(&mq, "nc", 1, 10..15).await;
    let name = || Some("audit".to_string());
    let p0 = mq
        .subscribe_partition("nc", 0, name(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    let p1 = mq
        .subscribe_partition("nc", 1, name(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    p0.commit(2).await.unwrap();
    p1.commit_partition(1, 0).await.unwrap();
    assert_eq!((p0.committed_offset(), p1.committed_offset()), (Some(2), Some(0)));
    drop((p0, p1));
    let lags: Vec<usize> = mq
        .get_all_partition_stats("nc")
        .await
        .iter()
        .map(|s| s.consumer_lags["audit"])
        .collect();
    assert_eq!(lags, [2, 4]);
    let topic = mq.get_topic_stats("nc").await.unwrap();
    assert_eq!(topic.consumer_lags["audit"], 6, "summed over partitions");
    let r0 = mq
        .subscribe_partition("nc", 0, name(), ConsumptionMode::LastOffset)
        .await
        .unwrap();
    let r1 = mq
        .subscribe_partition("nc", 1, name(), ConsumptionMode::LastOffset)
        .await
        .unwrap();
    assert_eq!(pov(&next(&r0).await), (0, 3, 3));
    assert_eq!(pov(&next(&r1).await), (1, 1, 11));
}

/// A wildcard subscription counts as a subscriber of every partition of a
/// matching partitioned topic (from the topic's creation), and holds
/// publishers of a topic whose publishers wait; dropping it releases a
/// publish parked on it.
#[tokio::test]
async fn dropping_a_pattern_subscriber_releases_a_publisher_it_held() {
    for adopted in [false, true] {
        let mq = MessageQueue::new();
        let sub = mq.subscribe_pattern("bp.*").unwrap();
        mq.create_partitioned_topic("bp.x", waiting_opts(1), 2)
            .await
            .unwrap();
        if adopted {
            assert_eq!(sub.topics(), ["bp.x"]);
        }
        let counts: Vec<usize> = mq
            .get_all_partition_stats("bp.x")
            .await
            .iter()
            .map(|s| s.subscriber_count)
            .collect();
        assert_eq!(counts, [1, 1], "adopted {adopted}");
        mq.set_partition_routing("bp.x", PartitionRouting::Fixed(0))
            .await
            .unwrap();
        mq.publish_to_partitioned(TopicMessage::new("bp.x", 1u64).unwrap())
            .await
            .unwrap();
        let parked = {
            let mq = mq.clone();
            tokio::spawn(async move {
                within(
                    LIMIT,
                    mq.publish_to_partitioned(TopicMessage::new("bp.x", 2u64).unwrap()),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !parked.is_finished(),
            "adopted {adopted}: held by the unread subscription"
        );
        drop(sub);
        let placed = parked.await.unwrap().expect("released").unwrap();
        assert_eq!(placed, (0, 1), "adopted {adopted}");
        let counts: Vec<usize> = mq
            .get_all_partition_stats("bp.x")
            .await
            .iter()
            .map(|s| s.subscriber_count)
            .collect();
        assert_eq!(counts, [0, 0], "adopted {adopted}");
    }
}

// ---------------------------------------------------------------------
// Races, wake-ups, turns
// ---------------------------------------------------------------------

/// Concurrent creations of one partitioned topic with different counts:
/// exactly the calls asking for the count that won succeed; every other
/// gets `PartitionCount` naming the existing count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creations_agree_on_one_partition_count() {
    for round in 0..20 {
        let mq = MessageQueue::new();
        let mut handles = Vec::new();
        for count in [2usize, 3, 2, 4, 3, 2] {
            let mq = mq.clone();
            handles.push(tokio::spawn(async move {
                (
                    count,
                    mq.create_partitioned_topic("race", opts(None), count).await,
                )
            }));
        }
        let mut results = Vec::new();
        for h in handles {
            results.push(within(LIMIT, h).await.unwrap().unwrap());
        }
        let won = mq.get_all_partition_stats("race").await.len();
        for (count, r) in results {
            if count == won {
                assert_eq!(r, Ok(()), "round {round}");
            } else {
                assert_eq!(
                    r,
                    Err(tokio_memq::TopicError::PartitionCount {
                        topic: "race".into(),
                        requested: count,
                        existing: Some(won)
                    }),
                    "round {round}"
                );
            }
        }
    }
}

/// Two receives of one merged subscriber parked in two tasks are each
/// woken by a publish to any partition (checked with `within`, which
/// fails a receive that completes only when polled without a wake-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parked_merged_receives_are_each_woken() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("two", opts(None), 3).await.unwrap();
    let sub = Arc::new(mq.subscriber("two").await.unwrap());
    for round in 0..20u64 {
        let mut tasks = Tasks::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let (sub, tx) = (sub.clone(), tx.clone());
            tasks.spawn(async move {
                let m = within(LIMIT, sub.recv()).await.expect("woken").unwrap();
                tx.send(val(&m)).unwrap();
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        mq.set_partition_routing("two", PartitionRouting::Fixed((round % 3) as usize))
            .await
            .unwrap();
        mq.publish_to_partitioned(TopicMessage::new("two", round * 10).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        mq.set_partition_routing("two", PartitionRouting::Fixed(((round + 1) % 3) as usize))
            .await
            .unwrap();
        mq.publish_to_partitioned(TopicMessage::new("two", round * 10 + 1).unwrap())
            .await
            .unwrap();
        tasks.join().await;
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort_unstable();
        assert_eq!(got, [round * 10, round * 10 + 1], "round {round}");
    }
}

/// A message that expires between waking a parked merged receive and
/// that receive running is skipped: the receive goes on waiting (no
/// error, no empty result) and gets the next live message.
#[tokio::test(start_paused = true)]
async fn a_parked_merged_receive_woken_for_an_expired_message_waits_on() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("exp", ttl(10), 2).await.unwrap();
    let sub = Arc::new(mq.subscriber("exp").await.unwrap());
    let waiting = {
        let sub = sub.clone();
        tokio::spawn(async move { sub.recv().await.map(|m| pov(&m)) })
    };
    tokio::task::yield_now().await; // parked
                                    // Published and expired with no chance for the receive to run.
    mq.publish_to_partitioned(TopicMessage::new("exp", 1u64).unwrap())
        .now_or_never_ok();
    tokio::time::advance(Duration::from_secs(11)).await;
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "{:?}", waiting.await);
    mq.publish_to_partitioned(TopicMessage::new("exp", 2u64).unwrap())
        .await
        .unwrap();
    let got = within(LIMIT, waiting).await.unwrap().unwrap();
    assert_eq!(got, Ok((1, 0, 2)));
    assert_eq!(mq.get_topic_stats("exp").await.unwrap().expired, 1);
}

/// Completes a publish future that cannot wait (room is there).
trait NowOrNeverOk {
    fn now_or_never_ok(self);
}

impl<F, T, E> NowOrNeverOk for F
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    fn now_or_never_ok(self) {
        futures_util::FutureExt::now_or_never(self)
            .expect("completes without waiting")
            .expect("published");
    }
}

/// Wildcard topics take turns: with three topics holding three messages
/// each, single receives visit each topic once per round; a partitioned
/// topic takes one turn per round, its partitions taking turns inside it.
#[tokio::test]
async fn pattern_topics_take_turns() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("tt.*").unwrap();
    mq.create_partitioned_topic("tt.b", opts(None), 2).await.unwrap();
    for v in 0..3u64 {
        mq.publisher("tt.a").publish(v).await.unwrap();
        mq.publish_to_partitioned(TopicMessage::new("tt.b", 10 + v).unwrap())
            .await
            .unwrap();
        mq.publisher("tt.c").publish(20 + v).await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..9 {
        let m = next_p(&sub).await;
        order.push((m.topic().to_owned(), val(&m)));
    }
    for round in order.chunks(3) {
        let topics: BTreeSet<&str> = round.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics.len(), 3, "one turn each per round: {order:?}");
    }
    let of = |t: &str| -> Vec<u64> { order.iter().filter(|(n, _)| n == t).map(|(_, v)| *v).collect() };
    assert_eq!(of("tt.a"), [0, 1, 2]);
    assert_eq!(of("tt.b"), [10, 11, 12], "partitions take turns inside the topic");
    assert_eq!(of("tt.c"), [20, 21, 22]);
}

// ---------------------------------------------------------------------
// Typed batches on merged subscribers (what they put aside)
// ---------------------------------------------------------------------

/// A typed batch on a merged subscriber that meets a value it cannot
/// decode hands on what decoded before it and puts the rest aside, from
/// every partition: the next receives deliver the rest once each, in
/// partition order; `positions`, `lag` and `seek_partition` count what
/// was put aside (a seek of one partition passes over only that
/// partition's).
#[tokio::test]
async fn merged_typed_batches_put_aside_and_seek_one_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("ty", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("ty").await.unwrap();
    mq.set_partition_routing("ty", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let p0 = mq.publisher("ty");
    p0.publish(1u64).await.unwrap();
    p0.publish("bad").await.unwrap();
    p0.publish(3u64).await.unwrap();
    fill(&mq, "ty", 1, [10, 11]).await;
    // Two turns of up to 3 each: partition 0's three, then partition 1's two.
    let first = within(LIMIT, sub.recv_batch_typed::<u64>(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, [1], "up to the bad one");
    assert_eq!(
        sub.positions(),
        [(0, 1), (1, 0)],
        "what was put aside is still to come"
    );
    assert_eq!(sub.lag(), 4);
    // Partition 1 from offset 1: its put-aside 10 and 11 are passed over,
    // 11 comes again from the partition.
    sub.seek_partition(1, 1).await.unwrap();
    assert_eq!(sub.positions(), [(0, 1), (1, 1)]);
    assert_eq!(sub.lag(), 3);
    let err = within(LIMIT, sub.recv_batch_typed::<u64>(10))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, tokio_memq::RecvTypedError::Decode(e) if e.offset() == Some(1)),
        "{err:?}"
    );
    let mut rest = Vec::new();
    while rest.len() < 2 {
        rest.extend(
            within(LIMIT, sub.recv_batch_typed::<u64>(10))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    rest.sort_unstable();
    assert_eq!(rest, [3, 11]);
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    assert_eq!(sub.lag(), 0);
}

/// `recv_from_offset` on a merged subscriber moves every partition there
/// and returns the first message found; the rest follows from there.
#[tokio::test]
async fn merged_recv_from_offset_replays_every_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("rfo", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("rfo").await.unwrap();
    fill(&mq, "rfo", 0, 0..3).await;
    fill(&mq, "rfo", 1, 10..13).await;
    assert_eq!(drain(&sub).0.len(), 6);
    let first = within(LIMIT, sub.recv_from_offset(1)).await.unwrap().unwrap();
    let (mut got, _) = drain(&sub);
    got.push(pov(&first));
    got.sort_unstable();
    assert_eq!(got, [(0, 1, 1), (0, 2, 2), (1, 1, 11), (1, 2, 12)]);
    let err = within(LIMIT, sub.recv_from_offset(4)).await.unwrap().unwrap_err();
    assert_eq!(
        err,
        tokio_memq::Error::Seek(OutOfRange {
            requested: 4,
            low: 0,
            high: 3
        })
    );
}

// ---------------------------------------------------------------------
// Stress: topics coming and going, close racing batches
// ---------------------------------------------------------------------

/// One task creates a partitioned topic, publishes to it and deletes it,
/// over and over; another does the same with a plain topic; a wildcard
/// subscriber reads throughout. Every message of every incarnation
/// arrives exactly once, each incarnation's partitions in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_gets_every_message_of_partitioned_topics_created_and_deleted_concurrently() {
    const GENS: u64 = 60;
    const PER: u64 = 12;
    let mq = MessageQueue::new();
    let sub = Arc::new(mq.subscribe_pattern("z.*").unwrap());
    let mut tasks = Tasks::default();
    for partitioned in [true, false] {
        let mq = mq.clone();
        tasks.spawn(async move {
            let name = if partitioned { "z.p" } else { "z.q" };
            for gen in 0..GENS {
                if partitioned {
                    mq.create_partitioned_topic(name, opts(None), 3).await.unwrap();
                    if gen % 2 == 0 {
                        let batch = (0..PER)
                            .map(|i| TopicMessage::new(name, gen * 1000 + i).unwrap())
                            .collect();
                        mq.publish_batch_to_partitioned(batch).await.unwrap();
                    } else {
                        for i in 0..PER {
                            mq.publish_to_partitioned(TopicMessage::new(name, gen * 1000 + i).unwrap())
                                .await
                                .unwrap();
                        }
                    }
                    assert!(mq.delete_partitioned_topic(name).await);
                } else {
                    let publisher = mq.publisher(name);
                    for i in 0..PER {
                        publisher.publish(gen * 1000 + i).await.unwrap();
                    }
                    assert!(mq.delete_topic(name).await);
                }
                if gen % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let mut got: BTreeMap<(String, u64, Option<usize>), Offsets> = BTreeMap::new();
    let mut n = 0;
    while n < 2 * GENS * PER {
        let m = next_p(&sub).await;
        let v = val(&m);
        got.entry((m.topic().to_owned(), v / 1000, m.partition))
            .or_default()
            .push((m.offset(), v % 1000));
        n += 1;
    }
    tasks.join().await;
    assert_eq!(
        sub.try_recv_now().unwrap_err(),
        PatternRecvError::Empty,
        "nothing twice"
    );
    for ((topic, gen, part), seen) in &got {
        assert!(
            seen.iter().map(|s| s.0).eq(0..seen.len() as u64),
            "{topic} gen {gen} partition {part:?}: {seen:?}"
        );
    }
    for topic in ["z.p", "z.q"] {
        for gen in 0..GENS {
            let mut values: Vec<u64> = got
                .iter()
                .filter(|((t, g, _), _)| t == topic && *g == gen)
                .flat_map(|(_, s)| s.iter().map(|x| x.1))
                .collect();
            values.sort_unstable();
            assert!(values.iter().copied().eq(0..PER), "{topic} gen {gen}: {values:?}");
        }
    }
    assert!(sub.topics().is_empty(), "every incarnation drained and gone");
}

/// Close racing batches to a partitioned topic: every message a batch
/// reported published (or did not hand back) reaches a merged subscriber
/// exactly once; nothing handed back is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_racing_batches_drops_nothing_silently() {
    for round in 0..30u64 {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("cr", opts(None), 3).await.unwrap();
        let sub = mq.subscriber("cr").await.unwrap();
        let publisher = {
            let mq = mq.clone();
            tokio::spawn(async move {
                let (mut published, mut back) = (BTreeSet::new(), BTreeSet::new());
                for b in 0u64.. {
                    let batch: Vec<TopicMessage> = (0..7)
                        .map(|i| TopicMessage::new("cr", b * 10 + i).unwrap())
                        .collect();
                    let use_publisher = b % 2 == 1;
                    if use_publisher {
                        let values: Vec<u64> = (0..7).map(|i| b * 10 + i).collect();
                        match mq.publisher("cr").publish_batch(values.clone()).await {
                            Ok(_) => published.extend(values),
                            Err(e) => {
                                let kept: Vec<u64> = e.into_inner();
                                back.extend(kept.iter().copied());
                                published.extend(values.into_iter().filter(|v| !kept.contains(v)));
                                return (published, back);
                            }
                        }
                    } else {
                        match mq.publish_batch_to_partitioned(batch).await {
                            Ok(placed) => {
                                assert_eq!(placed.len(), 7);
                                published.extend((0..7).map(|i| b * 10 + i));
                            }
                            Err(e) => {
                                let kept: Vec<u64> = e.into_inner().iter().map(val).collect();
                                back.extend(kept.iter().copied());
                                published.extend((0..7).map(|i| b * 10 + i).filter(|v| !kept.contains(v)));
                                return (published, back);
                            }
                        }
                    }
                    if b % 4 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                unreachable!()
            })
        };
        tokio::time::sleep(Duration::from_micros(100 + round * 37)).await;
        mq.close();
        let (published, back) = within(LIMIT, publisher).await.unwrap().unwrap();
        let mut got = Vec::new();
        loop {
            match within(LIMIT, sub.recv_batch(16)).await.unwrap() {
                Ok(b) => got.extend(b.iter().map(val)),
                Err(RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let delivered: BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(delivered.len(), got.len(), "round {round}: nothing twice");
        assert_eq!(delivered, published, "round {round}: delivered = published");
        assert!(delivered.is_disjoint(&back), "round {round}");
    }
}

/// A wildcard subscription that is not read forgets topics created and
/// deleted with nothing in them for it, but keeps, through any number of
/// such, a partitioned topic deleted with messages (retained or evicted
/// unread) still to deliver: they arrive, with the lag, once it reads.
#[tokio::test(start_paused = true)]
async fn an_unread_pattern_keeps_deleted_topics_with_something_to_deliver() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("pr.*").unwrap();
    mq.create_partitioned_topic("pr.keep", opts(Some(2)), 2)
        .await
        .unwrap();
    mq.set_partition_routing("pr.keep", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    for v in 0..5u64 {
        mq.publish_to_partitioned(TopicMessage::new("pr.keep", v).unwrap())
            .await
            .unwrap();
    }
    assert!(mq.delete_partitioned_topic("pr.keep").await);
    mq.create_partitioned_topic("pr.gone", ttl(1), 2).await.unwrap();
    mq.publish_to_partitioned(TopicMessage::new("pr.gone", 99u64).unwrap())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(2)).await; // expired: nothing to deliver
    assert!(mq.delete_partitioned_topic("pr.gone").await);
    for i in 0..100 {
        let name = format!("pr.e{i}");
        if i % 2 == 0 {
            mq.create_partitioned_topic(&name, opts(None), 2).await.unwrap();
        } else {
            mq.create_topic(&name, opts(None)).await.unwrap();
        }
        assert!(mq.delete_topic(&name).await);
    }
    assert_eq!(sub.topics(), ["pr.keep"]);
    assert_eq!(sub.lag(), [("pr.keep".to_string(), 5)]);
    let mut events = Vec::new();
    loop {
        match sub.try_recv_now() {
            Ok(m) => events.push(format!("{}:{}", m.offset(), val(&m))),
            Err(PatternRecvError::Lagged { topic, count }) => events.push(format!("{topic} lost {count}")),
            Err(PatternRecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(events, ["pr.keep lost 3", "3:3", "4:4"]);
    assert!(sub.topics().is_empty());
}

/// Under eviction, with fast publishers and receives cancelled mid-way:
/// every offset is either delivered once or counted in a lag report, so
/// delivered plus lagged equals published: per merged subscriber over
/// all partitions, and per topic for a wildcard subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_plus_lagged_equals_published_under_eviction() {
    const N: u64 = 3_000;
    let mq = MessageQueue::new();
    let pattern = mq.subscribe_pattern("ev.*").unwrap();
    mq.create_partitioned_topic("ev.p", opts(Some(8)), 3)
        .await
        .unwrap();
    mq.create_topic("ev.q", opts(Some(8))).await.unwrap();
    let merged = mq.blocking_subscriber("ev.p", ConsumptionMode::Earliest).unwrap();
    let mut publishers = Tasks::default();
    for t in 0..2u64 {
        let mq = mq.clone();
        publishers.spawn(async move {
            for i in 0..N / 2 {
                let v = t * N + i;
                if i % 2 == 0 {
                    mq.publish_to_partitioned(TopicMessage::new("ev.p", v).unwrap())
                        .await
                        .unwrap();
                } else {
                    mq.publisher("ev.p").publish(v).await.unwrap();
                }
                mq.publisher("ev.q").publish(v).await.unwrap();
            }
        });
    }
    let (mut delivered, mut lagged) = (Vec::new(), 0u64);
    let (mut by_topic, mut lag_by_topic): (BTreeMap<String, u64>, BTreeMap<String, u64>) =
        (BTreeMap::new(), BTreeMap::new());
    let mut i = 0u32;
    let mut merged_done = false;
    let mut pattern_done = false;
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !(merged_done && pattern_done) {
        assert!(tokio::time::Instant::now() < deadline, "stalled");
        if !closed && publishers.0.iter().all(JoinHandle::is_finished) {
            publishers.join().await;
            mq.close();
            closed = true;
        }
        i += 1;
        let short = Duration::from_micros(u64::from(i % 4) * 40);
        if !merged_done {
            let got = match i % 3 {
                0 => tokio::time::timeout(short, merged.recv())
                    .await
                    .map(|r| r.map(|m| vec![pov(&m)])),
                1 => tokio::time::timeout(short, merged.recv_batch(5))
                    .await
                    .map(|r| r.map(|b| b.iter().map(pov).collect())),
                _ => Ok(match merged.try_recv_now() {
                    Ok(m) => Ok(vec![pov(&m)]),
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                    Err(_) => Ok(Vec::new()),
                }),
            };
            match got {
                Ok(Ok(v)) => delivered.extend(v),
                Ok(Err(RecvError::Lagged(n))) => lagged += n,
                Ok(Err(RecvError::Closed)) => merged_done = true,
                Ok(Err(e)) => panic!("{e}"),
                Err(_elapsed) => {}
            }
        }
        if !pattern_done {
            match tokio::time::timeout(short, pattern.recv()).await {
                Ok(Ok(m)) => *by_topic.entry(m.topic().to_owned()).or_default() += 1,
                Ok(Err(PatternRecvError::Lagged { topic, count })) => {
                    *lag_by_topic.entry(topic.to_string()).or_default() += count;
                }
                Ok(Err(PatternRecvError::Closed)) => pattern_done = true,
                Ok(Err(e)) => panic!("{e}"),
                Err(_elapsed) => {}
            }
        }
    }
    for p in 0..3 {
        let offsets: Vec<u64> = delivered.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {p} in order, once"
        );
    }
    assert_eq!(delivered.len() as u64 + lagged, N, "merged: delivered + lagged");
    for topic in ["ev.p", "ev.q"] {
        let (d, l) = (
            by_topic.get(topic).copied().unwrap_or(0),
            lag_by_topic.get(topic).copied().unwrap_or(0),
        );
        assert_eq!(d + l, N, "{topic}: delivered {d} + lagged {l}");
    }
}

/// Extreme partition counts and indexes are typed errors (or `None`),
/// never a panic or an attempt to allocate them.
#[tokio::test]
async fn extreme_partition_counts_and_indexes_are_refused() {
    let mq = MessageQueue::new();
    for count in [usize::MAX, (1 << 16) + 1] {
        let err = within(LIMIT, mq.create_partitioned_topic("big", opts(None), count))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err, tokio_memq::TopicError::PartitionCount { requested, .. } if requested == count),
            "{count}: {err:?}"
        );
    }
    assert!(mq.list_topics().await.is_empty(), "nothing created");
    mq.create_partitioned_topic("x", opts(None), 2).await.unwrap();
    let sub = mq.subscriber("x").await.unwrap();
    let huge = usize::MAX;
    assert_eq!(
        mq.set_partition_routing("x", PartitionRouting::Fixed(huge)).await,
        Err(tokio_memq::TopicError::NoSuchPartition {
            partition: huge,
            partitions: 2
        })
    );
    mq.set_partition_routing(
        "x",
        PartitionRouting::Custom(Arc::new(|_k: Option<&[u8]>, _n: usize| usize::MAX)),
    )
    .await
    .unwrap();
    let err = mq
        .publish_to_partitioned(TopicMessage::new("x", 1u64).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), tokio_memq::PublishErrorKind::Unroutable);
    assert!(mq.get_partition_stats("x", huge).await.is_none());
    assert_eq!(
        sub.commit_partition(huge, 0).await,
        Err(CommitError::NoSuchPartition {
            partition: huge,
            partitions: 2
        })
    );
    assert_eq!(
        sub.seek_partition(huge, 0).await,
        Err(tokio_memq::TopicError::NoSuchPartition {
            partition: huge,
            partitions: 2
        })
    );
    assert_eq!(sub.partition_offset(huge), None);
    assert_eq!(mq.get_topic_stats("x").await.unwrap().published, 0);
}

/// A minimal executor for futures outside any runtime.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// `recv_timeout` of a merged subscriber and of a wildcard subscription
/// works outside any runtime (a timer thread of the crate): it times out
/// with `None` when nothing comes, and returns a message published from
/// another thread meanwhile; `blocking_recv_timeout` likewise.
#[test]
fn merged_and_pattern_recv_timeout_work_outside_a_runtime() {
    let mq = MessageQueue::new();
    let pattern = mq.subscribe_pattern("out.*").unwrap();
    block_on(mq.create_partitioned_topic("out.p", opts(None), 2)).unwrap();
    let merged = mq.blocking_subscriber("out.p", ConsumptionMode::Latest).unwrap();
    let start = std::time::Instant::now();
    assert!(block_on(merged.recv_timeout(Duration::from_millis(30)))
        .unwrap()
        .is_none());
    assert!(block_on(pattern.recv_timeout(Duration::from_millis(30)))
        .unwrap()
        .is_none());
    assert!(merged
        .blocking_recv_timeout(Duration::from_millis(30))
        .unwrap()
        .is_none());
    assert!(start.elapsed() >= Duration::from_millis(90));
    let publisher = mq.publisher("out.p");
    let feeder = std::thread::spawn(move || {
        for v in 0..2u64 {
            std::thread::sleep(Duration::from_millis(20));
            publisher.blocking_publish(v).unwrap();
        }
    });
    let m = block_on(merged.recv_timeout(Duration::from_secs(20)))
        .unwrap()
        .expect("a message");
    assert_eq!(pov(&m), (0, 0, 0));
    let m = block_on(pattern.recv_timeout(Duration::from_secs(20)))
        .unwrap()
        .expect("a message");
    assert_eq!((m.topic(), m.partition, val(&m)), ("out.p", Some(0), 0));
    let m = merged
        .blocking_recv_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("a message");
    assert_eq!(pov(&m), (1, 0, 1));
    feeder.join().unwrap();
}

/// Keys and headers travel through hash routing to a merged subscriber
/// and a wildcard subscription; a keyed message lands on the partition
/// Kafka's partitioner names, whichever way it is published; a message
/// handed back by a refused batch keeps its key and headers.
#[tokio::test]
async fn keys_and_headers_travel_through_partitions() {
    let mq = MessageQueue::new();
    let pattern = mq.subscribe_pattern("kh.*").unwrap();
    mq.create_partitioned_topic("kh.t", opts(None), 4).await.unwrap();
    mq.set_partition_routing("kh.t", PartitionRouting::Hash)
        .await
        .unwrap();
    let merged = mq.subscriber("kh.t").await.unwrap();
    // "foobar" -> partition 2 of 4 (the crate docs' worked example).
    mq.publisher("kh.t")
        .publish_with_key_and_headers("foobar", 1u64, [("trace", "t1")])
        .await
        .unwrap();
    let msg = TopicMessage::new_with_key("kh.t", 2u64, "foobar")
        .unwrap()
        .with_headers([("trace", "t2")]);
    assert_eq!(mq.publish_to_partitioned(msg).await.unwrap(), (2, 1));
    let batch = vec![TopicMessage::new_with_key("kh.t", 3u64, "foobar")
        .unwrap()
        .with_headers([("trace", "t3")])];
    assert_eq!(mq.publish_batch_to_partitioned(batch).await.unwrap(), [(2, 2)]);
    for i in 1..=3u64 {
        let a = next(&merged).await;
        let b = next_p(&pattern).await;
        for m in [&a, &b] {
            assert_eq!((m.partition, m.offset(), val(m)), (Some(2), i - 1, i));
            assert_eq!(m.key(), Some("foobar"));
            assert_eq!(m.headers().get_str("trace"), Some(format!("t{i}").as_str()));
        }
    }
    // Refused (the partition is closed): handed back with key and headers.
    assert!(mq.delete_partitioned_topic("kh.t").await);
    let batch = vec![TopicMessage::new_with_key("kh.t", 4u64, "k")
        .unwrap()
        .with_headers([("trace", "t4")])];
    let back = mq
        .publish_batch_to_partitioned(batch)
        .await
        .unwrap_err()
        .into_inner();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].key(), back[0].headers().get_str("trace")),
        (Some("k"), Some("t4"))
    );
}

/// A partitioned topic with a byte budget refuses a message heavier than
/// the budget, however it is published, handing it back.
#[tokio::test]
async fn a_partition_byte_budget_refuses_an_oversized_message_every_way() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_bytes: Some(1_000),
        ..TopicOptions::default()
    };
    mq.create_partitioned_topic("mb", options, 2).await.unwrap();
    let heavy = || vec![7u8; 4_096];
    let err = mq.publisher("mb").publish(heavy()).await.unwrap_err();
    assert_eq!(err.kind(), tokio_memq::PublishErrorKind::TooLarge);
    assert_eq!(err.into_inner().len(), 4_096);
    let err = mq
        .publish_to_partitioned(TopicMessage::new("mb", heavy()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), tokio_memq::PublishErrorKind::TooLarge);
    let err = mq
        .publish_batch_to_partitioned(vec![TopicMessage::new("mb", heavy()).unwrap()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), tokio_memq::PublishErrorKind::TooLarge);
    assert!(matches!(
        mq.publisher("mb").try_publish(heavy()),
        Err(tokio_memq::PublishError::TooLarge(_))
    ));
    assert_eq!(mq.get_topic_stats("mb").await.unwrap().published, 0);
    mq.publisher("mb").publish(vec![1u8; 10]).await.unwrap();
    assert_eq!(mq.get_topic_stats("mb").await.unwrap().published, 1);
}

/// On a full partition whose publishers wait: `try_publish` hands the
/// value back as `Full`, `publish_timeout` as `Timeout` once its time is
/// up, and nothing is published; once the merged reader reads, both go
/// through.
#[tokio::test(start_paused = true)]
async fn try_publish_and_publish_timeout_on_a_full_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("fp", waiting_opts(1), 2)
        .await
        .unwrap();
    let sub = mq.subscriber("fp").await.unwrap();
    mq.set_partition_routing("fp", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    let publisher = mq.publisher("fp");
    assert_eq!(publisher.try_publish(1u64).unwrap(), 0);
    assert!(matches!(
        publisher.try_publish(2u64),
        Err(tokio_memq::PublishError::Full(2))
    ));
    let started = tokio::time::Instant::now();
    assert!(matches!(
        publisher.publish_timeout(3u64, Duration::from_secs(5)).await,
        Err(tokio_memq::PublishError::Timeout(3))
    ));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(mq.get_topic_stats("fp").await.unwrap().published, 1);
    assert_eq!(pov(&next(&sub).await), (1, 0, 1));
    assert_eq!(publisher.try_publish(4u64).unwrap(), 1);
    assert_eq!(pov(&next(&sub).await), (1, 1, 4));
    assert_eq!(
        publisher
            .publish_timeout(5u64, Duration::from_secs(5))
            .await
            .unwrap(),
        2
    );
    assert_eq!(pov(&next(&sub).await), (1, 2, 5));
}

/// After the queue is dropped, a partitioned topic stays open while any
/// clone of a publisher of it lives (one made before the topic existed
/// too), and closes with the last: a parked merged receive and a parked
/// wildcard receive then end after what is retained.
#[tokio::test]
async fn the_last_publisher_clone_closes_a_partitioned_topic_after_the_queue() {
    let mq = MessageQueue::new();
    let early = mq.publisher("lc.p"); // before the topic exists
    mq.create_partitioned_topic("lc.p", opts(None), 2).await.unwrap();
    let pattern = Arc::new(mq.subscribe_pattern("lc.*").unwrap());
    let merged = Arc::new(mq.subscriber("lc.p").await.unwrap());
    let clone = early.clone();
    drop(mq);
    let mut tasks = Tasks::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let (merged, tx) = (merged.clone(), tx.clone());
        tasks.spawn(async move {
            let mut got = Vec::new();
            loop {
                match within(LIMIT, merged.recv()).await.unwrap() {
                    Ok(m) => got.push(val(&m)),
                    Err(e) => {
                        tx.send(("merged", got, format!("{e:?}"))).unwrap();
                        return;
                    }
                }
            }
        });
    }
    {
        let pattern = pattern.clone();
        tasks.spawn(async move {
            let mut got = Vec::new();
            loop {
                match within(LIMIT, pattern.recv()).await.unwrap() {
                    Ok(m) => got.push(val(&m)),
                    Err(e) => {
                        tx.send(("pattern", got, format!("{e:?}"))).unwrap();
                        return;
                    }
                }
            }
        });
    }
    early.publish(1u64).await.unwrap();
    drop(early);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!merged.is_closed(), "a clone still publishes");
    assert!(rx.try_recv().is_err(), "both still wait");
    clone.publish(2u64).await.unwrap();
    drop(clone);
    let mut ends = Vec::new();
    for _ in 0..2 {
        ends.push(within(LIMIT, rx.recv()).await.unwrap().unwrap());
    }
    ends.sort();
    assert_eq!(
        ends,
        [
            ("merged", vec![1, 2], "Closed".to_string()),
            ("pattern", vec![1, 2], "Closed".to_string())
        ]
    );
    assert!(merged.is_closed());
    tasks.join().await;
}

/// Once a merged subscriber or a wildcard subscription has ended, every
/// later receive of every kind says `Closed` at once (none waits, none
/// times out with `None`, `try_recv` is not `Empty`).
#[tokio::test]
async fn after_the_end_every_receive_says_closed_at_once() {
    let mq = MessageQueue::new();
    let pattern = mq.subscribe_pattern("af.*").unwrap();
    mq.create_partitioned_topic("af.p", opts(None), 2).await.unwrap();
    let merged = mq.subscriber("af.p").await.unwrap();
    mq.publish_to_partitioned(TopicMessage::new("af.p", 1u64).unwrap())
        .await
        .unwrap();
    mq.close();
    assert_eq!(val(&next(&merged).await), 1);
    assert_eq!(val(&next_p(&pattern).await), 1);
    for _ in 0..2 {
        let quick = Duration::from_secs(5);
        assert_eq!(
            within(quick, merged.recv()).await.unwrap().unwrap_err(),
            RecvError::Closed
        );
        assert_eq!(
            within(quick, merged.recv_batch(3)).await.unwrap().unwrap_err(),
            RecvError::Closed
        );
        assert_eq!(
            within(quick, merged.recv_batch_lent(3)).await.unwrap().err(),
            Some(RecvError::Closed)
        );
        assert_eq!(
            within(quick, merged.recv_timeout(Duration::from_secs(3600)))
                .await
                .unwrap()
                .unwrap_err(),
            RecvError::Closed
        );
        assert_eq!(merged.try_recv().await.unwrap_err(), TryRecvError::Closed);
        assert_eq!(
            within(quick, pattern.recv()).await.unwrap().unwrap_err(),
            PatternRecvError::Closed
        );
        assert_eq!(
            within(quick, pattern.recv_timeout(Duration::from_secs(3600)))
                .await
                .unwrap()
                .unwrap_err(),
            PatternRecvError::Closed
        );
        assert_eq!(pattern.try_recv_now().unwrap_err(), PatternRecvError::Closed);
    }
    assert!(merged.is_closed());
    assert!(pattern.topics().is_empty());
}

/// One wildcard receive stays parked across matching topics created and
/// deleted empty (plain and partitioned), each event waking it, and is
/// still woken (checked with `within`) by the first message of a topic
/// created after all that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_parked_pattern_receive_survives_empty_topics_coming_and_going() {
    let mq = MessageQueue::new();
    let sub = Arc::new(mq.subscribe_pattern("pk.*").unwrap());
    let waiting = {
        let sub = sub.clone();
        tokio::spawn(async move { within(LIMIT, sub.recv()).await })
    };
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let name = format!("pk.t{i}");
        if i % 2 == 0 {
            mq.create_partitioned_topic(&name, opts(None), 3).await.unwrap();
        } else {
            mq.create_topic(&name, opts(None)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(mq.delete_topic(&name).await);
        assert!(!waiting.is_finished(), "round {i}");
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    mq.create_partitioned_topic("pk.last", opts(None), 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    mq.set_partition_routing("pk.last", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    mq.publish_to_partitioned(TopicMessage::new("pk.last", 5u64).unwrap())
        .await
        .unwrap();
    let m = waiting.await.unwrap().expect("woken").unwrap();
    assert_eq!(
        (m.topic(), m.partition, m.offset(), val(&m)),
        ("pk.last", Some(1), 0, 5)
    );
    assert_eq!(sub.topics(), ["pk.last"]);
}

/// Round robin under concurrent publishers of every kind (single and
/// batch, through the queue and through publishers): numbers are taken
/// from one counter, so the partitions end up exactly even.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_round_robin_spreads_exactly_evenly() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("even", opts(None), 3).await.unwrap();
    let mut tasks = Tasks::default();
    for t in 0..4u64 {
        let mq = mq.clone();
        tasks.spawn(async move {
            let publisher = mq.publisher("even");
            for i in 0..25u64 {
                let v = t * 10_000 + i * 100;
                for j in 0..10 {
                    if (i + j) % 2 == 0 {
                        mq.publish_to_partitioned(TopicMessage::new("even", v + j).unwrap())
                            .await
                            .unwrap();
                    } else {
                        publisher.publish(v + j).await.unwrap();
                    }
                }
                let batch: Vec<u64> = (10..15).map(|j| v + j).collect();
                if i % 2 == 0 {
                    publisher.publish_batch(batch).await.unwrap();
                } else {
                    let msgs = batch
                        .into_iter()
                        .map(|x| TopicMessage::new("even", x).unwrap())
                        .collect();
                    mq.publish_batch_to_partitioned(msgs).await.unwrap();
                }
            }
        });
    }
    tasks.join().await;
    let published: Vec<u64> = mq
        .get_all_partition_stats("even")
        .await
        .iter()
        .map(|s| s.published)
        .collect();
    assert_eq!(published, [500, 500, 500]);
}
