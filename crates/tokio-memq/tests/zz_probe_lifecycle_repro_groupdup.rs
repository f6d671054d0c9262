//! Probe (lifecycle) repro: a member joining a consumer group while its
//! topic is deleted can land in a second, private group of the same name
//! over the deleted topic, and receive again what the group's other
//! members already processed.

use std::sync::Arc;

use tokio_memq::{ConsumptionMode, MessageQueue, TryRecvError};

fn spin(n: u64) {
    for i in 0..n {
        std::hint::black_box(i);
    }
}

#[test]
fn a_join_racing_delete_topic_redelivers_what_the_group_processed() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut seed = 0x9E37_79B9u64;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..2_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mq = MessageQueue::new();
        let first = rt.block_on(mq.subscriber_group("t", "g", ConsumptionMode::Earliest)).unwrap();
        rt.block_on(mq.publisher("t").publish_batch(vec![1u32, 2, 3])).unwrap();
        // The group processes all three (automatic acknowledgement).
        let got: Vec<u64> = (0..3).map(|_| first.try_recv_now().unwrap().offset()).collect();
        assert_eq!(got, [0, 1, 2]);
        let go = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let deleter = {
            let (mq, go) = (mq.clone(), go.clone());
            let delay = seed % 3000;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                go.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                while go.load(std::sync::atomic::Ordering::SeqCst) < 2 {}
                spin(delay);
                assert!(rt.block_on(mq.delete_topic("t")));
            })
        };
        go.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        while go.load(std::sync::atomic::Ordering::SeqCst) < 2 {}
        spin((seed >> 16) % 3000);
        // A second member of group "g", which has processed offsets 0..3.
        let second = mq.group("t", "g").mode(ConsumptionMode::Earliest).blocking_join();
        deleter.join().unwrap();
        let second = match second {
            Ok(s) => s,
            Err(e) => {
                *outcomes.entry(format!("join failed: {e:?}")).or_default() += 1;
                continue;
            }
        };
        if !second.is_closed() {
            *outcomes.entry("new incarnation".into()).or_default() += 1;
            // Joined a topic created anew after the delete: another incarnation.
            continue;
        }
        match second.try_recv_now() {
            Err(TryRecvError::Closed) => *outcomes.entry("closed, nothing".into()).or_default() += 1,
            Ok(m) => panic!(
                "{outcomes:?} round {round}: a member of group g received offset {} again, which the group had processed",
                m.offset()
            ),
            Err(e) => panic!("round {round}: {e:?}"),
        }
    }
    eprintln!("{outcomes:?}");
}

/// The members of group g drain their deleted topic and leave while
/// another join of g, which found the topic before the delete, goes on:
/// it joins g over the deleted topic, with no live member. With
/// `LastOffset` it must resume after g's last commit (auto ack: nothing
/// left), not hand out again what g processed.
#[test]
fn a_join_racing_delete_and_the_last_member_leaving() {
    let rounds: u32 = std::env::var("PROBE_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let mut seed = 0x1234_5677u64;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mq = MessageQueue::new();
        let a = mq.group("t", "g").blocking_join().unwrap();
        mq.publisher("t").try_publish_batch_for_probe();
        for i in 0..4u64 {
            assert_eq!(a.try_recv_now().unwrap().offset(), i);
        }
        let go = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let deleter = {
            let (mq, go) = (mq.clone(), go.clone());
            let delay = seed % 3000;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                go.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                while go.load(std::sync::atomic::Ordering::SeqCst) < 2 {}
                spin(delay);
                assert!(rt.block_on(mq.delete_topic("t")));
                assert_eq!(a.try_recv_now().unwrap_err(), TryRecvError::Closed);
                drop(a);
            })
        };
        go.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        while go.load(std::sync::atomic::Ordering::SeqCst) < 2 {}
        spin((seed >> 16) % 3000);
        let j = mq.group("t", "g").blocking_join();
        deleter.join().unwrap();
        let j = match j {
            Ok(j) => j,
            Err(e) => {
                *outcomes.entry(format!("join failed: {e:?}")).or_default() += 1;
                continue;
            }
        };
        if !j.is_closed() {
            *outcomes.entry("new incarnation".into()).or_default() += 1;
            continue;
        }
        match j.try_recv_now() {
            Err(TryRecvError::Closed) => *outcomes.entry("closed, nothing".into()).or_default() += 1,
            Ok(m) => panic!(
                "{outcomes:?} round {round}: a member of group g received offset {} again, which the group had processed",
                m.offset()
            ),
            Err(e) => panic!("round {round}: {e:?}"),
        }
    }
    eprintln!("{outcomes:?}");
}

trait ProbePublish {
    fn try_publish_batch_for_probe(&self);
}
impl ProbePublish for tokio_memq::Publisher {
    fn try_publish_batch_for_probe(&self) {
        for i in 0..4u32 {
            self.try_publish(i).unwrap();
        }
    }
}

/// Two first joins of group g race a delete of their topic: the one whose
/// topic is removed before it registers the group gets a private group
/// "g" of its own over the same (deleted) topic, and both members receive
/// the same messages.
#[test]
fn two_first_joins_racing_a_delete() {
    let rounds: u32 = std::env::var("PROBE_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let mut seed = 0x5151_7777u64;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    // CPU hogs: more runnable threads than cores, so that a thread can be
    // descheduled anywhere (as in a busy process).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    spin(1000);
                }
            })
        })
        .collect();
    let _hogs = scopeguard_stop(stop.clone(), hogs);
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mq = MessageQueue::new();
        let p = mq.publisher("t");
        for i in 0..3u32 {
            p.try_publish(i).unwrap();
        }
        let go = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let start = |go: &std::sync::atomic::AtomicU32| {
            go.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            while go.load(std::sync::atomic::Ordering::SeqCst) < 3 {}
        };
        let (d1, d2, d3) = (seed % 3000, (seed >> 16) % 3000, (seed >> 32) % 3000);
        let j1 = {
            let (mq, go) = (mq.clone(), go.clone());
            std::thread::spawn(move || {
                start(&go);
                spin(d1);
                mq.group("t", "g").mode(ConsumptionMode::Earliest).blocking_join()
            })
        };
        let del = {
            let (mq, go) = (mq.clone(), go.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                start(&go);
                spin(d3);
                rt.block_on(mq.delete_topic("t"))
            })
        };
        start(&go);
        spin(d2);
        let m2 = mq.group("t", "g").mode(ConsumptionMode::Earliest).blocking_join();
        let _ = &p;
        let m1 = j1.join().unwrap();
        assert!(del.join().unwrap());
        let (m1, m2) = match (m1, m2) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                *outcomes.entry(format!("join failed: {:?} / {:?}", a.err(), b.err())).or_default() += 1;
                continue;
            }
        };
        if !(m1.is_closed() && m2.is_closed()) {
            *outcomes.entry("not both on the deleted topic".into()).or_default() += 1;
            continue;
        }
        let drain = |m: &tokio_memq::Subscriber| std::iter::from_fn(|| m.try_recv_now().ok()).map(|x| x.offset()).collect::<Vec<_>>();
        let (a, b) = (drain(&m1), drain(&m2));
        let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        if all == [0, 1, 2] {
            *outcomes.entry("shared, each once".into()).or_default() += 1;
            continue;
        }
        panic!(
            "round {round}: two members of group g on one (deleted) topic received {a:?} and {b:?}; {outcomes:?}"
        );
    }
    eprintln!("{outcomes:?}");
}

struct StopHogs(Arc<std::sync::atomic::AtomicBool>, Vec<std::thread::JoinHandle<()>>);
impl Drop for StopHogs {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.1.drain(..) {
            let _ = h.join();
        }
    }
}
fn scopeguard_stop(stop: Arc<std::sync::atomic::AtomicBool>, hogs: Vec<std::thread::JoinHandle<()>>) -> StopHogs {
    StopHogs(stop, hogs)
}
