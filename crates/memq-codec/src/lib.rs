//! Serialization formats, compression and framing for tokio-memq (work in progress).
