//! Loom models of group races, run with `cargo xtask loom`. Without
//! `--cfg memq_loom` this file compiles to nothing.

#![cfg(memq_loom)]

use loom::thread;
use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Group, GroupConfig};
use memq_testkit::loom_model as model;

/// Two members racing for one message: exactly one gets it.
#[test]
fn two_members_racing_for_one_message() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(9u8).unwrap();
        let h = thread::spawn(move || a.try_recv().ok().map(|c| c.value));
        let mine = b.try_recv().ok().map(|c| c.value);
        let theirs = h.join().unwrap();
        let got: Vec<u8> = mine.into_iter().chain(theirs).collect();
        assert_eq!(got, vec![9], "exactly one member got it");
    });
}

/// Acks racing on two messages: the committed offset ends at the last
/// one, whatever the order.
#[test]
fn acks_racing_move_the_commit_watermark_once_both_land() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(4))).unwrap();
        let group = Group::new(
            "g",
            vec![topic.clone()],
            GroupConfig::default().ack(AckMode::Manual),
        )
        .unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(0u8).unwrap();
        topic.try_publish(1u8).unwrap();
        let first = a.try_recv().unwrap();
        let second = b.try_recv().unwrap();
        let h = thread::spawn(move || {
            a.ack(first.partition, first.offset).unwrap();
            a
        });
        b.ack(second.partition, second.offset).unwrap();
        let _a = h.join().unwrap();
        assert_eq!(group.stats().committed, vec![Some(1)]);
        assert_eq!(group.stats().pending, 0);
    });
}
