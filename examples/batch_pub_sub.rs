//! Batches: one publish call, one contiguous run of offsets; receive many
//! per call.
//!
//! `cargo run --example batch_pub_sub`

use tokio_memq::MessageQueue;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("metrics").await?;
    let publisher = mq.publisher("metrics");

    let mut received = 0;
    for round in 0..10 {
        let batch: Vec<u32> = (0..100).map(|i| round * 100 + i).collect();
        let offsets = publisher.publish_batch(batch).await?;
        println!("batch {round}: offsets {offsets:?}");
        while received < offsets.end {
            let msgs = sub.recv_batch(100).await?;
            received += msgs.len() as u64;
        }
    }
    println!("received {received} messages");
    assert_eq!(received, 1000);
    Ok(())
}
