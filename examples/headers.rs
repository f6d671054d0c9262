//! A trace id carried in record headers from the publisher, through a
//! consumer group that gives up on a message, to the inspection of the
//! dead letter: the operator sees the original trace id next to where
//! the message came from and why it was given up.
//!
//! `cargo run --example headers`

use std::time::Duration;

use tokio_memq::{dead_letter_headers, ConsumptionMode, Headers, MessageQueue};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = run().await?;
    for line in &report {
        println!("{line}");
    }
    Ok(())
}

/// Publishes three payments with trace ids, lets a worker fail on the
/// bad one until it is dead-lettered, and returns what the inspection of
/// the dead-letter topic prints.
async fn run() -> anyhow::Result<Vec<String>> {
    let mq = MessageQueue::new();
    let dead = mq.subscriber("payments.dead-letters").await?;
    let worker = mq
        .group("payments", "settlement")
        .manual_ack()
        .max_deliveries(3)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await?;

    let publisher = mq.publisher("payments");
    for (trace, amount) in [("trace-a1", 120i64), ("trace-b2", -5), ("trace-c3", 40)] {
        let mut headers = Headers::new();
        headers.insert("trace-id", trace).insert("source", "checkout");
        publisher.publish_with_headers(amount, headers).await?;
    }

    // The worker: settles positive amounts, cannot settle negative ones
    // (it asks for a redelivery, as for a transient failure).
    let mut settled = Vec::new();
    while let Some(msg) = worker.recv_timeout(Duration::from_millis(100)).await? {
        let amount: i64 = msg.deserialize()?;
        let trace = msg.headers().get_str("trace-id").unwrap_or("-").to_owned();
        if amount > 0 {
            settled.push(format!("settled {amount} ({trace})"));
            worker.ack(&msg)?;
        } else {
            worker.nack(&msg)?; // delivered again, until max_deliveries
        }
    }

    // The operator's inspection of the dead letters.
    let mut report = settled;
    loop {
        match dead.try_recv_now() {
            Ok(letter) => {
                let h = letter.headers();
                report.push(format!(
                    "dead letter: amount {} trace-id {} from {}/{} offset {} after {} deliveries ({})",
                    letter.deserialize::<i64>()?,
                    h.get_str("trace-id").unwrap_or("-"),
                    h.get_str(dead_letter_headers::TOPIC).unwrap_or("-"),
                    h.get_str(dead_letter_headers::GROUP).unwrap_or("-"),
                    h.get_str(dead_letter_headers::OFFSET).unwrap_or("-"),
                    h.get_str(dead_letter_headers::DELIVERIES).unwrap_or("-"),
                    h.get_str(dead_letter_headers::REASON).unwrap_or("-"),
                ));
            }
            Err(tokio_memq::TryRecvError::Lagged(n)) => report.push(format!("{n} dead letters lost")),
            Err(_) => break,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    /// The example does what it says: two payments settled with their
    /// trace ids, the bad one dead-lettered with its trace id and origin.
    #[tokio::test]
    async fn the_trace_id_reaches_the_dead_letter_inspection() {
        let report = tokio::time::timeout(std::time::Duration::from_secs(30), super::run())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            report,
            [
                "settled 120 (trace-a1)",
                "settled 40 (trace-c3)",
                "dead letter: amount -5 trace-id trace-b2 from payments/settlement offset 1 after 3 deliveries (max_deliveries=3)",
            ]
        );
    }
}
