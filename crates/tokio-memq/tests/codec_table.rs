//! Serialization defaults keep decoding however many codecs a process
//! builds: the format tag that names the codec of an encoded message must
//! not run out.
//!
//! Each queue keeps its own table (it was process-wide and ran out after
//! 32,768 codecs), so the two tests no longer share anything; each reports
//! the first registration that failed.

use memq_testkit::within;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_memq::{
    CompressionConfig, JsonConfig, MessageQueue, PipelineConfig, SerializationConfig, SerializationFormat,
};

const LIMIT: Duration = Duration::from_secs(300);
/// Past the 32,768 codec tags a two-byte format tag has room for.
const REGISTRATIONS: u32 = 33_000;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: u32,
    label: String,
}

fn reading(i: u32) -> Reading {
    Reading {
        sensor: i,
        label: format!("sensor-{i}"),
    }
}

/// JSON, gzip, no frame header: only the codec that encoded a payload can
/// decode it (nothing in the bytes says they are gzip).
fn register_json_gzip(mq: &MessageQueue, topic: &str) {
    let pipeline = PipelineConfig {
        compression: CompressionConfig::Gzip { level: Some(1) },
        pre: None,
        post: None,
        use_magic_header: false,
    };
    mq.register_topic_defaults(
        topic,
        SerializationFormat::Json,
        SerializationConfig::Json(JsonConfig { pretty: false }),
        Some(pipeline),
    );
}

/// Failures as (registration index, error), at most the first few.
fn check(failures: &[(u32, String)], total: u32, elapsed: Duration) {
    assert!(
        failures.is_empty(),
        "{} of {total} decodes failed ({elapsed:?}); first at registration {}: {}",
        failures.len(),
        failures[0].0,
        failures[0].1
    );
}

/// Bug E (fresh queues). Guards the codec tags: 33,000 fresh queues each
/// register JSON + gzip topic defaults with `use_magic_header: false`,
/// publish a small struct and decode it; every decode must succeed.
/// Promise (invariant 11): "Encoded payloads are decoded by the codec
/// that encoded them"; `MessageQueue::register_topic_defaults`:
/// "Receivers decode them with `TopicMessage::deserialize` or
/// `recv_typed`".
#[test]
fn every_fresh_queue_decodes_its_own_defaults() {
    current_thread().block_on(fresh_queues());
}

async fn fresh_queues() {
    let start = Instant::now();
    let mut failures = Vec::new();
    within(LIMIT, async {
        for i in 0..REGISTRATIONS {
            let mq = MessageQueue::new();
            register_json_gzip(&mq, "readings");
            let sub = mq.subscriber("readings").await.unwrap();
            mq.publisher("readings").publish(reading(i)).await.unwrap();
            match sub.recv_typed::<Reading>().await {
                Ok(r) => assert_eq!(r, reading(i)),
                Err(e) => failures.push((i, e.to_string())),
            }
        }
    })
    .await
    .expect("bounded");
    check(&failures, REGISTRATIONS, start.elapsed());
}

/// Bug E (one queue). As above, in one queue whose topic defaults are
/// registered again 33,000 times (the same settings), publishing and
/// decoding once after each registration. Promise as above.
#[test]
fn re_registering_defaults_keeps_decoding() {
    current_thread().block_on(one_queue());
}

async fn one_queue() {
    let start = Instant::now();
    let mq = MessageQueue::new();
    let sub = mq.subscriber("readings").await.unwrap();
    let publisher = mq.publisher("readings");
    let mut failures = Vec::new();
    within(LIMIT, async {
        for i in 0..REGISTRATIONS {
            register_json_gzip(&mq, "readings");
            publisher.publish(reading(i)).await.unwrap();
            match sub.recv().await.unwrap().deserialize::<Reading>() {
                Ok(r) => assert_eq!(r, reading(i)),
                Err(e) => failures.push((i, e.to_string())),
            }
        }
    })
    .await
    .expect("bounded");
    check(&failures, REGISTRATIONS, start.elapsed());
}
