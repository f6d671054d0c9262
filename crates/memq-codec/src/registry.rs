//! Serialization defaults per topic and per publisher, and the registry of custom formats.
//!
//! ## Precedence
//!
//! When a value is published, the settings that apply are, first found wins:
//!
//! 1. the publisher's defaults (registered under its publisher key),
//! 2. the topic's defaults,
//! 3. none: the queue keeps the value natively (`Arc<T>`), unserialized.
//!
//! [`DefaultsRegistry::resolve`] applies exactly this order. A queue keeps one
//! `DefaultsRegistry` of its own, so two queues in one process do not share topic settings;
//! [`SerializationFactory`] is the process-wide registry of 1.0.0, which a queue consults
//! after its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::codec::Codec;
use crate::config::SerializationConfig;
use crate::error::CodecError;
use crate::format::SerializationFormat;
use crate::formats::custom::CustomFormat;
use crate::limits::DecodeLimits;
use crate::pipeline::PipelineConfig;

/// The settings registered for a topic or publisher (the 1.0.0 struct).
///
/// The default is bincode with its default configuration and the default pipeline, as in
/// 1.0.0.
///
/// # Examples
///
/// ```
/// use memq_codec::{DefaultSettings, SerializationFormat};
///
/// let settings = DefaultSettings::default();
/// assert_eq!(settings.format, SerializationFormat::Bincode);
/// assert!(!settings.pipeline.use_magic_header);
/// ```
#[derive(Debug, Clone)]
pub struct DefaultSettings {
    /// The format values are serialized in.
    pub format: SerializationFormat,
    /// The format's configuration.
    pub config: SerializationConfig,
    /// Compression, processors and header.
    pub pipeline: PipelineConfig,
}

impl Default for DefaultSettings {
    fn default() -> Self {
        DefaultSettings {
            format: SerializationFormat::Bincode,
            config: SerializationConfig::Default,
            pipeline: PipelineConfig::default(),
        }
    }
}

impl DefaultSettings {
    /// The codec these settings describe; see [`Codec::from_settings`].
    ///
    /// # Errors
    ///
    /// As [`Codec::new`].
    pub fn codec(&self) -> Result<Codec, CodecError> {
        Codec::from_settings(self)
    }
}

/// One registered setting, with the codec built from it on first use.
struct Entry {
    settings: DefaultSettings,
    /// The codec, and the custom-format generation it was built in.
    codec: RwLock<Option<(u64, Codec)>>,
}

impl Entry {
    fn new(settings: DefaultSettings) -> Self {
        Entry {
            settings,
            codec: RwLock::new(None),
        }
    }

    fn codec(&self, limits: DecodeLimits) -> Result<Codec, CodecError> {
        let generation = FORMAT_GENERATION.load(Ordering::Acquire);
        if let Some((built_in, codec)) = &*self.codec.read().unwrap_or_else(PoisonError::into_inner) {
            if *built_in == generation {
                return Ok(codec.clone());
            }
        }
        // Built again when a custom format was registered since: it may be the one used.
        let codec = Codec::from_settings(&self.settings)?.with_limits(limits);
        *self.codec.write().unwrap_or_else(PoisonError::into_inner) = Some((generation, codec.clone()));
        Ok(codec)
    }
}

type Map = RwLock<HashMap<String, Entry>>;

fn read(map: &Map) -> RwLockReadGuard<'_, HashMap<String, Entry>> {
    map.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(map: &Map) -> RwLockWriteGuard<'_, HashMap<String, Entry>> {
    map.write().unwrap_or_else(PoisonError::into_inner)
}

/// Serialization defaults per topic and per publisher key.
///
/// The facade keeps one per queue; [`SerializationFactory::global`] is the process-wide one.
/// Each registered setting is turned into a [`Codec`] the first time it is resolved, and that
/// codec is reused.
///
/// # Examples
///
/// ```
/// use memq_codec::{DefaultsRegistry, JsonConfig, SerializationConfig, SerializationFormat};
///
/// let registry = DefaultsRegistry::new();
/// registry.register_topic_defaults("logs", SerializationFormat::Json, SerializationConfig::Json(JsonConfig { pretty: false }), None);
/// registry.register_publisher_defaults("audit", SerializationFormat::MessagePack, SerializationConfig::Default, None);
///
/// // Publisher over topic over native.
/// let codec = registry.resolve("logs", Some("audit"))?.expect("registered");
/// assert_eq!(codec.format(), &SerializationFormat::MessagePack);
/// let codec = registry.resolve("logs", Some("web"))?.expect("registered");
/// assert_eq!(codec.format(), &SerializationFormat::Json);
/// assert!(registry.resolve("metrics", None)?.is_none());
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
pub struct DefaultsRegistry {
    topics: Map,
    publishers: Map,
    limits: DecodeLimits,
    /// Bumped by every registration and removal.
    changes: AtomicU64,
}

impl DefaultsRegistry {
    /// An empty registry whose codecs use the default [`DecodeLimits`].
    pub fn new() -> Self {
        Self::with_limits(DecodeLimits::new())
    }

    /// An empty registry whose codecs use `limits`.
    pub fn with_limits(limits: DecodeLimits) -> Self {
        DefaultsRegistry {
            topics: RwLock::default(),
            publishers: RwLock::default(),
            limits,
            changes: AtomicU64::new(0),
        }
    }

    /// A number that changes whenever what [`resolve`](Self::resolve) returns may have
    /// changed (a registration or removal here, or a custom format registered anywhere), so
    /// callers can cache resolutions.
    pub fn generation(&self) -> u64 {
        self.changes
            .load(Ordering::Acquire)
            .wrapping_add(FORMAT_GENERATION.load(Ordering::Acquire) << 32)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// The decode limits of the codecs this registry builds.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Registers (or replaces) the defaults of `topic`. `pipeline: None` means the default
    /// pipeline.
    ///
    /// Nothing is checked here (1.0.0's signature returns nothing); a setting that cannot
    /// work fails when it is [resolved](Self::resolve).
    pub fn register_topic_defaults(
        &self,
        topic: &str,
        format: SerializationFormat,
        config: SerializationConfig,
        pipeline: Option<PipelineConfig>,
    ) {
        let settings = DefaultSettings {
            format,
            config,
            pipeline: pipeline.unwrap_or_default(),
        };
        write(&self.topics).insert(topic.to_owned(), Entry::new(settings));
        self.changed();
    }

    /// Registers (or replaces) the defaults of the publisher known as `publisher_key`.
    /// `pipeline: None` means the default pipeline.
    pub fn register_publisher_defaults(
        &self,
        publisher_key: &str,
        format: SerializationFormat,
        config: SerializationConfig,
        pipeline: Option<PipelineConfig>,
    ) {
        let settings = DefaultSettings {
            format,
            config,
            pipeline: pipeline.unwrap_or_default(),
        };
        write(&self.publishers).insert(publisher_key.to_owned(), Entry::new(settings));
        self.changed();
    }

    /// The defaults registered for `topic`.
    pub fn topic_defaults(&self, topic: &str) -> Option<DefaultSettings> {
        read(&self.topics).get(topic).map(|e| e.settings.clone())
    }

    /// The defaults registered for `publisher_key`.
    pub fn publisher_defaults(&self, publisher_key: &str) -> Option<DefaultSettings> {
        read(&self.publishers)
            .get(publisher_key)
            .map(|e| e.settings.clone())
    }

    /// Removes and returns the defaults of `topic`.
    pub fn remove_topic_defaults(&self, topic: &str) -> Option<DefaultSettings> {
        let removed = write(&self.topics).remove(topic).map(|e| e.settings);
        self.changed();
        removed
    }

    /// Removes and returns the defaults of `publisher_key`.
    pub fn remove_publisher_defaults(&self, publisher_key: &str) -> Option<DefaultSettings> {
        let removed = write(&self.publishers).remove(publisher_key).map(|e| e.settings);
        self.changed();
        removed
    }

    /// The codec of `topic`'s defaults, if any are registered.
    ///
    /// # Errors
    ///
    /// As [`Codec::new`], when the registered settings cannot make a codec.
    pub fn topic_codec(&self, topic: &str) -> Result<Option<Codec>, CodecError> {
        read(&self.topics)
            .get(topic)
            .map(|e| e.codec(self.limits))
            .transpose()
    }

    /// The codec of `publisher_key`'s defaults, if any are registered.
    ///
    /// # Errors
    ///
    /// As [`Codec::new`], when the registered settings cannot make a codec.
    pub fn publisher_codec(&self, publisher_key: &str) -> Result<Option<Codec>, CodecError> {
        read(&self.publishers)
            .get(publisher_key)
            .map(|e| e.codec(self.limits))
            .transpose()
    }

    /// The codec for a value published to `topic` by `publisher_key`: the publisher's
    /// defaults, else the topic's, else `None` (store natively). See the
    /// [precedence](crate#defaults-and-precedence).
    ///
    /// # Errors
    ///
    /// As [`Codec::new`], when the settings that apply cannot make a codec.
    pub fn resolve(&self, topic: &str, publisher_key: Option<&str>) -> Result<Option<Codec>, CodecError> {
        if let Some(key) = publisher_key {
            if let Some(codec) = self.publisher_codec(key)? {
                return Ok(Some(codec));
            }
        }
        self.topic_codec(topic)
    }
}

impl Default for DefaultsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DefaultsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut topics: Vec<String> = read(&self.topics).keys().cloned().collect();
        let mut publishers: Vec<String> = read(&self.publishers).keys().cloned().collect();
        topics.sort();
        publishers.sort();
        f.debug_struct("DefaultsRegistry")
            .field("topics", &topics)
            .field("publishers", &publishers)
            .field("limits", &self.limits)
            .finish()
    }
}

static GLOBAL: LazyLock<DefaultsRegistry> = LazyLock::new(DefaultsRegistry::new);

type Formats = RwLock<HashMap<String, Arc<dyn CustomFormat>>>;

static FORMATS: LazyLock<Formats> = LazyLock::new(Formats::default);

/// Bumped whenever a custom format is registered, so cached codecs notice.
static FORMAT_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The registered custom format called `name`.
pub(crate) fn format(name: &str) -> Option<Arc<dyn CustomFormat>> {
    FORMATS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()
}

/// The process-wide serialization registry (the 1.0.0 API).
///
/// Topic and publisher defaults registered here apply to every queue in the process; a queue's
/// own registry takes precedence over them. Custom formats are registered here too, and are
/// always process-wide.
///
/// # Examples
///
/// The 1.0.0 README's example, unchanged:
///
/// ```
/// use memq_codec::{SerializationFactory, SerializationFormat, SerializationConfig, JsonConfig,
///     PipelineConfig, CompressionConfig};
///
/// let topic = "compressed_logs";
/// let pipeline = PipelineConfig {
///     compression: CompressionConfig::Gzip { level: Some(6) },
///     pre: None,
///     post: None,
///     use_magic_header: true,
/// };
/// SerializationFactory::register_topic_defaults(
///     topic,
///     SerializationFormat::Json,
///     SerializationConfig::Json(JsonConfig { pretty: false }),
///     Some(pipeline),
/// );
///
/// let settings = SerializationFactory::get_topic_defaults(topic).expect("registered");
/// assert_eq!(settings.format, SerializationFormat::Json);
/// let codec = settings.codec()?;
/// let frame = codec.encode(&"a log line")?;
/// assert_eq!(codec.decode::<String>(&frame)?, "a log line");
/// # Ok::<(), memq_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SerializationFactory;

impl SerializationFactory {
    /// Registers (or replaces) the process-wide defaults of `topic`.
    pub fn register_topic_defaults(
        topic: &str,
        format: SerializationFormat,
        config: SerializationConfig,
        pipeline: Option<PipelineConfig>,
    ) {
        GLOBAL.register_topic_defaults(topic, format, config, pipeline);
    }

    /// Registers (or replaces) the process-wide defaults of the publisher `publisher_key`.
    pub fn register_publisher_defaults(
        publisher_key: &str,
        format: SerializationFormat,
        config: SerializationConfig,
        pipeline: Option<PipelineConfig>,
    ) {
        GLOBAL.register_publisher_defaults(publisher_key, format, config, pipeline);
    }

    /// The process-wide defaults of `topic`.
    pub fn get_topic_defaults(topic: &str) -> Option<DefaultSettings> {
        GLOBAL.topic_defaults(topic)
    }

    /// The process-wide defaults of `publisher_key`.
    pub fn get_publisher_defaults(publisher_key: &str) -> Option<DefaultSettings> {
        GLOBAL.publisher_defaults(publisher_key)
    }

    /// The process-wide registry behind these functions, for what 1.0.0 had no function for
    /// (removing defaults, resolving a codec).
    pub fn global() -> &'static DefaultsRegistry {
        &GLOBAL
    }

    /// Registers `format` under its [name](CustomFormat::name), replacing and returning any
    /// format registered under that name before.
    ///
    /// Registering makes `SerializationFormat::Custom(name)` usable in [`Codec::new`] and in
    /// registered defaults, and lets frames naming it be decoded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use memq_codec::{decode_frame, Codec, CodecError, CustomFormat, DecodeLimits, ErasedValue,
    ///     ErrorKind, PipelineConfig, SerializationConfig, SerializationFactory, SerializationFormat,
    ///     ValueSink};
    ///
    /// struct MyJson;
    /// impl CustomFormat for MyJson {
    ///     fn name(&self) -> &str { "my-json" }
    ///     fn serialize(&self, v: &ErasedValue<'_>, _: &SerializationConfig, out: &mut Vec<u8>)
    ///         -> Result<(), CodecError>
    ///     {
    ///         serde_json::to_writer(out, v).map_err(|e| CodecError::new(ErrorKind::Serialize, e))
    ///     }
    ///     fn deserialize(&self, bytes: &[u8], sink: ValueSink<'_>) -> Result<(), CodecError> {
    ///         sink.deserialize(&mut serde_json::Deserializer::from_slice(bytes))
    ///     }
    /// }
    ///
    /// let custom = SerializationFormat::Custom("my-json".into());
    /// let framed = PipelineConfig { use_magic_header: true, ..Default::default() };
    /// let err = Codec::new(custom.clone(), SerializationConfig::Default, framed.clone()).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::UnknownFormat);
    ///
    /// assert!(SerializationFactory::register_format(Arc::new(MyJson)).is_none());
    /// let frame = Codec::new(custom, SerializationConfig::Default, framed)?.encode(&[1, 2])?;
    /// // The frame names the format; a reader finds it in the registry.
    /// let back: Vec<u8> = decode_frame(&frame, &SerializationFormat::Json, &DecodeLimits::default())?;
    /// assert_eq!(back, [1, 2]);
    /// # Ok::<(), CodecError>(())
    /// ```
    pub fn register_format(format: Arc<dyn CustomFormat>) -> Option<Arc<dyn CustomFormat>> {
        let name = format.name().to_owned();
        let previous = FORMATS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, format);
        FORMAT_GENERATION.fetch_add(1, Ordering::AcqRel);
        previous
    }

    /// The custom format registered as `name`.
    pub fn get_format(name: &str) -> Option<Arc<dyn CustomFormat>> {
        format(name)
    }
}
