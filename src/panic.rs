//! The panic boundary: no unwind leaves pyalloc into C. Every function C
//! calls (`capi.rs`, the `demo` feature's) runs its body through
//! [`boundary`]. pyalloc's own code does not panic on any input (bad input
//! gets NULL, 0 or nothing, as each function documents); the boundary is
//! there for what a bug or an allocation failure inside std might raise.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, turning a panic into `fallback`.
pub(crate) fn boundary<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
