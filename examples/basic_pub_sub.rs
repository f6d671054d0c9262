//! One publisher, one subscriber, a typed value and a byte payload.
//!
//! `cargo run --example basic_pub_sub`

use serde::{Deserialize, Serialize};
use tokio_memq::{MessageQueue, SerializationFormat};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mq = MessageQueue::new();
    let sub = mq.subscriber("orders").await?;
    let publisher = mq.publisher("orders");

    let offset = publisher
        .publish(Order {
            id: 1,
            item: "coffee".into(),
        })
        .await?;
    publisher
        .publish_bytes(&b"raw bytes"[..], SerializationFormat::Bincode)
        .await?;

    let msg = sub.recv().await?;
    let order: Order = msg.deserialize()?;
    assert_eq!(msg.offset(), offset);
    println!("offset {}: {order:?}", msg.offset());

    let msg = sub.recv().await?;
    println!(
        "offset {}: {} bytes: {}",
        msg.offset(),
        msg.payload.len(),
        msg.payload_str()
    );
    Ok(())
}
