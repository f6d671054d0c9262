//! 1 MiB to 100 MiB payloads through the queue, zero-copy: every
//! subscriber receives the publisher's allocation itself.
//!
//! `cargo run --release --example large_object_test`

use std::time::Instant;

use tokio_memq::{Bytes, MessageQueue, SerializationFormat, TopicOptions};

const SUBSCRIBERS: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    println!("| payload | messages | subscribers | deliveries/s | logical GiB/s | copies |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, size, count) in [
        ("1 MiB", 1usize << 20, 2_000u64),
        ("10 MiB", 10 << 20, 2_000),
        ("50 MiB", 50 << 20, 2_000),
        ("100 MiB", 100 << 20, 2_000),
    ] {
        let mq = MessageQueue::new();
        // Room for 8 payloads: the topic holds at most 800 MiB of views of
        // the one allocation; publishers wait for slow subscribers.
        let options = TopicOptions {
            max_messages: Some(8),
            lru_enabled: false,
            ..Default::default()
        };
        let payload = Bytes::from(vec![0x5A; size]);
        let ptr = payload.as_ptr() as usize;
        let mut readers = Vec::new();
        for _ in 0..SUBSCRIBERS {
            let sub = mq.subscriber_with_options(name, options.clone()).await?;
            readers.push(tokio::spawn(async move {
                let mut copies = 0u64;
                let mut bytes = 0u64;
                for _ in 0..count {
                    let msg = sub.recv().await?;
                    if msg.payload_bytes().as_ptr() as usize != ptr {
                        copies += 1;
                    }
                    bytes += msg.payload.len() as u64;
                }
                anyhow::Ok((copies, bytes))
            }));
        }
        let publisher = mq.publisher(name);
        let start = Instant::now();
        for _ in 0..count {
            publisher
                .publish_bytes(payload.clone(), SerializationFormat::Bincode)
                .await?;
        }
        let (mut copies, mut bytes) = (0, 0);
        for r in readers {
            let (c, b) = r.await??;
            copies += c;
            bytes += b;
        }
        let secs = start.elapsed().as_secs_f64();
        let deliveries = count * SUBSCRIBERS as u64;
        assert_eq!(
            bytes,
            deliveries * size as u64,
            "every byte of every message arrived"
        );
        println!(
            "| {name} | {count} | {SUBSCRIBERS} | {:.0} | {:.1} | {copies} |",
            deliveries as f64 / secs,
            bytes as f64 / secs / (1u64 << 30) as f64,
        );
        anyhow::ensure!(copies == 0, "{copies} deliveries of {name} were copies");
    }
    println!("\nNo payload was copied: each delivery pointed at the publisher's own allocation.");
    Ok(())
}
