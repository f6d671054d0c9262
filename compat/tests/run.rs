//! Runs 1.0.0's quick examples, built unchanged against 2.0, and checks
//! what they print. The two benchmarks (`benchmark_clones`,
//! `benchmark_throughput`, a million and 100,000 messages) only build:
//! they count successful receives until they reach their total, so on a
//! topic with 1.0.0's default retention (10,000 messages, evicting) a
//! publisher that outruns the reader makes them wait forever for messages
//! that were evicted (2.0 reports them as `RecvError::Lagged(n)`; see the
//! README's migration notes).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs an example binary to completion within `limit`; its stdout.
fn run(exe: &str, limit: Duration) -> String {
    let mut child = Command::new(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            let out = child.wait_with_output().expect("its output");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                status.success(),
                "{exe} failed ({status}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return stdout;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{exe} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn basic_pub_sub_receives_each_message_with_its_offset() {
    let out = run(env!("CARGO_BIN_EXE_basic_pub_sub"), LIMIT);
    for i in 0..5 {
        let line = format!("Received: Message {i} (Offset: Some({i}), Topic: basic_topic)");
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn batch_pub_sub_receives_the_batch_in_order() {
    let out = run(env!("CARGO_BIN_EXE_batch_pub_sub"), LIMIT);
    assert!(out.contains("Received batch of 10 messages:"), "{out}");
    let items: Vec<&str> = out.lines().filter(|l| l.starts_with(" - Batch Msg ")).collect();
    let want: Vec<String> = (0..10).map(|i| format!(" - Batch Msg {i}")).collect();
    assert_eq!(items, want);
}

#[test]
fn consumer_groups_share_the_tasks_and_broadcast_still_works() {
    let out = run(env!("CARGO_BIN_EXE_consumer_groups"), LIMIT);
    let mut tasks: Vec<u32> = out
        .lines()
        .filter_map(|l| {
            l.split_once(" received: Task ")
                .map(|(_, n)| n.parse().expect("a task number"))
        })
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, (0..10).collect::<Vec<_>>(), "each task once:\n{out}");
    assert!(
        out.contains("Consumer 1 received") && out.contains("Consumer 2 received"),
        "{out}"
    );
    assert!(
        out.contains("Independent Subscriber received: Broadcast Message"),
        "{out}"
    );
}

#[test]
fn custom_serialization_round_trips_json() {
    let out = run(env!("CARGO_BIN_EXE_custom_serialization"), LIMIT);
    assert!(out.contains("Received message format: Json"), "{out}");
    assert!(
        out.contains(r#"Received user: User { id: 1, name: "Alice", email: "alice@example.com" }"#),
        "{out}"
    );
}

#[test]
fn stream_processing_reads_until_the_last_item() {
    let out = run(env!("CARGO_BIN_EXE_stream_processing"), LIMIT);
    for i in 0..5 {
        assert!(
            out.contains(&format!("Stream received: Stream Item {i}")),
            "{out}"
        );
    }
    assert!(
        out.contains("Received last item, stopping stream processing."),
        "{out}"
    );
}

#[test]
fn benchmark_latency_completes() {
    let out = run(env!("CARGO_BIN_EXE_benchmark_latency"), LIMIT);
    assert!(out.contains("Average latency:"), "{out}");
}

#[test]
fn perf_runner_reports_every_test_successful() {
    let out = run(env!("CARGO_BIN_EXE_perf_runner"), LIMIT);
    let runs = out.matches("Running Test:").count();
    let successes = out.matches("Status: SUCCESS").count();
    assert!(runs > 0, "{out}");
    assert_eq!(runs, successes, "every test reports SUCCESS:\n{out}");
}
