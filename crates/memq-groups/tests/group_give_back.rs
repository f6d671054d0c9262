//! `Member::give_back` (automatic groups): what a member received and did
//! not hand on goes to the next member that looks, with the same delivery
//! count, whichever members come and go meanwhile. A seeded run against a
//! record of what the members handled: with one member staying throughout,
//! every published message is handled exactly once, none twice, none lost;
//! and once every member left, the next member joining from the commit
//! reads again what was given back.

use std::collections::BTreeMap;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{Assignment, Group, GroupConfig, Member};
use std::time::Duration;

/// A small xorshift generator: runs repeat from their seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Receives up to `max` with `member`, handles a random prefix (recorded
/// in `handled`, with its delivery count checked) and gives the rest back.
fn receive_some(rng: &mut Rng, member: &Member<u64>, max: usize, handled: &mut BTreeMap<(usize, u64), u32>) {
    let mut got = Vec::new();
    if member.try_recv_batch(max, &mut got).is_err() {
        return;
    }
    let keep = rng.below(got.len() as u64 + 1) as usize;
    let back = got.split_off(keep);
    for c in got {
        assert_eq!(
            c.value,
            c.offset * 10 + c.partition as u64,
            "the message at its offset"
        );
        assert_eq!(c.deliveries, 1, "given back, not delivered again: {c:?}");
        *handled.entry((c.partition, c.offset)).or_default() += 1;
    }
    member.give_back(back);
}

#[test]
fn what_is_given_back_is_handled_once_by_some_member() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let partitions = 1 + rng.below(3) as usize;
        let topics: Vec<Topic<u64>> = (0..partitions)
            .map(|_| Topic::new(TopicConfig::default().max_messages(None)).unwrap())
            .collect();
        let assignment = if rng.below(2) == 0 {
            Assignment::Shared
        } else {
            Assignment::Exclusive
        };
        let group = Group::new("g", topics.clone(), GroupConfig::default().assignment(assignment)).unwrap();
        let stays = group.join(StartFrom::Earliest).unwrap();
        let mut others: Vec<Member<u64>> = Vec::new();
        let mut handled = BTreeMap::new();
        let mut published = vec![0u64; partitions];
        for _ in 0..200 {
            match rng.below(5) {
                0 => {
                    let p = rng.below(partitions as u64) as usize;
                    for _ in 0..1 + rng.below(5) {
                        topics[p].try_publish(published[p] * 10 + p as u64).unwrap();
                        published[p] += 1;
                    }
                }
                1 => others.push(group.join(StartFrom::Earliest).unwrap()),
                2 if !others.is_empty() => {
                    let i = rng.below(others.len() as u64) as usize;
                    drop(others.swap_remove(i));
                }
                _ => {
                    let i = rng.below(others.len() as u64 + 1) as usize;
                    let member = others.get(i).unwrap_or(&stays);
                    let max = 1 + rng.below(6) as usize;
                    receive_some(&mut rng, member, max, &mut handled);
                }
            }
        }
        drop(others);
        // The member that stayed takes the rest, handling everything.
        let mut got = Vec::new();
        while stays.try_recv_batch(64, &mut got).is_ok() {
            for c in got.drain(..) {
                assert_eq!(c.deliveries, 1, "seed {seed}: {c:?}");
                *handled.entry((c.partition, c.offset)).or_default() += 1;
            }
        }
        for (p, &n) in published.iter().enumerate() {
            for o in 0..n {
                assert_eq!(
                    handled.get(&(p, o)),
                    Some(&1),
                    "seed {seed}: partition {p} offset {o}"
                );
            }
        }
        assert_eq!(handled.len() as u64, published.iter().sum::<u64>(), "seed {seed}");
        let stats = group.stats();
        assert_eq!(
            (stats.pending, stats.redeliveries),
            (0, 0),
            "seed {seed}: {stats:?}"
        );
    }
}

#[test]
fn given_back_by_the_last_member_is_read_again_from_the_commit() {
    let topic: Topic<u64> = Topic::new(TopicConfig::default()).unwrap();
    let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
    let member = group.join(StartFrom::Earliest).unwrap();
    for i in 0..6 {
        topic.try_publish(i).unwrap();
    }
    let mut got = Vec::new();
    member.try_recv_batch(6, &mut got).unwrap();
    let back = got.split_off(2); // 0 and 1 handled
    member.give_back(back);
    drop(member);
    assert_eq!(
        group.stats().committed,
        vec![Some(1)],
        "moved back below what was given back"
    );
    let next = group.join(StartFrom::Committed).unwrap();
    let mut again = Vec::new();
    next.try_recv_batch(10, &mut again).unwrap();
    assert_eq!(again.iter().map(|c| c.offset).collect::<Vec<_>>(), [2, 3, 4, 5]);
    drop(next);
}

#[test]
fn manual_groups_take_back_what_their_members_hold_without_it() {
    let topic: Topic<u64> = Topic::new(TopicConfig::default()).unwrap();
    let config = GroupConfig::default().ack(memq_groups::AckMode::Manual);
    let group = Group::new("g", vec![topic.clone()], config).unwrap();
    let (a, b) = (
        group.join(StartFrom::Earliest).unwrap(),
        group.join(StartFrom::Earliest).unwrap(),
    );
    topic.try_publish(7).unwrap();
    let c = a.try_recv().unwrap();
    a.give_back(vec![c]);
    assert_eq!(
        group.stats().pending,
        1,
        "still a's: give_back does nothing in manual mode"
    );
    assert!(b.try_recv().is_err());
    drop(a);
    let again = b.try_recv().unwrap();
    assert_eq!((again.offset, again.deliveries), (0, 2));
}

/// and 2 too (not only 0, which no commit can express).
#[test]
fn given_back_from_offset_zero_by_the_last_member_is_read_again() {
    let topic: Topic<u64> = Topic::new(TopicConfig::default()).unwrap();
    let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
    let member = group.join(StartFrom::Earliest).unwrap();
    for i in 0..3 {
        topic.try_publish(i).unwrap();
    }
    let mut got = Vec::new();
    member.try_recv_batch(3, &mut got).unwrap();
    member.give_back(got);
    drop(member);
    let committed = group.stats().committed;
    let next = group.join(StartFrom::Committed).unwrap();
    let mut again = Vec::new();
    let _ = next.try_recv_batch(10, &mut again);
    let offsets: Vec<u64> = again.iter().map(|c| c.offset).collect();
    assert_eq!(offsets, [0, 1, 2], "commit after leave {committed:?}");
    assert_eq!(committed, vec![None]);
}

/// "the group expires what it takes back").
#[tokio::test(start_paused = true)]
async fn given_back_messages_expire_with_the_topic_ttl() {
    let topic: Topic<u64> = Topic::new(TopicConfig::default().ttl(Some(Duration::from_millis(100)))).unwrap();
    let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
    let (a, b) = (
        group.join(StartFrom::Earliest).unwrap(),
        group.join(StartFrom::Earliest).unwrap(),
    );
    for i in 0..3 {
        topic.try_publish(i).unwrap();
    }
    let mut got = Vec::new();
    a.try_recv_batch(3, &mut got).unwrap();
    let back = got.split_off(1);
    a.give_back(back);
    drop(a);
    tokio::time::advance(Duration::from_millis(500)).await;
    // A fresh publish, to show the topic itself has expired the old ones.
    topic.try_publish(99).unwrap();
    let c = b.try_recv();
    assert!(
        matches!(&c, Ok(c) if c.value == 99),
        "expected only unexpired messages, got {c:?}"
    );
}
