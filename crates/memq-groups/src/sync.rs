//! The mutex the group state lives behind, swappable for loom's.
//!
//! Like memq-core's shim: built with `RUSTFLAGS="--cfg memq_loom"` this
//! is loom's model-checked mutex, so loom models can race group members
//! without the logic changing. (Reference counts stay `std`'s: they are
//! not what the models check.)

#[cfg(not(memq_loom))]
mod imp {
    /// A mutex that does not poison.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        /// The lock if it is free; `None` when it is taken, for a task
        /// that then yields and tries again at its next turn instead of
        /// parking its worker thread.
        pub(crate) fn lock_or_yield(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock()
        }
    }
}

#[cfg(memq_loom)]
mod imp {
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Always the lock under loom: a model polling a receive again
        /// after a yield would spin there without end. (The yield changes
        /// nothing but when the claim runs.)
        pub(crate) fn lock_or_yield(&self) -> Option<MutexGuard<'_, T>> {
            Some(self.lock())
        }
    }
}

pub(crate) use imp::*;
