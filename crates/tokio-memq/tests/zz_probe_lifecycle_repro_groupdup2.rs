//! Probe (lifecycle) repro: two first joins of consumer group "g" race
//! `MessageQueue::close` (or `delete_topic`): one registers "g" in the
//! registry, the other finds the topic removed from the registry (not yet
//! closed) and makes a private group "g" of its own over the same topic.
//! Both members then receive the same messages.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio_memq::{ConsumptionMode, MessageQueue, Subscriber, TopicOptions};

fn spin(n: u64) {
    for i in 0..n {
        std::hint::black_box(i);
    }
}

#[test]
fn two_first_joins_of_a_group_racing_close_receive_the_same_messages() {
    let rounds: u32 = std::env::var("PROBE_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut seed = 0xDEAD_BEEFu64;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mq = MessageQueue::new();
        // Many partitions: making a group over them takes a while, between
        // a join's look-up of the topic and its registering the group.
        rt.block_on(mq.create_partitioned_topic("t", TopicOptions::default(), 256)).unwrap();
        let p = mq.publisher("t");
        for i in 0..4u32 {
            p.try_publish(i).unwrap();
        }
        drop(p);
        // Many other topics: `close` closes them one by one after taking
        // them all out of the registry.
        for i in 0..2000 {
            rt.block_on(mq.create_topic(format!("other{i}"), TopicOptions::default())).unwrap();
        }
        let go = Arc::new(AtomicU32::new(0));
        let start = |go: &AtomicU32| {
            go.fetch_add(1, Ordering::SeqCst);
            while go.load(Ordering::SeqCst) < 2 {}
        };
        // Thread A: the first join, then (a little later) close.
        // Thread B (this one): the second join, started a little after.
        let delta = seed % 500_000;
        let pause = (seed >> 20) % 50_000;
        let join = |mq: &MessageQueue| mq.group("t", "g").mode(ConsumptionMode::Earliest).blocking_join();
        let a = {
            let (mq, go) = (mq.clone(), go.clone());
            std::thread::spawn(move || {
                start(&go);
                let m1 = join(&mq);
                spin(pause);
                if std::env::var("PROBE_DELETE").is_ok() {
                    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                    assert!(rt.block_on(mq.delete_topic("t")));
                } else {
                    mq.close();
                }
                m1
            })
        };
        start(&go);
        spin(delta);
        let m2 = join(&mq);
        let m1 = a.join().unwrap();
        let (m1, m2) = match (m1, m2) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                *outcomes.entry(format!("a join failed: {:?} / {:?}", a.err(), b.err())).or_default() += 1;
                continue;
            }
        };
        let drain = |m: &Subscriber| {
            let mut v: Vec<(usize, u64)> = std::iter::from_fn(|| m.try_recv_now().ok())
                .map(|x| (x.partition.unwrap(), x.offset()))
                .collect();
            v.sort_unstable();
            v
        };
        let (a, b) = (drain(&m1), drain(&m2));
        let mut all: Vec<(usize, u64)> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        if before == all.len() {
            *outcomes.entry(format!("no duplicate ({} messages)", before)).or_default() += 1;
            continue;
        }
        panic!(
            "round {round}: two members of group \"g\" of one topic both received {:?} (m1 {a:?}, m2 {b:?}); {outcomes:?}",
            a.iter().filter(|x| b.contains(x)).collect::<Vec<_>>()
        );
    }
    eprintln!("{outcomes:?}");
}

#[test]
fn calibrate() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mq = MessageQueue::new();
    rt.block_on(mq.create_partitioned_topic("t", TopicOptions::default(), 256)).unwrap();
    let t = std::time::Instant::now();
    let m = mq.group("t", "g").mode(ConsumptionMode::Earliest).blocking_join().unwrap();
    let join = t.elapsed();
    let t = std::time::Instant::now();
    spin(100_000);
    let s = t.elapsed();
    drop(m);
    eprintln!("join over 256 partitions {join:?}; spin(100k) {s:?}");
}
