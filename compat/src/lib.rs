//! tokio-memq 1.0.0's nine examples, copied unchanged from the published
//! 1.0.0 crate (Apache-2.0) into `examples/` and built here as binaries
//! against 2.0: the migration promise that 1.0.0 code keeps compiling.
//! `tests/run.rs` runs the quick ones.
