//! 64-bit glibc Linux (x86-64, aarch64).

use super::unix::DlInfo;
use core::ffi::{c_char, c_int, c_ulong, c_void};

use super::unix::MAP_FAILED;

pub(super) use super::unix::write_stderr;
pub(crate) use super::unix::{aligned_alloc, map, thread_ident, unmap, yield_now};

/// `pthread_key_t`: `unsigned int` in glibc (`<bits/pthreadtypes.h>`).
pub(crate) type ThreadKey = core::ffi::c_uint;

extern "C" {
    fn getauxval(kind: c_ulong) -> c_ulong;
    fn dladdr1(address: *const c_void, info: *mut DlInfo, extra: *mut *mut c_void, flags: c_int) -> c_int;
    fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
    fn mremap(old: *mut c_void, old_len: usize, new_len: usize, flags: c_int, ...) -> *mut c_void;
    fn pthread_key_create(
        key: *mut ThreadKey,
        destructor: Option<unsafe extern "system" fn(*mut c_void)>,
    ) -> c_int;
    fn pthread_key_delete(key: ThreadKey) -> c_int;
    fn pthread_setspecific(key: ThreadKey, value: *const c_void) -> c_int;
}

/// The leading fields of `struct link_map` (`<link.h>`, the public part).
#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const c_char,
}

// glibc's <bits/dlfcn.h> (the same on every Linux architecture).
const RTLD_LAZY: c_int = 0x1;
const RTLD_NOLOAD: c_int = 0x4;
const RTLD_NODELETE: c_int = 0x1000;
const RTLD_DL_LINKMAP: c_int = 2;

/// `getauxval` key of the 16 random bytes the kernel gives every process.
const AT_RANDOM: c_ulong = 25;

// <sys/mman.h>; MAP_ANONYMOUS is 0x20 on x86-64 and aarch64 alike (the
// generic value; only a few architectures such as MIPS differ).
const MREMAP_MAYMOVE: c_int = 1;

/// The 16 random bytes the kernel put in this process's auxiliary vector:
/// the same for every copy of pyalloc loaded in the process (there is one
/// auxiliary vector) and in a forked child (which inherits its parent's
/// memory, blocks included), fresh at every exec. `None` if the kernel gave
/// none.
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

/// Pins the object holding `code` (see `sys::pin_this_object`).
pub(super) fn pin_object_of(code: *const c_void) -> bool {
    let mut info = DlInfo::EMPTY;
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

/// The mapping `map` of `old_len` bytes resized to `new_len` bytes (moved
/// if need be, contents kept; no copy: `mremap` moves the pages); NULL on
/// failure, leaving it as it was.
///
/// # Safety
/// `map` and `old_len` are a live mapping from `map` or `remap`; on success
/// it is not used afterwards.
pub(crate) unsafe fn remap(map: *mut u8, old_len: usize, new_len: usize) -> *mut u8 {
    // SAFETY: as the caller promises; mremap moves the whole mapping or
    // fails and leaves it as it was.
    let moved = unsafe { mremap(map.cast(), old_len, new_len, MREMAP_MAYMOVE) };
    if moved == MAP_FAILED {
        return core::ptr::null_mut();
    }
    moved.cast()
}

/// A new thread key whose `destructor` runs at the exit of each thread that
/// set it (`pthread_key_create`); None when none is left. `extern "system"`
/// is the C ABI on every Unix.
pub(crate) fn thread_key_create(destructor: unsafe extern "system" fn(*mut c_void)) -> Option<ThreadKey> {
    let mut key: ThreadKey = 0;
    // SAFETY: `key` is writable; the destructor is a function the caller
    // keeps loaded (it pins its object first).
    (unsafe { pthread_key_create(&mut key, Some(destructor)) } == 0).then_some(key)
}

/// Sets `key` for the calling thread to a non-NULL value (its destructor
/// runs only for non-NULL values); false on failure.
///
/// # Safety
/// `key` is a live key from `thread_key_create`.
pub(crate) unsafe fn thread_key_set(key: ThreadKey) -> bool {
    // SAFETY: a live key (the caller's promise); the value is any non-NULL
    // pointer, never dereferenced.
    unsafe { pthread_setspecific(key, core::ptr::NonNull::<u8>::dangling().as_ptr().cast()) == 0 }
}

/// # Safety
/// `key` is a live key from `thread_key_create` that no thread has set.
pub(crate) unsafe fn thread_key_delete(key: ThreadKey) {
    // SAFETY: as the caller promises.
    unsafe { pthread_key_delete(key) };
}
