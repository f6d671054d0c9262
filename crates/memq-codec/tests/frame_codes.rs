//! Frame headers: unknown version, format and compression codes are distinct typed errors,
//! headers are required or ignored as the codec says, and a raw payload that begins with
//! `TMQ` is never misread as a frame.

mod common;

use common::{codec, Framing};
use memq_codec::{
    decode_frame, Codec, CompressionConfig, DecodeLimits, ErrorKind, FrameHeader, FrameVersion, HeaderMode,
    PipelineConfig, SerializationConfig, SerializationFormat,
};

/// A version 2 frame with the given codes and payload, with a correct length and checksum.
fn v2_frame(format: u8, compression: u8, name: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![b'T', b'M', b'Q', 2, format, compression];
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    if let Some(name) = name {
        frame.push(name.len() as u8);
        frame.extend_from_slice(name);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&frame);
    crc.update(payload);
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn kind_of(bytes: &[u8]) -> ErrorKind {
    let limits = DecodeLimits::default();
    let by_header = decode_frame::<Vec<u8>>(bytes, &SerializationFormat::Native, &limits)
        .unwrap_err()
        .kind();
    let parsed = FrameHeader::parse(bytes).unwrap_err().kind();
    assert_eq!(
        by_header, parsed,
        "decode_frame and FrameHeader::parse disagree on {bytes:?}"
    );
    by_header
}

#[test]
fn unknown_versions_are_refused() {
    for version in [0u8, 4, 9, 0x42, 255] {
        assert_eq!(
            kind_of(&[b'T', b'M', b'Q', version, 0, 0, 1, 2, 3]),
            ErrorKind::UnknownVersion,
            "{version}"
        );
    }
}

#[test]
fn unknown_format_codes_are_refused_in_both_versions() {
    // 3 is what 1.0.0 assigned to native values (which it never serialized); 4 (raw) exists
    // only in version 2.
    for code in [3u8, 4, 5, 17, 128, 254] {
        assert_eq!(
            kind_of(&[b'T', b'M', b'Q', 1, code, 0, b'1']),
            ErrorKind::UnknownFormat,
            "v1 {code}"
        );
    }
    for code in [3u8, 5, 17, 128, 254] {
        assert_eq!(
            kind_of(&v2_frame(code, 0, None, b"1")),
            ErrorKind::UnknownFormat,
            "v2 {code}"
        );
    }
}

#[test]
fn unknown_compression_codes_are_refused_in_both_versions() {
    for code in [3u8, 4, 9, 100, 255] {
        assert_eq!(
            kind_of(&[b'T', b'M', b'Q', 1, 1, code, b'1']),
            ErrorKind::UnknownCompression,
            "v1 {code}"
        );
        assert_eq!(
            kind_of(&v2_frame(1, code, None, b"1")),
            ErrorKind::UnknownCompression,
            "v2 {code}"
        );
    }
}

#[test]
fn custom_format_names_in_version_2_frames_are_checked() {
    assert_eq!(
        kind_of(&v2_frame(255, 0, Some(b""), b"1")),
        ErrorKind::UnknownFormat
    );
    assert_eq!(
        kind_of(&v2_frame(255, 0, Some(&[0xff, 0xfe]), b"1")),
        ErrorKind::UnknownFormat
    );
    // A well-formed name that nobody registered parses, but cannot be decoded.
    let frame = v2_frame(255, 0, Some(b"nobody-registered-this"), b"1");
    let header = FrameHeader::parse(&frame).unwrap().unwrap();
    assert_eq!(
        header.format(),
        Some(&SerializationFormat::Custom("nobody-registered-this".into()))
    );
    assert_eq!(header.header_len(), 14 + 1 + 22);
    let err = decode_frame::<u8>(&frame, &SerializationFormat::Native, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownFormat);
}

#[test]
fn a_version_1_custom_frame_needs_to_be_told_its_format() {
    let frame = [b'T', b'M', b'Q', 1, 255, 0, b'1'];
    let header = FrameHeader::parse(&frame).unwrap().unwrap();
    assert_eq!(header.format(), None);
    assert_eq!(header.version(), FrameVersion::V1);
    let err = decode_frame::<u8>(&frame, &SerializationFormat::Json, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownFormat);
}

#[test]
fn bytes_without_the_magic_are_not_a_frame() {
    for bytes in [
        &b""[..],
        b"T",
        b"TM",
        b"TMq\x01\x01\x00",
        b"{\"a\":1}",
        b"\x00\x00\x00\x00\x00\x00\x00",
    ] {
        assert_eq!(FrameHeader::parse(bytes).unwrap(), None, "{bytes:?}");
    }
    assert_eq!(
        FrameHeader::parse(b"TMQ").unwrap_err().kind(),
        ErrorKind::Truncated
    );
    assert_eq!(
        FrameHeader::parse(b"TMQ\x01\x01").unwrap_err().kind(),
        ErrorKind::Truncated
    );
    assert_eq!(
        FrameHeader::parse(b"TMQ\x02\x01\x00\x00\x00").unwrap_err().kind(),
        ErrorKind::Truncated
    );
}

#[test]
fn a_codec_with_a_header_requires_one() {
    let codec = codec(&SerializationFormat::Raw, &CompressionConfig::None, Framing::V2);
    assert_eq!(codec.header_mode(), HeaderMode::Require);
    assert_eq!(
        codec.decode::<Vec<u8>>(b"plain bytes").unwrap_err().kind(),
        ErrorKind::MissingHeader
    );
    assert_eq!(
        codec.decode::<Vec<u8>>(b"").unwrap_err().kind(),
        ErrorKind::MissingHeader
    );
}

#[test]
fn a_raw_codec_without_a_header_never_reads_one() {
    let raw = codec(&SerializationFormat::Raw, &CompressionConfig::None, Framing::Bare);
    assert_eq!(raw.header_mode(), HeaderMode::Never);
    let framed = v2_frame(1, 0, None, b"[1,2]");
    let v1 = b"TMQ\x01\x01\x00[1,2]".to_vec();
    let garbage = b"TMQ\x07 not a frame at all".to_vec();
    for bytes in [&framed, &v1, &garbage] {
        assert_eq!(&raw.decode::<Vec<u8>>(bytes).unwrap(), bytes);
        assert_eq!(&raw.encode(bytes).unwrap()[..], &bytes[..]);
        let limits = DecodeLimits::default();
        assert_eq!(
            &decode_frame::<Vec<u8>>(bytes, &SerializationFormat::Raw, &limits).unwrap(),
            bytes
        );
    }
}

#[test]
fn a_raw_frame_round_trips_and_names_its_format() {
    let framed = codec(&SerializationFormat::Raw, &CompressionConfig::None, Framing::V2);
    let frame = framed.encode(&b"TMQ inside"[..]).unwrap();
    assert_eq!(&frame[..6], b"TMQ\x02\x04\x00");
    assert_eq!(framed.decode::<Vec<u8>>(&frame).unwrap(), b"TMQ inside");
    // Any reader that looks for headers finds the raw format in it.
    let limits = DecodeLimits::default();
    assert_eq!(
        decode_frame::<Vec<u8>>(&frame, &SerializationFormat::Native, &limits).unwrap(),
        b"TMQ inside"
    );
}

#[cfg(feature = "json")]
#[test]
fn bytes_after_the_value_inside_a_version_2_frame_are_an_error() {
    let limits = DecodeLimits::default();
    let frame = v2_frame(1, 0, None, b"7 8");
    let err = decode_frame::<u8>(&frame, &SerializationFormat::Json, &limits).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TrailingBytes);
    // Whitespace after a JSON value is not extra data.
    assert_eq!(
        decode_frame::<u8>(
            &v2_frame(1, 0, None, b"7 \n"),
            &SerializationFormat::Json,
            &limits
        )
        .unwrap(),
        7
    );
    // Version 1 ignores what follows the value, as 1.0.0 did.
    assert_eq!(
        decode_frame::<u8>(b"TMQ\x01\x01\x007 8", &SerializationFormat::Json, &limits).unwrap(),
        7
    );
}

#[cfg(feature = "bincode")]
#[test]
fn bincode_trailing_bytes_in_a_version_2_frame_are_an_error() {
    let frame = v2_frame(0, 0, None, &[5, 6]);
    let err =
        decode_frame::<u8>(&frame, &SerializationFormat::Bincode, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TrailingBytes);
}

#[cfg(feature = "msgpack")]
#[test]
fn msgpack_trailing_bytes_in_a_version_2_frame_are_an_error() {
    let frame = v2_frame(2, 0, None, &[5, 6]);
    let err = decode_frame::<u8>(
        &frame,
        &SerializationFormat::MessagePack,
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TrailingBytes);
}

#[cfg(feature = "gzip")]
#[test]
fn bytes_after_a_gzip_stream_inside_a_version_2_frame_are_an_error() {
    let gz = codec(
        &SerializationFormat::Raw,
        &CompressionConfig::Gzip { level: Some(1) },
        Framing::Bare,
    )
    .encode(&b"abc"[..])
    .unwrap();
    let mut payload = gz.to_vec();
    payload.push(0);
    let err = decode_frame::<Vec<u8>>(
        &v2_frame(4, 1, None, &payload),
        &SerializationFormat::Native,
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TrailingBytes);
    assert_eq!(
        decode_frame::<Vec<u8>>(
            &v2_frame(4, 1, None, &gz),
            &SerializationFormat::Native,
            &Default::default()
        )
        .unwrap(),
        b"abc"
    );
}

/// The payload of a version 2 frame compressed with `compression` (code `code`) and `junk`
/// after its stream: the frame's decode error.
#[cfg(any(feature = "gzip", feature = "zstd"))]
fn kind_with_junk_after_stream(compression: &CompressionConfig, code: u8, junk: &[u8]) -> ErrorKind {
    let mut payload = codec(&SerializationFormat::Raw, compression, Framing::Bare)
        .encode(&b"[1,"[..])
        .unwrap()
        .to_vec();
    payload.extend_from_slice(junk);
    decode_frame::<Vec<u8>>(
        &v2_frame(4, code, None, &payload),
        &SerializationFormat::Native,
        &Default::default(),
    )
    .unwrap_err()
    .kind()
}

/// Bytes after the zstd frame, of any length, and a whole second zstd frame are trailing
/// bytes inside a version 2 frame, as they are after a gzip stream (junk after the frame was
/// reported `Truncated`, and two frames were decoded as one stream).
#[cfg(feature = "zstd")]
#[test]
fn bytes_or_a_second_frame_after_a_zstd_stream_inside_a_version_2_frame_are_an_error() {
    let zstd = CompressionConfig::Zstd { level: 1 };
    for len in [1usize, 3, 4, 8, 64] {
        assert_eq!(
            kind_with_junk_after_stream(&zstd, 2, &vec![0x5A; len]),
            ErrorKind::TrailingBytes,
            "{len} bytes of junk"
        );
    }
    let second = codec(&SerializationFormat::Raw, &zstd, Framing::Bare)
        .encode(&b"2]"[..])
        .unwrap();
    assert_eq!(
        kind_with_junk_after_stream(&zstd, 2, &second),
        ErrorKind::TrailingBytes
    );
    // Cut short, it is still `Truncated`.
    let whole = codec(&SerializationFormat::Raw, &zstd, Framing::Bare)
        .encode(&b"abc"[..])
        .unwrap();
    let err = decode_frame::<Vec<u8>>(
        &v2_frame(4, 2, None, &whole[..whole.len() - 1]),
        &SerializationFormat::Native,
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated);
}

#[cfg(feature = "gzip")]
#[test]
fn a_second_gzip_member_inside_a_version_2_frame_is_an_error() {
    let gzip = CompressionConfig::Gzip { level: Some(1) };
    let second = codec(&SerializationFormat::Raw, &gzip, Framing::Bare)
        .encode(&b"2]"[..])
        .unwrap();
    assert_eq!(
        kind_with_junk_after_stream(&gzip, 1, &second),
        ErrorKind::TrailingBytes
    );
}

#[test]
fn detect_mode_reads_frames_and_bare_payloads() {
    let reader = codec(&SerializationFormat::Raw, &CompressionConfig::None, Framing::Bare)
        .with_header_mode(HeaderMode::Detect);
    assert_eq!(reader.decode::<Vec<u8>>(b"bare").unwrap(), b"bare");
    assert_eq!(
        reader
            .decode::<Vec<u8>>(&v2_frame(4, 0, None, b"framed"))
            .unwrap(),
        b"framed"
    );
    // A bad frame is an error, not silently read as a bare payload.
    assert_eq!(
        reader.decode::<Vec<u8>>(b"TMQ\x09 oops").unwrap_err().kind(),
        ErrorKind::UnknownVersion
    );
}

#[test]
fn native_is_never_encoded() {
    let err = Codec::new(
        SerializationFormat::Native,
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedFormat);
    let err = decode_frame::<u8>(b"1", &SerializationFormat::Native, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedFormat);
}

#[test]
fn invalid_configurations_are_refused_when_the_codec_is_built() {
    let build = |format: SerializationFormat, config: SerializationConfig, compression: CompressionConfig| {
        Codec::new(
            format,
            config,
            PipelineConfig {
                compression,
                ..Default::default()
            },
        )
        .map(|_| ())
    };
    let mismatched = build(
        SerializationFormat::Raw,
        SerializationConfig::Json(memq_codec::JsonConfig { pretty: true }),
        CompressionConfig::None,
    );
    assert_eq!(mismatched.unwrap_err().kind(), ErrorKind::InvalidConfig);
    if cfg!(feature = "gzip") {
        let err = build(
            SerializationFormat::Raw,
            SerializationConfig::Default,
            CompressionConfig::Gzip { level: Some(10) },
        );
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidConfig);
    }
    if cfg!(feature = "zstd") {
        let err = build(
            SerializationFormat::Raw,
            SerializationConfig::Default,
            CompressionConfig::Zstd { level: 99 },
        );
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidConfig);
    }
    let unregistered = build(
        SerializationFormat::Custom("no-such-format".into()),
        SerializationConfig::Default,
        CompressionConfig::None,
    );
    assert_eq!(unregistered.unwrap_err().kind(), ErrorKind::UnknownFormat);
    let raw = Codec::new(
        SerializationFormat::Raw,
        SerializationConfig::Default,
        PipelineConfig {
            use_magic_header: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        raw.with_frame_version(FrameVersion::V1).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}

#[cfg(not(feature = "json"))]
#[test]
fn a_frame_in_a_disabled_format_is_unsupported() {
    let err = decode_frame::<u8>(
        b"TMQ\x01\x01\x007",
        &SerializationFormat::Native,
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedFormat);
    let err = Codec::new(
        SerializationFormat::Json,
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedFormat);
}

#[cfg(not(feature = "zstd"))]
#[test]
fn a_frame_in_a_disabled_compression_is_unsupported() {
    let err = decode_frame::<Vec<u8>>(
        &v2_frame(4, 2, None, b"x"),
        &SerializationFormat::Native,
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedCompression);
    let err = Codec::new(
        SerializationFormat::Raw,
        SerializationConfig::Default,
        PipelineConfig {
            compression: CompressionConfig::Zstd { level: 3 },
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedCompression);
}
