//! Windows x64 (`x86_64-pc-windows-gnu`, and the MSVC target alike):
//! compile-checked only, never linked or run here. Declared from the Win32
//! and CRT documentation, cited at each.

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};

/// An FLS index (`FlsAlloc`'s `DWORD`).
pub(crate) type ThreadKey = u32;

type Handle = *mut c_void;

#[link(name = "kernel32")]
extern "system" {
    fn GetCurrentThreadId() -> u32;
    fn GetCurrentProcessId() -> u32;
    fn SwitchToThread() -> i32;
    fn FlsAlloc(callback: Option<unsafe extern "system" fn(*mut c_void)>) -> u32;
    fn FlsSetValue(index: u32, value: *const c_void) -> i32;
    fn FlsFree(index: u32) -> i32;
    fn GetModuleHandleExW(flags: u32, name: *const u16, module: *mut Handle) -> i32;
    fn VirtualAlloc(address: *mut c_void, size: usize, kind: u32, protect: u32) -> *mut c_void;
    fn VirtualFree(address: *mut c_void, size: usize, kind: u32) -> i32;
    fn CreateFileMappingW(
        file: Handle,
        attributes: *const c_void,
        protect: u32,
        size_high: u32,
        size_low: u32,
        name: *const u16,
    ) -> Handle;
    fn MapViewOfFile(
        mapping: Handle,
        access: u32,
        offset_high: u32,
        offset_low: u32,
        size: usize,
    ) -> *mut c_void;
}

#[link(name = "bcrypt")]
extern "system" {
    fn BCryptGenRandom(algorithm: *mut c_void, buffer: *mut u8, length: u32, flags: u32) -> i32;
}

// The C runtime (msvcrt or ucrt).
extern "C" {
    fn _aligned_malloc(size: usize, align: usize) -> *mut c_void;
    fn _write(fd: c_int, buf: *const c_void, count: c_uint) -> c_int;
}

// <fibersapi.h>
const FLS_OUT_OF_INDEXES: u32 = u32::MAX;
// <libloaderapi.h>
const GET_MODULE_HANDLE_EX_FLAG_PIN: u32 = 0x1;
const GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS: u32 = 0x4;
const INVALID_HANDLE_VALUE: Handle = !0usize as Handle;
const BCRYPT_USE_SYSTEM_PREFERRED_RNG: u32 = 0x2;

/// A block aligned to `align`; NULL on failure. `_aligned_malloc`'s block
/// may be freed only with `_aligned_free`, never `free`: pyalloc never frees
/// these (counter blocks live for the process), and they never reach the
/// private heap or C.
pub(crate) fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    // SAFETY: _aligned_malloc takes any size and a power-of-two alignment
    // (the caller's is a type's), and reports failure as NULL.
    unsafe { _aligned_malloc(size, align).cast() }
}

pub(super) fn write_stderr(bytes: &[u8]) {
    let count = c_uint::try_from(bytes.len()).unwrap_or(c_uint::MAX);
    // SAFETY: writes at most `bytes.len()` bytes of a valid slice to the CRT's
    // descriptor 2 (an invalid descriptor fails with -1, ignored).
    unsafe { _write(2, bytes.as_ptr().cast(), count) };
}

/// What CPython's `PyThread_get_thread_ident()` returns on Windows
/// (`Python/thread_nt.h`: `GetCurrentThreadId()`), which 3.11 stores as a
/// thread state's `thread_id`; `unsigned long` is 32 bits there, as a
/// `DWORD` is.
#[inline]
#[cfg_attr(pyalloc_py312, allow(dead_code))] // 3.11 only
pub(crate) fn thread_ident() -> c_ulong {
    // SAFETY: no arguments; cannot fail.
    unsafe { GetCurrentThreadId() }
}

/// A new fiber-local-storage index whose `callback` runs when a thread
/// (fiber) that set it exits, as a pthread key's destructor does
/// (`FlsAlloc`); None when none is left. Windows has no pthread keys; FLS is
/// the documented per-thread destructor (the callback is `extern "system"`,
/// `PFLS_CALLBACK_FUNCTION`).
pub(crate) fn thread_key_create(callback: unsafe extern "system" fn(*mut c_void)) -> Option<ThreadKey> {
    // SAFETY: the callback is a function the caller keeps loaded (it pins
    // its module first).
    let index = unsafe { FlsAlloc(Some(callback)) };
    (index != FLS_OUT_OF_INDEXES).then_some(index)
}

/// Sets `key` for the calling fiber to a non-NULL value (the callback runs
/// only for non-NULL values); false on failure.
///
/// # Safety
/// `key` is a live index from `thread_key_create`.
pub(crate) unsafe fn thread_key_set(key: ThreadKey) -> bool {
    // SAFETY: a live index (the caller's promise); the value is never
    // dereferenced.
    unsafe { FlsSetValue(key, core::ptr::NonNull::<u8>::dangling().as_ptr().cast()) != 0 }
}

/// # Safety
/// `key` is a live index from `thread_key_create` that no fiber has set
/// (`FlsFree` runs the callback for the values that are set).
pub(crate) unsafe fn thread_key_delete(key: ThreadKey) {
    // SAFETY: as the caller promises.
    unsafe { FlsFree(key) };
}

/// Gives the processor to another thread.
#[cfg_attr(not(pyalloc_py315), allow(dead_code))] // only 3.15+ builds register fork handlers (tracemalloc.rs)
pub(crate) fn yield_now() {
    // SAFETY: no arguments; only yields the processor.
    unsafe { SwitchToThread() };
}

/// Pins the module (the DLL or the program) holding `code`:
/// `GetModuleHandleExW` with `..._FROM_ADDRESS` (the name argument is an
/// address inside the module) and `..._PIN` (the module stays loaded until
/// the process ends, whatever `FreeLibrary` calls follow).
pub(super) fn pin_object_of(code: *const c_void) -> bool {
    let mut module: Handle = core::ptr::null_mut();
    // SAFETY: `module` is a valid place for the answer; the flags make the
    // call read `code` as an address only; PIN takes no reference the
    // caller must release.
    unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
            code.cast(),
            &mut module,
        ) != 0
    }
}

// <memoryapi.h>: the views of the cookie's section.
const FILE_MAP_WRITE: u32 = 0x2;
const FILE_MAP_READ: u32 = 0x4;

/// The process's 16 random bytes, the same in every copy of pyalloc in it.
///
/// Windows gives a process no random bytes of its own that every module can
/// read (each DLL's `__security_cookie` is its own), so the copies meet in a
/// named, pagefile-backed section of 16 bytes, `Local\pyalloc-cookie-1-<pid>`:
/// the first copy to call creates it (zero-filled, as `CreateFileMappingW`
/// documents for pagefile-backed sections), later ones open the same one
/// (same name, same session namespace) and map a view of the same pages.
/// Each of its two words goes from 0 to the first copy's `BCryptGenRandom`
/// word by compare-and-swap, so every copy reads the winner's. The handle and
/// view are never closed: the section lives as long as the process, and a
/// later process that reuses the pid finds none (a section goes with its
/// last handle). No `fork` on Windows, so no child to agree with.
///
/// What differs from Linux: the name is visible in the session. A process of
/// the same session that creates it first (guessing the pid) or opens it
/// later could learn or, with write access, change the words; the section's
/// default security admits the creating user and SYSTEM only, who can
/// already read and write this process's memory. `None` when the section or
/// the random bytes cannot be had.
pub(crate) fn process_random_bytes() -> Option<[u8; 16]> {
    let name = section_name();
    // SAFETY: a pagefile-backed section (no file), default security, 16
    // bytes, a NUL-terminated UTF-16 name; failure is NULL.
    let section = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            core::ptr::null(),
            PAGE_READWRITE,
            0,
            16,
            name.as_ptr(),
        )
    };
    if section.is_null() {
        return None;
    }
    // SAFETY: maps the section's 16 bytes (page-aligned, so the words are
    // 8-aligned); failure is NULL. Never unmapped.
    let view = unsafe { MapViewOfFile(section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 16) };
    if view.is_null() {
        return None;
    }
    let mut fresh = [0u8; 16];
    // SAFETY: a writable 16-byte buffer; the system-preferred RNG needs no
    // algorithm handle.
    if unsafe {
        BCryptGenRandom(
            core::ptr::null_mut(),
            fresh.as_mut_ptr(),
            16,
            BCRYPT_USE_SYSTEM_PREFERRED_RNG,
        )
    } != 0
    {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, chunk) in fresh.chunks_exact(8).enumerate() {
        // 0 means "not chosen yet": a fresh word of 0 becomes 1.
        let mine = u64::from_le_bytes(chunk.try_into().ok()?).max(1);
        // SAFETY: the view's 16 bytes stay mapped for the process, 8-aligned;
        // every copy accesses them only atomically.
        let word = unsafe { &*view.cast::<AtomicU64>().add(i) };
        let chosen = match word.compare_exchange(0, mine, AcqRel, Acquire) {
            Ok(_) => mine,
            Err(theirs) => theirs,
        };
        out[i * 8..i * 8 + 8].copy_from_slice(&chosen.to_le_bytes());
    }
    Some(out)
}

/// `Local\pyalloc-cookie-1-<pid>` as NUL-terminated UTF-16, made without
/// allocating.
fn section_name() -> [u16; 48] {
    const PREFIX: &[u8] = b"Local\\pyalloc-cookie-1-";
    let mut name = [0u16; 48];
    for (slot, byte) in name.iter_mut().zip(PREFIX) {
        *slot = u16::from(*byte);
    }
    // SAFETY: no arguments; cannot fail.
    let mut pid = unsafe { GetCurrentProcessId() };
    let mut digits = [0u16; 10];
    let mut count = 0;
    loop {
        digits[count] = u16::from(b'0') + (pid % 10) as u16;
        count += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    for (i, digit) in digits[..count].iter().rev().enumerate() {
        name[PREFIX.len() + i] = *digit;
    }
    name
}

// <winnt.h>: VirtualAlloc's and VirtualFree's kinds, a page protection.
const MEM_COMMIT: u32 = 0x1000;
const MEM_RESERVE: u32 = 0x2000;
const MEM_RELEASE: u32 = 0x8000;
const PAGE_READWRITE: u32 = 0x04;

/// A new committed read-write region of `len` bytes (`VirtualAlloc`:
/// 64 KiB-aligned, zero-filled); NULL on failure.
pub(crate) fn map(len: usize) -> *mut u8 {
    // SAFETY: a new region anywhere; failure is NULL.
    unsafe {
        VirtualAlloc(
            core::ptr::null_mut(),
            len,
            MEM_COMMIT | MEM_RESERVE,
            PAGE_READWRITE,
        )
        .cast()
    }
}

/// # Safety
/// `map` is a live region from `map` or `remap`, not used afterwards.
pub(crate) unsafe fn unmap(map: *mut u8, _len: usize) {
    // SAFETY: as the caller promises; MEM_RELEASE takes size 0 and frees the
    // whole region VirtualAlloc reserved.
    unsafe { VirtualFree(map.cast(), 0, MEM_RELEASE) };
}
