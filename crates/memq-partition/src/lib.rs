//! Partitioned topics for tokio-memq (work in progress).
