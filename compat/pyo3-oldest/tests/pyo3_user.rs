//! A PyO3 0.23 program whose global allocator is pyalloc's.

use pyo3::prelude::*;

#[global_allocator]
static GLOBAL: pyalloc::PyAlloc = pyalloc::PyAlloc;

fn is_pymem(block: *const u8) -> bool {
    // SAFETY: the test passes live blocks of PyAlloc.
    unsafe { pyalloc::is_pymem(block) }
}

#[test]
fn pyo3_and_pyalloc_share_one_heap() {
    assert!(pyalloc::is_global_allocator());
    Python::with_gil(|py| {
        assert!(pyalloc::holds_main_gil());
        let bytes = vec![42u8; 1 << 20];
        assert!(is_pymem(bytes.as_ptr()), "built under the GIL: on the PyMem heap");

        // tracemalloc sees Rust's allocation made under the GIL.
        let tracemalloc = py.import("tracemalloc").unwrap();
        tracemalloc.call_method0("start").unwrap();
        let traced = |py: Python<'_>| -> usize {
            let pair = py
                .import("tracemalloc")
                .unwrap()
                .call_method0("get_traced_memory")
                .unwrap();
            pair.get_item(0).unwrap().extract().unwrap()
        };
        let before = traced(py);
        let more = vec![7u8; 8 << 20];
        assert!(traced(py) >= before + (8 << 20));
        drop(more);
        tracemalloc.call_method0("stop").unwrap();

        let block = pyalloc::into_pymem(bytes).expect("GIL held");
        assert_eq!(block.len(), 1 << 20);
        let (ptr, len) = block.into_raw();
        // SAFETY: a live pymem block of `len` bytes, given up here.
        let back = unsafe { pyalloc::vec_from_pymem(ptr, len) };
        assert!(back.iter().all(|&b| b == 42));

        // Released GIL: private memory, no Python call.
        py.allow_threads(|| {
            assert!(!pyalloc::holds_main_gil());
            let private = vec![1u8; 100];
            assert!(!is_pymem(private.as_ptr()));
        });
    });
}
