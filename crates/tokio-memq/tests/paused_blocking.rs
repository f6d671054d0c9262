//! A blocking receive on a `spawn_blocking` thread of a runtime with paused
//! time (its own test binary: it measures the process's CPU time).
//!
//! Blocking calls time their waits on memq-core's timer thread, whose clock
//! is the system's; a group's take-over deadline is on Tokio's paused clock.
//! When the deadline was handed to the timer thread as a point in time, it
//! was soon in the system clock's past: the delay was always elapsed, the
//! claim (on the paused clock) found nothing yet, and the receive spun on a
//! CPU until the paused clock was advanced.

#![cfg(target_os = "linux")]

use std::time::Duration;

use tokio_memq::{ConsumptionMode, MessageQueue};

/// CPU time of this process (user and system), from /proc.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    // utime and stime, in clock ticks (100 a second on Linux).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test(start_paused = true)]
async fn a_blocking_member_in_a_paused_runtime_waits_without_spinning() {
    let mq = MessageQueue::new();
    let join = || {
        mq.group("jobs", "w")
            .manual_ack()
            .ack_timeout(Duration::from_millis(100))
            .mode(ConsumptionMode::Earliest)
            .join()
    };
    let (holder, waiter) = (join().await.unwrap(), join().await.unwrap());
    mq.publisher("jobs").publish(1u32).await.unwrap();
    let _held = holder.recv().await.unwrap();
    // Bounded itself: with a blocking task running the paused clock does
    // not advance on its own, so a limit on this side would never fire.
    let task = tokio::task::spawn_blocking(move || {
        waiter
            .blocking_recv_timeout(Duration::from_secs(30))
            .map(|m| m.map(|m| m.deliveries))
    });
    // Real time passes; the paused clock does not move.
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu() - before;
    assert!(
        used < Duration::from_millis(250),
        "the blocking receive spun: {used:?} of CPU in 500 ms while it waited"
    );
    // The paused clock reaches the take-over: the receive gets the message.
    tokio::time::advance(Duration::from_millis(200)).await;
    let got = memq_testkit::within(Duration::from_secs(60), task).await;
    assert_eq!(got.unwrap().unwrap().unwrap(), Some(2));
}
