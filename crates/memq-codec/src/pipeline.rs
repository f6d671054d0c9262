//! What happens to the serialized bytes: compression, pre- and post-processors, the header.

use std::fmt;
use std::sync::Arc;

use crate::error::CodecError;

/// Which compression a payload uses (1.0.0 enum): none, gzip at a level, or zstd at a level.
///
/// Levels are checked when a [`Codec`](crate::Codec) is built: gzip takes `0..=9` (`None`
/// means 6, as in 1.0.0), zstd takes zstd's own range (negative levels are faster, `0` means
/// zstd's default of 3, at most 22). The level only affects encoding; a frame records the
/// compression, not its level.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, Compression, CompressionConfig, ErrorKind, PipelineConfig,
///     SerializationConfig, SerializationFormat};
///
/// let gzip = CompressionConfig::Gzip { level: Some(6) };
/// assert_eq!(gzip.kind(), Compression::Gzip);
/// assert_eq!(CompressionConfig::default(), CompressionConfig::None);
///
/// let raw = |compression| {
///     let pipeline = PipelineConfig { compression, ..Default::default() };
///     Codec::new(SerializationFormat::Raw, SerializationConfig::Default, pipeline)
/// };
/// let data = vec![0u8; 4096];
/// let packed = raw(gzip)?.encode(&data)?;
/// assert!(packed.len() < 100);
/// assert_eq!(raw(CompressionConfig::Gzip { level: None })?.decode::<Vec<u8>>(&packed)?, data);
/// let err = raw(CompressionConfig::Gzip { level: Some(10) }).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum CompressionConfig {
    /// No compression.
    #[default]
    None,
    /// gzip (one member, as flate2 writes it), at `level` (0 to 9, default 6).
    Gzip {
        /// The level from 0 (store) to 9 (smallest); `None` means 6.
        level: Option<u32>,
    },
    /// zstd (one frame), at `level`.
    Zstd {
        /// The zstd level: 1 to 22, 0 for zstd's default (3), or negative for faster modes.
        level: i32,
    },
}

impl CompressionConfig {
    /// The compression without its level, as a frame header records it.
    pub fn kind(&self) -> Compression {
        match self {
            CompressionConfig::None => Compression::None,
            CompressionConfig::Gzip { .. } => Compression::Gzip,
            CompressionConfig::Zstd { .. } => Compression::Zstd,
        }
    }
}

/// A compression algorithm without its settings: what a frame header records.
///
/// # Examples
///
/// ```
/// use memq_codec::Compression;
///
/// assert_eq!(Compression::Zstd.as_str(), "zstd");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed (frame code 0).
    None,
    /// gzip (frame code 1).
    Gzip,
    /// zstd (frame code 2).
    Zstd,
}

impl Compression {
    /// The algorithm's name: `"none"`, `"gzip"` or `"zstd"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The frame header code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Zstd => 2,
        }
    }

    /// The compression a frame header code names, if any.
    pub(crate) fn from_code(code: u8) -> Option<Compression> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transformation of bytes: one direction of a pre- or post-processor (1.0.0 trait).
///
/// Encryption, signing, an envelope, a custom compression: anything that maps bytes to bytes.
/// Closures `Fn(&[u8]) -> Result<Vec<u8>, CodecError>` implement it.
///
/// A processor's output is checked against [`DecodeLimits`](crate::DecodeLimits) when
/// decoding, after it returns; a processor that can itself expand its input a lot should
/// bound its own output.
///
/// # Examples
///
/// ```
/// use memq_codec::ByteProcessor;
///
/// let reverse = |data: &[u8]| Ok(data.iter().rev().copied().collect());
/// assert_eq!(reverse.process(b"abc")?, b"cba");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
pub trait ByteProcessor: Send + Sync {
    /// Transforms `data`.
    ///
    /// # Errors
    ///
    /// Whatever the processor reports; build it with
    /// [`CodecError::new`](crate::CodecError::new), usually with
    /// [`ErrorKind::Processor`](crate::ErrorKind::Processor).
    fn process(&self, data: &[u8]) -> Result<Vec<u8>, CodecError>;
}

impl<F> ByteProcessor for F
where
    F: Fn(&[u8]) -> Result<Vec<u8>, CodecError> + Send + Sync,
{
    fn process(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        self(data)
    }
}

/// A processor that returns its input unchanged (1.0.0 type).
///
/// # Examples
///
/// ```
/// use memq_codec::{ByteProcessor, NoopProcessor};
///
/// assert_eq!(NoopProcessor.process(b"x")?, b"x");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopProcessor;

impl ByteProcessor for NoopProcessor {
    fn process(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(data.to_vec())
    }
}

/// The two directions of one processing step (1.0.0 type): `encode` runs when encoding,
/// `decode` must undo it when decoding.
///
/// # Examples
///
/// ```
/// use memq_codec::{ByteProcessor, ProcessorPair};
///
/// let xor = |data: &[u8]| Ok(data.iter().map(|b| b ^ 0x5a).collect());
/// let pair = ProcessorPair::new(xor, xor);
/// let scrambled = pair.encode.process(b"secret")?;
/// assert_eq!(pair.decode.process(&scrambled)?, b"secret");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Clone)]
pub struct ProcessorPair {
    /// Applied when encoding.
    pub encode: Arc<dyn ByteProcessor>,
    /// Applied when decoding; the inverse of `encode`.
    pub decode: Arc<dyn ByteProcessor>,
}

impl ProcessorPair {
    /// A pair from its two directions.
    pub fn new(encode: impl ByteProcessor + 'static, decode: impl ByteProcessor + 'static) -> Self {
        ProcessorPair {
            encode: Arc::new(encode),
            decode: Arc::new(decode),
        }
    }
}

impl fmt::Debug for ProcessorPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorPair").finish_non_exhaustive()
    }
}

/// The byte pipeline around a format (1.0.0 struct): compression, processors, and whether a
/// frame header is written.
///
/// The default is no compression, no processors and no header, as in 1.0.0.
///
/// `pre` runs on the serialized bytes before compression, `post` on the compressed bytes.
/// Encoding runs `serialize → pre.encode → compress → post.encode → header`; decoding undoes
/// the steps in reverse order, `header → post.decode → decompress → pre.decode → deserialize`
/// (1.0.0 ran the processors on encode only, so a topic with processors could not read its own
/// messages). With
/// `use_magic_header`, every encoded payload starts with a frame header recording its format
/// and compression, which lets a receiver decode it without knowing either; see
/// [`FrameVersion`](crate::FrameVersion) for the layout.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, CompressionConfig, PipelineConfig, ProcessorPair, SerializationConfig,
///     SerializationFormat};
///
/// let xor = |data: &[u8]| Ok(data.iter().map(|b| b ^ 0x5a).collect());
/// let pipeline = PipelineConfig {
///     compression: CompressionConfig::Gzip { level: Some(6) },
///     pre: Some(ProcessorPair::new(xor, xor)),
///     post: None,
///     use_magic_header: true,
/// };
/// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, pipeline)?;
/// let frame = codec.encode(&"hello")?;
/// assert_eq!(&frame[..6], b"TMQ\x02\x01\x01"); // version 2, JSON, gzip
/// assert_eq!(codec.decode::<String>(&frame)?, "hello"); // the processor is undone too
/// assert!(!PipelineConfig::default().use_magic_header);
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Clone, Default)]
pub struct PipelineConfig {
    /// Compression of the serialized (and pre-processed) bytes.
    pub compression: CompressionConfig,
    /// Runs on the serialized bytes, before compression.
    pub pre: Option<ProcessorPair>,
    /// Runs on the compressed bytes, before the header is added.
    pub post: Option<ProcessorPair>,
    /// Write a frame header so the receiver can detect format and compression.
    pub use_magic_header: bool,
}

impl fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("compression", &self.compression)
            .field("pre", &self.pre.as_ref().map(|_| ".."))
            .field("post", &self.post.as_ref().map(|_| ".."))
            .field("use_magic_header", &self.use_magic_header)
            .finish()
    }
}
