//! Kafka's key hash: the 32-bit murmur2 variant of Kafka's `Utils.murmur2`,
//! and the default partitioner's formula built on it.

/// Kafka's seed for murmur2.
const SEED: u32 = 0x9747_b28c;
/// murmur2's mixing constants.
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// The murmur2 hash of `data`, bit for bit what Kafka's
/// `org.apache.kafka.common.utils.Utils.murmur2(byte[])` returns (a Java
/// `int`, hence `i32`).
///
/// # Examples
///
/// ```
/// // Vectors from Kafka's own UtilsTest.testMurmur2.
/// assert_eq!(memq_partition::murmur2(b"21"), -973_932_308);
/// assert_eq!(memq_partition::murmur2(b"abc"), 479_470_107);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    // Kafka mixes in the length as a Java int; keys longer than 4 GiB
    // wrap as the int arithmetic would.
    let mut h = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// This is what [`Routing::Hash`](crate::Routing::Hash) uses, so a key
/// lands on the same partition number here as in a Kafka topic with the
/// same partition count. Returns 0 when `partitions` is 0.
///
/// # Examples
///
/// ```
/// // murmur2("foobar") = -790332482; & 0x7fffffff = 1357151166; % 4 = 2.
/// assert_eq!(memq_partition::kafka_partition(b"foobar", 4), 2);
/// ```
pub fn kafka_partition(key: &[u8], partitions: usize) -> usize {
    if partitions == 0 {
        return 0;
    }
    let positive = (murmur2(key) as u32) & 0x7fff_ffff;
    positive as usize % partitions
}
