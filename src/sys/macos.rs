//! macOS (arm64, x86-64): compile-checked only, never run here (no Apple
//! SDK or machine). The constants are those of Apple's headers, cited at
//! each.

use core::ffi::{c_char, c_int, c_ulong, c_void};

pub(super) use super::unix::write_stderr;
pub(crate) use super::unix::{
    aligned_alloc, thread_ident, thread_key_create, thread_key_delete, thread_key_set, yield_now,
};

/// macOS's `pthread_key_t` (`<sys/_types/_pthread_key_t.h>`:
/// `__darwin_pthread_key_t`, an `unsigned long`).
pub(crate) type ThreadKey = c_ulong;

extern "C" {
    /// libSystem's stack-protector canary, which every image's
    /// `-fstack-protector` code reads (`___stack_chk_guard`). Declared as its
    /// first word only: the one word every libSystem has.
    static __stack_chk_guard: usize;
    fn dladdr(address: *const c_void, info: *mut DlInfo) -> c_int;
    fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
}

/// `Dl_info` (dyld's `<dlfcn.h>`).
#[repr(C)]
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

// dyld's <dlfcn.h>: RTLD_LAZY 0x1, RTLD_NOLOAD 0x10, RTLD_NODELETE 0x80
// (not glibc's values).
const RTLD_LAZY: c_int = 0x1;
const RTLD_NOLOAD: c_int = 0x10;
const RTLD_NODELETE: c_int = 0x80;

// <sys/mman.h>: MAP_PRIVATE 0x0002, MAP_ANON 0x1000; off_t is 64 bits.
const PROT_READ_WRITE: c_int = 0x1 | 0x2;
const MAP_PRIVATE_ANONYMOUS: c_int = 0x0002 | 0x1000;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

/// Random bytes that every copy of pyalloc in this process reads alike:
/// the first word of libSystem's stack canary, then zeros. macOS has no
/// auxiliary vector, and a copy's own `getentropy` would differ from
/// another copy's; the canary is the process-wide analogue of glibc's
/// `AT_RANDOM` use (glibc derives its canary from those bytes). It is one
/// object of libSystem, which a process loads once, so every copy (every
/// image) reads the same word; libSystem sets it before any other image's
/// initialiser runs, from the kernel's per-exec `stack_guard` entropy (or
/// its own random source), and never changes it afterwards (that would
/// break every live frame's canary check); a forked child inherits it with
/// the parent's memory, as it does the parent's blocks. `None` when it reads
/// 0 (unset) or the "terminator canary" (bytes 0, 0, '\n', 255, then zeros)
/// that Apple's `__guard_setup` (Libc `stack_protector.c`) falls back to when
/// it has neither the kernel's `stack_guard` nor `/dev/urandom`: a known
/// value is no secret.
///
/// Differences from Linux: 8 bytes of entropy, not 16 (the SipHash key and
/// output are 64 bits either way, so a guess still costs up to 2^64 tries
/// unless the canary's bytes are known; Apple may keep a zero byte in it,
/// leaving 56 bits: xnu's `exec_add_entropy_key` embeds a NUL in the
/// canary); and the source is libSystem's canary, which a bug that
/// leaks the canary also leaks to whoever could hash it with pyalloc's
/// public key.
pub(crate) fn process_random_bytes() -> Option<[u8; 16]> {
    // SAFETY: a word of libSystem's data, initialised before any image's
    // code runs and never written after; read by value.
    let word = unsafe { core::ptr::addr_of!(__stack_chk_guard).read_volatile() };
    const TERMINATOR_CANARY: usize = usize::from_le_bytes([0, 0, b'\n', 255, 0, 0, 0, 0]);
    if word == 0 || word == TERMINATOR_CANARY {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&word.to_le_bytes());
    Some(bytes)
}

/// Pins the image holding `code` (see `sys::pin_this_object`): `dladdr`
/// names it, and `dlopen` of that name with `RTLD_NOLOAD | RTLD_NODELETE`
/// finds the loaded image (NOLOAD: nothing is loaded) and marks it never to
/// be unloaded. The main executable is found alike (and is never unloaded).
pub(super) fn pin_object_of(code: *const c_void) -> bool {
    let mut info = DlInfo {
        fname: core::ptr::null(),
        fbase: core::ptr::null_mut(),
        sname: core::ptr::null(),
        saddr: core::ptr::null_mut(),
    };
    // SAFETY: `info` is a valid place for dladdr's answer; it only looks
    // `code` up among the loaded images.
    if unsafe { dladdr(code, &mut info) } == 0 || info.fname.is_null() {
        return false;
    }
    // SAFETY: `fname` is the loaded image's path (a NUL-terminated string
    // of dyld's, valid while the image is loaded, as it is while this code
    // runs); NOLOAD only finds an image already loaded.
    !unsafe { dlopen(info.fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) }.is_null()
}

/// Registers fork handlers; false when it failed (or the image could not be
/// pinned).
///
/// # Safety
/// The handlers are safe to run around `fork` and are functions of the
/// caller's image. Apple's `pthread_atfork` keeps them for the process (it
/// drops nothing on `dlclose`), so the image is pinned first.
#[cfg_attr(not(pyalloc_py315), allow(dead_code))] // only 3.15+ builds register fork handlers (tracemalloc.rs)
pub(crate) unsafe fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> bool {
    // SAFETY: the handlers stay callable once the image is pinned; the
    // caller promises the rest.
    super::pin_this_object() && unsafe { super::unix::pthread_at_fork(prepare, parent, child) }
}

/// A new private anonymous mapping of `len` bytes, page-aligned and
/// zero-filled; NULL on failure.
pub(crate) fn map(len: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping; failure is MAP_FAILED.
    let map = unsafe {
        mmap(
            core::ptr::null_mut(),
            len,
            PROT_READ_WRITE,
            MAP_PRIVATE_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == MAP_FAILED {
        return core::ptr::null_mut();
    }
    map.cast()
}

/// # Safety
/// `map` and `len` are a live mapping from `map` or `remap`, not used
/// afterwards.
pub(crate) unsafe fn unmap(map: *mut u8, len: usize) {
    // SAFETY: as the caller promises.
    unsafe { munmap(map.cast(), len) };
}

/// The mapping resized: macOS has no `mremap`, so a new mapping, a copy of
/// the smaller length, and the old one unmapped (slower than Linux, the same
/// result); NULL on failure, leaving it as it was.
///
/// # Safety
/// `map` and `old_len` are a live mapping from `map` or `remap`; on success
/// it is not used afterwards.
pub(crate) unsafe fn remap(map: *mut u8, old_len: usize, new_len: usize) -> *mut u8 {
    let moved = self::map(new_len);
    if !moved.is_null() {
        // SAFETY: two distinct live mappings, each at least as long as the
        // copy; the old one is the caller's to give up.
        unsafe {
            core::ptr::copy_nonoverlapping(map, moved, old_len.min(new_len));
            unmap(map, old_len);
        }
    }
    moved
}
