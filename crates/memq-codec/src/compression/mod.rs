//! Compression, one algorithm per file, and the size-limited buffer they decompress into.

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "zstd")]
mod zstd;

#[cfg(feature = "gzip")]
use std::io::{self, Read};

use crate::error::{CodecError, ErrorKind};
use crate::limits::DecodeLimits;
use crate::pipeline::{Compression, CompressionConfig};

/// The gzip level 1.0.0 used when none was given.
#[cfg(feature = "gzip")]
const DEFAULT_GZIP_LEVEL: u32 = 6;

#[cfg(not(all(feature = "gzip", feature = "zstd")))]
fn disabled(compression: Compression, feature: &str) -> CodecError {
    CodecError::msg(
        ErrorKind::UnsupportedCompression,
        format!("{compression} compression needs the `{feature}` feature of memq-codec"),
    )
}

/// Checks that `config` can be used: its feature is enabled and its level is in range.
pub(crate) fn validate(config: &CompressionConfig) -> Result<(), CodecError> {
    match config {
        CompressionConfig::None => Ok(()),
        #[cfg(feature = "gzip")]
        CompressionConfig::Gzip { level } => match level {
            Some(level) if *level > 9 => Err(CodecError::msg(
                ErrorKind::InvalidConfig,
                format!("gzip level {level} is out of range 0..=9"),
            )),
            _ => Ok(()),
        },
        #[cfg(not(feature = "gzip"))]
        CompressionConfig::Gzip { .. } => Err(disabled(Compression::Gzip, "gzip")),
        #[cfg(feature = "zstd")]
        CompressionConfig::Zstd { level } => zstd::validate(*level),
        #[cfg(not(feature = "zstd"))]
        CompressionConfig::Zstd { .. } => Err(disabled(Compression::Zstd, "zstd")),
    }
}

/// Appends `input`, compressed as `config` says, to `out`.
pub(crate) fn compress(
    config: &CompressionConfig,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    match config {
        CompressionConfig::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        CompressionConfig::Gzip { level } => gzip::compress(level.unwrap_or(DEFAULT_GZIP_LEVEL), input, out),
        #[cfg(not(feature = "gzip"))]
        CompressionConfig::Gzip { .. } => Err(disabled(Compression::Gzip, "gzip")),
        #[cfg(feature = "zstd")]
        CompressionConfig::Zstd { level } => zstd::compress(*level, input, out),
        #[cfg(not(feature = "zstd"))]
        CompressionConfig::Zstd { .. } => Err(disabled(Compression::Zstd, "zstd")),
    }
}

/// Decompresses `input` (not `Compression::None`) into a new buffer of at most
/// `limits.max_decoded_size()` bytes. With `strict`, bytes after the compressed stream are an
/// error.
pub(crate) fn decompress(
    compression: Compression,
    input: &[u8],
    limits: &DecodeLimits,
    strict: bool,
) -> Result<Vec<u8>, CodecError> {
    let limit = limits.max_decoded_size();
    let _ = strict; // (unread when neither compression is built)
    match compression {
        Compression::None => {
            if input.len() > limit {
                return Err(too_large(limit, "payload"));
            }
            Ok(input.to_vec())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::decompress(input, limit, strict),
        #[cfg(not(feature = "gzip"))]
        Compression::Gzip => Err(disabled(Compression::Gzip, "gzip")),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::decompress(input, limit, strict),
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => Err(disabled(Compression::Zstd, "zstd")),
    }
}

/// The error for output that would pass `limit`.
pub(crate) fn too_large(limit: usize, what: &str) -> CodecError {
    CodecError::msg(
        ErrorKind::TooLarge,
        format!("{what} exceeds the decode limit of {limit} bytes"),
    )
}

/// Grows `buf` to a capacity of exactly `capacity`, failing instead of aborting when memory
/// is short.
#[cfg(any(feature = "gzip", feature = "zstd"))]
pub(crate) fn reserve_exact(buf: &mut Vec<u8>, capacity: usize) -> Result<(), CodecError> {
    let additional = capacity.saturating_sub(buf.len());
    buf.try_reserve_exact(additional).map_err(|e| {
        CodecError::with_source(
            ErrorKind::TooLarge,
            format!("cannot allocate {capacity} bytes to decode into"),
            e,
        )
    })
}

/// How much zeroed room [`read_limited`] adds to its buffer at a time.
#[cfg(feature = "gzip")]
const CHUNK: usize = 64 << 10;

/// Reads `reader` to its end into a new buffer that never grows past `limit` bytes, starting
/// with room for `initial` bytes (a hint, capped at `limit`).
///
/// The buffer's capacity doubles up to the limit (never past it); once it holds `limit` bytes
/// one more byte from the reader means the output is too large, and reading stops there. So
/// however much the stream would expand, at most `limit` bytes are ever allocated for it.
#[cfg(feature = "gzip")]
pub(crate) fn read_limited<R: Read>(
    reader: &mut R,
    limit: usize,
    initial: usize,
    what: &str,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reserve_exact(&mut out, initial.min(limit))?;
    let mut filled = 0;
    loop {
        if filled == out.len() {
            if out.len() == out.capacity() {
                if out.capacity() >= limit {
                    let mut probe = [0u8; 1];
                    if read_some(reader, &mut probe, what)? == 0 {
                        break;
                    }
                    return Err(too_large(limit, what));
                }
                let grown = out.capacity().max(CHUNK).saturating_mul(2).min(limit);
                reserve_exact(&mut out, grown)?;
            }
            let len = out.len().saturating_add(CHUNK).min(out.capacity());
            out.resize(len, 0);
        }
        let n = read_some(reader, &mut out[filled..], what)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    out.truncate(filled);
    Ok(out)
}

/// One `read`, retried on `Interrupted`, with errors mapped to codec errors.
#[cfg(feature = "gzip")]
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8], what: &str) -> Result<usize, CodecError> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(CodecError::with_source(
                    ErrorKind::Truncated,
                    format!("{what} stream ends early"),
                    e,
                ))
            }
            Err(e) => {
                return Err(CodecError::with_source(
                    ErrorKind::Decompress,
                    format!("corrupt {what} stream"),
                    e,
                ))
            }
        }
    }
}
