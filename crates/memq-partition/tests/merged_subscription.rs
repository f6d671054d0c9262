//! Reading every partition through one `MergedCursor`: exactly once,
//! fairly, with lags attributed to their partition, closing, wake-ups and
//! cancel safety.

mod common;

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use common::{bounded, unbounded};
use memq_core::{Overflow, StartFrom, TopicConfig};
use memq_partition::{MergedCursor, MergedWaiter, PartitionedTopic, RecvError, Routing, TryRecvError};

/// Checks that `got` holds every `(partition, value)` of `expected` once,
/// with each partition's values in order.
fn assert_exactly_once_in_order(got: &[(usize, u64)], per_partition: &HashMap<usize, Vec<u64>>) {
    let mut seen: HashMap<usize, Vec<u64>> = HashMap::new();
    for &(p, v) in got {
        seen.entry(p).or_default().push(v);
    }
    for (p, values) in per_partition {
        assert_eq!(seen.get(p).cloned().unwrap_or_default(), *values, "partition {p}");
    }
    assert_eq!(got.len(), per_partition.values().map(Vec::len).sum::<usize>());
}

#[test]
fn partitions_take_turns_and_a_busy_one_starves_nobody() {
    let topic = unbounded::<u64>(3);
    let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    for i in 0..100 {
        topic.partition(0).unwrap().try_publish(i).unwrap();
    }
    for i in 0..3 {
        topic.partition(1).unwrap().try_publish(100 + i).unwrap();
        topic.partition(2).unwrap().try_publish(200 + i).unwrap();
    }
    let order: Vec<usize> = (0..12).map(|_| all.try_recv().unwrap().0).collect();
    assert_eq!(order, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0]);

    // A batch asks each partition for an equal share per round.
    topic.partition(1).unwrap().try_publish(103).unwrap();
    topic.partition(2).unwrap().try_publish(203).unwrap();
    let mut out = Vec::new();
    assert_eq!(all.try_recv_batch(9, &mut out).unwrap(), 9);
    let got: Vec<(usize, u64)> = out.iter().map(|(p, m)| (*p, m.value)).collect();
    // Turn order resumes after partition 0 (the last to deliver): 1, 2, 0,
    // then partition 0 alone fills the rest.
    assert_eq!(
        got,
        vec![
            (1, 103),
            (2, 203),
            (0, 6),
            (0, 7),
            (0, 8),
            (0, 9),
            (0, 10),
            (0, 11),
            (0, 12)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_every_partition_exactly_once() {
    const PER_PUBLISHER: u64 = 3000;
    let topic = unbounded::<u64>(5);
    topic.set_routing(Routing::Hash);
    let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let got = bounded(async {
        let publishers: Vec<_> = (0..3u64)
            .map(|t| {
                let topic = topic.clone();
                tokio::spawn(async move {
                    for i in 0..PER_PUBLISHER {
                        let key = (t * 7 + i % 7).to_le_bytes();
                        if i % 3 == 0 {
                            let batch = vec![(Some(key), t * 1_000_000 + i)];
                            topic.publish_batch(batch).await.unwrap();
                        } else {
                            topic.publish(Some(&key), t * 1_000_000 + i).await.unwrap();
                        }
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        let mut batch = Vec::new();
        while got.len() < (3 * PER_PUBLISHER) as usize {
            if got.len() % 2 == 0 {
                let (p, m) = all.recv().await.unwrap();
                got.push((p, m.offset, m.value));
            } else {
                batch.clear();
                all.recv_batch(50, &mut batch).await.unwrap();
                got.extend(batch.drain(..).map(|(p, m)| (p, m.offset, m.value)));
            }
        }
        for p in publishers {
            p.await.unwrap();
        }
        got
    })
    .await;
    assert_eq!(all.try_recv().unwrap_err(), TryRecvError::Empty);
    // Compare with each partition's own contents.
    let mut expected = HashMap::new();
    for p in 0..5 {
        expected.insert(
            p,
            common::partition_contents(&topic, p)
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
        );
    }
    let pairs: Vec<(usize, u64)> = got.iter().map(|&(p, _, v)| (p, v)).collect();
    assert_exactly_once_in_order(&pairs, &expected);
    // Offsets per partition are dense from 0.
    let mut next = [0u64; 5];
    for &(p, offset, _) in &got {
        assert_eq!(offset, next[p]);
        next[p] += 1;
    }
}

/// Drops a receive future after a single poll, again and again, while
/// publishers run: nothing may be lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_receives_after_one_poll_loses_nothing() {
    const TOTAL: u64 = 4000;
    let topic = unbounded::<u64>(4);
    let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let (got, dropped) = bounded(async {
        let publisher = {
            let topic = topic.clone();
            tokio::spawn(async move {
                for i in 0..TOTAL {
                    topic.publish(None, i).await.unwrap();
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let mut got = Vec::new();
        let mut dropped = 0u64;
        let mut out = Vec::new();
        let mut round = 0u64;
        while (got.len() as u64) < TOTAL {
            round += 1;
            // Poll a fresh receive future exactly once with the task's real
            // waker, then drop it, ready or not.
            let polled = poll_fn(|cx| {
                if round % 2 == 0 {
                    let mut fut = all.recv();
                    Poll::Ready(match Pin::new(&mut fut).poll(cx) {
                        Poll::Ready(r) => Some(vec![r.unwrap()]),
                        Poll::Pending => None,
                    })
                } else {
                    out.clear();
                    let mut fut = all.recv_batch(7, &mut out);
                    let r = Pin::new(&mut fut).poll(cx);
                    drop(fut);
                    Poll::Ready(match r {
                        Poll::Ready(n) => {
                            assert!(n.unwrap() > 0);
                            Some(std::mem::take(&mut out))
                        }
                        Poll::Pending => {
                            assert!(out.is_empty(), "a pending batch appended nothing");
                            None
                        }
                    })
                }
            })
            .await;
            match polled {
                Some(msgs) => got.extend(msgs.into_iter().map(|(p, m)| (p, m.value))),
                None => dropped += 1,
            }
            // The losing branch of a select! is another way to drop one.
            tokio::select! {
                biased;
                () = tokio::task::yield_now() => {}
                r = all.recv() => {
                    let (p, m) = r.unwrap();
                    got.push((p, m.value));
                }
            }
        }
        publisher.await.unwrap();
        (got, dropped)
    })
    .await;
    assert!(dropped > 0, "some futures were dropped while pending");
    let mut expected: HashMap<usize, Vec<u64>> = HashMap::new();
    for i in 0..TOTAL {
        expected.entry((i % 4) as usize).or_default().push(i);
    }
    assert_exactly_once_in_order(&got, &expected);
    assert_eq!(all.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// A waker that records whether it was woken, so a test can check that a
/// wake-up happened rather than rely on being polled again anyway.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

#[test]
fn a_parked_receive_is_woken_by_a_publish_to_any_partition() {
    let topic = unbounded::<&'static str>(4);
    let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    for p in [3, 0, 2, 1] {
        let mut fut = all.recv();
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert!(!flag.take());
        topic.partition(p).unwrap().try_publish("x").unwrap();
        assert!(flag.take(), "a publish to partition {p} woke the receive");
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(Ok((partition, msg))) => assert_eq!((partition, msg.value), (p, "x")),
            other => panic!("{other:?}"),
        }
    }
    // The same for a batch receive.
    for p in [1, 3] {
        let mut out = Vec::new();
        let mut fut = all.recv_batch(8, &mut out);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        topic.partition(p).unwrap().try_publish("y").unwrap();
        assert!(flag.take(), "a publish to partition {p} woke the batch receive");
        assert!(matches!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(1))));
        drop(fut);
        assert_eq!(out[0].0, p);
    }
    // And for closing: a parked receive learns that every partition closed.
    let mut fut = all.recv();
    assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
    topic.close();
    assert!(flag.take(), "closing woke the receive");
    assert!(matches!(
        Pin::new(&mut fut).poll(&mut cx),
        Poll::Ready(Err(RecvError::Closed))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn lags_are_reported_with_their_partition() {
    let topic = PartitionedTopic::new(TopicConfig::default().max_messages(Some(2)), 2).unwrap();
    let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let (p0, p1) = (topic.partition(0).unwrap(), topic.partition(1).unwrap());
    p0.try_publish(0u32).unwrap();
    p0.try_publish(1).unwrap();
    for i in 10..15 {
        p1.try_publish(i).unwrap(); // 10, 11, 12 evicted unread
    }
    // The batch takes partition 0's messages and meets partition 1's lag:
    // the lag is kept for the next call.
    let mut out = Vec::new();
    assert_eq!(all.try_recv_batch(10, &mut out).unwrap(), 2);
    assert_eq!(
        all.recv().await.unwrap_err(),
        RecvError::Lagged {
            partition: 1,
            skipped: 3
        }
    );
    let rest: Vec<(usize, u32)> = std::iter::from_fn(|| all.try_recv().ok())
        .map(|(p, m)| (p, m.value))
        .collect();
    assert_eq!(rest, vec![(1, 13), (1, 14)]);

    // A lag met by a receive with nothing else in hand is reported at once.
    for i in 20..25 {
        p0.try_publish(i).unwrap();
    }
    assert_eq!(
        all.try_recv().unwrap_err(),
        TryRecvError::Lagged {
            partition: 0,
            skipped: 3
        }
    );
    assert_eq!(all.try_recv().unwrap().1.value, 23);
    assert_eq!(
        RecvError::Lagged {
            partition: 1,
            skipped: 3
        }
        .to_string(),
        "partition 1: subscriber lagged: 3 messages were evicted unread"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn closed_only_when_every_partition_is_closed_and_drained() {
    let topic = unbounded::<u8>(3);
    let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    topic.try_publish(None, 0).unwrap(); // p0
    topic.try_publish(None, 1).unwrap(); // p1
    topic.partition(0).unwrap().close();
    topic.partition(1).unwrap().close();
    assert!(!all.is_closed());
    assert_eq!(all.try_recv().unwrap().1.value, 0);
    assert_eq!(all.try_recv().unwrap().1.value, 1);
    assert_eq!(
        all.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "partition 2 is open"
    );

    // A receive parked on the open partition wakes with Closed when it closes.
    let t = topic.clone();
    let (r, ()) = bounded(async {
        tokio::join!(all.recv(), async move {
            tokio::task::yield_now().await;
            t.close();
        })
    })
    .await;
    assert_eq!(r.unwrap_err(), RecvError::Closed);
    assert!(all.is_closed());
    let mut out = Vec::new();
    assert_eq!(all.recv_batch(5, &mut out).await.unwrap_err(), RecvError::Closed);
}

#[test]
fn poll_recv_with_one_waiter_per_partition() {
    let topic = unbounded::<u32>(3);
    let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut waiter = MergedWaiter::new();
    // Nothing yet: pending, registered with all three partitions.
    assert!(all.poll_recv(&mut cx, &mut waiter).is_pending());
    topic.partition(2).unwrap().try_publish(7).unwrap();
    assert!(flag.take());
    match all.poll_recv(&mut cx, &mut waiter) {
        Poll::Ready(Ok((p, m))) => assert_eq!((p, m.value), (2, 7)),
        other => panic!("{other:?}"),
    }
    // Registered again, on every partition, by the next pending poll.
    assert!(all.poll_recv(&mut cx, &mut waiter).is_pending());
    topic.partition(0).unwrap().try_publish(8).unwrap();
    assert!(flag.take());
    // Dropping the waiter withdraws its registrations: no more wake-ups.
    drop(waiter);
    topic.partition(1).unwrap().try_publish(9).unwrap();
    assert!(!flag.take());
    let got: Vec<(usize, u32)> = std::iter::from_fn(|| all.try_recv().ok())
        .map(|(p, m)| (p, m.value))
        .collect();
    assert_eq!(got, vec![(0, 8), (1, 9)]);
}

#[test]
fn a_subset_of_partitions_and_rebalancing() {
    let topic = unbounded::<u32>(4);
    for i in 0..8 {
        topic.try_publish(None, i).unwrap(); // i → partition i % 4
    }
    let mut merged = MergedCursor::new(vec![
        (1, topic.subscribe_partition(1, StartFrom::Earliest).unwrap()),
        (3, topic.subscribe_partition(3, StartFrom::Earliest).unwrap()),
    ]);
    assert_eq!(merged.try_recv().unwrap(), (1, merged_peek(&topic, 1, 0)));
    assert_eq!(merged.lag(), 3);
    // Hand partition 1 away, take partition 0.
    let p1 = merged.remove(1).unwrap();
    assert_eq!(p1.position(), 1);
    assert!(merged
        .insert(0, topic.subscribe_partition(0, StartFrom::Earliest).unwrap())
        .is_none());
    assert_eq!(merged.partitions().collect::<Vec<_>>(), vec![0, 3]);
    let got: Vec<(usize, u32)> = std::iter::from_fn(|| merged.try_recv().ok())
        .map(|(p, m)| (p, m.value))
        .collect();
    assert_eq!(got, vec![(3, 3), (0, 0), (3, 7), (0, 4)]);
    let cursors = merged.into_cursors();
    assert_eq!(
        cursors
            .iter()
            .map(|(p, c)| (*p, c.position()))
            .collect::<Vec<_>>(),
        vec![(0, 2), (3, 2)]
    );
}

fn merged_peek(topic: &PartitionedTopic<u32>, p: usize, offset: u64) -> memq_core::Delivered<u32> {
    let mut c = topic.subscribe_partition(p, StartFrom::Offset(offset)).unwrap();
    c.try_recv().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn backpressure_through_a_merged_reader() {
    let config = TopicConfig::default()
        .max_messages(Some(1))
        .overflow(Overflow::Block);
    let topic = PartitionedTopic::new(config, 2).unwrap();
    let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    let got = bounded(async {
        let t = topic.clone();
        let publisher = async move {
            for i in 0..20u32 {
                t.publish(None, i).await.unwrap();
            }
        };
        let reader = async {
            let mut got = Vec::new();
            while got.len() < 20 {
                got.push(all.recv().await.unwrap().1.value);
            }
            got
        };
        tokio::join!(publisher, reader).1
    })
    .await;
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    assert_eq!(
        topic.stats().evicted,
        18,
        "only messages the reader had read were removed"
    );
}
