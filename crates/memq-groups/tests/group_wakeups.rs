//! A group never loses a wake-up: closing wakes every parked member, and
//! a claim that took the partition's wake-up registration with it leaves
//! one behind for the members still parked; a member parked with
//! something to take is woken whatever moved (a rebalance, an expiry, a
//! member that left), and a woken member that is slow to run holds back
//! only the message kept for it.

use memq_testkit::within;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use memq_core::{RecvError, StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Assignment, Group, GroupConfig, Member, MemberWaiter};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Far longer than anything here takes; under paused time a hang reaches
/// it at once.
const LIMIT: Duration = Duration::from_secs(60);

/// Waits for `recv` up to [`LIMIT`], and says whether any (paused) time
/// passed: a member that was never woken fails `within` (which, unlike a
/// plain timeout, does not poll it again when the time is up), and one
/// woken only after paused time advanced is caught by the clock.
async fn recv_now(m: &Member<u64>) -> Result<Result<u64, RecvError>, Duration> {
    let start = Instant::now();
    match within(LIMIT, m.recv()).await {
        Ok(r) if start.elapsed().is_zero() => Ok(r.map(|c| c.value)),
        _ => Err(start.elapsed()),
    }
}

fn topic() -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(16))).unwrap()
}

/// Lets spawned tasks run until they park (current-thread runtime).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// Bug A: four members parked in `recv`; closing the topic woke one (it
/// got `Closed`) and the other three hung. (The members stay alive: a
/// member that leaves wakes the others, which hid the bug.)
#[tokio::test(start_paused = true)]
async fn closing_the_topic_wakes_every_parked_member() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let members: Vec<_> = (0..4)
        .map(|_| Arc::new(group.join(StartFrom::Earliest).unwrap()))
        .collect();
    let tasks: Vec<_> = members
        .iter()
        .map(|m| {
            let m = m.clone();
            tokio::spawn(async move { recv_now(&m).await })
        })
        .collect();
    settle().await;
    t.close();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for (i, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Ok(Err(RecvError::Closed))),
            "member {i}: {r:?} (a duration means it was never woken)"
        );
    }
    drop(members);
}

/// As above with two partitions, one with messages received just before
/// both close: every member ends with `Closed`, and every message is
/// received once. (Before the fix one member hung: each close woke one
/// member at most.)
#[tokio::test(start_paused = true)]
async fn closing_partitions_wakes_every_member_after_the_drain() {
    let parts = vec![topic(), topic()];
    let group = Group::new("g", parts.clone(), GroupConfig::default()).unwrap();
    let members: Vec<_> = (0..3)
        .map(|_| Arc::new(group.join(StartFrom::Earliest).unwrap()))
        .collect();
    let tasks: Vec<_> = members
        .iter()
        .map(|m| {
            let m = m.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    match recv_now(&m).await {
                        Ok(Ok(v)) => got.push(v),
                        Ok(Err(RecvError::Closed)) => return Ok(got),
                        other => return Err(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    settle().await;
    parts[0].try_publish(0).unwrap();
    parts[0].try_publish(1).unwrap();
    settle().await;
    for t in &parts {
        t.close();
    }
    let mut all = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(got) => all.extend(got),
            Err(e) => panic!("member {i} never saw Closed: {e}"),
        }
    }
    all.sort_unstable();
    assert_eq!(all, vec![0, 1]);
    drop(members);
}

/// Bug B: two members parked; the one woken for message 0 takes it and
/// then keeps its handle without receiving again. Its claim used up the
/// partition's wake-up registration, so the publish of message 1 woke
/// nobody and the other member stayed parked (group stats: lag 1,
/// pending 0).
#[tokio::test(start_paused = true)]
async fn a_claim_leaves_the_wake_up_armed_for_the_members_still_parked() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut holds = Vec::new();
    for i in 0..2 {
        let m = group.join(StartFrom::Earliest).unwrap();
        let done = done_tx.clone();
        let (hold_tx, hold_rx) = oneshot::channel::<()>();
        holds.push(hold_tx);
        tokio::spawn(async move {
            let c = m.recv().await;
            done.send((i, c.map(|c| c.value))).unwrap();
            // Keeps the member, receiving nothing more.
            let _ = hold_rx.await;
            drop(m);
        });
    }
    settle().await;
    t.try_publish(0).unwrap();
    let (first, value) = within(LIMIT, done_rx.recv()).await.unwrap().unwrap();
    assert_eq!(value, Ok(0));
    t.try_publish(1).unwrap();
    let second = within(LIMIT, done_rx.recv()).await;
    let Ok(Some((other, value))) = second else {
        panic!("the other member was never woken; group {:?}", group.stats());
    };
    assert_ne!(first, other);
    assert_eq!(value, Ok(1));
    drop(holds);
}

// Regressions of the review of the first-come-first-served wake-ups
// (efba876..8076d29). These drive receives by hand (`poll_recv_batch`
// with a waker that records being woken) so that which member runs
// when is the test's choice: a member is polled again only when woken.

/// A receive driven by hand: its waiter, and a waker that records being
/// woken.
struct Hand {
    waiter: MemberWaiter<u64>,
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Hand {
    fn new() -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        Hand {
            waiter: MemberWaiter::new(),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Polls `m`'s receive of one message once.
    fn poll(&mut self, m: &Member<u64>) -> Poll<Vec<u64>> {
        let mut cx = Context::from_waker(&self.waker);
        let mut out = Vec::new();
        m.poll_recv_batch(&mut cx, &mut self.waiter, 1, &mut out)
            .map(|r| {
                r.unwrap();
                out.into_iter().map(|c| c.value).collect()
            })
    }

    /// Whether it was woken since last asked.
    fn woken(&self) -> bool {
        self.flag.0.swap(false, Ordering::SeqCst)
    }

    /// Receives until `m` parks; what it got.
    fn drain(&mut self, m: &Member<u64>) -> Vec<u64> {
        let mut got = Vec::new();
        while let Poll::Ready(v) = self.poll(m) {
            got.extend(v);
        }
        got
    }
}

/// Review 1, join: exclusive assignment over two partitions; A owns both
/// and is parked; a publish to p1 wakes A (p1's message kept for it); B
/// joins and takes p1 over. B polled before A ran: it passed over p1's
/// message (kept for A) without arming p1's relay, then A ran, could no
/// longer read p1, and parked. B stayed parked with every later message
/// of p1 unread. B must receive everything published to p1, polled only
/// when woken.
#[test]
fn a_partition_given_away_while_its_message_is_kept_for_a_woken_member_is_not_stranded() {
    let parts = vec![topic(), topic()];
    let config = GroupConfig::default().assignment(Assignment::Exclusive);
    let group = Group::new("g", parts.clone(), config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let mut ha = Hand::new();
    assert!(ha.poll(&a).is_pending());
    parts[1].try_publish(10).unwrap();
    assert!(ha.woken(), "A woken for p1");
    let b = group.join(StartFrom::Earliest).unwrap(); // p0: A, p1: B
    let mut hb = Hand::new();
    let mut got = hb.drain(&b); // B before A
    assert_eq!(ha.drain(&a), Vec::<u64>::new(), "p0 is empty");
    for v in 11..=15 {
        parts[1].try_publish(v).unwrap();
        if hb.woken() {
            got.extend(hb.drain(&b));
        }
    }
    assert_eq!(got, (10..=15).collect::<Vec<_>>(), "group {:?}", group.stats());
}

/// Review 1, leave: the same with the partition moved by a member
/// leaving. Three members over two partitions (p0: A, p1: B, C owns
/// none); B parked and woken for p1; A leaves (p0: B, p1: C); C polled
/// before B. C must receive everything published to p1.
#[test]
fn a_partition_moved_by_a_leave_while_its_message_is_kept_for_a_woken_member_is_not_stranded() {
    let parts = vec![topic(), topic()];
    let config = GroupConfig::default().assignment(Assignment::Exclusive);
    let group = Group::new("g", parts.clone(), config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    let c = group.join(StartFrom::Earliest).unwrap();
    let (mut hb, mut hc) = (Hand::new(), Hand::new());
    assert!(hb.poll(&b).is_pending());
    parts[1].try_publish(10).unwrap();
    assert!(hb.woken(), "B woken for p1");
    drop(a); // p0: B, p1: C
    let mut got = hc.drain(&c); // C before B
    assert_eq!(hb.drain(&b), Vec::<u64>::new(), "p0 is empty");
    for v in 11..=15 {
        parts[1].try_publish(v).unwrap();
        if hc.woken() {
            got.extend(hc.drain(&c));
        }
    }
    assert_eq!(got, (10..=15).collect::<Vec<_>>(), "group {:?}", group.stats());
}

/// Review 2: exclusive, manual acks, `max_pending` 1, a TTL on p0. A
/// (p0) holds the group's one pending message; a publish to p1 wakes
/// nobody (no room); A idles past the ack timeout and the message
/// expires; A's next receive drops it (room again) and parks. Nobody
/// woke B (p1), parked with a message to take. It must be woken.
#[tokio::test(start_paused = true)]
async fn room_made_by_an_expiry_wakes_a_member_parked_at_the_limit() {
    let p0 = Topic::new(TopicConfig::default().ttl(Some(Duration::from_millis(50)))).unwrap();
    let p1 = topic();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .assignment(Assignment::Exclusive)
        .max_pending(Some(1))
        .ack_timeout(Some(Duration::from_millis(100)));
    let group = Group::new("g", vec![p0.clone(), p1.clone()], config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap(); // p0
    let b = group.join(StartFrom::Earliest).unwrap(); // p1
    let mut hb = Hand::new();
    assert!(hb.poll(&b).is_pending());
    p0.try_publish(1).unwrap();
    assert_eq!(a.try_recv().unwrap().value, 1, "pending 1: the limit");
    // B parked before A received: woken once, to arm its timer for A's
    // take-over (see `group_ack_timeout.rs`).
    assert!(hb.woken(), "B woken to arm its take-over timer");
    assert!(hb.poll(&b).is_pending());
    p1.try_publish(2).unwrap();
    assert!(!hb.woken(), "no room: nobody woken");
    tokio::time::advance(Duration::from_millis(150)).await;
    // The timer fired; B's task has not run (so only the group can wake
    // it below).
    assert!(hb.woken(), "B's take-over timer fired");
    let mut ha = Hand::new();
    assert!(ha.poll(&a).is_pending(), "A's message expired; p0 is empty");
    assert_eq!(group.stats().expired, 1);
    assert!(hb.woken(), "B woken by the room the expiry made");
    assert_eq!(hb.drain(&b), vec![2]);
}

/// Review 5: two members parked; ten messages published one at a time;
/// the first wakes A, whose task is not polled for a while (a `select!`
/// loop busy in another branch). B was never woken: every message
/// waited for A. Only the message kept for A may wait for it: B is woken
/// and receives the others, and later ones too.
#[test]
fn a_woken_member_that_is_not_polled_holds_back_only_the_message_kept_for_it() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    let (mut ha, mut hb) = (Hand::new(), Hand::new());
    assert!(ha.poll(&a).is_pending());
    assert!(hb.poll(&b).is_pending());
    let mut by_b = Vec::new();
    for v in 0..12 {
        t.try_publish(v).unwrap();
        if v == 0 {
            assert!(ha.woken(), "the longest waiting is woken first");
        }
        if hb.woken() {
            by_b.extend(hb.drain(&b));
        }
    }
    assert_eq!(
        by_b.len(),
        11,
        "B got all but A's message: {by_b:?}; group {:?}",
        group.stats()
    );
    assert_eq!(ha.drain(&a).len(), 1, "A gets the one kept for it");
    assert_eq!(group.stats().lag, 0);
}

/// Review 6: members A, B, C park in that order; A takes message 0 and
/// stays away; message 1 wakes B; message 2 is published; D (which did
/// not wait) receives. That claim then woke C although the one message
/// left was already kept for B, so B, polled first, found it kept (for
/// C, as far as it could tell) and got nothing, and C took it: the
/// member woken first went without. Each member woken must get a
/// message.
#[test]
fn a_member_woken_first_is_not_left_without_its_message() {
    let t = topic();
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let members: Vec<_> = (0..4).map(|_| group.join(StartFrom::Earliest).unwrap()).collect();
    let (a, b, c, d) = (&members[0], &members[1], &members[2], &members[3]);
    let (mut ha, mut hb, mut hc) = (Hand::new(), Hand::new(), Hand::new());
    for (h, m) in [(&mut ha, a), (&mut hb, b), (&mut hc, c)] {
        assert!(h.poll(m).is_pending());
    }
    t.try_publish(0).unwrap();
    assert!(ha.woken());
    assert_eq!(ha.poll(a), Poll::Ready(vec![0]));
    t.try_publish(1).unwrap();
    assert!(hb.woken(), "B, the longest waiting, is woken");
    t.try_publish(2).unwrap();
    let mut got: Vec<u64> = d.try_recv().map(|m| m.value).into_iter().collect();
    match hb.poll(b) {
        Poll::Ready(v) => got.extend(v),
        Poll::Pending => panic!("B, woken first, got nothing"),
    }
    if hc.woken() {
        match hc.poll(c) {
            Poll::Ready(v) => got.extend(v),
            Poll::Pending => panic!("C was woken for nothing"),
        }
    }
    got.sort_unstable();
    assert_eq!(got, vec![1, 2]);
}

/// A group of members A and B on `t`: A's receive (driven by hand)
/// parked, then woken by the first message, which is kept for it.
fn a_woken_for_the_first_message(t: &Topic<u64>) -> (Group<u64>, Member<u64>, Member<u64>, Hand) {
    let group = Group::new("g", vec![t.clone()], GroupConfig::default()).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    let mut ha = Hand::new();
    assert!(ha.poll(&a).is_pending());
    t.try_publish(0).unwrap();
    assert!(ha.woken(), "A is woken for the first message");
    (group, a, b, ha)
}

/// Review 7: a member dropped while its receive (driven through
/// `poll_recv_batch`, the waiter kept) had been woken: the message kept
/// for it outlived it, so the other member could not take it.
#[test]
fn a_member_that_leaves_while_woken_keeps_no_message_from_the_others() {
    let t = topic();
    let (_group, a, b, ha) = a_woken_for_the_first_message(&t);
    drop(a); // its waiter is still alive
    assert_eq!(b.try_recv().map(|m| m.value), Ok(0));
    let mut hb = Hand::new();
    assert!(hb.poll(&b).is_pending());
    t.try_publish(1).unwrap();
    assert!(hb.woken());
    assert_eq!(hb.drain(&b), vec![1]);
    drop(ha);
}

/// Review 7: a waiter polled with a member of one group, then with a
/// member of another, used its slot index in the second group's table
/// (out of bounds, or another member's slot). It starts afresh instead,
/// and the first group is left consistent.
#[test]
fn a_waiter_moved_to_another_group_starts_afresh() {
    let (t1, t2) = (topic(), topic());
    let g1 = Group::new("g1", vec![t1.clone()], GroupConfig::default()).unwrap();
    let g2 = Group::new("g2", vec![t2.clone()], GroupConfig::default()).unwrap();
    let a1 = g1.join(StartFrom::Earliest).unwrap();
    let b1 = g1.join(StartFrom::Earliest).unwrap();
    let a2 = g2.join(StartFrom::Earliest).unwrap();
    let mut h = Hand::new();
    assert!(h.poll(&a1).is_pending());
    assert!(h.poll(&a2).is_pending(), "now waiting in g2");
    t2.try_publish(20).unwrap();
    assert!(h.woken());
    assert_eq!(h.drain(&a2), vec![20]);
    // g1 no longer counts the waiter as parked: its publish goes to b1.
    let mut hb = Hand::new();
    assert!(hb.poll(&b1).is_pending());
    t1.try_publish(10).unwrap();
    assert!(hb.woken());
    assert_eq!(hb.drain(&b1), vec![10]);
}

/// A batch takes everything there up to its size, less only what is kept
/// for members woken for it and not yet run: also when it is served from
/// what an earlier receive read ahead (the claim's short path). A parks,
/// the first publish wakes it (one message kept for it), B receives one
/// (reading the rest ahead), then a batch of B's takes all but the one
/// kept for A, and A gets that one.
#[test]
fn a_batch_from_what_was_read_ahead_leaves_only_what_is_kept_for_woken_members() {
    let t = topic();
    let (group, a, b, mut ha) = a_woken_for_the_first_message(&t);
    t.try_publish_batch((1..7).collect()).unwrap();
    // A single receive reads ahead what the partition has.
    assert_eq!(b.try_recv().unwrap().value, 0);
    let mut out = Vec::new();
    assert_eq!(b.try_recv_batch(10, &mut out), Ok(5));
    let got: Vec<u64> = out.iter().map(|c| c.value).collect();
    assert_eq!(got, [1, 2, 3, 4, 5], "all but the one kept for A");
    assert_eq!(ha.drain(&a), [6], "A gets the one kept for it");
    assert_eq!(group.stats().lag, 0);
}
