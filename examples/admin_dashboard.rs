//! The admin page over a small live workload: publishers, a subscriber
//! that falls behind, and a consumer group whose failing worker
//! dead-letters some jobs. Open the printed address in a browser.
//!
//! `cargo run --example admin_dashboard`

use std::net::SocketAddr;
use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (addr, server) = start().await?;
    println!("admin page: http://{addr}/admin (Ctrl-C to stop)");
    server.await??;
    Ok(())
}

/// Starts the workload and serves the page on a free port of 127.0.0.1.
async fn start() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let mq = MessageQueue::new();
    workload(&mq).await?;
    let app = axum::Router::new().nest("/admin", memq_admin::router(mq));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((
        addr,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    ))
}

async fn workload(mq: &MessageQueue) -> anyhow::Result<()> {
    // Orders at a steady rate; a reporting subscriber that reads slowly
    // falls behind (its topic keeps 500).
    mq.create_topic(
        "orders",
        TopicOptions {
            max_messages: Some(500),
            ..TopicOptions::default()
        },
    )
    .await?;
    let slow = mq.subscriber("orders").await?;
    let orders = mq.publisher("orders");
    tokio::spawn(async move {
        for i in 0u64.. {
            if orders.publish(i).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::spawn(async move {
        while slow.recv().await.is_ok() || !slow.is_closed() {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    });

    // Jobs for a group of two workers; one fails every fifth job, which
    // is redelivered until it becomes a dead letter.
    let jobs = mq.publisher("jobs");
    tokio::spawn(async move {
        for i in 0u64.. {
            if jobs.publish(i).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    for worker in 0..2 {
        let member = mq
            .group("jobs", "workers")
            .manual_ack()
            .max_deliveries(3)
            .ack_timeout(Duration::from_millis(200))
            .mode(ConsumptionMode::Earliest)
            .join()
            .await?;
        tokio::spawn(async move {
            while let Ok(job) = member.recv().await {
                let n: u64 = job.deserialize().unwrap_or(0);
                if worker == 1 && n % 5 == 0 {
                    let _ = member.nack(&job); // fails: delivered again
                } else {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let _ = member.ack(&job);
                }
            }
        });
    }
    // Clicks across four partitions.
    mq.create_partitioned_topic("clicks", TopicOptions::default(), 4)
        .await?;
    let clicks = mq.publisher("clicks");
    tokio::spawn(async move {
        for i in 0u64.. {
            if clicks.publish(i).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The example serves what it says: the page and its JSON, with the
    /// workload's topics and the group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_page_and_the_workload() {
        let (addr, _server) = super::start().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let page = tokio::time::timeout(std::time::Duration::from_secs(30), get("/admin"))
            .await
            .unwrap();
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("<title>tokio-memq admin</title>"));
        let json = tokio::time::timeout(std::time::Duration::from_secs(30), get("/admin/api/snapshot"))
            .await
            .unwrap();
        for needle in [
            "\"name\":\"orders\"",
            "\"name\":\"jobs\"",
            "\"name\":\"clicks\"",
            "\"name\":\"workers\"",
        ] {
            assert!(json.contains(needle), "{needle} in {json}");
        }
    }
}
