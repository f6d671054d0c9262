//! Lag, TTL, backpressure, replay, commits, deletion and stats through the facade.

use memq_testkit::within;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_memq::{
    CommitError, ConsumptionMode, MessageQueue, PublishError, RecvError, TopicError, TopicOptions,
    TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(30);

fn capped(n: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(n),
        ..Default::default()
    }
}

#[tokio::test]
async fn lagging_subscriber_gets_exact_count_then_continues() {
    let mq = MessageQueue::new();
    let slow = mq.subscriber_with_options("t", capped(10)).await.unwrap();
    let p = mq.publisher("t");
    for i in 0..25u32 {
        p.publish(i).await.unwrap();
    }
    assert_eq!(slow.recv().await.unwrap_err(), RecvError::Lagged(15));
    let rest = slow.recv_batch(100).await.unwrap();
    assert_eq!(
        rest.iter().map(|m| m.offset()).collect::<Vec<_>>(),
        (15..25).collect::<Vec<_>>()
    );
    let stats = mq.get_topic_stats("t").await.unwrap();
    assert_eq!(
        (stats.message_count, stats.evicted, stats.dropped_messages),
        (10, 15, 15)
    );
}

#[tokio::test(start_paused = true)]
async fn ttl_with_paused_time() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("ttl", options).await.unwrap();
    let p = mq.publisher("ttl");
    p.publish("old-1").await.unwrap();
    p.publish("old-2").await.unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    p.publish("fresh").await.unwrap();
    tokio::time::advance(Duration::from_secs(31)).await;
    let m = sub.recv().await.unwrap();
    assert_eq!(
        (m.offset(), m.deserialize::<String>().unwrap()),
        (2, "fresh".to_string())
    );
    let stats = mq.get_topic_stats("ttl").await.unwrap();
    assert_eq!((stats.expired, stats.message_count), (2, 1));
    // Nothing left: recv_timeout gives up (paused time auto-advances).
    assert!(sub.recv_timeout(Duration::from_secs(5)).await.unwrap().is_none());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(mq.get_topic_stats("ttl").await.unwrap().expired, 3);
}

#[tokio::test]
async fn backpressure_waits_and_try_publish_hands_back_full() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(3),
        lru_enabled: false,
        ..Default::default()
    };
    let sub = mq.subscriber_with_options("bp", options).await.unwrap();
    let p = mq.publisher("bp");
    for i in 0..3u32 {
        p.try_publish(i).unwrap();
    }
    match p.try_publish(3u32) {
        Err(PublishError::Full(v)) => assert_eq!(v, 3),
        other => panic!("{other:?}"),
    }
    match p.publish_timeout(3u32, Duration::from_millis(20)).await {
        Err(PublishError::Timeout(v)) => assert_eq!(v, 3),
        other => panic!("{other:?}"),
    }
    let blocked = {
        let p = p.clone();
        tokio::spawn(async move { p.publish(3u32).await })
    };
    tokio::task::yield_now().await;
    assert!(
        !blocked.is_finished(),
        "publish waits while the subscriber holds the oldest"
    );
    assert_eq!(sub.recv().await.unwrap().deserialize::<u32>().unwrap(), 0);
    let offset = within(LIMIT, blocked).await.unwrap().unwrap().unwrap();
    assert_eq!(offset, 3);
    let got: Vec<u32> = sub.recv_batch_typed(10).await.unwrap();
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(mq.get_topic_stats("bp").await.unwrap().dropped_messages, 1);
}

#[tokio::test]
async fn backpressure_never_loses_a_message() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(8),
        lru_enabled: false,
        ..Default::default()
    };
    let a = mq.subscriber_with_options("bp2", options.clone()).await.unwrap();
    let b = mq.subscriber_with_options("bp2", options).await.unwrap();
    let p = mq.publisher("bp2");
    let producer = tokio::spawn(async move {
        for i in 0..5_000u32 {
            p.publish(i).await.unwrap();
        }
    });
    let read = |sub: tokio_memq::Subscriber| async move {
        for i in 0..5_000u32 {
            assert_eq!(sub.recv_typed::<u32>().await.unwrap(), i);
        }
    };
    within(LIMIT, async {
        let (x, y, z) = tokio::join!(tokio::spawn(read(a)), tokio::spawn(read(b)), producer);
        x.unwrap();
        y.unwrap();
        z.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn replay_modes_and_range_errors() {
    let mq = MessageQueue::new();
    mq.create_topic("r", capped(5)).await.unwrap();
    let p = mq.publisher("r");
    for i in 0..8u32 {
        p.publish(i).await.unwrap();
    }
    let open = |mode| mq.subscriber_with_options_and_mode("r", capped(5), mode);
    let first = |s: tokio_memq::Subscriber| async move { s.try_recv().await.map(|m| m.offset()) };
    assert_eq!(first(open(ConsumptionMode::Earliest).await.unwrap()).await, Ok(3));
    assert_eq!(
        first(open(ConsumptionMode::Latest).await.unwrap()).await,
        Err(TryRecvError::Empty)
    );
    assert_eq!(
        first(open(ConsumptionMode::LastOffset).await.unwrap()).await,
        Err(TryRecvError::Empty)
    );
    assert_eq!(
        first(open(ConsumptionMode::Offset(5)).await.unwrap()).await,
        Ok(5)
    );
    for bad in [0, 2, 9] {
        match open(ConsumptionMode::Offset(bad)).await {
            Err(TopicError::OutOfRange(r)) => assert_eq!((r.requested, r.low, r.high), (bad, 3, 8)),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let s = open(ConsumptionMode::Earliest).await.unwrap();
    s.recv().await.unwrap();
    s.seek(6).await.unwrap();
    assert_eq!(s.current_offset().await, Some(6));
    assert_eq!(s.recv().await.unwrap().offset(), 6);
    assert!(s.seek(1).await.is_err());
    assert!(s.seek(9).await.is_err());
    s.seek(3).await.unwrap();
    assert_eq!(s.recv().await.unwrap().offset(), 3, "replay");
}

/// A subscribe refused for its start offset creates no topic (it did:
/// the topic was made first, then the start checked), plain or
/// partitioned; a valid start still creates one, and an existing topic is
/// left as it was.
#[tokio::test]
async fn a_refused_subscribe_creates_no_topic() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let wildcard = mq.subscribe_pattern("fresh.*").unwrap();
        let partitioned = TopicOptions {
            partitions: Some(3),
            ..Default::default()
        };
        for (name, options) in [
            ("fresh.plain", TopicOptions::default()),
            ("fresh.parted", partitioned),
        ] {
            let refused = mq
                .subscriber_with_options_and_mode(name, options, ConsumptionMode::Offset(4))
                .await;
            match refused {
                Err(TopicError::OutOfRange(r)) => assert_eq!((r.requested, r.low, r.high), (4, 0, 0)),
                other => panic!("{name}: {other:?}"),
            }
            assert!(!mq.list_topics().await.contains(&name.to_string()), "{name}");
        }
        assert!(wildcard.topics().is_empty(), "no topic was announced");
        // The offset every new topic starts at is a valid start.
        let sub = mq
            .subscriber_with_options_and_mode(
                "fresh.plain",
                TopicOptions::default(),
                ConsumptionMode::Offset(0),
            )
            .await
            .unwrap();
        assert_eq!(mq.list_topics().await, ["fresh.plain"]);
        mq.publisher("fresh.plain").publish(7u8).await.unwrap();
        assert_eq!(sub.recv().await.unwrap().offset(), 0);
        // On an existing topic a refused start changes nothing either.
        assert!(mq
            .subscriber_with_options_and_mode(
                "fresh.plain",
                TopicOptions::default(),
                ConsumptionMode::Offset(9)
            )
            .await
            .is_err());
        assert_eq!(mq.list_topics().await, ["fresh.plain"]);
        assert_eq!(mq.snapshot()[0].stats.published, 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn commit_records_processed_offset_without_moving() {
    let mq = MessageQueue::new();
    let s = mq
        .subscriber_with_options_and_mode("c", TopicOptions::default(), ConsumptionMode::Earliest)
        .await
        .unwrap();
    let p = mq.publisher("c");
    p.publish_batch(vec![1u8, 2, 3]).await.unwrap();
    let m = s.recv().await.unwrap();
    s.commit(m.offset()).await.unwrap();
    assert_eq!(s.committed_offset(), Some(0));
    assert_eq!(s.recv().await.unwrap().offset(), 1, "commit is not seek");
    assert_eq!(
        s.commit(3).await.unwrap_err(),
        CommitError::NotPublished { offset: 3, high: 3 }
    );
}

#[tokio::test]
async fn options_conflicts_and_invalid_options_are_errors() {
    let mq = MessageQueue::new();
    mq.create_topic("o", capped(10)).await.unwrap();
    mq.create_topic("o", capped(10)).await.unwrap();
    assert!(matches!(
        mq.create_topic("o", capped(11)).await,
        Err(TopicError::OptionsMismatch { topic }) if topic == "o"
    ));
    assert!(matches!(
        mq.subscriber_with_options("o", capped(11)).await,
        Err(TopicError::OptionsMismatch { .. })
    ));
    assert!(mq.subscriber("o").await.is_ok(), "no options: use the topic's");
    assert!(matches!(
        mq.create_topic("zero", capped(0)).await,
        Err(TopicError::InvalidOptions(tokio_memq::ConfigError::ZeroCapacity))
    ));
    assert_eq!(mq.list_topics().await, vec!["o".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_wakes_every_waiter_with_closed() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        ..Default::default()
    };
    let holder = mq.subscriber_with_options("d", options.clone()).await.unwrap();
    let p = mq.publisher("d");
    p.publish(0u8).await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..5 {
        let s = mq.subscriber("d").await.unwrap();
        waiters.push(tokio::spawn(async move { s.recv().await.map(|m| m.offset()) }));
    }
    let blocked = {
        let p = p.clone();
        tokio::spawn(async move { p.publish(1u8).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(mq.delete_topic("d").await);
    assert!(!mq.delete_topic("d").await);
    within(LIMIT, async {
        for w in waiters {
            assert_eq!(w.await.unwrap(), Err(RecvError::Closed));
        }
        assert!(matches!(blocked.await.unwrap(), Err(PublishError::Closed(1))));
    })
    .await
    .unwrap();
    // What was retained is still delivered to the subscriber that had it.
    assert_eq!(holder.recv().await.unwrap().offset(), 0);
    assert_eq!(holder.recv().await.unwrap_err(), RecvError::Closed);
    assert!(matches!(p.publish(2u8).await, Err(PublishError::Closed(2))));
    assert!(mq.list_topics().await.is_empty());
}

/// A topic closes when nobody can publish to it any more, as a channel
/// does: not while a `MessageQueue` clone or one of its publishers lives,
/// and then its waiting subscribers are woken with `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_closes_when_nobody_can_publish_to_it() {
    let mq = MessageQueue::new();
    let s = Arc::new(mq.subscriber("q").await.unwrap());
    let other = mq.subscriber("unpublished").await.unwrap();
    let p = mq.publisher("q");
    let clone = mq.clone();
    let s2 = s.clone();
    let waiter = tokio::spawn(async move { s2.recv().await.map(|m| m.deserialize::<u8>().unwrap()) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(mq);
    drop(clone);
    // "unpublished" has no publisher left: it closes with the last queue
    // handle; "q" still has `p`.
    let r = within(LIMIT, other.recv()).await.unwrap();
    assert_eq!(r.unwrap_err(), RecvError::Closed);
    assert!(
        !waiter.is_finished() && !s.is_closed(),
        "a publisher still holds the topic open"
    );
    p.publish(1u8).await.unwrap();
    let r = within(LIMIT, waiter).await.unwrap().unwrap();
    assert_eq!(r.unwrap(), 1);
    let s2 = s.clone();
    let waiter = tokio::spawn(async move { s2.recv().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let clone_of_p = p.clone();
    drop(p);
    assert!(!s.is_closed(), "a clone of the publisher still holds it");
    drop(clone_of_p);
    let r = within(LIMIT, waiter).await.unwrap().unwrap();
    assert_eq!(r.unwrap_err(), RecvError::Closed);
    assert!(s.is_closed());
}

/// `MessageQueue::close` shuts everything down at once: waiting
/// subscribers and publishers are woken with `Closed`, publishing is
/// refused with the value handed back, retained messages are still
/// received, and no topic can be created any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_queue_wakes_everyone_with_closed() {
    let mq = MessageQueue::new();
    let blocking = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        ..Default::default()
    };
    let full = mq.subscriber_with_options("full", blocking).await.unwrap();
    let p_full = mq.publisher("full");
    p_full.publish(0u8).await.unwrap();
    let parked_publish = tokio::spawn(async move { p_full.publish(1u8).await });
    let s = mq.subscriber("q").await.unwrap();
    let parked_recv = tokio::spawn(async move { s.recv().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    mq.close();
    assert!(mq.is_closed());
    let r = within(LIMIT, parked_publish).await.unwrap().unwrap();
    assert!(matches!(r, Err(PublishError::Closed(1))), "{r:?}");
    let r = within(LIMIT, parked_recv).await.unwrap().unwrap();
    assert_eq!(r.unwrap_err(), RecvError::Closed);
    assert_eq!(
        full.recv().await.unwrap().deserialize::<u8>().unwrap(),
        0,
        "retained"
    );
    assert_eq!(full.recv().await.unwrap_err(), RecvError::Closed);
    let fresh = mq.publisher("new");
    assert!(fresh.is_closed());
    assert!(matches!(fresh.publish(2u8).await, Err(PublishError::Closed(2))));
    assert!(mq.subscriber("new").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_polled_under_load_do_not_deadlock() {
    let mq = MessageQueue::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let s = mq.subscriber_with_options("s", capped(1000)).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while n < 30_000 {
                match s.recv_batch(64).await {
                    Ok(b) => n += b.len() as u64,
                    Err(RecvError::Lagged(k)) => n += k,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for _ in 0..3 {
        let p = mq.publisher("s");
        tasks.push(tokio::spawn(async move {
            for i in 0..10_000u32 {
                p.publish(i).await.unwrap();
            }
        }));
    }
    let poller = {
        let mq = mq.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let s = mq.get_topic_stats("s").await.unwrap();
                assert!(s.message_count <= 1000);
                let _ = mq.list_topics().await;
                polls += 1;
                tokio::task::yield_now().await;
            }
            polls
        })
    };
    within(LIMIT, async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("no deadlock");
    stop.store(true, Ordering::Relaxed);
    assert!(poller.await.unwrap() > 0);
    assert_eq!(mq.get_topic_stats("s").await.unwrap().published, 30_000);
}

/// The registry checks a topic's retention against the topic's own
/// config (it keeps no copy of the options the topic was made with):
/// each retention option counts, for plain and partitioned topics, and a
/// topic made without options (by a publisher) has the defaults.
#[tokio::test]
async fn every_retention_option_is_checked_against_the_existing_topic() {
    let mismatch = |r: Result<(), TopicError>| matches!(r, Err(TopicError::OptionsMismatch { .. }));
    let mq = MessageQueue::new();
    let base = TopicOptions {
        max_messages: Some(10),
        max_bytes: Some(1 << 20),
        message_ttl: Some(Duration::from_secs(60)),
        lru_enabled: true,
        ..Default::default()
    };
    let changed = [
        TopicOptions {
            max_messages: None,
            ..base.clone()
        },
        TopicOptions {
            max_bytes: Some(2 << 20),
            ..base.clone()
        },
        TopicOptions {
            max_bytes: None,
            ..base.clone()
        },
        TopicOptions {
            message_ttl: Some(Duration::from_secs(61)),
            ..base.clone()
        },
        TopicOptions {
            message_ttl: None,
            ..base.clone()
        },
        TopicOptions {
            lru_enabled: false,
            ..base.clone()
        },
    ];
    mq.create_topic("r", base.clone()).await.unwrap();
    mq.create_topic("r", base.clone()).await.unwrap();
    for options in &changed {
        assert!(
            mismatch(mq.create_topic("r", options.clone()).await),
            "{options:?}"
        );
        assert!(
            matches!(
                mq.subscriber_with_options("r", options.clone()).await,
                Err(TopicError::OptionsMismatch { .. })
            ),
            "{options:?}"
        );
    }
    assert!(mq.subscriber_with_options("r", base.clone()).await.is_ok());

    mq.create_partitioned_topic("pr", base.clone(), 3).await.unwrap();
    mq.create_partitioned_topic("pr", base.clone(), 3).await.unwrap();
    for options in &changed {
        assert!(
            mismatch(mq.create_partitioned_topic("pr", options.clone(), 3).await),
            "{options:?}"
        );
    }

    mq.publisher("by-publisher").publish(1u8).await.unwrap();
    mq.create_topic("by-publisher", TopicOptions::default())
        .await
        .unwrap();
    assert!(mismatch(mq.create_topic("by-publisher", capped(5)).await));
}

/// On a topic whose publishers wait for readers (`lru_enabled: false`), a
/// seek to the oldest message while a publisher presses either lands
/// there (the next receive is a message, never `Lagged`) or fails with
/// `OutOfRange` when that message went first. Before, the window was
/// checked, then the cursor moved without checking again: a message
/// evicted in between made the next receive `Lagged` on a topic that
/// loses nothing. Repeated for two seconds: a race, not a certainty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_racing_a_waiting_publisher_never_lands_on_a_gap() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mq = MessageQueue::new();
    let two = TopicOptions {
        max_messages: Some(2),
        lru_enabled: false,
        ..TopicOptions::default()
    };
    let sub = mq
        .subscriber_with_options_and_mode("sk", two, tokio_memq::ConsumptionMode::Earliest)
        .await
        .unwrap();
    let publisher = mq.publisher("sk");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let pressing = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match publisher.try_publish(i) {
                    Ok(_) => i += 1,
                    Err(tokio_memq::PublishError::Full(_)) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
    });
    let (mut landed, mut refused) = (0, 0);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        // Read everything, so that the publisher can go on.
        while sub.try_recv_now().is_ok() {}
        let low = mq.get_topic_stats("sk").await.unwrap().low_offset;
        match sub.seek(low).await {
            Ok(()) => {
                landed += 1;
                match sub.try_recv_now() {
                    Ok(m) => assert_eq!(m.offset(), low),
                    Err(tokio_memq::TryRecvError::Empty) => {}
                    Err(e) => panic!("after seek({low}): {e:?}"),
                }
            }
            Err(e) => {
                refused += 1;
                assert!(e.low > low, "{e:?}");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    pressing.await.unwrap();
    assert!(landed > 0, "landed {landed}, refused {refused}");
}

/// With `lru_enabled: false`, what a subscriber holds read ahead counts
/// as read (as `TopicOptions::lru_enabled` says): after one receive from
/// a full topic of capacity 3 the subscriber holds the other two, so
/// three more fit; then the topic is full again. Nothing is lost: every
/// message arrives, in order.
#[tokio::test]
async fn read_ahead_counts_as_read_for_waiting_publishers_and_nothing_is_lost() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let three = TopicOptions {
            max_messages: Some(3),
            lru_enabled: false,
            ..TopicOptions::default()
        };
        let sub = mq
            .subscriber_with_options_and_mode("bp", three, tokio_memq::ConsumptionMode::Earliest)
            .await
            .unwrap();
        let publisher = mq.publisher("bp");
        for i in 0..3u32 {
            publisher.try_publish(i).unwrap();
        }
        assert!(matches!(
            publisher.try_publish(3u32),
            Err(tokio_memq::PublishError::Full(3))
        ));
        assert_eq!(sub.recv().await.unwrap().offset(), 0); // holds 1 and 2 read ahead
        for i in 3..6u32 {
            publisher.try_publish(i).unwrap();
        }
        assert!(matches!(
            publisher.try_publish(6u32),
            Err(tokio_memq::PublishError::Full(6))
        ));
        let rest: Vec<u32> = sub
            .recv_batch(10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.deserialize().unwrap())
            .collect();
        assert_eq!(rest, [1, 2, 3, 4, 5]);
    })
    .await
    .expect("finished");
}
