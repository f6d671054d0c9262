//! Delivery: every message to every subscriber, dense offsets, payloads intact.

use memq_testkit::within;
use std::collections::HashSet;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio_memq::{Bytes, MessageQueue, SerializationFormat, TopicOptions};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sixteen_publishers_dense_ordered_offsets_every_message_to_every_subscriber() {
    const PUBLISHERS: u64 = 16;
    const PER: u64 = 2_000;
    const SUBS: usize = 4;
    let total = PUBLISHERS * PER;
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(total as usize),
        ..Default::default()
    };
    let mut subs = Vec::new();
    for _ in 0..SUBS {
        subs.push(mq.subscriber_with_options("load", options.clone()).await.unwrap());
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|sub| {
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(total as usize);
                while (seen.len() as u64) < total {
                    let msg = sub.recv().await.expect("no lag, no close");
                    let (p, i) = *msg.native::<(u64, u64)>().expect("native tuple");
                    seen.push((msg.offset(), p, i));
                }
                seen
            })
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let publisher = mq.publisher("load");
            tokio::spawn(async move {
                let mut offsets = Vec::with_capacity(PER as usize);
                for i in 0..PER {
                    offsets.push(publisher.publish((p, i)).await.unwrap());
                }
                offsets
            })
        })
        .collect();
    let run = async {
        let mut assigned = HashSet::new();
        for h in publishers {
            let offsets = h.await.unwrap();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "a publisher's offsets increase"
            );
            assigned.extend(offsets);
        }
        assert_eq!(assigned.len() as u64, total);
        assert_eq!(assigned.iter().max(), Some(&(total - 1)), "dense from 0");
        for r in readers {
            let seen = r.await.unwrap();
            let offsets: Vec<u64> = seen.iter().map(|s| s.0).collect();
            assert_eq!(
                offsets,
                (0..total).collect::<Vec<_>>(),
                "every offset once, in order"
            );
            // Per publisher, messages arrive in the order published.
            let mut next = vec![0u64; PUBLISHERS as usize];
            for (_, p, i) in seen {
                assert_eq!(next[p as usize], i);
                next[p as usize] += 1;
            }
        }
    };
    within(LIMIT, run).await.expect("finished in time");
    let stats = mq.get_topic_stats("load").await.unwrap();
    assert_eq!((stats.published, stats.dropped_messages), (total, 0));
}

#[tokio::test]
async fn non_ascii_and_binary_payloads_round_trip() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("bin").await.unwrap();
    let publisher = mq.publisher("bin");

    let text: String = "héllo wörld ✓ 日本語 🦀 ".repeat(100 * 1024 / 30);
    assert!(text.len() > 100 * 1024 - 64);
    publisher.publish(text.clone()).await.unwrap();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut blobs = Vec::new();
    for len in [0usize, 1, 255, 256, 257, 4096, 100 * 1024] {
        let blob: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        publisher
            .publish_bytes(blob.clone(), SerializationFormat::Bincode)
            .await
            .unwrap();
        blobs.push(blob);
    }
    let json = serde_json::to_vec(&text).unwrap();
    publisher
        .publish_bytes(json, SerializationFormat::Json)
        .await
        .unwrap();

    within(LIMIT, async {
        let m = sub.recv().await.unwrap();
        assert_eq!(m.deserialize::<String>().unwrap(), text);
        assert_eq!(m.payload_str(), text.as_str());
        for blob in &blobs {
            let m = sub.recv().await.unwrap();
            assert_eq!(m.payload_bytes(), &blob[..]);
            assert_eq!(m.payload.len(), blob.len());
            let _ = m.payload_str(); // lossy, never panics
            assert!(format!("{m:?}").len() < 300, "Debug never dumps payloads");
        }
        let m = sub.recv().await.unwrap();
        assert_eq!(m.deserialize::<String>().unwrap(), text);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn large_payloads_are_shared_not_copied() {
    let mq = MessageQueue::new();
    let subs = [
        mq.subscriber("big").await.unwrap(),
        mq.subscriber("big").await.unwrap(),
        mq.subscriber("big").await.unwrap(),
    ];
    let payload = Bytes::from(vec![7u8; 8 << 20]);
    let ptr = payload.as_ptr();
    mq.publisher("big")
        .publish_bytes(payload.clone(), SerializationFormat::Bincode)
        .await
        .unwrap();
    let shared = std::sync::Arc::new(vec![1u8; 1 << 20]);
    let shared_ptr = shared.as_ptr();
    mq.publisher("big")
        .publish_shared_bytes(shared.clone(), SerializationFormat::Bincode)
        .await
        .unwrap();
    for sub in &subs {
        let m = sub.recv().await.unwrap();
        assert_eq!(m.payload_bytes().as_ptr(), ptr, "same allocation");
        assert_eq!(m.bytes().unwrap().as_ptr(), ptr);
        let m = sub.recv().await.unwrap();
        assert_eq!(
            m.payload_bytes().as_ptr(),
            shared_ptr,
            "Arc<Vec<u8>> borrowed, not copied"
        );
    }
}

#[tokio::test]
async fn native_values_read_back_as_same_or_compatible_types() {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("native").await.unwrap();
    let p = mq.publisher("native");
    p.publish("borrowed str").await.unwrap();
    p.publish(-5i32).await.unwrap();
    p.publish(vec![1u8, 2, 3]).await.unwrap();

    let m = sub.recv().await.unwrap();
    assert_eq!(m.deserialize::<String>().unwrap(), "borrowed str");
    assert_eq!(*m.native::<&str>().unwrap(), "borrowed str");
    let m = sub.recv().await.unwrap();
    assert_eq!(m.deserialize::<i64>().unwrap(), -5);
    assert_eq!(m.deserialize::<i32>().unwrap(), -5);
    let err = m.deserialize::<String>().unwrap_err();
    assert_eq!(err.kind(), tokio_memq::DecodeErrorKind::TypeMismatch);
    assert_eq!(err.offset(), Some(1));
    let m = sub.recv().await.unwrap();
    assert_eq!(m.deserialize::<Vec<u16>>().unwrap(), vec![1, 2, 3]);
}

#[test]
fn new_and_default_work_outside_a_runtime() {
    let mq = tokio_memq::MessageQueue::new();
    let _other = tokio_memq::MessageQueue::default();
    let publisher = mq.publisher("outside");
    assert_eq!(publisher.try_publish(1u8).unwrap(), 0);
    // A runtime created later sees the same queue.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sub = mq
            .subscriber_with_options_and_mode(
                "outside",
                TopicOptions::default(),
                tokio_memq::ConsumptionMode::Earliest,
            )
            .await
            .unwrap();
        assert_eq!(sub.recv().await.unwrap().deserialize::<u8>().unwrap(), 1);
    });
    drop(mq);
}

/// A receive parked on a subscriber shared between tasks wakes when
/// another task moves the subscriber back (`seek`, `reset_offset`, or
/// `seek_partition` on a subscriber of every partition): the next message
/// is there at once. Before, the wake-up was lost, and the receive slept
/// until something new was published.
#[test]
fn a_seek_back_wakes_a_receive_parked_on_the_same_subscriber() {
    for multi_thread in [false, true] {
        let mut builder = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        let runtime = builder.worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            for how in ["seek", "reset_offset", "seek_partition"] {
                let mq = MessageQueue::new();
                let partitioned = how == "seek_partition";
                if partitioned {
                    mq.create_partitioned_topic("t", TopicOptions::default(), 2)
                        .await
                        .unwrap();
                    mq.set_partition_routing("t", tokio_memq::PartitionRouting::Fixed(0))
                        .await
                        .unwrap();
                }
                let sub = std::sync::Arc::new(
                    mq.subscriber_with_options_and_mode(
                        "t",
                        TopicOptions::default(),
                        tokio_memq::ConsumptionMode::Earliest,
                    )
                    .await
                    .unwrap(),
                );
                mq.publisher("t").publish_batch(vec![0u64, 1, 2]).await.unwrap();
                for _ in 0..3 {
                    sub.recv().await.unwrap();
                }
                let parked = tokio::spawn({
                    let sub = sub.clone();
                    async move { sub.recv().await.map(|m| m.offset()) }
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
                match how {
                    "seek" => sub.seek(0).await.unwrap(),
                    "reset_offset" => sub.reset_offset().await,
                    _ => sub.seek_partition(0, 0).await.unwrap(),
                }
                let got = tokio::time::timeout(Duration::from_secs(10), parked)
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{how} (multi-thread: {multi_thread}): the parked receive slept on")
                    })
                    .unwrap()
                    .unwrap();
                assert_eq!(got, 0, "{how}");
            }
        });
    }
}
