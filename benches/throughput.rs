//! Scenarios A (1 publisher, 1 subscriber), B (1 publisher, 10
//! subscribers, every message to every subscriber), D (batches of 100) and
//! E (1 MiB and 100 MiB payloads), tokio-memq next to the channels users
//! would pick instead, in one run. A, B and D run at capacity 1,024 and
//! 16,384 (group ids end in `_cap1024` / `_cap16384`); E at 16,384. See
//! `lib.rs` for the rules and each peer's settings.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio_memq::Bytes;
use tokio_memq_benches::{
    batches, benchmark_group, fan_out, note_machine, one_to_one, payloads, quick, runtime, with_capacity,
    CAPACITIES, LARGE_CAPACITY,
};

fn bench<F, Fut>(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, rt: &Runtime, name: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Duration>,
{
    g.bench_function(name, |b| {
        note_machine(name);
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(f())).sum())
    });
}

fn one_to_one_group(c: &mut Criterion, rt: &Runtime, label: &str, pool: Arc<Vec<Bytes>>, n: u64, cap: usize) {
    let mut g = benchmark_group(c, with_capacity(label, cap));
    g.throughput(Throughput::Elements(n));
    bench(&mut g, rt, "tokio-memq recv", || {
        one_to_one::memq(pool.clone(), n, 1, cap)
    });
    bench(&mut g, rt, "tokio-memq recv_batch(256)", || {
        one_to_one::memq(pool.clone(), n, 256, cap)
    });
    bench(&mut g, rt, "tokio mpsc", || {
        one_to_one::tokio_mpsc(pool.clone(), n, cap)
    });
    bench(&mut g, rt, "tokio broadcast", || {
        one_to_one::tokio_broadcast(pool.clone(), n)
    });
    bench(&mut g, rt, "flume", || one_to_one::flume(pool.clone(), n, cap));
    bench(&mut g, rt, "kanal", || one_to_one::kanal(pool.clone(), n, cap));
    bench(&mut g, rt, "async-channel", || {
        one_to_one::async_channel(pool.clone(), n, cap)
    });
    g.finish();
}

fn scenarios(c: &mut Criterion) {
    let rt = runtime();
    let scale = if quick() { 4 } else { 1 };
    let kib = payloads(1024, 4096);

    for cap in CAPACITIES {
        one_to_one_group(c, &rt, "A_1p_1c_1KiB", kib.clone(), 40_000 / scale, cap);
    }

    let (n, subs) = (10_000 / scale, 10);
    for cap in CAPACITIES {
        let mut g = benchmark_group(c, with_capacity("B_1p_10s_1KiB", cap));
        g.throughput(Throughput::Elements(n * subs as u64));
        bench(&mut g, &rt, "tokio-memq", || {
            fan_out::memq(kib.clone(), n, subs, cap)
        });
        bench(&mut g, &rt, "tokio broadcast", || {
            fan_out::tokio_broadcast(kib.clone(), n, subs)
        });
        bench(&mut g, &rt, "async-broadcast", || {
            fan_out::async_broadcast(kib.clone(), n, subs, cap)
        });
        g.finish();
    }

    let (n, size) = (40_000 / scale, 100);
    for cap in CAPACITIES {
        let mut g = benchmark_group(c, with_capacity("D_batch100_1KiB", cap));
        g.throughput(Throughput::Elements(n));
        bench(&mut g, &rt, "tokio-memq recv_batch", || {
            batches::memq(kib.clone(), n, size, cap, false)
        });
        bench(&mut g, &rt, "tokio-memq recv_batch_lent", || {
            batches::memq(kib.clone(), n, size, cap, true)
        });
        bench(&mut g, &rt, "tokio mpsc", || {
            batches::tokio_mpsc(kib.clone(), n, size, cap)
        });
        bench(&mut g, &rt, "flume", || batches::flume(kib.clone(), n, size, cap));
        bench(&mut g, &rt, "kanal", || batches::kanal(kib.clone(), n, size, cap));
        g.finish();
    }

    // E compares payload sizes, not capacities: the large capacity only.
    let cap = LARGE_CAPACITY;
    drop(kib);
    let mib = payloads(1 << 20, 16);
    let mut g = benchmark_group(c, "E_1p_1c_1MiB");
    let n = 10_000 / scale;
    g.throughput(Throughput::Elements(n));
    bench(&mut g, &rt, "tokio-memq recv", || {
        one_to_one::memq(mib.clone(), n, 1, cap)
    });
    bench(&mut g, &rt, "tokio mpsc", || {
        one_to_one::tokio_mpsc(mib.clone(), n, cap)
    });
    g.finish();
    drop(mib);
    let huge = payloads(100 << 20, 2);
    let mut g = benchmark_group(c, "E_1p_1c_100MiB");
    g.throughput(Throughput::Elements(n));
    bench(&mut g, &rt, "tokio-memq recv", || {
        one_to_one::memq(huge.clone(), n, 1, cap)
    });
    bench(&mut g, &rt, "tokio mpsc", || {
        one_to_one::tokio_mpsc(huge.clone(), n, cap)
    });
    g.finish();
}

criterion_group!(benches, scenarios);
criterion_main!(benches);
