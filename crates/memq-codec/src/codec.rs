//! [`Codec`]: a format and its pipeline, ready to encode values to frames and decode them back;
//! and [`decode_frame`], which decodes by the frame header alone.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::compression;
use crate::config::SerializationConfig;
use crate::error::{CodecError, ErrorKind};
use crate::format::SerializationFormat;
use crate::formats::custom::CustomFormat;
use crate::formats::Engine;
use crate::frame::{self, FrameHeader, FrameVersion, HeaderMode};
use crate::headers::Headers;
use crate::limits::DecodeLimits;
use crate::pipeline::{ByteProcessor, Compression, PipelineConfig, ProcessorPair};
use crate::registry::DefaultSettings;

/// Room reserved for a serialized value before its size is known.
const INITIAL_CAPACITY: usize = 128;

/// A serialization format with its configuration and byte pipeline: encodes values to
/// [`Bytes`] and decodes them back.
///
/// Build one from the same three pieces 1.0.0's `register_topic_defaults` takes (a format, its
/// configuration, a [`PipelineConfig`]), or from [`DefaultSettings`]. Building checks that the
/// pieces fit together, so `encode` and `decode` fail only on the value or the input. A codec
/// is cheap to clone (one reference count) and can be shared between threads.
///
/// ## Encoding
///
/// `serialize → pre.encode → compress → post.encode → header`. With `use_magic_header` the
/// output is a frame (version 2 by default, see [`FrameVersion`] and the
/// [crate docs](crate#frame-format)); without, it is the bare payload.
///
/// ## Decoding
///
/// The [`HeaderMode`] decides how a frame header is found: a codec built with
/// `use_magic_header` requires one, a codec built without never looks for one (so a raw
/// payload starting with `TMQ` stays raw). When a header is read it decides the format and
/// compression, as in 1.0.0: a JSON codec decodes a MessagePack frame. Then
/// `post.decode → decompress → pre.decode → deserialize`, every buffer bounded by the codec's
/// [`DecodeLimits`].
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, CompressionConfig, PipelineConfig, SerializationConfig, SerializationFormat};
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Reading { sensor: String, celsius: f64 }
///
/// let pipeline = PipelineConfig {
///     compression: CompressionConfig::Zstd { level: 3 },
///     use_magic_header: true,
///     ..Default::default()
/// };
/// let codec = Codec::new(SerializationFormat::Bincode, SerializationConfig::Default, pipeline)?;
///
/// let reading = Reading { sensor: "hall".into(), celsius: 21.5 };
/// let frame = codec.encode(&reading)?;
/// assert_eq!(&frame[..4], b"TMQ\x02");
/// assert_eq!(codec.decode::<Reading>(&frame)?, reading);
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    format: SerializationFormat,
    config: SerializationConfig,
    engine: Engine,
    pipeline: PipelineConfig,
    limits: DecodeLimits,
    frame_version: FrameVersion,
    header_mode: HeaderMode,
}

impl Codec {
    /// True when both are the same codec (clones of one another), as opposed
    /// to two codecs built from equal settings.
    pub fn ptr_eq(&self, other: &Codec) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// True when both encode and decode exactly alike: the same format and configuration,
    /// the same pipeline (compression and level, header, and the very same processor objects),
    /// the same limits, frame version and header mode, and for a custom format the same format
    /// object. Codecs built separately from equal settings compare equal, so a table of codecs
    /// can keep one of each.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, CompressionConfig, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let gzip = || PipelineConfig { compression: CompressionConfig::Gzip { level: Some(6) }, ..Default::default() };
    /// let a = Codec::new(SerializationFormat::Json, SerializationConfig::Default, gzip())?;
    /// let b = Codec::new(SerializationFormat::Json, SerializationConfig::Default, gzip())?;
    /// assert!(!a.ptr_eq(&b) && a.same_settings(&b));
    /// let plain = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?;
    /// assert!(!a.same_settings(&plain));
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn same_settings(&self, other: &Codec) -> bool {
        if self.ptr_eq(other) {
            return true;
        }
        let (a, b) = (&*self.inner, &*other.inner);
        a.format == b.format
            && same_config(&a.config, &b.config)
            && same_engine(&a.engine, &b.engine)
            && same_pipeline(&a.pipeline, &b.pipeline)
            && a.limits == b.limits
            && a.frame_version == b.frame_version
            && a.header_mode == b.header_mode
    }

    /// A codec for `format` configured by `config`, with the byte `pipeline` around it.
    ///
    /// A [`Custom`](SerializationFormat::Custom) format must be registered first with
    /// [`SerializationFactory::register_format`](crate::SerializationFactory::register_format).
    ///
    /// # Errors
    ///
    /// * [`InvalidConfig`](ErrorKind::InvalidConfig): `config` is for another format, or a
    ///   compression level is out of range.
    /// * [`UnsupportedFormat`](ErrorKind::UnsupportedFormat) /
    ///   [`UnsupportedCompression`](ErrorKind::UnsupportedCompression): the format or
    ///   compression's cargo feature is disabled, or the format is
    ///   [`Native`](SerializationFormat::Native).
    /// * [`UnknownFormat`](ErrorKind::UnknownFormat): no custom format of that name is
    ///   registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{BincodeConfig, Codec, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?;
    /// assert_eq!(codec.format(), &SerializationFormat::Json);
    ///
    /// let mismatched = SerializationConfig::Bincode(BincodeConfig::default());
    /// let err = Codec::new(SerializationFormat::Json, mismatched, PipelineConfig::default()).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn new(
        format: SerializationFormat,
        config: SerializationConfig,
        pipeline: PipelineConfig,
    ) -> Result<Codec, CodecError> {
        let engine = Engine::new(&format, &config)?;
        Self::build(format, config, engine, pipeline)
    }

    /// A codec for a custom format object, registered or not.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`](ErrorKind::InvalidConfig) when the format's name is not 1 to 255
    /// bytes long or a compression level is out of range;
    /// [`UnsupportedCompression`](ErrorKind::UnsupportedCompression) when the compression's
    /// feature is disabled.
    ///
    /// # Examples
    ///
    /// See [`CustomFormat`].
    pub fn custom(
        format: Arc<dyn CustomFormat>,
        config: SerializationConfig,
        pipeline: PipelineConfig,
    ) -> Result<Codec, CodecError> {
        let name = format.name().to_owned();
        let engine = Engine::custom(format, config.clone())?;
        Self::build(SerializationFormat::Custom(name), config, engine, pipeline)
    }

    /// The codec that `settings` describe (what 1.0.0's registry stored per topic).
    ///
    /// # Errors
    ///
    /// As [`Codec::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, DefaultSettings, SerializationFormat};
    ///
    /// let settings = DefaultSettings::default();
    /// assert_eq!(Codec::from_settings(&settings)?.format(), &SerializationFormat::Bincode);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn from_settings(settings: &DefaultSettings) -> Result<Codec, CodecError> {
        Self::new(
            settings.format.clone(),
            settings.config.clone(),
            settings.pipeline.clone(),
        )
    }

    fn build(
        format: SerializationFormat,
        config: SerializationConfig,
        engine: Engine,
        pipeline: PipelineConfig,
    ) -> Result<Codec, CodecError> {
        compression::validate(&pipeline.compression)?;
        let header_mode = if pipeline.use_magic_header {
            HeaderMode::Require
        } else {
            HeaderMode::Never
        };
        Ok(Codec {
            inner: Arc::new(Inner {
                format,
                config,
                engine,
                pipeline,
                limits: DecodeLimits::default(),
                frame_version: FrameVersion::default(),
                header_mode,
            }),
        })
    }

    /// This codec with other decode limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, DecodeLimits, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let codec = Codec::new(SerializationFormat::Raw, SerializationConfig::Default, PipelineConfig::default())?
    ///     .with_limits(DecodeLimits::new().with_max_decoded_size(4));
    /// assert_eq!(codec.decode::<Vec<u8>>(b"1234")?, b"1234");
    /// assert_eq!(codec.decode::<Vec<u8>>(b"12345").unwrap_err().kind(), ErrorKind::TooLarge);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn with_limits(mut self, limits: DecodeLimits) -> Codec {
        Arc::make_mut(&mut self.inner).limits = limits;
        self
    }

    /// This codec writing frames of `version` (when its pipeline writes a header at all).
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`](ErrorKind::InvalidConfig) for version 1 with the raw format, which
    /// version 1 has no code for.
    ///
    /// # Examples
    ///
    /// See [`FrameVersion`].
    pub fn with_frame_version(mut self, version: FrameVersion) -> Result<Codec, CodecError> {
        if version == FrameVersion::V1 && self.inner.format == SerializationFormat::Raw {
            return Err(CodecError::msg(
                ErrorKind::InvalidConfig,
                "version 1 frames cannot hold the raw format",
            ));
        }
        Arc::make_mut(&mut self.inner).frame_version = version;
        Ok(self)
    }

    /// This codec treating frame headers as `mode` says when decoding (encoding is unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, HeaderMode, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let framed = PipelineConfig { use_magic_header: true, ..Default::default() };
    /// let writer = Codec::new(SerializationFormat::Json, SerializationConfig::Default, framed)?;
    /// let reader = Codec::new(SerializationFormat::Json, SerializationConfig::Default, Default::default())?
    ///     .with_header_mode(HeaderMode::Detect);
    /// // Reads frames and bare payloads alike.
    /// assert_eq!(reader.decode::<u8>(&writer.encode(&5)?)?, 5);
    /// assert_eq!(reader.decode::<u8>(b"6")?, 6);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn with_header_mode(mut self, mode: HeaderMode) -> Codec {
        Arc::make_mut(&mut self.inner).header_mode = mode;
        self
    }

    /// The format this codec writes.
    pub fn format(&self) -> &SerializationFormat {
        &self.inner.format
    }

    /// The format's configuration.
    pub fn config(&self) -> &SerializationConfig {
        &self.inner.config
    }

    /// The byte pipeline.
    pub fn pipeline(&self) -> &PipelineConfig {
        &self.inner.pipeline
    }

    /// The decode limits.
    pub fn limits(&self) -> &DecodeLimits {
        &self.inner.limits
    }

    /// The frame version written when the pipeline writes a header.
    pub fn frame_version(&self) -> FrameVersion {
        self.inner.frame_version
    }

    /// How decoding treats a frame header.
    pub fn header_mode(&self) -> HeaderMode {
        self.inner.header_mode
    }

    /// Serializes `value` and runs it through the pipeline.
    ///
    /// # Errors
    ///
    /// [`Serialize`](ErrorKind::Serialize) when the format cannot represent the value,
    /// [`Compress`](ErrorKind::Compress), a processor's own error, or
    /// [`TooLarge`](ErrorKind::TooLarge) for a payload over 4 GiB in a version 2 frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?;
    /// assert_eq!(&codec.encode(&("a", 1))?[..], br#"["a",1]"#);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
        let inner = &*self.inner;
        let version = inner.pipeline.use_magic_header.then_some(inner.frame_version);
        self.encode_framed(value, version, &Headers::new())
    }

    /// [`encode`](Self::encode) into a [version 3](FrameVersion::V3) frame that carries
    /// `headers` (empty ones included), whatever frame version the codec writes otherwise.
    /// [`decode_with_headers`](Self::decode_with_headers) gives them back; [`decode`](Self::decode)
    /// and [`decode_frame`] read the value and pass over them.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode); [`InvalidConfig`](ErrorKind::InvalidConfig) for a codec that
    /// writes no frame (`use_magic_header: false`: a bare payload has nowhere to put headers)
    /// or writes version 1 frames (for 1.0.0 readers, which cannot read version 3);
    /// [`TooLarge`](ErrorKind::TooLarge) for a header name over 64 KiB or headers over 4 GiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, Headers, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let framed = PipelineConfig { use_magic_header: true, ..Default::default() };
    /// let codec = Codec::new(SerializationFormat::MessagePack, SerializationConfig::Default, framed)?;
    /// let headers = Headers::from([("trace-id", "abc"), ("hop", "gateway")]);
    /// let frame = codec.encode_with_headers(&vec![1u32, 2], &headers)?;
    /// let (value, back): (Vec<u32>, Headers) = codec.decode_with_headers(&frame)?;
    /// assert_eq!((value, back), (vec![1, 2], headers));
    /// assert_eq!(codec.decode::<Vec<u32>>(&frame)?, [1, 2], "plain decode passes over them");
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn encode_with_headers<T: Serialize + ?Sized>(
        &self,
        value: &T,
        headers: &Headers,
    ) -> Result<Bytes, CodecError> {
        let inner = &*self.inner;
        if !inner.pipeline.use_magic_header {
            return Err(CodecError::msg(
                ErrorKind::InvalidConfig,
                "headers travel in a frame: build the codec with use_magic_header: true",
            ));
        }
        if inner.frame_version == FrameVersion::V1 {
            return Err(CodecError::msg(
                ErrorKind::InvalidConfig,
                "a codec writing version 1 frames (for 1.0.0 readers) cannot carry headers",
            ));
        }
        self.encode_framed(value, Some(FrameVersion::V3), headers)
    }

    /// Encodes `value` in a frame of `version` (none: a bare payload) with `headers` (version 3).
    fn encode_framed<T: Serialize + ?Sized>(
        &self,
        value: &T,
        version: Option<FrameVersion>,
        headers: &Headers,
    ) -> Result<Bytes, CodecError> {
        let inner = &*self.inner;
        let pipeline = &inner.pipeline;
        let header_len = match version {
            Some(version) => frame::header_len(version, &inner.format, headers),
            None => 0,
        };
        let mut out = Vec::with_capacity(header_len + INITIAL_CAPACITY);
        out.resize(header_len, 0);

        let compression = pipeline.compression.kind();
        if pipeline.pre.is_none() && pipeline.post.is_none() && compression == Compression::None {
            inner.engine.encode(value, &mut out)?;
        } else {
            let mut data = Vec::with_capacity(INITIAL_CAPACITY);
            inner.engine.encode(value, &mut data)?;
            if let Some(pre) = &pipeline.pre {
                data = pre.encode.process(&data)?;
            }
            match &pipeline.post {
                None => compression::compress(&pipeline.compression, &data, &mut out)?,
                Some(post) => {
                    if compression != Compression::None {
                        let mut compressed = Vec::new();
                        compression::compress(&pipeline.compression, &data, &mut compressed)?;
                        data = compressed;
                    }
                    out.extend_from_slice(&post.encode.process(&data)?);
                }
            }
        }

        if let Some(version) = version {
            frame::write_header(&mut out, header_len, version, &inner.format, compression, headers)?;
        }
        Ok(Bytes::from(out))
    }

    /// Decodes a `T` from `bytes`, undoing the pipeline.
    ///
    /// # Errors
    ///
    /// * Frame errors: [`MissingHeader`](ErrorKind::MissingHeader),
    ///   [`Truncated`](ErrorKind::Truncated), [`TrailingBytes`](ErrorKind::TrailingBytes),
    ///   [`ChecksumMismatch`](ErrorKind::ChecksumMismatch),
    ///   [`UnknownVersion`](ErrorKind::UnknownVersion), [`UnknownFormat`](ErrorKind::UnknownFormat),
    ///   [`UnknownCompression`](ErrorKind::UnknownCompression), and the `Unsupported*` kinds
    ///   for a frame in a format or compression whose feature is disabled.
    /// * [`TooLarge`](ErrorKind::TooLarge) when a buffer would pass the decode limit,
    ///   [`Decompress`](ErrorKind::Decompress) for corrupt compressed data, a processor's own
    ///   error, [`TooDeep`](ErrorKind::TooDeep) when the value nests deeper than
    ///   [`DecodeLimits::max_depth`], and [`Deserialize`](ErrorKind::Deserialize) when the
    ///   payload does not fit `T`.
    ///
    /// Decoding never panics, whatever the input.
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let framed = PipelineConfig { use_magic_header: true, ..Default::default() };
    /// let codec = Codec::new(SerializationFormat::MessagePack, SerializationConfig::Default, framed)?;
    /// let frame = codec.encode(&vec!["x".to_string()])?;
    /// assert_eq!(codec.decode::<Vec<String>>(&frame)?, ["x"]);
    ///
    /// // Any change to a version 2 frame is caught.
    /// let mut corrupted = frame.to_vec();
    /// *corrupted.last_mut().unwrap() ^= 1;
    /// assert_eq!(codec.decode::<Vec<String>>(&corrupted).unwrap_err().kind(), ErrorKind::ChecksumMismatch);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode_framed(bytes, &self.inner.limits)
            .map(|(value, _)| value)
    }

    /// [`decode`](Self::decode) with `limits` instead of this codec's own, without a copy of
    /// the codec: for a receiver that has limits of its own.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, DecodeLimits, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?;
    /// let bytes = codec.encode(&"a string of thirty-two bytes....")?;
    /// let tight = DecodeLimits::new().with_max_decoded_size(8);
    /// assert_eq!(codec.decode_with_limits::<String>(&bytes, &tight).unwrap_err().kind(), ErrorKind::TooLarge);
    /// assert_eq!(codec.decode::<String>(&bytes)?.len(), 32, "the codec's own limits are unchanged");
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn decode_with_limits<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<T, CodecError> {
        self.decode_framed(bytes, limits).map(|(value, _)| value)
    }

    /// [`decode`](Self::decode), with the [record headers](Headers) of a version 3 frame (none
    /// for other frames and bare payloads).
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode); [`InvalidHeaders`](ErrorKind::InvalidHeaders) for a
    /// malformed headers section (which `decode` reports too: the frame is wrong).
    ///
    /// # Examples
    ///
    /// See [`encode_with_headers`](Self::encode_with_headers). Older frames have none:
    ///
    /// ```
    /// use memq_codec::{Codec, Headers, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let framed = PipelineConfig { use_magic_header: true, ..Default::default() };
    /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, framed)?;
    /// let (value, headers): (u8, Headers) = codec.decode_with_headers(&codec.encode(&7u8)?)?;
    /// assert_eq!((value, headers.is_empty()), (7, true));
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn decode_with_headers<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, Headers), CodecError> {
        let (value, header) = self.decode_framed(bytes, &self.inner.limits)?;
        let headers = match header {
            Some(h) if h.header_count() > 0 => h.read_headers(bytes),
            _ => Headers::new(),
        };
        Ok((value, headers))
    }

    fn decode_framed<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<(T, Option<FrameHeader>), CodecError> {
        let inner = &*self.inner;
        let own_compression = inner.pipeline.compression.kind();
        let mut parsed = None;
        let (engine, compression, payload, strict) = match inner.header_mode {
            HeaderMode::Never => (Cow::Borrowed(&inner.engine), own_compression, bytes, false),
            mode => match frame::split(bytes)? {
                Some((header, payload)) => {
                    let engine = engine_for_header(&header, Some(&inner.engine), None)?;
                    let strict = header.version() != FrameVersion::V1;
                    let compression = header.compression();
                    parsed = Some(header);
                    (engine, compression, payload, strict)
                }
                None if mode == HeaderMode::Require => {
                    return Err(CodecError::msg(
                        ErrorKind::MissingHeader,
                        "input does not start with a frame header",
                    ))
                }
                None => (Cow::Borrowed(&inner.engine), own_compression, bytes, false),
            },
        };
        let value = decode_payload(
            &engine,
            compression,
            payload,
            strict,
            Some(&inner.pipeline),
            limits,
        )?;
        Ok((value, parsed))
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Codec")
            .field("format", &inner.format)
            .field("config", &inner.config)
            .field("pipeline", &inner.pipeline)
            .field("limits", &inner.limits)
            .field("frame_version", &inner.frame_version)
            .field("header_mode", &inner.header_mode)
            .finish()
    }
}

/// Decodes a `T` from `bytes`, taking format and compression from the frame header when there
/// is one, and otherwise reading `bytes` as an uncompressed payload in `fallback` format.
///
/// This is how a receiver reads a message whose publisher it does not know (what 1.0.0's
/// `TopicMessage::deserialize` did): the header, when present, overrides `fallback`. No
/// pre- or post-processors run; to undo those, decode with the [`Codec`] that has them.
///
/// With `fallback` [`Raw`](SerializationFormat::Raw) no header is looked for: the bytes are
/// the payload, even when they begin with `TMQ`. With a [`Custom`](SerializationFormat::Custom)
/// fallback, a version 1 frame of a custom format (whose name version 1 does not record) is
/// read with that format.
///
/// # Errors
///
/// As [`Codec::decode`]; a bare payload with a `Native` fallback is
/// [`UnsupportedFormat`](ErrorKind::UnsupportedFormat).
///
/// # Examples
///
/// ```
/// use memq_codec::{decode_frame, Codec, CompressionConfig, DecodeLimits, PipelineConfig,
///     SerializationConfig, SerializationFormat};
///
/// let pipeline = PipelineConfig {
///     compression: CompressionConfig::Gzip { level: None },
///     use_magic_header: true,
///     ..Default::default()
/// };
/// let frame = Codec::new(SerializationFormat::MessagePack, SerializationConfig::Default, pipeline)?
///     .encode(&[1u16, 2, 3])?;
///
/// let limits = DecodeLimits::default();
/// // The header says MessagePack and gzip, whatever the fallback says.
/// assert_eq!(decode_frame::<Vec<u16>>(&frame, &SerializationFormat::Json, &limits)?, [1, 2, 3]);
/// // No header: the fallback decides.
/// assert_eq!(decode_frame::<Vec<u16>>(b"[4,5]", &SerializationFormat::Json, &limits)?, [4, 5]);
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
pub fn decode_frame<T: DeserializeOwned>(
    bytes: &[u8],
    fallback: &SerializationFormat,
    limits: &DecodeLimits,
) -> Result<T, CodecError> {
    if *fallback == SerializationFormat::Raw {
        return decode_payload(&Engine::Raw, Compression::None, bytes, false, None, limits);
    }
    match frame::split(bytes)? {
        Some((header, payload)) => {
            let engine = engine_for_header(&header, None, Some(fallback))?;
            decode_payload(
                &engine,
                header.compression(),
                payload,
                header.version() != FrameVersion::V1,
                None,
                limits,
            )
        }
        None => decode_payload(
            &Engine::for_format(fallback)?,
            Compression::None,
            bytes,
            false,
            None,
            limits,
        ),
    }
}

/// The engine that reads a frame with `header`: the codec's own (`own`) when it reads that
/// format, else a fresh one. A version 1 custom frame is read by `own`, or by the `fallback`
/// custom format.
fn engine_for_header<'a>(
    header: &FrameHeader,
    own: Option<&'a Engine>,
    fallback: Option<&SerializationFormat>,
) -> Result<Cow<'a, Engine>, CodecError> {
    match header.format() {
        Some(format) => match own {
            Some(engine) if engine.reads(format) => Ok(Cow::Borrowed(engine)),
            _ => Engine::for_format(format).map(Cow::Owned),
        },
        None => match (own, fallback) {
            (Some(engine), _) if engine.is_custom() => Ok(Cow::Borrowed(engine)),
            (_, Some(format @ SerializationFormat::Custom(_))) => Engine::for_format(format).map(Cow::Owned),
            _ => Err(CodecError::msg(
                ErrorKind::UnknownFormat,
                "a version 1 frame of a custom format does not record which; decode it with that format's codec",
            )),
        },
    }
}

/// Undoes the pipeline on a payload (the frame header already removed) and deserializes it.
fn decode_payload<T: DeserializeOwned>(
    engine: &Engine,
    compression: Compression,
    payload: &[u8],
    strict: bool,
    pipeline: Option<&PipelineConfig>,
    limits: &DecodeLimits,
) -> Result<T, CodecError> {
    let limit = limits.max_decoded_size();
    let (pre, post) = match pipeline {
        Some(p) => (p.pre.as_ref(), p.post.as_ref()),
        None => (None, None),
    };
    let mut data = Cow::Borrowed(payload);
    if let Some(post) = post {
        data = Cow::Owned(run_processor(&*post.decode, &data, limit, "post-processor")?);
    }
    if compression != Compression::None {
        data = Cow::Owned(compression::decompress(compression, &data, limits, strict)?);
    }
    if let Some(pre) = pre {
        data = Cow::Owned(run_processor(&*pre.decode, &data, limit, "pre-processor")?);
    }
    if data.len() > limit {
        return Err(compression::too_large(limit, "payload"));
    }
    engine.decode(data, strict, limits.max_depth())
}

fn run_processor(
    processor: &dyn ByteProcessor,
    data: &[u8],
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, CodecError> {
    let out = processor.process(data)?;
    if out.len() > limit {
        return Err(compression::too_large(limit, &format!("{what} output")));
    }
    Ok(out)
}

/// Equal configurations; a custom one only when it is the same object.
fn same_config(a: &SerializationConfig, b: &SerializationConfig) -> bool {
    match (a, b) {
        (SerializationConfig::Bincode(x), SerializationConfig::Bincode(y)) => x == y,
        (SerializationConfig::Json(x), SerializationConfig::Json(y)) => x == y,
        (SerializationConfig::MessagePack(x), SerializationConfig::MessagePack(y)) => x == y,
        (SerializationConfig::Custom(x), SerializationConfig::Custom(y)) => Arc::ptr_eq(x, y),
        (SerializationConfig::Default, SerializationConfig::Default) => true,
        _ => false,
    }
}

/// Engines follow from the format and configuration, except which object
/// implements a custom format.
fn same_engine(a: &Engine, b: &Engine) -> bool {
    match (a, b) {
        (Engine::Custom { format: x, .. }, Engine::Custom { format: y, .. }) => Arc::ptr_eq(x, y),
        _ => true,
    }
}

/// Equal pipelines: processors only when they are the same objects.
fn same_pipeline(a: &PipelineConfig, b: &PipelineConfig) -> bool {
    let same_pair = |x: &Option<ProcessorPair>, y: &Option<ProcessorPair>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(&x.encode, &y.encode) && Arc::ptr_eq(&x.decode, &y.decode),
        _ => false,
    };
    a.compression == b.compression
        && a.use_magic_header == b.use_magic_header
        && same_pair(&a.pre, &b.pre)
        && same_pair(&a.post, &b.post)
}
