//! Record headers in version 3 frames: they round-trip in every format and compression,
//! older frames still decode (with no headers), and a corrupted, truncated or malformed
//! headers section is a typed error, never a panic or a different value.

mod common;

use common::{codec, compressions, structured_formats, Framing};
use memq_codec::{
    decode_frame, Codec, DecodeLimits, ErrorKind, FrameHeader, FrameVersion, Headers, PipelineConfig,
    SerializationConfig, SerializationFormat,
};
use proptest::prelude::*;

fn sample_headers() -> Headers {
    let mut h = Headers::new();
    h.insert("trace-id", "4bf92f3577b34da6")
        .insert("hop", "gateway")
        .insert("hop", "billing")
        .insert("", "")
        .insert("bin", vec![0u8, 0xFF, 0x80])
        .insert("名前", "値");
    h
}

fn framed(format: SerializationFormat) -> Codec {
    let pipeline = PipelineConfig {
        use_magic_header: true,
        ..Default::default()
    };
    Codec::new(format, SerializationConfig::Default, pipeline).unwrap()
}

#[test]
fn headers_round_trip_in_every_format_and_compression() {
    let headers = sample_headers();
    let mut formats = structured_formats();
    formats.push(SerializationFormat::Raw);
    for format in &formats {
        for compression in compressions() {
            let codec = codec(format, &compression, Framing::V2);
            let value: Vec<u8> = b"payload".to_vec();
            let frame = codec.encode_with_headers(&value, &headers).unwrap();
            let header = FrameHeader::parse(&frame).unwrap().unwrap();
            assert_eq!(header.version(), FrameVersion::V3);
            assert_eq!(header.header_count(), 6);
            let (back, got): (Vec<u8>, Headers) = codec.decode_with_headers(&frame).unwrap();
            assert_eq!((&back, &got), (&value, &headers), "{format:?} {compression:?}");
            assert_eq!(codec.decode::<Vec<u8>>(&frame).unwrap(), value);
            // By the header alone, as a receiver without the codec reads it.
            if !matches!(format, SerializationFormat::Custom(_)) && compression == Default::default() {
                let by_header: Vec<u8> =
                    decode_frame(&frame, &SerializationFormat::Json, &DecodeLimits::new()).unwrap();
                assert_eq!(by_header, value, "{format:?}");
            }
        }
    }
}

#[cfg(feature = "json")]
#[test]
fn empty_headers_and_a_v3_codec_work_and_older_frames_have_none() {
    let codec = framed(SerializationFormat::Json);
    let frame = codec.encode_with_headers(&5u8, &Headers::new()).unwrap();
    assert_eq!(
        FrameHeader::parse(&frame).unwrap().unwrap().version(),
        FrameVersion::V3
    );
    assert_eq!(
        codec.decode_with_headers::<u8>(&frame).unwrap(),
        (5, Headers::new())
    );
    // A codec set to version 3 writes it for every value.
    let v3 = framed(SerializationFormat::Json)
        .with_frame_version(FrameVersion::V3)
        .unwrap();
    let plain = v3.encode(&6u8).unwrap();
    assert_eq!(
        FrameHeader::parse(&plain).unwrap().unwrap().version(),
        FrameVersion::V3
    );
    assert_eq!(v3.decode::<u8>(&plain).unwrap(), 6);
    // Versions 1 and 2 decode with no headers.
    let v2 = codec.encode(&7u8).unwrap();
    assert_eq!(codec.decode_with_headers::<u8>(&v2).unwrap(), (7, Headers::new()));
    let v1 = framed(SerializationFormat::Json)
        .with_frame_version(FrameVersion::V1)
        .unwrap();
    let old = v1.encode(&8u8).unwrap();
    assert_eq!(
        codec.decode_with_headers::<u8>(&old).unwrap(),
        (8, Headers::new())
    );
}

#[cfg(feature = "json")]
#[test]
fn headers_need_a_frame_that_can_hold_them() {
    let bare = Codec::new(
        SerializationFormat::Json,
        SerializationConfig::Default,
        Default::default(),
    )
    .unwrap();
    let err = bare.encode_with_headers(&1u8, &sample_headers()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let v1 = framed(SerializationFormat::Json)
        .with_frame_version(FrameVersion::V1)
        .unwrap();
    assert_eq!(
        v1.encode_with_headers(&1u8, &Headers::new()).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    // A name longer than its 16-bit length field.
    let long = Headers::from([("n".repeat(70_000), "v")]);
    let err = framed(SerializationFormat::Json)
        .encode_with_headers(&1u8, &long)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
}

#[cfg(feature = "msgpack")]
#[test]
fn every_cut_and_every_bit_flip_of_a_v3_frame_is_an_error() {
    let codec = framed(SerializationFormat::MessagePack);
    let frame = codec
        .encode_with_headers(&("value", 42u32), &sample_headers())
        .unwrap();
    for cut in 0..frame.len() {
        let r = codec.decode_with_headers::<(String, u32)>(&frame[..cut]);
        assert!(r.is_err(), "cut at {cut} of {}", frame.len());
    }
    for byte in 0..frame.len() {
        for bit in 0..8 {
            let mut bad = frame.to_vec();
            bad[byte] ^= 1 << bit;
            let r = codec.decode_with_headers::<(String, u32)>(&bad);
            assert!(r.is_err(), "bit {bit} of byte {byte} flipped: {r:?}");
        }
    }
}

/// A version 3 frame of `payload` (raw) with a hand-made headers `section` and a correct
/// checksum: malformed sections reach the section parser.
fn handmade(section: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = b"TMQ\x03\x04\x00".to_vec();
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&(section.len() as u32).to_le_bytes());
    f.extend_from_slice(section);
    let mut h = crc32fast::Hasher::new();
    h.update(&f);
    h.update(payload);
    f.extend_from_slice(&h.finalize().to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn entry(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut e = (name.len() as u16).to_le_bytes().to_vec();
    e.extend_from_slice(name);
    e.extend_from_slice(&(value.len() as u32).to_le_bytes());
    e.extend_from_slice(value);
    e
}

#[test]
fn malformed_header_sections_are_invalid_headers() {
    let codec = framed(SerializationFormat::Raw);
    // Well formed, by hand: the parser agrees with the writer.
    let mut ok = 2u32.to_le_bytes().to_vec();
    ok.extend(entry(b"a", b"1"));
    ok.extend(entry(b"b", b""));
    let (v, h) = codec
        .decode_with_headers::<Vec<u8>>(&handmade(&ok, b"3"))
        .unwrap();
    assert_eq!((v, h), (b"3".to_vec(), Headers::from([("a", "1"), ("b", "")])));

    let mut wrong_count = 3u32.to_le_bytes().to_vec();
    wrong_count.extend(entry(b"a", b"1"));
    let mut past_end = 1u32.to_le_bytes().to_vec();
    past_end.extend_from_slice(&5u16.to_le_bytes());
    past_end.extend_from_slice(b"ab");
    let mut huge_value = 1u32.to_le_bytes().to_vec();
    huge_value.extend_from_slice(&1u16.to_le_bytes());
    huge_value.push(b'a');
    huge_value.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut not_utf8 = 1u32.to_le_bytes().to_vec();
    not_utf8.extend(entry(&[0xC3, 0x28], b"v"));
    let mut huge_count = u32::MAX.to_le_bytes().to_vec();
    huge_count.extend(entry(b"a", b"1"));
    for (what, section) in [
        ("count too high", wrong_count),
        ("name past the end", past_end),
        ("value length past the end", huge_value),
        ("name not UTF-8", not_utf8),
        ("count of 4 billion", huge_count),
        ("no count", vec![1, 0]),
    ] {
        let frame = handmade(&section, b"3");
        let err = codec.decode_with_headers::<u8>(&frame).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidHeaders, "{what}: {err}");
        // The frame is wrong whether or not the headers are asked for.
        assert_eq!(
            codec.decode::<u8>(&frame).unwrap_err().kind(),
            ErrorKind::InvalidHeaders,
            "{what}"
        );
        assert_eq!(
            FrameHeader::parse(&frame).unwrap_err().kind(),
            ErrorKind::InvalidHeaders,
            "{what}"
        );
    }
    // A section length past the frame's end.
    let mut frame = handmade(&ok, b"3");
    frame[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        codec.decode::<u8>(&frame).unwrap_err().kind(),
        ErrorKind::Truncated
    );
}

proptest! {
    #[test]
    fn any_headers_round_trip(pairs in proptest::collection::vec((".{0,12}", proptest::collection::vec(any::<u8>(), 0..40)), 0..12)) {
        let headers: Headers = pairs.clone().into_iter().collect();
        // Raw: in every build, whatever its features.
        let codec = framed(SerializationFormat::Raw);
        let value = vec![pairs.len() as u8];
        let frame = codec.encode_with_headers(&value, &headers).unwrap();
        let (n, back): (Vec<u8>, Headers) = codec.decode_with_headers(&frame).unwrap();
        prop_assert_eq!(n, value);
        prop_assert_eq!(back.len(), pairs.len());
        for ((name, value), (n2, v2)) in pairs.iter().zip(back.iter()) {
            prop_assert_eq!(name.as_str(), n2);
            prop_assert_eq!(&value[..], &v2[..]);
        }
    }

    #[test]
    fn any_bytes_after_a_v3_prefix_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = b"TMQ\x03\x01\x00".to_vec();
        frame.extend_from_slice(&tail);
        let _ = framed(SerializationFormat::Raw).decode_with_headers::<Vec<u8>>(&frame);
        let _ = FrameHeader::parse(&frame);
    }
}
