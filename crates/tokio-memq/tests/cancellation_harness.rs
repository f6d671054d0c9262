//! Every receive variant, polled k times (publishes interleaved between
//! the polls) and then dropped: what it returned counts as delivered, and
//! the next receive returns exactly the message that comes next. For
//! broadcast subscribers and group members, plain and partitioned topics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue, Subscriber, TopicMessage, TopicOptions};
use tokio_stream::StreamExt;

struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a variant returned when it completed: the values it delivered.
type Delivered = Vec<u64>;

fn values(msgs: Vec<TopicMessage>) -> Delivered {
    msgs.iter().map(|m| m.deserialize::<u64>().unwrap()).collect()
}

/// A receive variant as a boxed future of the values it delivers.
fn variant<'a>(sub: &'a Subscriber, which: usize) -> Pin<Box<dyn Future<Output = Delivered> + Send + 'a>> {
    match which {
        0 => Box::pin(async move { values(vec![sub.recv().await.unwrap()]) }),
        1 => Box::pin(async move { values(sub.recv_batch(3).await.unwrap()) }),
        2 => Box::pin(async move { vec![sub.recv_typed::<u64>().await.unwrap()] }),
        3 => Box::pin(async move { sub.recv_batch_typed::<u64>(3).await.unwrap() }),
        4 => Box::pin(async move {
            let mut stream = sub.stream();
            values(vec![stream.next().await.unwrap().unwrap()])
        }),
        _ => Box::pin(async move {
            match sub.recv_timeout(Duration::from_secs(3600)).await.unwrap() {
                Some(m) => values(vec![m]),
                None => Vec::new(),
            }
        }),
    }
}

const VARIANTS: usize = 6;

/// Runs the harness against `sub`, publishing with `publish`.
async fn harness(sub: &Subscriber, publish: impl Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>>) {
    let counter = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut next_to_publish = 0u64;
    let mut received: Vec<u64> = Vec::new();
    for which in 0..VARIANTS {
        for k in 0..4 {
            let mut fut = variant(sub, which);
            let mut cx = Context::from_waker(&waker);
            let mut done = None;
            for poll in 0..k {
                // Interleave: publish before every other poll.
                if poll % 2 == 1 {
                    publish(next_to_publish).await;
                    next_to_publish += 1;
                }
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    done = Some(v);
                    break;
                }
            }
            drop(fut);
            if let Some(v) = done {
                received.extend(v);
            }
            // The next receive returns exactly what comes next.
            publish(next_to_publish).await;
            next_to_publish += 1;
            let m = memq_testkit::within(Duration::from_secs(10), sub.recv())
                .await
                .unwrap()
                .unwrap();
            received.push(m.deserialize::<u64>().unwrap());
            while let Ok(m) = sub.try_recv_now() {
                received.push(m.deserialize::<u64>().unwrap());
            }
            let mut sorted = received.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..next_to_publish).collect::<Vec<_>>(),
                "variant {which}, k = {k}: lost or repeated"
            );
        }
    }
}

#[tokio::test]
async fn broadcast_receives_dropped_after_k_polls() {
    let mq = MessageQueue::new();
    let sub = mq
        .subscriber_with_options_and_mode("b", TopicOptions::default(), ConsumptionMode::Latest)
        .await
        .unwrap();
    let p = mq.publisher("b");
    harness(&sub, |i| {
        let p = p.clone();
        Box::pin(async move {
            p.publish(i).await.unwrap();
        })
    })
    .await;
}

#[tokio::test]
async fn group_receives_dropped_after_k_polls() {
    let mq = MessageQueue::new();
    let member = mq
        .subscriber_group("g", "workers", ConsumptionMode::Latest)
        .await
        .unwrap();
    let p = mq.publisher("g");
    harness(&member, |i| {
        let p = p.clone();
        Box::pin(async move {
            p.publish(i).await.unwrap();
        })
    })
    .await;
}

#[tokio::test]
async fn partitioned_receives_dropped_after_k_polls() {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("p", TopicOptions::default(), 3)
        .await
        .unwrap();
    let all = mq.subscriber("p").await.unwrap();
    let p = mq.publisher("p");
    harness(&all, |i| {
        let p = p.clone();
        Box::pin(async move {
            p.publish(i).await.unwrap();
        })
    })
    .await;
    let member = mq.group("p", "w").exclusive().join().await.unwrap();
    let p2 = mq.publisher("p");
    // The group starts after everything published so far.
    harness(&member, move |i| {
        let p = p2.clone();
        Box::pin(async move {
            p.publish(i).await.unwrap();
        })
    })
    .await;
}
