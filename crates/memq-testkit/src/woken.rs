//! A time limit that also catches lost wake-ups.
//!
//! `tokio::time::timeout` polls its future once more when the time is
//! up, before it reports `Elapsed`. A receive that lost its wake-up but
//! whose message is there by then completes on that last poll: the test
//! passes, only as slow as its limit. [`within`] polls its future only
//! when the future asked to be woken (and once at the start), so such a
//! test fails instead.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Awaits `fut` for at most `limit`, polling it only after it woke its
/// waker (or a clone of it), and once at the start.
///
/// # Errors
///
/// [`NotWoken`] when `fut` is not done within `limit`, including when it
/// would have been ready had it been polled without a wake-up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// tx.send(7).unwrap();
/// let got = memq_testkit::within(Duration::from_secs(1), rx).await;
/// assert_eq!(got.unwrap(), Ok(7));
///
/// // A future that is ready whenever it is polled again, but never asks
/// // to be: `timeout` would let it through, `within` does not.
/// let mut polled = false;
/// let lost = std::future::poll_fn(move |_cx| {
///     if std::mem::replace(&mut polled, true) {
///         std::task::Poll::Ready(())
///     } else {
///         std::task::Poll::Pending
///     }
/// });
/// assert!(memq_testkit::within(Duration::from_millis(10), lost).await.is_err());
/// # }
/// ```
pub async fn within<F: Future>(limit: Duration, fut: F) -> Result<F::Output, NotWoken> {
    let flag = Arc::new(Flag {
        // As if woken: the first poll goes through.
        woken: AtomicBool::new(true),
        outer: Mutex::new(None),
    });
    let gated = Gated {
        fut: Box::pin(fut),
        waker: Waker::from(flag.clone()),
        flag,
    };
    tokio::time::timeout(limit, gated)
        .await
        .map_err(|_| NotWoken(limit))
}

/// The future of [`within`] was not done in time (or was ready only
/// without having been woken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotWoken(pub Duration);

impl fmt::Display for NotWoken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not done within {:?}, or ready only when polled without a wake-up",
            self.0
        )
    }
}

impl std::error::Error for NotWoken {}

/// What the inner future's waker does: notes the wake-up and passes it on
/// to the task that awaits [`within`].
struct Flag {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        // Woken outside the lock: a waker that polls at once must not find
        // it held.
        let outer = self.outer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = outer {
            w.wake();
        }
    }
}

/// Polls its future only when [`Flag`] says it was woken (it starts out
/// so).
struct Gated<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // The outer waker first, then the flag: a wake-up that comes after
        // the flag was read finds the waker to pass on.
        {
            let mut outer = self.flag.outer.lock().unwrap_or_else(|e| e.into_inner());
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
        }
        if !self.flag.woken.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.fut.as_mut().poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_what_wakes_and_fails_what_does_not() {
        // Woken from another task later.
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send(1).unwrap();
        });
        assert_eq!(within(Duration::from_secs(5), rx).await, Ok(Ok(1)));

        // Yields (wakes itself) a few times before it is done.
        let mut turns = 0;
        let yielding = std::future::poll_fn(move |cx| {
            turns += 1;
            if turns < 4 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(turns)
            }
        });
        assert_eq!(within(Duration::from_secs(5), yielding).await, Ok(4));

        // Ready from the start.
        assert_eq!(within(Duration::from_secs(5), async { 2 }).await, Ok(2));

        // Ready on its next poll, but never woken: `timeout` passes it on
        // the poll it makes when the time is up; `within` does not.
        let lost = || {
            let mut polled = false;
            std::future::poll_fn(move |_| {
                if std::mem::replace(&mut polled, true) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        };
        let limit = Duration::from_millis(20);
        assert!(tokio::time::timeout(limit, lost()).await.is_ok());
        assert_eq!(within(limit, lost()).await, Err(NotWoken(limit)));
    }

    #[tokio::test]
    async fn a_waker_kept_from_an_earlier_poll_still_counts() {
        // The future wakes through the waker of its first poll, after
        // being polled again (a waiter registered once).
        let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
        let mut polls = 0;
        let keeper = kept.clone();
        let fut = std::future::poll_fn(move |cx| {
            polls += 1;
            match polls {
                1 => {
                    *keeper.lock().unwrap() = Some(cx.waker().clone());
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                2 => Poll::Pending,
                _ => Poll::Ready(polls),
            }
        });
        // Woken from another task, once the future has been polled twice.
        let waker = tokio::spawn(async move {
            loop {
                tokio::task::yield_now().await;
                let taken = kept.lock().unwrap().take();
                if let Some(w) = taken {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    w.wake();
                    return;
                }
            }
        });
        assert_eq!(within(Duration::from_secs(5), fut).await, Ok(3));
        waker.await.unwrap();
    }
}
