//! The spec README's snippets 5.1–5.3, as written, inside the scaffolding
//! a user would put around them.

use std::time::Duration;

// The snippet imports the traits as 1.0.0 required; the inherent methods
// are found first, so the imports are unused (a warning, as for users).
#[allow(unused_imports, unreachable_pub, clippy::unnecessary_to_owned)]
mod snippet_5_1 {
    // --- README 5.1, verbatim (plus `pub` so the test can call it) ---
    use tokio_memq::mq::MessageQueue;
    use tokio_memq::{AsyncMessagePublisher, MessageSubscriber};

    #[tokio::main]
    pub async fn main() -> anyhow::Result<()> {
        let mq = MessageQueue::new();
        let topic = "chat";

        // 1. Create Subscriber
        let sub = mq.subscriber(topic.to_string()).await?;

        // 2. Publish Message
        let pub_instance = mq.publisher(topic.to_string());
        tokio::spawn(async move {
            pub_instance.publish("Hello World".to_string()).await.unwrap();
        });

        // 3. Receive Message
        let msg = sub.recv().await?;
        let payload: String = msg.deserialize()?;
        println!("Received: {}", payload);

        Ok(())
    }
    // --- end ---
}

#[test]
fn readme_5_1_basic_pub_sub() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(snippet_5_1::main().map_err(|e| e.to_string())));
    let result = rx.recv_timeout(Duration::from_secs(30)).expect("5.1 finished");
    assert_eq!(result, Ok(()));
}

async fn snippet_5_2(sub: tokio_memq::Subscriber) -> anyhow::Result<usize> {
    let mut count = 0;
    // --- README 5.2, verbatim (plus a counter) ---
    use tokio_stream::StreamExt;

    let stream = sub.stream();
    tokio::pin!(stream);

    while let Some(msg_result) = stream.next().await {
        let msg = msg_result?;
        println!("Got msg: {:?}", msg);
        count += 1;
    }
    // --- end ---
    Ok(count)
}

#[tokio::test]
async fn readme_5_2_stream_ends_when_the_topic_closes() {
    let mq = tokio_memq::MessageQueue::new();
    let sub = mq.subscriber("stream").await.unwrap();
    let publisher = mq.publisher("stream");
    for i in 0..3u8 {
        publisher.publish(i).await.unwrap();
    }
    mq.delete_topic("stream").await;
    let n = memq_testkit::within(Duration::from_secs(10), snippet_5_2(sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 3);
}

async fn snippet_5_3(publisher: tokio_memq::Publisher, sub: tokio_memq::Subscriber) -> anyhow::Result<usize> {
    // --- README 5.3, verbatim ---
    // Publisher Side
    let messages: Vec<i32> = (0..100).collect();
    publisher.publish_batch(messages).await?;

    // Subscriber Side
    let batch_size = 100;
    let msgs = sub.recv_batch(batch_size).await?;
    println!("Processed {} messages", msgs.len());
    // --- end ---
    let values: Vec<i32> = msgs.iter().map(|m| m.deserialize().unwrap()).collect();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
    Ok(msgs.len())
}

#[tokio::test]
async fn readme_5_3_batching() {
    let mq = tokio_memq::MessageQueue::new();
    let sub = mq.subscriber("batch").await.unwrap();
    let n = memq_testkit::within(Duration::from_secs(10), snippet_5_3(mq.publisher("batch"), sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 100);
}
