//! Probe (lifecycle): a second member joining a live automatic group.

use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue};

#[tokio::test]
async fn a_join_while_a_member_reads_hands_nothing_out_twice() {
    for mode in [ConsumptionMode::LastOffset, ConsumptionMode::Earliest, ConsumptionMode::Latest] {
        for variant in 0..4 {
            let mq = MessageQueue::new();
            let m1 = mq.group("t", "g").mode(mode).join().await.unwrap();
            let p = mq.publisher("t");
            for i in 0..3u32 {
                p.publish(i).await.unwrap();
            }
            let mut seen1 = Vec::new();
            for _ in 0..3 {
                seen1.push(m1.try_recv_now().unwrap().offset());
            }
            if variant >= 1 {
                p.publish(3u32).await.unwrap();
                p.publish(4u32).await.unwrap();
            }
            if variant >= 2 {
                seen1.push(m1.recv().await.unwrap().offset());
            }
            if variant == 3 {
                let _ = mq.get_topic_stats("t").await; // flushes commits
            }
            let m2 = mq.group("t", "g").mode(mode).join().await.unwrap();
            p.publish(5u32).await.unwrap();
            let mut seen2 = Vec::new();
            loop {
                let a = tokio::time::timeout(Duration::from_millis(20), m1.recv()).await;
                let b = tokio::time::timeout(Duration::from_millis(20), m2.recv()).await;
                if let Ok(Ok(m)) = &a {
                    seen1.push(m.offset());
                }
                if let Ok(Ok(m)) = &b {
                    seen2.push(m.offset());
                }
                if a.is_err() && b.is_err() {
                    break;
                }
            }
            let mut all: Vec<u64> = seen1.iter().chain(&seen2).copied().collect();
            all.sort_unstable();
            eprintln!("{mode:?} variant {variant}: m1 {seen1:?} m2 {seen2:?}");
            let n = if variant == 0 { 4 } else { 6 };
            assert_eq!(all, (0..n).collect::<Vec<u64>>(), "{mode:?} variant {variant}: m1 {seen1:?} m2 {seen2:?}");
        }
    }
}

/// Members join an automatic group while others receive (and publishers
/// publish), on a multi-thread runtime: nothing may be handed out twice.
#[test]
fn joins_racing_receives_hand_nothing_out_twice() {
    let rounds: u64 = std::env::var("PROBE_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().unwrap();
    for round in 0..rounds {
        let dups = rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(20), async move {
                let mq = MessageQueue::new();
                let n = 200u64;
                let mut members = Vec::new();
                let first = mq.group("t", "g").join().await.unwrap();
                let spawn_reader = |m: tokio_memq::Subscriber, batch: usize| {
                    tokio::spawn(async move {
                        let mut seen = Vec::new();
                        loop {
                            let got = if batch == 1 { m.recv().await.map(|x| vec![x]) } else { m.recv_batch(batch).await };
                            match got {
                                Ok(ms) => seen.extend(ms.iter().map(|x| x.offset())),
                                Err(_) => return seen,
                            }
                        }
                    })
                };
                members.push(spawn_reader(first, 1));
                let p = mq.publisher("t");
                let pub_task = tokio::spawn(async move {
                    for i in 0..n {
                        if p.publish(i).await.is_err() {
                            break;
                        }
                        if i % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                });
                for k in 0..6usize {
                    tokio::task::yield_now().await;
                    let m = if k % 2 == 0 {
                        mq.group("t", "g").join().await.unwrap()
                    } else {
                        let mq = mq.clone();
                        tokio::task::spawn_blocking(move || mq.group("t", "g").blocking_join().unwrap()).await.unwrap()
                    };
                    if m.topic() != "t" {
                        unreachable!();
                    }
                    members.push(spawn_reader(m, 1 + k % 3));
                }
                if round % 2 == 1 {
                    for _ in 0..(round % 40) {
                        tokio::task::yield_now().await;
                    }
                    assert!(mq.delete_topic("t").await);
                }
                pub_task.await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                mq.close();
                let mut all = Vec::new();
                for h in members {
                    all.extend(h.await.unwrap());
                }
                all.sort_unstable();
                let before = all.len();
                all.dedup();
                (before - all.len(), all.len())
            })
            .await
            .expect("timed out")
        });
        assert_eq!(dups.0, 0, "round {round}: {} offsets handed out twice ({} distinct)", dups.0, dups.1);
    }
}
