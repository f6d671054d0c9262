//! Probe (failover): the documented rules, one by one, paused time.

use std::time::Duration;

use tokio_memq::{AckError, ConsumptionMode, MessageQueue, PartitionRouting, RecvError, Subscriber, TopicMessage, TopicOptions};

const T: Duration = Duration::from_millis(30);
const LIMIT: Duration = Duration::from_secs(30);

async fn setup(parts: usize) -> MessageQueue {
    let mq = MessageQueue::new();
    mq.create_partitioned_topic("t", TopicOptions::default(), parts).await.unwrap();
    mq
}

async fn join(mq: &MessageQueue) -> Subscriber {
    mq.group("t", "g")
        .exclusive()
        .manual_ack()
        .ack_timeout(T)
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap()
}

async fn publish(mq: &MessageQueue, p: usize) -> u64 {
    mq.set_partition_routing("t", PartitionRouting::Fixed(p)).await.unwrap();
    mq.publish_to_partitioned(TopicMessage::new("t", p as u32).unwrap()).await.unwrap().1
}

fn drain(m: &Subscriber) -> Vec<(usize, u64, u32)> {
    std::iter::from_fn(|| m.try_recv_now().ok())
        .map(|m| {
            let r = (m.partition.unwrap(), m.offset(), m.deliveries);
            m.ack_dummy();
            r
        })
        .collect()
}

trait Dummy {
    fn ack_dummy(&self) {}
}
impl Dummy for TopicMessage {}

/// A member waiting in `recv_batch` holding a message past the timeout
/// keeps its partition and gets the message back; the other member
/// (waiting too) gets nothing.
#[tokio::test(start_paused = true)]
async fn waiting_owner_keeps_partition_recv_batch() {
    tokio::time::timeout(LIMIT, async {
        let mq = setup(2).await;
        let a = join(&mq).await; // p0
        let b = join(&mq).await; // p1
        publish(&mq, 0).await;
        let first = a.try_recv_now().unwrap();
        assert_eq!(first.partition, Some(0));
        let a = std::sync::Arc::new(a);
        let a2 = a.clone();
        let ta = tokio::spawn(async move { a2.recv_batch(8).await.map(|v| v.iter().map(|m| (m.partition, m.offset(), m.deliveries)).collect::<Vec<_>>()) });
        tokio::task::yield_now().await;
        let tb = tokio::spawn(async move { (tokio::time::timeout(T * 3 / 2, b.recv()).await.is_err(), b) });
        let got = ta.await.unwrap().unwrap();
        assert_eq!(got, [(Some(0), 0, 2)]);
        let (timed_out, _b) = tb.await.unwrap();
        assert!(timed_out, "b got something of a's partition");
    })
    .await
    .expect("no hang");
}

/// A failed member's late ack (NotOwned) and keep_alive do not bring its
/// partitions back; only a receive does.
#[tokio::test(start_paused = true)]
async fn only_a_receive_brings_a_failed_member_back() {
    tokio::time::timeout(LIMIT, async {
        let mq = setup(2).await;
        let a = join(&mq).await; // p0
        let b = join(&mq).await; // p1
        publish(&mq, 0).await;
        let held = a.try_recv_now().unwrap();
        tokio::time::sleep(T).await;
        assert_eq!(drain(&b), [(0, 0, 2)], "b takes over a's message");
        let late = a.ack(&held);
        assert_eq!(late, Err(AckError::NotOwned { partition: 0, offset: 0 }));
        a.keep_alive();
        // b acks what it took
        let _ = b.commit_partition(0, 0).await;
        publish(&mq, 0).await;
        let m = b.try_recv_now().unwrap();
        assert_eq!(m.partition, Some(0), "still b's after a's ack + keep_alive");
        b.ack(&m).unwrap();
        let stats = mq.get_group_stats("t", "g").await.unwrap();
        println!("stats {stats:?}");
        // a receives: partitions shared out again
        assert!(a.try_recv_now().is_err());
        publish(&mq, 0).await;
        publish(&mq, 1).await;
        let fa = drain(&a);
        let fb = drain(&b);
        println!("after a's receive: a {fa:?} b {fb:?}");
        assert_eq!(fa.len() + fb.len() >= 2, true);
        assert!(!fa.is_empty(), "a owns a partition again");
    })
    .await
    .expect("no hang");
}

/// A failed member left alone (every other member leaves) owns every
/// partition again and gets its own messages back as redeliveries.
#[tokio::test(start_paused = true)]
async fn failed_member_alone_gets_everything_back() {
    tokio::time::timeout(LIMIT, async {
        let mq = setup(3).await;
        let a = join(&mq).await;
        let b = join(&mq).await;
        let c = join(&mq).await;
        publish(&mq, 0).await;
        publish(&mq, 1).await;
        publish(&mq, 2).await;
        let _ha = a.try_recv_now().unwrap();
        let hb = b.try_recv_now().unwrap();
        let hc = c.try_recv_now().unwrap();
        b.ack(&hb).unwrap();
        c.ack(&hc).unwrap();
        tokio::time::sleep(T).await;
        // b's receive finds a failed: takes a's message
        let got_b = drain(&b);
        println!("b took {got_b:?}");
        drop(b);
        drop(c);
        // a alone: all partitions, its message back (3rd delivery if b took it)
        publish(&mq, 1).await;
        publish(&mq, 2).await;
        let mut got = drain(&a);
        got.sort_unstable();
        println!("a alone got {got:?}");
        assert_eq!(got.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(), [(0, 0), (1, 1), (2, 1)]);
    })
    .await
    .expect("no hang");
}

/// Delete while a member holds messages unacked and stalls: the other
/// member is told Closed; the documented protocol ("receive until every
/// member is told Closed") still processes everything once.
#[tokio::test(start_paused = true)]
async fn delete_while_a_member_is_stalled() {
    tokio::time::timeout(LIMIT, async {
        let mq = setup(2).await;
        let a = join(&mq).await;
        let b = join(&mq).await;
        publish(&mq, 0).await;
        publish(&mq, 1).await;
        let ha = a.try_recv_now().unwrap();
        let hb = b.try_recv_now().unwrap();
        b.ack(&hb).unwrap();
        assert!(mq.delete_topic("t").await);
        // b: told Closed (a's message is handed out)
        assert_eq!(b.recv().await.unwrap_err(), RecvError::Closed);
        // a stalls past T; b keeps receiving (a has not been told Closed)
        tokio::time::sleep(T).await;
        let again = b.recv().await;
        println!("b after a's timeout: {:?}", again.as_ref().map(|m| (m.partition, m.offset(), m.deliveries)));
        let m = again.unwrap();
        assert_eq!((m.partition, m.offset(), m.deliveries), (Some(0), 0, 2));
        b.ack(&m).unwrap();
        assert_eq!(a.ack(&ha), Err(AckError::NotOwned { partition: 0, offset: 0 }));
        assert_eq!(a.recv().await.unwrap_err(), RecvError::Closed);
        assert_eq!(b.recv().await.unwrap_err(), RecvError::Closed);
    })
    .await
    .expect("no hang");
}
