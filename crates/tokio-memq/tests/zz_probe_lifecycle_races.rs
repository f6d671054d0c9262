//! Probe (lifecycle): races around a publisher's binding.

use std::sync::Arc;
use std::time::Duration;

use tokio_memq::{MessageQueue, PublishError};

/// A clone taken while the original binds (its first publish): after the
/// topic is deleted, `is_closed` must agree with what publishing does.
#[test]
fn clone_during_bind_is_closed_agrees_with_publish() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut mismatches = 0;
    let mut example = None;
    for round in 0..100_000 {
        let mq = MessageQueue::new();
        let publisher = Arc::new(mq.publisher("t"));
        let go = Arc::new(std::sync::Barrier::new(2));
        let cloner = {
            let (publisher, go) = (publisher.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                (0..32).map(|_| (*publisher).clone()).collect::<Vec<_>>()
            })
        };
        go.wait();
        publisher.try_publish(1u8).unwrap();
        let clones = cloner.join().unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                assert!(mq.delete_topic("t").await);
                let _sub = mq.subscriber("t").await.unwrap(); // created again
                for (i, c) in clones.iter().enumerate() {
                    let closed_before = c.is_closed();
                    let got = c.try_publish(2u8);
                    let closed_after = c.is_closed();
                    let failed = matches!(got, Err(PublishError::Closed(2)));
                    if failed != closed_before || failed != closed_after {
                        mismatches += 1;
                        example.get_or_insert(format!(
                            "round {round} clone {i}: is_closed before {closed_before}, publish {got:?}, is_closed after {closed_after}"
                        ));
                    }
                }
            })
            .await
            .expect("timed out");
        });
    }
    assert_eq!(mismatches, 0, "{mismatches} mismatches; first: {example:?}");
}
