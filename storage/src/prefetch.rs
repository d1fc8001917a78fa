//! Software prefetch: start loading a cache line now, use it later. Lookups in a large
//! keyspace are a chain of cache misses; for a pipeline of requests the chains are
//! independent, so issuing them all first lets the misses overlap.

/// Hints that the cache line holding `ptr` will be read soon. Never faults.
#[inline(always)]
pub fn line(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it does not dereference and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
