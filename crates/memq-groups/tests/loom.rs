//! Loom models of group races, run with `cargo xtask loom`. Without
//! `--cfg memq_loom` this file compiles to nothing.

#![cfg(memq_loom)]

use loom::thread;
use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Group, GroupConfig};
use memq_testkit::loom_model as model;

/// A group with manual acknowledgement over `topic`.
fn manual_group(topic: &Topic<u8>) -> Group<u8> {
    Group::new(
        "g",
        vec![topic.clone()],
        GroupConfig::default().ack(AckMode::Manual),
    )
    .unwrap()
}

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
        let group = manual_group(&topic);
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

/// A publish racing a member that may already be parked: the topic wakes
/// the group's relay, the relay wakes the member, the member gets it.
#[test]
fn publish_races_a_parked_member() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let h = thread::spawn(move || {
            topic.try_publish(5u8).unwrap();
        });
        let got = loom::future::block_on(a.recv()).unwrap();
        assert_eq!((got.offset, got.value, got.deliveries), (0, 5, 1));
        h.join().unwrap();
    });
}

/// A member leaving with an unacknowledged message while another may be
/// parked: the parked one is woken and gets it again, counted.
#[test]
fn a_leaving_member_wakes_a_parked_one_for_its_pending_message() {
    model(|| {
        let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
        let group = manual_group(&topic);
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        topic.try_publish(7u8).unwrap();
        let held = a.try_recv().unwrap();
        assert_eq!(held.offset, 0);
        let h = thread::spawn(move || drop(a));
        let again = loom::future::block_on(b.recv()).unwrap();
        assert_eq!((again.offset, again.value, again.deliveries), (0, 7, 2));
        h.join().unwrap();
        b.ack(again.partition, again.offset).unwrap();
        assert_eq!(group.stats().committed, vec![Some(0)]);
    });
}
