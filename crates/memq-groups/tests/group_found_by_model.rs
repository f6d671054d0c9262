//! Two bugs the group model (`group_model.rs`) found once it generated
//! `Member::nack` and `Member::give_back` (2026-12-02), each as the
//! minimal deterministic case it shrank to, written as the docs say it
//! should go; both failed before their fixes.

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{Group, GroupConfig};

/// `Member::give_back` (automatic mode): "If every member leaves before
/// one takes them, the group's commit moves back to the first of them: a
/// rejoin from the commit reads them again". `Member::seek`: those given
/// back "at or past `offset` go out as new instead, once".
///
/// Offset 2 is given back, then a seek back to 1 takes it out of the
/// redelivery queue to go out as new; the only member leaves before the
/// group reads it. Nobody took it, yet the commit stayed at 2 (where the
/// hand-out put it), so the rejoin from the commit started at 3 and
/// offset 2 was never handled by anyone (`committed [Some(2)]`, the
/// rejoin's receive `Empty`). (Model input: auto mode, one partition;
/// `Join(Earliest)`, three publishes, `TryRecvBatch(3)`, `GiveBack` of the
/// last, `Seek(0, 1)`, `Leave`; the drain found offset 2 lost.)
///
/// Fixed: the seek moves the automatic commit back below what it takes
/// out of the redelivery queue (`Member::seek`'s docs say so).
#[test]
fn given_back_then_a_seek_back_is_lost_when_the_last_member_leaves() {
    let topic: Topic<u64> = Topic::new(TopicConfig::default()).unwrap();
    let group = Group::new("g", vec![topic.clone()], GroupConfig::default()).unwrap();
    let member = group.join(StartFrom::Earliest).unwrap();
    for i in 0..3 {
        topic.try_publish(i).unwrap();
    }
    let mut got = Vec::new();
    member.try_recv_batch(3, &mut got).unwrap();
    let back = got.split_off(2); // 0 and 1 handled, 2 not
    member.give_back(back);
    member.seek(0, 1).unwrap(); // 1 and 2 to be read again, as new
    drop(member);
    let next = group.join(StartFrom::Committed).unwrap();
    let mut again = Vec::new();
    let read = next.try_recv_batch(10, &mut again);
    let offsets: Vec<u64> = again.iter().map(|c| c.offset).collect();
    assert!(
        offsets.contains(&2),
        "offset 2 was given back and nobody took it: read {offsets:?} ({read:?}), committed {:?}",
        group.stats().committed
    );
}

/// The crate docs ("Commits and positions"): messages handed out and not
/// acknowledged when the last member leaves come back to a
/// `StartFrom::Committed` rejoin, and where nothing was committed yet
/// the `Group` handle remembers where they start, in place of the commit;
/// the commit itself is "just below the lowest unacknowledged one, or,
/// with none below it, just below the group's position" ("Acknowledgement").
///
/// Offset 0 is handed out, offset 1 is nacked at the delivery limit and
/// waits as a dead letter (the sink refuses it), and the member leaves:
/// the handle remembers 0. A member joins from `Earliest` (the group
/// stands at 0) and leaves without receiving. The handle now remembers
/// the lowest unprocessed offset, the dead letter at 1, not the group's
/// position 0, below it: a rejoin from the commit started at 1, passed
/// over the dead letter, and message 0 was never handed out again,
/// neither processed, dead-lettered, expired, reported as lagged nor
/// skipped by a seek or a start position. (Not particular to `nack`: the
/// model's input made the dead letter by a member leaving, with
/// `max_deliveries` 1 and the sink refusing; the handle's restart offset
/// after the last member leaves was computed from what is unprocessed
/// only, without the position.) Fixed: it is never past the position.
#[test]
fn a_committed_rejoin_does_not_skip_what_lies_below_a_waiting_dead_letter() {
    use std::sync::Arc;

    use memq_groups::{AckMode, DeadLetterSink};

    let topic: Topic<u64> = Topic::new(TopicConfig::default()).unwrap();
    let refusing: DeadLetterSink<u64> = Arc::new(Err);
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .max_deliveries(Some(1));
    let group = Group::with_dead_letters("g", vec![topic.clone()], config, refusing).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    topic.try_publish(0).unwrap();
    topic.try_publish(1).unwrap();
    assert_eq!(a.try_recv().unwrap().offset, 0);
    assert_eq!(a.try_recv().unwrap().offset, 1);
    a.nack(0, 1).unwrap(); // a dead letter, waiting
    assert_eq!(group.stats().dead_letters_waiting, 1);
    drop(a); // 0 unacknowledged: remembered
    let b = group.join(StartFrom::Earliest).unwrap();
    assert_eq!(b.position(0), Some(0));
    drop(b); // nothing handed out: the group stands at 0
    assert_eq!(group.stats().committed, vec![None]);
    let c = group.join(StartFrom::Committed).unwrap();
    let got = c.try_recv().map(|m| m.offset);
    assert_eq!(
        got,
        Ok(0),
        "message 0 was never processed; the rejoin starts at {:?}",
        c.position(0)
    );
}
