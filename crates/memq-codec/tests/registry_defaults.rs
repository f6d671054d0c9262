//! Topic and publisher defaults: the 1.0.0 `SerializationFactory` API, instance registries and
//! their precedence (publisher over topic over native).

mod common;

use memq_codec::{
    CompressionConfig, DefaultsRegistry, ErrorKind, PipelineConfig, SerializationConfig,
    SerializationFactory, SerializationFormat,
};

#[cfg(all(feature = "json", feature = "gzip"))]
#[test]
fn the_1_0_0_readme_snippet_compiles_and_works_as_written() {
    use memq_codec::{
        CompressionConfig, JsonConfig, PipelineConfig, SerializationConfig, SerializationFactory,
        SerializationFormat,
    };
    let topic = "compressed_logs";
    let pipeline = PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(6) },
        pre: None,
        post: None,
        use_magic_header: true,
    };
    SerializationFactory::register_topic_defaults(
        topic,
        SerializationFormat::Json,
        SerializationConfig::Json(JsonConfig { pretty: false }),
        Some(pipeline),
    );

    // "all messages published to compressed_logs will be serialized to JSON and Gzip compressed"
    let codec = SerializationFactory::global()
        .resolve(topic, None)
        .unwrap()
        .expect("registered");
    let frame = codec
        .encode(&serde_json::json!({"level": "info", "msg": "started"}))
        .unwrap();
    assert_eq!(&frame[..6], b"TMQ\x02\x01\x01", "a version 2 frame, JSON, gzip");
    let back: serde_json::Value = codec.decode(&frame).unwrap();
    assert_eq!(back["msg"], "started");
    let settings = SerializationFactory::get_topic_defaults(topic).unwrap();
    assert_eq!(
        settings.pipeline.compression,
        CompressionConfig::Gzip { level: Some(6) }
    );
}

#[test]
fn publisher_defaults_win_over_topic_defaults_which_win_over_native() {
    let registry = DefaultsRegistry::new();
    registry.register_topic_defaults(
        "orders",
        SerializationFormat::Raw,
        SerializationConfig::Default,
        None,
    );
    registry.register_publisher_defaults(
        "billing",
        SerializationFormat::Raw,
        SerializationConfig::Default,
        Some(PipelineConfig {
            use_magic_header: true,
            ..Default::default()
        }),
    );

    let publisher = registry.resolve("orders", Some("billing")).unwrap().unwrap();
    assert!(publisher.pipeline().use_magic_header);
    let topic = registry.resolve("orders", Some("someone-else")).unwrap().unwrap();
    assert!(!topic.pipeline().use_magic_header);
    let topic = registry.resolve("orders", None).unwrap().unwrap();
    assert!(!topic.pipeline().use_magic_header);
    // A publisher's defaults apply on any topic.
    let elsewhere = registry.resolve("payments", Some("billing")).unwrap().unwrap();
    assert!(elsewhere.pipeline().use_magic_header);
    // Nothing registered: native.
    assert!(registry.resolve("payments", None).unwrap().is_none());
    assert!(registry
        .resolve("payments", Some("someone-else"))
        .unwrap()
        .is_none());
}

#[test]
fn registries_are_separate_from_each_other_and_from_the_global_one() {
    let a = DefaultsRegistry::new();
    let b = DefaultsRegistry::new();
    a.register_topic_defaults(
        "shared-name",
        SerializationFormat::Raw,
        SerializationConfig::Default,
        None,
    );
    assert!(a.topic_defaults("shared-name").is_some());
    assert!(b.topic_defaults("shared-name").is_none());
    assert!(SerializationFactory::get_topic_defaults("shared-name").is_none());
}

#[test]
fn registering_again_replaces_and_removing_forgets() {
    let registry = DefaultsRegistry::new();
    registry.register_topic_defaults("t", SerializationFormat::Raw, SerializationConfig::Default, None);
    let first = registry.topic_codec("t").unwrap().unwrap();
    assert!(!first.pipeline().use_magic_header);
    registry.register_topic_defaults(
        "t",
        SerializationFormat::Raw,
        SerializationConfig::Default,
        Some(PipelineConfig {
            use_magic_header: true,
            ..Default::default()
        }),
    );
    assert!(
        registry
            .topic_codec("t")
            .unwrap()
            .unwrap()
            .pipeline()
            .use_magic_header
    );
    let removed = registry.remove_topic_defaults("t").unwrap();
    assert!(removed.pipeline.use_magic_header);
    assert!(registry.topic_codec("t").unwrap().is_none());

    registry.register_publisher_defaults("p", SerializationFormat::Raw, SerializationConfig::Default, None);
    assert_eq!(
        registry.publisher_defaults("p").unwrap().format,
        SerializationFormat::Raw
    );
    assert!(registry.remove_publisher_defaults("p").is_some());
    assert!(registry.publisher_defaults("p").is_none());
}

#[test]
fn settings_that_cannot_work_fail_when_resolved() {
    let registry = DefaultsRegistry::new();
    registry.register_topic_defaults(
        "native",
        SerializationFormat::Native,
        SerializationConfig::Default,
        None,
    );
    assert_eq!(
        registry.resolve("native", None).unwrap_err().kind(),
        ErrorKind::UnsupportedFormat
    );
    registry.register_topic_defaults(
        "bad-level",
        SerializationFormat::Raw,
        SerializationConfig::Default,
        Some(PipelineConfig {
            compression: CompressionConfig::Gzip { level: Some(42) },
            ..Default::default()
        }),
    );
    let kind = registry.resolve("bad-level", None).unwrap_err().kind();
    assert!(
        matches!(kind, ErrorKind::InvalidConfig | ErrorKind::UnsupportedCompression),
        "{kind:?}"
    );
}

#[test]
fn the_codecs_a_registry_builds_use_its_limits() {
    let registry = DefaultsRegistry::with_limits(memq_codec::DecodeLimits::new().with_max_decoded_size(3));
    registry.register_topic_defaults("t", SerializationFormat::Raw, SerializationConfig::Default, None);
    let codec = registry.topic_codec("t").unwrap().unwrap();
    assert_eq!(codec.decode::<Vec<u8>>(b"abc").unwrap(), b"abc");
    assert_eq!(
        codec.decode::<Vec<u8>>(b"abcd").unwrap_err().kind(),
        ErrorKind::TooLarge
    );
}

#[test]
fn the_global_registry_keeps_publisher_defaults() {
    SerializationFactory::register_publisher_defaults(
        "registry-test-publisher",
        SerializationFormat::Raw,
        SerializationConfig::Default,
        None,
    );
    let settings = SerializationFactory::get_publisher_defaults("registry-test-publisher").unwrap();
    assert_eq!(settings.format, SerializationFormat::Raw);
    assert!(SerializationFactory::global()
        .remove_publisher_defaults("registry-test-publisher")
        .is_some());
    assert!(SerializationFactory::get_publisher_defaults("registry-test-publisher").is_none());
}
