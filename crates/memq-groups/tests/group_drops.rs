//! A group never runs user code under its lock: values it removes
//! (acknowledged, expired, dropped when the last member leaves) are
//! dropped after the lock is released, so a `Drop` that calls back into
//! the group does not deadlock.
//!
//! Review 10: `leave`'s clearing of the pending messages, `ack`,
//! `commit` and the expiry of queued redeliveries dropped values under
//! the group lock. Detected here without hanging: a value's `Drop` asks
//! another thread to take the group lock, and waits a bounded time for
//! it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Group, GroupConfig};

/// Far longer than taking a free lock takes.
const PATIENCE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Probe {
    group: OnceLock<Group<Tracked>>,
    /// Only the drops of the operation under test are checked.
    armed: AtomicBool,
    checked: AtomicUsize,
    under_lock: AtomicUsize,
}

#[derive(Clone)]
struct Tracked {
    probe: Arc<Probe>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let probe = &self.probe;
        if !probe.armed.load(Ordering::SeqCst) {
            return;
        }
        let Some(group) = probe.group.get().cloned() else {
            return;
        };
        probe.checked.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        // Takes only the group lock (manual mode has no commits to write).
        std::thread::spawn(move || {
            group.flush_commits();
            let _ = tx.send(());
        });
        if rx.recv_timeout(PATIENCE).is_err() {
            probe.under_lock.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn setup(
    ttl: Option<Duration>,
    ack_timeout: Option<Duration>,
) -> (Arc<Probe>, Topic<Tracked>, Group<Tracked>) {
    let probe = Arc::new(Probe::default());
    let t = Topic::new(TopicConfig::default().ttl(ttl)).unwrap();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .ack_timeout(ack_timeout);
    let group = Group::new("g", vec![t.clone()], config).unwrap();
    probe.group.set(group.clone()).ok().unwrap();
    (probe, t, group)
}

/// Runs `f` with the probe armed; how many drops it checked, and how many
/// of those ran under the group lock.
fn checked(probe: &Probe, f: impl FnOnce()) -> (usize, usize) {
    probe.checked.store(0, Ordering::SeqCst);
    probe.under_lock.store(0, Ordering::SeqCst);
    probe.armed.store(true, Ordering::SeqCst);
    f();
    probe.armed.store(false, Ordering::SeqCst);
    (
        probe.checked.load(Ordering::SeqCst),
        probe.under_lock.load(Ordering::SeqCst),
    )
}

#[test]
fn an_acknowledged_value_is_dropped_after_the_lock() {
    let (probe, t, group) = setup(None, None);
    let m = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(Tracked { probe: probe.clone() }).ok().unwrap();
    t.try_publish(Tracked { probe: probe.clone() }).ok().unwrap();
    let mut got = Vec::new();
    m.try_recv_batch(2, &mut got).ok().unwrap();
    let (a, b) = (
        (got[0].partition, got[0].offset),
        (got[1].partition, got[1].offset),
    );
    drop(got);
    let (n, bad) = checked(&probe, || m.ack(a.0, a.1).unwrap());
    assert!(n >= 1, "the pending copy was dropped");
    assert_eq!(bad, 0, "dropped under the group lock by ack");
    let (n, bad) = checked(&probe, || m.commit(b.0, b.1).unwrap());
    assert!(n >= 1);
    assert_eq!(bad, 0, "dropped under the group lock by commit");
}

#[test]
fn pending_values_are_dropped_after_the_lock_when_the_last_member_leaves() {
    let (probe, t, group) = setup(None, None);
    let m = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(Tracked { probe: probe.clone() }).ok().unwrap();
    drop(m.try_recv().ok().unwrap());
    let (n, bad) = checked(&probe, || drop(m));
    assert!(n >= 1, "the pending copy was dropped");
    assert_eq!(bad, 0, "dropped under the group lock by the last member leaving");
}

#[tokio::test(start_paused = true)]
async fn an_expired_redelivery_is_dropped_after_the_lock() {
    let (probe, t, group) = setup(Some(Duration::from_millis(50)), Some(Duration::from_millis(100)));
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(Tracked { probe: probe.clone() }).ok().unwrap();
    drop(a.try_recv().ok().unwrap());
    tokio::time::advance(Duration::from_millis(150)).await;
    // The topic drops its own (expired) copy now: only the group's is
    // checked below.
    assert_eq!(t.stats().depth, 0);
    // B's receive takes A's message over (idle) and drops it (expired).
    let (n, bad) = checked(&probe, || assert!(b.try_recv().is_err()));
    assert_eq!(group.stats().expired, 1);
    assert!(n >= 1, "the pending copy was dropped");
    assert_eq!(bad, 0, "dropped under the group lock by the expiry");
}
