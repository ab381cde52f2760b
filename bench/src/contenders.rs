//! The allocators under test, and the switch that makes one of them the
//! program's global allocator for a stretch of code (for the cases that go
//! through Rust's collections).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use mimalloc::MiMalloc;
use pyalloc::PyAlloc;
use pyo3_ffi as ffi;

/// Bare `PyMem_*` calls with no check at all: the floor that pyalloc's
/// safety is paid on top of. Sound only with the GIL held and alignment <= 16.
pub struct PyMemDirect;

// SAFETY: only used with the GIL held and alignments PyMem honours (16).
unsafe impl GlobalAlloc for PyMemDirect {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the bench holds the GIL whenever this contender runs.
        unsafe { ffi::PyMem_Malloc(layout.size()).cast() }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { ffi::PyMem_Calloc(1, layout.size()).cast() }
    }
    unsafe fn dealloc(&self, block: *mut u8, _: Layout) {
        // SAFETY: as in `alloc`; `block` came from this allocator.
        unsafe { ffi::PyMem_Free(block.cast()) }
    }
    unsafe fn realloc(&self, block: *mut u8, _: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        unsafe { ffi::PyMem_Realloc(block.cast(), new_size).cast() }
    }
}

extern "C" {
    fn pyalloc_bench_c_model_malloc(size: usize) -> *mut c_void;
    fn pyalloc_bench_c_model_free(block: *mut c_void);
    fn pyalloc_bench_c_model_is_private(block: *const c_void) -> std::ffi::c_int;
}

/// Checks the C model's families once, before case 1 measures it: a block
/// allocated with the GIL held is a pymem block, one allocated with the GIL
/// released is private; a pymem block freed without the GIL is deferred and
/// freed by the next allocation with the GIL (under `PYTHONMALLOC=debug` a
/// `PyMem_Free` without the GIL there would be fatal). Panics on a wrong
/// family. The calling thread holds the GIL.
pub fn check_c_model() {
    let layout = Layout::from_size_align(64, 8).expect("valid layout");
    let is_private = |block: *mut u8| {
        // SAFETY: `block` is a live block of the model.
        unsafe { pyalloc_bench_c_model_is_private(block.cast()) != 0 }
    };
    // SAFETY: a valid layout; the bench thread holds the GIL.
    let pymem = unsafe { CModel.alloc(layout) };
    assert!(
        !pymem.is_null() && !is_private(pymem),
        "c-model: a GIL-held block is not pymem"
    );
    let private = crate::measure::gil_state_for(Contender::PyAllocNoGil, || {
        // SAFETY: the model may be called without the GIL; `pymem` is its
        // block (deferred here, as the GIL is released).
        unsafe {
            CModel.dealloc(pymem, layout);
            CModel.alloc(layout)
        }
    });
    assert!(
        !private.is_null() && is_private(private),
        "c-model: a GIL-less block is not private"
    );
    // SAFETY: with the GIL again: the allocation drains the deferred block;
    // both blocks are the model's.
    unsafe {
        let again = CModel.alloc(layout);
        assert!(
            !again.is_null() && !is_private(again),
            "c-model: a GIL-held block is not pymem"
        );
        CModel.dealloc(again, layout);
        CModel.dealloc(private, layout);
    }
}

/// The smallest exact design, in C (`bench/csrc/c_model.c`, issue 17):
/// `PyMem_*` under the main GIL, `malloc` elsewhere, one public thread-state
/// question per allocation and per free of a pymem block, private blocks
/// marked as pyalloc marks them. The reference for pyalloc's GIL-held path.
/// Its blocks are 8-aligned at least (PyMem's, under every allocator seen;
/// private ones are 16-aligned), so larger alignments are refused (NULL);
/// case 1 asks for 8.
pub struct CModel;

// SAFETY: the model's calls are sound on any thread at any time (it chooses
// the family itself); alignments above what it guarantees get NULL.
unsafe impl GlobalAlloc for CModel {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 8 {
            return std::ptr::null_mut();
        }
        // SAFETY: callable with any size, on any thread.
        unsafe { pyalloc_bench_c_model_malloc(layout.size()).cast() }
    }
    unsafe fn dealloc(&self, block: *mut u8, _: Layout) {
        // SAFETY: `block` came from `pyalloc_bench_c_model_malloc` (this
        // allocator's `alloc`, or the trait's default realloc through it).
        unsafe { pyalloc_bench_c_model_free(block.cast()) }
    }
}

/// The forwarder most projects write first (what pyalloc replaces): `PyMem_*`
/// for every layout, GIL or not, and the trait's default `alloc_zeroed`,
/// which is `alloc` followed by a memset. Only run where that is safe.
pub struct Naive;

// SAFETY: as for PyMemDirect; the bench runs it only where it is sound.
unsafe impl GlobalAlloc for Naive {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for PyMemDirect.
        unsafe { ffi::PyMem_Malloc(layout.size()).cast() }
    }
    unsafe fn dealloc(&self, block: *mut u8, _: Layout) {
        // SAFETY: as for PyMemDirect.
        unsafe { ffi::PyMem_Free(block.cast()) }
    }
    unsafe fn realloc(&self, block: *mut u8, _: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for PyMemDirect.
        unsafe { ffi::PyMem_Realloc(block.cast(), new_size).cast() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Contender {
    /// pyalloc on a thread that holds the GIL (the pymem family).
    PyAlloc,
    /// pyalloc with the GIL released (the private family), no thread
    /// holding it.
    PyAllocNoGil,
    /// The same while another thread holds the GIL (the thread that
    /// allocates still does not).
    PyAllocNoGilBusy,
    PyMemDirect,
    /// The C model of the smallest exact design, with the GIL held.
    CModel,
    Naive,
    System,
    Mimalloc,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::PyAlloc => "pyalloc",
            Contender::PyAllocNoGil => "pyalloc (no GIL)",
            Contender::PyAllocNoGilBusy => "pyalloc (no GIL, GIL busy)",
            Contender::PyMemDirect => "pymem-direct",
            Contender::CModel => "c-model",
            Contender::Naive => "naive",
            Contender::System => "system",
            Contender::Mimalloc => "mimalloc",
        }
    }

    /// Whether the bench thread releases the GIL while this contender runs.
    pub fn releases_gil(self) -> bool {
        matches!(self, Contender::PyAllocNoGil | Contender::PyAllocNoGilBusy)
    }

    /// Whether another thread holds the GIL while this contender runs.
    pub fn gil_busy(self) -> bool {
        self == Contender::PyAllocNoGilBusy
    }

    /// Every contender, in declaration order (the `repr(u8)` values).
    pub const ALL: [Contender; 8] = [
        Contender::PyAlloc,
        Contender::PyAllocNoGil,
        Contender::PyAllocNoGilBusy,
        Contender::PyMemDirect,
        Contender::CModel,
        Contender::Naive,
        Contender::System,
        Contender::Mimalloc,
    ];

    fn from_u8(value: u8) -> Contender {
        Self::ALL[value as usize]
    }
}

/// Something to run against one allocator, monomorphised per contender so
/// that no contender pays for dynamic dispatch.
pub trait Workload {
    type Output;
    fn run<A: GlobalAlloc>(&mut self, alloc: &A) -> Self::Output;
}

/// Runs `workload` against `contender`'s allocator.
pub fn run<W: Workload>(contender: Contender, workload: &mut W) -> W::Output {
    match contender {
        Contender::PyAlloc | Contender::PyAllocNoGil | Contender::PyAllocNoGilBusy => workload.run(&PyAlloc),
        Contender::PyMemDirect => workload.run(&PyMemDirect),
        Contender::CModel => workload.run(&CModel),
        Contender::Naive => workload.run(&Naive),
        Contender::System => workload.run(&System),
        Contender::Mimalloc => workload.run(&MiMalloc),
    }
}

/// The program's global allocator: `System`, except inside `with_global`.
/// Every contender in the collection cases pays the same dispatch (one
/// relaxed load and a jump per call).
pub struct Switch;

static SELECTED: AtomicU8 = AtomicU8::new(Contender::System as u8);

#[global_allocator]
static GLOBAL: Switch = Switch;

macro_rules! dispatch {
    ($method:ident($($arg:expr),*)) => {
        match Contender::from_u8(SELECTED.load(Relaxed)) {
            Contender::PyAlloc | Contender::PyAllocNoGil | Contender::PyAllocNoGilBusy => {
                PyAlloc.$method($($arg),*)
            }
            Contender::PyMemDirect => PyMemDirect.$method($($arg),*),
            Contender::CModel => CModel.$method($($arg),*),
            Contender::Naive => Naive.$method($($arg),*),
            Contender::System => System.$method($($arg),*),
            Contender::Mimalloc => MiMalloc.$method($($arg),*),
        }
    };
}

// SAFETY: each call goes to the selected allocator, and the selection only
// changes in `with_global`, between which no block crosses (the closure's
// result is `Copy`, so it owns no heap memory), on a single thread.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { dispatch!(alloc(layout)) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { dispatch!(alloc_zeroed(layout)) }
    }
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the block came from the same selection (see above).
        unsafe { dispatch!(dealloc(block, layout)) }
    }
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        unsafe { dispatch!(realloc(block, layout, new_size)) }
    }
}

/// Runs `job` with `contender` as the global allocator. Everything `job`
/// allocates must be freed inside it; its result is `Copy`, so it cannot carry
/// a heap block out. Single-threaded cases only.
pub fn with_global<R: Copy>(contender: Contender, job: impl FnOnce() -> R) -> R {
    SELECTED.store(contender as u8, Relaxed);
    let result = job();
    SELECTED.store(Contender::System as u8, Relaxed);
    result
}
