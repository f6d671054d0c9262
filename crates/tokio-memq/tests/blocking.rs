//! Blocking handles from threads that are not async: `blocking_publish*`,
//! `blocking_recv*`, `Subscriber::iter`, `blocking_subscriber`,
//! `blocking_join`; with no runtime anywhere and with one elsewhere in the
//! process; the same backpressure, lag and close semantics as the async
//! forms; a loud failure when called from async code; and the async
//! timeouts outside a runtime.

use memq_testkit::within;
use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use tokio_memq::{ConsumptionMode, MessageQueue, PublishError, RecvError, TopicOptions};

/// Every test finishes well within this, or fails.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a plain thread and fails the test if it does not finish
/// within [`LIMIT`] (a hang fails, it does not stall the run).
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT)
        .expect("finished in time (or panicked: see above)")
}

fn backpressured(max: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(max),
        lru_enabled: false,
        ..TopicOptions::default()
    }
}

#[test]
fn plain_threads_with_no_runtime_move_everything_in_order_through_backpressure() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("jobs", ConsumptionMode::Latest).unwrap();
        // Ten messages of room: the publisher waits for the reader.
        let _ = block_on(mq.create_topic("jobs", backpressured(10)));
        let publisher = mq.publisher("jobs");
        let producer = thread::spawn(move || {
            for i in 0..1_000u32 {
                assert_eq!(publisher.blocking_publish(i).unwrap(), u64::from(i));
            }
            let range = publisher.blocking_publish_batch(vec![1_000u32, 1_001]).unwrap();
            assert_eq!(range, 1_000..1_002);
            publisher
                .blocking_publish_bytes(vec![9u8], tokio_memq::SerializationFormat::Raw)
                .unwrap();
        });
        let mut got = Vec::new();
        while got.len() < 1_002 {
            let msg = sub.blocking_recv().unwrap();
            assert_eq!(msg.offset(), got.len() as u64);
            got.push(msg.deserialize::<u32>().unwrap());
        }
        assert_eq!(sub.blocking_recv().unwrap().payload_bytes(), [9]);
        producer.join().unwrap();
        assert_eq!(got, (0..1_002).collect::<Vec<_>>());
    });
}

#[test]
fn a_runtime_elsewhere_in_the_process_and_a_plain_thread_talk_both_ways() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mq = MessageQueue::new();
    let (requests, replies) = rt.block_on(async {
        (
            mq.subscriber("requests").await.unwrap(),
            mq.subscriber("replies").await.unwrap(),
        )
    });
    // A "UI" thread: sends requests, reads replies, no runtime.
    let ui = {
        let mq = mq.clone();
        thread::spawn(move || {
            let publisher = mq.publisher("requests");
            for i in 0..100u32 {
                publisher.blocking_publish(i).unwrap();
            }
            (0..100)
                .map(|_| replies.blocking_recv().unwrap().deserialize::<u32>().unwrap())
                .collect::<Vec<_>>()
        })
    };
    // An async worker answers each request.
    let worker = rt.spawn({
        let mq = mq.clone();
        async move {
            let publisher = mq.publisher("replies");
            for _ in 0..100 {
                let n: u32 = requests.recv_typed().await.unwrap();
                publisher.publish(n * 2).await.unwrap();
            }
        }
    });
    let answers = bounded(move || ui.join().unwrap());
    assert_eq!(answers, (0..100).map(|n| n * 2).collect::<Vec<_>>());
    rt.block_on(async { within(LIMIT, worker).await.unwrap().unwrap() });
}

#[test]
fn lag_then_the_rest_then_closed_as_the_async_forms() {
    bounded(|| {
        let mq = MessageQueue::new();
        let small = TopicOptions {
            max_messages: Some(4),
            ..TopicOptions::default()
        };
        block_on(mq.create_topic("t", small)).unwrap();
        let sub = mq.blocking_subscriber("t", ConsumptionMode::Earliest).unwrap();
        let publisher = mq.publisher("t");
        for i in 0..10u32 {
            publisher.blocking_publish(i).unwrap();
        }
        assert_eq!(sub.blocking_recv().unwrap_err(), RecvError::Lagged(6));
        let rest: Vec<u32> = sub
            .blocking_recv_batch(10)
            .unwrap()
            .iter()
            .map(|m| m.deserialize().unwrap())
            .collect();
        assert_eq!(rest, [6, 7, 8, 9]);
        // The iterator: a lag item, the rest, then the end when closed.
        for i in 10..20u32 {
            publisher.blocking_publish(i).unwrap();
        }
        mq.close();
        let items: Vec<_> = sub.iter().collect();
        assert_eq!(items[0].as_ref().unwrap_err(), &RecvError::Lagged(6));
        let values: Vec<u32> = items[1..]
            .iter()
            .map(|m| m.as_ref().unwrap().deserialize().unwrap())
            .collect();
        assert_eq!(values, [16, 17, 18, 19]);
        assert_eq!(sub.blocking_recv().unwrap_err(), RecvError::Closed);
    });
}

#[test]
fn closing_or_deleting_wakes_blocked_threads() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("full", backpressured(1))).unwrap();
        let _reader = mq.blocking_subscriber("full", ConsumptionMode::Earliest).unwrap();
        let publisher = mq.publisher("full");
        publisher.blocking_publish(0u8).unwrap();
        let blocked_publish = thread::spawn(move || publisher.blocking_publish(1u8));
        let sub = mq.blocking_subscriber("idle", ConsumptionMode::Latest).unwrap();
        let blocked_recv = thread::spawn(move || sub.blocking_recv());
        thread::sleep(Duration::from_millis(50)); // both are waiting
        assert!(block_on(mq.delete_topic("full")));
        assert_eq!(blocked_publish.join().unwrap(), Err(PublishError::Closed(1)));
        mq.close();
        assert_eq!(blocked_recv.join().unwrap().unwrap_err(), RecvError::Closed);
    });
}

#[test]
fn blocking_recv_timeout_waits_that_long_and_wakes_early_for_a_message() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("t", ConsumptionMode::Latest).unwrap();
        let started = Instant::now();
        assert!(sub
            .blocking_recv_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
        let publisher = mq.publisher("t");
        let late = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            publisher.blocking_publish("late").unwrap();
        });
        let msg = sub
            .blocking_recv_timeout(Duration::from_secs(20))
            .unwrap()
            .unwrap();
        assert_eq!(msg.deserialize::<String>().unwrap(), "late");
        late.join().unwrap();
        // A timeout too long to add to now waits as `blocking_recv`.
        mq.publisher("t").blocking_publish("now").unwrap();
        assert!(sub.blocking_recv_timeout(Duration::MAX).unwrap().is_some());
        // A receive that timed out lost nothing: the next one gets it.
        assert!(sub.blocking_recv_timeout(Duration::ZERO).unwrap().is_none());
        mq.publisher("t").blocking_publish(1u8).unwrap();
        assert_eq!(sub.blocking_recv().unwrap().offset(), 2);
    });
}

#[tokio::test]
async fn blocking_from_async_code_fails_loudly_and_spawn_blocking_works() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("t").await.unwrap();
    let publisher = mq.publisher("t");
    let recv = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.blocking_recv()));
    let message = panic_text(recv.unwrap_err());
    assert!(message.contains("Cannot block the current thread"), "{message}");
    let publish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| publisher.blocking_publish(1u8)));
    assert!(panic_text(publish.unwrap_err()).contains("Cannot block the current thread"));
    // Nothing was published or consumed by the refused calls.
    assert_eq!(mq.get_topic_stats("t").await.unwrap().published, 0);
    // `spawn_blocking` threads may block.
    let publisher2 = publisher.clone();
    let offset = tokio::task::spawn_blocking(move || publisher2.blocking_publish(7u8).unwrap())
        .await
        .unwrap();
    assert_eq!(offset, 0);
    let sub = Arc::new(sub);
    let s = sub.clone();
    let value = tokio::time::timeout(
        LIMIT,
        tokio::task::spawn_blocking(move || s.blocking_recv().unwrap().deserialize::<u8>().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(value, 7);
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Two members of a group of topic "jobs" with manual acknowledgement and
/// `ack_timeout`, and one message, which the first (returned first, to
/// keep it alive and holding) received and holds: (holder, other).
fn one_held(mq: &MessageQueue, ack_timeout: Duration) -> (tokio_memq::Subscriber, tokio_memq::Subscriber) {
    let join = || {
        mq.group("jobs", "workers")
            .manual_ack()
            .ack_timeout(ack_timeout)
            .mode(ConsumptionMode::Earliest)
            .blocking_join()
            .unwrap()
    };
    let (holder, other) = (join(), join());
    mq.publisher("jobs").blocking_publish("only job").unwrap();
    let held = holder.blocking_recv().unwrap();
    assert_eq!(held.deliveries, 1);
    (holder, other)
}

#[test]
fn a_manual_group_member_outside_a_runtime_gets_an_idle_members_messages() {
    bounded(|| {
        let mq = MessageQueue::new();
        let (_idle, busy) = one_held(&mq, Duration::from_millis(50));
        // `idle` never acks: after its ack timeout the job goes to `busy`,
        // blocked with no runtime (memq-core's timer thread wakes it).
        let again = busy
            .blocking_recv_timeout(Duration::from_secs(20))
            .unwrap()
            .expect("redelivered");
        assert_eq!((again.offset(), again.deliveries), (0, 2));
        busy.ack(&again).unwrap();
        assert_eq!(
            block_on(mq.get_group_stats("jobs", "workers")).unwrap().pending,
            0
        );
    });
}

#[test]
fn async_timeouts_work_outside_a_runtime() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("t", ConsumptionMode::Latest).unwrap();
        // A plain executor, no Tokio runtime: these used to panic.
        let started = Instant::now();
        assert!(block_on(sub.recv_timeout(Duration::from_millis(30)))
            .unwrap()
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
        block_on(mq.create_topic("full", backpressured(1))).unwrap();
        let _reader = mq.blocking_subscriber("full", ConsumptionMode::Earliest).unwrap();
        let publisher = mq.publisher("full");
        assert_eq!(
            block_on(publisher.publish_timeout(1u8, Duration::from_millis(20))),
            Ok(0)
        );
        assert_eq!(
            block_on(publisher.publish_timeout(2u8, Duration::from_millis(20))),
            Err(PublishError::Timeout(2))
        );
        mq.publisher("t").blocking_publish("x").unwrap();
        assert!(block_on(sub.recv_timeout(Duration::from_secs(20)))
            .unwrap()
            .is_some());
    });
}

/// Outside a runtime a full TTL topic's waiting publish is released when
/// the oldest message expires (memq-core's timer thread): before, nothing
/// woke it, so `publish` hung until another call swept the topic and
/// `publish_timeout` returned only at its own deadline.
#[test]
fn a_full_ttl_topic_releases_a_waiting_publish_at_the_expiry_outside_a_runtime() {
    bounded(|| {
        let options = TopicOptions {
            message_ttl: Some(Duration::from_millis(100)),
            ..backpressured(1)
        };
        let mq = MessageQueue::new();
        // Never reads: only the expiry makes room.
        let _idle = block_on(mq.subscriber_with_options("t", options)).unwrap();
        let publisher = mq.publisher("t");
        let started = Instant::now();
        block_on(publisher.publish(1u8)).unwrap();
        assert_eq!(
            block_on(publisher.publish_timeout(2u8, Duration::from_secs(20))),
            Ok(1)
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(10),
            "released at the expiry, not the deadline: {took:?}"
        );
        // Plain `publish`: nothing but the expiry wakes it.
        assert_eq!(block_on(publisher.publish(3u8)), Ok(2));
    });
}

/// An async receive of a manual group member, polled outside a runtime,
/// is woken when an idle member's messages become claimable (before, it
/// had no timer: only a blocking receive, which polls every few
/// milliseconds, got them).
#[test]
fn an_async_group_receive_outside_a_runtime_gets_an_idle_members_messages() {
    bounded(|| {
        let mq = MessageQueue::new();
        let (_idle, busy) = one_held(&mq, Duration::from_millis(50));
        let again = block_on(busy.recv()).unwrap();
        assert_eq!((again.offset(), again.deliveries), (0, 2));
    });
}

/// A blocking call on a `spawn_blocking` thread waits on time with the
/// timer thread, not its runtime's timers: those panicked ("context is
/// being shutdown") inside the call when the runtime shut down while it
/// waited, for a group member waiting for an idle member's messages and a
/// publish waiting for an expiry.
#[test]
fn blocking_waits_on_spawn_blocking_threads_outlive_their_runtime() {
    bounded(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mq = MessageQueue::new();
        let (_holder, waiter) = one_held(&mq, Duration::from_secs(60));
        let options = TopicOptions {
            message_ttl: Some(Duration::from_millis(300)),
            ..backpressured(1)
        };
        block_on(mq.create_topic("t", options)).unwrap();
        let _reader = mq.blocking_subscriber("t", ConsumptionMode::Earliest).unwrap();
        let publisher = mq.publisher("t");
        publisher.blocking_publish(0u8).unwrap();

        let (started_tx, started_rx) = mpsc::channel();
        let (member_tx, member_rx) = mpsc::channel();
        let started = started_tx.clone();
        rt.spawn_blocking(move || {
            let _ = started.send(());
            let _ = member_tx.send(waiter.blocking_recv().map(|m| m.offset()));
        });
        let (publish_tx, publish_rx) = mpsc::channel();
        rt.spawn_blocking(move || {
            let _ = started_tx.send(());
            let _ = publish_tx.send(publisher.blocking_publish(1u8));
        });
        // Both run (a blocking task not started yet when the runtime shuts
        // down is never run), and then wait.
        for _ in 0..2 {
            started_rx.recv_timeout(LIMIT).unwrap();
        }
        thread::sleep(Duration::from_millis(50));
        rt.shutdown_timeout(Duration::from_millis(10));
        // Offset 0 expires at 300 ms: room for the publish.
        assert_eq!(publish_rx.recv_timeout(LIMIT), Ok(Ok(1)));
        mq.close();
        assert_eq!(member_rx.recv_timeout(LIMIT), Ok(Err(RecvError::Closed)));
    });
}

/// A thread in the context of a current-thread runtime that nobody runs
/// (`rt.enter()`, no `block_on`): a blocking receive waited on that
/// runtime's timer, which never fires, for an idle member's messages
/// (until its own timeout, or for ever).
#[test]
fn a_blocking_receive_in_an_undriven_runtime_context_still_takes_over() {
    bounded(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mq = MessageQueue::new();
        let (_holder, waiter) = one_held(&mq, Duration::from_millis(50));
        let _context = rt.enter();
        let got = waiter.blocking_recv().unwrap();
        assert_eq!((got.offset(), got.deliveries), (0, 2));
    });
}

/// Outside a runtime, a member held at `max_pending` by a dead letter the
/// sink refused offers it again on a timer (before, only inside a
/// runtime: an async receive under another executor never completed).
#[test]
fn refused_dead_letters_are_offered_again_outside_a_runtime() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("dlq", backpressured(1))).unwrap();
        let dead = mq.blocking_subscriber("dlq", ConsumptionMode::Earliest).unwrap();
        let member = mq
            .group("jobs", "g")
            .manual_ack()
            .max_deliveries(1)
            .max_pending(1)
            .dead_letter_topic("dlq")
            .mode(ConsumptionMode::Earliest)
            .blocking_join()
            .unwrap();
        mq.publisher("jobs")
            .blocking_publish_batch(vec![0u32, 1, 2])
            .unwrap();
        for _ in 0..2 {
            let m = block_on(member.recv()).unwrap();
            // 0 goes to the dead-letter topic (now full); 1 is refused there.
            member.nack(&m).unwrap();
        }
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(block_on(member.recv()).map(|m| m.offset()));
        });
        thread::sleep(Duration::from_millis(50));
        // Room in the dead-letter topic: 1 goes there, 2 comes to the member.
        assert_eq!(dead.blocking_recv().unwrap().dead_letter().unwrap().offset, 0);
        assert_eq!(rx.recv_timeout(LIMIT), Ok(Ok(2)));
    });
}

/// A minimal executor (no Tokio runtime): polls on this thread, parks
/// between wake-ups.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}
