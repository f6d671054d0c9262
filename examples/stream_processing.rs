//! A pipeline stage consuming a topic as a `Stream` and publishing results
//! to the next topic; the stream ends when the input topic is deleted.
//!
//! `cargo run --example stream_processing`

use tokio_memq::MessageQueue;
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mq = MessageQueue::new();
    let input = mq.subscriber("numbers").await?;
    let squares = mq.subscriber("squares").await?;

    let stage = {
        let out = mq.publisher("squares");
        tokio::spawn(async move {
            let stream = input.stream();
            tokio::pin!(stream);
            while let Some(msg) = stream.next().await {
                let n: u64 = msg?.deserialize()?;
                out.publish(n * n).await?;
            }
            anyhow::Ok(())
        })
    };

    let numbers = mq.publisher("numbers");
    for n in 1..=10u64 {
        numbers.publish(n).await?;
    }
    // Closing the input ends the stage's stream once it has drained.
    mq.delete_topic("numbers").await;
    stage.await??;

    let results: Vec<u64> = squares.recv_batch_typed(10).await?;
    println!("squares: {results:?}");
    assert_eq!(results, (1..=10u64).map(|n| n * n).collect::<Vec<_>>());
    Ok(())
}
