//! Random sequences of operations on a tiny topic, each step checked
//! against the contract (not against the implementation): published
//! messages are delivered intact and in order, a cursor skips only what it
//! was told it lagged over or what had expired, a lag report counts only
//! messages evicted for capacity (never expired ones), backpressure only refuses
//! a publish when a live cursor still needs the oldest message, offsets
//! are dense, and what was published is always accounted for as retained,
//! evicted or expired.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use memq_core::{Cursor, Overflow, PublishError, StartFrom, Topic, TopicConfig, TryRecvError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Config {
    cap: usize,
    ttl_ms: Option<u64>,
    block: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Publish,
    PublishBatch(usize),
    Subscribe(u8, u64),
    SubscribeNamed,
    TryRecv(usize),
    TryRecvBatch(usize, usize),
    Seek(usize, u64),
    Commit(usize, u64),
    Drop(usize),
    Advance(u64),
    Close,
}

fn config() -> impl Strategy<Value = Config> {
    (1usize..5, prop::option::of(1u64..50), any::<bool>()).prop_map(|(cap, ttl_ms, block)| Config {
        cap,
        ttl_ms,
        block,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Publish),
        2 => (0usize..5).prop_map(Op::PublishBatch),
        2 => (0u8..3, 0u64..12).prop_map(|(k, o)| Op::Subscribe(k, o)),
        1 => Just(Op::SubscribeNamed),
        6 => (0usize..4).prop_map(Op::TryRecv),
        3 => (0usize..4, 0usize..6).prop_map(|(c, m)| Op::TryRecvBatch(c, m)),
        1 => (0usize..4, 0u64..12).prop_map(|(c, o)| Op::Seek(c, o)),
        1 => (0usize..4, 0u64..12).prop_map(|(c, o)| Op::Commit(c, o)),
        1 => (0usize..4).prop_map(Op::Drop),
        2 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Close),
    ]
}

struct Reader {
    cursor: Cursor<u64>,
    /// The next offset the contract says it may deliver: every offset
    /// below it was delivered, announced as lagged, or expired.
    next: u64,
    /// Offsets announced as skipped (lagged) since `next` was set.
    lagged: u64,
    named: bool,
    /// Resumed below the window (a named consumer whose commit was
    /// evicted): its first receive may report that gap even under
    /// backpressure.
    resumed_below: bool,
}

struct Run {
    cfg: Config,
    topic: Topic<u64>,
    /// Publish time (ms) of each offset; values are `offset * 10 + 7`.
    published: HashMap<u64, u64>,
    /// Offsets removed to make room (as opposed to expired): a publish
    /// sweeps what has expired first, so what else it removes was live.
    evicted: BTreeSet<u64>,
    high: u64,
    now_ms: u64,
    readers: Vec<Option<Reader>>,
    closed: bool,
    committed: Option<u64>,
}

impl Run {
    fn expired(&self, offset: u64) -> bool {
        match (self.cfg.ttl_ms, self.published.get(&offset)) {
            (Some(ttl), Some(&t)) => self.now_ms - t >= ttl,
            _ => false,
        }
    }

    fn low(&self) -> u64 {
        self.topic.stats().low
    }

    /// How many offsets in `[from, to)` were evicted.
    fn evicted_in(&self, from: u64, to: u64) -> u64 {
        self.evicted.range(from..to.max(from)).count() as u64
    }

    /// Records what a publish removed from `[before, low now)`: what had
    /// not expired was evicted.
    fn record_evictions(&mut self, before: u64) {
        let after = self.low();
        for o in before..after {
            if !self.expired(o) {
                self.evicted.insert(o);
            }
        }
    }

    fn reader(&mut self, i: usize) -> Option<&mut Reader> {
        let n = self.readers.len();
        if n == 0 {
            return None;
        }
        self.readers[i % n].as_mut()
    }

    /// Checks one delivered message and moves the reader past it.
    fn delivered(&mut self, i: usize, offset: u64, value: u64) -> Result<(), TestCaseError> {
        let n = self.readers.len();
        let (from, lagged) = {
            let r = self.readers[i % n].as_ref().unwrap();
            (r.next, r.lagged)
        };
        prop_assert_eq!(
            value,
            offset * 10 + 7,
            "delivered value matches what was published"
        );
        prop_assert!(
            offset >= from,
            "offset {} delivered again (next was {})",
            offset,
            from
        );
        prop_assert!(
            !self.expired(offset),
            "offset {} delivered after it expired",
            offset
        );
        let live_skipped = (from..offset).filter(|&o| !self.expired(o)).count() as u64;
        prop_assert!(
            live_skipped <= lagged,
            "{} unexpired offsets before {} skipped, only {} announced",
            live_skipped,
            offset,
            lagged
        );
        let evicted = self.evicted_in(from, offset);
        prop_assert!(
            lagged <= evicted,
            "announced {} skips in a gap of {} where {} were evicted (expired ones are not lag)",
            lagged,
            offset - from,
            evicted
        );
        let r = self.readers[i % n].as_mut().unwrap();
        r.next = offset + 1;
        r.lagged = 0;
        Ok(())
    }

    fn lagged(&mut self, i: usize, lag: u64) -> Result<(), TestCaseError> {
        prop_assert!(lag > 0);
        let low = self.low();
        let n = self.readers.len();
        let r = self.readers[i % n].as_mut().unwrap();
        prop_assert!(
            !self.cfg.block || std::mem::take(&mut r.resumed_below),
            "backpressure never makes a live cursor lag"
        );
        r.lagged += lag;
        let (next, lagged) = (r.next, r.lagged);
        // Everything announced as skipped has left the window, evicted.
        prop_assert!(
            next + lagged <= low,
            "{} skips announced after {} but the window starts at {}",
            lagged,
            next,
            low
        );
        let evicted = self.evicted_in(next, low);
        prop_assert!(
            lagged <= evicted,
            "{} skips announced after {}, only {} evicted",
            lagged,
            next,
            evicted
        );
        Ok(())
    }

    /// Nothing was deliverable: everything unexpired from `next` on has
    /// left the window and was announced.
    fn nothing(&mut self, i: usize) -> Result<(), TestCaseError> {
        let n = self.readers.len();
        let (from, lagged) = {
            let r = self.readers[i % n].as_ref().unwrap();
            (r.next, r.lagged)
        };
        let low = self.low();
        for o in from.max(low)..self.high {
            prop_assert!(
                self.expired(o),
                "offset {} was deliverable but nothing was returned",
                o
            );
        }
        let gone_live = (from..low.min(self.high)).filter(|&o| !self.expired(o)).count() as u64;
        prop_assert!(
            gone_live <= lagged,
            "{} offsets evicted unread, {} announced",
            gone_live,
            lagged
        );
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Publish => {
                let low = self.low();
                let full = (self.high - low) as usize >= self.cfg.cap;
                let needed = self.readers.iter().flatten().any(|r| r.next <= low);
                let published = self.topic.try_publish(self.high * 10 + 7);
                self.record_evictions(low);
                match published {
                    Ok(o) => {
                        prop_assert!(!self.closed);
                        prop_assert_eq!(o, self.high, "offsets are dense");
                        self.published.insert(o, self.now_ms);
                        self.high += 1;
                    }
                    Err(PublishError::Full(_)) => {
                        prop_assert!(
                            self.cfg.block && full && needed,
                            "refused without a reader needing the oldest"
                        );
                    }
                    Err(PublishError::Closed(_)) => prop_assert!(self.closed),
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            Op::PublishBatch(n) => {
                let values: Vec<u64> = (0..n as u64).map(|i| (self.high + i) * 10 + 7).collect();
                let low = self.low();
                let published = self.topic.try_publish_batch(values);
                self.record_evictions(low);
                match published {
                    Ok(r) => {
                        prop_assert_eq!(r.clone(), self.high..self.high + n as u64, "contiguous run");
                        for o in r {
                            self.published.insert(o, self.now_ms);
                        }
                        self.high += n as u64;
                    }
                    Err(PublishError::TooLarge(_)) => prop_assert!(n > self.cfg.cap),
                    Err(PublishError::Full(_)) => prop_assert!(self.cfg.block),
                    Err(PublishError::Closed(_)) => prop_assert!(self.closed),
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            Op::Subscribe(kind, o) => {
                let low = self.low();
                let start = match kind {
                    0 => StartFrom::Earliest,
                    1 => StartFrom::Latest,
                    _ => StartFrom::Offset(o),
                };
                match self.topic.subscribe(start) {
                    Ok(cursor) => {
                        let next = match start {
                            StartFrom::Earliest => low,
                            StartFrom::Offset(o) => {
                                prop_assert!(
                                    low <= o && o <= self.high,
                                    "{} accepted outside {}..={}",
                                    o,
                                    low,
                                    self.high
                                );
                                o
                            }
                            _ => self.high,
                        };
                        self.readers.push(Some(Reader {
                            cursor,
                            next,
                            lagged: 0,
                            named: false,
                            resumed_below: false,
                        }));
                    }
                    Err(memq_core::SubscribeError::OutOfRange(r)) => {
                        prop_assert!(o < low || o > self.high);
                        prop_assert_eq!((r.low, r.high), (low, self.high));
                    }
                    Err(memq_core::SubscribeError::Closed) => prop_assert!(self.closed),
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            Op::SubscribeNamed => match self.topic.subscribe_named("n", StartFrom::Committed) {
                Ok(cursor) => {
                    let next = self.committed.map_or(self.high, |c| c + 1);
                    let resumed_below = next < self.low();
                    self.readers.push(Some(Reader {
                        cursor,
                        next,
                        lagged: 0,
                        named: true,
                        resumed_below,
                    }));
                }
                Err(_) => prop_assert!(self.closed),
            },
            Op::TryRecv(i) => {
                let Some(r) = self.reader(i) else { return Ok(()) };
                match r.cursor.try_recv() {
                    Ok(d) => self.delivered(i, d.offset, d.value)?,
                    Err(TryRecvError::Lagged(n)) => self.lagged(i, n)?,
                    Err(TryRecvError::Empty) => self.nothing(i)?,
                    Err(TryRecvError::Closed) => {
                        prop_assert!(self.closed);
                        self.nothing(i)?;
                    }
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            Op::TryRecvBatch(i, max) => {
                let Some(r) = self.reader(i) else { return Ok(()) };
                let mut out = Vec::new();
                match r.cursor.try_recv_batch(max, &mut out) {
                    Ok(n) => {
                        prop_assert_eq!(n, out.len());
                        prop_assert!(n <= max);
                        for d in out {
                            self.delivered(i, d.offset, d.value)?;
                        }
                    }
                    Err(TryRecvError::Lagged(n)) => self.lagged(i, n)?,
                    Err(TryRecvError::Empty) => self.nothing(i)?,
                    Err(TryRecvError::Closed) => self.nothing(i)?,
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            }
            Op::Seek(i, o) => {
                let low = self.low();
                let high = self.high;
                let Some(r) = self.reader(i) else { return Ok(()) };
                match r.cursor.seek(o) {
                    Ok(()) => {
                        prop_assert!(low <= o && o <= high);
                        r.next = o;
                        r.lagged = 0;
                        prop_assert_eq!(r.cursor.position(), o);
                    }
                    Err(e) => prop_assert!(o < low || o > high, "seek {} refused inside window: {}", o, e),
                }
            }
            Op::Commit(i, o) => {
                let high = self.high;
                let Some(r) = self.reader(i) else { return Ok(()) };
                let named = r.named;
                match r.cursor.commit(o) {
                    Ok(()) => {
                        prop_assert!(o < high);
                        if named {
                            self.committed = Some(o);
                        }
                    }
                    Err(_) => prop_assert!(o >= high),
                }
            }
            Op::Drop(i) => {
                let n = self.readers.len();
                if n > 0 {
                    self.readers[i % n] = None;
                }
            }
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms)).await_blocking();
                self.now_ms += ms;
            }
            Op::Close => {
                self.topic.close();
                self.closed = true;
            }
        }
        // Conservation and bounds after every step.
        let s = self.topic.stats();
        prop_assert_eq!(s.high, self.high);
        prop_assert_eq!(s.published, self.high);
        prop_assert!(s.depth as usize <= self.cfg.cap);
        prop_assert_eq!(
            s.depth + s.evicted + s.expired,
            s.published,
            "every message accounted for"
        );
        prop_assert_eq!(s.subscribers, self.readers.iter().flatten().count());
        Ok(())
    }
}

/// `advance` is async; the model runs inside a paused current-thread
/// runtime, so drive it to completion in place.
trait AwaitBlocking {
    fn await_blocking(self);
}

impl<F: std::future::Future<Output = ()>> AwaitBlocking for F {
    fn await_blocking(self) {
        tokio::runtime::Handle::current().block_on(self);
    }
}

fn run(cfg: Config, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let topic = Topic::new(
        TopicConfig::default()
            .max_messages(Some(cfg.cap))
            .ttl(cfg.ttl_ms.map(Duration::from_millis))
            .overflow(if cfg.block {
                Overflow::Block
            } else {
                Overflow::DropOldest
            }),
    )
    .unwrap();
    let mut run = Run {
        cfg,
        topic,
        published: HashMap::new(),
        evicted: BTreeSet::new(),
        high: 0,
        now_ms: 0,
        readers: Vec::new(),
        closed: false,
        committed: None,
    };
    for op in ops {
        run.step(op)?;
    }
    Ok(())
}

/// `MEMQ_STRESS` (set by `cargo xtask stress`) multiplies the cases.
fn cases() -> u32 {
    512 * memq_testkit::stress_scale()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_step_keeps_the_contract(cfg in config(), ops in prop::collection::vec(op(), 1..120)) {
        run(cfg, ops)?;
    }
}
