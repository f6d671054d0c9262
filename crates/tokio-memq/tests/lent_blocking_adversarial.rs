//! Adversarial tests of lent batches (`Subscriber::recv_batch_lent`,
//! `LentBatch`, `MessageRef`) and of the blocking API (`blocking_*`,
//! `Subscriber::iter`, `PatternSubscriber::blocking_recv`).
//!
//! Lent batches: every accessor on an empty batch, after repeated and
//! out-of-order take-outs, from both ends; a batch dropped untouched (its
//! messages count as received, for a plain subscriber and for groups);
//! `lag()` and positions after a batch that read ahead; a batch outliving
//! the eviction and expiry of its messages, and a typed batch's leftovers
//! expiring before they are lent; exact lag around lent batches; a
//! receive of at most 0 on a lagged or closed subscriber (as
//! `recv_batch(0)`); acks, nacks, commits and take-overs through lent
//! messages against the group's pending count, on a partitioned topic,
//! and refused for another group's member; decode limits; holding a
//! batch on a lossless topic; lent receives cancelled under churn, or
//! woken and then dropped; close and delete while parked.
//!
//! Blocking API, from plain threads: batch publishes waiting whole for
//! room and getting contiguous offsets under contention; lossless topics
//! read only by a wildcard subscriber or a group (at `max_pending` too)
//! holding blocking publishers back; parked publishes handed their values
//! back on close; a publisher bound to a deleted topic; receives released
//! by the last publisher going away and by an ack on another thread;
//! receives of at most 0 and of `usize::MAX`; zero timeouts taking what
//! is waiting, alone and under contention; a wildcard receive woken by a
//! topic created later, ended by close, reporting lag; the iterator
//! ending on delete and after its end; every blocking call made from
//! async code panicking before it takes or publishes anything (and those
//! documented as allowed there working); many publisher and reader
//! threads with exact counts and per-publisher order.

#[path = "support/options.rs"]
mod options;
use options::{evicting, lossless};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use memq_testkit::within;
use tokio_memq::{
    AckError, Bytes, CodecErrorKind, ConsumptionMode, DecodeErrorKind, DecodeLimits, MessageQueue,
    PartitionRouting, PatternRecvError, PublishError, RecvError, SerializationFormat, Subscriber,
    TopicMessage, TopicOptions,
};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs `f` on a plain thread (no runtime) and fails the test if it does
/// not finish within [`LIMIT`]: a hang fails, it does not stall the run.
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT)
        .expect("finished in time (or panicked: see above)")
}

/// A minimal executor with no Tokio runtime: polls on this thread and
/// parks between wake-ups (for the async admin calls of plain threads).
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

fn offsets(batch: &tokio_memq::LentBatch<'_>) -> Vec<u64> {
    batch.iter().map(|m| m.offset()).collect()
}

/// Everything a message says about itself, to compare copies.
fn summary(m: &TopicMessage) -> (u64, Option<usize>, u32, String, Option<String>, Vec<u8>) {
    (
        m.offset(),
        m.partition,
        m.deliveries,
        m.topic().to_owned(),
        m.key().map(str::to_owned),
        m.payload_bytes().to_vec(),
    )
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Asserts that `f` panics with Tokio's "cannot block" message.
fn assert_refuses_to_block<R>(what: &str, f: impl FnOnce() -> R) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("{what}: returned inside async code instead of panicking as documented"),
        Err(payload) => {
            let text = panic_text(payload);
            assert!(
                text.contains("Cannot block the current thread"),
                "{what}: panicked with {text:?}"
            );
        }
    }
}

async fn pending(mq: &MessageQueue, topic: &str, group: &str) -> usize {
    mq.get_group_stats(topic, group).await.unwrap().pending
}

// ---------------------------------------------------------------------
// Lent batches
// ---------------------------------------------------------------------

/// A receive of at most 0 returns an empty batch at once for every kind
/// of subscriber, every accessor answers for it, and it takes nothing.
#[tokio::test]
async fn an_empty_lent_batch_answers_every_accessor_and_takes_nothing() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("parts", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("parts", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let plain = mq.subscriber("e").await.unwrap();
    let merged = mq.subscriber("parts").await.unwrap();
    let member = mq
        .group("e", "g")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("e").publish_batch(vec![1u32, 2, 3]).await.unwrap();
    mq.publisher("parts")
        .publish_batch(vec![1u32, 2, 3, 4])
        .await
        .unwrap();

    for sub in [&plain, &merged, &member] {
        let empty = within(LIMIT, sub.recv_batch_lent(0)).await.unwrap().unwrap();
        assert_eq!(empty.len(), 0);
        assert!(empty.is_empty());
        assert!(empty.get(0).is_none());
        assert!(empty.get(usize::MAX).is_none());
        let mut it = empty.iter();
        assert_eq!((it.len(), it.size_hint()), (0, (0, Some(0))));
        assert!(it.next().is_none());
        assert!(it.next_back().is_none());
        assert_eq!(format!("{it:?}"), "Iter { remaining: 0 }");
        assert_eq!(format!("{empty:?}"), "[]");
        assert_eq!((&empty).into_iter().count(), 0);
        assert!(empty.into_messages().is_empty());
    }
    // Nothing was taken, nothing is pending with the group.
    assert_eq!(pending(&mq, "e", "g").await, 0);
    let all = within(LIMIT, plain.recv_batch_lent(usize::MAX))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offsets(&all), [0, 1, 2]);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let b = within(LIMIT, merged.recv_batch_lent(usize::MAX))
            .await
            .unwrap()
            .unwrap();
        seen.extend(b.iter().map(|m| (m.partition().unwrap(), m.offset())));
    }
    seen.sort_unstable();
    assert_eq!(seen, [(0, 0), (0, 1), (1, 0), (1, 1)]);
    let got = within(LIMIT, member.recv_batch_lent(usize::MAX))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offsets(&got), [0, 1, 2]);
    assert_eq!(pending(&mq, "e", "g").await, 3);
}

/// `recv_batch_lent(0)` is documented as `recv_batch(0)`: on a lagged,
/// then closed, subscriber both give the same answers, and neither loses
/// the lag: every offset is received or counted missed, exactly once.
#[tokio::test]
async fn a_zero_receive_on_a_lagged_then_closed_subscriber_matches_recv_batch_and_keeps_the_lag() {
    let mq = MessageQueue::new();
    let owned = mq.subscriber_with_options("z", evicting(2)).await.unwrap();
    let lent = mq.subscriber("z").await.unwrap();
    let publisher = mq.publisher("z");
    publisher.publish_batch(vec![0u32, 1]).await.unwrap();
    for i in 2..5u32 {
        publisher.publish(i).await.unwrap();
    }
    drop((mq, publisher)); // the topic closes: 3 and 4 are retained

    let mut events_owned = vec![format!(
        "{:?}",
        within(LIMIT, owned.recv_batch(0)).await.unwrap().map(|v| v.len())
    )];
    let mut events_lent = vec![format!(
        "{:?}",
        within(LIMIT, lent.recv_batch_lent(0))
            .await
            .unwrap()
            .map(|b| b.len())
    )];
    let (mut missed, mut got) = (0, Vec::new());
    loop {
        let o = within(LIMIT, owned.recv_batch(10)).await.unwrap();
        let l = within(LIMIT, lent.recv_batch_lent(10)).await.unwrap();
        events_owned.push(format!(
            "{:?}",
            o.as_ref()
                .map(|v| v.iter().map(TopicMessage::offset).collect::<Vec<_>>())
        ));
        events_lent.push(format!("{:?}", l.as_ref().map(offsets)));
        match l {
            Ok(b) => got.extend(offsets(&b)),
            Err(RecvError::Lagged(n)) => missed += n,
            Err(RecvError::Closed) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(events_lent, events_owned);
    assert_eq!((missed, got), (3, vec![3, 4]));
    // After the end, a receive of at most 0 still agrees.
    assert_eq!(
        within(LIMIT, lent.recv_batch_lent(0))
            .await
            .unwrap()
            .map(|b| b.len()),
        within(LIMIT, owned.recv_batch(0)).await.unwrap().map(|v| v.len()),
    );
}

/// The same message taken out twice, out of order, and by `into_messages`
/// after that: equal, independent copies that share the payload and
/// outlive the batch and the subscriber.
#[tokio::test]
async fn taking_the_same_message_twice_and_out_of_order_gives_equal_shared_copies() {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    struct Order {
        id: u32,
    }
    let mq = MessageQueue::new();
    let sub = mq.subscriber("o").await.unwrap();
    let publisher = mq.publisher("o");
    let chunk = Bytes::from(vec![7u8; 4096]);
    publisher
        .publish_bytes(chunk.clone(), SerializationFormat::Raw)
        .await
        .unwrap();
    publisher.publish(Order { id: 9 }).await.unwrap();
    publisher.publish_with_headers("hdr", [("h", "v")]).await.unwrap();
    publisher.publish_with_key("k", "keyed").await.unwrap();

    let batch = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(batch.len(), 4);
    let (r3, r1) = (batch.get(3).unwrap(), batch.get(1).unwrap());
    let r3_copy = r3; // `MessageRef` is `Copy`
    let k1 = r3.to_message();
    let n1 = r1.to_message();
    let k2 = r3_copy.to_message();
    let b1 = batch.get(0).unwrap().to_message();
    let h1 = batch.get(2).unwrap().to_message();
    assert_eq!(summary(&k1), summary(&k2));
    assert_eq!(
        summary(&k1),
        (
            3,
            None,
            1,
            "o".into(),
            Some("k".into()),
            k1.payload_bytes().to_vec()
        )
    );
    assert_eq!(k1.deserialize::<String>().unwrap(), "keyed");
    // The native value is one `Arc`, in place and in every copy.
    let native = r1.native::<Order>().unwrap();
    assert!(Arc::ptr_eq(&native, &n1.native::<Order>().unwrap()));
    assert!(Arc::ptr_eq(
        &native,
        &batch.get(1).unwrap().to_message().native::<Order>().unwrap()
    ));
    assert_eq!(r1.deserialize::<Order>().unwrap(), Order { id: 9 });
    // Bytes are shared, not copied, by the ref and the copies.
    assert_eq!(batch.get(0).unwrap().bytes().unwrap().as_ptr(), chunk.as_ptr());
    assert_eq!(b1.bytes().unwrap().as_ptr(), chunk.as_ptr());
    assert_eq!(h1.headers().get_str("h"), Some("v"));
    assert_eq!(batch.get(2).unwrap().headers().get_str("h"), Some("v"));
    // The whole batch after all that: the same four, in order.
    let all = batch.into_messages();
    assert_eq!(
        all.iter().map(TopicMessage::offset).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(summary(&all[3]), summary(&k1));
    assert_eq!(summary(&all[0]), summary(&b1));
    drop(sub);
    drop(mq);
    assert_eq!(b1.payload_bytes(), &chunk[..]);
    assert_eq!(all[1].deserialize::<Order>().unwrap(), Order { id: 9 });
    assert_eq!(k2.topic(), "o");
}

/// Documented: "The messages are consumed when the batch is received ...
/// dropping the batch does not put them back". For a plain subscriber, an
/// auto-ack group and a manual group (where they stay pending).
#[tokio::test]
async fn a_dropped_untouched_lent_batch_counts_as_received_for_every_kind() {
    let mq = MessageQueue::new();
    let plain = mq.subscriber("d").await.unwrap();
    let join = |group: &'static str, manual: bool| {
        let b = mq.group("d", group).mode(ConsumptionMode::Earliest);
        let b = if manual { b.manual_ack() } else { b };
        b.join()
    };
    let (auto_a, auto_b) = (
        join("auto", false).await.unwrap(),
        join("auto", false).await.unwrap(),
    );
    let (man_a, man_b) = (join("man", true).await.unwrap(), join("man", true).await.unwrap());
    mq.publisher("d")
        .publish_batch((0..5u32).collect())
        .await
        .unwrap();

    for sub in [&plain, &auto_a, &man_a] {
        let untouched = within(LIMIT, sub.recv_batch_lent(3)).await.unwrap().unwrap();
        assert_eq!(untouched.len(), 3);
        drop(untouched);
    }
    let rest = within(LIMIT, plain.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&rest), [3, 4]);
    // The auto-ack group handed 0..3 out: the other member gets the rest.
    let rest = within(LIMIT, auto_b.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&rest), [3, 4]);
    assert!(auto_a.try_recv_now().is_err(), "nothing handed out twice");
    // The manual group: 0..3 are pending with `man_a`, not redelivered.
    assert_eq!(pending(&mq, "d", "man").await, 3);
    let rest = within(LIMIT, man_b.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&rest), [3, 4]);
    assert_eq!(pending(&mq, "d", "man").await, 5);
}

/// Alternating `next` and `next_back` meets in the middle exactly once;
/// the iterator's length counts down; `Debug` shows sizes, never content.
#[tokio::test]
async fn iterating_from_both_ends_meets_once_and_debug_never_shows_payloads() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("i").await.unwrap();
    let lines: Vec<Bytes> = (0..7).map(|i| Bytes::from(format!("secret-{i}"))).collect();
    mq.publisher("i")
        .publish_bytes_batch(lines, SerializationFormat::Raw)
        .await
        .unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(7)).await.unwrap().unwrap();
    let mut it = batch.iter();
    let mut order = Vec::new();
    for step in 0..7 {
        assert_eq!(it.len(), 7 - step);
        let m = if step % 2 == 0 { it.next() } else { it.next_back() };
        order.push(m.unwrap().offset());
    }
    assert_eq!(order, [0, 6, 1, 5, 2, 4, 3]);
    assert!(it.next().is_none() && it.next_back().is_none());
    assert_eq!(it.len(), 0);
    // `rev`, `nth` and `last` agree with `get`.
    assert_eq!(
        batch.iter().rev().map(|m| m.offset()).collect::<Vec<_>>(),
        [6, 5, 4, 3, 2, 1, 0]
    );
    assert_eq!(
        batch.iter().nth(4).map(|m| m.offset()),
        batch.get(4).map(|m| m.offset())
    );
    assert_eq!(batch.iter().last().unwrap().payload_bytes(), b"secret-6");
    let one = format!("{:?}", batch.get(2).unwrap());
    assert_eq!(
        one,
        r#"MessageRef { topic: "i", offset: 2, partition: None, key: None, payload_len: 8 }"#
    );
    let all = format!("{batch:?}");
    assert!(!all.contains("secret"), "{all}");
    assert_eq!(all.matches("MessageRef").count(), 7);
}

/// A lent batch keeps its messages readable after the topic evicted them
/// and after their TTL; expired messages are never lent; stats count both.
#[tokio::test(start_paused = true)]
async fn a_lent_batch_outlives_the_eviction_and_expiry_of_its_messages() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(10)),
        ..evicting(3)
    };
    let sub = mq.subscriber_with_options("x", options).await.unwrap();
    let publisher = mq.publisher("x");
    publisher.publish_batch(vec![0u32, 1, 2]).await.unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    // Evicts 0..3 (read already: no lag).
    publisher.publish_batch(vec![3u32, 4, 5]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await; // 3..6 expire unread
    publisher.publish(6u32).await.unwrap();
    let values: Vec<u32> = batch.iter().map(|m| m.deserialize().unwrap()).collect();
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(*batch.get(2).unwrap().native::<u32>().unwrap(), 2);
    let next = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&next), [6], "expired messages are never delivered");
    let stats = mq.get_topic_stats("x").await.unwrap();
    assert_eq!((stats.published, stats.expired), (7, 3));
    drop(next);
    drop(batch);
}

/// Lag around lent batches on an evicting topic: `Lagged(n)` with the
/// exact count before a batch, and after one, every offset is either
/// received once or counted missed once.
#[tokio::test]
async fn lag_around_a_lent_batch_accounts_for_every_offset_exactly_once() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber_with_options("l", evicting(3)).await.unwrap();
    let publisher = mq.publisher("l");
    for i in 0..5u32 {
        publisher.publish(i).await.unwrap();
    }
    assert_eq!(
        within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap_err(),
        RecvError::Lagged(2)
    );
    let first = within(LIMIT, sub.recv_batch_lent(2)).await.unwrap().unwrap();
    assert_eq!(offsets(&first), [2, 3]);
    drop(first);
    for i in 5..9u32 {
        publisher.publish(i).await.unwrap();
    }
    drop((mq, publisher));
    let (mut got, mut missed) = (vec![2u64, 3], 2u64);
    loop {
        match within(LIMIT, sub.recv_batch_lent(10)).await.unwrap() {
            Ok(b) => got.extend(offsets(&b)),
            Err(RecvError::Lagged(n)) => missed += n,
            Err(RecvError::Closed) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate: {got:?}"
    );
    assert!(got.ends_with(&[6, 7, 8]), "the retained ones: {got:?}");
    assert_eq!(got.len() as u64 + missed, 9, "received {got:?}, missed {missed}");
}

/// Acks, nacks and double settles through lent messages of a manual group
/// member on a partitioned topic, against the group's pending count; a
/// lent message is refused by another group's member that holds the same
/// offsets, and by another member of the same group.
#[tokio::test]
async fn a_partitioned_manual_group_settles_lent_messages_per_partition() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    mq.set_partition_routing("p", PartitionRouting::RoundRobin)
        .await
        .unwrap();
    let join = |group: &'static str| {
        mq.group("p", group)
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let worker = join("workers").await.unwrap();
    let auditor = join("auditors").await.unwrap();
    mq.publisher("p")
        .publish_batch((0..6u32).collect())
        .await
        .unwrap();

    let (mut batches, mut audited) = (Vec::new(), Vec::new());
    while batches.iter().map(tokio_memq::LentBatch::len).sum::<usize>() < 6 {
        batches.push(within(LIMIT, worker.recv_batch_lent(10)).await.unwrap().unwrap());
    }
    while audited.iter().map(tokio_memq::LentBatch::len).sum::<usize>() < 6 {
        audited.push(within(LIMIT, auditor.recv_batch_lent(10)).await.unwrap().unwrap());
    }
    let mut batch_items: Vec<_> = batches
        .iter()
        .flat_map(|b| b.iter())
        .map(|m| (m.partition().expect("labelled"), m.offset(), m.deliveries()))
        .collect();
    batch_items.sort_unstable();
    assert_eq!(
        batch_items,
        [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1), (2, 0, 1), (2, 1, 1)]
    );
    assert_eq!(pending(&mq, "p", "workers").await, 6);
    assert_eq!(pending(&mq, "p", "auditors").await, 6);

    let find = |p: usize, o: u64| {
        batches
            .iter()
            .flat_map(|b| b.iter())
            .find(|m| m.partition() == Some(p) && m.offset() == o)
            .unwrap()
    };
    // Another group's member holds (0, 0) too, but not this message.
    assert_eq!(
        auditor.ack(&find(0, 0)),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 0
        })
    );
    assert_eq!(pending(&mq, "p", "auditors").await, 6);
    find(0, 0).ack().unwrap();
    find(0, 1).ack().unwrap();
    assert_eq!(pending(&mq, "p", "workers").await, 4);
    assert_eq!(
        find(0, 0).ack(),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 0
        })
    );
    assert_eq!(
        worker.ack(&find(0, 1)),
        Err(AckError::NotOwned {
            partition: 0,
            offset: 1
        })
    );
    // Nacked: queued for redelivery, still pending; settled, so a second
    // nack or an ack of it is refused.
    find(1, 0).nack().unwrap();
    assert_eq!(pending(&mq, "p", "workers").await, 4);
    assert_eq!(
        find(1, 0).nack(),
        Err(AckError::NotOwned {
            partition: 1,
            offset: 0
        })
    );
    assert_eq!(
        find(1, 0).ack(),
        Err(AckError::NotOwned {
            partition: 1,
            offset: 0
        })
    );
    let again = within(LIMIT, worker.recv_batch_lent(10)).await.unwrap().unwrap();
    let got: Vec<_> = again
        .iter()
        .map(|m| (m.partition(), m.offset(), m.deliveries()))
        .collect();
    assert_eq!(got, [(Some(1), 0, 2)]);
    // Settled through the owned copy: the lent one is then refused.
    let owned = again.get(0).unwrap().to_message();
    worker.ack(&owned).unwrap();
    assert_eq!(
        again.get(0).unwrap().ack(),
        Err(AckError::NotOwned {
            partition: 1,
            offset: 0
        })
    );
    for m in batches
        .iter()
        .flat_map(|b| b.iter())
        .filter(|m| m.partition() != Some(0) && (m.partition(), m.offset()) != (Some(1), 0))
    {
        m.ack().unwrap();
    }
    assert_eq!(pending(&mq, "p", "workers").await, 0);
    assert_eq!(pending(&mq, "p", "auditors").await, 6);
    for m in audited.iter().flat_map(|b| b.iter()) {
        m.ack().unwrap();
    }
    assert_eq!(pending(&mq, "p", "auditors").await, 0);
}

/// A manual member's `commit(offset)` "acknowledges every message up to
/// `offset` this member holds, and nothing else": the lent messages below
/// it are settled (a later ack of them is refused), those above are not.
#[tokio::test]
async fn a_commit_settles_exactly_the_lent_messages_up_to_it() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("c", "g")
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (worker, other) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("c")
        .publish_batch((0..5u32).collect())
        .await
        .unwrap();
    let batch = within(LIMIT, worker.recv_batch_lent(3)).await.unwrap().unwrap();
    let held_by_other = within(LIMIT, other.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(
        (offsets(&batch), offsets(&held_by_other)),
        (vec![0, 1, 2], vec![3, 4])
    );
    assert_eq!(pending(&mq, "c", "g").await, 5);
    within(LIMIT, worker.commit(2)).await.unwrap().unwrap();
    assert_eq!(pending(&mq, "c", "g").await, 2, "only this member's, 0..=2");
    for m in &batch {
        assert_eq!(
            m.ack(),
            Err(AckError::NotOwned {
                partition: 0,
                offset: m.offset()
            })
        );
    }
    for m in &held_by_other {
        m.ack().unwrap();
    }
    assert_eq!(pending(&mq, "c", "g").await, 0);
    assert_eq!(mq.get_group_stats("c", "g").await.unwrap().committed, [Some(4)]);
}

/// `MessageRef::deserialize` reads with the subscriber's own decode
/// limits, as documented, and names the offset in its error.
#[tokio::test]
async fn lent_deserialize_uses_the_subscribers_own_decode_limits() {
    let mq = MessageQueue::new();
    let strict = mq
        .subscriber("u")
        .await
        .unwrap()
        .with_decode_limits(DecodeLimits::new().with_max_decoded_size(1024));
    let lenient = mq.subscriber("u").await.unwrap();
    let publisher = mq.publisher("u");
    publisher.publish(1u8).await.unwrap();
    publisher.publish_bincode(vec![0u8; 4096]).await.unwrap();
    let batch = within(LIMIT, strict.recv_batch_lent(10)).await.unwrap().unwrap();
    let err = batch.get(1).unwrap().deserialize::<Vec<u8>>().unwrap_err();
    assert_eq!(
        (err.kind(), err.offset()),
        (DecodeErrorKind::Codec(CodecErrorKind::TooLarge), Some(1))
    );
    assert_eq!(batch.get(0).unwrap().deserialize::<u8>().unwrap(), 1);
    let batch = within(LIMIT, lenient.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(
        batch.get(1).unwrap().deserialize::<Vec<u8>>().unwrap().len(),
        4096
    );
}

/// Lent receives cancelled over and over by short timeouts while a
/// publisher runs: every message arrives exactly once, in order, for a
/// plain subscriber; exactly once over an auto-ack group's two members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_lent_receives_lose_and_duplicate_nothing_under_churn() {
    const N: u32 = 3_000;
    let mq = MessageQueue::new();
    let plain = mq.subscriber("churn").await.unwrap();
    let join = || mq.group("churn", "g").mode(ConsumptionMode::Earliest).join();
    let (m1, m2) = (join().await.unwrap(), join().await.unwrap());
    let publisher = mq.publisher("churn");
    let producer = tokio::spawn(async move {
        for (i, chunk) in (0..N).collect::<Vec<_>>().chunks(5).enumerate() {
            publisher.publish_batch(chunk.to_vec()).await.unwrap();
            tokio::task::yield_now().await;
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    drop(mq);
    /// Polls a fresh lent receive once, or under a short timeout: when
    /// it is not ready it is dropped (after registering its waker).
    async fn once(sub: &Subscriber, round: usize) -> Option<Result<Vec<u32>, RecvError>> {
        let decode =
            |b: tokio_memq::LentBatch<'_>| b.iter().map(|m| m.deserialize::<u32>().unwrap()).collect();
        if round % 2 == 1 {
            let got = tokio::time::timeout(Duration::from_micros(200), sub.recv_batch_lent(7)).await;
            return got.ok().map(|r| r.map(decode));
        }
        let mut fut = pin!(sub.recv_batch_lent(7));
        match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
            Poll::Ready(r) => Some(r.map(decode)),
            Poll::Pending => None,
        }
    }
    async fn drain(sub: Subscriber) -> (Vec<u32>, usize) {
        let (mut got, mut cancelled) = (Vec::new(), 0);
        for round in 0.. {
            match once(&sub, round).await {
                None => {
                    cancelled += 1;
                    tokio::task::yield_now().await;
                }
                Some(Ok(values)) => got.extend(values),
                Some(Err(RecvError::Closed)) => break,
                Some(Err(e)) => panic!("unexpected {e:?}"),
            }
        }
        (got, cancelled)
    }
    let tasks = [
        tokio::spawn(drain(plain)),
        tokio::spawn(drain(m1)),
        tokio::spawn(drain(m2)),
    ];
    within(LIMIT, producer).await.unwrap().unwrap();
    let mut results = Vec::new();
    for t in tasks {
        results.push(within(LIMIT, t).await.unwrap().unwrap());
    }
    for (_, cancelled) in &results {
        assert!(
            *cancelled > 0,
            "no receive was cancelled: the test tested nothing"
        );
    }
    assert_eq!(results[0].0, (0..N).collect::<Vec<_>>(), "plain: all, in order");
    let (a, b) = (&results[1].0, &results[2].0);
    assert!(a.windows(2).all(|w| w[0] < w[1]) && b.windows(2).all(|w| w[0] < w[1]));
    let union: BTreeSet<u32> = a.iter().chain(b).copied().collect();
    assert_eq!(
        (a.len() + b.len(), union.len()),
        (N as usize, N as usize),
        "group: each once"
    );
}

/// A parked lent receive of a group member, dropped, no longer counts as
/// waiting in the group's stats; the next receive gets what came.
#[tokio::test]
async fn a_dropped_parked_lent_receive_of_a_member_leaves_no_waiter_behind() {
    let mq = MessageQueue::new();
    let member = mq
        .group("w", "g")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    {
        let mut fut = pin!(member.recv_batch_lent(10));
        let waker = Waker::noop();
        assert!(fut.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
        assert_eq!(mq.get_group_stats("w", "g").await.unwrap().waiting, 1);
    }
    assert_eq!(mq.get_group_stats("w", "g").await.unwrap().waiting, 0);
    mq.publisher("w").publish_batch(vec![1u8, 2]).await.unwrap();
    let batch = within(LIMIT, member.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&batch), [0, 1]);
    assert_eq!(pending(&mq, "w", "g").await, 2);
}

/// Parked lent receives are woken with `Closed`: a merged subscriber of a
/// partitioned topic when it is deleted, a manual group member and a
/// plain subscriber when the queue closes; and stay `Closed` after.
#[tokio::test]
async fn close_and_delete_wake_parked_lent_receives_of_every_kind() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("dp", TopicOptions::default(), 2)
        .await
        .unwrap();
    let merged = Arc::new(mq.subscriber("dp").await.unwrap());
    let member = Arc::new(
        mq.group("dg", "g")
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap(),
    );
    let plain = Arc::new(mq.subscriber("dq").await.unwrap());
    let park = |sub: Arc<Subscriber>| {
        tokio::spawn(async move {
            let first = sub.recv_batch_lent(10).await.map(|b| b.len());
            let then = sub.recv_batch_lent(10).await.map(|b| b.len());
            (first, then)
        })
    };
    let (m, g, p) = (park(merged.clone()), park(member.clone()), park(plain.clone()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!m.is_finished() && !g.is_finished() && !p.is_finished());
    assert_eq!(mq.get_group_stats("dg", "g").await.unwrap().waiting, 1);
    assert!(mq.delete_topic("dp").await);
    assert_eq!(
        within(LIMIT, m).await.unwrap().unwrap(),
        (Err(RecvError::Closed), Err(RecvError::Closed))
    );
    assert!(!g.is_finished() && !p.is_finished(), "other topics untouched");
    mq.close();
    assert_eq!(
        within(LIMIT, g).await.unwrap().unwrap(),
        (Err(RecvError::Closed), Err(RecvError::Closed))
    );
    assert_eq!(
        within(LIMIT, p).await.unwrap().unwrap(),
        (Err(RecvError::Closed), Err(RecvError::Closed))
    );
}

// ---------------------------------------------------------------------
// Blocking API
// ---------------------------------------------------------------------

/// A blocking batch publish that does not fit waits whole (nothing of it
/// is visible), and a reader on another thread releases it; a batch
/// larger than the topic is `TooLarge` at once, not a hang.
#[test]
fn a_blocking_batch_publish_waits_whole_for_room_and_a_reader_thread_releases_it() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("b", lossless(4))).unwrap();
        let sub = mq.blocking_subscriber("b", ConsumptionMode::Earliest).unwrap();
        let publisher = mq.publisher("b");
        assert_eq!(publisher.blocking_publish_batch(vec![0u32, 1, 2]).unwrap(), 0..3);
        assert_eq!(
            publisher.blocking_publish_batch(vec![0u32; 5]),
            Err(PublishError::TooLarge(vec![0u32; 5]))
        );
        let (tx, rx) = mpsc::channel();
        let p = publisher.clone();
        thread::spawn(move || {
            let _ = tx.send(p.blocking_publish_batch(vec![3u32, 4, 5]));
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "waits for room"
        );
        assert_eq!(
            block_on(mq.get_topic_stats("b")).unwrap().published,
            3,
            "nothing of it is in"
        );
        let mut got = Vec::new();
        while got.len() < 6 {
            let m = sub.blocking_recv().unwrap();
            got.push((m.offset(), m.deserialize::<u32>().unwrap()));
        }
        assert_eq!(got, (0..6u32).map(|i| (u64::from(i), i)).collect::<Vec<_>>());
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Ok(3..6));
    });
}

/// Blocking publishes parked on a full lossless topic hand their values
/// back, whole, when the queue closes.
#[test]
fn parked_blocking_publishes_get_their_values_back_when_the_queue_closes() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("f", lossless(1))).unwrap();
        let _reader = mq.blocking_subscriber("f", ConsumptionMode::Earliest).unwrap();
        let publisher = mq.publisher("f");
        publisher.blocking_publish(0u8).unwrap();
        let (p1, p2, p3) = (publisher.clone(), publisher.clone(), publisher.clone());
        let batch = thread::spawn(move || p1.blocking_publish_batch(vec![1u8]));
        let bytes = thread::spawn(move || p2.blocking_publish_bytes(vec![2u8, 2], SerializationFormat::Raw));
        let one = thread::spawn(move || p3.blocking_publish(String::from("three")));
        thread::sleep(Duration::from_millis(50));
        assert!(!batch.is_finished() && !bytes.is_finished() && !one.is_finished());
        mq.close();
        assert_eq!(batch.join().unwrap(), Err(PublishError::Closed(vec![1u8])));
        assert_eq!(
            bytes.join().unwrap(),
            Err(PublishError::Closed(Bytes::from(vec![2u8, 2])))
        );
        assert_eq!(
            one.join().unwrap(),
            Err(PublishError::Closed(String::from("three")))
        );
    });
}

/// A publisher bound to a deleted topic is "gone for good": every
/// blocking publish hands its value back at once, while a new publisher
/// of the name makes and fills a new topic.
#[test]
fn a_publisher_bound_to_a_deleted_topic_hands_values_back_from_every_blocking_call() {
    bounded(|| {
        let mq = MessageQueue::new();
        let old = mq.publisher("g");
        assert_eq!(old.blocking_publish(0u8), Ok(0));
        assert!(block_on(mq.delete_topic("g")));
        let sub = mq.blocking_subscriber("g", ConsumptionMode::Earliest).unwrap();
        assert_eq!(old.blocking_publish(1u8), Err(PublishError::Closed(1u8)));
        assert_eq!(
            old.blocking_publish_batch(vec![1u8, 2]),
            Err(PublishError::Closed(vec![1u8, 2]))
        );
        assert_eq!(
            old.blocking_publish_bytes(vec![3u8], SerializationFormat::Raw),
            Err(PublishError::Closed(Bytes::from(vec![3u8])))
        );
        assert_eq!(mq.publisher("g").blocking_publish(9u8), Ok(0));
        let m = sub.blocking_recv().unwrap();
        assert_eq!((m.offset(), m.deserialize::<u8>().unwrap()), (0, 9));
        assert!(sub
            .blocking_recv_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none());
        assert_eq!(old.blocking_publish(4u8), Err(PublishError::Closed(4u8)));
    });
}

/// Threads blocked in `blocking_recv`, `blocking_recv_timeout` (long) and
/// `blocking_recv_batch` get what is retained, then `Closed` (not a
/// timeout's `Ok(None)`), once the queue handle and the last publisher
/// are dropped.
#[test]
fn the_last_publisher_going_away_releases_every_blocked_receive() {
    bounded(|| {
        let mq = MessageQueue::new();
        let subs: Vec<Subscriber> = (0..3)
            .map(|_| mq.blocking_subscriber("r", ConsumptionMode::Latest).unwrap())
            .collect();
        let mut subs = subs.into_iter();
        let (a, b, c) = (subs.next().unwrap(), subs.next().unwrap(), subs.next().unwrap());
        let one = thread::spawn(move || {
            (
                a.blocking_recv().map(|m| m.offset()),
                a.blocking_recv().map(|m| m.offset()),
            )
        });
        let timed = thread::spawn(move || {
            let started = Instant::now();
            let first = b
                .blocking_recv_timeout(Duration::from_secs(60))
                .map(|m| m.map(|m| m.offset()));
            let then = b
                .blocking_recv_timeout(Duration::from_secs(60))
                .map(|m| m.map(|m| m.offset()));
            (first, then, started.elapsed())
        });
        let batch = thread::spawn(move || {
            let first = c.blocking_recv_batch(10).map(|v| v.len());
            let then = c.blocking_recv_batch(10).map(|v| v.len());
            (first, then)
        });
        thread::sleep(Duration::from_millis(50));
        let publisher = mq.publisher("r");
        drop(mq);
        thread::sleep(Duration::from_millis(20));
        assert!(!one.is_finished() && !timed.is_finished() && !batch.is_finished());
        publisher.blocking_publish("last").unwrap();
        drop(publisher);
        assert_eq!(one.join().unwrap(), (Ok(0), Err(RecvError::Closed)));
        let (first, then, took) = timed.join().unwrap();
        assert_eq!((first, then), (Ok(Some(0)), Err(RecvError::Closed)));
        assert!(took < LIMIT, "{took:?}");
        assert_eq!(batch.join().unwrap(), (Ok(1), Err(RecvError::Closed)));
    });
}

/// `blocking_recv_batch(0)` returns an empty batch at once, as
/// `recv_batch(0)` does, and takes nothing.
#[test]
fn a_blocking_batch_of_at_most_zero_returns_at_once_and_takes_nothing() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("z", ConsumptionMode::Latest).unwrap();
        let member = mq
            .group("z", "g")
            .mode(ConsumptionMode::Earliest)
            .blocking_join()
            .unwrap();
        assert_eq!(sub.blocking_recv_batch(0).map(|v| v.len()), Ok(0));
        assert_eq!(member.blocking_recv_batch(0).map(|v| v.len()), Ok(0));
        mq.publisher("z").blocking_publish(5u8).unwrap();
        assert_eq!(sub.blocking_recv_batch(0).map(|v| v.len()), Ok(0));
        assert_eq!(member.blocking_recv_batch(0).map(|v| v.len()), Ok(0));
        assert_eq!(sub.blocking_recv().unwrap().offset(), 0);
        assert_eq!(member.blocking_recv().unwrap().offset(), 0);
    });
}

/// "A timeout, even of zero, says nothing was there only when nothing
/// was": `blocking_recv_timeout(ZERO)` takes every waiting message, in
/// order, for a plain, a merged partitioned, an auto-ack member and a
/// manual member; a message held by another member is not taken (and not
/// lost).
#[test]
fn zero_timeouts_take_what_is_waiting_for_every_kind_of_subscriber() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_partitioned_topic("zp", TopicOptions::default(), 2)).unwrap();
        block_on(mq.set_partition_routing("zp", PartitionRouting::RoundRobin)).unwrap();
        let plain = mq.blocking_subscriber("zt", ConsumptionMode::Earliest).unwrap();
        let merged = mq.blocking_subscriber("zp", ConsumptionMode::Earliest).unwrap();
        let join = |group: &str, manual: bool| {
            let b = mq.group("zt", group).mode(ConsumptionMode::Earliest);
            let b = match manual {
                true => b.manual_ack().ack_timeout(Duration::from_millis(300)),
                false => b,
            };
            b.blocking_join().unwrap()
        };
        let (auto, manual, idle) = (join("auto", false), join("man", true), join("man", true));
        mq.publisher("zt")
            .blocking_publish_batch(vec![0u8, 1, 2])
            .unwrap();
        mq.publisher("zp")
            .blocking_publish_batch(vec![0u8, 1, 2])
            .unwrap();
        let take_all = |sub: &Subscriber| {
            let mut got = Vec::new();
            while let Some(m) = sub.blocking_recv_timeout(Duration::ZERO).unwrap() {
                got.push(m.deserialize::<u8>().unwrap());
            }
            got
        };
        assert_eq!(take_all(&plain), [0, 1, 2]);
        let mut m = take_all(&merged);
        m.sort_unstable();
        assert_eq!(m, [0, 1, 2]);
        assert_eq!(take_all(&auto), [0, 1, 2]);
        // `idle` takes one and holds it; `manual` gets the other two.
        let held = idle.blocking_recv().unwrap();
        assert_eq!(held.offset(), 0);
        assert_eq!(take_all(&manual), [1, 2]);
        assert!(manual
            .blocking_recv_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none());
        // After `idle`'s ack timeout the held one comes to `manual`.
        let again = manual
            .blocking_recv_timeout(LIMIT)
            .unwrap()
            .expect("redelivered after the ack timeout");
        assert_eq!((again.offset(), again.deliveries), (0, 2));
    });
}

/// A wildcard subscriber's blocking receive, parked on a plain thread
/// before any topic matches, is woken by a topic created later; another,
/// parked, is ended by close with `Closed` after what is retained.
#[test]
fn a_blocking_wildcard_receive_is_woken_by_a_later_topic_and_ended_by_close() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.subscribe_pattern("jobs.*").unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let first = sub.blocking_recv().map(|m| (m.topic().to_owned(), m.offset()));
            let _ = tx.send(());
            let mut rest = Vec::new();
            loop {
                match sub.blocking_recv() {
                    Ok(m) => rest.push((m.topic().to_owned(), m.offset())),
                    Err(e) => return (first, rest, e),
                }
            }
        });
        thread::sleep(Duration::from_millis(50));
        mq.publisher("other").blocking_publish(0u8).unwrap();
        mq.publisher("jobs.a.b").blocking_publish(0u8).unwrap();
        mq.publisher("jobs.a").blocking_publish(1u8).unwrap();
        rx.recv_timeout(LIMIT).unwrap();
        mq.publisher("jobs.b").blocking_publish(2u8).unwrap();
        thread::sleep(Duration::from_millis(20));
        mq.close();
        let (first, rest, end) = waiter.join().unwrap();
        assert_eq!(first, Ok(("jobs.a".to_owned(), 0)));
        assert_eq!(rest, [("jobs.b".to_owned(), 0)]);
        assert_eq!(end, PatternRecvError::Closed);
    });
}

/// `Subscriber::iter` on a plain thread yields what was retained and then
/// ends when the topic is deleted while it waits.
#[test]
fn a_blocking_iterator_ends_after_the_retained_when_its_topic_is_deleted() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("it", ConsumptionMode::Latest).unwrap();
        let reader = thread::spawn(move || {
            sub.iter()
                .map(|m| m.map(|m| m.deserialize::<u32>().unwrap()))
                .collect::<Vec<_>>()
        });
        thread::sleep(Duration::from_millis(30));
        mq.publisher("it")
            .blocking_publish_batch(vec![1u32, 2, 3])
            .unwrap();
        assert!(block_on(mq.delete_topic("it")));
        assert_eq!(reader.join().unwrap(), [Ok(1), Ok(2), Ok(3)]);
    });
}

/// Every blocking call made from async code panics as documented, before
/// it takes or publishes anything; the calls documented as allowed there
/// (`blocking_subscriber`, `blocking_join`) work; the handles work after.
#[tokio::test]
async fn every_blocking_call_inside_async_code_panics_and_takes_nothing() {
    let mq = MessageQueue::new();
    let sub = mq.blocking_subscriber("a", ConsumptionMode::Earliest).unwrap();
    let member = mq
        .group("a", "g")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .blocking_join()
        .unwrap();
    let wild = mq.subscribe_pattern("a").unwrap();
    let publisher = mq.publisher("a");
    publisher.publish(7u8).await.unwrap();

    assert_refuses_to_block("blocking_recv_timeout", || {
        sub.blocking_recv_timeout(Duration::ZERO)
    });
    assert_refuses_to_block("blocking_recv_batch", || sub.blocking_recv_batch(10));
    assert_refuses_to_block("blocking_recv_batch(0)", || sub.blocking_recv_batch(0));
    assert_refuses_to_block("iter().next()", || sub.iter().next());
    assert_refuses_to_block("member blocking_recv", || member.blocking_recv());
    assert_refuses_to_block("pattern blocking_recv", || wild.blocking_recv());
    assert_refuses_to_block("blocking_publish_batch", || {
        publisher.blocking_publish_batch(vec![1u8])
    });
    assert_refuses_to_block("blocking_publish_bytes", || {
        publisher.blocking_publish_bytes(vec![1u8], SerializationFormat::Raw)
    });
    assert_eq!(mq.get_topic_stats("a").await.unwrap().published, 1);
    assert_eq!(pending(&mq, "a", "g").await, 0);
    assert_eq!(sub.recv().await.unwrap().offset(), 0);
    assert_eq!(member.recv().await.unwrap().offset(), 0);
    assert_eq!(wild.recv().await.unwrap().offset(), 0);
}

/// On a multi-threaded runtime's worker the same panic; inside
/// `block_in_place` (where Tokio's own blocking calls may block) a
/// blocking receive and publish work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_calls_panic_on_a_worker_but_work_inside_block_in_place() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("bp").await.unwrap();
    let publisher = mq.publisher("bp");
    assert_refuses_to_block("blocking_publish on a worker", || publisher.blocking_publish(0u8));
    assert_refuses_to_block("blocking_recv on a worker", || sub.blocking_recv());
    let got = tokio::task::block_in_place(|| {
        let offset = publisher.blocking_publish(1u8).unwrap();
        (offset, sub.blocking_recv().unwrap().deserialize::<u8>().unwrap())
    });
    assert_eq!(got, (0, 1));
}

/// Four publisher threads, two plain reader threads and three members of
/// an auto-ack group, all blocking, over a small lossless topic: each
/// reader gets all messages with every publisher's in order; the group
/// gets each exactly once.
#[test]
fn many_blocking_publishers_and_readers_move_everything_exactly_once() {
    const PUBLISHERS: u32 = 4;
    const EACH: u32 = 500;
    const TOTAL: usize = (PUBLISHERS * EACH) as usize;
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("m", lossless(8))).unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let sub = mq.blocking_subscriber("m", ConsumptionMode::Earliest).unwrap();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match sub.blocking_recv_batch(16) {
                            Ok(batch) => {
                                got.extend(batch.iter().map(|m| m.deserialize::<(u32, u32)>().unwrap()))
                            }
                            Err(RecvError::Closed) => return got,
                            Err(e) => panic!("reader: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        let members: Vec<_> = (0..3)
            .map(|_| {
                let member = mq
                    .group("m", "g")
                    .mode(ConsumptionMode::Earliest)
                    .blocking_join()
                    .unwrap();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match member.blocking_recv() {
                            Ok(m) => got.push(m.deserialize::<(u32, u32)>().unwrap()),
                            Err(RecvError::Closed) => return got,
                            Err(e) => panic!("member: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let publisher = mq.publisher("m");
                thread::spawn(move || {
                    for i in 0..EACH {
                        publisher.blocking_publish((p, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(mq);
        for p in publishers {
            p.join().unwrap();
        }
        for r in readers {
            let got = r.join().unwrap();
            assert_eq!(got.len(), TOTAL);
            let mut per: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for (p, i) in got {
                per.entry(p).or_default().push(i);
            }
            for (p, seq) in per {
                assert_eq!(seq, (0..EACH).collect::<Vec<_>>(), "publisher {p}");
            }
        }
        let mut counted = 0;
        let mut all = BTreeSet::new();
        for m in members {
            let got = m.join().unwrap();
            counted += got.len();
            let mut last: BTreeMap<u32, u32> = BTreeMap::new();
            for (p, i) in got {
                if let Some(prev) = last.insert(p, i) {
                    assert!(prev < i, "publisher {p}: {prev} then {i} for one member");
                }
                assert!(all.insert((p, i)), "({p}, {i}) twice");
            }
        }
        assert_eq!((counted, all.len()), (TOTAL, TOTAL));
    });
}

/// One member's parked lent receive, woken for a message and then dropped
/// without being polled again, must not strand the message: another
/// parked member gets it ("a group ... never loses" a wake-up).
#[tokio::test]
async fn a_woken_then_dropped_lent_receive_passes_the_message_to_another_member() {
    let mq = MessageQueue::new();
    let join = || mq.group("wk", "g").mode(ConsumptionMode::Earliest).join();
    let (a, b) = (join().await.unwrap(), Arc::new(join().await.unwrap()));
    let mut fut_a = Box::pin(a.recv_batch_lent(10));
    assert!(fut_a
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending());
    let b2 = b.clone();
    let waiting_b = tokio::spawn(async move { b2.recv_batch_lent(10).await.map(|batch| offsets(&batch)) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(mq.get_group_stats("wk", "g").await.unwrap().waiting, 2);
    mq.publisher("wk").publish(1u8).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(fut_a);
    let got = within(LIMIT, waiting_b).await;
    match got {
        Ok(r) => assert_eq!(r.unwrap(), Ok(vec![0])),
        Err(_) => panic!("b was never woken: the message is stranded"),
    }
    assert!(a.try_recv_now().is_err());
}

/// A manual member's typed batch stops at a payload it cannot decode and
/// keeps the rest pending to the member; a lent batch hands them out, and
/// acks through it settle them: nothing stays pending.
#[tokio::test]
async fn what_a_manual_typed_batch_kept_is_lent_and_acked_to_zero_pending() {
    let mq = MessageQueue::new();
    let member = mq
        .group("ty", "g")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    let publisher = mq.publisher("ty");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("bad").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    let first = within(LIMIT, member.recv_batch_typed::<u32>(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, [1]);
    assert_eq!(pending(&mq, "ty", "g").await, 3);
    within(LIMIT, member.commit(0)).await.unwrap().unwrap();
    assert_eq!(pending(&mq, "ty", "g").await, 2);
    let batch = within(LIMIT, member.recv_batch_lent(10)).await.unwrap().unwrap();
    let got: Vec<_> = batch
        .iter()
        .map(|m| (m.offset(), m.deliveries(), m.partition()))
        .collect();
    assert_eq!(got, [(1, 1, None), (2, 1, None)]);
    assert_eq!(batch.get(0).unwrap().deserialize::<String>().unwrap(), "bad");
    for m in &batch {
        m.ack().unwrap();
    }
    assert_eq!(pending(&mq, "ty", "g").await, 0);
    assert_eq!(mq.get_group_stats("ty", "g").await.unwrap().committed, [Some(2)]);
}

/// Lent messages a manual member held past its ack timeout are taken over
/// by another member: the first member's lent refs then settle nothing
/// (`NotOwned`), and the new holder's acks bring pending to 0.
#[tokio::test(start_paused = true)]
async fn lent_messages_taken_over_after_the_ack_timeout_are_no_longer_the_first_members() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("to", "g")
            .manual_ack()
            .ack_timeout(Duration::from_secs(30))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (slow, fast) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("to").publish_batch(vec![1u8, 2]).await.unwrap();
    let held = within(LIMIT, slow.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&held), [0, 1]);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let mut taken = Vec::new();
    while taken.len() < 2 {
        let b = within(LIMIT, fast.recv_batch_lent(10)).await.unwrap().unwrap();
        for m in &b {
            taken.push((m.offset(), m.deliveries()));
            // `slow`'s lent ref of the same message is not slow's any more.
            let stale = held.get(m.offset() as usize).unwrap();
            assert_eq!(
                stale.ack(),
                Err(AckError::NotOwned {
                    partition: 0,
                    offset: m.offset()
                })
            );
            assert_eq!(pending(&mq, "to", "g").await, 3 - taken.len());
            m.ack().unwrap();
        }
    }
    assert_eq!(taken, [(0, 2), (1, 2)]);
    assert_eq!(pending(&mq, "to", "g").await, 0);
}

/// Lag of a group member on an evicting topic, through lent batches:
/// `Lagged(n)` with the exact count, then the retained messages.
#[tokio::test]
async fn a_group_members_lent_receive_reports_the_exact_lag() {
    let mq = MessageQueue::new();
    mq.create_topic("gl", evicting(3)).await.unwrap();
    let member = mq
        .group("gl", "g")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("gl")
        .publish_batch((0..3u32).collect())
        .await
        .unwrap();
    for i in 3..5u32 {
        mq.publisher("gl").publish(i).await.unwrap();
    }
    assert_eq!(
        within(LIMIT, member.recv_batch_lent(10))
            .await
            .unwrap()
            .unwrap_err(),
        RecvError::Lagged(2)
    );
    let batch = within(LIMIT, member.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&batch), [2, 3, 4]);
}

/// A lossless topic read only by a wildcard subscriber: "a full topic
/// makes publishers wait until every live subscriber has read the oldest
/// message; nothing is lost". A blocking publisher is held back and the
/// wildcard reader on another thread gets every message, no lag.
#[test]
fn a_lossless_topic_read_only_by_a_wildcard_subscriber_loses_nothing() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("lw.a", lossless(2))).unwrap();
        let sub = mq.subscribe_pattern("lw.*").unwrap();
        let publisher = mq.publisher("lw.a");
        let producer = thread::spawn(move || {
            for i in 0..200u32 {
                publisher.blocking_publish(i).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 200 {
            match sub.blocking_recv() {
                Ok(m) => got.push((m.offset(), m.deserialize::<u32>().unwrap())),
                Err(e) => panic!("after {} messages: {e:?}", got.len()),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..200u32).map(|i| (u64::from(i), i)).collect::<Vec<_>>());
    });
}

/// A lossless topic read only by an automatic group, all blocking: the
/// group holds the publisher back; every message arrives once, in order.
#[test]
fn a_lossless_topic_read_only_by_a_group_holds_a_blocking_publisher_back() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("lg", lossless(2))).unwrap();
        let member = mq
            .group("lg", "g")
            .mode(ConsumptionMode::Earliest)
            .blocking_join()
            .unwrap();
        let publisher = mq.publisher("lg");
        let producer = thread::spawn(move || {
            for i in 0..200u32 {
                publisher.blocking_publish(i).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 200 {
            match member.blocking_recv_batch(7) {
                Ok(b) => got.extend(b.iter().map(|m| m.deserialize::<u32>().unwrap())),
                Err(e) => panic!("after {} messages: {e:?}", got.len()),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..200u32).collect::<Vec<_>>());
    });
}

/// Blocking batch publishes from several threads through backpressure:
/// every batch gets a contiguous run of offsets, the runs tile the topic,
/// and a reader sees each batch whole at its offsets.
#[test]
fn concurrent_blocking_batches_get_contiguous_runs_through_backpressure() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("cb", lossless(8))).unwrap();
        let sub = mq.blocking_subscriber("cb", ConsumptionMode::Earliest).unwrap();
        let producers: Vec<_> = (0..4u32)
            .map(|p| {
                let publisher = mq.publisher("cb");
                thread::spawn(move || {
                    (0..100u32)
                        .map(|b| {
                            let range = publisher
                                .blocking_publish_batch(vec![(p, b, 0u8), (p, b, 1), (p, b, 2)])
                                .unwrap();
                            (range, (p, b))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut by_offset = BTreeMap::new();
        while by_offset.len() < 1_200 {
            for m in sub.blocking_recv_batch(64).unwrap() {
                assert!(by_offset
                    .insert(m.offset(), m.deserialize::<(u32, u32, u8)>().unwrap())
                    .is_none());
            }
        }
        let mut covered = 0;
        for p in producers {
            for (range, (pp, b)) in p.join().unwrap() {
                assert_eq!(range.end - range.start, 3);
                for (k, off) in range.enumerate() {
                    assert_eq!(by_offset[&off], (pp, b, k as u8));
                    covered += 1;
                }
            }
        }
        assert_eq!(covered, 1_200);
        assert_eq!(
            by_offset.keys().copied().collect::<Vec<_>>(),
            (0..1_200).collect::<Vec<_>>()
        );
    });
}

/// A wildcard subscriber's blocking receive reports an evicting topic's
/// lag with its name and exact count, then the retained messages.
#[test]
fn a_blocking_wildcard_receive_reports_exact_lag_by_topic() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.subscribe_pattern("wl.>").unwrap();
        block_on(mq.create_topic("wl.x.y", evicting(2))).unwrap();
        mq.publisher("wl.x.y")
            .blocking_publish_batch(vec![0u8, 1])
            .unwrap();
        for i in 2..6u8 {
            mq.publisher("wl.x.y").blocking_publish(i).unwrap();
        }
        assert_eq!(
            sub.blocking_recv().unwrap_err(),
            PatternRecvError::Lagged {
                topic: Arc::from("wl.x.y"),
                count: 4
            }
        );
        let rest: Vec<_> = (0..2).map(|_| sub.blocking_recv().unwrap().offset()).collect();
        assert_eq!(rest, [4, 5]);
    });
}

/// After the blocking iterator ended (topic closed and drained), asking
/// it again must not block for ever: the topic can give nothing more.
#[test]
fn a_blocking_iterator_asked_again_after_its_end_does_not_hang() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("ie", ConsumptionMode::Latest).unwrap();
        mq.publisher("ie").blocking_publish(1u8).unwrap();
        mq.close();
        let mut it = sub.iter();
        assert_eq!(it.next().map(|m| m.unwrap().offset()), Some(0));
        assert!(it.next().is_none());
        let again = it.next();
        assert!(matches!(again, None | Some(Err(RecvError::Closed))), "{again:?}");
        assert_eq!(sub.blocking_recv().unwrap_err(), RecvError::Closed);
    });
}

/// What a typed batch put aside is dropped at the topic's TTL "as the
/// topic would have dropped them": a lent batch after the TTL never hands
/// out the expired leftovers, only what came since.
#[tokio::test(start_paused = true)]
async fn leftovers_of_a_typed_batch_past_their_ttl_are_never_lent() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        message_ttl: Some(Duration::from_secs(10)),
        ..TopicOptions::default()
    };
    let sub = mq.subscriber_with_options("tt", options).await.unwrap();
    let publisher = mq.publisher("tt");
    publisher.publish(1u32).await.unwrap();
    publisher.publish("bad").await.unwrap();
    publisher.publish(3u32).await.unwrap();
    let first = within(LIMIT, sub.recv_batch_typed::<u32>(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, [1]);
    tokio::time::sleep(Duration::from_secs(11)).await;
    publisher.publish(4u32).await.unwrap();
    let batch = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&batch), [3], "1 and 2 expired while put aside");
}

/// A lent batch's messages count as read the moment it is received: on a
/// lossless topic, holding the batch does not hold the publishers back,
/// and the batch still reads the old values after they are overwritten.
#[tokio::test]
async fn holding_a_lent_batch_does_not_hold_back_a_lossless_topic() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber_with_options("hb", lossless(2)).await.unwrap();
    let publisher = mq.publisher("hb");
    assert_eq!(publisher.try_publish(0u32), Ok(0));
    assert_eq!(publisher.try_publish(1u32), Ok(1));
    assert_eq!(publisher.try_publish(2u32), Err(PublishError::Full(2)));
    let batch = within(LIMIT, sub.recv_batch_lent(2)).await.unwrap().unwrap();
    assert_eq!(publisher.try_publish(2u32), Ok(2));
    assert_eq!(publisher.try_publish(3u32), Ok(3));
    let held: Vec<u32> = batch.iter().map(|m| m.deserialize().unwrap()).collect();
    assert_eq!(held, [0, 1]);
    let next = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
    assert_eq!(offsets(&next), [2, 3]);
    drop(next);
    drop(batch);
}

/// A manual group at `max_pending` hands out nothing new: a member blocked
/// on a plain thread is released by an ack, through a lent message, made
/// on another thread (with no runtime anywhere); `blocking_recv_timeout`
/// at the limit takes nothing.
#[test]
fn an_ack_through_a_lent_message_releases_a_member_blocked_at_max_pending() {
    bounded(|| {
        let mq = MessageQueue::new();
        let join = || {
            mq.group("mp", "g")
                .manual_ack()
                .max_pending(1)
                .mode(ConsumptionMode::Earliest)
                .blocking_join()
                .unwrap()
        };
        let (holder, waiter) = (join(), join());
        mq.publisher("mp").blocking_publish_batch(vec![0u8, 1]).unwrap();
        let batch = block_on(holder.recv_batch_lent(10)).unwrap();
        assert_eq!(offsets(&batch), [0]);
        assert!(waiter
            .blocking_recv_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none());
        let (tx, rx) = mpsc::channel();
        let blocked = thread::spawn(move || {
            let got = waiter.blocking_recv().map(|m| (m.offset(), m.deliveries));
            let _ = tx.send(());
            got
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "held at max_pending"
        );
        batch.get(0).unwrap().ack().unwrap();
        rx.recv_timeout(LIMIT).expect("released by the ack");
        assert_eq!(blocked.join().unwrap(), Ok((1, 1)));
    });
}

/// "At the limit [max_pending] members receive no new messages until one
/// is acknowledged, so ... a topic with `lru_enabled: false` holds its
/// publishers back": a blocking publisher is held back while the only
/// reader, a manual member, holds its message; acks let everything
/// through, once and in order.
#[test]
fn a_manual_group_at_max_pending_holds_a_blocking_publisher_back() {
    bounded(|| {
        let mq = MessageQueue::new();
        block_on(mq.create_topic("hp", lossless(2))).unwrap();
        let member = mq
            .group("hp", "g")
            .manual_ack()
            .max_pending(1)
            .mode(ConsumptionMode::Earliest)
            .blocking_join()
            .unwrap();
        let publisher = mq.publisher("hp");
        let producer = thread::spawn(move || {
            for i in 0..10u32 {
                publisher.blocking_publish(i).unwrap();
            }
        });
        let first = member.blocking_recv().unwrap();
        thread::sleep(Duration::from_millis(100));
        let published = block_on(mq.get_topic_stats("hp")).unwrap().published;
        assert!(published < 10, "not held back: {published} published");
        assert!(!producer.is_finished());
        member.ack(&first).unwrap();
        let mut got = vec![first.deserialize::<u32>().unwrap()];
        while got.len() < 10 {
            let m = member.blocking_recv().unwrap();
            got.push(m.deserialize::<u32>().unwrap());
            member.ack(&m).unwrap();
        }
        producer.join().unwrap();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(block_on(mq.get_group_stats("hp", "g")).unwrap().pending, 0);
    });
}

/// `blocking_recv_batch(usize::MAX)` and a lent batch of `usize::MAX`
/// polled outside any runtime return what is there (no allocation of
/// `max`, no wait for more).
#[test]
fn a_blocking_batch_of_huge_max_returns_what_is_there() {
    bounded(|| {
        let mq = MessageQueue::new();
        let sub = mq.blocking_subscriber("hm", ConsumptionMode::Latest).unwrap();
        mq.publisher("hm")
            .blocking_publish_batch(vec![1u8, 2, 3])
            .unwrap();
        let got = sub.blocking_recv_batch(usize::MAX).unwrap();
        assert_eq!(
            got.iter().map(TopicMessage::offset).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        mq.publisher("hm").blocking_publish_batch(vec![4u8, 5]).unwrap();
        // A lent batch outside any runtime, as well.
        let lent = block_on(sub.recv_batch_lent(usize::MAX)).unwrap();
        assert_eq!(offsets(&lent), [3, 4]);
    });
}

/// After a lent batch (which may read ahead), a subscriber's `lag()`
/// counts "what it will still receive" and `current_offset()` is "the
/// offset of the next message this subscriber will receive": exactly the
/// messages after the batch, whether or not the batch was looked at; the
/// same for a merged subscriber of a partitioned topic.
#[tokio::test]
async fn lag_and_position_after_a_lent_batch_count_exactly_what_is_left() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("lp").await.unwrap();
    mq.publisher("lp")
        .publish_batch((0..10u32).collect())
        .await
        .unwrap();
    assert_eq!(sub.lag(), 10);
    let batch = within(LIMIT, sub.recv_batch_lent(3)).await.unwrap().unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!((sub.lag(), sub.current_offset().await), (7, Some(3)));
    drop(batch);
    assert_eq!((sub.lag(), sub.current_offset().await), (7, Some(3)));
    let batch = within(LIMIT, sub.recv_batch_lent(0)).await.unwrap().unwrap();
    drop(batch);
    assert_eq!(sub.lag(), 7);

    mq.create_partitioned_topic("lpp", TopicOptions::default(), 2)
        .await
        .unwrap();
    mq.set_partition_routing("lpp", PartitionRouting::Fixed(1))
        .await
        .unwrap();
    let merged = mq.subscriber("lpp").await.unwrap();
    mq.publisher("lpp")
        .publish_batch((0..10u32).collect())
        .await
        .unwrap();
    let batch = within(LIMIT, merged.recv_batch_lent(4)).await.unwrap().unwrap();
    assert_eq!(offsets(&batch), [0, 1, 2, 3]);
    assert_eq!(merged.lag(), 6);
    assert_eq!(merged.positions(), [(0, 0), (1, 4)]);
}

/// Three member threads of one group polling with zero timeouts while a
/// publisher thread publishes (so the group's lock is often held by
/// another thread when a timeout runs out): every message is received by
/// exactly one of them, none is lost to a timeout.
#[test]
fn concurrent_zero_timeout_receives_of_a_group_lose_and_duplicate_nothing() {
    const N: usize = 3_000;
    bounded(|| {
        let mq = MessageQueue::new();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let members: Vec<_> = (0..3)
            .map(|_| {
                let member = mq
                    .group("zc", "g")
                    .mode(ConsumptionMode::Earliest)
                    .blocking_join()
                    .unwrap();
                let done = done.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    while done.load(std::sync::atomic::Ordering::SeqCst) < N {
                        if let Some(m) = member.blocking_recv_timeout(Duration::ZERO).unwrap() {
                            got.push(m.offset());
                            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        } else {
                            thread::yield_now();
                        }
                    }
                    got
                })
            })
            .collect();
        let publisher = mq.publisher("zc");
        for chunk in (0..N as u32).collect::<Vec<_>>().chunks(3) {
            publisher.blocking_publish_batch(chunk.to_vec()).unwrap();
        }
        let mut all = BTreeSet::new();
        let mut total = 0;
        for m in members {
            let got = m.join().unwrap();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "one member's are in order");
            total += got.len();
            all.extend(got);
        }
        assert_eq!((total, all.len()), (N, N));
    });
}
