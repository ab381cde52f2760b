//! The C library, called directly: the malloc family (the system private
//! heap and pyalloc's own bookkeeping), the kernel's per-process random
//! bytes, and a fatal stop that allocates nothing. Called directly rather than
//! through `std::alloc::System` because the C API frees blocks whose size it
//! does not know, and because this code runs inside the global allocator.

mod kept_answer;
pub(crate) mod thread_exit;

pub(crate) use kept_answer::KeptAnswer;

use core::ffi::CStr;
use core::ffi::{c_char, c_int, c_ulong, c_void};

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("pyalloc supports 64-bit Linux: its private blocks rely on getauxval(AT_RANDOM) and 16-byte malloc alignment");

extern "C" {
    #[link_name = "malloc"]
    fn c_malloc(size: usize) -> *mut c_void;
    #[link_name = "calloc"]
    fn c_calloc(nmemb: usize, size: usize) -> *mut c_void;
    #[link_name = "realloc"]
    fn c_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    #[link_name = "free"]
    fn c_free(ptr: *mut c_void);
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
    fn getauxval(kind: c_ulong) -> c_ulong;
    fn getenv(name: *const c_char) -> *const c_char;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    fn abort() -> !;
    fn dladdr1(address: *const c_void, info: *mut DlInfo, extra: *mut *mut c_void, flags: c_int) -> c_int;
    fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
}

/// glibc's `Dl_info` (`<dlfcn.h>`).
#[repr(C)]
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

/// The leading fields of `struct link_map` (`<link.h>`, the public part).
#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const c_char,
}

const RTLD_LAZY: c_int = 0x1;
const RTLD_NOLOAD: c_int = 0x4;
const RTLD_NODELETE: c_int = 0x1000;
const RTLD_DL_LINKMAP: c_int = 2;

/// `getauxval` key of the 16 random bytes the kernel gives every process.
const AT_RANDOM: c_ulong = 25;

/// `malloc(size)`, or `calloc(1, size)` when `zeroed`; NULL on failure.
pub(crate) fn malloc(size: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: malloc and calloc accept any size and report failure as NULL.
    unsafe {
        if zeroed {
            c_calloc(1, size).cast()
        } else {
            c_malloc(size).cast()
        }
    }
}

/// `realloc`. On failure returns NULL and `block` stays valid.
///
/// # Safety
/// `block` is a live block from this module's allocating functions.
pub(crate) unsafe fn realloc(block: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: the caller passes a live malloc block.
    unsafe { c_realloc(block.cast(), size).cast() }
}

/// # Safety
/// `block` is NULL or a live block from this module's allocating functions,
/// not used afterwards.
pub(crate) unsafe fn free(block: *mut u8) {
    // SAFETY: the caller passes a live malloc block or NULL.
    unsafe { c_free(block.cast()) }
}

/// A block aligned to `align` (a power of two, at least pointer size), freed
/// with `free`; NULL on failure.
pub(crate) fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    let mut out = core::ptr::null_mut();
    // SAFETY: `out` is a valid place for the result; posix_memalign checks
    // `align` itself and reports failure through its return value.
    match unsafe { posix_memalign(&mut out, align, size) } {
        0 => out.cast(),
        _ => core::ptr::null_mut(),
    }
}

/// The 16 random bytes the kernel put in this process's auxiliary vector:
/// the same for every copy of pyalloc loaded in the process (and in a forked
/// child), fresh at every exec. `None` if the kernel gave none.
pub(crate) fn process_random_bytes() -> Option<[u8; 16]> {
    // SAFETY: getauxval only reads the auxiliary vector; AT_RANDOM is the
    // address of 16 bytes that live as long as the process.
    let address = unsafe { getauxval(AT_RANDOM) } as usize;
    if address == 0 {
        return None;
    }
    // SAFETY: as above, 16 readable bytes at `address`, never written.
    Some(unsafe { (address as *const [u8; 16]).read_unaligned() })
}

/// Keeps the object that holds this copy of pyalloc (the program, or a
/// shared library such as an extension module) loaded for the rest of the
/// process; true when it is. Called before pyalloc registers a callback
/// that outlives the call (`Py_AtExit`): a library unloaded with `dlclose`
/// would leave CPython calling into unmapped memory. The program itself is
/// never unloaded; a shared library is marked `RTLD_NODELETE` by opening it
/// again with that flag (the handle is kept on purpose). False, and nothing
/// changed, when the object cannot be found or reopened.
pub(crate) fn pin_this_object() -> bool {
    static PINNED: KeptAnswer = KeptAnswer::new();
    PINNED.get(|| Some(pin_object_of(pin_this_object as *const c_void)))
}

fn pin_object_of(code: *const c_void) -> bool {
    let mut info = DlInfo {
        fname: core::ptr::null(),
        fbase: core::ptr::null_mut(),
        sname: core::ptr::null(),
        saddr: core::ptr::null_mut(),
    };
    let mut map: *mut c_void = core::ptr::null_mut();
    // SAFETY: `info` and `map` are valid places for dladdr1's answers; it
    // only looks `code` up among the loaded objects.
    if unsafe { dladdr1(code, &mut info, &mut map, RTLD_DL_LINKMAP) } == 0 || map.is_null() {
        return false;
    }
    // SAFETY: `map` is the `link_map` of the object holding this code, which
    // stays loaded while this code runs; its name is a NUL-terminated string.
    let name = unsafe { (*map.cast::<LinkMap>()).name };
    // SAFETY: as above; only the first byte is read to see if it is empty.
    if name.is_null() || unsafe { *name } == 0 {
        // The program itself (glibc names its map ""): never unloaded.
        return true;
    }
    // SAFETY: `name` is the loaded object's own name, so RTLD_NOLOAD finds it
    // without loading anything; RTLD_NODELETE keeps it for the process.
    !unsafe { dlopen(name, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) }.is_null()
}

/// The value of an environment variable, read without allocating (this
/// runs inside the allocator); `None` when it is not set.
pub(crate) fn env(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv reads the environment; the pointer it returns stays
    // valid until the variable is changed, which pyalloc's callers read
    // once, at set-up.
    let value = unsafe { getenv(name.as_ptr()) };
    // SAFETY: a non-NULL result is a NUL-terminated string.
    (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_bytes())
}

/// `block`, after checking that it is `align`-aligned: a backend (PyMem, the
/// private heap) that breaks its alignment stops the process with a message
/// rather than handing Rust a misaligned block.
#[inline]
pub(crate) fn checked_alignment(block: *mut u8, align: usize, source: &str) -> *mut u8 {
    if block as usize % align != 0 {
        fatal(source, "returned a block below its guaranteed alignment");
    }
    block
}

/// Writes `pyalloc: fatal: <source> <what>` to stderr and aborts. Allocates
/// nothing, so it is safe inside the allocator.
#[cold]
pub(crate) fn fatal(source: &str, what: &str) -> ! {
    warn_parts(&["pyalloc: fatal: ", source, " ", what, "\n"]);
    // SAFETY: abort takes no arguments and does not return.
    unsafe { abort() }
}

/// Writes the parts to stderr, allocating nothing.
pub(crate) fn warn_parts(parts: &[&str]) {
    for part in parts {
        // SAFETY: writes a valid byte slice to fd 2; a failed write is ignored,
        // there is nowhere else to report it.
        unsafe { write(2, part.as_ptr().cast(), part.len()) };
    }
}
