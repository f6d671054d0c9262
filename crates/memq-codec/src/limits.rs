//! How much memory decoding may use: [`DecodeLimits`].

/// Bounds on what decoding may allocate.
///
/// `max_decoded_size` bounds every buffer decoding produces: the output of a post-processor,
/// of the decompressor and of a pre-processor, and so the serialized payload handed to the
/// deserializer (an uncompressed payload larger than the limit is refused too, so the rule is
/// the same whatever the pipeline). Decompression streams into a buffer that never grows past
/// the limit and stops as soon as the output would exceed it, so a small "bomb" (a few bytes
/// that expand to gigabytes) is refused after at most `max_decoded_size` bytes of output,
/// never expanded in full. A zstd frame that declares a larger content size is refused before
/// any decompression.
///
/// The deserializers read from that payload and never allocate from a length field alone
/// (strings and byte arrays are checked against the bytes actually present, sequences
/// pre-allocate at most serde's cautious 1 MiB), so the decoded value stays proportional to the
/// payload.
///
/// The default limit is 64 MiB ([`DEFAULT_MAX_DECODED_SIZE`](Self::DEFAULT_MAX_DECODED_SIZE)).
///
/// # Examples
///
/// ```
/// use memq_codec::DecodeLimits;
///
/// let limits = DecodeLimits::new().with_max_decoded_size(1 << 20);
/// assert_eq!(limits.max_decoded_size(), 1 << 20);
/// assert_eq!(DecodeLimits::default().max_decoded_size(), 64 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    max_decoded_size: usize,
}

impl DecodeLimits {
    /// The default of [`max_decoded_size`](Self::max_decoded_size): 64 MiB.
    pub const DEFAULT_MAX_DECODED_SIZE: usize = 64 << 20;

    /// The default limits.
    pub const fn new() -> Self {
        DecodeLimits {
            max_decoded_size: Self::DEFAULT_MAX_DECODED_SIZE,
        }
    }

    /// No limit at all (`usize::MAX`): only for input from a trusted source.
    pub const fn unlimited() -> Self {
        DecodeLimits {
            max_decoded_size: usize::MAX,
        }
    }

    /// These limits with the largest buffer decoding may produce set to `bytes`.
    pub const fn with_max_decoded_size(self, bytes: usize) -> Self {
        DecodeLimits {
            max_decoded_size: bytes,
        }
    }

    /// The largest buffer decoding may produce, in bytes.
    pub const fn max_decoded_size(&self) -> usize {
        self.max_decoded_size
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::new()
    }
}
