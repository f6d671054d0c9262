//! Criterion benchmarks of tokio-memq; run with
//! `cargo bench -p tokio-memq-benches`.
