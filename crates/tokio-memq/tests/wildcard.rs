//! Wildcard subscriptions (`MessageQueue::subscribe_pattern`): topics that
//! match before and after subscribing, per-topic order under concurrent
//! publishers, lag named by topic, deleted and re-created topics, close,
//! partitioned topics, cancel safety, invalid patterns.

use memq_testkit::within;
use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::timeout;
use tokio_memq::{MessageQueue, PatternRecvError, TopicError, TopicOptions};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_before_and_after_subscribing_keep_their_order() {
    let mq = MessageQueue::new();
    mq.publisher("orders.old").publish(0u64).await.unwrap(); // before: not seen
    let sub = mq.subscribe_pattern("orders.*").unwrap();
    const N: u64 = 2_000;
    let mut tasks = Vec::new();
    for name in ["orders.old", "orders.eu", "orders.us", "orders.apac"] {
        let publisher = mq.publisher(name);
        tasks.push(tokio::spawn(async move {
            for i in 0..N {
                publisher.publish(i).await.unwrap();
            }
        }));
    }
    // Noise that must not arrive.
    mq.publisher("orders.eu.vip").publish(9u64).await.unwrap();
    mq.publisher("refunds.eu").publish(9u64).await.unwrap();
    let mut seen: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for _ in 0..4 * N {
        let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        seen.entry(msg.topic().to_string())
            .or_default()
            .push((msg.offset(), msg.deserialize().unwrap()));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["orders.apac", "orders.eu", "orders.old", "orders.us"]
    );
    for (topic, got) in &seen {
        // The existing topic is read from its next message (offset 1).
        let first = u64::from(topic == "orders.old");
        let expected: Vec<(u64, u64)> = (0..N).map(|i| (i + first, i)).collect();
        assert_eq!(got, &expected, "{topic}: every message once, in order");
    }
    assert_eq!(sub.try_recv_now().unwrap_err(), PatternRecvError::Empty);
    assert_eq!(
        sub.topics(),
        ["orders.apac", "orders.eu", "orders.old", "orders.us"]
    );
}

#[tokio::test]
async fn a_waiting_receive_wakes_for_a_topic_created_later() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("jobs.>").unwrap();
    let waiting = tokio::spawn(async move { within(LIMIT, sub.recv()).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    mq.publisher("jobs.resize.large").publish("img").await.unwrap();
    let msg = waiting.await.unwrap().unwrap();
    assert_eq!((msg.topic(), msg.offset()), ("jobs.resize.large", 0));
}

#[tokio::test]
async fn lag_is_named_by_topic_and_the_rest_follows() {
    let mq = MessageQueue::new();
    let small = TopicOptions {
        max_messages: Some(3),
        ..TopicOptions::default()
    };
    let sub = mq.subscribe_pattern("m.*").unwrap();
    mq.create_topic("m.small", small).await.unwrap();
    let publisher = mq.publisher("m.small");
    for i in 0..5u8 {
        publisher.publish(i).await.unwrap();
    }
    mq.publisher("m.big").publish(100u8).await.unwrap();
    assert_eq!(sub.lag(), [("m.big".to_string(), 1), ("m.small".to_string(), 5)]);
    let mut lagged = None;
    let mut small_values = Vec::new();
    let mut big_values = Vec::new();
    for _ in 0..5 {
        match within(LIMIT, sub.recv()).await.unwrap() {
            Ok(m) if m.topic() == "m.small" => small_values.push(m.deserialize::<u8>().unwrap()),
            Ok(m) => big_values.push(m.deserialize::<u8>().unwrap()),
            Err(e) => lagged = Some(e),
        }
    }
    assert_eq!(
        lagged,
        Some(PatternRecvError::Lagged {
            topic: "m.small".into(),
            count: 2
        })
    );
    assert_eq!(small_values, [2, 3, 4]);
    assert_eq!(big_values, [100]);
    assert_eq!(sub.lag(), [("m.big".to_string(), 0), ("m.small".to_string(), 0)]);
}

#[tokio::test]
async fn a_deleted_topic_leaves_after_draining_and_a_new_one_joins() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("t.*").unwrap();
    mq.publisher("t.a").publish(1u8).await.unwrap();
    assert!(mq.delete_topic("t.a").await);
    // What it retained is still delivered, then it is gone.
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!((msg.topic(), msg.deserialize::<u8>().unwrap()), ("t.a", 1));
    assert_eq!(sub.try_recv_now().unwrap_err(), PatternRecvError::Empty);
    assert!(sub.topics().is_empty());
    // Created again: joins, from its first message.
    mq.publisher("t.a").publish(2u8).await.unwrap();
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!((msg.offset(), msg.deserialize::<u8>().unwrap()), (0, 2));
}

#[tokio::test]
async fn close_ends_it_after_what_is_retained() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern(">").unwrap();
    mq.publisher("x").publish(1u8).await.unwrap();
    mq.publisher("y.z").publish(2u8).await.unwrap();
    let waiting = {
        let mq = mq.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                match within(LIMIT, sub.recv()).await.unwrap() {
                    Ok(m) => got.push(m.deserialize::<u8>().unwrap()),
                    Err(e) => return (got, e, mq.subscribe_pattern("any").unwrap_err()),
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    mq.close();
    let (mut got, end, after) = waiting.await.unwrap();
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
    assert_eq!(end, PatternRecvError::Closed);
    assert_eq!(after, TopicError::Closed);
}

#[tokio::test]
async fn partitioned_topics_are_read_in_every_partition() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("clicks.*").unwrap();
    mq.create_partitioned_topic("clicks.web", TopicOptions::default(), 3)
        .await
        .unwrap();
    let publisher = mq.publisher("clicks.web");
    for i in 0..6u8 {
        publisher.publish(i).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..6 {
        let m = within(LIMIT, sub.recv()).await.unwrap().unwrap();
        assert_eq!(m.topic(), "clicks.web");
        got.push((m.partition.unwrap(), m.deserialize::<u8>().unwrap()));
    }
    got.sort_unstable();
    assert_eq!(got, [(0, 0), (0, 3), (1, 1), (1, 4), (2, 2), (2, 5)]);
}

#[tokio::test]
async fn a_dropped_receive_loses_nothing_and_a_dropped_subscriber_leaves() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("c.*").unwrap();
    // Polled once, then dropped while waiting.
    assert!(timeout(Duration::from_millis(10), sub.recv()).await.is_err());
    mq.publisher("c.one").publish(7u8).await.unwrap();
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(msg.deserialize::<u8>().unwrap(), 7);
    assert_eq!(mq.get_topic_stats("c.one").await.unwrap().subscriber_count, 1);
    drop(sub);
    assert_eq!(mq.get_topic_stats("c.one").await.unwrap().subscriber_count, 0);
    // Topics created after it is gone are not held for it.
    mq.publisher("c.two").publish(1u8).await.unwrap();
    assert_eq!(mq.get_topic_stats("c.two").await.unwrap().subscriber_count, 0);
}

#[tokio::test]
async fn invalid_patterns_are_typed_errors() {
    let mq = MessageQueue::new();
    for bad in ["", "a..b", "a.>.b", "orders*", ".a", "a.", "x.y>"] {
        match mq.subscribe_pattern(bad) {
            Err(TopicError::InvalidPattern { pattern, .. }) => assert_eq!(pattern, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

/// Two tasks receiving from one pattern subscriber at once are each woken
/// (each receive keeps its own waiters): for a topic created while both
/// wait, and for messages of a topic both already read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_receives_are_each_woken() {
    let mq = MessageQueue::new();
    let sub = std::sync::Arc::new(mq.subscribe_pattern("c.*").unwrap());
    for round in 0..2 {
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let sub = sub.clone();
                // The timer wins a tie: a receive that was never woken
                // fails here even though a late poll would find a message.
                tokio::spawn(async move {
                    tokio::select! {
                        biased;
                        () = tokio::time::sleep(LIMIT) => panic!("a waiting receive was never woken"),
                        r = sub.recv() => r.unwrap(),
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await; // both are parked
        let publisher = mq.publisher("c.new");
        publisher.publish(round * 10).await.unwrap();
        publisher.publish(round * 10 + 1).await.unwrap();
        let mut got = Vec::new();
        for w in waiting {
            got.push(w.await.unwrap().deserialize::<i32>().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, [round * 10, round * 10 + 1], "round {round}");
    }
}

#[tokio::test]
async fn close_ends_a_receive_waiting_with_no_topic_at_all() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("none.*").unwrap();
    let waiting = tokio::spawn(async move {
        tokio::select! {
            biased;
            () = tokio::time::sleep(LIMIT) => panic!("close did not wake the receive"),
            r = sub.recv() => r,
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    mq.close();
    assert_eq!(waiting.await.unwrap().unwrap_err(), PatternRecvError::Closed);
}

#[tokio::test]
async fn it_ends_when_nothing_can_create_a_topic_any_more() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("q.*").unwrap();
    mq.publisher("q.a").publish(1u8).await.unwrap();
    // A publisher of a topic not created yet can still create one.
    let late = mq.publisher("q.late");
    drop(mq);
    let msg = within(LIMIT, sub.recv()).await.unwrap().unwrap();
    assert_eq!(msg.topic(), "q.a");
    assert!(
        timeout(Duration::from_millis(50), sub.recv()).await.is_err(),
        "q.late may still come"
    );
    let waiting = tokio::spawn(async move {
        tokio::select! {
            biased;
            () = tokio::time::sleep(LIMIT) => panic!("the last publisher's drop did not wake the receive"),
            r = sub.recv() => r,
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(late);
    assert_eq!(waiting.await.unwrap().unwrap_err(), PatternRecvError::Closed);
}

#[tokio::test]
async fn a_try_recv_drain_loop_sees_everything_waiting() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("d.*").unwrap();
    let publisher = mq.publisher("d.one");
    for i in 0..300u32 {
        publisher.publish(i).await.unwrap();
    }
    let mut n = 0;
    while sub.try_recv_now().is_ok() {
        n += 1;
    }
    assert_eq!(n, 300, "not cut short by the cooperative budget");
}

/// A wildcard subscription ends (`Closed`, the end of its stream) only
/// once every matching topic is drained: also for a topic that another
/// thread creates, publishes to and then closes the queue over, racing
/// the receive. Before, the receive could look for new topics just
/// before the topic was announced and find the queue closed just after:
/// the stream ended and the message was never delivered (2 runs in
/// 11,559 lost it). Repeated for a few seconds: a race, not a certainty.
#[test]
fn a_subscription_ends_only_after_a_topic_created_before_the_close_is_drained() {
    use std::sync::mpsc;
    use tokio_stream::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (queues, to_race) = mpsc::channel::<MessageQueue>();
    let racer = std::thread::spawn(move || {
        while let Ok(mq) = to_race.recv() {
            mq.publisher("race.a").blocking_publish(1u8).unwrap();
            mq.close();
        }
    });
    let start = std::time::Instant::now();
    let mut runs = 0;
    while start.elapsed() < Duration::from_secs(3) {
        runs += 1;
        let mq = MessageQueue::new();
        let sub = mq.subscribe_pattern("race.*").unwrap();
        queues.send(mq).unwrap();
        let got = rt.block_on(async {
            timeout(LIMIT, sub.stream().collect::<Vec<_>>())
                .await
                .expect("the stream ends once the queue is closed")
        });
        assert_eq!(got.len(), 1, "run {runs}: the stream ended with {got:?}");
        assert!(got[0].is_ok(), "{got:?}");
    }
    drop(queues);
    racer.join().unwrap();
}

/// A deleted topic leaves the set with the receive that finds it drained:
/// until then `topics` and `lag` list it beside a topic created again
/// under its name, which then delivers on its own. One deleted with
/// nothing to read is never listed.
#[tokio::test]
async fn a_deleted_topic_leaves_the_set_with_the_receive_that_finds_it_drained() {
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let sub = mq.subscribe_pattern("z.*").unwrap();
        mq.create_topic("z.empty", TopicOptions::default()).await.unwrap();
        assert!(mq.delete_topic("z.empty").await);
        mq.publisher("z.a").publish(1u8).await.unwrap();
        assert!(mq.delete_topic("z.a").await);
        mq.create_topic("z.a", TopicOptions::default()).await.unwrap();
        mq.publisher("z.a").publish(2u8).await.unwrap();
        assert_eq!(
            sub.topics(),
            ["z.a", "z.a"],
            "the deleted one, not yet received from"
        );
        assert_eq!(sub.lag(), [("z.a".to_string(), 1), ("z.a".to_string(), 1)]);
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = sub.recv().await.unwrap();
            assert_eq!((m.topic(), m.offset()), ("z.a", 0));
            got.push(m.deserialize::<u8>().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(sub.try_recv_now().is_err());
        assert_eq!(sub.topics(), ["z.a"]);
        assert_eq!(sub.lag(), [("z.a".to_string(), 0)]);
    })
    .await
    .expect("finished");
}

/// Every layout of up to seven topics, any of them deleted (and drained)
/// while the subscriber does not look, the next look starting anywhere:
/// one `try_recv_now` finds the message waiting on a topic still there.
/// (Topics taken out during a pass shifted the others, and a pass could
/// miss one: `Empty` with a message waiting, or a parked receive whose
/// wake-up was spent and never asked for again.)
#[tokio::test]
async fn one_look_finds_a_waiting_message_whichever_topics_left_the_set() {
    within(LIMIT, async {
        for n in 2..=7usize {
            for last in 0..n {
                for deleted in 0u32..(1 << n) {
                    for target in (0..n).filter(|t| deleted & (1 << t) == 0) {
                        let mq = MessageQueue::new();
                        let sub = mq.subscribe_pattern("p.*").unwrap();
                        for i in 0..n {
                            mq.create_topic(format!("p.t{i}"), TopicOptions::default())
                                .await
                                .unwrap();
                        }
                        // The next look starts after `last`.
                        mq.publisher(format!("p.t{last}")).publish(0u32).await.unwrap();
                        assert_eq!(sub.try_recv_now().unwrap().topic(), format!("p.t{last}"));
                        for i in (0..n).filter(|i| deleted & (1 << i) != 0) {
                            assert!(mq.delete_topic(&format!("p.t{i}")).await);
                        }
                        let publisher = mq.publisher(format!("p.t{target}"));
                        let offset = publisher.publish(1u32).await.unwrap();
                        let got = sub.try_recv_now();
                        assert_eq!(
                            got.as_ref().map(|m| (m.topic().to_owned(), m.offset())),
                            Ok((format!("p.t{target}"), offset)),
                            "{n} topics, last read p.t{last}, deleted {deleted:#b}"
                        );
                    }
                }
            }
        }
    })
    .await
    .expect("finished");
}

/// The same with a stream parked on the topics: the publish that wakes it
/// is found in its next pass, and later ones wake it too.
#[tokio::test]
async fn a_parked_stream_is_not_lost_to_topics_leaving_the_set() {
    use tokio_stream::StreamExt;
    let mq = MessageQueue::new();
    let sub = std::sync::Arc::new(mq.subscribe_pattern("s.*").unwrap());
    for i in 0..6 {
        mq.create_topic(format!("s.t{i}"), TopicOptions::default())
            .await
            .unwrap();
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = {
        let sub = sub.clone();
        tokio::spawn(async move {
            let mut stream = sub.stream();
            while let Some(m) = stream.next().await {
                let m = m.unwrap();
                tx.send((m.topic().to_owned(), m.offset())).unwrap();
            }
        })
    };
    let publisher = mq.publisher("s.t4");
    publisher.publish(0u32).await.unwrap();
    assert_eq!(
        within(LIMIT, rx.recv()).await.unwrap(),
        Some(("s.t4".to_owned(), 0))
    );
    // Until the stream is parked again (it runs on this thread).
    tokio::task::yield_now().await;
    // With no await in between: the stream's next pass sees all three.
    assert!(futures_util::FutureExt::now_or_never(mq.delete_topic("s.t0")).unwrap());
    assert!(futures_util::FutureExt::now_or_never(mq.delete_topic("s.t3")).unwrap());
    publisher.try_publish(1u32).unwrap();
    let got = timeout(LIMIT, rx.recv()).await;
    assert_eq!(
        got.expect("the stream yields s.t4's message"),
        Some(("s.t4".to_owned(), 1))
    );
    publisher.publish(2u32).await.unwrap();
    assert_eq!(
        within(LIMIT, rx.recv()).await.unwrap(),
        Some(("s.t4".to_owned(), 2))
    );
    reader.abort();
}

/// A partitioned topic reports its losses to a wildcard subscriber once
/// per partition that evicted, each with its own count (as
/// `PatternSubscriber::recv` says), then the messages retained.
#[tokio::test]
async fn a_partitioned_topic_reports_a_lag_per_partition_that_evicted() {
    let mq = MessageQueue::new();
    let sub = mq.subscribe_pattern("lo.*").unwrap();
    let one = TopicOptions {
        max_messages: Some(1),
        ..TopicOptions::default()
    };
    mq.create_partitioned_topic("lo.p", one, 4).await.unwrap();
    for i in 0..12u8 {
        mq.publish_to_partitioned(tokio_memq::TopicMessage::new("lo.p", i).unwrap())
            .await
            .unwrap();
    }
    let (mut lags, mut partitions) = (Vec::new(), Vec::new());
    loop {
        match sub.try_recv_now() {
            Ok(m) => partitions.push(m.partition.unwrap()),
            Err(PatternRecvError::Lagged { topic, count }) => {
                assert_eq!(&*topic, "lo.p");
                lags.push(count);
            }
            Err(PatternRecvError::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(lags, [2, 2, 2, 2], "three published to each partition, one kept");
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1, 2, 3]);
}
