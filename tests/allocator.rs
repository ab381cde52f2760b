//! `PyAlloc` as a Rust allocator, in both families: every alignment through
//! alloc, alloc_zeroed and realloc; the GIL decided per thread; pymem blocks
//! dropped or grown without the GIL; the ownership helpers; the deferred
//! drain. This test binary runs on `PyAlloc` itself (`common`), so the
//! harness's own allocations exercise it too. Every test takes `serial()`:
//! any GIL holder that allocates drains the deferred queue, which would
//! disturb the counts another test is checking.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::thread;

use common::{is_pymem, serial, with_gil, without_gil};
use pyalloc::{into_pymem, vec_from_pymem, PyAlloc};

const ALIGNMENTS: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 512, 4096];
const SIZES: [usize; 6] = [1, 7, 24, 700, 5000, 1 << 20];

fn fill(block: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: callers pass a live block of at least `len` bytes.
        unsafe { block.add(i).write(seed.wrapping_add(i as u8).wrapping_mul(13)) };
    }
}

fn holds(block: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass a live block of at least `len` initialised bytes.
    (0..len).all(|i| unsafe { *block.add(i) } == seed.wrapping_add(i as u8).wrapping_mul(13))
}

/// Every alignment and size through alloc, alloc_zeroed and realloc (grow,
/// grow, shrink), checking alignment, zeroing, contents and the family.
fn exercise_layouts(expect_pymem: bool) {
    for align in ALIGNMENTS {
        for size in SIZES {
            let layout = Layout::from_size_align(size, align).expect("valid layout");
            // SAFETY: non-zero-size layouts; each block is freed once with the
            // layout (and size) it has at that point.
            unsafe {
                let block = PyAlloc.alloc(layout);
                assert!(!block.is_null(), "alloc {layout:?}");
                assert_eq!(block as usize % align, 0, "alloc {layout:?}");
                if align <= 8 {
                    assert_eq!(is_pymem(block), expect_pymem, "family of {layout:?}");
                }
                fill(block, size, 3);

                let zeroed = PyAlloc.alloc_zeroed(layout);
                assert!(!zeroed.is_null());
                assert_eq!(zeroed as usize % align, 0, "alloc_zeroed {layout:?}");
                assert!(
                    (0..size).all(|i| *zeroed.add(i) == 0),
                    "alloc_zeroed {layout:?} is zero"
                );
                PyAlloc.dealloc(zeroed, layout);

                let mut current = (block, size);
                for new_size in [size * 2 + 1, size * 5 + 3, size / 2 + 1] {
                    let moved = PyAlloc.realloc(
                        current.0,
                        Layout::from_size_align_unchecked(current.1, align),
                        new_size,
                    );
                    assert!(!moved.is_null());
                    assert_eq!(moved as usize % align, 0, "realloc {layout:?} to {new_size}");
                    assert!(
                        holds(moved, current.1.min(new_size).min(size), 3),
                        "realloc keeps {layout:?}"
                    );
                    current = (moved, new_size);
                }
                PyAlloc.dealloc(current.0, Layout::from_size_align_unchecked(current.1, align));
            }
        }
    }
}

#[test]
fn every_alignment_in_the_private_family() {
    let _serial = serial();
    assert!(!pyalloc::holds_main_gil());
    exercise_layouts(false);
}

#[test]
fn every_alignment_in_the_pymem_family() {
    let _serial = serial();
    with_gil(|| {
        assert!(pyalloc::holds_main_gil());
        exercise_layouts(true);
    });
}

#[test]
fn over_aligned_blocks_stay_aligned_in_bulk() {
    let _serial = serial();
    #[repr(align(64))]
    struct Line([u8; 64]);
    #[repr(align(4096))]
    struct Page([u8; 4096]);

    let check = || {
        let lines: Vec<Box<Line>> = (0..2000).map(|i| Box::new(Line([i as u8; 64]))).collect();
        let pages: Vec<Box<Page>> = (0..64).map(|i| Box::new(Page([i as u8; 4096]))).collect();
        assert!(lines.iter().all(|line| &**line as *const Line as usize % 64 == 0));
        assert!(pages
            .iter()
            .all(|page| &**page as *const Page as usize % 4096 == 0));
        assert!(lines
            .iter()
            .enumerate()
            .all(|(i, line)| line.0.iter().all(|&b| b == i as u8)));
        assert!(pages
            .iter()
            .enumerate()
            .all(|(i, page)| page.0.iter().all(|&b| b == i as u8)));
    };
    check();
    with_gil(check);
}

#[test]
fn the_gil_is_decided_per_thread() {
    let _serial = serial();
    assert!(!pyalloc::holds_main_gil());
    with_gil(|| {
        assert!(pyalloc::holds_main_gil());
        let on_worker = thread::spawn(pyalloc::holds_main_gil).join().expect("joins");
        assert!(!on_worker, "a thread without a thread state holds nothing");
        without_gil(|| assert!(!pyalloc::holds_main_gil(), "released by Py_BEGIN_ALLOW_THREADS"));
        assert!(pyalloc::holds_main_gil());
        let text = String::from("built under the GIL");
        assert!(is_pymem(text.as_ptr()));
    });
    let text = String::from("built without it");
    assert!(!is_pymem(text.as_ptr()));
}

#[test]
fn pymem_vec_grown_and_dropped_without_the_gil() {
    let _serial = serial();
    // Both built under the GIL now: any later allocation under the GIL
    // would drain the queue this test watches.
    let (bytes, boxed): (Vec<u8>, Box<[u64; 32]>) = with_gil(|| {
        pyalloc::collect();
        ((0..100u8).collect(), Box::new([7u64; 32]))
    });
    assert!(is_pymem(bytes.as_ptr()));
    let before = pyalloc::stats();

    // Grown on this thread, which holds no GIL: the block moves to the
    // private family and the pymem one is queued, not freed here.
    let mut bytes = bytes;
    bytes.extend(100..=255u8);
    assert!(!is_pymem(bytes.as_ptr()));
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
    let after_grow = pyalloc::stats();
    assert_eq!(after_grow.deferred_pending, before.deferred_pending + 1);
    assert_eq!(after_grow.pymem_frees, before.pymem_frees);

    // A pymem box dropped on a plain thread is queued too.
    thread::spawn(move || drop(boxed)).join().expect("joins");
    assert_eq!(pyalloc::stats().deferred_pending, before.deferred_pending + 2);
    assert_eq!(pyalloc::collect(), 0, "collect needs the GIL");

    let freed = with_gil(pyalloc::collect);
    assert_eq!(freed, 2);
    let after = pyalloc::stats();
    assert_eq!(after.deferred_pending, before.deferred_pending);
    assert_eq!(after.deferred_freed, before.deferred_freed + 2);
}

#[test]
fn vec_handed_to_c_and_back_without_copies() {
    let _serial = serial();
    with_gil(|| {
        assert!(pyalloc::is_global_allocator());
        let before = pyalloc::stats();
        let bytes = b"hello from rust".to_vec();
        let address = bytes.as_ptr();
        let block = into_pymem(bytes).expect("GIL held");
        assert_eq!(block.as_ptr().cast_const(), address, "zero copy");
        assert_eq!(block.as_slice(), b"hello from rust");
        let (raw, len) = block.into_raw();
        // SAFETY: `raw` is a live pymem block of `len` bytes, given up here.
        let back = unsafe { vec_from_pymem(raw, len) };
        assert_eq!(back.as_ptr(), address, "zero copy back");
        assert_eq!(back, b"hello from rust");
        assert_eq!(pyalloc::stats().rehomed, before.rehomed);

        // Empty vectors still become a real PyMem block.
        let empty = into_pymem(Vec::new()).expect("GIL held");
        assert!(empty.is_empty() && !empty.as_ptr().is_null() && is_pymem(empty.as_ptr()));
    });

    // Built on a thread without the GIL: private, so handing it over copies.
    let private = thread::spawn(|| vec![9u8; 1000]).join().expect("joins");
    assert!(!is_pymem(private.as_ptr()));
    with_gil(|| {
        let before = pyalloc::stats();
        let block = into_pymem(private).expect("GIL held");
        assert!(is_pymem(block.as_ptr()));
        assert!(block.as_slice().iter().all(|&b| b == 9));
        assert_eq!(pyalloc::stats().rehomed, before.rehomed + 1);
    });

    // Without the GIL nothing can become pymem: the vector comes back.
    let refused = into_pymem(vec![1, 2, 3]).expect_err("no GIL");
    assert_eq!(refused, [1, 2, 3]);
}

#[test]
fn thread_local_destructors_free_pymem_blocks_without_the_gil() {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let _serial = serial();
    with_gil(pyalloc::collect);
    let before = pyalloc::stats();
    thread::spawn(|| {
        // Filled under the GIL (pymem), dropped by the thread-local's
        // destructor when the thread exits, holding nothing.
        let address = with_gil(|| {
            CACHE.with(|cache| cache.borrow_mut().extend_from_slice(&[5u8; 4096]));
            CACHE.with(|cache| cache.borrow().as_ptr() as usize)
        });
        assert!(is_pymem(address as *const u8));
    })
    .join()
    .expect("joins");
    let after = pyalloc::stats();
    assert!(
        after.deferred_pending > before.deferred_pending,
        "queued by the destructor"
    );
    with_gil(pyalloc::collect);
    assert_eq!(pyalloc::stats().deferred_pending, 0);
}

/// Regression: the stress test once caught `defer` counting a block after
/// publishing it, so a GIL holder could drain (and uncount) it first and the
/// queue length wrapped below zero: an overflow panic inside `dealloc`.
/// Here one thread drops pymem blocks without the GIL while another holds the
/// GIL and drains on every allocation, so the two meet thousands of times.
#[test]
fn deferrals_racing_a_drain_keep_the_queue_count() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const BLOCKS: usize = 200_000;
    let _serial = serial();
    let blocks: Vec<Box<[u64; 4]>> = with_gil(|| (0..BLOCKS).map(|i| Box::new([i as u64; 4])).collect());
    let dropping = AtomicBool::new(true);
    thread::scope(|scope| {
        scope.spawn(|| {
            with_gil(|| {
                while dropping.load(Ordering::Relaxed) {
                    // Each allocation under the GIL drains what was queued.
                    drop(std::hint::black_box(Box::new(1u64)));
                }
            })
        });
        scope.spawn(|| {
            for block in blocks {
                drop(block);
            }
            dropping.store(false, Ordering::Relaxed);
        });
    });
    let stats = with_gil(|| {
        pyalloc::collect();
        pyalloc::stats()
    });
    assert_eq!(stats.deferred_pending, 0, "{stats:?}");
}
