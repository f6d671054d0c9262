//! tokio-memq 1.0.0's `examples/custom_serialization.rs`, unchanged: included so that
//! rustfmt, which does not follow `include!`, leaves it as published, and
//! with lints off (its style is 1.0.0's; its trait imports are unused in
//! 2.0, whose methods are inherent).
#![allow(warnings, clippy::all, clippy::pedantic)]

include!("../examples/custom_serialization.rs");
