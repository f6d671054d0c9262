//! Probe (lifecycle): concurrent create/delete/list/publish/subscribe on a
//! few names; afterwards every reader must have ended with `Closed`, and
//! what the readers saw must be consistent per topic incarnation (no loss,
//! no duplicate, nothing from another incarnation, nothing that failed).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue, PublishError, Publisher, RecvError, TopicError, TopicOptions};

#[derive(Clone)]
struct Rng(u64);
impl Shared {
    fn ev(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

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

fn options(kind: usize) -> TopicOptions {
    match kind {
        0 => TopicOptions::default(),
        1 => TopicOptions {
            max_messages: Some(20_000),
            ..TopicOptions::default()
        },
        _ => TopicOptions {
            max_messages: None,
            ..TopicOptions::default()
        },
    }
}

const NAMES: &[&str] = &["t1", "t2", "t.3"];

#[derive(Default)]
struct Shared {
    /// value -> Ok(offset) / Err(()) (closed)
    published: Mutex<HashMap<u64, Result<u64, ()>>>,
    /// Per publish, in call order: (pid, seq, ok, queue gone when it began).
    history: Mutex<Vec<(u64, u64, bool, bool)>>,
    clones: std::sync::atomic::AtomicUsize,
    gone: std::sync::atomic::AtomicBool,
    events: Mutex<Vec<String>>,
    members: Mutex<Vec<tokio::task::JoinHandle<(String, Vec<(u64, u64)>, RecvError)>>>,
    readers: Mutex<Vec<tokio::task::JoinHandle<(String, Vec<(u64, u64)>, RecvError)>>>,
}

async fn worker(seed: u64, wid: u64, mq: MessageQueue, shared: Arc<Shared>, pids: Arc<AtomicU64>, ops: usize, drop_at: bool) {
    let mut r = Rng(seed ^ (wid.wrapping_mul(0x1234_5678_9abc_def1)));
    let drop_at = if drop_at { r.below(ops) } else { usize::MAX };
    let mut queue = Some(mq);
    let mut pubs: Vec<(u64, u64, Publisher)> = Vec::new();
    for op_i in 0..ops {
        if op_i == drop_at {
            drop(queue.take());
            let last = shared.clones.fetch_sub(1, Ordering::SeqCst) == 1;
            if last {
                shared.gone.store(true, Ordering::SeqCst);
            }
            shared.ev(format!("w{wid} dropped its queue (last {last})"));
        }
        let name = NAMES[r.below(NAMES.len())];
        let op = r.below(14);
        let Some(mq) = queue.as_ref().or_else(|| None) else {
            // Without a queue handle: publish, clone, drop, yield only.
            match op {
                1..=3 if !pubs.is_empty() => {}
                4 | 5 if !pubs.is_empty() => {}
                _ => {
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            // Fall through below with a dummy: handled by the match with a
            // queue-less path.
            queue_less(&mut r, op, &mut pubs, &shared, &pids, seed).await;
            continue;
        };
        match op {
            0 if pubs.len() < 6 => {
                let pid = pids.fetch_add(1, Ordering::Relaxed);
                pubs.push((pid, 0, mq.publisher(name)));
                shared.ev(format!("w{wid} new publisher {pid} for {name}"));
            }
            1..=3 if !pubs.is_empty() => {
                let k = r.below(pubs.len());
                let n = r.below(3) + 1;
                for _ in 0..n {
                    let (pid, seq, p) = &mut pubs[k];
                    let v = *pid << 32 | *seq;
                    *seq += 1;
                    let gone_at = shared.gone.load(Ordering::SeqCst);
                    let got = match r.below(3) {
                        0 => p.try_publish(v),
                        1 => p.publish(v).await,
                        _ => p.publish_batch(vec![v]).await.map(|o| o.start).map_err(|e| match e {
                            PublishError::Closed(mut v) => PublishError::Closed(v.pop().unwrap()),
                            e => panic!("seed {seed}: batch {e:?}"),
                        }),
                    };
                    let rec = match got {
                        Ok(o) => Ok(o),
                        Err(PublishError::Closed(back)) => {
                            assert_eq!(back, v);
                            Err(())
                        }
                        Err(e) => panic!("seed {seed}: publish {e:?}"),
                    };
                    shared.history.lock().unwrap().push((*pid, v & 0xFFFF_FFFF, rec.is_ok(), gone_at));
                    shared.ev(format!("w{wid} publish {pid}/{} to {}: {rec:?} (gone at start {gone_at})", v & 0xFFFF_FFFF, p.topic()));
                    shared.published.lock().unwrap().insert(v, rec);
                }
            }
            4 if !pubs.is_empty() && pubs.len() < 8 => {
                let k = r.below(pubs.len());
                let pid = pids.fetch_add(1, Ordering::Relaxed);
                let c = pubs[k].2.clone();
                shared.ev(format!("w{wid} clone {} -> {pid} ({})", pubs[k].0, c.topic()));
                pubs.push((pid, 0, c));
            }
            5 if !pubs.is_empty() => {
                let k = r.below(pubs.len());
                let (pid, _, p) = pubs.swap_remove(k);
                shared.ev(format!("w{wid} drop {pid} ({})", p.topic()));
            }
            6 | 7 => {
                let opts = r.below(3);
                let got = match r.below(3) {
                    0 => mq.blocking_subscriber(name, ConsumptionMode::Earliest),
                    1 => {
                        mq.subscriber_with_options_and_mode(name, options(opts), ConsumptionMode::Earliest)
                            .await
                    }
                    _ => mq.subscriber_with_options_and_mode(name, options(opts), ConsumptionMode::Latest).await,
                };
                shared.ev(format!("w{wid} subscribe {name}: {:?}", got.as_ref().map(|_| ())));
                match got {
                    Ok(sub) => {
                        let h = tokio::spawn(async move {
                            let mut seen = Vec::new();
                            loop {
                                match sub.recv().await {
                                    Ok(m) => seen.push((m.offset(), m.deserialize::<u64>().unwrap())),
                                    Err(e) => return (sub.topic().to_string(), seen, e),
                                }
                            }
                        });
                        shared.readers.lock().unwrap().push(h);
                    }
                    Err(TopicError::OptionsMismatch { topic }) => assert_eq!(topic, name),
                    Err(TopicError::Closed) => {}
                    Err(e) => panic!("seed {seed}: subscribe {e:?}"),
                }
            }
            8 => match mq.create_topic(name, options(r.below(3))).await.inspect(|_| shared.ev(format!("w{wid} create {name}"))) {
                Ok(()) | Err(TopicError::OptionsMismatch { .. }) | Err(TopicError::Closed) => {}
                Err(e) => panic!("seed {seed}: create {e:?}"),
            },
            9 => {
                let d = mq.delete_topic(name).await;
                shared.ev(format!("w{wid} delete {name}: {d}"));
            }
            10 => {
                let l = mq.list_topics().await;
                assert!(l.windows(2).all(|w| w[0] < w[1]), "seed {seed}: {l:?}");
                assert!(l.iter().all(|n| NAMES.contains(&n.as_str())), "seed {seed}: {l:?}");
            }
            11 => {
                if let Some(st) = mq.get_topic_stats(name).await {
                    assert_eq!(st.published, st.next_offset, "seed {seed}");
                    assert_eq!(st.message_count as u64, st.next_offset - st.low_offset, "seed {seed}");
                    assert_eq!(st.low_offset, 0, "seed {seed}");
                }
            }
            13 => {
                let got = if r.below(2) == 0 {
                    // LastOffset: a group whose members all left (their topic
                    // closed) and is joined again resumes after its commit
                    // (Earliest would replay it, as documented).
                    mq.subscriber_group(name, "g", ConsumptionMode::LastOffset).await
                } else {
                    mq.group(name, "g").mode(ConsumptionMode::LastOffset).blocking_join()
                };
                let mid = pids.fetch_add(1, Ordering::Relaxed);
                let gs = mq.get_group_stats(name, "g").await.map(|s| (s.members, s.committed.clone()));
                shared.ev(format!("w{wid} join {name}: {:?} as m{mid} (closed at once: {:?}) group members/commit now {gs:?}", got.as_ref().map(|_| ()), got.as_ref().map(|s| s.is_closed())));
                match got {
                    Ok(sub) => {
                        let shared2 = shared.clone();
                        let batch = r.below(3) + 1;
                        let h = tokio::spawn(async move {
                            let mut seen = Vec::new();
                            loop {
                                let got = if batch == 1 {
                                    sub.recv().await.map(|m| vec![m])
                                } else {
                                    sub.recv_batch(batch).await
                                };
                                match got {
                                    Ok(ms) => {
                                        shared2.ev(format!("m{mid} got {:?}", ms.iter().map(|m| (m.offset(), m.deserialize::<u64>().unwrap())).collect::<Vec<_>>()));
                                        seen.extend(ms.iter().map(|m| (m.offset(), m.deserialize::<u64>().unwrap())))
                                    }
                                    Err(e) => {
                                        shared2.ev(format!("m{mid} ends: {e:?}"));
                                        return (sub.topic().to_string(), seen, e);
                                    }
                                }
                            }
                        });
                        shared.members.lock().unwrap().push(h);
                    }
                    Err(TopicError::Closed) => {}
                    Err(e) => panic!("seed {seed}: join {e:?}"),
                }
            }
            _ => tokio::task::yield_now().await,
        }
    }
}

async fn queue_less(r: &mut Rng, op: usize, pubs: &mut Vec<(u64, u64, Publisher)>, shared: &Shared, pids: &AtomicU64, seed: u64) {
    match op {
        1..=3 => {
            let k = r.below(pubs.len());
            let (pid, seq, p) = &mut pubs[k];
            let v = *pid << 32 | *seq;
            *seq += 1;
            let gone_at = shared.gone.load(Ordering::SeqCst);
            let rec = match p.publish(v).await {
                Ok(o) => Ok(o),
                Err(PublishError::Closed(back)) => {
                    assert_eq!(back, v);
                    Err(())
                }
                Err(e) => panic!("seed {seed}: publish {e:?}"),
            };
            shared.history.lock().unwrap().push((*pid, v & 0xFFFF_FFFF, rec.is_ok(), gone_at));
            shared.ev(format!("(no queue) publish {pid}/{} to {}: {rec:?} (gone at start {gone_at})", v & 0xFFFF_FFFF, p.topic()));
            shared.published.lock().unwrap().insert(v, rec);
        }
        4 if pubs.len() < 8 => {
            let k = r.below(pubs.len());
            let pid = pids.fetch_add(1, Ordering::Relaxed);
            let c = pubs[k].2.clone();
            shared.ev(format!("(no queue) clone {} -> {pid} ({})", pubs[k].0, c.topic()));
            pubs.push((pid, 0, c));
        }
        _ => {
            let k = r.below(pubs.len());
            let (pid, _, p) = pubs.swap_remove(k);
            shared.ev(format!("(no queue) drop {pid} ({})", p.topic()));
        }
    }
}

async fn run(seed: u64, workers: u64, ops: usize, ending: usize) {
    let mq = MessageQueue::new();
    let shared = Arc::new(Shared::default());
    let pids = Arc::new(AtomicU64::new(1));
    let mut hs = Vec::new();
    shared.clones.store(workers as usize, Ordering::SeqCst);
    for w in 0..workers {
        hs.push(tokio::spawn(worker(seed, w, mq.clone(), shared.clone(), pids.clone(), ops, ending == 3)));
    }
    let mq = if ending == 3 {
        drop(mq);
        None
    } else {
        Some(mq)
    };
    if ending == 2 {
        // Close mid-run.
        let want = (seed % 300) as usize;
        while shared.published.lock().unwrap().len() < want && !hs.iter().all(|h| h.is_finished()) {
            tokio::task::yield_now().await;
        }
        mq.as_ref().unwrap().close();
    }
    for h in hs {
        h.await.unwrap();
    }
    match ending {
        0 => mq.as_ref().unwrap().close(),
        _ => drop(mq),
    }
    // Per publisher handle: never Ok after Closed; with no queue handle
    // left (and no close), never Closed after an Ok.
    let mut history = std::mem::take(&mut *shared.history.lock().unwrap());
    history.sort();
    if seed % 250 == 3 {
        eprintln!("seed {seed} ending {ending}: {} publishes after the queue was gone, {} ok", history.iter().filter(|h| h.3).count(), history.iter().filter(|h| h.3 && h.2).count());
    }
    for w in history.windows(2) {
        let ((p0, s0, ok0, gone0), (p1, s1, ok1, _)) = (w[0], w[1]);
        if p0 != p1 {
            continue;
        }
        assert!(ok0 || !ok1, "seed {seed}: publisher {p0} failed (seq {s0}) then succeeded (seq {s1})");
        if ending == 3 && ok0 && gone0 && !ok1 {
            for e in shared.events.lock().unwrap().iter() {
                eprintln!("  {e}");
            }
            assert!(ok1, "seed {seed}: publisher {p0} published after the queue was gone (seq {s0}), then its topic closed under it (seq {s1})");
        }
    }
    // Every reader must end now.
    let readers: Vec<_> = std::mem::take(&mut *shared.readers.lock().unwrap());
    let members: Vec<_> = std::mem::take(&mut *shared.members.lock().unwrap());
    let mut member_values = std::collections::HashSet::new();
    let published_now = shared.published.lock().unwrap().clone();
    for h in members {
        let (topic, seen, end) = h.await.unwrap();
        assert_eq!(end, RecvError::Closed, "seed {seed}: member of {topic} ended with {end:?}");
        for (off, v) in seen {
            assert_eq!(published_now.get(&v), Some(&Ok(off)), "seed {seed}: member of {topic} got {v:#x} at {off}");
            if !member_values.insert(v) {
                for e in shared.events.lock().unwrap().iter() {
                    eprintln!("  {e}");
                }
                panic!("seed {seed}: {v:#x} delivered to two members of group g");
            }
        }
    }
    let mut results = Vec::new();
    for h in readers {
        let (topic, seen, end) = h.await.unwrap();
        assert_eq!(end, RecvError::Closed, "seed {seed}: reader of {topic} ended with {end:?}");
        results.push((topic, seen));
    }
    let published = shared.published.lock().unwrap().clone();
    // Per reader: contiguous offsets; every value was published with that
    // offset.
    for (topic, seen) in &results {
        for w in seen.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "seed {seed}: reader of {topic} not contiguous: {seen:?}");
        }
        for (off, v) in seen {
            assert_eq!(published.get(v), Some(&Ok(*off)), "seed {seed}: reader of {topic} got {v:#x} at {off}");
        }
    }
    // Components: readers linked by shared publishers (pid) form one
    // incarnation; a pid's successful publishes all lie in one
    // incarnation, each value delivered to every reader whose window
    // covers it.
    let mut comp_of_pid: HashMap<u64, usize> = HashMap::new();
    let mut parent: Vec<usize> = (0..results.len()).collect();
    fn find(p: &mut Vec<usize>, x: usize) -> usize {
        let mut x = x;
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (i, (_, seen)) in results.iter().enumerate() {
        for (_, v) in seen {
            let pid = v >> 32;
            match comp_of_pid.get(&pid) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    comp_of_pid.insert(pid, i);
                }
            }
        }
    }
    let mut comps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..results.len() {
        if !results[i].1.is_empty() {
            let c = find(&mut parent, i);
            comps.entry(c).or_default().push(i);
        }
    }
    if seed % 250 == 0 || seed % 250 == 2 {
        let ok = published.values().filter(|r| r.is_ok()).count();
        let seen: usize = results.iter().map(|r| r.1.len()).sum();
        eprintln!("seed {seed} ending {ending}: published ok {ok} of {}, readers {}, comps {}, seen {seen}", published.len(), results.len(), comps.len());
    }
    for members in comps.values() {
        // The incarnation's full log: offset -> value, from every reader.
        let mut log: BTreeMap<u64, u64> = BTreeMap::new();
        for &i in members {
            for &(off, v) in &results[i].1 {
                if let Some(prev) = log.insert(off, v) {
                    assert_eq!(prev, v, "seed {seed}: two values at offset {off} in one incarnation of {}", results[i].0);
                }
            }
        }
        let topic = &results[members[0]].0;
        for &i in members {
            assert_eq!(&results[i].0, topic, "seed {seed}: an incarnation seen under two names");
        }
        // Every reader reads to the end of the log.
        let last = *log.keys().next_back().unwrap();
        for &i in members {
            assert_eq!(results[i].1.last().unwrap().0, last, "seed {seed}: a reader of {topic} stopped short");
        }
        // Every successful publish of a pid of this incarnation is in it.
        let pids: std::collections::HashSet<u64> = log.values().map(|v| v >> 32).collect();
        for (v, res) in &published {
            if pids.contains(&(v >> 32)) {
                if let Ok(off) = res {
                    if off < log.keys().next().unwrap() {
                        continue;
                    }
                    assert_eq!(log.get(off), Some(v), "seed {seed}: {v:#x} published at {off} of {topic} is missing");
                }
            }
        }
    }
}

fn many(flavor_multi: bool, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let rt = if flavor_multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(3)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
        };
        let ending = (seed % 4) as usize;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), run(seed, 4, 150, ending))
                .await
                .unwrap_or_else(|_| panic!("seed {seed} (ending {ending}) timed out"));
        });
    }
}

#[test]
fn concurrent_lifecycle_one_seed() {
    let Some(seed) = std::env::var("PROBE_SEED").ok().and_then(|s| s.parse::<u64>().ok()) else { return };
    for _ in 0..200 {
        many(true, seed..seed + 1);
    }
}

#[test]
fn concurrent_lifecycle_current_thread() {
    many(false, 0..1500 * scale());
}

#[test]
fn concurrent_lifecycle_multi_thread() {
    many(true, 5000..5000 + 1500 * scale());
}

fn scale() -> u64 {
    std::env::var("PROBE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}
