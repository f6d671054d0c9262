//! Wildcard subscriptions: one subscriber reading every topic whose name
//! matches a NATS-style pattern, including topics created after it
//! subscribed.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use parking_lot::Mutex;

use crate::error::{RecvError, TopicError};
use crate::log::Log;
use crate::message::TopicMessage;
use crate::queue::{Registry, TopicEntry};
use crate::subscriber::{Subscriber, Wait};

/// A parsed subject pattern: `.`-separated tokens, `*` for any one
/// token, `>` (last only) for one or more trailing tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    One,
    Rest,
}

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Result<Self, TopicError> {
        let invalid = |reason: &'static str| TopicError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(invalid("the pattern is empty"));
        }
        let parts: Vec<&str> = pattern.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "" => return Err(invalid("a token is empty (two dots, or a dot at an end)")),
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(invalid("`>` may only be the last token")),
                p if p.contains(['*', '>']) => {
                    return Err(invalid(
                        "`*` and `>` must be whole tokens (`orders.*`, not `orders*`)",
                    ))
                }
                p => Token::Literal(p.to_owned()),
            };
            tokens.push(token);
        }
        Ok(Pattern {
            source: pattern.to_owned(),
            tokens,
        })
    }

    /// True when the topic `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let mut parts = name.split('.');
        for token in &self.tokens {
            match (token, parts.next()) {
                (_, None) => return false,
                (_, Some("")) => return false,
                (Token::Literal(l), Some(p)) if l != p => return false,
                (Token::Rest, Some(_)) => return parts.all(|p| !p.is_empty()),
                _ => {}
            }
        }
        parts.next().is_none()
    }
}

/// What the registry tells a wildcard subscription about a topic created
/// after it subscribed: the topic, with a reader made when it was created
/// (before anything could be published to it).
pub(crate) struct Created {
    name: Arc<str>,
    log: Log,
    reader: Reader,
}

enum Reader {
    Plain(memq_core::Cursor<crate::message::Entry>),
    Merged(memq_partition::MergedCursor<crate::message::Entry>),
}

impl Reader {
    /// Its topic is deleted (or the queue closed) and it has nothing left
    /// to read there: keeping it would only hold memory.
    fn is_done(&self) -> bool {
        match self {
            Reader::Plain(c) => c.is_closed() && c.lag() == 0,
            Reader::Merged(c) => c.is_closed() && c.lag() == 0,
        }
    }
}

/// [`WatchState::prune_at`]'s floor.
const PRUNE_AT_LEAST: usize = 16;

/// The part of a wildcard subscription the registry sees.
pub(crate) struct Watch {
    pattern: Pattern,
    state: Mutex<WatchState>,
    /// The next receive's slot in [`WatchState::wakers`].
    next_slot: std::sync::atomic::AtomicU64,
    /// Whether [`WatchState::created`] may hold topics (set under the
    /// state lock with them), so that a receive need not take the lock to
    /// find out that nothing is new.
    has_created: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct WatchState {
    created: Vec<Created>,
    /// How long [`created`](Self::created) may grow before the topics
    /// deleted with nothing to read are taken out of it (twice what it
    /// kept last time, so that an unread subscription's memory follows
    /// the topics that matter to it, at a constant cost per topic).
    prune_at: usize,
    /// Receives waiting for a new topic (or for the queue to close), one
    /// slot per receive, freed when the receive ends.
    wakers: std::collections::HashMap<u64, Waker>,
}

impl Watch {
    /// The wakers of every waiting receive, taken (they register again
    /// when polled).
    pub(crate) fn take_wakers(&self) -> Vec<Waker> {
        self.state.lock().wakers.drain().map(|(_, w)| w).collect()
    }
}

impl Watch {
    /// Called by the registry, under its lock, for a topic just created:
    /// a reader is made before anything can be published to it. Returns
    /// the waker of a receive waiting for it (to wake once the registry's
    /// locks are released).
    pub(crate) fn topic_created(&self, name: &Arc<str>, entry: &TopicEntry) -> Vec<Waker> {
        if !self.pattern.matches(name) {
            return Vec::new();
        }
        let start = memq_core::StartFrom::Earliest;
        let reader = match &entry.log {
            Log::Plain(t) => t.subscribe(start).ok().map(Reader::Plain),
            Log::Partitioned(p) => p.subscribe_all(start).ok().map(Reader::Merged),
        };
        let Some(reader) = reader else {
            return Vec::new();
        };
        let mut st = self.state.lock();
        if st.created.len() >= st.prune_at {
            st.created.retain(|c| !c.reader.is_done());
            st.prune_at = (2 * st.created.len()).max(PRUNE_AT_LEAST);
        }
        st.created.push(Created {
            name: name.clone(),
            log: entry.log.clone(),
            reader,
        });
        self.has_created.store(true, std::sync::atomic::Ordering::Release);
        st.wakers.drain().map(|(_, w)| w).collect()
    }
}

/// A subscriber to every topic whose name matches a pattern: see
/// [`MessageQueue::subscribe_pattern`](crate::MessageQueue::subscribe_pattern).
///
/// Messages of one topic arrive in their order; topics take turns. Each
/// message says its topic ([`TopicMessage::topic`]) and its offset in
/// that topic. A deleted topic is dropped from the set by the receive that
/// finds it drained (until then [`topics`](Self::topics) and
/// [`lag`](Self::lag) list it, and a topic created again under its name
/// beside it); a topic created again under a matching name joins it.
/// Topics created and deleted since the subscriber last looked (a
/// receive, `topics`, `lag`) with nothing in them for it are forgotten:
/// a subscription that is not read keeps what it has yet to deliver,
/// not every matching topic that came and went.
///
/// # Examples
///
/// ```
/// use tokio_memq::MessageQueue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let audit = mq.subscribe_pattern("accounts.>")?;
/// mq.publisher("accounts.created").publish("ada").await?;
/// mq.publisher("accounts.closed.fraud").publish("eve").await?;
/// let mut seen = vec![audit.recv().await?.topic().to_string(), audit.recv().await?.topic().to_string()];
/// seen.sort();
/// assert_eq!(seen, ["accounts.closed.fraud", "accounts.created"]);
/// # Ok(()) }
/// ```
pub struct PatternSubscriber {
    registry: Arc<Registry>,
    watch: Arc<Watch>,
    inner: Mutex<Inner>,
}

struct Inner {
    topics: Vec<Member>,
    /// Where the next receive starts: topics take turns.
    next: usize,
    /// The next [`Member::id`].
    next_id: u64,
    /// Where a receive puts the message it polls (kept to reuse).
    out: Vec<TopicMessage>,
}

struct Member {
    /// Names the member in a receive's own waiters ([`Waits`]).
    id: u64,
    sub: Subscriber,
}

/// What one receive (or stream) keeps between polls: its waiter on each
/// topic and its slot for new topics, so that concurrent receives on one
/// subscriber are each woken; the slot is freed when the receive ends.
struct Waits {
    slot: u64,
    watch: Arc<Watch>,
    topics: std::collections::HashMap<u64, Wait>,
    /// Whether this receive registered in [`WatchState::wakers`] (only
    /// once a first look found nothing).
    registered: bool,
}

impl Waits {
    fn new(watch: &Arc<Watch>) -> Self {
        Waits {
            slot: watch.next_slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            watch: watch.clone(),
            topics: std::collections::HashMap::new(),
            registered: false,
        }
    }
}

impl Drop for Waits {
    fn drop(&mut self) {
        if self.registered {
            self.watch.state.lock().wakers.remove(&self.slot);
        }
    }
}

/// Why a [`PatternSubscriber`] receive returned no message.
///
/// # Examples
///
/// ```
/// use tokio_memq::{MessageQueue, PatternRecvError, TopicOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mq = MessageQueue::new();
/// let sub = mq.subscribe_pattern("q.*")?;
/// mq.create_topic("q.small", TopicOptions { max_messages: Some(1), ..TopicOptions::default() }).await?;
/// mq.publisher("q.small").publish_batch(vec![1u8]).await?;
/// mq.publisher("q.small").publish(2u8).await?; // evicts the first, unread
/// assert_eq!(sub.recv().await.unwrap_err(), PatternRecvError::Lagged { topic: "q.small".into(), count: 1 });
/// assert_eq!(sub.recv().await?.deserialize::<u8>()?, 2);
/// mq.close();
/// assert_eq!(sub.recv().await.unwrap_err(), PatternRecvError::Closed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternRecvError {
    /// `count` messages of `topic` were evicted before this subscriber
    /// read them; it goes on with that topic's oldest retained message.
    /// A partitioned topic reports each partition's loss on its own.
    #[error("lagged behind topic {topic}: {count} messages lost")]
    Lagged {
        /// The topic that evicted them.
        topic: Arc<str>,
        /// How many.
        count: u64,
    },
    /// Nothing is waiting (only from
    /// [`try_recv_now`](PatternSubscriber::try_recv_now)).
    #[error("no message waiting")]
    Empty,
    /// The queue is closed and every matching topic is drained.
    #[error("queue closed")]
    Closed,
}

impl PatternSubscriber {
    /// Subscribes to the matching topics of `registry`: those there now
    /// from their next message (`Latest`), those created later from their
    /// first.
    pub(crate) fn new(registry: Arc<Registry>, pattern: &str) -> Result<Self, TopicError> {
        let pattern = Pattern::parse(pattern)?;
        let watch = Arc::new(Watch {
            pattern,
            state: Mutex::default(),
            next_slot: std::sync::atomic::AtomicU64::new(0),
            has_created: std::sync::atomic::AtomicBool::new(false),
        });
        let existing = registry.watch(&watch)?;
        let mut topics = Vec::with_capacity(existing.len());
        for (name, entry) in existing {
            let start = memq_core::StartFrom::Latest;
            let sub = match &entry.log {
                Log::Plain(t) => t
                    .subscribe(start)
                    .ok()
                    .map(|c| Subscriber::new(registry.clone(), entry.log.clone(), &name, c)),
                Log::Partitioned(p) => p
                    .subscribe_all(start)
                    .ok()
                    .map(|c| Subscriber::merged(registry.clone(), entry.log.clone(), &name, c)),
            };
            // A topic closed meanwhile has nothing more to give.
            if let Some(sub) = sub {
                let id = topics.len() as u64;
                topics.push(Member { id, sub });
            }
        }
        Ok(PatternSubscriber {
            registry,
            watch,
            inner: Mutex::new(Inner {
                next_id: topics.len() as u64,
                topics,
                next: 0,
                out: Vec::with_capacity(1),
            }),
        })
    }

    /// The pattern, as given.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// assert_eq!(mq.subscribe_pattern("orders.*")?.pattern(), "orders.*");
    /// # Ok(()) }
    /// ```
    pub fn pattern(&self) -> &str {
        &self.watch.pattern.source
    }

    /// The topics read now, in name order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// mq.publisher("orders.eu").publish(1u8).await?;
    /// let sub = mq.subscribe_pattern("orders.*")?;
    /// mq.publisher("orders.us").publish(2u8).await?;
    /// mq.publisher("payments.eu").publish(3u8).await?;
    /// assert_eq!(sub.topics(), ["orders.eu", "orders.us"]);
    /// # Ok(()) }
    /// ```
    pub fn topics(&self) -> Vec<String> {
        let mut inner = self.inner.lock();
        self.adopt(&mut inner);
        let mut names: Vec<String> = inner.topics.iter().map(|m| m.sub.topic().to_owned()).collect();
        names.sort();
        names
    }

    /// How far behind this subscriber is, per topic (in name order): the
    /// messages of each topic it has yet to receive.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscribe_pattern("metrics.>")?;
    /// mq.publisher("metrics.cpu").publish_batch(vec![1u8, 2, 3]).await?;
    /// mq.publisher("metrics.disk.sda").publish(4u8).await?;
    /// assert_eq!(sub.lag(), [("metrics.cpu".to_string(), 3), ("metrics.disk.sda".to_string(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn lag(&self) -> Vec<(String, u64)> {
        let mut inner = self.inner.lock();
        self.adopt(&mut inner);
        let mut lags: Vec<(String, u64)> = inner
            .topics
            .iter()
            .map(|m| (m.sub.topic().to_owned(), m.sub.lag()))
            .collect();
        lags.sort();
        lags
    }

    /// Waits for the next message of any matching topic.
    ///
    /// Cancel safe: a receive dropped before it completes loses nothing.
    ///
    /// # Errors
    ///
    /// [`PatternRecvError::Lagged`] once per topic that evicted messages
    /// this subscriber had not read (naming it; a partitioned topic once
    /// per partition that did, each with its own count), then the rest;
    /// [`PatternRecvError::Closed`] once the queue is
    /// [closed](crate::MessageQueue::close) and every matching topic is
    /// drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscribe_pattern("orders.*")?;
    /// mq.publisher("orders.eu").publish("a").await?;  // created after subscribing
    /// mq.publisher("orders.eu.vip").publish("x").await?; // two tokens: no match
    /// let msg = sub.recv().await?;
    /// assert_eq!((msg.topic(), msg.offset()), ("orders.eu", 0));
    /// assert!(sub.try_recv_now().is_err(), "nothing else matched");
    /// # Ok(()) }
    /// ```
    pub async fn recv(&self) -> Result<TopicMessage, PatternRecvError> {
        let mut waits = Waits::new(&self.watch);
        poll_fn(|cx| self.poll_recv(Some(cx), &mut waits)).await
    }

    /// The next message if one is waiting.
    ///
    /// # Errors
    ///
    /// [`PatternRecvError::Empty`] when none is; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::{MessageQueue, PatternRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscribe_pattern("a.*")?;
    /// assert_eq!(sub.try_recv_now().unwrap_err(), PatternRecvError::Empty);
    /// mq.publisher("a.b").publish(1u8).await?;
    /// assert_eq!(sub.try_recv_now()?.topic(), "a.b");
    /// # Ok(()) }
    /// ```
    pub fn try_recv_now(&self) -> Result<TopicMessage, PatternRecvError> {
        match self.poll_recv(None, &mut Waits::new(&self.watch)) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(PatternRecvError::Empty),
        }
    }

    /// Waits at most `timeout` for the next message; `Ok(None)` when none
    /// came.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # use tokio_memq::MessageQueue;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscribe_pattern("jobs.>")?;
    /// assert!(sub.recv_timeout(Duration::from_secs(1)).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Option<TopicMessage>, PatternRecvError> {
        let mut delay = memq_core::Delay::after(timeout);
        let mut waits = Waits::new(&self.watch);
        poll_fn(|cx| {
            if let Poll::Ready(r) = self.poll_recv(Some(cx), &mut waits) {
                return Poll::Ready(r.map(Some));
            }
            delay.poll_elapsed(cx).map(|()| Ok(None))
        })
        .await
    }

    /// [`recv`](Self::recv) for threads that are not async (see
    /// [`Subscriber::blocking_recv`]).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Panics
    ///
    /// When called from async code, as Tokio's blocking calls do.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscribe_pattern("logs.*")?;
    /// mq.publisher("logs.web").blocking_publish("GET /")?;
    /// assert_eq!(sub.blocking_recv()?.topic(), "logs.web");
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn blocking_recv(&self) -> Result<TopicMessage, PatternRecvError> {
        crate::blocking::block_on(self.recv())
    }

    /// The messages as a `Stream`: yields `Err(Lagged { .. })` where a
    /// topic evicted messages unread and goes on; ends when the queue is
    /// closed and every matching topic drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    /// use tokio_stream::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let mq = MessageQueue::new();
    /// let sub = mq.subscribe_pattern("sensors.*.temp")?;
    /// mq.publisher("sensors.kitchen.temp").publish(21.5f64).await?;
    /// mq.publisher("sensors.kitchen.humidity").publish(40.0f64).await?;
    /// mq.publisher("sensors.attic.temp").publish(30.0f64).await?;
    /// mq.close();
    /// let mut readings = Vec::new();
    /// let mut stream = sub.stream();
    /// while let Some(msg) = stream.next().await {
    ///     let msg = msg?;
    ///     readings.push((msg.topic().to_string(), msg.deserialize::<f64>()?));
    /// }
    /// readings.sort_by(|a, b| a.0.cmp(&b.0));
    /// assert_eq!(readings, [("sensors.attic.temp".to_string(), 30.0), ("sensors.kitchen.temp".to_string(), 21.5)]);
    /// # Ok(()) }
    /// ```
    pub fn stream(&self) -> impl Stream<Item = Result<TopicMessage, PatternRecvError>> + Send + Unpin + '_ {
        PatternStream {
            sub: self,
            waits: Waits::new(&self.watch),
            done: false,
        }
    }

    /// Takes in the topics created since the last look.
    fn adopt(&self, inner: &mut Inner) {
        if !self.watch.has_created.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let created = {
            let mut st = self.watch.state.lock();
            self.watch
                .has_created
                .store(false, std::sync::atomic::Ordering::Relaxed);
            std::mem::take(&mut st.created)
        };
        for c in created {
            if c.reader.is_done() {
                // Created and deleted since the last look, with nothing
                // for this subscription.
                continue;
            }
            let sub = match c.reader {
                Reader::Plain(cursor) => Subscriber::new(self.registry.clone(), c.log, &c.name, cursor),
                Reader::Merged(cursors) => Subscriber::merged(self.registry.clone(), c.log, &c.name, cursors),
            };
            let id = inner.next_id;
            inner.next_id += 1;
            inner.topics.push(Member { id, sub });
        }
    }

    /// One receive: each topic in turn, from where the last one left off.
    ///
    /// A receive that finds a message at once does not register for new
    /// topics (the watch's lock is taken only by one about to wait): it
    /// looks first; finding nothing, it registers, then looks again, so a
    /// topic created between the two looks is seen by the second and one
    /// created after it wakes the receive.
    fn poll_recv(
        &self,
        mut cx: Option<&mut Context<'_>>,
        waits: &mut Waits,
    ) -> Poll<Result<TopicMessage, PatternRecvError>> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if !waits.registered {
            if let Some(r) = self.poll_topics(inner, cx.as_deref_mut(), waits) {
                return Poll::Ready(r);
            }
        }
        if let Some(cx) = cx.as_deref_mut() {
            {
                let mut st = self.watch.state.lock();
                match st.wakers.get_mut(&waits.slot) {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => w.clone_from(cx.waker()),
                    None => {
                        st.wakers.insert(waits.slot, cx.waker().clone());
                    }
                }
            }
            waits.registered = true;
            if let Some(r) = self.poll_topics(inner, Some(cx), waits) {
                return Poll::Ready(r);
            }
        }
        if inner.topics.is_empty() && self.registry.no_new_topics() {
            // No topic can be created any more; one created (and published
            // to) just before may have been announced after the look
            // above: look once more before saying the subscription ended.
            if let Some(r) = self.poll_topics(inner, cx, waits) {
                return Poll::Ready(r);
            }
            if inner.topics.is_empty() {
                return Poll::Ready(Err(PatternRecvError::Closed));
            }
        }
        Poll::Pending
    }

    /// One look at every topic (after adopting new ones), from where the
    /// last receive left off; `None` when none had anything.
    fn poll_topics(
        &self,
        inner: &mut Inner,
        mut cx: Option<&mut Context<'_>>,
        waits: &mut Waits,
    ) -> Option<Result<TopicMessage, PatternRecvError>> {
        self.adopt(inner);
        // Waiters of topics that left the set go with them.
        if waits.topics.len() > inner.topics.len() {
            waits
                .topics
                .retain(|id, _| inner.topics.iter().any(|m| m.id == *id));
        }
        let noop = Waker::noop();
        let mut fallback = Context::from_waker(noop);
        // The subscriber's one-message buffer, reused (under its lock).
        let out = &mut inner.out;
        let n = inner.topics.len();
        let start = inner.next;
        // Topics found deleted and drained, taken out after the pass: each
        // topic is looked at once per pass (taken out during it, the
        // positions shifted and a topic could be missed, its wake-up
        // spent and not asked for again).
        let mut gone = Vec::new();
        let mut found = None;
        for i in 0..n {
            let at = (start + i) % n;
            let m = &inner.topics[at];
            let wait = waits.topics.entry(m.id).or_insert_with(|| m.sub.waiter());
            let polled = match cx.as_deref_mut() {
                Some(cx) => m.sub.poll_batch(cx, wait, 1, out),
                // A receive that never waits spends no budget (a drain
                // loop of `try_recv_now` must see everything waiting).
                None => m.sub.poll_batch_now(&mut fallback, wait, 1, out),
            };
            match polled {
                Poll::Ready(Ok(_)) => {
                    if let Some(msg) = out.pop() {
                        found = Some((at, Ok(msg)));
                        break;
                    }
                }
                Poll::Ready(Err(RecvError::Lagged(count))) => {
                    let topic = m.sub.topic_name().clone();
                    found = Some((at, Err(PatternRecvError::Lagged { topic, count })));
                    break;
                }
                // Deleted (or the queue closed) and drained: gone from the
                // set; a topic created again under its name joins anew.
                Poll::Ready(Err(_closed)) => gone.push(at),
                Poll::Pending => {}
            }
        }
        // Where the next receive starts: after the topic that answered,
        // less the topics before it that leave the set.
        let next = found
            .as_ref()
            .map_or(0, |&(at, _)| at + 1 - gone.iter().filter(|&&j| j <= at).count());
        if !gone.is_empty() {
            gone.sort_unstable();
            for at in gone.into_iter().rev() {
                let left = inner.topics.remove(at);
                waits.topics.remove(&left.id);
            }
        }
        let (_, result) = found?;
        inner.next = next % inner.topics.len().max(1);
        Some(result)
    }
}

impl Drop for PatternSubscriber {
    fn drop(&mut self) {
        self.registry.unwatch(&self.watch);
    }
}

impl fmt::Debug for PatternSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternSubscriber")
            .field("pattern", &self.pattern())
            .field("topics", &self.inner.lock().topics.len())
            .finish()
    }
}

struct PatternStream<'a> {
    sub: &'a PatternSubscriber,
    waits: Waits,
    done: bool,
}

impl Stream for PatternStream<'_> {
    type Item = Result<TopicMessage, PatternRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match this.sub.poll_recv(Some(cx), &mut this.waits) {
            Poll::Ready(Err(PatternRecvError::Closed)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The topics of `topics` that `watch` matches.
pub(crate) fn matching(
    topics: &std::collections::HashMap<Arc<str>, TopicEntry>,
    watch: &Watch,
) -> Vec<(Arc<str>, TopicEntry)> {
    topics
        .iter()
        .filter(|(name, _)| watch.pattern.matches(name))
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn nats_subject_rules() {
        assert!(p("orders.*").matches("orders.eu"));
        assert!(!p("orders.*").matches("orders"));
        assert!(!p("orders.*").matches("orders.eu.vip"));
        assert!(p("orders.>").matches("orders.eu"));
        assert!(p("orders.>").matches("orders.eu.vip"));
        assert!(!p("orders.>").matches("orders"));
        assert!(p("*.eu").matches("orders.eu"));
        assert!(p("*.*.temp").matches("sensors.attic.temp"));
        assert!(p(">").matches("anything.at.all"));
        assert!(p("exact.name").matches("exact.name"));
        assert!(!p("exact.name").matches("exact.names"));
        assert!(!p("orders.*").matches("orders."), "empty tokens never match");
        assert!(!p("orders.>").matches("orders.eu..x"));
        assert!(!p("*").matches(""));
    }

    /// Every receive frees its slot for new-topic wake-ups when it ends:
    /// a loop of receives (each blocking receive has a waker of its own)
    /// does not grow the list.
    #[test]
    fn receives_leave_no_waker_behind() {
        let mq = crate::MessageQueue::new();
        let sub = mq.subscribe_pattern("w.*").unwrap();
        let publisher = mq.publisher("w.x");
        for i in 0..1_000u32 {
            publisher.blocking_publish(i).unwrap();
            assert_eq!(sub.blocking_recv().unwrap().offset(), u64::from(i));
        }
        assert!(sub.watch.state.lock().wakers.is_empty());
        // A receive dropped while waiting frees its slot too.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(10), sub.recv())
                    .await
                    .is_err()
            );
        });
        assert!(sub.watch.state.lock().wakers.is_empty());
    }

    #[test]
    fn invalid_patterns_are_typed_errors() {
        for bad in ["", "a..b", ".a", "a.", "a.>.b", "orders*", "a.b>", "*x"] {
            assert!(
                matches!(Pattern::parse(bad), Err(TopicError::InvalidPattern { .. })),
                "{bad:?}"
            );
        }
    }
}
