//! The Redis backend against the in-memory contract, from an adversarial
//! review (2026-12-02): each test runs the same scenario on both backends
//! where it can, with a `redis-server` of its own, every step bounded in
//! time. Most failed before their fix (each doc says what the backend did
//! then); the ones marked "passes" guard what held.
#![cfg(feature = "redis")]

use std::time::Duration;

#[path = "support/redis.rs"]
mod support;

use support::{address, both, connect, raw, server, t};
use tokio::time::timeout;
use tokio_memq::{ConsumptionMode, MessageQueue, PublishErrorKind, RecvError, TopicOptions};

fn max(n: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(n),
        ..TopicOptions::default()
    }
}

/// README (migration): "a batch larger than the topic's `max_messages`
/// ... even on an evicting topic ... is now `PublishError::TooLarge`";
/// `publish_batch`: "`TooLarge` when the batch alone exceeds the topic's
/// limits". The README's "in memory vs Redis" table lists no difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_max_messages_is_too_large() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    for (backend, mq) in queues {
        t!(mq.create_topic("small", max(3))).unwrap();
        let got = t!(mq.publisher("small").publish_batch(vec![1u32, 2, 3, 4, 5]));
        let stats = t!(mq.get_topic_stats("small")).unwrap();
        assert_eq!(
            got.as_ref().map_err(|e| e.kind()),
            Err(PublishErrorKind::TooLarge),
            "{backend}: a 5-message batch into a 3-message topic (now {} retained, next offset {})",
            stats.message_count,
            stats.next_offset
        );
    }
}

/// `GroupStats::lag`: "Messages published after the group's committed
/// position"; a group joined at `Earliest` starts at the oldest retained
/// message, so what was evicted before it existed is not its lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_joined_at_earliest_on_a_trimmed_topic_lags_by_what_is_retained() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        t!(mq.create_topic("trimmed", max(3))).unwrap();
        let p = mq.publisher("trimmed");
        for i in 0..10u32 {
            t!(p.publish(i)).unwrap();
        }
        let member = t!(mq.group("trimmed", "g").mode(ConsumptionMode::Earliest).join()).unwrap();
        let stats = t!(mq.get_group_stats("trimmed", "g")).unwrap();
        let first = t!(member.recv()).map(|m| m.offset());
        answers.push((backend, stats.lag, first));
    }
    assert_eq!(answers[0].1, 3, "{answers:?}");
    assert_eq!(answers[0].1, answers[1].1, "{answers:?}");
}

/// Everything a reader sees of a message, for comparing backends.
fn digest(m: &tokio_memq::TopicMessage) -> String {
    let headers: Vec<(String, Vec<u8>)> = m
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    // A native value crosses Redis as JSON (documented): compared as a value.
    let body = match m.format {
        tokio_memq::SerializationFormat::Native | tokio_memq::SerializationFormat::Json => {
            "a value".to_string()
        }
        _ => format!("f={:?} bytes={:?}", m.format, m.payload_bytes()),
    };
    format!(
        "o={:?} p={:?} k={:?} h={:?} {body}",
        m.offset, m.partition, m.key, headers
    )
}

/// Topic names with characters that mean something in key names, odd
/// payloads, keys and headers: what a reader gets is the same on both
/// backends, and the name is listed and deleted as it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_payloads_keys_and_headers_round_trip_alike() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    let names: Vec<String> = vec![
        "".into(),
        " a b ".into(),
        "a:b:c".into(),
        "{x}".into(),
        "}{".into(),
        "a#0".into(),
        "a\\".into(),
        "memq:topics".into(),
        "ünï©ødé 🚀\n\t".into(),
        "x".repeat(3000),
    ];
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        let mut a = Vec::new();
        for name in &names {
            let sub = t!(mq.subscriber_with_options_and_mode(
                name,
                TopicOptions::default(),
                ConsumptionMode::Earliest
            ));
            let sub = match sub {
                Ok(s) => s,
                Err(e) => {
                    a.push(format!("{:.40}: subscribe {e}", name));
                    continue;
                }
            };
            let p = mq.publisher(name);
            let mut headers = tokio_memq::Headers::new();
            headers
                .insert("dup", vec![0u8, 255, 0])
                .insert("", "")
                .insert("dup", "second")
                .insert("p", "not the payload")
                .insert("k", "not the key");
            let all: Vec<u8> = (0..=255u8).collect();
            let r = (
                t!(p.publish_bytes(Vec::<u8>::new(), tokio_memq::SerializationFormat::Raw))
                    .map_err(|e| e.to_string()),
                t!(p.publish_bytes(all, tokio_memq::SerializationFormat::Raw)).map_err(|e| e.to_string()),
                t!(p.publish_with_key("", "s")).map_err(|e| e.to_string()),
                t!(p.publish_with_key_and_headers("ключ:{0}#", "v", headers)).map_err(|e| e.to_string()),
                t!(p.publish_with_format(vec![1u32, 2], tokio_memq::SerializationFormat::Bincode))
                    .map_err(|e| e.to_string()),
            );
            a.push(format!("{r:?}"));
            for _ in 0..5 {
                match t!(sub.recv()) {
                    Ok(m) => a.push(digest(&m)),
                    Err(e) => a.push(format!("recv {e:?}")),
                }
            }
            let listed = t!(mq.list_topics()).contains(name);
            let stats = t!(mq.get_topic_stats(name)).map(|s| (s.message_count, s.next_offset));
            let deleted = t!(mq.delete_topic(name));
            let after = t!(mq.list_topics()).contains(name);
            a.push(format!(
                "listed {listed} stats {stats:?} deleted {deleted} after {after}"
            ));
        }
        answers.push((backend, a));
    }
    for (m, r) in answers[0].1.iter().zip(&answers[1].1) {
        assert_eq!(m, r, "memory vs redis");
    }
    assert_eq!(answers[0].1.len(), answers[1].1.len());
}

/// `max_messages` is a `usize`: a very large limit is as good as none in
/// memory. Over Redis the limit goes to `XADD ... MAXLEN =`, which takes a
/// signed 64-bit count, through Lua's numbers: every publish failed; a
/// limit over 2^53 is kept as 2^53 now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_max_messages_limit_still_takes_publishes() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    for (backend, mq) in queues {
        for (i, limit) in [usize::MAX, (u64::MAX / 2) as usize + 1].into_iter().enumerate() {
            let name = format!("huge-{i}");
            t!(mq.create_topic(&name, max(limit))).unwrap();
            let p = mq.publisher(&name);
            let got = t!(p.publish_batch(vec![1u32, 2])).map_err(|e| e.to_string());
            assert_eq!(got, Ok(0..2), "{backend}: max_messages {limit}");
        }
    }
}

/// `Subscriber::ack`: "[`AckError::AutoAck`] outside manual mode
/// (including for a subscriber that is not in a group)". A plain
/// subscriber over Redis answered `NotOwned` for a message of another
/// topic, or one it never received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_subscriber_acking_a_foreign_message_says_auto_ack() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        let plain = t!(mq.subscriber_with_options_and_mode(
            "mine",
            TopicOptions::default(),
            ConsumptionMode::Earliest
        ))
        .unwrap();
        let other = t!(mq.subscriber_with_options_and_mode(
            "other",
            TopicOptions::default(),
            ConsumptionMode::Earliest
        ))
        .unwrap();
        t!(mq
            .publisher("other")
            .publish_bytes(vec![1u8], tokio_memq::SerializationFormat::Raw))
        .unwrap();
        let foreign = t!(other.recv()).unwrap();
        let built = tokio_memq::TopicMessage::new("mine", 1u32).unwrap();
        answers.push((backend, plain.ack(&foreign), plain.nack(&built)));
    }
    assert_eq!(answers[0].1, Err(tokio_memq::AckError::AutoAck), "{answers:?}");
    assert_eq!(
        (&answers[0].1, &answers[0].2),
        (&answers[1].1, &answers[1].2),
        "{answers:?}"
    );
}

/// Partitioned-topic calls whose answers agree (passes: kept as a guard):
/// counts, options, routing, seeks, partition subscribers, stats, groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_scenarios_agree() {
    use tokio_memq::{PartitionRouting, TopicMessage};
    let Some((queues, _server)) = both().await else {
        return;
    };
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        let mut a: Vec<String> = Vec::new();
        a.push(format!("{:?}", t!(mq.create_partitioned_topic("pt", max(3), 2))));
        a.push(format!("{:?}", t!(mq.create_partitioned_topic("pt", max(3), 2))));
        a.push(format!("{:?}", t!(mq.create_partitioned_topic("pt", max(3), 3))));
        a.push(format!("{:?}", t!(mq.create_partitioned_topic("pt", max(4), 2))));
        a.push(format!(
            "{:?}",
            t!(mq.set_partition_routing("pt", PartitionRouting::Fixed(1)))
        ));
        let sub = t!(mq.subscriber_with_options_and_mode("pt", max(3), ConsumptionMode::Earliest)).unwrap();
        for i in 0..5u32 {
            a.push(format!(
                "{:?}",
                t!(mq.publish_to_partitioned(TopicMessage::new("pt", i).unwrap()))
            ));
        }
        a.push(format!("{:?}", t!(sub.recv()).map(|m| (m.partition, m.offset))));
        a.push(format!("{:?}", t!(sub.recv()).map(|m| (m.partition, m.offset))));
        a.push(format!("seek 1 {:?}", t!(sub.seek(1))));
        a.push(format!("seek 0 {:?}", t!(sub.seek(0))));
        let p1 = t!(mq.subscribe_partition("pt", 1, None, ConsumptionMode::Offset(2)));
        a.push(format!("{:?}", p1.as_ref().map(|_| ())));
        if let Ok(p1) = p1 {
            a.push(format!("{:?}", t!(p1.recv()).map(|m| (m.partition, m.offset))));
            a.push(format!(
                "seek_partition {:?}",
                t!(p1.seek_partition(0, 0)).map_err(|e| e.to_string())
            ));
            a.push(format!(
                "seek_partition {:?}",
                t!(p1.seek_partition(1, 4)).map_err(|e| e.to_string())
            ));
            a.push(format!(
                "seek_partition {:?}",
                t!(p1.seek_partition(1, 6)).map_err(|e| e.to_string())
            ));
        }
        a.push(format!(
            "{:?}",
            t!(mq.subscribe_partition("pt", 2, None, ConsumptionMode::Earliest)).map(|_| ())
        ));
        a.push(format!(
            "{:?}",
            t!(mq.subscribe_partition("pt", 0, None, ConsumptionMode::Offset(1))).map(|_| ())
        ));
        let s = t!(mq.get_topic_stats("pt")).map(|s| {
            (
                s.message_count,
                s.published,
                s.evicted,
                s.low_offset,
                s.next_offset,
            )
        });
        a.push(format!("{s:?}"));
        let ps: Vec<_> = t!(mq.get_all_partition_stats("pt"))
            .into_iter()
            .map(|p| (p.partition, p.message_count, p.next_offset))
            .collect();
        a.push(format!("{ps:?}"));
        a.push(format!("{:?}", t!(mq.list_partitioned_topics())));
        a.push(format!(
            "{:?}",
            t!(mq.subscriber_with_options_and_mode("pt", TopicOptions::default(), ConsumptionMode::Earliest))
                .map(|_| ())
        ));
        let g = t!(mq.group("pt", "g").mode(ConsumptionMode::Earliest).join()).unwrap();
        let mut got = Vec::new();
        loop {
            match t!(g.recv_timeout(Duration::from_millis(1500))) {
                Ok(Some(m)) => got.push(format!("{:?}/{}", m.partition, m.offset())),
                Ok(None) => break,
                Err(e) => got.push(format!("{e:?}")),
            }
        }
        got.sort();
        a.push(format!("group {got:?}"));
        a.push(format!("{:?}", t!(mq.delete_partitioned_topic("pt"))));
        a.push(format!("{:?}", t!(mq.list_topics())));
        println!("{backend}: {a:#?}");
        answers.push(a);
    }
    for (m, r) in answers[0].iter().zip(&answers[1]) {
        assert_eq!(m, r, "memory vs redis");
    }
}

/// `subscriber_with_options`: "[`TopicError::InvalidOptions`] for options
/// that cannot work", with the example of `max_messages: Some(0)`
/// (`ConfigError::ZeroCapacity`; a zero TTL is `ZeroTtl`). Such options
/// cannot work on either backend: over Redis they were refused as a store
/// error of kind `Unsupported` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_cannot_work_are_invalid_options_on_both_backends() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    for (backend, mq) in queues {
        let zero = max(0);
        let instant = TopicOptions {
            message_ttl: Some(Duration::ZERO),
            ..TopicOptions::default()
        };
        for options in [zero, instant] {
            let err = t!(mq.subscriber_with_options("none", options.clone())).unwrap_err();
            assert!(
                matches!(err, tokio_memq::TopicError::InvalidOptions(_)),
                "{backend}: {options:?} refused as {err:?}"
            );
        }
    }
}

/// Group names with odd characters (the server keeps `lost:<group>` in
/// the topic's meta hash), empty batches on partitioned topics (passes:
/// kept as a guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_group_names_and_empty_batches_agree() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        let mut a: Vec<String> = Vec::new();
        for g in ["", " ", "lost:x", "g{1}#2", "ü 🚀"] {
            let m = t!(mq.group("gn", g).mode(ConsumptionMode::Earliest).join());
            match m {
                Ok(m) => {
                    t!(mq
                        .publisher("gn")
                        .publish_bytes(g.as_bytes().to_vec(), tokio_memq::SerializationFormat::Raw))
                    .unwrap();
                    let got = t!(m.recv_timeout(Duration::from_secs(3))).map(|m| m.map(|m| m.offset()));
                    let st = t!(mq.get_group_stats("gn", g)).map(|s| (s.lag, s.pending));
                    a.push(format!("{g:?}: {got:?} {st:?}"));
                }
                Err(e) => a.push(format!("{g:?}: join {e:?}")),
            }
        }
        t!(mq.create_partitioned_topic("pe", TopicOptions::default(), 3)).unwrap();
        let p = mq.publisher("pe");
        a.push(format!(
            "{:?}",
            t!(p.publish_batch(Vec::<u32>::new())).map_err(|e| e.to_string())
        ));
        a.push(format!(
            "{:?}",
            t!(p.publish_batch_placed(Vec::<u32>::new())).map_err(|e| e.to_string())
        ));
        a.push(format!(
            "{:?}",
            t!(p.publish_batch(vec![1u32, 2, 3, 4])).map_err(|e| e.to_string())
        ));
        a.push(format!(
            "{:?}",
            t!(p.publish_batch(Vec::<u32>::new())).map_err(|e| e.to_string())
        ));
        println!("{backend}: {a:#?}");
        answers.push(a);
    }
    assert_eq!(answers[0], answers[1]);
}

/// A proxy to `target` that can go silent: once frozen, the connections
/// it has and every connection made afterwards stay open and carry
/// nothing (a server hung, or cut off by the network, for good). Here it
/// starts frozen.
struct SilentProxy {
    addr: std::net::SocketAddr,
    _frozen: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl SilentProxy {
    async fn start(target: std::net::SocketAddr, frozen_now: bool) -> SilentProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, _) = tokio::sync::watch::channel(frozen_now);
        let watch = frozen.clone();
        let accept = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let mut rx = watch.subscribe();
                held.spawn(async move {
                    let frozen_at_accept = *rx.borrow_and_update();
                    if frozen_at_accept {
                        std::future::pending::<()>().await;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let frozen = async move {
                        let _ = rx.wait_for(|f| *f).await.map(drop);
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = frozen => std::future::pending::<()>().await,
                    }
                });
            }
        });
        SilentProxy {
            addr,
            _frozen: frozen,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `MessageQueue::connect`: "[`StoreError`] when the server cannot be
/// reached"; README: "none of these is a hang: a server that stops
/// answering without closing its connections (hung, or cut off by the
/// network) is found when a reply is 10 s past due". A server that
/// accepts the connection and never answers: `connect` fails (passes:
/// kept as a guard, the commands after the handshake have no reply
/// timeout of their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_server_that_never_answers_fails_instead_of_hanging() {
    let Some(server) = server().await else { return };
    let proxy = SilentProxy::start(address(&server), true).await;
    let got = timeout(Duration::from_secs(45), MessageQueue::connect(&proxy.url())).await;
    assert!(
        matches!(got, Ok(Err(_))),
        "connect to a silent server: {:?} after 45 s",
        got.map(|r| r.map(|_| "a queue"))
    );
}

/// Two processes create the same topic at once with different settings:
/// as in memory, one of them makes it (with its settings) and the other
/// is told `OptionsMismatch`. The settings were written one field at a
/// time, so the topic could end up with the limit of one and the TTL of
/// the other: both were refused, and the topic kept settings nobody
/// asked for (now one call, `memq_create`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creations_with_different_settings_leave_one_winner() {
    let Some(server) = server().await else { return };
    let (a, b) = (connect(&server).await, connect(&server).await);
    let opts = |n: usize, secs: u64| TopicOptions {
        max_messages: Some(n),
        message_ttl: Some(Duration::from_secs(secs)),
        ..TopicOptions::default()
    };
    let mut both_refused = Vec::new();
    for i in 0..300 {
        let name = format!("race-{i}");
        let (ra, rb) = t!(async {
            tokio::join!(
                a.create_topic(&name, opts(3, 3600)),
                b.create_topic(&name, opts(5, 7200))
            )
        });
        if ra.is_err() && rb.is_err() {
            both_refused.push((name, ra, rb));
        }
    }
    assert!(
        both_refused.is_empty(),
        "{} of 300 races refused both: {:?}",
        both_refused.len(),
        both_refused.first()
    );
}

/// README: "record headers ... at most 3,900 per message (`Unsupported`
/// above)". A message with exactly 3,900 headers, a key and a format, on
/// a topic that trims (its last message trims as it is added) and one
/// with a TTL and a limit, goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_the_most_headers_allowed_is_published() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let mut headers = tokio_memq::Headers::new();
    for i in 0..3_900 {
        headers.insert(format!("h{i}"), vec![i as u8]);
    }
    for (name, options) in [
        ("hdr-trim", max(10)),
        (
            "hdr-ttl",
            TopicOptions {
                message_ttl: Some(Duration::from_secs(60)),
                ..max(10)
            },
        ),
        (
            "hdr-none",
            TopicOptions {
                max_messages: None,
                ..TopicOptions::default()
            },
        ),
    ] {
        let sub = t!(mq.subscriber_with_options_and_mode(name, options, ConsumptionMode::Earliest)).unwrap();
        let got = t!(mq
            .publisher(name)
            .publish_with_key_and_headers("key", vec![1u32], headers.clone()))
        .map_err(|e| e.to_string());
        assert_eq!(got, Ok(0), "{name}");
        let m = t!(sub.recv()).unwrap();
        assert_eq!(m.headers().len(), 3_900, "{name}");
    }
}

/// `create_topic`: "Creates `topic` with `options`; does nothing when it
/// exists with the same retention options". After another process
/// deleted the topic, this process's `create_topic` with the options it
/// used before did nothing (it answered from the handle it kept), so the
/// topic was not there, and the next publish made it with the default
/// options instead: 5 messages published into a 2-message topic were all
/// retained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_after_another_process_deleted_it_creates_it() {
    let Some(server) = server().await else { return };
    let (a, b) = (connect(&server).await, connect(&server).await);
    t!(a.create_topic("recent", max(2))).unwrap();
    assert!(t!(b.delete_topic("recent")));
    t!(a.create_topic("recent", max(2))).unwrap();
    let exists = t!(b.get_topic_stats("recent")).is_some();
    for i in 0..5u32 {
        t!(a.publisher("recent").publish(i)).unwrap();
    }
    let retained = t!(b.get_topic_stats("recent")).map(|s| s.message_count);
    assert_eq!((exists, retained), (true, Some(2)));
}

/// `register_topic_defaults` (its doc example) over Redis, read by this
/// process and by another that registered nothing (README: "a frame with
/// a header decodes anywhere").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_defaults_with_a_pipeline_cross_the_server() {
    use tokio_memq::{
        CompressionConfig, JsonConfig, PipelineConfig, SerializationConfig, SerializationFormat,
    };
    let Some(server) = server().await else { return };
    let (a, b) = (connect(&server).await, connect(&server).await);
    let mut answers = Vec::new();
    for (backend, mq) in [("memory", MessageQueue::new()), ("redis", a)] {
        let pipeline = PipelineConfig {
            compression: CompressionConfig::Gzip { level: Some(6) },
            pre: None,
            post: None,
            use_magic_header: true,
        };
        mq.register_topic_defaults(
            "logs",
            SerializationFormat::Json,
            SerializationConfig::Json(JsonConfig { pretty: false }),
            Some(pipeline),
        );
        let sub = t!(mq.subscriber_with_options_and_mode(
            "logs",
            TopicOptions::default(),
            ConsumptionMode::Earliest
        ))
        .unwrap();
        t!(mq.publisher("logs").publish(vec!["line one", "line two"])).unwrap();
        let msg = t!(sub.recv()).unwrap();
        answers.push(format!(
            "{backend}: {:?} {:?} {:?}",
            msg.format,
            &msg.payload_bytes()[..3],
            msg.deserialize::<Vec<String>>().map_err(|e| e.to_string())
        ));
    }
    let other =
        t!(b.subscriber_with_options_and_mode("logs", TopicOptions::default(), ConsumptionMode::Earliest))
            .unwrap();
    let msg = t!(other.recv()).unwrap();
    answers.push(format!(
        "other: {:?} {:?}",
        msg.format,
        msg.deserialize::<Vec<String>>().map_err(|e| e.to_string())
    ));
    println!("{answers:#?}");
    assert_eq!(answers[0].replace("memory", ""), answers[1].replace("redis", ""));
    assert!(
        answers[2].contains("Ok([\"line one\", \"line two\"])"),
        "{answers:?}"
    );
}

/// Errors of calls on the wrong kind of topic, or a missing one (passes:
/// kept as a guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_kind_and_missing_topic_errors_agree() {
    use tokio_memq::{PartitionRouting, TopicMessage};
    let Some((queues, _server)) = both().await else {
        return;
    };
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        let mut a: Vec<String> = Vec::new();
        t!(mq.create_topic("plain", TopicOptions::default())).unwrap();
        t!(mq.create_partitioned_topic("pt", TopicOptions::default(), 2)).unwrap();
        a.push(format!(
            "{:?}",
            t!(mq.publish_to_partitioned(TopicMessage::new("plain", 1u8).unwrap()))
                .map_err(|e| e.to_string())
        ));
        a.push(format!(
            "{:?}",
            t!(mq.publish_to_partitioned(TopicMessage::new("missing", 1u8).unwrap()))
                .map_err(|e| e.to_string())
        ));
        a.push(format!(
            "{:?}",
            t!(mq.set_partition_routing("missing", PartitionRouting::Hash))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.set_partition_routing("plain", PartitionRouting::Hash))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.subscribe_partition("plain", 0, None, ConsumptionMode::Earliest)).map(|_| ())
        ));
        a.push(format!(
            "{:?}",
            t!(mq.subscribe_partition("missing", 0, None, ConsumptionMode::Earliest)).map(|_| ())
        ));
        a.push(format!(
            "{:?}",
            t!(mq.get_partition_stats("plain", 0)).map(|_| ())
        ));
        a.push(format!(
            "{:?}",
            t!(mq.create_partitioned_topic("plain", TopicOptions::default(), 2))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.create_topic("pt", TopicOptions::default()))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.create_topic(
                "pt",
                TopicOptions {
                    partitions: Some(2),
                    ..TopicOptions::default()
                }
            ))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.create_topic(
                "pt",
                TopicOptions {
                    partitions: Some(3),
                    ..TopicOptions::default()
                }
            ))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.create_topic(
                "plain",
                TopicOptions {
                    partitions: Some(2),
                    ..TopicOptions::default()
                }
            ))
        ));
        a.push(format!(
            "{:?}",
            t!(mq.subscriber_with_options(
                "plain",
                TopicOptions {
                    partitions: Some(2),
                    ..TopicOptions::default()
                }
            ))
            .map(|_| ())
        ));
        a.push(format!("{:?}", t!(mq.delete_topic("missing"))));
        a.push(format!("{:?}", t!(mq.delete_partitioned_topic("plain"))));
        a.push(format!(
            "{:?}",
            t!(mq.get_group_stats("missing", "g")).map(|_| ())
        ));
        a.push(format!("{:?}", t!(mq.get_group_stats("plain", "g")).map(|_| ())));
        a.push(format!(
            "{:?}",
            t!(mq.subscribe_partition_with_options(
                "newpt",
                2,
                TopicOptions::default(),
                None,
                ConsumptionMode::Earliest
            ))
            .map(|_| ())
        ));
        a.push(format!("{:?}", t!(mq.get_all_partition_stats("newpt")).len()));
        a.push(format!(
            "{:?}",
            t!(mq.subscribe_partition_with_options(
                "plain",
                0,
                TopicOptions::default(),
                None,
                ConsumptionMode::Earliest
            ))
            .map(|_| ())
        ));
        a.push(format!("{:?}", t!(mq.list_topics())));
        a.push(format!("{:?}", t!(mq.list_partitioned_topics())));
        println!("{backend}: {a:#?}");
        answers.push(a);
    }
    for (m, r) in answers[0].iter().zip(&answers[1]) {
        assert_eq!(m, r, "memory vs redis");
    }
}

/// `TopicStats::consumer_lags`: "Named consumers' lag ... A consumer group
/// with automatic acknowledgement commits through the last message it
/// handed out ... count here": in memory a group is listed with its lag.
/// Over Redis the map was always empty, though the README's stats row
/// lists only "no subscriber count or bytes" as missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_stats_list_group_lags() {
    let Some((queues, _server)) = both().await else {
        return;
    };
    let mut answers = Vec::new();
    for (backend, mq) in queues {
        let g = t!(mq.group("cl", "g").mode(ConsumptionMode::Earliest).join()).unwrap();
        t!(mq.publisher("cl").publish_batch(vec![1u32, 2, 3])).unwrap();
        t!(g.recv()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = t!(mq.get_topic_stats("cl")).unwrap();
        let mut lags: Vec<_> = s.consumer_lags.into_iter().collect();
        lags.sort();
        answers.push((backend, lags, s.subscriber_count));
    }
    println!("{answers:?}");
    assert_eq!(answers[0].1, answers[1].1, "{answers:?}");
}

/// The server goes away for good while a reader, a group member and a
/// manual member wait: each receive ends with a typed store error (README,
/// failures row: "`Unavailable` (nothing done, after reconnecting for 30
/// s)"), no panic, no wait for ever. The reader's did after 30 s; a group
/// member's reconnected for 30 s, then again for 30 s more to check
/// whether its topic was gone (60 s in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_waiting_when_the_server_dies_for_good_end_after_30_s() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let reader =
        t!(mq.subscriber_with_options_and_mode("dies", TopicOptions::default(), ConsumptionMode::Latest))
            .unwrap();
    let member = t!(mq.group("dies", "g").mode(ConsumptionMode::Latest).join()).unwrap();
    let manual = t!(mq
        .group("dies", "m")
        .manual_ack()
        .mode(ConsumptionMode::Latest)
        .join())
    .unwrap();
    let started = std::time::Instant::now();
    let timed = |f| async move {
        let r = timeout(Duration::from_secs(80), f).await;
        (
            format!(
                "{:?}",
                r.as_ref()
                    .map(|r: &Result<tokio_memq::TopicMessage, RecvError>| r.as_ref().map(|m| m.offset()))
            ),
            r.is_ok_and(|r| matches!(r, Err(RecvError::Store(_)))),
            started.elapsed(),
        )
    };
    let waits = async { tokio::join!(timed(reader.recv()), timed(member.recv()), timed(manual.recv())) };
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(server);
    };
    let ((r, m, mm), ()) = tokio::join!(waits, killer);
    let all = [("reader", r), ("member", m), ("manual member", mm)];
    for (what, (shown, store_error, after)) in &all {
        assert!(*store_error, "{what}: {shown}");
        assert!(
            *after < Duration::from_secs(45),
            "{what}: a store error only after {after:?} (reader, member, manual: {:?})",
            all.iter().map(|a| a.1 .2).collect::<Vec<_>>()
        );
    }
}

/// A delete racing a creation must not leave half a topic behind: after
/// the race the topic either exists (with the creator's settings) or is
/// gone entirely, so a later `create_topic` with other settings on a topic
/// that does not exist succeeds. The settings were written one field at a
/// time: a delete between them left a meta hash with a message limit
/// and a TTL but no incarnation, which the next creation took as the
/// topic's settings (now `memq_create` and `memq_delete`, one call each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_a_creation_leaves_no_half_topic() {
    let Some(server) = server().await else { return };
    let (a, b, c) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    let mut half = Vec::new();
    for i in 0..3000 {
        let name = format!("half-{i}");
        let _ = t!(async { tokio::join!(a.create_topic(&name, max(3)), b.delete_topic(&name)) });
        let exists = t!(c.get_topic_stats(&name)).is_some();
        if !exists {
            if let Err(e) = t!(c.create_topic(&name, max(7))) {
                half.push((name, e));
            }
        }
    }
    assert!(
        half.is_empty(),
        "{} of 3000: a topic that does not exist refused other settings: {:?}",
        half.len(),
        half.first()
    );
}

/// memq-redis: "a server restarted without its data is [`Error::TopicGone`]
/// to the handles of the topics it lost"; README: "A deleted topic, or one
/// lost with a restarted server's data, is `Closed`", "also when the topic
/// was created again meanwhile". Here another process creates the topic
/// again on the restarted server before the old handles look. Topic
/// incarnations came from a counter kept on the server (`INCR
/// memq:incarnations`), lost with the data: the new topic got the
/// incarnation the lost one had, and the old handles took it for theirs
/// (now the server's clock comes before the count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_of_a_topic_lost_with_the_server_s_data_and_made_again_are_closed() {
    let Some(mut server) = server().await else { return };
    let a = connect(&server).await;
    let sub = t!(a.subscriber_with_options_and_mode("t", TopicOptions::default(), ConsumptionMode::Earliest))
        .unwrap();
    let publisher = a.publisher("t");
    t!(publisher.publish(0u32)).unwrap();
    assert_eq!(t!(sub.recv()).unwrap().offset(), 0);
    tokio::task::block_in_place(|| server.restart());
    let b = connect(&server).await;
    t!(b.publisher("t").publish_batch(vec![10u32, 11, 12])).unwrap();
    let read = t!(sub.recv_timeout(Duration::from_secs(5)))
        .map(|m| m.map(|m| (m.offset(), m.deserialize::<u32>().ok())));
    // A publish through the old, bound publisher (one lost connection may
    // make the first attempt's outcome unknown).
    let mut published = t!(publisher.publish(99u32)).map_err(|e| e.kind());
    if published == Err(PublishErrorKind::Store) {
        published = t!(publisher.publish(99u32)).map_err(|e| e.kind());
    }
    assert_eq!(
        (read, published),
        (Err(RecvError::Closed), Err(PublishErrorKind::Closed)),
        "the old reader and publisher of the lost topic"
    );
}

/// The same for a group member: told `Closed`, not a store error at every
/// receive (its group does not exist on the new topic: `NOGROUP`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_topic_lost_with_the_server_s_data_and_made_again_is_closed() {
    let Some(mut server) = server().await else { return };
    let a = connect(&server).await;
    let member = t!(a.group("t", "g").mode(ConsumptionMode::Earliest).join()).unwrap();
    t!(a.publisher("t").publish(0u32)).unwrap();
    assert_eq!(t!(member.recv()).unwrap().offset(), 0);
    tokio::task::block_in_place(|| server.restart());
    let b = connect(&server).await;
    t!(b.publisher("t").publish_batch(vec![10u32, 11, 12])).unwrap();
    let mut told = Vec::new();
    for _ in 0..2 {
        told.push(t!(member.recv_timeout(Duration::from_secs(5))).map(|m| m.map(|m| m.offset())));
    }
    assert_eq!(told, [Err(RecvError::Closed), Err(RecvError::Closed)]);
}

/// DESIGN-redis.md ("Shape"): memq-redis "Checks the server version (7.0
/// or newer) and eviction policy on connect". A server that may evict any
/// key under memory pressure (`allkeys-lru`) can drop a topic's log while
/// its meta hash stays: the next publish starts the offsets again at 0.
/// `connect` took such a server without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_may_evict_queue_data_is_refused_on_connect() {
    let Some(server) = server().await else { return };
    assert_eq!(
        raw(&server, &[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"]),
        "+OK"
    );
    let got = t!(MessageQueue::connect(&server.url()));
    assert!(
        got.is_err(),
        "connect accepted a server with maxmemory-policy allkeys-lru"
    );
}

/// DESIGN-redis.md ("Shape"): memq-redis "Ships its FUNCTION library and
/// loads it on connect (and again on \"function not found\")". After the
/// server lost its functions (`FUNCTION FLUSH`, as a failover to a replica
/// or a restore without them does) with the connection kept, every
/// publish failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_load_the_function_library_again_when_the_server_lost_it() {
    let Some(server) = server().await else { return };
    let mq = connect(&server).await;
    let p = mq.publisher("fl");
    assert_eq!(t!(p.publish(1u32)).unwrap(), 0);
    assert_eq!(raw(&server, &[b"FUNCTION", b"FLUSH"]), "+OK");
    let got = t!(p.publish(2u32)).map_err(|e| e.to_string());
    assert_eq!(got, Ok(1));
}
