//! The format of a stored payload, in two bytes.
//!
//! Each retained message keeps a [`FormatTag`] instead of a
//! `SerializationFormat` (whose `Custom` variant holds a `String`) or a
//! `Codec`, so that a message costs 64 bytes beyond its payload. A tag is
//! one of: a built-in format, a custom format name interned once per
//! process, or a codec interned once per process (messages encoded with a
//! topic's or publisher's serialization defaults carry the codec that
//! encoded them, so receivers decode them with the same pipeline).

use memq_codec::Codec;
pub use memq_codec::SerializationFormat;
use parking_lot::RwLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FormatTag(u16);

const CUSTOM_BASE: u16 = 16;
const CODEC_BASE: u16 = 0x8000;

static CUSTOM: RwLock<Vec<std::sync::Arc<str>>> = RwLock::new(Vec::new());
static CODECS: RwLock<Vec<Codec>> = RwLock::new(Vec::new());

/// Interns `item` in `table` (found by `same`), returning its index.
fn intern<T: Clone>(table: &RwLock<Vec<T>>, item: &T, same: impl Fn(&T, &T) -> bool) -> usize {
    if let Some(i) = table.read().iter().position(|x| same(x, item)) {
        return i;
    }
    let mut t = table.write();
    match t.iter().position(|x| same(x, item)) {
        Some(i) => i,
        None => {
            t.push(item.clone());
            t.len() - 1
        }
    }
}

impl FormatTag {
    pub(crate) const NATIVE: FormatTag = FormatTag(3);

    pub(crate) fn of(format: &SerializationFormat) -> FormatTag {
        match format {
            SerializationFormat::Bincode => FormatTag(0),
            SerializationFormat::Json => FormatTag(1),
            SerializationFormat::MessagePack => FormatTag(2),
            SerializationFormat::Native => FormatTag::NATIVE,
            SerializationFormat::Raw => FormatTag(4),
            other => {
                let name: std::sync::Arc<str> = other.as_str().into();
                let i = intern(&CUSTOM, &name, |a, b| a == b);
                // Past 32,000 distinct names (not a real workload) they share a tag.
                FormatTag(
                    CUSTOM_BASE
                        .saturating_add(u16::try_from(i).unwrap_or(u16::MAX))
                        .min(CODEC_BASE - 1),
                )
            }
        }
    }

    /// The tag of a payload encoded by `codec`.
    pub(crate) fn of_codec(codec: &Codec) -> FormatTag {
        let i = intern(&CODECS, codec, Codec::ptr_eq);
        match u16::try_from(i).ok().and_then(|i| CODEC_BASE.checked_add(i)) {
            Some(tag) => FormatTag(tag),
            // More than 32,000 distinct codecs: fall back to the format
            // (receivers then decode by the frame header alone).
            None => FormatTag::of(codec.format()),
        }
    }

    /// The codec that encoded the payload, if one did.
    pub(crate) fn codec(self) -> Option<Codec> {
        let i = self.0.checked_sub(CODEC_BASE)?;
        CODECS.read().get(usize::from(i)).cloned()
    }

    /// The format and, for encoded payloads, the codec (one table lookup).
    pub(crate) fn resolve(self) -> (SerializationFormat, Option<Codec>) {
        match self.codec() {
            Some(c) => (c.format().clone(), Some(c)),
            None => (self.format(), None),
        }
    }

    pub(crate) fn format(self) -> SerializationFormat {
        match self.0 {
            0 => SerializationFormat::Bincode,
            1 => SerializationFormat::Json,
            2 => SerializationFormat::MessagePack,
            3 => SerializationFormat::Native,
            4 => SerializationFormat::Raw,
            n if n >= CODEC_BASE => match self.codec() {
                Some(c) => c.format().clone(),
                None => SerializationFormat::Custom("unknown".to_owned()),
            },
            n => {
                let names = CUSTOM.read();
                let name = names
                    .get(usize::from(n - CUSTOM_BASE))
                    .map_or("unknown", |n| &**n);
                SerializationFormat::Custom(name.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for f in [
            SerializationFormat::Bincode,
            SerializationFormat::Json,
            SerializationFormat::MessagePack,
            SerializationFormat::Native,
            SerializationFormat::Raw,
            SerializationFormat::Custom("avro".into()),
            SerializationFormat::Custom("cbor".into()),
        ] {
            assert_eq!(FormatTag::of(&f).format(), f);
            assert!(FormatTag::of(&f).codec().is_none());
        }
        assert_eq!(
            FormatTag::of(&SerializationFormat::Custom("avro".into())),
            FormatTag::of(&SerializationFormat::Custom("avro".into()))
        );
    }

    #[test]
    fn codecs_are_interned_by_identity() {
        let codec = Codec::new(
            SerializationFormat::Json,
            memq_codec::SerializationConfig::Default,
            memq_codec::PipelineConfig::default(),
        )
        .unwrap();
        let tag = FormatTag::of_codec(&codec);
        assert_eq!(tag, FormatTag::of_codec(&codec.clone()));
        assert!(tag.codec().unwrap().ptr_eq(&codec));
        assert_eq!(tag.format(), SerializationFormat::Json);
    }
}
