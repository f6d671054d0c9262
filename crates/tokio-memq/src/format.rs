//! Which serialization format a payload is in, and its compact tag.

use std::sync::Arc;

use parking_lot::RwLock;

/// The serialization format of a message payload (the 1.0.0 enum).
///
/// A payload published with [`Publisher::publish_bytes`](crate::Publisher::publish_bytes)
/// carries the format its publisher named; a value published natively
/// carries [`Native`](SerializationFormat::Native).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SerializationFormat {
    /// bincode.
    Bincode,
    /// JSON.
    Json,
    /// MessagePack.
    MessagePack,
    /// A Rust value stored as is (`Arc<T>`), never serialized.
    Native,
    /// A format registered by name.
    Custom(String),
}

impl SerializationFormat {
    /// The format's name as 1.0.0 spelled it.
    pub fn as_str(&self) -> &str {
        match self {
            SerializationFormat::Bincode => "bincode",
            SerializationFormat::Json => "json",
            SerializationFormat::MessagePack => "messagepack",
            SerializationFormat::Native => "native",
            SerializationFormat::Custom(s) => s,
        }
    }
}

/// The format as stored with each retained message: two bytes instead of
/// a `String`, so a message's overhead stays small. Custom names are
/// interned once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FormatTag(u16);

const CUSTOM_BASE: u16 = 16;

static CUSTOM: RwLock<Vec<Arc<str>>> = RwLock::new(Vec::new());

impl FormatTag {
    pub(crate) const NATIVE: FormatTag = FormatTag(3);

    pub(crate) fn of(format: &SerializationFormat) -> FormatTag {
        match format {
            SerializationFormat::Bincode => FormatTag(0),
            SerializationFormat::Json => FormatTag(1),
            SerializationFormat::MessagePack => FormatTag(2),
            SerializationFormat::Native => FormatTag::NATIVE,
            SerializationFormat::Custom(name) => {
                if let Some(i) = CUSTOM.read().iter().position(|n| **n == **name) {
                    return FormatTag(CUSTOM_BASE + i as u16);
                }
                let mut names = CUSTOM.write();
                let i = match names.iter().position(|n| **n == **name) {
                    Some(i) => i,
                    None => {
                        names.push(name.as_str().into());
                        names.len() - 1
                    }
                };
                // More than 65,000 distinct custom format names in one
                // process is not a real workload; share the last tag.
                FormatTag(CUSTOM_BASE.saturating_add(u16::try_from(i).unwrap_or(u16::MAX - CUSTOM_BASE)))
            }
        }
    }

    pub(crate) fn format(self) -> SerializationFormat {
        match self.0 {
            0 => SerializationFormat::Bincode,
            1 => SerializationFormat::Json,
            2 => SerializationFormat::MessagePack,
            3 => SerializationFormat::Native,
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
            SerializationFormat::Custom("avro".into()),
            SerializationFormat::Custom("cbor".into()),
        ] {
            assert_eq!(FormatTag::of(&f).format(), f);
        }
        assert_eq!(
            FormatTag::of(&SerializationFormat::Custom("avro".into())),
            FormatTag::of(&SerializationFormat::Custom("avro".into()))
        );
    }
}
