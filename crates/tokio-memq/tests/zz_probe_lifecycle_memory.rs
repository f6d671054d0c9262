//! Probe (lifecycle): "Memory is freed when the last handle of any kind is
//! dropped": random workloads, everything dropped in random order; the
//! live heap must not grow from one round to the next.

use std::time::Duration;

use memq_testkit::alloc;
use tokio_memq::{ConsumptionMode, MessageQueue, Publisher, Subscriber, TopicOptions};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

enum Handle {
    Q(MessageQueue),
    P(Publisher),
    S(Subscriber),
    Pat(tokio_memq::PatternSubscriber),
    Sink(tokio_memq::PublishSink<Vec<u8>>),
}

const NAMES: &[&str] = &["a", "a.b", "a.c", "p", "z"];

async fn round(seed: u64) {
    let mut r = Rng(seed);
    let mq = MessageQueue::new();
    let mut hs: Vec<Handle> = vec![Handle::Q(mq.clone())];
    let _ = mq.create_partitioned_topic("p", TopicOptions::default(), 3).await;
    for _ in 0..200 {
        let name = NAMES[r.below(NAMES.len())];
        let op = r.below(12);
        let allowed = std::env::var("PROBE_OPS").ok().map_or(true, |v| v.split(',').any(|x| x.parse::<usize>().ok() == Some(op)));
        if !allowed { continue; }
        match op {
            0 => hs.push(Handle::P(mq.publisher(name))),
            1 | 2 => {
                let ps: Vec<usize> = (0..hs.len()).filter(|&i| matches!(hs[i], Handle::P(_))).collect();
                if let Some(&i) = ps.get(r.below(ps.len().max(1))) {
                    if let Handle::P(p) = &hs[i] {
                        let _ = p.publish(vec![7u8; r.below(100)]).await;
                        let _ = p.publish_with_key(format!("k{}", r.below(5)), "x").await;
                        if r.below(4) == 0 {
                            let c = p.clone();
                            hs.push(Handle::P(c));
                        }
                    }
                }
            }
            3 => {
                if let Ok(s) = mq.subscriber_with_options_and_mode(name, TopicOptions::default(), ConsumptionMode::Earliest).await {
                    hs.push(Handle::S(s));
                }
            }
            4 => {
                if let Ok(s) = mq.group(name, "g").manual_ack().max_deliveries(2).mode(ConsumptionMode::Earliest).join().await {
                    let _ = s.try_recv_now();
                    hs.push(Handle::S(s));
                }
            }
            5 => {
                let ss: Vec<usize> = (0..hs.len()).filter(|&i| matches!(hs[i], Handle::S(_))).collect();
                if let Some(&i) = ss.get(r.below(ss.len().max(1))) {
                    if let Handle::S(s) = &hs[i] {
                        for _ in 0..r.below(5) {
                            let _ = s.try_recv_now();
                        }
                    }
                }
            }
            6 => {
                let _ = mq.delete_topic(name).await;
            }
            7 => {
                if let Ok(p) = mq.subscribe_pattern(["a.*", "a.>", ">", "*"][r.below(4)]) {
                    let _ = p.try_recv_now();
                    hs.push(Handle::Pat(p));
                }
            }
            8 => {
                let mut sink = mq.publisher(name).sink::<Vec<u8>>();
                use futures_util::SinkExt;
                let _ = sink.send(vec![1, 2, 3]).await;
                hs.push(Handle::Sink(sink));
            }
            9 => {
                let _ = mq.create_partitioned_topic(name, TopicOptions::default(), 2).await;
                let _ = mq.publish_to_partitioned(tokio_memq::TopicMessage::new_with_key(name, "v", "k").unwrap()).await;
            }
            10 => {
                if r.below(20) == 0 {
                    mq.close();
                }
            }
            _ => {
                if !hs.is_empty() {
                    let i = r.below(hs.len());
                    hs.swap_remove(i);
                }
            }
        }
    }
    drop(mq);
    // Drop the rest in random order, polling some subscribers in between.
    while !hs.is_empty() {
        let i = r.below(hs.len());
        match hs.swap_remove(i) {
            Handle::S(s) => while s.try_recv_now().is_ok() {},
            Handle::Pat(p) => while p.try_recv_now().is_ok() {},
            h => drop(h),
        }
    }
}

#[test]
fn nothing_is_left_after_every_handle_is_dropped() {
    let _serial = alloc::serial();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut lives = Vec::with_capacity(64);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            // Warm up (first-use allocations of globals).
            for seed in 0..20 {
                round(seed).await;
            }
            for batch in 0..30u64 {
                for seed in 0..50 {
                    round(1000 + batch * 50 + seed).await;
                }
                lives.push(alloc::live());
            }
        })
        .await
        .expect("timed out");
    });
    eprintln!("live after each batch of 50 rounds: {lives:?}");
    let first = lives[0];
    let last = *lives.last().unwrap();
    assert!(last - first < 4096, "grew {} bytes over 250 rounds: {lives:?}", last - first);
}


/// A 1 MiB topic name: everything works, and messages share the name
/// rather than copying it.
#[test]
fn a_one_mib_topic_name() {
    let _serial = alloc::serial();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let name = "x".repeat(1 << 20);
            let mq = MessageQueue::new();
            mq.create_topic(&name, TopicOptions::default()).await.unwrap();
            let sub = mq.subscriber_with_options_and_mode(&name, TopicOptions::default(), ConsumptionMode::Earliest).await.unwrap();
            let member = mq.subscriber_group(&name, "g", ConsumptionMode::Earliest).await.unwrap();
            let pat = mq.subscribe_pattern("*").unwrap();
            let publisher = mq.publisher(&name);
            publisher.publish(0u32).await.unwrap(); // binds, and the pattern sees it (existing: next message on)
            let before = alloc::live();
            alloc::reset_peak();
            let mut held = Vec::new();
            for i in 1..=100u32 {
                publisher.publish(i).await.unwrap();
            }
            for _ in 0..100 {
                held.push(sub.recv().await.unwrap());
                held.push(member.recv().await.unwrap());
                held.push(pat.recv().await.unwrap());
            }
            let grew = alloc::peak() - before;
            eprintln!("300 messages of a 1 MiB-named topic held: peak grew {grew} bytes");
            assert!(held.iter().all(|m| m.topic().len() == 1 << 20));
            assert!(grew < 8 << 20, "messages copy the topic name: {grew} bytes");
            drop(held);
            assert_eq!(mq.list_topics().await, [name.clone()]);
            assert!(mq.delete_topic(&name).await);
            assert!(mq.list_topics().await.is_empty());
        })
        .await
        .expect("timed out");
    });
}

/// A wildcard subscription that is not polled while topics matching it
/// are created and deleted: does it keep every deleted topic alive?
#[test]
fn an_unpolled_pattern_subscription_and_topic_churn() {
    let _serial = alloc::serial();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            for polled in [false, true] {
                let mq = MessageQueue::new();
                let pat = mq.subscribe_pattern("churn.*").unwrap();
                let small = TopicOptions { max_messages: Some(4), ..TopicOptions::default() };
                let mut lives = Vec::with_capacity(16);
                for round in 0..4000u32 {
                    mq.create_topic("churn.x", small.clone()).await.unwrap();
                    mq.publisher("churn.x").publish(vec![0u8; 256]).await.unwrap();
                    assert!(mq.delete_topic("churn.x").await);
                    if polled {
                        while pat.try_recv_now().is_ok() {}
                    }
                    if round % 1000 == 999 {
                        lives.push(alloc::live());
                    }
                }
                eprintln!("polled {polled}: live every 1000 re-creations of one deleted topic name: {lives:?}");
                let per = (lives[3] - lives[0]) / 3000;
                eprintln!("  about {per} bytes per deleted topic kept");
                drop(pat);
            }
        })
        .await
        .expect("timed out");
    });
}

/// Publishers, leases and groups of ever new names, each topic deleted
/// after use: the registry's books must not grow.
#[test]
fn unique_name_churn_leaves_nothing() {
    let _serial = alloc::serial();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let mq = MessageQueue::new();
            let keep = mq.publisher("kept"); // bound, lives throughout
            keep.publish(0u8).await.unwrap();
            let mut lives = Vec::with_capacity(16);
            for i in 0..8000u32 {
                let name = format!("n{i}");
                let p = mq.publisher(&name);
                let unbound = mq.publisher(&name);
                p.publish(i).await.unwrap();
                let member = mq.group(&name, "g").manual_ack().max_deliveries(2).dead_letter_topic(format!("{name}.dl")).join().await.unwrap();
                let c = p.clone();
                assert!(mq.delete_topic(&name).await);
                assert!(mq.delete_topic(format!("{name}.dl")).await);
                drop((p, c, unbound, member));
                if i % 2000 == 1999 {
                    lives.push(alloc::live());
                }
            }
            eprintln!("live every 2000 unique names: {lives:?}");
            assert!(lives[3] - lives[0] < 4096, "{lives:?}");
            assert_eq!(mq.list_topics().await, ["kept"]);
        })
        .await
        .expect("timed out");
    });
}
