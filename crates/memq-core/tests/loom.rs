//! Loom models of the topic log, run with
//! `RUSTFLAGS="--cfg memq_loom" cargo test -p memq-core --test loom --release`
//! (or `cargo xtask loom`). Without that cfg this file compiles to nothing.

#![cfg(memq_loom)]

use loom::thread;
use memq_core::{StartFrom, Topic, TopicConfig};
use memq_testkit::loom_model as model;

/// A publish racing a receive that may already be parked: the receive
/// always completes with the message (no lost wake-up).
#[test]
fn publish_races_a_waiting_receive() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let publisher = topic.clone();
        let h = thread::spawn(move || {
            publisher.try_publish(7u8).unwrap();
        });
        let got = loom::future::block_on(cursor.recv()).unwrap();
        assert_eq!((got.offset, got.value), (0, 7));
        h.join().unwrap();
    });
}

/// Closing races a parked receive: it is woken and sees `Closed`.
#[test]
fn close_wakes_a_waiting_receive() {
    model(|| {
        let topic = Topic::<u8>::new(TopicConfig::default().max_messages(Some(1))).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let h = thread::spawn(move || drop(topic));
        let got = loom::future::block_on(cursor.recv());
        assert_eq!(got.unwrap_err(), memq_core::RecvError::Closed);
        h.join().unwrap();
    });
}

/// A subscription racing a publish: the cursor's start position decides
/// whether it sees the message, and what it sees agrees with it.
#[test]
fn publish_races_a_subscription_start() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let publisher = topic.clone();
        let h = thread::spawn(move || publisher.try_publish(1u8).unwrap());
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let start = cursor.position();
        h.join().unwrap();
        match cursor.try_recv() {
            Ok(d) => assert_eq!((start, d.offset), (0, 0)),
            Err(memq_core::TryRecvError::Empty) => assert_eq!(start, 1),
            Err(e) => panic!("{e:?}"),
        }
    });
}

/// A receive polled once (parked) and dropped while a publish races it:
/// the next receive still gets the message, and nothing stays registered.
#[test]
fn a_dropped_receive_racing_a_publish_loses_nothing() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let publisher = topic.clone();
        let h = thread::spawn(move || publisher.try_publish(5u8).unwrap());
        // Poll once, then drop: if it completed, the message was delivered
        // by that poll; if it was pending, the next receive must get it.
        let first = {
            let waker = futures_noop_waker();
            let mut cx = Context::from_waker(&waker);
            match pin!(cursor.recv()).as_mut().poll(&mut cx) {
                std::task::Poll::Ready(r) => Some(r.unwrap().value),
                std::task::Poll::Pending => None,
            }
        };
        let got = match first {
            Some(v) => v,
            None => loom::future::block_on(cursor.recv()).unwrap().value,
        };
        assert_eq!(got, 5);
        h.join().unwrap();
        assert_eq!(
            cursor.try_recv().unwrap_err(),
            memq_core::TryRecvError::Empty,
            "delivered once"
        );
    });
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

/// Eviction racing a reader: the reader gets the whole message or an
/// exact lag, never a torn or duplicated one, and every payload is
/// released (reference counts balance).
#[test]
fn eviction_racing_a_reader_is_whole_or_exact_lag() {
    use std::sync::Arc as StdArc;

    model(|| {
        let first = StdArc::new(0u8);
        let second = StdArc::new(1u8);
        let topic = Topic::new(TopicConfig::default().max_messages(Some(1))).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
        topic.try_publish(first.clone()).unwrap();
        let publisher = topic.clone();
        let s2 = second.clone();
        let h = thread::spawn(move || publisher.try_publish(s2).unwrap());
        let mut seen = Vec::new();
        let mut lagged = 0;
        loop {
            match cursor.try_recv() {
                Ok(d) => seen.push(*d.value),
                Err(memq_core::TryRecvError::Lagged(n)) => lagged += n,
                Err(memq_core::TryRecvError::Empty) => {
                    if seen.contains(&1) {
                        break;
                    }
                    loom::thread::yield_now();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        h.join().unwrap();
        assert!(
            seen == vec![0, 1] || (seen == vec![1] && lagged == 1),
            "{seen:?} lagged {lagged}"
        );
        drop((cursor, topic));
        assert_eq!(
            (StdArc::strong_count(&first), StdArc::strong_count(&second)),
            (1, 1)
        );
    });
}

/// Readers dropped while a publisher waits for room (Block overflow): the
/// publisher is released, never left waiting.
#[test]
fn dropping_the_readers_releases_a_blocked_publisher() {
    model(|| {
        let topic = Topic::new(
            TopicConfig::default()
                .max_messages(Some(1))
                .overflow(memq_core::Overflow::Block),
        )
        .unwrap();
        let a = topic.subscribe(StartFrom::Earliest).unwrap();
        let b = topic.subscribe(StartFrom::Earliest).unwrap();
        topic.try_publish(0u8).unwrap();
        let h1 = thread::spawn(move || drop(a));
        let h2 = thread::spawn(move || drop(b));
        let offset = loom::future::block_on(topic.publish(1)).unwrap();
        assert_eq!(offset, 1);
        h1.join().unwrap();
        h2.join().unwrap();
    });
}

/// Bug C: a publisher parked on a full TTL topic whose oldest messages
/// expire, racing another publish that sweeps them: the sweep makes room
/// and wakes the parked publisher (under loom there is no timer, so only
/// that wake-up can release it).
#[test]
fn a_sweep_wakes_a_publisher_waiting_for_room() {
    model(|| {
        memq_core::loom_clock::set(0);
        let topic = Topic::new(
            TopicConfig::default()
                .max_messages(Some(2))
                .overflow(memq_core::Overflow::Block)
                .ttl(Some(std::time::Duration::from_nanos(100))),
        )
        .unwrap();
        let _idle = topic.subscribe(StartFrom::Earliest).unwrap();
        topic.try_publish(0u8).unwrap();
        topic.try_publish(1u8).unwrap();
        let other = topic.clone();
        let h = thread::spawn(move || {
            memq_core::loom_clock::set(100);
            other.try_publish(3u8)
        });
        let parked = loom::future::block_on(topic.publish(2)).unwrap();
        let swept = h.join().unwrap().unwrap();
        let mut offsets = [parked, swept];
        offsets.sort_unstable();
        assert_eq!(offsets, [2, 3]);
    });
}
