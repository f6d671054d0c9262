//! Runnable examples for tokio-memq; see the `[[example]]` targets in
//! `Cargo.toml` and run one with `cargo run --release --example <name>`.
