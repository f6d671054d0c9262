//! Owned and typed streams (`into_stream`, `into_typed_stream`) and the
//! publisher's `Sink` (`Publisher::sink`): moved into tasks, lag and
//! decode errors as items that do not end the stream, the end on close,
//! backpressure through `forward`, errors that hand the value back.

use memq_testkit::within;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_memq::{
    ConsumptionMode, MessageQueue, PublishError, RecvError, RecvTypedError, SubscriberStream, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(30);

/// A subscriber from the start of `topic`, made with room for one message
/// and publishers that wait for it (`lru_enabled: false`).
async fn room_for_one(mq: &MessageQueue, topic: &str) -> tokio_memq::Subscriber {
    let one = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        ..TopicOptions::default()
    };
    mq.subscriber_with_options_and_mode(topic, one, ConsumptionMode::Earliest)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_stream_moves_into_a_task_and_reports_lag_then_goes_on() {
    let mq = MessageQueue::new();
    let small = TopicOptions {
        max_messages: Some(3),
        ..TopicOptions::default()
    };
    let stream: SubscriberStream = mq
        .subscriber_with_options_and_mode("t", small, ConsumptionMode::Earliest)
        .await
        .unwrap()
        .into_stream();
    let publisher = mq.publisher("t");
    for i in 0..5u32 {
        publisher.publish(i).await.unwrap();
    }
    assert_eq!(stream.subscriber().lag(), 5, "two of them evicted unread");
    drop(publisher);
    mq.close();
    let items = within(LIMIT, tokio::spawn(stream.collect::<Vec<_>>()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap_err(), &RecvError::Lagged(2));
    let values: Vec<u32> = items[1..]
        .iter()
        .map(|m| m.as_ref().unwrap().deserialize().unwrap())
        .collect();
    assert_eq!(values, [2, 3, 4]);
}

#[tokio::test]
async fn a_typed_stream_yields_decode_errors_and_goes_on() {
    let mq = MessageQueue::new();
    let mut stream = mq.subscriber("n").await.unwrap().into_typed_stream::<u16>();
    let publisher = mq.publisher("n");
    publisher.publish(1u16).await.unwrap();
    publisher.publish(70_000u32).await.unwrap(); // does not fit a u16
    publisher.publish("two").await.unwrap();
    publisher.publish(3u16).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(within(LIMIT, stream.next()).await.unwrap().unwrap());
    }
    assert_eq!(got[0].as_ref().ok(), Some(&1));
    for (i, offset) in [(1, 1), (2, 2)] {
        match &got[i] {
            Err(RecvTypedError::Decode(e)) => assert_eq!(e.offset(), Some(offset)),
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
    assert_eq!(got[3].as_ref().ok(), Some(&3));
    // Nothing more until something is published; then the end on close.
    assert!(timeout(Duration::from_millis(20), stream.next()).await.is_err());
    mq.close();
    assert!(within(LIMIT, stream.next()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_into_a_sink_keeps_order_through_backpressure() {
    let mq = MessageQueue::new();
    let tight = TopicOptions {
        max_messages: Some(2),
        lru_enabled: false,
        ..TopicOptions::default()
    };
    let out = mq
        .subscriber_with_options_and_mode("out", tight, ConsumptionMode::Earliest)
        .await
        .unwrap();
    let source = futures_util::stream::iter((0..500u32).map(Ok));
    let sink = mq.publisher("out").sink::<u32>();
    let forward = tokio::spawn(async move { source.forward(sink).await });
    let mut got = Vec::new();
    while got.len() < 500 {
        got.push(within(LIMIT, out.recv_typed::<u32>()).await.unwrap().unwrap());
    }
    within(LIMIT, forward).await.unwrap().unwrap().unwrap();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    assert_eq!(mq.get_topic_stats("out").await.unwrap().published, 500);
}

#[tokio::test]
async fn a_sink_error_hands_the_value_back_and_the_sink_stays_usable() {
    let mq = MessageQueue::new();
    let sub = room_for_one(&mq, "one").await;
    let mut sink = mq.publisher("one").sink::<String>();
    sink.send("first".to_string()).await.unwrap();
    // The topic is full: the next send waits (the sink is not ready)...
    let mut second = Box::pin(sink.send("second".to_string()));
    assert!(timeout(Duration::from_millis(20), &mut second).await.is_err());
    // ...until the reader makes room.
    assert_eq!(sub.recv_typed::<String>().await.unwrap(), "first");
    within(LIMIT, second).await.unwrap().unwrap();
    assert_eq!(sub.recv_typed::<String>().await.unwrap(), "second");
    // Deleted topic: the value comes back in the error.
    mq.delete_topic("one").await;
    let err = within(LIMIT, sink.send("third".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, PublishError::Closed("third".to_string()));
    let err = within(LIMIT, sink.send("fourth".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.into_inner(), "fourth", "still usable, still honest");
}

#[tokio::test]
async fn a_stream_and_a_sink_relay_one_topic_into_another() {
    let mq = MessageQueue::new();
    let source = mq.subscriber("in").await.unwrap().into_typed_stream::<u32>();
    let out = mq.subscriber("out").await.unwrap();
    let publisher = mq.publisher("in");
    for i in 0..10u32 {
        publisher.publish(i).await.unwrap();
    }
    drop(publisher);
    mq.delete_topic("in").await;
    let doubled = source
        .filter_map(|r| std::future::ready(r.ok()))
        .map(|n| Ok(n * 2));
    within(LIMIT, doubled.forward(mq.publisher("out").sink::<u32>()))
        .await
        .unwrap()
        .unwrap();
    let got = within(LIMIT, out.recv_batch_typed::<u32>(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (0..10).map(|n| n * 2).collect::<Vec<_>>());
}

/// `start_send` twice without `poll_ready` between (a caller breaking the
/// `Sink` contract) loses neither value: both are published, in order.
#[tokio::test]
async fn start_send_without_poll_ready_loses_nothing() {
    use futures_util::Sink;
    use std::pin::Pin;
    let mq = MessageQueue::new();
    let sub = room_for_one(&mq, "tight").await;
    let mut sink = mq.publisher("tight").sink::<u8>();
    Pin::new(&mut sink).start_send(1).unwrap(); // room: published now
    Pin::new(&mut sink).start_send(2).unwrap(); // full: held
    Pin::new(&mut sink).start_send(3).unwrap(); // still held: queued after 2
    let mut got = Vec::new();
    let flush = async {
        futures_util::SinkExt::flush(&mut sink).await.unwrap();
    };
    let read = async {
        while got.len() < 3 {
            got.push(within(LIMIT, sub.recv_typed::<u8>()).await.unwrap().unwrap());
        }
    };
    tokio::join!(flush, read);
    assert_eq!(got, [1, 2, 3]);
}

/// A value queued behind a held one (sent without `poll_ready`) is not
/// lost when the held one fails: each flush hands back the value it could
/// not publish, and the next goes on with the rest. Before, the queued
/// value was dropped with the failed publish.
#[tokio::test]
async fn a_value_queued_behind_a_failed_publish_is_handed_back_too() {
    use futures_util::Sink;
    use std::pin::Pin;
    within(LIMIT, async {
        let mq = MessageQueue::new();
        let sub = room_for_one(&mq, "tight").await;
        let mut sink = mq.publisher("tight").sink::<u8>();
        for v in 1..=4 {
            // 1 is published; 2 is held (full); 3 and 4 queue behind it.
            Pin::new(&mut sink).start_send(v).unwrap();
        }
        // The held publish starts waiting; then the topic goes.
        let waited =
            tokio::time::timeout(Duration::from_millis(20), futures_util::SinkExt::flush(&mut sink)).await;
        assert!(waited.is_err(), "the topic is full");
        assert!(mq.delete_topic("tight").await);
        let mut handed_back = Vec::new();
        for _ in 0..2 {
            let failed = futures_util::SinkExt::flush(&mut sink).await.unwrap_err();
            handed_back.push(failed.into_inner());
        }
        assert_eq!(handed_back, [2, 3], "each value that was not published, in order");
        // 4 is still queued: a value sent now goes after it.
        Pin::new(&mut sink).start_send(5).unwrap();
        let mut rest = Vec::new();
        loop {
            match futures_util::SinkExt::flush(&mut sink).await {
                Ok(()) => break,
                Err(e) => rest.push(e.into_inner()),
            }
        }
        assert_eq!(rest, [4, 5]);
        assert_eq!(sub.recv_typed::<u8>().await.unwrap(), 1);
    })
    .await
    .expect("finished");
}

/// An owned stream of a plain subscriber reads its cursor without the
/// cursor's lock. It must still wake when a message arrives while it
/// waits, follow a seek made through `subscriber()` between items, end
/// when its topic is deleted while it waits, and stay ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_stream_wakes_follows_seeks_and_ends_on_delete() {
    let mq = MessageQueue::new();
    let mut stream = mq
        .subscriber_with_options_and_mode("o", TopicOptions::default(), ConsumptionMode::Earliest)
        .await
        .unwrap()
        .into_stream();
    let publisher = mq.publisher("o");
    for i in 0..3u32 {
        publisher.publish(i).await.unwrap();
    }
    let value = |m: Option<Result<tokio_memq::TopicMessage, RecvError>>| -> (u64, u32) {
        let m = m.expect("an item").expect("a message");
        (m.offset.unwrap(), m.deserialize().unwrap())
    };
    assert_eq!(value(within(LIMIT, stream.next()).await.unwrap()), (0, 0));
    assert_eq!(value(within(LIMIT, stream.next()).await.unwrap()), (1, 1));
    // Back to the start, through the subscriber the stream owns.
    stream.subscriber().seek(0).await.unwrap();
    let again: Vec<(u64, u32)> = vec![
        value(within(LIMIT, stream.next()).await.unwrap()),
        value(within(LIMIT, stream.next()).await.unwrap()),
        value(within(LIMIT, stream.next()).await.unwrap()),
    ];
    assert_eq!(again, [(0, 0), (1, 1), (2, 2)]);
    // Waiting: nothing yet.
    assert!(timeout(Duration::from_millis(20), stream.next()).await.is_err());
    // A publish from another task wakes the waiting stream. (The time
    // limit is on the task's handle: a `timeout` around `next` itself
    // would poll the stream once more when it expires and hide a lost
    // wake-up.)
    let (mut stream, got) = {
        let reader = tokio::spawn(async move {
            let got = stream.next().await;
            (stream, got)
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        publisher.publish(3u32).await.unwrap();
        within(LIMIT, reader).await.unwrap().unwrap()
    };
    assert_eq!(value(got), (3, 3));
    // Deleted while it waits: the stream ends, and stays ended.
    let reader = tokio::spawn(async move {
        let end = stream.next().await;
        let after = stream.next().await;
        (end.is_none(), after.is_none())
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(mq.delete_topic("o").await);
    assert_eq!(within(LIMIT, reader).await.unwrap().unwrap(), (true, true));
}

/// The owned stream of one partition takes the same lock-free path as a
/// plain subscriber's: its messages say which partition they came from,
/// and it reads only that partition, in order.
#[tokio::test]
async fn an_owned_stream_of_one_partition_labels_and_keeps_its_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("p", tokio_memq::PartitionRouting::Fixed(1))
        .await
        .unwrap();
    mq.publisher("p")
        .publish_batch(vec![10u32, 11, 12])
        .await
        .unwrap();
    let mut one = mq
        .subscribe_partition("p", 1, None, ConsumptionMode::Earliest)
        .await
        .unwrap()
        .into_stream();
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = within(LIMIT, one.next()).await.unwrap().unwrap().unwrap();
        got.push((m.partition, m.offset, m.deserialize::<u32>().unwrap()));
    }
    assert_eq!(
        got,
        [
            (Some(1), Some(0), 10),
            (Some(1), Some(1), 11),
            (Some(1), Some(2), 12)
        ]
    );
    let mut zero = mq
        .subscribe_partition("p", 0, None, ConsumptionMode::Earliest)
        .await
        .unwrap()
        .into_stream();
    assert!(
        timeout(Duration::from_millis(20), zero.next()).await.is_err(),
        "partition 0 is empty"
    );
}

/// A sink spends tokio's cooperative budget as `publish` does: a loop of
/// sends on a topic with room lets a task spawned on the same thread run
/// (before, 10,000 sends went by first), and a `forward` from a stream
/// that is always ready no longer keeps a timer on its thread from firing.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_sink_sends_lets_other_tasks_run() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mq = MessageQueue::new();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    let mut sink = mq.publisher("busy").sink::<u32>();
    let mut sends = 0;
    while !ran.load(Ordering::SeqCst) && sends < 10_000 {
        sink.send(sends).await.unwrap();
        sends += 1;
    }
    assert!(sends < 10_000, "10,000 sends in a row; the other task never ran");
}

/// A `forward` from a stream that is always ready into a sink lets a
/// timer on its thread fire (before, a 50 ms timeout around it never did).
/// On a thread of its own: a forward that never yields would hold any
/// timer of this test's runtime too, so the wait for it is a plain one.
#[test]
fn a_forward_into_a_sink_lets_a_timer_fire() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cut = rt.block_on(async {
            let mq = MessageQueue::new();
            let sink = mq.publisher("forwarded").sink::<u32>();
            let endless = futures_util::stream::repeat(1u32).map(Ok).forward(sink);
            timeout(Duration::from_millis(50), endless).await.is_err()
        });
        let _ = tx.send(cut);
    });
    assert_eq!(
        rx.recv_timeout(LIMIT),
        Ok(true),
        "the 50 ms timeout fired (a forward that never yields keeps it from firing)"
    );
}
