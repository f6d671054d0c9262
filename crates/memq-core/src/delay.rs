//! A timer that works inside and outside a Tokio runtime.
//!
//! Waits that end with time alone (a full topic waiting for its oldest
//! message to expire, a group member waiting for an idle member's
//! messages, a timeout) need a timer. Inside a runtime that is Tokio's;
//! outside one (`futures::executor::block_on`, a hand-written executor,
//! a plain thread) `tokio::time` panics, so a single shared thread,
//! started on first use and ending after a second with nothing to time,
//! wakes the waiters there at their deadlines.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

/// A deadline to wait for in a `poll` function: Tokio's timer inside a
/// runtime (at the time the delay is made), this crate's timer thread
/// outside one. Dropping it cancels the wait.
///
/// # Panics
///
/// Made inside a Tokio runtime without the time driver, its first poll
/// panics (as Tokio's timers do).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use memq_core::Delay;
///
/// // No runtime here: the timer thread wakes the poll.
/// let started = Instant::now();
/// let mut delay = Delay::after(Duration::from_millis(20));
/// futures_executor_free_block_on(std::future::poll_fn(|cx| delay.poll_elapsed(cx)));
/// assert!(started.elapsed() >= Duration::from_millis(20));
/// # fn futures_executor_free_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut cx = Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
/// #         std::thread::park();
/// #     }
/// # }
/// ```
#[derive(Debug)]
pub struct Delay(Inner);

#[derive(Debug)]
enum Inner {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Thread { deadline: StdInstant, key: Option<Key> },
}

/// How long the timer thread waits with nothing to time before it ends.
const IDLE: Duration = Duration::from_secs(1);

/// About thirty years: what a deadline too far to say becomes.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

thread_local! {
    /// Set while [`Delay::on_timer_thread`] runs on this thread.
    static TIMER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether delays made now use Tokio's timer.
fn tokio_timer() -> bool {
    !TIMER_THREAD.with(Cell::get) && tokio::runtime::Handle::try_current().is_ok()
}

impl Delay {
    /// Runs `f` with every delay made in it on this thread served by the timer thread, even
    /// inside a Tokio runtime's context: for an executor that parks its thread between polls
    /// (a blocking call on a `spawn_blocking` thread, say), where the runtime whose context it
    /// is in may not drive its timers (a current-thread runtime nobody runs) or may shut down
    /// while the call waits (its timers then panic when polled).
    pub fn on_timer_thread<R>(f: impl FnOnce() -> R) -> R {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                TIMER_THREAD.with(|t| t.set(self.0));
            }
        }
        let _restore = Restore(TIMER_THREAD.with(|t| t.replace(true)));
        f()
    }

    /// Elapses `after` from now.
    pub fn after(after: Duration) -> Self {
        if tokio_timer() {
            Delay(Inner::Tokio(Box::pin(tokio::time::sleep(after))))
        } else {
            Self::after_on_thread(after)
        }
    }

    /// Elapses at `deadline` (Tokio's clock: paused time applies inside a
    /// runtime).
    pub fn until(deadline: tokio::time::Instant) -> Self {
        if tokio_timer() {
            Delay(Inner::Tokio(Box::pin(tokio::time::sleep_until(deadline))))
        } else {
            // As far ahead as Tokio's clock says it is: in a runtime's context
            // with paused time (`on_timer_thread`), that clock and the
            // system's part, and a deadline compared with the system's would
            // elapse at once, for ever.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            Self::after_on_thread(left)
        }
    }

    fn after_on_thread(after: Duration) -> Self {
        let now = StdInstant::now();
        Self::thread(now.checked_add(after).unwrap_or(now + FAR))
    }

    fn thread(deadline: StdInstant) -> Self {
        Delay(Inner::Thread { deadline, key: None })
    }

    /// Ready once the deadline has passed; otherwise registers `cx`'s
    /// waker to be woken then.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Inner::Tokio(sleep) => sleep.as_mut().poll(cx),
            Inner::Thread { deadline, key } => {
                if StdInstant::now() >= *deadline {
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
        if let Inner::Thread { key: Some(k), .. } = &self.0 {
            timers().cancel(*k);
        }
    }
}

/// A registration with the timer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key(StdInstant, u64);

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
    /// The state; the std lock (whose futex calls miri models), never
    /// poisoned for good: nothing here panics while holding it, and a
    /// waker's panic happens outside it.
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes `waker` at `deadline`, replacing the registration `old`.
    fn register(&'static self, deadline: StdInstant, old: Option<Key>, waker: &Waker) -> Key {
        let mut st = self.lock();
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
                .name("memq-timer".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                // No thread to be had: wake at once (outside the lock), so
                // the caller polls again rather than waits for ever.
                st.running = false;
                let woken = st.waiting.remove(&key);
                drop(st);
                woken.into_iter().for_each(Waker::wake);
            }
        } else if first {
            self.changed.notify_one();
        }
        key
    }

    fn cancel(&self, key: Key) {
        self.lock().waiting.remove(&key);
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            let now = StdInstant::now();
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
                st = self.lock();
                continue;
            }
            let wait = |st, timeout| match self.changed.wait_timeout(st, timeout) {
                Ok(r) => r,
                Err(e) => e.into_inner(),
            };
            match st.waiting.keys().next().map(|k| k.0) {
                Some(at) => st = wait(st, at.saturating_duration_since(now)).0,
                None => {
                    // Nothing to time: the thread ends after a while idle (the
                    // next registration starts another), so it does not outlive
                    // the queues that used it.
                    let (guard, waited) = wait(st, IDLE);
                    st = guard;
                    if waited.timed_out() && st.waiting.is_empty() {
                        st.running = false;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(all(test, not(memq_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Unpark(thread::Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    fn waker() -> Waker {
        Waker::from(Arc::new(Unpark(thread::current())))
    }

    #[test]
    fn a_delay_outside_a_runtime_fires_on_the_timer_thread() {
        let started = StdInstant::now();
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        let mut delay = Delay::after(Duration::from_millis(30));
        while delay.poll_elapsed(&mut cx).is_pending() {
            // Woken by the timer thread; the limit only bounds a failure.
            thread::park_timeout(Duration::from_secs(10));
            assert!(started.elapsed() < Duration::from_secs(10), "never woken");
        }
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_delay_until_a_tokio_instant_outside_a_runtime_fires_then() {
        let started = StdInstant::now();
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        let mut delay = Delay::until(tokio::time::Instant::now() + Duration::from_millis(30));
        while delay.poll_elapsed(&mut cx).is_pending() {
            thread::park_timeout(Duration::from_secs(10));
            assert!(started.elapsed() < Duration::from_secs(10), "never woken");
        }
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_dropped_delay_leaves_no_registration() {
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        let mut delay = Delay::after(Duration::from_secs(3600));
        assert!(delay.poll_elapsed(&mut cx).is_pending());
        let key = match &delay.0 {
            Inner::Thread { key: Some(key), .. } => *key,
            _ => panic!("outside a runtime the timer thread keeps the delay"),
        };
        assert!(timers().lock().waiting.contains_key(&key));
        drop(delay);
        assert!(!timers().lock().waiting.contains_key(&key));
    }

    #[test]
    fn the_timer_thread_ends_when_idle_and_starts_again() {
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        let mut delay = Delay::after(Duration::from_millis(1));
        while delay.poll_elapsed(&mut cx).is_pending() {
            thread::park_timeout(Duration::from_secs(10));
        }
        // Other tests of this binary may time things meanwhile: wait for
        // a moment when nothing is timed for longer than `IDLE`.
        let started = StdInstant::now();
        while timers().lock().running {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the timer thread never ended"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let mut again = Delay::after(Duration::from_millis(1));
        while again.poll_elapsed(&mut cx).is_pending() {
            thread::park_timeout(Duration::from_secs(10));
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "never woken after a restart"
            );
        }
    }

    #[test]
    fn a_duration_too_long_to_add_never_fires() {
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        let mut delay = Delay::after(Duration::MAX);
        assert!(delay.poll_elapsed(&mut cx).is_pending());
    }
}
