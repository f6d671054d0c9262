//! gzip (flate2 with its pure-Rust miniz_oxide backend): one member, as 1.0.0 wrote it.

use std::io::Write;

use flate2::bufread::GzDecoder;

use super::read_limited;
use crate::error::{CodecError, ErrorKind};

/// The most a deflate stream can expand: 258 bytes per 2-bit code, about 1032 to 1.
const MAX_RATIO: usize = 1032;

pub(crate) fn compress(level: u32, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let fail = |e| CodecError::with_source(ErrorKind::Compress, "gzip compression failed", e);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
    encoder.write_all(input).map_err(fail)?;
    encoder.finish().map_err(fail)?;
    Ok(())
}

pub(crate) fn decompress(input: &[u8], limit: usize, strict: bool) -> Result<Vec<u8>, CodecError> {
    let mut decoder = GzDecoder::new(input);
    let out = read_limited(&mut decoder, limit, initial_capacity(input), "gzip")?;
    if strict {
        let rest = decoder.into_inner();
        if !rest.is_empty() {
            return Err(CodecError::msg(
                ErrorKind::TrailingBytes,
                format!("{} bytes after the end of the gzip stream", rest.len()),
            ));
        }
    }
    Ok(out)
}

/// A starting buffer size: the gzip trailer's size field (the input size modulo 4 GiB) when
/// it is plausible for this much compressed data, else four times the input. It is only a
/// hint; the limit is enforced while reading.
fn initial_capacity(input: &[u8]) -> usize {
    let fallback = input.len().saturating_mul(4);
    let Some(trailer) = input.len().checked_sub(4).and_then(|at| input.get(at..)) else {
        return fallback;
    };
    let isize = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
    if isize <= input.len().saturating_mul(MAX_RATIO) {
        isize
    } else {
        fallback
    }
}
