//! Scenario C: 10 publishers to 10 competing consumers, 1 KiB: a
//! tokio-memq consumer group next to flume, kanal and async-channel used
//! as bounded multi-consumer channels, at capacity 1,024 and 16,384.
//! Every message is received exactly once in every run. `MEMQ_BENCH_PUBLISHERS` and `MEMQ_BENCH_CONSUMERS`
//! change the 10s (for scaling runs on bigger machines).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio_memq_benches::{
    benchmark_group, competing, env_usize, note_machine, payloads, quick, runtime, with_capacity, CAPACITIES,
};

fn competing_consumers(c: &mut Criterion) {
    let rt = runtime();
    let pool = payloads(1024, 4096);
    let pubs = env_usize("MEMQ_BENCH_PUBLISHERS", 10) as u64;
    let consumers = env_usize("MEMQ_BENCH_CONSUMERS", 10);
    let per = if quick() { 1_000 } else { 4_000 };
    for cap in CAPACITIES {
        let mut g = benchmark_group(c, with_capacity("C_10p_10c_group_1KiB", cap));
        g.throughput(Throughput::Elements(per * pubs));
        let mut run = |name: &str,
                       f: &dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = std::time::Duration>>,
        >| {
            g.bench_function(name, |b| {
                note_machine(name);
                b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(f())).sum())
            });
        };
        run("tokio-memq group recv", &|| {
            Box::pin(competing::memq(pool.clone(), per, pubs, consumers, 1, cap))
        });
        run("tokio-memq group recv_batch(64)", &|| {
            Box::pin(competing::memq(pool.clone(), per, pubs, consumers, 64, cap))
        });
        run("flume", &|| {
            Box::pin(competing::flume(pool.clone(), per, pubs, consumers, cap))
        });
        run("kanal", &|| {
            Box::pin(competing::kanal(pool.clone(), per, pubs, consumers, cap))
        });
        run("async-channel", &|| {
            Box::pin(competing::async_channel(pool.clone(), per, pubs, consumers, cap))
        });
        g.finish();
    }
}

criterion_group!(benches, competing_consumers);
criterion_main!(benches);
