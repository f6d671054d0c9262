//! Reading many partitions as one stream: [`MergedCursor`], its waiter and
//! its receive futures.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use memq_core::{Cursor, Delivered, Waiter};

use crate::error::{RecvError, TryRecvError};

/// One partition's cursor inside a [`MergedCursor`].
struct Part<T> {
    partition: usize,
    cursor: Cursor<T>,
    /// A lag found while a batch already held messages from other
    /// partitions; reported on this partition's next turn.
    lag: Option<u64>,
}

/// One cursor per partition, read as one stream of
/// `(partition, message)`.
///
/// Created by
/// [`PartitionedTopic::subscribe_all`](crate::PartitionedTopic::subscribe_all),
/// or with [`MergedCursor::new`] from any set of partition cursors (a
/// consumer-group member owning some partitions, say).
///
/// Each partition's messages come in offset order; partitions take turns
/// (see the crate docs, `## Reading every partition`). Every receive is
/// cancel safe.
///
/// # Examples
///
/// ```
/// use memq_core::{StartFrom, TopicConfig};
/// use memq_partition::{MergedCursor, PartitionedTopic, RecvError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
/// // Read only partitions 0 and 2.
/// let mut merged = MergedCursor::new(vec![
///     (0, topic.subscribe_partition(0, StartFrom::Earliest).unwrap()),
///     (2, topic.subscribe_partition(2, StartFrom::Earliest).unwrap()),
/// ]);
/// for i in 0..6 {
///     topic.publish(None, i).await.unwrap(); // round-robin over 0, 1, 2
/// }
/// topic.close();
/// let mut got = Vec::new();
/// loop {
///     match merged.recv().await {
///         Ok((p, m)) => got.push((p, m.value)),
///         Err(RecvError::Closed) => break,
///         Err(e) => panic!("{e}"),
///     }
/// }
/// assert_eq!(got, vec![(0, 0), (2, 2), (0, 3), (2, 5)]);
/// # }
/// ```
pub struct MergedCursor<T> {
    parts: Vec<Part<T>>,
    /// The part whose turn it is.
    next: usize,
    /// Per part: nothing more to take in the current call.
    drained: Vec<bool>,
}

/// One [`memq_core::Waiter`] per partition of a [`MergedCursor`]: the
/// registration of a parked merged receive.
///
/// [`MergedCursor::recv`] and [`MergedCursor::recv_batch`] keep their own;
/// keep one per future when building your own on
/// [`MergedCursor::poll_recv`]. Dropping it withdraws every registration.
/// It grows to the cursor's partition count on first use.
///
/// # Examples
///
/// ```
/// use std::future::poll_fn;
/// use memq_core::{StartFrom, TopicConfig};
/// use memq_partition::{MergedWaiter, PartitionedTopic};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// let mut merged = topic.subscribe_all(StartFrom::Latest).unwrap();
/// let t = topic.clone();
/// tokio::spawn(async move { t.publish(None, "hi").await.unwrap() });
///
/// let mut waiter = MergedWaiter::new();
/// let (p, msg) = poll_fn(|cx| merged.poll_recv(cx, &mut waiter)).await.unwrap();
/// assert_eq!((p, msg.value), (0, "hi"));
/// # }
/// ```
pub struct MergedWaiter<T> {
    waiters: Vec<Waiter<T>>,
}

impl<T> MergedWaiter<T> {
    /// A waiter that is not registered anywhere yet.
    pub fn new() -> Self {
        MergedWaiter { waiters: Vec::new() }
    }

    fn ensure(&mut self, n: usize) -> &mut [Waiter<T>] {
        if self.waiters.len() < n {
            self.waiters.resize_with(n, Waiter::new);
        }
        &mut self.waiters[..n]
    }
}

impl<T> Default for MergedWaiter<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for MergedWaiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergedWaiter")
            .field("waiters", &self.waiters)
            .finish()
    }
}

/// Tags each delivered message with its partition on the way into the
/// caller's collection.
struct Tagged<'a, E> {
    partition: usize,
    out: &'a mut E,
}

impl<T, E: Extend<(usize, Delivered<T>)>> Extend<Delivered<T>> for Tagged<'_, E> {
    fn extend<I: IntoIterator<Item = Delivered<T>>>(&mut self, iter: I) {
        let p = self.partition;
        self.out.extend(iter.into_iter().map(|d| (p, d)));
    }
}

/// A collection of at most one message, for the single receives.
struct One<T>(Option<(usize, Delivered<T>)>);

impl<T> Extend<(usize, Delivered<T>)> for One<T> {
    fn extend<I: IntoIterator<Item = (usize, Delivered<T>)>>(&mut self, iter: I) {
        for item in iter {
            self.0 = Some(item);
        }
    }
}

impl<T> fmt::Debug for MergedCursor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.parts.iter().map(|p| (p.partition, p.cursor.position())))
            .finish()
    }
}

impl<T> MergedCursor<T> {
    /// Merges cursors, each tagged with the partition it reads. Turns
    /// start with the first. Give each partition once: two cursors on one
    /// partition deliver its messages twice.
    ///
    /// With no cursors at all, every receive reports
    /// [`RecvError::Closed`] (there is nothing left to read).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::{MergedCursor, PartitionedTopic, TryRecvError};
    ///
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 4).unwrap();
    /// let merged = MergedCursor::new(vec![(3, topic.subscribe_partition(3, StartFrom::Latest).unwrap())]);
    /// assert_eq!(merged.partitions().collect::<Vec<_>>(), vec![3]);
    ///
    /// let mut none = MergedCursor::<u8>::new(Vec::new());
    /// assert_eq!(none.try_recv().unwrap_err(), TryRecvError::Closed);
    /// ```
    pub fn new(cursors: Vec<(usize, Cursor<T>)>) -> Self {
        let parts: Vec<Part<T>> = cursors
            .into_iter()
            .map(|(partition, cursor)| Part {
                partition,
                cursor,
                lag: None,
            })
            .collect();
        MergedCursor {
            drained: vec![false; parts.len()],
            parts,
            next: 0,
        }
    }

    /// The partitions read.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{StartFrom, TopicConfig};
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::<u8>::new(TopicConfig::default(), 3).unwrap();
    /// let all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// assert_eq!(all.partitions().collect::<Vec<_>>(), vec![0, 1, 2]);
    /// assert_eq!((all.len(), all.is_empty()), (3, false));
    /// assert_eq!(all.cursor(2).unwrap().position(), 0);
    /// ```
    pub fn partitions(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().map(|p| p.partition)
    }

    /// The number of partitions read.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// True when no partition is read.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The cursor of `partition`, to look at its position or name.
    pub fn cursor(&self, partition: usize) -> Option<&Cursor<T>> {
        self.parts
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| &p.cursor)
    }

    /// The offset `partition`'s reader would have delivered next, a gap a
    /// batch found and kept for the next receive not yet passed (as
    /// [`Cursor::position_before_gap`], counting a gap this merged reader
    /// keeps too); `None` for a partition it does not read.
    pub fn position_before_gap(&self, partition: usize) -> Option<u64> {
        let p = self.parts.iter().find(|p| p.partition == partition)?;
        Some(p.cursor.position_before_gap().saturating_sub(p.lag.unwrap_or(0)))
    }

    /// The cursor of `partition`, to seek, commit or unread on it.
    ///
    /// A lag this merged cursor already found in the partition (during a
    /// batch receive) and has not reported yet is still reported first,
    /// unless [`forget_lag`](Self::forget_lag) drops it (a caller that
    /// moved the cursor elsewhere).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// for i in 0..4 { topic.try_publish(None, i).unwrap(); }
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// all.cursor_mut(1).unwrap().seek(0).unwrap(); // replay partition 1
    /// assert_eq!(all.try_recv().unwrap().1.value, 1);
    /// assert_eq!(all.try_recv().unwrap().1.value, 3);
    /// assert!(all.try_recv().is_err());
    /// ```
    pub fn cursor_mut(&mut self, partition: usize) -> Option<&mut Cursor<T>> {
        self.parts
            .iter_mut()
            .find(|p| p.partition == partition)
            .map(|p| &mut p.cursor)
    }

    /// Drops the lag this merged cursor found in `partition` and has not
    /// reported yet, returning it: for a caller that moved the partition's
    /// cursor (a seek), after which the gap is no longer ahead of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::{PartitionedTopic, Routing};
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default().max_messages(Some(2)), 2).unwrap();
    /// topic.set_routing(Routing::Fixed(1));
    /// let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    /// topic.try_publish(None, 0).unwrap();
    /// assert_eq!(all.try_recv().unwrap().1.value, 0);
    /// for i in 1..5 { topic.try_publish(None, i).unwrap(); } // 1 and 2 evicted unread
    /// let mut batch = Vec::new();
    /// topic.set_routing(Routing::Fixed(0));
    /// topic.try_publish(None, 9).unwrap();
    /// all.try_recv_batch(10, &mut batch).unwrap(); // 9, then the gap in partition 1
    /// assert_eq!(batch.len(), 1);
    /// all.cursor_mut(1).unwrap().seek(4).unwrap();
    /// assert_eq!(all.forget_lag(1), Some(2));
    /// assert_eq!(all.try_recv().unwrap().1.value, 4, "no lag reported: it was behind the seek");
    /// ```
    pub fn forget_lag(&mut self, partition: usize) -> Option<u64> {
        self.parts
            .iter_mut()
            .find(|p| p.partition == partition)
            .and_then(|p| p.lag.take())
    }

    /// Adds a partition's cursor, or replaces the one for that partition
    /// (dropping any lag found there and not yet reported) and returns it.
    /// A new partition takes its turn last.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::{MergedCursor, PartitionedTopic};
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// topic.try_publish(None, 'a').unwrap(); // partition 0
    /// topic.try_publish(None, 'b').unwrap(); // partition 1
    /// let mut merged = MergedCursor::new(Vec::new());
    /// assert!(merged.insert(1, topic.subscribe_partition(1, StartFrom::Earliest).unwrap()).is_none());
    /// assert_eq!(merged.try_recv().unwrap().1.value, 'b');
    /// assert_eq!(merged.len(), 1);
    /// ```
    pub fn insert(&mut self, partition: usize, cursor: Cursor<T>) -> Option<Cursor<T>> {
        if let Some(p) = self.parts.iter_mut().find(|p| p.partition == partition) {
            p.lag = None;
            return Some(std::mem::replace(&mut p.cursor, cursor));
        }
        let at = self.next;
        self.parts.insert(
            at,
            Part {
                partition,
                cursor,
                lag: None,
            },
        );
        self.drained.push(false);
        self.next = (at + 1) % self.parts.len();
        None
    }

    /// Stops reading `partition` and returns its cursor.
    ///
    /// A lag found in that partition by a batch receive and not yet
    /// reported is discarded with it; a cursor later opened at the
    /// partition's committed offset reports the gap itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// for i in 0..4 { topic.try_publish(None, i).unwrap(); }
    /// let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    /// let mut p0 = all.remove(0).unwrap();
    /// assert_eq!(p0.try_recv().unwrap().value, 0);
    /// let got: Vec<(usize, i32)> = std::iter::from_fn(|| all.try_recv().ok())
    ///     .map(|(p, m)| (p, m.value))
    ///     .collect();
    /// assert_eq!(got, vec![(1, 1), (1, 3)]);
    /// ```
    pub fn remove(&mut self, partition: usize) -> Option<Cursor<T>> {
        let i = self.parts.iter().position(|p| p.partition == partition)?;
        let part = self.parts.remove(i);
        self.drained.pop();
        if i < self.next {
            self.next -= 1;
        }
        if self.next >= self.parts.len() {
            self.next = 0;
        }
        Some(part.cursor)
    }

    /// Splits the merged cursor back into its partition cursors.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{StartFrom, TopicConfig};
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// topic.try_publish(None, 'a').unwrap();
    /// let all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    /// let mut cursors = all.into_cursors();
    /// assert_eq!(cursors[0].0, 0);
    /// assert_eq!(cursors[0].1.try_recv().unwrap().value, 'a');
    /// ```
    pub fn into_cursors(self) -> Vec<(usize, Cursor<T>)> {
        self.parts.into_iter().map(|p| (p.partition, p.cursor)).collect()
    }

    /// Messages published and not yet delivered, summed over partitions:
    /// those evicted before they were read included (a receive reports
    /// them as a lag), those that expired not.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{StartFrom, TopicConfig};
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// for i in 0..5 { topic.try_publish(None, i).unwrap(); }
    /// assert_eq!(all.lag(), 5);
    /// all.try_recv().unwrap();
    /// assert_eq!(all.lag(), 4);
    /// ```
    pub fn lag(&self) -> u64 {
        // A gap a batch found and kept for the next receive is still owed.
        self.parts
            .iter()
            .map(|p| p.cursor.lag().saturating_add(p.lag.unwrap_or(0)))
            .fold(0, u64::saturating_add)
    }

    /// True once every partition is closed; messages may still be
    /// waiting to be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{StartFrom, TopicConfig};
    /// # use memq_partition::PartitionedTopic;
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// topic.try_publish(None, 1).unwrap();
    /// topic.close();
    /// assert!(all.is_closed());
    /// assert_eq!(all.try_recv().unwrap().1.value, 1); // still delivered
    /// ```
    pub fn is_closed(&self) -> bool {
        self.parts.iter().all(|p| p.cursor.is_closed())
    }
}

impl<T: Clone> MergedCursor<T> {
    /// Receives the next message from whichever partition's turn it is
    /// and has one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when no partition has a message,
    /// `Lagged { partition, skipped }` when a partition evicted messages
    /// this cursor had not read, `Closed` when every partition is closed
    /// and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::{PartitionedTopic, TryRecvError};
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default().max_messages(Some(2)), 2).unwrap();
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// assert_eq!(all.try_recv().unwrap_err(), TryRecvError::Empty);
    /// topic.set_routing(memq_partition::Routing::Fixed(1));
    /// for i in 0..5 { topic.try_publish(None, i).unwrap(); } // partition 1 keeps 3 and 4
    /// assert_eq!(all.try_recv().unwrap_err(), TryRecvError::Lagged { partition: 1, skipped: 3 });
    /// assert_eq!(all.try_recv().unwrap().1.value, 3);
    /// ```
    pub fn try_recv(&mut self) -> Result<(usize, Delivered<T>), TryRecvError> {
        let mut one = One(None);
        self.take(1, &mut one)?;
        one.0.ok_or(TryRecvError::Empty)
    }

    /// Waits for the next message from any partition.
    ///
    /// Cancel safe: dropping the future before it completes loses no
    /// message; the next receive returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::{PartitionedTopic, Routing};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 4).unwrap();
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// topic.set_routing(Routing::Fixed(3));
    /// let t = topic.clone();
    /// tokio::spawn(async move { t.publish(None, "late").await.unwrap() });
    /// let (p, msg) = all.recv().await.unwrap();
    /// assert_eq!((p, msg.offset, msg.value), (3, 0, "late"));
    /// # }
    /// ```
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv {
            cursor: self,
            waiter: MergedWaiter::new(),
        }
    }

    /// Polls for the next message, registering `waiter` with every
    /// partition that has none. The building block of
    /// [`recv`](Self::recv); see [`MergedWaiter`] for an example.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut MergedWaiter<T>,
    ) -> Poll<Result<(usize, Delivered<T>), RecvError>> {
        let mut one = One(None);
        match self.poll_take(cx, waiter, 1, &mut one) {
            Poll::Ready(Ok(_)) => match one.0 {
                Some(item) => Poll::Ready(Ok(item)),
                None => Poll::Pending,
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Appends up to `max` available messages to `out`, partitions taking
    /// turns, without waiting; returns how many.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), only when no message was
    /// appended; a lag found after some messages is reported by a later
    /// call, before that partition's next message.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// for i in 0..6 { topic.try_publish(None, i).unwrap(); } // evens → p0, odds → p1
    /// let mut all = topic.subscribe_all(StartFrom::Earliest).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(all.try_recv_batch(4, &mut out).unwrap(), 4);
    /// let got: Vec<(usize, i32)> = out.iter().map(|(p, m)| (*p, m.value)).collect();
    /// assert_eq!(got, vec![(0, 0), (0, 2), (1, 1), (1, 3)]); // 2 from each
    /// ```
    pub fn try_recv_batch<E: Extend<(usize, Delivered<T>)>>(
        &mut self,
        max: usize,
        out: &mut E,
    ) -> Result<usize, TryRecvError> {
        self.take(max, out)
    }

    /// Waits until at least one message is available, then appends up to
    /// `max` to `out`, partitions taking turns, and returns how many (0
    /// only when `max` is 0).
    ///
    /// Cancel safe, like [`recv`](Self::recv): messages are appended only
    /// by the poll that completes the future.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_core::{StartFrom, TopicConfig};
    /// use memq_partition::PartitionedTopic;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// let t = topic.clone();
    /// tokio::spawn(async move {
    ///     let batch: Vec<(Option<&[u8]>, u32)> = (0..3).map(|i| (None, i)).collect();
    ///     t.publish_batch(batch).await.unwrap();
    /// });
    /// let mut out = Vec::new();
    /// let mut total = 0;
    /// while total < 3 {
    ///     total += all.recv_batch(10, &mut out).await.unwrap();
    /// }
    /// let mut values: Vec<u32> = out.into_iter().map(|(_, m)| m.value).collect();
    /// values.sort();
    /// assert_eq!(values, vec![0, 1, 2]);
    /// # }
    /// ```
    pub fn recv_batch<'a, E: Extend<(usize, Delivered<T>)>>(
        &'a mut self,
        max: usize,
        out: &'a mut E,
    ) -> RecvBatch<'a, T, E> {
        RecvBatch {
            cursor: self,
            max,
            out,
            waiter: MergedWaiter::new(),
        }
    }

    /// Polls for a batch, registering `waiter` with every partition when
    /// none has a message; the building block of
    /// [`recv_batch`](Self::recv_batch). Messages are appended to `out`
    /// only when it returns `Ready(Ok(n))`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # use memq_core::{StartFrom, TopicConfig};
    /// # use memq_partition::{MergedWaiter, PartitionedTopic};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
    /// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
    /// for i in 0..4 { topic.try_publish(None, i).unwrap(); }
    /// let mut waiter = MergedWaiter::new();
    /// let mut out = Vec::new();
    /// let n = poll_fn(|cx| all.poll_recv_batch(cx, &mut waiter, 10, &mut out)).await.unwrap();
    /// assert_eq!(n, 4);
    /// # }
    /// ```
    pub fn poll_recv_batch<E: Extend<(usize, Delivered<T>)>>(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut MergedWaiter<T>,
        max: usize,
        out: &mut E,
    ) -> Poll<Result<usize, RecvError>> {
        self.poll_take(cx, waiter, max, out)
    }

    fn poll_take<E: Extend<(usize, Delivered<T>)>>(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut MergedWaiter<T>,
        max: usize,
        out: &mut E,
    ) -> Poll<Result<usize, RecvError>> {
        match self.take(max, out) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(TryRecvError::Lagged { partition, skipped }) => {
                Poll::Ready(Err(RecvError::Lagged { partition, skipped }))
            }
            Err(TryRecvError::Closed) => Poll::Ready(Err(RecvError::Closed)),
            Err(TryRecvError::Empty) => self.park(cx, waiter, max, out),
        }
    }

    /// Takes up to `max` messages without waiting. Partitions take turns
    /// starting with `self.next`, each giving up to an equal share of
    /// `max` per round; rounds repeat while some partition filled its
    /// share and room remains. The next call starts after the last
    /// partition that delivered.
    fn take<E: Extend<(usize, Delivered<T>)>>(
        &mut self,
        max: usize,
        out: &mut E,
    ) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.parts.len();
        if n == 0 {
            return Err(TryRecvError::Closed);
        }
        let chunk = max.div_ceil(n);
        self.drained.clear();
        self.drained.resize(n, false);
        let mut got = 0;
        let mut closed = 0;
        let mut last = None;
        loop {
            let mut again = false;
            for i in 0..n {
                if got == max {
                    break;
                }
                let idx = (self.next + i) % n;
                if self.drained[idx] {
                    continue;
                }
                let part = &mut self.parts[idx];
                if let Some(skipped) = part.lag {
                    if got == 0 {
                        part.lag = None;
                        self.next = (idx + 1) % n;
                        return Err(TryRecvError::Lagged {
                            partition: part.partition,
                            skipped,
                        });
                    }
                    self.drained[idx] = true;
                    continue;
                }
                let want = chunk.min(max - got);
                let mut tagged = Tagged {
                    partition: part.partition,
                    out: &mut *out,
                };
                match part.cursor.try_recv_batch(want, &mut tagged) {
                    Ok(k) => {
                        got += k;
                        if k > 0 {
                            last = Some(idx);
                        }
                        if k < want {
                            self.drained[idx] = true;
                        } else {
                            again = true;
                        }
                    }
                    Err(memq_core::TryRecvError::Lagged(skipped)) => {
                        if got == 0 {
                            self.next = (idx + 1) % n;
                            return Err(TryRecvError::Lagged {
                                partition: part.partition,
                                skipped,
                            });
                        }
                        part.lag = Some(skipped);
                        self.drained[idx] = true;
                    }
                    Err(memq_core::TryRecvError::Closed) => {
                        closed += 1;
                        self.drained[idx] = true;
                    }
                    Err(_) => self.drained[idx] = true,
                }
            }
            if got == max || !again {
                break;
            }
        }
        if let Some(idx) = last {
            self.next = (idx + 1) % n;
        }
        if got > 0 {
            Ok(got)
        } else if closed == n {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Found nothing anywhere: registers with every partition, each in the
    /// same critical section that finds it empty, so a message published
    /// to any partition after that wakes the task. A message that arrived
    /// meanwhile is returned instead.
    fn park<E: Extend<(usize, Delivered<T>)>>(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut MergedWaiter<T>,
        max: usize,
        out: &mut E,
    ) -> Poll<Result<usize, RecvError>> {
        let n = self.parts.len();
        let waiters = waiter.ensure(n);
        let chunk = max.div_ceil(n);
        let mut closed = 0;
        for i in 0..n {
            let idx = (self.next + i) % n;
            let part = &mut self.parts[idx];
            let mut tagged = Tagged {
                partition: part.partition,
                out: &mut *out,
            };
            match part
                .cursor
                .poll_recv_batch(cx, &mut waiters[idx], chunk, &mut tagged)
            {
                Poll::Pending => {}
                Poll::Ready(Ok(k)) => {
                    self.next = (idx + 1) % n;
                    return Poll::Ready(Ok(k));
                }
                Poll::Ready(Err(memq_core::RecvError::Lagged(skipped))) => {
                    self.next = (idx + 1) % n;
                    return Poll::Ready(Err(RecvError::Lagged {
                        partition: part.partition,
                        skipped,
                    }));
                }
                Poll::Ready(Err(_)) => closed += 1,
            }
        }
        if closed == n {
            Poll::Ready(Err(RecvError::Closed))
        } else {
            Poll::Pending
        }
    }
}

/// Future of [`MergedCursor::recv`]; resolves to `(partition, message)`.
///
/// Cancel safe: dropping it loses no message.
///
/// # Examples
///
/// ```
/// # use memq_core::{StartFrom, TopicConfig};
/// # use memq_partition::PartitionedTopic;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
/// // Lose a race against a timeout: the future is dropped, nothing is lost.
/// let raced = tokio::time::timeout(std::time::Duration::from_millis(1), all.recv()).await;
/// assert!(raced.is_err());
/// topic.try_publish(None, 'm').unwrap();
/// assert_eq!(all.recv().await.unwrap().1.value, 'm');
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    cursor: &'a mut MergedCursor<T>,
    waiter: MergedWaiter<T>,
}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Result<(usize, Delivered<T>), RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.cursor.poll_recv(cx, &mut this.waiter)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}

/// Future of [`MergedCursor::recv_batch`]; resolves to the number of
/// messages appended.
///
/// Cancel safe: messages are appended only by the poll that completes it.
///
/// # Examples
///
/// ```
/// # use memq_core::{StartFrom, TopicConfig};
/// # use memq_partition::PartitionedTopic;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// let mut all = topic.subscribe_all(StartFrom::Latest).unwrap();
/// for i in 0..3 { topic.try_publish(None, i).unwrap(); }
/// let mut out = Vec::new();
/// assert_eq!(all.recv_batch(2, &mut out).await.unwrap(), 2);
/// assert_eq!(all.recv_batch(2, &mut out).await.unwrap(), 1);
/// assert_eq!(out.len(), 3);
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RecvBatch<'a, T, E> {
    cursor: &'a mut MergedCursor<T>,
    max: usize,
    out: &'a mut E,
    waiter: MergedWaiter<T>,
}

impl<T: Clone, E: Extend<(usize, Delivered<T>)>> Future for RecvBatch<'_, T, E> {
    type Output = Result<usize, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.cursor.poll_take(cx, &mut this.waiter, this.max, this.out)
    }
}

impl<T, E> fmt::Debug for RecvBatch<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}
