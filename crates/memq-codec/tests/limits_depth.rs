//! Deeply nested input is refused with a typed error, never a stack overflow: every serde
//! format decodes through the depth limit of `DecodeLimits::max_depth`.
//!
//! The hostile inputs are the ones from the bug report: 100,000 bytes of a recursive bincode
//! enum (which overflowed a 2 MiB stack and aborted the process) and 20,000 levels of
//! MessagePack enum variants (which rmp-serde's depth limit does not count, and which aborted
//! too). Each decode runs on a fresh thread with a 2 MiB stack, the default for spawned
//! threads, and must finish within a minute.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use memq_codec::{
    Codec, CodecError, DecodeLimits, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat,
};
use serde::{Deserialize, Serialize};

/// The recursive type of the bug report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

/// A tree of `nodes` nested `Node`s around a `Leaf`: `nodes + 1` levels.
fn tree(nodes: usize) -> Tree {
    let mut tree = Tree::Leaf;
    for _ in 0..nodes {
        tree = Tree::Node(Box::new(tree));
    }
    tree
}

/// How many `Node`s deep `tree` is.
fn nodes(mut tree: &Tree) -> usize {
    let mut n = 0;
    while let Tree::Node(inner) = tree {
        n += 1;
        tree = inner;
    }
    n
}

/// The default limit, in levels.
const LIMIT: usize = DecodeLimits::DEFAULT_MAX_DEPTH;

/// Runs `f` on a new thread with a 2 MiB stack and returns its result. A stack overflow in `f`
/// aborts the whole test process; a panic is passed on; so is taking over a minute.
fn on_2_mib_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("2-mib-stack".into())
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => {
            handle.join().unwrap();
            out
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(handle.join().unwrap_err()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("decoding took over a minute"),
    }
}

/// A bare codec for `format` with `limits`.
fn codec(format: SerializationFormat, limits: DecodeLimits) -> Codec {
    Codec::new(format, SerializationConfig::Default, PipelineConfig::default())
        .unwrap()
        .with_limits(limits)
}

/// Decodes `bytes` as a `T` in `format` with `limits`, on a 2 MiB stack.
fn decode_small_stack<T>(
    format: SerializationFormat,
    limits: DecodeLimits,
    bytes: Vec<u8>,
) -> Result<T, CodecError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    on_2_mib_stack(move || codec(format, limits).decode::<T>(&bytes))
}

/// Checks that `result` is the depth error for `max_depth`.
#[track_caller]
fn assert_too_deep<T: std::fmt::Debug>(result: Result<T, CodecError>, max_depth: usize) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooDeep, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("nesting deeper than {max_depth} levels: ")),
        "{message}"
    );
}

/// `Tree`'s encoding in each format, built by hand so that hostile depths need no recursive
/// serializer (`encodings_match_the_formats` checks them against the real one).
#[cfg(feature = "bincode")]
fn bincode_tree(nodes: usize) -> Vec<u8> {
    // Variant indexes as varints: `Node` is 1, `Leaf` 0.
    let mut bytes = vec![1u8; nodes];
    bytes.push(0);
    bytes
}

#[cfg(feature = "msgpack")]
fn msgpack_tree(nodes: usize) -> Vec<u8> {
    // `Node(x)` is the one-entry map {"Node": x}; `Leaf` is the string "Leaf".
    let mut bytes = b"\x81\xa4Node".repeat(nodes);
    bytes.extend_from_slice(b"\xa4Leaf");
    bytes
}

#[cfg(feature = "json")]
fn json_tree(nodes: usize) -> Vec<u8> {
    let mut bytes = br#"{"Node":"#.repeat(nodes);
    bytes.extend_from_slice(br#""Leaf""#);
    bytes.extend_from_slice(&b"}".repeat(nodes));
    bytes
}

/// `arrays` nested JSON arrays around a `0`.
#[cfg(feature = "json")]
fn json_arrays(arrays: usize) -> Vec<u8> {
    let mut bytes = b"[".repeat(arrays);
    bytes.push(b'0');
    bytes.extend_from_slice(&b"]".repeat(arrays));
    bytes
}

/// `arrays` nested one-element MessagePack arrays around a `0`.
#[cfg(feature = "msgpack")]
fn msgpack_arrays(arrays: usize) -> Vec<u8> {
    let mut bytes = vec![0x91; arrays];
    bytes.push(0);
    bytes
}

/// A hand-built `Tree` encoder: the encoding of `tree(n)`.
type Encoder = fn(usize) -> Vec<u8>;

/// Every serde format with its hand-built `Tree` encoder.
fn tree_formats() -> Vec<(SerializationFormat, Encoder)> {
    vec![
        #[cfg(feature = "bincode")]
        (SerializationFormat::Bincode, bincode_tree as Encoder),
        #[cfg(feature = "json")]
        (SerializationFormat::Json, json_tree as Encoder),
        #[cfg(feature = "msgpack")]
        (SerializationFormat::MessagePack, msgpack_tree as Encoder),
    ]
}

#[test]
fn encodings_match_the_formats() {
    let formats = tree_formats();
    assert_eq!(formats.len(), common::serde_formats().len());
    for (format, encode) in formats {
        let codec = codec(format.clone(), DecodeLimits::default());
        for n in [0, 1, 3] {
            assert_eq!(codec.encode(&tree(n)).unwrap()[..], encode(n)[..], "{format} {n}");
        }
    }
}

#[test]
fn the_default_limit_is_128_levels() {
    assert_eq!(LIMIT, 128);
    assert_eq!(DecodeLimits::new().max_depth(), 128);
    assert_eq!(DecodeLimits::unlimited().max_depth(), usize::MAX);
    // Setting one limit keeps the other.
    let limits = DecodeLimits::new().with_max_depth(7).with_max_decoded_size(9);
    assert_eq!((limits.max_depth(), limits.max_decoded_size()), (7, 9));
    assert_eq!(ErrorKind::TooDeep.as_str(), "too deep");
}

#[cfg(any(feature = "bincode", feature = "json", feature = "msgpack"))]
mod hostile {
    //! The inputs of the bug report, on a 2 MiB stack.

    use super::*;

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_100_000_bytes_of_nested_variants_are_too_deep() {
        // 99,999 `Node`s and an invalid variant index at the end.
        let mut bytes = vec![1u8; 99_999];
        bytes.push(5);
        assert_eq!(bytes.len(), 100_000);
        assert_too_deep(
            decode_small_stack::<Tree>(SerializationFormat::Bincode, DecodeLimits::default(), bytes),
            LIMIT,
        );
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_100_000_bytes_of_nested_options_are_too_deep() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Chain {
            next: Option<Box<Chain>>,
        }
        // Every byte is one more `Some`.
        let bytes = vec![1u8; 100_000];
        assert_too_deep(
            decode_small_stack::<Chain>(SerializationFormat::Bincode, DecodeLimits::default(), bytes),
            LIMIT,
        );
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_20_000_levels_of_enum_variants_are_too_deep() {
        let bytes = msgpack_tree(20_000);
        assert!(bytes.len() > 120_000);
        assert_too_deep(
            decode_small_stack::<Tree>(SerializationFormat::MessagePack, DecodeLimits::default(), bytes),
            LIMIT,
        );
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_100_000_nested_arrays_are_too_deep() {
        let bytes = msgpack_arrays(100_000);
        assert_too_deep(
            decode_small_stack::<serde_json::Value>(
                SerializationFormat::MessagePack,
                DecodeLimits::default(),
                bytes,
            ),
            LIMIT,
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_100_000_nested_arrays_are_too_deep() {
        let bytes = b"[".repeat(100_000);
        assert_too_deep(
            decode_small_stack::<serde_json::Value>(
                SerializationFormat::Json,
                DecodeLimits::default(),
                bytes,
            ),
            LIMIT,
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_20_000_levels_of_enum_variants_are_too_deep() {
        let bytes = json_tree(20_000);
        assert_too_deep(
            decode_small_stack::<Tree>(SerializationFormat::Json, DecodeLimits::default(), bytes),
            LIMIT,
        );
    }

    #[cfg(all(feature = "bincode", feature = "json", feature = "msgpack"))]
    #[test]
    fn framed_hostile_input_is_too_deep_through_decode_frame() {
        // A version 2 frame (length and checksum correct) around the bincode bomb, read by a
        // receiver that only knows what the header says.
        let mut payload = vec![1u8; 99_999];
        payload.push(5);
        let mut frame = b"TMQ\x02\x00\x00".to_vec();
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&frame);
        crc.update(&payload);
        frame.extend_from_slice(&crc.finalize().to_le_bytes());
        frame.extend_from_slice(&payload);
        let result = on_2_mib_stack(move || {
            memq_codec::decode_frame::<Tree>(&frame, &SerializationFormat::Json, &DecodeLimits::default())
        });
        assert_too_deep(result, LIMIT);
    }
}

mod at_the_limit {
    //! The deepest accepted value decodes, on a 2 MiB stack in this (unoptimized) build; one
    //! level more is refused.

    use super::*;

    #[test]
    fn a_tree_127_nodes_deep_decodes_and_128_do_not() {
        for (format, encode) in tree_formats() {
            // 127 `Node`s and the `Leaf`: 128 levels.
            let back = decode_small_stack::<Tree>(format.clone(), DecodeLimits::default(), encode(LIMIT - 1))
                .unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(nodes(&back), LIMIT - 1, "{format}");
            assert_eq!(back, tree(LIMIT - 1));
            assert_too_deep(
                decode_small_stack::<Tree>(format, DecodeLimits::default(), encode(LIMIT)),
                LIMIT,
            );
        }
    }

    /// 127 nested arrays decode and 128 do not, as serde_json alone would have it.
    #[cfg(feature = "json")]
    #[test]
    fn json_127_nested_arrays_decode_and_128_do_not() {
        let value: serde_json::Value = decode_small_stack(
            SerializationFormat::Json,
            DecodeLimits::default(),
            json_arrays(LIMIT - 1),
        )
        .unwrap();
        assert_eq!(serde_json::to_vec(&value).unwrap(), json_arrays(LIMIT - 1));
        assert_too_deep(
            decode_small_stack::<serde_json::Value>(
                SerializationFormat::Json,
                DecodeLimits::default(),
                json_arrays(LIMIT),
            ),
            LIMIT,
        );
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_127_nested_arrays_decode_and_128_do_not() {
        let value: serde_json::Value = decode_small_stack(
            SerializationFormat::MessagePack,
            DecodeLimits::default(),
            msgpack_arrays(LIMIT - 1),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_vec(&value).unwrap(),
            b"[".repeat(LIMIT - 1)
                .into_iter()
                .chain(*b"0")
                .chain(b"]".repeat(LIMIT - 1))
                .collect::<Vec<u8>>()
        );
        assert_too_deep(
            decode_small_stack::<serde_json::Value>(
                SerializationFormat::MessagePack,
                DecodeLimits::default(),
                msgpack_arrays(LIMIT),
            ),
            LIMIT,
        );
    }

    /// Struct variants, options and tuples take their levels too, and the deepest value of
    /// such a type still fits the stack.
    #[test]
    fn struct_variants_and_options_take_their_levels() {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        enum Expr {
            Num(i64),
            Neg {
                inner: Option<Box<Expr>>,
                tag: (u8, String),
            },
        }
        fn expr(negs: usize) -> Expr {
            let mut e = Expr::Num(-3);
            for i in 0..negs {
                e = Expr::Neg {
                    inner: Some(Box::new(e)),
                    tag: (i as u8, "x".into()),
                };
            }
            e
        }
        // Each `Neg` takes three levels: the enum is on level d, its fields on d + 2 (below
        // the variant's data, then below the struct of fields), and the next `Expr`, inside
        // the `Some`, on d + 3. With 42 `Neg`s the innermost `Num` is on level 127 and its
        // `i64` on 128.
        for format in common::serde_formats() {
            let c = codec(format.clone(), DecodeLimits::default());
            let ok = c.encode(&expr(42)).unwrap();
            let back =
                on_2_mib_stack(move || codec(format.clone(), DecodeLimits::default()).decode::<Expr>(&ok));
            assert_eq!(back.unwrap(), expr(42));
            let too_deep = c.encode(&expr(43)).unwrap().to_vec();
            assert_too_deep(
                decode_small_stack::<Expr>(c.format().clone(), DecodeLimits::default(), too_deep),
                LIMIT,
            );
        }
    }
}

mod custom_limit {
    //! A lower `max_depth` is honoured in every format; a higher one too, up to serde_json's
    //! own fixed limit.

    use super::*;

    #[test]
    fn a_lower_limit_is_honoured() {
        for (format, encode) in tree_formats() {
            for max in [2, 10, 64] {
                let limits = DecodeLimits::new().with_max_depth(max);
                let back = codec(format.clone(), limits)
                    .decode::<Tree>(&encode(max - 1))
                    .unwrap();
                assert_eq!(nodes(&back), max - 1, "{format} {max}");
                assert_too_deep(codec(format.clone(), limits).decode::<Tree>(&encode(max)), max);
            }
        }
    }

    #[test]
    fn a_limit_of_one_or_zero_allows_only_a_scalar() {
        for format in common::serde_formats() {
            for max in [0, 1] {
                let c = codec(format.clone(), DecodeLimits::new().with_max_depth(max));
                let scalar = c.encode(&5u32).unwrap();
                assert_eq!(c.decode::<u32>(&scalar).unwrap(), 5, "{format}");
                // A unit variant is a scalar too; a variant with data is not.
                assert_eq!(
                    c.decode::<Tree>(&c.encode(&tree(0)).unwrap()).unwrap(),
                    Tree::Leaf
                );
                assert_too_deep(c.decode::<Tree>(&c.encode(&tree(1)).unwrap()), max);
                // Even an empty sequence opens a level.
                assert_too_deep(c.decode::<Vec<u8>>(&c.encode(&Vec::<u8>::new()).unwrap()), max);
            }
        }
    }

    #[test]
    fn a_higher_limit_is_honoured_where_the_stack_allows() {
        // 500 levels still fit a 2 MiB stack in an unoptimized build.
        let limits = DecodeLimits::new().with_max_depth(501);
        for (format, encode) in tree_formats() {
            let result = on_2_mib_stack({
                let format = format.clone();
                move || codec(format, limits).decode::<Tree>(&encode(500))
            });
            if format == SerializationFormat::Json {
                // serde_json's own limit stays on, and reads as the same error.
                assert_too_deep(result, LIMIT);
            } else {
                assert_eq!(nodes(&result.unwrap()), 500, "{format}");
            }
        }
    }

    #[test]
    fn the_limit_applies_to_frames_and_decode_frame() {
        use memq_codec::{decode_frame, FrameVersion};
        let limits = DecodeLimits::new().with_max_depth(8);
        let framed = PipelineConfig {
            use_magic_header: true,
            ..Default::default()
        };
        for format in common::serde_formats() {
            for version in [FrameVersion::V1, FrameVersion::V2] {
                let c = Codec::new(format.clone(), SerializationConfig::Default, framed.clone())
                    .unwrap()
                    .with_frame_version(version)
                    .unwrap()
                    .with_limits(limits);
                let ok = c.encode(&tree(7)).unwrap();
                let deep = c.encode(&tree(8)).unwrap();
                assert_eq!(c.decode::<Tree>(&ok).unwrap(), tree(7));
                assert_too_deep(c.decode::<Tree>(&deep), 8);
                let fallback = SerializationFormat::Json;
                assert_eq!(decode_frame::<Tree>(&ok, &fallback, &limits).unwrap(), tree(7));
                assert_too_deep(decode_frame::<Tree>(&deep, &fallback, &limits), 8);
            }
        }
    }
}

#[cfg(feature = "bincode")]
mod custom_format {
    //! A custom format's deserializer is read through the limit too: the format below is
    //! plain bincode, which has no limit of its own.

    use std::sync::Arc;

    use bincode::Options;
    use memq_codec::{CustomFormat, ErasedValue, ValueSink};

    use super::*;

    #[derive(Debug)]
    struct PlainBincode {
        /// Whether the format wraps the sink's error in one of its own.
        rewrap: bool,
    }

    impl CustomFormat for PlainBincode {
        fn name(&self) -> &str {
            "plain-bincode"
        }

        fn serialize(
            &self,
            value: &ErasedValue<'_>,
            _: &SerializationConfig,
            out: &mut Vec<u8>,
        ) -> Result<(), CodecError> {
            bincode::DefaultOptions::new()
                .serialize_into(out, value)
                .map_err(|e| CodecError::new(ErrorKind::Serialize, e))
        }

        fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError> {
            let mut de = bincode::Deserializer::from_slice(bytes, bincode::DefaultOptions::new());
            let result = sink.deserialize(&mut de);
            if self.rewrap {
                result.map_err(|e| CodecError::new(ErrorKind::Deserialize, e.to_string()))
            } else {
                result
            }
        }
    }

    fn custom_codec(rewrap: bool, limits: DecodeLimits) -> Codec {
        Codec::custom(
            Arc::new(PlainBincode { rewrap }),
            SerializationConfig::Default,
            PipelineConfig::default(),
        )
        .unwrap()
        .with_limits(limits)
    }

    #[test]
    fn hostile_input_through_a_custom_format_is_too_deep() {
        for rewrap in [false, true] {
            let mut bytes = vec![1u8; 99_999];
            bytes.push(5);
            let result =
                on_2_mib_stack(move || custom_codec(rewrap, DecodeLimits::default()).decode::<Tree>(&bytes));
            assert_too_deep(result, LIMIT);
        }
    }

    #[test]
    fn a_custom_format_decodes_up_to_the_limit() {
        for max in [5, LIMIT] {
            let limits = DecodeLimits::new().with_max_depth(max);
            let ok = bincode_tree(max - 1);
            let back = on_2_mib_stack(move || custom_codec(false, limits).decode::<Tree>(&ok)).unwrap();
            assert_eq!(nodes(&back), max - 1);
            assert_too_deep(
                custom_codec(false, limits).decode::<Tree>(&bincode_tree(max)),
                max,
            );
        }
    }
}

mod any_input {
    //! Whatever the bytes, decoding a recursive type returns a value or an error: random
    //! bytes biased towards the ones that nest, and every prefix of deep valid input.

    use proptest::prelude::*;

    use super::*;

    /// Decodes `bytes` as a `Tree` and as a generic value in every serde format, and checks
    /// that whatever comes back is within the limit.
    fn decode_everything(bytes: &[u8], limits: DecodeLimits) {
        for format in common::serde_formats() {
            let c = codec(format, limits);
            if let Ok(tree) = c.decode::<Tree>(bytes) {
                assert!(nodes(&tree) < limits.max_depth().max(1));
            }
            if c.format() != &SerializationFormat::Bincode {
                let _ = c.decode::<serde_json::Value>(bytes);
            }
        }
    }

    /// Bytes that open levels in one format or another, and some that end them.
    fn nesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(vec![0x00, 0x01, 0x81, 0x91, 0xa4, b'[', b'{', b'"', b':']),
            1 => any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(nesting_byte(), 0..4096)) {
            on_2_mib_stack(move || decode_everything(&bytes, DecodeLimits::default()));
        }

        #[test]
        fn repeated_nesting_bytes_never_panic(
            unit in prop::collection::vec(nesting_byte(), 1..8),
            times in 0usize..20_000,
            tail in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = unit.repeat(times);
            bytes.truncate(100_000);
            bytes.extend_from_slice(&tail);
            on_2_mib_stack(move || decode_everything(&bytes, DecodeLimits::default()));
        }
    }

    #[test]
    fn every_prefix_of_deep_input_is_an_error() {
        for (format, encode) in tree_formats() {
            for n in [LIMIT - 1, LIMIT, 3 * LIMIT] {
                let bytes = encode(n);
                let format = format.clone();
                on_2_mib_stack(move || {
                    let c = codec(format.clone(), DecodeLimits::default());
                    for len in 0..bytes.len() {
                        let err = c.decode::<Tree>(&bytes[..len]).unwrap_err();
                        assert!(
                            matches!(err.kind(), ErrorKind::Deserialize | ErrorKind::TooDeep),
                            "{format} {n} {len}: {err}"
                        );
                    }
                    let whole = c.decode::<Tree>(&bytes);
                    assert_eq!(whole.is_ok(), n < LIMIT, "{format} {n}");
                });
            }
        }
    }
}
