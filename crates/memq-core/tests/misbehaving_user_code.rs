//! Payloads and wakers that panic: the panic reaches the caller, the topic
//! stays usable, other subscribers keep working, nothing is lost.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use memq_core::{StartFrom, Topic, TopicConfig, TryRecvError, Waiter};

/// Panics in `clone` (once) or in `drop` when asked to.
#[derive(Debug)]
struct Evil {
    id: u64,
    clone_panics: Arc<AtomicBool>,
    drop_panics: bool,
}

impl Evil {
    fn new(id: u64) -> Self {
        Evil {
            id,
            clone_panics: Arc::new(AtomicBool::new(false)),
            drop_panics: false,
        }
    }
}

impl Clone for Evil {
    fn clone(&self) -> Self {
        if self.clone_panics.swap(false, Ordering::SeqCst) {
            panic!("clone of {} panics", self.id);
        }
        Evil {
            id: self.id,
            clone_panics: self.clone_panics.clone(),
            drop_panics: false,
        }
    }
}

impl Drop for Evil {
    fn drop(&mut self) {
        if self.drop_panics && !std::thread::panicking() {
            panic!("drop of {} panics", self.id);
        }
    }
}

#[test]
fn a_panicking_clone_reaches_the_reader_and_loses_nothing() {
    let t = Topic::new(TopicConfig::default()).unwrap();
    let mut a = t.subscribe(StartFrom::Earliest).unwrap();
    let mut b = t.subscribe(StartFrom::Earliest).unwrap();
    t.try_publish(Evil::new(0)).unwrap();
    let evil = Evil::new(1);
    evil.clone_panics.store(true, Ordering::SeqCst);
    t.try_publish(evil).unwrap();
    t.try_publish(Evil::new(2)).unwrap();

    assert!(
        catch_unwind(AssertUnwindSafe(|| a.try_recv())).is_err(),
        "the panic reaches the caller"
    );
    // The topic is not poisoned; the reader gets everything, in order.
    let ids: Vec<u64> = std::iter::from_fn(|| a.try_recv().ok())
        .map(|d| d.value.id)
        .collect();
    assert_eq!(ids, vec![0, 1, 2]);
    let ids: Vec<u64> = std::iter::from_fn(|| b.try_recv().ok())
        .map(|d| d.value.id)
        .collect();
    assert_eq!(ids, vec![0, 1, 2], "other subscribers unaffected");
    assert_eq!(t.try_publish(Evil::new(3)).unwrap(), 3, "publishers unaffected");
}

#[test]
fn a_panicking_drop_of_an_evicted_payload_happens_after_the_publish() {
    let t = Topic::new(TopicConfig::default().max_messages(Some(1))).unwrap();
    let mut c = t.subscribe(StartFrom::Earliest).unwrap();
    let mut bomb = Evil::new(0);
    bomb.drop_panics = true;
    t.try_publish(bomb).unwrap();
    // Buffered copies are plain clones; only the retained original panics.
    let evicting = catch_unwind(AssertUnwindSafe(|| t.try_publish(Evil::new(1))));
    assert!(evicting.is_err(), "the eviction's drop panicked in the publisher");
    // The publish itself happened before the payload was dropped.
    let s = t.stats();
    assert_eq!((s.high, s.depth, s.evicted), (2, 1, 1));
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_eq!(c.try_recv().unwrap().value.id, 1);
    assert_eq!(t.try_publish(Evil::new(2)).unwrap(), 2);
}

struct Panicky;
impl Wake for Panicky {
    fn wake(self: Arc<Self>) {
        panic!("waker panics");
    }
}

struct Counter(AtomicUsize);
impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_waker_does_not_cost_others_their_wake_up() {
    // Both registration orders, so the panicking waker is woken first in one.
    for bad_first in [false, true] {
        let t = Topic::<u8>::new(TopicConfig::default()).unwrap();
        let mut quiet = t.subscribe(StartFrom::Latest).unwrap();
        let mut loud = t.subscribe(StartFrom::Latest).unwrap();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let good = Waker::from(counter.clone());
        let bad = Waker::from(Arc::new(Panicky));
        let (mut wq, mut wl) = (Waiter::new(), Waiter::new());
        let mut park_good = || {
            assert!(quiet
                .poll_recv(&mut Context::from_waker(&good), &mut wq)
                .is_pending())
        };
        let mut park_bad = || {
            assert!(loud
                .poll_recv(&mut Context::from_waker(&bad), &mut wl)
                .is_pending())
        };
        if bad_first {
            park_good();
            park_bad();
        } else {
            park_bad();
            park_good();
        }
        let published = catch_unwind(AssertUnwindSafe(|| t.try_publish(1)));
        assert!(published.is_err(), "the waker's panic reaches the publisher");
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "the other waiter was still woken"
        );
        assert_eq!(quiet.try_recv().unwrap().value, 1);
        assert_eq!(loud.try_recv().unwrap().value, 1);
        assert_eq!(t.try_publish(2).unwrap(), 1, "the topic is not poisoned");
    }
}

/// Collects a batch and publishes an echo of every message into the topic
/// it reads, and reads the topic's stats, from inside `extend`.
struct Echo {
    topic: Topic<u32>,
    seen: Vec<u32>,
}

impl Extend<memq_core::Delivered<u32>> for Echo {
    fn extend<I: IntoIterator<Item = memq_core::Delivered<u32>>>(&mut self, iter: I) {
        for d in iter {
            self.topic.try_publish(d.value + 100).unwrap();
            let _ = self.topic.stats();
            self.seen.push(d.value);
        }
    }
}

/// A batch collector is the caller's code: it runs after the topic's lock
/// is released, so it may call back into the topic (this deadlocked when
/// batches were handed over under the lock). Covers both the buffered
/// read-ahead and the top-up from the topic.
#[test]
fn a_batch_collector_may_call_back_into_the_topic() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(100))).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
        for i in 0..3 {
            topic.try_publish(i).unwrap();
        }
        // Reads 0 and buffers 1 and 2 (read-ahead).
        assert_eq!(cursor.try_recv().unwrap().value, 0);
        topic.try_publish(3).unwrap();
        let mut echo = Echo {
            topic: topic.clone(),
            seen: Vec::new(),
        };
        // 1 and 2 from the buffer (echoed as 101 and 102 on the way), then
        // a top-up from the topic: 3, 101, 102.
        let n = cursor.try_recv_batch(10, &mut echo).unwrap();
        done.send((n, echo.seen, topic.high())).unwrap();
    });
    let (n, seen, high) = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the batch receive finished (no deadlock)");
    assert_eq!(n, 5);
    assert_eq!(seen, vec![1, 2, 3, 101, 102]);
    assert_eq!(high, 9, "4 published, 5 echoed");
}
