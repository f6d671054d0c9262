//! Probe (lifecycle) repro: a clone of a `Publisher` taken while the
//! original binds to its topic (its first publish) reports
//! `is_closed() == false` forever after that topic is deleted, while every
//! publish through it fails with `Closed`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_memq::{MessageQueue, PublishError};

#[test]
fn a_clone_taken_during_binding_says_open_but_cannot_publish() {
    let mut found = None;
    for round in 0..20_000 {
        let mq = MessageQueue::new();
        let publisher = Arc::new(mq.publisher("t"));
        let done = Arc::new(AtomicBool::new(false));
        let cloner = {
            let (publisher, done) = (publisher.clone(), done.clone());
            std::thread::spawn(move || {
                let mut clones = Vec::new();
                while !done.load(Ordering::Acquire) {
                    clones.push((*publisher).clone());
                }
                clones
            })
        };
        while Arc::strong_count(&publisher) < 2 {}
        publisher.try_publish(1u8).unwrap(); // the first publish: binds
        done.store(true, Ordering::Release);
        let clones = cloner.join().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(rt.block_on(mq.delete_topic("t")));
        for c in &clones {
            let failed = matches!(c.try_publish(2u8), Err(PublishError::Closed(2)));
            if failed && !c.is_closed() {
                found = Some(round);
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    assert_eq!(
        found, None,
        "round {found:?}: a clone fails every publish with Closed, yet is_closed() is false"
    );
}
