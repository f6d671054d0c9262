//! The frame header: how an encoded payload records its format and compression.
//!
//! The layouts of versions 1 and 2, and the reasons for version 2's fields, are documented in
//! the [crate docs](crate#frame-format).

use std::ops::Range;

use bytes::Bytes;

use crate::error::{CodecError, ErrorKind};
use crate::format::{SerializationFormat, CODE_BINCODE, CODE_CUSTOM, CODE_JSON, CODE_MSGPACK, CODE_RAW};
use crate::headers::Headers;
use crate::pipeline::Compression;

/// The three bytes every frame starts with.
pub(crate) const MAGIC: &[u8; 3] = b"TMQ";
/// Length of a version 1 header.
const V1_HEADER_LEN: usize = 6;
/// Length of the fixed part of a version 2 header before the optional name.
const V2_FIXED_LEN: usize = 10;
/// Length of the checksum at the end of a version 2 header.
const V2_CRC_LEN: usize = 4;

/// The frame header version the encoder writes.
///
/// Version 2 (the default) adds a length and a checksum to 1.0.0's version 1 header (see the
/// [crate docs](crate#frame-format) for both layouts). Choose `V1` only for a reader that is
/// still tokio-memq 1.0.0, which cannot read version 2; the raw format has no version 1 code.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, FrameVersion, PipelineConfig, SerializationConfig, SerializationFormat};
///
/// let pipeline = PipelineConfig { use_magic_header: true, ..Default::default() };
/// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, pipeline)?
///     .with_frame_version(FrameVersion::V1)?;
/// assert_eq!(&codec.encode(&7)?[..], b"TMQ\x01\x01\x007");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameVersion {
    /// 1.0.0's six-byte header: magic, version, format, compression.
    V1,
    /// Version 1 plus the payload length, the custom format's name and a CRC-32.
    #[default]
    V2,
    /// Version 2 plus [record headers](crate::Headers), covered by the checksum: what
    /// [`Codec::encode_with_headers`](crate::Codec::encode_with_headers) writes. Readers
    /// older than version 3 (tokio-memq before 2.0) cannot read it.
    V3,
}

impl FrameVersion {
    /// The version byte written at offset 3.
    pub fn as_u8(self) -> u8 {
        match self {
            FrameVersion::V1 => 1,
            FrameVersion::V2 => 2,
            FrameVersion::V3 => 3,
        }
    }
}

/// How decoding treats a frame header at the start of its input.
///
/// A [`Codec`](crate::Codec) built with `use_magic_header: true` uses `Require`, one built
/// without uses `Never`; [`Codec::with_header_mode`](crate::Codec::with_header_mode) changes
/// that. [`decode_frame`](crate::decode_frame) uses `Detect`, except for the raw format,
/// where it uses `Never`.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, HeaderMode, PipelineConfig, SerializationConfig, SerializationFormat};
///
/// // A raw codec never looks for a header: bytes that start with "TMQ" stay bytes.
/// let raw = Codec::new(SerializationFormat::Raw, SerializationConfig::Default, PipelineConfig::default())?;
/// assert_eq!(raw.header_mode(), HeaderMode::Never);
/// assert_eq!(raw.decode::<Vec<u8>>(b"TMQ\x02\x01\x00")?, b"TMQ\x02\x01\x00");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderMode {
    /// The input is a bare payload in the codec's format and compression; a leading `TMQ` is
    /// part of the payload.
    Never,
    /// If the input starts with `TMQ` it must be a valid frame, and its header decides format
    /// and compression; otherwise it is a bare payload in the codec's format and compression
    /// (1.0.0's behaviour, except that a bad header is an error rather than a guess).
    Detect,
    /// The input must be a valid frame; anything else is
    /// [`MissingHeader`](crate::ErrorKind::MissingHeader).
    Require,
}

/// A parsed and checked frame header.
///
/// # Examples
///
/// ```
/// use memq_codec::{Codec, Compression, CompressionConfig, FrameHeader, FrameVersion,
///     PipelineConfig, SerializationConfig, SerializationFormat};
///
/// let pipeline = PipelineConfig {
///     compression: CompressionConfig::Zstd { level: 3 },
///     use_magic_header: true,
///     ..Default::default()
/// };
/// let codec = Codec::new(SerializationFormat::MessagePack, SerializationConfig::Default, pipeline)?;
/// let frame = codec.encode(&"hello")?;
///
/// let header = FrameHeader::parse(&frame)?.expect("a frame");
/// assert_eq!(header.version(), FrameVersion::V2);
/// assert_eq!(header.format(), Some(&SerializationFormat::MessagePack));
/// assert_eq!(header.compression(), Compression::Zstd);
/// assert_eq!(header.header_len() + header.payload_len(), frame.len());
///
/// // Not a frame at all.
/// assert!(FrameHeader::parse(b"{\"json\":1}")?.is_none());
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    version: FrameVersion,
    format: Option<SerializationFormat>,
    compression: Compression,
    header_len: usize,
    payload_len: usize,
    /// Where a version 3 frame's headers section is (checked well formed);
    /// empty otherwise.
    headers: Range<usize>,
    /// How many headers that section holds.
    headers_count: usize,
}

impl FrameHeader {
    /// Parses the header at the start of `frame` and checks everything it covers: for version
    /// 2 the length and the checksum over the whole frame, so pass the whole frame.
    ///
    /// Returns `Ok(None)` when `frame` does not start with `TMQ` (it is not a frame).
    ///
    /// # Errors
    ///
    /// [`Truncated`](ErrorKind::Truncated) when the frame is shorter than its header or its
    /// length field says, [`TrailingBytes`](ErrorKind::TrailingBytes) when a version 2 frame
    /// is longer, [`ChecksumMismatch`](ErrorKind::ChecksumMismatch),
    /// [`UnknownVersion`](ErrorKind::UnknownVersion), [`UnknownFormat`](ErrorKind::UnknownFormat)
    /// and [`UnknownCompression`](ErrorKind::UnknownCompression).
    pub fn parse(frame: &[u8]) -> Result<Option<FrameHeader>, CodecError> {
        Ok(split(frame)?.map(|(header, _)| header))
    }

    /// The frame's version.
    pub fn version(&self) -> FrameVersion {
        self.version
    }

    /// The payload's format; `None` for a version 1 frame of a custom format, whose name
    /// version 1 does not record.
    pub fn format(&self) -> Option<&SerializationFormat> {
        self.format.as_ref()
    }

    /// The payload's compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The header's length in bytes: where the payload starts.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload's length in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// How many record headers the frame carries (only version 3 frames carry any).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, FrameHeader, Headers, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let framed = PipelineConfig { use_magic_header: true, ..Default::default() };
    /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, framed)?;
    /// let frame = codec.encode_with_headers(&1, &Headers::from([("a", "1"), ("b", "2")]))?;
    /// assert_eq!(FrameHeader::parse(&frame)?.unwrap().header_count(), 2);
    /// assert_eq!(FrameHeader::parse(&codec.encode(&1)?)?.unwrap().header_count(), 0);
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub fn header_count(&self) -> usize {
        self.headers_count
    }

    /// The frame's record headers, read from `frame` (the whole frame this header was parsed
    /// from).
    pub(crate) fn read_headers(&self, frame: &[u8]) -> Headers {
        let mut section = &frame[self.headers.clone()];
        let mut out = Vec::with_capacity(self.headers_count);
        if section.len() >= 4 {
            section = &section[4..];
        }
        while let Some((name, value, rest)) = next_header(section) {
            // Checked UTF-8 when the frame was parsed.
            out.push((
                String::from_utf8_lossy(name).into_owned(),
                Bytes::copy_from_slice(value),
            ));
            section = rest;
        }
        out.into_iter().collect()
    }
}

/// Parses and checks a frame, returning its header and payload; `None` if `frame` does not
/// start with the magic bytes.
pub(crate) fn split(frame: &[u8]) -> Result<Option<(FrameHeader, &[u8])>, CodecError> {
    if frame.len() < MAGIC.len() || &frame[..MAGIC.len()] != MAGIC {
        return Ok(None);
    }
    let Some(&version) = frame.get(3) else {
        return Err(CodecError::msg(
            ErrorKind::Truncated,
            "frame ends inside its header",
        ));
    };
    match version {
        1 => split_v1(frame).map(Some),
        2 => split_v2(frame, FrameVersion::V2).map(Some),
        3 => split_v2(frame, FrameVersion::V3).map(Some),
        other => Err(CodecError::msg(
            ErrorKind::UnknownVersion,
            format!("unknown frame version {other}"),
        )),
    }
}

fn split_v1(frame: &[u8]) -> Result<(FrameHeader, &[u8]), CodecError> {
    if frame.len() < V1_HEADER_LEN {
        return Err(CodecError::msg(
            ErrorKind::Truncated,
            "frame ends inside its header",
        ));
    }
    let format = match frame[4] {
        CODE_CUSTOM => None,
        code @ (CODE_BINCODE | CODE_JSON | CODE_MSGPACK) => Some(builtin_format(code)),
        code => return Err(unknown_format(code, 1)),
    };
    let compression = compression_from_code(frame[5])?;
    let payload = &frame[V1_HEADER_LEN..];
    let header = FrameHeader {
        version: FrameVersion::V1,
        format,
        compression,
        header_len: V1_HEADER_LEN,
        payload_len: payload.len(),
        headers: 0..0,
        headers_count: 0,
    };
    Ok((header, payload))
}

/// Splits a version 2 or 3 frame (version 3 is version 2 with a headers section before the
/// checksum).
fn split_v2(frame: &[u8], version: FrameVersion) -> Result<(FrameHeader, &[u8]), CodecError> {
    let truncated = || CodecError::msg(ErrorKind::Truncated, "frame ends inside its header");
    let fixed = frame.get(..V2_FIXED_LEN).ok_or_else(truncated)?;
    let format_code = fixed[4];
    let compression_code = fixed[5];
    let payload_len = u32::from_le_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]) as usize;

    let name_len = if format_code == CODE_CUSTOM {
        1 + usize::from(*frame.get(V2_FIXED_LEN).ok_or_else(truncated)?)
    } else {
        0
    };
    let name_end = V2_FIXED_LEN + name_len;
    let headers = if version == FrameVersion::V3 {
        let len_bytes = frame.get(name_end..name_end + 4).ok_or_else(truncated)?;
        let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let start = name_end + 4;
        start..start.checked_add(len).ok_or_else(truncated)?
    } else {
        name_end..name_end
    };
    let header_len = headers.end.checked_add(V2_CRC_LEN).ok_or_else(truncated)?;
    let header = frame.get(..header_len).ok_or_else(truncated)?;
    let total = header_len.checked_add(payload_len).ok_or_else(truncated)?;
    if frame.len() < total {
        return Err(CodecError::msg(
            ErrorKind::Truncated,
            format!(
                "frame holds {} payload bytes of {payload_len}",
                frame.len() - header_len
            ),
        ));
    }
    if frame.len() > total {
        return Err(CodecError::msg(
            ErrorKind::TrailingBytes,
            format!("{} bytes after the end of the frame", frame.len() - total),
        ));
    }
    let payload = &frame[header_len..];
    let crc_at = header_len - V2_CRC_LEN;
    let stored = u32::from_le_bytes([
        header[crc_at],
        header[crc_at + 1],
        header[crc_at + 2],
        header[crc_at + 3],
    ]);
    let computed = checksum(&header[..crc_at], payload);
    if stored != computed {
        return Err(CodecError::msg(
            ErrorKind::ChecksumMismatch,
            format!("frame checksum is {stored:#010x}, contents give {computed:#010x}"),
        ));
    }

    let format = match format_code {
        CODE_BINCODE | CODE_JSON | CODE_MSGPACK => builtin_format(format_code),
        CODE_RAW => SerializationFormat::Raw,
        CODE_CUSTOM => {
            let name = &header[V2_FIXED_LEN + 1..name_end];
            match std::str::from_utf8(name) {
                Ok(name) if !name.is_empty() => SerializationFormat::Custom(name.to_owned()),
                _ => {
                    return Err(CodecError::msg(
                        ErrorKind::UnknownFormat,
                        "invalid custom format name in frame",
                    ))
                }
            }
        }
        code => return Err(unknown_format(code, 2)),
    };
    let compression = compression_from_code(compression_code)?;
    let headers_count = if version == FrameVersion::V3 {
        check_headers(&frame[headers.clone()])?
    } else {
        0
    };
    let header = FrameHeader {
        version,
        format: Some(format),
        compression,
        header_len,
        payload_len,
        headers,
        headers_count,
    };
    Ok((header, payload))
}

fn invalid_headers(why: &str) -> CodecError {
    CodecError::msg(
        ErrorKind::InvalidHeaders,
        format!("invalid record headers in frame: {why}"),
    )
}

/// Checks a version 3 headers section (a u32 count, then per header a u16 name length, the
/// UTF-8 name, a u32 value length and the value) without allocating; returns the count.
fn check_headers(section: &[u8]) -> Result<usize, CodecError> {
    let count = section
        .get(..4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .ok_or_else(|| invalid_headers("no count"))?;
    let mut rest = &section[4..];
    let mut seen = 0usize;
    while !rest.is_empty() {
        let (name, _, next) =
            next_header(rest).ok_or_else(|| invalid_headers("a header runs past the section"))?;
        if std::str::from_utf8(name).is_err() {
            return Err(invalid_headers("a name is not UTF-8"));
        }
        seen += 1;
        rest = next;
    }
    if seen != count {
        return Err(invalid_headers(&format!(
            "the count says {count}, the section holds {seen}"
        )));
    }
    Ok(count)
}

/// The first header of `section` (past the count) and what follows it; `None` when the
/// section ends inside it.
fn next_header(section: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let name_len = usize::from(u16::from_le_bytes([*section.first()?, *section.get(1)?]));
    let name = section.get(2..2 + name_len)?;
    let at = 2 + name_len;
    let len = section.get(at..at + 4)?;
    let value_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let value = section.get(at + 4..(at + 4).checked_add(value_len)?)?;
    let rest = &section[at + 4 + value_len..];
    Some((name, value, rest))
}

/// Writes `headers` as a version 3 headers section into `out` (exactly
/// [`Headers::encoded_len`] bytes).
fn write_headers(out: &mut [u8], headers: &Headers) -> Result<(), CodecError> {
    let too_large = |what: &str| {
        CodecError::msg(
            ErrorKind::TooLarge,
            format!("a record header's {what} does not fit a frame"),
        )
    };
    let count = u32::try_from(headers.len()).map_err(|_| too_large("count"))?;
    out[..4].copy_from_slice(&count.to_le_bytes());
    let mut at = 4;
    for (name, value) in headers {
        let name_len = u16::try_from(name.len()).map_err(|_| too_large("name (over 64 KiB)"))?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_large("value (over 4 GiB)"))?;
        out[at..at + 2].copy_from_slice(&name_len.to_le_bytes());
        at += 2;
        out[at..at + name.len()].copy_from_slice(name.as_bytes());
        at += name.len();
        out[at..at + 4].copy_from_slice(&value_len.to_le_bytes());
        at += 4;
        out[at..at + value.len()].copy_from_slice(value);
        at += value.len();
    }
    Ok(())
}

fn builtin_format(code: u8) -> SerializationFormat {
    match code {
        CODE_BINCODE => SerializationFormat::Bincode,
        CODE_JSON => SerializationFormat::Json,
        _ => SerializationFormat::MessagePack,
    }
}

fn unknown_format(code: u8, version: u8) -> CodecError {
    CodecError::msg(
        ErrorKind::UnknownFormat,
        format!("unknown format code {code} in a version {version} frame"),
    )
}

fn compression_from_code(code: u8) -> Result<Compression, CodecError> {
    Compression::from_code(code).ok_or_else(|| {
        CodecError::msg(
            ErrorKind::UnknownCompression,
            format!("unknown compression code {code}"),
        )
    })
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

/// How long the header of a frame of `format` is in `version` (with `headers`, in version 3).
pub(crate) fn header_len(version: FrameVersion, format: &SerializationFormat, headers: &Headers) -> usize {
    let name = match format {
        SerializationFormat::Custom(name) => 1 + name.len(),
        _ => 0,
    };
    match version {
        FrameVersion::V1 => V1_HEADER_LEN,
        FrameVersion::V2 => V2_FIXED_LEN + name + V2_CRC_LEN,
        FrameVersion::V3 => V2_FIXED_LEN + name + 4 + headers.encoded_len() + V2_CRC_LEN,
    }
}

/// Fills in the first `header_len` bytes of `frame`, whose payload follows them.
///
/// The caller has checked that the format can be written in this version (raw has no version
/// 1 code; custom names are 1 to 255 bytes).
pub(crate) fn write_header(
    frame: &mut [u8],
    header_len: usize,
    version: FrameVersion,
    format: &SerializationFormat,
    compression: Compression,
    headers: &Headers,
) -> Result<(), CodecError> {
    let (header, payload) = frame.split_at_mut(header_len);
    header[..3].copy_from_slice(MAGIC);
    header[3] = version.as_u8();
    header[4] = format.code();
    header[5] = compression.code();
    if version == FrameVersion::V1 {
        return Ok(());
    }
    let len = u32::try_from(payload.len()).map_err(|_| {
        CodecError::msg(
            ErrorKind::TooLarge,
            format!(
                "a {} byte payload does not fit a version 2 or 3 frame (at most 4 GiB)",
                payload.len()
            ),
        )
    })?;
    header[6..10].copy_from_slice(&len.to_le_bytes());
    let mut name_end = V2_FIXED_LEN;
    if let SerializationFormat::Custom(name) = format {
        // The codec checked 1..=255 bytes when it was built.
        header[V2_FIXED_LEN] = name.len() as u8;
        header[V2_FIXED_LEN + 1..V2_FIXED_LEN + 1 + name.len()].copy_from_slice(name.as_bytes());
        name_end += 1 + name.len();
    }
    let crc_at = header_len - V2_CRC_LEN;
    if version == FrameVersion::V3 {
        let section_len = crc_at - name_end - 4;
        let len = u32::try_from(section_len).map_err(|_| {
            CodecError::msg(
                ErrorKind::TooLarge,
                "record headers over 4 GiB do not fit a frame",
            )
        })?;
        header[name_end..name_end + 4].copy_from_slice(&len.to_le_bytes());
        write_headers(&mut header[name_end + 4..crc_at], headers)?;
    }
    let crc = checksum(&header[..crc_at], payload);
    header[crc_at..].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}
