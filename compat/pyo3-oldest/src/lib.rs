//! Installs pyalloc as this crate's global allocator, as a PyO3 user would.

#[global_allocator]
static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;
