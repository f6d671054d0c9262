//! The ack timeout wakes the members that wait: a member parked before
//! another member received (so it parked with nothing pending, and armed
//! no timer) is woken when that member's messages become claimable; and
//! without an ack timeout, other members' receives never wake a parked
//! member.

use memq_testkit::within;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use memq_core::{StartFrom, Topic, TopicConfig};
use memq_groups::{AckMode, Assignment, Claimed, Group, GroupConfig, Member, MemberWaiter};
use tokio::sync::oneshot;
use tokio::time::Instant;

const ACK_TIMEOUT: Duration = Duration::from_millis(100);

/// Far longer than anything here takes; under paused time a hang reaches
/// it at once.
const LIMIT: Duration = Duration::from_secs(60);

fn topic() -> Topic<u64> {
    Topic::new(TopicConfig::default().max_messages(Some(64))).unwrap()
}

/// Lets spawned tasks run until they park (current-thread runtime).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// B parks in `recv`, then A; a publish wakes B (the longest waiting),
/// which receives and then keeps its member without acknowledging or
/// receiving again. A parked while nothing was pending, so it armed no
/// timer for B's take-over: before the fix it was never woken (the group
/// showed one message pending with the idle B, and A waited until the
/// test's limit). A must get the message, as its second delivery, at the
/// moment B's ack timeout runs out.
#[tokio::test(start_paused = true)]
async fn a_member_parked_before_another_received_gets_its_messages_after_the_ack_timeout() {
    let t = topic();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .ack_timeout(Some(ACK_TIMEOUT));
    let group = Group::new("g", vec![t.clone()], config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();

    let (got_tx, got_rx) = oneshot::channel();
    let (hold_tx, hold_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let c = b.recv().await.unwrap();
        got_tx.send((c.offset, c.deliveries, Instant::now())).unwrap();
        // Keeps the member (idle: no ack, no receive).
        let _ = hold_rx.await;
        drop(b);
    });
    settle().await;
    let a_task = tokio::spawn(async move {
        let c = a.recv().await.map(|c| (c.offset, c.deliveries));
        (c, Instant::now(), a)
    });
    settle().await;

    t.try_publish(7).unwrap();
    let (offset, deliveries, received) = within(LIMIT, got_rx).await.unwrap().unwrap();
    assert_eq!(
        (offset, deliveries),
        (0, 1),
        "B, the longest waiting, received it"
    );

    let (c, at, _a) = match within(LIMIT, a_task).await {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("A was never woken for B's take-over; group {:?}", group.stats()),
    };
    assert_eq!(c, Ok((0, 2)), "A got B's message, delivered a second time");
    assert_eq!(at - received, ACK_TIMEOUT, "woken when B's ack timeout ran out");
    assert_eq!(group.stats().redeliveries, 1);
    drop(hold_tx);
}

/// The same with receives driven by hand and the clock advanced
/// explicitly: B parks, then A (on the empty topic); the publish wakes B
/// (the longest waiting), which receives. A is woken at once to arm its
/// timer for B's take-over (before the fix it was not, and stayed parked
/// past the ack timeout), and again when the timeout runs out, and then
/// gets the message.
#[tokio::test(start_paused = true)]
async fn a_parked_member_is_woken_to_arm_its_timer_when_another_receives() {
    let t = topic();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .ack_timeout(Some(ACK_TIMEOUT));
    let group = Group::new("g", vec![t.clone()], config).unwrap();
    let a = group.join(StartFrom::Earliest).unwrap();
    let b = group.join(StartFrom::Earliest).unwrap();
    let (mut ha, mut hb) = (Hand::new(), Hand::new());
    assert!(hb.poll(&b).is_pending());
    assert!(ha.poll(&a).is_pending());
    t.try_publish(7).unwrap();
    assert_eq!(hb.wakes(), 1);
    let Poll::Ready(got) = hb.poll(&b) else {
        panic!("B woken for nothing")
    };
    assert_eq!(got[0].deliveries, 1);
    // B now holds the message; A has no timer for it yet.
    assert!(ha.wakes() > 0, "A not woken to arm a timer for B's take-over");
    assert!(ha.poll(&a).is_pending(), "B is not idle yet");
    tokio::time::advance(ACK_TIMEOUT - Duration::from_millis(1)).await;
    assert_eq!(ha.wakes(), 0, "too early");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(ha.wakes(), 1, "A's timer fired");
    let Poll::Ready(got) = ha.poll(&a) else {
        panic!("B's message not claimable; group {:?}", group.stats())
    };
    assert_eq!((got[0].offset, got[0].deliveries), (0, 2));
}

/// The member woken to arm the take-over timer drops its receive before
/// it runs (or after it armed the timer): another parked member arms one
/// instead, and gets the message when the ack timeout runs out.
#[tokio::test(start_paused = true)]
async fn a_take_over_timer_dropped_with_its_receive_passes_to_another_member() {
    for rearmed in [false, true] {
        let t = topic();
        let config = GroupConfig::default()
            .ack(AckMode::Manual)
            .ack_timeout(Some(ACK_TIMEOUT));
        let group = Group::new("g", vec![t.clone()], config).unwrap();
        let members: Vec<_> = (0..3).map(|_| group.join(StartFrom::Earliest).unwrap()).collect();
        let (a, b, c) = (&members[0], &members[1], &members[2]);
        let (mut ha, mut hb, mut hc) = (Hand::new(), Hand::new(), Hand::new());
        assert!(hb.poll(b).is_pending());
        assert!(ha.poll(a).is_pending());
        assert!(hc.poll(c).is_pending());
        t.try_publish(7).unwrap();
        assert_eq!(hb.wakes(), 1);
        assert!(hb.poll(b).is_ready(), "B received");
        assert_eq!(ha.wakes(), 1, "A, the longest waiting, woken to arm a timer");
        assert_eq!(hc.wakes(), 0, "one member is enough");
        if rearmed {
            assert!(ha.poll(a).is_pending());
            assert_eq!(hc.wakes(), 0);
        }
        drop(ha);
        assert_eq!(hc.wakes(), 1, "rearmed {rearmed}: C woken to arm a timer instead");
        assert!(hc.poll(c).is_pending());
        tokio::time::advance(ACK_TIMEOUT).await;
        assert_eq!(hc.wakes(), 1, "rearmed {rearmed}: C's timer fired");
        let Poll::Ready(got) = hc.poll(c) else {
            panic!("rearmed {rearmed}: nothing for C; group {:?}", group.stats())
        };
        assert_eq!((got[0].offset, got[0].deliveries), (0, 2));
    }
}

/// Without an ack timeout nothing about the timers changes: a member
/// parked on its own (empty) partition is never woken by the receives of
/// the other member on the other partition. With one, it is woken once
/// (to arm its timer for the other's take-over), not once per receive.
#[tokio::test(start_paused = true)]
async fn other_members_receives_do_not_wake_a_parked_member() {
    for timeout in [None, Some(ACK_TIMEOUT)] {
        let parts = vec![topic(), topic()];
        let config = GroupConfig::default()
            .ack(AckMode::Manual)
            .ack_timeout(timeout)
            .assignment(Assignment::Exclusive);
        let group = Group::new("g", parts.clone(), config).unwrap();
        let a = group.join(StartFrom::Earliest).unwrap(); // p0
        let b = group.join(StartFrom::Earliest).unwrap(); // p1
        let mut ha = Hand::new();
        assert!(ha.poll(&a).is_pending());
        let mut hb = Hand::new();
        for v in 0..20 {
            parts[1].try_publish(v).unwrap();
            if v % 2 == 0 {
                assert_eq!(b.try_recv().unwrap().value, v);
            } else {
                let Poll::Ready(got) = hb.poll(&b) else {
                    panic!("B parked with a message there")
                };
                assert_eq!(got[0].value, v);
            }
            if v % 5 == 0 {
                b.ack(1, v).unwrap();
            }
        }
        let expected = usize::from(timeout.is_some());
        assert_eq!(ha.wakes(), expected, "ack timeout {timeout:?}");
        if expected > 0 {
            assert!(ha.poll(&a).is_pending());
        }
        assert!(hb.poll(&b).is_pending());
        for v in 20..30 {
            parts[1].try_publish(v).unwrap();
            assert_eq!(hb.wakes(), 1);
            assert_eq!(hb.poll(&b).map(|c| c[0].value), Poll::Ready(v));
            assert!(hb.poll(&b).is_pending());
        }
        assert_eq!(
            ha.wakes(),
            0,
            "ack timeout {timeout:?}: A's timer was armed already"
        );
    }
}

/// A receive driven by hand, with a waker that counts its wake-ups.
struct Hand {
    waiter: MemberWaiter<u64>,
    count: Arc<Count>,
    waker: Waker,
}

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Hand {
    fn new() -> Self {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        Hand {
            waiter: MemberWaiter::new(),
            waker: Waker::from(count.clone()),
            count,
        }
    }

    fn poll(&mut self, m: &Member<u64>) -> Poll<Vec<Claimed<u64>>> {
        let mut cx = Context::from_waker(&self.waker);
        let mut out = Vec::new();
        m.poll_recv_batch(&mut cx, &mut self.waiter, 1, &mut out)
            .map(|r| {
                r.unwrap();
                out
            })
    }

    /// Wake-ups since last asked.
    fn wakes(&self) -> usize {
        self.count.0.swap(0, Ordering::SeqCst)
    }
}

/// An ack timeout of `Duration::MAX` never runs out: a member that waits
/// while another holds a message just waits (it used to panic adding the
/// timeout to an `Instant`, with the group's lock held), and gets the
/// next message.
#[tokio::test]
async fn an_ack_timeout_of_duration_max_never_runs_out() {
    let t = topic();
    let config = GroupConfig::default()
        .ack(AckMode::Manual)
        .ack_timeout(Some(Duration::MAX));
    let group = Group::new("g", vec![t.clone()], config).unwrap();
    let holder = group.join(StartFrom::Earliest).unwrap();
    let waiter = group.join(StartFrom::Earliest).unwrap();
    t.try_publish(1).unwrap();
    assert_eq!(holder.try_recv().unwrap().offset, 0);
    let r = tokio::time::timeout(Duration::from_millis(200), waiter.recv()).await;
    assert!(r.is_err(), "nothing for it, and no take-over: {r:?}");
    t.try_publish(2).unwrap();
    assert_eq!(within(LIMIT, waiter.recv()).await.unwrap().unwrap().offset, 1);
    holder.ack(0, 0).unwrap();
}
