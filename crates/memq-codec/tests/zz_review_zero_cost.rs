//! Review probes: declared lengths of elements that cost no input but are not zero-sized in
//! Rust, and zero-sized elements read through a custom format (where the guard sees only
//! erased values).
#![cfg(feature = "bincode")]

use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use memq_codec::{
    Codec, CodecError, CustomFormat, DecodeLimits, ErasedValue, ErrorKind, PipelineConfig,
    SerializationConfig, SerializationFormat, ValueSink,
};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// Not zero-sized in Rust (8 bytes), but bincode writes nothing for it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Skipped {
    #[serde(skip)]
    cache: u64,
}

#[derive(Debug, Deserialize)]
struct Ping;

/// Counts the elements of a sequence without keeping them (so the probe uses no memory).
struct CountOf<T>(u64, std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for CountOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = CountOf<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut n = 0u64;
                while seq.next_element::<T>()?.is_some() {
                    n += 1;
                }
                Ok(CountOf(n, std::marker::PhantomData))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

fn huge_length() -> Vec<u8> {
    let mut bytes = vec![253u8];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes
}

/// `Some(result)` if `f` returned within `limit`, `None` if it was still running (its thread
/// is left behind; the test binary exits with it).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn zz_review_non_zst_elements_that_cost_no_input_loop() {
    let codec = Codec::new(
        SerializationFormat::Bincode,
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap()
    .with_limits(DecodeLimits::new());
    let input = huge_length();
    let got = within(Duration::from_secs(3), move || {
        codec.decode::<CountOf<Skipped>>(&input).map(|c| c.0)
    });
    // A finding if this is None: nine bytes keep the decode busy (and a `Vec<Skipped>`
    // would grow without bound: 8 bytes per element read).
    assert!(
        got.is_some(),
        "9 bytes declaring u64::MAX `Skipped` elements (8-byte type, 0 bytes of bincode) did not return within 3 s"
    );
}

/// A custom format that is bincode underneath.
struct BincodeUnder;

impl CustomFormat for BincodeUnder {
    fn name(&self) -> &str {
        "bincode-under"
    }
    fn serialize(
        &self,
        value: &ErasedValue<'_>,
        _: &SerializationConfig,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        use bincode::Options;
        let bytes = bincode::DefaultOptions::new()
            .serialize(value)
            .map_err(|e| CodecError::new(ErrorKind::Serialize, e))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError> {
        use bincode::Options;
        let mut de = bincode::Deserializer::from_slice(bytes, bincode::DefaultOptions::new());
        sink.deserialize(&mut de)
    }
}

#[test]
fn zz_review_zst_elements_through_a_custom_format_loop() {
    let codec = Codec::custom(
        Arc::new(BincodeUnder),
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap();
    let input = huge_length();
    let got = within(Duration::from_secs(3), move || {
        codec.decode::<CountOf<Ping>>(&input).map(|c| c.0)
    });
    assert!(
        got.is_some(),
        "a custom (bincode-backed) format: u64::MAX unit structs did not return within 3 s (the guard sees erased values, never zero-sized)"
    );
}
