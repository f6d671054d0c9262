//! Probe (lifecycle): every kind of waiter, parked, then its topic is
//! deleted / the queue closed / every handle that could publish dropped.
//! Each must end with the documented `Closed` error, never hang.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_memq::{
    ConsumptionMode, MessageQueue, PublishError, RecvError, RecvTypedError, TopicOptions,
};
use tokio_stream::StreamExt;

#[derive(Clone, Copy, Debug)]
enum Trigger {
    Delete,
    Close,
    /// Drop every queue handle and publisher.
    Gone,
}

const SUB_WAITERS: usize = 13;

/// Parks subscriber waiter `kind` on topic "t", fires `trigger`, checks the
/// waiter ends with Closed.
async fn sub_waiter(kind: usize, trigger: Trigger) -> Result<(), String> {
    let mq = MessageQueue::new();
    let partitioned = kind == 10 || kind == 11;
    if partitioned {
        mq.create_partitioned_topic("t", TopicOptions::default(), 3).await.unwrap();
    }
    let publisher = mq.publisher("t");
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let task: tokio::task::JoinHandle<()> = match kind {
        0 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move { tx.send(format!("{:?}", s.recv().await.map(|m| m.offset()))).unwrap() })
        }
        1 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move { tx.send(format!("{:?}", s.recv_batch(10).await.map(|m| m.len()))).unwrap() })
        }
        2 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                tx.send(format!("{:?}", s.recv_timeout(Duration::from_secs(3600)).await.map(|m| m.is_some())))
                    .unwrap()
            })
        }
        3 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                let mut st = s.stream();
                tx.send(format!("{:?}", st.next().await.map(|r| r.map(|m| m.offset())))).unwrap()
            })
        }
        4 => {
            let s = mq.subscriber_group("t", "g", ConsumptionMode::Earliest).await.unwrap();
            tokio::spawn(async move { tx.send(format!("{:?}", s.recv().await.map(|m| m.offset()))).unwrap() })
        }
        5 => {
            let s = mq
                .group("t", "g")
                .manual_ack()
                .max_deliveries(3)
                .mode(ConsumptionMode::Earliest)
                .join()
                .await
                .unwrap();
            tokio::spawn(async move { tx.send(format!("{:?}", s.recv().await.map(|m| m.offset()))).unwrap() })
        }
        6 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                tx.send(match s.recv_typed::<u64>().await {
                    Err(RecvTypedError::Recv(RecvError::Closed)) => "Err(Closed)".to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap()
            })
        }
        7 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                let mut st = s.into_stream();
                tx.send(format!("{:?}", st.next().await.map(|r| r.map(|m| m.offset())))).unwrap()
            })
        }
        8 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                tx.send(format!("{:?}", s.recv_batch_lent(10).await.map(|m| m.len()))).unwrap()
            })
        }
        9 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                let r = tokio::task::spawn_blocking(move || format!("{:?}", s.blocking_recv().map(|m| m.offset())))
                    .await
                    .unwrap();
                tx.send(r).unwrap()
            })
        }
        10 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move { tx.send(format!("{:?}", s.recv().await.map(|m| m.offset()))).unwrap() })
        }
        11 => {
            let s = mq.subscribe_partition("t", 1, None, ConsumptionMode::Latest).await.unwrap();
            tokio::spawn(async move { tx.send(format!("{:?}", s.recv().await.map(|m| m.offset()))).unwrap() })
        }
        12 => {
            let s = mq.subscriber("t").await.unwrap();
            tokio::spawn(async move {
                let r = tokio::task::spawn_blocking(move || {
                    format!("{:?}", s.blocking_recv_timeout(Duration::from_secs(3600)).map(|m| m.is_some()))
                })
                .await
                .unwrap();
                tx.send(r).unwrap()
            })
        }
        _ => unreachable!(),
    };
    // Let it park.
    tokio::time::sleep(Duration::from_millis(20)).await;
    match trigger {
        Trigger::Delete => {
            if partitioned {
                assert!(mq.delete_partitioned_topic("t").await);
            } else {
                assert!(mq.delete_topic("t").await);
            }
        }
        Trigger::Close => mq.close(),
        Trigger::Gone => drop((mq, publisher)),
    }
    let got = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .map_err(|_| format!("kind {kind} {trigger:?}: waiter never woke"))?
        .unwrap();
    task.await.unwrap();
    let want = match kind {
        3 | 7 => "None",
        _ => "Err(Closed)",
    };
    if got != want {
        return Err(format!("kind {kind} {trigger:?}: got {got}, want {want}"));
    }
    Ok(())
}

async fn pub_waiter(kind: usize, trigger: Trigger) -> Result<(), String> {
    let mq = MessageQueue::new();
    let options = TopicOptions {
        max_messages: Some(1),
        lru_enabled: false,
        ..TopicOptions::default()
    };
    let blocker = mq.subscriber_with_options("t", options).await.unwrap();
    let publisher = mq.publisher("t");
    publisher.publish(0u64).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let p = publisher.clone();
    let task = match kind {
        0 => tokio::spawn(async move { tx.send(format!("{:?}", p.publish(7u64).await)).unwrap() }),
        1 => tokio::spawn(async move {
            tx.send(format!("{:?}", p.publish_timeout(7u64, Duration::from_secs(3600)).await)).unwrap()
        }),
        2 => tokio::spawn(async move {
            let mut sink = p.sink::<u64>();
            let r = sink.send(7u64).await;
            tx.send(format!("{r:?}")).unwrap()
        }),
        3 => tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || format!("{:?}", p.blocking_publish(7u64))).await.unwrap();
            tx.send(r).unwrap()
        }),
        4 => tokio::spawn(async move { tx.send(format!("{:?}", p.publish_batch(vec![7u64]).await)).unwrap() }),
        _ => unreachable!(),
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    match trigger {
        Trigger::Delete => assert!(mq.delete_topic("t").await),
        Trigger::Close => mq.close(),
        Trigger::Gone => unreachable!(),
    }
    let got = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .map_err(|_| format!("pub kind {kind} {trigger:?}: waiter never woke"))?
        .unwrap();
    task.await.unwrap();
    let want = match kind {
        4 => format!("{:?}", Err::<(), _>(PublishError::Closed(vec![7u64]))),
        _ => format!("{:?}", Err::<(), _>(PublishError::Closed(7u64))),
    };
    // The value is handed back, never published.
    let retained: Vec<u64> = std::iter::from_fn(|| blocker.try_recv_now().ok())
        .map(|m| m.deserialize::<u64>().unwrap())
        .collect();
    if retained != [0] {
        return Err(format!("pub kind {kind} {trigger:?}: retained {retained:?}"));
    }
    if got != want {
        return Err(format!("pub kind {kind} {trigger:?}: got {got}, want {want}"));
    }
    Ok(())
}

fn all(multi: bool) {
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    };
    let mut failures = Vec::new();
    rt.block_on(async {
        for trigger in [Trigger::Delete, Trigger::Close, Trigger::Gone] {
            for kind in 0..SUB_WAITERS {
                if let Err(e) = sub_waiter(kind, trigger).await {
                    failures.push(e);
                }
            }
            if !matches!(trigger, Trigger::Gone) {
                for kind in 0..5 {
                    if let Err(e) = pub_waiter(kind, trigger).await {
                        failures.push(e);
                    }
                }
            }
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn waiters_current_thread() {
    all(false);
}

#[test]
fn waiters_multi_thread() {
    all(true);
}

/// A publisher parked on a full topic with backpressure is released when
/// the slow reader goes away: a plain subscriber, a group's last member,
/// a wildcard subscription.
#[test]
fn dropping_the_slow_reader_releases_a_parked_publisher() {
    for multi in [false, true] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
        };
        rt.block_on(async {
            for kind in 0..4 {
                let mq = MessageQueue::new();
                let options = TopicOptions { max_messages: Some(2), lru_enabled: false, ..TopicOptions::default() };
                mq.create_topic("a.t", options).await.unwrap();
                let slow: Box<dyn std::any::Any + Send> = match kind {
                    0 => Box::new(mq.subscriber("a.t").await.unwrap()),
                    1 => Box::new(mq.subscriber_group("a.t", "g", ConsumptionMode::Latest).await.unwrap()),
                    2 => Box::new(mq.group("a.t", "g").manual_ack().join().await.unwrap()),
                    _ => Box::new(mq.subscribe_pattern("a.*").unwrap()),
                };
                let p = mq.publisher("a.t");
                if kind == 3 {
                    // Existing topics: read from their next message; the
                    // subscription holds its reader from now on.
                }
                p.publish(0u8).await.unwrap();
                p.publish(1u8).await.unwrap();
                let p2 = p.clone();
                let parked = tokio::spawn(async move { p2.publish(2u8).await });
                tokio::time::sleep(Duration::from_millis(30)).await;
                if kind != 3 {
                    assert!(!parked.is_finished(), "kind {kind}: the slow reader should hold the publisher back");
                }
                drop(slow);
                let r = tokio::time::timeout(Duration::from_secs(5), parked).await;
                assert!(matches!(r, Ok(Ok(Ok(2)))), "kind {kind} multi {multi}: {r:?}");
            }
        });
    }
}
