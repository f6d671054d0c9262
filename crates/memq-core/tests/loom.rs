//! Loom models of the topic log, run with
//! `RUSTFLAGS="--cfg memq_loom" cargo test -p memq-core --test loom --release`
//! (or `cargo xtask loom`). Without that cfg this file compiles to nothing.

#![cfg(memq_loom)]

use loom::thread;
use memq_core::{StartFrom, Topic, TopicConfig};

/// A publish racing a receive that may already be parked: the receive
/// always completes with the message (no lost wake-up).
#[test]
fn publish_races_a_waiting_receive() {
    loom::model(|| {
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
    loom::model(|| {
        let topic = Topic::<u8>::new(TopicConfig::default().max_messages(Some(1))).unwrap();
        let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
        let h = thread::spawn(move || drop(topic));
        let got = loom::future::block_on(cursor.recv());
        assert_eq!(got.unwrap_err(), memq_core::RecvError::Closed);
        h.join().unwrap();
    });
}
