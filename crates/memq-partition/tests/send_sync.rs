//! Pins `Send`, `Sync` and `Unpin` of every public handle, future and
//! error, so a change that loses one fails here rather than in a user's
//! `tokio::spawn`.

use memq_partition::{
    BatchReceipt, ConfigError, MergedCursor, MergedWaiter, PartitionOutOfRange, PartitionedStats,
    PartitionedTopic, Publish, PublishBatch, PublishBatchError, PublishError, Recv, RecvBatch, RecvError,
    RouteError, Routing, SubscribeError, TryRecvError,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}
fn error<E: std::error::Error + Send + Sync + 'static>() {}

type Payload = std::sync::Arc<str>;

#[test]
fn handles_are_send_and_sync() {
    send_sync::<PartitionedTopic<Payload>>();
    send_sync::<MergedCursor<Payload>>();
    send_sync::<MergedWaiter<Payload>>();
    send_sync::<Routing>();
    send_sync::<BatchReceipt>();
    send_sync::<PartitionedStats>();
    unpin::<MergedCursor<Payload>>();
}

#[test]
fn futures_are_send_and_unpin() {
    send::<Publish<'static, Payload>>();
    send::<PublishBatch<'static, String, Payload>>();
    send::<Recv<'static, Payload>>();
    send::<RecvBatch<'static, Payload, Vec<(usize, memq_core::Delivered<Payload>)>>>();
    unpin::<Publish<'static, Payload>>();
    unpin::<PublishBatch<'static, String, Payload>>();
    unpin::<Recv<'static, Payload>>();
    unpin::<RecvBatch<'static, Payload, Vec<(usize, memq_core::Delivered<Payload>)>>>();
}

#[test]
fn errors_work_with_question_mark_into_boxed_errors() {
    error::<ConfigError>();
    error::<PartitionOutOfRange>();
    error::<RouteError>();
    error::<PublishError<Payload>>();
    error::<PublishBatchError<String, Payload>>();
    error::<SubscribeError>();
    error::<RecvError>();
    error::<TryRecvError>();
}
