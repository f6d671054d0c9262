//! The wire vectors tokio-memq 1.0.0 wrote (`shared/vectors/tmq-v1/`) decode to the exact
//! value, and the uncompressed ones are what this crate writes, byte for byte.
//!
//! The vectors are a byte-identical copy of the project's `shared/vectors/tmq-v1/`, committed
//! under `tests/vectors/` so the test never depends on anything outside the repository. A
//! missing file fails the test rather than skipping it.

#![cfg(all(
    feature = "bincode",
    feature = "json",
    feature = "msgpack",
    feature = "gzip",
    feature = "zstd"
))]

mod common;

use std::path::PathBuf;

use common::{sample, Sample};
use memq_codec::{
    decode_frame, Codec, CompressionConfig, DecodeLimits, ErrorKind, FrameVersion, HeaderMode,
    PipelineConfig, SerializationConfig, SerializationFormat,
};

fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/tmq-v1");
    assert!(
        dir.join("MANIFEST.md").is_file(),
        "the tokio-memq 1.0.0 vectors are missing: expected {} (a copy of shared/vectors/tmq-v1)",
        dir.display()
    );
    dir
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

const FORMATS: [(&str, SerializationFormat); 3] = [
    ("bincode", SerializationFormat::Bincode),
    ("json", SerializationFormat::Json),
    ("msgpack", SerializationFormat::MessagePack),
];

fn compressions() -> [(&'static str, CompressionConfig); 3] {
    [
        ("none", CompressionConfig::None),
        ("gzip", CompressionConfig::Gzip { level: Some(6) }),
        ("zstd", CompressionConfig::Zstd { level: 3 }),
    ]
}

/// The settings 1.0.0 was given for each vector.
fn codec_for(format: &SerializationFormat, compression: &CompressionConfig, header: bool) -> Codec {
    let pipeline = PipelineConfig {
        compression: compression.clone(),
        use_magic_header: header,
        ..Default::default()
    };
    Codec::new(format.clone(), SerializationConfig::Default, pipeline)
        .unwrap()
        .with_frame_version(FrameVersion::V1)
        .unwrap()
}

#[test]
fn sample_json_describes_the_value_these_tests_expect() {
    let manifest: serde_json::Value = serde_json::from_slice(&read("sample.json")).unwrap();
    let value: Sample = serde_json::from_value(manifest["sample"]["value"].clone()).unwrap();
    assert_eq!(value, sample());
    let hex = manifest["sample"]["compact_json_utf8_hex"].as_str().unwrap();
    assert_eq!(to_hex(&serde_json::to_vec(&sample()).unwrap()), hex);
}

#[test]
fn every_vector_with_a_header_decodes_to_the_sample() {
    let limits = DecodeLimits::default();
    let mut decoded = 0;
    for (format_name, format) in &FORMATS {
        for (compression_name, compression) in compressions() {
            let file = format!("{format_name}-{compression_name}.bin");
            let bytes = read(&file);
            assert_eq!(&bytes[..4], b"TMQ\x01", "{file}");

            // With the settings it was written with.
            let codec = codec_for(format, &compression, true);
            assert_eq!(codec.decode::<Sample>(&bytes).unwrap(), sample(), "{file}");
            // By its header alone, whatever the fallback says.
            for (_, fallback) in &FORMATS {
                assert_eq!(
                    decode_frame::<Sample>(&bytes, fallback, &limits).unwrap(),
                    sample(),
                    "{file}"
                );
            }
            assert_eq!(
                decode_frame::<Sample>(&bytes, &SerializationFormat::Native, &limits).unwrap(),
                sample()
            );
            // A codec of another format and compression reads it by its header too.
            let other = codec_for(&SerializationFormat::Json, &CompressionConfig::None, true);
            assert_eq!(other.decode::<Sample>(&bytes).unwrap(), sample(), "{file}");
            decoded += 1;
        }
    }
    assert_eq!(decoded, 9);
}

#[test]
fn every_headerless_vector_decodes_given_its_settings() {
    // 1.0.0 itself read only the three uncompressed ones: it never decompressed a payload
    // without a header. A codec that knows the compression reads all nine.
    let mut decoded = 0;
    for (format_name, format) in &FORMATS {
        for (compression_name, compression) in compressions() {
            let file = format!("{format_name}-{compression_name}-noheader.bin");
            let bytes = read(&file);
            let codec = codec_for(format, &compression, false);
            assert_eq!(codec.header_mode(), HeaderMode::Never);
            assert_eq!(codec.decode::<Sample>(&bytes).unwrap(), sample(), "{file}");
            decoded += 1;
        }
    }
    assert_eq!(decoded, 9);

    let limits = DecodeLimits::default();
    for (format_name, format) in &FORMATS {
        let bytes = read(&format!("{format_name}-none-noheader.bin"));
        assert_eq!(
            decode_frame::<Sample>(&bytes, format, &limits).unwrap(),
            sample(),
            "{format_name}"
        );
    }
}

#[test]
fn uncompressed_vectors_are_what_this_crate_writes() {
    for (format_name, format) in &FORMATS {
        let with_header = codec_for(format, &CompressionConfig::None, true)
            .encode(&sample())
            .unwrap();
        assert_eq!(
            &with_header[..],
            &read(&format!("{format_name}-none.bin"))[..],
            "{format_name}"
        );
        let bare = codec_for(format, &CompressionConfig::None, false)
            .encode(&sample())
            .unwrap();
        assert_eq!(
            &bare[..],
            &read(&format!("{format_name}-none-noheader.bin"))[..],
            "{format_name}"
        );
    }
    // The bincode payload is 1.0.0's varint encoding, not bincode's fixint default.
    assert_eq!(read("bincode-none-noheader.bin").len(), 41);
}

#[test]
fn compressed_vectors_decompress_to_the_uncompressed_payload() {
    // Compressed bytes may differ between library versions; what they decompress to may not.
    for (format_name, _) in &FORMATS {
        let payload = read(&format!("{format_name}-none-noheader.bin"));
        for (compression_name, compression) in compressions().into_iter().skip(1) {
            let file = format!("{format_name}-{compression_name}-noheader.bin");
            let raw = Codec::new(
                SerializationFormat::Raw,
                SerializationConfig::Default,
                PipelineConfig {
                    compression,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(raw.decode::<Vec<u8>>(&read(&file)).unwrap(), payload, "{file}");
        }
    }
}

#[test]
fn trailing_junk_after_a_version_1_value_is_ignored_as_in_1_0_0() {
    let limits = DecodeLimits::default();
    for (format_name, format) in &FORMATS {
        let mut bytes = read(&format!("{format_name}-none.bin"));
        bytes.extend_from_slice(b"\x00\x01\x02");
        assert_eq!(
            decode_frame::<Sample>(&bytes, format, &limits).unwrap(),
            sample(),
            "{format_name}"
        );
    }
}

#[test]
fn an_unknown_version_byte_is_an_error_unlike_1_0_0() {
    // 1.0.0 did not check the version and decoded these; a version it never wrote is
    // refused here, so a future version is never misread as version 1.
    let limits = DecodeLimits::default();
    for (format_name, format) in &FORMATS {
        let mut bytes = read(&format!("{format_name}-none.bin"));
        bytes[3] = 9;
        let err = decode_frame::<Sample>(&bytes, format, &limits).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownVersion, "{format_name}");
    }
}

/// The 1 MiB value of `large-json-zstd.bin`, regenerated from the recipe in `sample.json`.
fn large_value() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(1 << 20);
    for _ in 0..131_072 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

#[test]
fn the_large_vector_decodes_to_the_regenerated_value() {
    let manifest: serde_json::Value = serde_json::from_slice(&read("sample.json")).unwrap();
    let expected = large_value();
    assert_eq!(
        to_hex(&expected[..16]),
        manifest["large"]["raw_first16_hex"].as_str().unwrap()
    );
    assert_eq!(
        to_hex(&expected[expected.len() - 16..]),
        manifest["large"]["raw_last16_hex"].as_str().unwrap()
    );

    let bytes = read("large-json-zstd.bin");
    assert_eq!(bytes.len(), 1_474_147);
    let decoded: Vec<u8> =
        decode_frame(&bytes, &SerializationFormat::Json, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.len(), 1 << 20);
    assert!(
        decoded == expected,
        "large-json-zstd.bin decoded to a different value"
    );

    // Its JSON payload is 3,743,644 bytes: a limit below that refuses it.
    let tight = DecodeLimits::new().with_max_decoded_size(3_743_643);
    let err = decode_frame::<Vec<u8>>(&bytes, &SerializationFormat::Json, &tight).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let exact = DecodeLimits::new().with_max_decoded_size(3_743_644);
    assert_eq!(
        decode_frame::<Vec<u8>>(&bytes, &SerializationFormat::Json, &exact)
            .unwrap()
            .len(),
        1 << 20
    );
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
