//! Probe (lifecycle): what the queue-level calls answer after
//! `MessageQueue::close`, and side effects of failed subscribes/joins.

use tokio_memq::{ConsumptionMode, MessageQueue, PublishErrorKind, TopicError, TopicMessage, TopicOptions};

#[tokio::test]
async fn publish_to_partitioned_after_close_is_closed() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("events", TopicOptions::default(), 2).await.unwrap();
    let publisher = mq.publisher("events");
    publisher.publish(0u8).await.unwrap();
    mq.close();
    // Through a publisher: Closed, as `close` documents.
    assert_eq!(publisher.publish(1u8).await.unwrap_err().kind(), PublishErrorKind::Closed);
    // Through the queue: the same topic, the same shutdown.
    let err = mq.publish_to_partitioned(TopicMessage::new("events", 2u8).unwrap()).await.unwrap_err();
    let batch = mq
        .publish_batch_to_partitioned(vec![TopicMessage::new("events", 3u8).unwrap()])
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), batch.kind()),
        (PublishErrorKind::Closed, PublishErrorKind::Closed),
        "publishing after close"
    );
}

#[tokio::test]
async fn failed_subscribes_and_joins_leave_topics_behind() {
    let mq = MessageQueue::new();
    let err = mq
        .subscriber_with_options_and_mode("a", TopicOptions::default(), ConsumptionMode::Offset(5))
        .await
        .unwrap_err();
    assert!(matches!(err, TopicError::OutOfRange(_)), "{err:?}");
    let err = mq.group("b", "w").manual_ack().max_deliveries(2).max_pending(0).join().await.unwrap_err();
    assert!(matches!(err, TopicError::InvalidGroupConfig { .. }), "{err:?}");
    assert_eq!(mq.list_topics().await, Vec::<String>::new(), "failed calls created topics");
}
