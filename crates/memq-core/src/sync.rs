//! The one place concurrency primitives come from.
//!
//! Everything in this crate that is shared between threads imports `Arc`,
//! `Mutex` and the atomics from here, never from `std` or `parking_lot`
//! directly. Building with `RUSTFLAGS="--cfg memq_loom"` (our own cfg name, so
//! tokio's internal `loom` cfg stays off) swaps them for loom's
//! model-checked versions, so loom models can exercise the real logic
//! without a line of it changing (the same shape as `tokio/src/loom`).

#[cfg(not(memq_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;

    /// A mutex that does not poison: a panic in user code (a payload's
    /// `Clone` or `Drop`) can never leave a topic unusable.
    ///
    /// Contended, it spins briefly and then yields the thread a few times
    /// before it parks. Critical sections here are a few dozen
    /// nanoseconds, and a publisher re-takes the lock for every message:
    /// parking after parking_lot's own short spin put the reader and the
    /// publisher to sleep in turn, one futex wake per hand-over, and the
    /// two threads of a 1-publisher/1-subscriber run used 0.94 CPUs
    /// between them. With the yield phase they run side by side (measured:
    /// 1.4-1.7x messages/s, see ARCHITECTURE.md). On a single CPU
    /// spinning cannot help, so it is skipped.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// `yield_now` calls before a contended lock parks: 16, or with the
    /// `tuning-env` feature `MEMQ_LOCK_YIELDS` when set (read once; for
    /// benchmarks that compare the policy on many cores).
    fn yields() -> u32 {
        const YIELDS: u32 = 16;
        #[cfg(feature = "tuning-env")]
        {
            static SET: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
            *SET.get_or_init(|| {
                std::env::var("MEMQ_LOCK_YIELDS")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(YIELDS)
            })
        }
        #[cfg(not(feature = "tuning-env"))]
        YIELDS
    }

    /// Whether this process may run on more than one CPU (asked once).
    fn several_cpus() -> bool {
        static SEVERAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            #[cfg(test)]
            locks_taken::count(self);
            match self.0.try_lock() {
                Some(guard) => guard,
                None => self.lock_contended(),
            }
        }

        #[cold]
        fn lock_contended(&self) -> MutexGuard<'_, T> {
            /// Rounds of busy-waiting (1, 2, 4, ... pause hints each).
            const SPIN_ROUNDS: u32 = 2;
            if several_cpus() {
                for round in 0..SPIN_ROUNDS {
                    for _ in 0..1u32 << round {
                        std::hint::spin_loop();
                    }
                    if let Some(guard) = self.0.try_lock() {
                        return guard;
                    }
                }
                for _ in 0..yields() {
                    std::thread::yield_now();
                    if let Some(guard) = self.0.try_lock() {
                        return guard;
                    }
                }
            }
            self.0.lock()
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            #[cfg(test)]
            locks_taken::count(self);
            self.0.try_lock()
        }

        /// Whether another thread holds it right now (a hint: it may be
        /// released or taken the moment after).
        pub(crate) fn is_locked(&self) -> bool {
            self.0.is_locked()
        }
    }

    /// Unit tests count the locks the current thread takes, per mutex, to
    /// pin down paths that must not lock.
    #[cfg(test)]
    pub(crate) mod locks_taken {
        use std::cell::RefCell;
        use std::collections::HashMap;

        std::thread_local! {
            static TAKEN: RefCell<HashMap<usize, usize>> = RefCell::new(HashMap::new());
        }

        pub(crate) fn count<T>(mutex: &super::Mutex<T>) {
            let key = std::ptr::from_ref(mutex) as usize;
            TAKEN.with(|t| *t.borrow_mut().entry(key).or_default() += 1);
        }

        /// Locks (and lock attempts) of `mutex` by this thread so far.
        pub(crate) fn of<T>(mutex: &super::Mutex<T>) -> usize {
            let key = std::ptr::from_ref(mutex) as usize;
            TAKEN.with(|t| t.borrow().get(&key).copied().unwrap_or(0))
        }
    }
}

#[cfg(memq_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // loom's mutex poisons like std's; ours must not, so take the
            // guard back out of a poisoned lock.
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Never under loom: a model would spin on the yield it asks for.
        pub(crate) fn is_locked(&self) -> bool {
            false
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }
}

pub(crate) use imp::*;
