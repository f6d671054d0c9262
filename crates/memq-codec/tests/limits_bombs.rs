//! Decompression bombs are refused while streaming, with peak memory near the decode limit,
//! never near the expanded size.
//!
//! The bombs are made by streaming zeros through the compressors, so the test itself never
//! holds the expanded data either. A counting global allocator measures the peak; libzstd's
//! own allocations go through it too (memq-codec enables zstd's `with-rust-allocator`).

// The counting allocator is the one place in the crate's tests that needs `unsafe`: it only
// forwards to the system allocator.
#![allow(unsafe_code)]
#![cfg(any(feature = "gzip", feature = "zstd"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

fn shrank(by: usize) {
    CURRENT.fetch_sub(by, Ordering::SeqCst);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds bookkeeping on the side, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new == ptr {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    shrank(layout.size() - new_size);
                }
            } else {
                // Moved: both blocks existed at once, so count the new one before freeing
                // the old one.
                grew(new_size);
                shrank(layout.size());
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Tests in this binary run one at a time, so that one's allocations do not count in
/// another's peak.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result with the peak of live heap bytes above what was live when
/// it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Streams `zeros` zero bytes through `writer` in 64 KiB pieces.
fn write_zeros(writer: &mut impl Write, zeros: usize) {
    let chunk = vec![0u8; 64 * KIB];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        writer.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
}

#[cfg(feature = "gzip")]
fn gzip_bomb(zeros: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    write_zeros(&mut encoder, zeros);
    encoder.finish().unwrap()
}

#[cfg(feature = "zstd")]
fn zstd_bomb(zeros: usize, declare_size: bool) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    if declare_size {
        encoder.set_pledged_src_size(Some(zeros as u64)).unwrap();
    }
    write_zeros(&mut encoder, zeros);
    encoder.finish().unwrap()
}

mod refused {
    use super::*;
    use memq_codec::{
        Codec, CompressionConfig, DecodeLimits, ErrorKind, PipelineConfig, SerializationConfig,
        SerializationFormat,
    };

    /// Decodes `bomb` as a bare payload compressed with `compression` and checks that it is
    /// refused as too large, with the peak at most `limit` plus `slack`. Returns the peak.
    fn assert_refused(bomb: &[u8], compression: CompressionConfig, limit: usize, slack: usize) -> usize {
        let codec = Codec::new(
            SerializationFormat::Raw,
            SerializationConfig::Default,
            PipelineConfig {
                compression,
                ..Default::default()
            },
        )
        .unwrap()
        .with_limits(DecodeLimits::new().with_max_decoded_size(limit));
        let (result, peak) = peak_during(|| codec.decode::<bytes::Bytes>(bomb));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
        assert!(
            peak <= limit + slack,
            "peak {peak} bytes is over the limit {limit} plus {slack}"
        );
        println!(
            "{} byte bomb, limit {limit}: refused with a peak of {peak} bytes",
            bomb.len()
        );
        peak
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn a_1_kib_gzip_bomb_is_refused_near_the_limit() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bomb = gzip_bomb(MIB);
        assert!(bomb.len() <= 1100, "the bomb is {} bytes", bomb.len());
        let limit = 64 * KIB;
        let peak = assert_refused(&bomb, CompressionConfig::Gzip { level: None }, limit, MIB);
        // The output buffer plus flate2's inflate state; nowhere near the megabyte it expands to.
        assert!(peak < limit + 128 * KIB, "peak {peak}");
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn a_large_gzip_bomb_is_refused_after_the_limit_not_after_its_size() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bomb = gzip_bomb(64 * MIB);
        let limit = 4 * MIB;
        let peak = assert_refused(&bomb, CompressionConfig::Gzip { level: None }, limit, MIB);
        assert!(peak < limit + 128 * KIB, "peak {peak}");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_1_kib_zstd_bomb_is_refused_near_the_limit() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bomb = zstd_bomb(32 * MIB, false);
        assert!(bomb.len() <= 1100, "the bomb is {} bytes", bomb.len());
        let limit = MIB;
        let peak = assert_refused(&bomb, CompressionConfig::Zstd { level: 3 }, limit, MIB);
        assert!(peak < limit + 256 * KIB, "peak {peak}");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_zstd_bomb_is_refused_under_the_default_limit() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bomb = zstd_bomb(256 * MIB, false);
        let limit = DecodeLimits::DEFAULT_MAX_DECODED_SIZE;
        let peak = assert_refused(&bomb, CompressionConfig::Zstd { level: 3 }, limit, MIB);
        assert!(peak < limit + 256 * KIB, "peak {peak}");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_zstd_frame_declaring_too_much_is_refused_before_decompressing() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bomb = zstd_bomb(32 * MIB, true);
        let peak = assert_refused(&bomb, CompressionConfig::Zstd { level: 3 }, MIB, MIB);
        assert!(peak < 4 * KIB, "peak {peak}");
    }

    #[cfg(all(feature = "zstd", feature = "json"))]
    #[test]
    fn a_bomb_inside_a_1_0_0_frame_is_refused_by_decode_frame() {
        use memq_codec::decode_frame;
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut frame = b"TMQ\x01\x01\x02".to_vec();
        frame.extend_from_slice(&zstd_bomb(32 * MIB, false));
        let limits = DecodeLimits::new().with_max_decoded_size(MIB);
        let (result, peak) =
            peak_during(|| decode_frame::<Vec<u8>>(&frame, &SerializationFormat::Json, &limits));
        assert_eq!(result.unwrap_err().kind(), ErrorKind::TooLarge);
        assert!(peak < MIB + 256 * KIB, "peak {peak}");
    }

    #[cfg(all(feature = "gzip", feature = "json"))]
    #[test]
    fn a_bomb_inside_a_version_2_frame_is_refused() {
        use memq_codec::decode_frame;
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // A frame this crate could have written: valid header, length and checksum.
        let bomb = gzip_bomb(4 * MIB);
        let mut frame = b"TMQ\x02\x01\x01".to_vec();
        frame.extend_from_slice(&(bomb.len() as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&frame);
        crc.update(&bomb);
        frame.extend_from_slice(&crc.finalize().to_le_bytes());
        frame.extend_from_slice(&bomb);
        let limits = DecodeLimits::new().with_max_decoded_size(MIB);
        let (result, peak) =
            peak_during(|| decode_frame::<Vec<u8>>(&frame, &SerializationFormat::Json, &limits));
        assert_eq!(result.unwrap_err().kind(), ErrorKind::TooLarge);
        assert!(peak < MIB + 128 * KIB, "peak {peak}");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_legitimate_payload_just_under_the_limit_decodes() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let zeros = zstd_bomb(MIB, false);
        let codec = Codec::new(
            SerializationFormat::Raw,
            SerializationConfig::Default,
            PipelineConfig {
                compression: CompressionConfig::Zstd { level: 3 },
                ..Default::default()
            },
        )
        .unwrap()
        .with_limits(DecodeLimits::new().with_max_decoded_size(MIB));
        let (result, peak) = peak_during(|| codec.decode::<bytes::Bytes>(&zeros).map(|b| b.len()));
        assert_eq!(result.unwrap(), MIB);
        assert!(peak < MIB + 256 * KIB, "peak {peak}");
    }
}

/// Length fields alone: a declared length makes a decode reserve memory or loop only as far
/// as the input backs it.
#[cfg(feature = "bincode")]
mod lengths {
    use super::*;
    use std::collections::HashMap;
    use std::sync::mpsc;
    use std::time::Duration;

    use memq_codec::{
        Codec, DecodeLimits, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat,
    };
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Ping;

    #[derive(Debug, Deserialize)]
    struct Comment {
        _id: u64,
        _replies: Vec<Comment>,
    }

    #[derive(Debug, Deserialize)]
    struct Dir {
        _entries: HashMap<String, Dir>,
    }

    fn bare(format: SerializationFormat, limits: DecodeLimits) -> Codec {
        Codec::new(format, SerializationConfig::Default, PipelineConfig::default())
            .unwrap()
            .with_limits(limits)
    }

    /// bincode's varint marker for a `u64` length, then `u64::MAX`.
    fn huge_length() -> Vec<u8> {
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        bytes
    }

    /// Runs `f` on its own thread and fails if it takes more than ten seconds.
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the decode returned (a declared length of zero-sized elements looped)")
    }

    /// Nine bytes of bincode declaring `u64::MAX` unit structs (or `()` keys and values) kept a
    /// receive busy for ever: no allocation, no nesting, so neither other limit applied.
    #[test]
    fn a_declared_length_of_zero_sized_elements_is_refused_at_once() {
        let codec = bare(SerializationFormat::Bincode, DecodeLimits::new());
        let input = huge_length();
        let (seq, map) = bounded(move || {
            (
                codec.decode::<Vec<Ping>>(&input).map(|v| v.len()),
                codec.decode::<HashMap<(), ()>>(&input).map(|m| m.len()),
            )
        });
        for err in [seq.unwrap_err(), map.unwrap_err()] {
            assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
        }
        // Up to one per byte of input and 65,536 more still decode.
        let codec = bare(SerializationFormat::Bincode, DecodeLimits::new());
        let mut ok = vec![252u8];
        ok.extend_from_slice(&65_536u32.to_le_bytes());
        assert_eq!(codec.decode::<Vec<()>>(&ok).unwrap().len(), 65_536);
    }

    /// Not zero-sized (8 bytes) but written as nothing by bincode: a `Vec` of them grew 8
    /// bytes per element read until memory ran out.
    #[derive(Debug, Deserialize)]
    struct Skipped {
        #[serde(skip)]
        _cache: u64,
    }

    #[test]
    fn elements_that_cost_no_input_are_counted_whatever_their_size() {
        let codec = bare(SerializationFormat::Bincode, DecodeLimits::new());
        let input = huge_length();
        let err = bounded(move || codec.decode::<Vec<Skipped>>(&input).map(|v| v.len())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    }

    /// A custom format that is bincode underneath: its values reach the guard erased (never
    /// zero-sized), and unit structs looped through it as through bincode.
    struct BincodeUnder;

    impl memq_codec::CustomFormat for BincodeUnder {
        fn name(&self) -> &str {
            "bincode-under"
        }
        fn serialize(
            &self,
            _: &memq_codec::ErasedValue<'_>,
            _: &SerializationConfig,
            _: &mut Vec<u8>,
        ) -> Result<(), memq_codec::CodecError> {
            unreachable!("only decodes")
        }
        fn deserialize(
            &self,
            bytes: &[u8],
            sink: memq_codec::ValueSink<'_>,
        ) -> Result<(), memq_codec::CodecError> {
            let mut de = bincode::Deserializer::from_slice(bytes, bincode::DefaultOptions::new());
            sink.deserialize(&mut de)
        }
    }

    #[test]
    fn a_custom_format_cannot_loop_on_a_declared_length_either() {
        let codec = Codec::custom(
            std::sync::Arc::new(BincodeUnder),
            SerializationConfig::Default,
            PipelineConfig::default(),
        )
        .unwrap();
        let input = huge_length();
        let err = bounded(move || codec.decode::<Vec<Ping>>(&input).map(|v| v.len())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    }

    /// Declared lengths nested level under level reserved serde's 1 MiB cap at each: a
    /// kilobyte under a 1 KiB limit reserved 63 MiB, a kilobyte under the default 143 MiB,
    /// before the input ran out.
    #[test]
    fn nested_declared_lengths_reserve_in_proportion_to_the_input() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut comment = Vec::new();
        for _ in 0..100 {
            comment.push(0); // id
            comment.extend_from_slice(&huge_length()); // replies
        }
        let codec = bare(
            SerializationFormat::Bincode,
            DecodeLimits::new().with_max_decoded_size(KIB),
        );
        let (result, peak) = peak_during(|| codec.decode::<Comment>(&comment));
        assert!(result.is_err());
        assert!(
            peak <= 64 * KIB,
            "{} input bytes reserved {peak} bytes",
            comment.len()
        );

        let mut dir = Vec::new();
        for _ in 0..100 {
            dir.extend_from_slice(&huge_length()); // entries
            dir.push(1); // a one-byte name
            dir.push(b'a');
        }
        let codec = bare(SerializationFormat::Bincode, DecodeLimits::new());
        let (result, peak) = peak_during(|| codec.decode::<Dir>(&dir));
        assert!(result.is_err());
        assert!(
            peak <= 256 * KIB,
            "{} input bytes reserved {peak} bytes",
            dir.len()
        );
    }

    /// What the input does hold decodes as before, with its capacity reserved up front.
    #[test]
    fn long_sequences_still_decode_whole() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let codec = bare(SerializationFormat::Bincode, DecodeLimits::new());
        let values: Vec<u64> = (0..100_000).collect();
        let nested: Vec<Vec<u32>> = (0..100).map(|i| (0..i).collect()).collect();
        let map: HashMap<String, u8> = (0..1000).map(|i| (i.to_string(), i as u8)).collect();
        assert_eq!(
            codec.decode::<Vec<u64>>(&codec.encode(&values).unwrap()).unwrap(),
            values
        );
        assert_eq!(
            codec
                .decode::<Vec<Vec<u32>>>(&codec.encode(&nested).unwrap())
                .unwrap(),
            nested
        );
        assert_eq!(
            codec
                .decode::<HashMap<String, u8>>(&codec.encode(&map).unwrap())
                .unwrap(),
            map
        );
    }
}
