//! One subscriber for a family of topics: `sensors.*.temperature` reads
//! every room's temperature topic, including rooms added while it runs,
//! and nothing else; per-room order holds and each reading says its room.
//!
//! `cargo run --example wildcard`

use std::collections::BTreeMap;

use tokio_memq::{MessageQueue, PatternRecvError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for (room, readings) in run().await? {
        println!("{room}: {readings:?}");
    }
    Ok(())
}

/// Publishes readings for three rooms (one added after subscribing) and
/// some humidity noise; returns the temperatures per room as received.
async fn run() -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    let mq = MessageQueue::new();
    mq.publisher("sensors.kitchen.temperature")
        .publish(20.0f64)
        .await?; // before: not read
    let temperatures = mq.subscribe_pattern("sensors.*.temperature")?;

    let mut sensors = Vec::new();
    for (room, base) in [("kitchen", 21.0), ("attic", 30.0), ("cellar", 12.0)] {
        let temperature = mq.publisher(format!("sensors.{room}.temperature"));
        let humidity = mq.publisher(format!("sensors.{room}.humidity"));
        sensors.push(tokio::spawn(async move {
            for i in 0..3 {
                temperature.publish(base + f64::from(i) * 0.5).await?;
                humidity.publish(40.0f64).await?;
            }
            anyhow::Ok(())
        }));
    }
    for s in sensors {
        s.await??;
    }
    mq.close(); // ends the subscription once every room is drained

    let mut rooms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    loop {
        match temperatures.recv().await {
            Ok(msg) => {
                let room = msg.topic().split('.').nth(1).unwrap_or("?").to_string();
                rooms.entry(room).or_default().push(msg.deserialize()?);
            }
            Err(PatternRecvError::Lagged { topic, count }) => eprintln!("{topic}: {count} readings lost"),
            Err(_closed) => break,
        }
    }
    Ok(rooms)
}

#[cfg(test)]
mod tests {
    /// Every room's temperatures, in order, the one before subscribing
    /// and the humidity noise left out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_room_in_order_and_nothing_else() {
        let rooms = tokio::time::timeout(std::time::Duration::from_secs(30), super::run())
            .await
            .unwrap()
            .unwrap();
        let expected: std::collections::BTreeMap<String, Vec<f64>> = [
            ("attic".to_string(), vec![30.0, 30.5, 31.0]),
            ("cellar".to_string(), vec![12.0, 12.5, 13.0]),
            ("kitchen".to_string(), vec![21.0, 21.5, 22.0]),
        ]
        .into();
        assert_eq!(rooms, expected);
    }
}
