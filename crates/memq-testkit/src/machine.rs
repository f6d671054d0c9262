//! What the machine is doing, for benchmark reports.
//!
//! The shared 2-core development machine has periods of a few minutes in
//! which handing a cache line from one CPU to the other takes five to six
//! times as long as usual (about 350 ns for the round trip instead of
//! 50-70 ns; most likely the host moving the virtual CPUs apart). Everything
//! that passes data between threads runs 2-3 times slower then, while a
//! program that keeps to one CPU does not: figures from such a period
//! cannot be compared with others. [`core_round_trip`] measures that
//! round trip, so that a benchmark can say which period it ran in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One counter on a cache line (and its neighbour, which some processors
/// fetch with it) of its own.
#[repr(align(128))]
struct Line(AtomicU64);

/// Round trips per sample.
const TRIPS: u64 = 20_000;
/// Samples; the median is reported.
const SAMPLES: usize = 5;
/// A sample that takes longer than this is given up: the two threads are
/// not running at the same time (one CPU, or a busy machine).
const GIVE_UP: Duration = Duration::from_millis(200);

/// The median time for a cache line to go from this thread to another and
/// back (two threads passing a counter to each other), or `None` when the
/// two threads did not run side by side (one CPU, or others busy).
///
/// About 10 ms of two busy CPUs on an idle machine.
pub fn core_round_trip() -> Option<Duration> {
    let mut samples: Vec<Duration> = (0..SAMPLES).map_while(|_| sample()).collect();
    if samples.len() < SAMPLES {
        return None;
    }
    samples.sort();
    Some(samples[SAMPLES / 2])
}

/// One sample: this thread writes odd values, the other even ones, each
/// waiting for the other's.
fn sample() -> Option<Duration> {
    let line = Line(AtomicU64::new(0));
    let abandoned = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..TRIPS {
                if !wait_for(&line.0, 2 * i + 1, &abandoned) {
                    return;
                }
                line.0.store(2 * i + 2, Ordering::Release);
            }
        });
        let started = Instant::now();
        for i in 0..TRIPS {
            if !wait_for(&line.0, 2 * i, &abandoned) || started.elapsed() > GIVE_UP {
                abandoned.store(1, Ordering::Relaxed);
                return None;
            }
            line.0.store(2 * i + 1, Ordering::Release);
        }
        let took = started.elapsed();
        u32::try_from(TRIPS).ok().map(|trips| took / trips)
    })
}

/// Spins until `line` holds `value`; false when the sample was abandoned
/// (or this waited so long that it should be).
fn wait_for(line: &AtomicU64, value: u64, abandoned: &AtomicU64) -> bool {
    let started = Instant::now();
    let mut spins = 0u32;
    while line.load(Ordering::Acquire) != value {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 1024 == 0 && (abandoned.load(Ordering::Relaxed) != 0 || started.elapsed() > GIVE_UP) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_is_measured_or_refused_in_bounded_time() {
        let started = Instant::now();
        let measured = core_round_trip();
        // Each sample gives up after 200 ms.
        assert!(started.elapsed() < GIVE_UP * (SAMPLES as u32 + 1) * 2);
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            if let Some(trip) = measured {
                assert!(trip > Duration::ZERO && trip < GIVE_UP, "{trip:?}");
            }
        }
    }
}
