//! The `tracing` and `metrics` features (run by `cargo xtask ci` with
//! `--features tracing,metrics`): the events and spans a running queue
//! emits, nothing per message above `trace`, and the metrics
//! `record_metrics` records, with their names, labels and values.
#![cfg(all(feature = "tracing", feature = "metrics"))]

use memq_testkit::within;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio_memq::{ConsumptionMode, MessageQueue, SerializationFormat, TopicOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
}

impl Seen {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A `tracing` subscriber that keeps every event and span it is given.
#[derive(Default, Clone)]
struct Capture {
    events: Arc<Mutex<Vec<Seen>>>,
    spans: Arc<Mutex<Vec<Seen>>>,
    ids: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        fields.insert("name".into(), span.metadata().name().to_string());
        self.spans.lock().unwrap().push(Seen {
            level: *span.metadata().level(),
            target: span.metadata().target().to_string(),
            fields,
        });
        Id::from_u64(self.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn events_for_topics_lag_evictions_groups_and_decode_failures() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        runtime().block_on(async {
            let mq = MessageQueue::new();
            let small = TopicOptions {
                max_messages: Some(2),
                ..TopicOptions::default()
            };
            let sub = mq.subscriber_with_options("small", small).await.unwrap();
            let publisher = mq.publisher("small");
            for i in 0..10u32 {
                publisher.publish(i).await.unwrap();
            }
            // 8 evicted unread: one lag event with the count.
            assert_eq!(sub.recv().await.unwrap_err(), tokio_memq::RecvError::Lagged(8));
            sub.recv().await.unwrap();

            // A group: joins, a redelivery, a dead letter, a leave.
            let join = || {
                mq.group("jobs", "workers")
                    .manual_ack()
                    .max_deliveries(2)
                    .mode(ConsumptionMode::Earliest)
                    .join()
            };
            let worker = join().await.unwrap();
            mq.publisher("jobs").publish("job").await.unwrap();
            let job = worker.recv().await.unwrap();
            worker.nack(&job).unwrap();
            let again = worker.recv().await.unwrap();
            worker.nack(&again).unwrap();
            assert!(within(LIMIT, worker.recv_timeout(Duration::from_millis(5)))
                .await
                .unwrap()
                .unwrap()
                .is_none());
            drop(worker);

            // A decode failure.
            let bytes = mq.subscriber("bytes").await.unwrap();
            mq.publisher("bytes")
                .publish_bytes("not json", SerializationFormat::Json)
                .await
                .unwrap();
            assert!(bytes.recv_typed::<u32>().await.is_err());
            assert!(mq.delete_topic("bytes").await);
        })
    });
    let events = capture.events.lock().unwrap().clone();
    let find =
        |message: &str| -> Vec<&Seen> { events.iter().filter(|e| e.message().contains(message)).collect() };

    let created: Vec<&str> = find("topic created")
        .iter()
        .filter_map(|e| e.field("topic"))
        .collect();
    for topic in ["small", "jobs", "jobs.dead-letters", "bytes"] {
        assert!(created.contains(&topic), "{topic} created: {created:?}");
    }
    assert_eq!(find("topic deleted")[0].field("topic"), Some("bytes"));

    let lag = find("subscriber lagged");
    assert_eq!(lag.len(), 1);
    assert_eq!(
        (lag[0].level, lag[0].field("topic"), lag[0].field("missed")),
        (Level::WARN, Some("small"), Some("8"))
    );

    // Evictions in aggregate: at totals 1, 2, 4 and 8, not per message.
    let evicted: Vec<&str> = find("evicted for capacity")
        .iter()
        .filter_map(|e| e.field("evicted_total"))
        .collect();
    assert_eq!(evicted, ["1", "2", "4", "8"]);
    assert!(find("evicted for capacity")
        .iter()
        .all(|e| e.field("topic") == Some("small") && e.target == "memq_core"));

    assert_eq!(find("member joined").len(), 1);
    assert_eq!(find("member left").len(), 1);
    assert_eq!(find("redelivered").len(), 1);
    let dead = find("dead-lettered");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].level, dead[0].field("group"), dead[0].field("deliveries")),
        (Level::WARN, Some("workers"), Some("2"))
    );

    let decode = find("could not be decoded");
    assert_eq!(decode.len(), 1);
    assert_eq!(decode[0].field("topic"), Some("bytes"));

    // Spans to follow a publish and a receive, at trace level.
    let spans = capture.spans.lock().unwrap().clone();
    for name in ["memq.publish", "memq.recv"] {
        let s: Vec<&Seen> = spans.iter().filter(|s| s.field("name") == Some(name)).collect();
        assert!(!s.is_empty(), "{name}");
        assert!(s.iter().all(|s| s.level == Level::TRACE), "{name}");
    }
    assert!(spans
        .iter()
        .any(|s| s.field("name") == Some("memq.publish") && s.field("topic") == Some("small")));
}

/// A partitioned topic's partitions report their evictions in aggregate
/// each, with the partition's number (each used to carry only the
/// topic's name, so a partition's total read as the topic's).
#[test]
fn evictions_of_a_partitioned_topic_are_reported_per_partition() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        runtime().block_on(async {
            let mq = MessageQueue::new();
            let one = TopicOptions {
                max_messages: Some(1),
                ..TopicOptions::default()
            };
            mq.create_partitioned_topic("clicks", one, 4).await.unwrap();
            let publisher = mq.publisher("clicks");
            // Round robin: every partition evicts one message.
            for i in 0..8u32 {
                tokio::time::timeout(LIMIT, publisher.publish(i))
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert_eq!(mq.get_topic_stats("clicks").await.unwrap().evicted, 4);
        })
    });
    let events = capture.events.lock().unwrap();
    let evicted: Vec<String> = events
        .iter()
        .filter(|e| {
            e.field("message")
                .is_some_and(|m| m.contains("evicted for capacity"))
        })
        .map(|e| {
            let field = |f: &str| e.field(f).unwrap_or_default().to_string();
            format!(
                "{} {} {}",
                field("topic"),
                field("partition"),
                field("evicted_total")
            )
        })
        .collect();
    assert_eq!(
        evicted,
        ["clicks 0 1", "clicks 1 1", "clicks 2 1", "clicks 3 1"],
        "each partition's first eviction, with its number"
    );
}

#[test]
fn nothing_per_message_above_trace() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        runtime().block_on(async {
            let mq = MessageQueue::new();
            let sub = mq.subscriber("busy").await.unwrap();
            let group = mq
                .group("busy", "g")
                .mode(ConsumptionMode::Earliest)
                .join()
                .await
                .unwrap();
            let publisher = mq.publisher("busy");
            for i in 0..500u32 {
                publisher.publish(i).await.unwrap();
                sub.recv().await.unwrap();
                group.recv().await.unwrap();
            }
        })
    });
    let loud: Vec<String> = capture
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.level != Level::TRACE)
        .map(|e| e.message().to_string())
        .collect();
    // The topic and the member (joining, and leaving at the end), once
    // each; 500 messages add nothing.
    assert_eq!(
        loud,
        ["topic created", "member joined", "member left"],
        "{loud:?}"
    );
}

#[test]
fn record_metrics_reports_topics_partitions_and_groups() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (mq, _sub, _worker) = runtime().block_on(async {
        let mq = MessageQueue::new();
        let small = TopicOptions {
            max_messages: Some(3),
            ..TopicOptions::default()
        };
        let sub = mq.subscriber_with_options("orders", small).await.unwrap();
        let publisher = mq.publisher("orders");
        for i in 0..5u32 {
            publisher
                .publish_bytes(vec![i as u8; 10], SerializationFormat::Raw)
                .await
                .unwrap();
        }
        assert!(sub.recv().await.is_err(), "lagged 2");
        sub.recv_batch(2).await.unwrap(); // 2 delivered
        let worker = mq
            .group("jobs", "billing")
            .manual_ack()
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        mq.publisher("jobs").publish_batch(vec![1u8, 2, 3]).await.unwrap();
        let job = worker.recv().await.unwrap(); // 1 pending
        worker.nack(&job).unwrap();
        worker.recv().await.unwrap(); // redelivered: still 1 pending
        mq.create_partitioned_topic("clicks", TopicOptions::default(), 2)
            .await
            .unwrap();
        mq.publisher("clicks")
            .publish_batch(vec![1u8, 2, 3])
            .await
            .unwrap();
        // Kept alive for the gauges below.
        (mq, sub, worker)
    });
    metrics::with_local_recorder(&recorder, || {
        MessageQueue::describe_metrics();
        mq.record_metrics();
    });
    let mut values: BTreeMap<String, DebugValue> = BTreeMap::new();
    let mut units = BTreeMap::new();
    for (key, unit, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        units.insert(key.name().to_string(), unit);
        values.insert(name, value);
    }
    let counter = |n: &str| match values.get(n) {
        Some(DebugValue::Counter(v)) => *v,
        other => panic!("{n}: {other:?} in {values:#?}"),
    };
    let gauge = |n: &str| match values.get(n) {
        Some(DebugValue::Gauge(v)) => v.0,
        other => panic!("{n}: {other:?}"),
    };
    assert_eq!(counter("memq_messages_published_total{topic=orders}"), 5);
    assert_eq!(counter("memq_messages_delivered_total{topic=orders}"), 2);
    assert_eq!(counter("memq_messages_evicted_total{topic=orders}"), 2);
    assert_eq!(counter("memq_messages_expired_total{topic=orders}"), 0);
    assert_eq!(gauge("memq_retained_messages{topic=orders}"), 3.0);
    assert_eq!(gauge("memq_retained_bytes{topic=orders}"), 30.0);
    assert_eq!(gauge("memq_subscribers{topic=orders}"), 1.0);
    assert_eq!(gauge("memq_group_members{topic=jobs,group=billing}"), 1.0);
    // Counted from the committed offset: the pending message is not committed.
    assert_eq!(gauge("memq_group_lag_messages{topic=jobs,group=billing}"), 3.0);
    assert_eq!(gauge("memq_group_pending_acks{topic=jobs,group=billing}"), 1.0);
    assert_eq!(
        counter("memq_group_redeliveries_total{topic=jobs,group=billing}"),
        1
    );
    assert_eq!(
        counter("memq_group_dead_letters_total{topic=jobs,group=billing}"),
        0
    );
    assert_eq!(counter("memq_messages_delivered_total{topic=jobs}"), 2);
    assert_eq!(counter("memq_messages_published_total{topic=clicks}"), 3);
    assert_eq!(
        counter("memq_partition_messages_published_total{topic=clicks,partition=0}"),
        2
    );
    assert_eq!(
        counter("memq_partition_messages_published_total{topic=clicks,partition=1}"),
        1
    );
    assert_eq!(
        gauge("memq_partition_retained_messages{topic=clicks,partition=1}"),
        1.0
    );
    assert_eq!(units["memq_retained_bytes"], Some(metrics::Unit::Bytes));
    assert_eq!(units["memq_messages_published_total"], Some(metrics::Unit::Count));
}

#[test]
fn expiries_in_aggregate_take_overs_and_reassignments() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        runtime().block_on(async {
            let mq = MessageQueue::new();
            // Three messages expire together: one event with the total.
            let ttl = TopicOptions {
                message_ttl: Some(Duration::from_secs(1)),
                ..TopicOptions::default()
            };
            mq.create_topic("ttl", ttl).await.unwrap();
            let publisher = mq.publisher("ttl");
            for i in 0..3u8 {
                publisher.publish(i).await.unwrap();
            }
            tokio::time::advance(Duration::from_secs(2)).await;
            publisher.publish(9u8).await.unwrap();

            // An idle member's message is taken over by another.
            let join = || {
                mq.group("work", "g")
                    .manual_ack()
                    .ack_timeout(Duration::from_millis(100))
                    .mode(ConsumptionMode::Earliest)
                    .join()
            };
            let (idle, busy) = (join().await.unwrap(), join().await.unwrap());
            mq.publisher("work").publish("job").await.unwrap();
            let _held = idle.recv().await.unwrap();
            let again = within(LIMIT, busy.recv()).await.unwrap().unwrap();
            assert_eq!(again.deliveries, 2);

            // Exclusive partitions are reassigned as members join.
            mq.create_partitioned_topic("parts", TopicOptions::default(), 2)
                .await
                .unwrap();
            let _a = mq.group("parts", "x").exclusive().join().await.unwrap();
            let _b = mq.group("parts", "x").exclusive().join().await.unwrap();
        })
    });
    let events = capture.events.lock().unwrap().clone();
    let expired: Vec<&Seen> = events
        .iter()
        .filter(|e| e.message().contains("expired (reported"))
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(
        (expired[0].field("topic"), expired[0].field("expired_total")),
        (Some("ttl"), Some("3"))
    );
    let taken: Vec<&Seen> = events
        .iter()
        .filter(|e| e.message().contains("taken over"))
        .collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].field("group"), taken[0].field("messages")),
        (Some("g"), Some("1"))
    );
    let reassigned: Vec<&str> = events
        .iter()
        .filter(|e| e.message().contains("partitions reassigned"))
        .filter_map(|e| e.field("members"))
        .collect();
    // Two joins, then the second member leaving at the end.
    assert_eq!(reassigned, ["1", "2", "1"]);
}

/// `memq_messages_delivered_total` counts each delivery, whichever receive
/// made it: a typed batch of a plain subscriber was not counted at all.
#[test]
fn every_receive_kind_counts_what_it_delivers() {
    // Under a subscriber of its own, as the other tests here: events of
    // queues made without one could race the interest of the event tests'
    // call sites.
    tracing::subscriber::with_default(Capture::default(), || {
        runtime().block_on(count_every_receive_kind())
    });
}

async fn count_every_receive_kind() {
    use tokio_stream::StreamExt;
    let delivered = |mq: &MessageQueue| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || mq.record_metrics());
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(key, _, _, value)| match value {
                DebugValue::Counter(v) if key.key().name() == "memq_messages_delivered_total" => Some(v),
                _ => None,
            })
            .unwrap_or(0)
    };
    let kinds = [
        "recv",
        "recv_batch",
        "recv_batch_lent",
        "try_recv_now",
        "recv_timeout",
        "stream",
        "recv_typed",
        "recv_batch_typed",
        "typed batch stopping at a bad message",
    ];
    for kind in kinds {
        let mq = MessageQueue::new();
        let sub = mq
            .subscriber_with_options_and_mode("t", TopicOptions::default(), ConsumptionMode::Earliest)
            .await
            .unwrap();
        let publisher = mq.publisher("t");
        publisher.publish_batch((0..4u32).collect()).await.unwrap();
        publisher.publish("not a number").await.unwrap();
        let got = within(LIMIT, async {
            match kind {
                "recv" => usize::from(sub.recv().await.is_ok()),
                "recv_batch" => sub.recv_batch(4).await.unwrap().len(),
                "recv_batch_lent" => sub.recv_batch_lent(4).await.unwrap().len(),
                "try_recv_now" => usize::from(sub.try_recv_now().is_ok()),
                "recv_timeout" => usize::from(sub.recv_timeout(LIMIT).await.unwrap().is_some()),
                "stream" => usize::from(sub.stream().next().await.unwrap().is_ok()),
                "recv_typed" => usize::from(sub.recv_typed::<u32>().await.is_ok()),
                "recv_batch_typed" => sub.recv_batch_typed::<u32>(4).await.unwrap().len(),
                _ => {
                    // Four decode, the fifth goes back; then it alone, failing.
                    let four = sub.recv_batch_typed::<u32>(10).await.unwrap().len();
                    assert!(sub.recv_batch_typed::<u32>(10).await.is_err());
                    four + 1
                }
            }
        })
        .await
        .expect("finished");
        assert_eq!(delivered(&mq), got as u64, "{kind}");
    }
    // What a typed batch puts aside is counted once: when it is received,
    // not again when the next receive hands it on (subscribers of every
    // partition and group members put it aside in the facade; it was
    // counted twice there). A member of an automatic group gives it back
    // to the group instead: counted when it is received again, not when
    // the batch took it.
    for (kind, drain) in ["plain", "partitioned", "group", "manual group"]
        .into_iter()
        .flat_map(|k| [(k, "lent"), (k, "try_recv_now")])
    {
        let mq = MessageQueue::new();
        let earliest = ConsumptionMode::Earliest;
        let sub = match kind {
            "plain" => {
                mq.subscriber_with_options_and_mode("t", TopicOptions::default(), earliest)
                    .await
            }
            "partitioned" => {
                mq.create_partitioned_topic("t", TopicOptions::default(), 1)
                    .await
                    .unwrap();
                mq.subscriber_with_options_and_mode("t", TopicOptions::default(), earliest)
                    .await
            }
            "group" => mq.group("t", "g").mode(earliest).join().await,
            _ => mq.group("t", "g").manual_ack().mode(earliest).join().await,
        }
        .unwrap();
        let publisher = mq.publisher("t");
        publisher.publish(1u32).await.unwrap();
        publisher.publish("not a number").await.unwrap();
        publisher.publish(3u32).await.unwrap();
        let typed = within(LIMIT, sub.recv_batch_typed::<u32>(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(typed, [1], "{kind}");
        let rest: Vec<u64> = if drain == "lent" {
            let rest = within(LIMIT, sub.recv_batch_lent(10)).await.unwrap().unwrap();
            rest.iter().map(|m| m.offset()).collect()
        } else {
            std::iter::from_fn(|| sub.try_recv_now().ok())
                .map(|m| m.offset())
                .collect()
        };
        assert_eq!(rest, [1, 2], "{kind}, {drain}");
        assert_eq!(delivered(&mq), 3, "{kind}, {drain}");
    }
}
