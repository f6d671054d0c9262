//! Adversarial tests of the stream and sink surface: owned and typed
//! streams (`into_stream`, `into_typed_stream`) of plain, partitioned and
//! group subscribers ended by `delete_topic`, `close` and the last
//! publisher (a sink counts as one) while they are parked in `next()`;
//! seeks, acknowledgements, a dropped or idle group member and a rebalance
//! that must wake a parked stream; parked streams that must not spin;
//! exact `Lagged` counts through streams (expired messages left out, also
//! those read ahead); what a typed batch put aside comes first through a
//! later stream; `into_subscriber` resuming at the next message; `next()`
//! futures dropped after their wake-up; streams moved between tasks on a
//! multi-thread runtime; and `PublishSink` driven in odd orders (flush and
//! close first, sends after close, sends with room, sends dropped while the
//! topic is full, the sink dropped with a held value, topics deleted,
//! closed or recreated while a value is held, room made by a dropped or
//! seeking subscriber or by TTL, `TooLarge`, `Unroutable` and `Encode`
//! handing the value back, many sinks on one full topic, `SinkExt`
//! combinators).

#[path = "support/options.rs"]
mod options;
use options::{earliest, evicting, lossless};

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use memq_testkit::within;
use tokio::time::timeout;
use tokio_memq::{
    ConsumptionMode, MessageQueue, PartitionRouting, PublishError, PublishErrorKind, RecvError,
    RecvTypedError, Subscriber, SubscriberStream, TopicMessage, TopicOptions, TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(10);

/// Long enough for a parked future to show it stays parked.
const SETTLE: Duration = Duration::from_millis(30);

/// A topic of two partitions whose router sends every message to the
/// second.
async fn two_partitions_into_the_second(mq: &MessageQueue, topic: &str) {
    mq.create_partitioned_topic(topic, TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing(topic, PartitionRouting::Fixed(1))
        .await
        .unwrap();
}

/// Polls `fut` once with the current task's context.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// `(offset, value)` of a stream item that must be a message.
fn at(item: Option<Result<TopicMessage, RecvError>>) -> (u64, u32) {
    let m = item
        .expect("an item, not the end")
        .expect("a message, not an error");
    (m.offset(), m.deserialize().unwrap())
}

/// Aborts the task when dropped, so a failing test leaves nothing running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns a task that drains `stream` to its end.
fn drain(mut stream: SubscriberStream) -> tokio::task::JoinHandle<Vec<Result<TopicMessage, RecvError>>> {
    tokio::spawn(async move {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item);
        }
        // Ended for good: polled again, it stays ended.
        assert!(stream.next().await.is_none(), "an ended stream stays ended");
        items
    })
}

// ---------------------------------------------------------------------------
// Owned streams ended while parked
// ---------------------------------------------------------------------------

/// A typed stream parked in `next()` in another task ends (after what the
/// topic retained) when the topic is deleted. Promise: `into_typed_stream`
/// "Ends when the topic is closed and drained"; `delete_topic`: "waiting
/// publishers and subscribers are woken".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_stream_parked_in_next_ends_when_its_topic_is_deleted() {
    let mq = MessageQueue::new();
    let mut stream = mq.subscriber("t").await.unwrap().into_typed_stream::<u32>();
    let publisher = mq.publisher("t");
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            got.push(item.unwrap());
        }
        (got, stream.next().await.is_none())
    });
    for i in 0..3u32 {
        publisher.publish(i * 10).await.unwrap();
    }
    // Let the reader take all three and park again.
    tokio::time::sleep(SETTLE).await;
    assert!(!reader.is_finished(), "the topic is open: the stream waits");
    assert!(mq.delete_topic("t").await);
    let (got, stays_ended) = within(LIMIT, reader).await.expect("the stream ended").unwrap();
    assert_eq!(got, [0, 10, 20]);
    assert!(stays_ended);
}

/// The stream of every partition of a partitioned topic (one merged
/// cursor, not the lock-free single-cursor path) parked in `next()` ends
/// on `close`, after delivering every message of every partition, in
/// order within each partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_stream_parked_in_next_delivers_everything_then_ends_on_close() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("p", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let sub = earliest(&mq, "p", TopicOptions::default()).await;
    assert_eq!(sub.partitions(), 3);
    let reader = AbortOnDrop(drain(sub.into_stream()));
    let publisher = mq.publisher("p");
    for i in 0..30u32 {
        publisher.publish(i).await.unwrap();
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(SETTLE).await;
    assert!(!reader.0.is_finished(), "open topic: still waiting");
    mq.close();
    let items = within(LIMIT, reader.join())
        .await
        .expect("the stream ended on close")
        .unwrap();
    let mut per_partition: BTreeMap<usize, Vec<(u64, u32)>> = BTreeMap::new();
    for item in items {
        let m = item.expect("no lag, no error");
        per_partition
            .entry(m.partition.expect("a partitioned message names its partition"))
            .or_default()
            .push((m.offset(), m.deserialize().unwrap()));
    }
    assert_eq!(per_partition.len(), 3, "{per_partition:?}");
    for (p, got) in per_partition {
        // Round robin from partition 0: partition p got p, p + 3, ... at
        // offsets 0, 1, ...
        let expected: Vec<(u64, u32)> = (0..10u32).map(|k| (u64::from(k), 3 * k + p as u32)).collect();
        assert_eq!(got, expected, "partition {p}");
    }
}

/// An owned stream parked in `next()` ends when nobody can publish any
/// more: the last `MessageQueue` handle and the last publisher dropped.
/// A sink holds a clone of its publisher, so while a sink lives the topic
/// stays open and the stream keeps waiting. Promise: "A topic closes when
/// nobody can publish to it any more ... once the last `MessageQueue`
/// clone is dropped ... and the topic's last `Publisher` is dropped";
/// `Publisher::sink`: "the sink holds a clone of this publisher".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_stream_ends_when_the_last_publisher_goes_and_a_sink_counts_as_one() {
    let mq = MessageQueue::new();
    let stream = earliest(&mq, "c", TopicOptions::default()).await.into_stream();
    let publisher = mq.publisher("c");
    let mut sink = publisher.sink::<u32>();
    publisher.publish(1u32).await.unwrap();
    sink.send(2).await.unwrap();
    let reader = AbortOnDrop(drain(stream));
    drop(mq);
    drop(publisher);
    tokio::time::sleep(SETTLE).await;
    assert!(
        !reader.0.is_finished(),
        "the sink can still publish: the topic must stay open"
    );
    sink.send(3).await.unwrap();
    drop(sink);
    let items = within(LIMIT, reader.join())
        .await
        .expect("the stream ended once the sink, the last publisher, was dropped")
        .unwrap();
    let got: Vec<(u64, u32)> = items.into_iter().map(|i| at(Some(i))).collect();
    assert_eq!(got, [(0, 1), (1, 2), (2, 3)]);
}

/// The stream of a consumer-group member (the group path of the stream)
/// parked in `next()` ends when the topic is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_stream_parked_in_next_ends_when_its_topic_is_deleted() {
    let mq = MessageQueue::new();
    let member = mq
        .group("g", "workers")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("g").publish_batch(vec![5u32, 6]).await.unwrap();
    let reader = AbortOnDrop(drain(member.into_stream()));
    tokio::time::sleep(SETTLE).await;
    assert!(!reader.0.is_finished());
    assert!(mq.delete_topic("g").await);
    let items = within(LIMIT, reader.join())
        .await
        .expect("the member's stream ended")
        .unwrap();
    let got: Vec<(u64, u32)> = items.into_iter().map(|i| at(Some(i))).collect();
    assert_eq!(got, [(0, 5), (1, 6)]);
}

// ---------------------------------------------------------------------------
// Wake-ups of a parked stream by something other than a publish
// ---------------------------------------------------------------------------

/// A seek back made while the owned stream is parked in `next()` wakes it:
/// the messages behind the new position are there, so a stream that stays
/// asleep until the next publish hangs on data it could read. The seek is
/// made from inside the stream's own poll (the stream owns the subscriber),
/// and `within` polls again only on a wake-up. For a plain subscriber (the
/// lock-free path), every partition of a partitioned topic, and a group
/// member. Promise: `seek` "Moves the subscriber (or its whole group) so
/// that the next message received is `offset`".
#[tokio::test]
async fn a_seek_back_while_the_owned_stream_is_parked_wakes_it() {
    let mq = MessageQueue::new();
    two_partitions_into_the_second(&mq, "sp").await;
    let plain = earliest(&mq, "s", TopicOptions::default()).await;
    let merged = earliest(&mq, "sp", TopicOptions::default()).await;
    let member = mq
        .group("sg", "w")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    for (name, sub) in [("plain", plain), ("partitioned", merged), ("group", member)] {
        let topic = sub.topic().to_string();
        let mut stream = sub.into_stream();
        mq.publisher(&topic).publish_batch(vec![7u32, 8]).await.unwrap();
        assert_eq!(at(within(LIMIT, stream.next()).await.unwrap()), (0, 7), "{name}");
        assert_eq!(at(within(LIMIT, stream.next()).await.unwrap()), (1, 8), "{name}");
        let mut seeked = false;
        let item = within(
            LIMIT,
            std::future::poll_fn(|cx| {
                let polled = stream.poll_next_unpin(cx);
                if seeked {
                    return polled;
                }
                assert!(polled.is_pending(), "{name}: nothing new yet: {polled:?}");
                stream
                    .subscriber()
                    .seek(0)
                    .now_or_never()
                    .expect("an in-memory seek does not wait")
                    .unwrap();
                seeked = true;
                Poll::Pending
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: the seek did not wake the parked stream"));
        assert_eq!(at(item), (0, 7), "{name}");
        assert_eq!(at(within(LIMIT, stream.next()).await.unwrap()), (1, 8), "{name}");
        assert!(
            timeout(SETTLE, stream.next()).await.is_err(),
            "{name}: nothing more"
        );
    }
}

/// In a group, a seek by one member moves the whole group; another
/// member's stream parked in `next()` in another task must be woken and
/// receive the messages again from the new position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_seek_by_one_member_wakes_another_members_parked_stream() {
    let mq = MessageQueue::new();
    let join = || mq.group("gs", "workers").mode(ConsumptionMode::Earliest).join();
    let (seeker, parked) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("gs").publish_batch(vec![1u32, 2, 3]).await.unwrap();
    let drained = within(LIMIT, seeker.recv_batch(10)).await.unwrap().unwrap();
    assert_eq!(drained.len(), 3, "one member took all three");
    let mut stream = parked.into_stream();
    let reader = AbortOnDrop(tokio::spawn(async move {
        let first = stream.next().await;
        (stream, first)
    }));
    tokio::time::sleep(SETTLE).await;
    assert!(!reader.0.is_finished(), "nothing to read yet");
    seeker.seek(1).await.unwrap();
    // The seeker does not receive: the parked member must get offset 1.
    let (mut stream, first) = within(LIMIT, reader.join())
        .await
        .expect("the group seek woke the parked member")
        .unwrap();
    assert_eq!(at(first), (1, 2));
    assert_eq!(at(within(LIMIT, stream.next()).await.unwrap()), (2, 3));
}

/// A manual-acknowledgement member's stream stops at the group's
/// `max_pending` and an `ack` (made while the stream is parked) wakes it
/// for the next message. Promise: `max_pending` "At the limit members
/// receive no new messages until one is acknowledged".
#[tokio::test]
async fn a_manual_ack_stream_parks_at_max_pending_and_an_ack_wakes_it() {
    let mq = MessageQueue::new();
    let member = mq
        .group("ack", "w")
        .manual_ack()
        .max_pending(2)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("ack")
        .publish_batch(vec![10u32, 11, 12])
        .await
        .unwrap();
    let mut stream = member.into_stream();
    let first = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
    let second = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((first.offset(), second.offset()), (0, 1));
    assert!(
        timeout(SETTLE, stream.next()).await.is_err(),
        "two pending is the limit"
    );
    let mut acked = false;
    let third = within(
        LIMIT,
        std::future::poll_fn(|cx| {
            let polled = stream.poll_next_unpin(cx);
            if acked {
                return polled;
            }
            assert!(polled.is_pending(), "still at the limit: {polled:?}");
            stream.subscriber().ack(&first).unwrap();
            acked = true;
            Poll::Pending
        }),
    )
    .await
    .expect("the ack woke the parked stream");
    let third = third.unwrap().unwrap();
    assert_eq!((third.offset(), third.deliveries), (2, 1));
    let stats = mq.get_group_stats("ack", "w").await.unwrap();
    assert_eq!(stats.pending, 2, "offsets 1 and 2 are held");
}

/// A `nack` through the stream's subscriber hands the message out again
/// through the same stream, once, with `deliveries` raised, before the
/// later ones are duplicated or skipped.
#[tokio::test]
async fn a_nack_between_stream_items_redelivers_once_through_the_stream() {
    let mq = MessageQueue::new();
    let member = mq
        .group("nack", "w")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("nack").publish_batch(vec![1u32, 2]).await.unwrap();
    let mut stream = member.into_stream();
    let first = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
    stream.subscriber().nack(&first).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
        stream.subscriber().ack(&m).unwrap();
        seen.push((m.offset(), m.deliveries));
    }
    seen.sort_unstable();
    assert_eq!(seen, [(0, 2), (1, 1)]);
    assert!(timeout(SETTLE, stream.next()).await.is_err(), "nothing more");
    let stats = mq.get_group_stats("nack", "w").await.unwrap();
    assert_eq!(stats.pending, 0);
}

// ---------------------------------------------------------------------------
// Lag through streams
// ---------------------------------------------------------------------------

/// Interleaved bursts into an evicting topic, read through an owned stream
/// that reads ahead: every offset is accounted for exactly once, either
/// delivered or inside exactly one `Lagged(n)`, and after `Lagged(n)` the
/// next message is exactly `n` past the last one. Promise: "gets
/// `RecvError::Lagged` with the exact number it missed, then continues
/// with the oldest retained message".
#[tokio::test]
async fn lag_through_an_owned_stream_accounts_for_every_offset_exactly_once() {
    let mq = MessageQueue::new();
    let mut stream = earliest(&mq, "lag", evicting(3)).await.into_stream();
    let publisher = mq.publisher("lag");
    let mut next_value = 0u32;
    let mut expected_offset = 0u64;
    let mut lagged_total = 0u64;
    let mut delivered = 0u64;
    for burst in [10u32, 1, 2, 7, 3, 4, 20] {
        for _ in 0..burst {
            publisher.publish(next_value).await.unwrap();
            next_value += 1;
        }
        // Read one or two items per burst; the rest piles up and evicts.
        for _ in 0..2 {
            match within(LIMIT, stream.next()).await.unwrap().expect("open topic") {
                Ok(m) => {
                    assert_eq!(m.offset(), expected_offset, "dense after the lag reports");
                    assert_eq!(u64::from(m.deserialize::<u32>().unwrap()), expected_offset);
                    expected_offset += 1;
                    delivered += 1;
                }
                Err(RecvError::Lagged(n)) => {
                    assert!(n > 0);
                    expected_offset += n;
                    lagged_total += n;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    let evicted = mq.get_topic_stats("lag").await.unwrap().evicted;
    drop(publisher);
    mq.close();
    while let Some(item) = within(LIMIT, stream.next()).await.unwrap() {
        match item {
            Ok(m) => {
                assert_eq!(m.offset(), expected_offset);
                expected_offset += 1;
                delivered += 1;
            }
            Err(RecvError::Lagged(n)) => {
                expected_offset += n;
                lagged_total += n;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(lagged_total > 0, "the bursts did outrun the reader");
    assert_eq!(
        expected_offset,
        u64::from(next_value),
        "every offset accounted for"
    );
    assert_eq!(delivered + lagged_total, u64::from(next_value));
    assert!(
        lagged_total <= evicted,
        "no more reported lost ({lagged_total}) than evicted ({evicted})"
    );
}

/// Lag through a typed stream: five messages expire, then one live message
/// is evicted for capacity: the typed stream reports `Lagged(1)` (expired
/// messages are not lag), then the five retained values, in order.
#[tokio::test(start_paused = true)]
async fn a_typed_stream_reports_eviction_lag_but_not_expiry() {
    let ttl = TopicOptions {
        max_messages: Some(5),
        message_ttl: Some(Duration::from_millis(100)),
        ..TopicOptions::default()
    };
    let mq = MessageQueue::new();
    let mut stream = earliest(&mq, "x", ttl).await.into_typed_stream::<u32>();
    let p = mq.publisher("x");
    for i in 0..5u32 {
        p.publish(i).await.unwrap();
    }
    tokio::time::advance(Duration::from_millis(150)).await;
    for i in 5..11u32 {
        p.publish(i).await.unwrap();
    }
    let stats = mq.get_topic_stats("x").await.unwrap();
    assert_eq!((stats.expired, stats.evicted, stats.low_offset), (5, 1, 6));
    let first = within(LIMIT, stream.next()).await.unwrap().unwrap();
    assert!(
        matches!(first, Err(RecvTypedError::Recv(RecvError::Lagged(1)))),
        "one evicted unread; five expired: {first:?}"
    );
    let mut values = Vec::new();
    for _ in 0..5 {
        values.push(within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap());
    }
    assert_eq!(values, [6, 7, 8, 9, 10]);
    assert!(timeout(SETTLE, stream.next()).await.is_err(), "nothing more");
}

/// A stream of every partition reports each partition's lag on its own:
/// five messages into partition 0 of capacity 2 is `Lagged(3)` then
/// offsets 3 and 4 of partition 0; partition 1 then goes on from 0.
#[tokio::test]
async fn a_partitioned_stream_reports_lag_per_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("pl", evicting(2), 2).await.unwrap();
    mq.set_partition_routing("pl", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let mut stream = earliest(&mq, "pl", evicting(2)).await.into_stream();
    let p = mq.publisher("pl");
    for i in 0..5u32 {
        p.publish(i).await.unwrap();
    }
    let item = within(LIMIT, stream.next()).await.unwrap().unwrap();
    assert_eq!(item.unwrap_err(), RecvError::Lagged(3));
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
        got.push((m.partition, m.offset(), m.deserialize::<u32>().unwrap()));
    }
    assert_eq!(got, [(Some(0), 3, 3), (Some(0), 4, 4)]);
    mq.set_partition_routing("pl", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    p.publish(99u32).await.unwrap();
    let m = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        (m.partition, m.offset(), m.deserialize::<u32>().unwrap()),
        (Some(1), 0, 99)
    );
}

// ---------------------------------------------------------------------------
// Cancellation and tasks
// ---------------------------------------------------------------------------

/// A `next()` future polled once (parked), then woken by a publish, then
/// dropped without being polled again: the message is not lost (the next
/// `next()` gets it) and not duplicated (the one after that waits).
/// Promise: "Every receive is cancel safe: a receive dropped at any await
/// point ... loses no message".
#[tokio::test]
async fn a_next_future_dropped_after_its_wake_up_loses_nothing() {
    let mq = MessageQueue::new();
    let mut stream = earliest(&mq, "d", TopicOptions::default()).await.into_stream();
    let publisher = mq.publisher("d");
    for round in 0..3u32 {
        {
            let mut next = stream.next();
            assert!(poll_once(&mut next).await.is_pending(), "round {round}: empty");
            publisher.publish(round).await.unwrap();
            // Woken, never polled again: dropped here.
        }
        assert_eq!(
            at(within(LIMIT, stream.next()).await.unwrap()),
            (u64::from(round), round)
        );
        assert!(timeout(SETTLE, stream.next()).await.is_err(), "no duplicate");
    }
}

/// The same for a typed stream and a partitioned stream: their futures
/// dropped after the wake-up lose nothing.
#[tokio::test]
async fn typed_and_partitioned_next_futures_dropped_after_wake_up_lose_nothing() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("dp", TopicOptions::default(), 2)
        .await
        .unwrap();
    let mut typed = mq.subscriber("dt").await.unwrap().into_typed_stream::<u32>();
    let mut merged = mq.subscriber("dp").await.unwrap().into_stream();
    for round in 0..4u32 {
        {
            let mut t = typed.next();
            let mut m = merged.next();
            assert!(poll_once(&mut t).await.is_pending());
            assert!(poll_once(&mut m).await.is_pending());
            mq.publisher("dt").publish(round).await.unwrap();
            mq.publisher("dp").publish(round).await.unwrap();
        }
        assert_eq!(
            within(LIMIT, typed.next()).await.unwrap().unwrap().unwrap(),
            round
        );
        let m = within(LIMIT, merged.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(m.deserialize::<u32>().unwrap(), round);
    }
    assert!(timeout(SETTLE, typed.next()).await.is_err(), "no duplicate");
    assert!(timeout(SETTLE, merged.next()).await.is_err(), "no duplicate");
}

/// A receive loop that races `next()` against a very short timer (so most
/// `next()` futures are dropped, some after their wake-up) while another
/// thread publishes: every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_raced_against_a_timer_on_another_thread_loses_and_duplicates_nothing() {
    const N: u32 = 2_000;
    let mq = MessageQueue::new();
    let mut stream = earliest(&mq, "race", evicting(N as usize)).await.into_stream();
    let publisher = mq.publisher("race");
    let producer = AbortOnDrop(tokio::spawn(async move {
        for i in 0..N {
            publisher.publish(i).await.unwrap();
            if i % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }));
    let mut got = Vec::with_capacity(N as usize);
    let mut cancelled = 0u32;
    within(Duration::from_secs(30), async {
        while got.len() < N as usize {
            tokio::select! {
                item = stream.next() => got.push(at(item).1),
                _ = tokio::time::sleep(Duration::from_micros(20)) => cancelled += 1,
            }
        }
    })
    .await
    .expect("all messages arrived");
    producer.join().await.unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert!(
        timeout(SETTLE, stream.next()).await.is_err(),
        "no duplicate at the end"
    );
    let _ = cancelled;
}

/// An owned stream handed from task to task on a multi-thread runtime
/// (each task reads a share, then returns it) while another task
/// publishes: every message once, in order, whatever thread read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_stream_handed_from_task_to_task_reads_everything_in_order() {
    const N: u32 = 1_000;
    let mq = MessageQueue::new();
    let mut stream = earliest(&mq, "hand", lossless(16)).await.into_stream();
    let publisher = mq.publisher("hand");
    let producer = AbortOnDrop(tokio::spawn(async move {
        for i in 0..N {
            publisher.publish(i).await.unwrap();
        }
    }));
    let mut got = Vec::with_capacity(N as usize);
    for _ in 0..(N / 50) {
        let task = tokio::spawn(async move {
            let mut share = Vec::new();
            for _ in 0..50 {
                share.push(at(stream.next().await).1);
            }
            (stream, share)
        });
        let (back, share) = within(LIMIT, task).await.expect("a share of 50").unwrap();
        stream = back;
        got.extend(share);
    }
    within(LIMIT, producer.join()).await.unwrap().unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

/// The borrowed `stream()` and `recv()` on one subscriber, concurrently,
/// share its cursor: each message goes to exactly one of them, and each
/// side sees increasing offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_borrowed_stream_and_recv_on_one_subscriber_split_the_messages() {
    const N: u32 = 600;
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "split", TopicOptions::default()).await;
    let publisher = mq.publisher("split");
    let producer = AbortOnDrop(tokio::spawn(async move {
        for i in 0..N {
            publisher.publish(i).await.unwrap();
            if i % 8 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }));
    let total = std::sync::atomic::AtomicU32::new(0);
    let done = || total.load(std::sync::atomic::Ordering::SeqCst) >= N;
    let count = || total.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let by_stream = async {
        let mut stream = sub.stream();
        let mut seen = Vec::new();
        while !done() {
            if let Ok(item) = timeout(Duration::from_millis(5), stream.next()).await {
                seen.push(at(item).0);
                count();
            }
        }
        seen
    };
    let by_recv = async {
        let mut seen = Vec::new();
        while !done() {
            if let Ok(m) = timeout(Duration::from_millis(5), sub.recv()).await {
                seen.push(m.unwrap().offset());
                count();
            }
        }
        seen
    };
    let (a, b) = within(Duration::from_secs(30), async {
        tokio::join!(by_stream, by_recv)
    })
    .await
    .expect("all read");
    producer.join().await.unwrap();
    assert!(a.windows(2).all(|w| w[0] < w[1]), "stream side in order");
    assert!(b.windows(2).all(|w| w[0] < w[1]), "recv side in order");
    let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..u64::from(N)).collect::<Vec<_>>(), "each exactly once");
}

// ---------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------

/// A subscriber from the start of `topic`, made with room for one message
/// and publishers that wait for it.
async fn room_for_one(mq: &MessageQueue, topic: &str) -> Subscriber {
    earliest(mq, topic, lossless(1)).await
}

/// `poll_ready` once.
async fn ready_now<T, S: Sink<T> + Unpin>(sink: &mut S) -> Poll<Result<(), S::Error>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *sink).poll_ready(cx))).await
}

/// `poll_flush` once.
async fn flush_now<T, S: Sink<T> + Unpin>(sink: &mut S) -> Poll<Result<(), S::Error>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *sink).poll_flush(cx))).await
}

/// `poll_close` once.
async fn close_now<T, S: Sink<T> + Unpin>(sink: &mut S) -> Poll<Result<(), S::Error>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *sink).poll_close(cx))).await
}

/// Flush and close before anything was sent are ready at once and
/// publish nothing (nor create the topic); `poll_ready` is ready too.
#[tokio::test]
async fn flush_and_close_of_a_fresh_sink_are_ready_at_once_and_publish_nothing() {
    let mq = MessageQueue::new();
    let mut sink = mq.publisher("fresh").sink::<u32>();
    assert!(matches!(flush_now(&mut sink).await, Poll::Ready(Ok(()))));
    assert!(matches!(close_now(&mut sink).await, Poll::Ready(Ok(()))));
    assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
    assert!(matches!(close_now(&mut sink).await, Poll::Ready(Ok(()))));
    assert!(mq.list_topics().await.is_empty(), "nothing was published");
}

/// `close` keeps no state: values sent after it are published, in order,
/// and a second close is as harmless as the first.
#[tokio::test]
async fn a_sink_sent_to_after_close_still_publishes_in_order() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("after").await.unwrap();
    let mut sink = mq.publisher("after").sink::<u32>();
    sink.send(1).await.unwrap();
    within(LIMIT, sink.close()).await.unwrap().unwrap();
    sink.send(2).await.unwrap();
    within(LIMIT, sink.close()).await.unwrap().unwrap();
    within(LIMIT, sink.close()).await.unwrap().unwrap();
    sink.feed(3).await.unwrap();
    within(LIMIT, sink.close()).await.unwrap().unwrap();
    let got = within(LIMIT, sub.recv_batch_typed::<u32>(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(mq.get_topic_stats("after").await.unwrap().published, 3);
}

/// With room, `start_send` publishes at once: a subscriber sees the value
/// before any flush, and the sink holds nothing. Promise: "A value is
/// published at once when the topic has room".
#[tokio::test]
async fn start_send_with_room_publishes_before_any_flush() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("now").await.unwrap();
    let mut sink = mq.publisher("now").sink::<u32>();
    assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
    Pin::new(&mut sink).start_send(42).unwrap();
    let m = sub.try_recv_now().expect("published by start_send itself");
    assert_eq!((m.offset(), m.deserialize::<u32>().unwrap()), (0, 42));
    assert!(format!("{sink:?}").contains("waiting: 0"), "{sink:?}");
}

/// On a full topic, a `send` dropped while it waits leaves its value held
/// in the sink (it was already handed to `start_send`): it is not
/// published on its own when room appears, and the next flush publishes
/// it exactly once, before the values sent after it.
#[tokio::test]
async fn a_send_dropped_while_the_topic_is_full_is_published_exactly_once_by_the_next_flush() {
    let mq = MessageQueue::new();
    let sub = room_for_one(&mq, "held").await;
    let mut sink = mq.publisher("held").sink::<String>();
    sink.send("a".to_string()).await.unwrap();
    assert!(
        timeout(SETTLE, sink.send("b".to_string())).await.is_err(),
        "full: the send waits, then is dropped"
    );
    assert!(format!("{sink:?}").contains("waiting: 1"), "{sink:?}");
    assert_eq!(
        within(LIMIT, sub.recv_typed::<String>()).await.unwrap().unwrap(),
        "a"
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        sub.try_recv_now().unwrap_err(),
        TryRecvError::Empty,
        "nobody drives the sink: the held value waits in it"
    );
    within(LIMIT, sink.flush()).await.unwrap().unwrap();
    let send_c = async {
        sink.send("c".to_string()).await.unwrap();
    };
    let read = async {
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(within(LIMIT, sub.recv_typed::<String>()).await.unwrap().unwrap());
        }
        got
    };
    let ((), got) = tokio::join!(send_c, read);
    assert_eq!(got, ["b", "c"]);
    assert_eq!(
        sub.try_recv_now().unwrap_err(),
        TryRecvError::Empty,
        "no duplicate"
    );
    assert_eq!(mq.get_topic_stats("held").await.unwrap().published, 3);
}

/// A sink dropped while it holds a value (full topic) never publishes it,
/// not even once room appears later: nothing is published behind the
/// caller's back.
#[tokio::test]
async fn a_sink_dropped_with_a_held_value_never_publishes_it() {
    let mq = MessageQueue::new();
    let sub = room_for_one(&mq, "gone").await;
    let mut sink = mq.publisher("gone").sink::<u32>();
    sink.send(1).await.unwrap();
    assert!(timeout(SETTLE, sink.send(2)).await.is_err());
    drop(sink);
    assert_eq!(within(LIMIT, sub.recv_typed::<u32>()).await.unwrap().unwrap(), 1);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    assert_eq!(mq.get_topic_stats("gone").await.unwrap().published, 1);
}

/// A flush parked in another task on a full topic is woken by
/// `delete_topic` and hands the held value back as `Closed`. Promise:
/// `delete_topic`: "waiting publishers and subscribers are woken with a
/// `Closed` error"; the sink: "An error hands the value back".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_parked_in_a_task_is_woken_by_delete_topic_with_the_value() {
    let mq = MessageQueue::new();
    let _sub = room_for_one(&mq, "del").await;
    let mut sink = mq.publisher("del").sink::<String>();
    sink.send("kept".to_string()).await.unwrap();
    assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
    Pin::new(&mut sink).start_send("held".to_string()).unwrap();
    let flusher = AbortOnDrop(tokio::spawn(async move {
        let result = sink.flush().await;
        (sink, result)
    }));
    tokio::time::sleep(SETTLE).await;
    assert!(!flusher.0.is_finished(), "full: the flush waits");
    assert!(mq.delete_topic("del").await);
    let (mut sink, result) = within(LIMIT, flusher.join())
        .await
        .expect("the delete woke the flush")
        .unwrap();
    assert_eq!(result.unwrap_err(), PublishError::Closed("held".to_string()));
    assert!(sink.publisher().is_closed());
    // Nothing left in the sink.
    assert!(matches!(flush_now(&mut sink).await, Poll::Ready(Ok(()))));
}

/// A `send` parked in another task on a full topic is woken by
/// `MessageQueue::close` and hands its value back as `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_parked_in_a_task_is_woken_by_queue_close_with_the_value() {
    let mq = MessageQueue::new();
    let sub = room_for_one(&mq, "cl").await;
    let mut sink = mq.publisher("cl").sink::<u32>();
    sink.send(1).await.unwrap();
    let sender = AbortOnDrop(tokio::spawn(async move { sink.send(2).await }));
    tokio::time::sleep(SETTLE).await;
    assert!(!sender.0.is_finished());
    mq.close();
    let result = within(LIMIT, sender.join())
        .await
        .expect("close woke the send")
        .unwrap();
    assert!(matches!(result, Err(PublishError::Closed(2))), "{result:?}");
    assert_eq!(within(LIMIT, sub.recv_typed::<u32>()).await.unwrap().unwrap(), 1);
    assert_eq!(
        within(LIMIT, sub.recv()).await.unwrap().unwrap_err(),
        RecvError::Closed
    );
}

/// A value held for a topic that is then deleted and created again under
/// the same name is not published into the new topic: it comes back as
/// `Closed`, and so does every later value (the sink's publisher is bound
/// to the deleted topic). Promise: `PublishError::Closed` "(for a
/// publisher bound to a deleted topic) gone for good".
#[tokio::test]
async fn a_held_value_is_not_published_into_the_next_incarnation_of_its_topic() {
    let mq = MessageQueue::new();
    let _old = room_for_one(&mq, "re").await;
    let mut sink = mq.publisher("re").sink::<u32>();
    sink.send(1).await.unwrap();
    assert!(timeout(SETTLE, sink.send(2)).await.is_err(), "held");
    assert!(mq.delete_topic("re").await);
    let new = room_for_one(&mq, "re").await;
    let err = within(LIMIT, sink.flush()).await.unwrap().unwrap_err();
    assert_eq!(err, PublishError::Closed(2));
    let err = within(LIMIT, sink.send(3)).await.unwrap().unwrap_err();
    assert_eq!(err, PublishError::Closed(3));
    assert_eq!(new.try_recv_now().unwrap_err(), TryRecvError::Empty);
    assert_eq!(mq.get_topic_stats("re").await.unwrap().published, 0);
}

/// The held value fails in `poll_ready`: that error hands the held value
/// back; the sink is then ready, and a `start_send` that fails at once
/// hands back its own value. Promise: "When the held value fails in
/// `poll_ready`, the error hands that value back ... leaves the sink
/// usable".
#[tokio::test]
async fn poll_ready_hands_back_the_held_value_then_start_send_hands_back_its_own() {
    let mq = MessageQueue::new();
    let _sub = room_for_one(&mq, "pr").await;
    let mut sink = mq.publisher("pr").sink::<u32>();
    sink.send(1).await.unwrap();
    assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
    Pin::new(&mut sink).start_send(2).unwrap();
    assert!(ready_now(&mut sink).await.is_pending(), "2 is held: not ready");
    mq.close();
    match ready_now(&mut sink).await {
        Poll::Ready(Err(PublishError::Closed(2))) => {}
        other => panic!("expected Closed(2) from poll_ready, got {other:?}"),
    }
    assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
    let err = Pin::new(&mut sink).start_send(3).unwrap_err();
    assert_eq!((err.kind(), err.into_inner()), (PublishErrorKind::Closed, 3));
    assert!(matches!(flush_now(&mut sink).await, Poll::Ready(Ok(()))));
    assert!(matches!(close_now(&mut sink).await, Poll::Ready(Ok(()))));
}

/// `SinkExt::send` of a new value while the held one fails: the error is
/// the held value's, and the new value is dropped by `futures` (it was
/// never given to the sink), exactly as the sink's docs warn; nothing is
/// left held afterwards.
#[tokio::test]
async fn send_while_the_held_value_fails_reports_the_held_value() {
    let mq = MessageQueue::new();
    let _sub = room_for_one(&mq, "sw").await;
    let mut sink = mq.publisher("sw").sink::<String>();
    sink.send("one".to_string()).await.unwrap();
    assert!(timeout(SETTLE, sink.send("two".to_string())).await.is_err());
    assert!(mq.delete_topic("sw").await);
    let err = within(LIMIT, sink.send("three".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.into_inner(), "two", "the held value's error");
    assert!(format!("{sink:?}").contains("waiting: 0"), "{sink:?}");
    let err = within(LIMIT, sink.send("four".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, PublishError::Closed("four".to_string()));
}

/// `close` with a value held waits until it is published (it drives the
/// publish as `flush` does), then succeeds; the value is published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_a_held_value_waits_for_room_then_publishes_it_once() {
    let mq = MessageQueue::new();
    let sub = room_for_one(&mq, "cw").await;
    let mut sink = mq.publisher("cw").sink::<u32>();
    sink.send(1).await.unwrap();
    assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
    Pin::new(&mut sink).start_send(2).unwrap();
    let closer = AbortOnDrop(tokio::spawn(async move {
        let result = sink.close().await;
        (sink, result)
    }));
    tokio::time::sleep(SETTLE).await;
    assert!(!closer.0.is_finished(), "close waits for the held value");
    assert_eq!(within(LIMIT, sub.recv_typed::<u32>()).await.unwrap().unwrap(), 1);
    let (_sink, result) = within(LIMIT, closer.join()).await.expect("closed").unwrap();
    result.unwrap();
    assert_eq!(within(LIMIT, sub.recv_typed::<u32>()).await.unwrap().unwrap(), 2);
    assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
    assert_eq!(mq.get_topic_stats("cw").await.unwrap().published, 2);
}

/// A value larger than the topic can ever hold is handed back by
/// `start_send` (through `send`) as `TooLarge`, and the sink goes on.
#[tokio::test]
async fn a_too_large_value_is_handed_back_and_the_sink_goes_on() {
    let mq = MessageQueue::new();
    let small = TopicOptions {
        max_bytes: Some(64),
        ..TopicOptions::default()
    };
    let sub = earliest(&mq, "big", small).await;
    let mut sink = mq.publisher("big").sink::<Vec<u8>>();
    let err = within(LIMIT, sink.send(vec![7u8; 1000]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::TooLarge);
    assert_eq!(err.into_inner().len(), 1000, "the value comes back");
    sink.send(vec![1u8, 2]).await.unwrap();
    let got = within(LIMIT, sub.recv_typed::<Vec<u8>>()).await.unwrap().unwrap();
    assert_eq!(got, [1, 2]);
    assert_eq!(mq.get_topic_stats("big").await.unwrap().published, 1);
}

/// A sink into a partitioned topic follows the router: `Fixed(1)` puts
/// every value in partition 1, and a custom router that answers out of
/// range hands the value back as `Unroutable` at once.
#[tokio::test]
async fn a_sink_into_a_partitioned_topic_follows_the_router() {
    let mq = MessageQueue::new();
    two_partitions_into_the_second(&mq, "ps").await;
    let one = mq
        .subscribe_partition("ps", 1, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let zero = mq
        .subscribe_partition("ps", 0, None, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let mut sink = mq.publisher("ps").sink::<u32>();
    sink.send_all(&mut futures_util::stream::iter([4u32, 5, 6].map(Ok)))
        .await
        .unwrap();
    let got: Vec<(Option<usize>, u64, u32)> = within(LIMIT, one.recv_batch(10))
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|m| (m.partition, m.offset(), m.deserialize().unwrap()))
        .collect();
    assert_eq!(got, [(Some(1), 0, 4), (Some(1), 1, 5), (Some(1), 2, 6)]);
    assert_eq!(zero.try_recv_now().unwrap_err(), TryRecvError::Empty);
    let out_of_range: tokio_memq::RouterFn = std::sync::Arc::new(|_key, partitions| partitions + 3);
    mq.set_partition_routing("ps", PartitionRouting::Custom(out_of_range))
        .await
        .unwrap();
    let err = within(LIMIT, sink.send(9)).await.unwrap().unwrap_err();
    assert_eq!(err, PublishError::Unroutable(9));
}

/// On a full topic whose messages expire, the held value goes out when
/// the oldest message expires (no reader needed), and a reader then gets
/// only the live value: the expired one is neither delivered nor lag.
#[tokio::test(start_paused = true)]
async fn a_held_value_goes_out_when_the_oldest_message_expires() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        message_ttl: Some(Duration::from_secs(5)),
        ..TopicOptions::default()
    };
    let mut stream = earliest(&mq, "ttl", options).await.into_typed_stream::<u32>();
    let mut sink = mq.publisher("ttl").sink::<u32>();
    let start = tokio::time::Instant::now();
    sink.send(1).await.unwrap();
    within(LIMIT, sink.send(2))
        .await
        .expect("published once 1 expired")
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(5), "{:?}", start.elapsed());
    let stats = mq.get_topic_stats("ttl").await.unwrap();
    assert_eq!((stats.published, stats.expired, stats.message_count), (2, 1, 1));
    assert_eq!(within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap(), 2);
    assert!(timeout(SETTLE, stream.next()).await.is_err());
}

/// Four sinks feeding one topic with room for two, each from its own
/// task on a multi-thread runtime, while one reader drains: every value
/// exactly once, each sink's values in its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sinks_on_one_full_topic_publish_each_value_once_in_order() {
    const PER: u32 = 200;
    let mq = MessageQueue::new();
    let sub = earliest(&mq, "many", lossless(2)).await;
    let mut feeders = Vec::new();
    for k in 0..4u32 {
        let mut sink = mq.publisher("many").sink::<(u32, u32)>();
        feeders.push(AbortOnDrop(tokio::spawn(async move {
            let mut values = futures_util::stream::iter((0..PER).map(move |i| Ok((k, i))));
            sink.send_all(&mut values).await
        })));
    }
    let mut per_sink: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for _ in 0..(4 * PER) {
        let (k, i) = within(LIMIT, sub.recv_typed::<(u32, u32)>())
            .await
            .expect("the sinks keep going")
            .unwrap();
        per_sink.entry(k).or_default().push(i);
    }
    for feeder in feeders {
        within(LIMIT, feeder.join()).await.unwrap().unwrap().unwrap();
    }
    for k in 0..4 {
        assert_eq!(per_sink[&k], (0..PER).collect::<Vec<_>>(), "sink {k}");
    }
    assert_eq!(
        sub.try_recv_now().unwrap_err(),
        TryRecvError::Empty,
        "no duplicate"
    );
    assert_eq!(
        mq.get_topic_stats("many").await.unwrap().published,
        u64::from(4 * PER)
    );
}

/// `SinkExt` combinators over the sink: `with` (map each value before it
/// is published), `buffer` (values queued in front of the sink on a full
/// topic) and `fanout` (every value to two topics): each value arrives
/// once, in order, through backpressure; `close` of the combined sink
/// flushes what the buffer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_combinators_keep_every_value_once_and_in_order() {
    const N: u32 = 100;
    let mq = MessageQueue::new();
    let left = earliest(&mq, "left", lossless(2)).await;
    let right = earliest(&mq, "right", lossless(3)).await;
    let to_left = mq
        .publisher("left")
        .sink::<String>()
        .with(|n: u32| std::future::ready(Ok::<_, PublishError<String>>(format!("n{n}"))));
    let to_right = mq
        .publisher("right")
        .sink::<String>()
        .buffer(8)
        .with(|n: u32| std::future::ready(Ok::<_, PublishError<String>>(format!("n{n}"))));
    let mut both = to_left.fanout(to_right);
    let writer = AbortOnDrop(tokio::spawn(async move {
        for n in 0..N {
            both.feed(n).await?;
        }
        both.close().await
    }));
    let read = |sub: Subscriber| async move {
        let mut got = Vec::new();
        while got.len() < N as usize {
            got.push(within(LIMIT, sub.recv_typed::<String>()).await.unwrap().unwrap());
        }
        assert_eq!(sub.try_recv_now().unwrap_err(), TryRecvError::Empty);
        got
    };
    let (l, r) = tokio::join!(
        tokio::spawn(read(left)),
        tokio::spawn(async move {
            // The right side reads slowly: the buffer fills and backs up.
            tokio::time::sleep(SETTLE).await;
            read(right).await
        })
    );
    let expected: Vec<String> = (0..N).map(|n| format!("n{n}")).collect();
    within(LIMIT, writer.join()).await.unwrap().unwrap().unwrap();
    assert_eq!(l.unwrap(), expected);
    assert_eq!(r.unwrap(), expected);
}

// ---------------------------------------------------------------------------
// More stream paths: parked streams must not spin, read-ahead and what a
// typed batch put aside, group lag, `into_subscriber`
// ---------------------------------------------------------------------------

/// Counts wake-ups for [`polls_while_parked`].
struct CountingWaker(std::sync::atomic::AtomicBool);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls `stream` for `span` of real time, once at the start and again
/// after each wake-up (checked every millisecond), and returns how many
/// times it was polled; panics if it yields anything. A stream that waits
/// as it should is polled once or twice; one that wakes itself in a loop
/// is polled about once a millisecond.
async fn polls_while_parked<S: futures_util::Stream + Unpin>(stream: &mut S, span: Duration) -> usize
where
    S::Item: std::fmt::Debug,
{
    let flag = std::sync::Arc::new(CountingWaker(std::sync::atomic::AtomicBool::new(true)));
    let waker = std::task::Waker::from(flag.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let deadline = tokio::time::Instant::now() + span;
    let mut polls = 0;
    while tokio::time::Instant::now() < deadline {
        if flag.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            polls += 1;
            if let Poll::Ready(item) = Pin::new(&mut *stream).poll_next(&mut cx) {
                panic!("expected the stream to wait, it yielded {item:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    polls
}

/// Every kind of stream parked with nothing to deliver waits without
/// spinning: plain, partitioned, typed, an automatic group's member, and a
/// manual group's member held at `max_pending`.
#[tokio::test]
async fn parked_streams_of_every_kind_wait_without_spinning() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("sp", TopicOptions::default(), 3)
        .await
        .unwrap();
    let mut plain = mq.subscriber("s1").await.unwrap().into_stream();
    let mut merged = mq.subscriber("sp").await.unwrap().into_stream();
    let mut typed = mq.subscriber("s2").await.unwrap().into_typed_stream::<u32>();
    let mut auto = mq.group("s3", "g").join().await.unwrap().into_stream();
    let mut manual = mq
        .group("s4", "g")
        .manual_ack()
        .max_pending(1)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap()
        .into_stream();
    mq.publisher("s4").publish_batch(vec![1u32, 2]).await.unwrap();
    let held = within(LIMIT, manual.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(held.offset(), 0);
    let span = Duration::from_millis(60);
    let polls = [
        ("plain", polls_while_parked(&mut plain, span).await),
        ("partitioned", polls_while_parked(&mut merged, span).await),
        ("typed", polls_while_parked(&mut typed, span).await),
        ("automatic group", polls_while_parked(&mut auto, span).await),
        (
            "manual group at max_pending",
            polls_while_parked(&mut manual, span).await,
        ),
    ];
    for (kind, n) in polls {
        assert!(n >= 1, "{kind}: polled at the start");
        assert!(
            n <= 3,
            "{kind} stream was polled {n} times in {span:?} with nothing to deliver"
        );
    }
}

/// Messages an owned stream's cursor read ahead and that expire before
/// the stream gets to them are never delivered (nor reported as lag): the
/// stream goes on with the next live message. Promise: "Messages older
/// than `message_ttl` are never delivered".
#[tokio::test(start_paused = true)]
async fn messages_read_ahead_by_a_stream_that_expire_are_not_delivered() {
    let ttl = TopicOptions {
        message_ttl: Some(Duration::from_millis(100)),
        ..TopicOptions::default()
    };
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("rp", ttl.clone(), 2).await.unwrap();
    mq.set_partition_routing("rp", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let mut plain = earliest(&mq, "ra", ttl.clone()).await.into_stream();
    let mut merged = earliest(&mq, "rp", ttl.clone()).await.into_stream();
    let mut member = mq
        .group("rg", "w")
        .options(ttl.clone())
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap()
        .into_stream();
    for topic in ["ra", "rp", "rg"] {
        mq.publisher(topic)
            .publish_batch(vec![0u32, 1, 2, 3])
            .await
            .unwrap();
    }
    for (name, stream) in [
        ("plain", &mut plain),
        ("partitioned", &mut merged),
        ("group", &mut member),
    ] {
        let first = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(first.offset(), 0, "{name}");
    }
    tokio::time::advance(Duration::from_millis(150)).await;
    for topic in ["ra", "rp", "rg"] {
        mq.publisher(topic).publish(4u32).await.unwrap();
    }
    for (name, stream) in [
        ("plain", &mut plain),
        ("partitioned", &mut merged),
        ("group", &mut member),
    ] {
        let item = within(LIMIT, stream.next()).await.unwrap().unwrap();
        let m = item.unwrap_or_else(|e| panic!("{name}: expected offset 4, got {e:?}"));
        assert_eq!((m.offset(), m.deserialize::<u32>().unwrap()), (4, 4), "{name}");
    }
}

/// What `recv_batch_typed` put aside (the message that failed to decode
/// and those after it) comes first through a stream made afterwards, on a
/// partitioned topic and for an automatic group's member: the failure is
/// reported once with its offset, the rest follow, nothing twice.
#[tokio::test]
async fn what_a_typed_batch_put_aside_comes_first_through_a_later_stream() {
    let mq = MessageQueue::new();
    two_partitions_into_the_second(&mq, "ta").await;
    let merged = earliest(&mq, "ta", TopicOptions::default()).await;
    let member = mq
        .group("tg", "w")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    for topic in ["ta", "tg"] {
        let p = mq.publisher(topic);
        p.publish_batch(vec![1u32, 2]).await.unwrap();
        p.publish("three").await.unwrap();
        p.publish(4u32).await.unwrap();
    }
    for (name, sub) in [("partitioned", merged), ("group", member)] {
        let first = within(LIMIT, sub.recv_batch_typed::<u32>(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first, [1, 2], "{name}");
        let mut stream = sub.into_typed_stream::<u32>();
        match within(LIMIT, stream.next()).await.unwrap().unwrap() {
            Err(RecvTypedError::Decode(e)) => assert_eq!(e.offset(), Some(2), "{name}"),
            other => panic!("{name}: expected the decode failure at 2, got {other:?}"),
        }
        assert_eq!(
            within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap(),
            4,
            "{name}"
        );
        assert!(
            timeout(SETTLE, stream.next()).await.is_err(),
            "{name}: nothing twice"
        );
    }
}

/// An automatic group's member read through a stream on an evicting topic
/// reports the exact lag, then the retained messages in order.
#[tokio::test]
async fn a_group_member_stream_reports_the_exact_lag_then_goes_on() {
    let mq = MessageQueue::new();
    let member = mq
        .group("gl", "w")
        .options(evicting(3))
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    let p = mq.publisher("gl");
    for i in 0..10u32 {
        p.publish(i).await.unwrap();
    }
    let mut stream = member.into_stream();
    let first = within(LIMIT, stream.next()).await.unwrap().unwrap();
    assert_eq!(first.unwrap_err(), RecvError::Lagged(7));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(at(within(LIMIT, stream.next()).await.unwrap()));
    }
    assert_eq!(got, [(7, 7), (8, 8), (9, 9)]);
    assert!(timeout(SETTLE, stream.next()).await.is_err());
}

/// `into_subscriber` after a stream read part of what its cursor fetched:
/// the subscriber goes on at the next message (what the cursor read ahead
/// is not lost), for a plain, a partitioned and a group subscriber.
#[tokio::test]
async fn into_subscriber_after_a_partial_stream_read_resumes_at_the_next_message() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("ip", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("ip", PartitionRouting::Fixed(0))
        .await
        .unwrap();
    let plain = earliest(&mq, "iq", TopicOptions::default()).await;
    let merged = earliest(&mq, "ip", TopicOptions::default()).await;
    let member = mq
        .group("ig", "w")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    for topic in ["iq", "ip", "ig"] {
        mq.publisher(topic)
            .publish_batch((0..6u32).collect())
            .await
            .unwrap();
    }
    for (name, sub) in [("plain", plain), ("partitioned", merged), ("group", member)] {
        let mut stream = sub.into_stream();
        for i in 0..2u32 {
            assert_eq!(
                at(within(LIMIT, stream.next()).await.unwrap()),
                (u64::from(i), i),
                "{name}"
            );
        }
        let sub = stream.into_subscriber();
        let rest: Vec<u64> = within(LIMIT, sub.recv_batch(10))
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(TopicMessage::offset)
            .collect();
        assert_eq!(rest, [2, 3, 4, 5], "{name}");
    }
}

/// A manual-acknowledgement member's stream parked at `max_pending` when
/// the topic is deleted: acknowledging what it holds lets it receive what
/// the topic retained (it must be woken by the ack), then it ends.
/// Promise: `delete_topic` "subscribers ... woken with a Closed error"
/// after what is retained; `RecvError::Closed` for a manual member "is
/// told once the group has handed out everything".
#[tokio::test]
async fn a_manual_ack_stream_held_at_max_pending_through_a_delete_drains_then_ends() {
    let mq = MessageQueue::new();
    let member = mq
        .group("md", "w")
        .manual_ack()
        .max_pending(1)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("md").publish_batch(vec![1u32, 2]).await.unwrap();
    let mut stream = member.into_stream();
    let first = within(LIMIT, stream.next()).await.unwrap().unwrap().unwrap();
    assert!(timeout(SETTLE, stream.next()).await.is_err(), "at max_pending");
    assert!(mq.delete_topic("md").await);
    let mut acked = false;
    let second = within(
        LIMIT,
        std::future::poll_fn(|cx| {
            let polled = stream.poll_next_unpin(cx);
            if acked {
                return polled;
            }
            if polled.is_ready() {
                return polled;
            }
            stream.subscriber().ack(&first).unwrap();
            acked = true;
            Poll::Pending
        }),
    )
    .await
    .expect("the ack woke the stream");
    assert!(acked, "offset 1 must wait for the ack: {second:?}");
    let second = second.expect("offset 1 was retained").unwrap();
    assert_eq!(second.offset(), 1);
    stream.subscriber().ack(&second).unwrap();
    assert!(
        within(LIMIT, stream.next()).await.unwrap().is_none(),
        "then the end"
    );
}

/// A flush parked in another task on a full topic is woken when room
/// appears without a read: the only subscriber holding the topic full is
/// dropped, or seeks past the oldest message. The value is published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_flush_is_woken_by_a_subscriber_dropped_or_seeking_ahead() {
    for how in ["drop", "seek"] {
        let mq = MessageQueue::new();
        let topic = format!("room-{how}");
        let blocker = room_for_one(&mq, &topic).await;
        let mut sink = mq.publisher(&topic).sink::<u32>();
        sink.send(1).await.unwrap();
        assert!(matches!(ready_now(&mut sink).await, Poll::Ready(Ok(()))));
        Pin::new(&mut sink).start_send(2).unwrap();
        let flusher = AbortOnDrop(tokio::spawn(async move {
            let result = sink.flush().await;
            (sink, result)
        }));
        tokio::time::sleep(SETTLE).await;
        assert!(!flusher.0.is_finished(), "{how}: full");
        let kept = if how == "drop" {
            drop(blocker);
            None
        } else {
            blocker.seek(1).await.unwrap();
            Some(blocker)
        };
        let (_sink, result) = within(LIMIT, flusher.join())
            .await
            .unwrap_or_else(|_| panic!("{how}: room appeared but the flush was not woken"))
            .unwrap();
        result.unwrap();
        let stats = mq.get_topic_stats(&topic).await.unwrap();
        assert_eq!((stats.published, stats.next_offset), (2, 2), "{how}");
        if let Some(sub) = kept {
            assert_eq!(within(LIMIT, sub.recv_typed::<u32>()).await.unwrap().unwrap(), 2);
        }
    }
}

// ---------------------------------------------------------------------------
// Group redeliveries and rebalances reaching a parked stream
// ---------------------------------------------------------------------------

/// A manual-acknowledgement member drops with a message unacknowledged;
/// another member's stream parked in `next()` in another task is woken
/// and gets it as a redelivery. Promise: `manual_ack` "a member that is
/// dropped ... loses its pending messages to the other members".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_member_stream_gets_what_a_dropped_member_held() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("rd", "w")
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (crashes, survivor) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("rd").publish(5u32).await.unwrap();
    let held = within(LIMIT, crashes.recv()).await.unwrap().unwrap();
    assert_eq!((held.offset(), held.deliveries), (0, 1));
    let mut stream = survivor.into_stream();
    let reader = AbortOnDrop(tokio::spawn(async move {
        let got = stream.next().await;
        (stream, got)
    }));
    tokio::time::sleep(SETTLE).await;
    assert!(!reader.0.is_finished(), "held by the other member");
    drop(crashes);
    let (stream, got) = within(LIMIT, reader.join())
        .await
        .expect("the dropped member's message reached the parked stream")
        .unwrap();
    let m = got.unwrap().unwrap();
    assert_eq!(
        (m.offset(), m.deliveries, m.deserialize::<u32>().unwrap()),
        (0, 2, 5)
    );
    stream.subscriber().ack(&m).unwrap();
    assert_eq!(mq.get_group_stats("rd", "w").await.unwrap().pending, 0);
}

/// A member idle past the ack timeout with a message unacknowledged: the
/// other member's stream parked in `next()` gets it once the timeout
/// passes (it must wait on a timer, not only on publishes). Paused time.
#[tokio::test(start_paused = true)]
async fn a_parked_member_stream_gets_what_an_idle_member_held_after_the_ack_timeout() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("at", "w")
            .manual_ack()
            .ack_timeout(Duration::from_secs(2))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (stuck, other) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("at").publish(9u32).await.unwrap();
    let _held = within(LIMIT, stuck.recv()).await.unwrap().unwrap();
    let mut stream = other.into_stream();
    let start = tokio::time::Instant::now();
    let m = within(LIMIT, stream.next())
        .await
        .expect("woken when the ack timeout passed")
        .unwrap()
        .unwrap();
    assert_eq!((m.offset(), m.deliveries), (0, 2));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < LIMIT,
        "waited {waited:?}"
    );
}

/// An exclusive group on a partitioned topic: two members own one
/// partition each; one never reads, the other's stream reads its own
/// partition and parks in `next()`; when the idle owner leaves, the parked
/// stream is woken by the rebalance alone (no publish) and gets the other
/// partition's messages too, in order within each partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_exclusive_member_stream_takes_over_after_a_rebalance() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("ex", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("ex", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let owner = mq
        .group("ex", "w")
        .exclusive()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    let waiting_member = mq
        .group("ex", "w")
        .exclusive()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    // Both joined: each owns one partition, three messages each. The
    // second reads its three and parks; the first never reads, then
    // leaves: the parked stream must be woken by the rebalance alone.
    mq.publisher("ex")
        .publish_batch((0..6u32).collect())
        .await
        .unwrap();
    let mut stream = waiting_member.into_stream();
    let reader = AbortOnDrop(tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 6 {
            let m = stream.next().await.expect("open").expect("a message");
            got.push((m.partition.unwrap(), m.offset(), m.deserialize::<u32>().unwrap()));
        }
        got
    }));
    tokio::time::sleep(SETTLE).await;
    assert!(!reader.0.is_finished(), "the other partition is the owner's");
    drop(owner);
    let got = within(LIMIT, reader.join())
        .await
        .expect("the remaining member reads both partitions")
        .unwrap();
    let mut per_partition: BTreeMap<usize, Vec<(u64, u32)>> = BTreeMap::new();
    for (p, o, v) in got {
        per_partition.entry(p).or_default().push((o, v));
    }
    assert_eq!(per_partition.len(), 2, "{per_partition:?}");
    for (p, got) in per_partition {
        let offsets: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(offsets, [0, 1, 2], "partition {p} in order");
    }
}

/// A value that serializes as its number, or fails to serialize.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Good(u32),
    Bad,
}

impl serde::Serialize for Val {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Good(n) => s.serialize_u32(*n),
            Val::Bad => Err(serde::ser::Error::custom("this value cannot be serialized")),
        }
    }
}

/// On a topic that encodes (JSON defaults), a value that cannot be
/// serialized is handed back as `Encode` with the value, whether it fails
/// in `start_send` or queued behind a held value (sent without
/// `poll_ready`) and tried by a later flush; the values around it are
/// published once, in order. Promise: "one that fails is handed back by
/// the flush that tried it, and the flushes after it go on with the rest".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unserializable_value_is_handed_back_as_encode_where_it_fails() {
    let mq = MessageQueue::new();
    mq.register_topic_defaults(
        "enc",
        tokio_memq::SerializationFormat::Json,
        tokio_memq::SerializationConfig::Default,
        None,
    );
    let sub = room_for_one(&mq, "enc").await;
    let mut sink = mq.publisher("enc").sink::<Val>();
    // With room: fails in start_send itself.
    let err = Pin::new(&mut sink).start_send(Val::Bad).unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::Encode);
    assert_eq!(err.into_inner(), Val::Bad);
    // 1 published, 2 held (full), Bad and 3 queued behind it.
    for v in [Val::Good(1), Val::Good(2), Val::Bad, Val::Good(3)] {
        Pin::new(&mut sink).start_send(v).unwrap();
    }
    let reader = AbortOnDrop(tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(sub.recv_typed::<u32>().await.unwrap());
        }
        tokio::time::sleep(SETTLE).await;
        (got, sub.try_recv_now().unwrap_err())
    }));
    let err = within(LIMIT, sink.flush()).await.unwrap().unwrap_err();
    match err {
        PublishError::Encode { value, .. } => assert_eq!(value, Val::Bad),
        other => panic!("expected Encode(Bad), got {other:?}"),
    }
    within(LIMIT, sink.flush()).await.unwrap().unwrap();
    let (got, after) = within(LIMIT, reader.join()).await.unwrap().unwrap();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(after, TryRecvError::Empty, "nothing twice");
    assert_eq!(mq.get_topic_stats("enc").await.unwrap().published, 3);
}
