//! The C API, declared in `include/pyalloc.h`. Every function runs inside a
//! panic boundary and answers bad input with NULL, 0 or nothing, as each
//! documents; none of them needs the GIL unless it says so.
//!
//! Which blocks each function takes on which thread (families,
//! subinterpreters, interpreter lifetimes): the crate docs, Guarantees and
//! Limits, and the rules in `pyalloc.h`'s banner (`cbindgen.toml`).

use core::ffi::{c_char, c_void};
use core::ptr;
use core::sync::atomic::Ordering::Relaxed;

use crate::family::{self, handoff, PyMemOwner};
use crate::panic::boundary;
use crate::pymem;
use crate::stats::{self, Stats, INVALID_POINTERS};

/// Counts and refuses a pointer that no allocator pyalloc knows returns.
fn refuse_invalid(block: *const u8) -> bool {
    let invalid = block as usize % pymem::ALIGN != 0;
    if invalid {
        INVALID_POINTERS.fetch_add(1, Relaxed);
    }
    invalid
}

/// Allocates `size` bytes from any thread, GIL or not.
///
/// On a thread attached to the main interpreter (holding its GIL) the block
/// comes from `PyMem_Malloc` (`pyalloc_is_pymem` is true, C may `PyMem_Free`
/// it, tracemalloc sees it), aligned as PyMem aligns it (8 at least; 16 with
/// CPython's own allocators). Otherwise it is a private block, 16-aligned.
/// `size == 0` gives a unique non-NULL pointer. Returns NULL when out of
/// memory.
#[no_mangle]
pub extern "C" fn pyalloc_malloc(size: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || family::allocate(size, false).cast())
}

/// Allocates `nmemb * size` zeroed bytes (`PyMem_Calloc` or a zeroing
/// private allocation, never malloc + memset). Returns NULL when the product
/// overflows or when out of memory.
#[no_mangle]
pub extern "C" fn pyalloc_calloc(nmemb: usize, size: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || match nmemb.checked_mul(size) {
        Some(total) => family::allocate(total, true).cast(),
        None => ptr::null_mut(),
    })
}

/// Resizes a block from `pyalloc_malloc`/`pyalloc_calloc`/`pyalloc_realloc`,
/// or from C's own `PyMem_Malloc` (see "Interpreters" in `pyalloc.h`),
/// keeping its contents up to the smaller size.
///
/// `ptr == NULL` acts as `pyalloc_malloc(size)`. `size == 0` resizes to an
/// empty block and returns a unique non-NULL pointer (as `PyMem_Realloc`
/// does; it does not free). Returns NULL, leaving the block valid and
/// unchanged, when out of memory, when `ptr` is not 8-byte aligned (counted
/// in `invalid_pointers`), or when `ptr` is a PyMem block and this thread is
/// attached to no interpreter: the C API cannot know a PyMem block's size,
/// so it cannot move it.
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || {
        let block = ptr.cast::<u8>();
        if block.is_null() {
            return family::allocate(size, false).cast();
        }
        if refuse_invalid(block) {
            return ptr::null_mut();
        }
        // SAFETY: the caller passes a live block of pyalloc or PyMem.
        unsafe { family::resize(block, None, size, PyMemOwner::CallingInterpreter).cast() }
    })
}

/// Releases a block from `pyalloc_malloc`/`pyalloc_calloc`/`pyalloc_realloc`,
/// from C's `PyMem_Malloc`, or a buffer Rust handed over: a private block on
/// any thread, a PyMem block where "Interpreters" in `pyalloc.h` allows. A
/// main-interpreter PyMem block released on a thread that holds no GIL is
/// queued and freed by the next thread that
/// enters pyalloc holding the main interpreter's GIL (see `pyalloc_collect`).
/// NULL is ignored; so is a pointer that is not 8-byte aligned, which no
/// allocator here returns (counted in `invalid_pointers`).
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above, not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_free(ptr: *mut c_void) {
    boundary((), || {
        let block = ptr.cast::<u8>();
        if block.is_null() || refuse_invalid(block) {
            return;
        }
        // SAFETY: the caller gives up a live block of pyalloc or PyMem.
        unsafe { family::release(block, None, PyMemOwner::CallingInterpreter) }
    })
}

/// True when `ptr` is a PyMem block: C may release it with `PyMem_Free`
/// (holding its interpreter's GIL). False for NULL, for pointers that are
/// not 8-byte aligned and for private blocks, which only `pyalloc_free` may
/// release. Reads at most the 16 bytes before `ptr`; the answer is meaningful
/// for live blocks from the allocators above.
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_is_pymem(ptr: *const c_void) -> bool {
    // SAFETY: NULL or a live block, as the caller promises.
    boundary(false, || unsafe { family::is_pymem(ptr.cast_mut().cast()) })
}

/// Returns a block that C may release with `PyMem_Free` holding the first
/// `len` bytes of `ptr`: `ptr` itself when it is already a PyMem block,
/// otherwise a new `PyMem_Malloc` copy, and `ptr` is freed (counted in
/// `rehomed`).
///
/// Needs the main interpreter's GIL. Returns NULL, leaving `ptr` valid and
/// untouched, when this thread does not hold it, when `ptr` is NULL or not
/// 8-byte aligned, or when out of memory.
///
/// # Safety
/// `ptr` is NULL or a live block from one of the allocators above, holding at
/// least `len` bytes. On a non-NULL return the caller owns only the result.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_into_pymem(ptr: *mut c_void, len: usize) -> *mut c_void {
    boundary(ptr::null_mut(), || {
        let block = ptr.cast::<u8>();
        if block.is_null() || refuse_invalid(block) {
            return ptr::null_mut();
        }
        let Some(gil) = family::enter_with_main_gil() else {
            return ptr::null_mut();
        };
        // SAFETY: a live block of at least `len` bytes, as the caller promises.
        unsafe { handoff::into_pymem(&gil, block, len).cast() }
    })
}

/// Frees now every PyMem block that was released on a thread without the
/// GIL and returns how many. Needs the main interpreter's GIL: without it,
/// frees nothing and returns 0.
#[no_mangle]
pub extern "C" fn pyalloc_collect() -> usize {
    boundary(0, family::collect)
}

/// Runs when the object holding this copy is loaded (an ELF or Mach-O
/// constructor; Windows has none, see below).
/// An extension module is loaded by `import`, on a thread holding the GIL
/// of the importing interpreter: when that is the main one, this starts the
/// copy's interpreter lifetime as a first `pyalloc_collect()` would, so
/// that PyMem blocks released without the GIL from then on are queued, not
/// left alone. Anywhere else (a program starting, before `Py_Initialize`; an
/// import into a subinterpreter) it does nothing.
#[cfg(any(target_os = "linux", target_os = "macos"))]
extern "C" fn start_lifetime_on_load() {
    boundary(0, family::collect);
}

/// The constructor's entry in `.init_array` (Linux) or `__mod_init_func`
/// (macOS: dyld runs the pointers in that section at load, as ELF's loader
/// does `.init_array`'s). A static library's member is linked only when
/// something names it, so the link line names this symbol
/// (`-Wl,-u,pyalloc_start_lifetime_on_load`, on macOS
/// `-Wl,-u,_pyalloc_start_lifetime_on_load`: `python/pyalloc/_cargo.py`
/// prints it with the native flags, the README's link line shows it).
/// Windows: none (a DLL's constructors run under the loader lock, where
/// calling into Python is unsafe); a copy's lifetime starts at its first
/// call with the GIL held, or `pyalloc_collect()`, as without the link flag.
#[cfg(any(target_os = "linux", target_os = "macos"))]
#[used]
#[no_mangle]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
#[cfg_attr(target_os = "macos", link_section = "__DATA,__mod_init_func")]
#[allow(non_upper_case_globals)]
static pyalloc_start_lifetime_on_load: extern "C" fn() = start_lifetime_on_load;

/// Writes a snapshot of this copy of pyalloc's counters to `*out` (each
/// extension module that links pyalloc has its own copy and its own
/// counters). NULL is ignored. Cheap enough to call often; callable from
/// any thread.
///
/// # Safety
/// `out` is NULL or points to writable memory for one `pyalloc_stats`.
#[no_mangle]
pub unsafe extern "C" fn pyalloc_stats_get(out: *mut Stats) {
    boundary((), || {
        if !out.is_null() {
            // SAFETY: the caller promises `out` is writable.
            unsafe { out.write(stats::snapshot()) };
        }
    })
}

/// Whether this copy of pyalloc shows its private blocks to tracemalloc, in
/// domain `PYALLOC_TRACEMALLOC_DOMAIN`: CPython 3.15 or later,
/// `PYALLOC_TRACEMALLOC=1` in the environment when pyalloc first ran, and
/// not in a fork child. Blocks are then registered while tracemalloc
/// traces. Any thread, any time.
#[no_mangle]
pub extern "C" fn pyalloc_tracemalloc_tracking() -> bool {
    boundary(false, crate::private::tracemalloc_tracking)
}

/// The library's version, as `PYALLOC_VERSION` in this header: a static
/// NUL-terminated string, never NULL.
#[no_mangle]
pub extern "C" fn pyalloc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
