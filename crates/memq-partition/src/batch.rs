//! Batch publishing: routing a batch, splitting it into one share per
//! partition, and publishing the shares in ascending partition order.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use memq_core::Topic;

use crate::error::{PublishBatchError, PublishError};
use crate::routing::RouterState;

/// Where a batch went: one contiguous run of offsets per partition.
///
/// # Examples
///
/// ```
/// use memq_core::TopicConfig;
/// use memq_partition::PartitionedTopic;
///
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// let batch: Vec<(Option<&[u8]>, u8)> = vec![(None, 10), (None, 11), (None, 12)];
/// let receipt = topic.try_publish_batch(batch).unwrap();
/// // Round-robin: 10 → p0, 11 → p1, 12 → p0.
/// assert_eq!(receipt.shares(), &[(0, 0..2), (1, 0..1)]);
/// assert_eq!(receipt.placements(), vec![(0, 0), (1, 0), (0, 1)]);
/// assert_eq!(receipt.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReceipt {
    shares: Vec<(usize, Range<u64>)>,
    routes: Vec<usize>,
}

impl BatchReceipt {
    /// Each partition that received messages, ascending, with the offsets
    /// its share got (contiguous, in input order).
    pub fn shares(&self) -> &[(usize, Range<u64>)] {
        &self.shares
    }

    /// `(partition, offset)` of every message, in input order.
    pub fn placements(&self) -> Vec<(usize, u64)> {
        let mut next: Vec<u64> = self.shares.iter().map(|(_, r)| r.start).collect();
        self.routes
            .iter()
            .filter_map(|&p| {
                let i = self.shares.binary_search_by_key(&p, |(q, _)| *q).ok()?;
                let offset = next[i];
                next[i] += 1;
                Some((p, offset))
            })
            .collect()
    }

    /// The number of messages published.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// One partition's part of a batch, with each message's input index.
struct Share<K, T> {
    partition: usize,
    index: Vec<usize>,
    keys: Vec<Option<K>>,
    values: Vec<T>,
}

/// A routed batch: its shares in ascending partition order, and each
/// message's partition in input order.
struct Split<K, T> {
    shares: VecDeque<Share<K, T>>,
    routes: Vec<usize>,
}

/// Routes `messages` and splits them into shares in ascending partition
/// order. On a routing error nothing is split: the batch comes back whole.
fn split<K: AsRef<[u8]>, T>(
    router: &RouterState,
    messages: Vec<(Option<K>, T)>,
) -> Result<Split<K, T>, PublishBatchError<K, T>> {
    let mut routes = Vec::new();
    if let Err(error) = router.route_batch(&messages, &mut routes) {
        return Err(PublishBatchError {
            cause: PublishError::Route { error, value: () },
            published: Vec::new(),
            unpublished_index: (0..messages.len()).collect(),
            unpublished: messages,
        });
    }
    let mut shares: BTreeMap<usize, Share<K, T>> = BTreeMap::new();
    for (i, ((key, value), &partition)) in messages.into_iter().zip(&routes).enumerate() {
        let share = shares.entry(partition).or_insert_with(|| Share {
            partition,
            index: Vec::new(),
            keys: Vec::new(),
            values: Vec::new(),
        });
        share.index.push(i);
        share.keys.push(key);
        share.values.push(value);
    }
    Ok(Split {
        shares: shares.into_values().collect(),
        routes,
    })
}

/// Puts the messages of a failed share and of the shares never tried back
/// in input order, with their input indices.
#[allow(clippy::type_complexity)]
fn unpublished<K, T>(
    failed: Option<Share<K, T>>,
    rest: VecDeque<Share<K, T>>,
) -> (Vec<(Option<K>, T)>, Vec<usize>) {
    let mut all: Vec<(usize, Option<K>, T)> = Vec::new();
    for s in failed.into_iter().chain(rest) {
        all.extend(
            s.index
                .into_iter()
                .zip(s.keys)
                .zip(s.values)
                .map(|((i, k), v)| (i, k, v)),
        );
    }
    all.sort_unstable_by_key(|(i, _, _)| *i);
    all.into_iter().map(|(i, k, v)| ((k, v), i)).unzip()
}

fn stopped<K, T>(
    partition: usize,
    error: memq_core::PublishError<Vec<T>>,
    index: Vec<usize>,
    keys: Vec<Option<K>>,
    rest: VecDeque<Share<K, T>>,
    published: Vec<(usize, Range<u64>)>,
) -> PublishBatchError<K, T> {
    let mut values = None;
    let error = error.map(|v| values = Some(v));
    let failed = values.map(|values| Share {
        partition,
        index,
        keys,
        values,
    });
    let (unpublished, unpublished_index) = unpublished(failed, rest);
    PublishBatchError {
        cause: PublishError::Partition { partition, error },
        published,
        unpublished,
        unpublished_index,
    }
}

pub(crate) fn try_publish_batch<K: AsRef<[u8]>, T: Clone + Send + 'static>(
    partitions: &[Topic<T>],
    router: &RouterState,
    messages: Vec<(Option<K>, T)>,
) -> Result<BatchReceipt, PublishBatchError<K, T>> {
    let Split { mut shares, routes } = split(router, messages)?;
    let mut published = Vec::with_capacity(shares.len());
    while let Some(share) = shares.pop_front() {
        let Share {
            partition,
            index,
            keys,
            values,
        } = share;
        match partitions[partition].try_publish_batch(values) {
            Ok(range) => published.push((partition, range)),
            Err(e) => return Err(stopped(partition, e, index, keys, shares, published)),
        }
    }
    Ok(BatchReceipt {
        shares: published,
        routes,
    })
}

struct InFlight<'a, K, T> {
    partition: usize,
    index: Vec<usize>,
    keys: Vec<Option<K>>,
    publish: memq_core::PublishBatch<'a, T>,
}

/// Future of [`PartitionedTopic::publish_batch`](crate::PartitionedTopic::publish_batch);
/// resolves to a [`BatchReceipt`].
///
/// Shares are published one after another in ascending partition order;
/// the future waits only where a share waits (a full
/// [`Overflow::Block`](memq_core::Overflow::Block) partition).
///
/// # Examples
///
/// ```
/// # use memq_core::TopicConfig;
/// # use memq_partition::PartitionedTopic;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
/// let batch: Vec<(Option<Vec<u8>>, i32)> = (0..6).map(|i| (None, i)).collect();
/// let receipt = topic.publish_batch(batch).await.unwrap();
/// assert_eq!(receipt.shares(), &[(0, 0..2), (1, 0..2), (2, 0..2)]);
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct PublishBatch<'a, K, T> {
    partitions: &'a [Topic<T>],
    routes: Vec<usize>,
    pending: VecDeque<Share<K, T>>,
    current: Option<InFlight<'a, K, T>>,
    published: Vec<(usize, Range<u64>)>,
    failed: Option<PublishBatchError<K, T>>,
    done: bool,
}

impl<'a, K: AsRef<[u8]>, T: Clone + Send + 'static> PublishBatch<'a, K, T> {
    pub(crate) fn new(
        partitions: &'a [Topic<T>],
        router: &RouterState,
        messages: Vec<(Option<K>, T)>,
    ) -> Self {
        let (pending, routes, failed) = match split(router, messages) {
            Ok(Split { shares, routes }) => (shares, routes, None),
            Err(e) => (VecDeque::new(), Vec::new(), Some(e)),
        };
        PublishBatch {
            partitions,
            published: Vec::with_capacity(pending.len()),
            routes,
            pending,
            current: None,
            failed,
            done: false,
        }
    }
}

impl<K, T> PublishBatch<'_, K, T> {
    /// The shares published so far: partition and offsets (see
    /// [`take_unpublished`](Self::take_unpublished) for an example).
    pub fn published(&self) -> &[(usize, Range<u64>)] {
        &self.published
    }

    /// Takes back every message not yet published, with its key, in input
    /// order, so that a caller giving up (a timeout, say) keeps them;
    /// [`published`](Self::published) still says what was published.
    /// Polling afterwards panics.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memq_core::{Overflow, StartFrom, TopicConfig};
    /// # use memq_partition::PartitionedTopic;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let config = TopicConfig::default().max_messages(Some(1)).overflow(Overflow::Block);
    /// let topic = PartitionedTopic::new(config, 2).unwrap();
    /// let _reader = topic.subscribe_partition(1, StartFrom::Earliest).unwrap();
    /// topic.partition(1).unwrap().try_publish('x').unwrap(); // partition 1 is full
    ///
    /// let batch: Vec<(Option<&[u8]>, char)> = vec![(None, 'a'), (None, 'b')]; // a → 0, b → 1
    /// let mut publish = topic.publish_batch(batch);
    /// let timed_out = tokio::time::timeout(std::time::Duration::from_millis(1), &mut publish).await;
    /// assert!(timed_out.is_err());
    /// assert_eq!(publish.published(), &[(0, 0..1)]);
    /// let back: Vec<char> = publish.take_unpublished().into_iter().map(|(_, v)| v).collect();
    /// assert_eq!(back, vec!['b']);
    /// # }
    /// ```
    pub fn take_unpublished(&mut self) -> Vec<(Option<K>, T)> {
        self.done = true;
        if let Some(e) = self.failed.take() {
            return e.unpublished;
        }
        let failed = self.current.take().and_then(|mut f| {
            let values = f.publish.take_values()?;
            Some(Share {
                partition: f.partition,
                index: f.index,
                keys: f.keys,
                values,
            })
        });
        unpublished(failed, std::mem::take(&mut self.pending)).0
    }
}

impl<K, T> Unpin for PublishBatch<'_, K, T> {}

impl<K, T: Clone + Send + 'static> Future for PublishBatch<'_, K, T> {
    type Output = Result<BatchReceipt, PublishBatchError<K, T>>;

    /// # Panics
    ///
    /// When polled after it completed or after
    /// [`take_unpublished`](PublishBatch::take_unpublished).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "publish_batch future polled after completion");
        if let Some(e) = this.failed.take() {
            this.done = true;
            return Poll::Ready(Err(e));
        }
        loop {
            let flight = match &mut this.current {
                Some(flight) => flight,
                None => match this.pending.pop_front() {
                    None => {
                        this.done = true;
                        return Poll::Ready(Ok(BatchReceipt {
                            shares: std::mem::take(&mut this.published),
                            routes: std::mem::take(&mut this.routes),
                        }));
                    }
                    Some(share) => this.current.insert(InFlight {
                        partition: share.partition,
                        index: share.index,
                        keys: share.keys,
                        publish: this.partitions[share.partition].publish_batch(share.values),
                    }),
                },
            };
            let partition = flight.partition;
            match Pin::new(&mut flight.publish).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(range)) => {
                    this.published.push((partition, range));
                    this.current = None;
                }
                Poll::Ready(Err(e)) => {
                    this.done = true;
                    let (index, keys) = this.current.take().map(|f| (f.index, f.keys)).unwrap_or_default();
                    return Poll::Ready(Err(stopped(
                        partition,
                        e,
                        index,
                        keys,
                        std::mem::take(&mut this.pending),
                        std::mem::take(&mut this.published),
                    )));
                }
            }
        }
    }
}

impl<K, T> fmt::Debug for PublishBatch<'_, K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishBatch")
            .field("published", &self.published)
            .field("in_flight", &self.current.as_ref().map(|c| c.partition))
            .field("pending_shares", &self.pending.len())
            .finish_non_exhaustive()
    }
}
