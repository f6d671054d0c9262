//! zstd (the C library through the `zstd` crate): one frame, with its content size recorded.
//!
//! Decoding uses zstd's one-shot decompression into a buffer of a fixed capacity, which needs
//! no window buffer of its own and fails cleanly when the output does not fit. A frame that
//! records its content size (every frame this crate writes) is decoded in one pass into a
//! buffer of exactly that size, or refused at once if the size passes the limit. A frame
//! without one (1.0.0 wrote those) is tried with a growing buffer, doubling up to the limit,
//! so a bomb is refused after at most `limit` bytes of output.

use std::cell::RefCell;
use std::io::Write;

use ::zstd::zstd_safe::{self, zstd_sys::ZSTD_ErrorCode, DCtx};

use super::{reserve_exact, too_large};
use crate::error::{CodecError, ErrorKind};

/// The four bytes a zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The smallest buffer tried for a frame of unknown size.
const MIN_CAPACITY: usize = 64 << 10;

pub(crate) fn validate(level: i32) -> Result<(), CodecError> {
    let range = ::zstd::compression_level_range();
    if level == 0 || range.contains(&level) {
        Ok(())
    } else {
        Err(CodecError::msg(
            ErrorKind::InvalidConfig,
            format!(
                "zstd level {level} is out of range {}..={}",
                range.start(),
                range.end()
            ),
        ))
    }
}

pub(crate) fn compress(level: i32, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let fail = |e| CodecError::with_source(ErrorKind::Compress, "zstd compression failed", e);
    let mut encoder = ::zstd::stream::write::Encoder::new(out, level).map_err(fail)?;
    // Pledging the size records it in the frame, so the decoder can allocate exactly.
    encoder
        .set_pledged_src_size(Some(input.len() as u64))
        .map_err(fail)?;
    encoder.write_all(input).map_err(fail)?;
    encoder.finish().map_err(fail)?;
    Ok(())
}

/// Decompresses `input`. With `strict` (inside a version 2 or 3 frame, whose payload must
/// be consumed exactly) it holds one zstd frame and nothing after it: a second frame or any
/// other bytes after the first are `TrailingBytes`, as they are after a gzip stream. Without
/// (a 1.0.0 frame), zstd's own rule applies: concatenated frames decode as one stream.
pub(crate) fn decompress(input: &[u8], limit: usize, strict: bool) -> Result<Vec<u8>, CodecError> {
    if strict {
        // A frame cut short fails here too; the decode below reports it as zstd sees it.
        if let Ok(first) = zstd_safe::find_frame_compressed_size(input) {
            if first < input.len() {
                return Err(CodecError::msg(
                    ErrorKind::TrailingBytes,
                    format!("{} bytes after the end of the zstd frame", input.len() - first),
                ));
            }
        }
    }
    let declared = zstd_safe::get_frame_content_size(input).map_err(|_| {
        // A frame header is at most 18 bytes; a short input that could be its start is cut.
        let prefix = &input[..input.len().min(ZSTD_MAGIC.len())];
        if input.len() < 18 && ZSTD_MAGIC.starts_with(prefix) {
            CodecError::msg(ErrorKind::Truncated, "zstd stream ends inside its frame header")
        } else {
            CodecError::msg(
                ErrorKind::Decompress,
                "corrupt zstd stream: no valid frame header",
            )
        }
    })?;
    let capacity = match declared {
        Some(size) if size > limit as u64 => {
            return Err(CodecError::msg(
                ErrorKind::TooLarge,
                format!("zstd frame declares {size} bytes, over the decode limit of {limit} bytes"),
            ))
        }
        Some(size) => size as usize,
        None => input.len().saturating_mul(4).max(MIN_CAPACITY).min(limit),
    };
    with_dctx(|dctx| decompress_with(dctx, input, capacity, limit))
}

thread_local! {
    /// A decompression context per thread, reused: creating one costs more than decoding a
    /// small message.
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's cached context, or with a fresh one if the cache is busy
/// (re-entered) or gone (thread teardown).
fn with_dctx<T>(f: impl FnOnce(&mut DCtx<'static>) -> Result<T, CodecError>) -> Result<T, CodecError> {
    let mut f = Some(f);
    let cached = DCTX
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.is_none() {
                *slot = DCtx::try_create();
            }
            let dctx = slot.as_mut()?;
            f.take().map(|f| f(dctx))
        })
        .ok()
        .flatten();
    match (cached, f) {
        (Some(result), _) => result,
        (None, Some(f)) => {
            let mut dctx = DCtx::try_create().ok_or_else(|| {
                CodecError::msg(
                    ErrorKind::TooLarge,
                    "cannot allocate a zstd decompression context",
                )
            })?;
            f(&mut dctx)
        }
        // `f` is taken only when the cached context ran it.
        (None, None) => Err(CodecError::msg(
            ErrorKind::Decompress,
            "zstd decompression context unavailable",
        )),
    }
}

fn decompress_with(
    dctx: &mut DCtx<'static>,
    input: &[u8],
    mut capacity: usize,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    loop {
        let mut out = Vec::new();
        reserve_exact(&mut out, capacity)?;
        match dctx.decompress(&mut out, input) {
            Ok(_) => return Ok(out),
            Err(code) if zstd_safe::is_error_kind(code, ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall) => {
                if capacity >= limit {
                    return Err(too_large(limit, "zstd"));
                }
                // Free this attempt before allocating the next, so at most one buffer exists.
                drop(out);
                capacity = capacity.max(MIN_CAPACITY / 2).saturating_mul(2).min(limit);
            }
            Err(code) if zstd_safe::is_error_kind(code, ZSTD_ErrorCode::ZSTD_error_srcSize_wrong) => {
                return Err(CodecError::msg(ErrorKind::Truncated, "zstd stream ends early"));
            }
            Err(code) => {
                return Err(CodecError::msg(
                    ErrorKind::Decompress,
                    format!("corrupt zstd stream: {}", zstd_safe::get_error_name(code)),
                ))
            }
        }
    }
}
