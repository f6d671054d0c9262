//! Deleting and creating topics while other tasks publish and delete:
//! races a probing harness found, each between a check of a topic and
//! the use of what the name held a moment later. Each test repeats its
//! race a bounded number of times (more under `cargo xtask stress`); the
//! races were hit within a few thousand rounds, not every run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memq_testkit::stress_scale;
use tokio_memq::{MessageQueue, PublishErrorKind, TopicError, TopicMessage, TopicOptions};

const LIMIT: Duration = Duration::from_secs(60);

/// `publish_to_partitioned` racing `delete_topic`: the publish went
/// through a publisher that found the name again, and a topic deleted in
/// between was created anew as a plain topic and published into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_partitioned_topic_being_deleted_never_creates_a_plain_one() {
    let mq = MessageQueue::new();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (mq, stop) = (mq.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = mq
                    .publish_to_partitioned(TopicMessage::new("events", 1u32).unwrap())
                    .await
                {
                    assert!(
                        matches!(e.kind(), PublishErrorKind::Unroutable | PublishErrorKind::Closed),
                        "{e:?}"
                    );
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let rounds = 20_000 * u64::from(stress_scale());
    let found = tokio::time::timeout(LIMIT, async {
        for round in 0..rounds {
            match mq
                .create_partitioned_topic("events", TopicOptions::default(), 2)
                .await
            {
                Ok(()) => {}
                Err(TopicError::NotPartitioned { .. }) => return Some(round),
                Err(e) => panic!("{e:?}"),
            }
            assert!(mq.delete_topic("events").await);
        }
        None
    })
    .await
    .expect("finished");
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    assert_eq!(
        found,
        None,
        "a plain topic appeared: {:?}",
        mq.list_topics().await
    );
}

/// `delete_partitioned_topic` racing a plain topic created under the
/// name: it checked, then deleted whatever the name held by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_partitioned_topic_leaves_a_plain_one_created_meanwhile() {
    let mq = MessageQueue::new();
    let stop = Arc::new(AtomicBool::new(false));
    let deleter = {
        let (mq, stop) = (mq.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                mq.delete_partitioned_topic("x").await;
                tokio::task::yield_now().await;
            }
        })
    };
    let rounds = 20_000 * u64::from(stress_scale());
    let found = tokio::time::timeout(LIMIT, async {
        for round in 0..rounds {
            let _ = mq.create_partitioned_topic("x", TopicOptions::default(), 2).await;
            mq.delete_topic("x").await;
            mq.create_topic("x", TopicOptions::default()).await.unwrap();
            // Only the deleter could remove it, and it leaves plain topics alone.
            if !mq.delete_topic("x").await {
                return Some(round);
            }
        }
        None
    })
    .await
    .expect("finished");
    stop.store(true, Ordering::Relaxed);
    deleter.await.unwrap();
    assert_eq!(found, None, "delete_partitioned_topic deleted a plain topic");
}

/// A clone of a publisher taken while it finds its topic (its first
/// publish) is bound to that topic as the original is: such a clone had
/// the topic and an unbound lease, which counted for the topic created
/// under the name next and kept it open after every queue handle and
/// publisher that could publish to it was gone.
#[test]
fn a_clone_taken_during_the_first_publish_does_not_hold_the_next_topic_open() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rounds = 4_000 * stress_scale();
    for round in 0..rounds {
        let mq = MessageQueue::new();
        let publisher = Arc::new(mq.publisher("t"));
        let go = Arc::new(std::sync::Barrier::new(2));
        let cloner = {
            let (publisher, go) = (publisher.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                (0..16).map(|_| (*publisher).clone()).collect::<Vec<_>>()
            })
        };
        go.wait();
        publisher.try_publish(1u8).unwrap();
        let clones = cloner.join().unwrap();
        runtime.block_on(async {
            assert!(mq.delete_topic("t").await);
            // Created again.
            let sub = mq.subscriber("t").await.unwrap();
            // A clone either says it is closed (bound to the deleted
            // topic: it can never publish again) or publishes to the new
            // topic (it was not bound yet). One taken while the publisher
            // bound itself had a bound lease and no topic: it said open
            // and failed every publish with `Closed`.
            let (clones, open): (Vec<_>, Vec<_>) = clones.into_iter().partition(|c| c.is_closed());
            for c in &open {
                assert!(
                    c.try_publish(3u8).is_ok(),
                    "round {round}: a clone that says it is open cannot publish"
                );
            }
            drop(open);
            drop((mq, publisher));
            assert!(
                sub.is_closed(),
                "round {round}: {} stale clones hold the new topic open",
                clones.len()
            );
            for c in &clones {
                assert!(matches!(
                    c.publish(2u8).await,
                    Err(tokio_memq::PublishError::Closed(2))
                ));
            }
        });
    }
}

/// Two first joins of one group racing `close()`: a join that found its
/// topic already out of the registry (`close` takes every topic out, then
/// closes them one by one) made a group of its own over the still open
/// topic, and both members received every message.
#[test]
fn two_first_joins_of_a_group_racing_close_make_one_group() {
    use std::sync::atomic::AtomicU32;
    use tokio_memq::{ConsumptionMode, Subscriber};

    fn spin(n: u64) {
        for i in 0..n {
            std::hint::black_box(i);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let started = std::time::Instant::now();
    let mut seed = 0xDEAD_BEEFu64;
    let rounds = 600 * u64::from(stress_scale());
    for round in 0..rounds {
        if started.elapsed() > LIMIT / 2 {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mq = MessageQueue::new();
        // Many partitions: a group takes a while to build between the
        // look-up and the registration.
        rt.block_on(mq.create_partitioned_topic("t", TopicOptions::default(), 64))
            .unwrap();
        let publisher = mq.publisher("t");
        for i in 0..4u32 {
            publisher.try_publish(i).unwrap();
        }
        drop(publisher);
        // Many other topics: `close` takes them all out, then closes each.
        for i in 0..300 {
            rt.block_on(mq.create_topic(format!("other{i}"), TopicOptions::default()))
                .unwrap();
        }
        let go = Arc::new(AtomicU32::new(0));
        let start = |go: &AtomicU32| {
            go.fetch_add(1, Ordering::SeqCst);
            while go.load(Ordering::SeqCst) < 2 {}
        };
        // Spins are slower unoptimized: the same range of delays either way.
        let slow = if cfg!(debug_assertions) { 8 } else { 1 };
        let (ahead, pause) = (seed % 200_000 / slow, (seed >> 20) % 20_000 / slow);
        let join = |mq: &MessageQueue| mq.group("t", "g").mode(ConsumptionMode::Earliest).blocking_join();
        let other = {
            let (mq, go) = (mq.clone(), go.clone());
            std::thread::spawn(move || {
                start(&go);
                let first = join(&mq);
                spin(pause);
                mq.close();
                first
            })
        };
        start(&go);
        spin(ahead);
        let second = join(&mq);
        let (Ok(a), Ok(b)) = (other.join().unwrap(), second) else {
            continue;
        };
        let drain = |m: &Subscriber| {
            let mut got: Vec<(usize, u64)> = std::iter::from_fn(|| m.try_recv_now().ok())
                .map(|x| (x.partition.unwrap(), x.offset()))
                .collect();
            got.sort_unstable();
            got
        };
        let (a, b) = (drain(&a), drain(&b));
        assert!(
            a.iter().all(|x| !b.contains(x)),
            "round {round}: two members of one group both received {a:?} and {b:?}"
        );
    }
}
