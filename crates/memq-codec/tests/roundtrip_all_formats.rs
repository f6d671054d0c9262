//! Every format × compression × framing round-trips many values exactly, and the decode limit
//! sits exactly at the decoded size.

mod common;

use common::{codec, compressions, structured_formats, Framing, FRAMINGS};
use memq_codec::{Codec, CompressionConfig, DecodeLimits, ErrorKind, SerializationFormat};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// A value exercising the serde data model: integers of every width and sign, floats,
/// strings, bytes, options, sequences, maps, tuples and enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    delta: i32,
    small: i8,
    ratio: f64,
    name: String,
    tags: Vec<String>,
    blob: Vec<u8>,
    maybe: Option<u16>,
    pair: (bool, char),
    kind: Kind,
    attributes: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Empty,
    Count(u32),
    Point { x: i64, y: i64 },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Empty),
        any::<u32>().prop_map(Kind::Count),
        (any::<i64>(), any::<i64>()).prop_map(|(x, y)| Kind::Point { x, y }),
    ]
}

/// Byte payloads of the shapes that matter to compression: empty, tiny, incompressible
/// (random) and highly compressible (one byte repeated, or a short pattern repeated).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 1..8),
        proptest::collection::vec(any::<u8>(), 256..2048),
        (any::<u8>(), 1usize..32768).prop_map(|(byte, len)| vec![byte; len]),
        (proptest::collection::vec(any::<u8>(), 1..16), 1usize..1024)
            .prop_map(|(pattern, times)| pattern.repeat(times)),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        (
            any::<u64>(),
            any::<i32>(),
            any::<i8>(),
            any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()),
        ),
        (
            ".{0,40}",
            proptest::collection::vec("[a-z]{0,6}", 0..5),
            payload(),
        ),
        (any::<Option<u16>>(), any::<(bool, char)>(), kind()),
        proptest::collection::btree_map("[a-z]{1,4}", any::<i64>(), 0..4),
    )
        .prop_map(
            |((id, delta, small, ratio), (name, tags, blob), (maybe, pair, kind), attributes)| Record {
                id,
                delta,
                small,
                ratio,
                name,
                tags,
                blob,
                maybe,
                pair,
                kind,
                attributes,
            },
        )
}

fn all_codecs(formats: &[SerializationFormat]) -> Vec<Codec> {
    let mut codecs = Vec::new();
    for format in formats {
        for compression in compressions() {
            for framing in FRAMINGS {
                if framing == Framing::V1 && *format == SerializationFormat::Raw {
                    continue;
                }
                codecs.push(codec(format, &compression, framing));
            }
        }
    }
    codecs
}

/// The size of the serialized payload (what decompression must produce).
fn serialized_len<T: Serialize>(format: &SerializationFormat, value: &T) -> usize {
    codec(format, &CompressionConfig::None, Framing::Bare)
        .encode(value)
        .unwrap()
        .len()
}

/// Decoding succeeds with the limit at exactly the serialized size, and fails with
/// `TooLarge` one byte below it.
fn check_limit_edge<T>(codec: &Codec, value: &T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let size = serialized_len(codec.format(), value);
    let encoded = codec.encode(value).unwrap();
    let at_limit = codec
        .clone()
        .with_limits(DecodeLimits::new().with_max_decoded_size(size));
    assert_eq!(&at_limit.decode::<T>(&encoded).unwrap(), value, "{codec:?}");
    if size > 0 {
        let below = codec
            .clone()
            .with_limits(DecodeLimits::new().with_max_decoded_size(size - 1));
        assert_eq!(
            below.decode::<T>(&encoded).unwrap_err().kind(),
            ErrorKind::TooLarge,
            "{codec:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip_through_every_codec(value in record()) {
        for codec in all_codecs(&structured_formats()) {
            let encoded = codec.encode(&value).unwrap();
            prop_assert_eq!(&codec.decode::<Record>(&encoded).unwrap(), &value, "{:?}", codec);
        }
    }

    #[test]
    fn byte_payloads_round_trip_through_every_codec(bytes in payload()) {
        let mut formats = structured_formats();
        formats.push(SerializationFormat::Raw);
        for codec in all_codecs(&formats) {
            let encoded = codec.encode(&bytes).unwrap();
            prop_assert_eq!(&codec.decode::<Vec<u8>>(&encoded).unwrap(), &bytes, "{:?}", codec);
        }
    }

    #[test]
    fn strings_round_trip_through_every_codec(text in ".{0,200}") {
        let mut formats = structured_formats();
        formats.push(SerializationFormat::Raw);
        for codec in all_codecs(&formats) {
            let encoded = codec.encode(&text).unwrap();
            prop_assert_eq!(&codec.decode::<String>(&encoded).unwrap(), &text, "{:?}", codec);
        }
    }

    #[test]
    fn the_limit_is_exactly_the_decoded_size(bytes in payload()) {
        let mut formats = structured_formats();
        formats.push(SerializationFormat::Raw);
        for codec in all_codecs(&formats) {
            check_limit_edge(&codec, &bytes);
        }
    }
}

#[test]
fn a_raw_frame_holds_the_bytes_unchanged() {
    let codec = codec(&SerializationFormat::Raw, &CompressionConfig::None, Framing::Bare);
    assert_eq!(
        &codec.encode(&b"TMQ\x02payload"[..]).unwrap()[..],
        b"TMQ\x02payload"
    );
    assert_eq!(&codec.encode("text").unwrap()[..], b"text");
    assert_eq!(
        &codec.encode(&bytes::Bytes::from_static(b"xy")).unwrap()[..],
        b"xy"
    );
    assert_eq!(
        codec.decode::<bytes::Bytes>(b"xyz").unwrap(),
        bytes::Bytes::from_static(b"xyz")
    );
    assert_eq!(codec.decode::<[u8; 3]>(b"abc").unwrap(), *b"abc");
    assert_eq!(codec.decode::<String>("é".as_bytes()).unwrap(), "é");
}

#[test]
fn the_raw_format_refuses_what_is_not_bytes() {
    let codec = codec(&SerializationFormat::Raw, &CompressionConfig::None, Framing::Bare);
    assert_eq!(codec.encode(&42u32).unwrap_err().kind(), ErrorKind::Serialize);
    assert_eq!(
        codec.encode(&vec![1u16, 2]).unwrap_err().kind(),
        ErrorKind::Serialize
    );
    assert_eq!(
        codec.encode(&Some(vec![1u8])).unwrap_err().kind(),
        ErrorKind::Serialize
    );
    assert_eq!(
        codec.decode::<String>(&[0xff, 0xfe]).unwrap_err().kind(),
        ErrorKind::Deserialize
    );
    assert_eq!(
        codec.decode::<u32>(b"1234").unwrap_err().kind(),
        ErrorKind::Deserialize
    );
    assert_eq!(
        codec.decode::<[u8; 2]>(b"abc").unwrap_err().kind(),
        ErrorKind::Deserialize
    );
}

#[cfg(feature = "json")]
#[test]
fn json_pretty_and_compact_read_alike() {
    use memq_codec::{JsonConfig, PipelineConfig, SerializationConfig};
    let pretty = Codec::new(
        SerializationFormat::Json,
        SerializationConfig::Json(JsonConfig { pretty: true }),
        PipelineConfig::default(),
    )
    .unwrap();
    let encoded = pretty.encode(&vec![("a", 1)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&encoded).unwrap(),
        "[\n  [\n    \"a\",\n    1\n  ]\n]"
    );
    let compact = codec(
        &SerializationFormat::Json,
        &CompressionConfig::None,
        Framing::Bare,
    );
    assert_eq!(
        compact.decode::<Vec<(String, i32)>>(&encoded).unwrap(),
        vec![("a".to_string(), 1)]
    );
}

#[cfg(feature = "msgpack")]
#[test]
fn messagepack_struct_map_is_honoured_and_both_forms_decode() {
    use memq_codec::{MessagePackConfig, PipelineConfig, SerializationConfig};
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct P {
        x: u8,
        y: u8,
    }
    let map = Codec::new(
        SerializationFormat::MessagePack,
        SerializationConfig::MessagePack(MessagePackConfig { struct_map: true }),
        PipelineConfig::default(),
    )
    .unwrap();
    let array = codec(
        &SerializationFormat::MessagePack,
        &CompressionConfig::None,
        Framing::Bare,
    );
    let as_map = map.encode(&P { x: 1, y: 2 }).unwrap();
    let as_array = array.encode(&P { x: 1, y: 2 }).unwrap();
    assert_eq!(&as_map[..], &[0x82, 0xa1, b'x', 1, 0xa1, b'y', 2]);
    assert_eq!(&as_array[..], &[0x92, 1, 2]);
    assert_eq!(array.decode::<P>(&as_map).unwrap(), P { x: 1, y: 2 });
    assert_eq!(map.decode::<P>(&as_array).unwrap(), P { x: 1, y: 2 });
}
