//! Pins `Send`, `Sync` and `Unpin` of every public handle and future.

#![allow(dead_code)]

use tokio_memq::*;

fn send<T: Send>(_: &T) {}
fn sync<T: Sync>(_: &T) {}
fn unpin<T: Unpin>(_: &T) {}
fn all<T: Send + Sync + Unpin>(_: &T) {}

#[test]
fn handles_and_futures() {
    fn assert_types<T: Send + Sync + Unpin + Clone>() {}
    assert_types::<MessageQueue>();
    assert_types::<Publisher>();
    assert_types::<TopicMessage>();
    assert_types::<TopicOptions>();
    assert_types::<TopicStats>();
    fn handle<T: Send + Sync + Unpin>() {}
    handle::<Subscriber>();
    handle::<Error>();
    handle::<PublishError<String>>();

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mq = MessageQueue::new();
    let sub = rt.block_on(mq.subscriber("x")).unwrap();
    let p = mq.publisher("x");
    send(&p.publish(1u8));
    send(&p.publish_batch(vec![1u8]));
    send(&p.publish_bytes(Bytes::new(), SerializationFormat::Json));
    send(&sub.recv());
    send(&sub.try_recv());
    send(&sub.recv_batch(1));
    send(&sub.recv_typed::<u8>());
    send(&sub.recv_batch_typed::<u8>(1));
    send(&sub.recv_timeout(std::time::Duration::from_secs(1)));
    all(&sub.stream());
    send(&mq.subscriber("y"));
    send(&mq.delete_topic("y"));
    send(&p.publish_timeout(1u8, std::time::Duration::from_secs(1)));
    all(&p.sink::<u8>());
    all(&sub.iter());
    sync(&sub);
    unpin(&sub);
    let sub = rt.block_on(mq.subscriber("x")).unwrap();
    all(&sub.into_stream());
    let sub = rt.block_on(mq.subscriber("x")).unwrap();
    all(&sub.into_typed_stream::<String>());
}
