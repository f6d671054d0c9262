//! Offsets, retention, lag, replay, commits and backpressure of one topic.

use std::time::Duration;

use memq_core::{
    CommitError, Overflow, PublishError, RecvError, StartFrom, SubscribeError, Topic, TopicConfig,
    TryRecvError,
};

fn topic(cap: usize) -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(cap))).unwrap()
}

fn drain(c: &mut memq_core::Cursor<u64>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    while let Ok(d) = c.try_recv() {
        out.push((d.offset, d.value));
    }
    out
}

#[test]
fn offsets_are_dense_and_batches_contiguous() {
    let t = topic(100);
    assert_eq!(t.try_publish(10).unwrap(), 0);
    assert_eq!(t.try_publish_batch(vec![11, 12, 13]).unwrap(), 1..4);
    assert_eq!(t.try_publish_batch(vec![]).unwrap(), 4..4);
    assert_eq!(t.try_publish(14).unwrap(), 4);
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    assert_eq!(drain(&mut c), vec![(0, 10), (1, 11), (2, 12), (3, 13), (4, 14)]);
}

#[test]
fn eviction_reports_exact_lag_then_continues_at_oldest() {
    let t = topic(4);
    let mut c = t.subscribe(StartFrom::Latest).unwrap();
    for i in 0..10 {
        t.try_publish(i).unwrap();
    }
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(6));
    assert_eq!(drain(&mut c), vec![(6, 6), (7, 7), (8, 8), (9, 9)]);
    let s = t.stats();
    assert_eq!(
        (s.low, s.high, s.depth, s.published, s.evicted),
        (6, 10, 4, 10, 6)
    );
}

#[test]
fn lag_found_mid_batch_is_reported_on_the_next_call() {
    let t = topic(4);
    let mut c = t.subscribe(StartFrom::Latest).unwrap();
    t.try_publish_batch(vec![0, 1]).unwrap();
    // Read one: the read-ahead copies offset 1 into the cursor as well.
    assert_eq!(c.try_recv().unwrap().offset, 0);
    for i in 2..9 {
        t.try_publish(i).unwrap(); // window becomes [5, 9)
    }
    let mut out = Vec::new();
    assert_eq!(
        c.try_recv_batch(10, &mut out).unwrap(),
        1,
        "the buffered offset 1 comes first"
    );
    assert_eq!(out[0].offset, 1);
    assert_eq!(
        c.try_recv_batch(10, &mut out).unwrap_err(),
        TryRecvError::Lagged(3)
    );
    out.clear();
    assert_eq!(c.try_recv_batch(10, &mut out).unwrap(), 4);
    assert_eq!(out.iter().map(|d| d.offset).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
}

#[test]
fn batch_larger_than_capacity_is_refused_whole() {
    let t = topic(3);
    t.try_publish(1).unwrap();
    match t.try_publish_batch(vec![1, 2, 3, 4]) {
        Err(PublishError::TooLarge(v)) => assert_eq!(v, vec![1, 2, 3, 4]),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.stats().published, 1);
}

#[test]
fn replay_modes_and_range_errors() {
    let t = topic(5);
    for i in 0..8 {
        t.try_publish(i).unwrap();
    }
    // window is [3, 8)
    let mut e = t.subscribe(StartFrom::Earliest).unwrap();
    assert_eq!(e.try_recv().unwrap().offset, 3);
    let mut l = t.subscribe(StartFrom::Latest).unwrap();
    assert_eq!(l.try_recv().unwrap_err(), TryRecvError::Empty);
    let mut o = t.subscribe(StartFrom::Offset(6)).unwrap();
    assert_eq!(o.try_recv().unwrap().offset, 6);
    assert!(
        t.subscribe(StartFrom::Offset(8)).is_ok(),
        "high itself is a valid start"
    );
    for bad in [0, 2, 9, u64::MAX] {
        match t.subscribe(StartFrom::Offset(bad)) {
            Err(SubscribeError::OutOfRange(r)) => assert_eq!((r.requested, r.low, r.high), (bad, 3, 8)),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(o.seek(2).is_err());
    assert!(o.seek(9).is_err());
    o.seek(3).unwrap();
    assert_eq!(o.position(), 3);
    assert_eq!(o.try_recv().unwrap().offset, 3);
    o.seek(8).unwrap();
    assert_eq!(o.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn commit_means_processed_through_and_resume_starts_after() {
    let t = topic(100);
    for i in 0..10 {
        t.try_publish(i).unwrap();
    }
    let mut c = t.subscribe_named("g", StartFrom::Earliest).unwrap();
    for _ in 0..4 {
        c.try_recv().unwrap();
    }
    c.commit(3).unwrap();
    assert_eq!(c.position(), 4, "commit does not move the cursor");
    assert_eq!(
        c.commit(10).unwrap_err(),
        CommitError::NotPublished { offset: 10, high: 10 }
    );
    let lag = t.stats().consumers.into_iter().find(|s| s.name == "g").unwrap();
    assert_eq!((lag.committed, lag.lag, lag.live), (Some(3), 6, 1));
    drop(c);
    assert_eq!(t.committed("g"), Some(3));
    let mut resumed = t.subscribe_named("g", StartFrom::Committed).unwrap();
    assert_eq!(resumed.try_recv().unwrap().offset, 4);
    // Never committed: behaves as Latest.
    let mut fresh = t.subscribe_named("h", StartFrom::Committed).unwrap();
    assert_eq!(fresh.try_recv().unwrap_err(), TryRecvError::Empty);
    // Anonymous: Committed is Latest too.
    let mut anon = t.subscribe(StartFrom::Committed).unwrap();
    assert_eq!(anon.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn resuming_below_the_window_reports_the_gap() {
    let t = topic(3);
    t.try_publish(0).unwrap();
    let mut c = t.subscribe_named("g", StartFrom::Earliest).unwrap();
    c.try_recv().unwrap();
    c.commit(0).unwrap();
    drop(c);
    for i in 1..10 {
        t.try_publish(i).unwrap();
    }
    let mut c = t.subscribe_named("g", StartFrom::Committed).unwrap();
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(6));
    assert_eq!(c.try_recv().unwrap().offset, 7);
}

#[test]
fn byte_budget_evicts_by_weight() {
    let t = Topic::with_weigher(
        TopicConfig::default().max_messages(None).max_bytes(Some(10)),
        |v: &Vec<u8>| v.len(),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(vec![1; 4]).unwrap();
    t.try_publish(vec![2; 4]).unwrap();
    t.try_publish(vec![3; 4]).unwrap(); // evicts the first
    let s = t.stats();
    assert_eq!((s.bytes, s.depth, s.evicted), (8, 2, 1));
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_eq!(c.try_recv().unwrap().value, vec![2; 4]);
    assert!(matches!(t.try_publish(vec![0; 11]), Err(PublishError::TooLarge(v)) if v.len() == 11));
}

#[test]
fn config_errors_are_typed() {
    use memq_core::ConfigError;
    let cases = [
        (
            TopicConfig::default().max_messages(Some(0)),
            ConfigError::ZeroCapacity,
        ),
        (
            TopicConfig::default().max_bytes(Some(0)),
            ConfigError::ZeroByteBudget,
        ),
        (
            TopicConfig::default().max_bytes(Some(1)),
            ConfigError::ByteBudgetWithoutWeigher,
        ),
        (
            TopicConfig::default().ttl(Some(Duration::ZERO)),
            ConfigError::ZeroTtl,
        ),
    ];
    for (cfg, want) in cases {
        assert_eq!(Topic::<u8>::new(cfg).unwrap_err(), want);
    }
}

#[test]
fn block_mode_try_publish_hands_message_back_until_readers_move() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(2))
            .overflow(Overflow::Block),
    )
    .unwrap();
    let mut a = t.subscribe(StartFrom::Earliest).unwrap();
    let b = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(0u64).unwrap();
    t.try_publish(1).unwrap();
    assert_eq!(t.try_publish(2), Err(PublishError::Full(2)));
    a.try_recv().unwrap();
    assert_eq!(
        t.try_publish(2),
        Err(PublishError::Full(2)),
        "b still needs offset 0"
    );
    drop(b);
    assert_eq!(t.try_publish(2), Ok(2));
    assert_eq!(drain(&mut a), vec![(1, 1), (2, 2)]);
    assert_eq!(t.stats().evicted, 1);
}

#[test]
fn offsets_near_the_top_report_exhaustion() {
    let t = Topic::new(TopicConfig::default().first_offset(u64::MAX - 3)).unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    assert_eq!(t.try_publish(1u8).unwrap(), u64::MAX - 3);
    assert_eq!(t.try_publish_batch(vec![2, 3]).unwrap(), u64::MAX - 2..u64::MAX);
    assert_eq!(t.try_publish(4), Err(PublishError::OffsetsExhausted(4)));
    assert_eq!(
        t.try_publish_batch(vec![5]),
        Err(PublishError::OffsetsExhausted(vec![5]))
    );
    let s = t.stats();
    assert_eq!((s.published, s.depth, s.high), (3, 3, u64::MAX));
    let got: Vec<u64> = std::iter::from_fn(|| c.try_recv().ok())
        .map(|d| d.offset)
        .collect();
    assert_eq!(got, vec![u64::MAX - 3, u64::MAX - 2, u64::MAX - 1]);
    assert_eq!(c.lag(), 0);
}

#[test]
fn close_drains_then_reports_closed() {
    let t = topic(10);
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(1).unwrap();
    t.close();
    assert_eq!(t.try_publish(2), Err(PublishError::Closed(2)));
    assert_eq!(c.try_recv().unwrap().value, 1);
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Closed);
    assert!(matches!(
        t.subscribe(StartFrom::Earliest),
        Err(SubscribeError::Closed)
    ));
}

#[test]
fn dropping_the_last_handle_closes() {
    let t = topic(10);
    let t2 = t.clone();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    drop(t);
    assert_eq!(
        c.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "a clone is still alive"
    );
    drop(t2);
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Closed);
}

#[tokio::test(start_paused = true)]
async fn ttl_expires_without_delivery_and_is_counted() {
    let t = Topic::new(TopicConfig::default().ttl(Some(Duration::from_secs(10)))).unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(1u8).unwrap();
    t.try_publish(2).unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    t.try_publish(3).unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    // 1 and 2 are exactly 10 s old: expired, skipped silently.
    let d = c.try_recv().unwrap();
    assert_eq!((d.offset, d.value), (2, 3));
    assert_eq!(t.stats().expired, 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(t.stats().expired, 3, "stats sweep without any publish");
    assert_eq!(t.stats().depth, 0);
    let mut late = t.subscribe(StartFrom::Earliest).unwrap();
    assert_eq!(late.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// `Lagged` counts what was evicted for capacity, whenever the reader
/// finds out: offsets 0..3 were evicted before they expired, so a reader
/// that comes back after they would have expired still hears of them.
#[tokio::test(start_paused = true)]
async fn eviction_is_reported_even_after_the_evicted_would_have_expired() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(2))
            .ttl(Some(Duration::from_secs(1))),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    for i in 0..5u8 {
        t.try_publish(i).unwrap();
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    t.try_publish(9).unwrap();
    // 0..3 were evicted, 3 and 4 expired.
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(3));
    let d = c.try_recv().unwrap();
    assert_eq!((d.offset, d.value), (5, 9));
}

/// Bug G: five messages expire and are swept, then one is evicted; a
/// reader at 0 lost one message to capacity, not six.
#[tokio::test(start_paused = true)]
async fn expired_then_evicted_reports_only_the_evicted() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(3))
            .ttl(Some(Duration::from_secs(1))),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    for i in 0..5u8 {
        t.try_publish(i).unwrap();
    }
    // 0 and 1 evicted at once (capacity 3): window [2, 5).
    tokio::time::advance(Duration::from_secs(2)).await;
    // The next publish sweeps 2..5 (expired), then 5..8 fill the window
    // and 8 evicts 5: evicted are 0, 1 and 5; expired 2, 3, 4.
    for i in 5..9u8 {
        t.try_publish(i).unwrap();
    }
    let s = t.stats();
    assert_eq!((s.low, s.high, s.evicted, s.expired), (6, 9, 3, 3));
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(3));
    assert_eq!(c.try_recv().unwrap().offset, 6);
    // A reader past the first evictions hears of the one after the expiry.
    let mut resumed = t.resume_named("n", 2).unwrap();
    assert_eq!(resumed.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_eq!(resumed.try_recv().unwrap().offset, 6);
}

#[tokio::test]
async fn recv_waits_and_is_woken() {
    let t = topic(10);
    let mut c = t.subscribe(StartFrom::Latest).unwrap();
    let t2 = t.clone();
    let h = tokio::spawn(async move {
        tokio::task::yield_now().await;
        t2.publish(7).await.unwrap()
    });
    let d = memq_testkit::within(Duration::from_secs(5), c.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.offset, d.value), (0, 7));
    h.await.unwrap();
}

#[tokio::test]
async fn close_wakes_waiting_receivers_and_publishers() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(1))
            .overflow(Overflow::Block),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(1u8).unwrap();
    let mut idle = t.subscribe(StartFrom::Latest).unwrap();
    let t2 = t.clone();
    let publisher = tokio::spawn(async move { t2.publish(2).await });
    let waiting = tokio::spawn(async move { idle.recv().await.map(|d| d.value) });
    tokio::task::yield_now().await;
    t.close();
    let p = memq_testkit::within(Duration::from_secs(5), publisher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, Err(PublishError::Closed(2)));
    let w = memq_testkit::within(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w, Err(RecvError::Closed));
    assert_eq!(c.recv().await.unwrap().value, 1);
    assert_eq!(c.recv().await.unwrap_err(), RecvError::Closed);
}

#[tokio::test]
async fn blocked_publisher_proceeds_when_the_reader_moves() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(4))
            .overflow(Overflow::Block),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    let t2 = t.clone();
    let producer = tokio::spawn(async move {
        for i in 0..1000u64 {
            assert_eq!(t2.publish(i).await.unwrap(), i);
        }
    });
    for i in 0..1000u64 {
        let d = memq_testkit::within(Duration::from_secs(5), c.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.offset, d.value), (i, i), "nothing lost, nothing reordered");
    }
    producer.await.unwrap();
    assert!(t.stats().depth <= 4);
}

#[tokio::test]
async fn dropped_recv_futures_lose_nothing() {
    let t = topic(1000);
    let mut c = t.subscribe(StartFrom::Latest).unwrap();
    for i in 0..200u64 {
        // Poll a receive once (registers a waker) and drop it.
        let fut = c.recv();
        let _ = tokio::time::timeout(Duration::from_micros(1), fut).await;
        t.try_publish(i).unwrap();
        let d = memq_testkit::within(Duration::from_secs(5), c.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.value, i);
    }
}

#[tokio::test]
async fn recv_batch_waits_for_one_then_takes_what_is_there() {
    let t = topic(100);
    let mut c = t.subscribe(StartFrom::Latest).unwrap();
    let mut out = Vec::new();
    assert_eq!(c.recv_batch(0, &mut out).await.unwrap(), 0);
    t.try_publish_batch((0..5).collect()).unwrap();
    assert_eq!(c.recv_batch(3, &mut out).await.unwrap(), 3);
    assert_eq!(c.recv_batch(10, &mut out).await.unwrap(), 2);
    assert_eq!(
        out.iter().map(|d| d.value).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
}

/// Regression (found by the contract model): a batch refused as `Full`
/// had already evicted messages every live cursor had passed, and the
/// stats did not show it. A refused publish now changes nothing.
#[test]
fn refused_publish_changes_nothing() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(3))
            .overflow(Overflow::Block),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(0u64).unwrap();
    assert_eq!(c.try_recv().unwrap().offset, 0);
    t.try_publish(1).unwrap();
    assert_eq!(
        t.try_publish_batch(vec![2, 3, 4]),
        Err(PublishError::Full(vec![2, 3, 4]))
    );
    let s = t.stats();
    assert_eq!((s.low, s.high, s.depth, s.evicted), (0, 2, 2, 0));
    let mut late = t.subscribe(StartFrom::Earliest).unwrap();
    assert_eq!(late.try_recv().unwrap().offset, 0, "still retained for replay");
}

/// A capacity-2 topic that holds publishers back, with a 100 ms TTL, two
/// messages published at time 0 and a reader that never reads.
fn full_ttl_topic() -> (Topic<u8>, memq_core::Cursor<u8>) {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(2))
            .overflow(Overflow::Block)
            .ttl(Some(Duration::from_millis(100))),
    )
    .unwrap();
    let idle = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(0).unwrap();
    t.try_publish(1).unwrap();
    (t, idle)
}

/// Bug C: a publish waiting for room on a TTL topic completes when the
/// oldest messages expire, with nobody else acting (`try_publish` is
/// `Full` exactly where `publish` waits, and it stops being `Full` then).
#[tokio::test(start_paused = true)]
async fn a_blocked_publish_completes_when_the_oldest_expire() {
    let (t, _idle) = full_ttl_topic();
    assert_eq!(t.try_publish(2), Err(PublishError::Full(2)));
    let t2 = t.clone();
    let waiting = tokio::spawn(async move { t2.publish(2).await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "full until the oldest expire");
    let started = tokio::time::Instant::now();
    let offset = memq_testkit::within(Duration::from_secs(5), waiting)
        .await
        .expect("woken when the oldest expired")
        .unwrap()
        .unwrap();
    assert_eq!(offset, 2);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "no later than the expiry"
    );
    assert_eq!(t.stats().expired, 2);
}

/// Bug C, the other way in: a sweep by someone else's publish frees the
/// room; the waiting publish is woken by it as well.
#[tokio::test(start_paused = true)]
async fn a_sweep_by_another_publish_wakes_a_blocked_publish() {
    let (t, mut idle) = full_ttl_topic();
    let t2 = t.clone();
    let waiting = tokio::spawn(async move { t2.publish(2).await });
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_millis(300)).await;
    // The expired 0 and 1 go; 3 takes one slot and 2 the other.
    let third = t.try_publish(3);
    let offset = memq_testkit::within(Duration::from_secs(5), waiting)
        .await
        .expect("woken")
        .unwrap()
        .unwrap();
    let mut offsets = vec![offset];
    offsets.extend(third);
    offsets.sort_unstable();
    assert_eq!(offsets, vec![2, 3]);
    // The reader skips the expired ones silently.
    assert_eq!(idle.try_recv().unwrap().offset, 2);
    assert_eq!(idle.try_recv().unwrap().offset, 3);
}

/// A waiting publisher is woken as soon as the room it waits for exists:
/// a reader that takes a few messages (its read-ahead, 128) on a topic
/// of 1,000 and then stops must not leave it waiting while `try_publish`
/// would succeed.
#[tokio::test]
async fn a_blocked_publish_is_woken_as_soon_as_room_exists() {
    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(1_000))
            .overflow(Overflow::Block),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    for i in 0..1_000u64 {
        t.try_publish(i).unwrap();
    }
    let t2 = t.clone();
    let waiting = tokio::spawn(async move { t2.publish(1_000).await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    assert_eq!(c.try_recv().unwrap().offset, 0);
    let offset = memq_testkit::within(Duration::from_secs(5), waiting)
        .await
        .expect("woken once there was room")
        .unwrap()
        .unwrap();
    assert_eq!(offset, 1_000);
}

/// Outside a Tokio runtime a publish waiting on a full TTL topic sets its
/// timer on memq-core's timer thread (it does not panic for want of a
/// runtime); the reader moving on releases it before the expiry.
#[test]
#[cfg_attr(
    miri,
    ignore = "leaves the timer thread running when the test ends (it stops after a second idle)"
)]
fn a_blocked_ttl_publish_outside_a_runtime_needs_no_runtime() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let t = Topic::new(
        TopicConfig::default()
            .max_messages(Some(1))
            .overflow(Overflow::Block)
            .ttl(Some(Duration::from_secs(3600))),
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(0u8).unwrap();
    let mut publish = Box::pin(t.publish(1));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(publish.as_mut().poll(&mut cx).is_pending());
    assert_eq!(c.try_recv().unwrap().offset, 0);
    assert_eq!(publish.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
}

/// `near_eviction` says a moving reader is about to lose messages, and
/// stops saying it for a reader that has not moved for all the room it had
/// (publishers do not slow down for a reader that does not read); it
/// counts again once that reader moves. Blocking topics never say it.
#[test]
fn near_eviction_is_for_readers_that_keep_moving() {
    let topic = topic(100);
    let mut reader = topic.subscribe(StartFrom::Latest).unwrap();
    for i in 0..50 {
        topic.try_publish(i).unwrap();
    }
    assert!(!topic.near_eviction(), "50 behind of 100: half left");
    topic.try_publish(50).unwrap();
    assert!(topic.near_eviction(), "51 behind");
    // It does not read: 50 more publishes (the room it had), then it no
    // longer counts.
    for i in 51..100 {
        topic.try_publish(i).unwrap();
        assert!(topic.near_eviction(), "{i}: still within the room it had");
    }
    topic.try_publish(100).unwrap();
    assert!(!topic.near_eviction(), "stuck for half the capacity");
    for i in 101..150 {
        topic.try_publish(i).unwrap();
    }
    assert!(!topic.near_eviction(), "still stuck");
    // It reads again (its read-ahead takes all that is retained), then
    // falls behind again: it counts again.
    assert!(matches!(
        reader.try_recv(),
        Err(memq_core::TryRecvError::Lagged(_))
    ));
    while reader.try_recv().is_ok() {}
    topic.try_publish(150).unwrap();
    assert!(!topic.near_eviction(), "caught up");
    for i in 151..201 {
        topic.try_publish(i).unwrap();
    }
    assert!(topic.near_eviction(), "moving, and 51 behind again");

    let blocking = Topic::<u64>::new(
        TopicConfig::default()
            .max_messages(Some(4))
            .overflow(memq_core::Overflow::Block),
    )
    .unwrap();
    let _slow = blocking.subscribe(StartFrom::Latest).unwrap();
    for i in 0..4 {
        blocking.try_publish(i).unwrap();
    }
    assert!(
        !blocking.near_eviction(),
        "a blocking topic makes publishers wait instead"
    );
}

/// A batch that reads ahead (`poll_recv_batch_ahead`, as consumer groups
/// use it) takes the whole batch whatever it weighs, and reads past it
/// only while everything fetched weighs less than 1 MiB, as a single
/// receive's read-ahead: heavy messages are not kept alive in a cursor's
/// buffer after the topic evicted them.
#[test]
fn a_batch_reads_ahead_within_the_read_ahead_byte_bound() {
    use std::task::{Context, Waker};
    const KIB: usize = 1024;
    // Values declare their weight: (id, bytes).
    let t = Topic::with_weigher(TopicConfig::default(), |v: &(u64, usize)| v.1).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut read = |weight: usize| {
        let mut c = t.subscribe(StartFrom::Latest).unwrap();
        t.try_publish_batch((0..8).map(|i| (i, weight)).collect())
            .unwrap();
        let (mut waiter, mut out) = (memq_core::Waiter::new(), Vec::new());
        let polled = c.poll_recv_batch_ahead(&mut cx, &mut waiter, 2, 8, &mut out);
        assert!(matches!(polled, std::task::Poll::Ready(Ok(2))), "{polled:?}");
        (out.len(), c.read_ahead())
    };
    assert_eq!(read(KIB), (2, 6), "small: everything read ahead");
    assert_eq!(read(400 * KIB), (2, 1), "800 KiB in the batch: one more");
    assert_eq!(read(600 * KIB), (2, 0), "the batch alone is past 1 MiB: none");
    assert_eq!(
        read(4096 * KIB),
        (2, 0),
        "a batch is taken whole whatever it weighs"
    );
}

/// A weigher may say anything: byte counts saturate instead of wrapping
/// (a debug build panicked on the second publish of a message weighing
/// `usize::MAX`; a release build would have evicted by a wrapped count).
#[test]
fn byte_counts_saturate_whatever_the_weigher_says() {
    // No byte budget: everything is kept, the count stops at the top.
    let t = Topic::with_weigher(TopicConfig::default(), |_: &u8| usize::MAX).unwrap();
    for i in 0..3 {
        t.try_publish(i).unwrap();
    }
    assert_eq!((t.stats().depth, t.stats().bytes), (3, usize::MAX));
    // A budget of nearly all of it: a second message of more than half
    // evicts the first, as a count that did not wrap says.
    let half = usize::MAX / 2 + 1;
    let t = Topic::with_weigher(
        TopicConfig::default().max_bytes(Some(usize::MAX - 1)),
        |_: &u8| usize::MAX / 2 + 1,
    )
    .unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(1).unwrap();
    t.try_publish(2).unwrap();
    assert_eq!(
        (t.stats().depth, t.stats().evicted, t.stats().bytes),
        (1, 1, half)
    );
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_eq!(c.try_recv().unwrap().value, 2);
    // A batch whose weight saturates is one message too many for it.
    assert!(matches!(
        t.try_publish_batch(vec![3, 4]),
        Err(memq_core::PublishError::TooLarge(_))
    ));
}

/// What draining `c` now yields: one per message delivered, `n` per
/// `Lagged(n)`.
fn owed(c: &mut memq_core::Cursor<u8>) -> u64 {
    let mut owed = 0;
    loop {
        match c.try_recv() {
            Ok(_) => owed += 1,
            Err(TryRecvError::Lagged(n)) => owed += n,
            Err(_) => return owed,
        }
    }
}

/// `lag()` is what the cursor will still deliver or report lost: never
/// messages that expired (before a publish or a stats call swept them,
/// or while read ahead into the cursor), always those evicted (also when
/// the gap was found and not reported yet). It counted expired messages
/// until a receive looked.
#[tokio::test(start_paused = true)]
async fn lag_is_what_draining_yields_across_expiry_and_eviction() {
    let ttl = |cap: usize| {
        Topic::new(
            TopicConfig::default()
                .max_messages(Some(cap))
                .ttl(Some(Duration::from_secs(10))),
        )
        .unwrap()
    };
    // Expired, nothing swept them yet.
    let t = ttl(100);
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish_batch(vec![1u8, 2, 3]).unwrap();
    assert_eq!(c.lag(), 3);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(c.lag(), 0);
    assert_eq!(t.stats().expired, 3, "lag swept what it left out");
    assert_eq!(owed(&mut c), 0);

    // Some expired, some not; some of each read ahead into the cursor.
    let t = ttl(100);
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish_batch(vec![1u8, 2, 3]).unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    t.try_publish_batch(vec![4u8, 5]).unwrap();
    assert_eq!(c.try_recv().unwrap().value, 1); // the rest read ahead
    assert_eq!(c.lag(), 4);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(c.lag(), 2, "2 and 3 expired in the cursor's read-ahead");
    t.try_publish(6).unwrap();
    assert_eq!(c.lag(), 3);
    assert_eq!(owed(&mut c), 3);

    // Evicted, then expired, then evicted: only the evicted are owed.
    let t = ttl(3);
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    for v in 0u8..5 {
        t.try_publish(v).unwrap(); // evicts 0, 1
    }
    tokio::time::advance(Duration::from_secs(20)).await; // 2..5 expire
    for v in 5u8..9 {
        t.try_publish(v).unwrap(); // sweeps 2..5, evicts 5
    }
    assert_eq!(c.lag(), 3 + 3);
    assert_eq!(owed(&mut c), 6);

    // A gap found by a batch and not reported yet is still owed.
    let t = ttl(4);
    let mut c = t.subscribe(StartFrom::Latest).unwrap();
    t.try_publish_batch(vec![0u8, 1]).unwrap();
    assert_eq!(c.try_recv().unwrap().offset, 0);
    for v in 2u8..9 {
        t.try_publish(v).unwrap(); // window [5, 9)
    }
    let mut out = Vec::new();
    assert_eq!(c.try_recv_batch(10, &mut out).unwrap(), 1); // 1, then the gap of 2..5
    assert_eq!(c.lag(), 3 + 4);
    assert_eq!(owed(&mut c), 7);
}
