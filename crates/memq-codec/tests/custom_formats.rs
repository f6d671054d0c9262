//! Custom formats registered through the `CustomFormat` trait.

#![cfg(feature = "json")]

mod common;

use std::any::Any;
use std::sync::Arc;

use common::{register_test_format, swap, Sample, TEST_FORMAT};
use memq_codec::{
    decode_frame, Codec, CodecError, CustomFormat, DecodeLimits, DefaultsRegistry, ErasedValue, ErrorKind,
    FrameHeader, FrameVersion, PipelineConfig, SerializationConfig, SerializationFactory,
    SerializationFormat, ValueSink,
};

fn custom() -> SerializationFormat {
    SerializationFormat::Custom(TEST_FORMAT.into())
}

fn framed() -> PipelineConfig {
    PipelineConfig {
        use_magic_header: true,
        ..Default::default()
    }
}

#[test]
fn a_registered_format_encodes_and_decodes_by_name() {
    register_test_format();
    let codec = Codec::new(custom(), SerializationConfig::Default, PipelineConfig::default()).unwrap();
    let bytes = codec.encode(&common::sample()).unwrap();
    assert_eq!(swap(&bytes), serde_json::to_vec(&common::sample()).unwrap());
    assert_eq!(codec.decode::<Sample>(&bytes).unwrap(), common::sample());
}

#[test]
fn a_version_2_frame_names_the_format_so_any_reader_finds_it() {
    register_test_format();
    let codec = Codec::new(custom(), SerializationConfig::Default, framed()).unwrap();
    let frame = codec.encode(&[1, 2, 3]).unwrap();
    let header = FrameHeader::parse(&frame).unwrap().unwrap();
    assert_eq!(header.format(), Some(&custom()));
    assert_eq!(header.header_len(), 15 + TEST_FORMAT.len());
    let limits = DecodeLimits::default();
    assert_eq!(
        decode_frame::<Vec<u8>>(&frame, &SerializationFormat::Native, &limits).unwrap(),
        [1, 2, 3]
    );
}

#[test]
fn a_version_1_frame_of_a_custom_format_decodes_with_that_format() {
    register_test_format();
    let codec = Codec::new(custom(), SerializationConfig::Default, framed())
        .unwrap()
        .with_frame_version(FrameVersion::V1)
        .unwrap();
    let frame = codec.encode("v1").unwrap();
    assert_eq!(&frame[..6], b"TMQ\x01\xff\x00");
    assert_eq!(codec.decode::<String>(&frame).unwrap(), "v1");
    let limits = DecodeLimits::default();
    assert_eq!(decode_frame::<String>(&frame, &custom(), &limits).unwrap(), "v1");
    assert_eq!(
        decode_frame::<String>(&frame, &SerializationFormat::Json, &limits)
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownFormat
    );
}

/// A format that records the configuration it was given.
struct Configured;

#[derive(Debug, PartialEq)]
struct Prefix(&'static str);

impl CustomFormat for Configured {
    fn name(&self) -> &str {
        "configured"
    }

    fn serialize(
        &self,
        value: &ErasedValue<'_>,
        config: &SerializationConfig,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if let SerializationConfig::Custom(any) = config {
            let any: &dyn Any = &**any;
            if let Some(Prefix(prefix)) = any.downcast_ref::<Prefix>() {
                out.extend_from_slice(prefix.as_bytes());
            }
        }
        serde_json::to_writer(out, value).map_err(|e| CodecError::new(ErrorKind::Serialize, e))
    }

    fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError> {
        let start = bytes.iter().position(|b| *b == b'[').unwrap_or(0);
        sink.deserialize(&mut serde_json::Deserializer::from_slice(&bytes[start..]))
    }
}

#[test]
fn a_custom_configuration_reaches_the_format() {
    let config = SerializationConfig::Custom(Arc::new(Prefix(">>")));
    let codec = Codec::custom(Arc::new(Configured), config, PipelineConfig::default()).unwrap();
    let bytes = codec.encode(&[4, 5]).unwrap();
    assert_eq!(&bytes[..], b">>[4,5]");
    assert_eq!(codec.decode::<Vec<u8>>(&bytes).unwrap(), [4, 5]);
}

/// A broken format that never reads a value.
struct Lazy;

impl CustomFormat for Lazy {
    fn name(&self) -> &str {
        "lazy"
    }

    fn serialize(
        &self,
        _: &ErasedValue<'_>,
        _: &SerializationConfig,
        _: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        Ok(())
    }

    fn deserialize(&self, _: &[u8], _: ValueSink<'_>) -> Result<(), CodecError> {
        Ok(())
    }
}

#[test]
fn a_format_that_reads_nothing_is_a_deserialize_error() {
    let codec = Codec::custom(
        Arc::new(Lazy),
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap();
    assert_eq!(
        codec.decode::<u8>(b"").unwrap_err().kind(),
        ErrorKind::Deserialize
    );
}

#[test]
fn a_type_mismatch_is_a_deserialize_error() {
    register_test_format();
    let codec = Codec::new(custom(), SerializationConfig::Default, PipelineConfig::default()).unwrap();
    let bytes = codec.encode("text").unwrap();
    assert_eq!(
        codec.decode::<u64>(&bytes).unwrap_err().kind(),
        ErrorKind::Deserialize
    );
}

struct Named(&'static str);

impl CustomFormat for Named {
    fn name(&self) -> &str {
        self.0
    }

    fn serialize(
        &self,
        _: &ErasedValue<'_>,
        _: &SerializationConfig,
        _: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        Ok(())
    }

    fn deserialize(&self, _: &[u8], _: ValueSink<'_>) -> Result<(), CodecError> {
        Ok(())
    }
}

#[test]
fn names_must_fit_the_frame() {
    let long: &'static str = Box::leak("n".repeat(256).into_boxed_str());
    for name in ["", long] {
        let err = Codec::custom(
            Arc::new(Named(name)),
            SerializationConfig::Default,
            PipelineConfig::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    }
    let longest: &'static str = Box::leak("n".repeat(255).into_boxed_str());
    assert!(Codec::custom(Arc::new(Named(longest)), SerializationConfig::Default, framed()).is_ok());
}

#[test]
fn defaults_naming_a_format_registered_later_resolve_once_it_is() {
    let registry = DefaultsRegistry::new();
    let late = SerializationFormat::Custom("registered-late".into());
    registry.register_topic_defaults("t", late, SerializationConfig::Default, None);
    assert_eq!(
        registry.resolve("t", None).unwrap_err().kind(),
        ErrorKind::UnknownFormat
    );
    assert!(SerializationFactory::register_format(Arc::new(Named("registered-late"))).is_none());
    assert!(registry.resolve("t", None).unwrap().is_some());
    assert!(SerializationFactory::get_format("registered-late").is_some());
}
