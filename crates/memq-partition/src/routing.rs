//! Routing strategies: which partition a message goes to.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::{PartitionOutOfRange, RouteError};
use crate::murmur2::kafka_partition;

/// A user-supplied routing function.
///
/// Implemented for every `Fn(Option<&[u8]>, usize) -> usize + Send + Sync`,
/// so a closure is a router. It is called with the message key and the
/// partition count (at least 1) and returns a partition index. An index
/// at or past the count fails the publish with
/// [`RouteError::RouterOutOfRange`]; a panic fails it with
/// [`RouteError::RouterPanicked`] and leaves the topic fully usable.
///
/// # Examples
///
/// ```
/// use memq_partition::{PartitionedTopic, Routing};
/// use memq_core::TopicConfig;
///
/// // Keys starting with "vip" go to partition 0, the rest to partition 1.
/// let topic = PartitionedTopic::new(TopicConfig::default(), 2).unwrap();
/// topic.set_routing(Routing::custom(|key: Option<&[u8]>, _n: usize| {
///     usize::from(!key.is_some_and(|k| k.starts_with(b"vip")))
/// }));
/// assert_eq!(topic.try_publish(Some(b"vip-7"), "a").unwrap(), (0, 0));
/// assert_eq!(topic.try_publish(Some(b"user-1"), "b").unwrap(), (1, 0));
/// ```
pub trait Router: Send + Sync + 'static {
    /// Picks the partition, below `partitions`, for a message with `key`.
    fn route(&self, key: Option<&[u8]>, partitions: usize) -> usize;
}

impl<F> Router for F
where
    F: Fn(Option<&[u8]>, usize) -> usize + Send + Sync + 'static,
{
    fn route(&self, key: Option<&[u8]>, partitions: usize) -> usize {
        self(key, partitions)
    }
}

/// How a [`PartitionedTopic`](crate::PartitionedTopic) picks a partition
/// for each message. See the crate docs, `## Routing`.
///
/// # Examples
///
/// ```
/// use memq_partition::{PartitionedTopic, Routing};
/// use memq_core::TopicConfig;
///
/// let topic = PartitionedTopic::new(TopicConfig::default(), 3).unwrap();
/// assert!(matches!(topic.routing(), Routing::RoundRobin)); // the default
/// topic.set_routing(Routing::Fixed(2));
/// assert_eq!(topic.try_publish(None, 'x').unwrap(), (2, 0));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Routing {
    /// Partitions in turn: 0, 1, …, n−1, 0, … shared by all publishers
    /// of the topic. Keys are ignored.
    #[default]
    RoundRobin,
    /// By key, with Kafka's default partitioner:
    /// `(murmur2(key) & 0x7fffffff) % partitions`
    /// ([`kafka_partition`](crate::kafka_partition)). A message without a
    /// key takes the next round-robin partition.
    Hash,
    /// A uniformly random partition per message (a splitmix64 generator
    /// seeded once per topic from the OS). Keys are ignored.
    Random,
    /// Always this partition; an index out of range fails every publish
    /// with [`RouteError::FixedOutOfRange`].
    Fixed(usize),
    /// A user-supplied [`Router`]; build it with [`Routing::custom`].
    Custom(Arc<dyn Router>),
}

impl Routing {
    /// Wraps a [`Router`] (a closure works) as a routing strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_partition::Routing;
    ///
    /// let last = Routing::custom(|_key: Option<&[u8]>, n: usize| n - 1);
    /// assert!(matches!(last, Routing::Custom(_)));
    /// ```
    pub fn custom(router: impl Router) -> Self {
        Routing::Custom(Arc::new(router))
    }
}

impl fmt::Debug for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Routing::RoundRobin => f.write_str("RoundRobin"),
            Routing::Hash => f.write_str("Hash"),
            Routing::Random => f.write_str("Random"),
            Routing::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
            Routing::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A partitioned topic's routing and its state (the round-robin counter,
/// the random stream), usable without a topic of this crate: a backend
/// that keeps partitions elsewhere (a network store) routes with it the
/// same way.
///
/// ```
/// use memq_partition::{RouterState, Routing};
///
/// let router = RouterState::new(3);
/// assert_eq!((router.route(None), router.route(None)), (Ok(0), Ok(1)), "round-robin");
/// router.set(Routing::Hash);
/// let p = router.route(Some(b"customer-9")).unwrap();
/// assert_eq!(router.route(Some(b"customer-9")), Ok(p), "one key, one partition");
/// ```
pub struct RouterState {
    routing: RwLock<Routing>,
    next: AtomicUsize,
    rng: AtomicU64,
    partitions: usize,
}

impl fmt::Debug for RouterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterState")
            .field("routing", &self.get())
            .finish_non_exhaustive()
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RouterState {
    /// Routing among `partitions` partitions (0 counts as 1),
    /// round-robin to begin with.
    pub fn new(partitions: usize) -> Self {
        let partitions = partitions.max(1);
        RouterState {
            routing: RwLock::new(Routing::default()),
            next: AtomicUsize::new(0),
            rng: AtomicU64::new(RandomState::new().hash_one(0x6d65_6d71_u64)),
            partitions,
        }
    }

    /// The routing in use.
    pub fn get(&self) -> Routing {
        self.routing
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the routing.
    pub fn set(&self, routing: Routing) {
        let old = {
            let mut g = self.routing.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *g, routing)
        };
        // A custom router's destructor runs here, with no lock held.
        drop(old);
    }

    /// The next `count` round-robin positions start here.
    fn round_robin(&self, count: usize) -> usize {
        self.next.fetch_add(count, Ordering::Relaxed)
    }

    fn random(&self) -> usize {
        let z = self.rng.fetch_add(GOLDEN, Ordering::Relaxed).wrapping_add(GOLDEN);
        // Lemire's multiply-shift: uniform enough for any count below 2^32
        // and free of the modulo's division.
        ((u128::from(splitmix64(z)) * self.partitions as u128) >> 64) as usize
    }

    fn check(&self, partition: usize) -> Result<usize, PartitionOutOfRange> {
        if partition < self.partitions {
            Ok(partition)
        } else {
            Err(PartitionOutOfRange {
                partition,
                partitions: self.partitions,
            })
        }
    }

    /// Routes one message.
    /// The partition of a message with `key`.
    ///
    /// # Errors
    ///
    /// [`RouteError`] when a fixed partition or a custom router's choice is
    /// out of range, or the custom router panicked.
    pub fn route(&self, key: Option<&[u8]>) -> Result<usize, RouteError> {
        let n = self.partitions;
        let routing = self.get();
        match routing {
            Routing::RoundRobin => Ok(self.round_robin(1) % n),
            Routing::Hash => Ok(match key {
                Some(k) => kafka_partition(k, n),
                None => self.round_robin(1) % n,
            }),
            Routing::Random => Ok(self.random()),
            Routing::Fixed(p) => self.check(p).map_err(RouteError::FixedOutOfRange),
            Routing::Custom(router) => {
                let p = catch_unwind(AssertUnwindSafe(|| router.route(key, n)))
                    .map_err(|_| RouteError::RouterPanicked)?;
                self.check(p).map_err(RouteError::RouterOutOfRange)
            }
        }
    }

    /// Routes a batch under one strategy snapshot, writing one partition
    /// per message into `out`. All or nothing: on error `out` is
    /// meaningless.
    /// The partitions of a batch of keyed messages, pushed to `out` in
    /// order (a round-robin batch takes consecutive partitions).
    ///
    /// # Errors
    ///
    /// As [`route`](Self::route); nothing is pushed past the failure.
    pub fn route_batch<K: AsRef<[u8]>, T>(
        &self,
        messages: &[(Option<K>, T)],
        out: &mut Vec<usize>,
    ) -> Result<(), RouteError> {
        let n = self.partitions;
        let count = messages.len();
        out.reserve(count);
        match self.get() {
            Routing::RoundRobin => {
                let start = if count > 0 { self.round_robin(count) } else { 0 };
                out.extend((0..count).map(|i| start.wrapping_add(i) % n));
            }
            Routing::Hash => {
                // Round-robin positions are reserved for keyless messages only.
                let keyless = messages.iter().filter(|(k, _)| k.is_none()).count();
                let mut next = if keyless > 0 { self.round_robin(keyless) } else { 0 };
                out.extend(messages.iter().map(|(key, _)| match key {
                    Some(k) => kafka_partition(k.as_ref(), n),
                    None => {
                        let p = next % n;
                        next = next.wrapping_add(1);
                        p
                    }
                }));
            }
            Routing::Random => out.extend((0..count).map(|_| self.random())),
            Routing::Fixed(p) => {
                let p = self.check(p).map_err(RouteError::FixedOutOfRange)?;
                out.extend(std::iter::repeat_n(p, count));
            }
            Routing::Custom(router) => {
                let routed = catch_unwind(AssertUnwindSafe(|| -> Result<(), PartitionOutOfRange> {
                    for (key, _) in messages {
                        out.push(self.check(router.route(key.as_ref().map(AsRef::as_ref), n))?);
                    }
                    Ok(())
                }));
                match routed {
                    Err(_) => return Err(RouteError::RouterPanicked),
                    Ok(Err(e)) => return Err(RouteError::RouterOutOfRange(e)),
                    Ok(Ok(())) => {}
                }
            }
        }
        Ok(())
    }
}
