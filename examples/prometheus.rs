//! The queue's metrics in Prometheus text format, served on 127.0.0.1:
//! a workload runs while `GET /metrics` renders `record_metrics`'s
//! numbers through metrics-exporter-prometheus (any `metrics` exporter
//! works the same way).
//!
//! `cargo run --example prometheus --features metrics`, then
//! `curl http://127.0.0.1:<port>/metrics`.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mq, handle) = setup().await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "serving http://{}/metrics (Ctrl-C to stop)",
        listener.local_addr()?
    );
    loop {
        let (mut socket, _) = listener.accept().await?;
        let (mq, handle) = (mq.clone(), handle.clone());
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let body = scrape(&mq, &handle);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Installs the exporter's recorder and starts a small workload: orders
/// published and read, a group working through jobs.
async fn setup() -> anyhow::Result<(MessageQueue, PrometheusHandle)> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    MessageQueue::describe_metrics();
    let mq = MessageQueue::new();
    let orders = mq
        .subscriber_with_options(
            "orders",
            TopicOptions {
                max_messages: Some(100),
                ..TopicOptions::default()
            },
        )
        .await?;
    let worker = mq
        .group("jobs", "billing")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await?;
    let publisher = mq.publisher("orders");
    let jobs = mq.publisher("jobs");
    for i in 0..50u32 {
        publisher.publish(i).await?;
        jobs.publish(i).await?;
    }
    orders.recv_batch(20).await?;
    worker.recv_batch(30).await?;
    // The handles stay alive with the queue's state: keep them running.
    tokio::spawn(async move {
        let _keep = (orders, worker);
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    Ok((mq, handle))
}

/// What a scrape returns: the queue's numbers recorded now, rendered.
fn scrape(mq: &MessageQueue, handle: &PrometheusHandle) -> String {
    mq.record_metrics();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example serves what it says: Prometheus text with the queue's
    /// metrics, their help, types and labels.
    #[tokio::test]
    async fn a_scrape_renders_the_queue_in_prometheus_text() {
        let (mq, handle) = setup().await.unwrap();
        let text = scrape(&mq, &handle);
        for line in [
            "# TYPE memq_messages_published_total counter",
            "memq_messages_published_total{topic=\"orders\"} 50",
            "memq_messages_delivered_total{topic=\"orders\"} 20",
            "memq_retained_messages{topic=\"orders\"} 50",
            "memq_subscribers{topic=\"orders\"} 1",
            "memq_group_members{topic=\"jobs\",group=\"billing\"} 1",
            "memq_group_lag_messages{topic=\"jobs\",group=\"billing\"} 20",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(
            text.contains("# HELP memq_retained_bytes Bytes the topic retains now."),
            "{text}"
        );
    }
}
