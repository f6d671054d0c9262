//! How much memory and stack decoding may use: [`DecodeLimits`].

/// Bounds on what decoding may allocate, and on how deep a decoded value may nest.
///
/// ## Size
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
/// (strings and byte arrays are checked against the bytes actually present; the capacity
/// sequences and maps reserve from their declared lengths is at most one element per byte of
/// the payload over the whole decode, however deep they nest, and longer ones grow as they are
/// read), so the decoded value stays proportional to the payload. Nor does a length field
/// make a decode loop: a decode reads at most one element of sequences and maps per byte of
/// payload plus 65,536, and refuses more with [`TooLarge`](crate::ErrorKind::TooLarge)
/// (elements that cost no input, as zero-sized values and structs whose fields are all
/// skipped do in bincode, would otherwise let nine bytes declare `u64::MAX` of them; a
/// custom format that expands its input is bound by the same count).
///
/// The default limit is 64 MiB ([`DEFAULT_MAX_DECODED_SIZE`](Self::DEFAULT_MAX_DECODED_SIZE)).
///
/// ## Depth
///
/// A deserializer goes one call deeper for every level of nesting it reads, so a value nested
/// deeply enough would exhaust the thread's stack, which aborts the process. `max_depth`
/// bounds the nesting of the value decoded by every serde format (bincode, JSON, MessagePack
/// and custom formats); deeper input is refused with [`TooDeep`](crate::ErrorKind::TooDeep)
/// before the stack runs out. The rule is the same in every format, and is serde_json's:
/// the top-level value is on level 1, and the elements of a sequence, the keys and values of
/// a map, the fields of a struct, the value in a `Some` or a newtype struct, and the data of
/// an enum variant are one level below it (a tuple or struct variant's fields two, as in
/// JSON's `{"Variant":[...]}`). A container is refused as it opens on the last allowed level,
/// even if empty. So at the default of 128
/// ([`DEFAULT_MAX_DEPTH`](Self::DEFAULT_MAX_DEPTH)), 127 nested sequences decode and 128 do
/// not; a recursive `enum Tree { Leaf, Node(Box<Tree>) }` decodes up to 127 `Node`s deep.
///
/// At the default, the deepest accepted value decodes on a thread with a 2 MiB stack (Rust's
/// default for spawned threads) even in an unoptimized build. Raise the limit only for
/// trusted input or on threads with a larger stack. JSON keeps serde_json's own fixed limit
/// of 128 levels as well (reported as `TooDeep` too), so a larger `max_depth` does not let
/// deeper JSON through. The raw format has no nesting to limit.
///
/// # Examples
///
/// ```
/// use memq_codec::DecodeLimits;
///
/// let limits = DecodeLimits::new().with_max_decoded_size(1 << 20).with_max_depth(16);
/// assert_eq!(limits.max_decoded_size(), 1 << 20);
/// assert_eq!(limits.max_depth(), 16);
/// assert_eq!(DecodeLimits::default().max_decoded_size(), 64 << 20);
/// assert_eq!(DecodeLimits::default().max_depth(), 128);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    max_decoded_size: usize,
    max_depth: usize,
}

impl DecodeLimits {
    /// The default of [`max_decoded_size`](Self::max_decoded_size): 64 MiB.
    pub const DEFAULT_MAX_DECODED_SIZE: usize = 64 << 20;

    /// The default of [`max_depth`](Self::max_depth): 128 levels, serde_json's limit.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// The default limits.
    pub const fn new() -> Self {
        DecodeLimits {
            max_decoded_size: Self::DEFAULT_MAX_DECODED_SIZE,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }

    /// No limit at all (`usize::MAX` for both): only for input from a trusted source.
    ///
    /// Without a depth limit, input nested deeply enough overflows the stack and aborts the
    /// process, so even trusted input must be known to be shallow. To lift only the size
    /// limit, use [`with_max_decoded_size`](Self::with_max_decoded_size)`(usize::MAX)`.
    pub const fn unlimited() -> Self {
        DecodeLimits {
            max_decoded_size: usize::MAX,
            max_depth: usize::MAX,
        }
    }

    /// These limits with the largest buffer decoding may produce set to `bytes`.
    pub const fn with_max_decoded_size(self, bytes: usize) -> Self {
        DecodeLimits {
            max_decoded_size: bytes,
            ..self
        }
    }

    /// These limits with the deepest nesting a decoded value may have set to `levels` (see
    /// [Depth](Self#depth) for how levels are counted; 0 acts as 1, which allows a lone
    /// scalar only).
    ///
    /// # Examples
    ///
    /// ```
    /// use memq_codec::{Codec, DecodeLimits, ErrorKind, PipelineConfig, SerializationConfig, SerializationFormat};
    ///
    /// let codec = Codec::new(SerializationFormat::Json, SerializationConfig::Default, PipelineConfig::default())?
    ///     .with_limits(DecodeLimits::new().with_max_depth(3));
    /// // The outer list, the inner list and the numbers: three levels.
    /// assert_eq!(codec.decode::<Vec<Vec<u8>>>(b"[[1],[2]]")?, [[1], [2]]);
    /// let err = codec.decode::<Vec<Vec<Vec<u8>>>>(b"[[[1]]]").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TooDeep);
    /// assert!(err.to_string().starts_with("nesting deeper than 3 levels"));
    /// # Ok::<(), memq_codec::CodecError>(())
    /// ```
    pub const fn with_max_depth(self, levels: usize) -> Self {
        DecodeLimits {
            max_depth: levels,
            ..self
        }
    }

    /// The largest buffer decoding may produce, in bytes.
    pub const fn max_decoded_size(&self) -> usize {
        self.max_decoded_size
    }

    /// The deepest nesting a decoded value may have, in levels.
    pub const fn max_depth(&self) -> usize {
        self.max_depth
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::new()
    }
}
