//! The queue's registry locks never wait on each other in a cycle: stats
//! readers, group joins that create dead-letter topics, topic creation
//! and deletion, and publishers coming and going, all at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio_memq::MessageQueue;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `get_topic_stats` reads a topic's groups; a group join creates its
/// dead-letter topic. Stats used to hold the registry's read lock while
/// locking the groups map, and the join to hold the groups map while
/// creating a topic (the registry's write lock): two stats threads and a
/// joining thread hung within seconds. The threads run for 3 s, then each
/// must finish; a watchdog fails the test instead of hanging.
#[test]
fn stats_readers_and_group_joins_never_deadlock() {
    let mq = MessageQueue::new();
    current_thread()
        .block_on(mq.create_topic("jobs", Default::default()))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let (finished, wait) = mpsc::channel();
    for role in 0..4u32 {
        let (mq, stop, done, finished) = (mq.clone(), stop.clone(), done.clone(), finished.clone());
        std::thread::spawn(move || {
            let rt = current_thread();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match role {
                    0 | 1 => {
                        assert!(rt.block_on(mq.get_topic_stats("jobs")).is_some());
                    }
                    2 => {
                        let member = rt
                            .block_on(
                                mq.group("jobs", format!("g{i}"))
                                    .manual_ack()
                                    .max_deliveries(3)
                                    .dead_letter_topic(format!("dead{i}"))
                                    .join(),
                            )
                            .unwrap();
                        drop(member);
                        assert!(rt.block_on(mq.delete_topic(format!("dead{i}"))));
                    }
                    _ => {
                        let publisher = mq.publisher("jobs");
                        rt.block_on(publisher.publish(i)).unwrap();
                        drop(publisher);
                        let _ = rt.block_on(mq.get_group_stats("jobs", format!("g{i}")));
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            finished.send(role).unwrap();
        });
    }
    // Run for a few seconds (a deadlock showed within a second or three),
    // then every thread must finish its current operation.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for _ in 0..4 {
        assert!(
            wait.recv_timeout(Duration::from_secs(30)).is_ok(),
            "a thread did not finish within 30 s after {} operations: deadlock",
            done.load(Ordering::Relaxed)
        );
    }
    assert!(done.load(Ordering::Relaxed) > 100);
}
