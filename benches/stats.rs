//! Scenario I: publishing to a TTL topic while two threads poll its stats,
//! next to the same two threads polling an idle topic (the control: on a
//! 2-core machine the pollers take CPU time from the publisher either
//! way) and to no pollers. The ratio of the first two is what polling
//! this topic costs its publishers: it was 0.30-0.36x of a control when
//! each stats call took the topic lock to sweep expired messages; a stats
//! call now locks only when the oldest message has expired.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio_memq_benches::{payloads, quick, runtime, stats_polling};

fn stats_pollers(c: &mut Criterion) {
    let rt = runtime();
    let pool = payloads(1024, 4096);
    let n = if quick() { 10_000 } else { 40_000 };
    let mut g = c.benchmark_group("I_publish_ttl_topic_stats_polled");
    g.throughput(Throughput::Elements(n));
    let runs = [
        ("tokio-memq, no poller", 0, "i"),
        ("tokio-memq, 2 threads polling another topic", 2, "other"),
        ("tokio-memq, 2 threads polling this topic", 2, "i"),
    ];
    for (name, pollers, polled) in runs {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(stats_polling::memq(pool.clone(), n, pollers, polled)))
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stats_pollers);
criterion_main!(benches);
