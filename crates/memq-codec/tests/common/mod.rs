//! Helpers shared by the integration tests: the formats and compressions this build has, codec
//! builders, and the test values.

// Each test binary uses a different part of this module.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::{Arc, Once};

use memq_codec::{
    Codec, CodecError, CompressionConfig, CustomFormat, ErasedValue, ErrorKind, FrameVersion, PipelineConfig,
    SerializationConfig, SerializationFactory, SerializationFormat, ValueSink,
};
use serde::{Deserialize, Serialize};

/// The name of the custom format the tests register.
pub const TEST_FORMAT: &str = "test-swapped";

/// A custom format for the tests: JSON with every byte's nibbles swapped, so that it really
/// differs from the JSON format.
#[cfg(feature = "json")]
#[derive(Debug)]
pub struct Swapped;

pub fn swap(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b.rotate_left(4)).collect()
}

#[cfg(feature = "json")]
impl CustomFormat for Swapped {
    fn name(&self) -> &str {
        TEST_FORMAT
    }

    fn serialize(
        &self,
        value: &ErasedValue<'_>,
        _: &SerializationConfig,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let json = serde_json::to_vec(value).map_err(|e| CodecError::new(ErrorKind::Serialize, e))?;
        out.extend_from_slice(&swap(&json));
        Ok(())
    }

    fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError> {
        let json = swap(bytes);
        let mut de = serde_json::Deserializer::from_slice(&json);
        sink.deserialize(&mut de)?;
        de.end().map_err(|e| CodecError::new(ErrorKind::TrailingBytes, e))
    }
}

/// Registers [`Swapped`] once per test binary.
#[cfg(feature = "json")]
pub fn register_test_format() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        SerializationFactory::register_format(Arc::new(Swapped));
    });
}

/// Every format this build can round-trip structured values through: the serde formats,
/// plus the test custom format where JSON is available (registering it).
pub fn structured_formats() -> Vec<SerializationFormat> {
    let formats = serde_formats();
    #[cfg(feature = "json")]
    let formats = {
        register_test_format();
        let mut formats = formats;
        formats.push(SerializationFormat::Custom(TEST_FORMAT.into()));
        formats
    };
    formats
}

/// Every serde format this build has (not raw, not custom).
pub fn serde_formats() -> Vec<SerializationFormat> {
    let mut formats = Vec::new();
    if cfg!(feature = "bincode") {
        formats.push(SerializationFormat::Bincode);
    }
    if cfg!(feature = "json") {
        formats.push(SerializationFormat::Json);
    }
    if cfg!(feature = "msgpack") {
        formats.push(SerializationFormat::MessagePack);
    }
    formats
}

/// Every compression this build has, at a mix of levels.
pub fn compressions() -> Vec<CompressionConfig> {
    let mut all = vec![CompressionConfig::None];
    if cfg!(feature = "gzip") {
        all.push(CompressionConfig::Gzip { level: Some(6) });
        all.push(CompressionConfig::Gzip { level: None });
    }
    if cfg!(feature = "zstd") {
        all.push(CompressionConfig::Zstd { level: 3 });
        all.push(CompressionConfig::Zstd { level: -1 });
    }
    all
}

/// How a codec frames its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No header.
    Bare,
    /// A 1.0.0 header.
    V1,
    /// The default header, with length and checksum.
    V2,
}

pub const FRAMINGS: [Framing; 3] = [Framing::Bare, Framing::V1, Framing::V2];

/// A codec for `format` with `compression`, framed as `framing`.
pub fn codec(format: &SerializationFormat, compression: &CompressionConfig, framing: Framing) -> Codec {
    let pipeline = PipelineConfig {
        compression: compression.clone(),
        use_magic_header: framing != Framing::Bare,
        ..Default::default()
    };
    let codec = Codec::new(format.clone(), SerializationConfig::Default, pipeline).unwrap();
    match framing {
        Framing::V1 => codec.with_frame_version(FrameVersion::V1).unwrap(),
        _ => codec,
    }
}

/// The `Sample` value of the 1.0.0 vectors (see `shared/vectors/tmq-v1/sample.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
    pub score: f64,
    pub active: bool,
    pub nested: Option<Inner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inner {
    pub x: i32,
    pub y: i32,
}

pub fn sample() -> Sample {
    Sample {
        id: 42,
        name: "héllo wörld ✓".into(),
        tags: vec!["a".into(), "bb".into(), "ccc".into()],
        score: 3.5,
        active: true,
        nested: Some(Inner { x: -7, y: 9 }),
    }
}
