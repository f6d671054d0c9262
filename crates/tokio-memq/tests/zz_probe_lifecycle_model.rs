//! Probe (lifecycle): a sequential, seeded model of the registry and the
//! handles' lifecycles: queue clones, publishers (bound on first publish,
//! clones, sinks), subscribers, create/delete/list/stats, close, and topics
//! closing with their last publisher once no queue handle is left.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::SinkExt;
use tokio_memq::{
    ConsumptionMode, MessageQueue, PublishError, Publisher, Subscriber, TopicError, TopicOptions, TryRecvError,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
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
        2 => TopicOptions {
            max_messages: None,
            ..TopicOptions::default()
        },
        _ => TopicOptions {
            max_messages: None,
            partitions: Some(1),
            ..TopicOptions::default()
        },
    }
}

/// The retention of an options kind.
fn ret(kind: usize) -> usize {
    if kind == 3 { 2 } else { kind }
}

const NAMES: &[&str] = &["a", "b.c", "", " ", "ünï.çødé", "orders.*", "x.>"];

struct Inc {
    name: &'static str,
    opts: usize,
    parts: Option<usize>,
    msgs: Vec<u64>,
    closed: bool,
}

enum PubHandle {
    Pub(Publisher),
    Sink(tokio_memq::PublishSink<u64>),
}

struct PubModel {
    id: u64,
    name: &'static str,
    bound: Option<usize>,
    seq: u64,
    h: PubHandle,
}

struct SubModel {
    inc: usize,
    pos: usize,
    h: Subscriber,
}

struct MemberModel {
    inc: usize,
    dl: &'static str,
    h: Subscriber,
}

struct Model {
    members: Vec<MemberModel>,
    /// The dead-letter topic of group "g" of each incarnation.
    groups: HashMap<usize, &'static str>,
    queues: Vec<MessageQueue>,
    gone: bool,
    closed: bool,
    current: BTreeMap<&'static str, usize>,
    incs: Vec<Inc>,
    pubs: Vec<PubModel>,
    subs: Vec<SubModel>,
    next_pid: u64,
    log: Vec<String>,
}

impl Model {
    fn counts(&self, name: &str) -> usize {
        self.pubs
            .iter()
            .filter(|p| p.name == name)
            .filter(|p| match p.bound {
                None => true,
                Some(i) => self.current.get(name) == Some(&i),
            })
            .count()
            + self.members.iter().filter(|m| m.dl == name).count()
    }

    /// After a lease change: close the current topic of `name` if nobody
    /// can publish to it any more.
    fn maybe_close(&mut self, name: &'static str) {
        if self.gone && self.counts(name) == 0 {
            if let Some(&i) = self.current.get(name) {
                self.incs[i].closed = true;
            }
        }
    }

    fn create(&mut self, name: &'static str, opts: usize) -> usize {
        self.create_p(name, opts, None)
    }

    fn create_p(&mut self, name: &'static str, opts: usize, parts: Option<usize>) -> usize {
        let opts = ret(opts);
        self.incs.push(Inc {
            name,
            opts,
            parts,
            msgs: Vec::new(),
            closed: false,
        });
        let i = self.incs.len() - 1;
        self.current.insert(name, i);
        i
    }

    fn q(&self) -> &MessageQueue {
        &self.queues[0]
    }
}

async fn run_seed(seed: u64, steps: usize) {
    let mut r = Rng(seed);
    let mut m = Model {
        members: Vec::new(),
        groups: HashMap::new(),
        queues: vec![MessageQueue::new()],
        gone: false,
        closed: false,
        current: BTreeMap::new(),
        incs: Vec::new(),
        pubs: Vec::new(),
        subs: Vec::new(),
        next_pid: 0,
        log: Vec::new(),
    };
    let drop_last = [3usize, 30, 200][r.below(3)];
    let close_p = [40usize, 400, 1_000_000][r.below(3)];
    for step in 0..steps {
        let op = r.below(21);
        let name = NAMES[r.below(NAMES.len())];
        let ctx = |m: &Model, what: &str| format!("seed {seed} step {step} op {what}; log tail: {:?}", &m.log[m.log.len().saturating_sub(12)..]);
        match op {
            // New publisher (needs a queue handle).
            0 | 1 if !m.gone => {
                let id = m.next_pid;
                m.next_pid += 1;
                let p = m.q().publisher(name);
                assert_eq!(p.topic(), name);
                let h = if r.below(4) == 0 {
                    PubHandle::Sink(p.sink::<u64>())
                } else {
                    PubHandle::Pub(p)
                };
                m.log.push(format!("pub {id} for {name:?}"));
                m.pubs.push(PubModel {
                    id,
                    name,
                    bound: None,
                    seq: 0,
                    h,
                });
            }
            // Publish with a random publisher.
            2..=5 if !m.pubs.is_empty() => {
                let k = r.below(m.pubs.len());
                let pname = m.pubs[k].name;
                // Model.
                let target = if m.closed {
                    None
                } else {
                    match m.pubs[k].bound {
                        Some(i) => Some(i),
                        None => {
                            let i = match m.current.get(pname) {
                                Some(&i) => i,
                                None => m.create(pname, 0),
                            };
                            m.pubs[k].bound = Some(i);
                            Some(i)
                        }
                    }
                };
                let pid = m.pubs[k].id;
                let seq = m.pubs[k].seq;
                m.pubs[k].seq += 1;
                let value = pid << 32 | seq;
                let try_it = r.below(2) == 0;
                m.log.push(format!("publish {pid} {seq} (try {try_it})"));
                let expect = target.and_then(|i| (!m.incs[i].closed).then_some(i));
                match &mut m.pubs[k].h {
                    PubHandle::Pub(p) => {
                        let got = if try_it {
                            p.try_publish(value)
                        } else {
                            p.publish(value).await
                        };
                        match expect {
                            Some(i) if m.incs[i].parts == Some(2) => {
                                assert!(got.is_ok(), "{} {got:?}", ctx(&m, "publish 2"));
                            }
                            Some(i) => {
                                let off = m.incs[i].msgs.len() as u64;
                                assert_eq!(got, Ok(off), "{}", ctx(&m, "publish"));
                            }
                            None => assert_eq!(got, Err(PublishError::Closed(value)), "{}", ctx(&m, "publish closed")),
                        }
                    }
                    PubHandle::Sink(s) => {
                        let got = s.send(value).await;
                        match expect {
                            Some(_) => assert!(got.is_ok(), "{} {got:?}", ctx(&m, "sink")),
                            None => assert!(
                                matches!(got, Err(PublishError::Closed(v)) if v == value),
                                "{} {got:?}",
                                ctx(&m, "sink closed")
                            ),
                        }
                    }
                }
                if let Some(i) = expect {
                    m.incs[i].msgs.push(value);
                }
            }
            // Clone a publisher.
            6 if !m.pubs.is_empty() => {
                let k = r.below(m.pubs.len());
                let id = m.next_pid;
                m.next_pid += 1;
                let h = match &m.pubs[k].h {
                    PubHandle::Pub(p) => PubHandle::Pub(p.clone()),
                    PubHandle::Sink(s) => {
                        if r.below(2) == 0 {
                            PubHandle::Pub(s.publisher().clone())
                        } else {
                            PubHandle::Sink(s.publisher().sink::<u64>())
                        }
                    }
                };
                let (name, bound) = (m.pubs[k].name, m.pubs[k].bound);
                m.log.push(format!("clone {} -> {id}", m.pubs[k].id));
                m.pubs.push(PubModel {
                    id,
                    name,
                    bound,
                    seq: 0,
                    h,
                });
            }
            // Drop a publisher.
            7 if !m.pubs.is_empty() => {
                let k = r.below(m.pubs.len());
                let p = m.pubs.swap_remove(k);
                m.log.push(format!("drop pub {}", p.id));
                let name = p.name;
                drop(p);
                m.maybe_close(name);
            }
            // Subscribe.
            8 | 9 if !m.gone => {
                let with = r.below(3);
                let latest = r.below(3) == 0;
                let mode = if latest {
                    ConsumptionMode::Latest
                } else {
                    ConsumptionMode::Earliest
                };
                let opts = r.below(4);
                m.log.push(format!("subscribe {name:?} with {with} opts {opts} latest {latest}"));
                let got = match with {
                    0 => m.q().blocking_subscriber(name, mode),
                    1 => m.q().subscriber_with_options_and_mode(name, options(opts), mode).await,
                    _ => m.q().subscriber(name).await,
                };
                let mode_used_latest = latest && with != 2;
                if m.closed {
                    assert_eq!(got.err(), Some(TopicError::Closed), "{}", ctx(&m, "subscribe closed"));
                    continue;
                }
                let existing = m.current.get(name).copied();
                let err = match (existing, with) {
                    (Some(i), 1) if opts == 3 && m.incs[i].parts.is_none() => {
                        Some(TopicError::NotPartitioned { topic: name.to_string() })
                    }
                    (Some(i), 1) if m.incs[i].opts != ret(opts) => {
                        Some(TopicError::OptionsMismatch { topic: name.to_string() })
                    }
                    _ => None,
                };
                match err {
                    Some(e) => assert_eq!(got.err(), Some(e), "{}", ctx(&m, "subscribe error")),
                    None => {
                        let i = match existing {
                            Some(i) => i,
                            None if with == 1 && opts == 3 => m.create_p(name, 3, Some(1)),
                            None => m.create(name, if with == 1 { opts } else { 0 }),
                        };
                        let sub = got.unwrap_or_else(|e| panic!("{} {e:?}", ctx(&m, "subscribe")));
                        assert_eq!(sub.topic(), name);
                        // `subscriber` (with == 2) uses LastOffset: no commit, so Latest.
                        let pos = if mode_used_latest || with == 2 { m.incs[i].msgs.len() } else { 0 };
                        m.subs.push(SubModel { inc: i, pos, h: sub });
                    }
                }
            }
            // Receive everything available from a subscriber.
            10 | 11 if !m.subs.is_empty() => {
                let k = r.below(m.subs.len());
                let budget = r.below(5) + 1;
                for _ in 0..budget {
                    let s = &mut m.subs[k];
                    let inc = &m.incs[s.inc];
                    let got = s.h.try_recv_now();
                    if s.pos < inc.msgs.len() {
                        let msg = got.unwrap_or_else(|e| panic!("seed {seed} step {step}: recv {e:?}"));
                        if inc.parts != Some(2) {
                            assert_eq!(msg.offset(), s.pos as u64, "seed {seed} step {step}");
                            assert_eq!(msg.deserialize::<u64>().unwrap(), inc.msgs[s.pos], "seed {seed} step {step}");
                            assert_eq!(msg.partition, inc.parts.map(|_| 0), "seed {seed} step {step}");
                        }
                        assert_eq!(msg.topic(), inc.name);
                        s.pos += 1;
                    } else if inc.closed {
                        assert_eq!(got.err(), Some(TryRecvError::Closed), "seed {seed} step {step} closed sub");
                        break;
                    } else {
                        assert_eq!(got.err(), Some(TryRecvError::Empty), "seed {seed} step {step} empty sub");
                        break;
                    }
                }
            }
            12 if !m.subs.is_empty() => {
                let k = r.below(m.subs.len());
                m.log.push(format!("drop sub of inc {}", m.subs[k].inc));
                m.subs.swap_remove(k);
            }
            // create_topic.
            13 if !m.gone => {
                let opts = r.below(4);
                let got = m.q().create_topic(name, options(opts)).await;
                m.log.push(format!("create {name:?} opts {opts}"));
                if m.closed {
                    assert_eq!(got, Err(TopicError::Closed), "{}", ctx(&m, "create closed"));
                } else {
                    match m.current.get(name) {
                        Some(&i) if opts == 3 && m.incs[i].parts.is_none() => assert_eq!(
                            got,
                            Err(TopicError::NotPartitioned { topic: name.to_string() }),
                            "{}",
                            ctx(&m, "create not partitioned")
                        ),
                        Some(&i) if m.incs[i].opts != ret(opts) => assert_eq!(
                            got,
                            Err(TopicError::OptionsMismatch { topic: name.to_string() }),
                            "{}",
                            ctx(&m, "create mismatch")
                        ),
                        Some(_) => assert_eq!(got, Ok(()), "{}", ctx(&m, "create same")),
                        None => {
                            assert_eq!(got, Ok(()), "{}", ctx(&m, "create"));
                            m.create_p(name, opts, (opts == 3).then_some(1));
                        }
                    }
                }
            }
            // create_partitioned_topic.
            18 if !m.gone => {
                let opts = r.below(3);
                let existing = m.current.get(name).copied();
                let k = match existing {
                    Some(_) => r.below(3),
                    None => [0, 1, 1, 1][r.below(4)],
                };
                let got = m.q().create_partitioned_topic(name, options(opts), k).await;
                m.log.push(format!("create partitioned {name:?} opts {opts} k {k}"));
                let want = if k == 0 {
                    Err(TopicError::PartitionCount { topic: name.to_string(), requested: 0, existing: None })
                } else if m.closed {
                    Err(TopicError::Closed)
                } else {
                    match existing {
                        None => {
                            m.create_p(name, opts, Some(k));
                            Ok(())
                        }
                        Some(i) => match m.incs[i].parts {
                            None => Err(TopicError::NotPartitioned { topic: name.to_string() }),
                            Some(c) if c != k => Err(TopicError::PartitionCount {
                                topic: name.to_string(),
                                requested: k,
                                existing: Some(c),
                            }),
                            Some(_) if m.incs[i].opts != opts => {
                                Err(TopicError::OptionsMismatch { topic: name.to_string() })
                            }
                            Some(_) => Ok(()),
                        },
                    }
                };
                assert_eq!(got, want, "{}", ctx(&m, "create partitioned"));
            }
            // Join / leave group "g".
            20 if !m.gone && r.below(2) == 0 => {
                let dl = NAMES[r.below(NAMES.len())];
                let got = m.q().group(name, "g").manual_ack().max_deliveries(3).dead_letter_topic(dl).join().await;
                m.log.push(format!("join {name:?} dl {dl:?}"));
                if m.closed {
                    assert_eq!(got.err(), Some(TopicError::Closed), "{}", ctx(&m, "join closed"));
                } else {
                    let i = match m.current.get(name) {
                        Some(&i) => i,
                        None => m.create(name, 0),
                    };
                    let dl = match m.groups.get(&i) {
                        Some(&d) => d,
                        None => {
                            if !m.current.contains_key(dl) {
                                m.create(dl, 0);
                            }
                            m.groups.insert(i, dl);
                            dl
                        }
                    };
                    let h = got.unwrap_or_else(|e| panic!("{} {e:?}", ctx(&m, "join")));
                    m.members.push(MemberModel { inc: i, dl, h });
                }
            }
            20 if !m.members.is_empty() => {
                let k = r.below(m.members.len());
                let gone = m.members.swap_remove(k);
                m.log.push(format!("leave member of inc {} dl {:?}", gone.inc, gone.dl));
                let dl = gone.dl;
                drop(gone);
                m.maybe_close(dl);
            }
            // delete_partitioned_topic / publish_to_partitioned.
            19 if !m.gone => {
                if r.below(2) == 0 {
                    let got = m.q().delete_partitioned_topic(name).await;
                    m.log.push(format!("delete partitioned {name:?}"));
                    match m.current.get(name).copied() {
                        Some(i) if m.incs[i].parts.is_some() => {
                            assert!(got, "{}", ctx(&m, "delete partitioned"));
                            m.current.remove(name);
                            m.incs[i].closed = true;
                        }
                        _ => assert!(!got, "{}", ctx(&m, "delete partitioned missing")),
                    }
                } else {
                    let value = 0xFFFF_0000_0000 | step as u64;
                    let msg = tokio_memq::TopicMessage::new(name, value).unwrap();
                    let got = m.q().publish_to_partitioned(msg).await;
                    m.log.push(format!("publish_to_partitioned {name:?}"));
                    match m.current.get(name).copied() {
                        Some(i) if m.incs[i].parts == Some(1) => {
                            let off = m.incs[i].msgs.len() as u64;
                            assert_eq!(got.as_ref().ok(), Some(&(0, off)), "{} {got:?}", ctx(&m, "publish_to_partitioned"));
                            m.incs[i].msgs.push(value);
                        }
                        Some(i) if m.incs[i].parts.is_some() => {
                            // Two partitions: the model does not follow them;
                            // just require success.
                            assert!(got.is_ok(), "{} {got:?}", ctx(&m, "publish_to_partitioned 2"));
                            m.incs[i].msgs.push(u64::MAX); // poison: not checked
                        }
                        _ => assert!(
                            matches!(got, Err(PublishError::Unroutable(_))),
                            "{} {got:?}",
                            ctx(&m, "publish_to_partitioned unroutable")
                        ),
                    }
                }
            }
            // delete_topic.
            14 if !m.gone => {
                let got = m.q().delete_topic(name).await;
                m.log.push(format!("delete {name:?}"));
                match m.current.remove(name) {
                    Some(i) => {
                        assert!(got, "{}", ctx(&m, "delete existing"));
                        m.incs[i].closed = true;
                    }
                    None => assert!(!got, "{}", ctx(&m, "delete missing")),
                }
            }
            // list + stats + is_closed checks.
            15 if !m.gone => {
                let listed = m.q().list_topics().await;
                let want: Vec<String> = m.current.keys().map(|k| k.to_string()).collect();
                assert_eq!(listed, want, "{}", ctx(&m, "list"));
                for (&n, &i) in &m.current {
                    let st = m.q().get_topic_stats(n).await.unwrap_or_else(|| panic!("{}", ctx(&m, "stats")));
                    let subs = m.subs.iter().filter(|s| s.inc == i).count()
                        + m.members.iter().filter(|s| s.inc == i).count();
                    let inc = &m.incs[i];
                    if inc.parts == Some(2) {
                        assert_eq!((st.published, st.message_count), (inc.msgs.len() as u64, inc.msgs.len()), "{}", ctx(&m, "stats 2"));
                        continue;
                    }
                    assert_eq!(
                        (st.published, st.message_count, st.subscriber_count, st.low_offset, st.next_offset),
                        (inc.msgs.len() as u64, inc.msgs.len(), subs, 0, if inc.parts.is_some() { 0 } else { inc.msgs.len() as u64 }),
                        "{} stats of {n:?}",
                        ctx(&m, "stats")
                    );
                }
                for n in NAMES {
                    if !m.current.contains_key(n) {
                        assert!(m.q().get_topic_stats(n).await.is_none(), "{}", ctx(&m, "stats none"));
                    }
                }
            }
            // Queue clone / drop.
            16 if !m.gone => {
                if r.below(2) == 0 || m.queues.len() == 1 && r.below(drop_last) != 0 {
                    let c = m.queues[0].clone();
                    m.queues.push(c);
                    m.log.push("queue clone".into());
                } else {
                    let k = r.below(m.queues.len());
                    m.queues.swap_remove(k);
                    m.log.push(format!("queue drop, {} left", m.queues.len()));
                    if m.queues.is_empty() {
                        m.gone = true;
                        let names: Vec<_> = m.current.keys().copied().collect();
                        for n in names {
                            m.maybe_close(n);
                        }
                    }
                }
            }
            // close (rarely).
            17 if !m.gone && r.below(close_p) == 0 => {
                m.q().close();
                m.log.push("close".into());
                m.closed = true;
                for i in m.current.values() {
                    m.incs[*i].closed = true;
                }
                m.current.clear();
                assert!(m.q().is_closed());
            }
            _ => {}
        }
        // Every step: the handles' is_closed match the model.
        for s in &m.subs {
            assert_eq!(
                s.h.is_closed(),
                m.incs[s.inc].closed,
                "{} sub of inc {} is_closed",
                ctx(&m, "sub is_closed"),
                s.inc
            );
        }
        for s in &m.members {
            assert_eq!(s.h.is_closed(), m.incs[s.inc].closed, "{} member is_closed", ctx(&m, "member is_closed"));
        }
        for p in &m.pubs {
            let want = m.closed || p.bound.is_some_and(|i| m.incs[i].closed);
            let h = match &p.h {
                PubHandle::Pub(p) => p,
                PubHandle::Sink(s) => s.publisher(),
            };
            assert_eq!(h.is_closed(), want, "{} pub {} is_closed", ctx(&m, "pub is_closed"), p.id);
        }
    }
    if std::env::var("PROBE_ALL").is_ok() || seed % 500 == 0 {
        let recv: usize = m.subs.iter().map(|s| s.pos).sum();
        let msgs: usize = m.incs.iter().map(|i| i.msgs.len()).sum();
        eprintln!("seed {seed}: incs {} msgs {msgs} live subs {} recv {recv} pubs {} gone {} closed {} log {}", m.incs.len(), m.subs.len(), m.pubs.len(), m.gone, m.closed, m.log.len());
    }
    drop(m);
}

#[test]
fn lifecycle_model_current_thread() {
    for seed in 0..3000u64 * scale() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), run_seed(seed, 400 * scale() as usize))
                .await
                .unwrap_or_else(|_| panic!("seed {seed} timed out"));
        });
    }
}

#[test]
fn lifecycle_model_multi_thread() {
    for seed in 10000..10000 + 1000u64 * scale() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), run_seed(seed, 400 * scale() as usize))
                .await
                .unwrap_or_else(|_| panic!("seed {seed} timed out"));
        });
    }
}

#[allow(dead_code)]
fn _unused(_: HashMap<u8, u8>) {}

fn scale() -> u64 {
    std::env::var("PROBE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}
