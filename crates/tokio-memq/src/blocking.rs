//! Waiting outside async code: the blocking handles' executor, and a
//! timer for the timeouts of async calls made where no Tokio runtime is.
//!
//! The blocking handles ([`Publisher::blocking_publish`](crate::Publisher::blocking_publish),
//! [`Subscriber::blocking_recv`](crate::Subscriber::blocking_recv) and their
//! kin) poll the same futures as the async methods on the calling thread
//! and park it between wake-ups, so backpressure, lag and close behave
//! the same. Outside a Tokio runtime no timer wakes a wait that depends on
//! time alone (a manual group member waiting for an idle member's
//! messages, a full TTL topic waiting for its oldest message to expire),
//! so the thread also polls again every [`TICK`] there.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How often a blocked thread polls again when no Tokio runtime can wake
/// it for a deadline.
const TICK: Duration = Duration::from_millis(10);

/// Panics, with Tokio's own message, when called from a thread that is
/// running async code (a Tokio worker, or inside `block_on`): blocking
/// there would stall every task of that thread. `spawn_blocking` threads
/// and plain threads may block.
fn assert_may_block() {
    // No runtime on this thread at all: blocking is allowed, nothing to ask.
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    // Tokio's blocking calls check exactly this; one on a channel that is
    // already ready returns at once wherever blocking is allowed.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let _ = tx.send(());
    let _ = rx.blocking_recv();
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread.
///
/// # Panics
///
/// When called from async code (see [`assert_may_block`]).
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    loop {
        if let Some(out) = run(fut.as_mut(), None) {
            return out;
        }
    }
}

/// Runs `fut` on this thread until it completes or `deadline` passes:
/// then the future is dropped (every receive and publish is cancel safe)
/// and this returns `None`.
///
/// # Panics
///
/// When called from async code (see [`assert_may_block`]).
pub(crate) fn block_on_until<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    run(fut, Some(deadline))
}

fn run<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    assert_may_block();
    let mut fut = pin!(fut);
    // One waker per thread, made once: a blocking call allocates nothing.
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
    }
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    let tick = tokio::runtime::Handle::try_current().is_err().then_some(TICK);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return None,
            },
            None => None,
        };
        match (left, tick) {
            (Some(a), Some(b)) => thread::park_timeout(a.min(b)),
            (Some(t), None) | (None, Some(t)) => thread::park_timeout(t),
            (None, None) => thread::park(),
        }
    }
}

/// A timeout for async code: Tokio's timer inside a runtime, a shared
/// timer thread outside one (where `tokio::time` would panic).
pub(crate) enum Delay {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Thread { deadline: Instant, key: Option<Key> },
}

impl Delay {
    pub(crate) fn new(after: Duration) -> Self {
        if tokio::runtime::Handle::try_current().is_ok() {
            Delay::Tokio(Box::pin(tokio::time::sleep(after)))
        } else {
            // A duration too long to add is a timeout that never fires.
            let deadline = Instant::now()
                .checked_add(after)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30));
            Delay::Thread { deadline, key: None }
        }
    }

    /// Ready once the time has passed.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Delay::Tokio(sleep) => sleep.as_mut().poll(cx),
            Delay::Thread { deadline, key } => {
                if Instant::now() >= *deadline {
                    if let Some(k) = key.take() {
                        timers().cancel(k);
                    }
                    return Poll::Ready(());
                }
                *key = Some(timers().register(*deadline, key.take(), cx.waker()));
                Poll::Pending
            }
        }
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        if let Delay::Thread { key: Some(k), .. } = self {
            timers().cancel(*k);
        }
    }
}

/// A registration with the timer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key(Instant, u64);

#[derive(Default)]
struct Timers {
    state: Mutex<TimerState>,
    changed: Condvar,
}

#[derive(Default)]
struct TimerState {
    next_id: u64,
    waiting: BTreeMap<Key, Waker>,
    running: bool,
}

fn timers() -> &'static Timers {
    static TIMERS: OnceLock<Timers> = OnceLock::new();
    TIMERS.get_or_init(Timers::default)
}

impl Timers {
    /// Wakes `waker` at `deadline`, replacing the registration `old`.
    fn register(&'static self, deadline: Instant, old: Option<Key>, waker: &Waker) -> Key {
        let mut st = self.state.lock();
        if let Some(old) = old {
            st.waiting.remove(&old);
        }
        st.next_id += 1;
        let key = Key(deadline, st.next_id);
        let first = st.waiting.keys().next().is_none_or(|k| key < *k);
        st.waiting.insert(key, waker.clone());
        if !st.running {
            st.running = true;
            let spawned = thread::Builder::new()
                .name("tokio-memq-timer".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                // No thread to be had: wake at once, so the caller polls
                // again rather than waits for ever.
                st.running = false;
                if let Some(w) = st.waiting.remove(&key) {
                    w.wake();
                }
            }
        } else if first {
            self.changed.notify_one();
        }
        key
    }

    fn cancel(&self, key: Key) {
        self.state.lock().waiting.remove(&key);
    }

    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = st.waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                // Wake outside the lock: a waker may run code that
                // registers again.
                drop(st);
                due.into_iter().for_each(Waker::wake);
                st = self.state.lock();
                continue;
            }
            match st.waiting.keys().next().map(|k| k.0) {
                Some(at) => {
                    self.changed.wait_until(&mut st, at);
                }
                None => self.changed.wait(&mut st),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_outside_a_runtime_fires_on_the_timer_thread() {
        let started = Instant::now();
        let done = block_on_until(
            async {
                let mut delay = Delay::new(Duration::from_millis(30));
                std::future::poll_fn(|cx| delay.poll_elapsed(cx)).await;
            },
            started + Duration::from_secs(10),
        );
        assert!(done.is_some());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_dropped_delay_leaves_no_registration() {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut delay = Delay::new(Duration::from_secs(3600));
        assert!(delay.poll_elapsed(&mut cx).is_pending());
        let key = match &delay {
            Delay::Thread { key: Some(key), .. } => *key,
            _ => panic!("outside a runtime the timer thread keeps the delay"),
        };
        assert!(timers().state.lock().waiting.contains_key(&key));
        drop(delay);
        assert!(!timers().state.lock().waiting.contains_key(&key));
    }

    #[test]
    fn block_on_gives_up_at_the_deadline() {
        let started = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(block_on_until(never, started + Duration::from_millis(20)), None);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
