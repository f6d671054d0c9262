//! Waiting outside async code: the blocking handles' executor, and a
//! timer for the timeouts of async calls made where no Tokio runtime is.
//!
//! The blocking handles ([`Publisher::blocking_publish`](crate::Publisher::blocking_publish),
//! [`Subscriber::blocking_recv`](crate::Subscriber::blocking_recv) and their
//! kin) poll the same futures as the async methods on the calling thread
//! and park it between wake-ups, so backpressure, lag and close behave
//! the same. The waits that end with time alone (a manual group member
//! waiting for an idle member's messages or offering refused dead letters
//! again, a full TTL topic waiting for its oldest message to expire, a
//! timeout) are woken by memq-core's timer thread ([`memq_core::Delay`]),
//! also on a thread in a runtime's context (`spawn_blocking`), so that a
//! blocking call of an in-memory queue neither depends on that runtime's
//! timers being driven nor fails when it shuts down. (A queue over Redis
//! runs its commands, with their timeouts, on the queue's Tokio runtime:
//! see `remote.rs`.)

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

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
    // Timers on the timer thread, even in a runtime's context (a
    // `spawn_blocking` thread): that runtime may shut down while this
    // waits, and its timers then panic when polled.
    memq_core::Delay::on_timer_thread(|| loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => thread::park_timeout(left),
                _ => return None,
            },
            None => thread::park(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn block_on_gives_up_at_the_deadline() {
        let started = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(block_on_until(never, started + Duration::from_millis(20)), None);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
