//! Test payloads that show loss, duplication, reordering or corruption: a pseudo-random
//! block generator and a running FNV-1a 64 hash to compare what was sent with what arrived.

/// FNV-1a 64 offset basis: the state before any byte.
pub const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64 of `data`, continuing from state `h`.
pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Fill `buf` with the `i`-th block of the stream (xorshift seeded by `i`, so no two blocks
/// are alike and a block out of place changes the hash).
pub fn block(i: u64, buf: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for c in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
}
