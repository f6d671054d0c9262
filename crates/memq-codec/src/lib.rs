//! Serialization formats, compression and framing for tokio-memq, safe on hostile input.
//!
//! `memq-codec` turns values into bytes and back: a serde format (bincode, JSON,
//! MessagePack, raw bytes, or a custom format of your own), optional gzip or zstd compression,
//! optional pre- and post-processors, and a small frame header that records format and
//! compression so a receiver can decode without being told. It reads every frame tokio-memq
//! 1.0.0 wrote, and decoding is bounded and panic-free whatever the input.
//!
//! Most users want the facade crate `tokio-memq`, which runs this codec for topics that have
//! serialization defaults (`SerializationFactory::register_topic_defaults`) and re-exports its
//! types under the 1.0.0 paths. Use this crate alone to encode and decode messages without a
//! queue: to persist them, to forward them to another system, or to read what a queue wrote.
//!
//! # Example
//!
//! Encode a value to a framed [`Bytes`] and decode it back:
//!
//! ```
//! use memq_codec::{Codec, CompressionConfig, PipelineConfig, SerializationConfig, SerializationFormat};
//!
//! #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Order { id: u64, items: Vec<String> }
//!
//! let pipeline = PipelineConfig {
//!     compression: CompressionConfig::Gzip { level: Some(6) },
//!     use_magic_header: true,
//!     ..Default::default()
//! };
//! let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, pipeline)?;
//!
//! let order = Order { id: 7, items: vec!["tea".into(), "milk".into()] };
//! let frame: bytes::Bytes = codec.encode(&order)?;
//! assert_eq!(&frame[..3], b"TMQ");
//!
//! let back: Order = codec.decode(&frame)?;
//! assert_eq!(back, order);
//!
//! // A receiver that knows nothing of the sender's settings reads the header instead.
//! let limits = memq_codec::DecodeLimits::default();
//! let again: Order = memq_codec::decode_frame(&frame, &SerializationFormat::Native, &limits)?;
//! assert_eq!(again, order);
//! # Ok::<(), memq_codec::CodecError>(())
//! ```
//!
//! # Formats
//!
//! | [`SerializationFormat`] | library | notes |
//! |---|---|---|
//! | `Bincode` | bincode 1.3, `DefaultOptions` | varint integers, little endian: byte for byte what 1.0.0 wrote |
//! | `Json` | serde_json | compact, or indented with [`JsonConfig`]`{ pretty: true }` |
//! | `MessagePack` | rmp-serde | structs as arrays, or as maps with [`MessagePackConfig`]`{ struct_map: true }`; reads both |
//! | `Raw` | none | the payload is the bytes (`Vec<u8>`, `Bytes`, `String`, ...) |
//! | `Custom(name)` | yours | a [`CustomFormat`] registered with [`SerializationFactory::register_format`] |
//!
//! # Features
//!
//! | feature | default | enables | builds C code |
//! |---|---|---|---|
//! | `bincode` | yes | the bincode format | no |
//! | `json` | yes | the JSON format | no |
//! | `msgpack` | yes | the MessagePack format | no |
//! | `gzip` | yes | gzip compression (flate2, pure-Rust backend) | no |
//! | `zstd` | yes | zstd compression (libzstd) | yes |
//!
//! With `default-features = false` the crate has the raw and custom formats and no
//! compression, and compiles no C. Each feature can be enabled alone. A format or compression
//! whose feature is off is still recognised in frame headers and reported as
//! [`UnsupportedFormat`](ErrorKind::UnsupportedFormat) /
//! [`UnsupportedCompression`](ErrorKind::UnsupportedCompression).
//!
//! # Frame format
//!
//! With [`PipelineConfig::use_magic_header`] the encoded payload is wrapped in a frame.
//!
//! ## Version 1 (written by tokio-memq 1.0.0)
//!
//! | offset | size | meaning |
//! |---:|---:|---|
//! | 0 | 3 | ASCII `TMQ` |
//! | 3 | 1 | version, `0x01` |
//! | 4 | 1 | format: `0` bincode, `1` json, `2` msgpack, `255` custom (name not recorded) |
//! | 5 | 1 | compression: `0` none, `1` gzip, `2` zstd |
//! | 6 | rest | payload, to the end of the buffer |
//!
//! Version 1 frames always decode. They have no length and no checksum, so a truncated or
//! corrupted version 1 frame is caught only if the decompressor or the deserializer notices;
//! bytes after the value are ignored, as 1.0.0 ignored them.
//!
//! ## Version 2 (written by default)
//!
//! | offset | size | meaning |
//! |---:|---:|---|
//! | 0 | 3 | ASCII `TMQ` |
//! | 3 | 1 | version, `0x02` |
//! | 4 | 1 | format: as version 1, plus `4` raw |
//! | 5 | 1 | compression: as version 1 |
//! | 6 | 4 | payload length `L`, u32 little endian |
//! | 10 | 1 + N | custom formats only (code 255): name length `N` (1 to 255), then the UTF-8 name |
//! | H - 4 | 4 | CRC-32 (IEEE, as in gzip), u32 little endian, of bytes `0..H-4` followed by the payload |
//! | H | L | payload; the frame ends exactly here |
//!
//! `H`, the header length, is 14 for the built-in formats and `15 + N` for a custom one.
//!
//! Why these fields:
//!
//! * **The length** makes truncation a certain, typed error
//!   ([`Truncated`](ErrorKind::Truncated)) instead of whatever a deserializer makes of a cut
//!   payload, and makes bytes after the frame an error ([`TrailingBytes`](ErrorKind::TrailingBytes)).
//!   Four bytes allow payloads up to 4 GiB, far above any sane decode limit.
//! * **The checksum** catches corruption before any decompressor or deserializer sees the
//!   bytes: for a reader that requires the header, every single-bit flip and every burst of
//!   up to 32 bits, anywhere in the frame, is an error
//!   ([`ChecksumMismatch`](ErrorKind::ChecksumMismatch), or a missing-header, truncation or
//!   unknown-version error for the magic, length and version bytes), never a silently
//!   different value. In one process the queue never corrupts a payload, but frames outlive
//!   the process when they are persisted or forwarded to another broker. CRC-32 (`crc32fast`,
//!   which flate2 uses anyway) costs about 10 ns per pass on a 100-byte message and runs at
//!   several GB/s on large ones.
//! * **The custom format's name** lets a receiver pick the right [`CustomFormat`]; version 1
//!   recorded only "custom".
//! * The first six bytes keep the version 1 layout, so format and compression sit at the same
//!   offsets in both versions.
//!
//! ## Version 3 (record headers)
//!
//! Version 2 with a [`Headers`] section between the custom format's name and the checksum,
//! which covers it: written by [`Codec::encode_with_headers`] (or by a codec set to
//! [`FrameVersion::V3`]), read back by [`Codec::decode_with_headers`]; `decode` and
//! [`decode_frame`] read the value and pass over the headers.
//!
//! | offset | size | meaning |
//! |---:|---:|---|
//! | 0 | 10 (+ 1 + N) | as version 2, with version byte `0x03` |
//! | S | 4 | headers section length `K`, u32 little endian |
//! | S + 4 | K | header count `C` (u32 LE), then `C` times: name length (u16 LE), UTF-8 name, value length (u32 LE), value |
//! | H - 4 | 4 | CRC-32 of bytes `0..H-4` followed by the payload |
//! | H | L | payload |
//!
//! A section whose lengths run past its end, whose count does not match what it holds, or
//! with a name that is not UTF-8 is [`InvalidHeaders`](ErrorKind::InvalidHeaders); the
//! section is checked without allocating, and header values are copied out only by
//! `decode_with_headers`.
//!
//! Inside a version 2 or 3 frame the payload must be consumed exactly: bytes left over after the
//! value are an error, since nothing legitimate writes them. Write version 1 (with
//! [`Codec::with_frame_version`]) only for a reader that is still 1.0.0.
//!
//! A codec built with `use_magic_header: true` requires a header when decoding; one built
//! without never looks for one, so a raw payload that begins with `TMQ` is never misread.
//! [`HeaderMode`] and [`decode_frame`] cover the cases in between.
//!
//! # Limits and hostile input
//!
//! Decoding never panics and never allocates more than [`DecodeLimits::max_decoded_size`]
//! (64 MiB by default) for any buffer it produces. Decompression writes into a buffer that
//! never grows past the limit and stops as soon as the output would pass it, so a 1 KiB gzip
//! or zstd bomb is refused after at most the limit's worth of output, never expanded. The
//! deserializers read from the decoded buffer and check every length field against the
//! bytes actually present before allocating: what sequences and maps reserve from declared
//! lengths is bounded by the payload's size over the whole decode, however deep they nest,
//! and a declared length of elements that cost no input (zero-sized values in bincode) is
//! refused past what the payload can back, rather than looped through (see
//! [`DecodeLimits`]).
//!
//! Nor does decoding overflow the stack. Every serde format (bincode, JSON, MessagePack and
//! custom formats) reads through an adapter that counts how deep the value nests and refuses
//! anything deeper than [`DecodeLimits::max_depth`] (128 levels by default, counted as
//! serde_json counts them) with [`TooDeep`](ErrorKind::TooDeep). This matters most for
//! bincode, which is not self-describing and nests as deep as the Rust type lets the input
//! lead it: without the limit, a hundred thousand bytes of a recursive `Box`ed enum
//! overflowed a 2 MiB stack and aborted the process. At the default limit the deepest
//! accepted value decodes on a 2 MiB stack even in an unoptimized build.
//!
//! # Defaults and precedence
//!
//! [`DefaultsRegistry`] maps topics and publishers to settings; [`SerializationFactory`] is
//! the process-wide one from 1.0.0. When a value is published, the publisher's defaults win
//! over the topic's, and with neither the queue keeps the value natively, unserialized
//! ([`DefaultsRegistry::resolve`]).
//!
//! # Errors
//!
//! Every fallible function returns [`CodecError`], an opaque error whose
//! [`kind`](CodecError::kind) is an [`ErrorKind`] to match on. The error types of bincode,
//! serde_json, rmp-serde, flate2 and zstd never appear in this crate's API.
//!
//! # Changes from 1.0
//!
//! * Frames are written as version 2 (length and checksum) unless version 1 is asked for;
//!   version 1 frames still decode.
//! * Pre- and post-processors run on decode too, in reverse order; 1.0.0 ran them only on
//!   encode.
//! * Nesting is limited to [`DecodeLimits::max_depth`] levels in every format. Before, only
//!   serde_json's and rmp-serde's own limits applied (rmp-serde's does not count enum
//!   variants), and bincode had none.
//! * A frame's version, format and compression codes are checked: unknown codes are errors,
//!   where 1.0.0 read unknown formats as bincode and unknown compressions as none.
//! * A payload without a header is decompressed with the codec's compression; 1.0.0 never
//!   decompressed one, so it could not read its own headerless compressed messages.
//! * `MessagePackConfig::struct_map` is honoured. `BincodeConfig` is still accepted and
//!   ignored, as in 1.0.0.
//! * [`SerializationFormat`] gained `Raw` and is `#[non_exhaustive]`.
//! * Errors are one opaque [`CodecError`] with a kind instead of an enum wrapping the
//!   libraries' errors.
#![warn(missing_docs)]

mod codec;
mod compression;
mod config;
mod depth;
mod error;
mod format;
mod formats;
mod frame;
mod headers;
mod limits;
mod pipeline;
mod registry;

pub use bytes::Bytes;

pub use codec::{decode_frame, Codec};
pub use config::{BincodeConfig, JsonConfig, MessagePackConfig, SerializationConfig};
pub use error::{CodecError, ErrorKind};
pub use format::SerializationFormat;
pub use formats::custom::{CustomFormat, ErasedValue, ValueSink};
pub use frame::{FrameHeader, FrameVersion, HeaderMode};
pub use headers::Headers;
pub use limits::DecodeLimits;
pub use pipeline::{
    ByteProcessor, Compression, CompressionConfig, NoopProcessor, PipelineConfig, ProcessorPair,
};
pub use registry::{DefaultSettings, DefaultsRegistry, SerializationFactory};
