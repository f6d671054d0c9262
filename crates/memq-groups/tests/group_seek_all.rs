//! `Member::seek_all`: every partition moves to the offset, or none does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use memq_core::{StartFrom, Topic, TopicConfig, TryRecvError};
use memq_groups::{AckMode, Group, GroupConfig, GroupError, Member, MemberWaiter, OutOfRange};

fn topic(cap: usize) -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(cap))).unwrap()
}

fn positions(m: &Member<u64>) -> Vec<Option<u64>> {
    (0..m.partitions()).map(|p| m.position(p)).collect()
}

fn drain(m: &Member<u64>) -> Vec<(usize, u64)> {
    let mut got = Vec::new();
    while let Ok(c) = m.try_recv() {
        got.push((c.partition, c.offset));
    }
    got
}

/// Partition 0 holds 0..4, partition 1 is empty: offset 2 is refused by
/// partition 1 and nothing moves; offset 5 by partition 0 first; offset
/// 0 moves both.
#[test]
fn refused_by_one_partition_moves_none() {
    let parts = vec![topic(16), topic(16)];
    let group = Group::new("g", parts.clone(), GroupConfig::default()).unwrap();
    for v in 0..4 {
        parts[0].try_publish(v).unwrap();
    }
    let m = group.join(StartFrom::Latest).unwrap();
    assert_eq!(positions(&m), vec![Some(4), Some(0)]);

    assert_eq!(
        m.seek_all(2),
        Err(GroupError::OutOfRange {
            partition: 1,
            range: OutOfRange {
                requested: 2,
                low: 0,
                high: 0
            }
        })
    );
    assert_eq!(positions(&m), vec![Some(4), Some(0)], "nothing moved");
    assert!(drain(&m).is_empty());

    // Refused by both: the first in index order is named.
    let Err(GroupError::OutOfRange { partition, range }) = m.seek_all(5) else {
        panic!("offset 5 is past both windows")
    };
    assert_eq!((partition, range.high), (0, 4));
    assert_eq!(positions(&m), vec![Some(4), Some(0)], "nothing moved");

    m.seek_all(0).unwrap();
    assert_eq!(positions(&m), vec![Some(0), Some(0)]);
    assert_eq!(drain(&m), (0..4).map(|o| (0, o)).collect::<Vec<_>>());
}

/// In each partition `seek_all` does what `seek` does: in manual mode the
/// messages pending with members stay pending, and a seek back hands them
/// out again as new. Two groups with the same history, one moved with
/// `seek`, the other with `seek_all`, hand out the same and count the
/// same.
#[test]
fn in_each_partition_it_acts_as_seek() {
    let run = |all: bool| {
        let t = topic(16);
        let config = GroupConfig::default().ack(AckMode::Manual);
        let group = Group::new("g", vec![t.clone()], config).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap();
        let b = group.join(StartFrom::Earliest).unwrap();
        for v in 0..6 {
            t.try_publish(v).unwrap();
        }
        let mut out = Vec::new();
        a.try_recv_batch(3, &mut out).unwrap();
        a.ack(0, 0).unwrap();
        if all {
            b.seek_all(1).unwrap();
        } else {
            b.seek(0, 1).unwrap();
        }
        let stats = group.stats();
        let mut got = Vec::new();
        while let Ok(c) = b.try_recv() {
            got.push((c.offset, c.deliveries));
        }
        let acks: Vec<_> = (1..3).map(|o| a.ack(0, o)).collect();
        (stats.pending, stats.committed, got, acks, group.stats())
    };
    let by_seek = run(false);
    assert_eq!(by_seek.0, 2, "offsets 1 and 2 stay pending with A");
    assert_eq!(by_seek.2, (1..6).map(|o| (o, 1)).collect::<Vec<_>>());
    assert_eq!(run(true), by_seek);
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A member waiting at the end of both partitions is woken by the seek
/// back, and receives from the new position.
#[test]
fn wakes_the_waiting_members() {
    let parts = vec![topic(16), topic(16)];
    let group = Group::new("g", parts.clone(), GroupConfig::default()).unwrap();
    parts[0].try_publish(0).unwrap();
    parts[1].try_publish(10).unwrap();
    let m = group.join(StartFrom::Latest).unwrap();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut waiter = MemberWaiter::new();
    let mut out = Vec::new();
    let mut poll =
        |out: &mut Vec<_>| m.poll_recv_batch(&mut Context::from_waker(&waker), &mut waiter, 2, out);
    assert!(poll(&mut out).is_pending());
    m.seek_all(0).unwrap();
    assert!(flag.0.load(Ordering::SeqCst), "woken by the seek");
    let mut got = Vec::new();
    while let Poll::Ready(r) = poll(&mut out) {
        r.unwrap();
        got.append(&mut out);
    }
    let mut got: Vec<u64> = got.into_iter().map(|c| c.value).collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 10]);
}

/// Partitions evicting while the group seeks: every `seek_all` moves
/// every partition to the offset, or (refused: evicted before the check)
/// none of them; an offset evicted after the check is accepted, and the
/// next receive reports what was lost as lagged.
#[test]
fn concurrent_evictions_never_move_some_partitions_only() {
    let parts = vec![topic(4), topic(4)];
    let group = Group::new("g", parts.clone(), GroupConfig::default()).unwrap();
    let m = group.join(StartFrom::Earliest).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (parts, stop) = (parts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut v = 0;
            while !stop.load(Ordering::Relaxed) {
                for t in &parts {
                    t.try_publish(v).unwrap();
                }
                v += 1;
                // Evictions often, but not all the time.
                for _ in 0..v % 256 {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let (mut moved, mut refused, mut lagged) = (0, 0, 0);
    // Bounded; stops early once both outcomes were seen often enough.
    for _ in 0..200_000 {
        if moved >= 500 && refused >= 50 {
            break;
        }
        let windows: Vec<_> = parts.iter().map(Topic::stats).collect();
        let target = windows.iter().map(|s| s.low).max().unwrap();
        if windows.iter().any(|s| s.high < target) {
            continue;
        }
        let before = positions(&m);
        match m.seek_all(target) {
            Ok(()) => {
                moved += 1;
                assert_eq!(positions(&m), vec![Some(target); 2], "every partition moved");
                match m.try_recv() {
                    Ok(c) => assert!(c.offset >= target),
                    // The offset was the next to be published.
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Lagged(n)) => {
                        assert!(n > 0);
                        lagged += 1;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            Err(GroupError::OutOfRange { range, .. }) => {
                refused += 1;
                assert!(range.low > target, "refused only for an eviction: {range:?}");
                assert_eq!(positions(&m), before, "nothing moved");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    assert!(moved > 0, "moved {moved}, refused {refused}, lagged {lagged}");
    eprintln!("seek_all under evictions: moved {moved}, refused {refused}, lagged after {lagged}");
}
