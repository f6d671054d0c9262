//! Edges of the contract found by adversarial tests: user code (a waker's
//! drop) never runs under the topic's lock, commits refuse offsets never
//! published, a closed topic answers every publish with `Closed`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use memq_core::{CommitError, Cursor, Overflow, PublishError, StartFrom, Topic, TopicConfig, Waiter};

/// A waker that owns a cursor of the topic it waits on: dropping the
/// waker drops the cursor, which takes the topic's lock.
struct Holder(#[allow(dead_code)] Mutex<Option<Cursor<u32>>>);

impl Wake for Holder {
    fn wake(self: Arc<Self>) {}
}

fn holding_a_cursor_of(topic: &Topic<u32>) -> Waker {
    let cursor = topic.subscribe(StartFrom::Latest).unwrap();
    Waker::from(Arc::new(Holder(Mutex::new(Some(cursor)))))
}

/// Runs `f` on its own thread; a deadlock fails after 10 s instead of
/// hanging the suite.
fn finishes(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("deadlocked: a waker was dropped under the topic's lock");
}

/// The topic's copy of a parked receive's waker is the last one: replaced
/// by a new poll, and released by dropping the waiter, it was dropped
/// under the lock, and its cursor's drop waited for that lock for ever.
#[test]
fn a_receive_s_waker_is_dropped_after_the_lock_is_released() {
    finishes(|| {
        let topic = Topic::<u32>::new(TopicConfig::default()).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let mut waiter = Waiter::new();
        let first = holding_a_cursor_of(&topic);
        assert!(cursor
            .poll_recv(&mut Context::from_waker(&first), &mut waiter)
            .is_pending());
        drop(first);
        assert!(cursor
            .poll_recv(&mut Context::from_waker(Waker::noop()), &mut waiter)
            .is_pending());
        topic.try_publish(7).unwrap();
        assert_eq!(cursor.try_recv().unwrap().value, 7);
    });
    finishes(|| {
        let topic = Topic::<u32>::new(TopicConfig::default()).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let mut waiter = Waiter::new();
        let waker = holding_a_cursor_of(&topic);
        assert!(cursor
            .poll_recv(&mut Context::from_waker(&waker), &mut waiter)
            .is_pending());
        drop(waker);
        drop(waiter);
        assert_eq!(topic.stats().subscribers, 1, "the waker's cursor is gone");
    });
}

/// The same for a publisher parked on a full blocking topic.
#[test]
fn a_parked_publisher_s_waker_is_dropped_after_the_lock_is_released() {
    finishes(|| {
        let topic = Topic::<u32>::new(
            TopicConfig::default()
                .max_messages(Some(1))
                .overflow(Overflow::Block),
        )
        .unwrap();
        let _reader = topic.subscribe(StartFrom::Earliest).unwrap();
        topic.try_publish(0).unwrap();
        let first = holding_a_cursor_of(&topic);
        let mut publish = topic.publish(1);
        assert!(Pin::new(&mut publish)
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        drop(first);
        assert!(Pin::new(&mut publish)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        drop(publish);
    });
}

/// Offsets below a topic's first offset were never published: a commit
/// of one was taken (and a `Committed` start began there).
#[test]
fn a_commit_below_the_first_offset_is_not_published() {
    let topic: Topic<u8> = Topic::new(TopicConfig::default().first_offset(100)).unwrap();
    let mut cursor = topic.subscribe_named("x", StartFrom::Earliest).unwrap();
    assert_eq!(
        cursor.commit(5),
        Err(CommitError::NotPublished { offset: 5, high: 100 })
    );
    topic.try_publish(1).unwrap();
    assert_eq!(
        cursor.commit(99),
        Err(CommitError::NotPublished {
            offset: 99,
            high: 101
        })
    );
    assert_eq!(cursor.commit(100), Ok(()));
    assert_eq!(topic.committed("x"), Some(100));
}

/// A closed topic answers `Closed` before it looks at the batch's size.
#[test]
fn a_closed_topic_refuses_a_batch_too_large_as_closed() {
    let topic: Topic<u8> = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    assert!(matches!(
        topic.try_publish_batch(vec![1, 2, 3]),
        Err(PublishError::TooLarge(_))
    ));
    topic.close();
    assert!(matches!(
        topic.try_publish_batch(vec![1, 2, 3]),
        Err(PublishError::Closed(_))
    ));
    assert!(matches!(topic.try_publish(1), Err(PublishError::Closed(1))));
}
