//! macOS (arm64, x86-64): compile-checked only, never run here (no Apple
//! SDK or machine). The constants are those of Apple's headers, cited at
//! each.

use super::unix::DlInfo;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering::Acquire, Ordering::Release};

pub(super) use super::unix::write_stderr;
pub(crate) use super::unix::{aligned_alloc, map, thread_ident, unmap, yield_now};

extern "C" {
    /// libSystem's stack-protector canary, which every image's
    /// `-fstack-protector` code reads (`___stack_chk_guard`). Declared as its
    /// first word only: the one word every libSystem has.
    static __stack_chk_guard: usize;
    fn dladdr(address: *const c_void, info: *mut DlInfo) -> c_int;
    fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
    /// dyld's per-thread terminator list (`<dyld/threadLocalVariables.h>`,
    /// libdyld), what Rust's std registers its thread-local destructors
    /// with on macOS.
    fn _tlv_atexit(terminator: unsafe extern "C" fn(*mut c_void), argument: *mut c_void);
}

/// The thread-exit callback on macOS: a dyld thread-local terminator, not a
/// pthread key. dyld frees a thread's thread-local storage from pthread-key
/// destructors of its own, made when an image loads, so before the
/// destructor of any key pyalloc could make later: such a destructor would
/// find this thread's cache and counter-block pointer gone (fresh, zeroed
/// storage) and give back nothing. Terminators run before that storage is
/// freed; one registered while they run (a first pyalloc call in another
/// thread-local's destructor) runs too (dyld rereads its list after each),
/// and one registered from a later pthread key's destructor runs in libpthread's
/// next round, as a pthread key set in a destructor does on glibc. That is
/// dyld since macOS 10.13; 10.12's `_tlv_atexit` freed the list it was
/// running when called from a terminator of the main thread (Rust's std says
/// so too), so pyalloc needs macOS 10.13 or newer. The main thread's
/// terminators run in `exit()`, before the C library's `atexit` handlers: its
/// cache and counter block are given back then, and its later frees go
/// straight to the backend. The "key" is only a token: one callback per
/// copy.
pub(crate) type ThreadKey = u32;

/// The callback that `thread_key_set` registers for the calling thread.
static THREAD_EXIT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Records `callback` for `thread_key_set`; never fails.
pub(crate) fn thread_key_create(callback: unsafe extern "system" fn(*mut c_void)) -> Option<ThreadKey> {
    THREAD_EXIT.store(callback as *mut c_void, Release);
    Some(0)
}

/// Registers the recorded callback to run at the calling thread's exit
/// (`_tlv_atexit`, which reports no failure; out of memory, dyld's list
/// allocation is not checked and the process crashes).
///
/// # Safety
/// `thread_key_create` returned `_key`; call once per thread.
pub(crate) unsafe fn thread_key_set(_key: ThreadKey) -> bool {
    let callback = THREAD_EXIT.load(Acquire);
    if callback.is_null() {
        return false;
    }
    // SAFETY: a non-NULL value was stored from a function of this type
    // (`extern "system"` is the C ABI on macOS), whose object the caller
    // pinned; the argument is unused.
    unsafe {
        let callback: unsafe extern "C" fn(*mut c_void) = core::mem::transmute(callback);
        _tlv_atexit(callback, core::ptr::null_mut());
    }
    true
}

/// Nothing to give back: the callback is a static's, not an OS resource.
///
/// # Safety
/// None beyond `thread_key_create`'s.
pub(crate) unsafe fn thread_key_delete(_key: ThreadKey) {}

// dyld's <dlfcn.h>: RTLD_LAZY 0x1, RTLD_NOLOAD 0x10, RTLD_NODELETE 0x80
// (not glibc's values).
const RTLD_LAZY: c_int = 0x1;
const RTLD_NOLOAD: c_int = 0x10;
const RTLD_NODELETE: c_int = 0x80;

// <sys/mman.h>: MAP_PRIVATE 0x0002, MAP_ANON 0x1000; off_t is 64 bits.

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
    let mut info = DlInfo::EMPTY;
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
