//! Pre- and post-processors run on encode and, in reverse order, on decode.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{compressions, structured_formats, Framing, FRAMINGS};
use memq_codec::{
    ByteProcessor, Codec, CodecError, CompressionConfig, DecodeLimits, ErrorKind, FrameVersion,
    NoopProcessor, PipelineConfig, ProcessorPair, SerializationConfig, SerializationFormat,
};

fn xor(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    Ok(data.iter().map(|b| b ^ 0x55).collect())
}

fn reverse(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    Ok(data.iter().rev().copied().collect())
}

/// Prefixes a marker on encode and checks and strips it on decode, so a processor applied in
/// the wrong place or order is caught.
fn tag(marker: u8) -> ProcessorPair {
    ProcessorPair::new(
        move |data: &[u8]| {
            let mut out = vec![marker];
            out.extend_from_slice(data);
            Ok(out)
        },
        move |data: &[u8]| match data.split_first() {
            Some((&first, rest)) if first == marker => Ok(rest.to_vec()),
            _ => Err(CodecError::new(
                ErrorKind::Processor,
                format!("marker {marker} missing"),
            )),
        },
    )
}

fn codec_with(
    format: &SerializationFormat,
    compression: &CompressionConfig,
    framing: Framing,
    pre: Option<ProcessorPair>,
    post: Option<ProcessorPair>,
) -> Codec {
    let pipeline = PipelineConfig {
        compression: compression.clone(),
        pre,
        post,
        use_magic_header: framing != Framing::Bare,
    };
    let codec = Codec::new(format.clone(), SerializationConfig::Default, pipeline).unwrap();
    if framing == Framing::V1 {
        codec.with_frame_version(FrameVersion::V1).unwrap()
    } else {
        codec
    }
}

#[test]
fn processors_round_trip_with_every_format_compression_and_framing() {
    let value = (String::from("processed"), vec![1u32, 2, 3], Some(-5i64));
    let bytes = b"processed \x00\xff bytes".to_vec();
    let mut formats = structured_formats();
    formats.push(SerializationFormat::Raw);
    let mut count = 0;
    for format in &formats {
        for compression in compressions() {
            for framing in FRAMINGS {
                if framing == Framing::V1 && *format == SerializationFormat::Raw {
                    continue;
                }
                let codec = codec_with(format, &compression, framing, Some(tag(1)), Some(tag(2)));
                if *format == SerializationFormat::Raw {
                    let encoded = codec.encode(&bytes).unwrap();
                    assert_eq!(codec.decode::<Vec<u8>>(&encoded).unwrap(), bytes, "{codec:?}");
                } else {
                    let encoded = codec.encode(&value).unwrap();
                    let decoded: (String, Vec<u32>, Option<i64>) = codec.decode(&encoded).unwrap();
                    assert_eq!(decoded, value, "{codec:?}");
                }
                count += 1;
            }
        }
    }
    assert_eq!(count, compressions().len() * (3 * formats.len() - 1));
}

#[test]
fn encode_runs_serialize_pre_compress_post_header_and_decode_undoes_it() {
    let format = SerializationFormat::Raw;
    let pre = ProcessorPair::new(xor, xor);
    let post = ProcessorPair::new(reverse, reverse);
    let codec = codec_with(
        &format,
        &CompressionConfig::None,
        Framing::V2,
        Some(pre),
        Some(post),
    );
    let frame = codec.encode(&b"abc"[..]).unwrap();
    // post(pre(b"abc")) = reverse(xor(b"abc"))
    let expected: Vec<u8> = b"abc".iter().map(|b| b ^ 0x55).rev().collect();
    assert_eq!(&frame[14..], &expected[..]);
    assert_eq!(codec.decode::<Vec<u8>>(&frame).unwrap(), b"abc");
}

#[cfg(feature = "gzip")]
#[test]
fn pre_runs_before_compression_and_post_after_it() {
    let format = SerializationFormat::Raw;
    let post_only = codec_with(
        &format,
        &CompressionConfig::Gzip { level: Some(6) },
        Framing::Bare,
        None,
        Some(tag(9)),
    );
    let encoded = post_only.encode(&b"zzzzzzzz"[..]).unwrap();
    // The marker is outside the gzip stream, which follows it.
    assert_eq!(encoded[0], 9);
    assert_eq!(&encoded[1..3], &[0x1f, 0x8b]);

    let pre_only = codec_with(
        &format,
        &CompressionConfig::Gzip { level: Some(6) },
        Framing::Bare,
        Some(tag(9)),
        None,
    );
    let encoded = pre_only.encode(&b"zzzzzzzz"[..]).unwrap();
    // The marker is inside: the output is a gzip stream.
    assert_eq!(&encoded[..2], &[0x1f, 0x8b]);
    assert_eq!(pre_only.decode::<Vec<u8>>(&encoded).unwrap(), b"zzzzzzzz");
}

#[test]
fn a_failing_processor_fails_decode_with_its_own_error() {
    let codec = codec_with(
        &SerializationFormat::Raw,
        &CompressionConfig::None,
        Framing::Bare,
        Some(tag(1)),
        None,
    );
    let err = codec.decode::<Vec<u8>>(b"no marker").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Processor);
    assert_eq!(err.to_string(), "processor failed: marker 1 missing");
}

#[test]
fn processor_output_is_held_to_the_decode_limit() {
    let expand = |data: &[u8]| Ok(data.repeat(100));
    let codec = codec_with(
        &SerializationFormat::Raw,
        &CompressionConfig::None,
        Framing::Bare,
        Some(ProcessorPair::new(NoopProcessor, expand)),
        None,
    )
    .with_limits(DecodeLimits::new().with_max_decoded_size(1000));
    assert_eq!(codec.decode::<Vec<u8>>(&[7; 10]).unwrap().len(), 1000);
    assert_eq!(
        codec.decode::<Vec<u8>>(&[7; 11]).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
}

#[test]
fn each_processor_runs_once_per_encode_and_once_per_decode() {
    #[derive(Default)]
    struct Counted(AtomicUsize);
    impl ByteProcessor for Counted {
        fn process(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(data.to_vec())
        }
    }
    let (pre_enc, pre_dec, post_enc, post_dec) = (
        Arc::new(Counted::default()),
        Arc::new(Counted::default()),
        Arc::new(Counted::default()),
        Arc::new(Counted::default()),
    );
    let pipeline = PipelineConfig {
        compression: CompressionConfig::None,
        pre: Some(ProcessorPair {
            encode: pre_enc.clone(),
            decode: pre_dec.clone(),
        }),
        post: Some(ProcessorPair {
            encode: post_enc.clone(),
            decode: post_dec.clone(),
        }),
        use_magic_header: true,
    };
    let codec = Codec::new(SerializationFormat::Raw, SerializationConfig::Default, pipeline).unwrap();
    let frame = codec.encode("x").unwrap();
    assert_eq!(codec.decode::<String>(&frame).unwrap(), "x");
    let counts: Vec<usize> = [&pre_enc, &pre_dec, &post_enc, &post_dec]
        .iter()
        .map(|c| c.0.load(Ordering::SeqCst))
        .collect();
    assert_eq!(counts, [1, 1, 1, 1]);
}
