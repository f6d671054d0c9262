//! Pins the auto traits of the public types: codecs and registries are shared between tasks
//! and threads, errors cross `?` into `anyhow`-style boxes.

use memq_codec::{
    Codec, CodecError, Compression, CompressionConfig, DecodeLimits, DefaultSettings, DefaultsRegistry,
    ErrorKind, FrameHeader, FrameVersion, HeaderMode, PipelineConfig, ProcessorPair, SerializationConfig,
    SerializationFactory, SerializationFormat,
};

fn send_sync_unpin<T: Send + Sync + Unpin + 'static>() {}

#[test]
fn public_types_are_send_sync_and_unpin() {
    send_sync_unpin::<Codec>();
    send_sync_unpin::<CodecError>();
    send_sync_unpin::<ErrorKind>();
    send_sync_unpin::<DecodeLimits>();
    send_sync_unpin::<DefaultsRegistry>();
    send_sync_unpin::<DefaultSettings>();
    send_sync_unpin::<SerializationFactory>();
    send_sync_unpin::<FrameHeader>();
    send_sync_unpin::<FrameVersion>();
    send_sync_unpin::<HeaderMode>();
    send_sync_unpin::<PipelineConfig>();
    send_sync_unpin::<ProcessorPair>();
    send_sync_unpin::<CompressionConfig>();
    send_sync_unpin::<Compression>();
    send_sync_unpin::<SerializationConfig>();
    send_sync_unpin::<SerializationFormat>();
}

#[test]
fn codec_errors_box_into_std_errors_and_stay_small() {
    let err: Box<dyn std::error::Error + Send + Sync> = CodecError::new(ErrorKind::Processor, "boom").into();
    assert_eq!(err.to_string(), "processor failed: boom");
    assert_eq!(std::mem::size_of::<CodecError>(), std::mem::size_of::<usize>());
}

#[test]
fn a_codec_is_shared_across_threads() {
    let codec = Codec::new(
        SerializationFormat::Raw,
        SerializationConfig::Default,
        PipelineConfig::default(),
    )
    .unwrap();
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let codec = codec.clone();
            std::thread::spawn(move || {
                codec
                    .decode::<Vec<u8>>(&codec.encode(&vec![i; 3]).unwrap())
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, (0..4u8).map(|i| vec![i; 3]).collect::<Vec<_>>());
}
