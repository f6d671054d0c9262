//! [`Turns`]: a harness for fairness tests that publishes only while
//! every member is parked in its receive.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Mutex;

use tokio::sync::Notify;

/// What the members of a fairness run report, and what its publisher
/// waits for (with [`until`](Self::until)) before each burst.
#[derive(Debug, Default)]
pub struct Turns {
    state: Mutex<Seen>,
    changed: Notify,
}

/// What the members reported so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    /// Members inside `recv` that have parked at least once in it.
    pub waiting: usize,
    /// Messages the members received and recorded.
    pub received: u64,
}

impl Turns {
    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_waiters();
    }

    /// Returns once `ready` holds.
    pub async fn until(&self, ready: impl Fn(Seen) -> bool) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if ready(*self.state.lock().unwrap_or_else(|e| e.into_inner())) {
                return;
            }
            changed.await;
        }
    }

    /// Runs `recv`, counting its member as waiting from the moment it
    /// parks (its first `Pending`) until it returns.
    pub async fn recv<F: Future>(&self, recv: F) -> F::Output {
        let mut recv = pin!(recv);
        let mut parked = false;
        let out = poll_fn(|cx| {
            let polled = recv.as_mut().poll(cx);
            if polled.is_pending() && !parked {
                parked = true;
                self.update(|s| s.waiting += 1);
            }
            polled
        })
        .await;
        if parked {
            self.update(|s| s.waiting -= 1);
        }
        out
    }

    /// A member recorded a message it received.
    pub fn received(&self) {
        self.update(|s| s.received += 1);
    }
}
