//! Probe (lifecycle): handles moved across runtimes, and dropped while a
//! runtime shuts down.

use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue, RecvError, TopicOptions};

fn ct() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
fn mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn within<F: std::future::Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), f).await.expect("timed out") })
}

#[test]
fn a_receive_abandoned_by_a_dead_runtime_leaves_the_subscriber_usable() {
    for make in [ct as fn() -> _, mt] {
        let mq = MessageQueue::new();
        let sub = std::sync::Arc::new(ct().block_on(mq.subscriber("t")).unwrap());
        {
            let a = make();
            let s = sub.clone();
            a.spawn(async move {
                let _ = s.recv().await;
                unreachable!("nothing is published before the runtime dies");
            });
            a.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
            drop(a);
        }
        let b = make();
        within(&b, async {
            let p = mq.publisher("t");
            assert_eq!(p.publish(1u32).await.unwrap(), 0);
            let m = sub.recv().await.unwrap();
            assert_eq!((m.offset(), m.deserialize::<u32>().unwrap()), (0, 1));
            // A second receive parks on runtime b and is woken by a publish
            // from another thread.
            let p2 = p.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                p2.blocking_publish(2u32).unwrap()
            });
            assert_eq!(sub.recv().await.unwrap().offset(), 1);
            assert_eq!(t.join().unwrap(), 1);
        });
    }
}

#[test]
fn a_publish_abandoned_by_a_dead_runtime_publishes_nothing_and_blocks_nothing() {
    for make in [ct as fn() -> _, mt] {
        let mq = MessageQueue::new();
        let options = TopicOptions {
            max_messages: Some(1),
            lru_enabled: false,
            ..TopicOptions::default()
        };
        let rt0 = ct();
        let blocker = rt0.block_on(mq.subscriber_with_options_and_mode("t", options, ConsumptionMode::Earliest)).unwrap();
        let p = mq.publisher("t");
        assert_eq!(rt0.block_on(p.publish(0u32)).unwrap(), 0);
        {
            let a = make();
            let p = p.clone();
            a.spawn(async move {
                let _ = p.publish(99u32).await;
                unreachable!("the topic stays full");
            });
            a.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
            drop(a);
        }
        let b = make();
        within(&b, async {
            assert_eq!(blocker.recv().await.unwrap().deserialize::<u32>().unwrap(), 0);
            assert_eq!(p.publish(1u32).await.unwrap(), 1, "the abandoned publish took no offset");
            assert_eq!(blocker.recv().await.unwrap().deserialize::<u32>().unwrap(), 1);
            let st = mq.get_topic_stats("t").await.unwrap();
            assert_eq!(st.published, 2);
        });
    }
}

#[test]
fn last_handles_dropped_by_a_shutting_down_runtime_close_the_topic_for_a_thread() {
    for make in [ct as fn() -> _, mt] {
        for with_waiting_sub_in_same_rt in [false, true] {
            let mq = MessageQueue::new();
            let rt0 = ct();
            let sub = rt0.block_on(mq.subscriber("t")).unwrap();
            let sub2 = rt0.block_on(mq.subscriber("t")).unwrap();
            let p = mq.publisher("t");
            rt0.block_on(p.publish(5u32)).unwrap();
            let reader = std::thread::spawn(move || {
                let first = sub.blocking_recv().map(|m| m.deserialize::<u32>().unwrap());
                let second = sub.blocking_recv().map(|m| m.offset());
                (first, second)
            });
            let a = make();
            a.spawn(async move {
                let _keep = (mq, p);
                std::future::pending::<()>().await;
            });
            if with_waiting_sub_in_same_rt {
                a.spawn(async move {
                    let _ = sub2.recv().await;
                    let r = sub2.recv().await;
                    // Runs only if woken before the runtime is gone.
                    assert_eq!(r.map(|m| m.offset()), Err(RecvError::Closed));
                });
            } else {
                drop(sub2);
            }
            a.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
            drop(a); // drops the tasks, hence the last queue handle and publisher
            let (first, second) = reader.join().unwrap();
            assert_eq!(first, Ok(5));
            assert_eq!(second, Err(RecvError::Closed));
        }
    }
}

#[test]
fn a_manual_member_dropped_by_a_shutting_down_runtime_dead_letters_its_message() {
    for make in [ct as fn() -> _, mt] {
        let mq = MessageQueue::new();
        let rt0 = ct();
        let dead = rt0.block_on(mq.subscriber("jobs.dead-letters")).unwrap();
        let keeper = rt0
            .block_on(mq.group("jobs", "w").manual_ack().max_deliveries(1).mode(ConsumptionMode::Earliest).join())
            .unwrap();
        let failing = rt0
            .block_on(mq.group("jobs", "w").manual_ack().max_deliveries(1).mode(ConsumptionMode::Earliest).join())
            .unwrap();
        rt0.block_on(mq.publisher("jobs").publish("poison")).unwrap();
        let a = make();
        a.spawn(async move {
            let m = failing.recv().await.unwrap();
            let _keep = m;
            std::future::pending::<()>().await;
        });
        a.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        drop(a);
        within(&rt0, async {
            // The dead letter is sent by the receive that gives up on it.
            assert!(keeper.try_recv_now().is_err());
            let letter = dead.recv().await.unwrap();
            assert_eq!(letter.dead_letter().map(|d| (d.offset, d.deliveries)), Some((0, 1)));
        });
    }
}

#[test]
fn a_ttl_wait_started_on_a_dead_runtime_is_served_on_the_next() {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        message_ttl: Some(Duration::from_millis(200)),
        ..TopicOptions::default()
    };
    let rt0 = ct();
    let _blocker = rt0.block_on(mq.subscriber_with_options("t", options)).unwrap();
    let p = mq.publisher("t");
    rt0.block_on(p.publish(0u32)).unwrap();
    {
        let a = mt();
        let p = p.clone();
        a.spawn(async move {
            let _ = p.publish(99u32).await;
        });
        a.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        drop(a);
    }
    let b = mt();
    let started = std::time::Instant::now();
    within(&b, async {
        // Waits for the first message to expire (the blocker never reads).
        let off = p.publish(1u32).await.unwrap();
        assert_eq!(off, 1);
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    // And from a plain thread, no runtime at all.
    let p2 = p.clone();
    let t = std::thread::spawn(move || p2.blocking_publish(2u32).unwrap());
    let off = t.join().unwrap();
    assert!(off >= 2);
}

