//! The publishing handle of a topic, and the publish futures.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::config::TopicConfig;
use crate::cursor::{Cursor, Waiter};
use crate::error::{ConfigError, PublishError, SubscribeError};
use crate::shared::{Batch, One, Shared, WaitKind};
use crate::stats::TopicStats;
use crate::sync::{Arc, Ordering};

/// Where a new cursor starts reading.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, Topic, TopicConfig};
///
/// let topic = Topic::new(TopicConfig::default()).unwrap();
/// for i in 0..3 { topic.try_publish(i).unwrap(); }
/// let start = |from: StartFrom| topic.subscribe(from).unwrap().position();
/// assert_eq!(start(StartFrom::Earliest), 0);
/// assert_eq!(start(StartFrom::Latest), 3);
/// assert_eq!(start(StartFrom::Offset(1)), 1);
/// assert_eq!(start(StartFrom::Committed), 3, "no name, no commit: like Latest");
///
/// let mut audit = topic.subscribe_named("audit", StartFrom::Earliest).unwrap();
/// audit.commit(0).unwrap();
/// drop(audit);
/// let audit = topic.subscribe_named("audit", StartFrom::Committed).unwrap();
/// assert_eq!(audit.position(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest retained message.
    Earliest,
    /// The next message published after subscribing.
    Latest,
    /// Exactly this offset; it must be retained or be the next one.
    Offset(u64),
    /// After the last offset the named consumer committed; where nothing
    /// was committed (or the cursor has no name), like `Latest`.
    Committed,
}

/// A topic: an in-memory log that many tasks publish to and many cursors
/// read from.
///
/// `Topic` is a cheap handle (`Clone` shares the same log). When the last
/// handle is dropped the topic closes: publishing is no longer possible and
/// cursors receive what remains, then [`RecvError::Closed`](crate::RecvError::Closed).
///
/// # Examples
///
/// ```
/// use memq_core::{RecvError, StartFrom, Topic, TopicConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let topic = Topic::new(TopicConfig::default())?;
/// let mut cursor = topic.subscribe(StartFrom::Earliest)?;
/// let publisher = topic.clone(); // the same log
/// assert_eq!(publisher.publish("a").await?, 0);
/// assert_eq!(topic.high(), 1);
///
/// drop((topic, publisher)); // the last handles: the topic closes
/// assert_eq!(cursor.recv().await?.value, "a");
/// assert_eq!(cursor.recv().await.unwrap_err(), RecvError::Closed);
/// # Ok(())
/// # }
/// ```
pub struct Topic<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        self.shared.handles().fetch_add(1, Ordering::Relaxed);
        Topic {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Topic<T> {
    fn drop(&mut self) {
        if self.shared.handles().fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

impl<T: Clone + Send + 'static> Topic<T> {
    /// Creates a topic. Byte budgets need a weigher: see
    /// [`with_weigher`](Self::with_weigher).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a configuration that cannot work (zero
    /// capacity, zero TTL, a byte budget without a weigher).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{ConfigError, Topic, TopicConfig};
    ///
    /// let topic: Topic<u32> = Topic::new(TopicConfig::default()).unwrap();
    /// assert_eq!(topic.stats().depth, 0);
    ///
    /// let zero = TopicConfig::default().max_messages(Some(0));
    /// assert_eq!(Topic::<u32>::new(zero).unwrap_err(), ConfigError::ZeroCapacity);
    /// ```
    pub fn new(config: TopicConfig) -> Result<Self, ConfigError> {
        Ok(Topic {
            shared: Arc::new(Shared::new(config, None)?),
        })
    }

    /// Creates a topic whose messages are measured by `weigher` for the
    /// byte budget and byte stats. The weigher must give the same answer
    /// for a message every time it is asked.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{PublishError, Topic, TopicConfig};
    ///
    /// let config = TopicConfig::default().max_bytes(Some(8));
    /// let topic = Topic::with_weigher(config, |v: &Vec<u8>| v.len()).unwrap();
    /// topic.try_publish(vec![0; 5]).unwrap();
    /// topic.try_publish(vec![0; 5]).unwrap(); // evicts the first
    /// assert_eq!(topic.stats().bytes, 5);
    /// assert!(matches!(topic.try_publish(vec![0; 9]), Err(PublishError::TooLarge(_))));
    /// ```
    pub fn with_weigher(config: TopicConfig, weigher: fn(&T) -> usize) -> Result<Self, ConfigError> {
        Ok(Topic {
            shared: Arc::new(Shared::new(config, Some(weigher))?),
        })
    }

    /// Publishes a message and returns its offset.
    ///
    /// On a full [`Overflow::Block`](crate::Overflow::Block) topic the
    /// future waits until every live cursor has moved past the oldest
    /// message, or (with a TTL) until enough of the oldest messages have
    /// expired; otherwise it completes on its first poll. Dropping it
    /// before completion publishes nothing.
    ///
    /// # Errors
    ///
    /// [`PublishError`] hands the message back: `Closed`, `TooLarge`,
    /// `OffsetsExhausted`.
    ///
    /// # Panics
    ///
    /// When it has to wait on a full topic with a TTL inside a Tokio
    /// runtime without the time driver (the wait for the oldest messages
    /// to expire sets a timer). Outside a Tokio runtime the timer is this
    /// crate's timer thread ([`Delay`](crate::Delay)).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{Overflow, StartFrom, Topic, TopicConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = TopicConfig::default().max_messages(Some(1)).overflow(Overflow::Block);
    /// let topic = Topic::new(config)?;
    /// let mut cursor = topic.subscribe(StartFrom::Earliest)?;
    /// assert_eq!(topic.publish(1).await?, 0);
    ///
    /// // Full, and `cursor` has not read offset 0: the next publish waits.
    /// let t = topic.clone();
    /// let second = tokio::spawn(async move { t.publish(2).await });
    /// tokio::task::yield_now().await;
    /// assert!(!second.is_finished());
    ///
    /// assert_eq!(cursor.recv().await?.value, 1); // moves past offset 0
    /// assert_eq!(second.await??, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish(&self, value: T) -> Publish<'_, T> {
        Publish(Pending::new(&self.shared, One(value)))
    }

    /// Publishes a message if that needs no waiting.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), plus [`PublishError::Full`] where
    /// `publish` would wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{Overflow, PublishError, StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(1)).overflow(Overflow::Block)).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Earliest).unwrap();
    /// assert_eq!(topic.try_publish('a'), Ok(0));
    /// assert_eq!(topic.try_publish('b'), Err(PublishError::Full('b')));
    /// cursor.try_recv().unwrap();
    /// assert_eq!(topic.try_publish('b'), Ok(1));
    /// ```
    pub fn try_publish(&self, value: T) -> Result<u64, PublishError<T>> {
        self.shared
            .push(One(value), None, &mut None)
            .map(|r| r.start)
            .map_err(|e| e.map(|One(v)| v))
    }

    /// Publishes messages as one contiguous run of offsets, nothing
    /// interleaved, and returns the run. All or nothing: on error no
    /// message of the batch was published.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish); `TooLarge` when the batch alone
    /// exceeds the topic's limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{PublishError, Topic, TopicConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(3)))?;
    /// topic.publish('a').await?;
    /// assert_eq!(topic.publish_batch(vec!['b', 'c']).await?, 1..3);
    ///
    /// // More than the topic can ever hold: nothing is published.
    /// let err = topic.publish_batch(vec!['x'; 4]).await.unwrap_err();
    /// assert_eq!(err, PublishError::TooLarge(vec!['x'; 4]));
    /// assert_eq!(topic.high(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish_batch(&self, values: Vec<T>) -> PublishBatch<'_, T> {
        PublishBatch(Pending::new(&self.shared, values))
    }

    /// [`publish_batch`](Self::publish_batch) without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_publish`](Self::try_publish).
    pub fn try_publish_batch(&self, values: Vec<T>) -> Result<Range<u64>, PublishError<Vec<T>>> {
        self.shared.push(values, None, &mut None)
    }

    /// Opens a cursor.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::OutOfRange`] for an [`StartFrom::Offset`] outside
    /// the retained window, [`SubscribeError::Closed`] on a closed topic.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// topic.try_publish("old").unwrap();
    /// let mut earliest = topic.subscribe(StartFrom::Earliest).unwrap();
    /// let mut latest = topic.subscribe(StartFrom::Latest).unwrap();
    /// topic.try_publish("new").unwrap();
    ///
    /// assert_eq!(earliest.try_recv().unwrap().value, "old");
    /// assert_eq!(latest.try_recv().unwrap().value, "new");
    /// assert_eq!(topic.stats().subscribers, 2);
    /// ```
    pub fn subscribe(&self, start: StartFrom) -> Result<Cursor<T>, SubscribeError> {
        let st = self.shared.subscribe(start, None)?;
        Ok(Cursor::new(self.shared.clone(), st, None))
    }

    /// Opens a cursor for a named consumer, whose commits outlive the
    /// cursor: a later cursor with the same name and
    /// [`StartFrom::Committed`] resumes after the last commit.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default()).unwrap();
    /// for i in 0..5 { topic.try_publish(i).unwrap(); }
    /// let mut c = topic.subscribe_named("billing", StartFrom::Earliest).unwrap();
    /// let m = c.try_recv().unwrap();
    /// c.commit(m.offset).unwrap();
    /// drop(c);
    /// let mut c = topic.subscribe_named("billing", StartFrom::Committed).unwrap();
    /// assert_eq!(c.try_recv().unwrap().offset, 1);
    /// ```
    pub fn subscribe_named(&self, name: &str, start: StartFrom) -> Result<Cursor<T>, SubscribeError> {
        let name: std::sync::Arc<str> = name.into();
        let st = self.shared.subscribe(start, Some(&name))?;
        Ok(Cursor::new(self.shared.clone(), st, Some(name)))
    }

    /// Opens a cursor for the named consumer that resumes at `next`, as
    /// [`StartFrom::Committed`] does after a commit of `next - 1` (which
    /// cannot be said for offset 0). `next` may be below the retained
    /// window: the first receive then reports the evicted messages as
    /// [`RecvError::Lagged`](crate::RecvError::Lagged), and skips silently
    /// those that expired. Past the next offset, it starts there.
    ///
    /// For consumers that keep their own position, such as consumer
    /// groups remembering unacknowledged messages. Commits are not
    /// touched.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{RecvError, StartFrom, Topic, TopicConfig, TryRecvError};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// for i in 0..4 { topic.try_publish(i).unwrap(); }
    /// let mut c = topic.resume_named("billing", 0).unwrap();
    /// assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Lagged(2));
    /// assert_eq!(c.try_recv().unwrap().offset, 2);
    /// ```
    pub fn resume_named(&self, name: &str, next: u64) -> Result<Cursor<T>, SubscribeError> {
        let name: std::sync::Arc<str> = name.into();
        let st = self
            .shared
            .subscribe_at(StartFrom::Committed, Some(&name), Some(next))?;
        Ok(Cursor::new(self.shared.clone(), st, Some(name)))
    }
}

impl<T> Topic<T> {
    /// Counters of this topic; never waits for publishers.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::new(TopicConfig::default().max_messages(Some(2))).unwrap();
    /// let mut billing = topic.subscribe_named("billing", StartFrom::Earliest).unwrap();
    /// for i in 0..3 { topic.try_publish(i).unwrap(); } // evicts offset 0
    /// assert_eq!(billing.try_recv().unwrap_err(), memq_core::TryRecvError::Lagged(1));
    /// let msg = billing.try_recv().unwrap();
    /// billing.commit(msg.offset).unwrap();
    ///
    /// let stats = topic.stats();
    /// assert_eq!((stats.low, stats.high, stats.depth), (1, 3, 2));
    /// assert_eq!((stats.published, stats.evicted, stats.subscribers), (3, 1, 1));
    /// let billing = &stats.consumers[0];
    /// assert_eq!((billing.name.as_str(), billing.committed, billing.lag), ("billing", Some(1), 1));
    /// ```
    pub fn stats(&self) -> TopicStats {
        self.shared.stats()
    }

    /// The last offset the named consumer committed.
    pub fn committed(&self, name: &str) -> Option<u64> {
        self.shared.committed(name)
    }

    /// The offset the next message will get.
    pub fn high(&self) -> u64 {
        self.shared.high()
    }

    /// The configuration the topic was created with.
    pub fn config(&self) -> &TopicConfig {
        &self.shared.config
    }

    /// Closes the topic: publishing fails with `Closed`, waiting
    /// publishers are woken with that error, and cursors receive what is
    /// retained, then `Closed`. Closing twice does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{PublishError, RecvError, StartFrom, SubscribeError, Topic, TopicConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let topic = Topic::new(TopicConfig::default())?;
    /// let mut cursor = topic.subscribe(StartFrom::Earliest)?;
    /// topic.publish("last").await?;
    /// topic.close();
    /// assert!(topic.is_closed());
    ///
    /// assert_eq!(topic.publish("late").await, Err(PublishError::Closed("late")));
    /// assert_eq!(topic.subscribe(StartFrom::Earliest).unwrap_err(), SubscribeError::Closed);
    /// assert_eq!(cursor.recv().await?.value, "last"); // still delivered
    /// assert_eq!(cursor.recv().await.unwrap_err(), RecvError::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// True once the topic is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Wakes every receive waiting on this topic: each looks again, and
    /// parks again if it has nothing to read. For a wrapper that shares a
    /// cursor between tasks (behind a lock): a receive parked at the
    /// cursor's position does not notice a [`Cursor::seek`](crate::Cursor::seek)
    /// made through another task, which must wake it. (A cursor on its
    /// own is borrowed by its receive, so nothing can seek it meanwhile.)
    ///
    /// Call it with no lock held that a waker could need: a waker may run
    /// code of its own (a consumer group's, say) before returning.
    ///
    /// ```
    /// use std::task::{Context, Wake, Waker};
    /// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
    /// use memq_core::{StartFrom, Topic, TopicConfig, Waiter};
    ///
    /// struct Flag(AtomicBool);
    /// impl Wake for Flag {
    ///     fn wake(self: Arc<Self>) { self.0.store(true, Ordering::SeqCst); }
    /// }
    /// let topic = Topic::<u32>::new(TopicConfig::default()).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
    /// let flag = Arc::new(Flag(AtomicBool::new(false)));
    /// let waker = Waker::from(flag.clone());
    /// let mut waiter = Waiter::new();
    /// assert!(cursor.poll_ready(&mut Context::from_waker(&waker), &mut waiter).is_pending());
    /// topic.wake_receivers();
    /// assert!(flag.0.load(Ordering::SeqCst), "the parked receive was woken");
    /// ```
    pub fn wake_receivers(&self) {
        self.shared.wake_receivers();
    }

    /// Whether the topic's lock is held right now, by a publish or a
    /// receive on another thread: a hint (it may be free the moment
    /// after, or taken). A task about to publish can yield to the other
    /// tasks of its thread instead of waiting for the lock. Costs no lock.
    ///
    /// ```
    /// use memq_core::{Topic, TopicConfig};
    ///
    /// let topic = Topic::<u32>::new(TopicConfig::default()).unwrap();
    /// assert!(!topic.is_busy(), "nobody holds it");
    /// ```
    pub fn is_busy(&self) -> bool {
        self.shared.is_busy()
    }

    /// True when, at the last publish, the slowest live cursor of this
    /// topic (one with [`Overflow::DropOldest`](crate::Overflow::DropOldest) and a
    /// message limit) was more than half the capacity behind, and still
    /// moving. A publisher that yields before publishing then gives a
    /// reader that is about as fast as it the time to keep up, instead of
    /// evicting what it was about to read. A reader that has not moved
    /// for half the capacity (all the room it had) no longer counts until
    /// it moves again: publishers do not slow down for a reader that does
    /// not read. Costs no lock.
    ///
    /// ```
    /// use memq_core::{StartFrom, Topic, TopicConfig};
    ///
    /// let topic = Topic::<u32>::new(TopicConfig::default().max_messages(Some(8))).unwrap();
    /// let mut cursor = topic.subscribe(StartFrom::Latest).unwrap();
    /// for i in 0..4 {
    ///     topic.try_publish(i).unwrap();
    /// }
    /// assert!(!topic.near_eviction(), "4 behind: half the room left");
    /// topic.try_publish(4).unwrap();
    /// assert!(topic.near_eviction(), "5 behind");
    /// while cursor.try_recv().is_ok() {}
    /// topic.try_publish(5).unwrap();
    /// assert!(!topic.near_eviction(), "caught up");
    /// ```
    pub fn near_eviction(&self) -> bool {
        self.shared.near_eviction()
    }
}

/// A publish in progress: the message and, once parked, its registration.
struct Pending<'a, T, B> {
    shared: &'a Arc<Shared<T>>,
    items: Option<B>,
    waiter: Waiter<T>,
    /// On a full TTL topic: wakes the publish when enough of the oldest
    /// messages have expired to make room, should nobody else act then.
    #[cfg(not(memq_loom))]
    expiry: Option<crate::Delay>,
}

impl<'a, T, B: Batch<T>> Pending<'a, T, B> {
    fn new(shared: &'a Arc<Shared<T>>, items: B) -> Self {
        Pending {
            shared,
            items: Some(items),
            waiter: Waiter::with_kind(WaitKind::Publish),
            #[cfg(not(memq_loom))]
            expiry: None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Range<u64>, PublishError<B>>> {
        // Retries only when the expiry timer has already fired; a retry
        // then finds the room it was waiting for, so this loop is short.
        for _ in 0..4 {
            let items = self.items.take().expect("publish future polled after completion");
            let slot = self.waiter.slot(self.shared);
            let mut room_at = None;
            let pushed = self.shared.push(items, Some((slot, cx.waker())), &mut room_at);
            self.waiter.attach(self.shared);
            match pushed {
                Err(PublishError::Full(items)) => {
                    self.items = Some(items);
                    if !self.wait_for_expiry(cx, room_at) {
                        return Poll::Pending;
                    }
                }
                other => return Poll::Ready(other),
            }
        }
        // Timers kept firing at once: poll again rather than wait for a
        // wake-up that may not come.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Arms the expiry timer for `room_at`; true when it has already fired.
    /// Outside a Tokio runtime the timer is this crate's timer thread
    /// ([`Delay`](crate::Delay)).
    #[cfg(not(memq_loom))]
    fn wait_for_expiry(&mut self, cx: &mut Context<'_>, room_at: Option<u64>) -> bool {
        let Some(ts) = room_at else {
            self.expiry = None;
            return false;
        };
        let deadline = self.shared.clock.instant(ts);
        // A timer of the runtime polling now: one kept from an earlier poll
        // may belong to another runtime (a publish moved between runtimes,
        // inside a sink say), which panics once that runtime is gone.
        let delay = self.expiry.insert(crate::Delay::until(deadline));
        delay.poll_elapsed(cx).is_ready()
    }

    /// Under loom there is no timer; wake-ups come from the topic alone.
    #[cfg(memq_loom)]
    fn wait_for_expiry(&mut self, _cx: &mut Context<'_>, _room_at: Option<u64>) -> bool {
        false
    }
}

/// Future of [`Topic::publish`].
#[must_use = "futures do nothing unless polled"]
pub struct Publish<'a, T>(Pending<'a, T, One<T>>);

impl<T> Publish<'_, T> {
    /// Takes the message back out of a publish that has not completed, so
    /// that a caller giving up (a timeout, say) keeps it. Polling
    /// afterwards panics.
    pub fn take_value(&mut self) -> Option<T> {
        self.0.items.take().map(|One(v)| v)
    }
}

impl<T> Unpin for Publish<'_, T> {}

impl<T> Future for Publish<'_, T> {
    type Output = Result<u64, PublishError<T>>;

    /// # Panics
    ///
    /// When polled after it completed or after [`take_value`](Publish::take_value).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut()
            .0
            .poll(cx)
            .map(|r| r.map(|range| range.start).map_err(|e| e.map(|One(v)| v)))
    }
}

impl<T> fmt::Debug for Publish<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("waiter", &self.0.waiter)
            .finish_non_exhaustive()
    }
}

/// Future of [`Topic::publish_batch`].
#[must_use = "futures do nothing unless polled"]
pub struct PublishBatch<'a, T>(Pending<'a, T, Vec<T>>);

impl<T> PublishBatch<'_, T> {
    /// Takes the batch back out of a publish that has not completed.
    /// Polling afterwards panics.
    pub fn take_values(&mut self) -> Option<Vec<T>> {
        self.0.items.take()
    }
}

impl<T> Unpin for PublishBatch<'_, T> {}

impl<T> Future for PublishBatch<'_, T> {
    type Output = Result<Range<u64>, PublishError<Vec<T>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll(cx)
    }
}

impl<T> fmt::Debug for PublishBatch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishBatch")
            .field("waiter", &self.0.waiter)
            .finish_non_exhaustive()
    }
}
