//! Topic settings and subscriptions the adversarial tests share.

#![allow(dead_code)] // each test file uses its own part of this

use tokio_memq::{ConsumptionMode, MessageQueue, Subscriber, TopicOptions};

/// A topic of `cap` messages whose publishers wait for room.
pub(crate) fn lossless(cap: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(cap),
        lru_enabled: false,
        ..TopicOptions::default()
    }
}

/// A topic of `cap` messages that evicts the oldest.
pub(crate) fn evicting(cap: usize) -> TopicOptions {
    TopicOptions {
        max_messages: Some(cap),
        ..TopicOptions::default()
    }
}

/// A subscriber of `topic` (made with `options`) reading from its start.
pub(crate) async fn earliest(mq: &MessageQueue, topic: &str, options: TopicOptions) -> Subscriber {
    mq.subscriber_with_options_and_mode(topic, options, ConsumptionMode::Earliest)
        .await
        .unwrap()
}
