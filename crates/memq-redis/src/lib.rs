//! The tokio-memq topic log over Redis Streams (7.0 or newer), usable on its own: the first
//! layer of running a queue across processes (see `DESIGN-redis.md` in the project notes).
//!
//! * Offsets are dense `u64`s assigned by the server where a message becomes visible: offset
//!   `o` is stream entry `0-(o+1)` (`XADD key 0-*`), equal for every process.
//! * A publish or a batch is one call of this crate's Redis FUNCTION: contiguous, or nothing,
//!   even with many processes publishing at once.
//! * Retention by count trims exactly (`MAXLEN =`); a reader behind the oldest retained
//!   message gets [`RecvError::Lagged`] with the exact count it lost, then the rest.
//! * Consumer groups ([`Topic::join`]): each message to one member, automatic or manual
//!   acknowledgement, what an idle member holds taken over by another with its delivery
//!   count, dead letters at a delivery limit; a group behind the oldest retained message
//!   is told [`RecvError::Lagged`] with the exact count it lost (counted as the log is
//!   trimmed).
//! * Partitioned topics ([`Store::partitioned_topic`]): one stream per partition.
//! * Faults: a lost connection is replaced (a growing pause between attempts, up to 30 s);
//!   reads and other commands that may safely run twice are sent again, a publish cut off
//!   after it was sent is [`Error::OutcomeUnknown`]; a receive dropped while it waits cancels
//!   its wait on the server (`CLIENT UNBLOCK`); a server restarted without its data is
//!   [`Error::TopicGone`] to the handles of the topics it lost, and one that kept a topic but
//!   lost its newest messages is [`Error::AheadOfLog`] to a reader past the end: never a silent
//!   stall. A group member is told [`Error::TopicGone`] too, also when the topic was created
//!   again under its name (a topic's incarnation is the server's clock and a count, so one
//!   made again on a server that lost its data is told apart). A healthy server is given the
//!   time a large batch or payload needs (10 s and 250 ms per MiB sent) before its connection
//!   counts as lost; a server that lost this crate's functions (`FUNCTION FLUSH`) is given
//!   them again. A server that may evict any key when short of memory (an `allkeys-*`
//!   `maxmemory-policy`) is refused on connect ([`Error::EvictingServer`]).
//! * A topic's settings are created, and a topic deleted, in one call each: two processes
//!   creating one topic with different settings leave one side's, never a mix.
//! * Data this crate never writes is an error, never a panic or a silent message: a stored
//!   partition count of 0 or a server's refusal is [`Error::Protocol`] (not a lost
//!   connection: see [`Error::is_unavailable`]); an entry with no payload or a key that is not
//!   UTF-8 is [`Error::Malformed`], once, and passed.
//!
//! * Group stats ([`Topic::group_stats`]): exact lag (dense offsets), pending, members.
//!
//! * TTL ([`TopicConfig::ttl`], by the server's clock): expired messages are never delivered
//!   (readers skip them silently, groups acknowledge them), and removed by the next publish;
//!   each removal's cause is recorded, so a reader is told exactly how many it lost to
//!   `max_messages` however expiry and eviction interleave (the newest 256 runs exactly).
//!
//! The facade (`tokio-memq` with its `redis` feature) builds `MessageQueue::connect` on this
//! crate: the same publishers, subscribers and groups as in memory.
//!
//! # Examples
//!
//! ```no_run
//! use memq_redis::{Start, Store, TopicConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::connect("redis://127.0.0.1:6379/").await?;
//! let topic = store.topic("orders", TopicConfig::default()).await?;
//! let mut reader = topic.reader(Start::Earliest).await?;
//! assert_eq!(topic.publish_batch(&[&b"a"[..], b"b"]).await?, 0..2);
//! assert_eq!(&reader.recv().await?.payload[..], b"a");
//! # Ok(()) }
//! ```

mod group;

pub use group::{AckMode, Delivery, GroupConfig, GroupStats, Member};

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
pub use memq_codec::Headers;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};

/// The function library, loaded on connect.
const LIBRARY: &str = include_str!("memq.lua");

/// The set of topic names.
const TOPICS: &str = "memq:topics";

/// How long one blocking read waits on the server before asking again.
const BLOCK: Duration = Duration::from_millis(1000);

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection or a command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The server is older than 7.0 (dense IDs and functions need 7.0).
    #[error("redis {0} is too old: memq-redis needs 7.0 or newer")]
    ServerTooOld(String),
    /// The server may evict any key when it runs short of memory (its
    /// `maxmemory-policy` is the one named, an `allkeys-*` policy): a
    /// topic's log could go while its settings stay, and offsets start
    /// again. Use `noeviction` (or a `volatile-*` policy: this crate sets
    /// no expiry on its keys).
    #[error("redis may evict queue data under its maxmemory-policy {0:?}: memq-redis needs noeviction (or a volatile-* policy)")]
    EvictingServer(String),
    /// The topic was deleted (or deleted and created again) while this handle used it.
    #[error("topic {0:?} was deleted")]
    TopicGone(String),
    /// A partitioned topic asked with no partitions or another count than
    /// it has.
    #[error("topic {topic:?}: {requested} partitions asked, {existing:?} exist")]
    PartitionCount {
        /// The topic.
        topic: String,
        /// The count asked for.
        requested: usize,
        /// The count it has, when it exists.
        existing: Option<usize>,
    },
    /// A plain topic asked where a partitioned one has the name, or the
    /// other way round.
    #[error("topic {topic:?} exists as the other kind (plain or partitioned)")]
    KindMismatch {
        /// The topic.
        topic: String,
    },
    /// A message has more than [`MAX_HEADERS`] headers; nothing was
    /// published.
    #[error("a message has {0} headers, more than the {MAX_HEADERS} a message may carry")]
    TooManyHeaders(usize),
    /// The connection was lost after a publish was sent: it may or may
    /// not have been stored. (The next call reconnects. Read the topic to
    /// find out before publishing again, if a duplicate matters.)
    #[error("the connection to redis was lost after a publish was sent; it may or may not be stored: {0}")]
    OutcomeUnknown(#[source] redis::RedisError),
    /// No connection could be had (or the server kept declining, as while
    /// it loads its data) before the deadline the caller gave
    /// ([`Topic::publish_messages_by`]): nothing was sent.
    #[error("redis could not be reached before the publish's deadline; nothing was sent")]
    Deadline,
    /// A reader's position is past the end of the log: the server lost
    /// messages it had stored (restarted from an older copy of its data,
    /// or a failover to a replica that had not received them). New
    /// messages would take offsets the reader has passed, so it stops
    /// instead of waiting for them; read again from a position the log
    /// has.
    #[error("topic {topic:?}: the reader is at offset {position}, past the end of the log ({high}): the server lost messages")]
    AheadOfLog {
        /// The topic.
        topic: String,
        /// The reader's position.
        position: u64,
        /// The offset the next message will get.
        high: u64,
    },
    /// A start offset outside the retained window `low..=high`.
    #[error("offset {offset} is outside the retained window {low}..={high}")]
    OutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The oldest retained offset.
        low: u64,
        /// The offset the next message will get.
        high: u64,
    },
    /// The server answered something this crate does not expect.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The entry at `offset` is not a message this crate can read (written
    /// to the log by another program: no payload, a key or format name
    /// that is not UTF-8, no publish time). It is reported once: a reader
    /// goes on after it, and a group member acknowledges it (no member
    /// could read it either).
    #[error("topic {topic:?}: the entry at offset {offset} is malformed: {reason}")]
    Malformed {
        /// The topic.
        topic: String,
        /// The entry's offset.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Whether the server could not be reached (or kept answering that it
    /// is loading its data) until the store gave up reconnecting: nothing
    /// was done, and the same call may work later. False for everything
    /// else, notably a command the server refused with an error reply (a
    /// key of the wrong type, an entry ID at or below the log's top, ...),
    /// which asking again would not change.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_redis::Error;
    ///
    /// let lost = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// assert!(Error::Redis(lost.into()).is_unavailable());
    /// assert!(!Error::Protocol("a partition count of 0".into()).is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Redis(e) if !refused(e)) || matches!(self, Error::Deadline)
    }
}

/// Whether `e` says that a function of this crate's library is not on
/// the server.
fn function_missing(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// Whether `e` is the server's error reply to a command it will refuse
/// again (`WRONGTYPE`, `ERR ... equal or smaller than the target stream top
/// item`, ...), as opposed to a connection failure or a server declining
/// for now (`LOADING`, `BUSY` with a long script, a failover under way).
fn refused(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    ) && matches!(e.retry_method(), redis::RetryMethod::NoRetry)
        && e.code() != Some("BUSY")
}

/// Whether `e` means the connection is gone (a new one is needed).
fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || matches!(
            e.retry_method(),
            redis::RetryMethod::Reconnect | redis::RetryMethod::ReconnectFromInitialConnections
        )
}

/// Whether `e` is the server declining to run a command for now (loading
/// its data after a restart, ...): nothing was done, and it can be asked
/// again shortly.
fn transient(e: &redis::RedisError) -> bool {
    !e.is_io_error() && matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry)
}

/// How long a command keeps trying to reconnect (and a server that is
/// loading its data to answer) before it fails.
const RECONNECT_FOR: Duration = Duration::from_secs(30);
/// The first pause between reconnection attempts; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Pauses between attempts: 10 ms doubling to 1 s, until a deadline.
struct Backoff {
    next: Duration,
    deadline: tokio::time::Instant,
}

impl Backoff {
    fn new(within: Duration) -> Self {
        Backoff {
            next: FIRST_BACKOFF,
            deadline: tokio::time::Instant::now() + within,
        }
    }

    /// Waits before the next attempt; false when the deadline is past.
    async fn wait(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.next.min(self.deadline - now)).await;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        true
    }
}

/// Runs `step`, which has sent nothing yet, until `send_by` at most:
/// [`Error::Deadline`] when that comes first (the step is dropped).
async fn before<F: std::future::Future>(
    send_by: Option<std::time::Instant>,
    step: F,
) -> Result<F::Output, Error> {
    match send_by {
        None => Ok(step.await),
        Some(at) => tokio::time::timeout_at(at.into(), step)
            .await
            .map_err(|_| Error::Deadline),
    }
}

/// Opens a connection with `open`, trying again (with [`Backoff`]) while the
/// server cannot be reached or is loading its data.
async fn reconnect<C, F>(mut open: impl FnMut() -> F) -> Result<C, Error>
where
    F: std::future::Future<Output = Result<C, Error>>,
{
    let mut backoff = Backoff::new(RECONNECT_FOR);
    loop {
        match open().await {
            Err(Error::Redis(e)) if (broken(&e) || transient(&e)) && backoff.wait().await => {}
            other => return other,
        }
    }
}

/// Why a read returned no message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// This many messages were trimmed before the reader read them; it goes on with the
    /// oldest retained one.
    #[error("lagged behind: {0} messages lost")]
    Lagged(u64),
    /// Talking to Redis failed (the reader keeps its position).
    #[error(transparent)]
    Store(#[from] Error),
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// The oldest retained message.
    Earliest,
    /// The next message published.
    Latest,
    /// This offset (it must be retained or the next to be published).
    Offset(u64),
}

/// A topic's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// The most messages the topic retains (older ones are trimmed); `None` for no limit.
    pub max_messages: Option<usize>,
    /// How long a message lives (by the server's clock, to the
    /// millisecond): older ones are never delivered, and are removed when
    /// the next publish comes. A reader that skips expired messages is not
    /// told (they are gone as if read); one that lost messages to
    /// `max_messages` is told exactly how many. `None`: no limit.
    pub ttl: Option<Duration>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            max_messages: Some(10_000),
            ttl: None,
        }
    }
}

impl TopicConfig {
    /// Sets [`max_messages`](Self::max_messages).
    #[must_use]
    pub fn max_messages(mut self, max: Option<usize>) -> Self {
        self.max_messages = max;
        self
    }

    /// Sets [`ttl`](Self::ttl) (rounded up to whole milliseconds).
    #[must_use]
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }
}

/// The message limit as the server keeps it (0: none). Lua's numbers hold
/// integers exactly up to 2^53 and `XADD`'s `MAXLEN` takes no more than
/// an `i64`: a larger limit is kept as 2^53, which no server holds.
fn max_count(max: Option<usize>) -> u64 {
    const MOST: u64 = 1 << 53;
    max.map_or(0, |m| u64::try_from(m).unwrap_or(MOST).min(MOST))
}

/// A TTL in whole milliseconds (rounded up; 0: none).
fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| {
        u64::try_from(t.as_nanos().div_ceil(1_000_000))
            .unwrap_or(u64::MAX)
            .max(1)
    })
}

/// The key of a topic's removal runs, beside its meta hash.
fn removed_key(meta: &str) -> String {
    format!("{}:removed", meta.strip_suffix(":meta").unwrap_or(meta))
}

/// A message read from a topic. Two records are equal when they are the
/// same message (their [`expires`](Self::expires), reckoned when each
/// was read, is left out).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Record {
    /// Its offset.
    pub offset: u64,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Its bytes.
    pub payload: Bytes,
    /// Its key, if it was published with one.
    pub key: Option<String>,
    /// The name of its format, if it was published with one.
    pub format: Option<String>,
    /// Its record headers, in order.
    pub headers: Headers,
    /// When it expires, on this machine's clock, for a topic with a TTL:
    /// its publish time plus the TTL, by the server's clock as read with
    /// it. Read ahead, it is not handed out from then on
    /// ([`Record::is_expired`]).
    pub expires: Option<std::time::Instant>,
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        (
            self.offset,
            self.time_ms,
            &self.payload,
            &self.key,
            &self.format,
            &self.headers,
        ) == (
            other.offset,
            other.time_ms,
            &other.payload,
            &other.key,
            &other.format,
            &other.headers,
        )
    }
}

impl Eq for Record {}

impl Record {
    /// Whether it has expired (never, for a topic without a TTL).
    pub fn is_expired(&self) -> bool {
        self.expires.is_some_and(|at| at <= std::time::Instant::now())
    }

    /// Sets [`expires`](Self::expires) for a TTL of `ttl_ms` from the
    /// server's clock, `server_now_ms`, read at `read_at` on this machine.
    pub(crate) fn expire_after(&mut self, ttl_ms: u64, server_now_ms: u64, read_at: std::time::Instant) {
        let left = self.time_ms.saturating_add(ttl_ms).saturating_sub(server_now_ms);
        self.expires = read_at.checked_add(Duration::from_millis(left));
    }
}

/// The most record headers one message may carry here (a Redis function
/// unpacks a message's fields onto its stack, which holds about 8,000
/// values).
pub const MAX_HEADERS: usize = 3_900;

/// A message to publish: a payload, and optionally a key, a format name
/// and record headers, all stored with it on the server.
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    payload: &'a [u8],
    key: Option<&'a str>,
    format: Option<&'a str>,
    headers: Option<&'a Headers>,
}

impl<'a> Message<'a> {
    /// A message of `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        Message {
            payload,
            ..Message::default()
        }
    }

    /// With a key.
    #[must_use]
    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    /// With the name of its format.
    #[must_use]
    pub fn format(mut self, format: &'a str) -> Self {
        self.format = Some(format);
        self
    }

    /// With record headers (at most [`MAX_HEADERS`] per message: the
    /// server's function takes a message's fields as arguments).
    #[must_use]
    pub fn headers(mut self, headers: &'a Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// Appends this message's field count and field/value pairs.
    fn write(&self, cmd: &mut redis::Cmd) {
        let headers = self.headers.map_or(0, Headers::len);
        let count = 1 + usize::from(self.key.is_some()) + usize::from(self.format.is_some()) + headers;
        cmd.arg(count).arg("p").arg(self.payload);
        if let Some(k) = self.key {
            cmd.arg("k").arg(k);
        }
        if let Some(f) = self.format {
            cmd.arg("f").arg(f);
        }
        for (name, value) in self.headers.into_iter().flatten() {
            cmd.arg(format!("h.{name}")).arg(&value[..]);
        }
    }
}

/// A connection to a Redis server holding topics.
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<StoreInner>,
}

struct StoreInner {
    client: Client,
    /// The connection every handle shares for short commands, with a
    /// generation that counts reconnections; `None` once it broke.
    shared: std::sync::Mutex<(u64, Option<MultiplexedConnection>)>,
    /// Held while reconnecting: one task reconnects, the others wait.
    reconnecting: tokio::sync::Mutex<()>,
    /// How many times reconnecting was given up (the server out of reach
    /// for [`RECONNECT_FOR`]): the tasks that waited meanwhile fail at once
    /// rather than each try for as long again.
    gave_up: std::sync::atomic::AtomicU64,
    /// When the shared connection last answered, in milliseconds since
    /// `born`.
    answered: std::sync::atomic::AtomicU64,
    born: std::time::Instant,
    /// Bytes of the commands sent on the shared connection and not yet
    /// answered: a command's reply comes after theirs.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// How long the shared connection waits for the reply to a small command
/// before it counts the connection as lost: a server that stopped
/// answering without closing it is found within this.
const REPLY_WITHIN: Duration = Duration::from_secs(10);
/// And how much longer per MiB sent (the server reads it, and a publish
/// stores it, before it answers): of the command itself and of those
/// ahead of it on the same connection.
const REPLY_PER_MIB: Duration = Duration::from_millis(250);

/// How long to wait for a reply behind `bytes` of commands (its own and
/// those sent before it and not yet answered): a large batch or payload
/// on a healthy server, or a small command queued behind one, is given
/// the time it needs.
fn reply_within(bytes: usize) -> Duration {
    let mib = u32::try_from(bytes >> 20).unwrap_or(u32::MAX);
    REPLY_WITHIN.saturating_add(REPLY_PER_MIB.saturating_mul(mib))
}

/// The bytes `cmd` sends (its arguments).
fn command_bytes(cmd: &redis::Cmd) -> usize {
    cmd.args_iter()
        .map(|a| match a {
            redis::Arg::Simple(a) => a.len(),
            _ => 0,
        })
        .sum()
}

/// A command's bytes counted in [`StoreInner::in_flight`] until its reply
/// comes or it is given up (dropped with the command's future).
struct InFlight<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    bytes: usize,
}

impl<'a> InFlight<'a> {
    /// Counts `bytes` in; returns the guard and how many bytes are now in
    /// flight, these included.
    fn add(count: &'a std::sync::atomic::AtomicUsize, bytes: usize) -> (Self, usize) {
        let before = count.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        (InFlight { count, bytes }, before.saturating_add(bytes))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `reply`, or, when it does not come `within`, a broken connection: a
/// server that stopped answering without closing the connection (hung, or
/// cut off by the network).
async fn within_or_broken<T>(
    within: Duration,
    reply: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(within, reply).await {
        Ok(reply) => reply,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no reply within {within:?}"),
        )
        .into()),
    }
}

/// A shared connection quiet for longer than this is checked (`PING`)
/// before a command that must not be sent twice goes out on it: after a
/// server restart the first publish would otherwise find the old
/// connection broken only once sent, and say its outcome is unknown.
const QUIET: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The keys of a topic: `memq:{name}:log` and `memq:{name}:meta` (the braces keep both in
/// one Cluster slot; `{`, `}` and `\` in names are escaped).
fn keys(name: &str) -> (String, String) {
    let escaped = escape(name);
    (
        format!("memq:{{{escaped}}}:log"),
        format!("memq:{{{escaped}}}:meta"),
    )
}

/// `name` with `{`, `}`, `#` and `\` escaped (`#` separates a partition number).
fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '{' | '}' | '#' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The keys of partition `p` of the partitioned topic `name`: each
/// partition in its own Cluster slot.
fn partition_keys(name: &str, p: usize) -> (String, String) {
    let escaped = escape(name);
    (
        format!("memq:{{{escaped}#{p}}}:log"),
        format!("memq:{{{escaped}#{p}}}:meta"),
    )
}

/// The key holding a partitioned topic's partition count.
fn parts_key(name: &str) -> String {
    format!("memq:{{{}}}:parts", escape(name))
}

/// The most partitions a topic may have here: each is a stream of its
/// own, and opening or deleting the topic visits every one.
pub const MAX_PARTITIONS: usize = 1 << 16;

/// The partition count stored for `name` (`raw`, the reply to `GET`),
/// checked: a count of 0, above [`MAX_PARTITIONS`] or not a number was not
/// written by this crate, and using it would index no partition or visit
/// billions.
fn stored_count(name: &str, raw: Option<String>) -> Result<Option<usize>, Error> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_PARTITIONS).contains(&n) => Ok(Some(n)),
        _ => Err(Error::Protocol(format!(
            "topic {name:?}: the server holds a partition count of {raw:?} (1 to {MAX_PARTITIONS} expected)"
        ))),
    }
}

impl Store {
    /// Connects, checks that the server is 7.0 or newer and will not evict
    /// queue data, and loads this crate's function library (replacing an
    /// older copy).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the server cannot be reached, [`Error::ServerTooOld`],
    /// [`Error::EvictingServer`].
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let client = Client::open(url)?;
        let conn = Self::open_connection(&client).await?;
        Ok(Store {
            inner: std::sync::Arc::new(StoreInner {
                client,
                shared: std::sync::Mutex::new((0, Some(conn))),
                reconnecting: tokio::sync::Mutex::new(()),
                gave_up: std::sync::atomic::AtomicU64::new(0),
                answered: std::sync::atomic::AtomicU64::new(0),
                born: std::time::Instant::now(),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// A new connection to a 7.0+ server, with this crate's function
    /// library loaded (again: a server restarted without its data has lost
    /// it).
    async fn open_connection(client: &Client) -> Result<MultiplexedConnection, Error> {
        // Not the `redis` crate's response timeout (500 ms by default): a
        // healthy server takes longer over a large batch or payload, and
        // a publish cut off by it would be reported as maybe lost though
        // it was stored. `run` bounds each command by its size instead.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("0")
            .trim()
            .to_string();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 7 {
            return Err(Error::ServerTooOld(version));
        }
        // A server that refuses CONFIG (some hosted ones rename it) is
        // taken as it is: its policy cannot be known from here.
        let policy: Result<Vec<String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await;
        if let Some(policy) = policy.ok().and_then(|p| p.into_iter().nth(1)) {
            if policy.starts_with("allkeys-") {
                return Err(Error::EvictingServer(policy));
            }
        }
        let _: Value = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(LIBRARY)
            .query_async(&mut conn)
            .await?;
        Ok(conn)
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let shared = self
            .inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shared.1.clone().map(|c| (shared.0, c))
    }

    /// The shared connection and its generation; when it broke, a new one
    /// (trying again with a growing pause, up to 30 s).
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), Error> {
        use std::sync::atomic::Ordering;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let gave_up = self.inner.gave_up.load(Ordering::Acquire);
        let _one = self.inner.reconnecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        if self.inner.gave_up.load(Ordering::Acquire) != gave_up {
            // The task before this one tried for 30 s while this one
            // waited: the same answer now, not 30 s more per waiting task.
            let gone = std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the server is out of reach (reconnecting was just given up)",
            );
            return Err(Error::Redis(gone.into()));
        }
        let conn = match reconnect(|| Self::open_connection(&self.inner.client)).await {
            Ok(conn) => conn,
            Err(e) => {
                self.inner.gave_up.fetch_add(1, Ordering::Release);
                return Err(e);
            }
        };
        let mut shared = self
            .inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shared.0 += 1;
        shared.1 = Some(conn.clone());
        Ok((shared.0, conn))
    }

    /// Marks the connection of `generation` broken (the next command
    /// reconnects).
    fn broke(&self, generation: u64) {
        let mut shared = self
            .inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shared.0 == generation {
            shared.1 = None;
        }
    }

    /// Runs `cmd`, which may safely run twice (a read, or a write that
    /// sets what it sets): on a lost connection it is sent again on a new
    /// one, and while the server is loading it is asked again.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        self.run(cmd, true, None).await
    }

    /// Runs `cmd`, which must not run twice (a publish): a connection lost
    /// once it may have been sent is [`Error::OutcomeUnknown`].
    ///
    /// With `send_by`, it is sent by then or not at all
    /// ([`Error::Deadline`]): reconnecting, and asking a server that
    /// declines for now again, stop there. Once sent, its reply is waited
    /// for as any command's.
    pub(crate) async fn query_once<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        send_by: Option<std::time::Instant>,
    ) -> Result<T, Error> {
        self.run(cmd, false, send_by).await
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        repeatable: bool,
        send_by: Option<std::time::Instant>,
    ) -> Result<T, Error> {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        let since_born = || inner.born.elapsed().as_millis() as u64;
        if !repeatable
            && since_born().saturating_sub(inner.answered.load(Ordering::Relaxed)) > QUIET.as_millis() as u64
        {
            // Replaced here if it broke meanwhile (a PING may run twice).
            let _: Value = before(send_by, Box::pin(self.run(&redis::cmd("PING"), true, None))).await??;
        }
        let mut backoff = Backoff::new(RECONNECT_FOR);
        let (_in_flight, ahead) = InFlight::add(&inner.in_flight, command_bytes(cmd));
        let within = reply_within(ahead);
        let mut reloaded = false;
        loop {
            let (generation, mut conn) = before(send_by, self.connection()).await??;
            let reply = within_or_broken(within, cmd.query_async::<Value>(&mut conn)).await;
            match reply {
                // The server lost the library (`FUNCTION FLUSH`, a restart
                // between a reconnect and this call): the call did not run,
                // so it is loaded again and the call sent again, once.
                Err(e) if !reloaded && function_missing(&e) => {
                    reloaded = true;
                    let load = redis::cmd("FUNCTION")
                        .arg("LOAD")
                        .arg("REPLACE")
                        .arg(LIBRARY)
                        .clone();
                    if let Err(e) = within_or_broken(within, load.query_async::<Value>(&mut conn)).await {
                        return Err(e.into());
                    }
                }
                Ok(v) => {
                    inner.answered.store(since_born(), Ordering::Relaxed);
                    // A reply of another shape than asked for is the
                    // server's data, not the connection, at fault: it
                    // must not be taken for a broken connection (the
                    // `redis` crate's conversion error asks to reconnect).
                    return redis::from_redis_value(v).map_err(|e| Error::Protocol(e.to_string()));
                }
                Err(e) if broken(&e) => {
                    self.broke(generation);
                    if !repeatable {
                        return Err(Error::OutcomeUnknown(e));
                    }
                    if !backoff.wait().await {
                        return Err(e.into());
                    }
                }
                // Declined, not run: ask again.
                Err(e) if transient(&e) && before(send_by, backoff.wait()).await? => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The topic `name`, created with `config` when absent (an existing topic keeps its own
    /// settings: they live on the server).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn topic(&self, name: &str, config: TopicConfig) -> Result<Topic, Error> {
        let partitioned: bool = self.query(redis::cmd("EXISTS").arg(parts_key(name))).await?;
        if partitioned {
            return Err(Error::KindMismatch {
                topic: name.to_string(),
            });
        }
        let topic = self.open(name, keys(name), None, config).await?;
        self.register(name).await?;
        Ok(topic)
    }

    /// Notes `name` in the set of topics ([`topic_names`](Self::topic_names)).
    async fn register(&self, name: &str) -> Result<(), Error> {
        let _: Value = self.query(redis::cmd("SADD").arg(TOPICS).arg(name)).await?;
        Ok(())
    }

    /// The names of the topics on the server (plain and partitioned),
    /// sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn topic_names(&self) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(TOPICS)).await?;
        names.sort_unstable();
        Ok(names)
    }

    /// The partition count of the partitioned topic `name`; `None` when
    /// no partitioned topic has that name.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; [`Error::Protocol`] when the count the server
    /// holds is not one this crate writes (0, above [`MAX_PARTITIONS`], not
    /// a number).
    pub async fn partition_count(&self, name: &str) -> Result<Option<usize>, Error> {
        let raw: Option<String> = self.query(redis::cmd("GET").arg(parts_key(name))).await?;
        stored_count(name, raw)
    }

    /// Whether a topic `name` exists on the server.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn topic_exists(&self, name: &str) -> Result<bool, Error> {
        self.query(redis::cmd("SISMEMBER").arg(TOPICS).arg(name)).await
    }

    /// The partitioned topic `name` of `partitions` partitions, created
    /// with `config` (for each partition) when absent. Each partition is
    /// a log of its own (its own offsets from 0, its own Cluster slot);
    /// routing messages to partitions is the caller's.
    ///
    /// # Errors
    ///
    /// [`Error::PartitionCount`] for 0 partitions, more than
    /// [`MAX_PARTITIONS`], or another count than the existing topic's;
    /// [`Error::KindMismatch`] when a plain topic has that name;
    /// [`Error::Protocol`] when the stored count is not one this crate
    /// writes; [`Error::Redis`].
    pub async fn partitioned_topic(
        &self,
        name: &str,
        partitions: usize,
        config: TopicConfig,
    ) -> Result<PartitionedTopic, Error> {
        let plain: bool = self.query(redis::cmd("EXISTS").arg(keys(name).1)).await?;
        if plain {
            return Err(Error::KindMismatch {
                topic: name.to_string(),
            });
        }
        let count_error = |existing: Option<usize>| Error::PartitionCount {
            topic: name.to_string(),
            requested: partitions,
            existing,
        };
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(count_error(None));
        }
        let _: Value = self
            .query(redis::cmd("SET").arg(parts_key(name)).arg(partitions).arg("NX"))
            .await?;
        let existing = self
            .partition_count(name)
            .await?
            .ok_or_else(|| Error::TopicGone(name.to_string()))?;
        if existing != partitions {
            return Err(count_error(Some(existing)));
        }
        let mut handles = Vec::with_capacity(partitions);
        for p in 0..partitions {
            handles.push(
                self.open(name, partition_keys(name, p), Some(p), config.clone())
                    .await?,
            );
        }
        self.register(name).await?;
        Ok(PartitionedTopic {
            name: name.to_string(),
            partitions: handles,
        })
    }

    /// The topic `name` if the server has it, plain or partitioned;
    /// creates nothing (for reads that must not bring a deleted topic
    /// back).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; [`Error::Protocol`] as for
    /// [`partition_count`](Self::partition_count).
    pub async fn existing(&self, name: &str) -> Result<Option<Existing>, Error> {
        if let Some(n) = self.partition_count(name).await? {
            let mut partitions = Vec::with_capacity(n);
            for p in 0..n {
                match self.handle(name, partition_keys(name, p), Some(p)).await? {
                    Some(t) => partitions.push(t),
                    None => return Ok(None),
                }
            }
            return Ok(Some(Existing::Partitioned(PartitionedTopic {
                name: name.to_string(),
                partitions,
            })));
        }
        Ok(self.handle(name, keys(name), None).await?.map(Existing::Plain))
    }

    /// A handle of the log at `log`/`meta` if its settings exist.
    async fn handle(
        &self,
        name: &str,
        (log, meta): (String, String),
        partition: Option<usize>,
    ) -> Result<Option<Topic>, Error> {
        let (incarnation, max_messages, ttl_ms): (Option<String>, Option<u64>, Option<u64>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(&meta)
                    .arg("incarnation")
                    .arg("max_messages")
                    .arg("ttl_ms"),
            )
            .await?;
        let Some(incarnation) = incarnation else {
            return Ok(None);
        };
        Ok(Some(Topic {
            name: name.to_string(),
            partition,
            removed: removed_key(&meta),
            log,
            meta,
            incarnation,
            max_messages: max_messages.unwrap_or(0),
            ttl_ms: ttl_ms.unwrap_or(0),
            store: self.clone(),
        }))
    }

    async fn open(
        &self,
        name: &str,
        (log, meta): (String, String),
        partition: Option<usize>,
        config: TopicConfig,
    ) -> Result<Topic, Error> {
        // A new incarnation only when the topic is new: every handle of a
        // topic agrees on it. The settings are written in one call with it
        // (`memq_create`), so two creators with different settings, or a
        // delete between them, never leave one side's limit with the
        // other's TTL, or settings without an incarnation. The function
        // puts the server's clock before this count: a server restarted
        // without its data counts from 1 again, and a topic made again
        // then must not take the incarnation of the one that was lost.
        let fresh: i64 = self.query(redis::cmd("INCR").arg("memq:incarnations")).await?;
        let _: Value = self
            .query(
                redis::cmd("FCALL")
                    .arg("memq_create")
                    .arg(1)
                    .arg(&meta)
                    .arg(fresh)
                    .arg(max_count(config.max_messages))
                    .arg(ttl_ms(config.ttl)),
            )
            .await?;
        // Set now, by this call or another: read back as any handle is.
        self.handle(name, (log, meta), partition)
            .await?
            .ok_or_else(|| Error::TopicGone(name.to_string()))
    }

    /// Deletes the topic `name`, plain or partitioned (its messages and
    /// settings); true when it existed. Handles of it refuse to publish
    /// from then on ([`Error::TopicGone`]).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn delete_topic(&self, name: &str) -> Result<bool, Error> {
        let (log, meta) = keys(name);
        let mut del = redis::cmd("FCALL");
        let mut doomed = vec![log, removed_key(&meta), meta];
        // A partitioned topic: its count and every partition's keys. A
        // count this crate did not write is deleted with the topic's own
        // keys: its partitions, if any, cannot be known.
        let parts = match self.partition_count(name).await {
            Err(Error::Protocol(_)) => Some(0),
            parts => parts?,
        };
        if let Some(n) = parts {
            doomed.push(parts_key(name));
            for p in 0..n {
                let (log, meta) = partition_keys(name, p);
                doomed.extend([log, removed_key(&meta), meta]);
            }
        }
        // The keys and the name in one call (`memq_delete`).
        del.arg("memq_delete")
            .arg(doomed.len() + 1)
            .arg(TOPICS)
            .arg(&doomed)
            .arg(name);
        let removed: u64 = self.query(&del).await?;
        Ok(removed > 0)
    }
}

/// A topic that exists on the server ([`Store::existing`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Existing {
    /// A plain topic.
    Plain(Topic),
    /// A partitioned topic.
    Partitioned(PartitionedTopic),
}

/// A partitioned topic: one [`Topic`] per partition.
#[derive(Debug, Clone)]
pub struct PartitionedTopic {
    name: String,
    partitions: Vec<Topic>,
}

impl PartitionedTopic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its partitions, in order.
    pub fn partitions(&self) -> &[Topic] {
        &self.partitions
    }

    /// Partition `p`, if there is one.
    pub fn partition(&self, p: usize) -> Option<&Topic> {
        self.partitions.get(p)
    }
}

/// A topic's log on the server (a plain topic, or one partition).
#[derive(Debug, Clone)]
pub struct Topic {
    name: String,
    partition: Option<usize>,
    log: String,
    meta: String,
    removed: String,
    incarnation: String,
    max_messages: u64,
    /// Milliseconds (0: none).
    ttl_ms: u64,
    store: Store,
}

impl Topic {
    /// The topic's name (for a partition, its topic's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `other` is a handle of the same topic, made before it was
    /// deleted and created again if it was (and of the same partition).
    pub fn same_topic(&self, other: &Topic) -> bool {
        self.log == other.log && self.incarnation == other.incarnation
    }

    /// The partition this is, of a partitioned topic.
    pub fn partition(&self) -> Option<usize> {
        self.partition
    }

    /// How many messages it retains at most, as the server keeps it
    /// (`None`: no limit; a limit over 2^53 is kept as 2^53).
    pub fn max_messages(&self) -> Option<u64> {
        (self.max_messages > 0).then_some(self.max_messages)
    }

    /// Whether the topic is kept as `config` says: the same message limit
    /// and the same TTL to the millisecond (the settings the server holds
    /// for it, which the first handle of a topic sets and later handles
    /// read back, whatever they asked for).
    pub fn is_kept_as(&self, config: &TopicConfig) -> bool {
        max_count(config.max_messages) == self.max_messages && ttl_ms(config.ttl) == self.ttl_ms
    }

    /// Publishes one message; returns its offset.
    ///
    /// # Errors
    ///
    /// [`Error::TopicGone`] when the topic was deleted since this handle was made;
    /// [`Error::OutcomeUnknown`] when the connection was lost once the publish was sent (the
    /// message may or may not be stored); [`Error::Redis`] when the server cannot be reached
    /// within 30 s (nothing was stored) or refuses the command.
    pub async fn publish(&self, payload: &[u8]) -> Result<u64, Error> {
        self.publish_batch(&[payload]).await.map(|r| r.start)
    }

    /// Publishes `payloads` as one contiguous run of offsets, nothing interleaved from any
    /// process; returns the run. An empty batch stores nothing.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_batch(&self, payloads: &[&[u8]]) -> Result<Range<u64>, Error> {
        let messages: Vec<Message<'_>> = payloads.iter().map(|p| Message::new(p)).collect();
        self.publish_messages(&messages).await
    }

    /// Publishes `messages` (with their keys, formats and headers) as one
    /// contiguous run of offsets, as [`publish_batch`](Self::publish_batch).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_messages(&self, messages: &[Message<'_>]) -> Result<Range<u64>, Error> {
        self.publish_messages_by(messages, None).await
    }

    /// [`publish_messages`](Self::publish_messages), sent by `send_by` or
    /// not at all: when the server cannot be reached by then (or keeps
    /// declining, as while it loads its data), [`Error::Deadline`] and
    /// nothing was stored. Once sent, the reply is waited for as for any
    /// publish (a lost connection is then [`Error::OutcomeUnknown`]).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), and [`Error::Deadline`].
    pub async fn publish_messages_by(
        &self,
        messages: &[Message<'_>],
        send_by: Option<std::time::Instant>,
    ) -> Result<Range<u64>, Error> {
        if let Some(n) = messages
            .iter()
            .map(|m| m.headers.map_or(0, Headers::len))
            .find(|n| *n > MAX_HEADERS)
        {
            return Err(Error::TooManyHeaders(n));
        }
        if messages.is_empty() {
            let (_, high) = self.bounds().await?;
            return Ok(high..high);
        }
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("memq_publish")
            .arg(3)
            .arg(&self.log)
            .arg(&self.meta)
            .arg(&self.removed)
            .arg(self.max_messages)
            .arg(&self.incarnation)
            .arg(self.ttl_ms);
        for m in messages {
            m.write(&mut cmd);
        }
        match self.store.query_once::<(u64, u64)>(&cmd, send_by).await {
            Ok((first, n)) => Ok(first..first.saturating_add(n)),
            Err(Error::Redis(e)) if e.to_string().contains("MEMQGONE") => {
                Err(Error::TopicGone(self.name.clone()))
            }
            Err(e) => Err(e),
        }
    }

    /// The retained window: the oldest retained offset and the next to be published.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`].
    pub async fn bounds(&self) -> Result<(u64, u64), Error> {
        let exists: bool = self.store.query(redis::cmd("EXISTS").arg(&self.log)).await?;
        if !exists {
            return Ok((0, 0));
        }
        let info: Value = self
            .store
            .query(redis::cmd("XINFO").arg("STREAM").arg(&self.log))
            .await?;
        // An ID not of the form 0-s was added by another program (with `*`,
        // say): no offset can be told from it.
        let last = field(&info, "last-generated-id")
            .and_then(seq)
            .ok_or_else(|| Error::Protocol(format!("{info:?}")))?;
        let first = field(&info, "first-entry")
            .and_then(|e| match e {
                Value::Array(parts) => parts.first().and_then(seq),
                _ => None,
            })
            .unwrap_or(last.saturating_add(1));
        // Entry 0-s holds offset s - 1.
        Ok((first.saturating_sub(1).min(last), last))
    }

    /// A reader from `start`, with its own connection (its blocking reads hold up nobody).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`]; [`Error::OutOfRange`] for an offset outside the retained window.
    pub async fn reader(&self, start: Start) -> Result<Reader, Error> {
        let (low, high) = self.bounds().await?;
        let position = match start {
            Start::Earliest => low,
            Start::Latest => high,
            Start::Offset(o) if (low..=high).contains(&o) => o,
            Start::Offset(offset) => return Err(Error::OutOfRange { offset, low, high }),
        };
        Ok(Reader {
            name: self.name.clone(),
            meta: self.meta.clone(),
            removed: self.removed.clone(),
            incarnation: self.incarnation.clone(),
            log: self.log.clone(),
            ttl_ms: self.ttl_ms,
            position,
            pending_lag: None,
            conn: Blocking::new(&self.store).await?,
            buffer: std::collections::VecDeque::new(),
            wait: BLOCK,
        })
    }
    /// A [`Watcher`] with a connection of its own, on this topic's server.
    ///
    /// # Errors
    ///
    /// [`Error`] when no connection can be made.
    pub async fn watcher(&self) -> Result<Watcher, Error> {
        Ok(Watcher {
            conn: Blocking::new(&self.store).await?,
        })
    }
}

/// Runs a [`Reader`]'s waiting read without the reader: the wait of a
/// receive that must not hold its reader meanwhile (a reader's own
/// [`recv`](Reader::recv) keeps it, `&mut`, for the whole wait), so that
/// the reader's other calls go on. Each watcher has a connection of its
/// own; one read at a time.
pub struct Watcher {
    conn: Blocking,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Runs `request` (made by a reader's
    /// [`wait_request`](Reader::wait_request)) on this watcher's
    /// connection: it waits on the server for what follows the reader's
    /// position, and the reader's [`accept`](Reader::accept) takes in the
    /// answer. Dropped while it waits, the wait on the server is cancelled.
    /// An answer can come back empty before the wait is over (when an
    /// earlier wait of this watcher was cancelled).
    ///
    /// # Errors
    ///
    /// [`Error`] when the server cannot be reached (after reconnecting for
    /// up to 30 s) or answers with an error.
    pub async fn read(&mut self, request: ReadRequest) -> Result<ReadAnswer, Error> {
        let replies = self
            .conn
            .query_pipe(&request.pipe, request.block.unwrap_or(Duration::ZERO))
            .await?;
        Ok(ReadAnswer { request, replies })
    }
}

/// A reader's read of what follows its position, to run on a [`Watcher`]
/// while the reader stays free for other calls.
pub struct ReadRequest {
    pipe: redis::Pipeline,
    block: Option<Duration>,
    log: String,
    incarnation: String,
    position: u64,
}

impl std::fmt::Debug for ReadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRequest")
            .field("position", &self.position)
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

/// What a [`ReadRequest`] brought back, for its reader's
/// [`accept`](Reader::accept).
pub struct ReadAnswer {
    request: ReadRequest,
    replies: Vec<Value>,
}

impl std::fmt::Debug for ReadAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAnswer")
            .field("position", &self.request.position)
            .finish_non_exhaustive()
    }
}

/// Reads a topic from a position, in order.
pub struct Reader {
    name: String,
    meta: String,
    removed: String,
    incarnation: String,
    log: String,
    /// Milliseconds (0: none).
    ttl_ms: u64,
    position: u64,
    /// Messages lost to eviction before the buffered ones, to report
    /// first (topics with a TTL, where a gap can also hold expired ones).
    pending_lag: Option<u64>,
    conn: Blocking,
    buffer: std::collections::VecDeque<Record>,
    wait: Duration,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// The offset of the next message this reader returns.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// How long one wait on the server lasts before the reader asks again
    /// (1 s by default). A receive dropped while waiting cancels the wait on
    /// the server at once, whatever this is.
    #[must_use]
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.max(Duration::from_millis(1));
        self
    }

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] once when messages were trimmed before this reader read them
    /// (then the rest follows); [`RecvError::Store`] when Redis fails (the position is kept,
    /// the call can be repeated), with [`Error::Malformed`] once for an entry that is no
    /// message (the reader is past it: the next call reads what follows), and
    /// [`Error::TopicGone`] when the topic was deleted (or lost with the server's data).
    pub async fn recv(&mut self) -> Result<Record, RecvError> {
        loop {
            if let Some(r) = self.take()? {
                return Ok(r);
            }
            self.fill(Some(self.wait)).await?;
        }
    }

    /// Waits for the next message, and returns it with up to `max - 1`
    /// more that the same read brought (no further round trip). `max` of 0
    /// counts as 1.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); a lag found after the first message is
    /// reported by the next call.
    pub async fn recv_batch(&mut self, max: usize) -> Result<Vec<Record>, RecvError> {
        let first = self.recv().await?;
        Ok(self.batch_after(first, max))
    }

    /// As [`recv_batch`](Self::recv_batch), without waiting: an empty list
    /// when no message is stored now.
    ///
    /// # Errors
    ///
    /// As [`recv_batch`](Self::recv_batch).
    pub async fn try_recv_batch(&mut self, max: usize) -> Result<Vec<Record>, RecvError> {
        Ok(match self.try_recv().await? {
            Some(first) => self.batch_after(first, max),
            None => Vec::new(),
        })
    }

    /// A read that waits up to `wait` (at least 1 ms) for what follows
    /// this reader's position, for a [`Watcher`] to run while this reader
    /// stays free for other calls; [`accept`](Self::accept) takes in its
    /// answer.
    pub fn wait_request(&self, wait: Duration) -> ReadRequest {
        self.request(Some(wait.max(Duration::from_millis(1))))
    }

    /// Takes in the answer to a [`wait_request`](Self::wait_request): what
    /// it brought is buffered, for [`take_buffered`](Self::take_buffered)
    /// and the receives. An answer to a request made before this reader
    /// read or moved is dropped (what it holds is read again from where
    /// this reader is), as is one for another topic, or for this topic
    /// before it was deleted and made again; one made by another reader of
    /// this topic at this position holds what this reader would read, and
    /// is taken in. Returns whether it was taken in.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv) (a malformed entry, the topic gone, the
    /// reader past the end of its log): told once, as `recv` tells it.
    pub async fn accept(&mut self, answer: ReadAnswer) -> Result<bool, RecvError> {
        let asked = &answer.request;
        let current = asked.log == self.log
            && asked.incarnation == self.incarnation
            && asked.position == self.position
            && self.buffer.is_empty()
            && self.pending_lag.is_none();
        if current {
            self.apply(asked.block.is_some(), &answer.replies).await?;
        }
        Ok(current)
    }

    /// How many things this reader holds to return without a round trip:
    /// messages read ahead, and a lag found and not reported yet (which
    /// counts as one).
    pub fn buffered(&self) -> usize {
        self.buffer.len() + usize::from(self.pending_lag.is_some())
    }

    /// `first` and up to `max - 1` buffered messages that follow it
    /// without a gap.
    fn batch_after(&mut self, first: Record, max: usize) -> Vec<Record> {
        let mut batch = Vec::with_capacity(max.clamp(1, 128));
        batch.push(first);
        while batch.len() < max && self.pending_lag.is_none() {
            match self.buffer.front() {
                Some(next) if next.offset == self.position => {}
                _ => break,
            }
            match self.take() {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        batch
    }

    /// Up to `max` messages this reader has read ahead already, without
    /// asking the server (none when it has nothing buffered).
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] as [`recv`](Self::recv) reports it.
    pub fn take_buffered(&mut self, max: usize) -> Result<Vec<Record>, RecvError> {
        let mut taken = Vec::new();
        while taken.len() < max {
            if !taken.is_empty() && self.pending_lag.is_some() {
                break;
            }
            match self.take() {
                Ok(Some(r)) => taken.push(r),
                Ok(None) => break,
                Err(e) if taken.is_empty() => return Err(e),
                // Reported by the next call: the lag comes after these.
                Err(RecvError::Lagged(n)) => {
                    self.pending_lag = Some(n);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(taken)
    }

    /// The next message if one is stored now.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub async fn try_recv(&mut self) -> Result<Option<Record>, RecvError> {
        if let Some(r) = self.take()? {
            return Ok(Some(r));
        }
        self.fill(None).await?;
        self.take()
    }

    /// The next buffered message, or the lag before it.
    fn take(&mut self) -> Result<Option<Record>, RecvError> {
        if let Some(lost) = self.pending_lag.take() {
            return Err(RecvError::Lagged(lost));
        }
        loop {
            let Some(first) = self.buffer.front() else {
                return Ok(None);
            };
            if first.offset > self.position {
                let lost = first.offset - self.position;
                self.position = first.offset;
                return Err(RecvError::Lagged(lost));
            }
            let r = self.buffer.pop_front().expect("a front");
            self.position = r.offset + 1;
            // Expired while read ahead: skipped, as if removed.
            if !r.is_expired() {
                return Ok(Some(r));
            }
        }
    }

    /// Reads what follows the position (waiting up to `block` for it).
    async fn fill(&mut self, block: Option<Duration>) -> Result<(), Error> {
        let request = self.request(block);
        let replies = self
            .conn
            .query_pipe(&request.pipe, block.unwrap_or(Duration::ZERO))
            .await?;
        self.apply(block.is_some(), &replies).await
    }

    /// The read of what follows the position (waiting up to `block` for
    /// it), as one pipeline.
    fn request(&self, block: Option<Duration>) -> ReadRequest {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(128);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis() as u64);
        }
        // Entries after 0-position: offsets from `position` on.
        cmd.arg("STREAMS")
            .arg(&self.log)
            .arg(format!("0-{}", self.position));
        // One round trip: the topic's incarnation (and, with a TTL, the
        // server's clock), then the read. What was read counts only if it
        // came from the topic this reader started on, not one deleted and
        // created again under its name (whose offsets start over).
        // The newest entry, too: a reader past the end of the log would
        // wait for offsets it will never see.
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(&self.meta).arg("incarnation");
        pipe.cmd("XREVRANGE")
            .arg(&self.log)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        pipe.add_command(cmd);
        // The server's clock as the read returns (after a wait, not
        // before it): what the read brought expires from then on.
        if self.ttl_ms > 0 {
            pipe.cmd("TIME");
        }
        // A read that waited is checked again after it: a stream deleted
        // meanwhile does not end the wait (as it does a group's), so the
        // read may have been answered by the topic created after it.
        if block.is_some() {
            pipe.cmd("HGET").arg(&self.meta).arg("incarnation");
        }
        ReadRequest {
            pipe,
            block,
            log: self.log.clone(),
            incarnation: self.incarnation.clone(),
            position: self.position,
        }
    }

    /// Takes in the replies of [`request`](Self::request)'s pipeline
    /// (`waited`: made with a wait).
    async fn apply(&mut self, waited: bool, replies: &[Value]) -> Result<(), Error> {
        // incarnation, newest entry, the read, [TIME], [incarnation again].
        let expected = 3 + usize::from(self.ttl_ms > 0) + usize::from(waited);
        let (Some(incarnation), Some(newest), Some(reply), Some(after), true) = (
            replies.first(),
            replies.get(1),
            replies.get(2),
            // A read that did not wait is checked before it only.
            if waited { replies.last() } else { replies.first() },
            replies.len() == expected,
        ) else {
            return Err(Error::Protocol(format!("{replies:?}")));
        };
        let ours = |v: &Value| text(Some(v)) == Some(self.incarnation.as_str());
        if !ours(incarnation) || !ours(after) {
            return Err(Error::TopicGone(self.name.clone()));
        }
        let Read {
            records: entries,
            malformed,
            ..
        } = parse_entries(reply)?;
        if let (true, Some((offset, reason))) = (entries.is_empty(), malformed) {
            if offset > self.position {
                // Messages before it were removed: that comes first (the
                // next read brings the entry again).
                let lost = if self.ttl_ms == 0 {
                    offset - self.position
                } else {
                    self.evicted_in(self.position, offset).await?
                };
                self.position = offset;
                if lost > 0 {
                    self.pending_lag = Some(lost);
                }
                return Ok(());
            }
            // Told once, then passed: what follows it is readable.
            self.position = offset + 1;
            return Err(Error::Malformed {
                topic: self.name.clone(),
                offset,
                reason,
            });
        }
        if entries.is_empty() {
            self.check_not_ahead(newest).await?;
        }
        if self.ttl_ms == 0 {
            // Everything removed was evicted: `take` counts a gap itself.
            self.buffer.extend(entries);
            return Ok(());
        }
        let read_at = std::time::Instant::now();
        let now_ms = replies
            .get(3)
            .and_then(server_ms)
            .ok_or_else(|| Error::Protocol(format!("{replies:?}")))?;
        if let Some(first) = entries.first() {
            if first.offset > self.position {
                // Removed before this reader read them: some evicted (told),
                // some expired (skipped silently).
                let lost = self.evicted_in(self.position, first.offset).await?;
                self.position = first.offset;
                if lost > 0 {
                    self.pending_lag = Some(lost);
                }
            }
        }
        for mut entry in entries {
            // Expired and not removed yet (nobody published since): skipped
            // as if removed. Publish times never go down with offsets, so
            // these come first.
            if self.buffer.is_empty() && entry.time_ms.saturating_add(self.ttl_ms) < now_ms {
                self.position = entry.offset + 1;
                continue;
            }
            entry.expire_after(self.ttl_ms, now_ms, read_at);
            self.buffer.push_back(entry);
        }
        Ok(())
    }

    /// Fails when this reader's position is past the end of the log
    /// (`newest`: the reply of `XREVRANGE log + - COUNT 1`): the server
    /// lost messages it had stored (a restart from an older copy, a
    /// failover to a replica that lagged), and new messages would take
    /// offsets this reader has passed.
    async fn check_not_ahead(&mut self, newest: &Value) -> Result<(), Error> {
        if self.position == 0 {
            return Ok(());
        }
        let newest = match newest {
            Value::Array(rows) => rows.first().and_then(|row| match row {
                Value::Array(parts) => parts.first().and_then(seq),
                _ => None,
            }),
            _ => None,
        };
        // Entry 0-s is offset s - 1: the log's end is s.
        let high = match newest {
            Some(s) => s,
            // An empty log: its end is the last ID it gave.
            None => self.end_of_log().await?,
        };
        if high < self.position {
            return Err(Error::AheadOfLog {
                topic: self.name.clone(),
                position: self.position,
                high,
            });
        }
        Ok(())
    }

    /// The offset the next message of the log will get.
    async fn end_of_log(&mut self) -> Result<u64, Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("XINFO").arg("STREAM").arg(&self.log);
        match self.conn.query_pipe(&pipe, Duration::ZERO).await {
            Ok(replies) => Ok(replies
                .first()
                .and_then(|info| field(info, "last-generated-id"))
                .and_then(seq)
                .unwrap_or(0)),
            // No stream at all: nothing was kept.
            Err(Error::Redis(e)) if e.to_string().contains("no such key") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// How many of the offsets in `[from, to)`, all removed, were evicted
    /// (the rest expired): from the topic's removal runs, exact for the
    /// newest 256 runs; in the merged prefix before them, at most as many
    /// as it evicted.
    async fn evicted_in(&mut self, from: u64, to: u64) -> Result<u64, Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&self.meta)
            .arg("merged_end")
            .arg("merged_evicted");
        pipe.cmd("LRANGE").arg(&self.removed).arg(0).arg(-1);
        let replies = self.conn.query_pipe(&pipe, Duration::ZERO).await?;
        let bad = || Error::Protocol(format!("{replies:?}"));
        let (merged_end, merged_evicted): (Option<u64>, Option<u64>) =
            redis::from_redis_value(replies.first().ok_or_else(bad)?.clone()).map_err(|_| bad())?;
        let runs: Vec<String> =
            redis::from_redis_value(replies.get(1).ok_or_else(bad)?.clone()).map_err(|_| bad())?;
        let (merged_end, merged_evicted) = (merged_end.unwrap_or(0), merged_evicted.unwrap_or(0));
        let mut count = merged_end.min(to).saturating_sub(from).min(merged_evicted);
        let mut run_start = merged_end;
        for run in &runs {
            let (end, kind) = run.split_once(':').ok_or_else(bad)?;
            let end: u64 = end.parse().map_err(|_| bad())?;
            if run_start >= to {
                break;
            }
            if kind == "e" {
                count += end.min(to).saturating_sub(run_start.max(from));
            }
            run_start = end;
        }
        Ok(count)
    }
}

/// Milliseconds since the Unix epoch from a `TIME` reply.
fn server_ms(reply: &Value) -> Option<u64> {
    let Value::Array(parts) = reply else { return None };
    let number = |v: Option<&Value>| text(v).and_then(|t| t.parse::<u64>().ok());
    Some(number(parts.first())? * 1_000 + number(parts.get(1))? / 1_000)
}

/// The value after `name` in a flat name/value reply (or a map reply).
fn field<'a>(reply: &'a Value, name: &str) -> Option<&'a Value> {
    match reply {
        Value::Array(items) => items
            .chunks(2)
            .find(|kv| {
                matches!(&kv[0], Value::BulkString(k) if k == name.as_bytes())
                    || matches!(&kv[0], Value::SimpleString(k) if k == name)
            })
            .and_then(|kv| kv.get(1)),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| {
                matches!(k, Value::BulkString(k) if k == name.as_bytes())
                    || matches!(k, Value::SimpleString(k) if k == name)
            })
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A bulk string reply as text.
fn text(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
        Some(Value::SimpleString(s)) => Some(s),
        _ => None,
    }
}

/// The sequence number of an entry ID `0-s`.
fn seq(id: &Value) -> Option<u64> {
    let text = match id {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        Value::SimpleString(s) => s.as_str(),
        _ => return None,
    };
    text.strip_prefix("0-")?.parse().ok()
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one stream (or of an
/// `XAUTOCLAIM` reply, shaped as one).
#[derive(Debug, Default)]
struct Read {
    /// The messages, in order.
    records: Vec<Record>,
    /// The offsets of entries whose body is gone (trimmed after a group
    /// handed them out: they are pending, with nothing to deliver).
    gone: Vec<u64>,
    /// The first entry that is no message this crate wrote, with what is
    /// wrong with it; the entries after it are left out (the next read
    /// brings them).
    malformed: Option<(u64, String)>,
}

/// Parses an `XREAD`/`XREADGROUP` reply (see [`Read`]).
///
/// # Errors
///
/// [`Error::Protocol`] for a reply of another shape, or an entry ID that
/// is not `0-s` (no offset can be told from it).
fn parse_entries(reply: &Value) -> Result<Read, Error> {
    let bad = || Error::Protocol(format!("{reply:?}"));
    let streams: Vec<&Value> = match reply {
        Value::Nil => return Ok(Read::default()),
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => Some(&kv[1]),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        _ => return Err(bad()),
    };
    let mut read = Read::default();
    for list in streams {
        let Value::Array(list) = list else {
            return Err(bad());
        };
        for e in list {
            let Value::Array(parts) = e else { return Err(bad()) };
            let (Some(id), Some(fields)) = (parts.first(), parts.get(1)) else {
                return Err(bad());
            };
            let offset = seq(id).ok_or_else(bad)?.saturating_sub(1);
            if !matches!(fields, Value::Array(_) | Value::Map(_)) {
                read.gone.push(offset);
                continue;
            }
            match record(offset, fields) {
                Ok(r) => read.records.push(r),
                Err(why) => {
                    read.malformed = Some((offset, why));
                    return Ok(read);
                }
            }
        }
    }
    Ok(read)
}

/// The message at `offset` from an entry's fields, or what is wrong with
/// them. Every message this crate publishes has a publish time `t` and a
/// payload `p`, and its key `k`, format `f` and header names `h.*` are
/// UTF-8: an entry without them was written by something else, and
/// delivering it as a message (an empty payload, no key) would hide that.
fn record(offset: u64, fields: &Value) -> Result<Record, String> {
    let utf8 = |name: &str| match field(fields, name) {
        None => Ok(None),
        Some(v) => text(Some(v))
            .map(|t| Some(t.to_string()))
            .ok_or_else(|| format!("its field {name:?} is not UTF-8 text")),
    };
    let payload = match field(fields, "p") {
        Some(Value::BulkString(p)) => Bytes::copy_from_slice(p),
        _ => return Err("it has no payload (field \"p\")".to_string()),
    };
    let time_ms = utf8("t")?
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| "it has no publish time (field \"t\", milliseconds)".to_string())?;
    let mut headers = Headers::new();
    if let Value::Array(items) = fields {
        for kv in items.chunks(2) {
            if let (Value::BulkString(name), Some(Value::BulkString(value))) = (&kv[0], kv.get(1)) {
                if let Some(name) = name.strip_prefix(b"h.") {
                    let name = std::str::from_utf8(name)
                        .map_err(|_| "a header name is not UTF-8 text".to_string())?;
                    headers.insert(name.to_string(), value.clone());
                }
            }
        }
    }
    Ok(Record {
        offset,
        time_ms,
        payload,
        key: utf8("k")?,
        format: utf8("f")?,
        headers,
        expires: None,
    })
}

/// A connection for blocking commands (`XREAD BLOCK`, `XREADGROUP BLOCK`)
/// with its server-side id. A command dropped before its reply (a receive
/// future dropped while it waits) is cancelled on the server with
/// `CLIENT UNBLOCK`: no client stays blocked, and the connection is free
/// for the next command at once. A lost connection is replaced (with a
/// growing pause between attempts, up to 30 s); so is one whose reply
/// does not come within the command's wait plus 10 s (a hung server, or
/// one cut off by the network, that keeps the connection open).
pub(crate) struct Blocking {
    store: Store,
    /// The connection and its server-side id; `None` once it broke.
    conn: Option<(MultiplexedConnection, i64)>,
}

impl Blocking {
    pub(crate) async fn new(store: &Store) -> Result<Blocking, Error> {
        let mut blocking = Blocking {
            store: store.clone(),
            conn: None,
        };
        blocking.connection().await?;
        Ok(blocking)
    }

    async fn connection(&mut self) -> Result<(MultiplexedConnection, i64), Error> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = reconnect(|| Self::open(&self.store)).await?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    async fn open(store: &Store) -> Result<(MultiplexedConnection, i64), Error> {
        // No response timeout: a blocking read takes as long as it asks for.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = store
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let id: i64 = within_or_broken(
            REPLY_WITHIN,
            redis::cmd("CLIENT").arg("ID").query_async(&mut conn),
        )
        .await?;
        Ok((conn, id))
    }

    /// Runs `cmd` (which may safely run twice, and does not block): on a
    /// lost connection, again on a new one; while the server is loading
    /// its data, again shortly.
    pub(crate) async fn query(&mut self, cmd: &redis::Cmd) -> Result<Value, Error> {
        self.send(Duration::ZERO, |mut conn| async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// As [`query`](Self::query), for a pipeline that may end with a
    /// command blocking for up to `block`: its replies in order.
    pub(crate) async fn query_pipe(
        &mut self,
        pipe: &redis::Pipeline,
        block: Duration,
    ) -> Result<Vec<Value>, Error> {
        self.send(block, |mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Runs `pipe` (ending with a blocking command) once: a lost connection
    /// is [`Error::OutcomeUnknown`] (the next command reconnects). A
    /// pipeline the server declined because it is loading its data was not
    /// run, and is asked again.
    pub(crate) async fn query_once_pipe(
        &mut self,
        pipe: &redis::Pipeline,
        block: Duration,
    ) -> Result<Vec<Value>, Error> {
        self.send_once(block, |mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// [`send_once`](Self::send_once), sent again on a new connection
    /// after a lost one.
    async fn send<T, F>(
        &mut self,
        block: Duration,
        mut request: impl FnMut(MultiplexedConnection) -> F,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        let mut backoff = Backoff::new(RECONNECT_FOR);
        loop {
            match self.send_once(block, &mut request).await {
                Err(Error::OutcomeUnknown(e)) if !backoff.wait().await => return Err(e.into()),
                Err(Error::OutcomeUnknown(_)) => {}
                other => return other,
            }
        }
    }

    /// Sends one request, which blocks on the server for up to `block`, on
    /// this connection. Dropped before its reply, it is cancelled on the
    /// server; a lost connection (or no reply within `block` plus 10 s) is
    /// dropped and reported as [`Error::OutcomeUnknown`]. A request the server declined
    /// without running it (a restarted server loading its data accepts
    /// connections before it runs commands) is sent again shortly, for up
    /// to 30 s.
    async fn send_once<T, F>(
        &mut self,
        block: Duration,
        mut request: impl FnMut(MultiplexedConnection) -> F,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        let mut backoff = Backoff::new(RECONNECT_FOR);
        loop {
            let (conn, id) = self.connection().await?;
            let mut guard = Unblock {
                id,
                store: Some(self.store.clone()),
            };
            let reply = within_or_broken(REPLY_WITHIN.saturating_add(block), request(conn)).await;
            guard.store = None;
            match reply {
                Ok(v) => return Ok(v),
                Err(e) if broken(&e) => {
                    self.conn = None;
                    return Err(Error::OutcomeUnknown(e));
                }
                Err(e) if transient(&e) && backoff.wait().await => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Sends `CLIENT UNBLOCK` for a blocking command dropped before its reply.
struct Unblock {
    id: i64,
    store: Option<Store>,
}

impl Drop for Unblock {
    fn drop(&mut self) {
        let (Some(store), Ok(runtime)) = (self.store.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let id = self.id;
        // If the command finished meanwhile, this may end the next wait
        // early: it then returns nothing and the reader asks again. The
        // read may also reach the server after this unblock (both are in
        // flight on different connections): a second one a moment later
        // ends that wait too, instead of leaving the connection blocked for
        // its full wait.
        runtime.spawn(async move {
            let unblock = redis::cmd("CLIENT").arg("UNBLOCK").arg(id).clone();
            let _: Result<Value, Error> = store.query(&unblock).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _: Result<Value, Error> = store.query(&unblock).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_braces() {
        assert_eq!(keys("orders").0, "memq:{orders}:log");
        assert_eq!(keys("a}b{c\\").1, "memq:{a\\}b\\{c\\\\}:meta");
    }

    #[test]
    fn a_reply_behind_large_commands_is_given_their_time() {
        let count = std::sync::atomic::AtomicUsize::new(0);
        let (big, ahead) = InFlight::add(&count, 40 << 20);
        assert_eq!(reply_within(ahead), REPLY_WITHIN + REPLY_PER_MIB * 40);
        // A small command sent behind it waits as long.
        let (small, ahead) = InFlight::add(&count, 10);
        assert_eq!(reply_within(ahead), REPLY_WITHIN + REPLY_PER_MIB * 40);
        drop(big);
        // Answered (or given up): the next small one gets the plain limit.
        let (_next, ahead) = InFlight::add(&count, 10);
        assert_eq!(reply_within(ahead), REPLY_WITHIN);
        drop(small);
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 10);
        assert_eq!(reply_within(usize::MAX), REPLY_WITHIN + REPLY_PER_MIB * u32::MAX);
    }

    #[test]
    fn sequence_numbers() {
        assert_eq!(seq(&Value::BulkString(b"0-5".to_vec())), Some(5));
        assert_eq!(seq(&Value::BulkString(b"5-0".to_vec())), None);
    }
}
