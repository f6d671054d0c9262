//! Fuzzes every way of decoding untrusted bytes: by the frame header with each fallback
//! format, and through codecs of every format, compression and header mode (with and without
//! reading a version 3 frame's record headers).
//!
//! Whatever the input, decoding must return (an error or a value) without panicking, without
//! allocating past the limit set here, and without overflowing the stack (libFuzzer's threads
//! have the default stack; the depth limit keeps every format within it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use memq_codec::{
    decode_frame, Codec, CompressionConfig, DecodeLimits, FrameHeader, HeaderMode, PipelineConfig,
    SerializationConfig, SerializationFormat,
};
use serde::Deserialize;

/// A value touching most of the serde data model.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Message {
    id: u64,
    delta: i32,
    ratio: f64,
    name: String,
    tags: Vec<String>,
    blob: Vec<u8>,
    maybe: Option<u16>,
    pair: (bool, char),
    kind: Kind,
    attributes: std::collections::BTreeMap<String, i64>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
enum Kind {
    Empty,
    Count(u32),
    Point { x: i64, y: i64 },
}

/// A recursive type: in bincode every byte of input can open one more level, so this is what
/// the depth limit (`DecodeLimits::max_depth`) is for.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
enum Tree {
    Leaf(u8),
    Node(Box<Tree>),
    Pair(Option<Box<Tree>>, Vec<Tree>),
    Branch { left: Box<Tree>, right: Box<Tree> },
}

/// A zero-sized element: costs no bincode input, so a declared length of them must not make
/// the decode loop (the depth adapter counts them).
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Ping;

const LIMIT: usize = 1 << 20;

fn formats() -> [SerializationFormat; 4] {
    [
        SerializationFormat::Bincode,
        SerializationFormat::Json,
        SerializationFormat::MessagePack,
        SerializationFormat::Raw,
    ]
}

fn compressions() -> [CompressionConfig; 3] {
    [
        CompressionConfig::None,
        CompressionConfig::Gzip { level: None },
        CompressionConfig::Zstd { level: 3 },
    ]
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::new().with_max_decoded_size(LIMIT);
    let _ = FrameHeader::parse(data);
    for fallback in formats().iter().chain([&SerializationFormat::Native]) {
        let _ = decode_frame::<Message>(data, fallback, &limits);
        let _ = decode_frame::<Tree>(data, fallback, &limits);
        let _ = decode_frame::<Vec<u8>>(data, fallback, &limits);
        let _ = decode_frame::<String>(data, fallback, &limits);
        let _ = decode_frame::<Vec<Ping>>(data, fallback, &limits);
        let _ = decode_frame::<std::collections::BTreeMap<(), Vec<()>>>(data, fallback, &limits);
    }
    for format in formats() {
        for compression in compressions() {
            for mode in [HeaderMode::Never, HeaderMode::Detect, HeaderMode::Require] {
                let pipeline = PipelineConfig {
                    compression: compression.clone(),
                    ..Default::default()
                };
                let Ok(codec) = Codec::new(format.clone(), SerializationConfig::Default, pipeline) else {
                    continue;
                };
                let codec = codec.with_limits(limits).with_header_mode(mode);
                let _ = codec.decode::<Message>(data);
                let _ = codec.decode::<Tree>(data);
                let _ = codec.decode::<Vec<u8>>(data);
                let _ = codec.decode_with_headers::<Vec<u8>>(data);
            }
        }
    }
});
