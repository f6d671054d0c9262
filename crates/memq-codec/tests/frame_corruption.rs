//! Truncated and corrupted input never panics; a version 2 frame with any single bit flipped,
//! or cut anywhere, is always an error, never a different value.

mod common;

use common::{codec, compressions, structured_formats, Framing};
use memq_codec::{
    decode_frame, Codec, DecodeLimits, ErrorKind, FrameHeader, HeaderMode, SerializationFormat,
};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Small {
    id: u32,
    name: String,
    flags: Vec<bool>,
    score: Option<f32>,
}

fn small() -> Small {
    Small {
        id: 7,
        name: "wörd".into(),
        flags: vec![true, false],
        score: Some(0.5),
    }
}

/// Every formats × compressions codec writing version 2 frames, with the values to try.
fn v2_codecs() -> Vec<Codec> {
    let mut formats = structured_formats();
    formats.push(SerializationFormat::Raw);
    let mut all = Vec::new();
    for format in &formats {
        for compression in compressions() {
            all.push(codec(format, &compression, Framing::V2));
        }
    }
    all
}

/// Every prefix and every single-bit flip of `frame` is an error (the stronger property a
/// version 2 frame gives: its length and checksum see every such change).
fn assert_every_change_is_an_error<T>(codec: &Codec, frame: &[u8])
where
    T: DeserializeOwned + std::fmt::Debug,
{
    for len in 0..frame.len() {
        let result = codec.decode::<T>(&frame[..len]);
        assert!(
            result.is_err(),
            "{codec:?}: prefix of {len} bytes decoded to {result:?}"
        );
    }
    let mut flipped = frame.to_vec();
    for bit in 0..frame.len() * 8 {
        flipped[bit / 8] ^= 1 << (bit % 8);
        let result = codec.decode::<T>(&flipped);
        assert!(
            result.is_err(),
            "{codec:?}: flipping bit {bit} decoded to {result:?}"
        );
        flipped[bit / 8] ^= 1 << (bit % 8);
    }
}

#[test]
fn every_truncation_and_bit_flip_of_a_version_2_frame_is_an_error() {
    let mut frames = 0;
    for codec in v2_codecs() {
        if *codec.format() == SerializationFormat::Raw {
            let frame = codec.encode(&b"raw \x00\xff bytes"[..]).unwrap();
            assert_every_change_is_an_error::<Vec<u8>>(&codec, &frame);
            let empty = codec.encode(&b""[..]).unwrap();
            assert_every_change_is_an_error::<Vec<u8>>(&codec, &empty);
        } else {
            let frame = codec.encode(&small()).unwrap();
            assert_eq!(codec.decode::<Small>(&frame).unwrap(), small());
            assert_every_change_is_an_error::<Small>(&codec, &frame);
            let number = codec.encode(&42u8).unwrap();
            assert_every_change_is_an_error::<u8>(&codec, &number);
        }
        frames += 1;
    }
    assert!(frames >= 1);
}

#[test]
fn what_each_kind_of_damage_to_a_version_2_frame_reports() {
    let codec = codec(
        &SerializationFormat::Raw,
        &memq_codec::CompressionConfig::None,
        Framing::V2,
    );
    let frame = codec.encode(&b"abc"[..]).unwrap();
    assert_eq!(frame.len(), 14 + 3);
    let kind = |bytes: &[u8]| codec.decode::<Vec<u8>>(bytes).unwrap_err().kind();

    assert_eq!(kind(&frame[..2]), ErrorKind::MissingHeader);
    assert_eq!(kind(&frame[..3]), ErrorKind::Truncated);
    assert_eq!(kind(&frame[..13]), ErrorKind::Truncated);
    assert_eq!(kind(&frame[..16]), ErrorKind::Truncated);
    let mut longer = frame.to_vec();
    longer.push(0);
    assert_eq!(kind(&longer), ErrorKind::TrailingBytes);

    let flip = |at: usize, mask: u8| {
        let mut bytes = frame.to_vec();
        bytes[at] ^= mask;
        kind(&bytes)
    };
    assert_eq!(flip(0, 1), ErrorKind::MissingHeader); // magic
    assert_eq!(flip(3, 4), ErrorKind::UnknownVersion); // version
    assert_eq!(flip(4, 1), ErrorKind::ChecksumMismatch); // format code
    assert_eq!(flip(5, 1), ErrorKind::ChecksumMismatch); // compression code
    assert_eq!(flip(6, 1), ErrorKind::TrailingBytes); // length 3 -> 2
    assert_eq!(flip(6, 4), ErrorKind::Truncated); // length 3 -> 7
    assert_eq!(flip(11, 0x80), ErrorKind::ChecksumMismatch); // checksum
    assert_eq!(flip(16, 1), ErrorKind::ChecksumMismatch); // payload
}

/// Decodes `bytes` every way there is, ignoring the results: only a panic fails.
fn decode_every_way(bytes: &[u8]) {
    let limits = DecodeLimits::new().with_max_decoded_size(1 << 20);
    let mut fallbacks = structured_formats();
    fallbacks.push(SerializationFormat::Raw);
    fallbacks.push(SerializationFormat::Native);
    for fallback in &fallbacks {
        let _ = decode_frame::<Small>(bytes, fallback, &limits);
        let _ = decode_frame::<Vec<u8>>(bytes, fallback, &limits);
        let _ = decode_frame::<String>(bytes, fallback, &limits);
        let _ = decode_frame::<(u64, i8, Option<Vec<String>>)>(bytes, fallback, &limits);
    }
    for format in &fallbacks {
        if *format == SerializationFormat::Native {
            continue;
        }
        for compression in compressions() {
            for framing in [Framing::Bare, Framing::V2] {
                let codec = codec(format, &compression, framing)
                    .with_limits(limits)
                    .with_header_mode(if framing == Framing::Bare {
                        HeaderMode::Detect
                    } else {
                        HeaderMode::Require
                    });
                let _ = codec.decode::<Small>(bytes);
                let _ = codec.decode::<Vec<u8>>(bytes);
            }
        }
    }
    let _ = FrameHeader::parse(bytes);
}

#[test]
fn every_truncation_and_bit_flip_of_other_frames_never_panics() {
    // Version 1 frames and bare payloads carry no checksum: a flipped bit can decode to a
    // different value (a JSON digit changes), as it did in 1.0.0. What holds is no panic.
    let mut formats = structured_formats();
    formats.push(SerializationFormat::Raw);
    for format in &formats {
        for compression in compressions() {
            for framing in [Framing::Bare, Framing::V1] {
                if framing == Framing::V1 && *format == SerializationFormat::Raw {
                    continue;
                }
                let codec = codec(format, &compression, framing);
                let frame = match format {
                    SerializationFormat::Raw => codec.encode(&b"raw"[..]).unwrap(),
                    _ => codec.encode(&small()).unwrap(),
                };
                let limits = DecodeLimits::default();
                let decode = |bytes: &[u8]| {
                    let _ = codec.decode::<Small>(bytes);
                    let _ = codec.decode::<Vec<u8>>(bytes);
                    let _ = decode_frame::<Small>(bytes, format, &limits);
                };
                for len in 0..frame.len() {
                    decode(&frame[..len]);
                }
                let mut flipped = frame.to_vec();
                for bit in 0..frame.len() * 8 {
                    flipped[bit / 8] ^= 1 << (bit % 8);
                    decode(&flipped);
                    flipped[bit / 8] ^= 1 << (bit % 8);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_every_way(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_frame_header_never_panic(
        version in 0u8..4,
        format in prop_oneof![0u8..6, Just(255u8)],
        compression in 0u8..4,
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![b'T', b'M', b'Q', version, format, compression];
        bytes.extend_from_slice(&rest);
        decode_every_way(&bytes);
    }
}
