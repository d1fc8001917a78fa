//! A small deterministic generator (SplitMix64). Random commands that write (SPOP) draw from
//! one seeded by the seed their effect carries, so every replica picks the same members.

use std::cell::Cell;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x1234_5678, |d| d.as_nanos() as u64),
    );
}

/// A fresh seed from this thread's generator: for effects and for read-only random picks.
pub fn seed() -> u64 {
    STATE.with(|state| {
        let mut rng = Rng(state.get());
        let value = rng.next_u64();
        state.set(rng.0);
        value
    })
}
